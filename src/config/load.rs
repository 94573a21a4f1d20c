//! Configuration loading and validation: raw files to one checked [`Config`].
//!
//! Why it is built this way: a gateway is configured once by someone on site
//! and then runs unattended, so every mistake must surface before anything
//! starts, all at once, each as `FILE: key.path: message` with the fix in
//! the message. The loader never stops at the first problem: each section,
//! each `[[endpoints]]`, `[[meters]]` and `[[points]]` element is checked on
//! its own, and references between files (meter → profile, meter → endpoint,
//! fault → meter) are resolved against everything that was declared, valid
//! or not, so one broken file does not cause a cascade of "unknown" errors.
//!
//! Sources and precedence:
//! * the main file (e.g. `config/emgate.toml`), read with the `config` crate;
//! * environment overrides on top of it: `EMGATE__SECTION__KEY`
//!   (`EMGATE__INFLUXDB__TOKEN`, `EMGATE__GATEWAY__ID`), keys lower-cased,
//!   values strings (numbers and booleans are parsed from them); problems
//!   they cause are reported against the file `<env>`;
//! * every `*.toml` in `gateway.sites_dir`, sorted by file name (one `[site]`
//!   and its `[[meters]]` per file);
//! * every `*.toml` in `gateway.profiles_dir` (profile id = file stem). All of
//!   them are checked, but only profiles that meters use end up in
//!   [`Config::profiles`].
//!
//! `sites_dir` and `profiles_dir` are relative to the main file's directory;
//! `data_dir` and `file_sink.path` are relative to the working directory, as
//! data paths usually are.
//!
//! A configuration with no meters is valid (a gateway being set up); callers
//! that need meters (`emgate run`) should warn when [`Config::meters`] is empty.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Value;

use super::raw::{
    AggregationRaw, ApiRaw, CalibrationRaw, EndpointRaw, FaultRaw, FileSinkRaw, GatewayRaw,
    InfluxRaw, MainFile, MeterRaw, MqttRaw, MqttTlsRaw, OverrideRaw, ReplacementRaw, SimulatorRaw,
    SiteFile, SiteRaw, SpoolRaw, SubscriptionRaw, ValidationRaw,
};
use super::{
    AggregationSettings, ApiSettings, Calibration, Config, ConfigError, ConfigErrors,
    DeclaredReplacement, ElectricityMethod, EndpointConfig, FileSinkConfig, GatewayConfig,
    InfluxApi, InfluxConfig, MeterConfig, MeterSource, MqttBroker, MqttProtocol, MqttSubscription,
    MqttTls, OutputConfig, PayloadFormat, PointOverride, Secret, SimFault, SimulatorConfig,
    SiteConfig, TimeUnit, TimestampRule, ValidationSettings,
};
use crate::check::{
    self, Flag, Float, Int, Problems, Text, choice, int, is_valid_id, millis, path_key, ratio,
    required_id, required_text, timezone, unknown_ref,
};
use crate::model::{BrokerId, EndpointId, EnergyType, Level, MeterId, ProfileId, SiteId};
use crate::pipeline::aggregate::AggregatorSettings;
use crate::pipeline::coefficients::{CoefficientTable, kgce_per_m3_from_lhv};
use crate::pipeline::energy::{self, Conversion, EnergyRole};
use crate::pipeline::window::WindowSize;
use crate::profiles::load::load_profile;
use crate::profiles::{PointKind, Profile, RatioScaling};
use crate::sources::mqtt::topic::TopicTemplate;
use crate::spool::{FsyncPolicy, FullPolicy, SpoolConfig};

/// Prefix of environment overrides, with its separator.
const ENV_PREFIX: &str = "emgate__";

/// File name used for environment overrides in [`ConfigError::file`].
const ENV_FILE: &str = "<env>";

/// Default time zone of sites.
const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// Loads and validates the configuration at `path`, with overrides from the
/// process environment (`EMGATE__SECTION__KEY`).
///
/// # Errors
/// Every problem found, in the main file first, then the site files, then the
/// profile files.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    // Variables that are not Unicode cannot be ours (the names are ASCII); skip them.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// [`load`] with the environment given as `(name, value)` pairs, so tests do
/// not touch the process environment. Pairs whose name does not start with
/// `EMGATE__` are ignored, as are empty values.
///
/// # Errors
/// Every problem found.
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!("cannot read the configuration file: {}", io_message(&e)),
        }])
    })?;
    let mut main = parse_main(path, &text, env);
    let base = path.parent().unwrap_or(Path::new(""));
    let sites_dir = base.join(&main.sites_dir);
    let profiles_dir = base.join(&main.profiles_dir);
    let mut file_problems = Vec::new();
    let sites = read_dir(
        &sites_dir,
        "gateway.sites_dir",
        &mut main.problems,
        &mut file_problems,
    );
    let profiles = read_dir(
        &profiles_dir,
        "gateway.profiles_dir",
        &mut main.problems,
        &mut file_problems,
    );
    assemble(main, &sites, &profiles, file_problems)
}

/// Builds a configuration from texts instead of files (`emgate demo` builds
/// its site in code). `sites` are `(file name, text)` pairs, kept in the
/// given order; `profiles` are `(profile id, text)` pairs, e.g.
/// [`crate::profiles::load::builtin`]. No environment overrides apply.
/// Problems are located in `emgate.toml`, `<sites_dir>/<name>` and
/// `<profiles_dir>/<id>.toml`.
///
/// # Errors
/// Every problem found.
pub fn from_parts(
    main_toml: &str,
    sites: &[(&str, &str)],
    profiles: &[(&str, &str)],
) -> Result<Config, ConfigErrors> {
    let main = parse_main(Path::new("emgate.toml"), main_toml, &[]);
    let sites: Vec<SourceText> = sites
        .iter()
        .map(|(name, text)| SourceText {
            path: main.sites_dir.join(name),
            stem: file_stem(name),
            text: (*text).to_owned(),
        })
        .collect();
    let profiles: Vec<SourceText> = profiles
        .iter()
        .map(|(id, text)| SourceText {
            path: main.profiles_dir.join(format!("{id}.toml")),
            stem: (*id).to_owned(),
            text: (*text).to_owned(),
        })
        .collect();
    assemble(main, &sites, &profiles, Vec::new())
}

/// A main file alone, with no site and no profile (tests of the main sections).
///
/// # Errors
/// Every problem found.
pub fn load_str_for_tests(main: &str) -> Result<Config, ConfigErrors> {
    from_parts(main, &[], &[])
}

// ---------------------------------------------------------------------------
// Main file

/// The main file, checked as far as it can be on its own.
struct Main {
    file: PathBuf,
    problems: Problems,
    /// `(key path, variable name)` of every environment override.
    env_keys: Vec<(String, String)>,
    /// The main file alone, without the overrides (parsed only when there
    /// are overrides): tells which keys the file itself has.
    file_table: Option<toml::Table>,
    gateway: GatewayConfig,
    sites_dir: PathBuf,
    profiles_dir: PathBuf,
    output: Option<OutputConfig>,
    /// Every declared endpoint id (valid or not) with its config when valid.
    endpoints: Vec<(String, Option<EndpointConfig>)>,
    /// Every declared MQTT broker id (valid or not) with its config when valid.
    brokers: Vec<(String, Option<MqttBroker>)>,
    simulator: Option<SimulatorRaw>,
    spool: Option<SpoolConfig>,
    validation: Option<ValidationSettings>,
    aggregation: Option<AggregationSettings>,
    api: Option<ApiSettings>,
}

/// Whether the dotted `key` (e.g. `gateway.id`) is present in `table`.
fn has_key(table: &toml::Table, key: &str) -> bool {
    let mut at = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        match at.get(part) {
            None => return false,
            Some(toml::Value::Table(t)) => at = t,
            Some(_) => return parts.peek().is_none(),
        }
    }
    true
}

fn parse_main(path: &Path, text: &str, env: &[(String, String)]) -> Main {
    let mut p = Problems::new(path);
    let mut env_map = config::Map::new();
    let mut env_keys = Vec::new();
    for (name, value) in env {
        let lower = name.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix(ENV_PREFIX)
            && !value.is_empty()
        {
            env_keys.push((rest.replace("__", "."), name.clone()));
            env_map.insert(name.clone(), value.clone());
        }
    }

    let mut main = Main {
        file: path.to_path_buf(),
        problems: Problems::new(path),
        file_table: if env_keys.is_empty() {
            None
        } else {
            text.parse::<toml::Table>().ok()
        },
        env_keys,
        gateway: GatewayConfig {
            id: String::new(),
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: DEFAULT_TIMEZONE.to_owned(),
            data_dir: PathBuf::from("data"),
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS as u64),
        },
        sites_dir: PathBuf::from("sites"),
        profiles_dir: PathBuf::from("profiles"),
        output: None,
        endpoints: Vec::new(),
        brokers: Vec::new(),
        simulator: None,
        spool: None,
        validation: None,
        aggregation: None,
        api: None,
    };

    let root = if check::parse_toml(text, &mut p).is_some() {
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("EMGATE")
                    .separator("__")
                    .ignore_empty(true)
                    .source(Some(env_map)),
            )
            .build();
        match built {
            Ok(c) => Some(c.cache),
            Err(e) => {
                p.push("", format!("cannot apply the environment overrides: {e}"));
                None
            }
        }
    } else {
        None
    };
    let top = root.and_then(|r| check::table::<MainFile>(r, "", "a table", &mut p));
    main.problems = p;
    let Some(top) = top else {
        return main;
    };

    match top.gateway {
        Some(v) => gateway(v, &mut main),
        None => main.problems.push(
            "gateway",
            "missing required section; add a [gateway] table with at least `id`",
        ),
    }
    main.spool = spool(top.spool, &main.gateway.data_dir, &mut main.problems);
    main.validation = validation(top.validation, &mut main.problems);
    main.api = api(top.api, &mut main.problems);
    main.aggregation = aggregation(
        top.aggregation,
        path.parent().unwrap_or(Path::new("")),
        &mut main.problems,
    );
    main.output = match (top.influxdb, top.file_sink) {
        (Some(i), None) => {
            influx(i, &main.gateway.data_dir, &mut main.problems).map(OutputConfig::Influx)
        }
        (None, Some(f)) => {
            file_sink(f, &main.gateway.data_dir, &mut main.problems).map(OutputConfig::File)
        }
        (None, None) => Some(OutputConfig::File(FileSinkConfig {
            path: main.gateway.data_dir.join("lines.lp"),
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
        })),
        (Some(i), Some(f)) => {
            // Check both anyway, so their own problems show in the same run.
            influx(i, &main.gateway.data_dir, &mut main.problems);
            file_sink(f, &main.gateway.data_dir, &mut main.problems);
            main.problems.push(
                "file_sink",
                "cannot be used together with [influxdb]; remove one of the two sections",
            );
            None
        }
    };
    if let Some(v) = top.endpoints {
        let items = check::array(
            v,
            "endpoints",
            "an array of tables ([[endpoints]])",
            &mut main.problems,
        );
        for (i, item) in items.into_iter().enumerate() {
            endpoint(item, i, &mut main);
        }
    }
    if let Some(v) = top.mqtt {
        let items = check::array(
            v,
            "mqtt",
            "an array of tables ([[mqtt]])",
            &mut main.problems,
        );
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        for (i, item) in items.into_iter().enumerate() {
            mqtt_broker(item, i, &base, &mut main);
        }
    }
    if let Some(v) = top.simulator {
        main.simulator = check::table::<SimulatorRaw>(
            v,
            "simulator",
            "a table ([simulator])",
            &mut main.problems,
        );
    }
    main
}

fn gateway(v: Value, main: &mut Main) {
    let p = &mut main.problems;
    let Some(r) = check::table::<GatewayRaw>(v, "gateway", "a table ([gateway])", p) else {
        return;
    };
    if let Some(id) = required_id(r.id, "gateway.id", "gateway id", p) {
        main.gateway.id = id;
    }
    let tz_name = r
        .timezone
        .map_or_else(|| DEFAULT_TIMEZONE.to_owned(), |Text(t)| t);
    if let Some(tz) = timezone(&tz_name, "gateway.timezone", p) {
        main.gateway.timezone = tz;
    }
    main.gateway.timezone_name = tz_name;
    if let Some(d) = path_key(r.data_dir, "gateway.data_dir", p) {
        main.gateway.data_dir = d;
    }
    if let Some(d) = path_key(r.sites_dir, "gateway.sites_dir", p) {
        main.sites_dir = d;
    }
    if let Some(d) = path_key(r.profiles_dir, "gateway.profiles_dir", p) {
        main.profiles_dir = d;
    }
    if let Some(secs) = int(
        r.shutdown_timeout_secs,
        "gateway.shutdown_timeout_secs",
        DEFAULT_SHUTDOWN_TIMEOUT_SECS,
        1,
        300,
        p,
    ) {
        main.gateway.shutdown_timeout = Duration::from_secs(secs as u64);
    }
}

/// `gateway.shutdown_timeout_secs` when not given.
const DEFAULT_SHUTDOWN_TIMEOUT_SECS: i64 = 10;

/// `[api]`: absent means the default (local port 9184, no token).
fn api(v: Option<Value>, p: &mut Problems) -> Option<ApiSettings> {
    let Some(v) = v else {
        return Some(ApiSettings::default());
    };
    let r = check::table::<ApiRaw>(v, "api", "a table ([api])", p)?;
    let mut ok = true;
    let listen = match r.listen {
        None => ApiSettings::default().listen,
        Some(Text(s)) if s.trim().is_empty() => None,
        Some(Text(s)) => {
            let parsed = s.trim().parse::<std::net::SocketAddr>().ok();
            if parsed.is_none() {
                p.push(
                    "api.listen",
                    format!(
                        "\"{s}\" is not an address to listen on; write IP:port, e.g. \"127.0.0.1:9184\" (\"\" turns the API off)"
                    ),
                );
                ok = false;
            }
            parsed
        }
    };
    let enabled = r.enabled.is_none_or(|Flag(b)| b);
    let token = match r.token {
        None => None,
        Some(Text(t)) if t.trim().is_empty() => {
            p.push(
                "api.token",
                "is empty; remove the key for an API without a token, or give one (preferably through the environment as EMGATE__API__TOKEN)",
            );
            ok = false;
            None
        }
        Some(Text(t)) => Some(Secret::new(t)),
    };
    if !ok {
        return None;
    }
    Some(ApiSettings {
        listen: if enabled { listen } else { None },
        token,
    })
}

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
    Some(InfluxConfig {
        url: url?,
        api: api?,
        batch_size: usize::try_from(batch_size?).ok()?,
        flush_interval: flush_interval?,
        gzip: r.gzip.is_none_or(|Flag(g)| g),
        timeout: timeout?,
        max_lines_per_sec: max_lines_per_sec.map(|n| n as u64).filter(|n| *n > 0),
        dead_letter,
        retry_initial: retry_initial?,
        retry_max: retry_max?,
    })
}

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

fn endpoint(value: Value, index: usize, main: &mut Main) {
    let key = format!("endpoints[{index}]");
    let k = |sub: &str| format!("{key}.{sub}");
    let p = &mut main.problems;
    let Some(r) = check::table::<EndpointRaw>(value, &key, "a table", p) else {
        return;
    };
    let errors_before = p.list.len();
    let id = required_id(r.id, &k("id"), "endpoint id", p);
    if let Some(id) = &id
        && let Some(first) = main.endpoints.iter().position(|(e, _)| e == id)
    {
        p.push(
            k("id"),
            format!("duplicate endpoint id \"{id}\"; already used by endpoints[{first}]"),
        );
    }
    let host = required_text(
        r.host,
        &k("host"),
        "give the host name or IP address of the Modbus TCP server",
        p,
    );
    let port = int(r.port, &k("port"), 502, 1, 65535, p);
    let timeout = millis(r.timeout_ms, &k("timeout_ms"), 1000, 1, p);
    let connect_timeout = millis(r.connect_timeout_ms, &k("connect_timeout_ms"), 3000, 1, p);
    let (reconnect_initial, reconnect_max) = backoff_range(
        r.reconnect_initial_ms,
        r.reconnect_max_ms,
        &key,
        "reconnect",
        p,
    );
    let max_gap = int(r.max_gap, &k("max_gap"), 10, 0, 125, p);
    let max_registers = int(r.max_registers, &k("max_registers"), 125, 1, 125, p);
    let delay = millis(
        r.inter_request_delay_ms,
        &k("inter_request_delay_ms"),
        0,
        0,
        p,
    );
    let Some(id) = id else {
        return;
    };
    let config = (p.list.len() == errors_before)
        .then(|| {
            Some(EndpointConfig {
                id: id.clone(),
                host: host?,
                port: u16::try_from(port?).ok()?,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                reconnect_initial: reconnect_initial?,
                reconnect_max: reconnect_max?,
                max_gap: u16::try_from(max_gap?).ok()?,
                max_registers: u16::try_from(max_registers?).ok()?,
                inter_request_delay: delay?,
            })
        })
        .flatten();
    main.endpoints.push((id, config));
}

// ---------------------------------------------------------------------------
// [[mqtt]]

/// Default port without and with TLS.
const MQTT_PORT: i64 = 1883;
const MQTTS_PORT: i64 = 8883;

fn mqtt_broker(value: Value, index: usize, base: &Path, main: &mut Main) {
    let key = format!("mqtt[{index}]");
    let k = |sub: &str| format!("{key}.{sub}");
    let p = &mut main.problems;
    let Some(r) = check::table::<MqttRaw>(value, &key, "a table", p) else {
        return;
    };
    let errors_before = p.list.len();
    let id = required_id(r.id, &k("id"), "broker id", p);
    if let Some(id) = &id
        && let Some(first) = main.brokers.iter().position(|(b, _)| b == id)
    {
        p.push(
            k("id"),
            format!("duplicate broker id \"{id}\"; already used by mqtt[{first}]"),
        );
    }
    let host = required_text(
        r.host,
        &k("host"),
        "give the host name or IP address of the MQTT broker",
        p,
    );
    let tls = r.tls.and_then(|v| mqtt_tls(v, &k("tls"), base, p));
    let default_port = if tls.is_some() { MQTTS_PORT } else { MQTT_PORT };
    let port = int(r.port, &k("port"), default_port, 1, 65535, p);
    let client_id = match r.client_id {
        None => id
            .as_ref()
            .map(|id| format!("emgate-{}-{id}", main.gateway.id)),
        Some(v) => required_text(
            Some(v),
            &k("client_id"),
            "give a client id that is stable across restarts (the broker keeps the session under it)",
            p,
        ),
    };
    let keep_alive = int(r.keep_alive_secs, &k("keep_alive_secs"), 30, 5, 3600, p);
    let protocol = match r.protocol.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("3.1.1") => Some(MqttProtocol::V311),
        Some("5") => Some(MqttProtocol::V5),
        Some(other) => {
            p.push(
                k("protocol"),
                format!("unknown protocol \"{other}\"; use \"3.1.1\" or \"5\""),
            );
            None
        }
    };
    let username = r.username.map(|Text(t)| t).filter(|t| !t.is_empty());
    let password = r.password.map(|Text(t)| t).unwrap_or_default();
    if username.is_none() && !password.is_empty() {
        p.push(
            k("password"),
            "given without a username; add `username` or remove the password",
        );
    }
    let max_payload = int(
        r.max_payload_bytes,
        &k("max_payload_bytes"),
        65_536,
        16,
        16_777_216,
        p,
    );
    let dead_letter_topic = match r.dead_letter_topic {
        None => None,
        Some(Text(t)) if t.is_empty() => {
            p.push(
                k("dead_letter_topic"),
                "is empty; give a topic such as \"emgate/dead-letter\", or remove the key",
            );
            None
        }
        Some(Text(t)) if t.contains(['+', '#']) => {
            p.push(
                k("dead_letter_topic"),
                format!("\"{t}\" contains a wildcard; messages are published to it, so give a plain topic"),
            );
            None
        }
        Some(Text(t)) => Some(t),
    };
    let (reconnect_initial, reconnect_max) = backoff_range(
        r.reconnect_initial_ms,
        r.reconnect_max_ms,
        &key,
        "reconnect",
        p,
    );
    let mut subscriptions = Vec::new();
    match r.subscriptions {
        None => p.push(
            k("subscriptions"),
            "missing; add at least one [[mqtt.subscriptions]] with a `topic`",
        ),
        Some(v) => {
            let items = check::array(
                v,
                &k("subscriptions"),
                "an array of tables ([[mqtt.subscriptions]])",
                p,
            );
            if items.is_empty() {
                p.push(
                    k("subscriptions"),
                    "is empty; add at least one [[mqtt.subscriptions]] with a `topic`",
                );
            }
            let mut filters: Vec<(String, usize)> = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{key}.subscriptions[{i}]");
                let (valid, filter) = subscription(item, &at, p);
                if let Some(filter) = filter {
                    if let Some((_, first)) = filters.iter().find(|(f, _)| *f == filter) {
                        p.push(
                            format!("{at}.topic"),
                            format!(
                                "has the same filter \"{filter}\" as subscriptions[{first}], which matches first; this one would never be used"
                            ),
                        );
                    }
                    filters.push((filter, i));
                }
                if let Some(s) = valid {
                    subscriptions.push(s);
                }
            }
        }
    }
    let Some(id) = id else {
        return;
    };
    let config = (p.list.len() == errors_before)
        .then(|| {
            Some(MqttBroker {
                id: id.clone(),
                host: host?,
                port: u16::try_from(port?).ok()?,
                client_id: client_id?,
                clean_session: r.clean_session.is_some_and(|Flag(f)| f),
                keep_alive: Duration::from_secs(keep_alive? as u64),
                protocol: protocol?,
                username,
                password: Secret::new(password),
                tls,
                max_payload_bytes: usize::try_from(max_payload?).ok()?,
                dead_letter_topic,
                reconnect_initial: reconnect_initial?,
                reconnect_max: reconnect_max?,
                subscriptions,
            })
        })
        .flatten();
    main.brokers.push((id, config));
}

/// `tls = { ... }` of a broker; paths relative to the main file's directory `base`.
fn mqtt_tls(v: Value, key: &str, base: &Path, p: &mut Problems) -> Option<MqttTls> {
    let r = check::table::<MqttTlsRaw>(v, key, "a table (tls = { ca_file = \"ca.pem\" })", p)?;
    let file = |v: Option<Text>, sub: &str, what: &str, p: &mut Problems| {
        let at = format!("{key}.{sub}");
        let path = path_key(v, &at, p)?;
        let full = base.join(path);
        if full.is_file() {
            Some(full)
        } else {
            p.push(
                at,
                format!(
                    "cannot read \"{}\": no such file; give the path of the {what} (PEM), relative to this file",
                    full.display()
                ),
            );
            None
        }
    };
    let ca_present = r.ca_file.is_some();
    let ca = file(r.ca_file, "ca_file", "CA certificate", p);
    if !ca_present {
        p.push(
            format!("{key}.ca_file"),
            "missing required key; give the CA certificate (PEM) that signs the broker's certificate",
        );
    }
    let (cert_present, key_present) = (r.client_cert.is_some(), r.client_key.is_some());
    let cert = file(r.client_cert, "client_cert", "client certificate", p);
    let client_key = file(
        r.client_key,
        "client_key",
        "client certificate's private key",
        p,
    );
    if cert_present && !key_present {
        p.push(
            format!("{key}.client_key"),
            "missing; client_cert is set, so give its private key (PEM) too",
        );
    } else if key_present && !cert_present {
        p.push(
            format!("{key}.client_cert"),
            "missing; client_key is set, so give the client certificate (PEM) too",
        );
    }
    if cert_present != key_present
        || cert.is_some() != cert_present
        || client_key.is_some() != key_present
    {
        return None;
    }
    Some(MqttTls {
        ca_file: ca?,
        client_cert: cert,
        client_key,
    })
}

/// How a subscription's time stamp is taken, as written.
#[derive(Clone, Copy, PartialEq)]
enum Stamp {
    Payload,
    Receipt,
}

/// One `[[mqtt.subscriptions]]` element and its filter.
// Short names as in the other section checks (value, raw, key, problems).
#[allow(clippy::many_single_char_names)]
fn subscription(
    v: Value,
    key: &str,
    p: &mut Problems,
) -> (Option<MqttSubscription>, Option<String>) {
    let k = |sub: &str| format!("{key}.{sub}");
    let Some(r) = check::table::<SubscriptionRaw>(v, key, "a table", p) else {
        return (None, None);
    };
    let errors_before = p.list.len();
    let template = match r.topic {
        None => {
            p.push(
                k("topic"),
                "missing required key; give a topic such as \"energy/{site}/{meter}/up\"",
            );
            None
        }
        Some(Text(t)) => match TopicTemplate::parse(&t) {
            Ok(tpl) => Some(tpl),
            Err(why) => {
                p.push(k("topic"), format!("\"{t}\": {why}"));
                None
            }
        },
    };
    let qos = match r.qos {
        None => Some(1),
        Some(Int(q @ 0..=2)) => Some(q as u8),
        Some(Int(other)) => {
            p.push(
                k("qos"),
                format!("{other} is not an MQTT QoS; use 0 (at most once), 1 (at least once) or 2 (exactly once)"),
            );
            None
        }
    };
    let format = choice(
        r.format,
        &k("format"),
        "format",
        &[
            ("json", PayloadFormat::Json),
            ("line_protocol", PayloadFormat::LineProtocol),
            ("csv", PayloadFormat::Csv),
        ],
        Some(PayloadFormat::Json),
        p,
    );
    let json = format == Some(PayloadFormat::Json);
    let only_json = |p: &mut Problems, present: bool, sub: &str| {
        if present && format.is_some() && !json {
            p.push(k(sub), "only used with format = \"json\"; remove it");
        }
    };
    only_json(p, r.timestamp_field.is_some(), "timestamp_field");
    only_json(p, r.array.is_some(), "array");
    only_json(p, r.meter_field.is_some(), "meter_field");
    let stamp = choice(
        r.timestamp,
        &k("timestamp"),
        "timestamp rule",
        &[("payload", Stamp::Payload), ("receipt", Stamp::Receipt)],
        Some(Stamp::Payload),
        p,
    );
    let unit = choice(
        r.timestamp_unit.clone(),
        &k("timestamp_unit"),
        "timestamp unit",
        &[
            ("s", TimeUnit::Seconds),
            ("ms", TimeUnit::Millis),
            ("ns", TimeUnit::Nanos),
            ("rfc3339", TimeUnit::Rfc3339),
        ],
        Some(TimeUnit::Seconds),
        p,
    );
    if stamp == Some(Stamp::Receipt) {
        for (present, sub) in [
            (r.timestamp_field.is_some(), "timestamp_field"),
            (r.timestamp_unit.is_some(), "timestamp_unit"),
        ] {
            if present {
                p.push(
                    k(sub),
                    "only used with timestamp = \"payload\"; remove it or set timestamp = \"payload\"",
                );
            }
        }
    }
    if unit == Some(TimeUnit::Rfc3339) && format == Some(PayloadFormat::LineProtocol) {
        p.push(
            k("timestamp_unit"),
            "line protocol time stamps are integers; use \"s\", \"ms\" or \"ns\"",
        );
    }
    let timestamp_field = match r.timestamp_field {
        Some(Text(f)) if f.is_empty() => {
            p.push(
                k("timestamp_field"),
                "is empty; give the JSON key (\"ts\") or pointer (\"/meta/ts\") of the time stamp",
            );
            None
        }
        Some(Text(f)) => Some(f),
        None => Some("ts".to_owned()),
    };
    let timestamp = match stamp {
        Some(Stamp::Receipt) => Some(TimestampRule::Receipt),
        Some(Stamp::Payload) => match (timestamp_field, unit) {
            (Some(field), Some(unit)) => Some(TimestampRule::Payload { field, unit }),
            _ => None,
        },
        None => None,
    };
    let array = match r.array {
        Some(Text(a)) if !a.is_empty() && !a.starts_with('/') => {
            p.push(
                k("array"),
                format!("\"{a}\" is not a JSON pointer; use \"\" (the payload itself is an array) or a pointer such as \"/{a}\""),
            );
            None
        }
        Some(Text(a)) => Some(a),
        None => None,
    };
    let meter_field = match r.meter_field {
        Some(Text(f)) if f.is_empty() => {
            p.push(
                k("meter_field"),
                "is empty; give the JSON key holding the meter id, e.g. \"meter\"",
            );
            None
        }
        Some(Text(f)) => Some(f),
        None => None,
    };
    if let Some(tpl) = &template
        && json
    {
        if tpl.has_meter() && meter_field.is_some() {
            p.push(
                k("meter_field"),
                "the topic names the meter with \"{meter}\"; remove meter_field (or \"{meter}\" from the topic)",
            );
        } else if !tpl.has_meter() && meter_field.is_none() && p.list.len() == errors_before {
            p.push(
                k("topic"),
                format!(
                    "\"{tpl}\" names no meter; put \"{{meter}}\" in the topic or set meter_field (the JSON key holding the meter id)"
                ),
            );
        }
    }
    let fields = r.fields.map_or_else(
        || Some(Vec::new()),
        |v| fields_table(v, &k("fields"), json, p),
    );
    let scale = r
        .scale
        .map_or_else(|| Some(Vec::new()), |v| scale_table(v, &k("scale"), p));
    let filter = template.as_ref().map(|t| t.filter().to_owned());
    let valid = (p.list.len() == errors_before)
        .then(|| {
            Some(MqttSubscription {
                topic: template?.as_str().to_owned(),
                qos: qos?,
                format: format?,
                timestamp: timestamp?,
                fields: fields?,
                scale: scale?,
                array,
                meter_field,
            })
        })
        .flatten();
    (valid, filter)
}

/// `fields = { key = "point", "/a/b" = "point" }`, sorted by key.
fn fields_table(
    v: Value,
    key: &str,
    json: bool,
    p: &mut Problems,
) -> Option<Vec<(String, String)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of payload key = point name, e.g. {{ ep = \"import_kwh\" }}, found {found}"),
        );
        return None;
    };
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (name, value) in rows {
        let at = if is_valid_id(&name) {
            format!("{key}.{name}")
        } else {
            format!("{key}.\"{name}\"")
        };
        if name.starts_with('/') && !json {
            p.push(
                at,
                "JSON pointers are only used with format = \"json\"; give the field name",
            );
            ok = false;
            continue;
        }
        let point = match value.kind {
            config::ValueKind::String(s) if !s.is_empty() => s,
            _ => {
                let found = check::kind_name(&value);
                p.push(
                    at,
                    format!("expected a point name (a string), found {found}"),
                );
                ok = false;
                continue;
            }
        };
        if let Some((other, _)) = out.iter().find(|(_, pt)| *pt == point) {
            p.push(
                at,
                format!("maps to point \"{point}\" like key \"{other}\"; a point can come from one key only"),
            );
            ok = false;
            continue;
        }
        out.push((name, point));
    }
    ok.then_some(out)
}

/// `scale = { point = factor }`, sorted by point name.
fn scale_table(v: Value, key: &str, p: &mut Problems) -> Option<Vec<(String, f64)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of point name = factor, e.g. {{ import_kwh = 0.001 }}, found {found}"),
        );
        return None;
    };
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (name, value) in rows {
        let at = format!("{key}.{name}");
        let factor = match value.kind {
            config::ValueKind::Float(f) => Some(f),
            config::ValueKind::I64(i) => Some(i as f64),
            _ => None,
        };
        match factor {
            Some(f) if f.is_finite() && f != 0.0 => out.push((name, f)),
            Some(f) => {
                p.push(
                    at,
                    format!("{f} is not a valid factor; use a finite number other than 0"),
                );
                ok = false;
            }
            None => {
                let found = check::kind_name(&value);
                p.push(at, format!("expected a factor (a number), found {found}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

// ---------------------------------------------------------------------------
// Files of the site and profile directories

/// One site or profile file's text.
struct SourceText {
    path: PathBuf,
    stem: String,
    text: String,
}

fn file_stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Every readable `*.toml` in `dir`, sorted by name. A missing directory is a
/// problem of the main file at `key`; an unreadable file is a problem of that file.
fn read_dir(
    dir: &Path,
    key: &str,
    main_problems: &mut Problems,
    file_problems: &mut Vec<ConfigError>,
) -> Vec<SourceText> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            main_problems.push(
                key,
                format!(
                    "directory \"{}\" does not exist; create it or change `{}`",
                    dir.display(),
                    key.rsplit('.').next().unwrap_or(key)
                ),
            );
            return Vec::new();
        }
        Err(e) => {
            main_problems.push(
                key,
                format!(
                    "cannot read directory \"{}\": {}",
                    dir.display(),
                    io_message(&e)
                ),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            // Dot files are editor and lock files, not configuration.
            p.extension().is_some_and(|x| x == "toml")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => out.push(SourceText {
                stem: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
                text,
            }),
            Err(e) => file_problems.push(ConfigError {
                file: path,
                key: String::new(),
                message: format!("cannot read: {}", io_message(&e)),
            }),
        }
    }
    out
}

fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::InvalidData => "not valid UTF-8 text".to_owned(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Putting it together

/// A profile file's outcome: valid, or broken (its problems are reported already).
enum Loaded {
    Valid(Profile),
    Broken,
}

/// Where a meter was declared: file and key of its `id`.
struct Declared {
    file: PathBuf,
    key: String,
}

fn assemble(
    mut main: Main,
    site_files: &[SourceText],
    profile_files: &[SourceText],
    mut file_problems: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    // Profiles first: site checks need them.
    let mut profile_problems = Vec::new();
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut profile_names: Vec<String> = Vec::new();
    for f in profile_files {
        if loaded.contains_key(&f.stem) {
            profile_problems.push(ConfigError {
                file: f.path.clone(),
                key: String::new(),
                message: format!("duplicate profile id \"{}\"", f.stem),
            });
            continue;
        }
        let outcome = match load_profile(&f.stem, &f.path, &f.text) {
            Ok(p) => Loaded::Valid(p),
            Err(errs) => {
                profile_problems.extend(errs);
                Loaded::Broken
            }
        };
        profile_names.push(f.stem.clone());
        loaded.insert(f.stem.clone(), outcome);
    }
    profile_names.sort();

    let mut st = SiteState {
        main: &main,
        loaded: &loaded,
        profile_names: &profile_names,
        sites: Vec::new(),
        meters: Vec::new(),
        profiles: Vec::new(),
        profile_ids: HashMap::new(),
        meter_ids: HashMap::new(),
        site_ids: HashMap::new(),
        units: HashMap::new(),
        level1_units: HashMap::new(),
    };
    let mut site_problems = Vec::new();
    for f in site_files {
        let mut p = Problems::new(&f.path);
        st.site_file(f, &mut p);
        site_problems.extend(p.list);
    }
    let SiteState {
        sites,
        meters,
        profiles,
        meter_ids,
        ..
    } = st;

    let simulator = simulator(main.simulator.take(), &meter_ids, &mut main.problems);

    // Problems caused by environment overrides belong to `<env>`.
    let mut errors = std::mem::take(&mut main.problems.list);
    for e in &mut errors {
        let from_env = main.env_keys.iter().find(|(path, _)| {
            e.key == *path
                || e.key
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
                // `EMGATE__NOSECTION__X` makes an unknown key `nosection`
                // that the file does not have: the variable is the cause.
                || (path
                    .strip_prefix(e.key.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
                    && !main.file_table.as_ref().is_some_and(|t| has_key(t, &e.key)))
        });
        if let Some((_, var)) = from_env {
            e.file = PathBuf::from(ENV_FILE);
            e.message = format!("{} (set by {var})", e.message);
        }
    }
    errors.append(&mut site_problems);
    errors.append(&mut profile_problems);
    errors.append(&mut file_problems);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    let endpoints: Option<Vec<EndpointConfig>> =
        main.endpoints.into_iter().map(|(_, e)| e).collect();
    let mqtt: Option<Vec<MqttBroker>> = main.brokers.into_iter().map(|(_, b)| b).collect();
    let (
        Some(endpoints),
        Some(mqtt),
        Some(output),
        Some(simulator),
        Some(spool),
        Some(validation),
        Some(aggregation),
        Some(api),
    ) = (
        endpoints,
        mqtt,
        main.output,
        simulator,
        main.spool,
        main.validation,
        main.aggregation,
        main.api,
    )
    else {
        // Unreachable in practice: every `None` above comes with a recorded problem.
        return Err(ConfigErrors(vec![ConfigError {
            file: main.file,
            key: String::new(),
            message: "configuration incomplete".to_owned(),
        }]));
    };
    Ok(Config {
        source: main.file,
        gateway: main.gateway,
        output,
        endpoints,
        sites,
        meters,
        profiles,
        spool,
        validation,
        simulator,
        aggregation,
        mqtt,
        api,
    })
}

fn validation(v: Option<Value>, p: &mut Problems) -> Option<ValidationSettings> {
    let Some(v) = v else {
        return Some(ValidationSettings::default());
    };
    let r = check::table::<ValidationRaw>(v, "validation", "a table ([validation])", p)?;
    let d = ValidationSettings::default();
    let skew = int(
        r.max_future_skew_secs,
        "validation.max_future_skew_secs",
        d.max_future_skew_secs,
        0,
        i64::from(u32::MAX),
        p,
    );
    let late = int(
        r.max_lateness_secs,
        "validation.max_lateness_secs",
        d.max_lateness_secs,
        1,
        i64::from(u32::MAX),
        p,
    );
    let every = int(
        r.checkpoint_interval_secs,
        "validation.checkpoint_interval_secs",
        60,
        1,
        i64::from(u32::MAX),
        p,
    );
    Some(ValidationSettings {
        max_future_skew_secs: skew?,
        max_lateness_secs: late?,
        checkpoint_interval: Duration::from_secs(every? as u64),
    })
}

/// Name of the built-in coefficient table in `aggregation.coefficients`.
const BUILTIN_TABLE: &str = "gbt2589-2008";

/// `aggregation.electricity` as written.
#[derive(Clone, Copy, PartialEq)]
enum Method {
    Equivalent,
    EqualValue,
}

// Short names as in the other section checks (value, raw, defaults, problems).
#[allow(clippy::many_single_char_names)]
fn aggregation(v: Option<Value>, base: &Path, p: &mut Problems) -> Option<AggregationSettings> {
    let Some(v) = v else {
        return Some(AggregationSettings::default());
    };
    let r = check::table::<AggregationRaw>(v, "aggregation", "a table ([aggregation])", p)?;
    let d = AggregationSettings::default();
    let windows = match r.windows {
        None => Some(d.aggregator.windows.clone()),
        Some(v) => windows(v, p),
    };
    let lateness = int(
        r.allowed_lateness_secs,
        "aggregation.allowed_lateness_secs",
        d.aggregator.allowed_lateness_secs,
        0,
        i64::from(u32::MAX),
        p,
    );
    let reorder = int(
        r.max_reorder_readings,
        "aggregation.max_reorder_readings",
        16,
        0,
        1024,
        p,
    );
    let gap = int(
        r.max_gap_secs,
        "aggregation.max_gap_secs",
        d.aggregator.max_gap_secs,
        1,
        i64::from(u32::MAX),
        p,
    );
    let coefficients = match r.coefficients {
        None => Some(d.coefficients.clone()),
        Some(Text(name)) => coefficient_table(&name, base, p),
    };
    let method = choice(
        r.electricity,
        "aggregation.electricity",
        "electricity method",
        &[
            ("equivalent", Method::Equivalent),
            ("equal_value", Method::EqualValue),
        ],
        Some(Method::Equivalent),
        p,
    );
    let table_key = "aggregation.equal_value_kgce_per_kwh";
    let electricity = match (method, r.equal_value_kgce_per_kwh) {
        (None, _) => None,
        (Some(Method::Equivalent), None) => Some(ElectricityMethod::Equivalent),
        (Some(Method::Equivalent), Some(_)) => {
            p.push(
                table_key,
                "only used with electricity = \"equal_value\"; remove it or set electricity = \"equal_value\"",
            );
            None
        }
        (Some(Method::EqualValue), None) => {
            p.push(
                table_key,
                "missing; with electricity = \"equal_value\" give the kgce per kWh of each year, e.g. \"2025\" = 0.2953",
            );
            None
        }
        (Some(Method::EqualValue), Some(v)) => {
            equal_value(v, table_key, p).map(|by_year| ElectricityMethod::EqualValue { by_year })
        }
    };
    let reference = match r.steam_reference_kj_per_kg {
        None => Some(d.steam_reference_kj_per_kg),
        Some(Float(x)) if x.is_finite() && (0.0..2000.0).contains(&x) => Some(x),
        Some(Float(x)) => {
            p.push(
                "aggregation.steam_reference_kj_per_kg",
                format!("{x} is not a reference enthalpy; give the enthalpy of the feed water or condensate in kJ/kg, 0 to 2000 (make-up water at 20 °C: 84.0)"),
            );
            None
        }
    };
    Some(AggregationSettings {
        aggregator: AggregatorSettings {
            windows: windows?,
            allowed_lateness_secs: lateness?,
            max_reorder_readings: usize::try_from(reorder?).ok()?,
            max_gap_secs: gap?,
        },
        gauge_stats: r.gauge_stats.is_none_or(|Flag(g)| g),
        coefficients: coefficients?,
        electricity: electricity?,
        steam_reference_kj_per_kg: reference?,
    })
}

/// `aggregation.windows`: an array of tags, or a comma-separated string
/// (what an environment override can give).
fn windows(v: Value, p: &mut Problems) -> Option<Vec<WindowSize>> {
    let key = "aggregation.windows";
    let valid = || {
        WindowSize::ALL
            .iter()
            .map(|w| w.as_tag())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items: Vec<(String, Option<String>)> = match v.kind {
        config::ValueKind::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at = format!("{key}[{i}]");
                if let config::ValueKind::String(s) = v.kind {
                    (at, Some(s))
                } else {
                    let found = check::kind_name(&v);
                    p.push(
                        at.clone(),
                        format!("expected a window tag such as \"15m\", found {found}"),
                    );
                    (at, None)
                }
            })
            .collect(),
        config::ValueKind::String(s) => s
            .split(',')
            .filter(|t| !t.trim().is_empty() || s.contains(','))
            .map(|t| (key.to_owned(), Some(t.trim().to_owned())))
            .collect(),
        _ => {
            let found = check::kind_name(&v);
            p.push(key, format!("expected an array of window tags such as [\"15m\", \"1h\", \"1d\"], found {found}"));
            return None;
        }
    };
    if items.is_empty() {
        // No windows: aggregation is off (readings only).
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (at, tag) in items {
        let Some(tag) = tag else {
            ok = false;
            continue;
        };
        match WindowSize::from_tag(&tag) {
            Some(w) if out.contains(&w) => {
                p.push(at, format!("\"{tag}\" is listed twice"));
                ok = false;
            }
            Some(w) => out.push(w),
            None => {
                p.push(at, format!("unknown window \"{tag}\"; valid: {}", valid()));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `aggregation.coefficients`: the built-in table, or a TOML file relative
/// to the main file's directory `base`.
fn coefficient_table(name: &str, base: &Path, p: &mut Problems) -> Option<CoefficientTable> {
    let key = "aggregation.coefficients";
    if name == BUILTIN_TABLE {
        return Some(CoefficientTable::builtin_2008());
    }
    let path = base.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(
                key,
                format!(
                    "cannot read \"{}\": {}; use \"{BUILTIN_TABLE}\" (built in) or the path of a coefficient table, relative to this file",
                    path.display(),
                    io_message(&e)
                ),
            );
            return None;
        }
    };
    let table = match CoefficientTable::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            p.push(
                key,
                format!(
                    "\"{}\" is not a valid coefficient table: {e}",
                    path.display()
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    for (i, row) in table.energy.iter().enumerate() {
        let bad = if !(row.kgce.is_finite() && row.kgce > 0.0) {
            Some(format!(
                "kgce {} of \"{}\" is not above 0",
                row.kgce, row.key
            ))
        } else if table.energy[..i].iter().any(|r| r.key == row.key) {
            Some(format!("key \"{}\" appears twice", row.key))
        } else {
            None
        };
        if let Some(why) = bad {
            p.push(key, format!("\"{}\": energy[{i}]: {why}", path.display()));
            ok = false;
        }
    }
    ok.then_some(table)
}

/// `[aggregation.equal_value_kgce_per_kwh]`: `"2025" = 0.2953`, ascending by year.
fn equal_value(v: Value, key: &str, p: &mut Problems) -> Option<Vec<(i16, f64)>> {
    let config::ValueKind::Table(map) = v.kind else {
        let found = check::kind_name(&v);
        p.push(
            key,
            format!("expected a table of years (\"2025\" = 0.2953), found {found}"),
        );
        return None;
    };
    if map.is_empty() {
        p.push(
            key,
            "is empty; give the kgce per kWh of each year, e.g. \"2025\" = 0.2953",
        );
        return None;
    }
    let mut rows: Vec<(String, Value)> = map.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(rows.len());
    let mut ok = true;
    for (year, value) in rows {
        let at = format!("{key}.{year}");
        let y = year
            .parse::<i16>()
            .ok()
            .filter(|y| (1900..=2200).contains(y) && year.len() == 4);
        let Some(y) = y else {
            p.push(
                at,
                format!("\"{year}\" is not a year; use keys such as \"2025\""),
            );
            ok = false;
            continue;
        };
        let rate = value.clone().into_float().ok();
        match rate {
            Some(r) if r.is_finite() && r > 0.0 => out.push((y, r)),
            Some(r) => {
                p.push(
                    at,
                    format!("{r} is not a valid rate; give kgce per kWh, above 0"),
                );
                ok = false;
            }
            None => {
                let found = check::kind_name(&value);
                p.push(
                    at,
                    format!("expected kgce per kWh (a number), found {found}"),
                );
                ok = false;
            }
        }
    }
    out.sort_by_key(|(y, _)| *y);
    ok.then_some(out)
}

/// Default bound on the spool: 1 GiB of unsent line protocol.
const SPOOL_MAX_BYTES: i64 = 1 << 30;
/// Default segment size: 16 MiB.
const SPOOL_SEGMENT_BYTES: i64 = 16 << 20;
/// Default fsync period (`fsync = "interval"`), ms.
const SPOOL_FSYNC_INTERVAL_MS: i64 = 1000;

/// The spool of a `[spool]` section that only sets `dir`: 1 GiB, 16 MiB
/// segments, `block` when full, fsync every second. For configurations
/// built in code (tests, benchmarks).
#[must_use]
pub fn default_spool(dir: impl Into<PathBuf>) -> SpoolConfig {
    SpoolConfig {
        dir: dir.into(),
        max_bytes: SPOOL_MAX_BYTES as u64,
        segment_bytes: SPOOL_SEGMENT_BYTES as u64,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_millis(SPOOL_FSYNC_INTERVAL_MS as u64)),
    }
}

/// `[spool]`; absent, the defaults under `<data_dir>/spool`.
fn spool(v: Option<Value>, data_dir: &Path, p: &mut Problems) -> Option<SpoolConfig> {
    let r = match v {
        Some(v) => check::table::<SpoolRaw>(v, "spool", "a table ([spool])", p)?,
        None => SpoolRaw {
            dir: None,
            max_bytes: None,
            segment_bytes: None,
            policy: None,
            fsync: None,
            fsync_interval_ms: None,
        },
    };
    let dir = path_key(r.dir, "spool.dir", p).unwrap_or_else(|| data_dir.join("spool"));
    let max_bytes = int(
        r.max_bytes,
        "spool.max_bytes",
        SPOOL_MAX_BYTES,
        4096,
        i64::MAX,
        p,
    );
    let segment_bytes = int(
        r.segment_bytes,
        "spool.segment_bytes",
        SPOOL_SEGMENT_BYTES
            .min(max_bytes.unwrap_or(SPOOL_MAX_BYTES) / 4)
            .max(4096),
        4096,
        i64::MAX,
        p,
    );
    if let (Some(m), Some(s)) = (max_bytes, segment_bytes)
        && s > m
    {
        p.push(
            "spool.segment_bytes",
            format!("{s} is above max_bytes ({m}); a segment must fit in the spool"),
        );
    }
    let policy = match r.policy.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("block") => Some(FullPolicy::Block),
        Some("drop_oldest") => Some(FullPolicy::DropOldest),
        Some(other) => {
            p.push(
                "spool.policy",
                format!("unknown policy \"{other}\"; use \"block\" or \"drop_oldest\""),
            );
            None
        }
    };
    let interval = millis(
        r.fsync_interval_ms,
        "spool.fsync_interval_ms",
        SPOOL_FSYNC_INTERVAL_MS,
        1,
        p,
    );
    // The gateway appends one chunk per batch, so "every_batch" is the
    // spool's fsync before every append returns.
    let fsync = match r.fsync.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("interval") => interval.map(FsyncPolicy::Interval),
        Some("every_batch") => Some(FsyncPolicy::EveryAppend),
        Some(other) => {
            p.push(
                "spool.fsync",
                format!("unknown fsync policy \"{other}\"; use \"interval\" or \"every_batch\""),
            );
            None
        }
    };
    Some(SpoolConfig {
        dir,
        max_bytes: max_bytes? as u64,
        segment_bytes: segment_bytes? as u64,
        policy: policy?,
        fsync: fsync?,
    })
}

fn simulator(
    raw: Option<SimulatorRaw>,
    meter_ids: &HashMap<String, (MeterId, Declared)>,
    p: &mut Problems,
) -> Option<SimulatorConfig> {
    let Some(r) = raw else {
        return Some(SimulatorConfig {
            time_step: Duration::from_secs(1),
            faults: Vec::new(),
        });
    };
    let time_step = millis(r.time_step_ms, "simulator.time_step_ms", 1000, 1, p);
    let mut faults = Vec::new();
    let mut ok = true;
    if let Some(v) = r.faults {
        let items = check::array(v, "simulator.faults", "an array of tables", p);
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("simulator.faults[{i}]");
            let Some(f) = check::table::<FaultRaw>(
                item,
                &key,
                "a table ({ meter = \"...\", fault = \"...\" })",
                p,
            ) else {
                ok = false;
                continue;
            };
            let meter = match f.meter {
                None => {
                    p.push(
                        format!("{key}.meter"),
                        "missing required key; give the id of the meter to disturb",
                    );
                    None
                }
                Some(Text(m)) => {
                    if let Some((id, _)) = meter_ids.get(&m) {
                        Some(*id)
                    } else {
                        p.push(
                            format!("{key}.meter"),
                            unknown_ref("meter", &m, meter_ids.keys().map(String::as_str)),
                        );
                        None
                    }
                }
            };
            let fault = choice(
                f.fault,
                &format!("{key}.fault"),
                "fault",
                &[
                    ("no_response", SimFault::NoResponse),
                    ("exception", SimFault::Exception),
                    ("sentinel", SimFault::Sentinel),
                    ("counter_reset", SimFault::CounterReset),
                    ("frozen", SimFault::Frozen),
                    ("spike", SimFault::Spike),
                ],
                None,
                p,
            );
            match (meter, fault) {
                (Some(m), Some(f)) => faults.push((m, f)),
                _ => ok = false,
            }
        }
    }
    Some(SimulatorConfig {
        time_step: time_step?,
        faults,
    })
    .filter(|_| ok)
}

/// Sites and meters being read, with the indexes that intern their ids.
struct SiteState<'a> {
    main: &'a Main,
    loaded: &'a HashMap<String, Loaded>,
    profile_names: &'a [String],
    sites: Vec<SiteConfig>,
    meters: Vec<MeterConfig>,
    profiles: Vec<Profile>,
    profile_ids: HashMap<String, ProfileId>,
    meter_ids: HashMap<String, (MeterId, Declared)>,
    site_ids: HashMap<String, PathBuf>,
    /// `(endpoint, unit id)` → meter id and where it was declared.
    units: HashMap<(usize, u8), (String, Declared)>,
    /// Counter unit of the first level-1 meter per (site, energy): site
    /// roll-ups add their amounts, so the units must agree.
    level1_units: HashMap<(SiteId, EnergyType), (String, String)>,
}

impl SiteState<'_> {
    fn site_file(&mut self, f: &SourceText, p: &mut Problems) {
        let Some(root) = check::parse_toml(&f.text, p) else {
            return;
        };
        let Some(top) = check::table::<SiteFile>(root, "", "a table", p) else {
            return;
        };
        let site = if let Some(v) = top.site {
            check::table::<SiteRaw>(v, "site", "a table ([site])", p)
        } else {
            p.push(
                "site",
                "missing required section; add a [site] table with `id` and `name`",
            );
            None
        };
        let site_id = SiteId(u32::try_from(self.sites.len()).unwrap_or(u32::MAX));
        let mut timezone_of_site = self.main.gateway.timezone.clone();
        if let Some(s) = site {
            let id = required_id(s.id, "site.id", "site id", p);
            if let Some(id) = &id {
                if let Some(first) = self.site_ids.get(id) {
                    p.push(
                        "site.id",
                        format!(
                            "duplicate site id \"{id}\"; already used in {}",
                            first.display()
                        ),
                    );
                } else {
                    self.site_ids.insert(id.clone(), f.path.clone());
                }
            }
            let name = required_text(
                s.name,
                "site.name",
                "give the enterprise's name (free text)",
                p,
            );
            if let Some(Text(tz)) = s.timezone
                && let Some(tz) = timezone(&tz, "site.timezone", p)
            {
                timezone_of_site = tz;
            }
            self.sites.push(SiteConfig {
                id: id.unwrap_or_default(),
                name: name.unwrap_or_default(),
                timezone: timezone_of_site,
                file: f.path.clone(),
            });
        }
        if let Some(v) = top.meters {
            let items = check::array(v, "meters", "an array of tables ([[meters]])", p);
            for (i, item) in items.into_iter().enumerate() {
                self.meter(item, i, site_id, &f.path, p);
            }
        }
    }

    fn meter(&mut self, value: Value, index: usize, site: SiteId, file: &Path, p: &mut Problems) {
        let key = format!("meters[{index}]");
        let k = |sub: &str| format!("{key}.{sub}");
        let Some(mut r) = check::table::<MeterRaw>(value, &key, "a table", p) else {
            return;
        };
        let (cal_raw, repl_raw, rules_raw) =
            (r.calibration.take(), r.replacements.take(), r.rules.take());
        let energy_keys = EnergyKeys {
            consumption: r.consumption.take(),
            role: r.role.take(),
            coefficient: r.coefficient.take(),
            lhv_kj_per_m3: r.lhv_kj_per_m3.take(),
        };
        let id = required_id(r.id, &k("id"), "meter id", p);
        let energy_options: Vec<(&str, EnergyType)> =
            EnergyType::ALL.iter().map(|e| (e.as_str(), *e)).collect();
        let energy = choice(
            r.energy,
            &k("energy"),
            "energy type",
            &energy_options,
            None,
            p,
        );
        let level = match r.level {
            None => {
                p.push(k("level"), "missing required key; use 1 (enterprise boundary), 2 (main sub-unit) or 3 (main equipment)");
                None
            }
            Some(Int(level @ 1..=3)) => Some(Level(level as u8)),
            Some(Int(other)) => {
                p.push(
                    k("level"),
                    format!("{other} is not a metering level; use 1 (enterprise boundary), 2 (main sub-unit) or 3 (main equipment)"),
                );
                None
            }
        };
        let profile = self.profile_ref(r.profile, &k("profile"), p);
        // A meter is polled over Modbus (`endpoint` + `unit_id`) or
        // publishes to an MQTT broker (`broker`), never both.
        let modbus_given = r.endpoint.is_some()
            || r.unit_id.is_some()
            || p.bad_keys.contains(&k("endpoint"))
            || p.bad_keys.contains(&k("unit_id"));
        let mqtt_given = r.broker.is_some() || p.bad_keys.contains(&k("broker"));
        let mut source = None;
        if mqtt_given {
            match r.broker.take() {
                _ if modbus_given => p.push(
                    k("broker"),
                    "cannot be used together with `endpoint` and `unit_id`; a Modbus meter has `endpoint` and `unit_id`, an MQTT meter only `broker`",
                ),
                None => {}
                Some(Text(name)) => {
                    if let Some(idx) = self.main.brokers.iter().position(|(id, _)| *id == name) {
                        source = Some(MeterSource::Mqtt {
                            broker: BrokerId(u32::try_from(idx).unwrap_or(u32::MAX)),
                        });
                    } else {
                        let known = self.main.brokers.iter().map(|(id, _)| id.as_str());
                        p.push(k("broker"), unknown_ref("broker", &name, known));
                    }
                }
            }
        } else if !modbus_given {
            p.push(
                key.clone(),
                "has no source; give `endpoint` and `unit_id` (a meter polled over Modbus) or `broker` (a meter that publishes over MQTT)",
            );
        }
        let (endpoint, unit_id) = if mqtt_given || !modbus_given {
            (None, None)
        } else {
            Self::modbus_keys(&self.main.endpoints, r.endpoint, r.unit_id, &key, p)
        };
        if let (Some(e), Some(u)) = (endpoint, unit_id) {
            source = Some(MeterSource::Modbus {
                endpoint: EndpointId(u32::try_from(e).unwrap_or(u32::MAX)),
                unit_id: u,
            });
        }
        let poll = int(
            r.poll_interval_secs,
            &k("poll_interval_secs"),
            60,
            1,
            i64::from(u32::MAX),
            p,
        );
        let pt = ratio(r.pt, &k("pt"), p);
        let ct = ratio(r.ct, &k("ct"), p);
        if mqtt_given {
            for (given, name) in [(r.pt.is_some(), "pt"), (r.ct.is_some(), "ct")] {
                if given {
                    p.push(
                        k(name),
                        "only used for Modbus meters (an MQTT payload carries values in the point's unit; see `scale` of the subscription); remove this key",
                    );
                }
            }
        } else if let Some(prof) = profile.as_deref().and_then(|name| self.valid_profile(name)) {
            let needs_pt = prof
                .points
                .iter()
                .any(|x| matches!(x.ratio, RatioScaling::Pt | RatioScaling::PtCt));
            let needs_ct = prof
                .points
                .iter()
                .any(|x| matches!(x.ratio, RatioScaling::Ct | RatioScaling::PtCt));
            let uses = match (needs_pt, needs_ct) {
                (false, false) => "PT/CT",
                (true, false) => "CT",
                _ => "PT",
            };
            let pid = &prof.id;
            for (given, needed, name, what) in [
                (
                    r.pt.is_some(),
                    needs_pt,
                    "pt",
                    "voltage-transformer ratio (1 when there is no PT)",
                ),
                (
                    r.ct.is_some(),
                    needs_ct,
                    "ct",
                    "current-transformer ratio (e.g. 40 for a 200/5 A CT, 1 when there is none)",
                ),
            ] {
                if needed && !given {
                    p.push(
                        k(name),
                        format!(
                            "missing; profile \"{pid}\" scales values by {}, so give the {what}",
                            name.to_ascii_uppercase()
                        ),
                    );
                } else if given && !needed {
                    p.push(
                        k(name),
                        format!("profile \"{pid}\" does not scale by {uses}; remove this key"),
                    );
                }
            }
        }
        if let Some(id) = &id
            && let Some((_, first)) = self.meter_ids.get(id)
        {
            p.push(
                k("id"),
                format!(
                    "duplicate meter id \"{id}\"; already used at {}: {}",
                    first.file.display(),
                    first.key
                ),
            );
        }
        if let (Some(id), Some(e), Some(u)) = (&id, endpoint, unit_id) {
            if let Some((other, at)) = self.units.get(&(e, u)) {
                if other != id {
                    p.push(
                        k("unit_id"),
                        format!(
                            "unit {u} on endpoint \"{}\" is already used by meter \"{other}\" ({}: {}); each device needs its own unit id",
                            self.main.endpoints[e].0,
                            at.file.display(),
                            at.key
                        ),
                    );
                }
            } else {
                self.units.insert(
                    (e, u),
                    (
                        id.clone(),
                        Declared {
                            file: file.to_path_buf(),
                            key: k("id"),
                        },
                    ),
                );
            }
        }
        let Some(id) = id else {
            return;
        };
        let meter_id = MeterId(u32::try_from(self.meters.len()).unwrap_or(u32::MAX));
        if !self.meter_ids.contains_key(&id) {
            self.meter_ids.insert(
                id.clone(),
                (
                    meter_id,
                    Declared {
                        file: file.to_path_buf(),
                        key: k("id"),
                    },
                ),
            );
        }
        let tz = self.sites.get(site.index()).map_or_else(
            || self.main.gateway.timezone.clone(),
            |s| s.timezone.clone(),
        );
        let prof = profile
            .as_deref()
            .and_then(|name| self.valid_profile(name))
            .cloned();
        let (calibration, replacements, overrides) =
            meter_validation(cal_raw, repl_raw, rules_raw, &key, prof.as_ref(), &tz, p);
        let (consumption, role, conversion) = meter_energy(
            energy_keys,
            &key,
            energy,
            prof.as_ref(),
            self.main.aggregation.as_ref(),
            p,
        );
        // Only complete meters are kept; any gap has been reported above.
        let interned = profile.and_then(|name| self.intern_profile(name));
        if let (
            Some(energy),
            Some(level),
            Some(profile),
            Some(source),
            Some(poll),
            Some(consumption),
            Some(role),
            Some((conversion, conversion_source)),
        ) = (
            energy,
            level,
            interned,
            source,
            poll,
            consumption,
            role,
            conversion,
        ) {
            let unit = consumption
                .and_then(|i| prof.as_ref()?.points.get(i))
                .map(|pt| pt.unit.clone());
            if level.0 == 1
                && let Some(unit) = unit
            {
                match self.level1_units.get(&(site, energy)) {
                    Some((first_unit, first)) if *first_unit != unit => p.push(
                        k("consumption"),
                        format!(
                            "counts {energy} in \"{unit}\" but level-1 meter \"{first}\" of this site counts it in \"{first_unit}\"; \
                             the site total adds them, so choose counters in one unit"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        self.level1_units.insert((site, energy), (unit, id.clone()));
                    }
                }
            }
            self.meters.push(MeterConfig {
                id,
                site,
                energy,
                level,
                profile,
                source,
                poll_interval: Duration::from_secs(poll as u64),
                pt: pt.unwrap_or(1.0),
                ct: ct.unwrap_or(1.0),
                calibration,
                replacements,
                overrides,
                consumption,
                role,
                conversion,
                conversion_source,
            });
        }
    }

    /// A Modbus meter's `endpoint` (index) and `unit_id`, each checked.
    fn modbus_keys(
        endpoints: &[(String, Option<EndpointConfig>)],
        endpoint: Option<Text>,
        unit_id: Option<Int>,
        key: &str,
        p: &mut Problems,
    ) -> (Option<usize>, Option<u8>) {
        let k = |sub: &str| format!("{key}.{sub}");
        let endpoint = match endpoint {
            None => {
                p.push(
                    k("endpoint"),
                    "missing required key; give the id of one of the [[endpoints]]",
                );
                None
            }
            Some(Text(name)) => {
                if let Some(idx) = endpoints.iter().position(|(id, _)| *id == name) {
                    Some(idx)
                } else {
                    let known = endpoints.iter().map(|(id, _)| id.as_str());
                    p.push(k("endpoint"), unknown_ref("endpoint", &name, known));
                    None
                }
            }
        };
        let unit_id = match unit_id {
            None => {
                p.push(
                    k("unit_id"),
                    "missing required key; give the Modbus unit id (slave address), 1..=247",
                );
                None
            }
            Some(Int(unit @ 1..=247)) => Some(unit as u8),
            Some(Int(other)) => {
                p.push(
                    k("unit_id"),
                    format!("{other} is out of range; Modbus unit ids are 1..=247"),
                );
                None
            }
        };
        (endpoint, unit_id)
    }

    /// Resolves a meter's `profile` key to a declared profile name.
    fn profile_ref(&self, v: Option<Text>, key: &str, p: &mut Problems) -> Option<String> {
        let Some(Text(name)) = v else {
            p.push(key, "missing required key; give a profile id (a file name in the profiles directory, without \".toml\")");
            return None;
        };
        if self.loaded.contains_key(&name) {
            Some(name)
        } else {
            p.push(
                key,
                unknown_ref(
                    "profile",
                    &name,
                    self.profile_names.iter().map(String::as_str),
                ),
            );
            None
        }
    }

    fn valid_profile(&self, name: &str) -> Option<&Profile> {
        match self.loaded.get(name) {
            Some(Loaded::Valid(p)) => Some(p),
            _ => None,
        }
    }

    /// The [`ProfileId`] of a valid profile, adding it to the used profiles on first use.
    fn intern_profile(&mut self, name: String) -> Option<ProfileId> {
        if let Some(id) = self.profile_ids.get(&name) {
            return Some(*id);
        }
        let Some(Loaded::Valid(p)) = self.loaded.get(&name) else {
            return None;
        };
        let id = ProfileId(u32::try_from(self.profiles.len()).unwrap_or(u32::MAX));
        self.profiles.push(p.clone());
        self.profile_ids.insert(name, id);
        Some(id)
    }
}

// ---------------------------------------------------------------------------
// Value checks

/// A backoff's first delay and cap, `<table>.<name>_initial_ms` (default
/// 500) and `<table>.<name>_max_ms` (default 30 000); the cap must be at
/// least the first delay.
fn backoff_range(
    initial: Option<Int>,
    max: Option<Int>,
    table: &str,
    name: &str,
    p: &mut Problems,
) -> (Option<Duration>, Option<Duration>) {
    let initial_key = format!("{name}_initial_ms");
    let max_key = format!("{table}.{name}_max_ms");
    let first = millis(initial, &format!("{table}.{initial_key}"), 500, 1, p);
    let cap = millis(max, &max_key, 30_000, 1, p);
    if let (Some(i), Some(c)) = (first, cap)
        && c < i
    {
        p.push(
            max_key,
            format!(
                "{} is below {initial_key} ({}); the cap must be at least the first delay",
                c.as_millis(),
                i.as_millis()
            ),
        );
    }
    (first, cap)
}

/// A meter's validation extras: verification record, declared replacements
/// and per-point rule overrides. Point names are checked against `profile`
/// (when it is valid); dates are local to the site's time zone `tz`.
// Each key has its own "missing" message, which reads best as match arms.
#[allow(clippy::single_match_else)]
fn meter_validation(
    calibration: Option<Value>,
    replacements: Option<Value>,
    rules: Option<Value>,
    key: &str,
    profile: Option<&Profile>,
    tz: &jiff::tz::TimeZone,
    p: &mut Problems,
) -> (
    Option<Calibration>,
    Vec<DeclaredReplacement>,
    Vec<(usize, PointOverride)>,
) {
    let k = |sub: &str| format!("{key}.{sub}");
    let point_of = |name: &str, at: &str, want_counter: bool, p: &mut Problems| -> Option<usize> {
        let prof = profile?;
        let Some(index) = prof.point_index(name) else {
            p.push(
                at,
                format!(
                    "unknown point \"{name}\" in profile \"{}\"; points: {}",
                    prof.id,
                    prof.points
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        };
        if want_counter && prof.points[index].kind != PointKind::Counter {
            p.push(
                at,
                format!("\"{name}\" is a gauge; replacements are recorded for counters"),
            );
            return None;
        }
        Some(index)
    };

    let calibration = calibration.and_then(|v| {
        let cal = check::table::<CalibrationRaw>(
            v,
            &k("calibration"),
            "a table ({ due = \"2026-06-30\", ... })",
            p,
        )?;
        let date = |t: Option<Text>, sub: &str, p: &mut Problems| -> Option<jiff::civil::Date> {
            let Text(s) = t?;
            match s.parse::<jiff::civil::Date>() {
                Ok(d) => Some(d),
                Err(_) => {
                    p.push(
                        k(&format!("calibration.{sub}")),
                        format!("\"{s}\" is not a date; write it as YYYY-MM-DD"),
                    );
                    None
                }
            }
        };
        let verified = date(cal.verified, "verified", p);
        let due_given = cal.due.is_some();
        let due = date(cal.due, "due", p);
        if !due_given {
            p.push(
                k("calibration.due"),
                "missing required key; give the date the next verification is due (YYYY-MM-DD)",
            );
        }
        let due = due?;
        if let Some(last) = verified
            && last > due
        {
            p.push(
                k("calibration.due"),
                format!("{due} is before the last verification ({last})"),
            );
        }
        let due_at = tz
            .to_timestamp(due.to_datetime(jiff::civil::Time::midnight()))
            .ok()?
            .as_second();
        Some(Calibration {
            serial: cal.serial.map(|Text(t)| t),
            accuracy_class: cal.accuracy_class.map(|Text(t)| t),
            verified,
            due,
            due_at,
        })
    });

    let mut declared = Vec::new();
    if let Some(v) = replacements {
        for (n, item) in check::array(v, &k("replacements"), "an array of tables", p)
            .into_iter()
            .enumerate()
        {
            let at_key = format!("{key}.replacements[{n}]");
            let Some(rec) = check::table::<ReplacementRaw>(
                item,
                &at_key,
                "a table ({ point, at, old_final, new_initial })",
                p,
            ) else {
                continue;
            };
            let point = match rec.point {
                Some(Text(name)) => point_of(&name, &format!("{at_key}.point"), true, p),
                None => {
                    p.push(
                        format!("{at_key}.point"),
                        "missing required key; name the counter point",
                    );
                    None
                }
            };
            let at = match rec.at {
                Some(Text(s)) => {
                    let parsed = s.parse::<jiff::Timestamp>().ok().or_else(|| {
                        s.parse::<jiff::civil::DateTime>()
                            .ok()
                            .and_then(|dt| tz.to_timestamp(dt).ok())
                    });
                    if parsed.is_none() {
                        p.push(format!("{at_key}.at"), format!("\"{s}\" is not a time; write 2026-03-01T10:00:00 (site time) or with an offset, 2026-03-01T10:00:00+08:00"));
                    }
                    parsed.map(jiff::Timestamp::as_second)
                }
                None => {
                    p.push(
                        format!("{at_key}.at"),
                        "missing required key; give the moment of the swap",
                    );
                    None
                }
            };
            let reading = |v: Option<Float>, sub: &str, p: &mut Problems| match v {
                Some(Float(x)) if x.is_finite() && x >= 0.0 => Some(x),
                Some(Float(x)) => {
                    p.push(
                        format!("{at_key}.{sub}"),
                        format!("{x} is not a meter reading; use a number >= 0"),
                    );
                    None
                }
                None => {
                    p.push(
                        format!("{at_key}.{sub}"),
                        "missing required key; give the reading from the replacement record",
                    );
                    None
                }
            };
            let old_final = reading(rec.old_final, "old_final", p);
            let new_initial = reading(rec.new_initial, "new_initial", p);
            if let (Some(point), Some(at), Some(old_final), Some(new_initial)) =
                (point, at, old_final, new_initial)
            {
                declared.push(DeclaredReplacement {
                    point,
                    at,
                    old_final,
                    new_initial,
                });
            }
        }
        declared.sort_by_key(|d| d.at);
    }

    let mut overrides = Vec::new();
    if let Some(v) = rules {
        let rules_key = k("rules");
        if let config::ValueKind::Table(map) = v.kind {
            let mut names: Vec<_> = map.into_iter().collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, value) in names {
                let at = format!("{rules_key}.{name}");
                let Some(rule) =
                    check::table::<OverrideRaw>(value, &at, "a table of rule overrides", p)
                else {
                    continue;
                };
                let Some(index) = point_of(&name, &at, false, p) else {
                    continue;
                };
                let num = |v: Option<Float>, sub: &str, p: &mut Problems| match v {
                    Some(Float(x)) if x.is_finite() => Some(x),
                    Some(Float(x)) => {
                        p.push(format!("{at}.{sub}"), format!("{x} is not a finite number"));
                        None
                    }
                    None => None,
                };
                let rule = PointOverride {
                    min: num(rule.min, "min", p),
                    max: num(rule.max, "max", p),
                    max_rate_per_hour: num(rule.max_rate_per_hour, "max_rate_per_hour", p),
                    spike_margin: num(rule.spike_margin, "spike_margin", p),
                    frozen_after: match rule.frozen_after {
                        None => None,
                        Some(Int(n)) if n >= 2 => u32::try_from(n).ok(),
                        Some(Int(n)) => {
                            p.push(
                                format!("{at}.frozen_after"),
                                format!("{n} is not a valid count; use 2 or more"),
                            );
                            None
                        }
                    },
                };
                overrides.push((index, rule));
            }
        } else {
            p.push(
                rules_key,
                "expected a table of tables ([meters.rules.<point>])",
            );
        }
    }
    (calibration, declared, overrides)
}

/// A meter's consumption counter (`Some(None)`: the profile has none), role,
/// and conversion with its provenance; see [`meter_energy`].
type MeterEnergy = (
    Option<Option<usize>>,
    Option<EnergyRole>,
    Option<(Conversion, String)>,
);

/// A meter's keys about its energy accounting, as written.
struct EnergyKeys {
    consumption: Option<Text>,
    role: Option<Text>,
    coefficient: Option<Text>,
    lhv_kj_per_m3: Option<Float>,
}

/// A meter's consumption counter (`Some(None)`: the profile has none), role,
/// and conversion with its provenance. `None` where a problem was recorded,
/// or where the conversion cannot be resolved because the energy type, the
/// profile or `[aggregation]` is broken (their problems are reported already).
// One decision table, easier to follow in one place.
#[allow(clippy::too_many_lines)]
fn meter_energy(
    keys: EnergyKeys,
    key: &str,
    energy: Option<EnergyType>,
    profile: Option<&Profile>,
    aggregation: Option<&AggregationSettings>,
    p: &mut Problems,
) -> MeterEnergy {
    let k = |sub: &str| format!("{key}.{sub}");
    let role_options: Vec<(&str, EnergyRole)> =
        EnergyRole::ALL.iter().map(|r| (r.as_str(), *r)).collect();
    let role = choice(
        keys.role,
        &k("role"),
        "role",
        &role_options,
        Some(EnergyRole::Consumed),
        p,
    );
    let mut ok = true;
    let lhv = match keys.lhv_kj_per_m3 {
        None => None,
        Some(Float(x)) => {
            if energy.is_some_and(|e| e != EnergyType::NaturalGas) {
                p.push(k("lhv_kj_per_m3"), "only for natural_gas meters; remove it");
                ok = false;
            } else if !(x.is_finite() && x > 0.0) {
                p.push(
                    k("lhv_kj_per_m3"),
                    format!("{x} is not a calorific value; give the measured net calorific value in kJ/m3, above 0 (e.g. 35544)"),
                );
                ok = false;
            } else if keys.coefficient.is_some() {
                p.push(
                    k("lhv_kj_per_m3"),
                    "cannot be combined with `coefficient`; remove one of the two",
                );
                ok = false;
            }
            Some(x)
        }
    };
    let Some(prof) = profile else {
        return (None, role, None);
    };
    let counters = || {
        prof.points
            .iter()
            .filter(|x| x.kind == PointKind::Counter)
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let consumption = match keys.consumption {
        None => Some(prof.consumption),
        Some(Text(name)) => match prof.point_index(&name) {
            Some(i) if prof.points[i].kind == PointKind::Counter => Some(Some(i)),
            Some(_) => {
                p.push(
                    k("consumption"),
                    format!(
                        "\"{name}\" is a gauge; name a counter of profile \"{}\": {}",
                        prof.id,
                        counters()
                    ),
                );
                None
            }
            None => {
                p.push(
                    k("consumption"),
                    format!(
                        "unknown point \"{name}\" in profile \"{}\"; counters: {}",
                        prof.id,
                        counters()
                    ),
                );
                None
            }
        },
    };
    let (Some(energy), Some(agg), Some(counter)) = (energy, aggregation, consumption) else {
        return (consumption, role, None);
    };
    let coefficient = keys.coefficient.map(|Text(t)| t);
    let Some(c) = counter else {
        if coefficient.as_deref().is_some_and(|c| c != "none") || lhv.is_some() {
            p.push(
                k(if lhv.is_some() { "lhv_kj_per_m3" } else { "coefficient" }),
                format!("profile \"{}\" has no counter point, so there is nothing to convert; remove it", prof.id),
            );
            return (consumption, role, None);
        }
        return (consumption, role, Some((Conversion::None, String::new())));
    };
    if !ok {
        return (consumption, role, None);
    }
    let point = &prof.points[c];
    let (name, unit) = (point.name.as_str(), point.unit.as_str());
    let table = &agg.coefficients;
    let edition = table.edition.as_str();
    let mismatch = |row: &str| {
        format!(
            "none: counter {name} counts {unit}, which the default conversion of {energy} ({row}) cannot use; set `coefficient`"
        )
    };
    let counter_note = |factor: f64| {
        if (factor - 1.0).abs() < f64::EPSILON {
            format!("counter {name} in {unit}")
        } else {
            format!("counter {name} in {unit}, × {factor}")
        }
    };
    // A table row, converted to the counter's unit; `explicit` says whether
    // the row was named by the meter (`coefficient`) or is the default.
    // `Err(None)`: a problem was recorded; `Err(Some(note))`: the default row
    // does not fit the counter's unit, so the meter gets no kgce (a profile
    // used for another energy type is not an error) and `note` says why.
    let fixed = |row_key: &str,
                 explicit: bool,
                 p: &mut Problems|
     -> Result<(f64, String), Option<String>> {
        let Ok(row) = table.get(row_key) else {
            if explicit {
                let mut known: Vec<&str> = table.energy.iter().map(|r| r.key.as_str()).collect();
                known.push("none");
                let hint = check::suggest(row_key, known.iter().copied())
                    .map(|s| format!("did you mean \"{s}\"? "))
                    .unwrap_or_default();
                p.push(
                    k("coefficient"),
                    format!(
                        "unknown coefficient \"{row_key}\" in {edition}; {hint}known: {}",
                        known.join(", ")
                    ),
                );
            } else {
                p.push(
                    k("coefficient"),
                    format!("coefficient table \"{edition}\" has no \"{row_key}\" row for the default conversion of {energy}; add the row or set `coefficient`"),
                );
            }
            return Err(None);
        };
        let Some(factor) = energy::unit_factor(unit, &row.unit, energy) else {
            if explicit {
                p.push(
                    k("coefficient"),
                    format!("\"{row_key}\" is per {}, but counter \"{name}\" counts {unit}; choose a row in {unit} (or a convertible unit) or \"none\"", row.unit),
                );
                return Err(None);
            }
            return Err(Some(mismatch(&format!("\"{row_key}\", per {}", row.unit))));
        };
        Ok((
            row.kgce * factor,
            format!(
                "{edition} {row_key} {} kgce/{} ({})",
                row.kgce,
                row.unit,
                counter_note(factor)
            ),
        ))
    };
    let as_fixed = |r: Result<(f64, String), Option<String>>| match r {
        Ok((kgce_per_unit, source)) => Some((Conversion::Fixed { kgce_per_unit }, source)),
        Err(note) => note.map(|n| (Conversion::None, n)),
    };
    let conversion = match (coefficient.as_deref(), lhv) {
        (Some("none"), _) => Some((Conversion::None, "none (coefficient = \"none\")".to_owned())),
        (Some(row_key), _) => as_fixed(fixed(row_key, true, p)),
        (None, Some(lhv)) => {
            if let Some(factor) = energy::unit_factor(unit, "m3", energy) {
                let per_m3 = kgce_per_m3_from_lhv(lhv);
                Some((
                    Conversion::Fixed {
                        kgce_per_unit: per_m3 * factor,
                    },
                    format!(
                        "measured LHV {lhv} kJ/m3 / 29307.6 = {per_m3:.4} kgce/m3 ({})",
                        counter_note(factor)
                    ),
                ))
            } else {
                p.push(
                    k("lhv_kj_per_m3"),
                    format!("counter \"{name}\" counts {unit}, not m3 or nm3; a calorific value per m3 cannot convert it"),
                );
                None
            }
        }
        (None, None) => match energy {
            EnergyType::Electricity => match &agg.electricity {
                ElectricityMethod::Equivalent => {
                    as_fixed(fixed("electricity_equivalent", false, p))
                }
                ElectricityMethod::EqualValue { by_year } => {
                    if let Some(factor) = energy::unit_factor(unit, "kwh", energy) {
                        Some((
                            Conversion::EqualValue {
                                by_year: by_year.clone(),
                                unit_factor: factor,
                            },
                            format!(
                                "electricity by equal value per year ({})",
                                counter_note(factor)
                            ),
                        ))
                    } else {
                        Some((Conversion::None, mismatch("equal value, per kwh")))
                    }
                }
            },
            // Gas-field gas (1.2143) is the usual pipeline gas in China;
            // the oil-field row (1.3300) exists for the others.
            EnergyType::NaturalGas => as_fixed(fixed("natural_gas_gas_field", false, p)),
            EnergyType::Steam if matches!(unit, "gj" | "mj") => as_fixed(fixed("heat", false, p)),
            EnergyType::Steam => {
                let (fallback_kgce_per_unit, row) = match fixed("steam_low_pressure", false, p) {
                    Ok(f) => f,
                    Err(note) => return (consumption, role, note.map(|n| (Conversion::None, n))),
                };
                let Some(kg_per_unit) = energy::unit_factor(unit, "kg", energy) else {
                    let note = mismatch("enthalpy, per kg");
                    return (consumption, role, Some((Conversion::None, note)));
                };
                let reference = agg.steam_reference_kj_per_kg;
                let source = match (prof.pressure, prof.temperature) {
                    (Some(pi), Some(ti)) => format!(
                        "IF97 enthalpy of {} and {} over {reference} kJ/kg, 0.03412 kgce/MJ; fallback (estimated) {row}",
                        prof.points[pi].name, prof.points[ti].name
                    ),
                    _ => format!(
                        "{row}; profile \"{}\" has no pressure and temperature gauges, so always estimated",
                        prof.id
                    ),
                };
                Some((
                    Conversion::Steam {
                        pressure: prof.pressure.unwrap_or(Conversion::NO_POINT),
                        temperature: prof.temperature.unwrap_or(Conversion::NO_POINT),
                        reference_kj_per_kg: reference,
                        kg_per_unit,
                        fallback_kgce_per_unit,
                    },
                    source,
                ))
            }
            EnergyType::Heat => as_fixed(fixed("heat", false, p)),
            EnergyType::Coal => as_fixed(fixed("raw_coal", false, p)),
            EnergyType::Water => as_fixed(fixed("fresh_water", false, p)),
            EnergyType::CompressedAir => as_fixed(fixed("compressed_air", false, p)),
        },
    };
    (consumption, role, conversion)
}
