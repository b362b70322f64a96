#!/usr/bin/env bash
# `make demo` as a person runs it: scripts/demo.sh in the foreground starts PostgreSQL and the server and loads the demo
# clinic; SIGTERM stops the server and then the database; a second run keeps the data and does not load it again.
# Uses its own directory and ports, never var/demo.
#   tests/infra/check-demo.sh <fhirsched binary>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bin=${1:?usage: check-demo.sh <fhirsched binary>}

work=$(mktemp -d "$root/var/check-demo.XXXXXX")
demo_pid=

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port=$((40000 + RANDOM % 10000))
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

finish() {
    [ -n "$demo_pid" ] && kill -TERM "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
    scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap finish EXIT

fail() {
    echo "check-demo: $*" >&2
    echo "---- demo output ----" >&2
    cat "$work/demo.out" >&2 || true
    exit 1
}

pg_port=$(free_port)
http_port=$(free_port)
hl7_port=$(free_port)
base=http://127.0.0.1:$http_port

start_demo() {
    FHIRSCHED_DEMO_DIR=$work FHIRSCHED_DEMO_BIN=$bin FHIRSCHED_DEMO_PG_PORT=$pg_port \
        FHIRSCHED_LISTEN=127.0.0.1:$http_port FHIRSCHED_HL7_LISTEN=127.0.0.1:$hl7_port FHIRSCHED_THREADS=1 scripts/demo.sh >"$work/demo.out" 2>&1 &
    demo_pid=$!
    local i
    for i in $(seq 600); do
        grep -q "Try these" "$work/demo.out" 2>/dev/null && return 0
        kill -0 "$demo_pid" 2>/dev/null || fail "demo.sh exited during start-up"
        sleep 0.1
    done
    fail "demo.sh did not get ready within 60 s"
}

stop_demo() {
    kill -TERM "$demo_pid"
    local rc=0
    wait "$demo_pid" || rc=$?
    demo_pid=
    [ "$rc" -eq 0 ] || fail "demo.sh exited with status $rc after SIGTERM"
    grep -q "stopping fhirsched" "$work/demo.out" || fail "the server was not stopped"
    grep -q "stopping PostgreSQL" "$work/demo.out" || fail "PostgreSQL was not stopped"
    ! port_in_use "$http_port" || fail "the server still listens after SIGTERM"
    ! port_in_use "$pg_port" || fail "PostgreSQL still listens after SIGTERM"
    ! grep -qE "Sanitizer|runtime error:" "$work/fhirsched.log" || fail "sanitizer report in the server log"
}

start_demo
grep -q "loaded demo/clinic-bundle.json" "$work/demo.out" || fail "first run did not load the demo bundle"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$work/token.txt")" "$base/fhir/Location/clinic-north")" = 200 ] || fail "demo Location missing"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/fhir/Location/clinic-north")" = 401 ] || fail "the demo answered without a token"
status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $(cat "$work/token.txt")" -H 'Content-Type: application/fhir+json' \
    --data '{"resourceType":"Patient","id":"kept-between-runs","active":true}' "$base/fhir/Patient/kept-between-runs")
[ "$status" = 201 ] || fail "PUT Patient answered $status"
# the README's HL7 step: an SIU sent with mllp_send is acknowledged
ack=$(/usr/bin/mllp_send --loose -p "$hl7_port" -f conformance/hl7v2/mieweb-sample-SIU-S12-v23.hl7 127.0.0.1 | tr '\r' '\n')
grep -q '^MSA|AA|24916560' <<<"$ack" || fail "the demo's MLLP listener did not acknowledge the sample SIU: $ack"
stop_demo

start_demo
grep -q "demo data already loaded" "$work/demo.out" || fail "second run loaded the demo data again"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$work/token.txt")" "$base/fhir/Patient/kept-between-runs")" = 200 ] || fail "data was not kept between runs"
stop_demo
echo "check-demo: demo starts, loads once, stops server then database, keeps data between runs"
