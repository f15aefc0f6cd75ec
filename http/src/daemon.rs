//! The way to berkutd: one socket connection per HTTP request, made with
//! `berkut-proto`'s client (which does the handshake) and then read and
//! written frame by frame, so that a download can be streamed and an upload
//! watched for a refusal while it is sent. A fresh connection per request
//! is what makes the gateway reconnect by itself after the daemon restarts,
//! and what lets a client's disconnect cancel exactly its own operation
//! (closing the connection is the protocol's way to cancel, 6.22, 6.25).
//!
//! A semaphore owns how many connections are open at once: the daemon takes
//! at most `max_connections_per_uid` (32) from one uid, and every open
//! connection holds a frame buffer, so the limit is also the gateway's
//! memory bound. Requests beyond it wait in a bounded queue; past the queue
//! they are answered 503 at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berkut_proto::wire::frame::{codec, decode_message, encode};
use berkut_proto::wire::{
    Client, ClientError, ClientMessage, OnBehalfOf, Operation, Reply, ServerMessage, MAX_FRAME_LEN,
};
use futures::{SinkExt, StreamExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::problem::Problem;

/// The daemon as the gateway reaches it.
pub struct Daemon {
    socket: PathBuf,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    queue_timeout: Duration,
    /// How long the daemon may take to answer `hello`: a daemon that is
    /// stopped or stuck must become a 503, not a request that hangs.
    handshake_timeout: Duration,
}

/// One request's connection to the daemon, after the handshake, with the
/// permit it holds until it is dropped.
pub struct Link {
    reader: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    user: OnBehalfOf,
    _permit: OwnedSemaphorePermit,
}

/// The request id every link uses: one request per connection.
pub const REQUEST_ID: u64 = 1;

impl Daemon {
    pub fn new(
        socket: PathBuf,
        max_connections: usize,
        max_waiting: usize,
        queue_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Daemon {
        Daemon {
            socket,
            permits: Arc::new(Semaphore::new(max_connections)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            queue_timeout,
            handshake_timeout,
        }
    }

    /// Opens a connection for `user`, waiting for a free slot if need be.
    pub async fn connect(&self, user: OnBehalfOf) -> Result<Link, Problem> {
        let permit = self.permit().await?;
        let client = tokio::time::timeout(
            self.handshake_timeout,
            Client::connect(&self.socket, concat!("berkut-http ", env!("CARGO_PKG_VERSION"))),
        )
        .await
        .map_err(|_| Problem::unavailable("berkutd did not answer in time"))?
        .map_err(|e| match e {
            ClientError::Server(body) => Problem::from_daemon(body),
            other => {
                tracing::warn!(error = %other, socket = %self.socket.display(), "cannot reach berkutd");
                Problem::unavailable("berkutd is not reachable; try again later")
            }
        })?;
        let (read, write) = client.into_connection().into_inner().into_split();
        Ok(Link {
            reader: FramedRead::new(read, codec(MAX_FRAME_LEN)),
            writer: FramedWrite::new(write, codec(MAX_FRAME_LEN)),
            user,
            _permit: permit,
        })
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, Problem> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        // Bounded waiting: a request past the queue costs nothing but the
        // 503 that answers it.
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Problem::unavailable(
                "the gateway is at its limit of requests; try again later",
            ));
        }
        let got = tokio::time::timeout(
            self.queue_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Problem::unavailable(
                "the gateway is at its limit of requests; try again later",
            )),
        }
    }

    /// Sends one operation and waits for its reply, discarding anything
    /// streamed before it.
    pub async fn call(&self, user: OnBehalfOf, op: impl Into<Operation>) -> Result<Reply, Problem> {
        let mut link = self.connect(user).await?;
        link.send(op).await?;
        loop {
            match link.next().await? {
                ServerMessage::Reply { reply, .. } => return Ok(reply),
                ServerMessage::Error { error, .. } => return Err(Problem::from_daemon(error)),
                _ => continue,
            }
        }
    }
}

impl Link {
    /// Sends the connection's one request.
    pub async fn send(&mut self, op: impl Into<Operation>) -> Result<(), Problem> {
        self.write(&ClientMessage::Request {
            id: REQUEST_ID,
            op: op.into(),
            on_behalf_of: Some(self.user.clone()),
        })
        .await
    }

    /// Sends a piece of an upload.
    pub async fn send_data(&mut self, data: Vec<u8>, end: bool) -> Result<(), Problem> {
        self.write(&ClientMessage::Data {
            id: REQUEST_ID,
            data,
            end,
        })
        .await
    }

    async fn write(&mut self, msg: &ClientMessage) -> Result<(), Problem> {
        let body = encode(msg).map_err(|e| lost(&e))?;
        self.writer
            .send(bytes::Bytes::from(body))
            .await
            .map_err(|e| lost(&e))
    }

    /// The next message for the request. The connection ending before the
    /// request's answer is a 503: the daemon went away (or restarted).
    pub async fn next(&mut self) -> Result<ServerMessage, Problem> {
        match self.reader.next().await {
            Some(Ok(frame)) => decode_message::<ServerMessage>(&frame).map_err(|e| {
                tracing::warn!(error = ?e, "berkutd sent a message the gateway cannot read");
                Problem::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    "unknown",
                    "berkutd sent a message the gateway cannot read",
                )
            }),
            Some(Err(e)) => Err(lost(&e)),
            None => Err(lost(&"end of stream")),
        }
    }
}

fn lost(e: &dyn std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "the connection to berkutd broke");
    Problem::unavailable("the connection to berkutd was lost; try again")
}
