//! Value checkers: one scalar key at a time, with the fix in the message.
//!
//! Why: the same kinds of keys recur in every file (ids, names, paths,
//! bounded integers, durations in milliseconds, transformer ratios, time
//! zones, one-of-a-list choices); checking each kind in one place keeps
//! their messages identical wherever the key appears. Each checker records
//! its problem at the key it is given and returns `None`, so the caller
//! goes on checking the rest of the table.

use std::path::PathBuf;
use std::time::Duration;

use super::suggest::{shorten, suggest};
use super::{Float, Int, Problems, Text};

/// True for ids usable as tag values and file names: ASCII letters, digits, `_`, `-`, `.`.
pub(crate) fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A non-empty string.
pub(crate) fn required_text(
    v: Option<Text>,
    key: &str,
    hint: &str,
    p: &mut Problems,
) -> Option<String> {
    match v {
        Some(Text(s)) if !s.trim().is_empty() => Some(s),
        Some(_) => {
            p.push(key, format!("is empty; {hint}"));
            None
        }
        None => {
            p.push(key, format!("missing required key; {hint}"));
            None
        }
    }
}

/// A required id (ASCII letters, digits, `_`, `-`, `.`).
pub(crate) fn required_id(
    v: Option<Text>,
    key: &str,
    what: &str,
    p: &mut Problems,
) -> Option<String> {
    let rule = "use ASCII letters, digits, \"_\", \"-\" and \".\"";
    match v {
        None => {
            p.push(
                key,
                format!("missing required key; give the {what} ({rule})"),
            );
            None
        }
        Some(Text(s)) if is_valid_id(&s) => Some(s),
        Some(Text(s)) => {
            p.push(key, format!("\"{s}\" is not a valid {what}; {rule}"));
            None
        }
    }
}

/// An optional path; `None` (with a problem) when empty.
pub(crate) fn path_key(v: Option<Text>, key: &str, p: &mut Problems) -> Option<PathBuf> {
    match v {
        Some(Text(s)) if s.trim().is_empty() => {
            p.push(key, "is empty; give a directory or file path");
            None
        }
        Some(Text(s)) => Some(PathBuf::from(s)),
        None => None,
    }
}

/// An integer in `min..=max`, `default` when absent.
pub(crate) fn int(
    v: Option<Int>,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
    p: &mut Problems,
) -> Option<i64> {
    let x = v.map_or(default, |Int(x)| x);
    if x < min {
        p.push(key, format!("{x} is too small; the minimum is {min}"));
        None
    } else if x > max {
        p.push(key, format!("{x} is too large; the maximum is {max}"));
        None
    } else {
        Some(x)
    }
}

/// A duration in milliseconds of at least `min`, `default` when absent.
pub(crate) fn millis(
    v: Option<Int>,
    key: &str,
    default: i64,
    min: i64,
    p: &mut Problems,
) -> Option<Duration> {
    int(v, key, default, min, i64::MAX, p).map(|x| Duration::from_millis(x as u64))
}

/// A transformer ratio: finite and positive.
pub(crate) fn ratio(v: Option<Float>, key: &str, p: &mut Problems) -> Option<f64> {
    match v {
        None => None,
        Some(Float(x)) if x.is_finite() && x > 0.0 => Some(x),
        Some(Float(x)) => {
            p.push(key, format!("{x} is not a valid ratio; use a positive number (1 when there is no transformer)"));
            None
        }
    }
}

/// An IANA time zone.
pub(crate) fn timezone(name: &str, key: &str, p: &mut Problems) -> Option<jiff::tz::TimeZone> {
    if let Ok(tz) = jiff::tz::TimeZone::get(name) {
        Some(tz)
    } else {
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect();
        let shown = shorten(name);
        let msg = match suggest(name, names.iter().map(String::as_str)) {
            Some(s) => format!("unknown time zone \"{shown}\"; did you mean \"{s}\"?"),
            None => {
                format!("unknown time zone \"{shown}\"; use an IANA name such as \"Asia/Shanghai\"")
            }
        };
        p.push(key, msg);
        None
    }
}

/// One of `options` by exact name, `default` when absent (required when `default` is `None`).
pub(crate) fn choice<T: Copy>(
    v: Option<Text>,
    key: &str,
    what: &str,
    options: &[(&str, T)],
    default: Option<T>,
    p: &mut Problems,
) -> Option<T> {
    let names = || options.iter().map(|(n, _)| *n);
    match v {
        None => {
            if default.is_none() {
                p.push(
                    key,
                    format!(
                        "missing required key; use one of: {}",
                        names().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            default
        }
        Some(Text(s)) => {
            if let Some((_, t)) = options.iter().find(|(n, _)| *n == s) {
                return Some(*t);
            }
            let msg = match suggest(&s, names()) {
                Some(c) => format!("unknown {what} \"{s}\"; did you mean \"{c}\"?"),
                None => format!(
                    "unknown {what} \"{s}\"; expected one of: {}",
                    names().collect::<Vec<_>>().join(", ")
                ),
            };
            p.push(key, msg);
            None
        }
    }
}

/// Like [`choice`] but case-insensitive, with a default (byte orders: `ABCD` or `abcd`).
pub(crate) fn choice_ci<T: Copy>(
    v: Option<Text>,
    key: &str,
    what: &str,
    options: &[(&str, T)],
    default: T,
    p: &mut Problems,
) -> T {
    let v = v.map(|Text(s)| {
        let upper = s.to_ascii_uppercase();
        if options.iter().any(|(n, _)| *n == upper) {
            Text(upper)
        } else {
            Text(s)
        }
    });
    choice(v, key, what, options, Some(default), p).unwrap_or(default)
}

/// A backoff's first delay and cap, `<table>.<name>_initial_ms` (default
/// 500) and `<table>.<name>_max_ms` (default 30 000); the cap must be at
/// least the first delay.
pub(crate) fn backoff_range(
    initial: Option<Int>,
    max: Option<Int>,
    table: &str,
    name: &str,
    p: &mut Problems,
) -> (Option<Duration>, Option<Duration>) {
    let initial_key = format!("{name}_initial_ms");
    let max_key = format!("{table}.{name}_max_ms");
    let first = millis(initial, &format!("{table}.{initial_key}"), 500, 1, p);
    let cap = millis(max, &max_key, 30_000, 1, p);
    if let (Some(i), Some(c)) = (first, cap)
        && c < i
    {
        p.push(
            max_key,
            format!(
                "{} is below {initial_key} ({}); the cap must be at least the first delay",
                c.as_millis(),
                i.as_millis()
            ),
        );
    }
    (first, cap)
}

/// `steam_state` and `steam_dryness` (profiles and steam meters), each
/// optional; `key` is the prefix (`""` or `meters[3]`).
pub(crate) fn steam_keys(
    state: Option<Text>,
    dryness: Option<Float>,
    key: &str,
    p: &mut Problems,
) -> (Option<crate::model::SteamState>, Option<f64>) {
    use crate::model::SteamState;
    let k = |sub: &str| {
        if key.is_empty() {
            sub.to_owned()
        } else {
            format!("{key}.{sub}")
        }
    };
    let state = state.and_then(|t| {
        choice(
            Some(t),
            &k("steam_state"),
            "steam state",
            &[
                ("auto", SteamState::Auto),
                ("saturated", SteamState::Saturated),
                ("superheated", SteamState::Superheated),
            ],
            None,
            p,
        )
    });
    let dryness = match dryness {
        None => None,
        Some(Float(x)) if x.is_finite() && x > 0.0 && x <= 1.0 => Some(x),
        Some(Float(x)) => {
            p.push(
                k("steam_dryness"),
                format!("{x} is not a dryness fraction; give the mass share of vapour in the wet steam, above 0 and at most 1 (e.g. 0.98)"),
            );
            None
        }
    };
    (state, dryness)
}
