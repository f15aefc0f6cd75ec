//! The plaintext structure inside the sealed stream, shared by the writer and
//! the reader:
//!
//! ```text
//! payload := part* end
//! part    := 0x01 | u16 BE name_len | name | block* | u32 BE 0 | u64 BE size | sha256(32)
//! block   := u32 BE len (1..=16 MiB) | len bytes
//! end     := 0xFF
//! ```
//!
//! Parts are framed in blocks so that a writer can stream a part of unknown
//! length (pg_dump's output) without buffering it, and a reader can stream it
//! out without trusting any length beyond one block.

/// Starts a part.
pub(crate) const PART_TAG: u8 = 0x01;

/// Ends the payload.
pub(crate) const END_TAG: u8 = 0xFF;

/// The longest part name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 255;

/// The longest block a reader accepts.
pub(crate) const MAX_BLOCK_LEN: u32 = 16 << 20;

/// The block size the writer uses: big enough that the 4-byte block header is
/// noise, small enough that a part writer's buffer stays modest.
pub(crate) const WRITE_BLOCK_LEN: usize = 64 << 10;

/// The largest manifest a reader loads into memory. Real manifests are a few
/// kilobytes; the limit only stops a hostile key holder from exhausting
/// memory.
pub(crate) const MAX_MANIFEST_LEN: u64 = 16 << 20;

/// Whether `name` may name a part: 1 to 255 bytes of `[A-Za-z0-9._-]`, and
/// not `.` or `..`, so that a part name can safely become a file name when an
/// archive is extracted.
pub(crate) fn valid_part_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names() {
        for good in [
            "dump.pgcustom",
            "globals.sql",
            "a",
            "files-1_x.tar",
            &"n".repeat(255),
        ] {
            assert!(valid_part_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"n".repeat(256),
            "../x",
        ] {
            assert!(!valid_part_name(bad), "{bad:?}");
        }
    }
}
