//! The protocol under hostile input: oversized, malformed and nonsensical
//! frames. A broken frame closes that connection and nothing else; a
//! well-formed but wrong request gets `invalid` and the connection goes on.

use berkut_proto::wire::frame::{MAX_FRAME_LEN, MAX_HELLO_FRAME_LEN, MAX_REQUEST_FRAME_LEN};
use berkut_proto::wire::{ops, Connection, ErrorCode, Operation, Reply, ServerMessage};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::helpers::*;

async fn expect_closed(conn: &mut Conn) {
    match conn.read_message::<ServerMessage>().await {
        Ok(None) | Err(_) => {}
        Ok(Some(other)) => panic!("the connection stayed open and sent {other:?}"),
    }
}

async fn still_serves(daemon: &berkut_testkit::Daemon) {
    let mut client = daemon.client().await;
    assert!(matches!(
        client.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
}

fn error_of(msg: ServerMessage) -> (Option<u64>, berkut_proto::wire::ErrorBody) {
    match msg {
        ServerMessage::Error { id, error } => {
            assert_safe(&error.message);
            (id, error)
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Announces a frame of `len` bytes and sends none of it: the daemon must
/// answer `too_large` (without an id) and close.
async fn refused_on_length(mut stream: UnixStream, len: usize) {
    stream.write_all(&(len as u32).to_be_bytes()).await.unwrap();
    let mut conn = Connection::new(stream);
    let (id, error) = error_of(conn.read_message::<ServerMessage>().await.unwrap().unwrap());
    assert_eq!((id, error.code), (None, ErrorCode::TooLarge), "{error:?}");
    expect_closed(&mut conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_its_connection() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let bystander = daemon.client().await;
    let stream = daemon.client().await.into_connection().into_inner();
    // Announce a frame just over the limit and send none of it: the daemon
    // must refuse on the length alone, without waiting for (or allocating)
    // the body.
    refused_on_length(stream, MAX_FRAME_LEN + 1).await;

    let mut bystander = bystander;
    assert!(matches!(
        bystander.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
    still_serves(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_a_request_is_refused_on_its_length_without_an_upload() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    // A request that keeps running (a watch) keeps the connection from
    // idling: a frame begun after it and never finished would hold its
    // buffer as long as the client liked. Announced, and not one byte of it
    // sent, it is refused at once.
    let mut conn = daemon.client().await.into_connection();
    conn.write_message(&berkut_proto::wire::ClientMessage::Request {
        on_behalf_of: None,
        id: 1,
        op: Operation::MaintenanceWatch(ops::MaintenanceWatch {}),
    })
    .await
    .unwrap();
    let refusal = large_frame_refusal(conn).await;
    assert_eq!(refusal.code, ErrorCode::TooLarge, "{refusal:?}");
    assert!(refusal.message.contains("65536"), "{}", refusal.message);
    still_serves(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut deep = vec![0x91u8; 60_000];
    deep.push(0xc0);
    let mut trailing = raw_request(1, "status", vec![]);
    trailing.push(0xc0);
    let truncated = raw_request(1, "status", vec![])[..5].to_vec();
    for body in [vec![0xc1], vec![], trailing, truncated, deep] {
        let mut conn = daemon.client().await.into_connection();
        let (id, error) = error_of(send_raw(&mut conn, &body).await);
        assert_eq!(
            (id, error.code),
            (None, ErrorCode::Invalid),
            "{:?}",
            &body[..body.len().min(8)]
        );
        expect_closed(&mut conn).await;
    }
    still_serves(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_requests_get_invalid_and_the_connection_goes_on() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = daemon.client().await.into_connection();
    let cases = [
        raw_request(5, "frobnicate", vec![]),
        raw_request(6, "backup_create", vec![("label", 42.into())]),
        raw_request(7, "backup_create", vec![("scope", "everything".into())]),
        raw_request(8, "backup_show", vec![]),
        raw_request(9, "backup_create", vec![("wait", "yes".into())]),
    ];
    for (n, body) in cases.iter().enumerate() {
        let (id, error) = error_of(send_raw(&mut conn, body).await);
        assert_eq!(id, Some(5 + n as u64));
        assert_eq!(error.code, ErrorCode::Invalid, "{error:?}");
    }
    // A map without an id, and a value that is not a map at all.
    for body in [
        rmp_serde::to_vec_named(&serde_json::json!({"type": "request"})).unwrap(),
        rmp_serde::to_vec(&42).unwrap(),
    ] {
        let (id, error) = error_of(send_raw(&mut conn, &body).await);
        assert_eq!((id, error.code), (None, ErrorCode::Invalid));
    }
    // The same connection still works.
    let reply = send_raw(&mut conn, &raw_request(10, "status", vec![])).await;
    assert!(
        matches!(
            reply,
            ServerMessage::Reply {
                id: 10,
                reply: Reply::Status { .. }
            }
        ),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_is_required_and_versioned() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();

    let hello = |v: u32| {
        rmp_serde::to_vec_named(&berkut_proto::wire::ClientMessage::Hello {
            protocol_version: v,
            client: "test".into(),
        })
        .unwrap()
    };
    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let (_, error) = error_of(send_raw(&mut conn, &hello(99)).await);
    assert_eq!(error.code, ErrorCode::VersionMismatch);
    expect_closed(&mut conn).await;

    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let (_, error) = error_of(send_raw(&mut conn, &raw_request(1, "status", vec![])).await);
    assert_eq!(error.code, ErrorCode::Invalid);
    expect_closed(&mut conn).await;

    // A first frame longer than any hello is refused on its length alone:
    // a peer not yet known gets no large buffer.
    let stream = UnixStream::connect(&daemon.socket).await.unwrap();
    refused_on_length(stream, MAX_HELLO_FRAME_LEN + 1).await;

    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    assert!(matches!(
        send_raw(&mut conn, &hello(1)).await,
        ServerMessage::Welcome {
            protocol_version: 1,
            ..
        }
    ));
    still_serves(&daemon).await;
}

/// The daemon's peak resident memory, from the kernel.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_millions_of_tiny_values_costs_no_memory() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    still_serves(&daemon).await;
    let before = peak_rss_kib(daemon.pid().unwrap());
    // A well-formed status request whose ignored field holds `n` nils:
    // serde would buffer each as a 32-byte value before looking at the
    // type.
    let padded = |n: u32| {
        let mut padded = raw_request(1, "status", vec![("pad", rmpv::Value::Nil)]);
        padded.truncate(padded.len() - 1);
        padded.push(0xdd);
        padded.extend_from_slice(&n.to_be_bytes());
        padded.resize(padded.len() + n as usize, 0xc0);
        padded
    };
    // Four million do not fit in a request's frame: refused on the length.
    let millions = padded(4_000_000).len();
    assert!(millions > MAX_REQUEST_FRAME_LEN && millions < MAX_FRAME_LEN);
    for _ in 0..4 {
        let stream = daemon.client().await.into_connection().into_inner();
        refused_on_length(stream, millions).await;
    }
    // Sixty thousand do: the scan refuses them first.
    let thousands = padded(60_000);
    assert!(thousands.len() < MAX_REQUEST_FRAME_LEN);
    for _ in 0..4 {
        let mut conn = daemon.client().await.into_connection();
        let (id, error) = error_of(send_raw(&mut conn, &thousands).await);
        assert_eq!((id, error.code), (None, ErrorCode::Invalid), "{error:?}");
        expect_closed(&mut conn).await;
    }
    let after = peak_rss_kib(daemon.pid().unwrap());
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    still_serves(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        conn.read_message::<ServerMessage>(),
    )
    .await;
    assert!(matches!(outcome, Ok(Ok(None)) | Ok(Err(_))), "{outcome:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "closed too early"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_with_a_reason() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut held = Vec::new();
    for _ in 0..berkut_daemon::config::DEFAULT_MAX_CONNECTIONS {
        held.push(daemon.client().await);
    }
    let mut extra = Connection::new(UnixStream::connect(&daemon.socket).await.unwrap());
    let (id, error) = error_of(
        extra
            .read_message::<ServerMessage>()
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!((id, error.code), (None, ErrorCode::Unavailable));
    expect_closed(&mut extra).await;
    // Freeing one makes room again.
    drop(held.pop());
    berkut_testkit::wait_for_async("a free connection slot", LONG, || async {
        let mut client = berkut_proto::wire::Client::connect(&daemon.socket, "t")
            .await
            .ok()?;
        client.call(Operation::Status(ops::Status {})).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_beyond_the_per_connection_limit_is_refused_not_queued() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = daemon.client().await.into_connection();
    // Requests that never end on their own fill the connection's slots.
    for id in 1..=32u64 {
        conn.write_message(&berkut_proto::wire::ClientMessage::Request {
            on_behalf_of: None,
            id,
            op: Operation::MaintenanceWatch(ops::MaintenanceWatch {}),
        })
        .await
        .unwrap();
    }
    conn.write_message(&berkut_proto::wire::ClientMessage::Request {
        on_behalf_of: None,
        id: 99,
        op: Operation::Status(ops::Status {}),
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        match tokio::time::timeout_at(deadline, conn.read_message::<ServerMessage>())
            .await
            .expect("an answer to request 99")
        {
            Ok(Some(ServerMessage::Error {
                id: Some(99),
                error,
            })) => {
                assert_eq!(error.code, ErrorCode::Unavailable, "{error:?}");
                break;
            }
            Ok(Some(ServerMessage::Event { .. })) => continue,
            other => panic!("{other:?}"),
        }
    }
    // Another connection is not affected.
    still_serves(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_request_and_nothing_else() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_FAULT_PANIC_IN", "plan_show")
        .start();
    let mut client = daemon.client().await;
    let err = server_error(client.call(Operation::PlanShow(ops::PlanShow {})).await);
    assert_eq!(err.code, ErrorCode::Internal);
    let id = err
        .correlation_id
        .clone()
        .expect("a correlation id to find the details by");
    assert!(
        !err.message.contains("fault injected"),
        "the panic's text stays in the log: {}",
        err.message
    );
    assert!(
        daemon.log().contains(&id) && daemon.log().contains("fault injected"),
        "the log has the details under the correlation id"
    );
    // The same connection, and the daemon, go on.
    assert!(matches!(
        client.call(Operation::Status(ops::Status {})).await,
        Ok(Reply::Status { .. })
    ));
    still_serves(&daemon).await;
}
