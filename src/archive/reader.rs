//! Reading the archive back: the points of a range of days, each point once.
//!
//! Why merge: a window written again (a late reading, a restart that
//! re-opens a window) is a second line with the same series and timestamp.
//! InfluxDB keeps one point for it, whose fields are the union of both
//! writes, the later write winning per field; the reader does exactly the
//! same, so an export refills a database with what the original holds.
//!
//! Days are read one at a time (a point's file is the day of its own
//! timestamp, so all versions of a point are in the same day's files) and
//! handed to the caller sorted by (time, series key): memory holds one day.

use std::collections::HashMap;
use std::path::Path;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::ArchiveError;
use super::files::read_day;
use super::format::{Point, parse};

/// What reading found besides points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Complete lines read.
    pub lines: u64,
    /// Lines that were a later version of a point already read (merged).
    pub merged: u64,
    /// Last lines without their `\n` (a crash tore them): skipped.
    pub torn: u64,
    /// Complete lines that are not line protocol as we write it: skipped.
    pub malformed: u64,
    /// Compressed files whose end could not be decompressed.
    pub damaged_files: u64,
}

impl std::fmt::Display for ReadStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines read, {} later versions merged, {} torn and {} malformed lines skipped, {} damaged files",
            self.lines, self.merged, self.torn, self.malformed, self.damaged_files
        )
    }
}

/// Which points to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these measurements (all when empty).
    pub measurements: Vec<String>,
    /// Only points whose `site` tag is one of these (all when `None`).
    pub sites: Option<Vec<String>>,
    /// Only points with a timestamp in `[from, to)`, Unix seconds.
    pub time: Option<(i64, i64)>,
}

impl Filter {
    fn keeps(&self, p: &Point) -> bool {
        (self.measurements.is_empty() || self.measurements.contains(&p.measurement))
            && self.sites.as_ref().is_none_or(|s| {
                p.tag("site")
                    .is_some_and(|site| s.iter().any(|x| x == site))
            })
            && self.time.is_none_or(|(a, b)| p.time >= a && p.time < b)
    }
}

/// Merges `later` into `earlier` as InfluxDB does: fields of `later` win,
/// fields only in `earlier` stay (after `later`'s own).
fn merge(earlier: &mut Point, later: Point) {
    let mut fields = later.fields;
    for f in earlier.fields.drain(..) {
        if !fields.iter().any(|x| x.key == f.key) {
            fields.push(f);
        }
    }
    earlier.fields = fields;
}

/// The points of the bytes of one day, merged and sorted; counts in `stats`.
#[must_use]
pub fn points_of(bytes: &[u8], filter: &Filter, stats: &mut ReadStats) -> Vec<Point> {
    let mut points: Vec<Point> = Vec::new();
    let mut index: HashMap<(String, i64), usize> = HashMap::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            stats.torn += 1;
            break;
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            continue;
        }
        stats.lines += 1;
        let Ok(p) = parse(line) else {
            stats.malformed += 1;
            continue;
        };
        if !filter.keeps(&p) {
            continue;
        }
        if let Some(&i) = index.get(&(p.series.clone(), p.time)) {
            stats.merged += 1;
            merge(&mut points[i], p);
        } else {
            index.insert((p.series.clone(), p.time), points.len());
            points.push(p);
        }
    }
    points.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.series.cmp(&b.series)));
    points
}

/// The local date of `ts` in `tz`.
#[must_use]
pub fn day_of(ts: i64, tz: &TimeZone) -> Date {
    jiff::Timestamp::from_second(ts)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
        .date()
}

/// Local midnight of `day` in `tz`, Unix seconds.
#[must_use]
pub fn start_of(day: Date, tz: &TimeZone) -> i64 {
    day.to_zoned_datetime(tz.clone())
        .map_or(0, |z| z.timestamp().as_second())
}

/// Calls `each` with the points of every day from `first` to `last`
/// (both included), one day at a time, in order.
///
/// # Errors
/// When the directory is missing or a file cannot be read; what `each` returns.
pub fn for_each_day(
    dir: &Path,
    first: Date,
    last: Date,
    filter: &Filter,
    stats: &mut ReadStats,
    mut each: impl FnMut(Vec<Point>) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    if !dir.is_dir() {
        return Err(ArchiveError::Missing(dir.to_path_buf()));
    }
    let mut day = first;
    while day <= last {
        let (bytes, damaged) = read_day(dir, day)?;
        if damaged {
            stats.damaged_files += 1;
        }
        if !bytes.is_empty() {
            each(points_of(&bytes, filter, stats))?;
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    Ok(())
}

/// Every point of `[from, to)` (Unix seconds) that `filter` keeps, each
/// once, sorted by time. Files are named by the day in `tz`; one more day
/// is read at each end, in case the gateway's time zone changed.
///
/// # Errors
/// See [`for_each_day`].
pub fn read_range(
    dir: &Path,
    tz: &TimeZone,
    from: i64,
    to: i64,
    filter: &Filter,
) -> Result<(Vec<Point>, ReadStats), ArchiveError> {
    let mut filter = filter.clone();
    filter.time = Some((from, to));
    let first = day_of(from, tz).yesterday().unwrap_or(Date::MIN);
    let last = day_of(to.saturating_sub(1).max(from), tz)
        .tomorrow()
        .unwrap_or(Date::MAX);
    let mut stats = ReadStats::default();
    let mut out = Vec::new();
    for_each_day(dir, first, last, &filter, &mut stats, |mut p| {
        out.append(&mut p);
        Ok(())
    })?;
    Ok((out, stats))
}

/// Every point in the archive that `filter` keeps (all days on disk).
///
/// # Errors
/// See [`for_each_day`].
pub fn read_all(dir: &Path, filter: &Filter) -> Result<(Vec<Point>, ReadStats), ArchiveError> {
    if !dir.is_dir() {
        return Err(ArchiveError::Missing(dir.to_path_buf()));
    }
    let days: Vec<Date> = super::files::list(dir)?
        .into_iter()
        .map(|(d, _, _)| d)
        .collect();
    let mut stats = ReadStats::default();
    let mut out = Vec::new();
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        for_each_day(dir, *first, *last, filter, &mut stats, |mut p| {
            out.append(&mut p);
            Ok(())
        })?;
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_versions_merge_field_by_field() {
        let bytes = b"consumption,meter=m,site=s amount=1.0,kgce=0.5 60\n\
            consumption,meter=m,site=s amount=2.0 60\n\
            consumption,meter=m,site=s amount=3.0,kgce=1.5 0\n\
            not a line\n\
            consumption,meter=m,site=s amo";
        let mut stats = ReadStats::default();
        let points = points_of(bytes, &Filter::default(), &mut stats);
        assert_eq!(
            stats,
            ReadStats {
                lines: 4,
                merged: 1,
                torn: 1,
                malformed: 1,
                damaged_files: 0
            }
        );
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].time, 0);
        assert_eq!(points[1].float("amount"), Some(2.0));
        assert_eq!(points[1].float("kgce"), Some(0.5));
        let mut out = Vec::new();
        points[1].write_line(&mut out);
        assert_eq!(out, b"consumption,meter=m,site=s amount=2.0,kgce=0.5 60\n");
    }
}
