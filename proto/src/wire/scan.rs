//! A structural scan of a MessagePack value that allocates nothing: it
//! checks that a frame holds exactly one well-formed value, no deeper than a
//! limit and with no more than a budget of nodes. It runs before serde sees
//! the frame, because serde's internally tagged enums buffer a whole message
//! into a tree of values first: without a budget, a frame of four million
//! one-byte nils would cost hundreds of megabytes before it is even known to
//! be nonsense. It also bounds every string before serde copies it (and
//! before serde's own error messages, which quote a wrong value whole, can
//! repeat it), and says which field a string too long was in.

/// What a frame may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Values counted over the whole frame (a map entry counts as two).
    pub max_nodes: usize,
    /// Nesting of arrays and maps.
    pub max_depth: usize,
    /// The longest string (key or value), in bytes.
    pub max_str_bytes: usize,
}

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Not exactly one well-formed MessagePack value, or one too big or too
    /// deep: the peer is out of step or hostile.
    Broken(String),
    /// A well-formed value with a string longer than `max_str_bytes`, at
    /// `path` (the keys leading to it, `op.plan.timezone`).
    LongString {
        path: String,
        len: usize,
        max: usize,
    },
}

/// What the daemon accepts from a client: real requests have a few dozen
/// nodes and nest four deep.
pub const REQUEST_LIMITS: Limits = Limits {
    max_nodes: 4096,
    max_depth: super::frame::MAX_DEPTH,
    max_str_bytes: super::input::MAX_REQUEST_STRING_BYTES,
};

/// What a client accepts from the daemon: replies can list many backups.
pub const REPLY_LIMITS: Limits = Limits {
    max_nodes: 1 << 22,
    max_depth: super::frame::MAX_DEPTH,
    max_str_bytes: super::frame::MAX_FRAME_LEN,
};

/// One open array or map while scanning.
struct Level<'a> {
    /// Values still to read at this level.
    remaining: u64,
    map: bool,
    /// The newest key read at this level, if it was a string.
    key: Option<&'a [u8]>,
}

/// Checks `body` against `limits`; the error says what is wrong.
pub fn scan(body: &[u8], limits: Limits) -> Result<(), ScanError> {
    let broken = |m: String| ScanError::Broken(m);
    let mut pos = 0usize;
    let mut nodes = 0usize;
    // The open levels; the top level holds one value.
    let mut levels: Vec<Level> = Vec::with_capacity(limits.max_depth + 1);
    levels.push(Level {
        remaining: 1,
        map: false,
        key: None,
    });
    while let Some(top) = levels.last_mut() {
        if top.remaining == 0 {
            levels.pop();
            continue;
        }
        // In a map, keys and values alternate, keys first.
        let is_key = top.map && top.remaining % 2 == 0;
        top.remaining -= 1;
        nodes += 1;
        if nodes > limits.max_nodes {
            return Err(broken(format!(
                "more than {} values in one message",
                limits.max_nodes
            )));
        }
        let Item {
            skip,
            children,
            map,
            string,
        } = item(body, &mut pos).map_err(broken)?;
        pos = pos
            .checked_add(skip)
            .filter(|&p| p <= body.len())
            .ok_or_else(|| broken("truncated value".into()))?;
        if string {
            if skip > limits.max_str_bytes {
                let path = if is_key {
                    // Named by the map it is a key of.
                    let parent = path_of(&levels[..levels.len() - 1]);
                    if parent.is_empty() {
                        "(a key)".to_owned()
                    } else {
                        format!("{parent}.(a key)")
                    }
                } else {
                    path_of(&levels)
                };
                return Err(ScanError::LongString {
                    path,
                    len: skip,
                    max: limits.max_str_bytes,
                });
            }
            if is_key {
                if let Some(top) = levels.last_mut() {
                    top.key = Some(&body[pos - skip..pos]);
                }
            }
        } else if is_key {
            if let Some(top) = levels.last_mut() {
                top.key = None;
            }
        }
        if children > 0 {
            // Counted as rmp-serde counts, so that both refuse the same
            // depth (`frame::MAX_DEPTH`).
            if levels.len() >= limits.max_depth {
                return Err(broken(format!(
                    "nested deeper than {} levels",
                    limits.max_depth
                )));
            }
            levels.push(Level {
                remaining: children,
                map,
                key: None,
            });
        }
    }
    if pos != body.len() {
        return Err(broken("trailing bytes after the message".into()));
    }
    Ok(())
}

/// The keys leading to the value being read, as `input::field_path` shows
/// them; `[]` stands for an element of an array.
fn path_of(levels: &[Level]) -> String {
    super::input::field_path(levels.iter().skip(1).map(|level| {
        if level.map {
            level.key.and_then(|k| std::str::from_utf8(k).ok())
        } else {
            Some("[]")
        }
    }))
}

/// What one marker announces.
struct Item {
    /// Payload bytes after the marker and its length field.
    skip: usize,
    /// Child values (a map entry counts as two).
    children: u64,
    map: bool,
    string: bool,
}

/// Reads one marker (and its length field) at `pos`.
fn item(body: &[u8], pos: &mut usize) -> Result<Item, String> {
    let marker = *body.get(*pos).ok_or("truncated value")?;
    *pos += 1;
    let mut len = |n: usize| -> Result<u64, String> {
        let bytes = body.get(*pos..*pos + n).ok_or("truncated length")?;
        *pos += n;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let (skip, children) = match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
        0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
        0x90..=0x9f => (0, u64::from(marker & 0x0f)),
        0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
        0xc1 => return Err("0xc1 is not a MessagePack marker".into()),
        0xc4 | 0xd9 => (len(1)? as usize, 0),
        0xc5 | 0xda => (len(2)? as usize, 0),
        0xc6 | 0xdb => (len(4)? as usize, 0),
        0xc7 => (len(1)? as usize + 1, 0),
        0xc8 => (len(2)? as usize + 1, 0),
        0xc9 => (len(4)? as usize + 1, 0),
        0xca => (4, 0),
        0xcb => (8, 0),
        0xcc | 0xd0 => (1, 0),
        0xcd | 0xd1 => (2, 0),
        0xce | 0xd2 => (4, 0),
        0xcf | 0xd3 => (8, 0),
        0xd4 => (2, 0),
        0xd5 => (3, 0),
        0xd6 => (5, 0),
        0xd7 => (9, 0),
        0xd8 => (17, 0),
        0xdc => (0, len(2)?),
        0xdd => (0, len(4)?),
        0xde => (0, 2 * len(2)?),
        0xdf => (0, 2 * len(4)?),
    };
    Ok(Item {
        skip,
        children,
        map: matches!(marker, 0x80..=0x8f | 0xde | 0xdf),
        string: matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn accepts_every_kind_of_value() {
        let v = rmpv::Value::Map(vec![
            ("s".into(), "строка".into()),
            ("long".into(), "x".repeat(70_000).into()),
            ("b".into(), rmpv::Value::Binary(vec![1; 300])),
            ("n".into(), rmpv::Value::Nil),
            ("i".into(), (-5).into()),
            ("u".into(), u64::MAX.into()),
            ("f".into(), 1.5f64.into()),
            ("g".into(), rmpv::Value::F32(2.5)),
            ("t".into(), true.into()),
            (
                "a".into(),
                rmpv::Value::Array((0..20).map(rmpv::Value::from).collect()),
            ),
            ("e".into(), rmpv::Value::Ext(3, vec![0; 5])),
            ("e1".into(), rmpv::Value::Ext(3, vec![0; 1])),
            ("e16".into(), rmpv::Value::Ext(3, vec![0; 16])),
        ]);
        assert_eq!(scan(&encode(&v), REPLY_LIMITS), Ok(()));
    }

    #[test]
    fn refuses_what_is_broken_or_too_big() {
        let limits = Limits {
            max_nodes: 10,
            max_depth: 3,
            max_str_bytes: 8,
        };
        let many = encode(&rmpv::Value::Array(vec![rmpv::Value::Nil; 10]));
        let broken = |body: &[u8]| match scan(body, limits) {
            Err(ScanError::Broken(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(broken(&many).contains("more than 10"));
        let deep = encode(&rmpv::Value::Array(vec![rmpv::Value::Array(vec![
            rmpv::Value::Array(vec![rmpv::Value::Array(vec![])]),
        ])]));
        assert!(broken(&deep).contains("deeper"));
        let mut trailing = encode(&rmpv::Value::Nil);
        trailing.push(0);
        assert!(broken(&trailing).contains("trailing"));
        assert!(scan(&[0xc1], limits).is_err());
        assert!(scan(&[], limits).is_err());
        assert!(scan(&[0xdd, 0xff, 0xff, 0xff, 0xff], REQUEST_LIMITS).is_err());
        assert!(scan(&[0xc6, 0xff, 0xff, 0xff, 0xff, 1], REQUEST_LIMITS).is_err());
        assert!(scan(&[0xdb, 0, 0, 0], REQUEST_LIMITS).is_err());
    }

    #[test]
    fn a_long_string_is_refused_with_the_path_to_it() {
        let limits = Limits {
            max_nodes: 100,
            max_depth: 8,
            max_str_bytes: 8,
        };
        let msg = |zone: &str| {
            encode(&rmpv::Value::Map(vec![
                ("type".into(), "request".into()),
                ("id".into(), 1.into()),
                (
                    "op".into(),
                    rmpv::Value::Map(vec![
                        ("type".into(), "plan".into()),
                        (
                            "plan".into(),
                            rmpv::Value::Map(vec![
                                ("at".into(), 5.into()),
                                ("timezone".into(), zone.into()),
                            ]),
                        ),
                    ]),
                ),
            ]))
        };
        assert_eq!(scan(&msg("12345678"), limits), Ok(()));
        assert_eq!(
            scan(&msg("123456789"), limits),
            Err(ScanError::LongString {
                path: "op.plan.timezone".into(),
                len: 9,
                max: 8
            })
        );
        let long_key = encode(&rmpv::Value::Map(vec![("a_key_too_long".into(), 1.into())]));
        assert_eq!(
            scan(&long_key, limits),
            Err(ScanError::LongString {
                path: "(a key)".into(),
                len: 14,
                max: 8
            })
        );
        let in_array = encode(&rmpv::Value::Map(vec![(
            "list".into(),
            rmpv::Value::Array(vec!["x".repeat(20).into()]),
        )]));
        assert!(matches!(
            scan(&in_array, limits),
            Err(ScanError::LongString { path, .. }) if path == "list.[]"
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics_and_agrees_with_rmpv(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let ours = scan(&bytes, Limits { max_nodes: usize::MAX, max_depth: 1000, max_str_bytes: usize::MAX }).is_ok();
            let mut cursor = std::io::Cursor::new(&bytes[..]);
            let theirs = rmpv::decode::read_value(&mut cursor).is_ok() && cursor.position() as usize == bytes.len();
            // rmpv reads the reserved marker 0xc1 as nil; the scan refuses
            // it. Apart from that the two agree, and the scan never accepts
            // what rmpv refuses.
            if ours {
                proptest::prop_assert!(theirs);
            } else if !bytes.contains(&0xc1) {
                proptest::prop_assert!(!theirs);
            }
        }
    }
}
