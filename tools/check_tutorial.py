#!/usr/bin/env python3
"""Keeps the tutorial's quoted output equal to what its programs print.

Each chapter in docs/tutorial/ is paired with a program in
examples/tutorial/. The program prints its output in named sections, each
opening with a header line

    == KEY: a title for the reader

and running to the next header. The chapter quotes a section by putting an
HTML comment naming the program and the key on the line right above a
```text fence:

    <!-- output: ch3_logistic trace -->
    ```text
    == trace: ...
    ...
    ```

The block must hold the whole section, header included, exactly as the
program prints it today (trailing blank lines aside).

    check_tutorial.py check CHAPTER.md PROGRAM
        Runs PROGRAM twice and fails (exit 1) when it exits non-zero (its
        own hand-formula checks failed), when its output differs between
        the two runs, when a quoted block differs from the section it
        names (a diff is shown), when a quoted section has trailing blanks
        (editors strip them), when a ```text block carries no marker, when
        the chapter quotes nothing, when a decimal number in the prose
        (0.320821, 1e-06; not integers) appears nowhere in the program's
        output, or when a relative link points at a missing file.

    check_tutorial.py write CHAPTER.md PROGRAM [CHAPTER.md PROGRAM ...]
        Rewrites every quoted block from the program's current output, then
        lists prose numbers that the new output no longer contains (exit 1
        if there are any: the prose needs a human).

    check_tutorial.py index README.md CHAPTER.md [CHAPTER.md ...]
        Fails unless the index links every chapter given (the chapters the
        build registers), every NN-*.md file next to it is among them, and
        every relative link in it resolves.

Python standard library only.
"""
import difflib
import os
import re
import subprocess
import sys

HEADER = re.compile(r"^== ([A-Za-z0-9_-]+)(?::\s.*)?$")
MARKER = re.compile(r"^<!--\s*output:\s*(\S+)\s+(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*(\S*)")
# A decimal number as prose writes it: 0.284725, -1.2, 4.54e-05, 1e-12.
NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


class Problem(Exception):
    pass


def run_program(exe):
    # A bare name would be looked up on PATH; the program is a file here.
    exe = os.path.abspath(exe)
    try:
        p = subprocess.run([exe], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Problem("%s: could not run: %s" % (exe, e))
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise Problem("%s exited with status %d (its own checks failed?)\n"
                      "--- stderr:\n%s" % (exe, p.returncode,
                                           p.stderr.decode("utf-8",
                                                           "replace")))
    return out


def sections(output):
    """{key: text} for every section of a program's output."""
    found = {}
    key, lines = None, []

    def close():
        if key is not None:
            while lines and not lines[-1].strip():
                lines.pop()
            found[key] = "\n".join(lines)

    for line in output.split("\n"):
        m = HEADER.match(line)
        if m:
            close()
            key, lines = m.group(1), []
            if key in found:
                raise Problem("the output has two sections named '%s'" % key)
        if key is not None:
            lines.append(line)
    close()
    return found


class Block:
    """One quoted block: its marker and the lines between its fences."""

    def __init__(self, program, key, marker_line, start, end):
        self.program, self.key = program, key
        self.marker_line = marker_line   # 0-based line of the comment
        self.start, self.end = start, end  # body is lines[start:end]


def parse_chapter(path, lines):
    """The quoted blocks, and the prose (everything outside fences and
    comments) as (line number, text) pairs."""
    blocks, prose, problems = [], [], []
    i, n = 0, len(lines)
    in_comment = False
    while i < n:
        line = lines[i]
        if in_comment:
            if "-->" in line:
                in_comment = False
            i += 1
            continue
        marker = MARKER.match(line)
        if marker:
            f = FENCE.match(lines[i + 1]) if i + 1 < n else None
            if not f or f.group(2) != "text":
                problems.append("%s:%d: an output marker must sit right "
                                "above a ```text fence" % (path, i + 1))
                i += 1
                continue
            close = _closing_fence(lines, i + 2, f.group(1))
            if close is None:
                problems.append("%s:%d: unclosed fence" % (path, i + 2))
                break
            blocks.append(Block(marker.group(1), marker.group(2), i, i + 2,
                                close))
            i = close + 1
            continue
        f = FENCE.match(line)
        if f:
            if f.group(2) == "text":
                problems.append("%s:%d: a ```text block without an output "
                                "marker (```text is reserved for quoted "
                                "program output)" % (path, i + 1))
            close = _closing_fence(lines, i + 1, f.group(1))
            if close is None:
                problems.append("%s:%d: unclosed fence" % (path, i + 1))
                break
            i = close + 1
            continue
        if line.lstrip().startswith("<!--"):
            in_comment = "-->" not in line
            i += 1
            continue
        prose.append((i + 1, line))
        i += 1
    return blocks, prose, problems


def _closing_fence(lines, start, opener):
    for j in range(start, len(lines)):
        if lines[j].strip() == opener:
            return j
    return None


def check_links(path, text_lines):
    problems = []
    base = os.path.dirname(path)
    for lineno, line in text_lines:
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0]
            if not os.path.exists(os.path.join(base, file_part)):
                problems.append("%s:%d: broken link to %s" % (path, lineno,
                                                              target))
    return problems


def prose_numbers_missing(path, prose, output):
    missing = []
    for lineno, line in prose:
        # Link targets are addresses, not numbers.
        text = LINK.sub("]()", line)
        for num in NUMBER.findall(text):
            pattern = r"(?<![\d.])" + re.escape(num) + r"(?![\d])"
            if not re.search(pattern, output):
                missing.append("%s:%d: the prose quotes %s, which the "
                               "program does not print" % (path, lineno, num))
    return missing


def program_name(exe):
    return os.path.splitext(os.path.basename(exe))[0]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def check(chapter, exe):
    lines = read_lines(chapter)
    blocks, prose, problems = parse_chapter(chapter, lines)
    if not blocks:
        problems.append("%s: quotes no program output (no <!-- output: ... "
                        "--> blocks)" % chapter)
    out = run_program(exe)
    if run_program(exe) != out:
        problems.append("%s: prints different output on a second run; "
                        "quoted output must be reproducible" % exe)
    found = sections(out)
    name = program_name(exe)
    for b in blocks:
        where = "%s:%d" % (chapter, b.marker_line + 1)
        if b.program != name:
            problems.append("%s: quotes program '%s', but this chapter is "
                            "checked against '%s'" % (where, b.program, name))
            continue
        if b.key not in found:
            problems.append("%s: %s prints no section '%s' (it prints: %s)"
                            % (where, name, b.key,
                               ", ".join(sorted(found)) or "none"))
            continue
        if any(l != l.rstrip() for l in found[b.key].split("\n")):
            problems.append("%s: section '%s' of %s has trailing blanks on "
                            "a line; editors strip them, so the program "
                            "must not print them" % (where, b.key, name))
        quoted = "\n".join(lines[b.start:b.end])
        if quoted != found[b.key]:
            diff = difflib.unified_diff(
                quoted.split("\n"), found[b.key].split("\n"),
                "%s (quoted)" % chapter, "%s (printed now)" % name,
                lineterm="")
            problems.append("%s: the quoted section '%s' differs from what "
                            "%s prints now:\n%s" % (where, b.key, name,
                                                    "\n".join(diff)))
    problems += prose_numbers_missing(chapter, prose, out)
    problems += check_links(chapter, prose)
    return problems, len(blocks)


def write(chapter, exe):
    lines = read_lines(chapter)
    blocks, prose, problems = parse_chapter(chapter, lines)
    if problems:
        return problems, 0
    found = sections(run_program(exe))
    name = program_name(exe)
    changed = 0
    # Last block first, so earlier line numbers stay valid.
    for b in reversed(blocks):
        if b.program != name or b.key not in found:
            problems.append("%s:%d: no section '%s' in %s's output"
                            % (chapter, b.marker_line + 1, b.key, name))
            continue
        new = found[b.key].split("\n")
        if lines[b.start:b.end] != new:
            lines[b.start:b.end] = new
            changed += 1
    if changed:
        with open(chapter, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    _, prose, _ = parse_chapter(chapter, lines)
    problems += prose_numbers_missing(chapter, prose, run_program(exe))
    return problems, changed


def index(readme, chapters):
    lines = read_lines(readme)
    _, prose, problems = parse_chapter(readme, lines)
    problems += check_links(readme, prose)
    linked = set()
    for _, line in prose:
        for target in LINK.findall(line):
            linked.add(os.path.basename(target.split("#", 1)[0]))
    registered = {os.path.basename(c) for c in chapters}
    for c in sorted(registered - linked):
        problems.append("%s: does not link chapter %s" % (readme, c))
    here = os.path.dirname(readme) or "."
    for f in sorted(os.listdir(here)):
        if re.match(r"^\d\d-.*\.md$", f) and f not in registered:
            problems.append("%s/%s: a chapter the build does not test "
                            "(add it to examples/tutorial/meson.build)"
                            % (here, f))
    return problems


def main(argv):
    if len(argv) < 3 or argv[1] not in ("check", "write", "index"):
        sys.stderr.write(__doc__)
        return 2
    mode, args = argv[1], argv[2:]
    problems = []
    try:
        if mode == "index":
            problems = index(args[0], args[1:])
            if not problems:
                print("%s: links all %d chapters" % (args[0], len(args) - 1))
        elif mode == "check":
            if len(args) != 2:
                sys.stderr.write("check takes CHAPTER.md PROGRAM\n")
                return 2
            problems, n = check(args[0], args[1])
            if not problems:
                print("%s: %d quoted blocks match %s" %
                      (args[0], n, program_name(args[1])))
        else:
            if len(args) % 2:
                sys.stderr.write("write takes CHAPTER.md PROGRAM pairs\n")
                return 2
            for chapter, exe in zip(args[0::2], args[1::2]):
                p, changed = write(chapter, exe)
                problems += p
                print("%s: %d of its quoted blocks rewritten" % (chapter, changed))
    except Problem as e:
        problems.append(str(e))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
