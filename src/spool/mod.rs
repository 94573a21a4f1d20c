//! The durable spool. (stub: being written on the `spool` branch)
