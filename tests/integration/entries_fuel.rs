//! Fuel lab analyses as manual entries, through `emgate enter` into a real
//! `influxd`: one quantity per entry, for a boiler of the site and a day;
//! the stored line with its `boiler` tag; each refusal's exact message
//! (unknown boiler, missing boiler, unit, range, the boiler's fuel, not a
//! day) with nothing written.

use serde_json::{Value, json};

use crate::boiler_config::{BOILERS, FLUE_PROFILE, METERS};
use crate::entries::{enter, stored};
use crate::support::config::{ConfigFiles, GatewayToml, Site};
use crate::support::influxd::Influxd;

const DB: &str = "entries_fuel";

/// Site `fz` with the gas steam boiler `fz-b1` (natural gas) and the coal
/// hot-water boiler `fz-b2` (bituminous); site `xm` with no boiler.
fn files(influxd: &Influxd) -> ConfigFiles {
    GatewayToml::new("gw")
        .influx_v1(&influxd.url(), DB, "")
        .endpoint("ep", "")
        .profile("test_flue", FLUE_PROFILE)
        .site("fz.toml", format!("{METERS}{BOILERS}"))
        .site("xm.toml", Site::new("xm", "Xiamen plant"))
        .write()
}

/// Every stored entry as JSON objects keyed by column.
async fn entries(influxd: &Influxd) -> Vec<Value> {
    stored(influxd, DB).await
}

#[tokio::test]
async fn lab_analyses_are_stored_with_their_boiler() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd);
    let main = f.main_file();
    let (code, coal, err) = enter(
        &main,
        &[
            "--site",
            "fz",
            "--item",
            "fuel_lhv_kj_per_kg",
            "--boiler",
            "fz-b2",
            "--period",
            "2026-11-20",
            "--value",
            "21800",
            "--unit",
            "kj_per_kg",
            "--by",
            "Lab Chen",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, ash, err) = enter(
        &main,
        &[
            "--site",
            "fz",
            "--item",
            "fly_ash_combustible_pct",
            "--boiler",
            "fz-b2",
            "--period",
            "2026-11-20",
            "--value",
            "17.5",
            "--unit",
            "pct",
            "--by",
            "Lab Chen",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, gas, err) = enter(
        &main,
        &[
            "--site",
            "fz",
            "--item",
            "fuel_lhv_kj_per_m3",
            "--boiler",
            "fz-b1",
            "--period",
            "2026-11-21",
            "--value",
            "35500",
            "--unit",
            "kj_per_m3",
            "--by",
            "Lab Chen",
            "--reason",
            "monthly gas analysis",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let mut got = entries(&influxd).await;
    got.sort_by_key(|e| e["id"].as_str().map(str::to_owned));
    let lab = |boiler: &str, item: &str, day: &str, next: &str, value: Value, unit: &str| {
        json!({
            "site": "fz", "item": item, "boiler": boiler, "period": day,
            "value": value, "unit": unit,
            "period_start": format!("{day}T00:00:00+08:00"),
            "period_end": format!("{next}T00:00:00+08:00"),
            "entered_by": "Lab Chen", "supersedes": "",
        })
    };
    let mut expected = vec![
        lab(
            "fz-b2",
            "fuel_lhv_kj_per_kg",
            "2026-11-20",
            "2026-11-21",
            json!(21800),
            "kj_per_kg",
        ),
        lab(
            "fz-b2",
            "fly_ash_combustible_pct",
            "2026-11-20",
            "2026-11-21",
            json!(17.5),
            "pct",
        ),
        lab(
            "fz-b1",
            "fuel_lhv_kj_per_m3",
            "2026-11-21",
            "2026-11-22",
            json!(35500),
            "kj_per_m3",
        ),
    ];
    for ((e, id), reason) in
        expected
            .iter_mut()
            .zip([&coal, &ash, &gas])
            .zip(["", "", "monthly gas analysis"])
    {
        e["id"] = json!(id);
        e["reason"] = json!(reason);
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn each_bad_analysis_is_refused_with_its_message_and_nothing_is_written() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd);
    let main = f.main_file();
    let ok = [
        "--site",
        "fz",
        "--item",
        "fuel_ash_pct",
        "--boiler",
        "fz-b2",
        "--period",
        "2026-11-20",
        "--value",
        "21.5",
        "--unit",
        "pct",
        "--by",
        "Lab Chen",
    ];
    let solid = "fuel_lhv_kj_per_kg, fuel_ash_pct, fuel_moisture_pct, fuel_volatile_daf_pct, slag_share_pct, slag_combustible_pct, fly_ash_combustible_pct";
    let cases: &[(&[&str], String)] = &[
        (
            &["--boiler", "b9"],
            "unknown boiler \"b9\" in site \"fz\"; known: fz-b1, fz-b2".into(),
        ),
        (
            &["--site", "xm"],
            "unknown boiler \"fz-b2\" in site \"xm\"; known: none".into(),
        ),
        (
            &["--boiler", ""],
            "unknown boiler \"\" in site \"fz\"; known: fz-b1, fz-b2".into(),
        ),
        (
            &["--item", "output_t", "--unit", "t"],
            "a boiler is only given with a fuel lab item, not output_t".into(),
        ),
        (
            &["--item", "fuel_lhv_kj_per_kg", "--value", "21800", "--unit", "kj/kg"],
            "unit \"kj/kg\" does not fit item fuel_lhv_kj_per_kg; use \"kj_per_kg\"".into(),
        ),
        (
            &["--unit", "%"],
            "unit \"%\" does not fit item fuel_ash_pct; use \"pct\"".into(),
        ),
        (
            &["--item", "fuel_lhv_kj_per_kg", "--value", "60000", "--unit", "kj_per_kg"],
            "value 60000 is out of range for fuel_lhv_kj_per_kg; use 4000 to 55000 (kj_per_kg)"
                .into(),
        ),
        (
            &["--item", "fuel_lhv_kj_per_kg", "--value", "2150", "--unit", "kj_per_kg"],
            "value 2150 is out of range for fuel_lhv_kj_per_kg; use 4000 to 55000 (kj_per_kg)"
                .into(),
        ),
        (
            &["--value", "100"],
            "value 100 is out of range for fuel_ash_pct; use 0 <= x < 100 (pct)".into(),
        ),
        (
            &["--value", "-1"],
            "value -1 is negative; entries are amounts (>= 0)".into(),
        ),
        (
            &["--boiler", "fz-b1"],
            "boiler \"fz-b1\" burns natural_gas (gas); fuel_ash_pct is not analysed for it, use fuel_lhv_kj_per_m3".into(),
        ),
        (
            &["--item", "fuel_lhv_kj_per_m3", "--value", "35500", "--unit", "kj_per_m3"],
            format!("boiler \"fz-b2\" burns bituminous (solid); fuel_lhv_kj_per_m3 is not analysed for it, use {solid}"),
        ),
        (
            &["--period", "2026-11"],
            "period \"2026-11\" is not a day; a lab analysis is for the day the sample was taken (YYYY-MM-DD)".into(),
        ),
        (
            &["--meter", "coal"],
            "a meter is only given with item meter_reading, not fuel_ash_pct".into(),
        ),
        (
            &["--period", "2026-12-31"],
            "period 2026-12-31 is in the future (it starts 2026-12-31T00:00:00+08:00)".into(),
        ),
    ];
    for (change, message) in cases {
        let mut args: Vec<&str> = ok.to_vec();
        for pair in change.chunks(2) {
            if let Some(at) = args.iter().position(|a| *a == pair[0]) {
                args[at + 1] = pair[1];
            } else {
                args.extend_from_slice(pair);
            }
        }
        let (code, out, err) = enter(&main, &args);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(2), "", format!("error: {message}").as_str()),
            "{args:?}"
        );
    }
    // Without --boiler.
    let (code, _, err) = enter(
        &main,
        &ok[..4].iter().chain(&ok[6..]).copied().collect::<Vec<_>>(),
    );
    assert_eq!(
        (code, err.as_str()),
        (
            Some(2),
            "error: item fuel_ash_pct is a lab analysis of a boiler's fuel; give the boiler's id (boiler)"
        )
    );
    assert_eq!(entries(&influxd).await, Vec::<Value>::new());
    let (code, _, err) = enter(&main, &ok);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(entries(&influxd).await.len(), 1);
}
