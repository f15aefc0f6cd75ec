#!/usr/bin/env bash
# Installs what building and testing Berkut needs and a fresh Debian machine
# with Rust may lack: PostgreSQL's server binaries (initdb, pg_ctl, pg_dump,
# pg_restore) and cargo-nextest. Safe to run again; does nothing when all is
# there.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "ensure-deps: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

have_postgres() {
    [ -n "${BERKUT_PG_BIN:-}" ] && [ -x "$BERKUT_PG_BIN/initdb" ] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if ! have_postgres; then
    echo "ensure-deps: installing PostgreSQL with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # The package's own cluster is not needed: the tests and the demo start
    # throwaway clusters of their own.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

# The tests run throwaway clusters as the postgres user when run as root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "ensure-deps: creating the postgres system user" >&2
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "ensure-deps: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi

# `script` (util-linux) gives the progress-bar test a pseudo-terminal.
if ! command -v script >/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null || true
fi

# promtool (Debian's prometheus package) checks the metrics text in the
# tests and packaging/berkut.rules.yml in CI. Without recommends: no
# node_exporter; the package's service is not started where there is no
# systemd (and does not need to run where there is).
if ! command -v promtool >/dev/null; then
    echo "ensure-deps: installing promtool (prometheus)" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

# One Python venv for every test and script that runs Python (see
# scripts/lib/venv.sh for what each package is for). Rebuilt in place when
# a package is missing; pip keeps what is already there.
# shellcheck source=scripts/lib/venv.sh
. "$(dirname "$0")/lib/venv.sh"
venv_complete() {
    [ -x "$BERKUT_VENV/bin/moto_server" ] && [ -x "$BERKUT_VENV/bin/openapi-spec-validator" ] &&
        "$BERKUT_VENV/bin/python" -c 'import boto3, crc32c, cryptography, zstandard' >/dev/null 2>&1
}
if ! venv_complete; then
    echo "ensure-deps: installing the Python packages into $BERKUT_VENV" >&2
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    # Where the directory can be made without root (BERKUT_VENV under
    # $HOME), it is; /opt needs root.
    venv_run() { if mkdir -p "$BERKUT_VENV" 2>/dev/null && [ -w "$BERKUT_VENV" ]; then "$@"; else as_root "$@"; fi; }
    venv_run python3 -m venv "$BERKUT_VENV"
    # moto's s3crc32c extra: a true CRC32C (without it moto falls back to
    # CRC32, and the daemon's copy checks would see every copy differ).
    venv_run "$BERKUT_VENV/bin/pip" install -q 'moto[server,s3crc32c]' boto3 cryptography zstandard \
        'openapi-spec-validator>=0.7,<0.8'
fi

# The evidence export's tests open the archives the way an auditor would:
# GNU tar, gzip, zstd (for .tar.zst) and sha256sum.
if ! command -v zstd >/dev/null || ! command -v gzip >/dev/null; then
    echo "ensure-deps: installing zstd and gzip" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd gzip >/dev/null \
        || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd gzip >/dev/null; }
fi
