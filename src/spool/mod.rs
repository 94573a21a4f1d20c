//! The durable spool: an on-disk FIFO of opaque byte records between the
//! pipeline and the writer. It knows nothing of Modbus, MQTT or InfluxDB; a
//! record is whatever bytes the caller appends (the gateway appends encoded
//! line-protocol batches). This comment is its design.
//!
//! # On disk
//! One directory (`SpoolConfig::dir`), holding:
//!
//! * Segment files `NNNNNNNNNNNNNNNNNNNN.seg`: the 20-digit, zero-padded
//!   segment id, so names sort like ids. Ids only grow; one is never reused.
//!   Each file is an 8-byte header (`EMSPOOL` + format version `0x01`)
//!   followed by records back to back:
//!
//!   ```text
//!   [len: u32 LE][crc: u32 LE][payload: len bytes]
//!   crc = crc32c(len as 4 LE bytes ++ payload)
//!   ```
//!
//!   The checksum covers the length too, so a run of zero bytes (what a file
//!   system can leave at the end of a file after a power failure) is never a
//!   valid empty record, and a damaged length is caught like damaged data.
//!   A length with the top bit set ([`PAD_FLAG`](format::PAD_FLAG)) marks
//!   padding: a damaged region recovery has covered with a valid header so
//!   that it is skipped, and reported, only once. Payloads are at most
//!   [`MAX_RECORD_BYTES`] (64 MiB). Records never span segments; a segment is
//!   closed when the next record would take it past `segment_bytes` (a larger
//!   record gets a segment of its own), and a new one is started at every open.
//! * `ack`: the acknowledged position, 28 bytes: `EMSPACK` + version `0x01`,
//!   segment id (u64 LE), offset (u64 LE), crc32c of the first 24 bytes (u32
//!   LE). Everything before the position has been delivered. Replaced
//!   atomically: write `ack.tmp`, fsync it, rename it over `ack`, fsync the
//!   directory.
//! * `*.seg.corrupt`: segments whose header was not ours, renamed aside for
//!   inspection and otherwise ignored (not counted against `max_bytes`).
//!
//! # Invariants
//! 1. Appends go only to the newest (active) segment, with one `writev` of
//!    header and payload and no user-space buffer: once [`Spool::append`]
//!    returns, the record is in the kernel's page cache.
//! 2. A position ([`Cursor`]: segment id, byte offset) names the boundary
//!    after a record. Positions are totally ordered like the stream.
//! 3. ack position ≤ read cursor ≤ end of the active segment, and the oldest
//!    live segment is the one holding the ack position.
//! 4. A segment file is deleted only (a) after an `ack` file naming a
//!    position in a later segment is durable, or (b) by `DropOldest`, which
//!    loses its unacked records on purpose and counts them.
//! 5. `SpoolStats::bytes`, the framed size (8 + payload) of every unacked
//!    record, is at most `max_bytes` after an append returns, except that one
//!    record always fits into an empty spool. Disk use is at most that plus
//!    the acknowledged part of the oldest segment and 8 bytes per segment.
//! 6. Acks never move backwards, and reads never return a record twice
//!    between acks unless [`Spool::rewind`] or a restart put the read cursor
//!    back to the ack position (at-least-once).
//!
//! # Crashes, step by step
//! "kill -9" is the process dying with the kernel intact: the page cache
//! survives and every returned write is on disk eventually. "Power failure"
//! loses whatever was not fsynced.
//!
//! * **During an append.** kill -9 or power failure mid-`writev`: the record
//!   is incomplete, at the end of the newest segment. At open its length runs
//!   past the end of the file or its checksum fails with nothing valid after
//!   it: a torn tail, truncated and counted in `Recovery::truncated_bytes`.
//!   The append had not returned, so nothing accepted is lost.
//! * **After an append returned.** kill -9 loses nothing (page cache). A power
//!   failure loses the records not yet fsynced: with
//!   [`FsyncPolicy::EveryAppend`] none; with [`FsyncPolicy::Interval`] at most
//!   the records of the last period (plus whatever the disk's own cache
//!   drops). The loss shows up as a torn tail or a shorter file.
//! * **While starting a segment.** The file is created, its header written,
//!   the directory fsynced. A crash in between leaves an empty or partial
//!   header: recovery counts those bytes as truncated and deletes the file.
//!   Before the previous segment is closed under `Interval`, it is fsynced, so
//!   at most the active segment has unsynced data.
//! * **During an ack-file update.** A crash before the rename leaves `ack`
//!   with the previous position and a stray `ack.tmp`, which open removes:
//!   the records acked since are delivered again (at-least-once). A crash
//!   after the rename but before the directory fsync: after a power failure
//!   either name may be in effect; both are complete files with their own
//!   checksum. A missing or corrupt `ack` (size, magic or checksum) makes the
//!   spool start from the oldest segment and reports `Recovery::ack_reset`.
//! * **During segment deletion.** Deletion happens only after the `ack` file
//!   naming a later segment is durable. If the crash comes first, open finds
//!   segments wholly before the ack position and deletes them then.
//! * **DropOldest.** The `ack` file is not rewritten when a full spool drops
//!   its oldest segment: at open an ack position in a segment that no longer
//!   exists means "the start of the next live segment", the same state.
//! * **Bit rot anywhere.** A record whose checksum fails while a valid record
//!   follows is skipped: recovery looks for the next offset where a header
//!   has a plausible length and a matching checksum (first where the damaged
//!   record's own length points), counts one corrupt region and its bytes,
//!   and covers it with padding. A segment whose header is not ours is
//!   renamed aside and counted in `Recovery::skipped_segments`. Damage found
//!   by a read while running is skipped the same way, counted in
//!   `SpoolStats::corrupt_records`, remembered in memory so a re-read does
//!   not count it twice, and repaired at the next open.
//!
//! Open never fails because of what it finds in the files; only a directory
//! that cannot be created, listed or written to is an error.
//!
//! # Concurrency
//! Plain `std::fs` under one mutex; fsyncs of appends and of the `ack` file
//! run outside it so readers are not held up. Async is only for waiting
//! ([`Spool::wait_readable`], [`Spool::wait_for_space`]), built on
//! [`tokio::sync::Notify`] with the wait registered before the check, so no
//! wakeup is lost and dropping the future is harmless.

mod ack;
pub mod format;
mod segment;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use self::format::{
    MAX_RECORD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Scanner, decode_len, header_fields,
    record_crc, record_header,
};
use self::segment::{Recovered, Segment, segment_path};

/// Largest record payload [`Spool::append`] accepts (64 MiB).
pub const MAX_RECORD_BYTES: usize = MAX_RECORD_LEN;

/// Reads fetch this much of a segment at once, so small records cost one
/// `pread` per window rather than two per record.
const READ_WINDOW: u64 = 256 * 1024;

/// How the spool is set up.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of the segment files and the `ack` file; created if missing.
    pub dir: PathBuf,
    /// Bound on the framed size of unacknowledged records.
    pub max_bytes: u64,
    /// Size at which the active segment is closed and a new one started.
    pub segment_bytes: u64,
    /// What [`Spool::append`] does when a record does not fit.
    pub policy: FullPolicy,
    /// When appended data is fsynced.
    pub fsync: FsyncPolicy,
}

/// What happens when an append would take the spool past `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Write nothing and return [`Appended::Full`]; the caller waits with
    /// [`Spool::wait_for_space`] and retries (sources slow down).
    Block,
    /// Delete the oldest segments, unacked records included (counted, and
    /// passed to the drop hook), until the record fits.
    DropOldest,
}

/// When appended records are fsynced (power-failure durability; a process
/// kill loses nothing either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every append returns.
    EveryAppend,
    /// By a background thread, every period, when something was appended
    /// since the last fsync. At most one period is lost on power failure.
    Interval(Duration),
}

/// A position in the spool: the boundary after a record. Ordered like the
/// stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// Segment id.
    pub segment: u64,
    /// Byte offset in the segment file.
    pub offset: u64,
}

/// What [`Spool::open`] found and repaired; log it at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged records, to be delivered.
    pub pending_records: u64,
    /// Their framed bytes (8-byte header + payload each).
    pub pending_bytes: u64,
    /// Bytes cut off torn or corrupt segment tails (and partial segment headers).
    pub truncated_bytes: u64,
    /// Damaged regions in the middle of unacknowledged data that were skipped
    /// (each is usually one record; how many a region held cannot be known).
    pub corrupt_records: u64,
    /// Bytes of those regions.
    pub corrupt_bytes: u64,
    /// Segment files whose header was not a spool header, renamed aside.
    pub skipped_segments: u64,
    /// The `ack` file was missing or corrupt: delivery restarts at the oldest
    /// segment, so records may be delivered twice.
    pub ack_reset: bool,
}

impl Recovery {
    /// Whether nothing was damaged, truncated, skipped or reset.
    pub fn is_clean(&self) -> bool {
        self.truncated_bytes == 0
            && self.corrupt_records == 0
            && self.skipped_segments == 0
            && !self.ack_reset
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spool: {} records ({} bytes) pending; {} torn bytes truncated; \
             {} corrupt regions ({} bytes) skipped; {} segments with a bad header skipped; {}",
            self.pending_records,
            self.pending_bytes,
            self.truncated_bytes,
            self.corrupt_records,
            self.corrupt_bytes,
            self.skipped_segments,
            if self.ack_reset {
                "ack file missing or corrupt: redelivering from the oldest segment"
            } else {
                "ack position intact"
            }
        )
    }
}

/// Outcome of [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The record is in the spool.
    Stored,
    /// [`FullPolicy::Block`] and the record does not fit: nothing was
    /// written. Wait with [`Spool::wait_for_space`] and retry.
    Full,
}

/// A snapshot of the spool's counters. The `*_records` counters count since
/// this process opened the spool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Framed bytes of unacknowledged records on disk.
    pub bytes: u64,
    /// Unacknowledged records.
    pub records: u64,
    /// Live segment files.
    pub segments: u64,
    /// Records appended.
    pub appended_records: u64,
    /// Records acknowledged.
    pub acked_records: u64,
    /// Unacknowledged records deleted by [`FullPolicy::DropOldest`].
    pub dropped_records: u64,
    /// Their framed bytes.
    pub dropped_bytes: u64,
    /// Damaged regions skipped, at open and while reading.
    pub corrupt_records: u64,
    /// Approximate age of the oldest unacknowledged record: the time since
    /// the segment holding it received its first record (for segments from
    /// before a restart: since the file was last modified).
    pub oldest_unacked_age: Option<Duration>,
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error(
        "spool: I/O error on \"{}\": {source} (check that the spool directory exists, is writable and has free space)",
        path.display()
    )]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A record larger than [`MAX_RECORD_BYTES`].
    #[error(
        "spool: a record of {len} bytes exceeds the limit of {max} bytes; split it into smaller batches"
    )]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Called with the payload of every unacknowledged record that
/// [`FullPolicy::DropOldest`] deletes.
pub type DropHook = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The durable spool. Cheap to clone: all clones share one spool.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

struct Shared {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Serializes ack-file updates, which run outside `inner`.
    ack_lock: Mutex<()>,
    readable: Notify,
    space: Notify,
    syncer: Option<Syncer>,
}

/// The background fsync thread of [`FsyncPolicy::Interval`]; it holds only the
/// [`SyncSlot`], never the spool, so dropping the spool stops it.
struct Syncer {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(s) = &mut self.syncer {
            drop(s.stop.take());
            if let Some(h) = s.handle.take() {
                let _ = h.join();
            }
        }
    }
}

/// What the fsync thread needs: the active segment and whether it has
/// unsynced appends.
struct SyncSlot {
    file: Mutex<Arc<File>>,
    dirty: AtomicBool,
}

/// A position together with the record and byte sequence numbers at it.
#[derive(Debug, Clone, Copy)]
struct Pos {
    cursor: Cursor,
    seq: u64,
    bseq: u64,
}

/// A cached stretch of one segment for reads.
struct Window {
    segment: u64,
    start: u64,
    data: Vec<u8>,
}

struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    policy: FullPolicy,
    sync_every: bool,
    /// Live segments, oldest (holding the ack position) first, active last.
    segments: VecDeque<Segment>,
    active: Arc<File>,
    /// A failed write could not be undone: start a new segment first.
    active_broken: bool,
    next_id: u64,
    slot: Option<Arc<SyncSlot>>,
    ack: Pos,
    read: Pos,
    /// Positions `read` returned since the last ack, with their sequence
    /// numbers, so an ack knows how many records and bytes it covers.
    inflight: BTreeMap<Cursor, (u64, u64)>,
    reader: Option<(u64, Arc<File>)>,
    window: Window,
    appended: u64,
    acked: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    corrupt: u64,
    /// Framed size of the last record refused with `Full`.
    full_need: u64,
    hook: Option<DropHook>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock leaves counters at worst slightly off; the
    // files stay consistent, so keep going rather than cascade the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, recovering whatever a crash
    /// left behind.
    ///
    /// # Errors
    /// Only when the directory is unusable: it cannot be created or listed,
    /// is not a directory, or a new segment or the `ack` file cannot be
    /// written in it. Damaged contents are repaired and reported in the
    /// [`Recovery`], never an error.
    pub fn open(cfg: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        let dir = cfg.dir;
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let meta = fs::metadata(&dir).map_err(io_err(&dir))?;
        if !meta.is_dir() {
            return Err(SpoolError::Io {
                path: dir,
                source: io::Error::other("not a directory"),
            });
        }
        ack::remove_leftover_tmp(&dir)?;
        let ack_state = ack::read_ack(&dir);

        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(format::parse_segment_file_name)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let mut rec = Recovery {
            ack_reset: match ack_state {
                ack::AckState::Corrupt => true,
                ack::AckState::Missing => !ids.is_empty(),
                ack::AckState::Valid(..) => false,
            },
            ..Recovery::default()
        };
        let (ack_seg, ack_off) = match ack_state {
            ack::AckState::Valid(s, o) => (Some(s), o),
            _ => (None, 0),
        };
        if rec.ack_reset {
            tracing::warn!(dir = %dir.display(), "spool: ack file missing or corrupt; redelivering from the oldest segment");
        }

        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut ack_pos: Option<Pos> = None;
        let (mut seq, mut bseq) = (0u64, 0u64);
        let mut buf = Vec::new();
        for &id in &ids {
            let path = segment_path(&dir, id);
            if ack_seg.is_some_and(|a| id < a) {
                // Wholly acknowledged; a crash came between the durable ack
                // and the deletion.
                remove_quietly(&path);
                continue;
            }
            let is_ack_seg = ack_seg == Some(id);
            let off = if is_ack_seg {
                ack_off.max(SEGMENT_HEADER_LEN)
            } else {
                SEGMENT_HEADER_LEN
            };
            match segment::recover(&dir, id, &mut buf, off) {
                Recovered::Skipped => {
                    rec.skipped_segments += 1;
                    let aside = dir.join(format!("{}.corrupt", format::segment_file_name(id)));
                    tracing::warn!(path = %path.display(), "spool: segment header is not a spool header; renaming it aside");
                    if let Err(e) = fs::rename(&path, &aside) {
                        tracing::warn!(path = %path.display(), error = %e, "spool: cannot rename a bad segment; it will be reported again");
                    }
                }
                Recovered::TornCreation(n) => {
                    rec.truncated_bytes += n;
                    remove_quietly(&path);
                }
                Recovered::Scanned(s) => {
                    rec.truncated_bytes += s.truncated;
                    rec.corrupt_records += s.corrupt_regions;
                    rec.corrupt_bytes += s.corrupt_bytes;
                    if s.len == SEGMENT_HEADER_LEN && !is_ack_seg {
                        // Empty (a restart with nothing appended): nothing refers to it.
                        remove_quietly(&path);
                        continue;
                    }
                    let seg = Segment {
                        id,
                        len: s.len,
                        first_seq: seq,
                        records: s.records,
                        first_bseq: bseq,
                        data_bytes: s.data_bytes,
                        holes: s.holes,
                        started: s.modified,
                    };
                    if is_ack_seg {
                        ack_pos = Some(Pos {
                            cursor: Cursor {
                                segment: id,
                                offset: s.ack_offset,
                            },
                            seq: seq + s.acked_records,
                            bseq: bseq + s.acked_bytes,
                        });
                    } else if ack_pos.is_none() {
                        ack_pos = Some(Pos {
                            cursor: Cursor {
                                segment: id,
                                offset: SEGMENT_HEADER_LEN,
                            },
                            seq,
                            bseq,
                        });
                    }
                    seq += seg.records;
                    bseq += seg.data_bytes;
                    segments.push_back(seg);
                }
            }
        }

        let sync_every = matches!(cfg.fsync, FsyncPolicy::EveryAppend);
        let active_id = ids.last().copied().unwrap_or(0).max(ack_seg.unwrap_or(0)) + 1;
        let active = Arc::new(segment::create(&dir, active_id, sync_every)?);
        segments.push_back(Segment {
            id: active_id,
            len: SEGMENT_HEADER_LEN,
            first_seq: seq,
            records: 0,
            first_bseq: bseq,
            data_bytes: 0,
            holes: Vec::new(),
            started: SystemTime::now(),
        });
        let mut ack_pos = ack_pos.unwrap_or(Pos {
            cursor: Cursor {
                segment: active_id,
                offset: SEGMENT_HEADER_LEN,
            },
            seq,
            bseq,
        });
        // Leading segments with nothing left to deliver go, after the ack
        // naming the segment behind them is durable.
        let mut doomed = Vec::new();
        while segments.len() > 1 && segments[0].end_seq() == ack_pos.seq {
            if let Some(s) = segments.pop_front() {
                doomed.push(s.id);
            }
            let front = &segments[0];
            ack_pos = Pos {
                cursor: Cursor {
                    segment: front.id,
                    offset: SEGMENT_HEADER_LEN,
                },
                seq: front.first_seq,
                bseq: front.first_bseq,
            };
        }
        ack::write_ack(&dir, ack_pos.cursor.segment, ack_pos.cursor.offset)?;
        for id in doomed {
            remove_quietly(&segment_path(&dir, id));
        }

        rec.pending_records = seq - ack_pos.seq;
        rec.pending_bytes = bseq - ack_pos.bseq;

        let slot = match cfg.fsync {
            FsyncPolicy::EveryAppend => None,
            FsyncPolicy::Interval(_) => Some(Arc::new(SyncSlot {
                file: Mutex::new(Arc::clone(&active)),
                dirty: AtomicBool::new(false),
            })),
        };
        let syncer = match (cfg.fsync, &slot) {
            (FsyncPolicy::Interval(period), Some(slot)) => {
                Some(start_syncer(&dir, period, Arc::clone(slot))?)
            }
            _ => None,
        };
        let inner = Inner {
            dir: dir.clone(),
            max_bytes: cfg.max_bytes,
            segment_bytes: cfg.segment_bytes,
            policy: cfg.policy,
            sync_every,
            segments,
            active,
            active_broken: false,
            next_id: active_id + 1,
            slot,
            ack: ack_pos,
            read: ack_pos,
            inflight: BTreeMap::new(),
            reader: None,
            window: Window {
                segment: 0,
                start: 0,
                data: Vec::new(),
            },
            appended: 0,
            acked: 0,
            dropped_records: 0,
            dropped_bytes: 0,
            corrupt: rec.corrupt_records,
            full_need: 0,
            hook: None,
        };
        let spool = Spool {
            shared: Arc::new(Shared {
                dir,
                inner: Mutex::new(inner),
                ack_lock: Mutex::new(()),
                readable: Notify::new(),
                space: Notify::new(),
                syncer,
            }),
        };
        Ok((spool, rec))
    }

    /// Appends one record. On return it survives a process kill; it survives
    /// a power failure once fsynced (see [`FsyncPolicy`]).
    ///
    /// # Errors
    /// [`SpoolError::TooLarge`] for a record over [`MAX_RECORD_BYTES`];
    /// [`SpoolError::Io`] when writing, fsyncing or starting a segment fails
    /// (nothing is stored then).
    pub fn append(&self, record: &[u8]) -> Result<Appended, SpoolError> {
        if record.len() > MAX_RECORD_LEN {
            return Err(SpoolError::TooLarge {
                len: record.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let need = (RECORD_HEADER_LEN + record.len()) as u64;
        let mut inner = lock(&self.shared.inner);
        let mut freed = false;
        if inner.records() > 0 && inner.unacked_bytes() + need > inner.max_bytes {
            match inner.policy {
                FullPolicy::Block => {
                    inner.full_need = need;
                    return Ok(Appended::Full);
                }
                FullPolicy::DropOldest => {
                    inner.make_room(need)?;
                    freed = true;
                }
            }
        }
        let to_sync = inner.write(record, need)?;
        drop(inner);
        if freed {
            self.shared.space.notify_waiters();
        }
        self.shared.readable.notify_waiters();
        if let Some(file) = to_sync {
            file.sync_data().map_err(io_err(&self.shared.dir))?;
        }
        Ok(Appended::Stored)
    }

    /// Resolves when the record last refused with [`Appended::Full`] would
    /// fit now (or the spool is empty): after acks or drops freed space.
    /// Resolves at once if that is already so. Cancel-safe.
    pub async fn wait_for_space(&self) {
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = lock(&self.shared.inner);
                if inner.records() == 0
                    || inner.unacked_bytes() + inner.full_need <= inner.max_bytes
                {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Sets the hook [`FullPolicy::DropOldest`] calls with the payload of each
    /// unacknowledged record it drops, before deleting its segment. It runs
    /// under the spool's lock: it must not call back into the spool.
    pub fn set_drop_hook(&self, hook: DropHook) {
        lock(&self.shared.inner).hook = Some(hook);
    }

    /// Reads up to `max_records` records after the read cursor, appending
    /// their payloads to `out`, and advances the read cursor past them.
    /// Stops before a record that would take the payload total past
    /// `max_bytes`, but always returns at least one record when one is
    /// available. Returns the position after the last record read, to pass
    /// to [`Spool::ack`] once delivered, or `None` when nothing is available.
    ///
    /// A record whose checksum fails is skipped and counted
    /// (`SpoolStats::corrupt_records`). An I/O error ends the read early
    /// (logged); the next call tries again.
    pub fn read(
        &self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<Cursor> {
        lock(&self.shared.inner).read(max_records, max_bytes, out)
    }

    /// Resolves when records exist after the read cursor. Cancel-safe.
    pub async fn wait_readable(&self) {
        loop {
            let notified = self.shared.readable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = lock(&self.shared.inner);
                if inner.read.seq < inner.end_seq() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Acknowledges everything before `upto`, a position [`Spool::read`]
    /// returned: persists it atomically, deletes segments now wholly
    /// acknowledged, and wakes [`Spool::wait_for_space`]. Positions at or
    /// before the current ack do nothing (acks never move backwards); a
    /// position `read` never returned is rounded down to the nearest one it
    /// did (acknowledging less is always safe).
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the `ack` file cannot be written; the ack
    /// position is then unchanged.
    pub fn ack(&self, upto: Cursor) -> Result<(), SpoolError> {
        let _serial = lock(&self.shared.ack_lock);
        let Some(target) = lock(&self.shared.inner).ack_target(upto) else {
            return Ok(());
        };
        ack::write_ack(
            &self.shared.dir,
            target.cursor.segment,
            target.cursor.offset,
        )?;
        let doomed = lock(&self.shared.inner).apply_ack(target);
        for id in doomed {
            remove_quietly(&segment_path(&self.shared.dir, id));
        }
        self.shared.space.notify_waiters();
        Ok(())
    }

    /// Moves the read cursor back to the ack position, so the next reads
    /// return the unacknowledged records again (after a failed delivery).
    pub fn rewind(&self) {
        let mut inner = lock(&self.shared.inner);
        inner.read = inner.ack;
    }

    /// Fsyncs the active segment now (at shutdown).
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the fsync fails.
    pub fn sync(&self) -> Result<(), SpoolError> {
        let (file, id) = {
            let inner = lock(&self.shared.inner);
            if let Some(slot) = &inner.slot {
                slot.dirty.store(false, Ordering::Relaxed);
            }
            (
                Arc::clone(&inner.active),
                inner.segments.back().map_or(0, |s| s.id),
            )
        };
        file.sync_data()
            .map_err(io_err(&segment_path(&self.shared.dir, id)))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SpoolStats {
        let inner = lock(&self.shared.inner);
        let records = inner.records();
        let oldest_unacked_age = if records == 0 {
            None
        } else {
            inner
                .segments
                .iter()
                .find(|s| s.end_seq() > inner.ack.seq)
                .map(|s| {
                    SystemTime::now()
                        .duration_since(s.started)
                        .unwrap_or_default()
                })
        };
        SpoolStats {
            bytes: inner.unacked_bytes(),
            records,
            segments: inner.segments.len() as u64,
            appended_records: inner.appended,
            acked_records: inner.acked,
            dropped_records: inner.dropped_records,
            dropped_bytes: inner.dropped_bytes,
            corrupt_records: inner.corrupt,
            oldest_unacked_age,
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "spool: cannot delete a segment; will retry at the next open");
    }
}

fn start_syncer(dir: &Path, period: Duration, slot: Arc<SyncSlot>) -> Result<Syncer, SpoolError> {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("spool-fsync".into())
        .spawn(move || {
            // Disconnected (the spool was dropped) ends the loop.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                if slot.dirty.swap(false, Ordering::Relaxed) {
                    let file = Arc::clone(&lock(&slot.file));
                    if let Err(e) = file.sync_data() {
                        tracing::warn!(error = %e, "spool: periodic fsync failed; retrying");
                        slot.dirty.store(true, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(io_err(dir))?;
    Ok(Syncer {
        stop: Some(tx),
        handle: Some(handle),
    })
}

impl Inner {
    fn end_seq(&self) -> u64 {
        self.segments.back().map_or(self.ack.seq, Segment::end_seq)
    }

    fn end_bseq(&self) -> u64 {
        self.segments
            .back()
            .map_or(self.ack.bseq, Segment::end_bseq)
    }

    fn records(&self) -> u64 {
        self.end_seq() - self.ack.seq
    }

    fn unacked_bytes(&self) -> u64 {
        self.end_bseq() - self.ack.bseq
    }

    fn seg_index(&self, id: u64) -> Option<usize> {
        self.segments.binary_search_by_key(&id, |s| s.id).ok()
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.segments.back().map_or(0, |s| s.id))
    }

    /// Writes one record to the active segment, starting a new one first
    /// when needed. Returns the file to fsync under `EveryAppend`.
    fn write(&mut self, record: &[u8], need: u64) -> Result<Option<Arc<File>>, SpoolError> {
        let back_len = self.segments.back().map_or(0, |s| s.len);
        if self.active_broken
            || (back_len > SEGMENT_HEADER_LEN && back_len + need > self.segment_bytes)
        {
            self.roll()?;
        }
        let header = record_header(record);
        if let Err(e) = segment::write_record(&self.active, &header, record) {
            let path = self.active_path();
            let old = self.segments.back().map_or(SEGMENT_HEADER_LEN, |s| s.len);
            // Undo a partial record so the next append does not land behind it.
            if self.active.set_len(old).is_err() {
                self.active_broken = true;
            }
            return Err(SpoolError::Io { path, source: e });
        }
        if let Some(back) = self.segments.back_mut() {
            if back.records == 0 {
                back.started = SystemTime::now();
            }
            back.len += need;
            back.records += 1;
            back.data_bytes += need;
        }
        self.appended += 1;
        if self.sync_every {
            Ok(Some(Arc::clone(&self.active)))
        } else {
            if let Some(slot) = &self.slot {
                slot.dirty.store(true, Ordering::Relaxed);
            }
            Ok(None)
        }
    }

    /// Closes the active segment (fsynced under `Interval`, so only the active
    /// segment ever holds unsynced data) and starts the next one.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if !self.sync_every {
            self.active
                .sync_data()
                .map_err(io_err(&self.active_path()))?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = Arc::new(segment::create(&self.dir, id, self.sync_every)?);
        let (first_seq, first_bseq) = (self.end_seq(), self.end_bseq());
        self.segments.push_back(Segment {
            id,
            len: SEGMENT_HEADER_LEN,
            first_seq,
            records: 0,
            first_bseq,
            data_bytes: 0,
            holes: Vec::new(),
            started: SystemTime::now(),
        });
        self.active = Arc::clone(&file);
        self.active_broken = false;
        if let Some(slot) = &self.slot {
            *lock(&slot.file) = file;
            slot.dirty.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `DropOldest`: deletes the oldest segments until `need` more bytes fit.
    fn make_room(&mut self, need: u64) -> Result<(), SpoolError> {
        while self.records() > 0 && self.unacked_bytes() + need > self.max_bytes {
            if self.segments.len() == 1 {
                self.roll()?;
            }
            self.drop_front();
        }
        Ok(())
    }

    /// Deletes the oldest segment, losing (and counting) its unacked records.
    fn drop_front(&mut self) {
        let Some(seg) = self.segments.front() else {
            return;
        };
        let (id, len) = (seg.id, seg.len);
        let records = seg.end_seq().saturating_sub(self.ack.seq);
        let bytes = seg.end_bseq().saturating_sub(self.ack.bseq);
        let from = if self.ack.cursor.segment == id {
            self.ack.cursor.offset
        } else {
            SEGMENT_HEADER_LEN
        };
        if records > 0 && self.hook.is_some() {
            self.call_drop_hook(0, from, len);
        }
        tracing::warn!(
            segment = id,
            records,
            bytes,
            "spool: full, dropping the oldest unacknowledged records"
        );
        self.dropped_records += records;
        self.dropped_bytes += bytes;
        self.segments.pop_front();
        self.forget_reader(id);
        remove_quietly(&segment_path(&self.dir, id));
        let Some(front) = self.segments.front() else {
            return;
        };
        self.ack = Pos {
            cursor: Cursor {
                segment: front.id,
                offset: SEGMENT_HEADER_LEN,
            },
            seq: front.first_seq,
            bseq: front.first_bseq,
        };
        if self.read.cursor < self.ack.cursor {
            self.read = self.ack;
        }
        self.inflight = self.inflight.split_off(&self.ack.cursor);
    }

    /// Passes every data record of segment `idx` in `[from, to)` to the hook.
    fn call_drop_hook(&mut self, idx: usize, from: u64, to: u64) {
        let id = self.segments[idx].id;
        let mut buf = vec![0u8; to.saturating_sub(from) as usize];
        let read = self
            .file_for(idx)
            .and_then(|f| f.read_exact_at(&mut buf, from));
        if let Err(e) = read {
            tracing::warn!(segment = id, error = %e, "spool: cannot read dropped records for the drop hook");
            return;
        }
        let Some(hook) = &self.hook else { return };
        for item in Scanner::new(&buf, from) {
            if let format::Item::Record { start, end } = item {
                let s = (start - from) as usize + RECORD_HEADER_LEN;
                hook(&buf[s..(end - from) as usize]);
            }
        }
    }

    /// A handle to read segment `idx`: the active file, or a cached one.
    fn file_for(&mut self, idx: usize) -> io::Result<Arc<File>> {
        if idx + 1 == self.segments.len() {
            return Ok(Arc::clone(&self.active));
        }
        let id = self.segments[idx].id;
        if let Some((rid, f)) = &self.reader
            && *rid == id
        {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(File::open(segment_path(&self.dir, id))?);
        self.reader = Some((id, Arc::clone(&f)));
        Ok(f)
    }

    fn forget_reader(&mut self, id: u64) {
        if self.reader.as_ref().is_some_and(|(rid, _)| *rid == id) {
            self.reader = None;
        }
        if self.window.segment == id {
            self.window.data.clear();
        }
    }

    /// Makes the read window cover `[off, off + n)` of segment `idx` and
    /// returns where that starts in the window.
    fn fill_window(&mut self, idx: usize, off: u64, n: u64) -> io::Result<usize> {
        let (id, seg_len) = (self.segments[idx].id, self.segments[idx].len);
        let w = &self.window;
        if w.segment == id && off >= w.start && off + n <= w.start + w.data.len() as u64 {
            return Ok((off - w.start) as usize);
        }
        let want = n.max(READ_WINDOW).min(seg_len - off) as usize;
        let file = self.file_for(idx)?;
        self.window.data.resize(want, 0);
        if let Err(e) = file.read_exact_at(&mut self.window.data, off) {
            self.window.data.clear();
            return Err(e);
        }
        self.window.segment = id;
        self.window.start = off;
        Ok(0)
    }

    fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<Cursor> {
        let mut pos = self.read;
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut last_rescan = None;
        while n < max_records && pos.seq < self.end_seq() {
            let Some(idx) = self.seg_index(pos.cursor.segment) else {
                break;
            };
            let seg = &self.segments[idx];
            let off = seg.skip_holes(pos.cursor.offset.max(SEGMENT_HEADER_LEN));
            if off >= seg.len {
                let Some(next) = self.segments.get(idx + 1) else {
                    break;
                };
                pos = Pos {
                    cursor: Cursor {
                        segment: next.id,
                        offset: SEGMENT_HEADER_LEN,
                    },
                    seq: next.first_seq,
                    bseq: next.first_bseq,
                };
                continue;
            }
            pos.cursor.offset = off;
            let seg_len = seg.len;
            match self.read_one(idx, off, seg_len, n > 0, max_bytes - bytes.min(max_bytes)) {
                Ok(Step::Record(payload)) => {
                    let framed = (RECORD_HEADER_LEN + payload.len()) as u64;
                    bytes += payload.len();
                    out.push(payload);
                    n += 1;
                    pos.cursor.offset = off + framed;
                    pos.seq += 1;
                    pos.bseq += framed;
                }
                Ok(Step::Pad(end)) => pos.cursor.offset = end,
                Ok(Step::Stop) => break,
                Ok(Step::Damaged) => {
                    if last_rescan == Some((idx, off)) {
                        break;
                    }
                    last_rescan = Some((idx, off));
                    self.rescan(idx, off, pos);
                }
                Err(e) => {
                    tracing::warn!(segment = pos.cursor.segment, offset = off, error = %e, "spool: read failed; will retry");
                    break;
                }
            }
        }
        self.read = pos;
        if n == 0 {
            return None;
        }
        self.inflight.insert(pos.cursor, (pos.seq, pos.bseq));
        Some(pos.cursor)
    }

    /// Reads the record at `off` of segment `idx`; `Stop` when it would
    /// exceed `room` and something was read already.
    fn read_one(
        &mut self,
        idx: usize,
        off: u64,
        seg_len: u64,
        some: bool,
        room: usize,
    ) -> io::Result<Step> {
        let hdr_len = RECORD_HEADER_LEN as u64;
        if off + hdr_len > seg_len {
            return Ok(Step::Damaged);
        }
        let at = self.fill_window(idx, off, hdr_len)?;
        let Some((field, crc)) = header_fields(&self.window.data[at..]) else {
            return Ok(Step::Damaged);
        };
        let Some(frame) = decode_len(field) else {
            return Ok(Step::Damaged);
        };
        let end = off + hdr_len + frame.len as u64;
        if end > seg_len {
            return Ok(Step::Damaged);
        }
        if frame.pad {
            return Ok(Step::Pad(end));
        }
        if some && frame.len > room {
            return Ok(Step::Stop);
        }
        let payload = if frame.len as u64 <= READ_WINDOW {
            let at = self.fill_window(idx, off + hdr_len, frame.len as u64)?;
            self.window.data[at..at + frame.len].to_vec()
        } else {
            let mut v = vec![0u8; frame.len];
            self.file_for(idx)?.read_exact_at(&mut v, off + hdr_len)?;
            v
        };
        if record_crc(field, &payload) != crc {
            return Ok(Step::Damaged);
        }
        Ok(Step::Record(payload))
    }

    /// Damage found while reading at `off` (where `pos` is): re-classifies
    /// the rest of the segment, remembers the damage as holes, counts it, and
    /// corrects the record and byte counts of this and later segments.
    fn rescan(&mut self, idx: usize, off: u64, pos: Pos) {
        let seg_len = self.segments[idx].len;
        let mut buf = vec![0u8; (seg_len - off) as usize];
        let got = match self.file_for(idx) {
            Ok(f) => read_up_to(&f, &mut buf, off),
            Err(_) => 0,
        };
        buf.truncate(got);
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut holes = Vec::new();
        for item in Scanner::new(&buf, off) {
            match item {
                format::Item::Record { start, end } => {
                    records += 1;
                    bytes += end - start;
                }
                format::Item::Pad { start, end } => holes.push((start, end)),
                format::Item::Damaged { start, end } => {
                    self.corrupt += 1;
                    holes.push((start, end));
                }
                format::Item::Torn { start, .. } => {
                    self.corrupt += 1;
                    holes.push((start, seg_len));
                }
            }
        }
        if buf.is_empty() {
            // The file is shorter than we wrote: someone truncated it.
            self.corrupt += 1;
            holes.push((off, seg_len));
        }
        tracing::warn!(
            segment = self.segments[idx].id,
            offset = off,
            "spool: damaged record found while reading; skipping it"
        );
        let seg = &mut self.segments[idx];
        let old_records = seg.end_seq() - pos.seq;
        let old_bytes = seg.end_bseq() - pos.bseq;
        seg.records = seg.records - old_records + records;
        seg.data_bytes = seg.data_bytes - old_bytes + bytes;
        for (s, e) in holes {
            seg.add_hole(s, e);
        }
        for later in self.segments.iter_mut().skip(idx + 1) {
            later.first_seq = later.first_seq - old_records + records;
            later.first_bseq = later.first_bseq - old_bytes + bytes;
        }
        self.window.data.clear();
    }

    /// Resolves `upto` to a position `read` returned, moved to the start of
    /// the next segment when it is the end of a closed one (so that segment
    /// can go). `None` when nothing new would be acknowledged.
    fn ack_target(&self, upto: Cursor) -> Option<Pos> {
        if upto <= self.ack.cursor {
            return None;
        }
        let (&cursor, &(seq, bseq)) = self.inflight.range(..=upto).next_back()?;
        if cursor <= self.ack.cursor {
            return None;
        }
        let mut p = Pos { cursor, seq, bseq };
        if let Some(idx) = self.seg_index(cursor.segment)
            && let Some(next) = self.segments.get(idx + 1)
            && self.segments[idx].skip_holes(cursor.offset) >= self.segments[idx].len
        {
            p = Pos {
                cursor: Cursor {
                    segment: next.id,
                    offset: SEGMENT_HEADER_LEN,
                },
                seq: next.first_seq,
                bseq: next.first_bseq,
            };
        }
        Some(p)
    }

    /// Takes a durable ack position into memory; returns the segments to delete.
    fn apply_ack(&mut self, p: Pos) -> Vec<u64> {
        if p.cursor <= self.ack.cursor {
            // A drop moved past it meanwhile.
            return Vec::new();
        }
        self.acked += p.seq - self.ack.seq;
        self.ack = p;
        if self.read.cursor < p.cursor {
            self.read = p;
        }
        let mut rest = self.inflight.split_off(&p.cursor);
        rest.remove(&p.cursor);
        self.inflight = rest;
        let mut doomed = Vec::new();
        while self.segments.len() > 1 && self.segments[0].id < p.cursor.segment {
            if let Some(s) = self.segments.pop_front() {
                self.forget_reader(s.id);
                doomed.push(s.id);
            }
        }
        doomed
    }
}

/// What [`Inner::read_one`] found.
enum Step {
    Record(Vec<u8>),
    Pad(u64),
    Stop,
    Damaged,
}

/// Reads as much of `[off, off + buf.len())` as the file has.
fn read_up_to(file: &File, buf: &mut [u8], off: u64) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}
