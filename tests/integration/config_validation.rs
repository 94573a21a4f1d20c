//! Validation settings in the configuration: profile keys (`max_rate_per_hour`,
//! `spike_margin`, `frozen_after`, `rate_of`), and per meter `calibration`,
//! `replacements` and `[meters.rules.<point>]`; how they become the
//! validator's rules, and the errors for each kind of mistake.

use emgate::app::stages::rules;
use emgate::config::load::from_parts;
use emgate::config::{DeclaredReplacement, PointOverride};
use emgate::model::PointValue;
use emgate::model::{MeterId, Quality, ReadingBatch};
use emgate::pipeline::validate::{TimeRules, Validator};

const MAIN: &str = r#"
[gateway]
id = "v"
timezone = "Asia/Shanghai"

[[endpoints]]
id = "e"
host = "127.0.0.1"
"#;

const PROFILE: &str = r#"
description = "test water meter"

[[points]]
name = "volume_m3"
register = "input"
address = 0
type = "u32"
scale = 0.01
kind = "counter"
unit = "m3"
max_rate_per_hour = 100

[[points]]
name = "flow_m3h"
register = "input"
address = 2
type = "u16"
scale = 0.01
unit = "m3h"
min = 0
max = 600
frozen_after = 5
rate_of = "volume_m3"
"#;

const SITE: &str = r#"
[site]
id = "S"
name = "site"

[[meters]]
id = "w1"
energy = "water"
level = 1
profile = "wm"
endpoint = "e"
unit_id = 1
calibration = { serial = "SN-001", accuracy_class = "2", verified = "2025-06-30", due = "2026-06-30" }
replacements = [{ point = "volume_m3", at = "2026-03-01T10:00:00", old_final = 1234.5, new_initial = 0.25 }]

[meters.rules.flow_m3h]
max = 300
frozen_after = 8
"#;

#[test]
fn validation_keys_load_and_become_rules() {
    let c =
        from_parts(MAIN, &[("s.toml", SITE)], &[("wm", PROFILE)]).unwrap_or_else(|e| panic!("{e}"));
    let m = &c.meters[0];
    let cal = m.calibration.as_ref().expect("calibration");
    assert_eq!(cal.serial.as_deref(), Some("SN-001"));
    assert_eq!(cal.accuracy_class.as_deref(), Some("2"));
    assert_eq!(cal.due.to_string(), "2026-06-30");
    // Local midnight in Asia/Shanghai (UTC+8) is 16:00 UTC the day before.
    assert_eq!(
        cal.due_at,
        "2026-06-29T16:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    );
    assert_eq!(
        m.replacements,
        [DeclaredReplacement {
            point: 0,
            at: "2026-03-01T02:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second(),
            old_final: 1234.5,
            new_initial: 0.25,
        }]
    );
    assert_eq!(
        m.overrides,
        [(
            1,
            PointOverride {
                max: Some(300.0),
                frozen_after: Some(8),
                ..PointOverride::default()
            }
        )]
    );

    let r = rules(&c);
    assert_eq!(r.len(), 1);
    let mr = &r[0];
    assert_eq!(mr.calibration_due, Some(cal.due_at));
    assert_eq!(mr.rate_point, Some((0, 1)));
    assert_eq!(mr.replacements.len(), 1);
    assert_eq!(mr.points[0].max_rate_per_hour, Some(100.0));
    assert_eq!(mr.points[0].spike_margin, 1.5);
    // U32 × 0.01 without a declared rollover wraps at 2^32 × 0.01.
    assert_eq!(mr.points[0].rollover, Some(42_949_672.96));
    assert_eq!(mr.points[1].min, Some(0.0), "profile value kept");
    assert_eq!(mr.points[1].max, Some(300.0), "meter override");
    assert_eq!(mr.points[1].frozen_after, Some(8), "meter override");
}

#[test]
fn readings_after_the_due_date_carry_the_calibration_bit() {
    let c =
        from_parts(MAIN, &[("s.toml", SITE)], &[("wm", PROFILE)]).unwrap_or_else(|e| panic!("{e}"));
    let due = c.meters[0].calibration.as_ref().unwrap().due_at;
    let mut v = Validator::new(
        rules(&c),
        TimeRules {
            max_future_skew_secs: 300,
            max_lateness_secs: 86_400 * 400,
            reorder_window_secs: 0,
        },
    );
    let good = |x| PointValue::new(x, Quality::GOOD);
    let mut batch = ReadingBatch::default();
    batch.push(MeterId(0), due - 60, 0, &[good(10.0), good(1.0)]);
    batch.push(MeterId(0), due, 0, &[good(10.01), good(1.0)]);
    let mut continuous = Vec::new();
    v.validate(&mut batch, due + 10, &mut continuous);
    assert_eq!(batch.values[0].quality, Quality::GOOD);
    assert_eq!(batch.values[2].quality, Quality::CALIBRATION);
    assert_eq!(batch.values[3].quality, Quality::CALIBRATION);
}

#[test]
fn validation_key_mistakes_are_each_reported() {
    let errors_of = |site: &str, profile: &str| {
        from_parts(MAIN, &[("s.toml", site)], &[("wm", profile)])
            .expect_err("invalid")
            .0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        errors_of(
            SITE,
            &PROFILE.replace("max_rate_per_hour = 100", "max_rate_per_hour = -1")
        ),
        [
            "profiles/wm.toml: points[0].max_rate_per_hour: -1 is not a valid rate; give the largest possible increase per hour, above 0"
        ]
    );
    assert_eq!(
        errors_of(
            SITE,
            &PROFILE.replace("rate_of = \"volume_m3\"", "rate_of = \"volume\"")
        ),
        [
            "profiles/wm.toml: points[1].rate_of: unknown point \"volume\"; counters of this profile: volume_m3"
        ]
    );
    assert_eq!(
        errors_of(
            SITE,
            &PROFILE.replace("max = 600\n", "max = 600\nmax_rate_per_hour = 5\n")
        ),
        [
            "profiles/wm.toml: points[1].max_rate_per_hour: spike rules apply to counters only; remove it or set kind = \"counter\""
        ]
    );
    let bad_site = SITE
        .replace("due = \"2026-06-30\"", "due = \"30.06.2026\"")
        .replace("point = \"volume_m3\"", "point = \"flow_m3h\"")
        .replace("[meters.rules.flow_m3h]", "[meters.rules.flow]");
    let errors = from_parts(MAIN, &[("s.toml", &bad_site)], &[("wm", PROFILE)])
        .expect_err("invalid")
        .0
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(
        errors,
        [
            "sites/s.toml: meters[0].calibration.due: \"30.06.2026\" is not a date; write it as YYYY-MM-DD",
            "sites/s.toml: meters[0].replacements[0].point: \"flow_m3h\" is a gauge; replacements are recorded for counters",
            "sites/s.toml: meters[0].rules.flow: unknown point \"flow\" in profile \"wm\"; points: volume_m3, flow_m3h",
        ]
    );
}

#[test]
fn validation_section_sets_the_time_limits() {
    let main = format!(
        "{MAIN}\n[validation]\nmax_future_skew_secs = 60\nmax_lateness_secs = 3600\ncheckpoint_interval_secs = 10\n"
    );
    let c = from_parts(&main, &[("s.toml", SITE)], &[("wm", PROFILE)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.validation.max_future_skew_secs, 60);
    assert_eq!(c.validation.max_lateness_secs, 3600);
    assert_eq!(
        c.validation.checkpoint_interval,
        std::time::Duration::from_secs(10)
    );
    let defaults =
        from_parts(MAIN, &[("s.toml", SITE)], &[("wm", PROFILE)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        defaults.validation,
        emgate::config::ValidationSettings::default()
    );
    let bad = format!("{MAIN}\n[validation]\nmax_lateness_secs = 0\nmax_skew = 5\n");
    let errors: Vec<String> = from_parts(&bad, &[("s.toml", SITE)], &[("wm", PROFILE)])
        .expect_err("invalid")
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("emgate.toml: validation.max_skew: unknown key"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("emgate.toml: validation.max_lateness_secs: "),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------
// Energy accounting keys: meter `consumption`, `role`, `coefficient`,
// `lhv_kj_per_m3`; profile `consumption`, `pressure`, `temperature`.

const GAS_PROFILE: &str = r#"
description = "test gas meter"

[[points]]
name = "volume_nm3"
register = "input"
address = 0
type = "u32"
kind = "counter"
unit = "nm3"

[[points]]
name = "pressure_mpa"
register = "input"
address = 2
type = "u16"
unit = "mpa"
"#;

fn energy_site(meters: &str) -> String {
    format!("[site]\nid = \"S\"\nname = \"site\"\n{meters}")
}

fn meter(id: &str, energy: &str, profile: &str, unit: u8, extra: &str) -> String {
    format!(
        "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = 1\nprofile = \"{profile}\"\nendpoint = \"e\"\nunit_id = {unit}\n{extra}"
    )
}

#[test]
fn energy_keys_resolve_onto_the_meter() {
    use emgate::pipeline::energy::{Conversion, EnergyRole};
    let site = energy_site(
        &[
            meter(
                "w1",
                "water",
                "wm",
                1,
                "role = \"exported\"\ncoefficient = \"softened_water\"\n",
            ),
            meter("g1", "natural_gas", "gas", 2, "lhv_kj_per_m3 = 36000\n"),
            meter(
                "g2",
                "natural_gas",
                "gas",
                3,
                "coefficient = \"natural_gas_oil_field\"\nrole = \"feedstock\"\n",
            ),
            meter(
                "w2",
                "water",
                "wm",
                4,
                "coefficient = \"none\"\nconsumption = \"volume_m3\"\n",
            ),
        ]
        .concat(),
    );
    let c = from_parts(
        MAIN,
        &[("s.toml", &site)],
        &[("wm", PROFILE), ("gas", GAS_PROFILE)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = |id: &str| c.meters.iter().find(|m| m.id == id).expect("meter");
    assert_eq!(m("w1").role, EnergyRole::Exported);
    assert_eq!(m("w1").consumption, Some(0));
    assert_eq!(
        m("w1").conversion,
        Conversion::Fixed {
            kgce_per_unit: 0.4857
        }
    );
    assert_eq!(
        m("w1").conversion_source,
        "GB/T 2589-2008 softened_water 0.4857 kgce/t (counter volume_m3 in m3)"
    );
    assert_eq!(
        m("g1").conversion,
        Conversion::Fixed {
            kgce_per_unit: 36_000.0 / 29_307.6
        }
    );
    assert_eq!(
        m("g1").conversion_source,
        "measured LHV 36000 kJ/m3 / 29307.6 = 1.2284 kgce/m3 (counter volume_nm3 in nm3)"
    );
    assert_eq!(m("g2").role, EnergyRole::Feedstock);
    assert_eq!(
        m("g2").conversion,
        Conversion::Fixed {
            kgce_per_unit: 1.33
        }
    );
    assert_eq!(m("w2").conversion, Conversion::None);
    assert_eq!(m("w2").role, EnergyRole::Consumed);
}

#[test]
fn energy_key_mistakes_are_each_reported() {
    let site = energy_site(
        &[
            meter(
                "w1",
                "water",
                "wm",
                1,
                "role = \"exporter\"\nconsumption = \"flow_m3h\"\nlhv_kj_per_m3 = 35544\n",
            ),
            meter(
                "w2",
                "water",
                "wm",
                2,
                "consumption = \"vol\"\ncoefficient = \"natrual_gas\"\n",
            ),
            meter("w3", "water", "wm", 3, "coefficient = \"raw_coal\"\n"),
            meter("g1", "natural_gas", "gas", 4, "lhv_kj_per_m3 = 0\n"),
            meter(
                "g2",
                "natural_gas",
                "gas",
                5,
                "lhv_kj_per_m3 = 35544\ncoefficient = \"lpg\"\n",
            ),
        ]
        .concat(),
    );
    let errors: Vec<String> = from_parts(
        MAIN,
        &[("s.toml", &site)],
        &[("wm", PROFILE), ("gas", GAS_PROFILE)],
    )
    .expect_err("invalid")
    .0
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        errors,
        [
            "sites/s.toml: meters[0].role: unknown role \"exporter\"; did you mean \"exported\"?",
            "sites/s.toml: meters[0].lhv_kj_per_m3: only for natural_gas meters; remove it",
            "sites/s.toml: meters[0].consumption: \"flow_m3h\" is a gauge; name a counter of profile \"wm\": volume_m3",
            "sites/s.toml: meters[1].consumption: unknown point \"vol\" in profile \"wm\"; counters: volume_m3",
            "sites/s.toml: meters[2].coefficient: \"raw_coal\" is per kg, but counter \"volume_m3\" counts m3; choose a row in m3 (or a convertible unit) or \"none\"",
            "sites/s.toml: meters[3].lhv_kj_per_m3: 0 is not a calorific value; give the measured net calorific value in kJ/m3, above 0 (e.g. 35544)",
            "sites/s.toml: meters[4].lhv_kj_per_m3: cannot be combined with `coefficient`; remove one of the two",
        ]
    );
    // An unknown coefficient lists the table's keys.
    let site = energy_site(&meter(
        "w1",
        "water",
        "wm",
        1,
        "coefficient = \"fresh_watr\"\n",
    ));
    let errors: Vec<String> = from_parts(MAIN, &[("s.toml", &site)], &[("wm", PROFILE)])
        .expect_err("invalid")
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "sites/s.toml: meters[0].coefficient: unknown coefficient \"fresh_watr\" in GB/T 2589-2008; did you mean \"fresh_water\"? known: raw_coal, cleaned_coal, coke, crude_oil, fuel_oil, gasoline, diesel, lpg, refinery_dry_gas, natural_gas_oil_field, natural_gas_gas_field, coke_oven_gas, blast_furnace_gas, heat, electricity_equivalent, steam_low_pressure, fresh_water, softened_water, compressed_air, oxygen, none"
        ]
    );
}

#[test]
fn a_default_that_does_not_fit_the_counter_gives_no_kgce() {
    use emgate::pipeline::energy::Conversion;
    // An electricity meter on a water profile: not an error, but no kgce.
    let site = energy_site(&meter("x", "electricity", "wm", 1, ""));
    let c = from_parts(MAIN, &[("s.toml", &site)], &[("wm", PROFILE)])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.meters[0].conversion, Conversion::None);
    assert_eq!(
        c.meters[0].conversion_source,
        "none: counter volume_m3 counts m3, which the default conversion of electricity (\"electricity_equivalent\", per kwh) cannot use; set `coefficient`"
    );
}

#[test]
fn profile_energy_keys() {
    let with = |extra: &str| {
        GAS_PROFILE.replace(
            "description = \"test gas meter\"\n",
            &format!("description = \"test gas meter\"\n{extra}"),
        )
    };
    let errors_of = |profile: &str| -> Vec<String> {
        from_parts(MAIN, &[], &[("gas", profile)])
            .expect_err("invalid")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        errors_of(&with(
            "consumption = \"pressure_mpa\"\npressure = \"p\"\ntemperature = \"pressure_mpa\"\n"
        )),
        [
            "profiles/gas.toml: consumption: \"pressure_mpa\" is a gauge; name a counter of this profile: volume_nm3",
            "profiles/gas.toml: pressure: unknown point \"p\"; gauges of this profile: pressure_mpa",
            "profiles/gas.toml: temperature: \"pressure_mpa\" is in \"mpa\"; steam enthalpy needs a gauge in \"c\"",
        ]
    );
    // Defaults: the first counter, gauges by their usual names.
    let ok = from_parts(
        MAIN,
        &[(
            "s.toml",
            &energy_site(&meter("g", "natural_gas", "gas", 1, "")),
        )],
        &[("gas", GAS_PROFILE)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &ok.profiles[0];
    assert_eq!(
        (p.consumption, p.pressure, p.temperature),
        (Some(0), Some(1), None)
    );
}

/// A DL/T 645 BCD counter without a declared rollover wraps after all nines
/// of its register: XXXXXX.XX counts 0.01 kWh up to 999 999.99, so with a
/// CT of 20 the meter's value wraps at 1 000 000 × 20 = 20 000 000 kWh; its
/// resolution is one count, 0.01 × 20 = 0.2 kWh.
#[test]
fn a_dlt645_counter_wraps_after_all_nines_of_its_bcd_register() {
    let main = "[gateway]\nid = \"gw\"\n[file_sink]\n[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\n";
    let site = "[site]\nid = \"s\"\nname = \"S\"\n[[meters]]\nid = \"e1\"\nenergy = \"electricity\"\nlevel = 1\nprofile = \"d\"\nendpoint = \"bus\"\naddress = \"000000001234\"\nct = 20\n";
    let profile = "description = \"t\"\nprotocol = \"dlt645\"\n[[points]]\nname = \"import_kwh\"\ndi = \"00010000\"\nformat = \"XXXXXX.XX\"\nkind = \"counter\"\nunit = \"kwh\"\nratio = \"ct\"\n";
    let c =
        from_parts(main, &[("s.toml", site)], &[("d", profile)]).unwrap_or_else(|e| panic!("{e}"));
    let r = rules(&c);
    assert_eq!(r[0].points[0].rollover, Some(20_000_000.0));
    assert!((r[0].points[0].resolution - 0.2).abs() < 1e-12);
}
