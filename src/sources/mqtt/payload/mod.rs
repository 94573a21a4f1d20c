//! Payload decoding: one MQTT message to readings, or one rejection reason.
//!
//! Why it is separate from the client: decoding is pure (topic, bytes,
//! receipt time in; readings out), so it can be tested exhaustively and
//! benchmarked without a broker, and the client stays a thin I/O loop.
//!
//! A [`BrokerDecoder`] is built once per broker from the validated
//! [`Config`]: it resolves every subscription's topic template, and per
//! (subscription, profile) the payload key → point index and scale, and the
//! meter ids of the broker's meters. Decoding a message then allocates only
//! what parsing JSON needs (line protocol and CSV are parsed in place).
//!
//! A message is all or nothing: on any rejection the batch is truncated back
//! to where it was, so a half-decoded multi-reading payload never leaks.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::config::topic::{TopicIds, TopicTemplate};
use crate::config::{Config, PayloadFormat, TimeUnit, TimestampRule};
use crate::model::{BrokerId, MeterId, PointValue, Quality, Reading, ReadingBatch};

mod json;
mod text;

/// 2000-01-01T00:00:00Z in Unix milliseconds: older stamps are rejected.
const OLDEST_MS: i64 = 946_684_800_000;
/// Longest detail of a [`Rejection`], bytes (then cut, with `…`).
pub const MAX_DETAIL: usize = 200;
/// Stamps more than this after receipt are rejected (they would never become valid).
const MAX_AHEAD_MS: i64 = 86_400_000;

/// Why a message was rejected. One vocabulary for counters, logs and dead
/// letters ([`Rejection::reason`]); the payload of a variant says what exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The payload is larger than the broker's `max_payload_bytes`.
    #[error("too_large: payload larger than max_payload_bytes")]
    TooLarge,
    /// The payload is not valid UTF-8.
    #[error("not_utf8: payload is not valid UTF-8")]
    NotUtf8,
    /// The payload does not parse in the subscription's format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A mapped point (or the meter key) has a value that is not a number (a string).
    #[error("wrong_type: {0}")]
    WrongType(String),
    /// The meter is not one of this broker's meters, or not of the topic's site.
    #[error("unknown_meter: {0}")]
    UnknownMeter(String),
    /// Nothing names the meter, or the payload holds no point of its profile.
    #[error("missing_field: {0}")]
    MissingField(String),
    /// The time stamp is missing, unreadable, before 2000 or more than a day ahead.
    #[error("bad_timestamp: {0}")]
    BadTimestamp(String),
    /// The topic matches none of the broker's subscriptions.
    #[error("no_subscription: the topic matches no subscription")]
    NoSubscription,
}

impl Rejection {
    /// The reason as a word: `too_large`, `not_utf8`, `malformed`,
    /// `wrong_type`, `unknown_meter`, `missing_field`, `bad_timestamp` or
    /// `no_subscription`.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::NotUtf8 => "not_utf8",
            Rejection::Malformed(_) => "malformed",
            Rejection::WrongType(_) => "wrong_type",
            Rejection::UnknownMeter(_) => "unknown_meter",
            Rejection::MissingField(_) => "missing_field",
            Rejection::BadTimestamp(_) => "bad_timestamp",
            Rejection::NoSubscription => "no_subscription",
        }
    }

    /// Shortens the detail to [`MAX_DETAIL`] bytes: it quotes payload text
    /// (meter names, values), which must not turn into huge log lines.
    fn clip(&mut self) {
        if let Rejection::Malformed(d)
        | Rejection::WrongType(d)
        | Rejection::UnknownMeter(d)
        | Rejection::MissingField(d)
        | Rejection::BadTimestamp(d) = self
            && d.len() > MAX_DETAIL
        {
            let mut end = MAX_DETAIL;
            while !d.is_char_boundary(end) {
                end -= 1;
            }
            d.truncate(end);
            d.push('…');
        }
    }

    /// Every reason word, in the order of the variants.
    pub const REASONS: [&'static str; 8] = [
        "too_large",
        "not_utf8",
        "malformed",
        "wrong_type",
        "unknown_meter",
        "missing_field",
        "bad_timestamp",
        "no_subscription",
    ];
}

/// A rejection and the meter it concerns, when the meter was resolved.
pub type Rejected = (Rejection, Option<MeterId>);

/// Where a JSON value is found: a key of the object, or a JSON pointer.
#[derive(Debug, Clone)]
enum Key {
    Plain(String),
    /// The pointer as written, and its reference tokens, unescaped once
    /// here rather than on every lookup as `Value::pointer` would.
    Pointer(String, Vec<String>),
}

impl Key {
    fn new(s: &str) -> Key {
        match s.strip_prefix('/') {
            Some(rest) => Key::Pointer(
                s.to_owned(),
                rest.split('/')
                    .map(|t| t.replace("~1", "/").replace("~0", "~"))
                    .collect(),
            ),
            None => Key::Plain(s.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Key::Plain(s) | Key::Pointer(s, _) => s,
        }
    }

    fn find<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        match self {
            Key::Plain(k) => v.as_object()?.get(k),
            Key::Pointer(_, tokens) => tokens.iter().try_fold(v, |v, t| match v {
                Value::Object(m) => m.get(t),
                Value::Array(a) => a.get(t.parse::<usize>().ok()?),
                _ => None,
            }),
        }
    }
}

/// One payload key of a (subscription, profile) pair.
#[derive(Debug, Clone)]
struct FieldMap {
    key: Key,
    point: usize,
    scale: f64,
}

/// A subscription, resolved.
#[derive(Debug)]
struct Sub {
    template: TopicTemplate,
    qos: u8,
    format: PayloadFormat,
    /// `None`: receipt time.
    stamp: Option<(Key, TimeUnit)>,
    array: Option<String>,
    meter_field: Option<Key>,
    /// Per profile slot: the keys to look up (JSON).
    maps: Vec<Vec<FieldMap>>,
    /// Per profile slot: field name → (point, scale) (line protocol, CSV).
    lookup: Vec<HashMap<String, (usize, f64)>>,
}

/// One of the broker's meters.
#[derive(Debug)]
struct MeterEntry {
    id: MeterId,
    site: String,
    tz: jiff::tz::TimeZone,
    /// Index into [`BrokerDecoder::profiles`].
    profile: usize,
}

/// A profile used by the broker's meters.
#[derive(Debug)]
struct ProfileInfo {
    id: String,
    n_points: usize,
}

/// Turns the messages of one broker into readings (see the module doc).
#[derive(Debug)]
pub struct BrokerDecoder {
    broker: BrokerId,
    broker_name: String,
    max_payload: usize,
    subs: Vec<Sub>,
    meters: HashMap<String, MeterEntry>,
    /// Meters of other sources, for a precise `unknown_meter` message.
    elsewhere: HashMap<String, MeterId>,
    profiles: Vec<ProfileInfo>,
}

impl BrokerDecoder {
    /// Resolves everything a message needs for `broker` of `config`.
    ///
    /// # Panics
    /// When `broker` is not an index into `config.mqtt`.
    pub fn new(config: &Config, broker: BrokerId) -> BrokerDecoder {
        let b = &config.mqtt[broker.index()];
        let mut profiles: Vec<ProfileInfo> = Vec::new();
        let mut profile_ids = Vec::new();
        let mut meters = HashMap::new();
        let mut elsewhere = HashMap::new();
        for (i, m) in config.meters.iter().enumerate() {
            let id = MeterId(u32::try_from(i).unwrap_or(u32::MAX));
            if m.broker() != Some(broker) {
                elsewhere.insert(m.id.clone(), id);
                continue;
            }
            let slot = if let Some(s) = profile_ids.iter().position(|p| *p == m.profile) {
                s
            } else {
                let p = config.profile_of(id);
                profile_ids.push(m.profile);
                profiles.push(ProfileInfo {
                    id: p.id.clone(),
                    n_points: p.points.len(),
                });
                profiles.len() - 1
            };
            let site = config.site_of(id);
            meters.insert(
                m.id.clone(),
                MeterEntry {
                    id,
                    site: site.id.clone(),
                    tz: site.timezone.clone(),
                    profile: slot,
                },
            );
        }
        let subs = b
            .subscriptions
            .iter()
            .map(|s| {
                // The configuration was validated: the template parses.
                let template = TopicTemplate::parse(&s.topic)
                    .unwrap_or_else(|e| panic!("validated topic \"{}\": {e}", s.topic));
                let scale_of = |point: &str| {
                    s.scale
                        .iter()
                        .find(|(n, _)| n == point)
                        .map_or(1.0, |(_, f)| *f)
                };
                let maps: Vec<Vec<FieldMap>> = profile_ids
                    .iter()
                    .map(|pid| {
                        let prof = &config.profiles[pid.index()];
                        if s.fields.is_empty() {
                            prof.points
                                .iter()
                                .enumerate()
                                .map(|(i, p)| FieldMap {
                                    key: Key::Plain(p.name.clone()),
                                    point: i,
                                    scale: scale_of(&p.name),
                                })
                                .collect()
                        } else {
                            // Keys mapped to points this profile lacks are
                            // for other profiles on the same subscription.
                            s.fields
                                .iter()
                                .filter_map(|(key, name)| {
                                    Some(FieldMap {
                                        key: Key::new(key),
                                        point: prof.point_index(name)?,
                                        scale: scale_of(name),
                                    })
                                })
                                .collect()
                        }
                    })
                    .collect();
                let lookup = maps
                    .iter()
                    .map(|m| {
                        m.iter()
                            .map(|f| (f.key.as_str().to_owned(), (f.point, f.scale)))
                            .collect()
                    })
                    .collect();
                Sub {
                    template,
                    qos: s.qos,
                    format: s.format,
                    stamp: match &s.timestamp {
                        TimestampRule::Receipt => None,
                        TimestampRule::Payload { field, unit } => Some((Key::new(field), *unit)),
                    },
                    array: s.array.clone(),
                    meter_field: s.meter_field.as_deref().map(Key::new),
                    maps,
                    lookup,
                }
            })
            .collect();
        BrokerDecoder {
            broker,
            broker_name: b.id.clone(),
            max_payload: b.max_payload_bytes,
            subs,
            meters,
            elsewhere,
            profiles,
        }
    }

    /// The broker this decoder is for.
    pub fn broker(&self) -> BrokerId {
        self.broker
    }

    /// The subscription filters (`{x}` → `+`) and their QoS, in configuration order.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, u8)> {
        self.subs.iter().map(|s| (s.template.filter(), s.qos))
    }

    /// Decodes one message received at `received_ms` (Unix ms) and appends
    /// its readings to `out`; returns how many were appended.
    ///
    /// # Errors
    /// The rejection and, when it was resolved, the meter. Nothing is
    /// appended to `out` then.
    pub fn decode(
        &mut self,
        topic: &str,
        payload: &[u8],
        received_ms: i64,
        out: &mut ReadingBatch,
    ) -> Result<usize, Rejected> {
        if payload.len() > self.max_payload {
            return Err((Rejection::TooLarge, None));
        }
        let text = std::str::from_utf8(payload).map_err(|_| (Rejection::NotUtf8, None))?;
        let Some((sub, ids)) = self
            .subs
            .iter()
            .find_map(|s| s.template.matches(topic).map(|ids| (s, ids)))
        else {
            return Err((Rejection::NoSubscription, None));
        };
        let (readings, values) = (out.readings.len(), out.values.len());
        let ctx = Ctx {
            dec: self,
            sub,
            ids,
            received_ms,
        };
        let result = match sub.format {
            PayloadFormat::Json => ctx.json(text, out),
            PayloadFormat::LineProtocol => ctx.line_protocol(text, out),
            PayloadFormat::Csv => ctx.csv(text, out),
        };
        result.map_err(|(mut rejection, meter)| {
            out.readings.truncate(readings);
            out.values.truncate(values);
            rejection.clip();
            (rejection, meter)
        })
    }
}

/// One message being decoded.
struct Ctx<'d, 't> {
    dec: &'d BrokerDecoder,
    sub: &'d Sub,
    ids: TopicIds<'t>,
    received_ms: i64,
}

impl<'d> Ctx<'d, '_> {
    /// The meter a payload names (`None`: the topic's), checked against the topic.
    fn meter(&self, from_payload: Option<&str>) -> Result<&'d MeterEntry, Rejected> {
        let name = match (self.ids.meter, from_payload) {
            (Some(t), Some(p)) if t != p => {
                return Err((
                    Rejection::UnknownMeter(format!(
                        "the payload names meter \"{p}\" but the topic names \"{t}\""
                    )),
                    None,
                ));
            }
            (Some(m), _) | (None, Some(m)) => m,
            (None, None) => {
                let what = match self.sub.format {
                    PayloadFormat::Json => self.sub.meter_field.as_ref().map_or_else(
                        || "no meter key".to_owned(),
                        |k| format!("no meter key \"{}\"", k.as_str()),
                    ),
                    PayloadFormat::LineProtocol => "no \"meter\" tag".to_owned(),
                    PayloadFormat::Csv => "an empty meter column".to_owned(),
                };
                return Err((
                    Rejection::MissingField(format!("{what} and the topic names no meter")),
                    None,
                ));
            }
        };
        let Some(m) = self.dec.meters.get(name) else {
            let id = self.dec.elsewhere.get(name).copied();
            let why = if id.is_some() {
                format!(
                    "meter \"{name}\" is not configured with broker = \"{}\"",
                    self.dec.broker_name
                )
            } else {
                format!("no meter \"{name}\" is configured")
            };
            return Err((Rejection::UnknownMeter(why), id));
        };
        if let Some(site) = self.ids.site
            && site != m.site
        {
            return Err((
                Rejection::UnknownMeter(format!(
                    "the topic names site \"{site}\" but meter \"{name}\" belongs to site \"{}\"",
                    m.site
                )),
                Some(m.id),
            ));
        }
        Ok(m)
    }

    /// Appends `n` missing point values for a new reading; returns where they start.
    fn open(n: usize, out: &mut ReadingBatch) -> usize {
        let start = out.values.len();
        out.values
            .resize(start + n, PointValue::missing(Quality::EXCEPTION));
        start
    }

    /// Rejects a reading in which no point of the meter's profile was found.
    fn require_points(&self, m: &MeterEntry, found: usize) -> Result<(), Rejected> {
        if found == 0 {
            return Err((
                Rejection::MissingField(format!(
                    "the payload has no point of profile \"{}\"",
                    self.dec.profiles[m.profile].id
                )),
                Some(m.id),
            ));
        }
        Ok(())
    }

    /// Completes a reading opened with [`Ctx::open`] at the time stamp
    /// `stamp_ms` (`None`: receipt).
    fn close(&self, m: &MeterEntry, start: usize, stamp_ms: Option<i64>, out: &mut ReadingBatch) {
        let ms = stamp_ms.unwrap_or(self.received_ms);
        let slot = ms.div_euclid(1000);
        out.readings.push(Reading {
            meter: m.id,
            slot,
            lag_ms: self.received_ms - slot * 1000,
            values_start: u32::try_from(start).unwrap_or(u32::MAX),
            n_points: u16::try_from(self.dec.profiles[m.profile].n_points).unwrap_or(u16::MAX),
        });
    }

    /// Checks a payload time stamp against the plausible range.
    fn check_stamp(&self, ms: i64, shown: &dyn fmt::Display) -> Result<i64, Rejection> {
        if ms < OLDEST_MS {
            Err(Rejection::BadTimestamp(format!(
                "{shown} is before 2000-01-01"
            )))
        } else if ms > self.received_ms.saturating_add(MAX_AHEAD_MS) {
            Err(Rejection::BadTimestamp(format!(
                "{shown} is more than a day after receipt"
            )))
        } else {
            Ok(ms)
        }
    }

    // -----------------------------------------------------------------------
    // JSON
}

/// A JSON number time stamp in `unit`, as Unix ms.
fn number_ms(n: &serde_json::Number, unit: TimeUnit) -> Result<i64, String> {
    if let Some(i) = n.as_i64() {
        return int_ms(i, unit).ok_or_else(|| format!("= {i} is out of range"));
    }
    match n.as_f64() {
        Some(x) => float_ms(x, unit).ok_or_else(|| format!("= {n} is out of range")),
        None => Err(format!("= {n} is out of range")),
    }
}

/// A time stamp written as text: a number in `unit`, or RFC 3339 (without
/// an offset: local time of `tz`).
fn text_ms(s: &str, unit: TimeUnit, tz: &jiff::tz::TimeZone) -> Result<i64, String> {
    if unit == TimeUnit::Rfc3339 {
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            return Ok(ts.as_millisecond());
        }
        return match s.parse::<jiff::civil::DateTime>() {
            Ok(dt) => tz
                .to_ambiguous_timestamp(dt)
                .compatible()
                .map(jiff::Timestamp::as_millisecond)
                .map_err(|e| format!("\"{s}\": {e}")),
            Err(_) => Err(format!("\"{s}\" is not an RFC 3339 time stamp")),
        };
    }
    if let Ok(i) = s.parse::<i64>() {
        return int_ms(i, unit).ok_or_else(|| format!("\"{s}\" is out of range"));
    }
    match s.parse::<f64>() {
        Ok(x) => float_ms(x, unit).ok_or_else(|| format!("\"{s}\" is out of range")),
        Err(_) => Err(format!("\"{s}\" is not a number")),
    }
}

/// An integer time stamp (line protocol), as Unix ms.
fn integer_ms(s: &str, unit: TimeUnit) -> Result<i64, String> {
    let i: i64 = s
        .parse()
        .map_err(|_| format!("time stamp \"{s}\" is not an integer"))?;
    int_ms(i, unit).ok_or_else(|| format!("time stamp {s} is out of range"))
}

fn int_ms(i: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Seconds => i.checked_mul(1000),
        TimeUnit::Millis => Some(i),
        TimeUnit::Nanos => Some(i.div_euclid(1_000_000)),
        TimeUnit::Rfc3339 => None,
    }
}

fn float_ms(x: f64, unit: TimeUnit) -> Option<i64> {
    let ms = match unit {
        TimeUnit::Seconds => x * 1000.0,
        TimeUnit::Millis => x,
        TimeUnit::Nanos => x / 1e6,
        TimeUnit::Rfc3339 => return None,
    }
    .floor();
    // Far outside any plausible time: let the range check reject it.
    (ms.is_finite() && ms.abs() < 9.0e15).then_some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::text::{LpValue, lp_value, split_unescaped, unescape};
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn splitting_respects_escapes_and_quotes() {
        assert_eq!(
            split_unescaped("a\\ b c", b' ', false),
            ("a\\ b", Some("c"))
        );
        assert_eq!(
            split_unescaped("s=\"x,y\",v=1", b',', true),
            ("s=\"x,y\"", Some("v=1"))
        );
        assert_eq!(split_unescaped("abc", b',', false), ("abc", None));
        assert_eq!(unescape("a\\,b\\=c\\ d"), "a,b=c d");
        assert!(matches!(unescape("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let v: Value =
            serde_json::from_str(r#"{"a/b": [1, {"~x": 2}], "": 3, "k": 4}"#).expect("json");
        let find = |k: &str| Key::new(k).find(&v).cloned();
        assert_eq!(find("/a~1b/0"), Some(Value::from(1)));
        assert_eq!(find("/a~1b/1/~0x"), Some(Value::from(2)));
        assert_eq!(find("/"), Some(Value::from(3)));
        assert_eq!(find("k"), Some(Value::from(4)));
        assert_eq!(find("/a~1b/9"), None);
        assert_eq!(find("/k/x"), None);
        // The same answers as serde_json's own (slower) lookup.
        for k in ["/a~1b/0", "/a~1b/1/~0x", "/", "/k", "/a~1b/x"] {
            assert_eq!(find(k).as_ref(), v.pointer(k), "{k}");
        }
    }

    #[test]
    fn line_protocol_values() {
        assert!(matches!(lp_value("1.5"), Ok(LpValue::Number(x)) if x == 1.5));
        assert!(matches!(lp_value("-7i"), Ok(LpValue::Number(x)) if x == -7.0));
        assert!(matches!(lp_value("7u"), Ok(LpValue::Number(x)) if x == 7.0));
        assert!(matches!(lp_value("\"text\""), Ok(LpValue::Text)));
        assert!(matches!(lp_value("TRUE"), Ok(LpValue::Bool)));
        assert!(lp_value("-7u").is_err());
        assert!(lp_value("\"open").is_err());
        assert!(lp_value("12x").is_err());
        assert!(lp_value("NaN").is_err());
    }

    #[test]
    fn time_units() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(
            text_ms("1700000000", TimeUnit::Seconds, &utc),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            text_ms("1700000000.5", TimeUnit::Seconds, &utc),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            text_ms("1700000000123", TimeUnit::Millis, &utc),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            text_ms("1700000000123456789", TimeUnit::Nanos, &utc),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            text_ms("2023-11-14T22:13:20Z", TimeUnit::Rfc3339, &utc),
            Ok(1_700_000_000_000)
        );
        let sh = jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz");
        assert_eq!(
            text_ms("2023-11-15T06:13:20", TimeUnit::Rfc3339, &sh),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            text_ms("yesterday", TimeUnit::Rfc3339, &sh),
            Err("\"yesterday\" is not an RFC 3339 time stamp".to_owned())
        );
        assert_eq!(int_ms(i64::MAX, TimeUnit::Seconds), None);
    }
}
