//! The simulator as DL/T 645-2007 meters on a bus: read requests in,
//! answers out, with the values of the same exact physics as the Modbus
//! meters. [`super::bus`] finds the frames in the byte stream (beside Modbus
//! RTU requests) and calls `respond`; the frames are written with the
//! gateway's own [`frame::encode`], the values with the rule below.
//!
//! # What is answered
//! * **whom**: the meter whose address (wire order, lowest byte first) the
//!   frame carries; the wildcard `AA AA AA AA AA AA` reaches the meter only
//!   when it is the one DL/T 645 meter on its endpoint (as on a
//!   point-to-point link; with several, every meter would answer at once
//!   and the master would read a collision, so the simulator stays silent).
//!   **An unknown address gets silence**, as on a real bus; so do the
//!   broadcast address `99…99` (time sync, freeze: no answer expected) and
//!   frames whose control code has the direction bit set (answers, not
//!   requests). Partial wildcards (`AA` in the high bytes only) are not served;
//! * **read** (`0x11`, four data bytes: one DI): the normal answer `0x91`
//!   with the DI and the value in the point's format, if the meter's
//!   profile has a point with that DI; otherwise the error answer `0xD1`
//!   with error byte `0x02` (bit 1: no requested data). A read with another
//!   data length (block or load-record reads) answers `0xD1` with `0x01`;
//! * **read address** (`0x13`, to the wildcard): `0x93` with the six address
//!   bytes;
//! * any other request: the error answer (`0xC0 | control`) with `0x01`
//!   (other error), as a meter that does not support it;
//! * every answer starts with **two** wake-up bytes `FE FE` (makers send 0
//!   to 4; the gateway must skip them), and carries the meter's own address,
//!   also when asked through the wildcard. No follow-up frames (`0xB1`).
//!
//! # The values rule
//! The physical value `v` of the point at the (stepped) request time is the
//! same as for a Modbus point (`super::meter`); the meter's register holds
//! `raw = (v − offset) / (scale × ratio)` in the point's format with `d`
//! decimals, as a whole number of counts `raw × 10^d`:
//! * **counters round down**: a meter's energy register shows the units it
//!   has completed, so `floor(raw × 10^d)` (with a nudge of 1e-12 relative,
//!   so that a value that is exactly on a count in decimal but a hair below
//!   it in binary floating point still shows that count); past the top of
//!   the format (`999999.99` for `XXXXXX.XX`) the register rolls over to
//!   zero, as a real one does;
//! * **gauges round to the nearest count** (halves away from zero), and
//!   stop at the largest value the format holds (`79.9999` for a signed
//!   `XX.XXXX`: the sign takes the top bit, so the top digit is at most 7);
//!   negative values only in signed formats (the sign bit), else 0;
//! * [`super::Simulator::value_at`] is `Format::decode` of exactly those
//!   digits, then × scale × ratio + offset with the gateway's
//!   [`scale_raw`](crate::profiles::codec::scale_raw): what was served.
//!
//! # Faults
//! `no_response`: silence. `exception`: the error answer with `0x01` (other
//! error). `sentinel`: the value bytes are `FF` before +0x33 (so `32` on the
//! wire), which is no BCD digit, so a gateway must flag the point
//! (`bad_bcd`) and never take a value. `frozen`, `spike`, `counter_reset`
//! change the values as for Modbus meters (a spike is capped one count
//! below the format's rollover).

use std::sync::atomic::Ordering;

use super::Shared;
use super::bus::Outcome;
use crate::config::SimFault;
use crate::profiles::dlt645::{Address, Di, Format};
use crate::sources::dlt645::frame::{self, READ, READ_ADDRESS};

/// Wake-up bytes in front of every answer.
pub const ANSWER_PREAMBLE: usize = 2;
/// Error byte: other error (bit 0).
pub const ERROR_OTHER: u8 = 0x01;
/// Error byte: no requested data (bit 1).
pub const ERROR_NO_DATA: u8 = 0x02;

/// Frame start and end bytes.
const START: u8 = 0x68;
const END: u8 = 0x16;
/// Every data byte is sent plus this.
const OFFSET: u8 = 0x33;
/// The broadcast address (time sync, freeze): never answered.
const BROADCAST: Address = Address([0x99; 6]);
/// The direction bit of a control code: set in answers.
const ANSWER_BIT: u8 = 0x80;
/// The error-answer bits of a control code (direction and abnormal).
const ERROR_BITS: u8 = 0xC0;
/// Relative nudge before a counter is rounded down (see the module doc).
const FLOOR_NUDGE: f64 = 1e-12;

/// Whether received bytes start with a DL/T 645 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A whole frame of this many bytes whose checksum and end byte fit.
    Complete(usize),
    /// A frame may be arriving: wait for more bytes.
    Pending,
    /// No frame starts here.
    No,
}

/// Whether `buf` starts with a frame `68 A0..A5 68 C L DATA CS 16`.
pub(crate) fn frame_at(buf: &[u8]) -> Framing {
    if buf.first() != Some(&START) {
        return Framing::No;
    }
    if buf.len() < 8 {
        return Framing::Pending;
    }
    if buf[7] != START {
        return Framing::No;
    }
    if buf.len() < 10 {
        return Framing::Pending;
    }
    let len = 12 + usize::from(buf[9]);
    if buf.len() < len {
        return Framing::Pending;
    }
    let cs = buf[..len - 2].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    if buf[len - 2] == cs && buf[len - 1] == END {
        Framing::Complete(len)
    } else {
        Framing::No
    }
}

/// The meter `address` reaches on `endpoint`: its own address and index.
fn meter_for(shared: &Shared, endpoint: usize, address: Address) -> Option<(Address, usize)> {
    let on_bus = &shared.dlt645[endpoint];
    if address == Address::WILDCARD {
        return match on_bus.as_slice() {
            [only] => Some(*only),
            _ => None,
        };
    }
    on_bus.iter().find(|(a, _)| *a == address).copied()
}

/// The answer to one whole, checksum-checked frame on `endpoint`, appended
/// to `out` (`data` is scratch). See the module doc for what is answered.
pub(crate) fn respond(
    shared: &Shared,
    endpoint: usize,
    frame: &[u8],
    data: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Outcome {
    let mut a = [0u8; 6];
    a.copy_from_slice(&frame[1..7]);
    let address = Address(a);
    let control = frame[8];
    let payload = &frame[10..frame.len() - 2];
    if control & ANSWER_BIT != 0 || address == BROADCAST {
        return Outcome::Silent;
    }
    let Some((own, meter)) = meter_for(shared, endpoint, address) else {
        return Outcome::Silent;
    };
    let fault = shared.fault_for_request(meter);
    if fault == Some(SimFault::NoResponse) {
        return Outcome::Silent;
    }
    data.clear();
    let reply = if fault == Some(SimFault::Exception) {
        data.push(ERROR_OTHER);
        control | ERROR_BITS
    } else {
        match control {
            READ if payload.len() == 4 => {
                let wire: [u8; 4] = std::array::from_fn(|k| payload[k].wrapping_sub(OFFSET));
                read(shared, meter, fault, Di(u32::from_le_bytes(wire)), data)
            }
            READ_ADDRESS => {
                data.extend_from_slice(&own.0);
                READ_ADDRESS | ANSWER_BIT
            }
            other => {
                data.push(ERROR_OTHER);
                other | ERROR_BITS
            }
        }
    };
    frame::encode(out, ANSWER_PREAMBLE, own, reply, data);
    shared.served.fetch_add(1, Ordering::Relaxed);
    Outcome::Answered
}

/// The data of the answer to a read of `di` from `meter`, and its control code.
fn read(shared: &Shared, meter: usize, fault: Option<SimFault>, di: Di, data: &mut Vec<u8>) -> u8 {
    let sim = &shared.meters[meter];
    let Some(i) = sim
        .points
        .iter()
        .position(|p| p.def.dlt645.is_some_and(|d| d.di == di))
    else {
        data.push(ERROR_NO_DATA);
        return READ | ERROR_BITS;
    };
    let (t, serve) = shared.serving(meter, fault, shared.stepped(shared.now()));
    let mut value = [0u8; 8];
    let n = sim.encode_bcd(i, t, shared.reset_offset(meter), serve, &mut value);
    data.extend_from_slice(&di.wire());
    data.extend_from_slice(&value[..n]);
    READ | ANSWER_BIT
}

/// The largest count `format` holds: all nines, or with the sign in the
/// top bit a top digit of at most 7.
pub(crate) fn max_count(format: Format) -> u64 {
    let digits = u32::from(format.bytes) * 2;
    if format.signed {
        8 * 10u64.pow(digits - 1) - 1
    } else {
        10u64.pow(digits) - 1
    }
}

/// The register of `format` for `raw` (the value in the format's unit,
/// before scale and ratio), by the values rule of the module doc: the
/// number of counts and whether the sign bit is set.
pub(crate) fn quantise(format: Format, raw: f64, counter: bool) -> (u64, bool) {
    let scaled = raw * 10f64.powi(i32::from(format.decimals));
    if !scaled.is_finite() {
        return (0, false);
    }
    let top = max_count(format);
    if counter {
        let up = scaled.max(0.0);
        // `as` saturates; the rollover is the register's own.
        let count = (up + up * FLOOR_NUDGE).floor() as u64;
        return (count % (top + 1), false);
    }
    let negative = format.signed && scaled < 0.0;
    let magnitude = if format.signed {
        scaled.abs()
    } else {
        scaled.max(0.0)
    };
    let count = (magnitude.round() as u64).min(top);
    (count, negative && count > 0)
}

/// `count` as BCD into `out` (lowest byte first, before +0x33), the sign
/// in the top bit of the top byte.
pub(crate) fn bcd_into(count: u64, negative: bool, out: &mut [u8]) {
    let mut n = count;
    for b in out.iter_mut() {
        *b = ((n / 10 % 10) as u8) << 4 | (n % 10) as u8;
        n /= 100;
    }
    if negative && let Some(top) = out.last_mut() {
        *top |= 0x80;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::model::EnergyType;
    use crate::profiles::{DataType, Dlt645Point, PointDef, PointKind, RegisterKind};
    use crate::sim::bus::BusSlave;
    use crate::sim::bus::tests::answers;
    use crate::sim::meter::tests::{meter_config, water_meter};
    use crate::sim::meter::{Serve, SimMeter};
    use crate::sim::{EPOCH, LoadShape};
    use crate::sources::dlt645::frame::{Question, Scan, encode_read, scan_read, value_bytes};

    /// The test meter's address: nameplate 123456789012.
    pub(crate) const ADDRESS: Address = Address([0x12, 0x90, 0x78, 0x56, 0x34, 0x12]);

    fn dlt_point(
        name: &str,
        di: u32,
        format: &str,
        signed: bool,
        kind: PointKind,
        unit: &str,
    ) -> PointDef {
        PointDef {
            kind,
            unit: unit.to_owned(),
            dlt645: Some(Dlt645Point {
                di: Di(di),
                format: Format::parse(format, signed).expect("format"),
            }),
            ..PointDef::new(name, RegisterKind::Holding, 0, DataType::U16)
        }
    }

    /// A three-phase DL/T 645 meter at a constant 36 kW from 1000 kWh at the epoch.
    pub(crate) fn dlt_meter() -> SimMeter {
        use PointKind::{Counter, Gauge};
        let points = [
            dlt_point(
                "import_kwh",
                0x0001_0000,
                "XXXXXX.XX",
                false,
                Counter,
                "kwh",
            ),
            dlt_point(
                "import_t1_kwh",
                0x0001_0100,
                "XXXXXX.XX",
                false,
                Counter,
                "kwh",
            ),
            dlt_point(
                "export_kwh",
                0x0002_0000,
                "XXXXXX.XX",
                false,
                Counter,
                "kwh",
            ),
            dlt_point("voltage_l1_v", 0x0201_0100, "XXX.X", false, Gauge, "v"),
            dlt_point("current_l1_a", 0x0202_0100, "XXX.XXX", true, Gauge, "a"),
            dlt_point("power_kw", 0x0203_0000, "XX.XXXX", true, Gauge, "kw"),
            dlt_point("power_factor", 0x0206_0000, "X.XXX", true, Gauge, "1"),
            dlt_point("frequency_hz", 0x0280_0002, "XX.XX", false, Gauge, "hz"),
        ];
        let load = LoadShape::constant(36.0, 1000.0);
        SimMeter::new(&meter_config(EnergyType::Electricity, 1), &points, load)
    }

    /// Endpoint 0 with the water meter at Modbus unit 5 and the DL/T 645
    /// meter at [`ADDRESS`], clock frozen at the epoch + 1 h.
    pub(crate) fn mixed_shared() -> Arc<Shared> {
        let mut units = Box::new([None; 256]);
        units[5] = Some(0);
        Arc::new(Shared {
            meters: vec![water_meter(), dlt_meter()],
            units: vec![units],
            dlt645: vec![vec![(ADDRESS, 1)]],
            faults: vec![AtomicU64::new(0), AtomicU64::new(0)],
            resets: vec![AtomicU64::new(0), AtomicU64::new(0)],
            freeze_at: vec![AtomicU64::new(0), AtomicU64::new(0)],
            frozen: AtomicU64::new((EPOCH + 3600.0).to_bits()),
            step: 1.0,
            served: AtomicU64::new(0),
        })
    }

    fn read_frame(address: Address, di: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_read(&mut out, 4, address, Di(di));
        out
    }

    /// The one answer frame to `request`, and how the gateway's scanner reads it.
    fn ask(s: &Arc<Shared>, request: &[u8], di: u32, value_bytes: u8) -> (Vec<u8>, Scan) {
        let mut slave = BusSlave::new(Arc::clone(s), 0);
        let mut got = answers(&mut slave, request);
        assert_eq!(got.len(), 1, "{got:02X?}");
        let frame = got.remove(0).1;
        let q = Question {
            address: ADDRESS,
            di: Di(di),
            value_bytes,
        };
        let scan = scan_read(&frame, &q);
        (frame, scan)
    }

    #[test]
    fn energy_answer_by_hand() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(Arc::clone(&s), 0);
        let got = answers(&mut slave, &read_frame(ADDRESS, 0x0001_0000));
        // 1000 kWh + 36 kW × 1 h = 1036.00 kWh = 00103600 → `00 36 10 00`,
        // +0x33: `33 69 43 33`; DI `33 33 34 33`; L = 8; address 12 90 78 56 34 12.
        // CS: 68+12+90+78+56+34+12+68+91+08 = 799, DI +205 = 1004,
        // value +274 = 1278; 1278 mod 256 = 254 = FE.
        let want = [
            0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x08, 0x33, 0x33,
            0x34, 0x33, 0x33, 0x69, 0x43, 0x33, 0xFE, 0x16,
        ];
        assert_eq!(got, vec![(Outcome::Answered, want.to_vec())]);
        assert_eq!(s.meters[1].served_value(0, EPOCH + 3600.0), 1036.0);
        assert_eq!(s.served.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn every_point_decodes_to_the_served_value() {
        let s = mixed_shared();
        let t = EPOCH + 3600.0;
        let m = &s.meters[1];
        for (i, p) in m.points.iter().enumerate() {
            let d = p.def.dlt645.expect("a DL/T 645 point");
            let (frame, scan) = ask(&s, &read_frame(ADDRESS, d.di.0), d.di.0, d.format.bytes);
            let Scan::Found {
                answer: frame::Answer::Value(range),
                ..
            } = scan
            else {
                panic!("{}: no value: {scan:?}", p.def.name);
            };
            let mut got = Vec::new();
            value_bytes(&frame, range, &mut got);
            let raw = d.format.decode(&got).expect("BCD");
            assert_eq!(raw, m.served_value(i, t), "{}", p.def.name);
        }
        // Hand-computed: tariff 1 carries 10 %, export 2 %, power 36 kW.
        assert_eq!(m.served_value(1, t), 103.6);
        assert_eq!(m.served_value(2, t), 20.72);
        assert_eq!(m.served_value(5, t), 36.0);
    }

    #[test]
    fn unknown_address_is_silent_unknown_di_is_no_data() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(Arc::clone(&s), 0);
        let other = Address::from_nameplate("000000000001").expect("address");
        let got = answers(&mut slave, &read_frame(other, 0x0001_0000));
        assert_eq!(got, vec![(Outcome::Silent, vec![])]);
        // Broadcast: silent.
        let got = answers(&mut slave, &read_frame(Address([0x99; 6]), 0x0001_0000));
        assert_eq!(got, vec![(Outcome::Silent, vec![])]);
        assert_eq!(s.served.load(Ordering::Relaxed), 0);
        // Unknown DI (reverse reactive 00040000 is not in this profile): 0xD1 with 0x02.
        let (_, scan) = ask(&s, &read_frame(ADDRESS, 0x0004_0000), 0x0004_0000, 4);
        assert!(
            matches!(
                scan,
                Scan::Found {
                    answer: frame::Answer::Error(ERROR_NO_DATA),
                    ..
                }
            ),
            "{scan:?}"
        );
        // The wildcard reaches the one meter.
        let (_, scan) = ask(
            &s,
            &read_frame(Address::WILDCARD, 0x0001_0000),
            0x0001_0000,
            4,
        );
        assert!(
            matches!(
                scan,
                Scan::Found {
                    answer: frame::Answer::Value(_),
                    ..
                }
            ),
            "{scan:?}"
        );
    }

    #[test]
    fn wildcard_is_silent_on_a_bus_of_two() {
        let s = mixed_shared();
        let mut two = Arc::try_unwrap(s).ok().expect("one owner");
        two.meters.push(dlt_meter());
        for v in [&mut two.faults, &mut two.resets, &mut two.freeze_at] {
            v.push(AtomicU64::new(0));
        }
        two.dlt645[0].push((Address::from_nameplate("000000000002").expect("address"), 2));
        let mut slave = BusSlave::new(Arc::new(two), 0);
        let got = answers(&mut slave, &read_frame(Address::WILDCARD, 0x0001_0000));
        assert_eq!(got, vec![(Outcome::Silent, vec![])]);
    }

    #[test]
    fn faults_on_the_wire() {
        let s = mixed_shared();
        s.set_fault(1, Some(SimFault::Exception));
        let (_, scan) = ask(&s, &read_frame(ADDRESS, 0x0001_0000), 0x0001_0000, 4);
        assert!(
            matches!(
                scan,
                Scan::Found {
                    answer: frame::Answer::Error(ERROR_OTHER),
                    ..
                }
            ),
            "{scan:?}"
        );
        s.set_fault(1, Some(SimFault::Sentinel));
        let (frame, scan) = ask(&s, &read_frame(ADDRESS, 0x0203_0000), 0x0203_0000, 3);
        let Scan::Found {
            answer: frame::Answer::Value(range),
            ..
        } = scan
        else {
            panic!("a value frame: {scan:?}");
        };
        let mut v = Vec::new();
        value_bytes(&frame, range, &mut v);
        assert_eq!(v, [0xFF, 0xFF, 0xFF]);
        assert_eq!(
            Format::parse("XX.XXXX", true).expect("fmt").decode(&v),
            None
        );
        s.set_fault(1, Some(SimFault::NoResponse));
        let mut slave = BusSlave::new(Arc::clone(&s), 0);
        let got = answers(&mut slave, &read_frame(ADDRESS, 0x0001_0000));
        assert_eq!(got, vec![(Outcome::Silent, vec![])]);
        // A write (0x14) answers the error 0xD4 with "other".
        s.set_fault(1, None);
        let mut req = Vec::new();
        frame::encode(&mut req, 0, ADDRESS, 0x14, &[0, 0, 0, 4, 0, 0, 0, 0]);
        let got = answers(&mut slave, &req);
        let mut want = Vec::new();
        frame::encode(&mut want, 2, ADDRESS, 0xD4, &[ERROR_OTHER]);
        assert_eq!(got, vec![(Outcome::Answered, want)]);
    }

    #[test]
    fn counters_round_down_gauges_to_nearest() {
        let kwh = Format::parse("XXXXXX.XX", false).expect("fmt");
        let kw = Format::parse("XX.XXXX", true).expect("fmt");
        // 12.349 kWh shows 12.34 (completed hundredths), a gauge 12.35.
        assert_eq!(quantise(kwh, 12.349, true), (1234, false));
        assert_eq!(quantise(kwh, 12.349, false), (1235, false));
        // Exactly on a count in decimal, a hair below in binary: that count.
        assert_eq!(quantise(kwh, 0.29, true), (29, false));
        assert_eq!(quantise(kwh, 1.13, true), (113, false));
        // The register rolls over past 999999.99.
        assert_eq!(quantise(kwh, 1_000_000.5, true), (50, false));
        // Signed gauges: the sign bit; the top digit at most 7.
        assert_eq!(quantise(kw, -1.23456, false), (12346, true));
        assert_eq!(quantise(kw, 95.0, false), (799_999, false));
        let mut out = [0u8; 3];
        bcd_into(12346, true, &mut out);
        assert_eq!(out, [0x46, 0x23, 0x81]);
        assert_eq!(kw.decode(&out), Some(-1.2346));
        bcd_into(799_999, false, &mut out);
        assert_eq!(kw.decode(&out), Some(79.9999));
        assert_eq!(max_count(kwh), 99_999_999);
    }

    #[test]
    fn spike_stops_below_the_rollover() {
        let m = dlt_meter();
        let mut out = [0u8; 8];
        let n = m.encode_bcd(0, EPOCH + 3600.0, 0.0, Serve::Spike, &mut out);
        // 1036 + 1 000 000 kWh is past 999999.99: capped at 999999.99.
        assert_eq!(&out[..n], [0x99, 0x99, 0x99, 0x99]);
    }
}
