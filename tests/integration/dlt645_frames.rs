//! DL/T 645-2007 frames (`emgate::sources::dlt645::frame`) and BCD formats
//! (`emgate::profiles::dlt645::Format`) against vectors worked out by hand
//! from the standard's rules, not produced by our encoder; then adversarial
//! frames and property tests of the answer scanner.
//!
//! The rules (domain.md §5.1): a frame is `68 A0..A5 68 C L DATA CS 16`;
//! the address is the nameplate's 12 BCD digits, lowest byte first; every
//! DATA byte goes on the wire +0x33; a data identifier written DI3 DI2 DI1
//! DI0 goes DI0 first; values are BCD, lowest byte first, the top bit of the
//! top byte a sign in signed formats; CS is the byte sum, modulo 256, from
//! the first 0x68 to the byte before CS. Every vector below spells out each
//! byte, the +0x33 and the checksum sum, in decimal, so it can be checked
//! with pencil and paper. Two recur:
//! * meter `123456789012` is `12 90 78 56 34 12`, byte sum 18 + 144 + 120 +
//!   86 + 52 + 18 = 438;
//! * an answer of that meter starts `68 A 68 91`: 104 + 438 + 104 + 145 =
//!   791 before L.

use std::ops::Range;

use emgate::model::Detail;
use emgate::sources::dlt645::PREAMBLE;
use emgate::sources::dlt645::frame::{
    Address, Answer, Di, Format, Question, Scan, encode, encode_read, encode_read_address,
    error_detail, scan_address, scan_read, value_bytes,
};
use proptest::prelude::*;

/// Meter `123456789012` on the wire.
const M1: [u8; 6] = [0x12, 0x90, 0x78, 0x56, 0x34, 0x12];
/// Meter `000000001234` on the wire.
const M2: [u8; 6] = [0x34, 0x12, 0x00, 0x00, 0x00, 0x00];

fn address(nameplate: &str) -> Address {
    Address::from_nameplate(nameplate).expect("a nameplate address")
}

fn di(text: &str) -> Di {
    Di::parse(text).expect("a data identifier")
}

fn format(text: &str, signed: bool) -> Format {
    Format::parse(text, signed).expect("a format")
}

fn question(nameplate: &str, id: &str, value_bytes: u8) -> Question {
    Question {
        address: address(nameplate),
        di: di(id),
        value_bytes,
    }
}

/// Scans `buf` for `q`; asserts a value answer in the frame at `frame`
/// and returns its bytes after −0x33.
fn value_at(buf: &[u8], q: &Question, frame: Range<usize>) -> Vec<u8> {
    let scan = scan_read(buf, q);
    let Scan::Found {
        answer: Answer::Value(range),
        frame: found,
    } = scan
    else {
        panic!("no value answer in {buf:02X?}: {scan:?}");
    };
    assert_eq!(found, frame, "frame of {buf:02X?}");
    assert_eq!(
        range,
        frame.start + 14..frame.end - 2,
        "value of {buf:02X?}"
    );
    let mut out = Vec::new();
    value_bytes(buf, range, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Addresses and data identifiers

#[test]
fn nameplate_addresses_go_lowest_byte_first() {
    // 123456789012 in pairs: 12 34 56 78 90 12; sent from the last pair.
    assert_eq!(address("123456789012").0, M1);
    // 000000001234: 00 00 00 00 12 34; the leading zeros are the top bytes.
    assert_eq!(address("000000001234").0, M2);
    assert_eq!(Address(M1).nameplate(), "123456789012");
    assert_eq!(Address(M2).nameplate(), "000000001234");
    assert_eq!(Address(M2).to_string(), "000000001234");
    // domain.md's own example: 102030405060 -> 60 50 40 30 20 10.
    assert_eq!(
        address("102030405060").0,
        [0x60, 0x50, 0x40, 0x30, 0x20, 0x10]
    );
    assert_eq!(Address::WILDCARD.0, [0xAA; 6]);
    assert_eq!(Address::WILDCARD.nameplate(), "AAAAAAAAAAAA");
    for bad in [
        "1234",
        "12345678901",
        "1234567890123",
        "12345678901a",
        " 23456789012",
    ] {
        assert_eq!(Address::from_nameplate(bad), None, "{bad:?}");
    }
}

#[test]
fn data_identifiers_go_di0_first() {
    // Written DI3 DI2 DI1 DI0 as in the standard's tables.
    assert_eq!(di("00010000").wire(), [0x00, 0x00, 0x01, 0x00]);
    assert_eq!(di("02010100").wire(), [0x00, 0x01, 0x01, 0x02]);
    assert_eq!(di("02800002").wire(), [0x02, 0x00, 0x80, 0x02]);
    assert_eq!(di("0280000A").to_string(), "0280000A");
    for bad in ["0001000", "000100000", "0001000G", ""] {
        assert_eq!(Di::parse(bad), None, "{bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Requests

#[test]
fn read_request_with_four_wake_up_bytes() {
    // Meter 000000001234, DI 02010100 (phase A voltage):
    //   FE FE FE FE                 wake-up (PREAMBLE = 4)
    //   68                          104
    //   34 12 00 00 00 00           52 + 18 = 70
    //   68 11 04                    104 + 17 + 4 = 125
    //   DI 00 01 01 02 + 0x33 =
    //      33 34 34 35              51 + 52 + 52 + 53 = 208
    //   CS = 104 + 70 + 125 + 208 = 507; 507 − 256 = 251 = 0xFB
    //   16
    let mut out = Vec::new();
    encode_read(&mut out, PREAMBLE, address("000000001234"), di("02010100"));
    assert_eq!(
        out,
        [
            0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0x34, 0x12, 0x00, 0x00, 0x00, 0x00, 0x68, 0x11, 0x04,
            0x33, 0x34, 0x34, 0x35, 0xFB, 0x16
        ]
    );
    assert_eq!(PREAMBLE, 4);
}

#[test]
fn read_request_of_the_reference_example() {
    // domain.md §5.1's checked request, without wake-up bytes:
    // 68 29 61 30 00 16 00 68 11 04 34 34 37 38 8C 16.
    // Address 29 61 30 00 16 00 is nameplate 001600306129; the data
    // 34 34 37 38 − 0x33 = 01 01 04 05 is DI0..DI3, i.e. DI "05040101".
    // CS = 104 + (41 + 97 + 48 + 0 + 22 + 0) + 104 + 17 + 4
    //      + (52 + 52 + 55 + 56) = 652; 652 − 512 = 140 = 0x8C.
    let mut out = Vec::new();
    encode_read(&mut out, 0, address("001600306129"), di("05040101"));
    assert_eq!(
        out,
        [
            0x68, 0x29, 0x61, 0x30, 0x00, 0x16, 0x00, 0x68, 0x11, 0x04, 0x34, 0x34, 0x37, 0x38,
            0x8C, 0x16
        ]
    );
}

#[test]
fn read_address_request_to_the_wildcard() {
    // FE×4, 68, AA×6, 68, 13 (read address), 00 (no data):
    // CS = 104 + 6 × 170 + 104 + 19 + 0 = 1247; 1247 − 1024 = 223 = 0xDF.
    let mut out = Vec::new();
    encode_read_address(&mut out, 4);
    assert_eq!(
        out,
        [
            0xFE, 0xFE, 0xFE, 0xFE, 0x68, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0x68, 0x13, 0x00,
            0xDF, 0x16
        ]
    );
}

#[test]
fn encode_appends_and_adds_0x33_to_data() {
    // An error answer written with the generic encoder: data 02 → 35;
    // CS = 104 + 438 + 104 + 209 (D1) + 1 + 53 = 909; 909 − 768 = 141 = 0x8D.
    let mut out = vec![0x00];
    encode(&mut out, 0, Address(M1), 0xD1, &[0x02]);
    assert_eq!(
        out,
        [
            0x00, 0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0xD1, 0x01, 0x35, 0x8D, 0x16
        ]
    );
}

// ---------------------------------------------------------------------------
// Normal answers, one per BCD format

/// Forward active energy 123456.78 kWh from meter 123456789012 (XXXXXX.XX):
///   68 12 90 78 56 34 12 68 91     791
///   08                             L = 4 (DI) + 4 (value)
///   DI 00 00 01 00 + 0x33 =
///      33 33 34 33                 51 + 51 + 52 + 51 = 205
///   12345678 lowest byte first = 78 56 34 12, + 0x33 =
///      AB 89 67 45                 171 + 137 + 103 + 69 = 480
///   CS = 791 + 8 + 205 + 480 = 1484; 1484 − 1280 = 204 = 0xCC
///   16
const ENERGY: [u8; 20] = [
    0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x08, 0x33, 0x33, 0x34, 0x33, 0xAB, 0x89,
    0x67, 0x45, 0xCC, 0x16,
];

#[test]
fn energy_answer_with_zero_two_and_four_wake_up_bytes() {
    let q = question("123456789012", "00010000", 4);
    let kwh = format("XXXXXX.XX", false);
    for fe in [0usize, 2, 4] {
        let mut buf = vec![0xFE; fe];
        buf.extend_from_slice(&ENERGY);
        let v = value_at(&buf, &q, fe..fe + 20);
        assert_eq!(v, [0x78, 0x56, 0x34, 0x12], "{fe} FE");
        assert_eq!(kwh.decode(&v), Some(123_456.78), "{fe} FE");
    }
    assert_eq!(kwh.encode(123_456.78), Some(vec![0x78, 0x56, 0x34, 0x12]));
    // The largest reading, and one count more does not fit (the wrap).
    assert_eq!(kwh.decode(&[0x99; 4]), Some(999_999.99));
    assert_eq!(kwh.encode(999_999.99), Some(vec![0x99; 4]));
    assert_eq!(kwh.encode(1_000_000.0), None);
    assert_eq!(kwh.encode(-0.01), None, "unsigned");
    assert_eq!(
        (kwh.bytes, kwh.decimals, kwh.signed),
        (4, 2, false),
        "XXXXXX.XX"
    );
}

#[test]
fn follow_up_answer_0xb1_is_a_value_too() {
    // ENERGY with control B1 (177) instead of 91 (145): CS 204 + 32 = 236 = 0xEC.
    let mut buf = ENERGY;
    buf[8] = 0xB1;
    buf[18] = 0xEC;
    let v = value_at(&buf, &question("123456789012", "00010000", 4), 0..20);
    assert_eq!(v, [0x78, 0x56, 0x34, 0x12]);
}

#[test]
fn voltage_xxx_x() {
    // 220.5 V, DI 02010100 (phase A voltage):
    //   791; L = 06
    //   DI 00 01 01 02 + 0x33 = 33 34 34 35      208
    //   2205 → 05 22, + 0x33 = 38 55             56 + 85 = 141
    //   CS = 791 + 6 + 208 + 141 = 1146; 1146 − 1024 = 122 = 0x7A
    let buf = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x06, 0x33, 0x34, 0x34, 0x35, 0x38,
        0x55, 0x7A, 0x16,
    ];
    let v = value_at(&buf, &question("123456789012", "02010100", 2), 0..18);
    assert_eq!(v, [0x05, 0x22]);
    let volts = format("XXX.X", false);
    assert_eq!((volts.bytes, volts.decimals), (2, 1));
    assert_eq!(volts.decode(&v), Some(220.5));
    assert_eq!(volts.encode(220.5), Some(vec![0x05, 0x22]));
    assert_eq!(
        volts.encode(220.54),
        Some(vec![0x05, 0x22]),
        "rounded to 0.1"
    );
    assert_eq!(
        volts.encode(220.56),
        Some(vec![0x06, 0x22]),
        "rounded to 0.1"
    );
}

#[test]
fn current_xxx_xxx_signed() {
    // −12.345 A, DI 02020100 (phase A current):
    //   791; L = 07
    //   DI 00 01 02 02 + 0x33 = 33 34 35 35      51 + 52 + 53 + 53 = 209
    //   012345 → 45 23 01; sign bit on the top byte: 45 23 81;
    //   + 0x33 = 78 56 B4                        120 + 86 + 180 = 386
    //   CS = 791 + 7 + 209 + 386 = 1393; 1393 − 1280 = 113 = 0x71
    let buf = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x07, 0x33, 0x34, 0x35, 0x35, 0x78,
        0x56, 0xB4, 0x71, 0x16,
    ];
    let v = value_at(&buf, &question("123456789012", "02020100", 3), 0..19);
    assert_eq!(v, [0x45, 0x23, 0x81]);
    let amps = format("XXX.XXX", true);
    assert_eq!((amps.bytes, amps.decimals, amps.signed), (3, 3, true));
    assert_eq!(amps.decode(&v), Some(-12.345));
    assert_eq!(amps.encode(-12.345), Some(vec![0x45, 0x23, 0x81]));
    assert_eq!(amps.decode(&[0x00, 0x15, 0x00]), Some(1.5));
    // Read unsigned, the sign bit is a digit 8: 812345 → 812.345.
    assert_eq!(format("XXX.XXX", false).decode(&v), Some(812.345));
    // Signed, the top digit has only 3 bits: 799.999 is the largest.
    assert_eq!(amps.encode(799.999), Some(vec![0x99, 0x99, 0x79]));
    assert_eq!(amps.encode(800.0), None);
}

#[test]
fn power_xx_xxxx_signed() {
    // −37.5 kW, DI 02030000 (total active power):
    //   791; L = 07
    //   DI 00 00 03 02 + 0x33 = 33 33 36 35      51 + 51 + 54 + 53 = 209
    //   375000 → 00 50 37; sign: 00 50 B7; + 0x33 = 33 83 EA
    //                                            51 + 131 + 234 = 416
    //   CS = 791 + 7 + 209 + 416 = 1423; 1423 − 1280 = 143 = 0x8F
    let buf = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x07, 0x33, 0x33, 0x36, 0x35, 0x33,
        0x83, 0xEA, 0x8F, 0x16,
    ];
    let v = value_at(&buf, &question("123456789012", "02030000", 3), 0..19);
    assert_eq!(v, [0x00, 0x50, 0xB7]);
    let kw = format("XX.XXXX", true);
    assert_eq!((kw.bytes, kw.decimals), (3, 4));
    assert_eq!(kw.decode(&v), Some(-37.5));
    assert_eq!(kw.encode(-37.5), Some(vec![0x00, 0x50, 0xB7]));
    assert_eq!(kw.decode(&[0x56, 0x34, 0x12]), Some(12.3456));
}

#[test]
fn power_factor_x_xxx_signed() {
    // −0.866, DI 02060000 (total power factor):
    //   791; L = 06
    //   DI 00 00 06 02 + 0x33 = 33 33 39 35      51 + 51 + 57 + 53 = 212
    //   0866 → 66 08; sign: 66 88; + 0x33 = 99 BB     153 + 187 = 340
    //   CS = 791 + 6 + 212 + 340 = 1349; 1349 − 1280 = 69 = 0x45
    let buf = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x06, 0x33, 0x33, 0x39, 0x35, 0x99,
        0xBB, 0x45, 0x16,
    ];
    let v = value_at(&buf, &question("123456789012", "02060000", 2), 0..18);
    assert_eq!(v, [0x66, 0x88]);
    let pf = format("X.XXX", true);
    assert_eq!((pf.bytes, pf.decimals), (2, 3));
    assert_eq!(pf.decode(&v), Some(-0.866));
    assert_eq!(pf.encode(-0.866), Some(vec![0x66, 0x88]));
    assert_eq!(pf.decode(&[0x00, 0x10]), Some(1.0));
}

#[test]
fn frequency_xx_xx() {
    // 49.98 Hz, DI 02800002 (grid frequency):
    //   791; L = 06
    //   DI 02 00 80 02 + 0x33 = 35 33 B3 35      53 + 51 + 179 + 53 = 336
    //   4998 → 98 49; + 0x33 = CB 7C             203 + 124 = 327
    //   CS = 791 + 6 + 336 + 327 = 1460; 1460 − 1280 = 180 = 0xB4
    let buf = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x06, 0x35, 0x33, 0xB3, 0x35, 0xCB,
        0x7C, 0xB4, 0x16,
    ];
    let v = value_at(&buf, &question("123456789012", "02800002", 2), 0..18);
    assert_eq!(v, [0x98, 0x49]);
    let hz = format("XX.XX", false);
    assert_eq!((hz.bytes, hz.decimals), (2, 2));
    assert_eq!(hz.decode(&v), Some(49.98));
    assert_eq!(hz.encode(49.98), Some(vec![0x98, 0x49]));
}

#[test]
fn formats_that_are_not_formats() {
    for bad in [
        "", ".", "X", "XX.X", "XXX", "X.XX.X", ".XX", "XX.", "XXYY", "9999", "X X",
    ] {
        assert_eq!(Format::parse(bad, false), None, "{bad:?}");
    }
    assert_eq!(
        Format::parse("XXXXXXXX", false).map(|f| (f.bytes, f.decimals)),
        Some((4, 0))
    );
    assert_eq!(
        Format::parse(&"X".repeat(18), false),
        None,
        "at most 16 digits"
    );
}

// ---------------------------------------------------------------------------
// Error answers

/// The error answer of meter 123456789012 with error byte `e`: `68 A 68 D1
/// 01 (e + 0x33) CS 16`, CS = 104 + 438 + 104 + 209 + 1 + (e + 51) =
/// (907 + e) mod 256 = (139 + e) mod 256 (907 − 768 = 139).
fn error_frame(e: u8, cs: u8) -> [u8; 13] {
    [
        0x68,
        0x12,
        0x90,
        0x78,
        0x56,
        0x34,
        0x12,
        0x68,
        0xD1,
        0x01,
        e.wrapping_add(0x33),
        cs,
        0x16,
    ]
}

#[test]
fn error_answers_and_their_details() {
    // (error byte, CS by hand = 139 + e, detail): one bit each, bit 0 first.
    let cases = [
        (0x01, 0x8C, Detail::DLT645_OTHER, "dlt645:other"), // 139 + 1 = 140
        (0x02, 0x8D, Detail::DLT645_NO_DATA, "dlt645:no_data"), // 141
        (0x04, 0x8F, Detail::DLT645_PASSWORD, "dlt645:password"), // 143
        (0x08, 0x93, Detail::DLT645_BAUD, "dlt645:baud_rate"), // 147
        (0x10, 0x9B, Detail::DLT645_YEAR_ZONES, "dlt645:year_zones"), // 155
        (0x20, 0xAB, Detail::DLT645_DAY_PERIODS, "dlt645:day_periods"), // 171
        (0x40, 0xCB, Detail::DLT645_TARIFFS, "dlt645:tariffs"), // 203
        // No bit, the reserved bit 7: "other". Two bits: the lowest counts.
        (0x00, 0x8B, Detail::DLT645_OTHER, "dlt645:other"), // 139
        (0x80, 0x0B, Detail::DLT645_OTHER, "dlt645:other"), // 267 − 256 = 11
        (0x06, 0x91, Detail::DLT645_NO_DATA, "dlt645:no_data"), // 145
    ];
    let q = question("123456789012", "00010000", 4);
    for (e, cs, detail, word) in cases {
        let mut buf = vec![0xFE, 0xFE];
        buf.extend_from_slice(&error_frame(e, cs));
        assert_eq!(
            scan_read(&buf, &q),
            Scan::Found {
                answer: Answer::Error(e),
                frame: 2..15,
            },
            "error byte {e:#04X}"
        );
        assert_eq!(error_detail(e), detail, "error byte {e:#04X}");
        assert_eq!(detail.name(), Some(word));
    }
    // An error answer carries no DI: it answers whichever read was asked.
    let q = question("123456789012", "02800002", 2);
    assert!(matches!(
        scan_read(&error_frame(0x02, 0x8D), &q),
        Scan::Found {
            answer: Answer::Error(2),
            ..
        }
    ));
}

// ---------------------------------------------------------------------------
// Read address

/// The read-address answer of meter 000000001234:
///   68 34 12 00 00 00 00 68        104 + 70 + 104 = 278
///   93 06                          147 + 6 = 153
///   address 34 12 00 00 00 00 + 0x33 =
///      67 45 33 33 33 33           103 + 69 + 4 × 51 = 376
///   CS = 278 + 153 + 376 = 807; 807 − 768 = 39 = 0x27
const ADDRESS_ANSWER: [u8; 18] = [
    0x68, 0x34, 0x12, 0x00, 0x00, 0x00, 0x00, 0x68, 0x93, 0x06, 0x67, 0x45, 0x33, 0x33, 0x33, 0x33,
    0x27, 0x16,
];

#[test]
fn read_address_answer() {
    assert_eq!(
        scan_address(&ADDRESS_ANSWER),
        Some((address("000000001234"), 18))
    );
    let mut buf = vec![0xFE, 0xFE];
    buf.extend_from_slice(&ADDRESS_ANSWER);
    buf.extend_from_slice(&[0x00, 0x01]);
    let (a, end) = scan_address(&buf).expect("found");
    assert_eq!((a.nameplate().as_str(), end), ("000000001234", 20));
    // Our own request echoed by an RS-485 adapter is not an answer.
    let mut echo = Vec::new();
    encode_read_address(&mut echo, 4);
    assert_eq!(scan_address(&echo), None);
    echo.extend_from_slice(&ADDRESS_ANSWER);
    assert_eq!(
        scan_address(&echo),
        Some((address("000000001234"), 16 + 18))
    );
    // Bad checksum, cut short, a read answer: none is an address.
    let mut bad = ADDRESS_ANSWER;
    bad[16] = 0x28;
    assert_eq!(scan_address(&bad), None);
    assert_eq!(scan_address(&ADDRESS_ANSWER[..17]), None);
    assert_eq!(scan_address(&ENERGY), None);
}

// ---------------------------------------------------------------------------
// Adversarial frames: never a value

#[test]
fn answer_of_another_meter_is_wrong_address() {
    // ENERGY from meter 000000001234: address sum 52 + 18 = 70 instead of
    // 438: CS = 104 + 70 + 104 + 145 + 8 + 205 + 480 = 1116;
    // 1116 − 1024 = 92 = 0x5C.
    let other = [
        0x68, 0x34, 0x12, 0x00, 0x00, 0x00, 0x00, 0x68, 0x91, 0x08, 0x33, 0x33, 0x34, 0x33, 0xAB,
        0x89, 0x67, 0x45, 0x5C, 0x16,
    ];
    let q = question("123456789012", "00010000", 4);
    assert_eq!(
        scan_read(&other, &q),
        Scan::Pending {
            rejected: Detail::WRONG_ADDRESS
        }
    );
    // The same frame is the answer when meter 000000001234 was asked.
    let v = value_at(&other, &question("000000001234", "00010000", 4), 0..20);
    assert_eq!(v, [0x78, 0x56, 0x34, 0x12]);
    // Behind the other meter's frame, ours is found.
    let mut buf = other.to_vec();
    buf.extend_from_slice(&[0xFE, 0xFE]);
    buf.extend_from_slice(&ENERGY);
    assert_eq!(value_at(&buf, &q, 22..42), [0x78, 0x56, 0x34, 0x12]);
}

#[test]
fn answer_for_another_di_is_wrong_di() {
    // ENERGY echoing DI 00020000 (reverse energy): 33 33 35 33, one more
    // than 33 33 34 33: CS 204 + 1 = 205 = 0xCD.
    let mut buf = ENERGY;
    buf[12] = 0x35;
    buf[18] = 0xCD;
    let q = question("123456789012", "00010000", 4);
    assert_eq!(
        scan_read(&buf, &q),
        Scan::Pending {
            rejected: Detail::WRONG_DI
        }
    );
    let v = value_at(&buf, &question("123456789012", "00020000", 4), 0..20);
    assert_eq!(v, [0x78, 0x56, 0x34, 0x12]);
}

#[test]
fn answer_with_another_length_is_wrong_count() {
    // The voltage answer (2 value bytes) read as XXXXXX.XX (4 bytes).
    let voltage = [
        0x68, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x68, 0x91, 0x06, 0x33, 0x34, 0x34, 0x35, 0x38,
        0x55, 0x7A, 0x16,
    ];
    let q = question("123456789012", "02010100", 4);
    assert_eq!(
        scan_read(&voltage, &q),
        Scan::Pending {
            rejected: Detail::WRONG_COUNT
        }
    );
}

#[test]
fn other_control_codes_are_wrong_function() {
    // ENERGY as a read request's echo would carry 11; as a read-address
    // answer 93. CS changes by the control's difference: 91 → 11 is −128,
    // 204 − 128 = 76 = 0x4C.
    let mut buf = ENERGY;
    buf[8] = 0x11;
    buf[18] = 0x4C;
    let q = question("123456789012", "00010000", 4);
    assert_eq!(
        scan_read(&buf, &q),
        Scan::Pending {
            rejected: Detail::WRONG_FUNCTION
        }
    );
    // Our own request echoed back, then the answer: the answer.
    let mut echo = Vec::new();
    encode_read(&mut echo, 4, Address(M1), di("00010000"));
    echo.extend_from_slice(&ENERGY);
    assert_eq!(value_at(&echo, &q, 20..40), [0x78, 0x56, 0x34, 0x12]);
}

#[test]
fn bad_checksum_or_end_byte() {
    let q = question("123456789012", "00010000", 4);
    let mut bad_cs = ENERGY;
    bad_cs[18] = 0xCD;
    let mut bad_end = ENERGY;
    bad_end[19] = 0x17;
    let mut flipped = ENERGY;
    flipped[15] ^= 0x01; // a value byte: the sum no longer fits
    for buf in [bad_cs, bad_end, flipped] {
        assert_eq!(
            scan_read(&buf, &q),
            Scan::Pending {
                rejected: Detail::BAD_CHECKSUM
            },
            "{buf:02X?}"
        );
    }
}

#[test]
fn truncated_answers_are_pending_without_a_detail() {
    let q = question("123456789012", "00010000", 4);
    let mut buf = vec![0xFE; 4];
    buf.extend_from_slice(&ENERGY);
    for n in 0..buf.len() {
        assert_eq!(
            scan_read(&buf[..n], &q),
            Scan::Pending {
                rejected: Detail::NONE
            },
            "cut after {n} bytes"
        );
    }
}

#[test]
fn non_bcd_digits_are_no_value() {
    // ENERGY with the lowest value byte 7A (A is no decimal digit):
    // on the wire AD instead of AB, CS 204 + 2 = 206 = 0xCE. The frame is
    // the answer; its digits are refused by the format (bad_bcd).
    let mut buf = ENERGY;
    buf[14] = 0xAD;
    buf[18] = 0xCE;
    let v = value_at(&buf, &question("123456789012", "00010000", 4), 0..20);
    assert_eq!(v, [0x7A, 0x56, 0x34, 0x12]);
    assert_eq!(format("XXXXXX.XX", false).decode(&v), None);
    // Every format refuses a nibble above 9, in any byte, and FF (what a
    // meter without the quantity may send).
    for (text, signed) in [
        ("XXXXXX.XX", false),
        ("XXX.X", false),
        ("XXX.XXX", true),
        ("XX.XXXX", true),
        ("X.XXX", true),
        ("XX.XX", false),
    ] {
        let f = format(text, signed);
        let n = usize::from(f.bytes);
        assert_eq!(f.decode(&vec![0xFF; n]), None, "{text}");
        for i in 0..n {
            // A0 in a signed format's top byte is the sign and a 2.
            let top_of_signed = signed && i == n - 1;
            for bad in [0x0A, 0xA0, 0x3F, 0xFA] {
                if bad == 0xA0 && top_of_signed {
                    continue;
                }
                let mut b = vec![0x11; n];
                b[i] = bad;
                assert_eq!(f.decode(&b), None, "{text} byte {i} = {bad:02X}");
            }
        }
        // A wrong length is no value either.
        assert_eq!(f.decode(&vec![0x11; n + 1]), None, "{text}");
        assert_eq!(f.decode(&vec![0x11; n - 1]), None, "{text}");
    }
    // Signed: the sign bit is masked before the digit check (F9 → 79),
    // but a masked nibble above 9 is still refused (FA → 7A).
    let kw = format("XX.XXXX", true);
    assert_eq!(kw.decode(&[0x00, 0x00, 0xF9]), Some(-79.0));
    assert_eq!(kw.decode(&[0x00, 0x00, 0xFA]), None);
}

#[test]
fn wake_up_bytes_and_noise_without_a_frame() {
    let q = question("123456789012", "00010000", 4);
    let pending = Scan::Pending {
        rejected: Detail::NONE,
    };
    assert_eq!(scan_read(&[0xFE; 4], &q), pending);
    assert_eq!(scan_read(&[], &q), pending);
    assert_eq!(scan_address(&[0xFE; 4]), None);
    let noise = [
        0x3D, 0x00, 0xFF, 0x16, 0x68, 0x91, 0x07, 0xE2, 0x68, 0x5A, 0x16, 0x16, 0x00, 0xC3, 0x9E,
        0x68, 0x01,
    ];
    assert_eq!(scan_read(&noise, &q), pending);
    // Noise before the answer is skipped.
    let mut buf = noise.to_vec();
    buf.extend_from_slice(&ENERGY);
    assert_eq!(value_at(&buf, &q, 17..37), [0x78, 0x56, 0x34, 0x12]);
}

/// A stray 0x68 seven bytes before the answer makes `68 ?? ?? ?? ?? ?? ??
/// 68` with the answer's own first byte, and takes the answer's second
/// address byte (0x90) as its length: a "frame" of 12 + 144 bytes that never
/// completes. It is no frame of the awaited meter, so it must not hide the
/// answer behind it (found by this file; fixed in `scan_read`).
#[test]
fn a_stray_start_byte_does_not_hide_the_answer() {
    let q = question("123456789012", "00010000", 4);
    let mut buf = vec![0x68, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    buf.extend_from_slice(&ENERGY);
    assert_eq!(value_at(&buf, &q, 7..27), [0x78, 0x56, 0x34, 0x12]);
    // Garbage shaped like a long frame header of another meter, too.
    let mut buf = vec![0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x91, 0xC8];
    buf.extend_from_slice(&ENERGY);
    assert_eq!(value_at(&buf, &q, 10..30), [0x78, 0x56, 0x34, 0x12]);
    // But the awaited meter's answer that is still arriving is waited for.
    assert_eq!(
        scan_read(&ENERGY[..19], &q),
        Scan::Pending {
            rejected: Detail::NONE
        }
    );
}

// ---------------------------------------------------------------------------
// Property tests

/// Our own checksum, independent of the crate's: the byte sum mod 256.
fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// A frame built here, independently of the crate's encoder.
fn frame_bytes(address: [u8; 6], control: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x68];
    f.extend_from_slice(&address);
    f.extend_from_slice(&[0x68, control, u8::try_from(data.len()).expect("short")]);
    f.extend(data.iter().map(|b| b.wrapping_add(0x33)));
    f.push(sum(&f));
    f.push(0x16);
    f
}

/// Meters of the property tests: few, so answers of other meters come often.
const METERS: [[u8; 6]; 3] = [M1, M2, [0x99; 6]];
/// Data identifiers of the property tests.
const DIS: [u32; 4] = [0x0001_0000, 0x0002_0000, 0x0201_0100, 0x0280_0002];

fn read_question() -> impl Strategy<Value = Question> {
    (0..METERS.len(), 0..DIS.len(), 1u8..=8).prop_map(|(m, d, n)| Question {
        address: Address(METERS[m]),
        di: Di(DIS[d]),
        value_bytes: n,
    })
}

/// One piece of received bytes.
#[derive(Debug, Clone)]
enum Piece {
    /// Random bytes, biased towards 68, 16, FE and 33.
    Noise(Vec<u8>),
    /// Wake-up bytes.
    WakeUp(usize),
    /// A frame: meter index, control, DI index, value length, value bytes.
    Frame {
        meter: usize,
        control: u8,
        di: usize,
        len: usize,
        value: Vec<u8>,
    },
    /// An error answer: meter index, error byte.
    Error { meter: usize, code: u8 },
}

fn biased_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => any::<u8>(),
        1 => Just(0x68u8),
        1 => Just(0x16u8),
        1 => Just(0xFEu8),
        1 => Just(0x33u8),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => proptest::collection::vec(biased_byte(), 0..24).prop_map(Piece::Noise),
        1 => (0usize..=4).prop_map(Piece::WakeUp),
        4 => (
            0..METERS.len(),
            prop_oneof![4 => Just(0x91u8), 2 => Just(0xB1u8), 1 => Just(0x11u8), 1 => Just(0x93u8), 1 => any::<u8>()],
            0..DIS.len(),
            0usize..=9,
            proptest::collection::vec(any::<u8>(), 9),
        )
            .prop_map(|(meter, control, di, len, value)| Piece::Frame { meter, control, di, len, value }),
        2 => (0..METERS.len(), any::<u8>()).prop_map(|(meter, code)| Piece::Error { meter, code }),
    ]
}

/// How a piece's frame is spoiled: kept, cut after `n` bytes, or byte `i` xored.
#[derive(Debug, Clone, Copy)]
enum Spoil {
    Keep,
    Cut(usize),
    Flip(usize, u8),
}

fn spoil() -> impl Strategy<Value = Spoil> {
    prop_oneof![
        4 => Just(Spoil::Keep),
        1 => (0usize..30).prop_map(Spoil::Cut),
        1 => (0usize..30, 1u8..=255).prop_map(|(i, x)| Spoil::Flip(i, x)),
    ]
}

fn bytes_of(pieces: &[(Piece, Spoil)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, how) in pieces {
        let mut f = match p {
            Piece::Noise(b) => b.clone(),
            Piece::WakeUp(n) => vec![0xFE; *n],
            Piece::Frame {
                meter,
                control,
                di,
                len,
                value,
            } => {
                let mut data = DIS[*di].to_le_bytes().to_vec();
                data.extend_from_slice(&value[..*len]);
                frame_bytes(METERS[*meter], *control, &data)
            }
            Piece::Error { meter, code } => frame_bytes(METERS[*meter], 0xD1, &[*code]),
        };
        match *how {
            Spoil::Keep => {}
            Spoil::Cut(n) => f.truncate(n.min(f.len())),
            Spoil::Flip(i, x) => {
                if !f.is_empty() {
                    let n = f.len();
                    f[i % n] ^= x;
                }
            }
        }
        out.extend(f);
    }
    out
}

/// Re-checks a `Found` on its own: the frame is whole, its checksum and end
/// byte fit, it comes from the asked meter, and it is either a value answer
/// (91 or B1) echoing the asked DI with the asked number of value bytes, or
/// an error answer (D1) with one byte.
fn check_found(buf: &[u8], q: &Question, scan: &Scan) -> Result<(), TestCaseError> {
    let Scan::Found { answer, frame } = scan else {
        return Ok(());
    };
    prop_assert!(
        frame.start < frame.end && frame.end <= buf.len(),
        "{frame:?}"
    );
    let f = &buf[frame.clone()];
    prop_assert!(f.len() >= 12, "{f:02X?}");
    prop_assert_eq!(f[0], 0x68);
    prop_assert_eq!(f[7], 0x68);
    prop_assert_eq!(&f[1..7], &q.address.0[..], "address of {:02X?}", f);
    let l = usize::from(f[9]);
    prop_assert_eq!(f.len(), 12 + l, "length of {:02X?}", f);
    prop_assert_eq!(sum(&f[..f.len() - 2]), f[f.len() - 2], "CS of {:02X?}", f);
    prop_assert_eq!(f[f.len() - 1], 0x16);
    let data: Vec<u8> = f[10..10 + l].iter().map(|b| b.wrapping_sub(0x33)).collect();
    match answer {
        Answer::Value(range) => {
            prop_assert!(f[8] == 0x91 || f[8] == 0xB1, "control of {:02X?}", f);
            prop_assert_eq!(l, 4 + usize::from(q.value_bytes), "L of {:02X?}", f);
            prop_assert_eq!(&data[..4], &q.di.0.to_le_bytes()[..], "DI of {:02X?}", f);
            prop_assert_eq!(range.clone(), frame.start + 14..frame.end - 2);
            let mut v = Vec::new();
            value_bytes(buf, range.clone(), &mut v);
            prop_assert_eq!(&v[..], &data[4..]);
        }
        Answer::Error(code) => {
            prop_assert_eq!(f[8], 0xD1, "control of {:02X?}", f);
            prop_assert_eq!(l, 1);
            prop_assert_eq!(*code, data[0]);
        }
    }
    Ok(())
}

/// True when something before `at` may rightly hide an answer that starts
/// at `at`: a whole frame with a fitting checksum and end byte, or the
/// start of an answer of the asked meter still arriving.
fn frame_starts_before(buf: &[u8], q: &Question, at: usize) -> bool {
    (0..at.min(buf.len())).any(|i| {
        let rest = &buf[i..];
        if rest.len() < 10 || rest[0] != 0x68 || rest[7] != 0x68 {
            return false;
        }
        let len = 12 + usize::from(rest[9]);
        if rest.len() >= len {
            sum(&rest[..len - 2]) == rest[len - 2] && rest[len - 1] == 0x16
        } else {
            rest[1..7] == q.address.0
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any bytes: no panic, and `Found` only for a frame that re-checks.
    #[test]
    fn scan_read_finds_only_frames_that_answer_the_question(
        q in read_question(),
        pieces in proptest::collection::vec((piece(), spoil()), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let buf = bytes_of(&pieces);
        check_found(&buf, &q, &scan_read(&buf, &q))?;
        check_found(&noise, &q, &scan_read(&noise, &q))?;
        let _ = scan_address(&buf);
        let _ = scan_address(&noise);
    }

    /// The right answer after any bytes is found where it sits (unless
    /// the bytes before it hold a whole frame or the start of one of the
    /// asked meter, which may rightly come first).
    #[test]
    fn scan_read_finds_the_answer_behind_any_bytes(
        q in read_question(),
        before in proptest::collection::vec(biased_byte(), 0..80),
        wake_up in 0usize..=4,
        after in proptest::collection::vec(any::<u8>(), 0..40),
        value in proptest::collection::vec(any::<u8>(), 8),
    ) {
        let mut data = q.di.0.to_le_bytes().to_vec();
        data.extend_from_slice(&value[..usize::from(q.value_bytes)]);
        let answer = frame_bytes(q.address.0, 0x91, &data);
        let at = before.len() + wake_up;
        let buf = [before, vec![0xFE; wake_up], answer.clone(), after].concat();
        prop_assume!(!frame_starts_before(&buf, &q, at));
        let scan = scan_read(&buf, &q);
        check_found(&buf, &q, &scan)?;
        prop_assert_eq!(
            scan,
            Scan::Found {
                answer: Answer::Value(at + 14..at + answer.len() - 2),
                frame: at..at + answer.len(),
            }
        );
    }

    /// The read-address scanner finds only whole 0x93 answers.
    #[test]
    fn scan_address_finds_only_address_answers(
        pieces in proptest::collection::vec((piece(), spoil()), 0..8),
        meter in 0..METERS.len(),
        at_end in any::<bool>(),
    ) {
        let mut buf = bytes_of(&pieces);
        if at_end {
            buf.extend(frame_bytes(METERS[meter], 0x93, &METERS[meter]));
        }
        if let Some((a, end)) = scan_address(&buf) {
            prop_assert!(end >= 18 && end <= buf.len());
            let f = &buf[end - 18..end];
            prop_assert_eq!((f[0], f[7], f[8], f[9], f[17]), (0x68, 0x68, 0x93, 6, 0x16));
            prop_assert_eq!(sum(&f[..16]), f[16]);
            let data: Vec<u8> = f[10..16].iter().map(|b| b.wrapping_sub(0x33)).collect();
            prop_assert_eq!(&a.0[..], &data[..]);
        } else {
            prop_assert!(!at_end, "the appended answer was not found in {:02X?}", buf);
        }
    }

    /// Every value a format can hold survives encode then decode exactly,
    /// and decode of random bytes is either None or a value that encodes
    /// back to the same bytes (negative zero aside).
    #[test]
    fn formats_round_trip(
        which in 0usize..6,
        n in any::<u64>(),
        negative in any::<bool>(),
        raw in proptest::collection::vec(any::<u8>(), 4),
    ) {
        let (text, signed) = [
            ("XXXXXX.XX", false),
            ("XXX.X", false),
            ("XXX.XXX", true),
            ("XX.XXXX", true),
            ("X.XXX", true),
            ("XX.XX", false),
        ][which];
        let f = format(text, signed);
        let digits = u32::from(f.bytes) * 2 - u32::from(signed);
        let n = n % 10u64.pow(digits);
        let mut v = n as f64 / 10f64.powi(i32::from(f.decimals));
        if negative && signed && n != 0 {
            v = -v;
        }
        let bytes = f.encode(v).expect("fits");
        prop_assert_eq!(f.decode(&bytes), Some(v), "{} {:02X?}", text, bytes);

        let raw = &raw[..usize::from(f.bytes)];
        if let Some(x) = f.decode(raw)
            && x != 0.0
        {
            prop_assert_eq!(f.encode(x), Some(raw.to_vec()), "{} {}", text, x);
        }
    }
}
