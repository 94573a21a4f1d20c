//! The v2 writer (through the `influxdb2` crate) against a real
//! VictoriaMetrics `/api/v2/write`: exact samples and timestamps come back,
//! with and without gzip, so `precision=s` and our compression both work.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::victoria::{Series, Victoria};
use emgate::config::{InfluxApi, InfluxConfig, Secret};
use emgate::sinks::influx::Writer;

const T0: i64 = 1_700_000_000;

fn config(url: &str, gzip: bool) -> InfluxConfig {
    InfluxConfig {
        url: url.to_owned(),
        api: InfluxApi::V2 {
            org: "org".to_owned(),
            bucket: "bucket".to_owned(),
            token: Secret::new("token"),
        },
        batch_size: 1000,
        flush_interval: Duration::from_secs(1),
        gzip,
        gzip_level: emgate::config::DEFAULT_GZIP_LEVEL,
        timeout: Duration::from_secs(10),
        max_lines_per_sec: None,
        dead_letter: "data/dead-letter.lp".into(),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        max_in_flight: 1,
    }
}

fn series(name: &str, meter: &str, values: Vec<f64>, timestamps: Vec<i64>) -> Series {
    Series {
        metric: BTreeMap::from([
            ("__name__".to_owned(), name.to_owned()),
            ("meter".to_owned(), meter.to_owned()),
        ]),
        values,
        timestamps,
    }
}

#[tokio::test]
async fn writes_exact_samples_with_and_without_gzip() {
    let vm = Victoria::start();
    let n: usize = 40;
    for (meter, gzip) in [("plain", false), ("gz", true)] {
        let writer = Writer::new(&config(&vm.url(), gzip)).expect("writer");
        writer.ping().await.expect("ping");
        writer.create_database().await.expect("no-op for v2");
        let mut body = Vec::new();
        for i in 0..n {
            body.extend_from_slice(
                format!(
                    "reading,meter={meter} value={}.5,energy={}i {}\n",
                    i,
                    i * 10,
                    T0 + i as i64 * 60
                )
                .as_bytes(),
            );
        }
        writer.write(&body, n).await.expect("write");
    }

    let got = vm.export(r#"{__name__=~"reading_.*"}"#, 4 * n).await;
    let ts: Vec<i64> = (0..n).map(|i| (T0 + i as i64 * 60) * 1000).collect();
    let energy: Vec<f64> = (0..n).map(|i| (i * 10) as f64).collect();
    let value: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
    assert_eq!(
        got,
        vec![
            series("reading_energy", "gz", energy.clone(), ts.clone()),
            series("reading_energy", "plain", energy, ts.clone()),
            series("reading_value", "gz", value.clone(), ts.clone()),
            series("reading_value", "plain", value, ts),
        ]
    );
}
