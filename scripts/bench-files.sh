#!/usr/bin/env bash
# What redaction costs the files part of a backup, against its obvious
# baselines in the same run on the same tree (BENCH_FILES configuration
# files, default 6000: .env, YAML, TOML, JSON, INI, plain text, about
# 1.4 KB each, secrets in most):
#   the walker with redaction on        vs  tar's append_dir_all (what
#                                           --include-files did before)
#                                       vs  the walker with redact = false
# Best of five runs each, the tar stream written to a counter (no disk, no
# cipher: the archive's own cost is measured by bench-backup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${BENCH_FILES:-6000}
cargo build --quiet --release -p berkut-daemon --example bench_files
nice ./target/release/examples/bench_files "$FILES"
