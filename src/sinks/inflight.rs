//! Several write requests in flight, acknowledgements in spool order.
//!
//! One write request at a time leaves the output idle for a round trip
//! between batches, so a backlog drains at the rate of request latency,
//! not at the rate the server can store. This module lets the uploader
//! keep up to `max_in_flight` batches under way, each in its own task, and
//! keeps the delivery guarantee intact with an [`AckWindow`]: the spool's
//! acknowledged position only moves over a contiguous prefix of batches
//! that are all finished (written, or rejected for good into the
//! dead-letter file). A later batch answered first waits there; a crash
//! therefore re-delivers only batches that were never acknowledged, in
//! spool order, and nothing is skipped.
//!
//! The batching half ([`Collector`]) keeps its partial batch in its own
//! fields, so the driver can race it against finishing requests and drop
//! it without losing a record that was already read from the spool.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::sinks::uploader::{Delivery, Shared, count_lines};
use crate::spool::{Cursor, Spool};

/// Records read from the spool per call.
const READ_RECORDS: usize = 64;

/// Batches read but not yet acknowledged, in spool order.
#[derive(Debug, Default)]
pub struct AckWindow {
    next_id: u64,
    slots: VecDeque<Slot>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    /// The spool position after the batch.
    cursor: Cursor,
    lines: usize,
    done: bool,
}

impl AckWindow {
    /// Registers the next batch (`lines` lines, ending at `cursor`); returns
    /// its id for [`AckWindow::finish`].
    pub fn push(&mut self, cursor: Cursor, lines: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push_back(Slot {
            id,
            cursor,
            lines,
            done: false,
        });
        id
    }

    /// Marks batch `id` finished and returns the position to acknowledge
    /// now: the end of the longest finished prefix, when it grew. A batch
    /// finishing behind an unfinished one returns `None` and waits.
    pub fn finish(&mut self, id: u64) -> Option<Cursor> {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) {
            slot.done = true;
        }
        let mut ack = None;
        while self.slots.front().is_some_and(|s| s.done) {
            ack = self.slots.pop_front().map(|s| s.cursor);
        }
        ack
    }

    /// Lines of batch `id` (0 when unknown).
    #[must_use]
    pub fn lines(&self, id: u64) -> usize {
        self.slots
            .iter()
            .find(|s| s.id == id)
            .map_or(0, |s| s.lines)
    }

    /// Batches read but not acknowledged.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether every batch read was acknowledged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// One batch ready to send.
struct Batch {
    /// The request body ([`Shared::pack`]): with gzip on, the compressed
    /// bytes are all a batch in flight keeps.
    body: Bytes,
    lines: usize,
    cursor: Cursor,
}

/// Gathers spool records into batches. Cancel-safe: the batch being
/// gathered lives in the fields, not in the future.
struct Collector {
    spool: Spool,
    batch_size: usize,
    /// Body bytes at which a batch is sent (`batch_max_bytes`).
    max_bytes: usize,
    flush_interval: Duration,
    body: Vec<u8>,
    lines: usize,
    cursor: Option<Cursor>,
    first_at: Option<Instant>,
}

impl Collector {
    /// The next batch; `None` when the input is done and nothing is left,
    /// or the shutdown grace has ended (a partial batch is then counted as
    /// left in the spool).
    async fn next(&mut self, shared: &Shared) -> Option<Batch> {
        loop {
            if let Some(deadline) = shared.deadline()
                && Instant::now() >= deadline
            {
                if self.lines > 0 {
                    shared.left_in_spool(self.lines);
                    self.reset();
                }
                return None;
            }
            // Records are read straight into the body: one copy each.
            let room = self.max_bytes.saturating_sub(self.body.len());
            let at = self.body.len();
            if (room > 0 || self.lines == 0)
                && let Some(c) = self.spool.read(READ_RECORDS, room, &mut self.body)
            {
                self.lines += count_lines(&self.body[at..]);
                self.cursor = Some(c);
                self.first_at.get_or_insert_with(Instant::now);
                if self.lines >= self.batch_size || self.body.len() >= self.max_bytes {
                    return self.take(shared);
                }
                continue;
            }
            if self.lines > 0 && self.body.len() >= self.max_bytes {
                return self.take(shared);
            }
            // Nothing more readable right now.
            let done = shared.input_done.is_cancelled();
            let flush_at = self.first_at.map(|t| t + self.flush_interval);
            if self.lines > 0 && (done || flush_at.is_some_and(|t| Instant::now() >= t)) {
                return self.take(shared);
            }
            if self.lines == 0 && done {
                return None;
            }
            let never = Instant::now() + Duration::from_hours(24);
            tokio::select! {
                () = self.spool.wait_readable() => {},
                () = tokio::time::sleep_until(flush_at.unwrap_or(never)), if flush_at.is_some() => {},
                () = shared.input_done.cancelled(), if !done => {},
            }
        }
    }

    /// Hands out the gathered batch, packed into its request body, and
    /// starts an empty one in the same buffer: one buffer of lines serves
    /// every batch, however many are in flight.
    fn take(&mut self, shared: &Shared) -> Option<Batch> {
        let cursor = self.cursor?;
        let body = shared.pack(&self.body);
        let lines = self.lines;
        self.reset();
        Some(Batch {
            body,
            lines,
            cursor,
        })
    }

    fn reset(&mut self) {
        self.body.clear();
        self.lines = 0;
        self.cursor = None;
        self.first_at = None;
    }
}

/// What a delivery task hands back: batch id, outcome.
type Outcome = (u64, Delivery);

/// What woke the driver.
enum Event {
    Batch(Option<Batch>),
    Finished(Option<Result<(tokio::task::Id, Outcome), tokio::task::JoinError>>),
}

/// Reads, sends and acknowledges until the input is done and the spool is
/// drained, or the shutdown grace has ended; then puts the spool's read
/// position back to its acknowledged one, so whatever was not acknowledged
/// is read again (by the next generation after a reload, or at the next
/// start).
pub(super) async fn drive(shared: &Arc<Shared>) {
    let max = shared.options.max_in_flight.max(1);
    let spool = shared.spool.clone();
    let mut collector = Collector {
        spool: spool.clone(),
        batch_size: shared.options.batch_size,
        max_bytes: shared.options.batch_max_bytes.max(1),
        flush_interval: shared.options.flush_interval,
        body: Vec::new(),
        lines: 0,
        cursor: None,
        first_at: None,
    };
    let mut window = AckWindow::default();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut task_slots: HashMap<tokio::task::Id, u64> = HashMap::new();
    let mut reading = true;
    loop {
        // While the output fails, one request probes it; the rest wait.
        let cap = if shared.is_failing() { 1 } else { max };
        let event = if reading && tasks.len() < cap {
            tokio::select! {
                // Finished requests first: their acks free spool space.
                biased;
                done = tasks.join_next_with_id(), if !tasks.is_empty() => Event::Finished(done),
                batch = collector.next(shared) => Event::Batch(batch),
            }
        } else if tasks.is_empty() {
            break;
        } else {
            Event::Finished(tasks.join_next_with_id().await)
        };
        match event {
            Event::Batch(Some(batch)) => {
                let id = window.push(batch.cursor, batch.lines);
                let task = Arc::clone(shared);
                let handle =
                    tasks.spawn(async move { (id, task.deliver(batch.body, batch.lines).await) });
                task_slots.insert(handle.id(), id);
            }
            Event::Batch(None) => reading = false,
            Event::Finished(None) => {}
            Event::Finished(Some(Ok((task, (id, delivery))))) => {
                task_slots.remove(&task);
                match delivery {
                    Delivery::Done => {
                        if let Some(cursor) = window.finish(id) {
                            acknowledge(shared, &spool, cursor).await;
                        }
                    }
                    Delivery::Abandoned => {
                        shared.left_in_spool(window.lines(id));
                        reading = false;
                    }
                }
            }
            Event::Finished(Some(Err(e))) => {
                // A delivery task panicked: its batch stays unacknowledged,
                // and with it everything after it, until the next start.
                let id = task_slots.remove(&e.id());
                let lines = id.map_or(0, |id| window.lines(id));
                tracing::error!(error = %e, lines, "write task failed; its batch stays in the spool");
                shared.left_in_spool(lines);
                reading = false;
            }
        }
    }
    if !window.is_empty() {
        tracing::debug!(
            batches = window.len(),
            "unacknowledged batches stay in the spool"
        );
    }
    spool.rewind();
}

/// Persists the acknowledged position and refreshes the spool counters.
/// The `ack` file is replaced with fsyncs, so that runs on the blocking
/// pool, never on a runtime worker; the driver waits for it, so acks stay
/// in order (requests already in flight go on meanwhile).
async fn acknowledge(shared: &Shared, spool: &Spool, cursor: Cursor) {
    let s = spool.clone();
    let done = tokio::task::spawn_blocking(move || s.ack(cursor))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the spool acknowledgement task failed");
            Ok(())
        });
    if let Err(e) = done {
        // The lines are delivered; a failed ack only means they may be
        // delivered again after a restart (idempotent).
        tracing::error!(error = %e, "cannot persist the spool's acknowledged position");
    }
    shared.stats.update_spool(spool);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Cursor {
        Cursor { segment: 1, offset }
    }

    #[test]
    fn acks_only_a_finished_prefix() {
        let mut w = AckWindow::default();
        let a = w.push(at(10), 5);
        let b = w.push(at(20), 6);
        let c = w.push(at(30), 7);
        // The second and third answer first: nothing may be acknowledged.
        assert_eq!(w.finish(b), None);
        assert_eq!(w.finish(c), None);
        assert_eq!(w.len(), 3);
        assert_eq!(w.lines(a), 5);
        // The first answers: one ack covers all three.
        assert_eq!(w.finish(a), Some(at(30)));
        assert!(w.is_empty());
    }

    #[test]
    fn in_order_answers_ack_one_by_one() {
        let mut w = AckWindow::default();
        let a = w.push(at(10), 1);
        let b = w.push(at(20), 1);
        assert_eq!(w.finish(a), Some(at(10)));
        let c = w.push(at(30), 1);
        assert_eq!(w.finish(c), None);
        assert_eq!(w.finish(b), Some(at(30)));
        // Unknown or repeated ids change nothing.
        assert_eq!(w.finish(b), None);
        assert_eq!(w.lines(99), 0);
    }
}
