//! A real InfluxDB 1.x (`influxd`) for integration tests, on the shared
//! [`Peer`] lifecycle: own temporary directory, HTTP and RPC ports on
//! 127.0.0.1, stopped (and its data deleted) when dropped. Fault tests stop
//! it and start it again on the same ports and data directory to play an
//! outage of the server (1.x keeps its databases and points across it).
//! Also the queries the tests read it back with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::peer::{Peer, PeerKind, raw_get, require_binary};

/// How to run `influxd`: ports are HTTP, then RPC.
struct Kind {
    binary: PathBuf,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "influxd"
    }

    fn ports(&self) -> usize {
        2
    }

    fn prepare(&self, dir: &Path, ports: &[u16]) {
        let (port, rpc_port) = (ports[0], ports[1]);
        let d = dir.display();
        std::fs::write(
            dir.join("influxdb.conf"),
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
    }

    fn command(&self, dir: &Path, _ports: &[u16]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .arg("-config")
            .arg(dir.join("influxdb.conf"));
        command
    }

    fn ready(&self, ports: &[u16]) -> bool {
        matches!(raw_get(ports[0], "/ping"), Some((204, _)))
    }

    fn stop_grace(&self) -> Duration {
        Duration::from_secs(15)
    }
}

/// One series of a query answer: column names (`time` first) and rows.
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl Table {
    /// The index of column `name`; panics naming the columns there are.
    pub fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("column {name} in {:?}", self.columns))
    }
}

/// A running `influxd`.
pub struct Influxd {
    peer: Peer,
    http: reqwest::Client,
}

impl Influxd {
    /// Starts `influxd` and waits until `GET /ping` answers 204.
    pub fn start() -> Influxd {
        let binary = require_binary("influxd", "install it with `apt-get install influxdb`");
        Influxd {
            peer: Peer::start(Kind { binary }),
            http: reqwest::Client::new(),
        }
    }

    /// [`Influxd::start`], then `CREATE DATABASE db`.
    pub async fn with_database(db: &str) -> Influxd {
        let influxd = Influxd::start();
        influxd.create_database(db).await;
        influxd
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits for it
    /// to exit; writes meanwhile fail with "connection refused".
    pub fn stop(&mut self) {
        self.peer.stop();
    }

    /// Starts the server again after [`Influxd::stop`], on the same ports
    /// and data directory, and waits until `GET /ping` answers.
    pub fn start_again(&mut self) {
        self.peer.start_again();
    }

    /// Whether the server is running (not between `stop` and `start_again`).
    pub fn is_running(&self) -> bool {
        self.peer.is_running()
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// HTTP port.
    pub fn port(&self) -> u16 {
        self.peer.port(0)
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

    /// The first series of a query as a [`Table`]; panics when there is none.
    pub async fn table(&self, db: &str, influxql: &str) -> Table {
        let v = self.query(db, influxql).await;
        let series = &v["results"][0]["series"][0];
        let columns = series["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("no columns in the answer to {influxql:?}: {v}"))
            .iter()
            .map(|c| c.as_str().expect("column name").to_owned())
            .collect();
        let rows = series["values"]
            .as_array()
            .unwrap_or_else(|| panic!("no rows in the answer to {influxql:?}: {v}"))
            .iter()
            .map(|row| row.as_array().cloned().unwrap_or_default())
            .collect();
        Table { columns, rows }
    }

    /// The points `meter` has in `reading` (`count(q)`, which every point has).
    pub async fn meter_count(&self, db: &str, meter: &str) -> u64 {
        let q = format!("SELECT count(q) FROM reading WHERE meter = '{meter}'");
        self.count(db, &q).await
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
