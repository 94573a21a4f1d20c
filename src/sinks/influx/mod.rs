//! The InfluxDB writer: sends one batch of line protocol and says what the
//! server's answer means for it ([`WriteError`]).
//!
//! It exists so the sink task ([`crate::sinks::uploader`]) deals only in three
//! outcomes (retry later, never retry, split) whatever the API flavour:
//!
//! * **v2** (`/api/v2/write`: InfluxDB 2.x/3.x/Cloud, 1.8+, VictoriaMetrics)
//!   goes through the `influxdb2` crate (0.5.2), see [`v2`]. Timestamps are
//!   sent as **seconds**: the crate's `write_line_protocol_with_precision`
//!   with `TimestampPrecision::Seconds` puts `precision=s` in the query (its
//!   plain `write_line_protocol` would mean nanoseconds).
//! * **v1** (`/write?db=&rp=`: InfluxDB 1.x) is plain HTTP with `reqwest`,
//!   see [`v1`], with `precision=s` and basic authentication.
//!
//! Classification is shared and pure ([`classify`]).
//!
//! # Timeouts
//! Neither `reqwest` nor `influxdb2` has a request timeout by default. Every
//! request is wrapped in `tokio::time::timeout(cfg.timeout)` (connection
//! included); expiry is [`WriteError::Retryable`]. The `reqwest` clients also
//! carry the same timeout, as a second line of defence.
//!
//! # Compression
//! With `gzip = true` the body is compressed here with `flate2`, for both
//! flavours, once per batch ([`Writer::pack`]): the uploader keeps only the
//! compressed bytes while a request is in flight or waits for a retry, and
//! inflates them again ([`Writer::unpack`]) only on the rare paths that need
//! the lines (a 413 split, a rejection for the dead-letter file).
//!
//! For v2 this cannot be left to the crate: its `gzip()` option only
//! compresses `write()` of `DataPoint`s, never `write_line_protocol`, and
//! `gzip(false)` still turns compression on, so it is never called. Instead
//! the v2 write client is built (through `ClientBuilder::with_builder`) with
//! a default `Content-Encoding: gzip` header and handed the compressed bytes.
//!
//! # Secrets
//! The token and password are sent only in the `Authorization` header, never
//! in a URL, and appear in no log and no `Debug` output ([`Secret`] prints
//! `***`; [`Writer`]'s `Debug` shows only the endpoint). Transport errors are
//! reported without their URL.
//!
//! [`Secret`]: crate::config::Secret

pub mod classify;
pub mod v1;
pub mod v2;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::config::{InfluxApi, InfluxConfig};

/// What went wrong with one write request, as the sink must act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Try again later: network error, timeout, 5xx, 429.
    #[error("write failed, will retry: {reason}")]
    Retryable {
        /// What happened, for the log.
        reason: String,
        /// How long the server asked us to wait (`Retry-After` of 429/503).
        retry_after: Option<Duration>,
    },
    /// Never resend this batch: the server refused it (400, 401, 403, 404...).
    #[error("write rejected with status {status}: {message}")]
    Permanent {
        /// HTTP status.
        status: u16,
        /// The server's message (truncated), which usually quotes the bad line.
        message: String,
        /// InfluxDB stored the valid lines of the batch ("partial write").
        partial: bool,
    },
    /// 413: the request body is too large; split the batch.
    #[error("write rejected as too large (413)")]
    TooLarge,
}

/// A request body that does not inflate back into lines.
#[derive(Debug, thiserror::Error)]
#[error("cannot inflate the gzip request body: {0}")]
pub struct UnpackError(#[source] std::io::Error);

/// A writer that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The base URL does not parse or is not http(s).
    #[error("influxdb.url: invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("influxdb: cannot build the http client: {0}")]
    Client(String),
}

/// Sends batches of line protocol (precision: seconds) to one InfluxDB.
pub struct Writer {
    api: Api,
    /// The gzip level, `None` with gzip off.
    gzip: Option<u32>,
    /// Base URL without credentials, for logs.
    endpoint: String,
    timeout: Duration,
}

enum Api {
    V1(v1::V1),
    V2(v2::V2),
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let api = match &self.api {
            Api::V1(_) => "v1",
            Api::V2(_) => "v2",
        };
        f.debug_struct("Writer")
            .field("api", &api)
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Builds a writer; nothing touches the network.
    ///
    /// # Errors
    /// [`WriterError::InvalidUrl`] for a URL that is not `http(s)://host[:port]`
    /// (v2: a path is refused, because the `influxdb2` crate would silently
    /// replace it), [`WriterError::Client`] when the HTTP client cannot be built.
    pub fn new(cfg: &InfluxConfig) -> Result<Writer, WriterError> {
        let base = parse_base(&cfg.url)?;
        let mut endpoint = base.clone();
        // Credentials in the URL never reach a log.
        let _ = endpoint.set_password(None);
        let _ = endpoint.set_username("");
        let api = match &cfg.api {
            InfluxApi::V1 {
                database,
                retention_policy,
                username,
                password,
            } => Api::V1(v1::V1::new(
                &base,
                database,
                retention_policy.as_deref(),
                username.as_deref(),
                password,
                cfg,
            )?),
            InfluxApi::V2 { org, bucket, token } => {
                Api::V2(v2::V2::new(&base, org, bucket, token, cfg)?)
            }
        };
        Ok(Writer {
            api,
            gzip: cfg.gzip.then_some(cfg.gzip_level),
            endpoint: endpoint.to_string(),
            timeout: cfg.timeout,
        })
    }

    /// The base URL, without credentials (for logs).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Writes `body` (`lines` whole lines of line protocol, timestamps in
    /// seconds) in one request: [`Writer::pack`], then [`Writer::send`].
    ///
    /// # Errors
    /// The classified failure; see [`WriteError`].
    pub async fn write(&self, body: &[u8], lines: usize) -> Result<(), WriteError> {
        self.send(self.pack(body), lines).await
    }

    /// The request body for `lines`: gzip-compressed with `gzip = true`,
    /// else a copy. Cheap to clone for a retry.
    #[must_use]
    pub fn pack(&self, lines: &[u8]) -> Bytes {
        match self.gzip {
            Some(level) => Bytes::from(gzip(lines, level)),
            None => Bytes::copy_from_slice(lines),
        }
    }

    /// The lines of a body [`Writer::pack`] made.
    ///
    /// # Errors
    /// [`UnpackError`] when the body does not inflate (it was not made by
    /// [`Writer::pack`]).
    pub fn unpack<'a>(&self, body: &'a [u8]) -> Result<Cow<'a, [u8]>, UnpackError> {
        use std::io::Read as _;
        if self.gzip.is_none() {
            return Ok(Cow::Borrowed(body));
        }
        let mut lines = Vec::with_capacity(body.len() * 4);
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut lines)
            .map_err(UnpackError)?;
        Ok(Cow::Owned(lines))
    }

    /// Sends a body [`Writer::pack`] made (`lines` lines) in one request.
    ///
    /// # Errors
    /// The classified failure; see [`WriteError`].
    pub async fn send(&self, body: Bytes, lines: usize) -> Result<(), WriteError> {
        tracing::trace!(endpoint = %self.endpoint, lines, bytes = body.len(), "write");
        match &self.api {
            Api::V1(w) => self.timed(w.write(body)).await,
            Api::V2(w) => self.timed(w.write(body)).await,
        }
    }

    /// Checks that the server answers: v1 `GET /ping` (204); v2 `GET /health`
    /// (200), falling back to `GET /ping` where `/health` does not exist.
    ///
    /// # Errors
    /// [`WriteError::Retryable`] when unreachable or unhealthy, another
    /// variant when the server answers with a client error.
    pub async fn ping(&self) -> Result<(), WriteError> {
        match &self.api {
            Api::V1(w) => self.timed(w.ping()).await,
            Api::V2(w) => self.timed(w.ping()).await,
        }
    }

    /// v1: `CREATE DATABASE` (idempotent on the server). v2: nothing, buckets
    /// are created by their owner.
    ///
    /// # Errors
    /// The classified failure; an InfluxQL error is [`WriteError::Permanent`].
    pub async fn create_database(&self) -> Result<(), WriteError> {
        match &self.api {
            Api::V1(w) => self.timed(w.create_database()).await,
            Api::V2(_) => Ok(()),
        }
    }

    /// Runs one request under the configured timeout; expiry is retryable.
    async fn timed(
        &self,
        request: impl Future<Output = Result<(), WriteError>>,
    ) -> Result<(), WriteError> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(WriteError::Retryable {
                reason: format!("no answer within {:?}", self.timeout),
                retry_after: None,
            }),
        }
    }
}

/// Parses and checks a base URL.
fn parse_base(url: &str) -> Result<reqwest::Url, WriterError> {
    let invalid = |reason: String| WriterError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not supported; use http:// or https://",
            parsed.scheme()
        )));
    }
    if parsed.host().is_none() {
        return Err(invalid("no host".to_owned()));
    }
    Ok(parsed)
}

/// Gzip-compresses `body` at deflate `level` (the `gzip = true` and
/// `gzip_level` settings). The backend is `flate2`'s `zlib-rs`, chosen by
/// measurement (benches/gzip.rs).
fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3 + 64),
        flate2::Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// A transport failure (connection refused, reset, TLS, timeout inside
/// reqwest) as a retryable error, without the URL.
fn transport(err: reqwest::Error) -> WriteError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    WriteError::Retryable {
        reason: format!("{kind}: {}", error_chain(&err.without_url())),
        retry_after: None,
    }
}

/// `err` and its sources, joined by `: ` (reqwest's own Display is terse).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg(url: &str, api: InfluxApi) -> InfluxConfig {
        InfluxConfig {
            url: url.to_owned(),
            api,
            batch_size: 10,
            flush_interval: Duration::from_secs(1),
            gzip: false,
            gzip_level: 1,
            timeout: Duration::from_secs(1),
            max_lines_per_sec: None,
            dead_letter: "data/dead-letter.lp".into(),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            max_in_flight: 1,
            batch_max_bytes: 1 << 20,
        }
    }

    fn v1() -> InfluxApi {
        InfluxApi::V1 {
            database: "db".into(),
            retention_policy: None,
            username: Some("u".into()),
            password: Secret::new("hunter2"),
        }
    }

    fn v2() -> InfluxApi {
        InfluxApi::V2 {
            org: "o".into(),
            bucket: "b".into(),
            token: Secret::new("tok-secret"),
        }
    }

    #[test]
    fn debug_hides_secrets() {
        for api in [v1(), v2()] {
            let w = Writer::new(&cfg("http://user:pw-secret@127.0.0.1:1", api)).unwrap();
            let text = format!("{w:?}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("tok-secret"), "{text}");
            assert!(!text.contains("pw-secret"), "{text}");
            assert_eq!(w.endpoint(), "http://127.0.0.1:1/");
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["127.0.0.1:8086", "ftp://h", "http//x", ""] {
            assert!(
                matches!(
                    Writer::new(&cfg(url, v1())),
                    Err(WriterError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
        // The influxdb2 crate replaces the path, so v2 refuses one.
        assert!(matches!(
            Writer::new(&cfg("http://h:1/influx", v2())),
            Err(WriterError::InvalidUrl { .. })
        ));
        // v1 keeps it (reverse proxies).
        assert!(Writer::new(&cfg("http://h:1/influx", v1())).is_ok());
    }

    #[test]
    fn packed_bodies_unpack_to_the_lines() {
        let body = b"reading,m=a v=1 1\nreading,m=b v=2 1\n".repeat(20);
        for gzip in [false, true] {
            let mut c = cfg("http://127.0.0.1:1", v2());
            c.gzip = gzip;
            let w = Writer::new(&c).unwrap();
            let packed = w.pack(&body);
            assert_eq!(packed.len() < body.len(), gzip);
            assert_eq!(w.unpack(&packed).unwrap().as_ref(), &body[..]);
        }
        let mut c = cfg("http://127.0.0.1:1", v1());
        c.gzip = true;
        let w = Writer::new(&c).unwrap();
        let err = w.unpack(b"not gzip").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot inflate the gzip request body: "),
            "{err}"
        );
    }

    #[test]
    fn gzip_round_trips_at_every_level() {
        use std::io::Read as _;
        let body = b"reading,m=a v=1 1\n".repeat(50);
        for level in 1..=9 {
            let packed = gzip(&body, level);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, body, "level {level}");
        }
    }
}
