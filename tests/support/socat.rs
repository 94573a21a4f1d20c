//! A virtual null-modem cable: `socat` joining two ptys, so a serial peer
//! (pymodbus, or the test's own raw bus) sits on one end and the gateway's
//! `transport = "serial"` endpoint opens the other, without hardware.
//!
//! `socat -d -d pty,raw,echo=0,link=DIR/ttyA pty,raw,echo=0,link=DIR/ttyB`
//! on the shared [`Peer`] lifecycle; ready once both links exist. A pty has
//! no baud timing (bytes arrive at once), so these tests check framing and
//! checks, never line timing. A missing `socat` fails the test with how to
//! install it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use super::peer::{Peer, PeerKind, require_binary};

/// How to run socat.
struct Kind {
    binary: PathBuf,
    /// The directory of the current start, where the links appear.
    dir: Mutex<Option<PathBuf>>,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "socat"
    }

    fn ports(&self) -> usize {
        0
    }

    fn command(&self, dir: &Path, _ports: &[u16]) -> Command {
        *self.dir.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.to_owned());
        let end = |name: &str| format!("pty,raw,echo=0,link={}", dir.join(name).display());
        let mut command = Command::new(&self.binary);
        command.args(["-d", "-d", &end("ttyA"), &end("ttyB")]);
        command
    }

    fn ready(&self, _ports: &[u16]) -> bool {
        let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        dir.as_ref()
            .is_some_and(|d| d.join("ttyA").exists() && d.join("ttyB").exists())
    }
}

/// Two ptys joined by `socat`: what is written to one end is read from the
/// other. Killed (and the links gone) when dropped.
pub struct PtyPair {
    peer: Peer,
}

impl PtyPair {
    /// Starts socat and waits until both ends exist.
    pub fn start() -> PtyPair {
        let binary = require_binary("socat", "install it with `apt-get install socat`");
        PtyPair {
            peer: Peer::start(Kind {
                binary,
                dir: Mutex::new(None),
            }),
        }
    }

    /// One end (`DIR/ttyA`): the device side in the tests.
    pub fn a(&self) -> PathBuf {
        self.peer.dir().join("ttyA")
    }

    /// The other end (`DIR/ttyB`): the gateway's `device`.
    pub fn b(&self) -> PathBuf {
        self.peer.dir().join("ttyB")
    }
}
