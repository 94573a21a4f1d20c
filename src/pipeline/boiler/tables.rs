//! The boiler data files: loss coefficients per fuel class and the q₅ table
//! (`config/coefficients/boiler.toml`), and efficiency / exhaust / excess-air
//! limits (`config/coefficients/boiler-limits.toml`), each row with its source
//! and confidence. Both ship built in; `[boiler] coefficients` and
//! `[boiler] limits` name replacements.
//!
//! Why data and not code: none of the standards behind these numbers
//! (GB/T 10180-2017, TSG 91-2021, GB 24500-2020) was available as text, so
//! every value is a public-code, secondary-page, computed or remembered
//! figure (`shared/reference/boiler.md`). A customer with the purchased
//! standard replaces a file, not the gateway. The files are checked here
//! (positive coefficients, ascending q₅ rows, known kinds, unique keys) with
//! messages that name the row to fix. The limit table and its lookup live in
//! the `limits` submodule, re-exported here.

use serde::Deserialize;

use super::{
    BoilerKind, BoilerSpec, DEFAULT_DISAGREEMENT_POINTS, DEFAULT_MIN_COVERAGE, FuelKind, OutputKind,
};

/// The coefficient file as shipped.
const BUILTIN_COEFFICIENTS: &str = include_str!("../../../config/coefficients/boiler.toml");

/// MW of heat per t/h of steam, the customary equivalence (hot-water boiler
/// capacities in MW are looked up in t/h tables with it).
pub const MW_PER_T_H: f64 = 0.7;

/// Name of the coefficient table in error messages.
const COEFFICIENTS: &str = "boiler coefficient table";

mod limits;

pub use limits::{CapacityBound, CapacityRange, Combustion, LimitEntry, LimitRow, LimitTable};

/// How far a row can be trusted (the marks of `shared/reference/boiler.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confidence {
    /// `V`: verified in a primary or clearly authoritative source.
    Verified,
    /// `P`: from public code or a secondary page.
    Public,
    /// `C`: computed from the research notes' formulas.
    Computed,
    /// `M`: from memory or textbooks, not found in a source: a placeholder.
    Memory,
}

impl Confidence {
    /// The mark as written in the files (`V`, `P`, `C`, `M`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Verified => "V",
            Confidence::Public => "P",
            Confidence::Computed => "C",
            Confidence::Memory => "M",
        }
    }

    /// The confidence marked `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Confidence> {
        match s {
            "V" => Some(Confidence::Verified),
            "P" => Some(Confidence::Public),
            "C" => Some(Confidence::Computed),
            "M" => Some(Confidence::Memory),
            _ => None,
        }
    }
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Source, with each value's mark.
    pub source: String,
    /// The weakest mark of the values it covers.
    pub confidence: Confidence,
}

/// One fuel class of the coefficient table.
#[derive(Debug, Clone, PartialEq)]
pub struct FuelClass {
    /// Key used in `[[boilers]] fuel`, e.g. `natural_gas`, `bituminous`.
    pub key: String,
    /// Name for people (Chinese and English).
    pub name: String,
    /// Gas, oil or solid.
    pub kind: FuelKind,
    /// q₂ coefficients m and n.
    pub q2_m: f64,
    /// q₂ coefficient n.
    pub q2_n: f64,
    /// q₃ coefficient k (q₃ = k·α·CO%).
    pub q3_k: f64,
    /// q₃ when CO is not measured, %.
    pub q3_default_pct: f64,
    /// β for RO₂ from O₂ and CO.
    pub beta: f64,
    /// Where the row comes from.
    pub source: String,
    /// The weakest mark of the row's values.
    pub confidence: Confidence,
}

impl FuelClass {
    /// Copies the class's fields into `spec`: `fuel_kind`, `q2_m`, `q2_n`,
    /// `q3_k`, `q3_default_pct` and `beta`. Nothing else is touched, so a
    /// site's `q3_pct` applied afterwards overrides the class default.
    pub fn apply(&self, spec: &mut BoilerSpec) {
        spec.fuel_kind = self.kind;
        spec.q2_m = self.q2_m;
        spec.q2_n = self.q2_n;
        spec.q3_k = self.q3_k;
        spec.q3_default_pct = self.q3_default_pct;
        spec.beta = self.beta;
    }
}

/// One row of the q₅ table: radiation loss at rated load by rated capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Q5Row {
    /// Rated capacity, t/h.
    pub rated_t_h: f64,
    /// q₅ at rated load, %.
    pub q5_pct: f64,
    /// Where the row comes from.
    pub source: String,
    /// How far it can be trusted.
    pub confidence: Confidence,
}

/// The coefficient table (`config/coefficients/boiler.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerTable {
    /// What the file is and which edition.
    pub edition: String,
    /// Heating value of carbon in q₄, kJ/kg.
    pub carbon_kj_per_kg: f64,
    /// Where `carbon_kj_per_kg` comes from.
    pub carbon: Provenance,
    /// Slag temperature for q₆ when the fuel record gives none, °C.
    pub slag_temperature_c: f64,
    /// Where `slag_temperature_c` comes from.
    pub slag: Provenance,
    /// The fuel classes, in file order.
    pub fuels: Vec<FuelClass>,
    /// q₅ at rated load by rated capacity, ascending.
    pub q5: Vec<Q5Row>,
}

/// Why a boiler table was refused, or a lookup failed. The file path is the
/// caller's to add (it knows which file it read).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    /// Not TOML, or keys of the wrong type or unknown (line and column in
    /// the message).
    #[error("{table}: {message}")]
    Parse {
        /// Which table.
        table: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A value of the file outside its range.
    #[error("{table}: {what}: {message}")]
    Invalid {
        /// Which table.
        table: &'static str,
        /// Which row or key, e.g. `[[fuels]] #3 "lignite"`.
        what: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Two rows with the same key.
    #[error("{table}: key \"{key}\" appears twice ({section} #{first} and #{second})")]
    Duplicate {
        /// Which table.
        table: &'static str,
        /// Section, e.g. `[[fuels]]`.
        section: &'static str,
        /// The key.
        key: String,
        /// 1-based position of the first row.
        first: usize,
        /// 1-based position of the second row.
        second: usize,
    },
    /// A fuel class key that the coefficient table does not have.
    #[error("no fuel class \"{key}\" in {edition}; known: {known}")]
    UnknownFuel {
        /// The key asked for.
        key: String,
        /// The coefficient table's edition.
        edition: String,
        /// Its keys.
        known: String,
    },
    /// The rated capacity cannot be looked up in the q₅ table.
    #[error("no q5 for a rated capacity of {rated_capacity}: not a positive number")]
    NoQ5 {
        /// The capacity given.
        rated_capacity: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoilerTable {
    edition: String,
    carbon: RawCarbon,
    slag: RawSlag,
    fuels: Vec<RawFuel>,
    q5: Vec<RawQ5>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCarbon {
    kj_per_kg: f64,
    source: String,
    confidence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlag {
    temperature_c: f64,
    source: String,
    confidence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFuel {
    key: String,
    name: String,
    kind: String,
    q2_m: f64,
    q2_n: f64,
    q3_k: f64,
    q3_default_pct: f64,
    beta: f64,
    source: String,
    confidence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQ5 {
    rated_t_h: f64,
    q5_pct: f64,
    source: String,
    confidence: String,
}

/// Builds [`TableError::Invalid`] errors for one place of one table.
struct Place {
    table: &'static str,
    what: String,
}

impl Place {
    fn row(table: &'static str, section: &str, index: usize, key: &str) -> Place {
        Place {
            table,
            what: format!("{section} #{} \"{key}\"", index + 1),
        }
    }

    fn err(&self, message: impl Into<String>) -> TableError {
        TableError::Invalid {
            table: self.table,
            what: self.what.clone(),
            message: message.into(),
        }
    }

    /// `value` (named `name`) must be finite and inside `ok`; `want` says
    /// what is allowed.
    fn check(&self, name: &str, value: f64, ok: bool, want: &str) -> Result<(), TableError> {
        if value.is_finite() && ok {
            Ok(())
        } else {
            Err(self.err(format!("{name} must be {want}, got {value}")))
        }
    }

    fn confidence(&self, s: &str) -> Result<Confidence, TableError> {
        Confidence::parse(s).ok_or_else(|| {
            self.err(format!(
                "confidence \"{s}\" unknown; known: V, P, C, M (boiler.md marks)"
            ))
        })
    }

    fn source(&self, s: &str) -> Result<(), TableError> {
        if s.trim().is_empty() {
            Err(self.err("source must say where the values come from"))
        } else {
            Ok(())
        }
    }
}

/// The first key seen twice, as an error.
fn duplicates<'a>(
    table: &'static str,
    section: &'static str,
    keys: impl Iterator<Item = &'a str>,
) -> Result<(), TableError> {
    let keys: Vec<&str> = keys.collect();
    for (second, key) in keys.iter().enumerate() {
        if let Some(first) = keys[..second].iter().position(|k| k == key) {
            return Err(TableError::Duplicate {
                table,
                section,
                key: (*key).to_owned(),
                first: first + 1,
                second: second + 1,
            });
        }
    }
    Ok(())
}

/// Rated capacity in t/h: steam as given, hot water (MW) over [`MW_PER_T_H`].
#[must_use]
pub fn rated_t_h(rated_capacity: f64, kind: BoilerKind) -> f64 {
    match kind {
        BoilerKind::Steam => rated_capacity,
        BoilerKind::HotWater => rated_capacity / MW_PER_T_H,
    }
}

impl BoilerTable {
    /// The coefficient table shipped with emgate.
    #[must_use]
    pub fn builtin() -> BoilerTable {
        // The shipped file is checked by a test; it always parses.
        BoilerTable::from_toml(BUILTIN_COEFFICIENTS)
            .unwrap_or_else(|e| panic!("built-in boiler table: {e}"))
    }

    /// Parses and checks a coefficient table.
    ///
    /// # Errors
    /// Not TOML or unknown keys ([`TableError::Parse`]); a value out of range,
    /// an unknown kind or confidence, q₅ rows not strictly ascending, no
    /// fuel class or no q₅ row ([`TableError::Invalid`]); a key twice
    /// ([`TableError::Duplicate`]).
    pub fn from_toml(text: &str) -> Result<BoilerTable, TableError> {
        let raw: RawBoilerTable = toml::from_str(text).map_err(|e| TableError::Parse {
            table: COEFFICIENTS,
            message: e.to_string(),
        })?;
        let top = |what: &str| Place {
            table: COEFFICIENTS,
            what: what.to_owned(),
        };
        let carbon = top("[carbon]");
        carbon.check(
            "kj_per_kg",
            raw.carbon.kj_per_kg,
            raw.carbon.kj_per_kg > 0.0,
            "> 0",
        )?;
        carbon.source(&raw.carbon.source)?;
        let slag = top("[slag]");
        let t = raw.slag.temperature_c;
        slag.check("temperature_c", t, t > 0.0, "> 0")?;
        slag.source(&raw.slag.source)?;
        if raw.fuels.is_empty() {
            return Err(top("[[fuels]]").err("at least one fuel class is needed"));
        }
        if raw.q5.is_empty() {
            return Err(top("[[q5]]").err("at least one row is needed"));
        }
        duplicates(
            COEFFICIENTS,
            "[[fuels]]",
            raw.fuels.iter().map(|f| f.key.as_str()),
        )?;
        let fuels = raw
            .fuels
            .iter()
            .enumerate()
            .map(|(i, f)| fuel_class(i, f))
            .collect::<Result<Vec<_>, _>>()?;
        let mut q5: Vec<Q5Row> = Vec::with_capacity(raw.q5.len());
        for (i, r) in raw.q5.iter().enumerate() {
            let p = Place {
                table: COEFFICIENTS,
                what: format!("[[q5]] #{}", i + 1),
            };
            p.check("rated_t_h", r.rated_t_h, r.rated_t_h > 0.0, "> 0")?;
            p.check(
                "q5_pct",
                r.q5_pct,
                r.q5_pct > 0.0 && r.q5_pct < 100.0,
                "> 0 and < 100",
            )?;
            if let Some(prev) = q5.last()
                && r.rated_t_h <= prev.rated_t_h
            {
                return Err(p.err(format!(
                    "rows must be strictly ascending by rated_t_h: {} follows {}",
                    r.rated_t_h, prev.rated_t_h
                )));
            }
            p.source(&r.source)?;
            q5.push(Q5Row {
                rated_t_h: r.rated_t_h,
                q5_pct: r.q5_pct,
                source: r.source.clone(),
                confidence: p.confidence(&r.confidence)?,
            });
        }
        Ok(BoilerTable {
            edition: raw.edition,
            carbon_kj_per_kg: raw.carbon.kj_per_kg,
            carbon: Provenance {
                confidence: carbon.confidence(&raw.carbon.confidence)?,
                source: raw.carbon.source,
            },
            slag_temperature_c: t,
            slag: Provenance {
                confidence: slag.confidence(&raw.slag.confidence)?,
                source: raw.slag.source,
            },
            fuels,
            q5,
        })
    }

    /// The fuel class `key`.
    #[must_use]
    pub fn fuel(&self, key: &str) -> Option<&FuelClass> {
        self.fuels.iter().find(|f| f.key == key)
    }

    /// The fuel-class keys, comma separated (for error messages).
    #[must_use]
    pub fn known_fuels(&self) -> String {
        self.fuels
            .iter()
            .map(|f| f.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// q₅ at rated load, %, for a boiler of `rated_capacity` (t/h for steam,
    /// MW for hot water, converted at [`MW_PER_T_H`]): linear between the
    /// table's rows, the end row's value beyond either end. `None` for a
    /// capacity that is not a positive number.
    #[must_use]
    pub fn q5_rated_pct(&self, rated_capacity: f64, kind: BoilerKind) -> Option<f64> {
        let t_h = rated_t_h(rated_capacity, kind);
        if !(t_h.is_finite() && t_h > 0.0) {
            return None;
        }
        let (first, last) = (self.q5.first()?, self.q5.last()?);
        if t_h <= first.rated_t_h {
            return Some(first.q5_pct);
        }
        if t_h >= last.rated_t_h {
            return Some(last.q5_pct);
        }
        self.q5.windows(2).find_map(|w| {
            let (a, b) = (&w[0], &w[1]);
            (t_h <= b.rated_t_h).then(|| {
                a.q5_pct + (b.q5_pct - a.q5_pct) * (t_h - a.rated_t_h) / (b.rated_t_h - a.rated_t_h)
            })
        })
    }

    /// A boiler's spec from this table: the fuel class's coefficients
    /// ([`FuelClass::apply`]), the carbon heating value, the default slag
    /// temperature and q₅ at rated load from the q₅ table; `limits` none,
    /// `disagreement_points` and `min_coverage` at their defaults. The
    /// configuration then applies the site's overrides (`q5_rated_pct`,
    /// `q3_pct`, `disagreement_points`, `[boiler] min_coverage`) and the
    /// limit row.
    ///
    /// # Errors
    /// An unknown fuel class, or a rated capacity that is not positive.
    pub fn spec(
        &self,
        fuel_key: &str,
        kind: BoilerKind,
        rated_capacity: f64,
        fuel_per_unit: f64,
        output: OutputKind,
    ) -> Result<BoilerSpec, TableError> {
        let class = self.fuel(fuel_key).ok_or_else(|| TableError::UnknownFuel {
            key: fuel_key.to_owned(),
            edition: self.edition.clone(),
            known: self.known_fuels(),
        })?;
        let q5_rated_pct = self
            .q5_rated_pct(rated_capacity, kind)
            .ok_or(TableError::NoQ5 { rated_capacity })?;
        let mut spec = BoilerSpec {
            kind,
            rated_capacity,
            fuel_kind: class.kind,
            fuel_per_unit,
            output,
            q2_m: 0.0,
            q2_n: 0.0,
            q3_k: 0.0,
            q3_default_pct: 0.0,
            beta: 0.0,
            carbon_kj_per_kg: self.carbon_kj_per_kg,
            slag_temperature_c: self.slag_temperature_c,
            q5_rated_pct,
            limits: None,
            disagreement_points: DEFAULT_DISAGREEMENT_POINTS,
            min_coverage: DEFAULT_MIN_COVERAGE,
        };
        class.apply(&mut spec);
        Ok(spec)
    }
}

/// One `[[fuels]]` row, checked.
fn fuel_class(i: usize, f: &RawFuel) -> Result<FuelClass, TableError> {
    let p = Place::row(COEFFICIENTS, "[[fuels]]", i, &f.key);
    if f.key.trim().is_empty() {
        return Err(p.err("key must not be empty"));
    }
    let kind = match f.kind.as_str() {
        "gas" => FuelKind::Gas,
        "oil" => FuelKind::Oil,
        "solid" => FuelKind::Solid,
        other => {
            return Err(p.err(format!("kind \"{other}\" unknown; known: gas, oil, solid")));
        }
    };
    p.check("q2_m", f.q2_m, f.q2_m > 0.0, "> 0")?;
    p.check("q2_n", f.q2_n, f.q2_n > 0.0, "> 0")?;
    p.check("q3_k", f.q3_k, f.q3_k > 0.0, "> 0")?;
    p.check(
        "q3_default_pct",
        f.q3_default_pct,
        (0.0..100.0).contains(&f.q3_default_pct),
        ">= 0 and < 100",
    )?;
    p.check("beta", f.beta, f.beta >= 0.0, ">= 0")?;
    p.source(&f.source)?;
    Ok(FuelClass {
        key: f.key.clone(),
        name: f.name.clone(),
        kind,
        q2_m: f.q2_m,
        q2_n: f.q2_n,
        q3_k: f.q3_k,
        q3_default_pct: f.q3_default_pct,
        beta: f.beta,
        source: f.source.clone(),
        confidence: p.confidence(&f.confidence)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
edition = "test"
[carbon]
kj_per_kg = 32866
source = "s"
confidence = "P"
[slag]
temperature_c = 600
source = "s"
confidence = "M"
[[fuels]]
key = "gas"
name = "gas"
kind = "gas"
q2_m = 0.5
q2_n = 3.5
q3_k = 3.2
q3_default_pct = 0.5
beta = 0.79
source = "s"
confidence = "C"
[[q5]]
rated_t_h = 1
q5_pct = 3
source = "s"
confidence = "M"
[[q5]]
rated_t_h = 2
q5_pct = 2
source = "s"
confidence = "M"
"#;

    fn table_err(from: &str, to: &str) -> String {
        assert!(TABLE.contains(from), "{from}");
        BoilerTable::from_toml(&TABLE.replacen(from, to, 1))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_shipped_table_parses() {
        assert_eq!(BoilerTable::builtin().fuels.len(), 8);
        BoilerTable::from_toml(TABLE).unwrap();
    }

    #[test]
    fn coefficient_errors_name_the_row() {
        assert_eq!(
            table_err("q2_m = 0.5", "q2_m = 0"),
            "boiler coefficient table: [[fuels]] #1 \"gas\": q2_m must be > 0, got 0"
        );
        assert_eq!(
            table_err("q3_k = 3.2", "q3_k = -1"),
            "boiler coefficient table: [[fuels]] #1 \"gas\": q3_k must be > 0, got -1"
        );
        assert_eq!(
            table_err("kind = \"gas\"", "kind = \"liquid\""),
            "boiler coefficient table: [[fuels]] #1 \"gas\": kind \"liquid\" unknown; known: gas, oil, solid"
        );
        assert_eq!(
            table_err("confidence = \"C\"", "confidence = \"X\""),
            "boiler coefficient table: [[fuels]] #1 \"gas\": confidence \"X\" unknown; known: V, P, C, M (boiler.md marks)"
        );
        assert_eq!(
            table_err("rated_t_h = 2", "rated_t_h = 1"),
            "boiler coefficient table: [[q5]] #2: rows must be strictly ascending by rated_t_h: 1 follows 1"
        );
        assert_eq!(
            table_err("q5_pct = 2", "q5_pct = 0"),
            "boiler coefficient table: [[q5]] #2: q5_pct must be > 0 and < 100, got 0"
        );
        assert_eq!(
            table_err("kj_per_kg = 32866", "kj_per_kg = 0"),
            "boiler coefficient table: [carbon]: kj_per_kg must be > 0, got 0"
        );
        assert_eq!(
            table_err(
                "source = \"s\"\nconfidence = \"C\"",
                "source = \" \"\nconfidence = \"C\""
            ),
            "boiler coefficient table: [[fuels]] #1 \"gas\": source must say where the values come from"
        );
        let dup = TABLE.replacen("[[q5]]", "[[fuels]]\nkey = \"gas\"\nname = \"g\"\nkind = \"gas\"\nq2_m = 1\nq2_n = 1\nq3_k = 1\nq3_default_pct = 0\nbeta = 0\nsource = \"s\"\nconfidence = \"P\"\n[[q5]]", 1);
        assert_eq!(
            BoilerTable::from_toml(&dup).unwrap_err().to_string(),
            "boiler coefficient table: key \"gas\" appears twice ([[fuels]] #1 and #2)"
        );
        let e = table_err("beta = 0.79", "beta = 0.79\nbeat = 1");
        assert!(e.starts_with("boiler coefficient table: "), "{e}");
        assert!(e.contains("unknown field `beat`"), "{e}");
    }
}
