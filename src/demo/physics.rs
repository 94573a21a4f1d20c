//! Tests of the demo's simulated enterprise as physics: every level-1
//! electricity incomer draws at least what its sub-meters draw, and its
//! counter is fine enough that a minute of it is never zero.
//!
//! Why a file of its own: these start the simulator on the demo's
//! configuration and read its counters exactly ([`Simulator::value_at`],
//! the registers a poll gets); `builtin` only checks the configuration.

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;

    use super::super::demo_config;
    use crate::model::{EnergyType, Level, MeterId};
    use crate::sim::{SimOptions, Simulator};

    /// 2026-03-16T00:00:00+08:00, a Monday midnight, then every quarter
    /// hour for a day: troughs and peaks of every daily swing.
    const START: f64 = 1_773_590_400.0;

    #[tokio::test]
    async fn incomers_draw_at_least_their_sub_meters_and_count_every_minute() {
        let dir = tempfile::tempdir().expect("temp dir");
        for mqtt in [false, true] {
            let c = demo_config(dir.path(), &dir.path().join("demo.lp"), mqtt).expect("loads");
            let stop = CancellationToken::new();
            let sim = Simulator::start_with(
                &c,
                stop.clone(),
                SimOptions {
                    frozen_time: Some(START),
                    ..SimOptions::default()
                },
            )
            .await
            .expect("simulator");
            let id = |i: usize| MeterId(u32::try_from(i).expect("index"));
            // The consumption counter as served (registers decoded as the gateway does).
            let served = |m: usize, t: f64| {
                let point = c.meters[m].consumption.expect("counter");
                sim.value_at(id(m), point, t)
            };
            let incomers: Vec<usize> = (0..c.meters.len())
                .filter(|&i| {
                    c.meters[i].energy == EnergyType::Electricity && c.meters[i].level == Level(1)
                })
                .collect();
            assert_eq!(incomers.len(), 6, "tx, pc ×2, cm ×2, hs");
            let mut sites_with_sub_meters = std::collections::BTreeSet::new();
            for &inc in &incomers {
                let subs: Vec<usize> = (0..c.meters.len())
                    .filter(|&i| sim.incomer_of(id(i)) == Some(id(inc)))
                    .collect();
                assert!(!subs.is_empty(), "{} has sub-meters", c.meters[inc].id);
                sites_with_sub_meters.insert(c.meters[inc].site);
                for s in &subs {
                    assert_eq!(c.meters[*s].site, c.meters[inc].site);
                    assert_eq!(c.meters[*s].energy, EnergyType::Electricity);
                    assert_ne!(c.meters[*s].level, Level(1));
                }
                for q in 0..96 {
                    let t0 = START + f64::from(q) * 900.0;
                    let t1 = t0 + 60.0;
                    // Exact (the closed-form counters): the incomer carries its
                    // sub-meters plus the unmetered 15 %.
                    let own = sim.consumption(id(inc), t0, t1);
                    let below: f64 = subs.iter().map(|&s| sim.consumption(id(s), t0, t1)).sum();
                    assert!(own > 0.0);
                    let unmetered = crate::sim::hierarchy::UNMETERED_SHARE;
                    assert!(
                        (own - below - unmetered * own).abs() <= 1e-9 * own,
                        "{} at {t0}: {own} vs {below}",
                        c.meters[inc].id
                    );
                    // As served: a minute of the incomer is never zero ...
                    let minute = served(inc, t1) - served(inc, t0);
                    assert!(minute > 0.0, "{} at {t0}: 0 kWh a minute", c.meters[inc].id);
                    // ... and over a quarter hour its register moves at least as
                    // much as its sub-meters' together (over a minute one count
                    // of 0.1-0.2 kWh can exceed the unmetered 15 %).
                    let t15 = t0 + 900.0;
                    let quarter = served(inc, t15) - served(inc, t0);
                    let subs_quarter: f64 =
                        subs.iter().map(|&s| served(s, t15) - served(s, t0)).sum();
                    assert!(
                        quarter >= subs_quarter,
                        "{} at {t0}: {quarter} kWh < its sub-meters' {subs_quarter} kWh",
                        c.meters[inc].id
                    );
                }
            }
            assert_eq!(sites_with_sub_meters.len(), 4, "every enterprise");
            stop.cancel();
        }
    }
}
