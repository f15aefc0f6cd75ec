//! The reading half of a load: one blocking thread walks the dump's data
//! section in order and deals each loaded table's rows out to the
//! connections' queues in batches cut at row ends. A row longer than a
//! batch goes whole to one connection; the end-of-data marker pg_dump
//! writes after a table's rows is dropped, so that no connection gets the
//! blank lines after it as rows.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::super::blocks::{BlockError, Blocks, Kind};
use super::{Event, Msg, Plan, BATCH, SHORT};
use crate::error::OpError;

pub(super) enum Dealing {
    Failed(OpError),
    /// A connection's queue closed: it failed or was stopped, and says why.
    Stopped,
}

impl From<BlockError> for Dealing {
    fn from(e: BlockError) -> Dealing {
        Dealing::Failed(OpError::invalid("the dump's table data could not be read").with_detail(e))
    }
}

/// Reads the data section in order and deals each loaded table's rows out.
pub(super) fn deal(
    dump: &Path,
    plan: &Plan,
    senders: &[mpsc::Sender<Msg>],
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), Dealing> {
    let open = |e: std::io::Error| {
        Dealing::Failed(OpError::internal(format!(
            "reading the decrypted dump failed: {e}"
        )))
    };
    let mut file = std::fs::File::open(dump).map_err(open)?;
    file.seek(SeekFrom::Start(plan.data_start)).map_err(open)?;
    let mut blocks = Blocks::new(BufReader::with_capacity(1 << 20, file), plan.int_size);
    let wanted: HashMap<i64, usize> = plan
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id, i))
        .collect();
    let mut dealer = Dealer {
        senders,
        next: 0,
        joined: vec![false; senders.len()],
        sticky: None,
        buf: BytesMut::new(),
    };
    while let Some((kind, id)) = blocks.next_block()? {
        let table = match (kind, wanted.get(&id)) {
            (Kind::TableData, Some(&table)) => table,
            _ => {
                blocks.skip(kind)?;
                continue;
            }
        };
        dealer.table(&mut blocks, table)?;
        let parts = dealer.end(table)?;
        let _ = events.send(Event::Dealt { table, parts });
    }
    Ok(())
}

/// Deals one table's rows to the connections in turn.
struct Dealer<'a> {
    senders: &'a [mpsc::Sender<Msg>],
    /// The connection the next batch goes to.
    next: usize,
    /// Which connections have begun this table's COPY.
    joined: Vec<bool>,
    /// A connection that must take the next batch, because a row was cut
    /// between the last one it got and that.
    sticky: Option<usize>,
    buf: BytesMut,
}

impl Dealer<'_> {
    fn table<R: Read>(&mut self, blocks: &mut Blocks<R>, table: usize) -> Result<(), Dealing> {
        let mut at_row_start = true;
        while let Some(len) = blocks.next_chunk()? {
            if at_row_start && len <= SHORT {
                let mut short = [0u8; SHORT];
                blocks.read_chunk(&mut short[..len])?;
                let short = &short[..len];
                // pg_dump ends a table's rows with "\.": the server stops
                // reading there, and so does the dealer, so that no
                // connection gets the blank lines after it as rows.
                if short == b"\\." || short.starts_with(b"\\.\n") {
                    while let Some(len) = blocks.next_chunk()? {
                        let mut rest = vec![0u8; len.min(BATCH)];
                        let mut left = len;
                        while left > 0 {
                            let n = left.min(rest.len());
                            blocks.read_chunk(&mut rest[..n])?;
                            left -= n;
                        }
                    }
                    break;
                }
                self.buf.extend_from_slice(short);
            } else {
                let mut left = len;
                while left > 0 {
                    if self.buf.len() >= BATCH {
                        self.send(table, false)?;
                    }
                    let n = left.min(BATCH.saturating_sub(self.buf.len()).max(1));
                    let start = self.buf.len();
                    self.buf.resize(start + n, 0);
                    blocks.read_chunk(&mut self.buf[start..])?;
                    left -= n;
                }
            }
            at_row_start = self.buf.last().is_none_or(|&b| b == b'\n');
            if self.buf.len() >= BATCH {
                self.send(table, false)?;
            }
        }
        self.send(table, true)
    }

    /// Sends the batch: up to its last whole row, or all of it at the end
    /// of the table (or when it holds no row end at all: the connection it
    /// goes to then takes the rest of that row too).
    fn send(&mut self, table: usize, last: bool) -> Result<(), Dealing> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let cut = if last {
            self.buf.len()
        } else {
            memchr::memrchr(b'\n', &self.buf).map_or(self.buf.len(), |i| i + 1)
        };
        let data = self.buf.split_to(cut).freeze();
        let to = match self.sticky.take() {
            Some(to) => to,
            None => {
                let to = self.next % self.senders.len();
                self.next += 1;
                to
            }
        };
        if !last && data.last() != Some(&b'\n') {
            self.sticky = Some(to);
        }
        let start = !self.joined[to];
        self.joined[to] = true;
        self.senders[to]
            .blocking_send(Msg::Rows { table, start, data })
            .map_err(|_| Dealing::Stopped)?;
        // The buffer keeps its allocation for the next batch when nothing
        // else shares it any more.
        self.buf.reserve(BATCH);
        Ok(())
    }

    /// Ends the table on every connection that began it; how many did.
    fn end(&mut self, table: usize) -> Result<usize, Dealing> {
        self.sticky = None;
        let mut parts = 0;
        for (to, joined) in self.joined.iter_mut().enumerate() {
            if std::mem::take(joined) {
                parts += 1;
                self.senders[to]
                    .blocking_send(Msg::End { table })
                    .map_err(|_| Dealing::Stopped)?;
            }
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::blocks::tests::Section;
    use super::super::Table;
    use super::*;
    use std::path::PathBuf;

    fn plan_of(ids: &[i64]) -> Plan {
        Plan {
            tables: ids
                .iter()
                .map(|&id| Table {
                    id,
                    label: format!("public.t{id}"),
                    copy: format!("COPY public.t{id} (a) FROM stdin;"),
                })
                .collect(),
            encoding: "UTF8".into(),
            int_size: 4,
            data_start: 0,
        }
    }

    /// What one queue received: (table, start, rows or `END`).
    type Received = Vec<(usize, bool, Vec<u8>)>;

    /// Deals a section over `n` queues and returns what each received, and
    /// each table's parts.
    fn dealt(section: &[u8], plan: &Plan, n: usize) -> (Vec<Received>, Vec<(usize, usize)>) {
        let dir = tempdir();
        let path = dir.join("dump");
        std::fs::write(&path, section).unwrap();
        let (mut senders, mut receivers) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(10_000);
            senders.push(tx);
            receivers.push(rx);
        }
        let (events, mut heard) = mpsc::unbounded_channel();
        assert!(deal(&path, plan, &senders, &events).is_ok());
        drop(senders);
        let mut got = Vec::new();
        for mut rx in receivers {
            let mut mine = Vec::new();
            while let Ok(msg) = rx.try_recv() {
                mine.push(match msg {
                    Msg::Rows { table, start, data } => (table, start, data.to_vec()),
                    Msg::End { table } => (table, false, b"END".to_vec()),
                });
            }
            got.push(mine);
        }
        let mut parts = Vec::new();
        while let Ok(Event::Dealt { table, parts: p }) = heard.try_recv() {
            parts.push((table, p));
        }
        std::fs::remove_dir_all(dir).unwrap();
        (got, parts)
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "berkut-load-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rows_are_dealt_whole_to_every_connection_and_the_end_marker_is_dropped() {
        let rows: Vec<Vec<u8>> = (0..20_000)
            .map(|i| format!("{i}\tsome text with an escaped \\n newline {i}\n").into_bytes())
            .collect();
        let mut chunks: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        chunks.push(b"\\.\n\n\n");
        let mut s = Section::default();
        s.large_objects(5, &[(16400, b"blob")])
            .table(7, &chunks)
            .table(8, &[b"\n", b"\n", b"\\.\n\n\n"])
            .table(9, &[b"not loaded\n"]);
        let plan = plan_of(&[7, 8]);
        let (got, parts) = dealt(&s.0, &plan, 2);
        assert_eq!(parts, [(0, 2), (1, 1)]);
        let mut all_rows = Vec::new();
        for mine in &got {
            let mut began = std::collections::HashSet::new();
            for (table, start, data) in mine {
                if data == b"END" {
                    assert!(began.remove(table), "an end without a start");
                    continue;
                }
                assert_eq!(*start, began.insert(*table), "start exactly once per table");
                assert!(data.ends_with(b"\n"), "a batch ends at a row's end");
                assert!(data.len() <= BATCH + 200);
                if *table == 0 {
                    all_rows.extend(data.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec));
                } else {
                    // A one-column table's empty rows are rows, kept.
                    assert_eq!(data, b"\n\n");
                }
            }
            assert!(began.is_empty());
        }
        all_rows.sort();
        let mut expected = rows.clone();
        expected.sort();
        assert_eq!(all_rows, expected, "every row once, the marker dropped");
    }

    #[test]
    fn a_row_longer_than_a_batch_goes_whole_to_one_connection() {
        let long = [vec![b'x'; 3 * BATCH + 17], b"\n".to_vec()].concat();
        let mut s = Section::default();
        s.table(7, &[b"a\n", &long, b"b\n"]);
        let (got, parts) = dealt(&s.0, &plan_of(&[7]), 2);
        assert_eq!(parts, [(0, 2)]);
        let holder = got
            .iter()
            .position(|mine| mine.iter().any(|(_, _, d)| d.first() == Some(&b'x')))
            .unwrap();
        let joined: Vec<u8> = got[holder]
            .iter()
            .filter(|(_, _, d)| d != b"END")
            .flat_map(|(_, _, d)| d.clone())
            .collect();
        assert!(
            joined.windows(long.len()).any(|w| w == long.as_slice()),
            "the long row arrives whole, in order, on one connection"
        );
    }

    #[test]
    fn a_damaged_section_fails_with_its_reason() {
        let mut s = Section::default();
        s.table(7, &[b"a\n", b"b\n"]);
        let path = tempdir();
        std::fs::write(path.join("dump"), &s.0[..s.0.len() - 3]).unwrap();
        let (tx, _rx) = mpsc::channel(100);
        let (events, _heard) = mpsc::unbounded_channel();
        match deal(&path.join("dump"), &plan_of(&[7]), &[tx], &events) {
            Err(Dealing::Failed(e)) => assert!(
                e.message.contains("could not be read")
                    && e.detail.unwrap().contains("ends inside a block")
            ),
            _ => panic!("a damaged section was read"),
        }
        std::fs::remove_dir_all(path).unwrap();
    }
}
