//! Benchmarks of the hot paths: register decoding, request planning,
//! line-protocol encoding, and decode + encode per point together.
//!
//! Target (ARCHITECTURE.md): decode + encode at least 5 million points/s on
//! one core, so that one gateway polls thousands of meters with room to spare.
//! Run: `cargo bench --bench hot_paths -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::profiles::codec::{decode_point, encode_point};
use emgate::profiles::{DataType, PointDef, RatioScaling, RegisterKind};
use emgate::sinks::lineproto::{LineBuilder, field_key, series_prefix};
use emgate::sources::modbus::plan::{PlanLimits, PlannedRead, plan};

fn point(
    name: &str,
    register: RegisterKind,
    address: u16,
    data_type: DataType,
    scale: f64,
    ratio: RatioScaling,
) -> PointDef {
    PointDef {
        scale,
        ratio,
        ..PointDef::new(name, register, address, data_type)
    }
}

/// An Eastron SDM630-like map: 20 float32 input registers.
fn sdm630() -> Vec<PointDef> {
    let addrs: [(&str, u16); 20] = [
        ("voltage_l1_v", 0x00),
        ("voltage_l2_v", 0x02),
        ("voltage_l3_v", 0x04),
        ("current_l1_a", 0x06),
        ("current_l2_a", 0x08),
        ("current_l3_a", 0x0A),
        ("power_l1_w", 0x0C),
        ("power_l2_w", 0x0E),
        ("power_l3_w", 0x10),
        ("pf_l1", 0x1E),
        ("pf_l2", 0x20),
        ("pf_l3", 0x22),
        ("power_w", 0x34),
        ("apparent_va", 0x38),
        ("reactive_var", 0x3C),
        ("pf", 0x3E),
        ("frequency_hz", 0x46),
        ("import_kwh", 0x48),
        ("export_kwh", 0x4A),
        ("demand_w", 0x54),
    ];
    addrs
        .iter()
        .map(|&(n, a)| {
            point(
                n,
                RegisterKind::Input,
                a,
                DataType::F32,
                1.0,
                RatioScaling::None,
            )
        })
        .collect()
}

/// An Acrel DTSD1352-like integer map: U32 energies, U16 V/I, I32 powers, I16 PF.
fn dtsd1352() -> Vec<PointDef> {
    use DataType::{I16, I32, U16, U32};
    use RatioScaling::{Ct, None, Pt, PtCt};
    let h = RegisterKind::Holding;
    vec![
        point("total_kwh", h, 0x00, U32, 0.01, PtCt),
        point("import_kwh", h, 0x0A, U32, 0.01, PtCt),
        point("export_kwh", h, 0x14, U32, 0.01, PtCt),
        point("reactive_kvarh", h, 0x1E, U32, 0.01, PtCt),
        point("import_kvarh", h, 0x28, U32, 0.01, PtCt),
        point("export_kvarh", h, 0x32, U32, 0.01, PtCt),
        point("voltage_a_v", h, 0x61, U16, 0.1, Pt),
        point("voltage_b_v", h, 0x62, U16, 0.1, Pt),
        point("voltage_c_v", h, 0x63, U16, 0.1, Pt),
        point("current_a_a", h, 0x64, U16, 0.01, Ct),
        point("current_b_a", h, 0x65, U16, 0.01, Ct),
        point("current_c_a", h, 0x66, U16, 0.01, Ct),
        point("frequency_hz", h, 0x77, U16, 0.01, None),
        point("power_a_kw", h, 0x164, I32, 0.001, PtCt),
        point("power_b_kw", h, 0x166, I32, 0.001, PtCt),
        point("power_c_kw", h, 0x168, I32, 0.001, PtCt),
        point("power_kw", h, 0x16A, I32, 0.001, PtCt),
        point("pf_a", h, 0x17C, I16, 0.001, None),
        point("pf_b", h, 0x17D, I16, 0.001, None),
        point("pf", h, 0x17F, I16, 0.001, None),
    ]
}

/// The device's answers to `reads`, filled with plausible encoded values.
fn answers(points: &[PointDef], reads: &[PlannedRead]) -> Vec<Vec<u16>> {
    reads
        .iter()
        .map(|r| {
            let mut regs = vec![0u16; usize::from(r.count)];
            for s in &r.points {
                let p = &points[usize::from(s.point)];
                let value = 100.0 + f64::from(s.point) * 1.25;
                encode_point(p, value, PT, CT, &mut regs[usize::from(s.offset)..]);
            }
            regs
        })
        .collect()
}

const PT: f64 = 10.0;
const CT: f64 = 40.0;

/// Decodes every point of every read; returns a checksum so nothing is optimised away.
fn decode_all(points: &[PointDef], reads: &[PlannedRead], answers: &[Vec<u16>]) -> f64 {
    let mut sum = 0.0;
    for (r, regs) in reads.iter().zip(answers) {
        for s in &r.points {
            let v = decode_point(
                &points[usize::from(s.point)],
                &regs[usize::from(s.offset)..],
                PT,
                CT,
            );
            sum += v.value;
        }
    }
    sum
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, points) in [("sdm630_f32", sdm630()), ("dtsd1352_int", dtsd1352())] {
        let reads = plan(&points, PlanLimits::default());
        let answers = answers(&points, &reads);
        g.throughput(Throughput::Elements(points.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| decode_all(black_box(&points), &reads, black_box(&answers)));
        });
    }
    g.finish();
}

fn bench_plan(c: &mut Criterion) {
    let mut points = sdm630();
    points.extend(dtsd1352());
    assert_eq!(points.len(), 40);
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(points.len() as u64));
    g.bench_function("40_points", |b| {
        b.iter(|| plan(black_box(&points), PlanLimits::default()));
    });
    g.finish();
}

/// Escaped field keys and series prefix, built once as at config load.
struct Series {
    prefix: Vec<u8>,
    keys: Vec<Vec<u8>>,
    q: Vec<u8>,
    lag: Vec<u8>,
}

fn series(points: &[PointDef]) -> Series {
    Series {
        prefix: series_prefix(
            "reading",
            &[
                ("site", "91350100MA2XYZ0001"),
                ("meter", "fz01-m017"),
                ("energy", "electricity"),
                ("level", "2"),
            ],
        ),
        keys: points.iter().map(|p| field_key(&p.name)).collect(),
        q: field_key("q"),
        lag: field_key("lag_ms"),
    }
}

fn bench_encode(c: &mut Criterion) {
    // A reading line with 10 float fields, q and lag_ms: 12 fields.
    let points: Vec<PointDef> = sdm630().into_iter().take(10).collect();
    let s = series(&points);
    let values: Vec<f64> = (0..10).map(|i| 230.1 + f64::from(i) * 17.37).collect();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut g = c.benchmark_group("lineproto");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reading_line_12_fields", |b| {
        b.iter(|| {
            buf.clear();
            let mut l = LineBuilder::new(&mut buf, &s.prefix);
            for (k, v) in s.keys.iter().zip(black_box(&values)) {
                l.f64(k, *v);
            }
            l.i64(&s.q, 0).i64(&s.lag, black_box(137));
            l.finish(black_box(1_700_000_100))
        });
    });
    g.finish();
}

/// Formats every value into `out` with `f`; returns the bytes written.
fn format_all(out: &mut Vec<u8>, values: &[f64], mut f: impl FnMut(f64, &mut Vec<u8>)) -> usize {
    out.clear();
    for v in black_box(values) {
        f(*v, out);
    }
    out.len()
}

/// The float formatter alone: `ryu` (used until 2026-12) against `zmij`
/// (used since), on float32 register values widened to f64 (17 significant
/// digits, as the meters send them) and on short decimals. Same bytes
/// (pinned by the lineproto unit test).
fn bench_float_format(c: &mut Criterion) {
    let widened: Vec<f64> = (0..1000u16)
        .map(|i| f64::from(230.1f32 + f32::from(i) * 17.37))
        .collect();
    let short: Vec<f64> = (0..1000u16).map(|i| 230.1 + f64::from(i) * 17.37).collect();
    let mut out = Vec::with_capacity(32 * 1000);
    let mut g = c.benchmark_group("float_format");
    g.throughput(Throughput::Elements(1000));
    for (name, values) in [("f32_widened", &widened), ("short", &short)] {
        let mut r = ryu::Buffer::new();
        g.bench_function(format!("ryu/{name}"), |b| {
            b.iter(|| {
                format_all(&mut out, values, |v, o| {
                    o.extend_from_slice(r.format_finite(v).as_bytes());
                })
            });
        });
        let mut z = zmij::Buffer::new();
        g.bench_function(format!("zmij/{name}"), |b| {
            b.iter(|| {
                format_all(&mut out, values, |v, o| {
                    o.extend_from_slice(z.format_finite(v).as_bytes());
                })
            });
        });
    }
    g.finish();
}

fn bench_decode_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_encode");
    for (name, points) in [("sdm630_f32", sdm630()), ("dtsd1352_int", dtsd1352())] {
        let reads = plan(&points, PlanLimits::default());
        let answers = answers(&points, &reads);
        let series = series(&points);
        let mut buf = Vec::with_capacity(64 * 1024);
        group.throughput(Throughput::Elements(points.len() as u64));
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                buf.clear();
                let mut line = LineBuilder::new(&mut buf, &series.prefix);
                let mut quality = 0u16;
                for (read, regs) in reads.iter().zip(black_box(&answers)) {
                    for slot in &read.points {
                        let idx = usize::from(slot.point);
                        let value =
                            decode_point(&points[idx], &regs[usize::from(slot.offset)..], PT, CT);
                        quality |= value.quality.0;
                        line.f64(&series.keys[idx], value.value);
                    }
                }
                line.i64(&series.q, i64::from(quality))
                    .i64(&series.lag, 137);
                line.finish(black_box(1_700_000_100))
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_plan,
    bench_encode,
    bench_float_format,
    bench_decode_encode
);
criterion_main!(benches);
