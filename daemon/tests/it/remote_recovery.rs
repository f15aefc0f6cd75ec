//! Recovery from a remote: a bare machine (a new daemon, an empty state
//! directory, the same key and remote) lists what the bucket holds, fetches
//! an archive and restores it, with the README's berkutctl commands; an
//! object altered, truncated or replaced is refused by fetch and verify,
//! leaving nothing; a backup whose local archive was deleted is fetched by
//! its restore; copies are deleted by name or everywhere.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::{BackupStatus, CopyState, RemoteArchive, RemoteVerdict};
use berkut_testkit::{fingerprint, temp_dir, PgCluster, S3Server};

use crate::helpers::*;
use crate::remote_copies::{daemon_with_remotes, offsite, s3_remote, show, wait_copy};

const BUCKET: &str = "berkut";

fn json_lines<T: serde::de::DeserializeOwned>(run: &Run) -> T {
    assert_eq!(run.code, 0, "berkutctl failed: {}", run.stderr);
    last_json(run)
}

fn last_json<T: serde::de::DeserializeOwned>(run: &Run) -> T {
    serde_json::from_str(run.stdout.lines().last().expect("a line")).expect("JSON")
}

/// The "done when": a backup made on machine A is restored on a
/// bare machine B from the bucket alone, with the README's commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_machine_restores_a_backup_from_the_bucket_alone() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let key = berkut_proto::archive::MasterKey::generate();
    let source = rich_cluster();
    let secrets_a = temp_dir("secret-a-");
    let (_conf_a, builder) = daemon_with_remotes(&source, &s3_remote(&s3, secrets_a.path()));
    let a = builder.key(key.clone()).start();
    let made = backup_now(&mut a.client().await, Scope::Full).await;
    let original = fingerprint(&source, "app").unwrap();
    wait_copy(&a, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    drop(a); // machine A is gone

    let fresh = PgCluster::start().unwrap();
    let secrets_b = temp_dir("secret-b-");
    let (_conf_b, builder) = daemon_with_remotes(&fresh, &s3_remote(&s3, secrets_b.path()));
    // The import limit is for archives handed in by clients; it does not
    // bound the recovery of the daemon's own archives.
    let b = builder
        .key(key.clone())
        .env("BERKUT_BACKUP_UPLOAD_MAX_BYTES", "1024")
        .start();
    assert!(
        list(
            b.client()
                .await
                .call(berkut_proto::wire::Operation::list_first_page())
                .await
        )
        .is_empty(),
        "machine B starts empty"
    );

    let listed: Vec<RemoteArchive> = json_lines(&ctl(&b, &["remote", "list", "offsite", "--json"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, made.id);
    assert!(!listed[0].known);
    assert_eq!(listed[0].size_bytes, made.size_bytes.unwrap());
    assert_eq!(
        listed[0].key_id.as_deref(),
        Some(key.key_id().to_string().as_str())
    );
    assert_eq!(
        listed[0].created_at,
        made.created_at.replace_nanosecond(0).unwrap()
    );

    let fetched = ctl(&b, &["remote", "fetch", "offsite", made.id.as_str()]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    let record = show(&mut b.client().await, &made.id).await;
    assert_eq!(record.origin, berkut_proto::manifest::Origin::Remote);
    assert_eq!(record.status, BackupStatus::Succeeded);
    assert_eq!(record.sha256, made.sha256);
    assert_eq!(record.copies.len(), 1);
    assert_eq!(record.copies[0].state, CopyState::Copied);

    let restore = ctl(&b, &["restore", made.id.as_str(), "--wait"]);
    assert_eq!(restore.code, 0, "{}\n{}", restore.stdout, restore.stderr);
    assert_eq!(
        fingerprint(&fresh, "app").unwrap().differences(&original),
        Vec::<String>::new(),
        "the restore on machine B is not faithful"
    );
}

/// Overwrites the copy of `id` in the bucket with `bytes`.
fn replace_object(s3: &S3Server, key: &str, bytes: &[u8]) {
    let dir = temp_dir("tamper-");
    let path = dir.path().join("object");
    std::fs::write(&path, bytes).unwrap();
    s3.put(BUCKET, key, &path);
}

fn partials(daemon: &berkut_testkit::Daemon) -> Vec<String> {
    std::fs::read_dir(&daemon.backup_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

/// An object altered, truncated, or replaced by another backup's archive:
/// `remote verify` reports it, `remote fetch` refuses it, and neither
/// leaves a file behind or a record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_truncated_or_swapped_objects_are_refused_and_leave_nothing() {
    let pg = small_cluster();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let a = builder.start();
    let mut client = a.client().await;
    let first = backup_now(&mut client, Scope::Database).await;
    let second = backup_now(&mut client, Scope::Database).await;
    for id in [&first.id, &second.id] {
        wait_copy(&a, id, "offsite", "the copy", |c| {
            c.state == CopyState::Copied
        })
        .await;
    }
    let all = ctl(&a, &["remote", "verify", "offsite", "--json"]);
    let verdicts: Vec<RemoteVerdict> = json_lines(&all);
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().all(|v| v.ok), "{verdicts:?}");

    let key = format!("prod/{}.bscc", first.id);
    let original = std::fs::read(a.archive_path(first.id.as_str())).unwrap();
    let mut altered = original.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x40;
    let truncated = original[..original.len() - 100].to_vec();
    let other = std::fs::read(a.archive_path(second.id.as_str())).unwrap();
    // Forget the backup locally so fetch has something to do.
    let delete = ctl(&a, &["backup", "delete", first.id.as_str()]);
    assert_eq!(delete.code, 0, "{}", delete.stderr);
    assert!(show(&mut client, &first.id).await.remote_only);

    for (what, bytes) in [
        ("altered", &altered),
        ("truncated", &truncated),
        ("swapped", &other),
    ] {
        replace_object(s3, &key, bytes);
        let verify = ctl(
            &a,
            &["remote", "verify", "offsite", first.id.as_str(), "--json"],
        );
        assert_eq!(verify.code, 1, "{what}: a refused copy fails the command");
        let verdicts: Vec<RemoteVerdict> = last_json(&verify);
        assert!(!verdicts[0].ok, "{what}: {verdicts:?}");
        let fetch = ctl(&a, &["remote", "fetch", "offsite", first.id.as_str()]);
        assert_ne!(fetch.code, 0, "{what} was fetched");
        assert!(fetch.stderr.contains("invalid"), "{what}: {}", fetch.stderr);
        assert!(
            !a.archive_path(first.id.as_str()).exists(),
            "{what} entered the store"
        );
        assert_eq!(
            partials(&a),
            Vec::<String>::new(),
            "{what} left a partial file"
        );
        assert!(show(&mut client, &first.id).await.remote_only, "{what}");
    }
    // The genuine copy back: fetch works.
    replace_object(s3, &key, &original);
    let fetch = ctl(&a, &["remote", "fetch", "offsite", first.id.as_str()]);
    assert_eq!(fetch.code, 0, "{}", fetch.stderr);
    assert!(!show(&mut client, &first.id).await.remote_only);
}

/// `backup delete` keeps a record whose copy a remote holds; `restore`
/// of it fetches the copy first; `--remote` and `--everywhere` delete
/// copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_fetches_a_deleted_archive_and_copies_are_deleted_by_name() {
    let pg = small_cluster();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let a = builder.start();
    let mut client = a.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    wait_copy(&a, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let delete = ctl(&a, &["backup", "delete", made.id.as_str()]);
    assert_eq!(delete.code, 0, "{}", delete.stderr);
    assert!(!a.archive_path(made.id.as_str()).exists());
    assert!(show(&mut client, &made.id).await.remote_only);
    // Not stored here any more, and not missing either: the metrics say so.
    let metrics = ctl(&a, &["metrics"]).ok().stdout;
    assert!(metrics.contains("\nberkut_backups_stored 0\n"), "{metrics}");
    assert!(
        metrics.contains("\nberkut_backups_missing 0\n"),
        "{metrics}"
    );

    let restore = ctl(&a, &["restore", made.id.as_str(), "--dry-run", "--wait"]);
    assert_eq!(restore.code, 0, "{}\n{}", restore.stdout, restore.stderr);
    assert!(
        a.archive_path(made.id.as_str()).exists(),
        "the restore fetched the copy"
    );
    let record = show(&mut client, &made.id).await;
    assert!(!record.remote_only);
    assert_eq!(record.status, BackupStatus::Succeeded);

    let gone = ctl(
        &a,
        &["backup", "delete", made.id.as_str(), "--remote", "offsite"],
    );
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    assert_eq!(s3.keys(BUCKET), Vec::<String>::new());
    let record = show(&mut client, &made.id).await;
    assert!(record.copies.is_empty(), "{:?}", record.copies);
    assert!(
        a.archive_path(made.id.as_str()).exists(),
        "the local archive stays"
    );

    let second = backup_now(&mut client, Scope::Database).await;
    wait_copy(&a, &second.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let everywhere = ctl(
        &a,
        &["backup", "delete", second.id.as_str(), "--everywhere"],
    );
    assert_eq!(everywhere.code, 0, "{}", everywhere.stderr);
    assert_eq!(s3.keys(BUCKET), Vec::<String>::new());
    assert!(!a.archive_path(second.id.as_str()).exists());
}

/// A remote-only backup whose remote has been taken out of the
/// configuration can still be deleted: nothing can reach its copy, so the
/// record is forgotten (with a log line) and the object stays in the
/// bucket. While the remote is configured, the delete is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_only_backup_of_a_removed_remote_can_be_forgotten() {
    let pg = small_cluster();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let mut daemon = builder.start();
    let made = backup_now(&mut daemon.client().await, Scope::Database).await;
    wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let delete = ctl(&daemon, &["backup", "delete", made.id.as_str()]);
    assert_eq!(delete.code, 0, "{}", delete.stderr);
    let again = ctl(&daemon, &["backup", "delete", made.id.as_str()]);
    assert_ne!(again.code, 0, "refused while the remote is configured");
    assert!(
        again.stderr.contains("only remote copies remain"),
        "{}",
        again.stderr
    );

    // The remote leaves the configuration.
    std::fs::write(site.conf.path().join("berkutd.toml"), "").unwrap();
    daemon.stop();
    daemon.restart();
    let gone = ctl(&daemon, &["backup", "delete", made.id.as_str()]);
    assert_eq!(gone.code, 0, "{}", gone.stderr);
    let show = ctl(&daemon, &["backup", "show", made.id.as_str()]);
    assert_ne!(show.code, 0, "the record is gone");
    assert!(daemon.log().contains("no longer configured was forgotten"));
    assert_eq!(s3.keys(BUCKET), vec![format!("prod/{}.bscc", made.id)]);
}
