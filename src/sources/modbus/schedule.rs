//! Poll slots: when each meter is due, and what to do when a round runs late.
//!
//! A slot is a multiple of the meter's poll interval since the Unix epoch
//! (SCHEMA.md), so readings of every meter polled every 15 minutes share the
//! same timestamps and a replay overwrites instead of duplicating. This
//! module is pure arithmetic on milliseconds; the poller feeds it the clock.
//!
//! Lateness has two grades:
//! * an **overrun**: a poll finished after its next slot was due, so the
//!   following poll starts late (its timestamp is still its slot; `lag_ms`
//!   shows the delay);
//! * a **missed slot**: by the time the meter's turn comes, one or more whole
//!   slots have passed. Those slots are skipped (never polled later with a
//!   timestamp that was not measured) and counted.

/// The first slot at or after `now_ms` for `interval_ms`.
#[must_use]
pub fn slot_at_or_after(now_ms: i64, interval_ms: i64) -> i64 {
    let floor = now_ms.div_euclid(interval_ms) * interval_ms;
    if floor == now_ms {
        floor
    } else {
        floor + interval_ms
    }
}

/// The last slot at or before `now_ms` for `interval_ms`.
#[must_use]
pub fn slot_at_or_before(now_ms: i64, interval_ms: i64) -> i64 {
    now_ms.div_euclid(interval_ms) * interval_ms
}

/// Where one meter stands in its sequence of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterSchedule {
    /// Poll interval, milliseconds (> 0).
    pub interval_ms: i64,
    /// The next slot to poll, Unix milliseconds.
    pub next_slot_ms: i64,
}

/// What the poller should do with a due meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Slot to poll and to stamp the reading with.
    pub slot_ms: i64,
    /// Slots skipped because they were already over when the meter's turn came.
    pub missed: u64,
}

impl MeterSchedule {
    /// A schedule whose first slot is the first one at or after `now_ms`.
    #[must_use]
    pub fn starting_at(now_ms: i64, interval_ms: i64) -> MeterSchedule {
        let interval_ms = interval_ms.max(1);
        MeterSchedule {
            interval_ms,
            next_slot_ms: slot_at_or_after(now_ms, interval_ms),
        }
    }

    /// True when the next slot has started at `now_ms`.
    #[must_use]
    pub fn is_due(&self, now_ms: i64) -> bool {
        now_ms >= self.next_slot_ms
    }

    /// Takes the slot to poll at `now_ms` (which must be due) and advances.
    ///
    /// When whole slots have passed since `next_slot_ms`, the latest started
    /// slot is polled and the earlier ones are reported as missed.
    pub fn take(&mut self, now_ms: i64) -> Due {
        let latest = slot_at_or_before(now_ms, self.interval_ms).max(self.next_slot_ms);
        let missed = ((latest - self.next_slot_ms) / self.interval_ms) as u64;
        self.next_slot_ms = latest + self.interval_ms;
        Due {
            slot_ms: latest,
            missed,
        }
    }

    /// True when a poll of `slot_ms` that finished at `done_ms` overran into the next slot.
    #[must_use]
    pub fn overran(&self, slot_ms: i64, done_ms: i64) -> bool {
        done_ms >= slot_ms + self.interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_multiples_of_the_interval() {
        assert_eq!(slot_at_or_after(1_000, 1_000), 1_000);
        assert_eq!(slot_at_or_after(1_001, 1_000), 2_000);
        assert_eq!(slot_at_or_before(1_999, 1_000), 1_000);
        // 15 minutes: 2026-11-25T02:30:00Z is a slot, 02:31 is not.
        let quarter = 900_000;
        let t = 1_795_573_800_000; // 2026-11-25T02:30:00Z
        assert_eq!(t % quarter, 0);
        assert_eq!(slot_at_or_after(t + 60_000, quarter), t + quarter);
    }

    #[test]
    fn on_time_polls_advance_one_slot() {
        let mut s = MeterSchedule::starting_at(10_500, 1_000);
        assert_eq!(s.next_slot_ms, 11_000);
        assert!(!s.is_due(10_999));
        assert_eq!(
            s.take(11_003),
            Due {
                slot_ms: 11_000,
                missed: 0
            }
        );
        assert_eq!(s.next_slot_ms, 12_000);
        assert!(!s.overran(11_000, 11_999));
        assert!(s.overran(11_000, 12_000));
    }

    #[test]
    fn late_turn_skips_and_counts_whole_slots() {
        let mut s = MeterSchedule::starting_at(0, 1_000);
        // The meter's turn comes at 3.2 s: slots 0, 1 and 2 s are over, 3 s has started.
        assert_eq!(
            s.take(3_200),
            Due {
                slot_ms: 3_000,
                missed: 3
            }
        );
        assert_eq!(s.next_slot_ms, 4_000);
    }
}
