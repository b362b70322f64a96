#!/usr/bin/env bash
# The whole test run behind `make test` (and so CI): the ASan build, the unit
# tests, then a throwaway PostgreSQL cluster with a migrated template database
# for the infra checks and the Node suites (tests/integration, tests/conformance).
#
# The Node suites get, in their environment:
#   FHIRSCHED_BIN               absolute path of build-asan/fhirsched
#   FHIRSCHED_TEST_PG_PORT      port of the throwaway cluster (127.0.0.1)
#   FHIRSCHED_TEST_PG_DIR       its data directory (for scripts/pg.sh)
#   FHIRSCHED_TEST_TEMPLATE_DB  fhirsched_template: migrated, copy it with
#                               scripts/pg.sh createdb DIR PORT NAME fhirsched_template
#   FHIRSCHED_SOURCE_DIR        the repository root
#   ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS (suppressions: tests/lsan.supp)
# The last line printed is "N passed, N failed", counting suites.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

BIN=$root/build-asan/fhirsched
TEMPLATE_DB=fhirsched_template
BUNDLE=demo/clinic-bundle.json

# Servers spawned by the suites run without authorization unless a suite sets it up (tests/lib/auth.mjs).
export FHIRSCHED_AUTH_ENABLED=false
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks inside libraries we cannot fix (h2o's per-thread caches) are listed there.
if [ -f "$root/tests/lsan.supp" ]; then
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}
fi

passed=0
failed=0
summary=()
run_dir=
pg_dir=
pg_port=

record() {
    local name=$1 rc=$2 note=${3:-}
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        summary+=("PASS  $name${note:+  ($note)}")
    else
        failed=$((failed + 1))
        summary+=("FAIL  $name${note:+  ($note)}")
    fi
}

# Runs one suite in a subshell with errexit in force, records the outcome
# and leaves its status in $suite_rc. Call it as a plain command, never under
# `if`, `||` or `&&`: bash then ignores -e inside, even in the subshell.
suite_rc=0
# A suite may append lines for the summary to the file $SUITE_NOTES (the fuzz
# smoke writes each finding there): CI logs are often read from their end.
run_suite() {
    local name=$1 notes line
    shift
    echo
    echo "==> $name"
    notes=$(mktemp "${TMPDIR:-/tmp}/fhirsched-suite-notes.XXXXXX")
    set +e
    (
        set -e
        export SUITE_NOTES=$notes
        "$@"
    )
    suite_rc=$?
    set -e
    record "$name" "$suite_rc"
    while IFS= read -r line; do
        summary+=("      $line")
    done <"$notes"
    rm -f "$notes"
}

print_summary() {
    echo
    echo "==> summary"
    local line
    for line in "${summary[@]}"; do
        echo "  $line"
    done
    echo "$passed passed, $failed failed"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free loopback port from 55000 up, started at a random point so that two
# runs at the same time rarely race for the same one.
free_port() {
    local port=$((55000 + RANDOM % 2000)) tries=0
    while port_in_use "$port"; do
        port=$((port + 1))
        tries=$((tries + 1))
        [ "$tries" -lt 500 ] || { echo "test.sh: no free port found" >&2; return 1; }
    done
    echo "$port"
}

cleanup() {
    if [ -n "$run_dir" ]; then
        scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$run_dir"
    fi
}

# Runs of test.sh that died without their EXIT trap (kill -9, lost machine)
# leave a directory behind, maybe with a cluster still running: stop and
# remove those whose owner is gone. Live runs in the same tree are left alone.
remove_stale_runs() {
    local dir owner
    for dir in var/test/run.*; do
        [ -d "$dir" ] || continue
        owner=$(cat "$dir/owner.pid" 2>/dev/null || true)
        if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then
            continue
        fi
        scripts/pg.sh stop "$dir/pg" >/dev/null 2>&1 || true
        rm -rf "$dir"
    done
}

suite_build() {
    make --no-print-directory build-asan
    [ -x "$BIN" ] || { echo "test.sh: the build produced no $BIN" >&2; return 1; }
}

suite_unit() {
    ctest --test-dir build-asan --output-on-failure -L unit
}

# The libFuzzer smoke run (tests/fuzz/README.md) needs clang and its libFuzzer runtime.
fuzz_available() {
    command -v clang >/dev/null 2>&1 || return 1
    local probe rc=0
    probe=$(mktemp -d) || return 1
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$probe/probe.c"
    clang -fsanitize=fuzzer "$probe/probe.c" -o "$probe/probe" >/dev/null 2>&1 || rc=1
    rm -rf "$probe"
    return "$rc"
}

# Every fuzz target for FUZZ_SECONDS (15) over its seeds: about 2 minutes with the build.
suite_fuzz() {
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DFHIRSCHED_FUZZ=ON -DFHIRSCHED_ASAN=ON -DFHIRSCHED_TESTS=OFF >/dev/null
    cmake --build build-fuzz --parallel "$(nproc 2>/dev/null || echo 2)" >/dev/null
    FUZZ_REPORT=$SUITE_NOTES FUZZ_SECONDS=${FUZZ_SECONDS:-15} tests/fuzz/run.sh build-fuzz
}

suite_shell_syntax() {
    local f
    for f in scripts/*.sh tests/infra/*.sh .ci/run; do
        [ -f "$f" ] || continue
        bash -n "$f"
    done
}

# The throwaway cluster and the migrated template every suite copies.
suite_database() {
    [ -n "$pg_port" ] || return 1
    scripts/pg.sh start "$pg_dir" "$pg_port"
    scripts/pg.sh createdb "$pg_dir" "$pg_port" "$TEMPLATE_DB"
    FHIRSCHED_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/$TEMPLATE_DB" "$BIN" migrate
}

# The demo bundle must load through the real server (make demo depends on
# it), twice, since PUT entries make it idempotent; the server must then stop
# cleanly on SIGTERM, with no sanitizer report. Runs in run_suite's subshell:
# its EXIT trap ends the server if a step fails.
suite_demo_bundle() {
    local db=fhirsched_demo_check out=$run_dir/demo-check.out http_port base status attempt stop_rc=0
    # Not local: the EXIT trap runs after this function has returned.
    demo_log=$run_dir/demo-check.log
    scripts/pg.sh createdb "$pg_dir" "$pg_port" "$db" "$TEMPLATE_DB"
    http_port=$(free_port)
    base="http://127.0.0.1:$http_port"
    FHIRSCHED_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/$db" \
        FHIRSCHED_LISTEN="127.0.0.1:$http_port" FHIRSCHED_THREADS=1 \
        "$BIN" serve >"$demo_log" 2>&1 &
    demo_pid=$!
    trap 'kill -KILL "$demo_pid" 2>/dev/null || true; tail -n 60 "$demo_log" >&2' EXIT

    local deadline=$((SECONDS + 30))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz" || true)" = 200 ]; do
        if ! kill -0 "$demo_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "demo-bundle: the server never answered 200 on $base/readyz" >&2
            return 1
        fi
        sleep 0.2
    done
    for attempt in 1 2; do
        status=$(curl -sS -o "$out" -w '%{http_code}' --max-time 60 -X POST \
            -H 'Content-Type: application/fhir+json' --data-binary "@$BUNDLE" "$base/fhir" || true)
        if [ "$status" != 200 ]; then
            echo "demo-bundle: POST $BUNDLE (attempt $attempt) answered $status, expected 200:" >&2
            head -c 4000 "$out" >&2 || true
            echo >&2
            return 1
        fi
    done
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base/fhir/Location/clinic-north" || true)
    [ "$status" = 200 ] || { echo "demo-bundle: GET Location/clinic-north answered $status" >&2; return 1; }

    kill -TERM "$demo_pid"
    wait "$demo_pid" || stop_rc=$?
    trap - EXIT
    if [ "$stop_rc" -ne 0 ]; then
        echo "demo-bundle: the server exited with status $stop_rc after SIGTERM" >&2
        tail -n 60 "$demo_log" >&2
        return 1
    fi
}

# node --test gained --test-concurrency in 20.10; Debian's own Node is 18.
node_concurrency_flag() {
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)' && echo --test-concurrency=2
}

suite_node() {
    export FHIRSCHED_BIN=$BIN
    export FHIRSCHED_TEST_PG_PORT=$pg_port
    export FHIRSCHED_TEST_PG_DIR=$pg_dir
    export FHIRSCHED_TEST_TEMPLATE_DB=$TEMPLATE_DB
    export FHIRSCHED_SOURCE_DIR=$root
    # shellcheck disable=SC2046 # the flag is one word or nothing
    node --test $(node_concurrency_flag || true) "$@"
}

node_test_dirs() {
    local dir
    for dir in tests/integration tests/conformance; do
        if [ -n "$(find "$dir" -name '*.test.mjs' -print -quit 2>/dev/null)" ]; then
            echo "$dir/"
        fi
    done
}

main() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    run_suite "build (build-asan)" suite_build
    if [ "$suite_rc" -ne 0 ]; then
        echo "test.sh: the ASan build failed; nothing else can run" >&2
        print_summary
        exit 1
    fi
    run_suite "unit (ctest -L unit)" suite_unit
    if fuzz_available; then
        run_suite "fuzz smoke (tests/fuzz/run.sh build-fuzz)" suite_fuzz
    else
        echo
        echo "==> fuzz smoke: skipped, no clang with libFuzzer (scripts/deps.sh installs them)"
    fi
    run_suite "infra: shell syntax" suite_shell_syntax

    # Set here, not in a suite: suites run in subshells, and cleanup needs these.
    mkdir -p var/test
    remove_stale_runs
    run_dir=$(mktemp -d "$root/var/test/run.XXXXXX")
    echo "$$" >"$run_dir/owner.pid"
    pg_dir=$run_dir/pg
    pg_port=$(free_port) || pg_port=

    run_suite "infra: postgres cluster + migrated $TEMPLATE_DB" suite_database
    local db_ok=$suite_rc

    local -a node_dirs
    mapfile -t node_dirs < <(node_test_dirs)
    if [ "$db_ok" -ne 0 ]; then
        record "infra: demo bundle loads" 1 "not run: no database"
        [ "${#node_dirs[@]}" -eq 0 ] || record "node: ${node_dirs[*]}" 1 "not run: no database"
    else
        run_suite "infra: demo bundle loads" suite_demo_bundle
        run_suite "infra: make demo starts, stops and keeps its data" tests/infra/check-demo.sh "$BIN"
        if [ "${#node_dirs[@]}" -gt 0 ]; then
            run_suite "node: ${node_dirs[*]}" suite_node "${node_dirs[@]}"
        else
            echo
            echo "==> node: no *.test.mjs in tests/integration or tests/conformance yet"
        fi
    fi

    print_summary
    [ "$failed" -eq 0 ]
}

main "$@"
