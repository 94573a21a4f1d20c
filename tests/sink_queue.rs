//! The sink task end to end: everything reaches a real influxd at shutdown
//! and after the flush interval; with the destination down the queue keeps
//! its bound, drops the oldest lines and counts exactly what it dropped and
//! lost; the file sink writes exact bytes.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use emgate::config::{FileSinkConfig, InfluxApi, InfluxConfig, OutputConfig, Secret};
use emgate::sinks::LineChunk;
use emgate::sinks::queue::{SinkOptions, SinkSummary, run, run_with};
use emgate::stats::Stats;
use support::influxd::Influxd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const T0: u64 = 1_700_000_000;

fn influx(url: &str, batch_size: usize, queue_max_lines: usize) -> InfluxConfig {
    InfluxConfig {
        url: url.to_owned(),
        api: InfluxApi::V1 {
            database: "db".to_owned(),
            retention_policy: None,
            username: None,
            password: Secret::default(),
        },
        batch_size,
        flush_interval: Duration::from_hours(1),
        gzip: true,
        timeout: Duration::from_secs(10),
        queue_max_lines,
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
    }
}

/// Lines `from..to`: integer field `value = i`, one second apart.
fn lines(from: usize, to: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in from..to {
        body.extend_from_slice(
            format!("reading,meter=m{} value={i}i {}\n", i % 4, T0 + i as u64).as_bytes(),
        );
    }
    body
}

/// Sends lines `0..n` in chunks of 1, 2, 3, ... 7 lines, round robin.
async fn send(tx: &mpsc::Sender<LineChunk>, n: usize) {
    let mut i = 0;
    let mut size = 1;
    while i < n {
        let to = (i + size).min(n);
        tx.send(LineChunk {
            body: lines(i, to),
            lines: to - i,
        })
        .await
        .expect("sink alive");
        i = to;
        size = size % 7 + 1;
    }
}

#[tokio::test]
async fn shutdown_flushes_everything_to_influxd() {
    let influxd = Influxd::start();
    influxd.create_database("db").await;
    let n = 2500;
    let (tx, rx) = mpsc::channel(8);
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    // batch_size 1000, flush interval an hour: the last 500 lines only leave
    // because of the shutdown.
    let task = tokio::spawn(run(
        OutputConfig::Influx(influx(&influxd.url(), 1000, 100_000)),
        rx,
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    send(&tx, n).await;
    // The pollers stop: the channel closes, the sink flushes what it holds.
    // (Cancelling `shutdown` first would also cut the buffer at that moment,
    // making the number of requests depend on timing.)
    drop(tx);
    let summary = task.await.expect("task").expect("sink");
    assert!(!shutdown.is_cancelled());
    assert_eq!(
        summary,
        SinkSummary {
            lines_written: n as u64,
            lines_dropped: 0,
            lines_rejected: 0,
            lines_lost_at_shutdown: 0,
        }
    );
    assert_eq!(Stats::get(&stats.lines_written), n as u64);
    assert_eq!(Stats::get(&stats.write_requests), 3);
    assert_eq!(stats.lines_queued.load(Ordering::Relaxed), 0);
    assert_eq!(
        influxd
            .count("db", "SELECT count(value) FROM reading")
            .await,
        n as u64
    );
    let sum = influxd.rows("db", "SELECT sum(value) FROM reading").await;
    assert_eq!(sum[0][1], serde_json::json!((0..n).sum::<usize>()));
    let last = influxd
        .rows(
            "db",
            "SELECT value, meter FROM reading ORDER BY time DESC LIMIT 1",
        )
        .await;
    assert_eq!(
        last,
        vec![vec![
            serde_json::json!(T0 + n as u64 - 1),
            serde_json::json!(n - 1),
            serde_json::json!(format!("m{}", (n - 1) % 4)),
        ]]
    );
}

#[tokio::test]
async fn flush_interval_sends_a_partial_batch() {
    let influxd = Influxd::start();
    influxd.create_database("db").await;
    let cfg = InfluxConfig {
        flush_interval: Duration::from_millis(200),
        ..influx(&influxd.url(), 1000, 100_000)
    };
    let (tx, rx) = mpsc::channel(8);
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(run(
        OutputConfig::Influx(cfg),
        rx,
        Arc::clone(&stats),
        CancellationToken::new(),
    ));
    send(&tx, 30).await;
    // The channel stays open: only the flush interval can send these.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Stats::get(&stats.lines_written) < 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        influxd
            .count("db", "SELECT count(value) FROM reading")
            .await,
        30
    );
    drop(tx);
    let summary = task.await.expect("task").expect("sink");
    assert_eq!(summary.lines_written, 30);
}

#[tokio::test]
async fn cancellation_alone_ends_the_task_after_the_grace_period() {
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let output = OutputConfig::Influx(influx(&url, 10, 100));
    let mut options = SinkOptions::for_output(&output);
    options.shutdown_grace = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel(4);
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with(
        output,
        options,
        rx,
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    send(&tx, 25).await;
    shutdown.cancel();
    // `tx` stays alive: the task must still stop, counting what it held.
    let summary = task.await.expect("task").expect("sink");
    assert_eq!(
        summary,
        SinkSummary {
            lines_written: 0,
            lines_dropped: 0,
            lines_rejected: 0,
            lines_lost_at_shutdown: 25,
        }
    );
    assert!(tx.is_closed());
}

#[tokio::test]
async fn destination_down_keeps_the_bound_and_counts_drops_and_losses() {
    // Nothing listens on this port: every write is refused.
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let output = OutputConfig::Influx(influx(&url, 10, 50));
    let mut options = SinkOptions::for_output(&output);
    options.shutdown_grace = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel(4);
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_with(
        output,
        options,
        rx,
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    send(&tx, 200).await;
    drop(tx);
    shutdown.cancel();
    let summary = task.await.expect("task").expect("sink");
    // The queue holds at most 50 lines: the 150 oldest were dropped, the 50
    // newest were still held when the grace period ended.
    assert_eq!(
        summary,
        SinkSummary {
            lines_written: 0,
            lines_dropped: 150,
            lines_rejected: 0,
            lines_lost_at_shutdown: 50,
        }
    );
    assert_eq!(Stats::get(&stats.lines_dropped), 150);
    assert_eq!(Stats::get(&stats.lines_written), 0);
    assert_eq!(stats.lines_queued.load(Ordering::Relaxed), 0);
    let requests = Stats::get(&stats.write_requests);
    assert!(requests >= 1);
    assert_eq!(Stats::get(&stats.write_retries), requests);
}

#[tokio::test]
async fn file_sink_writes_exact_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/dir/out.lp");
    let (tx, rx) = mpsc::channel(8);
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(run(
        OutputConfig::File(FileSinkConfig {
            path: path.clone(),
            batch_size: 9,
            flush_interval: Duration::from_hours(1),
        }),
        rx,
        Arc::clone(&stats),
        CancellationToken::new(),
    ));
    send(&tx, 100).await;
    drop(tx);
    let summary = task.await.expect("task").expect("sink");
    assert_eq!(summary.lines_written, 100);
    assert_eq!(Stats::get(&stats.lines_written), 100);
    // 100 lines in batches of 9: 11 full ones and the rest at shutdown.
    assert_eq!(Stats::get(&stats.write_requests), 12);
    assert_eq!(std::fs::read(&path).expect("file written"), lines(0, 100));
}
