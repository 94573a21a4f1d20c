//! Starting real peers for integration tests: InfluxDB 1.x (`influxd`),
//! VictoriaMetrics, pymodbus. Each starts on a free loopback port with its
//! own temporary directory and stops when dropped. A missing binary fails the
//! test with a message saying how to install it; nothing is skipped.
#![allow(dead_code)]

pub mod chromium;
pub mod gateway;
pub mod influxd;
pub mod mosquitto;
pub mod pymodbus;
pub mod victoria;

use std::net::TcpListener;
use std::path::PathBuf;

/// Stops `child` with SIGTERM (so it can save its state), SIGKILL after
/// `grace`, and reaps it.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    let termed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    let deadline = std::time::Instant::now() + grace;
    while termed && std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Path of `binary`, or a panic that tells how to get it.
pub fn require_binary(binary: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let candidate = PathBuf::from(dir).join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required peer `{binary}` not found on PATH; {install_hint} (scripts/test installs every peer)"
    );
}
