//! The simulator's `frozen` and `spike` faults through the whole gateway into
//! a real InfluxDB 1.x: the validator's frozen-gauge, frozen-counter and
//! spike rules put the right bits and `q_detail` reasons on the right points,
//! the raw values are still written, a good meter beside them stays good, and
//! the reason counters in [`Stats`] agree with what InfluxDB holds.
//!
//! The meters follow a rippled load (360 m³/h ± 20 %, 60 s period): the flow
//! gauge changes every 1 s poll, so only a frozen meter repeats it, and the
//! volume counter moves 8 to 12 counts of 0.01 m³ per poll, far above the one
//! count the frozen-counter rule needs and far below the spike limit
//! (1000 m³/h × 1.5). Expectations are derived from the stored rows, never
//! from when a request happened to be served.

use std::time::Duration;

use emgate::config::SimFault;
use emgate::model::{MeterId, Quality};
use emgate::sim::{LoadShape, SPIKE_JUMP, SimOptions};
use emgate::telemetry::Stats;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::{reason_count, timed, wait_for};

const DB: &str = "faults";

/// A water meter like the built-in one, with the validation rules set:
/// U32 ×0.01 volume counter with a physical maximum, U16 ×0.01 flow gauge
/// that is frozen after 3 identical polls and gives the counter its rate.
const PROFILE: &str = r#"
description = "water meter with validation rules (e2e_faults)"

[[points]]
name = "volume_m3"
register = "input"
address = 0
type = "u32"
scale = 0.01
kind = "counter"
unit = "m3"
min = 0
max_rate_per_hour = 1000

[[points]]
name = "flow_m3h"
register = "input"
address = 2
type = "u16"
scale = 0.01
unit = "m3h"
min = 0
max = 600
frozen_after = 3
rate_of = "volume_m3"
"#;

fn site() -> Site {
    let meter = |id: &str, unit: usize| modbus(id, "water", "water_rules", "a", unit).level(2);
    Site::new("F1", "fault test")
        .meter(meter("good", 1).level(1))
        .meter(meter("frozen", 2))
        .meter(meter("spike", 3))
}

/// 360 m³/h ± 20 % with a 60 s ripple, from 1000 m³ at the simulator's epoch.
fn rippled(phase: f64) -> LoadShape {
    LoadShape {
        ripple_amplitude: 0.2,
        ripple_period_s: 60.0,
        ripple_phase: phase,
        ..LoadShape::constant(360.0, 1000.0)
    }
}

/// One stored reading: q, q_detail ("" when absent), volume, flow.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    time: i64,
    q: u64,
    detail: String,
    volume: f64,
    flow: f64,
}

async fn rows_of(influx: &Influxd, meter: &str) -> Vec<Row> {
    let rows = influx
        .rows(
            DB,
            &format!(
                "SELECT q, q_detail, volume_m3, flow_m3h FROM reading WHERE meter = '{meter}'"
            ),
        )
        .await;
    rows.iter()
        .map(|r| Row {
            time: r[0].as_i64().expect("time"),
            q: r[1].as_u64().expect("q"),
            detail: r[2].as_str().unwrap_or("").to_owned(),
            volume: r[3]
                .as_f64()
                .unwrap_or_else(|| panic!("{meter}: no volume in {r:?}")),
            flow: r[4]
                .as_f64()
                .unwrap_or_else(|| panic!("{meter}: no flow in {r:?}")),
        })
        .collect()
}

/// A value in counts of 0.01, exact.
fn counts(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_and_spiked_meters_carry_the_right_bits_into_influxdb() {
    // The spike must be cleared within one poll of its first request: no
    // CPU-heavy test runs meanwhile.
    let _timed = timed().await;
    let influx = Influxd::with_database(DB).await;
    let toml = GatewayToml::new("faults")
        .readings_only()
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 10\nflush_interval_ms = 200",
        )
        .endpoint("a", "timeout_ms = 500")
        .profile("water_rules", PROFILE)
        .site("site.toml", site());
    // The meters' ids in file order: good, frozen, spike.
    let (good, frozen, spike) = (MeterId(0), MeterId(1), MeterId(2));
    let options = SimOptions {
        loads: vec![
            (good, rippled(0.0)),
            (frozen, rippled(2.0)),
            (spike, rippled(4.0)),
        ],
        frozen_time: None,
        ..SimOptions::default()
    };
    let mut gw = TestGateway::prepare(&toml, options).await;
    assert_eq!(
        (gw.meter("good"), gw.meter("frozen"), gw.meter("spike")),
        (good, frozen, spike)
    );
    gw.run();

    // Three good rounds, then the frozen meter stops and the spike meter
    // serves one spiked poll.
    gw.wait_for("3 rounds of readings", Duration::from_secs(20), |s| {
        Stats::get(&s.readings) >= 9
    })
    .await;
    gw.sim.set_fault(frozen, Some(SimFault::Frozen));
    gw.sim.set_fault(spike, Some(SimFault::Spike));
    let sim = &gw.sim;
    wait_for(
        "one poll of the spiked meter",
        Duration::from_secs(20),
        async || sim.requests_under_fault(spike) >= 1,
    )
    .await;
    gw.sim.set_fault(spike, None);
    let after_spike = gw.readings();
    // Enough rounds for the frozen rules to fire and the spike meter to recover.
    gw.wait_for("8 more rounds", Duration::from_secs(20), |s| {
        Stats::get(&s.readings) >= after_spike + 24
    })
    .await;
    let summary = gw.stop().await;
    gw.sim.stop();
    let total = gw.readings();
    let stats = gw.stats();
    assert_eq!(summary.lines_written, total);

    let good_rows = rows_of(&influx, "good").await;
    let frozen_rows = rows_of(&influx, "frozen").await;
    let spike_rows = rows_of(&influx, "spike").await;
    assert_eq!(
        (good_rows.len() + frozen_rows.len() + spike_rows.len()) as u64,
        total,
        "every reading written, flagged or not"
    );

    // The good meter: never flagged.
    for r in &good_rows {
        assert_eq!(
            (r.q, r.detail.as_str()),
            (0, ""),
            "good meter: {good_rows:#?}"
        );
    }

    // The frozen meter. Its frozen registers are those of its last reading;
    // `k` is the first reading that saw them. That reading is genuinely new
    // (good); the next one repeats it: the counter stood still while the flow
    // says 288..432 m³/h (≥ 8 counts per second), so volume is frozen at
    // once; the flow is frozen from its 3rd identical value on.
    let last = frozen_rows.last().expect("frozen rows").clone();
    let k = frozen_rows
        .iter()
        .position(|r| {
            r.volume.to_bits() == last.volume.to_bits() && r.flow.to_bits() == last.flow.to_bits()
        })
        .expect("last row is among the rows");
    assert!(k >= 2, "good readings before the freeze: {frozen_rows:#?}");
    assert!(
        frozen_rows.len() >= k + 5,
        "enough readings after the freeze: {frozen_rows:#?}"
    );
    for r in &frozen_rows[..=k] {
        assert_eq!(r.q, 0, "before the freeze: {frozen_rows:#?}");
    }
    assert_ne!(
        frozen_rows[k - 1].volume,
        last.volume,
        "the counter moved before the freeze"
    );
    let frozen_bit = u64::from(Quality::FROZEN.0);
    assert_eq!(
        (frozen_rows[k + 1].q, frozen_rows[k + 1].detail.as_str()),
        (frozen_bit, "volume_m3:frozen"),
        "{frozen_rows:#?}"
    );
    for r in &frozen_rows[k + 2..] {
        assert_eq!(
            (r.q, r.detail.as_str()),
            (frozen_bit, "volume_m3:frozen,flow_m3h:frozen"),
            "{frozen_rows:#?}"
        );
    }
    for r in &frozen_rows[k..] {
        // The raw values are still written, bit-identical.
        assert_eq!(
            (r.volume.to_bits(), r.flow.to_bits()),
            (last.volume.to_bits(), last.flow.to_bits())
        );
    }

    // The spike meter: exactly one reading flagged, the spiked raw value
    // written, and good readings on both sides of it.
    let flagged: Vec<usize> = (0..spike_rows.len())
        .filter(|&i| spike_rows[i].q != 0)
        .collect();
    assert_eq!(flagged.len(), 1, "one spiked reading: {spike_rows:#?}");
    let j = flagged[0];
    assert!(j >= 1 && spike_rows.len() >= j + 4, "{spike_rows:#?}");
    let s = &spike_rows[j];
    assert_eq!(
        (s.q, s.detail.as_str()),
        (u64::from(Quality::SPIKE.0), "volume_m3:spike")
    );
    // The true volume under the spike lies between its neighbours (the counter
    // is monotonic), exactly 1 000 000.00 m³ below the stored value.
    let jump = counts(SPIKE_JUMP);
    let true_counts = counts(s.volume) - jump;
    assert!(
        counts(spike_rows[j - 1].volume) <= true_counts
            && true_counts <= counts(spike_rows[j + 1].volume),
        "spiked {} − {SPIKE_JUMP} between its neighbours: {spike_rows:#?}",
        s.volume
    );
    // The gauge is not spiked.
    assert!((288.0..=432.0).contains(&s.flow), "flow {}", s.flow);
    for w in spike_rows.windows(2) {
        assert!(w[0].time < w[1].time);
    }

    // The validator's counters agree with what InfluxDB holds, reason by reason.
    for (i, (bit, word)) in Quality::REASONS.iter().enumerate() {
        let suffix = format!(":{word}");
        let stored: u64 = good_rows
            .iter()
            .chain(&frozen_rows)
            .chain(&spike_rows)
            .map(|r| r.detail.split(',').filter(|d| d.ends_with(&suffix)).count() as u64)
            .sum();
        assert_eq!(
            Stats::get(&stats.quality_counts[i]),
            stored,
            "reason {word} (bit {})",
            bit.0
        );
    }
    let count = |bit: Quality| reason_count(stats, bit);
    // One frozen volume, then a frozen volume and flow on every later reading.
    let after_freeze = (frozen_rows.len() - k - 1) as u64;
    assert_eq!(count(Quality::FROZEN), 2 * after_freeze - 1);
    assert_eq!(count(Quality::SPIKE), 1);
}
