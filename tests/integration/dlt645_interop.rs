//! DL/T 645 against a meter we did not write: the `dlt645` package from
//! PyPI (3.2.0, `tests/peers/dlt645_server.py`) serving one meter over TCP
//! (a serial server's transparent link: `transport = "rtu_over_tcp"`) and
//! on one end of a `socat` pty pair (`transport = "serial"`).
//!
//! * Its answers on the wire, captured with a raw socket, equal frames
//!   worked out by hand from the standard (address lowest byte first, DI0
//!   first, +0x33, byte-sum checksum, BCD lowest byte first with the sign
//!   in the top bit of the last byte): this pins which byte order its
//!   address setter takes (the wire order, see the peer's docstring), how
//!   many wake-up bytes it sends (4) and its format per DI, independently
//!   of emgate's code.
//! * Energy, voltage, current, power, power factor and frequency read
//!   through emgate into a real `influxd` equal the values set on that
//!   server, exactly (the double nearest to the decimal number in the
//!   format's resolution), negative values included.
//! * Its error answers (a DI it does not know; a read addressed to
//!   another meter, which it answers instead of ignoring) land in
//!   `influxd` as `exception` with their decoded reason, never a value.
//! * The shipped profile `dlt645_3phase` reads every one of its DIs from
//!   the library's meter exactly.
//! * `emgate dlt645-address` reads its address (read-address 0x13 to the
//!   wildcard) as the nameplate number.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dlt645_adversarial::dlt645_meter;
use crate::support::config::{GatewayToml, Site};
use crate::support::influxd::Influxd;
use crate::support::peer::{Peer, PeerKind, accepts};
use crate::support::pymodbus::python;
use crate::support::raw_dlt645::wire_address;
use crate::support::socat::PtyPair;
use crate::support::test_gateway::InProcess;

/// The database the tests write into.
const DB: &str = "dlt645";
/// The meter's number as printed on its nameplate.
const NAMEPLATE: &str = "123456789012";
/// What the library's `set_address` must be given for that meter: the six
/// address bytes in wire order, as digits (see `wire_digits`).
const LIBRARY_ADDRESS: &str = "129078563412";

/// One point: field name, DI, format, signed, the value set on the server
/// as decimal text (parsed once for the server's JSON and once for the
/// expected double, so both are the same nearest double), and the unit.
struct Point {
    name: &'static str,
    di: &'static str,
    format: &'static str,
    signed: bool,
    value: &'static str,
    unit: &'static str,
}

const fn point(
    name: &'static str,
    di: &'static str,
    format: &'static str,
    signed: bool,
    value: &'static str,
    unit: &'static str,
) -> Point {
    Point {
        name,
        di,
        format,
        signed,
        value,
        unit,
    }
}

/// The meter's values: DIs and formats from the standard's appendix
/// (domain.md §5.1); signs where the standard signs them, negatives
/// included so the sign bit is exercised in 2- and 3-byte formats.
const POINTS: &[Point] = &[
    point(
        "import_kwh",
        "00010000",
        "XXXXXX.XX",
        false,
        "12345.67",
        "kwh",
    ),
    point("export_kwh", "00020000", "XXXXXX.XX", false, "76.54", "kwh"),
    point("voltage_a_v", "02010100", "XXX.X", false, "220.1", "v"),
    point("voltage_b_v", "02010200", "XXX.X", false, "221.2", "v"),
    point("voltage_c_v", "02010300", "XXX.X", false, "219.9", "v"),
    point("current_a_a", "02020100", "XXX.XXX", true, "5.123", "a"),
    point("current_b_a", "02020200", "XXX.XXX", true, "4.987", "a"),
    point("current_c_a", "02020300", "XXX.XXX", true, "-0.321", "a"),
    point("power_kw", "02030000", "XX.XXXX", true, "-1.2345", "kw"),
    point("power_a_kw", "02030100", "XX.XXXX", true, "0.4321", "kw"),
    point("power_factor", "02060000", "X.XXX", true, "-0.987", "1"),
    point("frequency_hz", "02800002", "XX.XX", false, "49.98", "hz"),
];

/// The profile of [`POINTS`].
fn profile() -> String {
    let mut out =
        String::from("protocol = \"dlt645\"\ndescription = \"dlt645 PyPI server (interop)\"\n");
    for p in POINTS {
        let kind = if p.unit == "kwh" { "counter" } else { "gauge" };
        let _ = write!(
            out,
            "\n[[points]]\nname = \"{}\"\ndi = \"{}\"\nformat = \"{}\"\nsigned = {}\nkind = \"{kind}\"\nunit = \"{}\"\n",
            p.name, p.di, p.format, p.signed, p.unit
        );
    }
    out
}

/// The six wire bytes of a nameplate address as 12 digits, the string the
/// library's `set_address` takes (it sends the string's digit pairs in
/// order).
fn wire_digits(nameplate: &str) -> String {
    wire_address(nameplate)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

/// Where the server serves.
#[derive(Debug, Clone)]
enum Target {
    /// A free loopback TCP port.
    Tcp,
    /// A serial device (a pty end), 8N1.
    Serial(PathBuf),
}

/// How to run `tests/peers/dlt645_server.py`.
struct Kind {
    python: PathBuf,
    target: Target,
    values: Vec<(String, f64)>,
    /// The directory of the current start (its log says "ready serial").
    dir: Mutex<Option<PathBuf>>,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "dlt645_server"
    }

    fn ports(&self) -> usize {
        usize::from(matches!(self.target, Target::Tcp))
    }

    fn command(&self, dir: &Path, ports: &[u16]) -> Command {
        *self.dir.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.to_owned());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dlt645_server.py");
        let mut spec = serde_json::json!({
            "address": LIBRARY_ADDRESS,
            "values": self.values,
        });
        match &self.target {
            Target::Tcp => spec["tcp"] = ports[0].into(),
            Target::Serial(path) => {
                spec["serial"] = path.display().to_string().into();
                spec["baudrate"] = 9600.into();
            }
        }
        let mut command = Command::new(&self.python);
        command.arg(script).arg(spec.to_string());
        command
    }

    fn ready(&self, ports: &[u16]) -> bool {
        match self.target {
            Target::Tcp => accepts(ports),
            Target::Serial(_) => {
                let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
                dir.as_ref().is_some_and(|d| {
                    std::fs::read_to_string(d.join("dlt645_server.log"))
                        .is_ok_and(|log| log.contains("ready serial"))
                })
            }
        }
    }

    fn stop_grace(&self) -> Duration {
        Duration::from_secs(3)
    }
}

/// The `dlt645` PyPI meter server with [`POINTS`]' values at
/// [`NAMEPLATE`]; killed when dropped.
struct Dlt645Server {
    peer: Peer,
}

impl Dlt645Server {
    /// Serves [`POINTS`]' values.
    fn start(target: Target) -> Dlt645Server {
        let values = POINTS
            .iter()
            .map(|p| (p.di.to_owned(), p.value.parse().expect("decimal")))
            .collect();
        Dlt645Server::start_with(target, values)
    }

    /// Serves `values` (DI as written, value).
    fn start_with(target: Target, values: Vec<(String, f64)>) -> Dlt645Server {
        let python = python();
        check_dlt645(&python);
        Dlt645Server {
            peer: Peer::start(Kind {
                python,
                target,
                values,
                dir: Mutex::new(None),
            }),
        }
    }

    fn port(&self) -> u16 {
        self.peer.port(0)
    }
}

/// Fails with an actionable message unless dlt645 3.2.0 imports.
fn check_dlt645(python: &Path) {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; import dlt645; print(m.version('dlt645'))",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", python.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && version.trim() == "3.2.0",
        "the dlt645 package is not installed (need 3.2.0, found {:?}): run scripts/test\n{}",
        version.trim(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `request` and reads one whole answer frame (any number of
/// leading `FE`, then `68 A 68 C L DATA CS 16`).
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    stream.write_all(request).expect("send the request");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let fe = buf.iter().take_while(|&&b| b == 0xFE).count();
        if buf.len() >= fe + 10 && buf.len() >= fe + 12 + usize::from(buf[fe + 9]) {
            return buf;
        }
        assert!(
            Instant::now() < deadline,
            "no whole answer to {request:02X?}: got {buf:02X?}"
        );
        let n = stream.read(&mut chunk).expect("read the answer");
        assert!(n > 0, "closed after {buf:02X?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The library's answers byte for byte, against frames worked out by hand.
///
/// Every request is to meter 123456789012, on the wire `12 90 78 56 34 12`
/// (domain.md §5.1); its header bytes `68 12 90 78 56 34 12 68` sum to 646,
/// `11 04` adds 21, so a request's CS is (667 + its four DI bytes) mod 256;
/// an answer's CS is (646 + C + L + its data bytes) mod 256, all bytes as
/// sent (+0x33).
#[test]
fn the_dlt645_server_answers_as_worked_out_by_hand() {
    assert_eq!(wire_digits(NAMEPLATE), LIBRARY_ADDRESS);
    let server = Dlt645Server::start(Target::Tcp);
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let fe4 = [0xFE, 0xFE, 0xFE, 0xFE];
    let head = [0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68];
    let cases: &[(&str, [u8; 6], &[u8])] = &[
        // Forward active energy 00010000: DI 00 00 01 00 → 33 33 34 33 (sum
        // 205, CS 872 → 68). 12345.67 as XXXXXX.XX: 01234567 → 67 45 23 01
        // → 9A 78 56 34 (sum 412); CS 646 + 0x91 + 8 + 205 + 412 = 1416 → 88.
        (
            "energy",
            [0x11, 0x04, 0x33, 0x33, 0x34, 0x33],
            &[
                0x91, 0x08, 0x33, 0x33, 0x34, 0x33, 0x9A, 0x78, 0x56, 0x34, 0x88,
            ],
        ),
        // Phase A voltage 02010100: 00 01 01 02 → 33 34 34 35 (sum 208, CS
        // 875 → 6B). 220.1 as XXX.X: 2201 → 01 22 → 34 55 (sum 137);
        // CS 646 + 145 + 6 + 208 + 137 = 1142 → 76.
        (
            "voltage",
            [0x11, 0x04, 0x33, 0x34, 0x34, 0x35],
            &[0x91, 0x06, 0x33, 0x34, 0x34, 0x35, 0x34, 0x55, 0x76],
        ),
        // Phase C current 02020300: 00 03 02 02 → 33 36 35 35 (sum 211, CS
        // 878 → 6E). -0.321 as signed XXX.XXX: 000321 → 21 03 00, sign bit
        // on the last byte → 21 03 80 → 54 36 B3 (sum 317);
        // CS 646 + 145 + 7 + 211 + 317 = 1326 → 2E.
        (
            "current",
            [0x11, 0x04, 0x33, 0x36, 0x35, 0x35],
            &[0x91, 0x07, 0x33, 0x36, 0x35, 0x35, 0x54, 0x36, 0xB3, 0x2E],
        ),
        // Total active power 02030000: 00 00 03 02 → 33 33 36 35 (sum 209,
        // CS 876 → 6C). -1.2345 as signed XX.XXXX: 012345 → 45 23 01 →
        // 45 23 81 → 78 56 B4 (sum 386); CS 646 + 145 + 7 + 209 + 386 =
        // 1393 → 71.
        (
            "power",
            [0x11, 0x04, 0x33, 0x33, 0x36, 0x35],
            &[0x91, 0x07, 0x33, 0x33, 0x36, 0x35, 0x78, 0x56, 0xB4, 0x71],
        ),
        // Total power factor 02060000: 00 00 06 02 → 33 33 39 35 (sum 212,
        // CS 879 → 6F). -0.987 as signed X.XXX: 0987 → 87 09 → 87 89 →
        // BA BC (sum 374); CS 646 + 145 + 6 + 212 + 374 = 1383 → 67.
        (
            "power factor",
            [0x11, 0x04, 0x33, 0x33, 0x39, 0x35],
            &[0x91, 0x06, 0x33, 0x33, 0x39, 0x35, 0xBA, 0xBC, 0x67],
        ),
        // Frequency 02800002: 02 00 80 02 → 35 33 B3 35 (sum 336, CS 1003
        // → EB). 49.98 as XX.XX: 4998 → 98 49 → CB 7C (sum 327);
        // CS 646 + 145 + 6 + 336 + 327 = 1460 → B4.
        (
            "frequency",
            [0x11, 0x04, 0x35, 0x33, 0xB3, 0x35],
            &[0x91, 0x06, 0x35, 0x33, 0xB3, 0x35, 0xCB, 0x7C, 0xB4],
        ),
        // A DI it does not know, of the variables class (02FF0000: 00 00
        // FF 02 → 33 33 32 35, sum 205, CS 68): error answer D1, one byte,
        // 0x02 "no data" → 35; CS 646 + 0xD1 + 1 + 0x35 = 909 → 8D.
        (
            "unknown DI",
            [0x11, 0x04, 0x33, 0x33, 0x32, 0x35],
            &[0xD1, 0x01, 0x35, 0x8D],
        ),
    ];
    for (what, tail, answer) in cases {
        let mut request = [&fe4[..], &head[..], &tail[..]].concat();
        let cs = request[4..].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        request.extend_from_slice(&[cs, 0x16]);
        let want = [&fe4[..], &head[..], answer, &[0x16]].concat();
        assert_eq!(
            exchange(&mut s, &request),
            want,
            "{what}: request {request:02X?}"
        );
    }
    // The checksums above by hand, once more from the request bytes: the
    // energy request is the one domain.md §5.1 works out.
    let energy = [
        0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04, 0x33,
        0x33, 0x34, 0x33, 0x68, 0x16,
    ];
    assert_eq!(exchange(&mut s, &energy)[..4], fe4, "four wake-up bytes");

    // The nameplate digits in their printed order (12 34 56 78 90 12 on
    // the wire) are another meter to it: it does not stay silent as a
    // meter on a shared bus must, but answers D1 "other" (0x01 → 34) under
    // that address; CS 646 + 0xD1 + 1 + 0x34 = 908 → 8C.
    let other = [0x68, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x68];
    let mut request = [&fe4[..], &other[..], &[0x11, 0x04, 0x33, 0x33, 0x34, 0x33]].concat();
    let cs = request[4..].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    request.extend_from_slice(&[cs, 0x16]);
    assert_eq!(cs, 0x68, "the same bytes, permuted: the same sum");
    let want = [&fe4[..], &other[..], &[0xD1, 0x01, 0x34, 0x8C, 0x16]].concat();
    assert_eq!(exchange(&mut s, &request), want);

    // The broadcast address 99 99 99 99 99 99 (time sync and freeze only,
    // no answer expected) is answered like its own, under 99…99: header
    // 2 × 0x68 + 6 × 0x99 = 1126, request CS 1126 + 21 + 205 = 1352 → 48;
    // answer CS 1126 + 145 + 8 + 205 + 412 = 1896 → 68.
    let broadcast = [0x68, 0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0x68];
    let read = [0x11, 0x04, 0x33, 0x33, 0x34, 0x33];
    let request = [&fe4[..], &broadcast[..], &read[..], &[0x48, 0x16]].concat();
    let value = [
        0x91, 0x08, 0x33, 0x33, 0x34, 0x33, 0x9A, 0x78, 0x56, 0x34, 0x68, 0x16,
    ];
    let want = [&fe4[..], &broadcast[..], &value[..]].concat();
    assert_eq!(exchange(&mut s, &request), want);

    // Read address (0x13, no data) to the wildcard AA…AA: CS 2 × 0x68 +
    // 6 × 0xAA + 0x13 = 1247 → DF. Answered 0x93 from its own address
    // with that address as data, wire order again, +0x33: 45 C3 AB 89 67
    // 45 (sum 744); CS 646 + 0x93 + 6 + 744 = 1543 → 07.
    let wildcard = [0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68];
    let request = [&fe4[..], &wildcard[..], &[0x13, 0x00, 0xDF, 0x16]].concat();
    let data = [0x93, 0x06, 0x45, 0xC3, 0xAB, 0x89, 0x67, 0x45, 0x07, 0x16];
    let want = [&fe4[..], &head[..], &data[..]].concat();
    assert_eq!(exchange(&mut s, &request), want);
}

/// `emgate dlt645-address` on `endpoint` (an `[[endpoints]]` table with id
/// `bus`): its exit status, stdout and stderr.
fn dlt645_address(endpoint: &str) -> (bool, String, String) {
    let files = GatewayToml::new("dlt645-address")
        .readings_only()
        .toml(endpoint)
        .write();
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .arg("dlt645-address")
        .arg("--config")
        .arg(files.main_file())
        .args(["--endpoint", "bus"])
        .stdin(Stdio::null())
        .output()
        .expect("run emgate dlt645-address");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `emgate dlt645-address` reads the library's meter as its nameplate
/// number, over a serial server's link and on a serial port: the read-
/// address answer carries the address in wire order, and emgate turns it
/// back into the digits printed on the meter.
#[test]
fn emgate_dlt645_address_reads_the_library_meter_as_its_nameplate() {
    let server = Dlt645Server::start(Target::Tcp);
    let (ok, stdout, stderr) = dlt645_address(&format!(
        "[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\ntimeout_ms = 500",
        server.port()
    ));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("{NAMEPLATE}\n"), "{stderr}");

    let pty = PtyPair::start();
    let _server = Dlt645Server::start(Target::Serial(pty.a()));
    let (ok, stdout, stderr) = dlt645_address(&format!(
        "[[endpoints]]\nid = \"bus\"\ntransport = \"serial\"\ndevice = {}\nbaud = 9600\nparity = \"none\"\ntimeout_ms = 500",
        toml::Value::String(pty.b().display().to_string())
    ));
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("{NAMEPLATE}\n"), "{stderr}");
}

/// The value emgate must write for `p`: the double nearest to its decimal
/// text (Rust parses correctly rounded; emgate divides the BCD integer by
/// a power of ten, also correctly rounded).
fn expected(p: &Point) -> f64 {
    p.value.parse().expect("decimal")
}

/// Runs the gateway on `endpoint` (an `[[endpoints]]` table with id
/// `bus`) with meter `m1` at [`NAMEPLATE`] plus `more` site text, into
/// `influx`, until `rounds` readings per meter were written.
async fn run_into_influx(influx: &Influxd, endpoint: &str, more: &str, meters: u64) {
    let site = format!(
        "{}{}{more}",
        Site::new("S1", "DL/T 645 interop"),
        dlt645_meter("m1", "dlt_interop", "bus", NAMEPLATE)
    );
    let toml = GatewayToml::new("dlt645-interop")
        .readings_only()
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 1\nflush_interval_ms = 100",
        )
        .profile("dlt_interop", &profile())
        .profile(
            "dlt_unknown",
            "protocol = \"dlt645\"\ndescription = \"a DI the server does not know\"\n\n[[points]]\nname = \"mystery_v\"\ndi = \"02FF0000\"\nformat = \"XXX.X\"\nkind = \"gauge\"\nunit = \"v\"\n",
        )
        .toml(endpoint)
        .site("s1.toml", site);
    let files = toml.write();
    let gw = InProcess::start(Arc::new(files.load()));
    gw.wait_readings(3 * meters).await;
    let (summary, _) = gw.stop().await;
    assert_eq!(
        summary.lines_rejected + summary.lines_left_in_spool,
        0,
        "{summary:?}"
    );
}

/// Every row of `m1` in `influx` is good and carries exactly [`POINTS`].
async fn assert_exact(influx: &Influxd) {
    let table = influx
        .table(DB, "SELECT * FROM reading WHERE meter = 'm1'")
        .await;
    assert!(table.rows.len() >= 3, "{} rows", table.rows.len());
    for row in &table.rows {
        assert_eq!(row[table.col("q")], Value::from(0), "good: {row:?}");
        for p in POINTS {
            assert_eq!(
                row[table.col(p.name)].as_f64(),
                Some(expected(p)),
                "{} ({} {}): {row:?}",
                p.name,
                p.di,
                p.format
            );
        }
    }
}

/// RTU over TCP: the library's `TcpServer` as a serial server's
/// transparent link.
#[tokio::test]
async fn dlt645_server_over_rtu_over_tcp_lands_in_influxdb_exactly() {
    let influx = Influxd::with_database(DB).await;
    let server = Dlt645Server::start(Target::Tcp);
    let endpoint = format!(
        "[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\nbaud = 2400\nparity = \"even\"\ntimeout_ms = 500",
        server.port()
    );
    run_into_influx(&influx, &endpoint, "", 1).await;
    assert_exact(&influx).await;
}

/// A serial port: the library's `RtuServer` on one end of a pty pair, the
/// gateway's serial port on the other (8N1: a pty refuses parity E).
#[tokio::test]
async fn dlt645_server_on_a_serial_pty_lands_in_influxdb_exactly() {
    let influx = Influxd::with_database(DB).await;
    let pty = PtyPair::start();
    let _server = Dlt645Server::start(Target::Serial(pty.a()));
    let endpoint = format!(
        "[[endpoints]]\nid = \"bus\"\ntransport = \"serial\"\ndevice = {}\nbaud = 9600\nparity = \"none\"\ntimeout_ms = 500",
        toml::Value::String(pty.b().display().to_string())
    );
    run_into_influx(&influx, &endpoint, "", 1).await;
    assert_exact(&influx).await;
}

/// The library's error answers reach `influxd` as `exception` with their
/// reason and no value: a DI it does not know (`dlt645:no_data`), and a
/// meter at another address, which it answers with error byte 0x01
/// (`dlt645:other`) where a real meter would stay silent. The good meter
/// on the same bus keeps its exact values meanwhile.
#[tokio::test]
async fn the_dlt645_servers_error_answers_land_in_influxdb_as_exceptions() {
    let influx = Influxd::with_database(DB).await;
    let server = Dlt645Server::start(Target::Tcp);
    let endpoint = format!(
        "[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\ntimeout_ms = 500",
        server.port()
    );
    let more = format!(
        "{}{}",
        dlt645_meter("unknown-di", "dlt_unknown", "bus", NAMEPLATE),
        dlt645_meter("stranger", "dlt_interop", "bus", "000000000042"),
    );
    run_into_influx(&influx, &endpoint, &more, 3).await;
    assert_exact(&influx).await;

    let table = influx
        .table(DB, "SELECT * FROM reading WHERE meter = 'unknown-di'")
        .await;
    assert!(table.rows.len() >= 3, "{} rows", table.rows.len());
    for row in &table.rows {
        assert_eq!(row[table.col("q")], Value::from(2), "{row:?}");
        assert_eq!(
            row[table.col("q_detail")],
            Value::from("mystery_v:exception:dlt645:no_data"),
            "{row:?}"
        );
    }
    // Never a value: the field was never written at all.
    assert!(
        !table.columns.iter().any(|c| c == "mystery_v"),
        "{:?}",
        table.columns
    );

    let table = influx
        .table(DB, "SELECT * FROM reading WHERE meter = 'stranger'")
        .await;
    assert!(table.rows.len() >= 3, "{} rows", table.rows.len());
    let want = POINTS
        .iter()
        .map(|p| format!("{}:exception:dlt645:other", p.name))
        .collect::<Vec<_>>()
        .join(",");
    for row in &table.rows {
        assert_eq!(row[table.col("q")], Value::from(2), "{row:?}");
        assert_eq!(row[table.col("q_detail")], Value::from(want.as_str()));
        for p in POINTS {
            assert_eq!(row[table.col(p.name)], Value::Null, "{}: {row:?}", p.name);
        }
    }
}

/// A value in `format` as decimal text, varying with `i`: digits
/// from a multiple of 123456789 below the library's range for the DI
/// (top digit at most 6, so a sign bit fits; below 1 where all digits but
/// one are decimals: a power factor), negative for odd `i` in a signed
/// format.
fn value_text(i: usize, format: emgate::profiles::dlt645::Format) -> String {
    let digits = 2 * u32::from(format.bytes);
    let decimals = u32::from(format.decimals);
    let limit = if decimals + 1 == digits {
        10u64.pow(digits - 1)
    } else {
        7 * 10u64.pow(digits - 1)
    };
    let n = (123_456_789 * (i as u64 + 1)) % limit;
    let sign = if format.signed && i % 2 == 1 { "-" } else { "" };
    let scale = 10u64.pow(decimals);
    if decimals == 0 {
        format!("{sign}{n}")
    } else {
        format!(
            "{sign}{}.{:0width$}",
            n / scale,
            n % scale,
            width = decimals as usize
        )
    }
}

/// The shipped profile `dlt645_3phase` against the library's meter: every
/// DI of the profile is one the library knows, in the format it serves,
/// and every value (inside the profile's plausible ranges, negative ones
/// among them) lands in `influxd` exactly.
#[tokio::test]
async fn the_shipped_dlt645_profile_reads_the_dlt645_server_exactly() {
    let influx = Influxd::with_database(DB).await;
    let toml = |port: u16| {
        let site = format!(
            "{}{}",
            Site::new("S1", "DL/T 645 shipped profile"),
            dlt645_meter("m1", "dlt645_3phase", "bus", NAMEPLATE)
        );
        GatewayToml::new("dlt645-shipped")
            .readings_only()
            .influx_v1(&influx.url(), DB, "batch_size = 1\nflush_interval_ms = 100")
            .toml(&format!(
                "[[endpoints]]\nid = \"bus\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_ms = 500"
            ))
            .site("s1.toml", site)
    };
    // The values follow from the profile as the gateway loads it.
    let mut files = toml(1).write();
    let config = files.load();
    let profile = config
        .profiles
        .iter()
        .find(|p| p.id == "dlt645_3phase")
        .expect("the shipped profile");
    let mut values = Vec::new();
    let mut want = Vec::new();
    for (i, p) in profile.points.iter().enumerate() {
        let d = p.dlt645.expect("a DL/T 645 point");
        // The first of a run of candidates inside the point's plausible
        // range (the profile's min and max), so the reading stays good.
        let (text, v) = (0..1000)
            .map(|k| {
                let text = value_text(i + 31 * k, d.format);
                let v: f64 = text.parse().expect("decimal");
                (text, v)
            })
            .find(|(_, v)| p.min.is_none_or(|lo| *v >= lo) && p.max.is_none_or(|hi| *v <= hi))
            .unwrap_or_else(|| panic!("no value of {} in its range", p.name));
        values.push((d.di.to_string(), v));
        want.push((p.name.clone(), d.di, text, v));
    }
    assert!(
        want.iter().any(|(_, _, t, _)| t.starts_with('-')),
        "a negative value among {want:?}"
    );
    let server = Dlt645Server::start_with(Target::Tcp, values);
    files.rewrite(&toml(server.port()));
    let gw = InProcess::start(Arc::new(files.load()));
    gw.wait_readings(3).await;
    let (summary, _) = gw.stop().await;
    assert_eq!(summary.lines_rejected + summary.lines_left_in_spool, 0);

    let table = influx
        .table(DB, "SELECT * FROM reading WHERE meter = 'm1'")
        .await;
    assert!(table.rows.len() >= 3, "{} rows", table.rows.len());
    for row in &table.rows {
        assert_eq!(row[table.col("q")], Value::from(0), "good: {row:?}");
        for (name, di, text, v) in &want {
            assert_eq!(
                row[table.col(name)].as_f64(),
                Some(*v),
                "{name} (DI {di}, set {text}): {row:?}"
            );
        }
    }
}
