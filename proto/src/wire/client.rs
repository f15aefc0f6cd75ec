//! An async client for the daemon's socket, used by berkutctl and the test
//! suite, and usable by any Rust program that wants to drive berkutd. It does
//! the handshake and matches replies to requests; one request is in flight at
//! a time per `Client` (open several clients for concurrency).

use std::path::Path;

use tokio::net::UnixStream;

use super::access::OnBehalfOf;
use super::error::ErrorBody;
use super::frame::{Connection, FrameError};
use super::messages::{ClientMessage, Operation, Reply, ServerMessage, PROTOCOL_VERSION};
use super::records::Progress;
use crate::ids::BackupId;
use crate::wire::ops;

/// The largest piece of an upload: well inside a frame.
pub const UPLOAD_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the daemon's socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The daemon answered with an error.
    #[error("{0}")]
    Server(ErrorBody),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the daemon closed the connection")]
    Closed,
    /// A local file could not be read or written.
    #[error("{0}")]
    Local(std::io::Error),
}

pub struct Client {
    conn: Connection<UnixStream>,
    next_id: u64,
    server: String,
    on_behalf_of: Option<OnBehalfOf>,
}

impl Client {
    /// Connects and performs the version handshake.
    pub async fn connect(path: impl AsRef<Path>, client_name: &str) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(ClientError::Connect)?;
        let mut conn = Connection::new(stream);
        conn.write_message(&ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: client_name.to_owned(),
        })
        .await?;
        match conn.read_message::<ServerMessage>().await? {
            Some(ServerMessage::Welcome { server, .. }) => Ok(Client {
                conn,
                next_id: 1,
                server,
                on_behalf_of: None,
            }),
            Some(ServerMessage::Error { error, .. }) => Err(ClientError::Server(error)),
            Some(other) => Err(ClientError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
            None => Err(ClientError::Closed),
        }
    }

    /// Makes every later request on behalf of `user` (the main
    /// application's way to act for its signed-in users; the daemon honours
    /// it only from a peer with an `app` grant).
    pub fn set_on_behalf_of(&mut self, user: Option<OnBehalfOf>) {
        self.on_behalf_of = user;
    }

    /// The daemon's version as it announced itself.
    pub fn server_version(&self) -> &str {
        &self.server
    }

    /// Sends a request and waits for its reply, discarding progress.
    pub async fn call(&mut self, op: Operation) -> Result<Reply, ClientError> {
        self.call_with_progress(op, |_| {}).await
    }

    /// Sends a request, hands each progress message to `on_progress`, and
    /// returns the final reply (or the daemon's error).
    pub async fn call_with_progress(
        &mut self,
        op: Operation,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Reply, ClientError> {
        self.call_streaming(op, |msg| {
            if let ServerMessage::Progress { progress, .. } = msg {
                on_progress(progress)
            }
        })
        .await
    }

    /// Sends a request, hands every message before the final one (progress
    /// of a backup, the record of a restore, maintenance events) to
    /// `on_update`, and returns the final reply.
    pub async fn call_streaming(
        &mut self,
        op: Operation,
        on_update: impl FnMut(&ServerMessage),
    ) -> Result<Reply, ClientError> {
        self.call_receiving(op, None::<fn(u64, &[u8])>, on_update)
            .await
    }

    /// `call_streaming`, with the request's `data` pieces, when `on_data`
    /// is given, handed to it as (offset, bytes) straight from the frame
    /// they came in (`data::download_piece`): a download's megabytes are
    /// not copied into messages first.
    async fn call_receiving(
        &mut self,
        op: Operation,
        mut on_data: Option<impl FnMut(u64, &[u8])>,
        mut on_update: impl FnMut(&ServerMessage),
    ) -> Result<Reply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.conn
            .write_message(&ClientMessage::Request {
                id,
                op,
                on_behalf_of: self.on_behalf_of.clone(),
            })
            .await?;
        loop {
            let Some(body) = self.conn.read_frame().await? else {
                return Err(ClientError::Closed);
            };
            if let Some(on_data) = on_data.as_mut() {
                if let Some(piece) = super::data::download_piece(&body).filter(|p| p.id == id) {
                    on_data(piece.offset.unwrap_or_default(), piece.data);
                    continue;
                }
            }
            match super::frame::decode_body::<ServerMessage>(&body)? {
                // A piece the fast path did not take (its bytes sent as a
                // string, say) is still a piece of this download.
                ServerMessage::Data {
                    id: got,
                    offset,
                    data,
                } if got == id && on_data.is_some() => {
                    if let Some(on_data) = on_data.as_mut() {
                        on_data(offset, &data);
                    }
                }
                msg @ (ServerMessage::Progress { .. }
                | ServerMessage::RestoreProgress { .. }
                | ServerMessage::Event { .. }
                | ServerMessage::Data { .. })
                    if msg.request_id() == Some(id) =>
                {
                    on_update(&msg)
                }
                ServerMessage::Reply { id: got, reply } if got == id => return Ok(reply),
                ServerMessage::Error { id: got, error } if got.is_none() || got == Some(id) => {
                    return Err(ClientError::Server(error))
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected message for request {id}: {other:?}"
                    )))
                }
            }
        }
    }

    /// Downloads a stored archive, handing each piece to `sink` in order;
    /// returns the size and sha256 the daemon reports at the end, which
    /// describe the bytes it read from its disk and sent. Every piece is
    /// checked to start where the one before it ended and the total against
    /// that size, so what `sink` was given is exactly what the daemon
    /// hashed: a caller comparing the sha256 with the record needs no hash
    /// of its own. The first error of `sink` is returned once the stream
    /// has ended.
    pub async fn download(
        &mut self,
        id: BackupId,
        mut sink: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> Result<(u64, String), ClientError> {
        let mut failed: Option<ClientError> = None;
        let mut received = 0u64;
        let mut on_data = |offset: u64, data: &[u8]| {
            if failed.is_some() {
                return;
            }
            if offset != received {
                failed = Some(ClientError::Protocol(format!(
                    "a download piece at offset {offset}, where {received} was expected"
                )));
                return;
            }
            received += data.len() as u64;
            if let Err(e) = sink(offset, data) {
                failed = Some(ClientError::Local(e));
            }
        };
        let reply = self
            .call_receiving(
                Operation::BackupDownload(ops::BackupDownload { id, offset: 0 }),
                Some(&mut on_data),
                |_| {},
            )
            .await?;
        if let Some(e) = failed {
            return Err(e);
        }
        match reply {
            Reply::Downloaded { size_bytes, .. } if size_bytes != received => {
                Err(ClientError::Protocol(format!(
                    "the daemon reports {size_bytes} bytes sent; {received} arrived"
                )))
            }
            Reply::Downloaded {
                size_bytes, sha256, ..
            } => Ok((size_bytes, sha256)),
            other => Err(ClientError::Protocol(format!(
                "expected the end of a download, got {other:?}"
            ))),
        }
    }

    /// Uploads an archive of `size` bytes from `source` for import, in
    /// pieces of at most `UPLOAD_CHUNK` bytes; `on_progress` hears the bytes
    /// sent. Returns the daemon's reply (the imported backup's record).
    pub async fn upload<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        size: u64,
        mut source: R,
        mut on_progress: impl FnMut(u64),
    ) -> Result<Reply, ClientError> {
        use tokio::io::AsyncReadExt;
        let id = self.next_id;
        self.next_id += 1;
        self.conn
            .write_message(&ClientMessage::Request {
                on_behalf_of: self.on_behalf_of.clone(),
                id,
                op: Operation::BackupImport(ops::BackupImport { size }),
            })
            .await?;
        match self.conn.read_message::<ServerMessage>().await? {
            Some(ServerMessage::Continue { id: got }) if got == id => {}
            Some(ServerMessage::Error { id: got, error }) if got.is_none() || got == Some(id) => {
                return Err(ClientError::Server(error))
            }
            Some(other) => {
                return Err(ClientError::Protocol(format!(
                    "expected continue, got {}",
                    brief(&other)
                )))
            }
            None => return Err(ClientError::Closed),
        }
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        let mut sent = 0u64;
        loop {
            let n = source.read(&mut buf).await.map_err(ClientError::Local)?;
            if n == 0 {
                break;
            }
            let empty = ClientMessage::Data {
                id,
                data: Vec::new(),
                end: false,
            };
            self.conn.write_data(&empty, &buf[..n]).await?;
            sent += n as u64;
            on_progress(sent);
        }
        self.conn
            .write_message(&ClientMessage::Data {
                id,
                data: Vec::new(),
                end: true,
            })
            .await?;
        match self.conn.read_message::<ServerMessage>().await? {
            Some(ServerMessage::Reply { id: got, reply }) if got == id => Ok(reply),
            Some(ServerMessage::Error { id: got, error }) if got.is_none() || got == Some(id) => {
                Err(ClientError::Server(error))
            }
            Some(other) => Err(ClientError::Protocol(format!(
                "unexpected message during an upload: {}",
                brief(&other)
            ))),
            None => Err(ClientError::Closed),
        }
    }

    /// Gives up the typed client for the raw connection, for tests and tools
    /// that need to send hand-made frames after the handshake.
    pub fn into_connection(self) -> Connection<UnixStream> {
        self.conn
    }
}

/// A message for an error text: its debug form, cut short, since a data
/// message can hold a megabyte.
fn brief(msg: &ServerMessage) -> String {
    let mut text = format!("{msg:?}");
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
