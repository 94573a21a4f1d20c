//! The simulator as the meters on one RS-485 bus, seen through a byte
//! stream: what a serial server in transparent mode (`rtu_over_tcp`) or a
//! DTU (`dtu`) forwards. Such a bus may carry Modbus RTU meters and
//! DL/T 645-2007 meters side by side (a plant's incomers speak DL/T 645,
//! its sub-meters Modbus), so `BusSlave` finds each request in the bytes
//! and hands it to the protocol it is: [`super::rtu`] or [`super::dlt645`].
//!
//! Why one slave for both: on a real bus every device hears every frame and
//! answers only its own; the master's requests of both protocols arrive on
//! the same connection, one at a time, and nothing marks where a frame
//! starts (TCP has no inter-frame silence).
//!
//! How a request is recognised, at each byte offset in turn:
//! * a **DL/T 645 frame**: `68`, six address bytes, `68`, control, length
//!   L, L data bytes, a checksum that fits (byte sum from the first `68`)
//!   and `16`. A frame that has started (`68` here and, once it has come,
//!   `68` seven bytes on) but is not complete yet waits for more bytes.
//!   Wake-up bytes `FE` in front are skipped like any garbage;
//! * a **Modbus RTU request**: the 8-byte frame `unit fc a_hi a_lo n_hi n_lo
//!   crc_lo crc_hi` whose CRC-16 fits and whose unit is not one of the
//!   reserved addresses 248-255 (so the DL/T 645 wake-up bytes `FE FE FE FE
//!   68 …` are never taken for an RTU frame of unit 254);
//! * a complete DL/T 645 frame is taken before an RTU window at the same
//!   offset (its checksum, length and end byte are the stronger evidence);
//!   an RTU window that fits is taken before a DL/T 645 frame still waiting
//!   for bytes (which would otherwise hold the bus on a stray `68`);
//! * bytes before the request that start neither are garbage and are
//!   dropped (resynchronisation). A frame found is consumed whole, so bytes
//!   inside it are never scanned again.
//!
//! Answers go out at once, as whole frames: no wire time is simulated.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Shared, dlt645, rtu};
use crate::sources::modbus::frame::RTU_REQUEST_LEN;

/// What one request on the bus came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer (data or an exception / error answer) was appended to the output.
    Answered,
    /// Nothing is sent: unknown unit or address, broadcast, or the `no_response` fault.
    Silent,
}

/// The slave side of one bus on one connection: received bytes in, answer
/// frames out. No I/O of its own, so every decision is unit-tested.
pub(crate) struct BusSlave {
    shared: Arc<Shared>,
    endpoint: usize,
    /// Bytes received and not yet taken as a request or dropped.
    buf: Vec<u8>,
    /// Scratch for an answer before framing (reused).
    body: Vec<u8>,
    /// Requests found on this connection (answered or not), both protocols.
    requests: u64,
    /// Garbage bytes dropped on this connection (wake-up bytes included).
    dropped: u64,
}

impl BusSlave {
    /// A slave for `endpoint`'s meters with nothing received yet.
    pub(crate) fn new(shared: Arc<Shared>, endpoint: usize) -> BusSlave {
        BusSlave {
            shared,
            endpoint,
            buf: Vec::with_capacity(512),
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

    /// Garbage bytes dropped so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes received and not yet taken.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next request out of the received bytes, dropping the
    /// garbage before it, and appends its answer frame to `out` (nothing
    /// for a silent outcome). `None` when no whole request is buffered.
    pub(crate) fn next(&mut self, out: &mut Vec<u8>) -> Option<Outcome> {
        let mut skip = 0;
        loop {
            let rest = &self.buf[skip..];
            let framing = dlt645::frame_at(rest);
            if let dlt645::Framing::Complete(len) = framing {
                let frame = &self.buf[skip..skip + len];
                let outcome =
                    dlt645::respond(&self.shared, self.endpoint, frame, &mut self.body, out);
                return Some(self.consume(skip, len, outcome));
            }
            if rest.len() < RTU_REQUEST_LEN {
                break;
            }
            let window = &rest[..RTU_REQUEST_LEN];
            if rtu::is_request(window) {
                let mut frame = [0u8; RTU_REQUEST_LEN];
                frame.copy_from_slice(window);
                let outcome = rtu::respond(&self.shared, self.endpoint, frame, &mut self.body, out);
                return Some(self.consume(skip, RTU_REQUEST_LEN, outcome));
            }
            if framing == dlt645::Framing::Pending {
                break;
            }
            skip += 1;
        }
        self.drop_front(skip);
        None
    }

    /// Drops the `skip` garbage bytes and the `len` bytes of the request after them.
    fn consume(&mut self, skip: usize, len: usize, outcome: Outcome) -> Outcome {
        self.drop_front(skip);
        self.buf.drain(..len);
        self.requests += 1;
        outcome
    }

    /// Drops `n` garbage bytes from the front of the buffer.
    fn drop_front(&mut self, n: usize) {
        if n > 0 {
            self.buf.drain(..n);
            self.dropped += n as u64;
            tracing::trace!(
                endpoint = self.endpoint,
                bytes = n,
                "simulator: bus garbage dropped"
            );
        }
    }
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

/// Serves the bus's requests on `stream` until the peer closes it, an I/O
/// error, or `shutdown`. Every answer is written as one write, after `prefix`
/// (a DTU's registration in `every_packet` mode; empty otherwise); with a
/// `heartbeat`, its packet is sent whenever the link has been idle that long.
///
/// # Errors
/// A read or write error of the stream.
pub(crate) async fn serve<S>(
    slave: &mut BusSlave,
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
    let mut frame = Vec::with_capacity(300);
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
                    }
                    frame.clear();
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
/// each with its own [`BusSlave`] until `shutdown`, which closes the
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
            let mut slave = BusSlave::new(Arc::clone(&shared), endpoint);
            let shutdown = shutdown.clone();
            let endpoint_id = endpoint_id.clone();
            tokio::spawn(async move {
                if let Err(err) = serve(&mut slave, &mut stream, &[], None, &shutdown).await {
                    tracing::debug!(endpoint = %endpoint_id, %peer, %err, "simulator bus connection ended");
                }
            });
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sim::dlt645::tests::{ADDRESS, mixed_shared};
    use crate::sources::dlt645::frame::{Address, Di, encode_read, encode_read_address};
    use crate::sources::modbus::frame::{crc_fits, push_with_crc};

    /// Feeds `bytes` and takes every request they complete, with its answer frame.
    pub(crate) fn answers(slave: &mut BusSlave, bytes: &[u8]) -> Vec<(Outcome, Vec<u8>)> {
        slave.push(bytes);
        let mut found = Vec::new();
        let mut out = Vec::new();
        while let Some(o) = slave.next(&mut out) {
            found.push((o, std::mem::take(&mut out)));
        }
        found
    }

    pub(crate) fn rtu_frame(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_with_crc(&mut out, body);
        out
    }

    fn dlt_read(address: Address, di: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_read(&mut out, 4, address, Di(di));
        out
    }

    #[test]
    fn both_protocols_on_one_connection_in_any_order() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        // Modbus unit 5, DL/T 645 meter, Modbus again: in one segment, with garbage between.
        let modbus = rtu_frame(&[0x05, 0x03, 0x00, 0x08, 0x00, 0x02]);
        let dlt = dlt_read(ADDRESS, 0x0001_0000);
        let bytes = [&modbus[..], &[0x00, 0x13], &dlt, &[0xFE, 0xFE], &modbus].concat();
        let got = answers(&mut slave, &bytes);
        assert_eq!(got.len(), 3, "{got:02X?}");
        assert!(got.iter().all(|(o, _)| *o == Outcome::Answered));
        assert_eq!(got[0].1[..3], [0x05, 0x03, 0x04]);
        assert!(crc_fits(&got[0].1));
        // Two FE, then the DL/T 645 answer 0x91 of the meter's own address.
        assert_eq!(got[1].1[..3], [0xFE, 0xFE, 0x68]);
        assert_eq!(got[1].1[3..9], ADDRESS.0);
        assert_eq!(got[1].1[10], 0x91);
        assert_eq!(got[2].1, got[0].1);
        assert_eq!(slave.requests(), 3);
        // The two garbage bytes and the two wake-up bytes; the request's own 4 FE.
        assert_eq!(slave.dropped, 2 + 4 + 2);
        assert!(slave.buf.is_empty());
    }

    #[test]
    fn split_frames_wait_for_their_rest() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        let dlt = dlt_read(ADDRESS, 0x0201_0100);
        // Cut inside the header, then inside the data: nothing yet.
        assert!(answers(&mut slave, &dlt[..9]).is_empty());
        assert!(answers(&mut slave, &dlt[9..17]).is_empty());
        let got = answers(&mut slave, &dlt[17..]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1[10], 0x91);
        // A Modbus request cut in two waits the same way.
        let modbus = rtu_frame(&[0x05, 0x03, 0x00, 0x00, 0x00, 0x04]);
        assert!(answers(&mut slave, &modbus[..5]).is_empty());
        assert_eq!(answers(&mut slave, &modbus[5..]).len(), 1);
    }

    #[test]
    fn a_stray_start_byte_does_not_hold_a_fitting_rtu_request() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        // `68` then a Modbus request: the `68` could start a DL/T 645 frame
        // (its seventh byte on is not `68`, so it does not), and the RTU request after it is found.
        let modbus = rtu_frame(&[0x05, 0x03, 0x00, 0x08, 0x00, 0x02]);
        let got = answers(&mut slave, &[&[0x68][..], &modbus].concat());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1[..3], [0x05, 0x03, 0x04]);
        assert_eq!(slave.dropped, 1);
    }

    #[test]
    fn reserved_units_are_no_rtu_requests() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        // A CRC that fits, for unit 254 (FE, the DL/T 645 wake-up byte): garbage.
        let got = answers(
            &mut slave,
            &rtu_frame(&[0xFE, 0x03, 0x00, 0x00, 0x00, 0x02]),
        );
        assert!(got.is_empty(), "{got:02X?}");
        assert_eq!(slave.requests(), 0);
        assert_eq!(slave.buffered(), RTU_REQUEST_LEN - 1);
    }

    #[test]
    fn a_bad_checksum_is_no_request_and_the_next_frame_is_found() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        let mut bad = dlt_read(ADDRESS, 0x0001_0000);
        let cs = bad.len() - 2;
        bad[cs] ^= 0x01;
        let good = dlt_read(ADDRESS, 0x0001_0000);
        let got = answers(&mut slave, &[bad, good].concat());
        assert_eq!(got.len(), 1, "{got:02X?}");
        assert_eq!(got[0].1[10], 0x91);
        assert_eq!(slave.requests(), 1);
    }

    #[test]
    fn read_address_on_a_bus_of_one_meter() {
        let s = mixed_shared();
        let mut slave = BusSlave::new(s, 0);
        let mut req = Vec::new();
        encode_read_address(&mut req, 4);
        let got = answers(&mut slave, &req);
        let mut want = Vec::new();
        crate::sources::dlt645::frame::encode(&mut want, 2, ADDRESS, 0x93, &ADDRESS.0);
        assert_eq!(got, vec![(Outcome::Answered, want)]);
    }
}
