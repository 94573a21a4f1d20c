//! The validator's checkpoint: per-meter state as bytes and back, so a
//! restart neither re-flags a reading nor loses a rollover.

use super::Validator;
use super::state::PointState;

/// Checkpoint magic and version (version 1 lacks `baseline_since`; still read).
const MAGIC: &[u8; 4] = b"EMGV";
const VERSION: u16 = 2;

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
    #[error("validation checkpoint: unsupported version {found}, this build reads 1 to {VERSION}")]
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
}

impl Validator {
    /// The per-meter state as a versioned, checksummed binary (little-endian):
    /// `"EMGV"`, version `u16`, meter count `u32`, per meter its key `u64`,
    /// point count `u32`, last slot `i64`, previous rate `f64`, then per point
    /// its declared replacement count `u32`, last value `f64`, its slot `i64`,
    /// baseline raw and continuous `f64`, frozen run `u32`, replacements applied
    /// `u32`, pending spike `f64` and its slot `i64`, the slot the baseline was
    /// set at `i64` (added in version 2); finally the CRC-32C of everything
    /// before. Reason counters are not included (process lifetime).
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.meters.len() * 32 + self.states.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.meters.len() as u32).to_le_bytes());
        for m in &self.meters {
            out.extend_from_slice(&m.key.to_le_bytes());
            out.extend_from_slice(&(m.n_points as u32).to_le_bytes());
            out.extend_from_slice(&m.last_slot.to_le_bytes());
            out.extend_from_slice(&m.rate_prev.to_bits().to_le_bytes());
            for p in m.first_point..m.first_point + m.n_points {
                let (a, b) = self.repl_range[p];
                let st = &self.states[p];
                out.extend_from_slice(&(b - a).to_le_bytes());
                out.extend_from_slice(&st.last.to_bits().to_le_bytes());
                out.extend_from_slice(&st.last_slot.to_le_bytes());
                out.extend_from_slice(&st.base_raw.to_bits().to_le_bytes());
                out.extend_from_slice(&st.base_cont.to_bits().to_le_bytes());
                out.extend_from_slice(&st.run.to_le_bytes());
                out.extend_from_slice(&st.repl_done.to_le_bytes());
                out.extend_from_slice(&st.pending.to_bits().to_le_bytes());
                out.extend_from_slice(&st.pending_slot.to_le_bytes());
                out.extend_from_slice(&st.baseline_since.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Restores state from [`Self::checkpoint`] bytes. State is keyed by meter
    /// index: a checkpointed meter is restored when a meter with the same index,
    /// the same [`MeterRules::key`], the same point count and the same number of
    /// declared replacements per point exists; otherwise that meter starts fresh
    /// (counted in [`RestoreReport::reset`]). Meters added since start fresh.
    /// Version 1 checkpoints (no baseline slot) are read with each baseline
    /// taken as set at the point's last trusted slot: late readings older than
    /// that are flagged rather than placed on a baseline that may not apply.
    /// On error nothing is changed.
    ///
    /// # Errors
    /// [`ValidateError`] when the bytes are not a complete, intact checkpoint of
    /// a version this build reads.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, ValidateError> {
        if bytes.len() < 14 {
            return Err(ValidateError::TooShort { len: bytes.len() });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let mut found = [0u8; 4];
        found.copy_from_slice(&body[..4]);
        if &found != MAGIC {
            return Err(ValidateError::BadMagic { found });
        }
        let mut stored = [0u8; 4];
        stored.copy_from_slice(tail);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(ValidateError::Checksum { stored, computed });
        }
        let mut r = Reader { bytes: body, at: 4 };
        let version = r.u16()?;
        if !(1..=VERSION).contains(&version) {
            return Err(ValidateError::Version { found: version });
        }
        // Parse into staging first so an error leaves the validator unchanged.
        let n_meters = r.u32()? as usize;
        let mut staged: Vec<(usize, i64, f64, Vec<PointState>)> = Vec::new();
        let mut report = RestoreReport::default();
        for index in 0..n_meters {
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
        }
        if r.at != body.len() {
            return Err(ValidateError::Truncated { at: r.at });
        }
        for m in &mut self.meters {
            m.last_slot = i64::MIN;
            m.rate_prev = f64::NAN;
        }
        self.states.fill(PointState::FRESH);
        for (index, last_slot, rate_prev, points) in staged {
            let m = &mut self.meters[index];
            m.last_slot = last_slot;
            m.rate_prev = rate_prev;
            self.states[m.first_point..m.first_point + m.n_points].copy_from_slice(&points);
            report.restored += 1;
        }
        Ok(report)
    }
}

/// Little-endian cursor over checkpoint bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ValidateError> {
        let mut out = [0u8; N];
        let src = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(ValidateError::Truncated { at: self.at })?;
        out.copy_from_slice(src);
        self.at += N;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ValidateError> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, ValidateError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, ValidateError> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Result<i64, ValidateError> {
        self.take().map(i64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, ValidateError> {
        self.take().map(u64::from_le_bytes).map(f64::from_bits)
    }
}
