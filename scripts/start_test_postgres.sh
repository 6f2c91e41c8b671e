#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the review-store tests and print the URL to export.
#
#   eval "$(scripts/start_test_postgres.sh)"      # sets BLOODCELL_TEST_PG_URL
#   python3 -m pytest -q tests/test_review_store.py tests/test_review_concurrency.py
#
# The cluster lives in a new temporary folder (or $1), listens on 127.0.0.1 only, on a free
# port (or $PG_PORT), with a random password.  Server binaries: $PG_BIN, else the newest
# /usr/lib/postgresql/*/bin (Debian/Ubuntu "postgresql" package).  PostgreSQL refuses to run
# as root, so under root the cluster is owned and run by the "postgres" system user.
# Only the export line goes to stdout; progress and the stop command go to stderr.
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "error: PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)" >&2
    exit 2
fi

CLUSTER_DIR=${1:-$(mktemp -d "${TMPDIR:-/tmp}/bloodcell-pg.XXXXXX")}
mkdir -p "$CLUSTER_DIR"
PORT=${PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
DB_USER=bloodcell
DB_NAME=bloodcell_test

run_as_owner=()
if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        echo "error: running as root but there is no 'postgres' user to run the server as" >&2
        exit 2
    fi
    chown postgres: "$CLUSTER_DIR"
    run_as_owner=(runuser -u postgres --)
fi

PWFILE="$CLUSTER_DIR/pwfile"
printf '%s\n' "$PASSWORD" > "$PWFILE"
chmod 600 "$PWFILE"
[ ${#run_as_owner[@]} -eq 0 ] || chown postgres: "$PWFILE"

"${run_as_owner[@]}" "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -U "$DB_USER" --pwfile="$PWFILE" \
    --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 \
    || { echo "error: initdb failed, see $CLUSTER_DIR/initdb.log" >&2; exit 2; }
rm -f "$PWFILE"

"${run_as_owner[@]}" "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$CLUSTER_DIR'" start >&2 \
    || { echo "error: PostgreSQL did not start, see $CLUSTER_DIR/server.log" >&2; exit 2; }

PGPASSWORD="$PASSWORD" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" "$DB_NAME"

echo "PostgreSQL running on 127.0.0.1:$PORT (data in $CLUSTER_DIR/data). Stop it with:" >&2
echo "  ${run_as_owner[*]} $PG_BIN/pg_ctl -D $CLUSTER_DIR/data stop -m fast" >&2
echo "export BLOODCELL_TEST_PG_URL=postgresql+psycopg://$DB_USER:$PASSWORD@127.0.0.1:$PORT/$DB_NAME"
