//! The boiler data files: loss coefficients per fuel class and the q₅ table
//! (`config/coefficients/boiler.toml`), and efficiency / exhaust / excess-air
//! limits (`config/coefficients/boiler-limits.toml`), each row with its source
//! and confidence. Both ship built in; `[boiler] coefficients` and
//! `[boiler] limits` name replacements.

use super::FuelKind;

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

/// One fuel class of the coefficient table.
#[derive(Debug, Clone, PartialEq)]
pub struct FuelClass {
    /// Key used in `[[boilers]] fuel`, e.g. `natural_gas`, `bituminous`.
    pub key: String,
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
}

// TEMPORARY stand-in (branch bstage) with the API of helper "bcalc"'s
// tables.rs at bcalc 1d6962f; replaced by bcalc's file when main is merged.

/// MW of heat per t/h of steam.
pub const MW_PER_T_H: f64 = 0.7;

/// How far a row can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confidence {
    /// `P`.
    Public,
}

impl Confidence {
    /// The mark.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        "P"
    }
}

/// How the fuel is burned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combustion {
    /// Grate firing.
    Layered,
    /// Fluidised bed.
    FluidizedBed,
    /// Chamber firing.
    Chamber,
}

impl Combustion {
    /// Name as written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Combustion::Layered => "layered",
            Combustion::FluidizedBed => "fluidized_bed",
            Combustion::Chamber => "chamber",
        }
    }

    /// The default for a fuel kind.
    #[must_use]
    pub fn default_for(kind: FuelKind) -> Combustion {
        match kind {
            FuelKind::Gas | FuelKind::Oil => Combustion::Chamber,
            FuelKind::Solid => Combustion::Layered,
        }
    }
}

/// Rated capacity in t/h.
#[must_use]
pub fn rated_t_h(rated_capacity: f64, kind: super::BoilerKind) -> f64 {
    match kind {
        super::BoilerKind::Steam => rated_capacity,
        super::BoilerKind::HotWater => rated_capacity / MW_PER_T_H,
    }
}

/// Why a table file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TableError(pub String);

/// One row of the q5 table.
#[derive(Debug, Clone, PartialEq)]
pub struct Q5Row {
    /// Rated capacity, t/h.
    pub rated_t_h: f64,
    /// q5 at rated load, %.
    pub q5_pct: f64,
}

/// The boiler coefficient table.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerTable {
    /// Edition text.
    pub edition: String,
    /// Fuel classes.
    pub fuels: Vec<FuelClass>,
    /// q5 rows, ascending.
    pub q5: Vec<Q5Row>,
    /// Default slag temperature, °C.
    pub slag_temperature_c: f64,
    /// Heating value of carbon, kJ/kg.
    pub carbon_kj_per_kg: f64,
}

impl BoilerTable {
    /// The built-in table.
    #[must_use]
    pub fn builtin() -> BoilerTable {
        let class = |key: &str, kind| FuelClass {
            key: key.to_owned(),
            kind,
            q2_m: 0.5,
            q2_n: 3.5,
            q3_k: 3.2,
            q3_default_pct: 0.5,
            beta: 0.1,
            source: "stand-in".to_owned(),
        };
        BoilerTable {
            edition: "stand-in".to_owned(),
            fuels: vec![
                class("natural_gas", FuelKind::Gas),
                class("fuel_oil", FuelKind::Oil),
                class("bituminous", FuelKind::Solid),
            ],
            q5: vec![Q5Row {
                rated_t_h: 10.0,
                q5_pct: 1.7,
            }],
            slag_temperature_c: 600.0,
            carbon_kj_per_kg: 32_866.0,
        }
    }

    /// A table from TOML text.
    ///
    /// # Errors
    /// Never in the stand-in.
    pub fn from_toml(_text: &str) -> Result<BoilerTable, TableError> {
        Ok(BoilerTable::builtin())
    }

    /// The fuel class `key`.
    #[must_use]
    pub fn fuel(&self, key: &str) -> Option<&FuelClass> {
        self.fuels.iter().find(|f| f.key == key)
    }

    /// q5 at rated load.
    #[must_use]
    pub fn q5_rated_pct(&self, rated_capacity: f64, kind: super::BoilerKind) -> Option<f64> {
        let t_h = rated_t_h(rated_capacity, kind);
        (t_h > 0.0).then(|| self.q5[0].q5_pct)
    }
}

/// One row of the limit table.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitEntry {
    /// Row key.
    pub key: String,
    /// Fuel classes it applies to.
    pub fuels: Vec<String>,
    /// Combustion type.
    pub combustion: Option<Combustion>,
    /// Condensing gas boilers, when the row says.
    pub condensing: Option<bool>,
    /// The limits.
    pub row: LimitRow,
    /// Source.
    pub source: String,
    /// Confidence.
    pub confidence: Confidence,
}

/// The limit table.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitTable {
    /// Edition text.
    pub edition: String,
    /// Rows.
    pub rows: Vec<LimitEntry>,
}

impl LimitTable {
    /// The built-in table.
    #[must_use]
    pub fn builtin() -> LimitTable {
        LimitTable {
            edition: "stand-in".to_owned(),
            rows: vec![LimitEntry {
                key: "gb24500_2020_gas_non_condensing".to_owned(),
                fuels: vec!["natural_gas".to_owned()],
                combustion: Some(Combustion::Chamber),
                condensing: Some(false),
                row: LimitRow {
                    eta_grades: [96.0, 94.0, 92.0],
                    exhaust_c_max: None,
                    alpha_max: None,
                },
                source: "GB 24500-2020 table 4".to_owned(),
                confidence: Confidence::Public,
            }],
        }
    }

    /// A table from TOML text.
    ///
    /// # Errors
    /// Never in the stand-in.
    pub fn from_toml(_text: &str) -> Result<LimitTable, TableError> {
        Ok(LimitTable::builtin())
    }

    /// The row `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&LimitEntry> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The row for a boiler.
    #[must_use]
    pub fn select(
        &self,
        fuel_key: &str,
        combustion: Combustion,
        condensing: bool,
        _rated_t_h: f64,
    ) -> Option<&LimitEntry> {
        self.rows.iter().find(|r| {
            r.fuels.iter().any(|f| f == fuel_key)
                && r.combustion.is_none_or(|c| c == combustion)
                && r.condensing.is_none_or(|c| c == condensing)
        })
    }

    /// Every fuel of every row is a class of `coefficients`.
    ///
    /// # Errors
    /// Never in the stand-in.
    pub fn check_fuels(&self, _coefficients: &BoilerTable) -> Result<(), TableError> {
        Ok(())
    }
}
