//! Webhook delivery: an HTTP POST of the event's JSON with
//! `X-Berkut-Signature: sha256=<hex>`, the HMAC-SHA256 of the body under
//! the sink's secret, so a receiver can tell berkutd's events from anyone
//! else's. Redirects are not followed (the signed body would go wherever a
//! `Location` says): a redirect counts as a failure, as does any answer
//! but 2xx, a connection that fails or an answer slower than the timeout.
//! Errors never repeat the URL, whose path may be a credential.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Berkut-Signature";

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One POST. Ok with the status, or why it failed.
pub async fn post(
    url: &reqwest::Url,
    secret: &[u8],
    body: &[u8],
    timeout: Duration,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("berkutd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("no HTTP client: {}", e.without_url()))?;
    let answer = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| describe(&e, timeout))?;
    let status = answer.status();
    if status.is_success() {
        Ok(format!("answered {status}"))
    } else if status.is_redirection() {
        Err(format!(
            "answered {status}, a redirect, which is not followed"
        ))
    } else {
        Err(format!("answered {status}"))
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        // Without the URL; the source chain names the cause.
        let mut text = "the request failed".to_owned();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        crate::events::safe_reason(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn the_signature_is_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
