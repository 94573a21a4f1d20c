//! Benchmarks of the field-bus frames (`sources::modbus::frame`): how many
//! answers one core checks and decodes per second, and the CRC's bytes per
//! second.
//!
//! Issue 12 asks for RTU framing and CRC throughput on one core. The frames
//! are the largest a read brings (125 registers, 255 RTU bytes), found where
//! a bus puts them: at the start of the buffer, after line noise, and behind
//! another unit's answer (a late answer). Every case is checked once before
//! it is timed, so a bench never measures a scan that misses.
//!
//! Run: `cargo bench --bench fieldbus -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::profiles::RegisterKind;
use emgate::sources::modbus::frame::{
    Answer, Question, Scan, crc16, encode_rtu, push_with_crc, scan_mbap, scan_rtu, words_into,
};

/// The most registers one read asks for (Modbus Application Protocol 6.3).
const REGS: u16 = 125;

/// A read of 125 holding registers from `unit`.
fn question(unit: u8) -> Question {
    Question::read(RegisterKind::Holding, unit, 0x0100, REGS)
}

/// The RTU answer of `unit` to [`question`], register `i` holding `i * 257 + seed`.
fn rtu_answer(unit: u8, seed: u16, out: &mut Vec<u8>) {
    let mut body = vec![unit, 3, (REGS * 2) as u8];
    for i in 0..REGS {
        body.extend_from_slice(&(i.wrapping_mul(257).wrapping_add(seed)).to_be_bytes());
    }
    push_with_crc(out, &body);
}

/// `n` bytes of line noise, the same every run (fixed seed).
fn noise(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(12);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Asserts that `scan` found a data answer starting at `at`: the bench
/// measures the intended path.
fn assert_found(scan: &Scan, at: usize) {
    match scan {
        Scan::Found {
            answer: Answer::Data(_),
            frame,
        } => assert_eq!(frame.start, at, "answer found at the wrong offset"),
        other => panic!("the bench's answer was not found: {other:?}"),
    }
}

fn bench_crc(c: &mut Criterion) {
    let frame = noise(255);
    let mut g = c.benchmark_group("crc16");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("255_bytes", |b| b.iter(|| crc16(black_box(&frame))));
    g.finish();
}

fn bench_scan(c: &mut Criterion) {
    let q = question(7);
    let mut at_start = Vec::new();
    rtu_answer(7, 11, &mut at_start);
    assert_eq!(at_start.len(), 255);

    let mut after_garbage = noise(50);
    rtu_answer(7, 11, &mut after_garbage);

    // Another unit's answer to the same kind of read, then ours: what a
    // late answer on a shared bus looks like.
    let mut behind_other = Vec::new();
    rtu_answer(9, 5, &mut behind_other);
    let ours = behind_other.len();
    rtu_answer(7, 11, &mut behind_other);

    // The same registers as a Modbus TCP answer (MBAP length 253).
    let mut mbap = Vec::new();
    mbap.extend_from_slice(&[
        0,
        0x2A,
        0,
        0,
        0,
        3 + (REGS * 2) as u8,
        7,
        3,
        (REGS * 2) as u8,
    ]);
    mbap.extend_from_slice(&at_start[3..253]);

    let cases: [(&str, &[u8], usize); 3] = [
        ("rtu_125_regs_at_start", &at_start, 0),
        ("rtu_125_regs_after_50_garbage_bytes", &after_garbage, 50),
        (
            "rtu_125_regs_behind_another_units_frame",
            &behind_other,
            ours,
        ),
    ];
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(1));
    for (name, buf, at) in cases {
        assert_found(&scan_rtu(buf, &q), at);
        g.bench_function(name, |b| b.iter(|| scan_rtu(black_box(buf), black_box(&q))));
    }
    assert_found(&scan_mbap(&mbap, &q, 0x2A), 0);
    g.bench_function("mbap_125_regs", |b| {
        b.iter(|| scan_mbap(black_box(&mbap), black_box(&q), 0x2A));
    });
    g.finish();

    // What the poller does per answer: find it, then take its words.
    let mut words = Vec::with_capacity(usize::from(REGS));
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtu_125_regs_scan_and_words", |b| {
        b.iter(|| {
            if let Scan::Found {
                answer: Answer::Data(r),
                ..
            } = scan_rtu(black_box(&at_start), &q)
            {
                words_into(&at_start[r], &q, &mut words);
            }
            words.len()
        });
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let q = question(7);
    let mut out = Vec::with_capacity(16);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rtu_read_request", |b| {
        b.iter(|| {
            out.clear();
            encode_rtu(black_box(&q), &mut out);
            out.len()
        });
    });
    g.finish();
}

criterion_group!(benches, bench_crc, bench_scan, bench_encode);
criterion_main!(benches);
