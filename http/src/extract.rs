//! What handlers take from a request, each refusing bad input with a
//! problem document: the user the application acts for (its two headers),
//! backup and restore ids from the path, JSON bodies (size-capped, unknown
//! fields refused) and query strings. Nothing here panics on what a client
//! sends, and no refusal quotes more than a short piece of it.

use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Query as AxumQuery, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use berkut_proto::ids::{BackupId, RestoreId};
use berkut_proto::wire::{OnBehalfOf, Role};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The header naming the application's signed-in user.
pub const USER_HEADER: &str = "x-berkut-user";
/// The header with that user's role: viewer, operator or admin.
pub const ROLE_HEADER: &str = "x-berkut-role";
/// The largest JSON body any endpoint takes; the biggest (a plan) is well
/// under a kilobyte.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// The longest user name the protocol takes (PROTOCOL.md 7.16).
const MAX_USER_CHARS: usize = 200;

/// The application's user, from `X-Berkut-User` and `X-Berkut-Role`.
pub struct User(pub OnBehalfOf);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<User, Problem> {
        user_from(&parts.headers).map(User)
    }
}

fn user_from(headers: &HeaderMap) -> Result<OnBehalfOf, Problem> {
    let get = |name: &str| -> Result<Option<String>, Problem> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::invalid(format!("{name} is given more than once")));
        }
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| Problem::invalid(format!("{name} is not UTF-8")))?;
        Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
    };
    let (Some(user), Some(role)) = (get(USER_HEADER)?, get(ROLE_HEADER)?) else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the request names no user: X-Berkut-User and X-Berkut-Role are required \
             (the application sets them for its signed-in user)",
        ));
    };
    if user.chars().count() > MAX_USER_CHARS || user.chars().any(char::is_control) {
        return Err(Problem::invalid(format!(
            "X-Berkut-User must be 1 to {MAX_USER_CHARS} characters without control characters"
        )));
    }
    let role = Role::from_str(&role).map_err(|_| {
        Problem::invalid("X-Berkut-Role must be viewer, operator or admin".to_owned())
    })?;
    Ok(OnBehalfOf { user, role })
}

/// A path segment as a backup id.
pub struct BackupIdPath(pub BackupId);
/// A path segment as a restore id.
pub struct RestoreIdPath(pub RestoreId);

impl<S: Send + Sync> FromRequestParts<S> for BackupIdPath {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let raw = one_segment(parts, state).await?;
        BackupId::from_str(&raw)
            .map(BackupIdPath)
            .map_err(|_| Problem::invalid(format!("{} is not a backup id", quote(&raw))))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RestoreIdPath {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let raw = one_segment(parts, state).await?;
        RestoreId::from_str(&raw)
            .map(RestoreIdPath)
            .map_err(|_| Problem::invalid(format!("{} is not a restore id", quote(&raw))))
    }
}

async fn one_segment<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, Problem> {
    axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|_| Problem::invalid("the id in the path is not valid UTF-8 text"))
}

/// A short, printable quote of what a client sent, for an error message.
pub fn quote(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    format!("{:?}", cut)
}

/// A JSON body, at most `MAX_JSON_BODY` bytes, of type `T` (whose unknown
/// fields are refused by `#[serde(deny_unknown_fields)]`). With `OPTIONAL`,
/// an empty body reads as `{}`.
pub struct Json<T, const OPTIONAL: bool = false>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const OPTIONAL: bool> FromRequest<S>
    for Json<T, OPTIONAL>
{
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            });
        let body = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is over the limit of {MAX_JSON_BODY} bytes"),
                )
            })?;
        let body: &[u8] = if OPTIONAL && body.is_empty() {
            b"{}"
        } else {
            if is_json != Some(true) {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid",
                    "the body must be JSON (Content-Type: application/json)",
                ));
            }
            &body
        };
        serde_json::from_slice(body)
            .map(Json)
            .map_err(|e| Problem::invalid(format!("the JSON body is not acceptable: {e}")))
    }
}

/// A query string of type `T` (unknown parameters refused).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        AxumQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                Problem::invalid(format!("the query is not acceptable: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_user_needs_both_headers_and_a_known_role() {
        let ok = user_from(&headers(&[
            (USER_HEADER, b"alice"),
            (ROLE_HEADER, b"operator"),
        ]))
        .unwrap();
        assert_eq!((ok.user.as_str(), ok.role), ("alice", Role::Operator));
        let missing = user_from(&headers(&[(USER_HEADER, b"alice")])).unwrap_err();
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
        let empty =
            user_from(&headers(&[(USER_HEADER, b" "), (ROLE_HEADER, b"admin")])).unwrap_err();
        assert_eq!(empty.status, StatusCode::UNAUTHORIZED);
        let role = user_from(&headers(&[(USER_HEADER, b"a"), (ROLE_HEADER, b"app")])).unwrap_err();
        assert_eq!(
            (role.status, role.code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid")
        );
        let twice = user_from(&headers(&[
            (USER_HEADER, b"a"),
            (USER_HEADER, b"b"),
            (ROLE_HEADER, b"admin"),
        ]))
        .unwrap_err();
        assert_eq!(twice.status, StatusCode::BAD_REQUEST);
        let long = "x".repeat(201);
        let long = user_from(&headers(&[
            (USER_HEADER, long.as_bytes()),
            (ROLE_HEADER, b"admin"),
        ]))
        .unwrap_err();
        assert_eq!(long.status, StatusCode::BAD_REQUEST);
        // UTF-8 names pass as they are.
        let utf8 = user_from(&headers(&[
            (USER_HEADER, "Zoë".as_bytes()),
            (ROLE_HEADER, b"viewer"),
        ]))
        .unwrap();
        assert_eq!(utf8.user, "Zoë");
    }
}
