//! Framing: each message is a 4-byte big-endian length followed by that many
//! bytes of MessagePack. The length is checked against `MAX_FRAME_LEN` before
//! a single byte of the body is buffered, so a hostile peer cannot make either
//! side allocate more than that.

use futures::{SinkExt, StreamExt};
use serde::de::{Deserialize, DeserializeOwned};

use super::explain::explain;
use super::input::check_message;
use super::messages::ClientMessage;
use super::scan::{scan, Limits, ScanError, REPLY_LIMITS, REQUEST_LIMITS};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame either side accepts or sends: room for a 1 MiB data
/// chunk with plenty to spare, small enough that a connection's buffers stay
/// modest.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// The largest first frame (the `hello`) the daemon accepts: a `hello` is a
/// few dozen bytes, and a peer that has not yet said who it is, perhaps one
/// no grant names, gets no more of the daemon's memory than this.
pub const MAX_HELLO_FRAME_LEN: usize = 64 * 1024;

/// The largest frame the daemon accepts from a greeted client outside an
/// upload: a request is a few dozen values whose strings are at most
/// `MAX_REQUEST_STRING_BYTES`. Only an upload's `data` pieces are larger,
/// and the daemon takes frames up to `MAX_FRAME_LEN` only while the
/// connection has an upload open, so a client that begins frames and never
/// finishes them holds little of the daemon's memory per connection.
pub const MAX_REQUEST_FRAME_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame is not valid MessagePack: {0}")]
    Malformed(String),
    #[error("message does not fit the protocol: {0}")]
    Unexpected(String),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the codec both sides use.
pub fn codec(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// Encodes a message as MessagePack with named fields, the form every
/// message takes on the wire.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    rmp_serde::to_vec_named(msg).map_err(|e| FrameError::Unexpected(e.to_string()))
}

/// A framed, message-oriented connection over any byte stream.
pub struct Connection<S> {
    framed: Framed<S, LengthDelimitedCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Self::with_limit(stream, MAX_FRAME_LEN)
    }

    pub fn with_limit(stream: S, max_frame_len: usize) -> Self {
        Connection {
            framed: Framed::new(stream, codec(max_frame_len)),
        }
    }

    /// Reads one frame's body; `None` when the peer closed cleanly.
    pub async fn read_frame(&mut self) -> Result<Option<bytes::BytesMut>, FrameError> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Ok(body)) => Ok(Some(body)),
            Some(Err(e)) => Err(classify(e, self.framed.codec().max_frame_length())),
        }
    }

    /// Reads and decodes one message; `None` when the peer closed cleanly.
    pub async fn read_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(body) = self.read_frame().await? else {
            return Ok(None);
        };
        decode_body(&body).map(Some)
    }

    pub async fn write_message<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        let body = encode(msg)?;
        self.write_frame(body).await
    }

    /// Writes a `data` message whose data is `data`, from where it lies:
    /// `empty` is the message with its data left empty, and the frame is
    /// written around the piece (`data::frame_around`) instead of the piece
    /// being copied into an encoded message and again into the codec's
    /// buffer. Not cancel-safe: dropped halfway, it leaves a torn frame on
    /// the socket, after which the connection is of no further use (as
    /// after any write error).
    pub async fn write_data<M: Serialize>(
        &mut self,
        empty: &M,
        data: &[u8],
    ) -> Result<(), FrameError> {
        use tokio::io::AsyncWriteExt;
        let max = self.framed.codec().max_frame_length();
        let around = match super::data::frame_around(empty, data.len()) {
            Some(around) if around.head.len() - 4 + data.len() + around.tail.len() <= max => around,
            Some(around) => {
                let len = around.head.len() - 4 + data.len() + around.tail.len();
                return Err(FrameError::TooLarge { len, max });
            }
            None if data.len() >= max => {
                let len = data.len();
                return Err(FrameError::TooLarge { len, max });
            }
            None => {
                return Err(FrameError::Unexpected(
                    "not a data message with an empty bin".into(),
                ))
            }
        };
        // Whatever the codec holds goes first, so frames stay in order.
        SinkExt::<bytes::Bytes>::flush(&mut self.framed).await?;
        let stream = self.framed.get_mut();
        stream.write_all(&around.head).await?;
        stream.write_all(data).await?;
        stream.write_all(&around.tail).await?;
        Ok(())
    }

    pub async fn write_frame(&mut self, body: Vec<u8>) -> Result<(), FrameError> {
        let max = self.framed.codec().max_frame_length();
        if body.len() > max {
            return Err(FrameError::TooLarge {
                len: body.len(),
                max,
            });
        }
        self.framed.send(bytes::Bytes::from(body)).await?;
        Ok(())
    }

    pub fn into_inner(self) -> S {
        self.framed.into_inner()
    }
}

/// Why a frame body is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not one complete MessagePack value: the peer is out of step or
    /// hostile, and the connection should be closed.
    Malformed(String),
    /// Valid MessagePack that is not a valid message (unknown type, a field
    /// of the wrong type, a string too long). `id` is the request id, when
    /// one could be read, so the error can be matched to its request.
    /// `message` is in the protocol's words (the field, what was expected,
    /// what was found), never serde's, and repeats at most a short quote of
    /// what the peer sent.
    Invalid { id: Option<u64>, message: String },
}

/// Decodes a frame body read by a [`Connection`], in its errors.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    decode_message(body).map_err(|e| match e {
        DecodeError::Malformed(m) => FrameError::Malformed(m),
        DecodeError::Invalid { message, .. } => FrameError::Unexpected(message),
    })
}

/// Decodes a frame body from the daemon (generous limits: replies can list
/// many backups). See `decode_message_with`.
pub fn decode_message<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    decode_message_with(body, REPLY_LIMITS)
}

/// Decodes a frame body into a message after `scan` has checked, without
/// allocating, that it is one well-formed value within `limits`. The limits
/// bound what serde may buffer: its internally tagged enums copy a message
/// into a value tree before picking the variant.
pub fn decode_message_with<T: DeserializeOwned>(
    body: &[u8],
    limits: Limits,
) -> Result<T, DecodeError> {
    match scan(body, limits) {
        Ok(()) => {}
        Err(ScanError::Broken(why)) => return Err(DecodeError::Malformed(why)),
        Err(ScanError::LongString { path, len, max }) => {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            return Err(DecodeError::Invalid {
                id: request_id(body),
                message: format!(
                    "{at}a string of {len} bytes; no string in a message may be longer than {max} bytes"
                ),
            });
        }
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_DEPTH);
    // serde's message is only read here, to be put in the protocol's words;
    // it never leaves this function.
    T::deserialize(&mut de).map_err(|e| DecodeError::Invalid {
        id: request_id(body),
        message: explain(&e.to_string(), body),
    })
}

/// Decodes a message from a client, as the daemon does: within
/// `REQUEST_LIMITS`, and with every text field checked against its limit
/// (`input`) before anything acts on it.
pub fn decode_request(body: &[u8]) -> Result<ClientMessage, DecodeError> {
    let msg: ClientMessage = decode_message_with(body, REQUEST_LIMITS)?;
    check_message(&msg).map_err(|message| DecodeError::Invalid {
        id: request_id(body),
        message,
    })?;
    Ok(msg)
}

/// How deeply a message may nest; real messages need fewer than ten levels.
pub const MAX_DEPTH: usize = 32;

/// The `id` field of a map, if it has one that is an unsigned integer.
fn request_id(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<u64>,
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_DEPTH);
    Probe::deserialize(&mut de).ok().and_then(|p| p.id)
}

fn classify(e: std::io::Error, max: usize) -> FrameError {
    // The codec reports an over-long length prefix as InvalidData before it
    // reserves any buffer for the body.
    if e.kind() == std::io::ErrorKind::InvalidData {
        FrameError::TooLarge { len: 0, max }
    } else {
        FrameError::Io(e)
    }
}
