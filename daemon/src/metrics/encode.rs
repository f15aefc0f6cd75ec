//! The figures in the Prometheus text format (version 0.0.4, what
//! node_exporter's textfile collector and every scraper read), encoded by
//! `prometheus-client`. Every metric is described once, in `METRICS`: its
//! name as exposed, type and HELP text; the README's metrics table is
//! generated from it (a test compares them). No label carries a backup id:
//! the labels are a few fixed words (origin, kind, result, version).

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::figures::Figures;

/// One metric as exposed: name (counters with their `_total`), type, HELP.
pub struct Described {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    pub labels: &'static str,
}

const fn metric(
    name: &'static str,
    kind: &'static str,
    labels: &'static str,
    help: &'static str,
) -> Described {
    Described {
        name,
        kind,
        help,
        labels,
    }
}

pub const METRICS: &[Described] = &[
    metric("berkut_up", "gauge", "", "1 while berkutd runs and can read its state"),
    metric(
        "berkut_build_info",
        "gauge",
        "version",
        "Always 1; the version label is berkutd's version",
    ),
    metric(
        "berkut_backup_last_success_timestamp_seconds",
        "gauge",
        "",
        "When the newest succeeded backup finished (Unix time); absent before the first",
    ),
    metric(
        "berkut_backup_last_failure_timestamp_seconds",
        "gauge",
        "",
        "When the newest failed backup in the catalogue failed (Unix time); absent when none",
    ),
    metric(
        "berkut_backup_last_duration_seconds",
        "gauge",
        "",
        "How long the newest succeeded backup ran",
    ),
    metric(
        "berkut_backup_last_size_bytes",
        "gauge",
        "",
        "The archive size of the newest succeeded backup",
    ),
    metric(
        "berkut_backup_runs_total",
        "counter",
        "origin, result",
        "Backups that ended, by origin (manual, scheduled, imported) and result (succeeded, failed)",
    ),
    metric(
        "berkut_backups_stored",
        "gauge",
        "",
        "Succeeded backups whose archive is in the backup directory",
    ),
    metric(
        "berkut_backups_missing",
        "gauge",
        "",
        "Succeeded backups whose archive is not in the backup directory",
    ),
    metric(
        "berkut_backup_oldest_timestamp_seconds",
        "gauge",
        "",
        "When the oldest stored backup was made (Unix time); absent when none",
    ),
    metric(
        "berkut_rpo_breached",
        "gauge",
        "",
        "1 when the newest good backup is older than the plan's recovery point objective",
    ),
    metric(
        "berkut_rpo_limit_seconds",
        "gauge",
        "",
        "The recovery point objective in force; absent without an enabled plan",
    ),
    metric(
        "berkut_backup_dir_free_bytes",
        "gauge",
        "",
        "Bytes berkutd may still write in the backup directory's file system",
    ),
    metric(
        "berkut_restore_runs_total",
        "counter",
        "kind, result",
        "Restores that ended, by kind (drill, restore) and result (succeeded, failed)",
    ),
    metric(
        "berkut_drill_last_success_timestamp_seconds",
        "gauge",
        "",
        "When the newest succeeded drill (a dry-run restore) ended (Unix time); absent when none",
    ),
];

fn help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|m| m.name == name || m.name == format!("{name}_total"))
        .unwrap_or_else(|| panic!("the metric {name} is not described"))
        .help
}

fn gauge(registry: &mut Registry, name: &'static str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help(name), g);
}

fn gauge_u64(registry: &mut Registry, name: &'static str, value: u64) {
    let g: Gauge<u64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help(name), g);
}

type Labels = Vec<(&'static str, &'static str)>;

/// The figures as Prometheus text.
pub fn encode(f: &Figures) -> String {
    let mut r = Registry::default();
    gauge(&mut r, "berkut_up", 1);
    let info: Family<Labels, Gauge> = Family::default();
    info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
        .set(1);
    r.register("berkut_build_info", help("berkut_build_info"), info);
    if let Some(t) = f.last_success {
        gauge(&mut r, "berkut_backup_last_success_timestamp_seconds", t);
    }
    if let Some(t) = f.last_failure {
        gauge(&mut r, "berkut_backup_last_failure_timestamp_seconds", t);
    }
    if let Some(d) = f.last_duration {
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(d);
        let name = "berkut_backup_last_duration_seconds";
        r.register(name, help(name), g);
    }
    if let Some(size) = f.last_size {
        gauge_u64(&mut r, "berkut_backup_last_size_bytes", size);
    }
    let runs: Family<Labels, Counter> = Family::default();
    for (origin, outcome, n) in &f.runs {
        runs.get_or_create(&vec![("origin", *origin), ("result", outcome.as_str())])
            .inc_by(*n);
    }
    r.register("berkut_backup_runs", help("berkut_backup_runs"), runs);
    gauge_u64(&mut r, "berkut_backups_stored", f.stored);
    gauge_u64(&mut r, "berkut_backups_missing", f.missing);
    if let Some(t) = f.oldest {
        gauge(&mut r, "berkut_backup_oldest_timestamp_seconds", t);
    }
    gauge(&mut r, "berkut_rpo_breached", i64::from(f.rpo_breached));
    if let Some(limit) = f.rpo_limit {
        gauge_u64(&mut r, "berkut_rpo_limit_seconds", limit);
    }
    if let Some(free) = f.free_bytes {
        gauge_u64(&mut r, "berkut_backup_dir_free_bytes", free);
    }
    let restores: Family<Labels, Counter> = Family::default();
    for (kind, outcome, n) in &f.restores {
        restores
            .get_or_create(&vec![("kind", kind.as_str()), ("result", outcome.as_str())])
            .inc_by(*n);
    }
    r.register("berkut_restore_runs", help("berkut_restore_runs"), restores);
    if let Some(t) = f.last_drill_success {
        gauge(&mut r, "berkut_drill_last_success_timestamp_seconds", t);
    }
    let mut out = String::new();
    prometheus_text::encode(&mut out, &r).expect("writing to a String does not fail");
    out
}

/// The README's metrics table, generated from `METRICS`.
#[cfg(test)]
pub fn readme_table() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n");
    for m in METRICS {
        let labels = if m.labels.is_empty() { "—" } else { m.labels };
        out += &format!("| `{}` | {} | {labels} | {} |\n", m.name, m.kind, m.help);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::counters::{Outcome, RestoreKind};
    use super::*;

    fn sample() -> Figures {
        Figures {
            last_success: Some(1_700_000_000),
            last_failure: None,
            last_duration: Some(2.5),
            last_size: Some(4096),
            runs: vec![
                ("manual", Outcome::Succeeded, 3),
                ("scheduled", Outcome::Failed, 1),
            ],
            stored: 3,
            missing: 0,
            oldest: Some(1_600_000_000),
            rpo_breached: true,
            rpo_limit: Some(90_000),
            free_bytes: Some(1 << 30),
            restores: vec![(RestoreKind::Drill, Outcome::Failed, 2)],
            last_drill_success: None,
        }
    }

    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn every_figure_shows_under_its_described_name() {
        let text = encode(&sample());
        assert_eq!(value(&text, "berkut_up"), Some("1"));
        assert_eq!(
            value(&text, "berkut_backup_last_success_timestamp_seconds"),
            Some("1700000000")
        );
        assert_eq!(
            value(&text, "berkut_backup_last_duration_seconds"),
            Some("2.5")
        );
        assert_eq!(
            value(
                &text,
                "berkut_backup_runs_total{origin=\"scheduled\",result=\"failed\"}"
            ),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                "berkut_restore_runs_total{kind=\"drill\",result=\"failed\"}"
            ),
            Some("2")
        );
        assert_eq!(value(&text, "berkut_rpo_breached"), Some("1"));
        // What is unknown is absent, not zero: a zero timestamp would read
        // as "failed in 1970".
        assert!(!text.contains("berkut_backup_last_failure_timestamp_seconds"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                METRICS.iter().any(|m| m.name == name),
                "{name} is exposed but not described"
            );
        }
        assert!(text.contains(&format!(
            "berkut_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    /// When this fails, paste the expected table into the README.
    #[test]
    fn the_readme_metrics_table_is_generated_from_the_descriptions() {
        let readme = include_str!("../../../README.md");
        let expected = readme_table();
        assert!(
            readme.contains(&expected),
            "the README's metrics table differs from METRICS; it should be:\n{expected}"
        );
    }
}
