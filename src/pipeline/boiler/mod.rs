//! Boiler thermal efficiency per window, by the direct (input-output) and the
//! indirect (heat-loss) method.
//!
//! Why a stage of its own: a boiler is not a meter. Its efficiency joins the
//! closed windows of several meters (fuel counter, steam or heat output,
//! flue-gas analyzer) with slowly changing lab data (dated fuel records) and
//! tables (loss coefficients, limits), so it runs after aggregation, on its
//! output, and never touches readings.
//!
//! * [`calc`]: the formulas, pure: one window's inputs in, one
//!   [`BoilerResult`] out (no allocation).
//! * [`tables`]: the loss coefficients per fuel class, the q₅ table and the
//!   limit (grade) table, as data files with a source per row.
//! * [`stage`]: the streaming join: collects each boiler's inputs per
//!   window out of [`super::aggregate::AggOutput`], and evaluates a window
//!   when all inputs are in or its grace time has passed.
//!
//! Units everywhere here: temperatures °C, pressures MPa **gauge** (as plant
//! gauges read them), O₂ % dry by volume, CO ppm, heat GJ, efficiencies and
//! losses in percent (points), rated capacity t/h (steam) or MW (hot water).

pub mod calc;
pub mod stage;
pub mod tables;

use crate::pipeline::steam::SteamState;

/// What a boiler makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoilerKind {
    /// Steam (output: steam mass with pressure and temperature, or a heat meter).
    Steam,
    /// Hot water (output: a heat meter, or water flow with supply and return temperatures).
    HotWater,
}

impl BoilerKind {
    /// Name as written in configuration (`steam`, `hot_water`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BoilerKind::Steam => "steam",
            BoilerKind::HotWater => "hot_water",
        }
    }
}

/// How the fuel is measured and which losses apply (from the fuel class row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuelKind {
    /// Gaseous fuel, counted in Nm³ (or m³); LHV in kJ/m³; q₄ = q₆ = 0.
    Gas,
    /// Liquid fuel, counted in t or kg; LHV in kJ/kg; q₄ = q₆ = 0.
    Oil,
    /// Solid fuel (coal, biomass), counted in t or kg; LHV in kJ/kg; q₄ and
    /// q₆ from the lab record.
    Solid,
}

/// How the boiler's useful output is measured (resolved at config load).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputKind {
    /// A steam mass counter (t or kg per `kg_per_unit`), priced by the
    /// enthalpy of the steam (window means of pressure and temperature,
    /// by `state` and `dryness`) over the feed water.
    SteamMass {
        /// kg per unit of the counter (1000 for t).
        kg_per_unit: f64,
        /// How the steam's state is decided.
        state: SteamState,
        /// Dryness fraction x (0 < x ≤ 1) of saturated steam.
        dryness: f64,
    },
    /// A heat counter: GJ per unit of the counter (1 for GJ, 0.001 for MJ,
    /// 0.0036 for kWh, 3.6 for MWh).
    Heat {
        /// GJ per unit of the counter.
        gj_per_unit: f64,
    },
    /// A water counter (m³ or t) with supply and return temperatures: heat =
    /// mass × (h(supply) − h(return)), h by IF97 at the window means.
    WaterFlow {
        /// kg per unit of the counter (1000 for t and for m³, taken as 1 t/m³).
        kg_per_unit: f64,
    },
}

/// A dated fuel record (lab analysis). The record in force for a window is
/// the latest whose `from` is not after the window's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FuelRecord {
    /// Unix seconds (local midnight of the record's date in the site's zone).
    pub from: i64,
    /// As-received net calorific value Q_net,v,ar, kJ per kg (solid, oil)
    /// or per m³ (gas).
    pub lhv_kj: f64,
    /// As-received ash A_ar, % (solid fuels).
    pub ash_pct: Option<f64>,
    /// As-received moisture M_ar, % (kept for the record and the grade table).
    pub moisture_pct: Option<f64>,
    /// Volatile matter V_daf, % (for the grade table).
    pub volatile_daf_pct: Option<f64>,
    /// Share of the ash leaving as slag, % (the rest is fly ash).
    pub slag_share_pct: Option<f64>,
    /// Combustible content of the slag C_lz, %.
    pub slag_combustible_pct: Option<f64>,
    /// Combustible content of the fly ash C_fh, %.
    pub fly_ash_combustible_pct: Option<f64>,
    /// Slag temperature, °C (default from the coefficient table).
    pub slag_temperature_c: Option<f64>,
}

/// The per-boiler constants the formulas need, resolved at config load.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerSpec {
    /// Steam or hot water.
    pub kind: BoilerKind,
    /// Rated capacity, t/h for steam, MW for hot water.
    pub rated_capacity: f64,
    /// Fuel measured how, which losses apply.
    pub fuel_kind: FuelKind,
    /// kg (solid, oil) or m³ (gas) per unit of the fuel counter.
    pub fuel_per_unit: f64,
    /// How the output is measured.
    pub output: OutputKind,
    /// q₂ = (m + n·α)(t_py − t_lk)/100 · (1 − q₄/100): m.
    pub q2_m: f64,
    /// … and n.
    pub q2_n: f64,
    /// q₃ = k·α·CO% · (1 − q₄/100): k.
    pub q3_k: f64,
    /// q₃ when CO is not measured, % (then the window is estimated).
    pub q3_default_pct: f64,
    /// β of the fuel (RO₂ from O₂ and CO), for the exact α when CO is known.
    pub beta: f64,
    /// Heating value of carbon in q₄, kJ/kg (32 866 by GB/T 10180 usage).
    pub carbon_kj_per_kg: f64,
    /// Default slag temperature, °C, when the record gives none.
    pub slag_temperature_c: f64,
    /// q₅ at rated load, %.
    pub q5_rated_pct: f64,
    /// Efficiency limits and grades for this boiler, when a row applies.
    pub limits: Option<tables::LimitRow>,
    /// The two methods disagree when |η₁ − η₂| exceeds this, points.
    pub disagreement_points: f64,
    /// Inputs below this coverage (0..=1) give no number for their method.
    pub min_coverage: f64,
}

/// Default of `[[boilers]] disagreement_points`: the methods disagree when
/// |η₁ − η₂| exceeds this many points.
pub const DEFAULT_DISAGREEMENT_POINTS: f64 = 5.0;

/// Default of `[boiler] min_coverage`.
pub const DEFAULT_MIN_COVERAGE: f64 = 0.9;

/// A set of a boiler's inputs: which are configured ([`calc::evaluate_with`])
/// or which arrived in a window ([`Inputs::present`]). A bit set, so it is
/// copied, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs(pub u16);

impl Inputs {
    /// The fuel counter.
    pub const FUEL: Inputs = Inputs(1);
    /// The output counter.
    pub const OUTPUT: Inputs = Inputs(1 << 1);
    /// Steam pressure.
    pub const STEAM_PRESSURE: Inputs = Inputs(1 << 2);
    /// Steam temperature.
    pub const STEAM_TEMPERATURE: Inputs = Inputs(1 << 3);
    /// Hot-water supply temperature.
    pub const SUPPLY_TEMPERATURE: Inputs = Inputs(1 << 4);
    /// Hot-water return temperature.
    pub const RETURN_TEMPERATURE: Inputs = Inputs(1 << 5);
    /// Feed-water temperature.
    pub const FEED_WATER: Inputs = Inputs(1 << 6);
    /// Exhaust temperature.
    pub const EXHAUST: Inputs = Inputs(1 << 7);
    /// O₂.
    pub const O2: Inputs = Inputs(1 << 8);
    /// CO.
    pub const CO: Inputs = Inputs(1 << 9);
    /// Cold-air temperature.
    pub const COLD_AIR: Inputs = Inputs(1 << 10);

    /// True when `other`'s bits are all set.
    #[must_use]
    pub fn contains(self, other: Inputs) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any of `other`'s bits is set.
    #[must_use]
    pub fn intersects(self, other: Inputs) -> bool {
        self.0 & other.0 != 0
    }

    /// The union.
    #[must_use]
    pub fn with(self, other: Inputs) -> Inputs {
        Inputs(self.0 | other.0)
    }

    /// The inputs that arrived in `w` (its `Some` fields).
    #[must_use]
    pub fn present(w: &WindowInputs) -> Inputs {
        let mut s = Inputs::default();
        for (p, bit) in [
            (w.fuel.is_some(), Inputs::FUEL),
            (w.output.is_some(), Inputs::OUTPUT),
            (w.steam_pressure.is_some(), Inputs::STEAM_PRESSURE),
            (w.steam_temperature.is_some(), Inputs::STEAM_TEMPERATURE),
            (w.supply_temperature.is_some(), Inputs::SUPPLY_TEMPERATURE),
            (w.return_temperature.is_some(), Inputs::RETURN_TEMPERATURE),
            (w.feed_water.is_some(), Inputs::FEED_WATER),
            (w.exhaust.is_some(), Inputs::EXHAUST),
            (w.o2.is_some(), Inputs::O2),
            (w.co_ppm.is_some(), Inputs::CO),
            (w.cold_air.is_some(), Inputs::COLD_AIR),
        ] {
            if p {
                s = s.with(bit);
            }
        }
        s
    }

    /// The inputs every boiler of `spec`'s output kind has (the contract's
    /// required keys): fuel and output; steam mass adds pressure, feed water
    /// and (unless `saturated`) temperature; water flow adds supply and
    /// return temperatures.
    #[must_use]
    pub fn required(spec: &BoilerSpec) -> Inputs {
        let base = Inputs::FUEL.with(Inputs::OUTPUT);
        match spec.output {
            OutputKind::SteamMass { state, .. } => {
                let s = base.with(Inputs::STEAM_PRESSURE).with(Inputs::FEED_WATER);
                if state == SteamState::Saturated {
                    s
                } else {
                    s.with(Inputs::STEAM_TEMPERATURE)
                }
            }
            OutputKind::Heat { .. } => base,
            OutputKind::WaterFlow { .. } => base
                .with(Inputs::SUPPLY_TEMPERATURE)
                .with(Inputs::RETURN_TEMPERATURE),
        }
    }
}

/// A window's amount of one counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    /// Counter difference in the counter's unit.
    pub amount: f64,
    /// Fraction of the window backed by good readings.
    pub coverage: f64,
    /// Interpolated across a long gap.
    pub estimated: bool,
}

/// A window's statistics of one gauge (or a fixed configured value: then
/// `mean = min = max` and `coverage = 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mean {
    /// Arithmetic mean of the good samples.
    pub mean: f64,
    /// Smallest good sample.
    pub min: f64,
    /// Largest good sample.
    pub max: f64,
    /// Good samples over samples expected in the window (0..=1).
    pub coverage: f64,
}

impl Mean {
    /// A configured constant.
    #[must_use]
    pub fn fixed(v: f64) -> Mean {
        Mean {
            mean: v,
            min: v,
            max: v,
            coverage: 1.0,
        }
    }
}

/// Everything one boiler window has; `None` where the input did not arrive
/// (or is not configured).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowInputs {
    /// Window length, seconds (a local day may be 23 or 25 h).
    pub window_secs: f64,
    /// Fuel consumed.
    pub fuel: Option<Amount>,
    /// Output counter (steam mass, heat or water).
    pub output: Option<Amount>,
    /// Steam pressure, MPa gauge.
    pub steam_pressure: Option<Mean>,
    /// Steam temperature, °C.
    pub steam_temperature: Option<Mean>,
    /// Hot-water supply temperature, °C.
    pub supply_temperature: Option<Mean>,
    /// Hot-water return temperature, °C.
    pub return_temperature: Option<Mean>,
    /// Feed-water temperature, °C.
    pub feed_water: Option<Mean>,
    /// Exhaust (flue-gas) temperature t_py, °C.
    pub exhaust: Option<Mean>,
    /// O₂, % dry.
    pub o2: Option<Mean>,
    /// CO, ppm.
    pub co_ppm: Option<Mean>,
    /// Cold-air temperature t_lk, °C.
    pub cold_air: Option<Mean>,
    /// Blow-down, % of the steam mass (counted in the useful heat).
    pub blowdown_pct: Option<f64>,
    /// Gas LHV measured on the fuel meter, kJ/m³ (used when no record is in force).
    pub meter_lhv_kj_per_m3: Option<f64>,
}

/// Whether the boiler was working in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoilerState {
    /// Fuel burned and every input covers the window.
    Running,
    /// Burned nothing: no efficiency, never a division by zero.
    Off,
    /// Fuel burned (or unknown) but an input is missing or covers only part
    /// of the window, or the burner was off for part of it.
    Partial,
}

impl BoilerState {
    /// Name written to the `state` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BoilerState::Running => "running",
            BoilerState::Off => "off",
            BoilerState::Partial => "partial",
        }
    }
}

/// Why a method gave no number, or why a window is estimated: a bit set, so
/// a result carries its reasons without allocating. [`Reasons::names`]
/// lists them as written to the `reasons` field (`method:reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasons(pub u32);

impl Reasons {
    /// Direct: no fuel window arrived (fuel meter down or absent).
    pub const DIRECT_NO_FUEL: Reasons = Reasons(1);
    /// Direct: the fuel window covers less than `min_coverage`.
    pub const DIRECT_FUEL_COVERAGE: Reasons = Reasons(1 << 1);
    /// Direct: no output window arrived.
    pub const DIRECT_NO_OUTPUT: Reasons = Reasons(1 << 2);
    /// Direct: the output window covers less than `min_coverage`.
    pub const DIRECT_OUTPUT_COVERAGE: Reasons = Reasons(1 << 3);
    /// Direct or indirect: no fuel record in force and no measured LHV.
    pub const NO_FUEL_RECORD: Reasons = Reasons(1 << 4);
    /// Direct: steam pressure or temperature missing.
    pub const DIRECT_NO_STEAM_STATE: Reasons = Reasons(1 << 5);
    /// Direct: feed-water temperature missing.
    pub const DIRECT_NO_FEED_WATER: Reasons = Reasons(1 << 6);
    /// Direct: supply or return temperature missing.
    pub const DIRECT_NO_WATER_TEMPERATURES: Reasons = Reasons(1 << 7);
    /// Indirect: no O₂ or no exhaust temperature (analyzer missing or down).
    pub const INDIRECT_NO_ANALYZER: Reasons = Reasons(1 << 8);
    /// Indirect: O₂ mean at or above 21 % (air, not flue gas).
    pub const INDIRECT_O2_AIR: Reasons = Reasons(1 << 9);
    /// Indirect: cold-air temperature missing.
    pub const INDIRECT_NO_COLD_AIR: Reasons = Reasons(1 << 10);
    /// Indirect: solid fuel without ash or combustible contents in its record.
    pub const INDIRECT_NO_LAB_DATA: Reasons = Reasons(1 << 11);
    /// Indirect: an analyzer signal covers less than `min_coverage`.
    pub const INDIRECT_ANALYZER_COVERAGE: Reasons = Reasons(1 << 12);
    /// Estimated: q₃ is the table's constant (CO not measured).
    pub const Q3_DEFAULT: Reasons = Reasons(1 << 13);
    /// Estimated: q₅ at rated load (the load is unknown).
    pub const Q5_RATED: Reasons = Reasons(1 << 14);
    /// Estimated: the steam temperature is far below saturation (sensor
    /// problem); h″ was used.
    pub const STEAM_TEMPERATURE_SUSPECT: Reasons = Reasons(1 << 15);
    /// Estimated: the analyzer's O₂ reached air (≥ 20.5 %) in part of the
    /// window: the burner was off for part of it.
    pub const BURNER_OFF_PART: Reasons = Reasons(1 << 16);
    /// Estimated: an input amount was interpolated across a gap.
    pub const INPUT_ESTIMATED: Reasons = Reasons(1 << 17);

    /// Every reason with its name, in bit order.
    pub const NAMES: [(Reasons, &'static str); 18] = [
        (Reasons::DIRECT_NO_FUEL, "direct:no_fuel_data"),
        (Reasons::DIRECT_FUEL_COVERAGE, "direct:fuel_coverage"),
        (Reasons::DIRECT_NO_OUTPUT, "direct:no_output_data"),
        (Reasons::DIRECT_OUTPUT_COVERAGE, "direct:output_coverage"),
        (Reasons::NO_FUEL_RECORD, "no_fuel_record"),
        (Reasons::DIRECT_NO_STEAM_STATE, "direct:no_steam_state"),
        (Reasons::DIRECT_NO_FEED_WATER, "direct:no_feed_water"),
        (
            Reasons::DIRECT_NO_WATER_TEMPERATURES,
            "direct:no_water_temperatures",
        ),
        (Reasons::INDIRECT_NO_ANALYZER, "indirect:no_analyzer"),
        (Reasons::INDIRECT_O2_AIR, "indirect:o2_at_or_above_21"),
        (Reasons::INDIRECT_NO_COLD_AIR, "indirect:no_cold_air"),
        (Reasons::INDIRECT_NO_LAB_DATA, "indirect:no_lab_data"),
        (
            Reasons::INDIRECT_ANALYZER_COVERAGE,
            "indirect:analyzer_coverage",
        ),
        (Reasons::Q3_DEFAULT, "estimated:q3_default"),
        (Reasons::Q5_RATED, "estimated:q5_rated"),
        (
            Reasons::STEAM_TEMPERATURE_SUSPECT,
            "estimated:steam_temperature_suspect",
        ),
        (Reasons::BURNER_OFF_PART, "estimated:burner_off_part"),
        (Reasons::INPUT_ESTIMATED, "estimated:input_interpolated"),
    ];

    /// True when `other`'s bits are all set.
    #[must_use]
    pub fn contains(self, other: Reasons) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets `other`'s bits.
    pub fn insert(&mut self, other: Reasons) {
        self.0 |= other.0;
    }

    /// True when no bit is set.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the bits set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Reasons::NAMES
            .into_iter()
            .filter(move |(r, _)| self.contains(*r))
            .map(|(_, n)| n)
    }
}

/// Grade of a window's efficiency against its limit row (GB 24500 style:
/// grade 1 best, grade 3 the limit value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    /// At or above grade 1.
    One,
    /// At or above grade 2.
    Two,
    /// At or above grade 3 (the limit value).
    Three,
    /// Below the limit value.
    BelowLimit,
}

impl Grade {
    /// Name written to the `grade` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::One => "1",
            Grade::Two => "2",
            Grade::Three => "3",
            Grade::BelowLimit => "below_limit",
        }
    }
}

/// Which limits a window broke: a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutOfLimit(pub u8);

impl OutOfLimit {
    /// Efficiency below the limit value (grade 3).
    pub const EFFICIENCY: OutOfLimit = OutOfLimit(1);
    /// Exhaust temperature above its limit.
    pub const EXHAUST: OutOfLimit = OutOfLimit(1 << 1);
    /// Excess-air coefficient above its limit.
    pub const EXCESS_AIR: OutOfLimit = OutOfLimit(1 << 2);

    /// Every item with its name (`efficiency`, `exhaust_c`, `alpha`).
    pub const NAMES: [(OutOfLimit, &'static str); 3] = [
        (OutOfLimit::EFFICIENCY, "efficiency"),
        (OutOfLimit::EXHAUST, "exhaust_c"),
        (OutOfLimit::EXCESS_AIR, "alpha"),
    ];

    /// True when no limit was broken.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when `other`'s bits are all set.
    #[must_use]
    pub fn contains(self, other: OutOfLimit) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One boiler window, evaluated. `None` fields are not written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoilerResult {
    /// Running, off or partial.
    pub state: BoilerState,
    /// η₁ = Q₁ / (B·Q_r) × 100, %.
    pub eta_direct: Option<f64>,
    /// η₂ = 100 − (q₂ + q₃ + q₄ + q₅ + q₆), %.
    pub eta_indirect: Option<f64>,
    /// Exhaust loss, %.
    pub q2: Option<f64>,
    /// Unburnt-gas loss, %.
    pub q3: Option<f64>,
    /// Unburnt-solid loss, % (0 for gas and oil).
    pub q4: Option<f64>,
    /// Radiation loss, %.
    pub q5: Option<f64>,
    /// Ash sensible-heat loss, % (0 for gas and oil).
    pub q6: Option<f64>,
    /// Excess-air coefficient.
    pub alpha: Option<f64>,
    /// Output over rated output, %.
    pub load_pct: Option<f64>,
    /// Useful heat delivered, GJ.
    pub heat_out_gj: Option<f64>,
    /// Heat of the fuel burned (B·Q_r), GJ.
    pub fuel_in_gj: Option<f64>,
    /// Window mean of the exhaust temperature, °C.
    pub exhaust_c_mean: Option<f64>,
    /// Window mean of O₂, % dry.
    pub o2_mean: Option<f64>,
    /// Smallest coverage of the inputs used (0..=1).
    pub coverage: f64,
    /// An input was estimated or a default was used (see `reasons`).
    pub estimated: bool,
    /// |η₁ − η₂| exceeds the boiler's `disagreement_points`.
    pub methods_disagree: bool,
    /// Grade of η (direct when present, else indirect) against the limit row.
    pub grade: Option<Grade>,
    /// Limits broken in this window.
    pub out_of_limit: OutOfLimit,
    /// Why a method gave no number, or why the window is estimated.
    pub reasons: Reasons,
}
