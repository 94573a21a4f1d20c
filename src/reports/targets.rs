//! The regulator's report: every site against its energy-saving targets
//! for a year (domain.md §6, "double control"), worst first.
//!
//! Per site: year-to-date controlled tce against the cap (progress, the
//! elapsed fraction of the site's local year, the projection to year end,
//! the cap's completion rate and level); the intensity (the year's
//! controlled kgce over the year's denominator entries) against the
//! required intensity of the annual decrease; the cumulative progress of a
//! five-year plan; and the site's level, the worse of its cap and
//! intensity levels. The arithmetic is `pipeline::targets`' (the README's
//! "How progress, projection and levels are computed"); this module picks
//! the figures and orders the sites.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::run::{describe_sites, midnight, query_sites, sites_of, zone_groups};
use super::{
    Bar, Block, Chart, Column, Document, Mark, Output, Range, ReportError, ReportKind, Request,
    Row, Sites, Store, Table,
};
use crate::config::{Config, EntryItem, IntensityTarget, SiteConfig, TargetConfig, TargetSpan};
use crate::entries::Entry;
use crate::pipeline::targets::{self as calc, Level};
use crate::pipeline::window::WindowSize;

/// How a site stands against its cap on controlled consumption.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapStanding {
    /// The cap, tce.
    pub cap_tce: f64,
    /// Controlled consumption from local Jan 1 to min(now, next Jan 1), tce.
    pub used_tce: f64,
    /// Windows summed.
    pub windows: u64,
    /// `used_tce / cap_tce × 100`.
    pub progress_pct: f64,
    /// Elapsed fraction of the site's local year (1 for a past year).
    pub elapsed: f64,
    /// `used_tce / elapsed`; none before the year starts.
    pub projected_tce: Option<f64>,
    /// `cap_tce / projected_tce × 100`; none when nothing was used yet.
    pub completion_pct: Option<f64>,
    /// Level of the completion rate; `no_data` without any window.
    pub level: String,
}

/// How a site stands against its intensity target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntensityStanding {
    /// e.g. `kgce_per_t`.
    pub unit: String,
    /// The entry item holding the denominator.
    pub item: String,
    /// The year's denominator (sum of the entries used); none without entries.
    pub denominator: Option<f64>,
    /// Which entries: `year entry 2025`, `month entries 2025-01..2025-12 (12 of 12)`, `none`.
    pub denominator_source: String,
    /// Controlled consumption over the entries' span, kgce.
    pub consumption_kgce: f64,
    /// `consumption_kgce / denominator`.
    pub intensity: Option<f64>,
    /// Base year.
    pub base_year: i32,
    /// Intensity in the base year.
    pub base_intensity: f64,
    /// `(1 − intensity / base) × 100`.
    pub decrease_pct: Option<f64>,
    /// Required decrease per year, %.
    pub annual_decrease_pct: Option<f64>,
    /// Required decrease since the base year: `(1 − (1 − a)^(year − base_year)) × 100`.
    pub required_decrease_pct: Option<f64>,
    /// `base × (1 − a)^(year − base_year)`.
    pub required_intensity: Option<f64>,
    /// Completion rate used for the level, %.
    pub completion_pct: Option<f64>,
    /// The annual target met (intensity ≤ required); none without an annual target or entries.
    pub met: Option<bool>,
    /// Level of the completion rate; `no_data` without entries.
    pub level: String,
}

/// Cumulative progress of a five-year plan's intensity decrease.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiveYearStanding {
    /// `"2021-2025"`.
    pub period: String,
    /// The five-year decrease target, %.
    pub five_year_decrease_pct: f64,
    /// Achieved share of it: decrease ÷ target × 100.
    pub progress_pct: Option<f64>,
    /// Share due by the report's year: 20 % per plan year.
    pub due_pct: f64,
    /// `progress_pct ≥ due_pct`.
    pub on_track: Option<bool>,
}

/// One site's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteStanding {
    /// Site id.
    pub site: String,
    /// Site name.
    pub name: String,
    /// `red`, `orange`, `yellow`, `green`, `no_data` or `no_target`: the
    /// worse of the cap's and the intensity's.
    pub level: String,
    /// The lower of the completion rates, %.
    pub completion_pct: Option<f64>,
    /// Against the cap, when there is one.
    pub cap: Option<CapStanding>,
    /// Against the intensity target, when there is one.
    pub intensity: Option<IntensityStanding>,
    /// A plan's cumulative progress, when the plan has a five-year decrease.
    pub five_year: Option<FiveYearStanding>,
}

/// Sites per level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Red sites.
    pub red: usize,
    /// Orange sites.
    pub orange: usize,
    /// Yellow sites.
    pub yellow: usize,
    /// Sites with a target but no window nor entry to judge by.
    pub no_data: usize,
    /// Green sites.
    pub green: usize,
    /// Sites without a target for the year.
    pub no_target: usize,
}

/// The targets report as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetsReport {
    /// `targets`.
    pub kind: ReportKind,
    /// The year.
    pub year: i16,
    /// The `window` tag summed (the smallest configured window).
    pub window: String,
    /// "Now" (RFC 3339, UTC): the year to date ends here.
    pub now: String,
    /// Sites per level.
    pub counts: Counts,
    /// Worst first.
    pub sites: Vec<SiteStanding>,
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Red => "red",
        Level::Orange => "orange",
        Level::Yellow => "yellow",
        Level::Green => "green",
    }
}

/// Sort rank of a level name: red first, no target last.
fn rank(level: &str) -> u8 {
    match level {
        "red" => 0,
        "orange" => 1,
        "yellow" => 2,
        "no_data" => 3,
        "green" => 4,
        _ => 5,
    }
}

fn mark_of(level: &str) -> Mark {
    match level {
        "red" => Mark::Red,
        "orange" => Mark::Orange,
        "yellow" => Mark::Yellow,
        "green" => Mark::Green,
        _ => Mark::None,
    }
}

/// The item's name as entries carry it.
fn item_name(item: &EntryItem) -> String {
    match item {
        EntryItem::Output(unit) => format!("output_{unit}"),
        EntryItem::OutputValue => "output_value_10k_cny".to_owned(),
        EntryItem::ValueAdded => "value_added_10k_cny".to_owned(),
        EntryItem::MeterReading => "meter_reading".to_owned(),
        EntryItem::FuelLab(q) => crate::config::targets::FuelLab::ALL
            .iter()
            .find(|(f, _)| f == q)
            .map_or_else(String::new, |(_, name)| (*name).to_owned()),
    }
}

/// The smallest configured window (what year-to-date sums).
///
/// # Errors
/// When aggregation is off.
pub fn smallest_window(config: &Config) -> Result<WindowSize, ReportError> {
    WindowSize::ALL
        .into_iter()
        .find(|w| config.aggregation.aggregator.windows.contains(w))
        .ok_or_else(|| {
            ReportError::Request(
                "aggregation is off ([aggregation] windows = []): there are no site_consumption windows to add up"
                    .to_owned(),
            )
        })
}

/// The targets of site `index` that apply to `year`: its year target and
/// the plan covering the year.
fn targets_for(
    config: &Config,
    index: usize,
    year: i32,
) -> (Option<&TargetConfig>, Option<&TargetConfig>) {
    let mine = config.targets.iter().filter(|t| t.site.index() == index);
    let year_t = mine
        .clone()
        .find(|t| matches!(t.span, TargetSpan::Year(y) if y == year));
    let plan_t = mine.clone().find(
        |t| matches!(t.span, TargetSpan::Plan { first, last } if first <= year && year <= last),
    );
    (year_t, plan_t)
}

/// Per (item, period) the newest entry no other entry supersedes.
fn current_entries<'a>(entries: &'a [Entry], site: &str, item: &str) -> Vec<&'a Entry> {
    let superseded: HashSet<&str> = entries
        .iter()
        .filter(|e| !e.supersedes.is_empty())
        .map(|e| e.supersedes.as_str())
        .collect();
    let mut newest: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.site == site && e.item == item && !superseded.contains(e.id.as_str()))
    {
        let slot = newest.entry(e.period.as_str()).or_insert(e);
        if (e.time, &e.id) > (slot.time, &slot.id) {
            *slot = e;
        }
    }
    newest.into_values().collect()
}

/// The year's denominator: a year entry if there is one, else the sum of
/// its month entries (with the months used).
fn denominator(current: &[&Entry], year: i16) -> (Option<f64>, String, Vec<i8>) {
    let y = year.to_string();
    if let Some(e) = current.iter().find(|e| e.period == y) {
        return (Some(e.value), format!("year entry {y}"), Vec::new());
    }
    let mut months: Vec<(i8, f64)> = current
        .iter()
        .filter_map(|e| {
            let m = e.period.strip_prefix(&y)?.strip_prefix('-')?;
            (m.len() == 2).then_some(())?;
            Some((m.parse::<i8>().ok()?, e.value))
        })
        .collect();
    months.sort_by_key(|m| m.0);
    if months.is_empty() {
        return (None, "none".to_owned(), Vec::new());
    }
    let list: Vec<i8> = months.iter().map(|m| m.0).collect();
    let source = format!(
        "month entries {y}-{:02}..{y}-{:02} ({} of 12)",
        list[0],
        list[list.len() - 1],
        list.len()
    );
    (Some(months.iter().map(|m| m.1).sum()), source, list)
}

/// Builds the targets report.
///
/// # Errors
/// A range other than a year, aggregation off, or the store's failure.
pub async fn build(
    config: &Config,
    store: &impl Store,
    req: &Request,
) -> Result<Output, ReportError> {
    let year = match req.range {
        None => super::run::year_of(req.now, &config.gateway.timezone),
        Some(Range::Year(y)) => y,
        Some(_) => {
            return Err(ReportError::Request(
                "the targets report is per year: give year YYYY, or nothing for the current year"
                    .to_owned(),
            ));
        }
    };
    let window = smallest_window(config)?.as_tag();
    let sites = sites_of(config, &req.sites);
    let now = req.now.as_second();
    let no_range = || ReportError::Request(format!("year {year} does not exist"));
    let jan1 = jiff::civil::Date::new(year, 1, 1).map_err(|_| no_range())?;
    let next = jiff::civil::Date::new(year + 1, 1, 1).map_err(|_| no_range())?;

    // Controlled kgce per site: year to date, and per month where an
    // intensity's denominator is given per month.
    let mut ytd: HashMap<String, (f64, u64)> = HashMap::new();
    let mut monthly: HashMap<(String, i8), f64> = HashMap::new();
    let with_intensity: Vec<&SiteConfig> = sites
        .iter()
        .copied()
        .filter(|s| {
            let i = config
                .sites
                .iter()
                .position(|c| c.id == s.id)
                .unwrap_or(usize::MAX);
            let (y, p) = targets_for(config, i, i32::from(year));
            y.and_then(|t| t.intensity.as_ref())
                .or_else(|| p.and_then(|t| t.intensity.as_ref()))
                .is_some()
        })
        .collect();
    let entries = if with_intensity.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<String> = with_intensity.iter().map(|s| s.id.clone()).collect();
        store.entries(&query_sites(&req.sites, 1, &ids)).await?
    };
    let groups = zone_groups(&sites);
    let n_groups = groups.len();
    for (tz, ids) in groups {
        let from = midnight(jan1, tz).ok_or_else(no_range)?;
        let end = midnight(next, tz).ok_or_else(no_range)?;
        let to = now.min(end).max(from);
        for s in store
            .site_sums(window, &query_sites(&req.sites, n_groups, &ids), from, to)
            .await?
        {
            if s.energy == "total" {
                let e = ytd.entry(s.site).or_default();
                e.0 += s.controlled_kgce;
                e.1 += s.windows;
            }
        }
        // Months some site's denominator is entered for.
        let mut months_needed: BTreeMap<i8, Vec<String>> = BTreeMap::new();
        for s in with_intensity.iter().filter(|s| ids.contains(&s.id)) {
            let i = config
                .sites
                .iter()
                .position(|c| c.id == s.id)
                .unwrap_or(usize::MAX);
            let (y, p) = targets_for(config, i, i32::from(year));
            let Some(it) = y
                .and_then(|t| t.intensity.as_ref())
                .or_else(|| p.and_then(|t| t.intensity.as_ref()))
            else {
                continue;
            };
            let current = current_entries(&entries, &s.id, &item_name(&it.item));
            for m in denominator(&current, year).2 {
                months_needed.entry(m).or_default().push(s.id.clone());
            }
        }
        for (m, list) in months_needed {
            let first = jiff::civil::Date::new(year, m, 1).map_err(|_| no_range())?;
            let after = first
                .checked_add(jiff::ToSpan::month(1))
                .map_err(|_| no_range())?;
            let (f, t) = (
                midnight(first, tz).ok_or_else(no_range)?,
                midnight(after, tz).ok_or_else(no_range)?,
            );
            if f >= now {
                continue;
            }
            for s in store
                .site_sums(window, &Sites::Only(list), f, t.min(now))
                .await?
            {
                if s.energy == "total" {
                    *monthly.entry((s.site, m)).or_default() += s.controlled_kgce;
                }
            }
        }
    }

    let mut standings = Vec::new();
    for site in &sites {
        let index = config
            .sites
            .iter()
            .position(|c| c.id == site.id)
            .unwrap_or(usize::MAX);
        let (year_t, plan_t) = targets_for(config, index, i32::from(year));
        let (used_kgce, windows) = ytd.get(&site.id).copied().unwrap_or((0.0, 0));
        let cap = year_t
            .and_then(|t| t.cap_tce.map(|c| (c, t)))
            .or_else(|| plan_t.and_then(|t| t.cap_tce.map(|c| (c, t))))
            .map(|(cap_tce, t)| {
                let used_tce = used_kgce / 1000.0;
                let elapsed = calc::year_fraction(req.now, year, &site.timezone).unwrap_or(0.0);
                let projected_tce = calc::projection(used_tce, elapsed);
                let completion_pct = projected_tce
                    .map(|p| calc::cap_completion(p, cap_tce))
                    .filter(|c| c.is_finite());
                let level = if windows == 0 {
                    "no_data".to_owned()
                } else {
                    level_name(calc::level(
                        completion_pct.unwrap_or(f64::INFINITY),
                        t.warn_yellow_pct,
                        t.warn_orange_pct,
                    ))
                    .to_owned()
                };
                CapStanding {
                    cap_tce,
                    used_tce,
                    windows,
                    progress_pct: calc::progress(used_tce, cap_tce),
                    elapsed,
                    projected_tce,
                    completion_pct,
                    level,
                }
            });
        let intensity_t = year_t
            .and_then(|t| t.intensity.as_ref().map(|i| (i, t)))
            .or_else(|| plan_t.and_then(|t| t.intensity.as_ref().map(|i| (i, t))));
        let five_year = plan_t.and_then(|t| {
            let it = t.intensity.as_ref()?;
            let fy = it.five_year_decrease_pct?;
            let TargetSpan::Plan { first, last } = t.span else {
                return None;
            };
            Some((t, it, fy, first, last))
        });
        let (intensity, five) = match intensity_t {
            None => (None, None),
            Some((it, t)) => intensity_standing(
                it, t, five_year, &entries, &site.id, year, used_kgce, &monthly,
            ),
        };
        let mut levels: Vec<&str> = Vec::new();
        let mut completions: Vec<f64> = Vec::new();
        if let Some(c) = &cap {
            levels.push(&c.level);
            completions.extend(c.completion_pct);
        }
        if let Some(i) = &intensity {
            levels.push(&i.level);
            completions.extend(i.completion_pct);
        }
        let level = levels
            .iter()
            .min_by_key(|l| rank(l))
            .map_or("no_target", |l| *l)
            .to_owned();
        standings.push(SiteStanding {
            site: site.id.clone(),
            name: site.name.clone(),
            level,
            completion_pct: completions.into_iter().reduce(f64::min),
            cap,
            intensity,
            five_year: five,
        });
    }
    standings.sort_by(|a, b| {
        rank(&a.level)
            .cmp(&rank(&b.level))
            .then_with(|| {
                let key = |s: &SiteStanding| s.completion_pct.unwrap_or(f64::INFINITY);
                key(a).total_cmp(&key(b))
            })
            .then_with(|| a.site.cmp(&b.site))
    });
    let mut counts = Counts::default();
    for s in &standings {
        match s.level.as_str() {
            "red" => counts.red += 1,
            "orange" => counts.orange += 1,
            "yellow" => counts.yellow += 1,
            "green" => counts.green += 1,
            "no_data" => counts.no_data += 1,
            _ => counts.no_target += 1,
        }
    }
    let report = TargetsReport {
        kind: ReportKind::Targets,
        year,
        window: window.to_owned(),
        now: req.now.to_string(),
        counts,
        sites: standings,
    };
    let document = document(&report, &sites);
    let json = serde_json::to_value(&report)
        .map_err(|e| ReportError::Request(format!("cannot serialise the report: {e}")))?;
    Ok(Output { json, document })
}

/// The intensity standing and, for a plan, its five-year progress.
#[allow(clippy::too_many_arguments)]
fn intensity_standing(
    it: &IntensityTarget,
    t: &TargetConfig,
    five_year: Option<(&TargetConfig, &IntensityTarget, f64, i32, i32)>,
    entries: &[Entry],
    site: &str,
    year: i16,
    used_kgce: f64,
    monthly: &HashMap<(String, i8), f64>,
) -> (Option<IntensityStanding>, Option<FiveYearStanding>) {
    let item = item_name(&it.item);
    let current = current_entries(entries, site, &item);
    let (denom, source, months) = denominator(&current, year);
    let consumption_kgce = if months.is_empty() {
        used_kgce
    } else {
        months
            .iter()
            .map(|m| monthly.get(&(site.to_owned(), *m)).copied().unwrap_or(0.0))
            .sum()
    };
    let intensity = denom.filter(|d| *d > 0.0).map(|d| consumption_kgce / d);
    let years = i32::from(year) - it.base_year;
    let (required_decrease_pct, required_intensity) = match it.annual_decrease_pct {
        Some(a) if years > 0 => {
            let keep = (1.0 - a / 100.0).powi(years);
            (Some((1.0 - keep) * 100.0), Some(it.base_intensity * keep))
        }
        _ => (None, None),
    };
    let decrease_pct = intensity.map(|e| calc::decrease_pct(e, it.base_intensity));
    let five = five_year.map(|(_, fit, fy, first, last)| {
        let progress_pct = intensity.map(|e| calc::intensity_completion(e, fit.base_intensity, fy));
        let due_pct = 20.0 * f64::from((i32::from(year) - first + 1).clamp(1, 5));
        FiveYearStanding {
            period: format!("{first}-{last}"),
            five_year_decrease_pct: fy,
            progress_pct,
            due_pct,
            on_track: progress_pct.map(|p| p >= due_pct),
        }
    });
    let completion_pct = match (intensity, required_decrease_pct, &five) {
        (Some(e), Some(req), _) => Some(calc::intensity_completion(e, it.base_intensity, req)),
        (Some(_), None, Some(f)) => f.progress_pct.map(|p| p / f.due_pct * 100.0),
        _ => None,
    };
    let met = match (intensity, required_intensity) {
        (Some(e), Some(r)) => Some(e <= r),
        _ => None,
    };
    let level = completion_pct.map_or_else(
        || "no_data".to_owned(),
        |c| level_name(calc::level(c, t.warn_yellow_pct, t.warn_orange_pct)).to_owned(),
    );
    (
        Some(IntensityStanding {
            unit: it.unit.clone(),
            item,
            denominator: denom,
            denominator_source: source,
            consumption_kgce,
            intensity,
            base_year: it.base_year,
            base_intensity: it.base_intensity,
            decrease_pct,
            annual_decrease_pct: it.annual_decrease_pct,
            required_decrease_pct,
            required_intensity,
            completion_pct,
            met,
            level,
        }),
        five,
    )
}

fn col(name: &str, numeric: bool) -> Column {
    Column {
        name: name.to_owned(),
        numeric,
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_default()
}

/// The report for reading: counts as facts, cap completion per site as a
/// chart (reference line at 100 %), the sites worst first as the table.
fn document(r: &TargetsReport, sites: &[&SiteConfig]) -> Document {
    let c = &r.counts;
    let sites_word = |n: usize| format!("{n} site{}", if n == 1 { "" } else { "s" });
    let facts = vec![
        ("Red".to_owned(), sites_word(c.red)),
        ("Orange".to_owned(), sites_word(c.orange)),
        ("Yellow".to_owned(), sites_word(c.yellow)),
        ("No data".to_owned(), sites_word(c.no_data)),
        ("Green".to_owned(), sites_word(c.green)),
        ("No target".to_owned(), sites_word(c.no_target)),
    ];
    let bars = r
        .sites
        .iter()
        .filter_map(|s| {
            let cap = s.cap.as_ref()?;
            Some(Bar {
                label: s.site.clone(),
                value: cap.completion_pct.filter(|v| v.is_finite())?,
                mark: mark_of(&cap.level),
            })
        })
        .collect();
    let rows = r
        .sites
        .iter()
        .map(|s| {
            let cap = s.cap.as_ref();
            let it = s.intensity.as_ref();
            Row {
                cells: vec![
                    s.site.clone(),
                    s.name.clone(),
                    s.level.replace('_', " "),
                    num(cap.map(|c| c.used_tce), 3),
                    num(cap.map(|c| c.cap_tce), 3),
                    num(cap.map(|c| c.progress_pct), 1),
                    num(cap.and_then(|c| c.projected_tce), 3),
                    num(cap.and_then(|c| c.completion_pct), 1),
                    num(it.and_then(|i| i.intensity), 3),
                    num(it.and_then(|i| i.required_intensity), 3),
                    num(it.and_then(|i| i.completion_pct), 1),
                    num(s.five_year.as_ref().and_then(|f| f.progress_pct), 1),
                ],
                mark: mark_of(&s.level),
            }
        })
        .collect();
    let blocks = vec![
        Block::Table(Table {
            title: "Sites, worst first".to_owned(),
            columns: vec![
                col("site", false),
                col("name", false),
                col("level", false),
                col("used tce", true),
                col("cap tce", true),
                col("progress %", true),
                col("projected tce", true),
                col("cap completion %", true),
                col("intensity", true),
                col("required intensity", true),
                col("intensity completion %", true),
                col("five-year progress %", true),
            ],
            rows,
        }),
        Block::Chart(Chart {
            title: "Cap completion per site".to_owned(),
            unit: "%".to_owned(),
            bars,
            reference: Some(("100 % = on the cap".to_owned(), 100.0)),
        }),
        Block::Note(format!(
            "Used = controlled consumption (feedstock and new renewables deducted) summed over the site_consumption {w} windows from local Jan 1 to now (or to the end of a past year). Projection = used / elapsed fraction of the local year; cap completion = cap / projection × 100. Intensity = the year's controlled kgce / the year's entered denominator (a year entry, else the sum of month entries over the same months); required intensity = base × (1 − annual decrease)^(year − base year). Five-year progress = achieved decrease / five-year target, due 20 % per plan year. Levels: green ≥ 100 %, yellow ≥ warn_yellow_pct (90), orange > warn_orange_pct (50), red otherwise; a site's level is the worse of its cap and intensity levels.",
            w = r.window
        )),
    ];
    Document {
        kind: ReportKind::Targets,
        title: format!("Energy-saving targets {}", r.year),
        subtitle: format!("{}; year to date at {}", describe_sites(sites), r.now),
        facts,
        blocks,
    }
}
