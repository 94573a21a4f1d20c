//! `emgate report consumption|targets` and `GET /api/reports/{kind}`
//! against a real `influxd` filled with known `site_consumption` windows and
//! `entry` points (line protocol written directly), every expected figure
//! worked out by hand here: caps exceeded by 5, 15 and 25 % in a past year,
//! an intensity target met (with a corrected denominator) and one missed
//! (month entries), worst-first order and counts per level; consumption per
//! day and per month; CSV and table; bad requests with their messages; the
//! API answering the CLI's JSON behind the token. End to end: the simulator
//! through the real `emgate run` into `influxd`, and the targets report's
//! year-to-date tce equal to the simulated consumption.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use emgate::model::MeterId;
use emgate::sim::SimOptions;
use serde_json::{Value, json};

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;

const DB: &str = "reports";

/// 2025-01-01T00:00:00+08:00.
const Y2025: i64 = 1_735_660_800;
const DAY: i64 = 86_400;

/// Local midnight (Asia/Shanghai) of day `n` (0-based) of 2025.
fn day(n: i64) -> i64 {
    Y2025 + n * DAY
}

/// Writes line protocol (seconds) into `DB`.
async fn write(influxd: &Influxd, lines: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}/write", influxd.url()))
        .query(&[("db", DB), ("precision", "s")])
        .body(lines.to_owned())
        .send()
        .await
        .expect("write");
    assert_eq!(resp.status().as_u16(), 204, "{:?}", resp.text().await);
}

/// A `site_consumption` line.
#[allow(clippy::too_many_arguments)]
fn sc(
    site: &str,
    energy: &str,
    unit: &str,
    window: &str,
    t: i64,
    amount: f64,
    kgce: f64,
    controlled: f64,
    coverage: f64,
) -> String {
    format!(
        "site_consumption,energy={energy},site={site},unit={unit},window={window} amount={amount},kgce={kgce},controlled_kgce={controlled},coverage={coverage},meters=1i {t}\n"
    )
}

/// An `entry` line.
fn entry(
    site: &str,
    item: &str,
    period: &str,
    value: f64,
    id: &str,
    supersedes: &str,
    t: i64,
) -> String {
    format!(
        "entry,item={item},period={period},site={site} value={value},unit=\"t\",period_start=\"\",period_end=\"\",entered_by=\"Li Wei\",reason=\"\",id=\"{id}\",supersedes=\"{supersedes}\" {t}\n"
    )
}

/// Sites: three with caps for 2025 (exceeded by 5, 15, 25 %), two with
/// intensity targets (met, missed), `ent` without a target.
fn files(influxd: &Influxd, api: Option<u16>) -> crate::support::config::ConfigFiles {
    let cap = |id: &str| {
        format!(
            "{}\n[[targets]]\nyear = 2025\ncap_tce = 1000\n",
            Site::new(id, &format!("Cap {id}")).timezone("Asia/Shanghai")
        )
    };
    let intensity = |id: &str| {
        format!(
            "{}\n[[targets]]\nyear = 2025\nintensity_unit = \"kgce_per_t\"\nintensity_item = \"output_t\"\nbase_year = 2024\nbase_intensity = 500\nannual_decrease_pct = 4\n",
            Site::new(id, &format!("Intensity {id}")).timezone("Asia/Shanghai")
        )
    };
    let mut toml = GatewayToml::new("rep")
        .influx_v1(&influxd.url(), DB, "")
        .section("aggregation", "windows = [\"1d\", \"1mo\"]")
        .site("a_s05.toml", cap("s05"))
        .site("b_s15.toml", cap("s15"))
        .site("c_s25.toml", cap("s25"))
        .site("d_met.toml", intensity("met"))
        .site("e_missed.toml", intensity("missed"))
        .site(
            "f_ent.toml",
            Site::new("ent", "Enterprise").timezone("Asia/Shanghai"),
        );
    if let Some(port) = api {
        toml = toml.section(
            "api",
            &format!("listen = \"127.0.0.1:{port}\"\ntoken = \"tok\""),
        );
    }
    toml.write()
}

/// The known data of 2025 (and around it).
async fn fill(influxd: &Influxd) {
    let mut lp = String::new();
    let total = |site: &str, t: i64, kgce: f64, controlled: f64| {
        sc(site, "total", "kgce", "1d", t, kgce, kgce, controlled, 1.0)
    };
    // s05: 600 000 + 450 000 = 1 050 000 kgce controlled (kgce itself is
    // higher: feedstock), from the very first local midnight of 2025.
    lp += &total("s05", day(0), 650_000.0, 600_000.0);
    lp += &total("s05", day(181), 450_000.0, 450_000.0);
    // Outside 2025 by one day either side, and a month window: not summed.
    lp += &total("s05", day(-1), 999_999.0, 999_999.0);
    lp += &total("s05", day(365), 999_999.0, 999_999.0);
    lp += &sc("s05", "total", "kgce", "1mo", day(0), 5e6, 5e6, 5e6, 1.0);
    // s15: 1 150 000; s25: 1 250 000.
    lp += &total("s15", day(10), 1_150_000.0, 1_150_000.0);
    lp += &total("s25", day(20), 1_000_000.0, 1_000_000.0);
    lp += &total("s25", day(364), 250_000.0, 250_000.0);
    // met: 470 000 kgce over a year entry of 1 000 t (corrected from 800).
    lp += &total("met", day(129), 470_000.0, 470_000.0);
    lp += &entry(
        "met",
        "output_t",
        "2025",
        800.0,
        "01JAAAAAAAAAAAAAAAAAAAAAAA",
        "",
        day(370),
    );
    lp += &entry(
        "met",
        "output_t",
        "2025",
        1000.0,
        "01JBBBBBBBBBBBBBBBBBBBBBBB",
        "01JAAAAAAAAAAAAAAAAAAAAAAA",
        day(371),
    );
    // missed: January 300 000 and February 195 000 kgce over 500 + 500 t;
    // March (1 000 000 kgce) has no entry, so it is not in the intensity.
    lp += &total("missed", day(9), 300_000.0, 300_000.0);
    lp += &total("missed", day(40), 195_000.0, 195_000.0);
    lp += &total("missed", day(68), 1_000_000.0, 1_000_000.0);
    lp += &entry(
        "missed",
        "output_t",
        "2025-01",
        500.0,
        "01JCCCCCCCCCCCCCCCCCCCCCCC",
        "",
        day(40),
    );
    lp += &entry(
        "missed",
        "output_t",
        "2025-02",
        500.0,
        "01JDDDDDDDDDDDDDDDDDDDDDDD",
        "",
        day(70),
    );
    // ent: 2025-03-01 (day 59) and 03-02 per energy, 03-03 outside the
    // range asked; March's month window.
    let (d1, d2, d3) = (day(59), day(60), day(61));
    lp += &sc(
        "ent",
        "electricity",
        "kwh",
        "1d",
        d1,
        1000.0,
        122.9,
        122.9,
        1.0,
    );
    lp += &sc("ent", "water", "m3", "1d", d1, 10.0, 0.857, 0.857, 0.5);
    lp += &sc(
        "ent", "total", "kgce", "1d", d1, 123.757, 123.757, 123.757, 0.75,
    );
    lp += &sc(
        "ent",
        "electricity",
        "kwh",
        "1d",
        d2,
        2000.0,
        245.8,
        245.8,
        1.0,
    );
    lp += &sc("ent", "total", "kgce", "1d", d2, 245.8, 245.8, 245.8, 1.0);
    lp += &sc(
        "ent",
        "electricity",
        "kwh",
        "1d",
        d3,
        7.0,
        0.8603,
        0.8603,
        1.0,
    );
    lp += &sc(
        "ent",
        "electricity",
        "kwh",
        "1mo",
        d1,
        3000.0,
        368.7,
        368.7,
        0.9,
    );
    lp += &sc("ent", "total", "kgce", "1mo", d1, 368.7, 368.7, 300.0, 0.9);
    write(influxd, &lp).await;
}

/// Runs `emgate report ARGS --config MAIN`: exit code, stdout, stderr.
fn report(main: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .arg("report")
        .args(args)
        .arg("--config")
        .arg(main)
        .output()
        .expect("run emgate report");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn json_of(main: &Path, args: &[&str]) -> Value {
    let (code, out, err) = report(main, args);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn close(got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or(f64::NAN);
    assert!(
        (g - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{g} vs {want}"
    );
}

#[tokio::test]
async fn targets_of_a_past_year_worst_first_with_levels_and_counts() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd, None);
    fill(&influxd).await;
    let r = json_of(
        &f.main_file(),
        &["targets", "--year", "2025", "--format", "json"],
    );
    assert_eq!(r["year"], json!(2025));
    assert_eq!(r["window"], json!("1d"), "the smallest configured window");
    assert_eq!(
        r["counts"],
        json!({"red": 1, "orange": 2, "yellow": 1, "no_data": 0, "green": 1, "no_target": 1})
    );
    let order: Vec<&str> = r["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .map(|s| s["site"].as_str().expect("site"))
        .collect();
    // missed 25 % (red); s25 80 % and s15 86.96 % (orange, lower first);
    // s05 95.24 % (yellow); met 150 % (green); ent without a target.
    assert_eq!(order, ["missed", "s25", "s15", "s05", "met", "ent"]);
    let site = |id: &str| {
        r["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .find(|s| s["site"] == json!(id))
            .cloned()
            .expect("site")
    };
    // A past year: elapsed 1, projection = used. Completion = cap / used.
    for (id, used, level) in [
        ("s05", 1050.0, "yellow"),
        ("s15", 1150.0, "orange"),
        ("s25", 1250.0, "orange"),
    ] {
        let s = site(id);
        let cap = &s["cap"];
        close(&cap["used_tce"], used);
        close(&cap["cap_tce"], 1000.0);
        close(&cap["progress_pct"], used / 10.0);
        close(&cap["elapsed"], 1.0);
        close(&cap["projected_tce"], used);
        close(&cap["completion_pct"], 1000.0 / used * 100.0);
        assert_eq!(cap["level"], json!(level), "{id}");
        assert_eq!(s["level"], json!(level), "{id}");
        assert_eq!(s["intensity"], Value::Null);
    }
    assert_eq!(site("s05")["cap"]["windows"], json!(2));
    // met: 470 000 kgce / 1 000 t = 470 against 500 × 0.96 = 480 required:
    // decrease 6 % of 4 % = 150 %.
    let met = site("met")["intensity"].clone();
    close(&met["denominator"], 1000.0);
    assert_eq!(met["denominator_source"], json!("year entry 2025"));
    close(&met["intensity"], 470.0);
    close(&met["required_intensity"], 480.0);
    close(&met["required_decrease_pct"], 4.0);
    close(&met["decrease_pct"], 6.0);
    close(&met["completion_pct"], 150.0);
    assert_eq!(met["met"], json!(true));
    assert_eq!(met["level"], json!("green"));
    // missed: (300 000 + 195 000) / (500 + 500) = 495: decrease 1 % of 4 %.
    let missed = site("missed")["intensity"].clone();
    close(&missed["denominator"], 1000.0);
    assert_eq!(
        missed["denominator_source"],
        json!("month entries 2025-01..2025-02 (2 of 12)")
    );
    close(&missed["consumption_kgce"], 495_000.0);
    close(&missed["intensity"], 495.0);
    close(&missed["completion_pct"], 25.0);
    assert_eq!(missed["met"], json!(false));
    assert_eq!(missed["level"], json!("red"));
    assert_eq!(site("ent")["level"], json!("no_target"));

    // The table and the CSV say the same.
    let (code, table, err) = report(&f.main_file(), &["targets", "--year", "2025"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(table.starts_with("Energy-saving targets 2025\n"), "{table}");
    assert!(table.contains("Red        1 site\n"), "{table}");
    assert!(table.contains("Orange     2 sites\n"), "{table}");
    let (code, csv, err) = report(
        &f.main_file(),
        &["targets", "--year", "2025", "--format", "csv"],
    );
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "site,name,level,used tce,cap tce,progress %,projected tce,cap completion %,intensity,required intensity,intensity completion %,five-year progress %"
    );
    assert_eq!(
        lines[1],
        "missed,Intensity missed,red,,,,,,495.000,480.000,25.0,"
    );
    assert_eq!(
        lines[2],
        "s25,Cap s25,orange,1250.000,1000.000,125.0,1250.000,80.0,,,,"
    );
    assert_eq!(lines.len(), 7);
}

#[tokio::test]
async fn consumption_per_day_and_month_exactly() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd, None);
    fill(&influxd).await;
    let r = json_of(
        &f.main_file(),
        &[
            "consumption",
            "--site",
            "ent",
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-02",
            "--format",
            "json",
        ],
    );
    assert_eq!(r["granularity"], json!("day"));
    assert_eq!(r["window"], json!("1d"));
    let rows = r["sites"][0]["rows"].as_array().expect("rows").clone();
    let got: Vec<(String, String, f64, f64, Option<f64>, f64)> = rows
        .iter()
        .map(|x| {
            (
                x["period"].as_str().expect("period").to_owned(),
                x["energy"].as_str().expect("energy").to_owned(),
                x["amount"].as_f64().expect("amount"),
                x["tce"].as_f64().expect("tce"),
                x["controlled_tce"].as_f64(),
                x["coverage"].as_f64().expect("coverage"),
            )
        })
        .collect();
    let want = [
        ("2025-03-01", "electricity", 1000.0, 0.1229, None, 1.0),
        ("2025-03-01", "water", 10.0, 0.000_857, None, 0.5),
        (
            "2025-03-01",
            "total",
            123.757,
            0.123_757,
            Some(0.123_757),
            0.75,
        ),
        ("2025-03-02", "electricity", 2000.0, 0.2458, None, 1.0),
        ("2025-03-02", "total", 245.8, 0.2458, Some(0.2458), 1.0),
    ];
    assert_eq!(got.len(), want.len(), "{rows:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0.as_str(), g.1.as_str()), (w.0, w.1));
        for (a, b) in [(g.2, w.2), (g.3, w.3), (g.5, w.5)] {
            assert!((a - b).abs() < 1e-12, "{g:?} vs {w:?}");
        }
        assert_eq!(g.4.is_some(), w.4.is_some(), "{g:?}");
        if let (Some(a), Some(b)) = (g.4, w.4) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
    }
    // 0.123 757 + 0.2458 tce.
    close(&r["sites"][0]["total_tce"], 0.369_557);

    let m = json_of(
        &f.main_file(),
        &[
            "consumption",
            "--site",
            "ent",
            "--month",
            "2025-03",
            "--granularity",
            "month",
            "--format",
            "json",
        ],
    );
    assert_eq!(m["window"], json!("1mo"));
    let rows = m["sites"][0]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["period"], json!("2025-03"));
    close(&rows[0]["amount"], 3000.0);
    close(&rows[0]["tce"], 0.3687);
    close(&rows[0]["coverage"], 0.9);
    close(&rows[1]["controlled_tce"], 0.3);

    let (code, csv, err) = report(
        &f.main_file(),
        &[
            "consumption",
            "--site",
            "ent",
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-02",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        csv,
        "site,day,energy,amount,unit,tce,controlled tce,coverage %\n\
         ent,2025-03-01,electricity,1000.000,kwh,0.1229,,100.0\n\
         ent,2025-03-01,water,10.000,m3,0.0009,,50.0\n\
         ent,2025-03-01,total,123.757,kgce,0.1238,0.1238,75.0\n\
         ent,2025-03-02,electricity,2000.000,kwh,0.2458,,100.0\n\
         ent,2025-03-02,total,245.800,kgce,0.2458,0.2458,100.0\n"
    );
    let out = f.path().join("march.txt");
    let out_s = out.display().to_string();
    let (code, _, err) = report(
        &f.main_file(),
        &[
            "consumption",
            "--site",
            "ent",
            "--month",
            "2025-03",
            "--out",
            &out_s,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let table = std::fs::read_to_string(&out).expect("--out file");
    assert!(
        table.starts_with("Energy consumption 2025-03\nsite ent, per day"),
        "{table}"
    );
    assert!(
        table.contains("ent   2025-03-03  electricity     7.000  kwh"),
        "{table}"
    );
}

#[tokio::test]
async fn bad_requests_exit_2_and_database_failures_exit_1() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd, None);
    let main = f.main_file();
    for (args, message) in [
        (
            vec!["nonsense"],
            "error: unknown report \"nonsense\"; kinds: consumption, targets, completeness, consistency, verification",
        ),
        (
            vec!["targets", "--site", "s05,nope"],
            "error: unknown site \"nope\"; known: s05, s15, s25, met, missed, ent",
        ),
        (
            vec!["consumption", "--month", "2025-13"],
            "error: month \"2025-13\" is malformed; use YYYY-MM",
        ),
        (
            vec!["consumption", "--from", "2025-03-02", "--to", "2025-03-01"],
            "error: from 2025-03-02 is after to 2025-03-01",
        ),
        (
            vec!["consumption", "--granularity", "week"],
            "error: unknown granularity \"week\"; use day, month or year",
        ),
        (
            vec!["targets", "--month", "2025-03"],
            "error: the targets report is per year: give year YYYY, or nothing for the current year",
        ),
        (
            vec!["targets", "--format", "pdf"],
            "error: unknown format \"pdf\"; use table, csv, json or html",
        ),
    ] {
        let (code, out, err) = report(&main, &args);
        assert_eq!((code, err.as_str()), (Some(2), message), "{args:?}");
        assert_eq!(out, "");
    }
    let (code, _, err) = report(&main, &["targets", "--db", "nodb"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error: {}/query: query failed: database not found: nodb",
            influxd.url()
        )
    );
    let port = crate::support::free_port();
    let (code, _, err) = report(
        &main,
        &["targets", "--url", &format!("http://127.0.0.1:{port}")],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("error: http://127.0.0.1:{port}/query: ")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_clis_json_behind_the_token() {
    let influxd = Influxd::with_database(DB).await;
    let port = crate::support::free_port();
    let f = files(&influxd, Some(port));
    fill(&influxd).await;
    let mut gw = f.spawn("api");
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_for(
        "the API to answer /health",
        Duration::from_secs(15),
        async || reqwest::get(format!("{base}/health")).await.is_ok(),
    )
    .await;
    let get = async |path: &str, token: Option<&str>| {
        let mut req = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    };
    let (status, body) = get("/api/reports/targets?year=2025", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get("/api/reports/targets?year=2025", Some("tok")).await;
    assert_eq!(status, 200, "{body}");
    let mut api: Value = serde_json::from_str(&body).expect("json");
    let mut cli = json_of(
        &f.main_file(),
        &["targets", "--year", "2025", "--format", "json"],
    );
    // "now" is when each was made.
    api["now"] = Value::Null;
    cli["now"] = Value::Null;
    assert_eq!(api, cli);
    let (status, body) = get(
        "/api/reports/consumption?site=ent&from=2025-03-01&to=2025-03-02&format=csv",
        Some("tok"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("site,day,energy,amount,unit,tce,controlled tce,coverage %\n"),
        "{body}"
    );
    let (status, body) = get("/api/reports/targets?month=2025-1", Some("tok")).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).expect("json")),
        (
            400,
            json!({"error": "month \"2025-1\" is malformed; use YYYY-MM"})
        )
    );
    let (status, body) = get("/api/reports/bogus", Some("tok")).await;
    assert_eq!(status, 400, "{body}");
    gw.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_year_to_date_equals_the_simulated_consumption() {
    let influxd = Influxd::with_database(DB).await;
    let year = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .year();
    let site = format!(
        "{}\n[[targets]]\nyear = {year}\ncap_tce = 1\n",
        Site::new("W1", "water works")
            .timezone("Asia/Shanghai")
            .meter(modbus("w1", "water", "water_meter", "a", 1))
            .meter(modbus("w2", "water", "water_meter", "a", 2))
    );
    let toml = GatewayToml::new("e2e")
        .influx_v1(
            &influxd.url(),
            DB,
            "batch_size = 50\nflush_interval_ms = 100",
        )
        .section(
            "aggregation",
            "windows = [\"1m\", \"1h\"]\nallowed_lateness_secs = 0",
        )
        .endpoint("a", "timeout_ms = 500")
        .site("w1.toml", site);
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    let (config, sim) = (&gw.config, &gw.sim);
    let mut process = gw.spawn("run");
    // Two whole minutes closed after the first (partial) one.
    let start = jiff::Timestamp::now().as_second();
    let until = (start / 60 + 3) * 60 + 2;
    tokio::time::sleep(Duration::from_secs(
        u64::try_from(until - start).unwrap_or(0),
    ))
    .await;
    process.terminate().await;
    sim.stop();

    // What is in the database: the site's minute windows and the first
    // reading of each meter (where its first window's amount starts).
    let windows: Vec<i64> = influxd
        .rows(
            DB,
            "SELECT controlled_kgce FROM site_consumption WHERE energy = 'total' AND \"window\" = '1m'",
        )
        .await
        .iter()
        .map(|r| r[0].as_i64().expect("time"))
        .collect();
    assert!(windows.len() >= 2, "{windows:?}");
    let end = windows.iter().max().expect("a window") + 60;
    let counter = config.meters[0].consumption.expect("water counter");
    let mut truth_kgce = 0.0;
    for (m, id) in [(0, "w1"), (1, "w2")] {
        let first = influxd
            .rows(
                DB,
                &format!("SELECT first(q) FROM reading WHERE meter = '{id}'"),
            )
            .await[0][0]
            .as_i64()
            .expect("first slot");
        #[allow(clippy::cast_precision_loss)]
        let used = sim.value_at(MeterId(m), counter, end as f64)
            - sim.value_at(MeterId(m), counter, first.max(windows[0]) as f64);
        assert!(used > 0.0);
        // Fresh water, m³ counted as t: 0.0857 kgce/t (GB/T 2589).
        truth_kgce += used * 0.0857;
    }
    let r = json_of(&gw.files.main_file(), &["targets", "--format", "json"]);
    assert_eq!(r["window"], json!("1m"));
    let cap = &r["sites"][0]["cap"];
    let used = cap["used_tce"].as_f64().expect("used");
    assert!(
        (used - truth_kgce / 1000.0).abs() <= 1e-9 * truth_kgce,
        "year to date {used} tce vs simulated {} tce",
        truth_kgce / 1000.0
    );
    assert_eq!(cap["windows"].as_u64(), Some(windows.len() as u64));
}
