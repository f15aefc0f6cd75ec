//! The table of contents of a pg_dump custom-format archive, read from the
//! archive itself rather than from `pg_restore --list`. The listing prints
//! each entry as space-separated words, with newlines in names turned into
//! spaces, so it cannot tell `TABLE ATTACH public payment_p2022_01` from a
//! table named `ATTACH.public`, nor `"my table"` from two words. The archive
//! stores every field as a length-prefixed string, which is exact.
//!
//! The layout (PostgreSQL's `pg_backup_archiver.c`, `ReadHead` and
//! `ReadToc`, and `pg_backup_custom.c`, `_ReadExtraToc`): the magic
//! `PGDMP`, the format version (major, minor, revision bytes), the sizes of
//! an integer and of a file offset, the format byte, the compression, the
//! creation time, names and versions; then the entry count and the entries.
//! An integer is a sign byte and `intSize` little-endian bytes; a string is
//! an integer length (negative for none) and that many bytes. Versions 1.12
//! (PostgreSQL 9.6) to 1.16 (PostgreSQL 17) are read; only the fields the
//! checks and the data loader ([`super::load`]) need are kept.

use std::io::{BufReader, Read};
use std::path::Path;

/// The format versions this reader knows, as (major, minor).
const OLDEST: (u8, u8) = (1, 12);
const NEWEST: (u8, u8) = (1, 16);
/// pg_dump's custom format.
const FORMAT_CUSTOM: u8 = 1;
/// More entries than any real schema has; a count past it is damage.
const MAX_ENTRIES: i64 = 50_000_000;
/// The longest name kept (PostgreSQL's names are at most 63 bytes; tags of
/// other entries can be longer, but those are skipped, not kept).
const MAX_KEPT: i64 = 64 * 1024;
/// The longest `COPY` statement kept: a table of 1,600 columns with
/// 63-byte quoted names needs about 110 KiB.
const MAX_COPY: i64 = 1024 * 1024;

/// One entry the checks need: a table, a table's data, or a partition's
/// attachment to its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's dump id: what `pg_restore --list` prints first and what
    /// the data section's blocks name.
    pub id: i64,
    /// `TABLE`, `TABLE DATA` or `TABLE ATTACH`.
    pub desc: String,
    pub schema: String,
    /// The table's name (for `TABLE ATTACH`, the partition's).
    pub name: String,
    /// For `TABLE DATA`: the `COPY ... FROM stdin;` statement its rows are
    /// loaded with (none for a dump made with `--inserts`).
    pub copy: Option<String>,
}

/// What the checks need of a dump's table of contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toc {
    /// How many entries the archive has in all.
    pub count: usize,
    /// Its tables, table data and partition attachments, in order.
    pub entries: Vec<Entry>,
    /// Whether the table data is compressed (zlib in a version 1 archive's
    /// dump); only uncompressed data is loaded by the daemon itself.
    pub compressed: bool,
    /// The dump's character set, from its `ENCODING` entry.
    pub encoding: Option<String>,
    /// The size of the archive's integers, which the data section uses too.
    pub int_size: usize,
    /// Where the data section starts: the byte after the table of contents.
    pub data_start: u64,
}

impl Toc {
    fn of(&self, desc: &str) -> impl Iterator<Item = &Entry> {
        let desc = desc.to_owned();
        self.entries.iter().filter(move |e| e.desc == desc)
    }

    /// Every table the dump creates (ordinary, partitioned, partitions).
    pub fn tables(&self) -> impl Iterator<Item = &Entry> {
        self.of("TABLE")
    }

    /// Every partition the dump attaches to its parent.
    pub fn attached(&self) -> impl Iterator<Item = &Entry> {
        self.of("TABLE ATTACH")
    }

    /// How many tables have their data in the dump.
    pub fn data_entries(&self) -> usize {
        self.of("TABLE DATA").count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TocError {
    #[error("reading the dump failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dump's table of contents is damaged: {0}")]
    Damaged(String),
    #[error("the dump is in archive format {0}.{1}, which this daemon does not read")]
    Version(u8, u8),
}

fn damaged(what: impl Into<String>) -> TocError {
    TocError::Damaged(what.into())
}

/// Reads the table of contents at the start of a custom-format dump.
pub fn read(path: &Path) -> Result<Toc, TocError> {
    let file = std::fs::File::open(path)?;
    parse(BufReader::with_capacity(1 << 16, file))
}

struct Reader<R> {
    inner: Counted<R>,
    int_size: usize,
}

/// A reader that counts what it gave, so the end of the table of contents
/// is known without a second pass.
struct Counted<R> {
    inner: R,
    taken: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

impl<R: Read> Reader<R> {
    fn byte(&mut self) -> Result<u8, TocError> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b).map_err(eof)?;
        Ok(b[0])
    }

    fn int(&mut self) -> Result<i64, TocError> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                value |= b << (8 * i);
            } else if b != 0 {
                return Err(damaged("an integer does not fit in 64 bits"));
            }
        }
        Ok(if negative { -value } else { value })
    }

    /// A string, kept if it is at most `MAX_KEPT` bytes; `None` for the
    /// archive's "no string".
    fn string(&mut self) -> Result<Option<String>, TocError> {
        self.string_up_to(MAX_KEPT)
    }

    fn string_up_to(&mut self, max: i64) -> Result<Option<String>, TocError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > max {
            return Err(damaged(format!("a field of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(eof)?;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    /// Skips a string whatever its length (definitions can be long).
    fn skip_string(&mut self) -> Result<(), TocError> {
        let len = self.int()?;
        if len > 0 {
            let skipped = std::io::copy(
                &mut (&mut self.inner).take(len as u64),
                &mut std::io::sink(),
            )?;
            if skipped < len as u64 {
                return Err(damaged("the dump ends inside its table of contents"));
            }
        }
        Ok(())
    }
}

fn eof(e: std::io::Error) -> TocError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        damaged("the dump ends inside its table of contents")
    } else {
        TocError::Io(e)
    }
}

pub fn parse(input: impl Read) -> Result<Toc, TocError> {
    let mut r = Reader {
        inner: Counted {
            inner: input,
            taken: 0,
        },
        int_size: 4,
    };
    let mut magic = [0u8; 5];
    r.inner.read_exact(&mut magic).map_err(eof)?;
    if &magic != b"PGDMP" {
        return Err(damaged("it is not a pg_dump custom-format archive"));
    }
    let (major, minor, _rev) = (r.byte()?, r.byte()?, r.byte()?);
    if (major, minor) < OLDEST || (major, minor) > NEWEST {
        return Err(TocError::Version(major, minor));
    }
    let v = |m: u8| minor >= m;
    let int_size = r.byte()? as usize;
    if !(1..=32).contains(&int_size) {
        return Err(damaged(format!("an integer size of {int_size}")));
    }
    r.int_size = int_size;
    let off_size = r.byte()? as usize;
    if r.byte()? != FORMAT_CUSTOM {
        return Err(damaged("it is not in pg_dump's custom format"));
    }
    // The compression algorithm (0 is none), or before 1.15 the zlib level
    // (0 is none, -1 the default).
    let compressed = if v(15) { r.byte()? != 0 } else { r.int()? != 0 };
    for _ in 0..7 {
        r.int()?; // creation time: sec, min, hour, day, month, year, isdst
    }
    r.skip_string()?; // database name
    r.skip_string()?; // server version
    r.skip_string()?; // pg_dump version

    let count = r.int()?;
    if !(0..=MAX_ENTRIES).contains(&count) {
        return Err(damaged(format!("{count} entries")));
    }
    let mut toc = Toc {
        count: count as usize,
        entries: Vec::new(),
        compressed,
        encoding: None,
        int_size,
        data_start: 0,
    };
    for _ in 0..count {
        let id = r.int()?;
        if id <= 0 {
            return Err(damaged(format!("an entry numbered {id}")));
        }
        r.int()?; // had a data dumper
        r.skip_string()?; // catalog table oid
        r.skip_string()?; // oid
        let tag = r.string()?.unwrap_or_default();
        let desc = r.string()?.unwrap_or_default();
        r.int()?; // section
        if desc == "ENCODING" {
            // "SET client_encoding = 'UTF8';"
            let defn = r.string()?.unwrap_or_default();
            toc.encoding = defn
                .split('\'')
                .nth(1)
                .filter(|e| {
                    !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .map(str::to_owned);
        } else {
            r.skip_string()?; // definition
        }
        r.skip_string()?; // drop statement
        let copy = if desc == "TABLE DATA" {
            r.string_up_to(MAX_COPY)?
        } else {
            r.skip_string()?;
            None
        };
        let namespace = r.string()?.unwrap_or_default();
        r.skip_string()?; // tablespace
        if v(14) {
            r.skip_string()?; // table access method
        }
        if v(16) {
            r.int()?; // relkind
        }
        r.skip_string()?; // owner
        r.skip_string()?; // "with oids", always false
                          // Dependencies, up to a missing string.
        loop {
            let len = r.int()?;
            if len < 0 {
                break;
            }
            if len > MAX_KEPT {
                return Err(damaged(format!("a dependency of {len} bytes")));
            }
            let mut buf = vec![0u8; len as usize];
            r.inner.read_exact(&mut buf).map_err(eof)?;
        }
        // The custom format's data offset: a flag byte and the offset.
        r.byte()?;
        for _ in 0..off_size {
            r.byte()?;
        }
        if matches!(desc.as_str(), "TABLE" | "TABLE DATA" | "TABLE ATTACH") {
            toc.entries.push(Entry {
                id,
                desc,
                schema: namespace,
                name: tag,
                copy: copy.filter(|c| c.starts_with("COPY ")),
            });
        }
    }
    toc.data_start = r.inner.taken;
    Ok(toc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes archive fields the way pg_dump does, for hand-made archives.
    struct Writer(Vec<u8>);

    impl Writer {
        fn int(&mut self, v: i64) {
            self.0.push(u8::from(v < 0));
            self.0
                .extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn string(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.0.extend_from_slice(s.as_bytes());
                }
            }
        }
    }

    fn archive(minor: u8, entries: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut w = Writer(b"PGDMP".to_vec());
        w.0.extend_from_slice(&[1, minor, 0, 4, 8, FORMAT_CUSTOM]);
        if minor >= 15 {
            w.0.push(0);
        } else {
            w.int(0);
        }
        for _ in 0..7 {
            w.int(1);
        }
        for s in ["app", "15.0", "15.0"] {
            w.string(Some(s));
        }
        w.int(entries.len() as i64);
        for (i, (desc, schema, tag)) in entries.iter().enumerate() {
            w.int(i as i64 + 1);
            w.int(0);
            w.string(Some("1259"));
            w.string(Some("16384"));
            w.string(Some(tag));
            w.string(Some(desc));
            w.int(1);
            w.string(Some(&"CREATE TABLE x ();".repeat(10_000)));
            w.string(Some(""));
            w.string(None);
            w.string(Some(schema));
            w.string(Some(""));
            if minor >= 14 {
                w.string(Some("heap"));
            }
            if minor >= 16 {
                w.int(114);
            }
            w.string(Some("postgres"));
            w.string(Some("false"));
            w.string(Some("7"));
            w.string(None);
            w.0.push(3);
            w.0.extend_from_slice(&[0; 8]);
        }
        w.0
    }

    #[test]
    fn names_are_read_exactly_in_every_known_version() {
        let entries = [
            ("TABLE", "public", "payment"),
            ("TABLE", "public", "payment_p2022_01"),
            ("TABLE ATTACH", "public", "payment_p2022_01"),
            ("TABLE", "public", "my table"),
            ("TABLE", "Sch\"ema", "new\nline"),
            ("TABLE", "public", "таблица"),
            ("COMMENT", "public", "TABLE payment"),
            ("TABLE DATA", "public", "my table"),
        ];
        for minor in 12..=16 {
            let toc = parse(&archive(minor, &entries)[..]).unwrap();
            assert_eq!(toc.count, entries.len());
            let tables: Vec<(&str, &str)> = toc
                .tables()
                .map(|e| (e.schema.as_str(), e.name.as_str()))
                .collect();
            assert_eq!(
                tables,
                [
                    ("public", "payment"),
                    ("public", "payment_p2022_01"),
                    ("public", "my table"),
                    ("Sch\"ema", "new\nline"),
                    ("public", "таблица"),
                ]
            );
            assert_eq!(toc.attached().count(), 1);
            assert_eq!(toc.data_entries(), 1);
        }
    }

    #[test]
    fn damage_and_unknown_versions_are_refused_not_misread() {
        let good = archive(14, &[("TABLE", "public", "t")]);
        for cut in [3, 20, good.len() - 1] {
            assert!(
                matches!(parse(&good[..cut]), Err(TocError::Damaged(_))),
                "cut at {cut}"
            );
        }
        let mut newer = good.clone();
        newer[6] = 99;
        assert!(matches!(parse(&newer[..]), Err(TocError::Version(1, 99))));
        assert!(matches!(
            parse(&b"not a dump"[..]),
            Err(TocError::Damaged(_))
        ));
    }
}
