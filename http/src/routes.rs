//! The API's routes, one table (`routes`) that both the router and the
//! OpenAPI check read, and the handlers that are a single socket operation
//! each: list, show, create, delete, restores and their status, health.
//! Streaming endpoints live in `download`, `evidence`, `import` and
//! `events`; the plan
//! with its ETag in `plan`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::ops;
use berkut_proto::wire::{OnBehalfOf, Reply, Role};
use serde::Deserialize;

use crate::daemon::Daemon;
use crate::extract::{BackupIdPath, Json, Query, RestoreIdPath, User};
use crate::problem::Problem;

/// What every handler shares.
pub struct AppState {
    pub daemon: Daemon,
    /// Serializes the plan's compare-and-set (`If-Match`), which the socket
    /// does not offer as one operation.
    pub plan_lock: tokio::sync::Mutex<()>,
}

pub type Shared = Arc<AppState>;

/// Every route: path, method, handler. The OpenAPI document is checked
/// against exactly this list.
pub fn routes() -> Vec<(&'static str, Method, MethodRouter<Shared>)> {
    macro_rules! route {
        ($method:ident $path:literal => $handler:path) => {
            ($path, Method::$method, on(MethodFilter::$method, $handler))
        };
    }
    use crate::{download, events, evidence, import, openapi, plan};
    vec![
        route!(GET "/api/health" => health),
        route!(GET "/api/openapi.json" => openapi::serve),
        route!(GET "/api/backups" => list),
        route!(POST "/api/backups" => create),
        route!(POST "/api/backups/import" => import::import),
        route!(GET "/api/backups/plan" => plan::show),
        route!(PUT "/api/backups/plan" => plan::set),
        route!(POST "/api/backups/plan/enable" => plan::enable),
        route!(POST "/api/backups/plan/disable" => plan::disable),
        route!(GET "/api/backups/restores/{restore_id}" => restore_status),
        route!(GET "/api/backups/restores/{restore_id}/events" => events::restore_events),
        route!(GET "/api/backups/restores/{restore_id}/evidence" => evidence::export),
        route!(GET "/api/backups/jobs/{job_id}/events" => events::job_events),
        route!(GET "/api/backups/{id}" => show),
        route!(DELETE "/api/backups/{id}" => delete),
        route!(GET "/api/backups/{id}/download" => download::download),
        route!(POST "/api/backups/{id}/restore" => restore),
        route!(POST "/api/backups/{id}/restore/dry-run" => dry_run),
    ]
}

/// The router over `routes()`, with problem documents for unknown paths
/// and methods.
pub fn router(state: Shared) -> Router {
    let mut router = Router::new();
    for (path, _, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

/// A JSON response with a status.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

/// `Location` for a created or accepted resource.
fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn unexpected(reply: Reply) -> Problem {
    tracing::warn!(?reply, "berkutd answered with an unexpected reply");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "unknown",
        "berkutd answered with a reply the gateway did not expect",
    )
}

async fn health(State(state): State<Shared>) -> Result<Response, Problem> {
    // The health check acts for the service itself, as PROTOCOL.md 1.6
    // asks, so that it reads as such in the audit trail.
    let who = OnBehalfOf {
        user: "system:health".into(),
        role: Role::Viewer,
    };
    match state.daemon.call(who, ops::Status {}).await? {
        Reply::Status { status } => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "ok",
                "daemon_version": status.version,
                "rpo_breached": status.rpo_breached,
            }),
        )),
        other => Err(unexpected(other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: Option<u32>,
}

async fn list(
    State(state): State<Shared>,
    User(user): User,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    let op = ops::BackupList {
        offset: q.offset,
        limit: q.limit,
    };
    match state.daemon.call(user, op).await? {
        Reply::Backups { backups, total } => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "backups": backups, "total": total }),
        )),
        other => Err(unexpected(other)),
    }
}

async fn show(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
) -> Result<Response, Problem> {
    match state.daemon.call(user, ops::BackupShow { id }).await? {
        Reply::Backup { backup } => Ok(json(StatusCode::OK, &backup)),
        other => Err(unexpected(other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    label: String,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    include_files: bool,
}

async fn create(
    State(state): State<Shared>,
    User(user): User,
    Json(body): Json<CreateBody, true>,
) -> Result<Response, Problem> {
    let op = ops::BackupCreate {
        label: body.label,
        scope: body.scope,
        include_files: body.include_files,
        wait: false,
    };
    match state.daemon.call(user, op).await? {
        Reply::Backup { backup } => {
            let location = format!("/api/backups/{}", backup.id);
            Ok(with_location(
                json(StatusCode::ACCEPTED, &backup),
                &location,
            ))
        }
        other => Err(unexpected(other)),
    }
}

async fn delete(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
) -> Result<Response, Problem> {
    match state.daemon.call(user, ops::BackupDelete { id }).await? {
        Reply::Deleted { .. } => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(unexpected(other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    #[serde(default)]
    with_globals: bool,
}

async fn restore(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
    Json(body): Json<RestoreBody, true>,
) -> Result<Response, Problem> {
    start_restore(&state, user, id, false, body.with_globals).await
}

async fn dry_run(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
    Json(body): Json<RestoreBody, true>,
) -> Result<Response, Problem> {
    start_restore(&state, user, id, true, body.with_globals).await
}

async fn start_restore(
    state: &AppState,
    user: OnBehalfOf,
    backup_id: berkut_proto::ids::BackupId,
    dry_run: bool,
    with_globals: bool,
) -> Result<Response, Problem> {
    let op = ops::RestoreStart {
        backup_id,
        dry_run,
        with_globals,
        wait: false,
    };
    match state.daemon.call(user, op).await? {
        Reply::Restore { restore } => {
            let location = format!("/api/backups/restores/{}", restore.restore_id);
            Ok(with_location(
                json(StatusCode::ACCEPTED, &restore),
                &location,
            ))
        }
        other => Err(unexpected(other)),
    }
}

async fn restore_status(
    State(state): State<Shared>,
    User(user): User,
    RestoreIdPath(restore_id): RestoreIdPath,
) -> Result<Response, Problem> {
    let op = ops::RestoreStatus {
        restore_id,
        wait: false,
    };
    match state.daemon.call(user, op).await? {
        Reply::Restore { restore } => Ok(json(StatusCode::OK, &restore)),
        other => Err(unexpected(other)),
    }
}
