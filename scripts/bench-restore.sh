#!/usr/bin/env bash
# Restore, transfer and verification figures, each against its obvious
# baseline in the same run on the same data:
#   real restore (berkutctl restore ID --wait)  vs  pg_restore -j N of a file pg_dump -Fc
#                                                   wrote itself (with data offsets in its
#                                                   TOC: what an operator without berkut
#                                                   restores from), and that plus
#                                                   vacuumdb --analyze-only -j N
#   dry-run (berkutctl restore ID --dry-run)    vs  the same pg_restore -j N
#   statistics: ANALYZE on one connection        vs  vacuumdb --analyze-only -j N
#   download (berkutctl backup download)        vs  cp ARCHIVE FILE (cat, in effect)
#   import (berkutctl backup import)            vs  cp FILE ARCHIVE
#   authentication (berkutctl archive verify)   vs  sha256sum ARCHIVE and cat > /dev/null, in MB/s
#   deep verification (archive verify --deep)   vs  zstd -dc DUMP.zst | sha256sum
# Prints a Markdown report on stdout; progress on stderr. Exits 1 if the real
# restore (which gathers statistics) takes more than 1.15x pg_restore plus
# vacuumdb --analyze-only, 2 if it cannot run.
#   BENCH_SIZE_GB (default 1)  BENCH_JOBS (pg_restore -j, default 2)
#   BENCH_ROUNDS (default 3): rounds of (baseline restore, berkut restore),
#   alternating which goes first, each after a CHECKPOINT and a sync; the
#   medians are reported. One run of each swung by a factor of two between
#   runs on the same machine (12.5 to 24.2 s for the same pg_restore), with
#   whatever the disk was still writing.
#   BENCH_SKIP_BUILD=1 uses the existing target/release binaries
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/stats.sh
. scripts/lib/stats.sh
SIZE_GB=${BENCH_SIZE_GB:-1}
JOBS=${BENCH_JOBS:-2}
ROUNDS=${BENCH_ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive whole number" >&2; exit 2; }
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "cannot run: $*"; exit 2; }
calc() { awk "BEGIN { printf $1 }"; }
now() { date +%s.%N; }
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_bin=${BERKUT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[[ -x $pg_bin/initdb ]] || die "no PostgreSQL server programs (apt-get install postgresql)"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries"
    cargo build --quiet --release -p berkut-daemon -p berkut-ctl
fi
bin=$PWD/target/release

work=$(mktemp -d /tmp/berkut-bench-restore.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

log "starting a cluster and loading about ${SIZE_GB} GiB"
mkdir -p "$work/pg" "$work/sock"
[[ $EUID -eq 0 ]] && chown postgres "$work/pg" "$work/sock"
(cd / && as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null)
(cd / && as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w -o "-c listen_addresses='' -k $work/sock -c shared_buffers=256MB -c maintenance_work_mem=256MB -c max_wal_size=4GB" start >/dev/null)
export PGHOST=$work/sock PGPORT=5432 PGUSER=postgres
psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1)
"${psql[@]}" -c "CREATE DATABASE app"
rows=$(calc '"%d", '"$SIZE_GB * 4300000")
"${psql[@]}" -d app <<SQL
CREATE TABLE accounts (id bigint PRIMARY KEY, name text, email text, balance numeric(14,2), opened timestamptz);
CREATE TABLE events (id bigint PRIMARY KEY, account bigint REFERENCES accounts, kind text, payload jsonb, at timestamptz);
INSERT INTO accounts SELECT g, 'name ' || md5(g::text), md5((g*3)::text) || '@example.org', (g % 100000) / 7.0, timestamptz '2020-01-01' + g * interval '11 seconds' FROM generate_series(1, $rows / 10) g;
INSERT INTO events SELECT g, 1 + g % ($rows / 10), (ARRAY['login','order','refund','logout'])[1 + g % 4], jsonb_build_object('ref', md5(g::text), 'n', g % 977, 'tag', md5((g*7)::text)), timestamptz '2024-01-01' + g * interval '3 seconds' FROM generate_series(1, $rows) g;
CREATE INDEX ON events (account, at);
CREATE INDEX ON accounts (email);
VACUUM ANALYZE;
SQL
size=$("${psql[@]}" -d app -Atc "SELECT pg_database_size('app')")
log "database: $(calc '"%.2f", '"$size / 1073741824") GiB"

"$bin/berkutctl" key generate -o "$work/key" >/dev/null 2>&1
start_daemon() { # start_daemon NAME -> sets SOCK
    local name=$1
    BERKUT_SOCKET=$work/$name/run/sock BERKUT_STATE_DIR=$work/$name/state BERKUT_BACKUP_PATH=$work/$name/backups \
    BERKUT_BACKUP_ENCRYPTION_KEY_FILE=$work/key BERKUT_DATABASE_URL="postgresql://postgres@/app?host=$work/sock&port=5432" \
    BERKUT_BACKUP_PGDUMP_BIN=$pg_bin/pg_dump BERKUT_RESTORE_JOBS=$JOBS BERKUT_LOG=warn \
        "$bin/berkutd" 2>"$work/$name.log" &
    pids+=($!)
    SOCK=$work/$name/run/sock
    for _ in $(seq 1 600); do BERKUT_SOCKET=$SOCK "$bin/berkutctl" status >/dev/null 2>&1 && return; sleep 0.05; done
    die "berkutd did not start: $(cat "$work/$name.log")"
}
# timed CMD... -> seconds; the command's stdout is kept in $work/last.out.
timed() { local t0; t0=$(now); "$@" >"$work/last.out"; calc '"%.2f", '"$(now) - $t0"; }
last_status() { tail -n 1 "$work/last.out" | field status; }
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n 1; }

start_daemon a
ctl() { BERKUT_SOCKET=$SOCK "$bin/berkutctl" "$@"; }
log "backup"
record=$(ctl backup create --scope database --wait --json | tail -n 1)
id=$(field id <<<"$record")
archive=$work/a/backups/$id.bscc
archive_size=$(stat -c %s "$archive")
ctl archive extract "$archive" --key-file "$work/key" -o "$work/extracted" >/dev/null
dump=$work/extracted/dump.pgcustom
# The operator's baseline: a dump pg_dump wrote to a file itself (zlib,
# with data offsets in its table of contents, so pg_restore -j seeks).
log "baseline: pg_dump -Fc to a file"
t_pgdump=$(timed "$pg_bin/pg_dump" -Fc -d app -f "$work/baseline.dump")
base_dump=$work/baseline.dump

# Each timed restore starts from the same state: nothing dirty left for the
# disk to write meanwhile.
settle() { "${psql[@]}" -c "CHECKPOINT"; sync; }
bases=() anjs=() reals=()
baseline_round() {
    log "baseline: pg_restore -j $JOBS of pg_dump's own file"
    "${psql[@]}" -c "CREATE DATABASE baseline"
    settle
    bases+=("$(timed "$pg_bin/pg_restore" -j "$JOBS" --exit-on-error -d baseline "$base_dump")")
    # A restored database serves well only once it has planner statistics,
    # which berkut gathers before the swap: the baseline for "ready to
    # serve" adds them. The first round also times one ANALYZE on one
    # connection against the parallel way, which is what the daemon does
    # (one table at a time on BERKUT_RESTORE_JOBS connections).
    if [[ -z ${t_an1:-} ]]; then
        log "statistics: ANALYZE on one connection vs vacuumdb --analyze-only -j $JOBS"
        t_an1=$(timed "${psql[@]}" -d baseline -c "ANALYZE")
    fi
    anjs+=("$(timed "$pg_bin/vacuumdb" --analyze-only -q -j "$JOBS" -d baseline)")
    "${psql[@]}" -c "DROP DATABASE baseline"
}
berkut_round() {
    log "berkut: real restore"
    settle
    reals+=("$(timed ctl restore "$id" --wait --json)")
    [[ $(last_status) == succeeded ]] || die "the restore did not succeed"
}
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then baseline_round; berkut_round; else berkut_round; baseline_round; fi
done
t_base=$(median 2 "${bases[@]}")
t_anj=$(median 2 "${anjs[@]}")
t_real=$(median 2 "${reals[@]}")
t_ready=$(calc '"%.2f", '"$t_base + $t_anj")
log "berkut: dry-run"
settle
t_dry=$(timed ctl restore "$id" --dry-run --wait --json)
[[ $(last_status) == succeeded ]] || die "the dry-run did not succeed"

log "download and import"
t_cat_out=$(timed cp --reflink=never "$archive" "$work/cat-copy.bscc")
rm -f "$work/cat-copy.bscc"
t_down=$(timed ctl backup download "$id" -o "$work/download.bscc")
cmp -s "$archive" "$work/download.bscc" || die "the download differs from the archive"
start_daemon b
mkdir -p "$work/b-cat"
t_cat_in=$(timed cp --reflink=never "$work/download.bscc" "$work/b-cat/copy.bscc")
t_up=$(timed ctl backup import "$work/download.bscc")

log "authentication throughput"
t_verify=$(timed ctl archive verify "$archive" --key-file "$work/key")
t_sha=$(timed sha256sum "$archive")
t_read=$(timed cat "$archive")
t_deep=$(timed ctl archive verify --deep "$archive" --key-file "$work/key")
zstd -q -1 -T2 -c "$dump" >"$work/dump.zst"
t_zsha=$(timed sh -c "zstd -dc '$work/dump.zst' | sha256sum")
mbs() { calc '"%.0f", '"$archive_size / 1048576 / $1"; }

ratio=$(calc '"%.2f", '"$t_real / $t_base")
cat <<REPORT
## Restore, transfer and verification ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))

Command: \`BENCH_SIZE_GB=$SIZE_GB BENCH_JOBS=$JOBS BENCH_ROUNDS=$ROUNDS scripts/bench-restore.sh\` on $(nproc) cores,
$(free -g | awk '/Mem:/ {print $2}') GiB, PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'). Database $(calc '"%.2f", '"$size / 1073741824") GiB;
archive $(calc '"%.0f", '"$archive_size / 1048576") MiB. Page cache warm for both sides of every pair.
Restores: medians of $ROUNDS interleaved rounds (pg_restore ${bases[*]} s; vacuumdb ${anjs[*]} s; berkut ${reals[*]} s).

| what | berkut | baseline | ratio |
| --- | --- | --- | --- |
| real restore (verify, decrypt, restore -j $JOBS, properties, ANALYZE, smoke checks, swap) | ${t_real} s | pg_restore -j $JOBS + vacuumdb --analyze-only -j $JOBS: ${t_ready} s | **$(calc '"%.2f", '"$t_real / $t_ready")×** |
| the same, against the bare restore without statistics | ${t_real} s | pg_restore -j $JOBS: ${t_base} s | ${ratio}× |
| statistics: ANALYZE of every table | vacuumdb --analyze-only -j $JOBS: ${t_anj} s | one ANALYZE: ${t_an1} s | $(calc '"%.2f", '"$t_anj / $t_an1")× |
| dry-run (the same, into a scratch database, dropped) | ${t_dry} s | pg_restore -j $JOBS: ${t_base} s | $(calc '"%.2f", '"$t_dry / $t_base")× |
| download | ${t_down} s ($(mbs "$t_down") MB/s) | cp: ${t_cat_out} s ($(mbs "$t_cat_out") MB/s) | $(calc '"%.2f", '"$t_down / $t_cat_out")× |
| import (upload, quarantine, full verification, rename) | ${t_up} s ($(mbs "$t_up") MB/s) | cp: ${t_cat_in} s ($(mbs "$t_cat_in") MB/s) | $(calc '"%.2f", '"$t_up / $t_cat_in")× |
| archive authentication (archive verify) | ${t_verify} s, $(mbs "$t_verify") MB/s | sha256sum: ${t_sha} s, $(mbs "$t_sha") MB/s; cat: $(mbs "$t_read") MB/s | $(calc '"%.2f", '"$t_verify / $t_sha")× sha256sum's time |
| deep verification (archive verify --deep: decompress, sha256 of every part) | ${t_deep} s | zstd -dc DUMP.zst \| sha256sum: ${t_zsha} s | $(calc '"%.2f", '"$t_deep / $t_zsha")× |

The baseline dump (\`pg_dump -Fc -f\`, ${t_pgdump} s) is $(calc '"%.0f", '"$(stat -c %s "$base_dump") / 1048576") MiB; the archive is $(calc '"%.2f", '"$archive_size / $(stat -c %s "$base_dump")")× its size.

Target: real restore within 1.15× of pg_restore -j $JOBS plus vacuumdb --analyze-only -j $JOBS: $(awk "BEGIN { print ($t_real <= 1.15 * $t_ready) ? \"met\" : \"**MISSED**\" }").
REPORT
awk "BEGIN { exit !($t_real <= 1.15 * $t_ready) }"
