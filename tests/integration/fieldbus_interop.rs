//! The field buses against peers we did not write: pymodbus 3.16.1 as a
//! serial server behind RTU over TCP, as a serial server on one end of a
//! `socat` pty pair with the gateway's serial port on the other, and behind
//! a software DTU (`tests/peers/dtu_client.py`) that dials in to the
//! gateway, registers and interleaves heartbeats. Each reads the same
//! meters as `interop_pymodbus` (float ABCD and CDAB, integers with PT/CT)
//! and must produce exactly the values worked out in Python and by hand.
//!
//! The DTU tests run the real `emgate run` process: its log, `/metrics` and
//! `/api/meters` are the evidence for replacement, refusal and
//! `not_connected`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::fieldbus_common::{
    Line, assert_canonical, http_get, metric, metrics, of_meter, profile_toml, reading_lines,
};
use crate::support::config::{ConfigFiles, GatewayToml, Site, modbus};
use crate::support::gateway::Gateway;
use crate::support::pymodbus::{
    DTSD1352_POINTS, DtuClient, DtuOptions, Framer, PeerDevice, PymodbusServer, SDM630_CDAB_POINTS,
    SDM630_POINTS, dtsd1352_device, dtsd1352_profile, hex, sdm630_cdab_device, sdm630_cdab_profile,
    sdm630_device, sdm630_profile,
};
use crate::support::socat::PtyPair;
use crate::support::test_gateway::InProcess;
use crate::support::{free_port, lazy, wait_for};

/// The four meters of every test here, on endpoint `endpoint`.
const METERS: [&str; 4] = ["sdm", "sdm-cdab", "acrel", "acrel-ptct"];

fn devices() -> Vec<PeerDevice> {
    vec![
        sdm630_device(1),
        sdm630_cdab_device(2),
        dtsd1352_device(3),
        dtsd1352_device(4),
    ]
}

fn site(endpoint: &str) -> Site {
    Site::new("S1", "field-bus interop")
        .meter(modbus("sdm", "electricity", "sdm630", endpoint, 1))
        .meter(modbus("sdm-cdab", "electricity", "sdm630_cdab", endpoint, 2).level(2))
        .meter(
            modbus("acrel", "electricity", "dtsd1352", endpoint, 3)
                .level(2)
                .keys("pt = 1.0\nct = 1.0"),
        )
        .meter(
            modbus("acrel-ptct", "electricity", "dtsd1352", endpoint, 4)
                .level(2)
                .keys("pt = 10.0\nct = 40.0"),
        )
}

/// A gateway writing every reading to `data/lines.lp` at once, with the
/// test profiles, the site on `endpoint`, and `toml` (its endpoint and
/// whatever else the test needs).
fn gateway(endpoint: &str, toml: &str) -> GatewayToml {
    GatewayToml::new("fieldbus")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .profile("sdm630", &profile_toml(&sdm630_profile()))
        .profile("sdm630_cdab", &profile_toml(&sdm630_cdab_profile()))
        .profile("dtsd1352", &profile_toml(&dtsd1352_profile()))
        .toml(toml)
        .site("s1.toml", site(endpoint))
}

/// Asserts the canonical values on `line` for its meter.
fn assert_meter_line(line: &Line) {
    match line.meter.as_str() {
        "sdm" => assert_canonical(line, &sdm630_profile(), SDM630_POINTS, 1.0, 1.0),
        "sdm-cdab" => assert_canonical(line, &sdm630_cdab_profile(), SDM630_CDAB_POINTS, 1.0, 1.0),
        "acrel" => assert_canonical(line, &dtsd1352_profile(), DTSD1352_POINTS, 1.0, 1.0),
        "acrel-ptct" => {
            assert_canonical(line, &dtsd1352_profile(), DTSD1352_POINTS, 10.0, 40.0);
            // Written out by hand: 12345678 × 0.01 × 10 × 40, and −1500 × 0.001 × 400.
            assert_eq!(
                line.value("import_kwh"),
                Some(49_382_712.0),
                "{}",
                line.text
            );
            assert_eq!(line.value("power_kw"), Some(-600.0), "{}", line.text);
        }
        other => panic!("unexpected meter {other}"),
    }
}

/// Runs the gateway in this process on `toml` until every meter has
/// `rounds` readings; every reading must carry the exact values.
async fn run_exact(toml: &GatewayToml, rounds: u64) {
    let files = toml.write();
    let gw = InProcess::start(Arc::new(files.load()));
    gw.wait_readings(rounds * METERS.len() as u64).await;
    let (_, stats) = gw.stop().await;
    let lines = reading_lines(&files.data_dir());
    assert_eq!(
        lines.len() as u64,
        emgate::telemetry::Stats::get(&stats.readings),
        "every reading is written"
    );
    for meter in METERS {
        let of = of_meter(&lines, meter);
        assert!(of.len() as u64 >= rounds, "{meter}: {} readings", of.len());
        for line in of {
            assert_meter_line(line);
        }
    }
    assert_eq!(
        emgate::telemetry::Stats::get(&stats.requests_exception),
        0,
        "no exception"
    );
}

/// pymodbus's RTU framer on a TCP server (a serial server in transparent
/// mode): `transport = "rtu_over_tcp"`.
#[tokio::test]
async fn pymodbus_rtu_over_tcp_gives_the_exact_values() {
    let server = PymodbusServer::start_with(&devices(), Framer::RtuOverTcp);
    let toml = gateway(
        "bus",
        &format!(
            "[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\nbaud = 9600\ntimeout_ms = 1000",
            server.port()
        ),
    );
    run_exact(&toml, 3).await;
}

/// pymodbus's `ModbusSerialServer` on one end of a pty pair, the gateway's
/// serial port on the other: `transport = "serial"`.
#[tokio::test]
async fn pymodbus_serial_server_on_a_pty_gives_the_exact_values() {
    let pty = PtyPair::start();
    let _server = PymodbusServer::start_serial(&devices(), &pty.a(), 9600);
    let toml = gateway(
        "line",
        &format!(
            "[[endpoints]]\nid = \"line\"\ntransport = \"serial\"\ndevice = {}\nbaud = 9600\nparity = \"none\"\ntimeout_ms = 1000",
            toml::Value::String(pty.b().display().to_string())
        ),
    );
    run_exact(&toml, 3).await;
}

/// A spawned `emgate run` with a DTU endpoint `dtu` (its `keys`), the DTU
/// listener on a free port and the API on another.
struct DtuGateway {
    files: ConfigFiles,
    gw: Gateway,
    dtu: SocketAddr,
    api: u16,
}

impl DtuGateway {
    async fn start(dtu_keys: &str) -> DtuGateway {
        let dtu_port = free_port();
        let api = free_port();
        let toml = gateway(
            "dtu",
            &format!(
                "[dtu]\nlisten = \"127.0.0.1:{dtu_port}\"\nregistration_timeout_ms = 2000\n\n[api]\nlisten = \"127.0.0.1:{api}\"\n\n[[endpoints]]\nid = \"dtu\"\ntransport = \"dtu\"\ntimeout_ms = 1000\n{dtu_keys}"
            ),
        );
        let files = toml.write();
        let gw = files.spawn("emgate");
        gw.wait_log("listening for DTUs", 1).await;
        DtuGateway {
            files,
            gw,
            dtu: SocketAddr::from(([127, 0, 0, 1], dtu_port)),
            api,
        }
    }

    fn lines(&self) -> Vec<Line> {
        reading_lines(&self.files.data_dir())
    }

    /// Good readings so far (all four meters).
    fn good(&self) -> usize {
        self.lines().iter().filter(|l| l.q() == 0).count()
    }

    /// Waits until `n` good readings were written.
    async fn wait_good(&self, n: usize) {
        let what = lazy(|| {
            format!(
                "{n} good readings; lines:\n{}\nlog:\n{}",
                self.lines()
                    .iter()
                    .map(|l| l.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.gw.log()
            )
        });
        wait_for(&what, Duration::from_secs(30), async || self.good() >= n).await;
    }

    async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let text = metrics(self.api).await;
        metric(&text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
    }

    /// Every reading: before its meter's first good one, `not_connected`
    /// on every point; from then on, good with the exact values.
    fn assert_exact_once_connected(&self) {
        let lines = self.lines();
        for meter in METERS {
            let mut connected = false;
            for line in of_meter(&lines, meter) {
                connected |= line.q() == 0;
                if connected {
                    assert_meter_line(line);
                } else {
                    assert_not_connected(line);
                }
            }
            assert!(connected, "{meter} never read");
        }
    }
}

/// `line` is a reading of a meter whose DTU is not connected: `q = 1`, no
/// value, every point `timeout:not_connected`.
fn assert_not_connected(line: &Line) {
    assert_eq!(line.q(), 1, "timeout: {}", line.text);
    let details = line.details();
    assert!(!details.is_empty(), "{}", line.text);
    for d in &details {
        assert!(
            d.ends_with(":timeout:not_connected"),
            "{d} in {}",
            line.text
        );
    }
    let values: Vec<_> = line
        .fields
        .keys()
        .filter(|k| !["q", "q_detail", "lag_ms"].contains(&k.as_str()))
        .collect();
    assert!(values.is_empty(), "no value: {}", line.text);
}

/// A DTU dials in, registers and relays to pymodbus with heartbeats mixed
/// in (between answers, in front of answers, on a timer): exact values. A
/// second DTU with the same registration replaces the first: the gateway
/// closes the old connection, counts the replacement, and the values keep
/// coming through the new one.
#[tokio::test]
async fn a_dtu_with_heartbeats_gives_exact_values_and_a_reconnect_replaces_it() {
    let server = PymodbusServer::start_with(&devices(), Framer::RtuOverTcp);
    let g = DtuGateway::start("registration = \"DTU-0001\"\nheartbeat = \"www.usr.cn\"").await;
    let options = DtuOptions {
        registration: b"DTU-0001".to_vec(),
        heartbeat: Some(b"www.usr.cn".to_vec()),
        heartbeat_every: Duration::from_millis(150),
        ..DtuOptions::default()
    };
    let first = DtuClient::start(g.dtu, server.addr(), options.clone());
    g.wait_good(3 * METERS.len()).await;
    g.assert_exact_once_connected();
    assert!(
        g.metric("emgate_dtu_packets_stripped_total", &[]).await >= 1.0,
        "heartbeats were stripped"
    );
    assert_eq!(g.metric("emgate_dtu_replaced_total", &[]).await, 0.0);

    let second = DtuClient::start(g.dtu, server.addr(), options);
    wait_for(
        lazy(|| {
            format!(
                "the first DTU closed by the gateway:\n{}\ngateway log:\n{}",
                first.log(),
                g.gw.log()
            )
        }),
        Duration::from_secs(10),
        async || first.closed_by_gateway(),
    )
    .await;
    assert!(g.metric("emgate_dtu_replaced_total", &[]).await >= 1.0);
    assert_eq!(g.metric("emgate_dtu_connections_total", &[]).await, 2.0);
    // Only the second DTU is connected now: what comes is through it.
    let before = g.good();
    g.wait_good(before + 3 * METERS.len()).await;
    g.assert_exact_once_connected();
    assert!(!second.closed_by_gateway(), "{}", second.log());
    assert_eq!(
        g.metric("emgate_modbus_answers_rejected_total", &[]).await,
        0.0
    );
    let mut gw = g.gw;
    gw.terminate().await;
}

/// `registration_mode = "every_packet"`: the DTU puts its (binary,
/// ForceControl-style) registration in front of every answer; each is
/// stripped (one per answer: no heartbeat here to blur the count), the
/// values are exact.
#[tokio::test]
async fn a_dtu_sending_its_registration_with_every_packet_gives_exact_values() {
    let server = PymodbusServer::start_with(&devices(), Framer::RtuOverTcp);
    // AA 01, 11 ASCII digits, 0D.
    let registration: Vec<u8> = [&[0xAA, 0x01][..], b"86000000001", &[0x0D]].concat();
    let hex = hex(&registration);
    let g = DtuGateway::start(&format!(
        "registration_hex = \"{hex}\"\nregistration_mode = \"every_packet\""
    ))
    .await;
    let _dtu = DtuClient::start(
        g.dtu,
        server.addr(),
        DtuOptions {
            registration,
            every_packet: true,
            ..DtuOptions::default()
        },
    );
    g.wait_good(3 * METERS.len()).await;
    g.assert_exact_once_connected();
    // One scrape: the stripped count is updated after each meter's poll,
    // the request count at each read, so they may differ by the reads of
    // one meter in flight (5).
    let text = metrics(g.api).await;
    let requests = metric(&text, "emgate_modbus_requests_total", &[]).expect("requests");
    let stripped = metric(&text, "emgate_dtu_packets_stripped_total", &[]).expect("stripped");
    assert!(
        stripped <= requests && stripped >= requests - 5.0 && stripped >= 3.0 * 14.0,
        "one registration stripped per answer: {stripped} of {requests} answers"
    );
    let mut gw = g.gw;
    gw.terminate().await;
}

/// A DTU with a registration no endpoint expects is closed, counted once
/// per connection, and logged once per registration.
#[tokio::test]
async fn an_unknown_registration_is_closed_counted_and_logged_once() {
    let server = PymodbusServer::start_with(&devices(), Framer::RtuOverTcp);
    let g = DtuGateway::start("registration = \"DTU-0001\"").await;
    let stranger = || DtuOptions {
        registration: b"STRANGER-9".to_vec(),
        ..DtuOptions::default()
    };
    let one = DtuClient::start(g.dtu, server.addr(), stranger());
    wait_for(
        lazy(|| format!("the stranger closed by the gateway:\n{}", one.log())),
        Duration::from_secs(10),
        async || one.closed_by_gateway(),
    )
    .await;
    let rejected = ["reason=\"unknown_registration\""];
    assert_eq!(g.metric("emgate_dtu_rejected_total", &rejected).await, 1.0);
    assert_eq!(
        g.gw.log().matches("STRANGER-9").count(),
        1,
        "{}",
        g.gw.log()
    );
    let two = DtuClient::start(g.dtu, server.addr(), stranger());
    wait_for(
        lazy(|| format!("the second stranger closed:\n{}", two.log())),
        Duration::from_secs(10),
        async || two.closed_by_gateway(),
    )
    .await;
    assert_eq!(g.metric("emgate_dtu_rejected_total", &rejected).await, 2.0);
    assert_eq!(
        g.gw.log().matches("STRANGER-9").count(),
        1,
        "logged once per registration:\n{}",
        g.gw.log()
    );
    assert_eq!(g.metric("emgate_dtu_connections_total", &[]).await, 0.0);
    let mut gw = g.gw;
    gw.terminate().await;
}

/// A DTU endpoint whose DTU never dials in: every point of its meters is
/// `timeout:not_connected` at once, no request is sent, and the status API
/// shows the meter `down` with `not_connected` among its reasons.
#[tokio::test]
async fn a_dtu_that_is_not_connected_is_down_with_not_connected() {
    let g = DtuGateway::start("registration = \"DTU-0001\"").await;
    wait_for(
        "two rounds of readings",
        Duration::from_secs(30),
        async || g.lines().len() >= 2 * METERS.len(),
    )
    .await;
    for line in g.lines() {
        assert_not_connected(&line);
    }
    let (status, body) = http_get(g.api, "/api/meters/sdm").await;
    assert_eq!(status, 200, "{body}");
    let meter: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(meter["state"], "down", "{meter}");
    let reasons = meter["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r == "not_connected"),
        "not_connected among the reasons: {meter}"
    );
    assert_eq!(g.metric("emgate_modbus_requests_total", &[]).await, 0.0);
    let mut gw = g.gw;
    gw.terminate().await;
}
