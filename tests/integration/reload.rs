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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use emgate::sim::Simulator;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::gateway::Gateway;
use crate::support::influxd::Influxd;

const DB: &str = "reload";

fn meter(id: &str, unit: u8) -> String {
    format!(
        "\n[[meters]]\nid = \"{id}\"\nenergy = \"water\"\nlevel = 1\nprofile = \"water_meter\"\n\
         endpoint = \"ep0\"\nunit_id = {unit}\npoll_interval_secs = 1\n"
    )
}

fn site(meters: &[(&str, u8)]) -> String {
    let mut s = String::from("[site]\nid = \"site1\"\nname = \"reload test\"\n");
    for (id, unit) in meters {
        s.push_str(&meter(id, *unit));
    }
    s
}

fn main_toml(dir: &Path, url: &str, port: u16) -> String {
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
    format!(
        r#"[aggregation]
windows = []

[gateway]
id = "reload"
data_dir = {data:?}
profiles_dir = {profiles:?}

[api]
listen = ""

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 50
flush_interval_ms = 100
timeout_ms = 2000
retry_initial_ms = 100
retry_max_ms = 500

[[endpoints]]
id = "ep0"
host = "127.0.0.1"
port = {port}
timeout_ms = 1000
"#,
        data = dir.join("data").display().to_string(),
        profiles = profiles.display().to_string(),
    )
}

fn hup(gw: &Gateway) {
    let status = Command::new("kill")
        .args(["-HUP", &gw.pid()])
        .status()
        .expect("kill -HUP");
    assert!(status.success(), "kill -HUP failed");
}

/// Waits until the log holds `count` lines containing `needle`.
async fn wait_log(gw: &Gateway, needle: &str, count: usize) {
    let by = Instant::now() + Duration::from_secs(30);
    while gw.log().matches(needle).count() < count {
        assert!(
            Instant::now() < by,
            "no {needle:?} (×{count}) in the log within 30 s:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn contiguous(slots: &BTreeSet<i64>) -> bool {
    match (slots.first(), slots.last()) {
        (Some(a), Some(b)) => (b - a + 1) as usize == slots.len(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_meters_without_losing_a_slot() {
    let influx = Influxd::start();
    influx.create_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    let main: PathBuf = dir.path().join("emgate.toml");
    std::fs::write(&main, main_toml(dir.path(), &influx.url(), port)).expect("main file");
    std::fs::create_dir(dir.path().join("sites")).expect("sites dir");
    let site_file = dir.path().join("sites/site1.toml");

    // The simulator serves all three meters from the start.
    std::fs::write(&site_file, site(&[("A", 1), ("B", 2), ("C", 3)])).expect("site");
    let all = emgate::config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let stop_sim = CancellationToken::new();
    let _sim = Simulator::start(&all, stop_sim.clone())
        .await
        .expect("simulator");
    std::fs::write(&site_file, site(&[("A", 1), ("B", 2)])).expect("site");

    let mut gw = Gateway::run(&main, dir.path().join("gateway.log"));
    wait_log(&gw, "polling endpoint", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A stays, B goes, C comes.
    std::fs::write(&site_file, site(&[("A", 1), ("C", 3)])).expect("site");
    hup(&gw);
    wait_log(&gw, "reload applied", 1).await;
    let applied = gw.log_fields("reload applied: +1 meters, -1 meters, 0 changed");
    assert_eq!(applied["summary"], "+1 meters, -1 meters, 0 changed");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A typo: refused, the running configuration stays.
    std::fs::write(
        &site_file,
        site(&[("A", 1), ("C", 3)]).replace("poll_interval_secs", "poll_intervall_secs"),
    )
    .expect("site");
    hup(&gw);
    wait_log(&gw, "reload refused;", 1).await;
    let log = gw.log();
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

    gw.terminate().await;
    stop_sim.cancel();
    let swap = gw.log_fields("sources swapped");
    eprintln!("reload swap took {} ms", swap["swap_ms"]);
    let final_stats = gw.log_fields("final stats");
    assert_eq!(final_stats["missed_slots"], 0);
    assert_eq!(final_stats["lines_rejected"], 0);

    let stored: BTreeMap<String, BTreeSet<i64>> = influx.meter_slots(DB, "reading", "q").await;
    assert_eq!(
        stored.keys().map(String::as_str).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    let (a, b, c) = (&stored["A"], &stored["B"], &stored["C"]);
    assert!(
        contiguous(a),
        "A: one point per slot over the whole run: {a:?}"
    );
    assert!(contiguous(b), "B: {b:?}");
    assert!(contiguous(c), "C: {c:?}");
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
        let count = influx
            .count(
                DB,
                &format!("SELECT count(q) FROM reading WHERE meter = '{meter}'"),
            )
            .await;
        assert_eq!(count, slots.len() as u64, "{meter}: one point per slot");
    }
}
