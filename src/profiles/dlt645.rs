//! DL/T 645-2007 data types that profiles, site files, the source and the
//! simulator share: meter addresses, data identifiers and BCD formats
//! (as `codec.rs` holds the Modbus register codec).
//!
//! Byte orders, checked against the standard's text as quoted in
//! `../shared/reference/domain.md` §5.1: the address's 12 BCD digits go on
//! the wire lowest byte first (nameplate `123456789012` → `12 90 78 56 34
//! 12`); a data identifier written DI3 DI2 DI1 DI0 (`"00010000"`) goes DI0
//! first; values are BCD, lowest byte first, with the top bit of the top
//! byte as the sign in signed formats.

use std::fmt;

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
    /// resolution; `None` when it does not fit (a signed format's top digit
    /// goes to 7: `XX.XXXX` holds up to ±79.9999).
    #[must_use]
    pub fn encode(self, value: f64) -> Option<Vec<u8>> {
        if !value.is_finite() || (value < 0.0 && !self.signed) {
            return None;
        }
        let scaled = (value.abs() * 10f64.powi(i32::from(self.decimals))).round();
        // All digits of the format; in a signed one the top digit gives
        // its top bit to the sign, so it goes to 7 at most.
        let digits = i32::from(self.bytes) * 2;
        let limit = if self.signed {
            8.0 * 10f64.powi(digits - 1)
        } else {
            10f64.powi(digits)
        };
        if scaled >= limit {
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
