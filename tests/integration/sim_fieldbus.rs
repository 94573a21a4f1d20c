//! The simulator on field buses, seen from the wire: RTU frames over TCP
//! read by pymodbus 3.16.1 (a client we did not write), a dial-in DTU
//! received by a plain `TcpListener` playing the gateway (registration,
//! `every_packet` prefixes, heartbeats, redials), and the silence of a bus
//! for a unit nobody has. Request frames are written out by hand and every
//! CRC is checked with a bit-by-bit CRC-16 written here from the
//! specification, not with emgate's.
//!
//! The meters are those of `sim` (`super::sim::test_config`); only the
//! endpoint's transport changes. Clocks are frozen where words are compared.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use emgate::config::{
    Config, DtuMatch, MeterSource, Parity, RegistrationMode, SerialLine, SimFault, Transport,
};
use emgate::model::EndpointId;
use emgate::sim::{EPOCH, LoadShape, SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::sim::{
    ACREL_CONST, ACREL_CT, DTSD_IMPORT, SDM, SDM_IMPORT, f32_of, test_config, u32_of,
};

/// Point index of `total_kwh` in the DTSD1352 test profile.
const DTSD_TOTAL: usize = 0;
/// What the DTU sends first: an IMEI-like registration.
const REGISTRATION: &[u8] = b"865123456789012";
/// A USR DTU's factory heartbeat, "www.usr.cn".
const HEARTBEAT: &[u8] = &[0x77, 0x77, 0x77, 0x2E, 0x75, 0x73, 0x72, 0x2E, 0x63, 0x6E];
/// Read two holding registers from address 0 of unit 1: the example frame
/// printed in countless Modbus RTU guides, CRC included.
const READ_1_HOLDING_0_2: [u8; 8] = [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B];

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

/// `body` followed by its CRC.
fn framed(body: &[u8]) -> Vec<u8> {
    [body, &crc(body)].concat()
}

/// 9600 baud 8N1, no turnaround: the line behind a serial server or a DTU.
fn line() -> SerialLine {
    SerialLine {
        baud: 9600,
        parity: Parity::None,
        data_bits: 8,
        stop_bits: 1,
        turnaround: Duration::ZERO,
    }
}

/// `sim`'s configuration with endpoint 0 on `transport`; with `dtu_units`,
/// the constant-load DTSD meter moves to unit 1 (and the SDM to unit 4), so
/// the hand-written frame for unit 1 reads it.
fn config(transport: Transport, dtu_units: bool) -> Config {
    let mut c = test_config(Vec::new());
    c.endpoints[0].transport = transport;
    c.endpoints[0].line = Some(line());
    if dtu_units {
        for (meter, unit_id) in [(SDM, 4), (ACREL_CONST, 1)] {
            c.meters[meter.0 as usize].source = MeterSource::Modbus {
                endpoint: EndpointId(0),
                unit_id,
            };
        }
    }
    c
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

/// Starts `config` with the DTSD meter at a constant 36 kW from 1000 kWh at
/// the epoch, the clock frozen at `t`.
async fn start(config: &Config, t: f64) -> Running {
    let shutdown = CancellationToken::new();
    let options = SimOptions {
        loads: vec![(ACREL_CONST, LoadShape::constant(36.0, 1000.0))],
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

/// The answer frame of unit 1 to [`READ_1_HOLDING_0_2`] at `EPOCH + 1 h`:
/// 1000 kWh + 36 kW × 1 h = 1036 kWh = 103600 × 0.01 = 0x0001_94B0.
fn total_kwh_answer() -> Vec<u8> {
    framed(&[0x01, 0x03, 0x04, 0x00, 0x01, 0x94, 0xB0])
}

#[test]
fn hand_written_frames_carry_their_published_crc() {
    // The test's CRC against the published example: it checks the checker.
    assert_eq!(crc(&READ_1_HOLDING_0_2[..6]), [0xC4, 0x0B]);
    // Another published one: read 10 holding registers from 0 of unit 1.
    assert_eq!(
        framed(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]),
        [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]
    );
}

/// The interpreter with pymodbus: `EMGATE_PYTHON`, else the repository's
/// `.venv`; a missing one fails and says to run `scripts/test` (as
/// `support::pymodbus` does for the server peer).
fn python() -> PathBuf {
    let path = std::env::var_os("EMGATE_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "python interpreter {} not found; pymodbus not installed: run scripts/test (or set EMGATE_PYTHON)",
        path.display()
    );
    path
}

/// Runs `tests/peers/pymodbus_read.py` against RTU over TCP at `addr` and
/// returns its JSON answer, one element per read.
async fn pymodbus_read(addr: SocketAddr, reads: serde_json::Value) -> Vec<serde_json::Value> {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pymodbus_read.py");
    let spec = serde_json::json!({
        "host": addr.ip().to_string(),
        "port": addr.port(),
        "framer": "rtu",
        "timeout": 0.5,
        "reads": reads,
    });
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
    .expect("pymodbus client thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pymodbus client failed ({}); if pymodbus 3.16.1 is missing, run scripts/test\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("pymodbus client printed no JSON array ({e}): {stdout}\n{stderr}")
    })
}

fn words(v: &serde_json::Value) -> Vec<u16> {
    v["words"]
        .as_array()
        .unwrap_or_else(|| panic!("expected words, got {v}"))
        .iter()
        .map(|w| {
            w.as_u64()
                .and_then(|w| u16::try_from(w).ok())
                .expect("a word")
        })
        .collect()
}

#[tokio::test]
async fn pymodbus_reads_rtu_over_tcp_exactly() {
    let t = EPOCH + 3600.5;
    let transport = Transport::RtuOverTcp {
        host: "127.0.0.1".to_owned(),
        port: 0,
    };
    let r = start(&config(transport, false), t).await;
    let addr = r
        .sim
        .local_addr(EndpointId(0))
        .expect("rtu_over_tcp listens");
    let got = pymodbus_read(
        addr,
        serde_json::json!([
            {"unit": 2, "table": "holding", "address": 0x000A, "count": 2},
            {"unit": 1, "table": "input", "address": 0x0048, "count": 2},
            {"unit": 3, "table": "holding", "address": 0x000A, "count": 2},
            {"unit": 2, "table": "holding", "address": 0x0200, "count": 4},
            {"unit": 99, "table": "holding", "address": 0x000A, "count": 2},
        ]),
    )
    .await;
    assert_eq!(got.len(), 5, "{got:?}");

    // Hand-computed: 1036 kWh = 103600 × 0.01 kWh.
    let w = words(&got[0]);
    assert_eq!(w, [0x0001, 0x94B0]);
    assert_eq!(
        f64::from(u32_of(&w)) * 0.01,
        r.sim.value_at(ACREL_CONST, DTSD_IMPORT, t)
    );
    // Float map: the f32 the words hold is the served value.
    let w = words(&got[1]);
    assert_eq!(f64::from(f32_of(&w)), r.sim.value_at(SDM, SDM_IMPORT, t));
    // PT 10 × CT 20: raw × 200 × 0.01, as the double nearest the decimal.
    let w = words(&got[2]);
    let want: f64 = format!("{}e-2", u64::from(u32_of(&w)) * 200)
        .parse()
        .expect("decimal");
    assert_eq!(want, r.sim.value_at(ACREL_CT, DTSD_IMPORT, t));
    // No point in the range: exception 02, in RTU framing.
    assert_eq!(got[3], serde_json::json!({"exception": 2}), "{got:?}");
    // Nobody at unit 99 on the bus: no answer, so pymodbus times out.
    assert!(got[4].get("error").is_some(), "expected a timeout: {got:?}");
    assert_eq!(r.sim.requests_served(), 4);
}

#[tokio::test]
async fn rtu_bus_is_silent_for_unknown_units_and_resynchronises() {
    let t = EPOCH + 3600.5;
    let transport = Transport::RtuOverTcp {
        host: "127.0.0.1".to_owned(),
        port: 0,
    };
    let r = start(&config(transport, true), t).await;
    let addr = r
        .sim
        .local_addr(EndpointId(0))
        .expect("rtu_over_tcp listens");
    let mut s = TcpStream::connect(addr).await.expect("connect");

    // Unit 99: nobody on the bus, so nothing comes back.
    s.write_all(&framed(&[0x63, 0x03, 0x00, 0x00, 0x00, 0x02]))
        .await
        .expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "unit 99").await;
    assert_eq!(r.sim.requests_served(), 0);

    // Garbage, then the published example frame: the slave finds the frame.
    let mut bytes = vec![0x00, 0xFF, 0x01, 0x03, 0x7E];
    bytes.extend_from_slice(&READ_1_HOLDING_0_2);
    s.write_all(&bytes).await.expect("write");
    let answer = read_n(&mut s, 9, Duration::from_secs(2), "unit 1").await;
    assert_eq!(answer, total_kwh_answer());
    assert_eq!(
        f64::from(u32_of(&[0x0001, 0x94B0])) * 0.01,
        r.sim.value_at(ACREL_CONST, DTSD_TOTAL, t)
    );

    // A bad CRC is no request: silence.
    let mut bad = READ_1_HOLDING_0_2;
    bad[7] ^= 0x01;
    s.write_all(&bad).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "bad CRC").await;

    // Faults: exception 04 in RTU framing; no_response is silence.
    r.sim.set_fault(ACREL_CONST, Some(SimFault::Exception));
    s.write_all(&READ_1_HOLDING_0_2).await.expect("write");
    let answer = read_n(&mut s, 5, Duration::from_secs(2), "exception").await;
    assert_eq!(answer, framed(&[0x01, 0x83, 0x04]));
    r.sim.set_fault(ACREL_CONST, Some(SimFault::NoResponse));
    s.write_all(&READ_1_HOLDING_0_2).await.expect("write");
    assert_silent(&mut s, Duration::from_millis(300), "no_response").await;
    // Write single register (06) on a known unit: exception 01.
    r.sim.set_fault(ACREL_CONST, None);
    s.write_all(&framed(&[0x01, 0x06, 0x00, 0x00, 0x00, 0x01]))
        .await
        .expect("write");
    let answer = read_n(&mut s, 5, Duration::from_secs(2), "write").await;
    assert_eq!(answer, framed(&[0x01, 0x86, 0x01]));
    assert_eq!(r.sim.requests_served(), 3);
}

/// `config` with endpoint 0 a DTU dialling `listen`.
fn dtu_config(listen: SocketAddr, mode: RegistrationMode, heartbeat_ms: u64) -> Config {
    let dtu = DtuMatch {
        registration: REGISTRATION.to_vec(),
        mode,
        heartbeat: Some(HEARTBEAT.to_vec()),
    };
    let mut c = config(Transport::Dtu(dtu), true);
    c.dtu.listen = listen;
    c.simulator.dtu_heartbeat = Duration::from_millis(heartbeat_ms);
    c
}

/// Accepts the simulated DTU's next connection.
async fn accept(listener: &TcpListener, within: Duration) -> TcpStream {
    let (s, _) = tokio::time::timeout(within, listener.accept())
        .await
        .unwrap_or_else(|_| panic!("the simulated DTU did not dial within {within:?}"))
        .expect("accept");
    s
}

#[tokio::test]
async fn dtu_dials_registers_answers_beats_and_redials() {
    // The gateway is not up yet when the DTU starts: it must keep dialling.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let r = start(
        &dtu_config(listen, RegistrationMode::Connect, 400),
        EPOCH + 3600.5,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 0);
    let gateway = TcpListener::bind(listen).await.expect("bind the gateway");
    let mut s = accept(&gateway, Duration::from_secs(8)).await;

    // The registration, byte for byte, before anything else.
    let first = read_n(
        &mut s,
        REGISTRATION.len(),
        Duration::from_secs(2),
        "registration",
    )
    .await;
    assert_eq!(first, REGISTRATION);
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 1);

    // A hand-written request; the answer with a CRC that fits.
    s.write_all(&READ_1_HOLDING_0_2).await.expect("write");
    let answer = read_n(&mut s, 9, Duration::from_secs(2), "answer").await;
    assert_eq!(answer, total_kwh_answer());
    assert_eq!(crc(&answer[..7]), [answer[7], answer[8]]);

    // No heartbeat before the link has been idle 400 ms, one after.
    assert_silent(&mut s, Duration::from_millis(200), "before the heartbeat").await;
    let beat = read_n(&mut s, HEARTBEAT.len(), Duration::from_secs(3), "heartbeat").await;
    assert_eq!(beat, b"www.usr.cn");
    assert!(r.sim.dtu_heartbeats(EndpointId(0)) >= 1);

    // The gateway drops the connection: the DTU dials again and registers again.
    drop(s);
    let mut s = accept(&gateway, Duration::from_secs(8)).await;
    let first = read_n(
        &mut s,
        REGISTRATION.len(),
        Duration::from_secs(2),
        "re-registration",
    )
    .await;
    assert_eq!(first, REGISTRATION);
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 2);
    s.write_all(&READ_1_HOLDING_0_2).await.expect("write");
    let answer = read_n(&mut s, 9, Duration::from_secs(2), "answer after redial").await;
    assert_eq!(answer, total_kwh_answer());

    // Shutdown: the DTU hangs up and dials no more.
    r.shutdown.cancel();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest))
        .await
        .expect("the DTU closes its connection at shutdown")
        .expect("read to end");
    assert!(
        rest.chunks(HEARTBEAT.len()).all(|c| c == HEARTBEAT),
        "only heartbeats before the close: {rest:02X?}"
    );
    let redial = tokio::time::timeout(Duration::from_millis(600), gateway.accept()).await;
    assert!(redial.is_err(), "no dial after shutdown");
}

#[tokio::test]
async fn dtu_every_packet_prefixes_each_answer_but_not_heartbeats() {
    let gateway = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let listen = gateway.local_addr().expect("addr");
    // Wildcard: the DTU dials loopback.
    let wildcard = SocketAddr::from(([0, 0, 0, 0], listen.port()));
    let r = start(
        &dtu_config(wildcard, RegistrationMode::EveryPacket, 300),
        EPOCH + 3600.5,
    )
    .await;
    let mut s = accept(&gateway, Duration::from_secs(5)).await;
    let first = read_n(
        &mut s,
        REGISTRATION.len(),
        Duration::from_secs(2),
        "registration",
    )
    .await;
    assert_eq!(first, REGISTRATION);

    // Two requests in one segment: two answers, each after the registration.
    s.write_all(&[READ_1_HOLDING_0_2, READ_1_HOLDING_0_2].concat())
        .await
        .expect("write");
    let want = [REGISTRATION, &total_kwh_answer()].concat();
    let got = read_n(&mut s, 2 * want.len(), Duration::from_secs(2), "answers").await;
    assert_eq!(got, [want.clone(), want].concat());

    // The heartbeat comes alone.
    let beat = read_n(&mut s, HEARTBEAT.len(), Duration::from_secs(3), "heartbeat").await;
    assert_eq!(beat, HEARTBEAT);
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 1);
}

/// A serial endpoint cannot be simulated (the gateway owns the device):
/// skipped, with no error and nothing bound.
#[tokio::test]
async fn serial_endpoints_are_skipped() {
    let transport = Transport::Serial {
        device: "/dev/ttyUSB-emgate-test".into(),
    };
    let r = start(&config(transport, false), EPOCH).await;
    assert_eq!(r.sim.local_addr(EndpointId(0)), None);
    assert_eq!(r.sim.dtu_connects(EndpointId(0)), 0);
}

#[test]
fn dtu_heartbeat_ms_is_read_and_checked() {
    let main = |extra: &str| {
        format!(
            "[gateway]\nid = \"gw\"\n\n[[endpoints]]\nid = \"plc1\"\nhost = \"127.0.0.1\"\n{extra}"
        )
    };
    let site = "[site]\nid = \"s\"\nname = \"S\"\n\n[[meters]]\nid = \"w0\"\nenergy = \"water\"\n\
                level = 1\nprofile = \"water_meter\"\nendpoint = \"plc1\"\nunit_id = 1\n";
    let load = |extra: &str| {
        emgate::config::from_parts(
            &main(extra),
            &[("s.toml", site)],
            emgate::profiles::load::builtin(),
        )
    };
    let c = load("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.simulator.dtu_heartbeat, Duration::from_secs(30));
    let c = load("\n[simulator]\ntime_step_ms = 500\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.simulator.dtu_heartbeat, Duration::from_secs(30));
    let c = load("\n[simulator]\ndtu_heartbeat_ms = 5000\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.simulator.dtu_heartbeat, Duration::from_secs(5));
    let err = load("\n[simulator]\ndtu_heartbeat_ms = 0\n")
        .expect_err("0 ms is refused")
        .to_string();
    assert!(
        err.contains("simulator.dtu_heartbeat_ms: 0 is too small; the minimum is 1"),
        "{err}"
    );
}
