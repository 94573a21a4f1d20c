//! An InfluxDB outage while the gateway runs: the simulator serves four
//! meters polled every second, the whole gateway runs in-process with its
//! spool in a temporary data directory, and the test stops the real
//! `influxd` for several slots and starts it again on the same port and data
//! directory. Afterwards InfluxDB must hold exactly one point per reading
//! the gateway produced: every meter's slots form one consecutive run that
//! spans the outage, and every value equals the simulator's physics at its
//! slot. This is the promise that an outage loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emgate::telemetry::Stats;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::{consecutive, timed};

const DB: &str = "outage";
const SITE: &str = "E3501020009";
/// Slots (of four meters each) produced while InfluxDB is down.
const OUTAGE_SLOTS: u64 = 5;

fn site() -> Site {
    Site::new(SITE, "outage test")
        .meter(
            modbus("e-main", "electricity", "acrel_dtsd1352", "dtu", 1)
                .keys("pt = 10.0\nct = 40.0"),
        )
        .meter(modbus("e-line1", "electricity", "eastron_sdm630", "dtu", 2))
        .meter(modbus(
            "g-boiler",
            "natural_gas",
            "gas_flow_computer",
            "dtu",
            3,
        ))
        .meter(modbus("w-main", "water", "water_meter", "dtu", 4))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_outage_loses_no_slot() {
    // Consecutive slots across the outage: no CPU-heavy test may make the
    // gateway miss one.
    let _timed = timed().await;
    let mut influx = Influxd::with_database(DB).await;
    let toml = GatewayToml::new("outage")
        .readings_only()
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 10\nflush_interval_ms = 200\ntimeout_ms = 2000\n\
             retry_initial_ms = 100\nretry_max_ms = 500",
        )
        .section("spool", "max_bytes = 16777216\nsegment_bytes = 65536")
        .endpoint("dtu", "timeout_ms = 1000")
        .site("site.toml", site());
    let mut gw = TestGateway::start(&toml).await;
    let meters = gw.config.meters.len() as u64;
    let stats = Arc::clone(gw.stats());

    // Some slots delivered while InfluxDB is up.
    gw.wait_for("2 slots written", Duration::from_secs(30), |s| {
        Stats::get(&s.lines_written) >= 2 * meters
    })
    .await;

    // The outage: several slots polled while writes are refused.
    let stopped_at = unix_now();
    tokio::task::block_in_place(|| influx.stop());
    let readings_at_stop = Stats::get(&stats.readings);
    let written_at_stop = Stats::get(&stats.lines_written);
    gw.wait_for(
        "slots polled during the outage and a failed write",
        Duration::from_secs(30),
        |s| {
            Stats::get(&s.readings) >= readings_at_stop + OUTAGE_SLOTS * meters
                && Stats::get(&s.write_retries) > 0
        },
    )
    .await;
    // The encoder (its own thread) spools a slot a moment after the poller
    // counted its readings: wait for it rather than read the counter once.
    gw.wait_for(
        "the spool holds the outage's lines",
        Duration::from_secs(30),
        |s| Stats::get(&s.lines_spooled).saturating_sub(written_at_stop) >= OUTAGE_SLOTS * meters,
    )
    .await;

    tokio::task::block_in_place(|| influx.start_again());
    let restarted_at = unix_now();
    let readings_at_restart = Stats::get(&stats.readings);
    // Caught up: everything spooled is written, including two slots polled
    // after the restart.
    gw.wait_for(
        "the backlog to drain after the restart",
        Duration::from_mins(1),
        |s| {
            let spooled = Stats::get(&s.lines_spooled);
            spooled >= readings_at_restart + 2 * meters && Stats::get(&s.lines_written) == spooled
        },
    )
    .await;
    // "the gateway stops within 30 s of the shutdown"
    let summary = gw.stop_within(Duration::from_secs(30)).await;
    gw.sim.stop();
    let (config, sim) = (&gw.config, &gw.sim);

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
        assert!(consecutive(s), "{meter}: consecutive slots, no gap: {s:?}");
        let (first, last) = (*s.first().expect("slot"), *s.last().expect("slot"));
        assert!(
            first < stopped_at && last > restarted_at,
            "{meter}: slots {first}..={last} span the outage {stopped_at}..{restarted_at}"
        );
    }

    // Every value is the simulator's at its slot, and every reading is good.
    let table = influx.table(DB, "SELECT * FROM reading").await;
    let col = |name: &str| table.col(name);
    let rows = &table.rows;
    assert_eq!(rows.len() as u64, readings);
    let mut values_checked = 0u64;
    let mut seen: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for row in rows {
        let meter_id = row[col("meter")].as_str().expect("meter tag");
        assert_eq!(row[col("site")], Value::from(SITE));
        assert_eq!(row[col("q")], Value::from(0), "all good: {row:?}");
        let slot = row[col("time")].as_i64().expect("epoch seconds");
        assert!(seen.entry(meter_id).or_default().insert(slot), "duplicate");
        values_checked += sim.assert_reading(config, &table, row);
    }
    assert!(
        values_checked >= readings,
        "checked {values_checked} values"
    );
}
