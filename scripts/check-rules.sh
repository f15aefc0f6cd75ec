#!/usr/bin/env bash
# Checks the example alert rules: `promtool check rules` on
# packaging/berkut.rules.yml, and `promtool test rules` with its tests
# (packaging/berkut.rules.test.yml). promtool comes with Debian's
# prometheus package (scripts/ensure-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null; then
    echo "check-rules: promtool is missing (apt-get install --no-install-recommends prometheus)" >&2
    exit 1
fi
promtool check rules packaging/berkut.rules.yml
(cd packaging && promtool test rules berkut.rules.test.yml)
