//! What one simulated meter serves: each profile point gets a role (counter,
//! rate gauge or plain gauge) from its kind and unit (and, for DL/T 645
//! points, its data identifier), and its value at a time is turned into
//! registers with the gateway's own encoder, or into BCD digits by the
//! values rule of [`super::dlt645`].
//!
//! Pure: no I/O, no clock, no faults beyond what the caller passes in, so the
//! same functions answer Modbus and DL/T 645 requests and
//! [`super::Simulator::value_at`].

use std::f64::consts::TAU;

use super::boiler::FlueGas;
use super::dlt645;
use super::load::{EPOCH, LoadShape};
use crate::config::MeterConfig;
use crate::model::EnergyType;
use crate::pipeline::steam::{ATMOSPHERE_MPA, saturation_temperature_c};
use crate::profiles::codec::{decode_raw, encode_point, encode_raw, ratio_factor, scale_raw};
use crate::profiles::{DataType, PointDef, PointKind, RegisterKind};

/// Share of the primary counter that export (reverse) counters and powers carry.
pub(crate) const EXPORT_SHARE: f64 = 0.02;
/// Reactive energy and power as a share of active (tan φ of a power factor near 0.96).
const REACTIVE_SHARE: f64 = 0.3;
/// √3, the ratio of line-to-line to phase voltage.
const SQRT_3: f64 = 1.732_050_807_568_877_2;
/// Period of the small wobble on plain gauges, seconds.
const WOBBLE_PERIOD: f64 = 300.0;
/// Shares of DL/T 645 tariffs 1-4 (sharp, peak, flat, valley) in the total:
/// a fixed split, so the tariff registers add up to the total register's
/// energy (real time-of-use splits follow the clock; these follow the load).
const TARIFF_SHARES: [f64; 4] = [0.1, 0.3, 0.35, 0.25];

/// `(table, first register, index)` of every point, sorted.
fn address_index(points: &[SimPoint]) -> Vec<(RegisterKind, u16, u32)> {
    let mut v: Vec<_> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                p.def.register,
                p.def.address,
                u32::try_from(i).unwrap_or(u32::MAX),
            )
        })
        .collect();
    v.sort_unstable();
    v
}

/// What the `spike` fault adds to a counter, in the point's own unit: far
/// above what any metered unit consumes in one poll, yet small enough that a
/// U32 ×0.01 register (wrap 42 949 672.96) still holds it below its top for
/// the first 97 % of its range. See `spike_ceiling` for the rest.
pub const SPIKE_JUMP: f64 = 1_000_000.0;

/// How a point's registers are produced, beyond its model value: the faults
/// that change what a read returns (the others decide whether it is answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serve {
    /// The model value.
    Normal,
    /// The "no value" pattern of the point's type.
    Sentinel,
    /// Counters: model value + [`SPIKE_JUMP`], capped by [`spike_ceiling`]; gauges: the model value.
    Spike,
}

/// How a point's value follows the meter's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Role {
    /// `per_main × (main counter − reset offset)`, in the point's unit.
    Counter { per_main: f64 },
    /// `per_main × rate`, in the point's unit (power for kWh, flow for m³, ...).
    Rate { per_main: f64 },
    /// Phase voltage around `nominal` volts.
    Voltage { nominal: f64 },
    /// Phase current that carries the meter's power at the nominal voltage.
    Current { nominal_v: f64 },
    /// Grid frequency around 50 Hz.
    Frequency,
    /// Power factor around 0.92.
    PowerFactor,
    /// A plausible constant with a small wobble (pressure, temperature, anything else).
    Level { value: f64, wobble: f64 },
    /// A steam line's temperature, coherent with its pressure gauge (point
    /// `pressure` of the same meter, MPa gauge): `T_sat(p) + offset_k`, so a
    /// saturated line reads a little below saturation (as real ones do) and a
    /// superheated one clearly above.
    SteamTemperature { pressure: usize, offset_k: f64 },
}

/// One point of a simulated meter.
#[derive(Debug, Clone)]
pub(crate) struct SimPoint {
    pub def: PointDef,
    pub role: Role,
    /// Phase of the point's wobble, so points of one meter do not move in lockstep.
    phase: f64,
}

/// A meter as the simulator serves it.
#[derive(Debug, Clone)]
pub(crate) struct SimMeter {
    pub load: LoadShape,
    pub points: Vec<SimPoint>,
    pub pt: f64,
    pub ct: f64,
    /// `(table, first register, point index)` sorted, so a request finds its
    /// points by binary search instead of scanning the whole map (a
    /// 6 000-point map served 100 reads a second otherwise costs the server
    /// more than the client it serves).
    pub by_address: Vec<(RegisterKind, u16, u32)>,
}

impl SimMeter {
    /// Builds the simulated meter for `meter` with register map `points`.
    pub fn new(meter: &MeterConfig, points: &[PointDef], load: LoadShape) -> SimMeter {
        let nominal_v = if meter.pt > 1.0 {
            // Behind a voltage transformer the secondary is 100 V line to line.
            100.0 / SQRT_3 * meter.pt
        } else {
            230.0
        };
        let points = points
            .iter()
            .enumerate()
            .map(|(i, def)| SimPoint {
                role: role_of(meter.energy, def, nominal_v),
                def: def.clone(),
                phase: load.ripple_phase + 0.7 * i as f64,
            })
            .collect::<Vec<_>>();
        let by_address = address_index(&points);
        SimMeter {
            load,
            points,
            pt: meter.pt,
            ct: meter.ct,
            by_address,
        }
    }

    /// Model value of point `i` at `t` (already stepped), in the point's unit,
    /// before register quantisation. `reset` is the main-counter value that
    /// counters subtract after a counter reset (0 when none happened).
    pub fn model_value(&self, index: usize, t: f64, reset: f64) -> f64 {
        let point = &self.points[index];
        let wobble = (TAU * (t - EPOCH) / WOBBLE_PERIOD + point.phase).sin();
        let v = match point.role {
            Role::Counter { per_main } => per_main * (self.load.counter(t) - reset).max(0.0),
            Role::Rate { per_main } => per_main * self.load.rate(t),
            Role::Voltage { nominal } => nominal * (1.0 + 0.005 * wobble),
            Role::Current { nominal_v } => {
                // Three phases sharing the power: I = P / (3 · V · pf).
                let pf = 0.92;
                self.load.rate(t) * 1000.0 / (3.0 * nominal_v * pf)
            }
            Role::Frequency => 50.0 + 0.02 * wobble,
            Role::PowerFactor => 0.92 + 0.03 * wobble,
            Role::Level { value, wobble: w } => value + w * wobble,
            Role::SteamTemperature { pressure, offset_k } => {
                let p = self.model_value(pressure, t, reset) + ATMOSPHERE_MPA;
                saturation_temperature_c(p).map_or(f64::NAN, |ts| ts + offset_k)
            }
        };
        match point.def.rollover {
            Some(r) if point.def.kind == PointKind::Counter && r > 0.0 => v.rem_euclid(r),
            _ => v,
        }
    }

    /// The value point `i` serves without its wobble (the centre of a level,
    /// a rate at the load's base); `NaN` for counters, which have no level.
    pub fn nominal_value(&self, i: usize) -> f64 {
        match self.points[i].role {
            Role::Level { value, .. } => value,
            Role::SteamTemperature { pressure, offset_k } => {
                let p = self.nominal_value(pressure) + ATMOSPHERE_MPA;
                saturation_temperature_c(p).map_or(f64::NAN, |ts| ts + offset_k)
            }
            Role::Rate { per_main } => per_main * self.load.base,
            Role::Frequency => 50.0,
            Role::PowerFactor => 0.92,
            Role::Voltage { nominal } => nominal,
            Role::Current { .. } | Role::Counter { .. } => f64::NAN,
        }
    }

    /// Registers of point `i` at `t`, as `serve` says (see [`Serve`]).
    pub fn encode(&self, i: usize, t: f64, reset: f64, serve: Serve, out: &mut [u16; 4]) {
        let def = &self.points[i].def;
        let w = usize::from(def.width());
        if serve == Serve::Sentinel {
            match def.data_type {
                DataType::F32 | DataType::F64 => encode_point(def, f64::NAN, 1.0, 1.0, out),
                // The signed minimum, as the decoder's built-in sentinels expect.
                DataType::I16 => encode_raw(-32_768.0, def.data_type, def.order, out),
                DataType::I32 => encode_raw(-2_147_483_648.0, def.data_type, def.order, out),
                DataType::I64 => encode_raw(i64::MIN as f64, def.data_type, def.order, out),
                // All ones is all ones in every byte order.
                _ => out[..w].fill(0xFFFF),
            }
            if def.data_type == DataType::Bool {
                out[0] = 1;
            }
            return;
        }
        let mut v = self.model_value(i, t, reset);
        if serve == Serve::Spike && def.kind == PointKind::Counter {
            // `max(v)`: a counter already above the ceiling keeps its value, never drops.
            v = (v + SPIKE_JUMP)
                .min(spike_ceiling(def, self.pt, self.ct))
                .max(v);
        }
        encode_point(def, v, self.pt, self.ct, out);
    }

    /// The BCD value bytes (lowest first, before +0x33) DL/T 645 point `i`
    /// serves at `t`, as `serve` says, into `out`; returns their count (0
    /// for a point that is not a DL/T 645 one). The values rule is in
    /// [`super::dlt645`]; the sentinel is bytes `FF`, which are no BCD.
    pub fn encode_bcd(
        &self,
        i: usize,
        t: f64,
        reset: f64,
        serve: Serve,
        out: &mut [u8; 8],
    ) -> usize {
        let def = &self.points[i].def;
        let Some(point) = def.dlt645 else {
            return 0;
        };
        let len = usize::from(point.format.bytes).min(out.len());
        if serve == Serve::Sentinel {
            out[..len].fill(0xFF);
            return len;
        }
        let counter = def.kind == PointKind::Counter;
        let mut v = self.model_value(i, t, reset);
        if serve == Serve::Spike && counter {
            v = (v + SPIKE_JUMP)
                .min(spike_ceiling(def, self.pt, self.ct))
                .max(v);
        }
        let factor = def.scale * ratio_factor(def.ratio, self.pt, self.ct);
        let (count, negative) = dlt645::quantise(point.format, (v - def.offset) / factor, counter);
        dlt645::bcd_into(count, negative, &mut out[..len]);
        len
    }

    /// The value point `i` serves at `t`, decoded from its registers (or
    /// its BCD digits) exactly as the gateway's decoder does (same formula,
    /// same rounding).
    pub fn served_value(&self, i: usize, t: f64) -> f64 {
        let def = &self.points[i].def;
        if let Some(d) = def.dlt645 {
            let mut bytes = [0u8; 8];
            let n = self.encode_bcd(i, t, 0.0, Serve::Normal, &mut bytes);
            let raw = d.format.decode(&bytes[..n]).unwrap_or(f64::NAN);
            return scale_raw(def, raw, self.pt, self.ct);
        }
        let mut regs = [0u16; 4];
        self.encode(i, t, 0.0, Serve::Normal, &mut regs);
        let raw = decode_raw(&regs, def.data_type, def.order);
        scale_raw(def, raw.value, self.pt, self.ct)
    }
}

/// Highest value a spiked counter may serve: one count below the profile's
/// `rollover`, and for integer registers their largest value that is neither
/// a wrap nor the all-ones / signed-minimum sentinel (`0xFFFE`, `0xFFFF_FFFE`,
/// `0x7FFF`, `0x7FFF_FFFF` counts). A spike must read as a jump up, not as a
/// rollover or a missing value, so a counter within [`SPIKE_JUMP`] of that top
/// jumps only up to it. 64-bit and float registers have no cap of their own;
/// a DL/T 645 register stops at its largest BCD value (`999999.99` for
/// `XXXXXX.XX`), one count below its rollover.
pub(crate) fn spike_ceiling(def: &PointDef, pt: f64, ct: f64) -> f64 {
    let count = (def.scale * ratio_factor(def.ratio, pt, ct)).abs();
    let top_raw = match (def.dlt645, def.data_type) {
        (Some(d), _) => {
            Some(dlt645::max_count(d.format) as f64 / 10f64.powi(i32::from(d.format.decimals)))
        }
        (None, DataType::U16) => Some(65_534.0),
        (None, DataType::I16) => Some(32_767.0),
        (None, DataType::U32) => Some(4_294_967_294.0),
        (None, DataType::I32) => Some(2_147_483_647.0),
        (None, _) => None,
    };
    let register = top_raw.map_or(f64::INFINITY, |raw| raw * count + def.offset);
    let rollover = def
        .rollover
        .filter(|r| *r > 0.0)
        .map_or(f64::INFINITY, |r| r - count);
    register.min(rollover)
}

/// True for export / reverse quantities, which carry a small share of the
/// load: by name, or a DL/T 645 reverse active energy (`0002xxxx`).
pub(crate) fn is_export(def: &PointDef) -> bool {
    let name = def.name.as_str();
    let [_, _, di2, di3] = def.dlt645.map_or([0xFF; 4], |d| d.di.wire());
    name.contains("export") || name.contains("reverse") || (di3 == 0x00 && di2 == 0x02)
}

/// The share of its quantity a DL/T 645 data identifier names (1 for any
/// other point): a tariff's share of the energy (`00 xx 01 00`…`00 xx 04 00`,
/// [`TARIFF_SHARES`]; tariffs above 4 nothing), a phase's third of the
/// power (`02 03 01 00`…, active, reactive and apparent).
pub(crate) fn di_share(def: &PointDef) -> f64 {
    let Some(d) = def.dlt645 else {
        return 1.0;
    };
    let [_, di1, di2, di3] = d.di.wire();
    match (di3, di2, di1) {
        (0x00, _, 0) => 1.0,
        (0x00, _, 1..=4) => TARIFF_SHARES[usize::from(di1) - 1],
        (0x00, _, _) => 0.0,
        (0x02, 0x03..=0x05, 1..=3) => 1.0 / 3.0,
        _ => 1.0,
    }
}

/// Role of a point of a meter measuring `energy`.
fn role_of(energy: EnergyType, def: &PointDef, nominal_v: f64) -> Role {
    let unit = def.unit.as_str();
    let export = if is_export(def) { EXPORT_SHARE } else { 1.0 };
    let share = export * di_share(def);
    if def.kind == PointKind::Counter {
        return Role::Counter {
            per_main: counter_per_main(energy, unit) * share,
        };
    }
    if let Some(per_main) = rate_per_main(energy, unit) {
        return Role::Rate {
            per_main: per_main * share,
        };
    }
    let name = def.name.as_str();
    match unit {
        "v" => Role::Voltage {
            // Line-to-line voltages are √3 times the phase voltage.
            nominal: if name.contains("ll") || name.contains("line") {
                nominal_v * SQRT_3
            } else {
                nominal_v
            },
        },
        "a" if energy == EnergyType::Electricity => Role::Current { nominal_v },
        "hz" => Role::Frequency,
        "pf" => Role::PowerFactor,
        "" | "1" if name.contains("pf") || name.contains("power_factor") => Role::PowerFactor,
        // A flue-gas analyzer watching this energy's fire (see `super::boiler`).
        "pct" if name.contains("o2") => flue(energy).o2_role(),
        "ppm" if name.contains("co") => flue(energy).co_role(),
        "c" if name.contains("exhaust") || name.contains("flue") => flue(energy).exhaust_role(),
        "mpa" => level(pressure_mpa(energy), 0.01),
        "kpa" => level(pressure_mpa(energy) * 1000.0, 0.01),
        "bar" => level(pressure_mpa(energy) * 10.0, 0.01),
        "c" => level(temperature_c(energy, name), 0.01),
        _ => match (def.min, def.max) {
            (Some(lo), Some(hi)) => level(f64::midpoint(lo, hi), 0.0),
            (Some(v), None) | (None, Some(v)) => level(v, 0.0),
            (None, None) => level(0.0, 0.0),
        },
    }
}

/// The flue gas of a fire burning `energy` (coal: a solid fuel's; else a gas fire's).
fn flue(energy: EnergyType) -> FlueGas {
    if energy == EnergyType::Coal {
        FlueGas::SOLID
    } else {
        FlueGas::GAS
    }
}

/// A level with a wobble of `relative` of its value.
fn level(value: f64, relative: f64) -> Role {
    Role::Level {
        value,
        wobble: value * relative,
    }
}

/// How many of a counter's `unit` one main unit of `energy` is.
fn counter_per_main(energy: EnergyType, unit: &str) -> f64 {
    match energy {
        EnergyType::Electricity => match unit {
            "wh" => 1000.0,
            "mwh" => 0.001,
            "kvarh" => REACTIVE_SHARE,
            "varh" => REACTIVE_SHARE * 1000.0,
            "mvarh" => REACTIVE_SHARE * 0.001,
            _ => 1.0,
        },
        EnergyType::Heat => match unit {
            "mj" => 1000.0,
            "kwh" => 1.0 / 0.0036,
            "mwh" => 1.0 / 3.6,
            "gcal" => 1.0 / 4.1868,
            _ => 1.0,
        },
        EnergyType::NaturalGas | EnergyType::Water | EnergyType::CompressedAir => match unit {
            "l" => 1000.0,
            _ => 1.0,
        },
        EnergyType::Steam | EnergyType::Coal => match unit {
            "kg" => 1000.0,
            _ => 1.0,
        },
    }
}

/// How many of a gauge's `unit` one main unit per hour of `energy` is, when
/// the gauge is the meter's rate (power for kWh, flow for volume and mass,
/// heat power for GJ); `None` for any other gauge.
fn rate_per_main(energy: EnergyType, unit: &str) -> Option<f64> {
    match energy {
        EnergyType::Electricity => match unit {
            "kw" => Some(1.0),
            "w" => Some(1000.0),
            "mw" => Some(0.001),
            "kvar" => Some(REACTIVE_SHARE),
            "var" => Some(REACTIVE_SHARE * 1000.0),
            "kva" => Some((1.0 + REACTIVE_SHARE * REACTIVE_SHARE).sqrt()),
            "va" => Some((1.0 + REACTIVE_SHARE * REACTIVE_SHARE).sqrt() * 1000.0),
            _ => None,
        },
        EnergyType::Heat => match unit {
            "gjh" => Some(1.0),
            "kw" => Some(1.0 / 0.0036),
            "mw" => Some(1.0 / 3.6),
            _ => None,
        },
        EnergyType::NaturalGas | EnergyType::Water | EnergyType::CompressedAir => match unit {
            "m3h" | "nm3h" => Some(1.0),
            "m3min" | "nm3min" => Some(1.0 / 60.0),
            "ls" => Some(1000.0 / 3600.0),
            _ => None,
        },
        EnergyType::Steam | EnergyType::Coal => match unit {
            "th" => Some(1.0),
            "kgh" => Some(1000.0),
            _ => None,
        },
    }
}

/// Typical line pressure of a medium, MPa.
fn pressure_mpa(energy: EnergyType) -> f64 {
    match energy {
        EnergyType::Steam => 1.0,
        EnergyType::NaturalGas => 0.2,
        EnergyType::Water => 0.3,
        EnergyType::Heat => 0.6,
        EnergyType::CompressedAir => 0.7,
        EnergyType::Electricity | EnergyType::Coal => 0.1,
    }
}

/// Typical temperature of a medium, °C; heat meters tell supply from return by name.
fn temperature_c(energy: EnergyType, name: &str) -> f64 {
    match energy {
        // Saturated steam at 1 MPa.
        EnergyType::Steam => 184.0,
        EnergyType::Heat if name.contains("return") => 55.0,
        EnergyType::Heat => 85.0,
        EnergyType::Water => 15.0,
        EnergyType::NaturalGas | EnergyType::Coal => 20.0,
        EnergyType::CompressedAir => 30.0,
        EnergyType::Electricity => 35.0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{EndpointId, Level, ProfileId, SiteId};
    use crate::profiles::{ByteOrder, RegisterKind};

    pub(crate) fn point(
        name: &str,
        register: RegisterKind,
        address: u16,
        data_type: DataType,
        kind: PointKind,
        unit: &str,
    ) -> PointDef {
        PointDef {
            order: ByteOrder::Cdab,
            kind,
            unit: unit.to_owned(),
            ..PointDef::new(name, register, address, data_type)
        }
    }

    pub(crate) fn meter_config(energy: EnergyType, unit_id: u8) -> MeterConfig {
        use crate::config::MeterSource;
        MeterConfig {
            id: "w1".to_owned(),
            site: SiteId(0),
            energy,
            level: Level(3),
            profile: ProfileId(0),
            source: MeterSource::Modbus {
                endpoint: EndpointId(0),
                unit_id,
            },
            poll_interval: Duration::from_mins(1),
            pt: 1.0,
            ct: 1.0,
            calibration: None,
            replacements: Vec::new(),
            overrides: Vec::new(),
            consumption: None,
            role: crate::pipeline::energy::EnergyRole::Consumed,
            conversion: crate::pipeline::energy::Conversion::None,
            conversion_source: String::new(),
            lhv_kj_per_m3: None,
        }
    }

    /// A water meter: volume counter (F64, CDAB), flow gauge, pressure, a rolled-over
    /// counter, and a status coil.
    pub(crate) fn water_meter() -> SimMeter {
        let mut rolled = point(
            "small_m3",
            RegisterKind::Holding,
            8,
            DataType::U32,
            PointKind::Counter,
            "m3",
        );
        rolled.rollover = Some(100.0);
        rolled.scale = 0.001;
        let points = [
            point(
                "volume_m3",
                RegisterKind::Holding,
                0,
                DataType::F64,
                PointKind::Counter,
                "m3",
            ),
            point(
                "flow_m3h",
                RegisterKind::Holding,
                4,
                DataType::F32,
                PointKind::Gauge,
                "m3h",
            ),
            point(
                "pressure_mpa",
                RegisterKind::Holding,
                6,
                DataType::F32,
                PointKind::Gauge,
                "mpa",
            ),
            rolled,
            point(
                "running",
                RegisterKind::Coil,
                3,
                DataType::Bool,
                PointKind::Gauge,
                "",
            ),
        ];
        let load = LoadShape::constant(7.2, 50.0);
        SimMeter::new(&meter_config(EnergyType::Water, 5), &points, load)
    }

    #[test]
    fn roles_follow_unit_and_energy() {
        let m = water_meter();
        let t = EPOCH + 3600.0;
        assert_eq!(m.points[0].role, Role::Counter { per_main: 1.0 });
        assert_eq!(m.served_value(0, t), 57.2);
        assert_eq!(m.points[1].role, Role::Rate { per_main: 1.0 });
        assert_eq!(m.served_value(1, t), f64::from(7.2_f32));
        let p = m.served_value(2, t);
        assert!((0.29..0.31).contains(&p), "water pressure {p}");
        // 57.2 m³ wraps at 100 m³: unchanged; at +24 h it is 50 + 7.2 × 25 = 230 → 30.
        assert_eq!(m.served_value(3, t), 57_200.0 * 0.001);
        assert_eq!(m.served_value(3, EPOCH + 25.0 * 3600.0), 30_000.0 * 0.001);
    }

    #[test]
    fn sentinel_patterns() {
        let m = water_meter();
        let mut regs = [0u16; 4];
        m.encode(0, EPOCH, 0.0, Serve::Sentinel, &mut regs);
        assert!(
            f64::from_bits(
                (u64::from(regs[3]) << 48)
                    | (u64::from(regs[2]) << 32)
                    | (u64::from(regs[1]) << 16)
                    | u64::from(regs[0])
            )
            .is_nan()
        );
        let mut regs = [0u16; 4];
        m.encode(3, EPOCH, 0.0, Serve::Sentinel, &mut regs);
        assert_eq!(regs, [0xFFFF, 0xFFFF, 0, 0]);
    }

    #[test]
    fn spike_jumps_counters_only_and_never_wraps() {
        let m = water_meter();
        let t = EPOCH + 3600.0;
        let served = |i: usize, serve: Serve| {
            let mut regs = [0u16; 4];
            m.encode(i, t, 0.0, serve, &mut regs);
            let def = &m.points[i].def;
            (
                regs,
                scale_raw(
                    def,
                    decode_raw(&regs, def.data_type, def.order).value,
                    1.0,
                    1.0,
                ),
            )
        };
        // F64 counter: 57.2 m³ + 1 000 000 m³.
        assert_eq!(served(0, Serve::Spike).1, 57.2 + SPIKE_JUMP);
        // Gauges unchanged, bit for bit.
        assert_eq!(served(1, Serve::Spike).0, served(1, Serve::Normal).0);
        assert_eq!(served(2, Serve::Spike).0, served(2, Serve::Normal).0);
        // U32 ×0.001 counter wrapping at 100 m³: capped one count below, 99.999 (CDAB).
        assert_eq!(served(3, Serve::Spike).0, [0x869F, 0x0001, 0, 0]);
        assert_eq!(served(3, Serve::Spike).1, 99.999);

        // U32 ×0.01 counter, no declared rollover: the register's own top.
        let mut def = point(
            "volume_m3",
            RegisterKind::Input,
            0,
            DataType::U32,
            PointKind::Counter,
            "m3",
        );
        def.scale = 0.01;
        let cfg = meter_config(EnergyType::Water, 1);
        let low = SimMeter::new(&cfg, &[def.clone()], LoadShape::constant(0.0, 1000.0));
        let high = SimMeter::new(&cfg, &[def], LoadShape::constant(0.0, 42_949_000.0));
        let mut regs = [0u16; 4];
        low.encode(0, t, 0.0, Serve::Spike, &mut regs);
        // 1 001 000.00 m³ = 100 100 000 counts = 0x05F7_67A0.
        assert_eq!(regs, [0x67A0, 0x05F7, 0, 0]);
        high.encode(0, t, 0.0, Serve::Spike, &mut regs);
        // 0xFFFF_FFFE counts = 42 949 672.94 m³: neither a wrap nor the sentinel.
        assert_eq!(regs, [0xFFFE, 0xFFFF, 0, 0]);
    }
}
