//! The way out of a connection: every message for the client is encoded by
//! the task that sends it and queued for the one writer task, which puts it
//! on the socket. The queue is bounded by bytes, not by messages, so a
//! client that stops reading holds at most `OUTBOX_BYTES` of encoded frames
//! (plus the one frame each waiting sender has encoded) whatever it asked
//! for; a download then waits for the socket instead of reading ahead
//! (back-pressure from the socket through the writer and this queue to the
//! file). Only one sender at a time holds an encoded frame while it waits
//! for room, so a client pipelining many large requests does not multiply
//! the waiting copies either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use berkut_proto::wire::{ErrorCode, ServerMessage, MAX_FRAME_LEN};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::Piece;
use crate::error::OpError;

/// Encoded bytes waiting for the writer, per connection: room for one
/// small download piece (32 KiB and its head) being written and the small
/// messages besides, while the next piece waits for room. Every client
/// that stops reading may hold this much, so it is kept just under two
/// small pieces (at 96 KiB a stalled download held three). A frame larger
/// than this (a large piece, `pieces::DOWNLOADS`) takes the whole
/// budget: it waits until everything before it is written.
pub const OUTBOX_BYTES: usize = 64 * 1024;

/// The outbox is closed: the writer has stopped (the client went away).
#[derive(Debug)]
pub struct Closed;

/// The sending side of a connection's outbox; clones share the budget.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::UnboundedSender<Frame>,
    budget: Arc<Semaphore>,
    /// One sender at a time encodes and waits for room (fair, first come
    /// first served, so the messages of one request keep their order).
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled once the client is known to be gone, for handlers that
    /// would otherwise wait for something to send (a watch).
    gone: CancellationToken,
}

/// One encoded frame, length prefix included, with the share of the budget
/// it holds until it is on the socket.
struct Frame {
    bytes: Vec<u8>,
    /// A download piece's bytes, written right after `bytes` (its frame's
    /// head): a piece goes to the socket from the buffer it was read into.
    /// Shared, because the download hashes the same buffer meanwhile.
    body: Option<Arc<Piece>>,
    _room: OwnedSemaphorePermit,
}

/// When the connection last did something: a message read or a frame
/// written. The idle timeout counts from here.
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    pub fn last(&self) -> Instant {
        self.start + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl Outbox {
    /// Creates an outbox and the writer that drains it onto `write`; the
    /// writer ends when every `Outbox` is dropped or the socket fails.
    pub fn new(
        write: OwnedWriteHalf,
        activity: Arc<Activity>,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(OUTBOX_BYTES));
        let gone = CancellationToken::new();
        let writer = tokio::spawn(write_frames(
            write,
            rx,
            Arc::clone(&budget),
            activity,
            gone.clone(),
        ));
        let outbox = Outbox {
            queue,
            budget,
            turn: Arc::new(tokio::sync::Mutex::new(())),
            gone,
        };
        (outbox, writer)
    }

    /// Queues a message, waiting while the client has more than
    /// `OUTBOX_BYTES` unread; `Err` once the client has gone away.
    pub async fn send(&self, msg: ServerMessage) -> Result<(), Closed> {
        let _turn = self.turn.lock().await;
        let bytes = frame(&msg);
        // The message's own copy of its data goes now, not after the wait.
        drop(msg);
        self.enqueue(bytes, None).await
    }

    /// Queues a download piece as a `data` message for request `id`,
    /// without copying it: the frame's head is encoded here and the piece
    /// follows it onto the socket. Waits for room as `send` does.
    pub async fn send_piece(&self, id: u64, offset: u64, piece: Arc<Piece>) -> Result<(), Closed> {
        let Some(bytes) = data_head(id, offset, piece.len()) else {
            // Not reached with this encoding (a test says so); should the
            // encoding change, the piece still goes, copied.
            let data = piece.filled().to_vec();
            drop(piece);
            return self.send(ServerMessage::Data { id, offset, data }).await;
        };
        let _turn = self.turn.lock().await;
        self.enqueue(bytes, Some(piece)).await
    }

    /// Waits for room for a frame (`bytes`, then `body`) and queues it; the
    /// caller holds the turn.
    async fn enqueue(&self, bytes: Vec<u8>, body: Option<Arc<Piece>>) -> Result<(), Closed> {
        let len = bytes.len() + body.as_ref().map_or(0, |piece| piece.len());
        let share = len.clamp(1, OUTBOX_BYTES) as u32;
        let room = Arc::clone(&self.budget)
            .acquire_many_owned(share)
            .await
            .map_err(|_| Closed)?;
        self.queue
            .send(Frame {
                bytes,
                body,
                _room: room,
            })
            .map_err(|_| Closed)
    }

    /// Says that the client has hung up.
    pub fn client_gone(&self) {
        self.gone.cancel();
    }

    /// Resolves once the client has hung up.
    pub async fn gone(&self) {
        self.gone.cancelled().await
    }
}

async fn write_frames(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    budget: Arc<Semaphore>,
    activity: Arc<Activity>,
    gone: CancellationToken,
) {
    while let Some(frame) = rx.recv().await {
        let body = frame.body.as_ref().map_or(&[][..], |piece| piece.filled());
        if write.write_all(&frame.bytes).await.is_err() || write.write_all(body).await.is_err() {
            gone.cancel();
            break;
        }
        activity.touch();
        // Dropping the frame gives its room back.
    }
    // Senders waiting for room learn that the client is gone.
    budget.close();
}

/// Encodes a message as one frame: the 4-byte big-endian length the
/// protocol's codec (`berkut_proto::wire::frame::codec`) expects, then the
/// MessagePack body (`encode`'s form, named fields). A reply too large for
/// one frame becomes an `internal` error for its request, with a
/// correlation id for the log line that says what happened, rather than a
/// silently dropped connection.
pub fn frame(msg: &ServerMessage) -> Vec<u8> {
    match encode_frame(msg) {
        Ok(bytes) if bytes.len() - 4 <= MAX_FRAME_LEN => bytes,
        outcome => {
            let detail = match outcome {
                Ok(bytes) => format!(
                    "a reply of {} bytes does not fit in one frame (at most {MAX_FRAME_LEN})",
                    bytes.len() - 4
                ),
                Err(e) => format!("a reply could not be encoded: {e}"),
            };
            let error = OpError::new(
                ErrorCode::Internal,
                "the reply could not be sent: it is too large or malformed",
            )
            .with_detail(detail)
            .into_body("reply");
            let error = ServerMessage::Error {
                id: msg.request_id(),
                error,
            };
            encode_frame(&error).expect("an error message always encodes")
        }
    }
}

/// The head of a `data` frame whose data is `len` bytes: the length
/// prefix and the message up to its data, which is the last field
/// (`data::frame_around`). `None` if the encoding is not laid out so.
fn data_head(id: u64, offset: u64, len: usize) -> Option<Vec<u8>> {
    let empty = ServerMessage::Data {
        id,
        offset,
        data: Vec::new(),
    };
    let around = berkut_proto::wire::data::frame_around(&empty, len)?;
    around.tail.is_empty().then_some(around.head)
}

fn encode_frame(msg: &ServerMessage) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    // A download piece's size is known: reserving it exactly keeps the
    // buffer from doubling past it.
    let hint = match msg {
        ServerMessage::Data { data, .. } => data.len() + 64,
        _ => 256,
    };
    let mut bytes = Vec::with_capacity(4 + hint);
    bytes.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(&mut bytes, msg)?;
    let len = u32::try_from(bytes.len() - 4).unwrap_or(u32::MAX);
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use berkut_proto::wire::frame::{codec, decode_message};
    use berkut_proto::wire::{BackupRecord, Reply};
    use tokio_util::codec::Decoder;

    use super::*;

    fn decode(bytes: &[u8]) -> ServerMessage {
        let mut buf = bytes::BytesMut::from(bytes);
        let body = codec(MAX_FRAME_LEN)
            .decode(&mut buf)
            .unwrap()
            .expect("one whole frame");
        assert!(buf.is_empty(), "exactly one frame");
        decode_message(&body).unwrap()
    }

    #[test]
    fn a_frame_is_what_the_protocols_codec_reads() {
        for msg in [
            ServerMessage::Reply {
                id: 1,
                reply: Reply::Deleted {
                    id: "20261121T000000Z-00000000".parse().unwrap(),
                },
            },
            ServerMessage::Data {
                id: 2,
                offset: 7,
                data: vec![9; 32 * 1024],
            },
        ] {
            let bytes = frame(&msg);
            assert_eq!(decode(&bytes), msg);
            assert_eq!(
                &bytes[4..],
                &berkut_proto::wire::frame::encode(&msg).unwrap()[..]
            );
        }
    }

    #[test]
    fn a_piece_frame_is_the_data_message_encoded_whole() {
        for len in [0, 1, 255, 256, 65_535, 65_536, 256 * 1024] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let msg = ServerMessage::Data {
                id: u64::MAX - 3,
                offset: 1 << 40,
                data: data.clone(),
            };
            let mut bytes = data_head(u64::MAX - 3, 1 << 40, len).expect("laid out as expected");
            bytes.extend_from_slice(&data);
            assert_eq!(bytes, frame(&msg), "{len} bytes");
            assert_eq!(decode(&bytes), msg);
        }
    }

    #[test]
    fn a_reply_too_large_for_a_frame_becomes_an_internal_error_with_a_correlation_id() {
        let record: BackupRecord = serde_json::from_value(serde_json::json!({
            "id": "20261121T000000Z-00000000", "label": "x".repeat(200), "scope": "full",
            "include_files": false, "origin": "manual", "status": "succeeded",
            "created_at": "2026-11-21T00:00:00Z", "size_bytes": 1, "sha256": "00", "key_id": "00",
            "database": "app"
        }))
        .unwrap();
        let backups = vec![record; 20_000];
        let msg = ServerMessage::Reply {
            id: 9,
            reply: Reply::Backups {
                backups,
                total: 20_000,
            },
        };
        let bytes = frame(&msg);
        assert!(bytes.len() - 4 <= MAX_FRAME_LEN);
        match decode(&bytes) {
            ServerMessage::Error { id, error } => {
                assert_eq!(id, Some(9));
                assert_eq!(error.code, ErrorCode::Internal);
                assert!(
                    error.correlation_id.is_some(),
                    "the log line is findable: {error:?}"
                );
                // Said of a reply of any operation, not of a list alone.
                assert!(!error.message.contains("page"), "{}", error.message);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_holds_a_bounded_outbox() {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let sndbuf =
            nix::sys::socket::getsockopt(&ours, nix::sys::socket::sockopt::SndBuf).unwrap();
        let (_read, write) = ours.into_split();
        let (outbox, writer) = Outbox::new(write, Activity::new());
        // Send pieces until one waits: the socket buffer and the outbox are
        // full. What was accepted is bounded by both, not by the count of
        // pieces sent.
        let piece = 32 * 1024;
        let mut accepted = 0usize;
        loop {
            let send = outbox.send(ServerMessage::Data {
                id: 1,
                offset: 0,
                data: vec![0; piece],
            });
            match tokio::time::timeout(std::time::Duration::from_millis(500), send).await {
                Ok(Ok(())) => accepted += piece,
                Ok(Err(Closed)) => panic!("the client is still there"),
                Err(_) => break,
            }
            assert!(accepted < 64 << 20, "the outbox does not stop taking");
        }
        // What the kernel buffers (the send buffer, which also counts its
        // own overhead) plus the outbox's budget and the one frame waiting
        // for room.
        assert!(
            accepted <= 2 * sndbuf + OUTBOX_BYTES + piece,
            "accepted {accepted} bytes"
        );
        // The client going away releases the waiting sender.
        drop(theirs);
        let last = outbox.send(ServerMessage::Data {
            id: 1,
            offset: 0,
            data: vec![0; piece],
        });
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            // The writer notices on its next write; it may take the one
            // already queued first.
            let _ = last.await;
            outbox
                .send(ServerMessage::Continue { id: 1 })
                .await
                .is_err()
        })
        .await;
        assert_eq!(outcome.ok(), Some(true));
        drop(outbox);
        writer.await.unwrap();
    }
}
