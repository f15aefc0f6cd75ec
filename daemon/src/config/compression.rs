//! The `compression` setting: how the daemon stores the parts of the
//! archives it writes. `zstd:N` compresses with zstd at level N (1 to 19, the
//! levels whose window a reader's bounded decompressor accepts), `zstd`
//! means the default level, `none` stores parts as they are.

use berkut_proto::archive::{Compression, MAX_ZSTD_LEVEL};

/// The zstd level `zstd` alone means. Level 1 already makes archives smaller
/// than `pg_dump -Fc`'s own zlib at a fraction of its CPU; see
/// docs/PERFORMANCE.md.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Parses the setting's text; `threads` is `compression_threads`. The error
/// says what is accepted.
pub fn parse(text: &str, threads: u32) -> Result<Compression, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(Compression::NONE);
    }
    let level = match text.split_once(':') {
        None if text.eq_ignore_ascii_case("zstd") => DEFAULT_ZSTD_LEVEL,
        Some((codec, level)) if codec.eq_ignore_ascii_case("zstd") => level
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=MAX_ZSTD_LEVEL).contains(l))
            .ok_or_else(|| {
                format!("has a zstd level that is not a whole number from 1 to {MAX_ZSTD_LEVEL}")
            })?,
        _ => {
            return Err(format!(
                "must be none, zstd or zstd:N with N from 1 to {MAX_ZSTD_LEVEL}"
            ))
        }
    };
    Ok(Compression::zstd(level, threads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berkut_proto::archive::Codec;

    #[test]
    fn accepted_spellings() {
        assert_eq!(parse("none", 2).unwrap(), Compression::NONE);
        assert_eq!(parse("zstd", 2).unwrap(), Compression::zstd(1, 2));
        assert_eq!(parse("zstd:19", 0).unwrap(), Compression::zstd(19, 0));
        assert_eq!(parse(" ZSTD:3 ", 1).unwrap().codec, Codec::Zstd);
    }

    #[test]
    fn refused_spellings_say_what_is_accepted() {
        for bad in [
            "", "gzip", "zstd:0", "zstd:20", "zstd:-1", "zstd:x", "lz4:1",
        ] {
            let e = parse(bad, 2).unwrap_err();
            assert!(e.contains("1") && e.contains("19"), "{bad:?}: {e}");
        }
    }
}
