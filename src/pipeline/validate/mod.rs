//! Validation: every value judged, flagged with the SCHEMA.md quality bits,
//! never dropped, never changed.
//!
//! A metrology institute's consumption figures are evidence, so a doubtful
//! value must say why it is doubtful, and consumption must never be invented
//! across a reset, a glitch or a replayed slot. [`Validator`] is the pure core
//! of that: it owns per-meter state in flat tables indexed by
//! [`MeterId`](crate::model::MeterId) and point index, adds bits to the
//! values of a [`ReadingBatch`] in place and writes, per value, the point's
//! **continuous counter**: the raw counter corrected for rollovers and
//! replacements, monotonic across them, `NaN` for gauges and for values that
//! cannot be trusted. Aggregation differences the continuous counter; it never
//! has to know about wraps or meter swaps.
//!
//! # Rules (per value, in this order)
//! 1. **Time** (whole reading). `slot > now + max_future_skew_secs` or
//!    `slot < now − max_lateness_secs`: [`Quality::TIME`]. `slot` equal to the
//!    meter's last seen slot: [`Quality::DUPLICATE`]. `slot` older than the
//!    last seen slot by more than `reorder_window_secs`: [`Quality::TIME`].
//!    These readings update no state and have continuous `NaN`, so a replayed
//!    slot is never counted twice. Late, but counted: the bit is in the reason
//!    counters.
//!
//!    A reading older than the last seen slot but within the window
//!    (`last_slot − reorder_window_secs ≤ slot < last_slot`) is a **late
//!    reading**. It is judged statelessly and **updates no state at all**
//!    (last values, baselines, frozen runs, pending spike, previous rate, the
//!    meter's last slot), so the in-order readings around it are judged exactly
//!    as if it had never come. It is not a duplicate: the validator only knows
//!    the newest slot, so a repeat of an older slot is for aggregation to
//!    detect. Rules 2 to 4 apply as usual; gauges get no frozen judgment;
//!    counters get no monotonicity, spike, rollover or frozen judgment
//!    (aggregation checks a late value against its neighbouring readings) and
//!    the continuous value `base_cont + (value − base_raw)` of the **current**
//!    baseline when that baseline is known to have been in force at `slot`:
//!    it was set before `slot` (a baseline is set by the first value, a
//!    rollover, a reset, a declared replacement or a level shift) and either a
//!    trusted value on it is at least as new as `slot`, or the late value
//!    plausibly continues from the last trusted one (`value ≥ last`, within
//!    the rate limit when a rate is known, no declared replacement due by
//!    `slot`). Otherwise (it predates a discontinuity, or an unseen one may lie
//!    between the last trusted value and it) it gets [`Quality::TIME`] and
//!    continuous `NaN`: its continuous value cannot be known.
//!    `reorder_window_secs = 0` disables late readings.
//! 2. **Calibration** (whole reading): `slot ≥ calibration_due` sets
//!    [`Quality::CALIBRATION`] on every point. It is informational: the value is
//!    still the meter's measurement, so state and continuous are still updated
//!    (otherwise a recalibration would show up as a consumption jump);
//!    aggregation decides whether it accepts overdue meters.
//! 3. **No value**: `TIMEOUT`, `EXCEPTION` or `SENTINEL` (set by the decoder),
//!    or a `NaN`/infinite value without a bit (then [`Quality::SENTINEL`] is
//!    added): no state update, continuous `NaN`.
//! 4. **Range**: outside `[min, max]`: [`Quality::RANGE`], no state update.
//! 5. **Gauges, frozen**: a value bit-identical to the previous trusted value
//!    extends a run; the `frozen_after`-th value of a run and later ones get
//!    [`Quality::FROZEN`] (they still extend the run). Missing values neither
//!    extend nor break a run.
//! 6. **Counters**, against the last good value `last` at `last_slot`
//!    (`limit = max_rate_per_hour × elapsed_hours × spike_margin` when a rate is
//!    known):
//!    * a declared [`Replacement`] with `at ≤ slot` not yet applied: the step's
//!      consumption is `(old_final − last) + (value − new_initial)`, exact, not
//!      flagged (several pending replacements chain in order);
//!    * `value == last` while the meter's `rate_point` gauge says energy flows:
//!      [`Quality::FROZEN`] when `min(previous rate, current rate) × elapsed_hours
//!      > resolution` (a steady flow worth more than one count of the register
//!      must have ticked it at least once). No state update, continuous `NaN`;
//!    * `value ≥ last`, increase within `limit` (or no rate known): good;
//!    * `value ≥ last`, increase above `limit`: [`Quality::SPIKE`], continuous
//!      `NaN`, state keeps the last good value, so one glitch costs no real
//!      consumption (the next reading is measured from the last good value). If
//!      the jump **persists** (the next reading is still a spike from `last` but
//!      a plausible increase from the spiked value), it is treated as a level
//!      shift: a new baseline starts at the spiked value, the jump itself is not
//!      counted, the increase after it is. Consumption is never invented;
//!    * `value < last`, `rollover` set and the wrap plausible:
//!      [`Quality::ROLLOVER`]; the continuous counter advances by exactly
//!      `(rollover − last) + value` (computed in that order). Plausible means
//!      `(rollover − last) + value ≤ limit` when a rate is known, otherwise
//!      `last ≥ 0.9 × rollover` and `value < 0.1 × rollover` (top and bottom
//!      tenth of the register's range);
//!    * `value < last` otherwise: [`Quality::BACKWARDS`] (reset or undeclared
//!      replacement): a new baseline starts at `value`, the continuous counter
//!      does not move (the step's consumption is 0, never invented).
//!
//! `rollover` is the wrap **modulus**: the value the register would show one
//! count after its maximum (`100_000_000.00` for a display ending at
//! `99_999_999.99`; `2^32 × scale` for a U32 register).
//!
//! # Continuous counter arithmetic
//! Per counter point the state holds a baseline `(base_raw, base_cont)` and
//! `continuous = base_cont + (value − base_raw)`. The first value sets
//! `base_raw = base_cont = value`, so continuous equals the raw value until
//! the first wrap or replacement and differences of continuous values inside
//! one baseline are plain differences of raw values. A rollover sets
//! `base_cont = c_last + (rollover − last)`, `base_raw = 0`; a reset sets
//! `base_cont = c_last`, `base_raw = value`; a replacement sets
//! `base_cont = c_last + (old_final − last)`, `base_raw = new_initial`.
//! Each baseline change rounds once at the magnitude of the counter. The
//! state also keeps the slot each baseline was set at (`baseline_since`), so a
//! late reading is placed only on a baseline already in force at its slot.
//!
//! # Integration
//! The gateway holds one `Validator` (in `app::stages`) between the
//! pollers and the line-protocol encoder: `validate(&mut batch, now, &mut
//! continuous)` then encode `batch` (bits into `q`/`q_detail`) and hand
//! `continuous` to aggregation. [`PointRules::from_point`] builds the defaults
//! from the profile; per-meter overrides (max rate, margin, frozen polls,
//! calibration due date, declared replacements, `rate_point`) come from the
//! meter configuration. [`Validator::checkpoint`] bytes are written with
//! [`crate::checkpoint::write_atomic`] (temp file, fsync, rename, directory
//! fsync) periodically and at shutdown, and passed to
//! [`Validator::restore`] at start. [`Validator::counters`] feed stats/logs.
//!
//! Late readings reach aggregation like any other: a value without
//! [`Quality::TIME`] and, for counters, a finite continuous value, at a slot
//! older than readings already seen. Aggregation must place it in the window
//! of its slot (re-emitting that window if it was already emitted, within its
//! allowed lateness), check a late counter's continuous value against the
//! neighbouring readings of that window, and ignore a repeat of a slot it
//! already holds. `reorder_window_secs` should therefore not exceed the
//! aggregation's allowed lateness: older readings are flagged here.
//!
//! # Layout
//! This file holds the rule types and the [`Validator`] that walks a batch;
//! `rules` judges one value, `state` is what the validator remembers per
//! meter and point, `checkpoint` turns that state into bytes and back.

mod checkpoint;
mod rules;
mod state;

use std::collections::HashMap;

pub use self::checkpoint::{RestoreReport, ValidateError};

use self::rules::{count, judge_counter, judge_gauge, judge_late_counter, out_of_range, trusted};
use self::state::{MeterSlot, PointState};

use crate::model::{Quality, ReadingBatch};
use crate::profiles::{PointDef, PointKind};

/// Number of quality bits, one reason counter each.
pub const N_REASONS: usize = 12;

/// Bits meaning "no value was obtained": the value updates no state.
const NO_VALUE: Quality = Quality(Quality::TIMEOUT.0 | Quality::EXCEPTION.0 | Quality::SENTINEL.0);

/// The rules of one point, from its profile and the meter's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRules {
    /// Counter or gauge.
    pub kind: PointKind,
    /// Plausible minimum (inclusive), in the point's unit.
    pub min: Option<f64>,
    /// Plausible maximum (inclusive), in the point's unit.
    pub max: Option<f64>,
    /// Counter wrap modulus (value one count past the register's maximum).
    pub rollover: Option<f64>,
    /// Physical maximum increase per hour (rated power or flow), counters only.
    pub max_rate_per_hour: Option<f64>,
    /// Tolerance factor on `max_rate_per_hour` (e.g. 1.5).
    pub spike_margin: f64,
    /// Gauges: this many bit-identical trusted values in a row means frozen.
    pub frozen_after: Option<u32>,
    /// One count of the register in the point's unit (for the frozen-counter
    /// threshold); `|scale|` from the profile, times PT/CT where they apply.
    pub resolution: f64,
}

impl PointRules {
    /// Default margin on the physical maximum rate.
    pub const DEFAULT_SPIKE_MARGIN: f64 = 1.5;

    /// Rules from the profile: kind, range, rollover and resolution (`|scale|`);
    /// no rate limit, margin [`Self::DEFAULT_SPIKE_MARGIN`], no frozen check.
    #[must_use]
    pub fn from_point(def: &PointDef) -> PointRules {
        PointRules {
            kind: def.kind,
            min: def.min,
            max: def.max,
            rollover: def.rollover,
            max_rate_per_hour: def.max_rate_per_hour,
            spike_margin: def.spike_margin.unwrap_or(Self::DEFAULT_SPIKE_MARGIN),
            frozen_after: def.frozen_after,
            resolution: def.scale.abs(),
        }
    }
}

/// A declared meter replacement, as the metrology record states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replacement {
    /// Time of the swap, Unix seconds: the first reading at or after it reads the new meter.
    pub at: i64,
    /// Last reading of the old meter.
    pub old_final: f64,
    /// First reading of the new meter when installed.
    pub new_initial: f64,
}

/// The rules of one meter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeterRules {
    /// Stable identity of the meter for checkpoints (e.g. a hash of its id and
    /// profile id); 0 when unused. A checkpointed meter whose key or point
    /// count differs is reset instead of restored.
    pub key: u64,
    /// One entry per profile point, in reading order.
    pub points: Vec<PointRules>,
    /// Verification due date, Unix seconds: readings at or after it carry
    /// [`Quality::CALIBRATION`] on every point.
    pub calibration_due: Option<i64>,
    /// Declared replacements: (counter point index, record).
    pub replacements: Vec<(usize, Replacement)>,
    /// (counter point, gauge point giving its rate per hour) for the frozen-counter rule.
    pub rate_point: Option<(usize, usize)>,
}

/// Time limits applied to every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// How far a slot may lie in the future of the wall clock.
    pub max_future_skew_secs: i64,
    /// How far a slot may lie in the past of the wall clock.
    pub max_lateness_secs: i64,
    /// How far a slot may lie behind the meter's newest slot and still be
    /// judged as a late reading (module doc, rule 1) instead of being flagged
    /// [`Quality::TIME`]. 0 (or negative): every out-of-order reading is
    /// flagged.
    pub reorder_window_secs: i64,
}

/// Counts of point values carrying each quality bit after validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReasonCounters {
    /// Per bit (index = bit position, order of [`Quality::REASONS`]), all meters.
    pub total: [u64; N_REASONS],
    /// Per meter (index = [`MeterId`](crate::model::MeterId)), per bit.
    pub per_meter: Vec<[u64; N_REASONS]>,
    /// Readings that could not be judged: unknown meter, a point count that
    /// differs from the meter's rules, or values outside the batch.
    pub unjudged: u64,
}

impl ReasonCounters {
    /// Values carrying `bit` (a single bit) across all meters.
    #[must_use]
    pub fn total_of(&self, bit: Quality) -> u64 {
        self.total[bit_index(bit)]
    }

    /// Values of `meter` carrying `bit` (a single bit); 0 for an unknown meter.
    #[must_use]
    pub fn meter_of(&self, meter: usize, bit: Quality) -> u64 {
        self.per_meter.get(meter).map_or(0, |c| c[bit_index(bit)])
    }
}

fn bit_index(bit: Quality) -> usize {
    (bit.0.trailing_zeros() as usize).min(N_REASONS - 1)
}

/// The validator: rules and state of every meter. See the module doc.
#[derive(Debug, Clone)]
pub struct Validator {
    time: TimeRules,
    meters: Vec<MeterSlot>,
    rules: Vec<PointRules>,
    /// State of the points that need one: counters, and gauges with a
    /// frozen check. A gauge without one keeps nothing (a 1 000-point
    /// device of plain gauges costs no state at all).
    states: Vec<PointState>,
    /// Per point: its index in `states`, or [`STATELESS`].
    state_of: Vec<u32>,
    /// Declared replacements, sorted by (point, at); `repl_range[p]` is point p's slice.
    repls: Vec<Replacement>,
    repl_range: Vec<(u32, u32)>,
    counters: ReasonCounters,
}

/// How a reading's slot relates to the clock and to the meter's newest slot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// Newer than the meter's last slot: judged and updates state.
    InOrder,
    /// Older, within the reorder window: judged statelessly, updates nothing.
    Late,
    /// Outside the clock limits, a duplicate, or older than the window.
    Refused,
}

/// A hash of a meter's rules, bit for bit, to find an identical block.
fn rules_hash(points: &[PointRules]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    points.len().hash(&mut h);
    for r in points {
        (r.kind == PointKind::Counter).hash(&mut h);
        for v in [r.min, r.max, r.rollover, r.max_rate_per_hour] {
            v.map(f64::to_bits).hash(&mut h);
        }
        r.spike_margin.to_bits().hash(&mut h);
        r.frozen_after.hash(&mut h);
        r.resolution.to_bits().hash(&mut h);
    }
    h.finish()
}

/// `state_of` of a point that keeps no state.
const STATELESS: u32 = u32::MAX;

/// Context of the current reading shared by its points.
#[derive(Clone, Copy)]
struct ReadingCtx {
    slot: i64,
    /// Rate gauge, previous and current trusted values, for the meter's rate counter.
    rate_counter: usize,
    rate_prev: f64,
    rate_now: f64,
}

impl Validator {
    /// A validator for `meters` (index = `MeterId`) with fresh state.
    /// Replacements naming a point that does not exist are ignored.
    #[must_use]
    pub fn new(meters: Vec<MeterRules>, time: TimeRules) -> Validator {
        let total_points: usize = meters.iter().map(|m| m.points.len()).sum();
        let mut slots = Vec::with_capacity(meters.len());
        let mut rules: Vec<PointRules> = Vec::new();
        // Blocks of `rules` by length: a meter whose rules equal an earlier
        // meter's shares that block (a thousand 1 000-point meters of one
        // profile hold one copy, not a thousand).
        let mut blocks: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut repls = Vec::new();
        let mut repl_range = Vec::with_capacity(total_points);
        let mut state_of = Vec::with_capacity(total_points);
        let mut n_states: u32 = 0;
        for m in meters {
            let first_point = repl_range.len();
            let n_points = m.points.len();
            let same = blocks.entry(rules_hash(&m.points)).or_default();
            let first_rule = if let Some(&at) = same
                .iter()
                .find(|&&at| rules[at..at + n_points] == m.points[..])
            {
                at
            } else {
                same.push(rules.len());
                rules.len()
            };
            let rate_point = m
                .rate_point
                .filter(|&(c, g)| c < n_points && g < n_points && c != g);
            for p in 0..n_points {
                let mut mine: Vec<Replacement> = m
                    .replacements
                    .iter()
                    .filter(|(i, _)| *i == p)
                    .map(|(_, r)| *r)
                    .collect();
                mine.sort_by_key(|r| r.at);
                let start = repls.len() as u32;
                repls.extend(mine);
                repl_range.push((start, repls.len() as u32));
            }
            for r in &m.points {
                if r.kind == PointKind::Counter || r.frozen_after.is_some() {
                    state_of.push(n_states);
                    n_states += 1;
                } else {
                    state_of.push(STATELESS);
                }
            }
            if first_rule == rules.len() {
                rules.extend(m.points);
            }
            slots.push(MeterSlot {
                key: m.key,
                first_point,
                first_rule,
                n_points,
                calibration_due: m.calibration_due.unwrap_or(i64::MAX),
                rate_point,
                last_slot: i64::MIN,
                rate_prev: f64::NAN,
            });
        }
        let n_meters = slots.len();
        Validator {
            time,
            meters: slots,
            rules,
            states: vec![PointState::FRESH; n_states as usize],
            state_of,
            repls,
            repl_range,
            counters: ReasonCounters {
                total: [0; N_REASONS],
                per_meter: vec![[0; N_REASONS]; n_meters],
                unjudged: 0,
            },
        }
    }

    /// Judges every reading of `batch` in place (adds quality bits; never
    /// removes or changes a value) and writes, for every value, the point's
    /// continuous counter into `continuous` (cleared and resized to
    /// `batch.values.len()`; `NaN` for gauges and untrusted values).
    /// `now` is the wall clock, Unix seconds. Readings are expected in the order
    /// they were polled; one older than its meter's newest slot is a late
    /// reading or flagged (module doc, rule 1). No allocation happens unless
    /// `continuous` grows.
    pub fn validate(&mut self, batch: &mut ReadingBatch, now: i64, continuous: &mut Vec<f64>) {
        continuous.clear();
        continuous.resize(batch.values.len(), f64::NAN);
        let ReadingBatch { readings, values } = batch;
        for r in readings.iter() {
            let start = r.values_start as usize;
            let end = start + usize::from(r.n_points);
            let (Some(vals), Some(cont)) =
                (values.get_mut(start..end), continuous.get_mut(start..end))
            else {
                self.counters.unjudged += 1;
                continue;
            };
            self.judge(r.meter.index(), r.slot, now, vals, cont);
        }
    }

    fn judge(
        &mut self,
        meter: usize,
        slot: i64,
        now: i64,
        vals: &mut [crate::model::PointValue],
        cont: &mut [f64],
    ) {
        let Some(m) = self.meters.get_mut(meter) else {
            self.counters.unjudged += 1;
            return;
        };
        let mut common = Quality::GOOD;
        if slot >= m.calibration_due {
            common |= Quality::CALIBRATION;
        }
        let timing = if slot > now.saturating_add(self.time.max_future_skew_secs)
            || slot < now.saturating_sub(self.time.max_lateness_secs)
        {
            common |= Quality::TIME;
            Timing::Refused
        } else if slot == m.last_slot {
            common |= Quality::DUPLICATE;
            Timing::Refused
        } else if slot < m.last_slot {
            // `reorder_window_secs ≤ 0` makes this impossible: today's behaviour.
            if slot >= m.last_slot.saturating_sub(self.time.reorder_window_secs) {
                Timing::Late
            } else {
                common |= Quality::TIME;
                Timing::Refused
            }
        } else {
            Timing::InOrder
        };
        let per_meter = &mut self.counters.per_meter[meter];
        let total = &mut self.counters.total;
        let time_ok = timing != Timing::Refused;
        if !time_ok || vals.len() != m.n_points {
            if time_ok {
                // Wrong shape: a wiring bug; judge what needs no state.
                self.counters.unjudged += 1;
            }
            for v in vals.iter_mut() {
                v.quality |= common;
                if v.has_value() && !v.value.is_finite() {
                    v.quality |= Quality::SENTINEL;
                }
                count(v.quality, total, per_meter);
            }
            return;
        }
        if timing == Timing::Late {
            let first = m.first_point;
            let rules = &self.rules[m.first_rule..m.first_rule + m.n_points];
            for (i, (v, c)) in vals.iter_mut().zip(cont.iter_mut()).enumerate() {
                let rule = &rules[i];
                v.quality |= common;
                if v.has_value() && !v.value.is_finite() {
                    v.quality |= Quality::SENTINEL;
                }
                if v.quality.0 & NO_VALUE.0 == 0 {
                    if out_of_range(v.value, rule) {
                        v.quality |= Quality::RANGE;
                    } else if rule.kind == PointKind::Counter
                        && let Some(st) = self.states.get(self.state_of[first + i] as usize)
                    {
                        // Replacements not yet applied to this point, in order.
                        let (start, end) = self.repl_range[first + i];
                        let start = (start + st.repl_done).min(end);
                        let ahead = &self.repls[start as usize..end as usize];
                        *c = judge_late_counter(v, rule, st, ahead, slot);
                    }
                }
                count(v.quality, total, per_meter);
            }
            return;
        }
        m.last_slot = slot;
        let first = m.first_point;
        let rules = &self.rules[m.first_rule..m.first_rule + m.n_points];
        let mut ctx = ReadingCtx {
            slot,
            rate_counter: usize::MAX,
            rate_prev: m.rate_prev,
            rate_now: f64::NAN,
        };
        if let Some((c, g)) = m.rate_point {
            ctx.rate_counter = c;
            ctx.rate_now = trusted(vals[g], &rules[g]).unwrap_or(f64::NAN);
            m.rate_prev = ctx.rate_now;
        }
        for (i, (v, c)) in vals.iter_mut().zip(cont.iter_mut()).enumerate() {
            let rule = &rules[i];
            v.quality |= common;
            if v.has_value() && !v.value.is_finite() {
                v.quality |= Quality::SENTINEL;
            }
            if v.quality.0 & NO_VALUE.0 == 0 {
                if out_of_range(v.value, rule) {
                    v.quality |= Quality::RANGE;
                } else if let Some(st) = self.states.get_mut(self.state_of[first + i] as usize) {
                    match rule.kind {
                        PointKind::Gauge => judge_gauge(v, rule, st, slot),
                        PointKind::Counter => {
                            let (start, end) = self.repl_range[first + i];
                            let repls = &self.repls[start as usize..end as usize];
                            *c = judge_counter(v, rule, st, repls, &ctx, i);
                        }
                    }
                }
            }
            count(v.quality, total, per_meter);
        }
    }

    /// Counts of values per quality bit, total and per meter.
    #[must_use]
    pub fn counters(&self) -> &ReasonCounters {
        &self.counters
    }
}
