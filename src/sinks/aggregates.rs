//! Aggregation results to line protocol: `consumption`, `gauge_stats` and
//! `site_consumption`, as SCHEMA.md and the README define them.
//!
//! Like [`super::encode::ReadingEncoder`], every series prefix (measurement
//! and sorted, escaped tags) and every field key is built once from the
//! configuration; encoding a window copies bytes and formats numbers into
//! the caller's reused buffer. A window's timestamp is its start, so a
//! re-emitted window overwrites the earlier point.

use crate::config::Config;
use crate::model::EnergyType;
use crate::pipeline::aggregate::AggOutput;
use crate::pipeline::window::WindowSize;
use crate::sinks::LineChunk;
use crate::sinks::lineproto::{LineBuilder, field_key, series_prefix};

/// Measurement of meter consumption windows.
pub const CONSUMPTION_MEASUREMENT: &str = "consumption";
/// Measurement of gauge statistics per window.
pub const GAUGE_STATS_MEASUREMENT: &str = "gauge_stats";
/// Measurement of site roll-ups.
pub const SITE_MEASUREMENT: &str = "site_consumption";

/// Rows of the site table: the energy types, then `total`.
const ROWS: usize = EnergyType::ALL.len() + 1;

/// The tags every meter series carries: site, meter, energy, level.
fn meter_tags<'a>(
    config: &'a Config,
    m: &'a crate::config::MeterConfig,
) -> (&'a str, &'a str, &'a str, &'a str) {
    (
        config.sites[m.site.index()].id.as_str(),
        m.id.as_str(),
        m.energy.as_str(),
        m.level.as_str(),
    )
}
/// The unit of a meter's consumption counter.
fn unit_of<'a>(config: &'a Config, m: &'a crate::config::MeterConfig) -> &'a str {
    m.consumption
        .and_then(|i| config.profiles[m.profile.index()].points.get(i))
        .map_or("", |p| p.unit.as_str())
}

/// The series prefix of every meter and window size for `measurement`,
/// with the counter's `unit` tag when `with_unit`.
fn meter_prefixes(
    config: &Config,
    windows: &[WindowSize],
    measurement: &str,
    with_unit: bool,
) -> Vec<Vec<Vec<u8>>> {
    config
        .meters
        .iter()
        .map(|m| {
            let (site, meter, energy, level) = meter_tags(config, m);
            let unit = if with_unit { unit_of(config, m) } else { "" };
            windows
                .iter()
                .map(|w| {
                    // An empty tag value is left out by `series_prefix`.
                    series_prefix(
                        measurement,
                        &[
                            ("site", site),
                            ("meter", meter),
                            ("energy", energy),
                            ("level", level),
                            ("window", w.as_tag()),
                            ("unit", unit),
                        ],
                    )
                })
                .collect()
        })
        .collect()
}

/// Encodes [`AggOutput`]s of one configuration.
#[derive(Debug, Clone)]
pub struct AggregateEncoder {
    windows: Vec<WindowSize>,
    /// `consumption` prefix per meter and window size.
    consumption: Vec<Vec<Vec<u8>>>,
    /// `gauge_stats` prefix per meter and window size.
    gauges: Vec<Vec<Vec<u8>>>,
    /// `site_consumption` prefix per site, row and window size (empty when
    /// the site has no level-1 meter of that energy).
    sites: Vec<Vec<Vec<Vec<u8>>>>,
    /// Escaped `<point>_mean`, `_min`, `_max` keys per profile and point.
    gauge_keys: Vec<Vec<[Vec<u8>; 3]>>,
    meter_profile: Vec<usize>,
}

impl AggregateEncoder {
    /// Prepares the prefixes and keys for `config` and its window sizes.
    #[must_use]
    pub fn new(config: &Config) -> AggregateEncoder {
        let windows = config.aggregation.aggregator.windows.clone();
        let consumption = meter_prefixes(config, &windows, CONSUMPTION_MEASUREMENT, true);
        let gauges = meter_prefixes(config, &windows, GAUGE_STATS_MEASUREMENT, false);
        let sites = config
            .sites
            .iter()
            .enumerate()
            .map(|(si, site)| {
                (0..ROWS)
                    .map(|row| {
                        let (energy, unit) = match EnergyType::ALL.get(row) {
                            Some(e) => {
                                let unit = config
                                    .meters
                                    .iter()
                                    .find(|m| {
                                        m.site.index() == si && m.level.0 == 1 && m.energy == *e
                                    })
                                    .map(|m| unit_of(config, m));
                                match unit {
                                    Some(u) => (e.as_str(), u),
                                    None => return Vec::new(),
                                }
                            }
                            None => ("total", "kgce"),
                        };
                        windows
                            .iter()
                            .map(|w| {
                                series_prefix(
                                    SITE_MEASUREMENT,
                                    &[
                                        ("site", site.id.as_str()),
                                        ("energy", energy),
                                        ("window", w.as_tag()),
                                        ("unit", unit),
                                    ],
                                )
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let gauge_keys = config
            .profiles
            .iter()
            .map(|p| {
                p.points
                    .iter()
                    .map(|pt| {
                        [
                            field_key(&format!("{}_mean", pt.name)),
                            field_key(&format!("{}_min", pt.name)),
                            field_key(&format!("{}_max", pt.name)),
                        ]
                    })
                    .collect()
            })
            .collect();
        AggregateEncoder {
            windows,
            consumption,
            gauges,
            sites,
            gauge_keys,
            meter_profile: config.meters.iter().map(|m| m.profile.index()).collect(),
        }
    }

    fn size_index(&self, size: WindowSize) -> usize {
        self.windows.iter().position(|w| *w == size).unwrap_or(0)
    }

    /// Appends one line per record of `agg` to `out`.
    pub fn encode(&self, agg: &AggOutput, out: &mut LineChunk) {
        for c in &agg.consumption {
            let s = self.size_index(c.size);
            let Some(prefix) = self
                .consumption
                .get(c.meter as usize)
                .and_then(|p| p.get(s))
            else {
                continue;
            };
            let mut line = LineBuilder::new(&mut out.body, prefix);
            line.f64(b"amount", c.amount);
            if let Some(k) = c.kgce {
                line.f64(b"kgce", k);
            }
            line.f64(b"coverage", c.coverage);
            line.boolean(b"estimated", c.estimated);
            if line.finish(c.start) {
                out.lines += 1;
            }
        }
        for g in &agg.gauges {
            let s = self.size_index(g.size);
            let m = g.meter as usize;
            let (Some(prefix), Some(keys)) = (
                self.gauges.get(m).and_then(|p| p.get(s)),
                self.meter_profile
                    .get(m)
                    .and_then(|p| self.gauge_keys.get(*p)),
            ) else {
                continue;
            };
            let stats = agg
                .gauge_stats
                .get(g.stats_start as usize..g.stats_end as usize)
                .unwrap_or(&[]);
            let mut line = LineBuilder::new(&mut out.body, prefix);
            for st in stats {
                if let Some([mean, min, max]) = keys.get(usize::from(st.point)) {
                    line.f64(mean, st.mean);
                    line.f64(min, st.min);
                    line.f64(max, st.max);
                }
            }
            line.i64(b"samples", i64::from(g.samples));
            if line.finish(g.start) {
                out.lines += 1;
            }
        }
        for site in &agg.sites {
            let row = site
                .energy
                .and_then(|e| EnergyType::ALL.iter().position(|x| *x == e))
                .unwrap_or(ROWS - 1);
            let s = self.size_index(site.size);
            let Some(prefix) = self
                .sites
                .get(site.site as usize)
                .and_then(|r| r.get(row))
                .and_then(|w| w.get(s))
            else {
                continue;
            };
            let mut line = LineBuilder::new(&mut out.body, prefix);
            line.f64(b"amount", site.amount);
            line.f64(b"kgce", site.kgce);
            line.i64(b"meters", i64::from(site.meters));
            line.f64(b"coverage", site.coverage);
            line.f64(b"exported_kgce", site.exported_kgce);
            line.f64(b"feedstock_kgce", site.feedstock_kgce);
            line.f64(b"renewable_kgce", site.renewable_kgce);
            line.f64(
                b"controlled_kgce",
                site.kgce - site.feedstock_kgce - site.renewable_kgce,
            );
            if line.finish(site.start) {
                out.lines += 1;
            }
        }
    }
}
