//! One Modbus read on a link: send the question, find the frame that
//! answers it, or say precisely why none did.
//!
//! The conversation is the same on every transport; only the framing
//! differs ([`Framing::Mbap`] on Modbus TCP, [`Framing::Rtu`] on serial
//! lines, serial servers and DTUs). Per read:
//! 1. bytes received since the last answer are stale: drained (a late
//!    answer to an earlier request dies here);
//! 2. the request goes out after the inter-frame silence and turnaround
//!    ([`Link::send`]);
//! 3. received bytes are searched for a fitting frame ([`frame`]); frames
//!    that answer another question are skipped and remembered;
//! 4. on RTU, a found answer is held for one more inter-frame silence: if
//!    another fitting frame follows, the first was a late answer to an
//!    earlier request (RTU has no transaction id) and the later one is used;
//! 5. at the deadline: the most telling rejected frame (`exception` with its
//!    detail), else `exception:garbage` when bytes came, else `timeout`.

use std::time::Duration;

use tokio::time::Instant;

use super::frame::{self, Answer, Question, Scan};
use crate::model::{Detail, Quality};
use crate::sources::bus::{Fill, Link};

/// How frames are delimited and told apart on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Modbus TCP: MBAP header with transaction ids.
    Mbap,
    /// Modbus RTU: unit, PDU, CRC-16.
    Rtu,
}

/// What one read came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A fitting answer; its words are in [`ModbusLink::words`].
    Data,
    /// The device answered with a Modbus exception code.
    Exception(u8),
    /// No fitting answer.
    Failed {
        /// [`Quality::TIMEOUT`] (nothing came) or [`Quality::EXCEPTION`]
        /// (something came that does not answer the question).
        quality: Quality,
        /// Which check failed, when one did.
        detail: Detail,
        /// The link is unusable (closed, failed, or out of step) and must
        /// be rebuilt.
        link_lost: bool,
    },
}

/// A Modbus master's end of one link.
#[derive(Debug)]
pub struct ModbusLink {
    link: Link,
    framing: Framing,
    tid: u16,
    out: Vec<u8>,
    words: Vec<u16>,
    /// Bytes dropped (stale or garbage) since [`ModbusLink::take_dropped`].
    dropped: u64,
    /// RTU: the last question that got no fitting answer, until when its
    /// late answer is still to be feared. A frame that would answer it as
    /// well as the current question is held until the current deadline.
    suspect: Option<(Question, Instant)>,
}

impl ModbusLink {
    /// Speaks `framing` over `link`.
    #[must_use]
    pub fn new(link: Link, framing: Framing) -> ModbusLink {
        ModbusLink {
            link,
            framing,
            tid: 0,
            out: Vec::with_capacity(frame::RTU_REQUEST_LEN + 4),
            words: Vec::with_capacity(125),
            dropped: 0,
            suspect: None,
        }
    }

    /// The words (registers, or bits one per word) of the last [`Exchange::Data`].
    #[must_use]
    pub fn words(&self) -> &[u16] {
        &self.words
    }

    /// Bytes dropped (stale before a request, garbage around frames) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped) + self.link.take_dropped()
    }

    /// The link, for another protocol's reads on the same bus (DL/T 645).
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Known packets (DTU heartbeats, registrations) stripped since the last call.
    pub fn take_stripped(&mut self) -> u64 {
        self.link.take_stripped()
    }

    /// Asks `q` and waits up to `timeout` for its answer.
    pub async fn read(&mut self, q: &Question, timeout: Duration) -> Exchange {
        let lost = Exchange::Failed {
            quality: Quality::TIMEOUT,
            detail: Detail::NONE,
            link_lost: true,
        };
        if self.link.drain().is_err() {
            return lost;
        }
        // From here on, a dropped byte is garbage received for this read.
        let stale = self.link.take_dropped();
        self.dropped += stale;
        if let Some((late, until)) = self.suspect
            && (Instant::now() > until || stale >= late.rtu_answer_len() as u64)
        {
            // Expired, or (most likely) its late answer was just drained.
            self.suspect = None;
        }
        self.out.clear();
        self.tid = self.tid.wrapping_add(1);
        match self.framing {
            Framing::Mbap => frame::encode_mbap(q, self.tid, &mut self.out),
            Framing::Rtu => frame::encode_rtu(q, &mut self.out),
        }
        if self.link.send(&self.out).await.is_err() {
            return lost;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let scan = self.scan(*q);
            match scan {
                Scan::Found { answer, frame } => {
                    let (answer, end) = self.linger(q, answer, frame.end, deadline).await;
                    let result = match answer {
                        Answer::Data(range) => {
                            frame::words_into(&self.link.buf()[range], q, &mut self.words);
                            Exchange::Data
                        }
                        Answer::Exception(code) => Exchange::Exception(code),
                    };
                    self.link.consume(end);
                    return result;
                }
                Scan::Pending { rejected } => {
                    // On Modbus TCP a frame under our transaction id that
                    // fails a check is the answer, a wrong one: no other
                    // will come.
                    if self.framing == Framing::Mbap && self.own_wrong_answer() {
                        let detail = rejected;
                        self.link.consume(self.link.buf().len());
                        return Exchange::Failed {
                            quality: Quality::EXCEPTION,
                            detail,
                            link_lost: false,
                        };
                    }
                    match self.link.fill(deadline).await {
                        Fill::Data => {}
                        Fill::Deadline => return self.give_up(*q, timeout, rejected, false),
                        Fill::Closed => return self.give_up(*q, timeout, rejected, true),
                        Fill::Failed(_) => return lost,
                    }
                }
            }
        }
    }

    fn scan(&self, q: Question) -> Scan {
        match self.framing {
            Framing::Mbap => frame::scan_mbap(self.link.buf(), &q, self.tid),
            Framing::Rtu => frame::scan_rtu(self.link.buf(), &q),
        }
    }

    /// True when the buffer holds a complete MBAP frame under the current
    /// transaction id (which the scan did not accept).
    fn own_wrong_answer(&self) -> bool {
        let buf = self.link.buf();
        let mut i = 0;
        while i + 7 <= buf.len() {
            let id = u16::from_be_bytes([buf[i], buf[i + 1]]);
            let protocol = u16::from_be_bytes([buf[i + 2], buf[i + 3]]);
            let len = usize::from(u16::from_be_bytes([buf[i + 4], buf[i + 5]]));
            if protocol != 0 || !(3..=254).contains(&len) {
                i += 1;
                continue;
            }
            if i + 6 + len > buf.len() {
                return false;
            }
            if id == self.tid {
                return true;
            }
            i += 6 + len;
        }
        false
    }

    /// RTU only: holds a found answer for one inter-frame silence; a later
    /// fitting frame in that time replaces it (the first was late). When
    /// the found frame could also be the late answer to the last question
    /// that went unanswered (same unit, function and byte count), it is held
    /// until the deadline: a device that flushes a late answer when the next
    /// request arrives sends the right one after its own answer delay.
    async fn linger(
        &mut self,
        q: &Question,
        mut answer: Answer,
        mut end: usize,
        deadline: Instant,
    ) -> (Answer, usize) {
        if self.framing != Framing::Rtu {
            return (answer, end);
        }
        let ambiguous = self.suspect.take().is_some_and(|(late, _)| {
            late.unit == q.unit && late.function == q.function && late.data_len() == q.data_len()
        });
        let until = if ambiguous {
            deadline
        } else {
            (Instant::now() + self.link.silence().max(Duration::from_millis(1))).min(deadline)
        };
        loop {
            if let Scan::Found {
                answer: later,
                frame,
            } = frame::scan_rtu(&self.link.buf()[end..], q)
            {
                answer = match later {
                    Answer::Data(r) => Answer::Data(r.start + end..r.end + end),
                    e @ Answer::Exception(_) => e,
                };
                end += frame.end;
                continue;
            }
            if !matches!(self.link.fill(until).await, Fill::Data) {
                return (answer, end);
            }
        }
    }

    /// The outcome when the deadline passed (`closed`: the link closed)
    /// without a fitting answer to `q`.
    fn give_up(
        &mut self,
        q: Question,
        timeout: Duration,
        rejected: Detail,
        closed: bool,
    ) -> Exchange {
        if self.framing == Framing::Rtu {
            // Its answer may still come, during a later read.
            self.suspect = Some((q, Instant::now() + timeout * 3));
        }
        let (quality, detail, garbage) = self.link.verdict(rejected, closed);
        self.dropped += garbage;
        // Modbus TCP reconnects after a failed read (as before field
        // buses): a late answer then cannot reach the next request, and an
        // out-of-step stream starts afresh. RTU links stay up (one dead
        // meter must not cost the bus its connection) unless they closed.
        let link_lost = closed || (self.framing == Framing::Mbap && detail != Detail::WRONG_COUNT);
        Exchange::Failed {
            quality,
            detail,
            link_lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::config::{Parity, SerialLine};
    use crate::profiles::RegisterKind;
    use crate::sources::modbus::frame::push_with_crc;

    const LINE: SerialLine = SerialLine {
        baud: 115_200,
        parity: Parity::None,
        data_bits: 8,
        stop_bits: 1,
        turnaround: Duration::ZERO,
    };

    fn rtu(strip: Vec<Vec<u8>>) -> (ModbusLink, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(4096);
        let link = Link::new(Box::new(ours), Vec::new(), strip, Some(&LINE));
        (ModbusLink::new(link, Framing::Rtu), theirs)
    }

    fn answer(unit: u8, words: &[u16]) -> Vec<u8> {
        let mut body = vec![unit, 3, (words.len() * 2) as u8];
        for w in words {
            body.extend_from_slice(&w.to_be_bytes());
        }
        let mut out = Vec::new();
        push_with_crc(&mut out, &body);
        out
    }

    async fn request(peer: &mut DuplexStream) -> [u8; 8] {
        let mut req = [0u8; 8];
        peer.read_exact(&mut req).await.expect("request");
        req
    }

    const Q: Question = Question {
        unit: 1,
        function: 3,
        start: 0,
        count: 1,
    };

    #[tokio::test]
    async fn heartbeats_and_a_split_answer_still_give_the_value() {
        let (mut wire, mut peer) = rtu(vec![b"www.usr.cn".to_vec()]);
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            peer.write_all(b"www.usr.cn").await.expect("write");
            for b in answer(1, &[0x1234]) {
                peer.write_all(&[b]).await.expect("write");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peer
        });
        let got = wire.read(&Q, Duration::from_secs(2)).await;
        assert_eq!(got, Exchange::Data);
        assert_eq!(wire.words(), &[0x1234]);
        assert_eq!(wire.take_stripped(), 1);
        drop(server.await);
    }

    #[tokio::test]
    async fn a_late_answer_followed_by_the_right_one_is_not_taken() {
        let (mut wire, mut peer) = rtu(Vec::new());
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            // The previous request's answer, late, then this one's.
            let mut both = answer(1, &[0xAAAA]);
            both.extend(answer(1, &[0x0007]));
            peer.write_all(&both).await.expect("write");
            peer
        });
        assert_eq!(wire.read(&Q, Duration::from_secs(2)).await, Exchange::Data);
        assert_eq!(wire.words(), &[0x0007]);
        drop(server.await);
    }

    /// A device that flushes its late answer when the next request arrives
    /// and answers that request after its own delay: the late frame fits
    /// the new question too, and must not be taken for its answer.
    #[tokio::test]
    async fn a_late_answer_flushed_before_a_slow_right_one_is_not_taken() {
        let (mut wire, mut peer) = rtu(Vec::new());
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            // No answer in time; then, at the next request, the late one.
            request(&mut peer).await;
            peer.write_all(&answer(1, &[0xAAAA])).await.expect("write");
            tokio::time::sleep(Duration::from_millis(40)).await;
            peer.write_all(&answer(1, &[0x0007])).await.expect("write");
            peer
        });
        let first = wire.read(&Q, Duration::from_millis(100)).await;
        assert!(matches!(
            first,
            Exchange::Failed {
                quality: Quality::TIMEOUT,
                ..
            }
        ));
        assert_eq!(wire.read(&Q, Duration::from_secs(2)).await, Exchange::Data);
        assert_eq!(wire.words(), &[0x0007]);
        drop(server.await);
    }

    #[tokio::test]
    async fn another_units_answer_is_skipped_and_named_at_the_deadline() {
        let (mut wire, mut peer) = rtu(Vec::new());
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            peer.write_all(&answer(2, &[5])).await.expect("write");
            peer
        });
        let got = wire.read(&Q, Duration::from_millis(200)).await;
        assert_eq!(
            got,
            Exchange::Failed {
                quality: Quality::EXCEPTION,
                detail: Detail::WRONG_UNIT,
                link_lost: false
            }
        );
        drop(server.await);
    }

    #[tokio::test]
    async fn stale_bytes_are_drained_before_the_request() {
        let (mut wire, mut peer) = rtu(Vec::new());
        peer.write_all(&answer(1, &[0xDEAD])).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            peer.write_all(&answer(1, &[1])).await.expect("write");
            peer
        });
        assert_eq!(wire.read(&Q, Duration::from_secs(2)).await, Exchange::Data);
        assert_eq!(wire.words(), &[1]);
        drop(server.await);
    }

    #[tokio::test]
    async fn bad_crc_garbage_and_truncation_are_named() {
        let (mut wire, mut peer) = rtu(Vec::new());
        let server = tokio::spawn(async move {
            request(&mut peer).await;
            let mut bad = answer(1, &[9]);
            bad[4] ^= 0xFF;
            peer.write_all(&bad).await.expect("write");
            request(&mut peer).await;
            peer.write_all(&[0x55; 40]).await.expect("write");
            request(&mut peer).await;
            peer.write_all(&answer(1, &[9])[..4]).await.expect("write");
            drop(peer);
        });
        let timeout = Duration::from_millis(150);
        let failed = |detail, link_lost| Exchange::Failed {
            quality: Quality::EXCEPTION,
            detail,
            link_lost,
        };
        assert_eq!(wire.read(&Q, timeout).await, failed(Detail::BAD_CRC, false));
        assert_eq!(wire.read(&Q, timeout).await, failed(Detail::GARBAGE, false));
        assert_eq!(
            wire.read(&Q, timeout).await,
            failed(Detail::TRUNCATED, true)
        );
        server.await.expect("server");
    }

    #[tokio::test]
    async fn mbap_wrong_count_under_our_transaction_is_final_at_once() {
        let (ours, mut peer) = tokio::io::duplex(4096);
        let mut wire = ModbusLink::new(
            Link::new(Box::new(ours), Vec::new(), Vec::new(), None),
            Framing::Mbap,
        );
        let server = tokio::spawn(async move {
            let mut req = [0u8; 12];
            peer.read_exact(&mut req).await.expect("request");
            let answer = [req[0], req[1], 0, 0, 0, 7, 1, 3, 4, 0, 1, 0, 2];
            peer.write_all(&answer).await.expect("write");
            peer
        });
        let q = Question::read(RegisterKind::Holding, 1, 0, 1);
        // A read waiting for its deadline (an hour) would never end here.
        let got = tokio::time::timeout(
            Duration::from_mins(1),
            wire.read(&q, Duration::from_hours(1)),
        )
        .await
        .expect("the wrong answer ends the read");
        assert_eq!(
            got,
            Exchange::Failed {
                quality: Quality::EXCEPTION,
                detail: Detail::WRONG_COUNT,
                link_lost: false
            }
        );
        drop(server.await);
    }
}
