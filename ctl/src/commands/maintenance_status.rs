//! `berkutctl maintenance status | watch | clear`.

use std::process::ExitCode;

use berkut_proto::wire::{MaintenanceInfo, Operation, Reply, ServerMessage};

use super::Context;
use crate::output;

fn print(ctx: &Context, m: &MaintenanceInfo) {
    if ctx.json {
        output::json_line(m);
    } else if m.active {
        println!(
            "maintenance: ON since {} ({}; restore {})",
            m.since.map(output::rfc3339).unwrap_or_else(|| "-".into()),
            m.reason.as_deref().unwrap_or("-"),
            m.restore_id
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into())
        );
    } else {
        println!("maintenance: off");
    }
}

pub async fn run(ctx: &Context, op: Operation) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let reply = client
        .call_streaming(op, |m| {
            if let ServerMessage::Event { maintenance, .. } = m {
                print(ctx, maintenance)
            }
        })
        .await?;
    let Reply::Maintenance { maintenance } = reply else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    print(ctx, &maintenance);
    Ok(ExitCode::SUCCESS)
}
