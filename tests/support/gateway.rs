//! An `emgate run` child process for tests that kill, restart, reload and
//! stop the real binary, with its JSON log as the evidence.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{lazy, wait_for};

/// An `emgate run` process; SIGKILLed if still running when dropped (a
/// failing test leaves no process behind).
pub struct Gateway {
    child: Option<Child>,
    log_path: PathBuf,
}

impl Gateway {
    /// Starts `emgate run --config main` with JSON logs to `log_path`.
    pub fn run(main: &Path, log_path: PathBuf) -> Gateway {
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_emgate"))
            .args([
                "--log-format",
                "json",
                "run",
                "--stats-interval",
                "0",
                "--config",
            ])
            .arg(main)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start emgate run");
        Gateway {
            child: Some(child),
            log_path,
        }
    }

    /// Its process id, for `kill`.
    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// What it logged so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `kill -KILL` and reap.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        self.child
            .take()
            .expect("running")
            .wait()
            .expect("reap emgate");
    }

    /// Sends `signal` (e.g. `-HUP`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap_or_else(|e| panic!("kill {signal}: {e}"));
        assert!(
            status.success(),
            "kill {signal} failed; log:\n{}",
            self.log()
        );
    }

    /// Waits (up to 30 s) until the log holds `count` lines containing `needle`.
    pub async fn wait_log(&self, needle: &str, count: usize) {
        let what = lazy(|| format!("{needle:?} (×{count}) in the log:\n{}", self.log()));
        wait_for(&what, Duration::from_secs(30), async || {
            self.log().matches(needle).count() >= count
        })
        .await;
    }

    /// `kill -TERM`, then waits (bounded) for exit code 0. Waits first until
    /// the gateway has started (its "starting" log line), so the signal tests
    /// the orderly shutdown, not process start-up.
    pub async fn terminate(&mut self) {
        self.wait_log("starting", 1).await;
        self.signal("-TERM");
        let child = self.child.as_mut().expect("running");
        let what = "emgate run to exit within 30 s of SIGTERM";
        // On a timeout the panic drops `self`, which kills the process.
        wait_for(what, Duration::from_secs(30), async || {
            child.try_wait().expect("wait emgate").is_some()
        })
        .await;
        let status = self
            .child
            .take()
            .expect("running")
            .wait()
            .expect("reap emgate");
        assert_eq!(
            status.code(),
            Some(0),
            "emgate run after SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// The `fields` of the first JSON log line with this message.
    pub fn log_fields(&self, message: &str) -> Value {
        let log = self.log();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["fields"]["message"] == message)
            .map_or_else(
                || panic!("no {message:?} log line in:\n{log}"),
                |v| v["fields"].clone(),
            )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
