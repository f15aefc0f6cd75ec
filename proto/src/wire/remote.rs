//! What the remote operations answer (`remote_list`, `remote_verify`,
//! `remote_status`): an archive a remote holds, the verdict on one copy,
//! and a remote's state. Times are RFC 3339 strings, as everywhere.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::BackupId;

/// One archive in a remote, from a listing and a ranged read of its
/// header (no full download).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteArchive {
    pub id: BackupId,
    pub size_bytes: u64,
    /// When the backup was created, from its id.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The id of the key its data key is wrapped with, from its header;
    /// absent when the header could not be read.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Whether the local catalogue knows this backup.
    pub known: bool,
    /// Why the header could not be read, in safe words.
    #[serde(default)]
    pub problem: Option<String>,
}

/// The verdict on one copy downloaded and authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteVerdict {
    pub id: BackupId,
    pub ok: bool,
    #[serde(default)]
    pub problem: Option<String>,
}

/// One remote's state (`remote_status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteInfo {
    pub name: String,
    /// `s3` or `fs`.
    pub kind: String,
    /// The endpoint and bucket, or the directory, with the prefix.
    pub location: String,
    pub reachable: bool,
    /// Why it is not reachable, in safe words.
    #[serde(default)]
    pub error: Option<String>,
    pub pending: u64,
    pub uploading: u64,
    pub failed: u64,
    pub copied: u64,
    /// The age of the newest successful backup not yet copied here: the
    /// off-site RPO. Absent when every backup is copied.
    #[serde(default)]
    pub uncopied_age_seconds: Option<u64>,
    /// The last upload error, and when.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}
