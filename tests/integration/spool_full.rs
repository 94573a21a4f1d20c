//! A spool that fills up, under each policy. The gateway runs in-process
//! against 128 simulated endpoints (one meter each, polled every second) with
//! a 64 KiB spool and an InfluxDB URL on a closed port, so nothing drains.
//!
//! * `block`: the spool fills, the encoder waits, the reading channel fills,
//!   the pollers wait and count missed slots. Nothing is dropped and the
//!   spool never holds more than fits. Then a second run on the same data
//!   directory points at a real `influxd`: InfluxDB ends up holding exactly
//!   the lines the first run spooled, plus the second run's own.
//! * `drop_oldest`: the oldest lines make room, counted in total and per
//!   site; after the same drain InfluxDB holds exactly the spooled lines
//!   minus the dropped ones.
//!
//! No timing is asserted: every wait is bounded and fails with the counters.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emgate::sim::SimOptions;
use emgate::sinks::uploader::SinkSummary;
use emgate::telemetry::Stats;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::{counters, heavy, spool};

const DB: &str = "spoolfull";
/// Endpoints (one meter each): enough batches per second to fill the
/// pipeline's 1024-batch reading channel within seconds once the spool is full.
const ENDPOINTS: usize = 128;
/// Two sites, so per-site drop counts have something to split.
const SITES: [&str; 2] = ["E3501020031", "E3501020032"];
const MAX_BYTES: u64 = 64 * 1024;
const SEGMENT_BYTES: u64 = 16 * 1024;
/// The second run's spool bound: large, so draining drops nothing.
const DRAIN_MAX_BYTES: u64 = 64 << 20;

/// The gateway's configuration: output `url`, writes capped at
/// `max_lines_per_sec` (0: no cap), `ENDPOINTS` endpoints of one meter
/// each, the meters shared out between the `SITES`.
fn gateway(url: &str, policy: &str, max_bytes: u64, max_lines_per_sec: u64) -> GatewayToml {
    let cap = if max_lines_per_sec > 0 {
        format!("max_lines_per_sec = {max_lines_per_sec}")
    } else {
        String::new()
    };
    let mut toml = GatewayToml::new("spool-full")
        .readings_only()
        .influx_v1(
            url,
            DB,
            &format!(
                "batch_size = 500\nflush_interval_ms = 200\ntimeout_ms = 2000\n\
                 retry_initial_ms = 100\nretry_max_ms = 500\n{cap}"
            ),
        )
        .section(
            "spool",
            &format!(
                "max_bytes = {max_bytes}\nsegment_bytes = {SEGMENT_BYTES}\npolicy = \"{policy}\"\n\
                 fsync = \"interval\"\nfsync_interval_ms = 100"
            ),
        );
    for i in 0..ENDPOINTS {
        toml = toml.endpoint(&format!("ep{i:03}"), "timeout_ms = 2000");
    }
    for (s, site) in SITES.iter().enumerate() {
        let mut text = Site::new(site, &format!("spool full {s}"));
        for i in (s..ENDPOINTS).step_by(SITES.len()) {
            let meter = modbus(
                &format!("m{i:03}"),
                "electricity",
                "eastron_sdm630",
                &format!("ep{i:03}"),
                1,
            );
            text = text.meter(meter.level(2));
        }
        toml = toml.site(&format!("{site}.toml"), text);
    }
    toml
}

/// The simulator for the `ENDPOINTS` endpoints, on the files every run of
/// the test rewrites (the endpoints keep their ports).
async fn simulator() -> TestGateway {
    TestGateway::prepare(
        &gateway("http://127.0.0.1:1", "block", MAX_BYTES, 0),
        SimOptions::default(),
    )
    .await
}

/// Lines and framed bytes (8-byte record header + payload, what `max_bytes`
/// bounds) waiting in the closed spool at `dir`, read without acking.
fn spool_contents(dir: &Path) -> (u64, u64) {
    let mut lines = 0;
    let mut bytes = 0;
    for r in spool::pending_records(dir) {
        lines += memchr_lines(&r);
        bytes += 8 + r.len() as u64;
    }
    (lines, bytes)
}

fn memchr_lines(record: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', record).count() as u64
}

/// Runs the gateway on `toml` (rewritten over the files) until `done`.
async fn run_until(
    gw: &mut TestGateway,
    toml: &GatewayToml,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> (Arc<Stats>, SinkSummary) {
    gw.files.rewrite(toml);
    gw.run();
    gw.wait_for(what, Duration::from_secs(90), done).await;
    let summary = gw.stop().await;
    (Arc::clone(gw.stats()), summary)
}

/// Overload with nothing draining (the output is a closed port), until `done`.
async fn overload(
    gw: &mut TestGateway,
    policy: &str,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> Arc<Stats> {
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let (stats, summary) = run_until(gw, &gateway(&closed, policy, MAX_BYTES, 0), what, done).await;
    assert_eq!(Stats::get(&stats.lines_written), 0, "nothing can drain");
    assert_eq!(summary.lines_written, 0);
    assert!(
        Stats::get(&stats.spool_bytes) <= MAX_BYTES,
        "the spool stays within max_bytes; {}",
        counters(&stats)
    );
    stats
}

/// The gateway restarted on the same data directory against a real
/// influxd, without a rate cap and with room in the spool: waits until the
/// `backlog` lines and everything this run spooled are written. Returns
/// this run's counters.
async fn drain(gw: &mut TestGateway, influx: &Influxd, policy: &str, backlog: u64) -> Arc<Stats> {
    let toml = gateway(&influx.url(), policy, DRAIN_MAX_BYTES, 0);
    let (stats, summary) = run_until(gw, &toml, "the backlog to drain", |s| {
        let spooled = Stats::get(&s.lines_spooled);
        spooled > 0 && Stats::get(&s.lines_written) == backlog + spooled
    })
    .await;
    assert_eq!(summary.lines_rejected, 0);
    assert_eq!(summary.lines_left_in_spool, 0);
    assert_eq!(
        Stats::get(&stats.lines_dropped),
        0,
        "draining drops nothing"
    );
    assert_eq!(
        Stats::get(&stats.lines_written),
        backlog + Stats::get(&stats.lines_spooled),
        "backlog and live lines written; {}",
        counters(&stats)
    );
    stats
}

/// `block`, in three runs on one data directory:
/// 1. the output is a closed port: the spool fills, then the reading
///    channel, and the pollers stall; a shutdown still ends the gateway;
/// 2. a real influxd behind a rate cap lower than the polling rate: the
///    spool stays full and the pollers, waiting for it, miss slots;
/// 3. no cap: everything drains. InfluxDB then holds exactly the lines the
///    three runs spooled: nothing accepted was lost, nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_policy_delays_and_loses_nothing() {
    // CPU-heavy (128 endpoints polled every second): no timed test runs
    // meanwhile.
    let _heavy = heavy().await;
    let mut gw = simulator().await;
    let data = gw.files.data_dir();
    let channel_full = 1024;

    let first = overload(
        &mut gw,
        "block",
        "a full spool and a full reading channel",
        |s| {
            Stats::get(&s.spool_full_waits) > 0
                && Stats::get(&s.readings) >= Stats::get(&s.lines_spooled) + channel_full
        },
    )
    .await;
    let spooled1 = Stats::get(&first.lines_spooled);
    assert_eq!(Stats::get(&first.lines_dropped), 0, "block never drops");
    assert!(first.dropped_by_site().is_empty());
    // Everything spooled is still there, within the bound.
    let (lines, bytes) = spool_contents(&data.join("spool"));
    assert_eq!(lines, spooled1, "the spool holds every spooled line");
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let influx = Influxd::with_database(DB).await;
    // Slower out than in: 128 lines per second polled, 40 written.
    let (second, _) = run_until(
        &mut gw,
        &gateway(&influx.url(), "block", MAX_BYTES, 40),
        "missed slots while the spool is full",
        |s| Stats::get(&s.spool_full_waits) > 0 && Stats::get(&s.missed_slots) > 0,
    )
    .await;
    let spooled2 = Stats::get(&second.lines_spooled);
    assert_eq!(Stats::get(&second.lines_dropped), 0, "block never drops");
    let written2 = Stats::get(&second.lines_written);
    assert!(written2 > 0, "the capped output drained some");
    let (lines, bytes) = spool_contents(&data.join("spool"));
    assert_eq!(
        lines,
        spooled1 + spooled2 - written2,
        "the spool holds every unwritten line"
    );
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let third = drain(&mut gw, &influx, "block", lines).await;
    gw.sim.stop();

    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(
        count,
        spooled1 + spooled2 + Stats::get(&third.lines_spooled),
        "InfluxDB holds every line spooled by the three runs, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_policy_counts_what_it_drops() {
    // CPU-heavy (128 endpoints polled every second): no timed test runs
    // meanwhile.
    let _heavy = heavy().await;
    let mut gw = simulator().await;
    let data = gw.files.data_dir();

    // Drops on both sites.
    let first = overload(
        &mut gw,
        "drop_oldest",
        "drops from a full spool on both sites",
        |s| s.dropped_by_site().len() == SITES.len(),
    )
    .await;
    let spooled = Stats::get(&first.lines_spooled);
    let dropped = Stats::get(&first.lines_dropped);
    assert!(dropped > 0);
    assert_eq!(
        Stats::get(&first.spool_full_waits),
        0,
        "drop_oldest never waits"
    );
    let by_site = first.dropped_by_site();
    assert_eq!(
        by_site.keys().map(String::as_str).collect::<Vec<_>>(),
        SITES,
        "drops counted per site"
    );
    assert_eq!(
        by_site.values().sum::<u64>(),
        dropped,
        "per-site drops sum to the total"
    );
    let (lines, bytes) = spool_contents(&data.join("spool"));
    assert_eq!(
        lines,
        spooled - dropped,
        "the spool holds what was not dropped"
    );
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let influx = Influxd::with_database(DB).await;
    let second = drain(&mut gw, &influx, "drop_oldest", spooled - dropped).await;
    gw.sim.stop();

    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(
        count,
        spooled - dropped + Stats::get(&second.lines_spooled),
        "InfluxDB holds exactly what was spooled and not dropped"
    );
}
