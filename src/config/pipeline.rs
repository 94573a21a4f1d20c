//! `[validation]` and `[aggregation]`: how readings are judged and summed.
//!
//! Why together: both configure the pure stages of `crate::pipeline`
//! (time limits of the validator; windows, lateness, gaps and the
//! standard-coal conversion of the aggregator), and the meters' energy
//! settings ([`super::meter`]) are resolved against the aggregation's
//! coefficient table and electricity method.

use std::fs;
use std::path::Path;
use std::time::Duration;

use config::Value;

use super::files::io_message;
use super::raw::{AggregationRaw, ValidationRaw};
use super::{AggregationSettings, ElectricityMethod, ValidationSettings};
use crate::check::{self, Flag, Float, Problems, Text, choice, int};
use crate::pipeline::aggregate::AggregatorSettings;
use crate::pipeline::coefficients::CoefficientTable;
use crate::pipeline::steam::SteamMargins;
use crate::pipeline::window::WindowSize;

/// `[validation]`; absent, the defaults.
pub(super) fn validation(v: Option<Value>, p: &mut Problems) -> Option<ValidationSettings> {
    let Some(v) = v else {
        return Some(ValidationSettings::default());
    };
    let r = check::table::<ValidationRaw>(v, "validation", "a table ([validation])", p)?;
    let d = ValidationSettings::default();
    let skew = int(
        r.max_future_skew_secs,
        "validation.max_future_skew_secs",
        d.max_future_skew_secs,
        0,
        i64::from(u32::MAX),
        p,
    );
    let late = int(
        r.max_lateness_secs,
        "validation.max_lateness_secs",
        d.max_lateness_secs,
        1,
        i64::from(u32::MAX),
        p,
    );
    let every = int(
        r.checkpoint_interval_secs,
        "validation.checkpoint_interval_secs",
        60,
        1,
        i64::from(u32::MAX),
        p,
    );
    Some(ValidationSettings {
        max_future_skew_secs: skew?,
        max_lateness_secs: late?,
        checkpoint_interval: Duration::from_secs(every? as u64),
    })
}

/// Name of the built-in coefficient table in `aggregation.coefficients`.
const BUILTIN_TABLE: &str = "gbt2589-2008";

/// `aggregation.electricity` as written.
#[derive(Clone, Copy, PartialEq)]
enum Method {
    Equivalent,
    EqualValue,
}

/// `[aggregation]`; absent, the defaults. A coefficient table file is
/// relative to the main file's directory `base`.
// Short names as in the other section checks (value, raw, defaults, problems).
#[allow(clippy::many_single_char_names)]
pub(super) fn aggregation(
    v: Option<Value>,
    base: &Path,
    p: &mut Problems,
) -> Option<AggregationSettings> {
    let Some(v) = v else {
        return Some(AggregationSettings::default());
    };
    let r = check::table::<AggregationRaw>(v, "aggregation", "a table ([aggregation])", p)?;
    let d = AggregationSettings::default();
    let windows = match r.windows {
        None => Some(d.aggregator.windows.clone()),
        Some(v) => windows(v, p),
    };
    let lateness = int(
        r.allowed_lateness_secs,
        "aggregation.allowed_lateness_secs",
        d.aggregator.allowed_lateness_secs,
        0,
        i64::from(u32::MAX),
        p,
    );
    let reorder = int(
        r.max_reorder_readings,
        "aggregation.max_reorder_readings",
        16,
        0,
        1024,
        p,
    );
    let gap = int(
        r.max_gap_secs,
        "aggregation.max_gap_secs",
        d.aggregator.max_gap_secs,
        1,
        i64::from(u32::MAX),
        p,
    );
    let coefficients = match r.coefficients {
        None => Some(d.coefficients.clone()),
        Some(Text(name)) => coefficient_table(&name, base, p),
    };
    let method = choice(
        r.electricity,
        "aggregation.electricity",
        "electricity method",
        &[
            ("equivalent", Method::Equivalent),
            ("equal_value", Method::EqualValue),
        ],
        Some(Method::Equivalent),
        p,
    );
    let table_key = "aggregation.equal_value_kgce_per_kwh";
    let electricity = match (method, r.equal_value_kgce_per_kwh) {
        (None, _) => None,
        (Some(Method::Equivalent), None) => Some(ElectricityMethod::Equivalent),
        (Some(Method::Equivalent), Some(_)) => {
            p.push(
                table_key,
                "only used with electricity = \"equal_value\"; remove it or set electricity = \"equal_value\"",
            );
            None
        }
        (Some(Method::EqualValue), None) => {
            p.push(
                table_key,
                "missing; with electricity = \"equal_value\" give the kgce per kWh of each year, e.g. \"2025\" = 0.2953",
            );
            None
        }
        (Some(Method::EqualValue), Some(v)) => {
            equal_value(v, table_key, p).map(|by_year| ElectricityMethod::EqualValue { by_year })
        }
    };
    let reference = match r.steam_reference_kj_per_kg {
        None => Some(d.steam_reference_kj_per_kg),
        Some(Float(x)) if x.is_finite() && (0.0..2000.0).contains(&x) => Some(x),
        Some(Float(x)) => {
            p.push(
                "aggregation.steam_reference_kj_per_kg",
                format!("{x} is not a reference enthalpy; give the enthalpy of the feed water or condensate in kJ/kg, 0 to 2000 (make-up water at 20 °C: 84.0)"),
            );
            None
        }
    };
    let mut margin = |v: Option<Float>, key: &str, default: f64, what: &str| match v {
        None => Some(default),
        Some(Float(x)) if x.is_finite() && (0.0..=50.0).contains(&x) => Some(x),
        Some(Float(x)) => {
            p.push(
                key,
                format!("{x} is not a margin; give {what} in K, 0 to 50 (default {default})"),
            );
            None
        }
    };
    let superheat = margin(
        r.steam_superheat_margin_k,
        "aggregation.steam_superheat_margin_k",
        d.steam_margins.superheat_margin_k,
        "how far above saturation a steam temperature means superheated steam",
    );
    let sensor = margin(
        r.steam_sensor_margin_k,
        "aggregation.steam_sensor_margin_k",
        d.steam_margins.sensor_margin_k,
        "how far below saturation a steam temperature is a sensor problem",
    );
    Some(AggregationSettings {
        aggregator: AggregatorSettings {
            windows: windows?,
            allowed_lateness_secs: lateness?,
            max_reorder_readings: usize::try_from(reorder?).ok()?,
            max_gap_secs: gap?,
        },
        gauge_stats: r.gauge_stats.is_none_or(|Flag(g)| g),
        coefficients: coefficients?,
        electricity: electricity?,
        steam_reference_kj_per_kg: reference?,
        steam_margins: SteamMargins {
            superheat_margin_k: superheat?,
            sensor_margin_k: sensor?,
        },
    })
}

/// `aggregation.windows`: an array of tags, or a comma-separated string
/// (what an environment override can give).
fn windows(v: Value, p: &mut Problems) -> Option<Vec<WindowSize>> {
    let key = "aggregation.windows";
    let valid = || {
        WindowSize::ALL
            .iter()
            .map(|w| w.as_tag())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items: Vec<(String, Option<String>)> = match v.kind {
        config::ValueKind::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at = format!("{key}[{i}]");
                if let config::ValueKind::String(s) = v.kind {
                    (at, Some(s))
                } else {
                    let found = check::kind_name(&v);
                    p.push(
                        at.clone(),
                        format!("expected a window tag such as \"15m\", found {found}"),
                    );
                    (at, None)
                }
            })
            .collect(),
        config::ValueKind::String(s) => s
            .split(',')
            .filter(|t| !t.trim().is_empty() || s.contains(','))
            .map(|t| (key.to_owned(), Some(t.trim().to_owned())))
            .collect(),
        _ => {
            let found = check::kind_name(&v);
            p.push(key, format!("expected an array of window tags such as [\"15m\", \"1h\", \"1d\"], found {found}"));
            return None;
        }
    };
    if items.is_empty() {
        // No windows: aggregation is off (readings only).
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (at, tag) in items {
        let Some(tag) = tag else {
            ok = false;
            continue;
        };
        match WindowSize::from_tag(&tag) {
            Some(w) if out.contains(&w) => {
                p.push(at, format!("\"{tag}\" is listed twice"));
                ok = false;
            }
            Some(w) => out.push(w),
            None => {
                p.push(at, format!("unknown window \"{tag}\"; valid: {}", valid()));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `aggregation.coefficients`: the built-in table, or a TOML file relative
/// to the main file's directory `base`.
fn coefficient_table(name: &str, base: &Path, p: &mut Problems) -> Option<CoefficientTable> {
    let key = "aggregation.coefficients";
    if name == BUILTIN_TABLE {
        return Some(CoefficientTable::builtin_2008());
    }
    let path = base.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(
                key,
                format!(
                    "cannot read \"{}\": {}; use \"{BUILTIN_TABLE}\" (built in) or the path of a coefficient table, relative to this file",
                    path.display(),
                    io_message(&e)
                ),
            );
            return None;
        }
    };
    let table = match CoefficientTable::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            p.push(
                key,
                format!(
                    "\"{}\" is not a valid coefficient table: {e}",
                    path.display()
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    for (i, row) in table.energy.iter().enumerate() {
        let bad = if !(row.kgce.is_finite() && row.kgce > 0.0) {
            Some(format!(
                "kgce {} of \"{}\" is not above 0",
                row.kgce, row.key
            ))
        } else if table.energy[..i].iter().any(|r| r.key == row.key) {
            Some(format!("key \"{}\" appears twice", row.key))
        } else {
            None
        };
        if let Some(why) = bad {
            p.push(key, format!("\"{}\": energy[{i}]: {why}", path.display()));
            ok = false;
        }
    }
    ok.then_some(table)
}

/// `[aggregation.equal_value_kgce_per_kwh]`: `"2025" = 0.2953`, ascending by year.
fn equal_value(v: Value, key: &str, p: &mut Problems) -> Option<Vec<(i16, f64)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of years (\"2025\" = 0.2953), found {found}"),
        );
        return None;
    };
    if map.is_empty() {
        p.push(
            key,
            "is empty; give the kgce per kWh of each year, e.g. \"2025\" = 0.2953",
        );
        return None;
    }
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (year, value) in rows {
        let at = format!("{key}.{year}");
        let y = year
            .parse::<i16>()
            .ok()
            .filter(|y| (1900..=2200).contains(y) && year.len() == 4);
        let Some(y) = y else {
            p.push(
                at,
                format!("\"{year}\" is not a year; use keys such as \"2025\""),
            );
            ok = false;
            continue;
        };
        let rate = value.clone().into_float().ok();
        match rate {
            Some(r) if r.is_finite() && r > 0.0 => out.push((y, r)),
            Some(r) => {
                p.push(
                    at,
                    format!("{r} is not a valid rate; give kgce per kWh, above 0"),
                );
                ok = false;
            }
            None => {
                let found = check::kind_name(&value);
                p.push(
                    at,
                    format!("expected kgce per kWh (a number), found {found}"),
                );
                ok = false;
            }
        }
    }
    out.sort_by_key(|(y, _)| *y);
    ok.then_some(out)
}
