//! Boilers end to end: the simulator's boiler model (`src/sim/boiler.rs`)
//! serves a fuel meter, an output meter and a flue-gas analyzer per boiler;
//! the whole gateway polls them every second, aggregates 1-minute windows,
//! joins them per boiler and writes the `boiler` measurement into a real
//! `influxd`. Three full windows are then checked against arithmetic done
//! here, by hand, from the simulated values (the flue gas of the README's
//! "Simulated boilers" table, the lab record, the coefficient table's row):
//!
//! * **both methods**: a gas steam boiler, a coal-fired hot-water boiler
//!   (heat counter) and a gas hot-water boiler measured by its water flow:
//!   `eta_direct` within 0.5 points of the model's true efficiency, every
//!   loss, α and `eta_indirect` against the hand computation, and the full
//!   field set;
//! * **bad input**: a boiler off, an analyzer stuck, no analyzer, an
//!   analyzer reading 21 % O₂, a coal boiler before its first lab record and
//!   a fuel meter down: the exact field set, state and reasons.
//!
//! In both, every boiler has exactly one point per window.
//!
//! Counters of the test's own profiles are f64, so a 1-minute window's
//! amount is the simulator's closed form exactly (the shipped gas and coal
//! meters count 0.1 Nm³ and 1 kg, a few percent of a boiler-minute).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emgate::sim::{LoadShape, SimOptions};
use serde_json::Value;

use crate::support::config::{GatewayToml, Meter, Site, modbus};
use crate::support::iapws::{Ask, iapws};
use crate::support::influxd::{Influxd, Table};
use crate::support::test_gateway::TestGateway;
use crate::support::{lazy, wait_for};

const DB: &str = "boilers";

/// A gas meter counting standard m³ as f64.
const GAS_F64: &str = r#"
description = "test: gas meter, standard volume as f64"
consumption = "volume_nm3"
[[points]]
name = "volume_nm3"
register = "holding"
address = 0
type = "f64"
kind = "counter"
unit = "nm3"
min = 0
"#;

/// A coal scale counting t as f64.
const COAL_F64: &str = r#"
description = "test: coal scale, mass as f64"
consumption = "mass_t"
[[points]]
name = "mass_t"
register = "holding"
address = 0
type = "f64"
kind = "counter"
unit = "t"
min = 0
"#;

/// A heat meter counting GJ as f64.
const HEAT_F64: &str = r#"
description = "test: heat meter, heat as f64"
consumption = "heat_gj"
[[points]]
name = "heat_gj"
register = "holding"
address = 0
type = "f64"
kind = "counter"
unit = "gj"
min = 0
"#;

/// A hot-water loop: water counted in m³ as f64, supply and return.
const WATER_F64: &str = r#"
description = "test: hot-water loop, volume as f64 with supply and return temperatures"
consumption = "volume_m3"
[[points]]
name = "volume_m3"
register = "holding"
address = 0
type = "f64"
kind = "counter"
unit = "m3"
min = 0
[[points]]
name = "supply_c"
register = "holding"
address = 4
type = "f32"
unit = "c"
min = 0
max = 150
[[points]]
name = "return_c"
register = "holding"
address = 6
type = "f32"
unit = "c"
min = 0
max = 150
"#;

/// The analyzer inputs of boiler `b`'s analyzer `<b>-flue` (cold air from
/// its ambient point, or `cold_air` when given as a number).
fn analyzer_keys(b: &str, cold_air: Option<f64>) -> String {
    let cold = cold_air.map_or_else(
        || format!("{{ meter = \"{b}-flue\", point = \"ambient_c\" }}"),
        |c| format!("{c:.1}"),
    );
    format!(
        "exhaust_c = {{ meter = \"{b}-flue\", point = \"exhaust_c\" }}\n\
         o2_pct = {{ meter = \"{b}-flue\", point = \"o2_pct\" }}\n\
         co_ppm = {{ meter = \"{b}-flue\", point = \"co_ppm\" }}\n\
         cold_air_c = {cold}\n"
    )
}

/// A 10 t/h gas steam boiler `b` (fuel `<b>-gas`, steam `<b>-steam`), feed
/// water at 20 °C, with `extra` keys (the analyzer's, or none).
fn gas_steam(b: &str, extra: &str) -> String {
    format!(
        "\n[[boilers]]\nid = \"{b}\"\nname = \"gas steam boiler {b}\"\nkind = \"steam\"\n\
         rated_capacity = 10.0\nfuel = \"natural_gas\"\nfuel_meter = \"{b}-gas\"\n\
         output_meter = \"{b}-steam\"\nfeed_water_c = 20.0\n{extra}\n\
         [[boilers.fuel_records]]\nfrom = \"2020-01-01\"\nlhv_kj_per_m3 = 35818\n"
    )
}

/// A 7 MW (10 t/h equivalent) bituminous hot-water boiler `b` on a grate
/// (coal `<b>-coal`, heat `<b>-heat`) with boiler.md §7.3's lab record from `from`.
fn coal_hot_water(b: &str, from: &str) -> String {
    format!(
        "\n[[boilers]]\nid = \"{b}\"\nname = \"coal hot-water boiler {b}\"\nkind = \"hot_water\"\n\
         rated_capacity = 7.0\nfuel = \"bituminous\"\ncombustion = \"layered\"\n\
         fuel_meter = \"{b}-coal\"\noutput_meter = \"{b}-heat\"\n{}\n\
         [[boilers.fuel_records]]\nfrom = \"{from}\"\nlhv_kj_per_kg = 21500\nash_pct = 22.7\n\
         moisture_pct = 10.0\nvolatile_daf_pct = 30.0\nslag_share_pct = 80.0\n\
         slag_combustible_pct = 12.0\nfly_ash_combustible_pct = 20.0\n",
        analyzer_keys(b, Some(20.0))
    )
}

/// A 2.8 MW (4 t/h equivalent) gas hot-water boiler `b` measured by its
/// loop `<b>-water` (volume, supply, return).
fn gas_hot_water(b: &str) -> String {
    format!(
        "\n[[boilers]]\nid = \"{b}\"\nname = \"gas hot-water boiler {b}\"\nkind = \"hot_water\"\n\
         rated_capacity = 2.8\nfuel = \"natural_gas\"\nfuel_meter = \"{b}-gas\"\n\
         output_meter = \"{b}-water\"\n\
         supply_temperature = {{ meter = \"{b}-water\", point = \"supply_c\" }}\n\
         return_temperature = {{ meter = \"{b}-water\", point = \"return_c\" }}\n{}\n\
         [[boilers.fuel_records]]\nfrom = \"2020-01-01\"\nlhv_kj_per_m3 = 35818\n",
        analyzer_keys(b, Some(20.0))
    )
}

/// Meter `id` on endpoint `a` at `unit`, polled every second.
fn meter(id: &str, energy: &str, profile: &str, level: u8, unit: usize) -> Meter {
    modbus(id, energy, profile, "a", unit).level(level)
}

// ---------------------------------------------------------------------------
// The hand computation (README "Boiler efficiency", boiler.md §3-4)

/// One boiler's losses worked out by hand.
#[derive(Debug, Clone, Copy)]
struct Hand {
    alpha: f64,
    q2: f64,
    q3: f64,
    q4: f64,
    q5: f64,
    q6: f64,
}

impl Hand {
    fn eta(&self) -> f64 {
        100.0 - (self.q2 + self.q3 + self.q4 + self.q5 + self.q6)
    }
}

/// A natural-gas fire as simulated (O₂ 3.5 %, CO 50 ppm, exhaust 120 °C,
/// cold air 20 °C), natural gas's row (m 0.5, n 3.5, k 3.2, β 0.7903) and
/// q₅ at rated load `q5` (the load stays above 75 %).
fn hand_gas(q5: f64) -> Hand {
    let (o2, co) = (3.5, 50.0 / 1e4);
    let beta = 0.7903;
    let ro2 = (21.0 - o2 - (0.605 + beta) * co) / (1.0 + beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    Hand {
        alpha,
        q2: (0.5 + 3.5 * alpha) * (120.0 - 20.0) / 100.0,
        q3: 3.2 * alpha * co,
        q4: 0.0,
        q5,
        q6: 0.0,
    }
}

/// A bituminous grate fire as simulated (O₂ 8 %, CO 500 ppm, exhaust 160
/// °C, cold air 20 °C), bituminous's row (β 0.1129, carbon 32 866 kJ/kg,
/// slag at 600 °C) and boiler.md §7.3's coal: Q 21 500 kJ/kg, A 22.7 %,
/// 80 % slag at C 12 %, fly ash at C 20 %.
fn hand_coal(q5: f64) -> Hand {
    let (o2, co, t_py, q_r, ash) = (8.0, 500.0 / 1e4, 160.0, 21_500.0, 22.7);
    let beta = 0.1129;
    let ro2 = (21.0 - o2 - (0.605 + beta) * co) / (1.0 + beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    let q4 = 32_866.0 * ash * (0.8 * 12.0 / 88.0 + 0.2 * 20.0 / 80.0) / q_r;
    let c = |t: f64| 0.71 + 5.02e-4 * t;
    let q6 = 100.0 * ash * (0.8 * c(600.0) * 600.0 / 88.0 + 0.2 * c(t_py) * t_py / 80.0) / q_r;
    Hand {
        alpha,
        q2: (0.5 + 3.5 * alpha) * (t_py - 20.0) / 100.0 * (1.0 - q4 / 100.0),
        q3: 3.2 * alpha * co * (1.0 - q4 / 100.0),
        q4,
        q5,
        q6,
    }
}

// ---------------------------------------------------------------------------
// Running and reading back

/// Unix seconds now.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// How many full windows each test checks.
const WINDOWS: i64 = 3;

/// The main file of both tests: 1-minute windows closed at once, boiler
/// windows written at most 5 s after their end.
fn main_toml(influx: &Influxd) -> GatewayToml {
    GatewayToml::new("boilers")
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 1000\nflush_interval_ms = 200",
        )
        .section(
            "aggregation",
            "windows = [\"1m\"]\nallowed_lateness_secs = 0",
        )
        .section("boiler", "grace_secs = 5")
        .endpoint("a", "")
        .profile("gas_f64", GAS_F64)
        .profile("coal_f64", COAL_F64)
        .profile("heat_f64", HEAT_F64)
        .profile("water_f64", WATER_F64)
}

/// Runs `gw` until the [`WINDOWS`] full 1-minute windows from the first
/// boundary at least `settle` seconds after the start have a point for each
/// of `boilers`, then stops it; returns the first window's start.
async fn run_windows(gw: &mut TestGateway, influx: &Influxd, boilers: &[&str], settle: i64) -> i64 {
    gw.run();
    let first = (now() + settle).div_euclid(60) * 60 + 60;
    let end = first + 60 * WINDOWS;
    let q = format!(
        "SELECT count(state) FROM boiler WHERE time >= {first}s AND time < {end}s GROUP BY boiler"
    );
    let want = usize::try_from(WINDOWS).expect("few");
    let counts = async || {
        let v = influx.query(DB, &q).await;
        v["results"][0]["series"].as_array().map_or(0, |s| {
            s.iter()
                .filter(|s| s["values"][0][1].as_u64() == Some(WINDOWS as u64))
                .count()
        })
    };
    let deadline = u64::try_from(end - now() + 60).unwrap_or(60);
    wait_for(
        lazy(|| format!("{want} boiler windows of {boilers:?} from {first}")),
        Duration::from_secs(deadline),
        async || now() >= end + 5 && counts().await == boilers.len(),
    )
    .await;
    gw.stop().await;
    first
}

/// The `boiler` points of boiler `b` in the checked windows, oldest first.
async fn points(influx: &Influxd, b: &str, first: i64) -> Table {
    let t = influx
        .table(
            DB,
            &format!(
                "SELECT * FROM boiler WHERE boiler = '{b}' AND time >= {first}s AND time < {}s",
                first + 60 * WINDOWS
            ),
        )
        .await;
    let times: Vec<i64> = t
        .rows
        .iter()
        .map(|r| r[t.col("time")].as_i64().expect("epoch seconds"))
        .collect();
    let want: Vec<i64> = (0..WINDOWS).map(|k| first + 60 * k).collect();
    assert_eq!(times, want, "{b}: exactly one point per window");
    t
}

/// The fields a point has (tags and time left out), sorted.
fn fields(t: &Table, row: &[Value]) -> BTreeSet<String> {
    t.columns
        .iter()
        .zip(row)
        .filter(|(c, v)| {
            !v.is_null() && !["time", "boiler", "site", "window"].contains(&c.as_str())
        })
        .map(|(c, _)| c.clone())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Every field of a window evaluated by both methods, graded.
const ALL: [&str; 20] = [
    "alpha",
    "coverage",
    "estimated",
    "eta_direct",
    "eta_indirect",
    "exhaust_c_mean",
    "fuel_in_gj",
    "grade",
    "heat_out_gj",
    "load_pct",
    "methods_disagree",
    "o2_mean",
    "out_of_limit",
    "q2",
    "q3",
    "q4",
    "q5",
    "q6",
    "reasons",
    "state",
];

/// The fields written whatever happened.
const ALWAYS: [&str; 6] = [
    "coverage",
    "estimated",
    "methods_disagree",
    "out_of_limit",
    "reasons",
    "state",
];

fn num(t: &Table, row: &[Value], col: &str) -> f64 {
    row[t.col(col)]
        .as_f64()
        .unwrap_or_else(|| panic!("{col} is not a number: {row:?}"))
}

fn text<'a>(t: &Table, row: &'a [Value], col: &str) -> &'a str {
    row[t.col(col)]
        .as_str()
        .unwrap_or_else(|| panic!("{col} is not a string: {row:?}"))
}

/// `got` within `within` of `want`.
fn near(what: &str, got: f64, want: f64, within: f64) {
    assert!(
        (got - want).abs() <= within,
        "{what}: {got} vs {want} (more than {within} apart)"
    );
}

// ---------------------------------------------------------------------------
// Both methods against the model

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_methods_agree_with_the_model_within_half_a_point() {
    let influx = Influxd::with_database(DB).await;
    let site = Site::new("BH", "boiler house")
        .timezone("Asia/Shanghai")
        .meter(meter("g1-gas", "natural_gas", "gas_f64", 1, 1))
        .meter(meter("g1-steam", "steam", "steam_flow_computer", 3, 2))
        .meter(meter("g1-flue", "natural_gas", "flue_gas_analyzer", 3, 3))
        .meter(meter("c1-coal", "coal", "coal_f64", 1, 4))
        .meter(meter("c1-heat", "heat", "heat_f64", 3, 5))
        .meter(meter("c1-flue", "coal", "flue_gas_analyzer", 3, 6))
        .meter(meter("w1-gas", "natural_gas", "gas_f64", 1, 7))
        .meter(meter("w1-water", "water", "water_f64", 3, 8))
        .meter(meter("w1-flue", "natural_gas", "flue_gas_analyzer", 3, 9));
    let site_file = format!(
        "{site}{}{}{}",
        gas_steam("g1", &analyzer_keys("g1", None)),
        coal_hot_water("c1", "2020-01-01"),
        gas_hot_water("w1")
    );
    let toml = main_toml(&influx).site("bh.toml", site_file);
    let mut gw = TestGateway::prepare(&toml, SimOptions::default()).await;

    // The hand computation: q5 from the table's row at 10 t/h (1.7 %) for
    // g1 and c1 (7 MW = 10 t/h), at 4 t/h (2.4 %) for w1 (2.8 MW).
    let hands = [
        ("g1", hand_gas(1.7)),
        ("c1", hand_coal(1.7)),
        ("w1", hand_gas(2.4)),
    ];
    // boiler.md §7.3's coal: the hand arithmetic is the worked example.
    near("c1 α", hands[1].1.alpha, 1.5965, 1e-4);
    near("c1 q4", hands[1].1.q4, 5.52, 5e-3);
    near("c1 q6", hands[1].1.q6, 0.616, 5e-4);
    // The model computed the same losses on its own.
    for (b, hand) in &hands {
        let truth = gw.sim.boiler(b).unwrap_or_else(|| panic!("{b} simulated"));
        let eta = truth.eta().expect("running");
        near(&format!("{b}: model η"), eta, hand.eta(), 1e-9);
        near(&format!("{b}: model q2"), truth.losses.q2, hand.q2, 1e-9);
        assert!(
            truth.load_pct > 75.0,
            "{b}: load {} above 75 %",
            truth.load_pct
        );
    }

    let first = run_windows(&mut gw, &influx, &["g1", "c1", "w1"], 3).await;

    let mut worst = Vec::new();
    for (b, hand) in &hands {
        let t = points(&influx, b, first).await;
        worst.push((*b, 0.0_f64));
        for row in &t.rows {
            assert_eq!(fields(&t, row), set(&ALL), "{b}: fields of {row:?}");
            assert_eq!(text(&t, row, "state"), "running", "{b}");
            assert_eq!(text(&t, row, "reasons"), "", "{b}");
            assert_eq!(text(&t, row, "out_of_limit"), "", "{b}");
            assert_eq!(row[t.col("estimated")], Value::Bool(false), "{b}");
            assert_eq!(row[t.col("methods_disagree")], Value::Bool(false), "{b}");
            assert_eq!(num(&t, row, "coverage"), 1.0, "{b}");
            // Direct: within half a point of the model's truth.
            let direct = num(&t, row, "eta_direct");
            near(&format!("{b}: eta_direct"), direct, hand.eta(), 0.5);
            if let Some((_, w)) = worst.last_mut() {
                *w = w.max((direct - hand.eta()).abs());
            }
            // Indirect: each loss against the hand computation. The analyzer's
            // wobble moves the window means a little (O₂ ± 0.02, exhaust ± 0.2 K).
            near(
                &format!("{b}: alpha"),
                num(&t, row, "alpha"),
                hand.alpha,
                0.003,
            );
            near(&format!("{b}: q2"), num(&t, row, "q2"), hand.q2, 0.02);
            near(&format!("{b}: q3"), num(&t, row, "q3"), hand.q3, 0.005);
            near(&format!("{b}: q4"), num(&t, row, "q4"), hand.q4, 1e-9);
            near(&format!("{b}: q5"), num(&t, row, "q5"), hand.q5, 1e-12);
            near(&format!("{b}: q6"), num(&t, row, "q6"), hand.q6, 1e-3);
            let indirect = num(&t, row, "eta_indirect");
            near(&format!("{b}: eta_indirect"), indirect, hand.eta(), 0.03);
            let losses: f64 = ["q2", "q3", "q4", "q5", "q6"]
                .iter()
                .map(|q| num(&t, row, q))
                .sum();
            near(&format!("{b}: 100 − Σq"), indirect, 100.0 - losses, 1e-9);
            near(
                &format!("{b}: o2_mean"),
                num(&t, row, "o2_mean"),
                if *b == "c1" { 8.0 } else { 3.5 },
                0.02,
            );
            let load = num(&t, row, "load_pct");
            assert!((75.0..=100.0).contains(&load), "{b}: load {load}");
            near(
                &format!("{b}: eta_direct = 100 heat/fuel"),
                direct,
                100.0 * num(&t, row, "heat_out_gj") / num(&t, row, "fuel_in_gj"),
                1e-9,
            );
            // Graded by its direct efficiency against the selected row.
            let grades: [f64; 3] = if *b == "c1" {
                [85.0, 82.0, 80.0]
            } else {
                [96.0, 94.0, 92.0]
            };
            let grade = match direct {
                e if e >= grades[0] => "1",
                e if e >= grades[1] => "2",
                e if e >= grades[2] => "3",
                _ => "below_limit",
            };
            assert_eq!(text(&t, row, "grade"), grade, "{b}: η {direct}");
        }
    }
    // The heat-counter boiler is exact: its heat and fuel are both counter
    // differences of the closed form.
    let c1 = points(&influx, "c1", first).await;
    for row in &c1.rows {
        near(
            "c1: eta_direct exact",
            num(&c1, row, "eta_direct"),
            hands[1].1.eta(),
            1e-6,
        );
    }
    // The steam boiler's heat by hand: the steam counter's window × (h″ at
    // the window's mean pressure − h of feed water at 20 °C pumped to it),
    // IF97 by the `iapws` package (not the gateway's seuif97).
    let g1 = points(&influx, "g1", first).await;
    for row in &g1.rows {
        let at = row[g1.col("time")].as_i64().expect("time");
        let stat = influx
            .rows(
                DB,
                &format!("SELECT pressure_mpa_mean FROM gauge_stats WHERE meter = 'g1-steam' AND time = {at}s"),
            )
            .await;
        let amount = influx
            .rows(
                DB,
                &format!(
                    "SELECT amount FROM consumption WHERE meter = 'g1-steam' AND time = {at}s"
                ),
            )
            .await;
        let p_abs = stat[0][1].as_f64().expect("mean pressure") + 0.101_325;
        let h = iapws(&[Ask::Hx { p_abs, x: 1.0 }, Ask::H { p_abs, t_c: 20.0 }]);
        let heat = amount[0][1].as_f64().expect("steam t") * 1000.0 * (h[0] - h[1]) / 1e6;
        near(
            "g1: heat_out_gj",
            num(&g1, row, "heat_out_gj"),
            heat,
            2e-5 * heat,
        );
    }
    eprintln!("largest |eta_direct − model η| over the windows, points: {worst:?}");
}

// ---------------------------------------------------------------------------
// Bad input

/// The boilers of the bad-input test and what each must show in every window.
struct Case {
    boiler: &'static str,
    state: &'static str,
    reasons: &'static str,
    fields: &'static [&'static str],
}

const CASES: [Case; 6] = [
    // No load: nothing burned, no efficiency, no loss; the analyzer reads air.
    Case {
        boiler: "off",
        state: "off",
        reasons: "",
        fields: &[
            "coverage",
            "estimated",
            "exhaust_c_mean",
            "fuel_in_gj",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "o2_mean",
            "out_of_limit",
            "reasons",
            "state",
        ],
    },
    // O₂ and exhaust flagged frozen: no flue gas in the window.
    Case {
        boiler: "stuck",
        state: "partial",
        reasons: "indirect:no_analyzer",
        fields: &[
            "coverage",
            "estimated",
            "eta_direct",
            "fuel_in_gj",
            "grade",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "out_of_limit",
            "reasons",
            "state",
        ],
    },
    // No analyzer configured: the direct method alone, and the boiler runs.
    Case {
        boiler: "absent",
        state: "running",
        reasons: "indirect:no_analyzer",
        fields: &[
            "coverage",
            "estimated",
            "eta_direct",
            "fuel_in_gj",
            "grade",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "out_of_limit",
            "reasons",
            "state",
        ],
    },
    // The analyzer reads 21 % O₂: air, not flue gas.
    Case {
        boiler: "air",
        state: "running",
        reasons: "indirect:o2_at_or_above_21",
        fields: &[
            "coverage",
            "estimated",
            "eta_direct",
            "exhaust_c_mean",
            "fuel_in_gj",
            "grade",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "o2_mean",
            "out_of_limit",
            "reasons",
            "state",
        ],
    },
    // Coal before its first lab record: no heat input known, no method.
    Case {
        boiler: "nolab",
        state: "running",
        reasons: "no_fuel_record",
        fields: &[
            "coverage",
            "estimated",
            "exhaust_c_mean",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "o2_mean",
            "out_of_limit",
            "reasons",
            "state",
        ],
    },
    // The fuel meter does not answer: the indirect method alone.
    Case {
        boiler: "nofuel",
        state: "partial",
        reasons: "direct:no_fuel_data",
        fields: &[
            "alpha",
            "coverage",
            "estimated",
            "eta_indirect",
            "exhaust_c_mean",
            "grade",
            "heat_out_gj",
            "load_pct",
            "methods_disagree",
            "o2_mean",
            "out_of_limit",
            "q2",
            "q3",
            "q4",
            "q5",
            "q6",
            "reasons",
            "state",
        ],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_no_number_for_the_method_it_breaks_and_says_why() {
    let influx = Influxd::with_database(DB).await;
    // Two days ahead in the site's zone: no lab record is in force yet.
    let later = jiff::Timestamp::now()
        .in_tz("Asia/Shanghai")
        .expect("zone")
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("date");
    let mut site = Site::new("BAD", "boiler house with problems").timezone("Asia/Shanghai");
    let mut boilers = String::new();
    let mut unit = 0;
    let mut next = || {
        unit += 1;
        unit
    };
    for case in &CASES {
        let b = case.boiler;
        if b == "nolab" {
            site = site
                .meter(meter("nolab-coal", "coal", "coal_f64", 1, next()))
                .meter(meter("nolab-heat", "heat", "heat_f64", 3, next()))
                .meter(meter("nolab-flue", "coal", "flue_gas_analyzer", 3, next()));
            boilers.push_str(&coal_hot_water(b, &later.to_string()));
            continue;
        }
        // The fuel meter that never answers sits alone on its endpoint, so
        // its timeouts cost the other meters nothing.
        let gas = if b == "nofuel" {
            modbus("nofuel-gas", "natural_gas", "gas_f64", "down", 1)
        } else {
            meter(&format!("{b}-gas"), "natural_gas", "gas_f64", 1, next())
        };
        site = site.meter(gas).meter(meter(
            &format!("{b}-steam"),
            "steam",
            "steam_flow_computer",
            3,
            next(),
        ));
        if b == "absent" {
            boilers.push_str(&gas_steam(b, ""));
            continue;
        }
        let mut flue = meter(
            &format!("{b}-flue"),
            "natural_gas",
            "flue_gas_analyzer",
            3,
            next(),
        );
        if b == "air" {
            // 21.0 served bit for bit: not a stuck analyzer for this test.
            flue = flue.keys("[meters.rules.o2_pct]\nfrozen_after = 1000000");
        }
        site = site.meter(flue);
        boilers.push_str(&gas_steam(b, &analyzer_keys(b, None)));
    }
    let toml = main_toml(&influx)
        .endpoint("down", "timeout_ms = 300")
        .section(
            "simulator",
            "faults = [{ meter = \"stuck-flue\", fault = \"frozen\" }, \
             { meter = \"nofuel-gas\", fault = \"no_response\" }]",
        )
        .site("bad.toml", format!("{site}{boilers}"));
    // The ids are known once the configuration is loaded.
    let config = toml.write().load();
    let id = |name: &str| crate::support::meter_id(&config, name);
    let o2 = config
        .profile_of(id("air-flue"))
        .point_index("o2_pct")
        .expect("o2_pct");
    let options = SimOptions {
        loads: vec![(id("off-steam"), LoadShape::constant(0.0, 500.0))],
        values: vec![(id("air-flue"), o2, 21.0)],
        ..SimOptions::default()
    };
    let mut gw = TestGateway::prepare(&toml, options).await;
    assert_eq!(gw.config.meters.len(), config.meters.len());
    assert!(!gw.sim.boiler("off").expect("off simulated").running);
    assert_eq!(
        gw.sim.rate_at(id("off-gas"), 0.0),
        0.0,
        "an off boiler burns nothing"
    );
    assert_eq!(gw.sim.value_at(id("air-flue"), o2, 0.0), 21.0);

    // 25 s before the first window: the stuck analyzer's first 19 polls are
    // still good (frozen_after = 20), so the windows checked have none.
    let names: Vec<&str> = CASES.iter().map(|c| c.boiler).collect();
    let first = run_windows(&mut gw, &influx, &names, 25).await;

    for case in &CASES {
        let b = case.boiler;
        let t = points(&influx, b, first).await;
        for row in &t.rows {
            assert_eq!(fields(&t, row), set(case.fields), "{b}: fields of {row:?}");
            assert!(set(case.fields).is_superset(&set(&ALWAYS)));
            assert_eq!(text(&t, row, "state"), case.state, "{b}: {row:?}");
            assert_eq!(text(&t, row, "reasons"), case.reasons, "{b}: {row:?}");
            assert_eq!(text(&t, row, "out_of_limit"), "", "{b}");
            assert_eq!(row[t.col("estimated")], Value::Bool(false), "{b}");
        }
    }
    // What the numbers there are say.
    let off = points(&influx, "off", first).await;
    for row in &off.rows {
        assert_eq!(num(&off, row, "fuel_in_gj"), 0.0);
        assert_eq!(num(&off, row, "heat_out_gj"), 0.0);
        assert_eq!(num(&off, row, "load_pct"), 0.0);
        near("off: O₂ of air", num(&off, row, "o2_mean"), 20.9, 0.02);
    }
    let air = points(&influx, "air", first).await;
    for row in &air.rows {
        assert_eq!(num(&air, row, "o2_mean"), 21.0);
        near(
            "air: eta_direct",
            num(&air, row, "eta_direct"),
            hand_gas(1.7).eta(),
            0.5,
        );
    }
    let nofuel = points(&influx, "nofuel", first).await;
    for row in &nofuel.rows {
        near(
            "nofuel: eta_indirect",
            num(&nofuel, row, "eta_indirect"),
            hand_gas(1.7).eta(),
            0.03,
        );
    }
    for b in ["stuck", "absent"] {
        let t = points(&influx, b, first).await;
        for row in &t.rows {
            near(
                &format!("{b}: eta_direct"),
                num(&t, row, "eta_direct"),
                hand_gas(1.7).eta(),
                0.5,
            );
        }
    }
    // One point per boiler in every window, and nothing else.
    for k in 0..WINDOWS {
        let at = first + 60 * k;
        let n = influx
            .count(
                DB,
                &format!("SELECT count(state) FROM boiler WHERE time = {at}s"),
            )
            .await;
        assert_eq!(n, CASES.len() as u64, "boiler points at {at}");
    }
}
