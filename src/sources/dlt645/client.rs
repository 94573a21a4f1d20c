//! One DL/T 645 read on a field-bus link: one data identifier of one meter,
//! its answer found by content and checked against the question.
//!
//! The conversation is the Modbus one's ([`crate::sources::modbus::client`])
//! on the same [`Link`], so DL/T 645 and Modbus RTU meters share a bus one
//! request at a time: stale bytes drained, the wake-up preamble and the
//! frame sent after the inter-frame silence, the received bytes searched
//! (leading `FE` and garbage skipped) for a frame whose address, control
//! code, DI, length and checksum fit; its BCD digits checked; at the
//! deadline the most telling rejected frame, `garbage`, or `timeout`.
//! A late answer cannot pass for another read's: the answer echoes both the
//! meter's address and the DI.

use std::time::Duration;

use tokio::time::Instant;

use super::frame::{self, Answer, Format, Question, Scan};
use crate::model::{Detail, Quality};
use crate::sources::bus::{Fill, Link};

/// What one DL/T 645 read came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// The value, decoded from its BCD format (before scale and ratios).
    Value(f64),
    /// The meter answered with an error byte.
    Error(u8),
    /// No fitting answer.
    Failed {
        /// [`Quality::TIMEOUT`] (nothing came) or [`Quality::EXCEPTION`].
        quality: Quality,
        /// Which check failed, when one did.
        detail: Detail,
        /// The link closed or failed and must be rebuilt.
        link_lost: bool,
    },
}

/// A DL/T 645 master's scratch buffers, reused across reads.
#[derive(Debug, Default)]
pub struct Dlt645Reader {
    out: Vec<u8>,
    value: Vec<u8>,
    /// Bytes dropped (stale or garbage) since [`Dlt645Reader::take_dropped`].
    dropped: u64,
}

impl Dlt645Reader {
    /// Bytes dropped on the link during this reader's reads, since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Asks `q` on `link` and waits up to `timeout` for its answer.
    pub async fn read(
        &mut self,
        link: &mut Link,
        q: &Question,
        format: Format,
        preamble: usize,
        timeout: Duration,
    ) -> Reading {
        let lost = Reading::Failed {
            quality: Quality::TIMEOUT,
            detail: Detail::NONE,
            link_lost: true,
        };
        if link.drain().is_err() {
            return lost;
        }
        self.dropped += link.take_dropped();
        self.out.clear();
        frame::encode_read(&mut self.out, preamble, q.address, q.di);
        if link.send(&self.out).await.is_err() {
            return lost;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match frame::scan_read(link.buf(), q) {
                Scan::Found { answer, frame } => {
                    let result = match answer {
                        Answer::Value(range) => {
                            frame::value_bytes(link.buf(), range, &mut self.value);
                            match format.decode(&self.value) {
                                Some(v) => Reading::Value(v),
                                None => Reading::Failed {
                                    quality: Quality::EXCEPTION,
                                    detail: Detail::BAD_BCD,
                                    link_lost: false,
                                },
                            }
                        }
                        Answer::Error(code) => Reading::Error(code),
                    };
                    link.consume(frame.end);
                    return result;
                }
                Scan::Pending { rejected } => match link.fill(deadline).await {
                    Fill::Data => {}
                    Fill::Deadline => return self.give_up(link, rejected, false),
                    Fill::Closed => return self.give_up(link, rejected, true),
                    Fill::Failed(_) => return lost,
                },
            }
        }
    }

    fn give_up(&mut self, link: &mut Link, rejected: Detail, closed: bool) -> Reading {
        // Bytes that never became a frame (wake-up bytes alone included)
        // are an answer that cannot be used, not silence.
        let (quality, detail, garbage) = link.verdict(rejected, closed);
        self.dropped += garbage;
        Reading::Failed {
            quality,
            detail,
            link_lost: closed,
        }
    }
}

/// Why the address of the meter on a link could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The endpoint is a dial-in DTU or Modbus TCP: no point-to-point link to open.
    #[error(
        "endpoint \"{0}\" is not a serial port or a serial server; the address is read on a point-to-point link (transport = \"serial\" or \"rtu_over_tcp\")"
    )]
    Transport(String),
    /// The link could not be opened.
    #[error("cannot open endpoint \"{endpoint}\": {source}")]
    Open {
        /// The endpoint id.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The link failed.
    #[error("the link failed: {0}")]
    Link(std::io::Error),
    /// Nothing fitting came back in time.
    #[error(
        "no read-address answer within {0:?}: is exactly one DL/T 645 meter on the link, at the endpoint's baud rate and parity?"
    )]
    NoAnswer(Duration),
}

/// Sends the read-address command (0x13 to `AAAAAAAAAAAA`, after
/// `preamble` wake-up bytes) on `link` and waits up to `timeout` for the
/// one meter's answer (0x93).
///
/// # Errors
/// The link failed, or no fitting answer came in time.
pub async fn read_address(
    link: &mut Link,
    preamble: usize,
    timeout: Duration,
) -> Result<frame::Address, AddressError> {
    link.drain().map_err(AddressError::Link)?;
    let mut out = Vec::new();
    frame::encode_read_address(&mut out, preamble);
    link.send(&out).await.map_err(AddressError::Link)?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((address, end)) = frame::scan_address(link.buf()) {
            link.consume(end);
            return Ok(address);
        }
        match link.fill(deadline).await {
            Fill::Data => {}
            Fill::Failed(e) => return Err(AddressError::Link(e)),
            Fill::Deadline | Fill::Closed => return Err(AddressError::NoAnswer(timeout)),
        }
    }
}
