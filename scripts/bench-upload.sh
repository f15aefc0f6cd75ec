#!/usr/bin/env bash
# Off-site upload benchmark: berkutd's copy of a sealed archive to an S3
# server against the obvious baseline, boto3's `upload_file` of the same
# file to the same server (moto_server on 127.0.0.1), in the same run.
#
# It builds the release binaries, starts a private PostgreSQL cluster (Unix
# socket only) and a moto_server, fills a database with BENCH_MB MiB of
# random (incompressible) bytes, and starts berkutd with one [[remote]]
# whose bucket does not exist yet. Then:
#   1. one backup: the copy fails (no bucket) and waits for its retry; the
#      daemon's peak RSS mark is reset (/proc/PID/clear_refs), the bucket is
#      made, and the retry uploads the archive: its time (from the daemon's
#      log line "off-site copy done") and the daemon's peak RSS (VmHWM)
#      during the upload;
#   2. boto3 `upload_file` of the very archive file to another key: its time;
#   3. a second backup, the bucket there: the time from the backup's end to
#      its copy being `copied` (from the record's times).
#
# Prints a Markdown report on stdout (progress on stderr). Exit status 0
# when throughput >= 0.8 x boto3 and peak RSS <= 64 MiB, 1 when a target is
# missed, 2 when the benchmark could not run.
#
# Knobs: BENCH_MB=256 (archive size, MiB), BENCH_SKIP_BUILD=0,
# BENCH_TMPDIR=$TMPDIR, BERKUT_VENV=/opt/berkut-venv (moto, boto3;
# scripts/ensure-deps.sh installs it, scripts/lib/venv.sh), BERKUT_PG_BIN.

set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_MB=${BENCH_MB:-256}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
VENV=$BERKUT_VENV
COMMAND_LINE="BENCH_MB=$BENCH_MB scripts/bench-upload.sh"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}
# calc FORMAT EXPRESSION: awk's printf of one computed value.
calc() { awk -v fmt="$1" "BEGIN { printf fmt, $2 }"; }
is_root() { [[ $EUID -eq 0 ]]; }
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $BENCH_MB =~ ^[1-9][0-9]*$ ]] || die "BENCH_MB must be a positive whole number"
[[ -x $VENV/bin/moto_server && -x $VENV/bin/python ]] ||
    die "$VENV lacks moto_server or python: run scripts/ensure-deps.sh"

PGBIN=${BERKUT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL server programs (set BERKUT_PG_BIN)"
unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE

WORK="" PGDATA="" DAEMON_PID="" MOTO_PID=""
cleanup() {
    local rc=$?
    set +e
    [[ -n $DAEMON_PID ]] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    [[ -n $MOTO_PID ]] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
    [[ -n $PGDATA && -f $PGDATA/postmaster.pid ]] &&
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -s stop >/dev/null 2>&1
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT

BERKUTD="$ROOT/target/release/berkutd"
BERKUTCTL="$ROOT/target/release/berkutctl"
if [[ $BENCH_SKIP_BUILD != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && nice cargo build --release --quiet -p berkut-daemon -p berkut-ctl) ||
        die "cargo build failed"
fi

mkdir -p "$BENCH_TMPDIR"
WORK=$(mktemp -d "$BENCH_TMPDIR/berkut-upload.XXXXXX")
chmod 755 "$WORK"
PGDATA="$WORK/pg/data"
SOCK="$WORK/pg/socket"
mkdir -p "$SOCK"
is_root && chown -R postgres: "$WORK/pg"
log "initdb"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >"$WORK/initdb.log" 2>&1 ||
    die "initdb failed"
printf "listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nautovacuum = off\n" \
    "$SOCK" >>"$PGDATA/postgresql.conf"
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg/server.log" -w -s start || die "the server did not start"
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -U postgres "$@"; }

log "filling a database with $BENCH_MB MiB of random bytes"
head -c "$((BENCH_MB << 20))" /dev/urandom >"$WORK/random.bin"
chmod 644 "$WORK/random.bin"
psql -d postgres -c "CREATE DATABASE bench"
psql -d bench -c "CREATE TABLE blobs (n int, b bytea)" \
    -c "ALTER TABLE blobs ALTER b SET STORAGE EXTERNAL" \
    -c "INSERT INTO blobs SELECT i, pg_read_binary_file('$WORK/random.bin', i::bigint << 20, 1 << 20) FROM generate_series(0, $BENCH_MB - 1) i"
rm -f "$WORK/random.bin"

log "starting moto_server"
"$VENV/bin/moto_server" -H 127.0.0.1 -p 0 >/dev/null 2>"$WORK/moto.log" &
MOTO_PID=$!
for _ in $(seq 300); do
    PORT=$(grep -o 'Running on http://127.0.0.1:[0-9]*' "$WORK/moto.log" | grep -o '[0-9]*$' || true)
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n ${PORT:-} ]] || die "moto_server did not start"
ENDPOINT="http://127.0.0.1:$PORT"
boto() {
    "$VENV/bin/python" -c "import boto3, sys, time
s3 = boto3.client('s3', endpoint_url='$ENDPOINT', region_name='us-east-1', aws_access_key_id='bench', aws_secret_access_key='bench-secret')
$1"
}

BK="$WORK/berkut"
mkdir -p "$BK"
chmod 700 "$BK"
printf 'bench-secret\n' >"$BK/s3.secret"
chmod 600 "$BK/s3.secret"
cat >"$BK/berkutd.toml" <<EOF
[[remote]]
name = "bench"
kind = "s3"
endpoint = "$ENDPOINT"
bucket = "bench"
access_key_id = "bench"
secret_access_key_file = "$BK/s3.secret"
EOF
SOCKET="$BK/run/berkutd.sock"
ctl() { BERKUT_SOCKET="$SOCKET" "$BERKUTCTL" "$@"; }
log "starting berkutd"
BERKUT_LOG=info BERKUT_SOCKET="$SOCKET" BERKUT_STATE_DIR="$BK/state" BERKUT_BACKUP_PATH="$BK/backups" \
    BERKUT_DATABASE_URL="postgresql://postgres@/bench?host=$SOCK" \
    BERKUT_BACKUP_ENCRYPTION_KEY="$("$BERKUTCTL" key generate)" \
    BERKUT_BACKUP_PGDUMP_BIN="$PGBIN/pg_dump" BERKUT_REMOTE_RETRY_SECONDS=2 \
    "$BERKUTD" --config "$BK/berkutd.toml" >"$BK/berkutd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status >/dev/null 2>&1 || die "berkutd did not start: $(tail -5 "$BK/berkutd.log")"

json_field() { python3 -c "import json,sys; r=json.loads(sys.stdin.readline()); print(eval(sys.argv[1]))" "$1"; }
copy_state() { ctl --json backup show "$1" | json_field "r['copies'][0]['state'] if r.get('copies') else 'none'"; }
wait_copied() {
    for _ in $(seq 6000); do
        [[ $(copy_state "$1") == copied ]] && return 0
        sleep 0.1
    done
    die "the copy of $1 did not finish: $(tail -5 "$BK/berkutd.log")"
}

log "backup 1 (the copy waits for the bucket)"
ID=$(ctl --json backup create --scope database --wait | tail -1 | json_field "r['id']")
ARCHIVE="$BK/backups/$ID.bscc"
SIZE=$(stat -c %s "$ARCHIVE")
for _ in $(seq 600); do
    [[ $(copy_state "$ID") == failed ]] && break
    sleep 0.1
done
RSS0_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
echo 5 >"/proc/$DAEMON_PID/clear_refs"
boto "s3.create_bucket(Bucket='bench')"
wait_copied "$ID"
HWM_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
DAEMON_S=$(grep 'off-site copy done' "$BK/berkutd.log" | grep "$ID" | grep -o 'seconds=[0-9.]*' | tail -1 | cut -d= -f2)
[[ -n $DAEMON_S ]] || die "no 'off-site copy done' line for $ID"

log "boto3 upload_file of the same archive"
BOTO_S=$(boto "t = time.perf_counter(); s3.upload_file('$ARCHIVE', 'bench', 'baseline/$ID.bscc'); print(time.perf_counter() - t)")

log "backup 2 (the bucket is there): time from its end to its copy"
ID2=$(ctl --json backup create --scope database --wait | tail -1 | json_field "r['id']")
wait_copied "$ID2"
LAG_S=$(ctl --json backup show "$ID2" | json_field "__import__('datetime').datetime.fromisoformat(r['copies'][0]['at'].replace('Z','+00:00')).timestamp() - __import__('datetime').datetime.fromisoformat(r['finished_at'].replace('Z','+00:00')).timestamp()")

MIB=$(calc '%.1f' "$SIZE / 1048576")
D_MBS=$(calc '%.1f' "$SIZE / 1048576 / $DAEMON_S")
B_MBS=$(calc '%.1f' "$SIZE / 1048576 / $BOTO_S")
RATIO=$(calc '%.2f' "$BOTO_S / $DAEMON_S")
HWM_MIB=$(calc '%.1f' "$HWM_KB / 1024")
cat <<EOF
### Off-site upload ($COMMAND_LINE)

Archive of $MIB MiB (random data), moto_server on 127.0.0.1, same run.

| | time | throughput |
| --- | --- | --- |
| boto3 \`upload_file\` (baseline) | $(calc '%.2f' "$BOTO_S") s | $B_MBS MiB/s |
| berkutd off-site copy | $(calc '%.2f' "$DAEMON_S") s | $D_MBS MiB/s |
| **ratio (berkutd / boto3 throughput)** | | **$RATIO** (target ≥ 0.8) |

- berkutd peak RSS during the upload (VmHWM, reset before it): **$HWM_MIB MiB** (target ≤ 64 MiB); its RSS when the mark was reset: $(calc '%.1f' "$RSS0_KB / 1024") MiB
- from a backup's end to its copy \`copied\` (second backup, $MIB MiB): $(calc '%.2f' "$LAG_S") s
EOF
awk "BEGIN { exit !($RATIO >= 0.8 && $HWM_KB <= 65536) }" || exit 1
