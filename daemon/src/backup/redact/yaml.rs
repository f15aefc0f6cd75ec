//! YAML, read as events with `saphyr-parser`, which gives each event's
//! span and never expands an alias: memory stays within the file's size
//! whatever its anchors do. The expansion a loader would do is counted
//! instead (each alias adds its anchor's size), and a file whose nodes
//! would expand past `MAX_NODES`, a "billion laughs" bomb, or that nests
//! past `MAX_DEPTH`, is refused. Every scalar under a secret-looking key
//! becomes `"BERKUT-REDACTED"`; an alias under one redacts the anchored
//! values it points to, where they are written.

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::{join, url_hits, Failure, Hit, Words, MARKER, MAX_DEPTH};

/// The most nodes a document may expand to when its aliases are resolved.
pub const MAX_NODES: u64 = 1_000_000;

pub(super) fn hits(text: &str, words: &Words) -> Result<Vec<Hit>, Failure> {
    let mut walk = Walk {
        text,
        words,
        offsets: Offsets::new(text),
        frames: Vec::new(),
        anchors: HashMap::new(),
        expanded: 0,
        hits: Vec::new(),
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            if e.info().contains("recursion limit") {
                Failure::Refused(format!("YAML nested deeper than {MAX_DEPTH} levels"))
            } else {
                Failure::NotParsed(format!("not valid YAML (line {})", e.marker().line()))
            }
        })?;
        walk.event(event, span)?;
    }
    Ok(walk.hits)
}

/// What an anchor stands for: the scalars written under it, the anchors it
/// refers to, and how many nodes it expands to.
struct Anchored {
    spans: Vec<Range<usize>>,
    refs: Vec<usize>,
    size: u64,
}

struct Frame {
    map: bool,
    path: String,
    /// The secret key this node is under, if any.
    secret: Option<String>,
    /// In a mapping: the key whose value comes next, or None when a key
    /// comes next.
    key: Option<String>,
    /// This node is a mapping's (complex) key.
    is_key: bool,
    anchor: usize,
    /// `expanded` when this node started.
    started: u64,
    /// Whether scalars are collected (this node or one above is anchored).
    collect: bool,
    spans: Vec<Range<usize>>,
    refs: Vec<usize>,
}

struct Walk<'a> {
    text: &'a str,
    words: &'a Words,
    offsets: Offsets,
    frames: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    expanded: u64,
    hits: Vec<Hit>,
}

/// Where a node sits: its path and the secret key it is under.
struct Place {
    path: String,
    secret: Option<String>,
    is_key: bool,
}

impl Walk<'_> {
    fn event(&mut self, event: Event, span: Span) -> Result<(), Failure> {
        match event {
            Event::Scalar(value, style, anchor, _) => {
                let place = self.place(Some(&value));
                self.grow(1)?;
                if place.is_key {
                    return Ok(());
                }
                let range = value_only(self.text, self.offsets.range(self.text, span));
                match &place.secret {
                    Some(key) if value != MARKER && !range.is_empty() => {
                        // A block scalar's text stays a block, its
                        // indentation and line breaks kept.
                        let replacement = match style {
                            ScalarStyle::Literal | ScalarStyle::Folded => MARKER.to_owned(),
                            _ => format!("\"{MARKER}\""),
                        };
                        self.hits
                            .push(Hit::new(range.clone(), replacement, key.clone()));
                    }
                    Some(_) => {}
                    None => url_hits(
                        &self.text[range.clone()],
                        range.start,
                        &place.path,
                        &mut self.hits,
                    ),
                }
                if anchor != 0 {
                    self.anchors.insert(
                        anchor,
                        Anchored {
                            spans: vec![range.clone()],
                            refs: Vec::new(),
                            size: 1,
                        },
                    );
                }
                if let Some(top) = self.frames.last_mut().filter(|f| f.collect) {
                    top.spans.push(range);
                }
            }
            Event::Alias(id) => {
                let place = self.place(None);
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(Failure::NotParsed(
                        "not valid YAML (an unknown alias)".into(),
                    ));
                };
                self.grow(anchored.size)?;
                if let (Some(key), false) = (&place.secret, place.is_key) {
                    for range in self.anchored_spans(id) {
                        let raw = &self.text[range.clone()];
                        if raw.trim_matches(['"', '\'']) == MARKER {
                            continue;
                        }
                        // A block scalar's text stays a block.
                        let block = self.text[..range.start]
                            .trim_end_matches([' ', '\n', '\r'])
                            .ends_with(['|', '>', '-', '+']);
                        self.hits.push(Hit::new(
                            range,
                            if block {
                                MARKER.to_owned()
                            } else {
                                format!("\"{MARKER}\"")
                            },
                            format!("{key} (through an alias)"),
                        ));
                    }
                }
                if let Some(top) = self.frames.last_mut().filter(|f| f.collect) {
                    top.refs.push(id);
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let map = matches!(event, Event::MappingStart(..));
                let place = self.place(None);
                self.grow(1)?;
                if self.frames.len() >= MAX_DEPTH {
                    return Err(Failure::Refused(format!(
                        "YAML nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                let collect = anchor != 0 || self.frames.last().is_some_and(|f| f.collect);
                self.frames.push(Frame {
                    map,
                    path: place.path,
                    secret: place.secret,
                    key: None,
                    is_key: place.is_key,
                    anchor,
                    started: self.expanded - 1,
                    collect,
                    spans: Vec::new(),
                    refs: Vec::new(),
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(frame) = self.frames.pop() else {
                    return Ok(());
                };
                let size = self.expanded - frame.started;
                if let Some(parent) = self.frames.last_mut() {
                    if frame.is_key {
                        // A complex key: what follows is its value.
                        parent.key = Some("?".into());
                    }
                    if parent.collect {
                        parent.spans.extend(frame.spans.iter().cloned());
                        parent.refs.extend(frame.refs.iter().copied());
                    }
                }
                if frame.anchor != 0 {
                    self.anchors.insert(
                        frame.anchor,
                        Anchored {
                            spans: frame.spans,
                            refs: frame.refs,
                            size,
                        },
                    );
                }
            }
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
        }
        Ok(())
    }

    /// Where the next node goes, and (for a mapping) moves from key to value
    /// or back. `scalar` is the node's text when it is a scalar, which as a
    /// key names the value after it.
    fn place(&mut self, scalar: Option<&str>) -> Place {
        let words = self.words;
        let Some(top) = self.frames.last_mut() else {
            return Place {
                path: String::new(),
                secret: None,
                is_key: false,
            };
        };
        if !top.map {
            return Place {
                path: top.path.clone(),
                secret: top.secret.clone(),
                is_key: false,
            };
        }
        match top.key.take() {
            None => {
                // A key. A scalar key names the value; an alias or a
                // complex one is named "?", and a complex one sets the key
                // itself when it ends.
                match scalar {
                    Some(k) => top.key = Some(k.to_owned()),
                    None => top.key = Some("?".into()),
                }
                Place {
                    path: top.path.clone(),
                    secret: top.secret.clone(),
                    is_key: true,
                }
            }
            Some(key) => {
                let path = join(&top.path, &key);
                let secret = top
                    .secret
                    .clone()
                    .or_else(|| words.is_secret(&key).then(|| path.clone()));
                Place {
                    path,
                    secret,
                    is_key: false,
                }
            }
        }
    }

    /// Counts `n` more nodes of the expanded document.
    fn grow(&mut self, n: u64) -> Result<(), Failure> {
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > MAX_NODES {
            return Err(Failure::Refused(format!(
                "YAML whose aliases expand to more than {MAX_NODES} nodes (a YAML bomb)"
            )));
        }
        Ok(())
    }

    /// The scalars an anchor stands for, through the anchors it refers to.
    fn anchored_spans(&self, id: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(a) = self.anchors.get(&id) {
                out.extend(a.spans.iter().cloned());
                todo.extend(a.refs.iter().copied());
            }
        }
        out
    }
}

/// The scalar's own text in its span: without the anchor or tag written
/// before it (`&a`, `!!str`), which must stay, and without the line breaks
/// after a block scalar, which keep the next key on its line.
fn value_only(text: &str, range: Range<usize>) -> Range<usize> {
    let mut start = range.start;
    let end = range.start + text[range.clone()].trim_end().len();
    while start < end && text[start..end].starts_with(['&', '!']) {
        let word = text[start..end]
            .find(char::is_whitespace)
            .map_or(end, |n| start + n);
        let rest = &text[word..end];
        start = word + (rest.len() - rest.trim_start().len());
    }
    start..end
}

/// Byte offsets of character indices (the parser counts characters): one
/// entry per 64 characters, walked forward from there.
struct Offsets {
    ascii: bool,
    every: Vec<usize>,
}

impl Offsets {
    const STEP: usize = 64;

    fn new(text: &str) -> Offsets {
        if text.is_ascii() {
            return Offsets {
                ascii: true,
                every: Vec::new(),
            };
        }
        let every = text
            .char_indices()
            .step_by(Self::STEP)
            .map(|(i, _)| i)
            .collect();
        Offsets {
            ascii: false,
            every,
        }
    }

    fn byte(&self, text: &str, chars: usize) -> usize {
        if self.ascii {
            return chars.min(text.len());
        }
        let Some(&base) = self.every.get(chars / Self::STEP) else {
            return text.len();
        };
        text[base..]
            .char_indices()
            .nth(chars % Self::STEP)
            .map_or(text.len(), |(i, _)| base + i)
    }

    fn range(&self, text: &str, span: Span) -> Range<usize> {
        let start = self.byte(text, span.start.index());
        let end = self.byte(text, span.end.index()).max(start);
        start..end
    }
}
