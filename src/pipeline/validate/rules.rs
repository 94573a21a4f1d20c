//! The per-value rules of the module doc (range, frozen gauges, counters:
//! rollover, reset, spike, replacement, late readings), as plain functions on
//! one value, its rules and its state.

use super::state::PointState;
use super::{N_REASONS, PointRules, ReadingCtx, Replacement};
use crate::model::Quality;

/// The value when it is trusted for use as a rate (no bit but calibration, in range).
pub(super) fn trusted(v: crate::model::PointValue, rule: &PointRules) -> Option<f64> {
    let ok = (v.quality.0 & !Quality::CALIBRATION.0) == 0
        && v.value.is_finite()
        && !out_of_range(v.value, rule);
    ok.then_some(v.value)
}

pub(super) fn out_of_range(value: f64, rule: &PointRules) -> bool {
    rule.min.is_some_and(|min| value < min) || rule.max.is_some_and(|max| value > max)
}

pub(super) fn count(q: Quality, total: &mut [u64; N_REASONS], per_meter: &mut [u64; N_REASONS]) {
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

pub(super) fn judge_gauge(
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
pub(super) fn judge_late_counter(
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
pub(super) fn judge_counter(
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
