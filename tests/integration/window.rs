//! Window alignment in real zones (Asia/Shanghai, Asia/Kolkata, Europe/Berlin
//! DST days) and the telescoping property of per-window counter amounts.
//!
//! Instants are written by hand as unix seconds with the local civil time
//! they stand for (checked independently of jiff).

use emgate::pipeline::window::{
    ClosedWindow, WindowAccumulator, WindowSize, window_end, window_start,
};
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or_else(|e| panic!("time zone {name} missing from tzdb: {e}"))
}

/// (start, end) of the window of `size` containing `t`.
fn span(size: WindowSize, z: &TimeZone, t: i64) -> (i64, i64) {
    let s = window_start(size, z, t);
    (s, window_end(size, z, s))
}

#[test]
fn shanghai_alignment() {
    let z = tz("Asia/Shanghai");
    // 2026-03-15T10:37:20+08:00
    let t = 1_773_542_240;
    // 10:30 .. 10:45
    assert_eq!(
        span(WindowSize::Min15, &z, t),
        (1_773_541_800, 1_773_542_700)
    );
    // 10:00 .. 11:00
    assert_eq!(
        span(WindowSize::Hour, &z, t),
        (1_773_540_000, 1_773_543_600)
    );
    // 2026-03-15T00:00+08:00 .. 2026-03-16T00:00+08:00 (16:00 UTC the day before)
    assert_eq!(span(WindowSize::Day, &z, t), (1_773_504_000, 1_773_590_400));
    // 2026-03-01T00:00+08:00 .. 2026-04-01T00:00+08:00
    assert_eq!(
        span(WindowSize::Month, &z, t),
        (1_772_294_400, 1_774_972_800)
    );
    // December rolls into the next year: 2026-12-20T08:00+08:00 is in
    // 2026-12-01T00:00+08:00 .. 2027-01-01T00:00+08:00.
    assert_eq!(
        span(WindowSize::Month, &z, 1_797_724_800),
        (1_796_054_400, 1_798_732_800)
    );
    // A boundary belongs to the window it starts.
    assert_eq!(
        window_start(WindowSize::Day, &z, 1_773_590_400),
        1_773_590_400
    );
    assert_eq!(
        window_start(WindowSize::Day, &z, 1_773_590_399),
        1_773_504_000
    );
}

#[test]
fn kolkata_half_hour_offset() {
    let z = tz("Asia/Kolkata");
    // 2026-03-15T10:37:20+05:30
    let t = 1_773_551_240;
    // 10:30 .. 10:45 local
    assert_eq!(
        span(WindowSize::Min15, &z, t),
        (1_773_550_800, 1_773_551_700)
    );
    // 10:00 .. 11:00 local = 04:30Z .. 05:30Z, not UTC hours
    assert_eq!(
        span(WindowSize::Hour, &z, t),
        (1_773_549_000, 1_773_552_600)
    );
    assert_eq!(1_773_549_000 % 3600, 1800);
    // 10:44:59 local is still in 10:30.
    assert_eq!(
        window_start(WindowSize::Min15, &z, 1_773_551_699),
        1_773_550_800
    );
}

/// Counts the windows of `size` that tile `[start, end)`.
fn count_windows(size: WindowSize, z: &TimeZone, start: i64, end: i64) -> usize {
    let mut n = 0;
    let mut b = start;
    while b < end {
        assert_eq!(window_start(size, z, b), b, "boundary {b} is not aligned");
        b = window_end(size, z, b);
        n += 1;
    }
    assert_eq!(b, end, "windows overshoot the day end");
    n
}

#[test]
fn berlin_spring_forward_day_has_23_hours() {
    let z = tz("Europe/Berlin");
    // 2026-03-29T12:00+02:00 lies in
    // 2026-03-29T00:00+01:00 (23:00Z on the 28th) .. 2026-03-30T00:00+02:00
    // (22:00Z on the 29th).
    let (s, e) = span(WindowSize::Day, &z, 1_774_778_400);
    assert_eq!((s, e), (1_774_738_800, 1_774_821_600));
    assert_eq!(e - s, 23 * 3600);
    assert_eq!(count_windows(WindowSize::Hour, &z, s, e), 23);
    assert_eq!(count_windows(WindowSize::Min15, &z, s, e), 92);
}

#[test]
fn berlin_fall_back_day_has_25_hours() {
    let z = tz("Europe/Berlin");
    // 2026-10-25T12:00+01:00 lies in
    // 2026-10-25T00:00+02:00 (22:00Z on the 24th) .. 2026-10-26T00:00+01:00
    // (23:00Z on the 25th).
    let (s, e) = span(WindowSize::Day, &z, 1_792_926_000);
    assert_eq!((s, e), (1_792_879_200, 1_792_969_200));
    assert_eq!(e - s, 25 * 3600);
    // The repeated 02:00-03:00 local hour gives two distinct hour windows.
    assert_eq!(count_windows(WindowSize::Hour, &z, s, e), 25);
    assert_eq!(count_windows(WindowSize::Min15, &z, s, e), 100);
    // Both months containing the DST days start on local midnight of the 1st:
    // 2026-10-01T00:00+02:00 = 2026-09-30T22:00Z, 2026-11-01T00:00+01:00 =
    // 2026-10-31T23:00Z.
    assert_eq!(
        span(WindowSize::Month, &z, s),
        (1_790_805_600, 1_793_487_600)
    );
}

/// Readings every 450 s from 2026-03-15T00:00+08:00 with v_k = 1000 + 4k²,
/// k = 0..=16, readings k = 6, 7, 8 missing (a 1800 s gap, longer than the
/// 900 s max gap). Boundaries fall on readings, except 2700 and 3600 s which
/// sit at 1/4 and 3/4 of the gap: all values are exact in binary.
fn hand_readings() -> Vec<(i64, f64)> {
    const BASE: i64 = 1_773_504_000;
    (0..=16_i32)
        .filter(|k| !(6..=8).contains(k))
        .map(|k| (BASE + 450 * i64::from(k), 1000.0 + 4.0 * f64::from(k * k)))
        .collect()
}

fn run(size: WindowSize, readings: &[(i64, f64)]) -> (Vec<ClosedWindow>, WindowAccumulator) {
    let mut acc = WindowAccumulator::new(size, tz("Asia/Shanghai")).with_max_gap(900);
    let mut out = Vec::new();
    for &(t, v) in readings {
        acc.push(t, v, &mut out);
    }
    (out, acc)
}

fn w(start: i64, amount: f64, coverage: f64, estimated: bool) -> ClosedWindow {
    const BASE: i64 = 1_773_504_000;
    ClosedWindow {
        start: BASE + start,
        end: BASE + start + 900,
        amount,
        coverage,
        estimated,
    }
}

#[test]
fn telescoping_exact_15m() {
    let (out, acc) = run(WindowSize::Min15, &hand_readings());
    // Boundary values: v(900)=1016, v(1800)=1064, v(2700)=1100+224/4=1156,
    // v(3600)=1100+224*3/4=1268, v(4500)=1400, v(5400)=1576, v(6300)=1784,
    // v(7200)=2024.
    assert_eq!(
        out,
        [
            w(0, 16.0, 1.0, false),
            w(900, 48.0, 1.0, false),
            w(1800, 92.0, 0.5, true),
            w(2700, 112.0, 0.0, true),
            w(3600, 132.0, 0.5, true),
            w(4500, 176.0, 1.0, false),
            w(5400, 208.0, 1.0, false),
            w(6300, 240.0, 1.0, false),
        ]
    );
    let total: f64 = out.iter().map(|w| w.amount).sum();
    assert_eq!(total, 2024.0 - 1000.0);
    let open = acc.open_window().expect("open window after readings");
    assert_eq!(open.amount, 0.0);
    assert_eq!(open.start, 1_773_504_000 + 7200);
}

#[test]
fn telescoping_exact_1h() {
    const BASE: i64 = 1_773_504_000;
    let (out, _) = run(WindowSize::Hour, &hand_readings());
    assert_eq!(
        out,
        [
            ClosedWindow {
                start: BASE,
                end: BASE + 3600,
                amount: 268.0,
                // covered 0..2250 s
                coverage: 0.625,
                estimated: true,
            },
            ClosedWindow {
                start: BASE + 3600,
                end: BASE + 7200,
                amount: 756.0,
                // covered 4050..7200 s
                coverage: 0.875,
                estimated: true,
            },
        ]
    );
    assert_eq!(out[0].amount + out[1].amount, 1024.0);
}

#[test]
fn first_window_partial_day() {
    // Start-up mid-day: the day window is emitted with the amount from the
    // first reading and coverage below 1.
    let (out, _) = run(
        WindowSize::Day,
        &[
            (1_773_504_000 + 43_200, 10.0),
            (1_773_504_000 + 43_500, 12.0),
            (1_773_590_400, 20.0),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].start, 1_773_504_000);
    assert_eq!(out[0].amount, 10.0);
    // 300 s covered; the 86 100 s gap to the boundary is longer than max_gap.
    assert_eq!(out[0].coverage, 300.0 / 86_400.0);
    // The end boundary is a reading, so nothing was interpolated.
    assert!(!out[0].estimated);
}

fn zones() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("Asia/Shanghai"),
        Just("Asia/Kolkata"),
        Just("Europe/Berlin")
    ]
}

fn sizes() -> impl Strategy<Value = WindowSize> {
    prop_oneof![
        Just(WindowSize::Min15),
        Just(WindowSize::Hour),
        Just(WindowSize::Day),
        Just(WindowSize::Month)
    ]
}

/// Steps between readings: mostly poll-like, sometimes gaps of hours to days.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 1_i64..=900, 1 => 900_i64..=200_000]
}

proptest! {
    /// Sum of closed amounts + open remainder = last − first. Tolerance
    /// 1e-9 × |last|: each amount is one subtraction of boundary values
    /// (rounding ≤ 1.1e-16 × |last|) and the sum adds n of them, n < 10⁴
    /// here, so the true error is below ~2e-12 × |last|.
    #[test]
    fn amounts_telescope(
        zone in zones(),
        size in sizes(),
        t0 in 1_700_000_000_i64..1_800_000_000,
        first in 0.0_f64..1e9,
        steps in prop::collection::vec((step(), 0.0_f64..1e5), 1..200),
    ) {
        let z = tz(zone);
        let mut acc = WindowAccumulator::new(size, z.clone());
        let mut out = Vec::new();
        acc.push(t0, first, &mut out);
        let (mut t, mut v) = (t0, first);
        for (dt, dv) in steps {
            t += dt;
            v += dv;
            acc.push(t, v, &mut out);
        }
        let open = acc.open_window().expect("open window");
        let total: f64 = out.iter().map(|w| w.amount).sum::<f64>() + open.amount;
        prop_assert!((total - (v - first)).abs() <= 1e-9 * v.abs(),
            "total {total} vs {}", v - first);
        // Windows tile the time line, aligned, with sane coverage.
        let mut prev_end = None;
        for w in out.iter().copied().chain(std::iter::once(ClosedWindow {
            start: open.start, end: open.end, amount: open.amount,
            coverage: open.coverage, estimated: open.estimated,
        })) {
            prop_assert_eq!(window_start(size, &z, w.start), w.start);
            prop_assert_eq!(window_end(size, &z, w.start), w.end);
            if let Some(e) = prev_end {
                prop_assert_eq!(w.start, e);
            }
            prop_assert!((0.0..=1.0).contains(&w.coverage));
            prop_assert!(w.amount >= 0.0);
            prev_end = Some(w.end);
        }
        prop_assert!(open.start <= t && t < open.end);
    }
}

/// Reference counter value at `x` from all readings (sorted, strictly
/// increasing times), and whether it had to be interpolated across a gap
/// longer than `max_gap`. Before the first reading the first value is used.
fn reference_at(readings: &[(i64, f64)], x: i64, max_gap: i64) -> (f64, bool) {
    match readings.iter().position(|&(t, _)| t >= x) {
        Some(i) if readings[i].0 == x => (readings[i].1, false),
        Some(0) | None => (readings[0].1, false),
        Some(i) => {
            let ((t0, v0), (t1, v1)) = (readings[i - 1], readings[i]);
            #[allow(clippy::cast_precision_loss)]
            let frac = (x - t0) as f64 / (t1 - t0) as f64;
            (v0 + (v1 - v0) * frac, t1 - t0 > max_gap)
        }
    }
}

proptest! {
    /// Each closed window agrees with a naive computation from the whole
    /// reading list: amount (same tolerance as above), coverage and
    /// `estimated` exactly.
    #[test]
    fn windows_match_reference(
        zone in zones(),
        size in sizes(),
        max_gap in 60_i64..=3600,
        t0 in 1_700_000_000_i64..1_800_000_000,
        steps in prop::collection::vec((step(), 0.0_f64..1e5), 1..150),
    ) {
        let z = tz(zone);
        let mut readings = vec![(t0, 0.0)];
        for (dt, dv) in steps {
            let &(t, v) = readings.last().expect("non-empty");
            readings.push((t + dt, v + dv));
        }
        let mut acc = WindowAccumulator::new(size, z).with_max_gap(max_gap);
        let mut out = Vec::new();
        for &(t, v) in &readings {
            acc.push(t, v, &mut out);
        }
        let last = readings.last().expect("non-empty").1;
        for w in &out {
            let (vs, es) = reference_at(&readings, w.start, max_gap);
            let (ve, ee) = reference_at(&readings, w.end, max_gap);
            prop_assert!((w.amount - (ve - vs)).abs() <= 1e-9 * last.abs().max(1.0),
                "window {}..{}: {} vs {}", w.start, w.end, w.amount, ve - vs);
            prop_assert_eq!(w.estimated, es || ee);
            let covered: i64 = readings
                .windows(2)
                .filter(|p| p[1].0 - p[0].0 <= max_gap)
                .map(|p| (p[1].0.min(w.end) - p[0].0.max(w.start)).max(0))
                .sum();
            #[allow(clippy::cast_precision_loss)]
            let coverage = covered as f64 / (w.end - w.start) as f64;
            prop_assert_eq!(w.coverage, coverage);
        }
    }
}
