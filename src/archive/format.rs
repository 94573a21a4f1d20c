//! The archive's line format: InfluxDB line protocol exactly as the
//! gateway sends it (`crate::sinks::lineproto` writes it), and a small
//! strict parser for the measurements the archive keeps.
//!
//! Why a parser of our own: the archive must be read back without a
//! database (`emgate export --format csv`, the reports' `ArchiveStore`), and
//! a line that a crash tore, or that is not what we write, must be
//! recognised and skipped rather than half-read. The parser accepts exactly
//! what the encoder produces:
//! * measurement: `\,` and `\ ` escaped; tag keys, tag values and field
//!   keys: `\,`, `\=` and `\ ` escaped (a backslash before anything else is
//!   a literal backslash, as the reference says);
//! * field values: a float as `ryu` writes it (`5.0`, `-0.0`, `1e21`,
//!   `1e-7`), an integer `42i`, `true`/`false`, or a double-quoted string
//!   with `\"` and `\\` escaped;
//! * one space, then the timestamp in seconds (a bare integer), then `\n`.
//!
//! A parsed [`Point`] keeps every field's `key=value` token as written, so
//! a point merged from two lines (see `super::reader`) is written out again
//! with the very same value bytes.

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A float (finite: the encoder never writes NaN or infinities).
    Float(f64),
    /// An integer (`i` suffix in the line).
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string, unescaped.
    Str(String),
}

/// One field of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The key, unescaped.
    pub key: String,
    /// The value.
    pub value: Value,
    /// The value as written in the line (`5.0`, `3i`, `"a\"b"`).
    pub raw: String,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Measurement, unescaped.
    pub measurement: String,
    /// Tags `(key, value)`, unescaped, in written order (sorted by key).
    pub tags: Vec<(String, String)>,
    /// Fields in written order.
    pub fields: Vec<Field>,
    /// Timestamp, Unix seconds.
    pub time: i64,
    /// The escaped series key as written: `measurement,k=v,…`.
    pub series: String,
}

impl Point {
    /// The value of tag `key`.
    #[must_use]
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of field `key`.
    #[must_use]
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.key == key).map(|f| &f.value)
    }

    /// Field `key` as a float (an integer field converts).
    #[must_use]
    pub fn float(&self, key: &str) -> Option<f64> {
        match self.field(key)? {
            Value::Float(x) => Some(*x),
            #[allow(clippy::cast_precision_loss)]
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// Field `key` as a string.
    #[must_use]
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.field(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the point as one line of line protocol (series, fields in
    /// order, timestamp, `\n`), using the field tokens as written.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.series.as_bytes());
        for (i, f) in self.fields.iter().enumerate() {
            out.push(if i == 0 { b' ' } else { b',' });
            crate::sinks::lineproto::escape_key(&f.key, out);
            out.push(b'=');
            out.extend_from_slice(f.raw.as_bytes());
        }
        out.push(b' ');
        out.extend_from_slice(self.time.to_string().as_bytes());
        out.push(b'\n');
    }
}

/// Why a line is not one the archive understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed line at byte {at}: {what}")]
pub struct ParseError {
    /// Byte offset in the line.
    pub at: usize,
    /// What was expected.
    pub what: &'static str,
}

/// The measurement of a line: the bytes before the first unescaped comma or
/// space (escapes kept). Cheap, for filtering before a full parse.
#[must_use]
pub fn measurement_of(line: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b',' | b' ' => return &line[..i],
            _ => i += 1,
        }
    }
    line
}

/// The timestamp of a line (the digits after its last space); `None` when
/// the line does not end in one.
#[must_use]
pub fn time_of(line: &[u8]) -> Option<i64> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let space = line.iter().rposition(|&b| b == b' ')?;
    std::str::from_utf8(&line[space + 1..]).ok()?.parse().ok()
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError { at: self.i, what }
    }

    /// An escaped name ending at an unescaped byte of `stops` (not consumed).
    /// `escapable` are the bytes a backslash escapes.
    fn name(&mut self, stops: &[u8], escapable: &[u8]) -> Result<String, ParseError> {
        let mut out = Vec::new();
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'\\'
                && self
                    .b
                    .get(self.i + 1)
                    .is_some_and(|n| escapable.contains(n))
            {
                out.push(self.b[self.i + 1]);
                self.i += 2;
            } else if stops.contains(&c) {
                break;
            } else if c == b'\n' || c == b'"' && stops.contains(&b'=') && out.is_empty() {
                return Err(self.err("a name"));
            } else {
                out.push(c);
                self.i += 1;
            }
        }
        if out.is_empty() {
            return Err(self.err("a non-empty name"));
        }
        String::from_utf8(out).map_err(|_| self.err("UTF-8"))
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ParseError> {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A field value up to an unquoted `,` or ` `; returns it and its raw text.
    fn value(&mut self) -> Result<(Value, String), ParseError> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'"') {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                match self.b.get(self.i) {
                    None | Some(b'\n') => return Err(self.err("a closing quote")),
                    Some(b'\\') if matches!(self.b.get(self.i + 1), Some(b'"' | b'\\')) => {
                        out.push(self.b[self.i + 1]);
                        self.i += 2;
                    }
                    Some(b'"') => {
                        self.i += 1;
                        break;
                    }
                    Some(&c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
            let s = String::from_utf8(out).map_err(|_| self.err("UTF-8"))?;
            let raw = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
            return Ok((Value::Str(s), raw));
        }
        while self.i < self.b.len() && !matches!(self.b[self.i], b',' | b' ' | b'\n') {
            self.i += 1;
        }
        let raw = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| self.err("ASCII"))?;
        let value = match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ if raw.ends_with('i') => Value::Int(
                raw[..raw.len() - 1]
                    .parse()
                    .map_err(|_| self.err("an integer"))?,
            ),
            _ => {
                let digits = raw.strip_prefix('-').unwrap_or(raw);
                if !digits.starts_with(|c: char| c.is_ascii_digit())
                    || !digits.bytes().all(|b| {
                        b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')
                    })
                {
                    return Err(ParseError {
                        at: start,
                        what: "a number, true, false or a quoted string",
                    });
                }
                Value::Float(raw.parse().map_err(|_| ParseError {
                    at: start,
                    what: "a float",
                })?)
            }
        };
        Ok((value, raw.to_owned()))
    }
}

/// Parses one line (with or without its final `\n`).
///
/// # Errors
/// [`ParseError`] for anything the encoder does not write.
pub fn parse(line: &[u8]) -> Result<Point, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut c = Cursor { b: line, i: 0 };
    let measurement = c.name(b", ", b", ")?;
    let mut tags = Vec::new();
    while c.b.get(c.i) == Some(&b',') {
        c.i += 1;
        let k = c.name(b"=", b",= ")?;
        c.expect(b'=', "'=' after a tag key")?;
        let v = c.name(b", ", b",= ")?;
        tags.push((k, v));
    }
    let series = String::from_utf8_lossy(&line[..c.i]).into_owned();
    c.expect(b' ', "a space before the fields")?;
    let mut fields = Vec::new();
    loop {
        let key = c.name(b"=", b",= ")?;
        c.expect(b'=', "'=' after a field key")?;
        let (value, raw) = c.value()?;
        fields.push(Field { key, value, raw });
        if c.b.get(c.i) == Some(&b',') {
            c.i += 1;
        } else {
            break;
        }
    }
    c.expect(b' ', "a space before the timestamp")?;
    let ts = &line[c.i..];
    let digits = ts.strip_prefix(b"-").unwrap_or(ts);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(c.err("a timestamp in seconds at the end"));
    }
    let time = std::str::from_utf8(ts)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| c.err("a timestamp in seconds"))?;
    Ok(Point {
        measurement,
        tags,
        fields,
        time,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_encoder_writes() {
        let line = b"entry,item=output_t,period=2026-11,site=a\\ b\\,c\\=d \
            value=5.0,unit=\"t\",reason=\"say \\\"hi\\\" \\\\ ok, x=1\",n=3i,ok=true 1700000000\n";
        let p = parse(line).expect("parse");
        assert_eq!(p.measurement, "entry");
        assert_eq!(p.tag("site"), Some("a b,c=d"));
        assert_eq!(
            p.series,
            "entry,item=output_t,period=2026-11,site=a\\ b\\,c\\=d"
        );
        assert_eq!(p.float("value"), Some(5.0));
        assert_eq!(p.string("reason"), Some("say \"hi\" \\ ok, x=1"));
        assert_eq!(p.field("n"), Some(&Value::Int(3)));
        assert_eq!(p.field("ok"), Some(&Value::Bool(true)));
        assert_eq!(p.time, 1_700_000_000);
        let mut out = Vec::new();
        p.write_line(&mut out);
        assert_eq!(out, line);
    }

    #[test]
    fn floats_in_every_form_ryu_writes() {
        let p = parse(b"m a=5.0,b=-0.0,c=1e21,d=1e-7,e=0.1229 1").expect("parse");
        let v: Vec<f64> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|k| p.float(k).expect("float"))
            .collect();
        assert_eq!(v, [5.0, -0.0, 1e21, 1e-7, 0.1229]);
        assert_eq!(p.fields[1].raw, "-0.0");
    }

    #[test]
    fn rejects_torn_and_foreign_lines() {
        for bad in [
            &b"consumption,site=s1 amount=1.0"[..],
            b"consumption,site=s1 amount=1.0 ",
            b"consumption,site=s1 amount=",
            b"consumption,site=s1 amount=1.0,kg",
            b"consumption,site=s1 amount=\"open 17",
            b"consumption,site",
            b"consumption,site=s1",
            b"m a=nan 1",
            b"m a=inf 1",
            b"m a=T 1",
            b"m a=1.0 17x",
            b"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn measurement_and_time_without_parsing() {
        assert_eq!(
            measurement_of(b"gauge_stats,site=a x=1 2\n"),
            b"gauge_stats"
        );
        assert_eq!(measurement_of(b"a\\ b x=1 2"), b"a\\ b");
        assert_eq!(time_of(b"m x=\"a b\" 1700000000\n"), Some(1_700_000_000));
        assert_eq!(time_of(b"m x=1.0"), None);
    }
}
