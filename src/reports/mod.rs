//! Reports for the gateway's three users: the regulator (`targets`), the
//! enterprise (`consumption`) and the institute (`completeness`,
//! `consistency`, `verification`).
//!
//! Why a room of its own: reports read what gateways wrote (any number of
//! them, into one database), never the live pipeline. The layers:
//! * [`Store`]: the rows a report reads and where from: InfluxQL over
//!   `/query` (`store_influx`) or the gateway's local archive;
//! * one module per kind: a pure builder from the configuration and those
//!   rows to a typed report (its JSON, the API's answer) and a [`Document`];
//! * renderers from a [`Document`] to a terminal table, CSV and a
//!   self-contained HTML file with SVG charts.
//!
//! Nothing here imports `app` or `api`; the CLI and the API call in.

use serde::Serialize;

pub mod completeness;
pub mod consistency;
pub mod consumption;
pub mod html;
pub mod run;
pub mod source;
pub mod store_archive;
pub mod store_influx;
pub mod svg;
pub mod targets;
pub mod text;
pub mod verification;

/// The report kinds, as named on the command line and in `/api/reports/KIND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Per site and day, month or year, per energy type: amount, tce, coverage.
    Consumption,
    /// Per site: year-to-date controlled tce against the cap, projection,
    /// intensity, five-year progress and level; worst first.
    Targets,
    /// Per site and day: 15-minute values present over required, level-1 meters.
    Completeness,
    /// Per site and month: the sum of daily values against the monthly value.
    Consistency,
    /// The register of verified meters: on record, due, overdue.
    Verification,
}

impl ReportKind {
    /// Every kind, in the order the README lists them.
    pub const ALL: [ReportKind; 5] = [
        ReportKind::Consumption,
        ReportKind::Targets,
        ReportKind::Completeness,
        ReportKind::Consistency,
        ReportKind::Verification,
    ];

    /// The kind's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Consumption => "consumption",
            ReportKind::Targets => "targets",
            ReportKind::Completeness => "completeness",
            ReportKind::Consistency => "consistency",
            ReportKind::Verification => "verification",
        }
    }

    /// Parses a kind's name; `None` for anything else.
    #[must_use]
    pub fn parse(name: &str) -> Option<ReportKind> {
        ReportKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// How a table cell or a chart bar is marked (its colour in HTML, a word
/// in the terminal table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Nothing to say.
    None,
    /// Meets its rule / green level.
    Green,
    /// Yellow warning level.
    Yellow,
    /// Orange warning level.
    Orange,
    /// Red level, or a failed rule (completeness < 90 %, overdue, …).
    Red,
}

/// A report as a reader sees it, whatever the format: a title, a few
/// headline facts, then tables and charts in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// The report's kind.
    pub kind: ReportKind,
    /// Title, e.g. "Energy-saving targets 2026".
    pub title: String,
    /// One line under the title: the range, the sites, when and by whom
    /// (which gateway, which database) it was made.
    pub subtitle: String,
    /// Headline facts as (label, value), e.g. ("Red", "2 sites").
    pub facts: Vec<(String, String)>,
    /// The body, in order.
    pub blocks: Vec<Block>,
}

/// One part of a [`Document`]'s body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// A table.
    Table(Table),
    /// A bar chart.
    Chart(Chart),
    /// A paragraph of explanation (how a figure is computed, what is missing).
    Note(String),
}

/// A table: the CSV format writes the document's first table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column headings.
    pub columns: Vec<Column>,
    /// The rows; each has one cell per column.
    pub rows: Vec<Row>,
}

/// A column heading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Heading text, with its unit, e.g. "controlled (tce)".
    pub name: String,
    /// Right-aligned (numbers).
    pub numeric: bool,
}

/// A table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Cell texts, already formatted (numbers with their precision; `""` for none).
    pub cells: Vec<String>,
    /// How the row is marked.
    pub mark: Mark,
}

/// A horizontal bar chart, drawn as inline SVG in HTML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// Heading above the chart.
    pub title: String,
    /// Unit of the values, shown on the axis.
    pub unit: String,
    /// The bars, in order.
    pub bars: Vec<Bar>,
    /// A vertical reference line (label, value), e.g. ("cap", 100.0).
    pub reference: Option<(String, f64)>,
}

/// One bar of a [`Chart`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    /// Label beside the bar.
    pub label: String,
    /// Its value (finite; bars with no value are left out by the builder).
    pub value: f64,
    /// Its colour.
    pub mark: Mark,
}

/// The time range of a report, in each site's local time; `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `--year Y`: Jan 1 of Y to Jan 1 of Y+1.
    Year(i16),
    /// `--month YYYY-MM`: the 1st of the month to the 1st of the next.
    Month(i16, i8),
    /// `--from D --to D`: local midnight of `from` to local midnight after
    /// `to` (both days included).
    Days(jiff::civil::Date, jiff::civil::Date),
}

/// One window result as a report reads it: a meter's `consumption` or a
/// site's `site_consumption` point.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Window start, Unix seconds.
    pub time: i64,
    /// Site id.
    pub site: String,
    /// Meter id; `None` for a site total.
    pub meter: Option<String>,
    /// Energy type (`total` for a site's comprehensive consumption).
    pub energy: String,
    /// Unit of `amount`.
    pub unit: String,
    /// Window tag (`15m`, `1d`, `1mo`, …).
    pub window: String,
    /// Amount in `unit`.
    pub amount: f64,
    /// Standard coal, kgce, when known.
    pub kgce: Option<f64>,
    /// Site rows: `controlled_kgce` (feedstock and renewables deducted).
    pub controlled_kgce: Option<f64>,
    /// Coverage 0..=1, when written.
    pub coverage: Option<f64>,
    /// Meter rows: the window was partly estimated.
    pub estimated: Option<bool>,
}

/// A per-site sum over windows, as [`Store::site_sums`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSum {
    /// Site id.
    pub site: String,
    /// Energy type (`total` included).
    pub energy: String,
    /// Unit of `amount`.
    pub unit: String,
    /// Sum of `amount`.
    pub amount: f64,
    /// Sum of `kgce` (0 when no window had one).
    pub kgce: f64,
    /// Sum of `controlled_kgce`.
    pub controlled_kgce: f64,
    /// Number of windows summed.
    pub windows: u64,
}

/// Which sites a query reads: all, or a list (a scoped token's, `--site`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sites {
    /// Every site.
    All,
    /// Only these ids.
    Only(Vec<String>),
}

/// Where reports read from. Both the InfluxQL store and the local archive
/// implement it, so every report works on either.
///
/// All ranges are `[from, to)` in Unix seconds on the window start.
pub trait Store {
    /// `site_consumption` points of window `window`.
    fn site_rows(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<Vec<WindowRow>, StoreError>> + Send;

    /// `consumption` points of window `window` (`level`: only meters of that level).
    fn meter_rows(
        &self,
        window: &str,
        sites: &Sites,
        level: Option<u8>,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<Vec<WindowRow>, StoreError>> + Send;

    /// Sums of `site_consumption` of window `window` per (site, energy,
    /// unit) (done by the database where it can: InfluxQL `sum()`).
    fn site_sums(
        &self,
        window: &str,
        sites: &Sites,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<Vec<SiteSum>, StoreError>> + Send;

    /// Every `entry` point of the sites (all versions; readers resolve
    /// `supersedes`), whatever its period.
    fn entries(
        &self,
        sites: &Sites,
    ) -> impl std::future::Future<Output = Result<Vec<crate::entries::Entry>, StoreError>> + Send;
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an HTTP error.
    #[error("{url}: {message}")]
    Http {
        /// The URL asked.
        url: String,
        /// What went wrong, with the server's own error text.
        message: String,
    },
    /// The database answered, but not with what a query returns.
    #[error("{url}: unexpected answer: {message}")]
    Answer {
        /// The URL asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The local archive could not be read.
    #[error("archive {path}: {message}")]
    Archive {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Granularity of the consumption report's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One row per local day (the `1d` windows).
    Day,
    /// One row per local month (the `1mo` windows).
    Month,
    /// One row per year (the `1mo` windows summed).
    Year,
}

/// What a report is asked for (CLI options or API query parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The kind.
    pub kind: ReportKind,
    /// The sites to report (`--site`, or a scoped token's sites).
    pub sites: Sites,
    /// The range; `None`: the kind's default (the current year for
    /// `targets` and `consumption`, the current month for the others).
    pub range: Option<Range>,
    /// "Now": the report's reference time (year-to-date ends here).
    pub now: jiff::Timestamp,
    /// `consumption`: rows per day, month or year.
    pub granularity: Granularity,
    /// `verification`: "due soon" means due within this many days (default 30).
    pub due_within_days: u32,
}

/// A built report: its JSON (the API's answer, `--format json`) and the
/// document the other formats render.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The typed report serialised.
    pub json: serde_json::Value,
    /// The same report for reading.
    pub document: Document,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request does not make sense (unknown site, range, option).
    #[error("{0}")]
    Request(String),
}

// Helpers shared by the institute's reports (completeness, consistency,
// verification): which sites a request selects and its local days.

/// The sites a request selects, in configuration order, with their index.
///
/// # Errors
/// [`ReportError::Request`] naming an id of `sites` that no site file
/// defines, with the ids there are.
pub fn selected_sites<'a>(
    config: &'a crate::config::Config,
    sites: &Sites,
) -> Result<Vec<(crate::model::SiteId, &'a crate::config::SiteConfig)>, ReportError> {
    let all = config.sites.iter().enumerate().map(|(i, s)| {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        (crate::model::SiteId(index), s)
    });
    match sites {
        Sites::All => Ok(all.collect()),
        Sites::Only(ids) => {
            if let Some(unknown) = ids
                .iter()
                .find(|id| !config.sites.iter().any(|s| &s.id == *id))
            {
                let known: Vec<&str> = config.sites.iter().map(|s| s.id.as_str()).collect();
                return Err(ReportError::Request(format!(
                    "unknown site \"{unknown}\"; known: {}",
                    known.join(", ")
                )));
            }
            Ok(all.filter(|(_, s)| ids.contains(&s.id)).collect())
        }
    }
}

/// The local dates `[first, end)` a request covers in the time zone `tz`:
/// its range, or without one the calendar month containing `now` there.
///
/// # Errors
/// [`ReportError::Request`] for `--from` after `--to` or a date out of range.
pub fn local_dates(
    range: Option<Range>,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Result<(jiff::civil::Date, jiff::civil::Date), ReportError> {
    let bad = |e: jiff::Error| ReportError::Request(format!("range out of bounds: {e}"));
    let month = |y: i16, m: i8| -> Result<_, ReportError> {
        let first = jiff::civil::Date::new(y, m, 1).map_err(bad)?;
        let end = first.last_of_month().tomorrow().map_err(bad)?;
        Ok((first, end))
    };
    match range {
        None => {
            let today = tz.to_datetime(now).date();
            month(today.year(), today.month())
        }
        Some(Range::Month(y, m)) => month(y, m),
        Some(Range::Year(y)) => {
            let first = jiff::civil::Date::new(y, 1, 1).map_err(bad)?;
            let end = jiff::civil::Date::new(y, 12, 31)
                .map_err(bad)?
                .tomorrow()
                .map_err(bad)?;
            Ok((first, end))
        }
        Some(Range::Days(from, to)) => {
            if from > to {
                return Err(ReportError::Request(format!(
                    "--from {from} is after --to {to}; give the earlier day first"
                )));
            }
            Ok((from, to.tomorrow().map_err(bad)?))
        }
    }
}

/// Unix seconds of the local midnight that starts `date` in `tz` (where a
/// clock change skips midnight, the first instant of the day), as the
/// gateway aligns its `1d` and `1mo` windows.
///
/// # Errors
/// [`ReportError::Request`] for a date outside the supported range.
pub fn local_midnight(
    date: jiff::civil::Date,
    tz: &jiff::tz::TimeZone,
) -> Result<i64, ReportError> {
    run::midnight(date, tz).ok_or_else(|| {
        ReportError::Request(format!(
            "{date} in {}: no local midnight",
            tz.iana_name().unwrap_or("zone")
        ))
    })
}

/// Formats a percentage with two decimals (`89.06`), as the tables show it.
#[must_use]
pub fn pct_text(value: f64) -> String {
    format!("{value:.2}")
}

/// A range as a reader names it: `2026-10`, `2026`, `2026-10-01 to
/// 2026-10-15`; without one, the month containing `now` in `tz`.
#[must_use]
pub fn range_label(range: Option<Range>, now: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    range.map_or_else(
        || {
            let today = tz.to_datetime(now).date();
            format!("{:04}-{:02}", today.year(), today.month())
        },
        run::describe_range,
    )
}
