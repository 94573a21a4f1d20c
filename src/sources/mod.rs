//! Where readings enter the gateway.
//!
//! * [`modbus`]: polls meters over Modbus TCP.

pub mod modbus;
pub mod mqtt;
