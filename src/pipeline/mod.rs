//! The processing stages between the sources and the sinks: pure functions
//! and state tables on [`crate::model::ReadingBatch`]es, with no I/O, so each
//! is tested and benchmarked without sockets.
//!
//! * [`validate`]: judges every value (quality bits), keeps per-meter state
//!   and derives the rollover- and replacement-corrected "continuous"
//!   counter that aggregation will difference.
//! * [`coefficients`]: GB/T 2589 standard-coal coefficients as versioned data.
//! * [`energy`]: a meter's role in its site's balance and the conversion of
//!   a window's amount to kgce, as resolved from the configuration.
//! * [`steam`]: steam and hot water by IF97 enthalpy, for the kgce of steam
//!   and heat meters.
//! * [`window`]: window alignment in the site's time zone and per-window
//!   counter amounts by boundary interpolation.
//! * [`aggregate`]: consumption windows per meter and site roll-ups, with
//!   late data, gauges and checkpoints.
//! * [`boiler`]: boiler thermal efficiency per window, direct and indirect,
//!   out of the aggregation's closed windows.
//!
//! The gateway runs them in `app::stages`, which derives their rules and
//! specs from the configuration and persists their checkpoints: nothing
//! here imports the configuration, the telemetry or the wiring.

pub mod aggregate;
pub mod boiler;
pub mod coefficients;
pub mod energy;
pub mod steam;
pub mod targets;
pub mod validate;
pub mod window;
