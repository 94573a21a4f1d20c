//! A profile file as written, before any check.
//!
//! Why a raw layer: the loader ([`super::load`]) wants every problem of a
//! profile in one run, so these structs are permissive in shape (every key
//! optional, `[[points]]` kept untyped and read one element at a time) and
//! strict in scalars ([`Int`], [`Float`], [`Text`]); see the `check` module
//! for the machinery.

use config::Value;
use serde::Deserialize;

use crate::check::{Flag, Float, Int, Text};

/// A profile file's top level.
#[derive(Debug, Deserialize)]
pub struct ProfileFile {
    /// Manufacturer, model and provenance of the map.
    pub description: Option<Text>,
    /// Counter point aggregated into `consumption` by default.
    pub consumption: Option<Text>,
    /// Pressure gauge (MPa gauge) for steam enthalpy.
    pub pressure: Option<Text>,
    /// Temperature gauge (°C) for steam enthalpy.
    pub temperature: Option<Text>,
    /// `auto` (default), `saturated` or `superheated`.
    pub steam_state: Option<Text>,
    /// Dryness fraction of saturated steam, (0, 1].
    pub steam_dryness: Option<Float>,
    /// `[[points]]`.
    pub points: Option<Value>,
    /// `modbus` (default) or `dlt645`.
    pub protocol: Option<Text>,
}

/// One `[[points]]` element as written.
#[derive(Debug, Deserialize)]
pub struct PointRaw {
    /// Field name.
    pub name: Option<Text>,
    /// Register table.
    pub register: Option<Text>,
    /// 0-based address.
    pub address: Option<Int>,
    /// Data type.
    #[serde(rename = "type")]
    pub data_type: Option<Text>,
    /// Word and byte order.
    pub order: Option<Text>,
    /// Multiplier.
    pub scale: Option<Float>,
    /// Addend after scaling.
    pub offset: Option<Float>,
    /// Transformer ratios that apply.
    pub ratio: Option<Text>,
    /// Counter or gauge.
    pub kind: Option<Text>,
    /// Unit of the scaled value.
    pub unit: Option<Text>,
    /// Raw "no value" markers.
    pub sentinels: Option<Vec<Float>>,
    /// Plausible minimum.
    pub min: Option<Float>,
    /// Plausible maximum.
    pub max: Option<Float>,
    /// Counter wrap value.
    pub rollover: Option<Float>,
    /// Physical maximum increase per hour (counters).
    pub max_rate_per_hour: Option<Float>,
    /// Spike margin over the maximum rate (counters).
    pub spike_margin: Option<Float>,
    /// Identical polls that make a gauge frozen.
    pub frozen_after: Option<Int>,
    /// The counter this gauge is the hourly rate of.
    pub rate_of: Option<Text>,
    /// DL/T 645: data identifier, 8 hex digits DI3..DI0.
    pub di: Option<Text>,
    /// DL/T 645: BCD format such as `XXXXXX.XX`.
    pub format: Option<Text>,
    /// DL/T 645: the top bit of the top byte is a sign.
    pub signed: Option<Flag>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_struct() {
        assert!(crate::check::field_names::<PointRaw>().contains(&"type"));
    }
}
