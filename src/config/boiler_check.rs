//! One `[[boilers]]` element checked against everything the site files
//! declared (split from [`super::boilers`], which holds the types, `[boiler]`
//! and the order of the files): its scalars, the fuel and output meters and
//! what their counters measure, the tables' fuel class, q₅ and limit row,
//! and the assembly of the [`BoilerConfig`]. The gauge inputs are checked in
//! `boiler_inputs`, the dated fuel records in `boiler_records`.

use std::path::Path;

use super::boiler_records::records;
use super::boilers::{BoilerConfig, Combustion, InputRef, Known, limit_row};
use super::raw::BoilerRaw;
use crate::check::{self, Flag, Float, Problems, Text, choice, unknown_ref};
use crate::model::{MeterId, SiteId};
use crate::pipeline::boiler::tables::FuelClass;
use crate::pipeline::boiler::{
    BoilerKind, BoilerSpec, DEFAULT_DISAGREEMENT_POINTS, FuelKind, OutputKind,
};
use crate::pipeline::energy::Conversion;
use crate::pipeline::steam::SteamState;
use crate::profiles::Profile;

/// Checks the `[[boilers]]` element `r` at `key` of site `site`'s `file`
/// (all but its `id`, which the caller checks for duplicates); the
/// boiler, with an empty id, when it is complete.
pub(super) fn element(
    known: &Known<'_>,
    site: SiteId,
    file: &Path,
    key: &str,
    r: &BoilerRaw,
    p: &mut Problems,
) -> Option<BoilerConfig> {
    BoilerCheck {
        known,
        site,
        file,
        key,
        p,
    }
    .boiler(r)
}

/// One `[[boilers]]` element being checked.
pub(super) struct BoilerCheck<'a, 'k> {
    pub(super) known: &'a Known<'k>,
    pub(super) site: SiteId,
    pub(super) file: &'a Path,
    pub(super) key: &'a str,
    pub(super) p: &'a mut Problems,
}

impl BoilerCheck<'_, '_> {
    /// `boilers[i].sub`.
    pub(super) fn k(&self, sub: &str) -> String {
        format!("{}.{sub}", self.key)
    }

    /// The complete meter named `name`, of this boiler's site; `None` (with
    /// a problem, unless the meter is declared but broken) otherwise.
    pub(super) fn meter(&mut self, name: &str, at: &str) -> Option<MeterId> {
        match self.known.meter_ids.get(name) {
            None => {
                let here = self
                    .known
                    .meter_ids
                    .iter()
                    .filter(|(_, (_, d))| d.file == self.file)
                    .map(|(id, _)| id.as_str());
                self.p.push(at, unknown_ref("meter", name, here));
                None
            }
            Some((_, d)) if d.file != self.file => {
                self.p.push(
                    at,
                    format!(
                        "meter \"{name}\" belongs to another site ({}); a boiler's meters are meters of its own site file",
                        d.file.display()
                    ),
                );
                None
            }
            // Declared but broken: its own problems are reported already.
            Some((id, _)) => self
                .known
                .meters
                .get(id.index())
                .filter(|m| m.id == name && m.site == self.site)
                .map(|_| *id),
        }
    }

    pub(super) fn profile(&self, m: MeterId) -> &Profile {
        &self.known.profiles[self.known.meters[m.index()].profile.index()]
    }

    /// The unit of meter `m`'s consumption counter, or a problem at `at`.
    fn counter_unit(&mut self, m: MeterId, at: &str) -> Option<String> {
        let meter = &self.known.meters[m.index()];
        let prof = self.profile(m);
        if let Some(pt) = meter.consumption.and_then(|i| prof.points.get(i)) {
            return Some(pt.unit.clone());
        }
        let msg = format!(
            "meter \"{}\" has no consumption counter (profile \"{}\" has none); a boiler's fuel and output are counters",
            meter.id, prof.id
        );
        self.p.push(at, msg);
        None
    }

    /// A number in `range` (`what` says which), or a problem.
    fn number(
        &mut self,
        v: Option<Float>,
        sub: &str,
        ok: impl Fn(f64) -> bool,
        rule: &str,
    ) -> Result<Option<f64>, ()> {
        match v {
            None => Ok(None),
            Some(Float(x)) if x.is_finite() && ok(x) => Ok(Some(x)),
            Some(Float(x)) => {
                self.p
                    .push(self.k(sub), format!("{x} is out of range; {rule}"));
                Err(())
            }
        }
    }

    /// A key given where it does not apply: a problem (`why`), false.
    pub(super) fn not_here(&mut self, given: bool, sub: &str, why: &str) -> bool {
        if given {
            self.p.push(self.k(sub), format!("{why}; remove it"));
        }
        !given
    }

    /// A required key is absent: a problem (`hint`), false.
    pub(super) fn missing(&mut self, absent: bool, sub: &str, hint: &str) -> bool {
        if absent {
            self.p
                .push(self.k(sub), format!("missing required key; {hint}"));
        }
        !absent
    }

    /// `rated_capacity`: required, > 0.
    fn rated(&mut self, v: Option<Float>) -> Option<f64> {
        let rule = "give the rated capacity, a number > 0 (t/h for steam, MW for hot water)";
        match v {
            None => {
                self.missing(true, "rated_capacity", rule);
                None
            }
            Some(Float(x)) if x.is_finite() && x > 0.0 => Some(x),
            Some(Float(x)) => {
                self.p.push(
                    self.k("rated_capacity"),
                    format!("{x} is not a capacity; {rule}"),
                );
                None
            }
        }
    }

    /// `fuel`: a class of the coefficient table.
    fn fuel_class(&mut self, v: Option<Text>) -> Option<&FuelClass> {
        let table = &self.known.settings?.coefficients;
        let keys = || table.fuels.iter().map(|f| f.key.as_str());
        let Some(Text(f)) = v else {
            let msg = format!(
                "give a fuel class of the boiler coefficient table: {}",
                keys().collect::<Vec<_>>().join(", ")
            );
            self.missing(true, "fuel", &msg);
            return None;
        };
        let class = table.fuel(&f);
        if class.is_none() {
            self.p
                .push(self.k("fuel"), unknown_ref("fuel class", &f, keys()));
        }
        class
    }

    /// A required meter reference (`fuel_meter`, `output_meter`).
    fn required_meter(&mut self, v: Option<Text>, sub: &str, what: &str) -> Option<MeterId> {
        if let Some(Text(name)) = v {
            return self.meter(&name, &self.k(sub));
        }
        let hint = format!("give the id of {what}, a meter of this site");
        self.missing(true, sub, &hint);
        None
    }

    /// The fuel meter's counter: units of fuel (kg or m³) per counter unit.
    fn fuel_counter(&mut self, m: MeterId, kind: FuelKind) -> Option<f64> {
        let at = self.k("fuel_meter");
        let unit = self.counter_unit(m, &at)?;
        let per_unit = match (kind, unit.as_str()) {
            (FuelKind::Gas, "nm3" | "m3") | (FuelKind::Oil | FuelKind::Solid, "kg") => Some(1.0),
            (FuelKind::Oil | FuelKind::Solid, "t") => Some(1000.0),
            _ => None,
        };
        if per_unit.is_none() {
            let fits = if kind == FuelKind::Gas {
                "a gas is counted in nm3 or m3"
            } else {
                "solid and liquid fuels are counted in t or kg"
            };
            let id = &self.known.meters[m.index()].id;
            self.p
                .push(at, format!("meter \"{id}\" counts \"{unit}\"; {fits}"));
        }
        per_unit
    }

    /// The output meter's counter: how the output is measured.
    fn output_counter(
        &mut self,
        m: MeterId,
        kind: BoilerKind,
        state: SteamState,
        dryness: f64,
    ) -> Option<OutputKind> {
        let at = self.k("output_meter");
        let unit = self.counter_unit(m, &at)?;
        let out = match (kind, unit.as_str()) {
            (_, "gj") => Some(OutputKind::Heat { gj_per_unit: 1.0 }),
            (_, "mj") => Some(OutputKind::Heat { gj_per_unit: 0.001 }),
            (_, "kwh") => Some(OutputKind::Heat {
                gj_per_unit: 0.0036,
            }),
            (_, "mwh") => Some(OutputKind::Heat { gj_per_unit: 3.6 }),
            (BoilerKind::Steam, "t" | "kg") => Some(OutputKind::SteamMass {
                kg_per_unit: if unit == "t" { 1000.0 } else { 1.0 },
                state,
                dryness,
            }),
            // Water is taken as 1 t per m³.
            (BoilerKind::HotWater, "m3" | "t") => Some(OutputKind::WaterFlow {
                kg_per_unit: 1000.0,
            }),
            _ => None,
        };
        if out.is_none() {
            let fits = match kind {
                BoilerKind::Steam => {
                    "a steam-mass counter (t or kg) or a heat counter (gj, mj, kwh or mwh)"
                }
                BoilerKind::HotWater => {
                    "a heat counter (gj, mj, kwh or mwh) or a water counter (m3 or t)"
                }
            };
            let id = &self.known.meters[m.index()].id;
            self.p.push(
                at,
                format!(
                    "meter \"{id}\" counts \"{unit}\"; the output of a {} boiler is {fits}",
                    kind.as_str()
                ),
            );
        }
        out
    }

    /// The optional numbers: blow-down, q₅ and q₃ overrides, disagreement.
    fn numbers(&mut self, r: &BoilerRaw) -> Option<Numbers> {
        let blowdown = self.number(
            r.blowdown_pct,
            "blowdown_pct",
            |x| (0.0..=50.0).contains(&x),
            "use a percentage of the steam mass, 0 to 50",
        );
        let q5 = self.number(
            r.q5_rated_pct,
            "q5_rated_pct",
            |x| x > 0.0 && x < 100.0,
            "use a loss in %, above 0",
        );
        let q3 = self.number(
            r.q3_pct,
            "q3_pct",
            |x| (0.0..100.0).contains(&x),
            "use a loss in %, 0 or more",
        );
        let disagreement = self.number(
            r.disagreement_points,
            "disagreement_points",
            |x| x > 0.0,
            "use points of efficiency above 0 (default 5)",
        );
        Some(Numbers {
            blowdown: blowdown.ok()?,
            q5: q5.ok()?,
            q3: q3.ok()?,
            disagreement: disagreement.ok()?,
        })
    }

    /// Everything of the element but its id (checked by the caller).
    fn boiler(&mut self, r: &BoilerRaw) -> Option<BoilerConfig> {
        let name = check::required_text(
            r.name.clone(),
            &self.k("name"),
            "give the boiler's name (free text)",
            self.p,
        );
        let kind = choice(
            r.kind.clone(),
            &self.k("kind"),
            "boiler kind",
            &[
                ("steam", BoilerKind::Steam),
                ("hot_water", BoilerKind::HotWater),
            ],
            None,
            self.p,
        );
        let rated = self.rated(r.rated_capacity);
        let class = self.fuel_class(r.fuel.clone()).cloned();
        let fuel_kind = class.as_ref().map(|c| c.kind);
        let combustion = choice(
            r.combustion.clone(),
            &self.k("combustion"),
            "combustion",
            &[
                ("layered", Combustion::Layered),
                ("fluidized_bed", Combustion::FluidizedBed),
                ("chamber", Combustion::Chamber),
            ],
            Some(fuel_kind.map_or(Combustion::Chamber, Combustion::default_for)),
            self.p,
        );
        let condensing = r.condensing.is_some_and(|Flag(c)| c);
        let mut ok = fuel_kind.is_none_or(|k| {
            k == FuelKind::Gas
                || self.not_here(r.condensing.is_some(), "condensing", "only for gas boilers")
        });

        let fuel_meter = self.required_meter(
            r.fuel_meter.clone(),
            "fuel_meter",
            "the meter whose consumption counter is the fuel",
        );
        let output_meter = self.required_meter(
            r.output_meter.clone(),
            "output_meter",
            "the meter whose consumption counter is the boiler's output (steam, heat or water)",
        );
        if fuel_meter.is_some() && fuel_meter == output_meter {
            self.p.push(
                self.k("output_meter"),
                "is the fuel meter; the output is measured by another meter",
            );
            ok = false;
        }
        let fuel_per_unit = fuel_meter
            .zip(fuel_kind)
            .and_then(|(m, k)| self.fuel_counter(m, k));
        // The steam's state and dryness default to what the output meter's
        // own steam accounting uses, so the boiler and the site total price
        // the same steam alike.
        let (meter_state, meter_dryness) =
            match output_meter.map(|m| &self.known.meters[m.index()].conversion) {
                Some(Conversion::Steam { state, dryness, .. }) => (*state, *dryness),
                _ => (SteamState::Auto, 1.0),
            };
        let state = choice(
            r.steam_state.clone(),
            &self.k("steam_state"),
            "steam state",
            &[
                ("auto", SteamState::Auto),
                ("saturated", SteamState::Saturated),
                ("superheated", SteamState::Superheated),
            ],
            Some(meter_state),
            self.p,
        );
        let dryness = self.number(
            r.steam_dryness,
            "steam_dryness",
            |x| x > 0.0 && x <= 1.0,
            "use a dryness fraction 0 < x <= 1 (1 = dry saturated steam)",
        );
        let output = match (output_meter, kind, state, dryness) {
            (Some(m), Some(kind), Some(state), Ok(dryness)) => self
                .output_counter(m, kind, state, dryness.unwrap_or(meter_dryness))
                .map(|o| (m, o)),
            _ => None,
        };
        if let Some(kind) = kind {
            ok &= self.kind_keys(r, kind, output.map(|(_, o)| o));
        }
        let inputs = self.inputs(r, output);
        let numbers = self.numbers(r);
        let limits = match (kind, rated, combustion, &class, self.known.settings) {
            (Some(kind), Some(rated), Some(combustion), Some(class), Some(s)) => limit_row(
                &self.k("limits"),
                r.limits.clone(),
                s,
                &class.key,
                kind,
                rated,
                combustion,
                condensing,
                self.p,
            ),
            _ => None,
        };

        let meter_lhv = fuel_meter.and_then(|m| self.known.meters[m.index()].lhv_kj_per_m3);
        let tz = self
            .known
            .sites
            .get(self.site.index())
            .map_or(jiff::tz::TimeZone::UTC, |s| s.timezone.clone());
        let records = fuel_kind.and_then(|k| {
            records(
                r.fuel_records.clone(),
                &self.k("fuel_records"),
                k,
                meter_lhv,
                &tz,
                self.p,
            )
        });

        let (
            true,
            Some(name),
            Some(kind),
            Some(rated),
            Some(class),
            Some(combustion),
            Some(fuel_meter),
            Some(fuel_per_unit),
            Some((output_meter, output)),
            Some(i),
            Some(n),
            Some(fuel_records),
            Some((limits_key, row, limits_source)),
            Some(s),
        ) = (
            ok,
            name,
            kind,
            rated,
            class,
            combustion,
            fuel_meter,
            fuel_per_unit,
            output,
            inputs,
            numbers,
            records,
            limits,
            self.known.settings,
        )
        else {
            return None;
        };
        let Some(q5_rated_pct) = n.q5.or_else(|| s.coefficients.q5_rated_pct(rated, kind)) else {
            self.p.push(
                self.k("rated_capacity"),
                format!("{rated} is outside the q5 table of the boiler coefficient table; give q5_rated_pct (the radiation loss at rated load, %)"),
            );
            return None;
        };
        let spec = BoilerSpec {
            kind,
            rated_capacity: rated,
            fuel_kind: class.kind,
            fuel_per_unit,
            output,
            q2_m: class.q2_m,
            q2_n: class.q2_n,
            q3_k: class.q3_k,
            q3_default_pct: n.q3.unwrap_or(class.q3_default_pct),
            beta: class.beta,
            carbon_kj_per_kg: s.coefficients.carbon_kj_per_kg,
            slag_temperature_c: s.coefficients.slag_temperature_c,
            q5_rated_pct,
            limits: row,
            disagreement_points: n.disagreement.unwrap_or(DEFAULT_DISAGREEMENT_POINTS),
            min_coverage: s.min_coverage,
        };
        let got = |v: Option<InputRef>| v.unwrap_or(InputRef::None);
        Some(BoilerConfig {
            id: String::new(),
            name,
            site: self.site,
            fuel: class.key,
            spec,
            fuel_meter,
            output_meter,
            steam_pressure: got(i.steam_pressure),
            steam_temperature: got(i.steam_temperature),
            supply_temperature: got(i.supply),
            return_temperature: got(i.ret),
            feed_water: got(i.feed),
            exhaust: got(i.exhaust),
            o2: got(i.o2),
            co_ppm: got(i.co),
            cold_air: got(i.cold_air),
            blowdown_pct: n.blowdown,
            meter_lhv_kj_per_m3: meter_lhv,
            fuel_records,
            limits_key,
            combustion,
            condensing,
            limits_source,
        })
    }
}

/// The optional numbers of one element (`None`: not given).
struct Numbers {
    blowdown: Option<f64>,
    q5: Option<f64>,
    q3: Option<f64>,
    disagreement: Option<f64>,
}
