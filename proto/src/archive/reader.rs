//! Reads an archive as a stream: the header, then the parts one by one, each
//! checked against its size and sha256 when it ends, then the end marker and
//! the end of the file. [`verify`] reads a whole archive and checks the
//! manifest against what was actually in it.
//!
//! Version 2 parts may be zstd-compressed; a [`PartReader`] always hands out
//! the decompressed content and checks its recorded size and sha256 at the
//! end of the part. How much a reader checks of the parts nobody reads is
//! its [`Depth`]: [`Depth::Authenticate`] skips their bytes after the AEAD
//! has authenticated them (the structure, the stored sizes and the manifest
//! are still checked), [`Depth::Deep`] decompresses and hashes them too.
//!
//! Plaintext is only handed out after the chunk holding it authenticated, but
//! a caller extracting parts sees them before the end of the archive has been
//! checked: whatever it extracts must not be trusted until [`verify`] (or
//! `next_part` returning `None`) has succeeded.

use std::collections::HashSet;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::codec::{Codec, Decompressor};
use super::header::Header;
use super::key::Keyring;
use super::payload::{
    valid_part_name, END_TAG, MAX_BLOCK_LEN, MAX_MANIFEST_LEN, MAX_NAME_LEN, PART_TAG,
};
use super::readahead::BackgroundHasher;
use super::stream::Opener;
use super::ArchiveError;
use crate::manifest::{Manifest, MANIFEST_PART, MANIFEST_VERSION};

/// A part as it was actually found in the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartRecord {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    /// Version 2 only.
    pub(crate) codec: Option<Codec>,
    /// Version 2 only: the bytes the part takes in its blocks.
    pub(crate) compressed_size: Option<u64>,
}

/// How much a reader checks of the parts its caller does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Every chunk authenticated, the payload's structure, every part's
    /// stored size and the manifest against the parts' trailers: what the
    /// AEAD proves. Unread content is neither decompressed nor hashed.
    Authenticate,
    /// All of that, and every part decompressed and its size and sha256
    /// recomputed and compared with what was recorded.
    Deep,
}

/// Bytes a part's content hasher hands to its thread at a time (at most
/// five such buffers exist per part being read).
const PART_HASH_BUF: usize = 256 << 10;

/// Compressed bytes a zstd part reader takes from the stream at a time.
const ZSTD_IN: usize = 128 << 10;

/// A zstd part's decompressor and the stored bytes it has not used yet.
struct Zstd {
    decoder: Decompressor,
    input: Vec<u8>,
    pos: usize,
}

/// The part being read.
struct OpenPart {
    name: String,
    codec: Codec,
    /// Version 2 layout: codec byte, stored size in the trailer.
    v2: bool,
    /// Bytes left in the current block; 0 between blocks.
    block_left: u32,
    /// The zero-length block that ends the blocks has been read.
    blocks_ended: bool,
    /// Stored bytes read so far.
    stored: u64,
    /// Content bytes handed out (decompressed) so far.
    size: u64,
    /// The content's SHA-256, taken on a thread of its own (started at the
    /// first byte read) so that it overlaps decryption and decompression:
    /// a deep check hashes the whole uncompressed dump, several times the
    /// archive's size.
    hasher: Option<BackgroundHasher>,
    /// Every stored byte went through the decompressor and the hasher, so
    /// the content can be compared with the trailer.
    checked: bool,
    zstd: Option<Box<Zstd>>,
    /// The part's trailer has been read and checked.
    done: bool,
}

/// Reads one archive from `R`. Any error ends the reading: later calls fail.
pub struct ArchiveReader<R: Read> {
    header: Header,
    stream: Opener<R>,
    current: Option<OpenPart>,
    names: HashSet<String>,
    records: Vec<PartRecord>,
    ended: bool,
    failed: bool,
    depth: Depth,
}

impl<R: Read> ArchiveReader<R> {
    /// Reads and checks the header, finds its key in `keyring` and unwraps
    /// the data key.
    pub fn open(mut inner: R, keyring: &Keyring) -> Result<Self, ArchiveError> {
        let header = Header::read_from(&mut inner)?;
        let data_key = header.unwrap_data_key(keyring)?;
        let stream = Opener::new(inner, data_key, header.nonce_prefix, header.chunk_size);
        Ok(ArchiveReader {
            header,
            stream,
            current: None,
            names: HashSet::new(),
            records: Vec::new(),
            ended: false,
            failed: false,
            depth: Depth::Deep,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Sets how parts left unread are checked; [`Depth::Deep`] unless set.
    pub fn set_depth(&mut self, depth: Depth) {
        self.depth = depth;
    }

    /// Moves to the next part, first reading the rest of the current one (and
    /// checking its digest) if the caller stopped early. Returns `None` after
    /// the manifest and the end marker, once the end of the input is checked.
    pub fn next_part(&mut self) -> Result<Option<PartReader<'_, R>>, ArchiveError> {
        match self.advance() {
            Ok(true) => Ok(Some(PartReader { archive: self })),
            Ok(false) => Ok(None),
            Err(err) => {
                self.failed = true;
                Err(err)
            }
        }
    }

    /// The parts read to their end so far, the manifest included.
    pub(crate) fn records(&self) -> &[PartRecord] {
        &self.records
    }

    fn advance(&mut self) -> Result<bool, ArchiveError> {
        self.check()?;
        if self.ended {
            return Ok(false);
        }
        if self.current.as_ref().is_some_and(|part| !part.done) {
            match self.depth {
                Depth::Deep => {
                    let mut scratch = vec![0u8; 64 << 10];
                    while self.read_part(&mut scratch)? > 0 {}
                }
                Depth::Authenticate => self.skip_part()?,
            }
        }
        self.current = None;

        let mut tag = [0u8; 1];
        self.stream.read_exact(&mut tag, "the list of parts")?;
        match tag[0] {
            PART_TAG => {
                if self.manifest_seen() {
                    return Err(ArchiveError::malformed("a part follows the manifest"));
                }
                let name = self.read_name()?;
                if !self.names.insert(name.clone()) {
                    return Err(ArchiveError::Malformed(format!(
                        "the part name {name} appears twice"
                    )));
                }
                let v2 = self.header.version >= 2;
                let codec = if v2 {
                    let mut id = [0u8; 1];
                    self.stream.read_exact(&mut id, "a part's codec")?;
                    Codec::from_id(id[0]).ok_or_else(|| ArchiveError::UnknownCodec {
                        part: name.clone(),
                        id: id[0],
                    })?
                } else {
                    Codec::None
                };
                let zstd = match codec {
                    Codec::None => None,
                    Codec::Zstd => Some(Box::new(Zstd {
                        decoder: Decompressor::new().map_err(|e| ArchiveError::Decompress {
                            part: name.clone(),
                            why: e.to_string(),
                        })?,
                        input: Vec::with_capacity(ZSTD_IN),
                        pos: 0,
                    })),
                };
                self.current = Some(OpenPart {
                    name,
                    codec,
                    v2,
                    block_left: 0,
                    blocks_ended: false,
                    stored: 0,
                    size: 0,
                    hasher: None,
                    checked: true,
                    zstd,
                    done: false,
                });
                Ok(true)
            }
            END_TAG => {
                if !self.manifest_seen() {
                    return Err(ArchiveError::malformed("the archive has no manifest"));
                }
                // This also makes the stream open the final chunk if it has
                // not yet, and so checks that the file ends right after it.
                if !self.stream.at_end()? {
                    return Err(ArchiveError::malformed("data follows the end marker"));
                }
                self.ended = true;
                Ok(false)
            }
            other => Err(ArchiveError::Malformed(format!(
                "unknown record type {other:#04x}"
            ))),
        }
    }

    fn manifest_seen(&self) -> bool {
        self.records
            .last()
            .is_some_and(|record| record.name == MANIFEST_PART)
    }

    fn read_name(&mut self) -> Result<String, ArchiveError> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len, "a part name")?;
        let len = usize::from(u16::from_be_bytes(len));
        if len == 0 || len > MAX_NAME_LEN {
            return Err(ArchiveError::malformed("a part name has an invalid length"));
        }
        let mut name = [0u8; MAX_NAME_LEN];
        self.stream.read_exact(&mut name[..len], "a part name")?;
        match std::str::from_utf8(&name[..len]) {
            Ok(name) if valid_part_name(name) => Ok(name.to_owned()),
            _ => Err(ArchiveError::malformed(
                "a part name has characters that are not allowed",
            )),
        }
    }

    fn check(&self) -> Result<(), ArchiveError> {
        if self.failed {
            return Err(ArchiveError::Usage(
                "the archive reader cannot go on after an error".into(),
            ));
        }
        Ok(())
    }

    /// Reads plaintext of the current part; `Ok(0)` at its end, once its
    /// size and digest have been checked.
    fn read_part(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let result = self.read_part_inner(buf);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn read_part_inner(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        self.check()?;
        let Self {
            current,
            stream,
            records,
            ..
        } = self;
        let Some(part) = current.as_mut() else {
            return Ok(0);
        };
        if part.done || buf.is_empty() {
            return Ok(0);
        }
        let got = match part.zstd.take() {
            None => read_stored(part, stream, buf),
            Some(mut zstd) => {
                let got = read_zstd(part, &mut zstd, stream, buf);
                part.zstd = Some(zstd);
                got
            }
        }?;
        if got == 0 {
            finish_part(part, stream, records)?;
            return Ok(0);
        }
        let hasher = match part.hasher.as_mut() {
            Some(hasher) => hasher,
            None => part.hasher.insert(BackgroundHasher::new(PART_HASH_BUF)?),
        };
        hasher.update(&buf[..got])?;
        part.size += got as u64;
        Ok(got)
    }

    /// Reads the rest of the current part without decompressing or hashing
    /// it: the AEAD has authenticated every byte, and the trailer's size and
    /// digest are taken as recorded.
    fn skip_part(&mut self) -> Result<(), ArchiveError> {
        let result = self.skip_part_inner();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn skip_part_inner(&mut self) -> Result<(), ArchiveError> {
        let Self {
            current,
            stream,
            records,
            ..
        } = self;
        let Some(part) = current.as_mut() else {
            return Ok(());
        };
        part.checked = false;
        part.zstd = None;
        while next_block(part, stream)? {
            let got = stream.skip(part.block_left as usize)?;
            if got == 0 {
                return Err(ArchiveError::malformed("the payload ends inside a part"));
            }
            part.stored += got as u64;
            // `got` is at most `block_left`, so this cannot underflow.
            part.block_left -= got as u32;
        }
        finish_part(part, stream, records)
    }
}

/// Makes sure the current block has bytes left, reading the next block's
/// length if needed. False once the zero-length end of the blocks is read.
fn next_block<R: Read>(part: &mut OpenPart, stream: &mut Opener<R>) -> Result<bool, ArchiveError> {
    while part.block_left == 0 {
        if part.blocks_ended {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        stream.read_exact(&mut len, "a part")?;
        let len = u32::from_be_bytes(len);
        if len == 0 {
            part.blocks_ended = true;
            return Ok(false);
        }
        if len > MAX_BLOCK_LEN {
            return Err(ArchiveError::malformed("a block is longer than 16 MiB"));
        }
        part.block_left = len;
    }
    Ok(true)
}

/// Reads stored bytes of the current block; 0 at the end of the blocks.
fn read_stored<R: Read>(
    part: &mut OpenPart,
    stream: &mut Opener<R>,
    buf: &mut [u8],
) -> Result<usize, ArchiveError> {
    if !next_block(part, stream)? {
        return Ok(0);
    }
    let want = buf.len().min(part.block_left as usize);
    let got = stream.read(&mut buf[..want])?;
    if got == 0 {
        return Err(ArchiveError::malformed("the payload ends inside a part"));
    }
    part.stored += got as u64;
    // `got` is at most `block_left`, so this fits and cannot underflow.
    part.block_left -= got as u32;
    Ok(got)
}

/// Decompresses the next content bytes of a zstd part into `buf`; 0 once
/// the blocks have ended and the last frame is complete and drained.
fn read_zstd<R: Read>(
    part: &mut OpenPart,
    zstd: &mut Zstd,
    stream: &mut Opener<R>,
    buf: &mut [u8],
) -> Result<usize, ArchiveError> {
    loop {
        if zstd.pos < zstd.input.len() {
            let n = zstd
                .decoder
                .step(&zstd.input, &mut zstd.pos, buf)
                .map_err(|e| decompress_error(&part.name, e))?;
            if n > 0 {
                return Ok(n);
            }
            if zstd.pos < zstd.input.len() {
                continue;
            }
        }
        if !next_block(part, stream)? {
            // No stored bytes left: hand out what zstd still holds.
            let n = zstd
                .decoder
                .step(&[], &mut 0, buf)
                .map_err(|e| decompress_error(&part.name, e))?;
            if n > 0 {
                return Ok(n);
            }
            if !zstd.decoder.at_frame_end() {
                return Err(ArchiveError::Decompress {
                    part: part.name.clone(),
                    why: "its stored bytes end inside a zstd frame".into(),
                });
            }
            return Ok(0);
        }
        let want = ZSTD_IN.min(part.block_left as usize);
        zstd.input.resize(want, 0);
        let got = stream.read(&mut zstd.input)?;
        if got == 0 {
            return Err(ArchiveError::malformed("the payload ends inside a part"));
        }
        zstd.input.truncate(got);
        zstd.pos = 0;
        part.stored += got as u64;
        part.block_left -= got as u32;
    }
}

fn decompress_error(part: &str, e: io::Error) -> ArchiveError {
    ArchiveError::Decompress {
        part: part.to_owned(),
        why: e.to_string(),
    }
}

/// Reads a part's trailer and checks it against what was read: the stored
/// size always, the content's size and sha256 when all of it went through
/// the decompressor and the hasher.
fn finish_part<R: Read>(
    part: &mut OpenPart,
    stream: &mut Opener<R>,
    records: &mut Vec<PartRecord>,
) -> Result<(), ArchiveError> {
    let mut stored = None;
    if part.v2 {
        let mut bytes = [0u8; 8];
        stream.read_exact(&mut bytes, "a part's trailer")?;
        stored = Some(u64::from_be_bytes(bytes));
    }
    let mut trailer = [0u8; 8 + 32];
    stream.read_exact(&mut trailer, "a part's trailer")?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&trailer[..8]);
    let size = u64::from_be_bytes(size);
    let mut recorded = [0u8; 32];
    recorded.copy_from_slice(&trailer[8..]);
    if let Some(stored) = stored {
        if stored != part.stored {
            return Err(ArchiveError::Malformed(format!(
                "part {:?} records {stored} stored bytes but its blocks hold {}",
                part.name, part.stored
            )));
        }
        if part.codec == Codec::None && stored != size {
            return Err(ArchiveError::Malformed(format!(
                "part {:?} is stored uncompressed but records a content size \
                 different from its stored size",
                part.name
            )));
        }
    }
    if part.checked {
        if part.codec == Codec::Zstd && part.size != size {
            let why = if part.size > size {
                format!("it decompresses to more than the {size} bytes recorded")
            } else {
                format!(
                    "it decompresses to {} bytes, fewer than the {size} recorded",
                    part.size
                )
            };
            return Err(ArchiveError::Decompress {
                part: part.name.clone(),
                why,
            });
        }
        let digest: [u8; 32] = match part.hasher.take() {
            Some(hasher) => hasher.finalize()?,
            None => Sha256::digest([]).into(),
        };
        if size != part.size || recorded != digest {
            return Err(ArchiveError::DigestMismatch {
                part: part.name.clone(),
            });
        }
    }
    part.done = true;
    records.push(PartRecord {
        name: part.name.clone(),
        size,
        sha256: hex::encode(recorded),
        codec: part.v2.then_some(part.codec),
        compressed_size: stored,
    });
    Ok(())
}

/// Reads one part of an archive. At the end of the part it checks the size
/// and sha256; a mismatch comes out of `read` as an `io::Error` from which
/// [`ArchiveError::from_io`] recovers [`ArchiveError::DigestMismatch`].
pub struct PartReader<'a, R: Read> {
    archive: &'a mut ArchiveReader<R>,
}

impl<R: Read> PartReader<'_, R> {
    pub fn name(&self) -> &str {
        self.archive
            .current
            .as_ref()
            .map_or("", |part| part.name.as_str())
    }
}

impl<R: Read> Read for PartReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.archive.read_part(buf).map_err(io::Error::from)
    }
}

/// Reads and checks a whole archive: every chunk, every part's digest, the
/// end of the file, and the manifest against the parts actually found.
/// `on_part` is called for each part except the manifest, to extract it if
/// the caller wants; whatever it leaves unread is read and checked anyway.
/// Returns the manifest. Extracted data is trustworthy only if this returns
/// `Ok`.
pub fn verify<R: Read>(
    inner: R,
    keyring: &Keyring,
    on_part: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    verify_with(inner, keyring, Depth::Deep, on_part)
}

/// [`verify`] at a chosen [`Depth`]: with [`Depth::Authenticate`], what
/// `on_part` leaves unread is authenticated but not decompressed or hashed.
pub fn verify_with<R: Read>(
    inner: R,
    keyring: &Keyring,
    depth: Depth,
    mut on_part: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    let mut reader = ArchiveReader::open(inner, keyring)?;
    reader.set_depth(depth);
    let mut manifest_json = Vec::new();
    while let Some(mut part) = reader.next_part()? {
        let name = part.name().to_owned();
        if name == MANIFEST_PART {
            // One byte over the limit is enough to know it is too large.
            (&mut part)
                .take(MAX_MANIFEST_LEN + 1)
                .read_to_end(&mut manifest_json)
                .map_err(ArchiveError::from_io)?;
            if manifest_json.len() as u64 > MAX_MANIFEST_LEN {
                return Err(ArchiveError::ManifestInvalid(
                    "the manifest is larger than 16 MiB".into(),
                ));
            }
        } else {
            on_part(&name, &mut part).map_err(ArchiveError::from_io)?;
        }
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_json)
        .map_err(|err| ArchiveError::ManifestInvalid(err.to_string()))?;
    if manifest.manifest_version != MANIFEST_VERSION {
        return Err(ArchiveError::ManifestInvalid(format!(
            "manifest version {} is not supported (this build reads version {MANIFEST_VERSION})",
            manifest.manifest_version
        )));
    }
    check_manifest(&manifest, reader.records())?;
    Ok(manifest)
}

/// Checks that the manifest lists exactly the parts found, in order, with the
/// same sizes and digests. The last record is the manifest itself, which the
/// manifest does not list.
fn check_manifest(manifest: &Manifest, records: &[PartRecord]) -> Result<(), ArchiveError> {
    let found = records.split_last().map_or(records, |(_, rest)| rest);
    if manifest.parts.len() != found.len() {
        return Err(ArchiveError::ManifestMismatch(format!(
            "the manifest lists {} parts but the archive holds {}",
            manifest.parts.len(),
            found.len()
        )));
    }
    for (i, (listed, record)) in manifest.parts.iter().zip(found).enumerate() {
        if listed.name != record.name {
            return Err(ArchiveError::ManifestMismatch(format!(
                "part {i} is {:?} in the manifest but {:?} in the archive",
                listed.name, record.name
            )));
        }
        if listed.codec != record.codec || listed.compressed_size != record.compressed_size {
            return Err(ArchiveError::ManifestMismatch(format!(
                "the manifest's codec or compressed size of part {:?} differs from the archive's",
                record.name
            )));
        }
        if listed.size != record.size || listed.sha256 != record.sha256 {
            return Err(ArchiveError::ManifestMismatch(format!(
                "the manifest's size or sha256 of part {:?} differs from the archive's",
                record.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
