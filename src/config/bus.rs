//! The field-bus types of the configuration: how an endpoint's wire is
//! reached (`transport`), the RS-485 line behind a serial-framed one and
//! its timing, how a dial-in DTU is recognised, and `[dtu]`.
//!
//! Why a file of its own: these are the validated values of
//! `[[endpoints]]` and `[dtu]` that the field-bus layer, the bus timing and
//! the simulator read; `modbus.rs` and `dtu.rs` check the keys into them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How an endpoint's wire is reached (`transport = "..."`).
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// `tcp`: Modbus TCP (MBAP header, transaction ids).
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `rtu_over_tcp`: Modbus RTU frames with CRC inside a TCP stream (a
    /// serial server in transparent mode).
    RtuOverTcp {
        /// Host name or address of the serial server.
        host: String,
        /// Its TCP port.
        port: u16,
    },
    /// `serial`: Modbus RTU on a local serial port.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0`.
        device: PathBuf,
    },
    /// `dtu`: a DTU dials in to `[dtu] listen` and is recognised by its registration.
    Dtu(DtuMatch),
}

impl Transport {
    /// The key's value: `tcp`, `rtu_over_tcp`, `serial`, `dtu`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp { .. } => "tcp",
            Transport::RtuOverTcp { .. } => "rtu_over_tcp",
            Transport::Serial { .. } => "serial",
            Transport::Dtu(_) => "dtu",
        }
    }
}

/// How a dial-in DTU is recognised, and what it sends besides answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtuMatch {
    /// The registration packet, byte for byte.
    pub registration: Vec<u8>,
    /// Whether the registration comes once on connect or before every packet.
    pub mode: RegistrationMode,
    /// The heartbeat packet the DTU sends while idle, stripped between frames.
    pub heartbeat: Option<Vec<u8>>,
}

impl DtuMatch {
    /// The registration as text when it is printable ASCII, else as hex.
    #[must_use]
    pub fn registration_text(&self) -> String {
        packet_text(&self.registration)
    }
}

/// A packet for logs: `"TEXT"` when printable ASCII, else `hex:…`.
#[must_use]
pub fn packet_text(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        use std::fmt::Write as _;
        bytes.iter().fold(String::from("hex:"), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
    }
}

/// `registration_mode`: when the DTU sends its registration packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// `connect`: once, as the first packet of the connection.
    Connect,
    /// `every_packet`: in front of every packet it sends (and first on connect).
    EveryPacket,
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// The RS-485 line of a serial-framed transport: the port settings of
/// `serial`, and for `rtu_over_tcp` and `dtu` the line behind the serial
/// server, which sets the inter-frame silence and the bus timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialLine {
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
    /// Pause after an answer (or a timeout) before the next request goes out,
    /// on top of the inter-frame silence.
    pub turnaround: Duration,
}

impl SerialLine {
    /// Bits on the wire per character: start, data, parity, stop.
    #[must_use]
    pub fn bits_per_char(&self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits)
    }

    /// Wire time of one character.
    #[must_use]
    pub fn char_time(&self) -> Duration {
        Duration::from_nanos(u64::from(self.bits_per_char()) * 1_000_000_000 / u64::from(self.baud))
    }

    /// Wire time of `bytes` characters.
    #[must_use]
    pub fn wire_time(&self, bytes: usize) -> Duration {
        Duration::from_nanos(
            bytes as u64 * u64::from(self.bits_per_char()) * 1_000_000_000 / u64::from(self.baud),
        )
    }

    /// The inter-frame silence: 3.5 character times, and 1.75 ms above
    /// 19 200 baud (Modbus over Serial Line V1.02, 2.5.1.1).
    #[must_use]
    pub fn silence(&self) -> Duration {
        if self.baud > 19_200 {
            Duration::from_micros(1750)
        } else {
            Duration::from_nanos(
                u64::from(self.bits_per_char()) * 3_500_000_000 / u64::from(self.baud),
            )
        }
    }
}

/// `[dtu]`, validated: where dial-in DTUs connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtuSettings {
    /// Address to listen on (default `127.0.0.1:20502`; bound only when an
    /// endpoint has `transport = "dtu"`).
    pub listen: SocketAddr,
    /// A connection that sends no known registration within this time is closed.
    pub registration_timeout: Duration,
}

/// Port DTUs dial in to when `[dtu] listen` is not given.
pub const DEFAULT_DTU_PORT: u16 = 20502;

impl Default for DtuSettings {
    fn default() -> DtuSettings {
        DtuSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_DTU_PORT)),
            registration_timeout: Duration::from_secs(10),
        }
    }
}
