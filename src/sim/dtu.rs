//! The simulator as a dial-in DTU: for an endpoint with `transport = "dtu"`
//! it plays the 4G DTU in front of that endpoint's RS-485 bus. It dials the
//! gateway's `[dtu] listen` address (loopback when that is a wildcard such
//! as `0.0.0.0`), sends the endpoint's registration packet first, then
//! serves the bus's meters (Modbus RTU and DL/T 645 alike, see
//! [`super::bus`]) on that connection.
//!
//! Why it exists: a DTU is the one transport where the device connects to
//! the gateway, so neither a listener nor a plain client can stand in for
//! it; the demo and the tests need the whole conversation, registration and
//! heartbeats included, against the exact physics of the simulator.
//!
//! What it sends besides answers:
//! * `registration_mode = "every_packet"`: the registration again in front
//!   of every answer (USR `REGSND=DATA`), in the same write;
//! * a `heartbeat` / `heartbeat_hex`: the packet alone, whenever the link has
//!   carried nothing either way for `[simulator] dtu_heartbeat_ms` (default
//!   30 s); never prefixed by the registration.
//!
//! When the gateway is not up yet, or the connection drops, it redials with
//! a capped backoff (about 200 ms doubling to 5 s, with jitter) until
//! shutdown. The backoff starts again from 200 ms after a connection that
//! served a request or lasted 5 s, so a gateway that refuses the
//! registration is not hammered.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::bus::{self, BusSlave, Heartbeat};
use crate::backoff::Backoff;
use crate::config::{DtuMatch, RegistrationMode};

/// First redial delay.
const REDIAL_INITIAL: Duration = Duration::from_millis(200);
/// Longest redial delay.
const REDIAL_MAX: Duration = Duration::from_secs(5);
/// How long one dial may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a simulated DTU has done, for [`super::Simulator::dtu_connects`] and
/// [`super::Simulator::dtu_heartbeats`].
#[derive(Debug, Default)]
pub(crate) struct DtuCounters {
    /// Connections made to the gateway.
    pub connects: AtomicU64,
    /// Heartbeat packets sent.
    pub heartbeats: AtomicU64,
}

/// One simulated DTU: which endpoint's meters it serves and how it talks.
pub(crate) struct DtuLink {
    /// Shared simulator state.
    pub shared: Arc<Shared>,
    /// Index of the endpoint.
    pub endpoint: usize,
    /// Its id, for logs.
    pub endpoint_id: String,
    /// Where the gateway listens (`[dtu] listen`).
    pub gateway: SocketAddr,
    /// Registration, mode and heartbeat of the endpoint.
    pub dtu: DtuMatch,
    /// Idle time before a heartbeat (`[simulator] dtu_heartbeat_ms`).
    pub heartbeat_every: Duration,
    /// Counters the handle reads.
    pub counters: Arc<DtuCounters>,
}

/// The address to dial for a listen address: a wildcard (`0.0.0.0`, `::`)
/// accepts on every interface, and loopback is one of them.
pub(crate) fn dial_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Runs `link` until `shutdown`: dial, register, serve, redial.
pub(crate) fn spawn(link: DtuLink, shutdown: CancellationToken) {
    tokio::spawn(async move { run(&link, &shutdown).await });
}

async fn run(link: &DtuLink, shutdown: &CancellationToken) {
    let mut backoff = Backoff::new(REDIAL_INITIAL, REDIAL_MAX);
    let registration = link.dtu.registration_text();
    // Failed dials since the last connection: the first is logged at info.
    let mut failures = 0u64;
    loop {
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return,
            a = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(link.gateway)) => a,
        };
        match attempt {
            Ok(Ok(mut stream)) => {
                failures = 0;
                let _ = stream.set_nodelay(true);
                link.counters.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(endpoint = %link.endpoint_id, gateway = %link.gateway,
                    %registration, "simulated DTU connected to the gateway");
                let since = Instant::now();
                let mut slave = BusSlave::new(Arc::clone(&link.shared), link.endpoint);
                let result = session(link, &mut slave, &mut stream, shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
                match result {
                    Ok(()) => tracing::info!(endpoint = %link.endpoint_id,
                        "simulated DTU: the gateway closed the connection; redialling"),
                    Err(err) => tracing::info!(endpoint = %link.endpoint_id, %err,
                        "simulated DTU: connection lost; redialling"),
                }
                if slave.requests() > 0 || since.elapsed() >= REDIAL_MAX {
                    backoff.reset();
                }
            }
            Ok(Err(err)) => dial_failed(link, &mut failures, &err.to_string()),
            Err(_) => dial_failed(link, &mut failures, "connect timed out"),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Logs a failed dial: the first of a streak at info (the gateway is often
/// simply not up yet), the rest at debug.
fn dial_failed(link: &DtuLink, failures: &mut u64, err: &str) {
    if *failures == 0 {
        tracing::info!(endpoint = %link.endpoint_id, gateway = %link.gateway, %err,
            "simulated DTU cannot reach the gateway yet; redialling with backoff");
    } else {
        tracing::debug!(endpoint = %link.endpoint_id, gateway = %link.gateway, %err,
            "simulated DTU: dial failed");
    }
    *failures += 1;
}

/// One connection: the registration, then answers (prefixed in
/// `every_packet` mode) and heartbeats while idle.
async fn session(
    link: &DtuLink,
    slave: &mut BusSlave,
    stream: &mut TcpStream,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    stream.write_all(&link.dtu.registration).await?;
    let prefix: &[u8] = match link.dtu.mode {
        RegistrationMode::Connect => &[],
        RegistrationMode::EveryPacket => &link.dtu.registration,
    };
    let heartbeat = link.dtu.heartbeat.as_deref().map(|packet| Heartbeat {
        packet,
        every: link.heartbeat_every,
        sent: &link.counters.heartbeats,
    });
    bus::serve(slave, stream, prefix, heartbeat, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_dialled_on_loopback() {
        let cases = [
            ("0.0.0.0:20502", "127.0.0.1:20502"),
            ("[::]:7", "[::1]:7"),
            ("192.0.2.1:20502", "192.0.2.1:20502"),
        ];
        for (listen, dial) in cases {
            let listen: SocketAddr = listen.parse().expect("address");
            assert_eq!(dial_address(listen).to_string(), dial);
        }
    }
}
