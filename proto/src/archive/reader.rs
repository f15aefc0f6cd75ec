//! Reads an archive as a stream: the header, then the parts one by one, each
//! checked against its size and sha256 when it ends, then the end marker and
//! the end of the file. [`verify`] reads a whole archive and checks the
//! manifest against what was actually in it.
//!
//! Plaintext is only handed out after the chunk holding it authenticated, but
//! a caller extracting parts sees them before the end of the archive has been
//! checked: whatever it extracts must not be trusted until [`verify`] (or
//! `next_part` returning `None`) has succeeded.

use std::collections::HashSet;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::header::Header;
use super::key::Keyring;
use super::payload::{
    valid_part_name, END_TAG, MAX_BLOCK_LEN, MAX_MANIFEST_LEN, MAX_NAME_LEN, PART_TAG,
};
use super::stream::Opener;
use super::ArchiveError;
use crate::manifest::{Manifest, MANIFEST_PART, MANIFEST_VERSION};

/// A part as it was actually found in the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartRecord {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// The part being read.
struct OpenPart {
    name: String,
    /// Bytes left in the current block; 0 between blocks.
    block_left: u32,
    size: u64,
    hasher: Sha256,
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
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
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
            let mut scratch = [0u8; 8192];
            while self.read_part(&mut scratch)? > 0 {}
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
                self.current = Some(OpenPart {
                    name,
                    block_left: 0,
                    size: 0,
                    hasher: Sha256::new(),
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
        while part.block_left == 0 {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len, "a part")?;
            let len = u32::from_be_bytes(len);
            if len == 0 {
                finish_part(part, stream, records)?;
                return Ok(0);
            }
            if len > MAX_BLOCK_LEN {
                return Err(ArchiveError::malformed("a block is longer than 16 MiB"));
            }
            part.block_left = len;
        }
        let want = buf.len().min(part.block_left as usize);
        let got = stream.read(&mut buf[..want])?;
        if got == 0 {
            return Err(ArchiveError::malformed("the payload ends inside a part"));
        }
        part.hasher.update(&buf[..got]);
        part.size += got as u64;
        // `got` is at most `block_left`, so this fits and cannot underflow.
        part.block_left -= got as u32;
        Ok(got)
    }
}

/// Reads a part's trailer (size and sha256) and checks it against what was
/// read.
fn finish_part<R: Read>(
    part: &mut OpenPart,
    stream: &mut Opener<R>,
    records: &mut Vec<PartRecord>,
) -> Result<(), ArchiveError> {
    let mut trailer = [0u8; 8 + 32];
    stream.read_exact(&mut trailer, "a part's trailer")?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&trailer[..8]);
    let digest: [u8; 32] = part.hasher.clone().finalize().into();
    if u64::from_be_bytes(size) != part.size || trailer[8..] != digest {
        return Err(ArchiveError::DigestMismatch {
            part: part.name.clone(),
        });
    }
    part.done = true;
    records.push(PartRecord {
        name: part.name.clone(),
        size: part.size,
        sha256: hex::encode(digest),
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
    mut on_part: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, ArchiveError> {
    let mut reader = ArchiveReader::open(inner, keyring)?;
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
