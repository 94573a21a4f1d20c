//! DL/T 645-2007 frames as bytes: read requests out, answers checked against
//! the question. Pure functions, no I/O (the codec of tokio-modbus's split
//! into frame / codec / service, for the other protocol of Chinese meters).
//!
//! A frame is `68 A0..A5 68 C L DATA CS 16`:
//! * the address is 12 BCD digits, sent **lowest byte first** (the meter
//!   printed `123456789012` is `12 90 78 56 34 12` on the wire);
//! * every DATA byte is sent **+0x33** (and taken −0x33);
//! * a data identifier DI3 DI2 DI1 DI0 (written `"00010000"`, forward active
//!   energy total) is sent DI0 first;
//! * CS is the byte sum, modulo 256, from the first 0x68 to the byte before CS;
//! * the master may send wake-up bytes `FE` first; answers may carry 0–4.
//!
//! Control codes used here: read `0x11`, its normal answer `0x91` (`0xB1`
//! when follow-up frames exist), its error answer `0xD1` with one error
//! byte; read address `0x13` (to the wildcard address `AA…AA`), answer `0x93`.
//! Facts and their confidence are in `../shared/reference/domain.md` §5.1;
//! the error-byte bits are as given in the standard's §7.3 table as quoted
//! by public implementations (bit 0 other, 1 no data, 2 password, 3 baud
//! rate, 4 year zones, 5 day periods, 6 tariffs) and marked unsure there.

use std::ops::Range;

use crate::model::Detail;
pub use crate::profiles::dlt645::{Address, Di, Format};

/// The frame start and end bytes.
const START: u8 = 0x68;
const END: u8 = 0x16;
/// Every data byte is sent plus this.
const OFFSET: u8 = 0x33;

/// Control code: read data.
pub const READ: u8 = 0x11;
/// Control code: read the address (of the single meter on a link).
pub const READ_ADDRESS: u8 = 0x13;

/// Appends a frame (`preamble` wake-up bytes, then `68 A 68 C L DATA CS 16`
/// with DATA given before +0x33) to `out`.
pub fn encode(out: &mut Vec<u8>, preamble: usize, address: Address, control: u8, data: &[u8]) {
    out.extend(std::iter::repeat_n(0xFE, preamble));
    let start = out.len();
    out.push(START);
    out.extend_from_slice(&address.0);
    out.push(START);
    out.push(control);
    out.push(data.len() as u8);
    out.extend(data.iter().map(|b| b.wrapping_add(OFFSET)));
    let cs = out[start..].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    out.push(cs);
    out.push(END);
}

/// Appends the read request for `di` at `address`.
pub fn encode_read(out: &mut Vec<u8>, preamble: usize, address: Address, di: Di) {
    encode(out, preamble, address, READ, &di.wire());
}

/// Appends the read-address request (to the wildcard address).
pub fn encode_read_address(out: &mut Vec<u8>, preamble: usize) {
    encode(out, preamble, Address::WILDCARD, READ_ADDRESS, &[]);
}

/// What one read asks: whom, and which data identifier in which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The meter.
    pub address: Address,
    /// The data identifier.
    pub di: Di,
    /// Bytes of the value the answer must carry.
    pub value_bytes: u8,
}

/// What a fitting answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The value's bytes (already −0x33) are at this range of the buffer's
    /// decoded copy; see [`value_bytes`].
    Value(Range<usize>),
    /// An error answer with its error byte (−0x33).
    Error(u8),
}

/// The result of searching received bytes for the answer to a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A frame that answers the question.
    Found {
        /// What it says.
        answer: Answer,
        /// Where the whole frame is in the buffer.
        frame: Range<usize>,
    },
    /// No answer yet; `rejected` names the most telling failed check.
    Pending {
        /// Why the frames seen so far were not the answer.
        rejected: Detail,
    },
}

/// Frame length from its L byte, when `buf[i..]` starts like a frame.
fn frame_at(buf: &[u8], i: usize) -> Option<usize> {
    let rest = &buf[i..];
    if rest.len() < 10 || rest[0] != START || rest[7] != START {
        return None;
    }
    Some(12 + usize::from(rest[9]))
}

/// Whether the incomplete frame starting `rest` (at least 10 bytes) can be
/// the answer to `q`: its address, control and length fit.
fn awaited(rest: &[u8], q: &Question) -> bool {
    rest[1..7] == q.address.0
        && match rest[8] {
            0x91 | 0xB1 => usize::from(rest[9]) == 4 + usize::from(q.value_bytes),
            0xD1 => rest[9] == 1,
            _ => false,
        }
}

fn checksum_fits(frame: &[u8]) -> bool {
    let n = frame.len();
    frame[n - 1] == END
        && frame[..n - 2].iter().fold(0u8, |s, b| s.wrapping_add(*b)) == frame[n - 2]
}

fn rank(d: Detail) -> u8 {
    match d {
        Detail::BAD_BCD => 6,
        Detail::WRONG_COUNT => 5,
        Detail::WRONG_DI => 4,
        Detail::WRONG_FUNCTION => 3,
        Detail::WRONG_ADDRESS => 2,
        Detail::BAD_CHECKSUM => 1,
        _ => 0,
    }
}

fn keep(current: &mut Detail, new: Detail) {
    if rank(new) > rank(*current) {
        *current = new;
    }
}

/// Searches `buf` for the answer to the read `q`. A frame of another meter,
/// for another DI, with another value length or a bad checksum is skipped
/// and remembered; leading `FE` and garbage are skipped. A `Value` answer's
/// digits are checked by the caller with the point's [`Format`]
/// ([`value_bytes`] gives them).
#[must_use]
pub fn scan_read(buf: &[u8], q: &Question) -> Scan {
    let mut rejected = Detail::NONE;
    let mut i = 0;
    while i < buf.len() {
        let Some(len) = frame_at(buf, i) else {
            i += 1;
            continue;
        };
        if buf.len() < i + len {
            if awaited(&buf[i..], q) {
                // The answer is arriving.
                return Scan::Pending { rejected };
            }
            // Anything else that looks like a frame start (a stray 0x68
            // seven bytes before the answer) must not hide what follows.
            i += 1;
            continue;
        }
        let frame = &buf[i..i + len];
        if !checksum_fits(frame) {
            keep(&mut rejected, Detail::BAD_CHECKSUM);
            i += 1;
            continue;
        }
        let next = i + len;
        let address = Address(frame[1..7].try_into().unwrap_or([0; 6]));
        let (control, data) = (frame[8], &frame[10..len - 2]);
        if address != q.address {
            keep(&mut rejected, Detail::WRONG_ADDRESS);
        } else if control == 0xD1 && data.len() == 1 {
            return Scan::Found {
                answer: Answer::Error(data[0].wrapping_sub(OFFSET)),
                frame: i..next,
            };
        } else if control != 0x91 && control != 0xB1 {
            keep(&mut rejected, Detail::WRONG_FUNCTION);
        } else if data.len() < 4
            || q.di.wire() != [0, 1, 2, 3].map(|k| data[k].wrapping_sub(OFFSET))
        {
            keep(&mut rejected, Detail::WRONG_DI);
        } else if data.len() != 4 + usize::from(q.value_bytes) {
            keep(&mut rejected, Detail::WRONG_COUNT);
        } else {
            return Scan::Found {
                answer: Answer::Value(i + 14..next - 2),
                frame: i..next,
            };
        }
        i = next;
    }
    Scan::Pending { rejected }
}

/// Searches `buf` for a read-address answer (`0x93`, six address bytes);
/// returns the address and the frame's end.
#[must_use]
pub fn scan_address(buf: &[u8]) -> Option<(Address, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if let Some(len) = frame_at(buf, i)
            && buf.len() >= i + len
            && checksum_fits(&buf[i..i + len])
            && buf[i + 8] == 0x93
            && buf[i + 9] == 6
        {
            let mut a = [0u8; 6];
            for (k, b) in a.iter_mut().enumerate() {
                *b = buf[i + 10 + k].wrapping_sub(OFFSET);
            }
            return Some((Address(a), i + len));
        }
        i += 1;
    }
    None
}

/// The value bytes of a found answer, −0x33, into `out`.
pub fn value_bytes(buf: &[u8], range: Range<usize>, out: &mut Vec<u8>) {
    out.clear();
    out.extend(buf[range].iter().map(|b| b.wrapping_sub(OFFSET)));
}

/// The detail of an error byte: its lowest set bit, by the standard's table.
#[must_use]
pub fn error_detail(code: u8) -> Detail {
    match code.trailing_zeros() {
        1 => Detail::DLT645_NO_DATA,
        2 => Detail::DLT645_PASSWORD,
        3 => Detail::DLT645_BAUD,
        4 => Detail::DLT645_YEAR_ZONES,
        5 => Detail::DLT645_DAY_PERIODS,
        6 => Detail::DLT645_TARIFFS,
        _ => Detail::DLT645_OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked out by hand (domain.md §5.1): meter 123456789012 is
    /// `12 90 78 56 34 12`; DI 00010000 is `00 00 01 00` + 0x33 =
    /// `33 33 34 33`; CS = 872 mod 256 = 0x68.
    #[test]
    fn read_request_by_hand() {
        let mut out = Vec::new();
        let a = Address::from_nameplate("123456789012").expect("address");
        encode_read(&mut out, 4, a, Di::parse("00010000").expect("di"));
        assert_eq!(
            out,
            [
                0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x11, 0x04,
                0x33, 0x33, 0x34, 0x33, 0x68, 0x16
            ]
        );
        assert_eq!(a.nameplate(), "123456789012");
    }

    /// 12345.67 kWh as XXXXXX.XX: 01234567 → `67 45 23 01` + 0x33 =
    /// `9A 78 56 34`; CS = 1416 mod 256 = 0x88.
    #[test]
    fn answer_by_hand() {
        let frame = [
            0xFE, 0xFE, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x08, 0x33, 0x33,
            0x34, 0x33, 0x9A, 0x78, 0x56, 0x34, 0x88, 0x16,
        ];
        let q = Question {
            address: Address::from_nameplate("123456789012").expect("address"),
            di: Di(0x0001_0000),
            value_bytes: 4,
        };
        let Scan::Found {
            answer: Answer::Value(r),
            frame: f,
        } = scan_read(&frame, &q)
        else {
            panic!("not found");
        };
        assert_eq!(f, 2..22);
        let mut v = Vec::new();
        value_bytes(&frame, r, &mut v);
        let fmt = Format::parse("XXXXXX.XX", false).expect("format");
        assert_eq!(fmt.decode(&v), Some(12345.67));
        assert_eq!(fmt.encode(12345.67), Some(vec![0x67, 0x45, 0x23, 0x01]));
    }

    #[test]
    fn signed_formats_and_bad_digits() {
        let kw = Format::parse("XX.XXXX", true).expect("format");
        // -1.2345 kW: 012345 → `45 23 01`, sign bit on the top byte: `45 23 81`.
        assert_eq!(kw.decode(&[0x45, 0x23, 0x81]), Some(-1.2345));
        assert_eq!(kw.encode(-1.2345), Some(vec![0x45, 0x23, 0x81]));
        assert_eq!(kw.decode(&[0x4A, 0x23, 0x01]), None);
        // 36 kW fits (top digit 3); 79.9999 is the largest; 80 does not fit.
        assert_eq!(kw.encode(36.0), Some(vec![0x00, 0x00, 0x36]));
        assert_eq!(kw.encode(79.9999), Some(vec![0x99, 0x99, 0x79]));
        assert_eq!(kw.encode(80.0), None);
        assert_eq!(
            Format::parse("XXX.X", false).map(|f| (f.bytes, f.decimals)),
            Some((2, 1))
        );
        assert_eq!(Format::parse("XX.X", false), None);
    }
}
