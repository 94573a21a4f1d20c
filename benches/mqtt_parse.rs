//! Benchmark of `sources::mqtt::payload`: messages decoded per second on one
//! core, per format, for a typical message of one reading with 10 fields
//! (meter named by the topic, time stamp in the payload). Target (issue 6):
//! ≥ 100 000 JSON messages per second.
//!
//! Run: `cargo bench --bench mqtt_parse -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emgate::config::{Config, from_parts};
use emgate::model::{BrokerId, ReadingBatch};
use emgate::sources::mqtt::BrokerDecoder;

const RECEIVED: i64 = 1_700_000_000_500;

const MAIN: &str = r#"
[gateway]
id = "gw"

[[mqtt]]
id = "b"
host = "127.0.0.1"

[[mqtt.subscriptions]]
topic = "json/{site}/{meter}/up"

[[mqtt.subscriptions]]
topic = "ptr/{meter}"
fields = { "/e/p1" = "p1", "/e/p2" = "p2", "/e/p3" = "p3", "/e/p4" = "p4", "/e/p5" = "p5", "/g/p6" = "p6", "/g/p7" = "p7", "/g/p8" = "p8", "/g/p9" = "p9", "/g/p10" = "p10" }

[[mqtt.subscriptions]]
topic = "rfc/{meter}"
timestamp_unit = "rfc3339"

[[mqtt.subscriptions]]
topic = "lp/{meter}"
format = "line_protocol"
timestamp_unit = "ns"

[[mqtt.subscriptions]]
topic = "csv/{meter}"
format = "csv"
"#;

const SITE: &str = r#"
[site]
id = "s1"
name = "S"
timezone = "Asia/Shanghai"

[[meters]]
id = "meter-0001"
energy = "electricity"
level = 1
profile = "p10"
broker = "b"
"#;

fn profile() -> String {
    use std::fmt::Write as _;
    let mut text = String::from("description = \"10 points\"\n");
    for i in 1..=10 {
        let kind = if i <= 2 { "counter" } else { "gauge" };
        let address = (i - 1) * 2;
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "[[points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {address}\ntype = \"f32\"\nkind = \"{kind}\"\nunit = \"kwh\""
        );
    }
    text
}

fn config() -> Config {
    let p = profile();
    from_parts(MAIN, &[("s.toml", SITE)], &[("p10", p.as_str())])
        .unwrap_or_else(|e| panic!("bench configuration:\n{e}"))
}

fn bench(c: &mut Criterion) {
    let config = config();
    let mut decoder = BrokerDecoder::new(&config, BrokerId(0));
    let json = br#"{"ts":1700000000,"p1":123456.78,"p2":2345.6,"p3":230.1,"p4":229.8,"p5":231.2,"p6":12.5,"p7":12.4,"p8":12.6,"p9":0.98,"p10":50.01}"#;
    let nested = br#"{"ts":1700000000,"e":{"p1":123456.78,"p2":2345.6,"p3":230.1,"p4":229.8,"p5":231.2},"g":{"p6":12.5,"p7":12.4,"p8":12.6,"p9":0.98,"p10":50.01}}"#;
    let rfc = br#"{"ts":"2023-11-15T06:13:20","p1":123456.78,"p2":2345.6,"p3":230.1,"p4":229.8,"p5":231.2,"p6":12.5,"p7":12.4,"p8":12.6,"p9":0.98,"p10":50.01}"#;
    let lp = b"energy,meter=meter-0001 p1=123456.78,p2=2345.6,p3=230.1,p4=229.8,p5=231.2,p6=12.5,p7=12.4,p8=12.6,p9=0.98,p10=50.01 1700000000000000000";
    let csv = b"meter-0001,1700000000,p1=123456.78,p2=2345.6,p3=230.1,p4=229.8,p5=231.2,p6=12.5,p7=12.4,p8=12.6,p9=0.98,p10=50.01";
    let cases: [(&str, &str, &[u8]); 5] = [
        ("json_flat", "json/s1/meter-0001/up", json),
        ("json_pointers", "ptr/meter-0001", nested),
        ("json_rfc3339_site_zone", "rfc/meter-0001", rfc),
        ("line_protocol", "lp/meter-0001", lp),
        ("csv", "csv/meter-0001", csv),
    ];
    let mut group = c.benchmark_group("mqtt_decode_10_fields");
    group.throughput(Throughput::Elements(1));
    let mut out = ReadingBatch::with_capacity(1, 10);
    for (name, topic, payload) in cases {
        // Fails loudly rather than measuring the rejection path.
        out.clear();
        let n = decoder
            .decode(topic, payload, RECEIVED, &mut out)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(
            (n, out.values.iter().filter(|v| v.value.is_nan()).count()),
            (1, 0)
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(decoder.decode(black_box(topic), black_box(payload), RECEIVED, &mut out))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
