#!/usr/bin/env python3
"""Installs the build into a temporary directory and builds programs
against the installed nabla the way a user does: with pkg-config only.

    check_install.py --meson MESON --build-dir DIR [--sanitize S]
                     [--cxx CXX] -- CC [CC ARGS...]

The build is installed with `meson install --destdir TMP`, so the files
land under TMP/<prefix>; PKG_CONFIG_SYSROOT_DIR=TMP then makes nabla.pc's
paths point there, as they would point at <prefix> after a real install
(it also prefixes the system paths of sleef's and zlib's .pc files, which
then name directories that do not exist: harmless, the compiler's default
paths find those). No path into the source or build tree is given to the
compiler. Then:

- a C program linked against the shared library runs and checks a
  gradient;
- the same program, linked against libnabla.a with the flags
  `pkg-config --static` gives (sleef, zlib, libm, OpenMP), runs;
- the same program compiled as C++ links and runs (the headers must be
  valid C++ and declare everything extern "C").
"""
import argparse
import os
import shutil
import subprocess
import sys

import compiler_args
import tempfile

PROGRAM = r"""
#include <math.h>
#include <stdio.h>
#include <nabla/nabla.h>

/* L = sum(tanh(x W)) for x = [1, 2], W = [[0.5], [-0.25]]: z = 0, so
 * dL/dW = x^T (1 - tanh(z)^2) = [1, 2]. */
int main(void)
{
    const int64_t x_shape[2] = {1, 2}, w_shape[2] = {2, 1};
    const double x_data[2] = {1.0, 2.0};
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, x_shape);
    nb_node *W = nb_param(g, "W", NB_F32, 2, w_shape);
    nb_node *loss = nb_sum(g, nb_tanh(g, nb_matmul(g, x, W)));
    if (!loss) {
        printf("build: %s\n", nb_graph_error(g));
        return 1;
    }
    nb_tensor_set(nb_node_value(W), 0, 0.5);
    nb_tensor_set(nb_node_value(W), 1, -0.25);
    if (nb_feed_f64(g, x, 2, x_shape, x_data) != NB_OK ||
        nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
        printf("run: %s\n", nb_graph_error(g));
        return 1;
    }
    double d0 = nb_tensor_get(nb_node_grad(W), 0);
    double d1 = nb_tensor_get(nb_node_grad(W), 1);
    int ok = fabs(d0 - 1.0) < 1e-6 && fabs(d1 - 2.0) < 1e-6;
    printf("dL/dW = [%g, %g]: %s\n", d0, d1, ok ? "right" : "WRONG");
    nb_graph_free(g);
    return ok ? 0 : 1;
}
"""

failures = []


def run(cmd, env=None, what=""):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        failures.append(what)
        print("install: %s failed (exit %d):\n  %s\n%s%s" % (
            what, out.returncode, " ".join(cmd), out.stdout, out.stderr))
        return None
    return out.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--meson", required=True)
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--sanitize", default="none")
    parser.add_argument("--cxx")
    parser.add_argument("--source-dir", required=True)
    args, cc = compiler_args.parse(parser, __doc__)
    # A sanitized library needs its runtime in whatever links it.
    extra = [] if args.sanitize in ("", "none") else ["-fsanitize=" + args.sanitize]

    tmp = tempfile.mkdtemp(prefix="nabla-install-")
    try:
        if run([args.meson, "install", "-C", args.build_dir, "--no-rebuild",
                "--quiet", "--destdir", tmp], what="meson install") is None:
            return 1
        pcs = [os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs
               if f == "nabla.pc"]
        if len(pcs) != 1:
            print("install: expected one nabla.pc under %s, found %r" % (tmp, pcs))
            return 1
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
        env["PKG_CONFIG_SYSROOT_DIR"] = tmp
        pkg = ["pkg-config"]
        cflags = run(pkg + ["--cflags", "nabla"], env, "pkg-config --cflags")
        libs = run(pkg + ["--libs", "nabla"], env, "pkg-config --libs")
        static_libs = run(pkg + ["--static", "--libs", "nabla"], env,
                          "pkg-config --static --libs")
        libdir = run(pkg + ["--variable=libdir", "nabla"], env,
                     "pkg-config --variable=libdir")
        if None in (cflags, libs, static_libs, libdir):
            return 1
        cflags, libs, static_libs = cflags.split(), libs.split(), static_libs.split()
        libdir = libdir.strip()  # the sysroot already prepended
        print("install: Cflags %s\ninstall: Libs %s\ninstall: static Libs %s"
              % (" ".join(cflags), " ".join(libs), " ".join(static_libs)))
        for flag in cflags + static_libs:
            for tree in (args.source_dir, args.build_dir):
                if os.path.realpath(tree) in flag:
                    failures.append("flags")
                    print("install: %s points into %s" % (flag, tree))
        for lib in ("libnabla.a", "libnabla.so"):
            if not os.path.exists(os.path.join(libdir, lib)):
                failures.append(lib)
                print("install: %s is not in the libdir nabla.pc names (%s)"
                      % (lib, libdir))

        src = os.path.join(tmp, "program.c")
        with open(src, "w") as f:
            f.write(PROGRAM)

        # meson test points LD_LIBRARY_PATH at the build tree: the programs
        # must find the installed library instead, or none at all.
        shared_env = dict(os.environ)
        shared_env["LD_LIBRARY_PATH"] = libdir
        static_env = dict(os.environ)
        static_env.pop("LD_LIBRARY_PATH", None)

        exe = os.path.join(tmp, "program_shared")
        # -lm for the program's own fabs.
        if run(cc + ["-std=c99", "-pedantic-errors", src, "-o", exe] + cflags
               + libs + ["-lm"] + extra, what="C program, shared library") is not None:
            print("install: shared: " + (run([exe], shared_env, "shared run") or ""), end="")

        # pkg-config cannot say "this library statically": as README says,
        # -l:libnabla.a takes the place of -lnabla, and every flag --static
        # adds stays.
        static_flags = ["-l:libnabla.a" if f == "-lnabla" else f
                        for f in static_libs]
        exe = os.path.join(tmp, "program_static")
        if run(cc + ["-std=c99", "-pedantic-errors", src, "-o", exe] + cflags
               + static_flags + ["-lm"] + extra,
               what="C program, static library") is not None:
            needed = run(["readelf", "-d", exe], what="readelf") or ""
            if "libnabla" in needed:
                failures.append("static")
                print("install: the static program still needs libnabla.so")
            print("install: static: " + (run([exe], static_env, "static run") or ""), end="")

        if args.cxx:
            exe = os.path.join(tmp, "program_cxx")
            if run([args.cxx, "-x", "c++", "-std=c++11", "-pedantic-errors", src,
                    "-x", "none", "-o", exe] + cflags + libs + extra,
                   what="C++ program, shared library") is not None:
                print("install: C++: " + (run([exe], shared_env, "C++ run") or ""),
                      end="")
        else:
            print("install: no C++ compiler found; the C++ build is not tried")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("install: %s" % ("ok" if not failures else
                           "%d failures: %s" % (len(failures), ", ".join(failures))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
