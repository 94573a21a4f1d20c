//! The one harness the integration tests (`tests/integration/`) share:
//! - [`peer`]: one lifecycle (start, ready, stop, start again) for the real
//!   peers, each on free loopback ports with its own temporary directory:
//!   [`influxd`], [`victoria`], [`mosquitto`], [`pymodbus`] (and its
//!   software DTU), [`socat`] pty pairs; plus headless [`chromium`] for the
//!   status page; [`raw_bus`], our own scripted misbehaving Modbus device;
//!   [`raw_dlt645`], our own scripted misbehaving DL/T 645 meter;
//! - [`config`]: a small builder for gateway configurations, written into a
//!   temporary directory as an operator lays them out;
//! - [`test_gateway`]: the simulator and the gateway in this process, the
//!   way the end-to-end tests start them, with handles to wait on readings;
//!   [`gateway`]: the real `emgate run` process; [`spool`]: what a closed
//!   spool still holds;
//! - [`wait_for`], the one polling wait; [`timed`] and [`heavy`] keep the
//!   tests that need the gateway to keep time apart from the CPU-heavy ones.
//!
//! A missing peer binary fails the test with a message saying how to
//! install it; nothing is skipped.

pub mod chromium;
pub mod config;
pub mod gateway;
pub mod iapws;
pub mod influxd;
pub mod mosquitto;
pub mod peer;
pub mod pymodbus;
pub mod raw_bus;
pub mod raw_dlt645;
pub mod socat;
pub mod spool;
pub mod test_gateway;
pub mod victoria;

use std::collections::BTreeSet;
use std::fmt;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use emgate::config::Config;
use emgate::model::{MeterId, Quality};
use emgate::telemetry::Stats;

/// How often [`wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(50);

/// A free TCP port on 127.0.0.1, never the same one twice in this process:
/// all tests share one process, and a port handed to one test (to bind
/// later, or to give to a peer) must not be handed to another meanwhile.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
    panic!("no loopback port that this process has not handed out already");
}

/// Waits until `done` holds, checking it every 50 ms; panics after
/// `timeout` saying what it waited for. `what` is formatted only then, so it
/// can show the state at that moment (see [`lazy`]). Conditions that need
/// no `.await` are written `async || ...` too.
pub async fn wait_for(
    what: impl fmt::Display,
    timeout: Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A message made only when it is shown, e.g. the counters when a
/// [`wait_for`] gives up: `lazy(|| format!("... {}", counters(&stats)))`.
pub fn lazy<F: Fn() -> String>(message: F) -> Lazy<F> {
    Lazy(message)
}

/// See [`lazy`].
pub struct Lazy<F>(F);

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// What keeps timing-sensitive tests and CPU-heavy tests apart. libtest
/// runs two tests at a time here (one binary, two cores), so any two may
/// meet; these two kinds must not.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held for its whole run by each test whose assertions depend on the
/// gateway keeping time (a shutdown deadline, no missed or late slot, a
/// kill at a set second): such tests run beside each other and beside any
/// other test, but never beside a [`heavy`] one. Each holder says why.
pub async fn timed() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Held for its whole run by each CPU-heavy test (the `spool_full` tests
/// poll 128 endpoints every second), which needs the machine to itself:
/// no [`timed`] test and no other heavy one runs meanwhile.
pub async fn heavy() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// The gateway's main counters in one line, for failure messages.
pub fn counters(s: &Stats) -> String {
    format!(
        "readings={} missed_slots={} spooled={} written={} retries={} spool_records={} spool_bytes={} full_waits={} dropped={} by_site={:?}",
        Stats::get(&s.readings),
        Stats::get(&s.missed_slots),
        Stats::get(&s.lines_spooled),
        Stats::get(&s.lines_written),
        Stats::get(&s.write_retries),
        Stats::get(&s.spool_records),
        Stats::get(&s.spool_bytes),
        Stats::get(&s.spool_full_waits),
        Stats::get(&s.lines_dropped),
        s.dropped_by_site(),
    )
}

/// True when `slots` is one run of consecutive seconds (none missing); false
/// when empty.
pub fn consecutive(slots: &BTreeSet<i64>) -> bool {
    match (slots.first(), slots.last()) {
        (Some(first), Some(last)) => usize::try_from(last - first + 1) == Ok(slots.len()),
        _ => false,
    }
}

/// How many points the validator flagged with `bit` (its reason counter).
pub fn reason_count(stats: &Stats, bit: Quality) -> u64 {
    let i = Quality::REASONS
        .iter()
        .position(|(b, _)| *b == bit)
        .expect("a reason bit");
    Stats::get(&stats.quality_counts[i])
}

/// The id of meter `name` in `config`.
pub fn meter_id(config: &Config, name: &str) -> MeterId {
    let index = config
        .meters
        .iter()
        .position(|m| m.id == name)
        .unwrap_or_else(|| panic!("no meter {name:?} in the configuration"));
    MeterId(u32::try_from(index).expect("fewer than 2^32 meters"))
}
