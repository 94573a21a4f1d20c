//! End to end against real services: our simulator serves four meters of
//! different profiles, the whole gateway (poller, encoder, sink) runs with
//! a configuration loaded from TOML, and a real InfluxDB 1.x must then hold
//! exactly one point per meter per polled slot, with the right tags, whole
//! second slot timestamps, and every value equal to what the simulator's
//! closed-form physics says the meter held at that slot.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::consecutive;
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;

const DB: &str = "e2e";
const SITE: &str = "E3501020001";

fn site() -> Site {
    Site::new(SITE, "Minjiang Textile (test)")
        .meter(
            modbus("e-main", "electricity", "acrel_dtsd1352", "dtu", 1)
                .keys("pt = 10.0\nct = 40.0"),
        )
        .meter(modbus("e-line1", "electricity", "eastron_sdm630", "dtu", 2).level(2))
        .meter(modbus(
            "g-boiler",
            "natural_gas",
            "gas_flow_computer",
            "dtu",
            3,
        ))
        .meter(modbus("s-main", "steam", "steam_flow_computer", "dtu", 4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_slots_land_in_influxdb_exactly() {
    // Consecutive slots below: no CPU-heavy test may make it miss one.
    let _timed = crate::support::timed().await;
    let influx = Influxd::with_database(DB).await;
    let toml = GatewayToml::new("e2e")
        .readings_only()
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 3\nflush_interval_ms = 200\ngzip = true",
        )
        .endpoint("dtu", "timeout_ms = 1000")
        .site("site.toml", site());
    let mut gw = TestGateway::start(&toml).await;
    // At least three slots of the four meters; bounded so a stall fails.
    gw.wait_readings(12).await;
    let summary = gw.stop().await;
    gw.sim.stop();
    let (config, sim) = (&gw.config, &gw.sim);

    let readings = gw.readings();
    assert_eq!(summary.lines_written, readings, "every reading written");
    assert_eq!(summary.lines_rejected + summary.lines_left_in_spool, 0);

    let table = influx.table(DB, "SELECT * FROM reading").await;
    let rows = &table.rows;
    assert_eq!(rows.len() as u64, readings, "exactly one point per reading");
    let col = |name: &str| table.col(name);

    let mut slots: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut values_checked = 0;
    for row in rows {
        let meter_id = row[col("meter")].as_str().expect("meter tag");
        let meter = config.meter(gw.meter(meter_id));
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
        values_checked += sim.assert_reading(config, &table, row);
    }
    assert!(values_checked >= 12 * 5, "checked {values_checked} values");
    // Slots are whole seconds, consecutive for every meter (no gap, no duplicate).
    assert_eq!(slots.len(), 4, "four meters");
    for (meter, s) in &slots {
        assert!(consecutive(s), "{meter}: consecutive slots {s:?}");
    }
    // The count InfluxQL gives agrees with the rows.
    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(count, readings);
}
