//! TOML to checked structs, one table at a time, every problem kept.
//!
//! Why: serde stops at the first problem. [`table`] instead deserializes a
//! table, records every unknown key (with a "did you mean" from the
//! struct's own field names) and every type error (with its key path), and
//! retries without the offending key so the table's other keys are still
//! checked. [`array`] hands out the elements of an array of tables so each
//! is checked on its own.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;

use config::{Value, ValueKind};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::suggest::{shorten, suggest};
use super::{Problems, join};

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
        P::Map { parent, key } => join(&ignored_path(parent), &shorten(key)),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
