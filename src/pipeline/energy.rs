//! How a meter's consumption counts in standard coal (GB/T 2589): its role in
//! the site's balance and the conversion of a window's amount to kgce.
//!
//! Why a module of its own: the configuration decides *once*, at load, how
//! each meter converts (table row, unit factor, measured calorific value,
//! equal value per year, steam by enthalpy), and the aggregation stage only
//! applies that decision to every closed window. Keeping the decision as a
//! plain value ([`Conversion`]) makes it testable without a gateway and
//! keeps the per-window work free of lookups and allocation.
//!
//! Defaults by energy type (resolved when the configuration is loaded):
//! electricity by the installation's method (equivalent 0.1229 kgce/kWh or
//! equal value per year), natural gas by the measured calorific value when
//! configured else the gas-field row (1.2143 kgce/m³), steam by IF97
//! enthalpy with the low-pressure row (0.1286 kgce/kg) as the estimated
//! fallback, heat 0.034 12 kgce/MJ, coal by the raw-coal row, water as
//! fresh water, compressed air by its row.

use std::fmt::Write as _;

use super::coefficients::KGCE_PER_MJ;
use super::steam::{SteamMargins, SteamState, steam_enthalpy};
use crate::model::EnergyType;

/// How a meter's energy counts in its site's balance (GB/T 2589).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnergyRole {
    /// Energy consumed on site (the usual case): added to the site's total.
    #[default]
    Consumed,
    /// Energy supplied outward (外供): deducted from the site's total.
    Exported,
    /// Energy used as raw material (原料用能): reported apart from the total.
    Feedstock,
    /// Renewable energy generated on site: reported apart from the total.
    Renewable,
}

impl EnergyRole {
    /// Every role, in configuration order.
    pub const ALL: [EnergyRole; 4] = [
        EnergyRole::Consumed,
        EnergyRole::Exported,
        EnergyRole::Feedstock,
        EnergyRole::Renewable,
    ];

    /// Name as written in configuration and tags.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyRole::Consumed => "consumed",
            EnergyRole::Exported => "exported",
            EnergyRole::Feedstock => "feedstock",
            EnergyRole::Renewable => "renewable",
        }
    }
}

/// How a window's amount (in the counter's unit) becomes kgce.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// No standard-coal figure (coefficient = "none"): kgce is not written.
    None,
    /// kgce = amount × `kgce_per_unit` (unit conversion already folded in,
    /// e.g. t of coal → ×1000 × 0.7143).
    Fixed {
        /// kgce per unit of the counter.
        kgce_per_unit: f64,
    },
    /// Electricity by equal value: kgce/kWh for the year of the window start
    /// (local), × `unit_factor` (1 for kWh, 1000 for MWh). `by_year` sorted
    /// ascending; the value of the latest year ≤ the window's year, else the
    /// earliest.
    EqualValue {
        /// `(year, kgce per kWh)`, ascending by year, not empty.
        by_year: Vec<(i16, f64)>,
        /// kWh per unit of the counter.
        unit_factor: f64,
    },
    /// Steam by enthalpy from the window's mean gauge pressure (MPa gauge)
    /// and temperature (°C), the state decided by `state` against
    /// saturation ([`steam_enthalpy`]): kgce = amount × `kg_per_unit` ×
    /// (h − `reference_kj_per_kg`)/1000 MJ × 0.034 12, estimated when the
    /// temperature contradicts the state (a sensor problem, h″ used); when a
    /// mean needed is missing, outside IF97, or gives h ≤ the reference:
    /// amount × `fallback_kgce_per_unit`, estimated. A point index of
    /// [`Conversion::NO_POINT`] means the profile has no such gauge, so every
    /// window falls back.
    Steam {
        /// Index of the pressure gauge (MPa gauge) in the profile, or [`Conversion::NO_POINT`].
        pressure: usize,
        /// Index of the temperature gauge (°C) in the profile, or [`Conversion::NO_POINT`].
        temperature: usize,
        /// Enthalpy of the water the steam is made from, kJ/kg.
        reference_kj_per_kg: f64,
        /// kg per unit of the counter (1000 for t).
        kg_per_unit: f64,
        /// kgce per unit of the counter when the state is unknown (table row).
        fallback_kgce_per_unit: f64,
        /// Saturated, superheated, or decided by the temperature.
        state: SteamState,
        /// Dryness fraction of saturated steam (0 < x ≤ 1).
        dryness: f64,
        /// Where `auto` draws the lines around saturation.
        margins: SteamMargins,
    },
}

impl Conversion {
    /// Point index meaning "the profile has no such gauge"; never passed to
    /// the `gauge_mean` callback of [`Conversion::kgce`].
    pub const NO_POINT: usize = usize::MAX;

    /// (kgce, estimated) of `amount` for a window starting in local calendar
    /// `year`; `gauge_mean(point_index)` gives the window's mean of a gauge
    /// point of the meter's profile. `None` for [`Conversion::None`] (and for
    /// an `EqualValue` without any year, which the loader never builds).
    pub fn kgce(
        &self,
        amount: f64,
        year: i16,
        gauge_mean: impl Fn(usize) -> Option<f64>,
    ) -> Option<(f64, bool)> {
        match self {
            Conversion::None => None,
            Conversion::Fixed { kgce_per_unit } => Some((amount * kgce_per_unit, false)),
            Conversion::EqualValue {
                by_year,
                unit_factor,
            } => {
                let rate = by_year
                    .iter()
                    .rev()
                    .find(|(y, _)| *y <= year)
                    .or_else(|| by_year.first())
                    .map(|(_, r)| *r)?;
                Some((amount * unit_factor * rate, false))
            }
            Conversion::Steam {
                pressure,
                temperature,
                reference_kj_per_kg,
                kg_per_unit,
                fallback_kgce_per_unit,
                state,
                dryness,
                margins,
            } => {
                let mean = |i: usize| {
                    if i == Self::NO_POINT {
                        None
                    } else {
                        gauge_mean(i)
                    }
                };
                let h = steam_enthalpy(
                    mean(*pressure),
                    mean(*temperature),
                    *state,
                    *dryness,
                    *margins,
                )
                .filter(|s| s.h > *reference_kj_per_kg);
                Some(match h {
                    // kg × kJ/kg ÷ 1000 = MJ.
                    Some(s) => (
                        amount * kg_per_unit * (s.h - reference_kj_per_kg) / 1000.0 * KGCE_PER_MJ,
                        s.suspect,
                    ),
                    None => (amount * fallback_kgce_per_unit, true),
                })
            }
        }
    }

    /// True for steam whose window means put the temperature where no
    /// steam of its state can be (far below saturation): the sensor is
    /// suspect, and [`Conversion::kgce`] used h″ and marked it estimated.
    pub fn steam_suspect(&self, gauge_mean: impl Fn(usize) -> Option<f64>) -> bool {
        let Conversion::Steam {
            pressure,
            temperature,
            state,
            dryness,
            margins,
            ..
        } = self
        else {
            return false;
        };
        let mean = |i: usize| {
            if i == Self::NO_POINT {
                None
            } else {
                gauge_mean(i)
            }
        };
        steam_enthalpy(
            mean(*pressure),
            mean(*temperature),
            *state,
            *dryness,
            *margins,
        )
        .is_some_and(|s| s.suspect)
    }

    /// One line for logs and the README, in numbers (the table row it came
    /// from is in the meter configuration's `conversion_source`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Conversion::None => "no standard-coal conversion".to_owned(),
            Conversion::Fixed { kgce_per_unit } => format!("{kgce_per_unit} kgce per unit"),
            Conversion::EqualValue {
                by_year,
                unit_factor,
            } => {
                let mut s = String::from("electricity by equal value, kgce/kWh by year:");
                for (y, r) in by_year {
                    let _ = write!(s, " {y} {r}");
                }
                if (*unit_factor - 1.0).abs() > f64::EPSILON {
                    let _ = write!(s, "; × {unit_factor} kWh per unit");
                }
                s
            }
            Conversion::Steam {
                pressure,
                temperature,
                reference_kj_per_kg,
                kg_per_unit,
                fallback_kgce_per_unit,
                state,
                dryness,
                ..
            } => {
                if *state == SteamState::Saturated && *pressure != Self::NO_POINT {
                    format!(
                        "saturated steam by IF97 h'' at the pressure (dryness {dryness}) over {reference_kj_per_kg} kJ/kg, {kg_per_unit} kg per unit, 0.03412 kgce/MJ; fallback {fallback_kgce_per_unit} kgce per unit (estimated)"
                    )
                } else if *pressure == Self::NO_POINT || *temperature == Self::NO_POINT {
                    format!(
                        "steam without pressure and temperature gauges: {fallback_kgce_per_unit} kgce per unit, always estimated"
                    )
                } else {
                    format!(
                        "steam by IF97 enthalpy ({} state, dryness {dryness}) over {reference_kj_per_kg} kJ/kg, {kg_per_unit} kg per unit, 0.03412 kgce/MJ; fallback {fallback_kgce_per_unit} kgce per unit (estimated)",
                        state.as_str()
                    )
                }
            }
        }
    }
}

/// How many `to` one `from` is, for a counter of `energy` converted by a
/// table row in unit `to`: t↔kg and GJ↔MJ and MWh↔kWh by 1000; standard
/// m³ (`nm3`) and `m3` alike (the gas and air rows are per standard m³);
/// m³ of water as tonnes (water only). `None` when the units do not convert.
#[must_use]
pub fn unit_factor(from: &str, to: &str, energy: EnergyType) -> Option<f64> {
    match (from, to) {
        _ if from == to => Some(1.0),
        ("t", "kg") | ("gj", "mj") | ("mwh", "kwh") => Some(1000.0),
        ("kg", "t") | ("mj", "gj") | ("kwh", "mwh") => Some(0.001),
        ("nm3", "m3") | ("m3", "nm3") => Some(1.0),
        ("m3", "t") | ("t", "m3") if energy == EnergyType::Water => Some(1.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        let names: Vec<&str> = EnergyRole::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["consumed", "exported", "feedstock", "renewable"]);
        assert_eq!(EnergyRole::default(), EnergyRole::Consumed);
    }

    #[test]
    fn water_converts_between_m3_and_t_only_for_water() {
        assert_eq!(unit_factor("m3", "t", EnergyType::Water), Some(1.0));
        assert_eq!(unit_factor("m3", "t", EnergyType::CompressedAir), None);
        assert_eq!(unit_factor("kwh", "kg", EnergyType::Electricity), None);
    }

    #[test]
    fn missing_gauge_index_is_never_looked_up() {
        let c = Conversion::Steam {
            pressure: Conversion::NO_POINT,
            temperature: Conversion::NO_POINT,
            reference_kj_per_kg: 84.0,
            kg_per_unit: 1000.0,
            fallback_kgce_per_unit: 128.6,
            state: SteamState::Auto,
            dryness: 1.0,
            margins: SteamMargins::DEFAULT,
        };
        let got = c.kgce(2.0, 2025, |i| {
            assert_ne!(i, Conversion::NO_POINT);
            None
        });
        assert_eq!(got, Some((257.2, true)));
    }
}
