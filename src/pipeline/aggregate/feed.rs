//! Feeding one reading into one state of a meter: its counter windows (and
//! the steam samples that price them), then its gauges; each window that
//! closes becomes a `consumption` record, written or rolled up by state.

use jiff::Timestamp;

use super::gauges::Stat;
use super::{AggOutput, Aggregator, ConsumptionOut, Feed};
use crate::pipeline::energy::Conversion;
use crate::pipeline::window::{ClosedWindow, WindowSize};

impl Aggregator {
    /// Feeds one reading into one state of meter `m` and handles what closes.
    pub(super) fn feed(&mut self, m: usize, how: Feed, t: i64, vals: &[f64], out: &mut AggOutput) {
        let n_sizes = self.settings.windows.len();
        let state = usize::from(matches!(how, Feed::Speculative | Feed::Replay));
        let write = how != Feed::Committed;
        let roll = matches!(how, Feed::Only | Feed::Committed);
        let site = self.meters[m].site;
        let has_counter = self.meters[m].counter.is_some();
        for s in 0..n_sizes {
            let size = self.settings.windows[s];
            let idx = (m * 2 + state) * n_sizes + s;
            let mut closed = std::mem::take(&mut self.scratch_closed);
            closed.clear();
            if has_counter && !vals[0].is_nan() {
                let tz = &self.sites[site].tz;
                self.counters[idx].push(size, tz, self.settings.max_gap_secs, t, vals[0], |w| {
                    closed.push(w);
                });
            }
            for (k, w) in closed.iter().enumerate() {
                // Only the first closed window holds the steam samples;
                // windows inside a gap have none.
                let steam = if k == 0 {
                    self.steam[idx]
                } else {
                    [Stat::EMPTY; 2]
                };
                let rec = self.consumption(m, size, w, steam);
                if write {
                    out.consumption.push(rec);
                    self.count_emit(how);
                }
                if roll {
                    self.roll_up(m, s, w, &rec, out);
                }
            }
            if !closed.is_empty() {
                self.steam[idx] = [Stat::EMPTY; 2];
            }
            self.scratch_closed = closed;
            if has_counter
                && !vals[0].is_nan()
                && let Some((p, q)) = self.layout[m].steam
            {
                let st = &mut self.steam[idx];
                for (k, pos) in [p, q].into_iter().enumerate() {
                    let v = vals[1 + pos];
                    if !v.is_nan() {
                        st[k].add(v);
                    }
                }
            }
        }
        self.feed_gauges(m, state, how, t, vals, out);
    }

    pub(super) fn count_emit(&mut self, how: Feed) {
        if how == Feed::Replay {
            self.counters_out.windows_reemitted += 1;
        } else {
            self.counters_out.windows_emitted += 1;
        }
    }

    /// The `consumption` record of a closed window.
    pub(super) fn consumption(
        &self,
        m: usize,
        size: WindowSize,
        w: &ClosedWindow,
        steam: [Stat; 2],
    ) -> ConsumptionOut {
        let spec = &self.meters[m];
        let tz = &self.sites[spec.site].tz;
        let year = Timestamp::from_second(w.start).map_or(1970, |ts| tz.to_datetime(ts).year());
        let (p, q) = match spec.conversion {
            Conversion::Steam {
                pressure,
                temperature,
                ..
            } => (pressure, temperature),
            _ => (usize::MAX, usize::MAX),
        };
        let means = |i: usize| {
            if i == p {
                steam[0].mean()
            } else if i == q {
                steam[1].mean()
            } else {
                None
            }
        };
        let kgce = spec.conversion.kgce(w.amount, year, means);
        ConsumptionOut {
            meter: u32::try_from(m).unwrap_or(u32::MAX),
            size,
            start: w.start,
            amount: w.amount,
            kgce: kgce.map(|(k, _)| k),
            coverage: w.coverage,
            estimated: w.estimated || kgce.is_some_and(|(_, e)| e),
            steam_suspect: spec.conversion.steam_suspect(means),
        }
    }
}
