//! Gauge statistics per window (count, sum, min, max; the mean of the good
//! samples): only the shortest window is updated per reading, and a window
//! that closes merges into the next longer one.

use super::{AggOutput, Aggregator, Feed, GaugeStatOut, GaugeWindowOut};
use crate::pipeline::window::{WindowSize, window_end, window_start};

/// Gauge window: start and end of the window being filled, and samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct GaugeWin {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) samples: u32,
}

impl GaugeWin {
    pub(super) const NONE: GaugeWin = GaugeWin {
        start: i64::MIN,
        end: i64::MIN,
        samples: 0,
    };
}

/// Running statistics of one gauge in one window.
///
/// Packed to 4-byte alignment: 28 bytes instead of 32 (the `u32` would pad
/// to 8). This table is most of a wide device's memory (one per tracked
/// gauge and window size: 11 MB instead of 12.8 at the NeuronEX grid), and
/// unaligned `f64` loads cost nothing measurable on the targets we run on.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, packed(4))]
pub(super) struct Stat {
    pub(super) n: u32,
    pub(super) sum: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

impl Stat {
    pub(super) const EMPTY: Stat = Stat {
        n: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    pub(super) fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub(super) fn merge(&mut self, other: &Stat) {
        self.n += other.n;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

impl Aggregator {
    /// Gauge statistics: only the shortest window is updated per reading;
    /// a window that closes is merged into the next longer one (windows
    /// nest: every boundary of a longer window is one of a shorter), so the
    /// work per reading does not grow with the number of window sizes.
    pub(super) fn feed_gauges(
        &mut self,
        m: usize,
        state: usize,
        how: Feed,
        t: i64,
        vals: &[f64],
        out: &mut AggOutput,
    ) {
        let n_emit = self.layout[m].n_emit;
        if n_emit == 0 || self.order.is_empty() || vals[1..=n_emit].iter().all(|v| v.is_nan()) {
            return;
        }
        let n_sizes = self.settings.windows.len();
        let base = (m * 2 + state) * n_sizes;
        // Close, shortest first, every window the reading has left; each
        // merges into the next longer one.
        for k in 0..self.order.len() {
            let gw = self.gwins[base + self.order[k]];
            if gw.start != i64::MIN && t >= gw.end {
                self.close_gauges(m, state, k, how, out);
            }
        }
        let s0 = self.order[0];
        let nt = self.layout[m].tracked.len();
        let sbase = self.layout[m].stats_base + (state * n_sizes + s0) * nt;
        if self.gwins[base + s0].start == i64::MIN {
            let tz = &self.sites[self.meters[m].site].tz;
            let size = self.settings.windows[s0];
            let start = window_start(size, tz, t);
            self.gwins[base + s0] = GaugeWin {
                start,
                end: window_end(size, tz, start),
                samples: 0,
            };
            self.stats[sbase..sbase + nt].fill(Stat::EMPTY);
        }
        self.gwins[base + s0].samples += 1;
        for (st, v) in self.stats[sbase..sbase + n_emit]
            .iter_mut()
            .zip(&vals[1..=n_emit])
        {
            if !v.is_nan() {
                st.add(*v);
            }
        }
    }

    /// Closes the gauge window of the `k`-th shortest size: writes it (when
    /// it has samples and this state writes) and merges it into the next
    /// longer size, closing that one first if the merged window lies beyond it.
    pub(super) fn close_gauges(
        &mut self,
        m: usize,
        state: usize,
        k: usize,
        how: Feed,
        out: &mut AggOutput,
    ) {
        let n_sizes = self.settings.windows.len();
        let nt = self.layout[m].tracked.len();
        let s = self.order[k];
        let idx = (m * 2 + state) * n_sizes + s;
        let sbase = self.layout[m].stats_base + (state * n_sizes + s) * nt;
        let gw = self.gwins[idx];
        if gw.samples > 0 && how != Feed::Committed {
            self.emit_gauges(m, self.settings.windows[s], gw, sbase, out);
            self.count_emit(how);
        }
        if gw.samples > 0
            && let Some(&s2) = self.order.get(k + 1)
        {
            let idx2 = (m * 2 + state) * n_sizes + s2;
            let sbase2 = self.layout[m].stats_base + (state * n_sizes + s2) * nt;
            let gw2 = self.gwins[idx2];
            if gw2.start == i64::MIN || gw.start >= gw2.end || gw.start < gw2.start {
                if gw2.start != i64::MIN {
                    self.close_gauges(m, state, k + 1, how, out);
                }
                let tz = &self.sites[self.meters[m].site].tz;
                let size = self.settings.windows[s2];
                let start = window_start(size, tz, gw.start);
                self.gwins[idx2] = GaugeWin {
                    start,
                    end: window_end(size, tz, start),
                    samples: 0,
                };
                self.stats[sbase2..sbase2 + nt].fill(Stat::EMPTY);
            }
            self.gwins[idx2].samples += gw.samples;
            for i in 0..nt {
                let from = self.stats[sbase + i];
                self.stats[sbase2 + i].merge(&from);
            }
        }
        self.gwins[idx] = GaugeWin::NONE;
        self.stats[sbase..sbase + nt].fill(Stat::EMPTY);
    }

    pub(super) fn emit_gauges(
        &mut self,
        m: usize,
        size: WindowSize,
        gw: GaugeWin,
        sbase: usize,
        out: &mut AggOutput,
    ) {
        let first = u32::try_from(out.gauge_stats.len()).unwrap_or(u32::MAX);
        let layout = &self.layout[m];
        for (st, point) in self.stats[sbase..sbase + layout.n_emit]
            .iter()
            .zip(&layout.tracked)
        {
            if let Some(mean) = st.mean() {
                out.gauge_stats.push(GaugeStatOut {
                    point: u16::try_from(*point).unwrap_or(u16::MAX),
                    mean,
                    min: st.min,
                    max: st.max,
                    samples: st.n,
                });
            }
        }
        let last = u32::try_from(out.gauge_stats.len()).unwrap_or(u32::MAX);
        out.gauges.push(GaugeWindowOut {
            meter: u32::try_from(m).unwrap_or(u32::MAX),
            size,
            start: gw.start,
            samples: gw.samples,
            stats_start: first,
            stats_end: last,
        });
    }
}
