//! The field-bus layer: byte links to meters, whatever protocol they speak.
//!
//! A [`Link`] is one wire: a TCP connection (Modbus TCP, or a serial server
//! carrying RTU frames), a local serial port ([`serial`]), or a connection a
//! DTU dialled in on ([`dtu`]). It owns the bytes, not their meaning: it
//! drains stale bytes before a request, keeps the inter-frame silence and
//! the turnaround delay before each send, strips the packets a DTU sends
//! besides answers (heartbeat, per-packet registration), and reads with a
//! deadline. Protocols (`super::modbus::client`, later DL/T 645) frame and
//! check the bytes on top of it, so one bus can carry several protocols,
//! still one request at a time.

pub mod dtu;
pub mod serial;

use std::io;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::SerialLine;
use crate::model::{Detail, Quality};

/// Anything a link can carry bytes over.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// Most bytes discarded by one drain: a peer that never stops sending
/// cannot keep a request from going out.
const MAX_DRAIN: usize = 64 * 1024;

/// Received bytes kept while searching for an answer; beyond this the
/// oldest are dropped (they are garbage: no frame is this long).
const MAX_BUFFERED: usize = 4096;

/// What a read with a deadline brought.
#[derive(Debug)]
pub enum Fill {
    /// More bytes are in [`Link::buf`].
    Data,
    /// The far end closed the link.
    Closed,
    /// The deadline passed first.
    Deadline,
    /// The link failed.
    Failed(io::Error),
}

/// One wire and the bytes received on it that no one has used yet.
pub struct Link {
    stream: Box<dyn ByteStream>,
    /// Received and not yet consumed.
    buf: Vec<u8>,
    /// Packets the far end sends besides answers, stripped where a frame
    /// would start (a DTU's heartbeat and per-packet registration).
    strip: Vec<Vec<u8>>,
    /// Inter-frame silence (zero on Modbus TCP).
    silence: Duration,
    /// Extra pause after an answer before the next request.
    turnaround: Duration,
    /// Wire time per byte, to know when a sent request has left the wire.
    per_byte: Duration,
    /// When the wire was last busy: last byte received, or the end of the
    /// last request on the wire.
    last_busy: Instant,
    /// Bytes dropped since the last [`Link::take_dropped`] (stale or garbage).
    dropped: u64,
    /// Packets stripped since the last [`Link::take_stripped`].
    stripped: u64,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("buffered", &self.buf.len())
            .field("silence", &self.silence)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link over `stream`. `received` holds bytes already read from it
    /// (after a DTU's registration); `line` sets the timing of a
    /// serial-framed wire (`None`: Modbus TCP, no silence).
    #[must_use]
    pub fn new(
        stream: Box<dyn ByteStream>,
        received: Vec<u8>,
        strip: Vec<Vec<u8>>,
        line: Option<&SerialLine>,
    ) -> Link {
        let (silence, turnaround, per_byte) = match line {
            Some(l) => (l.silence(), l.turnaround, l.wire_time(1)),
            None => (Duration::ZERO, Duration::ZERO, Duration::ZERO),
        };
        Link {
            stream,
            buf: received,
            strip,
            silence,
            turnaround,
            per_byte,
            last_busy: Instant::now(),
            dropped: 0,
            stripped: 0,
        }
    }

    /// Bytes received and not consumed.
    #[must_use]
    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// The inter-frame silence of this wire.
    #[must_use]
    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// Consumes the first `n` received bytes (a frame that was used).
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Discards what was received before a request: what is buffered and
    /// what the stream holds now, without waiting (bounded by `MAX_DRAIN`).
    /// A late answer to an earlier request dies here.
    ///
    /// # Errors
    /// The link closed or failed.
    pub fn drain(&mut self) -> io::Result<()> {
        self.strip_front();
        self.dropped += self.buf.len() as u64;
        self.buf.clear();
        let mut scratch = [0u8; 512];
        let mut total = 0;
        while total < MAX_DRAIN {
            // Polled once: reads what is there and never waits (a zero
            // `timeout` would wait for the timer's next 1 ms tick when
            // nothing is buffered, measured at ~1 ms per request).
            // Unconstrained: a spent cooperative budget must not pass for
            // "nothing there" and let stale bytes through.
            match tokio::task::unconstrained(self.stream.read(&mut scratch)).now_or_never() {
                None => break,
                Some(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the link closed",
                    ));
                }
                Some(Ok(n)) => {
                    self.buf.extend_from_slice(&scratch[..n]);
                    self.strip_front();
                    total += n;
                    self.dropped += self.buf.len() as u64;
                    self.buf.clear();
                    self.last_busy = Instant::now();
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends `frame` once the wire has been silent for the inter-frame
    /// silence plus the turnaround delay.
    ///
    /// # Errors
    /// The write failed.
    pub async fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let ready_at = self.last_busy + self.silence + self.turnaround;
        if ready_at > Instant::now() {
            tokio::time::sleep_until(ready_at).await;
        }
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        self.last_busy = Instant::now() + self.per_byte * frame.len() as u32;
        Ok(())
    }

    /// Reads more bytes into [`Link::buf`], waiting until `deadline` at most.
    pub async fn fill(&mut self, deadline: Instant) -> Fill {
        let mut scratch = [0u8; 512];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
            Err(_) => Fill::Deadline,
            Ok(Ok(0)) => Fill::Closed,
            Ok(Ok(n)) => {
                self.last_busy = Instant::now();
                if self.buf.len() + n > MAX_BUFFERED {
                    // Keep the newest bytes: an answer, if any, is at the end.
                    let cut = (self.buf.len() + n - MAX_BUFFERED / 2).min(self.buf.len());
                    self.dropped += cut as u64;
                    self.buf.drain(..cut);
                }
                self.buf.extend_from_slice(&scratch[..n]);
                self.strip_front();
                Fill::Data
            }
            Ok(Err(e)) => Fill::Failed(e),
        }
    }

    /// Removes every known packet (heartbeat, registration) at the front of
    /// the received bytes, where a frame would start.
    fn strip_front(&mut self) {
        if self.strip.is_empty() {
            return;
        }
        loop {
            let Some(len) = self
                .strip
                .iter()
                .find(|p| self.buf.starts_with(p))
                .map(Vec::len)
            else {
                return;
            };
            self.buf.drain(..len);
            self.stripped += 1;
        }
    }

    /// What a read that ended without a fitting answer comes to, on any
    /// protocol: the most telling rejected frame (`rejected`), else bytes
    /// cut by a close (`truncated`), else bytes that never became a frame
    /// (`garbage`), else nothing at all (`timeout`). Returns the quality
    /// bit, the detail, and the bytes dropped meanwhile (for the counters).
    pub fn verdict(&mut self, rejected: Detail, closed: bool) -> (Quality, Detail, u64) {
        let garbage = self.take_dropped();
        let got_bytes = !self.buf.is_empty() || garbage > 0;
        let (quality, detail) = if rejected != Detail::NONE {
            (Quality::EXCEPTION, rejected)
        } else if closed && got_bytes {
            (Quality::EXCEPTION, Detail::TRUNCATED)
        } else if got_bytes {
            (Quality::EXCEPTION, Detail::GARBAGE)
        } else {
            (Quality::TIMEOUT, Detail::NONE)
        };
        (quality, detail, garbage)
    }

    /// Bytes dropped (stale, garbage) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Known packets stripped since the last call.
    pub fn take_stripped(&mut self) -> u64 {
        std::mem::take(&mut self.stripped)
    }
}
