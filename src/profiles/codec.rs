//! Registers to numbers and back: every data type in every word and byte
//! order. It belongs to the profile (a point's type, order and scale say how
//! to read it), so the Modbus source, the pipeline and the simulator all use
//! this one codec.
//!
//! Pure functions, no allocation. [`decode_raw`] turns the registers of one
//! point into its raw number; [`decode_point`] applies scale, PT/CT ratio and
//! offset and marks sentinels; [`encode_point`] is the inverse the simulator
//! uses to serve a known value.
//!
//! Byte order is named after where the bytes of the big-endian value
//! `A B C D …` land on the wire (see [`ByteOrder`]). Internally every order is
//! normalised to a big-endian byte array before conversion.

use super::{ByteOrder, DataType, PointDef, RatioScaling};
use crate::model::{PointValue, Quality};

/// A decoded raw number, before scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Raw {
    /// The number as `f64` (exact for every 32-bit type; 64-bit integers above 2^53 round).
    pub value: f64,
    /// The register bits as an unsigned integer of the type's width (for sentinel checks).
    pub bits: u64,
}

/// Puts the registers of a point into big-endian byte order (`A B C D …`).
/// Returns the number of valid bytes in `out`.
fn to_be_bytes(regs: &[u16], width: usize, order: ByteOrder, out: &mut [u8; 8]) -> usize {
    let n = width * 2;
    for i in 0..width {
        // Word i (0 = most significant) comes from register i, or from the
        // mirrored register when the word order is little-endian.
        let reg = match order {
            ByteOrder::Abcd | ByteOrder::Badc => regs[i],
            ByteOrder::Cdab | ByteOrder::Dcba => regs[width - 1 - i],
        };
        let [hi, lo] = reg.to_be_bytes();
        let (first, second) = match order {
            ByteOrder::Abcd | ByteOrder::Cdab => (hi, lo),
            ByteOrder::Badc | ByteOrder::Dcba => (lo, hi),
        };
        out[2 * i] = first;
        out[2 * i + 1] = second;
    }
    n
}

/// Inverse of [`to_be_bytes`]: big-endian bytes into registers in `order`.
fn from_be_bytes(bytes: &[u8], order: ByteOrder, out: &mut [u16]) {
    let width = bytes.len() / 2;
    for i in 0..width {
        let (first, second) = (bytes[2 * i], bytes[2 * i + 1]);
        let (hi, lo) = match order {
            ByteOrder::Abcd | ByteOrder::Cdab => (first, second),
            ByteOrder::Badc | ByteOrder::Dcba => (second, first),
        };
        let reg = u16::from_be_bytes([hi, lo]);
        match order {
            ByteOrder::Abcd | ByteOrder::Badc => out[i] = reg,
            ByteOrder::Cdab | ByteOrder::Dcba => out[width - 1 - i] = reg,
        }
    }
}

/// Decodes the registers of one point. `regs` must hold at least
/// `data_type.width()` registers; for [`DataType::Bool`] `regs[0]` is 0 or 1.
#[must_use]
pub fn decode_raw(regs: &[u16], data_type: DataType, order: ByteOrder) -> Raw {
    let mut b = [0u8; 8];
    match data_type {
        DataType::Bool => {
            let bit = u64::from(regs[0] != 0);
            Raw {
                value: bit as f64,
                bits: bit,
            }
        }
        DataType::U16 | DataType::I16 => {
            to_be_bytes(regs, 1, order, &mut b);
            let u = u16::from_be_bytes([b[0], b[1]]);
            let value = if data_type == DataType::U16 {
                f64::from(u)
            } else {
                f64::from(u as i16)
            };
            Raw {
                value,
                bits: u64::from(u),
            }
        }
        DataType::U32 | DataType::I32 | DataType::F32 => {
            to_be_bytes(regs, 2, order, &mut b);
            let u = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let value = match data_type {
                DataType::U32 => f64::from(u),
                DataType::I32 => f64::from(u as i32),
                _ => f64::from(f32::from_bits(u)),
            };
            Raw {
                value,
                bits: u64::from(u),
            }
        }
        DataType::U64 | DataType::I64 | DataType::F64 => {
            to_be_bytes(regs, 4, order, &mut b);
            let u = u64::from_be_bytes(b);
            let value = match data_type {
                DataType::U64 => u as f64,
                DataType::I64 => (u as i64) as f64,
                _ => f64::from_bits(u),
            };
            Raw { value, bits: u }
        }
    }
}

/// Encodes a raw number into registers (the inverse of [`decode_raw`]).
/// Integers are rounded to nearest and wrap modulo the type's range, as a
/// meter's counter register does. Writes `data_type.width()` registers.
pub fn encode_raw(raw: f64, data_type: DataType, order: ByteOrder, out: &mut [u16]) {
    match data_type {
        DataType::Bool => out[0] = u16::from(raw != 0.0),
        DataType::U16 | DataType::I16 => {
            let v = wrap_int(raw, 1 << 16) as u16;
            from_be_bytes(&v.to_be_bytes(), order, &mut out[..1]);
        }
        DataType::U32 | DataType::I32 => {
            let v = wrap_int(raw, 1 << 32) as u32;
            from_be_bytes(&v.to_be_bytes(), order, &mut out[..2]);
        }
        DataType::F32 => {
            from_be_bytes(&(raw as f32).to_bits().to_be_bytes(), order, &mut out[..2]);
        }
        DataType::U64 | DataType::I64 => {
            let r = raw.round();
            let v = if r < 0.0 { (r as i64) as u64 } else { r as u64 };
            from_be_bytes(&v.to_be_bytes(), order, &mut out[..4]);
        }
        DataType::F64 => from_be_bytes(&raw.to_bits().to_be_bytes(), order, &mut out[..4]),
    }
}

/// Rounds to the nearest integer and wraps into `0..modulus` (two's complement for negatives).
fn wrap_int(raw: f64, modulus: u64) -> u64 {
    let r = raw.round() as i128;
    r.rem_euclid(i128::from(modulus)) as u64
}

/// The multiplier a point's ratio scaling contributes for a meter's PT and CT.
#[must_use]
pub fn ratio_factor(ratio: RatioScaling, pt: f64, ct: f64) -> f64 {
    match ratio {
        RatioScaling::None => 1.0,
        RatioScaling::Pt => pt,
        RatioScaling::Ct => ct,
        RatioScaling::PtCt => pt * ct,
    }
}

/// True when the raw bits are a "no value" marker: NaN or an infinity for
/// floats; for integers the pattern meters use for "not available": all
/// ones for unsigned types (`0xFFFF`, `0xFFFF_FFFF`, …) and the minimum for
/// signed types (`0x8000`, `0x8000_0000`, …); or a raw value the profile
/// declares in `sentinels`.
///
/// `0x7FFF` and a signed `-1` are *not* built in: both are ordinary readings
/// on real maps (a power factor of -0.001, a current of 327.67 A), so a
/// profile must declare them where the device uses them as markers.
#[must_use]
pub fn is_sentinel(point: &PointDef, raw: Raw) -> bool {
    if !raw.value.is_finite() {
        return true;
    }
    let builtin = match point.data_type {
        DataType::U16 => raw.bits == 0xFFFF,
        DataType::I16 => raw.bits == 0x8000,
        DataType::U32 => raw.bits == 0xFFFF_FFFF,
        DataType::I32 => raw.bits == 0x8000_0000,
        DataType::U64 => raw.bits == u64::MAX,
        DataType::I64 => raw.bits == 0x8000_0000_0000_0000,
        DataType::Bool | DataType::F32 | DataType::F64 => false,
    };
    builtin || point.sentinels.contains(&raw.value)
}

/// `raw × scale × ratio + offset`, computed so that decimal scales give the
/// decimal answer.
///
/// Meter maps scale integers by powers of ten (`× 0.01 kWh`). `0.01` has no
/// exact binary form, so `1840 × 0.01` is `18.400000000000002`; dividing by
/// the exact integer `100` instead gives the double nearest to 18.4, which
/// is what a person reading the meter expects and what prints as `18.4`.
/// Integral ratios (PT 10, CT 40) multiply the integer raw value first, so
/// `12345678 × 400 ÷ 100` is exact too.
#[must_use]
pub fn scale_raw(point: &PointDef, raw: f64, pt: f64, ct: f64) -> f64 {
    let ratio = ratio_factor(point.ratio, pt, ct);
    let inverse = 1.0 / point.scale;
    let divisor = inverse.round();
    let scaled = if divisor >= 1.0 && (inverse - divisor).abs() <= divisor * 1e-9 {
        (raw * ratio) / divisor
    } else {
        raw * point.scale * ratio
    };
    scaled + point.offset
}

/// Decodes one point: raw number, then [`scale_raw`].
/// A sentinel yields `NaN` with the [`Quality::SENTINEL`] bit.
#[must_use]
pub fn decode_point(point: &PointDef, regs: &[u16], pt: f64, ct: f64) -> PointValue {
    let raw = decode_raw(regs, point.data_type, point.order);
    if is_sentinel(point, raw) {
        return PointValue::missing(Quality::SENTINEL);
    }
    PointValue::new(scale_raw(point, raw.value, pt, ct), Quality::GOOD)
}

/// Encodes a scaled value of `point` into its registers (the simulator's side).
pub fn encode_point(point: &PointDef, value: f64, pt: f64, ct: f64, out: &mut [u16]) {
    let factor = point.scale * ratio_factor(point.ratio, pt, ct);
    let raw = (value - point.offset) / factor;
    encode_raw(raw, point.data_type, point.order, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_scales_give_decimal_values() {
        let mut p = PointDef::new(
            "current_a",
            crate::profiles::RegisterKind::Holding,
            0,
            DataType::U16,
        );
        p.scale = 0.01;
        p.ratio = RatioScaling::Ct;
        assert_eq!(scale_raw(&p, 1840.0, 1.0, 1.0), 18.4);
        assert_eq!(scale_raw(&p, 1840.0, 1.0, 40.0), 736.0);
        p.scale = 0.1;
        assert_eq!(scale_raw(&p, 2304.0, 1.0, 1.0), 230.4);
        p.scale = 0.25;
        assert_eq!(scale_raw(&p, 3.0, 1.0, 1.0), 0.75);
        p.scale = 3.0;
        assert_eq!(scale_raw(&p, 3.0, 1.0, 1.0), 9.0);
    }

    #[test]
    fn f32_abcd_known_vector() {
        // 230.5 as IEEE-754 single is 0x43668000.
        let r = decode_raw(&[0x4366, 0x8000], DataType::F32, ByteOrder::Abcd);
        assert_eq!(r.value, 230.5);
        let r = decode_raw(&[0x8000, 0x4366], DataType::F32, ByteOrder::Cdab);
        assert_eq!(r.value, 230.5);
        let r = decode_raw(&[0x6643, 0x0080], DataType::F32, ByteOrder::Badc);
        assert_eq!(r.value, 230.5);
        let r = decode_raw(&[0x0080, 0x6643], DataType::F32, ByteOrder::Dcba);
        assert_eq!(r.value, 230.5);
    }

    #[test]
    fn encode_inverts_decode_for_every_order() {
        for order in [
            ByteOrder::Abcd,
            ByteOrder::Cdab,
            ByteOrder::Badc,
            ByteOrder::Dcba,
        ] {
            for (dt, v) in [
                (DataType::U16, 65_000.0),
                (DataType::I16, -1234.0),
                (DataType::U32, 4_000_000_000.0),
                (DataType::I32, -2_000_000_000.0),
                (DataType::U64, 9_007_199_254_740_000.0),
                (DataType::I64, -9_007_199_254_740_000.0),
                (DataType::F32, 1.5e-3),
                (DataType::F64, 123_456.789_012_345),
            ] {
                let mut regs = [0u16; 4];
                encode_raw(v, dt, order, &mut regs);
                let back = decode_raw(&regs, dt, order).value;
                let want = if dt == DataType::F32 {
                    f64::from(v as f32)
                } else {
                    v
                };
                assert_eq!(back, want, "{dt:?} {order:?}");
            }
        }
    }
}
