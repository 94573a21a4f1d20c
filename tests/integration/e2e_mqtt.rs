//! MQTT ingestion end to end: a real Mosquitto, the whole gateway
//! (in-process `app::run`, or the `emgate run` binary where its log is the
//! evidence), a real InfluxDB 1.x. Every payload format and time stamp rule
//! must land as exactly the points and values published; credentials and
//! TLS must work (wrong credentials are logged and retried without a crash);
//! a corpus of bad messages is counted per reason, dead-lettered and acked,
//! and a good message after them still arrives.

use std::collections::BTreeMap;
use std::time::Duration;

use emgate::sinks::uploader::SinkSummary;
use emgate::telemetry::Stats;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, mqtt};
use crate::support::influxd::Influxd;
use crate::support::mosquitto::{Collector, Mosquitto, MosquittoOptions, publish_all};
use crate::support::test_gateway::InProcess;
use crate::support::{lazy, wait_for};

const SITE: &str = "F1";

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A site in UTC+8 with water meters `ids`, all on broker "plant".
fn site(ids: &[&str]) -> Site {
    let mut s = Site::new(SITE, "mqtt e2e").timezone("Asia/Shanghai");
    for id in ids {
        s = s.meter(mqtt(id, "water", "water_meter", "plant").level(2));
    }
    s
}

/// The gateway: InfluxDB `db`, readings only, `mqtt` (the `[[mqtt]]`
/// tables), and the site with `meters`.
fn gateway(influx: &Influxd, db: &str, mqtt: &str, meters: &[&str]) -> GatewayToml {
    GatewayToml::new("mqtt-e2e")
        .influx_v1(
            &influx.url(),
            db,
            "batch_size = 100\nflush_interval_ms = 100",
        )
        .readings_only()
        .toml(mqtt)
        .site("site.toml", site(meters))
}

/// An in-process gateway.
struct Running(InProcess);

impl Running {
    fn start(influx: &Influxd, db: &str, mqtt: &str, meters: &[&str]) -> Running {
        Running(InProcess::start_files(
            gateway(influx, db, mqtt, meters).write(),
        ))
    }

    /// Waits until the broker accepted `n` subscription filters.
    async fn subscribed(&self, n: u64) {
        self.wait("subscriptions", &|s| Stats::get(&s.mqtt_subscriptions) >= n)
            .await;
    }

    async fn wait(&self, what: &str, done: &dyn Fn(&Stats) -> bool) {
        self.0.wait_for(what, Duration::from_mins(1), done).await;
    }

    async fn stop(self) -> (SinkSummary, std::sync::Arc<Stats>) {
        self.0.stop().await
    }
}

/// (volume_m3, flow_m3h, q) per slot of `meter`; a missing value is NaN.
async fn points(influx: &Influxd, db: &str, meter: &str) -> BTreeMap<i64, (f64, f64, i64)> {
    influx
        .rows(
            db,
            &format!("SELECT volume_m3, flow_m3h, q FROM reading WHERE meter = '{meter}'"),
        )
        .await
        .iter()
        .map(|r| {
            (
                r[0].as_i64().expect("epoch seconds"),
                (
                    r[1].as_f64().unwrap_or(f64::NAN),
                    r[2].as_f64().unwrap_or(f64::NAN),
                    r[3].as_i64().expect("q"),
                ),
            )
        })
        .collect()
}

/// A message to publish: topic and payload.
type Message = (String, Vec<u8>);

fn msg(topic: &str, payload: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (topic.to_owned(), payload.into())
}

/// `t` as local civil time of the site (UTC+8), without an offset.
fn shanghai_civil(t: i64) -> String {
    let ts = jiff::Timestamp::from_second(t).expect("timestamp");
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz");
    tz.to_datetime(ts).to_string()
}

fn rfc3339_utc(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .expect("timestamp")
        .to_string()
}

const FORMATS: &str = r#"
[[mqtt]]
id = "plant"
host = "127.0.0.1"
port = PORT

[[mqtt.subscriptions]]
topic = "flat/{site}/{meter}"

[[mqtt.subscriptions]]
topic = "ptr/{meter}"
timestamp_field = "/meta/t"
timestamp_unit = "ms"
fields = { "/data/v" = "volume_m3", "/data/f" = "flow_m3h" }
scale = { flow_m3h = 0.5 }

[[mqtt.subscriptions]]
topic = "arr/{site}"
array = "/readings"
meter_field = "meter"
timestamp_unit = "rfc3339"

[[mqtt.subscriptions]]
topic = "lp/#"
format = "line_protocol"
timestamp_unit = "ns"

[[mqtt.subscriptions]]
topic = "csv/{site}"
format = "csv"

[[mqtt.subscriptions]]
topic = "rcpt/{meter}"
timestamp = "receipt"
"#;

/// Publishes one flat JSON reading of `m1` (`volume_m3`, `flow_m3h`) through
/// the broker on `port` into database `db` (plain listener, with `auth` when given), waits for
/// it to be written, stops the gateway and checks the gateway connected once
/// and InfluxDB holds exactly that reading, good.
async fn one_reading_arrives(
    gw: Running,
    influx: &Influxd,
    db: &str,
    port: u16,
    auth: Option<(&str, &str)>,
    (volume, flow): (f64, f64),
) {
    gw.subscribed(1).await;
    let t = now_s() - 60;
    publish_all(
        port,
        auth,
        "pub",
        &[msg(
            &format!("flat/{SITE}/m1"),
            format!(r#"{{"ts":{t},"volume_m3":{volume},"flow_m3h":{flow}}}"#),
        )],
    )
    .await;
    gw.wait("1 reading written", &|s| Stats::get(&s.lines_written) >= 1)
        .await;
    let (_, stats) = gw.stop().await;
    assert_eq!(Stats::get(&stats.mqtt_connects), 1);
    assert_eq!(
        points(influx, db, "m1").await,
        BTreeMap::from([(t, (volume, flow, 0))])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_time_stamp_rule_lands_exactly() {
    const DB: &str = "formats";
    let influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let mqtt = FORMATS.replace("PORT", &broker.port().to_string());
    let gw = Running::start(&influx, DB, &mqtt, &["m1", "m2", "m3", "m4", "m5", "m6"]);
    gw.subscribed(6).await;

    let t = now_s() - 600;
    let (t1, t2, t3, t4, t5) = (t, t + 100, t + 200, t + 300, t + 400);
    let before = now_s();
    publish_all(
        broker.port(),
        None,
        "pub",
        &[
            // Flat JSON, seconds; a fractional stamp is floored; an absent
            // point has no value (quality `exception` = 2).
            msg(
                &format!("flat/{SITE}/m1"),
                format!(r#"{{"ts":{t1},"volume_m3":10.5,"flow_m3h":2.25}}"#),
            ),
            msg(
                &format!("flat/{SITE}/m1"),
                format!(r#"{{"ts":{}.75,"volume_m3":10.75}}"#, t1 + 1),
            ),
            // Pointers, milliseconds, scale.
            msg(
                "ptr/m2",
                format!(
                    r#"{{"meta":{{"t":{}}},"data":{{"v":20,"f":3}}}}"#,
                    t2 * 1000 + 999
                ),
            ),
            // An array of readings naming their meter; RFC 3339 with an
            // offset, and without one (the site's zone).
            msg(
                &format!("arr/{SITE}"),
                format!(
                    r#"{{"readings":[{{"meter":"m3","ts":"{}","volume_m3":30,"flow_m3h":1}},{{"meter":"m3","ts":"{}","volume_m3":31,"flow_m3h":2}}]}}"#,
                    rfc3339_utc(t3),
                    shanghai_civil(t3 + 1)
                ),
            ),
            // Line protocol, nanoseconds, meter tag.
            msg(
                "lp/any/where",
                format!(
                    "reading,meter=m4 volume_m3=40,flow_m3h=4.5 {}\nreading,meter=m4 volume_m3=41,flow_m3h=5 {}\n",
                    i128::from(t4) * 1_000_000_000,
                    i128::from(t4 + 1) * 1_000_000_000
                ),
            ),
            // CSV: meter, seconds, field=value.
            msg(
                &format!("csv/{SITE}"),
                format!(
                    "m5,{t5},volume_m3=50,flow_m3h=6\nm5,{},volume_m3=51,flow_m3h=7\n",
                    t5 + 1
                ),
            ),
            // Receipt time.
            msg("rcpt/m6", r#"{"volume_m3":60,"flow_m3h":8}"#),
        ],
    )
    .await;
    let after = now_s();
    gw.wait("10 readings written", &|s| {
        Stats::get(&s.lines_written) >= 10
    })
    .await;
    let (summary, stats) = gw.stop().await;
    assert_eq!(summary.lines_written, 10, "{stats:?}");
    assert_eq!(Stats::get(&stats.mqtt_messages), 7);
    assert_eq!(Stats::get(&stats.mqtt_readings), 10);
    assert_eq!(Stats::get(&stats.mqtt_rejected), 0);
    assert_eq!(Stats::get(&stats.mqtt_acked), 7);

    let m1 = points(&influx, DB, "m1").await;
    assert_eq!(m1.len(), 2, "{m1:?}");
    assert_eq!(m1[&t1], (10.5, 2.25, 0));
    let (v, f, q) = m1[&(t1 + 1)];
    assert_eq!((v, q), (10.75, 2));
    assert!(f.is_nan(), "absent flow has no value: {f}");
    assert_eq!(
        points(&influx, DB, "m2").await,
        BTreeMap::from([(t2, (20.0, 1.5, 0))])
    );
    assert_eq!(
        points(&influx, DB, "m3").await,
        BTreeMap::from([(t3, (30.0, 1.0, 0)), (t3 + 1, (31.0, 2.0, 0))])
    );
    assert_eq!(
        points(&influx, DB, "m4").await,
        BTreeMap::from([(t4, (40.0, 4.5, 0)), (t4 + 1, (41.0, 5.0, 0))])
    );
    assert_eq!(
        points(&influx, DB, "m5").await,
        BTreeMap::from([(t5, (50.0, 6.0, 0)), (t5 + 1, (51.0, 7.0, 0))])
    );
    let m6 = points(&influx, DB, "m6").await;
    assert_eq!(m6.len(), 1, "{m6:?}");
    let (&slot, &values) = m6.iter().next().expect("m6 point");
    assert!(
        (before..=after).contains(&slot),
        "receipt slot {slot} within the publishing [{before}, {after}]"
    );
    assert_eq!(values, (60.0, 8.0, 0));
}

/// A broker that lets in only user "gw" with password "s3cret".
fn users_only() -> MosquittoOptions {
    MosquittoOptions {
        allow_anonymous: false,
        user: Some(("gw".to_owned(), "s3cret".to_owned())),
        tls: false,
    }
}

/// Broker "plant" on 127.0.0.1:`port` with `keys`, and one subscription
/// to flat JSON on `flat/{site}/{meter}` with `subscription_keys`.
fn plant(port: u16, keys: &str, subscription_keys: &str) -> String {
    format!(
        "[[mqtt]]\nid = \"plant\"\nhost = \"127.0.0.1\"\nport = {port}\n{keys}\n\n\
         [[mqtt.subscriptions]]\ntopic = \"flat/{{site}}/{{meter}}\"\n{subscription_keys}\n"
    )
}

fn credentials_mqtt(port: u16, password: &str) -> String {
    plant(
        port,
        &format!(
            "username = \"gw\"\npassword = \"{password}\"\n\
             reconnect_initial_ms = 100\nreconnect_max_ms = 200"
        ),
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_credentials_connect() {
    const DB: &str = "creds";
    let influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&users_only());
    let gw = Running::start(
        &influx,
        DB,
        &credentials_mqtt(broker.port(), "s3cret"),
        &["m1"],
    );
    one_reading_arrives(
        gw,
        &influx,
        DB,
        broker.port(),
        Some(("gw", "s3cret")),
        (1.0, 2.0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_logged_once_and_retried() {
    let influx = Influxd::start();
    let broker = Mosquitto::start(&users_only());
    let files = gateway(
        &influx,
        "unused",
        &credentials_mqtt(broker.port(), "wrong"),
        &["m1"],
    )
    .write();
    let mut gw = files.spawn("gw");
    // Retried: the broker sees several refused attempts.
    let what = lazy(|| {
        format!(
            "3 refused attempts\n--- mosquitto ---\n{}\n--- gateway ---\n{}",
            broker.log(),
            gw.log()
        )
    });
    wait_for(&what, Duration::from_mins(1), async || {
        broker.log().matches("not authorised").count() >= 3
    })
    .await;
    gw.terminate().await;
    let log = gw.log();
    let failures: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "mqtt connection failed; retrying")
        .collect();
    assert_eq!(failures.len(), 1, "logged once, not per attempt:\n{log}");
    let error = failures[0]["fields"]["error"]
        .as_str()
        .expect("error field");
    assert!(
        error.contains("NotAuthorized") || error.contains("BadUserNamePassword"),
        "the refusal is named: {error}"
    );
    assert!(!log.contains("\"mqtt connected\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_test_ca() {
    const DB: &str = "tls";
    let influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions {
        allow_anonymous: true,
        user: None,
        tls: true,
    });
    let ca = broker.ca_file().display().to_string();
    let mqtt = plant(
        broker.tls_port(),
        &format!("tls = {{ ca_file = {ca:?} }}"),
        "",
    );
    let gw = Running::start(&influx, DB, &mqtt, &["m1"]);
    one_reading_arrives(gw, &influx, DB, broker.port(), None, (7.0, 0.5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_dead_lettered_and_acked() {
    const DB: &str = "corpus";
    let influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let dead = Collector::start(broker.port(), "dead/letters").await;
    let mqtt = plant(
        broker.port(),
        "max_payload_bytes = 256\ndead_letter_topic = \"dead/letters\"",
        "",
    );
    let gw = Running::start(&influx, DB, &mqtt, &["m1"]);
    gw.subscribed(1).await;
    let t = now_s() - 60;
    let m1 = format!("flat/{SITE}/m1");
    let corpus: Vec<(&str, &str, Message)> = vec![
        ("too_large", "?", msg(&m1, vec![b' '; 300])),
        ("not_utf8", "?", msg(&m1, vec![b'{', 0xff, 0xfe, b'}'])),
        ("malformed", "?", msg(&m1, format!(r#"{{"ts":{t},"#))),
        ("malformed", "?", msg(&m1, "[1,2,3]")),
        (
            "wrong_type",
            "m1",
            msg(&m1, format!(r#"{{"ts":{t},"volume_m3":"lots"}}"#)),
        ),
        (
            "unknown_meter",
            "?",
            msg(
                &format!("flat/{SITE}/nosuch"),
                format!(r#"{{"ts":{t},"volume_m3":1}}"#),
            ),
        ),
        (
            "unknown_meter",
            "m1",
            msg("flat/OTHER/m1", format!(r#"{{"ts":{t},"volume_m3":1}}"#)),
        ),
        (
            "missing_field",
            "m1",
            msg(&m1, format!(r#"{{"ts":{t},"pressure":1}}"#)),
        ),
        (
            "bad_timestamp",
            "m1",
            msg(&m1, r#"{"ts":100,"volume_m3":1}"#),
        ),
        ("bad_timestamp", "m1", msg(&m1, r#"{"volume_m3":1}"#)),
    ];
    let mut messages: Vec<(String, Vec<u8>)> = corpus.iter().map(|(_, _, m)| m.clone()).collect();
    messages.push(msg(
        &m1,
        format!(r#"{{"ts":{t},"volume_m3":5,"flow_m3h":1.5}}"#),
    ));
    publish_all(broker.port(), None, "pub", &messages).await;
    gw.wait("the good reading written", &|s| {
        Stats::get(&s.lines_written) >= 1
    })
    .await;
    gw.wait("every ack", &|s| Stats::get(&s.mqtt_acked) >= 11)
        .await;
    let (summary, stats) = gw.stop().await;

    assert_eq!(summary.lines_written, 1);
    assert_eq!(
        points(&influx, DB, "m1").await,
        BTreeMap::from([(t, (5.0, 1.5, 0))])
    );
    assert_eq!(Stats::get(&stats.mqtt_messages), 11);
    assert_eq!(Stats::get(&stats.mqtt_readings), 1);
    assert_eq!(Stats::get(&stats.mqtt_rejected), 10);
    assert_eq!(Stats::get(&stats.mqtt_acked), 11);
    let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_meter: BTreeMap<String, u64> = BTreeMap::new();
    for (reason, meter, _) in &corpus {
        *by_reason.entry(reason).or_default() += 1;
        *by_meter.entry(format!("{meter}:{reason}")).or_default() += 1;
    }
    assert_eq!(stats.mqtt_rejections_by_reason(), by_reason);
    assert_eq!(stats.mqtt_rejections_by_meter(), by_meter);

    // Dead letters (QoS 0 from the gateway): one per rejection, in order.
    let what = lazy(|| format!("every dead letter; got {:?}", dead.take()));
    wait_for(&what, Duration::from_secs(10), async || {
        dead.take().len() >= corpus.len()
    })
    .await;
    let letters = dead.take();
    assert_eq!(letters.len(), corpus.len());
    for ((reason, _, (topic, payload)), (dl_topic, body)) in corpus.iter().zip(&letters) {
        assert_eq!(dl_topic, "dead/letters");
        let v: Value = serde_json::from_slice(body).expect("dead letter is JSON");
        assert_eq!(v["reason"], *reason, "{v}");
        assert_eq!(v["topic"], topic.as_str(), "{v}");
        assert_eq!(
            v["payload"],
            String::from_utf8_lossy(payload).as_ref(),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_persistent_session_keeps_messages_while_the_gateway_is_away() {
    const DB: &str = "v5";
    let influx = Influxd::with_database(DB).await;
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let mqtt = plant(
        broker.port(),
        "protocol = \"5\"\nclient_id = \"emgate-v5\"\nclean_session = false",
        "qos = 2",
    );
    let t = now_s() - 60;
    let reading = |i: i64| {
        msg(
            &format!("flat/{SITE}/m1"),
            format!(r#"{{"ts":{},"volume_m3":{},"flow_m3h":1}}"#, t + i, 100 + i),
        )
    };
    let gw = Running::start(&influx, DB, &mqtt, &["m1"]);
    gw.subscribed(1).await;
    publish_all(broker.port(), None, "pub-1", &[reading(0)]).await;
    gw.wait("1 reading written", &|s| Stats::get(&s.lines_written) >= 1)
        .await;
    gw.stop().await;
    // Nobody listens: the broker keeps these for the session (MQTT 5 needs
    // a session expiry interval for that).
    publish_all(broker.port(), None, "pub-2", &[reading(1), reading(2)]).await;
    let gw = Running::start(&influx, DB, &mqtt, &["m1"]);
    gw.wait("2 readings written", &|s| Stats::get(&s.lines_written) >= 2)
        .await;
    let (_, stats) = gw.stop().await;
    assert_eq!(Stats::get(&stats.mqtt_acked), 2);
    assert_eq!(
        points(&influx, DB, "m1").await,
        BTreeMap::from([
            (t, (100.0, 1.0, 0)),
            (t + 1, (101.0, 1.0, 0)),
            (t + 2, (102.0, 1.0, 0))
        ])
    );
}
