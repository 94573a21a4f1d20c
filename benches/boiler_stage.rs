//! Benchmark of the boiler stage (`pipeline::boiler::stage::BoilerStage`):
//! 100 gas steam boilers, each with a fuel meter, a steam meter and a
//! flue-gas analyzer (O₂, CO, exhaust). One iteration is the batch that
//! closes a quarter hour of all 300 meters: 200 consumption windows and 100
//! gauge windows are joined, and 100 boiler windows evaluated and emitted
//! (the older ones dropped). Two variants: with the real formulas
//! (`calc::evaluate_with`) and with a stub, which leaves the join alone.
//!
//! Run: `cargo bench --bench boiler_stage -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::pipeline::aggregate::{AggOutput, ConsumptionOut, GaugeStatOut, GaugeWindowOut};
use emgate::pipeline::boiler::calc::evaluate_with;
use emgate::pipeline::boiler::stage::{BoilerOut, BoilerStage, Evaluate, Source, StageBoiler};
use emgate::pipeline::boiler::tables::BoilerTable;
use emgate::pipeline::boiler::{
    BoilerKind, BoilerResult, BoilerSpec, BoilerState, FuelRecord, Inputs, OutOfLimit, OutputKind,
    Reasons, WindowInputs,
};
use emgate::pipeline::steam::{SteamMargins, SteamState};
use emgate::pipeline::window::WindowSize;
use jiff::tz::TimeZone;

const BOILERS: u32 = 100;
/// 2026-03-15T00:00:00+08:00.
const T0: i64 = 1_773_504_000;

fn stage(evaluate: Evaluate) -> BoilerStage {
    let spec = BoilerTable::builtin()
        .spec(
            "natural_gas",
            BoilerKind::Steam,
            10.0,
            1.0,
            OutputKind::SteamMass {
                kg_per_unit: 1000.0,
                state: SteamState::Auto,
                dryness: 1.0,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let tz = TimeZone::get("Asia/Shanghai").expect("zone");
    let boilers = (0..BOILERS)
        .map(|b| {
            let (fuel, steam, flue) = (3 * b, 3 * b + 1, 3 * b + 2);
            // Slots: steam pressure, temperature, supply, return, feed
            // water, exhaust, O₂, CO, cold air.
            let gauges = [
                Source::Point {
                    meter: steam,
                    point: 3,
                },
                Source::Point {
                    meter: steam,
                    point: 4,
                },
                Source::None,
                Source::None,
                Source::Fixed(20.0),
                Source::Point {
                    meter: flue,
                    point: 2,
                },
                Source::Point {
                    meter: flue,
                    point: 0,
                },
                Source::Point {
                    meter: flue,
                    point: 1,
                },
                Source::Fixed(20.0),
            ];
            StageBoiler {
                spec: spec.clone(),
                records: Vec::new(),
                meter_lhv_kj_per_m3: Some(35_818.0),
                blowdown_pct: None,
                fuel_meter: fuel,
                output_meter: steam,
                gauges,
                tz: tz.clone(),
                grace_secs: 120,
            }
        })
        .collect();
    BoilerStage::new(
        boilers,
        vec![60; 3 * BOILERS as usize],
        vec![WindowSize::Min15, WindowSize::Hour],
        SteamMargins::DEFAULT,
        evaluate,
    )
}

/// The aggregation output closing the quarter hour at `start` for every meter.
fn quarter(start: i64, out: &mut AggOutput) {
    out.clear();
    for b in 0..BOILERS {
        let (fuel, steam, flue) = (3 * b, 3 * b + 1, 3 * b + 2);
        for (meter, amount) in [(fuel, 45.0), (steam, 0.555)] {
            out.consumption.push(ConsumptionOut {
                meter,
                size: WindowSize::Min15,
                start,
                amount,
                kgce: None,
                coverage: 1.0,
                estimated: false,
                steam_suspect: false,
            });
        }
        for (meter, stats) in [
            (steam, &[(3u16, 0.9), (4u16, 179.5)][..]),
            (flue, &[(0u16, 3.5), (1u16, 50.0), (2u16, 120.0)][..]),
        ] {
            let first = out.gauge_stats.len() as u32;
            for &(point, mean) in stats {
                out.gauge_stats.push(GaugeStatOut {
                    point,
                    mean,
                    min: mean,
                    max: mean,
                    samples: 15,
                });
            }
            out.gauges.push(GaugeWindowOut {
                meter,
                size: WindowSize::Min15,
                start,
                samples: 15,
                stats_start: first,
                stats_end: out.gauge_stats.len() as u32,
            });
        }
    }
}

/// What the stub "formulas" return: nothing computed.
const NOTHING: BoilerResult = BoilerResult {
    state: BoilerState::Partial,
    eta_direct: None,
    eta_indirect: None,
    q2: None,
    q3: None,
    q4: None,
    q5: None,
    q6: None,
    alpha: None,
    load_pct: None,
    heat_out_gj: None,
    fuel_in_gj: None,
    exhaust_c_mean: None,
    o2_mean: None,
    coverage: 0.0,
    estimated: false,
    methods_disagree: false,
    grade: None,
    out_of_limit: OutOfLimit(0),
    reasons: Reasons(0),
};

fn stub(
    _: &BoilerSpec,
    _: Inputs,
    _: Option<&FuelRecord>,
    w: &WindowInputs,
    _: SteamMargins,
) -> BoilerResult {
    BoilerResult {
        heat_out_gj: w.output.map(|a| a.amount),
        ..NOTHING
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("boiler_stage");
    group.throughput(Throughput::Elements(u64::from(BOILERS)));
    for (name, evaluate) in [
        ("quarter_100_boilers", evaluate_with as Evaluate),
        ("quarter_100_boilers_join_only", stub as Evaluate),
    ] {
        let mut s = stage(evaluate);
        let mut agg = AggOutput::default();
        let mut written: Vec<BoilerOut> = Vec::with_capacity(256);
        let mut start = T0;
        group.bench_function(name, |bench| {
            bench.iter(|| {
                quarter(start, &mut agg);
                written.clear();
                let slot = start + 900;
                s.process(&agg, (0..3 * BOILERS).map(|m| (m, slot)), &mut written);
                assert_eq!(written.len(), BOILERS as usize);
                black_box(&written);
                start += 900;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
