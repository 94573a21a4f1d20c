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
//! A second property inserts late readings (older than the newest slot, within
//! the reorder window) into a random in-order stream with wraps, resets,
//! spikes, timeouts and a frozen-prone rate gauge: the in-order readings must
//! be judged exactly as without them, and a late copy of an in-order reading
//! gets either the same continuous value or [`Quality::TIME`] and `NaN`.
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
            let pv = value.map_or(PointValue::missing(Quality::TIMEOUT), |x| PointValue::new(x, Quality::GOOD));
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

/// One in-order step of the reorder scenario.
#[derive(Debug, Clone)]
struct OrderedStep {
    /// True consumption since the previous step (cents).
    inc: u64,
    /// 0: normal, 1: counter timeout, 2: reset to `arg`, 3: spike to `arg` (one reading).
    kind: u8,
    arg: u64,
    /// Index into [`GAUGE_VALUES`].
    gauge: usize,
    /// Late readings delivered after this step: (seconds back, copy of that step or a random value).
    lates: Vec<(i64, Option<u64>, usize)>,
}

const GAUGE_VALUES: [f64; 3] = [0.0, 6.0, 6.5];
const WINDOW: i64 = 300;
const REORDER: TimeRules = TimeRules {
    reorder_window_secs: WINDOW,
    ..TIME
};

fn ordered_step() -> impl Strategy<Value = OrderedStep> {
    (
        0..=MAX_CENTS_PER_STEP,
        prop_oneof![12 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        0u64..WRAP_CENTS,
        0..GAUGE_VALUES.len(),
        prop::collection::vec(
            (
                prop_oneof![(1..=WINDOW / STEP).prop_map(|k| k * STEP), 1..=WINDOW],
                prop::option::weighted(0.5, 0u64..WRAP_CENTS),
                0..GAUGE_VALUES.len(),
            ),
            0..4,
        ),
    )
        .prop_map(|(inc, kind, arg, gauge, lates)| OrderedStep {
            inc,
            kind,
            arg,
            gauge,
            lates,
        })
}

fn reorder_rules() -> Vec<MeterRules> {
    let mut rules = rules();
    rules[0].key = 3;
    rules[0].rate_point = Some((0, 1));
    rules[0].points.push(PointRules {
        kind: PointKind::Gauge,
        min: Some(0.0),
        max: Some(6.0), // 6.5 is out of range
        rollover: None,
        max_rate_per_hour: None,
        spike_margin: 1.5,
        frozen_after: Some(3),
        resolution: 0.01,
    });
    rules
}

/// Validates one two-point reading; returns (bits, continuous).
fn judge(
    v: &mut Validator,
    batch: &mut ReadingBatch,
    cont: &mut Vec<f64>,
    slot: i64,
    now: i64,
    values: [PointValue; 2],
) -> ([u16; 2], [f64; 2]) {
    batch.clear();
    batch.push(MeterId(0), slot, 0, &values);
    v.validate(batch, now, cont);
    (
        [batch.values[0].quality.0, batch.values[1].quality.0],
        [cont[0], cont[1]],
    )
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn late_readings_never_change_in_order_results(
        start in 0u64..WRAP_CENTS,
        steps in prop::collection::vec(ordered_step(), 1..120),
    ) {
        let good = |x: f64| PointValue::new(x, Quality::GOOD);
        // The in-order stream: register value (or timeout) and gauge per slot.
        let mut register = start;
        let mut delivered: Vec<[PointValue; 2]> = Vec::with_capacity(steps.len());
        for st in &steps {
            register = (register + st.inc) % WRAP_CENTS;
            let counter = match st.kind {
                1 => PointValue::missing(Quality::TIMEOUT),
                2 => {
                    register = st.arg;
                    good(render(register))
                }
                3 => good(render(st.arg)),
                _ => good(render(register)),
            };
            delivered.push([counter, good(GAUGE_VALUES[st.gauge])]);
        }
        let mut plain = Validator::new(reorder_rules(), REORDER);
        let mut mixed = Validator::new(reorder_rules(), REORDER);
        let (mut batch, mut cont) = (ReadingBatch::default(), Vec::new());
        let mut expected: Vec<([u16; 2], [f64; 2])> = Vec::with_capacity(steps.len());
        for (i, st) in steps.iter().enumerate() {
            let slot = T0 + STEP * i as i64;
            let e = judge(&mut plain, &mut batch, &mut cont, slot, slot + 5, delivered[i]);
            let g = judge(&mut mixed, &mut batch, &mut cont, slot, slot + 5, delivered[i]);
            prop_assert_eq!(g.0, e.0, "bits of in-order reading {}", i);
            prop_assert!(same(g.1[0], e.1[0]) && same(g.1[1], e.1[1]),
                "continuous of in-order reading {}: {:?} vs {:?}", i, g.1, e.1);
            expected.push(e);
            for &(back, value, gauge) in &st.lates {
                let late_slot = slot - back;
                // A copy of the in-order reading of that slot when there is one, else a random value.
                let copy_of = (back % STEP == 0)
                    .then(|| i.checked_sub((back / STEP) as usize))
                    .flatten();
                let values = match (copy_of, value) {
                    (Some(j), _) => delivered[j],
                    (None, Some(cents)) => [good(render(cents)), good(GAUGE_VALUES[gauge])],
                    (None, None) => [PointValue::missing(Quality::TIMEOUT), good(GAUGE_VALUES[gauge])],
                };
                let (bits, c) = judge(&mut mixed, &mut batch, &mut cont, late_slot, slot + 10, values);
                prop_assert!(!c[1].is_finite(), "gauge continuous");
                if let Some(j) = copy_of {
                    let (eb, ec) = expected[j];
                    if ec[0].is_finite() {
                        prop_assert!(
                            same(c[0], ec[0]) || (bits[0] & Quality::TIME.0 != 0 && c[0].is_nan()),
                            "late copy of reading {} got {} (bits {:#x}), in order {}", j, c[0], bits[0], ec[0]
                        );
                    }
                    // The gauge is judged alike except for the frozen run.
                    prop_assert_eq!(bits[1], eb[1] & !Quality::FROZEN.0, "late gauge copy of reading {}", j);
                }
            }
        }
        prop_assert_eq!(mixed.checkpoint(), plain.checkpoint());
    }
}
