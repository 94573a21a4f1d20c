//! Bus timing: how long one poll round of a serial-framed endpoint takes on
//! the wire, planned from the configuration alone, so that `check-config`
//! can say before the gateway runs that a bus cannot keep up with the poll
//! interval of its meters, and the status board can set what it measures
//! beside what was planned.
//!
//! The model (the README states it the same way):
//! * every meter on the bus is polled with the reads the planner makes for
//!   it ([`plan`] with the endpoint's `max_gap` and `max_registers`, as the
//!   poller does);
//! * one read costs the wire time of its request (8 bytes) and of its
//!   answer (5 bytes plus the data: 2 per register, one per 8 coils or
//!   inputs), the inter-frame silence after each (2 × t3.5), the
//!   endpoint's `turnaround` and its `inter_request_delay`;
//! * the wire time of n bytes is n × bits per character / baud;
//! * a round is the sum over every read of every meter; the bus's budget
//!   is the shortest poll interval of its meters, and utilisation is round /
//!   budget.
//!
//! `tcp` endpoints have no wire model: only their request count is known.
//! A question and its answer are an [`Exchange`] of bytes, so another
//! protocol's requests (DL/T 645) add an arm to [`meter_exchanges`], not a
//! second model. Pure: configuration in, numbers and text out.

use std::fmt::Write as _;
use std::time::Duration;

use super::plan::{PlanLimits, PlannedRead, plan};
use crate::config::{Config, EndpointConfig, MeterSource, Parity, SerialLine, Transport};
use crate::model::{EndpointId, MeterId};
use crate::telemetry::StatusBoard;

/// Bytes of a Modbus RTU read request: unit, function, start (2), count (2), CRC (2).
pub const MODBUS_REQUEST_BYTES: usize = 8;

/// Bytes of a Modbus RTU read answer besides its data: unit, function, byte count, CRC (2).
pub const MODBUS_ANSWER_OVERHEAD_BYTES: usize = 5;

/// Meters a warning names before it says "and N more".
pub const METERS_NAMED: usize = 5;

/// One question and its answer on the wire, in characters (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Bytes of the request.
    pub request: usize,
    /// Bytes of the (normal) answer.
    pub answer: usize,
}

impl Exchange {
    /// A Modbus RTU read: 8 bytes out; back 5 bytes and the data, 2 per
    /// register or one per 8 bits (coils, discrete inputs).
    #[must_use]
    pub fn modbus_read(read: &PlannedRead) -> Exchange {
        let count = usize::from(read.count);
        let data = if read.kind.is_bit() {
            count.div_ceil(8)
        } else {
            2 * count
        };
        Exchange {
            request: MODBUS_REQUEST_BYTES,
            answer: MODBUS_ANSWER_OVERHEAD_BYTES + data,
        }
    }

    /// A DL/T 645 read of one data identifier: the wake-up preamble and 16
    /// bytes out (`68 A×6 68 C L DI×4 CS 16`); back 16 bytes and the
    /// value (answers' own preambles are not counted: makers send 0 to 4).
    #[must_use]
    pub fn dlt645_read(preamble: usize, value_bytes: u8) -> Exchange {
        Exchange {
            request: preamble + 16,
            answer: 16 + usize::from(value_bytes),
        }
    }

    /// Time of this exchange on `line`: both frames on the wire, the
    /// silence after each, the turnaround and the endpoint's `delay`
    /// between requests.
    #[must_use]
    pub fn time(self, line: &SerialLine, delay: Duration) -> Duration {
        line.wire_time(self.request)
            + line.wire_time(self.answer)
            + 2 * line.silence()
            + line.turnaround
            + delay
    }
}

/// How the poller merges reads on `endpoint`: its `max_gap` and
/// `max_registers`, and the protocol's 2000 bits.
#[must_use]
pub fn plan_limits(endpoint: &EndpointConfig) -> PlanLimits {
    PlanLimits {
        max_gap: endpoint.max_gap,
        max_registers: endpoint.max_registers,
        max_bits: super::plan::MAX_BITS_PER_READ,
    }
}

/// The exchanges one poll of `meter` makes, in the order it makes them.
#[must_use]
pub fn meter_exchanges(config: &Config, meter: MeterId) -> Vec<Exchange> {
    match config.meter(meter).source {
        MeterSource::Modbus { endpoint, .. } => {
            let limits = plan_limits(&config.endpoints[endpoint.index()]);
            plan(&config.profile_of(meter).points, limits)
                .iter()
                .map(Exchange::modbus_read)
                .collect()
        }
        MeterSource::Dlt645 { endpoint, .. } => {
            let preamble = usize::from(config.endpoints[endpoint.index()].dlt645_preamble);
            config
                .profile_of(meter)
                .points
                .iter()
                .filter_map(|pt| pt.dlt645)
                .map(|d| Exchange::dlt645_read(preamble, d.format.bytes))
                .collect()
        }
        MeterSource::Mqtt { .. } => Vec::new(),
    }
}

/// The planned timing of one bus (endpoint) and its meters.
#[derive(Debug, Clone, PartialEq)]
pub struct BusTiming {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its meters, in configuration order (never empty).
    pub meters: Vec<MeterId>,
    /// Requests of one round: every planned read of every meter.
    pub requests: usize,
    /// Wire time of one round; `None` without a wire model (`tcp`).
    pub round: Option<Duration>,
    /// The shortest poll interval of the meters.
    pub budget: Duration,
    /// `round / budget`; `None` without a wire model.
    pub utilisation: Option<f64>,
}

impl BusTiming {
    /// The timing of `endpoint`; `None` when no meter is polled through it.
    #[must_use]
    pub fn of(config: &Config, endpoint: EndpointId) -> Option<BusTiming> {
        let ep = &config.endpoints[endpoint.index()];
        let mut meters = Vec::new();
        let mut budget = Duration::MAX;
        let mut requests = 0;
        let mut round = Duration::ZERO;
        for (id, m) in config.meters_on(endpoint) {
            meters.push(id);
            budget = budget.min(m.poll_interval);
            for exchange in meter_exchanges(config, id) {
                requests += 1;
                if let Some(line) = &ep.line {
                    round += exchange.time(line, ep.inter_request_delay);
                }
            }
        }
        if meters.is_empty() {
            return None;
        }
        let round = ep.line.is_some().then_some(round);
        Some(BusTiming {
            endpoint,
            meters,
            requests,
            round,
            budget,
            utilisation: round.map(|r| ratio(r, budget)),
        })
    }

    /// Whether a round fits in the budget (always, without a wire model).
    #[must_use]
    pub fn fits(&self) -> bool {
        self.round.is_none_or(|r| r <= self.budget)
    }

    /// The line `check-config` prints for this bus, e.g. `bus rs485-a
    /// (rtu_over_tcp 10.0.0.5:4001, 9600 8N1): 30 meter(s), 90 request(s),
    /// round 2250.0 ms, budget 5000 ms, utilisation 45.0 %`.
    #[must_use]
    pub fn line(&self, config: &Config) -> String {
        let ep = &config.endpoints[self.endpoint.index()];
        // `address()` of a DTU already says `dtu "REGISTRATION"`.
        let mut s = match ep.transport {
            Transport::Dtu(_) => format!("bus {} ({}", ep.id, ep.address()),
            _ => format!("bus {} ({} {}", ep.id, ep.transport.name(), ep.address()),
        };
        if let Some(line) = &ep.line {
            let _ = write!(s, ", {}", line_settings(line));
        }
        let _ = write!(
            s,
            "): {} meter(s), {} request(s)",
            self.meters.len(),
            self.requests
        );
        match (self.round, self.utilisation) {
            (Some(round), Some(u)) => {
                let _ = write!(
                    s,
                    ", round {}, budget {} ms, utilisation {:.1} %",
                    ms(round),
                    self.budget.as_millis(),
                    u * 100.0
                );
            }
            _ => {
                let _ = write!(s, "; no wire timing for {}", ep.transport.name());
            }
        }
        s
    }

    /// The warning `check-config` prints when a round does not fit in the
    /// budget; `None` when it fits.
    #[must_use]
    pub fn warning(&self, config: &Config) -> Option<String> {
        let (round, u) = self.round.zip(self.utilisation).filter(|_| !self.fits())?;
        let ep = &config.endpoints[self.endpoint.index()];
        let named: Vec<&str> = self
            .meters
            .iter()
            .take(METERS_NAMED)
            .map(|&m| config.meter(m).id.as_str())
            .collect();
        let more = self.meters.len().saturating_sub(METERS_NAMED);
        let mut names = named.join(", ");
        if more > 0 {
            let _ = write!(names, " and {more} more");
        }
        let settings = ep.line.as_ref().map(line_settings).unwrap_or_default();
        Some(format!(
            "warning: bus {}: one poll round does not fit in the shortest poll interval: \
             {} meter(s) ({names}), {} request(s), {} at {settings}, longer than {} ms \
             (utilisation {:.1} %); slots will be missed. Read fewer registers, use a \
             higher baud rate, a longer poll interval, or split the meters over more buses.",
            ep.id,
            self.meters.len(),
            self.requests,
            ms(round),
            self.budget.as_millis(),
            u * 100.0
        ))
    }
}

/// The timing of every endpoint that has meters, in configuration order.
#[must_use]
pub fn bus_timings(config: &Config) -> Vec<BusTiming> {
    (0..config.endpoints.len())
        .filter_map(|i| BusTiming::of(config, EndpointId(u32::try_from(i).ok()?)))
        .collect()
}

/// Tells `board` what one round of `endpoint` was planned to cost, so the
/// status shows it beside the measured round. The poller calls it once.
pub fn publish(config: &Config, endpoint: EndpointId, board: &StatusBoard) {
    if let Some(t) = BusTiming::of(config, endpoint) {
        board.set_planned_round(endpoint, t.requests, t.round);
    }
}

/// `a / b` as a float (`b` is at least one second: poll intervals are whole seconds).
fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::INFINITY
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// A duration as milliseconds with one decimal, e.g. `2250.0 ms`.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Line settings as written on devices: `9600 8N1`, `19200 8E1`.
fn line_settings(line: &SerialLine) -> String {
    let parity = match line.parity {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    };
    format!("{} {}{parity}{}", line.baud, line.data_bits, line.stop_bits)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::profiles::RegisterKind;

    /// A profile of three f32 holding registers far apart: three reads of
    /// two registers each.
    const PROFILE: &str = r#"
description = "three reads"
[[points]]
name = "a"
register = "holding"
address = 0
type = "f32"
unit = "kw"
[[points]]
name = "b"
register = "holding"
address = 100
type = "f32"
unit = "kw"
[[points]]
name = "c"
register = "holding"
address = 200
type = "f32"
unit = "kw"
"#;

    fn config(endpoint: &str, meters: usize, interval_secs: u32) -> Config {
        let main = format!("[gateway]\nid = \"gw\"\n\n[[endpoints]]\nid = \"bus\"\n{endpoint}\n");
        let mut site = String::from("[site]\nid = \"s\"\nname = \"S\"\n");
        for i in 1..=meters {
            let _ = write!(
                site,
                "\n[[meters]]\nid = \"m{i:02}\"\nenergy = \"electricity\"\nlevel = 2\n\
                 profile = \"three\"\nendpoint = \"bus\"\nunit_id = {i}\npoll_interval_secs = {interval_secs}\n"
            );
        }
        crate::config::from_parts(&main, &[("s.toml", &site)], &[("three", PROFILE)])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Within a microsecond: each wire time rounds down to the nanosecond.
    fn near(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    const RTU: &str = "transport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\nport = 4001\n";

    #[test]
    fn modbus_exchange_sizes() {
        let read = |kind, count| PlannedRead {
            kind,
            start: 0,
            count,
            points: Vec::new(),
        };
        assert_eq!(
            Exchange::modbus_read(&read(RegisterKind::Holding, 2)),
            Exchange {
                request: 8,
                answer: 9
            }
        );
        assert_eq!(
            Exchange::modbus_read(&read(RegisterKind::Input, 125)).answer,
            255
        );
        assert_eq!(
            Exchange::modbus_read(&read(RegisterKind::Coil, 1)).answer,
            6
        );
        assert_eq!(
            Exchange::modbus_read(&read(RegisterKind::Discrete, 9)).answer,
            7
        );
        assert_eq!(
            Exchange::modbus_read(&read(RegisterKind::Coil, 16)).answer,
            7
        );
    }

    #[test]
    fn thirty_meters_three_reads_at_9600() {
        let c = config(&format!("{RTU}baud = 9600\n"), 30, 5);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert_eq!((t.meters.len(), t.requests), (30, 90));
        // Per read: (8 + 9) bytes × 10 bits + 2 × 3.5 × 10 bits = 240 bits
        // at 9600 baud = 25 ms; 90 reads = 2250 ms (less the nanoseconds
        // that each wire time rounds down).
        let round = t.round.expect("serial-framed");
        let hand = Duration::from_millis(2250);
        assert!(near(round, hand), "{round:?}");
        assert_eq!(t.budget, Duration::from_secs(5));
        assert!((t.utilisation.expect("utilisation") - 0.45).abs() < 1e-6);
        assert!(t.fits());
        assert_eq!(t.warning(&c), None);
        assert_eq!(
            t.line(&c),
            "bus bus (rtu_over_tcp 127.0.0.1:4001, 9600 8N1): 30 meter(s), 90 request(s), \
             round 2250.0 ms, budget 5000 ms, utilisation 45.0 %"
        );
    }

    #[test]
    fn delays_and_parity_add_up() {
        // 9600 8E1 (11 bits a character), turnaround 5 ms, 10 ms between
        // requests: (17 + 7) × 11 / 9600 s = 27.5 ms, + 15 ms = 42.5 ms a read.
        let c = config(
            &format!("{RTU}parity = \"even\"\nturnaround_ms = 5\ninter_request_delay_ms = 10\n"),
            2,
            1,
        );
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        let round = t.round.expect("serial-framed");
        assert!(near(round, Duration::from_millis(255)), "{round:?}");
        assert!(t.fits());
    }

    #[test]
    fn above_19200_the_silence_is_fixed() {
        // 17 × 10 / 115200 s = 1.475694 ms of frames + 2 × 1.75 ms of silence a read.
        let c = config(&format!("{RTU}baud = 115200\n"), 1, 1);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        let round = t.round.expect("serial-framed").as_nanos();
        assert!(
            (3 * (1_475_694_u128 + 3_500_000)).abs_diff(round) < 10,
            "{round}"
        );
    }

    #[test]
    fn a_round_too_long_warns_naming_the_meters() {
        let c = config(&format!("{RTU}baud = 1200\n"), 30, 1);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert!(!t.fits());
        assert_eq!(
            t.warning(&c).as_deref(),
            Some(
                "warning: bus bus: one poll round does not fit in the shortest poll interval: \
                 30 meter(s) (m01, m02, m03, m04, m05 and 25 more), 90 request(s), 18000.0 ms \
                 at 1200 8N1, longer than 1000 ms (utilisation 1800.0 %); slots will be missed. \
                 Read fewer registers, use a higher baud rate, a longer poll interval, or split \
                 the meters over more buses."
            )
        );
        let few = config(&format!("{RTU}baud = 1200\n"), 5, 1);
        let t = BusTiming::of(&few, EndpointId(0)).expect("bus timing");
        let w = t.warning(&few).expect("3000 ms > 1000 ms");
        assert!(
            w.contains("5 meter(s) (m01, m02, m03, m04, m05), 15 request(s), 3000.0 ms"),
            "{w}"
        );
    }

    #[test]
    fn serial_and_dtu_lines_name_their_wire() {
        let c = config(
            "transport = \"serial\"\ndevice = \"/dev/ttyUSB0\"\nbaud = 19200\nstop_bits = 2\n",
            1,
            1,
        );
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert!(
            t.line(&c).starts_with(
                "bus bus (serial /dev/ttyUSB0, 19200 8N2): 1 meter(s), 3 request(s), round "
            ),
            "{}",
            t.line(&c)
        );
        let c = config("transport = \"dtu\"\nregistration = \"DTU-7\"\n", 1, 1);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert!(
            t.line(&c).starts_with(
                "bus bus (dtu \"DTU-7\", 9600 8N1): 1 meter(s), 3 request(s), round 75.0 ms"
            ),
            "{}",
            t.line(&c)
        );
    }

    #[test]
    fn tcp_reports_requests_only() {
        let c = config("host = \"127.0.0.1\"\nport = 502\n", 2, 1);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert_eq!((t.requests, t.round, t.utilisation), (6, None, None));
        assert!(t.fits());
        assert_eq!(t.warning(&c), None);
        assert_eq!(
            t.line(&c),
            "bus bus (tcp 127.0.0.1:502): 2 meter(s), 6 request(s); no wire timing for tcp"
        );
    }

    #[test]
    fn budget_is_the_shortest_interval_and_meterless_buses_have_none() {
        let mut c = config(&format!("{RTU}baud = 9600\n"), 3, 60);
        c.meters[1].poll_interval = Duration::from_secs(7);
        let t = BusTiming::of(&c, EndpointId(0)).expect("bus timing");
        assert_eq!(t.budget, Duration::from_secs(7));
        let empty = config(RTU, 0, 1);
        assert_eq!(BusTiming::of(&empty, EndpointId(0)), None);
        assert!(bus_timings(&empty).is_empty());
    }
}
