//! The validation stage as the running gateway uses it: rules derived from
//! the configuration, the validator's state checkpointed to disk, and its
//! reason counters published to [`Stats`].
//!
//! Rules come from each meter's profile (`min`, `max`, `rollover`,
//! `max_rate_per_hour`, `spike_margin`, `frozen_after`, `rate_of`), then the
//! meter's own `[meters.rules.<point>]` overrides, `calibration.due` and
//! declared `replacements`. Where a counter of an unsigned integer type
//! declares no rollover, the register's own wrap is used: 2^bits × scale ×
//! the meter's PT/CT ratio, so an Acrel U32 ×0.01 kWh counter wraps exactly
//! where the meter does. Time limits come from `[validation]`.
//!
//! The checkpoint is written with a temporary file and a rename, every
//! `validation.checkpoint_interval_secs` and at shutdown. It is read back at start, so a
//! restart neither re-flags nor loses a rollover. A missing or unreadable
//! checkpoint starts every meter fresh and says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::validate::{MeterRules, PointRules, Replacement, TimeRules, Validator};
use crate::config::Config;
use crate::model::ReadingBatch;
use crate::profiles::{DataType, PointKind};
use crate::sources::modbus::decode::ratio_factor;
use crate::stats::Stats;

/// Builds the validator's rules for every meter of `config`, in `MeterId` order.
#[must_use]
pub fn rules(config: &Config) -> Vec<MeterRules> {
    config
        .meters
        .iter()
        .map(|m| {
            let profile = &config.profiles[m.profile.index()];
            let points = profile
                .points
                .iter()
                .map(|def| {
                    let ratio = ratio_factor(def.ratio, m.pt, m.ct);
                    let mut r = PointRules::from_point(def);
                    r.resolution = def.scale.abs() * ratio;
                    if def.kind == PointKind::Counter && r.rollover.is_none() {
                        let bits = match def.data_type {
                            DataType::U16 => Some(16),
                            DataType::U32 => Some(32),
                            _ => None,
                        };
                        r.rollover = bits.map(|b| 2f64.powi(b) * def.scale.abs() * ratio);
                    }
                    r
                })
                .collect::<Vec<_>>();
            let mut points = points;
            for (i, o) in &m.overrides {
                let r = &mut points[*i];
                r.min = o.min.or(r.min);
                r.max = o.max.or(r.max);
                r.max_rate_per_hour = o.max_rate_per_hour.or(r.max_rate_per_hour);
                r.spike_margin = o.spike_margin.unwrap_or(r.spike_margin);
                r.frozen_after = o.frozen_after.or(r.frozen_after);
            }
            // The first gauge that names its counter in `rate_of`.
            let rate_point = profile.points.iter().enumerate().find_map(|(g, def)| {
                let counter = profile.point_index(def.rate_of.as_deref()?)?;
                Some((counter, g))
            });
            MeterRules {
                key: stable_key(&m.id, &profile.id),
                points,
                calibration_due: m.calibration.as_ref().map(|c| c.due_at),
                replacements: m
                    .replacements
                    .iter()
                    .map(|d| {
                        (
                            d.point,
                            Replacement {
                                at: d.at,
                                old_final: d.old_final,
                                new_initial: d.new_initial,
                            },
                        )
                    })
                    .collect(),
                rate_point,
            }
        })
        .collect()
}

/// FNV-1a of the meter and profile ids: the identity a checkpoint is matched on.
fn stable_key(meter: &str, profile: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meter.bytes().chain([0]).chain(profile.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The validator with its checkpoint file and counters.
pub struct ValidationStage {
    validator: Validator,
    continuous: Vec<f64>,
    /// Site index of every meter, for the per-site roll-up.
    meter_site: Vec<usize>,
    /// Site ids, by index.
    site_ids: Vec<String>,
    /// Meter ids, by index.
    meter_ids: Vec<String>,
    checkpoint: PathBuf,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    stats: Arc<Stats>,
}

impl ValidationStage {
    /// Builds the stage for `config` and restores the checkpoint under its data directory.
    #[must_use]
    pub fn new(config: &Config, stats: Arc<Stats>) -> ValidationStage {
        let v = &config.validation;
        let mut validator = Validator::new(
            rules(config),
            TimeRules {
                max_future_skew_secs: v.max_future_skew_secs,
                max_lateness_secs: v.max_lateness_secs,
                reorder_window_secs: 0,
            },
        );
        let checkpoint = config.gateway.data_dir.join("validation.state");
        match std::fs::read(&checkpoint) {
            Ok(bytes) => match validator.restore(&bytes) {
                Ok(report) => info!(
                    file = %checkpoint.display(),
                    restored = report.restored,
                    reset = report.reset,
                    "validation state restored"
                ),
                Err(e) => warn!(
                    file = %checkpoint.display(),
                    error = %e,
                    "validation checkpoint unusable; every meter starts fresh"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(file = %checkpoint.display(), "no validation checkpoint yet; every meter starts fresh");
            }
            Err(e) => warn!(
                file = %checkpoint.display(),
                error = %e,
                "cannot read the validation checkpoint; every meter starts fresh"
            ),
        }
        let now = jiff::Timestamp::now().as_second();
        for m in &config.meters {
            if let Some(cal) = &m.calibration
                && cal.due_at <= now
            {
                warn!(
                    meter = %m.id,
                    site = %config.sites[m.site.index()].id,
                    due = %cal.due,
                    serial = cal.serial.as_deref().unwrap_or(""),
                    "meter calibration overdue: its readings carry the calibration bit (1024)"
                );
            }
        }
        let meter_site = config.meters.iter().map(|m| m.site.index()).collect();
        let site_ids = config.sites.iter().map(|s| s.id.clone()).collect();
        let meter_ids = config.meters.iter().map(|m| m.id.clone()).collect();
        ValidationStage {
            meter_ids,
            meter_site,
            site_ids,
            validator,
            continuous: Vec::new(),
            checkpoint,
            checkpoint_every: config.validation.checkpoint_interval,
            last_checkpoint: Instant::now(),
            stats,
        }
    }

    /// Judges `batch` in place and publishes the counters; checkpoints when due.
    pub fn process(&mut self, batch: &mut ReadingBatch) {
        let now = jiff::Timestamp::now().as_second();
        self.validator.validate(batch, now, &mut self.continuous);
        let flagged = batch.values.iter().filter(|v| !v.quality.is_good()).count();
        Stats::add(&self.stats.points_flagged, flagged as u64);
        let totals = &self.validator.counters().total;
        for (counter, total) in self.stats.quality_counts.iter().zip(totals) {
            counter.store(*total, Ordering::Relaxed);
        }
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.save();
            self.log_counts();
        }
    }

    /// Logs the flagged values per site and reason (sites with none are left
    /// out), and the meters with the most flags.
    pub fn log_counts(&self) {
        let counters = self.validator.counters();
        let mut per_site = vec![[0u64; 12]; self.site_ids.len()];
        for (meter, counts) in counters.per_meter.iter().enumerate() {
            if let Some(site) = self
                .meter_site
                .get(meter)
                .and_then(|s| per_site.get_mut(*s))
            {
                for (sum, n) in site.iter_mut().zip(counts) {
                    *sum += n;
                }
            }
        }
        for (site, counts) in self.site_ids.iter().zip(&per_site) {
            if counts.iter().all(|n| *n == 0) {
                continue;
            }
            let reasons: Vec<String> = crate::model::Quality::REASONS
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(|((_, word), n)| format!("{word}={n}"))
                .collect();
            info!(site = %site, flagged = %reasons.join(" "), "validation counts");
        }
        // The meters with the most flagged values, so a bad meter stands out.
        let mut worst: Vec<(u64, usize)> = counters
            .per_meter
            .iter()
            .enumerate()
            .map(|(m, counts)| (counts.iter().sum::<u64>(), m))
            .filter(|(n, _)| *n > 0)
            .collect();
        worst.sort_unstable_by(|a, b| b.cmp(a));
        if !worst.is_empty() {
            let list: Vec<String> = worst
                .iter()
                .take(10)
                .map(|(n, m)| format!("{}={n}", self.meter_ids.get(*m).map_or("?", String::as_str)))
                .collect();
            info!(meters = %list.join(" "), "meters with the most flagged values");
        }
    }

    /// Writes the checkpoint now (temporary file, then rename).
    pub fn save(&mut self) {
        self.last_checkpoint = Instant::now();
        let bytes = self.validator.checkpoint();
        let tmp = self.checkpoint.with_extension("state.tmp");
        let result = self
            .checkpoint
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.checkpoint));
        if let Err(e) = result {
            warn!(
                file = %self.checkpoint.display(),
                error = %e,
                "cannot write the validation checkpoint; a restart would start meters fresh"
            );
        }
    }
}
