//! Consumption windows: alignment in the site's local time zone and the
//! amount of a counter per window by boundary interpolation.
//!
//! Why this exists: enterprises and the regulator look at consumption per
//! 15 minutes, hour, local day (from 00:00) and month (from the 1st). A meter
//! is polled at arbitrary instants, so the counter value *at* each window
//! boundary is interpolated linearly between the two readings around it.
//! Because each boundary value is used both as the end of one window and the
//! start of the next, consecutive window amounts telescope: their sum is the
//! counter difference across the run (up to floating-point rounding of the
//! subtractions, see [`WindowAccumulator`]).
//!
//! The module is pure: no I/O, no clock, no allocation per reading. The zone
//! arithmetic (jiff) runs only when a reading crosses a window boundary.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use crate::checkpoint::{BodyReader, BodyWriter, CheckpointError};

/// Default for [`WindowAccumulator::with_max_gap`]: readings further apart
/// than this do not count as coverage, and a boundary interpolated across such
/// a gap marks its windows `estimated`. 15 minutes is the regulator's
/// real-time resolution.
pub const DEFAULT_MAX_GAP_S: i64 = 900;

/// The length of an aggregation window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSize {
    /// One minute (for tests and demos that must see windows close quickly).
    Min1,
    /// 5 minutes, aligned to the local clock.
    Min5,
    /// 15 minutes, aligned to the local clock (:00, :15, :30, :45).
    Min15,
    /// 30 minutes, aligned to the local clock (the relaxed real-time rate).
    Min30,
    /// One hour, aligned to the local clock (:00).
    Hour,
    /// One local calendar day from local midnight (23 or 25 hours on DST
    /// change days).
    Day,
    /// One local calendar month from local midnight on the 1st.
    Month,
}

impl WindowSize {
    /// All sizes, shortest first.
    pub const ALL: [WindowSize; 7] = [
        Self::Min1,
        Self::Min5,
        Self::Min15,
        Self::Min30,
        Self::Hour,
        Self::Day,
        Self::Month,
    ];

    /// The tag written to the time series (`window` tag): "1m", "5m", "15m",
    /// "30m", "1h", "1d", "1mo".
    #[must_use]
    pub fn as_tag(self) -> &'static str {
        match self {
            Self::Min1 => "1m",
            Self::Min5 => "5m",
            Self::Min15 => "15m",
            Self::Min30 => "30m",
            Self::Hour => "1h",
            Self::Day => "1d",
            Self::Month => "1mo",
        }
    }

    /// The size whose tag is `tag`.
    #[must_use]
    pub fn from_tag(tag: &str) -> Option<WindowSize> {
        Self::ALL.into_iter().find(|s| s.as_tag() == tag)
    }

    /// The nominal length in seconds of a clock-aligned size; `None` for the
    /// calendar sizes whose length depends on the date and zone.
    #[must_use]
    pub fn fixed_seconds(self) -> Option<i64> {
        match self {
            Self::Min1 => Some(60),
            Self::Min5 => Some(300),
            Self::Min15 => Some(900),
            Self::Min30 => Some(1800),
            Self::Hour => Some(3600),
            Self::Day | Self::Month => None,
        }
    }
}

/// Clamp a unix time into jiff's supported range (years -9999..=9999) so that
/// no meter timestamp can make the zone arithmetic fail.
fn to_ts(t: i64) -> Timestamp {
    let t = t.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The instant of local midnight starting `date` in `tz`. When midnight does
/// not exist (a DST gap at 00:00) the day starts at the first instant after
/// the gap (jiff's "compatible" rule).
fn local_midnight(tz: &TimeZone, date: Date) -> Option<i64> {
    let dt: DateTime = date.at(0, 0, 0, 0);
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .ok()
        .map(Timestamp::as_second)
}

/// Floor `t` to a multiple of `len` seconds of the local clock at `t`.
fn floor_local(tz: &TimeZone, t: i64, len: i64) -> i64 {
    let off = i64::from(tz.to_offset(to_ts(t)).seconds());
    t - (t + off).rem_euclid(len)
}

/// The start (unix seconds) of the window of `size` containing `t` in the
/// zone `tz`.
///
/// 15m and 1h windows are aligned to the local clock using the UTC offset in
/// force at `t`: in whole-hour zones they coincide with UTC multiples, in
/// Asia/Kolkata (+05:30) hours start at :30 UTC. During a DST fall-back the
/// repeated local hour therefore gives two distinct hourly windows. Days start
/// at local midnight, months at local midnight on the 1st. Outside jiff's
/// range (years -9999..=9999) calendar windows fall back to UTC days.
#[must_use]
pub fn window_start(size: WindowSize, tz: &TimeZone, t: i64) -> i64 {
    let date = || tz.to_datetime(to_ts(t)).date();
    let start = match size {
        WindowSize::Min1
        | WindowSize::Min5
        | WindowSize::Min15
        | WindowSize::Min30
        | WindowSize::Hour => return floor_local(tz, t, size.fixed_seconds().unwrap_or(3600)),
        WindowSize::Day => local_midnight(tz, date()),
        WindowSize::Month => local_midnight(tz, date().first_of_month()),
    };
    // A local midnight after `t` is impossible except at the range edges.
    match start {
        Some(s) if s <= t => s,
        _ => t - t.rem_euclid(86_400),
    }
}

/// The end of the window of `size` that starts at `start` (a value returned
/// by [`window_start`]): the next boundary, which is also the start of the
/// following window.
///
/// For 15m/1h, if the zone's offset changes by a non-multiple of the window
/// inside it (e.g. Lord Howe's 30-minute DST shift) the window is cut at the
/// next local-clock boundary, so windows always tile the time line.
#[must_use]
pub fn window_end(size: WindowSize, tz: &TimeZone, start: i64) -> i64 {
    let end = match size {
        WindowSize::Min1
        | WindowSize::Min5
        | WindowSize::Min15
        | WindowSize::Min30
        | WindowSize::Hour => {
            let len = size.fixed_seconds().unwrap_or(3600);
            let next = start + len;
            let aligned = window_start(size, tz, next);
            return if aligned > start { aligned } else { next };
        }
        WindowSize::Day => {
            let date = tz.to_datetime(to_ts(start)).date();
            date.tomorrow().ok().and_then(|d| local_midnight(tz, d))
        }
        WindowSize::Month => {
            let date = tz.to_datetime(to_ts(start)).date();
            let (y, m) = if date.month() == 12 {
                (date.year().saturating_add(1), 1)
            } else {
                (date.year(), date.month() + 1)
            };
            Date::new(y, m, 1).ok().and_then(|d| local_midnight(tz, d))
        }
    };
    match end {
        Some(e) if e > start => e,
        _ => start + 86_400,
    }
}

/// One window boundary crossed between two readings, with the counter value
/// there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boundary {
    /// The boundary instant (unix seconds).
    pub t: i64,
    /// The counter value at `t`: the reading itself when one falls exactly
    /// on `t`, else linearly interpolated.
    pub value: f64,
    /// True when `value` was interpolated (no reading exactly at `t`).
    pub interpolated: bool,
}

/// Iterator over the boundaries `b` with `t0 < b <= t1` between two readings;
/// built by [`CounterTrack::boundaries`]. Allocation-free.
#[derive(Debug)]
pub struct Boundaries<'a> {
    size: WindowSize,
    tz: &'a TimeZone,
    t0: i64,
    v0: f64,
    t1: i64,
    v1: f64,
    next: i64,
}

impl Iterator for Boundaries<'_> {
    type Item = Boundary;

    fn next(&mut self) -> Option<Boundary> {
        let b = self.next;
        if b > self.t1 {
            return None;
        }
        self.next = window_end(self.size, self.tz, b);
        Some(interpolate(self.t0, self.v0, self.t1, self.v1, b))
    }
}

/// Counter value at `b` (with `t0 < b <= t1`): the reading at `t1` when
/// `b == t1`, else v0 + (v1 − v0) × (b − t0)/(t1 − t0).
#[allow(clippy::cast_precision_loss)] // second counts far below 2^53
fn interpolate(t0: i64, v0: f64, t1: i64, v1: f64, b: i64) -> Boundary {
    if b == t1 {
        return Boundary {
            t: b,
            value: v1,
            interpolated: false,
        };
    }
    let frac = (b - t0) as f64 / (t1 - t0) as f64;
    // Rounding must not carry the value outside [v0, v1]: a monotonic
    // counter then never gives a negative window amount.
    let value = (v0 + (v1 - v0) * frac).clamp(v0.min(v1), v0.max(v1));
    Boundary {
        t: b,
        value,
        interpolated: true,
    }
}

/// The last accepted reading `(t, value)` of one counter, where `value` is
/// the validator's "continuous" counter (monotonic across rollovers and
/// replacements).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CounterTrack {
    last: Option<(i64, f64)>,
}

impl CounterTrack {
    /// A track with no reading yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The last accepted reading, if any.
    #[must_use]
    pub fn last(&self) -> Option<(i64, f64)> {
        self.last
    }

    /// Records `(t, value)` as the last reading. Callers must only pass
    /// readings newer than [`CounterTrack::last`] (the accumulator checks).
    pub fn accept(&mut self, t: i64, value: f64) {
        self.last = Some((t, value));
    }

    /// The boundaries of `size` in `tz` strictly after the last reading and
    /// at or before `t1`, with the counter value at each. Empty when there is
    /// no last reading or `t1` is not newer.
    #[must_use]
    pub fn boundaries<'a>(
        &self,
        size: WindowSize,
        tz: &'a TimeZone,
        t1: i64,
        v1: f64,
    ) -> Boundaries<'a> {
        let (t0, _) = self.last.unwrap_or((t1, v1));
        self.boundaries_from(
            size,
            tz,
            window_end(size, tz, window_start(size, tz, t0)),
            t1,
            v1,
        )
    }

    /// Like [`CounterTrack::boundaries`] with the first boundary after the
    /// last reading already known (the accumulator keeps it), which saves
    /// the zone lookups.
    fn boundaries_from<'a>(
        &self,
        size: WindowSize,
        tz: &'a TimeZone,
        first: i64,
        t1: i64,
        v1: f64,
    ) -> Boundaries<'a> {
        let (t0, v0) = self.last.unwrap_or((t1, v1));
        // Nothing to yield unless the new reading is newer.
        let next = if t1 > t0 { first } else { i64::MAX };
        Boundaries {
            size,
            tz,
            t0,
            v0,
            t1,
            v1,
            next,
        }
    }
}

/// A finished window of one counter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedWindow {
    /// Aligned window start (unix seconds); the time stamp to write.
    pub start: i64,
    /// Window end (unix seconds), the next window's start.
    pub end: i64,
    /// counter(end) − counter(start), each boundary value interpolated or
    /// taken from a reading exactly on it. For the first window after
    /// start-up, counter(start) is the first reading (see [`Self::coverage`]).
    pub amount: f64,
    /// Fraction of `[start, end)` lying between consecutive readings at most
    /// `max_gap` apart (0..=1). Below 1 for the partial first window (before
    /// the first reading is not covered) and for windows with long gaps.
    pub coverage: f64,
    /// A boundary of this window was interpolated across a gap longer than
    /// `max_gap`, so the split of the amount between windows is a guess
    /// (the total over the gap stays exact).
    pub estimated: bool,
}

/// The window still open after the last reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenWindow {
    /// Aligned window start.
    pub start: i64,
    /// Window end.
    pub end: i64,
    /// last reading − counter(start) so far.
    pub amount: f64,
    /// Coverage so far, as a fraction of the whole window.
    pub coverage: f64,
    /// The start boundary was interpolated across a long gap.
    pub estimated: bool,
}

/// What [`WindowAccumulator::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The reading advanced the counter track.
    Accepted,
    /// Not newer than the last accepted reading; ignored (late-data handling
    /// is the caller's job).
    NotNewer,
    /// The value was NaN or infinite; ignored.
    NotFinite,
}

/// Per-counter state of the open window: the counter value at its start and
/// the covered seconds so far.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Open {
    start: i64,
    end: i64,
    start_value: f64,
    start_estimated: bool,
    covered: i64,
}

/// The window state of one counter for one window size, without the zone:
/// `Copy`, a few words, so the aggregator keeps it in flat tables and copies
/// it cheaply. [`WindowAccumulator`] is the same with the size and zone
/// attached.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CounterWindows {
    track: CounterTrack,
    open: Option<Open>,
}

/// Bytes of [`CounterWindows::write_to`].
pub const COUNTER_WINDOWS_BYTES: usize = 1 + 16 + 1 + 33;

impl CounterWindows {
    /// No reading yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The last accepted reading.
    #[must_use]
    pub fn last(&self) -> Option<(i64, f64)> {
        self.track.last()
    }

    /// Feeds one reading (`t` unix seconds, `continuous` counter value) and
    /// calls `emit` for every window it closes, oldest first. See
    /// [`WindowAccumulator::push`].
    pub fn push(
        &mut self,
        size: WindowSize,
        tz: &TimeZone,
        max_gap: i64,
        t: i64,
        continuous: f64,
        mut emit: impl FnMut(ClosedWindow),
    ) -> PushOutcome {
        if !continuous.is_finite() {
            return PushOutcome::NotFinite;
        }
        let (Some((t0, _)), Some(mut open)) = (self.track.last(), self.open) else {
            let start = window_start(size, tz, t);
            self.open = Some(Open {
                start,
                end: window_end(size, tz, start),
                start_value: continuous,
                start_estimated: false,
                covered: 0,
            });
            self.track.accept(t, continuous);
            return PushOutcome::Accepted;
        };
        if t <= t0 {
            return PushOutcome::NotNewer;
        }
        let long = t - t0 > max_gap;
        if t < open.end {
            // Hot path: no boundary crossed, no zone arithmetic.
            if !long {
                open.covered += t - t0;
            }
            self.open = Some(open);
            self.track.accept(t, continuous);
            return PushOutcome::Accepted;
        }
        let boundaries = self
            .track
            .boundaries_from(size, tz, open.end, t, continuous);
        for b in boundaries {
            if !long {
                open.covered += b.t - t0.max(open.start);
            }
            let estimated = long && b.interpolated;
            emit(ClosedWindow {
                start: open.start,
                end: open.end,
                amount: b.value - open.start_value,
                coverage: ratio(open.covered, open.end - open.start),
                estimated: open.start_estimated || estimated,
            });
            open = Open {
                start: b.t,
                end: window_end(size, tz, b.t),
                start_value: b.value,
                start_estimated: estimated,
                covered: 0,
            };
        }
        if !long {
            open.covered += t - t0.max(open.start);
        }
        self.open = Some(open);
        self.track.accept(t, continuous);
        PushOutcome::Accepted
    }

    /// The window containing the last reading, with its amount so far;
    /// `None` before the first reading.
    #[must_use]
    pub fn open_window(&self) -> Option<OpenWindow> {
        let open = self.open?;
        let (_, last) = self.track.last()?;
        Some(OpenWindow {
            start: open.start,
            end: open.end,
            amount: last - open.start_value,
            coverage: ratio(open.covered, open.end - open.start),
            estimated: open.start_estimated,
        })
    }

    /// Writes the state as [`COUNTER_WINDOWS_BYTES`] little-endian bytes
    /// (for checkpoints): a flag and the last reading (`t`, value), then a
    /// flag and the open window (start, end, start value, estimated flag,
    /// covered seconds); zeros where there is none.
    pub fn write_to(&self, w: &mut BodyWriter) {
        match self.track.last() {
            Some((t, v)) => {
                w.u8(1);
                w.i64(t);
                w.f64(v);
            }
            None => w.bytes(&[0; 17]),
        }
        match self.open {
            Some(o) => {
                w.u8(1);
                w.i64(o.start);
                w.i64(o.end);
                w.f64(o.start_value);
                w.u8(u8::from(o.start_estimated));
                w.i64(o.covered);
            }
            None => w.bytes(&[0; 34]),
        }
    }

    /// Reads a state written by [`Self::write_to`].
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] when fewer than
    /// [`COUNTER_WINDOWS_BYTES`] remain, [`CheckpointError::Invalid`] when
    /// the state is inconsistent (a reading without an open window or the
    /// reverse).
    pub fn read_from(r: &mut BodyReader<'_>) -> Result<CounterWindows, CheckpointError> {
        let mut b = BodyReader::new("window state", r.bytes(COUNTER_WINDOWS_BYTES)?);
        let mut track = CounterTrack::new();
        let has_last = b.u8()? == 1;
        let (t, v) = (b.i64()?, b.f64()?);
        if has_last {
            track.accept(t, v);
        }
        let has_open = b.u8()? == 1;
        let open = Open {
            start: b.i64()?,
            end: b.i64()?,
            start_value: b.f64()?,
            start_estimated: b.u8()? == 1,
            covered: b.i64()?,
        };
        if has_last != has_open {
            return Err(r.invalid("counter window state"));
        }
        Ok(CounterWindows {
            track,
            open: has_open.then_some(open),
        })
    }
}

/// Turns one counter's readings into closed windows of one size.
///
/// Decisions:
/// * The first window after start-up is **emitted**, starting at its aligned
///   start but with the amount counted from the first reading; its coverage is
///   below 1 (time before the first reading is uncovered), which tells the
///   consumer it is partial.
/// * Readings not newer than the last one, or non-finite, are ignored and
///   reported through [`PushOutcome`]; a decreasing counter is not judged
///   here (the validator's "continuous" counter is already monotonic).
/// * Telescoping: every boundary value is computed once and used as the end
///   of one window and the start of the next, so the sum of closed amounts
///   plus the open remainder equals last − first up to the rounding of the
///   per-window subtractions and of the summation: with n windows, within
///   about n × 2.2e-16 × |last| (tests allow 1e-9 × |last|). Boundaries that
///   fall on readings (e.g. readings every 450 s, 15-minute windows, integer
///   values) give exact results.
///
/// Memory is fixed (a few words plus the zone handle); `push` does not
/// allocate apart from growing the caller's `out`.
#[derive(Debug, Clone)]
pub struct WindowAccumulator {
    size: WindowSize,
    tz: TimeZone,
    max_gap: i64,
    state: CounterWindows,
}

impl WindowAccumulator {
    /// An accumulator for windows of `size` in zone `tz`, with
    /// [`DEFAULT_MAX_GAP_S`].
    #[must_use]
    pub fn new(size: WindowSize, tz: TimeZone) -> Self {
        Self {
            size,
            tz,
            max_gap: DEFAULT_MAX_GAP_S,
            state: CounterWindows::new(),
        }
    }

    /// Sets the longest gap (seconds) between readings that still counts as
    /// covered and whose interpolated boundaries are not `estimated`.
    #[must_use]
    pub fn with_max_gap(mut self, max_gap_s: i64) -> Self {
        self.max_gap = max_gap_s.max(0);
        self
    }

    /// The window size.
    #[must_use]
    pub fn size(&self) -> WindowSize {
        self.size
    }

    /// The last accepted reading.
    #[must_use]
    pub fn last(&self) -> Option<(i64, f64)> {
        self.state.last()
    }

    /// Feeds one reading (`t` unix seconds, `continuous` counter value) and
    /// appends every window it closes to `out` (oldest first). A reading
    /// after an outage closes one window per boundary in the gap (e.g. 96
    /// 15-minute windows per day missed), all `estimated`; a reading that
    /// crosses no boundary touches no zone data.
    pub fn push(&mut self, t: i64, continuous: f64, out: &mut Vec<ClosedWindow>) -> PushOutcome {
        self.state
            .push(self.size, &self.tz, self.max_gap, t, continuous, |w| {
                out.push(w);
            })
    }

    /// The window containing the last reading, with its amount so far;
    /// `None` before the first reading.
    #[must_use]
    pub fn open_window(&self) -> Option<OpenWindow> {
        self.state.open_window()
    }
}

#[allow(clippy::cast_precision_loss)] // window lengths far below 2^53 s
fn ratio(covered: i64, len: i64) -> f64 {
    if len <= 0 {
        0.0
    } else {
        (covered as f64 / len as f64).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("bundled or system tzdb has the zone")
    }

    #[test]
    fn kolkata_hours_start_at_half_past_utc() {
        // 2026-03-15T10:37:20+05:30 -> 10:00+05:30 = 04:30Z.
        let z = tz("Asia/Kolkata");
        let s = window_start(WindowSize::Hour, &z, 1_773_551_240);
        assert_eq!(s, 1_773_549_000);
        assert_eq!(window_end(WindowSize::Hour, &z, s), 1_773_552_600);
    }

    #[test]
    fn tags() {
        let tags: Vec<_> = WindowSize::ALL.iter().map(|s| s.as_tag()).collect();
        assert_eq!(tags, ["1m", "5m", "15m", "30m", "1h", "1d", "1mo"]);
        assert!(
            WindowSize::ALL
                .iter()
                .all(|s| WindowSize::from_tag(s.as_tag()) == Some(*s))
        );
    }

    #[test]
    fn interpolation_uses_reading_on_boundary() {
        let mut track = CounterTrack::new();
        track.accept(1500, 10.0);
        let z = TimeZone::UTC;
        let got: Vec<_> = track
            .boundaries(WindowSize::Min15, &z, 2700, 22.0)
            .collect();
        assert_eq!(
            got,
            [
                Boundary {
                    t: 1800,
                    value: 13.0,
                    interpolated: true
                },
                Boundary {
                    t: 2700,
                    value: 22.0,
                    interpolated: false
                },
            ]
        );
    }

    #[test]
    fn first_window_is_partial_and_gap_estimated() {
        let mut acc = WindowAccumulator::new(WindowSize::Min15, TimeZone::UTC);
        let mut out = Vec::new();
        assert_eq!(acc.push(450, 0.0, &mut out), PushOutcome::Accepted);
        assert_eq!(acc.push(450, 5.0, &mut out), PushOutcome::NotNewer);
        assert_eq!(acc.push(460, f64::NAN, &mut out), PushOutcome::NotFinite);
        acc.push(900, 3.0, &mut out);
        assert_eq!(
            out,
            [ClosedWindow {
                start: 0,
                end: 900,
                amount: 3.0,
                coverage: 0.5,
                estimated: false
            }]
        );
        out.clear();
        // 1 h gap (> 900 s): boundaries at 1800, 2700, 3600 interpolated.
        acc.push(4500, 43.0, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].amount, 10.0);
        assert!(out.iter().all(|w| w.estimated && w.coverage == 0.0));
        let open = acc.open_window().expect("open");
        assert_eq!((open.start, open.end, open.amount), (4500, 5400, 0.0));
        assert!(!open.estimated);
    }

    #[test]
    fn state_bytes_round_trip() {
        use crate::checkpoint::{Kind, decode};
        const KIND: Kind = Kind {
            name: "test",
            magic: *b"TEST",
            version: 1,
            oldest: 1,
            legacy: &[],
        };
        let round_trip = |st: &CounterWindows| {
            let mut w = BodyWriter::new(&KIND);
            st.write_to(&mut w);
            assert_eq!(w.body().len(), COUNTER_WINDOWS_BYTES);
            let bytes = w.finish();
            let mut r = decode(&KIND, &bytes).expect("decode").body;
            let back = CounterWindows::read_from(&mut r);
            assert!(r.is_empty());
            (bytes, back)
        };
        let mut st = CounterWindows::new();
        assert_eq!(round_trip(&st).1, Ok(st));
        st.push(WindowSize::Min15, &TimeZone::UTC, 900, 450, 7.5, |_| {});
        st.push(WindowSize::Min15, &TimeZone::UTC, 900, 1000, 9.5, |_| {});
        let (bytes, back) = round_trip(&st);
        assert_eq!(back, Ok(st));
        let body = &bytes[10..10 + COUNTER_WINDOWS_BYTES];
        let short = CounterWindows::read_from(&mut BodyReader::new("test", &body[1..]));
        assert!(matches!(short, Err(CheckpointError::Truncated { .. })));
        // A reading without an open window.
        let mut odd = body.to_vec();
        odd[17] = 0;
        let odd = CounterWindows::read_from(&mut BodyReader::new("test", &odd));
        assert!(matches!(odd, Err(CheckpointError::Invalid { .. })));
    }
}
