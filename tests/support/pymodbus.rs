//! A Modbus peer we did not write: pymodbus 3.16.1 running
//! `tests/peers/pymodbus_server.py` (Modbus TCP, RTU over TCP, or RTU on
//! one end of a pty pair), plus canonical register maps whose words were
//! computed outside emgate (Python's `struct`), so an interop test checks
//! our decoder against someone else's encoder, not against itself.
//!
//! The server runs on the shared [`Peer`] lifecycle. The interpreter comes
//! from `EMGATE_PYTHON` (set by `scripts/test`), else `.venv/bin/python` in
//! the repository. A missing interpreter or pymodbus fails the test and says
//! to run `scripts/test`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use emgate::profiles::{
    ByteOrder, DataType, PointDef, PointKind, Profile, RatioScaling, RegisterKind,
};

use super::peer::{Peer, PeerKind, accepts};

/// One unit id's tables, as raw words and bits.
#[derive(Debug, Clone, Default)]
pub struct PeerDevice {
    /// Modbus unit id.
    pub unit: u8,
    /// Coil blocks: first address and bits.
    pub coils: Vec<(u16, Vec<bool>)>,
    /// Discrete-input blocks.
    pub discrete: Vec<(u16, Vec<bool>)>,
    /// Holding-register blocks: first address and words.
    pub holding: Vec<(u16, Vec<u16>)>,
    /// Input-register blocks.
    pub input: Vec<(u16, Vec<u16>)>,
}

impl PeerDevice {
    /// A device with empty tables.
    pub fn new(unit: u8) -> PeerDevice {
        PeerDevice {
            unit,
            ..PeerDevice::default()
        }
    }

    /// Adds a block of holding registers (blocks must not overlap).
    #[must_use]
    pub fn holding(mut self, address: u16, words: &[u16]) -> PeerDevice {
        self.holding.push((address, words.to_vec()));
        self
    }

    /// Adds a block of input registers (blocks must not overlap).
    #[must_use]
    pub fn input(mut self, address: u16, words: &[u16]) -> PeerDevice {
        self.input.push((address, words.to_vec()));
        self
    }

    fn to_json(&self) -> serde_json::Value {
        let words = |blocks: &[(u16, Vec<u16>)]| -> Vec<serde_json::Value> {
            blocks
                .iter()
                .map(|(a, w)| serde_json::json!({"address": a, "words": w}))
                .collect()
        };
        let bits = |blocks: &[(u16, Vec<bool>)]| -> Vec<serde_json::Value> {
            blocks
                .iter()
                .map(|(a, b)| {
                    let b: Vec<u8> = b.iter().map(|&x| u8::from(x)).collect();
                    serde_json::json!({"address": a, "bits": b})
                })
                .collect()
        };
        serde_json::json!({
            "unit": self.unit,
            "coils": bits(&self.coils),
            "discrete": bits(&self.discrete),
            "holding": words(&self.holding),
            "input": words(&self.input),
        })
    }
}

/// Framing the peer speaks on its TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framer {
    /// Modbus TCP (MBAP header).
    Tcp,
    /// RTU frames (with CRC) over TCP, as serial device servers forward them.
    RtuOverTcp,
}

/// Where the peer serves.
#[derive(Debug, Clone)]
enum Target {
    /// A free loopback TCP port, with this framing.
    Tcp(Framer),
    /// RTU on a serial device (a pty), at a nominal baud rate.
    Serial { path: PathBuf, baudrate: u32 },
}

/// How to run the pymodbus server: `tests/peers/pymodbus_server.py` with
/// the devices and framing as JSON.
struct Kind {
    python: PathBuf,
    devices: Vec<serde_json::Value>,
    target: Target,
    /// The directory of the current start (its log says "ready" for a
    /// serial server, which has no port to probe).
    dir: Mutex<Option<PathBuf>>,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        // pymodbus logs every frame; its log file, unlike a pipe nobody
        // reads, never fills up and blocks it.
        "pymodbus"
    }

    fn ports(&self) -> usize {
        usize::from(matches!(self.target, Target::Tcp(_)))
    }

    fn command(&self, dir: &Path, ports: &[u16]) -> Command {
        *self.dir.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.to_owned());
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pymodbus_server.py");
        let spec = match &self.target {
            Target::Tcp(framer) => serde_json::json!({
                "host": "127.0.0.1",
                "port": ports[0],
                "framer": if *framer == Framer::RtuOverTcp { "rtu" } else { "socket" },
                "devices": self.devices,
            }),
            Target::Serial { path, baudrate } => serde_json::json!({
                "serial": path,
                "baudrate": baudrate,
                "devices": self.devices,
            }),
        };
        let mut command = Command::new(&self.python);
        command.arg(script).arg(spec.to_string());
        command
    }

    fn ready(&self, ports: &[u16]) -> bool {
        match self.target {
            Target::Tcp(_) => accepts(ports),
            Target::Serial { .. } => {
                let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
                dir.as_ref().is_some_and(|d| {
                    std::fs::read_to_string(d.join("pymodbus.log"))
                        .is_ok_and(|log| log.contains("ready serial"))
                })
            }
        }
    }
}

/// A running pymodbus server; killed when dropped.
pub struct PymodbusServer {
    peer: Peer,
}

impl PymodbusServer {
    /// Starts a Modbus TCP peer serving `devices` on a free loopback port and
    /// waits until it accepts connections.
    pub fn start(devices: &[PeerDevice]) -> PymodbusServer {
        PymodbusServer::start_with(devices, Framer::Tcp)
    }

    /// [`PymodbusServer::start`] with a choice of framing.
    pub fn start_with(devices: &[PeerDevice], framer: Framer) -> PymodbusServer {
        PymodbusServer::launch(devices, Target::Tcp(framer))
    }

    /// A Modbus RTU server (`ModbusSerialServer`, parity N) on the serial
    /// device `path`, e.g. one end of a [`super::socat::PtyPair`]; waits
    /// until the port is open.
    pub fn start_serial(devices: &[PeerDevice], path: &Path, baudrate: u32) -> PymodbusServer {
        let target = Target::Serial {
            path: path.to_owned(),
            baudrate,
        };
        PymodbusServer::launch(devices, target)
    }

    fn launch(devices: &[PeerDevice], target: Target) -> PymodbusServer {
        let python = python();
        check_pymodbus(&python);
        PymodbusServer {
            peer: Peer::start(Kind {
                python,
                devices: devices.iter().map(PeerDevice::to_json).collect(),
                target,
                dir: Mutex::new(None),
            }),
        }
    }

    /// Port it listens on (127.0.0.1); a serial server has none.
    pub fn port(&self) -> u16 {
        self.peer.port(0)
    }

    /// Address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }
}

/// How a [`DtuClient`] announces itself and what it mixes into the stream.
#[derive(Debug, Clone, Default)]
pub struct DtuOptions {
    /// The registration packet, byte for byte (sent as hex).
    pub registration: Vec<u8>,
    /// Put the registration in front of every answer too.
    pub every_packet: bool,
    /// A heartbeat packet, sent every `heartbeat_every` and around answers.
    pub heartbeat: Option<Vec<u8>>,
    /// Period of the timed heartbeats (zero: only those around answers).
    pub heartbeat_every: Duration,
}

/// How to run `tests/peers/dtu_client.py`.
struct DtuKind {
    python: PathBuf,
    gateway: SocketAddr,
    upstream: SocketAddr,
    options: DtuOptions,
    dir: Mutex<Option<PathBuf>>,
}

/// `bytes` as upper-case hex, as `registration_hex` takes them.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

impl PeerKind for DtuKind {
    fn name(&self) -> &'static str {
        "dtu_client"
    }

    fn ports(&self) -> usize {
        0
    }

    fn command(&self, dir: &Path, _ports: &[u16]) -> Command {
        *self.dir.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.to_owned());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dtu_client.py");
        let mut command = Command::new(&self.python);
        command
            .arg(script)
            .args(["--gateway", &self.gateway.to_string()])
            .args(["--upstream", &self.upstream.to_string()])
            .args(["--registration-hex", &hex(&self.options.registration)]);
        if self.options.every_packet {
            command.arg("--every-packet");
        }
        if let Some(beat) = &self.options.heartbeat {
            command.args(["--heartbeat", &hex(beat)]).args([
                "--heartbeat-every",
                &self.options.heartbeat_every.as_secs_f64().to_string(),
            ]);
        }
        command
    }

    fn ready(&self, _ports: &[u16]) -> bool {
        let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        dir.as_ref().is_some_and(|d| {
            std::fs::read_to_string(d.join("dtu_client.log"))
                .is_ok_and(|log| log.lines().any(|l| l == "ready"))
        })
    }

    fn stop_grace(&self) -> Duration {
        Duration::from_secs(2)
    }
}

/// `tests/peers/dtu_client.py`: a software DTU that dials the gateway's
/// `[dtu] listen`, registers, and relays to an RTU-over-TCP server (a
/// [`PymodbusServer`] with [`Framer::RtuOverTcp`]). Killed when dropped.
pub struct DtuClient {
    peer: Peer,
}

impl DtuClient {
    /// Starts the client and waits until it is connected and registered
    /// (it dials for up to 10 s while the gateway starts).
    pub fn start(gateway: SocketAddr, upstream: SocketAddr, options: DtuOptions) -> DtuClient {
        let python = python();
        DtuClient {
            peer: Peer::start(DtuKind {
                python,
                gateway,
                upstream,
                options,
                dir: Mutex::new(None),
            }),
        }
    }

    /// What it printed ("ready", "closed by gateway", errors).
    pub fn log(&self) -> String {
        self.peer.log()
    }

    /// True once the gateway closed its link.
    pub fn closed_by_gateway(&self) -> bool {
        self.log().contains("closed by gateway")
    }
}

/// The interpreter with pymodbus: `EMGATE_PYTHON`, else the repository's `.venv`.
pub fn python() -> PathBuf {
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

/// Fails with an actionable message unless pymodbus 3.16.1 imports.
fn check_pymodbus(python: &PathBuf) {
    let out = Command::new(python)
        .args(["-c", "import pymodbus; print(pymodbus.__version__)"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test", python.display()));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && version.trim() == "3.16.1",
        "pymodbus not installed (need 3.16.1, found {:?}): run scripts/test\n{}",
        version.trim(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One point of a canonical map: where it is, its words as computed outside
/// emgate, and the raw number and scale they stand for.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalPoint {
    /// Field name, as in the matching profile.
    pub name: &'static str,
    /// First register.
    pub address: u16,
    /// The words on the wire.
    pub words: &'static [u16],
    /// The raw number the words encode.
    pub raw: f64,
    /// The profile's scale for the point.
    pub scale: f64,
}

impl CanonicalPoint {
    /// The scaled value a decoder must produce with PT = CT = 1 (the decoder's formula `raw × scale`).
    pub fn value(&self) -> f64 {
        self.raw * self.scale
    }
}

/// SDM630-style float map: input registers, f32 big-endian (ABCD).
/// Words from Python: `struct.pack('>f', v)` split into two big-endian registers.
pub const SDM630_POINTS: &[CanonicalPoint] = &[
    CanonicalPoint {
        name: "voltage_l1_v",
        address: 0x0000,
        words: &[0x4366, 0x8000],
        raw: 230.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "voltage_l2_v",
        address: 0x0002,
        words: &[0x4367, 0x4000],
        raw: 231.25,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "voltage_l3_v",
        address: 0x0004,
        words: &[0x4365, 0xC000],
        raw: 229.75,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "current_l1_a",
        address: 0x0006,
        words: &[0x4148, 0x0000],
        raw: 12.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "power_w",
        address: 0x0034,
        words: &[0x4606, 0xC400],
        raw: 8625.0,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "pf",
        address: 0x003E,
        words: &[0x3F78, 0x0000],
        raw: 0.968_75,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "frequency_hz",
        address: 0x0046,
        words: &[0x4248, 0x0000],
        raw: 50.0,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "import_kwh",
        address: 0x0048,
        words: &[0x4640, 0xE600],
        raw: 12_345.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "export_kwh",
        address: 0x004A,
        words: &[0x4010, 0x0000],
        raw: 2.25,
        scale: 1.0,
    },
];

/// The [`SDM630_POINTS`] values in word order CDAB (low word first), as
/// meters from several Chinese makers send floats, in holding registers.
/// Words from Python: `struct.pack('>f', v)` split into two registers,
/// the second sent first.
pub const SDM630_CDAB_POINTS: &[CanonicalPoint] = &[
    CanonicalPoint {
        name: "voltage_l1_v",
        address: 0x0000,
        words: &[0x8000, 0x4366],
        raw: 230.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "voltage_l2_v",
        address: 0x0002,
        words: &[0x4000, 0x4367],
        raw: 231.25,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "voltage_l3_v",
        address: 0x0004,
        words: &[0xC000, 0x4365],
        raw: 229.75,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "current_l1_a",
        address: 0x0006,
        words: &[0x0000, 0x4148],
        raw: 12.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "power_w",
        address: 0x0034,
        words: &[0xC400, 0x4606],
        raw: 8625.0,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "pf",
        address: 0x003E,
        words: &[0x0000, 0x3F78],
        raw: 0.968_75,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "frequency_hz",
        address: 0x0046,
        words: &[0x0000, 0x4248],
        raw: 50.0,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "import_kwh",
        address: 0x0048,
        words: &[0xE600, 0x4640],
        raw: 12_345.5,
        scale: 1.0,
    },
    CanonicalPoint {
        name: "export_kwh",
        address: 0x004A,
        words: &[0x0000, 0x4010],
        raw: 2.25,
        scale: 1.0,
    },
];

/// Acrel DTSD1352-style integer map: holding registers, big-endian.
/// Words by hand: 12345828 = 0x00BC_61E4, 12345678 = 0x00BC_614E, 150 = 0x96,
/// 2304 = 0x0900, 512 = 0x0200, 5001 = 0x1389, −1500 as I32 = 0xFFFF_FA24,
/// −985 as I16 = 0xFC27.
pub const DTSD1352_POINTS: &[CanonicalPoint] = &[
    CanonicalPoint {
        name: "total_kwh",
        address: 0x0000,
        words: &[0x00BC, 0x61E4],
        raw: 12_345_828.0,
        scale: 0.01,
    },
    CanonicalPoint {
        name: "import_kwh",
        address: 0x000A,
        words: &[0x00BC, 0x614E],
        raw: 12_345_678.0,
        scale: 0.01,
    },
    CanonicalPoint {
        name: "export_kwh",
        address: 0x0014,
        words: &[0x0000, 0x0096],
        raw: 150.0,
        scale: 0.01,
    },
    CanonicalPoint {
        name: "voltage_a_v",
        address: 0x0061,
        words: &[0x0900],
        raw: 2304.0,
        scale: 0.1,
    },
    CanonicalPoint {
        name: "current_a_a",
        address: 0x0064,
        words: &[0x0200],
        raw: 512.0,
        scale: 0.01,
    },
    CanonicalPoint {
        name: "frequency_hz",
        address: 0x0077,
        words: &[0x1389],
        raw: 5001.0,
        scale: 0.01,
    },
    CanonicalPoint {
        name: "power_kw",
        address: 0x016A,
        words: &[0xFFFF, 0xFA24],
        raw: -1500.0,
        scale: 0.001,
    },
    CanonicalPoint {
        name: "pf",
        address: 0x017C,
        words: &[0xFC27],
        raw: -985.0,
        scale: 0.001,
    },
];

/// One contiguous block from the first to the last point, zeros between
/// points, so merged reads across gaps work as on the real meter.
fn block(points: &[CanonicalPoint]) -> (u16, Vec<u16>) {
    let start = points.iter().map(|p| p.address).min().unwrap_or(0);
    let end = points
        .iter()
        .map(|p| usize::from(p.address) + p.words.len())
        .max()
        .unwrap_or(usize::from(start));
    let mut words = vec![0u16; end - usize::from(start)];
    for p in points {
        let at = usize::from(p.address - start);
        words[at..at + p.words.len()].copy_from_slice(p.words);
    }
    (start, words)
}

/// An SDM630-style meter at `unit` serving [`SDM630_POINTS`] (input registers 0x0000–0x004B).
pub fn sdm630_device(unit: u8) -> PeerDevice {
    let (start, words) = block(SDM630_POINTS);
    PeerDevice::new(unit).input(start, &words)
}

/// A meter at `unit` serving [`SDM630_CDAB_POINTS`] (holding registers 0x0000–0x004B).
pub fn sdm630_cdab_device(unit: u8) -> PeerDevice {
    let (start, words) = block(SDM630_CDAB_POINTS);
    PeerDevice::new(unit).holding(start, &words)
}

/// A DTSD1352-style meter at `unit` serving [`DTSD1352_POINTS`] (holding registers 0x0000–0x017C).
pub fn dtsd1352_device(unit: u8) -> PeerDevice {
    let (start, words) = block(DTSD1352_POINTS);
    PeerDevice::new(unit).holding(start, &words)
}

#[allow(clippy::too_many_arguments)]
fn point(
    name: &str,
    register: RegisterKind,
    address: u16,
    data_type: DataType,
    scale: f64,
    ratio: RatioScaling,
    kind: PointKind,
    unit: &str,
) -> PointDef {
    PointDef {
        scale,
        ratio,
        kind,
        unit: unit.to_owned(),
        ..PointDef::new(name, register, address, data_type)
    }
}

/// The profile matching [`SDM630_POINTS`] (same names, same order).
pub fn sdm630_profile() -> Profile {
    use DataType::F32;
    use PointKind::{Counter, Gauge};
    use RatioScaling::None as NoRatio;
    use RegisterKind::Input;
    Profile {
        steam_state: None,
        steam_dryness: None,
        id: "sdm630".to_owned(),
        protocol: emgate::profiles::Protocol::Modbus,
        description: "Eastron SDM630 (test copy)".to_owned(),
        points: vec![
            point("voltage_l1_v", Input, 0x0000, F32, 1.0, NoRatio, Gauge, "v"),
            point("voltage_l2_v", Input, 0x0002, F32, 1.0, NoRatio, Gauge, "v"),
            point("voltage_l3_v", Input, 0x0004, F32, 1.0, NoRatio, Gauge, "v"),
            point("current_l1_a", Input, 0x0006, F32, 1.0, NoRatio, Gauge, "a"),
            point("power_w", Input, 0x0034, F32, 1.0, NoRatio, Gauge, "w"),
            point("pf", Input, 0x003E, F32, 1.0, NoRatio, Gauge, "pf"),
            point(
                "frequency_hz",
                Input,
                0x0046,
                F32,
                1.0,
                NoRatio,
                Gauge,
                "hz",
            ),
            point(
                "import_kwh",
                Input,
                0x0048,
                F32,
                1.0,
                NoRatio,
                Counter,
                "kwh",
            ),
            point(
                "export_kwh",
                Input,
                0x004A,
                F32,
                1.0,
                NoRatio,
                Counter,
                "kwh",
            ),
        ],
        uses_ratios: false,
        consumption: None,
        pressure: None,
        temperature: None,
    }
}

/// The profile matching [`SDM630_CDAB_POINTS`]: [`sdm630_profile`] on
/// holding registers, word order CDAB.
pub fn sdm630_cdab_profile() -> Profile {
    let mut profile = sdm630_profile();
    "sdm630_cdab".clone_into(&mut profile.id);
    "SDM630 map, CDAB floats in holding registers (test)".clone_into(&mut profile.description);
    for p in &mut profile.points {
        p.register = RegisterKind::Holding;
        p.order = ByteOrder::Cdab;
    }
    profile
}

/// The profile matching [`DTSD1352_POINTS`] (same names, same order): values
/// scale by PT and CT as on the real meter.
pub fn dtsd1352_profile() -> Profile {
    use DataType::{I16, I32, U16, U32};
    use PointKind::{Counter, Gauge};
    use RatioScaling::{Ct, None as NoRatio, Pt, PtCt};
    use RegisterKind::Holding;
    Profile {
        steam_state: None,
        steam_dryness: None,
        protocol: emgate::profiles::Protocol::Modbus,
        id: "dtsd1352".to_owned(),
        description: "Acrel DTSD1352 (test copy)".to_owned(),
        points: vec![
            point(
                "total_kwh",
                Holding,
                0x0000,
                U32,
                0.01,
                PtCt,
                Counter,
                "kwh",
            ),
            point(
                "import_kwh",
                Holding,
                0x000A,
                U32,
                0.01,
                PtCt,
                Counter,
                "kwh",
            ),
            point(
                "export_kwh",
                Holding,
                0x0014,
                U32,
                0.01,
                PtCt,
                Counter,
                "kwh",
            ),
            point("voltage_a_v", Holding, 0x0061, U16, 0.1, Pt, Gauge, "v"),
            point("current_a_a", Holding, 0x0064, U16, 0.01, Ct, Gauge, "a"),
            point(
                "frequency_hz",
                Holding,
                0x0077,
                U16,
                0.01,
                NoRatio,
                Gauge,
                "hz",
            ),
            point("power_kw", Holding, 0x016A, I32, 0.001, PtCt, Gauge, "kw"),
            point("pf", Holding, 0x017C, I16, 0.001, NoRatio, Gauge, "pf"),
        ],
        uses_ratios: true,
        consumption: None,
        pressure: None,
        temperature: None,
    }
}
