//! Framing: the four-byte big-endian length and its limit, enforced before
//! any body is read or allocated and on writing as well; frames found however
//! the bytes are split; an end inside a frame is an error, not a clean close;
//! and `Connection::read_message` tells broken frames from wrong messages.

use berkut_proto::wire::frame::encode;
use berkut_proto::wire::{ops, ClientMessage, Connection, FrameError, Operation, MAX_FRAME_LEN};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::{frame, op, request, PATIENCE};

#[tokio::test]
async fn an_oversized_length_is_refused_before_any_body_arrives() {
    let (mut raw, other) = UnixStream::pair().unwrap();
    let mut conn = Connection::new(other);
    // Only the header: if the reader waited for (or allocated) the body, it
    // would hang here until the timeout.
    raw.write_all(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    let got = timeout(PATIENCE, conn.read_frame())
        .await
        .expect("the reader waited for a body it should have refused");
    match got {
        Err(FrameError::TooLarge { max, .. }) => assert_eq!(max, MAX_FRAME_LEN),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    drop(raw);
}

#[tokio::test]
async fn the_largest_length_a_header_can_hold_is_refused_too() {
    let (mut raw, other) = tokio::io::duplex(64);
    let mut conn = Connection::new(other);
    raw.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
    assert!(matches!(got, Err(FrameError::TooLarge { .. })), "{got:?}");
}

#[tokio::test]
async fn a_frame_of_exactly_the_limit_is_accepted() {
    let (mut raw, other) = UnixStream::pair().unwrap();
    let mut conn = Connection::new(other);
    let writer = tokio::spawn(async move {
        raw.write_all(&(MAX_FRAME_LEN as u32).to_be_bytes())
            .await
            .unwrap();
        let body: Vec<u8> = (0..MAX_FRAME_LEN).map(|i| (i % 251) as u8).collect();
        raw.write_all(&body).await.unwrap();
        raw
    });
    let body = timeout(PATIENCE, conn.read_frame())
        .await
        .unwrap()
        .unwrap()
        .expect("a frame");
    assert_eq!(body.len(), MAX_FRAME_LEN);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    drop(writer.await.unwrap());
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn write_frame_sends_the_limit_and_refuses_one_byte_more() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut sender = Connection::new(a);
    let mut receiver = Connection::new(b);

    let reader = tokio::spawn(async move {
        let body = receiver.read_frame().await.unwrap().expect("a frame");
        let after = receiver.read_frame().await.unwrap();
        (body.len(), after)
    });
    sender.write_frame(vec![7; MAX_FRAME_LEN]).await.unwrap();
    match sender.write_frame(vec![7; MAX_FRAME_LEN + 1]).await {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_FRAME_LEN + 1, MAX_FRAME_LEN))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The refused frame left nothing on the stream: the reader sees the
    // good frame and then a clean end.
    drop(sender);
    let (len, after) = timeout(PATIENCE, reader).await.unwrap().unwrap();
    assert_eq!(len, MAX_FRAME_LEN);
    assert!(after.is_none(), "{after:?}");
}

#[tokio::test]
async fn write_message_refuses_a_message_that_encodes_too_large() {
    let (a, _b) = tokio::io::duplex(64);
    let mut conn = Connection::with_limit(a, 64);
    let msg = ClientMessage::Hello {
        protocol_version: 1,
        client: "x".repeat(100),
    };
    assert!(matches!(
        conn.write_message(&msg).await,
        Err(FrameError::TooLarge { max: 64, .. })
    ));
}

#[tokio::test]
async fn a_smaller_limit_applies_to_reading_as_well() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut conn = Connection::with_limit(other, 16);
    raw.write_all(&frame(&[0xc0; 16])).await.unwrap();
    raw.write_all(&17u32.to_be_bytes()).await.unwrap();
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 16);
    let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
    assert!(
        matches!(got, Err(FrameError::TooLarge { max: 16, .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn frames_are_found_however_the_bytes_are_split() {
    let hello = ClientMessage::Hello {
        protocol_version: 1,
        client: "split".into(),
    };
    let status = ClientMessage::Request {
        on_behalf_of: None,
        id: 2,
        op: Operation::Status(ops::Status {}),
    };
    let empty = frame(&[]);
    let mut stream = frame(&encode(&hello).unwrap());
    stream.extend(&empty);
    stream.extend(frame(&encode(&status).unwrap()));

    // All at once.
    let (mut raw, other) = tokio::io::duplex(4096);
    let mut conn = Connection::new(other);
    raw.write_all(&stream).await.unwrap();
    drop(raw);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(hello.clone())
    );
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 0);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(status.clone())
    );
    assert!(conn.read_frame().await.unwrap().is_none());

    // One byte at a time.
    let (mut raw, other) = tokio::io::duplex(1);
    let mut conn = Connection::new(other);
    let writer = tokio::spawn(async move {
        for b in stream {
            raw.write_all(&[b]).await.unwrap();
        }
    });
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(hello)
    );
    assert_eq!(conn.read_frame().await.unwrap().unwrap().len(), 0);
    assert_eq!(
        conn.read_message::<ClientMessage>().await.unwrap(),
        Some(status)
    );
    writer.await.unwrap();
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn an_end_inside_a_frame_is_an_error_not_a_clean_close() {
    for partial in [vec![0u8, 0], frame(&[0xc0, 0xc0, 0xc0])[..6].to_vec()] {
        let (mut raw, other) = tokio::io::duplex(64);
        let mut conn = Connection::new(other);
        raw.write_all(&partial).await.unwrap();
        drop(raw);
        let got = timeout(PATIENCE, conn.read_frame()).await.unwrap();
        assert!(
            matches!(got, Err(FrameError::Io(_))),
            "{partial:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn read_message_separates_broken_frames_from_wrong_messages() {
    let (mut raw, other) = tokio::io::duplex(1024);
    let mut conn = Connection::new(other);
    raw.write_all(&frame(&[0xc1])).await.unwrap();
    raw.write_all(&frame(&request(3.into(), op("frobnicate", vec![]))))
        .await
        .unwrap();
    assert!(matches!(
        conn.read_message::<ClientMessage>().await,
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        conn.read_message::<ClientMessage>().await,
        Err(FrameError::Unexpected(_))
    ));
}
