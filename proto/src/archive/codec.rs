//! How a part's content is stored in a version 2 archive: as it is
//! (`none`) or as zstd frames (`zstd`). The writer compresses while it
//! writes and the reader decompresses while it reads, both streaming, so
//! memory stays bounded by one buffer and zstd's window whatever the size
//! of the part. The decompressor refuses frames whose window is larger than
//! [`MAX_WINDOW_LOG`] allows, so a hostile archive cannot make a reader
//! allocate more than that, whatever its frames claim.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{CParameter, DParameter};

/// Largest zstd window a reader accepts: 2^23 bytes (8 MiB). zstd levels 1
/// to 19 never use a larger window, and the decompressor's memory is about
/// the window plus a block.
pub const MAX_WINDOW_LOG: u32 = 23;

/// The highest zstd level a writer may use: the last one whose window fits
/// [`MAX_WINDOW_LOG`].
pub const MAX_ZSTD_LEVEL: i32 = 19;

/// Stored bytes a compressor gathers before handing them on.
const OUT_BUF: usize = 128 << 10;

/// How a part's content is stored. The number is the codec id byte of
/// `docs/FORMAT.md` section 5; the name is what the manifest says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Stored as it is.
    None,
    /// One or more zstd frames (RFC 8878) whose decompressed concatenation
    /// is the content.
    Zstd,
}

impl Codec {
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
        }
    }

    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a writer compresses the parts it is asked to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    pub codec: Codec,
    /// zstd level, 1 to [`MAX_ZSTD_LEVEL`]; ignored for `none`.
    pub level: i32,
    /// zstd worker threads; 0 compresses on the writing thread itself,
    /// N > 0 on N threads of zstd's own while the writer goes on sealing.
    pub threads: u32,
}

impl Compression {
    pub const NONE: Compression = Compression {
        codec: Codec::None,
        level: 0,
        threads: 0,
    };

    pub fn zstd(level: i32, threads: u32) -> Compression {
        Compression {
            codec: Codec::Zstd,
            level,
            threads,
        }
    }
}

/// A streaming zstd compressor producing one frame.
pub(crate) struct Compressor {
    encoder: Encoder<'static>,
    out: Vec<u8>,
}

impl Compressor {
    pub(crate) fn new(level: i32, threads: u32) -> io::Result<Compressor> {
        if !(1..=MAX_ZSTD_LEVEL).contains(&level) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("zstd level {level} is outside 1 to {MAX_ZSTD_LEVEL}"),
            ));
        }
        let mut encoder = Encoder::new(level)?;
        encoder.set_parameter(CParameter::ChecksumFlag(true))?;
        if threads > 0 {
            encoder.set_parameter(CParameter::NbWorkers(threads))?;
        }
        Ok(Compressor {
            encoder,
            out: Vec::with_capacity(OUT_BUF),
        })
    }

    /// Compresses `input`, handing the compressed bytes produced so far to
    /// `emit`.
    pub(crate) fn write(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut input = InBuffer::around(input);
        while input.pos < input.src.len() {
            self.out.clear();
            let mut output = OutBuffer::around(&mut self.out);
            self.encoder.run(&mut input, &mut output)?;
            if !self.out.is_empty() {
                emit(&self.out)?;
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn pledge_for_test(&mut self, size: u64) {
        self.encoder
            .set_pledged_src_size(Some(size))
            .expect("a pledge before any input");
    }

    /// Ends the frame, handing its last bytes to `emit`.
    pub(crate) fn finish(
        &mut self,
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            self.out.clear();
            let mut output = OutBuffer::around(&mut self.out);
            let left = self.encoder.finish(&mut output, true)?;
            if !self.out.is_empty() {
                emit(&self.out)?;
            }
            if left == 0 {
                return Ok(());
            }
        }
    }
}

/// A streaming zstd decompressor with a bounded window.
pub(crate) struct Decompressor {
    decoder: Decoder<'static>,
    /// zstd's hint after the last step; 0 means no frame is open and all
    /// its output has been handed out.
    in_frame: bool,
}

impl Decompressor {
    pub(crate) fn new() -> io::Result<Decompressor> {
        let mut decoder = Decoder::new()?;
        decoder.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))?;
        Ok(Decompressor {
            decoder,
            // A zstd part holds at least one frame: an empty stored part is
            // as incomplete as one cut inside a frame.
            in_frame: true,
        })
    }

    /// Decompresses from `input[*pos..]` into `out`; advances `*pos` past
    /// what it consumed and returns how many bytes it wrote.
    pub(crate) fn step(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        out: &mut [u8],
    ) -> io::Result<usize> {
        let mut inb = InBuffer::around(input);
        inb.set_pos(*pos);
        let mut outb = OutBuffer::around(out);
        let hint = self.decoder.run(&mut inb, &mut outb)?;
        let consumed = inb.pos() - *pos;
        *pos = inb.pos();
        let written = outb.pos();
        // zstd returns 0 exactly when a frame is complete and fully
        // flushed; bytes after that start a new frame. A step that did
        // nothing (no input, nothing left to flush) says only what the next
        // frame would need, so it changes nothing.
        if consumed > 0 || written > 0 {
            self.in_frame = hint != 0;
        }
        Ok(written)
    }

    /// Whether the stream stopped at the end of a complete frame.
    pub(crate) fn at_frame_end(&self) -> bool {
        !self.in_frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], level: i32, threads: u32) -> Vec<u8> {
        let mut c = Compressor::new(level, threads).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(7777) {
            c.write(piece, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        c.finish(&mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out
    }

    fn decompress(stored: &[u8]) -> io::Result<Vec<u8>> {
        let mut d = Decompressor::new()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        let mut pos = 0;
        loop {
            let n = d.step(stored, &mut pos, &mut buf)?;
            out.extend_from_slice(&buf[..n]);
            if n == 0 && pos == stored.len() {
                break;
            }
        }
        assert!(d.at_frame_end());
        Ok(out)
    }

    #[test]
    fn round_trips_with_and_without_workers() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
        for threads in [0, 2] {
            let stored = compress(&data, 3, threads);
            assert!(stored.len() < data.len() / 10);
            assert_eq!(decompress(&stored).unwrap(), data);
        }
        // An empty input is still one (tiny) frame.
        let empty = compress(b"", 1, 0);
        assert!(!empty.is_empty());
        assert_eq!(decompress(&empty).unwrap(), b"");
    }

    #[test]
    fn levels_outside_the_window_limit_are_refused() {
        assert!(Compressor::new(0, 0).is_err());
        assert!(Compressor::new(MAX_ZSTD_LEVEL + 1, 0).is_err());
        assert!(Compressor::new(MAX_ZSTD_LEVEL, 0).is_ok());
    }

    #[test]
    fn a_frame_with_a_window_over_the_limit_is_refused() {
        // A frame whose header asks for a 2^24-byte window: the size is not
        // known up front when streaming, so the header states the window.
        let mut c = Compressor::new(19, 0).unwrap();
        c.encoder
            .set_parameter(CParameter::WindowLog(MAX_WINDOW_LOG + 1))
            .unwrap();
        let mut big_window = Vec::new();
        let mut emit = |b: &[u8]| {
            big_window.extend_from_slice(b);
            Ok(())
        };
        c.write(&vec![7u8; 64 << 10], &mut emit).unwrap();
        c.finish(&mut emit).unwrap();
        let err = decompress(&big_window).unwrap_err();
        assert!(err.to_string().contains("too much memory"), "{err}");
    }
}
