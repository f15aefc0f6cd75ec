//! The Rust `Client`'s transfers against a scripted server: `download`
//! hands over the pieces in order and returns the reply's size and sha256,
//! reads a download to its end even when its sink fails, reports a
//! refusal, and refuses a download with a piece missing or a size that
//! disagrees with what arrived; `upload` waits for `continue`, sends pieces of at most
//! `UPLOAD_CHUNK` with `end` on the last and returns the reply, sends
//! nothing at all when the import is refused at once, and returns an error
//! that came in the middle once its pieces are sent. The scripts run as
//! tasks whose panics are reported, so their assertions count.

use std::time::Duration;

use berkut_proto::wire::client::UPLOAD_CHUNK;
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    Client, ClientError, ClientMessage, Connection, ErrorBody, ErrorCode, Operation, Reply,
    ServerMessage, PROTOCOL_VERSION,
};
use sha2::{Digest, Sha256};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::fixtures::{backup_id, example_status, imported_record, piece};
use super::PATIENCE;

/// Greets the first client and runs `script` on its connection. Returns
/// the connected client and the script's task: await it to see the
/// script's own assertions fail.
async fn scripted<F, Fut>(script: F) -> (tempfile::TempDir, Client, JoinHandle<()>)
where
    F: FnOnce(Connection<UnixStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berkutd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream);
        let hello: Option<ClientMessage> = conn.read_message().await.unwrap();
        assert!(matches!(hello, Some(ClientMessage::Hello { .. })));
        conn.write_message(&ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "scripted".into(),
        })
        .await
        .unwrap();
        script(conn).await;
    });
    let client = timeout(PATIENCE, Client::connect(&path, "transfer-test"))
        .await
        .unwrap()
        .unwrap();
    (dir, client, task)
}

async fn finished(task: JoinHandle<()>) {
    timeout(PATIENCE, task).await.unwrap().unwrap();
}

async fn next_request(conn: &mut Connection<UnixStream>) -> (u64, Operation) {
    match conn.read_message::<ClientMessage>().await.unwrap() {
        Some(ClientMessage::Request {
            on_behalf_of: None,
            id,
            op,
        }) => (id, op),
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The archive of the download tests: three pieces of the daemon's size.
fn archive() -> Vec<u8> {
    piece(2 * 262_144 + 37_120)
}

/// How a scripted download departs from the archive it serves.
#[derive(Clone, Copy, PartialEq)]
enum Served {
    Whole,
    /// One piece left out.
    WithoutPiece(usize),
    /// A reply claiming one byte more than was sent.
    ClaimingOneMore,
    /// The second piece's bytes as a MessagePack array of numbers, which
    /// the ordinary decode takes for bytes but the client's fast path
    /// does not.
    SecondAsArray,
}

/// Answers a download with `archive()` in pieces of 256 KiB.
async fn serve_download(conn: &mut Connection<UnixStream>, served: Served) {
    let (id, op) = next_request(conn).await;
    assert_eq!(
        op,
        Operation::BackupDownload(ops::BackupDownload {
            id: backup_id(),
            offset: 0,
        })
    );
    let bytes = archive();
    for (n, chunk) in bytes.chunks(262_144).enumerate() {
        if served == Served::WithoutPiece(n) {
            continue;
        }
        if served == Served::SecondAsArray && n == 1 {
            let numbers = chunk.iter().map(|b| rmpv::Value::from(*b)).collect();
            let msg = rmpv::Value::Map(vec![
                ("type".into(), "data".into()),
                ("id".into(), id.into()),
                ("offset".into(), 262_144.into()),
                ("data".into(), rmpv::Value::Array(numbers)),
            ]);
            let mut body = Vec::new();
            rmpv::encode::write_value(&mut body, &msg).unwrap();
            conn.write_frame(body).await.unwrap();
            continue;
        }
        let msg = ServerMessage::Data {
            id,
            offset: (n * 262_144) as u64,
            data: chunk.to_vec(),
        };
        conn.write_message(&msg).await.unwrap();
    }
    let reply = Reply::Downloaded {
        id: backup_id(),
        size_bytes: bytes.len() as u64 + u64::from(served == Served::ClaimingOneMore),
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    conn.write_message(&ServerMessage::Reply { id, reply })
        .await
        .unwrap();
}

#[tokio::test]
async fn download_hands_over_the_pieces_in_order_and_returns_the_reply() {
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        serve_download(&mut conn, Served::Whole).await;
        // The second download's sink fails: the stream is still read to
        // its end, so the next request gets its own reply.
        serve_download(&mut conn, Served::Whole).await;
        let (id, op) = next_request(&mut conn).await;
        assert_eq!(op, Operation::Status(ops::Status {}));
        let reply = Reply::Status {
            status: example_status(),
        };
        conn.write_message(&ServerMessage::Reply { id, reply })
            .await
            .unwrap();
        let (id, _) = next_request(&mut conn).await;
        let error = ErrorBody::new(ErrorCode::NotFound, "there is no backup");
        conn.write_message(&ServerMessage::Error {
            id: Some(id),
            error,
        })
        .await
        .unwrap();
    })
    .await;

    let mut offsets = Vec::new();
    let mut got = Vec::new();
    let (size, sha256) = timeout(
        PATIENCE,
        client.download(backup_id(), |offset, data| {
            offsets.push(offset);
            got.extend_from_slice(data);
            Ok(())
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let bytes = archive();
    assert_eq!(offsets, [0, 262_144, 524_288]);
    assert_eq!(got, bytes);
    assert_eq!(size, bytes.len() as u64);
    assert_eq!(sha256, hex::encode(Sha256::digest(&bytes)));

    let mut calls = 0;
    let failed = timeout(
        PATIENCE,
        client.download(backup_id(), |_, _| {
            calls += 1;
            Err(std::io::Error::other("disk full"))
        }),
    )
    .await
    .unwrap();
    assert!(
        matches!(&failed, Err(ClientError::Local(e)) if e.to_string() == "disk full"),
        "{failed:?}"
    );
    assert_eq!(calls, 1, "the sink is not called again after it failed");
    let status = timeout(PATIENCE, client.call(Operation::Status(ops::Status {}))).await;
    assert!(matches!(status, Ok(Ok(Reply::Status { .. }))), "{status:?}");

    let refused = timeout(PATIENCE, client.download(backup_id(), |_, _| Ok(())))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(ClientError::Server(e)) if e.code == ErrorCode::NotFound),
        "{refused:?}"
    );
    finished(task).await;
}

#[tokio::test]
async fn a_piece_the_fast_path_leaves_to_the_ordinary_decode_is_still_handed_on() {
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        serve_download(&mut conn, Served::SecondAsArray).await;
    })
    .await;
    let mut got = Vec::new();
    let (size, _) = timeout(
        PATIENCE,
        client.download(backup_id(), |_, data| {
            got.extend_from_slice(data);
            Ok(())
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got, archive());
    assert_eq!(size, archive().len() as u64);
    finished(task).await;
}

#[tokio::test]
async fn a_download_with_a_piece_missing_or_a_size_that_disagrees_is_refused() {
    // berkutctl takes the daemon's sha256 as the download's check, so the
    // client must be sure that what it handed on is what was hashed.
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        serve_download(&mut conn, Served::WithoutPiece(1)).await;
        serve_download(&mut conn, Served::ClaimingOneMore).await;
    })
    .await;
    let mut given = Vec::new();
    let gap = timeout(
        PATIENCE,
        client.download(backup_id(), |offset, _| {
            given.push(offset);
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert!(
        matches!(&gap, Err(ClientError::Protocol(m)) if m.contains("offset 524288")),
        "{gap:?}"
    );
    assert_eq!(given, [0], "nothing after the gap is handed on");
    let longer = timeout(PATIENCE, client.download(backup_id(), |_, _| Ok(())))
        .await
        .unwrap();
    assert!(
        matches!(&longer, Err(ClientError::Protocol(m)) if m.contains("arrived")),
        "{longer:?}"
    );
    finished(task).await;
}

/// Reads the pieces of an upload up to the one with `end`.
async fn read_pieces(conn: &mut Connection<UnixStream>, upload: u64) -> Vec<(Vec<u8>, bool)> {
    let mut pieces = Vec::new();
    loop {
        match conn.read_message::<ClientMessage>().await.unwrap() {
            Some(ClientMessage::Data { id, data, end }) => {
                assert_eq!(id, upload);
                pieces.push((data, end));
                if end {
                    return pieces;
                }
            }
            other => panic!("expected a piece, got {other:?}"),
        }
    }
}

fn joined(pieces: &[(Vec<u8>, bool)]) -> Vec<u8> {
    pieces.iter().flat_map(|(d, _)| d.iter().copied()).collect()
}

#[tokio::test]
async fn upload_waits_for_continue_and_sends_bounded_pieces_up_to_the_end() {
    let bytes = piece(2 * UPLOAD_CHUNK + 12_345);
    let expected = bytes.clone();
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        let (id, op) = next_request(&mut conn).await;
        assert_eq!(
            op,
            Operation::BackupImport(ops::BackupImport {
                size: expected.len() as u64
            })
        );
        let early = timeout(
            Duration::from_millis(200),
            conn.read_message::<ClientMessage>(),
        )
        .await;
        assert!(early.is_err(), "data before continue: {early:?}");
        conn.write_message(&ServerMessage::Continue { id })
            .await
            .unwrap();
        let pieces = read_pieces(&mut conn, id).await;
        let (last, rest) = pieces.split_last().unwrap();
        assert!(last.1, "the last piece has end");
        assert!(rest.iter().all(|(_, end)| !end), "only the last has end");
        assert!(pieces.iter().all(|(d, _)| d.len() <= UPLOAD_CHUNK));
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        assert_eq!(joined(&pieces), expected);
        let reply = Reply::Backup {
            backup: imported_record(),
        };
        conn.write_message(&ServerMessage::Reply { id, reply })
            .await
            .unwrap();
    })
    .await;

    let mut progress = Vec::new();
    let reply = timeout(
        PATIENCE,
        client.upload(bytes.len() as u64, &bytes[..], |sent| progress.push(sent)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        reply,
        Reply::Backup {
            backup: imported_record()
        }
    );
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&(bytes.len() as u64)));
    finished(task).await;
}

#[tokio::test]
async fn an_upload_refused_at_once_sends_no_data() {
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        let (id, op) = next_request(&mut conn).await;
        assert_eq!(
            op,
            Operation::BackupImport(ops::BackupImport { size: 1 << 40 })
        );
        let error = ErrorBody::new(ErrorCode::TooLarge, "imports are limited");
        conn.write_message(&ServerMessage::Error {
            id: Some(id),
            error,
        })
        .await
        .unwrap();
        // Nothing follows: the connection ends when the client is dropped.
        let next = conn.read_message::<ClientMessage>().await.unwrap();
        assert!(next.is_none(), "the client sent {next:?}");
    })
    .await;

    let mut progress = Vec::new();
    let source = tokio::io::AsyncReadExt::take(tokio::io::repeat(0), 1 << 40);
    let got = timeout(
        PATIENCE,
        client.upload(1 << 40, source, |sent| progress.push(sent)),
    )
    .await
    .unwrap();
    assert!(
        matches!(&got, Err(ClientError::Server(e)) if e.code == ErrorCode::TooLarge),
        "{got:?}"
    );
    assert!(progress.is_empty(), "{progress:?}");
    drop(client);
    finished(task).await;
}

#[tokio::test]
async fn an_upload_refused_midway_returns_the_error_once_its_pieces_are_sent() {
    let bytes = piece(3 * UPLOAD_CHUNK);
    let (_dir, mut client, task) = scripted(|mut conn| async move {
        let (id, _) = next_request(&mut conn).await;
        conn.write_message(&ServerMessage::Continue { id })
            .await
            .unwrap();
        let first = conn.read_message::<ClientMessage>().await.unwrap();
        assert!(matches!(
            first,
            Some(ClientMessage::Data { end: false, .. })
        ));
        let error = ErrorBody::new(ErrorCode::TooLarge, "the upload passed the limit");
        conn.write_message(&ServerMessage::Error {
            id: Some(id),
            error,
        })
        .await
        .unwrap();
        // As the daemon does: the rest is read and dropped.
        read_pieces(&mut conn, id).await;
        let (id, op) = next_request(&mut conn).await;
        assert_eq!(op, Operation::Status(ops::Status {}));
        let reply = Reply::Status {
            status: example_status(),
        };
        conn.write_message(&ServerMessage::Reply { id, reply })
            .await
            .unwrap();
    })
    .await;

    let got = timeout(
        PATIENCE,
        client.upload(bytes.len() as u64, &bytes[..], |_| {}),
    )
    .await
    .unwrap();
    assert!(
        matches!(&got, Err(ClientError::Server(e)) if e.code == ErrorCode::TooLarge),
        "{got:?}"
    );
    let status = timeout(PATIENCE, client.call(Operation::Status(ops::Status {}))).await;
    assert!(matches!(status, Ok(Ok(Reply::Status { .. }))), "{status:?}");
    finished(task).await;
}
