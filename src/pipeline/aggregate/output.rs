//! What the aggregator hands to the encoder: closed meter windows, gauge
//! statistics and site roll-ups, in lists the caller clears and reuses so
//! nothing is allocated per reading.

use crate::model::EnergyType;
use crate::pipeline::window::WindowSize;

/// One `consumption` point: a meter's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumptionOut {
    /// Meter index.
    pub meter: u32,
    /// Window size.
    pub size: WindowSize,
    /// Window start (the timestamp written).
    pub start: i64,
    /// Counter difference across the window, in the counter's unit.
    pub amount: f64,
    /// kgce, when the meter has a conversion.
    pub kgce: Option<f64>,
    /// Fraction of the window backed by good readings.
    pub coverage: f64,
    /// A boundary was interpolated across a long gap, or kgce used a
    /// fallback coefficient.
    pub estimated: bool,
    /// Steam whose temperature contradicts its state (far below
    /// saturation): priced as saturated, `estimated`, and counted.
    pub steam_suspect: bool,
}

/// Statistics of one gauge in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStatOut {
    /// Point index in the meter's profile.
    pub point: u16,
    /// Arithmetic mean of the good samples.
    pub mean: f64,
    /// Smallest good sample.
    pub min: f64,
    /// Largest good sample.
    pub max: f64,
    /// Good samples of this gauge (a meter's gauges can be flagged one by
    /// one, so this can be below [`GaugeWindowOut::samples`]): the boiler
    /// stage's coverage of a gauge input.
    pub samples: u32,
}

/// One `gauges` point: a meter's gauge statistics in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeWindowOut {
    /// Meter index.
    pub meter: u32,
    /// Window size.
    pub size: WindowSize,
    /// Window start.
    pub start: i64,
    /// Readings with at least one good gauge in the window.
    pub samples: u32,
    /// First of this window's statistics in [`AggOutput::gauge_stats`].
    pub stats_start: u32,
    /// One past the last of them.
    pub stats_end: u32,
}

/// One `site_consumption` point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteOut {
    /// Site index.
    pub site: u32,
    /// Energy type, `None` for the comprehensive total (in kgce).
    pub energy: Option<EnergyType>,
    /// Window size.
    pub size: WindowSize,
    /// Window start.
    pub start: i64,
    /// Net amount (exports subtracted), in the energy's unit; kgce for the total.
    pub amount: f64,
    /// Net kgce (exports subtracted).
    pub kgce: f64,
    /// Meters that contributed so far.
    pub meters: u32,
    /// Mean coverage over the meters expected (missing ones count 0).
    pub coverage: f64,
    /// kgce exported (already subtracted from `kgce`).
    pub exported_kgce: f64,
    /// kgce of feedstock use (included in `kgce`).
    pub feedstock_kgce: f64,
    /// kgce of renewable energy (included in `kgce`).
    pub renewable_kgce: f64,
}

/// What one call of [`Aggregator::process`](super::Aggregator::process) produced; the caller clears and
/// reuses it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggOutput {
    /// Meter consumption windows.
    pub consumption: Vec<ConsumptionOut>,
    /// Meter gauge windows.
    pub gauges: Vec<GaugeWindowOut>,
    /// Statistics referenced by [`GaugeWindowOut::stats_start`]..[`GaugeWindowOut::stats_end`].
    pub gauge_stats: Vec<GaugeStatOut>,
    /// Site roll-ups.
    pub sites: Vec<SiteOut>,
}

impl AggOutput {
    /// Empties every list, keeping capacity.
    pub fn clear(&mut self) {
        self.consumption.clear();
        self.gauges.clear();
        self.gauge_stats.clear();
        self.sites.clear();
    }

    /// True when nothing was produced.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consumption.is_empty() && self.gauges.is_empty() && self.sites.is_empty()
    }
}
