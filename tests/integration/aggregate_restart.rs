//! SIGKILL in the middle of a window: the real `emgate run` polls two
//! simulated water meters every second with 1-minute windows, is killed
//! 20 s into a minute, restarted 3 s later and stopped after the minute has
//! closed. The killed minute's `consumption` must equal the counter
//! difference across it exactly (the open window came back from the
//! checkpoint: a fresh start would count it only from the restart), and the
//! site's minute must be the sum of both meters, each counted once.

use std::time::Duration;

use emgate::model::MeterId;
use emgate::sim::SimOptions;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::TestGateway;
use crate::support::timed;

const DB: &str = "restart";

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Sleeps until the wall clock reaches Unix second `t`.
async fn sleep_until(t: i64) {
    let ms = (t * 1000 - jiff::Timestamp::now().as_millisecond()).max(0);
    tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_window_neither_loses_nor_double_counts() {
    // The kill and the restart happen at set seconds of a minute, and the
    // minute's amount is exact only with readings at its bounds: no
    // CPU-heavy test runs meanwhile.
    let _timed = timed().await;
    let influx = Influxd::with_database(DB).await;
    let toml = GatewayToml::new("restart")
        .influx_v1(
            &influx.url(),
            DB,
            "batch_size = 50\nflush_interval_ms = 100",
        )
        .section(
            "aggregation",
            "windows = [\"1m\"]\nallowed_lateness_secs = 0",
        )
        .endpoint("a", "timeout_ms = 500")
        .site(
            "site.toml",
            Site::new("R1", "restart test")
                .meter(modbus("w1", "water", "water_meter", "a", 1))
                .meter(modbus("w2", "water", "water_meter", "a", 2)),
        );
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    let (config, sim) = (&gw.config, &gw.sim);

    // The minute to kill in: the next one that starts at least 5 s from now.
    let minute = (now_s() + 5 + 59) / 60 * 60;
    let mut process = gw.spawn("first");
    sleep_until(minute + 20).await;
    process.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut process = gw.spawn("second");
    sleep_until(minute + 63).await;
    process.terminate().await;
    sim.stop();

    let counter = config.meters[0].consumption.expect("water counter");
    #[allow(clippy::cast_precision_loss)]
    let truth = |m: u32| {
        sim.value_at(MeterId(m), counter, (minute + 60) as f64)
            - sim.value_at(MeterId(m), counter, minute as f64)
    };
    let mut both = 0.0;
    for (m, id) in [(0, "w1"), (1, "w2")] {
        let rows = influx
            .rows(
                DB,
                &format!(
                    "SELECT amount, coverage, estimated FROM consumption WHERE meter = '{id}' AND time = {minute}s"
                ),
            )
            .await;
        assert_eq!(
            rows.len(),
            1,
            "{id}: the killed minute was written once: {rows:?}"
        );
        let want = truth(m);
        assert!(want > 0.0);
        let got = rows[0][1].as_f64().unwrap_or(f64::NAN);
        // Exact up to the rounding of the continuous-counter arithmetic.
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{id}: amount {got} vs counter difference {want}"
        );
        // The restart gap (about 4 s) is shorter than max_gap: still covered.
        assert_eq!(rows[0][3], Value::Bool(false));
        both += want;
    }
    let site = influx
        .rows(
            DB,
            &format!(
                "SELECT amount, meters FROM site_consumption WHERE site = 'R1' AND energy = 'water' AND time = {minute}s"
            ),
        )
        .await;
    assert_eq!(site.len(), 1, "{site:?}");
    let amount = site[0][1].as_f64().unwrap_or(f64::NAN);
    assert!(
        (amount - both).abs() <= 1e-9 * both,
        "site {amount} vs {both}"
    );
    assert_eq!(site[0][2].as_u64(), Some(2));
    // The first run's minute before the kill window closed normally too.
    let before = influx
        .count(
            DB,
            &format!(
                "SELECT count(amount) FROM consumption WHERE time = {}s",
                minute - 60
            ),
        )
        .await;
    assert_eq!(before, 2);
}
