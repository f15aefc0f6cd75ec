//! `POST /api/backups/import`: the request body streamed into the daemon's
//! `backup_import` (PROTOCOL.md 6.23, 6.25) piece by piece, never held
//! whole. The size comes from `Content-Length` (411 without one), the
//! daemon is asked before a byte of the body is read, so a refusal (413 at
//! the upload limit, 503 in maintenance, 403) costs the client nothing but
//! its headers, and `Expect: 100-continue` is answered only once the daemon
//! said `continue`. While the body flows the daemon's answers are watched,
//! so a refusal in the middle stops the reading at once. A client that goes
//! away mid-body drops the daemon connection, which cuts the import off:
//! the daemon removes its quarantine file and catalogues nothing.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use berkut_proto::wire::client::UPLOAD_CHUNK;
use berkut_proto::wire::ops;
use berkut_proto::wire::{Reply, ServerMessage};
use futures::StreamExt;

use crate::extract::User;
use crate::problem::Problem;
use crate::routes::{json, Shared};

pub async fn import(
    State(state): State<Shared>,
    User(user): User,
    request: Request,
) -> Result<Response, Problem> {
    let size = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "an import needs Content-Length: the daemon must know the archive's size first",
            )
        })?;
    let mut link = state.daemon.connect(user).await?;
    link.send(ops::BackupImport { size }).await?;
    match link.next().await? {
        ServerMessage::Continue { .. } => {}
        ServerMessage::Error { error, .. } => return Err(Problem::from_daemon(error)),
        _ => return Err(Problem::unavailable("berkutd answered the import oddly")),
    }

    let mut body = request.into_body().into_data_stream();
    let mut sent = 0u64;
    let ended_early = loop {
        tokio::select! {
            // The daemon only speaks now to refuse (too_large, invalid).
            msg = link.next() => break Some(msg?),
            chunk = body.next() => match chunk {
                Some(Ok(bytes)) => {
                    for piece in bytes.chunks(UPLOAD_CHUNK) {
                        link.send_data(piece.to_vec(), false).await?;
                    }
                    sent += bytes.len() as u64;
                }
                Some(Err(e)) => {
                    // The client went away or sent a broken body: dropping
                    // the link cuts the import off and leaves nothing.
                    tracing::info!(error = %e, sent, "import body broke off; import cancelled");
                    return Err(Problem::invalid("the request body broke off; nothing was imported"));
                }
                None => break None,
            },
        }
    };
    let answer = match ended_early {
        Some(msg) => msg,
        None => {
            link.send_data(Vec::new(), true).await?;
            // Verification reads the whole archive again: this can take a
            // while for a large one.
            loop {
                match link.next().await? {
                    m @ (ServerMessage::Reply { .. } | ServerMessage::Error { .. }) => break m,
                    _ => continue,
                }
            }
        }
    };
    match answer {
        ServerMessage::Reply {
            reply: Reply::Backup { backup },
            ..
        } => {
            tracing::info!(backup = %backup.id, bytes = sent, "archive imported");
            let mut response = json(StatusCode::CREATED, &backup);
            if let Ok(v) = format!("/api/backups/{}", backup.id).parse() {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
        ServerMessage::Error { error, .. } => Err(Problem::from_daemon(error)),
        _ => Err(Problem::unavailable("berkutd answered the import oddly")),
    }
}
