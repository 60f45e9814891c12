#!/bin/sh
# Line and branch coverage of src/ by the test suite, with gcovr.
#
#   tools/coverage.sh                 configures ./build-coverage (gcc,
#                                     -Db_coverage=true), runs the suite,
#                                     prints the totals, writes an HTML
#                                     report to build-coverage/coverage/
#   tools/coverage.sh --report DIR    only reports on DIR, a build configured
#                                     with -Db_coverage=true whose suite has
#                                     run (CI's sanitizer build is one)
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--report" ]; then
    build=$2
else
    build=build-coverage
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" --buildtype=debug -Db_coverage=true
    fi
    find "$build" -name '*.gcda' -delete
    meson test -C "$build" --no-rebuild >/dev/null 2>&1 || meson test -C "$build" --print-errorlogs
fi
mkdir -p "$build/coverage"
# Branches the compiler adds for exceptions do not exist in C; the
# unreachable ones of inlined helpers would swamp the figure.
gcovr --root . --filter 'src/' --exclude-unreachable-branches \
    --exclude-throw-branches --html-details "$build/coverage/index.html" \
    --print-summary "$build"
