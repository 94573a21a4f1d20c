//! The regulator's side of the demo: each enterprise's production entries,
//! what its run measured, and its energy-saving targets for the current
//! year, sized so that the four enterprises land on four different levels.
//!
//! Why sized after the run: a demo of about a minute measures about a
//! minute. The targets report treats what the database holds as the year
//! to date and projects it to year end (`used ÷ elapsed part of the year`),
//! so any fixed cap would put every enterprise on the same level (a minute
//! is nothing against a real cap). The demo therefore reads back what its
//! gateway wrote (the `1m` site totals, the same sum the report makes),
//! and sets each cap and base intensity at a chosen completion rate of that
//! projection: [`PLANNED_COMPLETION`]. The caps are tiny (kgce-sized, not a
//! real enterprise's thousands of tce) and say so in the demo's output;
//! the levels and the arithmetic are real.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::config::{Config, EntryItem, IntensityTarget, TargetConfig, TargetSpan};
use crate::entries::EntryInput;
use crate::model::SiteId;
use crate::pipeline::targets::{projection, year_fraction};

/// Completion rate (%) each enterprise's cap and intensity target is sized
/// at, by site index: green (≥ 100), yellow (90-100), orange (50-90), red
/// (≤ 50), each well inside its band.
pub const PLANNED_COMPLETION: [f64; 4] = [130.0, 95.0, 70.0, 35.0];

/// Annual decrease of the intensity target, %.
pub const ANNUAL_DECREASE_PCT: f64 = 3.0;

/// Production output entered at demo start, per site index: (item, unit,
/// output this month, output this year so far).
pub const OUTPUT: [(&str, &str, f64, f64); 4] = [
    ("output_t", "t", 850.0, 9_350.0),
    ("output_t", "t", 1_200.0, 13_200.0),
    ("output_t", "t", 21_000.0, 231_000.0),
    ("output_value_10k_cny", "10k_cny", 3_400.0, 37_400.0),
];

/// Who the demo's entries are entered by.
pub const ENTERED_BY: &str = "emgate demo";

/// The entries the demo makes at start: each enterprise's output for the
/// current month and the current year so far, in its time zone.
#[must_use]
pub fn entries(config: &Config, now: Timestamp) -> Vec<EntryInput> {
    let mut out = Vec::new();
    for (site, (item, unit, month, year)) in config.sites.iter().zip(OUTPUT) {
        let local = site.timezone.to_datetime(now);
        let periods = [
            (format!("{:04}-{:02}", local.year(), local.month()), month),
            (format!("{:04}", local.year()), year),
        ];
        for (period, value) in periods {
            out.push(EntryInput {
                site: site.id.clone(),
                item: item.to_owned(),
                period,
                value,
                unit: unit.to_owned(),
                entered_by: Some(ENTERED_BY.to_owned()),
                reason: Some("demo: production output".to_owned()),
                ..EntryInput::default()
            });
        }
    }
    out
}

/// What one site's run measured: the `1m` `site_consumption` windows as
/// the database keeps them (the last line per series and window start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteMeasure {
    /// Electricity, kWh (level-1 meters, exports deducted).
    pub electricity_kwh: f64,
    /// Controlled comprehensive consumption (`energy=total`,
    /// `controlled_kgce`), kgce.
    pub controlled_kgce: f64,
    /// `1m` windows of the site's total.
    pub windows: usize,
}

/// Each site's measure from its sums over the `1m` `site_consumption`
/// windows (as [`crate::reports::Store::site_sums`] returns them).
#[must_use]
pub fn measure(sums: &[crate::reports::SiteSum]) -> BTreeMap<String, SiteMeasure> {
    let mut sites: BTreeMap<String, SiteMeasure> = BTreeMap::new();
    for sum in sums {
        let m = sites.entry(sum.site.clone()).or_default();
        match sum.energy.as_str() {
            "electricity" => m.electricity_kwh += sum.amount,
            "total" => {
                m.controlled_kgce += sum.controlled_kgce;
                m.windows += usize::try_from(sum.windows).unwrap_or(usize::MAX);
            }
            _ => {}
        }
    }
    sites
}

/// Each site's target for the current year, sized at `now` from what its
/// run measured (see the module doc): a cap at [`PLANNED_COMPLETION`] of
/// the projection, and an intensity target (kgce per unit of the site's
/// [`OUTPUT`] item, base year last year, [`ANNUAL_DECREASE_PCT`] a year)
/// whose base makes the achieved decrease that same share of the target
/// decrease. A site that measured nothing gets no target.
#[must_use]
pub fn size(
    config: &Config,
    measured: &BTreeMap<String, SiteMeasure>,
    now: Timestamp,
) -> Vec<TargetConfig> {
    let mut out = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let (Some(m), Some(&planned), Some(&(item, _, _, year_output))) = (
            measured.get(&site.id),
            PLANNED_COMPLETION.get(i),
            OUTPUT.get(i),
        ) else {
            continue;
        };
        let local = site.timezone.to_datetime(now);
        let year = local.year();
        let Some(projected) = year_fraction(now, year, &site.timezone)
            .and_then(|f| projection(m.controlled_kgce / 1000.0, f))
            .filter(|p| *p > 0.0)
        else {
            continue;
        };
        // Intensity so far this year; its decrease from the base is
        // `planned` % of the annual target decrease.
        let current = m.controlled_kgce / year_output;
        let achieved = ANNUAL_DECREASE_PCT * planned / 100.0;
        let Some(item_parsed) = EntryItem::parse(item) else {
            continue;
        };
        let per = item.strip_prefix("output_").unwrap_or(item);
        let per = if item == "output_value_10k_cny" {
            "10k_cny"
        } else {
            per
        };
        out.push(TargetConfig {
            site: SiteId(u32::try_from(i).unwrap_or(u32::MAX)),
            span: TargetSpan::Year(i32::from(year)),
            cap_tce: Some(projected * planned / 100.0),
            intensity: Some(IntensityTarget {
                unit: format!("kgce_per_{per}"),
                item: item_parsed,
                base_year: i32::from(year) - 1,
                base_intensity: current / (1.0 - achieved / 100.0),
                annual_decrease_pct: Some(ANNUAL_DECREASE_PCT),
                five_year_decrease_pct: None,
            }),
            warn_yellow_pct: crate::config::targets::DEFAULT_WARN_YELLOW_PCT,
            warn_orange_pct: crate::config::targets::DEFAULT_WARN_ORANGE_PCT,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_takes_electricity_and_the_controlled_total() {
        let sum = |site: &str, energy: &str, amount: f64, controlled: f64, windows: u64| {
            crate::reports::SiteSum {
                site: site.to_owned(),
                energy: energy.to_owned(),
                unit: String::new(),
                amount,
                kgce: amount,
                controlled_kgce: controlled,
                windows,
            }
        };
        let m = measure(&[
            sum("A", "electricity", 3.5, 0.4, 2),
            sum("A", "water", 7.0, 0.1, 2),
            sum("A", "total", 9.0, 8.0, 2),
            sum("B", "total", 1.0, 1.0, 1),
        ]);
        assert_eq!(
            m["A"],
            SiteMeasure {
                electricity_kwh: 3.5,
                controlled_kgce: 8.0,
                windows: 2
            }
        );
        assert_eq!(m["B"].electricity_kwh, 0.0);
    }
}
