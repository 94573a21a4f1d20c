//! The encoder's hand into the spool: appends each chunk of lines, waits
//! on a full or failing spool (policy `block`) and gives up only after its
//! share of the shutdown deadline.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, warn};

use crate::shutdown::Shutdown;
use crate::sinks::LineChunk;
use crate::spool::{Appended, Spool};
use crate::telemetry::Stats;

use super::WARN_EVERY;

/// Appends encoded chunks to the spool, applying the full-spool policy.
pub(super) struct Appender {
    pub(super) spool: Spool,
    pub(super) stats: Arc<Stats>,
    /// The process shutdown: its spool share says when a full or failing
    /// spool is no longer waited for.
    pub(super) shutdown: Shutdown,
    /// Lines given up at shutdown because the spool stayed full.
    pub(super) not_spooled: u64,
    pub(super) last_full_warn: Option<tokio::time::Instant>,
    pub(super) dropped_warned: u64,
    pub(super) last_drop_warn: Option<tokio::time::Instant>,
}

impl Appender {
    pub(super) fn new(spool: Spool, stats: Arc<Stats>, shutdown: Shutdown) -> Appender {
        Appender {
            spool,
            stats,
            shutdown,
            not_spooled: 0,
            last_full_warn: None,
            dropped_warned: 0,
            last_drop_warn: None,
        }
    }

    /// Appends `chunk`, waiting while the spool is full (`block`) and
    /// retrying every second while the disk refuses: an accepted reading
    /// is never given up here. Only after a shutdown, once the spool has
    /// stayed full (or failing) until the appender's share of the deadline
    /// ends ([`Deadline::spool_give_up`] after the cancellation), are the
    /// readings still in memory given up (counted in `not_spooled`):
    /// otherwise a dead output would make the gateway impossible to stop.
    /// The broker clients stay connected until then to ack what is spooled.
    ///
    /// Returns whether the chunk was stored.
    pub(super) async fn append(&mut self, chunk: &LineChunk) -> bool {
        loop {
            // Under `fsync = "every_batch"` the append waits for the disk:
            // harmless, the encoder has a thread of its own.
            match self.spool.append(&chunk.body) {
                Ok(Appended::Stored) => {
                    Stats::add(&self.stats.lines_spooled, chunk.lines as u64);
                    self.stats.update_spool(&self.spool);
                    self.warn_drops();
                    return true;
                }
                Ok(Appended::Full) => {
                    let now = tokio::time::Instant::now();
                    // `None` until the shutdown; the same instant for every task.
                    let give_up_at = self.shutdown.spool_give_up_at();
                    if give_up_at.is_some_and(|t| now >= t) {
                        self.give_up(chunk);
                        return false;
                    }
                    Stats::add(&self.stats.spool_full_waits, 1);
                    if self.last_full_warn.is_none_or(|t| now - t >= WARN_EVERY) {
                        let s = self.spool.stats();
                        warn!(
                            spool_bytes = s.bytes,
                            spool_records = s.records,
                            "spool full (policy block): polling slows down until the output catches up; missed slots are counted"
                        );
                        self.last_full_warn = Some(now);
                    }
                    tokio::select! {
                        () = self.spool.wait_for_space() => {}
                        _ = self.shutdown.cancelled(), if give_up_at.is_none() => {}
                        () = tokio::time::sleep_until(give_up_at.unwrap_or(now)), if give_up_at.is_some() => {}
                    }
                }
                Err(e) => {
                    // A disk error (full, read-only) is waited out like a
                    // full spool, and given up the same way at shutdown.
                    let now = tokio::time::Instant::now();
                    let give_up_at = self.shutdown.spool_give_up_at();
                    if give_up_at.is_some_and(|t| now >= t) {
                        self.give_up(chunk);
                        return false;
                    }
                    error!(error = %e, lines = chunk.lines, "cannot append to the spool; retrying in 1 s");
                    // Never past the give-up instant: the broker clients
                    // wait for the encoder only that long.
                    let retry_at = now + Duration::from_secs(1);
                    tokio::select! {
                        () = tokio::time::sleep_until(give_up_at.map_or(retry_at, |t| t.min(retry_at))) => {}
                        _ = self.shutdown.cancelled(), if give_up_at.is_none() => {}
                    }
                }
            }
        }
    }

    /// Counts `chunk`'s lines as given up at shutdown.
    pub(super) fn give_up(&mut self, chunk: &LineChunk) {
        self.not_spooled += chunk.lines as u64;
        Stats::add(&self.stats.lines_not_spooled, chunk.lines as u64);
    }

    /// Logs lines dropped by `drop_oldest`, per site, at most every [`WARN_EVERY`].
    pub(super) fn warn_drops(&mut self) {
        let dropped = Stats::get(&self.stats.lines_dropped);
        if dropped == self.dropped_warned {
            return;
        }
        let now = tokio::time::Instant::now();
        if self.last_drop_warn.is_some_and(|t| now - t < WARN_EVERY) {
            return;
        }
        warn!(
            lines_dropped = dropped,
            by_site = ?self.stats.dropped_by_site(),
            "spool full (policy drop_oldest): oldest unsent lines dropped"
        );
        self.dropped_warned = dropped;
        self.last_drop_warn = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::shutdown::Deadline;
    use crate::spool::{FsyncPolicy, FullPolicy, SpoolConfig};

    /// Under `every_batch` the append (and its fsync) stores the chunk in
    /// either runtime flavour.
    #[test]
    fn an_append_that_fsyncs_stores_the_chunk_in_every_runtime() {
        for multi in [false, true] {
            let dir = tempfile::tempdir().expect("tmp");
            let (spool, _) = Spool::open(SpoolConfig {
                dir: dir.path().join("spool"),
                max_bytes: 1 << 20,
                segment_bytes: 1 << 16,
                policy: FullPolicy::Block,
                fsync: FsyncPolicy::EveryAppend,
            })
            .expect("spool");
            let stats = Arc::new(Stats::default());
            let shutdown = Shutdown::new(CancellationToken::new(), Deadline::default());
            let mut appender = Appender::new(spool.clone(), Arc::clone(&stats), shutdown);
            let chunk = LineChunk {
                body: b"m v=1i 1\nm v=2i 2\n".to_vec(),
                lines: 2,
            };
            let mut builder = if multi {
                tokio::runtime::Builder::new_multi_thread()
            } else {
                tokio::runtime::Builder::new_current_thread()
            };
            let rt = builder.enable_all().build().expect("runtime");
            let stored = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), appender.append(&chunk)).await
            });
            assert_eq!(stored.ok(), Some(true), "multi-thread: {multi}");
            assert_eq!(spool.stats().records, 1);
            assert_eq!(Stats::get(&stats.lines_spooled), 2);
        }
    }
}
