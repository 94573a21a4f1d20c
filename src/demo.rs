//! `emgate demo`: the whole job on one machine with nothing else running.
//!
//! It builds a configuration in code (four enterprises, one serial server
//! each, about fifty meters covering every energy type and every shipped
//! profile), serves those meters from the simulator on loopback, runs the
//! real gateway against them and prints progress every second and a summary
//! at the end. Points go to InfluxDB when one is given and answers its ping;
//! otherwise to a line-protocol file under the data directory, and the demo
//! says which.
//!
//! When an MQTT broker answers on 127.0.0.1:1883 (a local Mosquitto), the
//! demo adds broker `local` with one JSON, one line-protocol and one CSV
//! subscription and [`MQTT_METERS`] publishing meters: the simulator
//! publishes them there and the gateway subscribes, so both paths of
//! ingestion run side by side. Without a broker the demo says how to get one
//! and runs with Modbus meters only.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigErrors, InfluxApi, InfluxConfig, OutputConfig, Secret};
use crate::sim::Simulator;
use crate::sinks::influx::Writer;
use crate::telemetry::Stats;

/// Where the demo should write, as given on the command line.
#[derive(Debug, Clone)]
pub enum InfluxTarget {
    /// InfluxDB 2.x API.
    V2 {
        /// Base URL.
        url: String,
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
        /// Token.
        token: String,
    },
    /// InfluxDB 1.x API.
    V1 {
        /// Base URL.
        url: String,
        /// Database (created when missing).
        database: String,
        /// User name.
        username: Option<String>,
        /// Password.
        password: String,
    },
}

/// Options of `emgate demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Run time, seconds.
    pub seconds: u64,
    /// InfluxDB to write to, if any.
    pub influx: Option<InfluxTarget>,
    /// Directory of the file sink.
    pub data_dir: PathBuf,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The built-in configuration did not validate (a bug in emgate).
    #[error("built-in demo configuration is invalid (please report this):\n{0}")]
    Config(#[from] ConfigErrors),
    /// A port or file could not be set up.
    #[error("{0}")]
    Io(String),
    /// The simulator failed to start.
    #[error("simulator: {0}")]
    Sim(String),
    /// The gateway failed.
    #[error("gateway: {0}")]
    App(#[from] crate::app::AppError),
}

/// One demo enterprise: id, name, and its meters as (id, energy, level, profile, interval s, pt, ct).
type DemoMeter = (
    &'static str,
    &'static str,
    u8,
    &'static str,
    u32,
    Option<(f64, f64)>,
);

/// The built-in enterprises. Ids look like the institute's enterprise codes.
const SITES: [(&str, &str, &[DemoMeter]); 4] = [
    (
        "E3501020001",
        "Minjiang Textile Printing & Dyeing Co.",
        &[
            (
                "tx-e-main",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((10.0, 40.0)),
            ),
            ("tx-e-dye1", "electricity", 2, "eastron_sdm630", 1, None),
            ("tx-e-dye2", "electricity", 2, "eastron_sdm630", 1, None),
            (
                "tx-e-spin",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("tx-e-comp", "electricity", 3, "eastron_sdm630", 1, None),
            (
                "tx-e-boil",
                "electricity",
                3,
                "acrel_dtsd1352",
                1,
                Some((1.0, 20.0)),
            ),
            ("tx-s-main", "steam", 1, "steam_flow_computer", 5, None),
            ("tx-s-dye", "steam", 2, "steam_flow_computer", 5, None),
            ("tx-g-boil", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("tx-w-main", "water", 1, "water_meter", 5, None),
            ("tx-w-dye", "water", 2, "water_meter", 5, None),
            ("tx-h-office", "heat", 3, "heat_meter", 5, None),
        ],
    ),
    (
        "E3505830002",
        "Quanzhou Petrochemical Additives Ltd.",
        &[
            (
                "pc-e-main1",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((100.0, 60.0)),
            ),
            (
                "pc-e-main2",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((100.0, 60.0)),
            ),
            (
                "pc-e-react",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("pc-e-pump1", "electricity", 3, "eastron_sdm630", 1, None),
            ("pc-e-pump2", "electricity", 3, "eastron_sdm630", 1, None),
            ("pc-g-main", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("pc-g-furn", "natural_gas", 2, "gas_flow_computer", 5, None),
            ("pc-s-in", "steam", 1, "steam_flow_computer", 5, None),
            ("pc-s-react", "steam", 2, "steam_flow_computer", 5, None),
            ("pc-h-main", "heat", 1, "heat_meter", 5, None),
            ("pc-w-main", "water", 1, "water_meter", 5, None),
            ("pc-w-cool", "water", 2, "water_meter", 5, None),
        ],
    ),
    (
        "E3508020003",
        "Longyan Cement Works",
        &[
            (
                "cm-e-main",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((350.0, 100.0)),
            ),
            (
                "cm-e-kiln",
                "electricity",
                2,
                "acrel_dtsd1352",
                1,
                Some((100.0, 40.0)),
            ),
            (
                "cm-e-mill1",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            (
                "cm-e-mill2",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("cm-e-fan", "electricity", 3, "eastron_sdm630", 1, None),
            ("cm-c-kiln", "coal", 1, "belt_scale", 5, None),
            ("cm-c-dryer", "coal", 2, "belt_scale", 5, None),
            ("cm-w-main", "water", 1, "water_meter", 5, None),
            ("cm-g-ign", "natural_gas", 2, "gas_flow_computer", 5, None),
            ("cm-h-office", "heat", 3, "heat_meter", 5, None),
            ("cm-s-waste", "steam", 3, "steam_flow_computer", 5, None),
            ("cm-e-light", "electricity", 3, "eastron_sdm630", 1, None),
        ],
    ),
    (
        "E3501110004",
        "Fuzhou Central Hospital Energy Centre",
        &[
            (
                "hs-e-main",
                "electricity",
                1,
                "acrel_dtsd1352",
                1,
                Some((10.0, 80.0)),
            ),
            (
                "hs-e-chill",
                "electricity",
                2,
                "generic_3phase_meter",
                1,
                None,
            ),
            ("hs-e-ward", "electricity", 3, "eastron_sdm630", 1, None),
            ("hs-e-lab", "electricity", 3, "eastron_sdm630", 1, None),
            ("hs-g-main", "natural_gas", 1, "gas_flow_computer", 5, None),
            ("hs-g-kitch", "natural_gas", 3, "gas_flow_computer", 5, None),
            ("hs-s-laund", "steam", 2, "steam_flow_computer", 5, None),
            ("hs-h-main", "heat", 1, "heat_meter", 5, None),
            ("hs-h-ward", "heat", 2, "heat_meter", 5, None),
            ("hs-w-main", "water", 1, "water_meter", 5, None),
            ("hs-w-hot", "water", 2, "water_meter", 5, None),
            ("hs-e-ups", "electricity", 3, "eastron_sdm630", 1, None),
        ],
    ),
];

/// Where the demo looks for an MQTT broker.
pub const MQTT_BROKER: (&str, u16) = ("127.0.0.1", 1883);

/// How long the broker gets to accept a TCP connection.
const MQTT_PROBE: Duration = Duration::from_millis(300);

/// MQTT meters added when a broker answers: (site index in `SITES`, id,
/// energy, level, profile, interval s). The k-th publishes through the
/// (k mod 3)-th subscription (see `sim::mqtt`): JSON, line protocol, CSV, JSON.
pub const MQTT_METERS: [(usize, &str, &str, u8, &str, u32); 4] = [
    (0, "tx-e-roof", "electricity", 3, "eastron_sdm630", 1),
    (0, "tx-w-roof", "water", 3, "water_meter", 5),
    (1, "pc-e-lab", "electricity", 3, "eastron_sdm630", 1),
    (1, "pc-h-lab", "heat", 3, "heat_meter", 5),
];

/// The `[[mqtt]]` section of the demo: broker `local` and its three subscriptions.
fn mqtt_section() -> String {
    let (host, port) = MQTT_BROKER;
    format!(
        "\n[[mqtt]]\nid = \"local\"\nhost = \"{host}\"\nport = {port}\n\
         # A fresh session per run: nothing queued from an earlier demo.\n\
         clean_session = true\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo/{{site}}/{{meter}}\"\nformat = \"json\"\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo-lp/{{site}}/{{meter}}\"\nformat = \"line_protocol\"\n\
         timestamp_unit = \"ns\"\n\n\
         [[mqtt.subscriptions]]\ntopic = \"demo-csv/{{meter}}\"\nformat = \"csv\"\n"
    )
}

/// True when something accepts a TCP connection at [`MQTT_BROKER`] within [`MQTT_PROBE`].
async fn broker_answers() -> bool {
    matches!(
        tokio::time::timeout(MQTT_PROBE, tokio::net::TcpStream::connect(MQTT_BROKER)).await,
        Ok(Ok(_))
    )
}

/// Meters the demo breaks on purpose, to show quality flags.
const FAULTS: [(&str, &str); 2] = [("tx-e-comp", "sentinel"), ("pc-w-cool", "exception")];

/// MQTT meters the demo breaks on purpose (with a broker): their messages are
/// malformed, so the gateway's rejection counters move.
const MQTT_FAULTS: [(&str, &str); 1] = [("pc-h-lab", "sentinel")];

/// The injected faults of a demo with or without MQTT meters.
fn faults(mqtt: bool) -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    FAULTS
        .iter()
        .chain(MQTT_FAULTS.iter().filter(move |_| mqtt))
}

fn free_port() -> Result<u16, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| DemoError::Io(format!("cannot bind a loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| DemoError::Io(e.to_string()))
}

/// Builds the demo configuration; endpoints listen on free loopback ports.
/// With `mqtt`, it also has broker `local` ([`MQTT_BROKER`]) and the
/// [`MQTT_METERS`].
///
/// # Errors
/// When no port can be bound or the built-in configuration does not validate.
pub fn demo_config(
    data_dir: &std::path::Path,
    lines_file: &std::path::Path,
    mqtt: bool,
) -> Result<Config, DemoError> {
    let mut main = String::new();
    let _ = write!(
        main,
        "[gateway]\nid = \"demo\"\ntimezone = \"Asia/Shanghai\"\ndata_dir = {:?}\n\n\
         [file_sink]\npath = {:?}\nbatch_size = 1000\nflush_interval_ms = 500\n\n\
         [aggregation]\nwindows = [\"1m\", \"15m\", \"1h\", \"1d\"]\n\n\
         [simulator]\ntime_step_ms = 1000\nfaults = [",
        data_dir.display().to_string(),
        lines_file.display().to_string()
    );
    for (i, (meter, fault)) in faults(mqtt).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(main, "{sep}{{ meter = \"{meter}\", fault = \"{fault}\" }}");
    }
    main.push_str("]\n");
    if mqtt {
        main.push_str(&mqtt_section());
    }
    let mut sites = Vec::new();
    for (n, (site, name, meters)) in SITES.iter().enumerate() {
        let port = free_port()?;
        let _ = write!(
            main,
            "\n[[endpoints]]\nid = \"dtu-{n}\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_ms = 500\n"
        );
        let mut text = format!("[site]\nid = \"{site}\"\nname = \"{name}\"\n");
        for (unit, (id, energy, level, profile, interval, ratios)) in meters.iter().enumerate() {
            let _ = write!(
                text,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = {level}\nprofile = \"{profile}\"\n\
                 endpoint = \"dtu-{n}\"\nunit_id = {}\npoll_interval_secs = {interval}\n",
                unit + 1
            );
            if let Some((pt, ct)) = ratios {
                let _ = writeln!(text, "pt = {pt:.1}\nct = {ct:.1}");
            }
        }
        for (_, id, energy, level, profile, interval) in
            MQTT_METERS.iter().filter(|m| mqtt && m.0 == n)
        {
            let _ = write!(
                text,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = {level}\nprofile = \"{profile}\"\n\
                 broker = \"local\"\npoll_interval_secs = {interval}\n"
            );
        }
        sites.push((format!("site{n}.toml"), text));
    }
    let site_refs: Vec<(&str, &str)> = sites
        .iter()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    Ok(config::load::from_parts(
        &main,
        &site_refs,
        crate::profiles::load::builtin(),
    )?)
}

/// Turns the command-line target into an InfluxDB config.
fn influx_config(target: &InfluxTarget, data_dir: &std::path::Path) -> InfluxConfig {
    let (url, api) = match target.clone() {
        InfluxTarget::V2 {
            url,
            org,
            bucket,
            token,
        } => (
            url,
            InfluxApi::V2 {
                org,
                bucket,
                token: Secret::new(token),
            },
        ),
        InfluxTarget::V1 {
            url,
            database,
            username,
            password,
        } => (
            url,
            InfluxApi::V1 {
                database,
                retention_policy: None,
                username,
                password: Secret::new(password),
            },
        ),
    };
    InfluxConfig {
        url,
        api,
        batch_size: 5000,
        flush_interval: Duration::from_secs(1),
        gzip: true,
        timeout: Duration::from_secs(10),
        max_lines_per_sec: None,
        dead_letter: data_dir.join("dead-letter.lp"),
        retry_initial: Duration::from_millis(500),
        retry_max: Duration::from_secs(10),
    }
}

/// Chooses the output: the given InfluxDB when it answers, else the file.
async fn choose_output(opts: &DemoOptions, config: &mut Config, lines_file: &std::path::Path) {
    let Some(target) = &opts.influx else {
        println!(
            "no InfluxDB given (--influx-url): writing line protocol to {}",
            lines_file.display()
        );
        return;
    };
    let ic = influx_config(target, &opts.data_dir);
    let reachable = match Writer::new(&ic) {
        Ok(w) => match w.ping().await {
            Ok(()) => {
                if let InfluxApi::V1 { database, .. } = &ic.api
                    && let Err(e) = w.create_database().await
                {
                    println!("warning: cannot create database {database:?}: {e}");
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match reachable {
        Ok(()) => {
            println!(
                "writing to {}",
                crate::app::describe_output(&OutputConfig::Influx(ic.clone()))
            );
            config.output = OutputConfig::Influx(ic);
        }
        Err(e) => println!(
            "InfluxDB at {} is not reachable ({e}): writing line protocol to {} instead",
            ic.url,
            lines_file.display()
        ),
    }
}

/// Runs the demo for `opts.seconds` (or until `interrupt`).
///
/// # Errors
/// When the simulator or the gateway cannot start.
pub async fn run(opts: DemoOptions, interrupt: CancellationToken) -> Result<(), DemoError> {
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
        DemoError::Io(format!(
            "cannot create data directory {}: {e}",
            opts.data_dir.display()
        ))
    })?;
    let lines_file = opts.data_dir.join("demo.lp");
    // A fresh file per run, so the file holds exactly this run's points.
    let _ = std::fs::remove_file(&lines_file);
    let mqtt = broker_answers().await;
    let mut config = demo_config(&opts.data_dir, &lines_file, mqtt)?;
    choose_output(&opts, &mut config, &lines_file).await;
    let config = Arc::new(config);

    let sim_stop = CancellationToken::new();
    let sim = Simulator::start(&config, sim_stop.clone())
        .await
        .map_err(|e| DemoError::Sim(e.to_string()))?;
    let n_meters = config.meters.len();
    // `meters_up` counts polled meters; MQTT meters have no connection state.
    let n_modbus = config
        .meters
        .iter()
        .filter(|m| m.modbus().is_some())
        .count();
    println!(
        "demo: {} enterprises, {} meters ({}), {} simulated serial servers on 127.0.0.1; running {} s",
        config.sites.len(),
        n_meters,
        energy_mix(&config),
        config.endpoints.len(),
        opts.seconds
    );
    let (host, port) = MQTT_BROKER;
    let n_mqtt = config
        .meters
        .iter()
        .filter(|m| m.broker().is_some())
        .count();
    if mqtt {
        println!("MQTT: broker on {host}:{port}, {n_mqtt} meters");
    } else {
        println!("MQTT: no broker on {host}:{port}; start mosquitto to include MQTT meters");
    }
    println!(
        "injected faults: {}",
        faults(mqtt)
            .map(|(m, f)| format!("{m}={f}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(crate::app::run(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));

    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.seconds);
    let mut last_readings = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = interrupt.cancelled() => break,
        }
        let readings = Stats::get(&stats.readings);
        println!(
            "[{:>4}s] Modbus meters up {:>2}/{n_modbus} | {:>4} readings/s | points {} ({} flagged) | lines written {}, in spool {} KiB",
            started.elapsed().as_secs(),
            stats.meters_up.load(Ordering::Relaxed),
            readings - last_readings,
            Stats::get(&stats.points),
            Stats::get(&stats.points_flagged),
            Stats::get(&stats.lines_written),
            Stats::get(&stats.spool_bytes) / 1024,
        );
        last_readings = readings;
        if Instant::now() >= deadline {
            break;
        }
    }
    shutdown.cancel();
    let summary = gateway.await.map_err(|e| DemoError::Io(e.to_string()))??;
    sim_stop.cancel();

    let elapsed = started.elapsed().as_secs_f64();
    println!("\nsummary after {elapsed:.1} s");
    println!(
        "  requests     {} sent, {} answered, {} timed out, {} exceptions ({} served by the simulator)",
        Stats::get(&stats.requests),
        Stats::get(&stats.requests_ok),
        Stats::get(&stats.requests_timeout),
        Stats::get(&stats.requests_exception),
        sim.requests_served()
    );
    println!(
        "  readings     {} ({:.1}/s), {} points, {} flagged with a quality bit",
        Stats::get(&stats.readings),
        Stats::get(&stats.readings) as f64 / elapsed,
        Stats::get(&stats.points),
        Stats::get(&stats.points_flagged)
    );
    println!(
        "  scheduling   {} overruns, {} missed slots",
        Stats::get(&stats.overruns),
        Stats::get(&stats.missed_slots)
    );
    println!(
        "  aggregation  {} meter windows (1m, 15m, 1h, 1d; consumption and gauge statistics), {} site roll-ups",
        Stats::get(&stats.windows_emitted),
        Stats::get(&stats.site_windows_emitted)
    );
    println!(
        "  output       {} lines written to {}, {} dropped, {} rejected",
        Stats::get(&stats.lines_written),
        crate::app::describe_output(&config.output),
        Stats::get(&stats.lines_dropped),
        Stats::get(&stats.lines_rejected)
    );
    println!(
        "  spool        {} lines appended; {} records ({} bytes) left for the next start",
        Stats::get(&stats.lines_spooled),
        Stats::get(&stats.spool_records),
        Stats::get(&stats.spool_bytes)
    );
    if mqtt {
        println!(
            "  mqtt         {} messages published by the simulator's {n_mqtt} meters; the gateway received {}, \
             {} readings, {} rejected {:?}, {} acked",
            sim.published(),
            Stats::get(&stats.mqtt_messages),
            Stats::get(&stats.mqtt_readings),
            Stats::get(&stats.mqtt_rejected),
            stats
                .mqtt_rejected_by_reason
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
            Stats::get(&stats.mqtt_acked),
        );
    }
    if summary.lines_left_in_spool > 0 {
        println!(
            "               {} lines not delivered before the shutdown grace ended",
            summary.lines_left_in_spool
        );
    }
    Ok(())
}

/// "12 electricity, 6 steam, …" for the banner.
fn energy_mix(config: &Config) -> String {
    crate::model::EnergyType::ALL
        .iter()
        .filter_map(|e| {
            let n = config.meters.iter().filter(|m| m.energy == *e).count();
            (n > 0).then(|| format!("{n} {e}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_without_mqtt_has_modbus_meters_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), false).expect("loads");
        assert!(c.mqtt.is_empty());
        assert_eq!(c.meters.len(), 48);
        assert!(c.meters.iter().all(|m| m.modbus().is_some()));
    }

    #[test]
    fn config_with_mqtt_publishes_every_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        let c = demo_config(dir.path(), &dir.path().join("demo.lp"), true).expect("loads");
        assert_eq!(c.mqtt.len(), 1);
        assert_eq!(c.mqtt[0].id, "local");
        assert_eq!((c.mqtt[0].host.as_str(), c.mqtt[0].port), MQTT_BROKER);
        assert_eq!(c.meters.len(), 52);
        let (plans, skipped) = crate::sim::mqtt::plan(&c);
        assert!(skipped.is_empty(), "{skipped:?}");
        let topics: Vec<(&str, &str)> = plans
            .iter()
            .map(|p| (c.meter(p.meter).id.as_str(), p.topic.as_str()))
            .collect();
        assert_eq!(
            topics,
            [
                ("tx-e-roof", "demo/E3501020001/tx-e-roof"),
                ("tx-w-roof", "demo-lp/E3501020001/tx-w-roof"),
                ("pc-e-lab", "demo-csv/pc-e-lab"),
                ("pc-h-lab", "demo/E3505830002/pc-h-lab"),
            ]
        );
    }
}
