//! The `[drill]` section of the configuration: when the daemon proves its
//! backups restorable by itself. `after_backup` drills every scheduled
//! backup once it has succeeded; a schedule of its own (a preset with `at`
//! and `weekday`, or `cron`, in `timezone`, exactly as the backup plan
//! takes them) drills the newest successful backup without a passing drill
//! at every slot. Both may be set; neither is the default (no automatic
//! drills).

use berkut_proto::wire::{PlanSpec, Preset};
use serde::Deserialize;

use crate::schedule::timing::Timing;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    after_backup: bool,
    preset: Option<String>,
    at: Option<String>,
    weekday: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

/// The drill policy, validated.
#[derive(Clone, Default)]
pub struct DrillPolicy {
    pub after_backup: bool,
    /// The schedule, and how it reads (for `Debug` and the log).
    pub schedule: Option<(Timing, String)>,
}

impl DrillPolicy {
    pub fn is_on(&self) -> bool {
        self.after_backup || self.schedule.is_some()
    }
}

impl std::fmt::Debug for DrillPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schedule = self.schedule.as_ref().map(|(_, text)| text.as_str());
        write!(
            f,
            "{{ after_backup: {}, schedule: {} }}",
            self.after_backup,
            schedule.unwrap_or("none")
        )
    }
}

/// Longest text of any field of the section.
const MAX_FIELD_CHARS: usize = 200;

/// Reads the section; an error's text is for the caller to say where it
/// came from.
pub fn parse(value: toml::Value) -> Result<DrillPolicy, String> {
    let section: Section = value.try_into().map_err(|e: toml::de::Error| {
        format!(
            "must be a [drill] section with after_backup, preset, at, weekday, cron and \
             timezone: {}",
            e.message().lines().next().unwrap_or("not valid")
        )
    })?;
    for text in [
        &section.preset,
        &section.at,
        &section.weekday,
        &section.cron,
        &section.timezone,
    ]
    .into_iter()
    .flatten()
    {
        if text.chars().count() > MAX_FIELD_CHARS {
            return Err(format!(
                "a field is longer than {MAX_FIELD_CHARS} characters"
            ));
        }
    }
    let schedule = match &section.preset {
        None if section.at.is_some() || section.cron.is_some() || section.weekday.is_some() => {
            return Err("at, weekday and cron go with a preset".into())
        }
        None => None,
        Some(preset) => {
            let spec = PlanSpec {
                preset: preset.parse::<Preset>()?,
                at: section.at.clone(),
                weekday: section.weekday.clone(),
                timezone: Some(section.timezone.clone().unwrap_or_else(|| "UTC".into())),
                cron: section.cron.clone(),
                scope: Default::default(),
                include_files: false,
                retention_days: 0,
                keep_last_successful: 1,
                catch_up: false,
            };
            let (timing, canonical) = Timing::from_spec(&spec)?;
            let when = match (&canonical.cron, &canonical.at, &canonical.weekday) {
                (Some(cron), _, _) => format!("cron {cron}"),
                (None, Some(at), Some(day)) => format!("{preset} on {day} at {at}"),
                (None, Some(at), None) => format!("{preset} at {at}"),
                (None, None, _) => preset.clone(),
            };
            Some((timing, format!("{when} in {}", canonical.timezone)))
        }
    };
    Ok(DrillPolicy {
        after_backup: section.after_backup,
        schedule,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<DrillPolicy, String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        parse(table["drill"].clone())
    }

    #[test]
    fn a_policy_reads_like_a_plan() {
        let p = parsed("[drill]\nafter_backup = true\n").unwrap();
        assert!(p.after_backup && p.schedule.is_none() && p.is_on());
        let p =
            parsed("[drill]\npreset = \"daily\"\nat = \"04:30\"\ntimezone = \"Europe/Berlin\"\n")
                .unwrap();
        assert!(!p.after_backup);
        assert_eq!(
            format!("{p:?}"),
            "{ after_backup: false, schedule: daily at 04:30 in Europe/Berlin }"
        );
        let p = parsed("[drill]\npreset = \"cron\"\ncron = \"15 */6 * * *\"\n").unwrap();
        assert!(format!("{p:?}").contains("cron 15 */6 * * * in UTC"));
        assert!(!DrillPolicy::default().is_on());
    }

    #[test]
    fn bad_sections_are_refused_with_a_reason() {
        for (text, why) in [
            ("[drill]\nafter = true\n", "must be a [drill] section"),
            ("[drill]\nat = \"04:00\"\n", "go with a preset"),
            ("[drill]\npreset = \"hourly\"\n", "unknown preset"),
            ("[drill]\npreset = \"daily\"\n", "needs a time of day"),
            (
                "[drill]\npreset = \"daily\"\nat = \"04:00\"\ntimezone = \"Mars/Olympus\"\n",
                "not an IANA time zone",
            ),
            (
                "[drill]\npreset = \"cron\"\ncron = \"0 4 30 2 *\"\n",
                "never fires",
            ),
        ] {
            let e = parsed(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
