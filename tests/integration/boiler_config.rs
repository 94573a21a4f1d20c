//! `[[boilers]]` and `[boiler]`: what a boiler becomes (counters, gauges,
//! fixed values, records, limit row), every reference and unit checked with
//! its exact message (they are part of the interface), the level-1 warning,
//! `check-config`'s boiler lines, and the gauges the aggregator keeps for
//! boilers when `gauge_stats = false`.

use emgate::config::{BoilerConfig, Config, InputRef, from_parts};
use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::aggregate::AggOutput;
use emgate::pipeline::boiler::{BoilerKind, FuelKind, OutputKind};
use emgate::pipeline::steam::SteamState;
use emgate::pipeline::window::WindowSize;
use emgate::profiles::load::builtin;

pub(crate) const MAIN: &str = r#"
[gateway]
id = "gw"
timezone = "Asia/Shanghai"

[aggregation]
windows = ["15m", "1h"]

[[endpoints]]
id = "ep"
host = "127.0.0.1"
"#;

/// A flue-gas analyzer of the tests' own (the shipped one may differ).
pub(crate) const FLUE_PROFILE: &str = r#"
description = "test flue-gas analyzer"

[[points]]
name = "o2_pct"
register = "holding"
address = 0
type = "f32"
unit = "pct"

[[points]]
name = "co_ppm"
register = "holding"
address = 2
type = "f32"
unit = "ppm"

[[points]]
name = "exhaust_c"
register = "holding"
address = 4
type = "f32"
unit = "c"

[[points]]
name = "ambient_c"
register = "holding"
address = 6
type = "f32"
unit = "c"
"#;

/// The meters of site `fz` (unit ids 1..=7), before its boilers.
pub(crate) const METERS: &str = r#"
[site]
id = "fz"
name = "Fuzhou mill"

[[meters]]
id = "gas"
energy = "natural_gas"
level = 1
profile = "gas_flow_computer"
endpoint = "ep"
unit_id = 1
lhv_kj_per_m3 = 35818

[[meters]]
id = "steam"
energy = "steam"
level = 2
profile = "steam_flow_computer"
endpoint = "ep"
unit_id = 2
steam_state = "saturated"

[[meters]]
id = "flue"
energy = "natural_gas"
level = 3
profile = "test_flue"
endpoint = "ep"
unit_id = 3
poll_interval_secs = 30

[[meters]]
id = "heat"
energy = "heat"
level = 2
profile = "heat_meter"
endpoint = "ep"
unit_id = 4

[[meters]]
id = "coal"
energy = "coal"
level = 1
profile = "belt_scale"
endpoint = "ep"
unit_id = 5

[[meters]]
id = "water"
energy = "water"
level = 3
profile = "water_meter"
endpoint = "ep"
unit_id = 6

[[meters]]
id = "steam-main"
energy = "steam"
level = 1
profile = "steam_flow_computer"
endpoint = "ep"
unit_id = 7
"#;

/// A gas steam boiler with an analyzer, and a coal hot-water boiler with
/// dated records (given out of order).
pub(crate) const BOILERS: &str = r#"
[[boilers]]
id = "fz-b1"
name = "1# gas steam boiler"
kind = "steam"
rated_capacity = 10.0
fuel = "natural_gas"
fuel_meter = "gas"
output_meter = "steam"
feed_water_c = 20.0
exhaust_c = { meter = "flue", point = "exhaust_c" }
o2_pct = { meter = "flue", point = "o2_pct" }
co_ppm = { meter = "flue", point = "co_ppm" }
cold_air_c = { meter = "flue", point = "ambient_c" }
blowdown_pct = 2.0

[[boilers]]
id = "fz-b2"
name = "2# coal hot-water boiler"
kind = "hot_water"
rated_capacity = 7.0
fuel = "bituminous"
fuel_meter = "coal"
output_meter = "heat"
q5_rated_pct = 2.5
disagreement_points = 3.0
limits = "none"

[[boilers.fuel_records]]
from = "2026-03-01"
lhv_kj_per_kg = 22000
ash_pct = 20.0
slag_share_pct = 80.0
slag_combustible_pct = 10.0
fly_ash_combustible_pct = 18.0

[[boilers.fuel_records]]
from = "2026-01-01"
lhv_kj_per_kg = 21500
ash_pct = 22.7
moisture_pct = 10.0
volatile_daf_pct = 30.0
slag_share_pct = 80.0
slag_combustible_pct = 12.0
fly_ash_combustible_pct = 20.0
slag_temperature_c = 650.0
"#;

/// The built-in profiles and the test analyzer.
pub(crate) fn profiles() -> Vec<(&'static str, &'static str)> {
    let mut p = builtin().to_vec();
    p.push(("test_flue", FLUE_PROFILE));
    p
}

/// `MAIN` + `main_extra`, site `METERS` + `boilers`.
pub(crate) fn load(main_extra: &str, boilers: &str) -> Result<Config, Vec<String>> {
    let main = format!("{MAIN}{main_extra}");
    let site = format!("{METERS}{boilers}");
    from_parts(&main, &[("fz.toml", &site)], &profiles())
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

/// The configuration with both boilers.
pub(crate) fn config() -> Config {
    load("", BOILERS).unwrap_or_else(|e| panic!("{}", e.join("\n")))
}

fn meter(c: &Config, id: &str) -> MeterId {
    MeterId(c.meters.iter().position(|m| m.id == id).expect("meter") as u32)
}

fn point(c: &Config, meter_id: &str, name: &str) -> InputRef {
    let m = meter(c, meter_id);
    InputRef::Point {
        meter: m,
        point: c.profile_of(m).point_index(name).expect("point"),
    }
}

fn boiler<'a>(c: &'a Config, id: &str) -> &'a BoilerConfig {
    c.boilers.iter().find(|b| b.id == id).expect("boiler")
}

/// Every problem of a boiler list that does not load.
fn errors(main_extra: &str, boilers: &str) -> Vec<String> {
    match load(main_extra, boilers) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_gas_steam_boiler_resolves_its_meters_points_and_defaults() {
    let c = config();
    assert_eq!(c.boilers.len(), 2);
    let b = boiler(&c, "fz-b1");
    assert_eq!(b.name, "1# gas steam boiler");
    assert_eq!(c.sites[b.site.index()].id, "fz");
    assert_eq!(b.fuel, "natural_gas");
    assert_eq!(
        (b.fuel_meter, b.output_meter),
        (meter(&c, "gas"), meter(&c, "steam"))
    );
    let s = &b.spec;
    assert_eq!((s.kind, s.rated_capacity), (BoilerKind::Steam, 10.0));
    assert_eq!((s.fuel_kind, s.fuel_per_unit), (FuelKind::Gas, 1.0));
    // The steam meter counts t; its steam state (saturated) is the default.
    assert_eq!(
        s.output,
        OutputKind::SteamMass {
            kg_per_unit: 1000.0,
            state: SteamState::Saturated,
            dryness: 1.0
        }
    );
    // Pressure and temperature default to the output meter's profile gauges.
    assert_eq!(b.steam_pressure, point(&c, "steam", "pressure_mpa"));
    assert_eq!(b.steam_temperature, point(&c, "steam", "temperature_c"));
    assert_eq!(b.feed_water, InputRef::Fixed(20.0));
    assert_eq!(b.exhaust, point(&c, "flue", "exhaust_c"));
    assert_eq!(b.o2, point(&c, "flue", "o2_pct"));
    assert_eq!(b.co_ppm, point(&c, "flue", "co_ppm"));
    assert_eq!(b.cold_air, point(&c, "flue", "ambient_c"));
    assert_eq!(
        (b.supply_temperature, b.return_temperature),
        (InputRef::None, InputRef::None)
    );
    assert_eq!(b.blowdown_pct, Some(2.0));
    // No record: the gas meter's measured LHV.
    assert!(b.fuel_records.is_empty());
    assert_eq!(b.meter_lhv_kj_per_m3, Some(35_818.0));
    assert_eq!(s.disagreement_points, 5.0);
    assert_eq!(s.min_coverage, 0.9);
    assert_eq!(c.boiler.grace_secs, 0);
}

#[test]
fn a_coal_hot_water_boiler_sorts_its_records_and_dates_them_at_local_midnight() {
    let c = config();
    let b = boiler(&c, "fz-b2");
    let s = &b.spec;
    assert_eq!((s.kind, s.rated_capacity), (BoilerKind::HotWater, 7.0));
    // The belt scale counts t: 1000 kg per unit; the heat meter GJ.
    assert_eq!((s.fuel_kind, s.fuel_per_unit), (FuelKind::Solid, 1000.0));
    assert_eq!(s.output, OutputKind::Heat { gj_per_unit: 1.0 });
    assert_eq!(b.feed_water, InputRef::None);
    assert_eq!(b.exhaust, InputRef::None);
    assert_eq!((s.q5_rated_pct, s.disagreement_points), (2.5, 3.0));
    assert_eq!(s.limits, None);
    assert_eq!(b.limits_key, None);
    assert_eq!(b.limits_source, "none (limits = \"none\")");
    // 2026-01-01T00:00+08:00 and 2026-03-01T00:00+08:00, ascending.
    let from: Vec<i64> = b.fuel_records.iter().map(|r| r.from).collect();
    assert_eq!(from, [1_767_196_800, 1_772_294_400]);
    let first = b.fuel_records[0];
    assert_eq!(first.lhv_kj, 21_500.0);
    assert_eq!(
        (first.ash_pct, first.moisture_pct, first.volatile_daf_pct),
        (Some(22.7), Some(10.0), Some(30.0))
    );
    assert_eq!(
        (
            first.slag_share_pct,
            first.slag_combustible_pct,
            first.fly_ash_combustible_pct,
            first.slag_temperature_c
        ),
        (Some(80.0), Some(12.0), Some(20.0), Some(650.0))
    );
    assert_eq!(b.fuel_records[1].slag_temperature_c, None);
}

#[test]
fn a_water_counter_needs_supply_and_return_and_a_heat_output_takes_none() {
    let site = r#"
[[boilers]]
id = "hw"
name = "hot water by water flow"
kind = "hot_water"
rated_capacity = 2.8
fuel = "natural_gas"
fuel_meter = "gas"
output_meter = "water"
supply_temperature = { meter = "heat", point = "supply_temperature_c" }
return_temperature = { meter = "heat", point = "return_temperature_c" }
"#;
    let c = load("", site).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let b = boiler(&c, "hw");
    assert_eq!(
        b.spec.output,
        OutputKind::WaterFlow {
            kg_per_unit: 1000.0
        }
    );
    assert_eq!(
        b.supply_temperature,
        point(&c, "heat", "supply_temperature_c")
    );
    assert_eq!(
        b.return_temperature,
        point(&c, "heat", "return_temperature_c")
    );
    let missing = site
        .lines()
        .filter(|l| !l.starts_with("supply") && !l.starts_with("return"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        errors("", &missing),
        [
            "sites/fz.toml: boilers[0].supply_temperature: missing required key; the output meter counts water, so give { meter = \"...\", point = \"...\" } (degC)",
            "sites/fz.toml: boilers[0].return_temperature: missing required key; the output meter counts water, so give { meter = \"...\", point = \"...\" } (degC)",
        ]
    );
}

#[test]
fn every_reference_and_unit_is_checked_with_its_message() {
    let site = r#"
[[boilers]]
id = "b1"
name = "everything wrong"
kind = "steam"
rated_capacity = 10
fuel = "natural_gsa"
fuel_meter = "gas"
output_meter = "nope"
feed_water_c = { meter = "flue", point = "o2_pct" }
exhaust_c = { meter = "flue", point = "exhaust" }
o2_pct = 3.5
cold_air_c = "warm"
supply_temperature = { meter = "heat", point = "supply_temperature_c" }

[[boilers]]
id = "b2"
name = "wrong units"
kind = "steam"
rated_capacity = 4
fuel = "bituminous"
fuel_meter = "gas"
output_meter = "water"
feed_water_c = { meter = "steam", point = "mass_t" }
co_ppm = { meter = "steam", point = "pressure_mpa" }
o2_pct = { point = "o2_pct" }
exhaust_c = { meter = "flue", point = "exhaust_c" }
cold_air_c = 20
condensing = true
limits = "gb24500_2020_gas_non_condensin"

[[boilers.fuel_records]]
from = "2026-02-30"
lhv_kj_per_m3 = 35000
ash_pct = 120
"#;
    assert_eq!(
        errors("", site),
        [
            "sites/fz.toml: boilers[0].fuel: unknown fuel class \"natural_gsa\"; did you mean \"natural_gas\"?",
            "sites/fz.toml: boilers[0].output_meter: unknown meter \"nope\"; known: coal, flue, gas, heat, steam, steam-main, water",
            "sites/fz.toml: boilers[0].supply_temperature: only for hot_water boilers; remove it",
            "sites/fz.toml: boilers[0].feed_water_c.point: \"o2_pct\" of profile \"test_flue\" is in \"pct\"; the feed-water temperature (degC) must be a gauge in \"c\"",
            "sites/fz.toml: boilers[0].exhaust_c.point: unknown point \"exhaust\" in profile \"test_flue\"; did you mean \"exhaust_c\"?",
            "sites/fz.toml: boilers[0].o2_pct: expected { meter = \"...\", point = \"...\" }, found a float; the O2 (% dry) is a gauge of a meter",
            "sites/fz.toml: boilers[0].cold_air_c: expected a number (degC) or { meter = \"...\", point = \"...\" }, found a string",
            "sites/fz.toml: boilers[1].condensing: only for gas boilers; remove it",
            "sites/fz.toml: boilers[1].fuel_meter: meter \"gas\" counts \"nm3\"; solid and liquid fuels are counted in t or kg",
            "sites/fz.toml: boilers[1].output_meter: meter \"water\" counts \"m3\"; the output of a steam boiler is a steam-mass counter (t or kg) or a heat counter (gj, mj, kwh or mwh)",
            "sites/fz.toml: boilers[1].feed_water_c.point: \"mass_t\" of profile \"steam_flow_computer\" is a counter; the feed-water temperature (degC) is a gauge",
            "sites/fz.toml: boilers[1].o2_pct.meter: missing required key; give the id of a meter of this site",
            "sites/fz.toml: boilers[1].co_ppm.point: \"pressure_mpa\" of profile \"steam_flow_computer\" is in \"mpa\"; the CO (ppm) must be a gauge in \"ppm\"",
            LIMIT_TYPO,
            "sites/fz.toml: boilers[1].fuel_records[0].from: \"2026-02-30\" is not a date; write it as YYYY-MM-DD",
            "sites/fz.toml: boilers[1].fuel_records[0].ash_pct: 120 is out of range; use a percentage, 0 <= x < 100",
            "sites/fz.toml: boilers[1].fuel_records[0].lhv_kj_per_m3: solid and liquid fuels are measured by mass; give lhv_kj_per_kg instead",
            "sites/fz.toml: boilers[1].fuel_records[0].lhv_kj_per_kg: missing required key; give the as-received net calorific value in kJ/kg",
            "sites/fz.toml: boilers[1].fuel_records[0].slag_share_pct: missing required key for a solid fuel; give the share of the ash leaving as slag, % (the rest is fly ash)",
            "sites/fz.toml: boilers[1].fuel_records[0].slag_combustible_pct: missing required key for a solid fuel; give the combustible content of the slag C_lz, %",
            "sites/fz.toml: boilers[1].fuel_records[0].fly_ash_combustible_pct: missing required key for a solid fuel; give the combustible content of the fly ash C_fh, %",
        ]
    );
}

/// The limit row typo of [`every_reference_and_unit_is_checked_with_its_message`].
const LIMIT_TYPO: &str = "sites/fz.toml: boilers[1].limits: unknown limit row \"gb24500_2020_gas_non_condensin\"; did you mean \"gb24500_2020_gas_non_condensing\"? (or \"none\": no grading)";

/// The message for a missing `fuel`: it lists the built-in table's classes.
const FUEL_MISSING: &str = "sites/fz.toml: boilers[0].fuel: missing required key; give a fuel class of the boiler coefficient table: natural_gas, lpg, fuel_oil, bituminous, anthracite, lean_coal, lignite, biomass";

#[test]
fn missing_keys_say_what_to_write() {
    let site = r#"
[[boilers]]
kind = "steem"
rated_capacity = 0
fule = "natural_gas"
"#;
    assert_eq!(
        errors("", site),
        [
            "sites/fz.toml: boilers[0].fule: unknown key; did you mean \"fuel\"?",
            "sites/fz.toml: boilers[0].id: missing required key; give the boiler id (use ASCII letters, digits, \"_\", \"-\" and \".\")",
            "sites/fz.toml: boilers[0].name: missing required key; give the boiler's name (free text)",
            "sites/fz.toml: boilers[0].kind: unknown boiler kind \"steem\"; did you mean \"steam\"?",
            "sites/fz.toml: boilers[0].rated_capacity: 0 is not a capacity; give the rated capacity, a number > 0 (t/h for steam, MW for hot water)",
            FUEL_MISSING,
            "sites/fz.toml: boilers[0].fuel_meter: missing required key; give the id of the meter whose consumption counter is the fuel, a meter of this site",
            "sites/fz.toml: boilers[0].output_meter: missing required key; give the id of the meter whose consumption counter is the boiler's output (steam, heat or water), a meter of this site",
        ]
    );
}

#[test]
fn a_steam_boiler_needs_feed_water_and_a_gas_boiler_an_lhv() {
    let site = r#"
[[boilers]]
id = "b"
name = "no feed water, no LHV"
kind = "steam"
rated_capacity = 4
fuel = "natural_gas"
fuel_meter = "flue-gas"
output_meter = "steam"
exhaust_c = { meter = "flue", point = "exhaust_c" }
"#
    .replace("flue-gas", "gas");
    let no_lhv = METERS.replace("lhv_kj_per_m3 = 35818\n", "");
    let main = MAIN.to_owned();
    let e: Vec<String> = from_parts(
        &main,
        &[("fz.toml", &format!("{no_lhv}{site}"))],
        &profiles(),
    )
    .expect_err("errors")
    .0
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        e,
        [
            "sites/fz.toml: boilers[0].feed_water_c: missing required key; give the feed-water temperature: a number (degC) or { meter = \"...\", point = \"...\" }",
            "sites/fz.toml: boilers[0].cold_air_c: missing; with exhaust_c give the cold-air temperature: a number (degC) or { meter = \"...\", point = \"...\" }",
            "sites/fz.toml: boilers[0].fuel_records: missing; a gas boiler needs [[boilers.fuel_records]] with lhv_kj_per_m3, or a fuel meter with lhv_kj_per_m3",
        ]
    );
}

#[test]
fn records_with_one_date_twice_are_refused() {
    let site = r#"
[[boilers]]
id = "b"
name = "coal"
kind = "hot_water"
rated_capacity = 7
fuel = "bituminous"
fuel_meter = "coal"
output_meter = "heat"

[[boilers.fuel_records]]
from = "2026-01-01"
lhv_kj_per_kg = 21500
ash_pct = 22.7
slag_share_pct = 80
slag_combustible_pct = 12
fly_ash_combustible_pct = 20

[[boilers.fuel_records]]
from = "2026-01-01"
lhv_kj_per_kg = 21000
ash_pct = 22.7
slag_share_pct = 80
slag_combustible_pct = 12
fly_ash_combustible_pct = 100
"#;
    assert_eq!(
        errors("", site),
        [
            "sites/fz.toml: boilers[0].fuel_records[1].fly_ash_combustible_pct: 100 is out of range; use a percentage, 0 <= x < 100",
        ]
    );
    let fixed = site.replace(
        "fly_ash_combustible_pct = 100",
        "fly_ash_combustible_pct = 20",
    );
    assert_eq!(
        errors("", &fixed),
        [
            "sites/fz.toml: boilers[0].fuel_records[1].from: duplicate date 2026-01-01; boilers[0].fuel_records[0] starts then too (one record per date)",
        ]
    );
    let no_records = site
        .split("\n[[boilers.fuel_records]]")
        .next()
        .expect("boiler");
    assert_eq!(
        errors("", no_records),
        [
            "sites/fz.toml: boilers[0].fuel_records: missing; give at least one [[boilers.fuel_records]] with `from` and lhv_kj_per_kg (the lab's as-received net calorific value)",
        ]
    );
}

#[test]
fn boiler_ids_are_unique_across_files_and_meters_belong_to_the_site() {
    let other = r#"
[site]
id = "xm"
name = "Xiamen"

[[meters]]
id = "xm-gas"
energy = "natural_gas"
level = 1
profile = "gas_flow_computer"
endpoint = "ep"
unit_id = 20
lhv_kj_per_m3 = 35818

[[boilers]]
id = "fz-b1"
name = "same id"
kind = "steam"
rated_capacity = 4
fuel = "natural_gas"
fuel_meter = "xm-gas"
output_meter = "steam"
feed_water_c = 20
"#;
    let e: Vec<String> = from_parts(
        MAIN,
        &[
            ("fz.toml", &format!("{METERS}{BOILERS}")),
            ("xm.toml", other),
        ],
        &profiles(),
    )
    .expect_err("errors")
    .0
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        e,
        [
            "sites/xm.toml: boilers[0].id: duplicate boiler id \"fz-b1\"; already used at sites/fz.toml: boilers[0].id",
            "sites/xm.toml: boilers[0].output_meter: meter \"steam\" belongs to another site (sites/fz.toml); a boiler's meters are meters of its own site file",
        ]
    );
}

#[test]
fn the_boiler_section_of_the_main_file() {
    let c = load(
        "\n[boiler]\nmin_coverage = 0.75\ngrace_secs = 600\nlimits = \"none\"\n",
        &BOILERS.replace("limits = \"none\"\n", ""),
    )
    .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!((c.boiler.min_coverage, c.boiler.grace_secs), (0.75, 600));
    assert!(c.boiler.limits.is_none());
    assert!(c.boilers.iter().all(|b| b.spec.min_coverage == 0.75));
    assert!(c.boilers.iter().all(|b| b.spec.limits.is_none()));
    assert_eq!(
        boiler(&c, "fz-b1").limits_source,
        "none ([boiler] limits = \"none\")"
    );
    assert_eq!(
        errors(
            "\n[boiler]\nmin_coverage = 1.5\ngrace_secs = -1\ncoefficients = \"no/such.toml\"\nlimit = \"none\"\n",
            ""
        ),
        [
            "emgate.toml: boiler.limit: unknown key; did you mean \"limits\"?",
            "emgate.toml: boiler.coefficients: cannot read \"no/such.toml\": no such file or directory; use \"builtin\" (built in) or the path of a table, relative to this file",
            "emgate.toml: boiler.min_coverage: 1.5 is not a share; use a number from 0 to 1 (default 0.9)",
            "emgate.toml: boiler.grace_secs: -1 is too small; the minimum is 0",
        ]
    );
    // A boiler cannot name a row when there is no limit table.
    assert_eq!(
        errors(
            "\n[boiler]\nlimits = \"none\"\n",
            &BOILERS.replace(
                "limits = \"none\"\n",
                "limits = \"gb24500_2020_gas_non_condensing\"\n"
            )
        ),
        [
            "sites/fz.toml: boilers[1].limits: the main file has [boiler] limits = \"none\" (no limit table); remove this key",
        ]
    );
}

#[test]
fn output_and_fuel_meters_both_level_1_are_warned_about() {
    let c = config();
    assert!(emgate::config::boilers::warnings(&c).is_empty());
    let site = BOILERS.replace("output_meter = \"steam\"", "output_meter = \"steam-main\"");
    let c = load("", &site).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(
        emgate::config::boilers::warnings(&c),
        [
            "sites/fz.toml: boilers[0]: warning: output meter \"steam-main\" and fuel meter \"gas\" are both level 1: the same energy would be counted twice in the site total; unless the steam leaves the site, make the output meter level 2 or 3",
        ]
    );
}

#[test]
fn the_aggregator_keeps_the_gauges_boilers_use_without_gauge_stats() {
    let main = MAIN.replace(
        "windows = [\"15m\", \"1h\"]",
        "windows = [\"15m\"]\ngauge_stats = false",
    );
    let c = from_parts(
        &main,
        &[("fz.toml", &format!("{METERS}{BOILERS}"))],
        &profiles(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut agg = emgate::app::stages::aggregator(&c);
    let mut out = AggOutput::default();
    // Two readings of every meter a quarter hour apart close one window each.
    let t0 = 1_773_504_000;
    for t in [t0, t0 + 900] {
        let mut batch = ReadingBatch::default();
        let mut cont = Vec::new();
        for (i, m) in c.meters.iter().enumerate() {
            let points = &c.profiles[m.profile.index()].points;
            let values: Vec<PointValue> = points
                .iter()
                .enumerate()
                .map(|(k, _)| PointValue::new(10.0 + k as f64, Quality::GOOD))
                .collect();
            cont.extend(points.iter().map(|_| f64::NAN));
            batch.push(MeterId(i as u32), t, 0, &values);
        }
        agg.process(&mut batch, &cont, &mut out);
    }
    let mut kept: Vec<(String, Vec<String>)> = out
        .gauges
        .iter()
        .filter(|g| g.size == WindowSize::Min15)
        .map(|g| {
            let m = &c.meters[g.meter as usize];
            let points = &c.profiles[m.profile.index()].points;
            let names = out.gauge_stats[g.stats_start as usize..g.stats_end as usize]
                .iter()
                .map(|s| points[usize::from(s.point)].name.clone())
                .collect();
            (m.id.clone(), names)
        })
        .collect();
    kept.sort();
    // The steam meter's pressure and temperature (defaults of fz-b1), the
    // analyzer's four gauges; nothing of the other meters.
    assert_eq!(
        kept,
        [
            (
                "flue".to_owned(),
                ["o2_pct", "co_ppm", "exhaust_c", "ambient_c"]
                    .map(str::to_owned)
                    .to_vec()
            ),
            (
                "steam".to_owned(),
                ["pressure_mpa", "temperature_c"]
                    .map(str::to_owned)
                    .to_vec()
            ),
        ]
    );
}

#[test]
fn the_tables_give_the_coefficients_q5_and_the_limit_row() {
    let c = config();
    let b = boiler(&c, "fz-b1");
    let s = &b.spec;
    // The natural_gas row of config/coefficients/boiler.toml.
    assert_eq!(
        (s.q2_m, s.q2_n, s.q3_k, s.q3_default_pct, s.beta),
        (0.5, 3.5, 3.2, 0.5, 0.7903)
    );
    assert_eq!(
        (s.carbon_kj_per_kg, s.slag_temperature_c),
        (32_866.0, 600.0)
    );
    // The q5 table's 10 t/h row.
    assert_eq!(s.q5_rated_pct, 1.7);
    assert_eq!(
        b.limits_key.as_deref(),
        Some("gb24500_2020_gas_non_condensing")
    );
    let row = s.limits.expect("a limit row");
    assert_eq!(row.eta_grades, [96.0, 94.0, 92.0]);
    assert!(
        b.limits_source
            .starts_with("selected by fuel natural_gas, chamber, 10 t/h; GB 24500-2020 Table 4")
            && b.limits_source.ends_with(" [P]"),
        "{}",
        b.limits_source
    );
    // The same boiler 7 MW hot water (10 t/h) with a q3 override.
    let site = BOILERS
        .split("\n[[boilers]]\nid = \"fz-b2\"")
        .next()
        .expect("first boiler")
        .replace(
            "blowdown_pct = 2.0\n",
            "q3_pct = 0.2\nlimits = \"gb24500_2020_gas_non_condensing\"\n",
        );
    let c = load("", &site).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let b = boiler(&c, "fz-b1");
    assert_eq!(b.spec.q3_default_pct, 0.2);
    assert!(
        b.limits_source
            .starts_with("configured; GB 24500-2020 Table 4"),
        "{}",
        b.limits_source
    );
}

#[test]
fn check_config_prints_each_boiler_and_warns_on_stderr() {
    use crate::support::config::GatewayToml;
    let site = format!("{METERS}{BOILERS}")
        .replace("output_meter = \"steam\"", "output_meter = \"steam-main\"");
    let files = GatewayToml::new("gw")
        .gateway_keys("timezone = \"Asia/Shanghai\"")
        .section("aggregation", "windows = [\"15m\", \"1h\"]")
        .endpoint("ep", "")
        .profile("test_flue", FLUE_PROFILE)
        .site("fz.toml", site)
        .write();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emgate"))
        .args(["check-config", "--config"])
        .arg(files.main_file())
        .output()
        .expect("run emgate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let boilers: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("boilers: "))
        .collect();
    assert_eq!(
        boilers,
        [
            "boilers: 2 (windows 15m 1h; min coverage 0.9; grace automatic)",
            "  boiler fz-b1 (steam, 10 t/h, fuel natural_gas, chamber): limits gb24500_2020_gas_non_condensing (selected by fuel natural_gas, chamber, 10 t/h; GB 24500-2020 Table 4 as reproduced in adgo07/EquipEffi standards/boiler.json (source pages 4-6), a data pack marked 'under review' (boiler.md 5.1) [P])",
            "    fuel gas.volume_nm3 (nm3); output steam-main.mass_t (t) as steam mass, auto steam, dryness 1",
            "    inputs: steam_pressure steam-main.pressure_mpa, steam_temperature steam-main.temperature_c, feed_water_c 20 degC, exhaust_c flue.exhaust_c, o2_pct flue.o2_pct, co_ppm flue.co_ppm, cold_air_c flue.ambient_c",
            "    q5 at rated load 1.7 %, q3 without CO 0.5 %, disagreement above 5 points; LHV from the fuel meter's lhv_kj_per_m3 35818",
            "  boiler fz-b2 (hot_water, 7 MW, fuel bituminous, layered): limits none (limits = \"none\")",
            "    fuel coal.mass_t (t); output heat.heat_gj (gj) as heat",
            "    inputs: -",
            "    q5 at rated load 2.5 %, q3 without CO 0.5 %, disagreement above 3 points; LHV from 2 fuel record(s)",
        ],
        "{stdout}"
    );
    // The warning goes to stderr; the exit code stays 0.
    assert_eq!(
        stderr,
        format!(
            "{}: boilers[0]: warning: output meter \"steam-main\" and fuel meter \"gas\" are both level 1: the same energy would be counted twice in the site total; unless the steam leaves the site, make the output meter level 2 or 3\n",
            files.site_file("fz.toml").display()
        )
    );
}
