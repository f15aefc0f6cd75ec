//! Off-site copies (`[[remote]]`): every succeeded backup is uploaded as it
//! is to each remote by the daemon's own queue, against a real S3 server
//! (moto_server) or a directory; failures are retried with backoff, survive
//! a restart, never leave a partial object and never show the secret.

use std::path::Path;

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, BackupRecord, Client, CopyRecord, CopyState, Operation};
use berkut_testkit::s3::SECRET_ACCESS_KEY;
use berkut_testkit::{
    temp_dir, wait_for, wait_for_async, Daemon, DaemonBuilder, PgCluster, S3Server,
};

use crate::helpers::*;

const BUCKET: &str = "berkut";

pub async fn show(client: &mut Client, id: &BackupId) -> BackupRecord {
    backup(
        client
            .call(Operation::BackupShow(ops::BackupShow { id: id.clone() }))
            .await,
    )
}

/// Waits until the backup's copy on `remote` satisfies `done` (a new
/// connection for each look).
pub async fn wait_copy(
    daemon: &Daemon,
    id: &BackupId,
    remote: &str,
    what: &str,
    done: impl Fn(&CopyRecord) -> bool,
) -> CopyRecord {
    let done = &done;
    wait_for_async(what, LONG, || async move {
        let mut client = daemon.client().await;
        show(&mut client, id)
            .await
            .copies
            .into_iter()
            .find(|c| c.remote == remote && done(c))
    })
    .await
}

/// A daemon for `pg` configured by `toml` (written in a directory of its
/// own, returned so it lives as long as the daemon), retrying after 1 s.
pub fn daemon_with_remotes(pg: &PgCluster, toml: &str) -> (tempfile::TempDir, DaemonBuilder) {
    let dir = temp_dir("remote-conf-");
    let config = dir.path().join("berkutd.toml");
    std::fs::write(&config, toml).unwrap();
    let builder = daemon_for(pg)
        .arg("--config")
        .arg(config.display().to_string())
        .env("BERKUT_REMOTE_RETRY_SECONDS", "1");
    (dir, builder)
}

/// A real S3 server with the bucket made, and what a daemon needs to
/// copy there as remote `offsite` (prefix `prod/`): kept together so they
/// live as long as the test.
pub struct Offsite {
    pub s3: S3Server,
    pub secrets: tempfile::TempDir,
    /// The directory of the daemon's configuration file, `berkutd.toml`.
    pub conf: tempfile::TempDir,
}

/// A daemon for `pg` with one S3 remote whose bucket exists.
pub fn offsite(pg: &PgCluster) -> (Offsite, DaemonBuilder) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let secrets = temp_dir("secret-");
    let (conf, builder) = daemon_with_remotes(pg, &s3_remote(&s3, secrets.path()));
    (Offsite { s3, secrets, conf }, builder)
}

pub fn s3_remote(s3: &S3Server, dir: &Path) -> String {
    s3.remote_toml("offsite", BUCKET, "prod/", dir)
}

fn same_bytes(a: &Path, b: &Path) {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a.len(), b.len(), "sizes differ");
    assert!(a == b, "contents differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_is_copied_to_s3_as_its_sealed_archive() {
    let pg = small_cluster();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let daemon = builder.start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    // The backup's own record already owes the copy.
    assert_eq!(made.copies.len(), 1, "{:?}", made.copies);
    assert_eq!(made.copies[0].remote, "offsite");
    let copy = wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert_eq!(copy.attempts, 1);
    assert!(copy.last_error.is_none());
    let key = format!("prod/{}.bscc", made.id);
    assert_eq!(s3.keys(BUCKET), vec![key.clone()]);
    let fetched = site.secrets.path().join("fetched.bscc");
    s3.get(BUCKET, &key, &fetched);
    same_bytes(&fetched, &daemon.archive_path(made.id.as_str()));
    assert_eq!(s3.open_uploads(BUCKET), 0);
    let log = daemon.log();
    assert!(log.contains("off-site copy done"), "{log}");
    assert!(
        !log.contains(SECRET_ACCESS_KEY),
        "the secret reached the log"
    );
    // The storage library's own lines (raw errors, URLs, replies) stay out.
    assert!(!log.contains("will retry"), "{log}");
    assert!(!log.contains("opendal"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fs_kind_copies_into_a_directory_without_leftovers() {
    let pg = small_cluster();
    let target = temp_dir("offsite-dir-");
    let toml = format!(
        "[[remote]]\nname = \"disk\"\nkind = \"fs\"\npath = \"{}\"\nprefix = \"site-a\"\n",
        target.path().display()
    );
    let (_conf, builder) = daemon_with_remotes(&pg, &toml);
    let daemon = builder.start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    wait_copy(&daemon, &made.id, "disk", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let copied = target.path().join(format!("site-a/{}.bscc", made.id));
    same_bytes(&copied, &daemon.archive_path(made.id.as_str()));
    let partial = target.path().join("site-a/.partial");
    let leftovers = std::fs::read_dir(&partial).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        leftovers,
        0,
        "a partial file was left in {}",
        partial.display()
    );
}

/// Wrong credentials, a missing bucket, an unreachable endpoint: the
/// backup succeeds locally, the copy fails with words naming the problem,
/// `last_error` and the log name the remote, and the secret appears
/// nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_fails_never_fails_the_backup_nor_shows_the_secret() {
    let pg = small_cluster();
    let secrets = temp_dir("secret-");
    let refusing = S3Server::with_auth();
    let empty = S3Server::start();
    let mut gone = S3Server::start();
    gone.stop();
    let toml = [
        refusing.remote_toml("refusing", BUCKET, "", secrets.path()),
        empty.remote_toml("no-bucket", BUCKET, "", secrets.path()),
        gone.remote_toml("gone", BUCKET, "", secrets.path()),
    ]
    .concat();
    let (_conf, builder) = daemon_with_remotes(&pg, &toml);
    let daemon = builder.start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    assert_eq!(made.status, berkut_proto::wire::BackupStatus::Succeeded);
    let failed = |c: &CopyRecord| c.state == CopyState::Failed && c.last_error.is_some();
    let refused = wait_copy(&daemon, &made.id, "refusing", "refused", failed).await;
    let words = refused.last_error.unwrap();
    assert!(
        words.contains("credentials") || words.contains("access denied"),
        "{words}"
    );
    let no_bucket = wait_copy(&daemon, &made.id, "no-bucket", "no bucket", failed).await;
    let words = no_bucket.last_error.unwrap();
    assert!(words.contains("bucket does not exist"), "{words}");
    let unreachable = wait_copy(&daemon, &made.id, "gone", "unreachable", failed).await;
    let words = unreachable.last_error.unwrap();
    assert!(words.contains("cannot be reached"), "{words}");
    // Retried with backoff: more attempts come.
    wait_copy(&daemon, &made.id, "gone", "a retry", |c| c.attempts >= 2).await;
    let log = daemon.log();
    for name in ["refusing", "no-bucket", "gone"] {
        assert!(
            log.contains(&format!("remote {name}:")),
            "{name} not named in:\n{log}"
        );
    }
    assert!(
        !log.contains(SECRET_ACCESS_KEY),
        "the secret reached the log"
    );
    // The storage library's own lines (raw errors, URLs, replies) stay out.
    assert!(!log.contains("will retry"), "{log}");
    assert!(!log.contains("opendal"), "{log}");
    let record = format!("{:?}", show(&mut client, &made.id).await);
    assert!(!record.contains(SECRET_ACCESS_KEY));
    // Once the bucket exists, the queue finishes that copy by itself.
    empty.create_bucket(BUCKET);
    wait_copy(&daemon, &made.id, "no-bucket", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert_eq!(empty.keys(BUCKET), vec![format!("{}.bscc", made.id)]);
}

/// The server dies while the archive is being uploaded and comes back
/// (empty, as a replaced server would): the copy is retried and completes,
/// one whole object, no open multipart upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_upload_gets_the_copy_when_it_is_back() {
    let pg = small_cluster();
    let (mut site, builder) = offsite(&pg);
    let s3 = &mut site.s3;
    let daemon = builder.start();
    let mut client = daemon.client().await;
    // Frozen, the server takes the connection and answers nothing: the
    // upload is under way when it dies.
    s3.pause();
    let made = backup_now(&mut client, Scope::Database).await;
    wait_copy(&daemon, &made.id, "offsite", "the upload", |c| {
        c.state == CopyState::Uploading
    })
    .await;
    s3.stop();
    wait_copy(&daemon, &made.id, "offsite", "the failure", |c| {
        c.state == CopyState::Failed
    })
    .await;
    s3.restart();
    s3.create_bucket(BUCKET);
    let copy = wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert!(copy.attempts >= 2, "{copy:?}");
    let key = format!("prod/{}.bscc", made.id);
    assert_eq!(s3.keys(BUCKET), vec![key.clone()]);
    let size = std::fs::metadata(daemon.archive_path(made.id.as_str()))
        .unwrap()
        .len();
    assert_eq!(s3.size(BUCKET, &key), size);
    assert_eq!(s3.open_uploads(BUCKET), 0);
}

/// The daemon is killed while it uploads: after the restart the copy
/// starts again and completes; one object, the record not duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_upload_finishes_the_copy_after_restart() {
    let pg = small_cluster();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let mut daemon = builder.start();
    let made = {
        let mut client = daemon.client().await;
        s3.pause();
        let made = backup_now(&mut client, Scope::Database).await;
        wait_copy(&daemon, &made.id, "offsite", "the upload", |c| {
            c.state == CopyState::Uploading
        })
        .await;
        made
    };
    daemon.kill();
    s3.resume();
    daemon.restart();
    let mut client = daemon.client().await;
    let copy = wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert_eq!(copy.attempts, 2, "{copy:?}");
    let record = show(&mut client, &made.id).await;
    assert_eq!(record.copies.len(), 1, "{:?}", record.copies);
    assert_eq!(s3.keys(BUCKET), vec![format!("prod/{}.bscc", made.id)]);
}

/// `status` flags the off-site RPO while the newest backup waits for its
/// copy longer than `offsite_rpo_seconds`, and clears it once copied;
/// `berkutctl status` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flags_the_off_site_rpo_until_the_newest_backup_is_copied() {
    let pg = small_cluster();
    let s3 = S3Server::start();
    let secrets = temp_dir("secret-");
    let (_conf, builder) = daemon_with_remotes(&pg, &s3_remote(&s3, secrets.path()));
    let daemon = builder.env("BERKUT_OFFSITE_RPO_SECONDS", "1").start();
    let mut client = daemon.client().await;
    let before = status(&mut client).await;
    assert_eq!(before.offsite_rpo_limit_seconds, Some(1));
    assert!(
        !before.offsite_rpo_breached,
        "no backup yet, nothing to copy"
    );
    // No bucket yet: the copy cannot be made.
    let made = backup_now(&mut client, Scope::Database).await;
    let breached = wait_for_async("the off-site RPO breach", LONG, || async {
        let mut client = daemon.client().await;
        Some(status(&mut client).await).filter(|s| s.offsite_rpo_breached)
    })
    .await;
    assert!(breached.offsite_uncopied_age_seconds.unwrap() >= 1);
    let shown = ctl(&daemon, &["status"]);
    assert!(
        shown.stdout.contains("off-site:  BREACHED"),
        "{}",
        shown.stdout
    );
    s3.create_bucket(BUCKET);
    wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let after = status(&mut client).await;
    assert!(!after.offsite_rpo_breached);
    assert_eq!(after.offsite_uncopied_age_seconds, None);
}

/// The value of the series `series` in the daemon's metrics (`berkutctl
/// metrics`), if shown.
fn metric(daemon: &Daemon, series: &str) -> Option<f64> {
    let text = ctl(daemon, &["metrics"]).ok().stdout;
    crate::metrics::promtool_accepts(&text);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A remote whose uploads keep failing for longer than the off-site RPO
/// sends `copy_failing` once for that run of failures, counts each failure
/// in `berkut_remote_copy_failures_total` and shows the lag; once the copy
/// is made the lag is 0 and nothing more is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_failing_past_the_offsite_rpo_is_notified_once_and_measured() {
    use berkut_testkit::{Answer, Receiver};
    let pg = small_cluster();
    let secrets = temp_dir("secret-");
    let receiver = Receiver::start(Answer::Ok);
    let hook_secret = secrets.path().join("webhook.secret");
    berkut_testkit::s3::write_secret(&hook_secret, "webhook-secret", 0o600);
    let no_bucket = S3Server::start();
    let toml = format!(
        "{}[[notify]]\nkind = \"webhook\"\nurl = \"{}\"\nsecret_file = \"{}\"\n",
        no_bucket.remote_toml("offsite", BUCKET, "", secrets.path()),
        receiver.url(),
        hook_secret.display()
    );
    let (_conf, builder) = daemon_with_remotes(&pg, &toml);
    let daemon = builder.env("BERKUT_OFFSITE_RPO_SECONDS", "1").start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;

    let events = wait_for("copy_failing", LONG, || {
        let events = receiver.events("copy_failing");
        (!events.is_empty()).then_some(events)
    });
    let event = events[0].json();
    assert_eq!(event["remote"], "offsite", "{event}");
    assert_eq!(event["backup_id"], made.id.as_str(), "{event}");
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.contains("bucket does not exist")),
        "{event}"
    );
    let failures = "berkut_remote_copy_failures_total{remote=\"offsite\"}";
    wait_for("two failures counted", LONG, || {
        metric(&daemon, failures).filter(|n| *n >= 2.0)
    });
    let lag = "berkut_remote_copy_lag_seconds{remote=\"offsite\"}";
    assert!(metric(&daemon, lag).is_some_and(|s| s >= 1.0));

    // The bucket appears: the copy is made, the lag drops to 0, and the
    // run of failures was told once.
    no_bucket.create_bucket(BUCKET);
    wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert_eq!(metric(&daemon, lag), Some(0.0));
    assert_eq!(receiver.events("copy_failing").len(), 1);
    assert!(!daemon.log().contains(SECRET_ACCESS_KEY));
}
