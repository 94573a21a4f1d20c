//! One test per validation rule: hand-made sequences with the exact quality
//! bits and continuous-counter values `pipeline::validate` must produce, plus
//! a restart in the middle of a rollover (checkpoint, new validator, restore).

use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::validate::{
    MeterRules, PointRules, Replacement, TimeRules, ValidateError, Validator,
};
use emgate::profiles::PointKind;

const T0: i64 = 1_700_000_100; // a multiple of 60
const TIME: TimeRules = TimeRules {
    max_future_skew_secs: 30,
    max_lateness_secs: 3600,
    reorder_window_secs: 0,
};

fn counter(rollover: Option<f64>) -> PointRules {
    PointRules {
        kind: PointKind::Counter,
        min: None,
        max: None,
        rollover,
        max_rate_per_hour: None,
        spike_margin: 1.5,
        frozen_after: None,
        resolution: 0.01,
    }
}

fn gauge() -> PointRules {
    PointRules {
        kind: PointKind::Gauge,
        ..counter(None)
    }
}

fn meter(points: Vec<PointRules>) -> MeterRules {
    MeterRules {
        points,
        ..MeterRules::default()
    }
}

fn good(x: f64) -> PointValue {
    PointValue::new(x, Quality::GOOD)
}

/// Validates one reading of meter 0 at `slot` (wall clock = slot) and returns (bits, continuous).
fn step(v: &mut Validator, slot: i64, values: &[PointValue]) -> (Vec<u16>, Vec<f64>) {
    step_at(v, slot, slot, values)
}

fn step_at(v: &mut Validator, slot: i64, now: i64, values: &[PointValue]) -> (Vec<u16>, Vec<f64>) {
    let mut batch = ReadingBatch::default();
    batch.push(MeterId(0), slot, 0, values);
    let mut cont = Vec::new();
    v.validate(&mut batch, now, &mut cont);
    let bits = batch.values.iter().map(|p| p.quality.0).collect();
    // The value is never changed.
    for (a, b) in batch.values.iter().zip(values) {
        assert_eq!(a.value.to_bits(), b.value.to_bits());
    }
    (bits, cont)
}

/// Runs a single-point sequence, one reading a minute; returns (bits, continuous) per reading.
fn run(v: &mut Validator, values: &[f64]) -> (Vec<u16>, Vec<f64>) {
    let mut bits = Vec::new();
    let mut cont = Vec::new();
    for (i, &x) in values.iter().enumerate() {
        let (b, c) = step(v, T0 + 60 * i as i64, &[good(x)]);
        bits.push(b[0]);
        cont.push(c[0]);
    }
    (bits, cont)
}

fn nan_eq(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{a:?} vs {b:?}"
        );
    }
}

const R: u16 = Quality::RANGE.0;
const B: u16 = Quality::BACKWARDS.0;
const RO: u16 = Quality::ROLLOVER.0;
const SP: u16 = Quality::SPIKE.0;
const FR: u16 = Quality::FROZEN.0;
const SE: u16 = Quality::SENTINEL.0;
const TI: u16 = Quality::TIME.0;
const DU: u16 = Quality::DUPLICATE.0;
const CA: u16 = Quality::CALIBRATION.0;
const N: f64 = f64::NAN;

#[test]
fn range_flags_outside_min_max_and_keeps_state() {
    let rules = PointRules {
        min: Some(0.0),
        max: Some(1000.0),
        ..counter(None)
    };
    let mut v = Validator::new(vec![meter(vec![rules])], TIME);
    let (bits, cont) = run(&mut v, &[10.0, 1000.5, -1.0, 1000.0, 12.0]);
    assert_eq!(bits, [0, R, R, 0, B]);
    nan_eq(&cont, &[10.0, N, N, 1000.0, 1000.0]);
    assert_eq!(v.counters().total_of(Quality::RANGE), 2);
    assert_eq!(v.counters().meter_of(0, Quality::BACKWARDS), 1);
}

#[test]
fn sentinel_from_decoder_kept_and_nan_inf_flagged() {
    let mut v = Validator::new(vec![meter(vec![counter(None), gauge()])], TIME);
    let (b, c) = step(&mut v, T0, &[good(5.0), good(1.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[5.0, N]);
    let (b, c) = step(
        &mut v,
        T0 + 60,
        &[PointValue::missing(Quality::SENTINEL), good(f64::INFINITY)],
    );
    assert_eq!(b, [SE, SE]);
    nan_eq(&c, &[N, N]);
    let (b, c) = step(&mut v, T0 + 120, &[good(f64::NAN), good(2.0)]);
    assert_eq!(b, [SE, 0]);
    nan_eq(&c, &[N, N]);
    // State untouched by the sentinels: 5 -> 6 is a plain increase.
    let (b, c) = step(&mut v, T0 + 180, &[good(6.0), good(2.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[6.0, N]);
    // A timeout's NaN is not a sentinel.
    let (b, _) = step(
        &mut v,
        T0 + 240,
        &[PointValue::missing(Quality::TIMEOUT), good(2.0)],
    );
    assert_eq!(b, [Quality::TIMEOUT.0, 0]);
}

#[test]
fn rollover_at_display_wrap_is_exact() {
    // Display ends at 99_999_999.99 kWh: the wrap modulus is 100_000_000.
    let mut v = Validator::new(vec![meter(vec![counter(Some(100_000_000.0))])], TIME);
    let (bits, cont) = run(&mut v, &[99_999_980.0, 99_999_990.0, 5.0, 7.0]);
    assert_eq!(bits, [0, 0, RO, 0]);
    nan_eq(
        &cont,
        &[99_999_980.0, 99_999_990.0, 100_000_005.0, 100_000_007.0],
    );
    assert_eq!(cont[2] - cont[1], 15.0);
}

#[test]
fn rollover_of_u32_register_scaled() {
    let wrap = 4_294_967_296.0 * 0.01;
    let last = 4_294_967_000.0 * 0.01;
    let next = 100.0 * 0.01;
    let mut v = Validator::new(vec![meter(vec![counter(Some(wrap))])], TIME);
    let (bits, cont) = run(&mut v, &[last, next, 2.0]);
    assert_eq!(bits, [0, RO, 0]);
    // Documented arithmetic: base = c_last + (wrap − last); continuous = base + value.
    let base = last + (wrap - last);
    nan_eq(&cont, &[last, base + next, base + 2.0]);
    assert!((cont[1] - cont[0] - 3.96).abs() < 1e-6);
}

#[test]
fn rollover_plausibility_uses_rate_when_known() {
    // 10 kWh/h max, margin 1.5, 60 s apart: at most 0.25 kWh per step.
    let rules = PointRules {
        max_rate_per_hour: Some(10.0),
        ..counter(Some(1000.0))
    };
    let mut v = Validator::new(vec![meter(vec![rules])], TIME);
    let (bits, cont) = run(&mut v, &[999.875, 0.0625, 0.25, 0.0]);
    // 999.875 -> 0.0625: increase 0.1875 within 0.25: rollover. 0.25 -> 0.0: a wrap would be 999.75: reset.
    assert_eq!(bits, [0, RO, 0, B]);
    nan_eq(&cont, &[999.875, 1000.0625, 1000.25, 1000.25]);
}

#[test]
fn reset_without_rollover_is_backwards_and_invents_nothing() {
    let mut v = Validator::new(vec![meter(vec![counter(Some(100_000_000.0))])], TIME);
    // 50_000 is not in the top tenth: a drop to 0.3 is a reset, not a wrap.
    let (bits, cont) = run(&mut v, &[50_000.0, 50_001.0, 0.25, 1.25]);
    assert_eq!(bits, [0, 0, B, 0]);
    nan_eq(&cont, &[50_000.0, 50_001.0, 50_001.0, 50_002.0]);
}

#[test]
fn declared_replacement_consumption_is_exact() {
    let rules = MeterRules {
        replacements: vec![(
            0,
            Replacement {
                at: T0 + 90,
                old_final: 1_002.5,
                new_initial: 0.5,
            },
        )],
        ..meter(vec![counter(None)])
    };
    let mut v = Validator::new(vec![rules], TIME);
    let (bits, cont) = run(&mut v, &[1_000.0, 1_001.0, 2.0, 3.0]);
    // Step 2: (1002.5 − 1001) + (2 − 0.5) = 3, not flagged.
    assert_eq!(bits, [0, 0, 0, 0]);
    nan_eq(&cont, &[1_000.0, 1_001.0, 1_004.0, 1_005.0]);
}

#[test]
fn spike_is_excluded_and_glitch_costs_nothing() {
    // 60 kWh/h × 1.5 over 60 s: at most 1.5 per step.
    let rules = PointRules {
        max_rate_per_hour: Some(60.0),
        ..counter(None)
    };
    let mut v = Validator::new(vec![meter(vec![rules])], TIME);
    let (bits, cont) = run(&mut v, &[100.0, 101.0, 900.0, 102.0, 103.0]);
    assert_eq!(bits, [0, 0, SP, 0, 0]);
    nan_eq(&cont, &[100.0, 101.0, N, 102.0, 103.0]);
    assert_eq!(v.counters().total_of(Quality::SPIKE), 1);
}

#[test]
fn persisting_jump_becomes_new_baseline_without_counting_it() {
    let rules = PointRules {
        max_rate_per_hour: Some(60.0),
        ..counter(None)
    };
    let mut v = Validator::new(vec![meter(vec![rules])], TIME);
    let (bits, cont) = run(&mut v, &[100.0, 101.0, 900.0, 901.0, 902.0]);
    assert_eq!(bits, [0, 0, SP, 0, 0]);
    nan_eq(&cont, &[100.0, 101.0, N, 102.0, 103.0]);
}

#[test]
fn frozen_gauge_after_n_identical_polls() {
    let rules = PointRules {
        frozen_after: Some(3),
        ..gauge()
    };
    let mut v = Validator::new(vec![meter(vec![rules])], TIME);
    let (bits, cont) = run(&mut v, &[5.0, 5.0, 5.0, 5.0, 5.5, 5.5]);
    assert_eq!(bits, [0, 0, FR, FR, 0, 0]);
    nan_eq(&cont, &[N; 6]);
    // A missing value neither extends nor breaks the run.
    let (b, _) = step(&mut v, T0 + 360, &[PointValue::missing(Quality::TIMEOUT)]);
    assert_eq!(b, [Quality::TIMEOUT.0]);
    let (b, _) = step(&mut v, T0 + 420, &[good(5.5)]);
    assert_eq!(b, [FR]);
}

#[test]
fn frozen_counter_while_rate_gauge_says_flow() {
    // Counter in kWh (resolution 0.01), gauge power in kW; 60 s at 6 kW = 0.1 kWh expected.
    let rules = MeterRules {
        rate_point: Some((0, 1)),
        ..meter(vec![counter(None), gauge()])
    };
    let mut v = Validator::new(vec![rules], TIME);
    let seq = [
        (10.0, 6.0, [0, 0], [10.0, N]),
        (10.1, 6.0, [0, 0], [10.1, N]),
        (10.1, 6.0, [FR, 0], [N, N]), // stopped while 6 kW flows
        (10.1, 6.0, [FR, 0], [N, N]),
        (10.4, 0.0, [0, 0], [10.4, N]), // resumes
        (10.4, 0.0, [0, 0], [10.4, N]), // no flow: not frozen
        (10.4, 0.3, [0, 0], [10.4, N]), // previous rate 0: min is 0
        (10.4, 0.3, [0, 0], [10.4, N]), // 0.3 kW × 1/60 h = 0.005 < one count
    ];
    for (i, (c, g, bits, cont)) in seq.iter().enumerate() {
        let (b, k) = step(&mut v, T0 + 60 * i as i64, &[good(*c), good(*g)]);
        assert_eq!(b, bits, "reading {i}");
        nan_eq(&k, cont);
    }
}

#[test]
fn future_skew_flagged_without_state_update() {
    let mut v = Validator::new(vec![meter(vec![counter(None)])], TIME);
    step(&mut v, T0, &[good(1.0)]);
    let (b, c) = step_at(&mut v, T0 + 120, T0 + 60, &[good(9.0)]); // 60 s ahead > 30 s skew
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    let (b, c) = step_at(&mut v, T0 + 90, T0 + 60, &[good(2.0)]); // 30 s ahead: allowed
    assert_eq!(b, [0]);
    nan_eq(&c, &[2.0]);
}

#[test]
fn late_reading_flagged_without_state_update() {
    let mut v = Validator::new(vec![meter(vec![counter(None)])], TIME);
    step(&mut v, T0, &[good(1.0)]);
    let (b, c) = step_at(&mut v, T0 + 60, T0 + 60 + 3601, &[good(2.0)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    let (b, c) = step_at(&mut v, T0 + 120, T0 + 120 + 3600, &[good(3.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[3.0]);
}

#[test]
fn duplicate_slot_not_double_counted() {
    let mut v = Validator::new(vec![meter(vec![counter(None)])], TIME);
    step(&mut v, T0, &[good(1.0)]);
    step(&mut v, T0 + 60, &[good(2.0)]);
    let (b, c) = step_at(&mut v, T0 + 60, T0 + 70, &[good(2.5)]);
    assert_eq!(b, [DU]);
    nan_eq(&c, &[N]);
    let (b, c) = step(&mut v, T0 + 120, &[good(3.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[3.0]);
    assert_eq!(v.counters().total_of(Quality::DUPLICATE), 1);
}

#[test]
fn out_of_order_reading_is_time_flagged() {
    let mut v = Validator::new(vec![meter(vec![counter(None)])], TIME);
    step(&mut v, T0 + 120, &[good(3.0)]);
    let (b, c) = step_at(&mut v, T0 + 60, T0 + 130, &[good(2.0)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    let (b, c) = step(&mut v, T0 + 180, &[good(4.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[4.0]);
}

#[test]
fn calibration_due_flags_every_point_from_due_date() {
    let rules = MeterRules {
        calibration_due: Some(T0 + 60),
        ..meter(vec![counter(None), gauge()])
    };
    let mut v = Validator::new(vec![rules], TIME);
    let (b, c) = step(&mut v, T0, &[good(1.0), good(3.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[1.0, N]);
    let (b, c) = step(&mut v, T0 + 60, &[good(2.0), good(3.0)]);
    assert_eq!(b, [CA, CA]);
    nan_eq(&c, &[2.0, N]);
    assert_eq!(v.counters().meter_of(0, Quality::CALIBRATION), 2);
}

#[test]
fn restart_in_the_middle_of_a_rollover_matches_uninterrupted_run() {
    let rules = || {
        vec![MeterRules {
            key: 42,
            ..meter(vec![
                PointRules {
                    max_rate_per_hour: Some(600.0),
                    ..counter(Some(100_000_000.0))
                },
                PointRules {
                    frozen_after: Some(2),
                    ..gauge()
                },
            ])
        }]
    };
    let seq: Vec<[f64; 2]> = vec![
        [99_999_980.0, 1.0],
        [99_999_990.0, 1.0],
        [99_999_999.5, 2.0],
        [5.0, 2.0], // wrap
        [12.0, 2.0],
        [500.0, 3.0], // spike, pending
        [501.0, 3.0], // persisting: new baseline
        [502.0, 4.0],
    ];
    let mut all = Validator::new(rules(), TIME);
    let mut expected = Vec::new();
    for (i, r) in seq.iter().enumerate() {
        expected.push(step(
            &mut all,
            T0 + 60 * i as i64,
            &[good(r[0]), good(r[1])],
        ));
    }
    for cut in 1..seq.len() {
        let mut first = Validator::new(rules(), TIME);
        let mut got = Vec::new();
        for (i, r) in seq.iter().enumerate().take(cut) {
            got.push(step(
                &mut first,
                T0 + 60 * i as i64,
                &[good(r[0]), good(r[1])],
            ));
        }
        let bytes = first.checkpoint();
        let mut second = Validator::new(rules(), TIME);
        let report = second.restore(&bytes).expect("restore");
        assert_eq!((report.restored, report.reset), (1, 0));
        for (i, r) in seq.iter().enumerate().skip(cut) {
            got.push(step(
                &mut second,
                T0 + 60 * i as i64,
                &[good(r[0]), good(r[1])],
            ));
        }
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.0, e.0, "cut {cut} reading {i}");
            nan_eq(&g.1, &e.1);
        }
    }
    assert_eq!(expected[1].0, [0, FR]);
    assert_eq!(expected[3].0, [RO, FR]);
    assert_eq!(expected[4].0, [0, FR]);
    assert_eq!(expected[5].0, [SP, 0]);
}

#[test]
fn restore_rejects_corruption_and_resets_mismatched_meters() {
    let mut v = Validator::new(vec![meter(vec![counter(None)])], TIME);
    step(&mut v, T0, &[good(7.0)]);
    let bytes = v.checkpoint();
    let mut flipped = bytes.clone();
    flipped[10] ^= 1;
    assert!(matches!(
        Validator::new(vec![meter(vec![counter(None)])], TIME).restore(&flipped),
        Err(ValidateError::Checksum { .. })
    ));
    assert_eq!(
        Validator::new(vec![], TIME).restore(&bytes[..5]),
        Err(ValidateError::TooShort { len: 5 })
    );
    // Point count changed: that meter starts fresh.
    let mut other = Validator::new(vec![meter(vec![counter(None), gauge()])], TIME);
    let report = other.restore(&bytes).expect("restore");
    assert_eq!((report.restored, report.reset), (0, 1));
    // Same shape: state restored, the next value continues from 7.
    let mut same = Validator::new(vec![meter(vec![counter(None)])], TIME);
    same.restore(&bytes).expect("restore");
    let (b, c) = step(&mut same, T0 + 60, &[good(6.0)]);
    assert_eq!(b, [B]);
    nan_eq(&c, &[7.0]);
    let (b, _) = step(&mut same, T0, &[good(8.0)]);
    assert_eq!(b, [TI]);
}

// ---- Late readings (out of order, within `reorder_window_secs`) ----

/// Five minutes of reorder window.
const LATE: TimeRules = TimeRules {
    reorder_window_secs: 300,
    ..TIME
};

/// Validates one reading of meter 0 at `slot` delivered at `now` = the newest slot + 10 s.
fn late(v: &mut Validator, slot: i64, newest: i64, values: &[PointValue]) -> (Vec<u16>, Vec<f64>) {
    step_at(v, slot, newest + 10, values)
}

#[test]
fn late_gauge_is_good_and_gets_no_frozen_judgment() {
    let rules = PointRules {
        frozen_after: Some(3),
        ..gauge()
    };
    let mut v = Validator::new(vec![meter(vec![rules])], LATE);
    let (bits, _) = run(&mut v, &[5.0, 6.0, 7.0]);
    assert_eq!(bits, [0, 0, 0]);
    // Two late copies of 7.0: would make a run of 3 (frozen) if they counted.
    let (b, c) = late(&mut v, T0 + 90, T0 + 120, &[good(7.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[N]);
    let (b, _) = late(&mut v, T0 + 100, T0 + 120, &[good(7.0)]);
    assert_eq!(b, [0]);
    // The run is still 1 (7.0 at T0+120): the second and third in-order 7.0.
    let (b, _) = step(&mut v, T0 + 180, &[good(7.0)]);
    assert_eq!(b, [0]);
    let (b, _) = step(&mut v, T0 + 240, &[good(7.0)]);
    assert_eq!(b, [FR]);
    assert_eq!(v.counters().total_of(Quality::TIME), 0);
}

#[test]
fn late_gauge_out_of_range_is_flagged_range() {
    let rules = PointRules {
        min: Some(0.0),
        max: Some(100.0),
        ..gauge()
    };
    let mut v = Validator::new(vec![meter(vec![rules])], LATE);
    run(&mut v, &[50.0, 51.0, 52.0]);
    let (b, c) = late(&mut v, T0 + 60, T0 + 120, &[good(150.0)]);
    assert_eq!(b, [R]);
    nan_eq(&c, &[N]);
    let (b, _) = late(&mut v, T0 + 30, T0 + 120, &[good(f64::NAN)]);
    assert_eq!(b, [SE]);
    assert_eq!(v.counters().total_of(Quality::RANGE), 1);
    assert_eq!(v.counters().total_of(Quality::SENTINEL), 1);
    assert_eq!(v.counters().total_of(Quality::TIME), 0);
}

#[test]
fn late_counter_gets_continuous_of_current_baseline() {
    let mut v = Validator::new(vec![meter(vec![counter(Some(100_000_000.0))])], LATE);
    // A reset at T0+120 moves the baseline: base_cont 50_001, base_raw 0.25.
    let (bits, cont) = run(&mut v, &[50_000.0, 50_001.0, 0.25, 1.25, 2.25]);
    assert_eq!(bits, [0, 0, B, 0, 0]);
    nan_eq(&cont, &[50_000.0, 50_001.0, 50_001.0, 50_002.0, 50_003.0]);
    // Between two readings of the current baseline: 50_001 + (1.75 − 0.25).
    let (b, c) = late(&mut v, T0 + 210, T0 + 240, &[good(1.75)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[50_002.5]);
    // No monotonicity judgment: a value below its neighbours is not flagged here.
    let (b, c) = late(&mut v, T0 + 150, T0 + 240, &[good(0.5)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[50_001.25]);
    // Before the reset: the current baseline was not in force.
    let (b, c) = late(&mut v, T0 + 90, T0 + 240, &[good(50_001.5)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
}

#[test]
fn late_counter_across_a_rollover() {
    let mut v = Validator::new(vec![meter(vec![counter(Some(100_000_000.0))])], LATE);
    let (bits, cont) = run(&mut v, &[99_999_980.0, 99_999_990.0, 5.0, 7.0]);
    assert_eq!(bits, [0, 0, RO, 0]);
    nan_eq(
        &cont,
        &[99_999_980.0, 99_999_990.0, 100_000_005.0, 100_000_007.0],
    );
    // Before the rollover (baseline set at T0+120): cannot be known.
    let (b, c) = late(&mut v, T0 + 90, T0 + 180, &[good(99_999_995.0)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    // The rollover's own slot again: not after the baseline was set either.
    let (b, c) = late(&mut v, T0 + 120, T0 + 180, &[good(5.0)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    // After the rollover: on the new baseline (base_cont 100_000_000, base_raw 0).
    let (b, c) = late(&mut v, T0 + 150, T0 + 180, &[good(6.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[100_000_006.0]);
    assert_eq!(v.counters().total_of(Quality::TIME), 2);
}

#[test]
fn late_counter_before_first_value_or_after_last_trusted_one() {
    let rules = PointRules {
        max_rate_per_hour: Some(600.0), // at most 15 per minute with the margin
        ..counter(Some(100_000_000.0))
    };
    let mut v = Validator::new(vec![meter(vec![rules, gauge()])], LATE);
    let to = PointValue::missing(Quality::TIMEOUT);
    // First reading times out: no baseline yet, a late counter cannot be placed; the gauge can.
    step(&mut v, T0, &[to, to]);
    let (b, c) = late(&mut v, T0 - 60, T0, &[good(99_999_970.0), good(1.0)]);
    assert_eq!(b, [TI, 0]);
    nan_eq(&c, &[N, N]);
    step(&mut v, T0 + 60, &[good(99_999_970.0), good(1.0)]);
    // The counter then times out twice: its last trusted value is at T0+60.
    step(&mut v, T0 + 120, &[to, good(1.0)]);
    step(&mut v, T0 + 180, &[to, good(1.0)]);
    // A late value after it that plausibly continues from it: placed.
    let (b, c) = late(&mut v, T0 + 150, T0 + 180, &[good(99_999_980.0), good(1.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[99_999_980.0, N]);
    // Lower than the last trusted value: maybe a wrap not seen yet.
    let (b, c) = late(&mut v, T0 + 150, T0 + 180, &[good(1.0), good(1.0)]);
    assert_eq!(b, [TI, 0]);
    nan_eq(&c, &[N, N]);
    // More than the rate allows since it (25 in 90 s > 22.5): maybe a jump not seen yet.
    let (b, c) = late(&mut v, T0 + 150, T0 + 180, &[good(99_999_995.0), good(1.0)]);
    assert_eq!(b, [TI, 0]);
    nan_eq(&c, &[N, N]);
    // The in-order wrap is still judged against 99_999_970 at T0+60 (31 in 180 s ≤ 45).
    let (b, c) = step(&mut v, T0 + 240, &[good(1.0), good(1.0)]);
    assert_eq!(b, [RO, 0]);
    nan_eq(&c, &[100_000_001.0, N]);
}

#[test]
fn late_counter_after_a_declared_replacement_not_yet_applied() {
    let rules = MeterRules {
        replacements: vec![(
            0,
            Replacement {
                at: T0 + 90,
                old_final: 1_002.5,
                new_initial: 0.5,
            },
        )],
        ..meter(vec![counter(None)])
    };
    let mut v = Validator::new(vec![rules], LATE);
    let to = PointValue::missing(Quality::TIMEOUT);
    step(&mut v, T0, &[good(1_000.0)]);
    step(&mut v, T0 + 60, &[good(1_001.0)]);
    step(&mut v, T0 + 120, &[to]);
    // Reads the new meter: the old baseline does not apply.
    let (b, c) = late(&mut v, T0 + 100, T0 + 120, &[good(1.5)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    // Before the swap: the old meter, on the current baseline.
    let (b, c) = late(&mut v, T0 + 75, T0 + 120, &[good(1_001.5)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[1_001.5]);
    // The replacement is applied by the next in-order reading as before.
    let (b, c) = step(&mut v, T0 + 180, &[good(2.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[1_004.0]);
    // Once applied, a late reading between the swap and that reading predates the baseline.
    let (b, c) = late(&mut v, T0 + 150, T0 + 180, &[good(1.5)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
}

#[test]
fn reading_older_than_the_window_is_time_flagged() {
    let mut v = Validator::new(vec![meter(vec![counter(None), gauge()])], LATE);
    run2(&mut v, 11);
    let newest = T0 + 600;
    // Exactly at the window edge: late, judged.
    let (b, c) = late(&mut v, newest - 300, newest, &[good(5.0), good(2.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[5.0, N]);
    // One second older: flagged, as before.
    let (b, c) = late(&mut v, newest - 301, newest, &[good(5.0), good(2.0)]);
    assert_eq!(b, [TI, TI]);
    nan_eq(&c, &[N, N]);
    // The same slot as the newest stays a duplicate.
    let (b, _) = late(&mut v, newest, newest, &[good(10.0), good(2.0)]);
    assert_eq!(b, [DU, DU]);
    // Within the window but beyond the wall-clock lateness: flagged.
    let (b, _) = step_at(
        &mut v,
        newest - 60,
        newest - 60 + 3601,
        &[good(9.0), good(2.0)],
    );
    assert_eq!(b, [TI, TI]);
    assert_eq!(v.counters().total_of(Quality::TIME), 4);
}

/// `n` in-order readings of a (counter, gauge) meter: counter i, gauge 2, one a minute.
fn run2(v: &mut Validator, n: usize) {
    for i in 0..n {
        let (b, _) = step(v, T0 + 60 * i as i64, &[good(i as f64), good(2.0)]);
        assert_eq!(b, [0, 0]);
    }
}

#[test]
fn late_readings_change_no_state() {
    let rules = || {
        vec![MeterRules {
            key: 7,
            rate_point: Some((0, 1)),
            ..meter(vec![
                PointRules {
                    max_rate_per_hour: Some(600.0), // 15 per minute with the margin
                    ..counter(Some(100_000_000.0))
                },
                PointRules {
                    frozen_after: Some(2),
                    ..gauge()
                },
            ])
        }]
    };
    let seq: [[f64; 2]; 9] = [
        [99_999_980.0, 6.0],
        [99_999_990.0, 6.0],
        [99_999_999.5, 6.0],
        [5.0, 6.0], // wrap
        [12.0, 6.0],
        [500.0, 6.0], // spike, pending
        [501.0, 6.0], // persisting: new baseline
        [501.0, 6.0], // frozen counter while 6 kW flows
        [502.0, 0.0],
    ];
    let mut plain = Validator::new(rules(), LATE);
    let mut mixed = Validator::new(rules(), LATE);
    let lates: [[f64; 2]; 4] = [[99_999_995.0, 6.0], [0.5, 0.0], [900.0, 6.0], [501.0, 6.0]];
    for (i, r) in seq.iter().enumerate() {
        let slot = T0 + 60 * i as i64;
        let e = step(&mut plain, slot, &[good(r[0]), good(r[1])]);
        let g = step(&mut mixed, slot, &[good(r[0]), good(r[1])]);
        assert_eq!(g.0, e.0, "reading {i}");
        nan_eq(&g.1, &e.1);
        // Late readings at every earlier offset in the window, with odd values.
        for back in [30, 60, 150, 300] {
            for l in &lates {
                late(&mut mixed, slot - back, slot, &[good(l[0]), good(l[1])]);
            }
        }
        assert_eq!(
            mixed.checkpoint(),
            plain.checkpoint(),
            "state after reading {i}"
        );
    }
}

#[test]
fn zero_window_reproduces_the_old_behaviour() {
    for window in [0, -60] {
        let time = TimeRules {
            reorder_window_secs: window,
            ..TIME
        };
        let mut v = Validator::new(vec![meter(vec![counter(None), gauge()])], time);
        step(&mut v, T0, &[good(1.0), good(2.0)]);
        step(&mut v, T0 + 120, &[good(3.0), good(2.0)]);
        let (b, c) = step_at(&mut v, T0 + 60, T0 + 130, &[good(2.0), good(2.0)]);
        assert_eq!(b, [TI, TI]);
        nan_eq(&c, &[N, N]);
        let (b, c) = step(&mut v, T0 + 180, &[good(4.0), good(2.0)]);
        assert_eq!(b, [0, 0]);
        nan_eq(&c, &[4.0, N]);
    }
    // The same reading with a window: late and good.
    let mut v = Validator::new(vec![meter(vec![counter(None), gauge()])], LATE);
    step(&mut v, T0, &[good(1.0), good(2.0)]);
    step(&mut v, T0 + 120, &[good(3.0), good(2.0)]);
    let (b, c) = step_at(&mut v, T0 + 60, T0 + 130, &[good(2.0), good(2.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[2.0, N]);
}

// ---- Checkpoint versions ----

#[test]
fn checkpoint_keeps_the_baseline_slot_across_a_restart() {
    let rules = || {
        vec![MeterRules {
            key: 9,
            ..meter(vec![counter(Some(100_000_000.0))])
        }]
    };
    let mut v = Validator::new(rules(), LATE);
    run(&mut v, &[99_999_980.0, 99_999_990.0, 5.0, 7.0, 9.0]); // wrap at T0+120
    let bytes = v.checkpoint();
    assert_eq!(&bytes[4..6], &2u16.to_le_bytes());
    // Header 10, meter 28, point 68 (with the baseline slot), CRC 4.
    assert_eq!(bytes.len(), 10 + 28 + 68 + 4);
    let mut r = Validator::new(rules(), LATE);
    r.restore(&bytes).expect("restore");
    // Before the wrap: still known to predate the baseline.
    let (b, c) = late(&mut r, T0 + 90, T0 + 240, &[good(99_999_995.0)]);
    assert_eq!(b, [TI]);
    nan_eq(&c, &[N]);
    let (b, c) = late(&mut r, T0 + 150, T0 + 240, &[good(6.0)]);
    assert_eq!(b, [0]);
    nan_eq(&c, &[100_000_006.0]);
}

/// A version-1 checkpoint, written field by field as version 1 did (no baseline slot).
fn v1_bytes(key: u64, meter_last_slot: i64, points: &[[u64; 8]], n_repl: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"EMGV");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    out.extend_from_slice(&meter_last_slot.to_le_bytes());
    out.extend_from_slice(&f64::NAN.to_bits().to_le_bytes()); // rate_prev
    for p in points {
        // last, last_slot, base_raw, base_cont, run, repl_done, pending, pending_slot
        out.extend_from_slice(&n_repl.to_le_bytes());
        out.extend_from_slice(&p[0].to_le_bytes());
        out.extend_from_slice(&p[1].to_le_bytes());
        out.extend_from_slice(&p[2].to_le_bytes());
        out.extend_from_slice(&p[3].to_le_bytes());
        out.extend_from_slice(&(p[4] as u32).to_le_bytes());
        out.extend_from_slice(&(p[5] as u32).to_le_bytes());
        out.extend_from_slice(&p[6].to_le_bytes());
        out.extend_from_slice(&p[7].to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn version_1_checkpoint_restores_with_the_baseline_at_the_last_slot() {
    let rules = || {
        vec![MeterRules {
            key: 9,
            ..meter(vec![counter(Some(100_000_000.0)), gauge()])
        }]
    };
    // State after 99_999_980, 99_999_990, 5 (wrap at T0+120), 7, 9 at T0+240; gauge run of 1.
    let counter_state = [
        9.0f64.to_bits(),
        (T0 + 240) as u64,
        0.0f64.to_bits(),
        100_000_000.0f64.to_bits(),
        0,
        0,
        f64::NAN.to_bits(),
        i64::MIN as u64,
    ];
    let gauge_state = [
        2.0f64.to_bits(),
        (T0 + 240) as u64,
        0.0f64.to_bits(),
        0.0f64.to_bits(),
        1,
        0,
        f64::NAN.to_bits(),
        i64::MIN as u64,
    ];
    let bytes = v1_bytes(9, T0 + 240, &[counter_state, gauge_state], 0);
    assert_eq!(bytes.len(), 10 + 28 + 2 * 60 + 4);
    let mut v = Validator::new(rules(), LATE);
    let report = v.restore(&bytes).expect("restore version 1");
    assert_eq!((report.restored, report.reset), (1, 0));
    // Conservative: the baseline counts as set at the last slot, so even a late
    // reading after the wrap is not placed.
    let (b, c) = late(&mut v, T0 + 150, T0 + 240, &[good(6.0), good(2.0)]);
    assert_eq!(b, [TI, 0]);
    nan_eq(&c, &[N, N]);
    // In order, the restored state continues exactly.
    let (b, c) = step(&mut v, T0 + 300, &[good(11.0), good(2.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[100_000_011.0, N]);
    // After the last slot of the old checkpoint, late readings are placed again.
    let (b, c) = late(&mut v, T0 + 270, T0 + 300, &[good(10.0), good(2.0)]);
    assert_eq!(b, [0, 0]);
    nan_eq(&c, &[100_000_010.0, N]);
    // Re-checkpointed as version 2.
    assert_eq!(&v.checkpoint()[4..6], &2u16.to_le_bytes());
}

#[test]
fn unknown_checkpoint_version_is_refused() {
    let mut bytes = v1_bytes(0, T0, &[], 0);
    bytes[4..6].copy_from_slice(&3u16.to_le_bytes());
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    let err = Validator::new(vec![], LATE).restore(&bytes);
    assert_eq!(err, Err(ValidateError::Version { found: 3 }));
    assert_eq!(
        err.unwrap_err().to_string(),
        "validation checkpoint: unsupported version 3, this build reads 1 to 2"
    );
}
