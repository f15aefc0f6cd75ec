//! `GET /api/backups/{id}/download`: the archive streamed from the daemon
//! into the response as its pieces come (PROTOCOL.md 6.25), never held
//! whole, so a slow HTTP client slows the daemon's reading down instead of
//! filling the gateway's memory. `Content-Length` and the `ETag` (the
//! archive's sha256) come from the record; `Range` (one range, with
//! `If-Range`) resumes a broken transfer, the daemon reading from the
//! range's first byte (`backup_download`'s `offset`). Once the status line has gone
//! out, a failure can no longer be a status: the body is cut off short of
//! its `Content-Length`, so no client takes a broken file for a good one.
//! A client that goes away drops the stream, which closes the daemon
//! connection: the download and its lease end there.

use std::io;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berkut_proto::wire::ops;
use berkut_proto::wire::{BackupStatus, Reply, ServerMessage};
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::extract::{BackupIdPath, User};
use crate::pieces::{self, Messages, Pieces, Tally};
use crate::problem::Problem;
use crate::routes::Shared;

/// Which bytes to send: `start..end` of an archive of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// Reads `Range` (honoured only for one range of bytes, and only when
/// `If-Range`, if given, names the current archive): `Ok(None)` for the
/// whole archive, `Err` when the range lies outside it (416).
pub fn requested_span(headers: &HeaderMap, size: u64, etag: &str) -> Result<Option<Span>, ()> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if if_range.to_str().ok().map(str::trim) != Some(etag) {
            return Ok(None);
        }
    }
    // Anything but one well-formed byte range is ignored (RFC 9110 14.2):
    // the whole archive is sent.
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let span = match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let Some(n) = parse(last) else {
                return Ok(None);
            };
            if n == 0 {
                return Err(());
            }
            Span {
                start: size.saturating_sub(n),
                end: size,
            }
        }
        (false, true) => {
            let Some(start) = parse(first) else {
                return Ok(None);
            };
            Span { start, end: size }
        }
        (false, false) => {
            let (Some(start), Some(last)) = (parse(first), parse(last)) else {
                return Ok(None);
            };
            if last < start {
                return Ok(None);
            }
            Span {
                start,
                end: last.saturating_add(1).min(size),
            }
        }
        (true, true) => return Ok(None),
    };
    if span.start >= size {
        return Err(());
    }
    Ok(Some(span))
}

pub async fn download(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let record = match state
        .daemon
        .call(user.clone(), ops::BackupShow { id: id.clone() })
        .await?
    {
        Reply::Backup { backup } => backup,
        _ => return Err(Problem::unavailable("berkutd answered backup_show oddly")),
    };
    let (BackupStatus::Succeeded, Some(size), Some(sha256)) =
        (record.status, record.size_bytes, record.sha256.clone())
    else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "backup {id} has no archive to download (its status is {:?})",
                record.status
            ),
        ));
    };
    let etag = format!("\"{sha256}\"");
    let span = match requested_span(&headers, size, &etag) {
        Ok(span) => span,
        Err(()) => {
            let mut response = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid",
                format!("the range lies outside the archive of {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let whole = Span {
        start: 0,
        end: size,
    };
    let wanted = span.unwrap_or(whole);

    let mut link = state.daemon.connect(user).await?;
    // The daemon starts at the range's first byte: resuming a large
    // download reads nothing twice.
    link.send(ops::BackupDownload {
        id: id.clone(),
        offset: wanted.start,
    })
    .await?;
    // The first answer decides the status: an error before any byte (the
    // caller may not download, maintenance) is a problem document.
    let first = match link.next().await? {
        ServerMessage::Error { error, .. } => return Err(Problem::from_daemon(error)),
        other => other,
    };
    let transfer = Transfer {
        messages: Messages::new(link, first),
        start: wanted.start,
        wanted,
        size,
        sha256,
        tally: Tally::starting_at(wanted.start),
        done: false,
        id: id.to_string(),
    };

    let mut response = Response::new(pieces::body(transfer));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(wanted.end - wanted.start),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.bscc\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if span.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", wanted.start, wanted.end - 1))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// One download in flight.
struct Transfer {
    messages: Messages,
    /// Where the daemon began.
    start: u64,
    /// What the daemon has sent, from `start`.
    tally: Tally,
    wanted: Span,
    size: u64,
    sha256: String,
    done: bool,
    id: String,
}

impl Pieces for Transfer {
    fn step(&mut self) -> BoxFuture<'_, io::Result<Option<Bytes>>> {
        Box::pin(self.take())
    }

    fn finished(&self) -> bool {
        self.done
    }

    fn what(&self) -> String {
        format!("download of backup {}", self.id)
    }
}

impl Transfer {
    /// `Pieces::step`: skipped bytes before a range are nothing.
    async fn take(&mut self) -> io::Result<Option<Bytes>> {
        match self.messages.next().await? {
            ServerMessage::Data { offset, data, .. } => {
                let from = self.tally.received;
                self.tally.add(offset, &data)?;
                // The part of this piece inside the wanted span.
                let lo = self.wanted.start.max(from);
                let hi = self.wanted.end.min(self.tally.received);
                if self.tally.received >= self.wanted.end && self.wanted.end < self.size {
                    // The range ends before the archive does: stop here;
                    // dropping the link ends the daemon's download.
                    self.done = true;
                }
                if lo < hi {
                    let slice = &data[(lo - from) as usize..(hi - from) as usize];
                    Ok(Some(Bytes::copy_from_slice(slice)))
                } else {
                    Ok(None)
                }
            }
            ServerMessage::Reply {
                reply:
                    Reply::Downloaded {
                        size_bytes, sha256, ..
                    },
                ..
            } => {
                self.done = true;
                let streamed = self.tally.sha256();
                let received = self.tally.received;
                // What came must be what the daemon says it sent; the whole
                // archive must also be the one the record describes.
                let whole = self.start == 0;
                if size_bytes != received - self.start
                    || received != self.size
                    || sha256 != streamed
                    || (whole && sha256 != self.sha256)
                {
                    return Err(io::Error::other(format!(
                        "the archive streamed ({} bytes, sha256 {streamed}) is not the one \
                         recorded ({} bytes, sha256 {})",
                        received, self.size, self.sha256
                    )));
                }
                tracing::info!(backup = %self.id, bytes = received, "download complete");
                Ok(None)
            }
            other => Err(pieces::unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(range: &str, if_range: Option<&str>) -> Result<Option<Span>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(t) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(t).unwrap());
        }
        requested_span(&h, 1000, "\"abc\"")
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let s = |start, end| Ok(Some(Span { start, end }));
        assert_eq!(span("bytes=0-99", None), s(0, 100));
        assert_eq!(span("bytes=900-", None), s(900, 1000));
        assert_eq!(span("bytes=-10", None), s(990, 1000));
        assert_eq!(span("bytes=-5000", None), s(0, 1000));
        assert_eq!(span("bytes=990-5000", None), s(990, 1000));
        assert_eq!(span("bytes=1000-", None), Err(()));
        assert_eq!(span("bytes=-0", None), Err(()));
        // Ignored: several ranges, other units, nonsense, a stale If-Range.
        assert_eq!(span("bytes=0-1,5-6", None), Ok(None));
        assert_eq!(span("items=0-1", None), Ok(None));
        assert_eq!(span("bytes=x-y", None), Ok(None));
        assert_eq!(span("bytes=5-1", None), Ok(None));
        assert_eq!(span("bytes=0-9", Some("\"old\"")), Ok(None));
        assert_eq!(span("bytes=0-9", Some("\"abc\"")), s(0, 10));
    }
}
