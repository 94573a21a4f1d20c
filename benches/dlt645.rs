//! Benchmarks of the DL/T 645 frames (`sources::dlt645::frame`): how many
//! read requests one core encodes, and how many answers it finds, checks
//! and decodes per second.
//!
//! Issue 13 asks for DL/T 645 frame encode + decode per second on one core.
//! The answer is the one a bus brings most: forward active energy
//! (XXXXXX.XX, 4 value bytes) with two wake-up bytes, alone and behind
//! another meter's answer (a late answer on a shared bus). Every case is
//! checked once before it is timed, so a bench never measures a scan that
//! misses.
//!
//! Run: `cargo bench --bench dlt645 -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::sources::dlt645::PREAMBLE;
use emgate::sources::dlt645::frame::{
    Address, Answer, Di, Format, Question, READ, Scan, encode, encode_read, scan_read, value_bytes,
};

/// The energy read of meter `nameplate`.
fn question(nameplate: &str) -> Question {
    Question {
        address: Address::from_nameplate(nameplate).expect("address"),
        di: Di::parse("00010000").expect("di"),
        value_bytes: 4,
    }
}

/// The normal answer (0x91) of `q`'s meter carrying `value` as XXXXXX.XX.
fn answer(q: &Question, value: f64, preamble: usize, out: &mut Vec<u8>) {
    let mut data = q.di.wire().to_vec();
    data.extend(
        Format::parse("XXXXXX.XX", false)
            .expect("format")
            .encode(value)
            .expect("fits"),
    );
    encode(out, preamble, q.address, READ | 0x80, &data);
}

/// Finds `q`'s answer in `buf` and decodes its value; the poller's work per
/// answer (scan, take the value bytes −0x33, BCD decode).
fn scan_and_decode(buf: &[u8], q: &Question, format: Format, value: &mut Vec<u8>) -> Option<f64> {
    match scan_read(buf, q) {
        Scan::Found {
            answer: Answer::Value(range),
            ..
        } => {
            value_bytes(buf, range, value);
            format.decode(value)
        }
        _ => None,
    }
}

fn bench_encode(c: &mut Criterion) {
    let q = question("123456789012");
    let mut out = Vec::with_capacity(32);
    let mut g = c.benchmark_group("dlt645_encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_request_4_fe", |b| {
        b.iter(|| {
            out.clear();
            encode_read(&mut out, PREAMBLE, black_box(q.address), black_box(q.di));
            black_box(out.len())
        });
    });
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let q = question("123456789012");
    let other = question("000000001234");
    let kwh = Format::parse("XXXXXX.XX", false).expect("format");

    let mut alone = Vec::new();
    answer(&q, 123_456.78, 2, &mut alone);
    // Another meter's answer to the same DI, then ours.
    let mut behind_other = Vec::new();
    answer(&other, 4_321.09, 2, &mut behind_other);
    answer(&q, 123_456.78, 2, &mut behind_other);

    let mut value = Vec::with_capacity(8);
    let cases: [(&str, &[u8]); 2] = [
        ("energy_answer_2_fe", &alone),
        (
            "energy_answer_2_fe_behind_another_meters_answer",
            &behind_other,
        ),
    ];
    let mut g = c.benchmark_group("dlt645_scan_and_decode");
    g.throughput(Throughput::Elements(1));
    for (name, buf) in cases {
        assert_eq!(scan_and_decode(buf, &q, kwh, &mut value), Some(123_456.78));
        g.bench_function(name, |b| {
            b.iter(|| scan_and_decode(black_box(buf), black_box(&q), kwh, &mut value));
        });
    }
    g.finish();

    // One whole read as the master sees it: encode the request, then find
    // and decode the answer.
    let mut out = Vec::with_capacity(32);
    let mut g = c.benchmark_group("dlt645_read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_request_then_scan_and_decode_answer", |b| {
        b.iter(|| {
            out.clear();
            encode_read(&mut out, PREAMBLE, black_box(q.address), black_box(q.di));
            black_box(out.len());
            scan_and_decode(black_box(&behind_other), &q, kwh, &mut value)
        });
    });
    g.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);
