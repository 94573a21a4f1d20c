//! Several write requests in flight (`[influxdb] max_in_flight`), against a
//! real `influxd` 1.x, with acknowledgements kept in spool order.
//!
//! Every test builds the same backlog by hand: 256 spool records of 10
//! lines each, one series `m v=<i>i <T0 + i>` for line `i`, so line `i` is
//! the point at second `T0 + i` and InfluxQL counts are exact. With
//! `batch_size = 640` and the uploader reading 64 records per spool read,
//! every batch is exactly 64 records = 640 lines: batch `b` holds lines
//! `640 b .. 640 (b + 1)`, 4 batches in all (the kill test uses 1 024 records,
//! 16 batches). A small HTTP proxy of our own sits in front of influxd
//! where a test needs to hold, reject or watch one batch; it recognises a
//! batch by the timestamp of its first line. No timing is asserted: every
//! hold is released by an event (another batch arriving), never by a clock.

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emgate::config::{DEFAULT_GZIP_LEVEL, InfluxApi, InfluxConfig, OutputConfig, Secret};
use emgate::sinks::uploader::{SinkSummary, UploaderOptions, run as run_uploader};
use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::telemetry::Stats;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::influxd::Influxd;

const T0: i64 = 1_700_000_000;
const DB: &str = "inflight";
const LINES_PER_RECORD: usize = 10;
const BATCH_LINES: usize = 640;

/// What the proxy does with one batch.
enum Action {
    /// Pass it on to influxd and return influxd's answer.
    Forward,
    /// Answer this status and body without forwarding.
    Answer(u16, String),
    /// Never answer (the connection stays open).
    Hold,
}

type Hook = dyn Fn(usize) -> Pin<Box<dyn Future<Output = Action> + Send>> + Send + Sync;

/// An HTTP/1.1 proxy in front of influxd; `hook(batch)` decides per request.
struct Proxy {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
    /// Body length of every request, in arrival order.
    lengths: Arc<Mutex<Vec<usize>>>,
}

impl Proxy {
    async fn start(
        upstream: String,
        hook: impl Fn(usize) -> Pin<Box<dyn Future<Output = Action> + Send>> + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hook: Arc<Hook> = Arc::new(hook);
        let lengths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lengths);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hook, seen) = (Arc::clone(&hook), Arc::clone(&seen));
                tokio::spawn(serve(stream, upstream.clone(), hook, seen));
            }
        });
        Proxy {
            port,
            accept,
            lengths,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves one keep-alive connection.
async fn serve(
    stream: TcpStream,
    upstream: String,
    hook: Arc<Hook>,
    lengths: Arc<Mutex<Vec<usize>>>,
) {
    let client = reqwest::Client::new();
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0;
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.expect("body");
        lengths.lock().expect("lengths").push(length);
        let (status, text) = match hook(batch_of(&body)).await {
            Action::Forward => {
                let r = client
                    .post(format!("{upstream}{target}"))
                    .body(body)
                    .send()
                    .await
                    .expect("forward to influxd");
                (r.status().as_u16(), r.text().await.expect("influxd answer"))
            }
            Action::Answer(status, text) => (status, text),
            Action::Hold => std::future::pending().await,
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The batch a request body starts: its first line's timestamp, less T0,
/// over the lines per batch.
fn batch_of(body: &[u8]) -> usize {
    let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let ts: i64 = std::str::from_utf8(first)
        .expect("utf-8")
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("timestamp");
    usize::try_from(ts - T0).expect("after T0") / BATCH_LINES
}

fn config(url: &str, dead_letter: &Path, max_in_flight: usize) -> OutputConfig {
    OutputConfig::Influx(InfluxConfig {
        url: url.to_owned(),
        api: InfluxApi::V1 {
            database: DB.to_owned(),
            retention_policy: None,
            username: None,
            password: Secret::default(),
        },
        batch_size: BATCH_LINES,
        flush_interval: Duration::from_millis(50),
        gzip: false,
        gzip_level: DEFAULT_GZIP_LEVEL,
        timeout: Duration::from_secs(30),
        max_lines_per_sec: None,
        dead_letter: dead_letter.to_owned(),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        max_in_flight,
        batch_max_bytes: 1 << 20,
    })
}

fn open_spool(dir: &Path) -> Spool {
    Spool::open(SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: 1 << 30,
        segment_bytes: 1 << 20,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("spool")
    .0
}

/// Appends `records` records of [`LINES_PER_RECORD`] lines: line `i` is
/// `m v=<i>i <T0 + i>`.
fn fill(spool: &Spool, records: usize) {
    for r in 0..records {
        let mut record = String::new();
        for l in 0..LINES_PER_RECORD {
            let i = r * LINES_PER_RECORD + l;
            writeln!(record, "m v={i}i {}", T0 + i as i64).expect("write to a String");
        }
        spool.append(record.as_bytes()).expect("append");
    }
}

/// Runs the uploader over `spool` with the input already done.
async fn drain(output: OutputConfig, spool: &Spool, max_in_flight: usize) -> SinkSummary {
    let mut options = UploaderOptions::for_output(&output);
    options.max_in_flight = max_in_flight;
    // Long enough that a hang shows as a failed assertion, not a lost line.
    options.shutdown_grace = Duration::from_mins(1);
    let input_done = CancellationToken::new();
    input_done.cancel();
    run_uploader(
        output,
        options,
        spool.clone(),
        Arc::new(Stats::default()),
        input_done,
    )
    .await
    .expect("uploader starts")
}

async fn stored(influxd: &Influxd) -> u64 {
    influxd.count(DB, "SELECT count(v) FROM m").await
}

fn summary(written: u64, rejected: u64) -> SinkSummary {
    SinkSummary {
        lines_written: written,
        lines_rejected: rejected,
        lines_left_in_spool: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_in_flight_drain_a_backlog_exactly() {
    let influxd = Influxd::with_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open_spool(dir.path());
    // 1 024 records x 10 lines = 10 240 lines = 16 batches of 640.
    fill(&spool, 1024);
    let output = config(&influxd.url(), &dir.path().join("dead.lp"), 4);
    let got = drain(output, &spool, 4).await;
    assert_eq!(got, summary(10_240, 0));
    assert_eq!(spool.stats().records, 0, "spool drained");
    assert_eq!(spool.stats().acked_records, 1024);
    assert_eq!(stored(&influxd).await, 10_240);
    assert!(
        !dir.path().join("dead.lp").exists(),
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_answer_waits_for_the_earlier_batch() {
    let influxd = Influxd::with_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open_spool(dir.path());
    // 256 records = 2 560 lines = batches 0..4.
    fill(&spool, 256);
    // Batch 0 is held until batch 2 arrives. With two in flight, batch 2 is
    // only sent after batch 1's answer was handled by the uploader, so at
    // that moment batch 1 is written but must not be acknowledged yet.
    let third_arrived = Arc::new(Notify::new());
    let acked_when_third_arrived = Arc::new(Mutex::new(None));
    let hook = {
        let third_arrived = Arc::clone(&third_arrived);
        let acked = Arc::clone(&acked_when_third_arrived);
        let spool = spool.clone();
        move |batch: usize| -> Pin<Box<dyn Future<Output = Action> + Send>> {
            let third_arrived = Arc::clone(&third_arrived);
            let acked = Arc::clone(&acked);
            let spool = spool.clone();
            Box::pin(async move {
                match batch {
                    0 => third_arrived.notified().await,
                    2 => {
                        *acked.lock().expect("lock") = Some(spool.stats().acked_records);
                        // notify_one stores a permit if batch 0 waits later.
                        third_arrived.notify_one();
                    }
                    _ => {}
                }
                Action::Forward
            })
        }
    };
    let proxy = Proxy::start(influxd.url(), hook).await;
    let output = config(&proxy.url(), &dir.path().join("dead.lp"), 2);
    let got = drain(output, &spool, 2).await;
    assert_eq!(
        *acked_when_third_arrived.lock().expect("lock"),
        Some(0),
        "batch 1 answered before batch 0: nothing may be acknowledged yet"
    );
    assert_eq!(got, summary(2_560, 0));
    assert_eq!(spool.stats().records, 0);
    assert_eq!(spool.stats().acked_records, 256);
    assert_eq!(stored(&influxd).await, 2_560);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_batch_in_flight_is_dead_lettered_and_blocks_nothing() {
    let influxd = Influxd::with_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open_spool(dir.path());
    // 1 024 records = 10 240 lines = batches 0..16; batch 5 is refused.
    fill(&spool, 1024);
    let hook = |batch: usize| -> Pin<Box<dyn Future<Output = Action> + Send>> {
        Box::pin(async move {
            if batch == 5 {
                Action::Answer(400, r#"{"error":"test refuses batch 5"}"#.to_owned())
            } else {
                Action::Forward
            }
        })
    };
    let proxy = Proxy::start(influxd.url(), hook).await;
    let dead = dir.path().join("dead.lp");
    let got = drain(config(&proxy.url(), &dead, 4), &spool, 4).await;
    // 16 batches x 640 lines; batch 5 (lines 3 200..3 840) rejected.
    assert_eq!(got, summary(15 * 640, 640));
    assert_eq!(spool.stats().records, 0, "the rejection blocked nothing");
    assert_eq!(stored(&influxd).await, 9_600);
    let missing = influxd
        .count(
            DB,
            &format!(
                "SELECT count(v) FROM m WHERE time >= {}s AND time < {}s",
                T0 + 3200,
                T0 + 3840
            ),
        )
        .await;
    assert_eq!(missing, 0, "batch 5 is not stored");
    let text = std::fs::read_to_string(&dead).expect("dead-letter file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 641, "one comment line and the 640 lines");
    assert!(
        lines[0].ends_with(" status=400 lines=640 rejected=640 error=test refuses batch 5"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], format!("m v=3200i {}", T0 + 3200));
    assert_eq!(lines[640], format!("m v=3839i {}", T0 + 3839));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_drain_then_restarted_stores_every_point_once() {
    let influxd = Influxd::with_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open_spool(dir.path());
    // 1 024 records = 10 240 lines = batches 0..16.
    fill(&spool, 1024);
    // Batch 3 never gets an answer; when batch 6 arrives (4 in flight: 3
    // held, later ones answered and waiting behind it), the uploader is
    // killed: its task is aborted with requests in flight, as a SIGKILL
    // would leave it, and the spool is reopened from disk.
    let sixth = Arc::new(Notify::new());
    let hook = {
        let sixth = Arc::clone(&sixth);
        move |batch: usize| -> Pin<Box<dyn Future<Output = Action> + Send>> {
            let sixth = Arc::clone(&sixth);
            Box::pin(async move {
                match batch {
                    3 => Action::Hold,
                    6 => {
                        sixth.notify_one();
                        Action::Hold
                    }
                    _ => Action::Forward,
                }
            })
        }
    };
    let proxy = Proxy::start(influxd.url(), hook).await;
    let output = config(&proxy.url(), &dir.path().join("dead.lp"), 4);
    let task = {
        let spool = spool.clone();
        tokio::spawn(async move { drain(output, &spool, 4).await })
    };
    sixth.notified().await;
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    // Only batches 0..3 may be acknowledged: 3 is unanswered.
    let acked = spool.stats().acked_records;
    assert!(
        acked <= 3 * 64,
        "acknowledged {acked} records past the unanswered batch"
    );
    drop(spool);
    drop(proxy);
    let before = stored(&influxd).await;
    let spool = open_spool(dir.path());
    let left = spool.stats().records;
    // Everything acknowledged is stored; batch 3 is not.
    assert!(
        before >= (1024 - left) * 10,
        "stored {before}, spool left {left}"
    );
    // The ack file is replaced on the blocking pool: an ack under way when
    // the task was aborted may still land on disk after `acked` was read
    // (as it may before a SIGKILL). The reopened spool starts at the ack on
    // disk: at least `acked`, never past the unanswered batch 3.
    assert!(
        left <= 1024 - acked && 1024 - left <= 3 * 64,
        "the reopened spool starts at the ack: {left} records left, {acked} acknowledged"
    );
    let got = drain(
        config(&influxd.url(), &dir.path().join("dead.lp"), 4),
        &spool,
        4,
    )
    .await;
    assert_eq!(
        got,
        summary(left * 10, 0),
        "the restart re-sends the unacked records only"
    );
    assert_eq!(spool.stats().records, 0);
    // Points re-sent overwrite themselves: each line is stored exactly once.
    assert_eq!(stored(&influxd).await, 10_240);
    // And each with its own value: 0 + 1 + ... + 10 239 = 10 239 x 10 240 / 2.
    assert_eq!(influxd.count(DB, "SELECT sum(v) FROM m").await, 52_423_680);
}

/// `batch_max_bytes` closes a batch before `batch_size` lines: with 10-line
/// records of 250 bytes (lines `m v=<i>i <T0 + i>`, i < 10 240: 24 or 25
/// bytes each, see below) and a 4 096-byte cap, a request carries the
/// records that fit plus at most one more, never 640 lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_max_bytes_bounds_every_request_body() {
    let influxd = Influxd::with_database(DB).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = open_spool(dir.path());
    fill(&spool, 1024);
    let proxy = Proxy::start(influxd.url(), |_| Box::pin(async { Action::Forward })).await;
    let OutputConfig::Influx(mut c) = config(&proxy.url(), &dir.path().join("dead.lp"), 4) else {
        unreachable!("config() builds an InfluxDB output")
    };
    c.batch_max_bytes = 4096;
    let got = drain(OutputConfig::Influx(c), &spool, 4).await;
    assert_eq!(got, summary(10_240, 0));
    assert_eq!(stored(&influxd).await, 10_240);
    // Line i is "m v=" + i + "i " + (T0 + i) + "\n": 4 + digits(i) + 2 + 10 + 1.
    let line = |i: usize| 17 + i.to_string().len();
    let record = |r: usize| (r * 10..r * 10 + 10).map(line).sum::<usize>();
    let total: usize = (0..1024).map(record).sum();
    let lengths = proxy.lengths.lock().expect("lengths").clone();
    assert_eq!(lengths.iter().sum::<usize>(), total, "every byte sent once");
    let largest_record = record(1023);
    assert!(
        lengths.iter().all(|&n| n < 4096 + largest_record),
        "a body holds at most one record past the cap: {lengths:?}"
    );
    // Without the cap the 10 240 lines go as 16 bodies of 640 lines; with it,
    // no body reaches 640 lines (about 16 000 bytes).
    assert!(
        lengths.len() >= total / (4096 + largest_record),
        "{}",
        lengths.len()
    );
    assert!(lengths.len() > 16, "{}", lengths.len());
}
