//! What an upload leaves in the bucket: stale multipart uploads under the
//! remote's prefix are aborted (at start and with each retention pass),
//! uploads elsewhere in the bucket are not touched.

use berkut_proto::manifest::Scope;
use berkut_proto::wire::CopyState;
use berkut_testkit::{temp_dir, wait_for, S3Server};

use crate::helpers::*;
use crate::remote_copies::{daemon_with_remotes, offsite, s3_remote, wait_copy};

const BUCKET: &str = "berkut";

/// A client died mid-upload under the prefix (moto dates every upload's
/// `Initiated` in 2010, so it is older than the 24 h the daemon waits);
/// another tool's unfinished upload lies outside the prefix. The daemon
/// aborts the first at start and leaves the second, and its own copies
/// still complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_multipart_uploads_under_the_prefix_are_aborted_at_start() {
    let pg = small_cluster();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let stale = "prod/20260101T000000Z-0badc0de.bscc";
    let elsewhere = "other-tool/big.bin";
    s3.leave_upload(BUCKET, stale);
    s3.leave_upload(BUCKET, "prod/notes.txt");
    s3.leave_upload(BUCKET, elsewhere);
    assert_eq!(s3.open_upload_keys(BUCKET).len(), 3);
    let secrets = temp_dir("secret-");
    let (_conf, builder) = daemon_with_remotes(&pg, &s3_remote(&s3, secrets.path()));
    let daemon = builder.start();
    wait_for("the stale uploads to be aborted", LONG, || {
        (s3.open_upload_keys(BUCKET) == [elsewhere]).then_some(())
    });
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    assert_eq!(s3.open_upload_keys(BUCKET), [elsewhere]);
    let log = daemon.log();
    assert!(log.contains("stale multipart uploads aborted"), "{log}");
}

/// An archive of several parts is sent with each part's CRC32C; the server
/// keeps their composite, which the daemon compared with its own before
/// calling the copy `copied`. The value is checked here with Python's
/// crc32c over the local archive, in the 5 MiB parts the daemon uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_copy_carries_the_checksum_of_its_parts() {
    let pg = small_cluster();
    // About 13 MiB even compressed: several parts.
    pg.psql(
        "app",
        "CREATE TABLE bulk AS SELECT g, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 400000) g;",
    )
    .unwrap();
    let (site, builder) = offsite(&pg);
    let s3 = &site.s3;
    let daemon = builder.env("BERKUT_LOG", "berkut_daemon=debug").start();
    let mut client = daemon.client().await;
    let made = backup_now(&mut client, Scope::Database).await;
    wait_copy(&daemon, &made.id, "offsite", "the copy", |c| {
        c.state == CopyState::Copied
    })
    .await;
    let archive = daemon.archive_path(made.id.as_str());
    let size = std::fs::metadata(&archive).unwrap().len();
    const PART: u64 = 5 << 20;
    assert!(size > PART, "the archive has {size} bytes: one part only");
    let key = format!("prod/{}.bscc", made.id);
    let stored = s3
        .stored_crc32c(BUCKET, &key)
        .expect("the server keeps a CRC32C");
    // moto leaves the `-N` off; AWS keeps it.
    let expected = s3.composite_crc32c(&archive, PART as usize);
    let parts = size.div_ceil(PART);
    assert!(expected.ends_with(&format!("-{parts}")), "{expected}");
    assert_eq!(stored.split('-').next(), expected.split('-').next());
    let log = daemon.log();
    assert!(log.contains("the copy's checksum matches"), "{log}");
}
