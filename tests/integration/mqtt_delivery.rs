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

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use emgate::telemetry::Stats;
use tokio_util::sync::CancellationToken;

use crate::support::config::{GatewayToml, Site, mqtt};
use crate::support::influxd::Influxd;
use crate::support::mosquitto::{Mosquitto, MosquittoOptions, publish_all};
use crate::support::spool::{lines, meter_slot, pending_records};
use crate::support::test_gateway::InProcess;
use crate::support::{lazy, wait_for};

const SITE: &str = "D1";
const METER: &str = "w1";

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// What both gateways of this file share: a 4 KiB spool (policy `block`),
/// readings only, broker `plant` with a persistent session for `client_id`
/// subscribed with QoS 1, and the one MQTT meter.
fn with_plant(toml: GatewayToml, broker_port: u16, client_id: &str) -> GatewayToml {
    toml.section(
        "spool",
        "max_bytes = 4096\nsegment_bytes = 4096\npolicy = \"block\"",
    )
    .readings_only()
    .toml(&format!(
        r#"
[[mqtt]]
id = "plant"
host = "127.0.0.1"
port = {broker_port}
client_id = "{client_id}"
clean_session = false
reconnect_initial_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscriptions]]
topic = "energy/{{site}}/{{meter}}/up"
qos = 1
"#
    ))
    .site(
        "site.toml",
        Site::new(SITE, "mqtt delivery test").meter(mqtt(METER, "water", "water_meter", "plant")),
    )
}

fn gateway(influx: &Influxd, db: &str, broker_port: u16) -> GatewayToml {
    with_plant(
        GatewayToml::new("delivery").influx_v1(
            &influx.url(),
            db,
            "batch_size = 100\nflush_interval_ms = 100",
        ),
        broker_port,
        "emgate-delivery",
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
    let got = Cell::new(0);
    let message = lazy(|| {
        format!(
            "{n} readings in InfluxDB (it holds {}): {}",
            got.get(),
            what()
        )
    });
    wait_for(&message, Duration::from_mins(2), async || {
        got.set(
            influx
                .count(db, "SELECT count(flow_m3h) FROM reading")
                .await,
        );
        assert!(
            got.get() <= n,
            "more points ({}) than messages published ({n}): {}",
            got.get(),
            what()
        );
        got.get() == n
    })
    .await;
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
    let mut influx = Influxd::with_database(DB).await;
    let mut broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let gw = InProcess::start_files(gateway(&influx, DB, broker.port()).write());
    let stats = std::sync::Arc::clone(&gw.stats);
    // The session (and its subscription) must exist before the first
    // publish, or the broker has nobody to queue for.
    gw.wait_for("a subscription", Duration::from_secs(30), |s| {
        Stats::get(&s.mqtt_subscriptions) > 0
    })
    .await;

    let base = now_s() - 3600;
    let (first, total) = (400, 700);
    influx.stop();
    publish_all(broker.port(), None, "pub-1", &messages(base, 0..first)).await;
    // The spool is full: messages are in flight between broker and spool.
    gw.wait_for("a full spool", Duration::from_mins(1), |s| {
        Stats::get(&s.spool_full_waits) > 0
    })
    .await;
    broker.stop();
    broker.start_again();
    influx.start_again();
    publish_all(broker.port(), None, "pub-2", &messages(base, first..total)).await;

    let log = || format!("stats {stats:?}\n--- mosquitto log ---\n{}", broker.log());
    wait_for_count(&influx, DB, u64::try_from(total).expect("n"), &log).await;
    let (summary, _) = gw.stop().await;
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
    let mut influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let files = gateway(&influx, DB, broker.port()).write();

    let mut gw = files.spawn("first");
    gw.wait_log("mqtt subscribed", 1).await;

    let base = now_s() - 3600;
    let (first, second, total) = (300, 600, 900);
    influx.stop();
    publish_all(broker.port(), None, "pub-1", &messages(base, 0..first)).await;
    // Killed with the spool full: messages in flight, not acked.
    gw.wait_log("spool full (policy block)", 1).await;
    gw.kill9();
    influx.start_again();
    // Queued by the broker for the persistent session while nobody listens.
    publish_all(broker.port(), None, "pub-2", &messages(base, first..second)).await;
    let mut gw = files.spawn("second");
    publish_all(broker.port(), None, "pub-3", &messages(base, second..total)).await;

    let log = || format!("--- gateway log ---\n{}", gw.log());
    wait_for_count(&influx, DB, u64::try_from(total).expect("n"), &log).await;
    gw.terminate().await;
    assert_exactly(&influx, DB, base, total).await;
}

/// The shutdown deadline of the full-spool shutdown test: the encoder may
/// wait half of it (15 s) for the spool before giving up.
const LONG_SHUTDOWN_SECS: u64 = 30;

/// A gateway with a 4 KiB spool (policy `block`) writing to a file sink at
/// `output`, and a 30 s shutdown deadline.
fn full_spool_gateway(output: &std::path::Path, broker_port: u16) -> GatewayToml {
    with_plant(
        GatewayToml::new("shutdown")
            .gateway_keys(&format!("shutdown_timeout_secs = {LONG_SHUTDOWN_SECS}"))
            .section(
                "file_sink",
                &format!(
                    "path = {:?}\nbatch_size = 100\nflush_interval_ms = 100",
                    output.display().to_string()
                ),
            ),
        broker_port,
        "emgate-shutdown",
    )
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
    // The shares of the deadline are timed: not beside the CPU-heavy tests.
    let _timed = crate::support::timed().await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let out_dir = tempfile::tempdir().expect("tempdir");
    // The output's directory is a plain file: every write fails (retryable)
    // until the test removes it.
    let blocker = out_dir.path().join("out");
    std::fs::write(&blocker, b"not a directory").expect("blocker file");
    let output = blocker.join("lines.lp");
    let files = full_spool_gateway(&output, broker.port()).write();
    let config = Arc::new(files.load());
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(emgate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    wait_for(
        "the MQTT subscription",
        Duration::from_secs(30),
        async || Stats::get(&stats.mqtt_subscriptions) > 0,
    )
    .await;

    let base = now_s() - 3600;
    let total = 200;
    publish_all(broker.port(), None, "pub", &messages(base, 0..total)).await;
    // The spool is full and messages wait in the channel: received, not
    // spooled, not acknowledged.
    wait_for(
        lazy(|| format!("a full spool with messages waiting: {stats:?}")),
        Duration::from_mins(1),
        async || {
            Stats::get(&stats.spool_full_waits) > 0
                && Stats::get(&stats.mqtt_messages) > Stats::get(&stats.lines_spooled)
        },
    )
    .await;

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

    let written = std::fs::read(&output).unwrap_or_default();
    let pending = pending_records(&files.spool_dir());
    let stored: Vec<i64> = lines(&written)
        .chain(pending.iter().flat_map(|r| lines(r)))
        .map(|l| meter_slot(l).1)
        .collect();
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
