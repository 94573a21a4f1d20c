//! The local archive: six months (`gateway.archive_days`, default 190) of
//! the gateway's window results and manual entries, on its own disk, for
//! export and for reports without InfluxDB.
//!
//! Why: the national online-monitoring rules ask the enterprise end to keep
//! at least six months of data locally and to export it easily; a database
//! that was lost or reset can be refilled from it (`emgate export --format
//! lp`), and every report can be made from it (`ArchiveStore` in the
//! reports).
//!
//! # What is kept
//! The lines of measurements `consumption`, `site_consumption`, `boiler`
//! and `entry`, byte for byte as they are sent to InfluxDB (timestamps in
//! seconds). Raw `reading` points and `gauge_stats` are **not** archived:
//! they are the bulk of the data (one line per meter and poll) and the
//! rules ask for the consumption figures, which the windows are.
//!
//! # On disk
//! `<data_dir>/archive/YYYY-MM-DD.lp`: the lines whose timestamp falls on
//! that day in the gateway's time zone (`gateway.timezone`), appended in
//! the order written. Once a day is closed (before yesterday), its file is
//! compressed into `YYYY-MM-DD.lp.gz` (gzip, one member per compression: a
//! line written later for that day, a `1mo` window or a late window,
//! reopens `YYYY-MM-DD.lp` and is compressed in its turn). Files of days
//! before today − `archive_days` are deleted at start and each new day
//! (logged "archive rotated"). See [`files`] for the crash story of each step.
//!
//! # Reading back
//! A window written again (same series, same timestamp) is a second line;
//! readers keep one point per series and timestamp, merging fields with the
//! later write winning, exactly as InfluxDB does ([`reader`]). A last line
//! without its `\n` (a crash mid-write) is skipped and counted, and the
//! next append seals it with a `\n` first so no good line is glued to it.
//!
//! # Best effort, and why
//! The spool is the gateway's guarantee: every accepted line reaches the
//! output. The archive is a second copy, written by a dedicated thread
//! ([`Archive::append`] never blocks: it hands the lines to a bounded
//! channel). Each write is synced, so what was written survives a power
//! loss; but lines still in the channel at a crash, lines refused by a full
//! channel and lines a disk error refused are not archived (counted,
//! logged). Making the archive as durable as the spool would put a second
//! fsync on the pipeline's path for every window; windows are few, but the
//! pipeline must never wait for a copy of what the spool already keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use jiff::tz::TimeZone;
use tracing::warn;

pub mod export;
pub mod files;
pub mod format;
pub mod reader;
mod writer;

/// The measurements the archive keeps.
pub const ARCHIVED: [&str; 4] = ["consumption", "site_consumption", "boiler", "entry"];

/// Chunks of lines waiting for the writer thread.
const CHANNEL: usize = 1024;

/// The archive directory under a data directory: `<data_dir>/archive`.
#[must_use]
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("archive")
}

/// Why the archive could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file or directory operation failed.
    #[error("archive {}: {what}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted.
        what: &'static str,
        /// The system's error.
        message: String,
    },
    /// There is no archive directory.
    #[error(
        "archive {}: no such directory; check gateway.data_dir (the archive is <data_dir>/archive) and that gateway.archive_days is not 0",
        .0.display()
    )]
    Missing(PathBuf),
    /// Writing an export failed.
    #[error("cannot write the export: {0}")]
    Output(String),
}

impl ArchiveError {
    /// An [`ArchiveError::Io`].
    #[must_use]
    pub fn io(path: &Path, what: &'static str, e: &std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.to_path_buf(),
            what,
            message: e.to_string(),
        }
    }
}

/// What the archive did, for logs and tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lines written to day files.
    pub lines_written: AtomicU64,
    /// Lines not archived: the channel to the writer was full or closed.
    pub lines_dropped: AtomicU64,
    /// Lines not archived: a disk error.
    pub lines_failed: AtomicU64,
    /// Files removed by rotation.
    pub files_removed: AtomicU64,
    /// Days compressed.
    pub days_compressed: AtomicU64,
    /// Unix seconds of the last "dropped" warning (rate limit).
    last_drop_warn: AtomicU64,
}

enum Msg {
    Lines(Vec<u8>),
    Close(tokio::sync::oneshot::Sender<()>),
}

/// The gateway's handle on its archive (cheap to clone): hands lines to the
/// writer thread.
#[derive(Clone)]
pub struct Archive {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    dir: PathBuf,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Appends to `out` the lines of `lines` whose measurement is archived;
/// returns how many.
pub fn select(lines: &[u8], out: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let m = format::measurement_of(line);
        if line.ends_with(b"\n") && ARCHIVED.iter().any(|a| a.as_bytes() == m) {
            out.extend_from_slice(line);
            n += 1;
        }
    }
    n
}

impl Archive {
    /// Opens (creates) the archive `dir` keeping `days` days, named by the
    /// date in `tz`, and starts its writer thread, which rotates and
    /// compresses first. `None` when `days` is 0 (the archive is off).
    ///
    /// # Errors
    /// When the directory cannot be created or the thread not started.
    pub fn open(dir: &Path, days: u32, tz: &TimeZone) -> Result<Option<Archive>, ArchiveError> {
        if days == 0 {
            return Ok(None);
        }
        std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, "cannot create", &e))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL);
        let counters = Arc::new(Counters::default());
        let w = writer::Writer {
            dir: dir.to_path_buf(),
            days,
            tz: tz.clone(),
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name("emgate-archive".to_owned())
            .spawn(move || w.run(&rx))
            .map_err(|e| ArchiveError::io(dir, "cannot start the writer thread", &e))?;
        Ok(Some(Archive {
            tx,
            counters,
            dir: dir.to_path_buf(),
        }))
    }

    /// The archive directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its counters.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Hands the archived lines of `lines` (whole lines of line protocol;
    /// other measurements are left out) to the writer thread. Never waits:
    /// when the channel is full the lines are counted as dropped and a
    /// warning is logged (at most every 10 s).
    pub fn append(&self, lines: &[u8]) {
        let mut keep = Vec::new();
        let n = select(lines, &mut keep);
        if n == 0 {
            return;
        }
        match self.tx.try_send(Msg::Lines(keep)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let c = &self.counters;
                c.lines_dropped.fetch_add(n, Ordering::Relaxed);
                let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
                let last = c.last_drop_warn.load(Ordering::Relaxed);
                if now >= last + 10
                    && c.last_drop_warn
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    warn!(
                        dropped_total = c.lines_dropped.load(Ordering::Relaxed),
                        "archive writer behind (disk slow?): window lines not archived; the spool still delivers them to the output"
                    );
                }
            }
        }
    }

    /// Writes what was handed over so far and stops the writer thread;
    /// waits at most `limit`. Lines appended afterwards are dropped.
    pub async fn close(&self, limit: std::time::Duration) {
        let (reply, done) = tokio::sync::oneshot::channel();
        // Blocks only while the channel is full: on a blocking thread.
        let tx = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || tx.send(Msg::Close(reply)).is_ok());
        let _ = tokio::time::timeout(limit, async {
            if matches!(sent.await, Ok(true)) {
                let _ = done.await;
            }
        })
        .await;
    }
}

/// Appends the archived lines of `lines` straight to their day files, for a
/// process without a writer thread (`emgate enter`). Returns how many.
///
/// # Errors
/// When the directory cannot be created or a file written.
pub fn append_now(dir: &Path, tz: &TimeZone, lines: &[u8]) -> Result<u64, ArchiveError> {
    let mut keep = Vec::new();
    let n = select(lines, &mut keep);
    if n == 0 {
        return Ok(0);
    }
    std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, "cannot create", &e))?;
    let mut days: Vec<(jiff::civil::Date, Vec<u8>)> = Vec::new();
    for line in keep.split_inclusive(|&b| b == b'\n') {
        let Some(ts) = format::time_of(line) else {
            continue;
        };
        let day = reader::day_of(ts, tz);
        match days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, b)) => b.extend_from_slice(line),
            None => days.push((day, line.to_vec())),
        }
    }
    for (day, bytes) in days {
        files::append_day(dir, day, &bytes)?;
    }
    Ok(n)
}
