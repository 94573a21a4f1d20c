//! The institute's three reports through `emgate report … --format json`
//! (and `csv`) against a real `influxd` filled with known windows, every
//! expected figure worked out by hand here:
//! * `completeness`: a site at 171/192 quarter hours (89.06 %, fails: one
//!   meter down, written with coverage 0) and one at 175/192 (91.15 %,
//!   passes: quarters with no point at all); a level-2 meter never counts;
//!   the exact message without 15-minute windows;
//! * `consistency`: days that disagree with their month by +6 % (differs)
//!   and by −4 % (agrees), a month without its `1mo` value (missing);
//! * `verification`: meters overdue, due soon, on time and unfiled, with
//!   exact percentages, including a site at exactly 95 % on time.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::config::{ConfigFiles, GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;

const DB: &str = "compliance";

/// 2026-10-01 00:00 in Asia/Shanghai (UTC+8) = 2026-09-30T16:00:00Z.
const OCT1: i64 = 1_790_784_000;
/// 2026-09-01 00:00 in Asia/Shanghai = 2026-08-31T16:00:00Z.
const SEP1: i64 = 1_788_192_000;

/// Sites `a` (meters a1, a2 level 1; a3 level 2) and `b` (b1, b2 level 1),
/// both Asia/Shanghai, reading `url`; `windows` is `[aggregation] windows`;
/// `keys` adds keys to a meter by id (its calibration).
fn files(url: &str, windows: &str, keys: &[(&str, String)]) -> ConfigFiles {
    let meter = |id: &str, unit: usize, level: u8| {
        let extra = keys
            .iter()
            .find(|(m, _)| *m == id)
            .map_or(String::new(), |(_, k)| k.clone());
        modbus(id, "water", "water_meter", "ep", unit)
            .level(level)
            .keys(&extra)
    };
    GatewayToml::new("gw")
        .influx_v1(url, DB, "")
        .section("aggregation", &format!("windows = [{windows}]"))
        .endpoint("ep", "")
        .site(
            "a.toml",
            Site::new("a", "Site A")
                .timezone("Asia/Shanghai")
                .meter(meter("a1", 1, 1))
                .meter(meter("a2", 2, 1))
                .meter(meter("a3", 3, 2)),
        )
        .site(
            "b.toml",
            Site::new("b", "Site B")
                .timezone("Asia/Shanghai")
                .meter(meter("b1", 4, 1))
                .meter(meter("b2", 5, 1)),
        )
        .write()
}

/// Runs `emgate report KIND --config MAIN ARGS`: exit code, stdout, stderr.
fn report(main: &Path, kind: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .arg("report")
        .arg(kind)
        .arg("--config")
        .arg(main)
        .args(args)
        .output()
        .expect("run emgate report");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// `report` with `--format json`, which must succeed.
fn json(main: &Path, kind: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, out, err) = report(main, kind, &all);
    assert_eq!(code, Some(0), "emgate report {kind}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Writes line protocol (seconds) into `DB`.
async fn write(influxd: &Influxd, lines: &[String]) {
    let r = reqwest::Client::new()
        .post(format!("{}/write?db={DB}&precision=s", influxd.url()))
        .body(lines.join("\n"))
        .send()
        .await
        .expect("write");
    assert_eq!(
        r.status().as_u16(),
        204,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

fn quarter(site: &str, meter: &str, level: u8, t: i64, coverage: f64) -> String {
    format!(
        "consumption,site={site},meter={meter},energy=water,level={level},window=15m,unit=m3 \
         amount=0.25,coverage={coverage},estimated={} {t}",
        coverage < 1.0
    )
}

fn site_point(site: &str, energy: &str, unit: &str, window: &str, t: i64, amount: f64) -> String {
    format!(
        "site_consumption,site={site},energy={energy},window={window},unit={unit} \
         amount={amount},kgce={amount},meters=2i,coverage=1 {t}"
    )
}

#[tokio::test]
async fn completeness_89_percent_fails_91_passes_and_15m_is_required() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd.url(), "\"15m\", \"1d\", \"1mo\"", &[]);
    let mut lines = Vec::new();
    for q in 0..96 {
        let t = OCT1 + q * 900;
        // a1: every quarter. a2: 75 quarters, then down: the gateway writes
        // the 21 quarters across the outage with coverage 0. 96 + 75 = 171.
        lines.push(quarter("a", "a1", 1, t, 1.0));
        lines.push(quarter("a", "a2", 1, t, if q < 75 { 0.4 } else { 0.0 }));
        // a3 is level 2: complete, and never counted.
        lines.push(quarter("a", "a3", 2, t, 1.0));
        // b1: every quarter; b2: 79 quarters, the other 17 not written at all.
        lines.push(quarter("b", "b1", 1, t, 1.0));
        if q < 79 {
            lines.push(quarter("b", "b2", 1, t, 1.0));
        }
    }
    // The day before and the day after lie outside the range.
    lines.push(quarter("a", "a2", 1, OCT1 - 900, 1.0));
    lines.push(quarter("a", "a2", 1, OCT1 + 86_400, 1.0));
    write(&influxd, &lines).await;

    let range = ["--from", "2026-10-01", "--to", "2026-10-01"];
    let v = json(&f.main_file(), "completeness", &range);
    let (site_a, site_b) = (&v["sites"][0], &v["sites"][1]);
    assert_eq!(site_a["site"], "a");
    assert_eq!(site_a["meters"], serde_json::json!(["a1", "a2"]));
    let day = &site_a["days"][0];
    assert_eq!(day["date"], "2026-10-01");
    assert_eq!(
        (day["present"].as_u64(), day["required"].as_u64()),
        (Some(171), Some(192))
    );
    assert_eq!(day["rate_pct"], 89.0625); // 171 / 192 = 0.890625
    assert_eq!(day["passes"], false);
    assert_eq!(day["meters"][1]["present"], 75);
    assert_eq!(site_a["failing_days"], serde_json::json!(["2026-10-01"]));
    let day = &site_b["days"][0];
    assert_eq!(
        (day["present"].as_u64(), day["required"].as_u64()),
        (Some(175), Some(192))
    );
    assert_eq!(day["rate_pct"], 17_500.0 / 192.0); // 91.1458…
    assert_eq!(day["passes"], true);
    assert_eq!(site_b["failing_days"], serde_json::json!([]));
    assert_eq!(v["summary"]["days"], 2);
    assert_eq!(v["summary"]["failing_days"], 1);
    assert_eq!(v["summary"]["sites_failing"], 1);
    assert_eq!(v["summary"]["present"], 346);
    assert_eq!(v["summary"]["required"], 384);

    // The CSV is the per-day table.
    let (code, csv, err) = report(
        &f.main_file(),
        "completeness",
        &[&range[..], &["--format", "csv"]].concat(),
    );
    assert_eq!(code, Some(0), "{err}");
    let csv: Vec<&str> = csv.lines().collect();
    assert_eq!(
        csv,
        [
            "site,day,level-1 meters,present,required,rate (%),result,meters below 90 % (present/required)",
            "a,2026-10-01,2,171,192,89.06,fail,a2 75/96",
            "b,2026-10-01,2,175,192,91.15,pass,b2 79/96",
        ]
    );

    // Without 15-minute windows the report refuses, saying what to add.
    let g = files(&influxd.url(), "\"1h\", \"1d\"", &[]);
    let (code, out, err) = report(&g.main_file(), "completeness", &["--month", "2026-10"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert_eq!(
        err,
        "error: completeness counts 15-minute values, but this configuration writes no \"15m\" \
         window (windows: 1h, 1d); add \"15m\" to [aggregation] windows"
    );
}

#[tokio::test]
async fn consistency_flags_six_percent_not_four_and_lists_a_missing_month() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd.url(), "\"15m\", \"1d\", \"1mo\"", &[]);
    let mut lines = Vec::new();
    for d in 0..30 {
        let t = SEP1 + d * 86_400;
        // a/total: 28 days of 10 and 2 of 19 = 318 kgce against a month
        // of 300: (318 − 300) / 300 = +6 %.
        lines.push(site_point(
            "a",
            "total",
            "kgce",
            "1d",
            t,
            if d < 28 { 10.0 } else { 19.0 },
        ));
        // b/total: 24 days of 10 and 6 of 12 = 312 against 325: −13/325 = −4 %.
        lines.push(site_point(
            "b",
            "total",
            "kgce",
            "1d",
            t,
            if d < 24 { 10.0 } else { 12.0 },
        ));
        // b/water: days, but no 1mo value: missing.
        lines.push(site_point("b", "water", "m3", "1d", t, 100.0));
    }
    lines.push(site_point("a", "total", "kgce", "1mo", SEP1, 300.0));
    lines.push(site_point("b", "total", "kgce", "1mo", SEP1, 325.0));
    // October's month value of a (outside the range) is not read.
    lines.push(site_point("a", "total", "kgce", "1mo", OCT1, 1.0));
    write(&influxd, &lines).await;

    let v = json(&f.main_file(), "consistency", &["--month", "2026-09"]);
    let m = v["months"].as_array().expect("months");
    let key = |r: &Value| {
        format!(
            "{}/{}/{}/{}",
            r["site"].as_str().unwrap_or(""),
            r["month"].as_str().unwrap_or(""),
            r["energy"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or("")
        )
    };
    assert_eq!(
        m.iter().map(key).collect::<Vec<_>>(),
        [
            "a/2026-09/total/differs",
            "b/2026-09/total/agrees",
            "b/2026-09/water/missing"
        ]
    );
    assert_eq!(m[0]["days"], 30);
    assert_eq!(m[0]["days_in_month"], 30);
    assert_eq!(m[0]["days_sum"], 318.0);
    assert_eq!(m[0]["month_value"], 300.0);
    assert_eq!(m[0]["deviation_pct"], 6.0);
    assert_eq!(m[0]["kgce_deviation_pct"], 6.0);
    assert_eq!(m[1]["days_sum"], 312.0);
    assert_eq!(m[1]["deviation_pct"], -4.0);
    assert_eq!(m[2]["days_sum"], 3000.0);
    assert_eq!(m[2]["month_value"], Value::Null);
    assert_eq!(m[2]["deviation_pct"], Value::Null);
    assert_eq!(v["summary"]["agrees"], 1);
    assert_eq!(v["summary"]["differs"], 1);
    assert_eq!(v["summary"]["missing"], 1);
}

#[tokio::test]
async fn verification_register_with_exact_percentages() {
    // The register is configuration only: no database is read (nothing
    // listens at this URL).
    let url = format!("http://127.0.0.1:{}", crate::support::free_port());
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    let cal = |today: jiff::civil::Date, due_in: i64, extra: &str| {
        let due = today
            .checked_add(jiff::Span::new().days(due_in))
            .expect("date");
        let verified = today
            .checked_add(jiff::Span::new().days(-300))
            .expect("date");
        format!("calibration = {{ verified = \"{verified}\", due = \"{due}\"{extra} }}")
    };
    // Today in the sites' zone, taken before and after the run so a run
    // across local midnight is repeated rather than misjudged.
    for _ in 0..2 {
        let today = zone.to_datetime(jiff::Timestamp::now()).date();
        let f = files(
            &url,
            "\"15m\"",
            &[
                // a1: due today: overdue. a2: due in 30 days: due soon
                // (default 30). a3 (level 2): due in 31 days: ok.
                (
                    "a1",
                    cal(today, 0, ", serial = \"S-1\", accuracy_class = \"0.5S\""),
                ),
                ("a2", cal(today, 30, "")),
                ("a3", cal(today, 31, "")),
                // b1: ok; b2: no record.
                ("b1", cal(today, 365, "")),
            ],
        );
        let v = json(&f.main_file(), "verification", &[]);
        if zone.to_datetime(jiff::Timestamp::now()).date() != today {
            continue;
        }
        let status: Vec<&str> = v["meters"]
            .as_array()
            .expect("meters")
            .iter()
            .map(|m| m["status"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(status, ["overdue", "due_soon", "ok", "ok", "no_record"]);
        assert_eq!(v["meters"][0]["serial"], "S-1");
        assert_eq!(v["meters"][0]["accuracy_class"], "0.5S");
        assert_eq!(v["meters"][0]["days_to_due"], 0);
        assert_eq!(v["meters"][1]["days_to_due"], 30);
        assert_eq!(v["meters"][2]["level"], 2);
        assert_eq!(v["meters"][4]["due"], Value::Null);
        // a: 3 of 3 on record (100 %), 2 of 3 on time (66.67 %): not met.
        let site_a = &v["sites"][0];
        assert_eq!(
            (site_a["on_record_pct"].as_f64(), site_a["on_time"].as_u64()),
            (Some(100.0), Some(2))
        );
        assert_eq!(site_a["on_time_pct"], 200.0 / 3.0);
        assert_eq!(site_a["meets_targets"], false);
        // b: 1 of 2 on record (50 %), 1 of 1 on time (100 %): not met.
        let site_b = &v["sites"][1];
        assert_eq!(
            (
                site_b["on_record_pct"].as_f64(),
                site_b["on_time_pct"].as_f64()
            ),
            (Some(50.0), Some(100.0))
        );
        assert_eq!(site_b["meets_targets"], false);
        // Overall: 4 of 5 on record (80 %), 3 of 4 on time (75 %).
        let o = &v["overall"];
        assert_eq!(
            (o["on_record_pct"].as_f64(), o["on_time_pct"].as_f64()),
            (Some(80.0), Some(75.0))
        );
        assert_eq!(
            (
                o["due_soon"].as_u64(),
                o["overdue"].as_u64(),
                o["no_record"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );

        // --due-within 29 makes a2 (30 days) ok.
        let v = json(&f.main_file(), "verification", &["--due-within", "29"]);
        assert_eq!(v["meters"][1]["status"], "ok");
        return;
    }
    panic!("local midnight passed during both runs");
}

#[tokio::test]
async fn verification_exactly_95_percent_on_time_meets_the_target() {
    let url = format!("http://127.0.0.1:{}", crate::support::free_port());
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    for _ in 0..2 {
        let today = zone.to_datetime(jiff::Timestamp::now()).date();
        let due = |days: i64| {
            today
                .checked_add(jiff::Span::new().days(days))
                .expect("date")
        };
        // One site of 20 meters, all on record, one overdue: 19/20 = 95 %.
        let mut site = Site::new("c", "Site C").timezone("Asia/Shanghai");
        for i in 1..=20 {
            let d = if i == 7 { due(-1) } else { due(100) };
            site = site.meter(
                modbus(&format!("c{i}"), "water", "water_meter", "ep", i)
                    .keys(&format!("calibration = {{ due = \"{d}\" }}")),
            );
        }
        let f = GatewayToml::new("gw")
            .influx_v1(&url, DB, "")
            .endpoint("ep", "")
            .site("c.toml", site)
            .write();
        let v = json(&f.main_file(), "verification", &["--site", "c"]);
        if zone.to_datetime(jiff::Timestamp::now()).date() != today {
            continue;
        }
        let c = &v["sites"][0];
        assert_eq!(
            (
                c["meters"].as_u64(),
                c["on_record"].as_u64(),
                c["on_time"].as_u64()
            ),
            (Some(20), Some(20), Some(19))
        );
        assert_eq!(
            (c["on_record_pct"].as_f64(), c["on_time_pct"].as_f64()),
            (Some(100.0), Some(95.0))
        );
        assert_eq!(c["meets_targets"], true);
        assert_eq!(v["meters"][6]["status"], "overdue");
        assert_eq!(v["meters"][6]["days_to_due"], -1);
        return;
    }
    panic!("local midnight passed during both runs");
}
