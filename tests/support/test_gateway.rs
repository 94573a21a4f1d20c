//! The simulator and the gateway, started the way the end-to-end tests
//! need them. [`TestGateway::start`] writes a [`GatewayToml`], starts the
//! simulator on it and runs the gateway in this process (`app::run`); its
//! handles wait on the gateway's counters and stop it. [`TestGateway::prepare`]
//! stops short of the gateway, for tests that run it several times, with a
//! reload channel, or as the real `emgate run` process
//! ([`TestGateway::spawn`]). [`InProcess`] is the gateway alone, for tests
//! whose meters are not simulated (MQTT); [`Sim`] the simulator alone.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use emgate::app::{AppError, Control};
use emgate::config::Config;
use emgate::model::MeterId;
use emgate::sim::{SimError, SimOptions, Simulator};
use emgate::sinks::uploader::SinkSummary;
use emgate::telemetry::Stats;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{ConfigFiles, GatewayToml};
use super::gateway::Gateway;
use super::influxd::Table;
use super::{counters, lazy};

/// Configurations [`TestGateway::prepare`] tries when the simulator cannot
/// bind a port (taken by another process after it was picked).
const SIM_ATTEMPTS: usize = 5;

/// How long a stop may take unless a test says otherwise.
const STOP_WITHIN: Duration = Duration::from_mins(1);

/// The meter simulator of a test, serving the meters of the configuration
/// it was started on. Stopped when dropped; its closed-form physics
/// (`value_at`, `consumption`) stays usable after [`Sim::stop`].
pub struct Sim {
    sim: Simulator,
    stop: CancellationToken,
}

impl Sim {
    /// Starts the simulator on `config`.
    pub async fn start(config: &Config) -> Sim {
        Sim::start_with(config, SimOptions::default()).await
    }

    /// [`Sim::start`] with load overrides and a frozen clock.
    pub async fn start_with(config: &Config, options: SimOptions) -> Sim {
        Sim::try_start(config, options)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_start(config: &Config, options: SimOptions) -> Result<Sim, SimError> {
        let stop = CancellationToken::new();
        let sim = Simulator::start_with(config, stop.clone(), options).await?;
        Ok(Sim { sim, stop })
    }

    /// Stops serving (listeners and publishers end).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Asserts that every point value of `row`, a `reading` point of
    /// `table`, equals the simulator's at the row's slot for its meter in
    /// `config`; returns how many values it compared.
    pub fn assert_reading(&self, config: &Config, table: &Table, row: &[Value]) -> u64 {
        let meter = row[table.col("meter")].as_str().expect("meter tag");
        let id = super::meter_id(config, meter);
        let slot = row[table.col("time")].as_i64().expect("epoch seconds");
        let mut compared = 0;
        for (p, point) in config.profile_of(id).points.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let want = self.sim.value_at(id, p, slot as f64);
            let got = &row[table.col(&point.name)];
            assert_eq!(
                got.as_f64(),
                Some(want),
                "{meter} {} at {slot}: influx {got}, simulator {want}",
                point.name
            );
            compared += 1;
        }
        compared
    }
}

impl Deref for Sim {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.sim
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The gateway running in this process (`emgate::app::run_with`), with its
/// counters; told to shut down when dropped.
pub struct InProcess {
    /// The gateway's counters.
    pub stats: Arc<Stats>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<SinkSummary, AppError>>>,
    /// The files it runs on, when it owns them.
    files: Option<ConfigFiles>,
}

impl InProcess {
    /// Runs the gateway on `config`, without reloads or API.
    pub fn start(config: Arc<Config>) -> InProcess {
        let control = Control {
            reload: None,
            api: None,
        };
        InProcess::start_with(config, control)
    }

    /// Runs the gateway on `config`, steered by `control`.
    pub fn start_with(config: Arc<Config>, control: Control) -> InProcess {
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(emgate::app::run_with(
            config,
            Arc::clone(&stats),
            shutdown.clone(),
            control,
        ));
        InProcess {
            stats,
            shutdown,
            task: Some(task),
            files: None,
        }
    }

    /// Runs the gateway on `files`, which it keeps until dropped.
    pub fn start_files(files: ConfigFiles) -> InProcess {
        let mut run = InProcess::start(Arc::new(files.load()));
        run.files = Some(files);
        run
    }

    /// Waits until `done` holds for the counters; panics after `timeout`
    /// with `what` and the counters, or at once when the gateway ended.
    pub async fn wait_for(
        &self,
        what: impl fmt::Display,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) {
        let stats = &self.stats;
        let task = self.task.as_ref().expect("the gateway runs");
        let what = lazy(|| format!("{what}; {}", counters(stats)));
        super::wait_for(&what, timeout, async || {
            assert!(
                !task.is_finished(),
                "the gateway ended while waiting for {what}"
            );
            done(stats)
        })
        .await;
    }

    /// Waits (up to 30 s) until `n` readings in all were polled or received.
    pub async fn wait_readings(&self, n: u64) {
        self.wait_for(format!("{n} readings"), Duration::from_secs(30), |s| {
            Stats::get(&s.readings) >= n
        })
        .await;
    }

    /// Shuts the gateway down; it must end without error within a minute.
    /// Returns its summary and counters.
    pub async fn stop(self) -> (SinkSummary, Arc<Stats>) {
        self.stop_within(STOP_WITHIN).await
    }

    /// [`InProcess::stop`] within `limit`.
    pub async fn stop_within(mut self, limit: Duration) -> (SinkSummary, Arc<Stats>) {
        self.shutdown.cancel();
        let task = self.task.take().expect("the gateway runs");
        let summary = tokio::time::timeout(limit, task)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway did not stop within {limit:?} of the shutdown; {}",
                    counters(&self.stats)
                )
            })
            .expect("gateway task")
            .unwrap_or_else(|e| panic!("the gateway ended with an error: {e}"));
        (summary, Arc::clone(&self.stats))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A test's gateway: its configuration files, the simulator serving its
/// meters, and the gateway itself (in this process, or spawned as a
/// process). Fields drop in order: the gateway, the simulator, the files.
pub struct TestGateway {
    run: Option<InProcess>,
    /// The simulator, started on the configuration as first written.
    pub sim: Sim,
    /// The configuration the latest in-process run loaded (at first, the
    /// one the simulator was started on).
    pub config: Arc<Config>,
    /// The configuration files.
    pub files: ConfigFiles,
    /// The counters of the latest in-process run.
    stats: Arc<Stats>,
}

impl TestGateway {
    /// Writes `toml`, starts the simulator on it and the gateway in this
    /// process.
    pub async fn start(toml: &GatewayToml) -> TestGateway {
        let mut gw = TestGateway::prepare(toml, SimOptions::default()).await;
        gw.run();
        gw
    }

    /// Writes `toml` and starts the simulator on it with `options`; the
    /// gateway is started by [`TestGateway::run`] or [`TestGateway::spawn`].
    /// A simulator port taken meanwhile means fresh files and ports.
    pub async fn prepare(toml: &GatewayToml, options: SimOptions) -> TestGateway {
        let mut last = String::new();
        for _attempt in 0..SIM_ATTEMPTS {
            let files = toml.write();
            let config = files.load();
            match Sim::try_start(&config, options.clone()).await {
                Ok(sim) => {
                    return TestGateway {
                        run: None,
                        sim,
                        config: Arc::new(config),
                        files,
                        stats: Arc::default(),
                    };
                }
                Err(e @ SimError::Bind { .. }) => last = e.to_string(),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the simulator found no free ports in {SIM_ATTEMPTS} attempts: {last}");
    }

    /// Runs the gateway in this process on the files as they are now, with
    /// fresh counters.
    pub fn run(&mut self) {
        let control = Control {
            reload: None,
            api: None,
        };
        self.run_with(control);
    }

    /// [`TestGateway::run`], steered by `control` (reloads, the HTTP API).
    pub fn run_with(&mut self, control: Control) {
        assert!(self.run.is_none(), "the gateway runs already");
        self.config = Arc::new(self.files.load());
        let run = InProcess::start_with(Arc::clone(&self.config), control);
        self.stats = Arc::clone(&run.stats);
        self.run = Some(run);
    }

    /// Starts `emgate run` on the files (see [`ConfigFiles::spawn`]).
    pub fn spawn(&self, name: &str) -> Gateway {
        self.files.spawn(name)
    }

    /// The counters of the latest in-process run.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Readings of the latest in-process run.
    pub fn readings(&self) -> u64 {
        Stats::get(&self.stats.readings)
    }

    /// See [`InProcess::wait_for`].
    pub async fn wait_for(
        &self,
        what: impl fmt::Display,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) {
        self.running().wait_for(what, timeout, done).await;
    }

    /// See [`InProcess::wait_readings`].
    pub async fn wait_readings(&self, n: u64) {
        self.running().wait_readings(n).await;
    }

    /// Stops the in-process gateway (see [`InProcess::stop`]); the
    /// simulator goes on.
    pub async fn stop(&mut self) -> SinkSummary {
        self.stop_within(STOP_WITHIN).await
    }

    /// [`TestGateway::stop`] within `limit`.
    pub async fn stop_within(&mut self, limit: Duration) -> SinkSummary {
        let run = self.run.take().expect("the gateway runs");
        run.stop_within(limit).await.0
    }

    /// The id of meter `name`.
    pub fn meter(&self, name: &str) -> MeterId {
        super::meter_id(&self.config, name)
    }

    fn running(&self) -> &InProcess {
        self.run.as_ref().expect("the gateway runs")
    }
}
