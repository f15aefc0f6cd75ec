#!/usr/bin/env bash
# The main job, end to end, on this machine: starts a throwaway PostgreSQL
# cluster with sample data, starts berkutd on it with a freshly generated key,
# takes a backup with a live progress bar, and lists it. Everything lives in a
# temporary directory that is removed at the end (KEEP=1 keeps it, and the
# daemon and cluster running, for a look around).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

scripts/ensure-deps.sh
echo "== building berkutd and berkutctl"
cargo build --quiet --bins
bin="$repo/target/debug"

pg_bin=${BERKUT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
work=$(mktemp -d /tmp/berkut-demo-XXXXXX)
chmod 755 "$work"
daemon_pid=""

as_pg() {
    # initdb refuses to run as root; the cluster belongs to postgres then.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: leaving the daemon (pid $daemon_pid) and the cluster running in $work"
        return
    fi
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" -D "$work/pgdata" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "starting a throwaway PostgreSQL cluster in $work"
mkdir -p "$work/pgdata" "$work/pgsock"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pgdata" "$work/pgsock"
(cd / && as_pg "$pg_bin/initdb" -D "$work/pgdata" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null)
(cd / && as_pg "$pg_bin/pg_ctl" -D "$work/pgdata" -l "$work/pgdata/server.log" -w \
    -o "-c listen_addresses='' -k $work/pgsock -c port=5432" start >/dev/null)
psql=("$pg_bin/psql" -X -q -h "$work/pgsock" -U postgres)

step "loading sample data: a small shop"
"${psql[@]}" -c "CREATE DATABASE shop"
"${psql[@]}" -d shop -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE, city text);
CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers, placed_at timestamptz NOT NULL, note jsonb);
CREATE TABLE order_items (order_id bigint REFERENCES orders, product_id int REFERENCES products, qty int NOT NULL, PRIMARY KEY (order_id, product_id));
INSERT INTO customers SELECT g, 'Customer ' || g, 'c' || g || '@example.org', (ARRAY['Алматы','Astana','Berlin','Lisbon'])[1 + g % 4] FROM generate_series(1, 50000) g;
INSERT INTO products SELECT g, 'Product ' || md5(g::text), (g % 500) + 0.99 FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 50000, timestamptz '2026-01-01' + g * interval '37 seconds', jsonb_build_object('gift', g % 7 = 0, 'ref', md5(g::text)) FROM generate_series(1, 400000) g;
INSERT INTO order_items SELECT o, 1 + (o * 7 + k) % 2000, 1 + k FROM generate_series(1, 400000) o, generate_series(0, 2) k;
SQL
echo "shop: $("${psql[@]}" -d shop -Atc "SELECT pg_size_pretty(pg_database_size('shop'))")"

step "generating a master key (berkutctl key generate)"
show "$bin/berkutctl" key generate -o "$work/master.key"

step "starting berkutd"
export BERKUT_SOCKET="$work/run/berkutd.sock"
export BERKUT_STATE_DIR="$work/state"
export BERKUT_BACKUP_PATH="$work/backups"
export BERKUT_BACKUP_ENCRYPTION_KEY_FILE="$work/master.key"
export BERKUT_DATABASE_URL="postgresql://postgres@/shop?host=$work/pgsock&port=5432"
export BERKUT_BACKUP_PGDUMP_BIN="$pg_bin/pg_dump"
"$bin/berkutd" 2>"$work/berkutd.log" &
daemon_pid=$!
for _ in $(seq 1 200); do
    # The socket file appears a moment before it listens: ask, not look.
    "$bin/berkutctl" status >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/berkutd.log"; exit 1; }
    sleep 0.05
done
show "$bin/berkutctl" status

step "taking a backup (berkutctl backup create --wait)"
show "$bin/berkutctl" backup create --label "demo backup" --wait

step "the catalogue (berkutctl backup list)"
show "$bin/berkutctl" backup list
echo
echo "The archive is encrypted; only this key can read it:"
ls -l "$work/backups"
echo
echo "Done. The daemon's log is in $work/berkutd.log (removed on exit unless KEEP=1)."
