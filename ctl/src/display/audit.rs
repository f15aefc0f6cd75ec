//! The audit trail: its lines as they are stored (JSON) or as a table for
//! people, and the verdict of `audit verify`.

use serde_json::{json, Value};

use super::json_line;

/// One stored audit line: as it is with `--json`, a row for people.
pub fn line(json: bool, line: &str) {
    if json {
        println!("{line}");
    } else {
        println!("{}", row(line));
    }
}

/// An audit line for people: time, operation, who, target, outcome; or a
/// checkpoint.
fn row(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_default();
    if let Some(mark) = v["checkpoint"].as_object() {
        return format!(
            "{}  checkpoint ({}) after line {}",
            v["time"].as_str().unwrap_or("-"),
            mark.get("reason").and_then(|r| r.as_str()).unwrap_or("?"),
            mark.get("lines").unwrap_or(&Value::Null)
        );
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
    format!(
        "{}  {:<18} {:<28} {:<24} {}",
        s("time"),
        s("op"),
        who,
        v["target"].as_str().unwrap_or("-"),
        outcome
    )
}

/// The verdict of `audit verify`; a break is said on stderr.
pub fn verified(json: bool, lines: u64, removed: u64, first_bad: Option<&str>) {
    if json {
        json_line(
            &json!({ "lines": lines, "removed": removed, "intact": first_bad.is_none(), "first_bad": first_bad }),
        );
    }
    match first_bad {
        None if !json => {
            println!("the audit trail is intact: {lines} lines, every one chained to the one before, the last the one the daemon wrote");
            if removed > 0 {
                println!("{removed} older lines were removed to keep the audit directory under its bound");
            }
        }
        None => {}
        Some(bad) => eprintln!("berkutctl: the audit trail is broken at {bad}"),
    }
}
