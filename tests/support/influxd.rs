//! A real InfluxDB 1.x (`influxd`) for integration tests: own temporary
//! directory, HTTP and RPC ports on 127.0.0.1, stopped (and its data deleted)
//! when dropped. Fault tests can also stop it and start it again on the same
//! ports and data directory, to play an outage of the server. Also a
//! blocking `raw_get` used to wait for readiness without a runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, require_binary};

/// A running `influxd`.
pub struct Influxd {
    child: Child,
    /// False between [`Influxd::stop`] and [`Influxd::start_again`].
    running: bool,
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Influxd {
    /// Starts `influxd` and waits until `GET /ping` answers 204. Retries with
    /// fresh ports when a port was taken in between; panics with influxd's
    /// output when it never becomes ready.
    pub fn start() -> Influxd {
        let binary = require_binary("influxd", "install it with `apt-get install influxdb`");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temporary directory");
            let port = free_port();
            let rpc_port = free_port();
            let conf = dir.path().join("influxdb.conf");
            let d = dir.path().display();
            std::fs::write(
                &conf,
                format!(
                    "reporting-disabled = true\n\
                     bind-address = \"127.0.0.1:{rpc_port}\"\n\
                     [meta]\n  dir = \"{d}/meta\"\n\
                     [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
                     [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
                     [logging]\n  level = \"warn\"\n\
                     [monitor]\n  store-enabled = false\n"
                ),
            )
            .expect("write influxdb.conf");
            let child = spawn(&binary, dir.path());
            let mut me = Influxd {
                child,
                running: true,
                binary: binary.clone(),
                port,
                dir,
                http: reqwest::Client::new(),
            };
            match me.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return me,
                Err(why) => {
                    last_log = format!("{why}\n--- influxd output ---\n{}", me.log());
                    // Dropping `me` stops the process before the next attempt.
                }
            }
        }
        panic!("influxd did not become ready after 3 attempts: {last_log}");
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits for it
    /// to exit. Ports, data and log stay, for [`Influxd::start_again`].
    /// Writes meanwhile fail with "connection refused".
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        super::terminate(&mut self.child, Duration::from_secs(15));
    }

    /// Starts the server again after [`Influxd::stop`], on the same ports and
    /// data directory (1.x keeps its databases and points across a restart),
    /// and waits until `GET /ping` answers. Panics with the server's output
    /// when it does not come back within 30 s (e.g. another process took the
    /// port meanwhile).
    pub fn start_again(&mut self) {
        assert!(!self.running, "influxd is already running");
        let mut why = String::new();
        // The port may still be held by the old process's sockets for a
        // moment: a few attempts, each a fresh process.
        for _attempt in 0..3 {
            self.child = spawn(&self.binary, self.dir.path());
            self.running = true;
            match self.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return,
                Err(e) => {
                    why = e;
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    self.running = false;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        panic!(
            "influxd did not come back on port {}: {why}\n--- influxd output ---\n{}",
            self.port,
            self.log()
        );
    }

    /// Whether the server is running (not between `stop` and `start_again`).
    pub fn is_running(&self) -> bool {
        self.running
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("influxd exited early with {status}"));
            }
            if let Some((204, _)) = raw_get(self.port, "/ping") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no 204 from GET /ping within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What influxd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default()
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Data directory of this instance.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `CREATE DATABASE name`.
    pub async fn create_database(&self, name: &str) {
        let v = self
            .post_query(&format!("CREATE DATABASE \"{name}\""))
            .await;
        assert!(
            v["results"][0].get("error").is_none(),
            "CREATE DATABASE {name}: {v}"
        );
    }

    async fn post_query(&self, q: &str) -> serde_json::Value {
        let resp = self
            .http
            .post(format!("{}/query", self.url()))
            .query(&[("q", q)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("influxd query {q:?}: {e}"));
        let text = resp.text().await.expect("influxd query answer");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("query answer {text:?}: {e}"))
    }

    /// Runs an InfluxQL query (epoch=s) and returns the JSON answer; panics on
    /// an HTTP error or an InfluxQL error.
    pub async fn query(&self, db: &str, influxql: &str) -> serde_json::Value {
        let resp = self
            .http
            .get(format!("{}/query", self.url()))
            .query(&[("db", db), ("q", influxql), ("epoch", "s")])
            .send()
            .await
            .unwrap_or_else(|e| panic!("influxd query {influxql:?}: {e}"));
        let status = resp.status();
        let text = resp.text().await.expect("influxd query answer");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("query answer {text:?}: {e}"));
        assert!(status.is_success(), "query {influxql:?}: {status} {v}");
        assert!(
            v["results"][0].get("error").is_none(),
            "query {influxql:?}: {v}"
        );
        v
    }

    /// The rows of the first series of a query: `values` as given by InfluxDB
    /// (time first), or empty when there is no series.
    pub async fn rows(&self, db: &str, influxql: &str) -> Vec<Vec<serde_json::Value>> {
        let v = self.query(db, influxql).await;
        let Some(values) = v["results"][0]["series"][0]["values"].as_array() else {
            return Vec::new();
        };
        values
            .iter()
            .map(|row| row.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The single number a count query returns (`SELECT count(field) FROM m`),
    /// 0 when there is no series.
    pub async fn count(&self, db: &str, influxql: &str) -> u64 {
        let rows = self.rows(db, influxql).await;
        match rows.first() {
            None => 0,
            Some(row) => row
                .get(1)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("count query {influxql:?} answered {row:?}")),
        }
    }
}

impl Influxd {
    /// The slots (epoch seconds) of `measurement` per value of the `meter`
    /// tag, read through `field` (which every point has, e.g. `q`).
    /// Panics when a meter has the same timestamp twice, which InfluxDB
    /// cannot return for one series.
    pub async fn meter_slots(
        &self,
        db: &str,
        measurement: &str,
        field: &str,
    ) -> BTreeMap<String, BTreeSet<i64>> {
        let v = self
            .query(
                db,
                &format!("SELECT \"{field}\" FROM \"{measurement}\" GROUP BY \"meter\""),
            )
            .await;
        let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        let Some(series) = v["results"][0]["series"].as_array() else {
            return out;
        };
        for s in series {
            let meter = s["tags"]["meter"]
                .as_str()
                .unwrap_or_else(|| panic!("series without a meter tag: {s}"))
                .to_owned();
            let slots = out.entry(meter.clone()).or_default();
            for row in s["values"].as_array().into_iter().flatten() {
                let t = row[0]
                    .as_i64()
                    .unwrap_or_else(|| panic!("time of {row} is not epoch seconds"));
                assert!(slots.insert(t), "{meter}: slot {t} returned twice");
            }
        }
        out
    }
}

/// Starts `influxd run` with the configuration in `dir`, appending its
/// output to `dir/influxd.log`.
fn spawn(binary: &Path, dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("influxd.log"))
        .expect("influxd log file");
    Command::new(binary)
        .arg("run")
        .arg("-config")
        .arg(dir.join("influxdb.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}

impl Drop for Influxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking `GET path` on 127.0.0.1:port with a short timeout: status and
/// body, or `None` when nothing answers. Good enough for readiness checks of
/// servers that answer with `Connection: close` semantics on HTTP/1.0.
pub fn raw_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
