//! The shipped GB/T 2589-2008 coefficient table, pinned at the values public
//! code most often gets wrong (domain.md §0.4), and the conversions around it.

use emgate::pipeline::coefficients::{
    CoefficientError, CoefficientTable, Electricity, KGCE_PER_MJ, electricity_kgce_per_kwh,
    kgce_per_m3_from_lhv,
};

#[test]
fn pitfalls_are_pinned() {
    let t = CoefficientTable::builtin_2008();
    assert_eq!(t.edition, "GB/T 2589-2008");
    let k = |key: &str| t.get(key).unwrap_or_else(|e| panic!("{e}")).kgce;
    // LPG is 1.7143, not 0.7143; refinery dry gas 1.5714, not 0.5714.
    assert_eq!(k("lpg"), 1.7143);
    assert_eq!(k("refinery_dry_gas"), 1.5714);
    // The two natural gases: gas-field 1.2143 (35 544 kJ/m3), oil-field 1.3300 (38 931 kJ/m3).
    assert_eq!(k("natural_gas_gas_field"), 1.2143);
    assert_eq!(
        t.get("natural_gas_gas_field").unwrap().lhv_kj,
        Some(35_544.0)
    );
    assert_eq!(k("natural_gas_oil_field"), 1.3300);
    assert_eq!(
        t.get("natural_gas_oil_field").unwrap().lhv_kj,
        Some(38_931.0)
    );
    // Electricity, equivalent value; heat per MJ; raw coal; low-pressure steam.
    assert_eq!(k("electricity_equivalent"), 0.1229);
    assert_eq!(k("heat"), 0.03412);
    assert_eq!(KGCE_PER_MJ, 0.03412);
    assert_eq!(k("raw_coal"), 0.7143);
    assert_eq!(k("steam_low_pressure"), 0.1286);
    assert_eq!(k("fresh_water"), 0.0857);
}

#[test]
fn every_row_with_a_calorific_value_agrees_with_it() {
    // The 2008 table is kcal-based (raw coal 5000/7000 = 0.7143). Its kJ
    // figures were converted from kcal with 4.1816 kJ/kcal for most rows
    // (5000 kcal = 20 908 kJ) but 4.1868 for some (refinery dry gas, 11 000
    // kcal = 46 055 kJ), so each row must agree with its LHV on one of the two
    // bases to the table's 4 decimals. Measured calorific values use the
    // definition, 29 307.6 kJ per kgce.
    let t = CoefficientTable::builtin_2008();
    for c in &t.energy {
        if let Some(lhv) = c.lhv_kj {
            let on = |kj_per_kcal: f64| lhv / (7000.0 * kj_per_kcal);
            let computed = if (on(4.1816) - c.kgce).abs() < (on(4.1868) - c.kgce).abs() {
                on(4.1816)
            } else {
                on(4.1868)
            };
            assert!(
                (computed - c.kgce).abs() < 0.0006,
                "{}: table {} vs LHV {lhv} kJ -> {computed:.5}",
                c.key,
                c.kgce
            );
        }
    }
}

#[test]
fn conversions_with_units() {
    let t = CoefficientTable::builtin_2008();
    // 2 t of raw coal = 2000 kg × 0.7143.
    assert_eq!(t.kgce("raw_coal", 2.0, "t").unwrap(), 2000.0 * 0.7143);
    // 1.5 GJ of heat = 1500 MJ × 0.03412.
    assert_eq!(t.kgce("heat", 1.5, "gj").unwrap(), 1500.0 * 0.03412);
    assert_eq!(
        t.kgce("electricity_equivalent", 1000.0, "kwh").unwrap(),
        1000.0 * 0.1229
    );
    assert_eq!(
        t.kgce("lpg", 1.0, "m3"),
        Err(CoefficientError::Unit {
            key: "lpg".into(),
            from: "m3".into(),
            to: "kg".into()
        })
    );
    let err = t.kgce("lpgas", 1.0, "kg").unwrap_err().to_string();
    assert!(
        err.starts_with("no coefficient \"lpgas\" in GB/T 2589-2008; known: raw_coal, "),
        "{err}"
    );
}

#[test]
fn electricity_basis_and_measured_gas() {
    let t = CoefficientTable::builtin_2008();
    assert_eq!(
        electricity_kgce_per_kwh(&t, Electricity::Equivalent),
        Some(0.1229)
    );
    assert_eq!(
        electricity_kgce_per_kwh(&t, Electricity::EqualValue(0.404)),
        Some(0.404)
    );
    // Measured 36 000 kJ/m3: 36 000 / 29 307.6.
    assert_eq!(kgce_per_m3_from_lhv(36_000.0), 36_000.0 / 29_307.6);
}

#[test]
fn a_table_with_an_unknown_key_is_rejected() {
    let err = CoefficientTable::parse("edition = \"x\"\n[[energy]]\nkey = \"a\"\nname = \"a\"\nunit = \"kg\"\nkgce = 1\nfactor = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `factor`"), "{err}");
}
