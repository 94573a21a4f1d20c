//! Real reports, not hand-written documents: every kind built by the
//! report code from a configuration and a hand-made local archive (the
//! store a gateway without InfluxDB reads), rendered to HTML and loaded in
//! headless Chromium with the same checks as the hand-written ones: every
//! section of the document in the DOM, nothing requested, a screenshot
//! that is not blank.

use std::fmt::Write as _;

use emgate::reports::store_archive::ArchiveStore;
use emgate::reports::{Granularity, Range, ReportKind, Request, Sites, run};

use crate::support::config::GatewayToml;

/// 2025-10-01 00:00 in Asia/Shanghai.
const OCT1: i64 = 1_759_248_000;

const SITE: &str = r#"[site]
id = "a"
name = "Site A & <Co>"
timezone = "Asia/Shanghai"

[[meters]]
id = "a1"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "ep"
unit_id = 1
calibration = { serial = "S-1", accuracy_class = "0.5S", verified = "2024-10-01", due = "2025-10-02" }

[[meters]]
id = "a2"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "ep"
unit_id = 2

[[targets]]
year = 2025
cap_tce = 0.001
"#;

/// The archive's one day: a1's 96 quarters and a2's first 40 of
/// 2025-10-01, the site's total per quarter, its day and its month.
fn day_lines() -> String {
    let mut out = String::new();
    for q in 0..96_i64 {
        let t = OCT1 + q * 900;
        for (meter, n) in [("a1", 96), ("a2", 40)] {
            if q < n {
                let _ = writeln!(
                    out,
                    "consumption,energy=water,level=1,meter={meter},site=a,unit=m3,window=15m amount=1,kgce=0.0857,coverage=1,estimated=false {t}"
                );
            }
        }
        let _ = writeln!(
            out,
            "site_consumption,energy=total,site=a,unit=kgce,window=15m amount=0.1,kgce=0.1,controlled_kgce=0.1,meters=2i,coverage=1 {t}"
        );
    }
    let _ = write!(
        out,
        "site_consumption,energy=total,site=a,unit=kgce,window=1d amount=11.6552,kgce=11.6552,controlled_kgce=11.6552,meters=2i,coverage=1 {OCT1}\n\
         site_consumption,energy=total,site=a,unit=kgce,window=1mo amount=12.5,kgce=12.5,controlled_kgce=12.5,meters=2i,coverage=1 {OCT1}\n"
    );
    out
}

#[tokio::test]
async fn every_kind_built_from_the_archive_renders_in_chromium() {
    let files = GatewayToml::new("gw")
        .section("aggregation", r#"windows = ["15m", "1d", "1mo"]"#)
        .endpoint("ep", "")
        .site("a.toml", SITE)
        .write();
    let config = files.load();
    let archive = files.data_dir().join("archive");
    std::fs::create_dir_all(&archive).expect("archive dir");
    std::fs::write(archive.join("2025-10-01.lp"), day_lines()).expect("archive day");
    let store = ArchiveStore::from_config(&config);
    let now: jiff::Timestamp = "2026-01-15T00:00:00Z".parse().expect("now");
    for (kind, range) in [
        (ReportKind::Consumption, Some(Range::Month(2025, 10))),
        (ReportKind::Targets, Some(Range::Year(2025))),
        (ReportKind::Completeness, Some(Range::Month(2025, 10))),
        (ReportKind::Consistency, Some(Range::Month(2025, 10))),
        (ReportKind::Verification, None),
    ] {
        let req = Request {
            kind,
            sites: Sites::All,
            range,
            now,
            granularity: Granularity::Day,
            due_within_days: 30,
        };
        let output = run::build(&config, &store, &req)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", kind.as_str()));
        let doc = &output.document;
        assert_eq!(doc.kind, kind);
        assert!(
            doc.blocks
                .iter()
                .any(|b| matches!(b, emgate::reports::Block::Table(t) if !t.rows.is_empty())),
            "{}: no table with rows in {doc:?}",
            kind.as_str()
        );
        let j = &output.json;
        // Figures by hand from the archive above.
        match kind {
            // One day: the site total 11.6552 kgce.
            ReportKind::Consumption => {
                let rows = j["sites"][0]["rows"].as_array().expect("rows");
                let total = rows.iter().find(|r| r["energy"] == "total").expect("total");
                assert_eq!(
                    (total["period"].as_str(), total["amount"].as_f64()),
                    (Some("2025-10-01"), Some(11.6552)),
                    "{j}"
                );
            }
            // 96 quarters × 0.1 kgce = 0.0096 tce against a cap of 0.001
            // over a whole past year: 0.001 / 0.0096 = 10.4 % → red.
            ReportKind::Targets => {
                let cap = &j["sites"][0]["cap"];
                assert!(
                    (cap["used_tce"].as_f64().expect("used") - 0.0096).abs() < 1e-12,
                    "{j}"
                );
                assert_eq!(j["sites"][0]["level"], "red", "{j}");
            }
            // a1 96 of 96, a2 40 of 96: 136 / 192 = 70.83 % on 2025-10-01: fails.
            ReportKind::Completeness => {
                let day = &j["sites"][0]["days"][0];
                assert_eq!(
                    (
                        day["present"].as_u64(),
                        day["required"].as_u64(),
                        day["passes"].as_bool()
                    ),
                    (Some(136), Some(192), Some(false)),
                    "{j}"
                );
            }
            // Days 11.6552 against the month's 12.5: −6.76 % → differs.
            ReportKind::Consistency => {
                let m = &j["months"][0];
                assert_eq!(m["status"], "differs", "{j}");
                let dev = m["deviation_pct"].as_f64().expect("deviation");
                assert!((dev - (11.6552 - 12.5) / 12.5 * 100.0).abs() < 1e-9, "{j}");
            }
            // a1 due 2025-10-02, long past on 2026-01-15; a2 has no record.
            ReportKind::Verification => {
                let status: Vec<&str> = j["meters"]
                    .as_array()
                    .expect("meters")
                    .iter()
                    .filter_map(|m| m["status"].as_str())
                    .collect();
                assert_eq!(status, ["overdue", "no_record"], "{j}");
            }
        }
        // Every section in Chromium, nothing requested, a screenshot; the
        // site's name (user data) stays text.
        let (dom, _image, _dir) = super::render_and_load(doc);
        assert!(!dom.contains("<Co>"), "{dom}");
    }
}
