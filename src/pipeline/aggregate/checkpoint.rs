//! The aggregator's checkpoint: committed window state, reorder buffers and
//! open site windows as bytes and back, so a restart continues the open
//! windows and adds each final window to its site exactly once.

use std::collections::HashMap;

use super::gauges::{GaugeWin, Stat};
use super::sites::{SiteAcc, SiteKey};
use super::{AggOutput, Aggregator, Feed};
use crate::checkpoint::{self, BodyReader, BodyWriter, CheckpointError, Kind};
use crate::pipeline::window::{CounterWindows, WindowSize};

/// The aggregation checkpoint's magic and versions. Version 1 was written
/// before the [`crate::checkpoint`] envelope; version 2 is the same body in
/// the envelope, with the open site windows in key order (so equal states
/// give equal bytes). Both are read.
pub(super) const KIND: Kind = Kind {
    name: "aggregation",
    magic: *b"EMGA",
    version: 2,
    oldest: 2,
    legacy: &[1],
};

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

/// Writes gauge statistics: count `u32`, sum, min, max `f64`.
fn write_stat(w: &mut BodyWriter, s: &Stat) {
    w.u32(s.n);
    w.f64(s.sum);
    w.f64(s.min);
    w.f64(s.max);
}

/// Reads what [`write_stat`] wrote.
fn read_stat(r: &mut BodyReader<'_>) -> Result<Stat, CheckpointError> {
    Ok(Stat {
        n: r.u32()?,
        sum: r.f64()?,
        min: r.f64()?,
        max: r.f64()?,
    })
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
    /// site windows, in the [`crate::checkpoint`] envelope. Restoring them after a
    /// crash re-emits every window closed after the checkpoint (overwriting
    /// what was written) and adds each final window to its site exactly once.
    #[must_use]
    pub fn checkpoint(&self) -> Vec<u8> {
        let mut w = BodyWriter::with_capacity(&KIND, 64 + self.meters.len() * 256);
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
        let n_sizes = self.settings.windows.len();
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
                self.counters[base + s].write_to(w);
                for st in &self.steam[base + s] {
                    write_stat(w, st);
                }
                let g = self.gwins[base + s];
                w.i64(g.start);
                w.i64(g.end);
                w.u32(g.samples);
            }
            let sb = self.layout[m].stats_base;
            for st in &self.stats[sb..sb + n_sizes * nt] {
                write_stat(w, st);
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
        let mut open: Vec<(&SiteKey, &SiteAcc)> = self.site_acc.iter().collect();
        open.sort_unstable_by_key(|(k, _)| **k);
        for (k, acc) in open {
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
    }

    /// Restores a [`Self::checkpoint`]. Meters are matched by key; a meter
    /// whose shape changed (other gauges) or that is new starts fresh. With
    /// another list of window sizes nothing is restored (the windows would
    /// not line up).
    ///
    /// # Errors
    /// [`CheckpointError`] when the bytes are not an aggregation checkpoint
    /// of a version this build reads, or are damaged; the state is then
    /// unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<AggRestoreReport, CheckpointError> {
        // Versions 1 and 2 have the same body.
        let mut r = checkpoint::decode(&KIND, bytes)?.body;
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
                let cw = CounterWindows::read_from(&mut r)?;
                sm.counters.push(cw);
                sm.steam.push([read_stat(&mut r)?, read_stat(&mut r)?]);
                sm.gwins.push(GaugeWin {
                    start: r.i64()?,
                    end: r.i64()?,
                    samples: r.u32()?,
                });
            }
            for _ in 0..n_sizes * nt {
                sm.stats.push(read_stat(&mut r)?);
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
                .collect::<Result<Vec<_>, CheckpointError>>()?;
            if let (Some(&site), true) = (site_by_key.get(&key), same_sizes) {
                horizons.push((site, row));
            }
        }
        r.finish()?;
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
            let cap = self.layout[m].cap;
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
            if cap > 0 {
                self.rebuild_speculative(m, &mut scratch);
            }
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

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;
    use crate::checkpoint::Framing;
    use crate::model::{EnergyType, MeterId, PointValue, Quality, ReadingBatch};
    use crate::pipeline::aggregate::{AggregatorSettings, MeterSpec, SiteSpec};
    use crate::pipeline::energy::{Conversion, EnergyRole};

    /// What the checkpoint code wrote before the envelope (commit a2467c7),
    /// from the state [`fixture`] builds.
    const LEGACY_V1: &[u8] = include_bytes!("testdata/aggregation-v1-legacy.bin");

    /// 2026-03-15T00:00:00+08:00: a local midnight in Asia/Shanghai.
    const MIDNIGHT: i64 = 1_773_504_000;

    /// Two electricity meters (one exporting) and a steam meter priced by
    /// its pressure and temperature, all level 1, in one site.
    fn aggregator() -> Aggregator {
        let settings = AggregatorSettings {
            windows: vec![WindowSize::Min15, WindowSize::Hour, WindowSize::Day],
            allowed_lateness_secs: 1200,
            max_reorder_readings: 16,
            max_gap_secs: 900,
        };
        let electricity = |key, role| MeterSpec {
            key,
            site: 0,
            energy: EnergyType::Electricity,
            level1: true,
            role,
            counter: Some(0),
            gauges: vec![1],
            conversion: Conversion::Fixed {
                kgce_per_unit: 0.1229,
            },
            ordered: false,
        };
        let steam = MeterSpec {
            key: 3,
            site: 0,
            energy: EnergyType::Steam,
            level1: true,
            role: EnergyRole::Consumed,
            counter: Some(0),
            gauges: vec![1],
            conversion: Conversion::Steam {
                pressure: 1,
                temperature: 2,
                reference_kj_per_kg: 84.0,
                kg_per_unit: 1000.0,
                fallback_kgce_per_unit: 128.6,
                state: crate::pipeline::steam::SteamState::Auto,
                dryness: 1.0,
                margins: crate::pipeline::steam::SteamMargins::DEFAULT,
            },
            ordered: false,
        };
        let sites = vec![SiteSpec {
            key: 7,
            tz: TimeZone::get("Asia/Shanghai").expect("zone"),
        }];
        let meters = vec![
            electricity(1, EnergyRole::Consumed),
            electricity(2, EnergyRole::Exported),
            steam,
        ];
        Aggregator::new(settings, meters, sites)
    }

    fn good(x: f64) -> PointValue {
        PointValue::new(x, Quality::GOOD)
    }

    /// Readings every 5 minutes, `k` from `from` to `to`: the electricity
    /// meters always, the steam meter up to `k = 4` (its site windows stay
    /// open); the reading at `k = 9` arrives late, with `k = 13`.
    fn run(agg: &mut Aggregator, from: i32, to: i32, out: &mut AggOutput) {
        for k in from..=to {
            if k == 9 {
                continue;
            }
            let t = MIDNIGHT + i64::from(k) * 300;
            let x = f64::from(k);
            let mut batch = ReadingBatch::default();
            let mut cont = Vec::new();
            batch.push(MeterId(0), t, 0, &[good(1000.0 + 10.0 * x), good(x % 3.0)]);
            cont.extend([1000.0 + 10.0 * x, f64::NAN]);
            batch.push(MeterId(1), t, 0, &[good(50.0 + x), good(1.0)]);
            cont.extend([50.0 + x, f64::NAN]);
            if k <= 4 {
                let steam = [good(5.0 + 0.5 * x), good(0.8), good(180.0 + x)];
                batch.push(MeterId(2), t, 0, &steam);
                cont.extend([5.0 + 0.5 * x, f64::NAN, f64::NAN]);
            }
            if k == 13 {
                batch.push(
                    MeterId(0),
                    MIDNIGHT + 9 * 300,
                    0,
                    &[good(1090.0), good(0.0)],
                );
                cont.extend([1090.0, f64::NAN]);
            }
            agg.process(&mut batch, &cont, out);
        }
    }

    /// The state the legacy file was written from.
    fn fixture() -> Aggregator {
        let mut agg = aggregator();
        run(&mut agg, 0, 14, &mut AggOutput::default());
        agg
    }

    #[test]
    fn restores_the_state_written_before_the_envelope() {
        let d = checkpoint::decode(&KIND, LEGACY_V1).expect("decode");
        assert_eq!((d.version, d.framing), (1, Framing::Legacy));
        let mut restored = aggregator();
        let report = restored.restore(LEGACY_V1).expect("restore");
        let expected = AggRestoreReport {
            restored: 3,
            skipped: 0,
            site_windows: 3,
        };
        assert_eq!(report, expected);
        // Readings wait in the reorder buffers.
        assert!(restored.buf_len.iter().all(|n| *n > 0));
        // The same state as the run that wrote it: the checkpoints, now in
        // the envelope and in key order, are equal byte for byte.
        let mut ran = fixture();
        let bytes = ran.checkpoint();
        assert_eq!(restored.checkpoint(), bytes);
        let d = checkpoint::decode(&KIND, &bytes).expect("decode");
        assert_eq!((d.version, d.framing), (2, Framing::Envelope));
        assert_eq!(aggregator().restore(&bytes), Ok(expected));
        // And the next readings close the same windows with the same amounts.
        let (mut a, mut b) = (AggOutput::default(), AggOutput::default());
        run(&mut restored, 15, 40, &mut a);
        run(&mut ran, 15, 40, &mut b);
        assert!(!a.consumption.is_empty() && !a.sites.is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn bytes_after_the_sites_are_refused() {
        let bytes = fixture().checkpoint();
        let long = crate::checkpoint::resealed_with(&bytes, &[0]);
        let mut fresh = aggregator();
        assert!(matches!(
            fresh.restore(&long),
            Err(CheckpointError::TrailingBytes { len: 1, .. })
        ));
        assert_eq!(fresh.checkpoint(), aggregator().checkpoint());
    }
}
