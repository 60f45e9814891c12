#!/bin/sh
# Builds the libFuzzer harnesses of tests/fuzz with clang under ASan+UBSan
# (in ./build-clang, which is also CI's clang sanitizer build), writes their
# seed corpora with the library's own writers, and runs each fuzzer for
# SECONDS seconds (default 20). A crash, a sanitizer report, a leak or a
# broken promise stops that fuzzer, keeps the input as crash-*/leak-*
# under build-clang/fuzz-artifacts/, and makes the script fail.
#
#   tools/fuzz.sh               20 s each, as CI runs them
#   tools/fuzz.sh 3600          an hour each
#   tools/fuzz.sh 600 csv idx   only some of them
#
# Corpora grow in build-clang/fuzz-corpus/<name> and are reused by the next
# run. Extra libFuzzer flags go in NABLA_FUZZ_FLAGS (say "-jobs=2 -workers=2").
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-20}
[ $# -gt 0 ] && shift
names=${*:-params checkpoint idx csv graph}

if [ ! -f build-clang/build.ninja ]; then
    CC=clang meson setup build-clang --buildtype=debugoptimized -Dwerror=true \
        -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=enabled
fi
meson compile -C build-clang
corpus=build-clang/fuzz-corpus
artifacts=build-clang/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
build-clang/tests/fuzz/make_seeds "$corpus"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for name in $names; do
    log="$artifacts/$name.log"
    # -rss_limit_mb bounds what a hostile file may make a loader allocate;
    # -timeout flags any input that takes over 10 s.
    if build-clang/tests/fuzz/fuzz_$name "$corpus/$name" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
        ${NABLA_FUZZ_FLAGS:-} >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz $name: ${runs:-?} executions in ${seconds} s, no failure"
    else
        echo "fuzz $name: FAILED (log: $log)"
        tail -n 40 "$log"
        status=1
    fi
done
exit $status
