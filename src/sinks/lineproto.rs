//! The InfluxDB line-protocol encoder: pure functions writing into a caller-owned buffer.
//!
//! Every reading becomes one line, so this is the hottest code on the way
//! out. The escaped `measurement,tag=value,…` prefix of a series is built
//! once at config load ([`series_prefix`]); per line, [`LineBuilder`] only
//! appends field keys (escaped once, too), formatted numbers and a
//! timestamp to a reused `Vec<u8>`: no allocation once the buffer has grown.
//!
//! # Escaping (InfluxDB line protocol reference, v1)
//! * measurement: comma and space, as `\,` and `\ `;
//! * tag keys, tag values, field keys: comma, equals sign and space;
//! * string field values: double-quoted, with `"` and `\` escaped as `\"` and `\\`;
//! * everything else, UTF-8 included (`站点`), passes through unchanged.
//!
//! Backslashes in names are written as they are, as the reference says. A
//! name that ends in a backslash, or has one right before a comma, equals
//! sign or space, has no unambiguous encoding (InfluxDB and Telegraf misread
//! it). Configured names never contain one: the configuration admits only
//! ids of ASCII letters, digits, `_`, `-` and `.`, and field names
//! `[a-z][a-z0-9_]*`.
//!
//! # Newlines
//! Line protocol has no escape for a line feed or carriage return anywhere,
//! not even inside a quoted string ("line protocol does not support the
//! newline character in tag values or field values"). Both are **replaced by
//! a space** (escaped as `\ ` in names), so that a value can never split a
//! line and lose the rest of a batch. (Configured names cannot hold them.)
//!
//! # Numbers
//! Floats use the shortest representation that round-trips: `5.0`, `0.1`,
//! `1e21`, `1e-7`, all of which InfluxDB parses as floats. The digits come
//! from `zmij`, which gives the same digits as `ryu` in a little over half
//! the time (BENCHMARKS.md "Float formatting"); its `e+21` for a positive
//! exponent is written `e21`, so the bytes are those `ryu` wrote. A non-finite
//! float cannot be written: [`LineBuilder::f64`] skips it (the reading's
//! quality bits already say why the value is missing). Integers carry the
//! `i` suffix, booleans are `true`/`false`, the timestamp is a bare integer
//! in the precision the writer declares.

/// Appends `s` with a backslash before every byte for which `special` is true;
/// line breaks become an escaped space. Multi-byte UTF-8 sequences never
/// contain ASCII bytes, so working on bytes is safe.
#[inline]
fn escape_with(s: &str, out: &mut Vec<u8>, special: impl Fn(u8) -> bool) {
    let bytes = s.as_bytes();
    let mut clean = 0; // start of the run not yet copied
    for (i, &b) in bytes.iter().enumerate() {
        if special(b) {
            out.extend_from_slice(&bytes[clean..i]);
            out.push(b'\\');
            out.push(b);
            clean = i + 1;
        } else if b == b'\n' || b == b'\r' {
            out.extend_from_slice(&bytes[clean..i]);
            out.extend_from_slice(b"\\ ");
            clean = i + 1;
        }
    }
    out.extend_from_slice(&bytes[clean..]);
}

/// Appends a measurement name, escaping commas and spaces.
pub fn escape_measurement(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| b == b',' || b == b' ');
}

/// Appends a tag key, tag value or field key, escaping commas, equals signs and spaces.
pub fn escape_key(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, |b| b == b',' || b == b'=' || b == b' ');
}

/// Appends a string field value in double quotes, escaping `"` and `\`;
/// line breaks become spaces.
pub fn write_string_value(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut clean = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' | b'\\' => {
                out.extend_from_slice(&bytes[clean..i]);
                out.push(b'\\');
                out.push(b);
                clean = i + 1;
            }
            b'\n' | b'\r' => {
                out.extend_from_slice(&bytes[clean..i]);
                out.push(b' ');
                clean = i + 1;
            }
            _ => {}
        }
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

/// Builds the escaped series prefix `measurement,k1=v1,k2=v2` once, at config load.
///
/// Tags are sorted by key in byte order, as InfluxDB recommends (it sorts
/// them itself otherwise). A tag with an empty key or value is left out:
/// InfluxDB has no empty tags and rejects a line that writes one.
#[must_use]
pub fn series_prefix(measurement: &str, tags: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted: Vec<(&str, &str)> = tags
        .iter()
        .copied()
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(64);
    escape_measurement(measurement, &mut out);
    for (k, v) in sorted {
        out.push(b',');
        escape_key(k, &mut out);
        out.push(b'=');
        escape_key(v, &mut out);
    }
    out
}

/// Escapes a field key once, at config load, for use with [`LineBuilder`].
#[must_use]
pub fn field_key(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    escape_key(name, &mut out);
    out
}

/// Appends one line to a buffer: series prefix, fields, timestamp.
///
/// ```
/// use emgate::sinks::lineproto::{LineBuilder, series_prefix};
/// let prefix = series_prefix("reading", &[("meter", "m1"), ("site", "s1")]);
/// let mut buf = Vec::new();
/// let mut line = LineBuilder::new(&mut buf, &prefix);
/// line.f64(b"import_kwh", 1234.5).i64(b"q", 0);
/// assert!(line.finish(1_700_000_000));
/// assert_eq!(buf, b"reading,meter=m1,site=s1 import_kwh=1234.5,q=0i 1700000000\n");
/// ```
///
/// A line needs at least one field: [`LineBuilder::finish`] removes a line
/// without fields and returns false. A builder dropped without `finish`
/// removes its partial line too, so the buffer only ever holds whole lines.
pub struct LineBuilder<'a> {
    out: &'a mut Vec<u8>,
    /// Length of the buffer before this line, to roll back to.
    line_start: usize,
    fields: usize,
    finished: bool,
}

impl<'a> LineBuilder<'a> {
    /// Starts a line in `out` with an escaped series prefix (see [`series_prefix`]).
    pub fn new(out: &'a mut Vec<u8>, escaped_series_prefix: &[u8]) -> Self {
        let line_start = out.len();
        out.extend_from_slice(escaped_series_prefix);
        LineBuilder {
            out,
            line_start,
            fields: 0,
            finished: false,
        }
    }

    /// Number of fields written so far.
    #[must_use]
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// Writes the separator before a field, then `key=`.
    #[inline]
    fn key(&mut self, escaped_key: &[u8]) {
        self.out.push(if self.fields == 0 { b' ' } else { b',' });
        self.out.extend_from_slice(escaped_key);
        self.out.push(b'=');
        self.fields += 1;
    }

    /// Adds a float field; a NaN or infinite value is skipped, never written.
    pub fn f64(&mut self, escaped_key: &[u8], v: f64) -> &mut Self {
        if v.is_finite() {
            self.key(escaped_key);
            let mut b = zmij::Buffer::new();
            let text = b.format_finite(v).as_bytes();
            // `1e+21` → `1e21`: a '+' only ever follows the exponent's 'e'.
            match memchr::memchr(b'+', text) {
                Some(i) => {
                    self.out.extend_from_slice(&text[..i]);
                    self.out.extend_from_slice(&text[i + 1..]);
                }
                None => self.out.extend_from_slice(text),
            }
        }
        self
    }

    /// Adds an integer field (`42i`).
    pub fn i64(&mut self, escaped_key: &[u8], v: i64) -> &mut Self {
        self.key(escaped_key);
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(v).as_bytes());
        self.out.push(b'i');
        self
    }

    /// Adds a boolean field (`true` / `false`).
    pub fn boolean(&mut self, escaped_key: &[u8], v: bool) -> &mut Self {
        self.key(escaped_key);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// Adds a string field, quoted and escaped (see [`write_string_value`]).
    pub fn string(&mut self, escaped_key: &[u8], v: &str) -> &mut Self {
        self.key(escaped_key);
        write_string_value(v, self.out);
        self
    }

    /// Ends the line with timestamp `ts` and a newline. Returns false, and
    /// removes the partial line, when no field was written.
    pub fn finish(mut self, ts: i64) -> bool {
        self.finished = true;
        if self.fields == 0 {
            self.out.truncate(self.line_start);
            return false;
        }
        self.out.push(b' ');
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(ts).as_bytes());
        self.out.push(b'\n');
        true
    }
}

impl Drop for LineBuilder<'_> {
    /// An unfinished line is removed: the buffer holds only whole lines.
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.line_start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(f: fn(&str, &mut Vec<u8>), s: &str) -> String {
        let mut out = Vec::new();
        f(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn measurement_escapes_comma_and_space_only() {
        assert_eq!(esc(escape_measurement, "a b,c=d"), r"a\ b\,c=d");
    }

    #[test]
    fn key_escapes_comma_equals_space() {
        assert_eq!(esc(escape_key, "a b,c=d"), r"a\ b\,c\=d");
        assert_eq!(esc(escape_key, "plain"), "plain");
        assert_eq!(esc(escape_key, ""), "");
    }

    #[test]
    fn line_breaks_become_spaces() {
        assert_eq!(esc(escape_key, "a\nb\r"), r"a\ b\ ");
        assert_eq!(esc(escape_measurement, "m\n"), r"m\ ");
        assert_eq!(esc(write_string_value, "x\r\ny"), "\"x  y\"");
    }

    #[test]
    fn string_value_escapes_quote_and_backslash() {
        assert_eq!(esc(write_string_value, r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(esc(write_string_value, ""), r#""""#);
    }

    /// The bytes of every float are those `ryu` (the formatter before
    /// `zmij`) writes: random bit patterns of every magnitude, and float32
    /// register values widened to f64, as the meters send them.
    #[test]
    fn floats_are_written_as_ryu_wrote_them() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            // xorshift64*: deterministic, covers every exponent.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut ryu = ryu::Buffer::new();
        let mut buf = Vec::new();
        for i in 0..400_000u32 {
            let bits = next();
            let v = if i % 2 == 0 {
                f64::from_bits(bits)
            } else {
                f64::from(f32::from_bits(bits as u32))
            };
            if !v.is_finite() {
                continue;
            }
            buf.clear();
            let mut l = LineBuilder::new(&mut buf, b"m");
            l.f64(b"v", v);
            assert!(l.finish(0));
            let want = format!("m v={} 0\n", ryu.format_finite(v));
            assert_eq!(String::from_utf8_lossy(&buf), want, "{v:e}");
        }
    }

    #[test]
    fn floats_round_trip_in_shortest_form() {
        let mut buf = Vec::new();
        let mut l = LineBuilder::new(&mut buf, b"m");
        l.f64(b"a", 5.0)
            .f64(b"b", 0.1)
            .f64(b"c", 1e21)
            .f64(b"d", 1e-7)
            .f64(b"e", -0.0)
            .f64(b"f", f64::NAN)
            .f64(b"g", f64::INFINITY)
            .f64(b"h", f64::NEG_INFINITY);
        assert_eq!(l.fields(), 5);
        assert!(l.finish(0));
        assert_eq!(buf, b"m a=5.0,b=0.1,c=1e21,d=1e-7,e=-0.0 0\n");
    }

    #[test]
    fn line_without_fields_is_removed() {
        let mut buf = b"x f=1i 1\n".to_vec();
        let mut l = LineBuilder::new(&mut buf, b"m,t=v");
        l.f64(b"a", f64::NAN);
        assert!(!l.finish(5));
        assert_eq!(buf, b"x f=1i 1\n");
    }

    #[test]
    fn dropped_builder_removes_partial_line() {
        let mut buf = Vec::new();
        {
            let mut l = LineBuilder::new(&mut buf, b"m");
            l.i64(b"q", 1);
        }
        assert!(buf.is_empty());
    }
}
