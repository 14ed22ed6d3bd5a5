# shellcheck shell=bash
# Sourced by test.sh: a throwaway PostgreSQL cluster for the tests, run as the `postgres` user,
# listening on 127.0.0.1 only, on a free port, with password (SCRAM) authentication.
# The password is random per run and only ever travels in QCNN_TEST_DATABASE_URL; it is never printed.

# initdb and postgres refuse to run as root, hence the `postgres` user when we are root.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_loopback_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the cluster and exports QCNN_TEST_DATABASE_URL. Call test_postgres_stop when done.
test_postgres_start() {
    QCNN_PG_DIR="$(mktemp -d /tmp/qcnn-test-pg.XXXXXX)"
    local password port
    password="$(openssl rand -hex 16)"
    port="$(free_loopback_port)"
    (umask 077 && printf '%s\n' "$password" >"$QCNN_PG_DIR/pwfile")
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$QCNN_PG_DIR"
    as_postgres initdb --pgdata="$QCNN_PG_DIR/data" --username=postgres --pwfile="$QCNN_PG_DIR/pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --no-instructions >"$QCNN_PG_DIR/initdb.log"
    rm -f "$QCNN_PG_DIR/pwfile"
    as_postgres pg_ctl --pgdata="$QCNN_PG_DIR/data" --log="$QCNN_PG_DIR/server.log" --wait --silent \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $QCNN_PG_DIR" start
    export QCNN_TEST_DATABASE_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
    log "postgres: test server ($(postgres --version)) on 127.0.0.1:$port (data in $QCNN_PG_DIR)"
}

test_postgres_stop() {
    [ -n "${QCNN_PG_DIR:-}" ] || return 0
    as_postgres pg_ctl --pgdata="$QCNN_PG_DIR/data" --mode=fast --wait --silent stop || true
    rm -rf "$QCNN_PG_DIR"
    unset QCNN_PG_DIR QCNN_TEST_DATABASE_URL
}
