//! The sink task: turns a stream of [`LineChunk`]s into write requests.
//!
//! It exists so that a slow or unreachable destination never stalls the
//! pollers and never loses lines silently:
//!
//! * **Batching.** Chunks are appended to a reused buffer; a batch is cut when
//!   it holds `batch_size` lines (a large chunk is split at line boundaries)
//!   or `flush_interval` after its first line arrived.
//! * **Bounded queue.** Cut batches wait in memory. The lines of the waiting
//!   batches plus the one in flight never exceed `queue_max_lines`: beyond,
//!   the oldest *waiting* lines are dropped (the batch in flight cannot be
//!   recalled), counted in `stats.lines_dropped` and logged at most every
//!   10 s. The channel keeps being read at all times, retry waits included,
//!   so a bounded channel never blocks the pollers because of the destination.
//! * **Retries.** Retryable failures wait with capped exponential backoff and
//!   jitter (`retry_initial` doubling up to `retry_max`, each wait drawn from
//!   its upper half), or for the server's `Retry-After` (at most 5 minutes);
//!   never less than 10 ms, so a refusing destination is no busy loop.
//!   One request is in flight at a time, so order is kept.
//! * **413.** A batch answered "too large" is split in two at a line
//!   boundary and both halves retried, recursively; a single line that is
//!   still too large is a permanent rejection.
//! * **Permanent rejections** (400, 401, 404, ...) are logged with the
//!   server's message and the batch's first line, counted in
//!   `stats.lines_rejected`, and never retried. For an InfluxDB 1.x "partial
//!   write" only the `dropped=N` lines count as rejected: the others were
//!   stored.
//! * **Shutdown.** When the channel closes (all senders dropped) the buffer
//!   is cut and everything queued is written. If the destination is down,
//!   retrying continues for at most a grace period ([`SHUTDOWN_GRACE`]),
//!   counted from the cancellation of `shutdown` (or from the channel's
//!   close, whichever comes first); then the task gives up and logs and
//!   returns how many lines were lost. Cancellation alone does not stop the
//!   task: it cuts the buffer and starts the grace period, so the senders
//!   get that long to finish.
//!
//! The same task serves InfluxDB ([`Writer`]) and the file sink
//! ([`FileSink`]); only the write call differs.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::OutputConfig;
use crate::sinks::LineChunk;
use crate::sinks::file::FileSink;
use crate::sinks::influx::classify::{dropped_lines, truncate};
use crate::sinks::influx::{WriteError, Writer, WriterError};
use crate::stats::Stats;

/// How long the task keeps retrying after shutdown before it gives up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest `Retry-After` honoured; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_mins(5);

/// Shortest wait before a retry, whatever the settings or `Retry-After` say.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Shortest interval between two "lines dropped" (or "still failing") logs.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Settings of the file sink that its configuration does not carry.
const FILE_QUEUE_BATCHES: usize = 100;
const FILE_RETRY_INITIAL: Duration = Duration::from_millis(200);
const FILE_RETRY_MAX: Duration = Duration::from_secs(5);

/// What a finished sink task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkSummary {
    /// Lines the destination acknowledged (including the stored lines of
    /// partial writes).
    pub lines_written: u64,
    /// Lines dropped because the queue was full.
    pub lines_dropped: u64,
    /// Lines the destination rejected permanently.
    pub lines_rejected: u64,
    /// Lines still buffered, queued or in flight when the grace period ended.
    pub lines_lost_at_shutdown: u64,
}

/// A sink task that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The InfluxDB writer cannot be built from the configuration.
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// Batching, queueing and retry settings of one sink task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// Lines per batch (at least 1).
    pub batch_size: usize,
    /// Longest wait of a line before its batch is cut.
    pub flush_interval: Duration,
    /// Bound on the lines waiting and in flight.
    pub queue_max_lines: usize,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Cap on the retry delay.
    pub retry_max: Duration,
    /// Retry time left after shutdown (see [`SHUTDOWN_GRACE`]).
    pub shutdown_grace: Duration,
}

impl SinkOptions {
    /// The options an output configuration implies. The file sink has no
    /// queue or retry settings of its own: it queues 100 batches and retries
    /// from 200 ms up to 5 s.
    pub fn for_output(output: &OutputConfig) -> SinkOptions {
        match output {
            OutputConfig::Influx(c) => SinkOptions {
                batch_size: c.batch_size,
                flush_interval: c.flush_interval,
                queue_max_lines: c.queue_max_lines,
                retry_initial: c.retry_initial,
                retry_max: c.retry_max,
                shutdown_grace: SHUTDOWN_GRACE,
            },
            OutputConfig::File(c) => SinkOptions {
                batch_size: c.batch_size,
                flush_interval: c.flush_interval,
                queue_max_lines: c.batch_size.saturating_mul(FILE_QUEUE_BATCHES),
                retry_initial: FILE_RETRY_INITIAL,
                retry_max: FILE_RETRY_MAX,
                shutdown_grace: SHUTDOWN_GRACE,
            },
        }
    }
}

/// Runs the sink task for `output` until `rx` is closed and drained (or the
/// shutdown grace period ends); see the module doc.
///
/// # Errors
/// [`SinkError::Writer`] when the destination cannot be set up; once running,
/// failures are retried, counted and logged, never returned.
pub async fn run(
    output: OutputConfig,
    rx: mpsc::Receiver<LineChunk>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<SinkSummary, SinkError> {
    let options = SinkOptions::for_output(&output);
    run_with(output, options, rx, stats, shutdown).await
}

/// [`run`] with explicit options (tests use a short grace period).
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    output: OutputConfig,
    options: SinkOptions,
    mut rx: mpsc::Receiver<LineChunk>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<SinkSummary, SinkError> {
    let dest = Arc::new(match &output {
        OutputConfig::Influx(c) => Destination::Influx(Writer::new(c)?),
        OutputConfig::File(c) => Destination::File(FileSink::new(&c.path)),
    });
    let mut sink = Sink::new(Arc::clone(&dest), options, stats);
    tracing::info!(destination = %dest.describe(), "sink started");

    let mut inflight: Option<InFlight> = None;
    let mut rx_open = true;
    let mut cancelled = false;
    let mut deadline: Option<Instant> = None;
    // Stands in for "no timer" (select! evaluates disabled branches too).
    let never = Instant::now() + Duration::from_hours(24 * 365);

    loop {
        if inflight.is_none() && sink.retry_at.is_none() {
            inflight = sink.start_write();
        }
        sink.publish_queued();
        if !rx_open && inflight.is_none() && sink.is_empty() {
            break;
        }
        let flush_at = sink.flush_at();
        let retry_at = sink.retry_at;
        tokio::select! {
            chunk = rx.recv(), if rx_open => {
                if let Some(chunk) = chunk {
                    sink.accept(&chunk);
                } else {
                    rx_open = false;
                    sink.cut_buffer();
                    deadline.get_or_insert(Instant::now() + sink.options.shutdown_grace);
                }
            },
            (batch, result) = wait_inflight(&mut inflight) => {
                inflight = None;
                sink.inflight_lines = 0;
                sink.outcome(batch, result);
            },
            () = tokio::time::sleep_until(flush_at.unwrap_or(never)), if flush_at.is_some() => {
                sink.cut_buffer();
            },
            () = tokio::time::sleep_until(retry_at.unwrap_or(never)), if retry_at.is_some() => {
                sink.retry_at = None;
            },
            () = shutdown.cancelled(), if !cancelled => {
                cancelled = true;
                sink.cut_buffer();
                deadline.get_or_insert(Instant::now() + sink.options.shutdown_grace);
            },
            () = tokio::time::sleep_until(deadline.unwrap_or(never)), if deadline.is_some() => {
                // Give up: whatever is left is lost (an in-flight request is
                // cancelled; the server may or may not have stored it).
                drop(inflight.take());
                while let Ok(chunk) = rx.try_recv() {
                    sink.summary.lines_lost_at_shutdown += chunk.lines as u64;
                }
                sink.give_up();
                break;
            },
        }
    }

    if let Destination::File(f) = &*dest
        && let Err(e) = f.sync().await
    {
        tracing::warn!(error = %e, "file sink: final sync failed");
    }
    sink.publish_queued();
    sink.log_drops(true);
    let s = sink.summary;
    if s.lines_lost_at_shutdown > 0 {
        tracing::error!(
            lost = s.lines_lost_at_shutdown,
            destination = %dest.describe(),
            "sink stopped with lines not written: destination unreachable for the whole shutdown grace period"
        );
    }
    tracing::info!(
        written = s.lines_written,
        dropped = s.lines_dropped,
        rejected = s.lines_rejected,
        lost_at_shutdown = s.lines_lost_at_shutdown,
        "sink stopped"
    );
    Ok(s)
}

/// Where batches go.
// One instance per task, behind an Arc: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Destination {
    Influx(Writer),
    File(FileSink),
}

impl Destination {
    async fn write(&self, body: &[u8], lines: usize) -> Result<(), WriteError> {
        match self {
            Destination::Influx(w) => w.write(body, lines).await,
            Destination::File(f) => f.write(body).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Destination::Influx(w) => w.endpoint().to_owned(),
            Destination::File(f) => f.path().display().to_string(),
        }
    }
}

/// Lines of line protocol cut from the stream, sent as one request.
struct Batch {
    body: Vec<u8>,
    lines: usize,
}

/// The write in progress: gives its batch back with the outcome.
type InFlight = Pin<Box<dyn Future<Output = (Batch, Result<(), WriteError>)> + Send>>;

/// The in-flight write's outcome, or never when there is none.
async fn wait_inflight(inflight: &mut Option<InFlight>) -> (Batch, Result<(), WriteError>) {
    match inflight {
        Some(f) => f.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The task's state apart from the in-flight future; all methods are
/// synchronous, so the loop above only moves data and waits.
struct Sink {
    dest: Arc<Destination>,
    options: SinkOptions,
    stats: Arc<Stats>,
    /// Lines not yet cut into a batch.
    buf: Vec<u8>,
    buf_lines: usize,
    /// When the first line of `buf` arrived.
    buf_since: Option<Instant>,
    /// Batches waiting to be sent, oldest first.
    queue: VecDeque<Batch>,
    queued_lines: usize,
    /// Lines of the request in flight (they count against the bound).
    inflight_lines: usize,
    /// Emptied batch buffers, reused for the next batches.
    spare: Vec<Vec<u8>>,
    /// Base of the next retry delay.
    backoff: Duration,
    /// No request before this instant (retry wait).
    retry_at: Option<Instant>,
    /// Failing since (for "still failing" and "recovered" logs).
    failing_since: Option<Instant>,
    last_fail_log: Option<Instant>,
    drops_unlogged: u64,
    last_drop_log: Option<Instant>,
    summary: SinkSummary,
}

impl Sink {
    fn new(dest: Arc<Destination>, mut options: SinkOptions, stats: Arc<Stats>) -> Sink {
        options.batch_size = options.batch_size.max(1);
        // A zero delay would turn a refusing destination into a busy loop.
        options.retry_initial = options.retry_initial.max(MIN_RETRY_DELAY);
        options.retry_max = options.retry_max.max(options.retry_initial);
        options.queue_max_lines = options.queue_max_lines.max(options.batch_size);
        Sink {
            dest,
            backoff: options.retry_initial,
            buf: Vec::new(),
            buf_lines: 0,
            buf_since: None,
            queue: VecDeque::new(),
            queued_lines: 0,
            inflight_lines: 0,
            spare: Vec::new(),
            retry_at: None,
            failing_since: None,
            last_fail_log: None,
            drops_unlogged: 0,
            last_drop_log: None,
            summary: SinkSummary::default(),
            options,
            stats,
        }
    }

    fn is_empty(&self) -> bool {
        self.buf_lines == 0 && self.queue.is_empty()
    }

    fn flush_at(&self) -> Option<Instant> {
        self.buf_since.map(|t| t + self.options.flush_interval)
    }

    fn publish_queued(&self) {
        let held = self.buf_lines + self.queued_lines + self.inflight_lines;
        self.stats
            .lines_queued
            .store(i64::try_from(held).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Appends a chunk, cutting full batches at line boundaries.
    fn accept(&mut self, chunk: &LineChunk) {
        let mut body = &chunk.body[..];
        let mut lines = chunk.lines;
        while lines > 0 {
            if self.buf_lines == 0 {
                self.buf_since = Some(Instant::now());
            }
            let room = self.options.batch_size - self.buf_lines;
            if lines < room {
                self.buf.extend_from_slice(body);
                self.buf_lines += lines;
                return;
            }
            let cut = nth_line_end(body, room);
            self.buf.extend_from_slice(&body[..cut]);
            self.buf_lines += room;
            self.cut_buffer();
            body = &body[cut..];
            lines -= room;
        }
    }

    /// Moves the buffered lines into a batch at the back of the queue.
    fn cut_buffer(&mut self) {
        if self.buf_lines == 0 {
            return;
        }
        let capacity = self.buf.capacity();
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(capacity));
        let body = std::mem::replace(&mut self.buf, next);
        self.queue.push_back(Batch {
            body,
            lines: self.buf_lines,
        });
        self.queued_lines += self.buf_lines;
        self.buf_lines = 0;
        self.buf_since = None;
        self.enforce_bound();
    }

    /// Drops the oldest waiting lines until the bound holds.
    fn enforce_bound(&mut self) {
        let max = self.options.queue_max_lines;
        let mut dropped = 0usize;
        while self.queued_lines + self.inflight_lines > max {
            let excess = self.queued_lines + self.inflight_lines - max;
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if front.lines <= excess {
                let lines = front.lines;
                if let Some(batch) = self.queue.pop_front() {
                    self.recycle(batch.body);
                }
                self.queued_lines -= lines;
                dropped += lines;
            } else {
                let cut = nth_line_end(&front.body, excess);
                front.body.drain(..cut);
                front.lines -= excess;
                self.queued_lines -= excess;
                dropped += excess;
            }
        }
        if dropped > 0 {
            Stats::add(&self.stats.lines_dropped, dropped as u64);
            self.summary.lines_dropped += dropped as u64;
            self.drops_unlogged += dropped as u64;
            self.log_drops(false);
        }
    }

    /// Logs dropped lines, at most every [`LOG_EVERY`] unless `force`.
    fn log_drops(&mut self, force: bool) {
        if self.drops_unlogged == 0 {
            return;
        }
        let now = Instant::now();
        if force || self.last_drop_log.is_none_or(|t| now - t >= LOG_EVERY) {
            tracing::warn!(
                dropped = self.drops_unlogged,
                total_dropped = self.summary.lines_dropped,
                queue_max_lines = self.options.queue_max_lines,
                "sink queue full: oldest lines dropped"
            );
            self.drops_unlogged = 0;
            self.last_drop_log = Some(now);
        }
    }

    fn recycle(&mut self, mut body: Vec<u8>) {
        // A few buffers are enough: one filling, one in flight, some spare.
        if self.spare.len() < 4 {
            body.clear();
            self.spare.push(body);
        }
    }

    /// Takes the oldest batch and starts writing it.
    fn start_write(&mut self) -> Option<InFlight> {
        let batch = self.queue.pop_front()?;
        self.queued_lines -= batch.lines;
        self.inflight_lines = batch.lines;
        Stats::add(&self.stats.write_requests, 1);
        let dest = Arc::clone(&self.dest);
        Some(Box::pin(async move {
            let result = dest.write(&batch.body, batch.lines).await;
            (batch, result)
        }))
    }

    /// Acts on the outcome of a write.
    fn outcome(&mut self, mut batch: Batch, result: Result<(), WriteError>) {
        let lines = batch.lines;
        match result {
            Ok(()) => {
                self.reachable();
                self.written(lines);
                self.recycle(batch.body);
            }
            Err(WriteError::Retryable {
                reason,
                retry_after,
            }) => {
                Stats::add(&self.stats.write_retries, 1);
                let delay = self.next_delay(retry_after);
                self.failing(&reason, delay, lines);
                self.retry_at = Some(Instant::now() + delay);
                self.requeue_front(batch);
            }
            Err(WriteError::TooLarge) if lines > 1 => {
                Stats::add(&self.stats.write_retries, 1);
                self.reachable();
                let half = nth_line_end(&batch.body, lines / 2);
                let second = Batch {
                    body: batch.body.split_off(half),
                    lines: lines - lines / 2,
                };
                batch.lines = lines / 2;
                tracing::debug!(
                    lines,
                    bytes = batch.body.len() + second.body.len(),
                    "write too large (413): batch split in two"
                );
                self.requeue_front(second);
                self.requeue_front(batch);
            }
            Err(WriteError::TooLarge) => {
                self.reachable();
                self.rejected(batch, 413, "request too large even as a single line", false);
            }
            Err(WriteError::Permanent {
                status,
                message,
                partial,
            }) => {
                self.reachable();
                self.rejected(batch, status, &message, partial);
            }
        }
    }

    /// The wait before the next retry: the server's `Retry-After` when given,
    /// else the current backoff with jitter (drawn from its upper half), the
    /// backoff doubling up to `retry_max`.
    fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.clamp(MIN_RETRY_DELAY, MAX_RETRY_AFTER);
        }
        let base = self.backoff;
        self.backoff = (self.backoff * 2).min(self.options.retry_max);
        base.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    fn requeue_front(&mut self, batch: Batch) {
        self.queued_lines += batch.lines;
        self.queue.push_front(batch);
        self.enforce_bound();
    }

    fn written(&mut self, lines: usize) {
        Stats::add(&self.stats.lines_written, lines as u64);
        self.summary.lines_written += lines as u64;
    }

    /// Counts and logs a permanent rejection; the batch is not retried.
    fn rejected(&mut self, batch: Batch, status: u16, message: &str, partial: bool) {
        let lines = batch.lines;
        let rejected = if partial {
            dropped_lines(message).map_or(lines, |n| n.min(lines))
        } else {
            lines
        };
        self.written(lines - rejected);
        Stats::add(&self.stats.lines_rejected, rejected as u64);
        self.summary.lines_rejected += rejected as u64;
        let first_line = batch.body.split(|&b| b == b'\n').next().unwrap_or_default();
        let first_line = truncate(String::from_utf8_lossy(first_line).into_owned(), 300);
        tracing::error!(
            status,
            server_message = %message,
            batch_lines = lines,
            rejected,
            stored = lines - rejected,
            first_line = %first_line,
            "destination rejected a batch permanently; it will not be retried"
        );
        self.recycle(batch.body);
    }

    /// Notes a retryable failure; logs the first and then every [`LOG_EVERY`].
    fn failing(&mut self, reason: &str, delay: Duration, lines: usize) {
        let now = Instant::now();
        let first = self.failing_since.is_none();
        self.failing_since.get_or_insert(now);
        if first || self.last_fail_log.is_none_or(|t| now - t >= LOG_EVERY) {
            tracing::warn!(
                destination = %self.dest.describe(),
                reason,
                retry_in_ms = delay.as_millis() as u64,
                batch_lines = lines,
                queued_lines = self.queued_lines + lines,
                "write failed; will retry"
            );
            self.last_fail_log = Some(now);
        } else {
            tracing::debug!(
                reason,
                retry_in_ms = delay.as_millis() as u64,
                "write failed; will retry"
            );
        }
    }

    /// The destination answered: reset the backoff, log a recovery.
    fn reachable(&mut self) {
        self.backoff = self.options.retry_initial;
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                destination = %self.dest.describe(),
                failing_for_ms = since.elapsed().as_millis() as u64,
                "destination reachable again"
            );
            self.last_fail_log = None;
        }
    }

    /// Counts everything still held as lost.
    fn give_up(&mut self) {
        let lost = self.buf_lines + self.queued_lines + self.inflight_lines;
        self.summary.lines_lost_at_shutdown += lost as u64;
        self.buf.clear();
        self.buf_lines = 0;
        self.buf_since = None;
        self.queue.clear();
        self.queued_lines = 0;
        self.inflight_lines = 0;
    }
}

/// Byte index just after the `n`-th newline of `body` (`body.len()` when it
/// has fewer, which whole-line chunks never do).
fn nth_line_end(body: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileSinkConfig;

    #[test]
    fn line_ends() {
        let body = b"a\nbb\nccc\n";
        assert_eq!(nth_line_end(body, 0), 0);
        assert_eq!(nth_line_end(body, 1), 2);
        assert_eq!(nth_line_end(body, 2), 5);
        assert_eq!(nth_line_end(body, 3), 9);
        assert_eq!(nth_line_end(body, 4), 9);
    }

    fn sink(batch_size: usize, queue_max_lines: usize) -> Sink {
        let dest = Arc::new(Destination::File(FileSink::new("/nonexistent/x")));
        let options = SinkOptions {
            batch_size,
            flush_interval: Duration::from_secs(1),
            queue_max_lines,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(40),
            shutdown_grace: Duration::from_secs(1),
        };
        Sink::new(dest, options, Arc::new(Stats::default()))
    }

    fn chunk(from: usize, to: usize) -> LineChunk {
        let mut body = Vec::new();
        for i in from..to {
            body.extend_from_slice(format!("m v={i} {i}\n").as_bytes());
        }
        LineChunk {
            body,
            lines: to - from,
        }
    }

    #[tokio::test]
    async fn large_chunks_are_cut_into_batches() {
        let mut s = sink(3, 100);
        s.accept(&chunk(0, 7));
        assert_eq!(s.queue.len(), 2);
        assert_eq!(s.queue[0].body, chunk(0, 3).body);
        assert_eq!(s.queue[1].body, chunk(3, 6).body);
        assert_eq!(s.buf, chunk(6, 7).body);
        assert_eq!((s.queued_lines, s.buf_lines), (6, 1));
        s.accept(&chunk(7, 9));
        assert_eq!(s.queue[2].body, chunk(6, 9).body);
        assert_eq!(s.buf_lines, 0);
        assert!(s.buf_since.is_none());
    }

    #[tokio::test]
    async fn bound_drops_oldest_lines_exactly() {
        let mut s = sink(4, 10);
        s.accept(&chunk(0, 12));
        assert_eq!(s.queued_lines, 10);
        assert_eq!(s.summary.lines_dropped, 2);
        assert_eq!(Stats::get(&s.stats.lines_dropped), 2);
        assert_eq!(s.queue[0].body, chunk(2, 4).body);
        // The batch in flight counts against the bound too.
        let f = s.start_write();
        assert!(f.is_some());
        s.accept(&chunk(12, 16));
        assert_eq!(s.queued_lines + s.inflight_lines, 10);
        assert_eq!(s.summary.lines_dropped, 6);
        assert_eq!(s.queue[0].body, chunk(8, 12).body);
    }

    #[tokio::test]
    async fn too_large_splits_and_single_line_is_rejected() {
        let mut s = sink(5, 100);
        s.accept(&chunk(0, 5));
        let batch = s.queue.pop_front().unwrap();
        s.queued_lines -= batch.lines;
        s.outcome(batch, Err(WriteError::TooLarge));
        assert_eq!(s.queue.len(), 2);
        assert_eq!(s.queue[0].body, chunk(0, 2).body);
        assert_eq!(s.queue[1].body, chunk(2, 5).body);
        let one = Batch {
            body: chunk(9, 10).body,
            lines: 1,
        };
        s.outcome(one, Err(WriteError::TooLarge));
        assert_eq!(s.summary.lines_rejected, 1);
        assert_eq!(s.queued_lines, 5);
    }

    #[tokio::test]
    async fn partial_write_counts_only_dropped_lines_as_rejected() {
        let mut s = sink(5, 100);
        let batch = Batch {
            body: chunk(0, 5).body,
            lines: 5,
        };
        s.outcome(
            batch,
            Err(WriteError::Permanent {
                status: 400,
                message: "partial write: field type conflict dropped=2".into(),
                partial: true,
            }),
        );
        assert_eq!(s.summary.lines_rejected, 2);
        assert_eq!(s.summary.lines_written, 3);
        assert!(s.queue.is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut s = sink(1, 100);
        for base_ms in [10, 20, 40, 40] {
            let base = Duration::from_millis(base_ms);
            let wait = s.next_delay(None);
            assert!(wait >= base / 2 && wait <= base, "{wait:?} vs {base:?}");
        }
        s.reachable();
        assert_eq!(s.backoff, Duration::from_millis(10));
        // Retry-After wins over the backoff, up to a cap.
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(9999))),
            MAX_RETRY_AFTER
        );
        assert_eq!(s.backoff, Duration::from_millis(10));
        // "Retry now" (a date in the past) still waits a little.
        assert_eq!(s.next_delay(Some(Duration::ZERO)), MIN_RETRY_DELAY);
    }

    #[test]
    fn file_options() {
        let o = SinkOptions::for_output(&OutputConfig::File(FileSinkConfig {
            path: "x".into(),
            batch_size: 50,
            flush_interval: Duration::from_secs(2),
        }));
        assert_eq!(o.queue_max_lines, 5000);
        assert_eq!(o.shutdown_grace, SHUTDOWN_GRACE);
    }
}
