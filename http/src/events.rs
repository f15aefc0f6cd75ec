//! Server-Sent Events: a restore's progress (`restore_status` with `wait`)
//! and a backup job's (`job_attach`), as they happen. Each `progress`
//! event carries the daemon's snapshot as JSON (a RestoreRecord with every
//! step, or a Progress); the last event, `end`, carries the final record,
//! and the stream closes. A daemon error before the first event is a
//! problem document with its status; one after it is an `error` event
//! holding the problem. A client that goes away drops the stream, which
//! closes the daemon connection and ends the follow there (the restore or
//! the backup itself carries on).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use berkut_proto::wire::ops;
use berkut_proto::wire::{Reply, ServerMessage};

use crate::daemon::Link;
use crate::extract::{BackupIdPath, RestoreIdPath, User};
use crate::problem::Problem;
use crate::routes::Shared;

/// Comments sent while nothing happens, so proxies keep the stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn restore_events(
    State(state): State<Shared>,
    User(user): User,
    RestoreIdPath(restore_id): RestoreIdPath,
) -> Result<Response, Problem> {
    let mut link = state.daemon.connect(user).await?;
    link.send(ops::RestoreStatus {
        restore_id,
        wait: true,
    })
    .await?;
    follow(link).await
}

pub async fn job_events(
    State(state): State<Shared>,
    User(user): User,
    BackupIdPath(id): BackupIdPath,
) -> Result<Response, Problem> {
    let mut link = state.daemon.connect(user).await?;
    link.send(ops::JobAttach { id }).await?;
    follow(link).await
}

async fn follow(mut link: Link) -> Result<Response, Problem> {
    let first = match link.next().await? {
        ServerMessage::Error { error, .. } => return Err(Problem::from_daemon(error)),
        other => other,
    };
    let state = (link, Some(first), 0u64, false);
    let stream = futures::stream::unfold(state, |(mut link, first, seq, done)| async move {
        if done {
            return None;
        }
        let msg = match first {
            Some(m) => Ok(m),
            None => link.next().await,
        };
        let (event, done) = to_event(msg);
        let event = event.id(seq.to_string());
        Some((Ok::<_, Infallible>(event), (link, None, seq + 1, done)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One daemon message as an event, and whether it is the last.
fn to_event(msg: Result<ServerMessage, Problem>) -> (Event, bool) {
    let data =
        |name: &str, value: serde_json::Value| Event::default().event(name).data(value.to_string());
    match msg {
        Ok(ServerMessage::RestoreProgress { restore, .. }) => {
            (data("progress", serde_json::json!(restore)), false)
        }
        Ok(ServerMessage::Progress { progress, .. }) => {
            (data("progress", serde_json::json!(progress)), false)
        }
        Ok(ServerMessage::Reply {
            reply: Reply::Restore { restore },
            ..
        }) => (data("end", serde_json::json!(restore)), true),
        Ok(ServerMessage::Reply {
            reply: Reply::Backup { backup },
            ..
        }) => (data("end", serde_json::json!(backup)), true),
        Ok(ServerMessage::Error { error, .. }) => {
            (problem_event(Problem::from_daemon(error)), true)
        }
        Ok(other) => (
            problem_event(Problem::unavailable(format!(
                "berkutd sent an unexpected message for request {:?}",
                other.request_id()
            ))),
            true,
        ),
        Err(problem) => (problem_event(problem), true),
    }
}

fn problem_event(p: Problem) -> Event {
    let doc = serde_json::json!({
        "type": format!("urn:berkut:problem:{}", p.code),
        "title": p.status.canonical_reason().unwrap_or("Error"),
        "status": p.status.as_u16(),
        "detail": p.detail,
        "code": p.code,
        "correlation_id": p.correlation_id,
    });
    Event::default().event("error").data(doc.to_string())
}
