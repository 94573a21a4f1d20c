//! How a site stands against its energy-saving targets: progress, the
//! projection to year end, completion rates and the warning level
//! (domain.md §6). Pure functions, so every number can be checked by hand.
//!
//! Why separate from `config::targets`: the configuration says what the
//! targets are; these say how far a site is, from controlled consumption
//! (total with feedstock and renewable energy deducted) and manual entries.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The in-year warning level of a completion rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Completion ≥ 100 %.
    Green,
    /// `warn_yellow_pct` ≤ completion < 100 %.
    Yellow,
    /// `warn_orange_pct` < completion < `warn_yellow_pct`.
    Orange,
    /// Completion ≤ `warn_orange_pct`.
    Red,
}

/// Share of the cap used so far, %: `used_tce / cap_tce × 100`.
#[must_use]
pub fn progress(used_tce: f64, cap_tce: f64) -> f64 {
    used_tce / cap_tce * 100.0
}

/// Elapsed fraction (0..=1) of calendar year `year` at `now`, in local time
/// `tz`: (now − local Jan 1 00:00) ÷ (next local Jan 1 − local Jan 1).
/// `None` when the year's bounds do not exist in `tz`.
#[must_use]
pub fn year_fraction(now: Timestamp, year: i16, tz: &TimeZone) -> Option<f64> {
    let start = Date::new(year, 1, 1)
        .ok()?
        .to_zoned_datetime(tz.clone())
        .ok()?;
    let end = Date::new(year.checked_add(1)?, 1, 1)
        .ok()?
        .to_zoned_datetime(tz.clone())
        .ok()?;
    let (s, e) = (start.timestamp().as_second(), end.timestamp().as_second());
    let f = (now.as_second() - s) as f64 / (e - s) as f64;
    Some(f.clamp(0.0, 1.0))
}

/// Controlled consumption projected to year end: `used_tce ÷ elapsed`
/// (`elapsed` from [`year_fraction`]); `None` before the year has begun.
#[must_use]
pub fn projection(used_tce: f64, elapsed: f64) -> Option<f64> {
    (elapsed > 0.0).then(|| used_tce / elapsed)
}

/// Completion rate of a cap, %: `cap_tce ÷ projected_tce × 100` (≥ 100
/// while the projection stays within the cap; 200 when it is half the cap).
#[must_use]
pub fn cap_completion(projected_tce: f64, cap_tce: f64) -> f64 {
    if projected_tce <= 0.0 {
        return f64::INFINITY;
    }
    cap_tce / projected_tce * 100.0
}

/// Decrease rate of an intensity vs its base, %: `(1 − current ÷ base) × 100`.
#[must_use]
pub fn decrease_pct(current: f64, base: f64) -> f64 {
    (1.0 - current / base) * 100.0
}

/// Completion rate of an intensity target, %: the achieved decrease over
/// the target decrease, × 100 (domain.md §6 "cumulative progress").
#[must_use]
pub fn intensity_completion(current: f64, base: f64, target_decrease_pct: f64) -> f64 {
    decrease_pct(current, base) / target_decrease_pct * 100.0
}

/// The level of `completion_pct` (≥ 100 green; ≥ `yellow` yellow; >
/// `orange` orange; else red; defaults 90 and 50).
#[must_use]
pub fn level(completion_pct: f64, yellow: f64, orange: f64) -> Level {
    if completion_pct >= 100.0 {
        Level::Green
    } else if completion_pct >= yellow {
        Level::Yellow
    } else if completion_pct > orange {
        Level::Orange
    } else {
        Level::Red
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_progress_projection_and_levels() {
        let tz = TimeZone::get("Asia/Shanghai").expect("tz");
        // 2026-04-02 00:00 +08:00 is day 91 of 365: 91/365 = 0.249315...
        let now: Timestamp = "2026-04-01T16:00:00Z".parse().expect("ts");
        let f = year_fraction(now, 2026, &tz).expect("fraction");
        assert!((f - 91.0 / 365.0).abs() < 1e-12, "{f}");
        // 2 600 tce so far → 2600 × 365 / 91 = 10 428.57 tce at year end.
        let p = projection(2600.0, f).expect("projection");
        assert!((p - 2600.0 * 365.0 / 91.0).abs() < 1e-6, "{p}");
        assert!((progress(2600.0, 10_000.0) - 26.0).abs() < 1e-12);
        // Cap 10 000: completion 10 000 / 10 428.57 = 95.89 % → yellow.
        let c = cap_completion(p, 10_000.0);
        assert!((c - 95.890_410_958_904_1).abs() < 1e-9, "{c}");
        assert_eq!(level(c, 90.0, 50.0), Level::Yellow);
        // Base 500 kgce/t, now 480: 4 % of a 16 % five-year decrease = 25 %.
        assert!((decrease_pct(480.0, 500.0) - 4.0).abs() < 1e-12);
        assert!((intensity_completion(480.0, 500.0, 16.0) - 25.0).abs() < 1e-12);
        assert_eq!(level(25.0, 90.0, 50.0), Level::Red);
        assert_eq!(level(100.0, 90.0, 50.0), Level::Green);
        assert_eq!(level(90.0, 90.0, 50.0), Level::Yellow);
        assert_eq!(level(89.9, 90.0, 50.0), Level::Orange);
        assert_eq!(level(50.0, 90.0, 50.0), Level::Red);
        assert_eq!(level(50.1, 90.0, 50.0), Level::Orange);
        // Before and after the year.
        assert_eq!(year_fraction(now, 2027, &tz), Some(0.0));
        assert_eq!(year_fraction(now, 2025, &tz), Some(1.0));
        assert_eq!(projection(1.0, 0.0), None);
    }
}
