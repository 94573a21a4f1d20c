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
//! Shutdown runs front to back: the pollers and broker clients stop at the
//! cancellation (the broker clients after acking what the encoder still
//! spools), the encoder appends what is still in the channel and ends, the spool is
//! synced, and the uploader delivers for a short grace period. What it does
//! not deliver stays in the spool for the next start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{Config, InfluxApi, OutputConfig, SpoolFsync, SpoolPolicy};
use crate::model::{BrokerId, EndpointId, ReadingBatch};
use crate::pipeline::stage::{AggregationStage, ValidationStage};
use crate::sinks::LineChunk;
use crate::sinks::aggregates::AggregateEncoder;
use crate::sinks::encode::ReadingEncoder;
use crate::sinks::uploader::{self, SinkSummary, UploaderOptions};
use crate::sources::modbus::poller::EndpointPoller;
use crate::sources::mqtt::client::BrokerClient;
use crate::spool::{Appended, FsyncPolicy, FullPolicy, Spool, SpoolConfig, SpoolError};
use crate::stats::Stats;

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
    let (spool, recovery) = Spool::open(SpoolConfig {
        dir: s.dir.clone(),
        max_bytes: s.max_bytes,
        segment_bytes: s.segment_bytes,
        policy: match s.policy {
            SpoolPolicy::Block => FullPolicy::Block,
            SpoolPolicy::DropOldest => FullPolicy::DropOldest,
        },
        fsync: match s.fsync {
            SpoolFsync::EveryBatch => FsyncPolicy::EveryAppend,
            SpoolFsync::Interval(d) => FsyncPolicy::Interval(d),
        },
    })?;
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

/// Runs the gateway described by `config` until `shutdown` is cancelled,
/// then drains and flushes. Counters go to `stats`.
///
/// # Errors
/// When the spool or the output cannot start, or a task fails.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<SinkSummary, AppError> {
    let spool = open_spool(&config, &stats)?;
    let (readings_tx, mut readings_rx) = mpsc::channel::<Input>(READING_CHANNEL);

    // Broker clients are built first: a missing TLS file stops the start
    // before anything runs.
    let mut brokers = Vec::with_capacity(config.mqtt.len());
    for i in 0..config.mqtt.len() {
        let id = BrokerId(u32::try_from(i).unwrap_or(u32::MAX));
        brokers.push(BrokerClient::new(
            Arc::clone(&config),
            id,
            readings_tx.clone(),
            Arc::clone(&stats),
        )?);
    }

    info!(
        gateway = %config.gateway.id,
        sites = config.sites.len(),
        meters = config.meters.len(),
        endpoints = config.endpoints.len(),
        brokers = config.mqtt.len(),
        output = %describe_output(&config.output),
        "starting"
    );

    let input_done = CancellationToken::new();
    let uploader = tokio::spawn(uploader::run(
        config.output.clone(),
        UploaderOptions::for_output(&config.output),
        spool.clone(),
        Arc::clone(&stats),
        input_done.clone(),
    ));

    let pollers = TaskTracker::new();
    for client in brokers {
        pollers.spawn(client.run(shutdown.clone()));
    }
    for i in 0..config.endpoints.len() {
        let id = EndpointId(u32::try_from(i).unwrap_or(u32::MAX));
        let poller = EndpointPoller::new(
            Arc::clone(&config),
            id,
            readings_tx.clone(),
            Arc::clone(&stats),
            Arc::new(crate::status::StatusBoard::new(&config)),
        );
        pollers.spawn(poller.run(shutdown.clone()));
    }
    pollers.close();
    drop(readings_tx);

    let encoder_config = Arc::clone(&config);
    let encoder_stats = Arc::clone(&stats);
    let encoder_spool = spool.clone();
    let encoder_shutdown = shutdown.clone();
    let encoder = tokio::spawn(async move {
        let mut enc = ReadingEncoder::new(&encoder_config);
        let agg_enc = AggregateEncoder::new(&encoder_config);
        let mut chunk = LineChunk::default();
        let mut validation = ValidationStage::new(&encoder_config, Arc::clone(&encoder_stats));
        let mut aggregation = AggregationStage::new(&encoder_config, Arc::clone(&encoder_stats));
        let mut appender = Appender::new(encoder_spool, encoder_stats, encoder_shutdown);
        while let Some(Input { mut batch, spooled }) = readings_rx.recv().await {
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
    });

    // Pollers end only at shutdown; a gateway without meters (or whose
    // pollers ended early) still runs until then, delivering its spool.
    shutdown.cancelled().await;
    pollers.wait().await;
    let encoded = encoder.await;
    if let Err(e) = spool.sync() {
        error!(error = %e, "cannot sync the spool at shutdown");
    }
    input_done.cancel();
    encoded.map_err(|e| AppError::Task(e.to_string()))?;
    let summary = uploader
        .await
        .map_err(|e| AppError::Task(e.to_string()))??;
    stats.update_spool(&spool);
    info!(?summary, "stopped");
    Ok(summary)
}

/// Appends encoded chunks to the spool, applying the full-spool policy.
struct Appender {
    spool: Spool,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    /// Set at shutdown: after this instant a full spool is no longer waited for.
    give_up_at: Option<tokio::time::Instant>,
    /// Lines given up at shutdown because the spool stayed full.
    not_spooled: u64,
    last_full_warn: Option<tokio::time::Instant>,
    dropped_warned: u64,
    last_drop_warn: Option<tokio::time::Instant>,
}

impl Appender {
    fn new(spool: Spool, stats: Arc<Stats>, shutdown: CancellationToken) -> Appender {
        Appender {
            spool,
            stats,
            shutdown,
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
    /// stayed full for the uploader's grace period, are the readings still
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
                            self.give_up_at = Some(tokio::time::Instant::now() + uploader::SHUTDOWN_GRACE);
                        }
                        () = tokio::time::sleep_until(give_up_at), if self.give_up_at.is_some() => {}
                    }
                }
                Err(e) => {
                    // A disk error (full, read-only) is waited out like a
                    // full spool, and given up the same way at shutdown.
                    let now = tokio::time::Instant::now();
                    if self.shutdown.is_cancelled() {
                        let at = *self
                            .give_up_at
                            .get_or_insert(now + uploader::SHUTDOWN_GRACE);
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
