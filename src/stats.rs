//! Process-wide counters: one place that both the progress display and (later)
//! the metrics endpoint read. Plain atomics, so every component can count
//! without locks or allocation on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters shared by every component of a running gateway.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent to meters.
    pub requests: AtomicU64,
    /// Requests answered with data.
    pub requests_ok: AtomicU64,
    /// Requests that timed out or lost the link.
    pub requests_timeout: AtomicU64,
    /// Requests answered with a Modbus exception.
    pub requests_exception: AtomicU64,
    /// Merged reads split after an exception, to learn what the device accepts.
    pub reads_split: AtomicU64,
    /// Readings produced (one per meter per slot).
    pub readings: AtomicU64,
    /// Point values produced.
    pub points: AtomicU64,
    /// Point values produced with a non-zero quality.
    pub points_flagged: AtomicU64,
    /// Slots that started late because the previous poll round overran.
    pub overruns: AtomicU64,
    /// Slots skipped entirely because a round took longer than its interval.
    pub missed_slots: AtomicU64,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts or links that failed.
    pub connect_failures: AtomicU64,
    /// Meters whose last poll answered.
    pub meters_up: AtomicI64,
    /// Lines handed to the sink.
    pub lines_encoded: AtomicU64,
    /// Lines the destination acknowledged.
    pub lines_written: AtomicU64,
    /// Lines waiting in the sink's queue.
    pub lines_queued: AtomicI64,
    /// Lines dropped because the in-memory queue was full.
    pub lines_dropped: AtomicU64,
    /// Lines the destination rejected permanently.
    pub lines_rejected: AtomicU64,
    /// Write requests sent.
    pub write_requests: AtomicU64,
    /// Write requests that failed and will be retried.
    pub write_retries: AtomicU64,
}

impl Stats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl Stats {
    /// Logs every counter at info level (periodically, and once at shutdown).
    pub fn log(&self, what: &str) {
        tracing::info!(
            requests = Stats::get(&self.requests),
            requests_ok = Stats::get(&self.requests_ok),
            timeouts = Stats::get(&self.requests_timeout),
            exceptions = Stats::get(&self.requests_exception),
            reads_split = Stats::get(&self.reads_split),
            readings = Stats::get(&self.readings),
            points = Stats::get(&self.points),
            points_flagged = Stats::get(&self.points_flagged),
            overruns = Stats::get(&self.overruns),
            missed_slots = Stats::get(&self.missed_slots),
            meters_up = self.meters_up.load(Ordering::Relaxed),
            connect_failures = Stats::get(&self.connect_failures),
            lines_written = Stats::get(&self.lines_written),
            lines_queued = self.lines_queued.load(Ordering::Relaxed),
            lines_dropped = Stats::get(&self.lines_dropped),
            lines_rejected = Stats::get(&self.lines_rejected),
            write_retries = Stats::get(&self.write_retries),
            "{what}"
        );
    }
}
