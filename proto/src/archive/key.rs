//! Master keys, their public ids and the keyring a reader searches. A master
//! key is the one secret an operator keeps; it never encrypts data directly
//! but wraps a fresh data key per archive (see `header.rs`). The key id is a
//! hash of the key, so that a reader can pick the right key from a keyring and
//! say which key an archive needs without revealing anything about it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Domain separation for the key id, so that the id of a key can never equal
/// some other hash of it that another tool might publish.
const KEY_ID_CONTEXT: &[u8] = b"berkut-bscc-key-id-v1";

/// Why a text is not a master key. The message says how to make a good key
/// and never repeats the text, which may be a slightly wrong real key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a valid master key: {reason}; a master key is 32 random bytes written as base64 \
     (44 characters) or as 64 hex digits: generate one with `berkutctl key generate` or \
     `head -c 32 /dev/urandom | base64`"
)]
pub struct KeyError {
    reason: &'static str,
}

/// The 256-bit secret that wraps every archive's data key.
///
/// The bytes are wiped from memory when the key is dropped, and `Debug` shows
/// only the key id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_LEN],
}

impl MasterKey {
    /// Makes a fresh key from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes, which leaves no
    /// safe way to make a key.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        if let Err(err) = OsRng.try_fill_bytes(&mut bytes) {
            panic!("the operating system's random source failed: {err}");
        }
        MasterKey { bytes }
    }

    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        MasterKey { bytes }
    }

    /// Reads a key written as standard base64 (with padding) or as hex.
    /// Whitespace around the key, such as a trailing newline, is ignored.
    pub fn parse(text: &str) -> Result<MasterKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError {
                reason: "the key is empty",
            });
        }
        // Decoded bytes are key material too, so they are wiped whatever the
        // outcome.
        let decoded: Zeroizing<Vec<u8>> = if text.len() == 2 * MASTER_KEY_LEN {
            match hex::decode(text) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(_) => {
                    return Err(KeyError {
                        reason: "64 characters long but not hex",
                    })
                }
            }
        } else {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(_) => {
                    return Err(KeyError {
                        reason: "the key is neither base64 nor 64 hex digits",
                    })
                }
            }
        };
        let bytes: [u8; MASTER_KEY_LEN] = decoded.as_slice().try_into().map_err(|_| KeyError {
            reason: "the key does not decode to exactly 32 bytes",
        })?;
        Ok(MasterKey { bytes })
    }

    /// The key as standard base64, the form `parse` reads back.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.bytes))
    }

    pub fn key_id(&self) -> KeyId {
        let mut hasher = Sha256::new();
        hasher.update(KEY_ID_CONTEXT);
        hasher.update(self.bytes);
        let digest = hasher.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The public name of a master key: the first 8 bytes of
/// SHA-256("berkut-bscc-key-id-v1" || key), shown as 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

/// Why a string is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid key id (expected 16 hex digits)")]
pub struct InvalidKeyId;

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = InvalidKeyId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 8];
        if s.len() != 16 {
            return Err(InvalidKeyId);
        }
        hex::decode_to_slice(s, &mut id).map_err(|_| InvalidKeyId)?;
        Ok(KeyId(id))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The keys a reader may use: the primary key, which writes new archives, and
/// older keys kept so that archives written before a rotation stay readable.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub primary: MasterKey,
    pub others: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(primary: MasterKey) -> Keyring {
        Keyring {
            primary,
            others: Vec::new(),
        }
    }

    /// Adds a key that may read archives but does not write them.
    pub fn with_other(mut self, key: MasterKey) -> Keyring {
        self.others.push(key);
        self
    }

    pub fn primary(&self) -> &MasterKey {
        &self.primary
    }

    /// The key with this id, the primary key first.
    pub fn find(&self, id: &KeyId) -> Option<&MasterKey> {
        std::iter::once(&self.primary)
            .chain(self.others.iter())
            .find(|key| key.key_id() == *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MasterKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        MasterKey::from_bytes(bytes)
    }

    #[test]
    fn parses_base64_and_hex_with_whitespace() {
        let key = sample();
        let b64 = key.to_base64();
        assert_eq!(b64.len(), 44);
        let hex_text = format!("  {}\n", hex::encode(key.as_bytes()));
        assert_eq!(
            MasterKey::parse(&format!("{}\n", *b64)).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert_eq!(
            MasterKey::parse(&hex_text).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert_eq!(
            MasterKey::parse(&hex_text.to_uppercase())
                .unwrap()
                .as_bytes(),
            key.as_bytes()
        );
    }

    #[test]
    fn refuses_bad_keys_without_echoing_them() {
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        let unpadded = short.trim_end_matches('=').to_owned();
        let cases = [
            String::new(),
            "   ".into(),
            short.clone(),
            unpadded,
            "z".repeat(64),
            "secret-passphrase".into(),
            hex::encode([1u8; 33]),
        ];
        for text in cases {
            let err = MasterKey::parse(&text).unwrap_err().to_string();
            assert!(err.contains("berkutctl key generate"), "{err}");
            assert!(err.contains("head -c 32 /dev/urandom | base64"), "{err}");
            if !text.trim().is_empty() {
                assert!(!err.contains(text.trim()), "{err} echoes the input");
            }
        }
    }

    #[test]
    fn debug_shows_only_the_id() {
        let key = sample();
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.key_id().to_string()));
        assert!(!shown.contains(&hex::encode(key.as_bytes())));
        assert!(!shown.contains(key.to_base64().as_str()));
        assert!(!format!("{:?}", Keyring::new(key.clone())).contains(key.to_base64().as_str()));
    }

    #[test]
    fn key_id_is_the_documented_hash() {
        // The value is also printed in docs/FORMAT.md.
        let id = sample().key_id();
        let mut hasher = Sha256::new();
        hasher.update(b"berkut-bscc-key-id-v1");
        hasher.update(sample().as_bytes());
        assert_eq!(id.0[..], hasher.finalize()[..8]);
    }

    #[test]
    fn key_id_text_and_serde_round_trip() {
        let id = sample().key_id();
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<KeyId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!("0123".parse::<KeyId>().is_err());
        assert!("zz23456789abcdef".parse::<KeyId>().is_err());
        assert!(serde_json::from_str::<KeyId>("\"nothex\"").is_err());
    }

    #[test]
    fn keyring_finds_primary_and_others() {
        let primary = MasterKey::generate();
        let old = MasterKey::generate();
        let stranger = MasterKey::generate();
        let ring = Keyring::new(primary.clone()).with_other(old.clone());
        assert_eq!(ring.primary().key_id(), primary.key_id());
        assert!(ring.find(&primary.key_id()).is_some());
        assert_eq!(
            ring.find(&old.key_id()).map(MasterKey::key_id),
            Some(old.key_id())
        );
        assert!(ring.find(&stranger.key_id()).is_none());
    }
}
