//! Benchmarks of the gzip of InfluxDB request bodies: which deflate backend
//! and which level (issue 16, "Performance", item 2).
//!
//! The profile at the NeuronEX grid showed 64 % of emgate's CPU inside
//! `miniz_oxide` deflate. This bench compresses one realistic request body
//! (5000 `reading` lines, one poll slot of 5000 meters, encoded with the
//! crate's own [`LineBuilder`]) at levels 1, 2, 3, 6 and 9 with
//! * `flate2`: the `GzEncoder` emgate uses, with whatever backend `flate2` is
//!   built with (`zlib-rs` since this bench chose it; `miniz_oxide` before);
//! * `miniz_oxide`: the previous backend called directly, with the same gzip
//!   header, CRC-32 and trailer, so both are measured in one run.
//!
//! Before timing, it prints the compressed size and ratio of every variant
//! (criterion records time only) and checks that each output gunzips back to
//! the body. Throughput is in bytes of the *uncompressed* body.
//! Run: `cargo bench --bench gzip -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::io::{Read as _, Write as _};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::sinks::lineproto::{LineBuilder, field_key, series_prefix};

/// Lines in the body: the default `[influxdb] batch_size`.
const LINES: usize = 5000;
/// The slot every line carries (one poll of the whole fleet), in seconds.
const SLOT: i64 = 1_733_376_900;
/// Levels compared.
const LEVELS: [u32; 5] = [1, 2, 3, 6, 9];

/// One meter kind: energy tag, level tag and its fields.
struct Kind {
    energy: &'static str,
    level: &'static str,
    fields: &'static [&'static str],
    /// Float32 registers (printed as the f64 of an f32, as the codec does),
    /// else integer registers times a 0.01 scale.
    float32: bool,
}

const ELECTRICITY_F32: Kind = Kind {
    energy: "electricity",
    level: "3",
    fields: &[
        "voltage_l1_v",
        "voltage_l2_v",
        "voltage_l3_v",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        "power_l1_kw",
        "power_l2_kw",
        "power_l3_kw",
        "pf_l1",
        "pf_l2",
        "pf_l3",
        "power_kw",
        "apparent_kva",
        "reactive_kvar",
        "pf",
        "frequency_hz",
        "import_kwh",
        "export_kwh",
        "demand_kw",
    ],
    float32: true,
};

const ELECTRICITY_INT: Kind = Kind {
    energy: "electricity",
    level: "2",
    fields: &[
        "total_kwh",
        "import_kwh",
        "export_kwh",
        "reactive_kvarh",
        "voltage_l1_v",
        "voltage_l2_v",
        "voltage_l3_v",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        "power_kw",
        "reactive_kvar",
        "pf",
    ],
    float32: false,
};

const STEAM: Kind = Kind {
    energy: "steam",
    level: "2",
    fields: &[
        "flow_th",
        "mass_t",
        "pressure_mpa",
        "temperature_c",
        "heat_gj",
    ],
    float32: true,
};

const GAS: Kind = Kind {
    energy: "natural_gas",
    level: "1",
    fields: &["flow_m3h", "volume_m3", "pressure_mpa", "temperature_c"],
    float32: true,
};

/// 5000 `reading` lines as emgate writes them for one slot: 50 sites of
/// 100 meters, a mix of float32 and scaled-integer electricity meters,
/// steam and gas meters; about 1 % of the meters timed out (no fields,
/// `q=1` and a `q_detail`). Values are seeded, so every run compresses the
/// same bytes.
fn body() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(16);
    let q = field_key("q");
    let q_detail = field_key("q_detail");
    let lag = field_key("lag_ms");
    let mut out = Vec::with_capacity(LINES * 400);
    for i in 0..LINES {
        let site = format!("913501{:04}MA2X{:04}", i / 100, i / 100);
        let meter = format!("s{:02}-m{:03}", i / 100, i % 100);
        let kind = match i % 20 {
            0..=11 => &ELECTRICITY_F32,
            12..=16 => &ELECTRICITY_INT,
            17 | 18 => &STEAM,
            _ => &GAS,
        };
        let prefix = series_prefix(
            "reading",
            &[
                ("site", &site),
                ("meter", &meter),
                ("energy", kind.energy),
                ("level", kind.level),
            ],
        );
        let mut line = LineBuilder::new(&mut out, &prefix);
        if rng.u32(..100) == 0 {
            let detail: Vec<String> = kind
                .fields
                .iter()
                .map(|f| format!("{f}:timeout:not_connected"))
                .collect();
            line.i64(&q, 1).string(&q_detail, &detail.join(","));
        } else {
            for (f, name) in kind.fields.iter().enumerate() {
                // A magnitude per field position, so columns look alike
                // across meters as real ones do.
                let scale = [230.0, 15.0, 4.0, 1000.0, 0.95, 50.0, 1.0e5][f % 7];
                let raw = scale * (0.5 + rng.f64());
                let value = if kind.float32 {
                    f64::from(raw as f32)
                } else {
                    f64::from((raw * 100.0) as u32) * 0.01
                };
                line.f64(&field_key(name), value);
            }
            line.i64(&q, 0);
        }
        line.i64(&lag, i64::from(rng.u32(20..400)));
        line.finish(SLOT);
    }
    out
}

/// gzip through `flate2` (emgate's `sinks::influx::gzip`).
fn flate2_gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::new(level),
    );
    enc.write_all(body).expect("write to Vec");
    enc.finish().expect("finish to Vec")
}

/// gzip through `miniz_oxide` directly: RFC 1952 header, raw deflate,
/// CRC-32 and length, the same bytes on the wire as `GzEncoder` writes.
fn miniz_gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, level as u8));
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out
}

type Gzip = fn(&[u8], u32) -> Vec<u8>;

const BACKENDS: [(&str, Gzip); 2] = [("flate2", flate2_gzip), ("miniz_oxide", miniz_gzip)];

fn bench_gzip(c: &mut Criterion) {
    let body = body();
    println!(
        "body: {} lines, {} bytes ({} bytes per line)",
        LINES,
        body.len(),
        body.len() / LINES
    );
    for (name, gz) in BACKENDS {
        for level in LEVELS {
            let packed = gz(&body, level);
            let mut back = Vec::with_capacity(body.len());
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .expect("valid gzip");
            assert!(back == body, "{name} level {level} does not round-trip");
            println!(
                "{name:<12} level {level}: {:>8} bytes, ratio {:.2}",
                packed.len(),
                body.len() as f64 / packed.len() as f64
            );
        }
    }
    let mut g = c.benchmark_group("gzip");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(10);
    for (name, gz) in BACKENDS {
        for level in LEVELS {
            g.bench_function(format!("{name}/{level}"), |b| {
                b.iter(|| gz(black_box(&body), level));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_gzip);
criterion_main!(benches);
