//! The S3 calls opendal 0.57 does not offer: ListMultipartUploads
//! (`GET /?uploads&prefix=`), AbortMultipartUpload (`DELETE
//! /key?uploadId=`) and a HEAD that asks for the object's stored checksum
//! (`x-amz-checksum-mode: ENABLED`). They are signed by `reqsign-aws-v4`,
//! the SigV4 signer opendal itself uses, sent with `reqwest`, and replies
//! are parsed by `quick-xml` with every size bounded: a bucket's answer is
//! input like any other. An upload is stale when it lies under the
//! remote's prefix, is older than `STALE_AFTER` by the server's own
//! `Initiated` time, and is not one this daemon has in flight; only those
//! are aborted. An unfinished upload is never an object, so this frees
//! space and nothing else.

use std::time::Duration;

use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_aws_v4::{Credential, RequestSigner};
use reqsign_core::{Context, SignRequest};
use serde::Deserialize;
use time::OffsetDateTime;

use super::storage::{Failure, RemoteError};
use crate::config::remote::{RemoteConfig, RemoteKind};

/// An upload begun this long ago and not finished is left over by a
/// daemon that died, or a machine that was lost: an upload of the largest
/// archive takes minutes, not a day.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The largest reply to one listing read (S3 lists at most 1,000 uploads
/// per page, well under 1 MiB).
const MAX_REPLY_BYTES: usize = 4 << 20;
/// Pages read in one pass; what is left waits for the next pass.
const MAX_PAGES: usize = 20;
/// S3's own limit on a key's length; an upload id is far shorter.
const MAX_KEY: usize = 1024;
const MAX_UPLOAD_ID: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a key or query value may keep as it is (RFC 3986 unreserved);
/// `/` stays too in a key's path.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// One unfinished multipart upload, as the server lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The full key, prefix included.
    pub key: String,
    pub upload_id: String,
    pub initiated: OffsetDateTime,
}

/// Signs and sends the two calls for one S3 remote.
pub struct S3Calls {
    remote: String,
    http: reqwest::Client,
    /// Up to and without the key: `http://host:port/bucket` (path style)
    /// or `http://bucket.host:port`.
    base: String,
    prefix: String,
    region: String,
    credential: Credential,
}

/// The reply to ListMultipartUploads.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default)]
    upload: Vec<Listed>,
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    key: String,
    upload_id: String,
    initiated: String,
}

impl S3Calls {
    /// For an `s3` remote; `None` for the `fs` kind, which has no
    /// multipart uploads (its half-written files live in `.partial`).
    pub fn open(remote: &RemoteConfig) -> Result<Option<S3Calls>, RemoteError> {
        let RemoteKind::S3 {
            endpoint,
            region,
            bucket,
            path_style,
            access_key_id,
            secret_access_key,
            ..
        } = &remote.kind
        else {
            return Ok(None);
        };
        let endpoint = endpoint.trim_end_matches('/');
        let base = if *path_style {
            format!("{endpoint}/{bucket}")
        } else {
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
                None => format!("{bucket}.{endpoint}"),
            }
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|_| {
                RemoteError::new(&remote.name, Failure::Other, "cannot build an HTTP client")
            })?;
        Ok(Some(S3Calls {
            remote: remote.name.clone(),
            http,
            base,
            prefix: remote.prefix.clone(),
            region: region.clone(),
            credential: Credential {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.expose().to_owned(),
                session_token: None,
                expires_in: None,
            },
        }))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn failure(&self, words: impl Into<String>) -> RemoteError {
        RemoteError::new(&self.remote, Failure::Other, words)
    }

    /// Signs and sends a body-less request; returns the status and at
    /// most `MAX_REPLY_BYTES` of the reply.
    async fn send(&self, method: Method, url: &str) -> Result<(u16, Vec<u8>), RemoteError> {
        self.send_with(method, url, None)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// `send` with one more (signed) header; also returns the reply's
    /// headers.
    async fn send_with(
        &self,
        method: Method,
        url: &str,
        header: Option<(&'static str, &'static str)>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>), RemoteError> {
        let mut request = http::Request::builder().method(method).uri(url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let request = request
            .body(())
            .map_err(|_| self.failure("cannot build a request to the server"))?;
        let (mut parts, ()) = request.into_parts();
        RequestSigner::new("s3", &self.region)
            .sign_request(&Context::new(), &mut parts, Some(&self.credential), None)
            .await
            .map_err(|_| self.failure("cannot sign a request to the server"))?;
        // reqwest sets the host itself (as opendal does).
        parts.headers.remove(http::header::HOST);
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, Vec::new()))
            .map_err(|_| self.failure("cannot build a request to the server"))?;
        let mut response = self.http.execute(request).await.map_err(|e| {
            self.failure(if e.is_timeout() {
                "the server did not answer in time"
            } else {
                "the endpoint cannot be reached (network, address or port)"
            })
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| self.failure("the server's reply broke off"))?
        {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(self.failure("the server's reply is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    fn refused(&self, status: u16, body: &[u8]) -> RemoteError {
        let text = String::from_utf8_lossy(&body[..body.len().min(2048)]);
        self.failure(match status {
            403 if text.contains("InvalidAccessKeyId")
                || text.contains("SignatureDoesNotMatch") =>
            {
                "the server refused the credentials: check access_key_id and the secret access \
                 key file"
            }
            403 => "access denied: check access_key_id and the secret access key file",
            404 if text.contains("NoSuchBucket") => {
                "the bucket does not exist (check bucket and endpoint)"
            }
            _ => "the server refused to list or abort unfinished uploads",
        })
    }

    /// The unfinished uploads under the prefix, at most `MAX_PAGES` pages.
    pub async fn list(&self) -> Result<Vec<Upload>, RemoteError> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}/?uploads&prefix={}",
                self.base,
                utf8_percent_encode(&self.prefix, QUERY)
            );
            if let Some((key, id)) = &markers {
                url.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    utf8_percent_encode(key, QUERY),
                    utf8_percent_encode(id, QUERY)
                ));
            }
            let (status, body) = self.send(Method::GET, &url).await?;
            if status != 200 {
                return Err(self.refused(status, &body));
            }
            let page = parse(&body, &self.prefix)
                .map_err(|why| self.failure(format!("the server's list of uploads {why}")))?;
            out.extend(page.uploads);
            match page.next {
                Some(next) if Some(&next) != markers.as_ref() => markers = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The CRC32C the server keeps for the object `name` under the prefix
    /// (`crc` or `crc-N`), or `None` when it keeps none.
    pub async fn stored_crc32c(&self, name: &str) -> Result<Option<String>, RemoteError> {
        let url = format!(
            "{}/{}",
            self.base,
            utf8_percent_encode(&format!("{}{name}", self.prefix), PATH)
        );
        let (status, headers, body) = self
            .send_with(Method::HEAD, &url, Some(("x-amz-checksum-mode", "ENABLED")))
            .await?;
        if status != 200 {
            return Err(self.refused(status, &body));
        }
        Ok(headers
            .get("x-amz-checksum-crc32c")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 32)
            .map(str::to_owned))
    }

    /// Aborts one upload. An upload already gone counts as aborted.
    pub async fn abort(&self, upload: &Upload) -> Result<(), RemoteError> {
        if !upload.key.starts_with(&self.prefix) {
            return Err(self.failure("an upload outside the prefix is not touched"));
        }
        let url = format!(
            "{}/{}?uploadId={}",
            self.base,
            utf8_percent_encode(&upload.key, PATH),
            utf8_percent_encode(&upload.upload_id, QUERY)
        );
        let (status, body) = self.send(Method::DELETE, &url).await?;
        match status {
            200..=299 => Ok(()),
            404 if String::from_utf8_lossy(&body).contains("NoSuchUpload") => Ok(()),
            _ => Err(self.refused(status, &body)),
        }
    }
}

/// One page of a listing: the uploads under `prefix` it names, and the
/// markers of the next page when the listing is truncated.
struct Page {
    uploads: Vec<Upload>,
    next: Option<(String, String)>,
}

/// Parses a ListMultipartUploads reply. Entries outside the prefix, with
/// an over-long key or id, or an unreadable time are skipped: they are
/// never aborted.
fn parse(body: &[u8], prefix: &str) -> Result<Page, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "is not UTF-8")?;
    let listing: Listing = quick_xml::de::from_str(text).map_err(|_| "is not readable XML")?;
    let uploads = listing
        .upload
        .into_iter()
        .filter(|u| {
            u.key.len() <= MAX_KEY
                && u.upload_id.len() <= MAX_UPLOAD_ID
                && !u.upload_id.is_empty()
                && u.key.starts_with(prefix)
        })
        .filter_map(|u| {
            let initiated =
                OffsetDateTime::parse(&u.initiated, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            Some(Upload {
                key: u.key,
                upload_id: u.upload_id,
                initiated,
            })
        })
        .collect();
    let next = match (
        listing.is_truncated,
        listing.next_key_marker,
        listing.next_upload_id_marker,
    ) {
        (true, Some(key), Some(id)) if key.len() <= MAX_KEY && id.len() <= MAX_UPLOAD_ID => {
            Some((key, id))
        }
        _ => None,
    };
    Ok(Page { uploads, next })
}

/// The uploads to abort: begun at least `after` before `now`, and not
/// one `busy` says this daemon is sending now (by its key).
pub fn stale(
    uploads: &[Upload],
    now: OffsetDateTime,
    after: Duration,
    busy: impl Fn(&str) -> bool,
) -> Vec<&Upload> {
    uploads
        .iter()
        .filter(|u| (now - u.initiated) >= after && !busy(&u.key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const REPLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>berkut</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>prod/b.bscc</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>prod/a.bscc</Key><UploadId>id-1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-11-30T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>prod/b.bscc</Key><UploadId>id-2</UploadId>
    <Initiated>2026-12-02T09:00:00Z</Initiated></Upload>
  <Upload><Key>other/c.bscc</Key><UploadId>id-3</UploadId>
    <Initiated>2020-01-01T00:00:00Z</Initiated></Upload>
  <Upload><Key>prod/d.bscc</Key><UploadId>id-4</UploadId>
    <Initiated>yesterday</Initiated></Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn a_listing_keeps_only_readable_uploads_under_the_prefix() {
        let page = parse(REPLY.as_bytes(), "prod/").unwrap();
        let keys: Vec<&str> = page.uploads.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["prod/a.bscc", "prod/b.bscc"]);
        assert_eq!(page.uploads[0].initiated, datetime!(2026-11-30 10:00 UTC));
        assert_eq!(
            page.next,
            Some(("prod/b.bscc".to_owned(), "id-2".to_owned()))
        );
        let empty = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
                     </ListMultipartUploadsResult>";
        let page = parse(empty.as_bytes(), "prod/").unwrap();
        assert!(page.uploads.is_empty() && page.next.is_none());
    }

    #[test]
    fn hostile_listings_are_refused_or_skipped() {
        assert!(parse(b"\xff\xfe", "").is_err());
        assert!(parse(b"<ListMultipartUploadsResult><Upload>", "").is_err());
        let long = format!(
            "<ListMultipartUploadsResult><Upload><Key>{}</Key><UploadId>i</UploadId>\
             <Initiated>2020-01-01T00:00:00Z</Initiated></Upload></ListMultipartUploadsResult>",
            "k".repeat(MAX_KEY + 1)
        );
        assert!(parse(long.as_bytes(), "").unwrap().uploads.is_empty());
    }

    #[test]
    fn only_old_uploads_not_in_flight_are_stale() {
        let page = parse(REPLY.as_bytes(), "prod/").unwrap();
        let now = datetime!(2026-12-02 10:00 UTC);
        let stale_keys = |busy: &dyn Fn(&str) -> bool| -> Vec<String> {
            stale(&page.uploads, now, STALE_AFTER, busy)
                .iter()
                .map(|u| u.key.clone())
                .collect()
        };
        // b is one hour old: fresh.
        assert_eq!(stale_keys(&|_| false), ["prod/a.bscc"]);
        // a is old but this daemon is sending it now.
        assert!(stale_keys(&|k| k == "prod/a.bscc").is_empty());
    }
}
