//! The enterprise's report: consumption per site and day, month or year,
//! per energy type, in its unit and in tonnes of standard coal (tce), with
//! coverage, and the site's comprehensive total (`energy = total`) with its
//! controlled part (feedstock and renewables deducted).
//!
//! Why from `site_consumption` windows: they are the gateway's measured
//! figures (level-1 meters only, exported energy deducted), in each site's
//! local time: `1d` windows for days, `1mo` windows for months and years
//! (a year is the sum of its months), so the reader never re-derives a
//! figure the gateway already measured.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::run::{bounds, describe_range, describe_sites, query_sites, sites_of, zone_groups};
use super::{
    Bar, Block, Chart, Column, Document, Granularity, Mark, Output, Range, ReportError, ReportKind,
    Request, Row, Store, Table,
};
use crate::config::Config;

/// One row: a site, a period and an energy type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumptionRow {
    /// Period label in the site's time: `2026-03-05`, `2026-03` or `2026`.
    pub period: String,
    /// Energy type; `total` is the comprehensive consumption.
    pub energy: String,
    /// Unit of `amount` (`kgce` for `total`).
    pub unit: String,
    /// Amount in `unit`, summed over the period's windows.
    pub amount: f64,
    /// Standard coal, tce (kgce / 1000).
    pub tce: f64,
    /// `total` only: controlled tce (feedstock and renewables deducted).
    pub controlled_tce: Option<f64>,
    /// Mean coverage (0..=1) of the period's windows; a window of the
    /// period that is missing counts as 0.
    pub coverage: f64,
    /// Windows found for the period.
    pub windows: u64,
}

/// One energy type of a site over the whole range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyTotal {
    /// Energy type (`total` included).
    pub energy: String,
    /// Unit of `amount`.
    pub unit: String,
    /// Amount over the range.
    pub amount: f64,
    /// tce over the range.
    pub tce: f64,
}

/// A site's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteConsumption {
    /// Site id.
    pub site: String,
    /// Site name.
    pub name: String,
    /// IANA zone the periods are in.
    pub timezone: String,
    /// Rows, by period then energy (`total` last).
    pub rows: Vec<ConsumptionRow>,
    /// Per energy type over the range.
    pub totals: Vec<EnergyTotal>,
    /// Comprehensive consumption over the range, tce.
    pub total_tce: f64,
    /// Controlled consumption over the range, tce.
    pub controlled_tce: f64,
}

/// The consumption report as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumptionReport {
    /// `consumption`.
    pub kind: ReportKind,
    /// `day`, `month` or `year`.
    pub granularity: Granularity,
    /// First local day of the range.
    pub from: String,
    /// Last local day of the range (included).
    pub to: String,
    /// The `window` tag read (`1d` or `1mo`).
    pub window: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The sites, in configuration order.
    pub sites: Vec<SiteConsumption>,
}

/// Sums of one (period, energy) bucket.
#[derive(Default)]
struct Acc {
    unit: String,
    amount: f64,
    kgce: f64,
    controlled: Option<f64>,
    coverage: f64,
    windows: u64,
    expected: u64,
}

/// The period label of a window starting at `time` in `tz`, and the
/// number of windows such a period holds within `[from, to)`.
fn period_of(time: i64, tz: &jiff::tz::TimeZone, g: Granularity) -> String {
    let z = Timestamp::from_second(time)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone());
    match g {
        Granularity::Day => z.strftime("%Y-%m-%d").to_string(),
        Granularity::Month => z.strftime("%Y-%m").to_string(),
        Granularity::Year => z.strftime("%Y").to_string(),
    }
}

/// Months of `year` lying in `[first, last]` days.
fn months_in(year: i16, first: jiff::civil::Date, last: jiff::civil::Date) -> u64 {
    (1..=12)
        .filter(|m| {
            jiff::civil::Date::new(year, *m, 1)
                .is_ok_and(|d| d >= first.first_of_month() && d <= last)
        })
        .count() as u64
}

/// Builds the consumption report.
///
/// # Errors
/// The store's failure.
pub async fn build(
    config: &Config,
    store: &impl Store,
    req: &Request,
) -> Result<Output, ReportError> {
    let range = req
        .range
        .unwrap_or_else(|| Range::Year(super::run::year_of(req.now, &config.gateway.timezone)));
    let (first, last) = super::run::range_days(range)
        .ok_or_else(|| ReportError::Request("the range does not exist".to_owned()))?;
    let window = match req.granularity {
        Granularity::Day => "1d",
        Granularity::Month | Granularity::Year => "1mo",
    };
    let sites = sites_of(config, &req.sites);
    let mut rows_by_site: BTreeMap<String, Vec<super::WindowRow>> = BTreeMap::new();
    let groups = zone_groups(&sites);
    let n_groups = groups.len();
    for (tz, ids) in groups {
        let (from, to) = bounds(range, tz)
            .ok_or_else(|| ReportError::Request("the range does not exist".to_owned()))?;
        for row in store
            .site_rows(window, &query_sites(&req.sites, n_groups, &ids), from, to)
            .await?
        {
            rows_by_site.entry(row.site.clone()).or_default().push(row);
        }
    }
    let mut out_sites = Vec::new();
    for site in &sites {
        let mut buckets: BTreeMap<(String, (bool, String)), Acc> = BTreeMap::new();
        for r in rows_by_site.get(&site.id).into_iter().flatten() {
            let period = period_of(r.time, &site.timezone, req.granularity);
            let expected = match req.granularity {
                Granularity::Year => period
                    .parse::<i16>()
                    .map_or(1, |y| months_in(y, first, last)),
                _ => 1,
            };
            let key = (period, (r.energy == "total", r.energy.clone()));
            let a = buckets.entry(key).or_default();
            a.unit.clone_from(&r.unit);
            a.amount += r.amount;
            a.kgce += r.kgce.unwrap_or(0.0);
            if let Some(c) = r.controlled_kgce {
                *a.controlled.get_or_insert(0.0) += c;
            }
            a.coverage += r.coverage.unwrap_or(0.0);
            a.windows += 1;
            a.expected = expected.max(1);
        }
        let mut rows = Vec::new();
        let mut totals: BTreeMap<(bool, String), EnergyTotal> = BTreeMap::new();
        for ((period, (_, energy)), a) in buckets {
            let t = totals
                .entry((energy == "total", energy.clone()))
                .or_insert_with(|| EnergyTotal {
                    energy: energy.clone(),
                    unit: a.unit.clone(),
                    amount: 0.0,
                    tce: 0.0,
                });
            t.amount += a.amount;
            t.tce += a.kgce / 1000.0;
            rows.push(ConsumptionRow {
                period,
                controlled_tce: if energy == "total" {
                    Some(a.controlled.unwrap_or(a.kgce) / 1000.0)
                } else {
                    None
                },
                energy,
                unit: a.unit,
                amount: a.amount,
                tce: a.kgce / 1000.0,
                coverage: a.coverage / a.expected.max(a.windows) as f64,
                windows: a.windows,
            });
        }
        let total_tce = rows
            .iter()
            .filter(|r| r.energy == "total")
            .map(|r| r.tce)
            .sum();
        let controlled_tce = rows.iter().filter_map(|r| r.controlled_tce).sum();
        out_sites.push(SiteConsumption {
            site: site.id.clone(),
            name: site.name.clone(),
            timezone: site.timezone.iana_name().unwrap_or("").to_owned(),
            rows,
            totals: totals.into_values().collect(),
            total_tce,
            controlled_tce,
        });
    }
    let report = ConsumptionReport {
        kind: ReportKind::Consumption,
        granularity: req.granularity,
        from: first.to_string(),
        to: last.to_string(),
        window: window.to_owned(),
        generated_at: req.now.to_string(),
        sites: out_sites,
    };
    let document = document(&report, range, &sites);
    let json = serde_json::to_value(&report)
        .map_err(|e| ReportError::Request(format!("cannot serialise the report: {e}")))?;
    Ok(Output { json, document })
}

fn col(name: &str, numeric: bool) -> Column {
    Column {
        name: name.to_owned(),
        numeric,
    }
}

fn granularity_word(g: Granularity) -> &'static str {
    match g {
        Granularity::Day => "day",
        Granularity::Month => "month",
        Granularity::Year => "year",
    }
}

/// The report for reading: facts, a chart of tce per energy type, the
/// detail table (the CSV) and the per-period totals.
fn document(r: &ConsumptionReport, range: Range, sites: &[&crate::config::SiteConfig]) -> Document {
    let many = r.sites.len() > 1;
    let total: f64 = r.sites.iter().map(|s| s.total_tce).sum();
    let controlled: f64 = r.sites.iter().map(|s| s.controlled_tce).sum();
    let facts = vec![
        ("Range".to_owned(), format!("{} to {}", r.from, r.to)),
        ("Sites".to_owned(), r.sites.len().to_string()),
        ("Total".to_owned(), format!("{total:.4} tce")),
        ("Controlled".to_owned(), format!("{controlled:.4} tce")),
        (
            "Rows per".to_owned(),
            format!("{} ({} windows)", granularity_word(r.granularity), r.window),
        ),
    ];
    let mut bars = Vec::new();
    for s in &r.sites {
        for t in s.totals.iter().filter(|t| t.energy != "total") {
            bars.push(Bar {
                label: if many {
                    format!("{} {}", s.site, t.energy)
                } else {
                    t.energy.clone()
                },
                value: t.tce,
                mark: Mark::None,
            });
        }
    }
    let mut detail = Vec::new();
    let mut per_period = Vec::new();
    for s in &r.sites {
        for row in &s.rows {
            detail.push(Row {
                cells: vec![
                    s.site.clone(),
                    row.period.clone(),
                    row.energy.clone(),
                    format!("{:.3}", row.amount),
                    row.unit.clone(),
                    format!("{:.4}", row.tce),
                    row.controlled_tce
                        .map(|c| format!("{c:.4}"))
                        .unwrap_or_default(),
                    format!("{:.1}", row.coverage * 100.0),
                ],
                mark: if row.coverage < 0.9 {
                    Mark::Orange
                } else {
                    Mark::None
                },
            });
            if row.energy == "total" {
                per_period.push(Row {
                    cells: vec![
                        s.site.clone(),
                        row.period.clone(),
                        format!("{:.4}", row.tce),
                        row.controlled_tce
                            .map(|c| format!("{c:.4}"))
                            .unwrap_or_default(),
                        format!("{:.1}", row.coverage * 100.0),
                    ],
                    mark: Mark::None,
                });
            }
        }
    }
    let g = granularity_word(r.granularity);
    let blocks = vec![
        Block::Chart(Chart {
            title: "Standard coal per energy type".to_owned(),
            unit: "tce".to_owned(),
            bars,
            reference: None,
        }),
        Block::Table(Table {
            title: format!("Consumption per {g} and energy type"),
            columns: vec![
                col("site", false),
                col(g, false),
                col("energy", false),
                col("amount", true),
                col("unit", false),
                col("tce", true),
                col("controlled tce", true),
                col("coverage %", true),
            ],
            rows: detail,
        }),
        Block::Table(Table {
            title: format!("Total per {g}"),
            columns: vec![
                col("site", false),
                col(g, false),
                col("total tce", true),
                col("controlled tce", true),
                col("coverage %", true),
            ],
            rows: per_period,
        }),
        Block::Note(format!(
            "From the gateways' site_consumption windows ({w}) in each site's local time: level-1 meters only, energy exported outward deducted; tce = kgce / 1000; controlled = total without feedstock and new renewables. Coverage is the mean over the period's windows, a missing window counting as 0; rows below 90 % are marked.",
            w = r.window
        )),
    ];
    Document {
        kind: ReportKind::Consumption,
        title: format!("Energy consumption {}", describe_range(range)),
        subtitle: format!(
            "{}, per {g}; made {}",
            describe_sites(sites),
            r.generated_at
        ),
        facts,
        blocks,
    }
}
