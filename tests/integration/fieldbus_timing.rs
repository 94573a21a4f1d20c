//! Bus timing you can plan with: the wire time of one poll round of a
//! serial-framed bus, worked out by hand here in plain numbers, must be what
//! `emgate check-config` prints and what `sources::modbus::timing` computes;
//! a round that does not fit in the shortest poll interval gets the exact
//! warning (exit code still 0); and a running gateway's status API,
//! `/metrics` and `emgate status` show the bus's planned and measured round
//! (an `rtu_over_tcp` endpoint reading a pymodbus RTU-over-TCP peer).
//!
//! Every meter here uses one profile of three f32 holding registers far
//! apart: three reads of 2 registers each. A read is a request of 8 bytes
//! (unit, function, start, count, CRC) and an answer of 5 + 2 × 2 = 9 bytes
//! (unit, function, byte count, data, CRC).

use std::process::{Command, Output};
use std::time::Duration;

use emgate::config::Config;
use emgate::model::EndpointId;
use emgate::sources::modbus::timing::BusTiming;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::pymodbus::{Framer, PeerDevice, PymodbusServer};
use crate::support::{lazy, wait_for};

/// Three f32 points 100 registers apart: three reads of two registers.
const THREE_READS: &str = r#"
description = "three separate reads of two registers"
[[points]]
name = "a"
register = "holding"
address = 0
type = "f32"
unit = "kw"
[[points]]
name = "b"
register = "holding"
address = 100
type = "f32"
unit = "kw"
[[points]]
name = "c"
register = "holding"
address = 200
type = "f32"
unit = "kw"
"#;

/// `count` meters `<prefix>01`.. on `endpoint`, the first polled every
/// `first_secs`, the others every `rest_secs`.
fn meters(
    site: Site,
    prefix: &str,
    endpoint: &str,
    count: usize,
    first_secs: u32,
    rest_secs: u32,
) -> Site {
    (1..=count).fold(site, |site, i| {
        let every = if i == 1 { first_secs } else { rest_secs };
        site.meter(
            modbus(
                &format!("{prefix}{i:02}"),
                "electricity",
                "three",
                endpoint,
                i,
            )
            .level(2)
            .every_secs(every),
        )
    })
}

fn check_config(toml: &GatewayToml) -> (Config, Output) {
    let files = toml.write();
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .arg("check-config")
        .arg("--config")
        .arg(files.main_file())
        .output()
        .expect("run emgate check-config");
    (files.load(), out)
}

/// The stdout line of bus `id`.
fn bus_line<'a>(stdout: &'a str, id: &str) -> &'a str {
    let prefix = format!("bus {id} (");
    stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for bus {id} in:\n{stdout}"))
}

/// Seconds → the `check-config` text, milliseconds with one decimal.
fn ms(secs: f64) -> String {
    format!("{:.1} ms", secs * 1000.0)
}

#[test]
fn check_config_round_is_the_hand_computation() {
    let site = Site::new("s", "S");
    let site = meters(site, "a", "b9600", 30, 5, 60);
    let site = meters(site, "b", "b115200", 30, 5, 60);
    let site = meters(site, "c", "b9600e", 30, 5, 60);
    let rtu = "transport = \"rtu_over_tcp\"";
    let toml = GatewayToml::new("timing")
        .endpoint("b9600", &format!("{rtu}\nbaud = 9600"))
        .endpoint("b115200", &format!("{rtu}\nbaud = 115200"))
        .endpoint("b9600e", &format!("{rtu}\nbaud = 9600\nparity = \"even\""))
        .profile("three", THREE_READS)
        .site("s.toml", site);
    let (config, out) = check_config(&toml);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");

    // 9600 baud 8N1: 10 bits a character, t3.5 = 3.5 characters.
    // One read: (8 + 9) × 10 bits + 2 × 3.5 × 10 bits = 240 bits = 25 ms.
    let read_9600 = ((8.0 + 9.0) * 10.0 + 2.0 * 3.5 * 10.0) / 9600.0;
    let round_9600 = 30.0 * 3.0 * read_9600;
    assert_eq!(ms(round_9600), "2250.0 ms");
    // 115200 baud 8N1: above 19200 baud the silence is a fixed 1.75 ms.
    // One read: 17 × 10 / 115200 s + 2 × 1.75 ms = 4.9757 ms.
    let read_115200 = (8.0 + 9.0) * 10.0 / 115_200.0 + 2.0 * 0.00175;
    let round_115200 = 30.0 * 3.0 * read_115200;
    assert_eq!(ms(round_115200), "447.8 ms");
    // 9600 baud 8E1: 11 bits a character (start, 8 data, parity, stop).
    // One read: (17 + 7) × 11 bits = 264 bits = 27.5 ms.
    let read_9600e = ((8.0 + 9.0) * 11.0 + 2.0 * 3.5 * 11.0) / 9600.0;
    let round_9600e = 30.0 * 3.0 * read_9600e;
    assert_eq!(ms(round_9600e), "2475.0 ms");

    // The budget is the shortest poll interval on the bus: 5 s, not 60 s.
    for (i, (id, settings, round)) in [
        ("b9600", "9600 8N1", round_9600),
        ("b115200", "115200 8N1", round_115200),
        ("b9600e", "9600 8E1", round_9600e),
    ]
    .into_iter()
    .enumerate()
    {
        let address = config.endpoints[i].address();
        assert_eq!(
            bus_line(&stdout, id),
            format!(
                "bus {id} (rtu_over_tcp {address}, {settings}): 30 meter(s), 90 request(s), \
                 round {}, budget 5000 ms, utilisation {:.1} %",
                ms(round),
                round / 5.0 * 100.0
            )
        );
        let timing = BusTiming::of(&config, EndpointId(i as u32)).expect("bus with meters");
        let computed = timing.round.expect("a serial-framed bus has a wire time");
        // Each wire time rounds down to the nanosecond: within a microsecond.
        assert!(
            (computed.as_secs_f64() - round).abs() < 1e-6,
            "{id}: timing.rs {computed:?}, by hand {round} s"
        );
        assert_eq!(timing.requests, 90);
        assert_eq!(timing.budget, Duration::from_secs(5));
    }
}

#[test]
fn a_round_that_does_not_fit_warns_and_exits_0() {
    let site = meters(Site::new("s", "S"), "m", "slow", 30, 1, 1);
    let toml = GatewayToml::new("timing")
        .endpoint("slow", "transport = \"rtu_over_tcp\"\nbaud = 1200")
        .profile("three", THREE_READS)
        .site("s.toml", site);
    let (config, out) = check_config(&toml);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A warning, not an error.
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");

    // 1200 baud 8N1, one read: 240 bits / 1200 = 200 ms; 90 reads: 18 s
    // against a poll interval of 1 s.
    let round = 30.0 * 3.0 * ((8.0 + 9.0) * 10.0 + 2.0 * 3.5 * 10.0) / 1200.0;
    assert_eq!(ms(round), "18000.0 ms");
    let address = config.endpoints[0].address();
    assert_eq!(
        bus_line(&stdout, "slow"),
        format!(
            "bus slow (rtu_over_tcp {address}, 1200 8N1): 30 meter(s), 90 request(s), \
             round 18000.0 ms, budget 1000 ms, utilisation 1800.0 %"
        )
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: bus slow: one poll round does not fit in the shortest poll interval: \
             30 meter(s) (m01, m02, m03, m04, m05 and 25 more), 90 request(s), 18000.0 ms at \
             1200 8N1, longer than 1000 ms (utilisation 1800.0 %); slots will be missed. Read \
             fewer registers, use a higher baud rate, a longer poll interval, or split the \
             meters over more buses."
        ],
        "stderr:\n{stderr}"
    );
}

/// GET `url` as JSON; `None` while the API is not up (yet).
async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_shows_its_bus_round() {
    // Two meters behind a serial server: zeros in holding registers 0..202.
    let devices: Vec<PeerDevice> = (1..=2)
        .map(|unit| PeerDevice::new(unit).holding(0, &[0; 202]))
        .collect();
    let peer = PymodbusServer::start_with(&devices, Framer::RtuOverTcp);
    let api_port = crate::support::free_port();
    let site = meters(Site::new("s", "S"), "m", "rs485", 2, 1, 1);
    let toml = GatewayToml::new("timing")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .section("api", &format!("listen = \"127.0.0.1:{api_port}\""))
        .endpoint_at(
            "rs485",
            peer.port(),
            "transport = \"rtu_over_tcp\"\nbaud = 9600\ntimeout_ms = 500",
        )
        .profile("three", THREE_READS)
        .site("s.toml", site);
    let files = toml.write();
    let mut gateway = files.spawn("emgate");
    let base = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");

    // Both meters read, and a round measured after that.
    let last = std::cell::RefCell::new(None);
    let what = lazy(|| {
        format!(
            "both meters up and a measured round on {base}; last /api/endpoints: {:#?}\nlog:\n{}",
            last.borrow(),
            gateway.log()
        )
    });
    wait_for(&what, Duration::from_secs(30), async || {
        let Some(meters) = get_json(&client, &format!("{base}/api/meters")).await else {
            return false;
        };
        let up = meters
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|m| m["state"] == "up"));
        let Some(buses) = get_json(&client, &format!("{base}/api/endpoints")).await else {
            return false;
        };
        let measured = !buses[0]["round_ms"].is_null();
        *last.borrow_mut() = Some(buses);
        up && measured
    })
    .await;
    let buses = get_json(&client, &format!("{base}/api/endpoints"))
        .await
        .expect("/api/endpoints");
    let bus = &buses[0];

    // Planned: 2 meters × 3 reads × 25 ms (9600 8N1, as worked out above).
    let planned_ms = 2.0 * 3.0 * ((8.0 + 9.0) * 10.0 + 2.0 * 3.5 * 10.0) / 9600.0 * 1000.0;
    assert_eq!(bus["id"], "rs485", "{buses:#}");
    assert_eq!(bus["transport"], "rtu_over_tcp");
    assert_eq!(bus["meters"], 2);
    assert_eq!(bus["requests"], 6);
    assert_eq!(bus["budget_ms"], 1000);
    let planned = bus["planned_round_ms"].as_f64().expect("planned_round_ms");
    assert!(
        (planned - planned_ms).abs() < 0.001,
        "{planned} vs {planned_ms}"
    );
    // Measured: the poller keeps t3.5 (3.6458 ms at 9600 baud) of silence
    // before each of the 6 requests, so a round cannot be shorter.
    let round = bus["round_ms"].as_f64().expect("round_ms");
    assert!(round >= 6.0 * 3.5 * 10.0 / 9600.0 * 1000.0, "{buses:#}");
    let utilisation = bus["utilisation"].as_f64().expect("utilisation");
    assert!((utilisation - round / 1000.0).abs() < 1e-6, "{buses:#}");

    // The same in /metrics...
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("metrics body");
    let sample = |name: &str| -> f64 {
        let series = format!("{name}{{endpoint=\"rs485\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!((sample("emgate_bus_planned_round_seconds") - planned_ms / 1000.0).abs() < 1e-6);
    assert!(sample("emgate_bus_round_seconds") > 0.0);
    assert!(sample("emgate_bus_utilisation") > 0.0);

    // ... and in `emgate status`.
    let text = emgate::telemetry::client::run(&base, None)
        .await
        .expect("emgate status");
    gateway.terminate().await;
    let header = text
        .lines()
        .find(|l| l.starts_with("BUS "))
        .unwrap_or_else(|| panic!("no bus table in:\n{text}"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "BUS",
            "TRANSPORT",
            "METERS",
            "REQUESTS",
            "ROUND",
            "PLANNED",
            "BUDGET",
            "UTILISATION"
        ]
    );
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("rs485 "))
        .unwrap_or_else(|| panic!("no rs485 row in:\n{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["rs485", "rtu_over_tcp", "2", "6"], "{text}");
    assert_eq!(row[5..7], ["150.0ms", "1000ms"], "{text}");
}
