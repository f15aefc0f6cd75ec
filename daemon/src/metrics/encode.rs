//! The figures in the Prometheus text format (version 0.0.4, what
//! node_exporter's textfile collector and every scraper read), encoded by
//! `prometheus-client`. Every metric is described once, in `METRICS`: its
//! name as exposed, type and HELP text; the README's metrics table is
//! generated from it (a test compares them). No label carries a backup id:
//! the labels are a few fixed words (origin, kind, result, version).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

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
        "Backups that ended, by origin (manual, scheduled, imported, remote: fetched from a remote) and result (succeeded, failed)",
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
    metric(
        "berkut_verified_backup_age_seconds",
        "gauge",
        "",
        "Age of the newest backup a drill passed for (seconds since it was made): the recovery point proven restorable; absent before the first passing drill",
    ),
    metric(
        "berkut_remote_copy_lag_seconds",
        "gauge",
        "remote",
        "How long the newest succeeded backup has waited for its copy on each remote; 0 once copied",
    ),
    metric(
        "berkut_remote_copy_failures_total",
        "counter",
        "remote",
        "Failed uploads to each remote since berkutd started",
    ),
];

fn help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|m| m.name == name || m.name == format!("{name}_total"))
        .unwrap_or_else(|| panic!("the metric {name} is not described"))
        .help
}

type Labels = [(&'static str, &'static str); 2];

/// The figures as a `prometheus-client` collector: the values are the
/// state's, read when rendered, so they are constants to the library; and
/// a collector writes the labelled series in a fixed order (a `Family`
/// keeps them in a hash map), so two renderings of the same state are the
/// same text.
#[derive(Debug)]
struct Figured(Figures);

/// Writes one unlabelled gauge, if it has a value (an unknown figure is
/// absent, not zero: a zero timestamp would read as 1970).
fn gauge<N>(e: &mut DescriptorEncoder, name: &'static str, value: Option<N>) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync,
    ConstGauge<N>: EncodeMetric,
{
    if let Some(v) = value {
        let g = ConstGauge::new(v);
        g.encode(e.encode_descriptor(name, help(name), None, g.metric_type())?)?;
    }
    Ok(())
}

/// Writes a counter family, its series in the order given.
fn counters(
    e: &mut DescriptorEncoder,
    name: &'static str,
    series: impl Iterator<Item = (Labels, u64)>,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Counter)?;
    for (labels, n) in series {
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Figured {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let f = &self.0;
        gauge(&mut e, "berkut_up", Some(1i64))?;
        {
            let name = "berkut_build_info";
            let mut m = e.encode_descriptor(name, help(name), None, MetricType::Gauge)?;
            ConstGauge::new(1i64)
                .encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        }
        gauge(
            &mut e,
            "berkut_backup_last_success_timestamp_seconds",
            f.last_success,
        )?;
        gauge(
            &mut e,
            "berkut_backup_last_failure_timestamp_seconds",
            f.last_failure,
        )?;
        gauge(
            &mut e,
            "berkut_backup_last_duration_seconds",
            f.last_duration,
        )?;
        gauge(&mut e, "berkut_backup_last_size_bytes", f.last_size)?;
        counters(
            &mut e,
            "berkut_backup_runs",
            f.runs.iter().map(|(origin, outcome, n)| {
                ([("origin", *origin), ("result", outcome.as_str())], *n)
            }),
        )?;
        gauge(&mut e, "berkut_backups_stored", Some(f.stored))?;
        gauge(&mut e, "berkut_backups_missing", Some(f.missing))?;
        gauge(&mut e, "berkut_backup_oldest_timestamp_seconds", f.oldest)?;
        gauge(
            &mut e,
            "berkut_rpo_breached",
            Some(i64::from(f.rpo_breached)),
        )?;
        gauge(&mut e, "berkut_rpo_limit_seconds", f.rpo_limit)?;
        gauge(&mut e, "berkut_backup_dir_free_bytes", f.free_bytes)?;
        counters(
            &mut e,
            "berkut_restore_runs",
            f.restores.iter().map(|(kind, outcome, n)| {
                ([("kind", kind.as_str()), ("result", outcome.as_str())], *n)
            }),
        )?;
        gauge(
            &mut e,
            "berkut_drill_last_success_timestamp_seconds",
            f.last_drill_success,
        )?;
        gauge(&mut e, "berkut_verified_backup_age_seconds", f.verified_age)?;
        if !f.remote_lag.is_empty() {
            let name = "berkut_remote_copy_lag_seconds";
            let mut m = e.encode_descriptor(name, help(name), None, MetricType::Gauge)?;
            for (remote, lag) in &f.remote_lag {
                ConstGauge::new(*lag as i64)
                    .encode(m.encode_family(&[("remote", remote.as_str())])?)?;
            }
        }
        if !f.remote_failures.is_empty() {
            let name = "berkut_remote_copy_failures";
            let mut m = e.encode_descriptor(name, help(name), None, MetricType::Counter)?;
            for (remote, n) in &f.remote_failures {
                ConstCounter::new(*n).encode(m.encode_family(&[("remote", remote.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// The figures as Prometheus text.
pub fn encode(f: &Figures) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(Figured(f.clone())));
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
            verified_age: Some(7200),
            remote_lag: vec![("offsite".into(), 120), ("usb".into(), 0)],
            remote_failures: vec![("offsite".into(), 4), ("usb".into(), 0)],
        }
    }

    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn every_figure_shows_under_its_described_name() {
        let text = encode(&sample());
        assert_eq!(text, encode(&sample()), "the same state, the same text");
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
        assert_eq!(
            value(&text, "berkut_verified_backup_age_seconds"),
            Some("7200")
        );
        assert_eq!(
            value(&text, "berkut_remote_copy_lag_seconds{remote=\"offsite\"}"),
            Some("120")
        );
        assert_eq!(
            value(
                &text,
                "berkut_remote_copy_failures_total{remote=\"offsite\"}"
            ),
            Some("4")
        );
        assert_eq!(
            value(&text, "berkut_remote_copy_failures_total{remote=\"usb\"}"),
            Some("0")
        );
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
