//! `[[endpoints]]`: the wires Modbus meters are polled through: a Modbus
//! TCP connection, a serial server (RTU over TCP), a local serial port or a
//! dial-in DTU.
//!
//! Why a file of its own: an endpoint carries the transport, the line
//! timing and the request-size limits that slow buses and DTUs need, and
//! every Modbus meter of the site files names one by id. The DTU keys and
//! the `[dtu]` section are in [`super::dtu`].

use std::path::PathBuf;

use config::Value;

use super::dtu::{distinct_registrations, dtu_match};
use super::main_state::Main;
use super::raw::EndpointRaw;
use super::{EndpointConfig, Parity, SerialLine, Transport};
use crate::check::backoff_range;
use crate::check::{self, Problems, choice, int, millis, required_id, required_text};

/// Every `[[endpoints]]` element, each checked on its own into [`Main::endpoints`].
pub(super) fn endpoints(v: Value, main: &mut Main) {
    let items = check::array(
        v,
        "endpoints",
        "an array of tables ([[endpoints]])",
        &mut main.problems,
    );
    for (i, item) in items.into_iter().enumerate() {
        endpoint(item, i, main);
    }
    distinct_registrations(&main.endpoints, &mut main.problems);
}

/// One `[[endpoints]]` element; its id is recorded even when the rest is
/// broken, so meters naming it are not reported as unknown.
fn endpoint(value: Value, index: usize, main: &mut Main) {
    let key = format!("endpoints[{index}]");
    let k = |sub: &str| format!("{key}.{sub}");
    let p = &mut main.problems;
    let Some(r) = check::table::<EndpointRaw>(value, &key, "a table", p) else {
        return;
    };
    let errors_before = p.list.len();
    let id = required_id(r.id.clone(), &k("id"), "endpoint id", p);
    if let Some(id) = &id
        && let Some(first) = main.endpoints.iter().position(|(e, _)| e == id)
    {
        p.push(
            k("id"),
            format!("duplicate endpoint id \"{id}\"; already used by endpoints[{first}]"),
        );
    }
    let kind = choice(
        r.transport.clone(),
        &k("transport"),
        "transport",
        &[
            ("tcp", Kind::Tcp),
            ("rtu_over_tcp", Kind::RtuOverTcp),
            ("serial", Kind::Serial),
            ("dtu", Kind::Dtu),
        ],
        Some(Kind::Tcp),
        p,
    );
    let timeout = millis(r.timeout_ms, &k("timeout_ms"), 1000, 1, p);
    let connect_timeout = millis(r.connect_timeout_ms, &k("connect_timeout_ms"), 3000, 1, p);
    let (reconnect_initial, reconnect_max) = backoff_range(
        r.reconnect_initial_ms,
        r.reconnect_max_ms,
        &key,
        "reconnect",
        p,
    );
    let max_gap = int(r.max_gap, &k("max_gap"), 10, 0, 125, p);
    let max_registers = int(r.max_registers, &k("max_registers"), 125, 1, 125, p);
    let delay = millis(
        r.inter_request_delay_ms,
        &k("inter_request_delay_ms"),
        0,
        0,
        p,
    );
    let preamble = int(r.dlt645_preamble, &k("dlt645_preamble"), 4, 0, 8, p);
    if kind == Some(Kind::Tcp) && r.dlt645_preamble.is_some() {
        p.push(
            k("dlt645_preamble"),
            "does not apply to transport = \"tcp\" (only to rtu_over_tcp, serial and dtu); remove it",
        );
    }
    let (transport, line) = match kind {
        Some(kind) => transport(kind, r, &key, p),
        None => (None, None),
    };
    let Some(id) = id else {
        return;
    };
    let config = (p.list.len() == errors_before)
        .then(|| {
            Some(EndpointConfig {
                id: id.clone(),
                transport: transport?,
                line,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                reconnect_initial: reconnect_initial?,
                reconnect_max: reconnect_max?,
                max_gap: u16::try_from(max_gap?).ok()?,
                max_registers: u16::try_from(max_registers?).ok()?,
                inter_request_delay: delay?,
                dlt645_preamble: u8::try_from(preamble?).ok()?,
            })
        })
        .flatten();
    main.endpoints.push((id, config));
}

/// The value of `transport`, before its own keys are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    RtuOverTcp,
    Serial,
    Dtu,
}

/// The transport's own keys: each is required where it means something
/// and an error where it does not (a `device` on a TCP endpoint is a
/// mistake the user wants to hear about, not a silently ignored line).
fn transport(
    kind: Kind,
    r: EndpointRaw,
    key: &str,
    p: &mut Problems,
) -> (Option<Transport>, Option<SerialLine>) {
    let k = |sub: &str| format!("{key}.{sub}");
    let name = match kind {
        Kind::Tcp => "tcp",
        Kind::RtuOverTcp => "rtu_over_tcp",
        Kind::Serial => "serial",
        Kind::Dtu => "dtu",
    };
    let mut not_here = |present: bool, sub: &str, only: &str| {
        if present {
            p.push(
                k(sub),
                format!("does not apply to transport = \"{name}\" (only to {only}); remove it"),
            );
        }
    };
    let dials = matches!(kind, Kind::Tcp | Kind::RtuOverTcp);
    not_here(!dials && r.host.is_some(), "host", "tcp and rtu_over_tcp");
    not_here(!dials && r.port.is_some(), "port", "tcp and rtu_over_tcp");
    not_here(
        !dials && r.connect_timeout_ms.is_some(),
        "connect_timeout_ms",
        "tcp and rtu_over_tcp",
    );
    not_here(
        kind != Kind::Serial && r.device.is_some(),
        "device",
        "serial",
    );
    let serial_framed = kind != Kind::Tcp;
    let line_only = "rtu_over_tcp, serial and dtu";
    not_here(!serial_framed && r.baud.is_some(), "baud", line_only);
    not_here(!serial_framed && r.parity.is_some(), "parity", line_only);
    not_here(
        !serial_framed && r.data_bits.is_some(),
        "data_bits",
        line_only,
    );
    not_here(
        !serial_framed && r.stop_bits.is_some(),
        "stop_bits",
        line_only,
    );
    not_here(
        !serial_framed && r.turnaround_ms.is_some(),
        "turnaround_ms",
        line_only,
    );
    let dtu = kind == Kind::Dtu;
    not_here(!dtu && r.registration.is_some(), "registration", "dtu");
    not_here(
        !dtu && r.registration_hex.is_some(),
        "registration_hex",
        "dtu",
    );
    not_here(
        !dtu && r.registration_mode.is_some(),
        "registration_mode",
        "dtu",
    );
    not_here(!dtu && r.heartbeat.is_some(), "heartbeat", "dtu");
    not_here(!dtu && r.heartbeat_hex.is_some(), "heartbeat_hex", "dtu");

    let line = if serial_framed {
        serial_line(&r, key, p)
    } else {
        None
    };
    let transport = match kind {
        Kind::Tcp | Kind::RtuOverTcp => {
            let host = if dials {
                required_text(
                    r.host,
                    &k("host"),
                    if kind == Kind::Tcp {
                        "give the host name or IP address of the Modbus TCP server"
                    } else {
                        "give the host name or IP address of the serial server"
                    },
                    p,
                )
            } else {
                None
            };
            let port =
                int(r.port, &k("port"), 502, 1, 65535, p).and_then(|x| u16::try_from(x).ok());
            match (host, port, kind) {
                (Some(host), Some(port), Kind::Tcp) => Some(Transport::Tcp { host, port }),
                (Some(host), Some(port), _) => Some(Transport::RtuOverTcp { host, port }),
                _ => None,
            }
        }
        Kind::Serial => required_text(
            r.device,
            &k("device"),
            "give the serial device, e.g. \"/dev/ttyUSB0\"",
            p,
        )
        .map(|d| Transport::Serial {
            device: PathBuf::from(d),
        }),
        Kind::Dtu => dtu_match(&r, key, p).map(Transport::Dtu),
    };
    if serial_framed && line.is_none() {
        return (None, None);
    }
    (transport, line)
}

/// `baud`, `parity`, `data_bits`, `stop_bits`, `turnaround_ms` (defaults 9600 8N1, 0 ms).
fn serial_line(r: &EndpointRaw, key: &str, p: &mut Problems) -> Option<SerialLine> {
    let k = |sub: &str| format!("{key}.{sub}");
    let baud = int(r.baud, &k("baud"), 9600, 50, 4_000_000, p);
    let parity = choice(
        r.parity.clone(),
        &k("parity"),
        "parity",
        &[
            ("none", Parity::None),
            ("even", Parity::Even),
            ("odd", Parity::Odd),
        ],
        Some(Parity::None),
        p,
    );
    let data_bits = int(r.data_bits, &k("data_bits"), 8, 7, 8, p);
    let stop_bits = int(r.stop_bits, &k("stop_bits"), 1, 1, 2, p);
    let turnaround = millis(r.turnaround_ms, &k("turnaround_ms"), 0, 0, p);
    Some(SerialLine {
        baud: u32::try_from(baud?).ok()?,
        parity: parity?,
        data_bits: u8::try_from(data_bits?).ok()?,
        stop_bits: u8::try_from(stop_bits?).ok()?,
        turnaround: turnaround?,
    })
}
