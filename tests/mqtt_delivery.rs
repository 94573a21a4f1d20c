//! The MQTT delivery guarantee against a real Mosquitto and a real InfluxDB:
//! a QoS 1 message is acknowledged to the broker only once its reading is in
//! the spool, so with a persistent session nothing is lost when the broker
//! restarts in the middle of a stream, when the gateway is SIGKILLed while
//! messages are in flight, or while it is down. Every published reading has
//! its own payload time stamp (its own slot), and a redelivered one
//! overwrites the same point: InfluxDB must hold exactly one point per
//! published message, with the published values.
//!
//! To have messages in flight (received, not yet spooled, not acked) at a
//! known moment without timing, the first phase runs with InfluxDB stopped
//! and a 4 KiB spool (policy `block`): the spool fills, the encoder waits,
//! and the broker holds the rest of the stream for the session.
//!
//! The same full spool at shutdown, with a long `shutdown_timeout_secs`: the
//! encoder may still spool for half the deadline after the cancellation, so
//! the broker client must stay connected that long. Whatever the gateway
//! stored must have been acknowledged, and the broker must redeliver exactly
//! the rest.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::stats::Stats;
use tokio_util::sync::CancellationToken;

use support::gateway::Gateway;
use support::influxd::Influxd;
use support::mosquitto::{Mosquitto, MosquittoOptions, publish_all};

const SITE: &str = "D1";
const METER: &str = "w1";

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn site_file() -> String {
    format!(
        r#"
[site]
id = "{SITE}"
name = "mqtt delivery test"

[[meters]]
id = "{METER}"
energy = "water"
level = 1
profile = "water_meter"
broker = "plant"
poll_interval_secs = 1
"#
    )
}

fn main_file(data: &Path, influx: &Influxd, db: &str, broker_port: u16) -> String {
    format!(
        r#"
[spool]
max_bytes = 4096
segment_bytes = 4096
policy = "block"

[gateway]
id = "delivery"
data_dir = {data:?}
profiles_dir = {profiles:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{db}"
batch_size = 100
flush_interval_ms = 100

# Exact line counts below: readings only.
[aggregation]
windows = []

[[mqtt]]
id = "plant"
host = "127.0.0.1"
port = {broker_port}
client_id = "emgate-delivery"
clean_session = false
reconnect_initial_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscriptions]]
topic = "energy/{{site}}/{{meter}}/up"
qos = 1
"#,
        data = data.display().to_string(),
        profiles = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/profiles")
            .display()
            .to_string(),
        url = influx.url(),
    )
}

/// Message `i` of a stream starting at `base`: its own second, an
/// increasing counter and a gauge with an exact binary value.
fn reading(base: i64, i: i64) -> (i64, f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let volume = 1000.0 + i as f64;
    #[allow(clippy::cast_precision_loss)]
    let flow = (i % 100) as f64 / 4.0;
    (base + i, volume, flow)
}

fn messages(base: i64, range: std::ops::Range<i64>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let (ts, volume, flow) = reading(base, i);
            (
                format!("energy/{SITE}/{METER}/up"),
                format!(r#"{{"ts":{ts},"volume_m3":{volume},"flow_m3h":{flow}}}"#).into_bytes(),
            )
        })
        .collect()
}

/// Waits (bounded) until InfluxDB holds `n` readings of the meter.
async fn wait_for_count(influx: &Influxd, db: &str, n: u64, what: &dyn Fn() -> String) {
    let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
    loop {
        let got = influx
            .count(db, "SELECT count(flow_m3h) FROM reading")
            .await;
        if got == n {
            return;
        }
        assert!(
            got < n,
            "more points ({got}) than messages published ({n}): {}",
            what()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {got} of {n} readings in InfluxDB after 120 s: {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every published reading exactly once, with its values.
async fn assert_exactly(influx: &Influxd, db: &str, base: i64, n: i64) {
    let rows = influx
        .rows(
            db,
            &format!("SELECT volume_m3, flow_m3h FROM reading WHERE meter = '{METER}'"),
        )
        .await;
    let got: BTreeMap<i64, (f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_i64().expect("epoch seconds"),
                (
                    r[1].as_f64().expect("volume_m3"),
                    r[2].as_f64().expect("flow_m3h"),
                ),
            )
        })
        .collect();
    assert_eq!(got.len(), rows.len(), "one point per slot");
    let want: BTreeMap<i64, (f64, f64)> = (0..n)
        .map(|i| {
            let (ts, v, f) = reading(base, i);
            (ts, (v, f))
        })
        .collect();
    let missing: Vec<i64> = want
        .keys()
        .filter(|t| !got.contains_key(t))
        .copied()
        .collect();
    let extra: Vec<i64> = got
        .keys()
        .filter(|t| !want.contains_key(t))
        .copied()
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing slots {missing:?}, unexpected slots {extra:?}"
    );
    assert_eq!(got, want, "published values");
    assert_eq!(
        influx
            .count(db, "SELECT count(flow_m3h) FROM reading")
            .await,
        u64::try_from(n).expect("n"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_and_duplicates_nothing() {
    const DB: &str = "restart";
    let mut influx = Influxd::start();
    influx.create_database(DB).await;
    let mut broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let data = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(
        emgate::config::load::from_parts(
            &main_file(data.path(), &influx, DB, broker.port()),
            &[("site.toml", &site_file())],
            emgate::profiles::load::builtin(),
        )
        .unwrap_or_else(|e| panic!("config: {e}")),
    );
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(emgate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    // The session (and its subscription) must exist before the first
    // publish, or the broker has nobody to queue for.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Stats::get(&stats.mqtt_subscriptions) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let base = now_s() - 3600;
    let (first, total) = (400, 700);
    influx.stop();
    publish_all(broker.port(), None, "pub-1", &messages(base, 0..first)).await;
    // The spool is full: messages are in flight between broker and spool.
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    while Stats::get(&stats.spool_full_waits) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "spool never filled: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.stop();
    broker.start_again();
    influx.start_again();
    publish_all(broker.port(), None, "pub-2", &messages(base, first..total)).await;

    let log = || format!("stats {stats:?}\n--- mosquitto log ---\n{}", broker.log());
    wait_for_count(&influx, DB, u64::try_from(total).expect("n"), &log).await;
    shutdown.cancel();
    let summary = gateway.await.expect("join").expect("gateway");
    assert_eq!(summary.lines_rejected, 0);
    assert_exactly(&influx, DB, base, total).await;
    assert!(
        Stats::get(&stats.mqtt_connects) >= 2,
        "reconnected after the restart: {stats:?}"
    );
    assert_eq!(Stats::get(&stats.mqtt_rejected), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_gateway_gets_every_message_redelivered() {
    const DB: &str = "killed";
    let mut influx = Influxd::start();
    influx.create_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("sites")).expect("sites dir");
    std::fs::write(dir.path().join("sites/site.toml"), site_file()).expect("site file");
    let main_path = dir.path().join("emgate.toml");
    std::fs::write(
        &main_path,
        main_file(&dir.path().join("data"), &influx, DB, broker.port()),
    )
    .expect("main file");

    let mut gw = Gateway::run(&main_path, dir.path().join("first.log"));
    wait_for_log(&gw, "mqtt subscribed").await;

    let base = now_s() - 3600;
    let (first, second, total) = (300, 600, 900);
    influx.stop();
    publish_all(broker.port(), None, "pub-1", &messages(base, 0..first)).await;
    // Killed with the spool full: messages in flight, not acked.
    wait_for_log(&gw, "spool full (policy block)").await;
    gw.kill9();
    influx.start_again();
    // Queued by the broker for the persistent session while nobody listens.
    publish_all(broker.port(), None, "pub-2", &messages(base, first..second)).await;
    let mut gw = Gateway::run(&main_path, dir.path().join("second.log"));
    publish_all(broker.port(), None, "pub-3", &messages(base, second..total)).await;

    let log = || format!("--- gateway log ---\n{}", gw.log());
    wait_for_count(&influx, DB, u64::try_from(total).expect("n"), &log).await;
    gw.terminate().await;
    assert_exactly(&influx, DB, base, total).await;
}

async fn wait_for_log(gw: &Gateway, message: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !gw.log().contains(message) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {message:?} in the gateway log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shutdown deadline of the full-spool shutdown test: the encoder may
/// wait half of it (15 s) for the spool before giving up.
const LONG_SHUTDOWN_SECS: u64 = 30;

/// A gateway with a 4 KiB spool (policy `block`) writing to a file sink at
/// `output`, and a 30 s shutdown deadline.
fn full_spool_main_file(data: &Path, output: &Path, broker_port: u16) -> String {
    format!(
        r#"
[spool]
max_bytes = 4096
segment_bytes = 4096
policy = "block"

[gateway]
id = "shutdown"
data_dir = {data:?}
profiles_dir = {profiles:?}
shutdown_timeout_secs = {LONG_SHUTDOWN_SECS}

[file_sink]
path = {output:?}
batch_size = 100
flush_interval_ms = 100

[aggregation]
windows = []

[[mqtt]]
id = "plant"
host = "127.0.0.1"
port = {broker_port}
client_id = "emgate-shutdown"
clean_session = false
reconnect_initial_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscriptions]]
topic = "energy/{{site}}/{{meter}}/up"
qos = 1
"#,
        data = data.display().to_string(),
        output = output.display().to_string(),
        profiles = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/profiles")
            .display()
            .to_string(),
    )
}

/// The slot (last field, epoch seconds) of every `reading` line in `lines`.
fn line_slots(lines: &[u8], into: &mut Vec<i64>) {
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).expect("line protocol is UTF-8");
        let slot = text
            .rsplit(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no timestamp in {text:?}"));
        into.push(slot);
    }
}

/// The slots of the lines still in the (closed) spool, read without acknowledging.
fn spooled_slots(dir: &Path, into: &mut Vec<i64>) {
    let (spool, _recovery) = Spool::open(SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 4096,
        segment_bytes: 4096,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("open the spool");
    let mut records = Vec::new();
    while spool.read(1024, usize::MAX, &mut records).is_some() {
        for r in records.drain(..) {
            line_slots(&r, into);
        }
    }
}

/// Connects as `client_id` to its persistent session and returns the `ts`
/// of every message the broker (re)delivers, acknowledging them, until none
/// came for 3 s.
async fn redelivered(port: u16, client_id: &str) -> Vec<i64> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions};
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false);
    let (client, mut events) = AsyncClient::new(options, 64);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker was still redelivering after 60 s ({} so far)",
            got.len()
        );
        match tokio::time::timeout(Duration::from_secs(3), events.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&p.payload).expect("a published JSON payload");
                got.push(v["ts"].as_i64().expect("ts"));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("redelivery client lost the broker: {e}"),
        }
    }
    let _ = client.disconnect().await;
    got
}

/// Shutdown with a full spool (policy `block`), a dead output and a 30 s
/// deadline: the encoder waits up to 15 s for room. The output comes back
/// 7 s after the cancellation, so the encoder spools the messages still in
/// the channel late. The broker client must still be connected to
/// acknowledge them: every message the gateway stored (written to the file
/// or left in the spool) must not be redelivered, and every other published
/// message must be. The client used to wait a fixed 6 s, then disconnect:
/// what was spooled after that was stored *and* redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_full_spool_acks_what_is_spooled_late() {
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let dir = tempfile::tempdir().expect("tempdir");
    // The output's directory is a plain file: every write fails (retryable)
    // until the test removes it.
    let blocker = dir.path().join("out");
    std::fs::write(&blocker, b"not a directory").expect("blocker file");
    let output = blocker.join("lines.lp");
    let config = Arc::new(
        emgate::config::load::from_parts(
            &full_spool_main_file(&dir.path().join("data"), &output, broker.port()),
            &[("site.toml", &site_file())],
            emgate::profiles::load::builtin(),
        )
        .unwrap_or_else(|e| panic!("config: {e}")),
    );
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(emgate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Stats::get(&stats.mqtt_subscriptions) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let base = now_s() - 3600;
    let total = 200;
    publish_all(broker.port(), None, "pub", &messages(base, 0..total)).await;
    // The spool is full and messages wait in the channel: received, not
    // spooled, not acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    while Stats::get(&stats.spool_full_waits) == 0
        || Stats::get(&stats.mqtt_messages) <= Stats::get(&stats.lines_spooled)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "spool never filled with messages waiting: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cancelled = tokio::time::Instant::now();
    shutdown.cancel();
    // Past the 6 s the client used to drain, well before the encoder gives
    // up (15 s; the file sink retries at most every 5 s).
    tokio::time::sleep_until(cancelled + Duration::from_secs(7)).await;
    std::fs::remove_file(&blocker).expect("remove the blocker");
    let summary = tokio::time::timeout(Duration::from_secs(LONG_SHUTDOWN_SECS + 10), gateway)
        .await
        .expect("the gateway stops within its deadline")
        .expect("join")
        .expect("gateway");
    eprintln!(
        "stopped {:?} after the cancellation: {summary:?}",
        cancelled.elapsed()
    );
    assert_eq!(
        Stats::get(&stats.lines_not_spooled),
        0,
        "the output came back before the encoder gave up: {stats:?}"
    );

    let mut stored = Vec::new();
    line_slots(&std::fs::read(&output).unwrap_or_default(), &mut stored);
    spooled_slots(&dir.path().join("data/spool"), &mut stored);
    let stored_set: BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(stored_set.len(), stored.len(), "a reading stored twice");
    let again = redelivered(broker.port(), "emgate-shutdown").await;
    let again_set: BTreeSet<i64> = again.iter().copied().collect();
    assert_eq!(again_set.len(), again.len(), "a message redelivered twice");

    let both: Vec<i64> = stored_set.intersection(&again_set).copied().collect();
    assert!(
        both.is_empty(),
        "{} of {} stored messages were never acknowledged (the client \
         disconnected while the encoder was still spooling) and were \
         redelivered: {both:?}; stats {stats:?}",
        both.len(),
        stored.len()
    );
    let published: BTreeSet<i64> = (0..total).map(|i| reading(base, i).0).collect();
    let seen: BTreeSet<i64> = stored_set.union(&again_set).copied().collect();
    let lost: Vec<i64> = published.difference(&seen).copied().collect();
    assert!(lost.is_empty(), "neither stored nor redelivered: {lost:?}");
    assert_eq!(seen, published, "only published messages");
    assert_eq!(
        Stats::get(&stats.mqtt_acked),
        stored.len() as u64,
        "acknowledged exactly what was stored"
    );
}
