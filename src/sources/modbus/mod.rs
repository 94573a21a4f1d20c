//! The Modbus source: pure planning and decoding, a thin I/O shell around them.
//!
//! * [`plan`]: merges a meter's points into as few reads as possible.
//! * [`schedule`]: slots aligned to the poll interval, overrun accounting.
//! * [`timing`]: the wire time of a bus's poll round, planned from the configuration.
//! * [`poller`]: one task per endpoint: connection, reconnect, requests, timeouts.
//!
//! Registers become numbers in [`crate::profiles::codec`], shared with the
//! pipeline and the simulator.

pub mod client;
pub mod connect;
pub mod frame;
pub mod plan;
pub mod poller;
pub mod schedule;
pub mod timing;
