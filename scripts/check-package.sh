#!/usr/bin/env bash
# Builds the Debian package `berkut` with cargo-deb and checks what it holds:
# binaries that run, both units as in systemd/, sysusers.d and tmpfiles.d
# files, the example configuration as a conffile, man pages, and a postinst
# that creates the user and directories. Installs cargo-deb and help2man
# when missing. The package ends up in target/debian/.
#
# BERKUT_INSTALL_TEST=1 also installs the package on this machine with dpkg,
# checks the user and directories it creates, and removes it again (the
# berkut user stays, as Debian policy wants); CI does not, to leave its
# machine as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "check-package: need root (or sudo) to run: $*" >&2; exit 1
    fi
}
fail() { echo "check-package: $*" >&2; exit 1; }

if ! cargo deb --version >/dev/null 2>&1; then
    echo "check-package: installing cargo-deb" >&2
    cargo install --locked cargo-deb
fi
if ! command -v help2man >/dev/null; then
    echo "check-package: installing help2man" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq help2man >/dev/null ||
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq help2man >/dev/null; }
fi

echo "check-package: release build"
cargo build --release --locked --workspace --bins

echo "check-package: man pages from --help"
mkdir -p target/release/man
help2man --no-info --section 8 --name "encrypted, scheduled, verified backups of a PostgreSQL database" \
    target/release/berkutd | gzip -9n > target/release/man/berkutd.8.gz
help2man --no-info --section 1 --name "the administrator's command line for berkutd" \
    target/release/berkutctl | gzip -9n > target/release/man/berkutctl.1.gz
help2man --no-info --section 8 --name "HTTP gateway onto berkutd's socket: the application's REST API for backups" \
    target/release/berkut-http | gzip -9n > target/release/man/berkut-http.8.gz

echo "check-package: cargo deb"
rm -rf target/debian
cargo deb -p berkut-daemon --no-build --strip
deb=$(ls target/debian/berkut_*.deb)
[ "$(echo "$deb" | wc -l)" -eq 1 ] || fail "expected one package, found: $deb"
echo "check-package: $deb ($(du -h "$deb" | cut -f1))"

info=$(dpkg-deb -I "$deb")
field() { printf '%s\n' "$info" | sed -n "s/^ $1: //p"; }
[ "$(field Package)" = berkut ] || fail "Package is '$(field Package)'"
field Depends | grep -q 'postgresql-client' || fail "Depends lacks postgresql-client: $(field Depends)"
field Depends | grep -q 'libc6' || fail "Depends lacks the shared libraries: $(field Depends)"

contents=$(dpkg-deb -c "$deb")
has() { # has MODE PATH
    printf '%s\n' "$contents" | awk -v m="$1" -v p="./$2" '$1 == m && $6 == p { found = 1 } END { exit !found }' ||
        fail "no $2 with mode $1 in the package:
$contents"
}
has -rwxr-xr-x usr/bin/berkutd
has -rwxr-xr-x usr/bin/berkutctl
unitdir=$(printf '%s\n' "$contents" | awk '$6 ~ /systemd\/system\/berkutd.service$/ { sub("^\\./", "", $6); sub("/berkutd.service$", "", $6); print $6 }')
[ -n "$unitdir" ] || fail "no berkutd.service in the package"
has -rw-r--r-- "$unitdir/berkutd.service"
has -rw-r--r-- "$unitdir/berkutd.socket"
has -rwxr-xr-x usr/bin/berkut-http
has -rw-r--r-- "$unitdir/berkut-http.service"
has -rw-r--r-- "$unitdir/berkut-http.socket"
has -rw-r--r-- usr/lib/sysusers.d/berkut-http.conf
has -rw-r--r-- usr/share/man/man8/berkut-http.8.gz
has -rw-r--r-- usr/lib/sysusers.d/berkut.conf
has -rw-r--r-- usr/lib/tmpfiles.d/berkut.conf
has -rw-r----- etc/berkut/berkutd.toml
has -rw-r--r-- usr/share/man/man8/berkutd.8.gz
has -rw-r--r-- usr/share/man/man1/berkutctl.1.gz
has -rw-r--r-- usr/share/doc/berkut/examples/berkut.rules.yml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/berkut/berkutd.toml "$work/control/conffiles" || fail "berkutd.toml is not a conffile"
for script in postinst postrm; do
    [ -x "$work/control/$script" ] || fail "no $script"
    sh -n "$work/control/$script" || fail "$script is not valid sh"
    ! grep -q '#DEBHELPER#' "$work/control/$script" || fail "#DEBHELPER# left in $script"
done
grep -q 'systemd-sysusers /usr/lib/sysusers.d/berkut.conf' "$work/control/postinst" || fail "postinst does not create the user"
grep -q 'systemd-sysusers /usr/lib/sysusers.d/berkut-http.conf' "$work/control/postinst" || fail "postinst does not create the gateway's user"
grep -q 'systemd-tmpfiles --create /usr/lib/tmpfiles.d/berkut.conf' "$work/control/postinst" || fail "postinst does not create the directories"

dpkg-deb -x "$deb" "$work/root"
for unit in berkutd.service berkutd.socket berkut-http.service berkut-http.socket; do
    cmp -s "$work/root/$unitdir/$unit" "systemd/$unit" || fail "$unit in the package differs from systemd/$unit"
done
"$work/root/usr/bin/berkutd" --version | grep -q '^berkutd ' || fail "berkutd --version"
"$work/root/usr/bin/berkutctl" --version | grep -q '^berkutctl ' || fail "berkutctl --version"
"$work/root/usr/bin/berkut-http" --version | grep -q '^berkut-http ' || fail "berkut-http --version"
for bin in berkutd berkutctl berkut-http; do
    ! readelf -S "$work/root/usr/bin/$bin" | grep -q '\.debug_info' || fail "$bin is not stripped"
done
"$work/root/usr/bin/berkutctl" --help | grep -q 'backup' || fail "berkutctl --help"
zcat "$work/root/usr/share/man/man8/berkutd.8.gz" | grep -q '^\.TH BERKUTD' || fail "berkutd.8 is not a man page"
zcat "$work/root/usr/share/man/man8/berkutd.8.gz" | grep -q 'SIGHUP' || fail "berkutd.8 lacks the signals"

if [ "${BERKUT_INSTALL_TEST:-0}" = 1 ]; then
    echo "check-package: installing with dpkg"
    as_root dpkg -i "$deb"
    getent passwd berkut >/dev/null || fail "no berkut user after install"
    [ "$(stat -c '%a %U' /var/lib/berkut)" = "700 berkut" ] || fail "/var/lib/berkut is $(stat -c '%a %U' /var/lib/berkut)"
    [ "$(stat -c '%a %U %G' /etc/berkut/berkutd.toml)" = "640 root berkut" ] || fail "berkutd.toml is $(stat -c '%a %U %G' /etc/berkut/berkutd.toml)"
    as_root dpkg --purge berkut
fi
echo "check-package: ok"
