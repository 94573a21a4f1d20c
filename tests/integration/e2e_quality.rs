//! Simulator faults through the whole gateway into a real InfluxDB 1.x: the
//! right quality bits and `q_detail` reasons land on the right points, the
//! good meters beside them stay good, and the validator's counters agree.
//!
//! Faults: `counter_reset` (counters restart from zero: BACKWARDS on the
//! counter points, values still written), `sentinel` (SENTINEL, no values),
//! `exception` (EXCEPTION, no values), `no_response` (TIMEOUT, no values).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use emgate::config::SimFault;
use emgate::config::load::from_parts;
use emgate::model::{MeterId, Quality};
use emgate::sim::Simulator;
use emgate::stats::Stats;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

const DB: &str = "quality";

const SITE: &str = r#"
[site]
id = "E1"
name = "quality test"

[[meters]]
id = "good"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "a"
unit_id = 1
poll_interval_secs = 1

[[meters]]
id = "reset"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "a"
unit_id = 2
poll_interval_secs = 1

[[meters]]
id = "sentinel"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "a"
unit_id = 3
poll_interval_secs = 1

[[meters]]
id = "exception"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "a"
unit_id = 4
poll_interval_secs = 1

[[meters]]
id = "silent"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "b"
unit_id = 1
poll_interval_secs = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_carry_the_right_bits_into_influxdb() {
    let influx = Influxd::start();
    influx.create_database(DB).await;
    let data = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (crate::support::free_port(), crate::support::free_port());
    let main = format!(
        r#"
# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "quality"
data_dir = {data:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 10
flush_interval_ms = 200

[[endpoints]]
id = "a"
host = "127.0.0.1"
port = {port_a}
timeout_ms = 300

[[endpoints]]
id = "b"
host = "127.0.0.1"
port = {port_b}
timeout_ms = 300
"#,
        url = influx.url(),
        data = data.path().display().to_string()
    );
    let config = Arc::new(
        from_parts(
            &main,
            &[("site.toml", SITE)],
            emgate::profiles::load::builtin(),
        )
        .expect("valid config"),
    );
    let id = |name: &str| {
        MeterId(
            config
                .meters
                .iter()
                .position(|m| m.id == name)
                .expect("meter") as u32,
        )
    };
    let stop_sim = CancellationToken::new();
    let sim = Simulator::start(&config, stop_sim.clone())
        .await
        .expect("simulator");
    sim.set_fault(id("sentinel"), Some(SimFault::Sentinel));
    sim.set_fault(id("exception"), Some(SimFault::Exception));
    sim.set_fault(id("silent"), Some(SimFault::NoResponse));

    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(emgate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    let wait_readings = |n: u64| {
        let stats = Arc::clone(&stats);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while Stats::get(&stats.readings) < n {
                assert!(tokio::time::Instant::now() < deadline, "gateway stalled");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Two good rounds for the reset meter, then its counters restart from 0.
    wait_readings(10).await;
    sim.set_fault(id("reset"), Some(SimFault::CounterReset));
    let readings_at_reset = Stats::get(&stats.readings);
    wait_readings(readings_at_reset + 15).await;
    shutdown.cancel();
    let summary = gateway.await.expect("join").expect("gateway");
    stop_sim.cancel();
    let readings = Stats::get(&stats.readings);
    assert_eq!(summary.lines_written, readings);

    let answer = influx.query(DB, "SELECT * FROM reading").await;
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("name"))
        .collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).expect("column");
    let rows = series["values"].as_array().expect("rows");
    assert_eq!(
        rows.len() as u64,
        readings,
        "every reading written, flagged or not"
    );

    let mut by_meter: BTreeMap<String, Vec<&Vec<Value>>> = BTreeMap::new();
    for row in rows {
        let row = row.as_array().expect("row");
        by_meter
            .entry(row[col("meter")].as_str().expect("meter").to_owned())
            .or_default()
            .push(row);
    }
    let q = |row: &Vec<Value>| row[col("q")].as_u64().expect("q");
    let detail = |row: &Vec<Value>| row[col("q_detail")].as_str().unwrap_or("").to_owned();

    for row in &by_meter["good"] {
        assert_eq!(q(row), 0, "good meter stays good: {row:?}");
        assert!(row[col("volume_m3")].is_f64());
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
    let count = |bit: Quality| {
        let i = Quality::REASONS
            .iter()
            .position(|(b, _)| *b == bit)
            .expect("bit");
        Stats::get(&stats.quality_counts[i])
    };
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
    assert!(data.path().join("validation.state").is_file());
}

/// A restart in the middle of a rollover: the gateway stops just before a
/// water meter's counter wraps at 42 949 672.96 m³ and starts again after
/// it. The validator's checkpoint carries the last good value across the
/// restart, so the first reading after it is recognised as a rollover (bit
/// 16), not mistaken for a fresh start, and nothing is flagged backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_the_middle_of_a_rollover_keeps_it() {
    use emgate::sim::{EPOCH, LoadShape, SimOptions};

    let influx = Influxd::start();
    influx.create_database(DB).await;
    let data = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    let main = format!(
        r#"
# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "rollover"
data_dir = {data:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 1
flush_interval_ms = 100

[[endpoints]]
id = "a"
host = "127.0.0.1"
port = {port}
"#,
        url = influx.url(),
        data = data.path().display().to_string()
    );
    let site = r#"
[site]
id = "E1"
name = "rollover test"

[[meters]]
id = "wrap"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "a"
unit_id = 1
poll_interval_secs = 1
"#;
    let config = Arc::new(
        from_parts(
            &main,
            &[("site.toml", site)],
            emgate::profiles::load::builtin(),
        )
        .expect("valid config"),
    );
    // 36 m³/h = 0.01 m³/s: 10 m³ per 1000 s. At EPOCH + 1000 s the register
    // reads 42 949 667.96 (5 m³ before the wrap), at EPOCH + 2000 s it reads 5.00.
    let rollover = 42_949_672.96;
    let stop_sim = CancellationToken::new();
    let sim = Simulator::start_with(
        &config,
        stop_sim.clone(),
        SimOptions {
            loads: vec![(MeterId(0), LoadShape::constant(36.0, rollover - 15.0))],
            frozen_time: Some(EPOCH + 1000.0),
        },
    )
    .await
    .expect("simulator");
    assert_eq!(sim.value_at(MeterId(0), 0, EPOCH + 1000.0), 42_949_667.96);
    assert_eq!(sim.value_at(MeterId(0), 0, EPOCH + 2000.0), 5.0);

    let run = |until: u64| {
        let config = Arc::clone(&config);
        async move {
            let stats = Arc::new(Stats::default());
            let shutdown = CancellationToken::new();
            let gw = tokio::spawn(emgate::app::run(
                Arc::clone(&config),
                Arc::clone(&stats),
                shutdown.clone(),
            ));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while Stats::get(&stats.readings) < until {
                assert!(tokio::time::Instant::now() < deadline, "gateway stalled");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            shutdown.cancel();
            gw.await.expect("join").expect("gateway");
            stats
        }
    };
    let first = run(2).await;
    sim.freeze_time(Some(EPOCH + 2000.0));
    let second = run(2).await;
    stop_sim.cancel();

    let rows = influx
        .rows(DB, "SELECT q, q_detail, volume_m3 FROM reading")
        .await;
    let total = Stats::get(&first.readings) + Stats::get(&second.readings);
    assert_eq!(rows.len() as u64, total);
    let before: Vec<_> = rows
        .iter()
        .filter(|r| r[3].as_f64() == Some(42_949_667.96))
        .collect();
    let after: Vec<_> = rows.iter().filter(|r| r[3].as_f64() == Some(5.0)).collect();
    assert_eq!(before.len() as u64, Stats::get(&first.readings), "{rows:?}");
    assert_eq!(after.len() as u64, Stats::get(&second.readings), "{rows:?}");
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
