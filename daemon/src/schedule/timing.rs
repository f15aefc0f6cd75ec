//! When a plan fires: every preset is turned into a cron expression and
//! `croner` computes the fire times in the plan's own IANA time zone, so a
//! 02:30 backup stays at 02:30 local time across daylight-saving changes.
//! On the spring-forward day a time that does not exist fires once, at the
//! first instant after the gap; on the fall-back day a time that exists twice
//! fires once, at its first occurrence.

use std::str::FromStr;

use berkut_proto::wire::input::quote;
use berkut_proto::wire::{PlanSpec, Preset};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use time::OffsetDateTime;

/// A validated schedule: the expression and the zone it is read in.
#[derive(Clone, Debug)]
pub struct Timing {
    cron: Cron,
    tz: Tz,
}

/// A plan's times after validation, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canonical {
    pub at: Option<String>,
    pub weekday: Option<String>,
    pub timezone: String,
    pub cron: Option<String>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl Timing {
    /// Validates a plan's times; the error is written for the client.
    pub fn from_spec(spec: &PlanSpec) -> Result<(Timing, Canonical), String> {
        let timezone = match &spec.timezone {
            Some(zone) => zone.clone(),
            None => system_zone(),
        };
        let tz = Tz::from_str(&timezone).map_err(|_| {
            format!(
                "{} is not an IANA time zone (such as Europe/Berlin)",
                quote(&timezone)
            )
        })?;
        let at = match (spec.preset, &spec.at) {
            (Preset::Cron, Some(_)) => {
                return Err(
                    "a cron plan takes its times from the expression; leave `at` out".into(),
                )
            }
            (Preset::Cron, None) => None,
            (_, None) => {
                return Err(format!(
                    "the {} preset needs a time of day (`at`, HH:MM)",
                    spec.preset.as_str()
                ))
            }
            (_, Some(at)) => Some(parse_hh_mm(at)?),
        };
        let weekday = match (spec.preset, &spec.weekday) {
            (Preset::Weekly, None) => return Err("the weekly preset needs a weekday".into()),
            (Preset::Weekly, Some(day)) => Some(parse_weekday(day)?),
            (_, Some(_)) => return Err("only the weekly preset takes a weekday".into()),
            (_, None) => None,
        };
        let expression = match (spec.preset, &spec.cron) {
            (Preset::Cron, Some(expr)) => expr.trim().to_owned(),
            (Preset::Cron, None) => return Err("the cron preset needs a `cron` expression".into()),
            (_, Some(_)) => return Err("only the cron preset takes a `cron` expression".into()),
            (preset, None) => {
                let (h, m) = at.expect("checked above");
                match preset {
                    Preset::Daily => format!("{m} {h} * * *"),
                    Preset::Weekly => format!("{m} {h} * * {}", weekday.expect("checked above")),
                    Preset::MonthlyStart => format!("{m} {h} 1 * *"),
                    Preset::MonthlyEnd => format!("{m} {h} L * *"),
                    Preset::Cron => unreachable!(),
                }
            }
        };
        if expression.split_whitespace().count() != 5 {
            return Err(
                "a cron expression has five fields: minute hour day-of-month month day-of-week"
                    .into(),
            );
        }
        let cron = Cron::from_str(&expression)
            .map_err(|e| format!("the cron expression is not valid: {e}"))?;
        let timing = Timing { cron, tz };
        // An expression that never fires (say, 30 February) is refused now
        // rather than discovered by a plan that silently does nothing.
        timing
            .next_after(OffsetDateTime::UNIX_EPOCH)
            .ok_or("the cron expression never fires")?;
        let canonical = Canonical {
            at: at.map(|(h, m)| format!("{h:02}:{m:02}")),
            weekday: weekday.map(|d| WEEKDAYS[d].to_owned()),
            timezone,
            cron: (spec.preset == Preset::Cron).then_some(expression),
        };
        Ok((timing, canonical))
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let local = self.tz.from_utc_datetime(&to_chrono(t).naive_utc());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .and_then(|d| from_chrono(d.with_timezone(&Utc)))
    }

    /// The last fire time at or before `t`.
    pub fn last_at_or_before(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let local = self.tz.from_utc_datetime(&to_chrono(t).naive_utc());
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .and_then(|d| from_chrono(d.with_timezone(&Utc)))
    }

    /// The time between the two fire times after `t`.
    pub fn period_after(&self, t: OffsetDateTime) -> Option<time::Duration> {
        let a = self.next_after(t)?;
        let b = self.next_after(a)?;
        Some(b - a)
    }

    /// The gap between the fire times on either side of `t`: the period the
    /// plan is in at that moment. For an uneven schedule (weekdays only) the
    /// weekend's gap is longer than a weekday's, and the RPO watch must
    /// measure the gap it is actually in.
    pub fn period_around(&self, t: OffsetDateTime) -> Option<time::Duration> {
        match (self.last_at_or_before(t), self.next_after(t)) {
            (Some(prev), Some(next)) => Some(next - prev),
            _ => self.period_after(t),
        }
    }
}

fn parse_hh_mm(text: &str) -> Result<(u32, u32), String> {
    let bad = || {
        format!(
            "{} is not a time of day in HH:MM (00:00 to 23:59)",
            quote(text)
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    // Only digits: Rust's integer parsing would also take a leading '+'.
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h, m))
}

/// A weekday by name (full or three letters, any case), as cron's number.
fn parse_weekday(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|d| *d == lower || (lower.len() == 3 && d.starts_with(&lower)))
        .ok_or_else(|| format!("{} is not a weekday (monday … sunday)", quote(text)))
}

/// The system's time zone, or UTC when it cannot be told.
pub fn system_zone() -> String {
    iana_time_zone::get_timezone()
        .ok()
        .filter(|z| Tz::from_str(z).is_ok())
        .unwrap_or_else(|| "UTC".to_owned())
}

fn to_chrono(t: OffsetDateTime) -> DateTime<Utc> {
    Utc.timestamp_opt(t.unix_timestamp(), t.nanosecond())
        .single()
        .expect("every OffsetDateTime is a valid instant")
}

/// `None` for a time past the range `time` covers (years ±9999): a fire
/// time that far away is no fire time.
fn from_chrono(d: DateTime<Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(d.timestamp()) * 1_000_000_000 + i128::from(d.timestamp_subsec_nanos()),
    )
    .ok()
}

#[cfg(test)]
mod tests;
