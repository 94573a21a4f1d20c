//! The DL/T 645-2007 source: electricity meters on RS-485 buses, the
//! protocol China's grid companies and most enterprise incomers use.
//!
//! * [`frame`]: pure: frames encoded and answers checked against their
//!   question (the data types, addresses, DIs and BCD formats, are in
//!   [`crate::profiles::dlt645`], shared with profiles and the simulator);
//! * [`client`]: one read on a field-bus link.
//!
//! DL/T 645 meters share the field-bus links ([`crate::sources::bus`]) and
//! the endpoint pollers with Modbus RTU meters.

pub mod client;
pub mod frame;

/// Wake-up bytes (`FE`) sent before every request by default: four, as the
/// standard's examples and most masters do (the endpoint's
/// `dlt645_preamble`, whose default in `config/modbus.rs` is this value).
pub const PREAMBLE: usize = 4;
