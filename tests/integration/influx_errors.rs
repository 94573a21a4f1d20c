//! Error paths the real servers here cannot produce (influxd 1.6 and
//! VictoriaMetrics never answer 401, 413, 429 or 500 on demand, and
//! VictoriaMetrics accepts anything), against a small fake HTTP/1.1 server of
//! our own. Each test checks what went over the wire and how the writer and
//! the sink task reacted; both the v1 and the v2 writer are exercised.

use std::fmt::Write as _;
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emgate::config::{InfluxApi, InfluxConfig, OutputConfig, Secret};
use emgate::sinks::influx::{WriteError, Writer};
use emgate::sinks::uploader::{SinkSummary, UploaderOptions, run as run_uploader};
use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::telemetry::Stats;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A request as the fake server saw it (body gunzipped when it was gzip).
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn lines(&self) -> usize {
        self.body.split_inclusive(|&b| b == b'\n').count()
    }
}

/// What the fake answers.
enum Reply {
    /// Status, extra headers, body.
    Answer(u16, Vec<(&'static str, String)>, String),
    /// Keep the connection open and never answer.
    Silent,
}

fn status(code: u16) -> Reply {
    Reply::Answer(code, Vec::new(), String::new())
}

type Responder = dyn Fn(usize, &Request) -> Reply + Send + Sync;

struct Fake {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Fake {
    /// Starts the fake; `respond(n, request)` answers the `n`-th request (0-based).
    async fn start(respond: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = Arc::clone(&requests);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&recorded), Arc::clone(&respond)));
            }
        });
        Fake {
            port,
            requests,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves one keep-alive connection.
async fn serve(stream: TcpStream, recorded: Arc<Mutex<Vec<Request>>>, respond: Arc<Responder>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let gzipped = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        if gzipped {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("request body is valid gzip");
            body = plain;
        }
        let request = Request {
            method,
            target,
            headers,
            body,
        };
        let n = {
            let mut all = recorded.lock().expect("lock");
            all.push(request.clone());
            all.len() - 1
        };
        match respond(n, &request) {
            Reply::Silent => {
                // Hold the connection until the client gives up.
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
                return;
            }
            Reply::Answer(code, extra, body) => {
                let mut head = format!(
                    "HTTP/1.1 {code} Fake\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    let _ = write!(head, "{k}: {v}\r\n");
                }
                head.push_str("\r\n");
                head.push_str(&body);
                if stream.get_mut().write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn v1(url: &str) -> InfluxConfig {
    InfluxConfig {
        url: url.to_owned(),
        api: InfluxApi::V1 {
            database: "db".to_owned(),
            retention_policy: None,
            username: Some("user".to_owned()),
            password: Secret::new("pw"),
        },
        batch_size: 1000,
        flush_interval: Duration::from_mins(1),
        gzip: false,
        gzip_level: 1,
        timeout: Duration::from_secs(10),
        max_lines_per_sec: None,
        dead_letter: "data/dead-letter.lp".into(),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        max_in_flight: 1,
        batch_max_bytes: 1 << 20,
    }
}

fn v2(url: &str) -> InfluxConfig {
    InfluxConfig {
        api: InfluxApi::V2 {
            org: "org".to_owned(),
            bucket: "bucket".to_owned(),
            token: Secret::new("secret-token"),
        },
        ..v1(url)
    }
}

/// Both flavours, each with gzip off and on (a gzip body in flight is
/// inflated again only to split it or to dead-letter it).
fn both(url: &str) -> [(&'static str, InfluxConfig); 4] {
    let gzip = |cfg: InfluxConfig| InfluxConfig { gzip: true, ..cfg };
    [
        ("v1", v1(url)),
        ("v2", v2(url)),
        ("v1 gzip", gzip(v1(url))),
        ("v2 gzip", gzip(v2(url))),
    ]
}

/// `n` distinct lines.
fn lines(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        body.extend_from_slice(
            format!("reading,meter=m{i} value={i} {}\n", 1_700_000_000 + i).as_bytes(),
        );
    }
    body
}

/// Appends `lines(n)` to a fresh spool, one line per record, and runs the
/// uploader until it has drained it; returns its summary and counters.
async fn run_sink(cfg: InfluxConfig, n: usize) -> (SinkSummary, Arc<Stats>) {
    let (summary, stats, _) = run_sink_dead_letter(cfg, n).await;
    (summary, stats)
}

/// [`run_sink`], also returning the dead-letter file's text ("" when absent).
async fn run_sink_dead_letter(cfg: InfluxConfig, n: usize) -> (SinkSummary, Arc<Stats>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead_letter = dir.path().join("dead-letter.lp");
    let output = OutputConfig::Influx(InfluxConfig {
        dead_letter: dead_letter.clone(),
        ..cfg
    });
    let mut options = UploaderOptions::for_output(&output);
    // Long enough that a hang shows as a failed assertion, not a lost line.
    options.shutdown_grace = Duration::from_secs(30);
    let (spool, _) = Spool::open(SpoolConfig {
        dir: dir.path().join("spool"),
        max_bytes: 1 << 20,
        segment_bytes: 1 << 16,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("spool");
    let body = lines(n);
    for line in body.split_inclusive(|&b| b == b'\n') {
        spool.append(line).expect("append");
    }
    let stats = Arc::new(Stats::default());
    let input_done = CancellationToken::new();
    input_done.cancel();
    let summary = run_uploader(
        output,
        options,
        spool.clone(),
        Arc::clone(&stats),
        input_done,
    )
    .await
    .expect("uploader starts");
    assert_eq!(spool.stats().records, 0, "spool drained");
    let dead = std::fs::read_to_string(&dead_letter).unwrap_or_default();
    (summary, stats, dead)
}

fn summary(written: u64, rejected: u64) -> SinkSummary {
    SinkSummary {
        lines_written: written,
        lines_rejected: rejected,
        lines_left_in_spool: 0,
    }
}

#[tokio::test]
async fn requests_carry_auth_precision_and_gzip() {
    let fake = Fake::start(|_, _| status(204)).await;
    let body = lines(5);
    for gzip in [false, true] {
        for mut cfg in [v1(&fake.url()), v2(&fake.url())] {
            cfg.gzip = gzip;
            Writer::new(&cfg)
                .expect("writer")
                .write(&body, 5)
                .await
                .expect("write");
        }
    }
    let got = fake.requests();
    assert_eq!(got.len(), 4);
    for (i, r) in got.iter().enumerate() {
        let gzip = i >= 2;
        let v1 = i % 2 == 0;
        assert_eq!(r.method, "POST");
        if v1 {
            assert_eq!(r.target, "/write?db=db&precision=s");
            // base64("user:pw")
            assert_eq!(r.header("authorization"), Some("Basic dXNlcjpwdw=="));
        } else {
            assert_eq!(r.target, "/api/v2/write?bucket=bucket&org=org&precision=s");
            assert_eq!(r.header("authorization"), Some("Token secret-token"));
        }
        assert_eq!(
            r.header("content-encoding"),
            gzip.then_some("gzip"),
            "request {i}"
        );
        assert_eq!(r.body, body, "request {i}");
    }
}

#[tokio::test]
async fn unauthorized_is_permanent_and_sent_once() {
    let fake = Fake::start(|_, _| {
        Reply::Answer(
            401,
            Vec::new(),
            r#"{"error":"authorization failed"}"#.to_owned(),
        )
    })
    .await;
    for (name, cfg) in both(&fake.url()) {
        let result = Writer::new(&cfg).expect("writer").write(&lines(3), 3).await;
        assert_eq!(
            result,
            Err(WriteError::Permanent {
                status: 401,
                message: "authorization failed".to_owned(),
                partial: false,
            }),
            "{name}"
        );
    }
    assert_eq!(fake.requests().len(), 4, "one request per configuration");
}

#[tokio::test]
async fn too_large_batches_are_split_until_each_line_arrives_once() {
    const K: usize = 6;
    const N: usize = 50;
    for (name, cfg) in both("http://unused") {
        let fake = Fake::start(|_, r| {
            if r.lines() > K {
                status(413)
            } else {
                status(204)
            }
        })
        .await;
        let cfg = InfluxConfig {
            url: fake.url(),
            batch_size: N,
            ..cfg
        };
        let (sum, stats) = run_sink(cfg, N).await;
        assert_eq!(sum, summary(N as u64, 0), "{name}");
        let accepted: Vec<u8> = fake
            .requests()
            .into_iter()
            .filter(|r| r.lines() <= K)
            .flat_map(|r| r.body)
            .collect();
        // Every line exactly once, in order.
        assert_eq!(
            String::from_utf8_lossy(&accepted),
            String::from_utf8_lossy(&lines(N)),
            "{name}"
        );
        assert_eq!(Stats::get(&stats.lines_written), N as u64);
        assert_eq!(Stats::get(&stats.lines_rejected), 0);
    }
}

#[tokio::test]
async fn single_line_too_large_is_rejected_not_retried() {
    let fake = Fake::start(|_, r| {
        if r.body.windows(4).any(|w| w == b"m13 ") {
            status(413)
        } else {
            status(204)
        }
    })
    .await;
    let cfg = InfluxConfig {
        batch_size: 20,
        ..v1(&fake.url())
    };
    let (sum, stats) = run_sink(cfg, 20).await;
    assert_eq!(sum, summary(19, 1));
    assert_eq!(Stats::get(&stats.lines_rejected), 1);
    // 20 -> 10+10 -> 5+5 -> 2+3 -> 1+2 -> the line alone: every request is distinct.
    let requests = fake.requests();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.lines() == 1 && r.body.windows(4).any(|w| w == b"m13 "))
            .count(),
        1
    );
}

#[tokio::test]
async fn retry_after_is_parsed_and_the_write_then_succeeds() {
    let busy = |n: usize, _: &Request| {
        if n == 0 {
            Reply::Answer(
                429,
                vec![("Retry-After", "1".to_owned())],
                r#"{"error":"slow down"}"#.to_owned(),
            )
        } else {
            status(204)
        }
    };

    let fake = Fake::start(busy).await;
    match Writer::new(&v1(&fake.url()))
        .expect("writer")
        .write(&lines(1), 1)
        .await
    {
        Err(WriteError::Retryable {
            retry_after,
            reason,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)), "{reason}");
            assert!(
                reason.contains("429") && reason.contains("slow down"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The influxdb2 crate drops response headers: v2 sees the 429 without
    // its Retry-After and falls back to the sink's backoff.
    let fake = Fake::start(busy).await;
    match Writer::new(&v2(&fake.url()))
        .expect("writer")
        .write(&lines(1), 1)
        .await
    {
        Err(WriteError::Retryable { retry_after, .. }) => assert_eq!(retry_after, None),
        other => panic!("{other:?}"),
    }

    for (name, cfg) in both("http://unused") {
        let fake = Fake::start(busy).await;
        let cfg = InfluxConfig {
            url: fake.url(),
            batch_size: 10,
            ..cfg
        };
        let (sum, stats) = run_sink(cfg, 10).await;
        assert_eq!(sum, summary(10, 0), "{name}");
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{name}");
        assert_eq!(requests[0].body, lines(10));
        assert_eq!(requests[1].body, lines(10));
        assert_eq!(Stats::get(&stats.write_retries), 1);
        assert_eq!(Stats::get(&stats.write_requests), 2);
    }
}

#[tokio::test]
async fn server_error_is_retried_with_the_same_batch() {
    for (name, cfg) in both("http://unused") {
        let fake = Fake::start(|n, _| {
            if n < 2 {
                Reply::Answer(500, Vec::new(), r#"{"error":"engine: timeout"}"#.to_owned())
            } else {
                status(204)
            }
        })
        .await;
        let cfg = InfluxConfig {
            url: fake.url(),
            batch_size: 8,
            ..cfg
        };
        let (sum, stats) = run_sink(cfg, 8).await;
        assert_eq!(sum, summary(8, 0), "{name}");
        let requests = fake.requests();
        assert_eq!(requests.len(), 3, "{name}");
        assert!(requests.iter().all(|r| r.body == lines(8)), "{name}");
        assert_eq!(Stats::get(&stats.write_retries), 2);
    }
}

#[tokio::test]
async fn partial_write_is_not_retried() {
    let partial = r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"reading\" is type integer, already exists as type float dropped=1"}"#;
    for (name, cfg) in both("http://unused") {
        let fake =
            Fake::start(move |_, _| Reply::Answer(400, Vec::new(), partial.to_owned())).await;
        let writer = Writer::new(&InfluxConfig {
            url: fake.url(),
            ..cfg.clone()
        })
        .expect("writer");
        match writer.write(&lines(4), 4).await {
            Err(WriteError::Permanent {
                status, partial, ..
            }) => {
                assert_eq!((status, partial), (400, true), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }

        let fake =
            Fake::start(move |_, _| Reply::Answer(400, Vec::new(), partial.to_owned())).await;
        let cfg = InfluxConfig {
            url: fake.url(),
            batch_size: 4,
            ..cfg
        };
        let (sum, stats, dead) = run_sink_dead_letter(cfg, 4).await;
        // One line dropped by the server, three stored: counted as such.
        assert_eq!(sum, summary(3, 1), "{name}");
        // The whole request goes to the dead-letter file after a comment line
        // with the status and the server's message.
        let dead_lines: Vec<&str> = dead.lines().collect();
        assert_eq!(dead_lines.len(), 5, "{name}: {dead}");
        assert!(
            dead_lines[0].starts_with("# ")
                && dead_lines[0].contains(" status=400 lines=4 rejected=1 error=")
                && dead_lines[0].contains("field type conflict"),
            "{name}: {}",
            dead_lines[0]
        );
        assert_eq!(
            dead_lines[1..].join("\n") + "\n",
            String::from_utf8(lines(4)).expect("utf8"),
            "{name}"
        );
        assert_eq!(fake.requests().len(), 1, "{name}");
        assert_eq!(Stats::get(&stats.write_retries), 0);
    }
}

#[tokio::test]
async fn silent_server_times_out_as_retryable() {
    let fake = Fake::start(|_, _| Reply::Silent).await;
    for (name, cfg) in both(&fake.url()) {
        let cfg = InfluxConfig {
            timeout: Duration::from_millis(300),
            ..cfg
        };
        let writer = Writer::new(&cfg).expect("writer");
        match writer.write(&lines(2), 2).await {
            Err(WriteError::Retryable {
                retry_after,
                reason,
            }) => {
                assert_eq!(retry_after, None, "{name}");
                assert!(
                    reason.contains("timed out") || reason.contains("no answer"),
                    "{name}: {reason}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            matches!(writer.ping().await, Err(WriteError::Retryable { .. })),
            "{name}"
        );
    }
}
