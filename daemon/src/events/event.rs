//! What a notification says: the event's type, when, on which host, the
//! backup or restore it is about, the result, and a reason fit for a chat
//! channel. Nothing else goes in: never a secret, a database URL or a
//! path (`safe_reason` takes path-like words out of reasons, which come
//! from errors a client may see anyway).

use berkut_proto::ids::{BackupId, RestoreId};
use serde::Serialize;
use time::OffsetDateTime;

/// The version of the event's JSON; a receiver can tell a later shape.
pub const EVENT_VERSION: u32 = 1;

/// The longest reason an event carries, in characters.
pub const MAX_REASON_CHARS: usize = 300;

/// Every kind of event, as its `type` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    BackupFailed,
    RpoBreached,
    RpoRecovered,
    DrillFailed,
    RestoreStarted,
    RestoreFinished,
    CopyFailing,
    DaemonCrashedRestart,
    Test,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::BackupFailed,
        EventType::RpoBreached,
        EventType::RpoRecovered,
        EventType::DrillFailed,
        EventType::RestoreStarted,
        EventType::RestoreFinished,
        EventType::CopyFailing,
        EventType::DaemonCrashedRestart,
        EventType::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BackupFailed => "backup_failed",
            EventType::RpoBreached => "rpo_breached",
            EventType::RpoRecovered => "rpo_recovered",
            EventType::DrillFailed => "drill_failed",
            EventType::RestoreStarted => "restore_started",
            EventType::RestoreFinished => "restore_finished",
            EventType::CopyFailing => "copy_failing",
            EventType::DaemonCrashedRestart => "daemon_crashed_restart",
            EventType::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One event. Build it with `Event::new` and the setters; the hub stamps
/// the time and host when it is emitted.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    /// `succeeded` or `failed`, for events that end something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    /// A remote's name, for off-site copy events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event {
    pub fn new(kind: EventType) -> Event {
        Event {
            version: EVENT_VERSION,
            kind,
            time: OffsetDateTime::UNIX_EPOCH,
            host: String::new(),
            backup_id: None,
            restore_id: None,
            result: None,
            remote: None,
            reason: None,
        }
    }

    pub fn backup(mut self, id: &BackupId) -> Event {
        self.backup_id = Some(id.as_str().to_owned());
        self
    }

    pub fn restore(mut self, id: &RestoreId) -> Event {
        self.restore_id = Some(id.as_str().to_owned());
        self
    }

    pub fn result(mut self, ok: bool) -> Event {
        self.result = Some(if ok { "succeeded" } else { "failed" });
        self
    }

    /// A remote's name (at most 64 characters are kept).
    pub fn remote(mut self, name: &str) -> Event {
        self.remote = Some(name.chars().take(64).collect());
        self
    }

    /// The reason, made safe (`safe_reason`).
    pub fn reason(mut self, reason: &str) -> Event {
        self.reason = Some(safe_reason(reason));
        self
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serialises")
    }
}

/// A reason fit to leave the machine: control characters become spaces,
/// a word that looks like a path (it starts with `/`, `~` or `.` and holds
/// a `/`, or it is a URL) becomes `<path>`, and it is cut at
/// `MAX_REASON_CHARS`.
pub fn safe_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<String> = cleaned
        .split(' ')
        .map(|w| {
            let bare = w.trim_start_matches(['(', '"', '\'', '`']);
            let pathlike =
                bare.contains("://") || (bare.contains('/') && bare.starts_with(['/', '~', '.']));
            if pathlike {
                "<path>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let joined = words.join(" ");
    if joined.chars().count() > MAX_REASON_CHARS {
        let mut cut: String = joined.chars().take(MAX_REASON_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_loses_paths_urls_and_control_characters() {
        let r = safe_reason(
            "cannot write /var/lib/berkut/backups/x.bscc: disk full\nsee postgresql://u:pw@h/db (\"/etc/berkut/key\")",
        );
        assert!(
            !r.contains("/var/lib") && !r.contains("pw@") && !r.contains("/etc"),
            "{r}"
        );
        assert!(r.contains("disk full") && !r.contains('\n'), "{r}");
        assert_eq!(
            safe_reason("pg_dump failed (exit status 1)"),
            "pg_dump failed (exit status 1)"
        );
        let long = safe_reason(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn the_json_names_the_type_and_leaves_out_what_is_unknown() {
        let id: BackupId = "20261120T020000Z-0badc0de".parse().unwrap();
        let json: serde_json::Value = serde_json::from_slice(
            &Event::new(EventType::BackupFailed)
                .backup(&id)
                .reason("pg_dump failed")
                .to_json(),
        )
        .unwrap();
        assert_eq!(json["type"], "backup_failed");
        assert_eq!(json["backup_id"], "20261120T020000Z-0badc0de");
        assert_eq!(json["version"], 1);
        assert!(json.get("restore_id").is_none());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
