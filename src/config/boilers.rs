//! `[[boilers]]` in site files and `[boiler]` in the main file: boilers as
//! data, resolved against the meters and the boiler tables.
//!
//! Why here: a boiler's inputs are points of configured meters, so it can
//! only be checked once every site's meters are known; the result is a
//! [`BoilerConfig`] per boiler whose references are interned indexes.
//! The site files hand their `[[boilers]]` over as `PendingBoilers`;
//! `resolve` checks them after the last site file, every problem in the
//! usual `FILE: key.path: message` form. [`warnings`] and [`describe`] are
//! what `check-config` (and `run`'s log) say about them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use config::Value;

use super::boiler_check::element;
use super::files::io_message;
use super::raw::{BoilerRaw, BoilerSettingsRaw};
use super::sites::Declared;
use super::{Config, MeterConfig, SiteConfig};
use crate::check::{self, Float, Problems, Text, unknown_ref};
use crate::model::{MeterId, SiteId};
pub use crate::pipeline::boiler::tables::Combustion;
use crate::pipeline::boiler::tables::{BoilerTable, LimitRow, LimitTable, rated_t_h};
use crate::pipeline::boiler::{
    BoilerKind, BoilerSpec, DEFAULT_MIN_COVERAGE, FuelRecord, OutputKind,
};
use crate::profiles::Profile;

/// Where one boiler input comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InputRef {
    /// Not configured.
    None,
    /// A configured constant (e.g. `feed_water_c = 20.0`).
    Fixed(f64),
    /// A gauge of a configured meter (`{ meter = "...", point = "..." }`).
    Point {
        /// The meter.
        meter: MeterId,
        /// Point index in the meter's profile.
        point: usize,
    },
}

/// One boiler, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerConfig {
    /// Id, unique across all sites: the `boiler` tag.
    pub id: String,
    /// Free text.
    pub name: String,
    /// Site it belongs to (its fuel and output meters' site).
    pub site: SiteId,
    /// Fuel class key of the boiler coefficient table.
    pub fuel: String,
    /// Constants the formulas need.
    pub spec: BoilerSpec,
    /// The fuel meter (its consumption counter).
    pub fuel_meter: MeterId,
    /// The output meter (steam mass, heat or water counter).
    pub output_meter: MeterId,
    /// Steam pressure, MPa gauge.
    pub steam_pressure: InputRef,
    /// Steam temperature, °C.
    pub steam_temperature: InputRef,
    /// Hot-water supply temperature, °C.
    pub supply_temperature: InputRef,
    /// Hot-water return temperature, °C.
    pub return_temperature: InputRef,
    /// Feed-water temperature, °C.
    pub feed_water: InputRef,
    /// Exhaust temperature, °C.
    pub exhaust: InputRef,
    /// O₂, % dry.
    pub o2: InputRef,
    /// CO, ppm.
    pub co_ppm: InputRef,
    /// Cold-air temperature, °C.
    pub cold_air: InputRef,
    /// Blow-down, % of steam mass.
    pub blowdown_pct: Option<f64>,
    /// Gas LHV measured on the fuel meter (`lhv_kj_per_m3`), kJ/m³.
    pub meter_lhv_kj_per_m3: Option<f64>,
    /// Lab records, ascending by `from`.
    pub fuel_records: Vec<FuelRecord>,
    /// Key of the limit row used, when one applies.
    pub limits_key: Option<String>,
    /// How the firing is done (`combustion`, for the limit row).
    pub combustion: Combustion,
    /// Condensing gas boiler (`condensing`, for the limit row).
    pub condensing: bool,
    /// Where the limit row comes from, for `check-config` and the API:
    /// how it was chosen and the row's own source, or why there is none.
    pub limits_source: String,
}

impl BoilerConfig {
    /// The inputs that are points of meters, with their names as written
    /// (`steam_pressure`, `o2_pct`, ...), in a fixed order.
    #[must_use]
    pub fn gauge_inputs(&self) -> [(&'static str, InputRef); 9] {
        [
            ("steam_pressure", self.steam_pressure),
            ("steam_temperature", self.steam_temperature),
            ("supply_temperature", self.supply_temperature),
            ("return_temperature", self.return_temperature),
            ("feed_water_c", self.feed_water),
            ("exhaust_c", self.exhaust),
            ("o2_pct", self.o2),
            ("co_ppm", self.co_ppm),
            ("cold_air_c", self.cold_air),
        ]
    }
}

/// `[boiler]`, validated: the tables and the stage's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct BoilerSettings {
    /// Loss coefficients per fuel class and the q₅ table (`coefficients`,
    /// default built in).
    pub coefficients: BoilerTable,
    /// Efficiency grades and monitoring limits (`limits`, default built
    /// in); `None` with `limits = "none"`: no window is graded.
    pub limits: Option<LimitTable>,
    /// Inputs below this coverage give no number for their method
    /// (`min_coverage`, default 0.9).
    pub min_coverage: f64,
    /// Seconds after a window's end that it waits for missing inputs
    /// (`grace_secs`); 0 (default): automatic, 2 × the longest poll
    /// interval of the boiler's meters + `aggregation.allowed_lateness_secs`.
    pub grace_secs: i64,
}

impl Default for BoilerSettings {
    fn default() -> BoilerSettings {
        BoilerSettings {
            coefficients: BoilerTable::builtin(),
            limits: Some(LimitTable::builtin()),
            min_coverage: DEFAULT_MIN_COVERAGE,
            grace_secs: 0,
        }
    }
}

/// The value of `coefficients` / `limits` that names the built-in table.
const BUILTIN: &str = "builtin";

/// `[boiler]` of the main file (directory `base`); absent, the defaults.
pub(super) fn boiler_settings(
    v: Option<Value>,
    base: &Path,
    p: &mut Problems,
) -> Option<BoilerSettings> {
    let Some(v) = v else {
        return Some(BoilerSettings::default());
    };
    let r = check::table::<BoilerSettingsRaw>(v, "boiler", "a table ([boiler])", p)?;
    let coefficients = match r.coefficients {
        None => Some(BoilerTable::builtin()),
        Some(Text(name)) if name == BUILTIN => Some(BoilerTable::builtin()),
        Some(Text(name)) => {
            read_table(&name, base, "boiler.coefficients", p).and_then(|(path, text)| {
                match BoilerTable::from_toml(&text) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        p.push(
                            "boiler.coefficients",
                            format!(
                                "\"{}\" is not a valid boiler coefficient table: {e}",
                                path.display()
                            ),
                        );
                        None
                    }
                }
            })
        }
    };
    let limits = match r.limits {
        None => Some(Some(LimitTable::builtin())),
        Some(Text(name)) if name == BUILTIN => Some(Some(LimitTable::builtin())),
        Some(Text(name)) if name == "none" => Some(None),
        Some(Text(name)) => read_table(&name, base, "boiler.limits", p).and_then(|(path, text)| {
            match LimitTable::from_toml(&text) {
                Ok(t) => Some(Some(t)),
                Err(e) => {
                    p.push(
                        "boiler.limits",
                        format!(
                            "\"{}\" is not a valid boiler limit table: {e}",
                            path.display()
                        ),
                    );
                    None
                }
            }
        }),
    };
    let min_coverage = match r.min_coverage {
        None => Some(DEFAULT_MIN_COVERAGE),
        Some(Float(x)) if (0.0..=1.0).contains(&x) => Some(x),
        Some(Float(x)) => {
            p.push(
                "boiler.min_coverage",
                format!("{x} is not a share; use a number from 0 to 1 (default 0.9)"),
            );
            None
        }
    };
    let grace = check::int(
        r.grace_secs,
        "boiler.grace_secs",
        0,
        0,
        i64::from(u32::MAX),
        p,
    );
    // The two files are replaced separately: every fuel a limit row names
    // must be a class of the coefficient table.
    if let (Some(c), Some(Some(l))) = (&coefficients, &limits)
        && let Err(e) = l.check_fuels(c)
    {
        p.push(
            "boiler.limits",
            format!("does not fit the coefficient table: {e}"),
        );
        return None;
    }
    Some(BoilerSettings {
        coefficients: coefficients?,
        limits: limits?,
        min_coverage: min_coverage?,
        grace_secs: grace?,
    })
}

/// The text of the table file `name` (relative to `base`), with its path.
fn read_table(name: &str, base: &Path, key: &str, p: &mut Problems) -> Option<(PathBuf, String)> {
    let path = base.join(name);
    match fs::read_to_string(&path) {
        Ok(t) => Some((path, t)),
        Err(e) => {
            p.push(
                key,
                format!(
                    "cannot read \"{}\": {}; use \"{BUILTIN}\" (built in) or the path of a table, relative to this file",
                    path.display(),
                    io_message(&e)
                ),
            );
            None
        }
    }
}

/// A site file's `[[boilers]]`, waiting until every site file is read.
pub(super) struct PendingBoilers {
    /// The site the file declares.
    pub(super) site: SiteId,
    /// The site file.
    pub(super) file: PathBuf,
    /// `[[boilers]]` as written.
    pub(super) value: Value,
}

/// What boilers are resolved against: everything the site files declared.
pub(super) struct Known<'a> {
    /// Sites, by [`SiteId`].
    pub(super) sites: &'a [SiteConfig],
    /// Complete meters, by [`MeterId`].
    pub(super) meters: &'a [MeterConfig],
    /// Profiles in use, by [`crate::model::ProfileId`].
    pub(super) profiles: &'a [Profile],
    /// Every declared meter id, complete or not.
    pub(super) meter_ids: &'a HashMap<String, (MeterId, Declared)>,
    /// `[boiler]`; `None` when it is broken (its problems are reported).
    pub(super) settings: Option<&'a BoilerSettings>,
}

/// Checks every pending `[[boilers]]` against `known`; problems go to
/// `problems` (one [`Problems`] per site file, in file order).
pub(super) fn resolve(
    pending: Vec<PendingBoilers>,
    known: &Known<'_>,
    problems: &mut Vec<crate::check::ConfigError>,
) -> Vec<BoilerConfig> {
    let mut out = Vec::new();
    let mut ids: HashMap<String, (PathBuf, String)> = HashMap::new();
    for f in pending {
        let mut p = Problems::new(&f.file);
        let items = check::array(
            f.value,
            "boilers",
            "an array of tables ([[boilers]])",
            &mut p,
        );
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("boilers[{i}]");
            let Some(r) = check::table::<BoilerRaw>(item, &key, "a table", &mut p) else {
                continue;
            };
            let id_key = format!("{key}.id");
            let id = check::required_id(r.id.clone(), &id_key, "boiler id", &mut p);
            if let Some(id) = &id {
                if let Some((file, at)) = ids.get(id) {
                    p.push(
                        &id_key,
                        format!(
                            "duplicate boiler id \"{id}\"; already used at {}: {at}",
                            file.display()
                        ),
                    );
                } else {
                    ids.insert(id.clone(), (f.file.clone(), id_key.clone()));
                }
            }
            if let (Some(mut boiler), Some(id)) =
                (element(known, f.site, &f.file, &key, &r, &mut p), id)
            {
                boiler.id = id;
                out.push(boiler);
            }
        }
        problems.append(&mut p.list);
    }
    out
}

/// A boiler's limit row (`limits` at `at`): named, `"none"`, or selected
/// from the table by fuel, combustion, condensing and capacity; with the
/// key and where the row comes from. `None` (with a problem) when broken.
#[allow(clippy::too_many_arguments)]
pub(super) fn limit_row(
    at: &str,
    v: Option<Text>,
    s: &BoilerSettings,
    fuel: &str,
    kind: BoilerKind,
    rated: f64,
    combustion: Combustion,
    condensing: bool,
    p: &mut Problems,
) -> Option<(Option<String>, Option<LimitRow>, String)> {
    let Some(table) = &s.limits else {
        if v.as_ref().is_some_and(|Text(t)| t != "none") {
            p.push(
                at,
                "the main file has [boiler] limits = \"none\" (no limit table); remove this key",
            );
            return None;
        }
        return Some((None, None, "none ([boiler] limits = \"none\")".to_owned()));
    };
    match v {
        Some(Text(key)) if key == "none" => {
            Some((None, None, "none (limits = \"none\")".to_owned()))
        }
        Some(Text(key)) => {
            if let Some(e) = table.get(&key) {
                return Some((
                    Some(e.key.clone()),
                    Some(e.row),
                    format!("configured; {}", e.source),
                ));
            }
            let msg = unknown_ref("limit row", &key, table.rows.iter().map(|r| r.key.as_str()));
            p.push(at, format!("{msg} (or \"none\": no grading)"));
            None
        }
        None => {
            // The table is by t/h; hot water at 0.7 MW per t/h.
            let t_h = rated_t_h(rated, kind);
            let how = format!(
                "fuel {fuel}, {}{}, {t_h} t/h",
                combustion.as_str(),
                if condensing { ", condensing" } else { "" }
            );
            Some(match table.select(fuel, combustion, condensing, t_h) {
                Some(e) => (
                    Some(e.key.clone()),
                    Some(e.row),
                    format!("selected by {how}; {}", e.source),
                ),
                None => (
                    None,
                    None,
                    format!("none: no row of the limit table for {how}"),
                ),
            })
        }
    }
}

/// Where boiler `b` is declared: its site file and `boilers[i]` (boilers
/// are kept in file order).
fn declared_at(config: &Config, b: usize) -> (PathBuf, String) {
    let site = config.boilers[b].site;
    let i = config.boilers[..b]
        .iter()
        .filter(|x| x.site == site)
        .count();
    let file = config
        .sites
        .get(site.index())
        .map(|s| s.file.clone())
        .unwrap_or_default();
    (file, format!("boilers[{i}]"))
}

/// What `check-config` warns about (stderr) and `run` logs: a boiler whose
/// output and fuel meters are both level 1 (the site total would count the
/// fuel and what the boiler made of it).
#[must_use]
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, b) in config.boilers.iter().enumerate() {
        let (fuel, output) = (config.meter(b.fuel_meter), config.meter(b.output_meter));
        if fuel.level.0 == 1 && output.level.0 == 1 {
            let (file, key) = declared_at(config, i);
            out.push(format!(
                "{}: {key}: warning: output meter \"{}\" and fuel meter \"{}\" are both level 1: the same energy would be counted twice in the site total; unless the {} leaves the site, make the output meter level 2 or 3",
                file.display(),
                output.id,
                fuel.id,
                output.energy
            ));
        }
    }
    out
}

/// One input as `check-config` shows it: `20 degC`, `meter.point`, `-`.
fn input_text(config: &Config, r: InputRef, unit: &str) -> String {
    match r {
        InputRef::None => "-".to_owned(),
        InputRef::Fixed(v) => format!("{v} {unit}"),
        InputRef::Point { meter, point } => {
            let m = config.meter(meter);
            let name = config
                .profile_of(meter)
                .points
                .get(point)
                .map_or("?", |p| p.name.as_str());
            format!("{}.{name}", m.id)
        }
    }
}

/// A meter's consumption counter as `meter.point (unit)`.
fn counter_text(config: &Config, m: MeterId) -> String {
    let meter = config.meter(m);
    let prof = config.profile_of(m);
    match meter.consumption.and_then(|i| prof.points.get(i)) {
        Some(p) => format!("{}.{} ({})", meter.id, p.name, p.unit),
        None => meter.id.clone(),
    }
}

/// The lines `check-config` prints for boiler `b`: what it is, its limit
/// row and where it comes from, and every input.
#[must_use]
pub fn describe(config: &Config, b: &BoilerConfig) -> String {
    let s = &b.spec;
    let capacity = match s.kind {
        BoilerKind::Steam => "t/h",
        BoilerKind::HotWater => "MW",
    };
    let mut out = format!(
        "  boiler {} ({}, {} {capacity}, fuel {}, {}{}): limits {}\n",
        b.id,
        s.kind.as_str(),
        s.rated_capacity,
        b.fuel,
        b.combustion.as_str(),
        if b.condensing { ", condensing" } else { "" },
        match &b.limits_key {
            Some(k) => format!("{k} ({})", b.limits_source),
            None => b.limits_source.clone(),
        }
    );
    let output = match s.output {
        OutputKind::SteamMass { state, dryness, .. } => {
            format!("steam mass, {} steam, dryness {dryness}", state.as_str())
        }
        OutputKind::Heat { .. } => "heat".to_owned(),
        OutputKind::WaterFlow { .. } => "water flow".to_owned(),
    };
    let _ = writeln!(
        out,
        "    fuel {}; output {} as {output}",
        counter_text(config, b.fuel_meter),
        counter_text(config, b.output_meter)
    );
    let mut inputs = Vec::new();
    for (name, r) in b.gauge_inputs() {
        if r != InputRef::None {
            let unit = match name {
                "o2_pct" => "%",
                "co_ppm" => "ppm",
                "steam_pressure" => "MPa",
                _ => "degC",
            };
            inputs.push(format!("{name} {}", input_text(config, r, unit)));
        }
    }
    let _ = writeln!(
        out,
        "    inputs: {}",
        if inputs.is_empty() {
            "-".to_owned()
        } else {
            inputs.join(", ")
        }
    );
    let lhv = match (b.fuel_records.len(), b.meter_lhv_kj_per_m3) {
        (0, Some(lhv)) => format!("the fuel meter's lhv_kj_per_m3 {lhv}"),
        (n, _) => format!("{n} fuel record(s)"),
    };
    let _ = writeln!(
        out,
        "    q5 at rated load {} %, q3 without CO {} %, disagreement above {} points; LHV from {lhv}",
        s.q5_rated_pct, s.q3_default_pct, s.disagreement_points
    );
    out
}
