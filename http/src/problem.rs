//! Errors as RFC 9457 problem documents (`application/problem+json`). A
//! daemon error keeps its stable code (`code`) and correlation id, and picks
//! the HTTP status from the code alone, as PROTOCOL.md section 8 tells
//! clients to decide; errors of the gateway itself (a missing header, a bad
//! body, the daemon out of reach) use the same codes, so an application reads
//! one field whatever went wrong.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berkut_proto::wire::{ErrorBody, ErrorCode};
use serde::Serialize;

/// Seconds a client should wait before retrying while a restore holds
/// maintenance: restores take minutes, so polling faster helps nobody.
pub const MAINTENANCE_RETRY_SECS: u32 = 30;
/// Seconds before retrying when the daemon (or the gateway) is busy or away.
pub const UNAVAILABLE_RETRY_SECS: u32 = 5;

/// A problem to answer with.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// The protocol's error code, or one of the gateway's own in the same
    /// style (`unauthorized`, `length_required`, `precondition_failed`,
    /// `not_acceptable`, `method_not_allowed`).
    pub code: String,
    pub detail: String,
    pub correlation_id: Option<String>,
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code: code.to_owned(),
            detail: detail.into(),
            correlation_id: None,
            retry_after: None,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after = Some(UNAVAILABLE_RETRY_SECS);
        p
    }

    /// The daemon's error, mapped by its code.
    pub fn from_daemon(body: ErrorBody) -> Problem {
        let (status, retry_after) = match body.code {
            ErrorCode::Invalid => (StatusCode::BAD_REQUEST, None),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, None),
            ErrorCode::Conflict => (StatusCode::CONFLICT, None),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, None),
            ErrorCode::Maintenance => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(MAINTENANCE_RETRY_SECS),
            ),
            ErrorCode::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, None),
            ErrorCode::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                Some(UNAVAILABLE_RETRY_SECS),
            ),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, None),
            // The daemon speaks another version, or a code this gateway does
            // not know: the gateway's upstream failed.
            ErrorCode::VersionMismatch | ErrorCode::Unknown => (StatusCode::BAD_GATEWAY, None),
        };
        Problem {
            status,
            code: body.code.as_str().to_owned(),
            detail: body.message,
            correlation_id: body.correlation_id,
            retry_after,
        }
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let doc = Document {
            kind: format!("urn:berkut:problem:{}", self.code),
            title: self.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: &self.code,
            correlation_id: self.correlation_id.as_deref(),
        };
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = %self.code, detail = %self.detail, correlation_id = ?self.correlation_id, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = %self.code, detail = %self.detail, "request refused");
        }
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
