//! The simulator's DL/T 645-2007 meters seen from the wire: the `dlt645`
//! package 3.2.0 from PyPI (a client we did not write) reads them over RTU
//! over TCP and gets exactly [`Simulator::value_at`]; hand-written frames
//! on a raw socket (every checksum worked out by hand in the comments and
//! checked by the test's own byte sum) show the answers, the silence for an
//! unknown address, the error answer for an unknown DI or the `exception`
//! fault, the read-address command on a bus of one meter, a bus that
//! carries Modbus RTU and DL/T 645 requests on one connection, and a DTU
//! that carries DL/T 645. Last, the gateway polls such a mixed bus and
//! stores exactly what the simulator says it served.
//!
//! Byte orders checked against the standard (domain.md §5.1): the meter
//! whose nameplate reads `123456789012` is addressed `12 90 78 56 34 12` on
//! the wire. The `dlt645` package's `set_address` copies the hex digits it
//! is given onto the wire in the order given, so it must be given the
//! **wire order**, `"129078563412"`; given the nameplate digits it asks
//! another meter (`12 34 56 78 90 12`) and gets no answer (tested below). Its
//! read-address command likewise returns the wire order.
//!
//! The meters are those of `sim` (Modbus units 1, 3, 4 here) plus DL/T 645
//! meters with a test profile written in this file; clocks are frozen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use emgate::config::{
    Config, DtuMatch, MeterSource, Parity, RegistrationMode, SerialLine, SimFault, Transport,
};
use emgate::model::{EndpointId, MeterId, ProfileId};
use emgate::profiles::dlt645::Address;
use emgate::sim::{EPOCH, LoadShape, SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::fieldbus_common::{of_meter, reading_lines};
use super::sim::{ACREL_CONST, DTSD_IMPORT, SDM, test_config};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::test_gateway::TestGateway;
use crate::support::{lazy, timed, wait_for};

/// A three-phase DL/T 645 meter's profile with the DIs of the standard's
/// appendix (ours, for these tests; the shipped one is `dlt645_3phase`).
const PROFILE: &str = r#"
protocol = "dlt645"
description = "DL/T 645-2007 three-phase meter, test profile, secondary values x PT/CT"
consumption = "import_kwh"

[[points]]
name = "import_kwh"
di = "00010000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"

[[points]]
name = "import_t1_kwh"
di = "00010100"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"

[[points]]
name = "export_kwh"
di = "00020000"
format = "XXXXXX.XX"
ratio = "pt_ct"
kind = "counter"
unit = "kwh"

[[points]]
name = "voltage_l1_v"
di = "02010100"
format = "XXX.X"
ratio = "pt"
unit = "v"

[[points]]
name = "current_l1_a"
di = "02020100"
format = "XXX.XXX"
signed = true
ratio = "ct"
unit = "a"

[[points]]
name = "power_kw"
di = "02030000"
format = "XX.XXXX"
signed = true
ratio = "pt_ct"
unit = "kw"

[[points]]
name = "power_factor"
di = "02060000"
format = "X.XXX"
signed = true
unit = "1"

[[points]]
name = "frequency_hz"
di = "02800002"
format = "XX.XX"
unit = "hz"
"#;

/// Point indices in [`PROFILE`], with their DIs.
const IMPORT: usize = 0;
const TARIFF_1: usize = 1;
const EXPORT: usize = 2;
const POWER: usize = 5;
const DIS: [&str; 8] = [
    "00010000", "00010100", "00020000", "02010100", "02020100", "02030000", "02060000", "02800002",
];
/// Each point's PT/CT factor for a meter of PT 10 × CT 20 (`ratio` in [`PROFILE`]).
const CT_FACTORS: [f64; 8] = [200.0, 200.0, 200.0, 10.0, 20.0, 200.0, 1.0, 1.0];

/// DL/T 645 meter at a constant 36 kW from 1000 kWh at the epoch, nameplate
/// 123456789012, on endpoint 0.
const DLT_CONST: MeterId = MeterId(3);
/// DL/T 645 meter behind PT 10 × CT 20, hashed load, nameplate 220811000157, on endpoint 0.
const DLT_CT: MeterId = MeterId(4);
/// The one DL/T 645 meter on endpoint 1, nameplate 350802000001.
const DLT_ALONE: MeterId = MeterId(5);

/// `123456789012` on the wire, written out by hand: lowest byte first.
const ADDRESS: [u8; 6] = [0x12, 0x90, 0x78, 0x56, 0x34, 0x12];
/// Read two holding registers from address 0 of unit 1 (the published example frame).
const READ_1_HOLDING_0_2: [u8; 8] = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];

/// Read forward active energy (DI 00 01 00 00) from 123456789012:
/// `FE×4 68 12 90 78 56 34 12 68 11 04 33 33 34 33 CS 16`, DI sent DI0
/// first +0x33. CS: 68+12+90+78+56+34+12+68 = 646, +11+04 = 667,
/// +33+33+34+33 = 872; 872 mod 256 = 104 = 68.
const READ_ENERGY: [u8; 20] = [
    0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04, 0x33, 0x33,
    0x34, 0x33, 0x68, 0x16,
];
/// Its answer at EPOCH + 1 h: 1036.00 kWh = `00 36 10 00` (lowest byte
/// first), +0x33 `33 69 43 33`, after the DI; L = 8. CS: 646 + 91+08 = 799,
/// + DI 205 = 1004, + value 274 = 1278; 1278 mod 256 = 254 = FE. Two wake-up bytes first.
const ENERGY_ANSWER: [u8; 22] = [
    0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x08, 0x33, 0x33, 0x34, 0x33,
    0x33, 0x69, 0x43, 0x33, 0xFE, 0x16,
];

/// DL/T 645 checksum, written here: the byte sum from the first 68 to the byte before CS.
fn cs(frame: &[u8]) -> u8 {
    let start = frame
        .iter()
        .position(|b| *b == 0x68)
        .expect("a frame start");
    let n = frame.len();
    frame[start..n - 2]
        .iter()
        .fold(0u8, |s, b| s.wrapping_add(*b))
}

/// CRC-16/MODBUS bit by bit (preset 0xFFFF, reflected polynomial 0xA001), low byte first.
fn crc(bytes: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

#[test]
fn hand_worked_checksums_are_the_byte_sums() {
    for frame in [&READ_ENERGY[..], &ENERGY_ANSWER] {
        assert_eq!(cs(frame), frame[frame.len() - 2], "{frame:02X?}");
    }
    assert_eq!(crc(&READ_1_HOLDING_0_2[..6]), [0xC4, 0x0B]);
    assert_eq!(
        Address::from_nameplate("123456789012").map(|a| a.0),
        Some(ADDRESS)
    );
}

/// 9600 baud 8N1: the line behind a serial server or a DTU.
fn line() -> SerialLine {
    SerialLine {
        baud: 9600,
        parity: Parity::None,
        data_bits: 8,
        stop_bits: 1,
        turnaround: Duration::ZERO,
    }
}

/// `sim`'s three Modbus meters (DTSD at a constant load on unit 1, SDM on
/// unit 4, DTSD behind CTs on unit 3) and two DL/T 645 meters on endpoint
/// 0, one DL/T 645 meter alone on endpoint 1; both endpoints on `transport`.
fn config(transport: &Transport) -> Config {
    let mut c = test_config(Vec::new());
    c.endpoints[0].transport = transport.clone();
    c.endpoints[0].line = Some(line());
    let mut alone = c.endpoints[0].clone();
    "alone".clone_into(&mut alone.id);
    c.endpoints.push(alone);
    for (meter, unit_id) in [(SDM, 4), (ACREL_CONST, 1)] {
        c.meters[meter.0 as usize].source = MeterSource::Modbus {
            endpoint: EndpointId(0),
            unit_id,
        };
    }
    let profile = emgate::profiles::load::load_profile(
        "dlt645_test",
        Path::new("tests/integration/sim_dlt645.rs"),
        PROFILE,
    )
    .unwrap_or_else(|e| panic!("test profile: {e:?}"));
    c.profiles.push(profile);
    let profile = ProfileId((c.profiles.len() - 1) as u32);
    for (id, nameplate, endpoint, pt, ct) in [
        ("dlt-const", "123456789012", 0, 1.0, 1.0),
        ("dlt-ct", "220811000157", 0, 10.0, 20.0),
        ("dlt-alone", "350802000001", 1, 1.0, 1.0),
    ] {
        let mut m = c.meters[0].clone();
        id.clone_into(&mut m.id);
        m.profile = profile;
        m.pt = pt;
        m.ct = ct;
        m.source = MeterSource::Dlt645 {
            endpoint: EndpointId(endpoint),
            address: Address::from_nameplate(nameplate).expect("address"),
        };
        c.meters.push(m);
    }
    c
}

fn rtu_over_tcp() -> Transport {
    Transport::RtuOverTcp {
        host: "127.0.0.1".to_owned(),
        port: 0,
    }
}

/// A running simulator, stopped when dropped.
struct Running {
    sim: Simulator,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts `config` with the DTSD and the first DL/T 645 meter at a constant
/// 36 kW from 1000 kWh at the epoch, the clock frozen at `t`.
async fn start(config: &Config, t: f64) -> Running {
    let shutdown = CancellationToken::new();
    let options = SimOptions {
        loads: vec![
            (ACREL_CONST, LoadShape::constant(36.0, 1000.0)),
            (DLT_CONST, LoadShape::constant(36.0, 1000.0)),
        ],
        frozen_time: Some(t),
        ..SimOptions::default()
    };
    let sim = Simulator::start_with(config, shutdown.clone(), options)
        .await
        .expect("simulator starts");
    Running { sim, shutdown }
}

/// Exactly `n` bytes from `stream` within `within`.
async fn read_n(stream: &mut TcpStream, n: usize, within: Duration, what: &str) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(within, stream.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: no {n} bytes within {within:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    buf
}

/// Asserts that nothing arrives on `stream` for `quiet`.
async fn assert_silent(stream: &mut TcpStream, quiet: Duration, what: &str) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
        Err(_) => {}
        Ok(Ok(n)) => panic!("{what}: expected silence, got {:02X?}", &buf[..n]),
        Ok(Err(e)) => panic!("{what}: expected silence, got error {e}"),
    }
}

/// Writes `request` and reads `n` answer bytes.
async fn ask(s: &mut TcpStream, request: &[u8], n: usize, what: &str) -> Vec<u8> {
    s.write_all(request).await.expect("write");
    read_n(s, n, Duration::from_secs(2), what).await
}

/// The interpreter with the `dlt645` package: `EMGATE_PYTHON`, else the
/// repository's `.venv`; a missing one fails and says to run `scripts/test`.
fn python() -> PathBuf {
    let path = std::env::var_os("EMGATE_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "python interpreter {} not found; the dlt645 package is not installed: run scripts/test (or set EMGATE_PYTHON)",
        path.display()
    );
    path
}

/// Runs `tests/peers/dlt645_read.py` with `spec` (its `host` and `port`
/// from `addr`) and returns its JSON answer.
async fn dlt645_read(addr: SocketAddr, mut spec: serde_json::Value) -> serde_json::Value {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dlt645_read.py");
    spec["host"] = addr.ip().to_string().into();
    spec["port"] = addr.port().into();
    // The simulator runs on this runtime: the child is waited for elsewhere.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .arg(spec.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", python.display()))
    })
    .await
    .expect("dlt645 client thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dlt645 client failed ({}); if the dlt645 package 3.2.0 is missing, run scripts/test\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!("dlt645 client printed no JSON object ({e}): {stdout}\n{stderr}")
    })
}

/// The values the client read, in the order of [`DIS`].
fn values(got: &serde_json::Value) -> Vec<f64> {
    let reads = got["reads"].as_array().expect("reads");
    assert_eq!(reads.len(), DIS.len(), "{got}");
    reads
        .iter()
        .zip(DIS)
        .map(|(r, di)| {
            assert_eq!(r["di"], di, "{got}");
            r["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("no value for {di}: {got}"))
        })
        .collect()
}

#[tokio::test]
async fn the_dlt645_package_reads_exactly_what_value_at_says() {
    let t = EPOCH + 3600.5;
    let r = start(&config(&rtu_over_tcp()), t).await;
    let bus = r.sim.local_addr(EndpointId(0)).expect("endpoint 0 listens");

    // The constant meter, addressed in wire order as the library wants it.
    let got = dlt645_read(
        bus,
        serde_json::json!({"timeout": 1.0, "address": "129078563412", "reads": DIS}),
    )
    .await;
    let v = values(&got);
    for (i, di) in DIS.iter().enumerate() {
        assert_eq!(v[i], r.sim.value_at(DLT_CONST, i, t), "DI {di}");
    }
    // By hand: 1000 kWh + 36 kW × 1 h; tariff 1 carries 10 %, reverse 2 %.
    assert_eq!(v[IMPORT], 1036.0);
    assert_eq!(v[TARIFF_1], 103.6);
    assert_eq!(v[EXPORT], 20.72);
    assert_eq!(v[POWER], 36.0);
    // Energy is the integral of power: the register moved 36 kWh in the hour.
    assert_eq!(
        r.sim.consumption(DLT_CONST, EPOCH, EPOCH + 3600.0),
        v[IMPORT] - 1000.0
    );

    // Behind PT 10 × CT 20 the meter reports secondary values; × the ratio is what the gateway stores.
    let got = dlt645_read(
        bus,
        serde_json::json!({"timeout": 1.0, "address": "570100110822", "reads": DIS}),
    )
    .await;
    let v = values(&got);
    for (i, di) in DIS.iter().enumerate() {
        assert_eq!(
            v[i] * CT_FACTORS[i],
            r.sim.value_at(DLT_CT, i, t),
            "DI {di}"
        );
    }
    // The counter is the closed-form integral, rounded down to 0.01 kWh secondary.
    let primary = r.sim.load(DLT_CT).counter(t.floor());
    assert!(v[IMPORT] * 200.0 <= primary && primary - v[IMPORT] * 200.0 < 0.01 * 200.0);

    // The nameplate digits as the address: another meter, nobody answers.
    let got = dlt645_read(
        bus,
        serde_json::json!({"timeout": 0.3, "address": "123456789012", "reads": ["00010000"]}),
    )
    .await;
    assert_eq!(got["reads"][0]["error"], "no value", "{got}");

    // Read address on the bus of one meter: wire order again.
    let alone = r.sim.local_addr(EndpointId(1)).expect("endpoint 1 listens");
    let got = dlt645_read(
        alone,
        serde_json::json!({"timeout": 1.0, "read_address": true, "address": "010000020835",
                           "reads": ["00010000"]}),
    )
    .await;
    assert_eq!(got["address"], "010000020835", "{got}");
    assert_eq!(
        got["reads"][0]["value"].as_f64(),
        Some(r.sim.value_at(DLT_ALONE, IMPORT, t))
    );
    // Modbus meters on the bus were not asked; every DL/T 645 read was answered.
    assert_eq!(r.sim.requests_served(), 2 * 8 + 2);
}

#[tokio::test]
async fn hand_written_frames_answers_silence_and_errors() {
    let t = EPOCH + 3600.5;
    let r = start(&config(&rtu_over_tcp()), t).await;
    let bus = r.sim.local_addr(EndpointId(0)).expect("endpoint 0 listens");
    let mut s = TcpStream::connect(bus).await.expect("connect");

    assert_eq!(ask(&mut s, &READ_ENERGY, 22, "energy").await, ENERGY_ANSWER);
    assert_eq!(r.sim.value_at(DLT_CONST, IMPORT, t), 1036.0);

    // Meter 000000000001 is not on the bus: silence. Address `01 00 00 00 00 00`;
    // CS: 68+01+68 = 209, +11+04 = 230, +205 = 435; 435 mod 256 = B3.
    let nobody = [
        0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x11, 0x04, 0x33,
        0x33, 0x34, 0x33, 0xB3, 0x16,
    ];
    assert_eq!(cs(&nobody), 0xB3);
    s.write_all(&nobody).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "unknown address").await;
    // The wildcard with two DL/T 645 meters on the bus: silence too (a collision).
    // `AA`×6 sums to 1020: 104+1020+104 (the two 68) +17+4 (11 04) +205 = 1454;
    // 1454 mod 256 = 174 = AE.
    let wildcard = [
        0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x11, 0x04, 0x33, 0x33, 0x34, 0x33, 0xAE,
        0x16,
    ];
    assert_eq!(cs(&wildcard), 0xAE);
    s.write_all(&wildcard).await.expect("write");
    assert_silent(
        &mut s,
        Duration::from_millis(300),
        "wildcard on a bus of two",
    )
    .await;

    // DI 04 00 04 01 (the meter's address parameter) is not in the profile:
    // request DI `01 04 00 04` +33 = `34 37 33 37`; CS 667 + 213 = 880 → 70.
    // Answer D1, L 1, error 02 (no requested data) +33 = 35;
    // CS 646 + D1 + 01 + 35 = 909 → 8D.
    let unknown_di = [
        0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04, 0x34,
        0x37, 0x33, 0x37, 0x70, 0x16,
    ];
    let no_data = [
        0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0xD1, 0x01, 0x35, 0x8D, 0x16,
    ];
    assert_eq!((cs(&unknown_di), cs(&no_data)), (0x70, 0x8D));
    assert_eq!(ask(&mut s, &unknown_di, 15, "unknown DI").await, no_data);

    // A bad checksum is no request: silence.
    let mut bad = READ_ENERGY;
    bad[18] ^= 0x01;
    s.write_all(&bad).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "bad checksum").await;

    // Faults: `exception` answers D1 with 01 (other) +33 = 34;
    // CS 646 + D1 + 01 + 34 = 908 → 8C. `no_response` is silence.
    r.sim.set_fault(DLT_CONST, Some(SimFault::Exception));
    let other = [
        0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0xD1, 0x01, 0x34, 0x8C, 0x16,
    ];
    assert_eq!(cs(&other), 0x8C);
    assert_eq!(ask(&mut s, &READ_ENERGY, 15, "exception").await, other);
    r.sim.set_fault(DLT_CONST, Some(SimFault::NoResponse));
    s.write_all(&READ_ENERGY).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "no_response").await;
    // `sentinel`: the value bytes are FF before +0x33, 32 on the wire: not BCD.
    r.sim.set_fault(DLT_CONST, Some(SimFault::Sentinel));
    let answer = ask(&mut s, &READ_ENERGY, 22, "sentinel").await;
    assert_eq!(answer[16..20], [0x32; 4]);
    assert_eq!(cs(&answer), answer[20]);
    r.sim.set_fault(DLT_CONST, None);
    assert_eq!(
        ask(&mut s, &READ_ENERGY, 22, "cleared").await,
        ENERGY_ANSWER
    );
    assert_eq!(r.sim.requests_served(), 5);

    // Read address (13) to the wildcard on the bus of one meter:
    // CS 68 + 1020 + 68 + 13 + 00 = 1247 → DF. The answer 93, L 6, the
    // address 350802000001 = `01 00 00 02 08 35` +33 = `34 33 33 35 3B 68`;
    // CS 68 + (01+00+00+02+08+35 = 64) + 68 + 93 + 06 + 370 = 795 → 1B.
    let alone = r.sim.local_addr(EndpointId(1)).expect("endpoint 1 listens");
    let mut s = TcpStream::connect(alone).await.expect("connect");
    let read_address = [
        0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x13, 0x00, 0xDF,
        0x16,
    ];
    let address = [
        0xFE, 0xFE, 0x68, 0x01, 0x00, 0x00, 0x02, 0x08, 0x35, 0x68, 0x93, 0x06, 0x34, 0x33, 0x33,
        0x35, 0x3B, 0x68, 0x1B, 0x16,
    ];
    assert_eq!((cs(&read_address), cs(&address)), (0xDF, 0x1B));
    assert_eq!(
        ask(&mut s, &read_address, 20, "read address").await,
        address
    );
}

/// The answer of unit 1 to [`READ_1_HOLDING_0_2`] at `EPOCH + 1 h`:
/// 1036 kWh = 103600 × 0.01 = 0x0001_94B0.
fn total_kwh_answer() -> Vec<u8> {
    let body = [0x01, 0x03, 0x04, 0x00, 0x01, 0x94, 0xB0];
    [&body[..], &crc(&body)].concat()
}

#[tokio::test]
async fn one_connection_carries_both_protocols() {
    let t = EPOCH + 3600.5;
    let r = start(&config(&rtu_over_tcp()), t).await;
    let bus = r.sim.local_addr(EndpointId(0)).expect("endpoint 0 listens");
    let mut s = TcpStream::connect(bus).await.expect("connect");
    let modbus = total_kwh_answer();

    // One request at a time, alternating, as the gateway's one conversation per bus does.
    for round in 0..2 {
        assert_eq!(
            ask(&mut s, &READ_1_HOLDING_0_2, 9, "modbus").await,
            modbus,
            "{round}"
        );
        assert_eq!(
            ask(&mut s, &READ_ENERGY, 22, "dlt645").await,
            ENERGY_ANSWER,
            "{round}"
        );
    }
    // Both kinds in one segment, garbage between: both answers, in order.
    let bytes = [
        &READ_ENERGY[..],
        &[0x00, 0x68, 0x42],
        &READ_1_HOLDING_0_2,
        &READ_ENERGY,
    ]
    .concat();
    let want = [&ENERGY_ANSWER[..], &modbus, &ENERGY_ANSWER].concat();
    assert_eq!(ask(&mut s, &bytes, want.len(), "mixed segment").await, want);
    // A DL/T 645 request split across segments, a Modbus one right after it.
    s.write_all(&READ_ENERGY[..9]).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(200), "half a frame").await;
    let rest = [&READ_ENERGY[9..], &READ_1_HOLDING_0_2].concat();
    let want = [&ENERGY_ANSWER[..], &modbus].concat();
    assert_eq!(ask(&mut s, &rest, want.len(), "rest").await, want);
    // Both protocols give the same physics: DTSD and DL/T 645 at the same load.
    assert_eq!(
        r.sim.value_at(ACREL_CONST, DTSD_IMPORT, t),
        r.sim.value_at(DLT_CONST, IMPORT, t)
    );
    assert_eq!(r.sim.requests_served(), 4 + 3 + 2);
}

#[tokio::test]
async fn a_dtu_carries_dlt645_meters() {
    const REGISTRATION: &[u8] = b"865123456789012";
    let gateway = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut c = config(&Transport::Dtu(DtuMatch {
        registration: REGISTRATION.to_vec(),
        mode: RegistrationMode::EveryPacket,
        heartbeat: None,
    }));
    // Endpoint 1 dials in too, with its own registration.
    c.endpoints[1].transport = Transport::Dtu(DtuMatch {
        registration: b"alone".to_vec(),
        mode: RegistrationMode::Connect,
        heartbeat: None,
    });
    c.dtu.listen = gateway.local_addr().expect("addr");
    let r = start(&c, EPOCH + 3600.5).await;

    // Two DTUs dial; tell them apart by their registration.
    let mut ours = None;
    for _ in 0..2 {
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), gateway.accept())
            .await
            .expect("a DTU dials within 5 s")
            .expect("accept");
        let first = read_n(&mut s, 5, Duration::from_secs(2), "registration").await;
        if first == REGISTRATION[..5] {
            let rest = read_n(
                &mut s,
                REGISTRATION.len() - 5,
                Duration::from_secs(2),
                "rest",
            )
            .await;
            assert_eq!([first, rest].concat(), REGISTRATION);
            ours = Some(s);
        } else {
            assert_eq!(first, b"alone");
        }
    }
    let mut s = ours.expect("the DTU of endpoint 0 dialled");
    // every_packet: the registration in front of each answer, DL/T 645 and Modbus alike.
    let want = [REGISTRATION, &ENERGY_ANSWER].concat();
    assert_eq!(
        ask(&mut s, &READ_ENERGY, want.len(), "dlt645 via DTU").await,
        want
    );
    let want = [REGISTRATION, &total_kwh_answer()].concat();
    assert_eq!(
        ask(&mut s, &READ_1_HOLDING_0_2, want.len(), "modbus via DTU").await,
        want
    );
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 1);
    assert_eq!(r.sim.dtu_connects(EndpointId(1)), 1);
}

/// The gateway on a serial server's bus with a DL/T 645 meter (behind PT 10
/// × CT 20) and a Modbus RTU water meter, polled every second: every value
/// it stores is the simulator's at the reading's slot, to the bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_stores_exactly_what_the_simulator_served() {
    // Each poll must be answered within its 1 s step.
    let _timed = timed().await;
    let site = format!(
        "{}\n[[meters]]\nid = \"in1\"\nenergy = \"electricity\"\nlevel = 1\n\
         profile = \"dlt645_test\"\nendpoint = \"bus\"\naddress = \"123456789012\"\n\
         pt = 10.0\nct = 20.0\npoll_interval_secs = 1\n",
        Site::new("s", "S").meter(modbus("w1", "water", "water_meter", "bus", 1))
    );
    let toml = GatewayToml::new("dlt645-e2e")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .endpoint(
            "bus",
            "transport = \"rtu_over_tcp\"\nbaud = 9600\ntimeout_ms = 500",
        )
        .profile("dlt645_test", PROFILE)
        .site("s.toml", site);
    let gw = TestGateway::start(&toml).await;
    let data = gw.files.data_dir();
    let what = lazy(|| format!("3 good readings of each meter in {}", data.display()));
    wait_for(&what, Duration::from_secs(30), async || {
        let lines = reading_lines(&data);
        ["in1", "w1"]
            .iter()
            .all(|m| of_meter(&lines, m).iter().filter(|l| l.q() == 0).count() >= 3)
    })
    .await;
    let lines = reading_lines(&data);
    let mut compared = 0;
    for (i, m) in gw.config.meters.iter().enumerate() {
        let id = MeterId(i as u32);
        for line in of_meter(&lines, &m.id) {
            assert_eq!(line.q(), 0, "{}", line.text);
            for (p, point) in gw.config.profile_of(id).points.iter().enumerate() {
                #[allow(clippy::cast_precision_loss)]
                let want = gw.sim.value_at(id, p, line.slot as f64);
                assert_eq!(
                    line.value(&point.name),
                    Some(want),
                    "{}: {}",
                    point.name,
                    line.text
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 3 * 8, "{compared} values compared");
}
