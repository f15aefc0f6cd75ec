//! The one Python venv of the tests (moto_server and boto3, the archive
//! reader's `cryptography` and `zstandard`, openapi-spec-validator), made
//! by `scripts/ensure-deps.sh`: `$BERKUT_VENV`, by default
//! `/opt/berkut-venv`, the same default as `scripts/lib/venv.sh`.

use std::path::PathBuf;

/// Where the venv is.
pub fn venv() -> PathBuf {
    std::env::var_os("BERKUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/berkut-venv"))
}

/// A program of the venv (`python`, `moto_server`, ...), which must be
/// there: a missing one says how to get it.
pub fn venv_bin(name: &str) -> PathBuf {
    let bin = venv().join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/ensure-deps.sh",
        bin.display()
    );
    bin
}
