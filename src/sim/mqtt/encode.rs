//! Payload encoders of the simulated MQTT meters: one reading as JSON, line
//! protocol or CSV, written from the subscription syntax alone (see the
//! parent module for the formats), independently of the gateway's decoder.

use std::io::Write as _;

use super::{SkipReason, unscale};

use crate::config::{MqttSubscription, PayloadFormat, TimeUnit, TimestampRule};

/// What a message carries: the reading, or one of the fault shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The reading as configured.
    Normal,
    /// The reading cut off before its fields (the `exception` fault).
    Truncated,
    /// Every value written as `0xFFFF` (the `sentinel` fault).
    Sentinel,
}

/// Where a JSON value goes: a key path from the top-level object.
type JsonPath = Vec<String>;

/// One published field.
#[derive(Debug, Clone)]
struct Field {
    /// Point index in the meter's profile.
    point: usize,
    /// Payload key as written in the format (line protocol: escaped).
    key: String,
    /// JSON: where the value goes.
    path: JsonPath,
    /// The subscription's scale for the point (1 when none).
    scale: f64,
}

/// What a JSON leaf holds.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    /// Field `i` of [`PayloadEncoder::fields`].
    Value(usize),
    /// The time stamp.
    Timestamp,
    /// The meter id.
    Meter,
}

/// A JSON document skeleton, built once per meter; keys are stored already
/// quoted and escaped.
#[derive(Debug, Clone)]
enum Node {
    Object(Vec<(String, Node)>),
    /// A one-element array holding the reading (the `array` option).
    Array(Box<Node>),
    Leaf(Leaf),
}

/// Encodes one meter's readings for one subscription. Built once; encoding
/// writes into a caller's buffer without allocating.
#[derive(Debug, Clone)]
pub struct PayloadEncoder {
    format: PayloadFormat,
    /// Unit of the payload time stamp; `None` for `timestamp = "receipt"`.
    unit: Option<TimeUnit>,
    fields: Vec<Field>,
    /// JSON skeleton (JSON only).
    json: Option<Node>,
    /// JSON: the meter id, quoted. Line protocol: `reading,meter=<id>` escaped. CSV: the id.
    meter: String,
}

/// Quotes and escapes `s` as a JSON string.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// A payload key as a JSON path: a plain key is one level, `/a/b` a pointer.
fn json_path(key: &str) -> Result<JsonPath, String> {
    if !key.starts_with('/') {
        if key.is_empty() {
            return Err("an empty key cannot be written".to_owned());
        }
        return Ok(vec![key.to_owned()]);
    }
    key[1..]
        .split('/')
        .map(|seg| {
            // RFC 6901: `~1` is `/`, `~0` is `~`, in that order.
            if seg.is_empty() {
                Err(format!("pointer {key:?} has an empty level"))
            } else {
                Ok(seg.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect()
}

/// Inserts `leaf` at `path` under `node` (an object), creating objects on the way.
fn insert(node: &mut Node, path: &[String], leaf: Node) -> Result<(), String> {
    let Node::Object(entries) = node else {
        return Err("a value and an object at the same key".to_owned());
    };
    let (first, rest) = path
        .split_first()
        .ok_or_else(|| "an empty key cannot be written".to_owned())?;
    let quoted = json_string(first);
    let pos = entries.iter().position(|(k, _)| *k == quoted);
    if rest.is_empty() {
        if pos.is_some() {
            return Err(format!("key {first:?} is written twice"));
        }
        entries.push((quoted, leaf));
        return Ok(());
    }
    let i = if let Some(i) = pos {
        i
    } else {
        entries.push((quoted, Node::Object(Vec::new())));
        entries.len() - 1
    };
    insert(&mut entries[i].1, rest, leaf)
}

/// Escapes a line-protocol tag value or field key (`,`, `=`, space).
fn lp_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | '=' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl PayloadEncoder {
    /// The encoder for `meter_id` with profile point names `points` on
    /// subscription `sub`.
    ///
    /// # Errors
    /// The mapping covers no point, or a key cannot be written in the format.
    pub fn new(
        sub: &MqttSubscription,
        meter_id: &str,
        profile: &str,
        points: &[&str],
    ) -> Result<PayloadEncoder, SkipReason> {
        let unencodable = |reason: String| SkipReason::Unencodable {
            topic: sub.topic.clone(),
            reason,
        };
        // (payload key, point index): the mapping's first key per point, in
        // profile order, or every point under its own name.
        let mut mapped: Vec<(&str, usize)> = Vec::new();
        for (i, name) in points.iter().enumerate() {
            if sub.fields.is_empty() {
                mapped.push((name, i));
            } else if let Some((key, _)) = sub.fields.iter().find(|(_, p)| p == name) {
                mapped.push((key.as_str(), i));
            }
        }
        if mapped.is_empty() {
            return Err(SkipReason::NoFields {
                topic: sub.topic.clone(),
                profile: profile.to_owned(),
            });
        }
        let unit = match &sub.timestamp {
            TimestampRule::Receipt => None,
            TimestampRule::Payload { unit, .. } => Some(*unit),
        };
        let mut fields = Vec::with_capacity(mapped.len());
        for (key, point) in mapped {
            let scale = sub
                .scale
                .iter()
                .find(|(p, _)| p == points[point])
                .map_or(1.0, |(_, s)| *s);
            let (key_text, path) = match sub.format {
                PayloadFormat::Json => (String::new(), json_path(key).map_err(unencodable)?),
                PayloadFormat::LineProtocol => (lp_escape(key), Vec::new()),
                PayloadFormat::Csv => {
                    if key.contains([',', '=', '\n', '\r']) {
                        return Err(unencodable(format!(
                            "field {key:?} cannot be written in CSV"
                        )));
                    }
                    (key.to_owned(), Vec::new())
                }
            };
            fields.push(Field {
                point,
                key: key_text,
                path,
                scale,
            });
        }
        let (json, meter) = match sub.format {
            PayloadFormat::Json => (
                Some(json_skeleton(sub, &fields).map_err(unencodable)?),
                json_string(meter_id),
            ),
            PayloadFormat::LineProtocol => {
                if unit == Some(TimeUnit::Rfc3339) {
                    return Err(unencodable(
                        "line protocol time stamps are integers, not RFC 3339".to_owned(),
                    ));
                }
                (None, format!("reading,meter={}", lp_escape(meter_id)))
            }
            PayloadFormat::Csv => {
                if meter_id.contains([',', '\n', '\r']) {
                    return Err(unencodable(format!(
                        "meter id {meter_id:?} cannot be written in CSV"
                    )));
                }
                (None, meter_id.to_owned())
            }
        };
        Ok(PayloadEncoder {
            format: sub.format,
            unit,
            fields,
            json,
            meter,
        })
    }

    /// Point indices published, in payload order.
    pub fn points(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields.iter().map(|f| f.point)
    }

    /// Writes the payload of one reading at Unix second `slot` into `out`
    /// (cleared first). `values` are the meter's point values by profile index.
    pub fn encode(&self, slot: i64, values: &[f64], kind: PayloadKind, out: &mut Vec<u8>) {
        out.clear();
        let w = PayloadWriter {
            enc: self,
            slot,
            values,
            kind,
        };
        match self.format {
            PayloadFormat::Json => {
                if let Some(node) = &self.json {
                    w.json(node, out);
                }
                if kind == PayloadKind::Truncated {
                    // Cut before the first field: never valid JSON.
                    let cut = json_cut(out);
                    out.truncate(cut);
                }
            }
            PayloadFormat::LineProtocol => w.line_protocol(out),
            PayloadFormat::Csv => w.csv(out),
        }
    }
}

/// Where a truncated JSON payload ends: after the first key's colon (a key
/// without its value), or after the opening bracket when there is no key.
fn json_cut(out: &[u8]) -> usize {
    // The rendered skeleton always starts with `{` or `[`; cutting after
    // the first `:` at the latest keeps one key without its value.
    out.iter()
        .position(|b| *b == b':')
        .map_or(1.min(out.len()), |i| i + 1)
}

/// Builds the JSON skeleton of a subscription: fields, time stamp and meter
/// at their paths, wrapped in the `array` when configured.
fn json_skeleton(sub: &MqttSubscription, fields: &[Field]) -> Result<Node, String> {
    let mut reading = Node::Object(Vec::new());
    if let TimestampRule::Payload { field, .. } = &sub.timestamp {
        insert(
            &mut reading,
            &json_path(field)?,
            Node::Leaf(Leaf::Timestamp),
        )?;
    }
    let meter_path = sub.meter_field.as_deref().map(json_path).transpose()?;
    if let Some(p) = &meter_path {
        insert(&mut reading, p, Node::Leaf(Leaf::Meter))?;
    }
    for (i, f) in fields.iter().enumerate() {
        insert(&mut reading, &f.path, Node::Leaf(Leaf::Value(i)))?;
    }
    match sub.array.as_deref() {
        None => Ok(reading),
        Some("") => Ok(Node::Array(Box::new(reading))),
        Some(pointer) => {
            let mut top = Node::Object(Vec::new());
            // The meter id also at the top, where a decoder may look for it once per message.
            if let Some(p) = &meter_path {
                insert(&mut top, p, Node::Leaf(Leaf::Meter))?;
            }
            insert(
                &mut top,
                &json_path(pointer)?,
                Node::Array(Box::new(reading)),
            )?;
            Ok(top)
        }
    }
}

/// One encoding call's inputs.
struct PayloadWriter<'a> {
    enc: &'a PayloadEncoder,
    slot: i64,
    values: &'a [f64],
    kind: PayloadKind,
}

impl PayloadWriter<'_> {
    fn json(&self, node: &Node, out: &mut Vec<u8>) {
        match node {
            Node::Object(entries) => {
                out.push(b'{');
                for (i, (key, child)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    out.push(b':');
                    self.json(child, out);
                }
                out.push(b'}');
            }
            Node::Array(reading) => {
                out.push(b'[');
                self.json(reading, out);
                out.push(b']');
            }
            Node::Leaf(Leaf::Timestamp) => self.timestamp(true, out),
            Node::Leaf(Leaf::Meter) => out.extend_from_slice(self.enc.meter.as_bytes()),
            Node::Leaf(Leaf::Value(i)) => self.value(&self.enc.fields[*i], out),
        }
    }

    fn line_protocol(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.enc.meter.as_bytes());
        if self.kind == PayloadKind::Truncated {
            // A line without a field set is not line protocol.
            return;
        }
        for (i, f) in self.enc.fields.iter().enumerate() {
            out.push(if i == 0 { b' ' } else { b',' });
            out.extend_from_slice(f.key.as_bytes());
            out.push(b'=');
            self.value(f, out);
        }
        if self.enc.unit.is_some() {
            out.push(b' ');
            self.timestamp(false, out);
        }
    }

    fn csv(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.enc.meter.as_bytes());
        out.push(b',');
        self.timestamp(false, out);
        if self.kind == PayloadKind::Truncated {
            // A row without fields.
            return;
        }
        for f in &self.enc.fields {
            out.push(b',');
            out.extend_from_slice(f.key.as_bytes());
            out.push(b'=');
            self.value(f, out);
        }
    }

    /// The slot in the configured unit (CSV with `receipt`: whole seconds).
    fn timestamp(&self, quote_text: bool, out: &mut Vec<u8>) {
        let s = self.slot;
        // Writing into a Vec cannot fail.
        let _ = match self.enc.unit {
            None | Some(TimeUnit::Seconds) => write!(out, "{s}"),
            Some(TimeUnit::Millis) => write!(out, "{}", s * 1000),
            Some(TimeUnit::Nanos) => write!(out, "{}", i128::from(s) * 1_000_000_000),
            Some(TimeUnit::Rfc3339) => {
                let q = if quote_text { "\"" } else { "" };
                match jiff::Timestamp::from_second(s) {
                    Ok(ts) => write!(out, "{q}{ts}{q}"),
                    Err(_) => write!(out, "{q}{s}{q}"),
                }
            }
        };
    }

    fn value(&self, f: &Field, out: &mut Vec<u8>) {
        if self.kind == PayloadKind::Sentinel {
            out.extend_from_slice(b"0xFFFF");
            return;
        }
        let v = unscale(self.values[f.point], f.scale);
        // `Display` of f64 is the shortest text that reads back to the same
        // number, and never uses an exponent (which line protocol lacks).
        let _ = write!(out, "{v}");
    }
}
