//! The 112-byte header at the start of every archive. It names the master key
//! (by id) and carries the archive's own random data key, encrypted under a
//! key derived from the master key and a per-archive salt. The tag of that
//! encryption also authenticates the rest of the header, so nothing in it can
//! change unnoticed, and replacing the header alone (`rewrap`) moves an
//! archive to a new master key without touching the payload.

use std::fmt;
use std::io::{self, Read};

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::key::{KeyId, Keyring, MasterKey};
use super::{
    ArchiveError, FORMAT_VERSION, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, MIN_FORMAT_VERSION,
    TAG_LEN,
};

/// Length of the header in bytes.
pub const HEADER_LEN: usize = 112;

/// Length of the wrapped data key: 32 bytes of ciphertext and a 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 32 + TAG_LEN;

/// Bytes 0..64 of the header: everything the key-wrap tag authenticates as
/// associated data.
const AUTHENTICATED_LEN: usize = 64;

/// HKDF info string for the key-encryption key.
const KEY_WRAP_INFO: &[u8] = b"berkut-bscc-v1 key-wrap";

/// The per-archive key that seals the payload. It is wiped when dropped and
/// its `Debug` shows nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// Wraps known bytes; only test vectors have a reason to do this.
    #[doc(hidden)]
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    #[cfg(test)]
    pub(crate) fn generate() -> Result<DataKey, ArchiveError> {
        let mut key = DataKey([0u8; 32]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), ArchiveError> {
    OsRng.try_fill_bytes(buf).map_err(|err| {
        ArchiveError::Io(io::Error::other(format!(
            "the operating system's random source failed: {err}"
        )))
    })
}

/// A parsed header. Reading one needs no key; only [`Header::unwrap_data_key`]
/// proves that it is authentic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u16,
    /// Plaintext bytes per payload chunk.
    pub chunk_size: u32,
    pub key_id: KeyId,
    pub salt: [u8; 32],
    pub nonce_prefix: [u8; 7],
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
    /// Byte 63, which writers set to zero. It is kept as read rather than
    /// checked, so that a non-zero value makes the header fail
    /// authentication like any other damage.
    reserved: u8,
}

impl Header {
    /// Builds the header of a new archive: wraps `data_key` under `key` with
    /// `salt`.
    pub(crate) fn seal(
        key: &MasterKey,
        version: u16,
        chunk_size: u32,
        salt: [u8; 32],
        nonce_prefix: [u8; 7],
        data_key: &DataKey,
    ) -> Result<Header, ArchiveError> {
        check_chunk_size(chunk_size)?;
        check_version(version)?;
        let mut header = Header {
            version,
            flags: 0,
            chunk_size,
            key_id: key.key_id(),
            salt,
            nonce_prefix,
            wrapped_key: [0u8; WRAPPED_KEY_LEN],
            reserved: 0,
        };
        let aad = header.authenticated_bytes();
        let mut sealed = Zeroizing::new(*data_key.as_bytes());
        let tag = key_wrap_cipher(key, &salt)
            .encrypt_inout_detached(&Nonce::default(), &aad, sealed.as_mut_slice().into())
            .map_err(|_| ArchiveError::HeaderAuth)?;
        header.wrapped_key[..32].copy_from_slice(sealed.as_slice());
        header.wrapped_key[32..].copy_from_slice(&tag);
        Ok(header)
    }

    /// Reads and checks a header without a key: the magic bytes, the version,
    /// the flags and the chunk size, in that order.
    pub fn read_from(reader: &mut impl Read) -> Result<Header, ArchiveError> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(reader, &mut bytes)?;
        let magic_seen = got.min(MAGIC.len());
        if bytes[..magic_seen] != MAGIC[..magic_seen] {
            return Err(ArchiveError::NotAnArchive);
        }
        if got < HEADER_LEN {
            return Err(ArchiveError::Truncated);
        }
        Header::parse(&bytes)
    }

    /// Parses and checks the header bytes, as [`Header::read_from`] does.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, ArchiveError> {
        if bytes[..8] != MAGIC {
            return Err(ArchiveError::NotAnArchive);
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        check_version(version)?;
        let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
        if flags != 0 {
            return Err(ArchiveError::UnsupportedFlags(flags));
        }
        let chunk_size = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        check_chunk_size(chunk_size)?;
        let mut header = Header {
            version,
            flags,
            chunk_size,
            key_id: KeyId([0u8; 8]),
            salt: [0u8; 32],
            nonce_prefix: [0u8; 7],
            wrapped_key: [0u8; WRAPPED_KEY_LEN],
            reserved: bytes[63],
        };
        header.key_id.0.copy_from_slice(&bytes[16..24]);
        header.salt.copy_from_slice(&bytes[24..56]);
        header.nonce_prefix.copy_from_slice(&bytes[56..63]);
        header.wrapped_key.copy_from_slice(&bytes[64..HEADER_LEN]);
        Ok(header)
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..AUTHENTICATED_LEN].copy_from_slice(&self.authenticated_bytes());
        bytes[AUTHENTICATED_LEN..].copy_from_slice(&self.wrapped_key);
        bytes
    }

    /// Finds the header's master key in `keyring` and decrypts the data key,
    /// which also authenticates every byte of the header.
    pub fn unwrap_data_key(&self, keyring: &Keyring) -> Result<DataKey, ArchiveError> {
        let key = keyring
            .find(&self.key_id)
            .ok_or(ArchiveError::UnknownKey(self.key_id))?;
        let aad = self.authenticated_bytes();
        let mut data_key = DataKey([0u8; 32]);
        data_key.0.copy_from_slice(&self.wrapped_key[..32]);
        let tag = Tag::from(tag_bytes(&self.wrapped_key));
        key_wrap_cipher(key, &self.salt)
            .decrypt_inout_detached(
                &Nonce::default(),
                &aad,
                data_key.0.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| ArchiveError::HeaderAuth)?;
        Ok(data_key)
    }

    /// Re-wraps the data key under `new` with a fresh salt. The payload does
    /// not change: it depends only on the data key and the nonce prefix, so an
    /// archive moves to a new master key by overwriting its first 112 bytes.
    pub fn rewrap(&self, keyring: &Keyring, new: &MasterKey) -> Result<Header, ArchiveError> {
        let mut salt = [0u8; 32];
        fill_random(&mut salt)?;
        self.rewrap_with_salt(keyring, new, salt)
    }

    /// `rewrap` with a given salt, for tests that need fixed bytes.
    #[doc(hidden)]
    pub fn rewrap_with_salt(
        &self,
        keyring: &Keyring,
        new: &MasterKey,
        salt: [u8; 32],
    ) -> Result<Header, ArchiveError> {
        let data_key = self.unwrap_data_key(keyring)?;
        // The version stays: the payload's layout depends on it.
        Header::seal(
            new,
            self.version,
            self.chunk_size,
            salt,
            self.nonce_prefix,
            &data_key,
        )
    }

    /// Bytes 0..64, which the key-wrap tag authenticates.
    fn authenticated_bytes(&self) -> [u8; AUTHENTICATED_LEN] {
        let mut bytes = [0u8; AUTHENTICATED_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&self.version.to_be_bytes());
        bytes[10..12].copy_from_slice(&self.flags.to_be_bytes());
        bytes[12..16].copy_from_slice(&self.chunk_size.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.key_id.0);
        bytes[24..56].copy_from_slice(&self.salt);
        bytes[56..63].copy_from_slice(&self.nonce_prefix);
        bytes[63] = self.reserved;
        bytes
    }
}

fn tag_bytes(wrapped: &[u8; WRAPPED_KEY_LEN]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&wrapped[32..]);
    tag
}

/// Every version from 1 to the one this build writes is read, forever.
pub(crate) fn check_version(version: u16) -> Result<(), ArchiveError> {
    if (MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(ArchiveError::UnsupportedVersion(version))
    }
}

pub(crate) fn check_chunk_size(chunk_size: u32) -> Result<(), ArchiveError> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(ArchiveError::BadChunkSize(chunk_size))
    }
}

/// The key-encryption key is HKDF-SHA256(ikm = master key, salt, info). A
/// fresh salt per archive makes it unique per archive, which is what makes
/// the all-zero nonce of the key wrap safe.
fn key_wrap_cipher(key: &MasterKey, salt: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut kek = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), key.as_bytes())
        .expand(KEY_WRAP_INFO, kek.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    ChaCha20Poly1305::new(&Key::from(*kek))
}

/// Reads until `buf` is full or the reader ends; returns how much was read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &MasterKey) -> (Header, DataKey) {
        let data_key = DataKey::generate().unwrap();
        let header =
            Header::seal(key, FORMAT_VERSION, 4096, [3u8; 32], [4u8; 7], &data_key).unwrap();
        (header, data_key)
    }

    #[test]
    fn header_round_trips_through_bytes() {
        let key = MasterKey::generate();
        let (header, data_key) = sealed(&key);
        let bytes = header.to_bytes();
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(bytes[63], 0);
        let parsed = Header::read_from(&mut &bytes[..]).unwrap();
        assert_eq!(parsed, header);
        let unwrapped = parsed.unwrap_data_key(&Keyring::new(key)).unwrap();
        assert_eq!(unwrapped.as_bytes(), data_key.as_bytes());
    }

    #[test]
    fn every_header_byte_is_authenticated() {
        let key = MasterKey::generate();
        let ring = Keyring::new(key.clone());
        let (header, _) = sealed(&key);
        let bytes = header.to_bytes();
        for i in 0..HEADER_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x01;
            // Each damaged header is refused somewhere: while parsing, when
            // looking up the key, or when unwrapping.
            let result = Header::parse(&damaged).and_then(|h| h.unwrap_data_key(&ring));
            assert!(result.is_err(), "byte {i} was not authenticated");
        }
    }

    #[test]
    fn rewrap_moves_the_data_key_to_a_new_master_key() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let (header, data_key) = sealed(&old);
        let rewrapped = header.rewrap(&Keyring::new(old.clone()), &new).unwrap();
        assert_eq!(rewrapped.key_id, new.key_id());
        assert_ne!(rewrapped.salt, header.salt);
        assert_eq!(rewrapped.nonce_prefix, header.nonce_prefix);
        assert_eq!(rewrapped.chunk_size, header.chunk_size);
        let again = rewrapped.unwrap_data_key(&Keyring::new(new)).unwrap();
        assert_eq!(again.as_bytes(), data_key.as_bytes());
        assert!(matches!(
            rewrapped.unwrap_data_key(&Keyring::new(old.clone())),
            Err(ArchiveError::UnknownKey(_))
        ));
        assert!(matches!(
            header.rewrap(&Keyring::new(MasterKey::generate()), &old),
            Err(ArchiveError::UnknownKey(_))
        ));
    }

    #[test]
    fn short_or_foreign_input_is_refused_before_any_key_is_needed() {
        let bytes = sealed(&MasterKey::generate()).0.to_bytes();
        assert!(matches!(
            Header::read_from(&mut &b""[..]),
            Err(ArchiveError::Truncated)
        ));
        assert!(matches!(
            Header::read_from(&mut &bytes[..5]),
            Err(ArchiveError::Truncated)
        ));
        assert!(matches!(
            Header::read_from(&mut &bytes[..100]),
            Err(ArchiveError::Truncated)
        ));
        assert!(matches!(
            Header::read_from(&mut &b"PGDMP custom dump"[..]),
            Err(ArchiveError::NotAnArchive)
        ));
        for size in [0u32, 4095, (16 << 20) + 1, u32::MAX] {
            let mut bad = bytes;
            bad[12..16].copy_from_slice(&size.to_be_bytes());
            assert!(matches!(Header::parse(&bad), Err(ArchiveError::BadChunkSize(s)) if s == size));
        }
    }
}
