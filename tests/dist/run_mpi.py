#!/usr/bin/env python3
"""Runs a program under mpirun and judges the job as a whole.

Usage: run_mpi.py MPIRUN NP ok|fail|exit0 TIMEOUT [MPIRUN-OPTIONS...] -- PROGRAM [ARGS...]

`ok`: the job exits 0 and every rank 0..NP-1 printed "rank R: ok: ...".
`fail`: the job exits non-zero within TIMEOUT seconds and every rank
printed "rank R: failed: ..." (each one learnt of the failure and ended
by itself; none was killed in a collective). `exit0`: the job exits 0. Either way a job still running
after TIMEOUT seconds fails the test.
"""
import re
import subprocess
import sys


def main():
    mpirun, np, want, timeout = sys.argv[1:5]
    rest = sys.argv[5:]
    cut = rest.index('--')
    options, program = rest[:cut], rest[cut + 1:]
    # Root runs it in CI; loopback only; no single-copy shared memory,
    # which containers often forbid (ptrace scope).
    cmd = [mpirun, '--allow-run-as-root', '--oversubscribe', '-np', np,
           '--mca', 'btl_tcp_if_include', 'lo',
           '--mca', 'oob_tcp_if_include', 'lo',
           '--mca', 'btl_vader_single_copy_mechanism', 'none'] + options + program
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=float(timeout))
    except subprocess.TimeoutExpired as e:
        print('timed out after %s s: %s' % (timeout, ' '.join(cmd)))
        print(e.stdout or '')
        print(e.stderr or '')
        return 1
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    if want == 'exit0':
        if p.returncode != 0:
            print('mpirun exited %d' % p.returncode)
        return 0 if p.returncode == 0 else 1
    word = 'ok' if want == 'ok' else 'failed'
    missing = [r for r in range(int(np))
               if not re.search(r'^rank %d: %s: ' % (r, word), p.stdout, re.M)]
    if missing:
        print('ranks without a "%s" line: %s' % (word, missing))
        return 1
    if (p.returncode == 0) != (want == 'ok'):
        print('mpirun exited %d, expected %s' % (p.returncode, want))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
