//! Standard-coal conversion of window amounts (`pipeline::energy`): each
//! default conversion the configuration resolves, against the GB/T 2589
//! values of domain.md §1 and, for steam, against `seuif97` directly.
//!
//! Decimal expectations (12.29 kgce) are compared within 1e-9 relative:
//! the product of two decimals is not exactly representable, the rounding
//! of one multiplication is all that separates them.

use emgate::config::{ElectricityMethod, from_parts};
use emgate::pipeline::coefficients::{CoefficientTable, KGCE_PER_MJ, kgce_per_m3_from_lhv};
use emgate::pipeline::energy::{Conversion, EnergyRole, unit_factor};
use emgate::pipeline::steam::{ATMOSPHERE_MPA, MAKE_UP_WATER_KJ_PER_KG, SteamMargins, SteamState};
use emgate::profiles::load::builtin;

/// Equal to within floating-point rounding of a few operations.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

/// kgce of a conversion that needs no gauge, with its `estimated` flag.
fn kgce(c: &Conversion, amount: f64, year: i16) -> (f64, bool) {
    c.kgce(amount, year, |_| None).expect("a conversion")
}

fn row(key: &str) -> f64 {
    CoefficientTable::builtin_2008()
        .get(key)
        .expect("row in the 2008 table")
        .kgce
}

/// The example site files with every shipped profile, and `main_extra`
/// appended to a minimal main file.
fn example(main_extra: &str) -> emgate::config::Config {
    let main = format!(
        "[gateway]\nid = \"t\"\n\n[[endpoints]]\nid = \"fz01-gw\"\nhost = \"127.0.0.1\"\n\n[[endpoints]]\nid = \"xm02-gw\"\nhost = \"127.0.0.1\"\n\n[[endpoints]]\nid = \"xm02-bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\n{main_extra}"
    );
    let sites: Vec<(String, String)> = ["fz01.toml", "xm02.toml"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(format!("config/sites/{n}")).expect("site file");
            ((*n).to_owned(), text)
        })
        .collect();
    let sites: Vec<(&str, &str)> = sites
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    from_parts(&main, &sites, builtin()).unwrap_or_else(|e| panic!("{e}"))
}

fn conversion_of<'a>(c: &'a emgate::config::Config, id: &str) -> &'a Conversion {
    &c.meters
        .iter()
        .find(|m| m.id == id)
        .expect("meter exists")
        .conversion
}

#[test]
fn electricity_by_equivalent_value() {
    let c = Conversion::Fixed {
        kgce_per_unit: row("electricity_equivalent"),
    };
    let (k, est) = kgce(&c, 100.0, 2025);
    assert!(close(k, 12.29), "{k}");
    assert!(!est);
    // A MWh counter: the factor is folded in.
    let mwh = Conversion::Fixed {
        kgce_per_unit: row("electricity_equivalent")
            * unit_factor("mwh", "kwh", emgate::model::EnergyType::Electricity).expect("mwh"),
    };
    assert!(close(kgce(&mwh, 1.0, 2025).0, 122.9));
}

#[test]
fn electricity_by_equal_value_uses_the_year_of_the_window() {
    let c = Conversion::EqualValue {
        by_year: vec![(2023, 0.300), (2025, 0.2953)],
        unit_factor: 1.0,
    };
    // Before the first year: the earliest value.
    assert!(close(kgce(&c, 100.0, 2020).0, 30.0));
    assert!(close(kgce(&c, 100.0, 2023).0, 30.0));
    // Between two years: the latest year not after the window's.
    assert!(close(kgce(&c, 100.0, 2024).0, 30.0));
    assert!(close(kgce(&c, 100.0, 2025).0, 29.53));
    // After the last year: the last value.
    assert!(close(kgce(&c, 100.0, 2030).0, 29.53));
    let mwh = Conversion::EqualValue {
        by_year: vec![(2025, 0.2953)],
        unit_factor: 1000.0,
    };
    let (k, est) = kgce(&mwh, 2.0, 2025);
    assert!(close(k, 590.6), "{k}");
    assert!(!est);
    // No year at all (never built by the loader): no figure.
    let empty = Conversion::EqualValue {
        by_year: Vec::new(),
        unit_factor: 1.0,
    };
    assert_eq!(empty.kgce(1.0, 2025, |_| None), None);
}

#[test]
fn natural_gas_rows_and_measured_calorific_value() {
    // The two natural-gas rows of the 2008 table, a known pitfall.
    assert_eq!(row("natural_gas_gas_field"), 1.2143);
    assert_eq!(row("natural_gas_oil_field"), 1.33);
    assert_eq!(row("lpg"), 1.7143);
    let gas_field = Conversion::Fixed {
        kgce_per_unit: row("natural_gas_gas_field"),
    };
    assert!(close(kgce(&gas_field, 1000.0, 2025).0, 1214.3));
    let oil_field = Conversion::Fixed {
        kgce_per_unit: row("natural_gas_oil_field"),
    };
    assert!(close(kgce(&oil_field, 1000.0, 2025).0, 1330.0));
    let lpg = Conversion::Fixed {
        kgce_per_unit: row("lpg"),
    };
    assert!(close(kgce(&lpg, 10.0, 2025).0, 17.143));
    // By the measured LHV: 35 544 kJ/m3 / 29 307.6 = 1.2128 kgce/m3 (the
    // table's 1.2143 comes from 8500 kcal × 4.1816, not 4.1868).
    let per_m3 = kgce_per_m3_from_lhv(35_544.0);
    assert_eq!((per_m3 * 10_000.0).round() / 10_000.0, 1.2128);
    let lhv = Conversion::Fixed {
        kgce_per_unit: per_m3,
    };
    assert!(close(kgce(&lhv, 1000.0, 2025).0, 35_544_000.0 / 29_307.6));
}

#[test]
fn heat_coal_water_and_air() {
    assert_eq!(row("heat"), KGCE_PER_MJ);
    let heat_gj = Conversion::Fixed {
        kgce_per_unit: row("heat")
            * unit_factor("gj", "mj", emgate::model::EnergyType::Heat).expect("gj"),
    };
    assert!(close(kgce(&heat_gj, 1.0, 2025).0, 34.12));
    let coal_t = Conversion::Fixed {
        kgce_per_unit: row("raw_coal")
            * unit_factor("t", "kg", emgate::model::EnergyType::Coal).expect("t"),
    };
    assert!(close(kgce(&coal_t, 1.0, 2025).0, 714.3));
    let water = Conversion::Fixed {
        kgce_per_unit: row("fresh_water")
            * unit_factor("m3", "t", emgate::model::EnergyType::Water).expect("m3 of water"),
    };
    assert!(close(kgce(&water, 100.0, 2025).0, 8.57));
    let air = Conversion::Fixed {
        kgce_per_unit: row("compressed_air"),
    };
    assert!(close(kgce(&air, 100.0, 2025).0, 4.0));
}

#[test]
fn steam_by_enthalpy_and_its_fallback() {
    let c = Conversion::Steam {
        pressure: 3,
        temperature: 4,
        reference_kj_per_kg: MAKE_UP_WATER_KJ_PER_KG,
        kg_per_unit: 1000.0,
        fallback_kgce_per_unit: row("steam_low_pressure") * 1000.0,
        state: SteamState::Auto,
        dryness: 1.0,
        margins: SteamMargins::DEFAULT,
    };
    let means = |i: usize| match i {
        3 => Some(1.0),   // MPa gauge
        4 => Some(200.0), // °C
        _ => None,
    };
    let (k, est) = c.kgce(2.0, 2025, means).expect("steam");
    // 1.0 MPa gauge = 1.101325 MPa absolute; h from IF97 directly.
    let h = seuif97::pt2h(1.0 + ATMOSPHERE_MPA, 200.0);
    // Superheated (saturation at 1.1 MPa is about 184 °C): 2822.2 kJ/kg.
    assert!((h - 2822.2).abs() < 0.05, "{h}");
    assert_eq!(k, 2.0 * 1000.0 * (h - 84.0) / 1000.0 * KGCE_PER_MJ);
    assert!(!est);
    // 2 t × (2822.2 − 84) MJ/t × 0.03412 = 186.85 kgce.
    assert!((k - 186.85).abs() < 0.01, "{k}");

    // A mean missing: the table row, estimated.
    let only_pressure = |i: usize| (i == 3).then_some(1.0);
    let (k, est) = c.kgce(2.0, 2025, only_pressure).expect("fallback");
    assert!(close(k, 257.2), "{k}");
    assert!(est);
    // Outside IF97 (1000 °C): the same fallback.
    let hot = |i: usize| match i {
        3 => Some(1.0),
        _ => Some(1000.0),
    };
    assert_eq!(c.kgce(2.0, 2025, hot), Some((2.0 * 128.6, true)));
}

#[test]
fn none_gives_no_figure_and_roles_default_to_consumed() {
    assert_eq!(Conversion::None.kgce(5.0, 2025, |_| Some(1.0)), None);
    assert_eq!(EnergyRole::default(), EnergyRole::Consumed);
    assert_eq!(EnergyRole::Exported.as_str(), "exported");
    assert_eq!(
        Conversion::Fixed {
            kgce_per_unit: 0.1229
        }
        .describe(),
        "0.1229 kgce per unit"
    );
}

#[test]
fn example_meters_resolve_to_the_default_conversions() {
    let c = example("");
    let fixed = |id: &str| match conversion_of(&c, id) {
        Conversion::Fixed { kgce_per_unit } => *kgce_per_unit,
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(fixed("fz01-main-incomer"), 0.1229);
    assert_eq!(fixed("fz01-gas-boiler"), 1.2143);
    assert!(close(fixed("fz01-water-main"), 0.0857));
    assert!(close(fixed("xm02-heat-supply"), 34.12));
    assert!(close(fixed("xm02-boiler-coal"), 714.3));
    let Conversion::Steam {
        pressure,
        temperature,
        reference_kj_per_kg,
        kg_per_unit,
        fallback_kgce_per_unit,
        ..
    } = *conversion_of(&c, "fz01-steam-main")
    else {
        panic!("steam by enthalpy");
    };
    let steam = c
        .profiles
        .iter()
        .find(|p| p.id == "steam_flow_computer")
        .expect("profile");
    assert_eq!(steam.points[pressure].name, "pressure_mpa");
    assert_eq!(steam.points[temperature].name, "temperature_c");
    assert_eq!(
        (reference_kj_per_kg, kg_per_unit),
        (MAKE_UP_WATER_KJ_PER_KG, 1000.0)
    );
    assert!(close(fallback_kgce_per_unit, 128.6));
    let incomer = c.meters.iter().find(|m| m.id == "fz01-main-incomer");
    let incomer = incomer.expect("meter");
    let acrel = &c.profiles[incomer.profile.index()];
    assert_eq!(
        incomer.consumption.map(|i| acrel.points[i].name.as_str()),
        Some("import_kwh")
    );
    assert_eq!(
        incomer.conversion_source,
        "GB/T 2589-2008 electricity_equivalent 0.1229 kgce/kwh (counter import_kwh in kwh)"
    );

    // Equal value for the whole installation.
    let c = example(
        "\n[aggregation]\nelectricity = \"equal_value\"\n\n[aggregation.equal_value_kgce_per_kwh]\n\"2025\" = 0.2953\n\"2024\" = 0.2960\n",
    );
    assert_eq!(
        c.aggregation.electricity,
        ElectricityMethod::EqualValue {
            by_year: vec![(2024, 0.296), (2025, 0.2953)]
        }
    );
    assert_eq!(
        *conversion_of(&c, "fz01-main-incomer"),
        Conversion::EqualValue {
            by_year: vec![(2024, 0.296), (2025, 0.2953)],
            unit_factor: 1.0
        }
    );
}
