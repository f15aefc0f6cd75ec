//! One remote's storage, through `opendal` (services `s3` and `fs` only,
//! with its retry and timeout layers): upload an archive as it is, stat,
//! list, read a range, download, delete. Object keys are made here and only
//! here, from a `BackupId` under the validated prefix, so nothing a bucket
//! or a client says can name a key elsewhere. Errors become `RemoteError`,
//! whose words never carry a credential or the server's raw reply.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berkut_proto::ids::BackupId;
use futures::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::checksum::Composite;
use super::s3_calls::{self, S3Calls};
use crate::config::remote::{RemoteConfig, RemoteKind};

/// Bytes per multipart part: the least S3 takes (5 MiB). With two parts in
/// flight the upload's memory does not grow with the archive's size
/// (measured at 256 MiB, docs/PERFORMANCE.md: 8 MiB parts took 58 MiB above
/// the daemon's RSS, past the 64 MiB limit; 5 MiB parts peak at 51 MiB in
/// all, at 0.85x boto3's throughput; three in flight took 8 MiB more for no
/// clear gain).
const PART_BYTES: usize = 5 << 20;
const PARTS_IN_FLIGHT: usize = 2;
/// How much of the file one read takes: a whole part, so each part
/// reaches opendal as one contiguous buffer that goes to the request as
/// it is. Smaller reads made every part a chain of pieces that was copied
/// into one buffer per part in flight (measured: 77 MiB peak RSS and 0.76x
/// boto3's throughput with 1 MiB reads, docs/PERFORMANCE.md).
const READ_BYTES: usize = PART_BYTES;
/// S3 takes at most 10 000 parts per upload; archives too large for that
/// many parts of `PART_BYTES` get larger parts (`part_bytes`).
const MAX_PARTS: u64 = 9_000;

/// The part size for an archive of `size` bytes: `PART_BYTES`, or larger
/// (whole MiB) when the archive would need more than `MAX_PARTS` parts.
/// Memory then grows with the part: about 6 parts' worth at the peak.
fn part_bytes(size: u64) -> usize {
    const MIB: u64 = 1 << 20;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    usize::try_from(needed.max(PART_BYTES as u64)).unwrap_or(usize::MAX)
}
/// The most objects `list` looks at, so a bucket cannot fill memory.
pub const MAX_LISTED: usize = 100_000;
/// The longest one I/O call (a part's upload, a read) may take.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// Where the `fs` kind writes a file before renaming it into place, so a
/// half-written copy never carries an archive's name.
const FS_PARTIAL_DIR: &str = ".partial";

/// What went wrong with a remote, in words safe for `status`, logs and
/// clients.
#[derive(Clone, Debug, thiserror::Error)]
#[error("remote {remote}: {words}")]
pub struct RemoteError {
    pub remote: String,
    pub kind: Failure,
    pub words: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The object (or bucket) is not there.
    NotFound,
    /// What the remote holds is not what it should be (size, content).
    Mismatch,
    /// The daemon is stopping.
    Cancelled,
    /// Credentials, network, server: worth retrying later.
    Other,
}

impl RemoteError {
    pub fn new(remote: &str, kind: Failure, words: impl Into<String>) -> RemoteError {
        RemoteError {
            remote: remote.to_owned(),
            kind,
            words: words.into(),
        }
    }
}

/// Turns an opendal error into safe words. The raw text can quote the
/// server's reply and the endpoint; the words say what an operator should
/// check, and only the error's class decides them.
fn describe(remote: &str, e: &opendal::Error) -> RemoteError {
    let raw = format!("{e:?}");
    let (kind, words) = match e.kind() {
        // opendal files a missing bucket under several kinds.
        _ if raw.contains("NoSuchBucket") => (
            Failure::Other,
            "the bucket does not exist (check bucket and endpoint)",
        ),
        ErrorKind::NotFound => (Failure::NotFound, "the object is not in the remote"),
        ErrorKind::PermissionDenied => (
            Failure::Other,
            "access denied: check access_key_id and the secret access key file",
        ),
        ErrorKind::ConfigInvalid => (Failure::Other, "the remote's configuration is not usable"),
        ErrorKind::RateLimited => (Failure::Other, "the server asks to slow down"),
        _ if raw.contains("InvalidAccessKeyId") || raw.contains("SignatureDoesNotMatch") => (
            Failure::Other,
            "the server refused the credentials: check access_key_id and the secret access key \
             file",
        ),
        _ if raw.contains("timeout") || raw.contains("Timeout") => {
            (Failure::Other, "the server did not answer in time")
        }
        _ if raw.contains("error sending request")
            || raw.contains("onnect")
            || raw.contains("dns") =>
        {
            (
                Failure::Other,
                "the endpoint cannot be reached (network, address or port)",
            )
        }
        _ => (Failure::Other, "the server or the storage failed"),
    };
    tracing::debug!(remote, error_kind = %e.kind(), "remote storage error");
    RemoteError::new(remote, kind, words)
}

/// An `fs` remote's directory must exist already and be a directory, not
/// a link: a removable disk or a share that is not mounted leaves its
/// mount point empty, and a copy written there would land on the
/// machine's own disk, hidden again once the disk is back.
fn check_fs_path(remote: &str, path: &Path) -> Result<(), RemoteError> {
    let not_usable = |why: &str| {
        RemoteError::new(
            remote,
            Failure::Other,
            format!("the directory {} {why}", path.display()),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => Err(not_usable(
            "is a symbolic link; name the directory it points to",
        )),
        Ok(_) => Err(not_usable("is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_usable(
            "does not exist: is its disk or share mounted? (berkutd never creates it)",
        )),
        Err(e) => Err(not_usable(&format!("cannot be read: {}", e.kind()))),
    }
}

fn io_failure(remote: &str, what: &str, e: &std::io::Error) -> RemoteError {
    RemoteError::new(
        remote,
        Failure::Other,
        format!("cannot {what}: {}", e.kind()),
    )
}

/// A remote's storage, ready to use.
#[derive(Clone)]
pub struct Storage {
    name: String,
    op: Operator,
    /// The calls opendal lacks, for the `s3` kind.
    calls: Option<Arc<S3Calls>>,
}

impl Storage {
    /// Builds the operator; no request is made yet.
    pub fn open(remote: &RemoteConfig) -> Result<Storage, RemoteError> {
        let fail = |e: opendal::Error| describe(&remote.name, &e);
        let op = match &remote.kind {
            RemoteKind::S3 {
                endpoint,
                region,
                bucket,
                path_style,
                access_key_id,
                secret_access_key,
                ..
            } => {
                let mut builder = opendal::services::S3::default()
                    .root(&format!("/{}", remote.prefix))
                    .endpoint(endpoint)
                    .region(region)
                    .bucket(bucket)
                    .access_key_id(access_key_id)
                    .secret_access_key(secret_access_key.expose())
                    // Only what the configuration says: no credentials from
                    // the environment, files or an instance's metadata.
                    .disable_config_load()
                    .disable_ec2_metadata()
                    // Each part carries its CRC32C, which the server checks
                    // on receipt, and the object keeps their composite.
                    .checksum_algorithm("crc32c");
                if !path_style {
                    builder = builder.enable_virtual_host_style();
                }
                Operator::new(builder).map_err(fail)?.finish()
            }
            RemoteKind::Fs { path } => {
                check_fs_path(&remote.name, path)?;
                let root = path.join(&remote.prefix);
                let builder = opendal::services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&root.join(FS_PARTIAL_DIR).to_string_lossy());
                Operator::new(builder).map_err(fail)?.finish()
            }
        };
        let op = op
            .layer(
                RetryLayer::new()
                    .with_max_times(3)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    // The default interceptor logs the raw error (URLs,
                    // headers, a server's reply): only its class here.
                    .with_notify(|event: opendal::layers::RetryEvent<'_>| {
                        tracing::debug!(
                            error_kind = %event.err.kind(),
                            attempt = event.attempt,
                            "remote storage call retried"
                        );
                    }),
            )
            .layer(
                // An I/O call moves a whole part (8 MiB): five minutes is
                // 0.25 Mbit/s, so a slow uplink is slow, not failing.
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(IO_TIMEOUT),
            );
        Ok(Storage {
            name: remote.name.clone(),
            op,
            calls: S3Calls::open(remote)?.map(Arc::new),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&self, e: opendal::Error) -> RemoteError {
        describe(&self.name, &e)
    }

    /// The archive's key under the prefix: its id and `.bscc`, nothing a
    /// client or the bucket chose.
    fn key(id: &BackupId) -> String {
        id.file_name()
    }

    /// Whether the remote answers: a listing of at most one key.
    pub async fn check(&self) -> Result<(), RemoteError> {
        let mut lister = self.op.lister("").await.map_err(|e| self.fail(e))?;
        lister.try_next().await.map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Uploads the sealed archive at `path` as it is (a multipart upload
    /// when larger than a part), then checks that the stored object has
    /// `size` bytes. A failed or cancelled upload is aborted, so no partial
    /// object ever carries the archive's key.
    pub async fn upload(
        &self,
        id: &BackupId,
        path: &Path,
        size: u64,
        cancel: &CancellationToken,
    ) -> Result<(), RemoteError> {
        let key = Self::key(id);
        let part = part_bytes(size);
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_failure(&self.name, "open the local archive", &e))?;
        let mut writer = self
            .op
            .writer_with(&key)
            .chunk(part)
            .concurrent(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| self.fail(e))?;
        let mut crc = Composite::new(part);
        let sent = async {
            let mut sent = 0u64;
            loop {
                let mut buf = Vec::with_capacity(part);
                let n = (&mut file)
                    .take(part as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| io_failure(&self.name, "read the local archive", &e))?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                crc.update(&buf);
                tokio::select! {
                    r = writer.write(buf) => r.map_err(|e| self.fail(e))?,
                    () = cancel.cancelled() => {
                        return Err(RemoteError::new(&self.name, Failure::Cancelled, "the daemon is stopping"));
                    }
                }
            }
            if sent != size {
                return Err(RemoteError::new(
                    &self.name,
                    Failure::Mismatch,
                    format!("the local archive has {sent} bytes, the catalogue says {size}"),
                ));
            }
            tokio::select! {
                r = writer.close() => r.map_err(|e| self.fail(e)),
                () = cancel.cancelled() => Err(RemoteError::new(&self.name, Failure::Cancelled, "the daemon is stopping")),
            }
        }
        .await;
        if let Err(e) = sent {
            // Aborting drops the parts already stored; if even that fails
            // the server's own expiry (or the stale-upload clean-up) has
            // them, and no object exists under the key either way.
            if let Err(abort) = writer.abort().await {
                tracing::warn!(remote = %self.name, backup = %id, error = %self.fail(abort), "could not abort an unfinished upload");
            }
            return Err(e);
        }
        match self.size_of(id).await? {
            Some(stored) if stored == size => self.check_crc(id, crc.finish()).await,
            Some(stored) => {
                // Never leave an object that looks complete and is not.
                let _ = self.op.delete(&key).await;
                Err(RemoteError::new(
                    &self.name,
                    Failure::Mismatch,
                    format!("the stored object has {stored} bytes, the archive {size}"),
                ))
            }
            None => Err(RemoteError::new(
                &self.name,
                Failure::Mismatch,
                "the object is not there after its upload",
            )),
        }
    }

    /// Compares the checksum the server keeps for the copy with the one
    /// computed while reading the archive. A server that keeps none (the
    /// `fs` kind, an S3 server without additional checksums) has had its
    /// parts' checksums sent all the same; the size is its check.
    async fn check_crc(&self, id: &BackupId, expected: String) -> Result<(), RemoteError> {
        let Some(calls) = &self.calls else {
            return Ok(());
        };
        match calls.stored_crc32c(&Self::key(id)).await? {
            None => Ok(()),
            Some(stored) if super::checksum::same(&stored, &expected) => {
                tracing::debug!(remote = %self.name, backup = %id, crc32c = %stored, "the copy's checksum matches");
                Ok(())
            }
            Some(stored) => {
                let _ = self.op.delete(&Self::key(id)).await;
                Err(RemoteError::new(
                    &self.name,
                    Failure::Mismatch,
                    format!(
                        "the stored object's CRC32C is {stored}, the archive's {expected}; the copy \
                         was deleted"
                    ),
                ))
            }
        }
    }

    /// The stored object's size, or `None` when there is none.
    pub async fn size_of(&self, id: &BackupId) -> Result<Option<u64>, RemoteError> {
        match self.op.stat(&Self::key(id)).await {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && !format!("{e:?}").contains("NoSuchBucket") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The archives under the prefix: keys that are a backup id and
    /// `.bscc`, with their sizes. Anything else there is skipped.
    pub async fn list(&self) -> Result<Vec<(BackupId, u64)>, RemoteError> {
        let mut lister = self.op.lister("").await.map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        let mut seen = 0usize;
        while let Some(entry) = lister.try_next().await.map_err(|e| self.fail(e))? {
            seen += 1;
            if seen > MAX_LISTED {
                return Err(RemoteError::new(
                    &self.name,
                    Failure::Other,
                    format!("more than {MAX_LISTED} objects under the prefix"),
                ));
            }
            let Some(id) = id_of_key(entry.name()) else {
                continue;
            };
            let size = match entry.metadata().content_length() {
                0 => self.size_of(&id).await?.unwrap_or(0),
                n => n,
            };
            out.push((id, size));
        }
        out.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(out)
    }

    /// The first `len` bytes of an archive (its header), by a ranged read.
    pub async fn head_bytes(&self, id: &BackupId, len: u64) -> Result<Vec<u8>, RemoteError> {
        // Streamed and cut at `len`: a server (or a proxy) that ignores the
        // range and sends the whole object costs one buffer, not the
        // object's size in memory.
        let reader = self
            .op
            .reader_with(&Self::key(id))
            .await
            .map_err(|e| self.fail(e))?;
        let mut stream = reader
            .into_bytes_stream(0..len)
            .await
            .map_err(|e| self.fail(e))?;
        let want = usize::try_from(len).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(want.min(READ_BYTES));
        while out.len() < want {
            let Some(bytes) = stream
                .try_next()
                .await
                .map_err(|e| io_failure(&self.name, "read the object's header", &e))?
            else {
                break;
            };
            let take = bytes.len().min(want - out.len());
            out.extend_from_slice(&bytes[..take]);
        }
        Ok(out)
    }

    /// Streams the object into `file`, refusing more than `max` bytes.
    /// Returns the bytes written.
    pub async fn download(
        &self,
        id: &BackupId,
        file: &mut tokio::fs::File,
        max: u64,
    ) -> Result<u64, RemoteError> {
        let reader = self
            .op
            .reader_with(&Self::key(id))
            .chunk(PART_BYTES)
            .await
            .map_err(|e| self.fail(e))?;
        let mut stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.fail(e))?;
        let mut got = 0u64;
        while let Some(bytes) = stream
            .try_next()
            .await
            .map_err(|e| io_failure(&self.name, "download the object", &e))?
        {
            got += bytes.len() as u64;
            if got > max {
                return Err(RemoteError::new(
                    &self.name,
                    Failure::Mismatch,
                    format!("the object is larger than {max} bytes"),
                ));
            }
            file.write_all(&bytes)
                .await
                .map_err(|e| io_failure(&self.name, "write the download", &e))?;
        }
        Ok(got)
    }

    /// Aborts the unfinished multipart uploads under the prefix begun
    /// `s3_calls::STALE_AFTER` or longer before `now`, except those whose
    /// backup `busy` says is being sent now. Returns how many it aborted.
    pub async fn clean_stale_uploads(
        &self,
        now: time::OffsetDateTime,
        busy: impl Fn(&BackupId) -> bool,
    ) -> Result<usize, RemoteError> {
        let Some(mp) = &self.calls else {
            return Ok(0);
        };
        let uploads = mp.list().await?;
        let prefix = mp.prefix();
        let stale = s3_calls::stale(&uploads, now, s3_calls::STALE_AFTER, |key| {
            key.strip_prefix(prefix)
                .and_then(id_of_key)
                .is_some_and(|id| busy(&id))
        });
        let mut aborted = 0;
        for upload in stale {
            mp.abort(upload).await?;
            tracing::info!(remote = %self.name, key = %upload.key, "aborted a stale multipart upload");
            aborted += 1;
        }
        Ok(aborted)
    }

    pub async fn delete(&self, id: &BackupId) -> Result<(), RemoteError> {
        self.op
            .delete(&Self::key(id))
            .await
            .map_err(|e| self.fail(e))
    }
}

/// The backup id an object's name stands for: `<id>.bscc` exactly, with
/// nothing before it (no sub-directory) and an id that parses.
pub fn id_of_key(name: &str) -> Option<BackupId> {
    name.strip_suffix(".bscc")
        .filter(|stem| !stem.contains('/'))
        .and_then(|stem| stem.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_when_an_archive_needs_more_than_the_part_limit() {
        assert_eq!(part_bytes(0), PART_BYTES);
        assert_eq!(part_bytes(40 << 30), PART_BYTES);
        let huge = 200u64 << 30;
        let part = part_bytes(huge) as u64;
        assert!(part > PART_BYTES as u64 && part % (1 << 20) == 0);
        assert!(huge.div_ceil(part) <= MAX_PARTS, "{part}");
        assert!(
            huge.div_ceil(part - (1 << 20)) > MAX_PARTS,
            "the least whole MiB"
        );
    }

    #[test]
    fn an_fs_remote_needs_its_directory_to_exist_and_not_be_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = dir.path().join("disk");
        std::fs::create_dir(&mounted).unwrap();
        assert!(check_fs_path("usb", &mounted).is_ok());
        let unmounted = dir.path().join("not-mounted");
        let e = check_fs_path("usb", &unmounted).unwrap_err();
        assert!(e.words.contains("is its disk or share mounted"), "{e}");
        assert!(!unmounted.exists(), "never created");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&mounted, &link).unwrap();
        let e = check_fs_path("usb", &link).unwrap_err();
        assert!(e.words.contains("symbolic link"), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = check_fs_path("usb", &file).unwrap_err();
        assert!(e.words.contains("not a directory"), "{e}");
    }

    #[test]
    fn only_archive_names_under_the_prefix_are_backups() {
        assert!(id_of_key("20261120T020000Z-0badc0de.bscc").is_some());
        for other in [
            "20261120T020000Z-0badc0de",
            "sub/20261120T020000Z-0badc0de.bscc",
            "../20261120T020000Z-0badc0de.bscc",
            "notes.bscc",
            ".partial/",
        ] {
            assert!(id_of_key(other).is_none(), "{other}");
        }
    }
}
