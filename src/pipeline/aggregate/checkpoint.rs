//! The aggregator's checkpoint: committed window state, reorder buffers and
//! open site windows as bytes and back, so a restart continues the open
//! windows and adds each final window to its site exactly once.

use std::collections::HashMap;

use super::gauges::{GaugeWin, Stat};
use super::sites::SiteAcc;
use super::{AggOutput, Aggregator, Feed};
use crate::pipeline::window::{COUNTER_WINDOWS_BYTES, CounterWindows, WindowSize};

/// Checkpoint magic and version.
const MAGIC: &[u8; 4] = b"EMGA";
const VERSION: u16 = 1;

/// Why a checkpoint was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// Not an aggregation checkpoint, or another version.
    #[error("not an aggregation checkpoint of version {VERSION}")]
    Format,
    /// Truncated or its checksum does not match.
    #[error("aggregation checkpoint is damaged (truncated or checksum mismatch)")]
    Damaged,
}

/// What [`Aggregator::restore`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggRestoreReport {
    /// Meters whose windows were restored.
    pub restored: usize,
    /// Meters in the checkpoint no longer configured or with another shape.
    pub skipped: usize,
    /// Open site windows restored.
    pub site_windows: usize,
}

/// Little-endian writer for checkpoints.
struct Writer(Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn stat(&mut self, s: &Stat) {
        self.u32(s.n);
        self.f64(s.sum);
        self.f64(s.min);
        self.f64(s.max);
    }
}

/// Little-endian reader for checkpoints; every read fails cleanly at the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    pub(super) fn take<const N: usize>(&mut self) -> Result<[u8; N], AggregateError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or(AggregateError::Damaged)?;
        self.0 = rest;
        head.try_into().map_err(|_| AggregateError::Damaged)
    }
    pub(super) fn bytes(&mut self, n: usize) -> Result<&[u8], AggregateError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(AggregateError::Damaged)?;
        self.0 = rest;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, AggregateError> {
        Ok(self.take::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, AggregateError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32, AggregateError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, AggregateError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    pub(super) fn i64(&mut self) -> Result<i64, AggregateError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    pub(super) fn f64(&mut self) -> Result<f64, AggregateError> {
        Ok(f64::from_le_bytes(self.take()?))
    }
    pub(super) fn stat(&mut self) -> Result<Stat, AggregateError> {
        Ok(Stat {
            n: self.u32()?,
            sum: self.f64()?,
            min: self.f64()?,
            max: self.f64()?,
        })
    }
}

/// One meter's committed state as read from a checkpoint.
struct SavedMeter {
    watermark: i64,
    committed_to: i64,
    counters: Vec<CounterWindows>,
    steam: Vec<[Stat; 2]>,
    gwins: Vec<GaugeWin>,
    stats: Vec<Stat>,
    buffer: Vec<(i64, Vec<f64>)>,
}

impl Aggregator {
    /// The committed state of every meter, the reorder buffers and the open
    /// site windows, as versioned, checksummed bytes. Restoring them after a
    /// crash re-emits every window closed after the checkpoint (overwriting
    /// what was written) and adds each final window to its site exactly once.
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let n_sizes = self.settings.windows.len();
        let mut w = Writer(Vec::with_capacity(64 + self.meters.len() * 256));
        w.0.extend_from_slice(MAGIC);
        w.u16(VERSION);
        w.u8(u8::try_from(n_sizes).unwrap_or(u8::MAX));
        for size in &self.settings.windows {
            w.u8(size_code(*size));
        }
        w.u32(u32::try_from(self.meters.len()).unwrap_or(u32::MAX));
        for (m, spec) in self.meters.iter().enumerate() {
            let nt = self.layout[m].tracked.len();
            w.u64(spec.key);
            w.u16(u16::try_from(nt).unwrap_or(u16::MAX));
            w.i64(self.watermark[m]);
            w.i64(self.committed_to[m]);
            let base = m * 2 * n_sizes;
            for s in 0..n_sizes {
                self.counters[base + s].write_to(&mut w.0);
                for st in &self.steam[base + s] {
                    w.stat(st);
                }
                let g = self.gwins[base + s];
                w.i64(g.start);
                w.i64(g.end);
                w.u32(g.samples);
            }
            let sb = self.layout[m].stats_base;
            for st in &self.stats[sb..sb + n_sizes * nt] {
                w.stat(st);
            }
            let len = self.buf_len[m] as usize;
            w.u32(u32::try_from(len).unwrap_or(0));
            for i in 0..len {
                let slot = self.slot_index(m, i);
                w.i64(self.buf_t[slot]);
                for v in self.buf_values(m, slot) {
                    w.f64(*v);
                }
            }
        }
        w.u32(u32::try_from(self.site_acc.len()).unwrap_or(u32::MAX));
        for (k, acc) in &self.site_acc {
            w.u64(self.sites.get(k.0 as usize).map_or(0, |s| s.key));
            w.u8(k.1);
            w.u8(size_code(self.settings.windows[usize::from(k.2)]));
            w.i64(k.3);
            for v in [
                acc.amount,
                acc.kgce,
                acc.exported,
                acc.feedstock,
                acc.renewable,
                acc.coverage,
            ] {
                w.f64(v);
            }
            w.u32(u32::try_from(acc.contributors.len()).unwrap_or(0));
            for c in &acc.contributors {
                w.u64(self.meters.get(*c as usize).map_or(0, |m| m.key));
            }
        }
        w.u32(u32::try_from(self.sites.len()).unwrap_or(u32::MAX));
        for (site, spec) in self.sites.iter().enumerate() {
            w.u64(spec.key);
            for s in 0..n_sizes {
                w.i64(self.site_newest[site * n_sizes + s]);
                w.i64(self.site_forgotten[site * n_sizes + s]);
            }
        }
        let crc = crc32c::crc32c(&w.0);
        w.u32(crc);
        w.0
    }

    /// Restores a [`Self::checkpoint`]. Meters are matched by key; a meter
    /// whose shape changed (other gauges) or that is new starts fresh. With
    /// another list of window sizes nothing is restored (the windows would
    /// not line up).
    ///
    /// # Errors
    /// When the bytes are not a checkpoint of this version or are damaged;
    /// the state is then unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<AggRestoreReport, AggregateError> {
        let body_len = bytes.len().checked_sub(4).ok_or(AggregateError::Damaged)?;
        let (body, crc) = bytes.split_at(body_len);
        if body.get(..4) != Some(MAGIC.as_slice()) {
            return Err(AggregateError::Format);
        }
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| AggregateError::Damaged)?);
        if crc32c::crc32c(body) != crc {
            return Err(AggregateError::Damaged);
        }
        let mut r = Reader(&body[4..]);
        if r.u16()? != VERSION {
            return Err(AggregateError::Format);
        }
        let n_sizes = usize::from(r.u8()?);
        let sizes = r.bytes(n_sizes)?;
        let mut report = AggRestoreReport::default();
        let same_sizes = sizes.len() == self.settings.windows.len()
            && sizes
                .iter()
                .zip(&self.settings.windows)
                .all(|(c, s)| *c == size_code(*s));
        let by_key: HashMap<u64, usize> = self
            .meters
            .iter()
            .enumerate()
            .map(|(i, m)| (m.key, i))
            .collect();
        let n_meters = r.u32()? as usize;
        let mut saved: Vec<(usize, SavedMeter)> = Vec::new();
        for _ in 0..n_meters {
            let key = r.u64()?;
            let nt = usize::from(r.u16()?);
            let mut sm = SavedMeter {
                watermark: r.i64()?,
                committed_to: r.i64()?,
                counters: Vec::with_capacity(n_sizes),
                steam: Vec::with_capacity(n_sizes),
                gwins: Vec::with_capacity(n_sizes),
                stats: Vec::with_capacity(n_sizes * nt),
                buffer: Vec::new(),
            };
            for _ in 0..n_sizes {
                let cw = CounterWindows::read_from(r.bytes(COUNTER_WINDOWS_BYTES)?)
                    .ok_or(AggregateError::Damaged)?;
                sm.counters.push(cw);
                sm.steam.push([r.stat()?, r.stat()?]);
                sm.gwins.push(GaugeWin {
                    start: r.i64()?,
                    end: r.i64()?,
                    samples: r.u32()?,
                });
            }
            for _ in 0..n_sizes * nt {
                sm.stats.push(r.stat()?);
            }
            let len = r.u32()? as usize;
            for _ in 0..len {
                let t = r.i64()?;
                let vals = (0..=nt).map(|_| r.f64()).collect::<Result<Vec<_>, _>>()?;
                sm.buffer.push((t, vals));
            }
            match by_key.get(&key) {
                Some(&m) if same_sizes && self.layout[m].tracked.len() == nt => saved.push((m, sm)),
                _ => report.skipped += 1,
            }
        }
        let n_site = r.u32()? as usize;
        let site_by_key: HashMap<u64, usize> = self
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        let mut site_acc = HashMap::new();
        for _ in 0..n_site {
            let site_key = r.u64()?;
            let row = r.u8()?;
            let size = r.u8()?;
            let start = r.i64()?;
            let mut f = [0.0; 6];
            for v in &mut f {
                *v = r.f64()?;
            }
            let n = r.u32()? as usize;
            let contributors = (0..n)
                .map(|_| r.u64())
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter_map(|k| by_key.get(&k).and_then(|m| u32::try_from(*m).ok()))
                .collect();
            let s = self
                .settings
                .windows
                .iter()
                .position(|w| size_code(*w) == size);
            if let (Some(&site), Some(s), true) = (site_by_key.get(&site_key), s, same_sizes) {
                let key = (
                    u32::try_from(site).unwrap_or(u32::MAX),
                    row,
                    u8::try_from(s).unwrap_or(u8::MAX),
                    start,
                );
                site_acc.insert(
                    key,
                    SiteAcc {
                        amount: f[0],
                        kgce: f[1],
                        exported: f[2],
                        feedstock: f[3],
                        renewable: f[4],
                        coverage: f[5],
                        contributors,
                    },
                );
            }
        }
        let n_sites = r.u32()? as usize;
        let mut horizons = Vec::new();
        for _ in 0..n_sites {
            let key = r.u64()?;
            let row = (0..n_sizes)
                .map(|_| Ok((r.i64()?, r.i64()?)))
                .collect::<Result<Vec<_>, AggregateError>>()?;
            if let (Some(&site), true) = (site_by_key.get(&key), same_sizes) {
                horizons.push((site, row));
            }
        }
        // Everything parsed: apply.
        let keep = self.counters_out;
        let mut scratch = AggOutput::default();
        for (m, sm) in saved {
            let base = m * 2 * n_sizes;
            self.counters[base..base + n_sizes].copy_from_slice(&sm.counters);
            self.steam[base..base + n_sizes].copy_from_slice(&sm.steam);
            self.gwins[base..base + n_sizes].copy_from_slice(&sm.gwins);
            let sb = self.layout[m].stats_base;
            self.stats[sb..sb + sm.stats.len()].copy_from_slice(&sm.stats);
            self.watermark[m] = sm.watermark;
            self.committed_to[m] = sm.committed_to;
            self.buf_head[m] = 0;
            self.buf_len[m] = 0;
            let cap = self.cap;
            for (t, vals) in sm.buffer {
                if cap == 0 {
                    // Lateness switched off: the buffered readings are committed now.
                    self.scratch_vals.clear();
                    self.scratch_vals.extend_from_slice(&vals);
                    let v = std::mem::take(&mut self.scratch_vals);
                    self.feed(m, Feed::Only, t, &v, &mut scratch);
                    self.scratch_vals = v;
                    self.committed_to[m] = t;
                    continue;
                }
                if self.buf_len[m] as usize == cap {
                    self.commit_oldest(m, &mut scratch);
                }
                self.scratch_vals.clear();
                self.scratch_vals.extend_from_slice(&vals);
                let pos = self.buf_len[m] as usize;
                self.buf_write(m, pos, t);
                self.buf_len[m] += 1;
            }
            self.rebuild_speculative(m, &mut scratch);
            report.restored += 1;
        }
        report.site_windows = site_acc.len();
        self.site_acc.extend(site_acc);
        for (site, row) in horizons {
            for (s, (newest, forgotten)) in row.into_iter().enumerate() {
                self.site_newest[site * n_sizes + s] = newest;
                self.site_forgotten[site * n_sizes + s] = forgotten;
            }
        }
        self.counters_out = keep;
        Ok(report)
    }
}

/// A size's code in checkpoints: its position in [`WindowSize::ALL`].
pub(super) fn size_code(size: WindowSize) -> u8 {
    WindowSize::ALL
        .iter()
        .position(|s| *s == size)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(u8::MAX)
}
