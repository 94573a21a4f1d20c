//! What a running gateway knows about itself, and how it tells: process-wide
//! counters ([`Stats`]), the per-meter, per-endpoint and per-site status
//! board ([`StatusBoard`], shared across reloads as [`SharedBoard`]), its
//! snapshots ([`MeterSnapshot`], [`SiteSnapshot`], [`EndpointSnapshot`],
//! [`BoilerSnapshot`], [`Summary`]), the Prometheus exposition, and the `emgate status` client
//! that renders a remote gateway's snapshots as tables.
//!
//! Sources, the pipeline stages and the output update it; the API reads it.
//! It sits below all of them and imports only the configuration and the
//! data model.

pub mod board;
pub mod boilers;
pub mod client;
mod prometheus;
pub mod snapshot;
pub mod stats;

pub use board::{
    EndpointSnapshot, MeterSnapshot, PollOutcome, Readiness, SharedBoard, SiteSnapshot, StatusBoard,
};
pub use boilers::{BoilerSnapshot, BoilerWindowSnapshot, WindowTotals};
pub use snapshot::Summary;
pub use stats::Stats;
