//! `emgate demo`: the whole job on one machine with nothing else running.
//!
//! It builds a configuration in code (four enterprises, about fifty meters
//! covering every energy type and every shipped profile), serves those
//! meters from the simulator on loopback, runs the real gateway against them
//! and prints progress every second and a summary at the end. Points go to
//! InfluxDB when one is given and answers its ping; otherwise to a
//! line-protocol file under the data directory, and the demo says which.
//!
//! Every enterprise has a Modbus TCP gateway (`tcp-N`) for its fast
//! electricity meters; two of them also show the field buses most meters
//! really sit on ([`SERIAL_BUS`], [`DTU_BUS`]):
//! * the cement works' utility meters on an RS-485 bus behind a serial
//!   server (`rtu-2`: `transport = "rtu_over_tcp"`, 9600 baud), polled
//!   every 5 s, and on the same bus its two grid incomers, DL/T 645-2007
//!   meters ([`DLT645_METERS`], profile [`DLT645_PROFILE`]): Modbus RTU and
//!   DL/T 645 requests share the one conversation of the bus;
//! * the hospital's utility meters behind a 4G DTU that dials in to the
//!   gateway's `[dtu] listen` (`dtu-3`: registration `865123456789012`, the
//!   USR factory heartbeat `www.usr.cn` after [`DTU_HEARTBEAT_MS`] of idle,
//!   so heartbeats arrive between the 5 s polls). The simulator is the DTU;
//!   the summary says how often it connected and beat.
//!
//! Three enterprises have a boiler house (`demo/boilers.rs`): a gas steam boiler,
//! a coal-fired steam boiler and a gas hot-water boiler, each with its fuel
//! meter, output meter and flue-gas analyzer, driven by the simulator's
//! boiler model. The demo serves the HTTP API on a free loopback port (the
//! status page shows the boilers) and its summary ends with each boiler's
//! newest window: both efficiencies, state and grade, beside the
//! simulator's true efficiency.
//!
//! When an MQTT broker answers on 127.0.0.1:1883 (a local Mosquitto), the
//! demo adds broker `local` with one JSON, one line-protocol and one CSV
//! subscription and [`MQTT_METERS`] publishing meters: the simulator
//! publishes them there and the gateway subscribes, so both paths of
//! ingestion run side by side. Without a broker the demo says how to get one
//! and runs with Modbus meters only.
//!
//! The regulator's view (see [`targets`]): at start each enterprise's
//! production output for the current month and year is entered through the
//! entries module (`emgate enter`'s path, so the `entry` points land in the
//! output); at the end the demo reads back each site's `1m` totals from its
//! line file, prints them (electricity and controlled standard coal), gives
//! each enterprise a target for the current year sized from that run, and
//! prints the targets report ([`print_targets_report`]).

mod boilers;
mod builtin;
mod physics;
pub mod targets;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigErrors, InfluxApi, InfluxConfig, OutputConfig, Secret};
use crate::sim::Simulator;
use crate::sinks::influx::Writer;
use crate::telemetry::{BoilerSnapshot, Stats};
pub use builtin::{
    DLT645_METERS, DLT645_PROFILE, DTU_BUS, DTU_HEARTBEAT_MS, DTU_REGISTRATION, DemoBus,
    MQTT_BROKER, MQTT_METERS, SERIAL_BUS, demo_config,
};
use builtin::{SITES, faults};

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
    /// Run time, seconds; `None`: until the first whole minute has closed
    /// and its windows are written ([`whole_minute_seconds`]).
    pub seconds: Option<u64>,
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

/// How long the broker gets to accept a TCP connection.
const MQTT_PROBE: Duration = Duration::from_millis(300);

/// True when something accepts a TCP connection at [`MQTT_BROKER`] within [`MQTT_PROBE`].
async fn broker_answers() -> bool {
    matches!(
        tokio::time::timeout(MQTT_PROBE, tokio::net::TcpStream::connect(MQTT_BROKER)).await,
        Ok(Ok(_))
    )
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
        gzip_level: crate::config::DEFAULT_GZIP_LEVEL,
        timeout: Duration::from_secs(10),
        max_lines_per_sec: None,
        dead_letter: data_dir.join("dead-letter.lp"),
        retry_initial: Duration::from_millis(500),
        retry_max: Duration::from_secs(10),
        max_in_flight: crate::config::DEFAULT_MAX_IN_FLIGHT,
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

/// How long the demo runs by default when started at `now_unix_s`: to
/// the end of the first whole minute after it, plus 10 s for the last
/// readings and the boilers' windows to be written: 71 to 130 s. A shorter
/// run would show only the first, partial minute (a boiler's window of it
/// lacks coverage and says so).
#[must_use]
pub fn whole_minute_seconds(now_unix_s: i64) -> u64 {
    let into = now_unix_s.rem_euclid(60) as u64;
    (60 - into) + 60 + 10
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
    // A fresh file and archive per run, so both hold exactly this run's
    // points (the targets report reads the archive).
    let _ = std::fs::remove_file(&lines_file);
    let _ = std::fs::remove_dir_all(crate::archive::dir_of(&opts.data_dir));
    let mqtt = broker_answers().await;
    let mut config = demo_config(&opts.data_dir, &lines_file, mqtt)?;
    choose_output(&opts, &mut config, &lines_file).await;
    let config = Arc::new(config);
    enter_output(&config).await;

    let sim_stop = CancellationToken::new();
    let sim = Simulator::start(&config, sim_stop.clone())
        .await
        .map_err(|e| DemoError::Sim(e.to_string()))?;
    let n_meters = config.meters.len();
    // `meters_up` counts polled meters (Modbus and DL/T 645); MQTT meters
    // have no connection state. The progress line keeps its "Modbus meters
    // up" label, which scripts and tests look for.
    let n_polled = config
        .meters
        .iter()
        .filter(|m| m.endpoint().is_some())
        .count();
    let n_tcp = config
        .endpoints
        .iter()
        .filter(|e| !e.is_serial_framed())
        .count();
    let seconds = opts
        .seconds
        .unwrap_or_else(|| whole_minute_seconds(jiff::Timestamp::now().as_second()));
    println!(
        "demo: {} enterprises, {} meters ({}), {n_tcp} Modbus TCP gateways, 1 serial server and 1 dial-in DTU simulated on 127.0.0.1; running {seconds} s{}",
        config.sites.len(),
        n_meters,
        energy_mix(&config),
        if opts.seconds.is_none() {
            " (until the first whole minute has closed)"
        } else {
            ""
        }
    );
    for line in field_bus_lines(&config, &sim) {
        println!("{line}");
    }
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
    if let Some(addr) = config.api.listen {
        println!("status page: http://{addr}/ (boilers: http://{addr}/api/boilers)");
    }
    println!("{}", boilers::banner(&config));
    println!(
        "injected faults: {}",
        faults(mqtt)
            .map(|(m, f)| format!("{m}={f}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    // The API serves the status page and /api/boilers while the demo runs;
    // its reload requests are refused (the configuration is built in).
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<crate::app::ReloadRequest>(1);
    tokio::spawn(async move {
        while let Some(r) = reload_rx.recv().await {
            let _ = r.reply.send(Err(vec![
                "the demo's configuration is built in: nothing to reload".to_owned(),
            ]));
        }
    });
    let gateway = tokio::spawn(crate::app::run_with(
        Arc::clone(&config),
        Arc::clone(&stats),
        shutdown.clone(),
        crate::app::Control {
            reload: None,
            api: Some(reload_tx),
        },
    ));

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
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
            "[{:>4}s] Modbus meters up {:>2}/{n_polled} | {:>4} readings/s | points {} ({} flagged) | lines written {}, in spool {} KiB",
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
    // The boilers' newest windows, as the status page shows them.
    let boilers = match config.api.listen {
        Some(addr) => boiler_snapshots(addr).await,
        None => Vec::new(),
    };
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
        "  aggregation  {} meter windows (1m, 15m, 1h, 1d, 1mo; consumption and gauge statistics), {} site roll-ups",
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
    if let Some(e) = endpoint_index(&config, DTU_BUS.id) {
        println!(
            "  DTU          {}: {} connection(s) to the gateway, {} heartbeat(s) sent while idle",
            DTU_BUS.id,
            sim.dtu_connects(e),
            sim.dtu_heartbeats(e)
        );
    }
    for line in boilers::summary_lines(&config, &boilers, &sim) {
        println!("{line}");
    }
    if summary.lines_left_in_spool > 0 {
        println!(
            "               {} lines not delivered before the shutdown grace ended",
            summary.lines_left_in_spool
        );
    }
    let measured = site_totals(&config).await;
    let mut with_targets = (*config).clone();
    with_targets.targets = targets::size(&config, &measured, jiff::Timestamp::now());
    for t in &with_targets.targets {
        println!(
            "  target       {}: {} cap {:.6} tce, intensity base {:.6} {} (sized from this run)",
            config.sites[t.site.index()].id,
            match t.span {
                crate::config::TargetSpan::Year(y) => y.to_string(),
                crate::config::TargetSpan::Plan { first, last } => format!("{first}-{last}"),
            },
            t.cap_tce.unwrap_or(0.0),
            t.intensity.as_ref().map_or(0.0, |i| i.base_intensity),
            t.intensity.as_ref().map_or("", |i| i.unit.as_str()),
        );
    }
    print_targets_report(&with_targets).await;
    Ok(())
}

/// Prints the targets report for the current year, worst first, as
/// `emgate report targets --archive` would: from the gateway's local
/// archive under `config.gateway.data_dir` (written whatever the output,
/// so the demo needs no database to show it). `config` holds the demo's
/// sites and their targets sized from this run.
pub async fn print_targets_report(config: &Config) {
    use crate::reports::{Granularity, ReportKind, Request, Sites, run};
    let store = crate::reports::store_archive::ArchiveStore::from_config(config);
    let req = Request {
        kind: ReportKind::Targets,
        sites: Sites::All,
        range: None,
        now: jiff::Timestamp::now(),
        granularity: Granularity::Day,
        due_within_days: 30,
    };
    println!(
        "\ntargets report (emgate report targets --archive), from {}:\n",
        crate::archive::dir_of(&config.gateway.data_dir).display()
    );
    match run::build(config, &store, &req).await {
        Ok(output) => print!("{}", run::render(&output, run::Format::Table)),
        Err(e) => println!("  no targets report: {e}"),
    }
}

/// Enters each enterprise's production output for the current month and
/// year (see [`targets::entries`]) through the entries module, into the
/// demo's output; a refused entry is a warning, never a failed demo.
async fn enter_output(config: &Config) {
    let inputs = targets::entries(config, jiff::Timestamp::now());
    let mut stored = 0;
    for input in &inputs {
        match crate::entries::write::enter(config, input).await {
            Ok(entry) => {
                stored += 1;
                // Kept in the local archive too, as `emgate enter` does:
                // the targets report at the end reads the archive.
                let mut line = Vec::with_capacity(256);
                entry.encode(&mut line);
                let dir = crate::archive::dir_of(&config.gateway.data_dir);
                if let Err(e) = crate::archive::append_now(&dir, &config.gateway.timezone, &line) {
                    println!("warning: entry {} not archived: {e}", entry.id);
                }
            }
            Err(e) => println!(
                "warning: entry {} {} {}: {e}",
                input.site, input.item, input.period
            ),
        }
    }
    println!(
        "entries: {stored} production entries (output this month and this year) for {} enterprises",
        config.sites.len()
    );
}

/// What each site's run measured, from the gateway's local archive: the
/// sums of its `1m` `site_consumption` windows this year, the same sums
/// the targets report makes (so the targets sized from them land on their
/// planned levels). Prints one line per site.
async fn site_totals(config: &Config) -> std::collections::BTreeMap<String, targets::SiteMeasure> {
    use crate::reports::{Sites, Store as _};
    let store = crate::reports::store_archive::ArchiveStore::from_config(config);
    let now = jiff::Timestamp::now();
    let tz = &config.gateway.timezone;
    let year_start = jiff::civil::Date::new(tz.to_datetime(now).year(), 1, 1)
        .ok()
        .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
        .map_or(0, |z| z.timestamp().as_second());
    let sums = match store
        .site_sums("1m", &Sites::All, year_start, now.as_second() + 1)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            println!("  sites        no totals: {e}");
            return std::collections::BTreeMap::new();
        }
    };
    let measured = targets::measure(&sums);
    for site in &config.sites {
        let m = measured.get(&site.id).cloned().unwrap_or_default();
        println!(
            "  site         {}: electricity {:.2} kWh, controlled {:.3} kgce in {} 1m window(s)",
            site.id, m.electricity_kwh, m.controlled_kgce, m.windows
        );
    }
    measured
}

/// `GET /api/boilers` of the demo's own API; empty when it does not answer
/// (the summary then says the boilers have no window).
async fn boiler_snapshots(addr: std::net::SocketAddr) -> Vec<BoilerSnapshot> {
    let url = format!("http://{addr}/api/boilers");
    let answer = async {
        let body = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<Vec<BoilerSnapshot>>(&body).map_err(|e| e.to_string())
    };
    answer.await.unwrap_or_else(|e| {
        println!("warning: {url}: {e}");
        Vec::new()
    })
}

/// The endpoint called `id`.
fn endpoint_index(config: &Config, id: &str) -> Option<crate::model::EndpointId> {
    let i = config.endpoints.iter().position(|e| e.id == id)?;
    Some(crate::model::EndpointId(u32::try_from(i).ok()?))
}

/// One banner line per field bus: where it is and what is on it.
fn field_bus_lines(config: &Config, sim: &Simulator) -> Vec<String> {
    let site_name = |bus: &DemoBus| SITES.get(bus.site).map_or("", |s| s.1);
    let mut lines = Vec::new();
    if let Some(e) = endpoint_index(config, SERIAL_BUS.id) {
        let addr = sim
            .local_addr(e)
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        let baud = config.endpoints[e.index()].line.map_or(0, |l| l.baud);
        let dlt645 = config
            .meters_on(e)
            .filter(|(_, m)| m.dlt645().is_some())
            .count();
        lines.push(format!(
            "field bus {}: {} meters of {} on RS-485 behind a serial server at {addr} (RTU over TCP, {baud} baud): \
             {} Modbus RTU, {dlt645} DL/T 645 (incomers {})",
            SERIAL_BUS.id,
            SERIAL_BUS.meters.len(),
            site_name(&SERIAL_BUS),
            SERIAL_BUS.meters.len() - dlt645,
            DLT645_METERS
                .iter()
                .map(|(id, address)| format!("{id} at {address}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if endpoint_index(config, DTU_BUS.id).is_some() {
        lines.push(format!(
            "field bus {}: {} meters of {} behind a DTU dialling in to {} (registration \"{DTU_REGISTRATION}\", heartbeat \"www.usr.cn\" after {} s idle)",
            DTU_BUS.id,
            DTU_BUS.meters.len(),
            site_name(&DTU_BUS),
            config.dtu.listen,
            DTU_HEARTBEAT_MS / 1000
        ));
    }
    lines
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
