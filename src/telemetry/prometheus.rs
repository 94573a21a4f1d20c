//! Prometheus text exposition of the status board and the process totals
//! (`GET /metrics`): one place that names every metric, its help and type.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Stats;
use super::board::{EndpointCounter, Histogram, NONE, STATUS_CLASSES, StatusBoard, lock};
use crate::clock::now_ms;
use crate::model::{Detail, Quality};
use crate::pipeline::boiler::OutOfLimit;

impl StatusBoard {
    /// Appends every metric in the Prometheus text exposition format 0.0.4.
    ///
    /// Cardinality is bounded by the configuration: per-endpoint series
    /// (label `endpoint`), per-meter series (labels `meter`, `site`; flagged
    /// points add `reason`, one of the 12 quality reasons, so at most
    /// meters × 12 of those), per-site series (label `site`). There is no
    /// per-point label: point-level detail lives in InfluxDB, not here.
    /// Labelled counters of reasons appear once they are non-zero.
    pub fn render_metrics(&self, stats: &Stats, out: &mut String) {
        let now_ms = now_ms();
        let now = now_ms.div_euclid(1000);
        let mut w = Exposition { out };

        // Who this is: several gateways (shards) are scraped side by side.
        let (id, k, n) = &self.gateway;
        let (shard, index, count) = (format!("{k}/{n}"), k.to_string(), n.to_string());
        w.header(
            "emgate_gateway_info",
            "This gateway: its id and its shard of the sites (shard K of N; 0/1 when not sharded).",
            "gauge",
        );
        w.sample(
            "emgate_gateway_info",
            &[
                ("gateway", id),
                ("shard", &shard),
                ("shard_index", &index),
                ("shard_count", &count),
            ],
            1,
        );

        // Modbus, per endpoint.
        let ep_counters: [(&str, &str, EndpointCounter); 6] = [
            (
                "emgate_modbus_polls_total",
                "Meter polls (all reads of one meter for one slot).",
                |e| &e.polls,
            ),
            (
                "emgate_modbus_responses_total",
                "Meter polls the device answered (data or exception).",
                |e| &e.responses,
            ),
            (
                "emgate_modbus_timeouts_total",
                "Meter polls without an answer (timeout, lost link, no connection).",
                |e| &e.timeouts,
            ),
            (
                "emgate_modbus_exceptions_total",
                "Meter polls answered with a Modbus exception.",
                |e| &e.exceptions,
            ),
            (
                "emgate_modbus_protocol_errors_total",
                "Meter polls answered with garbage.",
                |e| &e.protocol_errors,
            ),
            (
                "emgate_modbus_overruns_total",
                "Poll slots that started late because the previous round overran.",
                |e| &e.overruns,
            ),
        ];
        for (name, help, get) in ep_counters {
            w.header(name, help, "counter");
            for e in &self.endpoints {
                w.sample(name, &[("endpoint", &e.id)], get(e).load(Ordering::Relaxed));
            }
        }
        let name = "emgate_modbus_backoff";
        w.header(name, "1 while the endpoint waits to reconnect.", "gauge");
        for e in &self.endpoints {
            let until = e.backoff_until_ms.load(Ordering::Relaxed);
            w.sample(
                name,
                &[("endpoint", &e.id)],
                u64::from(until != NONE && until > now_ms),
            );
        }
        let name = "emgate_modbus_poll_duration_seconds";
        w.header(name, "Time to poll one meter (all its reads).", "histogram");
        for e in &self.endpoints {
            w.histogram(name, &[("endpoint", &e.id)], &e.latency);
        }
        // Bus timing, per endpoint: samples once known.
        let name = "emgate_bus_round_seconds";
        w.header(
            name,
            "Duration of the endpoint's last poll round (every meter that was due).",
            "gauge",
        );
        for e in &self.endpoints {
            if let Some(round) = e.last_round() {
                w.sample_f64(name, &[("endpoint", &e.id)], round.as_secs_f64());
            }
        }
        let name = "emgate_bus_planned_round_seconds";
        w.header(
            name,
            "Wire time of one poll round as planned (serial-framed endpoints).",
            "gauge",
        );
        for e in &self.endpoints {
            if let Some(round) = e.planned_round() {
                w.sample_f64(name, &[("endpoint", &e.id)], round.as_secs_f64());
            }
        }
        let name = "emgate_bus_utilisation";
        w.header(
            name,
            "Last poll round over the shortest poll interval of the endpoint's meters (above 1: slots are missed).",
            "gauge",
        );
        for e in &self.endpoints {
            if let Some(u) = e.utilisation() {
                w.sample_f64(name, &[("endpoint", &e.id)], u);
            }
        }
        let global: [(&str, &str, &AtomicU64); 6] = [
            (
                "emgate_modbus_requests_total",
                "Modbus requests sent.",
                &stats.requests,
            ),
            (
                "emgate_modbus_reads_split_total",
                "Merged reads split after an exception.",
                &stats.reads_split,
            ),
            (
                "emgate_modbus_missed_slots_total",
                "Poll slots skipped because a round took longer than its interval.",
                &stats.missed_slots,
            ),
            (
                "emgate_modbus_connects_total",
                "Modbus connections established.",
                &stats.connects,
            ),
            (
                "emgate_modbus_connect_failures_total",
                "Modbus connection attempts or links that failed.",
                &stats.connect_failures,
            ),
            (
                "emgate_pipeline_stalls_total",
                "Poll rounds that waited for room downstream.",
                &stats.pipeline_stalls,
            ),
        ];
        for (name, help, c) in global {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        // Meters.
        let name = "emgate_meter_readings_total";
        w.header(name, "Readings of the meter after validation.", "counter");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                m.readings.load(Ordering::Relaxed),
            );
        }
        let name = "emgate_meter_points_total";
        w.header(
            name,
            "Point values of the meter after validation.",
            "counter",
        );
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                m.points.load(Ordering::Relaxed),
            );
        }
        let name = "emgate_meter_points_flagged_total";
        w.header(
            name,
            "Point values of the meter flagged, per quality reason.",
            "counter",
        );
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            for ((_, reason), c) in Quality::REASONS.iter().zip(&m.flagged) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    w.sample(
                        name,
                        &[("meter", &m.id), ("site", site), ("reason", reason)],
                        n,
                    );
                }
            }
        }
        let name = "emgate_meter_up";
        w.header(name, "1 when the meter's state is up.", "gauge");
        for (i, m) in self.meters.iter().enumerate() {
            let site = &self.sites[m.site].id;
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                u64::from(self.state(i, now) == "up"),
            );
        }
        let name = "emgate_meter_consecutive_failures";
        w.header(name, "Failed polls of the meter in a row.", "gauge");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            let n = lock(&m.dynamic).consecutive_failures;
            w.sample(name, &[("meter", &m.id), ("site", site)], u64::from(n));
        }
        let name = "emgate_meter_calibration_overdue";
        w.header(name, "1 when the meter's verification is overdue.", "gauge");
        for m in &self.meters {
            let site = &self.sites[m.site].id;
            let overdue = m.calibration_due.as_ref().is_some_and(|(_, at)| now >= *at);
            w.sample(
                name,
                &[("meter", &m.id), ("site", site)],
                u64::from(overdue),
            );
        }
        let (up, down, bad, unknown) = self.state_counts(now);
        let name = "emgate_meters";
        w.header(name, "Meters per state.", "gauge");
        for (state, n) in [
            ("up", up),
            ("down", down),
            ("bad", bad),
            ("unknown", unknown),
        ] {
            w.sample(name, &[("state", state)], u64::from(n));
        }

        // Sites.
        let name = "emgate_site_completeness_ratio";
        w.header(
            name,
            "Share of today's quarter-hour slots (site time zone) with a reading, all meters.",
            "gauge",
        );
        for s in &self.sites {
            w.sample_f64(name, &[("site", &s.id)], self.completeness(s, now));
        }

        // Pipeline totals.
        let totals: [(&str, &str, &AtomicU64); 3] = [
            (
                "emgate_readings_total",
                "Readings produced by all sources.",
                &stats.readings,
            ),
            (
                "emgate_points_total",
                "Point values produced by all sources.",
                &stats.points,
            ),
            (
                "emgate_points_flagged_any_total",
                "Point values with any quality bit after validation.",
                &stats.points_flagged,
            ),
        ];
        for (name, help, c) in totals {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }
        let name = "emgate_points_flagged_total";
        w.header(
            name,
            "Point values flagged after validation, per quality reason.",
            "counter",
        );
        for ((_, reason), c) in Quality::REASONS.iter().zip(&stats.quality_counts) {
            w.sample(name, &[("reason", reason)], Stats::get(c));
        }

        // Field buses.
        let name = "emgate_modbus_answers_rejected_total";
        w.header(
            name,
            "Answers that failed a check (no value was taken from them), per check.",
            "counter",
        );
        for ((_, reason), c) in Detail::NAMES.iter().zip(&stats.answers_rejected) {
            // Failed checks only: not a wire that was down, not a
            // meter's own error answer.
            if *reason != "not_connected" && !reason.starts_with("dlt645:") {
                w.sample(name, &[("reason", reason)], Stats::get(c));
            }
        }
        let bus: [(&str, &str, &AtomicU64); 5] = [
            (
                "emgate_bus_bytes_dropped_total",
                "Bytes discarded on field-bus links: stale before a request, garbage around frames.",
                &stats.bus_bytes_dropped,
            ),
            (
                "emgate_dtu_packets_stripped_total",
                "DTU heartbeats and per-packet registrations stripped between frames.",
                &stats.dtu_packets_stripped,
            ),
            (
                "emgate_dtu_connections_total",
                "DTU connections that registered.",
                &stats.dtu_connections,
            ),
            (
                "emgate_dtu_replaced_total",
                "DTU connections replaced by a newer one with the same registration.",
                &stats.dtu_replaced,
            ),
            (
                "emgate_dtu_registration_timeouts_total",
                "Connections closed for sending nothing within the registration timeout.",
                &stats.dtu_registration_timeouts,
            ),
        ];
        for (name, help, c) in bus {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }
        let name = "emgate_dtu_rejected_total";
        w.header(
            name,
            "DTU connections closed before registering, per reason.",
            "counter",
        );
        w.sample(
            name,
            &[("reason", "unknown_registration")],
            Stats::get(&stats.dtu_unknown_registrations),
        );
        w.sample(
            name,
            &[("reason", "no_registration")],
            Stats::get(&stats.dtu_registration_timeouts),
        );

        // MQTT.
        let mqtt: [(&str, &str, &AtomicU64); 6] = [
            (
                "emgate_mqtt_messages_received_total",
                "MQTT messages received (before decoding).",
                &stats.mqtt_messages,
            ),
            (
                "emgate_mqtt_readings_total",
                "Readings decoded from MQTT messages.",
                &stats.mqtt_readings,
            ),
            (
                "emgate_mqtt_messages_acked_total",
                "QoS 1/2 messages acknowledged to the broker.",
                &stats.mqtt_acked,
            ),
            (
                "emgate_mqtt_connects_total",
                "Broker connections established.",
                &stats.mqtt_connects,
            ),
            (
                "emgate_mqtt_disconnects_total",
                "Broker connections lost or refused.",
                &stats.mqtt_disconnects,
            ),
            (
                "emgate_mqtt_subscriptions_total",
                "Subscriptions the brokers accepted.",
                &stats.mqtt_subscriptions,
            ),
        ];
        for (name, help, c) in mqtt {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }
        let name = "emgate_mqtt_messages_rejected_total";
        w.header(name, "MQTT messages rejected, per reason.", "counter");
        for (reason, n) in stats.mqtt_rejections_by_reason() {
            w.sample(name, &[("reason", reason)], n);
        }

        // Aggregation.
        let agg: [(&str, &str, &AtomicU64); 7] = [
            (
                "emgate_windows_emitted_total",
                "Meter windows written.",
                &stats.windows_emitted,
            ),
            (
                "emgate_windows_reemitted_total",
                "Meter windows written again after a late reading changed them.",
                &stats.windows_reemitted,
            ),
            (
                "emgate_site_windows_emitted_total",
                "Site roll-up points written.",
                &stats.site_windows_emitted,
            ),
            (
                "emgate_late_readings_accepted_total",
                "Late readings taken into their windows.",
                &stats.late_accepted,
            ),
            (
                "emgate_late_readings_rejected_total",
                "Readings too late for their windows, late repeats and late counters out of order.",
                &stats.late_rejected,
            ),
            (
                "emgate_site_windows_too_late_total",
                "Final meter windows that came after their site window closed.",
                &stats.site_too_late,
            ),
            (
                "emgate_steam_temperature_suspect_total",
                "Steam windows whose temperature contradicts their state (far below saturation): priced as saturated steam, estimated.",
                &stats.steam_suspect,
            ),
        ];
        for (name, help, c) in agg {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        self.render_boiler_metrics(&mut w);

        // Spool.
        let gauges: [(&str, &str, u64); 4] = [
            (
                "emgate_spool_bytes",
                "Unacknowledged bytes in the spool.",
                Stats::get(&stats.spool_bytes),
            ),
            (
                "emgate_spool_max_bytes",
                "Configured spool size limit.",
                self.spool_max_bytes,
            ),
            (
                "emgate_spool_records",
                "Unacknowledged records in the spool.",
                Stats::get(&stats.spool_records),
            ),
            (
                "emgate_spool_oldest_record_age_seconds",
                "Age of the oldest unacknowledged record (0 when empty).",
                Stats::get(&stats.spool_oldest_age_secs),
            ),
        ];
        for (name, help, v) in gauges {
            w.header(name, help, "gauge");
            w.sample(name, &[], v);
        }
        let spool: [(&str, &str, &AtomicU64); 4] = [
            (
                "emgate_spool_lines_appended_total",
                "Lines appended to the spool.",
                &stats.lines_spooled,
            ),
            (
                "emgate_spool_full_waits_total",
                "Times the pipeline waited for a full spool (block policy).",
                &stats.spool_full_waits,
            ),
            (
                "emgate_spool_dropped_lines_total",
                "Lines dropped from a full spool (drop_oldest policy).",
                &stats.lines_dropped,
            ),
            (
                "emgate_spool_lines_not_spooled_total",
                "Lines given up at shutdown because the spool stayed full.",
                &stats.lines_not_spooled,
            ),
        ];
        for (name, help, c) in spool {
            w.header(name, help, "counter");
            w.sample(name, &[], Stats::get(c));
        }

        // InfluxDB (or the file output).
        let name = "emgate_influx_requests_total";
        w.header(
            name,
            "Write requests, per HTTP status class (error: no answer).",
            "counter",
        );
        for (class, c) in STATUS_CLASSES.iter().zip(&self.influx_requests) {
            w.sample(name, &[("status", class)], c.load(Ordering::Relaxed));
        }
        let name = "emgate_influx_request_duration_seconds";
        w.header(name, "Duration of write requests.", "histogram");
        w.histogram(name, &[], &self.influx_latency);
        let out: [(&str, &str, u64); 4] = [
            (
                "emgate_influx_lines_sent_total",
                "Lines sent in write requests (retries included).",
                self.influx_lines.load(Ordering::Relaxed),
            ),
            (
                "emgate_influx_points_written_total",
                "Lines the output acknowledged.",
                Stats::get(&stats.lines_written),
            ),
            (
                "emgate_influx_retries_total",
                "Write requests that failed and were retried.",
                Stats::get(&stats.write_retries),
            ),
            (
                "emgate_influx_dead_lettered_lines_total",
                "Lines the output rejected for good (in the dead-letter file).",
                Stats::get(&stats.lines_rejected),
            ),
        ];
        for (name, help, v) in out {
            w.header(name, help, "counter");
            w.sample(name, &[], v);
        }
        let name = "emgate_influx_reachable";
        w.header(
            name,
            "1 when the output answered its last request.",
            "gauge",
        );
        w.sample(name, &[], u64::from(self.sink_reachable()));
        let name = "emgate_ready";
        w.header(name, "1 when the gateway is ready (see /ready).", "gauge");
        w.sample(name, &[], u64::from(self.readiness(stats).ready));
    }
}

impl StatusBoard {
    /// Boilers: windows per state, out-of-limit windows per item,
    /// disagreeing windows (one series per boiler; families without
    /// boilers have no sample).
    fn render_boiler_metrics(&self, w: &mut Exposition<'_>) {
        let name = "emgate_boiler_windows_total";
        w.header(
            name,
            "Boiler windows written, by the state of their first writing.",
            "counter",
        );
        for b in &self.boilers {
            for (state, c) in ["running", "off", "partial"].iter().zip(&b.windows) {
                w.sample(
                    name,
                    &[("boiler", &b.id), ("state", state)],
                    c.load(Ordering::Relaxed),
                );
            }
        }
        let name = "emgate_boiler_windows_reemitted_total";
        w.header(
            name,
            "Boiler windows written again after a later input.",
            "counter",
        );
        for b in &self.boilers {
            w.sample(
                name,
                &[("boiler", &b.id)],
                b.reemitted.load(Ordering::Relaxed),
            );
        }
        let name = "emgate_boiler_out_of_limit_total";
        w.header(
            name,
            "Boiler windows beyond a limit, per item (efficiency, exhaust_c, alpha).",
            "counter",
        );
        for b in &self.boilers {
            for ((_, item), c) in OutOfLimit::NAMES.iter().zip(&b.out_of_limit) {
                w.sample(
                    name,
                    &[("boiler", &b.id), ("item", item)],
                    c.load(Ordering::Relaxed),
                );
            }
        }
        let name = "emgate_boiler_methods_disagree_total";
        w.header(
            name,
            "Boiler windows whose direct and indirect efficiencies differ by more than the boiler's margin.",
            "counter",
        );
        for b in &self.boilers {
            w.sample(
                name,
                &[("boiler", &b.id)],
                b.disagreements.load(Ordering::Relaxed),
            );
        }
    }
}

/// Writes exposition lines into a `String` (writing to a `String` cannot fail).
struct Exposition<'a> {
    out: &'a mut String,
}

impl Exposition<'_> {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
        if labels.is_empty() && extra.is_none() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().copied().chain(extra).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(("le", &le)));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(self.out, " {sum}");
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn labels_are_escaped_and_histograms_cumulate() {
        let mut out = String::new();
        let mut w = Exposition { out: &mut out };
        w.header("emgate_x_total", "Help.", "counter");
        w.sample("emgate_x_total", &[("a", "q\"b\\c\nd"), ("b", "2")], 7);
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(3));
        w.header("emgate_d_seconds", "Durations.", "histogram");
        w.histogram("emgate_d_seconds", &[("endpoint", "e")], &h);
        assert_eq!(
            out,
            "# HELP emgate_x_total Help.\n\
             # TYPE emgate_x_total counter\n\
             emgate_x_total{a=\"q\\\"b\\\\c\\nd\",b=\"2\"} 7\n\
             # HELP emgate_d_seconds Durations.\n\
             # TYPE emgate_d_seconds histogram\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"0.1\"} 1\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"1\"} 2\n\
             emgate_d_seconds_bucket{endpoint=\"e\",le=\"+Inf\"} 3\n\
             emgate_d_seconds_sum{endpoint=\"e\"} 3.55\n\
             emgate_d_seconds_count{endpoint=\"e\"} 3\n"
        );
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let config = crate::config::load_str_for_tests("[gateway]\nid = \"gw\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let board = StatusBoard::new(&config);
        let mut out = String::new();
        board.render_metrics(&Stats::default(), &mut out);
        let mut families = std::collections::BTreeMap::<&str, (u32, u32)>::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                families
                    .entry(rest.split(' ').next().unwrap_or(""))
                    .or_default()
                    .0 += 1;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                families
                    .entry(rest.split(' ').next().unwrap_or(""))
                    .or_default()
                    .1 += 1;
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap_or_default();
                assert!(series.starts_with("emgate_"), "{line}");
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(families.len() > 40, "{}", families.len());
        for (name, counts) in families {
            assert_eq!(counts, (1, 1), "{name}");
        }
    }
}
