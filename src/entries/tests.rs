//! Unit tests of the entry model: items, periods, ids and the line.

use jiff::tz::TimeZone;

use super::*;

#[test]
fn items_and_their_units() {
    assert_eq!(Item::parse("output_t"), Some(Item::Output("t".into())));
    assert_eq!(Item::parse("output_m2"), Some(Item::Output("m2".into())));
    assert_eq!(Item::parse("output_value_10k_cny"), Some(Item::OutputValue));
    assert_eq!(Item::parse("value_added_10k_cny"), Some(Item::ValueAdded));
    assert_eq!(Item::parse("meter_reading"), Some(Item::MeterReading));
    assert_eq!(Item::parse("output_"), None);
    assert_eq!(Item::parse("output_T"), None);
    assert_eq!(Item::parse("fuel_lab"), None);
    assert_eq!(
        Item::parse("fuel_lhv_kj_per_kg"),
        Some(Item::FuelLab(FuelLab::LhvPerKg))
    );
    assert_eq!(
        Item::parse("fly_ash_combustible_pct").and_then(|i| i.unit().map(str::to_owned)),
        Some("pct".into())
    );
    assert_eq!(Item::FuelLab(FuelLab::LhvPerM3).unit(), Some("kj_per_m3"));
    // Still an output in tonnes of ash, not a lab item.
    assert_eq!(
        Item::parse("output_ash_t"),
        Some(Item::Output("ash_t".into()))
    );
    assert_eq!(Item::OutputValue.unit(), Some("10k_cny"));
    assert_eq!(
        Item::parse("output_t").and_then(|i| i.unit().map(str::to_owned)),
        Some("t".into())
    );
}

#[test]
fn periods_in_local_time() {
    let tz = TimeZone::get("Asia/Shanghai").expect("tz");
    let p = period("2026-11", &tz).expect("month");
    assert_eq!(rfc3339(&p.start), "2026-11-01T00:00:00+08:00");
    assert_eq!(rfc3339(&p.end), "2026-12-01T00:00:00+08:00");
    let p = period("2026", &tz).expect("year");
    assert_eq!(rfc3339(&p.start), "2026-01-01T00:00:00+08:00");
    assert_eq!(rfc3339(&p.end), "2027-01-01T00:00:00+08:00");
    let p = period("2026-12-31", &tz).expect("day");
    assert_eq!(rfc3339(&p.end), "2027-01-01T00:00:00+08:00");
    for bad in [
        "2026-13",
        "2026-02-30",
        "26-11",
        "2026-1",
        "2026/11",
        "",
        "2026-11-03-01",
        "+026",
    ] {
        assert_eq!(
            period(bad, &tz),
            Err(EntryError::Period(bad.to_owned())),
            "{bad}"
        );
    }
}

#[test]
fn ids_carry_their_time_and_sort_by_it() {
    let a = new_id(1_700_000_000_123, 0);
    let b = new_id(1_700_000_000_124, u128::MAX);
    assert_eq!(a.len(), ID_LEN);
    assert_eq!(&a[10..], "0000000000000000");
    assert_eq!(&b[10..], "ZZZZZZZZZZZZZZZZ");
    assert!(a < b);
    assert_eq!(id_time_ms(&a), Some(1_700_000_000_123));
    assert_eq!(id_time_ms(&b), Some(1_700_000_000_124));
    assert_eq!(id_time_ms("short"), None);
    assert_eq!(id_time_ms("0000000000000000000000000U"), None);
}

#[test]
fn the_line_has_every_tag_and_field() {
    let e = Entry {
        id: "01ABCDEFGH0000000000000000".into(),
        site: "fz".into(),
        item: "output_t".into(),
        meter: None,
        boiler: None,
        period: "2026-11".into(),
        period_start: "2026-11-01T00:00:00+08:00".into(),
        period_end: "2026-12-01T00:00:00+08:00".into(),
        value: 1250.5,
        unit: "t".into(),
        entered_by: "Li Wei".into(),
        reason: String::new(),
        supersedes: String::new(),
        time: 1_796_000_000,
    };
    let mut out = Vec::new();
    e.encode(&mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "entry,item=output_t,period=2026-11,site=fz value=1250.5,unit=\"t\",\
         period_start=\"2026-11-01T00:00:00+08:00\",period_end=\"2026-12-01T00:00:00+08:00\",\
         entered_by=\"Li Wei\",reason=\"\",id=\"01ABCDEFGH0000000000000000\",supersedes=\"\" 1796000000\n"
    );
}

#[test]
fn a_lab_analysis_line_has_its_boiler_tag() {
    let e = Entry {
        id: "01ABCDEFGH0000000000000000".into(),
        site: "fz".into(),
        item: "fuel_lhv_kj_per_kg".into(),
        meter: None,
        boiler: Some("fz-b2".into()),
        period: "2026-11-20".into(),
        period_start: "2026-11-20T00:00:00+08:00".into(),
        period_end: "2026-11-21T00:00:00+08:00".into(),
        value: 21800.0,
        unit: "kj_per_kg".into(),
        entered_by: "Lab Chen".into(),
        reason: String::new(),
        supersedes: String::new(),
        time: 1_796_000_000,
    };
    let mut out = Vec::new();
    e.encode(&mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "entry,boiler=fz-b2,item=fuel_lhv_kj_per_kg,period=2026-11-20,site=fz value=21800.0,unit=\"kj_per_kg\",\
         period_start=\"2026-11-20T00:00:00+08:00\",period_end=\"2026-11-21T00:00:00+08:00\",\
         entered_by=\"Lab Chen\",reason=\"\",id=\"01ABCDEFGH0000000000000000\",supersedes=\"\" 1796000000\n"
    );
}
