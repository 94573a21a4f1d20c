//! `emgate export`: the archive's points of a range of days, as line
//! protocol (to refill an InfluxDB) or CSV (to hand on).
//!
//! Why these two: line protocol written back with `precision=s` recreates
//! exactly the points the gateway wrote; CSV opens in a spreadsheet.
//!
//! The range is `from..=to`, local days in the gateway's time zone, on the
//! point's timestamp (a window's start, an entry's time of entry). Each
//! point appears once (see [`super::reader`]), sorted by time and then by
//! series key.
//!
//! # CSV columns
//! [`CSV_COLUMNS`], in that order: `measurement`, `time` (RFC 3339 with the
//! gateway's UTC offset), the tags, the fields, and `extra` (any tag or
//! field not named here, as `key=value` pairs separated by `;`). An empty
//! cell: the point has no such tag or field. Numbers as written in the line
//! (`5.0`, `1e-7`), integers without their `i`, booleans `true`/`false`,
//! strings unescaped. A cell holding `,`, `"` or a line break is quoted
//! with `"` and its quotes doubled (RFC 4180); lines end in `\n`. The
//! `unit` column is the `unit` tag of window points and the `unit` field
//! of entries.

use std::io::Write;
use std::path::Path;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::ArchiveError;
use super::format::{Point, Value};
use super::reader::{Filter, ReadStats, for_each_day, start_of};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// InfluxDB line protocol, timestamps in seconds.
    Lp,
    /// CSV with [`CSV_COLUMNS`].
    Csv,
}

/// The CSV header, column by column.
pub const CSV_COLUMNS: [&str; 45] = [
    "measurement",
    "time",
    // tags
    "site",
    "meter",
    "boiler",
    "energy",
    "level",
    "window",
    "unit",
    "item",
    "period",
    // consumption and site_consumption
    "amount",
    "kgce",
    "controlled_kgce",
    "exported_kgce",
    "feedstock_kgce",
    "renewable_kgce",
    "meters",
    "coverage",
    "estimated",
    // entry
    "value",
    "period_start",
    "period_end",
    "entered_by",
    "reason",
    "id",
    "supersedes",
    // boiler
    "state",
    "grade",
    "eta_direct",
    "eta_indirect",
    "q2",
    "q3",
    "q4",
    "q5",
    "q6",
    "alpha",
    "load_pct",
    "heat_out_gj",
    "fuel_in_gj",
    "exhaust_c_mean",
    "o2_mean",
    "methods_disagree",
    "out_of_limit",
    "reasons",
];

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Points written.
    pub points: u64,
    /// What reading found.
    pub read: ReadStats,
}

/// Appends `s` as a CSV cell.
fn cell(s: &str, out: &mut Vec<u8>) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn text(v: &Value, raw: &str) -> String {
    match v {
        Value::Float(_) => raw.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => s.clone(),
    }
}

/// Appends one CSV row for `p`, its time shown in `tz`.
pub fn csv_row(p: &Point, tz: &TimeZone, out: &mut Vec<u8>) {
    let mut cells: Vec<String> = vec![String::new(); CSV_COLUMNS.len() + 1];
    let mut extra: Vec<String> = Vec::new();
    cells[0].clone_from(&p.measurement);
    cells[1] = jiff::Timestamp::from_second(p.time)
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default();
    let mut put = |key: &str, value: String, cells: &mut Vec<String>| match CSV_COLUMNS[2..]
        .iter()
        .position(|c| *c == key)
    {
        Some(i) if cells[i + 2].is_empty() => cells[i + 2] = value,
        _ => extra.push(format!("{key}={value}")),
    };
    for (k, v) in &p.tags {
        put(k, v.clone(), &mut cells);
    }
    for f in &p.fields {
        put(&f.key, text(&f.value, &f.raw), &mut cells);
    }
    cells[CSV_COLUMNS.len()] = extra.join(";");
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        cell(c, out);
    }
    out.push(b'\n');
}

/// Writes the points of days `from..=to` (gateway time zone `tz`) of the
/// archive `dir`, of `sites` (all when empty), in `format`, to `out`.
///
/// # Errors
/// A missing archive, an unreadable file, or a failed write.
pub fn export(
    dir: &Path,
    tz: &TimeZone,
    from: Date,
    to: Date,
    sites: &[String],
    format: Format,
    out: &mut dyn Write,
) -> Result<Summary, ArchiveError> {
    let filter = Filter {
        measurements: super::ARCHIVED.iter().map(|s| (*s).to_owned()).collect(),
        sites: (!sites.is_empty()).then(|| sites.to_vec()),
        time: Some((
            start_of(from, tz),
            start_of(to.tomorrow().unwrap_or(Date::MAX), tz),
        )),
    };
    let mut summary = Summary::default();
    let fail = |e: std::io::Error| ArchiveError::Output(e.to_string());
    if format == Format::Csv {
        let mut head = CSV_COLUMNS.join(",");
        head.push_str(",extra\n");
        out.write_all(head.as_bytes()).map_err(fail)?;
    }
    let mut buf = Vec::with_capacity(1 << 16);
    let first = from.yesterday().unwrap_or(Date::MIN);
    let last = to.tomorrow().unwrap_or(Date::MAX);
    let mut points = 0;
    for_each_day(dir, first, last, &filter, &mut summary.read, |day| {
        buf.clear();
        for p in &day {
            match format {
                Format::Lp => p.write_line(&mut buf),
                Format::Csv => csv_row(p, tz, &mut buf),
            }
        }
        points += day.len() as u64;
        out.write_all(&buf).map_err(fail)
    })?;
    out.flush().map_err(fail)?;
    summary.points = points;
    Ok(summary)
}
