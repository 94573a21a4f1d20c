//! Simulated MQTT meters: payload encoders for the three formats the gateway
//! subscribes to, and the task that publishes every MQTT meter of a
//! configuration to its broker.
//!
//! The encoders are written from the configuration syntax of the MQTT design
//! (`[[mqtt.subscriptions]]`), independently of the gateway's decoder, so the
//! end-to-end tests prove the two read the syntax the same way.
//!
//! # Which topic a meter publishes to
//! A subscription's topic template can be published to when it has no `+` or
//! `#` (only literal levels and `{site}` / `{meter}`), the payload can name
//! the meter (`{meter}` in the template, or `meter_field` for JSON, or the
//! line-protocol tag / CSV column), and the filled topic is not caught first
//! by an earlier subscription of the broker (the gateway takes the first
//! match). The k-th MQTT meter of a broker (configuration order) uses the
//! (k mod n)-th of its n publishable subscriptions, so a broker with one JSON,
//! one line-protocol and one CSV subscription gets every format. A meter
//! without one is skipped with a warning.
//!
//! # Payloads
//! One reading per message, time stamp = the slot. Fields: the subscription's
//! `fields` mapping (JSON pointers such as `/data/ep` become nested objects),
//! or the profile's point names when it is empty; the value is
//! [`Simulator::value_at`](super::Simulator::value_at) divided by the point's
//! `scale`, chosen so that the gateway's `number × scale` gives the value back
//! bit for bit whenever such a number exists. Points the mapping does not
//! cover are not published (the gateway marks them missing).
//! * JSON: `{"ts":1767225600,"import_kwh":1234.56}`; with `array`, the reading
//!   object inside an array at that pointer; with `meter_field`, the meter id
//!   in the reading (and at the top level when the array is nested).
//! * Line protocol: `reading,meter=<id> import_kwh=1234.56 1767225600`.
//! * CSV: `<id>,1767225600,import_kwh=1234.56`.
//!
//! Time stamps are written in `timestamp_unit` (integers for s / ms / ns,
//! `2026-01-01T00:00:00Z` for RFC 3339). With `timestamp = "receipt"` JSON and
//! line protocol carry none; CSV keeps its positional column (whole seconds).
//!
//! # Faults
//! `no_response` publishes nothing; `exception` publishes the reading cut off
//! before its fields (truncated JSON, a line without fields, a CSV row without
//! fields); `sentinel` writes every value as `0xFFFF`, the register pattern of
//! a missing value, which is not a number in any of the three formats. Both
//! must be rejected by the gateway. `counter_reset`, `frozen` and `spike`
//! change the values exactly as they do for Modbus reads.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::meter::Serve;
use crate::backoff::Backoff;
use crate::clock::now_ms;
use crate::config::{Config, MqttBroker, PayloadFormat, SimFault};
use crate::model::{BrokerId, MeterId};
use crate::profiles::codec::{decode_raw, scale_raw};

mod encode;

pub use encode::{PayloadEncoder, PayloadKind};

/// Why a meter cannot be published (it is skipped with a warning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// No subscription of the broker can carry this meter.
    #[error(
        "no subscription of broker {broker:?} can be published to for this meter (templates need \
         only literal levels and {{site}}/{{meter}}, a way to name the meter, and no earlier \
         subscription catching the topic)"
    )]
    NoPublishableSubscription {
        /// Broker id.
        broker: String,
    },
    /// The subscription's mapping covers no point of the meter's profile.
    #[error("subscription {topic:?} maps no point of profile {profile:?}")]
    NoFields {
        /// The subscription's topic template.
        topic: String,
        /// The meter's profile.
        profile: String,
    },
    /// The payload cannot be written as configured.
    #[error("subscription {topic:?}: {reason}")]
    Unencodable {
        /// The subscription's topic template.
        topic: String,
        /// What cannot be written.
        reason: String,
    },
}

/// The payload number whose product with `scale` is `v`, preferring short
/// decimals (what a real device would send). Some values have no such number
/// (the products of neighbouring floats step over `v`); then the one whose
/// product is nearest, one ulp off.
pub fn unscale(v: f64, scale: f64) -> f64 {
    if scale == 1.0 || scale == 0.0 || !scale.is_finite() || !v.is_finite() {
        return v;
    }
    let x = v / scale;
    // Round to a few decimals first, then walk a few ulps either side.
    let mut p = 1.0;
    for _ in 0..=9 {
        let c = (x * p).round() / p;
        if c * scale == v {
            return c;
        }
        p *= 10.0;
    }
    let (mut best, mut best_err) = (x, (x * scale - v).abs());
    let (mut up, mut down) = (x, x);
    for _ in 0..=8 {
        for c in [up, down] {
            let err = (c * scale - v).abs();
            if err == 0.0 {
                return c;
            }
            if err < best_err {
                (best, best_err) = (c, err);
            }
        }
        up = up.next_up();
        down = down.next_down();
    }
    best
}

/// Fills a topic template; `None` when it has `+` / `#` or an unknown placeholder.
pub fn fill_topic(template: &str, site: &str, meter: &str) -> Option<String> {
    let mut out = String::with_capacity(template.len() + site.len() + meter.len());
    for (i, level) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match level {
            "{site}" => out.push_str(site),
            "{meter}" => out.push_str(meter),
            l if l.contains(['+', '#', '{', '}']) => return None,
            l => out.push_str(l),
        }
    }
    Some(out)
}

/// True when MQTT filter `template` (a topic template: `{x}` counts as `+`)
/// matches topic `topic`.
pub fn filter_matches(template: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for f in template.split('/') {
        if f == "#" {
            return true;
        }
        let Some(t) = topic_levels.next() else {
            return false;
        };
        let wildcard = f == "+" || (f.starts_with('{') && f.ends_with('}'));
        if !wildcard && f != t {
            return false;
        }
    }
    topic_levels.next().is_none()
}

/// How one MQTT meter is published.
#[derive(Debug, Clone)]
pub struct MeterPlan {
    /// The meter.
    pub meter: MeterId,
    /// Its broker.
    pub broker: BrokerId,
    /// Index of the subscription it publishes through, in the broker's list.
    pub subscription: usize,
    /// The topic it publishes to.
    pub topic: String,
    /// QoS of that subscription.
    pub qos: u8,
    /// Publishing interval (the meter's `poll_interval`).
    pub interval: Duration,
    /// Its payload encoder.
    pub encoder: PayloadEncoder,
}

/// Chooses the subscription, topic and encoder of every MQTT meter of
/// `config` (see the module doc); meters that cannot be published come back
/// with the reason.
pub fn plan(config: &Config) -> (Vec<MeterPlan>, Vec<(MeterId, SkipReason)>) {
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    let mut ordinal = vec![0usize; config.mqtt.len()];
    for (i, m) in config.meters.iter().enumerate() {
        let Some(broker_id) = m.broker() else {
            continue;
        };
        let id = MeterId(i as u32);
        let Some(broker) = config.mqtt.get(broker_id.index()) else {
            continue;
        };
        let k = ordinal[broker_id.index()];
        ordinal[broker_id.index()] += 1;
        let site = &config.site_of(id).id;
        let candidates: Vec<(usize, String)> = broker
            .subscriptions
            .iter()
            .enumerate()
            .filter_map(|(s, sub)| {
                let topic = publishable_topic(broker, s, site, &m.id)?;
                let named = sub.topic.split('/').any(|l| l == "{meter}")
                    || sub.format != PayloadFormat::Json
                    || sub.meter_field.is_some();
                named.then_some((s, topic))
            })
            .collect();
        if candidates.is_empty() {
            skipped.push((
                id,
                SkipReason::NoPublishableSubscription {
                    broker: broker.id.clone(),
                },
            ));
            continue;
        }
        let (s, topic) = candidates[k % candidates.len()].clone();
        let sub = &broker.subscriptions[s];
        let profile = config.profile_of(id);
        let names: Vec<&str> = profile.points.iter().map(|p| p.name.as_str()).collect();
        match PayloadEncoder::new(sub, &m.id, &profile.id, &names) {
            Ok(encoder) => plans.push(MeterPlan {
                meter: id,
                broker: broker_id,
                subscription: s,
                topic,
                qos: sub.qos,
                interval: m.poll_interval,
                encoder,
            }),
            Err(reason) => skipped.push((id, reason)),
        }
    }
    (plans, skipped)
}

/// The topic meter `meter` of `site` publishes to through subscription `s`,
/// when its template can be filled and no earlier subscription catches it.
fn publishable_topic(broker: &MqttBroker, s: usize, site: &str, meter: &str) -> Option<String> {
    if meter.contains(['/', '+', '#']) || site.contains(['/', '+', '#']) {
        return None;
    }
    let topic = fill_topic(&broker.subscriptions[s].topic, site, meter)?;
    let caught_earlier = broker.subscriptions[..s]
        .iter()
        .any(|earlier| filter_matches(&earlier.topic, &topic));
    (!caught_earlier).then_some(topic)
}

/// Counters of the publishers, shared with the [`super::Simulator`] handle.
#[derive(Debug, Default)]
pub(crate) struct MqttCounters {
    /// Publish packets written to a broker.
    pub published: AtomicU64,
    /// Successful connections (ConnAck received).
    pub connects: AtomicU64,
    /// Messages not handed to the client because its queue was full (broker away).
    pub dropped: AtomicU64,
}

/// Starts one publisher per broker that has publishable meters.
pub(crate) fn spawn(
    config: &Config,
    plans: &[MeterPlan],
    shared: &Arc<Shared>,
    counters: &Arc<MqttCounters>,
    shutdown: &CancellationToken,
) {
    for (b, broker) in config.mqtt.iter().enumerate() {
        let mine: Vec<MeterPlan> = plans
            .iter()
            .filter(|p| p.broker.index() == b)
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let options = match mqtt_options(broker) {
            Ok(o) => o,
            Err(err) => {
                tracing::warn!(broker = %broker.id, %err, "simulator: cannot publish MQTT meters");
                continue;
            }
        };
        // Room for every meter's message twice over: a broker away for a
        // moment loses nothing, one away longer loses the oldest slots' worth.
        let (client, eventloop) = AsyncClient::new(options, (2 * mine.len()).max(16));
        let backoff = Backoff::new(broker.reconnect_initial, broker.reconnect_max);
        tokio::spawn(drive(
            eventloop,
            broker.id.clone(),
            backoff,
            Arc::clone(counters),
            shutdown.clone(),
        ));
        tokio::spawn(publish_loop(
            client,
            mine,
            Arc::clone(shared),
            Arc::clone(counters),
            shutdown.clone(),
        ));
    }
}

/// Client options of the simulator's connection to `broker`: client id
/// `emgate-sim-<broker id>`, clean session, MQTT 3.1.1 (brokers speak both).
fn mqtt_options(broker: &MqttBroker) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(
        format!("emgate-sim-{}", broker.id),
        broker.host.clone(),
        broker.port,
    );
    o.set_clean_session(true);
    o.set_keep_alive(broker.keep_alive.max(Duration::from_secs(5)));
    if let Some(user) = &broker.username {
        o.set_credentials(user.clone(), broker.password.expose());
    }
    if let Some(tls) = &broker.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let ca = read(&tls.ca_file)?;
        let client_auth = match (&tls.client_cert, &tls.client_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth,
            },
        ));
    }
    Ok(o)
}

/// Polls the client's event loop (which connects, reconnects and writes),
/// counting connections and publishes; errors back off and retry.
async fn drive(
    mut eventloop: EventLoop,
    broker: String,
    mut backoff: Backoff,
    counters: Arc<MqttCounters>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u64;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            () = shutdown.cancelled() => return,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                counters.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%broker, "simulator: connected to MQTT broker");
                failures = 0;
                backoff.reset();
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(err) => {
                failures += 1;
                let delay = backoff.next_delay();
                // The first failure and then every tenth: a broker that stays away is not news.
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(%broker, %err, failures, retry_in_ms = delay.as_millis() as u64,
                        "simulator: MQTT broker connection failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Publishes every meter at each multiple of its interval since the epoch.
async fn publish_loop(
    client: AsyncClient,
    plans: Vec<MeterPlan>,
    shared: Arc<Shared>,
    counters: Arc<MqttCounters>,
    shutdown: CancellationToken,
) {
    let interval_ms = |p: &MeterPlan| (p.interval.as_millis() as i64).max(1);
    let now = now_ms();
    // (next slot in ms, plan index), earliest first.
    let mut due: BinaryHeap<Reverse<(i64, usize)>> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let iv = interval_ms(p);
            Reverse(((now.div_euclid(iv) + 1) * iv, i))
        })
        .collect();
    let mut values: Vec<f64> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Reverse((slot_ms, i))) = due.pop() {
        let wait = u64::try_from(slot_ms - now_ms()).unwrap_or(0);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            () = shutdown.cancelled() => return,
        }
        let plan = &plans[i];
        if render(
            &shared,
            plan,
            slot_ms.div_euclid(1000),
            &mut values,
            &mut buf,
        ) {
            let qos = match plan.qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            if let Err(err) = client.try_publish(plan.topic.as_str(), qos, false, buf.as_slice()) {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(topic = %plan.topic, %err, "simulator: MQTT message dropped");
            }
        }
        // The next slot in the future: a late wake-up skips slots, as a poller would.
        let iv = interval_ms(plan);
        let next = (slot_ms + iv).max((now_ms().div_euclid(iv) + 1) * iv);
        due.push(Reverse((next, i)));
    }
}

/// Renders the message of `plan` for Unix second `slot` into `buf`, under the
/// meter's current fault; false when the fault says publish nothing.
pub(crate) fn render(
    shared: &Shared,
    plan: &MeterPlan,
    slot: i64,
    values: &mut Vec<f64>,
    buf: &mut Vec<u8>,
) -> bool {
    let m = plan.meter.index();
    let fault = shared.fault_for_request(m);
    let (t, serve, kind) = match fault {
        Some(SimFault::NoResponse) => return false,
        Some(SimFault::Exception) => (0.0, Serve::Normal, PayloadKind::Truncated),
        Some(SimFault::Sentinel) => (0.0, Serve::Normal, PayloadKind::Sentinel),
        Some(SimFault::Spike) => (
            shared.stepped(slot as f64),
            Serve::Spike,
            PayloadKind::Normal,
        ),
        Some(SimFault::Frozen) => (shared.freeze_at(m), Serve::Normal, PayloadKind::Normal),
        Some(SimFault::CounterReset) | None => (
            shared.stepped(slot as f64),
            Serve::Normal,
            PayloadKind::Normal,
        ),
    };
    let sim = &shared.meters[m];
    let reset = shared.reset_offset(m);
    values.clear();
    values.resize(sim.points.len(), 0.0);
    if kind == PayloadKind::Normal {
        let mut regs = [0u16; 4];
        for p in plan.encoder.points() {
            // Registers and back, as a Modbus read of the same point would give.
            sim.encode(p, t, reset, serve, &mut regs);
            let def = &sim.points[p].def;
            let raw = decode_raw(&regs, def.data_type, def.order);
            values[p] = scale_raw(def, raw.value, sim.pt, sim.ct);
        }
    }
    plan.encoder.encode(slot, values, kind, buf);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MqttSubscription, TimeUnit, TimestampRule};

    fn sub(format: PayloadFormat, unit: TimeUnit) -> MqttSubscription {
        MqttSubscription {
            topic: "energy/{site}/{meter}".to_owned(),
            qos: 1,
            format,
            timestamp: TimestampRule::Payload {
                field: "ts".to_owned(),
                unit,
            },
            fields: Vec::new(),
            scale: Vec::new(),
            array: None,
            meter_field: None,
        }
    }

    const POINTS: [&str; 3] = ["import_kwh", "power_kw", "voltage_v"];
    const VALUES: [f64; 3] = [1234.56, 0.5, 230.25];

    fn encode(s: &MqttSubscription, kind: PayloadKind) -> String {
        let enc = PayloadEncoder::new(s, "m-1", "p", &POINTS).expect("encodable");
        let mut out = Vec::new();
        enc.encode(1_767_225_600, &VALUES, kind, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn json_flat_with_every_time_unit() {
        let mut s = sub(PayloadFormat::Json, TimeUnit::Seconds);
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            r#"{"ts":1767225600,"import_kwh":1234.56,"power_kw":0.5,"voltage_v":230.25}"#
        );
        s.timestamp = TimestampRule::Payload {
            field: "time".to_owned(),
            unit: TimeUnit::Millis,
        };
        assert!(encode(&s, PayloadKind::Normal).starts_with(r#"{"time":1767225600000,"#));
        s.timestamp = TimestampRule::Payload {
            field: "time".to_owned(),
            unit: TimeUnit::Nanos,
        };
        assert!(encode(&s, PayloadKind::Normal).starts_with(r#"{"time":1767225600000000000,"#));
        s.timestamp = TimestampRule::Payload {
            field: "time".to_owned(),
            unit: TimeUnit::Rfc3339,
        };
        assert!(encode(&s, PayloadKind::Normal).starts_with(r#"{"time":"2026-01-01T00:00:00Z","#));
        s.timestamp = TimestampRule::Receipt;
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            r#"{"import_kwh":1234.56,"power_kw":0.5,"voltage_v":230.25}"#
        );
    }

    #[test]
    fn json_pointers_scale_array_and_meter_field() {
        let mut s = sub(PayloadFormat::Json, TimeUnit::Seconds);
        s.timestamp = TimestampRule::Payload {
            field: "/meta/t".to_owned(),
            unit: TimeUnit::Seconds,
        };
        s.fields = vec![
            ("/data/ep".to_owned(), "import_kwh".to_owned()),
            ("/data/p".to_owned(), "power_kw".to_owned()),
            ("a~1b".to_owned(), "voltage_v".to_owned()),
            ("other".to_owned(), "not_in_profile".to_owned()),
        ];
        s.scale = vec![("import_kwh".to_owned(), 0.001)];
        s.meter_field = Some("dev".to_owned());
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            r#"{"meta":{"t":1767225600},"dev":"m-1","data":{"ep":1234560,"p":0.5},"a~1b":230.25}"#
        );
        s.array = Some("/readings".to_owned());
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            r#"{"dev":"m-1","readings":[{"meta":{"t":1767225600},"dev":"m-1","data":{"ep":1234560,"p":0.5},"a~1b":230.25}]}"#
        );
        s.array = Some(String::new());
        s.fields.truncate(1);
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            r#"[{"meta":{"t":1767225600},"dev":"m-1","data":{"ep":1234560}}]"#
        );
        // Every document parses, and the scaled value comes back exactly.
        let doc: serde_json::Value =
            serde_json::from_str(&encode(&s, PayloadKind::Normal)).expect("json");
        let ep = doc
            .pointer("/0/data/ep")
            .and_then(serde_json::Value::as_f64);
        assert_eq!(ep.map(|x| x * 0.001), Some(1234.56));
    }

    #[test]
    fn line_protocol_and_csv() {
        let s = sub(PayloadFormat::LineProtocol, TimeUnit::Nanos);
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            "reading,meter=m-1 import_kwh=1234.56,power_kw=0.5,voltage_v=230.25 1767225600000000000"
        );
        let mut s = sub(PayloadFormat::Csv, TimeUnit::Seconds);
        s.fields = vec![("ep".to_owned(), "import_kwh".to_owned())];
        assert_eq!(encode(&s, PayloadKind::Normal), "m-1,1767225600,ep=1234.56");
        s.timestamp = TimestampRule::Payload {
            field: "ts".to_owned(),
            unit: TimeUnit::Rfc3339,
        };
        assert_eq!(
            encode(&s, PayloadKind::Normal),
            "m-1,2026-01-01T00:00:00Z,ep=1234.56"
        );
        let enc = PayloadEncoder::new(
            &sub(PayloadFormat::LineProtocol, TimeUnit::Seconds),
            "a b,c=d",
            "p",
            &["x y"],
        )
        .expect("escapable");
        let mut out = Vec::new();
        enc.encode(5, &[1.0], PayloadKind::Normal, &mut out);
        assert_eq!(out, b"reading,meter=a\\ b\\,c\\=d x\\ y=1 5");
    }

    #[test]
    fn fault_payloads_are_not_readings() {
        let json = sub(PayloadFormat::Json, TimeUnit::Seconds);
        assert_eq!(encode(&json, PayloadKind::Truncated), r#"{"ts":"#);
        assert_eq!(
            encode(&json, PayloadKind::Sentinel),
            r#"{"ts":1767225600,"import_kwh":0xFFFF,"power_kw":0xFFFF,"voltage_v":0xFFFF}"#
        );
        for kind in [PayloadKind::Truncated, PayloadKind::Sentinel] {
            assert!(serde_json::from_str::<serde_json::Value>(&encode(&json, kind)).is_err());
        }
        let lp = sub(PayloadFormat::LineProtocol, TimeUnit::Seconds);
        assert_eq!(encode(&lp, PayloadKind::Truncated), "reading,meter=m-1");
        let csv = sub(PayloadFormat::Csv, TimeUnit::Seconds);
        assert_eq!(encode(&csv, PayloadKind::Truncated), "m-1,1767225600");
        assert_eq!(
            encode(&csv, PayloadKind::Sentinel),
            "m-1,1767225600,import_kwh=0xFFFF,power_kw=0xFFFF,voltage_v=0xFFFF"
        );
        assert!("0xFFFF".parse::<f64>().is_err());
    }

    #[test]
    fn unencodable_subscriptions() {
        let mut s = sub(PayloadFormat::Json, TimeUnit::Seconds);
        s.fields = vec![("x".to_owned(), "nothing".to_owned())];
        assert!(matches!(
            PayloadEncoder::new(&s, "m", "p", &POINTS),
            Err(SkipReason::NoFields { .. })
        ));
        s.fields = vec![
            ("/a".to_owned(), "import_kwh".to_owned()),
            ("/a/b".to_owned(), "power_kw".to_owned()),
        ];
        assert!(matches!(
            PayloadEncoder::new(&s, "m", "p", &POINTS),
            Err(SkipReason::Unencodable { .. })
        ));
        let lp = sub(PayloadFormat::LineProtocol, TimeUnit::Rfc3339);
        assert!(PayloadEncoder::new(&lp, "m", "p", &POINTS).is_err());
    }

    #[test]
    fn unscale_round_trips() {
        assert_eq!(unscale(1234.56, 0.001), 1_234_560.0);
        assert_eq!(unscale(2.5, 1.0), 2.5);
        // Exact where a number exists, else one ulp off; most are exact.
        let mut exact = 0;
        for k in 0..5000u32 {
            let v = f64::from(k) * 0.01 + 100_000.0;
            for scale in [0.001, 0.01, 0.1, 10.0, 1.0 / 3.6] {
                let back = unscale(v, scale) * scale;
                assert!(
                    back == v || back == v.next_up() || back == v.next_down(),
                    "{v} / {scale}"
                );
                exact += usize::from(back == v);
            }
        }
        assert!(exact > 20_000, "{exact} of 25000 exact");
        assert_eq!(unscale(100_000.01, 0.001) * 0.001, 100_000.010_000_000_01);
    }

    #[test]
    fn topics() {
        assert_eq!(
            fill_topic("e/{site}/{meter}/up", "s1", "m1").as_deref(),
            Some("e/s1/m1/up")
        );
        assert_eq!(fill_topic("e/+/{meter}", "s", "m"), None);
        assert_eq!(fill_topic("e/#", "s", "m"), None);
        assert_eq!(fill_topic("e/{other}", "s", "m"), None);
        assert!(filter_matches("e/{site}/{meter}", "e/s/m"));
        assert!(filter_matches("e/#", "e/s/m"));
        assert!(filter_matches("#", "e"));
        assert!(filter_matches("e/+/m", "e/x/m"));
        assert!(!filter_matches("e/+", "e/s/m"));
        assert!(!filter_matches("e/s/m", "e/s"));
        assert!(!filter_matches("demo/{site}/{meter}", "demo-lp/s/m"));
    }
}
