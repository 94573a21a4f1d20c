//! The v1 writer against a real InfluxDB 1.6 (`influxd`): exact points come
//! back, gzip or not, timestamps in seconds; a type conflict is a permanent
//! "partial write" whose valid lines *are* stored; an unknown database is a
//! permanent 404.

use std::time::Duration;

use crate::support::influxd::Influxd;
use emgate::config::{DEFAULT_GZIP_LEVEL, InfluxApi, InfluxConfig, Secret};
use emgate::sinks::influx::classify::dropped_lines;
use emgate::sinks::influx::{WriteError, Writer};
use serde_json::json;

const T0: i64 = 1_700_000_000;

fn config(url: &str, database: &str, gzip: bool) -> InfluxConfig {
    InfluxConfig {
        url: url.to_owned(),
        api: InfluxApi::V1 {
            database: database.to_owned(),
            retention_policy: None,
            username: None,
            password: Secret::default(),
        },
        batch_size: 1000,
        flush_interval: Duration::from_secs(1),
        gzip,
        gzip_level: DEFAULT_GZIP_LEVEL,
        timeout: Duration::from_secs(10),
        max_lines_per_sec: None,
        dead_letter: "data/dead-letter.lp".into(),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        max_in_flight: 1,
    }
}

/// `n` lines: meter `m{i%3}`, float field `value = i + 0.25`, integer field
/// `energy = i * 1000`, one second apart from [`T0`].
fn lines(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        body.extend_from_slice(
            format!(
                "reading,meter=m{},site=s1 value={}.25,energy={}i {}\n",
                i % 3,
                i,
                i * 1000,
                T0 + i as i64
            )
            .as_bytes(),
        );
    }
    body
}

/// Plain, gzip at the default level (the `zlib-rs` backend's level 1, whose
/// fast path emits its own block layout) and gzip at level 9: influxd
/// decodes each to the same exact points.
#[tokio::test]
async fn writes_exact_points_with_and_without_gzip() {
    let influxd = Influxd::start();
    for (db, gzip, level) in [
        ("plain", false, DEFAULT_GZIP_LEVEL),
        ("with_gzip", true, DEFAULT_GZIP_LEVEL),
        ("gzip_level_9", true, 9),
    ] {
        let cfg = InfluxConfig {
            gzip_level: level,
            ..config(&influxd.url(), db, gzip)
        };
        let writer = Writer::new(&cfg).expect("writer");
        writer.ping().await.expect("ping");
        writer.create_database().await.expect("create database");
        let n = 250;
        writer.write(&lines(n), n).await.expect("write");

        assert_eq!(
            influxd.count(db, "SELECT count(value) FROM reading").await,
            n as u64,
            "{db}"
        );
        let rows = influxd
            .rows(
                db,
                "SELECT value, energy, meter, site FROM reading ORDER BY time",
            )
            .await;
        let expected: Vec<Vec<serde_json::Value>> = (0..n)
            .map(|i| {
                vec![
                    json!(T0 + i as i64),
                    json!(i as f64 + 0.25),
                    json!(i * 1000),
                    json!(format!("m{}", i % 3)),
                    json!("s1"),
                ]
            })
            .collect();
        assert_eq!(rows, expected, "{db}");
    }
}

#[tokio::test]
async fn partial_write_is_permanent_and_stores_the_valid_lines() {
    let influxd = Influxd::with_database("db").await;
    let writer = Writer::new(&config(&influxd.url(), "db", false)).expect("writer");
    writer
        .write(format!("reading,meter=a value=1.5 {T0}\n").as_bytes(), 1)
        .await
        .expect("first write");

    // The middle line sends `value` as an integer: a field type conflict.
    let batch = format!(
        "reading,meter=b value=2.5 {}\nreading,meter=c value=7i {}\nreading,meter=d value=4.5 {}\n",
        T0 + 1,
        T0 + 2,
        T0 + 3
    );
    match writer.write(batch.as_bytes(), 3).await {
        Err(WriteError::Permanent {
            status,
            message,
            partial,
        }) => {
            assert_eq!(status, 400);
            assert!(partial, "{message}");
            assert!(message.contains("field type conflict"), "{message}");
            assert_eq!(dropped_lines(&message), Some(1), "{message}");
        }
        other => panic!("expected a permanent partial write, got {other:?}"),
    }

    // InfluxDB 1.x stored the two valid lines of the rejected batch.
    let rows = influxd
        .rows("db", "SELECT meter, value FROM reading ORDER BY time")
        .await;
    assert_eq!(
        rows,
        vec![
            vec![json!(T0), json!("a"), json!(1.5)],
            vec![json!(T0 + 1), json!("b"), json!(2.5)],
            vec![json!(T0 + 3), json!("d"), json!(4.5)],
        ]
    );
}

#[tokio::test]
async fn unknown_database_is_permanent_404() {
    let influxd = Influxd::start();
    let writer = Writer::new(&config(&influxd.url(), "nope", false)).expect("writer");
    match writer.write(&lines(2), 2).await {
        Err(WriteError::Permanent {
            status,
            message,
            partial,
        }) => {
            assert_eq!(status, 404);
            assert!(!partial);
            assert!(message.contains("database not found"), "{message}");
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn unparsable_line_is_permanent_400_quoting_it() {
    let influxd = Influxd::with_database("db").await;
    let writer = Writer::new(&config(&influxd.url(), "db", false)).expect("writer");
    match writer.write(b"reading,meter=a value= 1\n", 1).await {
        Err(WriteError::Permanent {
            status,
            message,
            partial,
        }) => {
            assert_eq!(status, 400);
            assert!(!partial, "{message}");
            assert!(message.contains("reading,meter=a value= 1"), "{message}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
}
