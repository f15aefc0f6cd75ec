//! Helpers shared by the archive tests: a manifest with fixed values, and
//! functions that build an archive from parts and read one back whole.

use std::io::Write;

use berkut_proto::archive::{verify, ArchiveError, ArchiveWriter, Keyring, MasterKey};
use berkut_proto::manifest::{
    DatabaseInfo, Manifest, Origin, PartKind, Scope, StepTiming, MANIFEST_VERSION,
};
use time::macros::datetime;

/// The chunk size the tests use, the smallest allowed, so that small inputs
/// span several chunks.
pub const CHUNK: u32 = 4096;

/// Bytes of one sealed full chunk on disk.
pub const SEALED_CHUNK: usize = CHUNK as usize + 16;

pub const HEADER: usize = 112;

/// A manifest with fixed values; the writer fills in `parts`.
pub fn manifest() -> Manifest {
    Manifest {
        manifest_version: MANIFEST_VERSION,
        backup_id: "20250102T030405Z-0a0b0c0d".into(),
        label: "vector".into(),
        scope: Scope::Full,
        include_files: false,
        origin: Origin::Manual,
        created_at: datetime!(2025-01-02 03:04:05 UTC),
        finished_at: datetime!(2025-01-02 03:04:06 UTC),
        database: DatabaseInfo {
            name: "app".into(),
            server_version: "17.2".into(),
            pg_dump_version: "pg_dump (PostgreSQL) 17.2".into(),
        },
        parts: Vec::new(),
        timings: vec![StepTiming {
            step: "dump".into(),
            seconds: 1.5,
        }],
        tool: "berkutd test".into(),
        tables: None,
        properties: None,
        objects: None,
        files: Vec::new(),
    }
}

/// A part to write: name, kind and content.
pub type Part = (&'static str, PartKind, Vec<u8>);

/// Writes `parts` into an archive with chunk size [`CHUNK`].
pub fn build(key: &MasterKey, parts: &[Part]) -> Vec<u8> {
    let writer = ArchiveWriter::with_chunk_size(Vec::new(), key, CHUNK).unwrap();
    write_parts(writer, parts).0
}

/// Writes `parts` with `writer` and finishes it.
pub fn write_parts<W: Write>(mut writer: ArchiveWriter<W>, parts: &[Part]) -> (W, Manifest) {
    for (name, kind, content) in parts {
        let mut part = writer.begin_part(name, *kind).unwrap();
        part.write_all(content).unwrap();
        part.finish().unwrap();
    }
    writer.finish(manifest()).unwrap()
}

/// Parts read back: each name with its content.
pub type Contents = Vec<(String, Vec<u8>)>;

/// Verifies `archive` and returns the manifest and every part's content.
pub fn read_all(archive: &[u8], keyring: &Keyring) -> Result<(Manifest, Contents), ArchiveError> {
    let mut parts = Vec::new();
    let manifest = verify(archive, keyring, |name, reader| {
        let mut content = Vec::new();
        reader.read_to_end(&mut content)?;
        parts.push((name.to_owned(), content));
        Ok(())
    })?;
    Ok((manifest, parts))
}

/// Content where byte `i` is `i mod 251`, so that misplaced bytes show.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
