//! The STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015)
//! over ChaCha20-Poly1305: the payload is cut into chunks of `chunk_size`
//! plaintext bytes, and chunk `i` is sealed with the nonce
//! `prefix(7) || i as u32 BE || last` where `last` is 1 for the final chunk
//! and 0 otherwise. Because the position and the "this is the end" bit are in
//! the nonce, a reordered, dropped, duplicated or foreign chunk fails to
//! authenticate, and so does a stream cut at a chunk boundary.
//!
//! It is written here on top of the AEAD rather than with the `aead-stream`
//! crate so that the nonce layout is visible in one place and matches
//! `docs/FORMAT.md` by construction.
//!
//! Sealing uses the AEAD as it is. Opening is its two halves (RFC 8439,
//! section 2.8) taken apart: Poly1305 authenticates the whole chunk's
//! ciphertext first, then ChaCha20 decrypts only the bytes a caller reads.
//! Verification skips the content of the parts, so it costs one Poly1305
//! pass instead of a Poly1305 and a ChaCha20 pass over every byte; what is
//! handed out is still only ever plaintext of an authenticated chunk.

use std::io::{Read, Write};

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use poly1305::universal_hash::UniversalHash;
use poly1305::{Block, Poly1305};
use zeroize::Zeroizing;

use super::header::{read_full, DataKey};
use super::{tail, ArchiveError, TAG_LEN};

/// The 12-byte nonce of chunk `index`.
pub(crate) fn chunk_nonce(prefix: &[u8; 7], index: u32, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..7].copy_from_slice(prefix);
    nonce[7..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

fn payload_cipher(key: &DataKey) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key.as_bytes()))
}

/// Seals plaintext into chunks and writes them to `inner`. It holds at most
/// one chunk in memory.
pub(crate) struct Sealer<W> {
    inner: W,
    cipher: ChaCha20Poly1305,
    prefix: [u8; 7],
    next_index: u64,
    chunk_size: usize,
    buf: Zeroizing<Vec<u8>>,
    /// A write or seal failed; the stream can no longer be completed.
    failed: bool,
}

impl<W: Write> Sealer<W> {
    pub(crate) fn new(inner: W, key: &DataKey, prefix: [u8; 7], chunk_size: u32) -> Self {
        let chunk_size = chunk_size as usize;
        Sealer {
            inner,
            cipher: payload_cipher(key),
            prefix,
            next_index: 0,
            chunk_size,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size + TAG_LEN)),
            failed: false,
        }
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> Result<(), ArchiveError> {
        if self.failed {
            return Err(ArchiveError::Usage(
                "the archive cannot be written further after a failed write".into(),
            ));
        }
        let result = self.push(data);
        self.failed = result.is_err();
        result
    }

    fn push(&mut self, mut data: &[u8]) -> Result<(), ArchiveError> {
        while !data.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full chunk is sealed at once as non-final, so the final chunk
            // always holds fewer than `chunk_size` bytes; that is how a reader
            // tells it apart by its length alone.
            if self.buf.len() == self.chunk_size {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Flushes the chunks sealed so far; the open chunk stays buffered
    /// because a chunk is only written once it is complete.
    pub(crate) fn flush(&mut self) -> Result<(), ArchiveError> {
        self.inner.flush().map_err(ArchiveError::from_io)
    }

    /// Seals what is buffered as the final chunk, flushes and hands back the
    /// inner writer.
    pub(crate) fn finish(mut self) -> Result<W, ArchiveError> {
        if self.failed {
            return Err(ArchiveError::Usage(
                "the archive cannot be finished after a failed write".into(),
            ));
        }
        self.seal(true)?;
        self.inner.flush().map_err(ArchiveError::from_io)?;
        Ok(self.inner)
    }

    fn seal(&mut self, last: bool) -> Result<(), ArchiveError> {
        let index = u32::try_from(self.next_index).map_err(|_| ArchiveError::TooLarge)?;
        let nonce = Nonce::from(chunk_nonce(&self.prefix, index, last));
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &[], self.buf.as_mut_slice().into())
            .map_err(|_| ArchiveError::TooLarge)?;
        self.buf.extend_from_slice(&tag);
        self.inner
            .write_all(&self.buf)
            .map_err(ArchiveError::from_io)?;
        self.buf.clear();
        self.next_index += 1;
        Ok(())
    }
}

/// Reads chunks from `inner`, authenticates them and hands out plaintext. It
/// holds at most one chunk in memory and hands out nothing unauthenticated.
///
/// The buffered chunk stays ciphertext: [`Opener::read`] decrypts what it
/// copies out, and [`Opener::skip`] passes over bytes without decrypting
/// them at all.
pub(crate) struct Opener<R> {
    inner: R,
    key: DataKey,
    prefix: [u8; 7],
    next_index: u64,
    chunk_size: usize,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    len: usize,
    /// The current chunk's keystream, positioned at plaintext offset
    /// `keystream_pos`; `None` before the first chunk.
    keystream: Option<ChaCha20>,
    keystream_pos: usize,
    /// The final chunk has been opened; nothing follows it.
    finished: bool,
}

impl<R: Read> Opener<R> {
    pub(crate) fn new(inner: R, key: DataKey, prefix: [u8; 7], chunk_size: u32) -> Self {
        Opener {
            inner,
            key,
            prefix,
            next_index: 0,
            chunk_size: chunk_size as usize,
            buf: Zeroizing::new(Vec::new()),
            pos: 0,
            len: 0,
            keystream: None,
            keystream_pos: 0,
            finished: false,
        }
    }

    /// Reads plaintext; `Ok(0)` means the final chunk has been used up.
    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<usize, ArchiveError> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.len - self.pos);
        let out = &mut out[..n];
        out.copy_from_slice(&self.buf[self.pos..self.pos + n]);
        let Some(keystream) = self.keystream.as_mut() else {
            return Err(ArchiveError::Usage("no chunk is open".into()));
        };
        if self.keystream_pos != self.pos {
            // The message starts at block counter 1 (byte 64 of the
            // keystream); block 0 made the Poly1305 key.
            keystream.seek(64 + self.pos as u64);
        }
        keystream.apply_keystream(out);
        self.pos += n;
        self.keystream_pos = self.pos;
        Ok(n)
    }

    /// Passes over up to `n` bytes of plaintext without decrypting or
    /// copying them; `Ok(0)` means the final chunk has been used up.
    pub(crate) fn skip(&mut self, n: usize) -> Result<usize, ArchiveError> {
        if n == 0 || !self.fill()? {
            return Ok(0);
        }
        let k = n.min(self.len - self.pos);
        self.pos += k;
        Ok(k)
    }

    /// Reads exactly `out.len()` bytes; the plaintext ending first means the
    /// payload's structure is broken.
    pub(crate) fn read_exact(&mut self, out: &mut [u8], what: &str) -> Result<(), ArchiveError> {
        let mut filled = 0;
        while filled < out.len() {
            let n = self.read(&mut out[filled..])?;
            if n == 0 {
                return Err(ArchiveError::Malformed(format!(
                    "the payload ends inside {what}"
                )));
            }
            filled += n;
        }
        Ok(())
    }

    /// Whether the plaintext is used up: the final chunk has been opened and
    /// read, and the input ended right after it.
    pub(crate) fn at_end(&mut self) -> Result<bool, ArchiveError> {
        Ok(!self.fill()?)
    }

    /// Makes sure unread plaintext is buffered, opening the next chunk if
    /// needed. Returns false at the end of the plaintext.
    fn fill(&mut self) -> Result<bool, ArchiveError> {
        while self.pos == self.len {
            if self.finished {
                return Ok(false);
            }
            self.open_next()?;
        }
        Ok(true)
    }

    fn open_next(&mut self) -> Result<(), ArchiveError> {
        let full = self.chunk_size + TAG_LEN;
        self.buf.resize(full, 0);
        let got = read_full(&mut self.inner, &mut self.buf).map_err(ArchiveError::from_io)?;
        // Fewer than 16 bytes cannot even hold a tag, and no bytes at a chunk
        // boundary means the final chunk is missing: both are truncation.
        if got < TAG_LEN {
            return Err(ArchiveError::Truncated);
        }
        let last = got < full;
        let index = u32::try_from(self.next_index)
            .map_err(|_| ArchiveError::malformed("the chunk counter overflows"))?;
        let nonce = chunk_nonce(&self.prefix, index, last);
        let text_len = got - TAG_LEN;
        let (keystream, authentic) = authenticate(&self.key, &nonce, &self.buf[..got]);
        if !authentic {
            // Before calling it damage, check whether an intact final chunk
            // starts this read and the rest was appended afterwards.
            let final_nonce = chunk_nonce(&self.prefix, index, true);
            let limit = self.chunk_size - 1;
            if tail::has_final_prefix(&self.key, &final_nonce, &self.buf[..got], limit) {
                return Err(ArchiveError::TrailingData);
            }
            return Err(ArchiveError::ChunkAuth {
                index: self.next_index,
            });
        }
        self.keystream = Some(keystream);
        self.keystream_pos = 0;
        self.pos = 0;
        self.len = text_len;
        self.finished = last;
        self.next_index += 1;
        Ok(())
    }
}

/// Checks the tag that ends `sealed` (ciphertext then tag) the way
/// ChaCha20-Poly1305 with empty associated data does (RFC 8439, section
/// 2.8), without decrypting. Returns the chunk's keystream positioned at the
/// start of the message, and whether the tag is right (compared in constant
/// time).
fn authenticate(key: &DataKey, nonce: &[u8; 12], sealed: &[u8]) -> (ChaCha20, bool) {
    let text_len = sealed.len() - TAG_LEN;
    let mut keystream = ChaCha20::new(key.as_bytes().into(), nonce.into());
    // The Poly1305 key is the first 32 bytes of the keystream (block 0);
    // the message is encrypted from block 1.
    let mut mac_key = Zeroizing::new([0u8; 32]);
    keystream.apply_keystream(mac_key.as_mut_slice());
    keystream.seek(64u64);
    let mut mac = Poly1305::new(&poly1305::Key::from(*mac_key));
    mac.update_padded(&sealed[..text_len]);
    let mut lengths = [0u8; 16];
    // The associated data is empty, so its length (bytes 0..8) is zero.
    lengths[8..].copy_from_slice(&(text_len as u64).to_le_bytes());
    mac.update(&[Block::from(lengths)]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&sealed[text_len..]);
    let authentic = mac.verify(&Block::from(tag)).is_ok();
    (keystream, authentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) -> (Vec<u8>, Vec<u8>) {
        let key = DataKey::from_bytes([9u8; 32]);
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut sealer = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
        sealer.write_all(&plain).unwrap();
        let sealed = sealer.finish().unwrap();
        let mut opener = Opener::new(&sealed[..], key, [1u8; 7], 4096);
        let mut back = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = opener.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&buf[..n]);
        }
        assert!(opener.at_end().unwrap());
        (plain, back)
    }

    #[test]
    fn chunk_boundaries_round_trip() {
        for len in [0, 1, 4095, 4096, 4097, 8192, 3 * 4096 + 17] {
            let (plain, back) = roundtrip(len);
            assert_eq!(plain, back, "length {len}");
        }
    }

    #[test]
    fn reads_after_skips_decrypt_at_the_right_offset() {
        let key = DataKey::from_bytes([9u8; 32]);
        let plain: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        let mut sealer = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
        sealer.write_all(&plain).unwrap();
        let sealed = sealer.finish().unwrap();
        let mut opener = Opener::new(&sealed[..], key, [1u8; 7], 4096);
        // Skips of odd lengths, some across chunk boundaries, between reads
        // of odd lengths: every read must match the plaintext at its offset.
        let mut at = 0usize;
        for (i, step) in [1usize, 63, 65, 4000, 7, 129, 3, 4096, 1000, 17]
            .into_iter()
            .cycle()
            .enumerate()
        {
            if i % 2 == 0 {
                let got = opener.skip(step).unwrap();
                if got == 0 {
                    break;
                }
                at += got;
            } else {
                let mut out = vec![0u8; step];
                let got = opener.read(&mut out).unwrap();
                if got == 0 {
                    break;
                }
                assert_eq!(&out[..got], &plain[at..at + got], "at {at}");
                at += got;
            }
        }
        assert_eq!(at, plain.len());
        assert!(opener.at_end().unwrap());
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_chunk_fails_before_any_plaintext() {
        let key = DataKey::from_bytes([9u8; 32]);
        let mut sealer = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
        sealer.write_all(&[7u8; 5000]).unwrap();
        let sealed = sealer.finish().unwrap();
        for at in [
            0usize,
            1,
            2047,
            4095,
            4096,
            4111,
            4112,
            4200,
            sealed.len() - 1,
        ] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            let mut opener = Opener::new(&bad[..], key.clone(), [1u8; 7], 4096);
            let index = u64::from(at >= 4112);
            if index == 1 {
                // The first chunk is intact; skipping it opens the second.
                assert_eq!(opener.skip(4096).unwrap(), 4096);
            }
            assert!(
                matches!(opener.skip(1), Err(ArchiveError::ChunkAuth { index: i }) if i == index),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn sealed_length_follows_the_documented_rule() {
        let key = DataKey::from_bytes([9u8; 32]);
        for (len, chunks) in [(0usize, 1usize), (4095, 1), (4096, 2), (8191, 2), (8192, 3)] {
            let mut sealer = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
            sealer.write_all(&vec![0u8; len]).unwrap();
            let sealed = sealer.finish().unwrap();
            assert_eq!(sealed.len(), len + chunks * TAG_LEN, "length {len}");
        }
    }

    #[test]
    fn the_chunk_counter_never_wraps() {
        let key = DataKey::from_bytes([9u8; 32]);
        let mut sealer = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
        sealer.next_index = u64::from(u32::MAX) + 1;
        assert!(matches!(
            sealer.write_all(&[0u8; 4096]),
            Err(ArchiveError::TooLarge)
        ));
        // The sealer stays failed rather than writing a broken stream.
        assert!(matches!(
            sealer.write_all(&[0u8; 1]),
            Err(ArchiveError::Usage(_))
        ));

        let mut good = Sealer::new(Vec::new(), &key, [1u8; 7], 4096);
        good.write_all(&[0u8; 4096]).unwrap();
        let sealed = good.finish().unwrap();
        let mut opener = Opener::new(&sealed[..], key, [1u8; 7], 4096);
        opener.next_index = u64::from(u32::MAX) + 1;
        assert!(matches!(
            opener.read(&mut [0u8; 1]),
            Err(ArchiveError::Malformed(_))
        ));
    }

    #[test]
    fn nonce_layout() {
        let nonce = chunk_nonce(
            &[0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6],
            0x01020304,
            true,
        );
        assert_eq!(
            nonce,
            [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 1, 2, 3, 4, 1]
        );
    }
}
