//! A whole simulated day through the gateway's own pipeline stages
//! (validation, aggregation, line-protocol encoding) into a real InfluxDB 1.x,
//! checked against the simulator's counters, which are exact integrals of
//! their load:
//!
//! * summing `consumption` over the day's 15-minute and hourly windows, and
//!   the day window itself, equals the counter difference across the local
//!   day (to floating-point rounding), and the simulator's true consumption to
//!   within one register count at each end;
//! * `site_consumption` equals the sum of the site's level-1 meters (the
//!   sub-meter is left out, the exported energy deducted);
//! * `kgce` equals `amount` × the coefficient (electricity equivalent value,
//!   natural gas by measured calorific value, steam by IF97 enthalpy of the
//!   window's mean pressure and temperature);
//! * in Europe/Berlin the day of the autumn clock change has 25 hours and
//!   100 quarter-hour windows.
//!
//! The readings are generated for every minute of a past day from
//! `Simulator::value_at` (the same values the Modbus server would serve),
//! instead of waiting a day for the pollers.

use std::sync::Arc;

use emgate::app::stages::{AggregationStage, ValidationStage};
use emgate::config::OutputConfig;
use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
use emgate::sinks::LineChunk;
use emgate::sinks::aggregates::AggregateEncoder;
use emgate::sinks::encode::ReadingEncoder;
use emgate::sinks::influx::Writer;
use emgate::telemetry::Stats;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::iapws::{Ask, iapws};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::Sim;

const DB: &str = "aggregate";

/// 2026-10-25T00:00:00+08:00.
const SHANGHAI_DAY: i64 = 1_792_857_600;
/// 2026-10-25T00:00:00+02:00 (CEST); the clocks go back at 03:00 that night.
const BERLIN_DAY: i64 = 1_792_879_200;
/// 2026-10-26T00:00:00+01:00 (CET): 25 hours later.
const BERLIN_NEXT: i64 = BERLIN_DAY + 25 * 3600;

/// An enterprise on Shanghai time with every energy, and one on Berlin time
/// with a water meter; every meter read once a minute.
fn gateway(influx: &Influxd) -> GatewayToml {
    let meter = |id: &str, energy: &str, profile: &str, unit: usize| {
        modbus(id, energy, profile, "a", unit).every_secs(60)
    };
    let e1 = Site::new("E1", "Shanghai-time enterprise")
        .timezone("Asia/Shanghai")
        .meter(meter("e1-grid", "electricity", "eastron_sdm630", 1))
        .meter(
            meter("e1-pv-export", "electricity", "eastron_sdm630", 2).keys("role = \"exported\""),
        )
        .meter(meter("e1-workshop", "electricity", "eastron_sdm630", 3).level(2))
        .meter(
            meter("e1-gas", "natural_gas", "gas_flow_computer", 4).keys("lhv_kj_per_m3 = 36000.0"),
        )
        .meter(meter("e1-steam", "steam", "steam_flow_computer", 5));
    let b1 = Site::new("B1", "Berlin-time enterprise")
        .timezone("Europe/Berlin")
        .meter(meter("b1-water", "water", "water_meter", 6));
    GatewayToml::new("agg")
        .influx_v1(&influx.url(), DB, "")
        // The day replayed is a month old.
        .section("validation", "max_lateness_secs = 100_000_000")
        .section(
            "aggregation",
            "windows = [\"15m\", \"1h\", \"1d\"]\nallowed_lateness_secs = 0",
        )
        .endpoint("a", "")
        .site("e1.toml", e1)
        .site("b1.toml", b1)
}

/// Reads `rows` of an InfluxQL query as (time seconds, columns...).
async fn rows(influx: &Influxd, q: &str) -> Vec<Vec<Value>> {
    influx.rows(DB, q).await
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_adds_up_in_influxdb() {
    let influx = Influxd::with_database(DB).await;
    let files = gateway(&influx).write();
    let config = Arc::new(files.load());
    let sim = Sim::start(&config).await;
    let stats = Arc::new(Stats::default());
    let mut validation = ValidationStage::new(&config, Arc::clone(&stats));
    let mut aggregation = AggregationStage::new(&config, Arc::clone(&stats));
    let mut enc = ReadingEncoder::new(&config);
    let agg_enc = AggregateEncoder::new(&config);
    let OutputConfig::Influx(influx_cfg) = &config.output else {
        panic!("influx output expected");
    };
    let writer = Writer::new(influx_cfg).expect("writer");

    // Every minute from an hour before the earlier day start to a quarter
    // past the later day end, all meters in one batch per minute.
    let (from, to) = (SHANGHAI_DAY - 3600, BERLIN_NEXT + 900);
    let mut batch = ReadingBatch::default();
    let mut chunk = LineChunk::default();
    let mut values = Vec::new();
    let mut t = from;
    while t <= to {
        batch.clear();
        for (m, meter) in config.meters.iter().enumerate() {
            let id = MeterId(u32::try_from(m).expect("few meters"));
            let n = config.profiles[meter.profile.index()].points.len();
            values.clear();
            #[allow(clippy::cast_precision_loss)]
            values.extend(
                (0..n).map(|p| PointValue::new(sim.value_at(id, p, t as f64), Quality::GOOD)),
            );
            batch.push(id, t, 0, &values);
        }
        validation.process(&mut batch);
        aggregation.process(&mut batch, validation.continuous());
        enc.encode(&batch, &mut chunk);
        agg_enc.encode(aggregation.output(), &mut chunk);
        if chunk.lines >= 5000 || t + 60 > to {
            writer.write(&chunk.body, chunk.lines).await.expect("write");
            chunk.body.clear();
            chunk.lines = 0;
        }
        t += 60;
    }
    assert_eq!(
        validation_flags(&stats),
        0,
        "the simulated values are all good"
    );

    let id = |name: &str| {
        MeterId(
            u32::try_from(
                config
                    .meters
                    .iter()
                    .position(|m| m.id == name)
                    .expect("meter"),
            )
            .expect("few"),
        )
    };
    let counter_of = |name: &str| {
        let m = &config.meters[id(name).index()];
        m.consumption.expect("consumption counter")
    };
    #[allow(clippy::cast_precision_loss)]
    let truth = |name: &str, t0: i64, t1: i64| {
        let p = counter_of(name);
        sim.value_at(id(name), p, t1 as f64) - sim.value_at(id(name), p, t0 as f64)
    };
    let day_q = |meter: &str, window: &str, t0: i64, t1: i64| {
        format!(
            "SELECT sum(amount), count(amount) FROM consumption WHERE meter = '{meter}' \
             AND \"window\" = '{window}' AND time >= {t0}s AND time < {t1}s"
        )
    };

    // Per meter: 15m, 1h and 1d windows over the local day add up to the counter.
    for (meter, t0, t1, quarters) in [
        ("e1-grid", SHANGHAI_DAY, SHANGHAI_DAY + 86_400, 96),
        ("e1-pv-export", SHANGHAI_DAY, SHANGHAI_DAY + 86_400, 96),
        ("e1-workshop", SHANGHAI_DAY, SHANGHAI_DAY + 86_400, 96),
        ("e1-gas", SHANGHAI_DAY, SHANGHAI_DAY + 86_400, 96),
        ("e1-steam", SHANGHAI_DAY, SHANGHAI_DAY + 86_400, 96),
        ("b1-water", BERLIN_DAY, BERLIN_NEXT, 100),
    ] {
        let want = truth(meter, t0, t1);
        assert!(want > 0.0, "{meter}: the simulated load is not zero");
        for (window, n) in [("15m", quarters), ("1h", quarters / 4), ("1d", 1)] {
            let r = rows(&influx, &day_q(meter, window, t0, t1)).await;
            assert_eq!(r.len(), 1, "{meter} {window}: {r:?}");
            assert_eq!(r[0][2].as_u64(), Some(n), "{meter} {window}: window count");
            let got = f(&r[0][1]);
            assert!(
                (got - want).abs() <= 1e-9 * want.abs(),
                "{meter} {window}: sum {got} vs counter difference {want}"
            );
        }
        // And the true (unquantised) consumption within one count per end.
        #[allow(clippy::cast_precision_loss)]
        let exact = sim.consumption(id(meter), t0 as f64, t1 as f64);
        let count = config.profiles[config.meters[id(meter).index()].profile.index()].points
            [counter_of(meter)]
        .scale
        .abs()
        .max(1e-6);
        assert!(
            (exact - want).abs() <= 2.0 * count.max(want.abs() * 1e-6),
            "{meter}: counter difference {want} vs true consumption {exact}"
        );
    }

    // Every consumption window: full coverage, not estimated, and the
    // electricity kgce is amount × 0.1229 exactly.
    let all = rows(
        &influx,
        &format!(
            "SELECT amount, kgce, coverage, estimated FROM consumption WHERE meter = 'e1-grid' \
             AND time >= {SHANGHAI_DAY}s AND time < {}s",
            SHANGHAI_DAY + 86_400
        ),
    )
    .await;
    assert_eq!(all.len(), 96 + 24 + 1);
    for r in &all {
        // Columns: time, amount, kgce, coverage, estimated.
        assert_eq!(f(&r[3]), 1.0, "coverage {r:?}");
        assert_eq!(r[4], Value::Bool(false), "estimated {r:?}");
        assert!(f(&r[1]) > 0.0, "amount {r:?}");
        assert_eq!(f(&r[2]), f(&r[1]) * 0.1229, "kgce {r:?}");
    }
    let grid_day = rows(
        &influx,
        &format!("SELECT amount, kgce FROM consumption WHERE meter = 'e1-grid' AND \"window\" = '1d' AND time = {SHANGHAI_DAY}s"),
    )
    .await;
    let (amount, kgce) = (f(&grid_day[0][1]), f(&grid_day[0][2]));
    assert_eq!(kgce, amount * 0.1229);
    // Gas by its measured calorific value: 36 000 kJ/m3 ÷ 29 307.6 kJ/kgce.
    let gas_day = rows(
        &influx,
        &format!("SELECT amount, kgce FROM consumption WHERE meter = 'e1-gas' AND \"window\" = '1d' AND time = {SHANGHAI_DAY}s"),
    )
    .await;
    let (amount, kgce) = (f(&gas_day[0][1]), f(&gas_day[0][2]));
    assert!((kgce - amount * 36_000.0 / 29_307.6).abs() <= 1e-9 * kgce);
    // Steam by enthalpy of the hour's mean pressure and temperature.
    let steam = rows(
        &influx,
        &format!("SELECT amount, kgce, estimated FROM consumption WHERE meter = 'e1-steam' AND \"window\" = '1h' AND time = {SHANGHAI_DAY}s"),
    )
    .await;
    let means = rows(
        &influx,
        &format!("SELECT pressure_mpa_mean, temperature_c_mean FROM gauge_stats WHERE meter = 'e1-steam' AND \"window\" = '1h' AND time = {SHANGHAI_DAY}s"),
    )
    .await;
    // The simulated line is saturated steam (its thermometer reads at or
    // below T_sat): h'' of the mean pressure, by iapws; superheated steam
    // (more than 3 K above T_sat) would be h(p, T).
    let (p_abs, t) = (f(&means[0][1]) + 0.101_325, f(&means[0][2]));
    let ts = iapws(&[Ask::Tsat { p_abs }])[0];
    let h = if t > ts + 3.0 {
        iapws(&[Ask::H { p_abs, t_c: t }])[0]
    } else {
        iapws(&[Ask::Hx { p_abs, x: 1.0 }])[0]
    };
    let want = f(&steam[0][1]) * 1000.0 * (h - 84.0) / 1000.0 * 0.034_12;
    assert!(
        (f(&steam[0][2]) - want).abs() <= 2e-5 * want,
        "steam kgce {} vs {want}",
        f(&steam[0][2])
    );
    assert_eq!(steam[0][3], Value::Bool(false));

    // Site roll-up: grid − export, the level-2 workshop left out.
    let day = |meter: &str| truth(meter, SHANGHAI_DAY, SHANGHAI_DAY + 86_400);
    let site = rows(
        &influx,
        &format!(
            "SELECT amount, kgce, meters, coverage, exported_kgce FROM site_consumption WHERE site = 'E1' \
             AND energy = 'electricity' AND \"window\" = '1d' AND time = {SHANGHAI_DAY}s"
        ),
    )
    .await;
    assert_eq!(site.len(), 1);
    let want = day("e1-grid") - day("e1-pv-export");
    assert!(
        (f(&site[0][1]) - want).abs() <= 1e-9 * want.abs(),
        "site {site:?} vs {want}"
    );
    assert_eq!(site[0][3].as_u64(), Some(2));
    assert_eq!(f(&site[0][4]), 1.0);
    assert!((f(&site[0][5]) - day("e1-pv-export") * 0.1229).abs() <= 1e-9 * f(&site[0][5]));
    // Every quarter of the site equals grid − export of that quarter.
    let quarters = rows(
        &influx,
        &format!(
            "SELECT amount FROM site_consumption WHERE site = 'E1' AND energy = 'electricity' \
             AND \"window\" = '15m' AND time >= {SHANGHAI_DAY}s AND time < {}s",
            SHANGHAI_DAY + 86_400
        ),
    )
    .await;
    assert_eq!(quarters.len(), 96);
    let mut sum = 0.0;
    for q in &quarters {
        sum += f(&q[1]);
    }
    assert!((sum - want).abs() <= 1e-9 * want.abs());
    // Total in kgce: electricity + gas + steam of the day, per their own windows.
    let kgce_of = |r: &Vec<Vec<Value>>| f(&r[0][2]);
    let total = rows(
        &influx,
        &format!(
            "SELECT amount, kgce, meters FROM site_consumption WHERE site = 'E1' AND energy = 'total' \
             AND \"window\" = '1d' AND time = {SHANGHAI_DAY}s"
        ),
    )
    .await;
    let mut parts = 0.0;
    for energy in ["electricity", "natural_gas", "steam"] {
        let r = rows(
            &influx,
            &format!(
                "SELECT amount, kgce FROM site_consumption WHERE site = 'E1' AND energy = '{energy}' \
                 AND \"window\" = '1d' AND time = {SHANGHAI_DAY}s"
            ),
        )
        .await;
        parts += kgce_of(&r);
    }
    assert!(
        (kgce_of(&total) - parts).abs() <= 1e-9 * parts,
        "{total:?} vs {parts}"
    );
    assert_eq!(total[0][3].as_u64(), Some(4));

    // Berlin: the 25-hour day.
    let hours = rows(
        &influx,
        &format!(
            "SELECT count(amount) FROM consumption WHERE meter = 'b1-water' AND \"window\" = '1h' \
             AND time >= {BERLIN_DAY}s AND time < {BERLIN_NEXT}s"
        ),
    )
    .await;
    assert_eq!(hours[0][1].as_u64(), Some(25));
    sim.stop();
}

fn validation_flags(stats: &Stats) -> u64 {
    Stats::get(&stats.points_flagged)
}
