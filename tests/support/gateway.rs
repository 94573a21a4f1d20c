//! An `emgate run` child process for tests that kill, restart and stop the
//! real binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

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

    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `kill -KILL` and reap.
    pub fn kill9(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid()])
            .status()
            .expect("kill -KILL");
        assert!(status.success(), "kill -KILL failed; log:\n{}", self.log());
        self.child
            .take()
            .expect("running")
            .wait()
            .expect("reap emgate");
    }

    /// `kill -TERM`, then waits (bounded) for exit code 0. Waits first until
    /// the gateway has started (its "starting" log line), so the signal tests
    /// the orderly shutdown, not process start-up.
    pub async fn terminate(&mut self) {
        let ready_by = Instant::now() + Duration::from_secs(30);
        while !self.log().contains("starting") {
            assert!(
                Instant::now() < ready_by,
                "emgate run never started; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = self.child.take().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait emgate") {
                assert_eq!(
                    status.code(),
                    Some(0),
                    "emgate run after SIGTERM; log:\n{}",
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "emgate run did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
