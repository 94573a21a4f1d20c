//! `[dtu]` and the DTU keys of `[[endpoints]]`: how dial-in DTUs are
//! recognised.
//!
//! Why a file of its own: a DTU is the one wire the gateway does not dial;
//! it is known only by the registration packet it sends, so the packets
//! (text or hex), their mode and their uniqueness across endpoints are
//! checked here, where a mistake would otherwise hand one DTU's bus to
//! another endpoint's meters.

use std::net::SocketAddr;

use config::Value;

use super::raw::{DtuRaw, EndpointRaw};
use super::{DtuMatch, DtuSettings, EndpointConfig, RegistrationMode, Transport, packet_text};
use crate::check::{self, Problems, Text, choice, millis};

/// Longest registration or heartbeat packet accepted (USR and Hi-Flying
/// DTUs allow 40 bytes; the margin covers binary formats such as IVY's 26).
pub const MAX_PACKET: usize = 64;

/// `[dtu]`; absent, the defaults ([`DtuSettings::default`]).
pub(super) fn dtu_settings(v: Option<Value>, p: &mut Problems) -> Option<DtuSettings> {
    let Some(v) = v else {
        return Some(DtuSettings::default());
    };
    let r = check::table::<DtuRaw>(v, "dtu", "a table ([dtu])", p)?;
    let listen = match r.listen {
        None => Some(DtuSettings::default().listen),
        Some(Text(s)) => {
            let parsed = s.trim().parse::<SocketAddr>().ok();
            if parsed.is_none() {
                p.push(
                    "dtu.listen",
                    format!(
                        "\"{s}\" is not an address to listen on; write IP:port, e.g. \"0.0.0.0:20502\" to accept DTUs from the network"
                    ),
                );
            }
            parsed
        }
    };
    let registration_timeout = millis(
        r.registration_timeout_ms,
        "dtu.registration_timeout_ms",
        10_000,
        1,
        p,
    );
    Some(DtuSettings {
        listen: listen?,
        registration_timeout: registration_timeout?,
    })
}

/// The DTU keys of endpoint `key`: exactly one of `registration` /
/// `registration_hex`, the mode, at most one of `heartbeat` / `heartbeat_hex`.
pub(super) fn dtu_match(r: &EndpointRaw, key: &str, p: &mut Problems) -> Option<DtuMatch> {
    let k = |sub: &str| format!("{key}.{sub}");
    let registration = match packet(
        r.registration.as_ref(),
        r.registration_hex.as_ref(),
        key,
        "registration",
        p,
    ) {
        Ok(Some(bytes)) => Some(bytes),
        Ok(None) => {
            p.push(
                k("registration"),
                "missing required key; give the packet the DTU sends when it connects, as text (registration = \"IMEI...\") or as hex (registration_hex = \"...\")",
            );
            None
        }
        Err(()) => None,
    };
    let heartbeat = packet(
        r.heartbeat.as_ref(),
        r.heartbeat_hex.as_ref(),
        key,
        "heartbeat",
        p,
    );
    let mode = choice(
        r.registration_mode.clone(),
        &k("registration_mode"),
        "registration mode",
        &[
            ("connect", RegistrationMode::Connect),
            ("every_packet", RegistrationMode::EveryPacket),
        ],
        Some(RegistrationMode::Connect),
        p,
    );
    if let (Some(reg), Ok(Some(hb))) = (&registration, &heartbeat)
        && (reg.starts_with(hb) || hb.starts_with(reg))
    {
        p.push(
            k("heartbeat"),
            "the heartbeat and the registration start alike; the gateway could not tell them apart",
        );
        return None;
    }
    Some(DtuMatch {
        registration: registration?,
        mode: mode?,
        heartbeat: heartbeat.ok()?,
    })
}

/// `NAME` (text) or `NAME_hex`: `Ok(None)` when neither is given, `Err`
/// (recorded) when both are, or when one is empty, too long or bad hex.
fn packet(
    text: Option<&Text>,
    hex: Option<&Text>,
    key: &str,
    name: &str,
    p: &mut Problems,
) -> Result<Option<Vec<u8>>, ()> {
    let bytes = match (text, hex) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            p.push(
                format!("{key}.{name}_hex"),
                format!("give either {name} or {name}_hex, not both"),
            );
            return Err(());
        }
        (Some(Text(t)), None) => (t.as_bytes().to_vec(), format!("{key}.{name}")),
        (None, Some(Text(h))) => {
            if let Some(b) = parse_hex(h) {
                (b, format!("{key}.{name}_hex"))
            } else {
                p.push(
                    format!("{key}.{name}_hex"),
                    format!(
                        "\"{}\" is not hex; write pairs of hex digits, spaces allowed, e.g. \"7777 772E 7573 722E 636E\"",
                        check::shorten(h)
                    ),
                );
                return Err(());
            }
        }
    };
    let (bytes, at) = bytes;
    if bytes.is_empty() {
        p.push(at, "is empty; give the packet's bytes");
        return Err(());
    }
    if bytes.len() > MAX_PACKET {
        p.push(
            at,
            format!(
                "is {} bytes long; the longest packet accepted is {MAX_PACKET}",
                bytes.len()
            ),
        );
        return Err(());
    }
    Ok(Some(bytes))
}

/// Hex digit pairs, spaces ignored; `None` on any other character or an odd count.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Two DTU endpoints must be told apart by their registrations: equal
/// packets, or one the start of the other, are an error on the later one.
pub(super) fn distinct_registrations(
    endpoints: &[(String, Option<EndpointConfig>)],
    p: &mut Problems,
) {
    let dtus: Vec<(usize, &str, &DtuMatch)> = endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, (id, e))| match e.as_ref().map(|e| &e.transport) {
            Some(Transport::Dtu(d)) => Some((i, id.as_str(), d)),
            _ => None,
        })
        .collect();
    for (n, (i, _, d)) in dtus.iter().enumerate() {
        if let Some((_, first, _)) = dtus[..n].iter().find(|(_, _, o)| {
            o.registration.starts_with(&d.registration)
                || d.registration.starts_with(&o.registration)
        }) {
            p.push(
                format!("endpoints[{i}].registration"),
                format!(
                    "{} cannot be told apart from the registration of endpoint \"{first}\" (one is the start of the other); give each DTU its own",
                    packet_text(&d.registration)
                ),
            );
        }
    }
}
