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

use std::cell::{Cell, RefCell};
use std::time::Duration;

use emgate::app::Control;
use emgate::config::SimFault;
use emgate::model::MeterId;
use emgate::sim::SimOptions;
use emgate::telemetry::Stats;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::{lazy, wait_for};

const DB: &str = "ops";
const TOKEN: &str = "s3cret-token";

/// The site: the answering meter `good`, and `dead` (silenced by the test).
fn site() -> Site {
    Site::new("R1", "ops test")
        .meter(modbus("good", "water", "water_meter", "a", 1))
        .meter(modbus("dead", "water", "water_meter", "a", 2))
}

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
    gw: TestGateway,
    client: reqwest::Client,
    base: String,
}

impl Running {
    /// The main file (`api_keys` go to `[api]`, `sections` are the test's
    /// own) and `sites/site.toml`; starts the simulator and the gateway.
    async fn start(influx: &Influxd, api_keys: &str, sections: &str, site: Site) -> Running {
        let api_port = crate::support::free_port();
        let toml = GatewayToml::new("ops")
            .influx_v1(
                &influx.url(),
                DB,
                "batch_size = 20\nflush_interval_ms = 100\nretry_initial_ms = 100\nretry_max_ms = 300",
            )
            .readings_only()
            .endpoint("a", "timeout_ms = 300")
            .section(
                "api",
                &format!("listen = \"127.0.0.1:{api_port}\"\n{api_keys}"),
            )
            .toml(sections)
            .site("site.toml", site);
        let mut gw = TestGateway::prepare(&toml, SimOptions::default()).await;
        let (tx, rx) = mpsc::channel(4);
        gw.run_with(Control {
            reload: Some(rx),
            api: Some(tx),
        });
        Running {
            gw,
            client: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{api_port}"),
        }
    }

    /// Rewrites the site file (for a reload).
    fn write_site(&self, text: impl std::fmt::Display) {
        self.gw.files.write_site("site.toml", text);
    }

    /// Stops the gateway (it must end without error) and the simulator.
    async fn stop(mut self) {
        self.gw.stop().await;
        self.gw.sim.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_views_reload_and_exact_metrics() {
    let influx = Influxd::with_database(DB).await;
    let gw = Running::start(&influx, &format!("token = \"{TOKEN}\""), "", site()).await;
    // Set at run time, not in `[simulator]`: the reload below removes the meter.
    gw.gw.sim.set_fault(MeterId(1), Some(SimFault::NoResponse));
    let (client, base, stats) = (&gw.client, gw.base.as_str(), gw.gw.stats());
    let points_per_reading = gw.gw.config.profile_of(MeterId(0)).points.len() as u64;

    // The API comes up; /health needs no token, everything else does.
    wait_for(
        "the API to answer /health",
        Duration::from_secs(15),
        async || {
            let health = client.get(format!("{base}/health")).send().await;
            health.is_ok_and(|r| r.status().as_u16() == 200)
        },
    )
    .await;
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
    let last = RefCell::new(String::new());
    let what = lazy(|| format!("meters to show good=up, dead=down: {}", last.borrow()));
    wait_for(&what, Duration::from_secs(20), async || {
        let (status, body) = get(client, &format!("{base}/api/meters"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        let meters: Value = serde_json::from_str(&body).expect("JSON");
        let state = |id: &str| {
            meters
                .as_array()
                .and_then(|a| a.iter().find(|m| m["id"] == id))
                .map(|m| m["state"].as_str().unwrap_or("").to_owned())
        };
        *last.borrow_mut() = body;
        state("good").as_deref() == Some("up") && state("dead").as_deref() == Some("down")
    })
    .await;
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
    gw.gw
        .wait_for("polling", Duration::from_secs(20), |s| {
            Stats::get(&s.readings) >= 10
        })
        .await;
    gw.write_site(Site::new("R1", "ops test"));
    let (status, answer) = reload(client, base).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    // An invalid one is refused with the error; the gateway runs on.
    gw.write_site(format!("{}nmae = \"typo\"\n", Site::new("R1", "ops test")));
    let (status, answer) = reload(client, base).await;
    assert_eq!(status, 422, "{answer}");
    let errors = answer["errors"].to_string();
    assert!(errors.contains("nmae"), "{answer}");
    let (status, _) = get(client, &format!("{base}/health"), None).await;
    assert_eq!(status, 200);

    // Everything polled reaches InfluxDB; then the metrics must agree exactly.
    let stored = Cell::new(0);
    let what = lazy(|| {
        format!(
            "InfluxDB to hold every reading: it holds {}, the gateway read {} and wrote {}",
            stored.get(),
            Stats::get(&stats.readings),
            Stats::get(&stats.lines_written)
        )
    });
    wait_for(&what, Duration::from_secs(30), async || {
        let n = influx.count(DB, "SELECT count(q) FROM reading").await;
        stored.set(n);
        n > 0 && n == Stats::get(&stats.lines_written) && n == Stats::get(&stats.readings)
    })
    .await;
    let stored = stored.get();
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
    let dead_points = (dead_total * points_per_reading) as f64;
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
    let last = RefCell::new((0, String::new()));
    let what = lazy(|| {
        let (status, body) = &*last.borrow();
        format!("/ready to answer {want}; it answered {status}: {body}")
    });
    wait_for(&what, within, async || {
        let answer = match client.get(format!("{base}/ready")).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        let done = answer.0 == want;
        *last.borrow_mut() = answer;
        done
    })
    .await;
    last.into_inner().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_sink_and_the_spool() {
    let mut influx = Influxd::with_database(DB).await;
    // A small spool that ten meters fill within seconds while InfluxDB is away.
    let mut site = Site::new("R2", "readiness");
    for unit in 1..=10 {
        site = site.meter(modbus(&format!("w{unit}"), "water", "water_meter", "a", unit).level(2));
    }
    let gw = Running::start(
        &influx,
        "",
        "[spool]\nmax_bytes = 8192\npolicy = \"block\"",
        site,
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
