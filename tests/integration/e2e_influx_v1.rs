//! End to end against real services: our simulator serves four meters of
//! different profiles, the whole gateway (poller, encoder, sink) runs with
//! a configuration loaded from TOML, and a real InfluxDB 1.x must then hold
//! exactly one point per meter per polled slot, with the right tags, whole
//! second slot timestamps, and every value equal to what the simulator's
//! closed-form physics says the meter held at that slot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use emgate::config::load::from_parts;
use emgate::model::MeterId;
use emgate::sim::Simulator;
use emgate::stats::Stats;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

const DB: &str = "e2e";
const SITE: &str = "E3501020001";

fn site_file() -> String {
    format!(
        r#"
[site]
id = "{SITE}"
name = "Minjiang Textile (test)"

[[meters]]
id = "e-main"
energy = "electricity"
level = 1
profile = "acrel_dtsd1352"
endpoint = "dtu"
unit_id = 1
poll_interval_secs = 1
pt = 10.0
ct = 40.0

[[meters]]
id = "e-line1"
energy = "electricity"
level = 2
profile = "eastron_sdm630"
endpoint = "dtu"
unit_id = 2
poll_interval_secs = 1

[[meters]]
id = "g-boiler"
energy = "natural_gas"
level = 1
profile = "gas_flow_computer"
endpoint = "dtu"
unit_id = 3
poll_interval_secs = 1

[[meters]]
id = "s-main"
energy = "steam"
level = 1
profile = "steam_flow_computer"
endpoint = "dtu"
unit_id = 4
poll_interval_secs = 1
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_slots_land_in_influxdb_exactly() {
    let influx = Influxd::start();
    influx.create_database(DB).await;
    let port = crate::support::free_port();
    let data = tempfile::tempdir().expect("tempdir");
    let main = format!(
        r#"
# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "e2e"
data_dir = {data:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 3
flush_interval_ms = 200
gzip = true

[[endpoints]]
id = "dtu"
host = "127.0.0.1"
port = {port}
timeout_ms = 1000
"#,
        url = influx.url(),
        data = data.path().display().to_string()
    );
    let config = Arc::new(
        from_parts(
            &main,
            &[("site.toml", &site_file())],
            emgate::profiles::load::builtin(),
        )
        .expect("valid config"),
    );
    let stop_sim = CancellationToken::new();
    let sim = Simulator::start(&config, stop_sim.clone())
        .await
        .expect("simulator");

    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(emgate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    // At least three slots of the four meters; bounded so a stall fails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Stats::get(&stats.readings) < 12 {
        assert!(tokio::time::Instant::now() < deadline, "gateway stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let summary = gateway.await.expect("join").expect("gateway");
    stop_sim.cancel();

    let readings = Stats::get(&stats.readings);
    assert_eq!(summary.lines_written, readings, "every reading written");
    assert_eq!(summary.lines_rejected + summary.lines_left_in_spool, 0);

    let answer = influx.query(DB, "SELECT * FROM reading").await;
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column name"))
        .collect();
    let rows = series["values"].as_array().expect("rows");
    assert_eq!(rows.len() as u64, readings, "exactly one point per reading");
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("column {name} in {columns:?}"))
    };

    let mut slots: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut values_checked = 0;
    for row in rows {
        let meter_id = row[col("meter")].as_str().expect("meter tag");
        let (index, meter) = config
            .meters
            .iter()
            .enumerate()
            .find(|(_, m)| m.id == meter_id)
            .expect("known meter");
        assert_eq!(row[col("site")], Value::from(SITE));
        assert_eq!(row[col("energy")], Value::from(meter.energy.as_str()));
        assert_eq!(row[col("level")], Value::from(meter.level.as_str()));
        assert_eq!(row[col("q")], Value::from(0), "all good: {row:?}");
        assert!(row[col("lag_ms")].as_i64().expect("lag_ms") >= 0);
        let slot = row[col("time")].as_i64().expect("epoch seconds");
        assert!(
            slots.entry(meter_id.to_owned()).or_default().insert(slot),
            "duplicate slot"
        );
        let profile = config.profile_of(MeterId(index as u32));
        for (p, point) in profile.points.iter().enumerate() {
            let want = sim.value_at(MeterId(index as u32), p, slot as f64);
            let got = &row[col(&point.name)];
            assert_eq!(
                got.as_f64(),
                Some(want),
                "{meter_id} {} at {slot}: influx {got}, simulator {want}",
                point.name
            );
            values_checked += 1;
        }
    }
    assert!(values_checked >= 12 * 5, "checked {values_checked} values");
    // Slots are whole seconds, consecutive for every meter (no gap, no duplicate).
    assert_eq!(slots.len(), 4, "four meters");
    for (meter, s) in &slots {
        let first = *s.first().expect("slot");
        let last = *s.last().expect("slot");
        assert_eq!(
            (last - first + 1) as usize,
            s.len(),
            "{meter}: consecutive slots {s:?}"
        );
    }
    // The count InfluxQL gives agrees with the rows.
    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(count, readings);
}
