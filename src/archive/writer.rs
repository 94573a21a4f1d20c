//! The archive's writer thread: appends the lines it is sent to their day
//! files and keeps the directory in shape (rotation, compression), so no
//! file work ever runs on the runtime's worker threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use tracing::{info, warn};

use super::files::{append_day, maintain};
use super::format::time_of;
use super::reader::day_of;
use super::{Counters, Msg};

/// How often the thread looks whether the local date changed.
const TICK: Duration = Duration::from_mins(1);

/// Most messages written in one go (one fsync per day touched).
const MAX_BATCH: usize = 64;

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) days: u32,
    pub(super) tz: TimeZone,
    pub(super) counters: Arc<Counters>,
}

impl Writer {
    fn today(&self) -> Date {
        jiff::Timestamp::now()
            .to_zoned_datetime(self.tz.clone())
            .date()
    }

    /// Rotation and compression for `today`, logged and counted.
    fn maintain(&self, today: Date) {
        let m = maintain(&self.dir, today, self.days);
        let c = &self.counters;
        c.files_removed.fetch_add(m.removed, Ordering::Relaxed);
        c.days_compressed.fetch_add(m.compressed, Ordering::Relaxed);
        if m.removed > 0 || m.stale_tmp > 0 {
            info!(
                dir = %self.dir.display(),
                removed = m.removed,
                stale_tmp = m.stale_tmp,
                archive_days = self.days,
                "archive rotated: files older than archive_days removed"
            );
        }
        for e in &m.errors {
            warn!(error = %e, "archive maintenance: {e}");
        }
    }

    /// Writes `lines` (whole lines) to the files of their days.
    fn write(&self, batch: &[Vec<u8>]) {
        let mut by_day: Vec<(Date, Vec<u8>, u64)> = Vec::new();
        for lines in batch {
            for line in lines.split_inclusive(|&b| b == b'\n') {
                let Some(ts) = time_of(line) else { continue };
                let day = day_of(ts, &self.tz);
                let slot = if let Some(i) = by_day.iter().position(|(d, _, _)| *d == day) {
                    i
                } else {
                    by_day.push((day, Vec::new(), 0));
                    by_day.len() - 1
                };
                by_day[slot].1.extend_from_slice(line);
                by_day[slot].2 += 1;
            }
        }
        let c = &self.counters;
        for (day, bytes, n) in by_day {
            match append_day(&self.dir, day, &bytes) {
                Ok(sealed) => {
                    c.lines_written.fetch_add(n, Ordering::Relaxed);
                    if sealed {
                        warn!(day = %day, "archive: the last line of the day's file was torn (a crash); it is skipped when read");
                    }
                }
                Err(e) => {
                    c.lines_failed.fetch_add(n, Ordering::Relaxed);
                    warn!(error = %e, lines = n, "archive: lines not archived (the spool still delivers them to the output): {e}");
                }
            }
        }
    }

    /// The thread's loop, until `Close` or every sender is gone.
    pub(super) fn run(self, rx: &Receiver<Msg>) {
        let mut last_day = self.today();
        self.maintain(last_day);
        let mut batch: Vec<Vec<u8>> = Vec::new();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    let today = self.today();
                    if today != last_day {
                        last_day = today;
                        self.maintain(today);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut close = None;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Lines(l) => batch.push(l),
                    Msg::Close(reply) => {
                        close = Some(reply);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.write(&batch);
            batch.clear();
            if let Some(reply) = close {
                let _ = reply.send(());
                return;
            }
        }
    }
}
