//! Operations against a running gateway (in process, with its HTTP API, the
//! simulator and a real `influxd`):
//! * the bearer token is enforced everywhere but `/health` and the page;
//! * `/api/meters` and `/api/sites` show the answering meter `up` and the
//!   silent one `down`;
//! * `POST /api/reload` applies a valid configuration (all meters removed:
//!   polling stops after a last flush) and refuses an invalid one with its
//!   error, the gateway running on;
//! * after that known run, `/metrics` agrees exactly with what InfluxDB holds;
//! * `/ready` turns 503 when InfluxDB is gone and the spool nearly full, and
//!   200 again when it is back.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emgate::app::{Control, run_with};
use emgate::config::SimFault;
use emgate::model::MeterId;
use emgate::sim::Simulator;
use emgate::stats::Stats;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

const DB: &str = "ops";
const TOKEN: &str = "s3cret-token";

const SITE: &str = r#"[site]
id = "R1"
name = "ops test"

[[meters]]
id = "good"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "a"
unit_id = 1
poll_interval_secs = 1

[[meters]]
id = "dead"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "a"
unit_id = 2
poll_interval_secs = 1
"#;

/// The value of the sample `name{labels}` (labels exactly as rendered, or
/// none) in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn reload(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/api/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST /api/reload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A gateway running in this process, with its HTTP API and reload channel,
/// on configuration files in a temporary directory, polling the simulator.
struct Running {
    dir: tempfile::TempDir,
    sim: Simulator,
    sim_stop: CancellationToken,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    gateway: tokio::task::JoinHandle<
        Result<emgate::sinks::uploader::SinkSummary, emgate::app::AppError>,
    >,
    client: reqwest::Client,
    base: String,
    points_per_reading: u64,
}

impl Running {
    /// Writes the main file (`extra` holds the test's own sections) and
    /// `sites/site.toml`, starts the simulator and the gateway.
    async fn start(influx: &Influxd, extra: &str, site: &str) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
        let (sim_port, api_port) = (crate::support::free_port(), crate::support::free_port());
        let main = format!(
            r#"
[gateway]
id = "ops"
data_dir = {data:?}
profiles_dir = {profiles:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 20
flush_interval_ms = 100
retry_initial_ms = 100
retry_max_ms = 300

# Exact line counts below: readings only.
[aggregation]
windows = []

[[endpoints]]
id = "a"
host = "127.0.0.1"
port = {sim_port}
timeout_ms = 300

[api]
listen = "127.0.0.1:{api_port}"
{extra}
"#,
            data = dir.path().join("data").display().to_string(),
            profiles = profiles.display().to_string(),
            url = influx.url(),
        );
        std::fs::create_dir(dir.path().join("sites")).expect("sites dir");
        std::fs::write(dir.path().join("sites/site.toml"), site).expect("site file");
        let main_path = dir.path().join("emgate.toml");
        std::fs::write(&main_path, main).expect("main file");
        let config =
            emgate::config::load::load(&main_path).unwrap_or_else(|e| panic!("config: {e}"));
        let sim_stop = CancellationToken::new();
        let sim = Simulator::start(&config, sim_stop.clone())
            .await
            .expect("simulator");
        let points_per_reading = config.profile_of(MeterId(0)).points.len() as u64;
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let (tx, rx) = mpsc::channel(4);
        let gateway = tokio::spawn(run_with(
            Arc::new(config),
            Arc::clone(&stats),
            shutdown.clone(),
            Control {
                reload: Some(rx),
                api: Some(tx),
            },
        ));
        Running {
            dir,
            sim,
            sim_stop,
            stats,
            shutdown,
            gateway,
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{api_port}"),
            points_per_reading,
        }
    }

    /// Rewrites the site file (for a reload).
    fn write_site(&self, text: &str) {
        std::fs::write(self.dir.path().join("sites/site.toml"), text).expect("site file");
    }

    /// Stops the gateway (it must end without error) and the simulator.
    async fn stop(self) {
        self.shutdown.cancel();
        self.gateway
            .await
            .expect("gateway task")
            .expect("gateway ran without error");
        self.sim_stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_views_reload_and_exact_metrics() {
    let influx = Influxd::start();
    influx.create_database(DB).await;
    let gw = Running::start(&influx, &format!("token = \"{TOKEN}\""), SITE).await;
    // Set at run time, not in `[simulator]`: the reload below removes the meter.
    gw.sim.set_fault(MeterId(1), Some(SimFault::NoResponse));
    let (client, base, stats) = (&gw.client, gw.base.as_str(), &gw.stats);

    // The API comes up; /health needs no token, everything else does.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().as_u16() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the API never answered /health");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, page) = get(client, &format!("{base}/"), None).await;
    assert_eq!(status, 200, "the status page holds no data and is open");
    assert!(
        page.contains("data-meter"),
        "the page is served from the binary"
    );
    for path in [
        "/metrics",
        "/ready",
        "/api/meters",
        "/api/sites",
        "/api/summary",
    ] {
        let (status, _) = get(client, &format!("{base}{path}"), None).await;
        assert_eq!(status, 401, "{path} without the token");
        let (status, _) = get(client, &format!("{base}{path}"), Some("wrong")).await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }

    // The good meter comes up, the silent one goes down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(client, &format!("{base}/api/meters"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        let meters: Value = serde_json::from_str(&body).expect("JSON");
        let state = |id: &str| {
            meters
                .as_array()
                .and_then(|a| a.iter().find(|m| m["id"] == id))
                .map(|m| m["state"].as_str().unwrap_or("").to_owned())
        };
        if state("good").as_deref() == Some("up") && state("dead").as_deref() == Some("down") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "meters never showed good=up, dead=down: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = get(client, &format!("{base}/api/meters/dead"), Some(TOKEN)).await;
    let dead: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        dead["consecutive_failures"].as_u64().unwrap_or(0) >= 1,
        "{dead}"
    );
    assert!(
        dead["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "timeout")),
        "{dead}"
    );
    let (_, body) = get(client, &format!("{base}/api/sites"), Some(TOKEN)).await;
    let sites: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(sites[0]["id"], "R1", "{sites}");
    assert_eq!(
        (
            sites[0]["meters"].as_u64(),
            sites[0]["up"].as_u64(),
            sites[0]["down"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{sites}"
    );

    // A few more slots, then a valid reload that removes every meter:
    // polling stops after a last flush.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Stats::get(&stats.readings) < 10 {
        assert!(Instant::now() < deadline, "polling stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.write_site("[site]\nid = \"R1\"\nname = \"ops test\"\n");
    let (status, answer) = reload(client, base).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    // An invalid one is refused with the error; the gateway runs on.
    gw.write_site("[site]\nid = \"R1\"\nname = \"ops test\"\nnmae = \"typo\"\n");
    let (status, answer) = reload(client, base).await;
    assert_eq!(status, 422, "{answer}");
    let errors = answer["errors"].to_string();
    assert!(errors.contains("nmae"), "{answer}");
    let (status, _) = get(client, &format!("{base}/health"), None).await;
    assert_eq!(status, 200);

    // Everything polled reaches InfluxDB; then the metrics must agree exactly.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let n = influx.count(DB, "SELECT count(q) FROM reading").await;
        if n > 0 && n == Stats::get(&stats.lines_written) && n == Stats::get(&stats.readings) {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "InfluxDB holds {n}, gateway read {} and wrote {}",
            Stats::get(&stats.readings),
            Stats::get(&stats.lines_written)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, text) = get(client, &format!("{base}/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    #[allow(clippy::cast_precision_loss)]
    let want = stored as f64;
    assert_eq!(sample(&text, "emgate_readings_total"), Some(want), "{text}");
    assert_eq!(
        sample(&text, "emgate_influx_points_written_total"),
        Some(want),
        "{text}"
    );
    let timeouts = influx
        .count(
            DB,
            "SELECT count(q) FROM reading WHERE meter = 'dead' AND q = 1",
        )
        .await;
    let dead_total = influx
        .count(DB, "SELECT count(q) FROM reading WHERE meter = 'dead'")
        .await;
    assert_eq!(
        timeouts, dead_total,
        "every reading of the silent meter is q=1"
    );
    #[allow(clippy::cast_precision_loss)]
    let dead_points = (dead_total * gw.points_per_reading) as f64;
    assert_eq!(
        sample(&text, "emgate_points_flagged_total{reason=\"timeout\"}"),
        Some(dead_points),
        "every point of the silent meter is flagged timeout: {text}"
    );

    gw.stop().await;
}

/// Waits (bounded) until `GET /ready` answers `want`; returns the body. A
/// refused connection (the API not listening yet) counts as "not yet".
async fn ready_becomes(
    client: &reqwest::Client,
    base: &str,
    want: u16,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = match client.get(format!("{base}/ready")).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/ready stayed {status} (wanted {want}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_sink_and_the_spool() {
    let mut influx = Influxd::start();
    influx.create_database(DB).await;
    // A small spool that ten meters fill within seconds while InfluxDB is away.
    let mut site = String::from("[site]\nid = \"R2\"\nname = \"readiness\"\n");
    for unit in 1..=10 {
        let _ = write!(
            site,
            "\n[[meters]]\nid = \"w{unit}\"\nenergy = \"water\"\nlevel = 2\nprofile = \"water_meter\"\n\
             endpoint = \"a\"\nunit_id = {unit}\npoll_interval_secs = 1\n"
        );
    }
    let gw = Running::start(
        &influx,
        "\n[spool]\nmax_bytes = 8192\npolicy = \"block\"\n",
        &site,
    )
    .await;
    let (client, base) = (&gw.client, gw.base.as_str());

    ready_becomes(client, base, 200, Duration::from_secs(20)).await;
    // InfluxDB goes away: still ready while the spool has room, then not.
    influx.stop();
    let body = ready_becomes(client, base, 503, Duration::from_secs(90)).await;
    assert!(body.contains("output unreachable"), "{body}");
    // It comes back: the spool drains and the gateway is ready again.
    influx.start_again();
    ready_becomes(client, base, 200, Duration::from_secs(90)).await;
    gw.stop().await;
}
