//! `berkutctl restore rollback RID` and `restore cleanup RID`. They exit 0
//! when the daemon did the work, whatever the restore's own outcome was: a
//! cleanup of a failed or interrupted restore is a successful cleanup.

use std::process::ExitCode;

use berkut_proto::wire::Operation;

use super::restore_start::{expect_restore, print};
use super::restore_status::parse_restore_id;
use super::Context;

pub async fn run(ctx: &Context, id: &str, rollback: bool) -> anyhow::Result<ExitCode> {
    let restore_id = parse_restore_id(id)?;
    let op = if rollback {
        Operation::RestoreRollback { restore_id }
    } else {
        Operation::RestoreCleanup { restore_id }
    };
    let mut client = ctx.connect().await?;
    let record = expect_restore(client.call(op).await?)?;
    if ctx.json {
        crate::output::json_line(&record);
    } else {
        print(&record);
    }
    Ok(ExitCode::SUCCESS)
}
