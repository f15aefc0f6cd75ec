//! The way in: length-delimited frames off the socket, decoded into the
//! client's messages; an upload's pieces stay in the buffers they were
//! read into (`Incoming::Data`). A frame too large or not MessagePack
//! breaks the framing (the connection closes); a MessagePack value that is
//! not a valid message is answered `invalid` and the connection goes on.

use std::sync::Arc;

use berkut_proto::wire::data::upload_piece;
use berkut_proto::wire::frame::{decode_request, DecodeError};
use berkut_proto::wire::{
    ClientMessage, ErrorBody, ErrorCode, MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN, MAX_REQUEST_FRAME_LEN,
};
use tokio::io::AsyncReadExt;
use tokio::net::unix::OwnedReadHalf;

use super::{Piece, Pieces};

/// The reading half of a connection, in frames. Each frame's body is read
/// into a buffer of its own size, or, for an upload's large pieces, into a
/// reused one from the daemon's pool (`Pieces`), which the piece then
/// travels in to the import's file, uncopied. Reading stops at the end of
/// each frame, so nothing of the next one is taken before it is wanted.
///
/// What a frame may hold depends on where the connection is (`limit`): a
/// frame begun and never finished holds its buffer for as long as the
/// connection lives (a running request keeps it from idling), so only a
/// connection with an upload open takes frames over a request's size.
pub(super) struct Reader {
    read: OwnedReadHalf,
    pool: Arc<Pieces>,
    greeted: bool,
    /// How many uploads are open on the connection (`Uploads`): while any
    /// is, its pieces may come.
    uploads_open: Arc<std::sync::atomic::AtomicUsize>,
    /// The length prefix of the frame being read, and how much of it is in.
    head: [u8; 4],
    head_in: usize,
    /// The body being read (its length is the buffer's content size once
    /// complete), and how much of it is in.
    body: Option<(Piece, usize, usize)>,
}

/// Frames from `read`, within the limit `Reader::limit` sets (a hello's,
/// then a request's, an upload's pieces' while one is open); large upload
/// pieces are read into buffers from `pool` (the daemon's `uploads`).
pub(super) fn reader(read: OwnedReadHalf, pool: Arc<Pieces>) -> Reader {
    Reader {
        read,
        pool,
        greeted: false,
        uploads_open: Arc::default(),
        head: [0; 4],
        head_in: 0,
        body: None,
    }
}

/// Why no frame came.
enum NoFrame {
    /// Longer than the limit in force, which it carries.
    TooLarge(Limit),
    Closed,
}

/// A limit a frame broke, as the refusal names it.
enum Limit {
    Hello(usize),
    Greeted(usize),
}

impl Reader {
    /// The peer has said `hello` and been welcomed: requests from now on.
    pub(super) fn greeted(&mut self) {
        self.greeted = true;
    }

    /// Follows the connection's open uploads (`Uploads::open_count`),
    /// read afresh at each frame's length: an import may open between
    /// two reads.
    pub(super) fn follow(&mut self, uploads_open: Arc<std::sync::atomic::AtomicUsize>) {
        self.uploads_open = uploads_open;
    }

    /// As if an upload were open, or none.
    #[cfg(test)]
    pub(super) fn uploading(&mut self, open: bool) {
        self.uploads_open
            .store(usize::from(open), std::sync::atomic::Ordering::SeqCst);
    }

    /// The largest frame taken now: a `hello` until the handshake is done,
    /// then a request, or an upload's piece while one is open.
    fn limit(&self) -> usize {
        let uploading = self.uploads_open.load(std::sync::atomic::Ordering::SeqCst) > 0;
        match (self.greeted, uploading) {
            (false, _) => MAX_HELLO_FRAME_LEN,
            (true, false) => MAX_REQUEST_FRAME_LEN,
            (true, true) => MAX_FRAME_LEN,
        }
    }

    /// The socket, to ask whether the client hung up.
    pub(super) fn get_ref(&self) -> &OwnedReadHalf {
        &self.read
    }

    /// The next frame's body. Cancel-safe: what has been read of a frame
    /// stays here, and each wait is a single `read`, which takes nothing
    /// from the socket unless it completes.
    async fn next_frame(&mut self) -> Result<Piece, NoFrame> {
        while self.body.is_none() {
            let n = self
                .read
                .read(&mut self.head[self.head_in..])
                .await
                .map_err(|_| NoFrame::Closed)?;
            if n == 0 {
                return Err(NoFrame::Closed);
            }
            self.head_in += n;
            if self.head_in == self.head.len() {
                self.head_in = 0;
                let len = u32::from_be_bytes(self.head) as usize;
                let limit = self.limit();
                if len > limit {
                    return Err(NoFrame::TooLarge(if self.greeted {
                        Limit::Greeted(limit)
                    } else {
                        Limit::Hello(limit)
                    }));
                }
                self.body = Some((self.pool.take_for(len), 0, len));
            }
        }
        loop {
            let (piece, got, len) = self.body.as_mut().ok_or(NoFrame::Closed)?;
            if *got == *len {
                break;
            }
            let room = &mut piece.room()[*got..*len];
            let n = self.read.read(room).await.map_err(|_| NoFrame::Closed)?;
            if n == 0 {
                return Err(NoFrame::Closed);
            }
            *got += n;
        }
        let (mut piece, _, len) = self.body.take().ok_or(NoFrame::Closed)?;
        piece.set_len(len);
        Ok(piece)
    }
}

/// What the next frame brought.
pub(super) enum Incoming {
    Message(ClientMessage),
    /// A piece of an upload: its data, in the buffer the frame was read
    /// into.
    Data {
        id: u64,
        data: Piece,
        end: bool,
    },
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
/// in the reader.
pub(super) async fn next_message(reader: &mut Reader) -> Incoming {
    let mut body = match reader.next_frame().await {
        Ok(body) => body,
        Err(NoFrame::Closed) => return Incoming::Closed,
        Err(NoFrame::TooLarge(limit)) => {
            let message = match limit {
                Limit::Hello(limit) => {
                    format!("the first frame (hello) exceeds the limit of {limit} bytes")
                }
                Limit::Greeted(limit) if limit < MAX_FRAME_LEN => format!(
                    "frame exceeds the limit of {limit} bytes (only an open upload's data \
                     pieces may be larger)"
                ),
                Limit::Greeted(limit) => format!("frame exceeds the limit of {limit} bytes"),
            };
            return Incoming::Fatal(ErrorBody::new(
                ErrorCode::TooLarge,
                format!("{message}; closing the connection"),
            ));
        }
    };
    // An upload's piece keeps the buffer it came in; anything else is
    // decoded the ordinary way.
    if let Some(view) = upload_piece(body.filled()) {
        let (id, end, range) = (view.id, view.end, view.range_in(body.filled()));
        body.keep(range);
        return Incoming::Data {
            id,
            data: body,
            end,
        };
    }
    match decode_request(body.filled()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::UPLOADS;
    use berkut_proto::wire::frame::encode;
    use futures::FutureExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::unix::OwnedWriteHalf;
    use tokio::net::UnixStream;

    fn framed(msg: &ClientMessage) -> Vec<u8> {
        let body = encode(msg).unwrap();
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Bytes of the current frame the reader has taken so far.
    fn taken(reader: &Reader) -> usize {
        match &reader.body {
            Some((_, got, _)) => 4 + got,
            None => reader.head_in,
        }
    }

    /// Polls `next_message` once at a time, dropping it each time (as a
    /// `select!` drops it when something else wins), until the reader has
    /// taken `bytes` of the current frame; no poll may complete a message.
    async fn take_partly(reader: &mut Reader, bytes: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while taken(reader) < bytes {
            assert!(next_message(reader).now_or_never().is_none());
            assert!(
                std::time::Instant::now() < deadline,
                "took {}",
                taken(reader)
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(taken(reader), bytes);
    }

    /// A greeted reader with an upload open, and the client's end.
    fn pair() -> (Reader, OwnedWriteHalf, Arc<Pieces>) {
        let (mut reader, write, pool) = greeted();
        reader.uploading(true);
        (reader, write, pool)
    }

    fn greeted() -> (Reader, OwnedWriteHalf, Arc<Pieces>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (read, _) = ours.into_split();
        let (_, write) = theirs.into_split();
        let pool = Arc::new(Pieces::new(UPLOADS));
        let mut reader = reader(read, Arc::clone(&pool));
        reader.greeted();
        (reader, write, pool)
    }

    #[tokio::test]
    async fn only_a_connection_with_an_upload_open_takes_frames_over_a_request() {
        let piece = framed(&ClientMessage::Data {
            id: 3,
            data: vec![6; MAX_REQUEST_FRAME_LEN],
            end: false,
        });
        let (mut reader, mut write, pool) = greeted();
        // Only the length goes: the refusal comes on it alone.
        write.write_all(&piece[..4]).await.unwrap();
        let Incoming::Fatal(error) = next_message(&mut reader).await else {
            panic!("a frame over a request's size was taken without an upload");
        };
        assert_eq!(error.code, ErrorCode::TooLarge);
        assert!(error.message.contains("65536"), "{}", error.message);
        assert_eq!(pool.in_use(), 0, "nothing was taken for it");

        // With an upload open the same frame is a piece; closed again, the
        // limit is back.
        let (mut reader, mut write, _pool) = greeted();
        reader.uploading(true);
        write.write_all(&piece).await.unwrap();
        assert!(matches!(
            next_message(&mut reader).await,
            Incoming::Data { id: 3, .. }
        ));
        reader.uploading(false);
        write.write_all(&piece).await.unwrap();
        assert!(matches!(
            next_message(&mut reader).await,
            Incoming::Fatal(_)
        ));
    }

    #[tokio::test]
    async fn before_the_handshake_only_a_small_frame_is_taken() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (read, _) = ours.into_split();
        let (_, mut write) = theirs.into_split();
        let pool = Arc::new(Pieces::new(UPLOADS));
        let mut fresh = reader(read, Arc::clone(&pool));
        // The largest first frame taken, begun: read into a buffer of its
        // own, not one of the upload pool's.
        write
            .write_all(&(MAX_HELLO_FRAME_LEN as u32).to_be_bytes())
            .await
            .unwrap();
        write.write_all(&[0x90; 1000]).await.unwrap();
        take_partly(&mut fresh, 4 + 1000).await;
        assert_eq!(
            pool.in_use(),
            0,
            "a peer not yet greeted holds a pooled buffer"
        );
        drop(fresh);
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (read, _) = ours.into_split();
        let (_, mut write) = theirs.into_split();
        let mut fresh = reader(read, Arc::clone(&pool));
        let over = (MAX_HELLO_FRAME_LEN as u32 + 1).to_be_bytes();
        write.write_all(&over).await.unwrap();
        let Incoming::Fatal(error) = next_message(&mut fresh).await else {
            panic!("a large first frame is not refused");
        };
        assert_eq!(error.code, ErrorCode::TooLarge);
        assert!(error.message.contains("65536"), "{}", error.message);
        assert_eq!(pool.in_use(), 0);

        // Once greeted, the same size is an ordinary frame.
        let (mut greeted, mut write, _pool) = pair();
        let msg = ClientMessage::Data {
            id: 2,
            data: vec![5; MAX_HELLO_FRAME_LEN],
            end: false,
        };
        write.write_all(&framed(&msg)).await.unwrap();
        assert!(matches!(
            next_message(&mut greeted).await,
            Incoming::Data { id: 2, .. }
        ));
    }

    #[tokio::test]
    async fn an_upload_piece_stays_in_the_pooled_buffer_its_frame_was_read_into() {
        let (mut reader, mut write, pool) = pair();
        let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let piece = ClientMessage::Data {
            id: 5,
            data: data.clone(),
            end: true,
        };
        let request = ClientMessage::Hello {
            protocol_version: 1,
            client: "t".into(),
        };
        let mut bytes = framed(&piece);
        bytes.extend(framed(&request));
        let writer = tokio::spawn(async move { write.write_all(&bytes).await.map(|_| write) });
        let Incoming::Data { id, data: got, end } = next_message(&mut reader).await else {
            panic!("not a piece");
        };
        assert_eq!((id, end), (5, true));
        assert_eq!(got.filled(), &data[..]);
        assert_eq!(pool.in_use(), 1, "read into a pooled buffer");
        drop(got);
        assert_eq!(pool.in_use(), 0, "and given back");
        assert!(matches!(
            next_message(&mut reader).await,
            Incoming::Message(msg) if msg == request
        ));
        assert_eq!(
            pool.in_use(),
            0,
            "a request is read into a buffer of its own"
        );
        drop(writer.await.unwrap().unwrap());
        assert!(matches!(next_message(&mut reader).await, Incoming::Closed));
    }

    #[tokio::test]
    async fn a_piece_the_fast_path_leaves_is_still_decoded_as_a_piece() {
        // Bytes as an array of numbers: the ordinary decode takes them,
        // the view into the frame cannot; the request loop routes both.
        let (mut reader, mut write, pool) = pair();
        let msg = rmpv::Value::Map(vec![
            ("type".into(), "data".into()),
            ("id".into(), 4.into()),
            (
                "data".into(),
                rmpv::Value::Array(vec![1.into(), 2.into(), 3.into()]),
            ),
            ("end".into(), true.into()),
        ]);
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, &msg).unwrap();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        write.write_all(&bytes).await.unwrap();
        let incoming = next_message(&mut reader).await;
        assert!(
            matches!(
                &incoming,
                Incoming::Message(ClientMessage::Data { id: 4, data, end: true }) if data == &[1, 2, 3]
            ),
            "not a piece"
        );
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn a_frame_that_arrives_in_parts_survives_reads_given_up_halfway() {
        let (mut reader, mut write, _pool) = pair();
        let msg = ClientMessage::Data {
            id: 9,
            data: vec![7; 100_000],
            end: false,
        };
        let bytes = framed(&msg);
        // Cut in the length prefix, then in the body: each time the read
        // is polled once, takes what is there and is dropped, as a
        // `select!` drops it when a shutdown wins.
        for (part, end) in [(&bytes[..2], 2), (&bytes[2..50_000], 50_000)] {
            write.write_all(part).await.unwrap();
            take_partly(&mut reader, end).await;
        }
        write.write_all(&bytes[50_000..]).await.unwrap();
        let Incoming::Data { id, data, end } = next_message(&mut reader).await else {
            panic!("not a piece");
        };
        assert_eq!((id, end, data.filled()), (9, false, &[7u8; 100_000][..]));
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_fatal_and_one_cut_off_is_the_end() {
        let (mut reader, mut write, pool) = pair();
        let over = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        write.write_all(&over).await.unwrap();
        let Incoming::Fatal(error) = next_message(&mut reader).await else {
            panic!("an over-long frame is not refused");
        };
        assert_eq!(error.code, ErrorCode::TooLarge);
        assert_eq!(pool.in_use(), 0, "nothing was taken for it");

        let (mut reader, mut write, pool) = pair();
        let mut cut = framed(&ClientMessage::Data {
            id: 1,
            data: vec![1; 200_000],
            end: false,
        });
        cut.truncate(150_000);
        write.write_all(&cut).await.unwrap();
        drop(write);
        assert!(matches!(next_message(&mut reader).await, Incoming::Closed));
        drop(reader);
        assert_eq!(pool.in_use(), 0, "the half-read buffer went back");
    }
}
