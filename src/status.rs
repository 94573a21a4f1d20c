//! The status board: what a running gateway knows about each meter,
//! endpoint and site right now, for the HTTP API, the status page,
//! `emgate status` and the Prometheus endpoint.
//!
//! [`Stats`] holds process-wide totals; the board adds the per-row view an
//! operator needs to answer "which meter of which enterprise is failing, since
//! when, and how complete is today". Rows are fixed when the board is built
//! from a [`Config`] (ids are indexes), so an update is an index plus a few
//! atomic adds or one short uncontended lock: no allocation per reading.
//!
//! Completeness of a site: for each meter, the distinct quarter-hour slots of
//! the current local day (site time zone) that had a reading with a value;
//! the site's completeness is the sum over its meters divided by meters ×
//! quarters elapsed today (the current one included). A meter's day resets
//! when its first reading of a new local day arrives; a meter with no reading
//! today counts zero.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::now_ms;
use crate::config::{Config, MeterSource};
use crate::model::{EndpointId, MeterId, PointValue, Quality};
use crate::stats::Stats;

/// Length of a completeness slot (the online monitoring rule's 15 minutes).
const QUARTER_SECS: i64 = 900;

/// Minimum share of today's quarter-hour slots the monitoring rule asks for.
pub const COMPLETENESS_TARGET: f64 = 0.9;

/// Share of `spool.max_bytes` below which a gateway with an unreachable
/// sink still counts as ready (it is buffering within limits).
const SPOOL_READY_SHARE: f64 = 0.9;

/// Upper bounds of the Modbus poll latency histogram, seconds.
const POLL_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the InfluxDB request latency histogram, seconds.
const WRITE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes of InfluxDB requests, the values of the `status` label.
const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "error"];

/// "No value" in the `i64` atomics.
const NONE: i64 = i64::MIN;

/// How one meter poll (all reads of one meter for one slot) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Every read answered with data.
    Ok,
    /// No answer: timeout, lost link, or no connection (backoff).
    Timeout,
    /// The device answered at least one read with a Modbus exception.
    Exception,
    /// The device answered garbage (wrong length, bad frame).
    ProtocolError,
}

/// One meter as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeterSnapshot {
    /// Meter id.
    pub id: String,
    /// Site id.
    pub site: String,
    /// Energy type tag (`electricity`, `water`, …).
    pub energy: String,
    /// Metering level (1..=3).
    pub level: u8,
    /// `modbus:<endpoint>/<unit>` or `mqtt:<broker>`.
    pub source: String,
    /// `up`, `down`, `bad` or `unknown` (see [`StatusBoard::meters`]).
    pub state: String,
    /// Slot of the last reading (any quality), Unix seconds.
    pub last_slot: Option<i64>,
    /// Seconds since the slot of the last good reading (a value, no quality
    /// bit other than `calibration`).
    pub last_good_age_secs: Option<i64>,
    /// Quality bits of the last reading (OR over its points).
    pub quality: u16,
    /// Reason words of those bits.
    pub reasons: Vec<String>,
    /// Failed polls in a row (Modbus meters).
    pub consecutive_failures: u32,
    /// End of the endpoint's reconnect backoff, Unix milliseconds, while it lasts.
    pub backoff_until: Option<i64>,
    /// Date the next verification is due (`YYYY-MM-DD`), when recorded.
    pub calibration_due: Option<String>,
    /// The due date has passed: readings carry the calibration bit.
    pub calibration_overdue: bool,
    /// Polls of this meter.
    pub polls: u64,
    /// Polls that got no answer.
    pub timeouts: u64,
    /// Polls answered with an exception or garbage.
    pub exceptions: u64,
}

/// One site as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SiteSnapshot {
    /// Site id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Meters of the site.
    pub meters: u32,
    /// Meters in state `up`.
    pub up: u32,
    /// Meters in state `down`.
    pub down: u32,
    /// Meters in state `bad`.
    pub bad: u32,
    /// Share (0..=1) of today's quarter-hour slots (site time zone) with a
    /// reading, over every meter of the site and the slots elapsed today.
    pub completeness_today: f64,
    /// `completeness_today` ≥ 0.9, the online monitoring rule.
    pub completeness_ok: bool,
}

/// Whether the gateway should receive traffic, and why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Readiness {
    /// Configuration loaded, sources started, and the sink reachable or the
    /// spool below 90 % of its maximum.
    pub ready: bool,
    /// What is missing; empty when ready.
    pub reasons: Vec<String>,
}

/// A Prometheus histogram with fixed buckets (counts per bucket, not
/// cumulative; cumulated when rendered).
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One more than `bounds`: the last is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Dynamic state of a meter, behind one short lock (one writer: its poller
/// or the validation stage; readers: the API).
#[derive(Debug, Default)]
struct MeterDyn {
    last_slot: Option<i64>,
    last_value_slot: Option<i64>,
    last_good_slot: Option<i64>,
    quality: Quality,
    consecutive_failures: u32,
    /// Local day the quarter bits belong to: `[day_start, day_end)`, Unix seconds.
    day_start: i64,
    day_end: i64,
    /// Quarter-hour slots of that day with a reading (a 25-hour day has 100).
    quarters: [u64; 2],
}

#[derive(Debug)]
struct MeterRow {
    id: String,
    site: usize,
    energy: &'static str,
    level: u8,
    source: String,
    endpoint: Option<usize>,
    interval_secs: i64,
    tz: jiff::tz::TimeZone,
    calibration_due: Option<(String, i64)>,
    polls: AtomicU64,
    timeouts: AtomicU64,
    exceptions: AtomicU64,
    readings: AtomicU64,
    points: AtomicU64,
    /// Points flagged per quality bit, order of [`Quality::REASONS`].
    flagged: [AtomicU64; 12],
    dynamic: Mutex<MeterDyn>,
}

#[derive(Debug)]
struct EndpointRow {
    id: String,
    polls: AtomicU64,
    responses: AtomicU64,
    timeouts: AtomicU64,
    exceptions: AtomicU64,
    protocol_errors: AtomicU64,
    overruns: AtomicU64,
    latency: Histogram,
    backoff_until_ms: AtomicI64,
}

/// Picks one counter of an endpoint row.
type EndpointCounter = fn(&EndpointRow) -> &AtomicU64;

#[derive(Debug)]
struct SiteRow {
    id: String,
    name: String,
    tz: jiff::tz::TimeZone,
    meters: Vec<usize>,
}

/// The live per-meter, per-endpoint and per-site state of a gateway.
/// `Send + Sync`; share it as `Arc<StatusBoard>`.
#[derive(Debug)]
pub struct StatusBoard {
    meters: Vec<MeterRow>,
    endpoints: Vec<EndpointRow>,
    sites: Vec<SiteRow>,
    spool_max_bytes: u64,
    sources_started: AtomicBool,
    sink_reachable: AtomicBool,
    influx_requests: [AtomicU64; 4],
    influx_lines: AtomicU64,
    influx_latency: Histogram,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `[start, end)` of the local day containing `t` (Unix seconds) in `tz`.
fn local_day(t: i64, tz: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
    let zoned = jiff::Timestamp::from_second(t)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let start = zoned.start_of_day().ok()?;
    let end = zoned.tomorrow().ok()?.start_of_day().ok()?;
    Some((start.timestamp().as_second(), end.timestamp().as_second()))
}

/// True when `q` means the meter is answering but its value is doubtful
/// (the calibration bit alone is an administrative state, not a bad value).
fn is_bad(q: Quality) -> bool {
    q.0 & !Quality::CALIBRATION.0 != 0
}

impl StatusBoard {
    /// A board with one row per meter, endpoint and site of `config`.
    #[must_use]
    pub fn new(config: &Config) -> StatusBoard {
        let meters = config
            .meters
            .iter()
            .map(|m| {
                let site = &config.sites[m.site.index()];
                let (source, endpoint) = match m.source {
                    MeterSource::Modbus { endpoint, unit_id } => (
                        format!("modbus:{}/{unit_id}", config.endpoints[endpoint.index()].id),
                        Some(endpoint.index()),
                    ),
                    MeterSource::Mqtt { broker } => {
                        (format!("mqtt:{}", config.mqtt[broker.index()].id), None)
                    }
                };
                MeterRow {
                    id: m.id.clone(),
                    site: m.site.index(),
                    energy: m.energy.as_str(),
                    level: m.level.0,
                    source,
                    endpoint,
                    interval_secs: (m.poll_interval.as_secs() as i64).max(1),
                    tz: site.timezone.clone(),
                    calibration_due: m
                        .calibration
                        .as_ref()
                        .map(|c| (c.due.to_string(), c.due_at)),
                    polls: AtomicU64::new(0),
                    timeouts: AtomicU64::new(0),
                    exceptions: AtomicU64::new(0),
                    readings: AtomicU64::new(0),
                    points: AtomicU64::new(0),
                    flagged: std::array::from_fn(|_| AtomicU64::new(0)),
                    dynamic: Mutex::new(MeterDyn::default()),
                }
            })
            .collect();
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| EndpointRow {
                id: e.id.clone(),
                polls: AtomicU64::new(0),
                responses: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                exceptions: AtomicU64::new(0),
                protocol_errors: AtomicU64::new(0),
                overruns: AtomicU64::new(0),
                latency: Histogram::new(&POLL_BUCKETS),
                backoff_until_ms: AtomicI64::new(NONE),
            })
            .collect();
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| SiteRow {
                id: s.id.clone(),
                name: s.name.clone(),
                tz: s.timezone.clone(),
                meters: config
                    .meters
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.site.index() == i)
                    .map(|(j, _)| j)
                    .collect(),
            })
            .collect();
        StatusBoard {
            meters,
            endpoints,
            sites,
            spool_max_bytes: config.spool.max_bytes,
            sources_started: AtomicBool::new(false),
            sink_reachable: AtomicBool::new(true),
            influx_requests: std::array::from_fn(|_| AtomicU64::new(0)),
            influx_lines: AtomicU64::new(0),
            influx_latency: Histogram::new(&WRITE_BUCKETS),
        }
    }

    // ----- updates -------------------------------------------------------

    /// Records one poll of `meter` through `endpoint` and how long it took.
    /// Also marks the sources as started.
    pub fn poll_result(
        &self,
        endpoint: EndpointId,
        meter: MeterId,
        outcome: PollOutcome,
        latency: Duration,
    ) {
        self.sources_started.store(true, Ordering::Relaxed);
        if let Some(e) = self.endpoints.get(endpoint.index()) {
            e.polls.fetch_add(1, Ordering::Relaxed);
            e.latency.observe(latency);
            let counter = match outcome {
                PollOutcome::Ok => &e.responses,
                PollOutcome::Timeout => &e.timeouts,
                PollOutcome::Exception => {
                    // The device answered, if with an exception.
                    e.responses.fetch_add(1, Ordering::Relaxed);
                    &e.exceptions
                }
                PollOutcome::ProtocolError => &e.protocol_errors,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(m) = self.meters.get(meter.index()) {
            m.polls.fetch_add(1, Ordering::Relaxed);
            match outcome {
                PollOutcome::Ok => {}
                PollOutcome::Timeout => {
                    m.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                PollOutcome::Exception | PollOutcome::ProtocolError => {
                    m.exceptions.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut d = lock(&m.dynamic);
            if outcome == PollOutcome::Ok {
                d.consecutive_failures = 0;
            } else {
                d.consecutive_failures = d.consecutive_failures.saturating_add(1);
            }
        }
    }

    /// Records a poll round of `endpoint` that started late because the
    /// previous one overran.
    pub fn overrun(&self, endpoint: EndpointId) {
        if let Some(e) = self.endpoints.get(endpoint.index()) {
            e.overruns.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one reading of `meter` for `slot` (Unix seconds) after
    /// validation: `quality` is the OR of its points' bits, `good` says it
    /// carried at least one value (it counts toward completeness).
    pub fn reading(&self, meter: MeterId, slot: i64, quality: Quality, good: bool) {
        let Some(m) = self.meters.get(meter.index()) else {
            return;
        };
        self.sources_started.store(true, Ordering::Relaxed);
        m.readings.fetch_add(1, Ordering::Relaxed);
        let mut d = lock(&m.dynamic);
        // Late readings must not move the "last" state backwards.
        if d.last_slot.is_none_or(|s| slot >= s) {
            d.last_slot = Some(slot);
            d.quality = quality;
        }
        if good {
            if d.last_value_slot.is_none_or(|s| slot > s) {
                d.last_value_slot = Some(slot);
            }
            if !is_bad(quality) && d.last_good_slot.is_none_or(|s| slot > s) {
                d.last_good_slot = Some(slot);
            }
            // A reading judged too late or in the future does not fill a slot.
            if !quality.contains(Quality::TIME) {
                if slot >= d.day_end
                    && let Some((start, end)) = local_day(slot, &m.tz)
                {
                    d.day_start = start;
                    d.day_end = end;
                    d.quarters = [0; 2];
                }
                if slot >= d.day_start && slot < d.day_end {
                    let q = ((slot - d.day_start) / QUARTER_SECS) as usize;
                    if q < 128 {
                        d.quarters[q / 64] |= 1 << (q % 64);
                    }
                }
            }
        }
    }

    /// [`StatusBoard::reading`] from a reading's point values, also
    /// counting its points per quality reason (one pass, no allocation).
    pub fn reading_values(&self, meter: MeterId, slot: i64, values: &[PointValue]) {
        let mut quality = Quality::GOOD;
        let mut any_value = false;
        if let Some(m) = self.meters.get(meter.index()) {
            m.points.fetch_add(values.len() as u64, Ordering::Relaxed);
            for v in values {
                quality |= v.quality;
                any_value |= v.has_value();
                if !v.quality.is_good() {
                    for ((bit, _), counter) in Quality::REASONS.iter().zip(&m.flagged) {
                        if v.quality.contains(*bit) {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        self.reading(meter, slot, quality, any_value);
    }

    /// Sets (or clears, with `None`) the end of `endpoint`'s reconnect
    /// backoff, Unix milliseconds.
    pub fn set_backoff(&self, endpoint: EndpointId, until_ms: Option<i64>) {
        if let Some(e) = self.endpoints.get(endpoint.index()) {
            e.backoff_until_ms
                .store(until_ms.unwrap_or(NONE), Ordering::Relaxed);
        }
    }

    /// Records one InfluxDB write request of `lines` lines: its HTTP status
    /// (`None`: transport error or timeout) and how long it took.
    pub fn influx_request(&self, status: Option<u16>, latency: Duration, lines: u64) {
        let class = match status {
            Some(200..=299) => 0,
            Some(400..=499) => 1,
            Some(500..=599) => 2,
            _ => 3,
        };
        self.influx_requests[class].fetch_add(1, Ordering::Relaxed);
        self.influx_lines.fetch_add(lines, Ordering::Relaxed);
        self.influx_latency.observe(latency);
    }

    /// Records whether the output answered the last request at all.
    pub fn set_sink_reachable(&self, ok: bool) {
        self.sink_reachable.store(ok, Ordering::Relaxed);
    }

    /// Records that the sources (pollers, broker clients) have been started;
    /// the first poll or reading marks it too.
    pub fn mark_started(&self) {
        self.sources_started.store(true, Ordering::Relaxed);
    }

    // ----- reads ---------------------------------------------------------

    /// Every meter, in configuration order, as of `now` (Unix seconds).
    ///
    /// State: `down` when the last poll failed or no reading with a value
    /// came for 3 intervals; `bad` when answering but the last reading has a
    /// quality bit other than `calibration`; `up` when the last reading is
    /// good; `unknown` before anything happened.
    #[must_use]
    pub fn meters(&self, now: i64) -> Vec<MeterSnapshot> {
        (0..self.meters.len())
            .map(|i| self.snapshot(i, now))
            .collect()
    }

    /// The meter with id `id`, as of `now` (Unix seconds).
    #[must_use]
    pub fn meter(&self, id: &str, now: i64) -> Option<MeterSnapshot> {
        let i = self.meters.iter().position(|m| m.id == id)?;
        Some(self.snapshot(i, now))
    }

    fn state(&self, i: usize, now: i64) -> &'static str {
        let m = &self.meters[i];
        let d = lock(&m.dynamic);
        Self::state_of(m, &d, now)
    }

    fn state_of(m: &MeterRow, d: &MeterDyn, now: i64) -> &'static str {
        if d.consecutive_failures > 0 {
            return "down";
        }
        match d.last_value_slot {
            None if d.last_slot.is_some() => "down",
            None => "unknown",
            Some(s) if now - s > 3 * m.interval_secs => "down",
            Some(_) if is_bad(d.quality) => "bad",
            Some(_) => "up",
        }
    }

    fn snapshot(&self, i: usize, now: i64) -> MeterSnapshot {
        let m = &self.meters[i];
        let d = lock(&m.dynamic);
        let backoff_until = m
            .endpoint
            .map(|e| self.endpoints[e].backoff_until_ms.load(Ordering::Relaxed))
            .filter(|&t| t != NONE && t > now.saturating_mul(1000));
        MeterSnapshot {
            id: m.id.clone(),
            site: self.sites[m.site].id.clone(),
            energy: m.energy.to_owned(),
            level: m.level,
            source: m.source.clone(),
            state: Self::state_of(m, &d, now).to_owned(),
            last_slot: d.last_slot,
            last_good_age_secs: d.last_good_slot.map(|s| (now - s).max(0)),
            quality: d.quality.0,
            reasons: d.quality.reasons().map(str::to_owned).collect(),
            consecutive_failures: d.consecutive_failures,
            backoff_until,
            calibration_due: m.calibration_due.as_ref().map(|(s, _)| s.clone()),
            calibration_overdue: m.calibration_due.as_ref().is_some_and(|(_, at)| now >= *at),
            polls: m.polls.load(Ordering::Relaxed),
            timeouts: m.timeouts.load(Ordering::Relaxed),
            exceptions: m.exceptions.load(Ordering::Relaxed),
        }
    }

    /// Completeness of today's quarter-hour slots of site `s` as of `now`.
    fn completeness(&self, s: &SiteRow, now: i64) -> f64 {
        if s.meters.is_empty() {
            return 1.0;
        }
        let Some((start, _)) = local_day(now, &s.tz) else {
            return 0.0;
        };
        let elapsed = ((now - start).max(0) / QUARTER_SECS + 1) as u64;
        let mut filled = 0u64;
        for &i in &s.meters {
            let d = lock(&self.meters[i].dynamic);
            if d.day_start == start {
                filled += u64::from(d.quarters[0].count_ones() + d.quarters[1].count_ones());
            }
        }
        (filled as f64 / (elapsed * s.meters.len() as u64) as f64).min(1.0)
    }

    /// Every site, in configuration order, as of `now` (Unix seconds).
    #[must_use]
    pub fn sites(&self, now: i64) -> Vec<SiteSnapshot> {
        self.sites
            .iter()
            .map(|s| {
                let (mut up, mut down, mut bad) = (0, 0, 0);
                for &i in &s.meters {
                    match self.state(i, now) {
                        "up" => up += 1,
                        "down" => down += 1,
                        "bad" => bad += 1,
                        _ => {}
                    }
                }
                let completeness_today = self.completeness(s, now);
                SiteSnapshot {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    meters: s.meters.len() as u32,
                    up,
                    down,
                    bad,
                    completeness_today,
                    completeness_ok: completeness_today >= COMPLETENESS_TARGET,
                }
            })
            .collect()
    }

    /// Meters per state as of `now`: `(up, down, bad, unknown)`.
    #[must_use]
    pub fn state_counts(&self, now: i64) -> (u32, u32, u32, u32) {
        let mut c = (0, 0, 0, 0);
        for i in 0..self.meters.len() {
            match self.state(i, now) {
                "up" => c.0 += 1,
                "down" => c.1 += 1,
                "bad" => c.2 += 1,
                _ => c.3 += 1,
            }
        }
        c
    }

    /// Ready: the configuration is loaded (a board exists), the sources
    /// started, and the sink is reachable or the spool below 90 % of its
    /// maximum.
    #[must_use]
    pub fn readiness(&self, stats: &Stats) -> Readiness {
        let mut reasons = Vec::new();
        if !self.sources_started.load(Ordering::Relaxed) {
            reasons.push("sources not started".to_owned());
        }
        if !self.sink_reachable.load(Ordering::Relaxed) {
            let bytes = Stats::get(&stats.spool_bytes);
            let limit = self.spool_max_bytes as f64 * SPOOL_READY_SHARE;
            if bytes as f64 >= limit {
                reasons.push(format!(
                    "output unreachable and spool at {bytes} of {} bytes (≥ 90 %)",
                    self.spool_max_bytes
                ));
            }
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// Whether the output answered its last request.
    #[must_use]
    pub fn sink_reachable(&self) -> bool {
        self.sink_reachable.load(Ordering::Relaxed)
    }

    /// Appends every metric in the Prometheus text exposition format 0.0.4.
    ///
    /// Cardinality is bounded by the configuration: per-endpoint series
    /// (label `endpoint`), per-meter series (labels `meter`, `site`; flagged
    /// points add `reason`, one of the 12 quality reasons, so at most
    /// meters × 12 of those), per-site series (label `site`). There is no
    /// per-point label: point-level detail lives in InfluxDB, not here.
    /// Labelled counters of reasons appear once they are non-zero.
    pub fn render_metrics(&self, stats: &Stats, out: &mut String) {
        let now_ms = now_ms();
        let now = now_ms.div_euclid(1000);
        let mut w = Writer { out };

        // Modbus, per endpoint.
        let ep_counters: [(&str, &str, EndpointCounter); 6] = [
            (
                "emgate_modbus_polls_total",
                "Meter polls (all reads of one meter for one slot).",
                |e| &e.polls,
            ),
            (
                "emgate_modbus_responses_total",
                "Meter polls the device answered (data or exception).",
                |e| &e.responses,
            ),
            (
                "emgate_modbus_timeouts_total",
                "Meter polls without an answer (timeout, lost link, no connection).",
                |e| &e.timeouts,
            ),
            (
                "emgate_modbus_exceptions_total",
                "Meter polls answered with a Modbus exception.",
                |e| &e.exceptions,
            ),
            (
                "emgate_modbus_protocol_errors_total",
                "Meter polls answered with garbage.",
                |e| &e.protocol_errors,
            ),
            (
                "emgate_modbus_overruns_total",
                "Poll slots that started late because the previous round overran.",
                |e| &e.overruns,
            ),
        ];
        for (name, help, get) in ep_counters {
            w.header(name, help, "counter");
            for e in &self.endpoints {
                w.sample(name, &[("endpoint", &e.id)], get(e).load(Ordering::Relaxed));
            }
        }
        let name = "emgate_modbus_backoff";
        w.header(name, "1 while the endpoint waits to reconnect.", "gauge");
        for e in &self.endpoints {
            let until = e.backoff_until_ms.load(Ordering::Relaxed);
            w.sample(
                name,
                &[("endpoint", &e.id)],
                u64::from(until != NONE && until > now_ms),
            );
        }
        let name = "emgate_modbus_poll_duration_seconds";
        w.header(name, "Time to poll one meter (all its reads).", "histogram");
        for e in &self.endpoints {
            w.histogram(name, &[("endpoint", &e.id)], &e.latency);
        }
        let global: [(&str, &str, &AtomicU64); 6] = [
            (
                "emgate_modbus_requests_total",
                "Modbus requests sent.",
                &stats.requests,
            ),
            (
                "emgate_modbus_reads_split_total",
                "Merged reads split after an exception.",
                &stats.reads_split,
            ),
            (
                "emgate_modbus_missed_slots_total",
                "Poll slots skipped because a round took longer than its interval.",
                &stats.missed_slots,
            ),
            (
                "emgate_modbus_connects_total",
                "Modbus connections established.",
                &stats.connects,
            ),
            (
                "emgate_modbus_connect_failures_total",
                "Modbus connection attempts or links that failed.",
                &stats.connect_failures,
            ),
            (
                "emgate_pipeline_stalls_total",
                "Poll rounds that waited for room downstream.",
                &stats.pipeline_stalls,
            ),
        ];
        for (name, help, c) in global {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        // Meters.
        let name = "emgate_meter_readings_total";
        w.header(name, "Readings of the meter after validation.", "counter");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                m.readings.load(Ordering::Relaxed),
            );
        }
        let name = "emgate_meter_points_total";
        w.header(
            name,
            "Point values of the meter after validation.",
            "counter",
        );
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                m.points.load(Ordering::Relaxed),
            );
        }
        let name = "emgate_meter_points_flagged_total";
        w.header(
            name,
            "Point values of the meter flagged, per quality reason.",
            "counter",
        );
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            for ((_, reason), c) in Quality::REASONS.iter().zip(&m.flagged) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    w.sample(
                        name,
                        &[("meter", &m.id), ("site", site), ("reason", reason)],
                        n,
                    );
                }
            }
        }
        let name = "emgate_meter_up";
        w.header(name, "1 when the meter's state is up.", "gauge");
        for (i, m) in self.meters.iter().enumerate() {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                u64::from(self.state(i, now) == "up"),
            );
        }
        let name = "emgate_meter_consecutive_failures";
        w.header(name, "Failed polls of the meter in a row.", "gauge");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            let n = lock(&m.dynamic).consecutive_failures;
            w.sample(name, &[("meter", &m.id), ("site", site)], u64::from(n));
        }
        let name = "emgate_meter_calibration_overdue";
        w.header(name, "1 when the meter's verification is overdue.", "gauge");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            let overdue = m.calibration_due.as_ref().is_some_and(|(_, at)| now >= *at);
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                u64::from(overdue),
            );
        }
        let (up, down, bad, unknown) = self.state_counts(now);
        let name = "emgate_meters";
        w.header(name, "Meters per state.", "gauge");
        for (state, n) in [
            ("up", up),
            ("down", down),
            ("bad", bad),
            ("unknown", unknown),
        ] {
            w.sample(name, &[("state", state)], u64::from(n));
        }

        // Sites.
        let name = "emgate_site_completeness_ratio";
        w.header(
            name,
            "Share of today's quarter-hour slots (site time zone) with a reading, all meters.",
            "gauge",
        );
        for s in &self.sites {
            w.sample_f64(name, &[("site", &s.id)], self.completeness(s, now));
        }

        // Pipeline totals.
        let totals: [(&str, &str, &AtomicU64); 3] = [
            (
                "emgate_readings_total",
                "Readings produced by all sources.",
                &stats.readings,
            ),
            (
                "emgate_points_total",
                "Point values produced by all sources.",
                &stats.points,
            ),
            (
                "emgate_points_flagged_any_total",
                "Point values with any quality bit after validation.",
                &stats.points_flagged,
            ),
        ];
        for (name, help, c) in totals {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }
        let name = "emgate_points_flagged_total";
        w.header(
            name,
            "Point values flagged after validation, per quality reason.",
            "counter",
        );
        for ((_, reason), c) in Quality::REASONS.iter().zip(&stats.quality_counts) {
            w.sample(name, &[("reason", reason)], Stats::get(c));
        }

        // MQTT.
        let mqtt: [(&str, &str, &AtomicU64); 6] = [
            (
                "emgate_mqtt_messages_received_total",
                "MQTT messages received (before decoding).",
                &stats.mqtt_messages,
            ),
            (
                "emgate_mqtt_readings_total",
                "Readings decoded from MQTT messages.",
                &stats.mqtt_readings,
            ),
            (
                "emgate_mqtt_messages_acked_total",
                "QoS 1/2 messages acknowledged to the broker.",
                &stats.mqtt_acked,
            ),
            (
                "emgate_mqtt_connects_total",
                "Broker connections established.",
                &stats.mqtt_connects,
            ),
            (
                "emgate_mqtt_disconnects_total",
                "Broker connections lost or refused.",
                &stats.mqtt_disconnects,
            ),
            (
                "emgate_mqtt_subscriptions_total",
                "Subscriptions the brokers accepted.",
                &stats.mqtt_subscriptions,
            ),
        ];
        for (name, help, c) in mqtt {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }
        let name = "emgate_mqtt_messages_rejected_total";
        w.header(name, "MQTT messages rejected, per reason.", "counter");
        for (reason, n) in stats.mqtt_rejections_by_reason() {
            w.sample(name, &[("reason", reason)], n);
        }

        // Aggregation.
        let agg: [(&str, &str, &AtomicU64); 6] = [
            (
                "emgate_windows_emitted_total",
                "Meter windows written.",
                &stats.windows_emitted,
            ),
            (
                "emgate_windows_reemitted_total",
                "Meter windows written again after a late reading changed them.",
                &stats.windows_reemitted,
            ),
            (
                "emgate_site_windows_emitted_total",
                "Site roll-up points written.",
                &stats.site_windows_emitted,
            ),
            (
                "emgate_late_readings_accepted_total",
                "Late readings taken into their windows.",
                &stats.late_accepted,
            ),
            (
                "emgate_late_readings_rejected_total",
                "Readings too late for their windows, late repeats and late counters out of order.",
                &stats.late_rejected,
            ),
            (
                "emgate_site_windows_too_late_total",
                "Final meter windows that came after their site window closed.",
                &stats.site_too_late,
            ),
        ];
        for (name, help, c) in agg {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        // Spool.
        let gauges: [(&str, &str, u64); 4] = [
            (
                "emgate_spool_bytes",
                "Unacknowledged bytes in the spool.",
                Stats::get(&stats.spool_bytes),
            ),
            (
                "emgate_spool_max_bytes",
                "Configured spool size limit.",
                self.spool_max_bytes,
            ),
            (
                "emgate_spool_records",
                "Unacknowledged records in the spool.",
                Stats::get(&stats.spool_records),
            ),
            (
                "emgate_spool_oldest_record_age_seconds",
                "Age of the oldest unacknowledged record (0 when empty).",
                Stats::get(&stats.spool_oldest_age_secs),
            ),
        ];
        for (name, help, v) in gauges {
            w.header(name, help, "gauge");
            w.sample(name, &[], v);
        }
        let spool: [(&str, &str, &AtomicU64); 4] = [
            (
                "emgate_spool_lines_appended_total",
                "Lines appended to the spool.",
                &stats.lines_spooled,
            ),
            (
                "emgate_spool_full_waits_total",
                "Times the pipeline waited for a full spool (block policy).",
                &stats.spool_full_waits,
            ),
            (
                "emgate_spool_dropped_lines_total",
                "Lines dropped from a full spool (drop_oldest policy).",
                &stats.lines_dropped,
            ),
            (
                "emgate_spool_lines_not_spooled_total",
                "Lines given up at shutdown because the spool stayed full.",
                &stats.lines_not_spooled,
            ),
        ];
        for (name, help, c) in spool {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        // InfluxDB (or the file output).
        let name = "emgate_influx_requests_total";
        w.header(
            name,
            "Write requests, per HTTP status class (error: no answer).",
            "counter",
        );
        for (class, c) in STATUS_CLASSES.iter().zip(&self.influx_requests) {
            w.sample(name, &[("status", class)], c.load(Ordering::Relaxed));
        }
        let name = "emgate_influx_request_duration_seconds";
        w.header(name, "Duration of write requests.", "histogram");
        w.histogram(name, &[], &self.influx_latency);
        let out: [(&str, &str, u64); 4] = [
            (
                "emgate_influx_lines_sent_total",
                "Lines sent in write requests (retries included).",
                self.influx_lines.load(Ordering::Relaxed),
            ),
            (
                "emgate_influx_points_written_total",
                "Lines the output acknowledged.",
                Stats::get(&stats.lines_written),
            ),
            (
                "emgate_influx_retries_total",
                "Write requests that failed and were retried.",
                Stats::get(&stats.write_retries),
            ),
            (
                "emgate_influx_dead_lettered_lines_total",
                "Lines the output rejected for good (in the dead-letter file).",
                Stats::get(&stats.lines_rejected),
            ),
        ];
        for (name, help, v) in out {
            w.header(name, help, "counter");
            w.sample(name, &[], v);
        }
        let name = "emgate_influx_reachable";
        w.header(
            name,
            "1 when the output answered its last request.",
            "gauge",
        );
        w.sample(name, &[], u64::from(self.sink_reachable()));
        let name = "emgate_ready";
        w.header(name, "1 when the gateway is ready (see /ready).", "gauge");
        w.sample(name, &[], u64::from(self.readiness(stats).ready));
    }
}

/// Writes exposition lines into a `String` (writing to a `String` cannot fail).
struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().copied().chain(extra).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(("le", &le)));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(self.out, " {sum}");
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_cumulate() {
        let mut out = String::new();
        let mut w = Writer { out: &mut out };
        w.header("emgate_x_total", "Help.", "counter");
        w.sample("emgate_x_total", &[("a", "q\"b\\c\nd"), ("b", "2")], 7);
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        w.header("emgate_d_seconds", "Durations.", "histogram");
        w.histogram("emgate_d_seconds", &[("endpoint", "e")], &h);
        assert_eq!(
            out,
            "# HELP emgate_x_total Help.\n\
             # TYPE emgate_x_total counter\n\
             emgate_x_total{a=\"q\\\"b\\\\c\\nd\",b=\"2\"} 7\n\
             # HELP emgate_d_seconds Durations.\n\
             # TYPE emgate_d_seconds histogram\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"0.1\"} 1\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"1\"} 2\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"+Inf\"} 3\n\
             emgate_d_seconds_sum{endpoint=\"e\"} 3.55\n\
             emgate_d_seconds_count{endpoint=\"e\"} 3\n"
        );
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let config = crate::config::load_str_for_tests("[gateway]\nid = \"gw\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let board = StatusBoard::new(&config);
        let mut out = String::new();
        board.render_metrics(&Stats::default(), &mut out);
        let mut families = std::collections::BTreeMap::<&str, (u32, u32)>::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                families
                    .entry(rest.split(' ').next().unwrap_or(""))
                    .or_default()
                    .0 += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                families
                    .entry(rest.split(' ').next().unwrap_or(""))
                    .or_default()
                    .1 += 1;
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap_or_default();
                assert!(series.starts_with("emgate_"), "{line}");
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(families.len() > 40, "{}", families.len());
        for (name, counts) in families {
            assert_eq!(counts, (1, 1), "{name}");
        }
    }
}
