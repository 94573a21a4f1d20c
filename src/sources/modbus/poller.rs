//! The Modbus TCP poller: one task per endpoint, one conversation on its wire.
//!
//! An endpoint is one TCP connection (a meter, or a serial server with many
//! unit ids behind it). ARCHITECTURE.md decision 3: one request at a time per
//! wire; concurrency comes from many endpoints running as separate tasks, so
//! thousands of meters are many small tasks, not a special case.
//!
//! Each round the task polls every meter whose slot has started, in
//! configuration order, and sends one [`ReadingBatch`] downstream. What goes
//! wrong is judged per point, never per endpoint:
//! * a **timeout** or a broken link marks the affected meter's points with
//!   [`Quality::TIMEOUT`] and drops the connection: tokio-modbus has no
//!   timeout of its own, and a late reply would otherwise surface as a header
//!   mismatch on the next request;
//! * a **Modbus exception** marks the read's points with
//!   [`Quality::EXCEPTION`]; when the exception says the address range is
//!   not acceptable (codes 2 and 3) and the read was merged, the read is split
//!   into one read per point and the split is kept for the meter's life, so
//!   one bad register never costs the good ones;
//! * a **protocol error** (garbage, a frame that cannot be parsed) counts
//!   as an exception and reconnects;
//! * a well-formed answer that **does not answer the request** (more or
//!   fewer registers than asked) marks the read's points with
//!   [`Quality::EXCEPTION`] and keeps the link: its length kept the stream
//!   in step. tokio-modbus checks the count only in debug builds, so reads
//!   go through `call` and `answered_words` checks it always.
//!
//! A reading is produced for every meter and every slot, even when nothing
//! answered (`q = 1`): completeness must be visible downstream.
//! Reconnects back off exponentially with jitter, capped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use tokio_modbus::{Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::plan::{PlanLimits, PlannedRead, plan, split};
use super::schedule::MeterSchedule;
use crate::backoff::Backoff;
use crate::clock::now_ms;
use crate::config::{Config, EndpointConfig};
use crate::model::{EndpointId, MeterId, PointValue, Quality, ReadingBatch};
use crate::profiles::RegisterKind;
use crate::profiles::codec::decode_point;
use crate::sources::{Input, SourceContext};
use crate::telemetry::Stats;
use crate::telemetry::{PollOutcome, StatusBoard};

/// One meter as the poller sees it.
struct PolledMeter {
    id: MeterId,
    unit: u8,
    pt: f64,
    ct: f64,
    profile: usize,
    reads: Vec<PlannedRead>,
    schedule: MeterSchedule,
    /// Point values of the current poll, reused every slot.
    scratch: Vec<PointValue>,
    /// Whether the last poll got any answer, for the `meters_up` gauge.
    up: bool,
}

/// Polls every meter of one endpoint until `shutdown`.
pub struct EndpointPoller {
    config: Arc<Config>,
    endpoint: EndpointId,
    meters: Vec<PolledMeter>,
    out: mpsc::Sender<Input>,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    conn: Option<Context>,
    backoff: Backoff,
    /// No connection attempt before this instant (reconnect backoff).
    retry_at: Option<Instant>,
    /// Last "pipeline full" warning, to rate-limit it.
    last_stall_warn: Option<Instant>,
}

/// What happened to one request.
enum ReadOutcome {
    Data,
    /// The device answered with an exception; the read's points are marked.
    Exception(ExceptionCode),
    /// A well-formed answer that does not answer the request (another count
    /// of registers); its points are marked, the link is kept.
    Mismatch,
    /// The link failed (timeout, reset, garbage); the connection was dropped.
    LinkLost {
        /// The device answered garbage rather than nothing.
        protocol: bool,
    },
}

impl EndpointPoller {
    /// A poller for `endpoint`, planning each meter's reads once. Every
    /// meter poll and reconnect backoff is reported to `board`.
    #[must_use]
    pub fn new(ctx: &SourceContext, endpoint: EndpointId) -> EndpointPoller {
        let SourceContext {
            config,
            out,
            stats,
            board,
        } = ctx.clone();
        let ep = &config.endpoints[endpoint.index()];
        let limits = PlanLimits {
            max_gap: ep.max_gap,
            max_registers: ep.max_registers,
            max_bits: 2000,
        };
        let now = now_ms();
        let meters = config
            .meters_on(endpoint)
            .map(|(id, m)| {
                let profile = &config.profiles[m.profile.index()];
                PolledMeter {
                    id,
                    // `meters_on` yields Modbus meters only.
                    unit: m.modbus().map_or(0, |(_, unit)| unit),
                    pt: m.pt,
                    ct: m.ct,
                    profile: m.profile.index(),
                    reads: plan(&profile.points, limits),
                    schedule: MeterSchedule::starting_at(now, m.poll_interval.as_millis() as i64),
                    scratch: vec![PointValue::default(); profile.points.len()],
                    up: false,
                }
            })
            .collect();
        let backoff = Backoff::new(ep.reconnect_initial, ep.reconnect_max);
        EndpointPoller {
            config,
            endpoint,
            meters,
            out,
            stats,
            board,
            conn: None,
            backoff,
            retry_at: None,
            last_stall_warn: None,
        }
    }

    fn endpoint_config(&self) -> &EndpointConfig {
        &self.config.endpoints[self.endpoint.index()]
    }

    /// Number of Modbus requests one round of every meter needs (after planning).
    #[must_use]
    pub fn requests_per_round(&self) -> usize {
        self.meters.iter().map(|m| m.reads.len()).sum()
    }

    /// Runs until `shutdown` is cancelled or the downstream channel closes.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.meters.is_empty() {
            return;
        }
        let ep = self.endpoint_config();
        info!(
            endpoint = %ep.id,
            addr = %ep.address(),
            meters = self.meters.len(),
            requests_per_round = self.requests_per_round(),
            "polling endpoint"
        );
        super::timing::publish(&self.config, self.endpoint, &self.board);
        loop {
            // Checked here too: a round cut short by the shutdown leaves due
            // meters behind, and without this the loop would spin on them.
            if shutdown.is_cancelled() {
                break;
            }
            let now = now_ms();
            let next = self
                .meters
                .iter()
                .map(|m| m.schedule.next_slot_ms)
                .min()
                .unwrap_or(now);
            if next > now {
                let wait = Duration::from_millis((next - now) as u64);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let round_started = Instant::now();
            let mut batch = ReadingBatch::with_capacity(self.meters.len(), 16);
            for i in 0..self.meters.len() {
                if shutdown.is_cancelled() {
                    break;
                }
                let now = now_ms();
                if !self.meters[i].schedule.is_due(now) {
                    continue;
                }
                let due = self.meters[i].schedule.take(now);
                if due.missed > 0 {
                    self.stats
                        .missed_slots
                        .fetch_add(due.missed, Ordering::Relaxed);
                    warn!(
                        meter = %self.config.meters[self.meters[i].id.index()].id,
                        missed = due.missed,
                        "poll slots missed: the endpoint cannot keep up with the poll interval"
                    );
                }
                self.poll_meter(i, due.slot_ms, &mut batch).await;
                let done = now_ms();
                if self.meters[i].schedule.overran(due.slot_ms, done) {
                    self.stats.overruns.fetch_add(1, Ordering::Relaxed);
                    self.board.overrun(self.endpoint);
                }
            }
            if batch.is_empty() {
                continue;
            }
            self.board
                .round_done(self.endpoint, round_started.elapsed());
            // Backpressure: a full pipeline makes this await, and the slots
            // that pass meanwhile are counted as missed on the next round.
            // The stall itself is counted and logged as it starts, so a
            // long one is visible while it lasts, not only afterwards.
            let input = match self.out.try_send(Input::fire_and_forget(batch)) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => break,
                Err(mpsc::error::TrySendError::Full(input)) => input,
            };
            self.stats.pipeline_stalls.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if self
                .last_stall_warn
                .is_none_or(|t| now - t >= Duration::from_secs(10))
            {
                warn!(
                    endpoint = %self.endpoint_config().id,
                    "pipeline full (the spool is full or the disk is slow): polling paused until it drains"
                );
                self.last_stall_warn = Some(now);
            }
            if self.out.send(input).await.is_err() {
                break;
            }
        }
        debug!(endpoint = %self.endpoint_config().id, "poller stopped");
    }

    /// Makes sure a connection exists, honouring the reconnect backoff.
    async fn ensure_connected(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if let Some(at) = self.retry_at
            && Instant::now() < at
        {
            return false;
        }
        let ep = self.endpoint_config().clone();
        let Some((host, port)) = ep.tcp_address() else {
            return false;
        };
        let attempt =
            tokio::time::timeout(ep.connect_timeout, TcpStream::connect((host, port))).await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                self.conn = Some(tokio_modbus::client::tcp::attach_slave(stream, Slave(1)));
                self.backoff.reset();
                self.retry_at = None;
                self.board.set_backoff(self.endpoint, None);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                debug!(endpoint = %ep.id, "connected");
                true
            }
            Ok(Err(e)) => {
                self.connect_failed(&ep, &e.to_string());
                false
            }
            Err(_) => {
                self.connect_failed(&ep, "connect timed out");
                false
            }
        }
    }

    fn connect_failed(&mut self, ep: &EndpointConfig, why: &str) {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        self.board
            .set_backoff(self.endpoint, Some(now_ms() + delay.as_millis() as i64));
        self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
        warn!(
            endpoint = %ep.id,
            addr = %ep.address(),
            error = why,
            retry_in_ms = delay.as_millis() as u64,
            "cannot connect to modbus endpoint"
        );
    }

    /// Drops the connection after a link failure; the next request reconnects
    /// at once (the link worked until now), later failures back off.
    fn drop_connection(&mut self) {
        self.conn = None;
    }

    /// Polls one meter for `slot_ms` and appends its reading to `batch`.
    async fn poll_meter(&mut self, idx: usize, slot_ms: i64, batch: &mut ReadingBatch) {
        self.meters[idx]
            .scratch
            .fill(PointValue::missing(Quality::TIMEOUT));
        let started = Instant::now();
        let mut answered = false;
        let mut outcome = PollOutcome::Ok;
        let mut r = 0;
        while r < self.meters[idx].reads.len() {
            if !self.ensure_connected().await {
                outcome = PollOutcome::Timeout;
                break;
            }
            match self.do_read(idx, r).await {
                ReadOutcome::Data => answered = true,
                ReadOutcome::Exception(code) => {
                    answered = true;
                    outcome = PollOutcome::Exception;
                    let m = &self.meters[idx];
                    let read = &m.reads[r];
                    let splittable = matches!(
                        code,
                        ExceptionCode::IllegalDataAddress | ExceptionCode::IllegalDataValue
                    ) && read.points.len() > 1;
                    if splittable {
                        let profile = &self.config.profiles[m.profile];
                        let parts = split(read, &profile.points);
                        let n = parts.len();
                        self.meters[idx].reads.splice(r..=r, parts);
                        self.stats.reads_split.fetch_add(1, Ordering::Relaxed);
                        info!(
                            meter = %self.config.meters[self.meters[idx].id.index()].id,
                            exception = %code,
                            parts = n,
                            "merged read refused; reading its points separately from now on"
                        );
                        // Retry the same position, now the first split read.
                        continue;
                    }
                }
                ReadOutcome::Mismatch => {
                    answered = true;
                    outcome = PollOutcome::ProtocolError;
                }
                ReadOutcome::LinkLost { protocol } => {
                    outcome = if protocol {
                        PollOutcome::ProtocolError
                    } else {
                        PollOutcome::Timeout
                    };
                    break;
                }
            }
            r += 1;
            let delay = self.endpoint_config().inter_request_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let lag_ms = now_ms() - slot_ms;
        self.board.poll_result(
            self.endpoint,
            self.meters[idx].id,
            outcome,
            started.elapsed(),
        );
        let m = &mut self.meters[idx];
        if answered != m.up {
            self.stats
                .meters_up
                .fetch_add(if answered { 1 } else { -1 }, Ordering::Relaxed);
            m.up = answered;
        }
        self.stats.readings.fetch_add(1, Ordering::Relaxed);
        self.stats
            .points
            .fetch_add(m.scratch.len() as u64, Ordering::Relaxed);
        batch.push(m.id, slot_ms.div_euclid(1000), lag_ms, &m.scratch);
    }

    /// Sends read `r` of meter `idx` and decodes its answer into the meter's scratch values.
    async fn do_read(&mut self, idx: usize, r: usize) -> ReadOutcome {
        let timeout = self.endpoint_config().timeout;
        let Some(ctx) = self.conn.as_mut() else {
            return ReadOutcome::LinkLost { protocol: false };
        };
        let m = &mut self.meters[idx];
        let read = &m.reads[r];
        ctx.set_slave(Slave(m.unit));
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let (start, count) = (read.start, read.count);
        // `call` rather than `read_*`: those check the answer's count only
        // with a `debug_assert` (a panic in debug builds, a silently
        // accepted frame in release); `answered_words` checks it always.
        let request = match read.kind {
            RegisterKind::Holding => Request::ReadHoldingRegisters(start, count),
            RegisterKind::Input => Request::ReadInputRegisters(start, count),
            RegisterKind::Coil => Request::ReadCoils(start, count),
            RegisterKind::Discrete => Request::ReadDiscreteInputs(start, count),
        };
        let answer = tokio::time::timeout(timeout, ctx.call(request)).await;
        let profile = &self.config.profiles[m.profile];
        match answer {
            Ok(Ok(Ok(response))) => {
                let Some(words) = answered_words(response, count) else {
                    // A well-formed frame that does not answer the request
                    // (another count of registers): no value, the link kept
                    // (the frame's own length kept the stream in step).
                    self.stats
                        .requests_exception
                        .fetch_add(1, Ordering::Relaxed);
                    for slot in &read.points {
                        m.scratch[usize::from(slot.point)] =
                            PointValue::missing(Quality::EXCEPTION);
                    }
                    warn!(
                        meter = %self.config.meters[m.id.index()].id,
                        start, count,
                        "wrong_count: the answer does not hold the number of registers requested"
                    );
                    return ReadOutcome::Mismatch;
                };
                self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                for slot in &read.points {
                    let point = &profile.points[usize::from(slot.point)];
                    let from = usize::from(slot.offset);
                    let to = from + usize::from(point.width());
                    // In range: `answered_words` checked the count against the plan.
                    m.scratch[usize::from(slot.point)] = words
                        .get(from..to)
                        .map_or(PointValue::missing(Quality::EXCEPTION), |regs| {
                            decode_point(point, regs, m.pt, m.ct)
                        });
                }
                ReadOutcome::Data
            }
            Ok(Ok(Err(code))) => {
                self.stats
                    .requests_exception
                    .fetch_add(1, Ordering::Relaxed);
                for slot in &read.points {
                    m.scratch[usize::from(slot.point)] = PointValue::missing(Quality::EXCEPTION);
                }
                debug!(
                    meter = %self.config.meters[m.id.index()].id,
                    start, count, exception = %code,
                    "modbus exception"
                );
                ReadOutcome::Exception(code)
            }
            Ok(Err(err)) => {
                // Transport errors mean no (usable) answer; protocol errors
                // mean the device answered garbage.
                // A frame that cannot be parsed is an answer, just not a
                // usable one: tokio-modbus reports it as a transport error
                // of kind `InvalidData`.
                let bit = match &err {
                    tokio_modbus::Error::Protocol(_) => Quality::EXCEPTION,
                    tokio_modbus::Error::Transport(e)
                        if e.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        Quality::EXCEPTION
                    }
                    tokio_modbus::Error::Transport(_) => Quality::TIMEOUT,
                };
                if bit == Quality::EXCEPTION {
                    self.stats
                        .requests_exception
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.requests_timeout.fetch_add(1, Ordering::Relaxed);
                }
                for slot in &read.points {
                    m.scratch[usize::from(slot.point)] = PointValue::missing(bit);
                }
                warn!(
                    meter = %self.config.meters[m.id.index()].id,
                    error = %err,
                    "modbus link error; reconnecting"
                );
                self.drop_connection();
                ReadOutcome::LinkLost {
                    protocol: bit == Quality::EXCEPTION,
                }
            }
            Err(_elapsed) => {
                self.stats.requests_timeout.fetch_add(1, Ordering::Relaxed);
                debug!(
                    meter = %self.config.meters[m.id.index()].id,
                    start, count, timeout_ms = timeout.as_millis() as u64,
                    "modbus request timed out"
                );
                self.drop_connection();
                ReadOutcome::LinkLost { protocol: false }
            }
        }
    }
}

/// The registers (or bits, one per word) of `response` when it holds
/// exactly the `count` that was requested; `None` when it holds another
/// number (a coil answer carries whole bytes, so up to 7 padding bits more
/// are cut off, as the standard says).
fn answered_words(response: Response, count: u16) -> Option<Vec<u16>> {
    let count = usize::from(count);
    match response {
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
            (words.len() == count).then_some(words)
        }
        Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => (bits.len() >= count
            && bits.len() < count + 8)
            .then(|| bits.into_iter().take(count).map(u16::from).collect()),
        _ => None,
    }
}
