//! The simulator as a Modbus RTU slave on a byte stream: what a serial
//! server in transparent mode (`rtu_over_tcp`) or a DTU (`dtu`) forwards
//! from an RS-485 bus, served with the same `answer` of [`server`] as Modbus TCP,
//! so the values are the same to the bit.
//!
//! Why our own slave rather than tokio-modbus's RTU server: the bytes
//! arrive from TCP, where nothing marks where a frame starts (no inter-frame
//! silence), a DTU puts its registration in front of answers and sends
//! heartbeats while idle, and a bus must stay silent where a TCP gateway
//! answers; each of those is one line here.
//!
//! Protocol choices:
//! * a request is an 8-byte frame `unit fc a_hi a_lo n_hi n_lo crc_lo crc_hi`
//!   whose CRC-16 fits; bytes before it that start no such frame are garbage
//!   and dropped one at a time (resynchronisation), and a frame not yet
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
//!   `unit 0x80|fc 04 crc`; the others change the values as over TCP;
//! * answers go out at once, as whole frames: no wire time is simulated.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

use super::{Shared, server};
use crate::sources::modbus::frame::{RTU_REQUEST_LEN, crc_fits, push_with_crc};

/// What one request on the bus came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer (data or exception) was appended to the output.
    Answered,
    /// Nothing is sent: unknown unit, broadcast or the `no_response` fault.
    Silent,
}

/// The RTU slave of one endpoint on one connection: received bytes in,
/// answer frames out. No I/O of its own, so every decision is unit-tested.
pub(crate) struct RtuSlave {
    shared: Arc<Shared>,
    endpoint: usize,
    /// Bytes received and not yet taken as a request or dropped.
    buf: Vec<u8>,
    /// An answer without its CRC (reused).
    body: Vec<u8>,
    /// Requests found on this connection (answered or not).
    requests: u64,
    /// Garbage bytes dropped on this connection.
    dropped: u64,
}

impl RtuSlave {
    /// A slave for `endpoint`'s meters with nothing received yet.
    pub(crate) fn new(shared: Arc<Shared>, endpoint: usize) -> RtuSlave {
        RtuSlave {
            shared,
            endpoint,
            buf: Vec::with_capacity(256),
            body: Vec::with_capacity(256),
            requests: 0,
            dropped: 0,
        }
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Requests found so far, answered or not.
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Takes the next request out of the received bytes, dropping the
    /// garbage before it, and appends its answer frame (CRC included) to
    /// `out`. `None` when no whole request is buffered.
    pub(crate) fn next(&mut self, out: &mut Vec<u8>) -> Option<Outcome> {
        let mut skip = 0;
        while self.buf.len() - skip >= RTU_REQUEST_LEN {
            let window = &self.buf[skip..skip + RTU_REQUEST_LEN];
            if crc_fits(window) {
                let mut frame = [0u8; RTU_REQUEST_LEN];
                frame.copy_from_slice(window);
                self.drop_front(skip);
                self.buf.drain(..RTU_REQUEST_LEN);
                self.requests += 1;
                return Some(self.respond(frame, out));
            }
            skip += 1;
        }
        self.drop_front(skip);
        None
    }

    /// Drops `n` garbage bytes from the front of the buffer.
    fn drop_front(&mut self, n: usize) {
        if n > 0 {
            self.buf.drain(..n);
            self.dropped += n as u64;
            tracing::trace!(
                endpoint = self.endpoint,
                bytes = n,
                "simulator: RTU garbage dropped"
            );
        }
    }

    /// The answer to one CRC-checked request frame.
    fn respond(&mut self, frame: [u8; RTU_REQUEST_LEN], out: &mut Vec<u8>) -> Outcome {
        let [unit, function, a_hi, a_lo, n_hi, n_lo, _, _] = frame;
        if unit == 0 || self.shared.units[self.endpoint][usize::from(unit)].is_none() {
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
        let t = self.shared.stepped(self.shared.now());
        let body = &mut self.body;
        body.clear();
        match server::answer(&self.shared, self.endpoint, &req, t) {
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
            Ok(Some(
                Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words),
            )) => {
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
        self.shared.served.fetch_add(1, Ordering::Relaxed);
        Outcome::Answered
    }
}

/// An exception answer body: `unit 0x80|fc code`.
fn exception(body: &mut Vec<u8>, unit: u8, function: u8, code: ExceptionCode) {
    body.extend_from_slice(&[unit, function | 0x80, u8::from(code)]);
}

/// A packet a link sends on its own while idle, and where it is counted.
pub(crate) struct Heartbeat<'a> {
    /// The bytes.
    pub packet: &'a [u8],
    /// Idle time (nothing sent, nothing received) before it is sent.
    pub every: Duration,
    /// Incremented per heartbeat sent.
    pub sent: &'a AtomicU64,
}

/// Serves RTU requests on `stream` until the peer closes it, an I/O error,
/// or `shutdown`. Every answer is written as one write, after `prefix`
/// (a DTU's registration in `every_packet` mode; empty otherwise); with a
/// `heartbeat`, its packet is sent whenever the link has been idle that long.
///
/// # Errors
/// A read or write error of the stream.
pub(crate) async fn serve<S>(
    slave: &mut RtuSlave,
    stream: &mut S,
    prefix: &[u8],
    heartbeat: Option<Heartbeat<'_>>,
    shutdown: &CancellationToken,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut chunk = [0u8; 512];
    let mut answers = Vec::with_capacity(512);
    let mut frame = Vec::with_capacity(256);
    let mut last_traffic = Instant::now();
    // A zero interval would spin; one millisecond is the configured minimum.
    let every = heartbeat
        .as_ref()
        .map_or(Duration::MAX, |h| h.every.max(Duration::from_millis(1)));
    loop {
        let idle_until = last_traffic.checked_add(every);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            read = stream.read(&mut chunk) => {
                let n = read?;
                if n == 0 {
                    return Ok(());
                }
                slave.push(&chunk[..n]);
                answers.clear();
                while let Some(outcome) = slave.next(&mut frame) {
                    if outcome == Outcome::Answered {
                        answers.extend_from_slice(prefix);
                        answers.extend_from_slice(&frame);
                        frame.clear();
                    }
                }
                if !answers.is_empty() {
                    stream.write_all(&answers).await?;
                }
                last_traffic = Instant::now();
            }
            () = sleep_until(idle_until), if heartbeat.is_some() && idle_until.is_some() => {
                if let Some(h) = &heartbeat {
                    stream.write_all(h.packet).await?;
                    h.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!("simulator: DTU heartbeat sent");
                }
                last_traffic = Instant::now();
            }
        }
    }
}

/// Sleeps until `at`; forever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Accepts connections on `listener` (an `rtu_over_tcp` endpoint) and serves
/// each with its own [`RtuSlave`] until `shutdown`, which closes the
/// listener and every connection.
pub(crate) fn spawn_listener(
    shared: Arc<Shared>,
    endpoint: usize,
    endpoint_id: String,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (mut stream, peer): (_, SocketAddr) = match accepted {
                Ok(a) => a,
                Err(err) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(endpoint = %endpoint_id, %err, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let mut slave = RtuSlave::new(Arc::clone(&shared), endpoint);
            let shutdown = shutdown.clone();
            let endpoint_id = endpoint_id.clone();
            tokio::spawn(async move {
                if let Err(err) = serve(&mut slave, &mut stream, &[], None, &shutdown).await {
                    tracing::debug!(endpoint = %endpoint_id, %peer, %err, "simulator RTU connection ended");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::config::SimFault;
    use crate::sim::meter::tests::water_meter;

    /// The water meter of `server`'s tests at unit 5, clock frozen at the epoch + 1 h.
    fn shared() -> Arc<Shared> {
        let mut units = Box::new([None; 256]);
        units[5] = Some(0);
        Arc::new(Shared {
            meters: vec![water_meter()],
            units: vec![units],
            faults: vec![AtomicU64::new(0)],
            resets: vec![AtomicU64::new(0)],
            freeze_at: vec![AtomicU64::new(0)],
            frozen: AtomicU64::new((crate::sim::EPOCH + 3600.0).to_bits()),
            step: 1.0,
            served: AtomicU64::new(0),
        })
    }

    /// Feeds `bytes` and takes every request they complete, with its answer frame.
    fn answers(slave: &mut RtuSlave, bytes: &[u8]) -> Vec<(Outcome, Vec<u8>)> {
        slave.push(bytes);
        let mut found = Vec::new();
        let mut out = Vec::new();
        while let Some(o) = slave.next(&mut out) {
            found.push((o, std::mem::take(&mut out)));
        }
        found
    }

    #[test]
    fn reads_and_exceptions_in_rtu_framing() {
        let s = shared();
        let mut slave = RtuSlave::new(Arc::clone(&s), 0);
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

    fn frame_of(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_with_crc(&mut out, body);
        out
    }

    #[test]
    fn unknown_unit_and_broadcast_are_silent() {
        let s = shared();
        let mut slave = RtuSlave::new(Arc::clone(&s), 0);
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
        let mut slave = RtuSlave::new(s, 0);
        let req = frame_of(&[0x05, 0x03, 0x00, 0x00, 0x00, 0x04]);
        // Garbage, then the request in two pieces.
        let mut bytes = vec![0xFF, 0x05, 0x03, 0x11, 0x00, 0x05, 0x03, 0x00, 0x00];
        bytes.extend_from_slice(&req[..3]);
        assert!(answers(&mut slave, &bytes).is_empty());
        let got = answers(&mut slave, &req[3..]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1[..3], [0x05, 0x03, 0x08]);
        assert_eq!(slave.dropped, 9);
        assert!(slave.buf.is_empty());
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
        let mut slave = RtuSlave::new(s, 0);
        // The status coil at address 3 serves `true` under the sentinel fault.
        let got = answers(&mut slave, &frame_of(&[0x05, 0x01, 0x00, 0x03, 0x00, 0x01]));
        assert_eq!(got[0].1[..4], [0x05, 0x01, 0x01, 0x01]);
    }
}
