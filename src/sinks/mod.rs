//! Where readings leave the gateway.
//!
//! * [`lineproto`]: the InfluxDB line-protocol encoder (pure, reused buffers).
//! * [`encode`]: the schema of SCHEMA.md: readings become `reading` lines.
//! * [`influx`]: the InfluxDB writer (v2 through the `influxdb2` crate, v1 by
//!   plain HTTP), response classification and retries.
//! * [`file`]: appends line protocol to a local file (the demo's fallback).
//! * [`queue`]: the sink task: batches by size and time, holds a bounded
//!   in-memory queue while the destination is down, counts what it drops.

pub mod encode;
pub mod file;
pub mod influx;
pub mod lineproto;
pub mod queue;

/// A chunk of encoded line protocol: whole lines, each ending in `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineChunk {
    /// The lines.
    pub body: Vec<u8>,
    /// How many lines `body` holds.
    pub lines: usize,
}
