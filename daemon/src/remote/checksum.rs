//! The CRC32C a copy is checked by, as S3's additional checksums define
//! it. opendal sends each part's CRC32C (`checksum_algorithm = crc32c`),
//! so the server refuses a part damaged on the way, and the server keeps
//! the object's checksum: for one PUT the CRC32C of the bytes, for a
//! multipart upload the "composite" CRC32C of the parts' CRC32Cs (big
//! endian, concatenated) followed by `-N`, the number of parts. The
//! uploader computes the same value from the bytes it read, with the part
//! size it gave opendal (whose parts are exactly that size, the last one
//! excepted), and compares it with what the server says it stored.

use base64::prelude::{Engine, BASE64_STANDARD};

/// Builds the expected checksum while the archive is read.
pub struct Composite {
    part_bytes: u64,
    /// CRC32C of the part being read, and its bytes so far.
    current: u32,
    in_part: u64,
    /// CRC32C of each finished part.
    parts: Vec<u32>,
    /// CRC32C of everything: the value when it all fits in one part.
    whole: u32,
}

impl Composite {
    pub fn new(part_bytes: usize) -> Composite {
        Composite {
            part_bytes: part_bytes as u64,
            current: 0,
            in_part: 0,
            parts: Vec::new(),
            whole: 0,
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.whole = crc32c::crc32c_append(self.whole, bytes);
        while !bytes.is_empty() {
            let room = (self.part_bytes - self.in_part).min(bytes.len() as u64) as usize;
            self.current = crc32c::crc32c_append(self.current, &bytes[..room]);
            self.in_part += room as u64;
            bytes = &bytes[room..];
            if self.in_part == self.part_bytes {
                self.parts.push(self.current);
                self.current = 0;
                self.in_part = 0;
            }
        }
    }

    /// The value the server should report: `crc` for a single part,
    /// `crc-N` for N parts (base64 of the big-endian CRC).
    pub fn finish(mut self) -> String {
        if self.in_part > 0 {
            self.parts.push(self.current);
        }
        if self.parts.len() <= 1 {
            return BASE64_STANDARD.encode(self.whole.to_be_bytes());
        }
        let mut of_parts = 0u32;
        for crc in &self.parts {
            of_parts = crc32c::crc32c_append(of_parts, &crc.to_be_bytes());
        }
        format!(
            "{}-{}",
            BASE64_STANDARD.encode(of_parts.to_be_bytes()),
            self.parts.len()
        )
    }
}

/// Whether the server's `stored` value is `expected`. Servers differ on
/// whether a composite value carries its `-N` (AWS does, moto does not on
/// HEAD); the CRC must be equal, and the part count too when both say it.
pub fn same(stored: &str, expected: &str) -> bool {
    fn split(v: &str) -> (&str, Option<&str>) {
        match v.split_once('-') {
            Some((crc, n)) => (crc, Some(n)),
            None => (v, None),
        }
    }
    let ((a, an), (b, bn)) = (split(stored), split(expected));
    a == b && (an.is_none() || bn.is_none() || an == bn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composite_value_may_come_without_its_part_count() {
        assert!(same("sVGKlg==-2", "sVGKlg==-2"));
        assert!(same("sVGKlg==", "sVGKlg==-2"));
        assert!(!same("sVGKlg==-3", "sVGKlg==-2"));
        assert!(!same("AAAAAA==", "sVGKlg==-2"));
        assert!(!same("", "sVGKlg=="));
    }

    #[test]
    fn one_part_is_the_plain_crc32c() {
        let mut c = Composite::new(8);
        c.update(b"12345");
        c.update(b"6789");
        // 9 bytes in parts of 8 are two parts; in parts of 16, one.
        let mut one = Composite::new(16);
        one.update(b"123456789");
        // The CRC32C check value of "123456789" is 0xE3069283.
        assert_eq!(
            one.finish(),
            BASE64_STANDARD.encode(0xE306_9283u32.to_be_bytes())
        );
        let mut of_parts = crc32c::crc32c(&crc32c::crc32c(b"12345678").to_be_bytes());
        of_parts = crc32c::crc32c_append(of_parts, &crc32c::crc32c(b"9").to_be_bytes());
        assert_eq!(
            c.finish(),
            format!("{}-2", BASE64_STANDARD.encode(of_parts.to_be_bytes()))
        );
    }

    #[test]
    fn part_boundaries_do_not_depend_on_how_the_bytes_arrive() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut a = Composite::new(30);
        a.update(&data);
        let mut b = Composite::new(30);
        for chunk in data.chunks(7) {
            b.update(chunk);
        }
        let (a, b) = (a.finish(), b.finish());
        assert_eq!(a, b);
        assert!(a.ends_with("-4"), "{a}");
        // An exact multiple has no empty last part.
        let mut c = Composite::new(50);
        c.update(&data);
        assert!(c.finish().ends_with("-2"));
    }
}
