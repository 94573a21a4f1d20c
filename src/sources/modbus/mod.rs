//! The Modbus source: pure planning and decoding, a thin I/O shell around them.
//!
//! * [`plan`]: merges a meter's points into as few reads as possible.
//! * [`decode`]: registers to numbers, in every data type and byte order (and back, for the simulator).
//! * [`schedule`]: slots aligned to the poll interval, overrun accounting.
//! * [`poller`]: one task per endpoint: connection, reconnect, requests, timeouts.

pub mod decode;
pub mod plan;
pub mod poller;
pub mod schedule;
