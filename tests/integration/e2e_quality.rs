//! Simulator faults through the whole gateway into a real InfluxDB 1.x: the
//! right quality bits and `q_detail` reasons land on the right points, the
//! good meters beside them stay good, and the validator's counters agree.
//!
//! Faults: `counter_reset` (counters restart from zero: BACKWARDS on the
//! counter points, values still written), `sentinel` (SENTINEL, no values),
//! `exception` (EXCEPTION, no values), `no_response` (TIMEOUT, no values).

use std::collections::BTreeMap;

use emgate::config::SimFault;
use emgate::model::{MeterId, Quality};
use emgate::sim::SimOptions;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::reason_count;
use crate::support::test_gateway::TestGateway;

const DB: &str = "quality";

fn site() -> Site {
    let water = |id: &str, endpoint: &str, unit: usize| {
        modbus(id, "water", "water_meter", endpoint, unit).level(2)
    };
    Site::new("E1", "quality test")
        .meter(modbus("good", "water", "water_meter", "a", 1))
        .meter(water("reset", "a", 2))
        .meter(water("sentinel", "a", 3))
        .meter(water("exception", "a", 4))
        .meter(water("silent", "b", 1))
}

/// Readings only into `influxd`, with `batching` keys, and endpoints.
fn gateway(id: &str, influx: &Influxd, batching: &str) -> GatewayToml {
    GatewayToml::new(id)
        .readings_only()
        .influx_v1(&influx.url(), DB, batching)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_carry_the_right_bits_into_influxdb() {
    let influx = Influxd::with_database(DB).await;
    let toml = gateway(
        "quality",
        &influx,
        "batch_size = 10\nflush_interval_ms = 200",
    )
    .endpoint("a", "timeout_ms = 300")
    .endpoint("b", "timeout_ms = 300")
    .site("site.toml", site());
    let mut gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    let id = |name: &str| gw.meter(name);
    gw.sim.set_fault(id("sentinel"), Some(SimFault::Sentinel));
    gw.sim.set_fault(id("exception"), Some(SimFault::Exception));
    gw.sim.set_fault(id("silent"), Some(SimFault::NoResponse));
    let reset = id("reset");
    gw.run();
    // Two good rounds for the reset meter, then its counters restart from 0.
    gw.wait_readings(10).await;
    gw.sim.set_fault(reset, Some(SimFault::CounterReset));
    let readings_at_reset = gw.readings();
    gw.wait_readings(readings_at_reset + 15).await;
    let summary = gw.stop().await;
    gw.sim.stop();
    let readings = gw.readings();
    let stats = gw.stats();
    assert_eq!(summary.lines_written, readings);

    let table = influx.table(DB, "SELECT * FROM reading").await;
    let col = |name: &str| table.col(name);
    let rows = &table.rows;
    assert_eq!(
        rows.len() as u64,
        readings,
        "every reading written, flagged or not"
    );

    let mut by_meter: BTreeMap<String, Vec<&Vec<Value>>> = BTreeMap::new();
    for row in rows {
        by_meter
            .entry(row[col("meter")].as_str().expect("meter").to_owned())
            .or_default()
            .push(row);
    }
    let q = |row: &Vec<Value>| row[col("q")].as_u64().expect("q");
    let detail = |row: &Vec<Value>| row[col("q_detail")].as_str().unwrap_or("").to_owned();

    for row in &by_meter["good"] {
        assert_eq!(q(row), 0, "good meter stays good: {row:?}");
        // A number (InfluxDB's JSON writes a whole float as `1234`, so not
        // `is_f64`), not the null of a flagged reading.
        assert!(row[col("volume_m3")].as_f64().is_some(), "{row:?}");
    }
    for row in &by_meter["sentinel"] {
        assert_eq!(q(row), u64::from(Quality::SENTINEL.0));
        assert_eq!(detail(row), "volume_m3:sentinel,flow_m3h:sentinel");
        assert!(row[col("volume_m3")].is_null(), "no value invented");
    }
    for row in &by_meter["exception"] {
        assert_eq!(q(row), u64::from(Quality::EXCEPTION.0));
        assert_eq!(detail(row), "volume_m3:exception,flow_m3h:exception");
        assert!(row[col("volume_m3")].is_null());
    }
    for row in &by_meter["silent"] {
        assert_eq!(q(row), u64::from(Quality::TIMEOUT.0));
        assert_eq!(detail(row), "volume_m3:timeout,flow_m3h:timeout");
    }
    // The reset meter: good until the reset, exactly one BACKWARDS reading on
    // the volume counter (the first one after the drop), good again after,
    // with the low restarted values still written.
    let reset_rows = &by_meter["reset"];
    let flagged: Vec<_> = reset_rows.iter().filter(|r| q(r) != 0).collect();
    assert_eq!(flagged.len(), 1, "one reset reading: {reset_rows:?}");
    assert_eq!(q(flagged[0]), u64::from(Quality::BACKWARDS.0));
    assert_eq!(detail(flagged[0]), "volume_m3:backwards");
    let volume_after = flagged[0][col("volume_m3")].as_f64().expect("value kept");
    let volume_before = reset_rows[0][col("volume_m3")].as_f64().expect("value");
    assert!(
        volume_after < volume_before,
        "{volume_after} < {volume_before}"
    );

    // The validator's counters saw the same.
    let count = |bit: Quality| reason_count(stats, bit);
    assert_eq!(count(Quality::BACKWARDS), 1);
    assert_eq!(
        count(Quality::SENTINEL),
        2 * by_meter["sentinel"].len() as u64
    );
    assert_eq!(
        count(Quality::EXCEPTION),
        2 * by_meter["exception"].len() as u64
    );
    assert_eq!(count(Quality::TIMEOUT), 2 * by_meter["silent"].len() as u64);
    // The checkpoint was written at shutdown.
    assert!(gw.files.data_dir().join("validation.state").is_file());
}

/// A restart in the middle of a rollover: the gateway stops just before a
/// water meter's counter wraps at 42 949 672.96 m³ and starts again after
/// it. The validator's checkpoint carries the last good value across the
/// restart, so the first reading after it is recognised as a rollover (bit
/// 16), not mistaken for a fresh start, and nothing is flagged backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_middle_of_a_rollover_keeps_it() {
    use emgate::sim::{EPOCH, LoadShape};

    let influx = Influxd::with_database(DB).await;
    let toml = gateway(
        "rollover",
        &influx,
        "batch_size = 1\nflush_interval_ms = 100",
    )
    .endpoint("a", "")
    .site(
        "site.toml",
        Site::new("E1", "rollover test").meter(modbus("wrap", "water", "water_meter", "a", 1)),
    );
    // 36 m³/h = 0.01 m³/s: 10 m³ per 1000 s. At EPOCH + 1000 s the register
    // reads 42 949 667.96 (5 m³ before the wrap), at EPOCH + 2000 s it reads 5.00.
    let rollover = 42_949_672.96;
    let options = SimOptions {
        loads: vec![(MeterId(0), LoadShape::constant(36.0, rollover - 15.0))],
        frozen_time: Some(EPOCH + 1000.0),
        ..SimOptions::default()
    };
    let mut gw = TestGateway::prepare(&toml, options).await;
    assert_eq!(
        gw.sim.value_at(MeterId(0), 0, EPOCH + 1000.0),
        42_949_667.96
    );
    assert_eq!(gw.sim.value_at(MeterId(0), 0, EPOCH + 2000.0), 5.0);

    // Two runs of the gateway, each until it has two readings.
    let mut readings = Vec::new();
    for frozen_at in [EPOCH + 1000.0, EPOCH + 2000.0] {
        gw.sim.freeze_time(Some(frozen_at));
        gw.run();
        gw.wait_readings(2).await;
        gw.stop().await;
        readings.push(gw.readings());
    }
    gw.sim.stop();
    let (first, second) = (readings[0], readings[1]);

    let rows = influx
        .rows(DB, "SELECT q, q_detail, volume_m3 FROM reading")
        .await;
    let total = first + second;
    assert_eq!(rows.len() as u64, total);
    let before: Vec<_> = rows
        .iter()
        .filter(|r| r[3].as_f64() == Some(42_949_667.96))
        .collect();
    let after: Vec<_> = rows.iter().filter(|r| r[3].as_f64() == Some(5.0)).collect();
    assert_eq!(before.len() as u64, first, "{rows:?}");
    assert_eq!(after.len() as u64, second, "{rows:?}");
    assert!(before.iter().all(|r| r[1] == 0), "{rows:?}");
    // First reading after the restart: the wrap, recognised from the restored state.
    assert_eq!(
        after[0][1],
        Value::from(u64::from(Quality::ROLLOVER.0)),
        "{rows:?}"
    );
    assert_eq!(after[0][2], Value::from("volume_m3:rollover"));
    // Then a frozen counter is just unchanged (no rate gauge rule configured): good.
    assert!(after[1..].iter().all(|r| r[1] == 0), "{rows:?}");
}
