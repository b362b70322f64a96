#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the demo and the tests: its own data
# directory, loopback TCP only, trust auth for the superuser "postgres".
#
#   scripts/pg.sh start    <datadir> <port>     initdb if needed, start (idempotent)
#   scripts/pg.sh stop     <datadir>            fast shutdown; fine if not running
#   scripts/pg.sh psql     <datadir> <port> [psql args...]
#   scripts/pg.sh createdb <datadir> <port> <name> [template]   create if missing
#
# DSN of a database in it: postgresql://postgres@127.0.0.1:<port>/<db>
# initdb, pg_ctl and postgres refuse to run as root: as root, the data
# directory is handed to the "postgres" user and they run as that user.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Runs a server-side command as the cluster's owner. From "/" so that a
# working directory postgres cannot enter (say /root/...) causes no warnings.
as_owner() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

check_port() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1024 ] || [ "$1" -gt 65535 ]; then
        die "bad port: '$1' (want 1024-65535)"
    fi
}

absolute_dir() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}

pg_running() {
    [ -f "$1/PG_VERSION" ] && as_owner "$PG_BINDIR/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# Root only: the data directory must belong to postgres, and postgres must be
# able to traverse every directory above it (a clone under /root is 0700).
prepare_dir_for_postgres() {
    local dir=$1 d
    mkdir -p "$dir"
    if [ "$(stat -c %U "$dir")" != postgres ]; then
        chown -R postgres:postgres "$dir"
    fi
    chmod 0700 "$dir"
    if ! runuser -u postgres -- test -x "$dir"; then
        d=$(dirname "$dir")
        while [ "$d" != / ]; do
            runuser -u postgres -- test -x "$d" || chmod o+x "$d"
            d=$(dirname "$d")
        done
    fi
}

init_cluster() {
    local dir=$1
    [ -x "$PG_BINDIR/initdb" ] || die "$PG_BINDIR/initdb not found: run scripts/deps.sh (package postgresql-15)"
    local out
    # initdb is chatty on success; show what it said only when it failed.
    out=$(as_owner "$PG_BINDIR/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 2>&1) ||
        { printf '%s\n' "$out" >&2; die "initdb failed in $dir"; }
    # Our settings live in a file of their own, rewritten at every start.
    echo "include_if_exists = 'fhirsched.conf'" | as_owner tee -a "$dir/postgresql.conf" >/dev/null
}

# Loopback TCP plus a socket inside the data directory, so clusters never
# collide with a system PostgreSQL. A socket path longer than sun_path (108
# bytes) cannot be bound: then TCP only, which is what every DSN uses anyway.
write_settings() {
    local dir=$1 port=$2 socket_dir=$1
    if [ $((${#dir} + ${#port} + 10)) -ge 108 ]; then
        echo "pg.sh: path too long for a unix socket, TCP only: $dir" >&2
        socket_dir=
    fi
    as_owner tee "$dir/fhirsched.conf" >/dev/null <<EOF
# Written by scripts/pg.sh at every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${socket_dir//\'/\'\'}'
shared_buffers = 128MB
max_connections = 200
EOF
}

cmd_start() {
    [ "$#" -eq 2 ] || usage
    local dir port=$2 running_port
    dir=$(absolute_dir "$1")
    check_port "$port"

    if pg_running "$dir"; then
        # Line 4 of postmaster.pid is the port it listens on.
        running_port=$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null || true)
        [ "$running_port" = "$port" ] || die "$dir is already running on port $running_port, not $port"
        echo "postgres: already running on 127.0.0.1:$port ($dir)"
        return 0
    fi

    if is_root; then
        prepare_dir_for_postgres "$dir"
    else
        mkdir -p "$dir"
    fi
    [ -f "$dir/PG_VERSION" ] || init_cluster "$dir"
    write_settings "$dir" "$port"

    # glibc's allocator, as every backend inherits it from the postmaster. By default glibc hands heap above 128 KB
    # back to the kernel when a statement frees it and maps it again in the next; each return flushes TLBs by
    # inter-processor interrupt, dear on virtual machines. Measured with POST /Appointment at 32 connections: 2.4-4.8 ms
    # of PostgreSQL CPU a write with the defaults, 1.3-2.0 with these, for about 0.4 MB more per backend
    # (docs/performance.md, "PostgreSQL's allocator"). A value set by the caller wins.
    export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-4194304}
    export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-8388608}

    if ! as_owner "$PG_BINDIR/pg_ctl" start -D "$dir" -l "$dir/postgres.log" -w -t 60 -s; then
        tail -n 20 "$dir/postgres.log" >&2 || true
        die "could not start PostgreSQL in $dir on port $port (log: $dir/postgres.log)"
    fi
    echo "postgres: started on 127.0.0.1:$port ($dir)"
}

cmd_stop() {
    [ "$#" -eq 1 ] || usage
    local dir
    dir=$(absolute_dir "$1")
    pg_running "$dir" || return 0
    as_owner "$PG_BINDIR/pg_ctl" stop -D "$dir" -m fast -w -t 60 -s
}

# A client over TCP needs no particular OS user. Later arguments win, so a
# caller's -d or -c still applies; ON_ERROR_STOP makes scripts fail loudly.
cmd_psql() {
    [ "$#" -ge 2 ] || usage
    local port=$2
    check_port "$port"
    shift 2
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres \
        "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 "$@"
}

cmd_createdb() {
    [ "$#" -eq 3 ] || [ "$#" -eq 4 ] || usage
    local dir=$1 port=$2 name=$3 template=${4:-} exists
    # psql variables quote the names, so any name is safe to pass.
    exists=$(cmd_psql "$dir" "$port" -tA -v name="$name" <<<"SELECT 1 FROM pg_database WHERE datname = :'name';")
    [ "$exists" = 1 ] && return 0
    if [ -n "$template" ]; then
        cmd_psql "$dir" "$port" -q -v name="$name" -v template="$template" <<<'CREATE DATABASE :"name" TEMPLATE :"template";'
    else
        cmd_psql "$dir" "$port" -q -v name="$name" <<<'CREATE DATABASE :"name";'
    fi
    echo "postgres: created database $name"
}

main() {
    [ "$#" -ge 1 ] || usage
    local cmd=$1
    shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        psql) cmd_psql "$@" ;;
        createdb) cmd_createdb "$@" ;;
        *) usage ;;
    esac
}

main "$@"
