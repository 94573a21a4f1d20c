//! The Modbus side of the simulator: one tokio-modbus [`Service`] per
//! endpoint, answering read requests for the meters on it by unit id.
//!
//! `answer` is a plain function of the shared state, the request and the
//! (already stepped) time, so every protocol decision below is testable
//! without a socket:
//!
//! * reads of coils (01), discrete inputs (02), holding (03) and input
//!   registers (04) are served; any other function answers exception 01
//!   (IllegalFunction);
//! * a quantity of 0, above 125 registers or above 2000 bits answers 03
//!   (IllegalDataValue), as the Modbus specification prescribes; a range past
//!   address 65535 answers 02 (IllegalDataAddress);
//! * a range that touches no point of the meter's map answers 02; a range
//!   that touches at least one point is served, with registers no point covers
//!   reading 0 (what most meters do inside a documented block);
//! * an unknown unit id answers 0x0B (GatewayTargetDevice failed to respond),
//!   as a Modbus TCP-to-RTU gateway does when nobody on its bus answers
//!   (over RTU framing, [`super::rtu`] stays silent instead, as a bus does).
//!
//! `answer` serves the RTU slave of [`super::rtu`] too, so both framings
//! serve the same registers. DL/T 645 meters are never served here (Modbus
//! TCP cannot carry them); see [`super::dlt645`].

use std::future::{Ready, ready};
use std::sync::atomic::Ordering;

use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::Shared;
use crate::config::SimFault;
use crate::profiles::RegisterKind;

/// Largest register read the specification allows.
const MAX_REGISTERS: u16 = 125;
/// Largest bit read the specification allows.
const MAX_BITS: u16 = 2000;

/// Serves the meters of one endpoint; cloned into every accepted connection.
#[derive(Clone)]
pub(crate) struct EndpointService {
    pub shared: std::sync::Arc<Shared>,
    pub endpoint: usize,
}

impl Service for EndpointService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let t = self.shared.stepped(self.shared.now());
        let result = answer(&self.shared, self.endpoint, &req, t);
        if matches!(result, Ok(Some(_)) | Err(_)) {
            self.shared.served.fetch_add(1, Ordering::Relaxed);
        }
        ready(result)
    }
}

/// The answer to `req` on endpoint `endpoint` at stepped time `t`.
/// `Ok(None)` sends nothing (the no-response fault).
pub(crate) fn answer(
    shared: &Shared,
    endpoint: usize,
    req: &SlaveRequest<'_>,
    t: f64,
) -> Result<Option<Response>, ExceptionCode> {
    let Some(meter) = shared.units[endpoint][usize::from(req.slave)] else {
        return Err(ExceptionCode::GatewayTargetDevice);
    };
    let fault = shared.fault_for_request(meter);
    match fault {
        // Silence, and go on serving the connection: see the module doc of `sim`.
        Some(SimFault::NoResponse) => return Ok(None),
        Some(SimFault::Exception) => return Err(ExceptionCode::ServerDeviceFailure),
        _ => {}
    }
    let (kind, addr, qty) = match req.request {
        Request::ReadCoils(a, q) => (RegisterKind::Coil, a, q),
        Request::ReadDiscreteInputs(a, q) => (RegisterKind::Discrete, a, q),
        Request::ReadInputRegisters(a, q) => (RegisterKind::Input, a, q),
        Request::ReadHoldingRegisters(a, q) => (RegisterKind::Holding, a, q),
        _ => return Err(ExceptionCode::IllegalFunction),
    };
    let max = if kind.is_bit() {
        MAX_BITS
    } else {
        MAX_REGISTERS
    };
    if qty == 0 || qty > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let start = u32::from(addr);
    let end = start + u32::from(qty); // exclusive
    if end > 0x1_0000 {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    let sim = &shared.meters[meter];
    let (t, serve) = shared.serving(meter, fault, t);
    let reset = shared.reset_offset(meter);
    let mut words = vec![0u16; usize::from(qty)];
    let mut touched = false;
    let mut regs = [0u16; 4];
    // Points start at most 3 registers before the first one asked (a
    // point is at most 4 registers wide): search from there, stop past the end.
    let from = u16::try_from(start.saturating_sub(3)).unwrap_or(u16::MAX);
    let first = sim
        .by_address
        .partition_point(|&(k, a, _)| (k, a) < (kind, from));
    for &(k, a, i) in &sim.by_address[first..] {
        if k != kind || u32::from(a) >= end {
            break;
        }
        let i = i as usize;
        let def = &sim.points[i].def;
        let p_start = u32::from(def.address);
        let p_end = def.end_address() + 1;
        if p_end <= start {
            continue;
        }
        touched = true;
        sim.encode(i, t, reset, serve, &mut regs);
        for a in p_start.max(start)..p_end.min(end) {
            words[(a - start) as usize] = regs[(a - p_start) as usize];
        }
    }
    if !touched {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    let bits = || words.iter().map(|&w| w != 0).collect();
    Ok(Some(match kind {
        RegisterKind::Coil => Response::ReadCoils(bits()),
        RegisterKind::Discrete => Response::ReadDiscreteInputs(bits()),
        RegisterKind::Input => Response::ReadInputRegisters(words),
        RegisterKind::Holding => Response::ReadHoldingRegisters(words),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::sim::meter::tests::water_meter;

    fn shared() -> Shared {
        let mut units = Box::new([None; 256]);
        units[5] = Some(0);
        Shared {
            meters: vec![water_meter()],
            units: vec![units],
            dlt645: vec![Vec::new()],
            faults: vec![AtomicU64::new(0)],
            resets: vec![AtomicU64::new(0)],
            freeze_at: vec![AtomicU64::new(0)],
            frozen: AtomicU64::new(f64::NAN.to_bits()),
            step: 1.0,
            served: AtomicU64::new(0),
        }
    }

    fn req(request: Request<'static>) -> SlaveRequest<'static> {
        SlaveRequest { slave: 5, request }
    }

    #[test]
    fn bits_and_unsupported_functions() {
        let s = shared();
        let t = crate::sim::EPOCH;
        // The status point is a Bool gauge with no role: it serves 0.
        assert_eq!(
            answer(&s, 0, &req(Request::ReadCoils(2, 3)), t),
            Ok(Some(Response::ReadCoils(vec![false, false, false])))
        );
        assert_eq!(
            answer(&s, 0, &req(Request::ReadDiscreteInputs(3, 1)), t),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            answer(&s, 0, &req(Request::ReadCoils(0, 2001)), t),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            answer(&s, 0, &req(Request::WriteSingleRegister(0, 1)), t),
            Err(ExceptionCode::IllegalFunction)
        );
        assert_eq!(
            answer(&s, 0, &req(Request::ReadHoldingRegisters(0xFFFF, 2)), t),
            Err(ExceptionCode::IllegalDataAddress)
        );
        s.set_fault(0, Some(SimFault::Sentinel));
        assert_eq!(
            answer(&s, 0, &req(Request::ReadCoils(3, 1)), t),
            Ok(Some(Response::ReadCoils(vec![true])))
        );
        s.set_fault(0, Some(SimFault::NoResponse));
        assert_eq!(answer(&s, 0, &req(Request::ReadCoils(3, 1)), t), Ok(None));
    }

    /// Holding registers 0..10 of the test meter (volume F64, flow F32,
    /// pressure F32, small U32 counter) at `t`, as a client receives them.
    fn holding(s: &Shared, t: f64) -> Vec<u16> {
        match answer(s, 0, &req(Request::ReadHoldingRegisters(0, 10)), t) {
            Ok(Some(Response::ReadHoldingRegisters(words))) => words,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    /// F64 in CDAB order from four words.
    fn f64_cdab(w: &[u16]) -> f64 {
        f64::from_bits(
            (u64::from(w[3]) << 48)
                | (u64::from(w[2]) << 32)
                | (u64::from(w[1]) << 16)
                | u64::from(w[0]),
        )
    }

    #[test]
    fn frozen_serves_the_registers_of_the_moment_it_was_set() {
        let s = shared();
        let t0 = crate::sim::EPOCH + 3600.0;
        // The clock at the moment of the freeze; requests come later.
        s.frozen.store((t0 + 0.4).to_bits(), Ordering::Relaxed);
        let before = holding(&s, t0);
        s.set_fault(0, Some(SimFault::Frozen));
        assert_eq!(s.fault(0), Some(SimFault::Frozen));
        for later in [t0 + 1.0, t0 + 60.0, t0 + 86_400.0] {
            assert_eq!(holding(&s, later), before, "frozen at {later}");
        }
        // 57.2 m³ at EPOCH + 1 h (50 m³ + 7.2 m³/h).
        assert_eq!(f64_cdab(&before[0..4]), 57.2);
        // Cleared: the present again, the counter where the load has taken it.
        s.set_fault(0, None);
        let now = holding(&s, t0 + 3600.0);
        assert_ne!(now, before);
        assert_eq!(f64_cdab(&now[0..4]), 64.4);
        // Counted since the fault was last set (here: cleared), whatever the answer.
        assert_eq!(s.requests_under_fault(0), 1);
        s.set_fault(0, Some(SimFault::Exception));
        assert_eq!(s.requests_under_fault(0), 0);
        let _ = answer(&s, 0, &req(Request::ReadHoldingRegisters(0, 10)), t0);
        assert_eq!(s.requests_under_fault(0), 1);
        assert_eq!(s.fault(0), Some(SimFault::Exception));
    }

    #[test]
    fn spike_lifts_counters_until_cleared() {
        let s = shared();
        let t = crate::sim::EPOCH + 3600.0;
        let normal = holding(&s, t);
        s.set_fault(0, Some(SimFault::Spike));
        let spiked = holding(&s, t);
        assert_eq!(f64_cdab(&spiked[0..4]), 57.2 + 1_000_000.0);
        // Flow and pressure gauges: unchanged.
        assert_eq!(spiked[4..8], normal[4..8]);
        // The small counter wraps at 100 m³ (×0.001): capped at 99 999 counts.
        assert_eq!(spiked[8..10], [0x869F, 0x0001]);
        s.set_fault(0, None);
        assert_eq!(holding(&s, t), normal);
    }
}
