//! The simulator as a Modbus RTU slave: what a serial server in
//! transparent mode (`rtu_over_tcp`) or a DTU (`dtu`) forwards from an
//! RS-485 bus, answered with the same `answer` of [`server`] as Modbus TCP,
//! so the values are the same to the bit. [`super::bus`] finds the requests
//! in the byte stream (beside DL/T 645 frames on the same bus) and calls
//! `respond` for each.
//!
//! Why our own slave rather than tokio-modbus's RTU server: the bytes
//! arrive from TCP, where nothing marks where a frame starts (no inter-frame
//! silence), a DTU puts its registration in front of answers and sends
//! heartbeats while idle, a bus must stay silent where a TCP gateway
//! answers, and DL/T 645 meters share the bus; each of those is one line here.
//!
//! Protocol choices:
//! * a request is an 8-byte frame `unit fc a_hi a_lo n_hi n_lo crc_lo crc_hi`
//!   whose CRC-16 fits, for a unit outside the reserved 248-255 (see
//!   `is_request`); bytes before it that start no frame are garbage and
//!   dropped (resynchronisation, in [`super::bus`]), and a frame not yet
//!   complete waits for more bytes. Frames of other lengths (writes of
//!   several registers, diagnostics without data) are never recognised and
//!   are dropped as garbage, unanswered;
//! * functions 1-4 are answered as `answer` of [`server`] decides (data or
//!   an exception); any other function in an 8-byte frame
//!   answers exception 01 (IllegalFunction);
//! * **an unknown unit id gets no answer at all**: on a real RS-485 bus
//!   nobody answers an address nobody has, so the master times out. This
//!   differs from the Modbus TCP simulator, which answers 0x0B as a
//!   TCP-to-RTU gateway does. Unit 0 is a broadcast and is never answered;
//! * faults: `no_response` is silence, `exception` the frame
//!   `unit 0x80|fc 04 crc`; the others change the values as over TCP.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::bus::Outcome;
use super::{Shared, server};
use crate::sources::modbus::frame::{RTU_REQUEST_LEN, crc_fits, push_with_crc};

/// Lowest of the unit addresses the Modbus serial line specification
/// reserves (248-255): no slave has one, and `FE` is DL/T 645's wake-up byte.
const FIRST_RESERVED_UNIT: u8 = 248;

/// True when `window` (8 bytes) is a Modbus RTU request: its CRC fits and
/// its unit is 0 (broadcast) or 1-247.
pub(crate) fn is_request(window: &[u8]) -> bool {
    window.len() == RTU_REQUEST_LEN && window[0] < FIRST_RESERVED_UNIT && crc_fits(window)
}

/// The answer to one CRC-checked request frame on `endpoint`, appended to
/// `out` with its CRC (`body` is scratch).
pub(crate) fn respond(
    shared: &Shared,
    endpoint: usize,
    frame: [u8; RTU_REQUEST_LEN],
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Outcome {
    let [unit, function, a_hi, a_lo, n_hi, n_lo, _, _] = frame;
    if unit == 0 || shared.units[endpoint][usize::from(unit)].is_none() {
        return Outcome::Silent;
    }
    let start = u16::from_be_bytes([a_hi, a_lo]);
    let count = u16::from_be_bytes([n_hi, n_lo]);
    let request = match function {
        1 => Request::ReadCoils(start, count),
        2 => Request::ReadDiscreteInputs(start, count),
        3 => Request::ReadHoldingRegisters(start, count),
        4 => Request::ReadInputRegisters(start, count),
        // Through `answer` all the same, so faults apply as over TCP.
        f => Request::Custom(f, Cow::Borrowed(&frame[2..6])),
    };
    let req = SlaveRequest {
        slave: unit,
        request,
    };
    let t = shared.stepped(shared.now());
    body.clear();
    match server::answer(shared, endpoint, &req, t) {
        Ok(None) => return Outcome::Silent,
        Ok(Some(Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits))) => {
            body.extend_from_slice(&[unit, function, bits.len().div_ceil(8) as u8]);
            for chunk in bits.chunks(8) {
                let byte = chunk
                    .iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i));
                body.push(byte);
            }
        }
        Ok(Some(Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words))) => {
            body.extend_from_slice(&[unit, function, (words.len() * 2) as u8]);
            for w in words {
                body.extend_from_slice(&w.to_be_bytes());
            }
        }
        // `answer` serves reads only; anything else would be a bug there.
        Ok(Some(other)) => {
            tracing::warn!(
                ?other,
                "simulator: unexpected RTU answer, sending exception 04"
            );
            exception(body, unit, function, ExceptionCode::ServerDeviceFailure);
        }
        Err(code) => exception(body, unit, function, code),
    }
    push_with_crc(out, body);
    shared.served.fetch_add(1, Ordering::Relaxed);
    Outcome::Answered
}

/// An exception answer body: `unit 0x80|fc code`.
fn exception(body: &mut Vec<u8>, unit: u8, function: u8, code: ExceptionCode) {
    body.extend_from_slice(&[unit, function | 0x80, u8::from(code)]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::config::SimFault;
    use crate::sim::bus::BusSlave;
    use crate::sim::bus::tests::{answers, rtu_frame as frame_of};
    use crate::sim::meter::tests::water_meter;

    /// The water meter of `server`'s tests at unit 5, clock frozen at the epoch + 1 h.
    fn shared() -> Arc<Shared> {
        let mut units = Box::new([None; 256]);
        units[5] = Some(0);
        Arc::new(Shared {
            meters: vec![water_meter()],
            units: vec![units],
            dlt645: vec![Vec::new()],
            faults: vec![AtomicU64::new(0)],
            resets: vec![AtomicU64::new(0)],
            freeze_at: vec![AtomicU64::new(0)],
            frozen: AtomicU64::new((crate::sim::EPOCH + 3600.0).to_bits()),
            step: 1.0,
            served: AtomicU64::new(0),
        })
    }

    #[test]
    fn reads_and_exceptions_in_rtu_framing() {
        let s = shared();
        let mut slave = BusSlave::new(Arc::clone(&s), 0);
        // 05 03 0008 0002 (the small U32 counter), CRC worked out with crc16 of the frame module.
        let mut req = vec![0x05, 0x03, 0x00, 0x08, 0x00, 0x02];
        let crc = crate::sources::modbus::frame::crc16(&req);
        req.extend_from_slice(&crc.to_le_bytes());
        let got = answers(&mut slave, &req);
        assert_eq!(got.len(), 1);
        let (outcome, frame) = &got[0];
        assert_eq!(*outcome, Outcome::Answered);
        assert_eq!(&frame[..3], &[0x05, 0x03, 0x04]);
        assert!(crc_fits(frame));
        assert_eq!(frame.len(), 9);
        assert_eq!(s.served.load(Ordering::Relaxed), 1);

        // Write single register (06): exception 01.
        let got = answers(&mut slave, &frame_of(&[0x05, 0x06, 0x00, 0x00, 0x00, 0x01]));
        assert_eq!(got[0].1[..3], [0x05, 0x86, 0x01]);
        assert!(crc_fits(&got[0].1));

        // The exception fault: 0x83 04.
        s.set_fault(0, Some(SimFault::Exception));
        let got = answers(&mut slave, &req);
        assert_eq!(got[0].1[..3], [0x05, 0x83, 0x04]);
        assert_eq!(got[0].1.len(), 5);
        // No response: silence, not counted as served.
        s.set_fault(0, Some(SimFault::NoResponse));
        assert_eq!(answers(&mut slave, &req), vec![(Outcome::Silent, vec![])]);
        assert_eq!(s.served.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn unknown_unit_and_broadcast_are_silent() {
        let s = shared();
        let mut slave = BusSlave::new(Arc::clone(&s), 0);
        let got = answers(
            &mut slave,
            &[
                frame_of(&[0x06, 0x03, 0x00, 0x00, 0x00, 0x02]),
                frame_of(&[0x00, 0x03, 0x00, 0x00, 0x00, 0x02]),
            ]
            .concat(),
        );
        assert_eq!(
            got,
            vec![(Outcome::Silent, vec![]), (Outcome::Silent, vec![])]
        );
        assert_eq!(s.served.load(Ordering::Relaxed), 0);
        assert_eq!(slave.requests(), 2);
    }

    #[test]
    fn garbage_is_skipped_and_split_frames_wait() {
        let s = shared();
        let mut slave = BusSlave::new(s, 0);
        let req = frame_of(&[0x05, 0x03, 0x00, 0x00, 0x00, 0x04]);
        // Garbage, then the request in two pieces.
        let mut bytes = vec![0xFF, 0x05, 0x03, 0x11, 0x00, 0x05, 0x03, 0x00, 0x00];
        bytes.extend_from_slice(&req[..3]);
        assert!(answers(&mut slave, &bytes).is_empty());
        let got = answers(&mut slave, &req[3..]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1[..3], [0x05, 0x03, 0x08]);
        assert_eq!(slave.dropped(), 9);
        assert_eq!(slave.buffered(), 0);
        // A frame whose CRC does not fit is never answered.
        let mut bad = req.clone();
        bad[7] ^= 1;
        assert!(answers(&mut slave, &bad).is_empty());
        assert_eq!(slave.requests(), 1);
    }

    #[test]
    fn bits_pack_lsb_first() {
        let s = shared();
        s.set_fault(0, Some(SimFault::Sentinel));
        let mut slave = BusSlave::new(s, 0);
        // The status coil at address 3 serves `true` under the sentinel fault.
        let got = answers(&mut slave, &frame_of(&[0x05, 0x01, 0x00, 0x03, 0x00, 0x01]));
        assert_eq!(got[0].1[..4], [0x05, 0x01, 0x01, 0x01]);
    }
}
