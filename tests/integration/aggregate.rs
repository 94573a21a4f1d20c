//! The aggregation stage on hand-made streams: exact window amounts, site
//! roll-ups (level 1 only, exports deducted), gauge statistics, late data
//! (re-emission of the right window only), and checkpoint/restore without
//! loss or double count.

use std::collections::BTreeMap;

use emgate::model::{EnergyType, MeterId, PointValue, Quality, ReadingBatch};
use emgate::pipeline::aggregate::{
    AggOutput, Aggregator, AggregatorSettings, ConsumptionOut, MeterSpec, SiteOut, SiteSpec,
};
use emgate::pipeline::energy::{Conversion, EnergyRole};
use emgate::pipeline::window::WindowSize;
use jiff::tz::TimeZone;
use proptest::prelude::*;

/// 2026-03-15T00:00:00+08:00: a local midnight in Asia/Shanghai.
const MIDNIGHT: i64 = 1_773_504_000;

fn settings(lateness: i64, reorder: usize) -> AggregatorSettings {
    AggregatorSettings {
        windows: vec![WindowSize::Min15, WindowSize::Hour, WindowSize::Day],
        allowed_lateness_secs: lateness,
        max_reorder_readings: reorder,
        max_gap_secs: 900,
    }
}

/// Meter with points `[counter, gauge]`.
fn meter(key: u64, level1: bool, role: EnergyRole, kgce_per_unit: f64) -> MeterSpec {
    MeterSpec {
        key,
        site: 0,
        energy: EnergyType::Electricity,
        level1,
        role,
        counter: Some(0),
        gauges: vec![1],
        conversion: Conversion::Fixed { kgce_per_unit },
        ordered: false,
    }
}

/// `spec` as a polled meter (`ordered`) or one that may deliver late.
fn polled(spec: MeterSpec, ordered: bool) -> MeterSpec {
    MeterSpec { ordered, ..spec }
}

/// An ordered meter rejects a reading older than its newest even inside the
/// allowed lateness: it has no buffer to put it in.
#[test]
fn an_ordered_meter_rejects_a_late_reading() {
    let mut agg = Aggregator::new(
        settings(3600, 16),
        vec![polled(meter(1, true, EnergyRole::Consumed, 1.0), true)],
        shanghai(),
    );
    let mut out = AggOutput::default();
    feed(&mut agg, &[(0, MIDNIGHT, 100.0, 1.0)], &mut out);
    feed(&mut agg, &[(0, MIDNIGHT + 600, 110.0, 1.0)], &mut out);
    // The 15m window closes at once with the ordered meter: written and rolled up.
    feed(&mut agg, &[(0, MIDNIGHT + 1000, 120.0, 1.0)], &mut out);
    // Counter at 00:15 interpolated between 110 (00:10) and 120 (00:16:40):
    // 110 + 10 × 300/400 = 117.5, so 17.5 in the window.
    assert_eq!(
        last_written(&out.consumption)[&(0, "15m", MIDNIGHT)].amount,
        17.5
    );
    assert!(last_sites(&out.sites).contains_key(&("electricity".to_owned(), "15m", MIDNIGHT)));
    let batch = feed(&mut agg, &[(0, MIDNIGHT + 900, 118.0, 1.0)], &mut out);
    assert_eq!(batch.values[0].quality, Quality::TIME);
    assert_eq!(agg.counters().late_rejected, 1);
    assert_eq!(agg.counters().late_accepted, 0);
}

fn shanghai() -> Vec<SiteSpec> {
    vec![SiteSpec {
        key: 7,
        tz: TimeZone::get("Asia/Shanghai").expect("zone"),
    }]
}

/// One reading per call: `(meter, slot, counter, gauge)`.
fn feed(
    agg: &mut Aggregator,
    readings: &[(u32, i64, f64, f64)],
    out: &mut AggOutput,
) -> ReadingBatch {
    let mut batch = ReadingBatch::default();
    let mut cont = Vec::new();
    for &(m, t, c, g) in readings {
        batch.push(
            MeterId(m),
            t,
            0,
            &[
                PointValue::new(c, Quality::GOOD),
                PointValue::new(g, Quality::GOOD),
            ],
        );
        cont.extend([c, f64::NAN]);
    }
    agg.process(&mut batch, &cont, out);
    batch
}

/// Last written consumption per (meter, size tag, start): what InfluxDB keeps.
fn last_written(out: &[ConsumptionOut]) -> BTreeMap<(u32, &'static str, i64), ConsumptionOut> {
    out.iter()
        .map(|c| ((c.meter, c.size.as_tag(), c.start), *c))
        .collect()
}

fn last_sites(out: &[SiteOut]) -> BTreeMap<(String, &'static str, i64), SiteOut> {
    out.iter()
        .map(|s| {
            let e = s.energy.map_or("total", |e| e.as_str()).to_owned();
            ((e, s.size.as_tag(), s.start), *s)
        })
        .collect()
}

#[test]
fn windows_sites_and_gauges_exact() {
    let meters = vec![
        meter(1, true, EnergyRole::Consumed, 0.1229),
        meter(2, true, EnergyRole::Exported, 0.1229),
        meter(3, false, EnergyRole::Consumed, 0.1229),
    ];
    let mut agg = Aggregator::new(settings(0, 0), meters, shanghai());
    let mut out = AggOutput::default();
    // Every 5 minutes for 2 hours: meter 1 uses 10 kWh per 5 min, meter 2
    // exports 1, meter 3 (a sub-meter) uses 4; the gauge cycles 1, 2, 3.
    let mut readings = Vec::new();
    for k in 0..=24_i32 {
        let t = MIDNIGHT + i64::from(k) * 300;
        let g = f64::from(k % 3 + 1);
        readings.push((0, t, 1000.0 + 10.0 * f64::from(k), g));
        readings.push((1, t, 50.0 + f64::from(k), g));
        readings.push((2, t, 7.0 + 4.0 * f64::from(k), g));
    }
    feed(&mut agg, &readings, &mut out);
    let c = last_written(&out.consumption);
    // 8 closed 15m windows and 2 closed hours per meter; the day is open.
    assert_eq!(c.len(), 3 * (8 + 2));
    for q in 0..8 {
        let w = c[&(0, "15m", MIDNIGHT + q * 900)];
        assert_eq!(w.amount, 30.0);
        assert_eq!(w.kgce, Some(30.0 * 0.1229));
        assert_eq!(w.coverage, 1.0);
        assert!(!w.estimated);
        assert_eq!(c[&(1, "15m", MIDNIGHT + q * 900)].amount, 3.0);
    }
    assert_eq!(c[&(0, "1h", MIDNIGHT + 3600)].amount, 120.0);
    assert_eq!(c[&(2, "1h", MIDNIGHT)].amount, 48.0);
    // Site: level-1 only, the export deducted: 120 − 12 = 108 kWh per hour.
    let s = last_sites(&out.sites);
    let e = &s[&("electricity".to_owned(), "1h", MIDNIGHT)];
    assert_eq!(e.amount, 108.0);
    assert_eq!(e.meters, 2);
    assert_eq!(e.coverage, 1.0);
    assert!((e.kgce - 108.0 * 0.1229).abs() < 1e-9);
    assert!((e.exported_kgce - 12.0 * 0.1229).abs() < 1e-12);
    let total = &s[&("total".to_owned(), "1h", MIDNIGHT)];
    assert!((total.amount - 108.0 * 0.1229).abs() < 1e-9);
    assert_eq!(total.kgce, total.amount);
    assert_eq!(s.len(), 2 * (8 + 2));
    // Gauges: each 15m window holds samples 1, 2, 3 in some order.
    let g: Vec<_> = out
        .gauges
        .iter()
        .filter(|g| g.meter == 0 && g.size == WindowSize::Min15)
        .collect();
    assert_eq!(g.len(), 8);
    for w in g {
        assert_eq!(w.samples, 3);
        let st = &out.gauge_stats[w.stats_start as usize..w.stats_end as usize];
        assert_eq!(st.len(), 1);
        assert_eq!(
            (st[0].point, st[0].mean, st[0].min, st[0].max),
            (1, 2.0, 1.0, 3.0)
        );
    }
}

#[test]
fn late_reading_updates_only_its_windows() {
    let mut agg = Aggregator::new(
        settings(600, 16),
        vec![meter(1, true, EnergyRole::Consumed, 1.0)],
        shanghai(),
    );
    let mut out = AggOutput::default();
    // Readings at 0, 600 and 1200 s; the 900 s boundary is interpolated.
    feed(
        &mut agg,
        &[
            (0, MIDNIGHT, 0.0, 1.0),
            (0, MIDNIGHT + 600, 60.0, 1.0),
            (0, MIDNIGHT + 1200, 90.0, 1.0),
        ],
        &mut out,
    );
    // Boundary 900 between (600, 60) and (1200, 90): 75.
    let first = last_written(&out.consumption)[&(0, "15m", MIDNIGHT)];
    assert_eq!(first.amount, 75.0);
    assert_eq!(agg.counters().windows_reemitted, 0);
    out.clear();
    // A late reading at 900 says the counter was 80 there.
    let batch = feed(&mut agg, &[(0, MIDNIGHT + 900, 80.0, 1.0)], &mut out);
    assert!(batch.values.iter().all(|v| v.quality.is_good()));
    let c = last_written(&out.consumption);
    assert_eq!(c.len(), 1, "only the 00:00 quarter is re-emitted: {c:?}");
    assert_eq!(c[&(0, "15m", MIDNIGHT)].amount, 80.0);
    assert_eq!(agg.counters().late_accepted, 1);
    // The quarter's consumption and its gauge statistics.
    assert_eq!(agg.counters().windows_reemitted, 2);
    out.clear();
    // Inconsistent late counter (above the next reading): flagged, not used.
    let batch = feed(&mut agg, &[(0, MIDNIGHT + 1000, 95.0, 1.0)], &mut out);
    assert_eq!(batch.values[0].quality, Quality::BACKWARDS);
    assert_eq!(agg.counters().late_inconsistent, 1);
    // A repeat of a buffered slot: duplicate.
    let batch = feed(&mut agg, &[(0, MIDNIGHT + 900, 80.0, 1.0)], &mut out);
    assert_eq!(batch.values[0].quality, Quality::DUPLICATE);
    // The next quarter closes with the counter at 1800 interpolated from 1200 (90) → 2400 (150).
    out.clear();
    feed(&mut agg, &[(0, MIDNIGHT + 2400, 150.0, 1.0)], &mut out);
    let c = last_written(&out.consumption);
    assert_eq!(c[&(0, "15m", MIDNIGHT + 900)].amount, 120.0 - 80.0);
    // Far past the lateness: the committed state has moved on.
    out.clear();
    feed(&mut agg, &[(0, MIDNIGHT + 4000, 250.0, 1.0)], &mut out);
    let batch = feed(&mut agg, &[(0, MIDNIGHT + 1300, 100.0, 1.0)], &mut out);
    assert_eq!(batch.values[0].quality, Quality::TIME);
    assert_eq!(agg.counters().late_rejected, 1);
}

/// Readings `(t, counter)` of a steadily but irregularly rising counter.
fn stream() -> impl Strategy<Value = Vec<(i64, f64)>> {
    proptest::collection::vec((1_i64..=400, 0_u32..=50), 5..200).prop_map(|steps| {
        let mut t = MIDNIGHT - 3000;
        let mut c = 1000.0;
        steps
            .into_iter()
            .map(|(dt, dc)| {
                t += dt;
                c += f64::from(dc);
                (t, c)
            })
            .collect()
    })
}

fn run_all(agg: &mut Aggregator, order: &[(i64, f64)]) -> AggOutput {
    let mut out = AggOutput::default();
    for &(t, c) in order {
        feed(agg, &[(0, t, c, 1.0)], &mut out);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Shuffling readings within the lateness gives, after re-emission, the
    /// same windows as the in-order stream, and the amounts telescope.
    #[test]
    fn late_readings_converge_to_in_order(readings in stream(), swaps in proptest::collection::vec(0_usize..200, 0..20)) {
        let lateness = 3600;
        let specs = || vec![meter(1, true, EnergyRole::Consumed, 1.0)];
        let mut in_order = Aggregator::new(settings(lateness, 1024), specs(), shanghai());
        let reference = run_all(&mut in_order, &readings);
        // Swap neighbours: each swap makes one reading late by one step (< lateness).
        let mut shuffled = readings.clone();
        for s in swaps {
            let i = s % (shuffled.len() - 1);
            shuffled.swap(i, i + 1);
        }
        let mut late = Aggregator::new(settings(lateness, 1024), specs(), shanghai());
        let got = run_all(&mut late, &shuffled);
        let want = last_written(&reference.consumption);
        let have = last_written(&got.consumption);
        // Windows closed in the in-order run are closed with the same amounts.
        for (k, w) in &want {
            let h = have.get(k);
            prop_assert!(h.is_some(), "window {k:?} missing");
            prop_assert!((h.map_or(f64::NAN, |h| h.amount) - w.amount).abs() <= 1e-9 * w.amount.abs().max(1.0), "{k:?}: {h:?} vs {w:?}");
        }
        // Telescoping: the closed 15m windows sum to the counter difference
        // between the first reading and the last closed boundary.
        let quarters: f64 = want.iter().filter(|(k, _)| k.1 == "15m").map(|(_, w)| w.amount).sum();
        let days: f64 = want.iter().filter(|(k, _)| k.1 == "1d").map(|(_, w)| w.amount).sum();
        if want.iter().any(|(k, _)| k.1 == "1d") {
            let day_quarters: f64 = want.iter().filter(|(k, _)| k.1 == "15m" && k.2 < MIDNIGHT).map(|(_, w)| w.amount).sum();
            prop_assert!((days - day_quarters).abs() < 1e-6, "{days} vs {day_quarters}");
        }
        prop_assert!(quarters <= readings.last().map_or(0.0, |r| r.1) - readings[0].1 + 1e-9);
    }

    /// A polled (ordered) meter has no reorder buffer: for an in-order
    /// stream it writes exactly the windows and gauge statistics a meter
    /// with the same lateness settings writes, and rolls its final windows
    /// up at once instead of after the lateness (so its site windows are a
    /// superset, equal where both have them).
    #[test]
    fn an_ordered_meter_writes_what_a_buffered_one_writes(readings in stream()) {
        let run = |ordered: bool| {
            let mut agg = Aggregator::new(settings(1200, 16), vec![polled(meter(1, true, EnergyRole::Consumed, 2.0), ordered)], shanghai());
            let mut out = AggOutput::default();
            let rs: Vec<_> = readings.iter().enumerate().map(|(i, &(t, c))| (0, t, c, (i % 7) as f64)).collect();
            feed(&mut agg, &rs, &mut out);
            out
        };
        let (buffered, ordered) = (run(false), run(true));
        prop_assert_eq!(last_written(&ordered.consumption), last_written(&buffered.consumption));
        let gauges = |o: &AggOutput| o.gauges.iter().map(|g| ((g.size.as_tag(), g.start), (g.samples, o.gauge_stats[g.stats_start as usize..g.stats_end as usize].iter().map(|s| (s.point, s.mean.to_bits(), s.min.to_bits(), s.max.to_bits(), s.samples)).collect::<Vec<_>>()))).collect::<BTreeMap<_, _>>();
        prop_assert_eq!(gauges(&ordered), gauges(&buffered));
        let (so, sb) = (last_sites(&ordered.sites), last_sites(&buffered.sites));
        for (k, v) in &sb {
            prop_assert_eq!(so.get(k), Some(v));
        }
    }

    /// A checkpoint taken anywhere, restored into a fresh aggregator, gives
    /// the same final windows and site totals as an uninterrupted run.
    #[test]
    fn checkpoint_restore_is_seamless(readings in stream(), cut in 0_usize..200, lateness in prop_oneof![Just(0_i64), Just(1200_i64)], ordered in any::<bool>()) {
        let specs = || vec![polled(meter(1, true, EnergyRole::Consumed, 2.0), ordered), meter(2, true, EnergyRole::Consumed, 2.0)];
        let both = |r: &[(i64, f64)]| r.iter().flat_map(|&(t, c)| [(0, t, c, 1.0), (1, t, c / 2.0, 2.0)]).collect::<Vec<_>>();
        let mut whole = Aggregator::new(settings(lateness, 16), specs(), shanghai());
        let mut out_whole = AggOutput::default();
        feed(&mut whole, &both(&readings), &mut out_whole);
        let cut = cut % readings.len();
        let mut first = Aggregator::new(settings(lateness, 16), specs(), shanghai());
        let mut out = AggOutput::default();
        feed(&mut first, &both(&readings[..cut]), &mut out);
        let bytes = first.checkpoint();
        let mut second = Aggregator::new(settings(lateness, 16), specs(), shanghai());
        let report = second.restore(&bytes).expect("restore");
        prop_assert_eq!(report.restored, 2);
        feed(&mut second, &both(&readings[cut..]), &mut out);
        prop_assert_eq!(last_written(&out.consumption), last_written(&out_whole.consumption));
        prop_assert_eq!(last_sites(&out.sites), last_sites(&out_whole.sites));
    }
}

#[test]
fn damaged_checkpoint_is_refused() {
    let mut agg = Aggregator::new(
        settings(0, 0),
        vec![meter(1, true, EnergyRole::Consumed, 1.0)],
        shanghai(),
    );
    let mut out = AggOutput::default();
    feed(&mut agg, &[(0, MIDNIGHT, 1.0, 1.0)], &mut out);
    let mut bytes = agg.checkpoint();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut fresh = Aggregator::new(
        settings(0, 0),
        vec![meter(1, true, EnergyRole::Consumed, 1.0)],
        shanghai(),
    );
    assert!(fresh.restore(&bytes).is_err());
    assert!(fresh.restore(b"junk").is_err());
    assert!(fresh.restore(&[]).is_err());
}

/// A `1mo` window in Asia/Shanghai runs from local midnight on the 1st, and
/// its amount is exactly the sum of its days' amounts: a meter read every
/// hour from 2026-03-30 00:00 to 2026-04-02 01:00 local time, using 5 kWh an
/// hour before April and 7 kWh an hour from April on (integers, so every
/// figure is exact). Worked out by hand:
/// * days: 30 and 31 March 24 × 5 = 120 kWh each, 1 April 24 × 7 = 168 kWh;
/// * March (from 2026-03-01T00:00+08:00 = 2026-02-28T16:00Z; the meter starts
///   on the 30th, so the window is partial): 120 + 120 = 240 kWh;
/// * April is still open at 2026-04-02 01:00: not written.
#[test]
fn month_window_is_the_sum_of_its_days_across_a_month_boundary() {
    let settings = AggregatorSettings {
        windows: vec![WindowSize::Day, WindowSize::Month],
        allowed_lateness_secs: 0,
        max_reorder_readings: 0,
        max_gap_secs: 3600,
    };
    let meters = vec![meter(1, true, EnergyRole::Consumed, 0.1229)];
    let mut agg = Aggregator::new(settings, meters, shanghai());
    let mut out = AggOutput::default();
    // 2026-03-30T00:00:00+08:00 = 2026-03-29T16:00:00Z.
    let mar30 = 1_774_800_000;
    let apr1 = mar30 + 2 * 86_400;
    let mar1 = 1_772_294_400; // 2026-03-01T00:00:00+08:00
    let mut readings = Vec::new();
    let mut counter = 1000.0;
    for h in 0..=73_i64 {
        let t = mar30 + h * 3600;
        readings.push((0, t, counter, 0.0));
        counter += if t < apr1 { 5.0 } else { 7.0 };
    }
    feed(&mut agg, &readings, &mut out);
    let c = last_written(&out.consumption);
    let day = |start: i64| c[&(0, "1d", start)].amount;
    assert_eq!(day(mar30), 120.0);
    assert_eq!(day(mar30 + 86_400), 120.0);
    assert_eq!(day(apr1), 168.0);
    let march = c[&(0, "1mo", mar1)];
    assert_eq!(march.amount, 240.0);
    assert_eq!(march.amount, day(mar30) + day(mar30 + 86_400));
    // Partial: covered from the first reading (the 30th) only.
    assert_eq!(march.coverage, (2.0 * 86_400.0) / (31.0 * 86_400.0));
    assert!(!c.contains_key(&(0, "1mo", apr1)), "April is still open");
    // The site's month is the meter's (level 1, consumed).
    let s = last_sites(&out.sites);
    assert_eq!(s[&("electricity".to_owned(), "1mo", mar1)].amount, 240.0);
}
