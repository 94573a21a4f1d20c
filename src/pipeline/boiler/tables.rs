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
