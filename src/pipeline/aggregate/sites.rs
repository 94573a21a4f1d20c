//! Site roll-ups: final windows of level-1 meters summed per site, energy
//! and window (and in kgce into the total), exports deducted, each meter
//! counted once, incomplete windows forgotten after a retention.

use super::{AggOutput, Aggregator, ConsumptionOut, SiteOut, TOTAL};
use crate::model::EnergyType;
use crate::pipeline::energy::EnergyRole;
use crate::pipeline::window::{ClosedWindow, WindowSize};

/// One site window being summed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SiteAcc {
    pub(super) amount: f64,
    pub(super) kgce: f64,
    pub(super) exported: f64,
    pub(super) feedstock: f64,
    pub(super) renewable: f64,
    pub(super) coverage: f64,
    pub(super) contributors: Vec<u32>,
}

/// Site roll-up key: site, energy row (`TOTAL` for the total), size index, window start.
pub(super) type SiteKey = (u32, u8, u8, i64);

impl Aggregator {
    /// Adds a final window of meter `m` into its site's roll-ups.
    pub(super) fn roll_up(
        &mut self,
        m: usize,
        s: usize,
        w: &ClosedWindow,
        rec: &ConsumptionOut,
        out: &mut AggOutput,
    ) {
        let spec = &self.meters[m];
        if !spec.level1 {
            return;
        }
        let (site, role, energy) = (spec.site, spec.role, spec.energy);
        let n_sizes = self.settings.windows.len();
        let ss = site * n_sizes + s;
        if w.start <= self.site_forgotten[ss] {
            self.counters_out.site_too_late += 1;
            return;
        }
        if w.start > self.site_newest[ss] {
            self.site_newest[ss] = w.start;
            self.forget_old(site, s);
        }
        let sign = if role == EnergyRole::Exported {
            -1.0
        } else {
            1.0
        };
        let kgce = rec.kgce.unwrap_or(0.0);
        let meter = u32::try_from(m).unwrap_or(u32::MAX);
        let site32 = u32::try_from(site).unwrap_or(u32::MAX);
        let size8 = u8::try_from(s).unwrap_or(u8::MAX);
        let rows = [
            (energy_row(energy), rec.amount, true),
            (TOTAL, kgce, rec.kgce.is_some()),
        ];
        for (row, amount, wanted) in rows {
            if !wanted {
                continue;
            }
            let key = (site32, u8::try_from(row).unwrap_or(u8::MAX), size8, w.start);
            let acc = self.site_acc.entry(key).or_insert_with(|| SiteAcc {
                amount: 0.0,
                kgce: 0.0,
                exported: 0.0,
                feedstock: 0.0,
                renewable: 0.0,
                coverage: 0.0,
                contributors: Vec::new(),
            });
            if acc.contributors.contains(&meter) {
                // Already counted (a window closed twice): never double count.
                continue;
            }
            acc.contributors.push(meter);
            acc.amount += sign * amount;
            acc.kgce += sign * kgce;
            acc.coverage += w.coverage;
            match role {
                EnergyRole::Exported => acc.exported += kgce,
                EnergyRole::Feedstock => acc.feedstock += kgce,
                EnergyRole::Renewable => acc.renewable += kgce,
                EnergyRole::Consumed => {}
            }
            let expected = self.expected[site][row].max(1);
            out.sites.push(SiteOut {
                site: site32,
                energy: EnergyType::ALL.get(row).copied(),
                size: self.settings.windows[s],
                start: w.start,
                amount: acc.amount,
                kgce: acc.kgce,
                meters: u32::try_from(acc.contributors.len()).unwrap_or(u32::MAX),
                coverage: (acc.coverage / f64::from(expected)).clamp(0.0, 1.0),
                exported_kgce: acc.exported,
                feedstock_kgce: acc.feedstock,
                renewable_kgce: acc.renewable,
            });
            self.counters_out.site_windows_emitted += 1;
            if acc.contributors.len() >= expected as usize {
                self.site_acc.remove(&key);
            }
        }
    }

    /// Forgets incomplete site windows of `(site, size)` older than the
    /// retention behind the newest one.
    pub(super) fn forget_old(&mut self, site: usize, s: usize) {
        let n_sizes = self.settings.windows.len();
        let ss = site * n_sizes + s;
        let keep_from =
            self.site_newest[ss].saturating_sub(retention_secs(self.settings.windows[s]));
        let (site32, size8) = (
            u32::try_from(site).unwrap_or(u32::MAX),
            u8::try_from(s).unwrap_or(u8::MAX),
        );
        let mut forgotten = self.site_forgotten[ss];
        self.site_acc.retain(|k, _| {
            let old = k.0 == site32 && k.2 == size8 && k.3 < keep_from;
            if old {
                forgotten = forgotten.max(k.3);
            }
            !old
        });
        self.site_forgotten[ss] = forgotten.max(keep_from - 1);
    }
}

/// The row of an energy type in the site tables.
pub(super) fn energy_row(e: EnergyType) -> usize {
    EnergyType::ALL.iter().position(|x| *x == e).unwrap_or(0)
}

/// How long incomplete site windows wait for missing meters.
pub(super) fn retention_secs(size: WindowSize) -> i64 {
    match size {
        WindowSize::Month => 62 * 86_400,
        WindowSize::Day => 3 * 86_400,
        _ => 2 * 86_400,
    }
}
