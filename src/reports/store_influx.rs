//! [`InfluxStore`]: the report [`Store`] over InfluxQL at `/query`.
//!
//! Why InfluxQL over the v1 query API: it is what InfluxDB 1.x speaks, and
//! InfluxDB 2.x and 3.x answer it too through their v1-compatible `/query`
//! (with `Authorization: Token …` and `db` = the bucket, which on 2.x
//! needs a DBRP mapping: `influx v1 dbrp create --db emgate --rp autogen
//! --bucket-id <id> --default`). So reports read whatever every gateway
//! wrote into one database, and sums over many windows (`site_sums`) are
//! done by the database (`sum() … GROUP BY site, energy, unit`).
//!
//! Answers are asked for in chunks (`chunked=true`), so no server-side row
//! limit cuts a long series short; every failure becomes a [`StoreError`]
//! carrying the server's own text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::{SiteSum, Sites, Store, StoreError, WindowRow};
use crate::config::{InfluxApi, OutputConfig, Secret};
use crate::entries::Entry;

/// Rows per chunk asked of the server.
const CHUNK_SIZE: &str = "10000";

/// How requests are authenticated.
#[derive(Debug, Clone)]
enum Auth {
    /// No credentials.
    None,
    /// InfluxDB 1.x user and password (HTTP basic authentication, so the
    /// password never appears in a URL or a log line).
    Basic(String, Secret),
    /// InfluxDB 2.x/3.x token through the v1-compatible API.
    Token(Secret),
}

/// Where and how to query, before the client is built.
#[derive(Debug, Clone, Default)]
pub struct InfluxOverrides {
    /// Base URL instead of the configuration's `[influxdb] url`.
    pub url: Option<String>,
    /// Database (1.x) or bucket (2.x/3.x) instead of the configuration's.
    pub database: Option<String>,
    /// A 2.x/3.x API token (`Authorization: Token …`) instead of the
    /// configuration's credentials.
    pub token: Option<String>,
}

/// Reads report rows from InfluxDB with InfluxQL.
#[derive(Debug, Clone)]
pub struct InfluxStore {
    http: reqwest::Client,
    /// `<base>/query`.
    query_url: String,
    db: String,
    rp: Option<String>,
    auth: Auth,
}

impl InfluxStore {
    /// The store the configuration's `[influxdb]` points at, with
    /// `overrides` applied (`--url`, `--db`, `--token`).
    ///
    /// # Errors
    /// A message when no database can be named (a file output and no
    /// `--url`/`--db`), or the URL is not one.
    pub fn from_config(
        output: &OutputConfig,
        overrides: &InfluxOverrides,
    ) -> Result<InfluxStore, String> {
        let (url, db, rp, mut auth, timeout) = match output {
            OutputConfig::Influx(cfg) => {
                let (db, rp, auth) = match &cfg.api {
                    InfluxApi::V1 {
                        database,
                        retention_policy,
                        username,
                        password,
                    } => (
                        database.clone(),
                        retention_policy.clone(),
                        username
                            .clone()
                            .map_or(Auth::None, |u| Auth::Basic(u, password.clone())),
                    ),
                    InfluxApi::V2 { bucket, token, .. } => {
                        (bucket.clone(), None, Auth::Token(token.clone()))
                    }
                };
                (Some(cfg.url.clone()), Some(db), rp, auth, cfg.timeout)
            }
            OutputConfig::File(_) => (None, None, None, Auth::None, Duration::from_secs(30)),
        };
        let url = overrides.url.clone().or(url).ok_or_else(|| {
            "the configuration writes to a file, not InfluxDB; reports read InfluxDB: give --url (and --db)"
                .to_owned()
        })?;
        let db = overrides.database.clone().or(db).ok_or_else(|| {
            "no database to read: the configuration has no [influxdb]; give --db".to_owned()
        })?;
        if let Some(token) = &overrides.token {
            auth = Auth::Token(Secret::new(token.clone()));
        }
        InfluxStore::new(&url, &db, rp, auth, timeout.max(Duration::from_secs(30)))
    }

    /// A store on `url` (base URL), database `db`, without credentials.
    ///
    /// # Errors
    /// A message when `url` is not an http(s) URL.
    pub fn open(url: &str, db: &str) -> Result<InfluxStore, String> {
        InfluxStore::new(url, db, None, Auth::None, Duration::from_secs(30))
    }

    fn new(
        url: &str,
        db: &str,
        rp: Option<String>,
        auth: Auth,
        timeout: Duration,
    ) -> Result<InfluxStore, String> {
        let base = url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "InfluxDB URL \"{url}\" is not an http:// or https:// URL"
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(InfluxStore {
            http,
            query_url: format!("{base}/query"),
            db: db.to_owned(),
            rp,
            auth,
        })
    }

    /// The database (or bucket) read.
    #[must_use]
    pub fn database(&self) -> &str {
        &self.db
    }

    /// `<base>/query`, for messages (carries no credentials).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.query_url
    }

    /// Runs one InfluxQL statement and returns its series, chunks joined.
    async fn query(&self, q: &str) -> Result<Vec<Series>, StoreError> {
        let http_err = |message: String| StoreError::Http {
            url: self.query_url.clone(),
            message,
        };
        let mut params = vec![
            ("db", self.db.as_str()),
            ("q", q),
            ("epoch", "s"),
            ("chunked", "true"),
            ("chunk_size", CHUNK_SIZE),
        ];
        if let Some(rp) = &self.rp {
            params.push(("rp", rp));
        }
        let mut req = self.http.get(&self.query_url).query(&params);
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic(user, pass) => req.basic_auth(user, Some(pass.expose())),
            Auth::Token(token) => req.header("Authorization", format!("Token {}", token.expose())),
        };
        let resp = req.send().await.map_err(|e| http_err(error_chain(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| http_err(format!("reading the answer: {}", error_chain(&e))))?;
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| text.trim().chars().take(300).collect());
            return Err(http_err(format!("HTTP {status}: {detail}")));
        }
        parse_answer(&text).map_err(|e| match e {
            AnswerError::Server(message) => http_err(format!("query failed: {message}")),
            AnswerError::Shape(message) => StoreError::Answer {
                url: self.query_url.clone(),
                message,
            },
        })
    }
}

/// An error and its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

/// One series of an answer.
#[derive(Debug, Default)]
struct Series {
    tags: HashMap<String, String>,
    columns: Vec<String>,
    values: Vec<Vec<Value>>,
}

impl Series {
    fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The tag `name`, or the column `name` of `row` when it is not a tag.
    fn text(&self, row: &[Value], name: &str) -> Option<String> {
        if let Some(t) = self.tags.get(name) {
            return Some(t.clone());
        }
        let i = self.col(name)?;
        row.get(i)?.as_str().map(str::to_owned)
    }

    fn num(&self, row: &[Value], name: &str) -> Option<f64> {
        row.get(self.col(name)?)?.as_f64()
    }
}

/// Why an answer gave no series.
#[derive(Debug)]
enum AnswerError {
    /// The server said why (`error` at the top or in a result).
    Server(String),
    /// Not the JSON a query answers with.
    Shape(String),
}

/// Parses a (possibly chunked) `/query` answer: one or more JSON objects.
fn parse_answer(text: &str) -> Result<Vec<Series>, AnswerError> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let doc = doc.map_err(|e| AnswerError::Shape(format!("not JSON: {e}")))?;
        if let Some(e) = doc.get("error").and_then(Value::as_str) {
            return Err(AnswerError::Server(e.to_owned()));
        }
        let results = doc
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| AnswerError::Shape("no \"results\" in the answer".to_owned()))?;
        for r in results {
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                return Err(AnswerError::Server(e.to_owned()));
            }
            for s in r
                .get("series")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let columns = s
                    .get("columns")
                    .and_then(Value::as_array)
                    .ok_or_else(|| AnswerError::Shape("a series without columns".to_owned()))?
                    .iter()
                    .map(|c| c.as_str().unwrap_or_default().to_owned())
                    .collect();
                let tags = s
                    .get("tags")
                    .and_then(Value::as_object)
                    .map(|t| {
                        t.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let values = s
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|rows| {
                        rows.iter()
                            .map(|r| r.as_array().cloned().unwrap_or_default())
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Series {
                    tags,
                    columns,
                    values,
                });
            }
        }
    }
    Ok(out)
}

/// An InfluxQL string literal: `'…'` with `\` and `'` escaped.
#[must_use]
pub fn quote_str(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('\'');
    q
}

/// The condition on the `site` tag; `None` for every site.
fn site_condition(sites: &Sites) -> Option<String> {
    match sites {
        Sites::All => None,
        // No site at all: a condition no point meets.
        Sites::Only(list) if list.is_empty() => Some("\"site\" = ''".to_owned()),
        Sites::Only(list) => {
            let any: Vec<String> = list
                .iter()
                .map(|s| format!("\"site\" = {}", quote_str(s)))
                .collect();
            Some(format!("({})", any.join(" OR ")))
        }
    }
}

/// The `WHERE` conditions shared by the window queries: time, window, sites.
fn conditions(window: &str, sites: &Sites, from: i64, to: i64) -> String {
    let mut w = format!(
        "time >= {from}s AND time < {to}s AND \"window\" = {}",
        quote_str(window)
    );
    if let Some(c) = site_condition(sites) {
        let _ = write!(w, " AND {c}");
    }
    w
}

fn time_of(row: &[Value]) -> i64 {
    row.first().and_then(Value::as_i64).unwrap_or(0)
}

impl Store for InfluxStore {
    async fn site_rows(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        let q = format!(
            "SELECT amount, kgce, controlled_kgce, coverage FROM site_consumption WHERE {} GROUP BY \"site\", \"energy\", \"unit\"",
            conditions(window, sites, from, to)
        );
        let mut out = Vec::new();
        for s in self.query(&q).await? {
            for row in &s.values {
                let Some(amount) = s.num(row, "amount") else {
                    continue;
                };
                out.push(WindowRow {
                    time: time_of(row),
                    site: s.text(row, "site").unwrap_or_default(),
                    meter: None,
                    energy: s.text(row, "energy").unwrap_or_default(),
                    unit: s.text(row, "unit").unwrap_or_default(),
                    window: window.to_owned(),
                    amount,
                    kgce: s.num(row, "kgce"),
                    controlled_kgce: s.num(row, "controlled_kgce"),
                    coverage: s.num(row, "coverage"),
                    estimated: None,
                });
            }
        }
        out.sort_by(|a, b| (&a.site, a.time, &a.energy).cmp(&(&b.site, b.time, &b.energy)));
        Ok(out)
    }

    async fn meter_rows(
        &self,
        window: &str,
        sites: &Sites,
        level: Option<u8>,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowRow>, StoreError> {
        let mut cond = conditions(window, sites, from, to);
        if let Some(level) = level {
            let _ = write!(cond, " AND \"level\" = '{level}'");
        }
        let q = format!(
            "SELECT amount, kgce, coverage, estimated FROM consumption WHERE {cond} GROUP BY \"site\", \"meter\", \"energy\", \"unit\""
        );
        let mut out = Vec::new();
        for s in self.query(&q).await? {
            for row in &s.values {
                let Some(amount) = s.num(row, "amount") else {
                    continue;
                };
                out.push(WindowRow {
                    time: time_of(row),
                    site: s.text(row, "site").unwrap_or_default(),
                    meter: s.text(row, "meter"),
                    energy: s.text(row, "energy").unwrap_or_default(),
                    unit: s.text(row, "unit").unwrap_or_default(),
                    window: window.to_owned(),
                    amount,
                    kgce: s.num(row, "kgce"),
                    controlled_kgce: None,
                    coverage: s.num(row, "coverage"),
                    estimated: s
                        .col("estimated")
                        .and_then(|i| row.get(i))
                        .and_then(Value::as_bool),
                });
            }
        }
        out.sort_by(|a, b| (&a.site, &a.meter, a.time).cmp(&(&b.site, &b.meter, b.time)));
        Ok(out)
    }

    async fn site_sums(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> Result<Vec<SiteSum>, StoreError> {
        let q = format!(
            "SELECT sum(amount) AS amount, sum(kgce) AS kgce, sum(controlled_kgce) AS controlled_kgce, count(amount) AS windows FROM site_consumption WHERE {} GROUP BY \"site\", \"energy\", \"unit\"",
            conditions(window, sites, from, to)
        );
        let mut out = Vec::new();
        for s in self.query(&q).await? {
            for row in &s.values {
                let windows = s.num(row, "windows").unwrap_or(0.0);
                if windows <= 0.0 {
                    continue;
                }
                out.push(SiteSum {
                    site: s.text(row, "site").unwrap_or_default(),
                    energy: s.text(row, "energy").unwrap_or_default(),
                    unit: s.text(row, "unit").unwrap_or_default(),
                    amount: s.num(row, "amount").unwrap_or(0.0),
                    kgce: s.num(row, "kgce").unwrap_or(0.0),
                    controlled_kgce: s.num(row, "controlled_kgce").unwrap_or(0.0),
                    windows: windows as u64,
                });
            }
        }
        out.sort_by(|a, b| (&a.site, &a.energy).cmp(&(&b.site, &b.energy)));
        Ok(out)
    }

    async fn entries(&self, sites: &Sites) -> Result<Vec<Entry>, StoreError> {
        // Entries are stamped with the time they were entered: any time.
        let mut q = "SELECT * FROM entry".to_owned();
        if let Some(c) = site_condition(sites) {
            let _ = write!(q, " WHERE {c}");
        }
        let mut out = Vec::new();
        for s in self.query(&q).await? {
            for row in &s.values {
                let text = |name: &str| s.text(row, name).unwrap_or_default();
                let meter = s.text(row, "meter").filter(|m| !m.is_empty());
                let boiler = s.text(row, "boiler").filter(|b| !b.is_empty());
                out.push(Entry {
                    id: text("id"),
                    site: text("site"),
                    item: text("item"),
                    meter,
                    boiler,
                    period: text("period"),
                    period_start: text("period_start"),
                    period_end: text("period_end"),
                    value: s.num(row, "value").unwrap_or(f64::NAN),
                    unit: text("unit"),
                    entered_by: text("entered_by"),
                    reason: text("reason"),
                    supersedes: text("supersedes"),
                    time: time_of(row),
                });
            }
        }
        out.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(quote_str("fz"), "'fz'");
        assert_eq!(quote_str("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn conditions_name_window_sites_and_time() {
        let c = conditions("1d", &Sites::Only(vec!["a".into(), "b'x".into()]), 10, 20);
        assert_eq!(
            c,
            "time >= 10s AND time < 20s AND \"window\" = '1d' AND (\"site\" = 'a' OR \"site\" = 'b\\'x')"
        );
    }

    #[test]
    fn answers_chunks_and_errors_parse() {
        let text = r#"{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"site":"a"},"columns":["time","amount"],"values":[[1,2.5]]}],"partial":true}]}
{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"site":"a"},"columns":["time","amount"],"values":[[2,3.5]]}]}]}"#;
        let s = parse_answer(text).expect("parse");
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].num(&s[1].values[0], "amount"), Some(3.5));
        assert_eq!(s[0].text(&s[0].values[0], "site").as_deref(), Some("a"));
        match parse_answer(r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#) {
            Err(AnswerError::Server(m)) => assert_eq!(m, "database not found: x"),
            other => panic!("{other:?}"),
        }
        match parse_answer(r#"{"error":"bad"}"#) {
            Err(AnswerError::Server(m)) => assert_eq!(m, "bad"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_answer("<html>"), Err(AnswerError::Shape(_))));
    }
}
