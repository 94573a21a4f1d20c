//! A real VictoriaMetrics for integration tests of the `/api/v2/write` path,
//! on the shared [`Peer`] lifecycle: own temporary storage directory and
//! port, stopped when dropped. Read-back goes through `/api/v1/export` after
//! `/internal/force_flush`, polled until the expected samples appear (new
//! series take a while).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::peer::{Peer, PeerKind, raw_get, require_binary};

/// How to run `victoria-metrics`.
struct Kind {
    binary: PathBuf,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "victoria-metrics"
    }

    fn command(&self, dir: &Path, ports: &[u16]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("-httpListenAddr=127.0.0.1:{}", ports[0]))
            .arg(format!("-storageDataPath={}", dir.join("data").display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .arg("-loggerLevel=ERROR");
        command
    }

    fn ready(&self, ports: &[u16]) -> bool {
        raw_get(ports[0], "/health")
            .is_some_and(|(status, body)| status == 200 && body.trim() == "OK")
    }
}

/// A running `victoria-metrics`.
pub struct Victoria {
    peer: Peer,
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
    /// Starts victoria-metrics and waits until `GET /health` answers "OK".
    pub fn start() -> Victoria {
        let binary = require_binary(
            "victoria-metrics",
            "install it with `apt-get install victoria-metrics`",
        );
        Victoria {
            peer: Peer::start(Kind { binary }),
            http: reqwest::Client::new(),
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer.port(0))
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
