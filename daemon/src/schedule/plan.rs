//! The plan as persisted in the state directory (`plan.json`): the validated
//! specification, whether it is enabled, and since when it has been in force,
//! so that slots from before a change never count as missed. Written
//! atomically like the catalogue; versioned, with a fixture in the tests.

use berkut_proto::wire::input;
use std::path::{Path, PathBuf};

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{PlanSpec, Preset};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::timing::Timing;

pub const PLAN_FILE: &str = "plan.json";
pub const PLAN_VERSION: u32 = 1;

/// The longest retention: 100 years, beyond any record-keeping rule, and
/// far from the end of the dates the daemon can compute with. `0` keeps
/// everything.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// The most successful backups retention can be told to keep: hourly
/// backups for more than a year. More would be a typo, not a policy.
pub const MAX_KEEP_LAST_SUCCESSFUL: u32 = 10_000;
/// The plan's text fields are bounded where the protocol declares them
/// (`berkut_proto::wire::input`), so a plan from the wire and one read back
/// from `plan.json` meet the same limits.
pub const MAX_TIMEZONE_CHARS: usize = input::PLAN_TIMEZONE.max_chars;
pub const MAX_CRON_CHARS: usize = input::PLAN_CRON.max_chars;
pub const MAX_SHORT_FIELD_CHARS: usize = input::PLAN_AT.max_chars;
const _: () = assert!(input::PLAN_WEEKDAY.max_chars == MAX_SHORT_FIELD_CHARS);

/// Checks every value of a plan against its range, before anything else
/// looks at it (so that no message ever repeats an overlong value).
pub fn check_bounds(spec: &PlanSpec) -> Result<(), String> {
    if spec.retention_days > MAX_RETENTION_DAYS {
        return Err(format!(
            "retention_days is {}; it must be 0 (keep everything) to {MAX_RETENTION_DAYS}",
            spec.retention_days
        ));
    }
    if spec.keep_last_successful > MAX_KEEP_LAST_SUCCESSFUL {
        return Err(format!(
            "keep_last_successful is {}; it must be 1 to {MAX_KEEP_LAST_SUCCESSFUL} (0 only with retention_days 0)",
            spec.keep_last_successful
        ));
    }
    let fields = [
        ("timezone", spec.timezone.as_deref(), MAX_TIMEZONE_CHARS),
        ("cron", spec.cron.as_deref(), MAX_CRON_CHARS),
        ("at", spec.at.as_deref(), MAX_SHORT_FIELD_CHARS),
        ("weekday", spec.weekday.as_deref(), MAX_SHORT_FIELD_CHARS),
    ];
    for (name, value, max) in fields {
        if value.is_some_and(|v| v.chars().count() > max) {
            return Err(format!("{name} is longer than {max} characters"));
        }
    }
    Ok(())
}

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
        check_bounds(spec)?;
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
    let plan = clamp(plan, &path);
    check_bounds(&plan.spec()).map_err(|message| PlanFileError::Invalid {
        path: path.clone(),
        message,
    })?;
    plan.timing()
        .map_err(|message| PlanFileError::Invalid { path, message })?;
    Ok(Some(plan))
}

/// A stored plan whose numbers are out of range (written by a version
/// that did not check them, or by hand) is brought into range rather than
/// refused: towards keeping more, never fewer, so no backup is lost to
/// the correction, and the automatic backups go on. The log says what was
/// changed; the file stays as it is until the next `plan_set`.
fn clamp(mut plan: StoredPlan, path: &Path) -> StoredPlan {
    if plan.retention_days > MAX_RETENTION_DAYS {
        tracing::error!(path = %path.display(), found = plan.retention_days, used = MAX_RETENTION_DAYS, "the stored plan's retention_days is out of range; using the longest retention instead");
        plan.retention_days = MAX_RETENTION_DAYS;
    }
    if plan.keep_last_successful > MAX_KEEP_LAST_SUCCESSFUL {
        tracing::error!(path = %path.display(), found = plan.keep_last_successful, used = MAX_KEEP_LAST_SUCCESSFUL, "the stored plan's keep_last_successful is out of range; using the largest value instead");
        plan.keep_last_successful = MAX_KEEP_LAST_SUCCESSFUL;
    }
    if plan.keep_last_successful == 0 && plan.retention_days > 0 {
        tracing::error!(path = %path.display(), "the stored plan keeps no successful backup but deletes old ones; keeping at least 1");
        plan.keep_last_successful = 1;
    }
    plan
}

/// Saves the plan atomically (temporary file, fsync, rename, fsync dir).
pub fn save(state_dir: &Path, plan: &StoredPlan) -> Result<(), PlanFileError> {
    let path = state_dir.join(PLAN_FILE);
    let mut text = serde_json::to_vec_pretty(plan).expect("a plan always serialises");
    text.push(b'\n');
    crate::fsutil::write_atomically(&path, &text)
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

    /// The plan: accepted before, it panicked retention and then
    /// the scheduler at every start. Now `plan_set` refuses it, and a
    /// stored one is brought into range towards keeping more.
    #[test]
    fn out_of_range_values_are_refused_or_clamped_when_stored() {
        let now = OffsetDateTime::now_utc();
        let base = serde_json::json!({"preset": "daily", "at": "01:00", "timezone": "UTC"});
        let with = |k: &str, v: serde_json::Value| {
            let mut j = base.clone();
            j[k] = v;
            serde_json::from_value::<PlanSpec>(j).unwrap()
        };
        let err = StoredPlan::from_spec(&with("retention_days", u32::MAX.into()), now).unwrap_err();
        assert!(err.contains("0 (keep everything) to 36500"), "{err}");
        assert!(StoredPlan::from_spec(&with("retention_days", 36_500.into()), now).is_ok());
        let err =
            StoredPlan::from_spec(&with("keep_last_successful", 10_001.into()), now).unwrap_err();
        assert!(err.contains("1 to 10000"), "{err}");
        let err =
            StoredPlan::from_spec(&with("timezone", "x".repeat(100_000).into()), now).unwrap_err();
        assert!(
            err.len() < 100,
            "the message repeats the value: {}",
            err.len()
        );
        let err = StoredPlan::from_spec(&with("cron", "*".repeat(300).into()), now).unwrap_err();
        assert!(err.contains("256"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let mut stored: serde_json::Value = serde_json::from_str(FIXTURE_V1).unwrap();
        stored["retention_days"] = u32::MAX.into();
        stored["keep_last_successful"] = u32::MAX.into();
        std::fs::write(dir.path().join(PLAN_FILE), stored.to_string()).unwrap();
        let plan = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            (plan.retention_days, plan.keep_last_successful),
            (MAX_RETENTION_DAYS, MAX_KEEP_LAST_SUCCESSFUL)
        );
        stored["retention_days"] = 5.into();
        stored["keep_last_successful"] = 0.into();
        std::fs::write(dir.path().join(PLAN_FILE), stored.to_string()).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap().keep_last_successful, 1);
        stored["timezone"] = "x".repeat(1000).into();
        std::fs::write(dir.path().join(PLAN_FILE), stored.to_string()).unwrap();
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
