//! Line-protocol and CSV payloads, parsed in place: one reading per line,
//! the meter named by the topic, the `meter` tag or the first column.

use std::borrow::Cow;

use crate::model::{PointValue, Quality, ReadingBatch};

use super::{Ctx, Rejected, Rejection, integer_ms, text_ms};

impl Ctx<'_, '_> {
    pub(super) fn line_protocol(
        &self,
        text: &str,
        out: &mut ReadingBatch,
    ) -> Result<usize, Rejected> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.lp_line(line, i + 1, out)?;
            n += 1;
        }
        if n == 0 {
            return Err((
                Rejection::Malformed("no line of line protocol".to_owned()),
                None,
            ));
        }
        Ok(n)
    }

    fn lp_line(&self, line: &str, no: usize, out: &mut ReadingBatch) -> Result<(), Rejected> {
        let bad = |why: String| (Rejection::Malformed(format!("line {no}: {why}")), None);
        let (series, rest) = split_unescaped(line, b' ', false);
        let Some(rest) = rest else {
            return Err(bad(
                "no field set (expected \"measurement,tags fields [time]\")".to_owned(),
            ));
        };
        let (fields, stamp_text) = split_unescaped(rest.trim_start(), b' ', true);
        let (measurement, mut tags) = split_unescaped(series, b',', false);
        if measurement.is_empty() {
            return Err(bad("empty measurement".to_owned()));
        }
        let mut meter_tag: Option<Cow<'_, str>> = None;
        while let Some(t) = tags {
            let (tag, more) = split_unescaped(t, b',', false);
            tags = more;
            let (k, v) = split_unescaped(tag, b'=', false);
            let Some(v) = v.filter(|v| !v.is_empty() && !k.is_empty()) else {
                return Err(bad(format!("tag \"{tag}\" is not key=value")));
            };
            if unescape(k) == "meter" {
                meter_tag = Some(unescape(v));
            }
        }
        let m = self.meter(meter_tag.as_deref())?;
        let lookup = &self.sub.lookup[m.profile];
        let start = Self::open(self.dec.profiles[m.profile].n_points, out);
        let mut found = 0;
        let mut fields = Some(fields);
        while let Some(f) = fields {
            let (field, more) = split_unescaped(f, b',', true);
            fields = more;
            let (k, v) = split_unescaped(field, b'=', true);
            let Some(v) = v.filter(|v| !v.is_empty() && !k.is_empty()) else {
                return Err((
                    Rejection::Malformed(format!("line {no}: field \"{field}\" is not key=value")),
                    Some(m.id),
                ));
            };
            let k = unescape(k);
            let Ok(value) = lp_value(v) else {
                return Err((
                    Rejection::Malformed(format!(
                        "line {no}: field \"{k}\" has an invalid value \"{v}\""
                    )),
                    Some(m.id),
                ));
            };
            let Some(&(point, scale)) = lookup.get(k.as_ref()) else {
                continue;
            };
            match value {
                LpValue::Number(x) => {
                    out.values[start + point] = PointValue::new(x * scale, Quality::GOOD);
                    found += 1;
                }
                LpValue::Bool => {
                    return Err((
                        Rejection::WrongType(format!(
                            "line {no}: field \"{k}\" is a boolean, expected a number"
                        )),
                        Some(m.id),
                    ));
                }
                // Strings carry no number: the point stays missing.
                LpValue::Text => {}
            }
        }
        self.require_points(m, found)?;
        let stamp = match (&self.sub.stamp, stamp_text.map(str::trim)) {
            (None, _) => None,
            (Some(_), None | Some("")) => {
                return Err((
                    Rejection::BadTimestamp(format!(
                        "line {no} has no time stamp (timestamp = \"payload\")"
                    )),
                    Some(m.id),
                ));
            }
            (Some((_, unit)), Some(t)) => {
                let ms = integer_ms(t, *unit)
                    .map_err(|why| Rejection::BadTimestamp(format!("line {no}: {why}")))
                    .and_then(|ms| self.check_stamp(ms, &format_args!("line {no}: {t}")));
                Some(ms.map_err(|r| (r, Some(m.id)))?)
            }
        };
        self.close(m, start, stamp, out);
        Ok(())
    }

    // -----------------------------------------------------------------------
    // CSV

    pub(super) fn csv(&self, text: &str, out: &mut ReadingBatch) -> Result<usize, Rejected> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            self.csv_line(line, i + 1, out)?;
            n += 1;
        }
        if n == 0 {
            return Err((Rejection::Malformed("no CSV line".to_owned()), None));
        }
        Ok(n)
    }

    fn csv_line(&self, line: &str, no: usize, out: &mut ReadingBatch) -> Result<(), Rejected> {
        let mut cols = line.split(',');
        let (Some(meter), Some(stamp_text), Some(_)) =
            (cols.next(), cols.next(), cols.clone().next())
        else {
            return Err((
                Rejection::Malformed(format!(
                    "line {no}: too few columns; expected meter,timestamp,field=value,…"
                )),
                None,
            ));
        };
        let meter = meter.trim();
        let m = self.meter((!meter.is_empty()).then_some(meter))?;
        let lookup = &self.sub.lookup[m.profile];
        let start = Self::open(self.dec.profiles[m.profile].n_points, out);
        let mut found = 0;
        for col in cols {
            let Some((k, v)) = col.split_once('=') else {
                return Err((
                    Rejection::Malformed(format!(
                        "line {no}: column \"{}\" is not field=value",
                        col.trim()
                    )),
                    Some(m.id),
                ));
            };
            let (k, v) = (k.trim(), v.trim());
            let Some(&(point, scale)) = lookup.get(k) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let Some(x) = v.parse::<f64>().ok().filter(|x| x.is_finite()) else {
                return Err((
                    Rejection::WrongType(format!("line {no}: \"{k}\" = \"{v}\" is not a number")),
                    Some(m.id),
                ));
            };
            out.values[start + point] = PointValue::new(x * scale, Quality::GOOD);
            found += 1;
        }
        self.require_points(m, found)?;
        let stamp = match &self.sub.stamp {
            None => None,
            Some((_, unit)) => {
                let t = stamp_text.trim();
                let ms = if t.is_empty() {
                    Err(Rejection::BadTimestamp(format!(
                        "line {no} has no time stamp (timestamp = \"payload\")"
                    )))
                } else {
                    text_ms(t, *unit, &m.tz)
                        .map_err(|why| Rejection::BadTimestamp(format!("line {no}: {why}")))
                        .and_then(|ms| self.check_stamp(ms, &format_args!("line {no}: {t}")))
                };
                Some(ms.map_err(|r| (r, Some(m.id)))?)
            }
        };
        self.close(m, start, stamp, out);
        Ok(())
    }
}

/// A line protocol field value.
pub(super) enum LpValue {
    Number(f64),
    Bool,
    Text,
}

/// Parses a line protocol field value; `Err` when it is none of the types.
pub(super) fn lp_value(v: &str) -> Result<LpValue, ()> {
    if v.starts_with('"') {
        return if v.len() >= 2 && v.ends_with('"') {
            Ok(LpValue::Text)
        } else {
            Err(())
        };
    }
    match v {
        "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE" => {
            return Ok(LpValue::Bool);
        }
        _ => {}
    }
    let x = if let Some(i) = v.strip_suffix('i') {
        i.parse::<i64>().map(|i| i as f64).map_err(|_| ())?
    } else if let Some(u) = v.strip_suffix('u') {
        u.parse::<u64>().map(|u| u as f64).map_err(|_| ())?
    } else {
        v.parse::<f64>().map_err(|_| ())?
    };
    if x.is_finite() {
        Ok(LpValue::Number(x))
    } else {
        Err(())
    }
}

/// Splits `s` at the first `sep` that is not escaped by `\` (and, with
/// `quotes`, not inside a double-quoted string).
pub(super) fn split_unescaped(s: &str, sep: u8, quotes: bool) -> (&str, Option<&str>) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' if quotes => quoted = !quoted,
            c if c == sep && !quoted => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    (s, None)
}

/// `s` with `\x` escapes resolved; borrowed when it has none.
pub(super) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (',' | '=' | ' ' | '\\' | '"')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
