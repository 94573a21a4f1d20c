//! The HTTP API over a status board fed in a known sequence: exact metric
//! values, the Prometheus text format, the JSON views, readiness flipping
//! with the sink and the spool, token enforcement, reload forwarding, and
//! `emgate status` rendering from the API.
//!
//! The board is fed through its public update methods (what the poller,
//! the validation stage and the uploader call), so every value is known.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use emgate::api::{self, ApiState, ReloadRequest};
use emgate::config::{Config, Secret, from_parts};
use emgate::model::{EndpointId, MeterId, Quality};
use emgate::profiles::load::builtin;
use emgate::telemetry::Stats;
use emgate::telemetry::{PollOutcome, StatusBoard};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MAIN: &str = r#"
[gateway]
id = "gw"
timezone = "UTC"

[spool]
max_bytes = 10000

[[endpoints]]
id = "plc1"
host = "127.0.0.1"
"#;

const SITE: &str = r#"
[site]
id = "plant-a"
name = "Plant A"

[[meters]]
id = "m1"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "plc1"
unit_id = 1
calibration = { due = "2020-01-01" }

[[meters]]
id = "m2"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "plc1"
unit_id = 2
"#;

const TOKEN: &str = "s3cret-token";

fn config() -> Config {
    from_parts(MAIN, &[("a.toml", SITE)], builtin()).unwrap_or_else(|e| panic!("{e}"))
}

struct Api {
    base: String,
    board: Arc<StatusBoard>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    client: reqwest::Client,
}

async fn start(token: Option<&str>, reload: Option<mpsc::Sender<ReloadRequest>>) -> Api {
    let config = config();
    let board = Arc::new(StatusBoard::new(&config));
    let stats = Arc::new(Stats::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let shutdown = CancellationToken::new();
    let state = ApiState {
        board: Arc::clone(&board).into(),
        stats: Arc::clone(&stats),
        token: token.map(Secret::new),
        site_tokens: Vec::new(),
        reload,
        entries: None,
        reports: None,
    };
    tokio::spawn(api::serve(listener, state, shutdown.clone()));
    Api {
        base: format!("http://{addr}"),
        board,
        stats,
        shutdown,
        client: reqwest::Client::new(),
    }
}

impl Api {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }
}

/// Every sample of a text exposition as `name{labels}` → value, after
/// checking the format: each sample line is `name[{labels}] value`, and
/// each metric family has exactly one HELP and one TYPE, before its samples.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut help = BTreeMap::<String, u32>::new();
    let mut types = BTreeMap::<String, String>::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name");
            *help.entry(name.to_owned()).or_default() += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().expect("name").to_owned();
            let kind = it.next().expect("type").to_owned();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "{line}"
            );
            assert!(types.insert(name, kind).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
        let name = series.split('{').next().expect("name");
        assert!(name.starts_with("emgate_"), "{line}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(
                    !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                    "{line}"
                );
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert_eq!(help.get(family), Some(&1), "HELP of {family}");
        assert!(types.contains_key(family), "TYPE of {family} before {line}");
        if types[family] == "counter" {
            assert!(family.ends_with("_total"), "counter {family}");
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    assert_eq!(help.len(), types.len());
    assert!(help.values().all(|&n| n == 1));
    samples
}

/// 2024-01-01T00:00:00Z.
const DAY: i64 = 1_704_067_200;

fn feed(board: &StatusBoard) {
    let ep = EndpointId(0);
    let ms = Duration::from_millis;
    for latency in [ms(3), ms(3), ms(20), ms(20)] {
        board.poll_result(ep, MeterId(0), PollOutcome::Ok, latency);
    }
    board.poll_result(ep, MeterId(1), PollOutcome::Timeout, ms(2000));
    board.overrun(ep);
    // m1: three good quarters, then one range-flagged reading in the same quarter.
    for q in 0..3 {
        board.reading(MeterId(0), DAY + q * 900, Quality::CALIBRATION, true);
    }
    board.reading(
        MeterId(0),
        DAY + 2 * 900 + 60,
        Quality::RANGE | Quality::CALIBRATION,
        true,
    );
    // m2: one reading with values in the first quarter, then a timeout reading.
    board.reading(MeterId(1), DAY, Quality::GOOD, true);
    board.reading(MeterId(1), DAY + 60, Quality::TIMEOUT, false);
    board.influx_request(Some(204), ms(30), 100);
    board.influx_request(Some(204), ms(40), 50);
    board.influx_request(Some(503), ms(1200), 10);
    board.influx_request(None, ms(5000), 10);
    board.influx_request(Some(400), ms(8), 1);
}

#[tokio::test]
async fn metrics_after_a_known_sequence() {
    let api = start(Some(TOKEN), None).await;
    feed(&api.board);
    api.stats.requests.store(7, Ordering::Relaxed);
    api.stats.quality_counts[2].store(3, Ordering::Relaxed);
    api.stats.spool_bytes.store(1234, Ordering::Relaxed);
    api.stats.lines_written.store(150, Ordering::Relaxed);
    api.stats.count_mqtt_rejection("malformed", "?");
    let (status, text) = api.get("/metrics").await;
    assert_eq!(status, 200);
    let m = parse_metrics(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("missing {k}\n{text}"));
    let ep = "{endpoint=\"plc1\"}";
    assert_eq!(get(&format!("emgate_modbus_polls_total{ep}")), 5.0);
    assert_eq!(get(&format!("emgate_modbus_responses_total{ep}")), 4.0);
    assert_eq!(get(&format!("emgate_modbus_timeouts_total{ep}")), 1.0);
    assert_eq!(get(&format!("emgate_modbus_exceptions_total{ep}")), 0.0);
    assert_eq!(get(&format!("emgate_modbus_overruns_total{ep}")), 1.0);
    let bucket = |le: &str| {
        get(&format!(
            "emgate_modbus_poll_duration_seconds_bucket{{endpoint=\"plc1\",le=\"{le}\"}}"
        ))
    };
    assert_eq!(bucket("0.005"), 2.0);
    assert_eq!(bucket("0.01"), 2.0);
    assert_eq!(bucket("0.025"), 4.0);
    assert_eq!(bucket("1"), 4.0);
    assert_eq!(bucket("2.5"), 5.0);
    assert_eq!(bucket("+Inf"), 5.0);
    assert_eq!(
        get(&format!("emgate_modbus_poll_duration_seconds_count{ep}")),
        5.0
    );
    assert_eq!(
        get(&format!("emgate_modbus_poll_duration_seconds_sum{ep}")),
        2.046
    );
    assert_eq!(get("emgate_modbus_requests_total"), 7.0);

    let m1 = "meter=\"m1\",site=\"plant-a\"";
    assert_eq!(get(&format!("emgate_meter_readings_total{{{m1}}}")), 4.0);
    assert_eq!(
        get("emgate_meter_readings_total{meter=\"m2\",site=\"plant-a\"}"),
        2.0
    );
    assert_eq!(
        get(&format!("emgate_meter_calibration_overdue{{{m1}}}")),
        1.0
    );
    assert_eq!(
        get("emgate_meter_consecutive_failures{meter=\"m2\",site=\"plant-a\"}"),
        1.0
    );
    assert_eq!(get("emgate_points_flagged_total{reason=\"range\"}"), 3.0);
    assert_eq!(get("emgate_points_flagged_total{reason=\"timeout\"}"), 0.0);
    assert_eq!(
        get("emgate_mqtt_messages_rejected_total{reason=\"malformed\"}"),
        1.0
    );
    assert_eq!(get("emgate_spool_bytes"), 1234.0);
    assert_eq!(get("emgate_spool_max_bytes"), 10000.0);

    assert_eq!(get("emgate_influx_requests_total{status=\"2xx\"}"), 2.0);
    assert_eq!(get("emgate_influx_requests_total{status=\"4xx\"}"), 1.0);
    assert_eq!(get("emgate_influx_requests_total{status=\"5xx\"}"), 1.0);
    assert_eq!(get("emgate_influx_requests_total{status=\"error\"}"), 1.0);
    assert_eq!(get("emgate_influx_request_duration_seconds_count"), 5.0);
    assert_eq!(
        get("emgate_influx_request_duration_seconds_bucket{le=\"0.01\"}"),
        1.0
    );
    assert_eq!(
        get("emgate_influx_request_duration_seconds_bucket{le=\"0.05\"}"),
        3.0
    );
    assert_eq!(
        get("emgate_influx_request_duration_seconds_bucket{le=\"2.5\"}"),
        4.0
    );
    assert_eq!(get("emgate_influx_request_duration_seconds_sum"), 6.278);
    assert_eq!(get("emgate_influx_lines_sent_total"), 171.0);
    assert_eq!(get("emgate_influx_points_written_total"), 150.0);
    api.shutdown.cancel();
}

#[tokio::test]
async fn meters_and_sites_as_json() {
    let api = start(Some(TOKEN), None).await;
    feed(&api.board);
    api.board.set_backoff(EndpointId(0), Some(i64::MAX / 2));
    // Per meter, via the board directly (a fixed `now`), then the routes.
    let now = DAY + 3600;
    let meters = api.board.meters(now);
    assert_eq!(meters.len(), 2);
    let m1 = &meters[0];
    assert_eq!(m1.id, "m1");
    assert_eq!(m1.source, "modbus:plc1/1");
    assert_eq!(m1.energy, "water");
    assert_eq!(
        m1.state, "down",
        "last value 3540 s ago: more than 3 intervals"
    );
    assert_eq!(m1.last_slot, Some(DAY + 1860));
    assert_eq!(m1.last_good_age_secs, Some(3600 - 1800));
    assert_eq!(m1.quality, (Quality::RANGE | Quality::CALIBRATION).0);
    assert_eq!(m1.reasons, ["range", "calibration"]);
    assert_eq!(m1.calibration_due.as_deref(), Some("2020-01-01"));
    assert!(m1.calibration_overdue);
    assert_eq!((m1.polls, m1.timeouts, m1.exceptions), (4, 0, 0));
    assert_eq!(m1.backoff_until, Some(i64::MAX / 2));
    let soon = DAY + 1900;
    assert_eq!(api.board.meter("m1", soon).expect("m1").state, "bad");
    api.board
        .reading(MeterId(0), DAY + 1920, Quality::CALIBRATION, true);
    assert_eq!(api.board.meter("m1", soon).expect("m1").state, "up");
    let m2 = api.board.meter("m2", soon).expect("m2");
    assert_eq!(m2.state, "down");
    assert_eq!(m2.consecutive_failures, 1);
    assert_eq!(m2.reasons, ["timeout"]);

    // Completeness: m1 3 quarters, m2 1, of 2 meters × 5 quarters elapsed.
    let sites = api.board.sites(now);
    assert_eq!(sites.len(), 1);
    let s = &sites[0];
    assert_eq!((s.id.as_str(), s.name.as_str()), ("plant-a", "Plant A"));
    assert_eq!((s.meters, s.up, s.down, s.bad), (2, 0, 2, 0));
    assert_eq!(s.completeness_today, 0.4);
    assert!(!s.completeness_ok);
    // A new local day resets m1; m2 has nothing today.
    api.board
        .reading(MeterId(0), DAY + 86_400, Quality::GOOD, true);
    let s = &api.board.sites(DAY + 86_400)[0];
    assert_eq!(s.completeness_today, 0.5);

    // The routes serve the same data as JSON.
    let json = api.json("/api/meters").await;
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert_eq!(json[1]["id"], "m2");
    assert_eq!(json[1]["state"], "down");
    let one = api.json("/api/meters/m2").await;
    assert_eq!(one["consecutive_failures"], 1);
    assert_eq!(one["source"], "modbus:plc1/2");
    let (status, body) = api.get("/api/meters/nope").await;
    assert_eq!(status, 404, "{body}");
    let sites = api.json("/api/sites").await;
    assert_eq!(sites[0]["id"], "plant-a");
    assert_eq!(sites[0]["meters"], 2);
    let summary = api.json("/api/summary").await;
    assert_eq!(summary["meters"], 2);
    assert_eq!(summary["down"], 2);
    assert_eq!(summary["sink_reachable"], true);
    api.shutdown.cancel();
}

#[tokio::test]
async fn token_is_enforced_except_on_health() {
    let api = start(Some(TOKEN), None).await;
    let c = &api.client;
    // The page is open (it holds no data; its script sends the token).
    let page = c
        .get(format!("{}/", api.base))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status().as_u16(), 200);
    for path in [
        "/ready",
        "/metrics",
        "/api/meters",
        "/api/sites",
        "/api/summary",
        "/api/endpoints",
    ] {
        let url = format!("{}{path}", api.base);
        let none = c.get(&url).send().await.expect("request");
        assert_eq!(none.status().as_u16(), 401, "{path} without token");
        assert_eq!(
            none.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: serde_json::Value = none.json().await.expect("JSON");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("missing")),
            "{body}"
        );
        let wrong = c
            .get(&url)
            .bearer_auth("s3cret-tokem")
            .send()
            .await
            .expect("request");
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong token");
        let right = c
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        assert_ne!(right.status().as_u16(), 401, "{path} with the token");
    }
    let post = c
        .post(format!("{}/api/reload", api.base))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status().as_u16(), 401);
    let health = c
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status().as_u16(), 200);
    let body: serde_json::Value = health.json().await.expect("JSON");
    assert_eq!(body["status"], "ok");
    let page = c
        .get(&api.base)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.expect("page").contains("emgate"));
    api.shutdown.cancel();

    // Without a configured token everything is open.
    let open = start(None, None).await;
    let r = open
        .client
        .get(format!("{}/api/meters", open.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    open.shutdown.cancel();
}

#[tokio::test]
async fn readiness_follows_sources_sink_and_spool() {
    let api = start(Some(TOKEN), None).await;
    let ready = |api: &Api| {
        let (c, b) = (api.client.clone(), api.base.clone());
        async move {
            let r = c
                .get(format!("{b}/ready"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("JSON");
            (status, body)
        }
    };
    let (status, body) = ready(&api).await;
    assert_eq!(status, 503);
    assert_eq!(body["ready"], false);
    assert_eq!(body["reasons"][0], "sources not started");

    api.board.mark_started();
    let (status, body) = ready(&api).await;
    assert_eq!((status, &body["reasons"]), (200, &serde_json::json!([])));

    // Sink gone, spool filling but below 90 % of 10000 bytes: still ready.
    api.board.set_sink_reachable(false);
    api.stats.spool_bytes.store(8999, Ordering::Relaxed);
    assert_eq!(ready(&api).await.0, 200);
    // At 90 %: not ready, with the reason.
    api.stats.spool_bytes.store(9000, Ordering::Relaxed);
    let (status, body) = ready(&api).await;
    assert_eq!(status, 503);
    assert_eq!(
        body["reasons"][0],
        "output unreachable and spool at 9000 of 10000 bytes (≥ 90 %)"
    );
    let metrics = parse_metrics(&api.get("/metrics").await.1);
    assert_eq!(metrics["emgate_ready"], 0.0);
    assert_eq!(metrics["emgate_influx_reachable"], 0.0);
    // The sink comes back: ready again although the spool is still full.
    api.board.set_sink_reachable(true);
    assert_eq!(ready(&api).await.0, 200);
    api.shutdown.cancel();
}

#[tokio::test]
async fn reload_is_forwarded_and_answered() {
    let (tx, mut rx) = mpsc::channel::<ReloadRequest>(1);
    let api = start(Some(TOKEN), Some(tx)).await;
    tokio::spawn(async move {
        let first = rx.recv().await.expect("first request");
        let _ = first.reply.send(Ok("1 meter added".to_owned()));
        let second = rx.recv().await.expect("second request");
        let _ = second
            .reply
            .send(Err(vec!["emgate.toml: x: bad".to_owned()]));
    });
    let post = || {
        api.client
            .post(format!("{}/api/reload", api.base))
            .bearer_auth(TOKEN)
            .send()
    };
    let ok = post().await.expect("request");
    assert_eq!(ok.status().as_u16(), 200);
    let body: serde_json::Value = ok.json().await.expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"ok": true, "summary": "1 meter added"})
    );
    let bad = post().await.expect("request");
    assert_eq!(bad.status().as_u16(), 422);
    let body: serde_json::Value = bad.json().await.expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"ok": false, "errors": ["emgate.toml: x: bad"]})
    );
    api.shutdown.cancel();

    let without = start(Some(TOKEN), None).await;
    let r = without
        .client
        .post(format!("{}/api/reload", without.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 501);
    without.shutdown.cancel();
}

#[tokio::test]
async fn status_command_renders_from_the_api() {
    let api = start(Some(TOKEN), None).await;
    feed(&api.board);
    let text = emgate::telemetry::client::run(&api.base, Some(TOKEN))
        .await
        .expect("status");
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["SITE", "NAME", "METERS", "UP", "DOWN", "BAD", "TODAY"]
    );
    // The readings are from 2024, so both meters are down now; m1 is overdue.
    assert_eq!(
        lines[1],
        [
            "plant-a", "Plant", "A", "2", "0", "2", "0", "0.0%", "(below", "90%)"
        ]
    );
    let m1 = lines
        .iter()
        .find(|l| l.get(1) == Some(&"m1"))
        .expect("m1 row");
    assert_eq!(m1[..5], ["plant-a", "m1", "water", "modbus:plc1/1", "DOWN"]);
    assert_eq!(
        m1[6..],
        ["ago", "range+calibration", "0", "2020-01-01", "OVERDUE"]
    );
    let m2 = lines
        .iter()
        .find(|l| l.get(1) == Some(&"m2"))
        .expect("m2 row");
    assert_eq!(m2[..5], ["plant-a", "m2", "water", "modbus:plc1/2", "DOWN"]);
    assert_eq!(m2[6..], ["ago", "timeout", "1", "-"]);
    assert!(text.ends_with(
        "meters: 0 up, 2 down, 0 bad of 2\nbacklog: 0 records, 0 bytes in the spool; output accepting writes (0 lines written)\n"
    ), "{text}");
    let err = emgate::telemetry::client::run(&api.base, Some("wrong")).await;
    assert!(
        matches!(
            err,
            Err(emgate::telemetry::client::StatusCliError::Status { status: 401, .. })
        ),
        "{err:?}"
    );
    api.shutdown.cancel();
}
