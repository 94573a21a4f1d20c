//! `/api/v2/write` through the `influxdb2` crate (0.5.2).
//!
//! What the crate does and what we do about it:
//! * Precision: `write_line_protocol_with_precision(.., Seconds)` sends
//!   `precision=s` (plain `write_line_protocol` would mean nanoseconds).
//! * Timeout: none by default. The `reqwest` builder handed to
//!   `ClientBuilder::with_builder` carries `cfg.timeout`, and
//!   [`Writer`](super::Writer) wraps every call in `tokio::time::timeout`.
//! * Compression: the crate compresses only `write()` of `DataPoint`s, and
//!   its `gzip(false)` still enables it, so `gzip()` is never called. With
//!   `gzip = true` the body arrives compressed
//!   ([`Writer::pack`](super::Writer::pack)) and the builder gets a default
//!   `Content-Encoding: gzip` header; this client is used for writes only.
//! * Base URL: the crate *replaces* the path of the base URL
//!   (`Url::set_path("/api/v2/write")`), so a base URL with a path is
//!   refused rather than silently ignored.
//! * Errors: `RequestError::Http { status, text }` for any answer other than
//!   204 (classified by status), `RequestError::ReqwestProcessing` for
//!   transport failures (retryable). The crate drops the response headers,
//!   so `Retry-After` cannot be read on this path: a 429/503 gets the sink's
//!   own backoff instead.
//! * `Client::new` panics on a bad URL: the URL is parsed before it gets there.
//! * Reachability (`ping`) uses a plain `reqwest` client: the crate's
//!   `health()` expects InfluxDB's JSON, while VictoriaMetrics answers "OK".

use bytes::Bytes;
use influxdb2::RequestError;
use influxdb2::api::write::TimestampPrecision;
use reqwest::Url;
use reqwest::header::{CONTENT_ENCODING, HeaderMap, HeaderValue};

use super::classify::classify;
use super::{WriteError, WriterError, error_chain, transport};
use crate::config::{InfluxConfig, Secret};

/// The v2 endpoint of one bucket.
pub struct V2 {
    client: influxdb2::Client,
    org: String,
    bucket: String,
    http: reqwest::Client,
    health_url: Url,
    ping_url: Url,
}

impl V2 {
    /// Builds the crate's client; nothing touches the network.
    ///
    /// # Errors
    /// [`WriterError::InvalidUrl`] when `base` has a path,
    /// [`WriterError::Client`] when a client cannot be built.
    pub fn new(
        base: &Url,
        org: &str,
        bucket: &str,
        token: &Secret,
        cfg: &InfluxConfig,
    ) -> Result<V2, WriterError> {
        if !matches!(base.path(), "" | "/") || base.query().is_some() {
            return Err(WriterError::InvalidUrl {
                url: cfg.url.clone(),
                reason: "a path or query is not supported with api = \"v2\": the influxdb2 \
                         client replaces it with /api/v2/write; give scheme, host and port only"
                    .to_owned(),
            });
        }
        let mut root = base.clone();
        let _ = root.set_password(None);
        let _ = root.set_username("");
        let mut builder = reqwest::Client::builder().timeout(cfg.timeout);
        if cfg.gzip {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            builder = builder.default_headers(headers);
        }
        let client =
            influxdb2::ClientBuilder::with_builder(builder, root.as_str(), org, token.expose())
                .build()
                .map_err(|e| WriterError::Client(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| WriterError::Client(e.to_string()))?;
        let join = |p: &str| {
            root.join(p).map_err(|e| WriterError::InvalidUrl {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })
        };
        Ok(V2 {
            client,
            org: org.to_owned(),
            bucket: bucket.to_owned(),
            http,
            health_url: join("health")?,
            ping_url: join("ping")?,
        })
    }

    /// One write request of a body [`Writer::pack`](super::Writer::pack)
    /// made (compressed with `gzip = true`: the client's default header
    /// says so).
    ///
    /// # Errors
    /// The classified failure (see [`WriteError`]).
    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        match self
            .client
            .write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                body,
                TimestampPrecision::Seconds,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => map_error(e),
        }
    }

    /// `GET /health` (200), or `GET /ping` (204) where `/health` is 404.
    ///
    /// # Errors
    /// The classified failure (see [`WriteError`]).
    pub async fn ping(&self) -> Result<(), WriteError> {
        let resp = self
            .http
            .get(self.health_url.clone())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        if status != 404 {
            let text = resp.text().await.map_err(transport)?;
            return classify(status, None, &text);
        }
        let resp = self
            .http
            .get(self.ping_url.clone())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        classify(status, None, &text)
    }
}

/// The crate's error as a classified write outcome.
fn map_error(err: RequestError) -> Result<(), WriteError> {
    match err {
        // Any 2xx other than 204 also arrives here; classify accepts it.
        RequestError::Http { status, text } => classify(status.as_u16(), None, &text),
        RequestError::ReqwestProcessing { source } => Err(transport(source)),
        other => Err(WriteError::Retryable {
            reason: error_chain(&other),
            retry_after: None,
        }),
    }
}
