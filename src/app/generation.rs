//! One generation of the running gateway: the sources (Modbus pollers, MQTT
//! broker clients) and the encoder thread built from one configuration. A
//! reload replaces the generation; the spool and the uploader outlive it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::stages::{AggregationStage, BoilerStage, ValidationStage};
use crate::archive::Archive;
use crate::config::Config;
use crate::model::{BrokerId, EndpointId};
use crate::shutdown::Shutdown;
use crate::sinks::LineChunk;
use crate::sinks::aggregates::AggregateEncoder;
use crate::sinks::boilers::BoilerEncoder;
use crate::sinks::encode::ReadingEncoder;
use crate::sources::bus::dtu::DtuHub;
use crate::sources::modbus::poller::EndpointPoller;
use crate::sources::mqtt::client::BrokerClient;
use crate::sources::{Input, SourceContext};
use crate::spool::Spool;
use crate::telemetry::Stats;
use crate::telemetry::{SharedBoard, StatusBoard};

use super::appender::Appender;
use super::{AppError, READING_CHANNEL};

/// What every generation shares: the process-wide parts.
pub(super) struct GenEnv {
    pub(super) stats: Arc<Stats>,
    pub(super) spool: Spool,
    /// The process shutdown (not a reload: only it lets the appender give
    /// up) and every task's share of its deadline.
    pub(super) shutdown: Shutdown,
    /// The board the API reads: the current generation's.
    pub(super) board: SharedBoard,
    /// The local archive of window results (`None`: `archive_days = 0`,
    /// or its directory could not be created).
    pub(super) archive: Option<Archive>,
}

/// A generation whose broker clients are built (the step that can fail)
/// but nothing runs yet.
pub(super) struct Prepared {
    /// What the sources share. Its `out` is the sender every source clones;
    /// it is dropped once they run, so the encoder ends when they all have.
    pub(super) sources: SourceContext,
    pub(super) rx: mpsc::Receiver<Input>,
    pub(super) brokers: Vec<BrokerClient>,
}

impl Prepared {
    pub(super) fn new(config: Arc<Config>, stats: &Arc<Stats>) -> Result<Prepared, AppError> {
        for w in crate::config::boilers::warnings(&config) {
            warn!("{w}");
        }
        let (tx, rx) = mpsc::channel::<Input>(READING_CHANNEL);
        let sources = SourceContext {
            board: Arc::new(StatusBoard::new(&config)),
            dtu: Arc::new(DtuHub::new(&config, Arc::clone(stats))),
            config,
            out: tx,
            stats: Arc::clone(stats),
        };
        let brokers = (0..sources.config.mqtt.len())
            .map(|i| BrokerClient::new(&sources, BrokerId(u32::try_from(i).unwrap_or(u32::MAX))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Prepared {
            sources,
            rx,
            brokers,
        })
    }

    /// Starts the generation. With a predecessor, the new encoder first
    /// waits for the old one to finish (its checkpoints are then on disk and
    /// the new stages restore them), the Modbus pollers start as soon as the
    /// old ones have stopped, and the broker clients as soon as the old ones
    /// have disconnected (they share the client id). Returns once every
    /// source runs.
    pub(super) async fn start(
        self,
        env: &GenEnv,
        prev_encoder: Option<JoinHandle<()>>,
        prev_modbus: Option<TaskTracker>,
        prev_brokers: Option<TaskTracker>,
    ) -> Generation {
        let Prepared {
            sources,
            rx,
            brokers,
        } = self;
        let config = Arc::clone(&sources.config);
        let board = Arc::clone(&sources.board);
        let stop = env.shutdown.token().child_token();
        // The encoder gets a thread of its own: it validates, aggregates
        // and encodes a whole batch between two awaits (up to milliseconds
        // of CPU), and on a runtime worker it would be woken into the
        // poller's LIFO slot and run there while the poller's answer waits.
        let runtime = tokio::runtime::Handle::current();
        let encode = encode(
            Arc::clone(&config),
            rx,
            prev_encoder,
            Appender::new(
                env.spool.clone(),
                Arc::clone(&env.stats),
                env.shutdown.clone(),
            ),
            Arc::clone(&env.stats),
            Arc::clone(&board),
            env.archive.clone(),
        );
        let encoder = tokio::task::spawn_blocking(move || runtime.block_on(encode));
        if let Some(t) = prev_modbus {
            t.wait().await;
        }
        let modbus = TaskTracker::new();
        // Bound after the previous generation's listener has closed.
        modbus.spawn(Arc::clone(&sources.dtu).run(stop.clone()));
        for i in 0..config.endpoints.len() {
            let id = EndpointId(u32::try_from(i).unwrap_or(u32::MAX));
            let poller = EndpointPoller::new(&sources, id);
            modbus.spawn(poller.run(stop.clone()));
        }
        modbus.close();
        if let Some(t) = prev_brokers {
            t.wait().await;
        }
        let mqtt = TaskTracker::new();
        for client in brokers {
            mqtt.spawn(client.run(stop.clone(), env.shutdown.deadline()));
        }
        mqtt.close();
        // Only the sources hold senders now: the encoder ends once they have.
        drop(sources);
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
pub(super) struct Generation {
    pub(super) config: Arc<Config>,
    /// Stops this generation's sources (a child of the process shutdown).
    pub(super) stop: CancellationToken,
    pub(super) modbus: TaskTracker,
    pub(super) mqtt: TaskTracker,
    /// Ends after the sources, once the channel is drained and the
    /// checkpoints are written.
    pub(super) encoder: JoinHandle<()>,
    /// Live state of this generation's meters and endpoints.
    pub(super) board: Arc<StatusBoard>,
}

impl Generation {
    /// Stops the sources, lets the encoder drain the channel and write the
    /// checkpoints, and waits for all of it.
    pub(super) async fn stop(self) -> Result<(), AppError> {
        self.stop.cancel();
        self.modbus.wait().await;
        self.mqtt.wait().await;
        self.encoder
            .await
            .map_err(|e| AppError::Task(e.to_string()))
    }
}

/// The encoder of a generation (on its own thread): validate → aggregate → boilers → encode → append
/// (and a copy of the window lines to the archive).
pub(super) async fn encode(
    config: Arc<Config>,
    mut rx: mpsc::Receiver<Input>,
    prev: Option<JoinHandle<()>>,
    mut appender: Appender,
    stats: Arc<Stats>,
    board: Arc<StatusBoard>,
    archive: Option<Archive>,
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
    let mut validation =
        ValidationStage::new(&config, Arc::clone(&stats)).with_board(Arc::clone(&board));
    let mut aggregation = AggregationStage::new(&config, Arc::clone(&stats));
    let mut boilers = BoilerStage::new(&config, Arc::clone(&board));
    let mut boiler_enc = BoilerEncoder::new(&config);
    while let Some(Input { mut batch, spooled }) = rx.recv().await {
        validation.process(&mut batch);
        // Aggregation may flag late readings it cannot use, so it runs
        // before the readings are encoded.
        aggregation.process(&mut batch, validation.continuous());
        boilers.process(aggregation.output(), &batch);
        chunk.body.clear();
        chunk.lines = 0;
        enc.encode(&batch, &mut chunk);
        // Window lines follow the readings in the chunk: the archive keeps
        // a copy of them (never waiting; `gauge_stats` left out).
        let windows_at = chunk.body.len();
        agg_enc.encode(aggregation.output(), &mut chunk);
        boiler_enc.encode(boilers.output(), &mut chunk);
        if let Some(archive) = &archive
            && chunk.body.len() > windows_at
        {
            archive.append(&chunk.body[windows_at..]);
        }
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
