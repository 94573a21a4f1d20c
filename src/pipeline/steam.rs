//! Steam and hot water by heat content (IAPWS-IF97, through `seuif97`).
//!
//! GB/T 2589 converts heat at 0.034 12 kgce/MJ. For steam the recommended
//! route is its heat content: Q \[MJ\] = m \[kg\] × (h − h_ref) \[kJ/kg\] / 1000,
//! with h from the measured pressure and temperature and h_ref the enthalpy
//! of the water it came from (condensate return, or make-up water at 20 °C:
//! 84.0 kJ/kg), recorded per installation. The fixed 0.1286 kgce/kg row of
//! the 2008 table is only the fallback when pressure or temperature are
//! missing (and marks the result estimated).
//!
//! Plant instruments read **gauge** pressure: [`ATMOSPHERE_MPA`] is added
//! before any property is computed.
//!
//! # Which state the steam is in ([`SteamState`], [`steam_enthalpy`])
//! Saturated steam (the normal case at 0.4–2.5 MPa(g)) has one degree of
//! freedom: its enthalpy follows from the pressure alone, and its
//! thermometer reads at or a little below the saturation temperature.
//! Evaluating IF97 at (p, T) there lands on the liquid side of the
//! saturation line and prices steam as hot water (about 4× too little).
//! So, in `auto`, with T_s = T_sat(p):
//! * T > T_s + `superheat_margin_k`: superheated, h(p, T);
//! * T_s − `sensor_margin_k` ≤ T ≤ T_s + `superheat_margin_k`: saturated,
//!   h = h′ + x·(h″ − h′) (x the dryness fraction, 1 by default);
//! * T < T_s − `sensor_margin_k`: a sensor problem (no steam exists there):
//!   saturated as above, flagged ([`SteamEnthalpy::suspect`]) so the window
//!   is estimated.
//!
//! `saturated` uses the pressure alone; `superheated` uses h(p, T) and
//! treats a temperature at or below saturation as the sensor problem above.

use super::coefficients::KGCE_PER_MJ;
pub use crate::model::SteamState;

/// Standard atmosphere, MPa: gauge + this = absolute.
pub const ATMOSPHERE_MPA: f64 = 0.101_325;

/// Enthalpy of make-up water at 20 °C and atmospheric pressure, kJ/kg: the
/// usual reference when condensate is not returned.
pub const MAKE_UP_WATER_KJ_PER_KG: f64 = 84.0;

/// Specific enthalpy (kJ/kg) of water or steam at gauge pressure
/// `pressure_mpa_gauge` and temperature `temperature_c`; `None` outside
/// IF97's range or for non-finite input.
#[must_use]
pub fn enthalpy_kj_per_kg(pressure_mpa_gauge: f64, temperature_c: f64) -> Option<f64> {
    let p = pressure_mpa_gauge + ATMOSPHERE_MPA;
    if !(p.is_finite() && temperature_c.is_finite()) || p <= 0.0 || p > 100.0 {
        return None;
    }
    if !(0.0..=800.0).contains(&temperature_c) {
        return None;
    }
    let h = seuif97::pt2h(p, temperature_c);
    h.is_finite().then_some(h)
}

/// Enthalpy (kJ/kg) of saturated steam (`quality` 1.0) or water (0.0) at
/// absolute pressure `pressure_mpa_abs`.
#[must_use]
pub fn saturated_enthalpy_kj_per_kg(pressure_mpa_abs: f64, quality: f64) -> Option<f64> {
    if !(pressure_mpa_abs > 0.000_611
        && pressure_mpa_abs < 22.064
        && (0.0..=1.0).contains(&quality))
    {
        return None;
    }
    let h = seuif97::px2h(pressure_mpa_abs, quality);
    h.is_finite().then_some(h)
}

/// Margins of the `auto` decision, K (`[aggregation] steam_superheat_margin_k`
/// and `steam_sensor_margin_k`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteamMargins {
    /// Above T_sat + this: superheated.
    pub superheat_margin_k: f64,
    /// Below T_sat − this: a sensor problem.
    pub sensor_margin_k: f64,
}

impl SteamMargins {
    /// 3 K above saturation, 10 K below (README "Steam by its real state").
    pub const DEFAULT: SteamMargins = SteamMargins {
        superheat_margin_k: 3.0,
        sensor_margin_k: 10.0,
    };
}

impl Default for SteamMargins {
    fn default() -> Self {
        SteamMargins::DEFAULT
    }
}

/// A steam enthalpy with how it was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteamEnthalpy {
    /// kJ/kg.
    pub h: f64,
    /// Taken as saturated (h from the pressure and dryness).
    pub saturated: bool,
    /// The temperature contradicts the state (far below saturation, or at
    /// or below it for `superheated`): h″ was used, the window is estimated.
    pub suspect: bool,
}

/// Saturation temperature (°C) at absolute pressure `p_abs` (MPa), IF97.
#[must_use]
pub fn saturation_temperature_c(p_abs: f64) -> Option<f64> {
    if !(p_abs > 0.000_611 && p_abs < 22.064) {
        return None;
    }
    let t = seuif97::px2t(p_abs, 1.0);
    t.is_finite().then_some(t)
}

/// Enthalpy (kJ/kg) of steam at gauge pressure `p_gauge` (MPa) and
/// temperature `t_c` (°C; not needed for `saturated`), by `state` (module
/// doc); `dryness` is the quality x of saturated steam (0 < x ≤ 1).
/// `None` when the pressure is missing or outside IF97's saturation range,
/// or a temperature needed is missing.
#[must_use]
pub fn steam_enthalpy(
    p_gauge: Option<f64>,
    t_c: Option<f64>,
    state: SteamState,
    dryness: f64,
    margins: SteamMargins,
) -> Option<SteamEnthalpy> {
    let p = p_gauge.filter(|p| p.is_finite())? + ATMOSPHERE_MPA;
    let saturated = |suspect| {
        saturated_enthalpy_kj_per_kg(p, dryness).map(|h| SteamEnthalpy {
            h,
            saturated: true,
            suspect,
        })
    };
    if state == SteamState::Saturated {
        return saturated(false);
    }
    let t = t_c.filter(|t| t.is_finite())?;
    match saturation_temperature_c(p) {
        // Above the critical pressure there is no saturation: (p, T) decides.
        None => superheated(p, t),
        Some(ts) => {
            let lower = if state == SteamState::Superheated {
                ts
            } else {
                ts - margins.sensor_margin_k
            };
            if t > ts + margins.superheat_margin_k || (state == SteamState::Superheated && t > ts) {
                superheated(p, t)
            } else if t < lower || (state == SteamState::Superheated && t <= ts) {
                saturated(true)
            } else {
                saturated(false)
            }
        }
    }
}

/// h(p, T) at absolute pressure, as superheated steam.
fn superheated(p_abs: f64, t: f64) -> Option<SteamEnthalpy> {
    enthalpy_kj_per_kg(p_abs - ATMOSPHERE_MPA, t).map(|h| SteamEnthalpy {
        h,
        saturated: false,
        suspect: false,
    })
}

/// Heat delivered by `mass_t` tonnes of steam of enthalpy `h` over the
/// reference `h_ref` (both kJ/kg), in MJ.
#[must_use]
pub fn heat_mj(mass_t: f64, h: f64, h_ref: f64) -> f64 {
    // t × 1000 kg/t × kJ/kg ÷ 1000 kJ/MJ.
    mass_t * (h - h_ref)
}

/// kgce of `mass_t` tonnes of steam at the given gauge pressure and
/// temperature over `h_ref`, or `None` when the state is out of range.
#[must_use]
pub fn steam_kgce(
    mass_t: f64,
    pressure_mpa_gauge: f64,
    temperature_c: f64,
    h_ref: f64,
) -> Option<f64> {
    let h = enthalpy_kj_per_kg(pressure_mpa_gauge, temperature_c)?;
    Some(heat_mj(mass_t, h, h_ref) * KGCE_PER_MJ)
}
