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
//!
//! # Layout
//! `format`: byte layouts and the scanner (pure); `segment`: one segment
//! file; `ack`: the `ack` file; `open`: recovery at open; `inner`: the state
//! under the mutex (appends, reads, acks). This file: the public types and
//! the methods of [`Spool`].

mod ack;
pub mod format;
mod inner;
mod open;
mod segment;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use self::format::{MAX_RECORD_LEN, RECORD_HEADER_LEN};
pub use self::inner::RecordSink;
use self::segment::{Segment, segment_path};

/// Largest record payload [`Spool::append`] accepts (64 MiB).
pub const MAX_RECORD_BYTES: usize = MAX_RECORD_LEN;

/// Reads fetch this much of a segment at once, so small records cost one
/// `pread` per window rather than two per record.
const READ_WINDOW: u64 = 256 * 1024;

/// How the spool is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// their payloads to `out` (a `Vec<Vec<u8>>`, one per record, or a
    /// `Vec<u8>`, concatenated: each payload is copied once), and advances the read cursor past them.
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
        out: &mut impl RecordSink,
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
