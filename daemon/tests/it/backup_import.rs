//! `backup_import`: an archive downloaded from one daemon imports into
//! another (with a fresh cluster and the same key) and restores there to the
//! same database; everything hostile is refused and leaves nothing behind.

use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::ops;
use berkut_proto::wire::{
    BackupStatus, ClientError, ClientMessage, ErrorCode, Operation, Reply, RestoreStatus,
    ServerMessage,
};
use berkut_testkit::{fingerprint, Daemon, PgCluster};

use crate::helpers::*;

async fn download(daemon: &Daemon, id: &berkut_proto::ids::BackupId) -> Vec<u8> {
    let mut bytes = Vec::new();
    daemon
        .client()
        .await
        .download(id.clone(), |_, d| {
            bytes.extend_from_slice(d);
            Ok(())
        })
        .await
        .unwrap();
    bytes
}

async fn import(daemon: &Daemon, bytes: &[u8]) -> Result<Reply, ClientError> {
    daemon
        .client()
        .await
        .upload(bytes.len() as u64, bytes, |_| {})
        .await
}

fn import_error(r: Result<Reply, ClientError>) -> berkut_proto::wire::ErrorBody {
    match r {
        Err(ClientError::Server(e)) => {
            assert_safe(&e.message);
            e
        }
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

/// Nothing of a refused import remains: no file beside the archives, no
/// catalogue entry.
async fn assert_nothing_left(daemon: &Daemon, archives: usize) {
    let files = daemon.backup_files();
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".bscc")).count(),
        archives,
        "{files:?}"
    );
    assert_no_partials(daemon);
    assert_eq!(
        list(
            daemon
                .client()
                .await
                .call(Operation::list_first_page())
                .await
        )
        .len(),
        archives
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_moves_to_a_new_machine_and_restores_there() {
    let source = rich_cluster();
    let key = berkut_proto::archive::MasterKey::generate();
    let a = daemon_for(&source).key(key.clone()).start();
    let record = backup_now(&mut a.client().await, Scope::Full).await;
    let original = fingerprint(&source, "app").unwrap();
    let bytes = download(&a, &record.id).await;

    let fresh = PgCluster::start().unwrap();
    let b = daemon_for(&fresh).key(key).start();
    let Ok(Reply::Backup { backup: imported }) = import(&b, &bytes).await else {
        panic!("import failed")
    };
    assert_eq!(imported.id, record.id);
    assert_eq!(imported.origin, Origin::Imported);
    assert_eq!(imported.status, BackupStatus::Succeeded);
    assert_eq!(imported.sha256, record.sha256);
    assert_eq!(
        std::fs::read(b.archive_path(record.id.as_str())).unwrap(),
        bytes
    );

    let again = import_error(import(&b, &bytes).await);
    assert_eq!(again.code, ErrorCode::Conflict, "{again:?}");

    let r = restored(
        b.client()
            .await
            .call(berkut_proto::wire::Operation::RestoreStart(
                ops::RestoreStart {
                    backup_id: record.id.clone(),
                    dry_run: false,
                    with_globals: true,
                    wait: true,
                },
            ))
            .await,
    );
    assert_eq!(r.status, RestoreStatus::Succeeded, "{r:#?}");
    assert_eq!(
        fingerprint(&fresh, "app").unwrap().differences(&original),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_are_refused_and_leave_nothing() {
    let pg = small_cluster();
    let source = daemon_for(&pg).start();
    let record = backup_now(&mut source.client().await, Scope::Database).await;
    let good = download(&source, &record.id).await;
    let target_cluster = small_cluster();
    let limit = good.len() + 10;
    let target = daemon_for(&target_cluster)
        .key(berkut_proto::archive::MasterKey::parse(&source.key.to_base64()).unwrap())
        .env("BERKUT_BACKUP_UPLOAD_MAX_BYTES", limit.to_string())
        .start();

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    cases.push(("a damaged chunk", damaged, "does not verify"));
    cases.push((
        "a truncation",
        good[..good.len() - 1000].to_vec(),
        "does not verify",
    ));
    let mut appended = good.clone();
    appended.extend_from_slice(b"tail");
    cases.push(("appended bytes", appended, "does not verify"));
    let mut version = good.clone();
    version[9] = 3;
    cases.push(("an unknown format version", version, "version 3"));
    let other_key = berkut_proto::archive::MasterKey::generate();
    let mut foreign = Vec::new();
    berkut_proto::archive::rewrap(&good[..], &mut foreign, &target.keyring(), &other_key).unwrap();
    // Refused at its header with megabytes still to come (on the source,
    // which has no small limit): the client sends them all and still hears
    // why; the rest are taken at their size and dropped.
    let mut long_foreign = foreign.clone();
    long_foreign.resize(foreign.len() + (5 << 20), 0);
    let err = import_error(import(&source, &long_foreign).await);
    assert_eq!(err.code, ErrorCode::Invalid, "{err:?}");
    assert!(
        err.message.contains("not in the keyring"),
        "{}",
        err.message
    );
    assert_nothing_left(&source, 1).await;
    cases.push((
        "a key the daemon does not have",
        foreign,
        "not in the keyring",
    ));
    cases.push((
        "not an archive at all",
        b"hello, this is not a backup".to_vec(),
        "not a .bscc archive",
    ));
    for (what, bytes, words) in cases {
        let err = import_error(import(&target, &bytes).await);
        assert_eq!(err.code, ErrorCode::Invalid, "{what}: {err:?}");
        assert!(err.message.contains(words), "{what}: {}", err.message);
        if what.starts_with("a key") {
            assert!(
                err.message.contains(&other_key.key_id().to_string()),
                "the error names the key needed: {}",
                err.message
            );
        }
        assert_nothing_left(&target, 0).await;
    }

    // Too large: refused before any data when announced, and as soon as the
    // bytes pass the limit when the announcement lies.
    let big = vec![0u8; limit + 1];
    let err = import_error(import(&target, &big).await);
    assert_eq!(err.code, ErrorCode::TooLarge);
    let mut conn = target.client().await.into_connection();
    conn.write_message(&ClientMessage::Request {
        on_behalf_of: None,
        id: 1,
        op: Operation::BackupImport(ops::BackupImport { size: 100 }),
    })
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message::<ServerMessage>().await.unwrap(),
        Some(ServerMessage::Continue { id: 1 })
    ));
    conn.write_message(&ClientMessage::Data {
        id: 1,
        data: vec![0; 300],
        end: false,
    })
    .await
    .unwrap();
    match conn.read_message::<ServerMessage>().await.unwrap() {
        Some(ServerMessage::Error { id: Some(1), error }) => {
            assert_eq!(error.code, ErrorCode::Invalid, "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_nothing_left(&target, 0).await;

    // Cut off midway: the client goes away after half the bytes.
    let mut conn = target.client().await.into_connection();
    conn.write_message(&ClientMessage::Request {
        on_behalf_of: None,
        id: 1,
        op: Operation::BackupImport(ops::BackupImport {
            size: good.len() as u64,
        }),
    })
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message::<ServerMessage>().await.unwrap(),
        Some(ServerMessage::Continue { id: 1 })
    ));
    conn.write_message(&ClientMessage::Data {
        id: 1,
        data: good[..good.len() / 2].to_vec(),
        end: false,
    })
    .await
    .unwrap();
    berkut_testkit::wait_for("the half upload to be on disk", LONG, || {
        target
            .backup_files()
            .iter()
            .any(|f| f.ends_with(".partial"))
            .then_some(())
    });
    drop(conn);
    berkut_testkit::wait_for("the half upload to be removed", LONG, || {
        (!target
            .backup_files()
            .iter()
            .any(|f| f.ends_with(".partial")))
        .then_some(())
    });
    assert_nothing_left(&target, 0).await;

    // And the good archive still imports.
    assert!(matches!(
        import(&target, &good).await,
        Ok(Reply::Backup { .. })
    ));
    assert_nothing_left(&target, 1).await;
}

/// Asks for an import of `size` bytes on a connection of its own and
/// returns the connection, the request sent.
async fn begin_import(
    daemon: &Daemon,
    size: u64,
) -> berkut_proto::wire::Connection<tokio::net::UnixStream> {
    let mut conn = daemon.client().await.into_connection();
    conn.write_message(&ClientMessage::Request {
        on_behalf_of: None,
        id: 1,
        op: Operation::BackupImport(ops::BackupImport { size }),
    })
    .await
    .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_a_few_slots_and_are_cut_off() {
    use berkut_daemon::handlers::backup_import::IMPORT_SLOTS;
    let pg = small_cluster();
    let daemon = daemon_for(&pg)
        .env("BERKUT_IDLE_TIMEOUT_SECONDS", "6")
        .start();
    // Uploads begun and never sent: each holds a slot (and the threads
    // that check what arrives).
    let mut stalled = Vec::new();
    let mut first = None;
    for _ in 0..IMPORT_SLOTS {
        let mut conn = begin_import(&daemon, 1000).await;
        assert!(matches!(
            conn.read_message::<ServerMessage>().await.unwrap(),
            Some(ServerMessage::Continue { id: 1 })
        ));
        first.get_or_insert_with(std::time::Instant::now);
        stalled.push(conn);
    }
    let first = first.unwrap();
    // One more waits for a slot: no `continue` while they hold them (two
    // seconds, well inside the six the first one may stall).
    let mut waiting = begin_import(&daemon, 1000).await;
    let early = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        waiting.read_message::<ServerMessage>(),
    )
    .await;
    assert!(early.is_err(), "a fifth import went ahead: {early:?}");
    // One more, waiting too, whose client sends a large frame before its
    // `continue`: the upload is not open, the frame is refused.
    let refusal = large_frame_refusal(begin_import(&daemon, 1000).await).await;
    assert_eq!(refusal.code, ErrorCode::TooLarge, "{refusal:?}");
    // The daemon answers everything else meanwhile.
    status(&mut daemon.client().await).await;
    // Each stalled upload is cut off after the idle timeout, in words.
    for conn in &mut stalled {
        match conn.read_message::<ServerMessage>().await.unwrap() {
            Some(ServerMessage::Error { id: Some(1), error }) => {
                assert_eq!(error.code, ErrorCode::Invalid, "{error:?}");
                assert!(
                    error.message.contains("sent nothing for 6 s"),
                    "{}",
                    error.message
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        first.elapsed() >= std::time::Duration::from_secs(6),
        "cut off after {:?}",
        first.elapsed()
    );
    // Then the one waiting goes ahead.
    assert!(matches!(
        waiting.read_message::<ServerMessage>().await.unwrap(),
        Some(ServerMessage::Continue { id: 1 })
    ));
    drop(waiting);
    berkut_testkit::wait_for("the quarantine to empty", LONG, || {
        daemon.backup_files().is_empty().then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_refused_before_its_continue_opens_no_way_for_large_frames() {
    let pg = small_cluster();
    let daemon = daemon_for(&pg).start();
    let mut conn = begin_import(&daemon, u64::MAX).await;
    match conn.read_message::<ServerMessage>().await.unwrap() {
        Some(ServerMessage::Error { id: Some(1), error }) => {
            assert_eq!(error.code, ErrorCode::TooLarge, "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    let refusal = large_frame_refusal(conn).await;
    assert_eq!(refusal.code, ErrorCode::TooLarge, "{refusal:?}");
}
