//! Process-wide counters: one place that both the progress display and (later)
//! the metrics endpoint read. Plain atomics, so every component can count
//! without locks or allocation on the hot path.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters shared by every component of a running gateway.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent to meters.
    pub requests: AtomicU64,
    /// Requests answered with data.
    pub requests_ok: AtomicU64,
    /// Requests that timed out or lost the link.
    pub requests_timeout: AtomicU64,
    /// Requests answered with a Modbus exception.
    pub requests_exception: AtomicU64,
    /// Merged reads split after an exception, to learn what the device accepts.
    pub reads_split: AtomicU64,
    /// Readings produced (one per meter per slot).
    pub readings: AtomicU64,
    /// Point values produced.
    pub points: AtomicU64,
    /// Point values with a non-zero quality after validation.
    pub points_flagged: AtomicU64,
    /// Slots that started late because the previous poll round overran.
    pub overruns: AtomicU64,
    /// Slots skipped entirely because a round took longer than its interval.
    pub missed_slots: AtomicU64,
    /// Point values flagged per quality bit (order of [`crate::model::Quality::REASONS`]).
    pub quality_counts: [AtomicU64; 12],
    /// Poll rounds whose readings had to wait for room downstream.
    pub pipeline_stalls: AtomicU64,
    /// Lines given up at shutdown because the spool stayed full (`block`).
    pub lines_not_spooled: AtomicU64,
    /// Answers that failed a check, per detail (order of [`crate::model::Detail::NAMES`]).
    pub answers_rejected: [AtomicU64; 20],
    /// Bytes discarded on field-bus links: stale before a request, garbage
    /// around frames.
    pub bus_bytes_dropped: AtomicU64,
    /// DTU heartbeats and per-packet registrations stripped from the byte stream.
    pub dtu_packets_stripped: AtomicU64,
    /// DTU connections that registered.
    pub dtu_connections: AtomicU64,
    /// DTU connections replaced by a newer one with the same registration.
    pub dtu_replaced: AtomicU64,
    /// Connections closed for an unknown registration.
    pub dtu_unknown_registrations: AtomicU64,
    /// Connections closed for sending nothing within the registration timeout.
    pub dtu_registration_timeouts: AtomicU64,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connection attempts or links that failed.
    pub connect_failures: AtomicU64,
    /// Meters whose last poll answered.
    pub meters_up: AtomicI64,
    /// Lines the destination acknowledged.
    pub lines_written: AtomicU64,
    /// Lines appended to the spool.
    pub lines_spooled: AtomicU64,
    /// Unacknowledged records in the spool (updated after appends and acks).
    pub spool_records: AtomicU64,
    /// Unacknowledged bytes in the spool.
    pub spool_bytes: AtomicU64,
    /// Age of the oldest unacknowledged spool record, seconds (0 when empty).
    pub spool_oldest_age_secs: AtomicU64,
    /// Times the pipeline waited because the spool was full (`block` policy).
    pub spool_full_waits: AtomicU64,
    /// Lines dropped from a full spool (`drop_oldest` policy), all sites.
    pub lines_dropped: AtomicU64,
    /// Lines dropped from a full spool, per site id.
    pub lines_dropped_by_site: Mutex<BTreeMap<String, u64>>,
    /// Lines the destination rejected permanently.
    pub lines_rejected: AtomicU64,
    /// Write requests sent.
    pub write_requests: AtomicU64,
    /// Write requests that failed and will be retried.
    pub write_retries: AtomicU64,
    /// Meter windows (consumption and gauge statistics) written.
    pub windows_emitted: AtomicU64,
    /// Meter windows written again after a late reading changed them.
    pub windows_reemitted: AtomicU64,
    /// Site roll-up points written (each contribution rewrites its window).
    pub site_windows_emitted: AtomicU64,
    /// Late readings taken into their windows.
    pub late_accepted: AtomicU64,
    /// Readings too late for their windows (flagged `time`), late repeats
    /// (`duplicate`) and late counters outside their neighbours
    /// (`backwards`).
    pub late_rejected: AtomicU64,
    /// Final meter windows that came after their site window was closed.
    pub site_too_late: AtomicU64,
    /// Steam windows whose temperature was far below saturation (sensor
    /// suspect; priced as saturated steam and marked estimated).
    pub steam_suspect: AtomicU64,
    /// MQTT messages received (all brokers, before decoding).
    pub mqtt_messages: AtomicU64,
    /// Readings decoded from MQTT messages.
    pub mqtt_readings: AtomicU64,
    /// MQTT messages rejected (all reasons).
    pub mqtt_rejected: AtomicU64,
    /// MQTT messages rejected, per reason (`too_large`, `malformed`, …).
    pub mqtt_rejected_by_reason: Mutex<BTreeMap<&'static str, u64>>,
    /// MQTT messages rejected, per `meter:reason` (meter `?` when unknown).
    pub mqtt_rejected_by_meter: Mutex<BTreeMap<String, u64>>,
    /// QoS 1/2 messages acknowledged to the broker (after spooling, or
    /// after rejection).
    pub mqtt_acked: AtomicU64,
    /// Connections to brokers established (CONNACK accepted).
    pub mqtt_connects: AtomicU64,
    /// Broker connections lost or refused.
    pub mqtt_disconnects: AtomicU64,
    /// Subscription filters the brokers accepted (every SUBACK counts).
    pub mqtt_subscriptions: AtomicU64,
}

impl Stats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl Stats {
    /// Logs every counter at info level (periodically, and once at shutdown).
    pub fn log(&self, what: &str) {
        tracing::info!(
            requests = Stats::get(&self.requests),
            requests_ok = Stats::get(&self.requests_ok),
            timeouts = Stats::get(&self.requests_timeout),
            exceptions = Stats::get(&self.requests_exception),
            reads_split = Stats::get(&self.reads_split),
            readings = Stats::get(&self.readings),
            points = Stats::get(&self.points),
            points_flagged = Stats::get(&self.points_flagged),
            overruns = Stats::get(&self.overruns),
            missed_slots = Stats::get(&self.missed_slots),
            pipeline_stalls = Stats::get(&self.pipeline_stalls),
            lines_not_spooled = Stats::get(&self.lines_not_spooled),
            meters_up = self.meters_up.load(Ordering::Relaxed),
            connect_failures = Stats::get(&self.connect_failures),
            lines_spooled = Stats::get(&self.lines_spooled),
            lines_written = Stats::get(&self.lines_written),
            spool_records = Stats::get(&self.spool_records),
            spool_bytes = Stats::get(&self.spool_bytes),
            spool_full_waits = Stats::get(&self.spool_full_waits),
            lines_dropped = Stats::get(&self.lines_dropped),
            lines_rejected = Stats::get(&self.lines_rejected),
            write_retries = Stats::get(&self.write_retries),
            windows_emitted = Stats::get(&self.windows_emitted),
            windows_reemitted = Stats::get(&self.windows_reemitted),
            late_accepted = Stats::get(&self.late_accepted),
            late_rejected = Stats::get(&self.late_rejected),
            flagged_by_reason = %self.reason_summary(),
            mqtt_messages = Stats::get(&self.mqtt_messages),
            mqtt_readings = Stats::get(&self.mqtt_readings),
            mqtt_rejected = Stats::get(&self.mqtt_rejected),
            mqtt_rejected_by_reason = ?self.mqtt_rejections_by_reason(),
            mqtt_rejected_by_meter = ?self.mqtt_rejections_by_meter(),
            mqtt_acked = Stats::get(&self.mqtt_acked),
            mqtt_connects = Stats::get(&self.mqtt_connects),
            mqtt_disconnects = Stats::get(&self.mqtt_disconnects),
            mqtt_subscriptions = Stats::get(&self.mqtt_subscriptions),
            "{what}"
        );
    }
}

impl Stats {
    /// `reason=count` for every quality bit seen so far, e.g. `range=3 backwards=1`.
    #[must_use]
    pub fn reason_summary(&self) -> String {
        let mut out = String::new();
        for ((_, word), count) in crate::model::Quality::REASONS
            .iter()
            .zip(&self.quality_counts)
        {
            let n = count.load(Ordering::Relaxed);
            if n > 0 {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
                out.push('=');
                out.push_str(&n.to_string());
            }
        }
        if out.is_empty() {
            out.push_str("none");
        }
        out
    }

    /// Refreshes the spool gauges from `spool`.
    pub fn update_spool(&self, spool: &crate::spool::Spool) {
        let s = spool.stats();
        self.spool_records.store(s.records, Ordering::Relaxed);
        self.spool_bytes.store(s.bytes, Ordering::Relaxed);
        self.spool_oldest_age_secs.store(
            s.oldest_unacked_age.map_or(0, |d| d.as_secs()),
            Ordering::Relaxed,
        );
    }

    /// Counts the lines of a record dropped from a full spool, per site
    /// (the `site` tag of each `reading` line).
    pub fn count_dropped(&self, record: &[u8]) {
        let mut by_site = self
            .lines_dropped_by_site
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut n = 0;
        for line in record.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            n += 1;
            let site = site_of_line(line).unwrap_or("?");
            *by_site.entry(site.to_owned()).or_default() += 1;
        }
        self.lines_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Lines dropped per site so far.
    #[must_use]
    pub fn dropped_by_site(&self) -> BTreeMap<String, u64> {
        self.lines_dropped_by_site
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Stats {
    /// Counts one rejected MQTT message under `reason` and `meter:reason`
    /// (`meter` is `?` when the message named no configured meter).
    pub fn count_mqtt_rejection(&self, reason: &'static str, meter: &str) {
        self.mqtt_rejected.fetch_add(1, Ordering::Relaxed);
        *self
            .mqtt_rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
        // Rejections are the exception, not the hot path: a key per count is fine.
        *self
            .mqtt_rejected_by_meter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{meter}:{reason}"))
            .or_default() += 1;
    }

    /// Rejected MQTT messages per reason so far.
    #[must_use]
    pub fn mqtt_rejections_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.mqtt_rejected_by_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rejected MQTT messages per `meter:reason` so far.
    #[must_use]
    pub fn mqtt_rejections_by_meter(&self) -> BTreeMap<String, u64> {
        self.mqtt_rejected_by_meter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The value of the `site` tag of a line-protocol line (site ids are ASCII
/// without spaces or commas, so no unescaping is needed).
fn site_of_line(line: &[u8]) -> Option<&str> {
    let series_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let series = std::str::from_utf8(&line[..series_end]).ok()?;
    series.split(',').find_map(|tag| tag.strip_prefix("site="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_lines_are_counted_per_site() {
        let s = Stats::default();
        s.count_dropped(b"reading,energy=water,level=1,meter=m1,site=A q=0i 1\nreading,energy=water,level=1,meter=m2,site=B q=0i 1\nreading,meter=m3,site=A q=0i 2\n");
        assert_eq!(Stats::get(&s.lines_dropped), 3);
        let by_site = s.dropped_by_site();
        assert_eq!(by_site.get("A"), Some(&2));
        assert_eq!(by_site.get("B"), Some(&1));
    }

    #[test]
    fn mqtt_rejections_are_counted_per_reason_and_meter() {
        let s = Stats::default();
        s.count_mqtt_rejection("malformed", "m1");
        s.count_mqtt_rejection("malformed", "m1");
        s.count_mqtt_rejection("malformed", "?");
        s.count_mqtt_rejection("bad_timestamp", "m1");
        assert_eq!(Stats::get(&s.mqtt_rejected), 4);
        let by_reason = s.mqtt_rejections_by_reason();
        assert_eq!(by_reason.get("malformed"), Some(&3));
        assert_eq!(by_reason.get("bad_timestamp"), Some(&1));
        let by_meter = s.mqtt_rejections_by_meter();
        assert_eq!(by_meter.get("m1:malformed"), Some(&2));
        assert_eq!(by_meter.get("?:malformed"), Some(&1));
        assert_eq!(by_meter.get("m1:bad_timestamp"), Some(&1));
        assert_eq!(by_meter.len(), 3);
    }
}
