//! Tells "bytes were appended to an intact archive" apart from "a chunk is
//! damaged". A reader finds the final chunk by its short length, so bytes
//! appended after it shift where the reader looks for its tag, and the chunk
//! fails to authenticate like a damaged one would. When that happens, this
//! module checks whether some prefix of what was read is a valid final chunk;
//! if one is, the archive is intact and something was added after its end.
//!
//! Trying each prefix with the AEAD would cost a full pass per length. Two
//! facts make it cheap instead. ChaCha20 decrypts each byte independently of
//! the message length, so one pass of keystream gives the would-be plaintext
//! of every prefix; and a final chunk's plaintext is empty or ends with the
//! end marker 0xFF, which rules out all but about one length in 256. For the
//! rest, Poly1305 runs once over the data and a copy of its state is finished
//! at each remaining length: the computation of ChaCha20-Poly1305 (RFC 8439,
//! section 2.8) with empty associated data. It is only used to choose an
//! error: nothing it accepts is ever handed out as plaintext.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::{Block, Poly1305};
use zeroize::Zeroizing;

use super::header::DataKey;
use super::payload::END_TAG;
use super::TAG_LEN;

/// Whether `data` starts with a final chunk sealed under `nonce`, holding at
/// most `max_plain` plaintext bytes, followed by at least one more byte.
pub(crate) fn has_final_prefix(
    key: &DataKey,
    nonce: &[u8; 12],
    data: &[u8],
    max_plain: usize,
) -> bool {
    if data.len() <= TAG_LEN {
        return false;
    }
    // Strict prefixes only: the whole of `data` was already tried.
    let longest = (data.len() - TAG_LEN - 1).min(max_plain);

    // The Poly1305 key is the first 32 bytes of the ChaCha20 keystream at
    // block counter 0; the message is encrypted from block counter 1.
    let mut cipher = ChaCha20::new(key.as_bytes().into(), nonce.into());
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(mac_key.as_mut_slice());
    cipher.seek(64u64);
    let mut plain = Zeroizing::new(data[..longest].to_vec());
    cipher.apply_keystream(&mut plain);

    let mut absorbed = Poly1305::new(&poly1305::Key::from(*mac_key));
    let mut absorbed_len = 0;
    let candidates = (0..=longest).filter(|&len| len == 0 || plain[len - 1] == END_TAG);
    for len in candidates {
        // Fold the whole blocks before this length into the running state.
        let aligned = len - len % 16;
        if aligned > absorbed_len {
            absorbed.update_padded(&data[absorbed_len..aligned]);
            absorbed_len = aligned;
        }
        let mut mac = absorbed.clone();
        mac.update_padded(&data[aligned..len]);
        let mut lengths = [0u8; 16];
        // The associated data is empty, so its length (bytes 0..8) is zero.
        lengths[8..].copy_from_slice(&(len as u64).to_le_bytes());
        mac.update(&[Block::from(lengths)]);
        if mac.finalize().as_slice() == &data[len..len + TAG_LEN] {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce};

    use super::*;

    fn sealed(key: &DataKey, nonce: &[u8; 12], len: usize) -> Vec<u8> {
        // A final chunk's plaintext ends with the end marker.
        let mut buf: Vec<u8> = (0..len)
            .map(|i| if i + 1 == len { END_TAG } else { i as u8 })
            .collect();
        let tag = ChaCha20Poly1305::new(&Key::from(*key.as_bytes()))
            .encrypt_inout_detached(&Nonce::from(*nonce), &[], buf.as_mut_slice().into())
            .unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    #[test]
    fn finds_a_final_chunk_followed_by_junk_at_every_length() {
        let key = DataKey::from_bytes([5u8; 32]);
        let nonce = [7u8; 12];
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
            let mut data = sealed(&key, &nonce, len);
            data.extend_from_slice(b"appended");
            assert!(has_final_prefix(&key, &nonce, &data, 4095), "length {len}");
            // The same bytes under another nonce are not a final chunk.
            assert!(
                !has_final_prefix(&key, &[8u8; 12], &data, 4095),
                "length {len}"
            );
            // A prefix longer than the limit does not count.
            if len > 0 {
                assert!(
                    !has_final_prefix(&key, &nonce, &data, len - 1),
                    "length {len}"
                );
            }
        }
    }

    #[test]
    fn damage_is_not_mistaken_for_appended_bytes() {
        let key = DataKey::from_bytes([5u8; 32]);
        let nonce = [7u8; 12];
        let mut data = sealed(&key, &nonce, 50);
        data[3] ^= 1;
        data.push(0);
        assert!(!has_final_prefix(&key, &nonce, &data, 4095));
        assert!(!has_final_prefix(&key, &nonce, &data[..10], 4095));
    }
}
