//! Where readings leave the gateway.
//!
//! * [`lineproto`]: the InfluxDB line-protocol encoder (pure, reused buffers).
//! * [`encode`]: the schema of SCHEMA.md: readings become `reading` lines.
//! * [`aggregates`]: closed windows become `consumption`, `gauge_stats` and
//!   `site_consumption` lines.
//! * [`boilers`]: boiler windows become `boiler` lines.
//! * [`influx`]: the InfluxDB writer (v2 through the `influxdb2` crate, v1 by
//!   plain HTTP), response classification and retries.
//! * [`file`]: appends line protocol to a local file (the demo's fallback).
//! * [`uploader`]: reads the durable spool in order, batches, writes,
//!   retries, and acknowledges to the spool only what the output confirmed.
//! * [`inflight`]: several of those write requests under way at once, with
//!   acknowledgements kept in spool order.

pub mod aggregates;
pub mod boilers;
pub mod encode;
pub mod file;
pub mod inflight;
pub mod influx;
pub mod lineproto;
pub mod uploader;

/// A chunk of encoded line protocol: whole lines, each ending in `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineChunk {
    /// The lines.
    pub body: Vec<u8>,
    /// How many lines `body` holds.
    pub lines: usize,
}
