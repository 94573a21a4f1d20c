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

use std::fmt;
use std::ops::Range;

use crate::model::Detail;

/// The frame start and end bytes.
const START: u8 = 0x68;
const END: u8 = 0x16;
/// Every data byte is sent plus this.
const OFFSET: u8 = 0x33;

/// Control code: read data.
pub const READ: u8 = 0x11;
/// Control code: read the address (of the single meter on a link).
pub const READ_ADDRESS: u8 = 0x13;

/// A meter address as it goes on the wire (lowest byte first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// The wildcard address `AAAAAAAAAAAA`: whichever single meter is on the link.
    pub const WILDCARD: Address = Address([0xAA; 6]);

    /// The address printed on the nameplate (12 decimal digits) in wire
    /// order; `None` for anything else.
    #[must_use]
    pub fn from_nameplate(digits: &str) -> Option<Address> {
        let d = digits.as_bytes();
        if d.len() != 12 || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            // Byte 0 on the wire holds the last two digits.
            let hi = d[10 - 2 * i] - b'0';
            let lo = d[11 - 2 * i] - b'0';
            *byte = hi << 4 | lo;
        }
        Some(Address(out))
    }

    /// The nameplate digits (hex digits for a non-BCD address such as the wildcard).
    #[must_use]
    pub fn nameplate(&self) -> String {
        use std::fmt::Write as _;
        self.0
            .iter()
            .rev()
            .fold(String::with_capacity(12), |mut s, b| {
                let _ = write!(s, "{b:02X}");
                s
            })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.nameplate())
    }
}

/// A data identifier, `DI3 DI2 DI1 DI0` as written in the standard's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Di(pub u32);

impl Di {
    /// `"00010000"` (8 hex digits, DI3 first); `None` otherwise.
    #[must_use]
    pub fn parse(text: &str) -> Option<Di> {
        (text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(text, 16).ok().map(Di))
            .flatten()
    }

    /// The four bytes in wire order, DI0 first, before the +0x33.
    #[must_use]
    pub fn wire(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for Di {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

/// A BCD data format: `XXXXXX.XX` is 8 digits in 4 bytes with 2 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Bytes on the wire (two digits each).
    pub bytes: u8,
    /// Digits after the decimal point.
    pub decimals: u8,
    /// The top bit of the top byte is a sign (power, current, power factor).
    pub signed: bool,
}

impl Format {
    /// `"XXXXXX.XX"`, `"XXX.X"`, `"XX.XXXX"`, `"X.XXX"`, `"XXXXXXXX"` …: an
    /// even number of `X` (at most 16), with at most one `.`; `None` otherwise.
    #[must_use]
    pub fn parse(text: &str, signed: bool) -> Option<Format> {
        let digits = text.bytes().filter(|b| *b == b'X').count();
        let dots = text.bytes().filter(|b| *b == b'.').count();
        if digits == 0
            || digits % 2 != 0
            || digits > 16
            || dots > 1
            || text.bytes().any(|b| b != b'X' && b != b'.')
            || text.starts_with('.')
            || text.ends_with('.')
        {
            return None;
        }
        let decimals = text.find('.').map_or(0, |i| text.len() - i - 1);
        Some(Format {
            bytes: (digits / 2) as u8,
            decimals: decimals as u8,
            signed,
        })
    }

    /// The value of `data` (already −0x33, lowest byte first); `None` when
    /// a digit is not BCD or the length is wrong.
    #[must_use]
    pub fn decode(self, data: &[u8]) -> Option<f64> {
        if data.len() != usize::from(self.bytes) {
            return None;
        }
        let mut n: u64 = 0;
        let mut negative = false;
        for (i, &b) in data.iter().enumerate().rev() {
            let mut b = b;
            if self.signed && i == data.len() - 1 {
                negative = b & 0x80 != 0;
                b &= 0x7F;
            }
            let (hi, lo) = (b >> 4, b & 0x0F);
            if hi > 9 || lo > 9 {
                return None;
            }
            n = n * 100 + u64::from(hi) * 10 + u64::from(lo);
        }
        let v = n as f64 / 10f64.powi(i32::from(self.decimals));
        Some(if negative { -v } else { v })
    }

    /// `value` as wire data (before +0x33), rounded to the format's
    /// resolution; `None` when it does not fit.
    #[must_use]
    pub fn encode(self, value: f64) -> Option<Vec<u8>> {
        if !value.is_finite() || (value < 0.0 && !self.signed) {
            return None;
        }
        let scaled = (value.abs() * 10f64.powi(i32::from(self.decimals))).round();
        let max_digits = u32::from(self.bytes) * 2 - u32::from(self.signed);
        if scaled >= 10f64.powi(max_digits as i32) {
            return None;
        }
        let mut n = scaled as u64;
        let mut out = Vec::with_capacity(usize::from(self.bytes));
        for _ in 0..self.bytes {
            let lo = (n % 10) as u8;
            let hi = (n / 10 % 10) as u8;
            out.push(hi << 4 | lo);
            n /= 100;
        }
        if self.signed
            && value < 0.0
            && let Some(top) = out.last_mut()
        {
            *top |= 0x80;
        }
        Some(out)
    }
}

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
            // A frame is arriving (or garbage that looks like one: it will
            // fail its checksum once complete, or the deadline ends it).
            return Scan::Pending { rejected };
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
        assert_eq!(
            Format::parse("XXX.X", false).map(|f| (f.bytes, f.decimals)),
            Some((2, 1))
        );
        assert_eq!(Format::parse("XX.X", false), None);
    }
}
