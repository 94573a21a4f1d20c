//! A scripted adversarial DL/T 645-2007 meter of our own, for the DL/T 645
//! tests: each read request is answered as the meter's script says (right,
//! from another address, for another DI, with a bad checksum, with a value
//! one byte too long, with a non-BCD digit, cut short and the link closed,
//! cut short, wake-up bytes and no frame, random bytes, an error answer
//! 0xD1 with a given error byte, split into 1-byte writes, after a stray
//! 0x68, after an echo of the request, under the follow-up control code
//! 0xB1, or not at all).
//!
//! Why our own: the `dlt645` package and the simulator only ever answer
//! right, and the gateway must prove it never takes a wrong answer for a
//! value. Frames are built here with this file's own small encoder (address
//! lowest byte first, DI0 first, +0x33, byte-sum checksum, BCD lowest byte
//! first with the sign in the top bit of the last byte), never with
//! emgate's frame code, so a shared mistake cannot hide.
//!
//! A bus holds one or more meters (a meter answers only its own address,
//! as on RS-485) and is reached as a TCP server ([`RawDltBus::tcp`]: an
//! `rtu_over_tcp` endpoint), as a DTU dialling the gateway's `[dtu] listen`
//! with a registration ([`RawDltBus::dtu`], redialling after a close), or
//! on a pty path ([`RawDltBus::serial`], one end of a
//! [`super::socat::PtyPair`]). It stops when dropped.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::unix::pipe;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a DTU or a pty end waits before trying again.
const RETRY: Duration = Duration::from_millis(50);

/// Pause between the 1-byte writes of [`Act::Split`].
const SPLIT_PAUSE: Duration = Duration::from_millis(1);

/// Bytes of one [`Act::Random`] answer.
const RANDOM_BYTES: usize = 24;

/// The frame start byte, end byte, and what every data byte is sent plus.
const START: u8 = 0x68;
const END: u8 = 0x16;
const OFFSET: u8 = 0x33;

/// Control codes: read, its normal answer, its error answer.
pub const READ: u8 = 0x11;
/// See [`READ`].
pub const READ_ANSWER: u8 = 0x91;
/// See [`READ`].
pub const READ_ERROR: u8 = 0xD1;
/// A normal answer with follow-up frames to come.
pub const READ_FOLLOW_UP: u8 = 0xB1;

/// What the meter does with one read request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The right answer.
    Right,
    /// The right answer from another address (its lowest digit changed).
    WrongAddress,
    /// The right value under another DI (DI0 + 1: the same quantity at the
    /// last settlement day, for energy).
    WrongDi,
    /// The right answer with its checksum off by one.
    BadChecksum,
    /// A well-formed answer whose value has one byte more than the format.
    WrongLength,
    /// A well-formed answer (checksum right) whose lowest value digit is 0xA.
    BadBcd,
    /// The first half of the right answer, then the link is closed.
    TruncatedClose,
    /// The first half of the right answer; the link stays.
    Half,
    /// Four wake-up bytes `FE` and no frame.
    PreambleOnly,
    /// [`RANDOM_BYTES`] random bytes (never 0x68, so no frame can start).
    Random,
    /// An error answer (0xD1) with this error byte.
    Error(u8),
    /// The right answer, one byte per write, [`SPLIT_PAUSE`] apart.
    Split,
    /// The right value under control code 0xB1 (follow-up frames exist).
    FollowUp,
    /// The request echoed back (as a half-duplex converter with local echo
    /// does), then the right answer.
    Echo,
    /// The right answer with a stray 0x68 (line noise) between its wake-up
    /// bytes and its frame. With an address
    /// whose top byte is 0x68 (nameplate `68…`) the stray byte and the
    /// answer's first bytes look like a frame header: 68, six bytes, 68,
    /// and an L of 0x91 that the line never completes.
    Stray68,
    /// No answer.
    Silence,
}

/// One meter on the bus: its address, values and script, cycled request by
/// request, unless the DI has an act of its own.
#[derive(Debug, Clone)]
pub struct RawMeter {
    /// The address as sent on the wire (lowest byte first).
    pub address: [u8; 6],
    /// DI (as written, DI3 first) → value bytes as sent, before +0x33.
    pub values: Vec<(u32, Vec<u8>)>,
    /// Wake-up bytes in front of every answer.
    pub preamble: usize,
    /// What to do, request after request, cycled.
    pub script: Vec<Act>,
    /// Acts for one DI, before the script.
    pub at: Vec<(u32, Act)>,
}

impl RawMeter {
    /// The meter printed `nameplate` with `values`, doing `script` in a cycle;
    /// its answers carry two wake-up bytes (the requests carry four: a
    /// master must not expect its own count back).
    pub fn new(nameplate: &str, values: &[(u32, Vec<u8>)], script: &[Act]) -> RawMeter {
        assert!(!script.is_empty(), "a script needs at least one act");
        RawMeter {
            address: wire_address(nameplate),
            values: values.to_vec(),
            preamble: 2,
            script: script.to_vec(),
            at: Vec::new(),
        }
    }

    /// Every read of `di` gets `act`.
    #[must_use]
    pub fn at(mut self, di: u32, act: Act) -> RawMeter {
        self.at.push((di, act));
        self
    }
}

/// The wire order of a nameplate address: the last two digits first
/// (`123456789012` → `12 90 78 56 34 12`), written out here on its own.
pub fn wire_address(nameplate: &str) -> [u8; 6] {
    let d = nameplate.as_bytes();
    assert!(
        d.len() == 12 && d.iter().all(u8::is_ascii_digit),
        "a nameplate address is 12 digits: {nameplate:?}"
    );
    let mut out = [0u8; 6];
    for (k, byte) in out.iter_mut().enumerate() {
        let pair = &d[10 - 2 * k..12 - 2 * k];
        *byte = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
    }
    out
}

/// `digits` (the value × 10^decimals, as an integer) as `bytes` BCD bytes,
/// lowest first; a negative value sets the top bit of the last byte.
pub fn bcd(digits: i64, bytes: usize, negative: bool) -> Vec<u8> {
    assert!(digits >= 0, "give the magnitude and the sign apart");
    let mut n = digits.unsigned_abs();
    let mut out = Vec::with_capacity(bytes);
    for _ in 0..bytes {
        let lo = (n % 10) as u8;
        let hi = (n / 10 % 10) as u8;
        out.push((hi << 4) | lo);
        n /= 100;
    }
    assert_eq!(n, 0, "{digits} does not fit {bytes} BCD bytes");
    if negative {
        let top = out.last_mut().expect("at least one byte");
        assert_eq!(*top & 0x80, 0, "no room for the sign bit");
        *top |= 0x80;
    }
    out
}

/// A frame `68 A 68 C L DATA CS 16` with `data` given before +0x33, after
/// `preamble` wake-up bytes.
pub fn frame(preamble: usize, address: [u8; 6], control: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFE; preamble];
    let start = out.len();
    out.push(START);
    out.extend_from_slice(&address);
    out.push(START);
    out.push(control);
    out.push(u8::try_from(data.len()).expect("L fits a byte"));
    out.extend(data.iter().map(|b| b.wrapping_add(OFFSET)));
    let cs = out[start..].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    out.push(cs);
    out.push(END);
    out
}

/// A DI as sent, DI0 first (before +0x33).
pub fn di_bytes(di: u32) -> [u8; 4] {
    di.to_le_bytes()
}

/// One read request as received.
#[derive(Debug, Clone, Copy)]
struct Request {
    address: [u8; 6],
    di: u32,
}

/// One whole frame as received.
struct Received {
    address: [u8; 6],
    control: u8,
    /// DATA, −0x33.
    data: Vec<u8>,
}

impl Received {
    /// The read request it is, if it is one.
    fn read(&self) -> Option<Request> {
        (self.control == READ && self.data.len() == 4).then(|| Request {
            address: self.address,
            di: u32::from_le_bytes([self.data[0], self.data[1], self.data[2], self.data[3]]),
        })
    }
}

/// Takes the first whole frame off `buf` (wake-up bytes and anything that
/// starts no frame with a fitting checksum are dropped); `None` until one
/// is complete.
fn take_frame(buf: &mut Vec<u8>) -> Option<Received> {
    loop {
        let i = buf.iter().position(|&b| b == START)?;
        buf.drain(..i);
        if buf.len() < 10 {
            return None;
        }
        if buf[7] != START {
            buf.remove(0);
            continue;
        }
        let len = 12 + usize::from(buf[9]);
        if buf.len() < len {
            return None;
        }
        let cs = buf[..len - 2].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        if buf[len - 2] != cs || buf[len - 1] != END {
            buf.remove(0);
            continue;
        }
        let f: Vec<u8> = buf.drain(..len).collect();
        return Some(Received {
            address: f[1..7].try_into().expect("six bytes"),
            control: f[8],
            data: f[10..len - 2]
                .iter()
                .map(|b| b.wrapping_sub(OFFSET))
                .collect(),
        });
    }
}

struct Shared {
    meters: Vec<RawMeter>,
    /// Requests seen per meter (the script position).
    per_meter: Mutex<HashMap<[u8; 6], usize>>,
    requests: AtomicU64,
    /// The seed of the next [`Act::Random`] answer.
    seed: Mutex<u32>,
}

impl Shared {
    /// The meter and what to do with this request; `None` for another
    /// address (silence, as on a real bus).
    fn act(&self, r: Request) -> Option<(&RawMeter, Act)> {
        let meter = self.meters.iter().find(|m| m.address == r.address)?;
        let mut per = self
            .per_meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = per.entry(r.address).or_insert(0);
        let scripted = meter.script[*n % meter.script.len()];
        *n += 1;
        let act = meter
            .at
            .iter()
            .find_map(|(di, act)| (*di == r.di).then_some(*act))
            .unwrap_or(scripted);
        Some((meter, act))
    }

    fn random(&self) -> Vec<u8> {
        let mut seed = self.seed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(RANDOM_BYTES);
        while out.len() < RANDOM_BYTES {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let b = (*seed >> 16) as u8;
            if b != START {
                out.push(b);
            }
        }
        out
    }
}

/// The bytes `act` sends for read `r` of `meter` (for the acts that send
/// one piece).
fn answer(meter: &RawMeter, r: Request, act: Act) -> Vec<u8> {
    if let Act::Error(code) = act {
        return frame(meter.preamble, meter.address, READ_ERROR, &[code]);
    }
    let Some((_, value)) = meter.values.iter().find(|(di, _)| *di == r.di) else {
        // A DI the meter does not have: "no data", as a real meter says.
        return frame(meter.preamble, meter.address, READ_ERROR, &[0x02]);
    };
    let mut value = value.clone();
    let mut address = meter.address;
    let mut di = r.di;
    match act {
        Act::WrongAddress => address[0] = address[0].wrapping_add(1),
        Act::WrongDi => di = di.wrapping_add(1),
        Act::WrongLength => value.push(0),
        Act::BadBcd => value[0] = (value[0] & 0xF0) | 0x0A,
        _ => {}
    }
    let mut data = di_bytes(di).to_vec();
    data.extend_from_slice(&value);
    let control = if act == Act::FollowUp {
        READ_FOLLOW_UP
    } else {
        READ_ANSWER
    };
    let mut f = frame(meter.preamble, address, control, &data);
    if act == Act::BadChecksum {
        let n = f.len();
        f[n - 2] = f[n - 2].wrapping_add(1);
    }
    f
}

/// A running raw DL/T 645 bus; stops when dropped.
pub struct RawDltBus {
    shared: Arc<Shared>,
    stop: CancellationToken,
    port: Option<u16>,
}

impl RawDltBus {
    fn shared(meters: Vec<RawMeter>) -> Arc<Shared> {
        Arc::new(Shared {
            meters,
            per_meter: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            seed: Mutex::new(7),
        })
    }

    /// A TCP server on a free loopback port (a serial server's transparent link).
    pub async fn tcp(meters: Vec<RawMeter>) -> RawDltBus {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let shared = RawDltBus::shared(meters);
        let stop = CancellationToken::new();
        let (s, st) = (Arc::clone(&shared), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = st.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((sock, _)) = accepted else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (s, st) = (Arc::clone(&s), st.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, &s, &st).await;
                });
            }
        });
        RawDltBus {
            shared,
            stop,
            port: Some(port),
        }
    }

    /// A DTU in transparent mode: dials `gateway` until it answers, sends
    /// `registration`, then answers requests; dials again after a close.
    pub fn dtu(gateway: SocketAddr, registration: &[u8], meters: Vec<RawMeter>) -> RawDltBus {
        let shared = RawDltBus::shared(meters);
        let stop = CancellationToken::new();
        let (s, st, reg) = (Arc::clone(&shared), stop.clone(), registration.to_vec());
        tokio::spawn(async move {
            while !st.is_cancelled() {
                if let Ok(mut sock) = TcpStream::connect(gateway).await {
                    let _ = sock.set_nodelay(true);
                    if sock.write_all(&reg).await.is_ok() {
                        let _ = serve(sock, &s, &st).await;
                    }
                }
                tokio::select! {
                    () = st.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        });
        RawDltBus {
            shared,
            stop,
            port: None,
        }
    }

    /// Meters on the serial line `path` (a pty end).
    pub fn serial(path: &Path, meters: Vec<RawMeter>) -> RawDltBus {
        let shared = RawDltBus::shared(meters);
        let stop = CancellationToken::new();
        let (s, st, path) = (Arc::clone(&shared), stop.clone(), path.to_owned());
        tokio::spawn(async move {
            while !st.is_cancelled() {
                if let Ok(pty) = open_pty(&path) {
                    let _ = serve(pty, &s, &st).await;
                }
                tokio::select! {
                    () = st.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        });
        RawDltBus {
            shared,
            stop,
            port: None,
        }
    }

    /// The TCP port of a [`RawDltBus::tcp`] bus.
    pub fn port(&self) -> u16 {
        self.port.expect("a TCP raw bus")
    }

    /// Read requests received so far, all meters (other addresses included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for RawDltBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves one link until it closes, the script closes it, or the bus stops.
async fn serve<L>(mut link: L, shared: &Shared, stop: &CancellationToken) -> io::Result<()>
where
    L: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        while let Some(received) = take_frame(&mut buf) {
            let Some(r) = received.read() else {
                continue;
            };
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let Some((meter, act)) = shared.act(r) else {
                continue;
            };
            match act {
                Act::Silence => {}
                Act::PreambleOnly => link.write_all(&[0xFE; 4]).await?,
                Act::Random => link.write_all(&shared.random()).await?,
                Act::Echo => {
                    link.write_all(&frame(4, r.address, READ, &di_bytes(r.di)))
                        .await?;
                    link.write_all(&answer(meter, r, Act::Right)).await?;
                }
                Act::Stray68 => {
                    let mut a = answer(meter, r, Act::Right);
                    a.insert(meter.preamble, START);
                    link.write_all(&a).await?;
                }
                Act::Split => {
                    for b in answer(meter, r, Act::Right) {
                        link.write_all(&[b]).await?;
                        link.flush().await?;
                        tokio::time::sleep(SPLIT_PAUSE).await;
                    }
                }
                Act::TruncatedClose | Act::Half => {
                    let a = answer(meter, r, Act::Right);
                    link.write_all(&a[..a.len() / 2]).await?;
                    link.flush().await?;
                    if act == Act::TruncatedClose {
                        let _ = link.shutdown().await;
                        return Ok(());
                    }
                }
                _ => link.write_all(&answer(meter, r, act)).await?,
            }
            link.flush().await?;
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = link.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// One end of a pty as a byte stream (see `raw_bus`: tokio's pipe ends
/// accept a character device when unchecked).
fn open_pty(path: &Path) -> io::Result<impl AsyncRead + AsyncWrite + Unpin> {
    let mut options = pipe::OpenOptions::new();
    options.unchecked(true);
    let rx = options.open_receiver(path)?;
    let tx = options.open_sender(path)?;
    Ok(tokio::io::join(rx, tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// domain.md §5.1: the read of forward active energy (DI 00010000) of
    /// meter 123456789012 is `68 12 90 78 56 34 12 68 11 04 33 33 34 33 68
    /// 16` (CS: 0x68+0x12+0x90+0x78+0x56+0x34+0x12+0x68+0x11+0x04+0x33
    /// +0x33+0x34+0x33 = 0x368, low byte 0x68).
    #[test]
    fn encoder_matches_the_worked_request() {
        assert_eq!(
            wire_address("123456789012"),
            [0x12, 0x90, 0x78, 0x56, 0x34, 0x12]
        );
        assert_eq!(
            frame(
                4,
                wire_address("123456789012"),
                READ,
                &di_bytes(0x0001_0000)
            ),
            [
                0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04,
                0x33, 0x33, 0x34, 0x33, 0x68, 0x16
            ]
        );
        // -1.2345 kW as XX.XXXX: 012345 → 45 23 01, sign → 45 23 81.
        assert_eq!(bcd(12_345, 3, true), [0x45, 0x23, 0x81]);
    }

    #[test]
    fn requests_are_taken_after_wake_up_bytes_and_noise() {
        let mut buf = vec![0x00, 0xFE, 0x68, 0x01];
        buf.extend(frame(
            4,
            wire_address("000000000001"),
            READ,
            &di_bytes(0x0201_0100),
        ));
        let r = take_frame(&mut buf).and_then(|f| f.read()).expect("a read");
        assert_eq!(r.di, 0x0201_0100);
        assert_eq!(r.address, [1, 0, 0, 0, 0, 0]);
        assert!(buf.is_empty());
    }
}
