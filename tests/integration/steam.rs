//! Steam properties against the IAPWS-IF97 reference values of domain.md
//! §4.3 (computed there with Python's `iapws`, an implementation we did not
//! write), to the table's 0.1 kJ/kg.

use emgate::pipeline::steam::{
    ATMOSPHERE_MPA, MAKE_UP_WATER_KJ_PER_KG, enthalpy_kj_per_kg, heat_mj,
    saturated_enthalpy_kj_per_kg, steam_kgce,
};

/// Within the table's rounding (values are given to 0.1 kJ/kg).
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 0.05 + 1e-9
}

#[test]
fn superheated_steam_and_water_match_the_reference_table() {
    // (p MPa abs, t °C, h kJ/kg)
    for (p_abs, t, want) in [
        (1.0, 250.0, 2943.2),
        (1.6, 250.0, 2919.9),
        (2.5, 300.0, 3009.6),
        (3.9, 450.0, 3332.4),
        (9.8, 540.0, 3479.0),
        (1.0, 105.0, 440.9),
    ] {
        let h = enthalpy_kj_per_kg(p_abs - ATMOSPHERE_MPA, t).expect("in range");
        assert!(close(h, want), "{p_abs} MPa, {t} °C: {h} vs {want}");
    }
    // Make-up water at 20 °C and 0.101 MPa absolute.
    let h = enthalpy_kj_per_kg(0.101 - ATMOSPHERE_MPA, 20.0).expect("in range");
    assert!(close(h, MAKE_UP_WATER_KJ_PER_KG), "{h}");
}

#[test]
fn saturated_steam_and_water_match_the_reference_table() {
    // (p MPa abs, h' kJ/kg, h'' kJ/kg)
    for (p, h_liquid, h_vapour) in [
        (0.2, 504.7, 2706.2),
        (0.4, 604.7, 2738.1),
        (0.5, 640.2, 2748.1),
        (0.7, 697.1, 2762.7),
        (0.8, 721.0, 2768.3),
        (1.0, 762.7, 2777.1),
        (1.1, 781.2, 2780.7),
        (1.3, 814.8, 2786.5),
        (1.6, 858.6, 2792.9),
        (2.5, 962.0, 2802.0),
        (3.9, 1080.2, 2801.4),
    ] {
        let l = saturated_enthalpy_kj_per_kg(p, 0.0).expect("in range");
        let v = saturated_enthalpy_kj_per_kg(p, 1.0).expect("in range");
        assert!(close(l, h_liquid), "{p} MPa liquid: {l} vs {h_liquid}");
        assert!(close(v, h_vapour), "{p} MPa vapour: {v} vs {h_vapour}");
    }
}

#[test]
fn heat_and_kgce_of_a_steam_delivery() {
    // 10 t of steam with h = 2943.2 kJ/kg over make-up water (84.0):
    // 10 × (2943.2 − 84.0) = 28 592 MJ, × 0.034 12 = 975.56 kgce.
    assert!((heat_mj(10.0, 2943.2, 84.0) - 28_592.0).abs() < 1e-9);
    let kgce =
        steam_kgce(10.0, 1.0 - ATMOSPHERE_MPA, 250.0, MAKE_UP_WATER_KJ_PER_KG).expect("in range");
    assert!(
        (kgce - 28_592.0 * 0.03412).abs() < 10.0 * 0.05 * 0.03412 + 1e-9,
        "{kgce}"
    );
    // Out of range or missing: None (the caller falls back to the table and flags it estimated).
    assert_eq!(enthalpy_kj_per_kg(f64::NAN, 250.0), None);
    assert_eq!(enthalpy_kj_per_kg(1.0, 900.0), None);
}
