//! The uploader: reads the spool in order and delivers it to the output,
//! acknowledging to the spool only what the output confirmed.
//!
//! This is the second half of the delivery guarantee (ARCHITECTURE.md
//! decision 2). The pipeline appends every encoded batch to the durable
//! spool; this task turns spool records into write requests:
//!
//! * **Order and batching.** Records are read in order and concatenated
//!   into a batch until `batch_size` lines are gathered, or until
//!   `flush_interval` has passed since the first of them when no more are
//!   waiting. A backlog therefore goes out in full batches back to back.
//! * **Requests in flight.** Up to `max_in_flight` batches (`[influxdb]
//!   max_in_flight`, default [`DEFAULT_MAX_IN_FLIGHT`]; the file output
//!   always 1) are being written at once, each in its own task, so a
//!   backlog drains at the rate the server stores rather than one round trip
//!   at a time. While the output is failing (a retryable error not yet
//!   followed by a success), no new batch starts until fewer than one is in
//!   flight: an outage costs one retrying request, not `max_in_flight`.
//!   The window lives in [`inflight`](super::inflight).
//! * **Acknowledgement, in order.** The spool's read position is
//!   acknowledged only after the output answered success for every line of
//!   a batch (or rejected some for good, see below) *and* for every batch
//!   before it: a later batch finishing first waits for the earlier ones,
//!   and then one ack covers the whole finished prefix. A crash before that
//!   makes the next start deliver the unacknowledged batches again: at least
//!   once. Slot timestamps make a repeat overwrite the same points, so
//!   InfluxDB ends up with exactly one.
//! * **One body per batch.** A batch is packed once, as it leaves the
//!   buffer of lines it was read into (`Shared::pack`: gzip-compressed for
//!   an InfluxDB with `gzip = true`); only those bytes are kept while it is in
//!   flight, and a retry resends them. A 413 split or a rejection inflates
//!   them again to get at the lines.
//! * **Retries.** Network errors, timeouts, 5xx, 429 and 503 are retried
//!   with capped exponential backoff and jitter (per batch), or after the
//!   server's `Retry-After` (at most 5 minutes). Nothing is dropped while
//!   waiting: the spool holds it.
//! * **413** splits the request in two at a line boundary, recursively; a
//!   single line still too large is rejected.
//! * **Permanent rejections** (400, 401, 403, 404, a single line too large)
//!   are appended to the dead-letter file with the server's message, counted
//!   and logged, and acknowledged (in order, like a success): never retried
//!   forever, never blocking the rest. For an InfluxDB 1.x partial write,
//!   only the `dropped=N` lines count as rejected (the server stored the
//!   others), but the whole request goes to the dead-letter file, since the
//!   server does not say which lines it refused. With several requests in
//!   flight, dead-letter entries appear in the order the answers came.
//! * **Catch-up cap.** With `max_lines_per_sec`, writes are paced so that a
//!   backlog drains no faster than that, whatever `max_in_flight` is (the
//!   pace is shared by all requests), leaving the server capacity for live
//!   data from other gateways.
//! * **Shutdown.** After `input_done` (the pipeline has appended its last
//!   batch), the uploader keeps delivering what is readable for at most
//!   [`UploaderOptions::shutdown_grace`] (its share of the shutdown
//!   deadline, [`Deadline::uploader_grace`]), then stops starting batches;
//!   requests already under way finish or give up at their next retry.
//!   Whatever is not acknowledged stays in the spool and goes out at the
//!   next start: nothing is lost at shutdown (a batch written after an
//!   earlier one gave up is written again then, harmlessly).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{DEFAULT_BATCH_MAX_BYTES, DEFAULT_MAX_IN_FLIGHT, OutputConfig};
use crate::shutdown::Deadline;
use crate::sinks::file::FileSink;
use crate::sinks::influx::classify::{dropped_lines, truncate};
use crate::sinks::influx::{WriteError, Writer, WriterError};
use crate::spool::Spool;
use crate::telemetry::Stats;

/// Longest `Retry-After` honoured; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_mins(5);

/// Shortest wait before a retry, so a refusing output is no busy loop.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Shortest interval between two "still failing" warnings.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What a finished uploader did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkSummary {
    /// Lines the output acknowledged (including the stored lines of partial writes).
    pub lines_written: u64,
    /// Lines the output rejected permanently (now in the dead-letter file).
    pub lines_rejected: u64,
    /// Lines read but not delivered when the shutdown grace ended; they are
    /// still in the spool and go out at the next start.
    pub lines_left_in_spool: u64,
}

/// An uploader that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The InfluxDB writer cannot be built from the configuration.
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// Batching, retry and pacing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploaderOptions {
    /// Lines per request (at least 1; a single large record may exceed it).
    pub batch_size: usize,
    /// Longest wait of a line for more lines to share its request.
    pub flush_interval: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Cap on the retry delay.
    pub retry_max: Duration,
    /// Cap on lines written per second; `None`: as fast as the output accepts.
    pub max_lines_per_sec: Option<u64>,
    /// Where permanently rejected lines go.
    pub dead_letter: Option<PathBuf>,
    /// Delivery time left after the pipeline stopped: the gateway sets its
    /// share of the shutdown deadline, [`Deadline::uploader_grace`].
    pub shutdown_grace: Duration,
    /// Write requests under way at once (at least 1; 1 = one at a time).
    /// Acknowledgements stay in spool order whatever the value.
    pub max_in_flight: usize,
    /// A batch is sent once its body holds this many bytes, even below
    /// `batch_size` lines (one spool record may take it past).
    pub batch_max_bytes: usize,
}

impl UploaderOptions {
    /// The options an output configuration implies (the file sink retries
    /// from 200 ms to 5 s, has no dead-letter file, since a file never
    /// refuses, and writes one batch at a time, so the file keeps spool
    /// order), with the shutdown grace of the default deadline.
    #[must_use]
    pub fn for_output(output: &OutputConfig) -> UploaderOptions {
        let shutdown_grace = Deadline::default().uploader_grace();
        match output {
            OutputConfig::Influx(c) => UploaderOptions {
                batch_size: c.batch_size,
                flush_interval: c.flush_interval,
                retry_initial: c.retry_initial,
                retry_max: c.retry_max,
                max_lines_per_sec: c.max_lines_per_sec,
                dead_letter: Some(c.dead_letter.clone()),
                shutdown_grace,
                max_in_flight: c.max_in_flight,
                batch_max_bytes: c.batch_max_bytes,
            },
            OutputConfig::File(c) => UploaderOptions {
                batch_size: c.batch_size,
                flush_interval: c.flush_interval,
                retry_initial: Duration::from_millis(200),
                retry_max: Duration::from_secs(5),
                max_lines_per_sec: None,
                dead_letter: None,
                shutdown_grace,
                max_in_flight: 1,
                batch_max_bytes: usize::MAX,
            },
        }
    }
}

impl Default for UploaderOptions {
    /// The `[influxdb]` defaults, for embedding and tests.
    fn default() -> UploaderOptions {
        UploaderOptions {
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            max_lines_per_sec: None,
            dead_letter: None,
            shutdown_grace: Deadline::default().uploader_grace(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
        }
    }
}

/// Where batches go.
// One instance per uploader: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Destination {
    Influx(Writer),
    File(FileSink),
}

impl Destination {
    /// The request body for `lines` (gzip-compressed for an InfluxDB with
    /// `gzip = true`); the only copy kept while the batch is under way.
    fn pack(&self, lines: &[u8]) -> Bytes {
        match self {
            Destination::Influx(w) => w.pack(lines),
            Destination::File(_) => Bytes::copy_from_slice(lines),
        }
    }

    /// The lines of a body [`Destination::pack`] made, for a split or the
    /// dead-letter file. A body that does not inflate (it cannot happen:
    /// we made it) is returned as it is, and logged.
    fn unpack<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        match self {
            Destination::Influx(w) => w.unpack(body).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot recover the lines of a request body; using it as it is");
                Cow::Borrowed(body)
            }),
            Destination::File(_) => Cow::Borrowed(body),
        }
    }

    async fn send(&self, body: Bytes, lines: usize) -> Result<(), WriteError> {
        match self {
            Destination::Influx(w) => w.send(body, lines).await,
            Destination::File(f) => f.write(&body).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Destination::Influx(w) => w.endpoint().to_owned(),
            Destination::File(f) => f.path().display().to_string(),
        }
    }
}

/// How the delivery of one batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Every line written or permanently rejected: acknowledge (in order).
    Done,
    /// The shutdown grace ended first: leave the batch in the spool.
    Abandoned,
}

/// Runs the uploader for `output` until `input_done` is cancelled and the
/// spool is drained (or the shutdown grace of `options` has passed since).
///
/// # Errors
/// [`SinkError::Writer`] when the output cannot be set up; once running,
/// failures are retried, counted and logged, never returned.
pub async fn run(
    output: OutputConfig,
    options: UploaderOptions,
    spool: Spool,
    stats: Arc<Stats>,
    input_done: CancellationToken,
) -> Result<SinkSummary, SinkError> {
    run_observed(output, options, spool, stats, None, input_done).await
}

/// [`run`], also reporting every write request (status class, latency,
/// lines) and whether the output is reachable to `board`.
///
/// # Errors
/// As [`run`].
pub async fn run_observed(
    output: OutputConfig,
    options: UploaderOptions,
    spool: Spool,
    stats: Arc<Stats>,
    board: Option<crate::telemetry::SharedBoard>,
    input_done: CancellationToken,
) -> Result<SinkSummary, SinkError> {
    let dest = match &output {
        OutputConfig::Influx(c) => Destination::Influx(Writer::new(c)?),
        OutputConfig::File(c) => Destination::File(FileSink::new(&c.path)),
    };
    tracing::info!(
        destination = %dest.describe(),
        max_in_flight = options.max_in_flight,
        "uploader started"
    );
    let shared = Arc::new(Shared {
        options,
        dest,
        spool: spool.clone(),
        stats,
        board,
        input_done,
        state: Mutex::new(State::default()),
    });
    super::inflight::drive(&shared).await;
    if let Destination::File(f) = &shared.dest
        && let Err(e) = f.sync().await
    {
        tracing::warn!(error = %e, "file sink: final sync failed");
    }
    let s = shared.summary();
    let backlog = spool.stats();
    tracing::info!(
        written = s.lines_written,
        rejected = s.lines_rejected,
        spool_records = backlog.records,
        spool_bytes = backlog.bytes,
        "uploader stopped"
    );
    if backlog.records > 0 {
        tracing::warn!(
            records = backlog.records,
            bytes = backlog.bytes,
            destination = %shared.dest.describe(),
            "undelivered data stays in the spool and is sent at the next start"
        );
    }
    Ok(s)
}

/// What every delivery task of one uploader shares.
pub(super) struct Shared {
    /// The settings.
    pub(super) options: UploaderOptions,
    dest: Destination,
    /// The spool read from (here for its counters in logs).
    pub(super) spool: Spool,
    /// Gateway counters.
    pub(super) stats: Arc<Stats>,
    board: Option<crate::telemetry::SharedBoard>,
    /// Cancelled once the pipeline has appended its last batch.
    pub(super) input_done: CancellationToken,
    state: Mutex<State>,
}

/// The mutable part of [`Shared`]; never locked across an `.await`.
#[derive(Default)]
struct State {
    summary: SinkSummary,
    failing_since: Option<Instant>,
    last_fail_log: Option<Instant>,
    /// With a rate cap: no write before this instant.
    paced_until: Option<Instant>,
    /// End of the shutdown grace, once the input is done.
    deadline: Option<Instant>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Only counters live here; a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters so far.
    pub(super) fn summary(&self) -> SinkSummary {
        self.state().summary
    }

    /// Counts lines read but left in the spool at the end of the grace.
    pub(super) fn left_in_spool(&self, lines: usize) {
        self.state().summary.lines_left_in_spool += lines as u64;
    }

    /// Whether the last answer was a retryable failure.
    pub(super) fn is_failing(&self) -> bool {
        self.state().failing_since.is_some()
    }

    /// The end of the shutdown grace: `None` while the input runs; fixed the
    /// first time it is asked for after `input_done`.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if !self.input_done.is_cancelled() {
            return None;
        }
        let grace = self.options.shutdown_grace;
        Some(
            *self
                .state()
                .deadline
                .get_or_insert_with(|| Instant::now() + grace),
        )
    }

    /// The request body for a batch of `lines` (see [`Destination::pack`]).
    pub(super) fn pack(&self, lines: &[u8]) -> Bytes {
        self.dest.pack(lines)
    }

    /// Delivers `body` (made by [`Shared::pack`], `lines` lines): retries
    /// until every part is written or rejected for good, or the shutdown
    /// grace ends. A retry resends the same bytes; only a split (413) or a
    /// rejection recovers the lines.
    pub(super) async fn deliver(&self, body: Bytes, lines: usize) -> Delivery {
        let mut backoff = Backoff::new(self.options.retry_initial, self.options.retry_max);
        let mut parts: VecDeque<(Bytes, usize)> = VecDeque::new();
        parts.push_back((body, lines));
        while let Some((part, n)) = parts.pop_front() {
            self.pace(n).await;
            let started = Instant::now();
            let result = self.dest.send(part.clone(), n).await;
            Stats::add(&self.stats.write_requests, 1);
            self.observe(&result, started.elapsed(), n);
            match result {
                Ok(()) => {
                    self.reachable(&mut backoff);
                    self.written(n as u64);
                }
                Err(WriteError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    Stats::add(&self.stats.write_retries, 1);
                    let delay = next_delay(&mut backoff, retry_after);
                    self.failing(&reason, delay, n);
                    parts.push_front((part, n));
                    let wake = Instant::now() + delay;
                    if !self.wait_retry(wake).await {
                        let left: usize = parts.iter().map(|(_, n)| n).sum();
                        tracing::warn!(
                            lines = left,
                            "shutdown grace over while the output is failing; batch stays in the spool"
                        );
                        return Delivery::Abandoned;
                    }
                }
                Err(WriteError::TooLarge) if n > 1 => {
                    self.reachable(&mut backoff);
                    Stats::add(&self.stats.write_retries, 1);
                    let text = self.dest.unpack(&part);
                    let mid = nth_line_end(&text, n / 2);
                    tracing::debug!(lines = n, "write too large (413): split in two");
                    parts.push_front((self.dest.pack(&text[mid..]), n - n / 2));
                    parts.push_front((self.dest.pack(&text[..mid]), n / 2));
                }
                Err(WriteError::TooLarge) => {
                    self.reachable(&mut backoff);
                    let message = "request too large even as a single line";
                    self.rejected(&self.dest.unpack(&part), n, 413, message, false);
                }
                Err(WriteError::Permanent {
                    status,
                    message,
                    partial,
                }) => {
                    self.reachable(&mut backoff);
                    self.rejected(&self.dest.unpack(&part), n, status, &message, partial);
                }
            }
        }
        Delivery::Done
    }

    /// Sleeps until `wake`; false when the shutdown grace ends first.
    async fn wait_retry(&self, wake: Instant) -> bool {
        loop {
            if let Some(deadline) = self.deadline() {
                if wake >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return false;
                }
                tokio::time::sleep_until(wake).await;
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => return true,
                () = self.input_done.cancelled() => {},
            }
        }
    }

    /// With a rate cap, waits until `lines` more lines may be written. The
    /// slot is reserved before sleeping, so concurrent requests share one pace.
    async fn pace(&self, lines: usize) {
        let Some(rate) = self.options.max_lines_per_sec else {
            return;
        };
        let start = {
            let mut state = self.state();
            let now = Instant::now();
            let start = state.paced_until.map_or(now, |t| t.max(now));
            state.paced_until = Some(start + Duration::from_secs_f64(lines as f64 / rate as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }

    fn written(&self, lines: u64) {
        Stats::add(&self.stats.lines_written, lines);
        self.state().summary.lines_written += lines;
    }

    /// Counts, logs and dead-letters a permanent rejection of `body`.
    fn rejected(&self, body: &[u8], lines: usize, status: u16, message: &str, partial: bool) {
        let rejected = if partial {
            dropped_lines(message).map_or(lines, |n| n.min(lines))
        } else {
            lines
        };
        self.written((lines - rejected) as u64);
        Stats::add(&self.stats.lines_rejected, rejected as u64);
        let first_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
        let first_line = truncate(String::from_utf8_lossy(first_line).into_owned(), 300);
        let dead = {
            // Under the lock: concurrent rejections append whole entries.
            let mut state = self.state();
            state.summary.lines_rejected += rejected as u64;
            self.options.dead_letter.as_ref().map(|path| {
                let r = dead_letter(path, status, message, lines, rejected, body);
                (path, r)
            })
        };
        let dead_letter_file = match &dead {
            Some((path, Ok(()))) => path.display().to_string(),
            Some((path, Err(e))) => format!("{} (not written: {e})", path.display()),
            None => "none".to_owned(),
        };
        tracing::error!(
            status,
            server_message = %message,
            batch_lines = lines,
            rejected,
            stored = lines - rejected,
            first_line = %first_line,
            dead_letter = %dead_letter_file,
            "output rejected lines permanently; they will not be retried"
        );
    }

    /// Notes a retryable failure; warns on the first and then every [`LOG_EVERY`].
    fn failing(&self, reason: &str, delay: Duration, lines: usize) {
        let now = Instant::now();
        let warn = {
            let mut state = self.state();
            let first = state.failing_since.is_none();
            state.failing_since.get_or_insert(now);
            let warn = first || state.last_fail_log.is_none_or(|t| now - t >= LOG_EVERY);
            if warn {
                state.last_fail_log = Some(now);
            }
            warn
        };
        if warn {
            let backlog = self.spool.stats();
            tracing::warn!(
                destination = %self.dest.describe(),
                reason,
                retry_in_ms = delay.as_millis() as u64,
                batch_lines = lines,
                spool_records = backlog.records,
                spool_bytes = backlog.bytes,
                "write failed; will retry (the spool keeps everything meanwhile)"
            );
        } else {
            tracing::debug!(
                reason,
                retry_in_ms = delay.as_millis() as u64,
                "write failed; will retry"
            );
        }
    }

    /// Reports one write request to the status board.
    fn observe(&self, result: &Result<(), WriteError>, latency: Duration, lines: usize) {
        let Some(shared) = &self.board else {
            return;
        };
        // The current generation's board (a reload swaps it).
        let board = shared.get();
        let status = match result {
            Ok(()) => Some(204),
            Err(WriteError::TooLarge) => Some(413),
            Err(WriteError::Permanent { status, .. }) => Some(*status),
            // Retryable errors carry the status only in their reason
            // ("server answered 503: …"); anything else never got an answer.
            Err(WriteError::Retryable { reason, .. }) => reason
                .strip_prefix("server answered ")
                .and_then(|r| r.get(..3))
                .and_then(|code| code.parse().ok()),
        };
        board.influx_request(status, latency, lines as u64);
        // Retryable failures (no answer, 5xx, 429) mean the data is not
        // getting through; a permanent rejection still proves the server works.
        board.set_sink_reachable(!matches!(result, Err(WriteError::Retryable { .. })));
    }

    /// The output answered: reset this batch's backoff, log a recovery.
    fn reachable(&self, backoff: &mut Backoff) {
        backoff.reset();
        let since = {
            let mut state = self.state();
            let since = state.failing_since.take();
            if since.is_some() {
                state.last_fail_log = None;
            }
            since
        };
        if let Some(since) = since {
            tracing::info!(
                destination = %self.dest.describe(),
                failing_for_ms = since.elapsed().as_millis() as u64,
                "output reachable again; catching up"
            );
        }
    }
}

/// The wait before the next retry: the server's `Retry-After` when given,
/// else the backoff with jitter (upper half), doubling to the cap.
fn next_delay(backoff: &mut Backoff, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.clamp(MIN_RETRY_DELAY, MAX_RETRY_AFTER);
    }
    backoff.next_delay().max(MIN_RETRY_DELAY)
}

/// Number of lines in a chunk of whole lines.
pub(super) fn count_lines(chunk: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', chunk).count()
}

/// Appends a rejected request to the dead-letter file: a comment line with
/// the time, status and server message, then the lines as sent.
fn dead_letter(
    path: &std::path::Path,
    status: u16,
    message: &str,
    lines: usize,
    rejected: usize,
    body: &[u8],
) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let message = message.replace(['\n', '\r'], " ");
    let mut out = format!(
        "# {} status={status} lines={lines} rejected={rejected} error={message}\n",
        jiff::Timestamp::now()
    )
    .into_bytes();
    out.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        out.push(b'\n');
    }
    f.write_all(&out)
}

/// Byte index just after the `n`-th newline of `body` (`body.len()` when it has fewer).
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

    #[test]
    fn line_ends() {
        let body = b"a\nbb\nccc\n";
        assert_eq!(nth_line_end(body, 0), 0);
        assert_eq!(nth_line_end(body, 1), 2);
        assert_eq!(nth_line_end(body, 2), 5);
        assert_eq!(nth_line_end(body, 3), 9);
        assert_eq!(nth_line_end(body, 4), 9);
        assert_eq!(count_lines(body), 3);
    }

    #[test]
    fn dead_letter_records_the_error_and_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dead.lp");
        dead_letter(
            &path,
            400,
            "partial write:\nbad dropped=1",
            2,
            1,
            b"m a=1 1\nm a=\"x\" 2\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("# "));
        assert!(
            lines[0].ends_with(" status=400 lines=2 rejected=1 error=partial write: bad dropped=1")
        );
        assert_eq!(&lines[1..], ["m a=1 1", "m a=\"x\" 2"]);
    }
}
