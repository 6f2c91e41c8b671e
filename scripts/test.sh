#!/usr/bin/env bash
# Install everything the tests need and run every test (the README's test command; CI runs it too).
#   - Debian packages: chromium (real-browser test) and postgresql (review store on PostgreSQL)
#   - Python packages: requirements-dev.txt
#   - a throwaway PostgreSQL server on 127.0.0.1 for the store tests
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium postgresql >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r requirements-dev.txt

pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/bloodcell-pg.XXXXXX")
eval "$(scripts/start_test_postgres.sh "$pg_dir")"
stop_postgres() {
    local owner=()
    if [ "$(id -u)" = 0 ]; then owner=(runuser -u postgres --); fi
    "${owner[@]}" "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" -D "$pg_dir/data" stop -m fast >/dev/null 2>&1 || true
}
trap stop_postgres EXIT

python3 -m pytest -q "$@"
