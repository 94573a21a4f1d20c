//! The simulator's MQTT meters seen from a real Mosquitto: a plain rumqttc
//! subscriber receives what the simulator publishes and every topic and
//! payload is compared, byte for byte, with what the design's syntax says
//! the reading of that slot must look like (values from
//! [`Simulator::value_at`]). Faults: `no_response` publishes nothing,
//! `sentinel` and `exception` publish payloads no decoder can read.
//!
//! The test starts its own broker on a free port; a missing `mosquitto`
//! fails the test with an install hint. Waits are bounded; nothing asserts
//! how long anything took.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use emgate::config::{Config, MqttSubscription, PayloadFormat, SimFault, TimeUnit, TimestampRule};
use emgate::model::{BrokerId, MeterId, Quality, ReadingBatch};
use emgate::sim::mqtt::{PayloadKind, unscale};
use emgate::sim::{SimOptions, Simulator};
use emgate::sources::mqtt::BrokerDecoder;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::mosquitto::{Mosquitto, MosquittoOptions};

const W_JSON: MeterId = MeterId(0);
const E_LP: MeterId = MeterId(1);
const H_CSV: MeterId = MeterId(2);
const W_SENTINEL: MeterId = MeterId(3);
const W_SILENT: MeterId = MeterId(4);
const H_EXCEPTION: MeterId = MeterId(5);

fn subscription(
    topic: &str,
    format: PayloadFormat,
    unit: TimeUnit,
    fields: &[(&str, &str)],
    scale: &[(&str, f64)],
) -> MqttSubscription {
    MqttSubscription {
        topic: topic.to_owned(),
        qos: 1,
        format,
        timestamp: TimestampRule::Payload {
            field: "ts".to_owned(),
            unit,
        },
        fields: fields
            .iter()
            .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()))
            .collect(),
        scale: scale.iter().map(|(p, s)| ((*p).to_owned(), *s)).collect(),
        array: None,
        meter_field: None,
    }
}

/// Six MQTT meters on broker `b` at `port`; the k-th meter uses the
/// (k mod 3)-th publishable subscription: json, line protocol, csv.
fn test_config(port: u16) -> Config {
    let main = format!(
        "[gateway]\nid = \"simmqtt\"\ntimezone = \"UTC\"\ndata_dir = \"data\"\n\n\
        [file_sink]\npath = \"data/out.lp\"\n\n\
        [simulator]\nfaults = [{{ meter = \"w-sentinel\", fault = \"sentinel\" }}, \
        {{ meter = \"w-silent\", fault = \"no_response\" }}, {{ meter = \"h-exc\", fault = \"exception\" }}]\n\n\
        [[mqtt]]\nid = \"b\"\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_initial_ms = 100\nreconnect_max_ms = 1000\n\n\
        [[mqtt.subscriptions]]\ntopic = \"t/json/{{site}}/{{meter}}\"\nformat = \"json\"\ntimestamp_unit = \"ms\"\n\
        fields = {{ \"/data/vol\" = \"volume_m3\", \"/data/flow\" = \"flow_m3h\" }}\n\
        scale = {{ volume_m3 = 0.001 }}\n\n\
        [[mqtt.subscriptions]]\ntopic = \"t/lp/{{site}}/{{meter}}\"\nformat = \"line_protocol\"\ntimestamp_unit = \"ns\"\n\n\
        [[mqtt.subscriptions]]\ntopic = \"t/csv/{{meter}}\"\nformat = \"csv\"\n\n\
        # Not publishable (a wildcard), and after the others, so it catches none of them.\n\
        [[mqtt.subscriptions]]\ntopic = \"t/#\"\nformat = \"csv\"\n"
    );
    let mut site = String::from("[site]\nid = \"s1\"\nname = \"MQTT site\"\n");
    for (id, energy, profile, interval) in [
        ("w-json", "water", "water_meter", 1),
        ("e-lp", "electricity", "eastron_sdm630", 2),
        ("h-csv", "heat", "heat_meter", 1),
        ("w-sentinel", "water", "water_meter", 1),
        ("w-silent", "water", "water_meter", 1),
        ("h-exc", "heat", "heat_meter", 1),
    ] {
        let _ = write!(
            site,
            "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = 2\nprofile = \"{profile}\"\n\
             broker = \"b\"\npoll_interval_secs = {interval}\n"
        );
    }
    emgate::config::from_parts(
        &main,
        &[("s1.toml", &site)],
        emgate::profiles::load::builtin(),
    )
    .expect("test config loads")
}

/// Subscribes to `t/#` on the broker and forwards every message.
async fn subscriber(port: u16) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let mut options = MqttOptions::new("sim-mqtt-test", "127.0.0.1", port);
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client
        .subscribe("t/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe request queued");
    let (tx, rx) = mpsc::unbounded_channel();
    let (acked_tx, acked_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client; // keeps the request channel open
        let mut acked = Some(acked_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(a) = acked.take() {
                        let _ = a.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic, p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("test subscriber lost the broker: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), acked_rx)
        .await
        .expect("subscription acknowledged within 10 s")
        .expect("subscriber task alive");
    rx
}

/// `name=value,...` of every point of `meter` at `slot`, in profile order.
fn csv_fields(config: &Config, sim: &Simulator, meter: MeterId, slot: i64) -> String {
    config
        .profile_of(meter)
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}={}", p.name, sim.value_at(meter, i, slot as f64)))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the meter behind `topic` must have published for the slot in `payload`.
fn expected(config: &Config, sim: &Simulator, topic: &str, payload: &str) -> String {
    match topic {
        "t/json/s1/w-json" => {
            let doc: serde_json::Value = serde_json::from_str(payload).expect("valid JSON");
            let ms = doc["ts"].as_i64().expect("ts in ms");
            assert_eq!(ms % 1000, 0, "slot in whole seconds");
            let t = (ms / 1000) as f64;
            let vol = sim.value_at(W_JSON, 0, t);
            let flow = sim.value_at(W_JSON, 1, t);
            // The gateway multiplies by 0.001: it gets the value back (or its neighbour ulp).
            let back = unscale(vol, 0.001) * 0.001;
            assert!(back == vol || back == vol.next_up() || back == vol.next_down());
            format!(
                r#"{{"ts":{ms},"data":{{"vol":{},"flow":{flow}}}}}"#,
                unscale(vol, 0.001)
            )
        }
        "t/lp/s1/e-lp" => {
            let ns: i64 = payload
                .rsplit(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("line ends with a time stamp");
            let slot = ns / 1_000_000_000;
            assert_eq!(ns % 1_000_000_000, 0, "slot in whole seconds");
            assert_eq!(slot % 2, 0, "2 s meter publishes at multiples of 2 s");
            format!(
                "reading,meter=e-lp {} {ns}",
                csv_fields(config, sim, E_LP, slot)
            )
        }
        "t/csv/h-csv" => {
            let slot: i64 = payload
                .split(',')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("second column is the slot");
            format!("h-csv,{slot},{}", csv_fields(config, sim, H_CSV, slot))
        }
        "t/json/s1/w-sentinel" => {
            let ms = payload
                .strip_prefix(r#"{"ts":"#)
                .and_then(|r| r.split(',').next())
                .expect("sentinel payload starts with the time stamp");
            format!(r#"{{"ts":{ms},"data":{{"vol":0xFFFF,"flow":0xFFFF}}}}"#)
        }
        "t/csv/h-exc" => {
            let slot = payload.split(',').nth(1).expect("slot column");
            format!("h-exc,{slot}")
        }
        other => panic!("unexpected topic {other:?} with payload {payload:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_format_and_fault() {
    let broker = Mosquitto::start(&MosquittoOptions::anonymous());
    let config = test_config(broker.port());
    let mut rx = subscriber(broker.port()).await;

    let shutdown = CancellationToken::new();
    let sim = Simulator::start(&config, shutdown.clone())
        .await
        .expect("simulator starts");
    assert_eq!(sim.mqtt_topic(W_JSON), Some("t/json/s1/w-json"));
    assert_eq!(sim.mqtt_topic(E_LP), Some("t/lp/s1/e-lp"));
    assert_eq!(sim.mqtt_topic(H_CSV), Some("t/csv/h-csv"));
    assert_eq!(sim.mqtt_topic(W_SENTINEL), Some("t/json/s1/w-sentinel"));
    assert_eq!(sim.mqtt_topic(W_SILENT), Some("t/lp/s1/w-silent"));
    assert_eq!(sim.mqtt_topic(H_EXCEPTION), Some("t/csv/h-exc"));

    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let wanted = [
        "t/json/s1/w-json",
        "t/lp/s1/e-lp",
        "t/csv/h-csv",
        "t/json/s1/w-sentinel",
        "t/csv/h-exc",
    ];
    while !(wanted.iter().all(|t| seen.contains_key(*t))
        && seen.get("t/json/s1/w-json").map_or(0, Vec::len) >= 3)
    {
        let (topic, payload) = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("not every meter published within 30 s; got {seen:?}"))
            .expect("subscriber alive");
        let payload = String::from_utf8(payload).expect("UTF-8 payload");
        seen.entry(topic).or_default().push(payload);
    }
    let mut checked = 0;
    for (topic, payloads) in &seen {
        for p in payloads {
            assert_eq!(*p, expected(&config, &sim, topic, p), "topic {topic}");
            checked += 1;
        }
    }
    // Fault payloads are no readings.
    for p in &seen["t/json/s1/w-sentinel"] {
        assert!(serde_json::from_str::<serde_json::Value>(p).is_err());
    }
    // The gateway's decoder reads every reading back exactly and rejects the faults.
    let mut decoder = BrokerDecoder::new(&config, BrokerId(0));
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64
    };
    for (topic, payloads) in &seen {
        for p in payloads {
            let mut batch = ReadingBatch::default();
            let result = decoder.decode(topic, p.as_bytes(), now_ms(), &mut batch);
            let meter = match topic.as_str() {
                "t/json/s1/w-sentinel" | "t/csv/h-exc" => {
                    let (rejection, _) = result.expect_err("fault payload rejected");
                    assert_eq!(rejection.reason(), "malformed", "{topic}: {p}");
                    assert!(batch.readings.is_empty());
                    continue;
                }
                "t/json/s1/w-json" => W_JSON,
                "t/lp/s1/e-lp" => E_LP,
                "t/csv/h-csv" => H_CSV,
                other => panic!("unexpected topic {other}"),
            };
            assert_eq!(result, Ok(1), "{topic}: {p}");
            let r = batch.readings[0];
            assert_eq!(r.meter, meter);
            let values = batch.values_of(&r);
            let n = config.profile_of(meter).points.len();
            assert_eq!(values.len(), n);
            for (i, v) in values.iter().enumerate() {
                let want = sim.value_at(meter, i, r.slot as f64);
                let want = if meter == W_JSON && i == 0 {
                    unscale(want, 0.001) * 0.001
                } else {
                    want
                };
                assert_eq!(
                    (v.value, v.quality),
                    (want, Quality::GOOD),
                    "{topic} point {i}"
                );
            }
        }
    }
    // The silent meter's slots came round with the others' (the publisher
    // takes slots in time order, and w-json has had three), yet nothing came.
    assert!(!seen.contains_key("t/lp/s1/w-silent"));
    assert!(sim.requests_under_fault(W_SILENT) >= 2);
    assert!(sim.published() >= checked as u64);
    assert_eq!(sim.mqtt_connects(), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn unreachable_broker_is_retried_and_payloads_follow_faults() {
    // A port nobody listens on: the publisher retries in the background.
    let config = test_config(crate::support::free_port());
    let shutdown = CancellationToken::new();
    let t0 = 1_767_225_600.0;
    let sim = Simulator::start_with(
        &config,
        shutdown.clone(),
        SimOptions {
            frozen_time: Some(t0),
            ..SimOptions::default()
        },
    )
    .await
    .expect("an absent broker does not stop the simulator");
    assert_eq!(sim.mqtt_connects(), 0);

    let slot = 1_767_225_660;
    let payload =
        |m| String::from_utf8(sim.mqtt_payload(m, slot).expect("published")).expect("utf-8");
    assert_eq!(
        payload(H_CSV),
        format!("h-csv,{slot},{}", csv_fields(&config, &sim, H_CSV, slot))
    );
    // Frozen at t0: the slot's time stamp, t0's values.
    sim.set_fault(H_CSV, Some(SimFault::Frozen));
    let at_t0 = config
        .profile_of(H_CSV)
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}={}", p.name, sim.value_at(H_CSV, i, t0)))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(payload(H_CSV), format!("h-csv,{slot},{at_t0}"));
    // A counter reset at t0: counters count from zero, a minute later they hold a minute's worth.
    sim.set_fault(H_CSV, Some(SimFault::CounterReset));
    let reset = payload(H_CSV);
    let heat: f64 = reset
        .split(',')
        .find_map(|f| f.strip_prefix("heat_gj="))
        .and_then(|v| v.parse().ok())
        .expect("heat_gj field");
    assert!(heat < sim.value_at(H_CSV, 0, slot as f64));
    assert_eq!(sim.mqtt_payload(W_SILENT, slot), None);
    assert_eq!(payload(H_EXCEPTION), format!("h-exc,{slot}"));
    assert_eq!(sim.requests_under_fault(H_CSV), 1);
    shutdown.cancel();
}

#[test]
fn meters_without_a_publishable_subscription_are_skipped() {
    let mut config = test_config(1883);
    config.mqtt[0].subscriptions = vec![
        // A wildcard: cannot be published to.
        subscription(
            "x/+/{meter}",
            PayloadFormat::Json,
            TimeUnit::Seconds,
            &[],
            &[],
        ),
        // Publishable, but the gateway would match the first one.
        subscription(
            "x/{site}/{meter}",
            PayloadFormat::Json,
            TimeUnit::Seconds,
            &[],
            &[],
        ),
        // JSON without {meter} and without meter_field: nothing names the meter.
        subscription("y/{site}", PayloadFormat::Json, TimeUnit::Seconds, &[], &[]),
    ];
    let (plans, skipped) = emgate::sim::mqtt::plan(&config);
    assert!(plans.is_empty());
    assert_eq!(skipped.len(), 6);
    assert_eq!(
        skipped[0].1.to_string(),
        "no subscription of broker \"b\" can be published to for this meter (templates need only \
         literal levels and {site}/{meter}, a way to name the meter, and no earlier subscription \
         catching the topic)"
    );

    // With meter_field the JSON one names the meter itself; every meter uses it.
    config.mqtt[0].subscriptions[2].meter_field = Some("meter".to_owned());
    let (plans, skipped) = emgate::sim::mqtt::plan(&config);
    assert!(skipped.is_empty());
    assert!(
        plans
            .iter()
            .all(|p| p.topic == "y/s1" && p.subscription == 2)
    );
    let mut buf = Vec::new();
    let values = vec![1.5; 17];
    plans[0]
        .encoder
        .encode(1_767_225_600, &values, PayloadKind::Normal, &mut buf);
    assert_eq!(
        String::from_utf8(buf).expect("utf-8"),
        r#"{"ts":1767225600,"meter":"w-json","volume_m3":1.5,"flow_m3h":1.5}"#
    );
}
