//! The limit table (`config/coefficients/boiler-limits.toml`): efficiency
//! grades, exhaust-temperature and excess-air limits by fuel classes,
//! combustion, condensing and rated capacity, and the lookup of a boiler's
//! row. Re-exported by [`super`] (`tables::LimitTable`).
//!
//! Why a file of its own: the rows are selected by capacity ranges whose
//! ends the standards write as "≤ 20 t/h" or "below 0.7 MW", so a bound
//! carries whether it is inclusive, and the checks of a replacement file
//! (descending grades, one bound per end, a non-empty range) live with it.

use serde::Deserialize;

use super::{BoilerTable, Confidence, Place, TableError, duplicates};
use crate::pipeline::boiler::FuelKind;

/// The limit file as shipped.
const BUILTIN_LIMITS: &str = include_str!("../../../../config/coefficients/boiler-limits.toml");

/// Name of the limit table in error messages.
const LIMITS: &str = "boiler limit table";

/// Efficiency grades and monitoring limits that apply to one boiler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitRow {
    /// Efficiency of grades 1, 2 and 3 (3 = the limit value), %.
    pub eta_grades: [f64; 3],
    /// Highest allowed exhaust temperature, °C, when the table gives one.
    pub exhaust_c_max: Option<f64>,
    /// Highest allowed excess-air coefficient, when the table gives one.
    pub alpha_max: Option<f64>,
}

/// How the fuel is burned (`[[boilers]] combustion`), for the limit lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combustion {
    /// Grate firing (层状燃烧).
    Layered,
    /// Fluidised bed (流化床).
    FluidizedBed,
    /// Chamber firing: gas, oil, pulverised coal (室燃).
    Chamber,
}

impl Combustion {
    /// Name as written in configuration and the limit file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Combustion::Layered => "layered",
            Combustion::FluidizedBed => "fluidized_bed",
            Combustion::Chamber => "chamber",
        }
    }

    /// The combustion named `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Combustion> {
        match s {
            "layered" => Some(Combustion::Layered),
            "fluidized_bed" => Some(Combustion::FluidizedBed),
            "chamber" => Some(Combustion::Chamber),
            _ => None,
        }
    }

    /// The default when a boiler does not say: chamber for gas and oil,
    /// layered for solid fuels.
    #[must_use]
    pub fn default_for(kind: FuelKind) -> Combustion {
        match kind {
            FuelKind::Gas | FuelKind::Oil => Combustion::Chamber,
            FuelKind::Solid => Combustion::Layered,
        }
    }
}

/// One end of a capacity range, t/h.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityBound {
    /// The bound, t/h.
    pub t_h: f64,
    /// Whether a capacity equal to the bound is inside.
    pub inclusive: bool,
}

/// The rated capacities a limit row applies to; `None` ends are unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CapacityRange {
    /// `above_t_h` (exclusive) or `from_t_h` (inclusive).
    pub lower: Option<CapacityBound>,
    /// `up_to_t_h` (inclusive) or `below_t_h` (exclusive).
    pub upper: Option<CapacityBound>,
}

impl CapacityRange {
    /// True when `t_h` is inside.
    #[must_use]
    pub fn contains(&self, t_h: f64) -> bool {
        let above = self
            .lower
            .is_none_or(|b| t_h > b.t_h || (b.inclusive && t_h == b.t_h));
        let below = self
            .upper
            .is_none_or(|b| t_h < b.t_h || (b.inclusive && t_h == b.t_h));
        above && below
    }
}

/// One row of the limit table.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitEntry {
    /// Key used in `[[boilers]] limits`.
    pub key: String,
    /// Name for people.
    pub name: String,
    /// Fuel-class keys the row applies to.
    pub fuels: Vec<String>,
    /// Combustion it applies to; `None`: any.
    pub combustion: Option<Combustion>,
    /// Condensing or not; `None`: either.
    pub condensing: Option<bool>,
    /// Rated capacities, t/h (hot water: MW / [`super::MW_PER_T_H`]).
    pub capacity: CapacityRange,
    /// The grades and limits.
    pub row: LimitRow,
    /// Where the row comes from.
    pub source: String,
    /// How far it can be trusted.
    pub confidence: Confidence,
}

/// The limit table (`config/coefficients/boiler-limits.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitTable {
    /// What the file is and which edition.
    pub edition: String,
    /// The rows, in file order (the first match wins in [`LimitTable::select`]).
    pub rows: Vec<LimitEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitTable {
    edition: String,
    limits: Vec<RawLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    key: String,
    name: String,
    fuels: Vec<String>,
    combustion: Option<String>,
    condensing: Option<bool>,
    above_t_h: Option<f64>,
    from_t_h: Option<f64>,
    up_to_t_h: Option<f64>,
    below_t_h: Option<f64>,
    eta_grades: [f64; 3],
    exhaust_c_max: Option<f64>,
    alpha_max: Option<f64>,
    source: String,
    confidence: String,
}

impl LimitTable {
    /// The limit table shipped with emgate.
    #[must_use]
    pub fn builtin() -> LimitTable {
        // The shipped file is checked by a test; it always parses.
        LimitTable::from_toml(BUILTIN_LIMITS).unwrap_or_else(|e| panic!("built-in limits: {e}"))
    }

    /// Parses and checks a limit table.
    ///
    /// # Errors
    /// Not TOML or unknown keys ([`TableError::Parse`]); grades not
    /// descending or not positive, an exhaust limit not positive, an α limit
    /// not above 1, two lower or two upper capacity bounds, an empty range,
    /// an unknown combustion or confidence, no fuels ([`TableError::Invalid`]);
    /// a key twice ([`TableError::Duplicate`]).
    pub fn from_toml(text: &str) -> Result<LimitTable, TableError> {
        let raw: RawLimitTable = toml::from_str(text).map_err(|e| TableError::Parse {
            table: LIMITS,
            message: e.to_string(),
        })?;
        duplicates(
            LIMITS,
            "[[limits]]",
            raw.limits.iter().map(|l| l.key.as_str()),
        )?;
        let rows = raw
            .limits
            .iter()
            .enumerate()
            .map(|(i, l)| limit_entry(i, l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LimitTable {
            edition: raw.edition,
            rows,
        })
    }

    /// The row `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&LimitEntry> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The first row (file order) for a boiler burning `fuel_key` by
    /// `combustion`, condensing or not, of `rated_t_h` (see [`super::rated_t_h`]).
    #[must_use]
    pub fn select(
        &self,
        fuel_key: &str,
        combustion: Combustion,
        condensing: bool,
        rated_t_h: f64,
    ) -> Option<&LimitEntry> {
        self.rows.iter().find(|r| {
            r.fuels.iter().any(|f| f == fuel_key)
                && r.combustion.is_none_or(|c| c == combustion)
                && r.condensing.is_none_or(|c| c == condensing)
                && r.capacity.contains(rated_t_h)
        })
    }

    /// Checks that every fuel key of every row is a class of `coefficients`
    /// (the two files are replaced separately).
    ///
    /// # Errors
    /// The first row naming an unknown fuel class.
    pub fn check_fuels(&self, coefficients: &BoilerTable) -> Result<(), TableError> {
        for (i, r) in self.rows.iter().enumerate() {
            if let Some(f) = r.fuels.iter().find(|f| coefficients.fuel(f).is_none()) {
                return Err(Place::row(LIMITS, "[[limits]]", i, &r.key).err(format!(
                    "fuel \"{f}\" is not a class of {}; known: {}",
                    coefficients.edition,
                    coefficients.known_fuels()
                )));
            }
        }
        Ok(())
    }
}

/// One `[[limits]]` row, checked.
fn limit_entry(i: usize, l: &RawLimit) -> Result<LimitEntry, TableError> {
    let p = Place::row(LIMITS, "[[limits]]", i, &l.key);
    if l.key.trim().is_empty() {
        return Err(p.err("key must not be empty"));
    }
    if l.fuels.is_empty() {
        return Err(p.err("fuels must name at least one fuel class"));
    }
    let combustion = match l.combustion.as_deref() {
        None => None,
        Some(s) => Some(Combustion::parse(s).ok_or_else(|| {
            p.err(format!(
                "combustion \"{s}\" unknown; known: layered, fluidized_bed, chamber"
            ))
        })?),
    };
    let bound = |exclusive: Option<f64>, inclusive: Option<f64>, names: &str| match (
        exclusive, inclusive,
    ) {
        (Some(_), Some(_)) => Err(p.err(format!("give one of {names}, not both"))),
        (Some(t), None) => Ok(Some(CapacityBound {
            t_h: t,
            inclusive: false,
        })),
        (None, Some(t)) => Ok(Some(CapacityBound {
            t_h: t,
            inclusive: true,
        })),
        (None, None) => Ok(None),
    };
    let capacity = CapacityRange {
        lower: bound(l.above_t_h, l.from_t_h, "above_t_h and from_t_h")?,
        upper: bound(l.below_t_h, l.up_to_t_h, "below_t_h and up_to_t_h")?,
    };
    for b in [capacity.lower, capacity.upper].into_iter().flatten() {
        p.check("a capacity bound", b.t_h, b.t_h >= 0.0, ">= 0 t/h")?;
    }
    if let (Some(lo), Some(hi)) = (capacity.lower, capacity.upper)
        && (lo.t_h > hi.t_h || (lo.t_h == hi.t_h && !(lo.inclusive && hi.inclusive)))
    {
        return Err(p.err(format!(
            "the capacity range {} .. {} t/h is empty",
            lo.t_h, hi.t_h
        )));
    }
    let [g1, g2, g3] = l.eta_grades;
    for g in l.eta_grades {
        p.check("each of eta_grades", g, g > 0.0, "> 0 (%)")?;
    }
    if !(g1 >= g2 && g2 >= g3) {
        return Err(p.err(format!(
            "eta_grades must be [grade 1, grade 2, grade 3] descending, got [{g1}, {g2}, {g3}]"
        )));
    }
    if let Some(t) = l.exhaust_c_max {
        p.check("exhaust_c_max", t, t > 0.0, "> 0 (degC)")?;
    }
    if let Some(a) = l.alpha_max {
        p.check("alpha_max", a, a > 1.0, "> 1")?;
    }
    p.source(&l.source)?;
    Ok(LimitEntry {
        key: l.key.clone(),
        name: l.name.clone(),
        fuels: l.fuels.clone(),
        combustion,
        condensing: l.condensing,
        capacity,
        row: LimitRow {
            eta_grades: l.eta_grades,
            exhaust_c_max: l.exhaust_c_max,
            alpha_max: l.alpha_max,
        },
        source: l.source.clone(),
        confidence: p.confidence(&l.confidence)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: &str = r#"
edition = "test"
[[limits]]
key = "a"
name = "a"
fuels = ["gas"]
combustion = "chamber"
from_t_h = 1
below_t_h = 20
eta_grades = [96, 94, 92]
source = "s"
confidence = "P"
"#;

    fn limit_err(from: &str, to: &str) -> String {
        assert!(LIMIT.contains(from), "{from}");
        LimitTable::from_toml(&LIMIT.replacen(from, to, 1))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shipped_table_parses_and_knows_its_fuels() {
        LimitTable::builtin()
            .check_fuels(&BoilerTable::builtin())
            .unwrap();
        LimitTable::from_toml(LIMIT).unwrap();
    }

    #[test]
    fn limit_errors_name_the_row() {
        assert_eq!(
            limit_err("[96, 94, 92]", "[92, 94, 96]"),
            "boiler limit table: [[limits]] #1 \"a\": eta_grades must be [grade 1, grade 2, grade 3] descending, got [92, 94, 96]"
        );
        assert_eq!(
            limit_err("from_t_h = 1", "from_t_h = 1\nabove_t_h = 1"),
            "boiler limit table: [[limits]] #1 \"a\": give one of above_t_h and from_t_h, not both"
        );
        assert_eq!(
            limit_err("below_t_h = 20", "below_t_h = 1"),
            "boiler limit table: [[limits]] #1 \"a\": the capacity range 1 .. 1 t/h is empty"
        );
        assert_eq!(
            limit_err("combustion = \"chamber\"", "combustion = \"grate\""),
            "boiler limit table: [[limits]] #1 \"a\": combustion \"grate\" unknown; known: layered, fluidized_bed, chamber"
        );
        assert_eq!(
            limit_err("eta_grades", "alpha_max = 1.0\neta_grades"),
            "boiler limit table: [[limits]] #1 \"a\": alpha_max must be > 1, got 1"
        );
        let two = format!("{LIMIT}{}", &LIMIT[LIMIT.find("[[limits]]").unwrap()..]);
        assert_eq!(
            LimitTable::from_toml(&two).unwrap_err().to_string(),
            "boiler limit table: key \"a\" appears twice ([[limits]] #1 and #2)"
        );
        let coal =
            LimitTable::from_toml(&LIMIT.replace("[\"gas\"]", "[\"natural_gas\", \"coal\"]"))
                .unwrap();
        let e = coal
            .check_fuels(&BoilerTable::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "boiler limit table: [[limits]] #1 \"a\": fuel \"coal\" is not a class of emgate boiler coefficients"
            ),
            "{e}"
        );
        assert!(e.ends_with("known: natural_gas, lpg, fuel_oil, bituminous, anthracite, lean_coal, lignite, biomass"), "{e}");
    }

    #[test]
    fn capacity_bounds_are_inclusive_or_exclusive_as_named() {
        let t = LimitTable::from_toml(LIMIT).unwrap();
        let r = t.rows[0].capacity;
        assert!(!r.contains(0.999));
        assert!(r.contains(1.0));
        assert!(r.contains(19.999));
        assert!(!r.contains(20.0));
        assert_eq!(
            t.select("gas", Combustion::Chamber, false, 1.0)
                .map(|e| e.key.as_str()),
            Some("a")
        );
        assert!(t.select("gas", Combustion::Layered, false, 5.0).is_none());
        assert!(t.select("oil", Combustion::Chamber, false, 5.0).is_none());
        let open = CapacityRange::default();
        assert!(open.contains(0.0) && open.contains(1e9));
    }
}
