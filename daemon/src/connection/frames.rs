//! The way in: length-delimited frames off the socket, decoded into the
//! client's messages. A frame too large or not MessagePack breaks the
//! framing (the connection closes); a MessagePack value that is not a valid
//! message is answered `invalid` and the connection goes on.

use berkut_proto::wire::frame::{codec, decode_request, DecodeError};
use berkut_proto::wire::{ClientMessage, ErrorBody, ErrorCode, MAX_FRAME_LEN};
use futures::StreamExt;
use tokio::net::unix::OwnedReadHalf;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

/// The reading half of a connection, in frames.
pub(super) type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;

/// Frames of at most the protocol's `MAX_FRAME_LEN` from `read`.
pub(super) fn reader(read: OwnedReadHalf) -> Reader {
    FramedRead::new(read, codec(MAX_FRAME_LEN))
}

/// What the next frame brought.
pub(super) enum Incoming {
    Message(ClientMessage),
    /// A well-formed frame that is not a valid message: answered, and the
    /// connection goes on.
    Invalid {
        id: Option<u64>,
        error: ErrorBody,
    },
    /// A frame that breaks the framing or is not MessagePack: the
    /// connection cannot be trusted to stay in step, so it is closed.
    Fatal(ErrorBody),
    Closed,
}

/// Reads and decodes the next frame. Cancel-safe: a frame half read stays
/// in the reader's buffer.
pub(super) async fn next_message(reader: &mut Reader) -> Incoming {
    let body = match reader.next().await {
        None => return Incoming::Closed,
        Some(Ok(body)) => body,
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Incoming::Fatal(ErrorBody::new(
                ErrorCode::TooLarge,
                format!("frame exceeds the limit of {MAX_FRAME_LEN} bytes; closing the connection"),
            ))
        }
        Some(Err(_)) => return Incoming::Closed,
    };
    match decode_request(&body) {
        Ok(msg) => Incoming::Message(msg),
        Err(DecodeError::Malformed(_)) => Incoming::Fatal(ErrorBody::new(
            ErrorCode::Invalid,
            "frame is not a MessagePack value; closing the connection",
        )),
        Err(DecodeError::Invalid { id, message }) => {
            let mut message = format!("invalid request: {message}");
            truncate(&mut message, 300);
            Incoming::Invalid {
                id,
                error: ErrorBody::new(ErrorCode::Invalid, message),
            }
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}
