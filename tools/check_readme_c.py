#!/usr/bin/env python3
"""Compiles every ```c block of a Markdown file as C99 and as C++.

    check_readme_c.py --include DIR [--cxx CXX] MARKDOWN... -- CC [ARGS...]

A block that defines a function is compiled as it stands; any other block
is a fragment of statements and is compiled as the body of a function, with
its #include lines moved above it. Each is compiled (not linked) with
`-std=c99 -pedantic-errors` and with `-x c++ -std=c++11 -pedantic-errors`,
so a compound literal, a designated initialiser out of order or an
implicit void * conversion shows up here rather than in a user's C++
project.
"""
import argparse
import os
import re
import subprocess
import sys

import compiler_args
import tempfile

FENCE = re.compile(r"^```c[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# A function definition: a declarator at column 0 that ends a line with
# ")" followed by a line that opens the body.
FUNCTION = re.compile(r"^[A-Za-z_][^;{}=]*\)[ \t]*\n\{", re.M)


def translation_unit(block, index):
    includes = [l for l in block.splitlines() if l.lstrip().startswith("#")]
    rest = [l for l in block.splitlines() if not l.lstrip().startswith("#")]
    if FUNCTION.search(block):
        return block
    body = "\n".join("    " + l if l else l for l in rest)
    return ("\n".join(includes) + "\n\nvoid readme_block_%d(void);\n"
            "void readme_block_%d(void)\n{\n%s\n}\n" % (index, index, body))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--include", required=True)
    parser.add_argument("--cxx")
    parser.add_argument("markdown", nargs="+")
    args, cc = compiler_args.parse(parser, __doc__)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for markdown in args.markdown:
            with open(markdown, encoding="utf-8") as f:
                blocks = FENCE.findall(f.read())
            if not blocks:
                print("readme_c: no ```c block in " + markdown)
                failed += 1
            for n, block in enumerate(blocks, 1):
                failed += check_block(block, n, markdown, tmp, cc, args)
    if not args.cxx:
        print("readme_c: no C++ compiler found; the C++ check is not made")
    return 1 if failed else 0


def check_block(block, n, markdown, tmp, cc, args):
    failed = 0
    path = os.path.join(tmp, "block_%d.c" % n)
    with open(path, "w") as f:
        f.write(translation_unit(block, n))
    compilers = [("C99", cc + ["-std=c99", "-pedantic-errors"])]
    if args.cxx:
        compilers.append(("C++", [args.cxx, "-x", "c++", "-std=c++11",
                                  "-pedantic-errors"]))
    for name, command in compilers:
        out = subprocess.run(
            command + ["-I", args.include, "-fsyntax-only", path],
            capture_output=True, text=True)
        status = "ok" if out.returncode == 0 else "FAILED"
        print("readme_c: %s block %d as %s: %s"
              % (os.path.basename(markdown), n, name, status))
        if out.returncode != 0:
            failed += 1
            print(out.stderr)
    return failed


if __name__ == "__main__":
    sys.exit(main())
