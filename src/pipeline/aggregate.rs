//! Streaming aggregation: per-meter consumption and gauge statistics per
//! window, standard coal, and site roll-ups, out of the validated stream.
//!
//! Why this exists: enterprises and the regulator read consumption per
//! 15 minutes, hour, local day and month, in physical units and in kgce, per
//! meter and per enterprise. Those figures must equal the counters exactly
//! across window boundaries, gaps, late data and restarts (SCHEMA.md,
//! `consumption` and `site_consumption`).
//!
//! # How a reading is used
//! * The meter's consumption counter (its validated **continuous** value,
//!   corrected for rollovers and replacements) drives one
//!   [`CounterWindows`] per window size: the counter at each boundary is
//!   interpolated between the readings around it, so amounts telescope.
//! * Gauges (power, flow, pressure, temperature) add to count, sum, min and
//!   max of the window containing the reading (arithmetic mean of the good
//!   samples).
//! * A value is used only when it is trusted: a counter whose continuous
//!   value is finite, a gauge with no quality bit except the informational
//!   calibration bit.
//!
//! # Watermark, allowed lateness, re-emission
//! Each meter's watermark `W` is the newest slot it has delivered. Every
//! meter has two copies of its window state:
//! * **committed**: fed with readings older than `W − allowed_lateness`
//!   (or pushed out of the reorder buffer when it is full). A window that
//!   closes here is final; final meter windows feed the site roll-ups.
//! * **speculative**: committed plus the readings still in the meter's reorder
//!   buffer. Windows are written as soon as they close here, so dashboards see
//!   them at once.
//!
//! An in-order reading goes to the buffer and the speculative state. A late
//! reading (older than `W`, newer than everything committed) is inserted in
//! order; the speculative state is rebuilt from committed plus buffer and
//! every window that closes again is re-emitted with the same timestamp, so
//! InfluxDB overwrites it. A late counter value must lie between its
//! neighbours (else it gets [`Quality::BACKWARDS`] and is not used), a late
//! repeat of a buffered slot gets [`Quality::DUPLICATE`], and a reading older
//! than the committed state gets [`Quality::TIME`] and is counted as
//! rejected. With `allowed_lateness = 0` the buffer is empty and the two
//! states are one.
//!
//! # Site roll-ups
//! Final windows of **level-1** meters add into `(site, energy, window)` and
//! into `(site, total, window)` in kgce. Exported energy is subtracted
//! (GB/T 2589: energy supplied outward is deducted); feedstock and renewable
//! energy are included and also reported in their own fields, so the part
//! under total-consumption control can be derived. A site window is written
//! after every contribution (overwriting) and forgotten when every expected
//! meter has contributed, or when it is older than the retention for its
//! size (then later contributions are counted, not added).
//!
//! # Memory
//! Per meter and window size: one [`CounterWindows`] (≈ 64 bytes), one gauge
//! window (24 bytes) and 32 bytes per tracked gauge, twice (committed and
//! speculative); plus a reorder buffer of `max_reorder_readings × (1 +
//! tracked gauges + 1) × 8` bytes. Nothing is allocated per reading.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::energy::{Conversion, EnergyRole};
use super::window::{
    COUNTER_WINDOWS_BYTES, ClosedWindow, CounterWindows, WindowSize, window_end, window_start,
};
use crate::model::{EnergyType, Quality, ReadingBatch};

/// Index of the `total` row in site roll-ups (after the energy types).
const TOTAL: usize = EnergyType::ALL.len();

/// Checkpoint magic and version.
const MAGIC: &[u8; 4] = b"EMGA";
const VERSION: u16 = 1;

/// Aggregation settings the stage needs (from `[aggregation]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatorSettings {
    /// Window sizes, in output order.
    pub windows: Vec<WindowSize>,
    /// Seconds a window stays open for late readings after the meter's
    /// watermark passed its end.
    pub allowed_lateness_secs: i64,
    /// Per-meter bound on readings held for late data.
    pub max_reorder_readings: usize,
    /// Readings further apart than this are a gap (coverage, `estimated`).
    pub max_gap_secs: i64,
}

/// What the aggregator needs to know about one meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// Stable identity for checkpoints (hash of meter and profile ids).
    pub key: u64,
    /// Site index.
    pub site: usize,
    /// Energy measured.
    pub energy: EnergyType,
    /// Level-1 meters add into site roll-ups.
    pub level1: bool,
    /// How the meter counts in the site balance.
    pub role: EnergyRole,
    /// Point index of the consumption counter.
    pub counter: Option<usize>,
    /// Point indices of the gauges written as window statistics.
    pub gauges: Vec<usize>,
    /// Amount to kgce.
    pub conversion: Conversion,
}

/// What the aggregator needs to know about one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    /// Stable identity for checkpoints (hash of the site id).
    pub key: u64,
    /// The site's time zone (windows are aligned to it).
    pub tz: TimeZone,
}

/// One `consumption` point: a meter's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumptionOut {
    /// Meter index.
    pub meter: u32,
    /// Window size.
    pub size: WindowSize,
    /// Window start (the timestamp written).
    pub start: i64,
    /// Counter difference across the window, in the counter's unit.
    pub amount: f64,
    /// kgce, when the meter has a conversion.
    pub kgce: Option<f64>,
    /// Fraction of the window backed by good readings.
    pub coverage: f64,
    /// A boundary was interpolated across a long gap, or kgce used a
    /// fallback coefficient.
    pub estimated: bool,
}

/// Statistics of one gauge in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStatOut {
    /// Point index in the meter's profile.
    pub point: u16,
    /// Arithmetic mean of the good samples.
    pub mean: f64,
    /// Smallest good sample.
    pub min: f64,
    /// Largest good sample.
    pub max: f64,
}

/// One `gauges` point: a meter's gauge statistics in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeWindowOut {
    /// Meter index.
    pub meter: u32,
    /// Window size.
    pub size: WindowSize,
    /// Window start.
    pub start: i64,
    /// Readings with at least one good gauge in the window.
    pub samples: u32,
    /// First of this window's statistics in [`AggOutput::gauge_stats`].
    pub stats_start: u32,
    /// One past the last of them.
    pub stats_end: u32,
}

/// One `site_consumption` point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteOut {
    /// Site index.
    pub site: u32,
    /// Energy type, `None` for the comprehensive total (in kgce).
    pub energy: Option<EnergyType>,
    /// Window size.
    pub size: WindowSize,
    /// Window start.
    pub start: i64,
    /// Net amount (exports subtracted), in the energy's unit; kgce for the total.
    pub amount: f64,
    /// Net kgce (exports subtracted).
    pub kgce: f64,
    /// Meters that contributed so far.
    pub meters: u32,
    /// Mean coverage over the meters expected (missing ones count 0).
    pub coverage: f64,
    /// kgce exported (already subtracted from `kgce`).
    pub exported_kgce: f64,
    /// kgce of feedstock use (included in `kgce`).
    pub feedstock_kgce: f64,
    /// kgce of renewable energy (included in `kgce`).
    pub renewable_kgce: f64,
}

/// What one call of [`Aggregator::process`] produced; the caller clears and
/// reuses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggOutput {
    /// Meter consumption windows.
    pub consumption: Vec<ConsumptionOut>,
    /// Meter gauge windows.
    pub gauges: Vec<GaugeWindowOut>,
    /// Statistics referenced by [`GaugeWindowOut::stats`].
    pub gauge_stats: Vec<GaugeStatOut>,
    /// Site roll-ups.
    pub sites: Vec<SiteOut>,
}

impl AggOutput {
    /// Empties every list, keeping capacity.
    pub fn clear(&mut self) {
        self.consumption.clear();
        self.gauges.clear();
        self.gauge_stats.clear();
        self.sites.clear();
    }

    /// True when nothing was produced.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consumption.is_empty() && self.gauges.is_empty() && self.sites.is_empty()
    }
}

/// Counts of what the aggregator did, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggCounters {
    /// Meter windows written (consumption and gauges), first emission.
    pub windows_emitted: u64,
    /// Meter windows written again after a late reading.
    pub windows_reemitted: u64,
    /// Site windows written (each contribution rewrites one).
    pub site_windows_emitted: u64,
    /// Late readings taken into their windows.
    pub late_accepted: u64,
    /// Readings too late for the committed state (flagged `time`).
    pub late_rejected: u64,
    /// Late repeats of a buffered slot (flagged `duplicate`).
    pub late_duplicates: u64,
    /// Late counter values outside their neighbours (flagged `backwards`).
    pub late_inconsistent: u64,
    /// Final meter windows older than the site's retention: not rolled up.
    pub site_too_late: u64,
}

/// Why a checkpoint was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// Not an aggregation checkpoint, or another version.
    #[error("not an aggregation checkpoint of version {VERSION}")]
    Format,
    /// Truncated or its checksum does not match.
    #[error("aggregation checkpoint is damaged (truncated or checksum mismatch)")]
    Damaged,
}

/// What [`Aggregator::restore`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggRestoreReport {
    /// Meters whose windows were restored.
    pub restored: usize,
    /// Meters in the checkpoint no longer configured or with another shape.
    pub skipped: usize,
    /// Open site windows restored.
    pub site_windows: usize,
}

/// Gauge window: start and end of the window being filled, and samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct GaugeWin {
    start: i64,
    end: i64,
    samples: u32,
}

impl GaugeWin {
    const NONE: GaugeWin = GaugeWin {
        start: i64::MIN,
        end: i64::MIN,
        samples: 0,
    };
}

/// Running statistics of one gauge in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    n: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stat {
    const EMPTY: Stat = Stat {
        n: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Stat) {
        self.n += other.n;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// Per-meter layout in the flat tables.
#[derive(Debug, Clone)]
struct Layout {
    /// Tracked gauge points: the emitted ones first, then conversion inputs.
    tracked: Vec<usize>,
    /// How many of `tracked` are written as statistics.
    n_emit: usize,
    /// Positions in `tracked` of the steam pressure and temperature.
    steam: Option<(usize, usize)>,
    /// First gauge statistic of this meter in `stats`.
    stats_base: usize,
    /// First reorder-buffer slot of this meter.
    buf_base: usize,
}

/// Which state a reading is fed into, and what closing windows do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// Committed only, with no separate speculative state (no lateness):
    /// write and roll up.
    Only,
    /// Committed behind a speculative state: roll up only.
    Committed,
    /// Speculative, first time: write.
    Speculative,
    /// Speculative rebuilt after a late reading: write again.
    Replay,
}

/// One site window being summed.
#[derive(Debug, Clone, PartialEq)]
struct SiteAcc {
    amount: f64,
    kgce: f64,
    exported: f64,
    feedstock: f64,
    renewable: f64,
    coverage: f64,
    contributors: Vec<u32>,
}

/// Site roll-up key: site, energy row (`TOTAL` for the total), size index, window start.
type SiteKey = (u32, u8, u8, i64);

/// The aggregation state of every configured meter.
#[derive(Debug, Clone)]
pub struct Aggregator {
    settings: AggregatorSettings,
    /// Indices into `settings.windows`, shortest size first.
    order: Vec<usize>,
    /// Reorder-buffer slots per meter (0 without lateness).
    cap: usize,
    /// Values per buffer slot (the widest meter's `1 + tracked`).
    stride_max: usize,
    meters: Vec<MeterSpec>,
    sites: Vec<SiteSpec>,
    layout: Vec<Layout>,
    /// `[meter][state][size]`, state 0 committed, 1 speculative.
    counters: Vec<CounterWindows>,
    /// Steam inputs per counter window: pressure and temperature statistics.
    steam: Vec<[Stat; 2]>,
    gwins: Vec<GaugeWin>,
    /// `[meter: stats_base][state][size][tracked]`.
    stats: Vec<Stat>,
    /// Reorder buffer: slot times, and per slot `1 + tracked` values
    /// (counter first).
    buf_t: Vec<i64>,
    buf_v: Vec<f64>,
    /// Ring head and length per meter.
    buf_head: Vec<u32>,
    buf_len: Vec<u32>,
    /// Newest slot per meter (`i64::MIN`: none).
    watermark: Vec<i64>,
    /// Newest slot fed into the committed state.
    committed_to: Vec<i64>,
    /// Expected level-1 contributors per `(site, energy row)`.
    expected: Vec<[u32; TOTAL + 1]>,
    /// Open site windows.
    site_acc: HashMap<SiteKey, SiteAcc>,
    /// Per `(site, size)`: newest site window start, and the start up to which
    /// site windows were forgotten.
    site_newest: Vec<i64>,
    site_forgotten: Vec<i64>,
    counters_out: AggCounters,
    /// Scratch, reused: values of the reading being handled and closed windows.
    scratch_vals: Vec<f64>,
    /// A second scratch vector, for buffered readings being replayed.
    spare_vals: Vec<f64>,
    scratch_closed: Vec<ClosedWindow>,
}

/// Reorder-buffer slots per meter: none without a lateness window.
fn buffer_cap(s: &AggregatorSettings) -> usize {
    if s.allowed_lateness_secs > 0 {
        s.max_reorder_readings
    } else {
        0
    }
}

impl Aggregator {
    /// An aggregator for `meters` (indexed by `MeterId`) in `sites`.
    #[must_use]
    pub fn new(
        settings: AggregatorSettings,
        meters: Vec<MeterSpec>,
        sites: Vec<SiteSpec>,
    ) -> Aggregator {
        let n_sizes = settings.windows.len();
        let cap = buffer_cap(&settings);
        let mut layout = Vec::with_capacity(meters.len());
        let mut stats_len = 0;
        let mut buf_slots = 0;
        let mut expected = vec![[0u32; TOTAL + 1]; sites.len()];
        for m in &meters {
            let mut tracked = m.gauges.clone();
            let n_emit = tracked.len();
            let steam = match m.conversion {
                Conversion::Steam {
                    pressure,
                    temperature,
                    ..
                } => {
                    let mut pos = |p: usize| {
                        tracked.iter().position(|x| *x == p).unwrap_or_else(|| {
                            tracked.push(p);
                            tracked.len() - 1
                        })
                    };
                    Some((pos(pressure), pos(temperature)))
                }
                _ => None,
            };
            layout.push(Layout {
                n_emit,
                steam,
                stats_base: stats_len,
                buf_base: buf_slots,
                tracked,
            });
            stats_len += 2 * n_sizes * layout.last().map_or(0, |l| l.tracked.len());
            buf_slots += cap;
            if m.level1
                && m.counter.is_some()
                && let Some(e) = expected.get_mut(m.site)
            {
                e[energy_row(m.energy)] += 1;
                if m.conversion != Conversion::None {
                    e[TOTAL] += 1;
                }
            }
        }
        let stride_max = layout
            .iter()
            .map(|l| 1 + l.tracked.len())
            .max()
            .unwrap_or(1);
        let n = meters.len();
        Aggregator {
            counters: vec![CounterWindows::new(); n * 2 * n_sizes],
            steam: vec![[Stat::EMPTY; 2]; n * 2 * n_sizes],
            gwins: vec![GaugeWin::NONE; n * 2 * n_sizes],
            stats: vec![Stat::EMPTY; stats_len],
            buf_t: vec![0; buf_slots],
            buf_v: vec![f64::NAN; buf_slots * stride_max],
            buf_head: vec![0; n],
            buf_len: vec![0; n],
            watermark: vec![i64::MIN; n],
            committed_to: vec![i64::MIN; n],
            expected,
            site_acc: HashMap::new(),
            site_newest: vec![i64::MIN; sites.len() * n_sizes],
            site_forgotten: vec![i64::MIN; sites.len() * n_sizes],
            counters_out: AggCounters::default(),
            scratch_vals: Vec::with_capacity(stride_max),
            spare_vals: Vec::with_capacity(stride_max),
            scratch_closed: Vec::new(),
            cap,
            stride_max,
            order: {
                let mut order: Vec<usize> = (0..n_sizes).collect();
                order.sort_by_key(|i| size_code(settings.windows[*i]));
                order
            },
            settings,
            meters,
            sites,
            layout,
        }
    }

    /// What the aggregator did so far.
    #[must_use]
    pub fn counters(&self) -> AggCounters {
        self.counters_out
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &AggregatorSettings {
        &self.settings
    }

    /// Aggregates every reading of a validated `batch` (`continuous` as the
    /// validator wrote it) and appends what closed to `out`. Late readings
    /// that cannot be used get a quality bit here, before the batch is
    /// encoded.
    pub fn process(&mut self, batch: &mut ReadingBatch, continuous: &[f64], out: &mut AggOutput) {
        let ReadingBatch { readings, values } = batch;
        for r in readings.iter() {
            let m = r.meter.index();
            let start = r.values_start as usize;
            let end = start + usize::from(r.n_points);
            let (Some(vals), Some(cont), Some(counter)) = (
                values.get_mut(start..end),
                continuous.get(start..end),
                self.meters.get(m).map(|s| s.counter),
            ) else {
                continue;
            };
            // The values this meter's windows use: counter, then tracked gauges.
            self.scratch_vals.clear();
            let c = counter
                .and_then(|i| cont.get(i).copied())
                .filter(|c| c.is_finite())
                .unwrap_or(f64::NAN);
            self.scratch_vals.push(c);
            for &g in &self.layout[m].tracked {
                let v = vals.get(g).map_or(f64::NAN, |v| {
                    let trusted = v.quality.0 & !Quality::CALIBRATION.0 == 0;
                    if trusted && v.value.is_finite() {
                        v.value
                    } else {
                        f64::NAN
                    }
                });
                self.scratch_vals.push(v);
            }
            let usable = self.scratch_vals.iter().any(|v| !v.is_nan());
            let t = r.slot;
            if t > self.watermark[m] {
                self.watermark[m] = t;
                if usable {
                    self.in_order(m, t, out);
                }
                self.commit_due(m, out);
            } else if usable && t < self.watermark[m] {
                let mark = self.late(m, t, out);
                if !mark.is_good() {
                    let marked = if mark == Quality::BACKWARDS {
                        counter.and_then(|i| vals.get_mut(i))
                    } else {
                        None
                    };
                    match marked {
                        Some(v) => v.quality |= mark,
                        None => vals.iter_mut().for_each(|v| v.quality |= mark),
                    }
                }
            }
        }
    }

    /// An in-order reading (its values in `scratch_vals`).
    fn in_order(&mut self, m: usize, t: i64, out: &mut AggOutput) {
        let cap = self.cap;
        if cap == 0 {
            let vals = std::mem::take(&mut self.scratch_vals);
            self.feed(m, Feed::Only, t, &vals, out);
            self.committed_to[m] = t;
            self.scratch_vals = vals;
            return;
        }
        if self.buf_len[m] as usize == cap {
            self.commit_oldest(m, out);
        }
        let pos = self.buf_len[m] as usize;
        self.buf_write(m, pos, t);
        self.buf_len[m] += 1;
        let vals = std::mem::take(&mut self.scratch_vals);
        self.feed(m, Feed::Speculative, t, &vals, out);
        self.scratch_vals = vals;
    }

    /// Moves buffered readings older than `watermark − lateness` to the
    /// committed state.
    fn commit_due(&mut self, m: usize, out: &mut AggOutput) {
        let horizon = self.watermark[m].saturating_sub(self.settings.allowed_lateness_secs);
        while self.buf_len[m] > 0 && self.buf_t[self.slot_index(m, 0)] <= horizon {
            self.commit_oldest(m, out);
        }
    }

    /// Feeds the oldest buffered reading into the committed state.
    fn commit_oldest(&mut self, m: usize, out: &mut AggOutput) {
        let slot = self.slot_index(m, 0);
        let t = self.buf_t[slot];
        let mut vals = std::mem::take(&mut self.spare_vals);
        vals.clear();
        vals.extend_from_slice(self.buf_values(m, slot));
        self.feed(m, Feed::Committed, t, &vals, out);
        self.spare_vals = vals;
        self.committed_to[m] = t;
        let next = self.buf_head[m] as usize + 1;
        self.buf_head[m] = u32::try_from(if next >= self.cap { 0 } else { next }).unwrap_or(0);
        self.buf_len[m] -= 1;
    }

    /// A late reading at `t` (its values in `scratch_vals`); returns the bit
    /// to flag it with, or good when it was taken.
    fn late(&mut self, m: usize, t: i64, out: &mut AggOutput) -> Quality {
        if self.cap == 0 || t <= self.committed_to[m] {
            self.counters_out.late_rejected += 1;
            return Quality::TIME;
        }
        let len = self.buf_len[m] as usize;
        // Insertion point in slot order.
        let mut pos = len;
        for i in 0..len {
            let bt = self.buf_t[self.slot_index(m, i)];
            if bt == t {
                self.counters_out.late_duplicates += 1;
                return Quality::DUPLICATE;
            }
            if bt > t {
                pos = i;
                break;
            }
        }
        let mut mark = Quality::GOOD;
        let c = self.scratch_vals[0];
        if !c.is_nan() {
            let prev = (0..pos)
                .rev()
                .map(|i| self.buf_values(m, self.slot_index(m, i))[0])
                .find(|v| !v.is_nan())
                .or_else(|| self.committed_last_counter(m));
            let next = (pos..len)
                .map(|i| self.buf_values(m, self.slot_index(m, i))[0])
                .find(|v| !v.is_nan());
            if prev.is_some_and(|p| c < p) || next.is_some_and(|n| c > n) {
                self.counters_out.late_inconsistent += 1;
                self.scratch_vals[0] = f64::NAN;
                mark = Quality::BACKWARDS;
                if self.scratch_vals.iter().all(|v| v.is_nan()) {
                    return mark;
                }
            }
        }
        let cap = self.cap;
        if len == cap {
            // Full: the oldest reading is committed to make room.
            self.commit_oldest(m, out);
            if pos == 0 || t <= self.committed_to[m] {
                self.counters_out.late_rejected += 1;
                return Quality::TIME;
            }
            pos -= 1;
        }
        // Shift the newer readings up by one and write at `pos`.
        let len = self.buf_len[m] as usize;
        for i in (pos..len).rev() {
            let (from, to) = (self.slot_index(m, i), self.slot_index(m, i + 1));
            self.buf_t[to] = self.buf_t[from];
            let stride = self.stride(m);
            let (fb, tb) = (from * self.stride_max, to * self.stride_max);
            self.buf_v.copy_within(fb..fb + stride, tb);
        }
        self.buf_write(m, pos, t);
        self.buf_len[m] += 1;
        self.counters_out.late_accepted += 1;
        self.rebuild_speculative(m, out);
        mark
    }

    /// Speculative = committed, then every buffered reading again; windows
    /// that close are re-emitted.
    fn rebuild_speculative(&mut self, m: usize, out: &mut AggOutput) {
        let n_sizes = self.settings.windows.len();
        let base = m * 2 * n_sizes;
        self.counters
            .copy_within(base..base + n_sizes, base + n_sizes);
        self.steam.copy_within(base..base + n_sizes, base + n_sizes);
        self.gwins.copy_within(base..base + n_sizes, base + n_sizes);
        let nt = self.layout[m].tracked.len();
        let sb = self.layout[m].stats_base;
        self.stats
            .copy_within(sb..sb + n_sizes * nt, sb + n_sizes * nt);
        let mut vals = std::mem::take(&mut self.spare_vals);
        for i in 0..self.buf_len[m] as usize {
            let slot = self.slot_index(m, i);
            let t = self.buf_t[slot];
            vals.clear();
            vals.extend_from_slice(self.buf_values(m, slot));
            self.feed(m, Feed::Replay, t, &vals, out);
        }
        self.spare_vals = vals;
    }

    /// Feeds one reading into one state of meter `m` and handles what closes.
    fn feed(&mut self, m: usize, how: Feed, t: i64, vals: &[f64], out: &mut AggOutput) {
        let n_sizes = self.settings.windows.len();
        let state = usize::from(matches!(how, Feed::Speculative | Feed::Replay));
        let write = how != Feed::Committed;
        let roll = matches!(how, Feed::Only | Feed::Committed);
        let site = self.meters[m].site;
        let has_counter = self.meters[m].counter.is_some();
        for s in 0..n_sizes {
            let size = self.settings.windows[s];
            let idx = (m * 2 + state) * n_sizes + s;
            let mut closed = std::mem::take(&mut self.scratch_closed);
            closed.clear();
            if has_counter && !vals[0].is_nan() {
                let tz = &self.sites[site].tz;
                self.counters[idx].push(size, tz, self.settings.max_gap_secs, t, vals[0], |w| {
                    closed.push(w);
                });
            }
            for (k, w) in closed.iter().enumerate() {
                // Only the first closed window holds the steam samples;
                // windows inside a gap have none.
                let steam = if k == 0 {
                    self.steam[idx]
                } else {
                    [Stat::EMPTY; 2]
                };
                let rec = self.consumption(m, size, w, steam);
                if write {
                    out.consumption.push(rec);
                    self.count_emit(how);
                }
                if roll {
                    self.roll_up(m, s, w, &rec, out);
                }
            }
            if !closed.is_empty() {
                self.steam[idx] = [Stat::EMPTY; 2];
            }
            self.scratch_closed = closed;
            if has_counter
                && !vals[0].is_nan()
                && let Some((p, q)) = self.layout[m].steam
            {
                let st = &mut self.steam[idx];
                for (k, pos) in [p, q].into_iter().enumerate() {
                    let v = vals[1 + pos];
                    if !v.is_nan() {
                        st[k].add(v);
                    }
                }
            }
        }
        self.feed_gauges(m, state, how, t, vals, out);
    }

    /// Gauge statistics: only the shortest window is updated per reading;
    /// a window that closes is merged into the next longer one (windows
    /// nest: every boundary of a longer window is one of a shorter), so the
    /// work per reading does not grow with the number of window sizes.
    fn feed_gauges(
        &mut self,
        m: usize,
        state: usize,
        how: Feed,
        t: i64,
        vals: &[f64],
        out: &mut AggOutput,
    ) {
        let n_emit = self.layout[m].n_emit;
        if n_emit == 0 || self.order.is_empty() || vals[1..=n_emit].iter().all(|v| v.is_nan()) {
            return;
        }
        let n_sizes = self.settings.windows.len();
        let base = (m * 2 + state) * n_sizes;
        // Close, shortest first, every window the reading has left; each
        // merges into the next longer one.
        for k in 0..self.order.len() {
            let gw = self.gwins[base + self.order[k]];
            if gw.start != i64::MIN && t >= gw.end {
                self.close_gauges(m, state, k, how, out);
            }
        }
        let s0 = self.order[0];
        let nt = self.layout[m].tracked.len();
        let sbase = self.layout[m].stats_base + (state * n_sizes + s0) * nt;
        if self.gwins[base + s0].start == i64::MIN {
            let tz = &self.sites[self.meters[m].site].tz;
            let size = self.settings.windows[s0];
            let start = window_start(size, tz, t);
            self.gwins[base + s0] = GaugeWin {
                start,
                end: window_end(size, tz, start),
                samples: 0,
            };
            self.stats[sbase..sbase + nt].fill(Stat::EMPTY);
        }
        self.gwins[base + s0].samples += 1;
        for (st, v) in self.stats[sbase..sbase + n_emit]
            .iter_mut()
            .zip(&vals[1..=n_emit])
        {
            if !v.is_nan() {
                st.add(*v);
            }
        }
    }

    /// Closes the gauge window of the `k`-th shortest size: writes it (when
    /// it has samples and this state writes) and merges it into the next
    /// longer size, closing that one first if the merged window lies beyond it.
    fn close_gauges(&mut self, m: usize, state: usize, k: usize, how: Feed, out: &mut AggOutput) {
        let n_sizes = self.settings.windows.len();
        let nt = self.layout[m].tracked.len();
        let s = self.order[k];
        let idx = (m * 2 + state) * n_sizes + s;
        let sbase = self.layout[m].stats_base + (state * n_sizes + s) * nt;
        let gw = self.gwins[idx];
        if gw.samples > 0 && how != Feed::Committed {
            self.emit_gauges(m, self.settings.windows[s], gw, sbase, out);
            self.count_emit(how);
        }
        if gw.samples > 0
            && let Some(&s2) = self.order.get(k + 1)
        {
            let idx2 = (m * 2 + state) * n_sizes + s2;
            let sbase2 = self.layout[m].stats_base + (state * n_sizes + s2) * nt;
            let gw2 = self.gwins[idx2];
            if gw2.start == i64::MIN || gw.start >= gw2.end || gw.start < gw2.start {
                if gw2.start != i64::MIN {
                    self.close_gauges(m, state, k + 1, how, out);
                }
                let tz = &self.sites[self.meters[m].site].tz;
                let size = self.settings.windows[s2];
                let start = window_start(size, tz, gw.start);
                self.gwins[idx2] = GaugeWin {
                    start,
                    end: window_end(size, tz, start),
                    samples: 0,
                };
                self.stats[sbase2..sbase2 + nt].fill(Stat::EMPTY);
            }
            self.gwins[idx2].samples += gw.samples;
            for i in 0..nt {
                let from = self.stats[sbase + i];
                self.stats[sbase2 + i].merge(&from);
            }
        }
        self.gwins[idx] = GaugeWin::NONE;
        self.stats[sbase..sbase + nt].fill(Stat::EMPTY);
    }

    fn count_emit(&mut self, how: Feed) {
        if how == Feed::Replay {
            self.counters_out.windows_reemitted += 1;
        } else {
            self.counters_out.windows_emitted += 1;
        }
    }

    /// The `consumption` record of a closed window.
    fn consumption(
        &self,
        m: usize,
        size: WindowSize,
        w: &ClosedWindow,
        steam: [Stat; 2],
    ) -> ConsumptionOut {
        let spec = &self.meters[m];
        let tz = &self.sites[spec.site].tz;
        let year = Timestamp::from_second(w.start).map_or(1970, |ts| tz.to_datetime(ts).year());
        let (p, q) = match spec.conversion {
            Conversion::Steam {
                pressure,
                temperature,
                ..
            } => (pressure, temperature),
            _ => (usize::MAX, usize::MAX),
        };
        let kgce = spec.conversion.kgce(w.amount, year, |i| {
            if i == p {
                steam[0].mean()
            } else if i == q {
                steam[1].mean()
            } else {
                None
            }
        });
        ConsumptionOut {
            meter: u32::try_from(m).unwrap_or(u32::MAX),
            size,
            start: w.start,
            amount: w.amount,
            kgce: kgce.map(|(k, _)| k),
            coverage: w.coverage,
            estimated: w.estimated || kgce.is_some_and(|(_, e)| e),
        }
    }

    fn emit_gauges(
        &mut self,
        m: usize,
        size: WindowSize,
        gw: GaugeWin,
        sbase: usize,
        out: &mut AggOutput,
    ) {
        let first = u32::try_from(out.gauge_stats.len()).unwrap_or(u32::MAX);
        let layout = &self.layout[m];
        for (st, point) in self.stats[sbase..sbase + layout.n_emit]
            .iter()
            .zip(&layout.tracked)
        {
            if let Some(mean) = st.mean() {
                out.gauge_stats.push(GaugeStatOut {
                    point: u16::try_from(*point).unwrap_or(u16::MAX),
                    mean,
                    min: st.min,
                    max: st.max,
                });
            }
        }
        let last = u32::try_from(out.gauge_stats.len()).unwrap_or(u32::MAX);
        out.gauges.push(GaugeWindowOut {
            meter: u32::try_from(m).unwrap_or(u32::MAX),
            size,
            start: gw.start,
            samples: gw.samples,
            stats_start: first,
            stats_end: last,
        });
    }

    /// Adds a final window of meter `m` into its site's roll-ups.
    fn roll_up(
        &mut self,
        m: usize,
        s: usize,
        w: &ClosedWindow,
        rec: &ConsumptionOut,
        out: &mut AggOutput,
    ) {
        let spec = &self.meters[m];
        if !spec.level1 {
            return;
        }
        let (site, role, energy) = (spec.site, spec.role, spec.energy);
        let n_sizes = self.settings.windows.len();
        let ss = site * n_sizes + s;
        if w.start <= self.site_forgotten[ss] {
            self.counters_out.site_too_late += 1;
            return;
        }
        if w.start > self.site_newest[ss] {
            self.site_newest[ss] = w.start;
            self.forget_old(site, s);
        }
        let sign = if role == EnergyRole::Exported {
            -1.0
        } else {
            1.0
        };
        let kgce = rec.kgce.unwrap_or(0.0);
        let meter = u32::try_from(m).unwrap_or(u32::MAX);
        let site32 = u32::try_from(site).unwrap_or(u32::MAX);
        let size8 = u8::try_from(s).unwrap_or(u8::MAX);
        let rows = [
            (energy_row(energy), rec.amount, true),
            (TOTAL, kgce, rec.kgce.is_some()),
        ];
        for (row, amount, wanted) in rows {
            if !wanted {
                continue;
            }
            let key = (site32, u8::try_from(row).unwrap_or(u8::MAX), size8, w.start);
            let acc = self.site_acc.entry(key).or_insert_with(|| SiteAcc {
                amount: 0.0,
                kgce: 0.0,
                exported: 0.0,
                feedstock: 0.0,
                renewable: 0.0,
                coverage: 0.0,
                contributors: Vec::new(),
            });
            if acc.contributors.contains(&meter) {
                // Already counted (a window closed twice): never double count.
                continue;
            }
            acc.contributors.push(meter);
            acc.amount += sign * amount;
            acc.kgce += sign * kgce;
            acc.coverage += w.coverage;
            match role {
                EnergyRole::Exported => acc.exported += kgce,
                EnergyRole::Feedstock => acc.feedstock += kgce,
                EnergyRole::Renewable => acc.renewable += kgce,
                EnergyRole::Consumed => {}
            }
            let expected = self.expected[site][row].max(1);
            out.sites.push(SiteOut {
                site: site32,
                energy: EnergyType::ALL.get(row).copied(),
                size: self.settings.windows[s],
                start: w.start,
                amount: acc.amount,
                kgce: acc.kgce,
                meters: u32::try_from(acc.contributors.len()).unwrap_or(u32::MAX),
                coverage: (acc.coverage / f64::from(expected)).clamp(0.0, 1.0),
                exported_kgce: acc.exported,
                feedstock_kgce: acc.feedstock,
                renewable_kgce: acc.renewable,
            });
            self.counters_out.site_windows_emitted += 1;
            if acc.contributors.len() >= expected as usize {
                self.site_acc.remove(&key);
            }
        }
    }

    /// Forgets incomplete site windows of `(site, size)` older than the
    /// retention behind the newest one.
    fn forget_old(&mut self, site: usize, s: usize) {
        let n_sizes = self.settings.windows.len();
        let ss = site * n_sizes + s;
        let keep_from =
            self.site_newest[ss].saturating_sub(retention_secs(self.settings.windows[s]));
        let (site32, size8) = (
            u32::try_from(site).unwrap_or(u32::MAX),
            u8::try_from(s).unwrap_or(u8::MAX),
        );
        let mut forgotten = self.site_forgotten[ss];
        self.site_acc.retain(|k, _| {
            let old = k.0 == site32 && k.2 == size8 && k.3 < keep_from;
            if old {
                forgotten = forgotten.max(k.3);
            }
            !old
        });
        self.site_forgotten[ss] = forgotten.max(keep_from - 1);
    }

    fn committed_last_counter(&self, m: usize) -> Option<f64> {
        let n_sizes = self.settings.windows.len();
        self.counters
            .get(m * 2 * n_sizes)
            .and_then(CounterWindows::last)
            .map(|(_, v)| v)
    }

    fn stride(&self, m: usize) -> usize {
        1 + self.layout[m].tracked.len()
    }

    /// Absolute buffer slot of the `i`-th oldest reading of meter `m`
    /// (`i < cap`).
    fn slot_index(&self, m: usize, i: usize) -> usize {
        let mut k = self.buf_head[m] as usize + i;
        if k >= self.cap {
            k -= self.cap;
        }
        self.layout[m].buf_base + k
    }

    fn buf_values(&self, m: usize, slot: usize) -> &[f64] {
        let b = slot * self.stride_max;
        &self.buf_v[b..b + self.stride(m)]
    }

    /// Writes `t` and `scratch_vals` at the `i`-th position of meter `m`'s buffer.
    fn buf_write(&mut self, m: usize, i: usize, t: i64) {
        let slot = self.slot_index(m, i);
        self.buf_t[slot] = t;
        let base = slot * self.stride_max;
        let len = self.scratch_vals.len();
        self.buf_v[base..base + len].copy_from_slice(&self.scratch_vals);
    }
}

/// The row of an energy type in the site tables.
fn energy_row(e: EnergyType) -> usize {
    EnergyType::ALL.iter().position(|x| *x == e).unwrap_or(0)
}

/// How long incomplete site windows wait for missing meters.
fn retention_secs(size: WindowSize) -> i64 {
    match size {
        WindowSize::Month => 62 * 86_400,
        WindowSize::Day => 3 * 86_400,
        _ => 2 * 86_400,
    }
}

/// Little-endian writer for checkpoints.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn stat(&mut self, s: &Stat) {
        self.u32(s.n);
        self.f64(s.sum);
        self.f64(s.min);
        self.f64(s.max);
    }
}

/// Little-endian reader for checkpoints; every read fails cleanly at the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], AggregateError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or(AggregateError::Damaged)?;
        self.0 = rest;
        head.try_into().map_err(|_| AggregateError::Damaged)
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8], AggregateError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(AggregateError::Damaged)?;
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, AggregateError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, AggregateError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, AggregateError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, AggregateError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, AggregateError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn f64(&mut self) -> Result<f64, AggregateError> {
        Ok(f64::from_le_bytes(self.take()?))
    }
    fn stat(&mut self) -> Result<Stat, AggregateError> {
        Ok(Stat {
            n: self.u32()?,
            sum: self.f64()?,
            min: self.f64()?,
            max: self.f64()?,
        })
    }
}

/// One meter's committed state as read from a checkpoint.
struct SavedMeter {
    watermark: i64,
    committed_to: i64,
    counters: Vec<CounterWindows>,
    steam: Vec<[Stat; 2]>,
    gwins: Vec<GaugeWin>,
    stats: Vec<Stat>,
    buffer: Vec<(i64, Vec<f64>)>,
}

impl Aggregator {
    /// The committed state of every meter, the reorder buffers and the open
    /// site windows, as versioned, checksummed bytes. Restoring them after a
    /// crash re-emits every window closed after the checkpoint (overwriting
    /// what was written) and adds each final window to its site exactly once.
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let n_sizes = self.settings.windows.len();
        let mut w = Writer(Vec::with_capacity(64 + self.meters.len() * 256));
        w.0.extend_from_slice(MAGIC);
        w.u16(VERSION);
        w.u8(u8::try_from(n_sizes).unwrap_or(u8::MAX));
        for size in &self.settings.windows {
            w.u8(size_code(*size));
        }
        w.u32(u32::try_from(self.meters.len()).unwrap_or(u32::MAX));
        for (m, spec) in self.meters.iter().enumerate() {
            let nt = self.layout[m].tracked.len();
            w.u64(spec.key);
            w.u16(u16::try_from(nt).unwrap_or(u16::MAX));
            w.i64(self.watermark[m]);
            w.i64(self.committed_to[m]);
            let base = m * 2 * n_sizes;
            for s in 0..n_sizes {
                self.counters[base + s].write_to(&mut w.0);
                for st in &self.steam[base + s] {
                    w.stat(st);
                }
                let g = self.gwins[base + s];
                w.i64(g.start);
                w.i64(g.end);
                w.u32(g.samples);
            }
            let sb = self.layout[m].stats_base;
            for st in &self.stats[sb..sb + n_sizes * nt] {
                w.stat(st);
            }
            let len = self.buf_len[m] as usize;
            w.u32(u32::try_from(len).unwrap_or(0));
            for i in 0..len {
                let slot = self.slot_index(m, i);
                w.i64(self.buf_t[slot]);
                for v in self.buf_values(m, slot) {
                    w.f64(*v);
                }
            }
        }
        w.u32(u32::try_from(self.site_acc.len()).unwrap_or(u32::MAX));
        for (k, acc) in &self.site_acc {
            w.u64(self.sites.get(k.0 as usize).map_or(0, |s| s.key));
            w.u8(k.1);
            w.u8(size_code(self.settings.windows[usize::from(k.2)]));
            w.i64(k.3);
            for v in [
                acc.amount,
                acc.kgce,
                acc.exported,
                acc.feedstock,
                acc.renewable,
                acc.coverage,
            ] {
                w.f64(v);
            }
            w.u32(u32::try_from(acc.contributors.len()).unwrap_or(0));
            for c in &acc.contributors {
                w.u64(self.meters.get(*c as usize).map_or(0, |m| m.key));
            }
        }
        w.u32(u32::try_from(self.sites.len()).unwrap_or(u32::MAX));
        for (site, spec) in self.sites.iter().enumerate() {
            w.u64(spec.key);
            for s in 0..n_sizes {
                w.i64(self.site_newest[site * n_sizes + s]);
                w.i64(self.site_forgotten[site * n_sizes + s]);
            }
        }
        let crc = crc32c::crc32c(&w.0);
        w.u32(crc);
        w.0
    }

    /// Restores a [`Self::checkpoint`]. Meters are matched by key; a meter
    /// whose shape changed (other gauges) or that is new starts fresh. With
    /// another list of window sizes nothing is restored (the windows would
    /// not line up).
    ///
    /// # Errors
    /// When the bytes are not a checkpoint of this version or are damaged;
    /// the state is then unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<AggRestoreReport, AggregateError> {
        let body_len = bytes.len().checked_sub(4).ok_or(AggregateError::Damaged)?;
        let (body, crc) = bytes.split_at(body_len);
        if body.get(..4) != Some(MAGIC.as_slice()) {
            return Err(AggregateError::Format);
        }
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| AggregateError::Damaged)?);
        if crc32c::crc32c(body) != crc {
            return Err(AggregateError::Damaged);
        }
        let mut r = Reader(&body[4..]);
        if r.u16()? != VERSION {
            return Err(AggregateError::Format);
        }
        let n_sizes = usize::from(r.u8()?);
        let sizes = r.bytes(n_sizes)?;
        let mut report = AggRestoreReport::default();
        let same_sizes = sizes.len() == self.settings.windows.len()
            && sizes
                .iter()
                .zip(&self.settings.windows)
                .all(|(c, s)| *c == size_code(*s));
        let by_key: HashMap<u64, usize> = self
            .meters
            .iter()
            .enumerate()
            .map(|(i, m)| (m.key, i))
            .collect();
        let n_meters = r.u32()? as usize;
        let mut saved: Vec<(usize, SavedMeter)> = Vec::new();
        for _ in 0..n_meters {
            let key = r.u64()?;
            let nt = usize::from(r.u16()?);
            let mut sm = SavedMeter {
                watermark: r.i64()?,
                committed_to: r.i64()?,
                counters: Vec::with_capacity(n_sizes),
                steam: Vec::with_capacity(n_sizes),
                gwins: Vec::with_capacity(n_sizes),
                stats: Vec::with_capacity(n_sizes * nt),
                buffer: Vec::new(),
            };
            for _ in 0..n_sizes {
                let cw = CounterWindows::read_from(r.bytes(COUNTER_WINDOWS_BYTES)?)
                    .ok_or(AggregateError::Damaged)?;
                sm.counters.push(cw);
                sm.steam.push([r.stat()?, r.stat()?]);
                sm.gwins.push(GaugeWin {
                    start: r.i64()?,
                    end: r.i64()?,
                    samples: r.u32()?,
                });
            }
            for _ in 0..n_sizes * nt {
                sm.stats.push(r.stat()?);
            }
            let len = r.u32()? as usize;
            for _ in 0..len {
                let t = r.i64()?;
                let vals = (0..=nt).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
                sm.buffer.push((t, vals));
            }
            match by_key.get(&key) {
                Some(&m) if same_sizes && self.layout[m].tracked.len() == nt => saved.push((m, sm)),
                _ => report.skipped += 1,
            }
        }
        let n_site = r.u32()? as usize;
        let site_by_key: HashMap<u64, usize> = self
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        let mut site_acc = HashMap::new();
        for _ in 0..n_site {
            let site_key = r.u64()?;
            let row = r.u8()?;
            let size = r.u8()?;
            let start = r.i64()?;
            let mut f = [0.0; 6];
            for v in &mut f {
                *v = r.f64()?;
            }
            let n = r.u32()? as usize;
            let contributors = (0..n)
                .map(|_| r.u64())
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter_map(|k| by_key.get(&k).and_then(|m| u32::try_from(*m).ok()))
                .collect();
            let s = self
                .settings
                .windows
                .iter()
                .position(|w| size_code(*w) == size);
            if let (Some(&site), Some(s), true) = (site_by_key.get(&site_key), s, same_sizes) {
                let key = (
                    u32::try_from(site).unwrap_or(u32::MAX),
                    row,
                    u8::try_from(s).unwrap_or(u8::MAX),
                    start,
                );
                site_acc.insert(
                    key,
                    SiteAcc {
                        amount: f[0],
                        kgce: f[1],
                        exported: f[2],
                        feedstock: f[3],
                        renewable: f[4],
                        coverage: f[5],
                        contributors,
                    },
                );
            }
        }
        let n_sites = r.u32()? as usize;
        let mut horizons = Vec::new();
        for _ in 0..n_sites {
            let key = r.u64()?;
            let row = (0..n_sizes)
                .map(|_| Ok((r.i64()?, r.i64()?)))
                .collect::<Result<Vec<_>, AggregateError>>()?;
            if let (Some(&site), true) = (site_by_key.get(&key), same_sizes) {
                horizons.push((site, row));
            }
        }
        // Everything parsed: apply.
        let keep = self.counters_out;
        let mut scratch = AggOutput::default();
        for (m, sm) in saved {
            let base = m * 2 * n_sizes;
            self.counters[base..base + n_sizes].copy_from_slice(&sm.counters);
            self.steam[base..base + n_sizes].copy_from_slice(&sm.steam);
            self.gwins[base..base + n_sizes].copy_from_slice(&sm.gwins);
            let sb = self.layout[m].stats_base;
            self.stats[sb..sb + sm.stats.len()].copy_from_slice(&sm.stats);
            self.watermark[m] = sm.watermark;
            self.committed_to[m] = sm.committed_to;
            self.buf_head[m] = 0;
            self.buf_len[m] = 0;
            let cap = self.cap;
            for (t, vals) in sm.buffer {
                if cap == 0 {
                    // Lateness switched off: the buffered readings are committed now.
                    self.scratch_vals.clear();
                    self.scratch_vals.extend_from_slice(&vals);
                    let v = std::mem::take(&mut self.scratch_vals);
                    self.feed(m, Feed::Only, t, &v, &mut scratch);
                    self.scratch_vals = v;
                    self.committed_to[m] = t;
                    continue;
                }
                if self.buf_len[m] as usize == cap {
                    self.commit_oldest(m, &mut scratch);
                }
                self.scratch_vals.clear();
                self.scratch_vals.extend_from_slice(&vals);
                let pos = self.buf_len[m] as usize;
                self.buf_write(m, pos, t);
                self.buf_len[m] += 1;
            }
            self.rebuild_speculative(m, &mut scratch);
            report.restored += 1;
        }
        report.site_windows = site_acc.len();
        self.site_acc.extend(site_acc);
        for (site, row) in horizons {
            for (s, (newest, forgotten)) in row.into_iter().enumerate() {
                self.site_newest[site * n_sizes + s] = newest;
                self.site_forgotten[site * n_sizes + s] = forgotten;
            }
        }
        self.counters_out = keep;
        Ok(report)
    }
}

/// A size's code in checkpoints: its position in [`WindowSize::ALL`].
fn size_code(size: WindowSize) -> u8 {
    WindowSize::ALL
        .iter()
        .position(|s| *s == size)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(u8::MAX)
}
