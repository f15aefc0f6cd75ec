//! Identifiers that clients send and that end up in file names. Every id that
//! arrives from outside is parsed here before anything else sees it, so a
//! value that could escape a directory (`..`, `/`, NUL, anything unexpected)
//! never reaches a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The id of a backup, which is also the stem of its archive's file name.
///
/// The shape is `YYYYMMDDTHHMMSSZ-xxxxxxxx`: the UTC creation time to the
/// second, so that ids sort by time, and 32 random bits in lower-case hex, so
/// that two backups started in the same second still get distinct names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

/// Why a string is not a valid id; the message is safe to show to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id (expected the form {shape})")]
pub struct InvalidId {
    kind: &'static str,
    shape: &'static str,
}

const BACKUP_SHAPE: &str = "YYYYMMDDTHHMMSSZ-xxxxxxxx";

impl BackupId {
    /// Makes a fresh id for a backup created at `at`.
    pub fn generate(at: OffsetDateTime) -> BackupId {
        BackupId(format!("{}-{:08x}", stamp(at), rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The archive's file name inside the backup directory.
    pub fn file_name(&self) -> String {
        format!("{}.bscc", self.0)
    }
}

/// Formats `at` in UTC as `YYYYMMDDTHHMMSSZ`.
fn stamp(at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks the time-stamped id shape shared by backup and restore ids.
fn has_shape(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

impl FromStr for BackupId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if has_shape(s, "") {
            Ok(BackupId(s.to_owned()))
        } else {
            Err(InvalidId {
                kind: "backup",
                shape: BACKUP_SHAPE,
            })
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a restore or dry-run: `r-YYYYMMDDTHHMMSSZ-xxxxxxxx`, shaped
/// like a backup id so that it, too, is safe as a directory name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RestoreId(String);

const RESTORE_SHAPE: &str = "r-YYYYMMDDTHHMMSSZ-xxxxxxxx";

impl RestoreId {
    pub fn generate(at: OffsetDateTime) -> RestoreId {
        RestoreId(format!("r-{}-{:08x}", stamp(at), rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The random part, short enough to go into database names.
    pub fn suffix(&self) -> &str {
        &self.0[self.0.len() - 8..]
    }
}

impl FromStr for RestoreId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if has_shape(s, "r-") {
            Ok(RestoreId(s.to_owned()))
        } else {
            Err(InvalidId {
                kind: "restore",
                shape: RESTORE_SHAPE,
            })
        }
    }
}

impl TryFrom<String> for RestoreId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RestoreId> for String {
    fn from(id: RestoreId) -> String {
        id.0
    }
}

impl fmt::Display for RestoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let early = BackupId::generate(time::macros::datetime!(2026-01-02 03:04:05 UTC));
        let late = BackupId::generate(time::macros::datetime!(2026-11-02 03:04:05 +02:00));
        assert!(early.as_str().starts_with("20260102T030405Z-"));
        assert!(late.as_str().starts_with("20261102T010405Z-"));
        assert_eq!(early.as_str().parse::<BackupId>().unwrap(), early);
        assert!(early < late);
        assert_eq!(early.file_name(), format!("{early}.bscc"));
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "20260102T030405Z-0000000",
            "20260102T030405Z-000000000",
            "20260102T030405Z-0000000G",
            "20260102T030405Z/00000000",
            "20260102T030405Z-0000000\0",
            "2026010xT030405Z-00000000",
            "20260102T030405Z-ABCDEF00",
            " 20260102T030405Z-00000000",
        ] {
            assert!(bad.parse::<BackupId>().is_err(), "accepted {bad:?}");
        }
        assert!("20260102T030405Z-00abcdef".parse::<BackupId>().is_ok());
    }

    #[test]
    fn restore_ids_have_their_own_shape() {
        let id = RestoreId::generate(time::macros::datetime!(2026-01-02 03:04:05 UTC));
        assert!(id.as_str().starts_with("r-20260102T030405Z-"));
        assert_eq!(id.suffix().len(), 8);
        assert_eq!(id.as_str().parse::<RestoreId>().unwrap(), id);
        for bad in [
            "20260102T030405Z-00000000",
            "r-../../x",
            "r-20260102T030405Z-0000000",
            "R-20260102T030405Z-00000000",
        ] {
            assert!(bad.parse::<RestoreId>().is_err(), "{bad}");
        }
        assert!("r-20260102T030405Z-00000000".parse::<BackupId>().is_err());
    }

    #[test]
    fn deserializing_validates() {
        let bytes = rmp_serde::to_vec("../x").unwrap();
        assert!(rmp_serde::from_slice::<BackupId>(&bytes).is_err());
    }
}
