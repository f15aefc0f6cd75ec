#!/usr/bin/env bash
# The HTTP gateway's transfer figures, each against its obvious baseline in
# the same run on the same archive:
#   download through berkut-http (curl -o FILE)  vs  berkutctl backup download (the socket directly)
#   import through berkut-http (curl -T FILE)    vs  berkutctl backup import
# and the gateway's peak resident memory over the run (VmHWM), which stays
# flat whatever the archive's size because nothing is buffered whole.
# Prints a Markdown report on stdout; progress on stderr. Exits 2 if it
# cannot run.
#   BENCH_SIZE_MB (default 300: the database's size)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${BENCH_SIZE_MB:-300}
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "cannot run: $*"; exit 2; }
calc() { awk "BEGIN { printf $1 }"; }
now() { date +%s.%N; }
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n 1; }
timed() { local t0; t0=$(now); "$@" >/dev/null; calc '"%.2f", '"$(now) - $t0"; }

pg_bin=${BERKUT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[[ -x $pg_bin/initdb ]] || die "no PostgreSQL server programs (apt-get install postgresql)"
command -v curl >/dev/null || die "curl is missing"
log "building release binaries"
cargo build --quiet --release -p berkut-daemon -p berkut-ctl -p berkut-http
bin=$PWD/target/release

work=$(mktemp -d /tmp/berkut-bench-http.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

log "starting a cluster and loading about ${SIZE_MB} MB"
mkdir -p "$work/pg" "$work/sock" "$work/run"
[[ $EUID -eq 0 ]] && chown postgres "$work/pg" "$work/sock"
(cd / && as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null)
(cd / && as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w -o "-c listen_addresses='' -k $work/sock" start >/dev/null)
export PGHOST=$work/sock PGPORT=5432 PGUSER=postgres
"$pg_bin/psql" -X -q -c "CREATE DATABASE app"
rows=$(calc '"%d", '"$SIZE_MB * 7000")
"$pg_bin/psql" -X -q -d app -c "CREATE TABLE t AS SELECT g, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, $rows) g"

"$bin/berkutctl" key generate -o "$work/key" >/dev/null 2>&1
# The bench runs as one uid: it is the application (`app`), and berkutctl
# names a user too, so both sides make the same requests.
printf '[[access]]\nuid = %d\nrole = "app"\n' "$(id -u)" > "$work/berkutd.toml"
SOCK=$work/run/berkutd.sock
BERKUT_SOCKET=$SOCK BERKUT_STATE_DIR=$work/state BERKUT_BACKUP_PATH=$work/backups \
BERKUT_BACKUP_ENCRYPTION_KEY_FILE=$work/key BERKUT_DATABASE_URL="postgresql://postgres@/app?host=$work/sock&port=5432" \
BERKUT_BACKUP_PGDUMP_BIN=$pg_bin/pg_dump BERKUT_LOG=warn \
    "$bin/berkutd" --config "$work/berkutd.toml" 2>"$work/berkutd.log" &
pids+=($!)
ctl() { BERKUT_SOCKET=$SOCK "$bin/berkutctl" --on-behalf-of bench --role admin "$@"; }
for _ in $(seq 1 600); do ctl status >/dev/null 2>&1 && break; sleep 0.05; done
ctl status >/dev/null || die "berkutd did not start: $(cat "$work/berkutd.log")"

HTTP=$work/run/http.sock
BERKUT_HTTP_LOG=warn "$bin/berkut-http" --listen "unix:$HTTP" --socket "$SOCK" 2>"$work/http.log" &
gw=$!
pids+=($gw)
for _ in $(seq 1 600); do [[ -S $HTTP ]] && break; sleep 0.05; done
[[ -S $HTTP ]] || die "berkut-http did not start: $(cat "$work/http.log")"
H=(-sf --unix-socket "$HTTP" -H 'X-Berkut-User: bench' -H 'X-Berkut-Role: admin')

log "backup"
id=$(ctl backup create --scope database --wait --json | tail -n 1 | field id)
archive=$work/backups/$id.bscc
size=$(stat -c %s "$archive")
sha=$(sha256sum "$archive" | cut -d' ' -f1)
rss_start=$(awk '/VmRSS/ { print $2 }' "/proc/$gw/status")

best() { # best CMD...: the fastest of three runs, in seconds
    local b="" t
    for _ in 1 2 3; do t=$(timed "$@"); if [[ -z $b ]] || awk "BEGIN { exit !($t < $b) }"; then b=$t; fi; done
    echo "$b"
}
dl_ctl() { rm -f "$work/ctl.bscc"; ctl backup download "$id" -o "$work/ctl.bscc"; }
dl_http() { curl "${H[@]}" -o "$work/http.bscc" "http://localhost/api/backups/$id/download"; }
log "downloads"
t_dl_ctl=$(best dl_ctl)
t_dl_http=$(best dl_http)
[[ $(sha256sum "$work/http.bscc" | cut -d' ' -f1) == "$sha" ]] || die "the gateway's download differs from the archive"
im_ctl() { ctl backup delete "$id" >/dev/null; ctl backup import "$work/ctl.bscc"; }
im_http() { ctl backup delete "$id" >/dev/null; curl "${H[@]}" -T "$work/http.bscc" -X POST http://localhost/api/backups/import; }
log "imports"
t_im_ctl=$(best im_ctl)
t_im_http=$(best im_http)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$gw/status")

mb=$(calc '"%.1f", '"$size / 1048576")
cat <<REPORT
### The HTTP gateway: $mb MiB archive ($(date -u +%Y-%m-%d), $(nproc) cores)

| transfer | berkutctl (socket) | berkut-http (curl) | ratio http/ctl |
| --- | --- | --- | --- |
| download | ${t_dl_ctl} s ($(calc '"%.0f", '"$size / 1048576 / $t_dl_ctl") MiB/s) | ${t_dl_http} s ($(calc '"%.0f", '"$size / 1048576 / $t_dl_http") MiB/s) | $(calc '"%.2f", '"$t_dl_http / $t_dl_ctl") |
| import | ${t_im_ctl} s | ${t_im_http} s | $(calc '"%.2f", '"$t_im_http / $t_im_ctl") |

berkut-http's resident memory: ${rss_start} KiB at the start, peak ${hwm} KiB over the run (VmHWM), for a ${mb} MiB archive moved 12 times.
REPORT
