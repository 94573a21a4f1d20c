//! Manual entries through `emgate enter` into a real `influxd`: an entry and
//! its correction are both stored with every field; a meter reading takes
//! its meter's counter unit; each refused entry's exact message (part of
//! the interface), with nothing written. `POST /api/entries` on a running
//! gateway: behind the token, 400 with the message for a bad entry, 201
//! and the entry through the spool into `influxd`, checked against the
//! configuration in force after a reload.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::config::{ConfigFiles, GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;

const DB: &str = "entries";

/// A gateway writing to `influxd` (v1), site `fz` (Asia/Shanghai) with
/// water meter `w1` on `fz` and site `xm` with none.
fn files(influxd: &Influxd) -> ConfigFiles {
    GatewayToml::new("gw")
        .influx_v1(&influxd.url(), DB, "")
        .endpoint("ep", "")
        .site(
            "fz.toml",
            Site::new("fz", "Fuzhou mill")
                .timezone("Asia/Shanghai")
                .meter(modbus("w1", "water", "water_meter", "ep", 1)),
        )
        .site("xm.toml", Site::new("xm", "Xiamen plant"))
        .write()
}

/// Runs `emgate enter --config MAIN ARGS`: exit code, stdout, stderr.
pub(crate) fn enter(main: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .arg("enter")
        .arg("--config")
        .arg(main)
        .args(args)
        .output()
        .expect("run emgate enter");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// Every stored entry as JSON objects keyed by column, oldest first.
async fn entries(influxd: &Influxd) -> Vec<Value> {
    stored(influxd, DB).await
}

/// Every `entry` point of database `db` as JSON objects keyed by column.
pub(crate) async fn stored(influxd: &Influxd, db: &str) -> Vec<Value> {
    let v = influxd.query(db, "SELECT * FROM entry").await;
    let Some(series) = v["results"][0]["series"][0].as_object() else {
        return Vec::new();
    };
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column"))
        .collect();
    series["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|row| {
            let row = row.as_array().expect("row");
            Value::Object(
                columns
                    .iter()
                    .zip(row)
                    .filter(|(c, _)| **c != "time")
                    .map(|(c, v)| ((*c).to_owned(), v.clone()))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_entry_and_its_correction_are_both_stored() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd);
    let main = f.main_file();
    let (code, id, err) = enter(
        &main,
        &[
            "--site", "fz", "--item", "output_t", "--period", "2026-11", "--value", "1250.5",
            "--unit", "t", "--by", "Li Wei",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(id.len(), 26, "{id}");
    let (code, fixed, err) = enter(
        &main,
        &[
            "--site",
            "fz",
            "--item",
            "output_t",
            "--period",
            "2026-11",
            "--value",
            "1205.5",
            "--unit",
            "t",
            "--by",
            "Wang Fang",
            "--reason",
            "digits swapped",
            "--supersedes",
            &id,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(fixed, id);
    let (code, reading, err) = enter(
        &main,
        &[
            "--site",
            "fz",
            "--item",
            "meter_reading",
            "--meter",
            "w1",
            "--period",
            "2026-11-30",
            "--value",
            "10234.5",
            "--unit",
            "m3",
            "--by",
            "Li Wei",
            "--reason",
            "bus down",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let mut got = entries(&influxd).await;
    got.sort_by_key(|e| e["id"].as_str().map(str::to_owned));
    let month = |value: f64, by: &str, reason: &str, id: &str, supersedes: &str| {
        json!({
            "site": "fz", "item": "output_t", "meter": null, "period": "2026-11",
            "value": value, "unit": "t",
            "period_start": "2026-11-01T00:00:00+08:00", "period_end": "2026-12-01T00:00:00+08:00",
            "entered_by": by, "reason": reason, "id": id, "supersedes": supersedes,
        })
    };
    assert_eq!(
        got,
        vec![
            month(1250.5, "Li Wei", "", &id, ""),
            month(1205.5, "Wang Fang", "digits swapped", &fixed, &id),
            json!({
                "site": "fz", "item": "meter_reading", "meter": "w1", "period": "2026-11-30",
                "value": 10234.5, "unit": "m3",
                "period_start": "2026-11-30T00:00:00+08:00", "period_end": "2026-12-01T00:00:00+08:00",
                "entered_by": "Li Wei", "reason": "bus down", "id": reading, "supersedes": "",
            }),
        ]
    );
}

#[tokio::test]
async fn each_bad_entry_is_refused_with_its_message_and_nothing_is_written() {
    let influxd = Influxd::with_database(DB).await;
    let f = files(&influxd);
    let main = f.main_file();
    let ok = [
        "--site", "fz", "--item", "output_t", "--period", "2026-11", "--value", "1", "--unit", "t",
        "--by", "Li Wei",
    ];
    // Each case replaces or adds arguments of `ok`.
    let cases: &[(&[&str], &str)] = &[
        (&["--site", "fzz"], "unknown site \"fzz\"; known: fz, xm"),
        (
            &["--item", "fuel_lab"],
            "unknown item \"fuel_lab\"; use output_t (or output_<unit>), output_value_10k_cny, value_added_10k_cny, meter_reading, or a fuel lab analysis of a boiler (fuel_lhv_kj_per_kg, fuel_lhv_kj_per_m3, fuel_ash_pct, fuel_moisture_pct, fuel_volatile_daf_pct, slag_share_pct, slag_combustible_pct, fly_ash_combustible_pct)",
        ),
        (
            &["--item", "meter_reading", "--unit", "m3"],
            "item meter_reading needs the id of the meter that was read (meter)",
        ),
        (
            &["--meter", "w1"],
            "a meter is only given with item meter_reading, not output_t",
        ),
        (
            &["--item", "meter_reading", "--meter", "w2"],
            "unknown meter \"w2\" in site \"fz\"",
        ),
        (
            &["--site", "xm", "--item", "meter_reading", "--meter", "w1"],
            "unknown meter \"w1\" in site \"xm\"",
        ),
        (
            &["--item", "meter_reading", "--meter", "w1"],
            "unit \"t\" does not fit item meter_reading; use \"m3\"",
        ),
        (
            &["--unit", "kg"],
            "unit \"kg\" does not fit item output_t; use \"t\"",
        ),
        (
            &["--item", "output_value_10k_cny"],
            "unit \"t\" does not fit item output_value_10k_cny; use \"10k_cny\"",
        ),
        (&["--value", "NaN"], "value NaN is not a finite number"),
        (&["--value", "inf"], "value inf is not a finite number"),
        (
            &["--value", "-3"],
            "value -3 is negative; entries are amounts (>= 0)",
        ),
        (
            &["--period", "2026-13"],
            "period \"2026-13\" is malformed; use YYYY (a year), YYYY-MM (a month) or YYYY-MM-DD (a day)",
        ),
        (
            &["--period", "2099"],
            "period 2099 is in the future (it starts 2099-01-01T00:00:00+08:00)",
        ),
        (
            &["--by", " "],
            "entered_by is missing; say who enters the value",
        ),
        (
            &["--supersedes", "01KB0000000000000000000000"],
            "a correction needs a reason; say why the entry it supersedes is wrong",
        ),
        (
            &["--supersedes", "nope", "--reason", "x"],
            "supersedes \"nope\" is not an entry id (26 characters, as `emgate enter` printed it)",
        ),
    ];
    let long_reason = "x".repeat(1001);
    let long: &[(&[&str], &str)] = &[(
        &["--reason", &long_reason],
        "reason is too long; at most 1000 characters",
    )];
    for (change, message) in cases.iter().chain(long) {
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
    assert_eq!(entries(&influxd).await, Vec::<Value>::new());
    // The same arguments without a problem are stored: the check above
    // would see a written line.
    let (code, _, err) = enter(&main, &ok);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(entries(&influxd).await.len(), 1);
}

/// POSTs `body` to `/api/entries` with `token`: status and JSON answer.
async fn post(base: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/entries"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST /api/entries");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_appends_entries_through_the_spool_behind_the_token() {
    let influxd = Influxd::with_database(DB).await;
    let port = crate::support::free_port();
    let files = GatewayToml::new("gw")
        .readings_only()
        .influx_v1(
            &influxd.url(),
            DB,
            "batch_size = 10\nflush_interval_ms = 100",
        )
        .section(
            "api",
            &format!("listen = \"127.0.0.1:{port}\"\ntoken = \"tok\""),
        )
        .site(
            "fz.toml",
            Site::new("fz", "Fuzhou mill").timezone("Asia/Shanghai"),
        )
        .write();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let gw = crate::support::test_gateway::InProcess::start_with(
        std::sync::Arc::new(files.load()),
        emgate::app::Control {
            reload: Some(rx),
            api: Some(tx),
        },
    );
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_for(
        "the API to answer /health",
        std::time::Duration::from_secs(15),
        async || reqwest::get(format!("{base}/health")).await.is_ok(),
    )
    .await;
    let good = r#"{"site": "fz", "item": "output_value_10k_cny", "period": "2026-10",
                   "value": 812.25, "unit": "10k_cny"}"#;
    assert_eq!(
        post(&base, None, good).await,
        (
            401,
            json!({"error": "missing bearer token (Authorization: Bearer <token>)"})
        )
    );
    assert_eq!(
        post(&base, Some("wrong"), good).await,
        (401, json!({"error": "invalid bearer token"}))
    );
    assert_eq!(
        post(&base, Some("tok"), &good.replace("10k_cny\"}", "cny\"}")).await,
        (
            400,
            json!({"error": "unit \"cny\" does not fit item output_value_10k_cny; use \"10k_cny\""})
        )
    );
    let (status, answer) = post(&base, Some("tok"), "{\"site\": \"fz\"}").await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid entry JSON: missing field `item`")),
        "{answer}"
    );
    let (status, entry) = post(&base, Some("tok"), good).await;
    assert_eq!(status, 201, "{entry}");
    let id = entry["id"].as_str().expect("id").to_owned();
    let mut expected = json!({
        "site": "fz", "item": "output_value_10k_cny", "period": "2026-10",
        "period_start": "2026-10-01T00:00:00+08:00", "period_end": "2026-11-01T00:00:00+08:00",
        "value": 812.25, "unit": "10k_cny", "entered_by": "api", "reason": "",
        "id": id, "supersedes": "", "time": entry["time"],
    });
    assert_eq!(entry, expected);
    crate::support::wait_for(
        "the entry in influxd",
        std::time::Duration::from_secs(15),
        async || !entries(&influxd).await.is_empty(),
    )
    .await;
    let stored = entries(&influxd).await;
    if let Some(e) = expected.as_object_mut() {
        e.remove("time");
    }
    assert_eq!(stored, vec![expected], "only the good entry is stored");

    // Entries are checked against the configuration in force: a site added
    // by a reload can be entered for, at once.
    let xm = good.replace("\"fz\"", "\"xm\"");
    assert_eq!(
        post(&base, Some("tok"), &xm).await,
        (400, json!({"error": "unknown site \"xm\"; known: fz"}))
    );
    files.write_site("xm.toml", Site::new("xm", "Xiamen plant"));
    let reloaded = reqwest::Client::new()
        .post(format!("{base}/api/reload"))
        .bearer_auth("tok")
        .send()
        .await
        .expect("POST /api/reload");
    assert_eq!(reloaded.status().as_u16(), 200);
    let (status, entry) = post(&base, Some("tok"), &xm).await;
    assert_eq!((status, &entry["site"]), (201, &json!("xm")), "{entry}");
    gw.stop().await;
}

#[test]
fn without_influxdb_the_entry_is_appended_to_the_file_sink() {
    let files = GatewayToml::new("gw")
        .site("xm.toml", Site::new("xm", "Xiamen plant").timezone("UTC"))
        .write();
    let (code, id, err) = enter(
        &files.main_file(),
        &[
            "--site",
            "xm",
            "--item",
            "value_added_10k_cny",
            "--period",
            "2025",
            "--value",
            "0",
            "--unit",
            "10k_cny",
            "--by",
            "Chen \"Jr\"",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(files.data_dir().join("lines.lp")).expect("lines.lp");
    let (line, time) = text.trim_end().rsplit_once(' ').expect("timestamp");
    assert_eq!(
        line,
        format!(
            "entry,item=value_added_10k_cny,period=2025,site=xm value=0.0,unit=\"10k_cny\",\
             period_start=\"2025-01-01T00:00:00+00:00\",period_end=\"2026-01-01T00:00:00+00:00\",\
             entered_by=\"Chen \\\"Jr\\\"\",reason=\"\",id=\"{id}\",supersedes=\"\""
        )
    );
    let now = jiff::Timestamp::now().as_second();
    let time: i64 = time.parse().expect("seconds");
    assert!((now - 60..=now).contains(&time), "{time} vs {now}");
    assert_eq!(text.lines().count(), 1);
}
