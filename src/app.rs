//! The running gateway: wires sources, pipeline and sink together and owns
//! their shutdown.
//!
//! ```text
//! EndpointPoller ×N ──ReadingBatch──▶ encode ──LineChunk──▶ sinks::queue ──▶ InfluxDB | file
//! ```
//! Channels are bounded, so a slow destination slows the encoder, which
//! slows the pollers, whose missed slots are counted: nothing grows without
//! bound. Shutdown runs front to back: the pollers stop at the cancellation,
//! their channel closes, the encoder drains it and closes its own, and the
//! sink flushes what it holds before returning its summary.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::{Config, InfluxApi, OutputConfig};
use crate::model::{EndpointId, ReadingBatch};
use crate::sinks::LineChunk;
use crate::sinks::encode::ReadingEncoder;
use crate::sinks::queue::{self, SinkSummary};
use crate::sources::modbus::poller::EndpointPoller;
use crate::stats::Stats;

/// Reading batches buffered between the pollers and the encoder.
const READING_CHANNEL: usize = 1024;
/// Line chunks buffered between the encoder and the sink.
const LINE_CHANNEL: usize = 256;

/// Errors that stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The sink could not start or failed for good.
    #[error("output: {0}")]
    Sink(#[from] queue::SinkError),
    /// A task panicked or was aborted.
    #[error("internal task failed: {0}")]
    Task(String),
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
/// When the sink cannot start (for example an unwritable file) or a task fails.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> Result<SinkSummary, AppError> {
    let (readings_tx, mut readings_rx) = mpsc::channel::<ReadingBatch>(READING_CHANNEL);
    let (lines_tx, lines_rx) = mpsc::channel::<LineChunk>(LINE_CHANNEL);

    info!(
        gateway = %config.gateway.id,
        sites = config.sites.len(),
        meters = config.meters.len(),
        endpoints = config.endpoints.len(),
        output = %describe_output(&config.output),
        "starting"
    );

    let sink = tokio::spawn(queue::run(
        config.output.clone(),
        lines_rx,
        Arc::clone(&stats),
        shutdown.clone(),
    ));

    let pollers = TaskTracker::new();
    for i in 0..config.endpoints.len() {
        let id = EndpointId(u32::try_from(i).unwrap_or(u32::MAX));
        let poller = EndpointPoller::new(
            Arc::clone(&config),
            id,
            readings_tx.clone(),
            Arc::clone(&stats),
        );
        pollers.spawn(poller.run(shutdown.clone()));
    }
    pollers.close();
    drop(readings_tx);

    let encoder_config = Arc::clone(&config);
    let encoder_stats = Arc::clone(&stats);
    let encoder = tokio::spawn(async move {
        let mut enc = ReadingEncoder::new(&encoder_config);
        while let Some(batch) = readings_rx.recv().await {
            let mut chunk = LineChunk {
                body: Vec::with_capacity(batch.len() * 256),
                lines: 0,
            };
            enc.encode(&batch, &mut chunk);
            encoder_stats
                .lines_encoded
                .fetch_add(chunk.lines as u64, std::sync::atomic::Ordering::Relaxed);
            if chunk.lines > 0 && lines_tx.send(chunk).await.is_err() {
                break;
            }
        }
    });

    pollers.wait().await;
    encoder.await.map_err(|e| AppError::Task(e.to_string()))?;
    let summary = sink.await.map_err(|e| AppError::Task(e.to_string()))??;
    info!(?summary, "stopped");
    Ok(summary)
}
