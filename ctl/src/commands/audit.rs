//! `berkutctl audit tail [-n N]` and `berkutctl audit verify`.

use std::process::ExitCode;

use berkut_proto::wire::{Operation, Reply};
use serde_json::json;

use super::Context;
use crate::{exit, output};

/// The most lines one request asks for: the daemon sends no more.
const PAGE_LINES: u32 = 10_000;

/// Prints the newest `lines` lines, oldest first, asking page by page: the
/// daemon sends at most 10 000 lines and at most about 1 MiB per reply, and
/// says where the page before begins (`next`).
pub async fn tail(ctx: &Context, lines: u32) -> anyhow::Result<ExitCode> {
    let mut client = ctx.connect().await?;
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut wanted = lines;
    let mut before = None;
    while wanted > 0 {
        let op = Operation::AuditTail {
            lines: wanted.min(PAGE_LINES),
            before,
        };
        let Reply::Audit { lines, next } = client.call(op).await? else {
            anyhow::bail!("unexpected reply from the daemon");
        };
        if lines.is_empty() {
            break;
        }
        wanted = wanted.saturating_sub(lines.len() as u32);
        pages.push(lines);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let lines = pages.into_iter().rev().flatten();
    for line in lines {
        if ctx.json {
            println!("{line}");
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(mark) = v["checkpoint"].as_object() {
            println!(
                "{}  checkpoint ({}) after line {}",
                v["time"].as_str().unwrap_or("-"),
                mark.get("reason").and_then(|r| r.as_str()).unwrap_or("?"),
                mark.get("lines").unwrap_or(&serde_json::Value::Null)
            );
            continue;
        }
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
            ("denied", _) => match v["code"].as_str() {
                Some("forbidden") | None => "DENIED".to_owned(),
                Some(code) => format!("DENIED ({code})"),
            },
            (_, Some(result)) => match v["code"].as_str() {
                Some(code) => format!("{result} ({code})"),
                None => result.to_owned(),
            },
            _ => s("decision"),
        };
        let outcome = match v["count"].as_u64() {
            Some(count) => format!("{outcome} x{count} until {}", s("until")),
            None => outcome,
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
    let Reply::AuditVerified {
        lines,
        first_bad,
        removed,
    } = client.call(Operation::AuditVerify).await?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if ctx.json {
        output::json_line(
            &json!({ "lines": lines, "removed": removed, "intact": first_bad.is_none(), "first_bad": first_bad }),
        );
    }
    match first_bad {
        None => {
            if !ctx.json {
                println!("the audit trail is intact: {lines} lines, every one chained to the one before, the last the one the daemon wrote");
                if removed > 0 {
                    println!("{removed} older lines were removed to keep the audit directory under its bound");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(bad) => {
            eprintln!("berkutctl: the audit trail is broken at {bad}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}
