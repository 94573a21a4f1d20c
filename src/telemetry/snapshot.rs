//! The read side of the status board: per-meter and per-site snapshots,
//! state counts and readiness, as the API, the status page and `emgate
//! status` show them.

use std::sync::atomic::Ordering;

use super::Stats;
use super::board::{
    COMPLETENESS_TARGET, MeterDyn, MeterRow, NONE, QUARTER_SECS, SPOOL_READY_SHARE, SiteRow,
    StatusBoard, is_bad, local_day, lock,
};
use super::board::{MeterSnapshot, Readiness, SiteSnapshot};

impl StatusBoard {
    /// Every meter, in configuration order, as of `now` (Unix seconds).
    ///
    /// State: `down` when the last poll failed or no reading with a value
    /// came for 3 intervals; `bad` when answering but the last reading has a
    /// quality bit other than `calibration`; `up` when the last reading is
    /// good; `unknown` before anything happened.
    #[must_use]
    pub fn meters(&self, now: i64) -> Vec<MeterSnapshot> {
        (0..self.meters.len())
            .map(|i| self.snapshot(i, now))
            .collect()
    }

    /// The meter with id `id`, as of `now` (Unix seconds).
    #[must_use]
    pub fn meter(&self, id: &str, now: i64) -> Option<MeterSnapshot> {
        let i = self.meters.iter().position(|m| m.id == id)?;
        Some(self.snapshot(i, now))
    }

    pub(super) fn state(&self, i: usize, now: i64) -> &'static str {
        let m = &self.meters[i];
        let d = lock(&m.dynamic);
        Self::state_of(m, &d, now)
    }

    pub(super) fn state_of(m: &MeterRow, d: &MeterDyn, now: i64) -> &'static str {
        if d.consecutive_failures > 0 {
            return "down";
        }
        match d.last_value_slot {
            None if d.last_slot.is_some() => "down",
            None => "unknown",
            Some(s) if now - s > 3 * m.interval_secs => "down",
            Some(_) if is_bad(d.quality) => "bad",
            Some(_) => "up",
        }
    }

    pub(super) fn snapshot(&self, i: usize, now: i64) -> MeterSnapshot {
        let m = &self.meters[i];
        let d = lock(&m.dynamic);
        let backoff_until = m
            .endpoint
            .map(|e| self.endpoints[e].backoff_until_ms.load(Ordering::Relaxed))
            .filter(|&t| t != NONE && t > now.saturating_mul(1000));
        MeterSnapshot {
            id: m.id.clone(),
            site: self.sites[m.site].id.clone(),
            energy: m.energy.to_owned(),
            level: m.level,
            source: m.source.clone(),
            state: Self::state_of(m, &d, now).to_owned(),
            last_slot: d.last_slot,
            last_good_age_secs: d.last_good_slot.map(|s| (now - s).max(0)),
            quality: d.quality.0,
            reasons: d
                .quality
                .reasons()
                .chain(d.detail.name())
                .map(str::to_owned)
                .collect(),
            consecutive_failures: d.consecutive_failures,
            backoff_until,
            calibration_due: m.calibration_due.as_ref().map(|(s, _)| s.clone()),
            calibration_overdue: m.calibration_due.as_ref().is_some_and(|(_, at)| now >= *at),
            polls: m.polls.load(Ordering::Relaxed),
            timeouts: m.timeouts.load(Ordering::Relaxed),
            exceptions: m.exceptions.load(Ordering::Relaxed),
        }
    }

    /// Completeness of today's quarter-hour slots of site `s` as of `now`.
    pub(super) fn completeness(&self, s: &SiteRow, now: i64) -> f64 {
        if s.meters.is_empty() {
            return 1.0;
        }
        let Some((start, _)) = local_day(now, &s.tz) else {
            return 0.0;
        };
        let elapsed = ((now - start).max(0) / QUARTER_SECS + 1) as u64;
        let mut filled = 0u64;
        for &i in &s.meters {
            let d = lock(&self.meters[i].dynamic);
            if d.day_start == start {
                filled += u64::from(d.quarters[0].count_ones() + d.quarters[1].count_ones());
            }
        }
        (filled as f64 / (elapsed * s.meters.len() as u64) as f64).min(1.0)
    }

    /// Every site, in configuration order, as of `now` (Unix seconds).
    #[must_use]
    pub fn sites(&self, now: i64) -> Vec<SiteSnapshot> {
        self.sites
            .iter()
            .map(|s| {
                let (mut up, mut down, mut bad) = (0, 0, 0);
                for &i in &s.meters {
                    match self.state(i, now) {
                        "up" => up += 1,
                        "down" => down += 1,
                        "bad" => bad += 1,
                        _ => {}
                    }
                }
                let completeness_today = self.completeness(s, now);
                SiteSnapshot {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    meters: s.meters.len() as u32,
                    up,
                    down,
                    bad,
                    completeness_today,
                    completeness_ok: completeness_today >= COMPLETENESS_TARGET,
                }
            })
            .collect()
    }

    /// Meters per state as of `now`: `(up, down, bad, unknown)`.
    #[must_use]
    pub fn state_counts(&self, now: i64) -> (u32, u32, u32, u32) {
        let mut c = (0, 0, 0, 0);
        for i in 0..self.meters.len() {
            match self.state(i, now) {
                "up" => c.0 += 1,
                "down" => c.1 += 1,
                "bad" => c.2 += 1,
                _ => c.3 += 1,
            }
        }
        c
    }

    /// Ready: the configuration is loaded (a board exists), the sources
    /// started, and the sink is reachable or the spool below 90 % of its
    /// maximum.
    #[must_use]
    pub fn readiness(&self, stats: &Stats) -> Readiness {
        let mut reasons = Vec::new();
        if !self.sources_started.load(Ordering::Relaxed) {
            reasons.push("sources not started".to_owned());
        }
        if !self.sink_reachable.load(Ordering::Relaxed) {
            let bytes = Stats::get(&stats.spool_bytes);
            let limit = self.spool_max_bytes as f64 * SPOOL_READY_SHARE;
            if bytes as f64 >= limit {
                reasons.push(format!(
                    "output unreachable and spool at {bytes} of {} bytes (≥ 90 %)",
                    self.spool_max_bytes
                ));
            }
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// Whether the output answered its last request.
    #[must_use]
    pub fn sink_reachable(&self) -> bool {
        self.sink_reachable.load(Ordering::Relaxed)
    }
}

/// The body of `GET /api/summary`: totals the status page turns into rates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Unix seconds of the sample.
    pub time: i64,
    /// Readings produced so far.
    pub readings_total: u64,
    /// Lines appended to the spool so far.
    pub lines_spooled: u64,
    /// Unacknowledged bytes in the spool (the backlog).
    pub spool_bytes: u64,
    /// Unacknowledged records in the spool.
    pub spool_records: u64,
    /// Lines the output acknowledged so far.
    pub lines_written: u64,
    /// Meters configured.
    pub meters: u32,
    /// Meters up.
    pub up: u32,
    /// Meters down.
    pub down: u32,
    /// Meters bad.
    pub bad: u32,
    /// The output answered its last write request (InfluxDB accepting writes).
    pub sink_reachable: bool,
}
