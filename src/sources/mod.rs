//! Where readings enter the gateway.
//!
//! * [`modbus`]: polls meters over Modbus TCP.
//! * [`mqtt`]: receives readings that meters and loggers publish to MQTT brokers.

pub mod modbus;
pub mod mqtt;
