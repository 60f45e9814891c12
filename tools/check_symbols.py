#!/usr/bin/env python3
"""Checks the shared library's exported symbols against include/nabla.

    check_symbols.py --nm NM --include DIR LIBRARY -- CC [CC ARGS...]

The declared API is read from the headers as the compiler sees them (run
through CC's preprocessor, so a declaration written by a macro counts):
every declaration that carries NB_API. Fails on

- an exported symbol that no header declares with NB_API (an internal
  leaking out, which a user's own symbol of the same name would clash with),
- an exported symbol without the nb_ prefix,
- an NB_API declaration the library does not export (the user would see it
  only as a link error).
"""
import argparse
import re
import subprocess
import sys

import compiler_args

# What NB_API expands to under GCC and Clang (include/nabla/base.h).
MARK = '__attribute__((visibility("default")))'

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LINEMARK = re.compile(r'^# \d+ "([^"]*)"')


def declared_names(cc, include_dir):
    """Names declared with NB_API in nabla/nabla.h, through the preprocessor."""
    out = subprocess.run(
        cc + ["-E", "-I", include_dir, "-x", "c", "-"],
        input="#include <nabla/nabla.h>\n", capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("symbols: the preprocessor failed:\n" + out.stderr)
    # Only the text that comes from nabla's own headers (the line markers
    # say which file each run of lines is from).
    ours = []
    keep = False
    for line in out.stdout.splitlines():
        m = LINEMARK.match(line)
        if m:
            keep = "/nabla/" in m.group(1).replace("\\", "/")
        elif keep:
            ours.append(line)
    text = "\n".join(ours)
    names = set()
    # A declaration runs from the end of the previous one (or a brace) to
    # its semicolon; an NB_API declaration names what comes before its
    # parameter list, or, for an object, its last identifier.
    for decl in re.split(r"[;{}]", text.replace(MARK, "\0")):
        if "\0" not in decl:
            continue
        decl = decl[decl.index("\0") + 1:]
        head = decl.split("(", 1)[0] if "(" in decl else decl.split("[", 1)[0]
        idents = IDENT.findall(head)
        if not idents:
            sys.exit("symbols: cannot read the name of: NB_API" + decl)
        names.add(idents[-1])
    return names


def exported_names(nm, library):
    out = subprocess.run([nm, "-D", "--defined-only", library],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("symbols: nm failed:\n" + out.stderr)
    names = set()
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        kind, name = fields[1], fields[2].split("@", 1)[0]
        # A local symbol in the dynamic table (nm's lower-case letters,
        # except u, v and w, which are global) binds nothing outside the
        # library. The linker puts the __start_/__stop_ bounds of clang's
        # coverage sections there in a fuzzing build.
        if kind.islower() and kind not in "uvw":
            continue
        # Clang exports the resolver of every target_clones function (the
        # optimiser's update loops) whatever the function's visibility. A
        # name with a dot cannot be a C identifier, so it cannot collide
        # with a user's symbol.
        if name.endswith(".resolver"):
            continue
        names.add(name)
    return names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nm", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("library")
    args, cc = compiler_args.parse(parser, __doc__)

    declared = declared_names(cc, args.include)
    exported = exported_names(args.nm, args.library)
    problems = []
    for name in sorted(exported - declared):
        problems.append("exported but not declared with NB_API: " + name)
    for name in sorted(exported):
        if not name.startswith("nb_"):
            problems.append("exported without the nb_ prefix: " + name)
    for name in sorted(declared - exported):
        problems.append("declared with NB_API but not exported: " + name)
    for p in problems:
        print("symbols: " + p)
    if not declared:
        problems.append("no NB_API declaration found")
        print("symbols: no NB_API declaration found in " + args.include)
    print("symbols: %d exported, %d declared, %d problems"
          % (len(exported), len(declared), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
