#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/ensure-deps.sh), then
# runs every test of the workspace against real PostgreSQL clusters that the
# suite starts and stops itself. Extra arguments go to cargo nextest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
