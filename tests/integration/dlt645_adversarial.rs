//! DL/T 645 answers that do not answer, on every serial-framed transport:
//! our own scripted meter ([`RawDltBus`], frames built by its own encoder)
//! behind RTU over TCP, a dial-in DTU and a serial pty answers from another
//! address, for another DI, with a bad checksum, with a value one byte too
//! long, with a non-BCD digit, cut short (with the link closed, or not),
//! with wake-up bytes and no frame, with random bytes, with an error answer
//! (0xD1) and its error byte, split into 1-byte writes, after a stray 0x68
//! that makes a false frame header, after an echo of the request, under
//! the follow-up control code 0xB1, from an address full of 0x68 and 0x16
//! without wake-up bytes, or not at all. Each
//! misbehaving meter is alone on its own endpoint, beside a good simulated
//! Modbus meter on another.
//!
//! Every reading of every misbehaving meter must carry exactly the quality
//! bit and detail pinned below, per point (`import_kwh`, then
//! `voltage_a_v`: two DIs, two requests, see [`DLT_PAIR`]); a value only
//! where the right answer came, and then the exact one; the good meter keeps
//! every slot; `emgate_modbus_answers_rejected_total{reason}` counts exactly
//! the failed checks, and never an error answer (that is the meter's own
//! answer, not a failed check).
//!
//! What is pinned, and why (see `sources/dlt645/client.rs`):
//! * a frame that fails a check (address, DI, length, checksum) is skipped
//!   and reported at the read's deadline; the link stays, so the meter's
//!   second read meets the same fault; a non-BCD digit is final at once;
//! * bytes that never became a frame (random bytes, wake-up bytes alone, a
//!   frame cut short on a link that stays) are `garbage`; a link closed
//!   in the middle of a frame is `truncated`, and the meter's second read
//!   waits for the next slot (`timeout`, no detail);
//! * an error answer is `exception` with the reason of its error byte's
//!   lowest set bit (0x48 has bits 3 and 6: `dlt645:baud_rate`);
//! * no answer at all is `timeout` without detail, and the meter's other
//!   reads wait for the next slot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use emgate::app::Control;
use emgate::model::Detail;
use emgate::sim::SimOptions;
use emgate::telemetry::Stats;
use tokio::sync::mpsc;

use super::fieldbus_common::{Line, metric, metrics, of_meter, reading_lines};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::raw_dlt645::{Act, RawDltBus, RawMeter, bcd};
use crate::support::socat::PtyPair;
use crate::support::test_gateway::TestGateway;
use crate::support::{consecutive, free_port, timed};

/// Rounds every meter gets before the gateway stops.
const ROUNDS: u64 = 6;
/// Readings of each misbehaving meter that must match (a DTU's first ones
/// may come before it dialled in).
const MIN_CHECKED: usize = 3;

/// The profile of the raw meters: forward active energy and phase A
/// voltage, two DIs in two formats.
pub const DLT_PAIR: &str = r#"protocol = "dlt645"
description = "two DIs (DL/T 645 tests)"

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
"#;

/// The nameplate address of every raw meter (each is alone on its endpoint).
const ADDRESS: &str = "123456789012";
/// 12345.67 kWh and 220.1 V: what the raw meters hold.
const ENERGY: f64 = 12_345.67;
/// See [`ENERGY`].
const VOLTAGE: f64 = 220.1;

/// [`ENERGY`] and [`VOLTAGE`] as their DIs' bytes: 01234567 in 4 bytes,
/// 2201 in 2, lowest first.
fn values() -> Vec<(u32, Vec<u8>)> {
    vec![
        (0x0001_0000, bcd(1_234_567, 4, false)),
        (0x0201_0100, bcd(2_201, 2, false)),
    ]
}

/// What one point of a misbehaving meter must carry in every reading.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// This exact value, no flag.
    Value(f64),
    /// `q` bit 1, `point:timeout`, no detail, no value.
    Timeout,
    /// `q` bit 2, `point:exception:<detail>`, no value.
    Exception(&'static str),
}

use Want::{Exception, Timeout, Value};

/// One misbehaving meter: its endpoint (and meter) name, what it does, and
/// what `import_kwh` and `voltage_a_v` must carry.
struct Case {
    name: &'static str,
    /// The meter's nameplate address.
    nameplate: &'static str,
    meter: RawMeter,
    first: Want,
    second: Want,
}

fn case(name: &'static str, act: Act, first: Want, second: Want) -> Case {
    Case {
        name,
        nameplate: ADDRESS,
        meter: RawMeter::new(ADDRESS, &values(), &[act]),
        first,
        second,
    }
}

/// Both points fail alike.
fn both(name: &'static str, act: Act, want: Want) -> Case {
    case(name, act, want, want)
}

/// The cases every transport shares.
fn cases() -> Vec<Case> {
    vec![
        case("right", Act::Right, Value(ENERGY), Value(VOLTAGE)),
        case("split", Act::Split, Value(ENERGY), Value(VOLTAGE)),
        case("follow_up", Act::FollowUp, Value(ENERGY), Value(VOLTAGE)),
        case("echo", Act::Echo, Value(ENERGY), Value(VOLTAGE)),
        // 0x68 and 0x16 in the address, and no wake-up bytes: framing
        // by length, not by searching for 68 and 16.
        Case {
            name: "address_68_16",
            nameplate: "681668166816",
            meter: RawMeter {
                preamble: 0,
                ..RawMeter::new("681668166816", &values(), &[Act::Right])
            },
            first: Value(ENERGY),
            second: Value(VOLTAGE),
        },
        both(
            "wrong_address",
            Act::WrongAddress,
            Exception("wrong_address"),
        ),
        both("wrong_di", Act::WrongDi, Exception("wrong_di")),
        both("bad_checksum", Act::BadChecksum, Exception("bad_checksum")),
        both("wrong_length", Act::WrongLength, Exception("wrong_count")),
        both("bad_bcd", Act::BadBcd, Exception("bad_bcd")),
        both("half", Act::Half, Exception("garbage")),
        both("preamble", Act::PreambleOnly, Exception("garbage")),
        both("random", Act::Random, Exception("garbage")),
        both("no_data", Act::Error(0x02), Exception("dlt645:no_data")),
        both("password", Act::Error(0x04), Exception("dlt645:password")),
        both("other", Act::Error(0x01), Exception("dlt645:other")),
        both("baud_rate", Act::Error(0x48), Exception("dlt645:baud_rate")),
        both("silent", Act::Silence, Timeout),
        // One DI failing does not stop the other's read (a timeout does).
        Case {
            name: "energy_bad_checksum",
            nameplate: ADDRESS,
            meter: RawMeter::new(ADDRESS, &values(), &[Act::Right])
                .at(0x0001_0000, Act::BadChecksum),
            first: Exception("bad_checksum"),
            second: Value(VOLTAGE),
        },
        Case {
            name: "voltage_no_data",
            nameplate: ADDRESS,
            meter: RawMeter::new(ADDRESS, &values(), &[Act::Right])
                .at(0x0201_0100, Act::Error(0x02)),
            first: Value(ENERGY),
            second: Exception("dlt645:no_data"),
        },
        // Addresses may hold 0x68 (domain.md, fieldbus.md §6): a stray
        // 0x68 before the answer of meter 680000000001 (on the wire
        // 01 00 00 00 00 68) makes `68 | 68 01 00 00 00 00 | 68 | 68 91`:
        // a header claiming 0x91 data bytes that never come. The whole
        // answer behind it must still be found.
        Case {
            name: "stray_68",
            nameplate: "680000000001",
            meter: RawMeter::new("680000000001", &values(), &[Act::Stray68]),
            first: Value(ENERGY),
            second: Value(VOLTAGE),
        },
    ]
}

/// Cut short and the link closed: where a link can close (not a pty).
fn close_case() -> Case {
    case(
        "truncated",
        Act::TruncatedClose,
        Exception("truncated"),
        Timeout,
    )
}

/// Keys every misbehaving endpoint gets: short timeouts keep the suite fast.
const BAD_KEYS: &str = "timeout_ms = 300\nreconnect_initial_ms = 50\nreconnect_max_ms = 200";

/// A site file's `[[meters]]` table for DL/T 645 meter `id` at `address`
/// on `endpoint` (the config builder speaks Modbus and MQTT only).
pub fn dlt645_meter(id: &str, profile: &str, endpoint: &str, address: &str) -> String {
    format!(
        "\n[[meters]]\nid = \"{id}\"\nenergy = \"electricity\"\nlevel = 2\nprofile = \"{profile}\"\nendpoint = \"{endpoint}\"\naddress = \"{address}\"\npoll_interval_secs = 1\n"
    )
}

/// The gateway: the good meter on the simulator's endpoint `good`; with
/// `bad` (endpoint tables and cases), one DL/T 645 meter per case on its
/// endpoint.
fn gateway(api: u16, extra: &str, bad: Option<(&str, &[Case])>) -> GatewayToml {
    let mut site = Site::new("S1", "adversarial DL/T 645")
        .meter(modbus("good-1", "electricity", "eastron_sdm630", "good", 1))
        .to_string();
    let mut toml = GatewayToml::new("adversarial-dlt645")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .section("api", &format!("listen = \"127.0.0.1:{api}\""))
        .profile("dlt_pair", DLT_PAIR)
        .endpoint("good", "timeout_ms = 500");
    if let Some((tables, cases)) = bad {
        toml = toml.toml(extra).toml(tables);
        for c in cases {
            site.push_str(&dlt645_meter(c.name, "dlt_pair", c.name, c.nameplate));
        }
    }
    toml.site("s1.toml", site)
}

/// Runs the good meter and the misbehaving ones for [`ROUNDS`] rounds and
/// checks everything the module promises. `tables` are the `[[endpoints]]`
/// of the cases (one per case, named after it), `extra` any other section
/// (`[dtu]`), `buses` the cases' buses (in their order),
/// `not_connected_first`: readings before a DTU dialled in are allowed
/// (only before its first other reading).
async fn run(
    tables: &str,
    extra: &str,
    cases: &[Case],
    buses: &[RawDltBus],
    not_connected_first: bool,
) {
    // The good meter's slots are the test's evidence: time must be kept.
    let _timed = timed().await;
    let api = free_port();
    let mut gw = TestGateway::prepare(&gateway(api, "", None), SimOptions::default()).await;
    gw.files
        .rewrite(&gateway(api, extra, Some((tables, cases))));
    let (tx, rx) = mpsc::channel(1);
    gw.run_with(Control {
        reload: Some(rx),
        api: Some(tx),
    });
    let meters = cases.len() as u64 + 1;
    gw.wait_for(
        format!("{ROUNDS} rounds of {meters} meters"),
        Duration::from_mins(1),
        |s| Stats::get(&s.readings) >= ROUNDS * meters,
    )
    .await;
    let exposition = metrics(api).await;
    gw.stop().await;
    gw.sim.stop();
    let lines = reading_lines(&gw.files.data_dir());
    let stats = gw.stats();
    assert_eq!(
        lines.len() as u64,
        Stats::get(&stats.readings),
        "every reading is written"
    );

    let mut failures = Vec::new();
    for (c, bus) in cases.iter().zip(buses) {
        check_case(
            c,
            &of_meter(&lines, c.name),
            not_connected_first,
            &mut failures,
        );
        // Silence and timeouts prove nothing unless the meter was asked.
        if bus.requests() < MIN_CHECKED as u64 {
            failures.push(format!(
                "{}: the meter got {} requests",
                c.name,
                bus.requests()
            ));
        }
    }

    let good = of_meter(&lines, "good-1");
    let slots = good.iter().map(|l| l.slot).collect();
    if good.len() < ROUNDS as usize - 1 || !consecutive(&slots) {
        failures.push(format!("good meter lost slots: {slots:?}"));
    }
    for l in &good {
        if l.q() != 0 || l.value("import_kwh").is_none() {
            failures.push(format!("good meter flagged: {}", l.text));
        }
    }
    check_rejected(&lines, stats, &exposition, &mut failures);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each point of a DL/T 645 meter is one request: the failed checks the
/// lines show are exactly what `answers_rejected` counted (and the API
/// exposed while the gateway ran); error answers are in the lines but
/// never counted.
fn check_rejected(lines: &[Line], stats: &Stats, exposition: &str, failures: &mut Vec<String>) {
    let mut points: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines {
        for d in l.details() {
            if let Some(reason) = d.split(":exception:").nth(1) {
                *points.entry(reason.to_owned()).or_default() += 1;
            }
        }
    }
    for (i, (_, reason)) in Detail::NAMES.iter().enumerate() {
        let counted = Stats::get(&stats.answers_rejected[i]);
        let in_lines = points.remove(*reason).unwrap_or(0);
        let error_answer = reason.starts_with("dlt645:");
        let want = if error_answer { 0 } else { in_lines };
        if counted != want {
            failures.push(format!(
                "answers_rejected[{reason}] = {counted}, want {want} ({in_lines} points say exception:{reason})"
            ));
        }
        let exposed = metric(
            exposition,
            "emgate_modbus_answers_rejected_total",
            &[&format!("reason=\"{reason}\"")],
        );
        if error_answer && exposed.is_some_and(|v| v > 0.0) {
            failures.push(format!(
                "an error answer counted as rejected: {reason} = {exposed:?}"
            ));
        }
        if !error_answer && in_lines > 0 && !exposed.is_some_and(|v| v >= 1.0) {
            failures.push(format!(
                "emgate_modbus_answers_rejected_total{{reason=\"{reason}\"}} = {exposed:?} while the gateway ran"
            ));
        }
    }
    if !points.is_empty() {
        failures.push(format!("details that are no Detail: {points:?}"));
    }
}

/// Checks every reading of `c`'s meter against its wants.
fn check_case(c: &Case, lines: &[&Line], not_connected_first: bool, failures: &mut Vec<String>) {
    let mut checked = 0;
    let mut started = !not_connected_first;
    for l in lines {
        if !started {
            let waiting = l.q() == 1
                && !l.details().is_empty()
                && l.details()
                    .iter()
                    .all(|d| d.ends_with(":timeout:not_connected"));
            if waiting && l.value("import_kwh").is_none() && l.value("voltage_a_v").is_none() {
                continue;
            }
            started = true;
        }
        checked += 1;
        let mut q = 0;
        let mut details = Vec::new();
        for (point, want) in [("import_kwh", c.first), ("voltage_a_v", c.second)] {
            let got = l.value(point);
            match want {
                Value(v) => {
                    if got != Some(v) {
                        failures.push(format!(
                            "{}: {point} = {got:?}, want {v}: {}",
                            c.name, l.text
                        ));
                    }
                }
                Timeout => {
                    q |= 1;
                    details.push(format!("{point}:timeout"));
                }
                Exception(d) => {
                    q |= 2;
                    details.push(format!("{point}:exception:{d}"));
                }
            }
            if let (Timeout | Exception(_), Some(v)) = (want, got) {
                failures.push(format!(
                    "{}: {point} = {v}, want no value: {}",
                    c.name, l.text
                ));
            }
        }
        if l.q() != q || l.details() != details {
            failures.push(format!(
                "{}: q={} q_detail={:?}, want q={q} q_detail={details:?}: {}",
                c.name,
                l.q(),
                l.details(),
                l.text
            ));
        }
        let extra: Vec<_> = l
            .fields
            .keys()
            .filter(|k| {
                !["import_kwh", "voltage_a_v", "q", "q_detail", "lag_ms"].contains(&k.as_str())
            })
            .collect();
        if !extra.is_empty() {
            failures.push(format!(
                "{}: unexpected fields {extra:?}: {}",
                c.name, l.text
            ));
        }
    }
    if checked < MIN_CHECKED {
        failures.push(format!(
            "{}: only {checked} readings checked (of {})",
            c.name,
            lines.len()
        ));
    }
}

/// RTU over TCP (a serial server in transparent mode).
#[tokio::test]
async fn rtu_over_tcp_dlt645_answers_that_do_not_answer_are_never_values() {
    let mut cases = cases();
    cases.push(close_case());
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let bus = RawDltBus::tcp(vec![c.meter.clone()]).await;
        let _ = write!(
            tables,
            "\n[[endpoints]]\nid = \"{}\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\nbaud = 2400\nparity = \"even\"\n{BAD_KEYS}\n",
            c.name,
            bus.port()
        );
        buses.push(bus);
    }
    run(&tables, "", &cases, &buses, false).await;
}

/// Dial-in DTUs, each with its own registration, redialling after a close.
#[tokio::test]
async fn dtu_dlt645_answers_that_do_not_answer_are_never_values() {
    let mut cases = cases();
    cases.push(close_case());
    let dtu_port = free_port();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], dtu_port));
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let registration = format!("DLT-{}", c.name);
        buses.push(RawDltBus::dtu(
            listen,
            registration.as_bytes(),
            vec![c.meter.clone()],
        ));
        let _ = write!(
            tables,
            "\n[[endpoints]]\nid = \"{}\"\ntransport = \"dtu\"\nregistration = \"{registration}\"\ntimeout_ms = 300\n",
            c.name
        );
    }
    let extra = format!("[dtu]\nlisten = \"{listen}\"\n");
    run(&tables, &extra, &cases, &buses, true).await;
}

/// A serial port: the gateway on one end of a pty pair, the raw meter on
/// the other (a pty cannot be closed mid-frame: no `truncated` case).
#[tokio::test]
async fn serial_dlt645_answers_that_do_not_answer_are_never_values() {
    let cases = cases();
    let mut ptys = Vec::new();
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let pty = PtyPair::start();
        buses.push(RawDltBus::serial(&pty.a(), vec![c.meter.clone()]));
        let _ = write!(
            tables,
            "\n[[endpoints]]\nid = \"{}\"\ntransport = \"serial\"\ndevice = {}\nbaud = 9600\ntimeout_ms = 300\n",
            c.name,
            toml::Value::String(pty.b().display().to_string())
        );
        ptys.push(pty);
    }
    run(&tables, "", &cases, &buses, false).await;
}
