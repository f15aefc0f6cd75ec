//! Writing an archive file so that making it durable at the end is short.
//!
//! Every archive written here is fsynced before it counts (a backup before
//! it is catalogued, an import before its verdict, a download before it is
//! renamed into place). Left alone, the kernel holds the dirty pages until
//! that fsync and then writes the whole file while the writer waits: on
//! this machine that wait was a third of a download's time. So every few
//! megabytes the range just written is handed to the disk
//! (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which starts the
//! writeback and does not wait for it), and the final fsync only has the
//! last few megabytes left to wait for. Durability still comes from that
//! fsync alone; this only moves the disk's work earlier.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Bytes written between two hand-overs to the disk.
const STEP: u64 = 8 << 20;

/// A file being written, its dirty pages handed to the disk as it goes.
pub struct WriteBehind {
    file: File,
    written: u64,
    /// Where the range not yet handed over starts.
    handed: u64,
}

impl WriteBehind {
    pub fn new(file: File) -> WriteBehind {
        WriteBehind {
            file,
            written: 0,
            handed: 0,
        }
    }

    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Writes the rest and waits until the whole file is on the disk.
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn hand_over(&mut self) {
        let len = self.written - self.handed;
        if len < STEP {
            return;
        }
        let (Ok(offset), Ok(nbytes)) = (i64::try_from(self.handed), i64::try_from(len)) else {
            return;
        };
        // SAFETY: sync_file_range reads no memory of ours; the descriptor
        // is owned by `self.file` and open for the whole call. Its result is
        // advisory: a failure (a file system that does not support it)
        // leaves everything to the final fsync, as without it.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                nbytes,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.handed = self.written;
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.hand_over();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_exactly_what_it_is_given() {
        let dir = std::env::temp_dir().join(format!("berkut-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..(STEP as usize * 2 + 12_345))
            .map(|i| (i % 241) as u8)
            .collect();
        let mut w = WriteBehind::new(File::create(&path).unwrap());
        for piece in data.chunks(1 << 20) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.handed, 2 * STEP, "handed over in steps");
        w.sync_all().unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
