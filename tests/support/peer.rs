//! One lifecycle for every real peer the tests start (`influxd`,
//! `victoria-metrics`, `mosquitto`, the pymodbus server), so they all start,
//! get ready, stop and come back the same way:
//! - a process with its own temporary directory and free loopback ports,
//!   its output appended to `<dir>/<name>.log`;
//! - started and probed until it serves; when it does not (a port taken in
//!   between, a slow start), tried again with fresh ports, and at last a
//!   panic with its output;
//! - stopped with SIGTERM (so it can save its state), SIGKILL after a grace
//!   period, and started again on the same ports and directory to play an
//!   outage; killed when dropped, so a failing test leaves nothing behind.
//!
//! Each kind ([`PeerKind`]) says only what to write into its directory,
//! which command to run and how to tell that it serves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fresh directories and ports [`Peer::start`] tries.
const START_ATTEMPTS: usize = 3;
/// Processes [`Peer::start_again`] tries on the same ports (the old
/// process's sockets may hold a port for a moment).
const RESTART_ATTEMPTS: usize = 5;

/// What one kind of peer needs.
pub trait PeerKind: Send + Sync {
    /// Name in messages and of the log file.
    fn name(&self) -> &'static str;

    /// How many loopback ports it listens on.
    fn ports(&self) -> usize {
        1
    }

    /// Writes what it needs (configuration, certificates) into `dir`; once
    /// per directory, before the first start.
    fn prepare(&self, _dir: &Path, _ports: &[u16]) {}

    /// The command that runs it in `dir` on `ports` (stdin, stdout and
    /// stderr are set by [`Peer`]).
    fn command(&self, dir: &Path, ports: &[u16]) -> Command;

    /// True once it serves.
    fn ready(&self, ports: &[u16]) -> bool;

    /// How long one start may take to become ready.
    fn ready_within(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// How long [`Peer::stop`] waits after SIGTERM before SIGKILL.
    fn stop_grace(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A running (or stopped) peer process.
pub struct Peer {
    kind: Box<dyn PeerKind>,
    child: Child,
    /// False between [`Peer::stop`] and [`Peer::start_again`].
    running: bool,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl Peer {
    /// Starts a peer of `kind` and waits until it serves; panics with its
    /// output when it never does.
    pub fn start(kind: impl PeerKind + 'static) -> Peer {
        let mut last = String::new();
        for _attempt in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temporary directory");
            let ports: Vec<u16> = (0..kind.ports()).map(|_| super::free_port()).collect();
            kind.prepare(dir.path(), &ports);
            let mut child = spawn(&kind, dir.path(), &ports);
            match wait_ready(&kind, &mut child, &ports) {
                Ok(()) => {
                    return Peer {
                        kind: Box::new(kind),
                        child,
                        running: true,
                        ports,
                        dir,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let output = std::fs::read_to_string(log_path(&kind, dir.path()));
                    last = format!(
                        "{why}\n--- {} output ---\n{}",
                        kind.name(),
                        output.unwrap_or_default()
                    );
                }
            }
        }
        panic!(
            "{} did not become ready after {START_ATTEMPTS} attempts: {last}",
            kind.name()
        );
    }

    /// Stops the peer (SIGTERM, SIGKILL after its grace period) and waits
    /// for it to exit. Ports, directory and log stay, for
    /// [`Peer::start_again`]; clients meanwhile get "connection refused".
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        terminate(&mut self.child, self.kind.stop_grace());
    }

    /// Starts the peer again after [`Peer::stop`], on the same ports and
    /// directory (what it keeps on disk survives), and waits until it
    /// serves; panics with its output when it does not come back.
    pub fn start_again(&mut self) {
        assert!(!self.running, "{} is already running", self.kind.name());
        let mut why = String::new();
        for _attempt in 0..RESTART_ATTEMPTS {
            self.child = spawn(self.kind.as_ref(), self.dir.path(), &self.ports);
            self.running = true;
            match wait_ready(self.kind.as_ref(), &mut self.child, &self.ports) {
                Ok(()) => return,
                Err(e) => {
                    why = e;
                    self.kill();
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        panic!(
            "{} did not come back on ports {:?}: {why}\n--- output ---\n{}",
            self.kind.name(),
            self.ports,
            self.log()
        );
    }

    /// Whether it runs (not between [`Peer::stop`] and [`Peer::start_again`]).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Its `i`-th port, in the order [`PeerKind::command`] got them.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it printed so far, over every start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(self.kind.as_ref(), self.dir.path())).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.running = false;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_path(kind: &dyn PeerKind, dir: &Path) -> PathBuf {
    dir.join(format!("{}.log", kind.name()))
}

/// Runs `kind`'s command with its output appended to its log file.
fn spawn(kind: &dyn PeerKind, dir: &Path, ports: &[u16]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(kind, dir))
        .expect("peer log file");
    let mut command = kind.command(dir, ports);
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} ({command:?}): {e}", kind.name()))
}

/// Waits until `kind` serves on `ports`; an error when its process ends
/// first or its `ready_within` passes.
fn wait_ready(kind: &dyn PeerKind, child: &mut Child, ports: &[u16]) -> Result<(), String> {
    let limit = kind.ready_within();
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} exited early with {status}", kind.name()));
        }
        if kind.ready(ports) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `child` with SIGTERM (so it can save its state), SIGKILL after
/// `grace`, and reaps it.
pub fn terminate(child: &mut Child, grace: Duration) {
    let termed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + grace;
    while termed && Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Path of `binary`, or a panic that tells how to get it.
pub fn require_binary(binary: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let fallbacks = ["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from);
    for dir in std::env::split_paths(&path).chain(fallbacks) {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required peer `{binary}` not found on PATH; {install_hint} (scripts/test installs every peer)"
    );
}

/// True when something accepts a TCP connection on 127.0.0.1 at every one
/// of `ports`.
pub fn accepts(ports: &[u16]) -> bool {
    ports.iter().all(|&p| {
        let addr = SocketAddr::from(([127, 0, 0, 1], p));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// A blocking `GET path` on 127.0.0.1:port with a short timeout: status and
/// body, or `None` when nothing answers. Good enough for readiness probes of
/// servers that close the connection after an HTTP/1.0 answer.
pub fn raw_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
