//! Property test of the validator's consumption arithmetic: a true consumption
//! sequence (whole hundredths of a kWh, so the truth is exact) is rendered as a
//! wrapping meter register, with random meter replacements (the counter
//! restarts from a small value; the true consumption across it is unknown to
//! the validator), duplicates, out-of-order and late deliveries, timeouts and
//! lost polls. The consumption derived downstream from the accepted values
//! (`continuous` of the last accepted minus the first) must never exceed the
//! true consumption between their slots, and must equal it when no reset lies
//! between them.
//!
//! Float tolerance: values are at most 10^5 kWh, and every baseline change
//! (wrap, reset) rounds once at that magnitude, so 1e-6 kWh is generous.
//!
//! Resets are only generated where they are physically unambiguous: far from
//! the wrap (a drop near the top of the register that fits the rated flow is
//! indistinguishable from a wrap, and is documented as read as one) and at most
//! one per sequence, on a meter that has not wrapped.

use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::validate::{MeterRules, PointRules, TimeRules, Validator};
use emgate::profiles::PointKind;
use proptest::prelude::*;

const T0: i64 = 1_700_000_100;
const STEP: i64 = 60;
/// Wrap modulus of the register: 100_000.00 kWh.
const WRAP_CENTS: u64 = 10_000_000;
/// Rated maximum: 600 kWh/h, i.e. 10 kWh per minute.
const MAX_CENTS_PER_STEP: u64 = 1_000;
const TIME: TimeRules = TimeRules {
    max_future_skew_secs: 30,
    max_lateness_secs: 600,
    reorder_window_secs: 0,
};
const TOL: f64 = 1e-6;

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Polled and delivered on time.
    Normal,
    /// The poll timed out: a reading with no value.
    Timeout,
    /// No reading at all for this slot.
    Lost,
    /// Delivered past the allowed lateness.
    Late,
    /// Delivered, then the same slot again (a re-poll a little later).
    Duplicate(u64),
    /// Delivered, then a reading of an older slot (`k` steps back) arrives.
    OutOfOrder(i64),
    /// The meter is replaced just before this slot's poll: the new counter starts at this (cents).
    Reset(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        10 => Just(Event::Normal),
        1 => Just(Event::Timeout),
        1 => Just(Event::Lost),
        1 => Just(Event::Late),
        1 => (0u64..=50).prop_map(Event::Duplicate),
        1 => (1i64..=5).prop_map(Event::OutOfOrder),
        1 => (0u64..500).prop_map(Event::Reset),
    ]
}

fn rules() -> Vec<MeterRules> {
    vec![MeterRules {
        points: vec![PointRules {
            kind: PointKind::Counter,
            min: None,
            max: None,
            rollover: Some(WRAP_CENTS as f64 * 0.01),
            max_rate_per_hour: Some(600.0),
            spike_margin: 1.5,
            frozen_after: None,
            resolution: 0.01,
        }],
        ..MeterRules::default()
    }]
}

/// What the register shows for `cents`, decoded like a U32 × 0.01 point.
fn render(cents: u64) -> f64 {
    (cents % WRAP_CENTS) as f64 * 0.01
}

/// One delivered reading: slot, wall clock at delivery, value (None: timeout), true counter (cents).
type Delivery = (i64, i64, Option<f64>, u64);

fn scenario(
    start_near_top: bool,
    start: u64,
    steps: &[(u64, Event)],
) -> (Vec<Delivery>, Vec<bool>, Vec<u64>) {
    // True cumulative consumption per slot, the register offset after a reset.
    let mut truth = Vec::with_capacity(steps.len());
    let mut reset_before = Vec::with_capacity(steps.len());
    let first = if start_near_top {
        WRAP_CENTS - 30_000 + start % 30_000
    } else {
        100_000 + start % 5_000_000
    };
    let mut total = 0u64; // true consumption since the start
    let mut register_base = first; // register = register_base + (total − total_at_base)
    let mut total_at_base = 0u64;
    let mut did_reset = false;
    let mut out = Vec::new();
    for (i, &(inc, ev)) in steps.iter().enumerate() {
        total += inc;
        let slot = T0 + STEP * i as i64;
        let mut reset_here = false;
        if let Event::Reset(r) = ev {
            let shown = register_base + (total - total_at_base);
            // Unambiguous only far from the wrap on a meter that never wrapped.
            if !start_near_top && !did_reset && shown >= 100_000 {
                did_reset = true;
                reset_here = true;
                register_base = r;
                total_at_base = total;
            }
        }
        reset_before.push(reset_here);
        truth.push(total);
        let reg = |t: u64, base: u64, at: u64| render(base + (t - at));
        let value = reg(total, register_base, total_at_base);
        match ev {
            Event::Normal | Event::Reset(_) => out.push((slot, slot + 5, Some(value), total)),
            Event::Timeout => out.push((slot, slot + 5, None, total)),
            Event::Lost => {}
            Event::Late => out.push((slot, slot + 601, Some(value), total)),
            Event::Duplicate(extra) => {
                out.push((slot, slot + 5, Some(value), total));
                let later = reg(total + extra, register_base, total_at_base);
                out.push((slot, slot + 20, Some(later), total + extra));
            }
            Event::OutOfOrder(k) => {
                out.push((slot, slot + 5, Some(value), total));
                let back = (k as usize).min(i);
                if back > 0 && !reset_before[i - back + 1..=i].iter().any(|&r| r) {
                    let j = i - back;
                    let old = reg(truth[j], register_base, total_at_base);
                    out.push((T0 + STEP * j as i64, slot + 10, Some(old), truth[j]));
                }
            }
        }
    }
    (out, reset_before, truth)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn consumption_never_invented_and_exact_without_reset(
        start_near_top in any::<bool>(),
        start in any::<u64>(),
        steps in prop::collection::vec((0..=MAX_CENTS_PER_STEP, event()), 1..150),
        split in any::<bool>(),
    ) {
        let (deliveries, reset_before, truth) = scenario(start_near_top, start, &steps);
        let mut v = Validator::new(rules(), TIME);
        let mut accepted: Vec<(i64, f64)> = Vec::new();
        let mut batch = ReadingBatch::default();
        let mut cont = Vec::new();
        for (n, &(slot, now, value, _)) in deliveries.iter().enumerate() {
            let pv = value.map_or(PointValue::missing(Quality::TIMEOUT), |x| PointValue {
                value: x,
                quality: Quality::GOOD,
            });
            batch.clear();
            batch.push(MeterId(0), slot, 0, &[pv]);
            v.validate(&mut batch, now, &mut cont);
            let q = batch.values[0].quality;
            // Only wraps and resets change a counter's baseline here; spikes never occur.
            prop_assert!(!q.contains(Quality::SPIKE), "spike at slot {slot}: {q}");
            if !cont[0].is_nan() {
                prop_assert!(
                    accepted.last().is_none_or(|&(s, c)| s < slot && cont[0] >= c),
                    "continuous went back or slot repeated at {slot}"
                );
                accepted.push((slot, cont[0]));
            }
            // Restart halfway through, as after a crash.
            if split && n == deliveries.len() / 2 {
                let bytes = v.checkpoint();
                v = Validator::new(rules(), TIME);
                v.restore(&bytes).expect("restore own checkpoint");
            }
        }
        let (Some(&(s0, c0)), Some(&(s1, c1))) = (accepted.first(), accepted.last()) else {
            return Ok(());
        };
        let i0 = ((s0 - T0) / STEP) as usize;
        let i1 = ((s1 - T0) / STEP) as usize;
        let true_cents = truth[i1] - truth[i0];
        let true_kwh = true_cents as f64 * 0.01;
        let derived = c1 - c0;
        prop_assert!(derived <= true_kwh + TOL, "derived {derived} > true {true_kwh}");
        let reset_between = reset_before[i0 + 1..=i1].iter().any(|&r| r);
        if !reset_between {
            prop_assert!((derived - true_kwh).abs() <= TOL, "derived {derived} != true {true_kwh}");
        }
    }
}
