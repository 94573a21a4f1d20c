//! emgate: an energy-metering data collection gateway.
//!
//! It polls meters over Modbus, judges every reading, and writes time series
//! to InfluxDB without losing what it accepted.
//!
//! # Layout
//! Each module imports only from those listed after it in its group or in a
//! group below; nothing imports from `app` but the binary and the demo.
//!
//! Wiring (top):
//! * [`app`]: builds a running gateway from a config: generations, reload,
//!   the stages as the gateway runs them, the spool appender; owns shutdown.
//! * [`api`]: the HTTP API (health, readiness, metrics, status, reload, entries, reports, site-scoped tokens) and the status page.
//! * [`demo`]: `emgate demo`, a built-in simulated site run through the real gateway.
//!
//! Components:
//! * [`reports`]: reports for the regulator, the enterprise and the institute, read back from InfluxDB (InfluxQL) or the local archive, and their renderers (table, CSV, JSON, HTML).
//! * [`entries`]: manual entries (output, output value, readings of unconnected meters, fuel lab analyses): validation and their `entry` line.
//! * [`sources`]: where readings enter ([`sources::modbus`], [`sources::mqtt`]), as [`sources::Input`].
//! * [`sinks`]: where they leave: line protocol, InfluxDB v1/v2, a local file.
//! * [`sim`]: simulated meters with exact, known consumption (Modbus and MQTT).
//! * [`telemetry`]: counters, the status board, its snapshots, Prometheus exposition and the `emgate status` client.
//!
//! Configuration:
//! * [`config`]: TOML files and environment overrides to a validated [`config::Config`], one file per section.
//!
//! Data and pure stages:
//! * [`archive`]: the local archive of window results and entries (days on disk, export, reading back).
//! * [`pipeline`]: pure stages on reading batches: validation, windows, aggregation, kgce, steam.
//! * [`spool`]: the durable on-disk buffer between the pipeline and the writer.
//! * [`profiles`]: meter register maps as data, and the register codec.
//! * [`model`]: ids, quality bits, reading batches: the data every module shares.
//!
//! Leaves (import nothing of the crate):
//! * [`check`]: reading TOML strictly and reporting every problem, with "did you mean".
//! * [`checkpoint`]: versioned, checksummed state files and their durable atomic replacement.
//! * [`clock`]: "now" in Unix milliseconds, one clock that tests can run on paused time.
//! * [`shutdown`]: the shutdown deadline and every task's share of it; SIGINT/SIGTERM.
//! * [`backoff`]: capped exponential backoff with jitter for every retry.

pub mod api;
pub mod app;
pub mod archive;
pub mod backoff;
pub mod check;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod demo;
pub mod entries;
pub mod model;
pub mod pipeline;
pub mod profiles;
pub mod reports;
pub mod shutdown;
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod spool;
pub mod telemetry;
