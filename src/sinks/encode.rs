//! Readings to `reading` lines, as SCHEMA.md defines them.
//!
//! Everything that depends only on the configuration (the escaped series
//! prefix `reading,energy=…,level=…,meter=…,site=…` of every meter, the
//! escaped field keys of every profile) is built once in
//! [`ReadingEncoder::new`]; encoding a reading then only copies bytes and
//! formats numbers into the caller's reused buffer.
//!
//! A point without a value (timeout, exception, sentinel) has no field in
//! the line: line protocol cannot carry NaN, and inventing a number is worse.
//! Its absence is explained by `q` and `q_detail` (`point:reason`, and
//! `point:reason:detail` when a source knows more, e.g. `wrong_count`). Every reading has at
//! least the `q` and `lag_ms` fields, so a slot in which a meter did not
//! answer is still visible as a point with `q = 1`.

use crate::config::Config;
use crate::model::{Quality, ReadingBatch};
use crate::sinks::LineChunk;
use crate::sinks::lineproto::{LineBuilder, field_key, series_prefix};

/// The measurement readings are written to.
pub const READING_MEASUREMENT: &str = "reading";

/// Encodes reading batches of one configuration.
#[derive(Debug, Clone)]
pub struct ReadingEncoder {
    /// Escaped series prefix per meter, indexed by `MeterId`.
    prefixes: Vec<Vec<u8>>,
    /// Escaped field keys per profile and point, indexed by `ProfileId`.
    field_keys: Vec<Vec<Vec<u8>>>,
    /// Point names per profile (for `q_detail`), indexed by `ProfileId`.
    point_names: Vec<Vec<String>>,
    /// Profile index per meter.
    meter_profile: Vec<usize>,
    /// Scratch for `q_detail`, reused across readings.
    detail: String,
}

impl ReadingEncoder {
    /// Prepares the prefixes and keys of every meter and profile in `config`.
    #[must_use]
    pub fn new(config: &Config) -> ReadingEncoder {
        let prefixes = config
            .meters
            .iter()
            .map(|m| {
                series_prefix(
                    READING_MEASUREMENT,
                    &[
                        ("site", config.sites[m.site.index()].id.as_str()),
                        ("meter", m.id.as_str()),
                        ("energy", m.energy.as_str()),
                        ("level", m.level.as_str()),
                    ],
                )
            })
            .collect();
        let field_keys = config
            .profiles
            .iter()
            .map(|p| p.points.iter().map(|pt| field_key(&pt.name)).collect())
            .collect();
        let point_names = config
            .profiles
            .iter()
            .map(|p| p.points.iter().map(|pt| pt.name.clone()).collect())
            .collect();
        let meter_profile = config.meters.iter().map(|m| m.profile.index()).collect();
        ReadingEncoder {
            prefixes,
            field_keys,
            point_names,
            meter_profile,
            detail: String::with_capacity(256),
        }
    }

    /// Appends one line per reading of `batch` to `out`.
    pub fn encode(&mut self, batch: &ReadingBatch, out: &mut LineChunk) {
        for reading in &batch.readings {
            let meter = reading.meter.index();
            let profile = self.meter_profile[meter];
            let keys = &self.field_keys[profile];
            let names = &self.point_names[profile];
            let values = batch.values_of(reading);
            let mut q = Quality::GOOD;
            self.detail.clear();
            let mut line = LineBuilder::new(&mut out.body, &self.prefixes[meter]);
            for (i, v) in values.iter().enumerate() {
                if v.value.is_finite() {
                    line.f64(&keys[i], v.value);
                }
                if !v.quality.is_good() {
                    q |= v.quality;
                    // The detail belongs to the bit a source set (timeout
                    // or exception); validation bits carry none.
                    let detail = v.detail.name();
                    for (bit, reason) in Quality::REASONS {
                        if !v.quality.contains(bit) {
                            continue;
                        }
                        if !self.detail.is_empty() {
                            self.detail.push(',');
                        }
                        self.detail.push_str(&names[i]);
                        self.detail.push(':');
                        self.detail.push_str(reason);
                        if let Some(d) = detail
                            && (bit == Quality::TIMEOUT || bit == Quality::EXCEPTION)
                        {
                            self.detail.push(':');
                            self.detail.push_str(d);
                        }
                    }
                }
            }
            line.i64(b"q", i64::from(q.0));
            if !q.is_good() {
                line.string(b"q_detail", &self.detail);
            }
            line.i64(b"lag_ms", reading.lag_ms);
            if line.finish(reading.slot) {
                out.lines += 1;
            }
        }
    }
}
