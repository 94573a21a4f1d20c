//! The efficiency formulas, pure: one window's inputs in, one
//! [`BoilerResult`] out. Sources and confidence of every formula and
//! constant: README "Boiler efficiency" and `config/coefficients/boiler.toml`.
//!
//! Why one module of small functions: every loss is a public pure function
//! ([`alpha_quick`], [`alpha_with_co`], [`q2`], [`q3`], [`q4`],
//! [`q5_at_load`], [`q6`], [`ash_specific_heat`], [`grade`]) that a test or
//! a reader checks by hand; [`evaluate_with`] only decides which of them a
//! window's inputs allow, in the order the method needs (q₄ first: q₂ and
//! q₃ are scaled by 1 − q₄/100), and says why when a method gives no
//! number. Nothing here allocates.

use super::tables::MW_PER_T_H;
use super::{
    Amount, BoilerKind, BoilerResult, BoilerSpec, BoilerState, FuelKind, FuelRecord, Grade, Inputs,
    Mean, OutOfLimit, OutputKind, Reasons, WindowInputs,
};
use crate::pipeline::steam::{
    ATMOSPHERE_MPA, SteamMargins, enthalpy_kj_per_kg, saturated_enthalpy_kj_per_kg, steam_enthalpy,
};

/// O₂ in dry air, % by volume: α's reference and the "air, not flue gas"
/// threshold of a window's O₂ mean.
pub const O2_AIR_PCT: f64 = 21.0;

/// N₂ (with argon) in dry air, %: the 79 of α's nitrogen form.
const N2_AIR_PCT: f64 = 79.0;

/// A window whose O₂ maximum reaches this (with a mean below
/// [`O2_AIR_PCT`]) saw air for part of the window: the burner was off for
/// part of it (boiler.md §8 rejects O₂ ≥ 20.5 %).
pub const BURNER_OFF_O2_PCT: f64 = 20.5;

/// q₅ at rated value from this load up, % (PetroChina heater rule, boiler.md
/// §3.6, \[P\]).
pub const Q5_FULL_LOAD_PCT: f64 = 75.0;

/// Below this load q₅ is q₅,rated / 0.3, % (same rule).
pub const Q5_LOW_LOAD_PCT: f64 = 30.0;

/// ppm per % by volume.
const PPM_PER_PCT: f64 = 1e4;

/// kJ per GJ.
const KJ_PER_GJ: f64 = 1e6;

/// The reasons that make a window estimated.
const ESTIMATED: Reasons = Reasons(
    Reasons::Q3_DEFAULT.0
        | Reasons::Q5_RATED.0
        | Reasons::STEAM_TEMPERATURE_SUSPECT.0
        | Reasons::BURNER_OFF_PART.0
        | Reasons::INPUT_ESTIMATED.0,
);

/// The flue-gas side of the inputs: its members present mean an analyzer is
/// configured (for [`evaluate`]'s inference).
const ANALYZER: Inputs =
    Inputs(Inputs::EXHAUST.0 | Inputs::O2.0 | Inputs::CO.0 | Inputs::COLD_AIR.0);

/// Excess-air coefficient from dry O₂ alone: α = 21 / (21 − O₂) [P, the
/// quick form; about 1–2 % above the full form].
#[must_use]
pub fn alpha_quick(o2_pct: f64) -> f64 {
    O2_AIR_PCT / (O2_AIR_PCT - o2_pct)
}

/// RO₂ (CO₂ + SO₂, dry %) from O₂ and CO by the fuel characteristic β
/// [M, textbook]: RO₂ = (21 − O₂ − (0.605 + β)·CO) / (1 + β), CO in %.
#[must_use]
pub fn ro2_pct(o2_pct: f64, co_pct: f64, beta: f64) -> f64 {
    (O2_AIR_PCT - o2_pct - (0.605 + beta) * co_pct) / (1.0 + beta)
}

/// Excess-air coefficient, full (nitrogen) form, with RO₂ from
/// [`ro2_pct`]: α = 21 / (21 − 79·(O₂ − 0.5·CO) / (100 − RO₂ − O₂ − CO))
/// [P, PetroChina `airCoefficient`], all dry %, CO in % (ppm / 10⁴).
#[must_use]
pub fn alpha_with_co(o2_pct: f64, co_pct: f64, beta: f64) -> f64 {
    let n2 = 100.0 - ro2_pct(o2_pct, co_pct, beta) - o2_pct - co_pct;
    O2_AIR_PCT / (O2_AIR_PCT - N2_AIR_PCT * (o2_pct - 0.5 * co_pct) / n2)
}

/// Exhaust loss, %: q₂ = (m + n·α)(t_py − t_lk)/100 · (1 − q₄/100)
/// [P, PetroChina `exhaustHeatLoss`; m = 0.5, n = 3.5, not reversed].
#[must_use]
pub fn q2(m: f64, n: f64, alpha: f64, exhaust_c: f64, cold_air_c: f64, q4_pct: f64) -> f64 {
    (m + n * alpha) * (exhaust_c - cold_air_c) / 100.0 * (1.0 - q4_pct / 100.0)
}

/// Unburnt-gas loss, %: q₃ = k·α·CO · (1 − q₄/100), CO in % [P, PetroChina;
/// k = 3.2].
#[must_use]
pub fn q3(k: f64, alpha: f64, co_pct: f64, q4_pct: f64) -> f64 {
    k * alpha * co_pct * (1.0 - q4_pct / 100.0)
}

/// Unburnt-solid loss, %: q₄ = Q_C · A_ar · Σ aᵢ·Cᵢ/(100 − Cᵢ) / Q_r over
/// slag (share a = `slag_share_pct`/100, combustible C_lz) and fly ash
/// (1 − a, C_fh), with Q_C the heating value of carbon in kJ/kg and Q_r in
/// kJ/kg [P: GB/T 10180-style code; the same as boiler.md's
/// 328.66·A_ar·Σ αᵢ%·Cᵢ/(100 − Cᵢ)/Q_r with the shares in %].
#[must_use]
pub fn q4(
    carbon_kj_per_kg: f64,
    ash_pct: f64,
    slag_share_pct: f64,
    slag_combustible_pct: f64,
    fly_ash_combustible_pct: f64,
    q_r_kj: f64,
) -> f64 {
    let a_slag = slag_share_pct / 100.0;
    let sum = a_slag * slag_combustible_pct / (100.0 - slag_combustible_pct)
        + (1.0 - a_slag) * fly_ash_combustible_pct / (100.0 - fly_ash_combustible_pct);
    carbon_kj_per_kg * ash_pct * sum / q_r_kj
}

/// q₅ at `load_pct` from q₅ at rated load [P, PetroChina heater rule]:
/// × 1 from 75 % load up, × 100/load from 30 to 75 %, × 1/0.3 below 30 %.
#[must_use]
pub fn q5_at_load(q5_rated_pct: f64, load_pct: f64) -> f64 {
    if load_pct >= Q5_FULL_LOAD_PCT {
        q5_rated_pct
    } else if load_pct >= Q5_LOW_LOAD_PCT {
        q5_rated_pct * 100.0 / load_pct
    } else {
        q5_rated_pct * 100.0 / Q5_LOW_LOAD_PCT
    }
}

/// Mean specific heat of ash from 0 to `t_c` °C, kJ/(kg·K):
/// c = 0.71 + 5.02·10⁻⁴·t [P, GB/T 10184 port].
#[must_use]
pub fn ash_specific_heat(t_c: f64) -> f64 {
    0.71 + 5.02e-4 * t_c
}

/// Ash sensible-heat loss, %:
/// q₆ = 100 · A_ar · [a·(c·t)_slag/(100 − C_lz) + (1 − a)·(c·t)_fly/(100 − C_fh)] / Q_r,
/// with c by [`ash_specific_heat`] and a = `slag_share_pct`/100 [M structure,
/// P code].
#[must_use]
pub fn q6(
    ash_pct: f64,
    slag_share_pct: f64,
    slag_combustible_pct: f64,
    slag_c: f64,
    fly_ash_combustible_pct: f64,
    fly_c: f64,
    q_r_kj: f64,
) -> f64 {
    let a_slag = slag_share_pct / 100.0;
    let ct = |t: f64| ash_specific_heat(t) * t;
    100.0
        * ash_pct
        * (a_slag * ct(slag_c) / (100.0 - slag_combustible_pct)
            + (1.0 - a_slag) * ct(fly_c) / (100.0 - fly_ash_combustible_pct))
        / q_r_kj
}

/// Grade of `eta_pct` against `[grade 1, grade 2, grade 3]`: at or above a
/// grade's value earns it; below grade 3 (the limit value) is below limit.
#[must_use]
pub fn grade(eta_pct: f64, grades: [f64; 3]) -> Grade {
    if eta_pct >= grades[0] {
        Grade::One
    } else if eta_pct >= grades[1] {
        Grade::Two
    } else if eta_pct >= grades[2] {
        Grade::Three
    } else {
        Grade::BelowLimit
    }
}

/// Evaluates one boiler window by both methods. `record` is the fuel record
/// in force at the window's start (`None`: none is).
///
/// Which inputs are configured is inferred: those [`Inputs::required`] by
/// the output kind, every input present, and exhaust, O₂ and cold air
/// whenever any flue-gas input is present. A stage that knows the
/// configuration calls [`evaluate_with`] instead, so that a configured
/// analyzer that sent nothing makes the window partial.
#[must_use]
pub fn evaluate(
    spec: &BoilerSpec,
    record: Option<&FuelRecord>,
    w: &WindowInputs,
    margins: SteamMargins,
) -> BoilerResult {
    let present = Inputs::present(w);
    let mut configured = Inputs::required(spec).with(present);
    if present.intersects(ANALYZER) {
        configured = configured
            .with(Inputs::EXHAUST)
            .with(Inputs::O2)
            .with(Inputs::COLD_AIR);
    }
    evaluate_with(spec, configured, record, w, margins)
}

/// Evaluates one boiler window by both methods (README "Boiler
/// efficiency"); `configured` are the inputs the boiler has, so that one
/// missing makes the window partial.
#[must_use]
pub fn evaluate_with(
    spec: &BoilerSpec,
    configured: Inputs,
    record: Option<&FuelRecord>,
    w: &WindowInputs,
    margins: SteamMargins,
) -> BoilerResult {
    let min = spec.min_coverage;
    let mut r = BoilerResult {
        state: BoilerState::Partial,
        eta_direct: None,
        eta_indirect: None,
        q2: None,
        q3: None,
        q4: None,
        q5: None,
        q6: None,
        alpha: None,
        load_pct: None,
        heat_out_gj: None,
        fuel_in_gj: None,
        exhaust_c_mean: w.exhaust.map(|m| m.mean),
        o2_mean: w.o2.map(|m| m.mean),
        coverage: 0.0,
        estimated: false,
        methods_disagree: false,
        grade: None,
        out_of_limit: OutOfLimit::default(),
        reasons: Reasons::default(),
    };
    let (coverage, all_covered) = coverage(w, min);
    r.coverage = coverage;
    // A negative or non-finite amount is no amount (validation should have
    // caught it; nothing is divided by it).
    let fuel = w.fuel.filter(|a| a.amount.is_finite() && a.amount >= 0.0);
    let output = w.output.filter(|a| a.amount.is_finite());
    let mut reasons = Reasons::default();
    if fuel.is_some_and(|a| a.estimated) || output.is_some_and(|a| a.estimated) {
        reasons.insert(Reasons::INPUT_ESTIMATED);
    }
    r.heat_out_gj = heat_out_gj(spec, output, w, margins, &mut reasons);
    r.load_pct = load_pct(spec, output, r.heat_out_gj, w.window_secs);

    if fuel.is_some_and(|a| a.amount == 0.0) {
        // Off: nothing burned, so no efficiency and no loss; only what says
        // how the amounts written were found is kept.
        r.state = BoilerState::Off;
        r.fuel_in_gj = Some(0.0);
        r.reasons = Reasons(
            reasons.0 & (Reasons::INPUT_ESTIMATED.0 | Reasons::STEAM_TEMPERATURE_SUSPECT.0),
        );
        finish(spec, w, &mut r);
        return r;
    }

    let q_r = heat_input_kj(spec.fuel_kind, record, w);
    if q_r.is_none() {
        reasons.insert(Reasons::NO_FUEL_RECORD);
    }
    r.fuel_in_gj = fuel
        .zip(q_r)
        .map(|(a, q)| a.amount * spec.fuel_per_unit * q / KJ_PER_GJ);

    // Direct: η₁ = 100 · Q₁ / (B · Q_r).
    let fuel_ok = amount_ok(
        fuel,
        min,
        Reasons::DIRECT_NO_FUEL,
        Reasons::DIRECT_FUEL_COVERAGE,
        &mut reasons,
    );
    let output_ok = amount_ok(
        output,
        min,
        Reasons::DIRECT_NO_OUTPUT,
        Reasons::DIRECT_OUTPUT_COVERAGE,
        &mut reasons,
    );
    if fuel_ok && output_ok {
        r.eta_direct = r
            .heat_out_gj
            .zip(r.fuel_in_gj)
            .filter(|&(_, f)| f > 0.0)
            .map(|(h, f)| 100.0 * h / f);
    }

    // Indirect: η₂ = 100 − (q₂ + q₃ + q₄ + q₅ + q₆).
    if let Some(l) = indirect(spec, record, w, r.load_pct, &mut reasons) {
        r.alpha = Some(l.alpha);
        r.q2 = Some(l.q2);
        r.q3 = Some(l.q3);
        r.q4 = Some(l.q4);
        r.q5 = Some(l.q5);
        r.q6 = Some(l.q6);
        r.eta_indirect = Some(100.0 - (l.q2 + l.q3 + l.q4 + l.q5 + l.q6));
    }

    let burned = fuel.is_some_and(|a| a.amount > 0.0);
    r.state = if burned
        && all_covered
        && Inputs::present(w).contains(configured)
        && !reasons.contains(Reasons::BURNER_OFF_PART)
    {
        BoilerState::Running
    } else {
        BoilerState::Partial
    };
    r.reasons = reasons;
    if let (Some(d), Some(i)) = (r.eta_direct, r.eta_indirect) {
        r.methods_disagree = (d - i).abs() > spec.disagreement_points;
    }
    finish(spec, w, &mut r);
    r
}

/// The smallest coverage of the inputs present (0 when none is), and
/// whether every one reaches `min`.
fn coverage(w: &WindowInputs, min: f64) -> (f64, bool) {
    let amounts = [w.fuel, w.output].into_iter().flatten().map(|a| a.coverage);
    let means = [
        w.steam_pressure,
        w.steam_temperature,
        w.supply_temperature,
        w.return_temperature,
        w.feed_water,
        w.exhaust,
        w.o2,
        w.co_ppm,
        w.cold_air,
    ]
    .into_iter()
    .flatten()
    .map(|m| m.coverage);
    let mut lowest: Option<f64> = None;
    for c in amounts.chain(means) {
        lowest = Some(lowest.map_or(c, |l| l.min(c)));
    }
    match lowest {
        Some(c) => (c, c >= min),
        None => (0.0, true),
    }
}

/// Whether an amount is there and covers the window; sets `missing` or
/// `low` otherwise.
fn amount_ok(
    a: Option<Amount>,
    min: f64,
    missing: Reasons,
    low: Reasons,
    reasons: &mut Reasons,
) -> bool {
    match a {
        None => {
            reasons.insert(missing);
            false
        }
        Some(a) if a.coverage < min => {
            reasons.insert(low);
            false
        }
        Some(_) => true,
    }
}

/// Q_r, kJ per kg or m³ of fuel: the record in force, or for gas the fuel
/// meter's measured LHV; `None` when neither is a positive number.
fn heat_input_kj(kind: FuelKind, record: Option<&FuelRecord>, w: &WindowInputs) -> Option<f64> {
    let lhv = match (record, kind) {
        (Some(r), _) => Some(r.lhv_kj),
        (None, FuelKind::Gas) => w.meter_lhv_kj_per_m3,
        (None, _) => None,
    };
    lhv.filter(|q| q.is_finite() && *q > 0.0)
}

/// Useful heat Q₁ of the window, GJ (README "Direct method"); a zero output
/// is zero heat whatever else is missing. Sets the direct method's reasons
/// for what the heat needs and does not have.
fn heat_out_gj(
    spec: &BoilerSpec,
    output: Option<Amount>,
    w: &WindowInputs,
    margins: SteamMargins,
    reasons: &mut Reasons,
) -> Option<f64> {
    let out = output?;
    match spec.output {
        OutputKind::Heat { gj_per_unit } => Some(out.amount * gj_per_unit),
        OutputKind::SteamMass {
            kg_per_unit,
            state,
            dryness,
        } => {
            let kg = out.amount * kg_per_unit;
            if kg == 0.0 {
                return Some(0.0);
            }
            let p = w.steam_pressure.map(|m| m.mean);
            let t = w.steam_temperature.map(|m| m.mean);
            let (Some(p), Some(hs)) = (p, steam_enthalpy(p, t, state, dryness, margins)) else {
                reasons.insert(Reasons::DIRECT_NO_STEAM_STATE);
                return None;
            };
            if hs.suspect {
                reasons.insert(Reasons::STEAM_TEMPERATURE_SUSPECT);
            }
            // Feed water is pumped to the boiler's pressure: h at (p, t_fw).
            let Some(h_fw) = w.feed_water.and_then(|f| enthalpy_kj_per_kg(p, f.mean)) else {
                reasons.insert(Reasons::DIRECT_NO_FEED_WATER);
                return None;
            };
            let mut kj = kg * (hs.h - h_fw);
            if let Some(bd) = w.blowdown_pct.filter(|b| *b > 0.0) {
                // Blow-down leaves as saturated water h′(p), heated from feed water.
                let Some(h_liquid) = saturated_enthalpy_kj_per_kg(p + ATMOSPHERE_MPA, 0.0) else {
                    reasons.insert(Reasons::DIRECT_NO_STEAM_STATE);
                    return None;
                };
                kj += kg * bd / 100.0 * (h_liquid - h_fw);
            }
            Some(kj / KJ_PER_GJ)
        }
        OutputKind::WaterFlow { kg_per_unit } => {
            let kg = out.amount * kg_per_unit;
            if kg == 0.0 {
                return Some(0.0);
            }
            // Hot-water loops: enthalpies at atmospheric pressure (0 MPa g).
            let h = |m: Option<Mean>| m.and_then(|m| enthalpy_kj_per_kg(0.0, m.mean));
            let (Some(hs), Some(hr)) = (h(w.supply_temperature), h(w.return_temperature)) else {
                reasons.insert(Reasons::DIRECT_NO_WATER_TEMPERATURES);
                return None;
            };
            Some(kg * (hs - hr) / KJ_PER_GJ)
        }
    }
}

/// Load over rated output, % (README "Load"); `None` when the output does
/// not cover the window or the heat it needs is unknown.
fn load_pct(
    spec: &BoilerSpec,
    output: Option<Amount>,
    heat_gj: Option<f64>,
    window_secs: f64,
) -> Option<f64> {
    let out = output.filter(|o| o.coverage >= spec.min_coverage)?;
    let hours = window_secs / 3600.0;
    if !(hours > 0.0 && spec.rated_capacity > 0.0) {
        return None;
    }
    let pct = match (spec.output, spec.kind) {
        (OutputKind::SteamMass { kg_per_unit, .. }, _) => {
            100.0 * (out.amount * kg_per_unit / 1000.0 / hours) / spec.rated_capacity
        }
        // A steam boiler by its heat: 0.7 MW per t/h (the customary equivalence).
        (_, BoilerKind::Steam) => {
            100.0 * (heat_gj? / hours / 3.6) / (spec.rated_capacity * MW_PER_T_H)
        }
        (_, BoilerKind::HotWater) => 100.0 * (heat_gj? / hours / 3.6) / spec.rated_capacity,
    };
    pct.is_finite().then_some(pct)
}

/// The indirect method's losses of one window.
struct Losses {
    alpha: f64,
    q2: f64,
    q3: f64,
    q4: f64,
    q5: f64,
    q6: f64,
}

/// A solid fuel's lab data for q₄ and q₆.
struct Lab {
    q_r: f64,
    ash: f64,
    slag_share: f64,
    c_slag: f64,
    c_fly: f64,
    t_slag: f64,
}

/// The lab data of a solid fuel's record, when complete and in range.
fn lab(spec: &BoilerSpec, rec: &FuelRecord) -> Option<Lab> {
    let pct = |v: Option<f64>, hi: f64| v.filter(|x| (0.0..hi).contains(x));
    Some(Lab {
        q_r: Some(rec.lhv_kj).filter(|q| q.is_finite() && *q > 0.0)?,
        ash: pct(rec.ash_pct, 100.0)?,
        slag_share: rec.slag_share_pct.filter(|x| (0.0..=100.0).contains(x))?,
        // C = 100 would divide by zero: a residue cannot be all combustible.
        c_slag: pct(rec.slag_combustible_pct, 100.0)?,
        c_fly: pct(rec.fly_ash_combustible_pct, 100.0)?,
        t_slag: rec.slag_temperature_c.unwrap_or(spec.slag_temperature_c),
    })
}

/// The losses, or `None` with the reasons why not (README "Indirect
/// method"). Also sets `BURNER_OFF_PART` and the estimated reasons of the
/// defaults used.
fn indirect(
    spec: &BoilerSpec,
    record: Option<&FuelRecord>,
    w: &WindowInputs,
    load_pct: Option<f64>,
    reasons: &mut Reasons,
) -> Option<Losses> {
    let min = spec.min_coverage;
    let mut blocked = false;
    let lab = if spec.fuel_kind == FuelKind::Solid {
        match record {
            None => {
                // NO_FUEL_RECORD is already set: Q_r is unknown.
                blocked = true;
                None
            }
            Some(rec) => {
                let l = lab(spec, rec);
                if l.is_none() {
                    reasons.insert(Reasons::INDIRECT_NO_LAB_DATA);
                    blocked = true;
                }
                l
            }
        }
    } else {
        None
    };
    let (Some(o2), Some(exhaust)) = (w.o2, w.exhaust) else {
        reasons.insert(Reasons::INDIRECT_NO_ANALYZER);
        return None;
    };
    if o2.max >= BURNER_OFF_O2_PCT && o2.mean < O2_AIR_PCT {
        reasons.insert(Reasons::BURNER_OFF_PART);
    }
    // NaN is no flue gas either.
    if o2.mean >= O2_AIR_PCT || o2.mean.is_nan() {
        reasons.insert(Reasons::INDIRECT_O2_AIR);
        blocked = true;
    }
    if [Some(o2), Some(exhaust), w.co_ppm, w.cold_air]
        .into_iter()
        .flatten()
        .any(|m| m.coverage < min)
    {
        reasons.insert(Reasons::INDIRECT_ANALYZER_COVERAGE);
        blocked = true;
    }
    let Some(cold_air) = w.cold_air else {
        reasons.insert(Reasons::INDIRECT_NO_COLD_AIR);
        return None;
    };
    if blocked {
        return None;
    }

    let q4 = lab.as_ref().map_or(0.0, |l| {
        q4(
            spec.carbon_kj_per_kg,
            l.ash,
            l.slag_share,
            l.c_slag,
            l.c_fly,
            l.q_r,
        )
    });
    // A CO analyzer reading a little below zero reads no CO.
    let co_pct = w.co_ppm.map(|c| c.mean.max(0.0) / PPM_PER_PCT);
    let alpha = match co_pct {
        Some(co) => alpha_with_co(o2.mean, co, spec.beta),
        None => alpha_quick(o2.mean),
    };
    if !(alpha.is_finite() && alpha > 0.0) {
        // Only an O₂/CO pair no flue gas can have gets here.
        reasons.insert(Reasons::INDIRECT_O2_AIR);
        return None;
    }
    let q2 = q2(spec.q2_m, spec.q2_n, alpha, exhaust.mean, cold_air.mean, q4);
    let q3 = if let Some(co) = co_pct {
        q3(spec.q3_k, alpha, co, q4)
    } else {
        reasons.insert(Reasons::Q3_DEFAULT);
        spec.q3_default_pct
    };
    let q5 = if let Some(load) = load_pct {
        q5_at_load(spec.q5_rated_pct, load)
    } else {
        reasons.insert(Reasons::Q5_RATED);
        spec.q5_rated_pct
    };
    let q6 = lab.as_ref().map_or(0.0, |l| {
        q6(
            l.ash,
            l.slag_share,
            l.c_slag,
            l.t_slag,
            l.c_fly,
            exhaust.mean,
            l.q_r,
        )
    });
    Some(Losses {
        alpha,
        q2,
        q3,
        q4,
        q5,
        q6,
    })
}

/// Estimated flag, grade and limits, the same for every state.
fn finish(spec: &BoilerSpec, w: &WindowInputs, r: &mut BoilerResult) {
    r.estimated = r.reasons.0 & ESTIMATED.0 != 0;
    let Some(limits) = spec.limits else {
        return;
    };
    let mut out = 0;
    if let Some(eta) = r.eta_direct.or(r.eta_indirect) {
        let g = grade(eta, limits.eta_grades);
        r.grade = Some(g);
        if g == Grade::BelowLimit {
            out |= OutOfLimit::EFFICIENCY.0;
        }
    }
    if let (Some(max), Some(ex)) = (limits.exhaust_c_max, w.exhaust)
        && ex.mean > max
    {
        out |= OutOfLimit::EXHAUST.0;
    }
    if let (Some(max), Some(a)) = (limits.alpha_max, r.alpha)
        && a > max
    {
        out |= OutOfLimit::EXCESS_AIR.0;
    }
    r.out_of_limit = OutOfLimit(out);
}
