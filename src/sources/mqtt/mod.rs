//! MQTT source: readings that meters, data loggers and other gateways
//! publish to an MQTT broker (issue 6).
//!
//! Why it exists: many sites already have loggers or PLCs that push their
//! readings to a broker instead of being polled, and a gateway that can only
//! poll Modbus would need a second collector for them. MQTT meters are
//! configured like Modbus meters (site, profile, energy, level, interval)
//! but with `broker = "<id>"` instead of `endpoint` and `unit_id`; from the
//! [`ReadingBatch`](crate::model::ReadingBatch) on they are indistinguishable:
//! validated, aggregated, spooled and written the same way.
//!
//! How a message becomes readings ([`payload::BrokerDecoder::decode`]):
//! 1. payloads over `max_payload_bytes` and non-UTF-8 payloads are rejected
//!    before any parsing;
//! 2. the topic is matched against the broker's subscriptions in
//!    configuration order ([`TopicTemplate`], parsed and checked with the configuration); the first match decides
//!    the format and the time stamp rule;
//! 3. the meter is named by `{meter}` in the topic, else by `meter_field`
//!    (JSON), the `meter` tag (line protocol) or the first column (CSV); it
//!    must be a meter with `broker` = this broker, and of the topic's
//!    `{site}` when the template has one;
//! 4. each reading (a JSON object, an element of the `array`, a line) gets
//!    every point of the meter's profile in profile order: found points are
//!    number × `scale` with quality good, absent ones have no value and the
//!    `exception` quality; a reading with no point at all is rejected;
//! 5. slot = the time stamp (payload, or receipt) in whole seconds,
//!    lag = receipt − slot.
//!
//! A message is all or nothing. Rejected messages are counted, logged,
//! optionally republished to the dead-letter topic, and acked (they never
//! become valid). Rejection reasons ([`payload::Rejection::reason`]):
//! * `too_large`: payload over `max_payload_bytes`;
//! * `not_utf8`: payload not valid UTF-8;
//! * `malformed`: not valid JSON / line protocol / CSV, or not the expected shape;
//! * `wrong_type`: a mapped point (or the meter key) is not a number (a string);
//! * `unknown_meter`: the meter is not one of this broker's, or not of the topic's site;
//! * `missing_field`: nothing names the meter, or no point of its profile is present;
//! * `bad_timestamp`: missing, unreadable, before 2000-01-01 or more than a day ahead;
//! * `no_subscription`: the topic matches no subscription.

pub mod client;
pub mod payload;

pub use crate::config::topic::{TopicIds, TopicTemplate};
pub use payload::{BrokerDecoder, Rejected, Rejection};
