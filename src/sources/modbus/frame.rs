//! Modbus frames as bytes: read requests out, answers checked against the
//! question that was asked. Pure functions, no I/O.
//!
//! Why our own frames rather than tokio-modbus's client: tokio-modbus 0.17
//! checks an answer's register count only with a `debug_assert` (release
//! builds accept more or fewer registers than asked), takes a late RTU
//! answer for the next request's, has no timeout, and reports every failed
//! check as one opaque error. A gateway that must prove every value answers
//! its question needs each check, and its name ([`Detail`]), in one place.
//!
//! Two framings share one question:
//! * **MBAP** (Modbus TCP): `tid(2) 0(2) len(2) unit(1) pdu`; the
//!   transaction id tells a late answer from the awaited one;
//! * **RTU** (serial lines, serial servers, DTUs): `unit(1) pdu crc(2)`,
//!   CRC-16/MODBUS low byte first; there is no transaction id, so frames are
//!   found by searching the bytes for one whose address, function, byte
//!   count and CRC all fit (resynchronisation after garbage).
//!
//! A scan never panics and never yields a value from a frame that failed a
//! check (property-tested in `tests/integration/fieldbus_frames.rs`).

use std::ops::Range;

use crate::model::Detail;
use crate::profiles::RegisterKind;

/// Longest RTU frame (Modbus over Serial Line V1.02, 2.5.1).
pub const MAX_RTU_FRAME: usize = 256;

/// Bytes of a read request in RTU framing (unit, function, start, count, CRC).
pub const RTU_REQUEST_LEN: usize = 8;

/// One read request: what every answer is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// Unit id (slave address).
    pub unit: u8,
    /// Function code: 1 coils, 2 discrete inputs, 3 holding, 4 input registers.
    pub function: u8,
    /// First address.
    pub start: u16,
    /// Registers or bits asked for.
    pub count: u16,
}

impl Question {
    /// The read of `count` items of `kind` from `start` on `unit`.
    #[must_use]
    pub fn read(kind: RegisterKind, unit: u8, start: u16, count: u16) -> Question {
        let function = match kind {
            RegisterKind::Coil => 1,
            RegisterKind::Discrete => 2,
            RegisterKind::Holding => 3,
            RegisterKind::Input => 4,
        };
        Question {
            unit,
            function,
            start,
            count,
        }
    }

    /// True for bit reads (coils, discrete inputs).
    #[must_use]
    pub fn reads_bits(&self) -> bool {
        self.function <= 2
    }

    /// The byte count a fitting answer carries.
    #[must_use]
    pub fn data_len(&self) -> usize {
        if self.reads_bits() {
            usize::from(self.count).div_ceil(8)
        } else {
            usize::from(self.count) * 2
        }
    }

    /// Length of the fitting RTU answer, CRC included.
    #[must_use]
    pub fn rtu_answer_len(&self) -> usize {
        5 + self.data_len()
    }

    fn pdu(self) -> [u8; 5] {
        let [sh, sl] = self.start.to_be_bytes();
        let [ch, cl] = self.count.to_be_bytes();
        [self.function, sh, sl, ch, cl]
    }
}

/// CRC-16/MODBUS (preset 0xFFFF, reflected polynomial 0xA001), table-driven.
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc = (crc >> 8) ^ CRC_TABLE[usize::from((crc as u8) ^ b)];
    }
    crc
}

const CRC_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// True when the last two bytes of `frame` are the CRC of the rest.
#[must_use]
pub fn crc_fits(frame: &[u8]) -> bool {
    let Some(split) = frame.len().checked_sub(2) else {
        return false;
    };
    let (body, crc) = frame.split_at(split);
    crc16(body).to_le_bytes() == [crc[0], crc[1]]
}

/// Appends `body` and its CRC (low byte first) to `out`.
pub fn push_with_crc(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(body);
    out.extend_from_slice(&crc16(body).to_le_bytes());
}

/// Appends the RTU request for `q` to `out`.
pub fn encode_rtu(q: &Question, out: &mut Vec<u8>) {
    let pdu = q.pdu();
    let body = [q.unit, pdu[0], pdu[1], pdu[2], pdu[3], pdu[4]];
    push_with_crc(out, &body);
}

/// Appends the MBAP request for `q` under transaction id `tid` to `out`.
pub fn encode_mbap(q: &Question, tid: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 6, q.unit]);
    out.extend_from_slice(&q.pdu());
}

/// What a fitting frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Data: the byte range of the registers (big-endian pairs) or bits
    /// (least significant first) in the scanned buffer.
    Data(Range<usize>),
    /// A Modbus exception answer with its code.
    Exception(u8),
}

/// The result of searching received bytes for the answer to a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A frame that answers the question, at `frame` in the buffer.
    Found {
        /// What it says.
        answer: Answer,
        /// Where the whole frame is.
        frame: Range<usize>,
    },
    /// No answer yet. `rejected` names the most telling failed check among
    /// the complete frames seen ([`Detail::NONE`] when none failed one).
    Pending {
        /// Why the frames seen so far were not the answer.
        rejected: Detail,
    },
}

/// How telling a rejection is: a well-formed frame that answers another
/// question says more than bytes that merely fail a CRC.
fn rank(d: Detail) -> u8 {
    match d {
        Detail::WRONG_COUNT => 7,
        Detail::BAD_LENGTH => 6,
        Detail::WRONG_FUNCTION => 5,
        Detail::WRONG_UNIT => 4,
        Detail::WRONG_TRANSACTION => 3,
        Detail::BAD_CRC => 2,
        Detail::NONE => 0,
        _ => 1,
    }
}

fn keep(current: &mut Detail, new: Detail) {
    if rank(new) > rank(*current) {
        *current = new;
    }
}

/// Searches `buf` for the RTU answer to `q`, from its first byte on.
///
/// At each offset a frame is tried: an exception (`unit 0x80|fc code crc`)
/// or a read answer (`unit fc n data[n] crc`). A frame with a fitting CRC
/// that answers another question is skipped whole (its payload is not
/// searched) and its failed check recorded; an awaited frame that is not
/// complete yet stops the search (more bytes will come).
#[must_use]
pub fn scan_rtu(buf: &[u8], q: &Question) -> Scan {
    let mut rejected = Detail::NONE;
    let mut i = 0;
    while i + 5 <= buf.len() {
        let rest = &buf[i..];
        let (unit, fc) = (rest[0], rest[1]);
        if fc & 0x80 != 0 && (1..=4).contains(&(fc & 0x7F)) {
            if crc_fits(&rest[..5]) {
                if unit == q.unit && fc == q.function | 0x80 {
                    return Scan::Found {
                        answer: Answer::Exception(rest[2]),
                        frame: i..i + 5,
                    };
                }
                keep(
                    &mut rejected,
                    if unit == q.unit {
                        Detail::WRONG_FUNCTION
                    } else {
                        Detail::WRONG_UNIT
                    },
                );
                i += 5;
                continue;
            }
        } else if (1..=4).contains(&fc) {
            let n = usize::from(rest[2]);
            let len = 5 + n;
            let awaited = unit == q.unit && fc == q.function && n == q.data_len();
            if rest.len() < len {
                if awaited {
                    // The answer is arriving.
                    return Scan::Pending { rejected };
                }
            } else if crc_fits(&rest[..len]) {
                if awaited {
                    return Scan::Found {
                        answer: Answer::Data(i + 3..i + 3 + n),
                        frame: i..i + len,
                    };
                }
                keep(
                    &mut rejected,
                    if unit != q.unit {
                        Detail::WRONG_UNIT
                    } else if fc != q.function {
                        Detail::WRONG_FUNCTION
                    } else {
                        Detail::WRONG_COUNT
                    },
                );
                i += len;
                continue;
            } else if awaited {
                keep(&mut rejected, Detail::BAD_CRC);
            }
        }
        i += 1;
    }
    Scan::Pending { rejected }
}

/// Searches `buf` for the MBAP answer to `q` under transaction id `tid`.
///
/// Whole frames under another transaction id (late answers) are skipped;
/// bytes that do not start a plausible MBAP header (protocol id 0, length
/// 3..=254) are skipped one at a time.
#[must_use]
pub fn scan_mbap(buf: &[u8], q: &Question, tid: u16) -> Scan {
    let mut rejected = Detail::NONE;
    let mut i = 0;
    while i + 7 <= buf.len() {
        let rest = &buf[i..];
        let id = u16::from_be_bytes([rest[0], rest[1]]);
        let protocol = u16::from_be_bytes([rest[2], rest[3]]);
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        if protocol != 0 || !(3..=254).contains(&len) {
            i += 1;
            continue;
        }
        let total = 6 + len;
        if rest.len() < total {
            if id == tid {
                return Scan::Pending { rejected };
            }
            i += 1;
            continue;
        }
        let (unit, pdu) = (rest[6], &rest[7..total]);
        let next = i + total;
        if id != tid {
            keep(&mut rejected, Detail::WRONG_TRANSACTION);
            i = next;
            continue;
        }
        let fc = pdu[0];
        if unit != q.unit {
            keep(&mut rejected, Detail::WRONG_UNIT);
        } else if fc == q.function | 0x80 {
            if pdu.len() == 2 {
                return Scan::Found {
                    answer: Answer::Exception(pdu[1]),
                    frame: i..next,
                };
            }
            keep(&mut rejected, Detail::BAD_LENGTH);
        } else if fc != q.function {
            keep(&mut rejected, Detail::WRONG_FUNCTION);
        } else if pdu.len() != 2 + usize::from(pdu[1]) {
            keep(&mut rejected, Detail::BAD_LENGTH);
        } else if usize::from(pdu[1]) != q.data_len() {
            keep(&mut rejected, Detail::WRONG_COUNT);
        } else {
            return Scan::Found {
                answer: Answer::Data(i + 9..next),
                frame: i..next,
            };
        }
        i = next;
    }
    Scan::Pending { rejected }
}

/// The answer's data as words: registers from big-endian pairs, bits one
/// per word (least significant bit of the first byte first), `count` of them.
pub fn words_into(data: &[u8], q: &Question, out: &mut Vec<u16>) {
    out.clear();
    if q.reads_bits() {
        out.extend((0..usize::from(q.count)).map(|i| u16::from(data[i / 8] >> (i % 8) & 1)));
    } else {
        out.extend(
            data.chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example: CRC 0x1241 sent as `41 12` (Appendix B);
    /// and a read of 2 holding registers at 0 from unit 1, a frame seen in
    /// countless manuals: `01 03 00 00 00 02 C4 0B`.
    #[test]
    fn crc_matches_published_frames() {
        let mut out = Vec::new();
        encode_rtu(&Question::read(RegisterKind::Holding, 1, 0, 2), &mut out);
        assert_eq!(out, [0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0xC4, 0x0B]);
        // Four-Faith FAQ: `01 04 00 00 00 01 31 CA`.
        out.clear();
        encode_rtu(&Question::read(RegisterKind::Input, 1, 0, 1), &mut out);
        assert_eq!(out, [0x01, 0x04, 0x00, 0x00, 0x00, 0x01, 0x31, 0xCA]);
    }

    #[test]
    fn finds_the_answer_after_garbage_and_skips_other_units() {
        let q = Question::read(RegisterKind::Holding, 1, 0, 1);
        let mut buf = vec![0x55, 0xAA, 0x01];
        push_with_crc(&mut buf, &[2, 3, 2, 0, 9]);
        let at = buf.len();
        push_with_crc(&mut buf, &[1, 3, 2, 0x12, 0x34]);
        match scan_rtu(&buf, &q) {
            Scan::Found {
                answer: Answer::Data(r),
                frame,
            } => {
                assert_eq!(frame.start, at);
                assert_eq!(&buf[r], &[0x12, 0x34]);
            }
            other => panic!("{other:?}"),
        }
        let mut only_other = Vec::new();
        push_with_crc(&mut only_other, &[2, 3, 2, 0, 9]);
        assert_eq!(
            scan_rtu(&only_other, &q),
            Scan::Pending {
                rejected: Detail::WRONG_UNIT
            }
        );
    }

    #[test]
    fn mbap_skips_late_answers_and_checks_the_count() {
        let q = Question::read(RegisterKind::Holding, 1, 0, 1);
        let late = [0, 6, 0, 0, 0, 5, 1, 3, 2, 0, 7];
        let now = [0, 7, 0, 0, 0, 5, 1, 3, 2, 0, 8];
        let buf = [late, now].concat();
        assert_eq!(
            scan_mbap(&buf, &q, 7),
            Scan::Found {
                answer: Answer::Data(20..22),
                frame: 11..22
            }
        );
        let more = [0, 7, 0, 0, 0, 7, 1, 3, 4, 0, 8, 0, 9];
        assert_eq!(
            scan_mbap(&more, &q, 7),
            Scan::Pending {
                rejected: Detail::WRONG_COUNT
            }
        );
    }
}
