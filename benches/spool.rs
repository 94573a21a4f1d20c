//! Benchmarks of the durable spool: append throughput for line-protocol sized
//! batches (4 KiB and 64 KiB records) under both fsync policies, and the
//! uploader's side, read + ack per batch (the ack is two fsyncs and a rename),
//! and reading alone.
//!
//! Files go under Cargo's target tmp dir (a real disk, so fsync costs what it
//! costs). Run: `cargo bench --bench spool -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use emgate::spool::{Appended, FsyncPolicy, FullPolicy, Spool, SpoolConfig};

fn dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under target/tmp");
    let path = tmp.path().join("spool");
    (tmp, path)
}

fn open(path: PathBuf, fsync: FsyncPolicy, policy: FullPolicy) -> Spool {
    let (spool, _) = Spool::open(SpoolConfig {
        dir: path,
        max_bytes: 256 << 20,
        segment_bytes: 16 << 20,
        policy,
        fsync,
    })
    .expect("open spool");
    spool
}

fn record(len: usize) -> Vec<u8> {
    // Line-protocol-like bytes; the content does not matter to the spool.
    b"energy,site=fz01,meter=m17 import_kwh=12345.678,export_kwh=0.5 1700000000000000000\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn append(c: &mut Criterion) {
    for (policy_name, fsync) in [
        ("interval_1s", FsyncPolicy::Interval(Duration::from_secs(1))),
        ("every_append", FsyncPolicy::EveryAppend),
    ] {
        let mut g = c.benchmark_group(format!("spool_append_{policy_name}"));
        if fsync == FsyncPolicy::EveryAppend {
            g.sample_size(10);
        }
        for len in [4 << 10, 64 << 10] {
            let rec = record(len);
            g.throughput(Throughput::ElementsAndBytes {
                elements: 1,
                bytes: len as u64,
            });
            let (_tmp, path) = dir("append");
            // DropOldest keeps the disk use bounded however long criterion runs.
            let spool = open(path, fsync, FullPolicy::DropOldest);
            g.bench_function(
                BenchmarkId::from_parameter(format!("{}KiB", len >> 10)),
                |b| {
                    b.iter(|| {
                        let r = spool.append(black_box(&rec)).expect("append");
                        debug_assert_eq!(r, Appended::Stored);
                    });
                },
            );
        }
        g.finish();
    }
}

fn read_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_read_ack");
    // About 1 MiB per batch: what the uploader sends to InfluxDB at once.
    for (len, batch) in [(4usize << 10, 256usize), (64 << 10, 16)] {
        let rec = record(len);
        g.throughput(Throughput::ElementsAndBytes {
            elements: batch as u64,
            bytes: (batch * len) as u64,
        });
        let (_tmp, path) = dir("read");
        let spool = open(
            path,
            FsyncPolicy::Interval(Duration::from_secs(1)),
            FullPolicy::Block,
        );
        let id = format!("{}KiB_x{batch}", len >> 10);
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                let mut out: Vec<Vec<u8>> = Vec::with_capacity(batch);
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Refill outside the timed part.
                    if spool.stats().records < batch as u64 {
                        for _ in 0..batch * 32 {
                            spool.append(&rec).expect("append");
                        }
                    }
                    out.clear();
                    let start = Instant::now();
                    let cursor = spool.read(batch, usize::MAX, &mut out).expect("records");
                    spool.ack(cursor).expect("ack");
                    timed += start.elapsed();
                    black_box(&out);
                }
                timed
            });
        });
    }
    g.finish();
}

fn read_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_read");
    for (len, batch) in [(4usize << 10, 256usize), (64 << 10, 16)] {
        let rec = record(len);
        g.throughput(Throughput::ElementsAndBytes {
            elements: batch as u64,
            bytes: (batch * len) as u64,
        });
        let (_tmp, path) = dir("read_only");
        let spool = open(
            path,
            FsyncPolicy::Interval(Duration::from_secs(1)),
            FullPolicy::Block,
        );
        // 64 MiB of records, read over and over (rewinding at the end): the
        // page-cache read and checksum path without the ack's fsyncs.
        for _ in 0..(64 << 20) / len {
            spool.append(&rec).expect("append");
        }
        let id = format!("{}KiB_x{batch}", len >> 10);
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            let mut out: Vec<Vec<u8>> = Vec::with_capacity(batch);
            b.iter(|| {
                out.clear();
                if spool.read(batch, usize::MAX, &mut out).is_none() {
                    spool.rewind();
                    spool.read(batch, usize::MAX, &mut out).expect("records");
                }
                black_box(&out);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, append, read_ack, read_only);
criterion_main!(benches);
