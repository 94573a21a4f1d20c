//! Reloading the configuration of a running `emgate run` (SIGHUP), with a
//! real `influxd` and the simulator in the test process.
//!
//! The gateway starts with meters A and B; the site file is rewritten to
//! add C and remove B, and SIGHUP applies it. Then a site file with a typo
//! is written and SIGHUP must be refused, logged with the error, while the
//! gateway keeps polling. Counts in InfluxDB are exact: A has one point per
//! slot over the whole run (no slot lost across the reload), B's slots end
//! right before C's begin, and everything ends at the SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use emgate::sim::SimOptions;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::{consecutive, timed};

const DB: &str = "reload";

fn site(meters: &[(&str, usize)]) -> Site {
    let mut s = Site::new("site1", "reload test");
    for (id, unit) in meters {
        s = s.meter(modbus(id, "water", "water_meter", "ep0", *unit));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_meters_without_losing_a_slot() {
    // No missed slot across the reload: no CPU-heavy test runs meanwhile.
    let _timed = timed().await;
    let influx = Influxd::with_database(DB).await;
    // The simulator serves all three meters from the start.
    let toml = GatewayToml::new("reload")
        .readings_only()
        .section("api", "listen = \"\"")
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 50\nflush_interval_ms = 100\ntimeout_ms = 2000\n\
             retry_initial_ms = 100\nretry_max_ms = 500",
        )
        .endpoint("ep0", "timeout_ms = 1000")
        .site("site1.toml", site(&[("A", 1), ("B", 2), ("C", 3)]));
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    let site_file = gw.files.site_file("site1.toml");
    gw.files
        .write_site("site1.toml", site(&[("A", 1), ("B", 2)]));

    let mut process = gw.spawn("gateway");
    process.wait_log("polling endpoint", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A stays, B goes, C comes.
    gw.files
        .write_site("site1.toml", site(&[("A", 1), ("C", 3)]));
    process.signal("-HUP");
    process.wait_log("reload applied", 1).await;
    let applied = process.log_fields("reload applied: +1 meters, -1 meters, 0 changed");
    assert_eq!(applied["summary"], "+1 meters, -1 meters, 0 changed");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A typo: refused, the running configuration stays.
    gw.files.write_site(
        "site1.toml",
        site(&[("A", 1), ("C", 3)])
            .to_string()
            .replace("poll_interval_secs", "poll_intervall_secs"),
    );
    process.signal("-HUP");
    process.wait_log("reload refused;", 1).await;
    let log = process.log();
    let site_path = site_file.display().to_string();
    let want = format!(
        "{site_path}: meters[0].poll_intervall_secs: unknown key; did you mean \\\"poll_interval_secs\\\"?"
    );
    assert!(
        log.contains(&want),
        "the refusal names the error {want}:\n{log}"
    );
    assert_eq!(log.matches("reload applied").count(), 1, "{log}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    process.terminate().await;
    gw.sim.stop();
    let swap = process.log_fields("sources swapped");
    eprintln!("reload swap took {} ms", swap["swap_ms"]);
    let final_stats = process.log_fields("final stats");
    assert_eq!(final_stats["missed_slots"], 0);
    assert_eq!(final_stats["lines_rejected"], 0);

    let stored: BTreeMap<String, BTreeSet<i64>> = influx.meter_slots(DB, "reading", "q").await;
    assert_eq!(
        stored.keys().map(String::as_str).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    let (a, b, c) = (&stored["A"], &stored["B"], &stored["C"]);
    assert!(
        consecutive(a),
        "A: one point per slot over the whole run: {a:?}"
    );
    assert!(consecutive(b), "B: {b:?}");
    assert!(consecutive(c), "C: {c:?}");
    assert_eq!(a.first(), b.first(), "A and B start together");
    assert_eq!(
        b.last().map(|t| t + 1),
        c.first().copied(),
        "C's first slot is the one right after B's last (the swap lost no slot)"
    );
    assert_eq!(a.last(), c.last(), "A and C run to the end");
    // About 3 s with B and 6 s with C, whatever the exact slot boundaries.
    assert!(b.len() >= 3 && c.len() >= 6, "B {b:?} C {c:?}");
    assert_eq!(a.len(), b.len() + c.len(), "A's slots are B's then C's");
    let readings = final_stats["readings"].as_u64().expect("readings");
    assert_eq!(readings, (a.len() + b.len() + c.len()) as u64);
    for (meter, slots) in &stored {
        let count = influx.meter_count(DB, meter).await;
        assert_eq!(count, slots.len() as u64, "{meter}: one point per slot");
    }
}
