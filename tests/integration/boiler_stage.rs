//! The boiler stage's join and emission rules on hand-made aggregation
//! output: which window is written when (complete → at once; else at end +
//! grace by the boiler clock; again on a later input), exactly what each
//! input becomes (amounts, gauge means and coverage, fixed values, the fuel
//! record in force), and the counters.
//!
//! The formulas are replaced by a recording stub, so every expectation
//! here is about the join, not the efficiency (the real formulas are
//! exercised end to end in `boiler_e2e` and by `boiler_calc`).

use emgate::pipeline::aggregate::{AggOutput, ConsumptionOut, GaugeStatOut, GaugeWindowOut};
use emgate::pipeline::boiler::stage::{
    BoilerCounters, BoilerOut, BoilerStage, MAX_OPEN, Slot, Source, StageBoiler, auto_grace,
};
use emgate::pipeline::boiler::{
    BoilerKind, BoilerResult, BoilerSpec, BoilerState, FuelKind, FuelRecord, Inputs, OutOfLimit,
    OutputKind, Reasons, WindowInputs,
};
use emgate::pipeline::steam::{SteamMargins, SteamState};
use emgate::pipeline::window::WindowSize;
use jiff::tz::TimeZone;

/// 2026-03-15T00:00:00+08:00, a local midnight in Asia/Shanghai.
const T0: i64 = 1_773_504_000;
const Q: i64 = 900;

/// Meters: 0 fuel, 1 output, 2 flue-gas analyzer (points: 0 O₂, 1 CO,
/// 2 exhaust), 3 a meter no boiler uses.
const FUEL: u32 = 0;
const OUTPUT: u32 = 1;
const FLUE: u32 = 2;
const OTHER: u32 = 3;
const POLL: [i64; 4] = [60, 60, 30, 60];

fn spec() -> BoilerSpec {
    BoilerSpec {
        kind: BoilerKind::Steam,
        rated_capacity: 10.0,
        fuel_kind: FuelKind::Gas,
        fuel_per_unit: 1.0,
        output: OutputKind::SteamMass {
            kg_per_unit: 1000.0,
            state: SteamState::Auto,
            dryness: 1.0,
        },
        q2_m: 0.5,
        q2_n: 3.5,
        q3_k: 3.2,
        q3_default_pct: 0.5,
        beta: 0.79,
        carbon_kj_per_kg: 32_866.0,
        slag_temperature_c: 600.0,
        q5_rated_pct: 1.7,
        limits: None,
        disagreement_points: 5.0,
        min_coverage: 0.9,
    }
}

fn record(from: i64, lhv: f64) -> FuelRecord {
    FuelRecord {
        from,
        lhv_kj: lhv,
        ash_pct: None,
        moisture_pct: None,
        volatile_daf_pct: None,
        slag_share_pct: None,
        slag_combustible_pct: None,
        fly_ash_combustible_pct: None,
        slag_temperature_c: None,
    }
}

/// A gas steam boiler: O₂ and exhaust from the analyzer, feed water 20 °C
/// and cold air 25 °C fixed, no CO, no steam gauges (the stub needs none).
fn boiler(grace_secs: i64) -> StageBoiler {
    let mut gauges = [Source::None; 9];
    gauges[Slot::ALL.iter().position(|s| *s == Slot::O2).expect("slot")] = Source::Point {
        meter: FLUE,
        point: 0,
    };
    gauges[Slot::ALL
        .iter()
        .position(|s| *s == Slot::Exhaust)
        .expect("slot")] = Source::Point {
        meter: FLUE,
        point: 2,
    };
    gauges[Slot::ALL
        .iter()
        .position(|s| *s == Slot::FeedWater)
        .expect("slot")] = Source::Fixed(20.0);
    gauges[Slot::ALL
        .iter()
        .position(|s| *s == Slot::ColdAir)
        .expect("slot")] = Source::Fixed(25.0);
    StageBoiler {
        spec: spec(),
        records: vec![record(T0 - 86_400, 35_000.0), record(T0 + Q, 36_000.0)],
        meter_lhv_kj_per_m3: Some(34_000.0),
        blowdown_pct: Some(2.0),
        fuel_meter: FUEL,
        output_meter: OUTPUT,
        gauges,
        tz: TimeZone::get("Asia/Shanghai").expect("zone"),
        grace_secs,
    }
}

/// The stub "formulas": the result carries the inputs it was given, so
/// the tests read back exactly what the join handed over.
/// * `fuel_in_gj`, `heat_out_gj`: the fuel and output amounts;
/// * `o2_mean`, `exhaust_c_mean`: the gauge means; `q2`, `q3`: their coverages;
/// * `q4`: the feed water, `q5`: the cold air, `q6`: the blow-down;
/// * `alpha`: the LHV of the record in force (else the meter's);
/// * `load_pct`: the window length, s; `eta_direct`: the configured inputs' bits;
/// * state off when the fuel is 0, partial when something is missing;
/// * out of limit (efficiency) when the fuel exceeds 100, the methods
///   disagree when the output exceeds 100.
fn stub(
    _spec: &BoilerSpec,
    configured: Inputs,
    record: Option<&FuelRecord>,
    w: &WindowInputs,
    _m: SteamMargins,
) -> BoilerResult {
    let all = w.fuel.is_some() && w.output.is_some() && w.o2.is_some() && w.exhaust.is_some();
    let state = match w.fuel {
        Some(f) if f.amount == 0.0 => BoilerState::Off,
        _ if all => BoilerState::Running,
        _ => BoilerState::Partial,
    };
    let mut reasons = Reasons::default();
    if w.fuel.is_none() {
        reasons.insert(Reasons::DIRECT_NO_FUEL);
    }
    if w.o2.is_none() {
        reasons.insert(Reasons::INDIRECT_NO_ANALYZER);
    }
    BoilerResult {
        state,
        eta_direct: Some(f64::from(configured.0)),
        eta_indirect: None,
        q2: w.o2.map(|m| m.coverage),
        q3: w.exhaust.map(|m| m.coverage),
        q4: w.feed_water.map(|m| m.mean),
        q5: w.cold_air.map(|m| m.mean),
        q6: w.blowdown_pct,
        alpha: record.map(|r| r.lhv_kj).or(w.meter_lhv_kj_per_m3),
        load_pct: Some(w.window_secs),
        heat_out_gj: w.output.map(|a| a.amount),
        fuel_in_gj: w.fuel.map(|a| a.amount),
        exhaust_c_mean: w.exhaust.map(|m| m.mean),
        o2_mean: w.o2.map(|m| m.mean),
        coverage: w.fuel.map_or(0.0, |a| a.coverage),
        estimated: w.fuel.is_some_and(|a| a.estimated),
        methods_disagree: w.output.is_some_and(|a| a.amount > 100.0),
        grade: None,
        out_of_limit: if w.fuel.is_some_and(|a| a.amount > 100.0) {
            OutOfLimit::EFFICIENCY
        } else {
            OutOfLimit::default()
        },
        reasons,
    }
}

fn stage(grace_secs: i64, sizes: &[WindowSize]) -> BoilerStage {
    BoilerStage::new(
        vec![boiler(grace_secs)],
        POLL.to_vec(),
        sizes.to_vec(),
        SteamMargins::DEFAULT,
        stub,
    )
}

fn consumption(meter: u32, size: WindowSize, start: i64, amount: f64) -> ConsumptionOut {
    ConsumptionOut {
        meter,
        size,
        start,
        amount,
        kgce: None,
        coverage: 1.0,
        estimated: false,
        steam_suspect: false,
    }
}

/// The analyzer's gauge window: O₂ and exhaust with `samples` good samples
/// each (CO never good).
fn flue(out: &mut AggOutput, size: WindowSize, start: i64, o2: f64, exhaust: f64, samples: u32) {
    let first = out.gauge_stats.len() as u32;
    for (point, mean) in [(0u16, o2), (2u16, exhaust)] {
        out.gauge_stats.push(GaugeStatOut {
            point,
            mean,
            min: mean - 1.0,
            max: mean + 1.0,
            samples,
        });
    }
    out.gauges.push(GaugeWindowOut {
        meter: FLUE,
        size,
        start,
        samples,
        stats_start: first,
        stats_end: out.gauge_stats.len() as u32,
    });
}

/// One batch: `agg` and reading slots of every meter at `slot`.
fn run(s: &mut BoilerStage, agg: &AggOutput, slot: i64) -> Vec<BoilerOut> {
    let mut out = Vec::new();
    s.process(
        agg,
        [FUEL, OUTPUT, FLUE, OTHER].map(|m| (m, slot)),
        &mut out,
    );
    out
}

fn only(out: &[BoilerOut]) -> BoilerOut {
    assert_eq!(out.len(), 1, "{out:#?}");
    out[0]
}

#[test]
fn a_complete_window_is_written_at_once_with_exactly_its_inputs() {
    let mut s = stage(600, &[WindowSize::Min15]);
    // The fuel and output meters close the window first: nothing yet.
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 40.0));
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 0.5));
    assert!(run(&mut s, &agg, T0 + Q).is_empty());
    // The analyzer's window completes it: written in the same batch.
    let mut agg = AggOutput::default();
    flue(&mut agg, WindowSize::Min15, T0, 3.5, 120.0, 27);
    let w = only(&run(&mut s, &agg, T0 + Q + 30));
    assert_eq!((w.boiler, w.size, w.start), (0, WindowSize::Min15, T0));
    let r = w.result;
    assert_eq!(r.state, BoilerState::Running);
    assert_eq!((r.fuel_in_gj, r.heat_out_gj), (Some(40.0), Some(0.5)));
    assert_eq!((r.o2_mean, r.exhaust_c_mean), (Some(3.5), Some(120.0)));
    // 27 good samples of 900 s / 30 s = 30 expected.
    assert_eq!((r.q2, r.q3), (Some(0.9), Some(0.9)));
    assert_eq!((r.q4, r.q5, r.q6), (Some(20.0), Some(25.0), Some(2.0)));
    assert_eq!(r.alpha, Some(35_000.0), "the record from the day before");
    assert_eq!(r.load_pct, Some(900.0));
    // Fuel, output, the analyzer's O₂ and exhaust, the fixed feed water and cold air.
    let configured = [
        Inputs::FUEL,
        Inputs::OUTPUT,
        Inputs::O2,
        Inputs::EXHAUST,
        Inputs::FEED_WATER,
        Inputs::COLD_AIR,
    ]
    .into_iter()
    .fold(Inputs::default(), Inputs::with);
    assert_eq!(r.eta_direct, Some(f64::from(configured.0)));
    let c = s.counters(0);
    assert_eq!(c.windows, [1, 0, 0]);
    assert_eq!(c.reemitted, 0);
    // Nothing more: the window is not written twice.
    assert!(run(&mut s, &AggOutput::default(), T0 + 2 * Q).is_empty());
}

#[test]
fn a_window_missing_an_input_waits_for_its_grace_then_is_written_with_what_it_has() {
    let grace = 300;
    let mut s = stage(grace, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 40.0));
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 0.5));
    assert!(run(&mut s, &agg, T0 + Q).is_empty());
    // The clock is the newest slot of the boiler's meters.
    assert!(run(&mut s, &AggOutput::default(), T0 + Q + grace - 1).is_empty());
    let w = only(&run(&mut s, &AggOutput::default(), T0 + Q + grace));
    assert_eq!(w.start, T0);
    assert_eq!(w.result.state, BoilerState::Partial);
    assert_eq!(w.result.o2_mean, None);
    assert_eq!(w.result.reasons, Reasons::INDIRECT_NO_ANALYZER);
    assert_eq!(s.counters(0).windows, [0, 0, 1]);
    // A slot of a meter no boiler uses does not move the clock.
    let mut s = stage(grace, &[WindowSize::Min15]);
    assert!(run(&mut s, &agg, T0 + Q).is_empty());
    let mut out = Vec::new();
    s.process(&AggOutput::default(), [(OTHER, T0 + 10 * Q)], &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_later_input_rewrites_a_written_window() {
    let mut s = stage(60, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 150.0));
    flue(&mut agg, WindowSize::Min15, T0, 3.5, 120.0, 30);
    assert!(run(&mut s, &agg, T0 + Q).is_empty());
    // The fuel meter is down: at grace the window goes out without fuel.
    let first = only(&run(&mut s, &AggOutput::default(), T0 + Q + 60));
    assert_eq!(first.result.fuel_in_gj, None);
    assert_eq!(first.result.reasons, Reasons::DIRECT_NO_FUEL);
    assert_eq!(first.result.state, BoilerState::Partial);
    // It catches up: the same window again, now complete.
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 200.0));
    let again = only(&run(&mut s, &agg, T0 + Q + 120));
    assert_eq!(again.start, T0);
    assert_eq!(again.result.fuel_in_gj, Some(200.0));
    assert_eq!(again.result.state, BoilerState::Running);
    // And once more when the aggregator re-emits the fuel window.
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 210.0));
    let third = only(&run(&mut s, &agg, T0 + Q + 180));
    assert_eq!(third.result.fuel_in_gj, Some(210.0));
    // Counted once by the state of its first writing, then as re-emitted;
    // out of limit and disagreement once per window.
    assert_eq!(
        s.counters(0),
        BoilerCounters {
            windows: [0, 0, 1],
            reemitted: 2,
            out_of_limit: [1, 0, 0],
            disagreements: 1,
        }
    );
}

#[test]
fn coverage_of_a_gauge_is_its_good_samples_over_the_expected_capped_at_one() {
    let mut s = stage(600, &[WindowSize::Min15, WindowSize::Day]);
    let mut agg = AggOutput::default();
    for (size, start) in [(WindowSize::Min15, T0), (WindowSize::Day, T0)] {
        agg.consumption.push(consumption(FUEL, size, start, 1.0));
        agg.consumption.push(consumption(OUTPUT, size, start, 1.0));
    }
    // 45 samples in a quarter hour of 30 s polls (the meter polled faster
    // than configured): capped at 1; 1440 in a day: 0.5.
    flue(&mut agg, WindowSize::Min15, T0, 3.5, 120.0, 45);
    flue(&mut agg, WindowSize::Day, T0, 3.5, 120.0, 1440);
    let out = run(&mut s, &agg, T0 + 86_400);
    assert_eq!(out.len(), 2);
    let q = out
        .iter()
        .find(|w| w.size == WindowSize::Min15)
        .expect("15m");
    let d = out.iter().find(|w| w.size == WindowSize::Day).expect("1d");
    assert_eq!(q.result.q2, Some(1.0));
    assert_eq!(d.result.q2, Some(0.5));
    assert_eq!(d.result.load_pct, Some(86_400.0), "a local day");
}

#[test]
fn a_gauge_window_without_a_good_sample_of_the_input_counts_as_arrived() {
    let mut s = stage(600, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 1.0));
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 1.0));
    // The analyzer's window has only CO (point 1): O₂ and exhaust flagged.
    agg.gauge_stats.push(GaugeStatOut {
        point: 1,
        mean: 40.0,
        min: 40.0,
        max: 40.0,
        samples: 30,
    });
    agg.gauges.push(GaugeWindowOut {
        meter: FLUE,
        size: WindowSize::Min15,
        start: T0,
        samples: 30,
        stats_start: 0,
        stats_end: 1,
    });
    let w = only(&run(&mut s, &agg, T0 + Q));
    assert_eq!((w.result.o2_mean, w.result.exhaust_c_mean), (None, None));
    assert_eq!(w.result.state, BoilerState::Partial);
}

#[test]
fn the_fuel_record_in_force_is_the_latest_not_after_the_window_start() {
    let mut s = stage(600, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    // The second record starts exactly at the second window's start.
    for start in [T0, T0 + Q] {
        agg.consumption
            .push(consumption(FUEL, WindowSize::Min15, start, 1.0));
        agg.consumption
            .push(consumption(OUTPUT, WindowSize::Min15, start, 1.0));
        flue(&mut agg, WindowSize::Min15, start, 3.5, 120.0, 30);
    }
    let out = run(&mut s, &agg, T0 + 2 * Q);
    let lhv: Vec<(i64, Option<f64>)> = out.iter().map(|w| (w.start, w.result.alpha)).collect();
    assert_eq!(lhv, [(T0, Some(35_000.0)), (T0 + Q, Some(36_000.0))]);
    // Before every record: none in force (the stub then shows the meter's LHV).
    let mut agg = AggOutput::default();
    let early = T0 - 2 * 86_400;
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, early, 1.0));
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, early, 1.0));
    flue(&mut agg, WindowSize::Min15, early, 3.5, 120.0, 30);
    let mut s = stage(600, &[WindowSize::Min15]);
    assert_eq!(
        only(&run(&mut s, &agg, early + Q)).result.alpha,
        Some(34_000.0)
    );
}

#[test]
fn windows_of_other_sizes_and_meters_are_ignored() {
    let mut s = stage(0, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Hour, T0, 1.0));
    agg.consumption
        .push(consumption(OTHER, WindowSize::Min15, T0, 1.0));
    flue(&mut agg, WindowSize::Hour, T0, 3.5, 120.0, 30);
    // The analyzer's own counter (a heat meter lending its temperatures
    // has one) feeds no input: no window is opened for it.
    agg.consumption
        .push(consumption(FLUE, WindowSize::Min15, T0, 1.0));
    assert!(run(&mut s, &agg, T0 + Q).is_empty());
    assert!(run(&mut s, &AggOutput::default(), T0 + 10 * Q).is_empty());
    assert!(s.uses_meter(FLUE) && !s.uses_meter(OTHER));
}

#[test]
fn open_windows_are_bounded_the_oldest_written_first() {
    // A huge grace: nothing is due by time, only by the bound.
    let mut s = stage(1_000_000, &[WindowSize::Min15]);
    let n = MAX_OPEN as i64 + 1;
    let mut written = Vec::new();
    for k in 0..n {
        let mut agg = AggOutput::default();
        agg.consumption
            .push(consumption(FUEL, WindowSize::Min15, T0 + k * Q, 1.0));
        written.extend(run(&mut s, &agg, T0 + (k + 1) * Q));
    }
    let starts: Vec<i64> = written.iter().map(|w| w.start).collect();
    assert_eq!(starts, [T0], "the 17th open window pushes out the first");
    assert_eq!(written[0].result.state, BoilerState::Partial);
}

#[test]
fn windows_are_dropped_after_grace_and_the_longest_window() {
    let mut s = stage(60, &[WindowSize::Min15, WindowSize::Hour]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 1.0));
    assert_eq!(run(&mut s, &agg, T0 + Q + 60).len(), 1);
    // Past end + grace + 1 h the window is gone: a late input for it is
    // not joined into a new, emptier window.
    assert!(run(&mut s, &AggOutput::default(), T0 + Q + 60 + 3600).is_empty());
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 1.0));
    assert!(run(&mut s, &agg, T0 + Q + 60 + 3600).is_empty());
    // Within it, the same late input rewrites the window.
    let mut s = stage(60, &[WindowSize::Min15, WindowSize::Hour]);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(FUEL, WindowSize::Min15, T0, 1.0));
    assert_eq!(run(&mut s, &agg, T0 + Q + 60).len(), 1);
    let mut agg = AggOutput::default();
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 1.0));
    assert_eq!(run(&mut s, &agg, T0 + Q + 60 + 3599).len(), 1);
}

#[test]
fn an_input_amount_reaches_the_formulas_unchanged() {
    let mut s = stage(600, &[WindowSize::Min15]);
    let mut agg = AggOutput::default();
    agg.consumption.push(ConsumptionOut {
        coverage: 0.75,
        estimated: true,
        ..consumption(FUEL, WindowSize::Min15, T0, 0.0)
    });
    agg.consumption
        .push(consumption(OUTPUT, WindowSize::Min15, T0, 0.0));
    flue(&mut agg, WindowSize::Min15, T0, 20.9, 30.0, 30);
    let r = only(&run(&mut s, &agg, T0 + Q)).result;
    assert_eq!(r.state, BoilerState::Off);
    assert_eq!((r.coverage, r.estimated), (0.75, true));
    assert_eq!(s.counters(0).windows, [0, 1, 0]);
}

#[test]
fn the_automatic_grace_is_two_longest_polls_plus_the_lateness() {
    assert_eq!(auto_grace([60, 15, 300], 120), 720);
    assert_eq!(auto_grace([60], 0), 120);
    assert_eq!(BoilerCounters::state_index(BoilerState::Partial), 2);
}

// ---------------------------------------------------------------------------
// What a written window becomes: the `boiler` line, `/api/boilers`, the
// metrics and `emgate status`.

/// A graded, estimated running window of `fz-b1` and an off window of
/// `fz-b2` (no efficiency, nothing graded).
fn written() -> [BoilerOut; 2] {
    let running = BoilerResult {
        state: BoilerState::Running,
        eta_direct: Some(91.5),
        eta_indirect: Some(90.25),
        q2: Some(5.5),
        q3: Some(0.5),
        q4: Some(0.0),
        q5: Some(1.7),
        q6: Some(0.0),
        alpha: Some(1.2),
        load_pct: Some(75.0),
        heat_out_gj: Some(6.25),
        fuel_in_gj: Some(6.83),
        exhaust_c_mean: Some(130.5),
        o2_mean: Some(3.5),
        coverage: 0.95,
        estimated: true,
        methods_disagree: false,
        grade: Some(emgate::pipeline::boiler::Grade::Two),
        out_of_limit: OutOfLimit(OutOfLimit::EXHAUST.0 | OutOfLimit::EXCESS_AIR.0),
        reasons: Reasons(Reasons::Q3_DEFAULT.0 | Reasons::Q5_RATED.0),
    };
    let off = BoilerResult {
        state: BoilerState::Off,
        eta_direct: None,
        eta_indirect: None,
        q2: None,
        q3: None,
        q4: None,
        q5: None,
        q6: None,
        alpha: None,
        load_pct: None,
        heat_out_gj: Some(0.0),
        fuel_in_gj: Some(0.0),
        exhaust_c_mean: None,
        o2_mean: None,
        coverage: 1.0,
        estimated: false,
        methods_disagree: false,
        grade: None,
        out_of_limit: OutOfLimit::default(),
        reasons: Reasons::default(),
    };
    [
        BoilerOut {
            boiler: 0,
            size: WindowSize::Min15,
            start: T0,
            result: running,
        },
        BoilerOut {
            boiler: 1,
            size: WindowSize::Hour,
            start: T0,
            result: off,
        },
    ]
}

#[test]
fn a_window_becomes_one_boiler_line() {
    let config = super::boiler_config::config();
    let mut enc = emgate::sinks::boilers::BoilerEncoder::new(&config);
    let mut chunk = emgate::sinks::LineChunk::default();
    enc.encode(&written(), &mut chunk);
    assert_eq!(chunk.lines, 2);
    assert_eq!(
        String::from_utf8(chunk.body).expect("utf-8"),
        "boiler,boiler=fz-b1,site=fz,window=15m eta_direct=91.5,eta_indirect=90.25,q2=5.5,q3=0.5,q4=0.0,q5=1.7,q6=0.0,alpha=1.2,load_pct=75.0,heat_out_gj=6.25,fuel_in_gj=6.83,exhaust_c_mean=130.5,o2_mean=3.5,coverage=0.95,estimated=true,methods_disagree=false,state=\"running\",grade=\"2\",out_of_limit=\"exhaust_c,alpha\",reasons=\"estimated:q3_default,estimated:q5_rated\" 1773504000\n\
         boiler,boiler=fz-b2,site=fz,window=1h heat_out_gj=0.0,fuel_in_gj=0.0,coverage=1.0,estimated=false,methods_disagree=false,state=\"off\",out_of_limit=\"\",reasons=\"\" 1773504000\n"
    );
}

/// Serves the API over `board` on a free port; its base URL.
async fn serve(board: std::sync::Arc<emgate::telemetry::StatusBoard>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let state = emgate::api::ApiState {
        board: board.into(),
        stats: std::sync::Arc::new(emgate::telemetry::Stats::default()),
        token: Some(emgate::config::Secret::new("t0ken")),
        site_tokens: Vec::new(),
        reload: None,
        entries: None,
        reports: None,
    };
    tokio::spawn(emgate::api::serve(
        listener,
        state,
        tokio_util::sync::CancellationToken::new(),
    ));
    format!("http://{addr}")
}

#[tokio::test]
async fn boilers_on_the_api_the_metrics_and_emgate_status() {
    let config = super::boiler_config::config();
    let board = std::sync::Arc::new(emgate::telemetry::StatusBoard::new(&config));
    let [running, off] = written();
    // A newer 15m window of fz-b1, then the older one re-emitted: the newer stays.
    let newer = BoilerOut {
        start: T0 + Q,
        ..running
    };
    board.boiler_windows(&[running, off, newer, running]);
    board.boiler_counters(
        0,
        &BoilerCounters {
            windows: [7, 1, 2],
            reemitted: 3,
            out_of_limit: [0, 4, 5],
            disagreements: 6,
        },
    );
    let base = serve(std::sync::Arc::clone(&board)).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth("t0ken")
            .send()
    };
    let unauthorized = client
        .get(format!("{base}/api/boilers"))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let body: serde_json::Value = get("/api/boilers")
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let b1 = &body[0];
    assert_eq!(b1["id"], "fz-b1");
    assert_eq!(b1["name"], "1# gas steam boiler");
    assert_eq!(b1["site"], "fz");
    assert_eq!(b1["kind"], "steam");
    assert_eq!(b1["fuel"], "natural_gas");
    assert_eq!(b1["rated_capacity"], 10.0);
    assert_eq!(
        b1["windows_total"],
        serde_json::json!({
            "running": 7, "off": 1, "partial": 2, "reemitted": 3,
            "out_of_limit_efficiency": 0, "out_of_limit_exhaust_c": 4,
            "out_of_limit_alpha": 5, "methods_disagree": 6
        })
    );
    assert_eq!(
        b1["windows"],
        serde_json::json!([{
            "window": "15m", "start": T0 + Q, "state": "running",
            "eta_direct": 91.5, "eta_indirect": 90.25,
            "q2": 5.5, "q3": 0.5, "q4": 0.0, "q5": 1.7, "q6": 0.0, "alpha": 1.2,
            "load_pct": 75.0, "heat_out_gj": 6.25, "fuel_in_gj": 6.83,
            "exhaust_c_mean": 130.5, "o2_mean": 3.5, "coverage": 0.95,
            "estimated": true, "methods_disagree": false, "grade": "2",
            "out_of_limit": ["exhaust_c", "alpha"],
            "reasons": ["estimated:q3_default", "estimated:q5_rated"]
        }])
    );
    let b2 = &body[1];
    assert_eq!(
        (b2["id"].as_str(), b2["limits"].as_null()),
        (Some("fz-b2"), Some(()))
    );
    assert_eq!(b2["limits_source"], "none (limits = \"none\")");
    assert_eq!(b2["windows"][0]["window"], "1h");
    assert_eq!(b2["windows"][0]["state"], "off");
    assert_eq!(b2["windows"][0]["eta_direct"], serde_json::Value::Null);
    assert_eq!(b2["windows"][0]["grade"], serde_json::Value::Null);
    assert_eq!(b2["windows"][0]["reasons"], serde_json::json!([]));

    let metrics = get("/metrics")
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    for want in [
        "emgate_boiler_windows_total{boiler=\"fz-b1\",state=\"running\"} 7",
        "emgate_boiler_windows_total{boiler=\"fz-b1\",state=\"partial\"} 2",
        "emgate_boiler_windows_total{boiler=\"fz-b2\",state=\"off\"} 0",
        "emgate_boiler_windows_reemitted_total{boiler=\"fz-b1\"} 3",
        "emgate_boiler_out_of_limit_total{boiler=\"fz-b1\",item=\"exhaust_c\"} 4",
        "emgate_boiler_out_of_limit_total{boiler=\"fz-b1\",item=\"alpha\"} 5",
        "emgate_boiler_out_of_limit_total{boiler=\"fz-b1\",item=\"efficiency\"} 0",
        "emgate_boiler_methods_disagree_total{boiler=\"fz-b1\"} 6",
    ] {
        assert!(metrics.lines().any(|l| l == want), "{want} in\n{metrics}");
    }

    let text = emgate::telemetry::client::run(&base, Some("t0ken"))
        .await
        .expect("status");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("SITE  BOILER"))
        .take(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "SITE", "BOILER", "KIND", "WINDOW", "STATE", "ETA", "DIRECT", "ETA", "INDIRECT",
                "GRADE", "REASONS"
            ],
            vec![
                "fz",
                "fz-b1",
                "steam",
                "15m",
                "2026-03-14T16:15:00Z",
                "RUNNING",
                "91.5%",
                "90.2%",
                "2",
                "estimated:q3_default,estimated:q5_rated"
            ],
            vec![
                "fz",
                "fz-b2",
                "hot_water",
                "1h",
                "2026-03-14T16:00:00Z",
                "OFF",
                "-",
                "-",
                "-",
                "-"
            ],
        ]
    );
}

// ---------------------------------------------------------------------------
// Readings through the gateway's own stages (validation, aggregation, the
// boiler stage with the real formulas) into line protocol, as the encoder
// task appends it to the spool: the `boiler` points against a hand
// computation, steam and water properties from `iapws` (not the `seuif97`
// the gateway computes with).

/// 2026-03-15T10:00:00+08:00.
const TEN: i64 = 1_773_540_000;

/// A site on Shanghai time with a gas meter (measured LHV), a saturated
/// steam meter, an analyzer and a 2.7 t/h gas steam boiler (q₅ 2 % at
/// rated load, blow-down 2 %); every meter read once a minute.
fn pipeline_config() -> (crate::support::config::ConfigFiles, emgate::config::Config) {
    use crate::support::config::GatewayToml;
    let site = r#"
[site]
id = "fz"
name = "Fuzhou mill"
timezone = "Asia/Shanghai"

[[meters]]
id = "gas"
energy = "natural_gas"
level = 1
profile = "gas_flow_computer"
endpoint = "ep"
unit_id = 1
lhv_kj_per_m3 = 35818

[[meters]]
id = "steam"
energy = "steam"
level = 2
profile = "steam_flow_computer"
endpoint = "ep"
unit_id = 2
steam_state = "saturated"

[[meters]]
id = "flue"
energy = "natural_gas"
level = 3
profile = "test_flue"
endpoint = "ep"
unit_id = 3

[[boilers]]
id = "b1"
name = "gas steam boiler"
kind = "steam"
rated_capacity = 2.7
fuel = "natural_gas"
fuel_meter = "gas"
output_meter = "steam"
feed_water_c = 20.0
exhaust_c = { meter = "flue", point = "exhaust_c" }
o2_pct = { meter = "flue", point = "o2_pct" }
co_ppm = { meter = "flue", point = "co_ppm" }
cold_air_c = { meter = "flue", point = "ambient_c" }
blowdown_pct = 2.0
q5_rated_pct = 2.0
"#;
    let files = GatewayToml::new("boilers")
        .section("validation", "max_lateness_secs = 100_000_000")
        .section(
            "aggregation",
            "windows = [\"15m\", \"1h\"]\nallowed_lateness_secs = 0",
        )
        .endpoint("ep", "")
        .profile("test_flue", super::boiler_config::FLUE_PROFILE)
        .site("fz.toml", site)
        .write();
    let config = files.load();
    (files, config)
}

/// The lines the stages write for one reading per meter and minute from
/// `from` to `to`, skipping the gas meter's slots in `gas_down`.
fn run_pipeline(
    config: &emgate::config::Config,
    from: i64,
    to: i64,
    gas_down: std::ops::Range<i64>,
) -> String {
    use emgate::app::stages::{AggregationStage, BoilerStage, ValidationStage};
    use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
    use std::sync::Arc;
    let stats = Arc::new(emgate::telemetry::Stats::default());
    let board = Arc::new(emgate::telemetry::StatusBoard::new(config));
    let mut validation = ValidationStage::new(config, Arc::clone(&stats));
    let mut aggregation = AggregationStage::new(config, Arc::clone(&stats));
    let mut boilers = BoilerStage::new(config, board);
    let mut enc = emgate::sinks::boilers::BoilerEncoder::new(config);
    let mut chunk = emgate::sinks::LineChunk::default();
    let mut batch = ReadingBatch::default();
    let mut t = from;
    while t <= to {
        batch.clear();
        #[allow(clippy::cast_precision_loss)]
        let k = ((t - from) / 60) as f64;
        // gas: 3 Nm³ a minute; steam: 0.037 t a minute at 0.9 MPa(g); the
        // analyzer: O₂ 3.5 %, CO 50 ppm, exhaust 120 °C, ambient 20 °C.
        let gas = [1000.0 + 3.0 * k, 180.0, 0.2, 15.0];
        let steam = [50.0 + 0.037 * k, 10.0 + 0.1 * k, 2.22, 0.9, 179.5];
        let flue = [3.5, 50.0, 120.0, 20.0];
        for (m, values) in [(0, &gas[..]), (1, &steam[..]), (2, &flue[..])] {
            if m == 0 && gas_down.contains(&t) {
                continue;
            }
            let v: Vec<PointValue> = values
                .iter()
                .map(|x| PointValue::new(*x, Quality::GOOD))
                .collect();
            batch.push(MeterId(m), t, 0, &v);
        }
        validation.process(&mut batch);
        aggregation.process(&mut batch, validation.continuous());
        boilers.process(aggregation.output(), &batch);
        enc.encode(boilers.output(), &mut chunk);
        t += 60;
    }
    assert_eq!(
        emgate::telemetry::Stats::get(&stats.points_flagged),
        0,
        "every value is good"
    );
    String::from_utf8(chunk.body).expect("utf-8")
}

/// One `boiler` line: its window tag, timestamp and fields (strings unquoted).
fn parse_boiler_line(line: &str) -> (String, i64, std::collections::BTreeMap<String, String>) {
    let (series, rest) = line.split_once(' ').expect("series");
    let (fields, ts) = rest.rsplit_once(' ').expect("timestamp");
    let window = series
        .split(',')
        .find_map(|t| t.strip_prefix("window="))
        .expect("window tag")
        .to_owned();
    let mut map = std::collections::BTreeMap::new();
    let (mut key, mut value, mut in_key, mut quoted) = (String::new(), String::new(), true, false);
    for c in fields.chars().chain([',']) {
        match c {
            '=' if in_key => in_key = false,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                map.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                in_key = true;
            }
            c if in_key => key.push(c),
            c => value.push(c),
        }
    }
    (window, ts.parse().expect("timestamp"), map)
}

fn num(fields: &std::collections::BTreeMap<String, String>, key: &str) -> f64 {
    fields
        .get(key)
        .unwrap_or_else(|| panic!("no field {key} in {fields:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The hand computation of one window of `minutes` minutes, from the
/// readings' rates and the natural_gas row of the coefficient table.
struct Hand {
    fuel_in_gj: f64,
    heat_out_gj: f64,
    eta_direct: f64,
    alpha: f64,
    q2: f64,
    q3: f64,
    eta_indirect: f64,
    load_pct: f64,
}

fn hand(minutes: f64) -> Hand {
    use crate::support::iapws::{Ask, iapws};
    let p_abs = 0.9 + 0.101_325;
    let h = iapws(&[
        Ask::Hx { p_abs, x: 1.0 },
        Ask::Hx { p_abs, x: 0.0 },
        Ask::H { p_abs, t_c: 20.0 },
    ]);
    let (h_steam, h_water, h_feed) = (h[0], h[1], h[2]);
    let steam_kg = 37.0 * minutes;
    let fuel_in_gj = 3.0 * minutes * 35_818.0 / 1e6;
    // Saturated steam over feed water pumped to boiler pressure, plus the
    // blow-down (2 % of the steam) as saturated water.
    let heat_out_gj = (steam_kg * (h_steam - h_feed) + steam_kg * 0.02 * (h_water - h_feed)) / 1e6;
    // α with CO: β = 0.7903 (natural_gas), CO 50 ppm = 0.005 %.
    let (o2, co, beta) = (3.5, 0.005, 0.7903);
    let ro2 = (21.0 - o2 - (0.605 + beta) * co) / (1.0 + beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    let q2 = (0.5 + 3.5 * alpha) * (120.0 - 20.0) / 100.0;
    let q3 = 3.2 * alpha * co;
    // Load 0.037 t/min = 2.22 t/h of 2.7: above 75 %, so q5 = q5 at rated load.
    Hand {
        fuel_in_gj,
        heat_out_gj,
        eta_direct: 100.0 * heat_out_gj / fuel_in_gj,
        alpha,
        q2,
        q3,
        eta_indirect: 100.0 - (q2 + q3 + 0.0 + 2.0 + 0.0),
        load_pct: 100.0 * 2.22 / 2.7,
    }
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn readings_through_the_stages_give_boiler_points_as_computed_by_hand() {
    let (_files, config) = pipeline_config();
    let text = run_pipeline(&config, TEN, TEN + 3600 + 120, 0..0);
    let lines: Vec<_> = text.lines().map(parse_boiler_line).collect();
    // Four quarter hours and the hour, each written once, when complete.
    let windows: Vec<(&str, i64)> = lines.iter().map(|(w, t, _)| (w.as_str(), *t)).collect();
    assert_eq!(
        windows,
        [
            ("15m", TEN),
            ("15m", TEN + 900),
            ("15m", TEN + 1800),
            ("15m", TEN + 2700),
            ("1h", TEN),
        ],
        "{text}"
    );
    for (window, _, f) in &lines {
        let minutes = if window == "1h" { 60.0 } else { 15.0 };
        let h = hand(minutes);
        close(num(f, "fuel_in_gj"), h.fuel_in_gj, 1e-9, "fuel_in_gj");
        close(num(f, "heat_out_gj"), h.heat_out_gj, 1e-6, "heat_out_gj");
        close(num(f, "eta_direct"), h.eta_direct, 1e-6, "eta_direct");
        close(num(f, "alpha"), h.alpha, 1e-9, "alpha");
        close(num(f, "q2"), h.q2, 1e-9, "q2");
        close(num(f, "q3"), h.q3, 1e-9, "q3");
        assert_eq!((num(f, "q4"), num(f, "q5"), num(f, "q6")), (0.0, 2.0, 0.0));
        close(num(f, "eta_indirect"), h.eta_indirect, 1e-9, "eta_indirect");
        close(num(f, "load_pct"), h.load_pct, 1e-9, "load_pct");
        assert_eq!((num(f, "exhaust_c_mean"), num(f, "o2_mean")), (120.0, 3.5));
        assert_eq!(num(f, "coverage"), 1.0);
        // The gas limit row grades 96 / 94 / 92.
        let grade = match h.eta_direct {
            e if e >= 96.0 => "1",
            e if e >= 94.0 => "2",
            e if e >= 92.0 => "3",
            _ => "below_limit",
        };
        for (key, want) in [
            ("estimated", "false"),
            ("methods_disagree", "false"),
            ("state", "running"),
            ("grade", grade),
            ("out_of_limit", ""),
            ("reasons", ""),
        ] {
            assert_eq!(f.get(key).map(String::as_str), Some(want), "{key}: {f:?}");
        }
        assert_eq!(f.len(), 20, "every field: {f:?}");
    }
}

#[test]
fn a_fuel_meter_down_for_a_quarter_gives_no_direct_number_then_an_estimated_one() {
    let (_files, config) = pipeline_config();
    // No gas reading from 10:15 to 10:29. The 10:00 quarter waits for the
    // gas meter's reading at 10:15 that closes it: at its grace (2 × 60 s)
    // it is written without fuel; at 10:30 the gas meter's next reading
    // closes it, interpolated across the gap, and it is written again. The
    // 10:15 quarter closes for every meter at 10:30: written once, its fuel
    // covering nothing.
    let text = run_pipeline(&config, TEN, TEN + 2700, TEN + 900..TEN + 1800);
    let lines: Vec<_> = text.lines().map(parse_boiler_line).collect();
    let at: Vec<(&str, i64)> = lines.iter().map(|(w, t, _)| (w.as_str(), *t)).collect();
    assert_eq!(
        at,
        [
            ("15m", TEN),
            ("15m", TEN),
            ("15m", TEN + 900),
            ("15m", TEN + 1800)
        ],
        "{text}"
    );
    let str_of = |f: &std::collections::BTreeMap<String, String>, k: &str| {
        f.get(k).cloned().unwrap_or_default()
    };
    let h = hand(15.0);

    let first = &lines[0].2;
    assert_eq!(str_of(first, "state"), "partial");
    assert_eq!(str_of(first, "reasons"), "direct:no_fuel_data");
    assert!(!first.contains_key("eta_direct") && !first.contains_key("fuel_in_gj"));
    close(
        num(first, "eta_indirect"),
        h.eta_indirect,
        1e-9,
        "eta_indirect",
    );

    // 14 of its 15 minutes are backed by readings (the last one spans the gap).
    let again = &lines[1].2;
    assert_eq!(str_of(again, "state"), "running");
    assert_eq!(str_of(again, "estimated"), "true");
    assert_eq!(str_of(again, "reasons"), "estimated:input_interpolated");
    close(num(again, "coverage"), 14.0 / 15.0, 1e-12, "coverage");
    close(num(again, "fuel_in_gj"), h.fuel_in_gj, 1e-9, "fuel_in_gj");
    close(num(again, "eta_direct"), h.eta_direct, 1e-6, "eta_direct");

    let gap = &lines[2].2;
    assert_eq!(str_of(gap, "state"), "partial");
    assert_eq!(
        str_of(gap, "reasons"),
        "direct:fuel_coverage,estimated:input_interpolated"
    );
    assert!(!gap.contains_key("eta_direct"));
    assert_eq!(num(gap, "coverage"), 0.0);
    close(
        num(gap, "eta_indirect"),
        h.eta_indirect,
        1e-9,
        "eta_indirect",
    );
}
