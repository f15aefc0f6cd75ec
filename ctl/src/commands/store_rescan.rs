//! `berkutctl store rescan`: the daemon looks at the backup directory
//! again (after a mount came up, or an archive was put back): missing
//! backups whose archive is back turn succeeded. Exits 1 while the store
//! alarm is still on (most recorded archives missing).

use std::process::ExitCode;

use berkut_proto::wire::{ops, Operation, Reply};

use super::Context;
use crate::{display, exit};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Rescanned {
        found,
        missing,
        added,
        unverified,
        store_alarm,
    } = client
        .call(Operation::StoreRescan(ops::StoreRescan {}))
        .await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    display::store::rescanned(
        ctx.json,
        &found,
        &missing,
        &added,
        &unverified,
        store_alarm.as_deref(),
    );
    Ok(match store_alarm {
        Some(_) => ExitCode::from(exit::FAILED),
        None => ExitCode::SUCCESS,
    })
}
