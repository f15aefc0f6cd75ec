//! Re-wrapping an archive's data key under another master key, so an old
//! key can be retired without touching the sealed payload: the header is
//! rewritten with a fresh salt and the new key's id, and every byte after it
//! is copied as it is. The payload's authentication does not depend on the
//! header's salt or key id, so the result verifies under the new key only.

use std::io::{self, Read, Write};

use super::header::Header;
use super::key::{Keyring, MasterKey};
use super::ArchiveError;

/// Copies an archive from `from` to `to` with its data key wrapped under
/// `new`; returns the old and the new header.
pub fn rewrap<R: Read, W: Write>(
    mut from: R,
    mut to: W,
    keyring: &Keyring,
    new: &MasterKey,
) -> Result<(Header, Header), ArchiveError> {
    let old = Header::read_from(&mut from)?;
    let rewrapped = old.rewrap(keyring, new)?;
    to.write_all(&rewrapped.to_bytes())?;
    io::copy(&mut from, &mut to)?;
    to.flush()?;
    Ok((old, rewrapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{verify, ArchiveWriter};
    use crate::manifest::{DatabaseInfo, Manifest, Origin, PartKind, Scope, MANIFEST_VERSION};

    fn manifest() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            backup_id: "20260101T000000Z-00000000".into(),
            label: String::new(),
            scope: Scope::Database,
            include_files: false,
            origin: Origin::Manual,
            created_at: time::macros::datetime!(2026-01-01 00:00 UTC),
            finished_at: time::macros::datetime!(2026-01-01 00:01 UTC),
            database: DatabaseInfo {
                name: "app".into(),
                server_version: "15".into(),
                pg_dump_version: "15".into(),
            },
            parts: Vec::new(),
            timings: Vec::new(),
            tool: "test".into(),
            tables: None,
            properties: None,
            objects: None,
            files: Vec::new(),
        }
    }

    #[test]
    fn a_rewrapped_archive_reads_under_the_new_key_only_and_keeps_its_payload() {
        let old_key = MasterKey::generate();
        let new_key = MasterKey::generate();
        let mut w = ArchiveWriter::with_chunk_size(Vec::new(), &old_key, 4096).unwrap();
        let mut part = w.begin_part("dump.pgcustom", PartKind::Dump).unwrap();
        part.write_all(&vec![7u8; 10_000]).unwrap();
        part.finish().unwrap();
        let (bytes, _) = w.finish(manifest()).unwrap();

        let mut out = Vec::new();
        let (before, after) = rewrap(
            &bytes[..],
            &mut out,
            &Keyring::new(old_key.clone()),
            &new_key,
        )
        .unwrap();
        assert_eq!(before.key_id, old_key.key_id());
        assert_eq!(after.key_id, new_key.key_id());
        assert_eq!(out.len(), bytes.len());
        assert_eq!(out[112..], bytes[112..], "the payload is untouched");
        assert!(verify(&out[..], &Keyring::new(new_key.clone()), |_, _| Ok(())).is_ok());
        assert!(matches!(
            verify(&out[..], &Keyring::new(old_key.clone()), |_, _| Ok(())),
            Err(ArchiveError::UnknownKey(_))
        ));
        // Without the old key there is nothing to rewrap with.
        let other = MasterKey::generate();
        assert!(matches!(
            rewrap(&bytes[..], Vec::new(), &Keyring::new(other), &new_key),
            Err(ArchiveError::UnknownKey(_))
        ));
    }
}
