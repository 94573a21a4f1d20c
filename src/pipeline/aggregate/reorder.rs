//! The per-meter reorder buffer behind allowed lateness: in-order readings
//! wait in it (speculative state) until the watermark has moved past them
//! (committed state); a late reading is inserted in slot order, checked
//! against its neighbours, and the speculative state is rebuilt.

use super::{AggOutput, Aggregator, AggregatorSettings, Feed};
use crate::model::Quality;
use crate::pipeline::window::CounterWindows;

/// Reorder-buffer slots per meter: none without a lateness window.
pub(super) fn buffer_cap(s: &AggregatorSettings) -> usize {
    if s.allowed_lateness_secs > 0 {
        s.max_reorder_readings
    } else {
        0
    }
}

impl Aggregator {
    /// An in-order reading (its values in `scratch_vals`).
    pub(super) fn in_order(&mut self, m: usize, t: i64, out: &mut AggOutput) {
        let cap = self.layout[m].cap;
        if cap == 0 {
            let vals = std::mem::take(&mut self.scratch_vals);
            self.feed(m, Feed::Only, t, &vals, out);
            self.committed_to[m] = t;
            self.scratch_vals = vals;
            return;
        }
        if self.buf_len[m] as usize == cap {
            self.commit_oldest(m, out);
        }
        let pos = self.buf_len[m] as usize;
        self.buf_write(m, pos, t);
        self.buf_len[m] += 1;
        let vals = std::mem::take(&mut self.scratch_vals);
        self.feed(m, Feed::Speculative, t, &vals, out);
        self.scratch_vals = vals;
    }

    /// Moves buffered readings older than `watermark − lateness` to the
    /// committed state.
    pub(super) fn commit_due(&mut self, m: usize, out: &mut AggOutput) {
        let horizon = self.watermark[m].saturating_sub(self.settings.allowed_lateness_secs);
        while self.buf_len[m] > 0 && self.buf_t[self.slot_index(m, 0)] <= horizon {
            self.commit_oldest(m, out);
        }
    }

    /// Feeds the oldest buffered reading into the committed state.
    pub(super) fn commit_oldest(&mut self, m: usize, out: &mut AggOutput) {
        let slot = self.slot_index(m, 0);
        let t = self.buf_t[slot];
        let mut vals = std::mem::take(&mut self.spare_vals);
        vals.clear();
        vals.extend_from_slice(self.buf_values(m, slot));
        self.feed(m, Feed::Committed, t, &vals, out);
        self.spare_vals = vals;
        self.committed_to[m] = t;
        let next = self.buf_head[m] as usize + 1;
        self.buf_head[m] =
            u32::try_from(if next >= self.layout[m].cap { 0 } else { next }).unwrap_or(0);
        self.buf_len[m] -= 1;
    }

    /// A late reading at `t` (its values in `scratch_vals`); returns the bit
    /// to flag it with, or good when it was taken.
    pub(super) fn late(&mut self, m: usize, t: i64, out: &mut AggOutput) -> Quality {
        if self.layout[m].cap == 0 || t <= self.committed_to[m] {
            self.counters_out.late_rejected += 1;
            return Quality::TIME;
        }
        let len = self.buf_len[m] as usize;
        // Insertion point in slot order.
        let mut pos = len;
        for i in 0..len {
            let bt = self.buf_t[self.slot_index(m, i)];
            if bt == t {
                self.counters_out.late_duplicates += 1;
                return Quality::DUPLICATE;
            }
            if bt > t {
                pos = i;
                break;
            }
        }
        let mut mark = Quality::GOOD;
        let c = self.scratch_vals[0];
        if !c.is_nan() {
            let prev = (0..pos)
                .rev()
                .map(|i| self.buf_values(m, self.slot_index(m, i))[0])
                .find(|v| !v.is_nan())
                .or_else(|| self.committed_last_counter(m));
            let next = (pos..len)
                .map(|i| self.buf_values(m, self.slot_index(m, i))[0])
                .find(|v| !v.is_nan());
            if prev.is_some_and(|p| c < p) || next.is_some_and(|n| c > n) {
                self.counters_out.late_inconsistent += 1;
                self.scratch_vals[0] = f64::NAN;
                mark = Quality::BACKWARDS;
                if self.scratch_vals.iter().all(|v| v.is_nan()) {
                    return mark;
                }
            }
        }
        let cap = self.layout[m].cap;
        if len == cap {
            // Full: the oldest reading is committed to make room.
            self.commit_oldest(m, out);
            if pos == 0 || t <= self.committed_to[m] {
                self.counters_out.late_rejected += 1;
                return Quality::TIME;
            }
            pos -= 1;
        }
        // Shift the newer readings up by one and write at `pos`.
        let len = self.buf_len[m] as usize;
        for i in (pos..len).rev() {
            let (from, to) = (self.slot_index(m, i), self.slot_index(m, i + 1));
            self.buf_t[to] = self.buf_t[from];
            let stride = self.stride(m);
            let (fb, tb) = (self.value_base(m, from), self.value_base(m, to));
            self.buf_v.copy_within(fb..fb + stride, tb);
        }
        self.buf_write(m, pos, t);
        self.buf_len[m] += 1;
        self.counters_out.late_accepted += 1;
        self.rebuild_speculative(m, out);
        mark
    }

    /// Speculative = committed, then every buffered reading again; windows
    /// that close are re-emitted.
    pub(super) fn rebuild_speculative(&mut self, m: usize, out: &mut AggOutput) {
        let n_sizes = self.settings.windows.len();
        let base = m * 2 * n_sizes;
        self.counters
            .copy_within(base..base + n_sizes, base + n_sizes);
        self.steam.copy_within(base..base + n_sizes, base + n_sizes);
        self.gwins.copy_within(base..base + n_sizes, base + n_sizes);
        let nt = self.layout[m].tracked.len();
        let sb = self.layout[m].stats_base;
        self.stats
            .copy_within(sb..sb + n_sizes * nt, sb + n_sizes * nt);
        let mut vals = std::mem::take(&mut self.spare_vals);
        for i in 0..self.buf_len[m] as usize {
            let slot = self.slot_index(m, i);
            let t = self.buf_t[slot];
            vals.clear();
            vals.extend_from_slice(self.buf_values(m, slot));
            self.feed(m, Feed::Replay, t, &vals, out);
        }
        self.spare_vals = vals;
    }

    pub(super) fn committed_last_counter(&self, m: usize) -> Option<f64> {
        let n_sizes = self.settings.windows.len();
        self.counters
            .get(m * 2 * n_sizes)
            .and_then(CounterWindows::last)
            .map(|(_, v)| v)
    }

    pub(super) fn stride(&self, m: usize) -> usize {
        1 + self.layout[m].tracked.len()
    }

    /// Absolute buffer slot of the `i`-th oldest reading of meter `m`
    /// (`i < cap`).
    pub(super) fn slot_index(&self, m: usize, i: usize) -> usize {
        let mut k = self.buf_head[m] as usize + i;
        if k >= self.layout[m].cap {
            k -= self.layout[m].cap;
        }
        self.layout[m].buf_base + k
    }

    /// Where the values of absolute buffer slot `slot` of meter `m` start in `buf_v`.
    fn value_base(&self, m: usize, slot: usize) -> usize {
        let l = &self.layout[m];
        l.vbase + (slot - l.buf_base) * (1 + l.tracked.len())
    }

    pub(super) fn buf_values(&self, m: usize, slot: usize) -> &[f64] {
        let b = self.value_base(m, slot);
        &self.buf_v[b..b + self.stride(m)]
    }

    /// Writes `t` and `scratch_vals` at the `i`-th position of meter `m`'s buffer.
    pub(super) fn buf_write(&mut self, m: usize, i: usize, t: i64) {
        let slot = self.slot_index(m, i);
        self.buf_t[slot] = t;
        let base = self.value_base(m, slot);
        let len = self.scratch_vals.len();
        self.buf_v[base..base + len].copy_from_slice(&self.scratch_vals);
    }
}
