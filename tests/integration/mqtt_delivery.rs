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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use emgate::stats::Stats;

use crate::support::config::{GatewayToml, Site, mqtt};
use crate::support::influxd::Influxd;
use crate::support::mosquitto::{Mosquitto, MosquittoOptions, publish_all};
use crate::support::test_gateway::InProcess;
use crate::support::{lazy, wait_for};

const SITE: &str = "D1";
const METER: &str = "w1";

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn gateway(influx: &Influxd, db: &str, broker_port: u16) -> GatewayToml {
    GatewayToml::new("delivery")
        .section(
            "spool",
            "max_bytes = 4096\nsegment_bytes = 4096\npolicy = \"block\"",
        )
        .influx_v1(
            &influx.url(),
            db,
            "batch_size = 100\nflush_interval_ms = 100",
        )
        .readings_only()
        .toml(&format!(
            r#"
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
"#
        ))
        .site(
            "site.toml",
            Site::new(SITE, "mqtt delivery test").meter(mqtt(
                METER,
                "water",
                "water_meter",
                "plant",
            )),
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
