//! Stable error codes. A client decides what to do from the code alone; the
//! message is for people. Neither ever carries a path, SQL or a backtrace:
//! the daemon logs those under the correlation id instead.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a value in it is not acceptable.
    Invalid,
    /// The backup, job or restore named does not exist.
    NotFound,
    /// The request clashes with something in progress (a delete of a backup
    /// that is being written, restored or downloaded, for example).
    Conflict,
    /// The caller is not allowed to do this.
    Forbidden,
    /// A restore holds the maintenance lock; only status requests are served.
    Maintenance,
    /// An upload or a value exceeds a configured limit.
    TooLarge,
    /// Something the daemon depends on (the database, the disk) is not
    /// available right now; trying again later may work.
    Unavailable,
    /// The client speaks a protocol version this daemon does not.
    VersionMismatch,
    /// A fault inside the daemon; the log has the details under the
    /// correlation id.
    Internal,
    /// A code this client does not know yet (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Maintenance => "maintenance",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Present when the daemon logged more detail than it sent; quote it when
    /// asking an administrator to look at the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            correlation_id: None,
        }
    }
}
