//! The Modbus poller: one task per endpoint, one conversation on its wire.
//!
//! An endpoint is one wire: a Modbus TCP connection, a serial server (RTU
//! over TCP), a local serial port or a dial-in DTU, with one meter or many
//! unit ids behind it. ARCHITECTURE.md decision 3: one request at a time per
//! wire; concurrency comes from many endpoints running as separate tasks, so
//! thousands of meters are many small tasks, not a special case. The wire
//! is opened in [`super::connect`] and spoken to through
//! [`super::client::ModbusLink`], which checks every answer against its
//! question.
//!
//! Each round the task polls every meter whose slot has started, in
//! configuration order, and sends one [`ReadingBatch`] downstream. What goes
//! wrong is judged per point, never per endpoint:
//! * **no answer** in time marks the read's points with
//!   [`Quality::TIMEOUT`]; on Modbus TCP the connection is then dropped and
//!   redialled (a late reply can then never meet the next request), on
//!   serial-framed wires it is kept (one dead meter must not cost the bus);
//!   the meter's remaining reads are skipped this slot;
//! * a **Modbus exception** marks the read's points with
//!   [`Quality::EXCEPTION`]; when the exception says the address range is
//!   not acceptable (codes 2 and 3) and the read was merged, the read is split
//!   into one read per point and the split is kept for the meter's life, so
//!   one bad register never costs the good ones;
//! * an answer that **does not answer the request** (wrong count, unit,
//!   function, transaction, CRC, lengths; garbage; a frame cut by a close)
//!   marks the read's points [`Quality::EXCEPTION`] with the failed check
//!   as their [`Detail`], counted per detail;
//! * a **DTU that is not connected** marks every point of its meters
//!   [`Quality::TIMEOUT`] with [`Detail::NOT_CONNECTED`] at once, sending
//!   nothing (no timeout storm); a newer connection of the DTU replaces the
//!   current one as soon as it registers.
//!
//! A reading is produced for every meter and every slot, even when nothing
//! answered (`q = 1`): completeness must be visible downstream.
//! Reconnects back off exponentially with jitter, capped.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{Exchange, ModbusLink};
use super::connect;
use super::frame::Question;
use super::plan::{PlannedRead, plan, split};
use super::schedule::MeterSchedule;
use crate::backoff::Backoff;
use crate::clock::now_ms;
use crate::config::{Config, EndpointConfig, Transport};
use crate::model::{Detail, EndpointId, MeterId, PointValue, Quality, ReadingBatch};
use crate::profiles::codec::decode_point;
use crate::profiles::codec::scale_raw;
use crate::profiles::dlt645::Address;
use crate::sources::bus::dtu::{DtuConn, DtuHub};
use crate::sources::dlt645::client::{Dlt645Reader, Reading};
use crate::sources::dlt645::frame::{Question as DltQuestion, error_detail};
use crate::sources::{Input, SourceContext};
use crate::telemetry::Stats;
use crate::telemetry::{PollOutcome, StatusBoard};

/// Modbus exception codes that say the address range is not acceptable:
/// a merged read is then split into one read per point.
const ILLEGAL_DATA_ADDRESS: u8 = 2;
const ILLEGAL_DATA_VALUE: u8 = 3;

/// Point values after which a round's batch goes to the pipeline before
/// the round ends (256 KiB of values, plus the meter that crossed it): a
/// round of small meters, or of ten 1 000-point devices, still travels as
/// one batch, while devices with thousands of points do not hold a whole
/// round in memory.
const HANDOVER_VALUES: usize = 16_384;

/// One meter as the poller sees it.
struct PolledMeter {
    id: MeterId,
    unit: u8,
    pt: f64,
    ct: f64,
    profile: usize,
    /// The planned reads, shared by every meter of the same profile on this
    /// endpoint until a refused read makes this meter's copy its own.
    reads: Arc<Vec<PlannedRead>>,
    /// DL/T 645 meters: the address, and the points read one DI each
    /// (indexes into the profile's points); `reads` is then empty.
    dlt645: Option<(Address, Vec<u16>)>,
    schedule: MeterSchedule,
    /// Whether the last poll got any answer, for the `meters_up` gauge.
    up: bool,
}

impl PolledMeter {
    /// Requests one poll makes: planned Modbus reads, or one per DI.
    fn requests(&self) -> usize {
        self.dlt645
            .as_ref()
            .map_or(self.reads.len(), |(_, points)| points.len())
    }
}

/// Polls every meter of one endpoint until `shutdown`.
pub struct EndpointPoller {
    config: Arc<Config>,
    endpoint: EndpointId,
    meters: Vec<PolledMeter>,
    out: mpsc::Sender<Input>,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    dtu: Arc<DtuHub>,
    /// Where this endpoint's DTU connections arrive (DTU endpoints only).
    dtu_rx: Option<mpsc::Receiver<DtuConn>>,
    wire: Option<ModbusLink>,
    backoff: Backoff,
    /// No connection attempt before this instant (reconnect backoff).
    retry_at: Option<Instant>,
    /// Last "pipeline full" warning, to rate-limit it.
    last_stall_warn: Option<Instant>,
    /// Whether "DTU not connected" was logged since it last was.
    dtu_down_logged: bool,
    /// Scratch of DL/T 645 reads on this bus.
    dlt645: Dlt645Reader,
    /// Point values of the meter being polled: one buffer for the endpoint,
    /// since its meters are polled one after another.
    scratch: Vec<PointValue>,
}

/// What happened to one request.
enum ReadOutcome {
    Data,
    /// The device answered with an exception; the read's points are marked.
    Exception(u8),
    /// An answer that does not answer the request (a failed check); its
    /// points are marked with the detail, the link is kept.
    Rejected,
    /// No usable answer and the link is gone or out of step; the meter's
    /// remaining reads are skipped this slot.
    LinkLost {
        /// Something came back, just not an answer.
        protocol: bool,
    },
    /// No answer in time on a link that stays up.
    Timeout,
    /// A DL/T 645 error answer; the point is marked with its reason.
    DeviceError,
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
            dtu,
        } = ctx.clone();
        let ep = &config.endpoints[endpoint.index()];
        let limits = super::timing::plan_limits(ep);
        let now = now_ms();
        // One plan per profile: meters of one profile share it (memory per
        // meter matters at 100 000 meters).
        let mut plans: std::collections::HashMap<usize, Arc<Vec<PlannedRead>>> =
            std::collections::HashMap::new();
        let meters = config
            .meters_on(endpoint)
            .map(|(id, m)| {
                let profile = &config.profiles[m.profile.index()];
                let dlt645 = m.dlt645().map(|(_, address)| {
                    let points = (0..profile.points.len())
                        .filter(|&i| profile.points[i].dlt645.is_some())
                        .map(|i| i as u16)
                        .collect();
                    (address, points)
                });
                PolledMeter {
                    id,
                    unit: m.modbus().map_or(0, |(_, unit)| unit),
                    pt: m.pt,
                    ct: m.ct,
                    profile: m.profile.index(),
                    reads: if dlt645.is_some() {
                        Arc::new(Vec::new())
                    } else {
                        Arc::clone(
                            plans
                                .entry(m.profile.index())
                                .or_insert_with(|| Arc::new(plan(&profile.points, limits))),
                        )
                    },
                    dlt645,
                    schedule: MeterSchedule::starting_at(now, m.poll_interval.as_millis() as i64),
                    up: false,
                }
            })
            .collect();
        let backoff = Backoff::new(ep.reconnect_initial, ep.reconnect_max);
        let dtu_rx = dtu.take_receiver(endpoint);
        EndpointPoller {
            config,
            endpoint,
            meters,
            out,
            stats,
            board,
            dtu,
            dtu_rx,
            wire: None,
            backoff,
            retry_at: None,
            last_stall_warn: None,
            dtu_down_logged: false,
            dlt645: Dlt645Reader::default(),
            scratch: Vec::new(),
        }
    }

    fn endpoint_config(&self) -> &EndpointConfig {
        &self.config.endpoints[self.endpoint.index()]
    }

    /// Number of requests one round of every meter needs (after planning).
    #[must_use]
    pub fn requests_per_round(&self) -> usize {
        self.meters.iter().map(PolledMeter::requests).sum()
    }

    /// Runs until `shutdown` is cancelled or the downstream channel closes.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.meters.is_empty() {
            return;
        }
        let ep = self.endpoint_config();
        info!(
            endpoint = %ep.id,
            transport = ep.transport.name(),
            addr = %ep.address(),
            meters = self.meters.len(),
            requests_per_round = self.requests_per_round(),
            "polling endpoint"
        );
        super::timing::publish(&self.config, self.endpoint, &self.board);
        'rounds: loop {
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
                // A DTU that (re)connects meanwhile is taken at once, so
                // its old connection does not linger until the next slot.
                let dtu = async {
                    match self.dtu_rx.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    conn = dtu => match conn {
                        Some(conn) => self.attach_dtu(conn),
                        None => self.dtu_rx = None,
                    },
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let round_started = Instant::now();
            let mut batch = ReadingBatch::with_capacity(self.meters.len(), 16);
            let mut polled = false;
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
                polled = true;
                let done = now_ms();
                if self.meters[i].schedule.overran(due.slot_ms, done) {
                    self.stats.overruns.fetch_add(1, Ordering::Relaxed);
                    self.board.overrun(self.endpoint);
                }
                // Large meters are handed over as they are read, so the
                // pipeline works beside the poller instead of after the
                // round, on a batch that stays in the caches.
                if batch.values.len() >= HANDOVER_VALUES {
                    let full = std::mem::replace(&mut batch, ReadingBatch::with_capacity(16, 16));
                    if !self.hand_over(full).await {
                        break 'rounds;
                    }
                }
            }
            if !polled {
                continue;
            }
            self.board
                .round_done(self.endpoint, round_started.elapsed());
            if !batch.is_empty() && !self.hand_over(batch).await {
                break;
            }
        }
        debug!(endpoint = %self.endpoint_config().id, "poller stopped");
    }

    /// Sends `batch` to the pipeline. Backpressure: a full pipeline makes
    /// this await, and the slots that pass meanwhile are counted as missed
    /// on the next round. The stall itself is counted and logged as it
    /// starts, so a long one is visible while it lasts, not only
    /// afterwards. False when the pipeline is gone.
    async fn hand_over(&mut self, batch: ReadingBatch) -> bool {
        let input = match self.out.try_send(Input::fire_and_forget(batch)) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
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
        self.out.send(input).await.is_ok()
    }

    /// Takes a newly registered DTU connection; it replaces the current one.
    fn attach_dtu(&mut self, conn: DtuConn) {
        let ep = &self.config.endpoints[self.endpoint.index()];
        if self.wire.is_some() {
            self.stats.dtu_replaced.fetch_add(1, Ordering::Relaxed);
            info!(endpoint = %ep.id, peer = %conn.peer, "DTU reconnected; the new connection replaces the old");
        } else {
            info!(endpoint = %ep.id, peer = %conn.peer, "DTU connected");
        }
        self.wire = Some(connect::from_dtu(conn, ep));
        self.dtu.set_connected(self.endpoint, true);
        self.dtu_down_logged = false;
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes sure the wire is open, honouring the reconnect backoff. `Err`
    /// says why no request can be sent: [`Detail::NOT_CONNECTED`] for a
    /// DTU that has not dialled in, [`Detail::NONE`] while dialling fails.
    async fn ensure_connected(&mut self) -> Result<(), Detail> {
        if let Some(rx) = self.dtu_rx.as_mut() {
            // The newest registered connection wins.
            let mut newest = None;
            while let Ok(conn) = rx.try_recv() {
                if newest.is_some() {
                    self.stats.dtu_replaced.fetch_add(1, Ordering::Relaxed);
                }
                newest = Some(conn);
            }
            if let Some(conn) = newest {
                self.attach_dtu(conn);
            }
        }
        if self.wire.is_some() {
            return Ok(());
        }
        let ep = self.endpoint_config().clone();
        if matches!(ep.transport, Transport::Dtu(_)) {
            if !self.dtu_down_logged {
                warn!(endpoint = %ep.id, dtu = %ep.address(), "DTU not connected; its meters are down (not_connected) until it dials in");
                self.dtu_down_logged = true;
            }
            return Err(Detail::NOT_CONNECTED);
        }
        if let Some(at) = self.retry_at
            && Instant::now() < at
        {
            return Err(Detail::NONE);
        }
        match connect::open(&ep).await {
            Ok(wire) => {
                self.wire = Some(wire);
                self.backoff.reset();
                self.retry_at = None;
                self.board.set_backoff(self.endpoint, None);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                debug!(endpoint = %ep.id, "connected");
                Ok(())
            }
            Err(e) => {
                self.connect_failed(&ep, &e.to_string());
                Err(Detail::NONE)
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
            transport = ep.transport.name(),
            addr = %ep.address(),
            error = why,
            retry_in_ms = delay.as_millis() as u64,
            "cannot open the endpoint's wire"
        );
    }

    /// Drops the wire after a link failure; the next request reconnects
    /// at once (the link worked until now), later failures back off. A DTU
    /// waits for its DTU to dial in again.
    fn drop_connection(&mut self) {
        if self.wire.take().is_some() && self.dtu_rx.is_some() {
            self.dtu.set_connected(self.endpoint, false);
        }
    }

    /// Polls one meter for `slot_ms` and appends its reading to `batch`.
    async fn poll_meter(&mut self, idx: usize, slot_ms: i64, batch: &mut ReadingBatch) {
        let n_points = self.config.profiles[self.meters[idx].profile].points.len();
        self.scratch.clear();
        self.scratch
            .resize(n_points, PointValue::missing(Quality::TIMEOUT));
        let started = Instant::now();
        let mut answered = false;
        let mut outcome = PollOutcome::Ok;
        let mut r = 0;
        while r < self.meters[idx].requests() {
            if let Err(detail) = self.ensure_connected().await {
                self.scratch
                    .fill(PointValue::failed(Quality::TIMEOUT, detail));
                outcome = PollOutcome::Timeout;
                break;
            }
            let read = if self.meters[idx].dlt645.is_some() {
                self.do_dlt645_read(idx, r).await
            } else {
                self.do_read(idx, r).await
            };
            match read {
                ReadOutcome::Data => answered = true,
                ReadOutcome::DeviceError => {
                    answered = true;
                    outcome = PollOutcome::Exception;
                }
                ReadOutcome::Exception(code) => {
                    answered = true;
                    outcome = PollOutcome::Exception;
                    let m = &self.meters[idx];
                    let read = &m.reads[r];
                    let splittable = matches!(code, ILLEGAL_DATA_ADDRESS | ILLEGAL_DATA_VALUE)
                        && read.points.len() > 1;
                    if splittable {
                        let profile = &self.config.profiles[m.profile];
                        let parts = split(read, &profile.points);
                        let n = parts.len();
                        Arc::make_mut(&mut self.meters[idx].reads).splice(r..=r, parts);
                        self.stats.reads_split.fetch_add(1, Ordering::Relaxed);
                        info!(
                            meter = %self.config.meters[self.meters[idx].id.index()].id,
                            exception = code,
                            parts = n,
                            "merged read refused; reading its points separately from now on"
                        );
                        // Retry the same position, now the first split read.
                        continue;
                    }
                }
                ReadOutcome::Rejected => {
                    answered = true;
                    outcome = PollOutcome::ProtocolError;
                }
                ReadOutcome::Timeout => {
                    outcome = PollOutcome::Timeout;
                    break;
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
        if let Some(wire) = self.wire.as_mut() {
            Stats::add(&self.stats.bus_bytes_dropped, self.dlt645.take_dropped());
            Stats::add(&self.stats.bus_bytes_dropped, wire.take_dropped());
            Stats::add(&self.stats.dtu_packets_stripped, wire.take_stripped());
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
            .fetch_add(self.scratch.len() as u64, Ordering::Relaxed);
        batch.push(m.id, slot_ms.div_euclid(1000), lag_ms, &self.scratch);
    }

    /// Sends read `r` of meter `idx` and decodes its answer into the scratch values.
    async fn do_read(&mut self, idx: usize, r: usize) -> ReadOutcome {
        let timeout = self.endpoint_config().timeout;
        let Some(wire) = self.wire.as_mut() else {
            return ReadOutcome::LinkLost { protocol: false };
        };
        let m = &self.meters[idx];
        let read = &m.reads[r];
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let (start, count) = (read.start, read.count);
        let question = Question::read(read.kind, m.unit, start, count);
        let exchange = wire.read(&question, timeout).await;
        let profile = &self.config.profiles[m.profile];
        let meter_id = &self.config.meters[m.id.index()].id;
        match exchange {
            Exchange::Data => {
                self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                let words = wire.words();
                for slot in &read.points {
                    let point = &profile.points[usize::from(slot.point)];
                    let from = usize::from(slot.offset);
                    let to = from + usize::from(point.width());
                    // In range: the answer's count was checked against the plan.
                    self.scratch[usize::from(slot.point)] = words
                        .get(from..to)
                        .map_or(PointValue::missing(Quality::EXCEPTION), |regs| {
                            decode_point(point, regs, m.pt, m.ct)
                        });
                }
                ReadOutcome::Data
            }
            Exchange::Exception(code) => {
                self.stats
                    .requests_exception
                    .fetch_add(1, Ordering::Relaxed);
                for slot in &read.points {
                    self.scratch[usize::from(slot.point)] = PointValue::missing(Quality::EXCEPTION);
                }
                debug!(meter = %meter_id, unit = m.unit, start, count, exception = code, "modbus exception");
                ReadOutcome::Exception(code)
            }
            Exchange::Failed {
                quality,
                detail,
                link_lost,
            } => {
                for slot in &read.points {
                    self.scratch[usize::from(slot.point)] = PointValue::failed(quality, detail);
                }
                if quality == Quality::EXCEPTION {
                    warn!(
                        meter = %meter_id, unit = m.unit, start, count,
                        detail = detail.name().unwrap_or("exception"),
                        "the answer does not answer the request; no value"
                    );
                } else {
                    debug!(
                        meter = %meter_id, unit = m.unit, start, count,
                        timeout_ms = timeout.as_millis() as u64,
                        "modbus request timed out"
                    );
                }
                self.failed_read(quality, detail, link_lost)
            }
        }
    }

    /// Counts a read that got no fitting answer, drops the link when it is
    /// lost, and says how the poll goes on.
    fn failed_read(&mut self, quality: Quality, detail: Detail, link_lost: bool) -> ReadOutcome {
        if quality == Quality::EXCEPTION {
            self.stats
                .requests_exception
                .fetch_add(1, Ordering::Relaxed);
            if let Some(i) = Detail::NAMES.iter().position(|(d, _)| *d == detail) {
                self.stats.answers_rejected[i].fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.stats.requests_timeout.fetch_add(1, Ordering::Relaxed);
        }
        if link_lost {
            debug!(endpoint = %self.config.endpoints[self.endpoint.index()].id, "link dropped; reconnecting");
            self.drop_connection();
            return ReadOutcome::LinkLost {
                protocol: quality == Quality::EXCEPTION,
            };
        }
        if quality == Quality::EXCEPTION {
            ReadOutcome::Rejected
        } else {
            ReadOutcome::Timeout
        }
    }

    /// Reads DI `r` of DL/T 645 meter `idx` into the scratch values.
    async fn do_dlt645_read(&mut self, idx: usize, r: usize) -> ReadOutcome {
        let timeout = self.endpoint_config().timeout;
        let Some(wire) = self.wire.as_mut() else {
            return ReadOutcome::LinkLost { protocol: false };
        };
        let m = &self.meters[idx];
        let Some((address, points)) = &m.dlt645 else {
            return ReadOutcome::LinkLost { protocol: false };
        };
        let point_idx = usize::from(points[r]);
        let profile = &self.config.profiles[m.profile];
        let point = &profile.points[point_idx];
        let Some(d) = point.dlt645 else {
            return ReadOutcome::LinkLost { protocol: false };
        };
        let question = DltQuestion {
            address: *address,
            di: d.di,
            value_bytes: d.format.bytes,
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let reading = self
            .dlt645
            .read(
                wire.link_mut(),
                &question,
                d.format,
                usize::from(self.config.endpoints[self.endpoint.index()].dlt645_preamble),
                timeout,
            )
            .await;
        let meter_id = &self.config.meters[m.id.index()].id;
        match reading {
            Reading::Value(v) => {
                self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                self.scratch[point_idx] =
                    PointValue::new(scale_raw(point, v, m.pt, m.ct), crate::model::Quality::GOOD);
                ReadOutcome::Data
            }
            Reading::Error(code) => {
                self.stats
                    .requests_exception
                    .fetch_add(1, Ordering::Relaxed);
                let detail = error_detail(code);
                self.scratch[point_idx] = PointValue::failed(Quality::EXCEPTION, detail);
                debug!(meter = %meter_id, di = %d.di, error = code, detail = detail.name().unwrap_or(""), "DL/T 645 error answer");
                ReadOutcome::DeviceError
            }
            Reading::Failed {
                quality,
                detail,
                link_lost,
            } => {
                self.scratch[point_idx] = PointValue::failed(quality, detail);
                if quality == Quality::EXCEPTION {
                    warn!(
                        meter = %meter_id, address = %address, di = %d.di,
                        detail = detail.name().unwrap_or("exception"),
                        "the answer does not answer the request; no value"
                    );
                } else {
                    debug!(meter = %meter_id, address = %address, di = %d.di, "DL/T 645 request timed out");
                }
                self.failed_read(quality, detail, link_lost)
            }
        }
    }
}
