//! The backup plan as the protocol carries it: what a client sends to set it
//! (`PlanSpec`) and what the daemon shows (`PlanInfo`, the same fields plus
//! the computed `next_run` and the `last_success` of an automatic backup).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::manifest::Scope;

/// How the plan's times are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Every day at `at`.
    Daily,
    /// Every week on `weekday` at `at`.
    Weekly,
    /// On the first day of every month at `at`.
    MonthlyStart,
    /// On the last day of every month at `at`.
    MonthlyEnd,
    /// Whenever the `cron` expression says.
    Cron,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Daily => "daily",
            Preset::Weekly => "weekly",
            Preset::MonthlyStart => "monthly-start",
            Preset::MonthlyEnd => "monthly-end",
            Preset::Cron => "cron",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "daily" => Ok(Preset::Daily),
            "weekly" => Ok(Preset::Weekly),
            "monthly-start" => Ok(Preset::MonthlyStart),
            "monthly-end" => Ok(Preset::MonthlyEnd),
            "cron" => Ok(Preset::Cron),
            other => Err(format!(
                "unknown preset {other:?} (expected daily, weekly, monthly-start, monthly-end or cron)"
            )),
        }
    }
}

fn default_retention_days() -> u32 {
    30
}

fn default_keep_last() -> u32 {
    7
}

fn yes() -> bool {
    true
}

/// A plan as a client sets it. The daemon validates every field; a bad
/// time, weekday, zone or expression is `invalid` and the old plan stays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSpec {
    pub preset: Preset,
    /// Time of day, `HH:MM` (24-hour), for every preset but `cron`.
    #[serde(default)]
    pub at: Option<String>,
    /// For `weekly`: `monday` … `sunday` (or `mon` … `sun`).
    #[serde(default)]
    pub weekday: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`; the daemon's system zone
    /// when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// For `cron`: five fields (minute hour day-of-month month day-of-week).
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub include_files: bool,
    /// Backups older than this many days are deleted (0: never).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// The newest this many successful backups are always kept.
    #[serde(default = "default_keep_last")]
    pub keep_last_successful: u32,
    /// Whether a slot missed while the daemon was down is made up for with
    /// one backup at start-up.
    #[serde(default = "yes")]
    pub catch_up: bool,
}

/// The plan as the daemon shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInfo {
    /// False until a plan is set, and after `plan_disable`.
    pub enabled: bool,
    /// Absent until a plan has been set.
    #[serde(default)]
    pub preset: Option<Preset>,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub weekday: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub include_files: bool,
    #[serde(default)]
    pub retention_days: u32,
    #[serde(default)]
    pub keep_last_successful: u32,
    #[serde(default)]
    pub catch_up: bool,
    /// When the next automatic backup will start; absent when disabled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_run: Option<OffsetDateTime>,
    /// When the newest successful automatic backup was created (queued).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
}
