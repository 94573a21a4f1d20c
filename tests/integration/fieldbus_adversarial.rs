//! Answers that do not answer the question, on every transport: our own
//! scripted device ([`RawBus`]) behind Modbus TCP, RTU over TCP, a dial-in
//! DTU and a serial pty answers under another transaction id, from another
//! unit, with lengths that disagree, with more or fewer registers than
//! asked, with a bad CRC, late (after the next request went out), split
//! into 1-byte writes, with endless garbage, by closing mid-frame, or not
//! at all. Each misbehaving device is alone on its own endpoint, beside a
//! good simulated meter on another.
//!
//! Every reading of every misbehaving meter must carry exactly the quality
//! bit and detail pinned below, per point (`first_v`, then `second_v`: two
//! reads of two registers, see `fieldbus_common::RAW_PROFILE`); a value only
//! where the right answer came, and then the exact one; the good meter keeps
//! every slot; `emgate_modbus_answers_rejected_total{reason}` counts exactly
//! the rejected reads.
//!
//! What is pinned, and why (see `sources/modbus/client.rs`):
//! * on RTU transports a frame that fails a check is skipped (it may be a
//!   stale answer) and reported when the read's timeout ends; the link stays,
//!   so the meter's second read meets the same fault;
//! * on Modbus TCP a frame under the read's transaction id that fails a
//!   check is final at once and the link stays; a frame under another id is
//!   skipped until the timeout, then the link is renewed and the meter's
//!   other reads wait for the next slot (`timeout`, no detail);
//! * a read that saw only garbage is `exception:garbage`; a link closed in
//!   the middle of a frame `exception:truncated` (the link is renewed: the
//!   second read waits); no answer at all is `timeout` without detail, and
//!   the meter's other reads wait;
//! * a late answer is never the next read's value: the late device answers
//!   `second_v`'s read only when the next request (the next slot's
//!   `first_v`) arrives, right before that request's own answer, with the
//!   same unit, function and count: `first_v` must still get its own value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use emgate::app::Control;
use emgate::model::Detail;
use emgate::sim::SimOptions;
use emgate::telemetry::Stats;
use tokio::sync::mpsc;

use super::fieldbus_common::{
    FIRST_VALUE, Line, RAW_PROFILE, SECOND_VALUE, metric, metrics, of_meter, raw_device,
    reading_lines,
};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::raw_bus::{Act, Framing, RawBus, RawDevice};
use crate::support::socat::PtyPair;
use crate::support::test_gateway::TestGateway;
use crate::support::{consecutive, free_port, timed};

/// Rounds every meter gets before the gateway stops.
const ROUNDS: u64 = 6;
/// Readings of each misbehaving meter that must match (a DTU's first ones
/// may come before it dialled in).
const MIN_CHECKED: usize = 3;

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

/// One misbehaving device: its endpoint (and meter) name, what it does,
/// and what `first_v` and `second_v` must carry.
struct Case {
    name: &'static str,
    device: RawDevice,
    first: Want,
    second: Want,
}

fn case(name: &'static str, script: &[Act], first: Want, second: Want) -> Case {
    Case {
        name,
        device: RawDevice::new(raw_device(1), script),
        first,
        second,
    }
}

/// Answers right: the control (the raw bus and the profile agree).
fn right() -> Case {
    case(
        "right",
        &[Act::Right],
        Value(FIRST_VALUE),
        Value(SECOND_VALUE),
    )
}

/// `second_v`'s read is always answered late, `first_v`'s always right.
fn late() -> Case {
    Case {
        name: "late",
        device: RawDevice::new(raw_device(1), &[Act::Right]).at(100, Act::Late),
        first: Value(FIRST_VALUE),
        second: Timeout,
    }
}

fn split() -> Case {
    case(
        "split",
        &[Act::Split],
        Value(FIRST_VALUE),
        Value(SECOND_VALUE),
    )
}

fn silent() -> Case {
    case("silent", &[Act::Silence], Timeout, Timeout)
}

fn count_cases() -> [Case; 2] {
    let wc = Exception("wrong_count");
    [
        case("more", &[Act::WrongCount(2)], wc, wc),
        case("fewer", &[Act::WrongCount(-1)], wc, wc),
    ]
}

/// The cases every RTU transport shares (a pty cannot be closed mid-frame,
/// so `close` is added where a link can close).
fn rtu_cases() -> Vec<Case> {
    let mut cases = vec![
        right(),
        case(
            "wrong_unit",
            &[Act::WrongUnit],
            Exception("wrong_unit"),
            Exception("wrong_unit"),
        ),
        case(
            "bad_crc",
            &[Act::BadCrc],
            Exception("bad_crc"),
            Exception("bad_crc"),
        ),
        late(),
        split(),
        case(
            "garbage",
            &[Act::Garbage],
            Exception("garbage"),
            Exception("garbage"),
        ),
        silent(),
    ];
    cases.extend(count_cases());
    cases
}

fn close_case() -> Case {
    case(
        "close",
        &[Act::CloseMidFrame],
        Exception("truncated"),
        Timeout,
    )
}

/// Keys every misbehaving endpoint gets: short timeouts keep the suite fast.
const BAD_KEYS: &str = "timeout_ms = 300\nreconnect_initial_ms = 50\nreconnect_max_ms = 200";

/// The gateway: the good meter on the simulator's endpoint `good`; with
/// `bad` (endpoint tables and cases), one meter per case on its endpoint.
fn gateway(api: u16, extra: &str, bad: Option<(&str, &[Case])>) -> GatewayToml {
    let mut site = Site::new("S1", "adversarial").meter(modbus(
        "good-1",
        "electricity",
        "eastron_sdm630",
        "good",
        1,
    ));
    let mut toml = GatewayToml::new("adversarial")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .section("api", &format!("listen = \"127.0.0.1:{api}\""))
        .profile("raw_pair", RAW_PROFILE)
        .endpoint("good", "timeout_ms = 500");
    if let Some((tables, cases)) = bad {
        toml = toml.toml(extra).toml(tables);
        for c in cases {
            site = site.meter(modbus(c.name, "electricity", "raw_pair", c.name, 1).level(2));
        }
    }
    toml.site("s1.toml", site)
}

/// Runs the good meter and the misbehaving ones for [`ROUNDS`] rounds and
/// checks everything the module promises. `tables` are the `[[endpoints]]`
/// of the cases (one per case, named after it), `extra` any other section
/// (`[dtu]`), `buses` the cases' devices (in their order),
/// `not_connected_first`: readings before a DTU dialled in are allowed
/// (only before its first other reading).
async fn run(
    tables: &str,
    extra: &str,
    cases: &[Case],
    buses: &[RawBus],
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
        // Silence and timeouts prove nothing unless the device was asked.
        if bus.requests() < MIN_CHECKED as u64 {
            failures.push(format!(
                "{}: the device got {} requests",
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

    // Rejected reads: each point of the raw profile is one read.
    let mut points: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        for d in l.details() {
            if let Some(reason) = d.split(":exception:").nth(1) {
                *points.entry(reason.to_owned()).or_default() += 1;
            }
        }
    }
    for (i, (_, reason)) in Detail::NAMES.iter().enumerate() {
        let counted = Stats::get(&stats.answers_rejected[i]);
        let in_lines = points.remove(*reason).unwrap_or(0);
        if counted != in_lines {
            failures.push(format!(
                "answers_rejected[{reason}] = {counted}, but {in_lines} points say exception:{reason}"
            ));
        }
        if in_lines > 0 {
            let exposed = metric(
                &exposition,
                "emgate_modbus_answers_rejected_total",
                &[&format!("reason=\"{reason}\"")],
            );
            if !exposed.is_some_and(|v| v >= 1.0) {
                failures.push(format!(
                    "emgate_modbus_answers_rejected_total{{reason=\"{reason}\"}} = {exposed:?} while the gateway ran"
                ));
            }
        }
    }
    if !points.is_empty() {
        failures.push(format!("details that are no Detail: {points:?}"));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
            if waiting && l.value("first_v").is_none() && l.value("second_v").is_none() {
                continue;
            }
            started = true;
        }
        checked += 1;
        let mut q = 0;
        let mut details = Vec::new();
        for (point, want) in [("first_v", c.first), ("second_v", c.second)] {
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
                Timeout | Exception(_) => {
                    if let Some(v) = got {
                        failures.push(format!(
                            "{}: {point} = {v}, want no value: {}",
                            c.name, l.text
                        ));
                    }
                }
            }
            match want {
                Value(_) => {}
                Timeout => {
                    q |= 1;
                    details.push(format!("{point}:timeout"));
                }
                Exception(d) => {
                    q |= 2;
                    details.push(format!("{point}:exception:{d}"));
                }
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
            .filter(|k| !["first_v", "second_v", "q", "q_detail", "lag_ms"].contains(&k.as_str()))
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

/// Modbus TCP: MBAP answers from the raw bus.
#[tokio::test]
async fn modbus_tcp_answers_that_do_not_answer_are_never_values() {
    let mut cases = vec![
        right(),
        case(
            "wrong_transaction",
            &[Act::WrongTransaction],
            Exception("wrong_transaction"),
            Timeout,
        ),
        case(
            "wrong_unit",
            &[Act::WrongUnit],
            Exception("wrong_unit"),
            Exception("wrong_unit"),
        ),
        case(
            "bad_length",
            &[Act::BadLength],
            Exception("bad_length"),
            Exception("bad_length"),
        ),
        late(),
        split(),
        case("garbage", &[Act::Garbage], Exception("garbage"), Timeout),
        close_case(),
        silent(),
    ];
    cases.extend(count_cases());
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let bus = RawBus::tcp(Framing::Mbap, vec![c.device.clone()]).await;
        let _ = write!(
            tables,
            "\n[[endpoints]]\nid = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\n{BAD_KEYS}\n",
            c.name,
            bus.port()
        );
        buses.push(bus);
    }
    run(&tables, "", &cases, &buses, false).await;
}

/// RTU over TCP (a serial server in transparent mode).
#[tokio::test]
async fn rtu_over_tcp_answers_that_do_not_answer_are_never_values() {
    let mut cases = rtu_cases();
    cases.push(close_case());
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let bus = RawBus::tcp(Framing::Rtu, vec![c.device.clone()]).await;
        let _ = write!(
            tables,
            "\n[[endpoints]]\nid = \"{}\"\ntransport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = {}\n{BAD_KEYS}\n",
            c.name,
            bus.port()
        );
        buses.push(bus);
    }
    run(&tables, "", &cases, &buses, false).await;
}

/// Dial-in DTUs, each with its own registration, redialling after a close.
#[tokio::test]
async fn dtu_answers_that_do_not_answer_are_never_values() {
    let mut cases = rtu_cases();
    cases.push(close_case());
    let dtu_port = free_port();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], dtu_port));
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let registration = format!("RAW-{}", c.name);
        buses.push(RawBus::dtu(
            listen,
            registration.as_bytes(),
            vec![c.device.clone()],
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

/// A serial port: the gateway on one end of a pty pair, the raw bus on the
/// other.
#[tokio::test]
async fn serial_answers_that_do_not_answer_are_never_values() {
    let cases = rtu_cases();
    let mut ptys = Vec::new();
    let mut buses = Vec::new();
    let mut tables = String::new();
    for c in &cases {
        let pty = PtyPair::start();
        buses.push(RawBus::serial(&pty.a(), vec![c.device.clone()]));
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
