//! The pure pipeline stages as the running gateway runs them (it lives in
//! `app` because it joins the configuration, the checkpoint files and the
//! telemetry to [`crate::pipeline`], which knows none of them).
//!
//! The validation stage: rules derived from
//! the configuration, the validator's state checkpointed to disk, and its
//! reason counters published to [`Stats`].
//!
//! Rules come from each meter's profile (`min`, `max`, `rollover`,
//! `max_rate_per_hour`, `spike_margin`, `frozen_after`, `rate_of`), then the
//! meter's own `[meters.rules.<point>]` overrides, `calibration.due` and
//! declared `replacements`. Where a counter of an unsigned integer type
//! declares no rollover, the register's own wrap is used: 2^bits × scale ×
//! the meter's PT/CT ratio (a DL/T 645 BCD counter: 10^digits × its last
//! digit's weight × scale × ratio), so an Acrel U32 ×0.01 kWh counter wraps exactly
//! where the meter does. Time limits come from `[validation]`.
//!
//! The checkpoint is written durably ([`checkpoint::write_atomic`]: a
//! temporary file, fsync, rename, directory fsync), every
//! `validation.checkpoint_interval_secs` and at shutdown. It is read back at start, so a
//! restart neither re-flags nor loses a rollover. A missing or unreadable
//! checkpoint starts every meter fresh and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::checkpoint::{self, WriteError};
use crate::config::{Config, InputRef};
use crate::model::ReadingBatch;
use crate::pipeline::aggregate::{AggOutput, Aggregator, MeterSpec, SiteSpec};
use crate::pipeline::boiler;
use crate::pipeline::boiler::stage::{BoilerOut, Source, StageBoiler, auto_grace};
use crate::pipeline::validate::{MeterRules, PointRules, Replacement, TimeRules, Validator};
use crate::profiles::codec::ratio_factor;
use crate::profiles::{DataType, PointKind};
use crate::telemetry::Stats;
use crate::telemetry::StatusBoard;

/// Builds the validator's rules for every meter of `config`, in `MeterId` order.
#[must_use]
pub fn rules(config: &Config) -> Vec<MeterRules> {
    config
        .meters
        .iter()
        .map(|m| {
            let profile = &config.profiles[m.profile.index()];
            let points = profile
                .points
                .iter()
                .map(|def| {
                    let ratio = ratio_factor(def.ratio, m.pt, m.ct);
                    let mut r = PointRules::from_point(def);
                    r.resolution = def.scale.abs() * ratio;
                    if let Some(d) = def.dlt645 {
                        // A BCD register counts in its last digit and wraps
                        // after all nines: XXXXXX.XX at 1 000 000.
                        let unit = 10f64.powi(-i32::from(d.format.decimals));
                        r.resolution *= unit;
                        if def.kind == PointKind::Counter && r.rollover.is_none() {
                            let counts = 10f64.powi(i32::from(d.format.bytes) * 2);
                            r.rollover = Some(counts * unit * def.scale.abs() * ratio);
                        }
                    } else if def.kind == PointKind::Counter && r.rollover.is_none() {
                        let bits = match def.data_type {
                            DataType::U16 => Some(16),
                            DataType::U32 => Some(32),
                            _ => None,
                        };
                        r.rollover = bits.map(|b| 2f64.powi(b) * def.scale.abs() * ratio);
                    }
                    r
                })
                .collect::<Vec<_>>();
            let mut points = points;
            for (i, o) in &m.overrides {
                let r = &mut points[*i];
                r.min = o.min.or(r.min);
                r.max = o.max.or(r.max);
                r.max_rate_per_hour = o.max_rate_per_hour.or(r.max_rate_per_hour);
                r.spike_margin = o.spike_margin.unwrap_or(r.spike_margin);
                r.frozen_after = o.frozen_after.or(r.frozen_after);
            }
            // The first gauge that names its counter in `rate_of`.
            let rate_point = profile.points.iter().enumerate().find_map(|(g, def)| {
                let counter = profile.point_index(def.rate_of.as_deref()?)?;
                Some((counter, g))
            });
            MeterRules {
                key: stable_key(&m.id, &profile.id),
                points,
                calibration_due: m.calibration.as_ref().map(|c| c.due_at),
                replacements: m
                    .replacements
                    .iter()
                    .map(|d| {
                        (
                            d.point,
                            Replacement {
                                at: d.at,
                                old_final: d.old_final,
                                new_initial: d.new_initial,
                            },
                        )
                    })
                    .collect(),
                rate_point,
            }
        })
        .collect()
}

/// FNV-1a of the meter and profile ids: the identity a checkpoint is matched on.
fn stable_key(meter: &str, profile: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meter.bytes().chain([0]).chain(profile.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The validator with its checkpoint file and counters.
pub struct ValidationStage {
    validator: Validator,
    continuous: Vec<f64>,
    /// Site index of every meter, for the per-site roll-up.
    meter_site: Vec<usize>,
    /// Site ids, by index.
    site_ids: Vec<String>,
    /// Meter ids, by index.
    meter_ids: Vec<String>,
    checkpoint: PathBuf,
    /// The thread that writes the checkpoint (`None`: no thread could be
    /// started; it is then written here, as before).
    writer: Option<checkpoint::Writer>,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    stats: Arc<Stats>,
    /// Where each judged reading is reported, when the gateway has a board.
    board: Option<Arc<StatusBoard>>,
}

impl ValidationStage {
    /// Builds the stage for `config` and restores the checkpoint under its data directory.
    #[must_use]
    pub fn new(config: &Config, stats: Arc<Stats>) -> ValidationStage {
        let v = &config.validation;
        let mut validator = Validator::new(
            rules(config),
            TimeRules {
                max_future_skew_secs: v.max_future_skew_secs,
                max_lateness_secs: v.max_lateness_secs,
                // Late readings the aggregator can still place are judged, not flagged.
                reorder_window_secs: config.aggregation.aggregator.allowed_lateness_secs,
            },
        );
        let checkpoint = config.gateway.data_dir.join("validation.state");
        if let Some(bytes) = read_checkpoint(&checkpoint, "validation", "every meter starts fresh")
        {
            match validator.restore(&bytes) {
                Ok(report) => info!(
                    file = %checkpoint.display(),
                    restored = report.restored,
                    reset = report.reset,
                    "validation state restored"
                ),
                Err(e) => warn!(
                    file = %checkpoint.display(),
                    error = %e,
                    "validation checkpoint unusable; every meter starts fresh"
                ),
            }
        }
        let now = jiff::Timestamp::now().as_second();
        for m in &config.meters {
            if let Some(cal) = &m.calibration
                && cal.due_at <= now
            {
                warn!(
                    meter = %m.id,
                    site = %config.sites[m.site.index()].id,
                    due = %cal.due,
                    serial = cal.serial.as_deref().unwrap_or(""),
                    "meter calibration overdue: its readings carry the calibration bit (1024)"
                );
            }
        }
        let meter_site = config.meters.iter().map(|m| m.site.index()).collect();
        let site_ids = config.sites.iter().map(|s| s.id.clone()).collect();
        let meter_ids = config.meters.iter().map(|m| m.id.clone()).collect();
        ValidationStage {
            meter_ids,
            meter_site,
            site_ids,
            validator,
            continuous: Vec::new(),
            checkpoint,
            writer: checkpoint_writer(
                "validation",
                "a restart would start meters from the previous checkpoint",
            ),
            checkpoint_every: config.validation.checkpoint_interval,
            last_checkpoint: Instant::now(),
            stats,
            board: None,
        }
    }

    /// Reports every judged reading (state, quality, completeness) to `board`.
    #[must_use]
    pub fn with_board(mut self, board: Arc<StatusBoard>) -> ValidationStage {
        self.board = Some(board);
        self
    }

    /// Judges `batch` in place and publishes the counters; checkpoints when due.
    pub fn process(&mut self, batch: &mut ReadingBatch) {
        let now = jiff::Timestamp::now().as_second();
        self.validator.validate(batch, now, &mut self.continuous);
        let flagged = batch.values.iter().filter(|v| !v.quality.is_good()).count();
        Stats::add(&self.stats.points_flagged, flagged as u64);
        if let Some(board) = &self.board {
            for r in &batch.readings {
                board.reading_values(r.meter, r.slot, batch.values_of(r));
            }
        }
        let totals = &self.validator.counters().total;
        for (counter, total) in self.stats.quality_counts.iter().zip(totals) {
            counter.store(*total, Ordering::Relaxed);
        }
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.save();
            self.log_counts();
        }
    }

    /// Logs the flagged values per site and reason (sites with none are left
    /// out), and the meters with the most flags.
    pub fn log_counts(&self) {
        let counters = self.validator.counters();
        let mut per_site = vec![[0u64; 12]; self.site_ids.len()];
        for (meter, counts) in counters.per_meter.iter().enumerate() {
            if let Some(site) = self
                .meter_site
                .get(meter)
                .and_then(|s| per_site.get_mut(*s))
            {
                for (sum, n) in site.iter_mut().zip(counts) {
                    *sum += n;
                }
            }
        }
        for (site, counts) in self.site_ids.iter().zip(&per_site) {
            if counts.iter().all(|n| *n == 0) {
                continue;
            }
            let reasons: Vec<String> = crate::model::Quality::REASONS
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(|((_, word), n)| format!("{word}={n}"))
                .collect();
            info!(site = %site, flagged = %reasons.join(" "), "validation counts");
        }
        // The meters with the most flagged values, so a bad meter stands out.
        let mut worst: Vec<(u64, usize)> = counters
            .per_meter
            .iter()
            .enumerate()
            .map(|(m, counts)| (counts.iter().sum::<u64>(), m))
            .filter(|(n, _)| *n > 0)
            .collect();
        worst.sort_unstable_by(|a, b| b.cmp(a));
        if !worst.is_empty() {
            let list: Vec<String> = worst
                .iter()
                .take(10)
                .map(|(n, m)| format!("{}={n}", self.meter_ids.get(*m).map_or("?", String::as_str)))
                .collect();
            info!(meters = %list.join(" "), "meters with the most flagged values");
        }
    }

    /// Writes the checkpoint now, durably (module doc).
    pub fn save(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Some(w) = &self.writer {
            self.validator.checkpoint_to(w, &self.checkpoint);
            return;
        }
        let bytes = self.validator.checkpoint();
        if let Err(e) = save_checkpoint(&self.checkpoint, &bytes) {
            warn!(
                file = %self.checkpoint.display(),
                error = %e,
                "cannot write the validation checkpoint; a restart would start meters fresh"
            );
        }
    }

    /// The continuous counter of every value of the batch last processed
    /// (`NaN` for gauges and untrusted values), for aggregation.
    #[must_use]
    pub fn continuous(&self) -> &[f64] {
        &self.continuous
    }
}

/// The bytes of a checkpoint file; `None` (logged, with `consequence`) when
/// there is none yet or it cannot be read.
fn read_checkpoint(path: &std::path::Path, what: &str, consequence: &str) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            info!(file = %path.display(), "no {what} checkpoint yet; {consequence}");
            None
        }
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot read the {what} checkpoint; {consequence}");
            None
        }
    }
}

/// The thread that streams the `what` checkpoint to disk (writes, fsyncs,
/// rename), off the runtime's workers; failures are logged there with
/// `consequence`. `None` when no thread can be started (logged).
fn checkpoint_writer(what: &'static str, consequence: &'static str) -> Option<checkpoint::Writer> {
    let on_done: checkpoint::OnDone = Box::new(move |path, result| match result {
        Ok(bytes) => tracing::debug!(file = %path.display(), bytes, "{what} checkpoint written"),
        Err(e) => warn!(
            file = %path.display(),
            error = %e,
            "cannot write the {what} checkpoint; {consequence}"
        ),
    });
    match checkpoint::Writer::spawn(&format!("{what}-checkpoint"), on_done) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "no thread for the {what} checkpoint; it is written by the encoder");
            None
        }
    }
}

/// Why a checkpoint could not be saved.
#[derive(Debug, thiserror::Error)]
enum SaveError {
    /// The data directory could not be created.
    #[error("cannot create the directory \"{}\": {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The durable replacement failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Durably replaces the checkpoint at `path` with `bytes`, so a crash or a
/// power failure leaves either the old or the new checkpoint.
///
/// The stages run on the encoder's own thread, where blocking is harmless;
/// run on a multi-threaded runtime's worker (tests), the worker hands its
/// other tasks to another thread meanwhile (`block_in_place`).
fn save_checkpoint(path: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    off_worker(|| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SaveError::Dir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(checkpoint::write_atomic(path, bytes)?)
    })
}

/// Runs blocking file work without stalling the other tasks of a
/// multi-threaded runtime's worker; elsewhere (no runtime, or a
/// current-thread one, which cannot hand its tasks over) it simply runs.
fn off_worker<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// FNV-1a of a site id: the identity site windows are checkpointed under.
fn site_key(site: &str) -> u64 {
    stable_key(site, "")
}

/// The gauges of meter `m` that some boiler uses as an input.
fn boiler_gauges(config: &Config, m: usize) -> impl Iterator<Item = usize> + '_ {
    config.boilers.iter().flat_map(move |b| {
        b.gauge_inputs()
            .into_iter()
            .filter_map(move |(_, r)| match r {
                InputRef::Point { meter, point } if meter.index() == m => Some(point),
                _ => None,
            })
    })
}

/// The aggregator's view of `config`: one spec per meter and site. Every
/// gauge is written as window statistics with `gauge_stats` (the default);
/// without it, only the gauges boilers use (the boiler stage joins them).
#[must_use]
pub fn aggregator(config: &Config) -> Aggregator {
    let a = &config.aggregation;
    let meters = config
        .meters
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let profile = &config.profiles[m.profile.index()];
            let gauges = if a.gauge_stats {
                profile
                    .points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.kind == PointKind::Gauge)
                    .map(|(i, _)| i)
                    .collect()
            } else {
                let mut used: Vec<usize> = boiler_gauges(config, mi).collect();
                used.sort_unstable();
                used.dedup();
                used
            };
            MeterSpec {
                key: stable_key(&m.id, &profile.id),
                site: m.site.index(),
                energy: m.energy,
                level1: m.level.0 == 1,
                role: m.role,
                counter: m.consumption,
                gauges,
                conversion: m.conversion.clone(),
                // A polled meter is read by one poller, slot after slot.
                ordered: m.endpoint().is_some(),
            }
        })
        .collect();
    let sites = config
        .sites
        .iter()
        .map(|s| SiteSpec {
            key: site_key(&s.id),
            tz: s.timezone.clone(),
        })
        .collect();
    Aggregator::new(a.aggregator.clone(), meters, sites)
}

/// Shortest time between two aggregation checkpoints triggered by closing
/// windows (readings of many endpoints close the same boundary within a
/// second).
const MIN_CHECKPOINT_GAP: Duration = Duration::from_secs(1);

/// The aggregator as the gateway runs it: fed after validation, its output
/// encoded with the readings, its state checkpointed beside the validator's.
pub struct AggregationStage {
    aggregator: Aggregator,
    /// Meter ids by index, for warnings.
    meter_ids: Vec<String>,
    output: AggOutput,
    checkpoint: PathBuf,
    /// The thread that writes the checkpoint (`None`: no thread could be
    /// started; it is then written here, as before).
    writer: Option<checkpoint::Writer>,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    stats: Arc<Stats>,
}

impl AggregationStage {
    /// Builds the stage for `config` and restores `<data_dir>/aggregation.state`.
    #[must_use]
    pub fn new(config: &Config, stats: Arc<Stats>) -> AggregationStage {
        let mut aggregator = aggregator(config);
        let checkpoint = config.gateway.data_dir.join("aggregation.state");
        if let Some(bytes) = read_checkpoint(&checkpoint, "aggregation", "windows start fresh") {
            match aggregator.restore(&bytes) {
                Ok(r) => info!(
                    file = %checkpoint.display(),
                    restored = r.restored,
                    skipped = r.skipped,
                    site_windows = r.site_windows,
                    "aggregation state restored"
                ),
                Err(e) => warn!(
                    file = %checkpoint.display(),
                    error = %e,
                    "aggregation checkpoint unusable; open windows start fresh (their amounts are \
                     counted from the next reading, nothing is counted twice)"
                ),
            }
        }
        AggregationStage {
            meter_ids: config.meters.iter().map(|m| m.id.clone()).collect(),
            aggregator,
            output: AggOutput::default(),
            checkpoint,
            writer: checkpoint_writer(
                "aggregation",
                "a restart would re-open windows from the previous checkpoint",
            ),
            checkpoint_every: config.validation.checkpoint_interval,
            last_checkpoint: Instant::now(),
            stats,
        }
    }

    /// Aggregates a validated batch; the result is in [`Self::output`] until
    /// the next call. Checkpoints when due.
    pub fn process(&mut self, batch: &mut ReadingBatch, continuous: &[f64]) {
        self.output.clear();
        self.aggregator.process(batch, continuous, &mut self.output);
        let c = self.aggregator.counters();
        let s = &self.stats;
        s.windows_emitted
            .store(c.windows_emitted, Ordering::Relaxed);
        s.windows_reemitted
            .store(c.windows_reemitted, Ordering::Relaxed);
        s.site_windows_emitted
            .store(c.site_windows_emitted, Ordering::Relaxed);
        s.late_accepted.store(c.late_accepted, Ordering::Relaxed);
        s.late_rejected.store(
            c.late_rejected + c.late_duplicates + c.late_inconsistent,
            Ordering::Relaxed,
        );
        s.site_too_late.store(c.site_too_late, Ordering::Relaxed);
        for w in &self.output.consumption {
            if w.steam_suspect {
                s.steam_suspect.fetch_add(1, Ordering::Relaxed);
                let meter = self
                    .meter_ids
                    .get(w.meter as usize)
                    .map_or("?", String::as_str);
                warn!(
                    meter = %meter,
                    window = w.size.as_tag(),
                    start = w.start,
                    "steam temperature far below saturation: sensor suspect; priced as saturated steam, window estimated"
                );
            }
        }
        // Windows just closed: checkpoint soon, so a crash re-opens as few
        // closed windows as possible (their re-emission would interpolate
        // across the restart gap).
        let closed =
            !self.output.is_empty() && self.last_checkpoint.elapsed() >= MIN_CHECKPOINT_GAP;
        if closed || self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.save();
        }
    }

    /// What the last [`Self::process`] produced.
    #[must_use]
    pub fn output(&self) -> &AggOutput {
        &self.output
    }

    /// Writes the checkpoint now.
    pub fn save(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Some(w) = &self.writer {
            self.aggregator.checkpoint_to(w, &self.checkpoint);
            return;
        }
        if let Err(e) = save_checkpoint(&self.checkpoint, &self.aggregator.checkpoint()) {
            warn!(
                file = %self.checkpoint.display(),
                error = %e,
                "cannot write the aggregation checkpoint; a restart would re-open windows from the last one"
            );
        }
    }
}

/// What the boiler stage needs of `config`: one spec per boiler, with its
/// grace (`[boiler] grace_secs`, or automatic: 2 × the longest poll
/// interval of its meters + `aggregation.allowed_lateness_secs`).
#[must_use]
pub fn stage_boilers(config: &Config) -> Vec<StageBoiler> {
    let source = |r: InputRef| match r {
        InputRef::None => Source::None,
        InputRef::Fixed(v) => Source::Fixed(v),
        InputRef::Point { meter, point } => Source::Point {
            meter: meter.0,
            point: u16::try_from(point).unwrap_or(u16::MAX),
        },
    };
    config
        .boilers
        .iter()
        .map(|b| {
            let mut gauges = [Source::None; 9];
            for (g, (_, r)) in gauges.iter_mut().zip(b.gauge_inputs()) {
                *g = source(r);
            }
            let meters = [b.fuel_meter, b.output_meter].into_iter().chain(
                b.gauge_inputs().into_iter().filter_map(|(_, r)| match r {
                    InputRef::Point { meter, .. } => Some(meter),
                    _ => None,
                }),
            );
            let polls = meters.map(|m| config.meter(m).poll_interval.as_secs() as i64);
            let grace_secs = if config.boiler.grace_secs > 0 {
                config.boiler.grace_secs
            } else {
                auto_grace(polls, config.aggregation.aggregator.allowed_lateness_secs)
            };
            StageBoiler {
                spec: b.spec.clone(),
                records: b.fuel_records.clone(),
                meter_lhv_kj_per_m3: b.meter_lhv_kj_per_m3,
                blowdown_pct: b.blowdown_pct,
                fuel_meter: b.fuel_meter.0,
                output_meter: b.output_meter.0,
                gauges,
                tz: config
                    .sites
                    .get(b.site.index())
                    .map_or(jiff::tz::TimeZone::UTC, |s| s.timezone.clone()),
                grace_secs,
            }
        })
        .collect()
}

/// The boiler stage as the gateway runs it: fed with each batch's
/// aggregation output after the aggregator, its windows encoded with the
/// batch and shown on the status board. It keeps no checkpoint: after a
/// restart, windows open at the stop are joined from what the aggregator
/// writes again.
pub struct BoilerStage {
    stage: boiler::stage::BoilerStage,
    output: Vec<BoilerOut>,
    board: Arc<StatusBoard>,
}

impl BoilerStage {
    /// Builds the stage for `config`'s boilers, reporting to `board`.
    #[must_use]
    pub fn new(config: &Config, board: Arc<StatusBoard>) -> BoilerStage {
        let stage = boiler::stage::BoilerStage::new(
            stage_boilers(config),
            config
                .meters
                .iter()
                .map(|m| m.poll_interval.as_secs() as i64)
                .collect(),
            config.aggregation.aggregator.windows.clone(),
            config.aggregation.steam_margins,
            boiler::calc::evaluate_with,
        );
        BoilerStage {
            stage,
            output: Vec::new(),
            board,
        }
    }

    /// Joins the aggregation output `agg` of `batch`; the windows to write
    /// are in [`Self::output`] until the next call.
    pub fn process(&mut self, agg: &AggOutput, batch: &ReadingBatch) {
        self.output.clear();
        if self.stage.is_empty() {
            return;
        }
        let slots = batch.readings.iter().map(|r| (r.meter.0, r.slot));
        self.stage.process(agg, slots, &mut self.output);
        if !self.output.is_empty() {
            self.board.boiler_windows(&self.output);
            for b in 0..self.stage.len() {
                self.board.boiler_counters(b, &self.stage.counters(b));
            }
        }
    }

    /// The boiler windows the last [`Self::process`] wrote.
    #[must_use]
    pub fn output(&self) -> &[BoilerOut] {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stages save from the encoder task: on a multi-threaded runtime,
    /// on a current-thread one (tests), and without one.
    #[test]
    fn checkpoints_are_saved_in_every_runtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data/validation.state");
        save_checkpoint(&path, b"none").expect("no runtime");
        assert_eq!(std::fs::read(&path).expect("read"), b"none");
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let p = path.clone();
        current
            .block_on(current.spawn(async move { save_checkpoint(&p, b"current") }))
            .expect("join")
            .expect("current thread");
        assert_eq!(std::fs::read(&path).expect("read"), b"current");
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let p = path.clone();
        multi
            .block_on(multi.spawn(async move { save_checkpoint(&p, b"multi") }))
            .expect("join")
            .expect("multi thread");
        assert_eq!(std::fs::read(&path).expect("read"), b"multi");
        assert!(!checkpoint::tmp_path(&path).exists());
    }
}
