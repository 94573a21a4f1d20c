//! Standard-coal coefficients (GB/T 2589): physical quantities to kilograms
//! of standard coal equivalent (kgce).
//!
//! The table is data (`config/coefficients/*.toml`), versioned by edition, so
//! the 2020 edition or a local standard replaces it without code. The 2008
//! table ships built in. Two conversions are parameters rather than table rows:
//! * electricity by **equal value** (等价值): the kgce per kWh of power
//!   generation for the year, set per installation ([`Electricity::EqualValue`]);
//! * natural gas by **measured calorific value**, which the standard prefers
//!   to the table ([`kgce_per_m3_from_lhv`]).
//!
//! Steam and hot water are best converted by their heat content (enthalpy ×
//! mass, then [`KGCE_PER_MJ`]); the aggregation stage does that. The fixed
//! low-pressure steam row is only a fallback.
//!
//! Not wired into the gateway yet: aggregation (issue 5) uses it.

use serde::Deserialize;

/// Net calorific value of 1 kgce: 7000 kcal × 4.1868 kJ/kcal.
pub const KJ_PER_KGCE: f64 = 29_307.6;

/// Heat, equivalent value: 1 MJ = 1000 / 29 307.6 kgce, as the table rounds it.
pub const KGCE_PER_MJ: f64 = 0.034_12;

/// The GB/T 2589-2008 table as shipped.
const BUILTIN_2008: &str = include_str!("../../config/coefficients/gbt2589-2008.toml");

/// One row of a coefficient table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coefficient {
    /// Stable key used in configuration, e.g. `natural_gas_gas_field`.
    pub key: String,
    /// Name as the standard gives it.
    pub name: String,
    /// Unit of the physical quantity: `kg`, `t`, `m3`, `kwh`, `mj`, `gj`.
    pub unit: String,
    /// kgce per unit.
    pub kgce: f64,
    /// Average net calorific value, kJ per unit, where the table gives one.
    #[serde(default)]
    pub lhv_kj: Option<f64>,
}

/// A versioned coefficient table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoefficientTable {
    /// Which standard and edition, e.g. `GB/T 2589-2008`.
    pub edition: String,
    /// The rows.
    pub energy: Vec<Coefficient>,
}

/// Why a table or a conversion failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoefficientError {
    /// The table's TOML does not parse or has unknown keys.
    #[error("coefficient table: {0}")]
    Parse(String),
    /// No row with that key.
    #[error("no coefficient \"{key}\" in {edition}; known: {known}")]
    Unknown {
        /// Requested key.
        key: String,
        /// Table edition.
        edition: String,
        /// Keys of the table.
        known: String,
    },
    /// The amount's unit cannot be converted to the row's unit.
    #[error("cannot convert {from} to {to} for \"{key}\"")]
    Unit {
        /// Row key.
        key: String,
        /// Unit of the amount.
        from: String,
        /// Unit of the row.
        to: String,
    },
}

/// How electricity is converted (chosen per installation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Electricity {
    /// Equivalent value (当量值): 3.6 MJ/kWh, 0.1229 kgce/kWh.
    Equivalent,
    /// Equal value (等价值): the year's generation coal rate, kgce/kWh.
    EqualValue(f64),
}

impl CoefficientTable {
    /// Parses a table from its TOML text.
    ///
    /// # Errors
    /// When the text is not a valid table.
    pub fn parse(text: &str) -> Result<CoefficientTable, CoefficientError> {
        toml::from_str(text).map_err(|e| CoefficientError::Parse(e.to_string()))
    }

    /// The GB/T 2589-2008 table shipped with emgate.
    #[must_use]
    pub fn builtin_2008() -> CoefficientTable {
        // The shipped file is checked by a test; it always parses.
        CoefficientTable::parse(BUILTIN_2008).unwrap_or_else(|e| panic!("built-in table: {e}"))
    }

    /// The row with key `key`.
    ///
    /// # Errors
    /// When no row has that key.
    pub fn get(&self, key: &str) -> Result<&Coefficient, CoefficientError> {
        self.energy
            .iter()
            .find(|c| c.key == key)
            .ok_or_else(|| CoefficientError::Unknown {
                key: key.to_owned(),
                edition: self.edition.clone(),
                known: self
                    .energy
                    .iter()
                    .map(|c| c.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// kgce of `amount` in `unit` of the energy `key`, converting between
    /// kg and t, and between MJ and GJ, where the row's unit differs.
    ///
    /// # Errors
    /// An unknown key, or units that do not convert.
    pub fn kgce(&self, key: &str, amount: f64, unit: &str) -> Result<f64, CoefficientError> {
        let c = self.get(key)?;
        let factor = unit_factor(unit, &c.unit).ok_or_else(|| CoefficientError::Unit {
            key: key.to_owned(),
            from: unit.to_owned(),
            to: c.unit.clone(),
        })?;
        Ok(amount * factor * c.kgce)
    }
}

/// How many of `to` one `from` is, for the unit pairs coefficients need.
fn unit_factor(from: &str, to: &str) -> Option<f64> {
    match (from, to) {
        _ if from == to => Some(1.0),
        ("t", "kg") | ("gj", "mj") | ("mwh", "kwh") => Some(1000.0),
        ("kg", "t") | ("mj", "gj") => Some(0.001),
        _ => None,
    }
}

/// kgce per kWh of electricity under the installation's choice.
#[must_use]
pub fn electricity_kgce_per_kwh(table: &CoefficientTable, basis: Electricity) -> Option<f64> {
    match basis {
        Electricity::Equivalent => table.get("electricity_equivalent").ok().map(|c| c.kgce),
        Electricity::EqualValue(rate) => Some(rate),
    }
}

/// kgce per m³ of a gas from its measured net calorific value (kJ/m³), which
/// the standard prefers to the table's average.
#[must_use]
pub fn kgce_per_m3_from_lhv(lhv_kj_per_m3: f64) -> f64 {
    lhv_kj_per_m3 / KJ_PER_KGCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_factors() {
        assert_eq!(unit_factor("t", "kg"), Some(1000.0));
        assert_eq!(unit_factor("gj", "mj"), Some(1000.0));
        assert_eq!(unit_factor("m3", "kg"), None);
    }
}
