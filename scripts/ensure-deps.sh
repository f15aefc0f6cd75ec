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

# A real S3 server for the off-site copy tests (moto_server, any
# credentials) and boto3 for scripts/bench-upload.sh's baseline, in a venv
# of their own. The test kit finds it at this path (or BERKUT_MOTO_SERVER).
MOTO_VENV="${BERKUT_TEST_VENV:-/opt/berkut-test-venv}"
if ! [ -x "$MOTO_VENV/bin/moto_server" ] || ! "$MOTO_VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    echo "ensure-deps: installing moto[server] and boto3 into $MOTO_VENV" >&2
    if ! python3 -m venv "$MOTO_VENV" 2>/dev/null; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$MOTO_VENV"
    fi
    "$MOTO_VENV/bin/pip" install -q 'moto[server]' boto3
fi

# The independent Python reader of .bscc archives (scripts/lib/bscc_parts.py),
# which the format's vector tests run, needs `cryptography` and, for format
# version 2, `zstandard`: both from PyPI into a venv of their own, which the
# tests find at $BERKUT_PYENV (default ~/.cache/berkut/pyenv).
PYENV="${BERKUT_PYENV:-$HOME/.cache/berkut/pyenv}"
if ! "$PYENV/bin/python" -c 'import zstandard, cryptography' >/dev/null 2>&1; then
    echo "ensure-deps: installing zstandard and cryptography into $PYENV" >&2
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv --system-site-packages "$PYENV"
    "$PYENV/bin/pip" install -q zstandard cryptography
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

# berkut-http's OpenAPI document is checked by openapi-spec-validator, in a
# venv of its own (BERKUT_HTTP_VENV, default /opt/berkut-http-venv).
http_venv=${BERKUT_HTTP_VENV:-/opt/berkut-http-venv}
if [ ! -x "$http_venv/bin/openapi-spec-validator" ]; then
    echo "ensure-deps: installing openapi-spec-validator into $http_venv" >&2
    as_root python3 -m venv "$http_venv"
    as_root "$http_venv/bin/pip" install -q 'openapi-spec-validator>=0.7,<0.8'
fi

# The evidence export's tests open the archives the way an auditor would:
# GNU tar, gzip, zstd (for .tar.zst) and sha256sum.
if ! command -v zstd >/dev/null || ! command -v gzip >/dev/null; then
    echo "ensure-deps: installing zstd and gzip" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd gzip >/dev/null \
        || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
             && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd gzip >/dev/null; }
fi
