//! Dial-in DTUs: the one wire the gateway does not dial.
//!
//! A 4G DTU connects out to `[dtu] listen` and announces itself with a
//! registration packet; from then on the connection is a transparent
//! RS-485 bus on which the gateway is the master. The [`DtuHub`] accepts
//! any number of DTUs on one port, reads each new connection's first bytes
//! until they start with a configured registration, and hands the
//! connection to that endpoint's poller through a channel; the poller
//! always takes the newest, so a DTU that redials replaces its old
//! connection. A connection that sends no known registration within
//! `registration_timeout_ms` is closed; an unknown registration is logged
//! once per id, counted, and closed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::dtu::MAX_PACKET;
use crate::config::{Config, DtuSettings, Transport, packet_text};
use crate::model::EndpointId;
use crate::telemetry::Stats;

/// Unknown registrations remembered for "log once"; beyond this they are
/// still counted and closed, but no longer logged (a scanner must not fill
/// memory or the log).
const MAX_REMEMBERED: usize = 1024;

/// A registered DTU connection on its way to its endpoint's poller.
#[derive(Debug)]
pub struct DtuConn {
    /// The connection.
    pub stream: TcpStream,
    /// Bytes that arrived after the registration packet.
    pub received: Vec<u8>,
    /// Where it came from.
    pub peer: SocketAddr,
}

struct Expected {
    /// The endpoint's id, for logs.
    endpoint: String,
    registration: Vec<u8>,
    heartbeat: Option<Vec<u8>>,
    tx: mpsc::Sender<DtuConn>,
}

/// The DTU listener and the channels to the DTU endpoints' pollers.
pub struct DtuHub {
    settings: DtuSettings,
    expected: Vec<Expected>,
    /// Each DTU endpoint's receiving end, until its poller takes it.
    receivers: Vec<Mutex<Option<mpsc::Receiver<DtuConn>>>>,
    /// Whether each endpoint's DTU is connected now (for status and metrics).
    connected: Vec<AtomicBool>,
    unknown_seen: Mutex<HashSet<Vec<u8>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for DtuHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtuHub")
            .field("listen", &self.settings.listen)
            .field("dtus", &self.expected.len())
            .finish_non_exhaustive()
    }
}

impl DtuHub {
    /// The hub of `config`'s DTU endpoints (none: the listener never binds).
    #[must_use]
    pub fn new(config: &Config, stats: Arc<Stats>) -> DtuHub {
        let mut expected = Vec::new();
        let mut receivers = Vec::new();
        for ep in &config.endpoints {
            if let Transport::Dtu(d) = &ep.transport {
                let (tx, rx) = mpsc::channel(4);
                expected.push(Expected {
                    endpoint: ep.id.clone(),
                    registration: d.registration.clone(),
                    heartbeat: d.heartbeat.clone(),
                    tx,
                });
                receivers.push(Mutex::new(Some(rx)));
            } else {
                receivers.push(Mutex::new(None));
            }
        }
        DtuHub {
            settings: config.dtu.clone(),
            connected: config
                .endpoints
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            expected,
            receivers,
            unknown_seen: Mutex::new(HashSet::new()),
            stats,
        }
    }

    /// The channel `endpoint`'s poller receives its DTU's connections on
    /// (once; `None` for an endpoint that is not a DTU).
    pub fn take_receiver(&self, endpoint: EndpointId) -> Option<mpsc::Receiver<DtuConn>> {
        self.receivers.get(endpoint.index())?.lock().ok()?.take()
    }

    /// Records whether `endpoint`'s DTU is connected.
    pub fn set_connected(&self, endpoint: EndpointId, up: bool) {
        if let Some(c) = self.connected.get(endpoint.index()) {
            c.store(up, Ordering::Relaxed);
        }
    }

    /// Whether `endpoint`'s DTU is connected now.
    #[must_use]
    pub fn is_connected(&self, endpoint: EndpointId) -> bool {
        self.connected
            .get(endpoint.index())
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Accepts DTUs until `shutdown`. Without DTU endpoints it returns at
    /// once. A port that cannot be bound is retried every few seconds (the
    /// previous configuration may still hold it during a reload).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if self.expected.is_empty() {
            return;
        }
        let listen = self.settings.listen;
        let listener = loop {
            match TcpListener::bind(listen).await {
                Ok(l) => break l,
                Err(e) => {
                    error!(%listen, error = %e, "cannot listen for DTUs; retrying in 5 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        };
        info!(listen = %listener.local_addr().map_or(listen, |a| a), dtus = self.expected.len(), "listening for DTUs");
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let hub = Arc::clone(&self);
                    let stop = shutdown.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            () = hub.register(stream, peer) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a DTU connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Reads a new connection's first bytes until they start with a known
    /// registration, then hands it to that endpoint's poller.
    async fn register(&self, mut stream: TcpStream, peer: SocketAddr) {
        let deadline = Instant::now() + self.settings.registration_timeout;
        let mut buf = Vec::with_capacity(64);
        let mut scratch = [0u8; 256];
        loop {
            // A heartbeat before the registration is not a registration.
            while let Some(hb) = self
                .expected
                .iter()
                .filter_map(|e| e.heartbeat.as_deref())
                .find(|hb| buf.starts_with(hb))
            {
                buf.drain(..hb.len());
            }
            if let Some(e) = self
                .expected
                .iter()
                .find(|e| buf.starts_with(&e.registration))
            {
                let received = buf.split_off(e.registration.len());
                self.stats.dtu_connections.fetch_add(1, Ordering::Relaxed);
                info!(
                    endpoint = %e.endpoint,
                    dtu = %packet_text(&e.registration),
                    %peer,
                    "DTU registered"
                );
                let conn = DtuConn {
                    stream,
                    received,
                    peer,
                };
                // A full channel means the poller has not picked up the
                // previous ones yet: this newer one must still win.
                if let Err(mpsc::error::TrySendError::Full(conn)) = e.tx.try_send(conn) {
                    let _ = tokio::time::timeout(Duration::from_secs(1), e.tx.send(conn)).await;
                }
                return;
            }
            let may_still_match = self
                .expected
                .iter()
                .any(|e| e.registration.starts_with(&buf))
                || self
                    .expected
                    .iter()
                    .filter_map(|e| e.heartbeat.as_deref())
                    .any(|hb| hb.starts_with(&buf));
            if !may_still_match || buf.len() > MAX_PACKET {
                self.unknown(&buf, peer);
                return;
            }
            match tokio::time::timeout_at(deadline, stream.read(&mut scratch)).await {
                Ok(Ok(0) | Err(_)) => {
                    if !buf.is_empty() {
                        self.unknown(&buf, peer);
                    }
                    return;
                }
                Ok(Ok(n)) => buf.extend_from_slice(&scratch[..n]),
                Err(_) => {
                    if buf.is_empty() {
                        self.stats
                            .dtu_registration_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                        warn!(
                            %peer,
                            timeout_ms = self.settings.registration_timeout.as_millis() as u64,
                            "a connection sent no registration in time; closed"
                        );
                    } else {
                        self.unknown(&buf, peer);
                    }
                    return;
                }
            }
        }
    }

    /// Counts and (once per id) logs an unknown registration; the caller
    /// drops the connection.
    fn unknown(&self, first: &[u8], peer: SocketAddr) {
        self.stats
            .dtu_unknown_registrations
            .fetch_add(1, Ordering::Relaxed);
        let id = first[..first.len().min(MAX_PACKET)].to_vec();
        let Ok(mut seen) = self.unknown_seen.lock() else {
            return;
        };
        if seen.len() < MAX_REMEMBERED && seen.insert(id) {
            warn!(
                registration = %packet_text(&first[..first.len().min(MAX_PACKET)]),
                %peer,
                "unknown DTU registration; connection closed (logged once per registration)"
            );
        }
    }
}
