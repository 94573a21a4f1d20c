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
//! Polled meters ([`MeterSpec::ordered`]) deliver in slot order by
//! construction, so they have neither a reorder buffer nor a speculative
//! state: their windows are final when they close (written and rolled up at
//! once), and a reading older than their newest is rejected (`time`).
//!
//! # Memory
//! Per meter and window size: one [`CounterWindows`] (≈ 64 bytes), one gauge
//! window (24 bytes) and 28 bytes per tracked gauge, twice (committed and
//! speculative) for a meter that can deliver late, once for an ordered one;
//! plus, for the former, a reorder buffer of `max_reorder_readings × (1 +
//! tracked gauges) × 8 + 8` bytes. A polled 1 000-point meter with the four
//! default windows takes about 112 KB. Nothing is allocated per reading.
//!
//! # Layout
//! This file holds the specs, the [`Aggregator`]'s tables and
//! [`Aggregator::process`]; `reorder` is the lateness buffer, `feed` the
//! counter windows of one state, `gauges` the gauge statistics, `sites` the
//! roll-ups, `output` what is handed to the encoder and `checkpoint` the
//! state as bytes.

mod checkpoint;
mod feed;
mod gauges;
mod output;
mod reorder;
mod sites;

pub use self::checkpoint::AggRestoreReport;
pub use self::output::{AggOutput, ConsumptionOut, GaugeStatOut, GaugeWindowOut, SiteOut};

use std::collections::HashMap;

use jiff::tz::TimeZone;

use self::checkpoint::size_code;
use self::gauges::{GaugeWin, Stat};
use self::reorder::buffer_cap;
use self::sites::{SiteAcc, SiteKey, energy_row};
use super::energy::{Conversion, EnergyRole};
use super::window::{ClosedWindow, CounterWindows, WindowSize};
use crate::model::{EnergyType, Quality, ReadingBatch};

/// Index of the `total` row in site roll-ups (after the energy types).
const TOTAL: usize = EnergyType::ALL.len();

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
    /// Its readings always arrive in slot order (a polled meter: one poller
    /// reads it, slot after slot), so it has no reorder buffer and one state
    /// instead of two: a reading older than its newest is rejected (`time`).
    /// Meters that publish (MQTT) can deliver late and keep both.
    pub ordered: bool,
}

/// What the aggregator needs to know about one site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    /// Stable identity for checkpoints (hash of the site id).
    pub key: u64,
    /// The site's time zone (windows are aligned to it).
    pub tz: TimeZone,
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
    /// First reorder-buffer slot of this meter (into `buf_t`).
    buf_base: usize,
    /// First buffered value of this meter (into `buf_v`; `1 + tracked` per slot).
    vbase: usize,
    /// Reorder-buffer slots: 0 for an ordered meter or without lateness.
    cap: usize,
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

/// The aggregation state of every configured meter.
#[derive(Debug, Clone)]
pub struct Aggregator {
    settings: AggregatorSettings,
    /// Indices into `settings.windows`, shortest size first.
    order: Vec<usize>,
    meters: Vec<MeterSpec>,
    sites: Vec<SiteSpec>,
    layout: Vec<Layout>,
    /// `[meter][state][size]`, state 0 committed, 1 speculative.
    counters: Vec<CounterWindows>,
    /// Steam inputs per counter window: pressure and temperature statistics.
    steam: Vec<[Stat; 2]>,
    gwins: Vec<GaugeWin>,
    /// `[meter: stats_base][state][size][tracked]`; ordered meters have state 0 only.
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
        let mut buf_values = 0;
        let mut stride_max = 1;
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
            let meter_cap = if m.ordered { 0 } else { cap };
            let (nt, states) = (tracked.len(), if meter_cap > 0 { 2 } else { 1 });
            layout.push(Layout {
                n_emit,
                steam,
                stats_base: stats_len,
                buf_base: buf_slots,
                vbase: buf_values,
                cap: meter_cap,
                tracked,
            });
            stats_len += states * n_sizes * nt;
            buf_slots += meter_cap;
            buf_values += meter_cap * (1 + nt);
            stride_max = stride_max.max(1 + nt);
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
        let n = meters.len();
        Aggregator {
            counters: vec![CounterWindows::new(); n * 2 * n_sizes],
            steam: vec![[Stat::EMPTY; 2]; n * 2 * n_sizes],
            gwins: vec![GaugeWin::NONE; n * 2 * n_sizes],
            stats: vec![Stat::EMPTY; stats_len],
            buf_t: vec![0; buf_slots],
            buf_v: vec![f64::NAN; buf_values],
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
}
