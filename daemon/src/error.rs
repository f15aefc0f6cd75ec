//! Errors of operations, and the one place where they are turned into what a
//! client sees. A domain failure carries a stable code and a message written
//! for the client; anything technical (paths, SQL, a tool's stderr) is kept
//! in `detail`, which goes only to the log, under a correlation id that the
//! client does get, so an administrator can find it.

use berkut_proto::wire::{ErrorBody, ErrorCode, Failure};

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    pub code: ErrorCode,
    /// Safe to show to the client.
    pub message: String,
    /// For the log only.
    pub detail: Option<String>,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OpError {
        OpError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> OpError {
        self.detail = Some(detail.to_string());
        self
    }

    /// The detail from an error and every error beneath it: some say
    /// little themselves (tokio-postgres's is "db error", with the
    /// server's words in its source).
    pub fn with_source(self, e: &(dyn std::error::Error + 'static)) -> OpError {
        let mut detail = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            next = cause.source();
        }
        self.with_detail(detail)
    }

    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::new(ErrorCode::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> OpError {
        OpError::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> OpError {
        OpError::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden() -> OpError {
        OpError::new(ErrorCode::Forbidden, "you are not allowed to do this")
    }

    pub fn unavailable(message: impl Into<String>) -> OpError {
        OpError::new(ErrorCode::Unavailable, message)
    }

    /// A fault inside the daemon: the client learns only that it happened.
    pub fn internal(detail: impl std::fmt::Display) -> OpError {
        OpError::new(ErrorCode::Internal, "internal error").with_detail(detail)
    }

    /// Turns the error into what the client sees, logging the detail (if
    /// any) under a fresh correlation id.
    pub fn into_body(self, context: &str) -> ErrorBody {
        let correlation_id = self.detail.as_ref().map(|detail| {
            let id = new_correlation_id();
            tracing::warn!(correlation_id = %id, code = %self.code, %detail, "{context}: {}", self.message);
            id
        });
        ErrorBody {
            code: self.code,
            message: self.message,
            correlation_id,
        }
    }

    /// The same, for a job's record, where the reason is stored.
    pub fn into_failure(self, context: &str) -> Failure {
        let body = self.into_body(context);
        let reason = match body.correlation_id {
            Some(id) => format!("{} (correlation id {id})", body.message),
            None => body.message,
        };
        Failure {
            code: body.code,
            reason,
        }
    }
}

/// A short random id that ties a client's error to the log line with the
/// details.
pub fn new_correlation_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl From<berkut_proto::ids::InvalidId> for OpError {
    fn from(e: berkut_proto::ids::InvalidId) -> OpError {
        OpError::invalid(e.to_string())
    }
}

#[cfg(test)]
mod source_tests {
    use super::OpError;

    #[derive(Debug, thiserror::Error)]
    #[error("db error")]
    struct Opaque(#[source] std::io::Error);

    #[test]
    fn the_detail_has_every_error_beneath_the_one_given() {
        let e = Opaque(std::io::Error::other(
            "ERROR: new row violates check constraint \"t_id_check\"",
        ));
        let op = OpError::unavailable("the database server refused to load").with_source(&e);
        assert_eq!(
            op.detail.as_deref(),
            Some("db error: ERROR: new row violates check constraint \"t_id_check\"")
        );
    }
}
