//! A scripted adversarial Modbus device of our own, for the field-bus tests:
//! every request is answered as the unit's script says (right, under
//! another transaction id, from another unit, with lengths that disagree,
//! with more or fewer registers than asked, with a bad CRC, late, split
//! into 1-byte writes, with endless garbage, by closing mid-frame, or not
//! at all).
//!
//! Why our own: pymodbus and the simulator only ever answer right, and the
//! gateway must prove it never takes a wrong answer for a value. The frames
//! are built here, with this file's own CRC, never with emgate's frame code,
//! so a shared mistake cannot hide.
//!
//! One bus speaks RTU framing (unit, PDU, CRC) or MBAP, and is reached as
//! a TCP server ([`RawBus::tcp`]: `tcp` and `rtu_over_tcp` endpoints), as a
//! DTU dialling the gateway's `[dtu] listen` with a registration
//! ([`RawBus::dtu`], redialling when the gateway closes the link), or on a
//! pty path ([`RawBus::serial`], one end of a [`super::socat::PtyPair`]).
//! It stops when dropped.

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

use super::pymodbus::PeerDevice;

/// How long a DTU or a pty end waits before trying again.
const RETRY: Duration = Duration::from_millis(50);

/// Pause between the 1-byte writes of [`Act::Split`].
const SPLIT_PAUSE: Duration = Duration::from_millis(1);

/// Bytes of garbage per burst, and the pause between bursts.
const GARBAGE_BURST: usize = 24;
const GARBAGE_EVERY: Duration = Duration::from_millis(5);

/// The framing a bus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Modbus TCP: MBAP header with transaction id, no CRC.
    Mbap,
    /// Modbus RTU: unit, PDU, CRC-16 low byte first.
    Rtu,
}

/// What the device does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The right answer.
    Right,
    /// The right answer under the next transaction id (MBAP; right on RTU).
    WrongTransaction,
    /// The right answer from the next unit id (CRC fitting that frame).
    WrongUnit,
    /// MBAP: the PDU's byte count says 2 bytes more than the MBAP length
    /// carries (RTU: the byte count says 2 more than sent, CRC over what is sent).
    BadLength,
    /// A well-formed answer with this many registers more (or fewer) than asked.
    WrongCount(i16),
    /// The right answer with its CRC inverted (RTU; right on MBAP).
    BadCrc,
    /// The right answer, held back and sent when the next request arrives,
    /// before that request's own answer. On RTU the held answer belongs to
    /// the bus (a serial server forwards it on whatever connection is
    /// current); on MBAP to the connection (it dies with it).
    Late,
    /// The right answer, one byte per write, [`SPLIT_PAUSE`] apart.
    Split,
    /// From now on, garbage on the link without end (bursts every few ms,
    /// bytes chosen so that no frame can start in them, in either framing).
    Garbage,
    /// The first half of the right answer, then the link is closed.
    CloseMidFrame,
    /// No answer.
    Silence,
}

/// One unit on the bus: its registers and its script, cycled request by
/// request (`[Late, Right]`: every other request of this unit is late),
/// unless the read's first address has an act of its own.
#[derive(Debug, Clone)]
pub struct RawDevice {
    /// Registers (unit id, holding and input blocks).
    pub device: PeerDevice,
    /// What to do, request after request, cycled.
    pub script: Vec<Act>,
    /// Acts for reads starting at an address, before the script.
    pub at: Vec<(u16, Act)>,
}

impl RawDevice {
    /// `device` doing `script` in a cycle.
    pub fn new(device: PeerDevice, script: &[Act]) -> RawDevice {
        assert!(!script.is_empty(), "a script needs at least one act");
        RawDevice {
            device,
            script: script.to_vec(),
            at: Vec::new(),
        }
    }

    /// Every read starting at `start` gets `act` (e.g. always late, whatever
    /// the gateway does between reads).
    #[must_use]
    pub fn at(mut self, start: u16, act: Act) -> RawDevice {
        self.at.push((start, act));
        self
    }
}

/// What the device state shared by all links of one bus holds.
#[derive(Default)]
struct State {
    /// Requests seen per unit (the script position).
    per_unit: HashMap<u8, usize>,
    /// An RTU answer held back by [`Act::Late`].
    held: Option<Vec<u8>>,
}

struct Shared {
    framing: Framing,
    devices: Vec<RawDevice>,
    state: Mutex<State>,
    requests: AtomicU64,
}

/// A running raw bus; stops when dropped.
pub struct RawBus {
    shared: Arc<Shared>,
    stop: CancellationToken,
    port: Option<u16>,
}

impl RawBus {
    fn shared(framing: Framing, devices: Vec<RawDevice>) -> Arc<Shared> {
        Arc::new(Shared {
            framing,
            devices,
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
        })
    }

    /// A TCP server on a free loopback port, speaking `framing`.
    pub async fn tcp(framing: Framing, devices: Vec<RawDevice>) -> RawBus {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let shared = RawBus::shared(framing, devices);
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
        RawBus {
            shared,
            stop,
            port: Some(port),
        }
    }

    /// A DTU in transparent mode: dials `gateway` (its `[dtu] listen`)
    /// until it answers, sends `registration`, then answers requests in RTU
    /// framing; dials again shortly after the link closes.
    pub fn dtu(gateway: SocketAddr, registration: &[u8], devices: Vec<RawDevice>) -> RawBus {
        let shared = RawBus::shared(Framing::Rtu, devices);
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
        RawBus {
            shared,
            stop,
            port: None,
        }
    }

    /// A device on the serial line `path` (a pty end), in RTU framing.
    pub fn serial(path: &Path, devices: Vec<RawDevice>) -> RawBus {
        let shared = RawBus::shared(Framing::Rtu, devices);
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
        RawBus {
            shared,
            stop,
            port: None,
        }
    }

    /// The TCP port of a [`RawBus::tcp`] bus.
    pub fn port(&self) -> u16 {
        self.port.expect("a TCP raw bus")
    }

    /// Requests received so far, all units.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for RawBus {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// CRC-16/MODBUS, bit by bit (preset 0xFFFF, reflected polynomial 0xA001).
pub fn crc(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFF_u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `body` followed by its CRC, low byte first.
pub fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&crc(body).to_le_bytes());
    out
}

/// One read request as received.
#[derive(Debug, Clone, Copy)]
struct Request {
    /// MBAP transaction id (0 on RTU).
    tid: u16,
    unit: u8,
    function: u8,
    start: u16,
    count: u16,
}

/// Takes the first whole request off `buf`; RTU bytes that start no request
/// with a fitting CRC are dropped one at a time.
fn take_request(buf: &mut Vec<u8>, framing: Framing) -> Option<Request> {
    match framing {
        Framing::Rtu => loop {
            if buf.len() < 8 {
                return None;
            }
            if (1..=4).contains(&buf[1]) && crc(&buf[..6]).to_le_bytes() == [buf[6], buf[7]] {
                let r = Request {
                    tid: 0,
                    unit: buf[0],
                    function: buf[1],
                    start: u16::from_be_bytes([buf[2], buf[3]]),
                    count: u16::from_be_bytes([buf[4], buf[5]]),
                };
                buf.drain(..8);
                return Some(r);
            }
            buf.remove(0);
        },
        Framing::Mbap => {
            if buf.len() < 7 {
                return None;
            }
            let total = 6 + usize::from(u16::from_be_bytes([buf[4], buf[5]]));
            if buf.len() < total {
                return None;
            }
            let frame: Vec<u8> = buf.drain(..total).collect();
            (frame.len() >= 12).then(|| Request {
                tid: u16::from_be_bytes([frame[0], frame[1]]),
                unit: frame[6],
                function: frame[7],
                start: u16::from_be_bytes([frame[8], frame[9]]),
                count: u16::from_be_bytes([frame[10], frame[11]]),
            })
        }
    }
}

impl Shared {
    /// The unit's device and what to do with this request.
    fn act(&self, r: Request) -> Option<(&RawDevice, Act)> {
        let device = self.devices.iter().find(|d| d.device.unit == r.unit)?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = state.per_unit.entry(r.unit).or_insert(0);
        let scripted = device.script[*n % device.script.len()];
        *n += 1;
        let act = device
            .at
            .iter()
            .find_map(|(start, act)| (*start == r.start).then_some(*act))
            .unwrap_or(scripted);
        Some((device, act))
    }

    /// The registers `start..start + count` of a function 3 or 4 read (0
    /// where the device has none).
    fn words(device: &RawDevice, function: u8, start: u16, count: usize) -> Vec<u16> {
        let blocks = if function == 3 {
            &device.device.holding
        } else {
            &device.device.input
        };
        (0..count)
            .map(|i| {
                let address = usize::from(start) + i;
                blocks
                    .iter()
                    .find_map(|(first, words)| {
                        let first = usize::from(*first);
                        (address >= first && address < first + words.len())
                            .then(|| words[address - first])
                    })
                    .unwrap_or(0)
            })
            .collect()
    }

    /// A frame: `unit` and `pdu` in this bus's framing under `tid`.
    fn frame(&self, tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(pdu.len() + 9);
        match self.framing {
            Framing::Mbap => {
                body.extend_from_slice(&tid.to_be_bytes());
                body.extend_from_slice(&[0, 0]);
                let len = u16::try_from(pdu.len() + 1).expect("MBAP length");
                body.extend_from_slice(&len.to_be_bytes());
                body.push(unit);
                body.extend_from_slice(pdu);
                body
            }
            Framing::Rtu => {
                body.push(unit);
                body.extend_from_slice(pdu);
                with_crc(&body)
            }
        }
    }

    /// The answer `act` asks for (for the acts that send one frame).
    fn answer(&self, r: Request, device: &RawDevice, act: Act) -> Vec<u8> {
        if !matches!(r.function, 3 | 4) {
            // Illegal function: only register reads are scripted.
            return self.frame(r.tid, r.unit, &[r.function | 0x80, 1]);
        }
        let delta = match act {
            Act::WrongCount(d) => d,
            _ => 0,
        };
        let regs = usize::try_from(i32::from(r.count) + i32::from(delta)).unwrap_or(0);
        let words = Shared::words(device, r.function, r.start, regs);
        let bytes = u8::try_from(regs * 2).expect("a byte count");
        let mut pdu = vec![r.function, bytes];
        for w in &words {
            pdu.extend_from_slice(&w.to_be_bytes());
        }
        match act {
            Act::WrongTransaction => self.frame(r.tid.wrapping_add(1), r.unit, &pdu),
            Act::WrongUnit => self.frame(r.tid, r.unit.wrapping_add(1), &pdu),
            Act::BadLength => {
                pdu[1] = bytes.wrapping_add(2);
                self.frame(r.tid, r.unit, &pdu)
            }
            Act::BadCrc if self.framing == Framing::Rtu => {
                let mut f = self.frame(r.tid, r.unit, &pdu);
                let n = f.len();
                f[n - 2] ^= 0xFF;
                f[n - 1] ^= 0xFF;
                f
            }
            _ => self.frame(r.tid, r.unit, &pdu),
        }
    }
}

/// Bytes that can start no frame in either framing: never 0 (so no MBAP
/// protocol id 0) and never a read function code or its exception.
struct Garbage(u32);

impl Garbage {
    fn burst(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GARBAGE_BURST);
        while out.len() < GARBAGE_BURST {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let b = (self.0 >> 16) as u8;
            if !matches!(b, 0..=4 | 0x81..=0x84) {
                out.push(b);
            }
        }
        out
    }
}

/// Serves one link until it closes, the script closes it, or the bus stops.
async fn serve<L>(mut link: L, shared: &Shared, stop: &CancellationToken) -> io::Result<()>
where
    L: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    let mut held_here: Option<Vec<u8>> = None;
    let mut garbage: Option<Garbage> = None;
    let mut tick = tokio::time::interval(GARBAGE_EVERY);
    loop {
        while let Some(r) = take_request(&mut buf, shared.framing) {
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let late = match shared.framing {
                Framing::Mbap => held_here.take(),
                Framing::Rtu => shared
                    .state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .held
                    .take(),
            };
            if let Some(late) = late {
                link.write_all(&late).await?;
            }
            let Some((device, act)) = shared.act(r) else {
                // No such unit on this bus: silence, as on a real line.
                continue;
            };
            match act {
                Act::Silence => {}
                Act::Garbage => {
                    garbage.get_or_insert(Garbage(u32::from(r.start) + 7));
                }
                Act::Late => {
                    let answer = shared.answer(r, device, Act::Right);
                    match shared.framing {
                        Framing::Mbap => held_here = Some(answer),
                        Framing::Rtu => {
                            shared
                                .state
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .held = Some(answer);
                        }
                    }
                }
                Act::Split => {
                    for b in shared.answer(r, device, Act::Right) {
                        link.write_all(&[b]).await?;
                        link.flush().await?;
                        tokio::time::sleep(SPLIT_PAUSE).await;
                    }
                }
                Act::CloseMidFrame => {
                    let answer = shared.answer(r, device, Act::Right);
                    link.write_all(&answer[..answer.len() / 2]).await?;
                    link.flush().await?;
                    let _ = link.shutdown().await;
                    return Ok(());
                }
                _ => {
                    link.write_all(&shared.answer(r, device, act)).await?;
                }
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
            _ = tick.tick(), if garbage.is_some() => {
                if let Some(g) = garbage.as_mut() {
                    link.write_all(&g.burst()).await?;
                }
            }
        }
    }
}

/// One end of a pty as a byte stream: tokio's pipe ends accept a
/// character device when unchecked, and are read and written through the
/// reactor (no thread blocks on a pty that a stopped test left behind).
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

    /// The published read `01 03 00 00 00 02 C4 0B` (Modbus over Serial
    /// Line, and countless manuals): this CRC agrees.
    #[test]
    fn crc_matches_a_published_frame() {
        assert_eq!(
            with_crc(&[1, 3, 0, 0, 0, 2]),
            [1, 3, 0, 0, 0, 2, 0xC4, 0x0B]
        );
    }
}
