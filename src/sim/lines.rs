//! Coherent lines: what a steam meter and a flue-gas analyzer serve must
//! agree with physics, or the gateway's steam state and boiler losses would
//! be checked against nonsense. A steam line's temperature follows its
//! pressure (a little below saturation, or clearly above it when
//! superheated) and its heat counter counts the steam's enthalpy; an
//! analyzer's O₂ and exhaust wobble like a live instrument's (its roles are
//! in `meter::role_of`, its values in [`super::boiler::FlueGas`]).
//!
//! Why a file of its own: `meter` turns any profile into registers; this is
//! the part that knows what steam is.

use super::boiler::{SATURATED_BELOW_K, SUPERHEAT_K};
use super::meter::{EXPORT_SHARE, Role, SimMeter, di_share, is_export};
use crate::pipeline::steam::{
    ATMOSPHERE_MPA, MAKE_UP_WATER_KJ_PER_KG, enthalpy_kj_per_kg, saturated_enthalpy_kj_per_kg,
};
use crate::profiles::PointKind;

impl SimMeter {
    /// Makes a steam line physically coherent: its temperature (point
    /// `temperature`) follows its pressure (point `pressure`, MPa gauge) at
    /// [`SATURATED_BELOW_K`] below saturation, or [`SUPERHEAT_K`] above it
    /// when `superheated`; its heat counters (GJ, MJ, kWh, MWh) count
    /// `mass × (h − 84 kJ/kg)` at the nominal pressure and temperature,
    /// as a flow computer integrates them (h by IF97; 84 kJ/kg is make-up
    /// water at 20 °C, the aggregation's default reference).
    pub fn steam_coherent(&mut self, pressure: usize, temperature: usize, superheated: bool) {
        let offset_k = if superheated {
            SUPERHEAT_K
        } else {
            -SATURATED_BELOW_K
        };
        self.points[temperature].role = Role::SteamTemperature { pressure, offset_k };
        let p = self.nominal_value(pressure);
        let h = if superheated {
            enthalpy_kj_per_kg(p, self.nominal_value(temperature))
        } else {
            saturated_enthalpy_kj_per_kg(p + ATMOSPHERE_MPA, 1.0)
        };
        let Some(h) = h else {
            return;
        };
        // GJ per t of steam.
        let gj_per_t = (h - MAKE_UP_WATER_KJ_PER_KG) / 1000.0;
        for point in &mut self.points {
            let unit_per_gj = match point.def.unit.as_str() {
                "gj" => 1.0,
                "mj" => 1000.0,
                "kwh" => 1.0 / 0.0036,
                "mwh" => 1.0 / 3.6,
                _ => continue,
            };
            if point.def.kind == PointKind::Counter {
                let share = if is_export(&point.def) {
                    EXPORT_SHARE
                } else {
                    1.0
                } * di_share(&point.def);
                point.role = Role::Counter {
                    per_main: gj_per_t * unit_per_gj * share,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EnergyType;
    use crate::pipeline::steam::saturation_temperature_c;
    use crate::profiles::{DataType, RegisterKind};
    use crate::sim::load::{EPOCH, LoadShape};
    use crate::sim::meter::tests::{meter_config, point};

    /// A steam flow computer's map: mass and heat counters, pressure, temperature.
    fn steam_meter() -> SimMeter {
        let points = [
            point(
                "mass_t",
                RegisterKind::Holding,
                0,
                DataType::F64,
                PointKind::Counter,
                "t",
            ),
            point(
                "heat_gj",
                RegisterKind::Holding,
                4,
                DataType::F64,
                PointKind::Counter,
                "gj",
            ),
            point(
                "pressure_mpa",
                RegisterKind::Holding,
                10,
                DataType::F32,
                PointKind::Gauge,
                "mpa",
            ),
            point(
                "temperature_c",
                RegisterKind::Holding,
                12,
                DataType::F32,
                PointKind::Gauge,
                "c",
            ),
        ];
        let load = LoadShape::constant(2.0, 100.0);
        SimMeter::new(&meter_config(EnergyType::Steam, 4), &points, load)
    }

    #[test]
    fn a_steam_line_reads_just_below_saturation_and_counts_its_enthalpy() {
        let mut m = steam_meter();
        m.steam_coherent(2, 3, false);
        for k in 0..600 {
            let t = EPOCH + f64::from(k) * 7.0;
            let p = m.model_value(2, t, 0.0);
            let ts = saturation_temperature_c(p + ATMOSPHERE_MPA).expect("saturation");
            let temp = m.model_value(3, t, 0.0);
            assert!(
                (temp - (ts - SATURATED_BELOW_K)).abs() < 1e-9,
                "{temp} at {p} MPa"
            );
        }
        // h″(1.101325 MPa) − 84 kJ/kg per kg, in GJ per t, on the heat counter.
        let h = saturated_enthalpy_kj_per_kg(1.0 + ATMOSPHERE_MPA, 1.0).expect("h″");
        assert_eq!(
            m.points[1].role,
            Role::Counter {
                per_main: (h - 84.0) / 1000.0
            }
        );
        assert!((2.6..2.8).contains(&((h - 84.0) / 1000.0)));
        let t = EPOCH + 3600.0;
        assert_eq!(m.model_value(1, t, 0.0), 102.0 * (h - 84.0) / 1000.0);
        // Superheated: 50 K above saturation of the nominal pressure.
        m.steam_coherent(2, 3, true);
        let ts = saturation_temperature_c(1.0 + ATMOSPHERE_MPA).expect("saturation");
        assert!((m.nominal_value(3) - (ts + SUPERHEAT_K)).abs() < 1e-9);
    }

    #[test]
    fn an_analyzer_never_repeats_itself_and_serves_the_fire_it_watches() {
        let points = [
            point(
                "o2_pct",
                RegisterKind::Holding,
                0,
                DataType::F32,
                PointKind::Gauge,
                "pct",
            ),
            point(
                "co_ppm",
                RegisterKind::Holding,
                2,
                DataType::F32,
                PointKind::Gauge,
                "ppm",
            ),
            point(
                "exhaust_c",
                RegisterKind::Holding,
                4,
                DataType::F32,
                PointKind::Gauge,
                "c",
            ),
            point(
                "ambient_c",
                RegisterKind::Holding,
                6,
                DataType::F32,
                PointKind::Gauge,
                "c",
            ),
        ];
        let gas = SimMeter::new(
            &meter_config(EnergyType::NaturalGas, 8),
            &points,
            LoadShape::constant(0.0, 0.0),
        );
        let coal = SimMeter::new(
            &meter_config(EnergyType::Coal, 8),
            &points,
            LoadShape::constant(0.0, 0.0),
        );
        let nominal = |m: &SimMeter| (0..4).map(|i| m.nominal_value(i)).collect::<Vec<_>>();
        assert_eq!(nominal(&gas), [3.5, 50.0, 120.0, 20.0]);
        assert_eq!(nominal(&coal), [8.0, 500.0, 160.0, 20.0]);
        // Second by second for a whole wobble period, in any phase, O₂ and
        // the exhaust serve one float at most twice in a row (at a turning
        // point two seconds may round alike), far below any `frozen_after`:
        // the validator catches only a stuck analyzer.
        for phase in 0..10 {
            let mut shape = LoadShape::constant(0.0, 0.0);
            shape.ripple_phase = f64::from(phase) * 0.61;
            let m = SimMeter::new(&meter_config(EnergyType::NaturalGas, 8), &points, shape);
            for i in [0, 2] {
                let (mut last, mut run) = (m.served_value(i, EPOCH), 1);
                for k in 1..=300 {
                    let v = m.served_value(i, EPOCH + f64::from(k));
                    run = if v == last { run + 1 } else { 1 };
                    assert!(
                        run <= 2,
                        "point {i} phase {phase}: {run} equal values at {k} s"
                    );
                    assert!((v - nominal(&gas)[i]).abs() <= 0.2 + 1e-6);
                    last = v;
                }
            }
        }
    }
}
