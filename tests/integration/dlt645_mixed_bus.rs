//! A mixed bus: Modbus RTU and DL/T 645-2007 meters on one serial line (a
//! `socat` pty pair), read by one `transport = "serial"` endpoint. The bus
//! is `tests/peers/mixed_bus.py`, one process on the other pty end (two
//! processes cannot both own one): its Modbus side is pymodbus 3.16.1's
//! framer, decoder and simulator datastore, its DL/T 645 side the `dlt645`
//! package's frame parser and `MeterServerService`, so neither protocol is
//! answered by code of ours. It logs every request with the time its first
//! byte arrived, the time its answer was written, and how many bytes came
//! while that answer was outstanding (it answers 20 ms after a request,
//! a DL/T 645 meter's reply delay, leaving a master that does not wait
//! room to talk over it).
//!
//! Both protocols' values must be exact, and requests must never
//! interleave: no byte arrives while an answer is outstanding, and each
//! request starts after the previous answer was written. A second test
//! talks over an answer on purpose, so the check is seen to fail.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::dlt645_adversarial::dlt645_meter;
use super::fieldbus_common::{assert_canonical, of_meter, profile_toml, reading_lines};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::peer::{Peer, PeerKind};
use crate::support::pymodbus::{
    DTSD1352_POINTS, PeerDevice, SDM630_POINTS, dtsd1352_device, dtsd1352_profile, python,
    sdm630_device, sdm630_profile,
};
use crate::support::raw_dlt645::wire_address;
use crate::support::socat::PtyPair;
use crate::support::test_gateway::InProcess;
use crate::support::{lazy, timed, wait_for};

/// The DL/T 645 meters' profile: energy, voltage, and a signed current
/// and power, four DIs in four formats.
const DLT_PROFILE: &str = r#"protocol = "dlt645"
description = "four DIs (mixed bus)"

[[points]]
name = "import_kwh"
di = "00010000"
format = "XXXXXX.XX"
kind = "counter"
unit = "kwh"

[[points]]
name = "voltage_a_v"
di = "02010100"
format = "XXX.X"
kind = "gauge"
unit = "v"

[[points]]
name = "current_c_a"
di = "02020300"
format = "XXX.XXX"
signed = true
kind = "gauge"
unit = "a"

[[points]]
name = "power_kw"
di = "02030000"
format = "XX.XXXX"
signed = true
kind = "gauge"
unit = "kw"
"#;

/// The DIs of [`DLT_PROFILE`], in its order, with its field names.
const DLT_POINTS: [(&str, &str); 4] = [
    ("import_kwh", "00010000"),
    ("voltage_a_v", "02010100"),
    ("current_c_a", "02020300"),
    ("power_kw", "02030000"),
];

/// The two DL/T 645 meters: nameplate address and the values of
/// [`DLT_POINTS`] as decimal text.
const DLT_METERS: [(&str, &str, [&str; 4]); 2] = [
    (
        "dlt-a",
        "123456789012",
        ["12345.67", "220.1", "-0.321", "-1.2345"],
    ),
    (
        "dlt-b",
        "000000000042",
        ["654321.09", "230.0", "12.5", "79.9999"],
    ),
];

/// The wire digits the library's `set_address` takes (see
/// `tests/peers/dlt645_server.py`).
fn wire_digits(nameplate: &str) -> String {
    wire_address(nameplate)
        .iter()
        .fold(String::new(), |s, b| s + &format!("{b:02X}"))
}

/// `device` as `pymodbus_server.py` (and so `mixed_bus.py`) takes it.
fn device_json(device: &PeerDevice) -> Value {
    let words = |blocks: &[(u16, Vec<u16>)]| -> Vec<Value> {
        blocks
            .iter()
            .map(|(a, w)| serde_json::json!({"address": a, "words": w}))
            .collect()
    };
    assert!(
        device.coils.is_empty() && device.discrete.is_empty(),
        "registers only"
    );
    serde_json::json!({
        "unit": device.unit,
        "holding": words(&device.holding),
        "input": words(&device.input),
    })
}

/// The whole bus: Modbus units 1 (SDM630 floats) and 3 (DTSD1352
/// integers), and the two DL/T 645 meters.
fn spec(path: &Path) -> Value {
    let dlt: Vec<Value> = DLT_METERS
        .iter()
        .map(|(_, nameplate, values)| {
            let values: Vec<(String, f64)> = DLT_POINTS
                .iter()
                .zip(values)
                .map(|((_, di), v)| ((*di).to_owned(), v.parse().expect("decimal")))
                .collect();
            serde_json::json!({"address": wire_digits(nameplate), "values": values})
        })
        .collect();
    serde_json::json!({
        "serial": path.display().to_string(),
        "baudrate": 9600,
        "delay_ms": 20,
        "modbus": [device_json(&sdm630_device(1)), device_json(&dtsd1352_device(3))],
        "dlt645": dlt,
    })
}

/// How to run `tests/peers/mixed_bus.py`.
struct Kind {
    python: PathBuf,
    spec: Value,
    dir: Mutex<Option<PathBuf>>,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "mixed_bus"
    }

    fn ports(&self) -> usize {
        0
    }

    fn command(&self, dir: &Path, _ports: &[u16]) -> Command {
        *self.dir.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.to_owned());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/mixed_bus.py");
        let mut command = Command::new(&self.python);
        command.arg(script).arg(self.spec.to_string());
        command
    }

    fn ready(&self, _ports: &[u16]) -> bool {
        let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        dir.as_ref().is_some_and(|d| {
            std::fs::read_to_string(d.join("mixed_bus.log"))
                .is_ok_and(|log| log.contains("ready serial"))
        })
    }

    fn stop_grace(&self) -> Duration {
        Duration::from_secs(2)
    }
}

/// One request as the bus logged it.
#[derive(Debug, Clone)]
struct Request {
    proto: String,
    who: String,
    what: String,
    arrived: f64,
    answered: Option<f64>,
    pending: u64,
}

/// The running bus; killed when dropped.
struct MixedBus {
    peer: Peer,
}

impl MixedBus {
    fn start(path: &Path) -> MixedBus {
        MixedBus {
            peer: Peer::start(Kind {
                python: python(),
                spec: spec(path),
                dir: Mutex::new(None),
            }),
        }
    }

    /// Every request logged so far, in arrival order.
    fn requests(&self) -> Vec<Request> {
        self.peer
            .log()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                Request {
                    proto: v["proto"].as_str().expect("proto").to_owned(),
                    who: v["who"].as_str().expect("who").to_owned(),
                    what: v["what"].as_str().expect("what").to_owned(),
                    arrived: v["arrived"].as_f64().expect("arrived"),
                    answered: v["answered"].as_f64(),
                    pending: v["pending"].as_u64().expect("pending"),
                }
            })
            .collect()
    }
}

/// The places where `requests` break the one-request-at-a-time rule.
fn interleavings(requests: &[Request]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if r.pending > 0 {
            out.push(format!(
                "#{i} {r:?}: {} bytes came while its answer was outstanding",
                r.pending
            ));
        }
        if let (Some(next), Some(answered)) = (requests.get(i + 1), r.answered)
            && next.arrived < answered
        {
            out.push(format!(
                "#{} {next:?} arrived before #{i} {r:?} was answered",
                i + 1
            ));
        }
    }
    out
}

/// Two Modbus and two DL/T 645 meters on one pty, polled every second by
/// one serial endpoint: every reading exact, every request answered, the
/// protocols taking turns on the line, never talking over an answer.
#[tokio::test]
async fn modbus_and_dlt645_meters_share_one_serial_bus_exactly_and_never_interleave() {
    // An answer later than the 500 ms timeout (a starved peer) would let
    // the gateway move on while it is outstanding: time must be kept.
    let _timed = timed().await;
    let pty = PtyPair::start();
    let bus = MixedBus::start(&pty.a());
    let mut site = Site::new("S1", "mixed bus")
        .meter(modbus("sdm", "electricity", "sdm630", "bus", 1))
        .to_string();
    site.push_str(&dlt645_meter("dlt-a", "dlt_mixed", "bus", DLT_METERS[0].1));
    site.push_str(
        &modbus("acrel", "electricity", "dtsd1352", "bus", 3)
            .level(2)
            .keys("pt = 1.0\nct = 1.0")
            .to_string(),
    );
    site.push_str(&dlt645_meter("dlt-b", "dlt_mixed", "bus", DLT_METERS[1].1));
    let toml = GatewayToml::new("mixed-bus")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .profile("sdm630", &profile_toml(&sdm630_profile()))
        .profile("dtsd1352", &profile_toml(&dtsd1352_profile()))
        .profile("dlt_mixed", DLT_PROFILE)
        .toml(&format!(
            "[[endpoints]]\nid = \"bus\"\ntransport = \"serial\"\ndevice = {}\nbaud = 9600\nparity = \"none\"\ntimeout_ms = 500",
            toml::Value::String(pty.b().display().to_string())
        ))
        .site("s1.toml", format!("{site}\n"));
    let files = toml.write();
    let gw = InProcess::start(Arc::new(files.load()));
    let rounds = 3;
    gw.wait_readings(rounds * 4).await;
    let (_, stats) = gw.stop().await;

    let lines = reading_lines(&files.data_dir());
    assert_eq!(
        lines.len() as u64,
        emgate::telemetry::Stats::get(&stats.readings),
        "every reading is written"
    );
    for line in of_meter(&lines, "sdm") {
        assert_canonical(line, &sdm630_profile(), SDM630_POINTS, 1.0, 1.0);
    }
    for line in of_meter(&lines, "acrel") {
        assert_canonical(line, &dtsd1352_profile(), DTSD1352_POINTS, 1.0, 1.0);
    }
    for (meter, _, values) in DLT_METERS {
        let of = of_meter(&lines, meter);
        assert!(
            of.len() as u64 >= rounds - 1,
            "{meter}: {} readings",
            of.len()
        );
        for line in of {
            assert_eq!(line.q(), 0, "good: {}", line.text);
            for ((name, _), v) in DLT_POINTS.iter().zip(values) {
                let want: f64 = v.parse().expect("decimal");
                assert_eq!(line.value(name), Some(want), "{name}: {}", line.text);
            }
        }
    }
    for meter in ["sdm", "acrel"] {
        assert!(
            of_meter(&lines, meter).len() as u64 >= rounds - 1,
            "{meter} read"
        );
    }

    let requests = bus.requests();
    let bad = interleavings(&requests);
    assert!(bad.is_empty(), "requests interleaved:\n{}", bad.join("\n"));
    let silent: Vec<_> = requests.iter().filter(|r| r.answered.is_none()).collect();
    assert!(
        silent.is_empty(),
        "requests nobody on the bus has: {silent:?}"
    );
    // Each DL/T 645 meter's DIs, one request each, in profile order.
    for (_, nameplate, _) in DLT_METERS {
        let who = wire_digits(nameplate).to_lowercase();
        let dis: Vec<&str> = requests
            .iter()
            .filter(|r| r.proto == "dlt645" && r.who == who)
            .map(|r| r.what.as_str())
            .collect();
        assert!(dis.len() >= 4 * 2, "{nameplate}: {dis:?}");
        for (i, di) in dis.iter().enumerate() {
            assert_eq!(
                *di,
                DLT_POINTS[i % 4].1,
                "{nameplate}: request {i} of {dis:?}"
            );
        }
    }
    let turns = requests
        .windows(2)
        .filter(|w| w[0].proto != w[1].proto)
        .count();
    assert!(
        turns >= 4,
        "the protocols take turns on the line: {turns} turns in {requests:?}"
    );
}

/// The interleaving check fails when a master talks over an answer: the
/// test itself, in the gateway's place on the pty, writes a Modbus read
/// (`01 03 00 00 00 02 C4 0B`, the published example) and a DL/T 645 read
/// (domain.md §5.1) in one go, without waiting for the first answer.
#[tokio::test]
async fn the_mixed_bus_sees_a_master_that_talks_over_an_answer() {
    let pty = PtyPair::start();
    let bus = MixedBus::start(&pty.a());
    let mut line = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pty.b())
        .expect("open the pty");
    let modbus = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];
    let dlt = [
        0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04, 0x33,
        0x33, 0x34, 0x33, 0x68, 0x16,
    ];
    line.write_all(&[&modbus[..], &dlt[..]].concat())
        .expect("write both requests");
    wait_for(
        lazy(|| format!("two requests logged:\n{}", bus.peer.log())),
        Duration::from_secs(10),
        async || bus.requests().len() >= 2,
    )
    .await;
    let requests = bus.requests();
    assert_eq!(requests[0].proto, "modbus", "{requests:?}");
    assert_eq!(requests[1].proto, "dlt645", "{requests:?}");
    assert_eq!(requests[0].pending, dlt.len() as u64, "{requests:?}");
    assert_eq!(interleavings(&requests).len(), 2, "{requests:?}");
}
