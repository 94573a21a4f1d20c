//! The `emgate` command line: parses arguments, starts logging, calls into the
//! library and maps the outcome to an exit code.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use emgate::config::{self, Config};
use emgate::demo::{DemoOptions, InfluxTarget};
use emgate::telemetry::Stats;

mod cli;
use cli::commands::{archive_entry, dlt645_address, export, report, shards};
use cli::print::{
    print_boilers, print_bus_timings, print_config_errors, print_conversions, print_shard,
};

/// emgate: energy-metering data collection gateway (Modbus → InfluxDB).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax) [default: info; warn for `demo`,
    /// whose progress goes to stdout]. `RUST_LOG` overrides it.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the address of the one DL/T 645 meter on an endpoint's link
    /// (read-address command 0x13 to AAAAAAAAAAAA) and print its 12 digits.
    Dlt645Address {
        /// Main configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Id of the endpoint (transport "serial" or "rtu_over_tcp") the meter is alone on.
        #[arg(long)]
        endpoint: String,
    },
    /// Run the gateway until SIGINT or SIGTERM, then flush and exit.
    Run {
        /// Main configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Log every counter this often, seconds (0: only at shutdown).
        #[arg(long, default_value_t = 60)]
        stats_interval: u64,
    },
    /// Validate the configuration, profiles and references without touching the network.
    CheckConfig {
        /// Main configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print every site's shard among N gateways (`[gateway] shard`), the
    /// meters per shard, and the sites that move going from N to N+1.
    Shards {
        /// Main configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Number of shards (gateways), at least 1.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(config::shard::MAX_SHARDS)))]
        n: u32,
    },
    /// Serve the configured meters as simulated devices on their endpoints
    /// (Modbus TCP; RTU over TCP or a DTU dialling in to the gateway's
    /// `[dtu] listen`, carrying Modbus RTU and DL/T 645 meters), and
    /// publish the MQTT meters to their brokers.
    Simulate {
        /// Main configuration file (its endpoints, meters and `[simulator]` section).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the sites and meters of a running gateway (from its HTTP API).
    Status {
        /// Base URL of the gateway's API (`[api] listen`); repeat for
        /// several gateways (the shards of one province): one merged view.
        #[arg(long, default_value = "http://127.0.0.1:9184")]
        url: Vec<String>,
        /// API token (or set `EMGATE__API__TOKEN`, as the gateway reads it).
        #[arg(long, env = "EMGATE__API__TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Enter a value no meter measures (production output, output value,
    /// value added, a reading of an unconnected meter): validated against
    /// the configuration, written to its output at once; prints the entry id.
    Enter {
        /// Main configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Site id.
        #[arg(long)]
        site: String,
        /// Item: output_t (or output_<unit>), output_value_10k_cny, value_added_10k_cny, meter_reading,
        /// or a fuel lab analysis (fuel_lhv_kj_per_kg, fuel_lhv_kj_per_m3, fuel_ash_pct, fuel_moisture_pct,
        /// fuel_volatile_daf_pct, slag_share_pct, slag_combustible_pct, fly_ash_combustible_pct; with --boiler).
        #[arg(long)]
        item: String,
        /// Meter id (only with `--item meter_reading`).
        #[arg(long)]
        meter: Option<String>,
        /// Boiler id (only with a fuel lab item such as `fuel_lhv_kj_per_kg`).
        #[arg(long)]
        boiler: Option<String>,
        /// Period in the site's time zone: YYYY, YYYY-MM or YYYY-MM-DD.
        #[arg(long)]
        period: String,
        /// The value (finite, not negative).
        #[arg(long, allow_negative_numbers = true)]
        value: f64,
        /// Unit of the value (the item's: t, 10k_cny, kj_per_kg, kj_per_m3, pct, or the meter's counter unit).
        #[arg(long)]
        unit: String,
        /// Who enters it.
        #[arg(long)]
        by: String,
        /// Why (required with `--supersedes`).
        #[arg(long)]
        reason: Option<String>,
        /// Id of the entry this one corrects.
        #[arg(long)]
        supersedes: Option<String>,
    },
    /// Write out the local archive (window results and entries kept under
    /// `<data_dir>/archive` for `gateway.archive_days`): line protocol to
    /// refill an InfluxDB (`/write?precision=s`), or CSV.
    Export {
        /// Main configuration file (its data directory and time zone).
        #[arg(long, short)]
        config: PathBuf,
        /// First day, YYYY-MM-DD, in the gateway's time zone.
        #[arg(long)]
        from: String,
        /// Last day (included), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Only this site (repeat for more); all sites when absent.
        #[arg(long)]
        site: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormatArg::Lp)]
        format: ExportFormatArg,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Make a report from the InfluxDB the gateways write to: consumption,
    /// targets, completeness, consistency or verification. Exit code 0 on
    /// success, 2 for a bad request or configuration, 1 when the database fails.
    Report {
        /// consumption, targets, completeness, consistency or verification.
        kind: String,
        /// Main configuration file (sites, targets, and `[influxdb]` to read).
        #[arg(long, short)]
        config: PathBuf,
        /// Site id (repeat, or separate with commas); default: every site.
        #[arg(long)]
        site: Vec<String>,
        /// Calendar year, e.g. 2026 (default: the current year or month).
        #[arg(long)]
        year: Option<String>,
        /// A month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// First day, YYYY-MM-DD (with --to).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD, included (with --from).
        #[arg(long)]
        to: Option<String>,
        /// Consumption rows per day, month or year.
        #[arg(long)]
        granularity: Option<String>,
        /// Verification: "due soon" means within this many days (default 30).
        #[arg(long)]
        due_within: Option<String>,
        /// table, csv, json or html.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// InfluxDB base URL instead of the configuration's `[influxdb] url`.
        #[arg(long)]
        url: Option<String>,
        /// Database (1.x) or bucket (2.x/3.x, through a DBRP mapping) instead of the configuration's.
        #[arg(long)]
        db: Option<String>,
        /// InfluxDB 2.x/3.x token (or set `EMGATE_REPORT_TOKEN`).
        #[arg(long, env = "EMGATE_REPORT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Read the gateway's local archive (`<data_dir>/archive`) instead of
        /// InfluxDB (the default when the configuration writes to a file).
        #[arg(long)]
        archive: bool,
    },
    /// Run a built-in simulated site through the gateway and show live progress.
    Demo {
        /// How long to run, seconds (default: until the first whole minute
        /// has closed and its windows are written, 71 to 130 s).
        #[arg(long)]
        seconds: Option<u64>,
        /// InfluxDB to write to; without it (or when unreachable) lines go to ./data/.
        #[arg(long)]
        influx_url: Option<String>,
        /// InfluxDB API.
        #[arg(long, value_enum, default_value_t = ApiArg::V2)]
        influx_api: ApiArg,
        /// v2 organisation.
        #[arg(long, default_value = "emgate")]
        influx_org: String,
        /// v2 bucket.
        #[arg(long, default_value = "emgate")]
        influx_bucket: String,
        /// v2 token (or set `EMGATE_INFLUX_TOKEN`).
        #[arg(
            long,
            env = "EMGATE_INFLUX_TOKEN",
            hide_env_values = true,
            default_value = ""
        )]
        influx_token: String,
        /// v1 database (created when missing).
        #[arg(long, default_value = "emgate")]
        influx_db: String,
        /// v1 user name.
        #[arg(long)]
        influx_user: Option<String>,
        /// v1 password (or set `EMGATE_INFLUX_PASSWORD`).
        #[arg(
            long,
            env = "EMGATE_INFLUX_PASSWORD",
            hide_env_values = true,
            default_value = ""
        )]
        influx_password: String,
        /// Directory for the file sink.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormatArg {
    /// InfluxDB line protocol, timestamps in seconds.
    Lp,
    /// CSV, one row per point (columns in the README).
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApiArg {
    /// `/api/v2/write`.
    V2,
    /// `/write?db=`.
    V1,
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        print_config_errors(&errors);
        ExitCode::from(2)
    })
}

/// Turns every SIGHUP into a reload request until `shutdown`; the outcome
/// is logged by the gateway itself.
fn reload_on_sighup(
    requests: tokio::sync::mpsc::Sender<emgate::app::ReloadRequest>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot listen for SIGHUP; reload through the API only");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                got = hangup.recv() => if got.is_none() { break },
            }
            info!("SIGHUP: reloading the configuration");
            let (reply, _outcome) = tokio::sync::oneshot::channel();
            if requests
                .send(emgate::app::ReloadRequest { reply })
                .await
                .is_err()
            {
                break;
            }
        }
    });
}

/// Two glibc malloc settings, measured at the NeuronEX grid (BENCHMARKS.md,
/// "The peer benchmark"), where together they took the peak RSS from
/// 54 MiB to 40 MiB:
/// * buffers of 128 KiB and more (request bodies, gzip output, checkpoint
///   chunks, poll batches of wide devices) are mapped and unmapped instead
///   of coming from an arena. The adaptive threshold otherwise rises to the
///   largest buffer freed so far, and the arena keeps every such buffer
///   resident after it is freed;
/// * one arena instead of one per thread: each thread's arena kept its own
///   freed memory resident (10 MiB in one of them). The hot paths do not
///   allocate per reading, so the shared lock is not contended.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only changes a malloc parameter; it is called once,
    // first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    init_logging(
        cli.log_format,
        cli.log_level.as_deref().unwrap_or(default_level),
    );
    if let Command::CheckConfig { config } = &cli.command {
        return match config::load(config) {
            Ok(c) => {
                println!(
                    "{}: ok: {} site(s), {} meter(s), {} endpoint(s), {} MQTT broker(s), {} profile(s) in use; output: {}",
                    config.display(),
                    c.sites.len(),
                    c.meters.len(),
                    c.endpoints.len(),
                    c.mqtt.len(),
                    c.profiles.len(),
                    emgate::app::describe_output(&c.output)
                );
                print_shard(&c);
                print_bus_timings(&c);
                print_conversions(&c);
                print_boilers(&c);
                ExitCode::SUCCESS
            }
            Err(errors) => {
                print_config_errors(&errors);
                ExitCode::from(2)
            }
        };
    }
    if let Command::Shards { config, n } = &cli.command {
        return shards(config, *n);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async_main(cli.command));
    // Everything that must reach the disk did before `async_main` returned;
    // a task still blocked (a DNS lookup, a stuck write) must not hold the
    // process past the shutdown deadline.
    runtime.shutdown_background();
    code
}

async fn async_main(command: Command) -> ExitCode {
    // First thing: a signal during start-up then stops the gateway in order.
    let stop = emgate::shutdown::termination();
    match command {
        Command::CheckConfig { .. } | Command::Shards { .. } => {
            unreachable!("handled before the runtime starts")
        }
        Command::Dlt645Address { config, endpoint } => {
            let config = match load_or_report(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match dlt645_address(&config, &endpoint).await {
                Ok(address) => {
                    println!("{address}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config,
            stats_interval,
        } => {
            let config = match load_or_report(&config) {
                Ok(c) => Arc::new(c),
                Err(code) => return code,
            };
            let shutdown = CancellationToken::new();
            let stats = Arc::new(Stats::default());
            let signal_token = shutdown.clone();
            let timeout = config.gateway.shutdown_timeout;
            tokio::spawn(async move {
                stop.await;
                info!(
                    timeout_s = timeout.as_secs(),
                    "termination requested; stopping within the shutdown deadline"
                );
                signal_token.cancel();
            });
            let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
            reload_on_sighup(reload_tx.clone(), shutdown.clone());
            if stats_interval > 0 {
                let periodic = Arc::clone(&stats);
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let mut tick =
                        tokio::time::interval(std::time::Duration::from_secs(stats_interval));
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => periodic.log("stats"),
                            () = stop.cancelled() => break,
                        }
                    }
                });
            }
            let control = emgate::app::Control {
                reload: Some(reload_rx),
                api: Some(reload_tx),
            };
            let result = emgate::app::run_with(config, Arc::clone(&stats), shutdown, control).await;
            stats.log("final stats");
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    error!(error = %e, "gateway failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { url, token } => {
            let (text, failed) = emgate::telemetry::client::run_many(&url, token.as_deref()).await;
            print!("{text}");
            for e in &failed {
                eprintln!("error: {e}");
            }
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Enter {
            config,
            site,
            item,
            meter,
            boiler,
            period,
            value,
            unit,
            by,
            reason,
            supersedes,
        } => {
            let config = match load_or_report(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let input = emgate::entries::EntryInput {
                site,
                item,
                meter,
                boiler,
                period,
                value,
                unit,
                entered_by: Some(by),
                reason,
                supersedes,
            };
            match emgate::entries::write::enter(&config, &input).await {
                Ok(entry) => {
                    archive_entry(&config, &entry);
                    println!("{}", entry.id);
                    ExitCode::SUCCESS
                }
                Err(e @ emgate::entries::write::EnterError::Invalid(_)) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Export {
            config,
            from,
            to,
            site,
            format,
            out,
        } => {
            let config = match load_or_report(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            export(&config, &from, &to, &site, format, out.as_deref())
        }
        Command::Report {
            kind,
            config,
            site,
            year,
            month,
            from,
            to,
            granularity,
            due_within,
            format,
            out,
            url,
            db,
            token,
            archive,
        } => {
            let config = match load_or_report(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let args = emgate::reports::run::Args {
                kind,
                sites: site,
                year,
                month,
                from,
                to,
                granularity,
                due_within,
            };
            let overrides = emgate::reports::store_influx::InfluxOverrides {
                url,
                database: db,
                token,
            };
            report(&config, &args, &format, &overrides, archive, out.as_deref()).await
        }
        Command::Simulate { config } => {
            let config = match load_or_report(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let shutdown = CancellationToken::new();
            let sim = match emgate::sim::Simulator::start(&config, shutdown.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    error!(error = %e, "cannot start the simulator");
                    return ExitCode::FAILURE;
                }
            };
            for (i, ep) in config.endpoints.iter().enumerate() {
                let id = emgate::model::EndpointId(i as u32);
                if let Some(addr) = sim.local_addr(id) {
                    info!(endpoint = %ep.id, %addr, meters = config.meters_on(id).count(), "serving simulated meters");
                }
            }
            for (i, m) in config.meters.iter().enumerate() {
                let id = emgate::model::MeterId(i as u32);
                if let (Some(broker), Some(topic)) = (m.broker(), sim.mqtt_topic(id)) {
                    let b = &config.mqtt[broker.index()];
                    info!(meter = %m.id, broker = %b.id, addr = %format!("{}:{}", b.host, b.port), %topic,
                        interval_s = m.poll_interval.as_secs_f64(), "publishing simulated MQTT meter");
                }
            }
            stop.await;
            shutdown.cancel();
            info!(
                requests = sim.requests_served(),
                mqtt_published = sim.published(),
                "simulator stopped"
            );
            ExitCode::SUCCESS
        }
        Command::Demo {
            seconds,
            influx_url,
            influx_api,
            influx_org,
            influx_bucket,
            influx_token,
            influx_db,
            influx_user,
            influx_password,
            data_dir,
        } => {
            let influx = influx_url.map(|url| match influx_api {
                ApiArg::V2 => InfluxTarget::V2 {
                    url,
                    org: influx_org,
                    bucket: influx_bucket,
                    token: influx_token,
                },
                ApiArg::V1 => InfluxTarget::V1 {
                    url,
                    database: influx_db,
                    username: influx_user,
                    password: influx_password,
                },
            });
            let opts = DemoOptions {
                seconds,
                influx,
                data_dir,
            };
            let interrupt = CancellationToken::new();
            let token = interrupt.clone();
            tokio::spawn(async move {
                stop.await;
                token.cancel();
            });
            match emgate::demo::run(opts, interrupt).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
