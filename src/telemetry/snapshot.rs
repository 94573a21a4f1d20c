//! The read side of the status board: per-meter, per-site and per-endpoint
//! (bus) snapshots, state counts and readiness, as the API, the status page
//! and `emgate status` show them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Stats;
use super::board::{
    COMPLETENESS_TARGET, EndpointRow, MeterDyn, MeterRow, NONE, QUARTER_SECS, SPOOL_READY_SHARE,
    SiteRow, StatusBoard, UNSET, is_bad, local_day, lock,
};
use super::board::{EndpointSnapshot, MeterSnapshot, Readiness, SiteSnapshot};

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

    /// Every endpoint (bus), in configuration order: its planned and last
    /// measured poll round against the shortest poll interval of its meters.
    #[must_use]
    pub fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.endpoints
            .iter()
            .map(|e| {
                let last = e.last_round();
                EndpointSnapshot {
                    id: e.id.clone(),
                    transport: e.transport.to_owned(),
                    meters: e.meters,
                    requests: Some(e.planned_requests.load(Ordering::Relaxed))
                        .filter(|&n| n != UNSET),
                    round_ms: last.map(millis),
                    planned_round_ms: e.planned_round().map(millis),
                    budget_ms: e.budget.map(|b| b.as_millis() as u64),
                    utilisation: e.utilisation(),
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

impl EndpointRow {
    /// Duration of the last poll round, once there was one.
    pub(super) fn last_round(&self) -> Option<Duration> {
        duration(self.last_round_nanos.load(Ordering::Relaxed))
    }

    /// Wire time of one planned round, when planned with a wire model.
    pub(super) fn planned_round(&self) -> Option<Duration> {
        duration(self.planned_round_nanos.load(Ordering::Relaxed))
    }

    /// Last measured round / budget.
    pub(super) fn utilisation(&self) -> Option<f64> {
        let (round, budget) = (self.last_round()?, self.budget?);
        (!budget.is_zero()).then(|| round.as_secs_f64() / budget.as_secs_f64())
    }
}

/// A stored nanosecond count as a duration; `None` for [`UNSET`].
fn duration(nanos: u64) -> Option<Duration> {
    (nanos != UNSET).then(|| Duration::from_nanos(nanos))
}

/// A duration in milliseconds, rounded to the microsecond (a planned wire
/// time of 149.999994 ms is 150 ms, as `check-config` prints it).
fn millis(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0).round() / 1000.0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointId;

    #[test]
    fn endpoint_rounds_planned_and_measured() {
        let main = "[gateway]\nid = \"gw\"\n\n[[endpoints]]\nid = \"rs485\"\n\
                    transport = \"rtu_over_tcp\"\nhost = \"127.0.0.1\"\n\n\
                    [[endpoints]]\nid = \"idle\"\nhost = \"127.0.0.1\"\n";
        let site = "[site]\nid = \"s\"\nname = \"S\"\n\n[[meters]]\nid = \"m1\"\n\
                    energy = \"water\"\nlevel = 1\nprofile = \"water_meter\"\n\
                    endpoint = \"rs485\"\nunit_id = 1\npoll_interval_secs = 4\n\n\
                    [[meters]]\nid = \"m2\"\nenergy = \"water\"\nlevel = 2\n\
                    profile = \"water_meter\"\nendpoint = \"rs485\"\nunit_id = 2\n\
                    poll_interval_secs = 2\n";
        let config =
            crate::config::from_parts(main, &[("s.toml", site)], crate::profiles::load::builtin())
                .unwrap_or_else(|e| panic!("{e}"));
        let board = StatusBoard::new(&config);
        let before = board.endpoints();
        assert_eq!(
            before[0],
            EndpointSnapshot {
                id: "rs485".into(),
                transport: "rtu_over_tcp".into(),
                meters: 2,
                requests: None,
                round_ms: None,
                planned_round_ms: None,
                budget_ms: Some(2000),
                utilisation: None,
            }
        );
        assert_eq!((before[1].meters, before[1].budget_ms), (0, None));
        board.set_planned_round(EndpointId(0), 2, Some(Duration::from_nanos(49_999_994)));
        board.round_done(EndpointId(0), Duration::from_millis(500));
        let after = &board.endpoints()[0];
        assert_eq!(after.requests, Some(2));
        assert_eq!(after.planned_round_ms, Some(50.0));
        assert_eq!(after.round_ms, Some(500.0));
        assert_eq!(after.utilisation, Some(0.25));
    }
}
