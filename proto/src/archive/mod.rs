//! The `.bscc` archive format: an authenticated header that carries a
//! per-archive data key wrapped by the operator's master key, followed by the
//! payload (the backup's parts and its manifest) sealed in fixed-size chunks
//! with ChaCha20-Poly1305 in the STREAM construction. `docs/FORMAT.md`
//! describes the bytes; this module is the reference implementation.
//!
//! Everything here is synchronous `std::io`, because the daemon drives it from
//! blocking threads and a second implementation should not need an async
//! runtime to read a backup. Memory use is bounded by the chunk size, never by
//! the size of a part.

mod codec;
mod header;
mod key;
mod payload;
mod readahead;
mod reader;
mod rewrap;
mod stream;
mod tail;
mod write_behind;
mod writer;

#[cfg(test)]
mod v2_tests;

use std::io;

pub use codec::{Codec, Compression, MAX_WINDOW_LOG, MAX_ZSTD_LEVEL};
pub use header::{DataKey, Header, HEADER_LEN};
pub use key::{InvalidKeyId, KeyError, KeyId, Keyring, MasterKey};
pub use readahead::{BackgroundHasher, HashingReadAhead};
pub use reader::{verify, verify_with, ArchiveReader, Depth, PartReader};
pub use rewrap::rewrap;
pub use write_behind::WriteBehind;
pub use writer::{ArchiveWriter, PartWriter};

/// The 8 bytes every `.bscc` file starts with. The first byte is non-ASCII and
/// the CR LF and SUB bytes catch transfers that mangle line endings, as in PNG.
pub const MAGIC: [u8; 8] = [0x89, b'B', b'S', b'C', b'C', 0x0D, 0x0A, 0x1A];

/// The format version this code writes. Version 2 adds a codec to every
/// part (so parts can be compressed) and the stored size to its trailer.
pub const FORMAT_VERSION: u16 = 2;

/// The oldest format version this code reads; every version from it to
/// [`FORMAT_VERSION`] stays readable.
pub const MIN_FORMAT_VERSION: u16 = 1;

/// Plaintext bytes per chunk that [`ArchiveWriter::new`] uses.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;

/// The smallest chunk size a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 4096;

/// The largest chunk size a reader accepts; it bounds the reader's buffer.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

/// Length of the Poly1305 tag that ends every chunk.
pub const TAG_LEN: usize = 16;

/// Why an archive could not be written or read.
///
/// Every message is safe to show to a client: none contains a file path or
/// key material. The variants are distinct so that a caller (and a test) can
/// tell a wrong key from a damaged file from a truncated one.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a .bscc archive (the magic bytes are wrong)")]
    NotAnArchive,
    #[error(
        "unsupported .bscc format version {0} (this build reads versions 1 and 2; \
         a newer Berkut wrote this archive)"
    )]
    UnsupportedVersion(u16),
    #[error("the archive uses flags this build does not know ({0:#06x})")]
    UnsupportedFlags(u16),
    #[error("the archive's chunk size {0} is outside the allowed range (4096 to 16777216 bytes)")]
    BadChunkSize(u32),
    #[error("the archive was encrypted with key {0}, which is not in the keyring")]
    UnknownKey(KeyId),
    #[error("the archive header failed authentication: wrong key or damaged header")]
    HeaderAuth,
    #[error(
        "chunk {index} of the archive failed authentication: the archive is damaged, \
         truncated inside a chunk, reordered, or mixed with another archive"
    )]
    ChunkAuth { index: u64 },
    #[error("the archive is truncated")]
    Truncated,
    #[error("the archive has unexpected bytes after its end")]
    TrailingData,
    #[error("the archive's contents are malformed: {0}")]
    Malformed(String),
    #[error("part {part:?} does not match its recorded size and sha256")]
    DigestMismatch { part: String },
    #[error("the manifest does not match the archive's parts: {0}")]
    ManifestMismatch(String),
    #[error("the archive's manifest is not valid: {0}")]
    ManifestInvalid(String),
    #[error("part {part:?} uses compression codec id {id}, which this build does not know (0 is none, 1 is zstd)")]
    UnknownCodec { part: String, id: u8 },
    #[error("part {part:?} does not decompress: {why}")]
    Decompress { part: String, why: String },
    #[error("compressing part {part:?} failed: {why}")]
    Compress { part: String, why: String },
    #[error("the archive is too large for the format (the chunk counter is exhausted)")]
    TooLarge,
    #[error("the archive API was used wrongly: {0}")]
    Usage(String),
    #[error("I/O error: {0}")]
    Io(io::Error),
}

impl ArchiveError {
    /// Recovers an `ArchiveError` that travelled through `std::io::Read` or
    /// `Write` inside an `io::Error`; any other `io::Error` becomes [`Io`].
    ///
    /// [`Io`]: ArchiveError::Io
    pub fn from_io(err: io::Error) -> ArchiveError {
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<ArchiveError>())
        {
            // The check above makes both steps succeed; the fallback only
            // keeps this free of panics.
            let kind = err.kind();
            match err
                .into_inner()
                .map(|inner| inner.downcast::<ArchiveError>())
            {
                Some(Ok(archive)) => *archive,
                Some(Err(other)) => ArchiveError::Io(io::Error::new(kind, other)),
                None => ArchiveError::Io(io::Error::from(kind)),
            }
        } else {
            ArchiveError::Io(err)
        }
    }

    pub(crate) fn malformed(what: &str) -> ArchiveError {
        ArchiveError::Malformed(what.to_owned())
    }
}

impl From<io::Error> for ArchiveError {
    fn from(err: io::Error) -> ArchiveError {
        ArchiveError::from_io(err)
    }
}

impl From<ArchiveError> for io::Error {
    /// Wraps an `ArchiveError` so that it can leave a `Read` or `Write`
    /// method; a plain I/O error is handed back as it was.
    fn from(err: ArchiveError) -> io::Error {
        let kind = match &err {
            ArchiveError::Io(_) => io::ErrorKind::Other,
            ArchiveError::Truncated => io::ErrorKind::UnexpectedEof,
            ArchiveError::Usage(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        match err {
            ArchiveError::Io(inner) => inner,
            other => io::Error::new(kind, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_errors_survive_a_trip_through_io_error() {
        let wrapped: io::Error = ArchiveError::DigestMismatch {
            part: "dump.pgcustom".into(),
        }
        .into();
        assert_eq!(wrapped.kind(), io::ErrorKind::InvalidData);
        match ArchiveError::from_io(wrapped) {
            ArchiveError::DigestMismatch { part } => assert_eq!(part, "dump.pgcustom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn plain_io_errors_stay_io_errors() {
        let plain = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        let back: io::Error = ArchiveError::from_io(plain).into();
        assert_eq!(back.kind(), io::ErrorKind::BrokenPipe);
        assert!(matches!(
            ArchiveError::from_io(back),
            ArchiveError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe
        ));
    }
}
