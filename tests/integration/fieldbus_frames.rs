//! Property tests of the frame decoders (`emgate::sources::modbus::frame`):
//! whatever bytes arrive, `scan_rtu` and `scan_mbap` never panic, and a
//! `Found` is only ever a frame that really answers the question: unit,
//! function, byte count, lengths and (RTU) CRC are re-checked here,
//! independently, with the raw bus's own CRC. A valid answer surrounded by
//! garbage is found, exactly where it is.
//!
//! The byte soup is built from pieces that make the decoders work: random
//! bytes, answers to the question and to other questions (other unit,
//! function, count, transaction id), exception frames, and any of these
//! cut short or with one byte changed.

use emgate::profiles::RegisterKind;
use emgate::sources::modbus::frame::{Answer, Question, Scan, scan_mbap, scan_rtu};
use proptest::prelude::*;

use crate::support::raw_bus::{crc, with_crc};

/// A read question: function 1..=4, a count that fits one frame.
fn question() -> impl Strategy<Value = Question> {
    (
        prop_oneof![
            Just(RegisterKind::Coil),
            Just(RegisterKind::Discrete),
            Just(RegisterKind::Holding),
            Just(RegisterKind::Input),
        ],
        1u8..=5,
        any::<u16>(),
        1u16..=20,
    )
        .prop_map(|(kind, unit, start, count)| Question::read(kind, unit, start, count))
}

/// Bytes of data a fitting answer carries.
fn data_len(q: Question) -> usize {
    if q.function <= 2 {
        usize::from(q.count).div_ceil(8)
    } else {
        usize::from(q.count) * 2
    }
}

/// The PDU of a read answer: function, byte count, `data`.
fn pdu(function: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![function, u8::try_from(data.len()).expect("short data")];
    p.extend_from_slice(data);
    p
}

/// One piece of received bytes, relative to the question.
#[derive(Debug, Clone)]
enum Piece {
    /// Random bytes.
    Noise(Vec<u8>),
    /// A read answer: unit shift, function shift, byte-count shift from the
    /// fitting one (all 0: the right answer), and its data bytes.
    Answer {
        unit: u8,
        function: u8,
        count: i8,
        data: Vec<u8>,
    },
    /// An exception answer: unit shift, function shift, code.
    Exception { unit: u8, function: u8, code: u8 },
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Piece::Noise),
        3 => (
            prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
            prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
            prop_oneof![3 => Just(0i8), 1 => -4i8..=4],
            proptest::collection::vec(any::<u8>(), 40),
        )
            .prop_map(|(unit, function, count, data)| Piece::Answer { unit, function, count, data }),
        1 => (0u8..=1, 0u8..=1, any::<u8>())
            .prop_map(|(unit, function, code)| Piece::Exception { unit, function, code }),
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
        1 => (0usize..60).prop_map(Spoil::Cut),
        1 => (0usize..60, 1u8..=255).prop_map(|(i, x)| Spoil::Flip(i, x)),
    ]
}

fn spoiled(mut frame: Vec<u8>, how: Spoil) -> Vec<u8> {
    match how {
        Spoil::Keep => {}
        Spoil::Cut(n) => frame.truncate(n.min(frame.len())),
        Spoil::Flip(i, x) => {
            let n = frame.len();
            if n > 0 {
                frame[i % n] ^= x;
            }
        }
    }
    frame
}

/// The unit, function and PDU a piece stands for, for question `q`.
fn piece_pdu(q: Question, p: &Piece) -> Option<(u8, Vec<u8>)> {
    match p {
        Piece::Noise(_) => None,
        Piece::Answer {
            unit,
            function,
            count,
            data,
        } => {
            let n = usize::try_from(data_len(q) as i64 + i64::from(*count))
                .unwrap_or(0)
                .min(data.len());
            let fc = ((q.function - 1 + function) % 4) + 1;
            Some((q.unit.wrapping_add(*unit), pdu(fc, &data[..n])))
        }
        Piece::Exception {
            unit,
            function,
            code,
        } => {
            let fc = (((q.function - 1 + function) % 4) + 1) | 0x80;
            Some((q.unit.wrapping_add(*unit), vec![fc, *code]))
        }
    }
}

/// The pieces as RTU bytes.
fn rtu_bytes(q: Question, pieces: &[(Piece, Spoil)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (p, how) in pieces {
        match (p, piece_pdu(q, p)) {
            (Piece::Noise(b), _) => out.extend_from_slice(b),
            (_, Some((unit, pdu))) => {
                let mut body = vec![unit];
                body.extend_from_slice(&pdu);
                out.extend(spoiled(with_crc(&body), *how));
            }
            (_, None) => {}
        }
    }
    out
}

/// The pieces as MBAP bytes; answers under `tid` or, every third, `tid + 1`.
fn mbap_bytes(q: Question, tid: u16, pieces: &[(Piece, Spoil)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (p, how)) in pieces.iter().enumerate() {
        match (p, piece_pdu(q, p)) {
            (Piece::Noise(b), _) => out.extend_from_slice(b),
            (_, Some((unit, pdu))) => {
                let id = if i % 3 == 2 { tid.wrapping_add(1) } else { tid };
                let mut frame = id.to_be_bytes().to_vec();
                frame.extend_from_slice(&[0, 0]);
                frame.extend_from_slice(&u16::try_from(pdu.len() + 1).expect("len").to_be_bytes());
                frame.push(unit);
                frame.extend_from_slice(&pdu);
                out.extend(spoiled(frame, *how));
            }
            (_, None) => {}
        }
    }
    out
}

/// Re-checks an RTU `Found` on its own: the frame answers `q`.
fn check_rtu_found(buf: &[u8], q: Question, scan: &Scan) -> Result<(), TestCaseError> {
    let Scan::Found { answer, frame } = scan else {
        return Ok(());
    };
    prop_assert!(
        frame.end <= buf.len() && frame.start < frame.end,
        "{frame:?}"
    );
    let f = &buf[frame.clone()];
    prop_assert!(f.len() >= 5);
    let (body, tail) = f.split_at(f.len() - 2);
    prop_assert_eq!(
        crc(body).to_le_bytes(),
        [tail[0], tail[1]],
        "CRC of {:02X?}",
        f
    );
    prop_assert_eq!(f[0], q.unit, "unit of {:02X?}", f);
    match answer {
        Answer::Data(range) => {
            prop_assert_eq!(f[1], q.function, "function of {:02X?}", f);
            prop_assert_eq!(usize::from(f[2]), data_len(q), "byte count of {:02X?}", f);
            prop_assert_eq!(f.len(), 5 + data_len(q));
            prop_assert_eq!(range.clone(), frame.start + 3..frame.end - 2);
        }
        Answer::Exception(code) => {
            prop_assert_eq!(f[1], q.function | 0x80, "function of {:02X?}", f);
            prop_assert_eq!(f.len(), 5);
            prop_assert_eq!(*code, f[2]);
        }
    }
    Ok(())
}

/// Re-checks an MBAP `Found` on its own: the frame answers `q` under `tid`.
fn check_mbap_found(buf: &[u8], q: Question, tid: u16, scan: &Scan) -> Result<(), TestCaseError> {
    let Scan::Found { answer, frame } = scan else {
        return Ok(());
    };
    prop_assert!(
        frame.end <= buf.len() && frame.start < frame.end,
        "{frame:?}"
    );
    let f = &buf[frame.clone()];
    prop_assert!(f.len() >= 9);
    prop_assert_eq!(u16::from_be_bytes([f[0], f[1]]), tid, "tid of {:02X?}", f);
    prop_assert_eq!([f[2], f[3]], [0, 0], "protocol of {:02X?}", f);
    prop_assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])), f.len() - 6);
    prop_assert_eq!(f[6], q.unit, "unit of {:02X?}", f);
    match answer {
        Answer::Data(range) => {
            prop_assert_eq!(f[7], q.function, "function of {:02X?}", f);
            prop_assert_eq!(usize::from(f[8]), data_len(q), "byte count of {:02X?}", f);
            prop_assert_eq!(f.len(), 9 + data_len(q));
            prop_assert_eq!(range.clone(), frame.start + 9..frame.end);
        }
        Answer::Exception(code) => {
            prop_assert_eq!(f[7], q.function | 0x80, "function of {:02X?}", f);
            prop_assert_eq!(f.len(), 9);
            prop_assert_eq!(*code, f[8]);
        }
    }
    Ok(())
}

/// True when an RTU frame with a fitting CRC (a read answer or an
/// exception, any unit and function) starts at some offset below `end`:
/// garbage that holds one may rightly be taken for, or hide, the answer.
fn rtu_frame_starts_before(buf: &[u8], end: usize) -> bool {
    (0..end.min(buf.len())).any(|i| {
        let rest = &buf[i..];
        let fits = |len: usize| {
            rest.len() >= len
                && crc(&rest[..len - 2]).to_le_bytes() == [rest[len - 2], rest[len - 1]]
        };
        rest.len() >= 5
            && match rest[1] {
                1..=4 => fits(5 + usize::from(rest[2])),
                0x81..=0x84 => fits(5),
                _ => false,
            }
    })
}

/// True when a plausible MBAP header (protocol 0, length 3..=254) starts
/// at some offset below `end`.
fn mbap_header_starts_before(buf: &[u8], end: usize) -> bool {
    (0..end.min(buf.len())).any(|i| {
        let rest = &buf[i..];
        rest.len() >= 7
            && rest[2] == 0
            && rest[3] == 0
            && (3..=254).contains(&u16::from_be_bytes([rest[4], rest[5]]))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: no panic, and `Found` only for a frame that fits.
    #[test]
    fn scan_rtu_finds_only_frames_that_answer_the_question(
        q in question(),
        pieces in proptest::collection::vec((piece(), spoil()), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let buf = rtu_bytes(q, &pieces);
        check_rtu_found(&buf, q, &scan_rtu(&buf, &q))?;
        check_rtu_found(&noise, q, &scan_rtu(&noise, &q))?;
    }

    /// Any bytes: no panic, and `Found` only for a frame under the
    /// question's transaction id that fits.
    #[test]
    fn scan_mbap_finds_only_frames_that_answer_the_question(
        q in question(),
        tid in any::<u16>(),
        pieces in proptest::collection::vec((piece(), spoil()), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let buf = mbap_bytes(q, tid, &pieces);
        check_mbap_found(&buf, q, tid, &scan_mbap(&buf, &q, tid))?;
        check_mbap_found(&noise, q, tid, &scan_mbap(&noise, &q, tid))?;
    }

    /// The right RTU answer between random bytes is found where it is
    /// (unless the bytes before it hold a frame with a fitting CRC).
    #[test]
    fn scan_rtu_finds_the_answer_inside_garbage(
        q in question(),
        before in proptest::collection::vec(any::<u8>(), 0..80),
        after in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 40),
    ) {
        let mut body = vec![q.unit];
        body.extend(pdu(q.function, &data[..data_len(q)]));
        let answer = with_crc(&body);
        let buf = [before.clone(), answer.clone(), after].concat();
        let at = before.len();
        prop_assume!(!rtu_frame_starts_before(&buf, at));
        let scan = scan_rtu(&buf, &q);
        check_rtu_found(&buf, q, &scan)?;
        prop_assert_eq!(
            scan,
            Scan::Found {
                answer: Answer::Data(at + 3..at + 3 + data_len(q)),
                frame: at..at + answer.len(),
            }
        );
    }

    /// The right MBAP answer between random bytes is found where it is
    /// (unless the bytes before it start a plausible MBAP header).
    #[test]
    fn scan_mbap_finds_the_answer_inside_garbage(
        q in question(),
        tid in any::<u16>(),
        before in proptest::collection::vec(any::<u8>(), 0..80),
        after in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 40),
    ) {
        let p = pdu(q.function, &data[..data_len(q)]);
        let mut answer = tid.to_be_bytes().to_vec();
        answer.extend_from_slice(&[0, 0]);
        answer.extend_from_slice(&u16::try_from(p.len() + 1).expect("len").to_be_bytes());
        answer.push(q.unit);
        answer.extend_from_slice(&p);
        let buf = [before.clone(), answer.clone(), after].concat();
        let at = before.len();
        prop_assume!(!mbap_header_starts_before(&buf, at));
        let scan = scan_mbap(&buf, &q, tid);
        check_mbap_found(&buf, q, tid, &scan)?;
        prop_assert_eq!(
            scan,
            Scan::Found {
                answer: Answer::Data(at + 9..at + 9 + data_len(q)),
                frame: at..at + answer.len(),
            }
        );
    }
}
