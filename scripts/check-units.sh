#!/usr/bin/env bash
# Checks the systemd files: both units pass `systemd-analyze verify`, the
# service's `systemd-analyze security --offline=yes` exposure is at most
# MAX_EXPOSURE (2.0), and the sysusers.d and tmpfiles.d files create the
# user and directories they promise (applied to a scratch root). Needs
# systemd-analyze, not systemd as PID 1. As root it puts a stub at
# /usr/bin/berkutd while verifying (the unit's ExecStart must exist) unless a
# real one is installed, and removes it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "check-units: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
    echo "check-units: installing systemd (for systemd-analyze)" >&2
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null ||
        { apt-get update -qq && env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
fi

stub=""
http_stub=""
cleanup() { if [ -n "$stub" ]; then rm -f "$stub"; fi; if [ -n "$http_stub" ]; then rm -f "$http_stub"; fi; if [ -n "${root:-}" ]; then rm -rf "$root"; fi; }
trap cleanup EXIT
if [ ! -x /usr/bin/berkutd ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "check-units: /usr/bin/berkutd is missing and only root may put a stub there" >&2; exit 1
    fi
    printf '#!/bin/sh\nexit 0\n' > /usr/bin/berkutd
    chmod 0755 /usr/bin/berkutd
    stub=/usr/bin/berkutd
fi

if [ ! -x /usr/bin/berkut-http ]; then
    [ "$(id -u)" -eq 0 ] || { echo "check-units: /usr/bin/berkut-http is missing and only root may put a stub there" >&2; exit 1; }
    printf '#!/bin/sh\nexit 0\n' > /usr/bin/berkut-http
    chmod 0755 /usr/bin/berkut-http
    http_stub=/usr/bin/berkut-http
fi

echo "check-units: systemd-analyze verify"
# --man=no: the man pages named in Documentation= come with the package.
systemd-analyze verify --man=no systemd/berkutd.service systemd/berkutd.socket
systemd-analyze verify --man=no systemd/berkut-http.service systemd/berkut-http.socket
# berkut-http takes its socket from systemd and must stay socket-activated.
grep -qx 'Requires=berkut-http.socket' systemd/berkut-http.service || { echo "check-units: berkut-http.service does not require its socket" >&2; exit 1; }
grep -qx 'SocketMode=0660' systemd/berkut-http.socket || { echo "check-units: berkut-http.socket is not mode 0660" >&2; exit 1; }

echo "check-units: systemd-analyze security --offline=yes"
report=$(systemd-analyze security --offline=yes --no-pager systemd/berkutd.service 2>&1) || true
exposure=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for berkutd.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
    printf '%s\n' "$report" >&2
    echo "check-units: no exposure figure in the report" >&2; exit 1
fi
echo "check-units: exposure $exposure (at most $MAX_EXPOSURE)"
if ! awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
    printf '%s\n' "$report" | grep '✗' >&2 || true
    echo "check-units: exposure $exposure is above $MAX_EXPOSURE" >&2; exit 1
fi

http_report=$(systemd-analyze security --offline=yes --no-pager systemd/berkut-http.service 2>&1) || true
http_exposure=$(printf '%s\n' "$http_report" | sed -n 's/.*Overall exposure level for berkut-http.service: \([0-9.]*\).*/\1/p')
[ -n "$http_exposure" ] || { printf '%s\n' "$http_report" >&2; echo "check-units: no exposure figure for berkut-http" >&2; exit 1; }
echo "check-units: berkut-http exposure $http_exposure (at most $MAX_EXPOSURE)"
if ! awk -v e="$http_exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
    printf '%s\n' "$http_report" | grep '✗' >&2 || true
    echo "check-units: berkut-http exposure $http_exposure is above $MAX_EXPOSURE" >&2; exit 1
fi

echo "check-units: sysusers.d and tmpfiles.d on a scratch root"
root=$(mktemp -d)
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp systemd/sysusers.d/berkut.conf "$root/usr/lib/sysusers.d/berkut.conf"
cp systemd/sysusers.d/berkut-http.conf "$root/usr/lib/sysusers.d/berkut-http.conf"
cp systemd/tmpfiles.d/berkut.conf "$root/usr/lib/tmpfiles.d/berkut.conf"
systemd-sysusers --root="$root"
grep -q '^berkut:x:[0-9]*:[0-9]*:Berkut backup daemon:/var/lib/berkut:/usr/sbin/nologin$' "$root/etc/passwd" || {
    echo "check-units: no berkut user in: $(cat "$root/etc/passwd" 2>&1)" >&2; exit 1; }
grep -q '^berkut:' "$root/etc/group" || { echo "check-units: no berkut group" >&2; exit 1; }
grep -q '^berkut-http:x:[0-9]*:[0-9]*:Berkut HTTP gateway:/:/usr/sbin/nologin$' "$root/etc/passwd" || {
    echo "check-units: no berkut-http user in: $(cat "$root/etc/passwd" 2>&1)" >&2; exit 1; }
grep -q '^berkut:x:[0-9]*:\(.*,\)\?berkut-http\(,.*\)\?$' "$root/etc/group" || {
    echo "check-units: berkut-http is not in the group berkut: $(cat "$root/etc/group")" >&2; exit 1; }
uid=$(awk -F: '$1 == "berkut" { print $3 }' "$root/etc/passwd")
systemd-tmpfiles --root="$root" --create
for entry in "var/lib/berkut 700" "var/lib/berkut/backups 700" "run/berkut 750"; do
    set -- $entry
    got=$(stat -c '%a %u' "$root/$1")
    [ "$got" = "$2 $uid" ] || { echo "check-units: /$1 is '$got', wanted '$2 $uid'" >&2; exit 1; }
done
echo "check-units: ok"
