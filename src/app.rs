//! The running gateway: wires sources, pipeline, spool and output together
//! and owns their shutdown.
//!
//! ```text
//! EndpointPoller ×N ─┐
//!                     ├─Input─▶ validate ─▶ aggregate ─▶ encode ──append──▶ spool (disk) ──read/ack──▶ uploader ──▶ InfluxDB | file
//! BrokerClient ×M ────┘   ◀── spooled (true/false) ──┘
//! ```
//! An [`Input`] carries a batch and, for MQTT, a one-shot sender the encoder
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
//! Generations: the sources (pollers, broker clients) and the encoder task
//! of one configuration form a generation; the spool and the uploader
//! outlive them. A reload (SIGHUP, `POST /api/reload`) loads the file again
//! and, when valid, replaces the generation (see [`reload`]); settings of
//! the long-lived parts (output, spool, data directory, API, shutdown
//! deadline) cannot change that way and such a reload is refused with
//! "… changed: restart the gateway".
//!
//! Shutdown runs front to back within `gateway.shutdown_timeout`: the
//! pollers and broker clients stop at the cancellation (the broker clients
//! after acking what the encoder still spools), the encoder appends what is
//! still in the channel, writes the validation and aggregation checkpoints
//! and ends, the spool is synced, and the uploader delivers for three
//! quarters of the deadline; a backstop at the deadline stops it. What it
//! does not deliver stays in the spool for the next start.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::api::ApiState;
use crate::config::{Config, InfluxApi, MeterSource, OutputConfig};
use crate::model::{BrokerId, EndpointId, ProfileId, ReadingBatch, SiteId};
use crate::pipeline::stage::{AggregationStage, ValidationStage};
use crate::sinks::LineChunk;
use crate::sinks::aggregates::AggregateEncoder;
use crate::sinks::encode::ReadingEncoder;
use crate::sinks::uploader::{self, SinkSummary, UploaderOptions};
use crate::sources::modbus::poller::EndpointPoller;
use crate::sources::mqtt::client::BrokerClient;
use crate::spool::{Appended, Spool, SpoolError};
use crate::stats::Stats;
use crate::status::StatusBoard;

/// What a source hands to the pipeline: a batch of readings and, when the
/// source must know that they are durable (MQTT acknowledgements), where to
/// say so.
#[derive(Debug)]
pub struct Input {
    /// The readings.
    pub batch: ReadingBatch,
    /// Answered `true` once the chunk holding the batch's lines was appended
    /// to the spool; `false` (or dropped) when they were given up at
    /// shutdown. `None` for sources that need no answer (Modbus pollers).
    pub spooled: Option<oneshot::Sender<bool>>,
}

impl Input {
    /// A batch nobody waits for.
    #[must_use]
    pub fn fire_and_forget(batch: ReadingBatch) -> Input {
        Input {
            batch,
            spooled: None,
        }
    }
}

/// Reading batches buffered between the pollers and the encoder.
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

/// The status board of the running generation, swapped at each reload:
/// what the API reads. Cloning shares it.
#[derive(Clone)]
pub struct SharedBoard(Arc<RwLock<Arc<StatusBoard>>>);

impl SharedBoard {
    /// A handle on `board`.
    #[must_use]
    pub fn new(board: Arc<StatusBoard>) -> SharedBoard {
        SharedBoard(Arc::new(RwLock::new(board)))
    }

    /// The current board (cheap: one short read lock and an `Arc` clone).
    #[must_use]
    pub fn get(&self) -> Arc<StatusBoard> {
        // A panic while holding the lock cannot leave the `Arc` half written.
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `board` the current one.
    pub fn replace(&self, board: Arc<StatusBoard>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = board;
    }
}

impl From<Arc<StatusBoard>> for SharedBoard {
    fn from(board: Arc<StatusBoard>) -> SharedBoard {
        SharedBoard::new(board)
    }
}

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
/// the pipeline stages of one configuration form a [`Generation`], which a
/// reload replaces (see [`reload`]).
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
    let deadline = Deadline::new(config.gateway.shutdown_timeout);
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
    let shared_board = SharedBoard::new(Arc::clone(&next.board));
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
        shutdown: shutdown.clone(),
        give_up_after: deadline.give_up_after(),
        board: shared_board,
    };
    let api = match (control.api.take(), config.api.listen) {
        (Some(reload), Some(addr)) => start_api(addr, &config, &env, reload, &shutdown).await,
        _ => None,
    };
    let mut current = next.start(&env, None, None, None).await;
    current.board.mark_started();

    // Pollers end only at shutdown; a gateway without meters (or whose
    // pollers ended early) still runs until then, delivering its spool.
    loop {
        let Some(rx) = control.reload.as_mut() else {
            shutdown.cancelled().await;
            break;
        };
        let request = tokio::select! {
            () = shutdown.cancelled() => break,
            r = rx.recv() => r,
        };
        let Some(request) = request else {
            // Every sender is gone: no more reloads, run until the shutdown.
            control.reload = None;
            continue;
        };
        let outcome = reload(&mut current, &env).await;
        match &outcome {
            Ok(summary) => info!(summary = %summary, "reload applied: {summary}"),
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

    // Shutdown, front to back, within the deadline.
    let t0 = tokio::time::Instant::now();
    let end = t0 + deadline.timeout;
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
        tokio::time::timeout_at(end - deadline.exit_margin(), &mut uploader).await
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
        reload: Some(reload),
    };
    let stop = shutdown.clone();
    Some(tokio::spawn(async move {
        if let Err(e) = crate::api::serve(listener, state, stop).await {
            error!(error = %e, "HTTP API failed; the gateway keeps running without it");
        }
    }))
}

/// How the configured shutdown deadline is shared out.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    /// `gateway.shutdown_timeout`.
    timeout: Duration,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        Deadline { timeout }
    }

    /// The uploader's grace after the input is done: three quarters of the
    /// deadline. The front (pollers finish the poll in progress, the encoder
    /// drains the channel, the spool is synced) usually takes milliseconds;
    /// the rest covers a request still in flight when the grace ends.
    fn uploader_grace(self) -> Duration {
        self.timeout * 3 / 4
    }

    /// After a shutdown, how long a full (or failing) spool is waited for
    /// before readings still in memory are given up: half the deadline, so
    /// a dead output cannot hold the gateway past it.
    fn give_up_after(self) -> Duration {
        self.timeout / 2
    }

    /// Kept free at the end of the deadline for logging and process exit.
    fn exit_margin(self) -> Duration {
        (self.timeout / 10).min(Duration::from_millis(500))
    }
}

/// What every generation shares: the process-wide parts.
struct GenEnv {
    stats: Arc<Stats>,
    spool: Spool,
    /// The process shutdown (not a reload): only it lets the appender give up.
    shutdown: CancellationToken,
    give_up_after: Duration,
    /// The board the API reads: the current generation's.
    board: SharedBoard,
}

/// A generation whose broker clients are built (the step that can fail)
/// but nothing runs yet.
struct Prepared {
    config: Arc<Config>,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    brokers: Vec<BrokerClient>,
    board: Arc<StatusBoard>,
}

impl Prepared {
    fn new(config: Arc<Config>, stats: &Arc<Stats>) -> Result<Prepared, AppError> {
        let (tx, rx) = mpsc::channel::<Input>(READING_CHANNEL);
        let mut brokers = Vec::with_capacity(config.mqtt.len());
        for i in 0..config.mqtt.len() {
            let id = BrokerId(u32::try_from(i).unwrap_or(u32::MAX));
            brokers.push(BrokerClient::new(
                Arc::clone(&config),
                id,
                tx.clone(),
                Arc::clone(stats),
            )?);
        }
        let board = Arc::new(StatusBoard::new(&config));
        Ok(Prepared {
            config,
            tx,
            rx,
            brokers,
            board,
        })
    }

    /// Starts the generation. With a predecessor, the new encoder first
    /// waits for the old one to finish (its checkpoints are then on disk and
    /// the new stages restore them), the Modbus pollers start as soon as the
    /// old ones have stopped, and the broker clients as soon as the old ones
    /// have disconnected (they share the client id). Returns once every
    /// source runs.
    async fn start(
        self,
        env: &GenEnv,
        prev_encoder: Option<JoinHandle<()>>,
        prev_modbus: Option<TaskTracker>,
        prev_brokers: Option<TaskTracker>,
    ) -> Generation {
        let Prepared {
            config,
            tx,
            rx,
            brokers,
            board,
        } = self;
        let stop = env.shutdown.child_token();
        let encoder = tokio::spawn(encode(
            Arc::clone(&config),
            rx,
            prev_encoder,
            Appender::new(
                env.spool.clone(),
                Arc::clone(&env.stats),
                env.shutdown.clone(),
                env.give_up_after,
            ),
            Arc::clone(&env.stats),
            Arc::clone(&board),
        ));
        if let Some(t) = prev_modbus {
            t.wait().await;
        }
        let modbus = TaskTracker::new();
        for i in 0..config.endpoints.len() {
            let id = EndpointId(u32::try_from(i).unwrap_or(u32::MAX));
            let poller = EndpointPoller::new(
                Arc::clone(&config),
                id,
                tx.clone(),
                Arc::clone(&env.stats),
                Arc::clone(&board),
            );
            modbus.spawn(poller.run(stop.clone()));
        }
        modbus.close();
        if let Some(t) = prev_brokers {
            t.wait().await;
        }
        let mqtt = TaskTracker::new();
        for client in brokers {
            mqtt.spawn(client.run(stop.clone()));
        }
        mqtt.close();
        // Only the sources hold senders now: the encoder ends once they have.
        drop(tx);
        Generation {
            config,
            stop,
            modbus,
            mqtt,
            encoder,
            board,
        }
    }
}

/// The sources and pipeline stages of one configuration.
struct Generation {
    config: Arc<Config>,
    /// Stops this generation's sources (a child of the process shutdown).
    stop: CancellationToken,
    modbus: TaskTracker,
    mqtt: TaskTracker,
    /// Ends after the sources, once the channel is drained and the
    /// checkpoints are written.
    encoder: JoinHandle<()>,
    /// Live state of this generation's meters and endpoints.
    board: Arc<StatusBoard>,
}

impl Generation {
    /// Stops the sources, lets the encoder drain the channel and write the
    /// checkpoints, and waits for all of it.
    async fn stop(self) -> Result<(), AppError> {
        self.stop.cancel();
        self.modbus.wait().await;
        self.mqtt.wait().await;
        self.encoder
            .await
            .map_err(|e| AppError::Task(e.to_string()))
    }
}

/// The encoder task of a generation: validate → aggregate → encode → append.
async fn encode(
    config: Arc<Config>,
    mut rx: mpsc::Receiver<Input>,
    prev: Option<JoinHandle<()>>,
    mut appender: Appender,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
) {
    if let Some(prev) = prev
        && let Err(e) = prev.await
    {
        error!(error = %e, "the previous configuration's encoder failed; its checkpoints may be older");
    }
    let mut enc = ReadingEncoder::new(&config);
    let agg_enc = AggregateEncoder::new(&config);
    let mut chunk = LineChunk::default();
    // The board learns each reading's quality and slot (per-meter status).
    let mut validation = ValidationStage::new(&config, Arc::clone(&stats)).with_board(board);
    let mut aggregation = AggregationStage::new(&config, Arc::clone(&stats));
    while let Some(Input { mut batch, spooled }) = rx.recv().await {
        validation.process(&mut batch);
        // Aggregation may flag late readings it cannot use, so it runs
        // before the readings are encoded.
        aggregation.process(&mut batch, validation.continuous());
        chunk.body.clear();
        chunk.lines = 0;
        enc.encode(&batch, &mut chunk);
        agg_enc.encode(aggregation.output(), &mut chunk);
        let stored = chunk.lines == 0 || appender.append(&chunk).await;
        if let Some(tx) = spooled {
            // The source may have stopped waiting (shutdown): nothing to do.
            let _ = tx.send(stored);
        }
    }
    validation.save();
    aggregation.save();
    validation.log_counts();
    if appender.not_spooled > 0 {
        error!(
            lines = appender.not_spooled,
            "shutdown while the spool was full or failing: readings still in memory were not spooled and are lost"
        );
    }
}

/// Settings a reload cannot change: they belong to the spool, the uploader
/// or the API server, which live as long as the process. A reload that
/// changes them is refused with these messages; restart the gateway instead.
fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |changed: bool, what: &str| {
        if changed {
            out.push(format!("{what} changed: restart the gateway"));
        }
    };
    check(
        old.output != new.output,
        "output settings ([influxdb] or [file_sink])",
    );
    // `SpoolConfig` has no `PartialEq`; its Debug form shows every field.
    check(
        format!("{:?}", old.spool) != format!("{:?}", new.spool),
        "[spool] settings",
    );
    check(
        old.gateway.data_dir != new.gateway.data_dir,
        "gateway.data_dir",
    );
    check(
        old.gateway.shutdown_timeout != new.gateway.shutdown_timeout,
        "gateway.shutdown_timeout_secs",
    );
    check(old.api != new.api, "[api] settings");
    out
}

/// Everything that decides how a meter is read and judged, with ids
/// resolved to what they name (indices move when meters are added).
fn meter_fingerprint(config: &Config, index: usize) -> String {
    let m = &config.meters[index];
    let mut plain = m.clone();
    plain.site = SiteId(0);
    plain.profile = ProfileId(0);
    let source = match m.source {
        MeterSource::Modbus { endpoint, unit_id } => {
            plain.source = MeterSource::Modbus {
                endpoint: EndpointId(0),
                unit_id,
            };
            format!("{:?}", config.endpoints[endpoint.index()])
        }
        MeterSource::Mqtt { broker } => {
            plain.source = MeterSource::Mqtt {
                broker: BrokerId(0),
            };
            format!("{:?}", config.mqtt[broker.index()])
        }
    };
    format!(
        "{plain:?}|{:?}|{:?}|{source}|{:?}|{:?}",
        config.sites[m.site.index()],
        config.profiles[m.profile.index()],
        config.validation,
        config.aggregation
    )
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// How long from `now_ms` to the middle between two poll slots: every
/// Modbus slot is a multiple of its meter's interval since the epoch, so
/// halfway through the greatest common divisor `g` of the intervals no
/// round has just started or is about to start (rounds of a fast endpoint
/// take milliseconds). Zero without Modbus meters.
fn until_quiet(config: &Config, now_ms: i64) -> Duration {
    let g = config
        .meters
        .iter()
        .filter(|m| m.modbus().is_some())
        .map(|m| i64::try_from(m.poll_interval.as_millis()).unwrap_or(i64::MAX))
        .filter(|ms| *ms > 0)
        .fold(0, gcd);
    if g < 2 {
        return Duration::ZERO;
    }
    let wait = (g / 2 - now_ms.rem_euclid(g)).rem_euclid(g);
    Duration::from_millis(wait.unsigned_abs())
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `+N meters, −M meters, K changed` between two configurations.
fn describe_changes(old: &Config, new: &Config) -> String {
    let old_ids: HashMap<&str, usize> = old
        .meters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut added = 0;
    let mut changed = 0;
    for (i, m) in new.meters.iter().enumerate() {
        match old_ids.get(m.id.as_str()) {
            None => added += 1,
            Some(&j) if meter_fingerprint(old, j) != meter_fingerprint(new, i) => changed += 1,
            Some(_) => {}
        }
    }
    let kept = new.meters.len() - added;
    let removed = old.meters.len() - kept;
    format!("+{added} meters, -{removed} meters, {changed} changed")
}

/// Loads the configuration again from the file the running one came from
/// and, when it is valid and only changes what a generation owns, replaces
/// the running generation with one for it.
///
/// Every source restarts (unchanged meters too: simpler than handing a
/// running poller a new channel, and it loses no slot): the old pollers
/// are stopped halfway between two slots ([`until_quiet`]), the new ones
/// start at once and align to the next slot of each meter, so a meter
/// polled every second misses nothing as long as the swap takes less than
/// half a second (it takes milliseconds: see "sources swapped" in the log). Readings of removed
/// meters still in the channel are spooled by the old encoder before it
/// writes its checkpoints; the new encoder restores them, keyed by meter id
/// and profile, so unchanged meters keep their validation and window state.
///
/// # Errors
/// Every reason the new configuration was refused; the old one keeps running.
async fn reload(current: &mut Generation, env: &GenEnv) -> Result<String, Vec<String>> {
    let path = current.config.source.clone();
    let new = crate::config::load(&path)
        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let refused = restart_required(&current.config, &new);
    if !refused.is_empty() {
        return Err(refused);
    }
    let summary = describe_changes(&current.config, &new);
    let next = Prepared::new(Arc::new(new), &env.stats).map_err(|e| vec![e.to_string()])?;
    // What belongs to the process, not the generation, carries over.
    next.board
        .set_sink_reachable(current.board.sink_reachable());
    next.board.mark_started();

    // Stop the old pollers between rounds, not in one: a round cut short
    // would leave its remaining meters without that slot.
    tokio::time::sleep(until_quiet(&current.config, now_ms())).await;
    let t0 = tokio::time::Instant::now();
    // Swap in place: `current` must hold a generation at every await.
    let old_stop = current.stop.clone();
    old_stop.cancel();
    let placeholder_encoder = tokio::spawn(async {});
    let old = std::mem::replace(&mut current.encoder, placeholder_encoder);
    let old_modbus = current.modbus.clone();
    let old_mqtt = current.mqtt.clone();
    let started = next
        .start(env, Some(old), Some(old_modbus), Some(old_mqtt))
        .await;
    info!(
        swap_ms = t0.elapsed().as_secs_f64() * 1000.0,
        meters = started.config.meters.len(),
        "sources swapped"
    );
    env.board.replace(Arc::clone(&started.board));
    *current = started;
    Ok(summary)
}

/// Appends encoded chunks to the spool, applying the full-spool policy.
struct Appender {
    spool: Spool,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    /// How long after the shutdown a full or failing spool is waited for.
    give_up_after: Duration,
    /// Set at shutdown: after this instant a full spool is no longer waited for.
    give_up_at: Option<tokio::time::Instant>,
    /// Lines given up at shutdown because the spool stayed full.
    not_spooled: u64,
    last_full_warn: Option<tokio::time::Instant>,
    dropped_warned: u64,
    last_drop_warn: Option<tokio::time::Instant>,
}

impl Appender {
    fn new(
        spool: Spool,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
        give_up_after: Duration,
    ) -> Appender {
        Appender {
            spool,
            stats,
            shutdown,
            give_up_after,
            give_up_at: None,
            not_spooled: 0,
            last_full_warn: None,
            dropped_warned: 0,
            last_drop_warn: None,
        }
    }

    /// Appends `chunk`, waiting while the spool is full (`block`) and
    /// retrying every second while the disk refuses: an accepted reading
    /// is never given up here. Only after a shutdown, once the spool has
    /// stayed full for half the shutdown deadline, are the readings still
    /// in memory given up (counted in `not_spooled`): otherwise a dead
    /// output would make the gateway impossible to stop.
    ///
    /// Returns whether the chunk was stored.
    async fn append(&mut self, chunk: &LineChunk) -> bool {
        loop {
            match self.spool.append(&chunk.body) {
                Ok(Appended::Stored) => {
                    Stats::add(&self.stats.lines_spooled, chunk.lines as u64);
                    self.stats.update_spool(&self.spool);
                    self.warn_drops();
                    return true;
                }
                Ok(Appended::Full) => {
                    if self
                        .give_up_at
                        .is_some_and(|t| tokio::time::Instant::now() >= t)
                    {
                        self.not_spooled += chunk.lines as u64;
                        Stats::add(&self.stats.lines_not_spooled, chunk.lines as u64);
                        return false;
                    }
                    Stats::add(&self.stats.spool_full_waits, 1);
                    let now = tokio::time::Instant::now();
                    if self.last_full_warn.is_none_or(|t| now - t >= WARN_EVERY) {
                        let s = self.spool.stats();
                        warn!(
                            spool_bytes = s.bytes,
                            spool_records = s.records,
                            "spool full (policy block): polling slows down until the output catches up; missed slots are counted"
                        );
                        self.last_full_warn = Some(now);
                    }
                    let give_up_at = self.give_up_at.unwrap_or(now);
                    tokio::select! {
                        () = self.spool.wait_for_space() => {}
                        () = self.shutdown.cancelled(), if self.give_up_at.is_none() => {
                            self.give_up_at = Some(tokio::time::Instant::now() + self.give_up_after);
                        }
                        () = tokio::time::sleep_until(give_up_at), if self.give_up_at.is_some() => {}
                    }
                }
                Err(e) => {
                    // A disk error (full, read-only) is waited out like a
                    // full spool, and given up the same way at shutdown.
                    let now = tokio::time::Instant::now();
                    if self.shutdown.is_cancelled() {
                        let at = *self.give_up_at.get_or_insert(now + self.give_up_after);
                        if now >= at {
                            self.not_spooled += chunk.lines as u64;
                            Stats::add(&self.stats.lines_not_spooled, chunk.lines as u64);
                            return false;
                        }
                    }
                    error!(error = %e, lines = chunk.lines, "cannot append to the spool; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Logs lines dropped by `drop_oldest`, per site, at most every [`WARN_EVERY`].
    fn warn_drops(&mut self) {
        let dropped = Stats::get(&self.stats.lines_dropped);
        if dropped == self.dropped_warned {
            return;
        }
        let now = tokio::time::Instant::now();
        if self.last_drop_warn.is_some_and(|t| now - t < WARN_EVERY) {
            return;
        }
        warn!(
            lines_dropped = dropped,
            by_site = ?self.stats.dropped_by_site(),
            "spool full (policy drop_oldest): oldest unsent lines dropped"
        );
        self.dropped_warned = dropped;
        self.last_drop_warn = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn with_intervals(secs: &[u64]) -> Config {
        let mut site = String::from("[site]\nid = \"s\"\nname = \"s\"\n");
        for (i, s) in secs.iter().enumerate() {
            let _ = write!(
                site,
                "[[meters]]\nid = \"m{i}\"\nenergy = \"water\"\nlevel = 1\nprofile = \"water_meter\"\n\
                 endpoint = \"ep\"\nunit_id = {}\npoll_interval_secs = {s}\n",
                i + 1
            );
        }
        let profiles = crate::profiles::load::builtin();
        crate::config::from_parts(
            "[gateway]\nid = \"gw\"\n[[endpoints]]\nid = \"ep\"\nhost = \"127.0.0.1\"\nport = 1502\n",
            &[("s.toml", &site)],
            profiles,
        )
        .expect("test config")
    }

    #[test]
    fn quiet_moment_is_halfway_between_slots() {
        let c = with_intervals(&[1, 60]);
        assert_eq!(until_quiet(&c, 1_000_000), Duration::from_millis(500));
        assert_eq!(until_quiet(&c, 1_000_499), Duration::from_millis(1));
        assert_eq!(until_quiet(&c, 1_000_500), Duration::ZERO);
        assert_eq!(until_quiet(&c, 1_000_501), Duration::from_millis(999));
        let c = with_intervals(&[10, 15]);
        assert_eq!(until_quiet(&c, 0), Duration::from_millis(2500));
        assert_eq!(until_quiet(&with_intervals(&[]), 123), Duration::ZERO);
    }

    #[test]
    fn changes_are_counted_by_meter_id() {
        let old = with_intervals(&[1, 1, 1]);
        let new = with_intervals(&[1, 5]);
        assert_eq!(
            describe_changes(&old, &new),
            "+0 meters, -1 meters, 1 changed"
        );
        assert_eq!(
            describe_changes(&old, &old),
            "+0 meters, -0 meters, 0 changed"
        );
        assert_eq!(
            describe_changes(&new, &old),
            "+1 meters, -0 meters, 1 changed"
        );
    }

    #[test]
    fn output_changes_need_a_restart() {
        let old = with_intervals(&[1]);
        let mut new = old.clone();
        new.gateway.shutdown_timeout = Duration::from_secs(3);
        new.api.listen = None;
        assert_eq!(
            restart_required(&old, &new),
            [
                "gateway.shutdown_timeout_secs changed: restart the gateway",
                "[api] settings changed: restart the gateway"
            ]
        );
        assert!(restart_required(&old, &with_intervals(&[1, 1])).is_empty());
    }
}
