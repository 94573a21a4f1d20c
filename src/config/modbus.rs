//! `[[endpoints]]`: the Modbus TCP connections meters are polled through.
//!
//! Why a file of its own: an endpoint carries the timing and request-size
//! limits that slow gateways and DTUs need, and every Modbus meter of the
//! site files names one by id.

use config::Value;

use super::EndpointConfig;
use super::main_state::Main;
use super::raw::EndpointRaw;
use crate::check::backoff_range;
use crate::check::{self, int, millis, required_id, required_text};

/// Every `[[endpoints]]` element, each checked on its own into [`Main::endpoints`].
pub(super) fn endpoints(v: Value, main: &mut Main) {
    let items = check::array(
        v,
        "endpoints",
        "an array of tables ([[endpoints]])",
        &mut main.problems,
    );
    for (i, item) in items.into_iter().enumerate() {
        endpoint(item, i, main);
    }
}

/// One `[[endpoints]]` element; its id is recorded even when the rest is
/// broken, so meters naming it are not reported as unknown.
fn endpoint(value: Value, index: usize, main: &mut Main) {
    let key = format!("endpoints[{index}]");
    let k = |sub: &str| format!("{key}.{sub}");
    let p = &mut main.problems;
    let Some(r) = check::table::<EndpointRaw>(value, &key, "a table", p) else {
        return;
    };
    let errors_before = p.list.len();
    let id = required_id(r.id, &k("id"), "endpoint id", p);
    if let Some(id) = &id
        && let Some(first) = main.endpoints.iter().position(|(e, _)| e == id)
    {
        p.push(
            k("id"),
            format!("duplicate endpoint id \"{id}\"; already used by endpoints[{first}]"),
        );
    }
    let host = required_text(
        r.host,
        &k("host"),
        "give the host name or IP address of the Modbus TCP server",
        p,
    );
    let port = int(r.port, &k("port"), 502, 1, 65535, p);
    let timeout = millis(r.timeout_ms, &k("timeout_ms"), 1000, 1, p);
    let connect_timeout = millis(r.connect_timeout_ms, &k("connect_timeout_ms"), 3000, 1, p);
    let (reconnect_initial, reconnect_max) = backoff_range(
        r.reconnect_initial_ms,
        r.reconnect_max_ms,
        &key,
        "reconnect",
        p,
    );
    let max_gap = int(r.max_gap, &k("max_gap"), 10, 0, 125, p);
    let max_registers = int(r.max_registers, &k("max_registers"), 125, 1, 125, p);
    let delay = millis(
        r.inter_request_delay_ms,
        &k("inter_request_delay_ms"),
        0,
        0,
        p,
    );
    let Some(id) = id else {
        return;
    };
    let config = (p.list.len() == errors_before)
        .then(|| {
            Some(EndpointConfig {
                id: id.clone(),
                host: host?,
                port: u16::try_from(port?).ok()?,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                reconnect_initial: reconnect_initial?,
                reconnect_max: reconnect_max?,
                max_gap: u16::try_from(max_gap?).ok()?,
                max_registers: u16::try_from(max_registers?).ok()?,
                inter_request_delay: delay?,
            })
        })
        .flatten();
    main.endpoints.push((id, config));
}
