//! The durable spool. (temporary in-memory stand-in with the agreed API; the
//! real implementation is written on the `spool` branch)
#![allow(
    missing_docs,
    clippy::missing_errors_doc,
    clippy::uninlined_format_args,
    clippy::type_complexity
)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub policy: FullPolicy,
    pub fsync: FsyncPolicy,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    Block,
    DropOldest,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    EveryAppend,
    Interval(Duration),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub segment: u64,
    pub offset: u64,
}
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub pending_records: u64,
    pub pending_bytes: u64,
    pub truncated_bytes: u64,
    pub corrupt_records: u64,
    pub skipped_segments: u64,
    pub ack_reset: bool,
}
impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self)
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Stored,
    Full,
}
#[derive(Debug, Clone, Default)]
pub struct SpoolStats {
    pub bytes: u64,
    pub records: u64,
    pub segments: u64,
    pub appended_records: u64,
    pub acked_records: u64,
    pub dropped_records: u64,
    pub dropped_bytes: u64,
    pub corrupt_records: u64,
    pub oldest_unacked_age: Option<Duration>,
}
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record of {len} bytes is larger than {max}")]
    TooLarge { len: usize, max: usize },
}

type Hook = Box<dyn Fn(&[u8]) + Send + Sync>;

struct Inner {
    records: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    read: u64,
    acked: u64,
    bytes: u64,
    stats: SpoolStats,
    hook: Option<Hook>,
}

#[derive(Clone)]
pub struct Spool {
    cfg: Arc<SpoolConfig>,
    inner: Arc<Mutex<Inner>>,
    readable: Arc<Notify>,
    space: Arc<Notify>,
}

impl Spool {
    pub fn open(cfg: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        Ok((
            Spool {
                cfg: Arc::new(cfg),
                inner: Arc::new(Mutex::new(Inner {
                    records: VecDeque::new(),
                    next: 0,
                    read: 0,
                    acked: 0,
                    bytes: 0,
                    stats: SpoolStats::default(),
                    hook: None,
                })),
                readable: Arc::new(Notify::new()),
                space: Arc::new(Notify::new()),
            },
            Recovery::default(),
        ))
    }
    pub fn append(&self, record: &[u8]) -> Result<Appended, SpoolError> {
        let mut g = self.inner.lock().unwrap();
        let len = record.len() as u64 + 8;
        while g.bytes + len > self.cfg.max_bytes && !g.records.is_empty() {
            if self.cfg.policy == FullPolicy::Block {
                return Ok(Appended::Full);
            }
            let (seq, r) = g.records.pop_front().unwrap();
            g.bytes -= r.len() as u64 + 8;
            g.stats.dropped_records += 1;
            if let Some(h) = &g.hook {
                h(&r);
            }
            g.read = g.read.max(seq + 1);
            g.acked = g.acked.max(seq + 1);
        }
        let seq = g.next;
        g.next += 1;
        g.bytes += len;
        g.records.push_back((seq, record.to_vec()));
        g.stats.appended_records += 1;
        drop(g);
        self.readable.notify_one();
        Ok(Appended::Stored)
    }
    pub async fn wait_for_space(&self) {
        self.space.notified().await;
    }
    pub fn set_drop_hook(&self, hook: Box<dyn Fn(&[u8]) + Send + Sync>) {
        self.inner.lock().unwrap().hook = Some(hook);
    }
    pub fn read(
        &self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<Cursor> {
        let mut g = self.inner.lock().unwrap();
        let mut n = 0;
        let mut bytes = 0;
        let mut last = None;
        let read = g.read;
        for (seq, r) in &g.records {
            if *seq < read {
                continue;
            }
            if n > 0 && (n >= max_records || bytes + r.len() > max_bytes) {
                break;
            }
            out.push(r.clone());
            n += 1;
            bytes += r.len();
            last = Some(*seq);
        }
        let last = last?;
        g.read = last + 1;
        Some(Cursor {
            segment: 0,
            offset: last + 1,
        })
    }
    pub async fn wait_readable(&self) {
        loop {
            let notified = self.readable.notified();
            {
                let g = self.inner.lock().unwrap();
                if g.records.iter().any(|(s, _)| *s >= g.read) {
                    return;
                }
            }
            notified.await;
        }
    }
    pub fn ack(&self, upto: Cursor) -> Result<(), SpoolError> {
        let mut g = self.inner.lock().unwrap();
        while let Some((seq, _)) = g.records.front() {
            if *seq >= upto.offset {
                break;
            }
            let (_, r) = g.records.pop_front().unwrap();
            g.bytes -= r.len() as u64 + 8;
            g.stats.acked_records += 1;
        }
        g.acked = g.acked.max(upto.offset);
        drop(g);
        self.space.notify_waiters();
        Ok(())
    }
    pub fn rewind(&self) {
        let mut g = self.inner.lock().unwrap();
        g.read = g.acked;
    }
    pub fn sync(&self) -> Result<(), SpoolError> {
        Ok(())
    }
    pub fn stats(&self) -> SpoolStats {
        let g = self.inner.lock().unwrap();
        let mut s = g.stats.clone();
        s.bytes = g.bytes;
        s.records = g.records.len() as u64;
        s
    }
}
