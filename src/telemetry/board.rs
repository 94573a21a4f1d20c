//! The status board: what a running gateway knows about each meter,
//! endpoint and site right now, for the HTTP API, the status page,
//! `emgate status` and the Prometheus endpoint.
//!
//! [`Stats`](super::Stats) holds process-wide totals; the board adds the per-row view an
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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use crate::config::{Config, MeterSource};
use crate::model::{Detail, EndpointId, MeterId, PointValue, Quality};

/// Length of a completeness slot (the online monitoring rule's 15 minutes).
pub(super) const QUARTER_SECS: i64 = 900;

/// Minimum share of today's quarter-hour slots the monitoring rule asks for.
pub const COMPLETENESS_TARGET: f64 = 0.9;

/// Share of `spool.max_bytes` below which a gateway with an unreachable
/// sink still counts as ready (it is buffering within limits).
pub(super) const SPOOL_READY_SHARE: f64 = 0.9;

/// Upper bounds of the Modbus poll latency histogram, seconds.
pub(super) const POLL_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the InfluxDB request latency histogram, seconds.
pub(super) const WRITE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes of InfluxDB requests, the values of the `status` label.
pub(super) const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "error"];

/// "No value" in the `i64` atomics.
pub(super) const NONE: i64 = i64::MIN;

/// "No value" in the `u64` atomics of durations and counts.
pub(super) const UNSET: u64 = u64::MAX;

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
    /// Reason words of those bits, then the source's detail when it gave
    /// one (`not_connected`, `wrong_count`, …; see [`crate::model::Detail`]).
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

/// One endpoint (bus) as the API shows it: its planned and measured round.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EndpointSnapshot {
    /// Endpoint id.
    pub id: String,
    /// `tcp`, `rtu_over_tcp`, `serial` or `dtu`.
    pub transport: String,
    /// Modbus meters polled through it.
    pub meters: u32,
    /// Requests of one planned round (every read of every meter), once the
    /// poller has planned them.
    pub requests: Option<u64>,
    /// Duration of the last poll round, milliseconds.
    pub round_ms: Option<f64>,
    /// Wire time of one round as planned (see `check-config`),
    /// milliseconds; `null` for `tcp` (no wire model).
    pub planned_round_ms: Option<f64>,
    /// The shortest poll interval of its meters, milliseconds.
    pub budget_ms: Option<u64>,
    /// Last round / budget (above 1: slots are missed).
    pub utilisation: Option<f64>,
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
pub(super) struct Histogram {
    pub(super) bounds: &'static [f64],
    /// One more than `bounds`: the last is `+Inf`.
    pub(super) counts: Vec<AtomicU64>,
    pub(super) sum_micros: AtomicU64,
}

impl Histogram {
    pub(super) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(super) fn observe(&self, d: Duration) {
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
pub(super) struct MeterDyn {
    pub(super) last_slot: Option<i64>,
    pub(super) last_value_slot: Option<i64>,
    pub(super) last_good_slot: Option<i64>,
    pub(super) quality: Quality,
    /// The source's detail of the last reading (the first point's that has one).
    pub(super) detail: Detail,
    pub(super) consecutive_failures: u32,
    /// Local day the quarter bits belong to: `[day_start, day_end)`, Unix seconds.
    pub(super) day_start: i64,
    pub(super) day_end: i64,
    /// Quarter-hour slots of that day with a reading (a 25-hour day has 100).
    pub(super) quarters: [u64; 2],
}

#[derive(Debug)]
pub(super) struct MeterRow {
    pub(super) id: String,
    pub(super) site: usize,
    pub(super) energy: &'static str,
    pub(super) level: u8,
    pub(super) source: String,
    pub(super) endpoint: Option<usize>,
    pub(super) interval_secs: i64,
    pub(super) tz: jiff::tz::TimeZone,
    pub(super) calibration_due: Option<(String, i64)>,
    pub(super) polls: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) exceptions: AtomicU64,
    pub(super) readings: AtomicU64,
    pub(super) points: AtomicU64,
    /// Points flagged per quality bit, order of [`Quality::REASONS`].
    pub(super) flagged: [AtomicU64; 12],
    pub(super) dynamic: Mutex<MeterDyn>,
}

#[derive(Debug)]
pub(super) struct EndpointRow {
    pub(super) id: String,
    /// `tcp`, `rtu_over_tcp`, `serial` or `dtu`.
    pub(super) transport: &'static str,
    /// Modbus meters polled through it.
    pub(super) meters: u32,
    /// The shortest poll interval of those meters; `None` without meters.
    pub(super) budget: Option<Duration>,
    /// Requests of one planned round ([`UNSET`]: not told yet).
    pub(super) planned_requests: AtomicU64,
    /// Wire time of one planned round, nanoseconds ([`UNSET`]: not told,
    /// or no wire model).
    pub(super) planned_round_nanos: AtomicU64,
    /// Duration of the last poll round, nanoseconds ([`UNSET`]: none yet).
    pub(super) last_round_nanos: AtomicU64,
    pub(super) polls: AtomicU64,
    pub(super) responses: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) exceptions: AtomicU64,
    pub(super) protocol_errors: AtomicU64,
    pub(super) overruns: AtomicU64,
    pub(super) latency: Histogram,
    pub(super) backoff_until_ms: AtomicI64,
}

/// Picks one counter of an endpoint row.
pub(super) type EndpointCounter = fn(&EndpointRow) -> &AtomicU64;

#[derive(Debug)]
pub(super) struct SiteRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) tz: jiff::tz::TimeZone,
    pub(super) meters: Vec<usize>,
}

/// The live per-meter, per-endpoint and per-site state of a gateway.
/// `Send + Sync`; share it as `Arc<StatusBoard>`.
#[derive(Debug)]
pub struct StatusBoard {
    pub(super) meters: Vec<MeterRow>,
    pub(super) endpoints: Vec<EndpointRow>,
    pub(super) sites: Vec<SiteRow>,
    pub(super) spool_max_bytes: u64,
    pub(super) sources_started: AtomicBool,
    pub(super) sink_reachable: AtomicBool,
    pub(super) influx_requests: [AtomicU64; 4],
    pub(super) influx_lines: AtomicU64,
    pub(super) influx_latency: Histogram,
    /// Boilers, by index, and the window sizes of their last windows.
    pub(super) boilers: Vec<super::boilers::BoilerRow>,
    pub(super) boiler_sizes: Vec<crate::pipeline::window::WindowSize>,
    /// `gateway.id` and its shard (K, N), for `emgate_gateway_info`.
    pub(super) gateway: (String, u32, u32),
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `[start, end)` of the local day containing `t` (Unix seconds) in `tz`.
pub(super) fn local_day(t: i64, tz: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
    let zoned = jiff::Timestamp::from_second(t)
        .ok()?
        .to_zoned_datetime(tz.clone());
    let start = zoned.start_of_day().ok()?;
    let end = zoned.tomorrow().ok()?.start_of_day().ok()?;
    Some((start.timestamp().as_second(), end.timestamp().as_second()))
}

/// `d` in nanoseconds, saturating below [`UNSET`] (585 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(UNSET - 1, |n| n.min(UNSET - 1))
}

/// True when `q` means the meter is answering but its value is doubtful
/// (the calibration bit alone is an administrative state, not a bad value).
pub(super) fn is_bad(q: Quality) -> bool {
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
                    MeterSource::Dlt645 { endpoint, address } => (
                        format!("dlt645:{}/{address}", config.endpoints[endpoint.index()].id),
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
            .enumerate()
            .map(|(i, e)| {
                let intervals = || {
                    config
                        .meters
                        .iter()
                        .filter(move |m| m.modbus().is_some_and(|(ep, _)| ep.index() == i))
                        .map(|m| m.poll_interval)
                };
                EndpointRow {
                    id: e.id.clone(),
                    transport: e.transport.name(),
                    meters: intervals().count() as u32,
                    budget: intervals().min(),
                    planned_requests: AtomicU64::new(UNSET),
                    planned_round_nanos: AtomicU64::new(UNSET),
                    last_round_nanos: AtomicU64::new(UNSET),
                    polls: AtomicU64::new(0),
                    responses: AtomicU64::new(0),
                    timeouts: AtomicU64::new(0),
                    exceptions: AtomicU64::new(0),
                    protocol_errors: AtomicU64::new(0),
                    overruns: AtomicU64::new(0),
                    latency: Histogram::new(&POLL_BUCKETS),
                    backoff_until_ms: AtomicI64::new(NONE),
                }
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
        let (boilers, boiler_sizes) = super::boilers::boiler_rows(config);
        StatusBoard {
            boilers,
            boiler_sizes,
            gateway: (
                config.gateway.id.clone(),
                config.gateway.shard.index,
                config.gateway.shard.count,
            ),
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

    /// Records that a poll round of `endpoint` (every meter that was due,
    /// one after the other) took `elapsed`: the bus's measured round time.
    pub fn round_done(&self, endpoint: EndpointId, elapsed: Duration) {
        if let Some(e) = self.endpoints.get(endpoint.index()) {
            e.last_round_nanos.store(nanos(elapsed), Ordering::Relaxed);
        }
    }

    /// Records what one round of `endpoint` was planned to cost: its
    /// `requests`, and their wire time (`None`: no wire model, `tcp`).
    pub fn set_planned_round(
        &self,
        endpoint: EndpointId,
        requests: usize,
        round: Option<Duration>,
    ) {
        if let Some(e) = self.endpoints.get(endpoint.index()) {
            e.planned_requests.store(requests as u64, Ordering::Relaxed);
            e.planned_round_nanos
                .store(round.map_or(UNSET, nanos), Ordering::Relaxed);
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
        let detail = values
            .iter()
            .map(|v| v.detail)
            .find(|d| *d != Detail::NONE)
            .unwrap_or_default();
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
        if let Some(m) = self.meters.get(meter.index()) {
            let mut d = lock(&m.dynamic);
            if d.last_slot == Some(slot) {
                d.detail = detail;
            }
        }
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
}

/// The status board of the running generation, swapped at each reload:
/// what the API reads. Cloning shares it.
#[derive(Clone)]
pub struct SharedBoard(Arc<RwLock<Arc<StatusBoard>>>);

impl SharedBoard {
    /// A handle on `board`.
    #[must_use]
    pub fn new(board: Arc<StatusBoard>) -> SharedBoard {
        SharedBoard(Arc::new(RwLock::new(board)))
    }

    /// The current board (cheap: one short read lock and an `Arc` clone).
    #[must_use]
    pub fn get(&self) -> Arc<StatusBoard> {
        // A panic while holding the lock cannot leave the `Arc` half written.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `board` the current one.
    pub fn replace(&self, board: Arc<StatusBoard>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = board;
    }
}

impl From<Arc<StatusBoard>> for SharedBoard {
    fn from(board: Arc<StatusBoard>) -> SharedBoard {
        SharedBoard::new(board)
    }
}
