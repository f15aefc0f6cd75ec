//! The reading half of a load: one blocking thread walks the dump's data
//! section in order and deals each loaded table's rows out to the
//! connections' queues in batches cut at row ends. A row longer than a
//! batch goes whole to one connection; the end-of-data marker pg_dump
//! writes after a table's rows is dropped, so that no connection gets the
//! blank lines after it as rows.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::super::blocks::{BlockError, Blocks, Kind};
use super::{Event, Msg, Plan, BATCH, SEGMENT, SHORT};
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

/// Reads the data section in order and deals each loaded table's rows out;
/// the tables in `whole` go to one connection each.
pub(super) fn deal(
    dump: &Path,
    plan: &Plan,
    whole: &HashSet<usize>,
    senders: &[mpsc::Sender<Msg>],
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), Dealing> {
    deal_in_segments(dump, plan, whole, senders, events, SEGMENT)
}

fn deal_in_segments(
    dump: &Path,
    plan: &Plan,
    whole: &HashSet<usize>,
    senders: &[mpsc::Sender<Msg>],
    events: &mpsc::UnboundedSender<Event>,
    segment: u64,
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
        used: vec![false; senders.len()],
        sent: vec![0; senders.len()],
        parts: 0,
        segment,
        sticky: None,
        pinned: None,
        buf: BytesMut::new(),
    };
    let mut dealt = vec![false; plan.tables.len()];
    while let Some((kind, id)) = blocks.next_block()? {
        let table = match (kind, wanted.get(&id)) {
            (Kind::TableData, Some(&table)) => table,
            _ => {
                blocks.skip(kind)?;
                continue;
            }
        };
        // pg_restore finds each entry's block by its offset and fails on
        // one it does not find; read in order, a block twice or none at
        // all would load a table twice or leave it empty.
        if std::mem::replace(&mut dealt[table], true) {
            return Err(unreadable(format!(
                "the rows of {} are in the dump twice",
                plan.tables[table].label
            )));
        }
        if whole.contains(&table) {
            dealer.pinned = Some(dealer.next % senders.len());
            dealer.next += 1;
        }
        dealer.table(&mut blocks, table)?;
        let (parts, connections) = dealer.end(table)?;
        let _ = events.send(Event::Dealt {
            table,
            parts,
            connections,
        });
    }
    if let Some(missing) = dealt.iter().position(|d| !d) {
        return Err(unreadable(format!(
            "the dump holds no rows for {}",
            plan.tables[missing].label
        )));
    }
    Ok(())
}

fn unreadable(detail: String) -> Dealing {
    Dealing::Failed(OpError::invalid("the dump's table data could not be read").with_detail(detail))
}

/// Deals one table's rows to the connections in turn.
struct Dealer<'a> {
    senders: &'a [mpsc::Sender<Msg>],
    /// The connection the next batch goes to.
    next: usize,
    /// Which connections are in a COPY of this table.
    joined: Vec<bool>,
    /// Which connections have had any of this table.
    used: Vec<bool>,
    /// How much each connection's current COPY has taken.
    sent: Vec<u64>,
    /// The COPYs of this table committed so far.
    parts: usize,
    /// How much one COPY takes before it is committed ([`SEGMENT`]).
    segment: u64,
    /// A connection that must take the next batch, because a row was cut
    /// between the last one it got and that.
    sticky: Option<usize>,
    /// The one connection this table goes to, when it is not shared.
    pinned: Option<usize>,
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
                    blocks.skip(Kind::TableData)?;
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
        let to = match self.pinned.or(self.sticky.take()) {
            Some(to) => to,
            None => {
                let to = self.next % self.senders.len();
                self.next += 1;
                to
            }
        };
        let whole_rows = data.last() == Some(&b'\n');
        if !last && !whole_rows {
            self.sticky = Some(to);
        }
        let start = !self.joined[to];
        self.joined[to] = true;
        self.used[to] = true;
        self.sent[to] += data.len() as u64;
        self.senders[to]
            .blocking_send(Msg::Rows { table, start, data })
            .map_err(|_| Dealing::Stopped)?;
        // A long COPY is committed and another begun, so that a refused
        // row is heard of soon (only between whole rows).
        if !last && whole_rows && self.sent[to] >= self.segment {
            self.end_on(to, table)?;
        }
        // The buffer keeps its allocation for the next batch when nothing
        // else shares it any more.
        self.buf.reserve(BATCH);
        Ok(())
    }

    /// Ends the COPY of `table` on connection `to`.
    fn end_on(&mut self, to: usize, table: usize) -> Result<(), Dealing> {
        self.joined[to] = false;
        self.sent[to] = 0;
        self.parts += 1;
        self.senders[to]
            .blocking_send(Msg::End { table })
            .map_err(|_| Dealing::Stopped)
    }

    /// Ends the table on every connection in a COPY of it; how many COPYs
    /// it took, on how many connections.
    fn end(&mut self, table: usize) -> Result<(usize, usize), Dealing> {
        self.sticky = None;
        self.pinned = None;
        for to in 0..self.joined.len() {
            if self.joined[to] {
                self.end_on(to, table)?;
            }
        }
        let connections = self.used.iter().filter(|u| **u).count();
        self.used.fill(false);
        Ok((std::mem::take(&mut self.parts), connections))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::blocks::tests::Section;
    use super::super::tests::plan_of;
    use super::*;
    use std::path::PathBuf;

    /// What one queue received: (table, start, rows or `END`).
    type Received = Vec<(usize, bool, Vec<u8>)>;

    /// Deals a section over `n` queues; what each received, and each
    /// table's (table, COPYs, connections).
    fn dealt(
        section: &[u8],
        plan: &Plan,
        n: usize,
        whole: &[usize],
        segment: u64,
    ) -> (Vec<Received>, Vec<(usize, usize, usize)>) {
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
        let whole: HashSet<usize> = whole.iter().copied().collect();
        assert!(deal_in_segments(&path, plan, &whole, &senders, &events, segment).is_ok());
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
        while let Ok(Event::Dealt {
            table,
            parts: p,
            connections,
        }) = heard.try_recv()
        {
            parts.push((table, p, connections));
        }
        std::fs::remove_dir_all(dir).unwrap();
        (got, parts)
    }

    /// Checks each queue's COPYs are well formed (begun once, ended once,
    /// whole rows) and returns table 0's rows, sorted.
    fn rows_of_table_0(got: &[Received]) -> Vec<Vec<u8>> {
        let mut rows = Vec::new();
        for mine in got {
            let mut in_copy: Option<usize> = None;
            for (table, start, data) in mine {
                if data == b"END" {
                    assert_eq!(in_copy.take(), Some(*table), "an end outside its COPY");
                    continue;
                }
                assert_eq!(*start, in_copy.is_none(), "a COPY begins exactly once");
                in_copy = Some(*table);
                assert!(data.ends_with(b"\n"), "a batch ends at a row's end");
                assert!(data.len() <= BATCH + 200);
                if *table == 0 {
                    rows.extend(data.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec));
                }
            }
            assert!(in_copy.is_none(), "a COPY left open");
        }
        rows.sort();
        rows
    }

    fn many_rows(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{i}\tsome text with an escaped \\n newline {i}\n").into_bytes())
            .collect()
    }

    fn section_of(rows: &[Vec<u8>]) -> Section {
        let mut chunks: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        chunks.push(b"\\.\n\n\n");
        let mut s = Section::default();
        s.large_objects(5, &[(16400, b"blob")])
            .table(7, &chunks)
            .table(8, &[b"\n", b"\n", b"\\.\n\n\n"])
            .table(9, &[b"not loaded\n"]);
        s
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
        let rows = many_rows(20_000);
        let (got, parts) = dealt(&section_of(&rows).0, &plan_of(&[7, 8]), 2, &[], SEGMENT);
        assert_eq!(parts, [(0, 2, 2), (1, 1, 1)]);
        let mut expected = rows.clone();
        expected.sort();
        assert_eq!(
            rows_of_table_0(&got),
            expected,
            "every row once, the marker dropped"
        );
        // A one-column table's empty rows are rows, kept.
        let table_1: Vec<&Vec<u8>> = got
            .iter()
            .flatten()
            .filter(|(t, _, d)| *t == 1 && d != b"END")
            .map(|(_, _, d)| d)
            .collect();
        assert_eq!(table_1, [b"\n\n"]);
    }

    #[test]
    fn a_long_table_is_committed_in_segments_and_an_indexed_one_kept_on_one_connection() {
        let rows = many_rows(100_000);
        let mut expected = rows.clone();
        expected.sort();
        let section = section_of(&rows);
        // About 5 MB of rows in batches of 512 KiB, COPYs of 1 MB: each
        // connection commits several, and begins the next.
        let (got, parts) = dealt(&section.0, &plan_of(&[7, 8]), 2, &[], 1_000_000);
        assert_eq!((parts[0].0, parts[0].2), (0, 2));
        assert!(parts[0].1 >= 4, "{parts:?}");
        assert_eq!(rows_of_table_0(&got), expected);

        let (got, parts) = dealt(&section.0, &plan_of(&[7, 8]), 2, &[0], SEGMENT);
        assert_eq!(parts, [(0, 1, 1), (1, 1, 1)]);
        let holders = got
            .iter()
            .filter(|mine| mine.iter().any(|(t, _, _)| *t == 0))
            .count();
        assert_eq!(
            holders, 1,
            "an indexed table's rows all go to one connection"
        );
        assert_eq!(rows_of_table_0(&got), expected);
    }

    #[test]
    fn a_row_longer_than_a_batch_goes_whole_to_one_connection() {
        let long = [vec![b'x'; 3 * BATCH + 17], b"\n".to_vec()].concat();
        let mut s = Section::default();
        s.table(7, &[b"a\n", &long, b"b\n"]);
        let (got, parts) = dealt(&s.0, &plan_of(&[7]), 2, &[], SEGMENT);
        assert_eq!(parts, [(0, 2, 2)]);
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

    fn refused(section: &[u8], plan: &Plan) -> OpError {
        let path = tempdir();
        std::fs::write(path.join("dump"), section).unwrap();
        let (tx, _rx) = mpsc::channel(100);
        let (events, _heard) = mpsc::unbounded_channel();
        let outcome = deal(&path.join("dump"), plan, &HashSet::new(), &[tx], &events);
        std::fs::remove_dir_all(path).unwrap();
        match outcome {
            Err(Dealing::Failed(e)) => e,
            _ => panic!("a bad section was read"),
        }
    }

    #[test]
    fn a_damaged_section_or_a_block_twice_or_missing_fails_with_its_reason() {
        let mut s = Section::default();
        s.table(7, &[b"a\n", b"b\n"]);
        let e = refused(&s.0[..s.0.len() - 3], &plan_of(&[7]));
        assert!(e.message.contains("could not be read"));
        assert!(e.detail.unwrap().contains("ends inside a block"));

        let e = refused(&s.0, &plan_of(&[7, 8]));
        assert_eq!(
            e.detail.as_deref(),
            Some("the dump holds no rows for public.t8")
        );

        let mut twice = Section::default();
        twice.table(7, &[b"a\n"]).table(7, &[b"a\n"]);
        let e = refused(&twice.0, &plan_of(&[7]));
        assert_eq!(
            e.detail.as_deref(),
            Some("the rows of public.t7 are in the dump twice")
        );
    }
}
