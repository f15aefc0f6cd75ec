//! What the monitoring commands show: `metrics` (the daemon's text as it
//! came, or in a JSON object) and `notify test` (one line per sink).

use berkut_proto::wire::SinkResult;
use serde_json::json;

use super::json_line;
use super::text::printable;

pub fn metrics(json: bool, text: &str) {
    if json {
        json_line(&json!({ "text": text }));
    } else {
        // Prometheus text, as a scraper wants it; made safe for a
        // terminal line by line (it is the daemon's own text, but a
        // terminal is no place to trust a peer).
        for line in text.lines() {
            println!("{}", printable(line));
        }
    }
}

pub fn notify_tested(json: bool, results: &[SinkResult]) {
    if json {
        json_line(&json!({ "results": results }));
    } else {
        for r in results {
            println!(
                "{}: {} ({})",
                printable(&r.sink),
                if r.ok { "delivered" } else { "FAILED" },
                printable(&r.detail)
            );
        }
    }
    if results.is_empty() {
        eprintln!("berkutctl: no notification sinks are configured ([[notify]])");
    }
}
