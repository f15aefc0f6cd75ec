//! `berkutctl store rewrap`: the daemon re-wraps every archive not under
//! its primary key.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply};
use serde_json::json;

use super::Context;
use crate::output;

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Rewrapped {
        rewrapped,
        unchanged,
        busy,
        failed,
    } = client.call(Operation::StoreRewrap).await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    let list = |ids: &[berkut_proto::ids::BackupId]| {
        ids.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if ctx.json {
        output::json_line(
            &json!({ "rewrapped": rewrapped, "unchanged": unchanged, "busy": busy, "failed": failed }),
        );
    } else {
        println!(
            "rewrapped {} archives; {unchanged} already under the primary key",
            rewrapped.len()
        );
        if !busy.is_empty() {
            println!("in use, left for a later run: {}", list(&busy));
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "berkutctl: could not rewrap (see the daemon's log): {}",
            list(&failed)
        );
    }
    Ok(if busy.is_empty() && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}
