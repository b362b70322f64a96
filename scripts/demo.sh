#!/usr/bin/env bash
# The demo behind `make demo`: a private PostgreSQL in var/demo/pg, the
# fhirsched server in the background, the demo clinic loaded once, then wait
# until Ctrl-C / SIGTERM. Data stays in var/demo between runs (`make
# demo-reset` removes it).
#
# Environment:
#   FHIRSCHED_DEMO_PG_PORT  PostgreSQL port (default 5433)
#   FHIRSCHED_LISTEN        server address host:port (default 127.0.0.1:8080)
#   FHIRSCHED_THREADS       passed through to the server
#   FHIRSCHED_DEMO_DIR      where the database and log live (default var/demo)
#   FHIRSCHED_DEMO_BIN      the fhirsched binary (default build/fhirsched)
#   FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST  rest-hook endpoints allowed (default http://127.0.0.1:9000/)
#   FHIRSCHED_HL7_LISTEN    MLLP listener for HL7 v2 (default 127.0.0.1:2575)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

DEMO_DIR=${FHIRSCHED_DEMO_DIR:-var/demo}
PG_DIR=$DEMO_DIR/pg
PG_PORT=${FHIRSCHED_DEMO_PG_PORT:-5433}
BIN=${FHIRSCHED_DEMO_BIN:-$root/build/fhirsched}
BUNDLE=demo/clinic-bundle.json
LOG=$DEMO_DIR/fhirsched.log
# Any id from the bundle: if it reads back, the bundle was loaded before.
PROBE=Location/clinic-north
READY_TIMEOUT=30
STOP_TIMEOUT=30

# The demo always uses its own database, whatever the caller's environment says.
export FHIRSCHED_DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/fhirsched"
export FHIRSCHED_LISTEN=${FHIRSCHED_LISTEN:-127.0.0.1:8080}

listen_host=${FHIRSCHED_LISTEN%:*}
listen_port=${FHIRSCHED_LISTEN##*:}
case "$listen_host" in
    "" | "0.0.0.0" | "*" | "[::]") listen_host=127.0.0.1 ;;
esac
BASE="http://$listen_host:$listen_port"

# Authorization stays on in the demo: a development key under $DEMO_DIR signs the tokens (`fhirsched token`, never for
# production), and the server trusts it as if it were the clinic's identity provider.
DEV_KEY=$DEMO_DIR/dev-key.pem
export FHIRSCHED_AUTH_ENABLED=true
export FHIRSCHED_AUTH_ISSUER=${FHIRSCHED_AUTH_ISSUER:-urn:fhirsched:demo-issuer}
export FHIRSCHED_AUTH_AUDIENCE="$BASE/fhir"
export FHIRSCHED_AUTH_JWKS_FILE=$DEMO_DIR/dev-jwks.json
unset FHIRSCHED_AUTH_JWKS_URL
# rest-hook Subscriptions of the README tour may call a receiver on this machine's port 9000
export FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST=${FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST:-http://127.0.0.1:9000/}
export FHIRSCHED_HL7_LISTEN=${FHIRSCHED_HL7_LISTEN:-127.0.0.1:2575}
TOKEN=

server_pid=
pg_started=0

die() {
    echo "demo: $*" >&2
    exit 1
}

port_in_use() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Stops the server first (it finishes in-flight requests on SIGTERM), then
# PostgreSQL. Runs once, on any exit; neither a second Ctrl-C nor a closed
# terminal or pipe (`make demo | tee`, whose tee Ctrl-C kills too) may cut it
# short, so errors no longer stop the script here.
# shellcheck disable=SC2317 # called from traps
cleanup() {
    trap '' INT TERM PIPE
    trap - EXIT
    set +e
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        echo "demo: stopping fhirsched (pid $server_pid)"
        kill -TERM "$server_pid" 2>/dev/null || true
        local waited=0
        while kill -0 "$server_pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            echo "demo: fhirsched did not stop within ${STOP_TIMEOUT}s, killing it" >&2
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$pg_started" = 1 ]; then
        echo "demo: stopping PostgreSQL"
        scripts/pg.sh stop "$PG_DIR"
    fi
}

show_server_log() {
    echo "---- last lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2 || true
    echo "----" >&2
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $TOKEN" "$1" || true
}

# The development key (made once), its public JWKS for the server, and tokens to try things with.
make_dev_tokens() {
    [ -f "$DEV_KEY" ] || "$BIN" token --new-key "$DEV_KEY" || die "cannot create the development key"
    "$BIN" token --key "$DEV_KEY" --jwks >"$FHIRSCHED_AUTH_JWKS_FILE" || die "cannot write the development JWKS"
    TOKEN=$("$BIN" token --key "$DEV_KEY" --sub demo-admin --client-id demo-cli --scope 'system/*.* openid' \
        --role system-admin --ttl 86400) || die "cannot mint the development token"
    printf '%s\n' "$TOKEN" >"$DEMO_DIR/token.txt"
    "$BIN" token --key "$DEV_KEY" --sub sanne --client-id demo-portal --scope 'patient/*.read patient/Appointment.write' \
        --patient pat-sanne-bakker --ttl 86400 >"$DEMO_DIR/patient-token.txt" || die "cannot mint the patient token"
    "$BIN" token --key "$DEV_KEY" --sub frontdesk --client-id demo-frontdesk --scope 'user/*.*' --role receptionist \
        --locations Location/clinic-north --ttl 86400 >"$DEMO_DIR/receptionist-token.txt" || die "cannot mint the receptionist token"
}

# A cluster that was already running belongs to someone else (another
# demo, a session in another terminal): use it, but leave it running at exit.
start_database() {
    local out
    out=$(scripts/pg.sh start "$PG_DIR" "$PG_PORT")
    echo "$out"
    case "$out" in
        *"already running"*) ;;
        *) pg_started=1 ;;
    esac
    scripts/pg.sh createdb "$PG_DIR" "$PG_PORT" fhirsched
    "$BIN" migrate || die "fhirsched migrate failed"
}

# Refuse before touching anything rather than have the server fail to bind
# (or, worse, have curl talk to an older demo still running elsewhere).
check_listen_port_free() {
    if port_in_use "$listen_host" "$listen_port"; then
        die "something already listens on $listen_host:$listen_port (another demo?). Set FHIRSCHED_LISTEN to use another address."
    fi
}

start_server() {
    # Its own session: Ctrl-C reaches only this script, which then stops the server and the database in that order.
    setsid "$BIN" serve >"$LOG" 2>&1 &
    server_pid=$!

    local deadline=$((SECONDS + READY_TIMEOUT)) status
    while :; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            show_server_log
            server_pid=
            die "fhirsched exited during start-up"
        fi
        status=$(http_status "$BASE/readyz")
        [ "$status" = 200 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            show_server_log
            die "$BASE/readyz did not answer 200 within ${READY_TIMEOUT}s (last status: $status)"
        fi
        sleep 0.2
    done
    echo "demo: fhirsched is ready at $BASE (pid $server_pid, log $LOG)"
}

load_demo_data() {
    local status body
    status=$(http_status "$BASE/fhir/$PROBE")
    case "$status" in
        200)
            echo "demo: demo data already loaded"
            return 0
            ;;
        404 | 410) ;;
        *) die "GET $BASE/fhir/$PROBE answered $status, expected 200 or 404" ;;
    esac

    body=$(mktemp)
    status=$(curl -sS -o "$body" -w '%{http_code}' --max-time 60 -X POST -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/fhir+json' -H 'Accept: application/fhir+json' \
        --data-binary "@$BUNDLE" "$BASE/fhir" || true)
    if [ "$status" != 200 ]; then
        echo "demo: loading $BUNDLE failed: POST $BASE/fhir answered $status:" >&2
        head -c 4000 "$body" >&2 || true
        echo >&2
        rm -f "$body"
        show_server_log
        exit 1
    fi
    rm -f "$body"
    echo "demo: loaded $BUNDLE (see demo/README.md for what is in it)"
}

print_try_these() {
    cat <<EOF

Development tokens (signed by $DEV_KEY, valid 24 h; NOT for production):
  system-admin:                $DEMO_DIR/token.txt
  receptionist (clinic-north): $DEMO_DIR/receptionist-token.txt
  patient pat-sanne-bakker:    $DEMO_DIR/patient-token.txt

Try these:
  TOKEN=\$(cat $DEMO_DIR/token.txt)
  curl -s $BASE/readyz
  curl -s $BASE/fhir/metadata
  curl -s $BASE/fhir/.well-known/smart-configuration
  curl -s -H "Authorization: Bearer \$TOKEN" $BASE/fhir/Location/clinic-north
  curl -s -H "Authorization: Bearer \$TOKEN" '$BASE/fhir/Location?partof=Location/clinic-north'
  curl -s -H "Authorization: Bearer \$TOKEN" '$BASE/fhir/PractitionerRole?practitioner=Practitioner/dr-eva-de-jong'
  curl -s -H "Authorization: Bearer \$TOKEN" '$BASE/fhir/Schedule?actor=Location/room-north-ultrasound'
  curl -s -H "Authorization: Bearer \$TOKEN" $BASE/fhir/Patient/pat-sanne-bakker
  curl -s -H "Authorization: Bearer \$TOKEN" '$BASE/fhir/AuditEvent?_sort=-date&_count=5'

Server log:  tail -f $LOG
Database:    scripts/pg.sh psql $PG_DIR $PG_PORT -d fhirsched
Stop:        Ctrl-C (data is kept; \`make demo-reset\` removes it)
EOF
}

main() {
    [ -x "$BIN" ] || die "$BIN not found: run \`make build\` (or \`make demo\`)"
    mkdir -p "$DEMO_DIR"
    trap cleanup EXIT
    trap 'cleanup; exit 0' INT TERM

    check_listen_port_free
    make_dev_tokens
    start_database
    start_server
    load_demo_data
    print_try_these

    # wait returns early when a trapped signal arrives; the trap then cleans up.
    local rc=0
    wait "$server_pid" || rc=$?
    server_pid=
    show_server_log
    die "fhirsched exited on its own (status $rc)"
}

main "$@"
