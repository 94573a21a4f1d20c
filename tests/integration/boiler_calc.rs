//! The boiler formulas (`pipeline::boiler::calc`) and the shipped boiler
//! tables (`pipeline::boiler::tables`), against hand computations.
//!
//! Every expected number is worked out here by explicit arithmetic from the
//! inputs (the formulas written out again, not the functions under test),
//! then checked against the published figures of
//! `shared/reference/boiler.md` §7.3 (10 t/h bituminous chain grate) and
//! §7.4 (methane), so a wrong constant, a reversed coefficient pair or a
//! loss applied in the wrong order fails here. Steam and water enthalpies
//! come from steam tables (domain.md §4.3, Çengel's compressed-liquid
//! table), never from `seuif97`.

use emgate::pipeline::boiler::calc::{
    alpha_quick, alpha_with_co, ash_specific_heat, evaluate, evaluate_with, grade, q2, q3, q4,
    q5_at_load, q6,
};
use emgate::pipeline::boiler::tables::Combustion::{Chamber, FluidizedBed, Layered};
use emgate::pipeline::boiler::tables::{BoilerTable, Combustion, Confidence, LimitTable};
use emgate::pipeline::boiler::{
    Amount, BoilerKind, BoilerResult, BoilerSpec, BoilerState, FuelKind, FuelRecord, Grade, Inputs,
    Mean, OutOfLimit, OutputKind, Reasons, WindowInputs,
};
use emgate::pipeline::steam::{ATMOSPHERE_MPA, SteamMargins, SteamState, enthalpy_kj_per_kg};

/// Relative closeness for numbers computed two ways in f64.
fn same(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn assert_same(what: &str, got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("{what}: no value, want {want}"));
    assert!(same(got, want), "{what}: {got} vs hand {want}");
}

/// `v` rounded to `places` decimals, for comparing with a published figure.
fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn amount(v: f64) -> Amount {
    Amount {
        amount: v,
        coverage: 1.0,
        estimated: false,
    }
}

fn mean(v: f64) -> Mean {
    Mean::fixed(v)
}

fn covered(v: f64, coverage: f64) -> Mean {
    Mean {
        mean: v,
        min: v,
        max: v,
        coverage,
    }
}

const HOUR: f64 = 3600.0;

/// 1.3 MPa absolute as a plant gauge reads it.
const P_GAUGE_1_3: f64 = 1.3 - ATMOSPHERE_MPA;

// ------------------------------------------------------------------ §7.3

/// The §7.3 fuel: Q_net,v,ar 21 500 kJ/kg, A_ar 22.7 %, slag 80 % with
/// C_lz 12 %, fly ash 20 % with C_fh 20 %, slag at 600 °C.
fn coal_record() -> FuelRecord {
    FuelRecord {
        from: 0,
        lhv_kj: 21_500.0,
        ash_pct: Some(22.7),
        moisture_pct: Some(10.0),
        volatile_daf_pct: Some(30.0),
        slag_share_pct: Some(80.0),
        slag_combustible_pct: Some(12.0),
        fly_ash_combustible_pct: Some(20.0),
        slag_temperature_c: Some(600.0),
    }
}

/// 10 t/h bituminous, steam counted in t, coal in t, saturated steam of
/// 2 % moisture (dryness 0.98), q₅ forced to 1.70 as §7.3 assumes.
fn coal_spec() -> BoilerSpec {
    let mut spec = BoilerTable::builtin()
        .spec(
            "bituminous",
            BoilerKind::Steam,
            10.0,
            1000.0,
            OutputKind::SteamMass {
                kg_per_unit: 1000.0,
                state: SteamState::Auto,
                dryness: 0.98,
            },
        )
        .unwrap();
    spec.q5_rated_pct = 1.70;
    spec
}

/// One hour of §7.3: 1 475 kg of coal, 10 t of steam at 1.3 MPa(a) read
/// 0.3 K below saturation (191.61 °C), feed water 20 °C, O₂ 8.0 %,
/// CO 500 ppm, t_py 160 °C, t_lk 20 °C.
fn coal_window() -> WindowInputs {
    WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(1.475)),
        output: Some(amount(10.0)),
        steam_pressure: Some(mean(P_GAUGE_1_3)),
        steam_temperature: Some(mean(191.31)),
        feed_water: Some(mean(20.0)),
        exhaust: Some(mean(160.0)),
        o2: Some(mean(8.0)),
        co_ppm: Some(mean(500.0)),
        cold_air: Some(mean(20.0)),
        ..WindowInputs::default()
    }
}

/// §7.3's losses by hand, in the method's order.
struct Hand73 {
    alpha: f64,
    alpha_quick: f64,
    q2: f64,
    q3: f64,
    q4: f64,
    q6: f64,
    eta: f64,
}

fn hand_7_3() -> Hand73 {
    // β from the fuel's composition (C 55.0, H 3.5, O 7.0, N 1.0, S 0.8 %):
    // 2.35·(3.5 − 0.126·7.0 + 0.038·1.0)/(55.0 + 0.375·0.8) = 0.1129 (the table's value).
    let beta = 0.1129;
    let (o2, co) = (8.0, 500.0 / 10_000.0);
    let ro2 = (21.0 - o2 - (0.605 + beta) * co) / (1.0 + beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    let alpha_quick = 21.0 / (21.0 - o2);
    // q₄: 32 866 · A_ar · (0.8·12/88 + 0.2·20/80) / Q_r.
    let q4 = 32_866.0 * 22.7 * (0.8 * 12.0 / 88.0 + 0.2 * 20.0 / 80.0) / 21_500.0;
    let q2 = (0.5 + 3.5 * alpha) * (160.0 - 20.0) / 100.0 * (1.0 - q4 / 100.0);
    let q3 = 3.2 * alpha * co * (1.0 - q4 / 100.0);
    // (c·t) of slag at 600 °C and fly ash at t_py = 160 °C, c = 0.71 + 5.02e-4·t.
    let ct_slag = (0.71 + 5.02e-4 * 600.0) * 600.0;
    let ct_fly = (0.71 + 5.02e-4 * 160.0) * 160.0;
    let q6 = 100.0 * 22.7 * (0.8 * ct_slag / 88.0 + 0.2 * ct_fly / 80.0) / 21_500.0;
    let eta = 100.0 - (q2 + q3 + q4 + 1.70 + q6);
    Hand73 {
        alpha,
        alpha_quick,
        q2,
        q3,
        q4,
        q6,
        eta,
    }
}

#[test]
fn worked_example_7_3_hand_arithmetic_matches_the_published_figures() {
    let h = hand_7_3();
    // 1.596 447 with the table's β = 0.1129; §7.3 printed 1.5965 from the
    // unrounded β = 0.112 868 (1.596 451).
    assert!((h.alpha - 1.5965).abs() < 6e-5, "{}", h.alpha);
    assert_eq!(round(h.alpha_quick, 4), 1.6154);
    assert_eq!(round(h.q4, 2), 5.52);
    assert_eq!(round(h.q2, 2), 8.05);
    assert_eq!(round(h.q3, 3), 0.241);
    assert_eq!(round(h.q6, 3), 0.616);
    assert_eq!(round(h.eta, 2), 83.87);
    // (c·t)_slag = 606.7 kJ/kg as §7.3 prints.
    assert_eq!(round((0.71 + 5.02e-4 * 600.0) * 600.0, 1), 606.7);
}

#[test]
fn worked_example_7_3_by_the_loss_functions() {
    let h = hand_7_3();
    let beta = coal_spec().beta;
    assert_eq!(beta, 0.1129);
    let co = 500.0 / 10_000.0;
    assert!(same(alpha_with_co(8.0, co, beta), h.alpha));
    assert!(same(alpha_quick(8.0), h.alpha_quick));
    let l4 = q4(32_866.0, 22.7, 80.0, 12.0, 20.0, 21_500.0);
    assert!(same(l4, h.q4), "{l4} vs {}", h.q4);
    assert!(same(q2(0.5, 3.5, h.alpha, 160.0, 20.0, h.q4), h.q2));
    assert!(same(q3(3.2, h.alpha, co, h.q4), h.q3));
    assert!(same(
        q6(22.7, 80.0, 12.0, 600.0, 20.0, 160.0, 21_500.0),
        h.q6
    ));
    assert!(same(ash_specific_heat(600.0), 0.71 + 5.02e-4 * 600.0));
    // With GB/T 10184's 33 727 kJ/kg of carbon q₄ is 5.67 (boiler.md §0).
    assert_eq!(
        round(q4(33_727.0, 22.7, 80.0, 12.0, 20.0, 21_500.0), 2),
        5.67
    );
}

#[test]
fn worked_example_7_3_one_window_by_both_methods() {
    let h = hand_7_3();
    let r = evaluate(
        &coal_spec(),
        Some(&coal_record()),
        &coal_window(),
        SteamMargins::DEFAULT,
    );
    assert_same("alpha", r.alpha, h.alpha);
    assert_same("q2", r.q2, h.q2);
    assert_same("q3", r.q3, h.q3);
    assert_same("q4", r.q4, h.q4);
    // 10 t in an hour at 10 t/h rated: full load, q₅ at its rated value.
    assert_same("load_pct", r.load_pct, 100.0);
    assert_same("q5", r.q5, 1.70);
    assert_same("q6", r.q6, h.q6);
    assert_same("eta_indirect", r.eta_indirect, h.eta);

    // Direct, by steam tables: at 1.3 MPa(a) h″ = 2 786.5, h′ = 814.8 kJ/kg
    // (domain.md §4.3), so with 2 % moisture h_s = h″ − 0.02·(h″ − h′).
    // Feed water is pumped to 1.3 MPa: compressed water at 20 °C, linear in
    // p between saturation (2.339 kPa, 83.915 kJ/kg) and 5 MPa (88.61 kJ/kg,
    // Çengel table A-7): 85.13 kJ/kg. (§7.3 took 84.0 at atmospheric
    // pressure and printed 83.98 %; the pump's 1.1 kJ/kg is 0.04 points.)
    let h_s = 2786.5 - 0.02 * (2786.5 - 814.8);
    let h_fw = 83.915 + (88.61 - 83.915) * (1.3 - 0.002_339) / (5.0 - 0.002_339);
    let heat_gj = 10_000.0 * (h_s - h_fw) / 1e6;
    let fuel_gj = 1475.0 * 21_500.0 / 1e6;
    let eta_direct = 100.0 * heat_gj / fuel_gj;
    assert_eq!(round(eta_direct, 2), 83.94);
    // Tables to 0.1 kJ/kg: 0.05 kJ/kg is 0.002 points here.
    let d = r.eta_direct.unwrap();
    assert!(
        (d - eta_direct).abs() < 0.005,
        "eta_direct {d} vs hand {eta_direct}"
    );
    assert!((r.heat_out_gj.unwrap() - heat_gj).abs() < 0.000_5);
    assert_same("fuel_in_gj", r.fuel_in_gj, fuel_gj);
    // The two methods agree within 0.1 point: no disagreement, running.
    assert!((d - h.eta).abs() < 0.1);
    assert!(!r.methods_disagree);
    assert_eq!(r.state, BoilerState::Running);
    assert_eq!(r.reasons, Reasons::default());
    assert!(!r.estimated);
    assert_eq!(r.coverage, 1.0);
    assert_eq!(r.exhaust_c_mean, Some(160.0));
    assert_eq!(r.o2_mean, Some(8.0));
    assert_eq!(r.grade, None);

    // With its default limit row (layered bituminous class II, 1 to 20 t/h:
    // 85/82/80, exhaust ≤ 170 °C): grade 2, nothing out of limit.
    let mut spec = coal_spec();
    let limits = LimitTable::builtin();
    let row = limits.select("bituminous", Layered, false, 10.0).unwrap();
    assert_eq!(row.key, "gb24500_2020_layered_bituminous_ii_1_to_20t");
    spec.limits = Some(row.row);
    let r = evaluate(
        &spec,
        Some(&coal_record()),
        &coal_window(),
        SteamMargins::DEFAULT,
    );
    assert_eq!(r.grade, Some(Grade::Two));
    assert!(r.out_of_limit.is_empty());
}

// ------------------------------------------------------------------ §7.4

/// Natural gas counted in m³, the hot-water or steam output as given, q₅
/// forced to 1.5 % as §7.4 assumes.
fn gas_spec(kind: BoilerKind, rated: f64, output: OutputKind) -> BoilerSpec {
    let mut spec = BoilerTable::builtin()
        .spec("natural_gas", kind, rated, 1.0, output)
        .unwrap();
    spec.q5_rated_pct = 1.5;
    spec
}

/// Methane, Q = 35 818 kJ/Nm³, measured on the fuel meter (no record).
const METHANE_KJ_PER_M3: f64 = 35_818.0;

#[test]
fn worked_example_7_4_methane_losses() {
    let spec = gas_spec(
        BoilerKind::HotWater,
        1.457,
        OutputKind::Heat { gj_per_unit: 1.0 },
    );
    // β of methane: RO₂,max = 11.73 %, β = 21/11.73 − 1; the table rounds it.
    assert!(
        (spec.beta - (21.0 / 11.73 - 1.0)).abs() < 5e-5,
        "{}",
        spec.beta
    );
    let beta = 0.7903;
    assert_eq!(spec.beta, beta);
    let (o2, co) = (3.5, 50.0 / 10_000.0);
    let ro2 = (21.0 - o2 - (0.605 + beta) * co) / (1.0 + beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    assert_eq!(round(alpha, 3), 1.179);
    assert_eq!(round(21.0 / (21.0 - o2), 3), 1.2);
    let l2 = (0.5 + 3.5 * alpha) * (120.0 - 20.0) / 100.0;
    assert_eq!(round(l2, 2), 4.63);
    let l3 = 3.2 * alpha * co;
    assert_eq!(round(l3, 3), 0.019);
    // 5.246 GJ of heat in the hour: 1.457 MW, the rated output: full load.
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(160.0)),
        output: Some(amount(5.246)),
        exhaust: Some(mean(120.0)),
        o2: Some(mean(o2)),
        co_ppm: Some(mean(50.0)),
        cold_air: Some(mean(20.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = evaluate(&spec, None, &w, SteamMargins::DEFAULT);
    assert_same("alpha", r.alpha, alpha);
    assert_same("q2", r.q2, l2);
    assert_same("q3", r.q3, l3);
    assert_eq!(r.q4, Some(0.0));
    assert_eq!(r.q6, Some(0.0));
    assert_same("load_pct", r.load_pct, 100.0 * (5.246 / 3.6) / 1.457);
    assert_same("q5", r.q5, 1.5);
    let eta = 100.0 - (l2 + l3 + 1.5);
    assert_same("eta_indirect", r.eta_indirect, eta);
    assert_eq!(round(eta, 1), 93.9);
    assert_same(
        "eta_direct",
        r.eta_direct,
        100.0 * 5.246 / (160.0 * 35_818.0 / 1e6),
    );
    assert_eq!(r.state, BoilerState::Running);
    assert_eq!(r.reasons, Reasons::default());
}

#[test]
fn worked_example_7_4_hot_water_direct() {
    // 50 t heated from 70 to 95 °C by 160 Nm³ of methane in an hour.
    let spec = gas_spec(
        BoilerKind::HotWater,
        1.5,
        OutputKind::WaterFlow {
            kg_per_unit: 1000.0,
        },
    );
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(160.0)),
        output: Some(amount(50.0)),
        supply_temperature: Some(mean(95.0)),
        return_temperature: Some(mean(70.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = evaluate(&spec, None, &w, SteamMargins::DEFAULT);
    // §7.4 by saturated-liquid table values h(70) = 293.07, h(95) = 397.99
    // kJ/kg: 91.54 %. The gateway takes IF97 at 0.101 MPa (the loop's
    // pressure is not measured): 0.04 kJ/kg more per kg, 0.03 points; the
    // table values themselves are [M]. Within 0.05 points.
    let fuel_gj = 160.0 * 35_818.0 / 1e6;
    let by_tables = 100.0 * (50_000.0 * (397.99 - 293.07) / 1e6) / fuel_gj;
    assert_eq!(round(by_tables, 1), 91.5);
    let d = r.eta_direct.unwrap();
    assert!((d - by_tables).abs() < 0.05, "{d} vs {by_tables}");
    // The arithmetic itself, exactly: mass × (h(0 MPa g, supply) − h(0 MPa g, return)).
    let h = |t| enthalpy_kj_per_kg(0.0, t).unwrap();
    let heat = 50_000.0 * (h(95.0) - h(70.0)) / 1e6;
    assert_same("heat_out_gj", r.heat_out_gj, heat);
    assert_same("eta_direct", r.eta_direct, 100.0 * heat / fuel_gj);
    // Load: heat per hour / 3.6 over the rated MW.
    assert_same("load_pct", r.load_pct, 100.0 * (heat / 3.6) / 1.5);
    // No analyzer on this boiler: no indirect number, and the reason.
    assert_eq!(r.eta_indirect, None);
    assert_eq!(r.reasons, Reasons::INDIRECT_NO_ANALYZER);
    assert_eq!(r.state, BoilerState::Running);
    assert!(!r.estimated);
}

// ------------------------------------------------------- public gotchas

#[test]
fn q2_coefficients_are_m_plus_n_alpha_not_reversed() {
    // boiler.md §0: at α = 1.21 and Δt = 105 K, (0.5 + 3.5α) gives 4.97 %,
    // the reversed (3.5 + 0.5α) 4.31 %.
    let right = (0.5 + 3.5 * 1.21) * 105.0 / 100.0;
    let reversed = (3.5 + 0.5 * 1.21) * 105.0 / 100.0;
    assert_eq!(round(right, 2), 4.97);
    assert_eq!(round(reversed, 2), 4.31);
    // Every shipped class has m < n, and the window's q₂ is the right one.
    let table = BoilerTable::builtin();
    for f in &table.fuels {
        assert_eq!((f.q2_m, f.q2_n, f.q3_k), (0.5, 3.5, 3.2), "{}", f.key);
    }
    let spec = gas_spec(
        BoilerKind::Steam,
        10.0,
        OutputKind::Heat { gj_per_unit: 1.0 },
    );
    // O₂ such that the quick α is 1.21: 21 − 21/1.21.
    let o2 = 21.0 - 21.0 / 1.21;
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(700.0)),
        output: Some(amount(22.0)),
        exhaust: Some(mean(125.0)),
        o2: Some(mean(o2)),
        cold_air: Some(mean(20.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = evaluate(&spec, None, &w, SteamMargins::DEFAULT);
    assert!((r.alpha.unwrap() - 1.21).abs() < 1e-12);
    assert!(
        (r.q2.unwrap() - right).abs() < 1e-9,
        "{:?} vs {right}",
        r.q2
    );
}

#[test]
fn condensing_efficiency_above_100_is_not_clamped() {
    let mut spec = gas_spec(
        BoilerKind::HotWater,
        2.0,
        OutputKind::Heat { gj_per_unit: 1.0 },
    );
    let limits = LimitTable::builtin();
    let row = limits
        .select("natural_gas", Combustion::Chamber, true, 2.0 / 0.7)
        .unwrap();
    assert_eq!(row.key, "gb24500_2020_gas_condensing");
    spec.limits = Some(row.row);
    // 200 m³ of 35 818 kJ = 7.1636 GJ in; 7.40 GJ out: 103.30 %.
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(200.0)),
        output: Some(amount(7.40)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = evaluate(&spec, None, &w, SteamMargins::DEFAULT);
    let want = 100.0 * 7.40 / (200.0 * 35_818.0 / 1e6);
    assert!(want > 103.0);
    assert_same("eta_direct", r.eta_direct, want);
    assert_eq!(r.grade, Some(Grade::One));
    assert!(r.out_of_limit.is_empty());
}

// ------------------------------------------------------- reasons, states

/// A 10 t/h natural-gas steam boiler at full load with a full analyzer:
/// the window every bad-input test spoils one way.
fn gas_steam() -> (BoilerSpec, WindowInputs) {
    let spec = gas_spec(
        BoilerKind::Steam,
        10.0,
        OutputKind::SteamMass {
            kg_per_unit: 1000.0,
            state: SteamState::Auto,
            dryness: 1.0,
        },
    );
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(800.0)),
        output: Some(amount(10.0)),
        steam_pressure: Some(mean(P_GAUGE_1_3)),
        steam_temperature: Some(mean(191.31)),
        feed_water: Some(mean(20.0)),
        exhaust: Some(mean(120.0)),
        o2: Some(mean(3.5)),
        co_ppm: Some(mean(50.0)),
        cold_air: Some(mean(20.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    (spec, w)
}

fn eval(spec: &BoilerSpec, w: &WindowInputs) -> BoilerResult {
    evaluate(spec, None, w, SteamMargins::DEFAULT)
}

fn names(r: Reasons) -> Vec<&'static str> {
    r.names().collect()
}

#[test]
fn the_good_gas_window_is_running_with_both_methods() {
    let (spec, w) = gas_steam();
    let r = eval(&spec, &w);
    assert_eq!(r.state, BoilerState::Running);
    assert!(r.eta_direct.is_some() && r.eta_indirect.is_some());
    assert_eq!(r.reasons, Reasons::default());
    // Direct by steam tables: saturated at 1.3 MPa(a), h″ 2 786.5; feed
    // water 85.13 (see §7.3 above); 800 m³ × 35 818 kJ: 94.27 %.
    let want = 100.0 * (10_000.0 * (2786.5 - 85.13)) / (800.0 * 35_818.0);
    assert_eq!(round(want, 2), 94.27);
    assert!((r.eta_direct.unwrap() - want).abs() < 0.005);
    // Indirect as §7.4 (same flue gas): 93.86 %. They agree.
    assert_eq!(round(r.eta_indirect.unwrap(), 2), 93.86);
    assert!(!r.methods_disagree);
}

#[test]
fn methods_disagree_beyond_the_margin() {
    // A fuel meter reading 6 % low: η₁ = 100.57 %, 6.7 points above η₂.
    let (spec, mut w) = gas_steam();
    w.fuel = Some(amount(750.0));
    let r = eval(&spec, &w);
    let gap = r.eta_direct.unwrap() - r.eta_indirect.unwrap();
    assert!(gap > 5.0 && gap < 8.0, "{gap}");
    assert!(r.methods_disagree);
    // Disagreement is a finding, not a fault: still running, not estimated.
    assert_eq!(r.state, BoilerState::Running);
    assert!(!r.estimated);
    let mut wide = spec.clone();
    wide.disagreement_points = 8.0;
    assert!(!eval(&wide, &w).methods_disagree);
}

#[test]
fn boiler_off_gives_no_efficiency_and_no_loss() {
    let (spec, mut w) = gas_steam();
    w.fuel = Some(amount(0.0));
    w.output = Some(amount(0.0));
    w.o2 = Some(mean(20.9));
    let r = eval(&spec, &w);
    assert_eq!(r.state, BoilerState::Off);
    assert_eq!((r.eta_direct, r.eta_indirect), (None, None));
    assert_eq!(
        (r.q2, r.q3, r.q4, r.q5, r.q6, r.alpha),
        (None, None, None, None, None, None)
    );
    assert_eq!((r.heat_out_gj, r.fuel_in_gj), (Some(0.0), Some(0.0)));
    assert_eq!(r.load_pct, Some(0.0));
    assert_eq!(r.reasons, Reasons::default());
    assert!(!r.estimated && !r.methods_disagree);
    assert_eq!(r.grade, None);
    // Off even with no LHV anywhere and the steam gauges down: nothing is divided.
    w.meter_lhv_kj_per_m3 = None;
    w.steam_pressure = None;
    let r = eval(&spec, &w);
    assert_eq!(r.state, BoilerState::Off);
    assert_eq!((r.heat_out_gj, r.fuel_in_gj), (Some(0.0), Some(0.0)));
    assert_eq!(r.reasons, Reasons::default());
}

#[test]
fn o2_at_or_above_21_gives_no_indirect_number() {
    let (spec, mut w) = gas_steam();
    w.o2 = Some(mean(21.0));
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["indirect:o2_at_or_above_21"]);
    assert_eq!(
        (r.eta_indirect, r.alpha, r.q2, r.q5),
        (None, None, None, None)
    );
    assert!(r.eta_direct.is_some());
    assert_eq!(r.o2_mean, Some(21.0));
    // All inputs arrived and cover the window: the state is still running.
    assert_eq!(r.state, BoilerState::Running);
    assert!(!r.estimated);
}

#[test]
fn a_missing_analyzer_gives_no_indirect_number() {
    let (spec, mut w) = gas_steam();
    w.o2 = None;
    w.exhaust = None;
    w.co_ppm = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["indirect:no_analyzer"]);
    assert_eq!(
        (r.eta_indirect, r.exhaust_c_mean, r.o2_mean),
        (None, None, None)
    );
    assert!(r.eta_direct.is_some());
    // Cold air is a configured constant, so an analyzer was configured and
    // sent nothing: partial. Without any flue-gas input configured the
    // boiler simply has no analyzer: running.
    assert_eq!(r.state, BoilerState::Partial);
    w.cold_air = None;
    assert_eq!(eval(&spec, &w).state, BoilerState::Running);
    // The stage, knowing the configuration, says so itself.
    let configured = Inputs::required(&spec)
        .with(Inputs::EXHAUST)
        .with(Inputs::O2)
        .with(Inputs::COLD_AIR);
    let r = evaluate_with(&spec, configured, None, &w, SteamMargins::DEFAULT);
    assert_eq!(r.state, BoilerState::Partial);
    // O₂ without exhaust is no analyzer either.
    let (spec, mut w) = gas_steam();
    w.exhaust = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["indirect:no_analyzer"]);
    assert_eq!(r.state, BoilerState::Partial);
}

#[test]
fn analyzer_coverage_below_the_minimum_gives_no_indirect_number() {
    let (spec, mut w) = gas_steam();
    w.o2 = Some(covered(3.5, 0.85));
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["indirect:analyzer_coverage"]);
    assert_eq!(r.eta_indirect, None);
    assert!(r.eta_direct.is_some());
    assert_eq!(r.state, BoilerState::Partial);
    assert_eq!(r.coverage, 0.85);
    // At exactly the minimum it counts.
    w.o2 = Some(covered(3.5, 0.9));
    let r = eval(&spec, &w);
    assert!(r.eta_indirect.is_some());
    assert_eq!(r.state, BoilerState::Running);
}

#[test]
fn no_cold_air_gives_no_indirect_number() {
    let (spec, mut w) = gas_steam();
    w.cold_air = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["indirect:no_cold_air"]);
    assert_eq!(r.eta_indirect, None);
    assert_eq!(r.state, BoilerState::Partial);
}

#[test]
fn a_solid_fuel_without_a_record_has_neither_method() {
    let r = evaluate(&coal_spec(), None, &coal_window(), SteamMargins::DEFAULT);
    assert_eq!(names(r.reasons), ["no_fuel_record"]);
    assert_eq!(
        (r.eta_direct, r.eta_indirect, r.fuel_in_gj),
        (None, None, None)
    );
    assert!(r.heat_out_gj.is_some());
    // Every input arrived: the state is about inputs, the reason about data.
    assert_eq!(r.state, BoilerState::Running);
    // A record without the combustible contents: direct yes, indirect no.
    let rec = FuelRecord {
        fly_ash_combustible_pct: None,
        ..coal_record()
    };
    let r = evaluate(
        &coal_spec(),
        Some(&rec),
        &coal_window(),
        SteamMargins::DEFAULT,
    );
    assert_eq!(names(r.reasons), ["indirect:no_lab_data"]);
    assert!(r.eta_direct.is_some());
    assert_eq!(r.eta_indirect, None);
}

#[test]
fn a_gas_boiler_without_lhv_keeps_the_indirect_method() {
    let (spec, mut w) = gas_steam();
    w.meter_lhv_kj_per_m3 = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["no_fuel_record"]);
    assert_eq!((r.eta_direct, r.fuel_in_gj), (None, None));
    assert!(r.eta_indirect.is_some());
    // A record in force wins over the meter's measured LHV.
    w.meter_lhv_kj_per_m3 = Some(1.0);
    let rec = FuelRecord {
        from: 0,
        lhv_kj: METHANE_KJ_PER_M3,
        ash_pct: None,
        moisture_pct: None,
        volatile_daf_pct: None,
        slag_share_pct: None,
        slag_combustible_pct: None,
        fly_ash_combustible_pct: None,
        slag_temperature_c: None,
    };
    let r = evaluate(&spec, Some(&rec), &w, SteamMargins::DEFAULT);
    assert_same("fuel_in_gj", r.fuel_in_gj, 800.0 * 35_818.0 / 1e6);
}

#[test]
fn fuel_meter_down_or_low_gives_no_direct_number() {
    let (spec, mut w) = gas_steam();
    w.fuel = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["direct:no_fuel_data"]);
    assert_eq!((r.eta_direct, r.fuel_in_gj), (None, None));
    assert!(r.eta_indirect.is_some());
    assert_eq!(r.state, BoilerState::Partial);

    w.fuel = Some(Amount {
        amount: 600.0,
        coverage: 0.8,
        estimated: false,
    });
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["direct:fuel_coverage"]);
    assert_eq!(r.eta_direct, None);
    // The amount that was measured is still written, with its coverage.
    assert_same("fuel_in_gj", r.fuel_in_gj, 600.0 * 35_818.0 / 1e6);
    assert_eq!(r.coverage, 0.8);
    assert_eq!(r.state, BoilerState::Partial);
    // At exactly the minimum it counts.
    w.fuel = Some(Amount {
        amount: 800.0,
        coverage: 0.9,
        estimated: false,
    });
    let r = eval(&spec, &w);
    assert!(r.eta_direct.is_some());
    assert_eq!(r.state, BoilerState::Running);
    // A negative amount (a counter run backwards past validation) is no amount.
    w.fuel = Some(amount(-5.0));
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["direct:no_fuel_data"]);
    assert_eq!((r.eta_direct, r.fuel_in_gj), (None, None));
    assert_eq!(r.state, BoilerState::Partial);
}

#[test]
fn output_meter_down_or_low_gives_no_direct_number_and_no_load() {
    let (spec, mut w) = gas_steam();
    w.output = None;
    let r = eval(&spec, &w);
    assert_eq!(
        names(r.reasons),
        ["direct:no_output_data", "estimated:q5_rated"]
    );
    assert_eq!(
        (r.eta_direct, r.heat_out_gj, r.load_pct),
        (None, None, None)
    );
    // Without a load q₅ is its rated value, and the window is estimated.
    assert_eq!(r.q5, Some(1.5));
    assert!(r.eta_indirect.is_some() && r.estimated);
    assert_eq!(r.state, BoilerState::Partial);

    w.output = Some(Amount {
        amount: 8.0,
        coverage: 0.5,
        estimated: false,
    });
    let r = eval(&spec, &w);
    assert_eq!(
        names(r.reasons),
        ["direct:output_coverage", "estimated:q5_rated"]
    );
    assert_eq!((r.eta_direct, r.load_pct), (None, None));
    assert!(r.heat_out_gj.is_some());
}

#[test]
fn steam_state_feed_water_and_water_temperatures_missing() {
    let (spec, mut w) = gas_steam();
    w.steam_pressure = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["direct:no_steam_state"]);
    assert_eq!((r.eta_direct, r.heat_out_gj), (None, None));
    // The load of a steam-mass boiler needs no enthalpy.
    assert_same("load_pct", r.load_pct, 100.0);
    assert_eq!(r.state, BoilerState::Partial);

    let (spec, mut w) = gas_steam();
    w.feed_water = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["direct:no_feed_water"]);
    assert_eq!(r.eta_direct, None);
    assert_eq!(r.state, BoilerState::Partial);

    let spec = gas_spec(
        BoilerKind::HotWater,
        1.5,
        OutputKind::WaterFlow {
            kg_per_unit: 1000.0,
        },
    );
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(160.0)),
        output: Some(amount(50.0)),
        supply_temperature: Some(mean(95.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = eval(&spec, &w);
    assert_eq!(
        names(r.reasons),
        ["direct:no_water_temperatures", "indirect:no_analyzer"]
    );
    assert_eq!(
        (r.eta_direct, r.heat_out_gj, r.load_pct),
        (None, None, None)
    );
    assert_eq!(r.state, BoilerState::Partial);
}

#[test]
fn burner_off_for_part_of_the_window() {
    let (spec, mut w) = gas_steam();
    w.o2 = Some(Mean {
        mean: 6.0,
        min: 3.4,
        max: 20.6,
        coverage: 1.0,
    });
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["estimated:burner_off_part"]);
    assert_eq!(r.state, BoilerState::Partial);
    assert!(r.estimated);
    // Still computed, from the mean.
    assert_same("alpha", r.alpha, alpha_with_co(6.0, 0.005, spec.beta));
    // 20.4 % is not air yet.
    w.o2 = Some(Mean {
        max: 20.4,
        ..w.o2.unwrap()
    });
    let r = eval(&spec, &w);
    assert_eq!(r.reasons, Reasons::default());
    assert_eq!(r.state, BoilerState::Running);
}

#[test]
fn no_co_signal_uses_the_class_q3_and_the_quick_alpha() {
    let (spec, mut w) = gas_steam();
    w.co_ppm = None;
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["estimated:q3_default"]);
    assert!(r.estimated);
    assert_eq!(r.q3, Some(0.5));
    assert_same("alpha", r.alpha, 21.0 / (21.0 - 3.5));
    // CO is optional: not configured, the window is still running.
    assert_eq!(r.state, BoilerState::Running);
    // A site's q3_pct overrides the class default.
    let mut spec = spec;
    spec.q3_default_pct = 0.2;
    assert_eq!(eval(&spec, &w).q3, Some(0.2));
}

#[test]
fn q5_follows_the_load() {
    // PetroChina rule: ×1 from 75 %, ×100/load from 30 to 75 %, ×1/0.3 below.
    assert_eq!(q5_at_load(1.5, 100.0), 1.5);
    assert_eq!(q5_at_load(1.5, 75.0), 1.5);
    assert!(same(q5_at_load(1.5, 74.9), 1.5 * 100.0 / 74.9));
    assert!(same(q5_at_load(1.5, 50.0), 3.0));
    assert!(same(q5_at_load(1.5, 30.0), 5.0));
    assert!(same(q5_at_load(1.5, 29.9), 5.0));
    assert!(same(q5_at_load(1.5, 0.0), 5.0));
    // Half an hour's 5 t at 10 t/h rated: load 100 %; 2.5 t: 50 %.
    let (spec, mut w) = gas_steam();
    w.window_secs = 1800.0;
    w.output = Some(amount(2.5));
    w.fuel = Some(amount(190.0));
    let r = eval(&spec, &w);
    assert_same("load_pct", r.load_pct, 50.0);
    assert_same("q5", r.q5, 3.0);
    assert_eq!(r.reasons, Reasons::default());
}

#[test]
fn an_interpolated_amount_makes_the_window_estimated() {
    let (spec, mut w) = gas_steam();
    w.fuel = Some(Amount {
        amount: 800.0,
        coverage: 1.0,
        estimated: true,
    });
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["estimated:input_interpolated"]);
    assert!(r.estimated && r.eta_direct.is_some());
    assert_eq!(r.state, BoilerState::Running);
}

#[test]
fn a_steam_temperature_far_below_saturation_is_suspect() {
    let (spec, mut w) = gas_steam();
    // 20 K below T_sat (191.6 °C): a sensor problem; h″ is used.
    w.steam_temperature = Some(mean(171.6));
    let r = eval(&spec, &w);
    assert_eq!(names(r.reasons), ["estimated:steam_temperature_suspect"]);
    assert!(r.estimated);
    let want = 100.0 * (10_000.0 * (2786.5 - 85.13)) / (800.0 * 35_818.0);
    assert!((r.eta_direct.unwrap() - want).abs() < 0.005);
}

#[test]
fn blow_down_is_counted_as_saturated_water() {
    let (spec, mut w) = gas_steam();
    let base = eval(&spec, &w).heat_out_gj.unwrap();
    w.blowdown_pct = Some(5.0);
    let r = eval(&spec, &w);
    // 5 % of 10 t leaves as h′(1.3 MPa) = 814.8 kJ/kg, from 85.13 kJ/kg feed water.
    let extra = 10_000.0 * 0.05 * (814.8 - 85.13) / 1e6;
    assert!((r.heat_out_gj.unwrap() - base - extra).abs() < 0.000_05);
}

#[test]
fn a_steam_boiler_by_a_heat_counter_loads_at_0_7_mw_per_t_h() {
    let spec = gas_spec(
        BoilerKind::Steam,
        4.0,
        OutputKind::Heat { gj_per_unit: 0.001 },
    );
    // 7 560 MJ in an hour: 2.1 MW, of 4 t/h × 0.7 = 2.8 MW: 75 %.
    let w = WindowInputs {
        window_secs: HOUR,
        fuel: Some(amount(230.0)),
        output: Some(amount(7560.0)),
        meter_lhv_kj_per_m3: Some(METHANE_KJ_PER_M3),
        ..WindowInputs::default()
    };
    let r = eval(&spec, &w);
    assert_same("heat_out_gj", r.heat_out_gj, 7.56);
    assert_same("load_pct", r.load_pct, 75.0);
}

// -------------------------------------------------------------- grading

#[test]
fn grades_at_their_boundaries() {
    let g = [96.0, 94.0, 92.0];
    assert_eq!(grade(96.0, g), Grade::One);
    assert_eq!(grade(95.999, g), Grade::Two);
    assert_eq!(grade(94.0, g), Grade::Two);
    assert_eq!(grade(93.999, g), Grade::Three);
    assert_eq!(grade(92.0, g), Grade::Three);
    assert_eq!(grade(91.999, g), Grade::BelowLimit);
    assert_eq!(grade(120.0, g), Grade::One);
}

#[test]
fn windows_are_graded_by_direct_then_indirect_and_limits_flagged() {
    let (mut spec, mut w) = gas_steam();
    let row = LimitTable::builtin()
        .get("gb24500_2020_gas_non_condensing")
        .unwrap()
        .row;
    assert_eq!(row.eta_grades, [96.0, 94.0, 92.0]);
    spec.limits = Some(row);
    let r = eval(&spec, &w);
    // η₁ = 94.27 % (above): grade 2 of [96, 94, 92].
    assert_eq!(round(r.eta_direct.unwrap(), 2), 94.27);
    assert_eq!(r.grade, Some(Grade::Two));
    // Without the direct method the indirect number is graded.
    w.fuel = None;
    let r = eval(&spec, &w);
    let i = r.eta_indirect.unwrap();
    // As §7.4: α = 1.1788, q₂ = 4.626, q₃ = 0.019, q₅ = 1.5: 93.86 %.
    assert_eq!(round(i, 2), 93.86);
    assert_eq!(r.grade, Some(Grade::Three));
    assert!(r.out_of_limit.is_empty());
    // Below grade 3: efficiency out of limit; exhaust and α limits when the
    // row has them (the shipped gas rows have none: to be filled in).
    w.exhaust = Some(mean(180.0));
    spec.limits = Some(emgate::pipeline::boiler::tables::LimitRow {
        eta_grades: [96.0, 94.0, 92.0],
        exhaust_c_max: Some(170.0),
        alpha_max: Some(1.15),
    });
    let r = eval(&spec, &w);
    assert_eq!(r.grade, Some(Grade::BelowLimit));
    assert_eq!(
        r.out_of_limit,
        OutOfLimit(OutOfLimit::EFFICIENCY.0 | OutOfLimit::EXHAUST.0 | OutOfLimit::EXCESS_AIR.0)
    );
    // At the limits exactly: within them.
    w.exhaust = Some(mean(170.0));
    spec.limits = Some(emgate::pipeline::boiler::tables::LimitRow {
        eta_grades: [50.0, 40.0, 30.0],
        exhaust_c_max: Some(170.0),
        alpha_max: Some(r.alpha.unwrap()),
    });
    let r = eval(&spec, &w);
    assert_eq!(r.grade, Some(Grade::One));
    assert!(r.out_of_limit.is_empty());
    // No row: no grade, nothing out of limit.
    spec.limits = None;
    let r = eval(&spec, &w);
    assert_eq!((r.grade, r.out_of_limit), (None, OutOfLimit::default()));
}

// --------------------------------------------------------------- tables

#[test]
fn the_shipped_coefficient_table() {
    let t = BoilerTable::builtin();
    assert!(t.edition.contains("placeholder"), "{}", t.edition);
    assert_eq!(t.carbon_kj_per_kg, 32_866.0);
    assert_eq!(t.slag_temperature_c, 600.0);
    assert_eq!(t.slag.confidence, Confidence::Memory);
    for key in [
        "natural_gas",
        "lpg",
        "fuel_oil",
        "bituminous",
        "anthracite",
        "lean_coal",
        "lignite",
        "biomass",
    ] {
        let f = t.fuel(key).unwrap_or_else(|| panic!("no class {key}"));
        assert!(!f.source.is_empty());
    }
    assert_eq!(t.fuel("natural_gas").unwrap().kind, FuelKind::Gas);
    assert_eq!(t.fuel("fuel_oil").unwrap().kind, FuelKind::Oil);
    assert_eq!(t.fuel("biomass").unwrap().kind, FuelKind::Solid);
    assert!(t.fuel("peat").is_none());
    // β of each solid and oil class from the composition its source names:
    // β = 2.35·(H − 0.126·O + 0.038·N)/(C + 0.375·S).
    let beta = |c: f64, h: f64, o: f64, n: f64, s: f64| {
        2.35 * (h - 0.126 * o + 0.038 * n) / (c + 0.375 * s)
    };
    for (key, want) in [
        ("bituminous", beta(55.0, 3.5, 7.0, 1.0, 0.8)),
        ("anthracite", beta(65.65, 2.64, 3.19, 0.99, 0.51)),
        ("lean_coal", beta(60.0, 2.8, 2.5, 1.0, 1.5)),
        ("lignite", beta(40.0, 3.0, 12.0, 0.6, 0.5)),
        ("biomass", beta(42.0, 5.2, 35.0, 0.5, 0.1)),
        ("fuel_oil", beta(86.0, 13.0, 0.4, 0.1, 0.5)),
        // Gases: 0.79·y/(4x) for CxHy; LPG propane/butane 50/50: C3.5H9.
        ("lpg", 0.79 * 9.0 / (4.0 * 3.5)),
        ("natural_gas", 21.0 / 11.73 - 1.0),
    ] {
        let got = t.fuel(key).unwrap().beta;
        assert!((got - want).abs() < 6e-5, "{key}: {got} vs {want}");
    }
    // q₅ (placeholder): 1.7 % at 10 t/h, 1.5 % at 15 t/h, linear between
    // rows, end values beyond; hot water at 0.7 MW per t/h.
    assert_eq!(t.q5_rated_pct(10.0, BoilerKind::Steam), Some(1.7));
    assert_eq!(t.q5_rated_pct(15.0, BoilerKind::Steam), Some(1.5));
    assert!(same(t.q5_rated_pct(12.5, BoilerKind::Steam).unwrap(), 1.6));
    assert_eq!(t.q5_rated_pct(7.0, BoilerKind::HotWater), Some(1.7));
    assert_eq!(t.q5_rated_pct(0.1, BoilerKind::Steam), Some(4.5));
    assert_eq!(t.q5_rated_pct(500.0, BoilerKind::Steam), Some(0.6));
    assert_eq!(t.q5_rated_pct(0.0, BoilerKind::Steam), None);
    assert!(t.q5.iter().all(|r| r.confidence == Confidence::Memory));
    // The spec carries the class and the table.
    let s = t
        .spec(
            "lignite",
            BoilerKind::HotWater,
            7.0,
            1000.0,
            OutputKind::Heat { gj_per_unit: 1.0 },
        )
        .unwrap();
    assert_eq!(s.fuel_kind, FuelKind::Solid);
    assert_eq!(s.q5_rated_pct, 1.7);
    assert_eq!(s.carbon_kj_per_kg, 32_866.0);
    assert_eq!((s.disagreement_points, s.min_coverage), (5.0, 0.9));
    let e = t
        .spec(
            "peat",
            BoilerKind::Steam,
            1.0,
            1.0,
            OutputKind::Heat { gj_per_unit: 1.0 },
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("no fuel class \"peat\""), "{e}");
}

#[test]
fn the_shipped_limit_table() {
    let t = LimitTable::builtin();
    assert!(t.edition.contains("UNDER REVIEW"), "{}", t.edition);
    t.check_fuels(&BoilerTable::builtin()).unwrap();
    let sel = |fuel, comb, cond, t_h| t.select(fuel, comb, cond, t_h).map(|e| e.key.as_str());
    assert_eq!(
        sel("natural_gas", Chamber, false, 10.0),
        Some("gb24500_2020_gas_non_condensing")
    );
    assert_eq!(
        sel("natural_gas", Chamber, true, 10.0),
        Some("gb24500_2020_gas_condensing")
    );
    assert_eq!(
        sel("lpg", Chamber, false, 2.0),
        Some("gb24500_2020_lpg_non_condensing")
    );
    assert_eq!(
        sel("fuel_oil", Chamber, false, 2.0),
        Some("gb24500_2020_oil")
    );
    assert_eq!(sel("natural_gas", Layered, false, 10.0), None);
    // Layered bituminous: class II by default; exhaust 180 °C below 1 t/h,
    // 170 °C from 1 to 20 t/h; above 20 t/h the other grades.
    let layered = |t_h| sel("bituminous", Layered, false, t_h);
    assert_eq!(
        layered(0.5),
        Some("gb24500_2020_layered_bituminous_ii_below_1t")
    );
    assert_eq!(
        layered(1.0),
        Some("gb24500_2020_layered_bituminous_ii_1_to_20t")
    );
    assert_eq!(
        layered(20.0),
        Some("gb24500_2020_layered_bituminous_ii_1_to_20t")
    );
    assert_eq!(
        layered(20.1),
        Some("gb24500_2020_layered_bituminous_ii_above_20t")
    );
    let row = |key: &str| t.get(key).unwrap().row;
    assert_eq!(
        row("gb24500_2020_layered_bituminous_ii_below_1t").exhaust_c_max,
        Some(180.0)
    );
    assert_eq!(
        row("gb24500_2020_layered_bituminous_ii_1_to_20t").exhaust_c_max,
        Some(170.0)
    );
    assert_eq!(
        row("gb24500_2020_layered_bituminous_ii_1_to_20t").eta_grades,
        [85.0, 82.0, 80.0]
    );
    assert_eq!(
        row("gb24500_2020_layered_bituminous_iii_above_20t").eta_grades,
        [89.0, 86.0, 84.0]
    );
    assert_eq!(
        row("gb24500_2020_layered_bituminous_ii_above_20t").exhaust_c_max,
        None
    );
    assert_eq!(
        row("gb24500_2020_layered_lignite_above_20t").eta_grades,
        [87.0, 84.0, 82.0]
    );
    assert_eq!(
        sel("lean_coal", FluidizedBed, false, 35.0),
        Some("gb24500_2020_fluidized_lean_coal")
    );
    assert_eq!(
        row("gb24500_2020_fluidized_bituminous_ii").eta_grades,
        [90.0, 89.0, 86.0]
    );
    assert_eq!(
        sel("lignite", Chamber, false, 65.0),
        Some("gb24500_2020_pulverized_coal")
    );
    // Biomass: any combustion, split at 10 t/h (7 MW = 10 t/h belongs below).
    assert_eq!(
        sel("biomass", Layered, false, 7.0 / 0.7),
        Some("gb24500_2020_biomass_up_to_10t")
    );
    assert_eq!(
        sel("biomass", FluidizedBed, false, 15.0),
        Some("gb24500_2020_biomass_above_10t")
    );
    // Every row says where it comes from; no α limit was found.
    for r in &t.rows {
        assert!(!r.source.is_empty(), "{}", r.key);
        assert_eq!(r.row.alpha_max, None, "{}", r.key);
        let [g1, g2, g3] = r.row.eta_grades;
        assert!(g1 >= g2 && g2 >= g3, "{}", r.key);
    }
}
