//! `[[boilers]]` in site files and `[boiler]` in the main file: boilers as
//! data, resolved against the meters and the boiler tables.
//!
//! Why here: a boiler's inputs are points of configured meters, so it can
//! only be checked once every site's meters are known; the result is a
//! [`BoilerConfig`] per boiler whose references are interned indexes.

use crate::model::{MeterId, SiteId};
use crate::pipeline::boiler::{BoilerSpec, FuelRecord};

/// Where one boiler input comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputRef {
    /// Not configured.
    None,
    /// A configured constant (e.g. `feed_water_c = 20.0`).
    Fixed(f64),
    /// A gauge of a configured meter (`{ meter = "...", point = "..." }`).
    Point {
        /// The meter.
        meter: MeterId,
        /// Point index in the meter's profile.
        point: usize,
    },
}

/// One boiler, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerConfig {
    /// Id, unique across all sites: the `boiler` tag.
    pub id: String,
    /// Free text.
    pub name: String,
    /// Site it belongs to (its fuel and output meters' site).
    pub site: SiteId,
    /// Fuel class key of the boiler coefficient table.
    pub fuel: String,
    /// Constants the formulas need.
    pub spec: BoilerSpec,
    /// The fuel meter (its consumption counter).
    pub fuel_meter: MeterId,
    /// The output meter (steam mass, heat or water counter).
    pub output_meter: MeterId,
    /// Steam pressure, MPa gauge.
    pub steam_pressure: InputRef,
    /// Steam temperature, °C.
    pub steam_temperature: InputRef,
    /// Hot-water supply temperature, °C.
    pub supply_temperature: InputRef,
    /// Hot-water return temperature, °C.
    pub return_temperature: InputRef,
    /// Feed-water temperature, °C.
    pub feed_water: InputRef,
    /// Exhaust temperature, °C.
    pub exhaust: InputRef,
    /// O₂, % dry.
    pub o2: InputRef,
    /// CO, ppm.
    pub co_ppm: InputRef,
    /// Cold-air temperature, °C.
    pub cold_air: InputRef,
    /// Blow-down, % of steam mass.
    pub blowdown_pct: Option<f64>,
    /// Gas LHV measured on the fuel meter (`lhv_kj_per_m3`), kJ/m³.
    pub meter_lhv_kj_per_m3: Option<f64>,
    /// Lab records, ascending by `from`.
    pub fuel_records: Vec<FuelRecord>,
    /// Key of the limit row used, when one applies.
    pub limits_key: Option<String>,
}
