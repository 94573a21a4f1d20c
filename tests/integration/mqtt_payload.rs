//! MQTT payload decoding (`sources::mqtt::payload`): every format with every
//! time stamp rule, JSON pointers, arrays, numeric strings, scale, missing
//! points, meter resolution, every rejection reason from a corpus of broken
//! payloads, the all-or-nothing rule, and a property test that arbitrary
//! bytes never panic. Values are exact.

use emgate::config::{Config, from_parts};
use emgate::model::{BrokerId, MeterId, Quality, ReadingBatch};
use emgate::profiles::load::builtin;
use emgate::sources::mqtt::{BrokerDecoder, Rejection};
use proptest::prelude::*;

/// 2023-11-14T22:13:20.500Z: when every test message is received.
const RECEIVED: i64 = 1_700_000_000_500;

const MAIN: &str = r#"
[gateway]
id = "gw"
timezone = "UTC"

[[endpoints]]
id = "plc"
host = "127.0.0.1"

[[mqtt]]
id = "plant"
host = "127.0.0.1"
max_payload_bytes = 4096

[[mqtt.subscriptions]]
topic = "energy/{site}/{meter}/up"

[[mqtt.subscriptions]]
topic = "ms/{meter}"
timestamp_field = "/meta/t"
timestamp_unit = "ms"
fields = { "/data/ep" = "import_kwh", p = "power_kw", vol = "volume_m3" }
scale = { import_kwh = 0.001, volume_m3 = 10 }

[[mqtt.subscriptions]]
topic = "rfc/{meter}"
timestamp_unit = "rfc3339"

[[mqtt.subscriptions]]
topic = "batch/{site}"
array = "/readings"
meter_field = "meter"

[[mqtt.subscriptions]]
topic = "top/{meter}"
array = ""
timestamp_unit = "ms"

[[mqtt.subscriptions]]
topic = "recv/{meter}"
timestamp = "receipt"

[[mqtt.subscriptions]]
topic = "ns/{meter}"
timestamp_unit = "ns"

[[mqtt.subscriptions]]
topic = "lp/#"
format = "line_protocol"
timestamp_unit = "ns"

[[mqtt.subscriptions]]
topic = "lps/{meter}"
format = "line_protocol"
fields = { ep = "import_kwh", "my field" = "power_kw" }
scale = { power_kw = 2 }

[[mqtt.subscriptions]]
topic = "lpr/#"
format = "line_protocol"
timestamp = "receipt"

[[mqtt.subscriptions]]
topic = "csv/#"
format = "csv"

[[mqtt.subscriptions]]
topic = "csvt/{meter}"
format = "csv"
timestamp_unit = "rfc3339"

[[mqtt.subscriptions]]
topic = "csvr/#"
format = "csv"
timestamp = "receipt"

[[mqtt]]
id = "other"
host = "127.0.0.1"

[[mqtt.subscriptions]]
topic = "o/{meter}"
"#;

const SITE_SH: &str = r#"
[site]
id = "sh"
name = "Shanghai"
timezone = "Asia/Shanghai"

[[meters]]
id = "e1"
energy = "electricity"
level = 1
profile = "em3"
broker = "plant"

[[meters]]
id = "e2"
energy = "electricity"
level = 2
profile = "em3"
broker = "plant"

[[meters]]
id = "m9"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "plc"
unit_id = 1
"#;

const SITE_UTC: &str = r#"
[site]
id = "lon"
name = "London"
timezone = "UTC"

[[meters]]
id = "w1"
energy = "water"
level = 1
profile = "water_meter"
broker = "plant"

[[meters]]
id = "o1"
energy = "water"
level = 2
profile = "water_meter"
broker = "other"
"#;

const EM3: &str = r#"
description = "Test meter: one counter, two gauges"

[[points]]
name = "import_kwh"
register = "holding"
address = 0
type = "f32"
kind = "counter"
unit = "kwh"

[[points]]
name = "power_kw"
register = "holding"
address = 2
type = "f32"
unit = "kw"

[[points]]
name = "voltage_v"
register = "holding"
address = 4
type = "f32"
unit = "v"
"#;

fn config() -> Config {
    let mut profiles: Vec<(&str, &str)> = builtin().to_vec();
    profiles.push(("em3", EM3));
    from_parts(
        MAIN,
        &[("a.toml", SITE_SH), ("b.toml", SITE_UTC)],
        &profiles,
    )
    .unwrap_or_else(|e| panic!("test configuration:\n{e}"))
}

fn meter(c: &Config, id: &str) -> MeterId {
    let i = c.meters.iter().position(|m| m.id == id).expect("meter");
    MeterId(u32::try_from(i).expect("small"))
}

/// A decoded reading: meter id, slot, lag, and per point `(value, quality)`
/// with `None` for "no value".
type Got = (String, i64, i64, Vec<(Option<f64>, Quality)>);

struct Fixture {
    config: Config,
    decoder: BrokerDecoder,
}

impl Fixture {
    fn new() -> Fixture {
        let config = config();
        let decoder = BrokerDecoder::new(&config, BrokerId(0));
        Fixture { config, decoder }
    }

    fn decode(
        &mut self,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<Got>, (Rejection, Option<String>)> {
        let mut out = ReadingBatch::default();
        match self.decoder.decode(topic, payload, RECEIVED, &mut out) {
            Ok(n) => {
                assert_eq!(n, out.len(), "the count returned is the count appended");
                Ok(out
                    .readings
                    .iter()
                    .map(|r| {
                        let values = out
                            .values_of(r)
                            .iter()
                            .map(|v| ((!v.value.is_nan()).then_some(v.value), v.quality))
                            .collect();
                        (
                            self.config.meter(r.meter).id.clone(),
                            r.slot,
                            r.lag_ms,
                            values,
                        )
                    })
                    .collect())
            }
            Err((rejection, m)) => {
                assert!(out.is_empty(), "nothing appended on rejection");
                Err((rejection, m.map(|m| self.config.meter(m).id.clone())))
            }
        }
    }

    fn ok(&mut self, topic: &str, payload: &str) -> Vec<Got> {
        self.decode(topic, payload.as_bytes())
            .unwrap_or_else(|e| panic!("{topic} {payload}: {e:?}"))
    }

    fn err(&mut self, topic: &str, payload: &[u8]) -> (Rejection, Option<String>) {
        match self.decode(topic, payload) {
            Ok(r) => panic!("{topic}: expected a rejection, got {r:?}"),
            Err(e) => e,
        }
    }
}

const G: Quality = Quality::GOOD;
const X: Quality = Quality::EXCEPTION;

fn got(meter: &str, slot: i64, lag: i64, values: &[(Option<f64>, Quality)]) -> Got {
    (meter.to_owned(), slot, lag, values.to_vec())
}

// ---------------------------------------------------------------------------
// Decoder set-up

#[test]
fn subscriptions_are_the_filters_in_order() {
    let f = Fixture::new();
    let subs: Vec<(&str, u8)> = f.decoder.subscriptions().collect();
    assert_eq!(
        subs,
        [
            ("energy/+/+/up", 1),
            ("ms/+", 1),
            ("rfc/+", 1),
            ("batch/+", 1),
            ("top/+", 1),
            ("recv/+", 1),
            ("ns/+", 1),
            ("lp/#", 1),
            ("lps/+", 1),
            ("lpr/#", 1),
            ("csv/#", 1),
            ("csvt/+", 1),
            ("csvr/#", 1),
        ]
    );
    assert_eq!(f.decoder.broker(), BrokerId(0));
    let other = BrokerDecoder::new(&f.config, BrokerId(1));
    assert_eq!(other.subscriptions().collect::<Vec<_>>(), [("o/+", 1)]);
    assert_eq!(meter(&f.config, "o1"), MeterId(4));
}

// ---------------------------------------------------------------------------
// JSON

#[test]
fn json_flat_keys_are_point_names() {
    let mut f = Fixture::new();
    assert_eq!(
        f.ok(
            "energy/sh/e1/up",
            r#"{"ts": 1700000000, "import_kwh": 1234.5, "power_kw": -2, "voltage_v": 230.1, "extra": "ignored"}"#
        ),
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(Some(1234.5), G), (Some(-2.0), G), (Some(230.1), G)]
        )]
    );
    // Missing points have no value and the exception bit; fractional seconds floor.
    assert_eq!(
        f.ok("energy/sh/e1/up", r#"{"ts": 1700000001.9, "power_kw": 5}"#),
        [got(
            "e1",
            1_700_000_001,
            -500,
            &[(None, X), (Some(5.0), G), (None, X)]
        )]
    );
    // Numeric strings are numbers; `null` is "no value".
    assert_eq!(
        f.ok(
            "energy/sh/e1/up",
            r#"{"ts": "1700000000", "import_kwh": " 12.5 ", "power_kw": null}"#
        ),
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(Some(12.5), G), (None, X), (None, X)]
        )]
    );
    // Each meter gets its own profile's points.
    assert_eq!(
        f.ok(
            "energy/lon/w1/up",
            r#"{"ts": 1700000000, "volume_m3": 7, "flow_m3h": 0.5}"#
        ),
        [got(
            "w1",
            1_700_000_000,
            500,
            &[(Some(7.0), G), (Some(0.5), G)]
        )]
    );
}

#[test]
fn json_pointers_mapping_scale_and_milliseconds() {
    let mut f = Fixture::new();
    assert_eq!(
        f.ok(
            "ms/e1",
            r#"{"meta": {"t": 1700000000250}, "data": {"ep": 1234567}, "p": "3.5", "import_kwh": 99}"#
        ),
        // Only the mapped keys count: `import_kwh` is not a key of this subscription.
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(Some(1234.567), G), (Some(3.5), G), (None, X)]
        )]
    );
    // The same subscription serves another profile through its own keys.
    assert_eq!(
        f.ok("ms/w1", r#"{"meta": {"t": 1700000000000}, "vol": 1.5}"#),
        [got("w1", 1_700_000_000, 500, &[(Some(15.0), G), (None, X)])]
    );
}

#[test]
fn json_rfc3339_with_and_without_offset() {
    let mut f = Fixture::new();
    let at = |f: &mut Fixture, topic: &str, ts: &str| {
        let r = f.ok(topic, &format!(r#"{{"ts": "{ts}", "power_kw": 1}}"#));
        (r[0].1, r[0].2)
    };
    assert_eq!(
        at(&mut f, "rfc/e1", "2023-11-14T22:13:20Z"),
        (1_700_000_000, 500)
    );
    assert_eq!(
        at(&mut f, "rfc/e1", "2023-11-15T06:13:20+08:00"),
        (1_700_000_000, 500)
    );
    assert_eq!(
        at(&mut f, "rfc/e1", "2023-11-14T22:13:19.999Z"),
        (1_699_999_999, 1500)
    );
    // No offset: the meter's site zone (Asia/Shanghai for e1, UTC for w1).
    assert_eq!(
        at(&mut f, "rfc/e1", "2023-11-15T06:13:20"),
        (1_700_000_000, 500)
    );
    let r = f.ok("rfc/w1", r#"{"ts": "2023-11-14T22:13:20", "flow_m3h": 1}"#);
    assert_eq!((r[0].1, r[0].2), (1_700_000_000, 500));
}

#[test]
fn json_nanoseconds_and_receipt() {
    let mut f = Fixture::new();
    assert_eq!(
        f.ok("ns/e2", r#"{"ts": 1699999999999999999, "voltage_v": 231}"#),
        [got(
            "e2",
            1_699_999_999,
            1500,
            &[(None, X), (None, X), (Some(231.0), G)]
        )]
    );
    // Receipt: any `ts` in the payload is ignored.
    assert_eq!(
        f.ok("recv/e2", r#"{"ts": 5, "voltage_v": 231}"#),
        [got(
            "e2",
            1_700_000_000,
            500,
            &[(None, X), (None, X), (Some(231.0), G)]
        )]
    );
}

#[test]
fn json_arrays_of_readings() {
    let mut f = Fixture::new();
    let payload = r#"{"readings": [
        {"meter": "e1", "ts": 1699999940, "import_kwh": 10},
        {"meter": "e2", "ts": 1700000000, "import_kwh": 20, "power_kw": 1},
        {"ts": 1700000000, "import_kwh": 30}
    ], "meter": "e1"}"#;
    assert_eq!(
        f.ok("batch/sh", payload),
        [
            got(
                "e1",
                1_699_999_940,
                60_500,
                &[(Some(10.0), G), (None, X), (None, X)]
            ),
            got(
                "e2",
                1_700_000_000,
                500,
                &[(Some(20.0), G), (Some(1.0), G), (None, X)]
            ),
            // No meter key in the element: the payload's top-level one.
            got(
                "e1",
                1_700_000_000,
                500,
                &[(Some(30.0), G), (None, X), (None, X)]
            ),
        ]
    );
    assert_eq!(
        f.ok(
            "top/e1",
            r#"[{"ts": 1700000000000, "power_kw": 1}, {"ts": 1700000000500, "power_kw": 2}]"#
        ),
        [
            got(
                "e1",
                1_700_000_000,
                500,
                &[(None, X), (Some(1.0), G), (None, X)]
            ),
            got(
                "e1",
                1_700_000_000,
                500,
                &[(None, X), (Some(2.0), G), (None, X)]
            ),
        ]
    );
}

// ---------------------------------------------------------------------------
// Line protocol

#[test]
fn line_protocol_with_tags_escapes_and_types() {
    let mut f = Fixture::new();
    let payload = "# a comment\n\
        energy,site=sh,meter=e1 import_kwh=1234.5,power_kw=-3i,voltage_v=230u,note=\"a, b=c\" 1700000000123456789\n\
        \n\
        energy\\ data,meter=e2,x\\,y=z\\=w power_kw=1e1,on=true 1700000000000000000\r\n";
    assert_eq!(
        f.ok("lp/any/thing", payload),
        [
            got(
                "e1",
                1_700_000_000,
                500,
                &[(Some(1234.5), G), (Some(-3.0), G), (Some(230.0), G)]
            ),
            // Booleans that map to no point are ignored.
            got(
                "e2",
                1_700_000_000,
                500,
                &[(None, X), (Some(10.0), G), (None, X)]
            ),
        ]
    );
    // String fields are no numbers: the point stays missing.
    assert_eq!(
        f.ok(
            "lp/x",
            "m,meter=e1 power_kw=\"12\",voltage_v=1 1700000000000000000"
        ),
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(None, X), (None, X), (Some(1.0), G)]
        )]
    );
}

#[test]
fn line_protocol_mapping_seconds_and_receipt() {
    let mut f = Fixture::new();
    // The topic names the meter; the escaped key maps through `fields`; scale 2.
    assert_eq!(
        f.ok("lps/e1", "m ep=5,my\\ field=1.25,import_kwh=7 1700000000"),
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(Some(5.0), G), (Some(2.5), G), (None, X)]
        )]
    );
    assert_eq!(
        f.ok("lpr/x", "m,meter=w1 volume_m3=3\nm,meter=w1 flow_m3h=4 17"),
        [
            got("w1", 1_700_000_000, 500, &[(Some(3.0), G), (None, X)]),
            got("w1", 1_700_000_000, 500, &[(None, X), (Some(4.0), G)]),
        ]
    );
}

// ---------------------------------------------------------------------------
// CSV

#[test]
fn csv_lines() {
    let mut f = Fixture::new();
    assert_eq!(
        f.ok(
            "csv/up",
            "e1,1700000000,import_kwh=1.5,power_kw=-2,other=x\n\n  \ne2,1699999999.5, voltage_v = 230 \r\n"
        ),
        [
            got("e1", 1_700_000_000, 500, &[(Some(1.5), G), (Some(-2.0), G), (None, X)]),
            got("e2", 1_699_999_999, 1500, &[(None, X), (None, X), (Some(230.0), G)]),
        ]
    );
    // RFC 3339, local to the meter's site; an empty meter column takes the topic's.
    assert_eq!(
        f.ok("csvt/e1", ",2023-11-15T06:13:20,power_kw=1,voltage_v="),
        [got(
            "e1",
            1_700_000_000,
            500,
            &[(None, X), (Some(1.0), G), (None, X)]
        )]
    );
    assert_eq!(
        f.ok("csvr/x", "w1,,volume_m3=9"),
        [got("w1", 1_700_000_000, 500, &[(Some(9.0), G), (None, X)])]
    );
}

// ---------------------------------------------------------------------------
// Rejections

fn malformed(s: &str) -> Rejection {
    Rejection::Malformed(s.to_owned())
}
fn wrong(s: &str) -> Rejection {
    Rejection::WrongType(s.to_owned())
}
fn unknown(s: &str) -> Rejection {
    Rejection::UnknownMeter(s.to_owned())
}
fn missing(s: &str) -> Rejection {
    Rejection::MissingField(s.to_owned())
}
fn stamp(s: &str) -> Rejection {
    Rejection::BadTimestamp(s.to_owned())
}

#[test]
fn every_rejection_reason() {
    let mut f = Fixture::new();
    let e1 = Some("e1".to_owned());
    let huge = format!(
        r#"{{"ts": 1700000000, "power_kw": 1, "pad": "{}"}}"#,
        "x".repeat(4096)
    );
    let cases: Vec<(&str, Vec<u8>, Rejection, Option<String>)> = vec![
        (
            "energy/sh/e1/up",
            huge.into_bytes(),
            Rejection::TooLarge,
            None,
        ),
        (
            "energy/sh/e1/up",
            b"{\"ts\": 1, \"a\": \"\xff\xfe\"}".to_vec(),
            Rejection::NotUtf8,
            None,
        ),
        (
            "nothing/here",
            b"{}".to_vec(),
            Rejection::NoSubscription,
            None,
        ),
        (
            "energy/sh/e1/up",
            b"{\"ts\": 1700000000, \"power_kw\": 1".to_vec(),
            malformed("invalid JSON: EOF while parsing an object at line 1 column 32"),
            None,
        ),
        (
            "energy/sh/e1/up",
            b"".to_vec(),
            malformed("invalid JSON: EOF while parsing a value at line 1 column 0"),
            None,
        ),
        (
            "energy/sh/e1/up",
            b"null".to_vec(),
            malformed("expected a JSON object, found null"),
            None,
        ),
        (
            "energy/sh/e1/up",
            b"[]".to_vec(),
            malformed("expected a JSON object, found an array"),
            None,
        ),
        (
            "energy/sh/e1/up",
            b"{}".to_vec(),
            missing("the payload has no point of profile \"em3\""),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1700000000, "power_kw": "high"}"#.to_vec(),
            wrong("\"power_kw\" is a string, expected a number"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1700000000, "power_kw": true}"#.to_vec(),
            wrong("\"power_kw\" is a boolean, expected a number"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1700000000, "power_kw": {"v": 1}}"#.to_vec(),
            wrong("\"power_kw\" is an object, expected a number"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1700000000, "power_kw": "NaN"}"#.to_vec(),
            wrong("\"power_kw\" is a string, expected a number"),
            e1.clone(),
        ),
        (
            "energy/sh/nobody/up",
            br#"{"ts": 1700000000, "power_kw": 1}"#.to_vec(),
            unknown("no meter \"nobody\" is configured"),
            None,
        ),
        (
            "energy/sh/m9/up",
            br#"{"ts": 1700000000, "power_kw": 1}"#.to_vec(),
            unknown("meter \"m9\" is not configured with broker = \"plant\""),
            Some("m9".to_owned()),
        ),
        (
            "energy/sh/o1/up",
            br#"{"ts": 1700000000, "power_kw": 1}"#.to_vec(),
            unknown("meter \"o1\" is not configured with broker = \"plant\""),
            Some("o1".to_owned()),
        ),
        (
            "energy/lon/e1/up",
            br#"{"ts": 1700000000, "power_kw": 1}"#.to_vec(),
            unknown("the topic names site \"lon\" but meter \"e1\" belongs to site \"sh\""),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"power_kw": 1}"#.to_vec(),
            stamp("no time stamp \"ts\""),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1800000000, "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" = 1800000000 is more than a day after receipt"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 86400, "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" = 86400 is before 2000-01-01"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": "soon", "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" \"soon\" is not a number"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": [1], "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" is an array"),
            e1.clone(),
        ),
        (
            "energy/sh/e1/up",
            br#"{"ts": 1e300, "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" = 1e+300 is out of range"),
            e1.clone(),
        ),
        (
            "rfc/e1",
            br#"{"ts": "2023-13-01T00:00:00Z", "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" \"2023-13-01T00:00:00Z\" is not an RFC 3339 time stamp"),
            e1.clone(),
        ),
        (
            "rfc/e1",
            br#"{"ts": 1700000000, "power_kw": 1}"#.to_vec(),
            stamp("\"ts\" = 1700000000 is out of range"),
            e1.clone(),
        ),
        (
            "batch/sh",
            br#"{"readings": []}"#.to_vec(),
            missing("the array at /readings is empty"),
            None,
        ),
        (
            "batch/sh",
            br#"{"data": []}"#.to_vec(),
            missing("no array at \"/readings\""),
            None,
        ),
        (
            "batch/sh",
            br#"{"readings": {}}"#.to_vec(),
            malformed("expected an array at /readings, found an object"),
            None,
        ),
        (
            "batch/sh",
            br#"{"readings": [1]}"#.to_vec(),
            malformed("element 0 of the array at /readings is a number, expected an object"),
            None,
        ),
        (
            "batch/sh",
            br#"{"readings": [{"ts": 1700000000, "power_kw": 1}]}"#.to_vec(),
            missing("no meter key \"meter\" and the topic names no meter"),
            None,
        ),
        (
            "batch/sh",
            br#"{"readings": [{"meter": 7, "ts": 1700000000, "power_kw": 1}]}"#.to_vec(),
            wrong("meter key \"meter\" is a number, expected a string"),
            None,
        ),
        (
            "top/e1",
            br#"{"ts": 1}"#.to_vec(),
            malformed("expected an array at the payload, found an object"),
            None,
        ),
        // Line protocol.
        (
            "lp/x",
            b"".to_vec(),
            malformed("no line of line protocol"),
            None,
        ),
        (
            "lp/x",
            b"m,meter=e1".to_vec(),
            malformed("line 1: no field set (expected \"measurement,tags fields [time]\")"),
            None,
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw 1700000000000000000".to_vec(),
            malformed("line 1: field \"power_kw\" is not key=value"),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter power_kw=1 1700000000000000000".to_vec(),
            malformed("line 1: tag \"meter\" is not key=value"),
            None,
        ),
        (
            "lp/x",
            b",meter=e1 power_kw=1".to_vec(),
            malformed("line 1: empty measurement"),
            None,
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=1x 1700000000000000000".to_vec(),
            malformed("line 1: field \"power_kw\" has an invalid value \"1x\""),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=\"open 1700000000000000000".to_vec(),
            malformed(
                "line 1: field \"power_kw\" has an invalid value \"\"open 1700000000000000000\"",
            ),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=t 1700000000000000000".to_vec(),
            wrong("line 1: field \"power_kw\" is a boolean, expected a number"),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,site=sh power_kw=1 1700000000000000000".to_vec(),
            missing("no \"meter\" tag and the topic names no meter"),
            None,
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=1".to_vec(),
            stamp("line 1 has no time stamp (timestamp = \"payload\")"),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=1 soon".to_vec(),
            stamp("line 1: time stamp \"soon\" is not an integer"),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter=e1 power_kw=1 1000000000".to_vec(),
            stamp("line 1: 1000000000 is before 2000-01-01"),
            e1.clone(),
        ),
        (
            "lp/x",
            b"m,meter=e1 other=1 1700000000000000000".to_vec(),
            missing("the payload has no point of profile \"em3\""),
            e1.clone(),
        ),
        (
            "lps/e1",
            b"m,meter=e2 ep=1 1700000000".to_vec(),
            unknown("the payload names meter \"e2\" but the topic names \"e1\""),
            None,
        ),
        // CSV.
        ("csv/x", b"\n\n".to_vec(), malformed("no CSV line"), None),
        (
            "csv/x",
            b"e1,1700000000".to_vec(),
            malformed("line 1: too few columns; expected meter,timestamp,field=value,\u{2026}"),
            None,
        ),
        (
            "csv/x",
            b"e1,1700000000,power_kw".to_vec(),
            malformed("line 1: column \"power_kw\" is not field=value"),
            e1.clone(),
        ),
        (
            "csv/x",
            b"e1,1700000000,power_kw=abc".to_vec(),
            wrong("line 1: \"power_kw\" = \"abc\" is not a number"),
            e1.clone(),
        ),
        (
            "csv/x",
            b"e1,,power_kw=1".to_vec(),
            stamp("line 1 has no time stamp (timestamp = \"payload\")"),
            e1.clone(),
        ),
        (
            "csv/x",
            b"e1,2023-11-14,power_kw=1".to_vec(),
            stamp("line 1: \"2023-11-14\" is not a number"),
            e1.clone(),
        ),
        (
            "csv/x",
            b",1700000000,power_kw=1".to_vec(),
            missing("an empty meter column and the topic names no meter"),
            None,
        ),
        (
            "csvt/e1",
            b"e1,yesterday,power_kw=1".to_vec(),
            stamp("line 1: \"yesterday\" is not an RFC 3339 time stamp"),
            e1.clone(),
        ),
    ];
    for (topic, payload, rejection, meter) in cases {
        let shown = String::from_utf8_lossy(&payload).into_owned();
        assert_eq!(
            f.err(topic, &payload),
            (rejection, meter),
            "{topic} {shown:?}"
        );
    }
}

#[test]
fn details_quoting_the_payload_are_clipped() {
    let mut f = Fixture::new();
    let name = "é".repeat(300);
    let (rejection, meter) = f.err("csv/x", format!("{name},1700000000,power_kw=1").as_bytes());
    assert_eq!(meter, None);
    let Rejection::UnknownMeter(detail) = rejection else {
        panic!("unknown_meter expected, got {rejection:?}");
    };
    // "no meter \"" is 10 bytes, then 95 two-byte characters fit in 200 bytes.
    assert_eq!(detail, format!("no meter \"{}…", "é".repeat(95)));
}

#[test]
fn reasons_and_display() {
    let all = [
        Rejection::TooLarge,
        Rejection::NotUtf8,
        malformed("m"),
        wrong("w"),
        unknown("u"),
        missing("f"),
        stamp("t"),
        Rejection::NoSubscription,
    ];
    let reasons: Vec<&str> = all.iter().map(Rejection::reason).collect();
    assert_eq!(reasons, Rejection::REASONS);
    let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "too_large: payload larger than max_payload_bytes",
            "not_utf8: payload is not valid UTF-8",
            "malformed: m",
            "wrong_type: w",
            "unknown_meter: u",
            "missing_field: f",
            "bad_timestamp: t",
            "no_subscription: the topic matches no subscription",
        ]
    );
}

#[test]
fn a_message_is_all_or_nothing() {
    let mut f = Fixture::new();
    let mut out = ReadingBatch::default();
    let first = f
        .decoder
        .decode("csv/x", b"e1,1700000000,power_kw=1", RECEIVED, &mut out)
        .expect("valid");
    assert_eq!(first, 1);
    let before = out.clone();
    // Two good lines, then a bad one: nothing of the message stays.
    let bad = b"e1,1700000000,power_kw=2\ne2,1700000000,power_kw=3\ne1,1700000000,power_kw=x\n";
    assert_eq!(
        f.decoder.decode("csv/x", bad, RECEIVED, &mut out),
        Err((
            wrong("line 3: \"power_kw\" = \"x\" is not a number"),
            Some(MeterId(0))
        ))
    );
    assert!(same(&out, &before));
    let bad_json = br#"{"readings": [
        {"meter": "e1", "ts": 1700000000, "import_kwh": 10},
        {"meter": "e2", "ts": 1, "import_kwh": 20}]}"#;
    assert_eq!(
        f.decoder
            .decode("batch/sh", bad_json, RECEIVED, &mut out)
            .map_err(|(r, m)| (r.reason(), m)),
        Err(("bad_timestamp", Some(MeterId(1))))
    );
    assert!(same(&out, &before));
    // And a good message appends after the earlier reading.
    assert_eq!(
        f.decoder.decode(
            "lp/x",
            b"m,meter=e2 power_kw=4 1700000000000000000",
            RECEIVED,
            &mut out
        ),
        Ok(1)
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out.readings[1].values_start, 3);
    assert_eq!(out.values_of(&out.readings[1])[1].value, 4.0);
}

/// Built once: the property test decodes thousands of payloads.
static CONFIG: std::sync::LazyLock<Config> = std::sync::LazyLock::new(config);

/// Batch equality with NaN equal to itself (missing values are NaN).
fn same(a: &ReadingBatch, b: &ReadingBatch) -> bool {
    a.readings == b.readings
        && a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| x.value.to_bits() == y.value.to_bits() && x.quality == y.quality)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes on any subscription never panic, and a rejection
    /// leaves the batch untouched.
    #[test]
    fn arbitrary_payloads_never_panic(
        topic in prop::sample::select(vec![
            "energy/sh/e1/up", "ms/e1", "rfc/e1", "batch/sh", "top/e1", "recv/e1",
            "ns/e1", "lp/x", "lps/e1", "lpr/x", "csv/x", "csvt/e1", "csvr/x", "none",
        ]),
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "[ -~\n]{0,200}".prop_map(String::into_bytes),
            r#"\{"ts": [0-9.e+-]{0,20}, "(import_kwh|power_kw|meter)": ("[a-z0-9.]{0,5}"|[0-9.e-]{0,8}|true|null|\[\])\}"#
                .prop_map(String::into_bytes),
            "m(,meter=e[12])? ([a-z_]{1,9}=[0-9tfiu\".]{0,6},?){0,3}( [0-9]{0,20})?".prop_map(String::into_bytes),
        ],
    ) {
        let mut decoder = BrokerDecoder::new(&CONFIG, BrokerId(0));
        let mut out = ReadingBatch::default();
        decoder
            .decode("csv/x", b"e1,1700000000,power_kw=1", RECEIVED, &mut out)
            .expect("valid");
        let before = out.clone();
        match decoder.decode(topic, &payload, RECEIVED, &mut out) {
            Ok(n) => prop_assert_eq!(out.len(), before.len() + n),
            Err(_) => prop_assert!(same(&out, &before)),
        }
    }
}
