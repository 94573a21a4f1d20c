//! `[influxdb]` and `[file_sink]`: where points are written.
//!
//! Why together: they are the two alternatives of one choice (the main file
//! has one of them, or neither for the local file), and they share their
//! batching keys.

use std::path::Path;
use std::time::Duration;

use config::Value;

use super::raw::{FileSinkRaw, InfluxRaw};
use super::{
    DEFAULT_GZIP_LEVEL, DEFAULT_MAX_IN_FLIGHT, FileSinkConfig, InfluxApi, InfluxConfig,
    OutputConfig, Secret,
};
use crate::check::backoff_range;
use crate::check::{self, Flag, Problems, Text, choice, int, millis, path_key, required_text};

/// The output: `[influxdb]`, `[file_sink]`, or with neither `lines.lp` in
/// the data directory. Both sections are an error, after each is checked on
/// its own.
pub(super) fn output(
    influxdb: Option<Value>,
    file_sink_section: Option<Value>,
    data_dir: &Path,
    p: &mut Problems,
) -> Option<OutputConfig> {
    match (influxdb, file_sink_section) {
        (Some(i), None) => influx(i, data_dir, p).map(OutputConfig::Influx),
        (None, Some(f)) => file_sink(f, data_dir, p).map(OutputConfig::File),
        (None, None) => Some(OutputConfig::File(FileSinkConfig {
            path: data_dir.join("lines.lp"),
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
        })),
        (Some(i), Some(f)) => {
            // Check both anyway, so their own problems show in the same run.
            influx(i, data_dir, p);
            file_sink(f, data_dir, p);
            p.push(
                "file_sink",
                "cannot be used together with [influxdb]; remove one of the two sections",
            );
            None
        }
    }
}

/// `[influxdb]`: the server, its API flavour and how lines are batched and retried.
fn influx(v: Value, data_dir: &Path, p: &mut Problems) -> Option<InfluxConfig> {
    #[derive(Clone, Copy, PartialEq)]
    enum Api {
        V1,
        V2,
    }
    let r = check::table::<InfluxRaw>(v, "influxdb", "a table ([influxdb])", p)?;
    let url = url(r.url, p);
    let api = choice(
        r.api,
        "influxdb.api",
        "api",
        &[("v2", Api::V2), ("v1", Api::V1)],
        Some(Api::V2),
        p,
    );
    let other_api = |p: &mut Problems, present: bool, key: &str, api: &str| {
        if present {
            p.push(
                format!("influxdb.{key}"),
                format!("only used with api = \"{api}\"; remove it or set api = \"{api}\""),
            );
        }
    };
    let api = match api {
        Some(Api::V2) => {
            other_api(p, r.database.is_some(), "database", "v1");
            other_api(p, r.retention_policy.is_some(), "retention_policy", "v1");
            other_api(p, r.username.is_some(), "username", "v1");
            other_api(p, r.password.is_some(), "password", "v1");
            let org = required_text(
                r.org,
                "influxdb.org",
                "give the organisation name (api = \"v2\")",
                p,
            );
            let bucket = required_text(
                r.bucket,
                "influxdb.bucket",
                "give the bucket name (api = \"v2\")",
                p,
            );
            let token = required_text(
                r.token,
                "influxdb.token",
                "give the API token, preferably through the environment as EMGATE__INFLUXDB__TOKEN",
                p,
            );
            match (org, bucket, token) {
                (Some(org), Some(bucket), Some(token)) => Some(InfluxApi::V2 {
                    org,
                    bucket,
                    token: Secret::new(token),
                }),
                _ => None,
            }
        }
        Some(Api::V1) => {
            other_api(p, r.org.is_some(), "org", "v2");
            other_api(p, r.bucket.is_some(), "bucket", "v2");
            other_api(p, r.token.is_some(), "token", "v2");
            let database = required_text(
                r.database,
                "influxdb.database",
                "give the database name (api = \"v1\")",
                p,
            );
            let retention_policy = r
                .retention_policy
                .map(|Text(t)| t)
                .filter(|t| !t.is_empty());
            let username = r.username.map(|Text(t)| t).filter(|t| !t.is_empty());
            let password = r.password.map(|Text(t)| t).unwrap_or_default();
            if username.is_none() && !password.is_empty() {
                p.push(
                    "influxdb.password",
                    "given without a username; add `username` or remove the password",
                );
            }
            database.map(|database| InfluxApi::V1 {
                database,
                retention_policy,
                username,
                password: Secret::new(password),
            })
        }
        None => None,
    };
    let batch_size = int(r.batch_size, "influxdb.batch_size", 5000, 1, i64::MAX, p);
    let flush_interval = millis(
        r.flush_interval_ms,
        "influxdb.flush_interval_ms",
        1000,
        1,
        p,
    );
    let timeout = millis(r.timeout_ms, "influxdb.timeout_ms", 10_000, 1, p);
    let max_lines_per_sec = int(
        r.max_lines_per_sec,
        "influxdb.max_lines_per_sec",
        0,
        0,
        i64::MAX,
        p,
    );
    let dead_letter = path_key(r.dead_letter_path, "influxdb.dead_letter_path", p)
        .unwrap_or_else(|| data_dir.join("dead-letter.lp"));
    let (retry_initial, retry_max) =
        backoff_range(r.retry_initial_ms, r.retry_max_ms, "influxdb", "retry", p);
    let max_in_flight = int(
        r.max_in_flight,
        "influxdb.max_in_flight",
        DEFAULT_MAX_IN_FLIGHT as i64,
        1,
        64,
        p,
    );
    let gzip = r.gzip.is_none_or(|Flag(g)| g);
    let gzip_level = gzip_level(r.gzip_level, gzip, p);
    Some(InfluxConfig {
        url: url?,
        api: api?,
        batch_size: usize::try_from(batch_size?).ok()?,
        flush_interval: flush_interval?,
        gzip,
        gzip_level: gzip_level?,
        timeout: timeout?,
        max_lines_per_sec: max_lines_per_sec.map(|n| n as u64).filter(|n| *n > 0),
        dead_letter,
        retry_initial: retry_initial?,
        retry_max: retry_max?,
        max_in_flight: usize::try_from(max_in_flight?).ok()?,
    })
}

/// `influxdb.gzip_level`: a deflate level from 1 to 9, only with gzip on.
fn gzip_level(v: Option<check::Int>, gzip: bool, p: &mut Problems) -> Option<u32> {
    let key = "influxdb.gzip_level";
    match v {
        None => Some(DEFAULT_GZIP_LEVEL),
        Some(_) if !gzip => {
            p.push(
                key,
                "only used with gzip = true; remove it or set gzip = true",
            );
            None
        }
        Some(check::Int(level)) => {
            if let Ok(level @ 1..=9) = u32::try_from(level) {
                Some(level)
            } else {
                p.push(
                    key,
                    format!(
                        "{level} is not a gzip level; give 1 (fastest, the default) to 9 (smallest bodies)"
                    ),
                );
                None
            }
        }
    }
}

/// `influxdb.url`: an http(s) base URL, without a trailing `/`.
fn url(v: Option<Text>, p: &mut Problems) -> Option<String> {
    let hint = "give the server's base URL, e.g. \"http://127.0.0.1:8086\"";
    let u = required_text(v, "influxdb.url", hint, p)?;
    match reqwest::Url::parse(&u) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            // The writer appends `/api/v2/write` or `/write`.
            Some(u.trim_end_matches('/').to_owned())
        }
        _ => {
            p.push(
                "influxdb.url",
                format!("\"{u}\" is not an http(s) URL; {hint}"),
            );
            None
        }
    }
}

/// `[file_sink]`: line protocol appended to a local file.
fn file_sink(v: Value, data_dir: &Path, p: &mut Problems) -> Option<FileSinkConfig> {
    let r = check::table::<FileSinkRaw>(v, "file_sink", "a table ([file_sink])", p)?;
    let path = path_key(r.path, "file_sink.path", p).unwrap_or_else(|| data_dir.join("lines.lp"));
    let batch_size = int(r.batch_size, "file_sink.batch_size", 5000, 1, i64::MAX, p);
    let flush_interval = millis(
        r.flush_interval_ms,
        "file_sink.flush_interval_ms",
        1000,
        1,
        p,
    );
    Some(FileSinkConfig {
        path,
        batch_size: usize::try_from(batch_size?).ok()?,
        flush_interval: flush_interval?,
    })
}
