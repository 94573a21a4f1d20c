//! The validator's per-meter and per-point state: what it remembers between
//! readings (last trusted values, counter baselines, frozen runs, pending
//! spikes), kept in flat tables so judging a reading never allocates.

/// Per-meter state and fixed settings, flat.
#[derive(Debug, Clone)]
pub(super) struct MeterSlot {
    pub(super) key: u64,
    /// First of this meter's points in `states` and `repl_range`.
    pub(super) first_point: usize,
    /// First of this meter's rules in `rules`: meters with identical rules
    /// (same profile, ratios and overrides) share one block.
    pub(super) first_rule: usize,
    pub(super) n_points: usize,
    pub(super) calibration_due: i64,
    /// (counter, gauge) point indices, or `None`.
    pub(super) rate_point: Option<(usize, usize)>,
    /// Newest slot accepted for this meter (`i64::MIN`: none).
    pub(super) last_slot: i64,
    /// Trusted value of the rate gauge in the previous accepted reading (`NaN`: none).
    pub(super) rate_prev: f64,
}

/// Per-point state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PointState {
    /// Last trusted value (`NaN`: none yet).
    pub(super) last: f64,
    /// Slot of `last`.
    pub(super) last_slot: i64,
    /// Counter baseline: `continuous = base_cont + (value − base_raw)`.
    pub(super) base_raw: f64,
    pub(super) base_cont: f64,
    /// Counters: slot of the reading that set the current baseline; a late
    /// reading is placed on the baseline only when it is newer.
    pub(super) baseline_since: i64,
    /// Gauges: length of the current run of bit-identical values.
    pub(super) run: u32,
    /// Counters: replacements of this point already applied.
    pub(super) repl_done: u32,
    /// Counters: value of an unconfirmed spike (`NaN`: none) and its slot.
    pub(super) pending: f64,
    pub(super) pending_slot: i64,
}

impl PointState {
    pub(super) const FRESH: PointState = PointState {
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

    pub(super) fn has_last(&self) -> bool {
        self.last_slot != i64::MIN
    }

    pub(super) fn continuous(&self, value: f64) -> f64 {
        self.base_cont + (value - self.base_raw)
    }

    /// Starts a new counter baseline, in force from `slot`.
    pub(super) fn rebase(&mut self, base_raw: f64, base_cont: f64, slot: i64) {
        self.base_raw = base_raw;
        self.base_cont = base_cont;
        self.baseline_since = slot;
    }

    /// Accepts a counter value on the current baseline.
    pub(super) fn accept(&mut self, value: f64, slot: i64) -> f64 {
        self.last = value;
        self.last_slot = slot;
        self.pending = f64::NAN;
        self.pending_slot = i64::MIN;
        self.continuous(value)
    }
}
