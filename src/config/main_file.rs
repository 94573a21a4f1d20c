//! The main file (`config/emgate.toml`): its top level, `[gateway]` (with
//! `shard`, see [`super::shard`]) and `[api]`.
//!
//! Why: the main file is read first and checked as far as it can be on its
//! own, section by section, into [`Main`]; the sections that have a file of
//! their own here (output, endpoints, MQTT, pipeline, spool) are handed out
//! from [`parse_main`], and what the site files need later (endpoint and
//! broker ids, the gateway's time zone, the coefficient table) waits in
//! [`Main`] until [`super::load`](mod@super::load) assembles everything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Value;

use super::api_tokens;
use super::boilers::boiler_settings;
use super::dtu::dtu_settings;
use super::main_state::Main;
use super::modbus::endpoints;
use super::mqtt::brokers;
use super::output::output;
use super::pipeline::{aggregation, validation};
use super::raw::{ApiRaw, GatewayRaw, MainFile, SimulatorRaw};
use super::shard::Shard;
use super::spool::spool;
use super::{ApiSettings, GatewayConfig, Secret};
use crate::check::{self, Flag, Problems, Text, int, path_key, required_id, timezone};

/// Prefix of environment overrides, with its separator.
const ENV_PREFIX: &str = "emgate__";

/// Default time zone of sites.
const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// Reads the main file `text` (at `path`) with the environment overrides
/// `env` applied, and checks each of its sections.
pub(super) fn parse_main(path: &Path, text: &str, env: &[(String, String)]) -> Main {
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
            archive_days: DEFAULT_ARCHIVE_DAYS as u32,
            shard: Shard::default(),
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
        dtu: None,
        boiler: None,
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
    main.api = api(top.api, site_tokens_in_file(text), &mut main.problems);
    main.dtu = dtu_settings(top.dtu, &mut main.problems);
    main.aggregation = aggregation(
        top.aggregation,
        path.parent().unwrap_or(Path::new("")),
        &mut main.problems,
    );
    main.boiler = boiler_settings(
        top.boiler,
        path.parent().unwrap_or(Path::new("")),
        &mut main.problems,
    );
    main.output = output(
        top.influxdb,
        top.file_sink,
        &main.gateway.data_dir,
        &mut main.problems,
    );
    if let Some(v) = top.endpoints {
        endpoints(v, &mut main);
    }
    if let Some(v) = top.mqtt {
        brokers(v, path.parent().unwrap_or(Path::new("")), &mut main);
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

/// `[gateway]`: the instance id, time zone, directories and shutdown timeout.
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
    if let Some(days) = int(
        r.archive_days,
        "gateway.archive_days",
        DEFAULT_ARCHIVE_DAYS,
        0,
        MAX_ARCHIVE_DAYS,
        p,
    ) {
        main.gateway.archive_days = u32::try_from(days).unwrap_or(0);
    }
    if let Some(Text(s)) = r.shard {
        match Shard::parse(&s) {
            Ok(shard) => main.gateway.shard = shard,
            Err(e) => p.push("gateway.shard", e),
        }
    }
}

/// `gateway.archive_days` when not given: six months and a margin, as the
/// online-monitoring rules ask the enterprise end to keep.
const DEFAULT_ARCHIVE_DAYS: i64 = 190;
/// Largest `gateway.archive_days`: ten years.
const MAX_ARCHIVE_DAYS: i64 = 3650;

/// `gateway.shutdown_timeout_secs` when not given.
const DEFAULT_SHUTDOWN_TIMEOUT_SECS: i64 = 10;

/// Whether the main file itself (not the environment) has `[api] site_tokens`.
fn site_tokens_in_file(text: &str) -> bool {
    text.parse::<toml::Table>().ok().is_some_and(|t| {
        t.get("api")
            .and_then(toml::Value::as_table)
            .is_some_and(|a| a.contains_key("site_tokens"))
    })
}

/// `[api]`: absent means the default (local port 9184, no token).
/// `in_file`: the file has `site_tokens` (refused: environment only).
fn api(v: Option<Value>, in_file: bool, p: &mut Problems) -> Option<ApiSettings> {
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
    let site_tokens = if in_file {
        // Key `api`, not `api.site_tokens`: when the variable is set too,
        // the problem is still the file's.
        p.push(
            "api",
            format!(
                "site_tokens is in the file; site tokens are secrets handed to other parties: remove the key and give them only through the environment as {}",
                api_tokens::VARIABLE
            ),
        );
        ok = false;
        Vec::new()
    } else if let Some(Text(t)) = r.site_tokens {
        if let Some(tokens) = api_tokens::parse(&t, token.as_ref(), p) {
            tokens
        } else {
            ok = false;
            Vec::new()
        }
    } else {
        Vec::new()
    };
    if !ok {
        return None;
    }
    Some(ApiSettings {
        listen: if enabled { listen } else { None },
        token,
        site_tokens,
    })
}
