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
//! before any property is computed. Not wired into the gateway yet:
//! aggregation (issue 5) uses it.

use super::coefficients::KGCE_PER_MJ;

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
