//! Raw configuration: the files as written, before any check.
//!
//! Why a separate raw layer: serde alone stops at the first problem, and the
//! operator of a gateway wants every problem of a configuration in one run
//! (STYLE.md habit 2). So this layer is deliberately permissive in *shape*
//! and strict in *scalars*:
//!
//! * every field is optional, so a missing key is reported by
//!   [`super::load`](mod@super::load) with a message that says what to write, not by serde;
//! * arrays of tables (`[[meters]]`, `[[points]]`, ...) and sections are kept
//!   as untyped [`Value`]s and deserialized one element at a time, so a type
//!   error costs one element, not the whole file;
//! * unknown keys are collected with `serde_ignored` (all of them, with a
//!   "did you mean" taken from the struct's own field list) instead of
//!   `deny_unknown_fields`, which would stop at the first;
//! * type errors carry their key path through `serde_path_to_error`;
//! * scalars use the strict wrappers [`Int`], [`Float`], [`Text`] and
//!   [`Flag`]: the `config` crate would otherwise round `1.5` to an integer or
//!   turn `5` into a string. The one leniency kept is a *string* holding a
//!   number or a boolean, because environment overrides
//!   (`EMGATE__INFLUXDB__BATCH_SIZE=100`) only ever provide strings.
//!
//! The same machinery reads site and profile files (with [`crate::profiles::load`]).

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Value, ValueKind};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};

use super::ConfigError;

// ---------------------------------------------------------------------------
// Strict scalars

/// An integer: a TOML integer, or a string holding one (environment overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(pub i64);

/// A number: a TOML float or integer, or a string holding one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Float(pub f64);

/// A string, and only a string (`id = 5` is a type error, not `"5"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

/// A boolean: `true`/`false`, or the strings `"true"`/`"false"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Float;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
                Ok(Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Float, E> {
                v.trim()
                    .parse()
                    .map(Float)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.trim() {
                    "true" => Ok(Flag(true)),
                    "false" => Ok(Flag(false)),
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Main file

/// The main file's top level: each section is checked on its own.
#[derive(Debug, Deserialize)]
pub struct MainFile {
    /// `[gateway]`.
    pub gateway: Option<Value>,
    /// `[influxdb]`.
    pub influxdb: Option<Value>,
    /// `[file_sink]`.
    pub file_sink: Option<Value>,
    /// `[[endpoints]]`.
    pub endpoints: Option<Value>,
    /// `[spool]`.
    pub spool: Option<Value>,
    /// `[validation]`.
    pub validation: Option<Value>,
    /// `[simulator]`.
    pub simulator: Option<Value>,
    /// `[aggregation]`.
    pub aggregation: Option<Value>,
    /// `[[mqtt]]`.
    pub mqtt: Option<Value>,
    /// `[api]`.
    pub api: Option<Value>,
}

/// `[api]` as written.
#[derive(Debug, Deserialize)]
pub struct ApiRaw {
    /// `host:port` to listen on; `""` turns the API off.
    pub listen: Option<Text>,
    /// `false` turns the API off.
    pub enabled: Option<Flag>,
    /// Bearer token required on everything but `/health`.
    pub token: Option<Text>,
}

/// One `[[mqtt]]` element as written.
#[derive(Debug, Deserialize)]
pub struct MqttRaw {
    /// Broker id.
    pub id: Option<Text>,
    /// Host name or address.
    pub host: Option<Text>,
    /// TCP port.
    pub port: Option<Int>,
    /// MQTT client id.
    pub client_id: Option<Text>,
    /// Clean session / clean start.
    pub clean_session: Option<Flag>,
    /// Keep-alive interval, seconds.
    pub keep_alive_secs: Option<Int>,
    /// `"3.1.1"` or `"5"`.
    pub protocol: Option<Text>,
    /// User name.
    pub username: Option<Text>,
    /// Password.
    pub password: Option<Text>,
    /// `tls = { ca_file = "...", client_cert = "...", client_key = "..." }`.
    pub tls: Option<Value>,
    /// Largest accepted payload, bytes.
    pub max_payload_bytes: Option<Int>,
    /// Topic rejected messages are republished to.
    pub dead_letter_topic: Option<Text>,
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: Option<Int>,
    /// Reconnect delay cap, ms.
    pub reconnect_max_ms: Option<Int>,
    /// `[[mqtt.subscriptions]]`.
    pub subscriptions: Option<Value>,
}

/// `tls` of a broker as written.
#[derive(Debug, Deserialize)]
pub struct MqttTlsRaw {
    /// CA certificate file (PEM).
    pub ca_file: Option<Text>,
    /// Client certificate file (PEM).
    pub client_cert: Option<Text>,
    /// Client private key file (PEM).
    pub client_key: Option<Text>,
}

/// One `[[mqtt.subscriptions]]` element as written.
#[derive(Debug, Deserialize)]
pub struct SubscriptionRaw {
    /// Topic template.
    pub topic: Option<Text>,
    /// QoS 0..=2.
    pub qos: Option<Int>,
    /// `"json"`, `"line_protocol"` or `"csv"`.
    pub format: Option<Text>,
    /// `"payload"` or `"receipt"`.
    pub timestamp: Option<Text>,
    /// JSON key or pointer of the time stamp.
    pub timestamp_field: Option<Text>,
    /// `"s"`, `"ms"`, `"ns"` or `"rfc3339"`.
    pub timestamp_unit: Option<Text>,
    /// Payload key → point name.
    pub fields: Option<Value>,
    /// Point name → factor.
    pub scale: Option<Value>,
    /// JSON pointer of an array of readings.
    pub array: Option<Text>,
    /// JSON key naming the meter.
    pub meter_field: Option<Text>,
}

/// `[aggregation]` as written.
#[derive(Debug, Deserialize)]
pub struct AggregationRaw {
    /// Window tags: an array, or a comma-separated string (environment).
    pub windows: Option<Value>,
    /// Allowed lateness, seconds.
    pub allowed_lateness_secs: Option<Int>,
    /// Per-meter bound on readings held for late data.
    pub max_reorder_readings: Option<Int>,
    /// Longest distance between readings that is not a gap, seconds.
    pub max_gap_secs: Option<Int>,
    /// Gauge statistics per window.
    pub gauge_stats: Option<Flag>,
    /// `"gbt2589-2008"` or a path to a coefficient table.
    pub coefficients: Option<Text>,
    /// `"equivalent"` or `"equal_value"`.
    pub electricity: Option<Text>,
    /// `[aggregation.equal_value_kgce_per_kwh]`: year → kgce/kWh.
    pub equal_value_kgce_per_kwh: Option<Value>,
    /// Reference enthalpy of steam, kJ/kg.
    pub steam_reference_kj_per_kg: Option<Float>,
}

/// `[gateway]` as written.
#[derive(Debug, Deserialize)]
pub struct GatewayRaw {
    /// Gateway instance id.
    pub id: Option<Text>,
    /// IANA time zone name.
    pub timezone: Option<Text>,
    /// Local data directory, relative to the working directory.
    pub data_dir: Option<Text>,
    /// Directory of site files, relative to the main file.
    pub sites_dir: Option<Text>,
    /// Directory of profiles, relative to the main file.
    pub profiles_dir: Option<Text>,
    /// Longest orderly shutdown, seconds.
    pub shutdown_timeout_secs: Option<Int>,
}

/// `[influxdb]` as written (both API flavours' keys; the loader rejects the other flavour's).
#[derive(Debug, Deserialize)]
pub struct InfluxRaw {
    /// Base URL.
    pub url: Option<Text>,
    /// `"v2"` or `"v1"`.
    pub api: Option<Text>,
    /// v2 organisation.
    pub org: Option<Text>,
    /// v2 bucket.
    pub bucket: Option<Text>,
    /// v2 token.
    pub token: Option<Text>,
    /// v1 database.
    pub database: Option<Text>,
    /// v1 retention policy.
    pub retention_policy: Option<Text>,
    /// v1 user name.
    pub username: Option<Text>,
    /// v1 password.
    pub password: Option<Text>,
    /// Lines per write request.
    pub batch_size: Option<Int>,
    /// Longest wait before a batch is sent, ms.
    pub flush_interval_ms: Option<Int>,
    /// Gzip request bodies.
    pub gzip: Option<Flag>,
    /// Request timeout, ms.
    pub timeout_ms: Option<Int>,
    /// Cap on lines written per second; 0 = none.
    pub max_lines_per_sec: Option<Int>,
    /// Dead-letter file for permanently rejected lines.
    pub dead_letter_path: Option<Text>,
    /// First retry delay, ms.
    pub retry_initial_ms: Option<Int>,
    /// Retry delay cap, ms.
    pub retry_max_ms: Option<Int>,
}

/// `[validation]` as written.
#[derive(Debug, Deserialize)]
pub struct ValidationRaw {
    /// Future skew limit, seconds.
    pub max_future_skew_secs: Option<Int>,
    /// Lateness limit, seconds.
    pub max_lateness_secs: Option<Int>,
    /// Checkpoint period, seconds.
    pub checkpoint_interval_secs: Option<Int>,
}

/// `[spool]` as written.
#[derive(Debug, Deserialize)]
pub struct SpoolRaw {
    /// Segment directory.
    pub dir: Option<Text>,
    /// Bound on unacknowledged bytes.
    pub max_bytes: Option<Int>,
    /// Segment size.
    pub segment_bytes: Option<Int>,
    /// `"block"` or `"drop_oldest"`.
    pub policy: Option<Text>,
    /// `"interval"` or `"every_batch"`.
    pub fsync: Option<Text>,
    /// Fsync period with `fsync = "interval"`, ms.
    pub fsync_interval_ms: Option<Int>,
}

/// `[file_sink]` as written.
#[derive(Debug, Deserialize)]
pub struct FileSinkRaw {
    /// Output file.
    pub path: Option<Text>,
    /// Lines per flush.
    pub batch_size: Option<Int>,
    /// Longest wait before lines are written, ms.
    pub flush_interval_ms: Option<Int>,
}

/// One `[[endpoints]]` element as written.
#[derive(Debug, Deserialize)]
pub struct EndpointRaw {
    /// Endpoint id.
    pub id: Option<Text>,
    /// Host name or address.
    pub host: Option<Text>,
    /// TCP port.
    pub port: Option<Int>,
    /// Request timeout, ms.
    pub timeout_ms: Option<Int>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: Option<Int>,
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: Option<Int>,
    /// Reconnect delay cap, ms.
    pub reconnect_max_ms: Option<Int>,
    /// Largest gap a merged read may span, registers.
    pub max_gap: Option<Int>,
    /// Largest read, registers.
    pub max_registers: Option<Int>,
    /// Pause between requests, ms.
    pub inter_request_delay_ms: Option<Int>,
}

/// `[simulator]` as written.
#[derive(Debug, Deserialize)]
pub struct SimulatorRaw {
    /// Length of a simulation step, ms.
    pub time_step_ms: Option<Int>,
    /// `faults = [{ meter = "...", fault = "..." }]`.
    pub faults: Option<Value>,
}

/// One element of `simulator.faults` as written.
#[derive(Debug, Deserialize)]
pub struct FaultRaw {
    /// Meter id.
    pub meter: Option<Text>,
    /// Fault kind.
    pub fault: Option<Text>,
}

// ---------------------------------------------------------------------------
// Site files

/// A site file's top level.
#[derive(Debug, Deserialize)]
pub struct SiteFile {
    /// `[site]`.
    pub site: Option<Value>,
    /// `[[meters]]`.
    pub meters: Option<Value>,
}

/// `[site]` as written.
#[derive(Debug, Deserialize)]
pub struct SiteRaw {
    /// Site id.
    pub id: Option<Text>,
    /// Human name.
    pub name: Option<Text>,
    /// IANA time zone; the gateway's when absent.
    pub timezone: Option<Text>,
}

/// One `[[meters]]` element as written.
#[derive(Debug, Deserialize)]
pub struct MeterRaw {
    /// Meter id.
    pub id: Option<Text>,
    /// Energy type.
    pub energy: Option<Text>,
    /// Metering level 1..=3.
    pub level: Option<Int>,
    /// Profile id.
    pub profile: Option<Text>,
    /// Endpoint id.
    pub endpoint: Option<Text>,
    /// Modbus unit id.
    pub unit_id: Option<Int>,
    /// MQTT broker id (instead of `endpoint` and `unit_id`).
    pub broker: Option<Text>,
    /// Poll interval, seconds.
    pub poll_interval_secs: Option<Int>,
    /// Voltage-transformer ratio.
    pub pt: Option<Float>,
    /// Current-transformer ratio.
    pub ct: Option<Float>,
    /// `calibration = { ... }`.
    pub calibration: Option<Value>,
    /// `replacements = [{ ... }]`.
    pub replacements: Option<Value>,
    /// `[meters.rules.<point>]` overrides.
    pub rules: Option<Value>,
    /// Counter point aggregated into `consumption`.
    pub consumption: Option<Text>,
    /// Role in the site's balance.
    pub role: Option<Text>,
    /// Coefficient table key, or `"none"`.
    pub coefficient: Option<Text>,
    /// Measured net calorific value of natural gas, kJ/m³.
    pub lhv_kj_per_m3: Option<Float>,
}

/// `calibration` of a meter as written.
#[derive(Debug, Deserialize)]
pub struct CalibrationRaw {
    /// Serial number.
    pub serial: Option<Text>,
    /// Accuracy class.
    pub accuracy_class: Option<Text>,
    /// Last verification date.
    pub verified: Option<Text>,
    /// Due date.
    pub due: Option<Text>,
}

/// One element of `replacements` as written.
#[derive(Debug, Deserialize)]
pub struct ReplacementRaw {
    /// Counter point name.
    pub point: Option<Text>,
    /// Moment of the swap.
    pub at: Option<Text>,
    /// Last reading of the old meter.
    pub old_final: Option<Float>,
    /// First reading of the new meter.
    pub new_initial: Option<Float>,
}

/// One `[meters.rules.<point>]` table as written.
#[derive(Debug, Deserialize)]
pub struct OverrideRaw {
    /// Plausible minimum.
    pub min: Option<Float>,
    /// Plausible maximum.
    pub max: Option<Float>,
    /// Physical maximum increase per hour.
    pub max_rate_per_hour: Option<Float>,
    /// Spike margin.
    pub spike_margin: Option<Float>,
    /// Identical polls that make a gauge frozen.
    pub frozen_after: Option<Int>,
}

// ---------------------------------------------------------------------------
// Profile files

/// A profile file's top level.
#[derive(Debug, Deserialize)]
pub struct ProfileFile {
    /// Manufacturer, model and provenance of the map.
    pub description: Option<Text>,
    /// Counter point aggregated into `consumption` by default.
    pub consumption: Option<Text>,
    /// Pressure gauge (MPa gauge) for steam enthalpy.
    pub pressure: Option<Text>,
    /// Temperature gauge (°C) for steam enthalpy.
    pub temperature: Option<Text>,
    /// `[[points]]`.
    pub points: Option<Value>,
}

/// One `[[points]]` element as written.
#[derive(Debug, Deserialize)]
pub struct PointRaw {
    /// Field name.
    pub name: Option<Text>,
    /// Register table.
    pub register: Option<Text>,
    /// 0-based address.
    pub address: Option<Int>,
    /// Data type.
    #[serde(rename = "type")]
    pub data_type: Option<Text>,
    /// Word and byte order.
    pub order: Option<Text>,
    /// Multiplier.
    pub scale: Option<Float>,
    /// Addend after scaling.
    pub offset: Option<Float>,
    /// Transformer ratios that apply.
    pub ratio: Option<Text>,
    /// Counter or gauge.
    pub kind: Option<Text>,
    /// Unit of the scaled value.
    pub unit: Option<Text>,
    /// Raw "no value" markers.
    pub sentinels: Option<Vec<Float>>,
    /// Plausible minimum.
    pub min: Option<Float>,
    /// Plausible maximum.
    pub max: Option<Float>,
    /// Counter wrap value.
    pub rollover: Option<Float>,
    /// Physical maximum increase per hour (counters).
    pub max_rate_per_hour: Option<Float>,
    /// Spike margin over the maximum rate (counters).
    pub spike_margin: Option<Float>,
    /// Identical polls that make a gauge frozen.
    pub frozen_after: Option<Int>,
    /// The counter this gauge is the hourly rate of.
    pub rate_of: Option<Text>,
}

// ---------------------------------------------------------------------------
// Reading machinery shared by the main, site and profile loaders

/// Problems found in one file, each with its key path.
#[derive(Debug)]
pub(crate) struct Problems {
    /// File the keys belong to.
    pub file: PathBuf,
    /// What was found so far.
    pub list: Vec<ConfigError>,
    /// Keys that already have a type error: nothing more is said about them.
    pub bad_keys: HashSet<String>,
}

impl Problems {
    /// No problem yet in `file`.
    pub fn new(file: &Path) -> Problems {
        Problems {
            file: file.to_path_buf(),
            list: Vec::new(),
            bad_keys: HashSet::new(),
        }
    }

    /// Records a problem at `key`.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        if self.bad_keys.contains(&key) {
            return;
        }
        self.list.push(ConfigError {
            file: self.file.clone(),
            key,
            message: message.into(),
        });
    }
}

/// `prefix` and `sub` joined as a key path (`meters[2]` + `id` = `meters[2].id`).
pub(crate) fn join(prefix: &str, sub: &str) -> String {
    if prefix.is_empty() {
        sub.to_owned()
    } else if sub.is_empty() || sub.starts_with('[') {
        format!("{prefix}{sub}")
    } else {
        format!("{prefix}.{sub}")
    }
}

/// Parses a TOML document into the `config` crate's value tree.
///
/// The text is parsed once with `toml` first, for a syntax error that names
/// the line and column.
pub(crate) fn parse_toml(text: &str, problems: &mut Problems) -> Option<Value> {
    if let Err(e) = text.parse::<toml::Table>() {
        let at = e.span().map(|s| line_col(text, s.start));
        let message = e.message().trim().to_owned();
        match at {
            Some((line, col)) => problems.push(
                "",
                format!("invalid toml at line {line}, column {col}: {message}"),
            ),
            None => problems.push("", format!("invalid toml: {message}")),
        }
        return None;
    }
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build();
    match built {
        Ok(c) => Some(c.cache),
        Err(e) => {
            problems.push("", format!("invalid toml: {e}"));
            None
        }
    }
}

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Describes the kind of a value for a message ("an array", "a string", ...).
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

/// Deserializes a table at `key` into `T`, recording every unknown key (with
/// a suggestion from `T`'s fields) and every type error with its path.
///
/// A type error does not lose the element: the offending key is removed and
/// the table deserialized again, so the element's other keys are still
/// checked. The key is marked in [`Problems`] so that the loader's later
/// "missing required key" for it is not reported on top of the type error.
/// Returns `None` only when the value is not a table.
pub(crate) fn table<T: DeserializeOwned>(
    mut value: Value,
    key: &str,
    what: &str,
    problems: &mut Problems,
) -> Option<T> {
    if !matches!(value.kind, ValueKind::Table(_)) {
        let found = kind_name(&value);
        problems.push(key, format!("expected {what}, found {found}"));
        return None;
    }
    let fields = field_names::<T>();
    // Sorted: the config crate's tables are hash maps, messages must be stable.
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    let mut type_errors: Vec<(String, String)> = Vec::new();
    let result = loop {
        let mut track = serde_path_to_error::Track::new();
        let attempt: Result<T, _> = {
            let de = serde_path_to_error::Deserializer::new(value.clone(), &mut track);
            serde_ignored::deserialize(de, |path| {
                unknown.insert(ignored_path(&path));
            })
        };
        match attempt {
            Ok(v) => break Some(v),
            Err(e) => {
                let path = track.path();
                let first = match path.iter().next() {
                    Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
                    _ => None,
                };
                type_errors.push((tracked_path(&path), error_message(&e)));
                let removed = match (&mut value.kind, first) {
                    (ValueKind::Table(map), Some(first)) => map.remove(&first).is_some(),
                    _ => false,
                };
                if !removed {
                    break None;
                }
            }
        }
    };
    for path in unknown {
        let message = if path.contains(['.', '[']) {
            "unknown key".to_owned()
        } else {
            unknown_key_message(&path, fields)
        };
        problems.push(join(key, &path), message);
    }
    type_errors.sort();
    for (path, message) in type_errors {
        let at = join(key, &path);
        problems.push(at.clone(), message);
        // Mark the key itself, e.g. `sentinels` for an error at `sentinels[2]`.
        let top = path.split(['.', '[']).next().unwrap_or_default();
        problems.bad_keys.insert(join(key, top));
    }
    result
}

/// The message of a `config` error without the key and origin it appends
/// (the key path is reported separately, the origin is the file).
fn error_message(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::At { error, .. } => error_message(error),
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        other => other.to_string(),
    }
}

/// The elements of an array of tables at `key`; records a problem and returns
/// nothing when the value is not an array.
pub(crate) fn array(value: Value, key: &str, what: &str, problems: &mut Problems) -> Vec<Value> {
    if let ValueKind::Array(items) = value.kind {
        items
    } else {
        let found = kind_name(&value);
        problems.push(key, format!("expected {what}, found {found}"));
        Vec::new()
    }
}

/// `unknown key; did you mean "x"?` or `unknown key; expected one of: ...`.
fn unknown_key_message(key: &str, fields: &[&str]) -> String {
    match suggest(key, fields.iter().copied()) {
        Some(s) => format!("unknown key; did you mean \"{s}\"?"),
        None => format!("unknown key; expected one of: {}", fields.join(", ")),
    }
}

/// Key path of an ignored key, as `a.b[0].c`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

/// Key path of a type error, as `a.b[0].c`.
fn tracked_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment as S;
    let mut out = String::new();
    for seg in path {
        match seg {
            S::Seq { index } => out = format!("{out}[{index}]"),
            S::Map { key } => out = join(&out, key),
            S::Enum { variant } => out = join(&out, variant),
            S::Unknown => {}
        }
    }
    out
}

/// Field names of a struct deriving `Deserialize`, read from what serde's
/// derive passes to `deserialize_struct` so the list can never drift from
/// the struct.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Stop {
            Stop
        }
    }
    struct Capture<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let cell = Cell::new(&[][..]);
    let _ = T::deserialize(Capture(&cell));
    cell.get()
}

/// Longest name (in characters) that "did you mean" compares by edit distance.
const MAX_TYPO_LEN: usize = 128;

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input_l = input.to_ascii_lowercase();
    let input_len = input.chars().count();
    let limit = input_len.max(3) / 3;
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c_l = c.to_ascii_lowercase();
        // The edit distance is at least the difference in length, and a name
        // longer than any real one is no typo: skipping both keeps a hostile
        // value (a megabyte-long time zone) from costing length² per candidate.
        let c_len = c.chars().count();
        let d = if input_len.abs_diff(c_len) > limit || input_len.max(c_len) > MAX_TYPO_LEN {
            usize::MAX
        } else {
            distance(&input_l, &c_l)
        };
        let prefix = input_l.len() >= 3 && (c_l.starts_with(&input_l) || input_l.starts_with(&c_l));
        if (d <= limit || prefix) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment edit distance (insert, delete, substitute, swap neighbours).
// The usual matrix names (a, b, d, i, j, w) read best here.
#[allow(clippy::many_single_char_names)]
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// `value` as quoted in a message: at most 64 characters, then `…`, so a
/// hostile megabyte-long value does not fill the terminal.
pub(crate) fn shorten(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &value[..at]).into(),
        None => value.into(),
    }
}

/// `a, b, c` for at most ten names, then `, …`.
pub(crate) fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, n) in names.into_iter().enumerate() {
        if i == 10 {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_struct() {
        assert_eq!(
            field_names::<FaultRaw>(),
            &["meter", "fault"],
            "captured from the derive"
        );
        assert!(field_names::<PointRaw>().contains(&"type"));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["poll_interval_secs", "unit_id", "profile"];
        assert_eq!(
            suggest("poll_intervl_secs", keys),
            Some("poll_interval_secs")
        );
        assert_eq!(suggest("unitid", keys), Some("unit_id"));
        assert_eq!(suggest("colour", keys), None);
        assert_eq!(
            suggest("electric", ["electricity", "steam"]),
            Some("electricity")
        );
    }

    #[test]
    fn scalars_are_strict_but_accept_numeric_strings() {
        let mut p = Problems::new(Path::new("x.toml"));
        let v = parse_toml("id = 5\nunit_id = 1.5\n", &mut p).expect("parses");
        let m: MeterRaw = table(v, "meters[0]", "a table", &mut p).expect("kept");
        assert_eq!((m.id, m.unit_id), (None, None));
        let shown: Vec<String> = p.list.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "x.toml: meters[0].id: invalid type: integer `5`, expected a string",
                "x.toml: meters[0].unit_id: invalid type: floating point `1.5`, expected an integer",
            ]
        );
        // A later "missing" for a key with a type error is not repeated.
        p.push("meters[0].id", "missing required key");
        assert_eq!(p.list.len(), 2);

        let mut p = Problems::new(Path::new("x.toml"));
        let v = parse_toml("unit_id = \"17\"\npt = \"2.5\"\n", &mut p).expect("parses");
        let m: MeterRaw = table(v, "", "a table", &mut p).expect("numeric strings");
        assert_eq!(m.unit_id, Some(Int(17)));
        assert_eq!(m.pt, Some(Float(2.5)));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let mut p = Problems::new(Path::new("x.toml"));
        assert!(parse_toml("a = 1\nb = \n", &mut p).is_none());
        assert_eq!(p.list.len(), 1);
        assert!(
            p.list[0]
                .message
                .starts_with("invalid toml at line 2, column "),
            "{}",
            p.list[0].message
        );
    }
}
