//! The plan as persisted in the state directory (`plan.json`): the validated
//! specification, whether it is enabled, and since when it has been in force,
//! so that slots from before a change never count as missed. Written
//! atomically like the catalogue; versioned, with a fixture in the tests.

use std::path::{Path, PathBuf};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{PlanSpec, Preset};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::timing::Timing;

pub const PLAN_FILE: &str = "plan.json";
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub plan_version: u32,
    pub enabled: bool,
    pub preset: Preset,
    pub at: Option<String>,
    pub weekday: Option<String>,
    pub timezone: String,
    pub cron: Option<String>,
    pub scope: Scope,
    pub include_files: bool,
    pub retention_days: u32,
    pub keep_last_successful: u32,
    pub catch_up: bool,
    /// When the plan (or its enabling) last changed. Slots before this
    /// moment were never promised, so they are never caught up.
    #[serde(with = "time::serde::rfc3339")]
    pub effective_since: OffsetDateTime,
}

impl StoredPlan {
    /// Validates a specification into a plan in force from `now`.
    pub fn from_spec(spec: &PlanSpec, now: OffsetDateTime) -> Result<StoredPlan, String> {
        let (_, canonical) = Timing::from_spec(spec)?;
        if spec.keep_last_successful == 0 && spec.retention_days > 0 {
            return Err("keep_last_successful must be at least 1, so retention can never delete the last good backup".into());
        }
        Ok(StoredPlan {
            plan_version: PLAN_VERSION,
            enabled: true,
            preset: spec.preset,
            at: canonical.at,
            weekday: canonical.weekday,
            timezone: canonical.timezone,
            cron: canonical.cron,
            scope: spec.scope,
            include_files: spec.include_files,
            retention_days: spec.retention_days,
            keep_last_successful: spec.keep_last_successful,
            catch_up: spec.catch_up,
            effective_since: now,
        })
    }

    pub fn spec(&self) -> PlanSpec {
        PlanSpec {
            preset: self.preset,
            at: self.at.clone(),
            weekday: self.weekday.clone(),
            timezone: Some(self.timezone.clone()),
            cron: self.cron.clone(),
            scope: self.scope,
            include_files: self.include_files,
            retention_days: self.retention_days,
            keep_last_successful: self.keep_last_successful,
            catch_up: self.catch_up,
        }
    }

    /// The plan's timing. A stored plan was validated when it was set, but
    /// the time zone database may have changed since.
    pub fn timing(&self) -> Result<Timing, String> {
        Timing::from_spec(&self.spec()).map(|(t, _)| t)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read or write the plan {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the plan {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Loads the plan; `None` when none has been set.
pub fn load(state_dir: &Path) -> Result<Option<StoredPlan>, PlanFileError> {
    let path = state_dir.join(PLAN_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PlanFileError::Io { path, source }),
    };
    let plan: StoredPlan = serde_json::from_slice(&text).map_err(|e| PlanFileError::Invalid {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if plan.plan_version != PLAN_VERSION {
        return Err(PlanFileError::Invalid {
            path,
            message: format!("version {} is not {PLAN_VERSION}", plan.plan_version),
        });
    }
    plan.timing()
        .map_err(|message| PlanFileError::Invalid { path, message })?;
    Ok(Some(plan))
}

/// Saves the plan atomically (temporary file, fsync, rename, fsync dir).
pub fn save(state_dir: &Path, plan: &StoredPlan) -> Result<(), PlanFileError> {
    let path = state_dir.join(PLAN_FILE);
    let mut text = serde_json::to_vec_pretty(plan).expect("a plan always serialises");
    text.push(b'\n');
    crate::store::write_atomically(&path, &text)
        .map_err(|source| PlanFileError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_V1: &str = include_str!("../../tests/fixtures/plan-v1.json");

    #[test]
    fn reads_the_version_1_fixture() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PLAN_FILE), FIXTURE_V1).unwrap();
        let plan = load(dir.path()).unwrap().unwrap();
        assert_eq!(plan.preset, Preset::Weekly);
        assert_eq!(plan.weekday.as_deref(), Some("sunday"));
        assert_eq!(plan.timezone, "Europe/Berlin");
        assert!(plan.enabled);
        assert_eq!(
            plan.effective_since,
            time::macros::datetime!(2026-11-01 10:00 UTC)
        );
    }

    #[test]
    fn save_load_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let plan: StoredPlan = serde_json::from_str(FIXTURE_V1).unwrap();
        save(dir.path(), &plan).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(plan));
        std::fs::write(dir.path().join(PLAN_FILE), b"{\"plan_version\": 1,").unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(PlanFileError::Invalid { .. })
        ));
        let future = FIXTURE_V1.replace("\"plan_version\": 1", "\"plan_version\": 2");
        std::fs::write(dir.path().join(PLAN_FILE), future).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(PlanFileError::Invalid { .. })
        ));
    }

    #[test]
    fn keeping_nothing_is_refused() {
        let mut spec: PlanSpec = serde_json::from_value(
            serde_json::json!({"preset": "daily", "at": "01:00", "timezone": "UTC"}),
        )
        .unwrap();
        assert_eq!(
            (
                spec.retention_days,
                spec.keep_last_successful,
                spec.catch_up
            ),
            (30, 7, true)
        );
        spec.keep_last_successful = 0;
        assert!(StoredPlan::from_spec(&spec, OffsetDateTime::now_utc())
            .unwrap_err()
            .contains("keep_last_successful"));
    }
}
