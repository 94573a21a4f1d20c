//! From what a user typed (CLI options or API query parameters, both as
//! strings) to a [`Request`], the report built for it, and its rendering.
//!
//! Why one place: `emgate report` and `GET /api/reports/KIND` must accept
//! the same options with the same messages and answer the same JSON; only
//! where the text goes differs. Also the helpers every builder shares:
//! which sites a request covers and a range's bounds in a site's zone.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

use super::{
    Granularity, Output, Range, ReportError, ReportKind, Request, Sites, Store, completeness,
    consistency, consumption, html, targets, text, verification,
};
use crate::config::{Config, SiteConfig};

/// Default `due_within` of the verification report, days.
pub const DEFAULT_DUE_WITHIN_DAYS: u32 = 30;

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table for a terminal.
    Table,
    /// The document's first table as CSV.
    Csv,
    /// The typed report (the API's answer).
    Json,
    /// One self-contained HTML file with SVG charts.
    Html,
}

impl Format {
    /// Parses `table`, `csv`, `json` or `html`.
    ///
    /// # Errors
    /// [`ReportError::Request`] naming the formats.
    pub fn parse(name: &str) -> Result<Format, ReportError> {
        match name {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            _ => Err(bad(format!(
                "unknown format \"{name}\"; use table, csv, json or html"
            ))),
        }
    }

    /// The HTTP content type of the rendering.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// A report's options as typed, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The kind's name.
    pub kind: String,
    /// `--site`, repeated and/or comma-separated; empty: every site.
    pub sites: Vec<String>,
    /// `--year YYYY`.
    pub year: Option<String>,
    /// `--month YYYY-MM`.
    pub month: Option<String>,
    /// `--from YYYY-MM-DD`.
    pub from: Option<String>,
    /// `--to YYYY-MM-DD` (included).
    pub to: Option<String>,
    /// `--granularity day|month|year` (default: day).
    pub granularity: Option<String>,
    /// `--due-within DAYS` (default 30).
    pub due_within: Option<String>,
}

fn bad(message: impl Into<String>) -> ReportError {
    ReportError::Request(message.into())
}

/// The kinds, for messages.
fn kind_names() -> String {
    ReportKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sites named in `names` (each may be comma-separated), checked
/// against `config`; none: every site.
///
/// # Errors
/// `unknown site "S"; known: a, b`.
pub fn parse_sites(config: &Config, names: &[String]) -> Result<Sites, ReportError> {
    let mut list: Vec<String> = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        if !config.sites.iter().any(|s| s.id == name) {
            let known: Vec<&str> = config.sites.iter().map(|s| s.id.as_str()).collect();
            return Err(bad(format!(
                "unknown site \"{name}\"; known: {}",
                known.join(", ")
            )));
        }
        if !list.iter().any(|s| s == name) {
            list.push(name.to_owned());
        }
    }
    Ok(if list.is_empty() {
        Sites::All
    } else {
        Sites::Only(list)
    })
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_year(text: &str) -> Result<i16, ReportError> {
    let err = || {
        bad(format!(
            "year \"{text}\" is malformed; use a year such as 2026"
        ))
    };
    if !digits(text, 4) {
        return Err(err());
    }
    text.parse().map_err(|_| err())
}

fn parse_month(text: &str) -> Result<(i16, i8), ReportError> {
    let err = || bad(format!("month \"{text}\" is malformed; use YYYY-MM"));
    let (y, m) = text.split_once('-').ok_or_else(err)?;
    if !digits(y, 4) || !digits(m, 2) {
        return Err(err());
    }
    let (y, m): (i16, i8) = (y.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    Date::new(y, m, 1).map_err(|_| err())?;
    Ok((y, m))
}

fn parse_date(key: &str, text: &str) -> Result<Date, ReportError> {
    let err = || bad(format!("{key} \"{text}\" is malformed; use YYYY-MM-DD"));
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() != 3 || !digits(parts[0], 4) || !digits(parts[1], 2) || !digits(parts[2], 2) {
        return Err(err());
    }
    text.parse::<Date>().map_err(|_| err())
}

/// The range options: at most one of year, month, from+to.
fn parse_range(args: &Args) -> Result<Option<Range>, ReportError> {
    let given = [
        args.year.is_some(),
        args.month.is_some(),
        args.from.is_some() || args.to.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        return Err(bad("give one range: year, month, or from with to"));
    }
    if let Some(y) = &args.year {
        return Ok(Some(Range::Year(parse_year(y)?)));
    }
    if let Some(m) = &args.month {
        let (y, m) = parse_month(m)?;
        return Ok(Some(Range::Month(y, m)));
    }
    match (&args.from, &args.to) {
        (None, None) => Ok(None),
        (Some(f), Some(t)) => {
            let (f, t) = (parse_date("from", f)?, parse_date("to", t)?);
            if f > t {
                return Err(bad(format!("from {f} is after to {t}")));
            }
            Ok(Some(Range::Days(f, t)))
        }
        _ => Err(bad(
            "from and to go together: give both days (to is included)",
        )),
    }
}

/// Checks `args` against `config` into a [`Request`] at `now`.
///
/// # Errors
/// [`ReportError::Request`] with what is wrong and what would be right.
pub fn parse_request(config: &Config, args: &Args, now: Timestamp) -> Result<Request, ReportError> {
    let kind = ReportKind::parse(&args.kind).ok_or_else(|| {
        bad(format!(
            "unknown report \"{}\"; kinds: {}",
            args.kind,
            kind_names()
        ))
    })?;
    let sites = parse_sites(config, &args.sites)?;
    let range = parse_range(args)?;
    let granularity = match args.granularity.as_deref() {
        None | Some("day") => Granularity::Day,
        Some("month") => Granularity::Month,
        Some("year") => Granularity::Year,
        Some(g) => {
            return Err(bad(format!(
                "unknown granularity \"{g}\"; use day, month or year"
            )));
        }
    };
    let due_within_days = match args.due_within.as_deref() {
        None => DEFAULT_DUE_WITHIN_DAYS,
        Some(d) => d.parse().map_err(|_| {
            bad(format!(
                "due_within \"{d}\" is not a number of days (0 or more)"
            ))
        })?,
    };
    Ok(Request {
        kind,
        sites,
        range,
        now,
        granularity,
        due_within_days,
    })
}

/// Builds the report `req` asks for from `store`.
///
/// # Errors
/// A bad request for this configuration, or the store's failure.
pub async fn build(
    config: &Config,
    store: &impl Store,
    req: &Request,
) -> Result<Output, ReportError> {
    match req.kind {
        ReportKind::Consumption => consumption::build(config, store, req).await,
        ReportKind::Targets => targets::build(config, store, req).await,
        ReportKind::Completeness => completeness::build(config, store, req).await,
        ReportKind::Consistency => consistency::build(config, store, req).await,
        ReportKind::Verification => verification::build(config, store, req).await,
    }
}

/// `output` written out in `format`.
#[must_use]
pub fn render(output: &Output, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&output.json).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Table => text::table(&output.document),
        Format::Csv => text::csv(&output.document),
        Format::Html => html::render(&output.document),
    }
}

/// `emgate report`: checks `args` and `format`, reads InfluxDB (the
/// configuration's `[influxdb]`, or `overrides`) or the local archive
/// (`archive`, or a file output without `--url`; see [`super::source`])
/// and renders the report.
///
/// # Errors
/// [`ReportError::Request`] for a bad request or no database to read
/// (exit 2); [`ReportError::Store`] when the database fails (exit 1).
pub async fn make(
    config: &Config,
    args: &Args,
    format: &str,
    overrides: &super::store_influx::InfluxOverrides,
    archive: bool,
    now: Timestamp,
) -> Result<String, ReportError> {
    let format = Format::parse(format)?;
    let req = parse_request(config, args, now)?;
    let store = super::source::Source::open(config, overrides, archive)?;
    let output = build(config, &store, &req).await?;
    Ok(render(&output, format))
}

/// The configured sites a request covers, in configuration order.
#[must_use]
pub fn sites_of<'a>(config: &'a Config, sites: &Sites) -> Vec<&'a SiteConfig> {
    config
        .sites
        .iter()
        .filter(|s| match sites {
            Sites::All => true,
            Sites::Only(list) => list.contains(&s.id),
        })
        .collect()
}

/// The sites of `sites` grouped by time zone (one query per zone): each
/// group's zone and its site ids, in configuration order of first site.
#[must_use]
pub fn zone_groups<'a>(sites: &[&'a SiteConfig]) -> Vec<(&'a TimeZone, Vec<String>)> {
    let mut groups: Vec<(&TimeZone, Vec<String>)> = Vec::new();
    for s in sites {
        if let Some(g) = groups.iter_mut().find(|(tz, _)| **tz == s.timezone) {
            g.1.push(s.id.clone());
        } else {
            groups.push((&s.timezone, vec![s.id.clone()]));
        }
    }
    groups
}

/// What a query over one zone group's `ids` asks for: every site when
/// the request is for every site and all of them share one zone (the
/// database then filters on time and window only, much faster than a
/// long `site = … OR …`; rows of unconfigured sites are ignored by the
/// builders), else exactly the ids.
#[must_use]
pub fn query_sites(requested: &Sites, groups: usize, ids: &[String]) -> Sites {
    if *requested == Sites::All && groups == 1 {
        Sites::All
    } else {
        Sites::Only(ids.to_vec())
    }
}

/// `[first, last]` local days of `range` (the last included).
#[must_use]
pub fn range_days(range: Range) -> Option<(Date, Date)> {
    match range {
        Range::Year(y) => Some((Date::new(y, 1, 1).ok()?, Date::new(y, 12, 31).ok()?)),
        Range::Month(y, m) => {
            let first = Date::new(y, m, 1).ok()?;
            Some((first, first.last_of_month()))
        }
        Range::Days(f, t) => Some((f, t)),
    }
}

/// Unix seconds of local midnight starting `day` in `tz`.
#[must_use]
pub fn midnight(day: Date, tz: &TimeZone) -> Option<i64> {
    Some(
        day.to_zoned_datetime(tz.clone())
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// `range` as `[from, to)` Unix seconds in `tz`.
#[must_use]
pub fn bounds(range: Range, tz: &TimeZone) -> Option<(i64, i64)> {
    let (first, last) = range_days(range)?;
    let end = last.checked_add(1.day()).ok()?;
    Some((midnight(first, tz)?, midnight(end, tz)?))
}

/// The calendar year of `now` in `tz`.
#[must_use]
pub fn year_of(now: Timestamp, tz: &TimeZone) -> i16 {
    now.to_zoned_datetime(tz.clone()).year()
}

/// `--site` as a subtitle fragment.
#[must_use]
pub fn describe_sites(sites: &[&SiteConfig]) -> String {
    match sites.len() {
        0 => "no site".to_owned(),
        1 => format!("site {}", sites[0].id),
        n if n <= 5 => format!(
            "sites {}",
            sites
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        n => format!("{n} sites"),
    }
}

/// A range as people write it: `2026`, `2026-03`, `2026-03-01 to 2026-03-31`.
#[must_use]
pub fn describe_range(range: Range) -> String {
    match range {
        Range::Year(y) => format!("{y}"),
        Range::Month(y, m) => format!("{y}-{m:02}"),
        Range::Days(f, t) => format!("{f} to {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut Args)) -> Args {
        let mut a = Args::default();
        f(&mut a);
        a
    }

    #[test]
    fn ranges_parse_and_refuse_with_their_messages() {
        let r = |a: Args| parse_range(&a).map_err(|e| e.to_string());
        assert_eq!(
            r(args(|a| a.year = Some("2025".into()))),
            Ok(Some(Range::Year(2025)))
        );
        assert_eq!(
            r(args(|a| a.month = Some("2026-03".into()))),
            Ok(Some(Range::Month(2026, 3)))
        );
        assert_eq!(
            r(args(|a| a.month = Some("2026-13".into()))),
            Err("month \"2026-13\" is malformed; use YYYY-MM".into())
        );
        assert_eq!(
            r(args(|a| {
                a.from = Some("2026-03-02".into());
                a.to = Some("2026-03-01".into());
            })),
            Err("from 2026-03-02 is after to 2026-03-01".into())
        );
        assert_eq!(
            r(args(|a| a.from = Some("2026-03-02".into()))),
            Err("from and to go together: give both days (to is included)".into())
        );
        assert_eq!(
            r(args(|a| {
                a.year = Some("2026".into());
                a.month = Some("2026-01".into());
            })),
            Err("give one range: year, month, or from with to".into())
        );
        assert_eq!(
            r(args(|a| {
                a.from = Some("2026-2-1".into());
                a.to = Some("2026-03-01".into());
            })),
            Err("from \"2026-2-1\" is malformed; use YYYY-MM-DD".into())
        );
    }

    #[test]
    fn bounds_are_local_midnights() {
        let tz = TimeZone::get("Asia/Shanghai").expect("tz");
        // 2026-01-01T00:00+08:00 = 1767196800.
        assert_eq!(
            bounds(Range::Year(2026), &tz),
            Some((1_767_196_800, 1_767_196_800 + 365 * 86_400))
        );
        let d = |s: &str| s.parse::<Date>().expect("date");
        assert_eq!(
            bounds(Range::Days(d("2026-01-01"), d("2026-01-02")), &tz),
            Some((1_767_196_800, 1_767_196_800 + 2 * 86_400))
        );
    }
}
