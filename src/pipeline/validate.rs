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
//! The gateway holds one `Validator` (in `pipeline::stage`) between the
//! pollers and the line-protocol encoder: `validate(&mut batch, now, &mut
//! continuous)` then encode `batch` (bits into `q`/`q_detail`) and hand
//! `continuous` to aggregation. [`PointRules::from_point`] builds the defaults
//! from the profile; per-meter overrides (max rate, margin, frozen polls,
//! calibration due date, declared replacements, `rate_point`) come from the
//! meter configuration. [`Validator::checkpoint`] bytes are written atomically
//! (temp file + rename) periodically and at shutdown, and passed to
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

use crate::model::{Quality, ReadingBatch};
use crate::profiles::{PointDef, PointKind};

/// Number of quality bits, one reason counter each.
pub const N_REASONS: usize = 12;

/// Bits meaning "no value was obtained": the value updates no state.
const NO_VALUE: Quality = Quality(Quality::TIMEOUT.0 | Quality::EXCEPTION.0 | Quality::SENTINEL.0);

/// Checkpoint magic and version (version 1 lacks `baseline_since`; still read).
const MAGIC: &[u8; 4] = b"EMGV";
const VERSION: u16 = 2;

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

/// What [`Validator::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Meters whose state was restored.
    pub restored: usize,
    /// Meters in the checkpoint whose key or shape no longer matches (state reset),
    /// or that no longer exist.
    pub reset: usize,
}

/// Why a checkpoint could not be read; the validator is left unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    /// Shorter than a header and checksum.
    #[error("validation checkpoint: {len} bytes is too short to be a checkpoint")]
    TooShort {
        /// Length given.
        len: usize,
    },
    /// Not a validation checkpoint.
    #[error("validation checkpoint: bad magic {found:?}, expected \"EMGV\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by a version this build does not read.
    #[error("validation checkpoint: unsupported version {found}, this build reads 1 to {VERSION}")]
    Version {
        /// Version found.
        found: u16,
    },
    /// Corrupted (torn write or flipped bits).
    #[error(
        "validation checkpoint: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// Content ends before the structure it declares.
    #[error("validation checkpoint: truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were expected.
        at: usize,
    },
}

/// Per-meter state and fixed settings, flat.
#[derive(Debug, Clone)]
struct MeterSlot {
    key: u64,
    first_point: usize,
    n_points: usize,
    calibration_due: i64,
    /// (counter, gauge) point indices, or `None`.
    rate_point: Option<(usize, usize)>,
    /// Newest slot accepted for this meter (`i64::MIN`: none).
    last_slot: i64,
    /// Trusted value of the rate gauge in the previous accepted reading (`NaN`: none).
    rate_prev: f64,
}

/// Per-point state.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PointState {
    /// Last trusted value (`NaN`: none yet).
    last: f64,
    /// Slot of `last`.
    last_slot: i64,
    /// Counter baseline: `continuous = base_cont + (value − base_raw)`.
    base_raw: f64,
    base_cont: f64,
    /// Counters: slot of the reading that set the current baseline; a late
    /// reading is placed on the baseline only when it is newer.
    baseline_since: i64,
    /// Gauges: length of the current run of bit-identical values.
    run: u32,
    /// Counters: replacements of this point already applied.
    repl_done: u32,
    /// Counters: value of an unconfirmed spike (`NaN`: none) and its slot.
    pending: f64,
    pending_slot: i64,
}

impl PointState {
    const FRESH: PointState = PointState {
        last: f64::NAN,
        last_slot: i64::MIN,
        base_raw: 0.0,
        base_cont: 0.0,
        baseline_since: i64::MIN,
        run: 0,
        repl_done: 0,
        pending: f64::NAN,
        pending_slot: i64::MIN,
    };

    fn has_last(&self) -> bool {
        self.last_slot != i64::MIN
    }

    fn continuous(&self, value: f64) -> f64 {
        self.base_cont + (value - self.base_raw)
    }

    /// Starts a new counter baseline, in force from `slot`.
    fn rebase(&mut self, base_raw: f64, base_cont: f64, slot: i64) {
        self.base_raw = base_raw;
        self.base_cont = base_cont;
        self.baseline_since = slot;
    }

    /// Accepts a counter value on the current baseline.
    fn accept(&mut self, value: f64, slot: i64) -> f64 {
        self.last = value;
        self.last_slot = slot;
        self.pending = f64::NAN;
        self.pending_slot = i64::MIN;
        self.continuous(value)
    }
}

/// The validator: rules and state of every meter. See the module doc.
#[derive(Debug, Clone)]
pub struct Validator {
    time: TimeRules,
    meters: Vec<MeterSlot>,
    rules: Vec<PointRules>,
    states: Vec<PointState>,
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
        let mut rules = Vec::with_capacity(total_points);
        let mut repls = Vec::new();
        let mut repl_range = Vec::with_capacity(total_points);
        for m in meters {
            let first_point = rules.len();
            let n_points = m.points.len();
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
            rules.extend(m.points);
            slots.push(MeterSlot {
                key: m.key,
                first_point,
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
            states: vec![PointState::FRESH; total_points],
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
            let points = m.first_point..m.first_point + m.n_points;
            let rules = &self.rules[points.clone()];
            let states = &self.states[points.clone()];
            let repl_range = &self.repl_range[points];
            for (i, ((v, c), (rule, st))) in vals
                .iter_mut()
                .zip(cont.iter_mut())
                .zip(rules.iter().zip(states))
                .enumerate()
            {
                v.quality |= common;
                if v.has_value() && !v.value.is_finite() {
                    v.quality |= Quality::SENTINEL;
                }
                if v.quality.0 & NO_VALUE.0 == 0 {
                    if out_of_range(v.value, rule) {
                        v.quality |= Quality::RANGE;
                    } else if rule.kind == PointKind::Counter {
                        // Replacements not yet applied to this point, in order.
                        let (start, end) = repl_range[i];
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
        let rules = &self.rules[m.first_point..m.first_point + m.n_points];
        let states = &mut self.states[m.first_point..m.first_point + m.n_points];
        let repl_range = &self.repl_range[m.first_point..m.first_point + m.n_points];
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
        for (i, ((v, c), (rule, st))) in vals
            .iter_mut()
            .zip(cont.iter_mut())
            .zip(rules.iter().zip(states.iter_mut()))
            .enumerate()
        {
            v.quality |= common;
            if v.has_value() && !v.value.is_finite() {
                v.quality |= Quality::SENTINEL;
            }
            if v.quality.0 & NO_VALUE.0 == 0 {
                if out_of_range(v.value, rule) {
                    v.quality |= Quality::RANGE;
                } else {
                    match rule.kind {
                        PointKind::Gauge => judge_gauge(v, rule, st, slot),
                        PointKind::Counter => {
                            let (start, end) = repl_range[i];
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

    /// The per-meter state as a versioned, checksummed binary (little-endian):
    /// `"EMGV"`, version `u16`, meter count `u32`, per meter its key `u64`,
    /// point count `u32`, last slot `i64`, previous rate `f64`, then per point
    /// its declared replacement count `u32`, last value `f64`, its slot `i64`,
    /// baseline raw and continuous `f64`, frozen run `u32`, replacements applied
    /// `u32`, pending spike `f64` and its slot `i64`, the slot the baseline was
    /// set at `i64` (added in version 2); finally the CRC-32C of everything
    /// before. Reason counters are not included (process lifetime).
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.meters.len() * 32 + self.states.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.meters.len() as u32).to_le_bytes());
        for m in &self.meters {
            out.extend_from_slice(&m.key.to_le_bytes());
            out.extend_from_slice(&(m.n_points as u32).to_le_bytes());
            out.extend_from_slice(&m.last_slot.to_le_bytes());
            out.extend_from_slice(&m.rate_prev.to_bits().to_le_bytes());
            for p in m.first_point..m.first_point + m.n_points {
                let (a, b) = self.repl_range[p];
                let st = &self.states[p];
                out.extend_from_slice(&(b - a).to_le_bytes());
                out.extend_from_slice(&st.last.to_bits().to_le_bytes());
                out.extend_from_slice(&st.last_slot.to_le_bytes());
                out.extend_from_slice(&st.base_raw.to_bits().to_le_bytes());
                out.extend_from_slice(&st.base_cont.to_bits().to_le_bytes());
                out.extend_from_slice(&st.run.to_le_bytes());
                out.extend_from_slice(&st.repl_done.to_le_bytes());
                out.extend_from_slice(&st.pending.to_bits().to_le_bytes());
                out.extend_from_slice(&st.pending_slot.to_le_bytes());
                out.extend_from_slice(&st.baseline_since.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Restores state from [`Self::checkpoint`] bytes. State is keyed by meter
    /// index: a checkpointed meter is restored when a meter with the same index,
    /// the same [`MeterRules::key`], the same point count and the same number of
    /// declared replacements per point exists; otherwise that meter starts fresh
    /// (counted in [`RestoreReport::reset`]). Meters added since start fresh.
    /// Version 1 checkpoints (no baseline slot) are read with each baseline
    /// taken as set at the point's last trusted slot: late readings older than
    /// that are flagged rather than placed on a baseline that may not apply.
    /// On error nothing is changed.
    ///
    /// # Errors
    /// [`ValidateError`] when the bytes are not a complete, intact checkpoint of
    /// a version this build reads.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, ValidateError> {
        if bytes.len() < 14 {
            return Err(ValidateError::TooShort { len: bytes.len() });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let mut found = [0u8; 4];
        found.copy_from_slice(&body[..4]);
        if &found != MAGIC {
            return Err(ValidateError::BadMagic { found });
        }
        let mut stored = [0u8; 4];
        stored.copy_from_slice(tail);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(ValidateError::Checksum { stored, computed });
        }
        let mut r = Reader { bytes: body, at: 4 };
        let version = r.u16()?;
        if !(1..=VERSION).contains(&version) {
            return Err(ValidateError::Version { found: version });
        }
        // Parse into staging first so an error leaves the validator unchanged.
        let n_meters = r.u32()? as usize;
        let mut staged: Vec<(usize, i64, f64, Vec<PointState>)> = Vec::new();
        let mut report = RestoreReport::default();
        for index in 0..n_meters {
            let key = r.u64()?;
            let n_points = r.u32()? as usize;
            let last_slot = r.i64()?;
            let rate_prev = r.f64()?;
            let mut points = Vec::with_capacity(n_points.min(1024));
            let mut shape_ok = self
                .meters
                .get(index)
                .is_some_and(|m| m.key == key && m.n_points == n_points);
            for p in 0..n_points {
                let n_repl = r.u32()?;
                let mut st = PointState {
                    last: r.f64()?,
                    last_slot: r.i64()?,
                    base_raw: r.f64()?,
                    base_cont: r.f64()?,
                    baseline_since: i64::MIN,
                    run: r.u32()?,
                    repl_done: r.u32()?,
                    pending: r.f64()?,
                    pending_slot: r.i64()?,
                };
                st.baseline_since = if version >= 2 { r.i64()? } else { st.last_slot };
                if shape_ok {
                    let (a, b) = self.repl_range[self.meters[index].first_point + p];
                    shape_ok = b - a == n_repl && st.repl_done <= n_repl;
                }
                points.push(st);
            }
            if shape_ok {
                staged.push((index, last_slot, rate_prev, points));
            } else {
                report.reset += 1;
            }
        }
        if r.at != body.len() {
            return Err(ValidateError::Truncated { at: r.at });
        }
        for m in &mut self.meters {
            m.last_slot = i64::MIN;
            m.rate_prev = f64::NAN;
        }
        self.states.fill(PointState::FRESH);
        for (index, last_slot, rate_prev, points) in staged {
            let m = &mut self.meters[index];
            m.last_slot = last_slot;
            m.rate_prev = rate_prev;
            self.states[m.first_point..m.first_point + m.n_points].copy_from_slice(&points);
            report.restored += 1;
        }
        Ok(report)
    }
}

/// The value when it is trusted for use as a rate (no bit but calibration, in range).
fn trusted(v: crate::model::PointValue, rule: &PointRules) -> Option<f64> {
    let ok = (v.quality.0 & !Quality::CALIBRATION.0) == 0
        && v.value.is_finite()
        && !out_of_range(v.value, rule);
    ok.then_some(v.value)
}

fn out_of_range(value: f64, rule: &PointRules) -> bool {
    rule.min.is_some_and(|min| value < min) || rule.max.is_some_and(|max| value > max)
}

fn count(q: Quality, total: &mut [u64; N_REASONS], per_meter: &mut [u64; N_REASONS]) {
    let mut bits = q.0;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        if i < N_REASONS {
            total[i] += 1;
            per_meter[i] += 1;
        }
        bits &= bits - 1;
    }
}

fn judge_gauge(
    v: &mut crate::model::PointValue,
    rule: &PointRules,
    st: &mut PointState,
    slot: i64,
) {
    if st.has_last() && st.last.to_bits() == v.value.to_bits() {
        st.run = st.run.saturating_add(1);
    } else {
        st.run = 1;
    }
    st.last = v.value;
    st.last_slot = slot;
    if rule.frozen_after.is_some_and(|n| st.run >= n) {
        v.quality |= Quality::FROZEN;
    }
}

/// Judges a late (out-of-order, within the window), in-range counter value
/// without touching state; returns its continuous value on the current
/// baseline, or flags [`Quality::TIME`] and returns `NaN` when that baseline
/// is not known to have been in force at `slot`. `ahead`: the point's declared
/// replacements not yet applied.
fn judge_late_counter(
    v: &mut crate::model::PointValue,
    rule: &PointRules,
    st: &PointState,
    ahead: &[Replacement],
    slot: i64,
) -> f64 {
    let value = v.value;
    let placed = if !st.has_last() || slot <= st.baseline_since {
        // No baseline yet, or the reading predates a discontinuity.
        false
    } else if slot <= st.last_slot {
        // A trusted value on this baseline is at least as new: in force at `slot`.
        true
    } else {
        // Newer than the point's last trusted value (its newer polls failed or
        // were flagged): an unseen wrap, reset, jump or replacement may lie in
        // between, so place it only if it plausibly continues from `last`.
        let elapsed_h = (slot - st.last_slot) as f64 / 3600.0;
        ahead.first().is_none_or(|r| r.at > slot)
            && value >= st.last
            && rule
                .max_rate_per_hour
                .is_none_or(|rate| value - st.last <= rate * elapsed_h * rule.spike_margin)
    };
    if placed {
        st.continuous(value)
    } else {
        v.quality |= Quality::TIME;
        f64::NAN
    }
}

/// Judges a trusted, in-range counter value; returns its continuous value (`NaN` if untrusted).
fn judge_counter(
    v: &mut crate::model::PointValue,
    rule: &PointRules,
    st: &mut PointState,
    repls: &[Replacement],
    ctx: &ReadingCtx,
    index: usize,
) -> f64 {
    let value = v.value;
    let slot = ctx.slot;
    if !st.has_last() {
        // First value ever (or after a reset of state): the baseline is the raw value.
        // Declared replacements before it are history already reflected in `value`.
        st.repl_done = repls.iter().take_while(|r| r.at <= slot).count() as u32;
        st.rebase(value, value, slot);
        return st.accept(value, slot);
    }
    let last = st.last;
    let c_last = st.continuous(last);

    // Declared replacements: exact consumption as the record states it.
    let done = st.repl_done as usize;
    let due = repls[done.min(repls.len())..]
        .iter()
        .take_while(|r| r.at <= slot)
        .count();
    if due > 0 {
        let mut cont = c_last;
        let mut prev = last;
        for r in &repls[done..done + due] {
            cont += (r.old_final - prev).max(0.0);
            prev = r.new_initial;
        }
        st.repl_done += due as u32;
        let base_raw = if value < prev {
            v.quality |= Quality::BACKWARDS;
            value
        } else {
            prev
        };
        st.rebase(base_raw, cont, slot);
        return st.accept(value, slot);
    }

    let elapsed_h = (slot - st.last_slot) as f64 / 3600.0;
    let limit = rule
        .max_rate_per_hour
        .map(|rate| rate * elapsed_h * rule.spike_margin);

    if value == last {
        if index == ctx.rate_counter {
            // `f64::min` ignores NaN; a missing rate on either side means no judgement.
            let rate = if ctx.rate_prev.is_nan() || ctx.rate_now.is_nan() {
                0.0
            } else {
                ctx.rate_prev.min(ctx.rate_now)
            };
            if rate > 0.0 && rate * elapsed_h > rule.resolution {
                v.quality |= Quality::FROZEN;
                return f64::NAN;
            }
        }
        return st.accept(value, slot);
    }
    if value > last {
        let increase = value - last;
        if limit.is_none_or(|l| increase <= l) {
            return st.accept(value, slot);
        }
        // A spike from the last good value. Persisting jump: plausible from the spiked value.
        if !st.pending.is_nan() && value >= st.pending {
            let since_h = (slot - st.pending_slot) as f64 / 3600.0;
            let from_pending = value - st.pending;
            if rule
                .max_rate_per_hour
                .is_some_and(|rate| from_pending <= rate * since_h * rule.spike_margin)
            {
                st.rebase(st.pending, c_last, slot);
                return st.accept(value, slot);
            }
        }
        v.quality |= Quality::SPIKE;
        st.pending = value;
        st.pending_slot = slot;
        return f64::NAN;
    }
    // value < last: a wrap, or a reset.
    if let Some(wrap) = rule.rollover {
        let to_wrap = wrap - last;
        let increase = to_wrap + value;
        let plausible = match limit {
            Some(l) => increase <= l,
            None => last >= 0.9 * wrap && value < 0.1 * wrap,
        };
        if plausible && to_wrap >= 0.0 {
            v.quality |= Quality::ROLLOVER;
            st.rebase(0.0, c_last + to_wrap, slot);
            return st.accept(value, slot);
        }
    }
    v.quality |= Quality::BACKWARDS;
    st.rebase(value, c_last, slot);
    st.accept(value, slot)
}

/// Little-endian cursor over checkpoint bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ValidateError> {
        let mut out = [0u8; N];
        let src = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(ValidateError::Truncated { at: self.at })?;
        out.copy_from_slice(src);
        self.at += N;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ValidateError> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, ValidateError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, ValidateError> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, ValidateError> {
        self.take().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, ValidateError> {
        self.take().map(u64::from_le_bytes).map(f64::from_bits)
    }
}
