//! `[[mqtt]]`: the MQTT brokers meters publish to, and their TLS.
//!
//! Why a file of its own: a broker is a connection with a session the
//! gateway must keep across restarts (client id, clean session), optional
//! TLS files checked before anything starts, and the subscriptions that
//! [`super::subscription`] reads; MQTT meters of the site files name it by id.

use std::path::Path;
use std::time::Duration;

use config::Value;

use super::main_state::Main;
use super::raw::{MqttRaw, MqttTlsRaw};
use super::subscription::subscription;
use super::{MqttBroker, MqttProtocol, MqttTls, Secret};
use crate::check::backoff_range;
use crate::check::{self, Flag, Problems, Text, int, path_key, required_id, required_text};

/// Default port without and with TLS.
const MQTT_PORT: i64 = 1883;
const MQTTS_PORT: i64 = 8883;

/// Every `[[mqtt]]` element, each checked on its own into [`Main::brokers`];
/// TLS files are relative to the main file's directory `base`.
pub(super) fn brokers(v: Value, base: &Path, main: &mut Main) {
    let items = check::array(
        v,
        "mqtt",
        "an array of tables ([[mqtt]])",
        &mut main.problems,
    );
    for (i, item) in items.into_iter().enumerate() {
        mqtt_broker(item, i, base, main);
    }
}

/// One `[[mqtt]]` element; its id is recorded even when the rest is broken,
/// so meters naming it are not reported as unknown.
fn mqtt_broker(value: Value, index: usize, base: &Path, main: &mut Main) {
    let key = format!("mqtt[{index}]");
    let k = |sub: &str| format!("{key}.{sub}");
    let p = &mut main.problems;
    let Some(r) = check::table::<MqttRaw>(value, &key, "a table", p) else {
        return;
    };
    let errors_before = p.list.len();
    let id = required_id(r.id, &k("id"), "broker id", p);
    if let Some(id) = &id
        && let Some(first) = main.brokers.iter().position(|(b, _)| b == id)
    {
        p.push(
            k("id"),
            format!("duplicate broker id \"{id}\"; already used by mqtt[{first}]"),
        );
    }
    let host = required_text(
        r.host,
        &k("host"),
        "give the host name or IP address of the MQTT broker",
        p,
    );
    let tls = r.tls.and_then(|v| mqtt_tls(v, &k("tls"), base, p));
    let default_port = if tls.is_some() { MQTTS_PORT } else { MQTT_PORT };
    let port = int(r.port, &k("port"), default_port, 1, 65535, p);
    let client_id = match r.client_id {
        // Shards of one gateway id must not share a session: the shard is
        // part of the default (`emgate-gw-plant-shard1of3`).
        None => id.as_ref().map(|id| {
            let shard = main.gateway.shard;
            if shard.is_whole() {
                format!("emgate-{}-{id}", main.gateway.id)
            } else {
                format!(
                    "emgate-{}-{id}-shard{}of{}",
                    main.gateway.id, shard.index, shard.count
                )
            }
        }),
        Some(v) => required_text(
            Some(v),
            &k("client_id"),
            "give a client id that is stable across restarts (the broker keeps the session under it)",
            p,
        ),
    };
    let keep_alive = int(r.keep_alive_secs, &k("keep_alive_secs"), 30, 5, 3600, p);
    let protocol = match r.protocol.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("3.1.1") => Some(MqttProtocol::V311),
        Some("5") => Some(MqttProtocol::V5),
        Some(other) => {
            p.push(
                k("protocol"),
                format!("unknown protocol \"{other}\"; use \"3.1.1\" or \"5\""),
            );
            None
        }
    };
    let username = r.username.map(|Text(t)| t).filter(|t| !t.is_empty());
    let password = r.password.map(|Text(t)| t).unwrap_or_default();
    if username.is_none() && !password.is_empty() {
        p.push(
            k("password"),
            "given without a username; add `username` or remove the password",
        );
    }
    let max_payload = int(
        r.max_payload_bytes,
        &k("max_payload_bytes"),
        65_536,
        16,
        16_777_216,
        p,
    );
    let dead_letter_topic = match r.dead_letter_topic {
        None => None,
        Some(Text(t)) if t.is_empty() => {
            p.push(
                k("dead_letter_topic"),
                "is empty; give a topic such as \"emgate/dead-letter\", or remove the key",
            );
            None
        }
        Some(Text(t)) if t.contains(['+', '#']) => {
            p.push(
                k("dead_letter_topic"),
                format!("\"{t}\" contains a wildcard; messages are published to it, so give a plain topic"),
            );
            None
        }
        Some(Text(t)) => Some(t),
    };
    let (reconnect_initial, reconnect_max) = backoff_range(
        r.reconnect_initial_ms,
        r.reconnect_max_ms,
        &key,
        "reconnect",
        p,
    );
    let mut subscriptions = Vec::new();
    match r.subscriptions {
        None => p.push(
            k("subscriptions"),
            "missing; add at least one [[mqtt.subscriptions]] with a `topic`",
        ),
        Some(v) => {
            let items = check::array(
                v,
                &k("subscriptions"),
                "an array of tables ([[mqtt.subscriptions]])",
                p,
            );
            if items.is_empty() {
                p.push(
                    k("subscriptions"),
                    "is empty; add at least one [[mqtt.subscriptions]] with a `topic`",
                );
            }
            let mut filters: Vec<(String, usize)> = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{key}.subscriptions[{i}]");
                let (valid, filter) = subscription(item, &at, p);
                if let Some(filter) = filter {
                    if let Some((_, first)) = filters.iter().find(|(f, _)| *f == filter) {
                        p.push(
                            format!("{at}.topic"),
                            format!(
                                "has the same filter \"{filter}\" as subscriptions[{first}], which matches first; this one would never be used"
                            ),
                        );
                    }
                    filters.push((filter, i));
                }
                if let Some(s) = valid {
                    subscriptions.push(s);
                }
            }
        }
    }
    let Some(id) = id else {
        return;
    };
    let config = (p.list.len() == errors_before)
        .then(|| {
            Some(MqttBroker {
                id: id.clone(),
                host: host?,
                port: u16::try_from(port?).ok()?,
                client_id: client_id?,
                clean_session: r.clean_session.is_some_and(|Flag(f)| f),
                keep_alive: Duration::from_secs(keep_alive? as u64),
                protocol: protocol?,
                username,
                password: Secret::new(password),
                tls,
                max_payload_bytes: usize::try_from(max_payload?).ok()?,
                dead_letter_topic,
                reconnect_initial: reconnect_initial?,
                reconnect_max: reconnect_max?,
                subscriptions,
            })
        })
        .flatten();
    main.brokers.push((id, config));
}

/// `tls = { ... }` of a broker; paths relative to the main file's directory `base`.
fn mqtt_tls(v: Value, key: &str, base: &Path, p: &mut Problems) -> Option<MqttTls> {
    let r = check::table::<MqttTlsRaw>(v, key, "a table (tls = { ca_file = \"ca.pem\" })", p)?;
    let file = |v: Option<Text>, sub: &str, what: &str, p: &mut Problems| {
        let at = format!("{key}.{sub}");
        let path = path_key(v, &at, p)?;
        let full = base.join(path);
        if full.is_file() {
            Some(full)
        } else {
            p.push(
                at,
                format!(
                    "cannot read \"{}\": no such file; give the path of the {what} (PEM), relative to this file",
                    full.display()
                ),
            );
            None
        }
    };
    let ca_present = r.ca_file.is_some();
    let ca = file(r.ca_file, "ca_file", "CA certificate", p);
    if !ca_present {
        p.push(
            format!("{key}.ca_file"),
            "missing required key; give the CA certificate (PEM) that signs the broker's certificate",
        );
    }
    let (cert_present, key_present) = (r.client_cert.is_some(), r.client_key.is_some());
    let cert = file(r.client_cert, "client_cert", "client certificate", p);
    let client_key = file(
        r.client_key,
        "client_key",
        "client certificate's private key",
        p,
    );
    if cert_present && !key_present {
        p.push(
            format!("{key}.client_key"),
            "missing; client_cert is set, so give its private key (PEM) too",
        );
    } else if key_present && !cert_present {
        p.push(
            format!("{key}.client_cert"),
            "missing; client_key is set, so give the client certificate (PEM) too",
        );
    }
    if cert_present != key_present
        || cert.is_some() != cert_present
        || client_key.is_some() != key_present
    {
        return None;
    }
    Some(MqttTls {
        ca_file: ca?,
        client_cert: cert,
        client_key,
    })
}
