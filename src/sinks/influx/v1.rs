//! InfluxDB 1.x writes by plain HTTP: `POST /write?db=&rp=&precision=s`.
//!
//! No client crate is needed for one POST, and this keeps full control of the
//! answer: status, `Retry-After` and body all reach [`classify`](super::classify).
//! Credentials go in a basic `Authorization` header, never in the query
//! string (where a proxy log would keep them).

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, Url};

use super::classify::{classify, short_message};
use super::{WriteError, WriterError, transport};
use crate::config::{InfluxConfig, Secret};

/// The v1 endpoint of one database.
pub struct V1 {
    http: reqwest::Client,
    write_url: Url,
    ping_url: Url,
    query_url: Url,
    database: String,
    auth: Option<(String, Secret)>,
    /// Bodies arrive gzip-compressed (`gzip = true`).
    gzip: bool,
}

impl V1 {
    /// Prepares the URLs and the HTTP client; a path in `base` is kept
    /// (`http://proxy/influx` writes to `http://proxy/influx/write`).
    ///
    /// # Errors
    /// [`WriterError::Client`] when the HTTP client cannot be built.
    pub fn new(
        base: &Url,
        database: &str,
        retention_policy: Option<&str>,
        username: Option<&str>,
        password: &Secret,
        cfg: &InfluxConfig,
    ) -> Result<V1, WriterError> {
        let mut root = base.clone();
        // Credentials written into the URL become the basic auth (unless
        // configured explicitly) and leave the URL.
        let url_auth = (!root.username().is_empty()).then(|| {
            (
                root.username().to_owned(),
                Secret::new(root.password().unwrap_or_default()),
            )
        });
        let _ = root.set_password(None);
        let _ = root.set_username("");
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        root.set_query(None);
        let join = |p: &str| {
            root.join(p).map_err(|e| WriterError::InvalidUrl {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })
        };
        let mut write_url = join("write")?;
        {
            let mut q = write_url.query_pairs_mut();
            q.append_pair("db", database);
            if let Some(rp) = retention_policy {
                q.append_pair("rp", rp);
            }
            q.append_pair("precision", "s");
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| WriterError::Client(e.to_string()))?;
        Ok(V1 {
            http,
            write_url,
            ping_url: join("ping")?,
            query_url: join("query")?,
            database: database.to_owned(),
            auth: match username {
                Some(u) => Some((u.to_owned(), password.clone())),
                None => url_auth,
            },
            gzip: cfg.gzip,
        })
    }

    fn auth(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Some((user, password)) => req.basic_auth(user, Some(password.expose())),
            None => req,
        }
    }

    /// One write request of a body [`Writer::pack`](super::Writer::pack) made.
    ///
    /// # Errors
    /// The classified failure (see [`WriteError`]).
    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        let mut req = self
            .http
            .post(self.write_url.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let resp = self.auth(req).send().await.map_err(transport)?;
        answer(resp).await
    }

    /// `GET /ping`: 204 when the server runs.
    ///
    /// # Errors
    /// The classified failure (see [`WriteError`]).
    pub async fn ping(&self) -> Result<(), WriteError> {
        let resp = self
            .auth(self.http.get(self.ping_url.clone()))
            .send()
            .await
            .map_err(transport)?;
        answer(resp).await
    }

    /// `POST /query?q=CREATE DATABASE "db"`. InfluxQL errors arrive with
    /// status 200 inside the JSON results; they are permanent.
    ///
    /// # Errors
    /// The classified failure (see [`WriteError`]).
    pub async fn create_database(&self) -> Result<(), WriteError> {
        let q = format!("CREATE DATABASE {}", quote_ident(&self.database));
        let resp = self
            .auth(self.http.post(self.query_url.clone()))
            .query(&[("q", q.as_str())])
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        classify(status, None, &text)?;
        let error = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("results")?
                    .as_array()?
                    .iter()
                    .find_map(|r| r.get("error")?.as_str().map(str::to_owned))
            });
        match error {
            Some(message) => Err(WriteError::Permanent {
                status,
                message: short_message(&message),
                partial: false,
            }),
            None => Ok(()),
        }
    }
}

/// Reads the answer and classifies it.
async fn answer(resp: Response) -> Result<(), WriteError> {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if resp.status().is_success() {
        return Ok(());
    }
    let text = resp.text().await.map_err(transport)?;
    classify(status, retry_after.as_deref(), &text)
}

/// An InfluxQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> InfluxConfig {
        InfluxConfig {
            url: "http://a:b@h:8086/proxy".into(),
            api: crate::config::InfluxApi::V1 {
                database: "d b".into(),
                retention_policy: Some("rp".into()),
                username: None,
                password: Secret::default(),
            },
            batch_size: 1,
            flush_interval: Duration::from_secs(1),
            gzip: false,
            gzip_level: 1,
            timeout: Duration::from_secs(1),
            max_lines_per_sec: None,
            dead_letter: "data/dead-letter.lp".into(),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(1),
            max_in_flight: 1,
            batch_max_bytes: 1 << 20,
        }
    }

    #[test]
    fn urls_keep_path_and_drop_credentials() {
        let c = cfg();
        let base = Url::parse(&c.url).unwrap();
        let v = V1::new(&base, "d b", Some("rp"), None, &Secret::default(), &c).unwrap();
        assert_eq!(
            v.write_url.as_str(),
            "http://h:8086/proxy/write?db=d+b&rp=rp&precision=s"
        );
        assert_eq!(v.ping_url.as_str(), "http://h:8086/proxy/ping");
        assert_eq!(v.query_url.as_str(), "http://h:8086/proxy/query");
        let (user, password) = v.auth.as_ref().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("a", "b"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
