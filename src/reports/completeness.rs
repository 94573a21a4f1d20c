//! The `completeness` report: per site and local day, the 15-minute values
//! of the site's level-1 meters that are present over those required, and
//! the online-monitoring rule that a day needs at least 90 % of them.
//!
//! Why it exists: the institute must show that the data handed to the
//! provincial platform is complete (domain.md §3.3: uploaded / required ≥
//! 90 %). The gateway writes a `consumption` point for every quarter hour a
//! meter's counter moved through, even across an outage: a quarter with no
//! good reading is written with `coverage = 0` (its amount interpolated,
//! `estimated`). So a value counts as *present* only when its point exists
//! **and** its coverage is above 0; a meter that was down is not present.
//!
//! Decisions (also in the README):
//! * required = the quarter hours of the local day in the site's time zone
//!   (96; 92 or 100 on a clock-change day), per level-1 meter of the site in
//!   the configuration that has a consumption counter;
//! * a point without a `coverage` field (not written by emgate) counts as present;
//! * the site's day rate = Σ present / Σ required over those meters; a day
//!   passes at ≥ 90 % (compared exactly in integers: present × 10 ≥ required × 9);
//! * a site with no such meter fails every day (nothing shows it complete);
//! * days that have not ended at the report's "now" are not judged.

use std::collections::HashMap;

use serde::Serialize;

use super::{
    Bar, Block, Chart, Column, Document, Mark, Output, ReportError, ReportKind, Request, Row,
    Store, Table, local_dates, local_midnight, pct_text, range_label, selected_sites,
};
use crate::config::Config;
use crate::model::Level;
use crate::pipeline::window::{WindowSize, window_end};

/// The rule: a day passes with at least this percentage of its values present.
pub const RULE_PCT: f64 = 90.0;

/// The report as JSON (`--format json`, `/api/reports/completeness`).
#[derive(Debug, Clone, Serialize)]
pub struct Completeness {
    /// Always `completeness`.
    pub kind: ReportKind,
    /// The window counted (`15m`).
    pub window: &'static str,
    /// The rule, percent (90).
    pub rule_pct: f64,
    /// The report's reference time (RFC 3339); later days are not judged.
    pub now: String,
    /// One entry per site, in configuration order.
    pub sites: Vec<SiteCompleteness>,
    /// Counts over all sites.
    pub summary: Summary,
}

/// One site's completeness.
#[derive(Debug, Clone, Serialize)]
pub struct SiteCompleteness {
    /// Site id.
    pub site: String,
    /// Site name.
    pub name: String,
    /// The site's time zone, in which its days are counted.
    pub timezone: String,
    /// First local day of the range.
    pub from: String,
    /// Last local day of the range (included).
    pub to: String,
    /// The level-1 meters counted.
    pub meters: Vec<String>,
    /// Σ present over the judged days.
    pub present: u64,
    /// Σ required over the judged days.
    pub required: u64,
    /// present / required × 100; `null` when nothing is required.
    pub rate_pct: Option<f64>,
    /// The judged days, oldest first.
    pub days: Vec<DayCompleteness>,
    /// The days that fail the rule.
    pub failing_days: Vec<String>,
    /// Days of the range not ended at `now` (not judged).
    pub days_not_ended: u32,
}

/// One site's local day.
#[derive(Debug, Clone, Serialize)]
pub struct DayCompleteness {
    /// Local date.
    pub date: String,
    /// Σ present over the site's level-1 meters.
    pub present: u64,
    /// Σ required (quarter hours of the day × meters).
    pub required: u64,
    /// present / required × 100; `null` when nothing is required.
    pub rate_pct: Option<f64>,
    /// At least 90 %.
    pub passes: bool,
    /// Per meter.
    pub meters: Vec<MeterDay>,
}

/// One meter's day.
#[derive(Debug, Clone, Serialize)]
pub struct MeterDay {
    /// Meter id.
    pub meter: String,
    /// Quarter hours with a `consumption` point of coverage above 0.
    pub present: u64,
    /// Quarter hours of the local day.
    pub required: u64,
}

/// Counts over all sites.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Sites reported.
    pub sites: usize,
    /// Site-days judged.
    pub days: usize,
    /// Site-days failing the rule.
    pub failing_days: usize,
    /// Sites with at least one failing day.
    pub sites_failing: usize,
    /// Σ present.
    pub present: u64,
    /// Σ required.
    pub required: u64,
    /// present / required × 100.
    pub rate_pct: Option<f64>,
}

/// Whether `present` of `required` meets the 90 % rule (exactly, in integers).
fn passes(present: u64, required: u64) -> bool {
    required > 0 && present.saturating_mul(10) >= required.saturating_mul(9)
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn rate(present: u64, required: u64) -> Option<f64> {
    (required > 0).then(|| present as f64 * 100.0 / required as f64)
}

/// The quarter-hour window starts of `[start, end)`, tiled as the gateway tiles them.
fn quarters(tz: &jiff::tz::TimeZone, start: i64, end: i64) -> Vec<i64> {
    let mut out = Vec::with_capacity(100);
    let mut t = start;
    while t < end {
        out.push(t);
        t = window_end(WindowSize::Min15, tz, t);
    }
    out
}

/// Builds the report.
///
/// # Errors
/// [`ReportError::Request`] when the configuration has no `15m` window, for
/// an unknown site or a bad range; [`ReportError::Store`] when the store fails.
pub async fn build(
    config: &Config,
    store: &impl Store,
    req: &Request,
) -> Result<Output, ReportError> {
    let windows = &config.aggregation.aggregator.windows;
    if !windows.contains(&WindowSize::Min15) {
        let now: Vec<&str> = windows.iter().map(|w| w.as_tag()).collect();
        return Err(ReportError::Request(format!(
            "completeness counts 15-minute values, but this configuration writes no \"15m\" \
             window (windows: {}); add \"15m\" to [aggregation] windows",
            if now.is_empty() {
                "none".to_owned()
            } else {
                now.join(", ")
            }
        )));
    }
    let sites = selected_sites(config, &req.sites)?;
    let now = req.now.as_second();

    // Each site's days, and the union of their instants for one query.
    let mut spans = Vec::with_capacity(sites.len());
    for (_, site) in &sites {
        let (first, end) = local_dates(req.range, req.now, &site.timezone)?;
        spans.push((
            first,
            end,
            local_midnight(first, &site.timezone)?,
            local_midnight(end, &site.timezone)?,
        ));
    }
    let from = spans.iter().map(|s| s.2).min().unwrap_or(0);
    let to = spans.iter().map(|s| s.3).max().unwrap_or(0);
    let rows = if sites.is_empty() {
        Vec::new()
    } else {
        store
            .meter_rows(WindowSize::Min15.as_tag(), &req.sites, Some(1), from, to)
            .await?
    };
    // (site, meter) → window start → present; the last row of a window wins.
    let mut seen: HashMap<(&str, &str), HashMap<i64, bool>> = HashMap::new();
    for r in &rows {
        if let Some(meter) = &r.meter {
            let present = r.coverage.is_none_or(|c| c > 0.0);
            seen.entry((r.site.as_str(), meter.as_str()))
                .or_default()
                .insert(r.time, present);
        }
    }

    let mut out = Vec::with_capacity(sites.len());
    let mut without_counter = Vec::new();
    for ((site_id, site), (first, end, _, _)) in sites.iter().zip(&spans) {
        let tz = &site.timezone;
        let mut meters = Vec::new();
        for m in config
            .meters
            .iter()
            .filter(|m| m.site == *site_id && m.level == Level(1))
        {
            if m.consumption.is_some() {
                meters.push(m.id.as_str());
            } else {
                without_counter.push(m.id.clone());
            }
        }
        let mut s = SiteCompleteness {
            site: site.id.clone(),
            name: site.name.clone(),
            timezone: tz.iana_name().unwrap_or("").to_owned(),
            from: first.to_string(),
            to: (*first).max(end.yesterday().unwrap_or(*end)).to_string(),
            meters: meters.iter().map(|m| (*m).to_owned()).collect(),
            present: 0,
            required: 0,
            rate_pct: None,
            days: Vec::new(),
            failing_days: Vec::new(),
            days_not_ended: 0,
        };
        let mut date = *first;
        while date < *end {
            let next = date
                .tomorrow()
                .map_err(|e| ReportError::Request(format!("{date}: {e}")))?;
            let (start, stop) = (local_midnight(date, tz)?, local_midnight(next, tz)?);
            if stop > now {
                s.days_not_ended += 1;
                date = next;
                continue;
            }
            let qs = quarters(tz, start, stop);
            let mut day = DayCompleteness {
                date: date.to_string(),
                present: 0,
                required: 0,
                rate_pct: None,
                passes: false,
                meters: Vec::with_capacity(meters.len()),
            };
            for meter in &meters {
                let got = seen.get(&(site.id.as_str(), *meter));
                let present = qs
                    .iter()
                    .filter(|t| got.and_then(|g| g.get(t)).copied().unwrap_or(false))
                    .count() as u64;
                let required = qs.len() as u64;
                day.present += present;
                day.required += required;
                day.meters.push(MeterDay {
                    meter: (*meter).to_owned(),
                    present,
                    required,
                });
            }
            day.rate_pct = rate(day.present, day.required);
            day.passes = passes(day.present, day.required);
            if !day.passes {
                s.failing_days.push(day.date.clone());
            }
            s.present += day.present;
            s.required += day.required;
            s.days.push(day);
            date = next;
        }
        s.rate_pct = rate(s.present, s.required);
        out.push(s);
    }

    let present = out.iter().map(|s| s.present).sum();
    let required = out.iter().map(|s| s.required).sum();
    let report = Completeness {
        kind: ReportKind::Completeness,
        window: WindowSize::Min15.as_tag(),
        rule_pct: RULE_PCT,
        now: req.now.to_string(),
        summary: Summary {
            sites: out.len(),
            days: out.iter().map(|s| s.days.len()).sum(),
            failing_days: out.iter().map(|s| s.failing_days.len()).sum(),
            sites_failing: out.iter().filter(|s| !s.failing_days.is_empty()).count(),
            present,
            required,
            rate_pct: rate(present, required),
        },
        sites: out,
    };
    let document = document(config, req, &report, &without_counter);
    let json = serde_json::to_value(&report)
        .map_err(|e| ReportError::Request(format!("completeness as JSON: {e}")))?;
    Ok(Output { json, document })
}

/// The report for reading: facts, the per-day table (the CSV), the chart,
/// the failing days per site, and how it is counted.
fn document(
    config: &Config,
    req: &Request,
    r: &Completeness,
    without_counter: &[String],
) -> Document {
    let label = range_label(req.range, req.now, &config.gateway.timezone);
    let col = |name: &str, numeric: bool| Column {
        name: name.to_owned(),
        numeric,
    };
    let opt_pct = |v: Option<f64>| v.map(pct_text).unwrap_or_default();

    let mut rows = Vec::new();
    for s in &r.sites {
        for d in &s.days {
            let below: Vec<String> = d
                .meters
                .iter()
                .filter(|m| !passes(m.present, m.required))
                .map(|m| format!("{} {}/{}", m.meter, m.present, m.required))
                .collect();
            let result = if d.passes {
                "pass"
            } else if d.required == 0 {
                "fail: no level-1 meter"
            } else {
                "fail"
            };
            rows.push(Row {
                cells: vec![
                    s.site.clone(),
                    d.date.clone(),
                    d.meters.len().to_string(),
                    d.present.to_string(),
                    d.required.to_string(),
                    opt_pct(d.rate_pct),
                    result.to_owned(),
                    below.join(", "),
                ],
                mark: if d.passes { Mark::Green } else { Mark::Red },
            });
        }
    }
    let days = Table {
        title: "Completeness per site and day (15-minute values of level-1 meters)".to_owned(),
        columns: vec![
            col("site", false),
            col("day", false),
            col("level-1 meters", true),
            col("present", true),
            col("required", true),
            col("rate (%)", true),
            col("result", false),
            col("meters below 90 % (present/required)", false),
        ],
        rows,
    };
    let bars = r
        .sites
        .iter()
        .filter_map(|s| {
            Some(Bar {
                label: s.site.clone(),
                value: s.rate_pct?,
                mark: if s.failing_days.is_empty() {
                    Mark::Green
                } else {
                    Mark::Red
                },
            })
        })
        .collect();
    let chart = Chart {
        title: "Completeness per site over the range".to_owned(),
        unit: "%".to_owned(),
        bars,
        reference: Some(("rule 90 %".to_owned(), RULE_PCT)),
    };
    let failing = Table {
        title: "Days that fail the 90 % rule".to_owned(),
        columns: vec![
            col("site", false),
            col("days judged", true),
            col("days failing", true),
            col("failing days", false),
        ],
        rows: r
            .sites
            .iter()
            .map(|s| Row {
                cells: vec![
                    s.site.clone(),
                    s.days.len().to_string(),
                    s.failing_days.len().to_string(),
                    s.failing_days.join(", "),
                ],
                mark: if s.failing_days.is_empty() {
                    Mark::Green
                } else {
                    Mark::Red
                },
            })
            .collect(),
    };
    let mut notes = vec![
        "A value is present when the meter's `consumption` point of window 15m exists for \
         that quarter hour with coverage above 0 (a quarter with no good reading is written \
         with coverage 0 and is not present). Required: the quarter hours of each local day \
         in the site's time zone (96; 92 or 100 on a clock-change day) for every level-1 \
         meter of the site. A day passes when present / required ≥ 90 %."
            .to_owned(),
    ];
    let not_ended: u32 = r.sites.iter().map(|s| s.days_not_ended).sum();
    if not_ended > 0 {
        notes.push(format!(
            "{not_ended} site-day(s) of the range had not ended at {} and are not judged.",
            r.now
        ));
    }
    if !without_counter.is_empty() {
        notes.push(format!(
            "Level-1 meters without a consumption counter write no 15-minute values and are \
             not counted: {}.",
            without_counter.join(", ")
        ));
    }
    let mut blocks = vec![
        Block::Table(days),
        Block::Chart(chart),
        Block::Table(failing),
    ];
    blocks.extend(notes.into_iter().map(Block::Note));
    Document {
        kind: ReportKind::Completeness,
        title: format!("Data completeness {label}"),
        subtitle: format!(
            "{label} · {} site(s) · as of {} · gateway {}",
            r.summary.sites, r.now, config.gateway.id
        ),
        facts: vec![
            (
                "Rule".to_owned(),
                "≥ 90 % of 15-minute values per day".to_owned(),
            ),
            ("Sites".to_owned(), r.summary.sites.to_string()),
            ("Days judged".to_owned(), r.summary.days.to_string()),
            (
                "Days failing".to_owned(),
                r.summary.failing_days.to_string(),
            ),
            (
                "Sites with failing days".to_owned(),
                r.summary.sites_failing.to_string(),
            ),
            (
                "Overall".to_owned(),
                r.summary
                    .rate_pct
                    .map(|v| format!("{} %", pct_text(v)))
                    .unwrap_or_default(),
            ),
        ],
        blocks,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The builder on an in-memory store: a site at 171/192 (89.06 %) fails,
    //! one at 175/192 (91.15 %) passes; a meter that was down is not present.

    use std::fmt::Write as _;

    use super::*;
    use crate::reports::{Granularity, Range, SiteSum, Sites, StoreError, WindowRow};

    /// A store holding rows in memory, filtered as the real ones filter.
    #[derive(Default)]
    pub(crate) struct MemStore {
        pub(crate) meters: Vec<(u8, WindowRow)>,
        pub(crate) sites: Vec<WindowRow>,
    }

    fn wanted(sites: &Sites, site: &str) -> bool {
        match sites {
            Sites::All => true,
            Sites::Only(ids) => ids.iter().any(|i| i == site),
        }
    }

    impl Store for MemStore {
        async fn site_rows(
            &self,
            window: &str,
            sites: &Sites,
            from: i64,
            to: i64,
        ) -> Result<Vec<WindowRow>, StoreError> {
            Ok(self
                .sites
                .iter()
                .filter(|r| r.window == window && wanted(sites, &r.site))
                .filter(|r| r.time >= from && r.time < to)
                .cloned()
                .collect())
        }

        async fn meter_rows(
            &self,
            window: &str,
            sites: &Sites,
            level: Option<u8>,
            from: i64,
            to: i64,
        ) -> Result<Vec<WindowRow>, StoreError> {
            Ok(self
                .meters
                .iter()
                .filter(|(l, r)| r.window == window && level.is_none_or(|x| x == *l))
                .filter(|(_, r)| wanted(sites, &r.site) && r.time >= from && r.time < to)
                .map(|(_, r)| r.clone())
                .collect())
        }

        async fn site_sums(
            &self,
            _window: &str,
            _sites: &Sites,
            _from: i64,
            _to: i64,
        ) -> Result<Vec<SiteSum>, StoreError> {
            Ok(Vec::new())
        }

        async fn entries(&self, _sites: &Sites) -> Result<Vec<crate::entries::Entry>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// A meter's `consumption` row.
    pub(crate) fn meter_row(
        site: &str,
        meter: &str,
        window: &str,
        time: i64,
        coverage: f64,
    ) -> WindowRow {
        WindowRow {
            time,
            site: site.into(),
            meter: Some(meter.into()),
            energy: "water".into(),
            unit: "m3".into(),
            window: window.into(),
            amount: 1.0,
            kgce: None,
            controlled_kgce: None,
            coverage: Some(coverage),
            estimated: Some(coverage < 1.0),
        }
    }

    /// Two sites (Asia/Shanghai), each with two level-1 water meters and a
    /// level-2 one; `windows` is the `[aggregation]` list.
    pub(crate) fn config(windows: &str, extra_meter_keys: &[(&str, &str)]) -> Config {
        let main = format!(
            "[gateway]\nid = \"gw\"\n\n[aggregation]\nwindows = [{windows}]\n\n\
             [[endpoints]]\nid = \"ep\"\nhost = \"127.0.0.1\"\n"
        );
        let site = |id: &str, unit: usize| {
            let mut text = format!("[site]\nid = \"{id}\"\nname = \"Site {id}\"\n");
            for (n, level) in [("m1", 1), ("m2", 1), ("sub", 2)] {
                let meter = format!("{id}-{n}");
                let keys = extra_meter_keys
                    .iter()
                    .find(|(m, _)| *m == meter)
                    .map_or("", |(_, k)| k);
                let _ = write!(
                    text,
                    "\n[[meters]]\nid = \"{meter}\"\nenergy = \"water\"\nlevel = {level}\n\
                     profile = \"water_meter\"\nendpoint = \"ep\"\nunit_id = {}\n{keys}\n",
                    unit + level + usize::from(n == "m2") * 5
                );
            }
            text
        };
        let a = site("a", 10);
        let b = site("b", 20);
        crate::config::from_parts(
            &main,
            &[("a.toml", &a), ("b.toml", &b)],
            crate::profiles::load::builtin(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn request(kind: ReportKind, range: Option<Range>, now: &str) -> Request {
        Request {
            kind,
            sites: Sites::All,
            range,
            now: now.parse().unwrap(),
            granularity: Granularity::Day,
            due_within_days: 30,
        }
    }

    /// 2026-10-01 00:00 in Asia/Shanghai (UTC+8), Unix seconds.
    const OCT1: i64 = 1_790_784_000;

    #[tokio::test]
    async fn a_site_at_89_percent_fails_and_one_at_91_passes() {
        assert_eq!(
            jiff::Timestamp::from_second(OCT1).unwrap().to_string(),
            "2026-09-30T16:00:00Z"
        );
        let config = config("\"15m\", \"1d\"", &[]);
        let mut store = MemStore::default();
        // Site a: m1 has 96 quarters, m2 only its first 75 (a down, then
        // 21 quarters at coverage 0): 171/192. Site b: 96 + 79 = 175/192.
        for (site, m2_good) in [("a", 75), ("b", 79)] {
            for q in 0..96 {
                let t = OCT1 + q * 900;
                store
                    .meters
                    .push((1, meter_row(site, &format!("{site}-m1"), "15m", t, 1.0)));
                let cov = if q < m2_good { 0.5 } else { 0.0 };
                store
                    .meters
                    .push((1, meter_row(site, &format!("{site}-m2"), "15m", t, cov)));
                // The sub-meter is level 2: never counted.
                store
                    .meters
                    .push((2, meter_row(site, &format!("{site}-sub"), "15m", t, 1.0)));
            }
        }
        let req = request(
            ReportKind::Completeness,
            Some(Range::Days(
                "2026-10-01".parse().unwrap(),
                "2026-10-01".parse().unwrap(),
            )),
            "2026-10-05T00:00:00Z",
        );
        let out = build(&config, &store, &req).await.unwrap();
        let sites = out.json["sites"].as_array().unwrap();
        assert_eq!(sites[0]["days"][0]["present"], 171);
        assert_eq!(sites[0]["days"][0]["required"], 192);
        assert_eq!(sites[0]["days"][0]["rate_pct"], 171.0 * 100.0 / 192.0);
        assert_eq!(sites[0]["days"][0]["passes"], false);
        assert_eq!(sites[0]["failing_days"], serde_json::json!(["2026-10-01"]));
        assert_eq!(sites[1]["days"][0]["present"], 175);
        assert_eq!(sites[1]["days"][0]["passes"], true);
        assert_eq!(out.json["summary"]["failing_days"], 1);
        let Block::Table(t) = &out.document.blocks[0] else {
            panic!()
        };
        assert_eq!(t.rows[0].cells[5], "89.06");
        assert_eq!(t.rows[0].cells[7], "a-m2 75/96");
        assert_eq!(t.rows[0].mark, Mark::Red);
        assert_eq!(t.rows[1].cells[5], "91.15");
        assert_eq!(t.rows[1].mark, Mark::Green);
    }

    #[test]
    fn a_clock_change_day_requires_92_or_100_quarter_hours() {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let count = |day: &str| {
            let d: jiff::civil::Date = day.parse().unwrap();
            let (a, b) = (
                local_midnight(d, &tz).unwrap(),
                local_midnight(d.tomorrow().unwrap(), &tz).unwrap(),
            );
            quarters(&tz, a, b).len()
        };
        // 23 h × 4 on the spring change, 25 h × 4 in autumn.
        assert_eq!(count("2026-03-29"), 92);
        assert_eq!(count("2026-10-25"), 100);
        assert_eq!(count("2026-10-26"), 96);
    }

    #[tokio::test]
    async fn without_15m_windows_the_report_says_how_to_fix_it() {
        let config = config("\"1h\", \"1d\"", &[]);
        let req = request(ReportKind::Completeness, None, "2026-10-05T00:00:00Z");
        let err = build(&config, &MemStore::default(), &req)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "completeness counts 15-minute values, but this configuration writes no \"15m\" \
             window (windows: 1h, 1d); add \"15m\" to [aggregation] windows"
        );
    }

    #[tokio::test]
    async fn days_not_ended_are_not_judged() {
        let config = config("\"15m\"", &[]);
        let req = request(ReportKind::Completeness, None, "2026-10-02T00:00:00Z");
        let out = build(&config, &MemStore::default(), &req).await.unwrap();
        // Local now is 2026-10-02 08:00: only Oct 1 has ended.
        assert_eq!(out.json["sites"][0]["days"].as_array().unwrap().len(), 1);
        assert_eq!(out.json["sites"][0]["days_not_ended"], 30);
        assert_eq!(out.json["sites"][0]["days"][0]["required"], 192);
    }
}
