//! A real VictoriaMetrics for integration tests of the `/api/v2/write` path:
//! own temporary storage directory and port, stopped when dropped.
//! Read-back goes through `/api/v1/export` after `/internal/force_flush`,
//! polled until the expected samples appear (new series take a while).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::influxd::raw_get;
use super::{free_port, require_binary};

/// A running `victoria-metrics`.
pub struct Victoria {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// One exported series.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Series {
    /// Labels, `__name__` included (`measurement_field`).
    pub metric: BTreeMap<String, String>,
    /// Sample values.
    pub values: Vec<f64>,
    /// Sample timestamps, milliseconds since the epoch.
    pub timestamps: Vec<i64>,
}

impl Victoria {
    /// Starts victoria-metrics and waits until `GET /health` answers "OK";
    /// panics with its output when it does not.
    pub fn start() -> Victoria {
        let binary = require_binary(
            "victoria-metrics",
            "install it with `apt-get install victoria-metrics`",
        );
        let mut last = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let port = free_port();
            let log_path = dir.path().join("victoria.log");
            let log = std::fs::File::create(&log_path).expect("victoria log file");
            let child = Command::new(&binary)
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!(
                    "-storageDataPath={}",
                    dir.path().join("data").display()
                ))
                .arg("-retentionPeriod=100y")
                .arg("-search.latencyOffset=0s")
                .arg("-search.disableCache")
                .arg("-loggerLevel=ERROR")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut me = Victoria {
                child,
                port,
                dir,
                http: reqwest::Client::new(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            let why = loop {
                if let Ok(Some(status)) = me.child.try_wait() {
                    break format!("victoria-metrics exited early with {status}");
                }
                if let Some((200, body)) = raw_get(port, "/health")
                    && body.trim() == "OK"
                {
                    return me;
                }
                if Instant::now() > deadline {
                    break "GET /health did not answer OK within 20 s".to_owned();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            last = format!(
                "{why}\n--- victoria-metrics output ---\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        panic!("victoria-metrics did not become ready after 3 attempts: {last}");
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Series matching `selector` (e.g. `{__name__=~"reading_.*"}`), sorted by
    /// labels, once they hold at least `expected_samples` samples in total
    /// or after 30 s (whatever is there then; the caller's exact assertions
    /// report the difference).
    pub async fn export(&self, selector: &str, expected_samples: usize) -> Vec<Series> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let flush = self
                .http
                .get(format!("{}/internal/force_flush", self.url()))
                .send()
                .await
                .expect("force_flush");
            assert!(
                flush.status().is_success(),
                "force_flush: {}",
                flush.status()
            );
            let text = self
                .http
                .get(format!("{}/api/v1/export", self.url()))
                .query(&[("match[]", selector)])
                .send()
                .await
                .expect("export")
                .text()
                .await
                .expect("export body");
            let mut series: Vec<Series> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("export line {l:?}: {e}"))
                })
                .collect();
            let samples: usize = series.iter().map(|s| s.values.len()).sum();
            if samples >= expected_samples || Instant::now() > deadline {
                series.sort_by(|a, b| a.metric.cmp(&b.metric));
                for s in &mut series {
                    // Export order is not guaranteed: sort samples by time.
                    let mut pairs: Vec<(i64, f64)> = s
                        .timestamps
                        .iter()
                        .copied()
                        .zip(s.values.iter().copied())
                        .collect();
                    pairs.sort_by_key(|p| p.0);
                    s.timestamps = pairs.iter().map(|p| p.0).collect();
                    s.values = pairs.iter().map(|p| p.1).collect();
                }
                return series;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
