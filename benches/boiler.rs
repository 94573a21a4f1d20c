//! Benchmark of `pipeline::boiler::calc::evaluate`: one boiler window by
//! both methods, as the boiler stage runs it once per (boiler, window size,
//! window) and again when a late input re-evaluates it. Two shapes: a
//! natural-gas steam boiler (steam by IF97 enthalpy with the auto state
//! decision, α with CO, no q₄/q₆) and a bituminous chain-grate steam boiler
//! (the same plus q₄ and q₆ from the lab record), both with a limit row.
//! The cost is dominated by the IF97 calls (saturation temperature, h″,
//! the feed water's h).
//!
//! Run: `cargo bench --bench boiler -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::pipeline::boiler::calc::evaluate;
use emgate::pipeline::boiler::tables::{BoilerTable, Combustion, LimitTable, rated_t_h};
use emgate::pipeline::boiler::{
    Amount, BoilerKind, BoilerSpec, FuelRecord, Mean, OutputKind, WindowInputs,
};
use emgate::pipeline::steam::{SteamMargins, SteamState};

fn amount(v: f64) -> Amount {
    Amount {
        amount: v,
        coverage: 1.0,
        estimated: false,
    }
}

fn gauge(v: f64) -> Mean {
    Mean {
        mean: v,
        min: v - 0.5,
        max: v + 0.5,
        coverage: 1.0,
    }
}

/// A 10 t/h steam boiler burning `fuel`, steam counted in t, with its
/// limit row from the shipped table.
fn spec(fuel: &str, fuel_per_unit: f64, combustion: Combustion) -> BoilerSpec {
    let mut spec = BoilerTable::builtin()
        .spec(
            fuel,
            BoilerKind::Steam,
            10.0,
            fuel_per_unit,
            OutputKind::SteamMass {
                kg_per_unit: 1000.0,
                state: SteamState::Auto,
                dryness: 0.98,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    spec.limits = LimitTable::builtin()
        .select(fuel, combustion, false, rated_t_h(10.0, BoilerKind::Steam))
        .map(|e| e.row);
    assert!(spec.limits.is_some(), "{fuel}: no limit row");
    spec
}

/// A quarter hour at 80 % load, saturated steam at 1.2 MPa(g) read just
/// below saturation, with a full flue-gas analyzer.
fn window(fuel: f64) -> WindowInputs {
    WindowInputs {
        window_secs: 900.0,
        fuel: Some(amount(fuel)),
        output: Some(amount(2.0)),
        steam_pressure: Some(gauge(1.2)),
        steam_temperature: Some(gauge(191.5)),
        feed_water: Some(gauge(20.0)),
        exhaust: Some(gauge(150.0)),
        o2: Some(gauge(6.0)),
        co_ppm: Some(gauge(120.0)),
        cold_air: Some(gauge(20.0)),
        meter_lhv_kj_per_m3: Some(35_818.0),
        ..WindowInputs::default()
    }
}

fn bench(c: &mut Criterion) {
    let coal_record = FuelRecord {
        from: 0,
        lhv_kj: 21_500.0,
        ash_pct: Some(22.7),
        moisture_pct: Some(10.0),
        volatile_daf_pct: Some(30.0),
        slag_share_pct: Some(80.0),
        slag_combustible_pct: Some(12.0),
        fly_ash_combustible_pct: Some(20.0),
        slag_temperature_c: None,
    };
    let gas = spec("natural_gas", 1.0, Combustion::Chamber);
    let coal = spec("bituminous", 1000.0, Combustion::Layered);
    let cases: [(&str, &BoilerSpec, Option<&FuelRecord>, WindowInputs); 2] = [
        ("natural_gas_steam", &gas, None, window(160.0)),
        ("bituminous_steam", &coal, Some(&coal_record), window(0.28)),
    ];
    let mut group = c.benchmark_group("boiler_evaluate_window");
    group.throughput(Throughput::Elements(1));
    for (name, spec, record, w) in cases {
        // Measures the full path: both methods must give a number.
        let r = evaluate(spec, record, &w, SteamMargins::DEFAULT);
        assert!(
            r.eta_direct.is_some() && r.eta_indirect.is_some() && r.grade.is_some(),
            "{name}: {r:?}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                evaluate(
                    black_box(spec),
                    black_box(record),
                    black_box(&w),
                    SteamMargins::DEFAULT,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
