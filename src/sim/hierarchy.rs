//! A coherent metering hierarchy: within a site and an energy type, the
//! level-1 meters (incomers) feed the level-2 and level-3 meters, so an
//! incomer always draws the sum of its sub-meters plus an unmetered share.
//!
//! Why: meters with independent hashed loads let a sub-meter draw more than
//! its own incomer, which no plant does and which makes a simulated
//! enterprise's balance (level 1 against levels 2 and 3) nonsense.
//!
//! # The rule
//! For each site and energy type, take the meters whose load is still the
//! hashed one ([`LoadShape::for_meter`]: not overridden by a test, not driven
//! by a boiler model). Its level-1 meters are the incomers, its level-2 and
//! level-3 meters the sub-meters (the configuration names no parent, so
//! every sub-meter hangs directly below an incomer: a flat tree). Sub-meter
//! `k` (configuration order) belongs to incomer `k mod n`.
//!
//! An incomer with sub-meters `i` gets base `Σ base_i ÷ (1 − u)` with
//! `u =` [`UNMETERED_SHARE`], keeps its own daily swing and ripple, and its
//! counter's starting value scaled by the same factor; each of its
//! sub-meters keeps its own base and starting value but follows the
//! incomer's swing and ripple. Every instant then
//! `rate(incomer) = Σ rate(sub-meter) + u × rate(incomer)`, and over any
//! span the same holds for consumption, exactly (closed form, see
//! `sim::load`). Meters outside such a group keep their hashed load.

use super::load::LoadShape;
use super::meter::SimMeter;
use crate::config::Config;
use crate::model::Level;

/// Share of an incomer's load that no sub-meter measures (lighting,
/// losses, small consumers): 15 %.
pub const UNMETERED_SHARE: f64 = 0.15;

/// Applies the rule of the module doc to `meters` (indexed like
/// `config.meters`); the parent incomer of each meter, by index.
pub(crate) fn cohere(config: &Config, meters: &mut [SimMeter]) -> Vec<Option<usize>> {
    let mut parent = vec![None; meters.len()];
    let free: Vec<bool> = config
        .meters
        .iter()
        .zip(meters.iter())
        .map(|(m, s)| s.load == LoadShape::for_meter(&m.id, m.energy))
        .collect();
    let mut groups: Vec<(usize, crate::model::EnergyType)> = config
        .meters
        .iter()
        .enumerate()
        .filter(|(i, _)| free[*i])
        .map(|(_, m)| (m.site.index(), m.energy))
        .collect();
    groups.sort_by_key(|(s, e)| (*s, e.as_str()));
    groups.dedup();
    for (site, energy) in groups {
        let members = |level1: bool| -> Vec<usize> {
            config
                .meters
                .iter()
                .enumerate()
                .filter(|(i, m)| {
                    free[*i]
                        && m.site.index() == site
                        && m.energy == energy
                        && (m.level == Level(1)) == level1
                })
                .map(|(i, _)| i)
                .collect()
        };
        let (incomers, subs) = (members(true), members(false));
        if incomers.is_empty() || subs.is_empty() {
            continue;
        }
        for (n, &incomer) in incomers.iter().enumerate() {
            let mine: Vec<usize> = subs
                .iter()
                .enumerate()
                .filter(|(k, _)| k % incomers.len() == n)
                .map(|(_, &s)| s)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let own = meters[incomer].load;
            let sum: f64 = mine.iter().map(|&s| meters[s].load.base).sum();
            let base = sum / (1.0 - UNMETERED_SHARE);
            meters[incomer].load = LoadShape {
                base,
                initial: own.initial / own.base * base,
                ..own
            };
            for s in mine {
                let sub = meters[s].load;
                meters[s].load = LoadShape {
                    base: sub.base,
                    initial: sub.initial,
                    ..own
                };
                parent[s] = Some(incomer);
            }
        }
    }
    parent
}
