//! Benchmark of `pipeline::validate`: point validations per second on one
//! core, for a batch of 1000 readings × 17 points (5 counters with rate,
//! rollover and a rate gauge, 12 gauges with range and frozen checks), the
//! shape of a poll cycle of a large site. Target (issue 4): ≥ 10 million
//! point validations per second.
//!
//! Run: `cargo bench --bench validate -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::model::{MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::validate::{MeterRules, PointRules, TimeRules, Validator};
use emgate::profiles::PointKind;

const METERS: u32 = 1000;
const POINTS: usize = 17;
const COUNTERS: usize = 5;
const STEP: i64 = 60;

fn rules() -> Vec<MeterRules> {
    let counter = PointRules {
        kind: PointKind::Counter,
        min: Some(0.0),
        max: None,
        rollover: Some(100_000_000.0),
        max_rate_per_hour: Some(1_000.0),
        spike_margin: 1.5,
        frozen_after: None,
        resolution: 0.01,
    };
    let gauge = PointRules {
        kind: PointKind::Gauge,
        min: Some(-1_000.0),
        max: Some(1_000.0),
        rollover: None,
        max_rate_per_hour: None,
        spike_margin: 1.5,
        frozen_after: Some(10),
        resolution: 0.01,
    };
    (0..METERS)
        .map(|_| MeterRules {
            points: (0..POINTS)
                .map(|p| {
                    if p < COUNTERS {
                        counter.clone()
                    } else {
                        gauge.clone()
                    }
                })
                .collect(),
            calibration_due: Some(i64::MAX),
            rate_point: Some((0, COUNTERS)),
            ..MeterRules::default()
        })
        .collect()
}

/// Fills `batch` with cycle `n`: counters grow, gauges vary.
fn fill(batch: &mut ReadingBatch, n: i64, values: &mut [PointValue; POINTS]) {
    batch.clear();
    let slot = 1_700_000_000 + n * STEP;
    for m in 0..METERS {
        for (p, v) in values.iter_mut().enumerate() {
            let x = if p < COUNTERS {
                99_999_000.0 + (n as f64) * 0.5 + f64::from(m) * 0.01
            } else {
                ((n + i64::from(m) + p as i64) % 97) as f64 - 40.0
            };
            *v = PointValue::new(x, Quality::GOOD);
        }
        batch.push(MeterId(m), slot, 0, values);
    }
}

fn bench(crit: &mut Criterion) {
    let mut v = Validator::new(
        rules(),
        TimeRules {
            max_future_skew_secs: 30,
            max_lateness_secs: 3_600,
            reorder_window_secs: 0,
        },
    );
    // Pre-build batches so the measured loop validates only.
    let mut values = [PointValue::default(); POINTS];
    let cycles = 64;
    let mut batches: Vec<ReadingBatch> = (0..cycles)
        .map(|n| {
            let mut b = ReadingBatch::with_capacity(METERS as usize, POINTS);
            fill(&mut b, n, &mut values);
            b
        })
        .collect();
    let mut cont = Vec::with_capacity(METERS as usize * POINTS);
    let mut g = crit.benchmark_group("validate");
    g.throughput(Throughput::Elements(u64::from(METERS) * POINTS as u64));
    let mut n: i64 = 0;
    g.bench_function("1000x17_points", |b| {
        b.iter(|| {
            // Slots keep advancing so every reading is new (no duplicate short cut).
            let i = (n % cycles) as usize;
            let slot = 1_700_000_000 + n * STEP;
            for r in &mut batches[i].readings {
                r.slot = slot;
            }
            v.validate(black_box(&mut batches[i]), slot, &mut cont);
            n += 1;
            black_box(cont.len())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
