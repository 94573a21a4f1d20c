//! Where readings enter the gateway.
//!
//! * [`modbus`]: polls meters over Modbus TCP.
//! * [`mqtt`]: receives readings that meters and loggers publish to MQTT brokers.
//!
//! Every source hands its readings to the pipeline as an [`Input`] over one
//! bounded channel, so backpressure reaches the sources and nothing queues
//! without limit.

pub mod bus;
pub mod dlt645;
pub mod modbus;
pub mod mqtt;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::model::ReadingBatch;
use crate::telemetry::{Stats, StatusBoard};

/// What every source task of a generation is given: the configuration it
/// was built from, the one channel into the pipeline, and where it reports
/// (process counters and the status board). Its stop signal and its share
/// of the shutdown deadline come with `run`.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The generation's configuration.
    pub config: Arc<Config>,
    /// Into the pipeline (bounded: a slow pipeline slows the sources down).
    pub out: mpsc::Sender<Input>,
    /// Process-wide counters.
    pub stats: Arc<Stats>,
    /// The generation's status board.
    pub board: Arc<StatusBoard>,
    /// Where dial-in DTUs arrive, and the channels to their pollers.
    pub dtu: Arc<bus::dtu::DtuHub>,
}

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
