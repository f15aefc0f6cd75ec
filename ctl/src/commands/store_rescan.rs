//! `berkutctl store rescan`: the daemon looks at the backup directory
//! again (after a mount came up, or an archive was put back): missing
//! backups whose archive is back turn succeeded. Exits 1 while the store
//! alarm is still on (most recorded archives missing).

use std::process::ExitCode;

use berkut_proto::ids::BackupId;
use berkut_proto::wire::{Operation, Reply};
use serde_json::json;

use super::Context;
use crate::output;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Rescanned {
        found,
        missing,
        added,
        unverified,
        store_alarm,
    } = client.call(Operation::StoreRescan).await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    let list = |ids: &[BackupId]| {
        ids.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if ctx.json {
        output::json_line(&json!({
            "found": found, "missing": missing, "added": added,
            "unverified": unverified, "store_alarm": store_alarm,
        }));
    } else {
        println!(
            "found again: {}; still missing: {}; added: {}; not verifying: {}",
            found.len(),
            missing.len(),
            added.len(),
            unverified.len()
        );
        for (what, ids) in [
            ("found again", &found),
            ("missing", &missing),
            ("added", &added),
            ("not verifying (see the daemon's log)", &unverified),
        ] {
            if !ids.is_empty() {
                println!("{what}: {}", list(ids));
            }
        }
    }
    if let Some(alarm) = &store_alarm {
        eprintln!("berkutctl: store alarm: {alarm}");
        return Ok(ExitCode::from(crate::exit::FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
