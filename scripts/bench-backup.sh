#!/usr/bin/env bash
# Backup benchmark: berkutd against the obvious baseline, `pg_dump -Fc` to a
# file, on the same throwaway database in the same run.
#
# It builds the release binaries, starts a private PostgreSQL cluster (Unix
# socket in a temporary directory, no TCP), fills a database of at least
# BENCH_SIZE_GB GiB with mixed data, then measures, in BENCH_ROUNDS rounds
# (alternating which goes first):
#   1. `pg_dump -Fc` to a file: wall time, file size, peak RSS, CPU;
#   2. `berkutctl backup create --scope database --wait` against a release
#      berkutd: wall time, archive size, the daemon's peak RSS (VmHWM), the
#      peak RSS of its pg_dump child (sampled), CPU times;
# and then once `--scope full` (adds the cluster's globals), unless
# BENCH_FULL=0.
# Each archive is decrypted as a stream (scripts/lib/bscc_parts.py, which
# follows docs/FORMAT.md) to read the exact size of the dump it holds, so the
# overhead is archive size over dump size, measured, not assumed.
#
# Prints a Markdown report on stdout (progress goes to stderr). Exit status:
#   0  both targets met: daemon peak RSS < BENCH_MAX_RSS_MIB (64) and
#      archive overhead <= BENCH_MAX_OVERHEAD_PCT (1) % over the dump;
#   1  a target was missed (the report says which);
#   2  the benchmark itself could not run.
#
# Knobs (environment):
#   BENCH_SIZE_GB=1        database size to reach, in GiB (fractions allowed)
#   BENCH_ROUNDS=3         rounds of (baseline, berkut --scope database),
#                          alternating which goes first; medians reported
#   BENCH_FULL=1           also measure --scope full once (0 to skip)
#   BENCH_BATCH=20000      customers per data-generation batch (~100 MB)
#   BENCH_FSYNC=off        fsync of the throwaway cluster (data generation only;
#                          pg_dump only reads)
#   BENCH_SKIP_BUILD=0     1: use the existing target/release binaries
#   BENCH_TMPDIR=$TMPDIR   where the cluster, dumps and archives go (/tmp)
#   BENCH_KEEP=0           1: keep the temporary directory (cluster stopped)
#   BENCH_TOOL_ROUNDS=3    runs of each archive tool (verify, download,
#                          import) and its baseline; medians reported
#   BENCH_MAX_RSS_MIB=64, BENCH_MAX_OVERHEAD_PCT=1   the targets checked
#   BERKUT_PG_BIN          PostgreSQL bin directory (default: the highest
#                          /usr/lib/postgresql/*/bin, like the test kit)
#
# Runs as root (the cluster then runs as the `postgres` OS user) or as an
# ordinary user. Every run starts from scratch and removes what it made.

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB="$ROOT/scripts/lib"

BENCH_SIZE_GB=${BENCH_SIZE_GB:-1}
BENCH_FULL=${BENCH_FULL:-1}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_BATCH=${BENCH_BATCH:-20000}
BENCH_FSYNC=${BENCH_FSYNC:-off}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_MAX_RSS_MIB=${BENCH_MAX_RSS_MIB:-64}
BENCH_MAX_OVERHEAD_PCT=${BENCH_MAX_OVERHEAD_PCT:-1}

DB=berkut_bench
COMMAND_LINE="BENCH_SIZE_GB=$BENCH_SIZE_GB BENCH_ROUNDS=$BENCH_ROUNDS BENCH_FULL=$BENCH_FULL BENCH_BATCH=$BENCH_BATCH BENCH_FSYNC=$BENCH_FSYNC scripts/bench-backup.sh${*:+ $*}"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}
now() { date +%s.%N; }
# Arithmetic on decimals: calc 'expression' (awk syntax, printf format first).
calc() { awk "BEGIN { printf $1 }"; }
is_root() { [[ $EUID -eq 0 ]]; }
# Runs a server program as the owner of the cluster.
as_pg() {
    if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

for var in BENCH_SIZE_GB BENCH_MAX_RSS_MIB BENCH_MAX_OVERHEAD_PCT; do
    [[ ${!var} =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$var must be a number, not '${!var}'"
done
[[ $BENCH_BATCH =~ ^[1-9][0-9]*$ ]] || die "BENCH_BATCH must be a positive whole number"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive whole number"
[[ $BENCH_FSYNC == on || $BENCH_FSYNC == off ]] || die "BENCH_FSYNC must be on or off"

# --- prerequisites ----------------------------------------------------------

find_pg_bin() {
    if [[ -n ${BERKUT_PG_BIN:-} ]]; then
        printf '%s\n' "$BERKUT_PG_BIN"
        return
    fi
    local best="" best_v=-1 dir v
    for dir in /usr/lib/postgresql/*/bin; do
        v=${dir#/usr/lib/postgresql/}
        v=${v%/bin}
        [[ $v =~ ^[0-9]+$ && -x $dir/initdb ]] || continue
        if ((v > best_v)); then best=$dir best_v=$v; fi
    done
    [[ -n $best ]] || best=$(pg_config --bindir 2>/dev/null || true)
    printf '%s\n' "$best"
}
PGBIN=$(find_pg_bin)
[[ -n $PGBIN && -x $PGBIN/initdb && -x $PGBIN/pg_dump ]] ||
    die "no PostgreSQL server programs found: install postgresql, or set BERKUT_PG_BIN"
if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' OS user to run the cluster"
fi
if [[ ! -x /usr/bin/time ]]; then
    if is_root && command -v apt-get >/dev/null; then
        log "installing GNU time (/usr/bin/time)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
            die "apt-get install time failed"
    else
        die "/usr/bin/time (GNU time) is missing: apt-get install time"
    fi
fi
command -v python3 >/dev/null || die "python3 is needed (JSON and reading archives)"
HAVE_CRYPTO=1
# The archive reader needs cryptography and, for format 2, zstandard: the venv
# scripts/ensure-deps.sh makes has both.
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/stats.sh
. "$ROOT/scripts/lib/stats.sh"
PY=python3
[[ -x $BERKUT_VENV/bin/python ]] && PY=$BERKUT_VENV/bin/python
"$PY" -c 'import cryptography.hazmat.primitives.ciphers.aead, zstandard' 2>/dev/null || HAVE_CRYPTO=0

# Only this benchmark's own libpq settings count.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGOPTIONS \
    PGSSLMODE PGCONNECT_TIMEOUT PGTARGETSESSIONATTRS

# --- cleanup ----------------------------------------------------------------

WORK="" PGDATA="" DAEMON_PID="" SAMPLER_PID="" FINAL=""
stop_sampler() {
    if [[ -n $SAMPLER_PID ]]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}
stop_daemon() {
    if [[ -n $DAEMON_PID ]]; then
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            kill -TERM "$DAEMON_PID" 2>/dev/null || true
            for _ in $(seq 100); do
                kill -0 "$DAEMON_PID" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$DAEMON_PID" 2>/dev/null || true
        fi
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
    fi
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    trap - ERR
    # Only the final check exits 1; any other failure is the benchmark's own.
    if [[ -z $FINAL && $rc -ne 0 && $rc -ne 130 && $rc -ne 143 ]]; then rc=2; fi
    stop_sampler
    stop_daemon
    if [[ -n $PGDATA && -f $PGDATA/postmaster.pid ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 60 -s stop >/dev/null 2>&1
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $BENCH_KEEP == 1 ]]; then
            log "kept $WORK"
        else
            rm -rf -- "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "failed: line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- build ------------------------------------------------------------------

SCRIPT_START=$(now)
BERKUTD="$ROOT/target/release/berkutd"
BERKUTCTL="$ROOT/target/release/berkutctl"
if [[ $BENCH_SKIP_BUILD != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet -p berkut-daemon -p berkut-ctl) ||
        die "cargo build failed"
fi
[[ -x $BERKUTD && -x $BERKUTCTL ]] || die "release binaries are missing (unset BENCH_SKIP_BUILD)"

# --- throwaway cluster ------------------------------------------------------

mkdir -p "$BENCH_TMPDIR"
WORK=$(mktemp -d "$BENCH_TMPDIR/berkut-bench.XXXXXX")
chmod 755 "$WORK" # the postgres user must traverse it
PGROOT="$WORK/pg"
PGDATA="$PGROOT/data"
SOCK="$PGROOT/socket"
mkdir -p "$SOCK"
if is_root; then chown -R postgres: "$PGROOT"; fi

log "initdb in $PGDATA"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$WORK/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$WORK/initdb.log")"
cat >>"$PGDATA/postgresql.conf" <<EOF

# scripts/bench-backup.sh
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = 5432
shared_buffers = 256MB
maintenance_work_mem = 512MB
work_mem = 64MB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_level = minimal
max_wal_senders = 0
fsync = $BENCH_FSYNC
synchronous_commit = $BENCH_FSYNC
full_page_writes = $BENCH_FSYNC
# The data is vacuumed and frozen explicitly before any measurement, and
# nothing may run beside the dumps.
autovacuum = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/server.log" -w -t 60 -s start ||
    die "the server did not start: $(tail -5 "$PGROOT/server.log")"

urlencode() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [A-Za-z0-9._~-]) out+=$c ;;
        *) printf -v c '%%%02X' "'$c" && out+=$c ;;
        esac
    done
    printf '%s' "$out"
}
URL="postgresql://postgres@/$DB?host=$(urlencode "$SOCK")&port=5432"

psql_in() {
    local db=$1
    shift
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p 5432 -U postgres -d "$db" "$@"
}
scalar() { psql_in "$DB" -At -c "$1"; }

PG_VERSION=$(psql_in postgres -At -c 'SHOW server_version')
psql_in postgres -c "CREATE DATABASE $DB"

# --- data -------------------------------------------------------------------
#
# Four tables shaped like an application's: customers (text, numeric,
# timestamptz, jsonb), orders (jsonb line items, addresses, optional notes),
# an events/audit log (the biggest, as in most applications) and documents
# (bytea: half random bytes like already-compressed PDFs, half CSV text).
# Values come from generate_series, md5() and random() (seeded per batch),
# so pg_dump's compression sees something like real data, neither all zeros
# nor all noise. Batches of BENCH_BATCH customers (and 4x orders, 10x events,
# 0.1x documents) are added until the heap is near the target; then the
# secondary indexes are built and batches are added until pg_database_size
# reaches the target.

target_bytes=$(calc '"%.0f", '"$BENCH_SIZE_GB"' * 1073741824')
((target_bytes > 0)) || die "BENCH_SIZE_GB must be more than 0"

psql_in "$DB" <<'SQL'
CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL,
    balance     numeric(14,2) NOT NULL,
    profile     jsonb NOT NULL
);
CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    status       text NOT NULL,
    total        numeric(12,2) NOT NULL,
    placed_at    timestamptz NOT NULL,
    ship_to      text NOT NULL,
    items        jsonb NOT NULL,
    note         text
);
CREATE TABLE events (
    id          bigint PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor_id    bigint NOT NULL,
    kind        text NOT NULL,
    client_ip   inet NOT NULL,
    details     jsonb NOT NULL,
    message     text NOT NULL
);
CREATE TABLE documents (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    file_name    text NOT NULL,
    mime_type    text NOT NULL,
    uploaded_at  timestamptz NOT NULL,
    content      bytea NOT NULL
);
SQL

add_batch() {
    local k=$1 n=$BENCH_BATCH
    local c0=$((k * n + 1)) c1=$(((k + 1) * n))
    local o0=$((k * n * 4 + 1)) o1=$(((k + 1) * n * 4))
    local e0=$((k * n * 10 + 1)) e1=$(((k + 1) * n * 10))
    local d0=$((k * (n / 10) + 1)) d1=$(((k + 1) * (n / 10)))
    psql_in "$DB" <<SQL
SELECT setseed($(((k % 1999) - 999)) / 1000.0) \\g /dev/null
BEGIN;
INSERT INTO customers
SELECT i,
       (ARRAY['Anna','Boris','Chen','Dmitri','Elena','Farid','Galina','Hiro','Irina','Jamal'])[1 + (i * 7) % 10]
         || ' ' ||
       (ARRAY['Ivanova','Smith','Kuznetsov','Garcia','Novak','Tanaka','Petrov','Mueller','Rossi','Okafor'])[1 + (i * 13) % 10],
       'user' || i || '@' || (ARRAY['example.com','mail.example.org','corp.example.net'])[1 + i % 3],
       (ARRAY['RU','KZ','DE','US','FR','JP','BR','IN'])[1 + i % 8],
       timestamptz '2016-01-01 00:00:00+00' + i * interval '41 seconds' + random() * interval '1 day',
       round((random() * 250000)::numeric, 2),
       jsonb_build_object(
           'tier', (ARRAY['free','basic','pro','enterprise'])[1 + floor(random() * 4)::int],
           'newsletter', random() < 0.3,
           'score', floor(random() * 1000)::int,
           'tags', jsonb_build_array('t' || i % 17, 't' || i % 23),
           'address', jsonb_build_object(
               'city', (ARRAY['Almaty','Berlin','Osaka','Lyon','Austin','Pune','Recife','Kazan'])[1 + floor(random() * 8)::int],
               'zip', lpad(floor(random() * 99999)::int::text, 5, '0')))
FROM generate_series($c0, $c1) AS i;

INSERT INTO orders
SELECT o,
       $c0 + floor(random() * $n)::bigint,
       (ARRAY['new','paid','shipped','delivered','cancelled','refunded'])[1 + floor(random() * 6)::int],
       round((5 + random() * 2000)::numeric, 2),
       timestamptz '2018-01-01 00:00:00+00' + o * interval '13 seconds',
       (1 + floor(random() * 200)::int) || ' '
         || (ARRAY['Lenina st','Main St','Abay ave','Hauptstrasse','Rue de Rivoli','Baker St'])[1 + o % 6]
         || ', apt ' || floor(random() * 300)::int,
       (SELECT jsonb_agg(jsonb_build_object(
                   'sku', 'SKU-' || upper(substr(md5((o * 10 + l)::text), 1, 8)),
                   'qty', 1 + floor(random() * 4)::int,
                   'price', round((random() * 500)::numeric, 2)))
          FROM generate_series(1, 1 + o % 3) AS l),
       CASE WHEN random() < 0.3 THEN 'Please call before delivery, ref ' || md5(random()::text) END
FROM generate_series($o0, $o1) AS o;

INSERT INTO events
SELECT e,
       timestamptz '2020-01-01 00:00:00+00' + e * interval '2 seconds' + random() * interval '1 second',
       $c0 + floor(random() * $n)::bigint,
       (ARRAY['login','logout','view','search','update','export','error'])[1 + floor(random() * 7)::int],
       ('10.' || e % 256 || '.' || (e / 256) % 256 || '.' || floor(random() * 256)::int)::inet,
       jsonb_build_object(
           'path', '/api/v1/' || (ARRAY['orders','customers','reports','files'])[1 + e % 4]
                   || '/' || floor(random() * 100000)::int,
           'status', (ARRAY[200,200,200,201,204,400,403,404,500])[1 + floor(random() * 9)::int],
           'ms', round((random() * random() * 2000)::numeric, 1),
           'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)','Mozilla/5.0 (Windows NT 10.0; Win64; x64)',
                           'curl/7.88.1','berkut-mobile/2.3'])[1 + e % 4]),
       'request ' || md5(e::text) || ' handled by worker ' || e % 16
FROM generate_series($e0, $e1) AS e;

INSERT INTO documents
SELECT d,
       $c0 + floor(random() * $n)::bigint,
       'doc-' || d || CASE WHEN d % 2 = 0 THEN '.pdf' ELSE '.csv' END,
       CASE WHEN d % 2 = 0 THEN 'application/pdf' ELSE 'text/csv' END,
       timestamptz '2021-01-01 00:00:00+00' + d * interval '5 minutes',
       CASE WHEN d % 2 = 0 THEN
           (SELECT decode(string_agg(md5(d || ':' || g || ':' || random()), ''), 'hex')
              FROM generate_series(1, 256) AS g)
       ELSE
           (SELECT convert_to(string_agg(d || ';' || g || ';' || round((random() * 1000)::numeric, 2)
                                         || ';' || (ARRAY['ok','late','void'])[1 + floor(random() * 3)::int]
                                         || ';2021-03-' || lpad((1 + g % 28)::text, 2, '0'), E'\n'), 'UTF8')
              FROM generate_series(1, 250) AS g)
       END
FROM generate_series($d0, $d1) AS d;
COMMIT;
SQL
}

db_size() { scalar "SELECT pg_database_size(current_database())"; }

GEN_START=$(now)
log "generating data: target $target_bytes bytes ($BENCH_SIZE_GB GiB), batches of $BENCH_BATCH customers"
batch=0
# Secondary indexes add roughly a fifth to the heap: load to ~80 % first.
heap_goal=$(calc '"%.0f", '"$target_bytes"' * 0.8')
while (($(db_size) < heap_goal)); do
    add_batch "$batch"
    batch=$((batch + 1))
    log "  batch $batch: $(db_size) bytes"
done
log "building secondary indexes"
psql_in "$DB" <<'SQL'
CREATE UNIQUE INDEX customers_email_key ON customers (email);
CREATE INDEX customers_profile_idx ON customers USING gin (profile jsonb_path_ops);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_at_idx ON orders (placed_at);
CREATE INDEX events_at_idx ON events (at);
CREATE INDEX events_actor_kind_idx ON events (actor_id, kind);
CREATE INDEX documents_customer_idx ON documents (customer_id);
SQL
while (($(db_size) < target_bytes)); do
    add_batch "$batch"
    batch=$((batch + 1))
    log "  batch $batch: $(db_size) bytes"
done
# Set hint bits and freeze now, so that neither dump pays for it, and write
# everything out before the clocks start.
log "VACUUM (FREEZE, ANALYZE) and CHECKPOINT"
psql_in "$DB" -c 'VACUUM (FREEZE, ANALYZE)'
psql_in "$DB" -c 'CHECKPOINT'
GEN_SECONDS=$(calc '"%.0f", '"$(now)"' - '"$GEN_START")
DB_BYTES=$(db_size)
((DB_BYTES >= target_bytes)) || die "the database is $DB_BYTES bytes, below the target $target_bytes"
TABLES=$(scalar "SELECT string_agg(format('%s %s rows %s', relname, reltuples::bigint,
                        pg_size_pretty(pg_total_relation_size(oid))), '; ' ORDER BY relname)
                   FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
log "database: $DB_BYTES bytes in ${GEN_SECONDS} s ($TABLES)"

# --- berkutd ----------------------------------------------------------------

BK="$WORK/berkut"
(umask 077 && mkdir -p "$BK/run" "$BK/state" "$BK/backups")
DAEMON_SOCKET="$BK/run/berkutd.sock"
KEY=$("$BERKUTCTL" key generate)
KEY_FILE="$BK/master.key"
(umask 077 && printf '%s\n' "$KEY" >"$KEY_FILE")
# berkutctl reads archives itself since `archive verify` exists; older
# builds do not have it.
HAVE_VERIFY=0
"$BERKUTCTL" archive verify --help >/dev/null 2>&1 && HAVE_VERIFY=1
ctl() { BERKUT_SOCKET="$DAEMON_SOCKET" "$BERKUTCTL" "$@"; }

log "starting berkutd"
env -i PATH="$PATH" HOME="${HOME:-/}" \
    BERKUT_LOG=info \
    BERKUT_SOCKET="$DAEMON_SOCKET" \
    BERKUT_STATE_DIR="$BK/state" \
    BERKUT_BACKUP_PATH="$BK/backups" \
    BERKUT_DATABASE_URL="$URL" \
    BERKUT_BACKUP_ENCRYPTION_KEY="$KEY" \
    BERKUT_BACKUP_PGDUMP_BIN="$PGBIN/pg_dump" \
    "$BERKUTD" >"$BK/berkutd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
    kill -0 "$DAEMON_PID" 2>/dev/null || die "berkutd exited during start-up: $(tail -20 "$BK/berkutd.log")"
    ctl status >/dev/null 2>&1 && break
    sleep 0.1
done
ctl status >/dev/null 2>&1 || die "berkutd did not answer within 30 s: $(tail -20 "$BK/berkutd.log")"

status_kib() { # status_kib PID FIELD -> value in KiB from /proc/PID/status
    local key val _
    while read -r key val _; do
        if [[ $key == "$2:" ]]; then
            printf '%s\n' "$val"
            return
        fi
    done <"/proc/$1/status"
}
cpu_ticks() { # cpu_ticks PID -> "own_ticks children_ticks" (utime+stime, cutime+cstime)
    local s
    s=$(<"/proc/$1/stat")
    s=${s##*) }
    # shellcheck disable=SC2086 # splitting the fields is the point
    set -- $s
    printf '%s %s\n' $((${12} + ${13})) $((${14} + ${15}))
}
CLK_TCK=$(getconf CLK_TCK)
IDLE_HWM_KB=$(status_kib "$DAEMON_PID" VmHWM)

# Samples, every 0.2 s, the peak RSS (VmHWM) of the daemon's children
# (pg_dump, pg_dumpall) and the daemon's current RSS, into a file.
sampler() {
    local out=$1 child_peak=0 rss_peak=0 v t c kids
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
        for t in /proc/"$DAEMON_PID"/task/*/children; do
            kids=()
            read -r -a kids <"$t" 2>/dev/null || true
            for c in "${kids[@]}"; do
                v=$(status_kib "$c" VmHWM 2>/dev/null) || continue
                if [[ -n $v ]] && ((v > child_peak)); then child_peak=$v; fi
            done
        done
        v=$(status_kib "$DAEMON_PID" VmRSS 2>/dev/null) || v=0
        if [[ -n $v ]] && ((v > rss_peak)); then rss_peak=$v; fi
        printf '%s %s\n' "$child_peak" "$rss_peak" >"$out.tmp" && mv -f "$out.tmp" "$out"
        sleep 0.2
    done
}

PM_PID=$(head -n 1 "$PGDATA/postmaster.pid")
time_field() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }
# CPU seconds the server's exited backends used since the mark: a backend's
# CPU time is added to the postmaster's children times when it is reaped.
# Busy CPU ticks of the whole machine (all CPUs, steal included).
machine_ticks() {
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    printf '%s\n' $((user + nice + system + irq + softirq + steal))
}
server_mark() {
    read -r _ SERVER_MARK <<<"$(cpu_ticks "$PM_PID")"
    MACHINE_MARK=$(machine_ticks)
}
# CPU seconds the machine spent on anything but the measured processes
# since the mark: other people's work, which disturbs wall times.
other_cpu() { # other_cpu MEASURED_SECONDS...
    local busy
    busy=$(machine_ticks)
    calc '"%.1f", '"($busy - $MACHINE_MARK) / $CLK_TCK - ($(IFS=+; echo "$*"))"
}
server_cpu() {
    local ticks
    sleep 0.5 # let the postmaster reap the dump's backend
    read -r _ ticks <<<"$(cpu_ticks "$PM_PID")"
    calc '"%.1f", '"($ticks - $SERVER_MARK) / $CLK_TCK"
}

# run_baseline: `pg_dump -Fc` to a file, with its measurements in B_*.
BASE_FILE="$WORK/baseline.dump"
run_baseline() {
    local t0 t1
    log "baseline: pg_dump --format=custom --file=..."
    rm -f "$BASE_FILE"
    server_mark
    t0=$(now)
    /usr/bin/time -v -o "$WORK/baseline.time" \
        "$PGBIN/pg_dump" --no-password --format=custom --dbname="$URL" --file="$BASE_FILE" ||
        die "the baseline pg_dump failed"
    t1=$(now)
    B_WALL=$(calc '"%.2f", '"$t1 - $t0")
    B_SERVER_CPU=$(server_cpu)
    B_SIZE=$(stat -c %s "$BASE_FILE")
    B_RSS_KB=$(time_field "$WORK/baseline.time" 'Maximum resident set size (kbytes)')
    B_CPU=$(calc '"%.1f", '"$(time_field "$WORK/baseline.time" 'User time (seconds)') + $(time_field "$WORK/baseline.time" 'System time (seconds)')")
    B_OTHER_CPU=$(other_cpu "$B_CPU" "$B_SERVER_CPU")
    log "  $B_SIZE bytes in $B_WALL s, peak RSS $B_RSS_KB KiB"
}

# run_backup SCOPE: one backup through berkutctl, with its measurements in
# R_*.
run_backup() {
    local scope=$1 out="$BK/create.jsonl" t0 t1 cpu0 cpu1
    log "berkut: berkutctl --json backup create --scope $scope --wait"
    read -r -a cpu0 <<<"$(cpu_ticks "$DAEMON_PID")"
    rm -f "$BK/sample"
    sampler "$BK/sample" &
    SAMPLER_PID=$!
    server_mark
    t0=$(now)
    if ! ctl --json backup create --scope "$scope" --label "bench-$scope" --wait >"$out" 2>"$BK/create.err"; then
        stop_sampler
        die "berkutctl backup create --scope $scope failed: $(cat "$BK/create.err") $(tail -1 "$out" 2>/dev/null); daemon log: $(tail -20 "$BK/berkutd.log")"
    fi
    t1=$(now)
    stop_sampler
    R_SERVER_CPU=$(server_cpu)
    read -r -a cpu1 <<<"$(cpu_ticks "$DAEMON_PID")"
    R_WALL=$(calc '"%.2f", '"$t1 - $t0")
    R_HWM_KB=$(status_kib "$DAEMON_PID" VmHWM)
    read -r R_CHILD_KB R_RSS_SAMPLED_KB <"$BK/sample"
    R_DAEMON_CPU=$(calc '"%.1f", '"(${cpu1[0]} - ${cpu0[0]}) / $CLK_TCK")
    R_CHILD_CPU=$(calc '"%.1f", '"(${cpu1[1]} - ${cpu0[1]}) / $CLK_TCK")
    R_OTHER_CPU=$(other_cpu "$R_DAEMON_CPU" "$R_CHILD_CPU" "$R_SERVER_CPU")
    local record
    record=$(tail -n 1 "$out")
    local sha
    read -r R_STATUS R_ID R_SIZE sha < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r.get("status"), r.get("id"), r.get("size_bytes"), r.get("sha256"))' "$record")
    [[ $R_STATUS == succeeded ]] || die "backup --scope $scope ended $R_STATUS: $record"
    local archive="$BK/backups/$R_ID.bscc"
    [[ -f $archive ]] || die "the archive $archive is missing"
    local on_disk
    on_disk=$(stat -c %s "$archive")
    [[ $on_disk == "$R_SIZE" ]] || die "size_bytes $R_SIZE differs from the archive's $on_disk bytes"
    R_DUMP=$B_SIZE R_OTHER="" R_PREDICTED="" R_DUMP_STEP=""
    if [[ $HAVE_CRYPTO == 1 ]]; then
        log "  decrypting the archive to read its parts"
        BSCC_KEY="$KEY" "$PY" "$LIB/bscc_parts.py" "$archive" >"$BK/parts.json" ||
            die "the archive of --scope $scope does not read back"
        # dump size | other parts | predicted file size | dump step seconds
        IFS='|' read -r R_DUMP R_OTHER R_PREDICTED R_DUMP_STEP < <(python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))
dump = [p for p in a["parts"] if p["name"] == "dump.pgcustom"][0]
# The payload framing of docs/FORMAT.md section 5: per part a tag, the
# name with its length, (format 2) the codec byte, a 4-byte header per
# block, the stored bytes, the zero block length, (format 2) the stored
# size, the size and the sha256; then the end marker.
v2 = 9 if a["format_version"] >= 2 else 0
plain = 1 + sum(1 + 2 + len(p["name"]) + v2 + 4 * p["blocks"] + 4 + 8 + 32 + p["stored_size"] for p in a["parts"])
assert plain == a["plaintext_size"], (plain, a["plaintext_size"])
predicted = 112 + plain + 16 * (plain // a["chunk_size"] + 1)
others = ", ".join("%s %d B" % (p["name"], p["size"]) for p in a["parts"] if p is not dump)
step = [t["seconds"] for t in a["manifest"].get("timings", []) if t["step"] == "dump"]
print("%d|%s|%d|%s" % (dump["size"], others, predicted, step[0] if step else ""))' "$BK/parts.json")
        [[ $R_PREDICTED == "$R_SIZE" ]] ||
            die "the overhead arithmetic does not add up: predicted $R_PREDICTED bytes, archive $R_SIZE"
    fi
    if [[ $HAVE_VERIFY == 1 ]]; then
        log "  berkutctl archive verify"
        ctl --json archive verify "$archive" --key-file "$KEY_FILE" >"$BK/verify.json" ||
            die "berkutctl archive verify refused the archive of --scope $scope"
        local v_dump v_sha
        read -r v_dump v_sha < <(python3 -c '
import json, sys
v = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert v["verified"] is True
print([p for p in v["manifest"]["parts"] if p["kind"] == "dump"][0]["size"], v["sha256"])' "$BK/verify.json")
        [[ $v_sha == "$sha" ]] || die "berkutctl archive verify: sha256 $v_sha, the catalogue says $sha"
        if [[ $HAVE_CRYPTO == 1 ]]; then
            [[ $v_dump == "$R_DUMP" ]] ||
                die "berkutctl archive verify says the dump is $v_dump bytes, bscc_parts.py $R_DUMP"
        else
            R_DUMP=$v_dump
        fi
    fi
    R_OVERHEAD=$(calc '"%.4f", '"($R_SIZE - $R_DUMP) * 100 / $R_DUMP")
    if [[ -z ${T_VERIFY:-} ]]; then
        measure_tools "$archive" "$R_ID"
    fi
    # The archive is not needed any more: keep the disk use of a run flat.
    ctl backup delete "$R_ID" >/dev/null || die "berkutctl backup delete $R_ID failed"
    log "  $R_SIZE bytes in $R_WALL s; dump $R_DUMP bytes; overhead $R_OVERHEAD %; daemon VmHWM $R_HWM_KB KiB, VmRSS sampled up to $R_RSS_SAMPLED_KB KiB"
}

# timed COMMAND...: runs it, prints its wall seconds (output discarded).
timed() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>"$BK/timed.err" || die "$* failed: $(cat "$BK/timed.err")"
    t1=$(now)
    calc '"%.2f", '"$t1 - $t0"
}

# timed3 COMMAND...: like timed, in milliseconds' precision.
timed3() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null 2>"$BK/timed.err" || die "$* failed: $(cat "$BK/timed.err")"
    t1=$(now)
    calc '"%.3f", '"$t1 - $t0"
}


# measure_tools ARCHIVE ID: once, on the first archive, the offline and
# transfer tools side by side with their obvious baselines, page cache warm
# (everything reads the same file, read once first): verification against
# sha256sum and openssl, --deep against `zstd -dc | sha256sum` of the same
# dump, download and import against cp (and import against a copy that is
# fsynced, as an import is). Each transfer starts after a `sync`, so none
# pays for the writeback of the one before. Sub-second commands on a shared machine
# scatter: each runs BENCH_TOOL_ROUNDS times (3), interleaved with its
# baseline, and the medians are reported, with the load average.
measure_tools() {
    local archive=$1 id=$2 r
    local sha=() ossl=() ver=() deep=() zsha=() cps=() dls=() cp2s=() syncs=() imps=()
    local rel=() relh=() relhf=() flags t
    log "  archive tools against their baselines"
    T_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    cat "$archive" >/dev/null
    rm -rf "$BK/x"
    "$BERKUTCTL" archive extract "$archive" --key-file "$KEY_FILE" -o "$BK/x" >/dev/null ||
        die "berkutctl archive extract failed"
    T_EXTRACT_SIZE=$(stat -c %s "$BK/x/dump.pgcustom")
    zstd -q -1 -T2 -c "$BK/x/dump.pgcustom" >"$BK/x/dump.zst"
    for ((r = 1; r <= ${BENCH_TOOL_ROUNDS:-3}; r++)); do
        sha+=("$(timed3 sha256sum "$archive")")
        ossl+=("$(timed3 openssl dgst -sha256 "$archive")")
        ver+=("$(timed3 "$BERKUTCTL" archive verify "$archive" --key-file "$KEY_FILE")")
        deep+=("$(timed3 "$BERKUTCTL" archive verify --deep "$archive" --key-file "$KEY_FILE")")
        zsha+=("$(timed3 sh -c "zstd -dc '$BK/x/dump.zst' | sha256sum")")
        rm -f "$BK/copy.bscc" "$BK/dl.bscc"
        sync
        cps+=("$(timed3 cp "$archive" "$BK/copy.bscc")")
        rm -f "$BK/copy.bscc"
        sync
        dls+=("$(timed3 ctl backup download "$id" -o "$BK/dl.bscc")")
        cmp -s "$archive" "$BK/dl.bscc" || die "the download differs from the archive"
        ctl backup delete "$id" >/dev/null || die "berkutctl backup delete $id failed"
        sync
        cp2s+=("$(timed3 cp "$BK/dl.bscc" "$BK/copy.bscc")")
        rm -f "$BK/copy.bscc"
        sync
        syncs+=("$(timed3 dd if="$BK/dl.bscc" of="$BK/copy.bscc" bs=1M conv=fsync status=none)")
        rm -f "$BK/copy.bscc"
        sync
        imps+=("$(timed3 ctl backup import "$BK/dl.bscc")")
        # The floor of a transfer over a socket: the same file through a
        # Unix socket between two processes, bare, then hashed on the way
        # and fsynced, as a checked, durable download or import must be
        # at least (scripts/lib/relay.py times the copy itself).
        for flags in "" "--sha256" "--sha256 --fsync"; do
            rm -f "$BK/relay.bscc"
            sync
            # shellcheck disable=SC2086 # the flags are words
            t=$(python3 "$LIB/relay.py" "$archive" "$BK/relay.bscc" $flags) ||
                die "scripts/lib/relay.py $flags failed"
            cmp -s "$archive" "$BK/relay.bscc" || die "the relay's copy differs"
            case $flags in
            "") rel+=("$t") ;;
            --sha256) relh+=("$t") ;;
            *) relhf+=("$t") ;;
            esac
        done
        rm -f "$BK/relay.bscc"
    done
    rm -rf "$BK/x" "$BK/dl.bscc"
    T_SHA=$(median 3 "${sha[@]}") T_OSSL=$(median 3 "${ossl[@]}") T_VERIFY=$(median 3 "${ver[@]}")
    T_DEEP=$(median 3 "${deep[@]}") T_ZSTD_SHA=$(median 3 "${zsha[@]}") T_CP=$(median 3 "${cps[@]}")
    T_DL=$(median 3 "${dls[@]}") T_CP2=$(median 3 "${cp2s[@]}") T_SYNC=$(median 3 "${syncs[@]}")
    T_IMPORT=$(median 3 "${imps[@]}")
    T_REL=$(median 3 "${rel[@]}") T_RELH=$(median 3 "${relh[@]}") T_RELHF=$(median 3 "${relhf[@]}")
    T_SIZE=$(stat -c %s "$archive")
    T_HWM_KB=$(status_kib "$DAEMON_PID" VmHWM)
    T_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    log "  verify ${ver[*]} s (sha256sum ${sha[*]}, openssl ${ossl[*]}), deep ${deep[*]} s (zstd -dc | sha256sum ${zsha[*]}), download ${dls[*]} s (cp ${cps[*]}), import ${imps[*]} s (cp ${cp2s[*]}, cp with fsync ${syncs[*]}), socket relay ${rel[*]} s (hashed ${relh[*]}, hashed and fsynced ${relhf[*]}); load $T_LOAD_BEFORE / $T_LOAD_AFTER"
}

# Rounds of one baseline and one berkut backup of the same database, in
# alternating order so that neither always goes first.
BASE_WALLS=() DB_WALLS=() RATIOS=() BASE_SIZES=() DB_SIZES=() DUMP_SIZES=()
BASE_CPUS=() BASE_SERVER=() DB_CHILD_CPUS=() DB_DAEMON_CPUS=() DB_SERVER=() DB_STEPS=()
BASE_OTHER=() DB_OTHER=()
BASE_RSS_MAX=0 DB_CHILD_MAX=0 DB_RSS_SAMPLED_MAX=0 DB_OVERHEAD_MAX=0
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    log "round $round of $BENCH_ROUNDS"
    if ((round % 2 == 1)); then
        run_baseline
        run_backup database
    else
        run_backup database
        run_baseline
    fi
    BASE_WALLS+=("$B_WALL") BASE_SIZES+=("$B_SIZE") BASE_CPUS+=("$B_CPU") BASE_SERVER+=("$B_SERVER_CPU")
    DB_WALLS+=("$R_WALL") DB_SIZES+=("$R_SIZE") DUMP_SIZES+=("$R_DUMP") DB_STEPS+=("${R_DUMP_STEP:-0}")
    DB_CHILD_CPUS+=("$R_CHILD_CPU") DB_DAEMON_CPUS+=("$R_DAEMON_CPU") DB_SERVER+=("$R_SERVER_CPU")
    BASE_OTHER+=("$B_OTHER_CPU") DB_OTHER+=("$R_OTHER_CPU")
    RATIOS+=("$(calc '"%.2f", '"$R_WALL / $B_WALL")")
    ((B_RSS_KB > BASE_RSS_MAX)) && BASE_RSS_MAX=$B_RSS_KB
    ((R_CHILD_KB > DB_CHILD_MAX)) && DB_CHILD_MAX=$R_CHILD_KB
    ((R_RSS_SAMPLED_KB > DB_RSS_SAMPLED_MAX)) && DB_RSS_SAMPLED_MAX=$R_RSS_SAMPLED_KB
    DB_OVERHEAD_MAX=$(calc '"%s", '"($R_OVERHEAD > $DB_OVERHEAD_MAX) ? $R_OVERHEAD : $DB_OVERHEAD_MAX")
    D_OTHER=$R_OTHER
done
D_HWM_KB=$(status_kib "$DAEMON_PID" VmHWM)
if [[ $BENCH_FULL == 1 ]]; then
    run_backup full
    F_WALL=$R_WALL F_SIZE=$R_SIZE F_DUMP=$R_DUMP F_OVERHEAD=$R_OVERHEAD
    F_HWM_KB=$R_HWM_KB F_CHILD_KB=$R_CHILD_KB F_RSS_SAMPLED_KB=$R_RSS_SAMPLED_KB F_SERVER=$R_SERVER_CPU
    F_DAEMON_CPU=$R_DAEMON_CPU F_CHILD_CPU=$R_CHILD_CPU F_OTHER=$R_OTHER F_DUMP_STEP=${R_DUMP_STEP:-0}
    F_OTHER_CPU=$R_OTHER_CPU
fi
stop_daemon
if grep -Eq ' (ERROR|WARN) ' "$BK/berkutd.log"; then
    log "berkutd logged warnings or errors:"
    grep -E ' (ERROR|WARN) ' "$BK/berkutd.log" >&2 || true
fi

# --- report -----------------------------------------------------------------

# "median (min-max)" when there was more than one round.
spread() {
    local m
    m=$(median 1 "$@")
    if (($# > 1)); then
        printf '%s (%s)' "$m" "$(printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }')"
    else
        printf '%s' "$m"
    fi
}
distinct() { printf '%s\n' "$@" | sort -u | paste -sd/ -; }
mib() { calc '"%.1f", '"$1 / 1048576"; }
kib_mib() { calc '"%.1f", '"$1 / 1024"; }

BASE_MEDIAN=$(median 1 "${BASE_WALLS[@]}")
DB_MEDIAN=$(median 1 "${DB_WALLS[@]}")
DB_RATIO=$(calc '"%.2f", '"$DB_MEDIAN / $BASE_MEDIAN")
BASE_SIZE=$(distinct "${BASE_SIZES[@]}")
D_SIZE=$(distinct "${DB_SIZES[@]}")
D_DUMP=$(distinct "${DUMP_SIZES[@]}")
# The kernel raises VmHWM lazily (when it is about to lower the RSS through
# some paths, not all), so a sample of VmRSS can exceed it: the peak is the
# larger of the two.
max_of() { printf '%s\n' "$@" | sort -n | tail -n 1; }
D_PEAK_KB=$(max_of "$D_HWM_KB" "$DB_RSS_SAMPLED_MAX")
PEAK_KB=$D_PEAK_KB
if [[ $BENCH_FULL == 1 ]]; then
    F_PEAK_KB=$(max_of "$F_HWM_KB" "$F_RSS_SAMPLED_KB" "$D_PEAK_KB")
    PEAK_KB=$F_PEAK_KB
fi
WORST_OVERHEAD=$DB_OVERHEAD_MAX
[[ $BENCH_FULL == 1 ]] && WORST_OVERHEAD=$(calc '"%s", '"($F_OVERHEAD > $WORST_OVERHEAD) ? $F_OVERHEAD : $WORST_OVERHEAD")
RSS_OK=$(calc '"%d", '"($PEAK_KB / 1024 < $BENCH_MAX_RSS_MIB)")
OVH_OK=$(calc '"%d", '"($WORST_OVERHEAD <= $BENCH_MAX_OVERHEAD_PCT)")
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain -- daemon proto ctl Cargo.toml Cargo.lock 2>/dev/null | wc -l)
if [[ $COMMIT != unknown && $DIRTY -gt 0 ]]; then
    COMMIT="$COMMIT (plus uncommitted changes to $DIRTY files under daemon/, proto/, ctl/)"
fi
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
SCRIPT_SECONDS=$(calc '"%.0f", '"$(now) - $SCRIPT_START")
if [[ $HAVE_CRYPTO == 1 ]]; then
    DUMP_NOTE="the dump's size is read from each archive, decrypted by scripts/lib/bscc_parts.py, and the archive's size is checked against the framing arithmetic of docs/FORMAT.md"
    if [[ $HAVE_VERIFY == 1 ]]; then
        DUMP_NOTE+="; \`berkutctl archive verify\` agreed on the dump's size and the archive's sha256"
    fi
elif [[ $HAVE_VERIFY == 1 ]]; then
    DUMP_NOTE="the dump's size is read from each archive by \`berkutctl archive verify\` (python3-cryptography is missing, so the framing arithmetic was not checked)"
else
    DUMP_NOTE="the dump's size is taken as the baseline file's (python3-cryptography is missing, so the archives were not opened): the same pg_dump of the same database in custom format, equal to a few bytes"
fi
met() { if [[ $1 == 1 ]]; then echo "met"; else echo "**MISSED**"; fi; }
if [[ $RSS_OK == 1 && $OVH_OK == 1 ]]; then STATUS=0; else STATUS=1; fi
ROUNDS_NOTE="median of $BENCH_ROUNDS (min-max)"
((BENCH_ROUNDS == 1)) && ROUNDS_NOTE="one round"

row() { # row LABEL BASELINE DATABASE FULL
    if [[ $BENCH_FULL == 1 ]]; then
        printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"
    else
        printf '| %s | %s | %s |\n' "$1" "$2" "$3"
    fi
}
{
    echo "### Backup benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`$COMMAND_LINE\` (exit status $STATUS, run time $SCRIPT_SECONDS s)"
    echo
    echo "Machine: $(nproc) CPUs ($CPU_MODEL), $MEM_GIB GiB RAM, $(uname -sr); PostgreSQL $PG_VERSION (\`$PGBIN\`), fsync=$BENCH_FSYNC; berkut commit $COMMIT."
    echo
    echo "Database: $(mib "$DB_BYTES") MiB (pg_database_size $DB_BYTES bytes; target $BENCH_SIZE_GB GiB), generated in $GEN_SECONDS s; $TABLES."
    echo
    row "" "\`pg_dump -Fc\` to a file (baseline)" "berkut \`--scope database\`" "berkut \`--scope full\`"
    row "---" "---:" "---:" "---:"
    row "rounds" "$BENCH_ROUNDS" "$BENCH_ROUNDS" "1"
    row "wall time, s ($ROUNDS_NOTE)" "$(spread "${BASE_WALLS[@]}")" "$(spread "${DB_WALLS[@]}")" "$(median 1 "${F_WALL:-0}")"
    row "wall time / baseline" "1.00" "**$DB_RATIO** (by round: ${RATIOS[*]})" "$(calc '"%.2f", '"${F_WALL:-0} / $BASE_MEDIAN")"
    row "output size, bytes" "$BASE_SIZE ($(mib "${BASE_SIZES[0]}") MiB)" "$D_SIZE ($(mib "${DB_SIZES[0]}") MiB)" "${F_SIZE:-} ($(mib "${F_SIZE:-0}") MiB)"
    row "pg_dump output inside, bytes" "$BASE_SIZE" "$D_DUMP" "${F_DUMP:-}"
    row "archive overhead over the dump" "-" "**$(calc '"%.3f", '"$DB_OVERHEAD_MAX") %**" "**$(calc '"%.3f", '"${F_OVERHEAD:-0}") %**"
    row "berkutd peak RSS" "-" "**$(kib_mib "$D_PEAK_KB") MiB**" "**$(kib_mib "${F_PEAK_KB:-0}") MiB**"
    row "berkutd VmHWM after the backups" "-" "$(kib_mib "$D_HWM_KB") MiB" "$(kib_mib "${F_HWM_KB:-0}") MiB"
    row "berkutd VmRSS, highest 0.2 s sample" "-" "$(kib_mib "$DB_RSS_SAMPLED_MAX") MiB" "$(kib_mib "${F_RSS_SAMPLED_KB:-0}") MiB"
    row "pg_dump peak RSS" "$(kib_mib "$BASE_RSS_MAX") MiB" "$(kib_mib "$DB_CHILD_MAX") MiB (sampled)" "$(kib_mib "${F_CHILD_KB:-0}") MiB (sampled)"
    row "CPU s: pg_dump (user+sys)" "$(spread "${BASE_CPUS[@]}")" "$(spread "${DB_CHILD_CPUS[@]}")" "${F_CHILD_CPU:-}"
    row "CPU s: server backend" "$(spread "${BASE_SERVER[@]}")" "$(spread "${DB_SERVER[@]}")" "${F_SERVER:-}"
    row "CPU s: berkutd itself" "-" "$(spread "${DB_DAEMON_CPUS[@]}")" "${F_DAEMON_CPU:-}"
    row "CPU s: everything else on the machine" "$(spread "${BASE_OTHER[@]}")" "$(spread "${DB_OTHER[@]}")" "${F_OTHER_CPU:-}"
    row "dump step (manifest timing), s" "-" "$(spread "${DB_STEPS[@]}")" "$(median 1 "${F_DUMP_STEP:-0}")"
    row "other parts in the archive" "-" "$D_OTHER" "${F_OTHER:-}"
    echo
    echo "Wall times: the baseline is \`/usr/bin/time -v $PGBIN/pg_dump --format=custom --dbname=... --file=...\`; berkut is \`berkutctl --json backup create --scope ... --wait\`, from the request to a sealed, fsynced, catalogued archive. Rounds alternate which goes first. The daemon's peak RSS is the larger of its VmHWM (its own peak over its whole life, so each column includes the backups before it; $(kib_mib "$IDLE_HWM_KB") MiB when idle, before the first backup) and its VmRSS sampled every 0.2 s during the backups (the kernel raises VmHWM lazily, so a sample can exceed it); the daemon's pg_dump child is a separate process, on its own row (VmHWM sampled every 0.2 s). The pg_dump CPU of a berkut backup is the daemon's reaped-children time (pg_dump, plus pg_dumpall for \`full\`); the server backend's is the postmaster's; \"everything else\" is the machine's busy CPU time during the measurement minus those (berkutctl and this script's sampler included): other people's work, which stretches wall times on a small machine. Overhead = (archive bytes - dump bytes) / dump bytes, the worst of the rounds; $DUMP_NOTE."
    echo
    echo "Targets: berkutd peak RSS < $BENCH_MAX_RSS_MIB MiB: $(met "$RSS_OK"); archive overhead <= $BENCH_MAX_OVERHEAD_PCT %: $(met "$OVH_OK")."
    echo
    GB=$(calc '"%.4f", '"$DB_BYTES / 1e9")
    echo "Archive size / baseline file size (median sizes): **$(calc '"%.2f", '"$(median 1 "${DB_SIZES[@]}") / $(median 1 "${BASE_SIZES[@]}")")**. CPU seconds per GB of database backed up (pg_dump + server backend + berkutd, medians): baseline $(calc '"%.1f", '"($(median 1 "${BASE_CPUS[@]}") + $(median 1 "${BASE_SERVER[@]}")) / $GB"), berkut $(calc '"%.1f", '"($(median 1 "${DB_CHILD_CPUS[@]}") + $(median 1 "${DB_SERVER[@]}") + $(median 1 "${DB_DAEMON_CPUS[@]}")) / $GB")."
    if [[ -n ${T_VERIFY:-} ]]; then
        echo
        echo "Archive tools on the first archive ($(mib "$T_SIZE") MiB; its dump $(mib "$T_EXTRACT_SIZE") MiB), page cache warm, medians of ${BENCH_TOOL_ROUNDS:-3} interleaved runs each, load average $T_LOAD_BEFORE before and $T_LOAD_AFTER after:"
        echo
        echo "| what | seconds | baseline | baseline seconds | ratio |"
        echo "| --- | ---: | --- | ---: | ---: |"
        echo "| \`archive verify\` (authentication), $(calc '"%.2f", '"$T_SIZE / $T_VERIFY / 1e9") GB/s | $T_VERIFY | \`sha256sum\` of the archive | $T_SHA | $(calc '"%.2f", '"$T_VERIFY / $T_SHA") |"
        echo "| \`archive verify\` | $T_VERIFY | \`openssl dgst -sha256\` of the archive | $T_OSSL | $(calc '"%.2f", '"$T_VERIFY / $T_OSSL") |"
        echo "| \`archive verify --deep\` | $T_DEEP | \`zstd -dc DUMP.zst \| sha256sum\` (the dump compressed by \`zstd -1 -T2\`) | $T_ZSTD_SHA | $(calc '"%.2f", '"$T_DEEP / $T_ZSTD_SHA") |"
        echo "| \`backup download\` | $T_DL | \`cp\` of the archive | $T_CP | $(calc '"%.2f", '"$T_DL / $T_CP") |"
        echo "| \`backup import\` | $T_IMPORT | \`cp\` of the same file | $T_CP2 | $(calc '"%.2f", '"$T_IMPORT / $T_CP2") |"
        echo "| \`backup import\` | $T_IMPORT | \`dd conv=fsync\` of the same file (a durable copy) | $T_SYNC | $(calc '"%.2f", '"$T_IMPORT / $T_SYNC") |"
        echo "| \`backup download\` | $T_DL | the archive through a Unix socket between two processes, hashed (SHA-256) on the way and fsynced: what a checked, durable transfer does at least (\`scripts/lib/relay.py --sha256 --fsync\`) | $T_RELHF | $(calc '"%.2f", '"$T_DL / $T_RELHF") |"
        echo "| \`backup import\` | $T_IMPORT | the same relay, hashed and fsynced | $T_RELHF | $(calc '"%.2f", '"$T_IMPORT / $T_RELHF") |"
        echo "| the relay, bare (\`relay.py\`) | $T_REL | \`cp\` of the archive | $T_CP | $(calc '"%.2f", '"$T_REL / $T_CP") |"
        echo "| the relay, hashed (\`relay.py --sha256\`) | $T_RELH | \`cp\` of the archive | $T_CP | $(calc '"%.2f", '"$T_RELH / $T_CP") |"
        echo "| the relay, hashed and fsynced | $T_RELHF | \`cp\` of the archive | $T_CP | $(calc '"%.2f", '"$T_RELHF / $T_CP") |"
        echo
        echo "berkutd VmHWM after these (its peak over its whole life, the backups, download and import included): $(kib_mib "$T_HWM_KB") MiB."
    fi
}

FINAL=1
if [[ $STATUS == 0 ]]; then
    log "targets met (script run time $SCRIPT_SECONDS s)"
else
    log "a target was missed"
fi
exit "$STATUS"
