//! The `verification` report: the register of the meters' verification
//! records (serial, accuracy class, last verified, next due), the meters due
//! soon, overdue or without a record, and the percentages on record (target
//! 100 %) and verified on time (target ≥ 95 %), per site and overall.
//!
//! Why it exists: key energy users must use verified meters (domain.md §2.4)
//! and the institute must show every one of them on file and in date. It
//! reads the configuration only (each meter's `calibration = { serial,
//! accuracy_class, verified, due }`), never the database.
//!
//! Decisions (also in the README):
//! * every configured meter of the selected sites counts, whatever its level
//!   (the configuration does not say which meters are compulsorily verified,
//!   and a sub-meter out of date still falsifies the data it feeds);
//! * dates are in the site's time zone: a meter due on D is *overdue* from
//!   00:00 on D (the instant the gateway starts flagging its readings with
//!   the calibration bit), *due soon* when D is at most `due_within_days`
//!   days after today, otherwise *ok*; without a `calibration` table it has
//!   *no record*;
//! * on record % = meters with a record / meters; on time % = meters with a
//!   record that are not overdue / meters with a record; a site meets the
//!   targets with 100 % on record and at least 95 % on time.

use serde::Serialize;

use super::{
    Bar, Block, Chart, Column, Document, Mark, Output, ReportError, ReportKind, Request, Row,
    Table, pct_text, selected_sites,
};
use crate::config::Config;

/// Target for the share of meters on record, percent.
pub const ON_RECORD_TARGET_PCT: f64 = 100.0;
/// Target for the share of meters on record verified on time, percent.
pub const ON_TIME_TARGET_PCT: f64 = 95.0;

/// The report as JSON (`--format json`, `/api/reports/verification`).
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Always `verification`.
    pub kind: ReportKind,
    /// The report's reference time (RFC 3339).
    pub now: String,
    /// "Due soon" means due within this many days.
    pub due_within_days: u32,
    /// Target on record, percent (100).
    pub on_record_target_pct: f64,
    /// Target on time, percent (95).
    pub on_time_target_pct: f64,
    /// The register: every meter of the selected sites, in configuration order.
    pub meters: Vec<MeterRecord>,
    /// Per site, in configuration order.
    pub sites: Vec<Totals>,
    /// Over all selected sites (`site` is `null`).
    pub overall: Totals,
}

/// One meter's line of the register.
#[derive(Debug, Clone, Serialize)]
pub struct MeterRecord {
    /// Site id.
    pub site: String,
    /// Meter id.
    pub meter: String,
    /// Energy type.
    pub energy: String,
    /// Metering level (1, 2, 3).
    pub level: u8,
    /// Instrument serial number.
    pub serial: Option<String>,
    /// Accuracy class.
    pub accuracy_class: Option<String>,
    /// Last verification (local date).
    pub verified: Option<String>,
    /// Next verification due (local date).
    pub due: Option<String>,
    /// Days from today (in the site's zone) to `due`; 0 or less: overdue.
    pub days_to_due: Option<i64>,
    /// `ok`, `due_soon`, `overdue` or `no_record`.
    pub status: Status,
}

/// Where a meter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Verified, next due later than `due_within_days`.
    Ok,
    /// Due within `due_within_days` days.
    DueSoon,
    /// Due date reached or past.
    Overdue,
    /// No `calibration` record.
    NoRecord,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::DueSoon => "due_soon",
            Status::Overdue => "overdue",
            Status::NoRecord => "no_record",
        }
    }
}

/// Counts and percentages of a site or of all sites.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Site id; `null` overall.
    pub site: Option<String>,
    /// Meters counted.
    pub meters: usize,
    /// Meters with a record.
    pub on_record: usize,
    /// on_record / meters × 100; `null` without meters.
    pub on_record_pct: Option<f64>,
    /// Meters with a record, not overdue.
    pub on_time: usize,
    /// on_time / on_record × 100; `null` without records.
    pub on_time_pct: Option<f64>,
    /// Status `ok`.
    pub ok: usize,
    /// Status `due_soon`.
    pub due_soon: usize,
    /// Status `overdue`.
    pub overdue: usize,
    /// Status `no_record`.
    pub no_record: usize,
    /// 100 % on record and ≥ 95 % on time (false without meters).
    pub meets_targets: bool,
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn totals(site: Option<String>, records: &[&MeterRecord]) -> Totals {
    let n = |s: Status| records.iter().filter(|r| r.status == s).count();
    let meters = records.len();
    let no_record = n(Status::NoRecord);
    let overdue = n(Status::Overdue);
    let on_record = meters - no_record;
    let on_time = on_record - overdue;
    Totals {
        site,
        meters,
        on_record,
        on_record_pct: (meters > 0).then(|| on_record as f64 * 100.0 / meters as f64),
        on_time,
        on_time_pct: (on_record > 0).then(|| on_time as f64 * 100.0 / on_record as f64),
        ok: n(Status::Ok),
        due_soon: n(Status::DueSoon),
        overdue,
        no_record,
        // In integers: on_record = meters and on_time × 100 ≥ on_record × 95.
        meets_targets: meters > 0 && on_record == meters && on_time * 100 >= on_record * 95,
    }
}

/// Builds the report (the store is not read: the register is configuration).
///
/// # Errors
/// [`ReportError::Request`] for an unknown site or a date out of range.
#[allow(clippy::unused_async)] // one signature for every report kind
pub async fn build(
    config: &Config,
    _store: &impl super::Store,
    req: &Request,
) -> Result<Output, ReportError> {
    let sites = selected_sites(config, &req.sites)?;
    let mut meters = Vec::new();
    for (site_id, site) in &sites {
        let today = site.timezone.to_datetime(req.now).date();
        for m in config.meters.iter().filter(|m| m.site == *site_id) {
            let cal = m.calibration.as_ref();
            let days_to_due = match cal {
                Some(c) => Some(
                    today
                        .until((jiff::Unit::Day, c.due))
                        .map_err(|e| ReportError::Request(format!("{}: {e}", m.id)))?
                        .get_days()
                        .into(),
                ),
                None => None,
            };
            let status = match days_to_due {
                None => Status::NoRecord,
                Some(d) if d <= 0 => Status::Overdue,
                Some(d) if d <= i64::from(req.due_within_days) => Status::DueSoon,
                Some(_) => Status::Ok,
            };
            meters.push(MeterRecord {
                site: site.id.clone(),
                meter: m.id.clone(),
                energy: m.energy.as_str().to_owned(),
                level: m.level.0,
                serial: cal.and_then(|c| c.serial.clone()),
                accuracy_class: cal.and_then(|c| c.accuracy_class.clone()),
                verified: cal.and_then(|c| c.verified).map(|d| d.to_string()),
                due: cal.map(|c| c.due.to_string()),
                days_to_due,
                status,
            });
        }
    }
    let per_site = sites
        .iter()
        .map(|(_, s)| {
            let of: Vec<&MeterRecord> = meters.iter().filter(|m| m.site == s.id).collect();
            totals(Some(s.id.clone()), &of)
        })
        .collect();
    let all: Vec<&MeterRecord> = meters.iter().collect();
    let report = Verification {
        kind: ReportKind::Verification,
        now: req.now.to_string(),
        due_within_days: req.due_within_days,
        on_record_target_pct: ON_RECORD_TARGET_PCT,
        on_time_target_pct: ON_TIME_TARGET_PCT,
        overall: totals(None, &all),
        sites: per_site,
        meters,
    };
    let document = document(config, &report);
    let json = serde_json::to_value(&report)
        .map_err(|e| ReportError::Request(format!("verification as JSON: {e}")))?;
    Ok(Output { json, document })
}

/// The report for reading: facts, the register (the CSV), the per-site
/// table, the two charts and how it is counted.
fn document(config: &Config, r: &Verification) -> Document {
    let col = |name: &str, numeric: bool| Column {
        name: name.to_owned(),
        numeric,
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let pct = |v: Option<f64>| v.map(pct_text).unwrap_or_default();
    let register = Table {
        title: "Register of meter verification".to_owned(),
        columns: vec![
            col("site", false),
            col("meter", false),
            col("energy", false),
            col("level", true),
            col("serial", false),
            col("accuracy class", false),
            col("verified", false),
            col("due", false),
            col("days to due", true),
            col("status", false),
        ],
        rows: r
            .meters
            .iter()
            .map(|m| Row {
                cells: vec![
                    m.site.clone(),
                    m.meter.clone(),
                    m.energy.clone(),
                    m.level.to_string(),
                    opt(&m.serial),
                    opt(&m.accuracy_class),
                    opt(&m.verified),
                    opt(&m.due),
                    m.days_to_due.map(|d| d.to_string()).unwrap_or_default(),
                    m.status.as_str().to_owned(),
                ],
                mark: match m.status {
                    Status::Ok => Mark::Green,
                    Status::DueSoon => Mark::Yellow,
                    Status::Overdue | Status::NoRecord => Mark::Red,
                },
            })
            .collect(),
    };
    let total_row = |t: &Totals| Row {
        cells: vec![
            t.site.clone().unwrap_or_else(|| "all sites".to_owned()),
            t.meters.to_string(),
            t.on_record.to_string(),
            pct(t.on_record_pct),
            t.on_time.to_string(),
            pct(t.on_time_pct),
            t.due_soon.to_string(),
            t.overdue.to_string(),
            t.no_record.to_string(),
            if t.meets_targets { "met" } else { "not met" }.to_owned(),
        ],
        mark: if t.meets_targets {
            Mark::Green
        } else {
            Mark::Red
        },
    };
    let mut rows: Vec<Row> = r.sites.iter().map(total_row).collect();
    rows.push(total_row(&r.overall));
    let summary = Table {
        title: "On record and verified on time, per site".to_owned(),
        columns: vec![
            col("site", false),
            col("meters", true),
            col("on record", true),
            col("on record (%)", true),
            col("on time", true),
            col("on time (%)", true),
            col("due soon", true),
            col("overdue", true),
            col("no record", true),
            col("targets", false),
        ],
        rows,
    };
    let chart = |title: &str, value: fn(&Totals) -> Option<f64>, target: f64, label: &str| {
        Block::Chart(Chart {
            title: title.to_owned(),
            unit: "%".to_owned(),
            bars: r
                .sites
                .iter()
                .filter_map(|t| {
                    let v = value(t)?;
                    Some(Bar {
                        label: t.site.clone().unwrap_or_default(),
                        value: v,
                        mark: if v >= target { Mark::Green } else { Mark::Red },
                    })
                })
                .collect(),
            reference: Some((label.to_owned(), target)),
        })
    };
    let o = &r.overall;
    Document {
        kind: ReportKind::Verification,
        title: "Register of verified meters".to_owned(),
        subtitle: format!(
            "{} site(s), {} meter(s) · as of {} · due soon: within {} days · gateway {}",
            r.sites.len(),
            o.meters,
            r.now,
            r.due_within_days,
            config.gateway.id
        ),
        facts: vec![
            (
                "On record".to_owned(),
                format!("{} % (target 100 %)", pct(o.on_record_pct)),
            ),
            (
                "Verified on time".to_owned(),
                format!("{} % (target ≥ 95 %)", pct(o.on_time_pct)),
            ),
            ("Meters".to_owned(), o.meters.to_string()),
            ("Due soon".to_owned(), o.due_soon.to_string()),
            ("Overdue".to_owned(), o.overdue.to_string()),
            ("No record".to_owned(), o.no_record.to_string()),
        ],
        blocks: vec![
            Block::Table(register),
            Block::Table(summary),
            chart(
                "Verified on time (%)",
                |t| t.on_time_pct,
                ON_TIME_TARGET_PCT,
                "target 95 %",
            ),
            chart(
                "On record (%)",
                |t| t.on_record_pct,
                ON_RECORD_TARGET_PCT,
                "target 100 %",
            ),
            Block::Note(format!(
                "Every configured meter of the sites counts, whatever its level. Dates are in \
                 the site's time zone. A meter is overdue from 00:00 on its due date, due soon \
                 when the due date is at most {} days away, and has no record without a \
                 `calibration` table. On record = meters with a record / meters; on time = \
                 meters with a record that are not overdue / meters with a record.",
                r.due_within_days
            )),
        ],
    }
}

#[cfg(test)]
mod tests {
    //! Meters overdue, due soon, on time and unfiled: exact percentages.

    use super::*;
    use crate::reports::completeness::tests::{MemStore, config, request};

    #[tokio::test]
    async fn overdue_due_soon_on_time_and_unfiled_give_exact_percentages() {
        // Site a: m1 due 2026-10-05 (today: overdue), m2 due 2026-11-04
        // (30 days: due soon), sub due 2027-01-01 (ok). Site b: m1 ok, m2 no
        // record, sub ok. now = 2026-10-04T16:00Z = 2026-10-05 00:00 local.
        let config = config(
            "\"15m\"",
            &[
                (
                    "a-m1",
                    "calibration = { serial = \"S1\", accuracy_class = \"0.5S\", verified = \"2025-10-05\", due = \"2026-10-05\" }",
                ),
                ("a-m2", "calibration = { due = \"2026-11-04\" }"),
                ("a-sub", "calibration = { due = \"2027-01-01\" }"),
                ("b-m1", "calibration = { due = \"2026-11-05\" }"),
                ("b-sub", "calibration = { due = \"2027-01-01\" }"),
            ],
        );
        let req = request(ReportKind::Verification, None, "2026-10-04T16:00:00Z");
        let out = build(&config, &MemStore::default(), &req).await.unwrap();
        let status: Vec<&str> = out.json["meters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            status,
            ["overdue", "due_soon", "ok", "ok", "no_record", "ok"]
        );
        assert_eq!(out.json["meters"][0]["days_to_due"], 0);
        assert_eq!(out.json["meters"][1]["days_to_due"], 30);
        assert_eq!(out.json["meters"][3]["days_to_due"], 31);
        // a: 3/3 on record (100 %), 2/3 on time (66.67 %); b: 2/3 on record,
        // 2/2 on time; overall 5/6 on record, 4/5 on time = 80 %.
        assert_eq!(out.json["sites"][0]["on_time_pct"], 200.0 / 3.0);
        assert_eq!(out.json["sites"][1]["on_record_pct"], 200.0 / 3.0);
        assert_eq!(out.json["sites"][1]["on_time_pct"], 100.0);
        assert_eq!(out.json["overall"]["on_record_pct"], 500.0 / 6.0);
        assert_eq!(out.json["overall"]["on_time_pct"], 80.0);
        assert_eq!(out.json["overall"]["meets_targets"], false);
        assert_eq!(out.document.facts[0].1, "83.33 % (target 100 %)");
    }
}
