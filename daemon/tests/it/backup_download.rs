//! `backup_download`: the bytes are the stored archive's; concurrent
//! downloads are fine; a backup being downloaded cannot be deleted; clients
//! that stop reading cost the daemon a small, bounded buffer each.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, ClientMessage, ErrorCode, Operation, Reply, ServerMessage};
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// A cluster whose `app` database dumps to tens of megabytes that do not
/// compress (random-looking bytes), so a download takes a while.
fn bulky_cluster() -> berkut_testkit::PgCluster {
    let pg = small_cluster();
    pg.psql("app", "CREATE TABLE blob (id int, b bytea); INSERT INTO blob SELECT g, decode(md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5((g * 17)::text), 'hex') FROM generate_series(1, 500000) g;").unwrap();
    pg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_the_stored_archive() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Full).await;
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    let (size, sha256) = client
        .download(record.id.clone(), |offset, data| {
            offsets.push(offset);
            got.extend_from_slice(data);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        got,
        std::fs::read(daemon.archive_path(record.id.as_str())).unwrap()
    );
    assert_eq!(Some(size), record.size_bytes);
    assert_eq!(Some(&sha256), record.sha256.as_ref());
    assert_eq!(hex::encode(Sha256::digest(&got)), sha256);
    assert_eq!(offsets[0], 0);

    let missing = client
        .download("20000101T000000Z-00000000".parse().unwrap(), |_, _| Ok(()))
        .await;
    assert!(
        matches!(missing, Err(berkut_proto::wire::ClientError::Server(ref e)) if e.code == ErrorCode::NotFound),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_being_downloaded_cannot_be_deleted_but_can_be_downloaded_again() {
    let pg = bulky_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert!(
        record.size_bytes.unwrap() > 28 << 20,
        "the archive is too small to stall a download: {:?}",
        record.size_bytes
    );

    // A client that asks for the archive and then stops reading holds the
    // download open.
    let mut stalled = daemon.client().await.into_connection();
    stalled
        .write_message(&ClientMessage::Request {
            on_behalf_of: None,
            id: 1,
            op: Operation::BackupDownload(ops::BackupDownload {
                id: record.id.clone(),
                offset: 0,
            }),
        })
        .await
        .unwrap();
    let first = stalled.read_message::<ServerMessage>().await.unwrap();
    assert!(
        matches!(first, Some(ServerMessage::Data { offset: 0, .. })),
        "{first:?}"
    );

    let mut other = daemon.client().await;
    let mut size = 0u64;
    let (total, _) = other
        .download(record.id.clone(), |_, d| {
            size += d.len() as u64;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(size, total, "a second download runs beside the first");

    let err = server_error(
        client
            .call(Operation::BackupDelete(ops::BackupDelete {
                id: record.id.clone(),
            }))
            .await,
    );
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    assert!(err.message.contains("downloaded"));

    drop(stalled);
    berkut_testkit::wait_for_async("the stalled download to end", LONG, || async {
        let mut c = daemon.client().await;
        matches!(
            c.call(Operation::BackupDelete(ops::BackupDelete {
                id: record.id.clone()
            }))
            .await,
            Ok(Reply::Deleted { .. })
        )
        .then_some(())
    })
    .await;
}

/// A line of the daemon's `/proc/<pid>/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Downloads whose clients never read, as many as the connection limits
/// allow root (an admin: the total alone); each has received its first
/// piece.
async fn stalled_downloads(
    daemon: &berkut_testkit::Daemon,
    id: &berkut_proto::ids::BackupId,
    n: usize,
) -> Vec<berkut_proto::wire::Connection<tokio::net::UnixStream>> {
    let mut stalled = Vec::new();
    for _ in 0..n {
        let mut conn = daemon.client().await.into_connection();
        conn.write_message(&ClientMessage::Request {
            on_behalf_of: None,
            id: 1,
            op: Operation::BackupDownload(ops::BackupDownload {
                id: id.clone(),
                offset: 0,
            }),
        })
        .await
        .unwrap();
        let first = conn.read_message::<ServerMessage>().await.unwrap();
        assert!(
            matches!(first, Some(ServerMessage::Data { offset: 0, .. })),
            "{first:?}"
        );
        stalled.push(conn);
    }
    stalled
}

/// Waits until the daemon's resident memory has not moved for a few polls:
/// every stalled download has filled what it may and waits.
async fn settled(pid: u32) {
    let mut last = (0, 0);
    berkut_testkit::wait_for_async("the stalled downloads to settle", LONG, || {
        let rss = proc_kib(pid, "VmRSS:");
        let (prev, same) = last;
        last = (rss, if rss == prev { same + 1 } else { 0 });
        async move { (last.1 >= 5).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_downloads_keep_the_daemon_small_and_give_memory_back() {
    const LIMIT_KIB: u64 = 64 * 1024;
    const CLIENTS: usize = 250;
    let pg = bulky_cluster();
    let daemon = daemon_for(&pg).start();
    let pid = daemon.pid().unwrap();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    assert!(
        record.size_bytes.unwrap() > 28 << 20,
        "{:?}",
        record.size_bytes
    );
    drop(client);
    let before = proc_kib(pid, "VmRSS:");
    eprintln!("before: VmRSS {before} KiB");

    // Twice, so that memory kept after the first round would show.
    for round in 1..=2 {
        let stalled = stalled_downloads(&daemon, &record.id, CLIENTS).await;
        settled(pid).await;
        let (rss, peak) = (proc_kib(pid, "VmRSS:"), proc_kib(pid, "VmHWM:"));
        eprintln!("round {round}: {CLIENTS} stalled downloads, VmRSS {rss} KiB, VmHWM {peak} KiB");
        assert!(
            peak < LIMIT_KIB,
            "round {round}: the daemon peaked at {peak} KiB with {CLIENTS} stalled downloads"
        );
        drop(stalled);
    }
    // Every download ends once its client is gone (its lease goes with
    // it), and what they held goes back to the system: the daemon returns
    // to about its size before them (what stays is small bookkeeping).
    berkut_testkit::wait_for_async("the stalled downloads to end", LONG, || async {
        let mut c = daemon.client().await;
        matches!(
            c.call(Operation::BackupDelete(ops::BackupDelete {
                id: record.id.clone()
            }))
            .await,
            Ok(Reply::Deleted { .. })
        )
        .then_some(())
    })
    .await;
    let rss = proc_kib(pid, "VmRSS:");
    eprintln!("after: VmRSS {rss} KiB");
    assert!(
        rss < before + 12 * 1024,
        "the daemon keeps {rss} KiB after its stalled downloads closed, {before} KiB before them"
    );
}

/// The sizes of a download's pieces but the last, from their offsets.
fn piece_sizes(offsets: &[u64]) -> Vec<u64> {
    offsets.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Downloads go in 256 KiB pieces from the daemon's pool
/// (`connection::pieces`); once clients that stopped reading hold the whole
/// pool, another download is not kept waiting for them: it goes on in
/// 32 KiB pieces, whole and correct; when they go, the pool comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_holding_the_large_pieces_do_not_hold_up_other_downloads() {
    const LARGE: u64 = 256 * 1024;
    const SMALL: u64 = 32 * 1024;
    let pg = bulky_cluster();
    let daemon = daemon_for(&pg).start();
    let mut client = daemon.client().await;
    let record = backup_now(&mut client, Scope::Database).await;
    let stored = std::fs::read(daemon.archive_path(record.id.as_str())).unwrap();
    assert!(stored.len() as u64 > 20 * LARGE, "{}", stored.len());

    let (offsets, bytes, reply) = download_from(&daemon, &record.id, 0).await;
    assert!(matches!(reply, Ok(Reply::Downloaded { .. })), "{reply:?}");
    assert!(bytes == stored, "the download is the archive");
    assert!(
        piece_sizes(&offsets).iter().all(|&n| n == LARGE),
        "{:?}",
        piece_sizes(&offsets)
    );

    // Six stalled clients: each holds a piece on its socket, one queued
    // and one waiting, which is more than the pool has.
    let stalled = stalled_downloads(&daemon, &record.id, 6).await;
    pieces_become(&daemon, &record.id, &stored, SMALL).await;
    drop(stalled);
    pieces_become(&daemon, &record.id, &stored, LARGE).await;
}

/// Downloads the archive again and again, each time whole and correct,
/// until every piece but the last is `size` bytes.
async fn pieces_become(
    daemon: &berkut_testkit::Daemon,
    id: &berkut_proto::ids::BackupId,
    stored: &[u8],
    size: u64,
) {
    let what = format!("downloads in pieces of {size} bytes");
    berkut_testkit::wait_for_async(&what, LONG, || async {
        let (offsets, bytes, reply) = download_from(daemon, id, 0).await;
        assert!(matches!(reply, Ok(Reply::Downloaded { .. })), "{reply:?}");
        assert!(bytes == stored, "the download is the archive");
        piece_sizes(&offsets)
            .iter()
            .all(|&n| n == size)
            .then_some(())
    })
    .await;
}

/// Reads one download to its end on a connection of its own: the pieces'
/// offsets and bytes, and the reply (or the error).
async fn download_from(
    daemon: &berkut_testkit::Daemon,
    id: &berkut_proto::ids::BackupId,
    offset: u64,
) -> (
    Vec<u64>,
    Vec<u8>,
    Result<Reply, berkut_proto::wire::ErrorBody>,
) {
    let mut conn = daemon.client().await.into_connection();
    conn.write_message(&ClientMessage::Request {
        on_behalf_of: None,
        id: 1,
        op: ops::BackupDownload {
            id: id.clone(),
            offset,
        }
        .into(),
    })
    .await
    .unwrap();
    let (mut offsets, mut bytes) = (Vec::new(), Vec::new());
    loop {
        match conn.read_message::<ServerMessage>().await.unwrap() {
            Some(ServerMessage::Data { offset, data, .. }) => {
                offsets.push(offset);
                bytes.extend_from_slice(&data);
            }
            Some(ServerMessage::Reply { reply, .. }) => return (offsets, bytes, Ok(reply)),
            Some(ServerMessage::Error { error, .. }) => return (offsets, bytes, Err(error)),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_at_an_offset() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let record = backup_now(&mut daemon.client().await, Scope::Full).await;
    let file = std::fs::read(daemon.archive_path(&record.id.to_string())).unwrap();
    let size = file.len() as u64;
    let from = size / 3;
    let (offsets, bytes, reply) = download_from(&daemon, &record.id, from).await;
    assert_eq!(offsets.first(), Some(&from));
    assert_eq!(bytes, &file[from as usize..]);
    match reply {
        Ok(Reply::Downloaded {
            size_bytes, sha256, ..
        }) => {
            assert_eq!(size_bytes, size - from);
            assert_eq!(sha256, hex::encode(Sha256::digest(&file[from as usize..])));
        }
        other => panic!("{other:?}"),
    }
    // At the end: nothing to send; past it: invalid, and nothing sent.
    let (_, bytes, reply) = download_from(&daemon, &record.id, size).await;
    assert!(bytes.is_empty());
    assert!(
        matches!(reply, Ok(Reply::Downloaded { size_bytes: 0, .. })),
        "{reply:?}"
    );
    let (offsets, _, reply) = download_from(&daemon, &record.id, size + 1).await;
    assert!(offsets.is_empty());
    assert_eq!(reply.unwrap_err().code, ErrorCode::Invalid);
}
