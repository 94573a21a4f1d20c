//! The streaming join of a boiler's inputs per window (module doc of
//! [`super`]).
//!
//! Why a join: a boiler window needs the closed windows of several meters
//! (the fuel meter's consumption, the output meter's consumption, gauge
//! means of the steam line and the flue-gas analyzer), which the
//! aggregator closes one meter at a time, whenever each meter's first
//! reading past the boundary arrives, possibly in different batches.
//!
//! # Emission rules
//! Per (boiler, window size, window start) the stage collects what arrives
//! and writes the window
//! * at once when every configured input has arrived (fuel, output, every
//!   gauge input that is a meter point; fixed values are always there);
//! * else when its grace has passed: the boiler's clock (the newest reading
//!   slot of any of its meters) reaches the window's end + the grace, with
//!   what it has;
//! * again (same timestamp, so InfluxDB overwrites it) whenever an input of
//!   a window already written arrives later (a meter catching up, a late
//!   reading re-emitted by the aggregator).
//!
//! A window is kept for re-emission until the clock passes its end + grace
//! + the longest window size; at most [`MAX_OPEN`] windows per boiler and
//!   size are open (the oldest is written and dropped first).
//!
//! # Inputs
//! * a counter: the meter's `consumption` window (amount, coverage,
//!   estimated) as the aggregator wrote it;
//! * a gauge: the window's mean, min and max of the good samples; coverage =
//!   good samples / (window length ÷ the meter's poll interval), capped at 1;
//! * a fixed value: `Mean::fixed`, coverage 1.
//!
//! The fuel record in force is the latest whose `from` is not after the
//! window's start. Nothing is allocated per reading or per window: the
//! index from meter to boiler inputs is built once, open windows live in
//! vectors of fixed capacity, and the caller's output vector is reused.

use jiff::tz::TimeZone;

use super::{
    Amount, BoilerResult, BoilerSpec, BoilerState, FuelRecord, Inputs, Mean, OutOfLimit,
    WindowInputs,
};
use crate::pipeline::aggregate::AggOutput;
use crate::pipeline::steam::SteamMargins;
use crate::pipeline::window::{WindowSize, window_end};

/// Open windows per boiler and window size (re-emission and out-of-order
/// meters need a few; more means a meter is far behind the others).
pub const MAX_OPEN: usize = 16;

/// The formulas: the inputs a boiler has configured and one window's inputs
/// in, one result out ([`super::calc::evaluate_with`] in the gateway).
pub type Evaluate =
    fn(&BoilerSpec, Inputs, Option<&FuelRecord>, &WindowInputs, SteamMargins) -> BoilerResult;

/// A boiler's gauge inputs, in the order of [`StageBoiler::gauges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Steam pressure, MPa gauge.
    SteamPressure,
    /// Steam temperature, °C.
    SteamTemperature,
    /// Hot-water supply temperature, °C.
    Supply,
    /// Hot-water return temperature, °C.
    Return,
    /// Feed-water temperature, °C.
    FeedWater,
    /// Exhaust temperature, °C.
    Exhaust,
    /// O₂, % dry.
    O2,
    /// CO, ppm.
    Co,
    /// Cold-air temperature, °C.
    ColdAir,
}

impl Slot {
    /// Every slot, in index order.
    pub const ALL: [Slot; 9] = [
        Slot::SteamPressure,
        Slot::SteamTemperature,
        Slot::Supply,
        Slot::Return,
        Slot::FeedWater,
        Slot::Exhaust,
        Slot::O2,
        Slot::Co,
        Slot::ColdAir,
    ];

    /// The field of [`WindowInputs`] this slot fills.
    fn field(self, w: &mut WindowInputs) -> &mut Option<Mean> {
        match self {
            Slot::SteamPressure => &mut w.steam_pressure,
            Slot::SteamTemperature => &mut w.steam_temperature,
            Slot::Supply => &mut w.supply_temperature,
            Slot::Return => &mut w.return_temperature,
            Slot::FeedWater => &mut w.feed_water,
            Slot::Exhaust => &mut w.exhaust,
            Slot::O2 => &mut w.o2,
            Slot::Co => &mut w.co_ppm,
            Slot::ColdAir => &mut w.cold_air,
        }
    }
}

/// Where one gauge input comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// Not configured.
    None,
    /// A configured constant.
    Fixed(f64),
    /// A gauge of a meter: its window statistics.
    Point {
        /// Meter index.
        meter: u32,
        /// Point index in the meter's profile.
        point: u16,
    },
}

/// What the stage needs to know about one boiler.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBoiler {
    /// Constants the formulas need.
    pub spec: BoilerSpec,
    /// Lab records, ascending by `from`.
    pub records: Vec<FuelRecord>,
    /// Gas LHV measured on the fuel meter, kJ/m³.
    pub meter_lhv_kj_per_m3: Option<f64>,
    /// Blow-down, % of the steam mass.
    pub blowdown_pct: Option<f64>,
    /// Meter index of the fuel meter (its consumption window is the fuel).
    pub fuel_meter: u32,
    /// Meter index of the output meter (its consumption window is the output).
    pub output_meter: u32,
    /// Gauge inputs, in the order of [`Slot::ALL`].
    pub gauges: [Source; 9],
    /// Time zone of the boiler's site (window lengths of days and months).
    pub tz: TimeZone,
    /// Seconds after a window's end that it waits for missing inputs.
    pub grace_secs: i64,
}

/// The automatic grace of a boiler: 2 × the longest poll interval of its
/// meters + the aggregation's allowed lateness (a meter polled at the end
/// of its interval, once late, still makes it).
#[must_use]
pub fn auto_grace(poll_secs: impl IntoIterator<Item = i64>, allowed_lateness_secs: i64) -> i64 {
    2 * poll_secs.into_iter().max().unwrap_or(0) + allowed_lateness_secs
}

/// One evaluated boiler window, to be written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoilerOut {
    /// Boiler index (configuration order).
    pub boiler: u32,
    /// Window size.
    pub size: WindowSize,
    /// Window start (the timestamp written).
    pub start: i64,
    /// The evaluation.
    pub result: BoilerResult,
}

/// What the stage did for one boiler, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoilerCounters {
    /// Windows written the first time, by state: running, off, partial.
    pub windows: [u64; 3],
    /// Windows written again after a later input.
    pub reemitted: u64,
    /// Windows that broke a limit, per item (order of [`OutOfLimit::NAMES`]);
    /// a re-emission counts only an item its window did not break before.
    pub out_of_limit: [u64; 3],
    /// Windows whose two methods disagree (counted once per window).
    pub disagreements: u64,
}

impl BoilerCounters {
    /// Index of `state` in [`BoilerCounters::windows`].
    #[must_use]
    pub fn state_index(state: BoilerState) -> usize {
        match state {
            BoilerState::Running => 0,
            BoilerState::Off => 1,
            BoilerState::Partial => 2,
        }
    }
}

/// What a meter's window feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The fuel counter.
    Fuel,
    /// The output counter.
    Output,
    /// A gauge input.
    Gauge {
        /// Index in [`Slot::ALL`].
        slot: u8,
        /// Point index in the meter's profile.
        point: u16,
    },
}

/// Bits of [`Open::have`]: those of [`Inputs`] (fuel, output, then one per
/// slot in the order of [`Slot::ALL`]).
const FUEL: u16 = Inputs::FUEL.0;
const OUTPUT: u16 = Inputs::OUTPUT.0;
const fn slot_bit(slot: usize) -> u16 {
    1 << (2 + slot)
}

/// One window being joined.
#[derive(Debug, Clone, Copy)]
struct Open {
    start: i64,
    end: i64,
    inputs: WindowInputs,
    /// Inputs arrived (bits above).
    have: u16,
    /// An input arrived since the last emission pass.
    touched: bool,
    /// Written at least once.
    emitted: bool,
    /// Limits broken and disagreement at the last writing.
    last_out: OutOfLimit,
    last_disagree: bool,
}

/// Per-boiler state.
#[derive(Debug, Clone)]
struct Tracked {
    spec: StageBoiler,
    /// Inputs that must arrive for the window to be complete.
    required: u16,
    /// Inputs configured: the required ones and the fixed values.
    configured: Inputs,
    /// Newest reading slot of any of its meters.
    clock: i64,
    /// Something changed since the last emission pass.
    dirty: bool,
    /// Open windows per window size (index of the stage's sizes).
    open: Vec<Vec<Open>>,
    counters: BoilerCounters,
}

/// The boiler stage: joins, evaluates and emits boiler windows.
#[derive(Debug, Clone)]
pub struct BoilerStage {
    sizes: Vec<WindowSize>,
    boilers: Vec<Tracked>,
    /// Per meter: which boilers' inputs its windows feed.
    by_meter: Vec<Vec<(u32, Role)>>,
    /// Per meter: its poll interval, seconds.
    poll_secs: Vec<i64>,
    /// Longest window size, seconds (a month: 31 days and a DST hour).
    longest_secs: i64,
    margins: SteamMargins,
    evaluate: Evaluate,
}

impl BoilerStage {
    /// A stage for `boilers` over `meter_poll_secs` (every configured meter's
    /// poll interval, by meter index) and the aggregation's window `sizes`,
    /// evaluating with `evaluate` ([`super::calc::evaluate`]).
    #[must_use]
    pub fn new(
        boilers: Vec<StageBoiler>,
        meter_poll_secs: Vec<i64>,
        sizes: Vec<WindowSize>,
        margins: SteamMargins,
        evaluate: Evaluate,
    ) -> BoilerStage {
        let mut by_meter: Vec<Vec<(u32, Role)>> = vec![Vec::new(); meter_poll_secs.len()];
        let mut states = Vec::with_capacity(boilers.len());
        for (b, spec) in boilers.into_iter().enumerate() {
            let b = u32::try_from(b).unwrap_or(u32::MAX);
            let mut add = |meter: u32, role: Role| {
                if let Some(list) = by_meter.get_mut(meter as usize) {
                    list.push((b, role));
                }
            };
            add(spec.fuel_meter, Role::Fuel);
            add(spec.output_meter, Role::Output);
            let (mut required, mut fixed) = (FUEL | OUTPUT, 0);
            for (slot, source) in spec.gauges.iter().enumerate() {
                match *source {
                    Source::Point { meter, point } => {
                        add(
                            meter,
                            Role::Gauge {
                                slot: slot as u8,
                                point,
                            },
                        );
                        required |= slot_bit(slot);
                    }
                    Source::Fixed(_) => fixed |= slot_bit(slot),
                    Source::None => {}
                }
            }
            states.push(Tracked {
                spec,
                required,
                configured: Inputs(required | fixed),
                clock: i64::MIN,
                dirty: false,
                open: (0..sizes.len())
                    .map(|_| Vec::with_capacity(MAX_OPEN))
                    .collect(),
                counters: BoilerCounters::default(),
            });
        }
        let longest_secs = sizes
            .iter()
            .map(|s| match s {
                WindowSize::Day => 25 * 3600,
                WindowSize::Month => 31 * 86_400 + 3600,
                other => other.fixed_seconds().unwrap_or(3600),
            })
            .max()
            .unwrap_or(0);
        BoilerStage {
            sizes,
            boilers: states,
            by_meter,
            poll_secs: meter_poll_secs,
            longest_secs,
            margins,
            evaluate,
        }
    }

    /// Number of boilers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.boilers.len()
    }

    /// True without boilers (the stage then does nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.boilers.is_empty()
    }

    /// True when windows of `meter` feed some boiler.
    #[must_use]
    pub fn uses_meter(&self, meter: u32) -> bool {
        self.by_meter
            .get(meter as usize)
            .is_some_and(|l| !l.is_empty())
    }

    /// What the stage did for boiler `b` so far.
    #[must_use]
    pub fn counters(&self, b: usize) -> BoilerCounters {
        self.boilers
            .get(b)
            .map_or_else(BoilerCounters::default, |s| s.counters)
    }

    /// Joins one batch: the aggregator's output `agg` and the batch's
    /// reading `slots` (meter index, slot; those of meters no boiler uses
    /// are skipped), then appends every window to write to `out`.
    pub fn process(
        &mut self,
        agg: &AggOutput,
        slots: impl IntoIterator<Item = (u32, i64)>,
        out: &mut Vec<BoilerOut>,
    ) {
        if self.boilers.is_empty() {
            return;
        }
        for c in &agg.consumption {
            let Some(si) = self.size_index(c.size) else {
                continue;
            };
            for k in 0..self.by_meter.get(c.meter as usize).map_or(0, Vec::len) {
                let (b, role) = self.by_meter[c.meter as usize][k];
                // A gauge source's own counter feeds nothing.
                let bit = match role {
                    Role::Fuel => FUEL,
                    Role::Output => OUTPUT,
                    Role::Gauge { .. } => continue,
                };
                let Some(w) = self.window(b as usize, si, c.start, out) else {
                    continue;
                };
                let amount = Some(Amount {
                    amount: c.amount,
                    coverage: c.coverage,
                    estimated: c.estimated,
                });
                if bit == FUEL {
                    w.inputs.fuel = amount;
                } else {
                    w.inputs.output = amount;
                }
                w.have |= bit;
                w.touched = true;
            }
        }
        for g in &agg.gauges {
            let Some(si) = self.size_index(g.size) else {
                continue;
            };
            let stats = agg
                .gauge_stats
                .get(g.stats_start as usize..g.stats_end as usize)
                .unwrap_or(&[]);
            let poll = self.poll_secs.get(g.meter as usize).copied().unwrap_or(0);
            for k in 0..self.by_meter.get(g.meter as usize).map_or(0, Vec::len) {
                let (b, role) = self.by_meter[g.meter as usize][k];
                let Role::Gauge { slot, point } = role else {
                    continue;
                };
                let Some(w) = self.window(b as usize, si, g.start, out) else {
                    continue;
                };
                // A window of the meter without a good sample of this gauge
                // has arrived all the same: the input is missing, not late.
                let expected = if poll > 0 {
                    (w.inputs.window_secs / poll as f64).max(1.0)
                } else {
                    1.0
                };
                *Slot::ALL[slot as usize].field(&mut w.inputs) =
                    stats.iter().find(|s| s.point == point).map(|s| Mean {
                        mean: s.mean,
                        min: s.min,
                        max: s.max,
                        coverage: (f64::from(s.samples) / expected).min(1.0),
                    });
                w.have |= slot_bit(slot as usize);
                w.touched = true;
            }
        }
        for (meter, slot) in slots {
            for &(b, _) in self
                .by_meter
                .get(meter as usize)
                .map_or(&[][..], Vec::as_slice)
            {
                let s = &mut self.boilers[b as usize];
                if slot > s.clock {
                    s.clock = slot;
                    s.dirty = true;
                }
            }
        }
        for b in 0..self.boilers.len() {
            if self.boilers[b].dirty {
                self.boilers[b].dirty = false;
                self.emit_due(b, out);
            }
        }
    }

    fn size_index(&self, size: WindowSize) -> Option<usize> {
        self.sizes.iter().position(|s| *s == size)
    }

    /// The open window of boiler `b`, size index `si`, starting at
    /// `start`: found, or opened (writing and dropping the oldest when
    /// [`MAX_OPEN`] are open). `None` for a window already dropped.
    fn window(
        &mut self,
        b: usize,
        si: usize,
        start: i64,
        out: &mut Vec<BoilerOut>,
    ) -> Option<&mut Open> {
        let longest = self.longest_secs;
        let size = self.sizes[si];
        let s = &mut self.boilers[b];
        s.dirty = true;
        if let Some(i) = s.open[si].iter().position(|w| w.start == start) {
            return Some(&mut self.boilers[b].open[si][i]);
        }
        let end = window_end(size, &s.spec.tz, start);
        if s.clock != i64::MIN && s.clock >= end + s.spec.grace_secs + longest {
            return None;
        }
        if s.open[si].len() >= MAX_OPEN
            && let Some((oldest, _)) = s.open[si].iter().enumerate().min_by_key(|(_, w)| w.start)
        {
            let w = s.open[si].swap_remove(oldest);
            if !w.emitted {
                let mut w = w;
                self.write(b, si, &mut w, out);
            }
        }
        let s = &mut self.boilers[b];
        let mut inputs = WindowInputs {
            window_secs: (end - start) as f64,
            blowdown_pct: s.spec.blowdown_pct,
            meter_lhv_kj_per_m3: s.spec.meter_lhv_kj_per_m3,
            ..WindowInputs::default()
        };
        for (slot, source) in s.spec.gauges.iter().enumerate() {
            if let Source::Fixed(v) = *source {
                *Slot::ALL[slot].field(&mut inputs) = Some(Mean::fixed(v));
            }
        }
        s.open[si].push(Open {
            start,
            end,
            inputs,
            have: 0,
            touched: false,
            emitted: false,
            last_out: OutOfLimit::default(),
            last_disagree: false,
        });
        s.open[si].last_mut()
    }

    /// Writes every window of boiler `b` that is due, and drops the old.
    fn emit_due(&mut self, b: usize, out: &mut Vec<BoilerOut>) {
        for si in 0..self.sizes.len() {
            let mut i = 0;
            while i < self.boilers[b].open[si].len() {
                let s = &self.boilers[b];
                let mut w = s.open[si][i];
                let complete = w.have & s.required == s.required;
                let past_grace = s.clock >= w.end + s.spec.grace_secs;
                let due = if w.emitted {
                    w.touched
                } else {
                    (w.touched && complete) || past_grace
                };
                if due {
                    self.write(b, si, &mut w, out);
                }
                w.touched = false;
                let s = &mut self.boilers[b];
                if s.clock >= w.end + s.spec.grace_secs + self.longest_secs {
                    s.open[si].swap_remove(i);
                } else {
                    s.open[si][i] = w;
                    i += 1;
                }
            }
        }
    }

    /// Evaluates window `w` of boiler `b` and appends it to `out`.
    fn write(&mut self, b: usize, si: usize, w: &mut Open, out: &mut Vec<BoilerOut>) {
        let s = &mut self.boilers[b];
        let records = &s.spec.records;
        let record = records
            .partition_point(|r| r.from <= w.start)
            .checked_sub(1)
            .map(|i| &records[i]);
        let result = (self.evaluate)(&s.spec.spec, s.configured, record, &w.inputs, self.margins);
        let c = &mut s.counters;
        let (prev_out, prev_disagree) = if w.emitted {
            c.reemitted += 1;
            (w.last_out, w.last_disagree)
        } else {
            c.windows[BoilerCounters::state_index(result.state)] += 1;
            (OutOfLimit::default(), false)
        };
        for (n, (item, _)) in OutOfLimit::NAMES.iter().enumerate() {
            if result.out_of_limit.contains(*item) && !prev_out.contains(*item) {
                c.out_of_limit[n] += 1;
            }
        }
        if result.methods_disagree && !prev_disagree {
            c.disagreements += 1;
        }
        w.emitted = true;
        w.last_out = OutOfLimit(prev_out.0 | result.out_of_limit.0);
        w.last_disagree = prev_disagree || result.methods_disagree;
        out.push(BoilerOut {
            boiler: u32::try_from(b).unwrap_or(u32::MAX),
            size: self.sizes[si],
            start: w.start,
            result,
        });
    }
}
