//! The `consistency` report: per site, local month and energy type
//! (`total` included), the sum of the site's `1d` window values against its
//! `1mo` window value, flagged beyond ±5 %.
//!
//! Why it exists: the online-monitoring rules require daily and monthly
//! figures to agree within 5 % (domain.md §3.3); the gateway measures both
//! (`1d` from local midnight, `1mo` from local midnight on the 1st), so a
//! disagreement means lost or doubled days, a late correction or a window
//! written by something else.
//!
//! Decisions (also in the README):
//! * deviation % = (Σ days − month) × 100 / month, for `amount` and for
//!   `kgce` (when both sides have kgce); a month *differs* when either
//!   deviation is beyond ±5 % (exactly 5 % agrees); a month value of 0 with
//!   a non-zero day sum differs (no percentage);
//! * a month with no `1mo` value or no `1d` value is *missing*, never agreeing;
//! * a month that has not ended at the report's "now" is *open*: shown, not judged;
//! * every month the range touches is checked whole (`--from 2026-10-20`
//!   checks all of October).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{
    Bar, Block, Chart, Column, Document, Mark, Output, ReportError, ReportKind, Request, Row,
    Store, Table, WindowRow, local_dates, local_midnight, pct_text, range_label, selected_sites,
};
use crate::config::Config;
use crate::pipeline::window::WindowSize;

/// Days and month agree when they differ by at most this percentage.
pub const TOLERANCE_PCT: f64 = 5.0;

/// The report as JSON (`--format json`, `/api/reports/consistency`).
#[derive(Debug, Clone, Serialize)]
pub struct Consistency {
    /// Always `consistency`.
    pub kind: ReportKind,
    /// The tolerance, percent (5).
    pub tolerance_pct: f64,
    /// The report's reference time (RFC 3339); later months are open.
    pub now: String,
    /// One row per site, month and energy type, sites in configuration
    /// order, months ascending, `total` first then energies by name.
    pub months: Vec<MonthCheck>,
    /// Counts by status.
    pub summary: Summary,
}

/// One site, month and energy type.
#[derive(Debug, Clone, Serialize)]
pub struct MonthCheck {
    /// Site id.
    pub site: String,
    /// Local month, `YYYY-MM`.
    pub month: String,
    /// Energy type (`total`: comprehensive consumption in kgce).
    pub energy: String,
    /// Unit of the amounts.
    pub unit: String,
    /// `1d` values found in the month.
    pub days: u32,
    /// Days of the month.
    pub days_in_month: u32,
    /// Σ `amount` of the `1d` values; `null` without any.
    pub days_sum: Option<f64>,
    /// `amount` of the `1mo` value; `null` without one.
    pub month_value: Option<f64>,
    /// (days_sum − month_value) × 100 / month_value.
    pub deviation_pct: Option<f64>,
    /// Σ `kgce` of the `1d` values.
    pub days_kgce: Option<f64>,
    /// `kgce` of the `1mo` value.
    pub month_kgce: Option<f64>,
    /// The same deviation in kgce.
    pub kgce_deviation_pct: Option<f64>,
    /// `agrees`, `differs`, `missing` or `open`.
    pub status: Status,
}

/// How a month compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within ±5 %.
    Agrees,
    /// Beyond ±5 % (amount or kgce).
    Differs,
    /// No `1mo` value, or no `1d` value.
    Missing,
    /// The month had not ended at `now`: not judged.
    Open,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Agrees => "agrees",
            Status::Differs => "differs",
            Status::Missing => "missing",
            Status::Open => "open",
        }
    }
}

/// Counts of [`MonthCheck`] rows by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Sites reported.
    pub sites: usize,
    /// Rows that agree.
    pub agrees: usize,
    /// Rows that differ.
    pub differs: usize,
    /// Rows missing a side.
    pub missing: usize,
    /// Rows of months not ended.
    pub open: usize,
}

/// (sum − reference) × 100 / reference; 0 when both are 0, `None` when only
/// the reference is.
fn deviation(sum: f64, reference: f64) -> Option<f64> {
    if reference == 0.0 {
        return (sum == 0.0).then_some(0.0);
    }
    Some((sum - reference) * 100.0 / reference)
}

/// One site's rows of one window, keyed by (energy, unit), then by time
/// (the last row of a time wins).
type Series<'a> = BTreeMap<(&'a str, &'a str), BTreeMap<i64, &'a WindowRow>>;

fn series(rows: &[WindowRow]) -> HashMap<&str, Series<'_>> {
    let mut out: HashMap<&str, Series<'_>> = HashMap::new();
    for r in rows {
        out.entry(r.site.as_str())
            .or_default()
            .entry((r.energy.as_str(), r.unit.as_str()))
            .or_default()
            .insert(r.time, r);
    }
    out
}

/// Builds the report.
///
/// # Errors
/// [`ReportError::Request`] when the configuration lacks a `1d` or `1mo`
/// window, for an unknown site or a bad range; [`ReportError::Store`] when
/// the store fails.
#[allow(clippy::too_many_lines)] // one pass over sites, months and energies
pub async fn build(
    config: &Config,
    store: &impl Store,
    req: &Request,
) -> Result<Output, ReportError> {
    let windows = &config.aggregation.aggregator.windows;
    let lacking: Vec<&str> = [WindowSize::Day, WindowSize::Month]
        .into_iter()
        .filter(|w| !windows.contains(w))
        .map(WindowSize::as_tag)
        .collect();
    if !lacking.is_empty() {
        let now: Vec<&str> = windows.iter().map(|w| w.as_tag()).collect();
        return Err(ReportError::Request(format!(
            "consistency compares daily with monthly values, but this configuration writes no \
             {} window (windows: {}); add {} to [aggregation] windows",
            lacking
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" or "),
            if now.is_empty() {
                "none".to_owned()
            } else {
                now.join(", ")
            },
            lacking
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" and "),
        )));
    }
    let sites = selected_sites(config, &req.sites)?;
    let bad = |e: jiff::Error| ReportError::Request(format!("range out of bounds: {e}"));

    // Each site's months [first of month, end of month) in its zone.
    let mut site_months = Vec::with_capacity(sites.len());
    for (_, site) in &sites {
        let tz = &site.timezone;
        let (first, end) = local_dates(req.range, req.now, tz)?;
        let last = end.yesterday().map_err(bad)?.max(first);
        let mut months = Vec::new();
        let mut m = first.first_of_month();
        while m <= last {
            let next = m.last_of_month().tomorrow().map_err(bad)?;
            months.push((m, local_midnight(m, tz)?, local_midnight(next, tz)?));
            m = next;
        }
        site_months.push(months);
    }
    let from = site_months
        .iter()
        .filter_map(|m| m.first())
        .map(|m| m.1)
        .min();
    let to = site_months
        .iter()
        .filter_map(|m| m.last())
        .map(|m| m.2)
        .max();
    let (days, monthly) = match (from, to) {
        (Some(from), Some(to)) => (
            store
                .site_rows(WindowSize::Day.as_tag(), &req.sites, from, to)
                .await?,
            store
                .site_rows(WindowSize::Month.as_tag(), &req.sites, from, to)
                .await?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let (days, monthly) = (series(&days), series(&monthly));
    let empty = Series::new();
    let now = req.now.as_second();

    let mut out = Vec::new();
    for ((_, site), months) in sites.iter().zip(&site_months) {
        let d = days.get(site.id.as_str()).unwrap_or(&empty);
        let mo = monthly.get(site.id.as_str()).unwrap_or(&empty);
        for &(month, start, end) in months {
            let in_month = |s: &BTreeMap<i64, &WindowRow>| s.range(start..end).next().is_some();
            let mut keys: Vec<(&str, &str)> = d
                .iter()
                .chain(mo.iter())
                .filter(|(_, s)| in_month(s))
                .map(|(k, _)| *k)
                .collect();
            keys.sort_by_key(|(e, u)| (*e != "total", *e, *u));
            keys.dedup();
            if keys.is_empty() {
                keys.push(("total", "kgce"));
            }
            for key in keys {
                let day_rows: Vec<&WindowRow> = d
                    .get(&key)
                    .map(|s| s.range(start..end).map(|(_, r)| *r).collect())
                    .unwrap_or_default();
                let month_row = mo
                    .get(&key)
                    .and_then(|s| s.range(start..end).last())
                    .map(|(_, r)| *r);
                let days_sum =
                    (!day_rows.is_empty()).then(|| day_rows.iter().map(|r| r.amount).sum());
                let day_kgce: Vec<f64> = day_rows.iter().filter_map(|r| r.kgce).collect();
                let days_kgce = (!day_kgce.is_empty()).then(|| day_kgce.iter().sum());
                let month_value = month_row.map(|r| r.amount);
                let month_kgce = month_row.and_then(|r| r.kgce);
                let dev = days_sum.zip(month_value).and_then(|(s, m)| deviation(s, m));
                let kgce_dev = days_kgce.zip(month_kgce).and_then(|(s, m)| deviation(s, m));
                let beyond = |v: Option<f64>| v.is_some_and(|v| v.abs() > TOLERANCE_PCT);
                let status = if end > now {
                    Status::Open
                } else if days_sum.is_none() || month_value.is_none() {
                    Status::Missing
                } else if dev.is_none()
                    || beyond(dev)
                    || beyond(kgce_dev)
                    || (days_kgce.is_some() && month_kgce.is_some() && kgce_dev.is_none())
                {
                    Status::Differs
                } else {
                    Status::Agrees
                };
                out.push(MonthCheck {
                    site: site.id.clone(),
                    month: format!("{:04}-{:02}", month.year(), month.month()),
                    energy: key.0.to_owned(),
                    unit: key.1.to_owned(),
                    days: u32::try_from(day_rows.len()).unwrap_or(u32::MAX),
                    days_in_month: u32::try_from(month.days_in_month()).unwrap_or(0),
                    days_sum,
                    month_value,
                    deviation_pct: dev,
                    days_kgce,
                    month_kgce,
                    kgce_deviation_pct: kgce_dev,
                    status,
                });
            }
        }
    }
    let count = |s: Status| out.iter().filter(|m| m.status == s).count();
    let report = Consistency {
        kind: ReportKind::Consistency,
        tolerance_pct: TOLERANCE_PCT,
        now: req.now.to_string(),
        summary: Summary {
            sites: sites.len(),
            agrees: count(Status::Agrees),
            differs: count(Status::Differs),
            missing: count(Status::Missing),
            open: count(Status::Open),
        },
        months: out,
    };
    let document = document(config, req, &report);
    let json = serde_json::to_value(&report)
        .map_err(|e| ReportError::Request(format!("consistency as JSON: {e}")))?;
    Ok(Output { json, document })
}

/// A number as the tables show it (three decimals), `""` for none.
fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_default()
}

/// The report for reading: facts, the table (the CSV), the chart of the
/// totals' deviations and how it is computed.
fn document(config: &Config, req: &Request, r: &Consistency) -> Document {
    let label = range_label(req.range, req.now, &config.gateway.timezone);
    let col = |name: &str, numeric: bool| Column {
        name: name.to_owned(),
        numeric,
    };
    let pct = |v: Option<f64>| v.map(pct_text).unwrap_or_default();
    let rows = r
        .months
        .iter()
        .map(|m| Row {
            cells: vec![
                m.site.clone(),
                m.month.clone(),
                m.energy.clone(),
                m.unit.clone(),
                format!("{}/{}", m.days, m.days_in_month),
                num(m.days_sum),
                num(m.month_value),
                pct(m.deviation_pct),
                num(m.days_kgce),
                num(m.month_kgce),
                pct(m.kgce_deviation_pct),
                m.status.as_str().to_owned(),
            ],
            mark: match m.status {
                Status::Agrees => Mark::Green,
                Status::Differs | Status::Missing => Mark::Red,
                Status::Open => Mark::None,
            },
        })
        .collect();
    let table = Table {
        title: "Sum of daily values against the monthly value".to_owned(),
        columns: vec![
            col("site", false),
            col("month", false),
            col("energy", false),
            col("unit", false),
            col("days", true),
            col("sum of days", true),
            col("month", true),
            col("deviation (%)", true),
            col("sum of days (kgce)", true),
            col("month (kgce)", true),
            col("deviation kgce (%)", true),
            col("result", false),
        ],
        rows,
    };
    let bars: Vec<Bar> = r
        .months
        .iter()
        .filter(|m| m.energy == "total" && matches!(m.status, Status::Agrees | Status::Differs))
        .filter_map(|m| {
            Some(Bar {
                label: format!("{} {}", m.site, m.month),
                value: m.deviation_pct?.abs(),
                mark: if m.status == Status::Agrees {
                    Mark::Green
                } else {
                    Mark::Red
                },
            })
        })
        .collect();
    let mut blocks = vec![Block::Table(table)];
    if !bars.is_empty() {
        blocks.push(Block::Chart(Chart {
            title: "Deviation of the total (days against month), absolute".to_owned(),
            unit: "%".to_owned(),
            bars,
            reference: Some(("tolerance 5 %".to_owned(), TOLERANCE_PCT)),
        }));
    }
    blocks.push(Block::Note(
        "Per site, local month and energy type: the sum of the site's `site_consumption` \
         values of window 1d starting in the month against its value of window 1mo. \
         Deviation = (sum of days − month) / month × 100, in the energy's unit and in kgce; \
         beyond ±5 % in either the month differs. A month without its 1mo value or without \
         any 1d value is missing; a month not yet ended is open and not judged."
            .to_owned(),
    ));
    Document {
        kind: ReportKind::Consistency,
        title: format!("Daily and monthly consistency {label}"),
        subtitle: format!(
            "{label} · {} site(s) · as of {} · gateway {}",
            r.summary.sites, r.now, config.gateway.id
        ),
        facts: vec![
            ("Rule".to_owned(), "days and month within ±5 %".to_owned()),
            ("Sites".to_owned(), r.summary.sites.to_string()),
            ("Agree".to_owned(), r.summary.agrees.to_string()),
            ("Differ".to_owned(), r.summary.differs.to_string()),
            ("Missing".to_owned(), r.summary.missing.to_string()),
            ("Open".to_owned(), r.summary.open.to_string()),
        ],
        blocks,
    }
}

#[cfg(test)]
mod tests {
    //! Days that disagree with their month by 6 % (differs) and by 4 %
    //! (agrees), a month without its `1mo` value, an open month.

    use super::*;
    use crate::reports::completeness::tests::{MemStore, config, request};
    use crate::reports::{Range, WindowRow};

    fn site_row(site: &str, energy: &str, window: &str, time: i64, amount: f64) -> WindowRow {
        WindowRow {
            time,
            site: site.into(),
            meter: None,
            energy: energy.into(),
            unit: if energy == "total" { "kgce" } else { "m3" }.into(),
            window: window.into(),
            amount,
            kgce: Some(if energy == "total" {
                amount
            } else {
                amount * 0.0857
            }),
            controlled_kgce: None,
            coverage: Some(1.0),
            estimated: None,
        }
    }

    /// 2026-09-01 00:00 in Asia/Shanghai.
    const SEP1: i64 = 1_788_192_000;

    #[tokio::test]
    async fn six_percent_differs_four_agrees_and_a_month_without_its_value_is_missing() {
        assert_eq!(
            jiff::Timestamp::from_second(SEP1).unwrap().to_string(),
            "2026-08-31T16:00:00Z"
        );
        let config = config("\"15m\", \"1d\", \"1mo\"", &[]);
        let mut store = MemStore::default();
        // September has 30 days. a/water: days 30 × 10 = 300 against a month
        // of 300/1.06 → +6 %; a/total: days 30 × 5 = 150 against 156.25 →
        // (150 − 156.25)/156.25 = −4 %; b has days and no month value.
        for d in 0..30 {
            let t = SEP1 + d * 86_400;
            store.sites.push(site_row("a", "water", "1d", t, 10.0));
            store.sites.push(site_row("a", "total", "1d", t, 5.0));
            store.sites.push(site_row("b", "total", "1d", t, 1.0));
        }
        store
            .sites
            .push(site_row("a", "water", "1mo", SEP1, 300.0 / 1.06));
        store
            .sites
            .push(site_row("a", "total", "1mo", SEP1, 156.25));
        let req = request(
            ReportKind::Consistency,
            Some(Range::Month(2026, 9)),
            "2026-10-05T00:00:00Z",
        );
        let out = build(&config, &store, &req).await.unwrap();
        let m = out.json["months"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0]["site"].as_str(), m[0]["energy"].as_str()),
            (Some("a"), Some("total"))
        );
        assert_eq!(m[0]["deviation_pct"], -4.0);
        assert_eq!(m[0]["status"], "agrees");
        assert_eq!(m[1]["energy"], "water");
        assert!((m[1]["deviation_pct"].as_f64().unwrap() - 6.0).abs() < 1e-9);
        assert_eq!(m[1]["status"], "differs");
        assert_eq!(m[1]["days"], 30);
        assert_eq!(
            (m[2]["site"].as_str(), m[2]["status"].as_str()),
            (Some("b"), Some("missing"))
        );
        let Block::Table(t) = &out.document.blocks[0] else {
            panic!()
        };
        assert_eq!(t.rows[1].cells[7], "6.00");
        assert_eq!(t.rows[1].mark, Mark::Red);
        assert_eq!(t.rows[0].cells[7], "-4.00");
        assert_eq!(out.json["summary"]["differs"], 1);
    }

    #[tokio::test]
    async fn the_current_month_is_open_and_a_missing_window_is_an_error() {
        let config3 = config("\"15m\", \"1d\", \"1mo\"", &[]);
        let req = request(ReportKind::Consistency, None, "2026-10-05T00:00:00Z");
        let out = build(&config3, &MemStore::default(), &req).await.unwrap();
        assert_eq!(out.json["months"][0]["status"], "open");
        assert_eq!(out.json["months"][0]["month"], "2026-10");
        let config2 = config("\"15m\", \"1d\"", &[]);
        let err = build(&config2, &MemStore::default(), &req)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "consistency compares daily with monthly values, but this configuration writes no \
             \"1mo\" window (windows: 15m, 1d); add \"1mo\" to [aggregation] windows"
        );
    }
}
