//! The validator's checkpoint: per-meter state as bytes and back, so a
//! restart neither re-flags a reading nor loses a rollover. Framed by the
//! shared [`crate::checkpoint`] envelope.
//!
//! # Versions
//! * 1 (before the envelope only): no baseline slot per point.
//! * 2: adds the slot each counter baseline was set at. Written before the
//!   envelope as `[magic][version][meter count: u32][meters][crc]`, now in the
//!   envelope, whose body length replaces the count: the meters run to the
//!   end of the body.
//!
//! Version 2 exists in both framings. A file is taken as an envelope only
//! when the four bytes after the version equal the length of the rest of the
//! body. In a file from before the envelope those bytes are the meter count
//! `c`, followed by `c` meters of at least 28 bytes each, so they equal the
//! length of what follows only when both are 0: a file without meters, which
//! reads the same in either framing.

use super::Validator;
use super::state::PointState;
use crate::checkpoint::{self, BodyWriter, CheckpointError, Framing, Kind};

/// The validation checkpoint's magic and versions.
pub(super) const KIND: Kind = Kind {
    name: "validation",
    magic: *b"EMGV",
    version: 2,
    oldest: 2,
    legacy: &[1, 2],
};

/// Bytes per meter before its points, and per point.
const METER_BYTES: usize = 8 + 4 + 8 + 8;
const POINT_BYTES: usize = 4 + 8 + 8 + 8 + 8 + 4 + 4 + 8 + 8 + 8;

/// What [`Validator::restore`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreReport {
    /// Meters whose state was restored.
    pub restored: usize,
    /// Meters in the checkpoint whose key or shape no longer matches (state reset),
    /// or that no longer exist.
    pub reset: usize,
}

/// Why a checkpoint could not be read; the validator is left unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    /// Shorter than a header and checksum.
    #[error("validation checkpoint: {len} bytes is too short to be a checkpoint")]
    TooShort {
        /// Length given.
        len: usize,
    },
    /// Not a validation checkpoint.
    #[error("validation checkpoint: bad magic {found:?}, expected \"EMGV\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by a version this build does not read.
    #[error("validation checkpoint: unsupported version {found}, this build reads 1 to {}", KIND.version)]
    Version {
        /// Version found.
        found: u16,
    },
    /// Corrupted (torn write or flipped bits).
    #[error(
        "validation checkpoint: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// Content ends before the structure it declares.
    #[error("validation checkpoint: truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were expected.
        at: usize,
    },
    /// Intact, but its structure does not add up (a body length that
    /// disagrees with the file, bytes after the last meter).
    #[error(transparent)]
    Malformed(CheckpointError),
}

impl From<CheckpointError> for ValidateError {
    fn from(e: CheckpointError) -> ValidateError {
        match e {
            CheckpointError::TooShort { len, .. } => ValidateError::TooShort { len },
            CheckpointError::WrongMagic { found, .. } => ValidateError::BadMagic { found },
            CheckpointError::UnsupportedVersion { found, .. } => ValidateError::Version { found },
            CheckpointError::ChecksumMismatch {
                stored, computed, ..
            } => ValidateError::Checksum { stored, computed },
            CheckpointError::Truncated { at, .. } => ValidateError::Truncated { at },
            other => ValidateError::Malformed(other),
        }
    }
}

impl Validator {
    /// The per-meter state in the [`crate::checkpoint`] envelope
    /// (little-endian): per meter its key `u64`, point count `u32`, last slot
    /// `i64`, previous rate `f64`, then per point its declared replacement
    /// count `u32`, last value `f64`, its slot `i64`, baseline raw and
    /// continuous `f64`, frozen run `u32`, replacements applied `u32`, pending
    /// spike `f64` and its slot `i64`, and the slot the baseline was set at
    /// `i64`. Reason counters are not included (process lifetime).
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let body = self.meters.len() * METER_BYTES + self.state_of.len() * POINT_BYTES;
        let mut w = BodyWriter::with_capacity(&KIND, body);
        self.write_checkpoint(&mut w);
        w.finish()
    }

    /// Streams [`Self::checkpoint`] to `out`'s thread, which replaces `path`
    /// with it durably; nothing but a chunk is held in memory.
    pub fn checkpoint_to(&self, out: &checkpoint::Writer, path: &std::path::Path) {
        let mut w = out.begin(&KIND, path);
        self.write_checkpoint(&mut w);
        w.commit();
    }

    /// Writes the checkpoint body into `w`.
    fn write_checkpoint(&self, w: &mut BodyWriter) {
        for m in &self.meters {
            w.u64(m.key);
            w.u32(m.n_points as u32);
            w.i64(m.last_slot);
            w.f64(m.rate_prev);
            for p in m.first_point..m.first_point + m.n_points {
                let (a, b) = self.repl_range[p];
                // A stateless gauge is written as fresh: the file keeps one
                // record per point whatever the build keeps in memory.
                let st = self
                    .states
                    .get(self.state_of[p] as usize)
                    .unwrap_or(&PointState::FRESH);
                w.u32(b - a);
                w.f64(st.last);
                w.i64(st.last_slot);
                w.f64(st.base_raw);
                w.f64(st.base_cont);
                w.u32(st.run);
                w.u32(st.repl_done);
                w.f64(st.pending);
                w.i64(st.pending_slot);
                w.i64(st.baseline_since);
            }
        }
    }

    /// Restores state from [`Self::checkpoint`] bytes, or from a file written
    /// before the envelope (module doc). State is keyed by meter index: a
    /// checkpointed meter is restored when a meter with the same index, the
    /// same [`MeterRules::key`](super::MeterRules::key), the same point count and the same number of
    /// declared replacements per point exists; otherwise that meter starts
    /// fresh (counted in [`RestoreReport::reset`]). Meters added since start
    /// fresh. Version 1 checkpoints (no baseline slot) are read with each
    /// baseline taken as set at the point's last trusted slot: late readings
    /// older than that are flagged rather than placed on a baseline that may
    /// not apply. On error nothing is changed.
    ///
    /// # Errors
    /// [`ValidateError`] when the bytes are not a complete, intact checkpoint of
    /// a version this build reads.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, ValidateError> {
        let checkpoint::Decoded {
            version,
            framing,
            body: mut r,
        } = checkpoint::decode(&KIND, bytes)?;
        let n_meters = match framing {
            Framing::Legacy => Some(r.u32()? as usize),
            Framing::Envelope => None,
        };
        // Parse into staging first so an error leaves the validator unchanged.
        let mut staged: Vec<(usize, i64, f64, Vec<PointState>)> = Vec::new();
        let mut report = RestoreReport::default();
        let mut index = 0;
        while n_meters.map_or(!r.is_empty(), |n| index < n) {
            let key = r.u64()?;
            let n_points = r.u32()? as usize;
            let last_slot = r.i64()?;
            let rate_prev = r.f64()?;
            let mut points = Vec::with_capacity(n_points.min(1024));
            let mut shape_ok = self
                .meters
                .get(index)
                .is_some_and(|m| m.key == key && m.n_points == n_points);
            for p in 0..n_points {
                let n_repl = r.u32()?;
                let mut st = PointState {
                    last: r.f64()?,
                    last_slot: r.i64()?,
                    base_raw: r.f64()?,
                    base_cont: r.f64()?,
                    baseline_since: i64::MIN,
                    run: r.u32()?,
                    repl_done: r.u32()?,
                    pending: r.f64()?,
                    pending_slot: r.i64()?,
                };
                st.baseline_since = if version >= 2 { r.i64()? } else { st.last_slot };
                if shape_ok {
                    let (a, b) = self.repl_range[self.meters[index].first_point + p];
                    shape_ok = b - a == n_repl && st.repl_done <= n_repl;
                }
                points.push(st);
            }
            if shape_ok {
                staged.push((index, last_slot, rate_prev, points));
            } else {
                report.reset += 1;
            }
            index += 1;
        }
        r.finish()?;
        for m in &mut self.meters {
            m.last_slot = i64::MIN;
            m.rate_prev = f64::NAN;
        }
        self.states.fill(PointState::FRESH);
        for (index, last_slot, rate_prev, points) in staged {
            let m = &mut self.meters[index];
            m.last_slot = last_slot;
            m.rate_prev = rate_prev;
            for (p, st) in points.into_iter().enumerate() {
                if let Some(slot) = self
                    .states
                    .get_mut(self.state_of[m.first_point + p] as usize)
                {
                    *slot = st;
                }
            }
            report.restored += 1;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MeterId, PointValue, Quality, ReadingBatch};
    use crate::pipeline::validate::{MeterRules, PointRules, Replacement, TimeRules};
    use crate::profiles::PointKind;

    /// What today's checkpoint code wrote before the envelope (commit
    /// a2467c7), from the state [`fixture`] builds.
    const LEGACY_V2: &[u8] = include_bytes!("testdata/validation-v2-legacy.bin");

    /// 2023-11-14T22:15:00Z, a multiple of 60.
    const T0: i64 = 1_700_000_100;

    const TIME: TimeRules = TimeRules {
        max_future_skew_secs: 300,
        max_lateness_secs: 86_400,
        reorder_window_secs: 300,
    };

    fn rule(kind: PointKind) -> PointRules {
        PointRules {
            kind,
            min: None,
            max: None,
            rollover: None,
            max_rate_per_hour: None,
            spike_margin: 1.5,
            frozen_after: None,
            resolution: 0.01,
        }
    }

    /// Two meters: a wrapping, rate-limited counter with its rate gauge, and
    /// a counter with a declared replacement.
    fn rules() -> Vec<MeterRules> {
        let wrap = PointRules {
            rollover: Some(100_000_000.0),
            max_rate_per_hour: Some(1000.0),
            ..rule(PointKind::Counter)
        };
        let frozen = PointRules {
            frozen_after: Some(3),
            ..rule(PointKind::Gauge)
        };
        vec![
            MeterRules {
                key: 0xA1,
                points: vec![wrap, frozen],
                rate_point: Some((0, 1)),
                ..MeterRules::default()
            },
            MeterRules {
                key: 0xB2,
                points: vec![rule(PointKind::Counter), rule(PointKind::Gauge)],
                replacements: vec![(
                    0,
                    Replacement {
                        at: T0 + 180,
                        old_final: 500.0,
                        new_initial: 2.0,
                    },
                )],
                ..MeterRules::default()
            },
        ]
    }

    fn good(x: f64) -> PointValue {
        PointValue::new(x, Quality::GOOD)
    }

    /// One reading per meter at `T0 + 60 i`; returns the bits and continuous values.
    fn step(v: &mut Validator, i: i64, m0: [f64; 2], m1: [f64; 2]) -> (Vec<u16>, Vec<u64>) {
        let slot = T0 + 60 * i;
        let mut batch = ReadingBatch::default();
        batch.push(MeterId(0), slot, 0, &m0.map(good));
        batch.push(MeterId(1), slot, 0, &m1.map(good));
        if i == 4 {
            // A late reading: judged, changes no state.
            batch.push(MeterId(0), slot - 90, 0, &[good(4.0), good(2.0)]);
        }
        let mut cont = Vec::new();
        v.validate(&mut batch, slot, &mut cont);
        let bits = batch.values.iter().map(|p| p.quality.0).collect();
        (bits, cont.iter().map(|c| c.to_bits()).collect())
    }

    /// A wrap, a frozen gauge, a replacement, a late reading and a pending
    /// spike: the state the legacy file was written from.
    fn fixture() -> Validator {
        let mut v = Validator::new(rules(), TIME);
        let m0 = [99_999_990.0, 99_999_995.0, 3.0, 5.0, 7.0, 600.0];
        let g0 = [2.0, 2.0, 2.0, 2.0, 3.0, 3.0];
        let m1 = [480.0, 490.0, 495.0, 4.0, 6.0, 8.0];
        for i in 0..6 {
            step(&mut v, i as i64, [m0[i], g0[i]], [m1[i], 1.5]);
        }
        v
    }

    #[test]
    fn restores_the_state_written_before_the_envelope() {
        let d = checkpoint::decode(&KIND, LEGACY_V2).expect("decode");
        assert_eq!((d.version, d.framing), (2, Framing::Legacy));
        let mut restored = Validator::new(rules(), TIME);
        let report = restored.restore(LEGACY_V2).expect("restore");
        assert_eq!(
            report,
            RestoreReport {
                restored: 2,
                reset: 0
            }
        );
        // The state the file holds: after the wrap, a spike pending, the
        // replacement applied, the gauge's frozen run.
        let c0 = restored.states[0];
        assert_eq!((c0.base_raw, c0.base_cont), (0.0, 100_000_000.0));
        assert_eq!(
            (c0.last, c0.pending, c0.pending_slot),
            (7.0, 600.0, T0 + 300)
        );
        assert_eq!(restored.states[1].run, 2);
        assert_eq!(restored.states[2].repl_done, 1);
        assert_eq!(restored.meters[0].last_slot, T0 + 300);
        // Exactly the state of the run that wrote it, field by field (the
        // envelope carries every field, bit for bit).
        let ran = fixture();
        assert_eq!(restored.checkpoint(), ran.checkpoint());
        let bytes = ran.checkpoint();
        let d = checkpoint::decode(&KIND, &bytes).expect("decode");
        assert_eq!((d.version, d.framing), (2, Framing::Envelope));
        // And the readings after it are judged the same.
        let mut ran = ran;
        for (i, m0, m1) in [(6, [601.0, 3.0], [9.0, 1.5]), (7, [8.0, 3.0], [1.0, 1.5])] {
            assert_eq!(step(&mut restored, i, m0, m1), step(&mut ran, i, m0, m1));
        }
    }

    #[test]
    fn a_malformed_body_is_refused_and_changes_nothing() {
        let bytes = fixture().checkpoint();
        let mut v = Validator::new(rules(), TIME);
        // One byte after the last meter, resealed so only the structure is wrong.
        let mut long = crate::checkpoint::resealed_with(&bytes, &[0]);
        // The meters run to the end of the body: the stray byte is a meter cut short.
        assert_eq!(
            v.restore(&long),
            Err(ValidateError::Truncated {
                at: bytes.len() - 4
            })
        );
        // A body length that disagrees with the file: read as a count
        // (module doc), which the meters then do not match.
        long[6] ^= 1;
        let n = long.len() - 4;
        let crc = crc32c::crc32c(&long[..n]);
        long[n..].copy_from_slice(&crc.to_le_bytes());
        assert!(v.restore(&long).is_err());
        assert_eq!(v.checkpoint(), Validator::new(rules(), TIME).checkpoint());
    }
}
