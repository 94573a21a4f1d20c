//! emgate: an energy-metering data collection gateway.
//!
//! It polls meters over Modbus, judges every reading, and writes time series
//! to InfluxDB without losing what it accepted.
//!
//! # Layout
//! * [`check`]: reading TOML strictly and reporting every problem, with "did you mean".
//! * [`model`]: ids, quality bits, reading batches: the data every module shares.
//! * [`config`]: TOML files and environment overrides to a validated [`config::Config`].
//! * [`profiles`]: meter register maps as data.
//! * [`sources`]: where readings enter ([`sources::modbus`]).
//! * [`pipeline`]: pure stages on reading batches: [`pipeline::validate`] judges every value.
//! * [`sinks`]: where they leave: line protocol, InfluxDB v1/v2, a local file.
//! * [`spool`]: the durable on-disk buffer between the pipeline and the writer.
//! * [`sim`]: simulated meters with exact, known consumption.
//! * [`telemetry`]: counters, the status board, its snapshots, Prometheus exposition and the `emgate status` client.
//! * [`backoff`]: capped exponential backoff with jitter for every retry.
//! * [`clock`]: "now" in Unix milliseconds, one clock that tests can run on paused time.
//! * [`shutdown`]: the shutdown deadline and every task's share of it; SIGINT/SIGTERM.
//! * [`checkpoint`]: versioned, checksummed state files and their durable atomic replacement.
//! * [`app`]: builds a running gateway from a config and owns its shutdown.
//! * [`demo`]: `emgate demo`, a built-in simulated site run through the real gateway.

pub mod api;
pub mod app;
pub mod backoff;
pub mod check;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod demo;
pub mod model;
pub mod pipeline;
pub mod profiles;
pub mod shutdown;
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod spool;
pub mod telemetry;
