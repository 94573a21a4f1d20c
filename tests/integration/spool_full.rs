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

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emgate::app::AppError;
use emgate::config::Config;
use emgate::config::load::from_parts;
use emgate::sim::Simulator;
use emgate::sinks::uploader::SinkSummary;
use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::stats::Stats;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

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

/// The sites with their meters, the endpoints on `ports`.
fn site_files(ports: &[u16]) -> Vec<(String, String)> {
    SITES
        .iter()
        .enumerate()
        .map(|(s, site)| {
            let mut text = format!("[site]\nid = \"{site}\"\nname = \"spool full {s}\"\n");
            for i in (s..ports.len()).step_by(SITES.len()) {
                let _ = write!(
                    text,
                    "\n[[meters]]\nid = \"m{i:03}\"\nenergy = \"electricity\"\nlevel = 2\n\
                     profile = \"eastron_sdm630\"\nendpoint = \"ep{i:03}\"\nunit_id = 1\npoll_interval_secs = 1\n"
                );
            }
            (format!("{site}.toml"), text)
        })
        .collect()
}

/// The gateway's configuration: spool in `data_dir`, output `url`, writes
/// capped at `max_lines_per_sec` (0: no cap).
fn config(
    data_dir: &Path,
    url: &str,
    policy: &str,
    max_bytes: u64,
    max_lines_per_sec: u64,
    ports: &[u16],
) -> Config {
    let mut main = format!(
        r#"
# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "spool-full"
data_dir = {data:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 500
flush_interval_ms = 200
timeout_ms = 2000
retry_initial_ms = 100
retry_max_ms = 500
{cap}

[spool]
max_bytes = {max_bytes}
segment_bytes = {SEGMENT_BYTES}
policy = "{policy}"
fsync = "interval"
fsync_interval_ms = 100
"#,
        data = data_dir.display().to_string(),
        cap = if max_lines_per_sec > 0 {
            format!("max_lines_per_sec = {max_lines_per_sec}")
        } else {
            String::new()
        },
    );
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            main,
            "\n[[endpoints]]\nid = \"ep{i:03}\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_ms = 2000\n"
        );
    }
    let sites = site_files(ports);
    let parts: Vec<(&str, &str)> = sites
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    from_parts(&main, &parts, emgate::profiles::load::builtin()).expect("valid config")
}

/// A gateway running in-process.
struct Gateway {
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<SinkSummary, AppError>>,
}

impl Gateway {
    fn start(config: Config) -> Gateway {
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(emgate::app::run(
            Arc::new(config),
            Arc::clone(&stats),
            shutdown.clone(),
        ));
        Gateway {
            stats,
            shutdown,
            task,
        }
    }

    /// Waits (bounded) until `done` holds; panics with the counters otherwise,
    /// or when the gateway ended on its own.
    async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&Stats) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.stats) {
            assert!(
                !self.task.is_finished(),
                "the gateway ended while waiting for {what}"
            );
            assert!(
                Instant::now() < deadline,
                "gave up after {limit:?} waiting for {what}; {}",
                counters(&self.stats)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM equivalent; the gateway must stop within 60 s (its uploader
    /// retries for a 5 s grace against a dead output).
    async fn stop(self) -> (Arc<Stats>, SinkSummary) {
        self.shutdown.cancel();
        let summary = tokio::time::timeout(Duration::from_mins(1), self.task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway did not stop within 60 s of the shutdown; {}",
                    counters(&self.stats)
                )
            })
            .expect("gateway task")
            .expect("gateway");
        (self.stats, summary)
    }
}

fn counters(s: &Stats) -> String {
    format!(
        "readings={} missed_slots={} spooled={} written={} spool_records={} spool_bytes={} full_waits={} dropped={} by_site={:?}",
        Stats::get(&s.readings),
        Stats::get(&s.missed_slots),
        Stats::get(&s.lines_spooled),
        Stats::get(&s.lines_written),
        Stats::get(&s.spool_records),
        Stats::get(&s.spool_bytes),
        Stats::get(&s.spool_full_waits),
        Stats::get(&s.lines_dropped),
        s.dropped_by_site(),
    )
}

/// Lines and framed bytes (8-byte record header + payload, what `max_bytes`
/// bounds) waiting in the closed spool at `dir`, read without acking.
fn spool_contents(dir: &Path) -> (u64, u64) {
    let (spool, _recovery) = Spool::open(SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: DRAIN_MAX_BYTES,
        segment_bytes: SEGMENT_BYTES,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("open the spool");
    let mut lines = 0;
    let mut bytes = 0;
    let mut records = Vec::new();
    while spool.read(1024, usize::MAX, &mut records).is_some() {
        for r in records.drain(..) {
            lines += memchr_lines(&r);
            bytes += 8 + r.len() as u64;
        }
    }
    (lines, bytes)
}

fn memchr_lines(record: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', record).count() as u64
}

/// Overload with nothing draining (the output is a closed port), until `done`.
async fn overload(
    policy: &str,
    data: &Path,
    ports: &[u16],
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> Arc<Stats> {
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let gw = Gateway::start(config(data, &closed, policy, MAX_BYTES, 0, ports));
    gw.wait_for(Duration::from_secs(90), what, done).await;
    let (stats, summary) = gw.stop().await;
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
async fn drain(
    influx: &Influxd,
    data: &Path,
    ports: &[u16],
    policy: &str,
    backlog: u64,
) -> Arc<Stats> {
    let gw = Gateway::start(config(
        data,
        &influx.url(),
        policy,
        DRAIN_MAX_BYTES,
        0,
        ports,
    ));
    gw.wait_for(Duration::from_secs(90), "the backlog to drain", |s| {
        let spooled = Stats::get(&s.lines_spooled);
        spooled > 0 && Stats::get(&s.lines_written) == backlog + spooled
    })
    .await;
    let (stats, summary) = gw.stop().await;
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

/// The simulator for `ENDPOINTS` endpoints on free ports. The ports are
/// held while being picked, so they are distinct; a port taken by another
/// test before the simulator binds it means a fresh set.
async fn simulator(stop: &CancellationToken) -> (Vec<u16>, Simulator) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut last_error = String::new();
    for _attempt in 0..5 {
        let held: Vec<std::net::TcpListener> = (0..ENDPOINTS)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        drop(held);
        let config = config(
            dir.path(),
            "http://127.0.0.1:1",
            "block",
            MAX_BYTES,
            0,
            &ports,
        );
        match Simulator::start(&config, stop.clone()).await {
            Ok(sim) => return (ports, sim),
            Err(e) => last_error = e.to_string(),
        }
    }
    panic!("cannot start the simulator on {ENDPOINTS} free ports: {last_error}");
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
    let stop_sim = CancellationToken::new();
    let (ports, _sim) = simulator(&stop_sim).await;
    let data = tempfile::tempdir().expect("tempdir");
    let channel_full = 1024;

    let first = overload(
        "block",
        data.path(),
        &ports,
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
    let (lines, bytes) = spool_contents(&data.path().join("spool"));
    assert_eq!(lines, spooled1, "the spool holds every spooled line");
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let influx = Influxd::start();
    influx.create_database(DB).await;
    // Slower out than in: 128 lines per second polled, 40 written.
    let gw = Gateway::start(config(
        data.path(),
        &influx.url(),
        "block",
        MAX_BYTES,
        40,
        &ports,
    ));
    gw.wait_for(
        Duration::from_secs(90),
        "missed slots while the spool is full",
        |s| Stats::get(&s.spool_full_waits) > 0 && Stats::get(&s.missed_slots) > 0,
    )
    .await;
    let (second, _) = gw.stop().await;
    let spooled2 = Stats::get(&second.lines_spooled);
    assert_eq!(Stats::get(&second.lines_dropped), 0, "block never drops");
    let written2 = Stats::get(&second.lines_written);
    assert!(written2 > 0, "the capped output drained some");
    let (lines, bytes) = spool_contents(&data.path().join("spool"));
    assert_eq!(
        lines,
        spooled1 + spooled2 - written2,
        "the spool holds every unwritten line"
    );
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let third = drain(&influx, data.path(), &ports, "block", lines).await;
    stop_sim.cancel();

    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(
        count,
        spooled1 + spooled2 + Stats::get(&third.lines_spooled),
        "InfluxDB holds every line spooled by the three runs, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_policy_counts_what_it_drops() {
    let stop_sim = CancellationToken::new();
    let (ports, _sim) = simulator(&stop_sim).await;
    let data = tempfile::tempdir().expect("tempdir");

    // Drops on both sites.
    let first = overload(
        "drop_oldest",
        data.path(),
        &ports,
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
    let (lines, bytes) = spool_contents(&data.path().join("spool"));
    assert_eq!(
        lines,
        spooled - dropped,
        "the spool holds what was not dropped"
    );
    assert!(bytes <= MAX_BYTES, "{bytes} bytes within {MAX_BYTES}");

    let influx = Influxd::start();
    influx.create_database(DB).await;
    let second = drain(
        &influx,
        data.path(),
        &ports,
        "drop_oldest",
        spooled - dropped,
    )
    .await;
    stop_sim.cancel();

    let count = influx.count(DB, "SELECT count(q) FROM reading").await;
    assert_eq!(
        count,
        spooled - dropped + Stats::get(&second.lines_spooled),
        "InfluxDB holds exactly what was spooled and not dropped"
    );
}
