//! `[[mqtt.subscriptions]]`: a topic filter and how its payloads are read.
//!
//! Why a file of its own: a subscription is where the gateway learns what a
//! payload means (format, where the time stamp is, which key is which
//! point, extra scale factors), and each of those is checked against the
//! others (JSON-only keys, topics that name no meter, duplicate filters).

use config::Value;

use super::raw::SubscriptionRaw;
use super::topic::TopicTemplate;
use super::{MqttSubscription, PayloadFormat, TimeUnit, TimestampRule};
use crate::check::{self, Int, Problems, Text, choice, is_valid_id};

/// How a subscription's time stamp is taken, as written.
#[derive(Clone, Copy, PartialEq)]
enum Stamp {
    Payload,
    Receipt,
}

/// One `[[mqtt.subscriptions]]` element and its filter.
// Short names as in the other section checks (value, raw, key, problems).
#[allow(clippy::many_single_char_names)]
pub(super) fn subscription(
    v: Value,
    key: &str,
    p: &mut Problems,
) -> (Option<MqttSubscription>, Option<String>) {
    let k = |sub: &str| format!("{key}.{sub}");
    let Some(r) = check::table::<SubscriptionRaw>(v, key, "a table", p) else {
        return (None, None);
    };
    let errors_before = p.list.len();
    let template = match r.topic {
        None => {
            p.push(
                k("topic"),
                "missing required key; give a topic such as \"energy/{site}/{meter}/up\"",
            );
            None
        }
        Some(Text(t)) => match TopicTemplate::parse(&t) {
            Ok(tpl) => Some(tpl),
            Err(why) => {
                p.push(k("topic"), format!("\"{t}\": {why}"));
                None
            }
        },
    };
    let qos = match r.qos {
        None => Some(1),
        Some(Int(q @ 0..=2)) => Some(q as u8),
        Some(Int(other)) => {
            p.push(
                k("qos"),
                format!("{other} is not an MQTT QoS; use 0 (at most once), 1 (at least once) or 2 (exactly once)"),
            );
            None
        }
    };
    let format = choice(
        r.format,
        &k("format"),
        "format",
        &[
            ("json", PayloadFormat::Json),
            ("line_protocol", PayloadFormat::LineProtocol),
            ("csv", PayloadFormat::Csv),
        ],
        Some(PayloadFormat::Json),
        p,
    );
    let json = format == Some(PayloadFormat::Json);
    let only_json = |p: &mut Problems, present: bool, sub: &str| {
        if present && format.is_some() && !json {
            p.push(k(sub), "only used with format = \"json\"; remove it");
        }
    };
    only_json(p, r.timestamp_field.is_some(), "timestamp_field");
    only_json(p, r.array.is_some(), "array");
    only_json(p, r.meter_field.is_some(), "meter_field");
    let stamp = choice(
        r.timestamp,
        &k("timestamp"),
        "timestamp rule",
        &[("payload", Stamp::Payload), ("receipt", Stamp::Receipt)],
        Some(Stamp::Payload),
        p,
    );
    let unit = choice(
        r.timestamp_unit.clone(),
        &k("timestamp_unit"),
        "timestamp unit",
        &[
            ("s", TimeUnit::Seconds),
            ("ms", TimeUnit::Millis),
            ("ns", TimeUnit::Nanos),
            ("rfc3339", TimeUnit::Rfc3339),
        ],
        Some(TimeUnit::Seconds),
        p,
    );
    if stamp == Some(Stamp::Receipt) {
        for (present, sub) in [
            (r.timestamp_field.is_some(), "timestamp_field"),
            (r.timestamp_unit.is_some(), "timestamp_unit"),
        ] {
            if present {
                p.push(
                    k(sub),
                    "only used with timestamp = \"payload\"; remove it or set timestamp = \"payload\"",
                );
            }
        }
    }
    if unit == Some(TimeUnit::Rfc3339) && format == Some(PayloadFormat::LineProtocol) {
        p.push(
            k("timestamp_unit"),
            "line protocol time stamps are integers; use \"s\", \"ms\" or \"ns\"",
        );
    }
    let timestamp_field = match r.timestamp_field {
        Some(Text(f)) if f.is_empty() => {
            p.push(
                k("timestamp_field"),
                "is empty; give the JSON key (\"ts\") or pointer (\"/meta/ts\") of the time stamp",
            );
            None
        }
        Some(Text(f)) => Some(f),
        None => Some("ts".to_owned()),
    };
    let timestamp = match stamp {
        Some(Stamp::Receipt) => Some(TimestampRule::Receipt),
        Some(Stamp::Payload) => match (timestamp_field, unit) {
            (Some(field), Some(unit)) => Some(TimestampRule::Payload { field, unit }),
            _ => None,
        },
        None => None,
    };
    let array = match r.array {
        Some(Text(a)) if !a.is_empty() && !a.starts_with('/') => {
            p.push(
                k("array"),
                format!("\"{a}\" is not a JSON pointer; use \"\" (the payload itself is an array) or a pointer such as \"/{a}\""),
            );
            None
        }
        Some(Text(a)) => Some(a),
        None => None,
    };
    let meter_field = match r.meter_field {
        Some(Text(f)) if f.is_empty() => {
            p.push(
                k("meter_field"),
                "is empty; give the JSON key holding the meter id, e.g. \"meter\"",
            );
            None
        }
        Some(Text(f)) => Some(f),
        None => None,
    };
    if let Some(tpl) = &template
        && json
    {
        if tpl.has_meter() && meter_field.is_some() {
            p.push(
                k("meter_field"),
                "the topic names the meter with \"{meter}\"; remove meter_field (or \"{meter}\" from the topic)",
            );
        } else if !tpl.has_meter() && meter_field.is_none() && p.list.len() == errors_before {
            p.push(
                k("topic"),
                format!(
                    "\"{tpl}\" names no meter; put \"{{meter}}\" in the topic or set meter_field (the JSON key holding the meter id)"
                ),
            );
        }
    }
    let fields = r.fields.map_or_else(
        || Some(Vec::new()),
        |v| fields_table(v, &k("fields"), json, p),
    );
    let scale = r
        .scale
        .map_or_else(|| Some(Vec::new()), |v| scale_table(v, &k("scale"), p));
    let filter = template.as_ref().map(|t| t.filter().to_owned());
    let valid = (p.list.len() == errors_before)
        .then(|| {
            Some(MqttSubscription {
                topic: template?.as_str().to_owned(),
                qos: qos?,
                format: format?,
                timestamp: timestamp?,
                fields: fields?,
                scale: scale?,
                array,
                meter_field,
            })
        })
        .flatten();
    (valid, filter)
}

/// `fields = { key = "point", "/a/b" = "point" }`, sorted by key.
fn fields_table(
    v: Value,
    key: &str,
    json: bool,
    p: &mut Problems,
) -> Option<Vec<(String, String)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of payload key = point name, e.g. {{ ep = \"import_kwh\" }}, found {found}"),
        );
        return None;
    };
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (name, value) in rows {
        let at = if is_valid_id(&name) {
            format!("{key}.{name}")
        } else {
            format!("{key}.\"{name}\"")
        };
        if name.starts_with('/') && !json {
            p.push(
                at,
                "JSON pointers are only used with format = \"json\"; give the field name",
            );
            ok = false;
            continue;
        }
        let point = match value.kind {
            config::ValueKind::String(s) if !s.is_empty() => s,
            _ => {
                let found = check::kind_name(&value);
                p.push(
                    at,
                    format!("expected a point name (a string), found {found}"),
                );
                ok = false;
                continue;
            }
        };
        if let Some((other, _)) = out.iter().find(|(_, pt)| *pt == point) {
            p.push(
                at,
                format!("maps to point \"{point}\" like key \"{other}\"; a point can come from one key only"),
            );
            ok = false;
            continue;
        }
        out.push((name, point));
    }
    ok.then_some(out)
}

/// `scale = { point = factor }`, sorted by point name.
fn scale_table(v: Value, key: &str, p: &mut Problems) -> Option<Vec<(String, f64)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of point name = factor, e.g. {{ import_kwh = 0.001 }}, found {found}"),
        );
        return None;
    };
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (name, value) in rows {
        let at = format!("{key}.{name}");
        let factor = match value.kind {
            config::ValueKind::Float(f) => Some(f),
            config::ValueKind::I64(i) => Some(i as f64),
            _ => None,
        };
        match factor {
            Some(f) if f.is_finite() && f != 0.0 => out.push((name, f)),
            Some(f) => {
                p.push(
                    at,
                    format!("{f} is not a valid factor; use a finite number other than 0"),
                );
                ok = false;
            }
            None => {
                let found = check::kind_name(&value);
                p.push(at, format!("expected a factor (a number), found {found}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
