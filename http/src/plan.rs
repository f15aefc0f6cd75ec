//! The backup plan with an `ETag`, so that two administrators cannot
//! overwrite each other: `PUT` needs `If-Match` with the tag they last saw
//! (or `*`), and a plan changed since is `412`. The tag is a digest of the
//! plan's settings and whether it is enabled, not of `next_run` or
//! `last_success`, which move on by themselves. The socket has no
//! compare-and-set, so the gateway holds a lock from its look to its
//! change: changes made past the gateway (`berkutctl plan set`) between the
//! two are not seen, which the README says.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use berkut_proto::wire::ops;
use berkut_proto::wire::{OnBehalfOf, Operation, PlanInfo, PlanSpec, Reply};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::extract::{Json, User};
use crate::problem::Problem;
use crate::routes::{json, Shared};

/// The plan's entity tag, quoted as HTTP wants it.
pub fn etag(plan: &PlanInfo) -> String {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("next_run");
        map.remove("last_success");
    }
    // serde_json's maps are sorted by key, so equal plans hash alike.
    let digest = Sha256::digest(value.to_string().as_bytes());
    format!("\"{}\"", &hex::encode(digest)[..32])
}

fn with_etag(plan: &PlanInfo) -> Response {
    let mut response = json(StatusCode::OK, plan);
    if let Ok(v) = HeaderValue::from_str(&etag(plan)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

async fn current(state: &Shared, user: OnBehalfOf) -> Result<PlanInfo, Problem> {
    match state.daemon.call(user, ops::PlanShow {}).await? {
        Reply::Plan { plan } => Ok(plan),
        _ => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "unknown",
            "berkutd answered plan_show with something else",
        )),
    }
}

async fn change(
    state: &Shared,
    user: OnBehalfOf,
    op: impl Into<Operation>,
) -> Result<Response, Problem> {
    match state.daemon.call(user, op).await? {
        Reply::Plan { plan } => Ok(with_etag(&plan)),
        _ => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "unknown",
            "berkutd answered a plan change with something else",
        )),
    }
}

/// What `If-Match` asks for: `None` when absent.
fn if_match(headers: &HeaderMap) -> Result<Option<Vec<String>>, Problem> {
    let mut tags = Vec::new();
    let mut any = false;
    for value in headers.get_all(header::IF_MATCH) {
        any = true;
        let text = value
            .to_str()
            .map_err(|_| Problem::invalid("If-Match is not ASCII"))?;
        tags.extend(
            text.split(',')
                .map(|t| t.trim().trim_start_matches("W/").to_owned()),
        );
    }
    Ok(any.then_some(tags))
}

/// Checks `If-Match` against the plan now, if the request has one (or
/// must: `required`).
async fn precondition(
    state: &Shared,
    user: &OnBehalfOf,
    headers: &HeaderMap,
    required: bool,
) -> Result<(), Problem> {
    let Some(tags) = if_match(headers)? else {
        if required {
            return Err(Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "changing the plan needs If-Match with the ETag of the plan you last read \
                 (GET /api/backups/plan), or If-Match: * to replace whatever is there",
            ));
        }
        return Ok(());
    };
    if tags.iter().any(|t| t == "*") {
        return Ok(());
    }
    let now = etag(&current(state, user.clone()).await?);
    if tags.contains(&now) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the plan has changed since you read it; read it again and retry",
        ))
    }
}

pub async fn show(State(state): State<Shared>, User(user): User) -> Result<Response, Problem> {
    Ok(with_etag(&current(&state, user).await?))
}

/// The body of `PUT /api/backups/plan`: a PlanSpec (PROTOCOL.md 7.7),
/// unknown fields refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    preset: berkut_proto::wire::Preset,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    weekday: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    scope: Option<berkut_proto::manifest::Scope>,
    #[serde(default)]
    include_files: Option<bool>,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    keep_last_successful: Option<u32>,
    #[serde(default)]
    catch_up: Option<bool>,
}

impl PlanBody {
    /// The spec, with the protocol's own defaults for what is left out.
    fn into_spec(self) -> Result<PlanSpec, Problem> {
        let mut value = serde_json::json!({ "preset": self.preset });
        let map = value.as_object_mut().expect("an object");
        let mut put = |k: &str, v: serde_json::Value| {
            if !v.is_null() {
                map.insert(k.to_owned(), v);
            }
        };
        put("at", serde_json::json!(self.at));
        put("weekday", serde_json::json!(self.weekday));
        put("timezone", serde_json::json!(self.timezone));
        put("cron", serde_json::json!(self.cron));
        put("scope", serde_json::json!(self.scope));
        put("include_files", serde_json::json!(self.include_files));
        put("retention_days", serde_json::json!(self.retention_days));
        put(
            "keep_last_successful",
            serde_json::json!(self.keep_last_successful),
        );
        put("catch_up", serde_json::json!(self.catch_up));
        serde_json::from_value(value).map_err(|e| Problem::invalid(format!("the plan: {e}")))
    }
}

pub async fn set(
    State(state): State<Shared>,
    User(user): User,
    headers: HeaderMap,
    Json(body): Json<PlanBody>,
) -> Result<Response, Problem> {
    let spec = body.into_spec()?;
    let _held = state.plan_lock.lock().await;
    precondition(&state, &user, &headers, true).await?;
    change(&state, user, ops::PlanSet { plan: spec }).await
}

pub async fn enable(
    State(state): State<Shared>,
    User(user): User,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let _held = state.plan_lock.lock().await;
    precondition(&state, &user, &headers, false).await?;
    change(&state, user, ops::PlanEnable {}).await
}

pub async fn disable(
    State(state): State<Shared>,
    User(user): User,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let _held = state.plan_lock.lock().await;
    precondition(&state, &user, &headers, false).await?;
    change(&state, user, ops::PlanDisable {}).await
}
