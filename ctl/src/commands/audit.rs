//! `berkutctl audit tail [-n N]` and `berkutctl audit verify`.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply};
use serde_json::json;

use super::Context;
use crate::{exit, output};

pub async fn tail(ctx: &Context, lines: u32) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::Audit { lines } = client.call(Operation::AuditTail { lines }).await? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    for line in lines {
        if ctx.json {
            println!("{line}");
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let s = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v[k].to_string())
        };
        let who = match v["on_behalf_of"].as_object() {
            Some(o) => format!(
                "uid {} for {} ({})",
                v["uid"],
                o["user"].as_str().unwrap_or("?"),
                o["role"].as_str().unwrap_or("?")
            ),
            None => format!("uid {}", v["uid"]),
        };
        let outcome = match (s("decision").as_str(), v["result"].as_str()) {
            ("denied", _) => "DENIED".to_owned(),
            (_, Some(result)) => match v["code"].as_str() {
                Some(code) => format!("{result} ({code})"),
                None => result.to_owned(),
            },
            _ => s("decision"),
        };
        println!(
            "{}  {:<18} {:<28} {:<24} {}",
            s("time"),
            s("op"),
            who,
            v["target"].as_str().unwrap_or("-"),
            outcome
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(ctx: &Context) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let Reply::AuditVerified { lines, first_bad } = client.call(Operation::AuditVerify).await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if ctx.json {
        output::json_line(
            &json!({ "lines": lines, "intact": first_bad.is_none(), "first_bad": first_bad }),
        );
    }
    match first_bad {
        None => {
            if !ctx.json {
                println!("the audit trail is intact: {lines} events, every one chained to the one before");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(bad) => {
            eprintln!("berkutctl: the audit trail is broken at {bad}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}
