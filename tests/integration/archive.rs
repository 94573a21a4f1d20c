//! The local archive (`<data_dir>/archive`, `gateway.archive_days`):
//!
//! * the real `emgate run` polls simulated meters with 1-minute windows
//!   into `influxd`; its archive holds the window lines (and no `reading`
//!   or `gauge_stats`); `emgate enter` archives its entry too; `emgate
//!   export --format lp` written into a FRESH `influxd` gives exactly the
//!   same `consumption`, `site_consumption` and `entry` points (every
//!   series, every value) as the first database;
//! * rotation: hand-made day files older than `archive_days` are removed
//!   when the gateway starts, closed days are compressed, the rest is kept;
//! * `emgate export --format csv` of a hand-made archive, byte for byte: a
//!   re-emitted window exported once (later write wins, fields merged), a
//!   torn last line skipped and counted, other sites left out;
//! * the CLI's and the configuration's messages.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use emgate::sim::SimOptions;
use jiff::ToSpan as _;
use jiff::civil::Date;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::{InProcess, TestGateway};
use crate::support::{timed, wait_for};

/// The database `emgate run` writes to.
const DB: &str = "first";
/// The fresh database the export refills.
const FRESH: &str = "refill";

fn emgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emgate"))
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Today in Asia/Shanghai (the gateway's default time zone).
fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .date()
}

async fn sleep_until(t: i64) {
    let ms = (t * 1000 - jiff::Timestamp::now().as_millisecond()).max(0);
    tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
}

/// Every line of every file of the archive `dir` (gzip members decoded).
fn archive_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("archive dir")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for p in names {
        let bytes = std::fs::read(&p).expect("read");
        if p.to_string_lossy().ends_with(".gz") {
            let mut d = flate2::read::MultiGzDecoder::new(&bytes[..]);
            std::io::Read::read_to_string(&mut d, &mut out).expect("gunzip");
        } else {
            out.push_str(&String::from_utf8(bytes).expect("utf-8"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refills_a_fresh_influxd_with_the_same_window_points() {
    let _timed = timed().await;
    let influx = Influxd::with_database(DB).await;
    let toml = GatewayToml::new("archive")
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 50\nflush_interval_ms = 100",
        )
        .section(
            "aggregation",
            "windows = [\"1m\"]\nallowed_lateness_secs = 0",
        )
        .endpoint("a", "timeout_ms = 500")
        .site(
            "site.toml",
            Site::new("R1", "archive test")
                .meter(modbus("w1", "water", "water_meter", "a", 1).every_secs(5))
                .meter(modbus("w2", "water", "water_meter", "a", 2).every_secs(5)),
        );
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    // Two whole minutes close while it runs.
    let minute = (now_s() + 5 + 59) / 60 * 60;
    let mut process = gw.spawn("run");
    sleep_until(minute + 2 * 60 + 5).await;
    process.terminate().await;
    gw.sim.stop();
    let log = process.log();
    assert!(log.contains("archive opened"), "{log}");

    // A manual entry, written to influxd and archived by `emgate enter`.
    let month = today().strftime("%Y-%m").to_string();
    let out = emgate()
        .args(["enter", "--config"])
        .arg(gw.files.main_file())
        .args(["--site", "R1", "--item", "output_t", "--period", &month])
        .args(["--value", "12.5", "--unit", "t", "--by", "tester"])
        .output()
        .expect("emgate enter");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let archive = gw.files.data_dir().join("archive");
    let text = archive_text(&archive);
    let count = |m: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{m},")))
            .count()
    };
    assert!(
        count("consumption") >= 4,
        "two meters × two minutes:\n{text}"
    );
    assert!(count("site_consumption") >= 2, "{text}");
    assert_eq!(count("entry"), 1, "{text}");
    assert_eq!(count("reading"), 0, "raw readings are not archived");
    assert_eq!(count("gauge_stats"), 0, "gauge statistics are not archived");

    // Export every day around today and write it into a fresh influxd.
    let lp = gw.files.path().join("export.lp");
    let (from, to) = (today() - 1.day(), today() + 1.day());
    let out = emgate()
        .args(["export", "--config"])
        .arg(gw.files.main_file())
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .args(["--format", "lp", "--out"])
        .arg(&lp)
        .output()
        .expect("emgate export");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 torn and 0 malformed lines skipped"),
        "{stderr}"
    );
    let body = std::fs::read(&lp).expect("export file");
    let fresh = Influxd::with_database(FRESH).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/write?db={FRESH}&precision=s", fresh.url()))
        .body(body)
        .send()
        .await
        .expect("write the export");
    assert_eq!(resp.status().as_u16(), 204, "{:?}", resp.text().await);

    for m in ["consumption", "site_consumption", "entry"] {
        let q = format!("SELECT * FROM {m} GROUP BY *");
        let a = influx.query(DB, &q).await;
        let b = fresh.query(FRESH, &q).await;
        let series = a["results"][0]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !series.is_empty(),
            "{m}: the first database has points: {a}"
        );
        assert_eq!(
            a["results"][0]["series"], b["results"][0]["series"],
            "{m}: the refilled database holds the same series, points and values"
        );
    }
    let per_meter = influx
        .query(DB, "SELECT count(amount) FROM consumption GROUP BY meter")
        .await;
    for s in per_meter["results"][0]["series"]
        .as_array()
        .expect("series")
    {
        assert!(s["values"][0][1].as_u64().expect("count") >= 2, "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_older_than_archive_days_are_removed_at_start() {
    let toml = GatewayToml::new("rotate")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .endpoint("a", "")
        .site(
            "s.toml",
            Site::new("S1", "rotation").meter(modbus("w1", "water", "water_meter", "a", 1)),
        );
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    let dir = gw.files.data_dir().join("archive");
    std::fs::create_dir_all(&dir).expect("archive dir");
    let t = today();
    let day = |n: i64| (t - n.days()).to_string();
    let line = |n: i64| format!("entry,item=output_t,period=x,site=S1 value={n}.0 {n}\n");
    // archive_days = 190 (the default): day today−190 is the oldest kept.
    let files = [
        (format!("{}.lp.gz", day(400)), "x".to_owned()),
        (format!("{}.lp", day(191)), line(191)),
        (format!("{}.lp", day(190)), line(190)),
        (format!("{}.lp", day(3)), line(3)),
        (format!("{}.lp", day(0)), line(0)),
        ("2020-01-01.lp.gz.tmp".to_owned(), "x".to_owned()),
        ("notes.txt".to_owned(), "mine".to_owned()),
    ];
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).expect("hand-made file");
    }
    let run = InProcess::start(std::sync::Arc::clone(&gw.config));
    let gone = dir.join(format!("{}.lp", day(191)));
    wait_for(
        "rotation and compression",
        Duration::from_secs(30),
        async || !gone.exists() && dir.join(format!("{}.lp.gz", day(3))).exists(),
    )
    .await;
    run.stop().await;
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![
        format!("{}.lp.gz", day(190)),
        format!("{}.lp.gz", day(3)),
        format!("{}.lp", day(0)),
        "notes.txt".to_owned(),
    ];
    want.sort();
    assert_eq!(names, want);
    // Compressed days read back whole.
    let gz = std::fs::read(dir.join(format!("{}.lp.gz", day(3)))).expect("gz");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut text)
        .expect("gunzip");
    assert_eq!(text, line(3));
}

/// The CSV header, written out by hand.
const HEADER: &str = "measurement,time,site,meter,boiler,energy,level,window,unit,item,period,\
amount,kgce,controlled_kgce,exported_kgce,feedstock_kgce,renewable_kgce,meters,coverage,estimated,\
value,period_start,period_end,entered_by,reason,id,supersedes,\
state,grade,eta_direct,eta_indirect,q2,q3,q4,q5,q6,alpha,load_pct,heat_out_gj,fuel_in_gj,exhaust_c_mean,o2_mean,\
methods_disagree,out_of_limit,reasons,extra";

/// A CSV row: the given cells in their columns, the rest empty.
fn csv_row(cells: &[(&str, &str)]) -> String {
    let cols: Vec<&str> = HEADER.split(',').collect();
    let mut row = vec![String::new(); cols.len()];
    for (k, v) in cells {
        let i = cols.iter().position(|c| c == k).expect("column");
        (*v).clone_into(&mut row[i]);
    }
    row.join(",") + "\n"
}

#[test]
fn csv_export_of_a_hand_made_archive_is_exact() {
    let files = GatewayToml::new("csv")
        .readings_only()
        .section("file_sink", "")
        .site("a.toml", Site::new("S1", "one"))
        .site("b.toml", Site::new("S2", "two"))
        .write();
    let dir = files.data_dir().join("archive");
    std::fs::create_dir_all(&dir).expect("dir");
    // 2026-03-05T00:00:00+08:00 and +00:15.
    let (t0, t1) = (1_772_640_000_i64, 1_772_640_900_i64);
    let text = format!(
        "consumption,energy=electricity,level=1,meter=m1,site=S1,unit=kwh,window=15m amount=1.5,kgce=0.18435,coverage=1.0,estimated=false {t0}\n\
         site_consumption,energy=total,site=S1,unit=kgce,window=15m amount=0.18435,kgce=0.18435,meters=1i,coverage=1.0,controlled_kgce=0.18435 {t0}\n\
         consumption,energy=electricity,level=1,meter=m1,site=S2,unit=kwh,window=15m amount=9.0,coverage=1.0,estimated=false {t0}\n\
         gauge_stats,meter=m1,site=S1,window=15m power_kw_mean=6.0,samples=15i {t0}\n\
         consumption,energy=electricity,level=1,meter=m1,site=S1,unit=kwh,window=15m amount=2.0,coverage=1.0,estimated=true {t0}\n\
         boiler,boiler=b1,site=S1,window=15m eta_direct=88.5,coverage=1.0,estimated=false,methods_disagree=false,state=\"running\",out_of_limit=\"\",reasons=\"\" {t1}\n\
         entry,item=output_t,period=2026-03,site=S1 value=100.0,unit=\"t\",period_start=\"2026-03-01T00:00:00+08:00\",period_end=\"2026-04-01T00:00:00+08:00\",entered_by=\"li\",reason=\"recount, said \\\"ok\\\"\",id=\"01ABCDEFGH0123456789ABCDEF\",supersedes=\"\" {t1}\n\
         consumption,energy=electricity,level=1,meter=m1,site=S1,unit=kwh,window=15m amount=3"
    );
    std::fs::write(dir.join("2026-03-05.lp"), text).expect("archive file");
    let out = emgate()
        .args(["export", "--config"])
        .arg(files.main_file())
        .args(["--from", "2026-03-05", "--to", "2026-03-05", "--site", "S1"])
        .args(["--format", "csv"])
        .output()
        .expect("emgate export");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = format!("{HEADER}\n")
        + &csv_row(&[
            ("measurement", "consumption"),
            ("time", "2026-03-05T00:00:00+08:00"),
            ("site", "S1"),
            ("meter", "m1"),
            ("energy", "electricity"),
            ("level", "1"),
            ("window", "15m"),
            ("unit", "kwh"),
            ("amount", "2.0"),
            ("kgce", "0.18435"),
            ("coverage", "1.0"),
            ("estimated", "true"),
        ])
        + &csv_row(&[
            ("measurement", "site_consumption"),
            ("time", "2026-03-05T00:00:00+08:00"),
            ("site", "S1"),
            ("energy", "total"),
            ("window", "15m"),
            ("unit", "kgce"),
            ("amount", "0.18435"),
            ("kgce", "0.18435"),
            ("meters", "1"),
            ("coverage", "1.0"),
            ("controlled_kgce", "0.18435"),
        ])
        + &csv_row(&[
            ("measurement", "boiler"),
            ("time", "2026-03-05T00:15:00+08:00"),
            ("site", "S1"),
            ("boiler", "b1"),
            ("window", "15m"),
            ("eta_direct", "88.5"),
            ("coverage", "1.0"),
            ("estimated", "false"),
            ("methods_disagree", "false"),
            ("state", "running"),
        ])
        + &csv_row(&[
            ("measurement", "entry"),
            ("time", "2026-03-05T00:15:00+08:00"),
            ("site", "S1"),
            ("item", "output_t"),
            ("period", "2026-03"),
            ("value", "100.0"),
            ("unit", "t"),
            ("period_start", "2026-03-01T00:00:00+08:00"),
            ("period_end", "2026-04-01T00:00:00+08:00"),
            ("entered_by", "li"),
            ("reason", "\"recount, said \"\"ok\"\"\""),
            ("id", "01ABCDEFGH0123456789ABCDEF"),
        ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!(
            "exported 4 points of 2026-03-05..=2026-03-05 from {} (7 lines read, 1 later versions merged, 1 torn and 0 malformed lines skipped, 0 damaged files)",
            dir.display()
        )
    );

    // The same as line protocol: the merged window with its fields as
    // InfluxDB keeps them, the other lines byte for byte.
    let out = emgate()
        .args(["export", "--config"])
        .arg(files.main_file())
        .args(["--from", "2026-03-05", "--to", "2026-03-05", "--site", "S2"])
        .output()
        .expect("emgate export");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "consumption,energy=electricity,level=1,meter=m1,site=S2,unit=kwh,window=15m amount=9.0,coverage=1.0,estimated=false {t0}\n"
        )
    );

    // Bad days and sites: exit 2, a message that says what to write.
    for (args, message) in [
        (
            ["--from", "2026-3-5", "--to", "2026-03-05"],
            "error: --from \"2026-3-5\" is not a day; use YYYY-MM-DD (in the gateway's time zone)",
        ),
        (
            ["--from", "2026-03-06", "--to", "2026-03-05"],
            "error: --from 2026-03-06 is after --to 2026-03-05; both days are included",
        ),
    ] {
        let out = emgate()
            .args(["export", "--config"])
            .arg(files.main_file())
            .args(args)
            .output()
            .expect("emgate export");
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), message);
    }
    let out = emgate()
        .args(["export", "--config"])
        .arg(files.main_file())
        .args(["--from", "2026-03-05", "--to", "2026-03-05", "--site", "S9"])
        .output()
        .expect("emgate export");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: unknown site \"S9\"; known: S1, S2"
    );
}

#[test]
fn archive_days_is_checked() {
    for (value, message) in [
        (
            "-1",
            "gateway.archive_days: -1 is too small; the minimum is 0",
        ),
        (
            "3651",
            "gateway.archive_days: 3651 is too large; the maximum is 3650",
        ),
    ] {
        let files = GatewayToml::new("days")
            .gateway_keys(&format!("archive_days = {value}"))
            .section("file_sink", "")
            .write();
        let out = emgate()
            .args(["check-config", "--config"])
            .arg(files.main_file())
            .output()
            .expect("check-config");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    let files = GatewayToml::new("days")
        .gateway_keys("archive_days = 0")
        .section("file_sink", "")
        .write();
    assert_eq!(files.load().gateway.archive_days, 0);
    let files = GatewayToml::new("days").section("file_sink", "").write();
    assert_eq!(files.load().gateway.archive_days, 190);
}
