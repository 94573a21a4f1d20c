//! Register decoding against vectors worked out independently of the code.
//!
//! Every register word below was computed with Python 3's `struct` module,
//! not with emgate:
//! * `ABCD`: `struct.pack('>' + fmt, v)` split into big-endian 16-bit words;
//! * `DCBA`: `struct.pack('<' + fmt, v)` split the same way;
//! * `CDAB`: the `ABCD` words in reverse order;
//! * `BADC`: the `ABCD` words with the two bytes of each word swapped;
//! * 16-bit types: `AB` for `ABCD`/`CDAB`, `BA` for `BADC`/`DCBA`.
//!
//! Expected decoded values are Python floats of the same numbers (for `f32`,
//! `struct.unpack('>f', struct.pack('>f', v))[0]`), and the scaled values are
//! Python's results of `raw * scale * ratio + offset` in that order.

use emgate::model::Quality;
use emgate::profiles::codec::{decode_point, decode_raw, encode_point, encode_raw};
use emgate::profiles::{ByteOrder, DataType, PointDef, PointKind, RatioScaling, RegisterKind};
use proptest::prelude::*;

const ORDERS: [ByteOrder; 4] = [
    ByteOrder::Abcd,
    ByteOrder::Cdab,
    ByteOrder::Badc,
    ByteOrder::Dcba,
];

/// One vector: type, the decoded value, registers in ABCD, CDAB, BADC, DCBA
/// order, and whether encoding the value must give exactly these registers
/// (not so when the value does not fit an `f64` exactly).
struct Vector {
    dt: DataType,
    value: f64,
    regs: [&'static [u16]; 4],
    encodes_back: bool,
}

const fn v(dt: DataType, value: f64, regs: [&'static [u16]; 4]) -> Vector {
    Vector {
        dt,
        value,
        regs,
        encodes_back: true,
    }
}

#[rustfmt::skip]
const VECTORS: &[Vector] = &[
    // u16
    v(DataType::U16, 0.0, [&[0x0000], &[0x0000], &[0x0000], &[0x0000]]),
    v(DataType::U16, 1.0, [&[0x0001], &[0x0001], &[0x0100], &[0x0100]]),
    v(DataType::U16, 4660.0, [&[0x1234], &[0x1234], &[0x3412], &[0x3412]]),
    v(DataType::U16, 65534.0, [&[0xFFFE], &[0xFFFE], &[0xFEFF], &[0xFEFF]]),
    // i16
    v(DataType::I16, -2.0, [&[0xFFFE], &[0xFFFE], &[0xFEFF], &[0xFEFF]]),
    v(DataType::I16, -12345.0, [&[0xCFC7], &[0xCFC7], &[0xC7CF], &[0xC7CF]]),
    v(DataType::I16, -32767.0, [&[0x8001], &[0x8001], &[0x0180], &[0x0180]]),
    v(DataType::I16, 12345.0, [&[0x3039], &[0x3039], &[0x3930], &[0x3930]]),
    // u32
    v(DataType::U32, 12_345_678.0,
      [&[0x00BC, 0x614E], &[0x614E, 0x00BC], &[0xBC00, 0x4E61], &[0x4E61, 0xBC00]]),
    v(DataType::U32, 4_000_000_000.0,
      [&[0xEE6B, 0x2800], &[0x2800, 0xEE6B], &[0x6BEE, 0x0028], &[0x0028, 0x6BEE]]),
    // i32
    v(DataType::I32, -2.0,
      [&[0xFFFF, 0xFFFE], &[0xFFFE, 0xFFFF], &[0xFFFF, 0xFEFF], &[0xFEFF, 0xFFFF]]),
    v(DataType::I32, -123_456_789.0,
      [&[0xF8A4, 0x32EB], &[0x32EB, 0xF8A4], &[0xA4F8, 0xEB32], &[0xEB32, 0xA4F8]]),
    v(DataType::I32, 123_456_789.0,
      [&[0x075B, 0xCD15], &[0xCD15, 0x075B], &[0x5B07, 0x15CD], &[0x15CD, 0x5B07]]),
    // u64: 0x0123456789ABCDEF is above 2^53 and decodes to the nearest f64,
    // int(float(0x0123456789ABCDEF)) = 81985529216486896.
    Vector {
        dt: DataType::U64,
        value: 81_985_529_216_486_896.0,
        regs: [
            &[0x0123, 0x4567, 0x89AB, 0xCDEF], &[0xCDEF, 0x89AB, 0x4567, 0x0123],
            &[0x2301, 0x6745, 0xAB89, 0xEFCD], &[0xEFCD, 0xAB89, 0x6745, 0x2301],
        ],
        encodes_back: false,
    },
    v(DataType::U64, 9_007_199_254_740_992.0, // 2^53
      [&[0x0020, 0x0000, 0x0000, 0x0000], &[0x0000, 0x0000, 0x0000, 0x0020],
       &[0x2000, 0x0000, 0x0000, 0x0000], &[0x0000, 0x0000, 0x0000, 0x2000]]),
    // i64
    v(DataType::I64, -2.0,
      [&[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], &[0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
       &[0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF], &[0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF]]),
    v(DataType::I64, -1_234_567_890_123.0,
      [&[0xFFFF, 0xFEE0, 0x8E04, 0xFB35], &[0xFB35, 0x8E04, 0xFEE0, 0xFFFF],
       &[0xFFFF, 0xE0FE, 0x048E, 0x35FB], &[0x35FB, 0x048E, 0xE0FE, 0xFFFF]]),
    // f32
    v(DataType::F32, 230.5,
      [&[0x4366, 0x8000], &[0x8000, 0x4366], &[0x6643, 0x0080], &[0x0080, 0x6643]]),
    v(DataType::F32, -1.5,
      [&[0xBFC0, 0x0000], &[0x0000, 0xBFC0], &[0xC0BF, 0x0000], &[0x0000, 0xC0BF]]),
    v(DataType::F32, 0.100_000_001_490_116_12, // f32 nearest to 0.1
      [&[0x3DCC, 0xCCCD], &[0xCCCD, 0x3DCC], &[0xCC3D, 0xCDCC], &[0xCDCC, 0xCC3D]]),
    // f64
    v(DataType::F64, 123_456.789,
      [&[0x40FE, 0x240C, 0x9FBE, 0x76C9], &[0x76C9, 0x9FBE, 0x240C, 0x40FE],
       &[0xFE40, 0x0C24, 0xBE9F, 0xC976], &[0xC976, 0xBE9F, 0x0C24, 0xFE40]]),
    v(DataType::F64, -0.001,
      [&[0xBF50, 0x624D, 0xD2F1, 0xA9FC], &[0xA9FC, 0xD2F1, 0x624D, 0xBF50],
       &[0x50BF, 0x4D62, 0xF1D2, 0xFCA9], &[0xFCA9, 0xF1D2, 0x4D62, 0x50BF]]),
    // bool: one bit, order does not apply.
    v(DataType::Bool, 1.0, [&[1], &[1], &[1], &[1]]),
    v(DataType::Bool, 0.0, [&[0], &[0], &[0], &[0]]),
];

fn point(dt: DataType, order: ByteOrder) -> PointDef {
    let register = if dt == DataType::Bool {
        RegisterKind::Coil
    } else {
        RegisterKind::Holding
    };
    PointDef {
        order,
        ..PointDef::new("x", register, 0, dt)
    }
}

#[test]
fn raw_vectors_decode_in_every_order() {
    for vec in VECTORS {
        for (order, regs) in ORDERS.iter().zip(vec.regs) {
            let raw = decode_raw(regs, vec.dt, *order);
            assert_eq!(raw.value, vec.value, "{:?} {order:?} {regs:04X?}", vec.dt);
        }
    }
}

#[test]
fn raw_vectors_encode_in_every_order() {
    for vec in VECTORS.iter().filter(|v| v.encodes_back) {
        for (order, regs) in ORDERS.iter().zip(vec.regs) {
            let mut out = [0u16; 4];
            encode_raw(vec.value, vec.dt, *order, &mut out);
            let width = usize::from(vec.dt.width());
            assert_eq!(&out[..width], regs, "{:?} {order:?} {}", vec.dt, vec.value);
        }
    }
}

#[test]
fn points_decode_and_encode_with_unit_scale() {
    for vec in VECTORS.iter().filter(|v| v.encodes_back) {
        for (order, regs) in ORDERS.iter().zip(vec.regs) {
            let p = point(vec.dt, *order);
            let got = decode_point(&p, regs, 1.0, 1.0);
            assert_eq!(got.value, vec.value, "{:?} {order:?}", vec.dt);
            assert_eq!(got.quality, Quality::GOOD);
            let mut out = [0u16; 4];
            encode_point(&p, vec.value, 1.0, 1.0, &mut out);
            assert_eq!(&out[..regs.len()], regs, "{:?} {order:?}", vec.dt);
        }
    }
}

#[test]
fn raw_bits_are_the_unsigned_pattern() {
    assert_eq!(
        decode_raw(&[0xCFC7], DataType::I16, ByteOrder::Abcd).bits,
        0xCFC7
    );
    assert_eq!(
        decode_raw(&[0x32EB, 0xF8A4], DataType::I32, ByteOrder::Cdab).bits,
        0xF8A4_32EB
    );
    assert_eq!(
        decode_raw(
            &[0x35FB, 0x048E, 0xE0FE, 0xFFFF],
            DataType::I64,
            ByteOrder::Dcba
        )
        .bits,
        0xFFFF_FEE0_8E04_FB35
    );
}

fn assert_sentinel(p: &PointDef, regs: &[u16]) {
    let got = decode_point(p, regs, 1.0, 1.0);
    assert_eq!(
        got.quality,
        Quality::SENTINEL,
        "{:?} {:?} {regs:04X?}",
        p.data_type,
        p.order
    );
    assert!(got.value.is_nan());
}

#[test]
fn sixteen_bit_sentinels_in_every_order() {
    // Built in: 0xFFFF for u16, 0x8000 for i16; in AB order, then
    // byte-swapped (BA) for BADC/DCBA.
    for (order, u_word, i_word) in [
        (ByteOrder::Abcd, 0xFFFF, 0x8000),
        (ByteOrder::Cdab, 0xFFFF, 0x8000),
        (ByteOrder::Badc, 0xFFFF, 0x0080),
        (ByteOrder::Dcba, 0xFFFF, 0x0080),
    ] {
        assert_sentinel(&point(DataType::U16, order), &[u_word]);
        assert_sentinel(&point(DataType::I16, order), &[i_word]);
    }
    // Real values, not markers: i16 -1 (a power factor of -0.001 on Acrel),
    // u16 32767 and 32768, i16 32767.
    let p = point(DataType::I16, ByteOrder::Abcd);
    assert_eq!(decode_point(&p, &[0xFFFF], 1.0, 1.0).value, -1.0);
    assert_eq!(decode_point(&p, &[0x7FFF], 1.0, 1.0).value, 32767.0);
    assert_eq!(decode_point(&p, &[0x8001], 1.0, 1.0).value, -32767.0);
    let p = point(DataType::U16, ByteOrder::Abcd);
    assert_eq!(decode_point(&p, &[0x7FFF], 1.0, 1.0).value, 32767.0);
    assert_eq!(decode_point(&p, &[0x8000], 1.0, 1.0).value, 32768.0);
}

#[test]
fn wide_integer_sentinels() {
    let p = point(DataType::U32, ByteOrder::Cdab);
    assert_sentinel(&p, &[0xFFFF, 0xFFFF]);
    // 0x8000_0000 and 0x7FFF_FFFF are ordinary u32 counter values.
    assert_eq!(
        decode_point(&p, &[0x0000, 0x8000], 1.0, 1.0).value,
        2_147_483_648.0
    );
    assert_eq!(
        decode_point(&p, &[0xFFFF, 0x7FFF], 1.0, 1.0).value,
        2_147_483_647.0
    );
    let p = point(DataType::I32, ByteOrder::Abcd);
    assert_sentinel(&p, &[0x8000, 0x0000]);
    assert_eq!(decode_point(&p, &[0xFFFF, 0xFFFF], 1.0, 1.0).value, -1.0);
    let p = point(DataType::I64, ByteOrder::Abcd);
    assert_sentinel(&p, &[0x8000, 0, 0, 0]);
    let p = point(DataType::U64, ByteOrder::Abcd);
    assert_sentinel(&p, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]);
}

#[test]
fn float_nan_and_infinities_are_sentinels_in_every_order() {
    // Bits 0x7FC00000 (NaN), 0x7F800000 (+inf), 0xFF800000 (-inf) as f32;
    // 0x7FF8000000000000 (NaN), 0x7FF0000000000000 (+inf) as f64.
    #[rustfmt::skip]
    let f32s: [[&[u16]; 4]; 3] = [
        [&[0x7FC0, 0x0000], &[0x0000, 0x7FC0], &[0xC07F, 0x0000], &[0x0000, 0xC07F]],
        [&[0x7F80, 0x0000], &[0x0000, 0x7F80], &[0x807F, 0x0000], &[0x0000, 0x807F]],
        [&[0xFF80, 0x0000], &[0x0000, 0xFF80], &[0x80FF, 0x0000], &[0x0000, 0x80FF]],
    ];
    #[rustfmt::skip]
    let f64s: [[&[u16]; 4]; 2] = [
        [&[0x7FF8, 0, 0, 0], &[0, 0, 0, 0x7FF8], &[0xF87F, 0, 0, 0], &[0, 0, 0, 0xF87F]],
        [&[0x7FF0, 0, 0, 0], &[0, 0, 0, 0x7FF0], &[0xF07F, 0, 0, 0], &[0, 0, 0, 0xF07F]],
    ];
    for regs in f32s {
        for (order, r) in ORDERS.iter().zip(regs) {
            assert_sentinel(&point(DataType::F32, *order), r);
        }
    }
    for regs in f64s {
        for (order, r) in ORDERS.iter().zip(regs) {
            assert_sentinel(&point(DataType::F64, *order), r);
        }
    }
}

#[test]
fn declared_sentinel() {
    let mut p = point(DataType::U16, ByteOrder::Abcd);
    p.sentinels = vec![65534.0];
    assert_sentinel(&p, &[0xFFFE]);
    assert_eq!(decode_point(&p, &[0xFFFD], 1.0, 1.0).value, 65533.0);
}

/// Acrel DTSD1352 point: holding register, U32 ABCD, ×scale, ratio.
fn acrel(address: u16, dt: DataType, scale: f64, ratio: RatioScaling) -> PointDef {
    PointDef {
        address,
        scale,
        ratio,
        kind: PointKind::Counter,
        unit: "kwh".into(),
        ..point(dt, ByteOrder::Abcd)
    }
}

#[test]
fn acrel_dtsd1352_energy_with_pt_ct() {
    // Forward active energy at 0x000A: U32 raw 12345678 = 0x00BC614E,
    // × 0.01 kWh × PT 10 × CT 40. Python: 12345678 * 0.01 * (10.0 * 40.0)
    // = 49382712.0 exactly (123456.78 kWh on the secondary side × 400).
    let p = acrel(0x000A, DataType::U32, 0.01, RatioScaling::PtCt);
    let got = decode_point(&p, &[0x00BC, 0x614E], 10.0, 40.0);
    assert_eq!(got.value, 49_382_712.0);
    assert_eq!(got.quality, Quality::GOOD);
    // The simulator's side: 49382712 / (0.01 × 400 = 4.0) = raw 12345678.
    let mut out = [0u16; 2];
    encode_point(&p, 49_382_712.0, 10.0, 40.0, &mut out);
    assert_eq!(out, [0x00BC, 0x614E]);
}

#[test]
fn acrel_dtsd1352_instantaneous_values() {
    // Voltage U16 raw 2305 (0x0901) × 0.1 V × PT 10 = 2305.0 V (Python: 2305*0.1*10.0).
    let p = acrel(0x0061, DataType::U16, 0.1, RatioScaling::Pt);
    assert_eq!(decode_point(&p, &[0x0901], 10.0, 40.0).value, 2305.0);
    // Current U16 raw 512 (0x0200) × 0.01 A × CT 40 = 204.8 A (Python: 512*0.01*40.0).
    let p = acrel(0x0064, DataType::U16, 0.01, RatioScaling::Ct);
    assert_eq!(decode_point(&p, &[0x0200], 10.0, 40.0).value, 204.8);
    // Total active power S32 raw -12345 (0xFFFF CFC7) × 0.001 kW × 400 = -4938.0 kW.
    let p = acrel(0x016A, DataType::I32, 0.001, RatioScaling::PtCt);
    assert_eq!(
        decode_point(&p, &[0xFFFF, 0xCFC7], 10.0, 40.0).value,
        -4938.0
    );
    // Power factor S16 raw -987 (0xFC25) × 0.001 = -0.987, no ratio.
    let p = acrel(0x017C, DataType::I16, 0.001, RatioScaling::None);
    assert_eq!(decode_point(&p, &[0xFC25], 10.0, 40.0).value, -0.987);
}

#[test]
fn offset_is_added_after_scaling() {
    // U16 raw 2731 × 0.1 − 273.1 = 0.0 and I16 raw −125 (0xFF83) × 0.1 − 40 = −52.5
    // (Python: 2731*0.1*1.0+(-273.1), -125*0.1*1.0+(-40.0)).
    let mut p = point(DataType::U16, ByteOrder::Abcd);
    p.scale = 0.1;
    p.offset = -273.1;
    assert_eq!(decode_point(&p, &[0x0AAB], 1.0, 1.0).value, 0.0);
    let mut p = point(DataType::I16, ByteOrder::Abcd);
    p.scale = 0.1;
    p.offset = -40.0;
    assert_eq!(decode_point(&p, &[0xFF83], 1.0, 1.0).value, -52.5);
}

#[test]
fn sdm630_import_energy_float() {
    // Eastron SDM630 import kWh: input register 0x0048, f32 ABCD. 1234.56 as
    // f32 is 0x449A51EC, which is 1234.56005859375 exactly.
    let p = PointDef {
        register: RegisterKind::Input,
        address: 0x0048,
        kind: PointKind::Counter,
        unit: "kwh".into(),
        ..point(DataType::F32, ByteOrder::Abcd)
    };
    let got = decode_point(&p, &[0x449A, 0x51EC], 1.0, 1.0);
    assert_eq!(got.value, 1_234.560_058_593_75);
    assert_eq!(got.quality, Quality::GOOD);
    let mut out = [0u16; 2];
    encode_point(&p, 1234.56, 1.0, 1.0, &mut out);
    assert_eq!(out, [0x449A, 0x51EC]);
}

/// A value of `dt`'s raw domain, exactly representable and not a built-in sentinel.
fn raw_value(dt: DataType) -> BoxedStrategy<f64> {
    const TWO_53: i64 = 1 << 53;
    match dt {
        DataType::Bool => prop_oneof![Just(0.0), Just(1.0)].boxed(),
        DataType::U16 => (0u16..=0xFFFE).prop_map(f64::from).boxed(),
        DataType::I16 => any::<i16>().prop_map(f64::from).boxed(),
        DataType::U32 => any::<u32>().prop_map(f64::from).boxed(),
        DataType::I32 => any::<i32>().prop_map(f64::from).boxed(),
        DataType::U64 => (0..=TWO_53).prop_map(|v| v as f64).boxed(),
        DataType::I64 => (-TWO_53..=TWO_53).prop_map(|v| v as f64).boxed(),
        DataType::F32 => any::<f32>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(f64::from)
            .boxed(),
        DataType::F64 => any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .boxed(),
    }
    .prop_filter("not a built-in sentinel", move |v| {
        let bits = x_bits(dt, *v);
        !matches!(
            (dt, bits),
            (DataType::U16, Some(0xFFFF))
                | (DataType::I16, Some(0x8000))
                | (DataType::U32, Some(0xFFFF_FFFF))
                | (DataType::I32, Some(0x8000_0000))
        )
    })
    .boxed()
}

fn type_and_value() -> impl Strategy<Value = (DataType, f64)> {
    prop_oneof![
        Just(DataType::Bool),
        Just(DataType::U16),
        Just(DataType::I16),
        Just(DataType::U32),
        Just(DataType::I32),
        Just(DataType::U64),
        Just(DataType::I64),
        Just(DataType::F32),
        Just(DataType::F64),
    ]
    .prop_flat_map(|dt| (Just(dt), raw_value(dt)))
}

proptest! {
    #[test]
    fn decode_inverts_encode(
        (dt, x) in type_and_value(),
        order in prop_oneof![
            Just(ByteOrder::Abcd), Just(ByteOrder::Cdab),
            Just(ByteOrder::Badc), Just(ByteOrder::Dcba),
        ],
    ) {
        let mut regs = [0u16; 4];
        encode_raw(x, dt, order, &mut regs);
        prop_assert_eq!(decode_raw(&regs, dt, order).value.to_bits(), x.to_bits());

        let p = point(dt, order);
        let mut regs = [0u16; 4];
        encode_point(&p, x, 1.0, 1.0, &mut regs);
        let got = decode_point(&p, &regs, 1.0, 1.0);
        prop_assert_eq!(got.quality, Quality::GOOD);
        // `==`, not bits: adding the offset (+0.0) turns -0.0 into +0.0.
        prop_assert_eq!(got.value, x);
    }
}

/// The register bits of an integer value of `dt`, for sentinel filtering.
fn x_bits(dt: DataType, x: f64) -> Option<u64> {
    match dt {
        DataType::U16 | DataType::I16 => Some((x as i64 as u64) & 0xFFFF),
        DataType::U32 | DataType::I32 => Some((x as i64 as u64) & 0xFFFF_FFFF),
        _ => None,
    }
}
