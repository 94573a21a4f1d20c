//! `[[targets]]` in site files: a site's energy-saving targets as data, one
//! per year or five-year plan period (domain.md §6, "double control").
//!
//! Why: a total-consumption cap (tce, on the controlled total: feedstock
//! and renewable energy deducted) and an intensity target (kgce per unit of
//! product or of output value, as a decrease from a base year) differ per
//! enterprise and per year, so they are configuration, checked here with
//! every problem as `FILE: targets[i].key: message`. The item names that
//! manual entries and `intensity_item` share live here too ([`EntryItem`]),
//! so the configuration never depends on the entries module.

use std::collections::HashMap;

use config::Value;

use super::raw::TargetRaw;
use crate::check::{self, Float, Int, Problems, Text};
use crate::model::SiteId;

/// The items an entry can be for, as named in messages.
pub const ITEMS: &str = "output_t (or output_<unit>), output_value_10k_cny, value_added_10k_cny, meter_reading, \
     or a fuel lab analysis of a boiler (fuel_lhv_kj_per_kg, fuel_lhv_kj_per_m3, fuel_ash_pct, fuel_moisture_pct, \
     fuel_volatile_daf_pct, slag_share_pct, slag_combustible_pct, fly_ash_combustible_pct)";

/// Default `warn_yellow_pct`: below this completion rate a target is yellow.
pub const DEFAULT_WARN_YELLOW_PCT: f64 = 90.0;
/// Default `warn_orange_pct`: at or below this completion rate it is red.
pub const DEFAULT_WARN_ORANGE_PCT: f64 = 50.0;

/// What a manual entry is a value of (also the denominator of an intensity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryItem {
    /// `output_<unit>`: production output in `unit` (`output_t`: tonnes).
    Output(String),
    /// `output_value_10k_cny`: output value at comparable prices, 10 000 CNY.
    OutputValue,
    /// `value_added_10k_cny`: industrial value added, 10 000 CNY.
    ValueAdded,
    /// `meter_reading`: the counter of a configured meter, read by hand.
    MeterReading,
    /// A lab analysis of a boiler's fuel (one quantity per entry).
    FuelLab(FuelLab),
}

/// The quantities of a fuel lab analysis, as in `[[boilers.fuel_records]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuelLab {
    /// `fuel_lhv_kj_per_kg`: as-received net calorific value of a solid or liquid fuel.
    LhvPerKg,
    /// `fuel_lhv_kj_per_m3`: net calorific value of a gas.
    LhvPerM3,
    /// `fuel_ash_pct`: as-received ash A_ar, %.
    AshPct,
    /// `fuel_moisture_pct`: as-received moisture M_ar, %.
    MoisturePct,
    /// `fuel_volatile_daf_pct`: volatile matter, dry ash-free, %.
    VolatileDafPct,
    /// `slag_share_pct`: share of the ash leaving as slag, %.
    SlagSharePct,
    /// `slag_combustible_pct`: combustible content of the slag C_lz, %.
    SlagCombustiblePct,
    /// `fly_ash_combustible_pct`: combustible content of the fly ash C_fh, %.
    FlyAshCombustiblePct,
}

impl FuelLab {
    /// Every quantity with its item name.
    pub const ALL: [(FuelLab, &'static str); 8] = [
        (FuelLab::LhvPerKg, "fuel_lhv_kj_per_kg"),
        (FuelLab::LhvPerM3, "fuel_lhv_kj_per_m3"),
        (FuelLab::AshPct, "fuel_ash_pct"),
        (FuelLab::MoisturePct, "fuel_moisture_pct"),
        (FuelLab::VolatileDafPct, "fuel_volatile_daf_pct"),
        (FuelLab::SlagSharePct, "slag_share_pct"),
        (FuelLab::SlagCombustiblePct, "slag_combustible_pct"),
        (FuelLab::FlyAshCombustiblePct, "fly_ash_combustible_pct"),
    ];

    /// The unit of its values: `kj_per_kg`, `kj_per_m3` or `pct`.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            FuelLab::LhvPerKg => "kj_per_kg",
            FuelLab::LhvPerM3 => "kj_per_m3",
            _ => "pct",
        }
    }

    /// Plausible values, both ends included except where `upper_open`.
    /// Calorific values: from blast-furnace gas (about 3 000 kJ/m³) and
    /// coal gangue (about 5 000 kJ/kg) up to LPG and fuel oil.
    #[must_use]
    pub fn range(self) -> (f64, f64, bool) {
        match self {
            FuelLab::LhvPerKg => (4_000.0, 55_000.0, false),
            FuelLab::LhvPerM3 => (2_500.0, 120_000.0, false),
            FuelLab::SlagSharePct => (0.0, 100.0, false),
            _ => (0.0, 100.0, true),
        }
    }
}

impl EntryItem {
    /// Parses an item name; `None` for anything else.
    #[must_use]
    pub fn parse(name: &str) -> Option<EntryItem> {
        match name {
            "output_value_10k_cny" => Some(EntryItem::OutputValue),
            "value_added_10k_cny" => Some(EntryItem::ValueAdded),
            "meter_reading" => Some(EntryItem::MeterReading),
            _ => {
                if let Some((q, _)) = FuelLab::ALL.iter().find(|(_, n)| *n == name) {
                    return Some(EntryItem::FuelLab(*q));
                }
                let unit = name.strip_prefix("output_")?;
                is_unit(unit).then(|| EntryItem::Output(unit.to_owned()))
            }
        }
    }

    /// The unit the item's values are in; `None` for a meter reading
    /// (its meter's counter unit).
    #[must_use]
    pub fn unit(&self) -> Option<&str> {
        match self {
            EntryItem::Output(unit) => Some(unit),
            EntryItem::OutputValue | EntryItem::ValueAdded => Some("10k_cny"),
            EntryItem::MeterReading => None,
            EntryItem::FuelLab(q) => Some(q.unit()),
        }
    }
}

/// A unit name: lower-case ASCII letters, digits and `_`, not empty.
fn is_unit(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The span a target is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSpan {
    /// `year = 2026`.
    Year(i32),
    /// `period = "2021-2025"`: a five-year plan, both years included.
    Plan {
        /// First year.
        first: i32,
        /// Last year (first + 4).
        last: i32,
    },
}

impl TargetSpan {
    /// First and last year, both included.
    #[must_use]
    pub fn years(self) -> (i32, i32) {
        match self {
            TargetSpan::Year(y) => (y, y),
            TargetSpan::Plan { first, last } => (first, last),
        }
    }
}

/// An intensity target: kgce per unit of the denominator item, as a
/// decrease from the base year.
#[derive(Debug, Clone, PartialEq)]
pub struct IntensityTarget {
    /// `intensity_unit`, e.g. `kgce_per_t`.
    pub unit: String,
    /// `intensity_item`: the manual entry holding the denominator.
    pub item: EntryItem,
    /// `base_year`.
    pub base_year: i32,
    /// `base_intensity`, kgce per unit in the base year.
    pub base_intensity: f64,
    /// `annual_decrease_pct`: decrease per year, %.
    pub annual_decrease_pct: Option<f64>,
    /// `five_year_decrease_pct`: decrease over the plan period, % (plans only).
    pub five_year_decrease_pct: Option<f64>,
}

/// One `[[targets]]` element, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Site the target is for (the file's `[site]`).
    pub site: SiteId,
    /// `year` or `period`.
    pub span: TargetSpan,
    /// `cap_tce`: cap on the controlled total consumption, tce.
    pub cap_tce: Option<f64>,
    /// The intensity target, when configured.
    pub intensity: Option<IntensityTarget>,
    /// `warn_yellow_pct` (default 90): completion rate below which the
    /// level is yellow (at or above 100 it is green).
    pub warn_yellow_pct: f64,
    /// `warn_orange_pct` (default 50): at or below it the level is red.
    pub warn_orange_pct: f64,
}

/// Parses `"YYYY-YYYY"` spanning five years.
fn plan(text: &str) -> Option<(i32, i32)> {
    let (a, b) = text.split_once('-')?;
    let ok = |s: &str| s.len() == 4 && s.bytes().all(|c| c.is_ascii_digit());
    if !ok(a) || !ok(b) {
        return None;
    }
    let (first, last) = (a.parse().ok()?, b.parse().ok()?);
    (last == first + 4).then_some((first, last))
}

/// A number in `0 < x < 100`.
fn pct(v: Option<Float>, key: &str, p: &mut Problems) -> Option<f64> {
    let Float(x) = v?;
    if x.is_finite() && x > 0.0 && x < 100.0 {
        Some(x)
    } else {
        p.push(
            key,
            format!("{x} is out of range; use a percentage, 0 < x < 100"),
        );
        None
    }
}

/// A finite number > 0.
fn positive(v: Option<Float>, key: &str, what: &str, p: &mut Problems) -> Option<f64> {
    let Float(x) = v?;
    if x.is_finite() && x > 0.0 {
        Some(x)
    } else {
        p.push(key, format!("{x} is not a valid {what} > 0"));
        None
    }
}

/// A year in 2000..=2100.
fn year(v: Option<Int>, key: &str, p: &mut Problems) -> Option<i32> {
    let Int(y) = v?;
    if (2000..=2100).contains(&y) {
        i32::try_from(y).ok()
    } else {
        p.push(key, format!("{y} is not a plausible year; use 2000..=2100"));
        None
    }
}

/// The plan period among `spans` that `span` (a plan) overlaps, with its key.
fn overlapping(span: TargetSpan, spans: &[(TargetSpan, String)]) -> Option<&(TargetSpan, String)> {
    let (first, last) = span.years();
    spans.iter().find(|(other, _)| {
        let (other_first, other_last) = other.years();
        matches!(other, TargetSpan::Plan { .. }) && first <= other_last && other_first <= last
    })
}

/// Checks a site file's `[[targets]]` (`value`) for `site`; complete targets
/// are appended to `out`.
pub(super) fn site_targets(
    value: Value,
    site: SiteId,
    out: &mut Vec<TargetConfig>,
    p: &mut Problems,
) {
    let items = check::array(value, "targets", "an array of tables ([[targets]])", p);
    // First and last year of each valid span so far, with its key.
    let mut spans: Vec<(TargetSpan, String)> = Vec::new();
    let mut years: HashMap<i32, String> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("targets[{i}]");
        let k = |sub: &str| format!("{key}.{sub}");
        let Some(r) = check::table::<TargetRaw>(item, &key, "a table", p) else {
            continue;
        };
        let span = match (r.year, r.period.clone()) {
            (None, None) => {
                p.push(
                    &key,
                    "give `year` (e.g. 2026) or `period` (a five-year plan, e.g. \"2021-2025\")",
                );
                None
            }
            (Some(_), Some(_)) => {
                p.push(k("period"), "give either year or period, not both");
                None
            }
            (Some(y), None) => year(Some(y), &k("year"), p).map(TargetSpan::Year),
            (None, Some(Text(t))) => {
                if let Some((first, last)) = plan(&t) {
                    Some(TargetSpan::Plan { first, last })
                } else {
                    p.push(k("period"), format!("\"{t}\" is not a five-year plan period; write \"YYYY-YYYY\", the last year 4 after the first (e.g. \"2021-2025\")"));
                    None
                }
            }
        };
        if let Some(span) = span {
            let span_key = match span {
                TargetSpan::Year(_) => k("year"),
                TargetSpan::Plan { .. } => k("period"),
            };
            if let TargetSpan::Year(y) = span {
                if let Some(first) = years.get(&y) {
                    p.push(
                        &span_key,
                        format!("duplicate target for {y}; already {first}"),
                    );
                } else {
                    years.insert(y, key.clone());
                }
            } else if let Some((other, at)) = overlapping(span, &spans) {
                let (first, last) = other.years();
                p.push(
                    &span_key,
                    format!("overlaps the plan period {first}-{last} of {at}"),
                );
            }
            spans.push((span, key.clone()));
        }
        let cap_tce = positive(r.cap_tce, &k("cap_tce"), "cap; use tce", p);
        let intensity = intensity(&r, span, &key, p);
        let yellow = r
            .warn_yellow_pct
            .map_or(Some(DEFAULT_WARN_YELLOW_PCT), |Float(x)| {
                if x.is_finite() && x > 0.0 && x <= 100.0 {
                    Some(x)
                } else {
                    p.push(
                        k("warn_yellow_pct"),
                        format!("{x} is out of range; use a completion rate in %, 0 < x <= 100"),
                    );
                    None
                }
            });
        let orange = r.warn_orange_pct.map_or(Some(DEFAULT_WARN_ORANGE_PCT), |Float(x)| {
            if x.is_finite() && x > 0.0 && yellow.is_none_or(|y| x < y) {
                Some(x)
            } else {
                p.push(k("warn_orange_pct"), format!("{x} is out of range; use a completion rate in %, above 0 and below warn_yellow_pct ({})", yellow.unwrap_or(DEFAULT_WARN_YELLOW_PCT)));
                None
            }
        });
        let has_intensity_keys = r.intensity_unit.is_some()
            || r.intensity_item.is_some()
            || r.base_year.is_some()
            || r.base_intensity.is_some()
            || r.annual_decrease_pct.is_some()
            || r.five_year_decrease_pct.is_some();
        if r.cap_tce.is_none() && !has_intensity_keys {
            p.push(&key, "nothing to check; give cap_tce and/or an intensity target (intensity_unit, intensity_item, base_year, base_intensity and a decrease)");
        }
        if let (Some(span), Some(yellow), Some(orange)) = (span, yellow, orange)
            && (r.cap_tce.is_none() || cap_tce.is_some())
            && (!has_intensity_keys || intensity.is_some())
            && (r.cap_tce.is_some() || has_intensity_keys)
        {
            out.push(TargetConfig {
                site,
                span,
                cap_tce,
                intensity,
                warn_yellow_pct: yellow,
                warn_orange_pct: orange,
            });
        }
    }
}

/// The intensity keys of one target; `None` when absent or invalid (the
/// problems are recorded).
fn intensity(
    r: &TargetRaw,
    span: Option<TargetSpan>,
    key: &str,
    p: &mut Problems,
) -> Option<IntensityTarget> {
    let k = |sub: &str| format!("{key}.{sub}");
    let any = r.intensity_unit.is_some()
        || r.intensity_item.is_some()
        || r.base_year.is_some()
        || r.base_intensity.is_some()
        || r.annual_decrease_pct.is_some()
        || r.five_year_decrease_pct.is_some();
    if !any {
        return None;
    }
    let missing = "missing required key; an intensity target needs intensity_unit, intensity_item, base_year and base_intensity";
    let unit = match &r.intensity_unit {
        None => {
            p.push(k("intensity_unit"), missing);
            None
        }
        Some(Text(u)) => {
            let per = u.strip_prefix("kgce_per_").filter(|s| is_unit(s));
            if per.is_none() {
                p.push(k("intensity_unit"), format!("\"{u}\" is not an intensity unit; use kgce_per_t, kgce_per_10k_cny or kgce_per_<unit>"));
            }
            per.map(|per| (u.clone(), per.to_owned()))
        }
    };
    let item = match &r.intensity_item {
        None => {
            p.push(k("intensity_item"), missing);
            None
        }
        Some(Text(name)) => match EntryItem::parse(name) {
            Some(EntryItem::MeterReading | EntryItem::FuelLab(_)) | None => {
                p.push(k("intensity_item"), format!("unknown item \"{name}\"; use output_t (or output_<unit>), output_value_10k_cny or value_added_10k_cny"));
                None
            }
            Some(item) => Some((name.clone(), item)),
        },
    };
    if let (Some((u, per)), Some((name, item))) = (&unit, &item)
        && item.unit() != Some(per.as_str())
    {
        p.push(
            k("intensity_item"),
            format!(
                "{name} is in \"{}\" but {u} divides by \"{per}\"",
                item.unit().unwrap_or_default()
            ),
        );
    }
    let base_year = if r.base_year.is_none() {
        p.push(k("base_year"), missing);
        None
    } else {
        year(r.base_year, &k("base_year"), p)
    };
    if let (Some(b), Some(span)) = (base_year, span) {
        let (first, _) = span.years();
        if b >= first {
            p.push(
                k("base_year"),
                format!("{b} is not before the target's first year {first}"),
            );
        }
    }
    let base_intensity = if r.base_intensity.is_none() {
        p.push(k("base_intensity"), missing);
        None
    } else {
        positive(
            r.base_intensity,
            &k("base_intensity"),
            "intensity; use kgce per unit",
            p,
        )
    };
    let annual = pct(r.annual_decrease_pct, &k("annual_decrease_pct"), p);
    let five = pct(r.five_year_decrease_pct, &k("five_year_decrease_pct"), p);
    if r.five_year_decrease_pct.is_some() && matches!(span, Some(TargetSpan::Year(_))) {
        p.push(
            k("five_year_decrease_pct"),
            "only for a plan period (period = \"2021-2025\"); remove it",
        );
        return None;
    }
    if r.annual_decrease_pct.is_none() && r.five_year_decrease_pct.is_none() {
        p.push(
            key,
            "an intensity target needs annual_decrease_pct or five_year_decrease_pct",
        );
        return None;
    }
    let ((unit, per), (_, item)) = (unit?, item?);
    if item.unit() != Some(per.as_str()) {
        return None;
    }
    if base_year? >= span?.years().0 {
        return None;
    }
    Some(IntensityTarget {
        unit,
        item,
        base_year: base_year?,
        base_intensity: base_intensity?,
        annual_decrease_pct: if r.annual_decrease_pct.is_some() {
            Some(annual?)
        } else {
            None
        },
        five_year_decrease_pct: if r.five_year_decrease_pct.is_some() {
            Some(five?)
        } else {
            None
        },
    })
}
