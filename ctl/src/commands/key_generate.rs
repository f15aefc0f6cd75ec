//! `berkutctl key generate`: a fresh master key, made locally (the daemon is
//! not involved). Written to a file, the file is created with mode 0600 and
//! never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use berkut_proto::archive::MasterKey;

use super::Context;
use crate::display;

pub fn run(ctx: &Context, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = MasterKey::generate();
    let text = key.to_base64();
    match out {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", path.display())
                })?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            display::key::written(ctx.json, &key, path);
        }
        None => display::key::printed(ctx.json, &key, &text),
    }
    Ok(ExitCode::SUCCESS)
}
