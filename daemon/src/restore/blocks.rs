//! The data section of a pg_dump custom-format archive, read block by
//! block after the table of contents ([`super::toc`]). Each block is a type
//! byte (1 for a table's data, 3 for large objects), the dump id of its
//! entry, then chunks: an integer length and that many bytes, ending with a
//! length of 0. A large-objects block repeats (object id, chunks) until an
//! object id of 0. The section ends where the file does, at a block's
//! start (PostgreSQL's `pg_backup_custom.c`, `_readBlockHeader`,
//! `_skipData`, `_skipBlobs`).
//!
//! Every length is checked before anything is read on its word: a
//! negative one or a cut-off block is damage, named as such.

use std::io::Read;

/// A table's data.
const BLK_DATA: u8 = 1;
/// Large objects.
const BLK_BLOBS: u8 = 3;
/// Longer than any row PostgreSQL can send (1 GiB) with its framing.
const MAX_CHUNK: i64 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("reading the dump failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dump's data section is damaged: {0}")]
    Damaged(String),
}

fn damaged(what: impl Into<String>) -> BlockError {
    BlockError::Damaged(what.into())
}

fn eof(e: std::io::Error) -> BlockError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        damaged("the dump ends inside a block")
    } else {
        BlockError::Io(e)
    }
}

/// What a block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TableData,
    LargeObjects,
}

/// A reader positioned at the start of the data section.
pub struct Blocks<R> {
    inner: R,
    int_size: usize,
}

impl<R: Read> Blocks<R> {
    pub fn new(inner: R, int_size: usize) -> Blocks<R> {
        Blocks { inner, int_size }
    }

    /// The next block's kind and dump id; `None` at the end of the file.
    pub fn next_block(&mut self) -> Result<Option<(Kind, i64)>, BlockError> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let kind = match b[0] {
            BLK_DATA => Kind::TableData,
            BLK_BLOBS => Kind::LargeObjects,
            other => return Err(damaged(format!("a block of unknown type {other}"))),
        };
        let id = self.int()?;
        if id <= 0 {
            return Err(damaged(format!("a block for entry {id}")));
        }
        Ok(Some((kind, id)))
    }

    /// The next chunk's length within a table's data; `None` at its end.
    pub fn next_chunk(&mut self) -> Result<Option<usize>, BlockError> {
        match self.int()? {
            0 => Ok(None),
            n if (1..=MAX_CHUNK).contains(&n) => Ok(Some(n as usize)),
            n => Err(damaged(format!("a chunk of {n} bytes"))),
        }
    }

    /// Reads exactly `buf.len()` bytes of the current chunk.
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<(), BlockError> {
        self.inner.read_exact(buf).map_err(eof)
    }

    /// Skips the rest of the current block, of either kind.
    pub fn skip(&mut self, kind: Kind) -> Result<(), BlockError> {
        match kind {
            Kind::TableData => self.skip_chunks(),
            Kind::LargeObjects => loop {
                let oid = self.int()?;
                if oid == 0 {
                    return Ok(());
                }
                if oid < 0 {
                    return Err(damaged(format!("a large object numbered {oid}")));
                }
                self.skip_chunks()?;
            },
        }
    }

    fn skip_chunks(&mut self) -> Result<(), BlockError> {
        while let Some(n) = self.next_chunk()? {
            let skipped =
                std::io::copy(&mut (&mut self.inner).take(n as u64), &mut std::io::sink())?;
            if skipped < n as u64 {
                return Err(damaged("the dump ends inside a block"));
            }
        }
        Ok(())
    }

    fn int(&mut self) -> Result<i64, BlockError> {
        let mut sign = [0u8; 1];
        self.inner.read_exact(&mut sign).map_err(eof)?;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            let mut b = [0u8; 1];
            self.inner.read_exact(&mut b).map_err(eof)?;
            if i < 8 {
                value |= (b[0] as i64) << (8 * i);
            } else if b[0] != 0 {
                return Err(damaged("an integer does not fit in 64 bits"));
            }
        }
        if value < 0 {
            return Err(damaged("an integer does not fit in 64 bits"));
        }
        Ok(if sign[0] != 0 { -value } else { value })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a data section the way pg_dump does.
    #[derive(Default)]
    pub(crate) struct Section(pub Vec<u8>);

    impl Section {
        pub fn int(&mut self, v: i64) -> &mut Self {
            self.0.push(u8::from(v < 0));
            self.0
                .extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
            self
        }
        pub fn table(&mut self, id: i64, chunks: &[&[u8]]) -> &mut Self {
            self.0.push(BLK_DATA);
            self.int(id);
            for c in chunks {
                self.int(c.len() as i64);
                self.0.extend_from_slice(c);
            }
            self.int(0)
        }
        pub fn large_objects(&mut self, id: i64, objects: &[(i64, &[u8])]) -> &mut Self {
            self.0.push(BLK_BLOBS);
            self.int(id);
            for (oid, data) in objects {
                self.int(*oid);
                self.int(data.len() as i64);
                self.0.extend_from_slice(data);
                self.int(0);
            }
            self.int(0)
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(i64, Vec<u8>)>, BlockError> {
        let mut blocks = Blocks::new(bytes, 4);
        let mut out = Vec::new();
        while let Some((kind, id)) = blocks.next_block()? {
            if kind == Kind::LargeObjects {
                blocks.skip(kind)?;
                continue;
            }
            let mut data = Vec::new();
            while let Some(n) = blocks.next_chunk()? {
                let start = data.len();
                data.resize(start + n, 0);
                blocks.read_chunk(&mut data[start..])?;
            }
            out.push((id, data));
        }
        Ok(out)
    }

    #[test]
    fn tables_are_read_and_large_objects_skipped() {
        let mut s = Section::default();
        s.table(7, &[b"1\ta\n", b"2\tb\n", b"\\.\n\n\n"])
            .large_objects(8, &[(16400, b"blob one"), (16401, b"two")])
            .table(9, &[])
            .table(10, &[b"x\n"]);
        let read = read_all(&s.0).unwrap();
        assert_eq!(
            read,
            [
                (7, b"1\ta\n2\tb\n\\.\n\n\n".to_vec()),
                (9, vec![]),
                (10, b"x\n".to_vec())
            ]
        );
    }

    #[test]
    fn damage_is_named_not_misread() {
        let mut s = Section::default();
        s.table(7, &[b"1\ta\n", b"2\tb\n"]);
        for cut in 1..s.0.len() {
            assert!(
                matches!(read_all(&s.0[..cut]), Err(BlockError::Damaged(_))),
                "cut at {cut}"
            );
        }
        let mut unknown = s.0.clone();
        unknown[0] = 2;
        assert!(
            matches!(read_all(&unknown), Err(BlockError::Damaged(m)) if m.contains("unknown type 2"))
        );
        let mut negative = Section::default();
        negative.0.push(BLK_DATA);
        negative.int(7).int(-5);
        assert!(
            matches!(read_all(&negative.0), Err(BlockError::Damaged(m)) if m.contains("-5 bytes"))
        );
        let mut no_id = Section::default();
        no_id.0.push(BLK_DATA);
        no_id.int(0).int(0);
        assert!(matches!(read_all(&no_id.0), Err(BlockError::Damaged(_))));
        let mut wide = vec![BLK_DATA, 0];
        wide.extend_from_slice(&[0xff; 9]);
        let mut blocks = Blocks::new(&wide[..], 9);
        assert!(matches!(blocks.next_block(), Err(BlockError::Damaged(_))));
    }
}
