//! Framing: each message is a 4-byte big-endian length followed by that many
//! bytes of MessagePack. The length is checked against `MAX_FRAME_LEN` before
//! a single byte of the body is buffered, so a hostile peer cannot make either
//! side allocate more than that.

use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The largest frame either side accepts or sends: room for a 1 MiB data
/// chunk with plenty to spare, small enough that a connection's buffers stay
/// modest.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

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
        let value = decode_value(&body)?;
        rmpv::ext::from_value(value)
            .map(Some)
            .map_err(|e| FrameError::Unexpected(e.to_string()))
    }

    pub async fn write_message<T: Serialize>(&mut self, msg: &T) -> Result<(), FrameError> {
        let body = encode(msg)?;
        self.write_frame(body).await
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

/// Parses a frame body as one complete MessagePack value. Trailing bytes
/// after the value make the frame malformed: a frame is exactly one message.
pub fn decode_value(body: &[u8]) -> Result<rmpv::Value, FrameError> {
    let mut cursor = std::io::Cursor::new(body);
    let value = rmpv::decode::read_value_ref(&mut cursor)
        .map_err(|e| FrameError::Malformed(e.to_string()))?
        .to_owned();
    if cursor.position() as usize != body.len() {
        return Err(FrameError::Malformed(
            "trailing bytes after the message".into(),
        ));
    }
    Ok(value)
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
