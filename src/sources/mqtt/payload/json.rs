//! JSON payloads: one reading object, or an array of them at a pointer,
//! with the meter named by the topic or by `meter_field`.

use serde_json::Value;

use crate::model::{PointValue, Quality, ReadingBatch};

use super::{Ctx, Rejected, Rejection, number_ms, text_ms};

impl Ctx<'_, '_> {
    pub(super) fn json(&self, text: &str, out: &mut ReadingBatch) -> Result<usize, Rejected> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| (Rejection::Malformed(format!("invalid JSON: {e}")), None))?;
        let Some(ptr) = &self.sub.array else {
            if !root.is_object() {
                return Err((
                    Rejection::Malformed(format!(
                        "expected a JSON object, found {}",
                        json_kind(&root)
                    )),
                    None,
                ));
            }
            self.json_reading(&root, &root, out)?;
            return Ok(1);
        };
        let at = if ptr.is_empty() {
            "the payload"
        } else {
            ptr.as_str()
        };
        let array = if ptr.is_empty() {
            Some(&root)
        } else {
            root.pointer(ptr)
        };
        let Some(array) = array else {
            return Err((
                Rejection::MissingField(format!("no array at \"{ptr}\"")),
                None,
            ));
        };
        let Some(items) = array.as_array() else {
            return Err((
                Rejection::Malformed(format!(
                    "expected an array at {at}, found {}",
                    json_kind(array)
                )),
                None,
            ));
        };
        if items.is_empty() {
            return Err((
                Rejection::MissingField(format!("the array at {at} is empty")),
                None,
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if !item.is_object() {
                return Err((
                    Rejection::Malformed(format!(
                        "element {i} of the array at {at} is {}, expected an object",
                        json_kind(item)
                    )),
                    None,
                ));
            }
            self.json_reading(item, &root, out)?;
        }
        Ok(items.len())
    }

    /// One reading from the JSON object `obj` (`root`: the whole payload,
    /// where the meter key is looked for when `obj` lacks it).
    fn json_reading(
        &self,
        obj: &Value,
        root: &Value,
        out: &mut ReadingBatch,
    ) -> Result<(), Rejected> {
        let named = match &self.sub.meter_field {
            None => None,
            Some(k) => match k.find(obj).or_else(|| k.find(root)) {
                None => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    return Err((
                        Rejection::WrongType(format!(
                            "meter key \"{}\" is {}, expected a string",
                            k.as_str(),
                            json_kind(other)
                        )),
                        None,
                    ));
                }
            },
        };
        let m = self.meter(named)?;
        let start = Self::open(self.dec.profiles[m.profile].n_points, out);
        let mut found = 0;
        for f in &self.sub.maps[m.profile] {
            let Some(v) = f.key.find(obj) else {
                continue;
            };
            let x = match v {
                // `null`: the logger says it has no value, as if absent.
                Value::Null => continue,
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                _ => None,
            };
            let Some(x) = x else {
                return Err((
                    Rejection::WrongType(format!(
                        "\"{}\" is {}, expected a number",
                        f.key.as_str(),
                        json_kind(v)
                    )),
                    Some(m.id),
                ));
            };
            out.values[start + f.point] = PointValue::new(x * f.scale, Quality::GOOD);
            found += 1;
        }
        self.require_points(m, found)?;
        let stamp = match &self.sub.stamp {
            None => None,
            Some((key, unit)) => {
                let Some(v) = key.find(obj) else {
                    return Err((
                        Rejection::BadTimestamp(format!("no time stamp \"{}\"", key.as_str())),
                        Some(m.id),
                    ));
                };
                let ms = match v {
                    Value::Number(n) => number_ms(n, *unit),
                    Value::String(s) => text_ms(s, *unit, &m.tz),
                    other => Err(format!("is {}", json_kind(other))),
                };
                let ms = ms
                    .map_err(|why| Rejection::BadTimestamp(format!("\"{}\" {why}", key.as_str())));
                let ms = ms.and_then(|ms| {
                    self.check_stamp(ms, &format_args!("\"{}\" = {v}", key.as_str()))
                });
                Some(ms.map_err(|r| (r, Some(m.id)))?)
            }
        };
        self.close(m, start, stamp, out);
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Line protocol
}

/// "a string", "null", ... for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
