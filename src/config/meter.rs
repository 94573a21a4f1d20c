//! A meter's extras: its validation record and its energy accounting.
//!
//! Why a file of its own: these keys are checked against the meter's
//! profile (point names, counters, units) and, for energy, against
//! `[aggregation]` (coefficient table, electricity method, steam
//! reference), and resolve into what the validator and the aggregator use
//! per meter: calibration, declared replacements, rule overrides, the
//! consumption counter, the role and the kgce conversion with its provenance.

use config::Value;

use super::raw::{CalibrationRaw, OverrideRaw, ReplacementRaw};
use super::{
    AggregationSettings, Calibration, DeclaredReplacement, ElectricityMethod, EndpointConfig,
    PointOverride,
};
use crate::check::{self, Float, Int, Problems, Text, choice, unknown_ref};
use crate::model::{EnergyType, SteamState};
use crate::pipeline::coefficients::kgce_per_m3_from_lhv;
use crate::pipeline::energy::{self, Conversion, EnergyRole};
use crate::profiles::dlt645::Address;
use crate::profiles::{PointKind, Profile};

/// A meter's validation extras: verification record, declared replacements
/// and per-point rule overrides. Point names are checked against `profile`
/// (when it is valid); dates are local to the site's time zone `tz`.
// Each key has its own "missing" message, which reads best as match arms.
#[allow(clippy::single_match_else)]
pub(super) fn meter_validation(
    calibration: Option<Value>,
    replacements: Option<Value>,
    rules: Option<Value>,
    key: &str,
    profile: Option<&Profile>,
    tz: &jiff::tz::TimeZone,
    p: &mut Problems,
) -> (
    Option<Calibration>,
    Vec<DeclaredReplacement>,
    Vec<(usize, PointOverride)>,
) {
    let k = |sub: &str| format!("{key}.{sub}");
    let point_of = |name: &str, at: &str, want_counter: bool, p: &mut Problems| -> Option<usize> {
        let prof = profile?;
        let Some(index) = prof.point_index(name) else {
            p.push(
                at,
                format!(
                    "unknown point \"{name}\" in profile \"{}\"; points: {}",
                    prof.id,
                    prof.points
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        };
        if want_counter && prof.points[index].kind != PointKind::Counter {
            p.push(
                at,
                format!("\"{name}\" is a gauge; replacements are recorded for counters"),
            );
            return None;
        }
        Some(index)
    };

    let calibration = calibration.and_then(|v| {
        let cal = check::table::<CalibrationRaw>(
            v,
            &k("calibration"),
            "a table ({ due = \"2026-06-30\", ... })",
            p,
        )?;
        let date = |t: Option<Text>, sub: &str, p: &mut Problems| -> Option<jiff::civil::Date> {
            let Text(s) = t?;
            match s.parse::<jiff::civil::Date>() {
                Ok(d) => Some(d),
                Err(_) => {
                    p.push(
                        k(&format!("calibration.{sub}")),
                        format!("\"{s}\" is not a date; write it as YYYY-MM-DD"),
                    );
                    None
                }
            }
        };
        let verified = date(cal.verified, "verified", p);
        let due_given = cal.due.is_some();
        let due = date(cal.due, "due", p);
        if !due_given {
            p.push(
                k("calibration.due"),
                "missing required key; give the date the next verification is due (YYYY-MM-DD)",
            );
        }
        let due = due?;
        if let Some(last) = verified
            && last > due
        {
            p.push(
                k("calibration.due"),
                format!("{due} is before the last verification ({last})"),
            );
        }
        let due_at = tz
            .to_timestamp(due.to_datetime(jiff::civil::Time::midnight()))
            .ok()?
            .as_second();
        Some(Calibration {
            serial: cal.serial.map(|Text(t)| t),
            accuracy_class: cal.accuracy_class.map(|Text(t)| t),
            verified,
            due,
            due_at,
        })
    });

    let mut declared = Vec::new();
    if let Some(v) = replacements {
        for (n, item) in check::array(v, &k("replacements"), "an array of tables", p)
            .into_iter()
            .enumerate()
        {
            let at_key = format!("{key}.replacements[{n}]");
            let Some(rec) = check::table::<ReplacementRaw>(
                item,
                &at_key,
                "a table ({ point, at, old_final, new_initial })",
                p,
            ) else {
                continue;
            };
            let point = match rec.point {
                Some(Text(name)) => point_of(&name, &format!("{at_key}.point"), true, p),
                None => {
                    p.push(
                        format!("{at_key}.point"),
                        "missing required key; name the counter point",
                    );
                    None
                }
            };
            let at = match rec.at {
                Some(Text(s)) => {
                    let parsed = s.parse::<jiff::Timestamp>().ok().or_else(|| {
                        s.parse::<jiff::civil::DateTime>()
                            .ok()
                            .and_then(|dt| tz.to_timestamp(dt).ok())
                    });
                    if parsed.is_none() {
                        p.push(format!("{at_key}.at"), format!("\"{s}\" is not a time; write 2026-03-01T10:00:00 (site time) or with an offset, 2026-03-01T10:00:00+08:00"));
                    }
                    parsed.map(jiff::Timestamp::as_second)
                }
                None => {
                    p.push(
                        format!("{at_key}.at"),
                        "missing required key; give the moment of the swap",
                    );
                    None
                }
            };
            let reading = |v: Option<Float>, sub: &str, p: &mut Problems| match v {
                Some(Float(x)) if x.is_finite() && x >= 0.0 => Some(x),
                Some(Float(x)) => {
                    p.push(
                        format!("{at_key}.{sub}"),
                        format!("{x} is not a meter reading; use a number >= 0"),
                    );
                    None
                }
                None => {
                    p.push(
                        format!("{at_key}.{sub}"),
                        "missing required key; give the reading from the replacement record",
                    );
                    None
                }
            };
            let old_final = reading(rec.old_final, "old_final", p);
            let new_initial = reading(rec.new_initial, "new_initial", p);
            if let (Some(point), Some(at), Some(old_final), Some(new_initial)) =
                (point, at, old_final, new_initial)
            {
                declared.push(DeclaredReplacement {
                    point,
                    at,
                    old_final,
                    new_initial,
                });
            }
        }
        declared.sort_by_key(|d| d.at);
    }

    let mut overrides = Vec::new();
    if let Some(v) = rules {
        let rules_key = k("rules");
        if let config::ValueKind::Table(map) = v.kind {
            let mut names: Vec<_> = map.into_iter().collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, value) in names {
                let at = format!("{rules_key}.{name}");
                let Some(rule) =
                    check::table::<OverrideRaw>(value, &at, "a table of rule overrides", p)
                else {
                    continue;
                };
                let Some(index) = point_of(&name, &at, false, p) else {
                    continue;
                };
                let num = |v: Option<Float>, sub: &str, p: &mut Problems| match v {
                    Some(Float(x)) if x.is_finite() => Some(x),
                    Some(Float(x)) => {
                        p.push(format!("{at}.{sub}"), format!("{x} is not a finite number"));
                        None
                    }
                    None => None,
                };
                let rule = PointOverride {
                    min: num(rule.min, "min", p),
                    max: num(rule.max, "max", p),
                    max_rate_per_hour: num(rule.max_rate_per_hour, "max_rate_per_hour", p),
                    spike_margin: num(rule.spike_margin, "spike_margin", p),
                    frozen_after: match rule.frozen_after {
                        None => None,
                        Some(Int(n)) if n >= 2 => u32::try_from(n).ok(),
                        Some(Int(n)) => {
                            p.push(
                                format!("{at}.frozen_after"),
                                format!("{n} is not a valid count; use 2 or more"),
                            );
                            None
                        }
                    },
                };
                overrides.push((index, rule));
            }
        } else {
            p.push(
                rules_key,
                "expected a table of tables ([meters.rules.<point>])",
            );
        }
    }
    (calibration, declared, overrides)
}

/// A meter's consumption counter (`Some(None)`: the profile has none), role,
/// and conversion with its provenance; see [`meter_energy`].
pub(super) type MeterEnergy = (
    Option<Option<usize>>,
    Option<EnergyRole>,
    Option<(Conversion, String)>,
);

/// A meter's keys about its energy accounting, as written.
pub(super) struct EnergyKeys {
    /// `consumption`: the counter point aggregated.
    pub(super) consumption: Option<Text>,
    /// `role`: how the energy counts in the site's balance.
    pub(super) role: Option<Text>,
    /// `coefficient`: a coefficient table key, or `"none"`.
    pub(super) coefficient: Option<Text>,
    /// `lhv_kj_per_m3`: measured net calorific value of natural gas.
    pub(super) lhv_kj_per_m3: Option<Float>,
    /// `steam_state`: how a steam meter's state is decided.
    pub(super) steam_state: Option<Text>,
    /// `steam_dryness`: dryness fraction of saturated steam.
    pub(super) steam_dryness: Option<Float>,
}

/// A meter's consumption counter (`Some(None)`: the profile has none), role,
/// and conversion with its provenance. `None` where a problem was recorded,
/// or where the conversion cannot be resolved because the energy type, the
/// profile or `[aggregation]` is broken (their problems are reported already).
// One decision table, easier to follow in one place.
#[allow(clippy::too_many_lines)]
pub(super) fn meter_energy(
    keys: EnergyKeys,
    key: &str,
    energy: Option<EnergyType>,
    profile: Option<&Profile>,
    aggregation: Option<&AggregationSettings>,
    p: &mut Problems,
) -> MeterEnergy {
    let k = |sub: &str| format!("{key}.{sub}");
    let role_options: Vec<(&str, EnergyRole)> =
        EnergyRole::ALL.iter().map(|r| (r.as_str(), *r)).collect();
    let role = choice(
        keys.role,
        &k("role"),
        "role",
        &role_options,
        Some(EnergyRole::Consumed),
        p,
    );
    let mut ok = true;
    let lhv = match keys.lhv_kj_per_m3 {
        None => None,
        Some(Float(x)) => {
            if energy.is_some_and(|e| e != EnergyType::NaturalGas) {
                p.push(k("lhv_kj_per_m3"), "only for natural_gas meters; remove it");
                ok = false;
            } else if !(x.is_finite() && x > 0.0) {
                p.push(
                    k("lhv_kj_per_m3"),
                    format!("{x} is not a calorific value; give the measured net calorific value in kJ/m3, above 0 (e.g. 35544)"),
                );
                ok = false;
            } else if keys.coefficient.is_some() {
                p.push(
                    k("lhv_kj_per_m3"),
                    "cannot be combined with `coefficient`; remove one of the two",
                );
                ok = false;
            }
            Some(x)
        }
    };
    let steam_given = keys.steam_state.is_some() || keys.steam_dryness.is_some();
    let (steam_state, steam_dryness) =
        check::steam_keys(keys.steam_state, keys.steam_dryness, key, p);
    if steam_given && energy.is_some_and(|e| e != EnergyType::Steam) {
        p.push(
            k(if steam_state.is_some() {
                "steam_state"
            } else {
                "steam_dryness"
            }),
            "only for steam meters; remove it",
        );
        ok = false;
    }
    let Some(prof) = profile else {
        return (None, role, None);
    };
    let counters = || {
        prof.points
            .iter()
            .filter(|x| x.kind == PointKind::Counter)
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let consumption = match keys.consumption {
        None => Some(prof.consumption),
        Some(Text(name)) => match prof.point_index(&name) {
            Some(i) if prof.points[i].kind == PointKind::Counter => Some(Some(i)),
            Some(_) => {
                p.push(
                    k("consumption"),
                    format!(
                        "\"{name}\" is a gauge; name a counter of profile \"{}\": {}",
                        prof.id,
                        counters()
                    ),
                );
                None
            }
            None => {
                p.push(
                    k("consumption"),
                    format!(
                        "unknown point \"{name}\" in profile \"{}\"; counters: {}",
                        prof.id,
                        counters()
                    ),
                );
                None
            }
        },
    };
    let (Some(energy), Some(agg), Some(counter)) = (energy, aggregation, consumption) else {
        return (consumption, role, None);
    };
    let coefficient = keys.coefficient.map(|Text(t)| t);
    let Some(c) = counter else {
        if coefficient.as_deref().is_some_and(|c| c != "none") || lhv.is_some() {
            p.push(
                k(if lhv.is_some() { "lhv_kj_per_m3" } else { "coefficient" }),
                format!("profile \"{}\" has no counter point, so there is nothing to convert; remove it", prof.id),
            );
            return (consumption, role, None);
        }
        return (consumption, role, Some((Conversion::None, String::new())));
    };
    if !ok {
        return (consumption, role, None);
    }
    let point = &prof.points[c];
    let (name, unit) = (point.name.as_str(), point.unit.as_str());
    let table = &agg.coefficients;
    let edition = table.edition.as_str();
    let mismatch = |row: &str| {
        format!(
            "none: counter {name} counts {unit}, which the default conversion of {energy} ({row}) cannot use; set `coefficient`"
        )
    };
    let counter_note = |factor: f64| {
        if (factor - 1.0).abs() < f64::EPSILON {
            format!("counter {name} in {unit}")
        } else {
            format!("counter {name} in {unit}, × {factor}")
        }
    };
    // A table row, converted to the counter's unit; `explicit` says whether
    // the row was named by the meter (`coefficient`) or is the default.
    // `Err(None)`: a problem was recorded; `Err(Some(note))`: the default row
    // does not fit the counter's unit, so the meter gets no kgce (a profile
    // used for another energy type is not an error) and `note` says why.
    let fixed = |row_key: &str,
                 explicit: bool,
                 p: &mut Problems|
     -> Result<(f64, String), Option<String>> {
        let Ok(row) = table.get(row_key) else {
            if explicit {
                let mut known: Vec<&str> = table.energy.iter().map(|r| r.key.as_str()).collect();
                known.push("none");
                let hint = check::suggest(row_key, known.iter().copied())
                    .map(|s| format!("did you mean \"{s}\"? "))
                    .unwrap_or_default();
                p.push(
                    k("coefficient"),
                    format!(
                        "unknown coefficient \"{row_key}\" in {edition}; {hint}known: {}",
                        known.join(", ")
                    ),
                );
            } else {
                p.push(
                    k("coefficient"),
                    format!("coefficient table \"{edition}\" has no \"{row_key}\" row for the default conversion of {energy}; add the row or set `coefficient`"),
                );
            }
            return Err(None);
        };
        let Some(factor) = energy::unit_factor(unit, &row.unit, energy) else {
            if explicit {
                p.push(
                    k("coefficient"),
                    format!("\"{row_key}\" is per {}, but counter \"{name}\" counts {unit}; choose a row in {unit} (or a convertible unit) or \"none\"", row.unit),
                );
                return Err(None);
            }
            return Err(Some(mismatch(&format!("\"{row_key}\", per {}", row.unit))));
        };
        Ok((
            row.kgce * factor,
            format!(
                "{edition} {row_key} {} kgce/{} ({})",
                row.kgce,
                row.unit,
                counter_note(factor)
            ),
        ))
    };
    let as_fixed = |r: Result<(f64, String), Option<String>>| match r {
        Ok((kgce_per_unit, source)) => Some((Conversion::Fixed { kgce_per_unit }, source)),
        Err(note) => note.map(|n| (Conversion::None, n)),
    };
    let conversion = match (coefficient.as_deref(), lhv) {
        (Some("none"), _) => Some((Conversion::None, "none (coefficient = \"none\")".to_owned())),
        (Some(row_key), _) => as_fixed(fixed(row_key, true, p)),
        (None, Some(lhv)) => {
            if let Some(factor) = energy::unit_factor(unit, "m3", energy) {
                let per_m3 = kgce_per_m3_from_lhv(lhv);
                Some((
                    Conversion::Fixed {
                        kgce_per_unit: per_m3 * factor,
                    },
                    format!(
                        "measured LHV {lhv} kJ/m3 / 29307.6 = {per_m3:.4} kgce/m3 ({})",
                        counter_note(factor)
                    ),
                ))
            } else {
                p.push(
                    k("lhv_kj_per_m3"),
                    format!("counter \"{name}\" counts {unit}, not m3 or nm3; a calorific value per m3 cannot convert it"),
                );
                None
            }
        }
        (None, None) => match energy {
            EnergyType::Electricity => match &agg.electricity {
                ElectricityMethod::Equivalent => {
                    as_fixed(fixed("electricity_equivalent", false, p))
                }
                ElectricityMethod::EqualValue { by_year } => {
                    if let Some(factor) = energy::unit_factor(unit, "kwh", energy) {
                        Some((
                            Conversion::EqualValue {
                                by_year: by_year.clone(),
                                unit_factor: factor,
                            },
                            format!(
                                "electricity by equal value per year ({})",
                                counter_note(factor)
                            ),
                        ))
                    } else {
                        Some((Conversion::None, mismatch("equal value, per kwh")))
                    }
                }
            },
            // Gas-field gas (1.2143) is the usual pipeline gas in China;
            // the oil-field row (1.3300) exists for the others.
            EnergyType::NaturalGas => as_fixed(fixed("natural_gas_gas_field", false, p)),
            EnergyType::Steam if matches!(unit, "gj" | "mj") => as_fixed(fixed("heat", false, p)),
            EnergyType::Steam => {
                let (fallback_kgce_per_unit, row) = match fixed("steam_low_pressure", false, p) {
                    Ok(f) => f,
                    Err(note) => return (consumption, role, note.map(|n| (Conversion::None, n))),
                };
                let Some(kg_per_unit) = energy::unit_factor(unit, "kg", energy) else {
                    let note = mismatch("enthalpy, per kg");
                    return (consumption, role, Some((Conversion::None, note)));
                };
                let reference = agg.steam_reference_kj_per_kg;
                let state = steam_state.or(prof.steam_state).unwrap_or_default();
                let dryness = steam_dryness.or(prof.steam_dryness).unwrap_or(1.0);
                let wet = if dryness < 1.0 {
                    format!(", dryness {dryness}")
                } else {
                    String::new()
                };
                let source = match (state, prof.pressure, prof.temperature) {
                    (SteamState::Saturated, Some(pi), _) => format!(
                        "IF97 enthalpy of saturated steam at {}{wet} over {reference} kJ/kg, 0.03412 kgce/MJ; fallback (estimated) {row}",
                        prof.points[pi].name
                    ),
                    (_, Some(pi), Some(ti)) => format!(
                        "IF97 enthalpy of {} and {} ({} state{wet}) over {reference} kJ/kg, 0.03412 kgce/MJ; fallback (estimated) {row}",
                        prof.points[pi].name,
                        prof.points[ti].name,
                        state.as_str()
                    ),
                    _ => format!(
                        "{row}; profile \"{}\" has no pressure and temperature gauges, so always estimated",
                        prof.id
                    ),
                };
                Some((
                    Conversion::Steam {
                        pressure: prof.pressure.unwrap_or(Conversion::NO_POINT),
                        temperature: prof.temperature.unwrap_or(Conversion::NO_POINT),
                        reference_kj_per_kg: reference,
                        kg_per_unit,
                        fallback_kgce_per_unit,
                        state,
                        dryness,
                        margins: agg.steam_margins,
                    },
                    source,
                ))
            }
            EnergyType::Heat => as_fixed(fixed("heat", false, p)),
            EnergyType::Coal => as_fixed(fixed("raw_coal", false, p)),
            EnergyType::Water => as_fixed(fixed("fresh_water", false, p)),
            EnergyType::CompressedAir => as_fixed(fixed("compressed_air", false, p)),
        },
    };
    (consumption, role, conversion)
}

/// A DL/T 645 meter's `endpoint` (index; a serial-framed one) and
/// `address` (12 digits), each checked; `unit_id` is an error here.
pub(super) fn dlt645_keys(
    endpoints: &[(String, Option<EndpointConfig>)],
    endpoint: Option<Text>,
    address: Option<Text>,
    unit_id_given: bool,
    key: &str,
    p: &mut Problems,
) -> (Option<usize>, Option<Address>) {
    let k = |sub: &str| format!("{key}.{sub}");
    if unit_id_given {
        p.push(
            k("unit_id"),
            "a DL/T 645 meter is addressed by `address` (12 digits from its nameplate), not `unit_id`; remove it",
        );
    }
    let endpoint = match endpoint {
        None => {
            p.push(
                k("endpoint"),
                "missing required key; give the id of one of the [[endpoints]]",
            );
            None
        }
        Some(Text(name)) => match endpoints.iter().position(|(id, _)| *id == name) {
            None => {
                let known = endpoints.iter().map(|(id, _)| id.as_str());
                p.push(k("endpoint"), unknown_ref("endpoint", &name, known));
                None
            }
            Some(idx) => {
                if let Some(Some(ep)) = endpoints.get(idx).map(|(_, e)| e)
                    && !ep.is_serial_framed()
                {
                    p.push(
                        k("endpoint"),
                        format!(
                            "endpoint \"{name}\" is Modbus TCP; a DL/T 645 meter needs a serial-framed one (transport = \"serial\", \"rtu_over_tcp\" or \"dtu\")"
                        ),
                    );
                    None
                } else {
                    Some(idx)
                }
            }
        },
    };
    let address = match address {
        None => {
            p.push(
                k("address"),
                "missing required key; give the meter's address, the 12 digits on its nameplate, e.g. \"123456789012\"",
            );
            None
        }
        Some(Text(a)) if a.trim() == "999999999999" => {
            p.push(
                k("address"),
                "999999999999 is the broadcast address (meters do not answer reads to it); give the meter's own 12 digits",
            );
            None
        }
        Some(Text(a)) => {
            let parsed = Address::from_nameplate(a.trim());
            if parsed.is_none() {
                p.push(
                    k("address"),
                    format!(
                        "\"{}\" is not a DL/T 645 address; write the 12 digits on the meter's nameplate, e.g. \"123456789012\" (pad with leading zeros)",
                        crate::check::shorten(&a)
                    ),
                );
            }
            parsed
        }
    };
    (endpoint, address)
}
