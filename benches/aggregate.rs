//! Benchmark of validation plus aggregation, the pipeline's per-reading
//! work: 1000 meters × 17 points (5 counters, 12 gauges) per batch, one
//! reading per meter per minute, windows 15m/1h/1d in Asia/Shanghai, the
//! consumption counter and all 12 gauges aggregated. Target (issue 5): ≥ 5
//! million readings per second on one core.
//!
//! Run: `cargo bench --bench aggregate -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::model::{EnergyType, MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::aggregate::{AggOutput, Aggregator, AggregatorSettings, MeterSpec, SiteSpec};
use emgate::pipeline::energy::{Conversion, EnergyRole};
use emgate::pipeline::validate::{MeterRules, PointRules, TimeRules, Validator};
use emgate::pipeline::window::WindowSize;
use emgate::profiles::PointKind;

const METERS: u32 = 1000;
const POINTS: usize = 17;
const COUNTERS: usize = 5;
const STEP: i64 = 60;
const T0: i64 = 1_773_504_000;

fn rules() -> Vec<MeterRules> {
    let rule = |kind| PointRules {
        kind,
        min: Some(-1_000.0),
        max: Some(1e12),
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
                    rule(if p < COUNTERS {
                        PointKind::Counter
                    } else {
                        PointKind::Gauge
                    })
                })
                .collect(),
            calibration_due: Some(i64::MAX),
            ..MeterRules::default()
        })
        .collect()
}

fn aggregator(lateness: i64, gauges: bool) -> Aggregator {
    let meters = (0..METERS)
        .map(|m| MeterSpec {
            key: u64::from(m),
            site: (m % 10) as usize,
            energy: EnergyType::Electricity,
            level1: m % 10 == 0,
            role: EnergyRole::Consumed,
            counter: Some(0),
            gauges: if gauges {
                (COUNTERS..POINTS).collect()
            } else {
                Vec::new()
            },
            conversion: Conversion::Fixed {
                kgce_per_unit: 0.1229,
            },
            ordered: false,
        })
        .collect();
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone");
    let sites = (0..10)
        .map(|k| SiteSpec {
            key: k,
            tz: tz.clone(),
        })
        .collect();
    Aggregator::new(
        AggregatorSettings {
            windows: vec![WindowSize::Min15, WindowSize::Hour, WindowSize::Day],
            allowed_lateness_secs: lateness,
            max_reorder_readings: 16,
            max_gap_secs: 900,
        },
        meters,
        sites,
    )
}

/// Fills `batch` with cycle `n`: counters grow, gauges vary.
#[allow(clippy::cast_precision_loss)]
fn fill(batch: &mut ReadingBatch, n: i64) {
    batch.clear();
    let slot = T0 + n * STEP;
    let mut values = [PointValue::default(); POINTS];
    for m in 0..METERS {
        for (p, v) in values.iter_mut().enumerate() {
            let x = if p < COUNTERS {
                1000.0 + (n as f64) * 0.5 + f64::from(m) * 0.01
            } else {
                ((n + i64::from(m) + p as i64) % 97) as f64 - 40.0
            };
            *v = PointValue::new(x, Quality::GOOD);
        }
        batch.push(MeterId(m), slot, 0, &values);
    }
}

fn bench(crit: &mut Criterion) {
    let mut g = crit.benchmark_group("validate_aggregate");
    g.throughput(Throughput::Elements(u64::from(METERS)));
    for (name, lateness, gauges) in [
        ("1000_readings_x17_points", 0, true),
        ("1000_readings_counter_only", 0, false),
        ("1000_readings_x17_lateness120", 120, true),
    ] {
        let mut v = Validator::new(
            rules(),
            TimeRules {
                max_future_skew_secs: i64::MAX / 4,
                max_lateness_secs: i64::MAX / 4,
                reorder_window_secs: lateness,
            },
        );
        let mut agg = aggregator(lateness, gauges);
        let mut batch = ReadingBatch::with_capacity(METERS as usize, POINTS);
        let mut cont = Vec::with_capacity(METERS as usize * POINTS);
        let mut out = AggOutput::default();
        let mut n: i64 = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                fill(&mut batch, n);
                v.validate(black_box(&mut batch), T0 + n * STEP, &mut cont);
                out.clear();
                agg.process(&mut batch, &cont, &mut out);
                n += 1;
                black_box(out.consumption.len())
            });
        });
    }
    // Baseline: building the batch alone (subtract it from the above).
    let mut batch = ReadingBatch::with_capacity(METERS as usize, POINTS);
    let mut n: i64 = 0;
    g.bench_function("fill_only", |b| {
        b.iter(|| {
            fill(&mut batch, n);
            n += 1;
            black_box(batch.values.len())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
