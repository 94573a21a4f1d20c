//! Simulated boilers: a fuel meter, an output meter and a flue-gas analyzer
//! that agree with each other the way a real boiler house does, so the
//! gateway's efficiency can be checked against a known truth.
//!
//! Why a model of its own: the gateway's `pipeline::boiler::calc` is what is
//! under test, so the simulator computes the losses again here, from the
//! same formulas (README "Boiler efficiency"), written separately; a test
//! compares two independent computations, not one with itself.
//!
//! # The model, per configured boiler
//! * **Load.** The output meter (steam mass, heat or water counter) follows a
//!   load shape of its own ([`LoadShape::for_boiler`]): a base between 84 and
//!   90 % of the rated output with a daily swing and a ripple of at most 10 %
//!   together, so the load stays between 75.6 and 99 % of rated and q₅ is
//!   its rated value throughout. A load override (`SimOptions::loads`) on the
//!   output meter replaces it; a base of 0 is a boiler that is **off**.
//! * **Flue gas** ([`FlueGas`]): constants per fuel kind (gas: O₂ 3.5 %,
//!   CO 50 ppm, exhaust 120 °C, boiler.md §7.4; solid: O₂ 8 %, CO 500 ppm,
//!   exhaust 160 °C, §7.3; oil: O₂ 4 %, CO 50 ppm, exhaust 150 °C), cold air
//!   [`COLD_AIR_C`] unless configured as a number. The analyzer serves them
//!   with a small wobble (O₂ ± 0.02 points, CO ± 1 %, exhaust ± 0.2 K, period
//!   300 s): a live analyzer never repeats a float bit for bit, so the
//!   validator's `frozen_after` catches a stuck one (`frozen` fault) and
//!   nothing else. An off boiler's analyzer reads air: O₂ 20.9 % (± 0.02,
//!   so never 21), CO 0, the exhaust at the cold-air temperature.
//! * **Losses and efficiency** ([`losses`]), with the boiler's coefficients
//!   (its [`BoilerSpec`]) and the fuel record in force when the simulator
//!   starts (else its first record, else the gas meter's `lhv_kj_per_m3`,
//!   else [`DEFAULT_LHV`]); a solid fuel's missing lab values are boiler.md
//!   §7.3's (A 22.7 %, slag 80 % at C 12 %, fly ash at C 20 %):
//!   α from O₂ and CO (the full form), q₄ first, q₂ = (m + n·α)(t_py − t_lk)/100
//!   · (1 − q₄/100), q₃ = k·α·CO% · (1 − q₄/100), q₅ = q₅,rated by the load
//!   rule at the load's base, q₆ from the ash, and **η = 100 − (q₂ + … + q₆)**.
//! * **Useful heat per unit of output.** Steam: `kg × (h_s − h_fw)` plus the
//!   blow-down `kg × blowdown/100 × (h′ − h_fw)`, h_s = h″ (times the dryness
//!   over h′) at the line's nominal pressure, or h(p, T) when the boiler says
//!   superheated; h_fw = h(p, t_feed) by IF97 (feed water is pumped to the
//!   boiler's pressure; [`FEED_WATER_C`] when it is a point). Heat counter:
//!   its GJ. Water counter: `kg × (h(supply) − h(return))` at 0 MPa gauge,
//!   [`SUPPLY_C`] and [`RETURN_C`].
//! * **Fuel.** `fuel rate = heat output rate / (LHV × η / 100)`: the fuel
//!   meter's load is the output's shape scaled by that constant, so its
//!   counter stays a closed-form integral and the true efficiency of every
//!   window is η exactly (a load override on the fuel meter replaces it).
//! * **Lines.** Points a boiler reads serve the model's values: steam
//!   temperature [`SATURATED_BELOW_K`] below saturation of the pressure
//!   served (so `auto` takes it as saturated), or [`SUPERHEAT_K`] above it
//!   for a superheated boiler; feed water, supply and return, cold air and
//!   the analyzer as above.
//!
//! Faults are the simulator's own, per meter: `frozen` on the analyzer is an
//! analyzer stuck, `no_response` on the fuel meter a fuel meter down.

use super::load::LoadShape;
use super::meter::{Role, SimMeter};
use crate::config::{BoilerConfig, Config, InputRef};
use crate::model::MeterId;
use crate::pipeline::boiler::{BoilerKind, BoilerSpec, FuelKind, FuelRecord, OutputKind};
use crate::pipeline::steam::{
    ATMOSPHERE_MPA, SteamState, enthalpy_kj_per_kg, saturated_enthalpy_kj_per_kg,
};

/// A saturated steam line reads this far below saturation, K.
pub const SATURATED_BELOW_K: f64 = 0.3;
/// A superheated steam line reads this far above saturation, K.
pub const SUPERHEAT_K: f64 = 50.0;
/// Cold (combustion) air, °C, when it is a point or not configured.
pub const COLD_AIR_C: f64 = 20.0;
/// Feed water, °C, when it is a point (make-up water).
pub const FEED_WATER_C: f64 = 20.0;
/// Hot-water supply, °C, when it is a point (boiler.md §7.4's 70 → 95 °C).
pub const SUPPLY_C: f64 = 95.0;
/// Hot-water return, °C, when it is a point.
pub const RETURN_C: f64 = 70.0;
/// Steam pressure, MPa gauge, when a boiler has none to read.
pub const STEAM_PRESSURE_MPA: f64 = 1.0;
/// O₂ of air, % dry: what an off boiler's analyzer reads.
pub const AIR_O2_PCT: f64 = 20.9;
/// MW of heat per t/h of steam: the customary equivalence for a steam
/// boiler whose output is a heat counter.
pub const MW_PER_STEAM_TH: f64 = 0.7;

/// LHV when a boiler has neither a fuel record nor a measured one: methane
/// (kJ/m³, boiler.md §7.4), a light fuel oil (kJ/kg, typical), a bituminous
/// coal (kJ/kg, boiler.md §7.3).
pub const DEFAULT_LHV: [(FuelKind, f64); 3] = [
    (FuelKind::Gas, 35_818.0),
    (FuelKind::Oil, 42_000.0),
    (FuelKind::Solid, 21_500.0),
];

/// Wobble amplitudes of what the analyzer serves: O₂ (points), CO (share
/// of the value), exhaust (K); cold air, feed water, supply and return (K:
/// small, so a window's mean supply − return stays within 0.1 % of 25 K).
const O2_WOBBLE: f64 = 0.02;
const CO_WOBBLE: f64 = 0.01;
const EXHAUST_WOBBLE: f64 = 0.2;
const WATER_WOBBLE: f64 = 0.01;

/// The flue gas a boiler makes (window means of a steady fire).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlueGas {
    /// O₂, % dry.
    pub o2_pct: f64,
    /// CO, ppm.
    pub co_ppm: f64,
    /// Exhaust temperature, °C.
    pub exhaust_c: f64,
}

impl FlueGas {
    /// A natural-gas fire (boiler.md §7.4).
    pub const GAS: FlueGas = FlueGas {
        o2_pct: 3.5,
        co_ppm: 50.0,
        exhaust_c: 120.0,
    };
    /// An oil fire.
    pub const OIL: FlueGas = FlueGas {
        o2_pct: 4.0,
        co_ppm: 50.0,
        exhaust_c: 150.0,
    };
    /// A grate-fired coal (boiler.md §7.3).
    pub const SOLID: FlueGas = FlueGas {
        o2_pct: 8.0,
        co_ppm: 500.0,
        exhaust_c: 160.0,
    };

    /// The fire of `kind`.
    #[must_use]
    pub fn of(kind: FuelKind) -> FlueGas {
        match kind {
            FuelKind::Gas => FlueGas::GAS,
            FuelKind::Oil => FlueGas::OIL,
            FuelKind::Solid => FlueGas::SOLID,
        }
    }

    /// Air at `cold_air_c`: what the analyzer of an off boiler reads.
    #[must_use]
    pub fn air(cold_air_c: f64) -> FlueGas {
        FlueGas {
            o2_pct: AIR_O2_PCT,
            co_ppm: 0.0,
            exhaust_c: cold_air_c,
        }
    }

    /// How an analyzer serves O₂.
    pub(crate) fn o2_role(self) -> Role {
        Role::Level {
            value: self.o2_pct,
            wobble: O2_WOBBLE,
        }
    }

    /// How an analyzer serves CO.
    pub(crate) fn co_role(self) -> Role {
        Role::Level {
            value: self.co_ppm,
            wobble: self.co_ppm * CO_WOBBLE,
        }
    }

    /// How an analyzer serves the exhaust temperature.
    pub(crate) fn exhaust_role(self) -> Role {
        Role::Level {
            value: self.exhaust_c,
            wobble: EXHAUST_WOBBLE,
        }
    }
}

/// A boiler's losses, %, and its excess-air coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Losses {
    /// Excess-air coefficient α.
    pub alpha: f64,
    /// Exhaust loss.
    pub q2: f64,
    /// Unburnt-gas loss.
    pub q3: f64,
    /// Unburnt-solid loss.
    pub q4: f64,
    /// Radiation loss.
    pub q5: f64,
    /// Ash sensible-heat loss.
    pub q6: f64,
}

impl Losses {
    /// η = 100 − (q₂ + q₃ + q₄ + q₅ + q₆), %.
    #[must_use]
    pub fn eta(&self) -> f64 {
        100.0 - (self.q2 + self.q3 + self.q4 + self.q5 + self.q6)
    }
}

/// The lab values of a solid fuel the losses need (as-received).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ash {
    /// Ash A_ar, %.
    pub ash_pct: f64,
    /// Share of the ash leaving as slag, %.
    pub slag_share_pct: f64,
    /// Combustible content of the slag C_lz, %.
    pub slag_combustible_pct: f64,
    /// Combustible content of the fly ash C_fh, %.
    pub fly_ash_combustible_pct: f64,
    /// Slag temperature, °C.
    pub slag_temperature_c: f64,
}

impl Ash {
    /// The record's values, boiler.md §7.3's where it has none (and the
    /// spec's slag temperature).
    #[must_use]
    pub fn of(record: Option<&FuelRecord>, spec: &BoilerSpec) -> Ash {
        let r =
            |f: fn(&FuelRecord) -> Option<f64>, default: f64| record.and_then(f).unwrap_or(default);
        Ash {
            ash_pct: r(|r| r.ash_pct, 22.7),
            slag_share_pct: r(|r| r.slag_share_pct, 80.0),
            slag_combustible_pct: r(|r| r.slag_combustible_pct, 12.0),
            fly_ash_combustible_pct: r(|r| r.fly_ash_combustible_pct, 20.0),
            slag_temperature_c: r(|r| r.slag_temperature_c, spec.slag_temperature_c),
        }
    }
}

/// Specific heat of ash, kJ/(kg·K), at `t` °C (boiler.md §3.7).
fn ash_heat(t: f64) -> f64 {
    0.71 + 5.02e-4 * t
}

/// q₅ at `load_pct` from its rated value: rated at 75 % load and above,
/// × 100/load between 30 and 75 %, × 1/0.3 below 30 %.
#[must_use]
pub fn q5_at(q5_rated: f64, load_pct: f64) -> f64 {
    if load_pct >= 75.0 {
        q5_rated
    } else if load_pct >= 30.0 {
        q5_rated * 100.0 / load_pct
    } else {
        q5_rated / 0.3
    }
}

/// The losses of a boiler with coefficients `spec` burning a fuel of
/// `lhv_kj` (per kg or m³) and, when solid, `ash`, with flue gas `flue`,
/// cold air at `cold_air_c` and load `load_pct` (module doc).
#[must_use]
pub fn losses(
    spec: &BoilerSpec,
    lhv_kj: f64,
    ash: Option<Ash>,
    flue: FlueGas,
    cold_air_c: f64,
    load_pct: f64,
) -> Losses {
    let co = flue.co_ppm / 1e4;
    let o2 = flue.o2_pct;
    let ro2 = (21.0 - o2 - (0.605 + spec.beta) * co) / (1.0 + spec.beta);
    let alpha = 21.0 / (21.0 - 79.0 * (o2 - 0.5 * co) / (100.0 - ro2 - o2 - co));
    let (q4, q6) = match (spec.fuel_kind, ash) {
        (FuelKind::Solid, Some(a)) => {
            let slag = a.slag_share_pct / 100.0;
            let fly = 1.0 - slag;
            let (c_lz, c_fh) = (a.slag_combustible_pct, a.fly_ash_combustible_pct);
            // Combustible left per kg of fuel: A/100 × Σ a_i·C_i/(100 − C_i)
            // kg, as a share of Q_r in percent (boiler.md's 328.66 form
            // takes the shares a_i in percent).
            let q4 = spec.carbon_kj_per_kg
                * a.ash_pct
                * (slag * c_lz / (100.0 - c_lz) + fly * c_fh / (100.0 - c_fh))
                / lhv_kj;
            let (t_lz, t_fh) = (a.slag_temperature_c, flue.exhaust_c);
            let q6 = 100.0
                * a.ash_pct
                * (slag * ash_heat(t_lz) * t_lz / (100.0 - c_lz)
                    + fly * ash_heat(t_fh) * t_fh / (100.0 - c_fh))
                / lhv_kj;
            (q4, q6)
        }
        _ => (0.0, 0.0),
    };
    let unburnt = 1.0 - q4 / 100.0;
    Losses {
        alpha,
        q2: (spec.q2_m + spec.q2_n * alpha) * (flue.exhaust_c - cold_air_c) / 100.0 * unburnt,
        q3: spec.q3_k * alpha * co * unburnt,
        q4,
        q5: q5_at(spec.q5_rated_pct, load_pct),
        q6,
    }
}

/// What the simulator knows of one boiler: the truth the gateway's numbers
/// are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerTruth {
    /// The boiler's id.
    pub id: String,
    /// Its fuel meter.
    pub fuel_meter: MeterId,
    /// Its output meter.
    pub output_meter: MeterId,
    /// False when the output's load is 0 (off: no fuel burned).
    pub running: bool,
    /// The flue gas (air when off).
    pub flue: FlueGas,
    /// Cold air, °C.
    pub cold_air_c: f64,
    /// LHV of the fuel, kJ per kg or m³.
    pub lhv_kj: f64,
    /// The solid fuel's ash data used.
    pub ash: Option<Ash>,
    /// Load at the output's base rate, % of rated.
    pub load_pct: f64,
    /// The losses (as if running, also when off).
    pub losses: Losses,
    /// Useful heat per unit of the output meter's consumption counter, GJ.
    pub heat_gj_per_output_unit: f64,
    /// Fuel heat per unit of the fuel meter's consumption counter, GJ.
    pub fuel_gj_per_fuel_unit: f64,
    /// Steam pressure, MPa gauge, and temperature, °C, the model used (steam mass output).
    pub steam: Option<(f64, f64)>,
    /// Feed water, °C (steam).
    pub feed_water_c: Option<f64>,
    /// Supply and return, °C (water counter output).
    pub water_c: Option<(f64, f64)>,
}

impl BoilerTruth {
    /// The true efficiency, %: η of [`Losses`] (`None` when off).
    #[must_use]
    pub fn eta(&self) -> Option<f64> {
        self.running.then(|| self.losses.eta())
    }
}

/// Why a boiler cannot be simulated (it is then served as plain meters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Skipped {
    /// The boiler.
    pub boiler: String,
    /// Why.
    pub reason: &'static str,
}

/// The consumption counter of meter `m` and how many of its unit one main
/// unit of the load is.
fn counter_of(config: &Config, meters: &[SimMeter], m: MeterId) -> Option<f64> {
    let point = config.meter(m).consumption?;
    match meters[m.index()].points.get(point)?.role {
        Role::Counter { per_main } if per_main > 0.0 => Some(per_main),
        _ => None,
    }
}

/// The value input `r` has in the model: a number as configured, a point at
/// `default` (which that point is then made to serve, wobbling by
/// `wobble`), `None` when not configured.
fn input(meters: &mut [SimMeter], r: InputRef, default: f64, wobble: f64) -> Option<f64> {
    match r {
        InputRef::None => None,
        InputRef::Fixed(v) => Some(v),
        InputRef::Point { meter, point } => {
            set_role(
                meters,
                meter,
                point,
                Role::Level {
                    value: default,
                    wobble,
                },
            );
            Some(default)
        }
    }
}

/// Point `point` of `meter` serves `role` (ignored for an index out of range).
fn set_role(meters: &mut [SimMeter], meter: MeterId, point: usize, role: Role) {
    if let Some(p) = meters
        .get_mut(meter.index())
        .and_then(|m| m.points.get_mut(point))
    {
        p.role = role;
    }
}

/// The record in force at `now`: the latest whose `from` is not after it,
/// else the first.
fn record_at(records: &[FuelRecord], now: f64) -> Option<&FuelRecord> {
    records
        .iter()
        .rev()
        .find(|r| (r.from as f64) <= now)
        .or_else(|| records.first())
}

/// Sets up every boiler of `config` on `meters` (module doc): output and fuel
/// loads (unless `overridden` says a test gave one), the points the boiler
/// reads, and its truth. `now` (Unix seconds) picks the fuel record. Boilers
/// that cannot be simulated are returned apart, their meters left as they were.
pub(crate) fn plan(
    config: &Config,
    meters: &mut [SimMeter],
    overridden: &[bool],
    now: f64,
) -> (Vec<BoilerTruth>, Vec<Skipped>) {
    let mut truths = Vec::with_capacity(config.boilers.len());
    let mut skipped = Vec::new();
    let mut fuel_claimed = vec![false; meters.len()];
    for b in &config.boilers {
        match simulate(config, b, meters, overridden, &mut fuel_claimed, now) {
            Ok(t) => truths.push(t),
            Err(reason) => skipped.push(Skipped {
                boiler: b.id.clone(),
                reason,
            }),
        }
    }
    (truths, skipped)
}

/// Heat per main unit of the output's load, GJ, and the rated output in
/// main units per hour; sets the steam and water points the output needs.
struct Output {
    gj_per_main: f64,
    rated_per_hour: f64,
    steam: Option<(f64, f64)>,
    feed_water_c: Option<f64>,
    water_c: Option<(f64, f64)>,
}

fn output(
    b: &BoilerConfig,
    meters: &mut [SimMeter],
    per_main: f64,
) -> Result<Output, &'static str> {
    let spec = &b.spec;
    let rated_mw = match spec.kind {
        BoilerKind::Steam => spec.rated_capacity * MW_PER_STEAM_TH,
        BoilerKind::HotWater => spec.rated_capacity,
    };
    let rated_gj_h = rated_mw * 3.6;
    let no_enthalpy = "no IF97 enthalpy for the boiler's steam or water";
    match spec.output {
        OutputKind::Heat { gj_per_unit } => Ok(Output {
            gj_per_main: per_main * gj_per_unit,
            rated_per_hour: rated_gj_h / (per_main * gj_per_unit),
            steam: None,
            feed_water_c: None,
            water_c: None,
        }),
        OutputKind::WaterFlow { kg_per_unit } => {
            let supply =
                input(meters, b.supply_temperature, SUPPLY_C, WATER_WOBBLE).unwrap_or(SUPPLY_C);
            let ret =
                input(meters, b.return_temperature, RETURN_C, WATER_WOBBLE).unwrap_or(RETURN_C);
            let dh = enthalpy_kj_per_kg(0.0, supply).ok_or(no_enthalpy)?
                - enthalpy_kj_per_kg(0.0, ret).ok_or(no_enthalpy)?;
            if dh <= 0.0 {
                return Err("supply not above return");
            }
            let kg_per_main = per_main * kg_per_unit;
            Ok(Output {
                gj_per_main: kg_per_main * dh / 1e6,
                rated_per_hour: rated_gj_h * 1e6 / dh / kg_per_main,
                steam: None,
                feed_water_c: None,
                water_c: Some((supply, ret)),
            })
        }
        OutputKind::SteamMass {
            kg_per_unit,
            state,
            dryness,
        } => {
            let superheated = state == SteamState::Superheated;
            let p = match b.steam_pressure {
                InputRef::Fixed(v) => v,
                InputRef::Point { meter, point } => meters[meter.index()].nominal_value(point),
                InputRef::None => STEAM_PRESSURE_MPA,
            };
            let p_abs = p + ATMOSPHERE_MPA;
            let t_sat =
                crate::pipeline::steam::saturation_temperature_c(p_abs).ok_or(no_enthalpy)?;
            let t = if superheated {
                t_sat + SUPERHEAT_K
            } else {
                t_sat - SATURATED_BELOW_K
            };
            match (b.steam_pressure, b.steam_temperature) {
                (
                    InputRef::Point { meter, point },
                    InputRef::Point {
                        meter: tm,
                        point: tp,
                    },
                ) if meter == tm => {
                    meters[meter.index()].steam_coherent(point, tp, superheated);
                }
                (_, InputRef::Point { meter, point }) => {
                    set_role(
                        meters,
                        meter,
                        point,
                        Role::Level {
                            value: t,
                            wobble: 0.0,
                        },
                    );
                }
                _ => {}
            }
            let h_s = if superheated {
                enthalpy_kj_per_kg(p, t).ok_or(no_enthalpy)?
            } else {
                saturated_enthalpy_kj_per_kg(p_abs, dryness).ok_or(no_enthalpy)?
            };
            let feed =
                input(meters, b.feed_water, FEED_WATER_C, WATER_WOBBLE).unwrap_or(FEED_WATER_C);
            let h_fw = enthalpy_kj_per_kg(p, feed).ok_or(no_enthalpy)?;
            let h_liquid = saturated_enthalpy_kj_per_kg(p_abs, 0.0).ok_or(no_enthalpy)?;
            let blowdown = b.blowdown_pct.unwrap_or(0.0) / 100.0;
            let kj_per_kg = h_s - h_fw + blowdown * (h_liquid - h_fw);
            let kg_per_main = per_main * kg_per_unit;
            Ok(Output {
                gj_per_main: kg_per_main * kj_per_kg / 1e6,
                rated_per_hour: match spec.kind {
                    BoilerKind::Steam => spec.rated_capacity * 1000.0 / kg_per_main,
                    BoilerKind::HotWater => rated_gj_h * 1e6 / kj_per_kg / kg_per_main,
                },
                steam: Some((p, t)),
                feed_water_c: Some(feed),
                water_c: None,
            })
        }
    }
}

/// One boiler (see [`plan`]).
fn simulate(
    config: &Config,
    b: &BoilerConfig,
    meters: &mut [SimMeter],
    overridden: &[bool],
    fuel_claimed: &mut [bool],
    now: f64,
) -> Result<BoilerTruth, &'static str> {
    let (out_m, fuel_m) = (b.output_meter.index(), b.fuel_meter.index());
    if out_m >= meters.len() || fuel_m >= meters.len() || out_m == fuel_m {
        return Err("fuel and output must be two meters of the configuration");
    }
    if fuel_claimed[fuel_m] {
        return Err("its fuel meter already feeds another simulated boiler");
    }
    let out_per_main = counter_of(config, meters, b.output_meter)
        .ok_or("the output meter has no consumption counter")?;
    let fuel_per_main = counter_of(config, meters, b.fuel_meter)
        .ok_or("the fuel meter has no consumption counter")?;
    let spec = &b.spec;
    let out = output(b, meters, out_per_main)?;
    if !(out.rated_per_hour.is_finite() && out.rated_per_hour > 0.0 && out.gj_per_main > 0.0) {
        return Err("no positive rated output");
    }
    if !overridden[out_m] {
        meters[out_m].load = LoadShape::for_boiler(&b.id, out.rated_per_hour);
    }
    let shape = meters[out_m].load;
    let running = shape.base > 0.0;
    let load_pct = 100.0 * shape.base / out.rated_per_hour;

    let cold_air_c = input(meters, b.cold_air, COLD_AIR_C, WATER_WOBBLE).unwrap_or(COLD_AIR_C);
    let flue = if running {
        FlueGas::of(spec.fuel_kind)
    } else {
        FlueGas::air(cold_air_c)
    };
    for (r, role) in [
        (b.o2, flue.o2_role()),
        (b.co_ppm, flue.co_role()),
        (b.exhaust, flue.exhaust_role()),
    ] {
        if let InputRef::Point { meter, point } = r {
            set_role(meters, meter, point, role);
        }
    }

    let record = record_at(&b.fuel_records, now);
    let lhv_kj = record
        .map(|r| r.lhv_kj)
        .or(b
            .meter_lhv_kj_per_m3
            .filter(|_| spec.fuel_kind == FuelKind::Gas))
        .or_else(|| {
            DEFAULT_LHV
                .iter()
                .find(|(k, _)| *k == spec.fuel_kind)
                .map(|(_, v)| *v)
        })
        .filter(|v| *v > 0.0)
        .ok_or("no positive LHV")?;
    let ash = (spec.fuel_kind == FuelKind::Solid).then(|| Ash::of(record, spec));
    let burning = FlueGas::of(spec.fuel_kind);
    let losses = losses(spec, lhv_kj, ash, burning, cold_air_c, load_pct);
    let eta = losses.eta();
    if !(eta.is_finite() && eta > 0.0) {
        return Err("the model's efficiency is not positive");
    }
    let fuel_gj_per_main = fuel_per_main * spec.fuel_per_unit * lhv_kj / 1e6;
    if !overridden[fuel_m] {
        // fuel rate = heat rate / (LHV × η/100), in the fuel's main unit.
        let k = out.gj_per_main / (fuel_gj_per_main * eta / 100.0);
        let initial = meters[fuel_m].load.initial;
        meters[fuel_m].load = LoadShape {
            base: shape.base * k,
            initial,
            ..shape
        };
    }
    fuel_claimed[fuel_m] = true;
    Ok(BoilerTruth {
        id: b.id.clone(),
        fuel_meter: b.fuel_meter,
        output_meter: b.output_meter,
        running,
        flue,
        cold_air_c,
        lhv_kj,
        ash,
        load_pct,
        losses,
        heat_gj_per_output_unit: out.gj_per_main / out_per_main,
        fuel_gj_per_fuel_unit: fuel_gj_per_main / fuel_per_main,
        steam: out.steam,
        feed_water_c: out.feed_water_c,
        water_c: out.water_c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::steam::SteamState;

    /// The coefficients of boiler.md's examples: (0.5 + 3.5α), 3.2·α·CO,
    /// carbon 32 866 kJ/kg, slag at 600 °C.
    fn spec(fuel_kind: FuelKind, beta: f64, q5_rated_pct: f64) -> BoilerSpec {
        BoilerSpec {
            kind: BoilerKind::Steam,
            rated_capacity: 10.0,
            fuel_kind,
            fuel_per_unit: 1.0,
            output: OutputKind::SteamMass {
                kg_per_unit: 1000.0,
                state: SteamState::Auto,
                dryness: 1.0,
            },
            q2_m: 0.5,
            q2_n: 3.5,
            q3_k: 3.2,
            q3_default_pct: 0.5,
            beta,
            carbon_kj_per_kg: 32_866.0,
            slag_temperature_c: 600.0,
            q5_rated_pct,
            limits: None,
            disagreement_points: 5.0,
            min_coverage: 0.9,
        }
    }

    fn close(got: f64, want: f64, within: f64) {
        assert!((got - want).abs() <= within, "{got} vs {want} (± {within})");
    }

    #[test]
    fn bituminous_chain_grate_of_boiler_md_7_3() {
        // β of the §7.3 coal: 2.35·(3.5 − 0.126·7 + 0.038·1)/(55 + 0.375·0.8).
        let beta = 2.35 * (3.5 - 0.126 * 7.0 + 0.038 * 1.0) / (55.0 + 0.375 * 0.8);
        close(beta, 0.1129, 5e-5);
        let spec = spec(FuelKind::Solid, beta, 1.7);
        let ash = Ash::of(None, &spec);
        let l = losses(&spec, 21_500.0, Some(ash), FlueGas::SOLID, 20.0, 100.0);
        close(l.alpha, 1.5965, 5e-5);
        close(l.q4, 5.52, 5e-3);
        close(l.q2, 8.05, 5e-3);
        close(l.q3, 0.241, 5e-4);
        close(l.q5, 1.70, 0.0);
        close(l.q6, 0.616, 5e-4);
        close(l.eta(), 83.87, 5e-3);
    }

    #[test]
    fn methane_fire_tube_of_boiler_md_7_4() {
        // RO₂,max of methane 11.73 %: β = 21/11.73 − 1.
        let spec = spec(FuelKind::Gas, 21.0 / 11.73 - 1.0, 1.5);
        let l = losses(&spec, 35_818.0, None, FlueGas::GAS, 20.0, 80.0);
        close(l.alpha, 1.179, 5e-4);
        close(l.q2, 4.63, 5e-3);
        close(l.q3, 0.019, 5e-4);
        assert_eq!((l.q4, l.q6), (0.0, 0.0));
        // boiler.md rounds 100 − 4.63 − 0.019 − 1.5 to "≈ 93.8".
        close(l.eta(), 93.85, 0.01);
    }

    #[test]
    fn q5_follows_the_load_rule() {
        assert_eq!(q5_at(1.7, 100.0), 1.7);
        assert_eq!(q5_at(1.7, 75.0), 1.7);
        close(q5_at(1.7, 50.0), 3.4, 1e-12);
        close(q5_at(1.7, 30.0), 1.7 / 0.3, 1e-12);
        close(q5_at(1.7, 10.0), 1.7 / 0.3, 1e-12);
    }

    #[test]
    fn a_boiler_load_stays_where_q5_is_rated() {
        for id in ["fz01-b1", "xm02-b1", "b", "boiler-0099"] {
            let l = LoadShape::for_boiler(id, 10.0);
            l.validate().expect("valid shape");
            let mut t = super::super::load::EPOCH;
            for _ in 0..2000 {
                let r = l.rate(t);
                assert!((7.56..=9.9).contains(&r), "{id}: {r} t/h at {t}");
                t += 397.0;
            }
        }
    }

    #[test]
    fn the_record_in_force_is_the_latest_not_after_now_else_the_first() {
        let rec = |from, lhv_kj| FuelRecord {
            from,
            lhv_kj,
            ash_pct: None,
            moisture_pct: None,
            volatile_daf_pct: None,
            slag_share_pct: None,
            slag_combustible_pct: None,
            fly_ash_combustible_pct: None,
            slag_temperature_c: None,
        };
        let records = [rec(100, 1.0), rec(200, 2.0)];
        assert_eq!(record_at(&records, 50.0).map(|r| r.lhv_kj), Some(1.0));
        assert_eq!(record_at(&records, 100.0).map(|r| r.lhv_kj), Some(1.0));
        assert_eq!(record_at(&records, 250.0).map(|r| r.lhv_kj), Some(2.0));
        assert_eq!(record_at(&[], 250.0), None);
    }
}
