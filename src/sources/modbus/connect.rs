//! Opening an endpoint's wire: a TCP connection, a serial port, or a DTU's
//! connection handed over by the [`DtuHub`](crate::sources::bus::dtu::DtuHub).
//!
//! Each becomes a [`ModbusLink`] with the framing and timing of its
//! transport, so the poller does not care which it got.

use std::io;

use tokio::net::TcpStream;

use super::client::{Framing, ModbusLink};
use crate::config::{EndpointConfig, Transport};
use crate::sources::bus::dtu::DtuConn;
use crate::sources::bus::{Link, serial};

/// Dials or opens the wire of `ep` (not a DTU: those dial in).
///
/// # Errors
/// The connection or the device could not be opened in time; the message
/// says which.
pub async fn open(ep: &EndpointConfig) -> io::Result<ModbusLink> {
    match &ep.transport {
        Transport::Tcp { host, port } | Transport::RtuOverTcp { host, port } => {
            let stream = tokio::time::timeout(
                ep.connect_timeout,
                TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            let _ = stream.set_nodelay(true);
            let framing = if matches!(ep.transport, Transport::Tcp { .. }) {
                Framing::Mbap
            } else {
                Framing::Rtu
            };
            let link = Link::new(Box::new(stream), Vec::new(), Vec::new(), ep.line.as_ref());
            Ok(ModbusLink::new(link, framing))
        }
        Transport::Serial { device } => {
            let Some(line) = ep.line else {
                return Err(io::Error::other("serial endpoint without line settings"));
            };
            let port = serial::open(device, line).await?;
            let link = Link::new(Box::new(port), Vec::new(), Vec::new(), ep.line.as_ref());
            Ok(ModbusLink::new(link, Framing::Rtu))
        }
        Transport::Dtu(_) => Err(io::Error::other(
            "a DTU endpoint is not dialled; its DTU dials in",
        )),
    }
}

/// The link over a registered DTU connection for `ep`: RTU framing, with
/// the DTU's heartbeat (and, in `every_packet` mode, its registration)
/// stripped wherever a frame would start.
#[must_use]
pub fn from_dtu(conn: DtuConn, ep: &EndpointConfig) -> ModbusLink {
    let mut strip = Vec::new();
    if let Transport::Dtu(d) = &ep.transport {
        if let Some(hb) = &d.heartbeat {
            strip.push(hb.clone());
        }
        // Harmless in `connect` mode too: a DTU that re-sends its
        // registration on the same connection is not sending an answer.
        strip.push(d.registration.clone());
    }
    let link = Link::new(
        Box::new(conn.stream),
        conn.received,
        strip,
        ep.line.as_ref(),
    );
    ModbusLink::new(link, Framing::Rtu)
}
