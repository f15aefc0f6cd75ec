//! Writes an archive as a stream: the header first, then each part as the
//! caller produces it, then the manifest and the end marker. Nothing is
//! buffered beyond one chunk and one block, so a backup of any size is
//! encrypted on its way to the file and never exists on disk in plaintext.
//!
//! In format version 2 a part can be compressed on its way in: the part
//! writer hashes and counts what it is given (the digest the manifest
//! records is of the uncompressed content), hands it to zstd, and frames
//! zstd's output in blocks. With zstd worker threads, compression runs on
//! them while the writing thread goes on sealing and writing.

use std::collections::HashSet;
use std::io::{self, Write};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::codec::{Codec, Compression, Compressor};
use super::header::{fill_random, DataKey, Header};
use super::key::MasterKey;
use super::payload::{valid_part_name, END_TAG, PART_TAG, WRITE_BLOCK_LEN};
use super::stream::Sealer;
use super::{ArchiveError, DEFAULT_CHUNK_SIZE, FORMAT_VERSION};
use crate::manifest::{Manifest, PartEntry, PartKind, MANIFEST_PART};

/// Writes one archive to `W`.
///
/// If a [`PartWriter`] is dropped without [`PartWriter::finish`], or any
/// write fails, the archive writer is poisoned: every later call fails, since
/// the payload can no longer be completed correctly.
pub struct ArchiveWriter<W: Write> {
    sealer: Sealer<W>,
    header: Header,
    parts: Vec<PartEntry>,
    names: HashSet<String>,
    poisoned: bool,
    /// How [`ArchiveWriter::begin_part`] stores parts.
    compression: Compression,
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive (format version 2, parts stored uncompressed until
    /// [`ArchiveWriter::with_compression`]) with fresh random key material
    /// and the default chunk size, and writes its header.
    pub fn new(inner: W, key: &MasterKey) -> Result<Self, ArchiveError> {
        Self::with_chunk_size(inner, key, DEFAULT_CHUNK_SIZE)
    }

    pub fn with_chunk_size(
        inner: W,
        key: &MasterKey,
        chunk_size: u32,
    ) -> Result<Self, ArchiveError> {
        let mut salt = [0u8; 32];
        let mut nonce_prefix = [0u8; 7];
        let mut data_key = Zeroizing::new([0u8; 32]);
        fill_random(&mut salt)?;
        fill_random(&mut nonce_prefix)?;
        fill_random(data_key.as_mut_slice())?;
        Self::with_material(
            inner,
            key,
            FORMAT_VERSION,
            chunk_size,
            salt,
            nonce_prefix,
            *data_key,
        )
    }

    /// Starts an archive with given key material. Reusing material across
    /// archives destroys the format's security; this exists only so that
    /// test vectors can be rebuilt byte for byte.
    #[doc(hidden)]
    pub fn with_material(
        mut inner: W,
        key: &MasterKey,
        version: u16,
        chunk_size: u32,
        salt: [u8; 32],
        nonce_prefix: [u8; 7],
        data_key: [u8; 32],
    ) -> Result<Self, ArchiveError> {
        let data_key = DataKey::from_bytes(data_key);
        let header = Header::seal(key, version, chunk_size, salt, nonce_prefix, &data_key)?;
        inner
            .write_all(&header.to_bytes())
            .map_err(ArchiveError::from_io)?;
        Ok(ArchiveWriter {
            sealer: Sealer::new(inner, &data_key, nonce_prefix, chunk_size),
            header,
            parts: Vec::new(),
            names: HashSet::new(),
            poisoned: false,
            compression: Compression::NONE,
        })
    }

    /// Makes [`ArchiveWriter::begin_part`] compress the parts it starts.
    /// Version 1 archives cannot hold compressed parts.
    pub fn with_compression(mut self, compression: Compression) -> Result<Self, ArchiveError> {
        if compression.codec != Codec::None && self.header.version < 2 {
            return Err(ArchiveError::Usage(
                "format version 1 cannot hold compressed parts".into(),
            ));
        }
        if compression.codec == Codec::Zstd {
            // Checks the level (and the thread count) before any part.
            Compressor::new(compression.level, compression.threads).map_err(|e| {
                ArchiveError::Usage(format!("the compression settings are not usable: {e}"))
            })?;
        }
        self.compression = compression;
        Ok(self)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The parts finished so far, in order.
    pub fn parts(&self) -> &[PartEntry] {
        &self.parts
    }

    /// Starts a part. Its name must be 1 to 255 characters of
    /// `[A-Za-z0-9._-]`, unique in the archive, and not `manifest.json`,
    /// which [`ArchiveWriter::finish`] writes.
    pub fn begin_part(
        &mut self,
        name: &str,
        kind: PartKind,
    ) -> Result<PartWriter<'_, W>, ArchiveError> {
        if name == MANIFEST_PART {
            return Err(ArchiveError::Usage(format!(
                "the part name {MANIFEST_PART} is reserved for the manifest"
            )));
        }
        self.begin(name, kind, self.compression)
    }

    /// Writes the manifest as the last part, with `parts` filled in from what
    /// was written, then the end marker and the final chunk. Returns the
    /// inner writer, flushed, and the manifest as it was written.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<(W, Manifest), ArchiveError> {
        manifest.parts = self.parts.clone();
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|err| ArchiveError::ManifestInvalid(err.to_string()))?;
        // The manifest's kind is never recorded anywhere: the manifest does
        // not list itself.
        // The manifest is stored as it is, so that it stays small and simple
        // to read.
        let mut part = self.begin(MANIFEST_PART, PartKind::Log, Compression::NONE)?;
        part.write_all(&json).map_err(ArchiveError::from_io)?;
        part.finish()?;
        self.write(&[END_TAG])?;
        let inner = self.sealer.finish()?;
        Ok((inner, manifest))
    }

    fn begin(
        &mut self,
        name: &str,
        kind: PartKind,
        compression: Compression,
    ) -> Result<PartWriter<'_, W>, ArchiveError> {
        self.check()?;
        if !valid_part_name(name) {
            return Err(ArchiveError::Usage(
                "a part name must be 1 to 255 characters of A-Z, a-z, 0-9, '.', '_' and '-', \
                 and not '.' or '..'"
                    .into(),
            ));
        }
        if self.names.contains(name) {
            return Err(ArchiveError::Usage(format!(
                "the part name {name} is used twice"
            )));
        }
        let name_len = u16::try_from(name.len())
            .map_err(|_| ArchiveError::Usage("part name too long".into()))?;
        let mut head = Vec::with_capacity(3 + name.len());
        head.push(PART_TAG);
        head.extend_from_slice(&name_len.to_be_bytes());
        head.extend_from_slice(name.as_bytes());
        let v2 = self.header.version >= 2;
        if v2 {
            head.push(compression.codec.id());
        }
        let compressor = match compression.codec {
            Codec::None => None,
            Codec::Zstd => Some(
                Compressor::new(compression.level, compression.threads).map_err(|e| {
                    ArchiveError::Compress {
                        part: name.to_owned(),
                        why: e.to_string(),
                    }
                })?,
            ),
        };
        self.write(&head)?;
        self.names.insert(name.to_owned());
        // Poisoned until the part writer finishes: if it is dropped instead,
        // the payload is stuck inside a part and cannot be completed.
        self.poisoned = true;
        Ok(PartWriter {
            sink: BlockSink {
                archive: self,
                block: Zeroizing::new(Vec::with_capacity(WRITE_BLOCK_LEN)),
                stored: 0,
            },
            name: name.to_owned(),
            kind,
            codec: compression.codec,
            v2,
            compressor,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    fn check(&self) -> Result<(), ArchiveError> {
        if self.poisoned {
            return Err(ArchiveError::Usage(
                "the archive writer cannot go on after a part was abandoned or a write failed"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Writes plaintext to the sealer; any failure poisons the writer.
    fn write(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        let result = self.sealer.write_all(data);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }
}

/// Frames stored bytes (compressed or not) in blocks and seals them.
struct BlockSink<'a, W: Write> {
    archive: &'a mut ArchiveWriter<W>,
    block: Zeroizing<Vec<u8>>,
    /// Stored bytes so far: the sum of the block lengths.
    stored: u64,
}

impl<W: Write> BlockSink<'_, W> {
    fn push(&mut self, mut data: &[u8]) -> Result<(), ArchiveError> {
        while !data.is_empty() {
            let take = (WRITE_BLOCK_LEN - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.stored += take as u64;
            if self.block.len() == WRITE_BLOCK_LEN {
                self.emit_block()?;
            }
        }
        Ok(())
    }

    fn emit_block(&mut self) -> Result<(), ArchiveError> {
        if self.block.is_empty() {
            return Ok(());
        }
        // The block is at most WRITE_BLOCK_LEN long, far below u32::MAX.
        let len = self.block.len() as u32;
        self.archive.sealer.write_all(&len.to_be_bytes())?;
        self.archive.sealer.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }
}

/// Writes one part. It implements [`std::io::Write`]; call
/// [`PartWriter::finish`] at the end, or the archive cannot be completed.
pub struct PartWriter<'a, W: Write> {
    sink: BlockSink<'a, W>,
    name: String,
    kind: PartKind,
    codec: Codec,
    /// Format version 2: a codec byte after the name and the stored size in
    /// the trailer.
    v2: bool,
    compressor: Option<Compressor>,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> PartWriter<'_, W> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes zstd expect exactly `size` bytes in this frame, so that writing
    /// more fails inside zstd itself mid-stream: how tests provoke a real
    /// compressor failure.
    #[cfg(test)]
    pub(crate) fn pledge_for_test(&mut self, size: u64) {
        if let Some(c) = self.compressor.as_mut() {
            c.pledge_for_test(size);
        }
    }

    /// Ends the part: ends its zstd frame, writes its last block and its
    /// trailer, and returns its manifest entry.
    pub fn finish(mut self) -> Result<PartEntry, ArchiveError> {
        if let Some(compressor) = self.compressor.as_mut() {
            let sink = &mut self.sink;
            let mut failed = None;
            let result = compressor.finish(&mut |bytes| {
                sink.push(bytes).map_err(|e| {
                    failed = Some(());
                    io::Error::from(e)
                })
            });
            if let Err(e) = result {
                return Err(compress_error(&self.name, failed.is_some(), e));
            }
        }
        self.sink.emit_block()?;
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let mut trailer = Vec::with_capacity(4 + 8 + 8 + 32);
        trailer.extend_from_slice(&0u32.to_be_bytes());
        if self.v2 {
            trailer.extend_from_slice(&self.sink.stored.to_be_bytes());
        }
        trailer.extend_from_slice(&self.size.to_be_bytes());
        trailer.extend_from_slice(&digest);
        self.sink.archive.sealer.write_all(&trailer)?;
        let entry = PartEntry {
            name: std::mem::take(&mut self.name),
            kind: self.kind,
            size: self.size,
            sha256: hex::encode(digest),
            codec: self.v2.then_some(self.codec),
            compressed_size: self.v2.then_some(self.sink.stored),
        };
        self.sink.archive.parts.push(entry.clone());
        self.sink.archive.poisoned = false;
        Ok(entry)
    }
}

/// A failure inside the compressor: either zstd's own (said as such) or the
/// sealing of its output, which is passed on as it was.
fn compress_error(part: &str, sink_failed: bool, e: io::Error) -> ArchiveError {
    if sink_failed {
        ArchiveError::from_io(e)
    } else {
        ArchiveError::Compress {
            part: part.to_owned(),
            why: e.to_string(),
        }
    }
}

impl<W: Write> Write for PartWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        match self.compressor.as_mut() {
            None => self.sink.push(buf)?,
            Some(compressor) => {
                let sink = &mut self.sink;
                let mut failed = None;
                let result = compressor.write(buf, &mut |bytes| {
                    sink.push(bytes).map_err(|e| {
                        failed = Some(());
                        io::Error::from(e)
                    })
                });
                if let Err(e) = result {
                    return Err(compress_error(&self.name, failed.is_some(), e).into());
                }
            }
        }
        Ok(buf.len())
    }

    /// Flushes the sealed chunks to the inner writer. Plaintext still in the
    /// open block and chunk (and inside zstd) stays buffered: a chunk is
    /// only sealed when full.
    fn flush(&mut self) -> io::Result<()> {
        self.sink.archive.sealer.flush().map_err(io::Error::from)
    }
}
