//! An InfluxDB outage while the gateway runs: the simulator serves four
//! meters polled every second, the whole gateway runs in-process with its
//! spool in a temporary data directory, and the test stops the real
//! `influxd` for several slots and starts it again on the same port and data
//! directory. Afterwards InfluxDB must hold exactly one point per reading
//! the gateway produced: every meter's slots form one consecutive run that
//! spans the outage, and every value equals the simulator's physics at its
//! slot. This is the issue's promise that an outage loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emgate::config::load::from_parts;
use emgate::model::MeterId;
use emgate::sim::Simulator;
use emgate::stats::Stats;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

const DB: &str = "outage";
const SITE: &str = "E3501020009";
/// Slots (of four meters each) produced while InfluxDB is down.
const OUTAGE_SLOTS: u64 = 5;

fn site_file() -> String {
    let meters = [
        (
            "e-main",
            "electricity",
            "acrel_dtsd1352",
            "\npt = 10.0\nct = 40.0",
        ),
        ("e-line1", "electricity", "eastron_sdm630", ""),
        ("g-boiler", "natural_gas", "gas_flow_computer", ""),
        ("w-main", "water", "water_meter", ""),
    ];
    let mut s = format!("[site]\nid = \"{SITE}\"\nname = \"outage test\"\n");
    for (i, (id, energy, profile, extra)) in meters.iter().enumerate() {
        let _ = write!(
            s,
            "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = 1\nprofile = \"{profile}\"\n\
             endpoint = \"dtu\"\nunit_id = {}\npoll_interval_secs = 1{extra}\n",
            i + 1
        );
    }
    s
}

/// Waits (checking every 50 ms) until `done` holds; panics with `what` and
/// the counters after `limit`.
async fn wait_for(stats: &Stats, limit: Duration, what: &str, done: impl Fn(&Stats) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(stats) {
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}; counters: readings={} spooled={} written={} retries={} spool_records={}",
            Stats::get(&stats.readings),
            Stats::get(&stats.lines_spooled),
            Stats::get(&stats.lines_written),
            Stats::get(&stats.write_retries),
            Stats::get(&stats.spool_records),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_outage_loses_no_slot() {
    let mut influx = Influxd::start();
    influx.create_database(DB).await;
    let port = crate::support::free_port();
    let data = tempfile::tempdir().expect("tempdir");
    let main = format!(
        r#"
# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "outage"
data_dir = {data:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 10
flush_interval_ms = 200
timeout_ms = 2000
retry_initial_ms = 100
retry_max_ms = 500

[spool]
max_bytes = 16777216
segment_bytes = 65536

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
    let meters = config.meters.len() as u64;
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

    // Some slots delivered while InfluxDB is up.
    wait_for(&stats, Duration::from_secs(30), "2 slots written", |s| {
        Stats::get(&s.lines_written) >= 2 * meters
    })
    .await;

    // The outage: several slots polled while writes are refused.
    let stopped_at = unix_now();
    tokio::task::block_in_place(|| influx.stop());
    let readings_at_stop = Stats::get(&stats.readings);
    let written_at_stop = Stats::get(&stats.lines_written);
    wait_for(
        &stats,
        Duration::from_secs(30),
        "slots polled during the outage and a failed write",
        |s| {
            Stats::get(&s.readings) >= readings_at_stop + OUTAGE_SLOTS * meters
                && Stats::get(&s.write_retries) > 0
        },
    )
    .await;
    let backlog = Stats::get(&stats.lines_spooled) - written_at_stop;
    assert!(
        backlog >= OUTAGE_SLOTS * meters,
        "the spool holds the outage's lines: {backlog}"
    );

    tokio::task::block_in_place(|| influx.start_again());
    let restarted_at = unix_now();
    let readings_at_restart = Stats::get(&stats.readings);
    // Caught up: everything spooled is written, including two slots polled
    // after the restart.
    wait_for(
        &stats,
        Duration::from_mins(1),
        "the backlog to drain after the restart",
        |s| {
            let spooled = Stats::get(&s.lines_spooled);
            spooled >= readings_at_restart + 2 * meters && Stats::get(&s.lines_written) == spooled
        },
    )
    .await;
    shutdown.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(30), gateway)
        .await
        .expect("the gateway stops within 30 s of the shutdown")
        .expect("join")
        .expect("gateway");
    stop_sim.cancel();

    let readings = Stats::get(&stats.readings);
    assert_eq!(summary.lines_rejected, 0);
    assert_eq!(summary.lines_left_in_spool, 0);
    assert_eq!(
        Stats::get(&stats.lines_spooled),
        readings,
        "every reading spooled"
    );
    assert_eq!(
        Stats::get(&stats.lines_written),
        readings,
        "every reading written"
    );
    assert_eq!(Stats::get(&stats.lines_dropped), 0);
    assert_eq!(Stats::get(&stats.spool_records), 0, "spool drained");

    // Exactly one point per reading.
    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(count, readings, "points in InfluxDB == readings");

    // Every meter: one consecutive run of slots from before the outage to
    // after it.
    let slots = influx.meter_slots(DB, "reading", "q").await;
    assert_eq!(slots.len() as u64, meters, "every meter: {slots:?}");
    for (meter, s) in &slots {
        let first = *s.first().expect("slot");
        let last = *s.last().expect("slot");
        assert_eq!(
            (last - first + 1) as usize,
            s.len(),
            "{meter}: consecutive slots, no gap: {s:?}"
        );
        assert!(
            first < stopped_at && last > restarted_at,
            "{meter}: slots {first}..={last} span the outage {stopped_at}..{restarted_at}"
        );
    }

    // Every value is the simulator's at its slot, and every reading is good.
    let answer = influx.query(DB, "SELECT * FROM reading").await;
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column name"))
        .collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("column {name} in {columns:?}"))
    };
    let rows = series["values"].as_array().expect("rows");
    assert_eq!(rows.len() as u64, readings);
    let mut values_checked = 0u64;
    let mut seen: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for row in rows {
        let meter_id = row[col("meter")].as_str().expect("meter tag");
        let index = config
            .meters
            .iter()
            .position(|m| m.id == meter_id)
            .expect("known meter");
        assert_eq!(row[col("site")], Value::from(SITE));
        assert_eq!(row[col("q")], Value::from(0), "all good: {row:?}");
        let slot = row[col("time")].as_i64().expect("epoch seconds");
        assert!(seen.entry(meter_id).or_default().insert(slot), "duplicate");
        let id = MeterId(index as u32);
        for (p, point) in config.profile_of(id).points.iter().enumerate() {
            let want = sim.value_at(id, p, slot as f64);
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
    assert!(
        values_checked >= readings,
        "checked {values_checked} values"
    );
}
