#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for Nimbus' tests.
#
#   scripts/pg-test.sh start   # init (fresh) + start, prints the URL
#   scripts/pg-test.sh url     # prints the URL of the running cluster
#   scripts/pg-test.sh status  # exit 0 if running
#   scripts/pg-test.sh stop    # stop and delete the cluster (idempotent)
#
# The cluster lives in $NIMBUS_PG_DIR (default /tmp/nimbus-pg-test), listens
# only on 127.0.0.1 (TCP) plus a Unix socket inside that directory, on the
# first free port from $NIMBUS_PG_PORT (default 55432). It runs as the
# `postgres` OS user when invoked as root (initdb refuses to run as root),
# otherwise as the invoking user. Database `nimbus_test`, owner `nimbus`,
# password `nimbus` (scram-sha-256 over TCP).
set -euo pipefail

DIR="${NIMBUS_PG_DIR:-/tmp/nimbus-pg-test}"
BASE_PORT="${NIMBUS_PG_PORT:-55432}"
DB_USER="nimbus"
DB_PASS="nimbus"
DB_NAME="nimbus_test"

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then echo /usr/lib/postgresql/15/bin; return; fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    if [[ -n "$d" && -x "$d/pg_ctl" ]]; then echo "$d"; return; fi
    echo "pg-test: no PostgreSQL server binaries found (apt-get install postgresql)" >&2
    exit 1
}
PG_BIN="$(find_pg_bin)"

# Run a command as the cluster's OS user.
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "pg-test: running as root but there is no 'postgres' OS user" >&2
            exit 1
        fi
        # runuser needs no PAM session/password and keeps no tty requirement.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

port_in_use() {
    # Something listening on 127.0.0.1:$1?
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

is_running() {
    [[ -f "$DIR/data/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

url() {
    local port
    port="$(cat "$DIR/port")"
    echo "postgres://$DB_USER:$DB_PASS@127.0.0.1:$port/$DB_NAME"
}

stop() {
    if is_running; then
        as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1 \
            || true
    fi
    rm -rf "$DIR"
}

start() {
    if is_running; then
        url
        return
    fi
    # Leftovers from a crashed run: wipe them.
    stop

    local port="$BASE_PORT" tries=0
    while port_in_use "$port"; do
        port=$((port + 1)); tries=$((tries + 1))
        if (( tries > 100 )); then echo "pg-test: no free port from $BASE_PORT" >&2; exit 1; fi
    done

    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    echo "$port" >"$DIR/port"
    local pwfile="$DIR/pwfile"
    echo "$DB_PASS" >"$pwfile"
    if [[ "$(id -u)" == 0 ]]; then chown -R postgres: "$DIR"; fi

    # The bootstrap superuser is `nimbus` itself: simplest way to give it a
    # password without a second round-trip. Local (socket) = trust, TCP = scram.
    as_pg "$PG_BIN/initdb" -D "$DIR/data" -U "$DB_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"

    cat >>"$DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 500
shared_buffers = 64MB
EOF
    if ! as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null; then
        echo "pg-test: server failed to start; log follows" >&2
        cat "$DIR/server.log" >&2 || true
        exit 1
    fi
    as_pg "$PG_BIN/psql" -X -q -h "$DIR" -p "$port" -U "$DB_USER" -d postgres \
        -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
    url
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url)
        if is_running; then url; else echo "pg-test: not running" >&2; exit 1; fi ;;
    status)
        if is_running; then echo "running: $(url)"; else echo "not running"; exit 1; fi ;;
    *)
        echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac
