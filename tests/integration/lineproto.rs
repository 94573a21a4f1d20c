//! The line-protocol encoder against bytes written out by hand from the
//! InfluxDB line protocol reference, and a round-trip property through a
//! small parser written here from the same reference, independent of the encoder.

use emgate::sinks::lineproto::{
    LineBuilder, escape_key, escape_measurement, field_key, series_prefix, write_string_value,
};
use proptest::prelude::*;

fn measurement(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    escape_measurement(s, &mut out);
    out
}

fn key(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    escape_key(s, &mut out);
    out
}

fn string_value(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_string_value(s, &mut out);
    out
}

#[test]
fn measurement_escapes() {
    assert_eq!(measurement("my measurement"), br"my\ measurement");
    assert_eq!(measurement("a,b"), br"a\,b");
    // Equals signs and quotes are literal in a measurement.
    assert_eq!(measurement(r#"a=b"c"#), br#"a=b"c"#);
    assert_eq!(measurement("能耗 读数"), "能耗\\ 读数".as_bytes());
}

#[test]
fn key_escapes() {
    assert_eq!(key("tag key"), br"tag\ key");
    assert_eq!(key("a=b,c d"), br"a\=b\,c\ d");
    assert_eq!(key(r#"say "x""#), br#"say\ "x""#);
    assert_eq!(key("福州 01"), "福州\\ 01".as_bytes());
    // A backslash not before a special character is literal.
    assert_eq!(key(r"a\b"), br"a\b");
}

#[test]
fn string_value_escapes() {
    assert_eq!(string_value("all good"), br#""all good""#);
    assert_eq!(
        string_value(r#"He said "hi" \o/"#),
        br#""He said \"hi\" \\o/""#
    );
    // Commas, equals signs and spaces are literal inside quotes.
    assert_eq!(string_value("a=1, b=2"), br#""a=1, b=2""#);
    assert_eq!(
        string_value("站点"),
        [b'"', 0xE7, 0xAB, 0x99, 0xE7, 0x82, 0xB9, b'"']
    );
}

#[test]
fn line_breaks_are_replaced_by_spaces() {
    assert_eq!(key("a\nb"), br"a\ b");
    assert_eq!(measurement("a\r\nb"), br"a\ \ b");
    assert_eq!(string_value("line1\nline2"), br#""line1 line2""#);
}

#[test]
fn series_prefix_sorts_tags_and_escapes() {
    let p = series_prefix(
        "reading",
        &[
            ("site", "91350100MA2XYZ"),
            ("meter", "m 1"),
            ("level", "1"),
            ("energy", "electricity"),
        ],
    );
    assert_eq!(
        p,
        br"reading,energy=electricity,level=1,meter=m\ 1,site=91350100MA2XYZ"
    );
    // Byte order: uppercase before lowercase, as Go's bytes.Compare.
    assert_eq!(series_prefix("m", &[("b", "1"), ("B", "2")]), b"m,B=2,b=1");
    // Empty keys or values are left out.
    assert_eq!(
        series_prefix("m", &[("a", ""), ("", "x"), ("c", "3")]),
        b"m,c=3"
    );
    assert_eq!(series_prefix("m", &[]), b"m");
}

#[test]
fn full_reading_line() {
    let prefix = series_prefix(
        "reading",
        &[
            ("site", "fz01"),
            ("meter", "m,1"),
            ("energy", "electricity"),
            ("level", "2"),
        ],
    );
    let mut buf = Vec::new();
    let mut l = LineBuilder::new(&mut buf, &prefix);
    l.f64(&field_key("import_kwh"), 49_382_712.0)
        .f64(b"power_kw", -3.25)
        .f64(b"pf", f64::NAN)
        .i64(b"q", 128)
        .string(b"q_detail", "pf:sentinel")
        .string(&field_key("site name"), "站点 \"一\"")
        .boolean(b"estimated", false)
        .i64(b"lag_ms", -7);
    assert!(l.finish(1_700_000_100));
    let want = "reading,energy=electricity,level=2,meter=m\\,1,site=fz01 \
                import_kwh=49382712.0,power_kw=-3.25,q=128i,q_detail=\"pf:sentinel\",\
                site\\ name=\"站点 \\\"一\\\"\",estimated=false,lag_ms=-7i 1700000100\n";
    assert_eq!(String::from_utf8(buf).unwrap(), want);
}

#[test]
fn lines_append_to_a_reused_buffer() {
    let prefix = series_prefix("m", &[("t", "v")]);
    let mut buf = Vec::new();
    for ts in 0..3 {
        let mut l = LineBuilder::new(&mut buf, &prefix);
        l.f64(b"x", 0.5 * ts as f64).boolean(b"ok", true);
        assert!(l.finish(ts));
    }
    let mut l = LineBuilder::new(&mut buf, &prefix);
    l.f64(b"x", f64::INFINITY);
    assert!(!l.finish(9));
    assert_eq!(
        buf,
        b"m,t=v x=0.0,ok=true 0\nm,t=v x=0.5,ok=true 1\nm,t=v x=1.0,ok=true 2\n"
    );
}

#[test]
fn extreme_numbers() {
    let mut buf = Vec::new();
    let mut l = LineBuilder::new(&mut buf, b"m");
    l.f64(b"a", 1e21)
        .f64(b"b", 1e-7)
        .f64(b"c", f64::MAX)
        .f64(b"d", 5e-324)
        .i64(b"e", i64::MIN)
        .i64(b"f", i64::MAX);
    assert!(l.finish(-1));
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        "m a=1e21,b=1e-7,c=1.7976931348623157e308,d=5e-324,\
         e=-9223372036854775808i,f=9223372036854775807i -1\n"
    );
}

// ---- an independent parser, from the reference ----

/// Reads an escaped name up to an unescaped terminator; `\` followed by one
/// of `escapable` stands for that character, any other `\` is literal.
fn read_name(s: &[u8], mut i: usize, escapable: &[u8], stop: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    while i < s.len() && !stop.contains(&s[i]) {
        if s[i] == b'\\' && i + 1 < s.len() && escapable.contains(&s[i + 1]) {
            out.push(s[i + 1]);
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    (out, i)
}

/// Reads a quoted string starting at the opening quote; returns the text and
/// the index after the closing quote.
fn read_string(s: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    assert_eq!(s[i], b'"', "string must start with a quote");
    i += 1;
    let mut out = Vec::new();
    loop {
        match s[i] {
            b'"' => return (out, i + 1),
            b'\\' if s[i + 1] == b'"' || s[i + 1] == b'\\' => {
                out.push(s[i + 1]);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// A parsed line with one string field: (measurement, tags, field key, value, ts).
type Parsed = (String, Vec<(String, String)>, String, String, String);

fn parse_line(line: &[u8]) -> Parsed {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    assert_eq!(line.last(), Some(&b'\n'));
    assert!(!line[..line.len() - 1].contains(&b'\n'), "one line only");
    let (meas, mut pos) = read_name(line, 0, b", ", b", ");
    let mut tags = Vec::new();
    while line[pos] == b',' {
        let (tag_key, eq) = read_name(line, pos + 1, b",= ", b",= ");
        assert_eq!(line[eq], b'=');
        let (tag_value, end) = read_name(line, eq + 1, b",= ", b",= ");
        tags.push((text(tag_key), text(tag_value)));
        pos = end;
    }
    assert_eq!(line[pos], b' ');
    let (fkey, eq) = read_name(line, pos + 1, b",= ", b",= ");
    assert_eq!(line[eq], b'=');
    let (fvalue, end) = read_string(line, eq + 1);
    assert_eq!(line[end], b' ');
    let ts = text(line[end + 1..line.len() - 1].to_vec());
    (text(meas), tags, text(fkey), text(fvalue), ts)
}

/// Names: the specials, quotes, letters and multi-byte characters; no
/// backslash or line break (the configuration never admits them), never empty.
fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(','),
            Just('='),
            Just(' '),
            Just('"'),
            Just('\''),
            Just('\t'),
            proptest::char::range('a', 'z'),
            Just('站'),
            Just('点'),
            Just('é'),
            Just('🔥'),
        ],
        1..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// String values: anything but a line break, with backslashes and quotes often.
fn value() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\\'),
            Just('"'),
            Just(','),
            Just('='),
            Just(' '),
            any::<char>().prop_filter("no line breaks", |c| *c != '\n' && *c != '\r'),
        ],
        0..16,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn round_trips_through_an_independent_parser(
        m in name(),
        k1 in name(), v1 in name(),
        k2 in name(), v2 in name(),
        fk in name(),
        fv in value(),
        ts in any::<i64>(),
    ) {
        let prefix = series_prefix(&m, &[(&k1, &v1), (&k2, &v2)]);
        let mut buf = Vec::new();
        let mut l = LineBuilder::new(&mut buf, &prefix);
        l.string(&field_key(&fk), &fv);
        prop_assert!(l.finish(ts));

        let (pm, ptags, pfk, pfv, pts) = parse_line(&buf);
        let mut want_tags = vec![(k1, v1), (k2, v2)];
        want_tags.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        prop_assert_eq!(pm, m);
        prop_assert_eq!(ptags, want_tags);
        prop_assert_eq!(pfk, fk);
        prop_assert_eq!(pfv, fv);
        prop_assert_eq!(pts, ts.to_string());
    }

    #[test]
    fn finite_floats_round_trip(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let mut buf = Vec::new();
        let mut l = LineBuilder::new(&mut buf, b"m");
        l.f64(b"x", v);
        prop_assert!(l.finish(0));
        let s = std::str::from_utf8(&buf).unwrap();
        let num = s.strip_prefix("m x=").unwrap().strip_suffix(" 0\n").unwrap();
        // A float must never look like an integer to InfluxDB.
        prop_assert!(num.contains(['.', 'e']), "{num}");
        prop_assert_eq!(num.parse::<f64>().unwrap().to_bits(), v.to_bits());
    }
}
