//! Manual entries: values no meter measures (production output, output
//! value, value added, readings of meters that are not connected, lab
//! analyses of a boiler's fuel), entered by a person and stored as
//! InfluxDB measurement `entry`.
//!
//! Why pure: `emgate enter` and `POST /api/entries` both validate against
//! the configuration and encode the same line here; only how the line
//! reaches the output differs. A correction is a new entry naming the one
//! it `supersedes`; both stay, and readers take the newest non-superseded
//! entry per (site, item, period; meter or boiler when given).
//!
//! A fuel lab analysis is one quantity per entry (`fuel_lhv_kj_per_kg`,
//! `fuel_ash_pct`, …) for one boiler (tag `boiler`) and one day: the audit
//! trail of what the lab reported. The running boiler stage computes with
//! the site file's `[[boilers.fuel_records]]`, which hold a whole analysis
//! with the date it is in force from; entries do not change it.

use std::fmt::Write as _;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _, ZonedDateTime as Zoned};
use serde::{Deserialize, Serialize};

pub use crate::config::targets::EntryItem as Item;
use crate::config::{Config, FuelLab};
use crate::pipeline::boiler::FuelKind;
use crate::sinks::lineproto::{LineBuilder, series_prefix};

/// Characters of an entry id (Crockford base32, ULID-like).
const ID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Longest `entered_by`, characters: a name, not a document.
pub const MAX_BY_CHARS: usize = 100;
/// Longest `reason`, characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// Length of an entry id: 10 characters of milliseconds, 16 of randomness.
pub const ID_LEN: usize = 26;

/// An entry as given (CLI arguments or the API's JSON body).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryInput {
    /// Site id.
    pub site: String,
    /// Item name (see [`crate::config::targets::ITEMS`]).
    pub item: String,
    /// Meter id; only with item `meter_reading`, and required there.
    #[serde(default)]
    pub meter: Option<String>,
    /// Boiler id; only with a fuel lab item, and required there.
    #[serde(default)]
    pub boiler: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, in the site's time zone.
    pub period: String,
    /// The value, finite and not negative.
    pub value: f64,
    /// Unit of the value; must be the item's.
    pub unit: String,
    /// Who enters it.
    #[serde(default)]
    pub entered_by: Option<String>,
    /// Why (required for a correction).
    #[serde(default)]
    pub reason: Option<String>,
    /// Id of the entry this one corrects.
    #[serde(default)]
    pub supersedes: Option<String>,
}

/// A validated entry, ready to encode; also the API's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Unique id (time + randomness).
    pub id: String,
    /// Site id (tag).
    pub site: String,
    /// Item name (tag).
    pub item: String,
    /// Meter id (tag) of a meter reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Boiler id (tag) of a fuel lab analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boiler: Option<String>,
    /// Period as given (tag), e.g. `2026-11`.
    pub period: String,
    /// Start of the period, RFC 3339 in the site's time zone.
    pub period_start: String,
    /// End of the period (exclusive), RFC 3339 in the site's time zone.
    pub period_end: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Who entered it.
    pub entered_by: String,
    /// Why ("" when none was given).
    pub reason: String,
    /// Id of the corrected entry, "" when none.
    pub supersedes: String,
    /// Time of entry, Unix seconds: the point's timestamp.
    pub time: i64,
}

/// Why an entry is refused; nothing is written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    /// The site is not configured.
    #[error("unknown site \"{site}\"; known: {known}")]
    UnknownSite {
        /// As given.
        site: String,
        /// Configured site ids.
        known: String,
    },
    /// Not an item name.
    #[error("unknown item \"{0}\"; use {items}", items = crate::config::targets::ITEMS)]
    UnknownItem(String),
    /// `meter_reading` without a meter.
    #[error("item meter_reading needs the id of the meter that was read (meter)")]
    MeterMissing,
    /// A meter given with another item.
    #[error("a meter is only given with item meter_reading, not {0}")]
    MeterNotForItem(String),
    /// The meter is not one of the site's.
    #[error("unknown meter \"{meter}\" in site \"{site}\"")]
    UnknownMeter {
        /// As given.
        meter: String,
        /// The entry's site.
        site: String,
    },
    /// A fuel lab item without a boiler.
    #[error("item {0} is a lab analysis of a boiler's fuel; give the boiler's id (boiler)")]
    BoilerMissing(String),
    /// A boiler given with an item that is not a fuel lab analysis.
    #[error("a boiler is only given with a fuel lab item, not {0}")]
    BoilerNotForItem(String),
    /// The boiler is not one of the site's.
    #[error("unknown boiler \"{boiler}\" in site \"{site}\"; known: {known}")]
    UnknownBoiler {
        /// As given.
        boiler: String,
        /// The entry's site.
        site: String,
        /// The site's boiler ids ("none" when it has none).
        known: String,
    },
    /// The analysis does not fit the boiler's fuel.
    #[error(
        "boiler \"{boiler}\" burns {fuel} ({kind}); {item} is not analysed for it, use {allowed}"
    )]
    NotForFuel {
        /// The boiler.
        boiler: String,
        /// Its fuel class key.
        fuel: String,
        /// `gas`, `liquid` or `solid`.
        kind: &'static str,
        /// The item.
        item: String,
        /// The items that fit.
        allowed: String,
    },
    /// A lab value outside the plausible range.
    #[error("value {value} is out of range for {item}; use {range}")]
    Range {
        /// As given.
        value: f64,
        /// The item.
        item: String,
        /// The range, e.g. `4000 to 55000 (kj_per_kg)`.
        range: String,
    },
    /// A lab analysis for more than a day.
    #[error(
        "period \"{0}\" is not a day; a lab analysis is for the day the sample was taken (YYYY-MM-DD)"
    )]
    NotADay(String),
    /// The meter has no consumption counter.
    #[error("meter \"{0}\" has no consumption counter to read")]
    NoCounter(String),
    /// The unit is not the item's.
    #[error("unit \"{unit}\" does not fit item {item}; use \"{expected}\"")]
    Unit {
        /// As given.
        unit: String,
        /// The item.
        item: String,
        /// The item's unit.
        expected: String,
    },
    /// NaN or infinite.
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
    /// Below zero.
    #[error("value {0} is negative; entries are amounts (>= 0)")]
    Negative(f64),
    /// Not `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    #[error(
        "period \"{0}\" is malformed; use YYYY (a year), YYYY-MM (a month) or YYYY-MM-DD (a day)"
    )]
    Period(String),
    /// The period has not started yet.
    #[error("period {period} is in the future (it starts {start})")]
    Future {
        /// As given.
        period: String,
        /// Its start, RFC 3339.
        start: String,
    },
    /// No `entered_by`.
    #[error("entered_by is missing; say who enters the value")]
    EnteredBy,
    /// A correction without a reason.
    #[error("a correction needs a reason; say why the entry it supersedes is wrong")]
    Reason,
    /// A free-text field longer than its limit.
    #[error("{key} is too long; at most {max} characters")]
    TooLong {
        /// `entered_by` or `reason`.
        key: &'static str,
        /// Its limit ([`MAX_BY_CHARS`], [`MAX_REASON_CHARS`]).
        max: usize,
    },
    /// `supersedes` is not an id.
    #[error("supersedes \"{0}\" is not an entry id (26 characters, as `emgate enter` printed it)")]
    Supersedes(String),
}

/// A period: its text and its bounds in the site's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// First instant.
    pub start: Zoned,
    /// First instant after it.
    pub end: Zoned,
}

/// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD` into its bounds in `tz`.
///
/// # Errors
/// [`EntryError::Period`] for anything else (or a date that does not exist).
pub fn period(text: &str, tz: &TimeZone) -> Result<Period, EntryError> {
    let bad = || EntryError::Period(text.to_owned());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = text.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if !parts.iter().all(|p| digits(p)) || !matches!(lens.as_slice(), [4] | [4, 2] | [4, 2, 2]) {
        return Err(bad());
    }
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<i8>().ok());
    let year: i16 = parts[0].parse().map_err(|_| bad())?;
    let (month, day) = (num(1).unwrap_or(1), num(2).unwrap_or(1));
    let first = Date::new(year, month, day).map_err(|_| bad())?;
    let next = match parts.len() {
        1 => first.checked_add(1.year()),
        2 => first.checked_add(1.month()),
        _ => first.checked_add(1.day()),
    }
    .map_err(|_| bad())?;
    let start = first.to_zoned_datetime(tz.clone()).map_err(|_| bad())?;
    let end = next.to_zoned_datetime(tz.clone()).map_err(|_| bad())?;
    Ok(Period { start, end })
}

/// RFC 3339 with the local offset, e.g. `2026-11-01T00:00:00+08:00`.
#[must_use]
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A new id: 10 base32 characters of `now_ms`, 16 of `random`'s low 80 bits.
#[must_use]
pub fn new_id(now_ms: u64, random: u128) -> String {
    let mut id = String::with_capacity(ID_LEN);
    for i in (0..10).rev() {
        id.push(char::from(ID_ALPHABET[((now_ms >> (5 * i)) & 31) as usize]));
    }
    for i in (0..16).rev() {
        id.push(char::from(ID_ALPHABET[((random >> (5 * i)) & 31) as usize]));
    }
    id
}

/// The milliseconds an id was made at; `None` when `id` is not an id.
#[must_use]
pub fn id_time_ms(id: &str) -> Option<u64> {
    if id.len() != ID_LEN {
        return None;
    }
    let mut ms: u64 = 0;
    for (i, b) in id.bytes().enumerate() {
        let v = ID_ALPHABET.iter().position(|&a| a == b)? as u64;
        if i < 10 {
            ms = (ms << 5) | v;
        }
    }
    Some(ms)
}

/// Validates `input` against `config` at `now`; `random` makes the id unique.
///
/// The entry's time is `now` in seconds (the output's precision), but at
/// least one second after the entry it supersedes, so a correction made
/// within the same second never replaces the point it corrects.
///
/// # Errors
/// The first problem found, see [`EntryError`].
pub fn validate(
    input: &EntryInput,
    config: &Config,
    now: Timestamp,
    random: u128,
) -> Result<Entry, EntryError> {
    let Some((site_index, site)) = config
        .sites
        .iter()
        .enumerate()
        .find(|(_, s)| s.id == input.site)
    else {
        let mut known = String::new();
        for (i, s) in config.sites.iter().enumerate() {
            let _ = write!(known, "{}{}", if i == 0 { "" } else { ", " }, s.id);
        }
        return Err(EntryError::UnknownSite {
            site: input.site.clone(),
            known,
        });
    };
    let item =
        Item::parse(&input.item).ok_or_else(|| EntryError::UnknownItem(input.item.clone()))?;
    let boiler = lab_boiler(&item, input, config, site_index, &site.id)?;
    let meter = match (&item, &input.meter) {
        (Item::MeterReading, None) => return Err(EntryError::MeterMissing),
        (Item::MeterReading, Some(m)) => Some(m.clone()),
        (_, Some(_)) => return Err(EntryError::MeterNotForItem(input.item.clone())),
        (_, None) => None,
    };
    let expected = if let Some(meter) = &meter {
        let found = config
            .meters
            .iter()
            .enumerate()
            .find(|(_, m)| m.id == *meter && m.site.index() == site_index);
        let Some((i, m)) = found else {
            return Err(EntryError::UnknownMeter {
                meter: meter.clone(),
                site: site.id.clone(),
            });
        };
        let id = crate::model::MeterId(u32::try_from(i).unwrap_or(u32::MAX));
        m.consumption
            .and_then(|p| config.profile_of(id).points.get(p))
            .map(|pt| pt.unit.clone())
            .ok_or_else(|| EntryError::NoCounter(meter.clone()))?
    } else {
        item.unit().unwrap_or_default().to_owned()
    };
    if input.unit != expected {
        return Err(EntryError::Unit {
            unit: input.unit.clone(),
            item: input.item.clone(),
            expected,
        });
    }
    if !input.value.is_finite() {
        return Err(EntryError::NotFinite(input.value));
    }
    if input.value < 0.0 {
        return Err(EntryError::Negative(input.value));
    }
    if let Item::FuelLab(q) = item {
        let (low, high, open) = q.range();
        if input.value < low || input.value > high || (open && input.value >= high) {
            let range = if open {
                format!("{low} <= x < {high} ({})", q.unit())
            } else {
                format!("{low} to {high} ({})", q.unit())
            };
            return Err(EntryError::Range {
                value: input.value,
                item: input.item.clone(),
                range,
            });
        }
    }
    let p = period(&input.period, &site.timezone)?;
    if boiler.is_some() && input.period.len() != "YYYY-MM-DD".len() {
        return Err(EntryError::NotADay(input.period.clone()));
    }
    if p.start.timestamp() > now {
        return Err(EntryError::Future {
            period: input.period.clone(),
            start: rfc3339(&p.start),
        });
    }
    let entered_by = input
        .entered_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(EntryError::EnteredBy)?
        .to_owned();
    let reason = input
        .reason
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    for (key, text, max) in [
        ("entered_by", entered_by.as_str(), MAX_BY_CHARS),
        ("reason", reason.as_str(), MAX_REASON_CHARS),
    ] {
        if text.chars().count() > max {
            return Err(EntryError::TooLong { key, max });
        }
    }
    let supersedes = input
        .supersedes
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let mut time = now.as_second();
    if !supersedes.is_empty() {
        let ms =
            id_time_ms(&supersedes).ok_or_else(|| EntryError::Supersedes(supersedes.clone()))?;
        if reason.is_empty() {
            return Err(EntryError::Reason);
        }
        time = time.max(i64::try_from(ms / 1000).unwrap_or(i64::MAX - 1) + 1);
    }
    let now_ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
    Ok(Entry {
        id: new_id(now_ms, random),
        site: site.id.clone(),
        item: input.item.clone(),
        meter,
        boiler,
        period: input.period.clone(),
        period_start: rfc3339(&p.start),
        period_end: rfc3339(&p.end),
        value: input.value,
        unit: input.unit.clone(),
        entered_by,
        reason,
        supersedes,
        time,
    })
}

/// The boiler of a fuel lab item (checked: one of the site's, its fuel
/// fitting the item), `None` for the other items.
fn lab_boiler(
    item: &Item,
    input: &EntryInput,
    config: &Config,
    site_index: usize,
    site: &str,
) -> Result<Option<String>, EntryError> {
    let q = match (item, &input.boiler) {
        (Item::FuelLab(_), None) => return Err(EntryError::BoilerMissing(input.item.clone())),
        (Item::FuelLab(q), Some(_)) => *q,
        (_, Some(_)) => return Err(EntryError::BoilerNotForItem(input.item.clone())),
        (_, None) => return Ok(None),
    };
    let id = input.boiler.as_deref().unwrap_or_default();
    let of_site = || {
        config
            .boilers
            .iter()
            .filter(|b| b.site.index() == site_index)
    };
    let Some(b) = of_site().find(|b| b.id == id) else {
        let known: Vec<&str> = of_site().map(|b| b.id.as_str()).collect();
        return Err(EntryError::UnknownBoiler {
            boiler: id.to_owned(),
            site: site.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    };
    let (kind, allowed): (&'static str, &[FuelLab]) = match b.spec.fuel_kind {
        FuelKind::Gas => ("gas", &[FuelLab::LhvPerM3]),
        FuelKind::Oil => (
            "liquid",
            &[FuelLab::LhvPerKg, FuelLab::AshPct, FuelLab::MoisturePct],
        ),
        FuelKind::Solid => (
            "solid",
            &[
                FuelLab::LhvPerKg,
                FuelLab::AshPct,
                FuelLab::MoisturePct,
                FuelLab::VolatileDafPct,
                FuelLab::SlagSharePct,
                FuelLab::SlagCombustiblePct,
                FuelLab::FlyAshCombustiblePct,
            ],
        ),
    };
    if !allowed.contains(&q) {
        let names: Vec<&str> = FuelLab::ALL
            .iter()
            .filter(|(a, _)| allowed.contains(a))
            .map(|(_, n)| *n)
            .collect();
        return Err(EntryError::NotForFuel {
            boiler: id.to_owned(),
            fuel: b.fuel.clone(),
            kind,
            item: input.item.clone(),
            allowed: names.join(", "),
        });
    }
    Ok(Some(id.to_owned()))
}

impl Entry {
    /// Appends the entry's line (measurement `entry`, timestamp in seconds).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let prefix = series_prefix(
            "entry",
            &[
                ("site", &self.site),
                ("item", &self.item),
                ("meter", self.meter.as_deref().unwrap_or_default()),
                ("boiler", self.boiler.as_deref().unwrap_or_default()),
                ("period", &self.period),
            ],
        );
        let mut line = LineBuilder::new(out, &prefix);
        line.f64(b"value", self.value)
            .string(b"unit", &self.unit)
            .string(b"period_start", &self.period_start)
            .string(b"period_end", &self.period_end)
            .string(b"entered_by", &self.entered_by)
            .string(b"reason", &self.reason)
            .string(b"id", &self.id)
            .string(b"supersedes", &self.supersedes);
        line.finish(self.time);
    }
}

pub mod write;

#[cfg(test)]
mod tests;
