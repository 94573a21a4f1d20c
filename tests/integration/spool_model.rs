//! Model-based property test of the spool: random sequences of appends,
//! reads, acks, rewinds, crashes, torn tails, flipped bytes and restarts,
//! run against the real spool and against a plain in-memory model (a queue
//! of unacknowledged records and a read index). Every read must return
//! exactly the model's records; counters and recovery reports must match it.
//!
//! Records carry a unique id in their first 8 bytes, so the test can find a
//! record in the segment files (with its own reading of the documented
//! format) and name exactly which records a torn tail or a flipped byte cost.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emgate::spool::{Appended, Cursor, FsyncPolicy, FullPolicy, Recovery, Spool, SpoolConfig};
use proptest::prelude::*;
use proptest::sample::Index;

const HEADER: u64 = 8;
const PAD_FLAG: u32 = 0x8000_0000;

#[derive(Debug, Clone)]
enum Op {
    /// Append a record with this payload length (at least 8: the id).
    Append(usize),
    /// Read at most this many records and (past the first) payload bytes.
    Read(usize, usize),
    /// Ack the position the last read returned.
    AckLast,
    /// Ack an earlier position a read returned.
    AckEarlier(Index),
    Rewind,
    /// Drop the spool without fsync and reopen: nothing may be lost.
    Crash,
    /// Fsync, drop and reopen.
    Restart,
    /// Close, cut this many bytes off the newest segment file, reopen.
    TearTail(u64),
    /// Close, flip a payload byte of an unacked record, reopen.
    CorruptByte(Index, Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (8usize..160).prop_map(Op::Append),
        1 => (160usize..1100).prop_map(Op::Append),
        5 => (1usize..6, 0usize..500).prop_map(|(n, b)| Op::Read(n, b)),
        3 => Just(Op::AckLast),
        1 => any::<Index>().prop_map(Op::AckEarlier),
        1 => Just(Op::Rewind),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
        1 => (1u64..400).prop_map(Op::TearTail),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Op::CorruptByte(a, b)),
    ]
}

fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut p = id.to_le_bytes().to_vec();
    p.extend((8..len).map(|i| (id as usize * 31 + i * 7) as u8));
    p
}

fn framed(len: usize) -> u64 {
    8 + len as u64
}

/// One item of a segment file as the documented format describes it.
struct Item {
    id: Option<u64>,
    start: u64,
    end: u64,
}

/// Walks a segment file's records by their length fields (padding included,
/// checksums not checked). Recovery leaves files as clean chains, so this is
/// exact on files a spool has opened.
fn walk(bytes: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pos = HEADER as usize;
    while pos + 8 <= bytes.len() {
        let field = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
        let len = (field & !PAD_FLAG) as usize;
        let end = pos + 8 + len;
        if end > bytes.len() {
            break;
        }
        let id = (field & PAD_FLAG == 0)
            .then(|| u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()));
        items.push(Item {
            id,
            start: pos as u64,
            end: end as u64,
        });
        pos = end;
    }
    items
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

struct Harness {
    _tmp: tempfile::TempDir,
    cfg: SpoolConfig,
    spool: Option<Spool>,
    dropped: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Unacknowledged records: (id, payload length).
    queue: VecDeque<(u64, usize)>,
    /// Index in `queue` of the next record a read returns.
    read_idx: usize,
    /// Positions reads returned since the last open, with the id of the
    /// last record each covered.
    cursors: Vec<(Cursor, u64)>,
    next_id: u64,
    appended: u64,
    acked: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    corrupt: u64,
}

impl Harness {
    fn new(segment_bytes: u64, max_bytes: u64, policy: FullPolicy, fsync: FsyncPolicy) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = SpoolConfig {
            dir: tmp.path().join("spool"),
            max_bytes,
            segment_bytes,
            policy,
            fsync,
        };
        let mut h = Harness {
            _tmp: tmp,
            cfg,
            spool: None,
            dropped: Arc::new(Mutex::new(Vec::new())),
            queue: VecDeque::new(),
            read_idx: 0,
            cursors: Vec::new(),
            next_id: 0,
            appended: 0,
            acked: 0,
            dropped_records: 0,
            dropped_bytes: 0,
            corrupt: 0,
        };
        h.reopen(0, 0);
        h
    }

    fn spool(&self) -> &Spool {
        self.spool.as_ref().unwrap()
    }

    fn model_bytes(&self) -> u64 {
        self.queue.iter().map(|&(_, l)| framed(l)).sum()
    }

    /// Reopens and checks the recovery report against the model.
    fn reopen(&mut self, truncated: u64, corrupt: u64) {
        self.spool = None;
        let (spool, rec) = Spool::open(self.cfg.clone()).unwrap();
        let expected = Recovery {
            pending_records: self.queue.len() as u64,
            pending_bytes: self.model_bytes(),
            truncated_bytes: truncated,
            corrupt_records: corrupt,
            corrupt_bytes: rec.corrupt_bytes,
            skipped_segments: 0,
            ack_reset: false,
        };
        assert_eq!(rec, expected);
        let sink = Arc::clone(&self.dropped);
        spool.set_drop_hook(Box::new(move |p| sink.lock().unwrap().push(p.to_vec())));
        self.spool = Some(spool);
        self.read_idx = 0;
        self.cursors.clear();
        self.appended = 0;
        self.acked = 0;
        self.dropped_records = 0;
        self.dropped_bytes = 0;
        self.corrupt = corrupt;
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append(len) => self.append(len),
            Op::Read(n, b) => self.read(n, b),
            Op::AckLast => {
                if let Some(&c) = self.cursors.last() {
                    self.ack(c);
                }
            }
            Op::AckEarlier(i) => {
                if !self.cursors.is_empty() {
                    let c = self.cursors[i.index(self.cursors.len())];
                    self.ack(c);
                }
            }
            Op::Rewind => {
                self.spool().rewind();
                self.read_idx = 0;
            }
            Op::Crash => self.reopen(0, 0),
            Op::Restart => {
                self.spool().sync().unwrap();
                self.reopen(0, 0);
            }
            Op::TearTail(k) => self.tear_tail(k),
            Op::CorruptByte(rec, byte) => self.corrupt_byte(rec, byte),
        }
        self.check();
    }

    fn append(&mut self, len: usize) {
        let id = self.next_id;
        let p = payload(id, len);
        let need = framed(len);
        self.dropped.lock().unwrap().clear();
        let got = self.spool().append(&p).unwrap();
        let full = !self.queue.is_empty() && self.model_bytes() + need > self.cfg.max_bytes;
        match self.cfg.policy {
            FullPolicy::Block => {
                let want = if full {
                    Appended::Full
                } else {
                    Appended::Stored
                };
                assert_eq!(got, want, "append of {need} bytes");
                if full {
                    return;
                }
            }
            FullPolicy::DropOldest => {
                assert_eq!(got, Appended::Stored);
                let dropped = std::mem::take(&mut *self.dropped.lock().unwrap());
                assert_eq!(dropped.is_empty(), !full, "drops only when full");
                for d in &dropped {
                    let (fid, flen) = self.queue.pop_front().expect("dropped more than queued");
                    assert_eq!(d, &payload(fid, flen), "drops the oldest first, in order");
                    self.dropped_records += 1;
                    self.dropped_bytes += framed(flen);
                }
                self.read_idx = self.read_idx.saturating_sub(dropped.len());
                assert!(
                    self.queue.is_empty() || self.model_bytes() + need <= self.cfg.max_bytes,
                    "dropped until the record fits"
                );
            }
        }
        self.next_id += 1;
        self.appended += 1;
        self.queue.push_back((id, len));
    }

    fn read(&mut self, max_records: usize, max_bytes: usize) {
        let mut expect = Vec::new();
        let mut bytes = 0;
        for &(id, len) in self.queue.iter().skip(self.read_idx) {
            if expect.len() == max_records || (!expect.is_empty() && bytes + len > max_bytes) {
                break;
            }
            bytes += len;
            expect.push((id, len));
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        let got = self.spool().read(max_records, max_bytes, &mut out);
        let want: Vec<Vec<u8>> = expect.iter().map(|&(id, l)| payload(id, l)).collect();
        assert_eq!(out, want, "read returns exactly the model's next records");
        match (got, expect.last()) {
            (None, None) => {}
            (Some(c), Some(&(last, _))) => {
                self.cursors.push((c, last));
                self.read_idx += expect.len();
            }
            (g, e) => panic!("read returned {g:?}, model expected {e:?}"),
        }
    }

    fn ack(&mut self, (cursor, last_id): (Cursor, u64)) {
        self.spool().ack(cursor).unwrap();
        let mut popped = 0;
        while self.queue.front().is_some_and(|&(id, _)| id <= last_id) {
            self.queue.pop_front();
            popped += 1;
        }
        self.acked += popped as u64;
        self.read_idx = self.read_idx.saturating_sub(popped);
    }

    fn tear_tail(&mut self, k: u64) {
        self.spool = None;
        let dir = self.cfg.dir.clone();
        let last = segment_files(&dir).pop().expect("an active segment exists");
        let bytes = fs::read(&last).unwrap();
        let len = bytes.len() as u64;
        let cut = len - k.min(len);
        let items = walk(&bytes);
        fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let truncated = if cut < HEADER {
            cut
        } else {
            let good_end = items
                .iter()
                .filter(|i| i.end <= cut)
                .map(|i| i.end)
                .max()
                .unwrap_or(HEADER);
            cut - good_end
        };
        let lost: Vec<u64> = items
            .iter()
            .filter(|i| i.end > cut)
            .filter_map(|i| i.id)
            .collect();
        self.queue.retain(|(id, _)| !lost.contains(id));
        self.reopen(truncated, 0);
    }

    fn corrupt_byte(&mut self, rec: Index, byte: Index) {
        self.spool = None;
        if self.queue.is_empty() {
            self.reopen(0, 0);
            return;
        }
        let (id, len) = self.queue[rec.index(self.queue.len())];
        let mut found = None;
        for path in segment_files(&self.cfg.dir) {
            let bytes = fs::read(&path).unwrap();
            let items = walk(&bytes);
            if let Some(i) = items.iter().position(|it| it.id == Some(id)) {
                found = Some((path, items[i].start, items[i].end, i + 1 == items.len()));
                break;
            }
        }
        let (path, start, end, is_last) = found.expect("an unacked record is on disk");
        assert_eq!(end - start, framed(len));
        let mut bytes = fs::read(&path).unwrap();
        let at = (start + HEADER) as usize + byte.index(len);
        bytes[at] ^= 0x5a;
        fs::write(&path, &bytes).unwrap();
        self.queue.retain(|&(i, _)| i != id);
        // A bad last record is a corrupt tail, truncated; anywhere else it is
        // one corrupt record, skipped.
        if is_last {
            self.reopen(framed(len), 0);
        } else {
            self.reopen(0, 1);
        }
    }

    fn check(&self) {
        let s = self.spool().stats();
        assert_eq!(s.records, self.queue.len() as u64, "records");
        assert_eq!(s.bytes, self.model_bytes(), "bytes");
        assert_eq!(s.appended_records, self.appended, "appended");
        assert_eq!(s.acked_records, self.acked, "acked");
        assert_eq!(s.dropped_records, self.dropped_records, "dropped");
        assert_eq!(s.dropped_bytes, self.dropped_bytes, "dropped bytes");
        assert_eq!(s.corrupt_records, self.corrupt, "corrupt");
        assert_eq!(
            s.segments,
            segment_files(&self.cfg.dir).len() as u64,
            "live segments = files"
        );
        assert!(
            s.bytes <= self.cfg.max_bytes || s.records <= 1,
            "bounded: {} bytes in {} records, max {}",
            s.bytes,
            s.records,
            self.cfg.max_bytes
        );
    }
}

fn policy() -> impl Strategy<Value = FullPolicy> {
    prop_oneof![Just(FullPolicy::Block), Just(FullPolicy::DropOldest)]
}

fn fsync() -> impl Strategy<Value = FsyncPolicy> {
    prop_oneof![
        // Never fsynced while running: a crash must still lose nothing.
        2 => Just(FsyncPolicy::Interval(Duration::from_hours(1))),
        // The background thread racing appends, rolls and drops.
        1 => Just(FsyncPolicy::Interval(Duration::from_millis(1))),
        1 => Just(FsyncPolicy::EveryAppend),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_model(
        segment_bytes in prop_oneof![Just(200u64), Just(512)],
        max_bytes in prop_oneof![Just(900u64), Just(2000)],
        policy in policy(),
        fsync in fsync(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(segment_bytes, max_bytes, policy, fsync);
        for op in &ops {
            h.apply(op);
        }
        // Whatever happened, a final restart redelivers exactly the model.
        h.apply(&Op::Crash);
        h.apply(&Op::Read(usize::MAX, usize::MAX));
    }
}
