//! The running gateway: wires sources, pipeline, spool and output together
//! and owns their shutdown.
//!
//! ```text
//! EndpointPoller ×N ─┐
//!                     ├─Input─▶ validate ─▶ aggregate ─▶ encode ──append──▶ spool (disk) ──read/ack──▶ uploader ──▶ InfluxDB | file
//! BrokerClient ×M ────┘   ◀── spooled (true/false) ──┘
//! ```
//! An [`Input`](crate::sources::Input) carries a batch and, for MQTT, a one-shot sender the encoder
//! answers once the batch's lines are in the spool: only then does the
//! broker client acknowledge the message, so the broker keeps (and
//! redelivers) whatever the gateway has not made durable.
//! Readings and the windows they close are appended in the same spool
//! record, so a crash never keeps one without the other.
//! The reading channel is bounded and the spool is bounded on disk. With the
//! `block` policy a full spool makes the encoder wait, the channel fills, and
//! the pollers' missed slots are counted: nothing accepted is ever deleted.
//! With `drop_oldest` the oldest unsent lines make room, counted per site.
//!
//! Generations: the sources (pollers, broker clients) and the encoder thread
//! of one configuration form a generation; the spool and the uploader
//! outlive them. A reload (SIGHUP, `POST /api/reload`) loads the file again
//! and, when valid, replaces the generation (see `app::reload`); settings of
//! the long-lived parts (output, spool, data directory, API, shutdown
//! deadline) cannot change that way and such a reload is refused with
//! "… changed: restart the gateway".
//!
//! Shutdown runs front to back within `gateway.shutdown_timeout`, each task
//! within its share of it ([`crate::shutdown`] has the timeline): the
//! pollers and broker clients stop at the cancellation (the broker clients
//! after acking what the encoder still spools), the encoder appends what is
//! still in the channel, writes the validation and aggregation checkpoints
//! and ends, the spool is synced, and the uploader delivers for the rest;
//! a backstop before the deadline stops it. What it does not deliver stays
//! in the spool for the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::ApiState;
use crate::archive::Archive;
use crate::config::{Config, InfluxApi, OutputConfig};
use crate::shutdown::{Deadline, Shutdown};
use crate::sinks::uploader::{self, SinkSummary, UploaderOptions};
use crate::spool::{Spool, SpoolError};
use crate::telemetry::SharedBoard;
use crate::telemetry::Stats;

/// Reading batches buffered between the pollers and the encoder.
mod appender;
mod generation;
mod reload;
pub mod stages;

use generation::{GenEnv, Prepared};
use reload::reload;

const READING_CHANNEL: usize = 1024;

/// Shortest interval between two "spool full" or "lines dropped" warnings.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Errors that stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The output could not be set up.
    #[error("output: {0}")]
    Sink(#[from] uploader::SinkError),
    /// The spool directory is unusable (permissions, not a directory).
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    /// An MQTT broker client could not be set up (TLS files).
    #[error("{0}")]
    Mqtt(#[from] crate::sources::mqtt::client::ClientError),
    /// A task panicked or was aborted.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Opens the spool the configuration describes and logs what recovery found.
///
/// # Errors
/// When the spool directory cannot be used.
pub fn open_spool(config: &Config, stats: &Arc<Stats>) -> Result<Spool, SpoolError> {
    let s = &config.spool;
    let (spool, recovery) = Spool::open(s.clone())?;
    info!(dir = %s.dir.display(), %recovery, "spool opened");
    let hook_stats = Arc::clone(stats);
    spool.set_drop_hook(Box::new(move |record| hook_stats.count_dropped(record)));
    stats.update_spool(&spool);
    Ok(spool)
}

/// Opens `<data_dir>/archive` (see [`crate::archive`]); `None` when
/// `archive_days` is 0, or when the directory cannot be created (logged:
/// the gateway runs without its local history rather than not at all).
fn open_archive(config: &Config) -> Option<Archive> {
    let g = &config.gateway;
    let dir = crate::archive::dir_of(&g.data_dir);
    match Archive::open(&dir, g.archive_days, &g.timezone) {
        Ok(Some(a)) => {
            info!(dir = %dir.display(), archive_days = g.archive_days, "archive opened");
            Some(a)
        }
        Ok(None) => {
            info!("archive off (gateway.archive_days = 0)");
            None
        }
        Err(e) => {
            error!(error = %e, "the gateway runs without its local archive: {e}");
            None
        }
    }
}

/// Logs what the archive did in this run.
fn log_archive(archive: &Archive) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = archive.counters();
    let dropped = c.lines_dropped.load(Relaxed) + c.lines_failed.load(Relaxed);
    let written = c.lines_written.load(Relaxed);
    if dropped > 0 {
        warn!(
            written,
            not_archived = dropped,
            "archive closed; some window lines were not archived (see earlier warnings)"
        );
    } else {
        info!(
            written,
            removed = c.files_removed.load(Relaxed),
            compressed = c.days_compressed.load(Relaxed),
            "archive closed"
        );
    }
}

/// A one-line description of where points go, for startup logs (no secrets).
#[must_use]
pub fn describe_output(output: &OutputConfig) -> String {
    match output {
        OutputConfig::Influx(i) => match &i.api {
            InfluxApi::V2 { org, bucket, .. } => {
                format!("influxdb v2 {} org={org} bucket={bucket}", i.url)
            }
            InfluxApi::V1 {
                database,
                retention_policy,
                ..
            } => format!(
                "influxdb v1 {} db={database}{}",
                i.url,
                retention_policy
                    .as_ref()
                    .map(|rp| format!(" rp={rp}"))
                    .unwrap_or_default()
            ),
        },
        OutputConfig::File(f) => format!("file {}", f.path.display()),
    }
}

pub use crate::api::ReloadRequest;

/// How [`run_with`] is steered from outside, besides the shutdown.
#[derive(Debug)]
pub struct Control {
    /// Reload requests (SIGHUP, the API); the gateway never reloads when `None`.
    pub reload: Option<mpsc::Receiver<ReloadRequest>>,
    /// Serve the HTTP API on `[api] listen`, with `POST /api/reload` sending
    /// to this sender (the other end of `reload`); no API when `None`.
    pub api: Option<mpsc::Sender<ReloadRequest>>,
}

/// Runs the gateway described by `config` until `shutdown` is cancelled,
/// then drains and flushes. Counters go to `stats`. No reload.
///
/// # Errors
/// When the spool or the output cannot start, or a task fails.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<SinkSummary, AppError> {
    run_with(
        config,
        stats,
        shutdown,
        Control {
            reload: None,
            api: None,
        },
    )
    .await
}

/// [`run`], with configuration reloads taken from `control`.
///
/// The spool and the uploader live as long as the process; the sources and
/// the pipeline stages of one configuration form a generation (`generation::Generation`), which a
/// reload replaces (see `app::reload`).
///
/// # Errors
/// When the spool or the output cannot start, or a task fails.
pub async fn run_with(
    config: Arc<Config>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    mut control: Control,
) -> Result<SinkSummary, AppError> {
    let spool = open_spool(&config, &stats)?;
    let token = shutdown;
    // Every task's share of the deadline comes from this one value.
    let shutdown = Shutdown::new(
        token.clone(),
        Deadline::new(config.gateway.shutdown_timeout),
    );
    let deadline = shutdown.deadline();
    // Broker clients are built first: a missing TLS file stops the start
    // before anything runs.
    let next = Prepared::new(Arc::clone(&config), &stats)?;

    info!(
        gateway = %config.gateway.id,
        sites = config.sites.len(),
        meters = config.meters.len(),
        endpoints = config.endpoints.len(),
        brokers = config.mqtt.len(),
        output = %describe_output(&config.output),
        shutdown_timeout_s = config.gateway.shutdown_timeout.as_secs(),
        "starting"
    );

    let input_done = CancellationToken::new();
    let mut options = UploaderOptions::for_output(&config.output);
    options.shutdown_grace = deadline.uploader_grace();
    let shared_board = SharedBoard::new(Arc::clone(&next.sources.board));
    let mut uploader = tokio::spawn(uploader::run_observed(
        config.output.clone(),
        options,
        spool.clone(),
        Arc::clone(&stats),
        Some(shared_board.clone()),
        input_done.clone(),
    ));

    let env = GenEnv {
        stats: Arc::clone(&stats),
        spool: spool.clone(),
        shutdown,
        board: shared_board,
        archive: open_archive(&config),
    };
    // The configuration in force, for `POST /api/entries` (sent at each reload).
    let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::clone(&config));
    let api = match (control.api.take(), config.api.listen) {
        (Some(reload), Some(addr)) => {
            start_api(addr, &config, &env, reload, config_rx, &token).await
        }
        _ => None,
    };
    let mut current = next.start(&env, None, None, None).await;
    current.board.mark_started();

    // Pollers end only at shutdown; a gateway without meters (or whose
    // pollers ended early) still runs until then, delivering its spool.
    loop {
        let Some(rx) = control.reload.as_mut() else {
            token.cancelled().await;
            break;
        };
        let request = tokio::select! {
            () = token.cancelled() => break,
            r = rx.recv() => r,
        };
        let Some(request) = request else {
            // Every sender is gone: no more reloads, run until the shutdown.
            control.reload = None;
            continue;
        };
        let outcome = reload(&mut current, &env).await;
        match &outcome {
            Ok(summary) => {
                config_tx.send_replace(Arc::clone(&current.config));
                info!(summary = %summary, "reload applied: {summary}");
            }
            Err(errors) => {
                for e in errors {
                    error!(error = %e, "reload refused: {e}");
                }
                error!(
                    errors = errors.len(),
                    "reload refused; the running configuration stays in force"
                );
            }
        }
        // The requester may have stopped waiting: nothing to do.
        let _ = request.reply.send(outcome);
    }

    // Shutdown, front to back, within the deadline (already cancelled: this
    // is the instant every share counts from).
    let t0 = env.shutdown.cancelled().await;
    let encoded = current.stop().await;
    if let Err(e) = spool.sync() {
        error!(error = %e, "cannot sync the spool at shutdown");
    }
    info!(
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "pipeline drained into the spool; delivering for the rest of the shutdown deadline"
    );
    input_done.cancel();
    encoded?;
    let summary = if let Ok(joined) =
        tokio::time::timeout_at(t0 + deadline.backstop(), &mut uploader).await
    {
        joined.map_err(|e| AppError::Task(e.to_string()))??
    } else {
        // The uploader's own grace should end first; this is the
        // backstop (a write stuck in its request timeout). Acks are
        // persisted as they happen, so what is unacknowledged stays
        // in the spool: at worst one batch is written again.
        uploader.abort();
        warn!(
            "shutdown deadline reached while the output was still writing; undelivered lines stay in the spool"
        );
        SinkSummary {
            lines_written: Stats::get(&stats.lines_written),
            ..SinkSummary::default()
        }
    };
    if let Some(api) = api {
        // Cancelled with the shutdown; it only has open requests to finish.
        let _ = tokio::time::timeout(deadline.exit_margin(), api).await;
    }
    if let Some(archive) = &env.archive {
        // Everything was handed over (encoder and API have ended): write it.
        archive.close(deadline.exit_margin()).await;
        log_archive(archive);
    }
    stats.update_spool(&spool);
    info!(?summary, "stopped");
    Ok(summary)
}

/// Binds `[api] listen` and serves the API until the shutdown. When the
/// address is taken, the gateway runs without its API (logged as an
/// error): collecting data matters more than showing it.
async fn start_api(
    addr: std::net::SocketAddr,
    config: &Config,
    env: &GenEnv,
    reload: mpsc::Sender<ReloadRequest>,
    config_rx: tokio::sync::watch::Receiver<Arc<Config>>,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            error!(%addr, error = %e, "cannot listen on [api] listen; the gateway runs without its HTTP API (reload with SIGHUP)");
            return None;
        }
    };
    let state = ApiState {
        board: env.board.clone(),
        stats: Arc::clone(&env.stats),
        token: config.api.token.clone(),
        site_tokens: config.api.site_tokens.clone(),
        reload: Some(reload),
        reports: Some(crate::api::ReportsTarget {
            config: config_rx.clone(),
        }),
        entries: Some(crate::api::EntryTarget {
            config: config_rx,
            spool: env.spool.clone(),
            archive: env.archive.clone(),
        }),
    };
    let stop = shutdown.clone();
    Some(tokio::spawn(async move {
        if let Err(e) = crate::api::serve(listener, state, stop).await {
            error!(error = %e, "HTTP API failed; the gateway keeps running without it");
        }
    }))
}
