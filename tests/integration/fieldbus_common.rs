//! What the field-bus tests share: the `reading` lines a file sink wrote,
//! parsed into meter, fields and slot; the canonical pymodbus profiles as
//! profile files; the exact value a decoder must produce; the raw-bus test
//! profile; and the Prometheus and status API read-outs.
//!
//! Why a module of its own: `fieldbus_interop` and `fieldbus_adversarial`
//! judge the same lines and metrics the same way, and each check here is
//! written once, independently of the gateway's encoder.

use std::collections::BTreeMap;
use std::path::Path;

use emgate::profiles::{ByteOrder, DataType, Profile, RatioScaling, RegisterKind};

use crate::support::pymodbus::CanonicalPoint;

/// One field value of a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A float field (a point's value).
    Float(f64),
    /// An integer field (`q`, `lag_ms`).
    Int(i64),
    /// A string field (`q_detail`).
    Text(String),
}

/// One `reading` line of the output.
#[derive(Debug, Clone)]
pub struct Line {
    /// The `meter` tag.
    pub meter: String,
    /// Every field by key.
    pub fields: BTreeMap<String, Field>,
    /// The slot (seconds).
    pub slot: i64,
    /// The line as written, for messages.
    pub text: String,
}

impl Line {
    /// The `q` field.
    pub fn q(&self) -> i64 {
        match self.fields.get("q") {
            Some(Field::Int(q)) => *q,
            other => panic!("no integer q ({other:?}) in {}", self.text),
        }
    }

    /// The `q_detail` field, split into its `point:reason[:detail]` parts
    /// (empty when the reading is good).
    pub fn details(&self) -> Vec<String> {
        match self.fields.get("q_detail") {
            Some(Field::Text(t)) => t.split(',').map(str::to_owned).collect(),
            Some(other) => panic!("q_detail is not a string ({other:?}) in {}", self.text),
            None => Vec::new(),
        }
    }

    /// The value of point `name`, if the line carries one.
    pub fn value(&self, name: &str) -> Option<f64> {
        match self.fields.get(name) {
            Some(Field::Float(v)) => Some(*v),
            Some(other) => panic!("{name} is not a float ({other:?}) in {}", self.text),
            None => None,
        }
    }
}

/// Splits `s` at the first `sep` that is not escaped and not inside quotes.
fn split_outside_quotes(s: &str, sep: char) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => return (&s[..i], &s[i + 1..]),
            _ => {}
        }
    }
    (s, "")
}

/// Parses one `reading` line (tags without escapes, as the tests name them).
pub fn parse_line(text: &str) -> Line {
    let (series, rest) = split_outside_quotes(text, ' ');
    let (fields_text, slot) = split_outside_quotes(rest, ' ');
    let meter = series
        .split(',')
        .find_map(|t| t.strip_prefix("meter="))
        .unwrap_or_else(|| panic!("no meter tag in {text}"))
        .to_owned();
    let mut fields = BTreeMap::new();
    let mut left = fields_text;
    while !left.is_empty() {
        let (field, next) = split_outside_quotes(left, ',');
        left = next;
        let (key, value) = field
            .split_once('=')
            .unwrap_or_else(|| panic!("field without '=' in {text}"));
        let value = if let Some(s) = value.strip_prefix('"') {
            let inner = s
                .strip_suffix('"')
                .unwrap_or_else(|| panic!("unterminated string in {text}"));
            Field::Text(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
        } else if let Some(i) = value.strip_suffix('i') {
            Field::Int(i.parse().unwrap_or_else(|e| panic!("{key}: {e} in {text}")))
        } else {
            Field::Float(
                value
                    .parse()
                    .unwrap_or_else(|e| panic!("{key}: {e} in {text}")),
            )
        };
        fields.insert(key.to_owned(), value);
    }
    Line {
        meter,
        fields,
        slot: slot
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("timestamp: {e} in {text}")),
        text: text.to_owned(),
    }
}

/// Every `reading` line of the file sink's output in `data_dir` (none yet: empty).
pub fn reading_lines(data_dir: &Path) -> Vec<Line> {
    std::fs::read_to_string(data_dir.join("lines.lp"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("reading,"))
        .map(parse_line)
        .collect()
}

/// The lines of `meter`.
pub fn of_meter<'a>(lines: &'a [Line], meter: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.meter == meter).collect()
}

/// `profile` as a profile file (the keys of README "Profiles").
pub fn profile_toml(profile: &Profile) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "description = {}\n",
        toml::Value::String(profile.description.clone())
    );
    for p in &profile.points {
        let register = match p.register {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Input => "input",
            RegisterKind::Holding => "holding",
        };
        let data_type = match p.data_type {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
        };
        let order = match p.order {
            ByteOrder::Abcd => "ABCD",
            ByteOrder::Cdab => "CDAB",
            ByteOrder::Badc => "BADC",
            ByteOrder::Dcba => "DCBA",
        };
        let ratio = match p.ratio {
            RatioScaling::None => "none",
            RatioScaling::Pt => "pt",
            RatioScaling::Ct => "ct",
            RatioScaling::PtCt => "pt_ct",
        };
        let kind = match p.kind {
            emgate::profiles::PointKind::Counter => "counter",
            emgate::profiles::PointKind::Gauge => "gauge",
        };
        let _ = write!(
            out,
            "\n[[points]]\nname = \"{}\"\nregister = \"{register}\"\naddress = {}\ntype = \"{data_type}\"\norder = \"{order}\"\nscale = {:?}\nratio = \"{ratio}\"\nkind = \"{kind}\"\nunit = \"{}\"\n",
            p.name, p.address, p.scale, p.unit
        );
    }
    out
}

/// The value a decoder must produce for `p` of `profile` on a meter with
/// `pt` and `ct`: the double nearest to the decimal number raw × ratio ×
/// 10^-k (scales here are 1, 0.1, 0.01, 0.001), obtained by parsing the
/// decimal text, which Rust rounds correctly. Independent of how the
/// decoder does its arithmetic (as in `interop_pymodbus`).
pub fn expected(profile: &Profile, p: &CanonicalPoint, pt: f64, ct: f64) -> f64 {
    let def = &profile.points[profile.point_index(p.name).expect("point in profile")];
    let ratio = match def.ratio {
        RatioScaling::None => 1.0,
        RatioScaling::Pt => pt,
        RatioScaling::Ct => ct,
        RatioScaling::PtCt => pt * ct,
    };
    let k = (-p.scale.log10()).round() as i32;
    if k == 0 {
        return p.raw * ratio;
    }
    let integer = (p.raw * ratio) as i64;
    assert_eq!(integer as f64, p.raw * ratio, "integer raw × ratio");
    format!("{integer}e-{k}").parse().expect("decimal")
}

/// Asserts that `line` is good and carries exactly the canonical values.
pub fn assert_canonical(
    line: &Line,
    profile: &Profile,
    points: &[CanonicalPoint],
    pt: f64,
    ct: f64,
) {
    assert_eq!(line.q(), 0, "good reading: {}", line.text);
    for p in points {
        assert_eq!(
            line.value(p.name),
            Some(expected(profile, p, pt, ct)),
            "{} of {}: {}",
            p.name,
            line.meter,
            line.text
        );
    }
}

/// The profile of the raw-bus meters: two U32 gauges 100 registers apart,
/// so two reads of two holding registers each, answered alike (a late
/// answer to one fits the other's question in everything but its data).
pub const RAW_PROFILE: &str = r#"description = "two reads of two registers (field-bus tests)"

[[points]]
name = "first_v"
register = "holding"
address = 0
type = "u32"
kind = "gauge"
unit = "v"

[[points]]
name = "second_v"
register = "holding"
address = 100
type = "u32"
kind = "gauge"
unit = "v"
"#;

/// Words of `first_v` and `second_v` on a raw-bus device, and their values.
pub const FIRST_WORDS: [u16; 2] = [0x0001, 0x0002];
/// See [`FIRST_WORDS`].
pub const SECOND_WORDS: [u16; 2] = [0x0003, 0x0004];
/// 0x0001_0002.
pub const FIRST_VALUE: f64 = 65_538.0;
/// 0x0003_0004.
pub const SECOND_VALUE: f64 = 196_612.0;

/// A raw-bus device at `unit` serving [`RAW_PROFILE`]'s registers.
pub fn raw_device(unit: u8) -> crate::support::pymodbus::PeerDevice {
    crate::support::pymodbus::PeerDevice::new(unit)
        .holding(0, &FIRST_WORDS)
        .holding(100, &SECOND_WORDS)
}

/// The sum of the samples of `name` whose labels include every one of
/// `labels` (`reason="wrong_count"`), in a Prometheus text exposition;
/// `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if series_name != name || !labels.iter().all(|want| series_labels.contains(want)) {
            continue;
        }
        let v: f64 = value.parse().unwrap_or_else(|e| panic!("{l}: {e}"));
        *found.get_or_insert(0.0) += v;
    }
    found
}

/// `GET http://127.0.0.1:port{path}`: status and body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let resp = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The Prometheus exposition of the gateway's API on `port`.
pub async fn metrics(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}
