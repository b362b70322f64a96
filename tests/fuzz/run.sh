#!/usr/bin/env bash
# Runs the libFuzzer targets of a build directory for a bounded time each; builds nothing.
#
#   tests/fuzz/run.sh BUILD_DIR [TARGET…]      e.g. tests/fuzz/run.sh build-fuzz bundle patch
#
# BUILD_DIR comes from: CC=clang cmake -S . -B build-fuzz -DFHIRSCHED_FUZZ=ON -DFHIRSCHED_ASAN=ON -DFHIRSCHED_TESTS=OFF
# TARGETs are names without the fuzz_ prefix (default: all of them).
#
# Each target runs for FUZZ_SECONDS (default 20) over a copy of tests/fuzz/corpus/<name>/ in a temporary directory
# (the seeds in the repository never change), with its dictionary from tests/fuzz/dict/. One line per target; exit
# status 1 when any target crashed, leaked, hit undefined behaviour, timed out on one input (FUZZ_INPUT_TIMEOUT,
# default 10 s) or could not run. The failing input is kept as BUILD_DIR/fuzz-artifacts/fuzz_<name>-crash-… (or
# -leak-, -timeout-, -oom-), with the log next to it. With FUZZ_REPORT=FILE, each finding is also appended to FILE:
# what it was, the frames of its report in our code, and the input in base64 (up to 4 KiB), so a CI log that only shows its
# end still says how to reproduce it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ALL_TARGETS="json_body search route bundle patch config sched jwt subscription er7 mllp hl7_map"

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
shift
targets=${*:-$ALL_TARGETS}
seconds=${FUZZ_SECONDS:-20}
input_timeout=${FUZZ_INPUT_TIMEOUT:-10}
# (libFuzzer reads -max_total_time=0 as "no limit")
for n in "$seconds" "$input_timeout"; do
    case "$n" in
        '' | *[!0-9]* | 0*) echo "run.sh: FUZZ_SECONDS and FUZZ_INPUT_TIMEOUT must be whole seconds, at least 1" >&2; exit 2 ;;
    esac
done

# Leaks are failures; UBSan stops at the first report (the build also uses -fno-sanitize-recover=undefined).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${LSAN_OPTIONS:-}" ] && [ -f "$root/tests/lsan.supp" ]; then
    export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fhirsched-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"

# The dictionary (tests/fuzz/dict/) a target's mutations draw words from.
dict_of() {
    case "$1" in
        json_body | bundle | patch | subscription) echo fhir_json ;;
        er7 | mllp | hl7_map) echo er7 ;;
        *) echo "$1" ;;
    esac
}

# The value of one of libFuzzer's -print_final_stats lines ("stat::name: value").
stat() {
    sed -n "s/^stat::$1:[[:space:]]*//p" "$2" | tail -n1
}

failures=0
for name in $targets; do
    bin=$build/fuzz_$name
    log=$work/$name.log
    if [ ! -x "$bin" ]; then
        printf 'FAIL  fuzz_%-10s no binary %s\n' "$name" "$bin"
        failures=$((failures + 1))
        continue
    fi
    corpus=$work/corpus/$name
    mkdir -p "$corpus"
    if [ -d "$root/tests/fuzz/corpus/$name" ]; then
        cp -R "$root/tests/fuzz/corpus/$name/." "$corpus/"
    fi
    seeds=$(find "$corpus" -type f | wc -l)
    dict=$root/tests/fuzz/dict/$(dict_of "$name").dict
    dict_arg=()
    [ ! -f "$dict" ] || dict_arg=(-dict="$dict")
    rc=0
    # timeout(1) only guards against a fuzzer that never stops; libFuzzer stops itself after -max_total_time.
    timeout --kill-after=10 $((seconds + input_timeout + 120)) \
        "$bin" -max_total_time="$seconds" -timeout="$input_timeout" -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict_arg[@]}" -artifact_prefix="$artifacts/fuzz_$name-" "$corpus" >"$log" 2>&1 || rc=$?
    runs=$(stat number_of_executed_units "$log")
    speed=$(stat average_exec_per_sec "$log")
    cov=$(grep -oE ' cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || true)
    inputs=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        printf 'PASS  fuzz_%-10s %s runs in %s s (%s exec/s), cov %s, corpus %s -> %s inputs\n' \
            "$name" "${runs:-?}" "$seconds" "${speed:-?}" "${cov:-?}" "$seeds" "$inputs"
        continue
    fi
    failures=$((failures + 1))
    kept=$artifacts/fuzz_$name-$(date +%Y%m%d-%H%M%S).log
    cp "$log" "$kept"
    what=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer: |==ERROR: ' "$log" || echo "exit status $rc")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    printf 'FAIL  fuzz_%-10s %s; input: %s; log: %s\n' "$name" "$what" "${artifact:-none}" "$kept"
    # the sanitizer's report (up to its SUMMARY line), for CI logs
    report=$(awk '/==[0-9]+==ERROR|runtime error:|ERROR: libFuzzer/ { p = 1 } p { print "      " $0 } p && /^SUMMARY:/ { exit }' "$log" |
        head -n 40)
    printf '%s\n' "$report" >&2
    if [ -n "${FUZZ_REPORT:-}" ]; then
        {
            printf 'fuzz_%s: %s\n' "$name" "$what"
            # our frames (a file of src/ or tests/), not those of the sanitizer, libFuzzer and libc around them
            printf '%s\n' "$report" | grep -E '^ +#[0-9]+ .* /[^ ]*/(src|tests)/[^ ]*\.c:[0-9]+' | head -n 8 || true
            if [ -n "$artifact" ] && [ -f "$artifact" ]; then
                size=$(wc -c <"$artifact")
                if [ "$size" -le 4096 ]; then
                    printf 'input, %s bytes, base64: %s\n' "$size" "$(base64 -w0 "$artifact")"
                else
                    printf 'input: %s bytes (too long to print), kept as %s\n' "$size" "$artifact"
                fi
            fi
        } >>"$FUZZ_REPORT"
    fi
done

[ "$failures" -eq 0 ]
