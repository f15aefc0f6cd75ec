# The one Python venv of Berkut's tests and scripts, made by
# scripts/ensure-deps.sh: moto_server and boto3 (the S3 server of the
# off-site copy tests and the upload benchmark's baseline), `cryptography`
# and `zstandard` (scripts/lib/bscc_parts.py, the independent archive
# reader) and openapi-spec-validator (berkut-http's document). Sourced by
# the scripts; the Rust tests read the same variable with the same default
# (berkut_testkit::venv). Override with BERKUT_VENV.
# shellcheck shell=bash
BERKUT_VENV=${BERKUT_VENV:-/opt/berkut-venv}
