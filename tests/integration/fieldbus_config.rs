//! The field-bus keys of `[[endpoints]]` and `[dtu]`: what a valid
//! configuration becomes, and the messages a wrong one gets (exact strings:
//! they are part of the interface).

use std::path::PathBuf;
use std::time::Duration;

use emgate::config::{
    Config, DtuMatch, Parity, RegistrationMode, SerialLine, Transport, load_str_for_tests,
};

const GATEWAY: &str = "[gateway]\nid = \"gw\"\n[file_sink]\n";

fn errors(text: &str) -> Vec<String> {
    match load_str_for_tests(&format!("{GATEWAY}{text}")) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn load(text: &str) -> Config {
    load_str_for_tests(&format!("{GATEWAY}{text}")).expect("valid configuration")
}

#[test]
fn every_transport_with_its_defaults() {
    let c = load(
        r#"
[dtu]
listen = "0.0.0.0:7001"

[[endpoints]]
id = "plc"
host = "10.0.0.5"

[[endpoints]]
id = "server"
transport = "rtu_over_tcp"
host = "10.0.0.6"
port = 4001

[[endpoints]]
id = "usb"
transport = "serial"
device = "/dev/ttyUSB0"
baud = 2400
parity = "even"
stop_bits = 1
turnaround_ms = 20

[[endpoints]]
id = "dtu"
transport = "dtu"
registration_hex = "38 36 35 31"
registration_mode = "every_packet"
heartbeat = "www.usr.cn"
"#,
    );
    let default_line = SerialLine {
        baud: 9600,
        parity: Parity::None,
        data_bits: 8,
        stop_bits: 1,
        turnaround: Duration::ZERO,
    };
    assert_eq!(c.dtu.listen.to_string(), "0.0.0.0:7001");
    assert_eq!(c.dtu.registration_timeout, Duration::from_secs(10));
    assert_eq!(
        c.endpoints[0].transport,
        Transport::Tcp {
            host: "10.0.0.5".into(),
            port: 502
        }
    );
    assert_eq!(c.endpoints[0].line, None);
    assert_eq!(
        c.endpoints[1].transport,
        Transport::RtuOverTcp {
            host: "10.0.0.6".into(),
            port: 4001
        }
    );
    assert_eq!(c.endpoints[1].line, Some(default_line));
    assert_eq!(
        c.endpoints[2].transport,
        Transport::Serial {
            device: PathBuf::from("/dev/ttyUSB0")
        }
    );
    assert_eq!(
        c.endpoints[2].line,
        Some(SerialLine {
            baud: 2400,
            parity: Parity::Even,
            turnaround: Duration::from_millis(20),
            ..default_line
        })
    );
    assert_eq!(
        c.endpoints[3].transport,
        Transport::Dtu(DtuMatch {
            registration: b"8651".to_vec(),
            mode: RegistrationMode::EveryPacket,
            heartbeat: Some(b"www.usr.cn".to_vec()),
        })
    );
}

/// Character times worked out by hand: 8N1 is 10 bits, 8E1 11 bits; t3.5
/// is 3.5 characters up to 19 200 baud and 1.75 ms above.
#[test]
fn line_timing_by_hand() {
    let line = |baud, parity| SerialLine {
        baud,
        parity,
        data_bits: 8,
        stop_bits: 1,
        turnaround: Duration::ZERO,
    };
    // 10 bits / 9600 bit/s = 1.041666 ms; × 3.5 = 3.645833 ms.
    assert_eq!(
        line(9600, Parity::None).char_time(),
        Duration::from_nanos(1_041_666)
    );
    assert_eq!(
        line(9600, Parity::None).silence(),
        Duration::from_nanos(3_645_833)
    );
    // 11 bits / 9600 = 1.145833 ms; × 3.5 = 4.010416 ms.
    assert_eq!(
        line(9600, Parity::Even).silence(),
        Duration::from_nanos(4_010_416)
    );
    // 17 bytes × 10 bits / 9600 = 17.708333 ms.
    assert_eq!(
        line(9600, Parity::None).wire_time(17),
        Duration::from_nanos(17_708_333)
    );
    assert_eq!(
        line(115_200, Parity::None).silence(),
        Duration::from_micros(1750)
    );
}

#[test]
fn wrong_field_bus_keys_are_reported_with_the_fix() {
    let got = errors(
        r#"
[dtu]
listen = "anywhere"

[[endpoints]]
id = "a"
transport = "rs485"
host = "h"

[[endpoints]]
id = "b"
host = "h"
baud = 9600
device = "/dev/ttyS0"
registration = "x"

[[endpoints]]
id = "c"
transport = "serial"
parity = "mark"
data_bits = 9

[[endpoints]]
id = "d"
transport = "dtu"
host = "h"

[[endpoints]]
id = "e"
transport = "dtu"
registration = "IMEI1"
registration_hex = "01"
heartbeat_hex = "0G"

[[endpoints]]
id = "f"
transport = "dtu"
registration = "IMEI12"

[[endpoints]]
id = "g"
transport = "dtu"
registration = "IMEI1"

[[endpoints]]
id = "h"
transport = "dtu"
registration = "Z"
registration_mode = "always"
"#,
    );
    assert_eq!(
        got,
        [
            "emgate.toml: dtu.listen: \"anywhere\" is not an address to listen on; write IP:port, e.g. \"0.0.0.0:20502\" to accept DTUs from the network",
            "emgate.toml: endpoints[0].transport: unknown transport \"rs485\"; expected one of: tcp, rtu_over_tcp, serial, dtu",
            "emgate.toml: endpoints[1].device: does not apply to transport = \"tcp\" (only to serial); remove it",
            "emgate.toml: endpoints[1].baud: does not apply to transport = \"tcp\" (only to rtu_over_tcp, serial and dtu); remove it",
            "emgate.toml: endpoints[1].registration: does not apply to transport = \"tcp\" (only to dtu); remove it",
            "emgate.toml: endpoints[2].parity: unknown parity \"mark\"; expected one of: none, even, odd",
            "emgate.toml: endpoints[2].data_bits: 9 is too large; the maximum is 8",
            "emgate.toml: endpoints[2].device: missing required key; give the serial device, e.g. \"/dev/ttyUSB0\"",
            "emgate.toml: endpoints[3].host: does not apply to transport = \"dtu\" (only to tcp and rtu_over_tcp); remove it",
            "emgate.toml: endpoints[3].registration: missing required key; give the packet the DTU sends when it connects, as text (registration = \"IMEI...\") or as hex (registration_hex = \"...\")",
            "emgate.toml: endpoints[4].registration_hex: give either registration or registration_hex, not both",
            "emgate.toml: endpoints[4].heartbeat_hex: \"0G\" is not hex; write pairs of hex digits, spaces allowed, e.g. \"7777 772E 7573 722E 636E\"",
            "emgate.toml: endpoints[7].registration_mode: unknown registration mode \"always\"; expected one of: connect, every_packet",
            "emgate.toml: endpoints[6].registration: \"IMEI1\" cannot be told apart from the registration of endpoint \"f\" (one is the start of the other); give each DTU its own",
        ]
    );
}

/// `dlt645_preamble`: 4 wake-up bytes by default, 0..=8 on serial-framed
/// endpoints, an error on Modbus TCP.
#[test]
fn the_dlt645_preamble_is_per_bus() {
    let c = load(
        "[[endpoints]]\nid = \"a\"\ntransport = \"rtu_over_tcp\"\nhost = \"h\"\n\n[[endpoints]]\nid = \"b\"\ntransport = \"serial\"\ndevice = \"/dev/ttyUSB0\"\ndlt645_preamble = 0\n",
    );
    assert_eq!(
        (
            c.endpoints[0].dlt645_preamble,
            c.endpoints[1].dlt645_preamble
        ),
        (4, 0)
    );
    assert_eq!(
        errors(
            "[[endpoints]]\nid = \"a\"\nhost = \"h\"\ndlt645_preamble = 2\n\n[[endpoints]]\nid = \"b\"\ntransport = \"dtu\"\nregistration = \"r\"\ndlt645_preamble = 9\n"
        ),
        [
            "emgate.toml: endpoints[0].dlt645_preamble: does not apply to transport = \"tcp\" (only to rtu_over_tcp, serial and dtu); remove it",
            "emgate.toml: endpoints[1].dlt645_preamble: 9 is too large; the maximum is 8",
        ]
    );
}
