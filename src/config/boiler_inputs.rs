//! A boiler's gauge inputs (split from [`super::boiler_check`]): each
//! `{ meter, point }` resolved to a gauge of the right unit (or a fixed
//! number where one is allowed), the steam gauges' defaults from the output
//! meter's profile, and the keys that apply only to some kinds of boiler and
//! output.

use config::{Value, ValueKind};

use super::boiler_check::BoilerCheck;
use super::boilers::InputRef;
use super::raw::{BoilerRaw, InputPointRaw};
use crate::check::{self, Text, kind_name, suggest};
use crate::model::MeterId;
use crate::pipeline::boiler::{BoilerKind, OutputKind};
use crate::profiles::PointKind;

/// What a gauge input must be.
#[derive(Clone, Copy)]
pub(super) struct Want {
    /// Unit of the gauge in its profile.
    unit: &'static str,
    /// What it is, for messages.
    what: &'static str,
    /// A fixed number is allowed.
    fixed: bool,
}

/// Each gauge input: the unit its gauge must have, what it is, whether a
/// fixed number is allowed.
pub(super) const PRESSURE: Want = Want::new("mpa", "steam pressure (MPa gauge)", false);
pub(super) const STEAM_T: Want = Want::new("c", "steam temperature (degC)", false);
pub(super) const WATER_T: Want = Want::new("c", "water temperature (degC)", false);
pub(super) const FEED_T: Want = Want::new("c", "feed-water temperature (degC)", true);
pub(super) const EXHAUST_T: Want = Want::new("c", "exhaust temperature (degC)", false);
pub(super) const O2: Want = Want::new("pct", "O2 (% dry)", false);
pub(super) const CO: Want = Want::new("ppm", "CO (ppm)", false);
pub(super) const AIR_T: Want = Want::new("c", "cold-air temperature (degC)", true);

impl Want {
    const fn new(unit: &'static str, what: &'static str, fixed: bool) -> Want {
        Want { unit, what, fixed }
    }
}

impl BoilerCheck<'_, '_> {
    /// A gauge input: `{ meter, point }`, or a number where `want.fixed`.
    /// `Some(InputRef::None)` when absent, `None` when broken.
    pub(super) fn input(&mut self, v: Option<Value>, sub: &str, want: Want) -> Option<InputRef> {
        let at = self.k(sub);
        let Some(v) = v else {
            return Some(InputRef::None);
        };
        let expected = if want.fixed {
            "a number (degC) or { meter = \"...\", point = \"...\" }"
        } else {
            "{ meter = \"...\", point = \"...\" }"
        };
        let number = match &v.kind {
            ValueKind::Float(x) => Some(*x),
            ValueKind::I64(x) => Some(*x as f64),
            ValueKind::U64(x) => Some(*x as f64),
            ValueKind::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if let Some(x) = number {
            if !want.fixed {
                let found = kind_name(&v);
                self.p.push(
                    at,
                    format!(
                        "expected {expected}, found {found}; the {} is a gauge of a meter",
                        want.what
                    ),
                );
                return None;
            }
            if !x.is_finite() {
                self.p
                    .push(at, format!("{x} is not a temperature; give degC"));
                return None;
            }
            return Some(InputRef::Fixed(x));
        }
        if !matches!(v.kind, ValueKind::Table(_)) {
            let found = kind_name(&v);
            self.p
                .push(at, format!("expected {expected}, found {found}"));
            return None;
        }
        let r = check::table::<InputPointRaw>(v, &at, expected, self.p)?;
        let meter = if let Some(Text(name)) = r.meter {
            self.meter(&name, &format!("{at}.meter"))
        } else {
            self.p.push(
                format!("{at}.meter"),
                "missing required key; give the id of a meter of this site",
            );
            None
        };
        let Some(Text(point)) = r.point else {
            self.p.push(
                format!("{at}.point"),
                format!(
                    "missing required key; give the name of the {} gauge in the meter's profile",
                    want.what
                ),
            );
            return None;
        };
        let meter = meter?;
        self.gauge(meter, &point, &format!("{at}.point"), want)
            .map(|point| InputRef::Point { meter, point })
    }

    /// Index of gauge `name` of meter `m`, checked for kind and unit.
    fn gauge(&mut self, m: MeterId, name: &str, at: &str, want: Want) -> Option<usize> {
        let prof = self.profile(m);
        let Some(i) = prof.point_index(name) else {
            let names = || prof.points.iter().map(|x| x.name.as_str());
            let msg = match suggest(name, names()) {
                Some(s) => format!(
                    "unknown point \"{name}\" in profile \"{}\"; did you mean \"{s}\"?",
                    prof.id
                ),
                None => format!(
                    "unknown point \"{name}\" in profile \"{}\"; points: {}",
                    prof.id,
                    names().collect::<Vec<_>>().join(", ")
                ),
            };
            self.p.push(at, msg);
            return None;
        };
        let pt = &prof.points[i];
        if pt.kind != PointKind::Gauge {
            let msg = format!(
                "\"{name}\" of profile \"{}\" is a counter; the {} is a gauge",
                prof.id, want.what
            );
            self.p.push(at, msg);
            return None;
        }
        if pt.unit != want.unit {
            let msg = format!(
                "\"{name}\" of profile \"{}\" is in \"{}\"; the {} must be a gauge in \"{}\"",
                prof.id, pt.unit, want.what, want.unit
            );
            self.p.push(at, msg);
            return None;
        }
        Some(i)
    }

    /// Every gauge input; the steam pressure and temperature of a
    /// steam-mass output default to its profile's `pressure` and
    /// `temperature` gauges. `None` when one is broken.
    pub(super) fn inputs(
        &mut self,
        r: &BoilerRaw,
        output: Option<(MeterId, OutputKind)>,
    ) -> Option<Inputs> {
        let mut i = Inputs {
            steam_pressure: self.input(r.steam_pressure.clone(), "steam_pressure", PRESSURE),
            steam_temperature: self.input(
                r.steam_temperature.clone(),
                "steam_temperature",
                STEAM_T,
            ),
            supply: self.input(r.supply_temperature.clone(), "supply_temperature", WATER_T),
            ret: self.input(r.return_temperature.clone(), "return_temperature", WATER_T),
            feed: self.input(r.feed_water_c.clone(), "feed_water_c", FEED_T),
            exhaust: self.input(r.exhaust_c.clone(), "exhaust_c", EXHAUST_T),
            o2: self.input(r.o2_pct.clone(), "o2_pct", O2),
            co: self.input(r.co_ppm.clone(), "co_ppm", CO),
            cold_air: self.input(r.cold_air_c.clone(), "cold_air_c", AIR_T),
        };
        let mut ok = true;
        if let Some((m, OutputKind::SteamMass { .. })) = output {
            let prof = self.profile(m);
            let (pid, defaults) = (prof.id.clone(), [prof.pressure, prof.temperature]);
            for ((v, sub), (default, profile_key)) in [
                (&mut i.steam_pressure, "steam_pressure"),
                (&mut i.steam_temperature, "steam_temperature"),
            ]
            .into_iter()
            .zip(defaults.into_iter().zip(["pressure", "temperature"]))
            {
                match (*v, default) {
                    (Some(InputRef::None), Some(point)) => {
                        *v = Some(InputRef::Point { meter: m, point });
                    }
                    (Some(InputRef::None), None) => {
                        self.p.push(
                            self.k(sub),
                            format!(
                                "missing; profile \"{pid}\" of the output meter has no `{profile_key}` gauge, so give {{ meter = \"...\", point = \"...\" }}"
                            ),
                        );
                        ok = false;
                    }
                    _ => {}
                }
            }
        }
        if r.exhaust_c.is_some() && r.cold_air_c.is_none() {
            self.p.push(
                self.k("cold_air_c"),
                "missing; with exhaust_c give the cold-air temperature: a number (degC) or { meter = \"...\", point = \"...\" }",
            );
            ok = false;
        }
        let all = [
            i.steam_pressure,
            i.steam_temperature,
            i.supply,
            i.ret,
            i.feed,
            i.exhaust,
            i.o2,
            i.co,
            i.cold_air,
        ];
        (ok && all.iter().all(Option::is_some)).then_some(i)
    }

    /// The keys that apply only to some kinds of boiler and output: a
    /// problem for each given where it does not apply or missing where it
    /// is required. False when there is one.
    /// An `output` of `None` (a broken output meter) skips the checks that
    /// depend on it.
    pub(super) fn kind_keys(
        &mut self,
        r: &BoilerRaw,
        kind: BoilerKind,
        output: Option<OutputKind>,
    ) -> bool {
        let steam = kind == BoilerKind::Steam;
        let (steam_mass, water_flow) = match output {
            Some(OutputKind::SteamMass { .. }) => (true, false),
            Some(OutputKind::WaterFlow { .. }) => (false, true),
            Some(OutputKind::Heat { .. }) => (false, false),
            // Unknown: only what the kind alone decides.
            None => (steam, false),
        };
        let mut ok = true;
        let not_steam_mass = if steam {
            "only used when the output meter counts steam mass (t or kg)"
        } else {
            "only for steam boilers"
        };
        for (given, sub) in [
            (r.steam_pressure.is_some(), "steam_pressure"),
            (r.steam_temperature.is_some(), "steam_temperature"),
            (r.steam_state.is_some(), "steam_state"),
            (r.steam_dryness.is_some(), "steam_dryness"),
        ] {
            ok &= steam_mass || self.not_here(given, sub, not_steam_mass);
        }
        for (given, sub) in [
            (r.feed_water_c.is_some(), "feed_water_c"),
            (r.blowdown_pct.is_some(), "blowdown_pct"),
        ] {
            ok &= steam || self.not_here(given, sub, "only for steam boilers");
        }
        if steam {
            ok &= self.missing(
                r.feed_water_c.is_none(),
                "feed_water_c",
                "give the feed-water temperature: a number (degC) or { meter = \"...\", point = \"...\" }",
            );
        }
        for (given, sub) in [
            (r.supply_temperature.is_some(), "supply_temperature"),
            (r.return_temperature.is_some(), "return_temperature"),
        ] {
            ok &= if water_flow {
                self.missing(
                    !given,
                    sub,
                    "the output meter counts water, so give { meter = \"...\", point = \"...\" } (degC)",
                )
            } else if steam {
                self.not_here(given, sub, "only for hot_water boilers")
            } else if output.is_none() {
                true
            } else {
                self.not_here(
                    given,
                    sub,
                    "only used when the output meter counts water (m3 or t)",
                )
            };
        }
        ok
    }
}

/// The gauge inputs of one element; `None` where broken.
pub(super) struct Inputs {
    pub(super) steam_pressure: Option<InputRef>,
    pub(super) steam_temperature: Option<InputRef>,
    pub(super) supply: Option<InputRef>,
    pub(super) ret: Option<InputRef>,
    pub(super) feed: Option<InputRef>,
    pub(super) exhaust: Option<InputRef>,
    pub(super) o2: Option<InputRef>,
    pub(super) co: Option<InputRef>,
    pub(super) cold_air: Option<InputRef>,
}
