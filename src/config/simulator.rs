//! `[simulator]`: how `emgate simulate` serves the configured meters.
//!
//! Why a file of its own: it is checked last, after the site files, because
//! its faults name meters (`faults = [{ meter = "m1", fault = "frozen" }]`);
//! `emgate run` ignores it.

use std::collections::HashMap;
use std::time::Duration;

use super::raw::{FaultRaw, SimulatorRaw};
use super::sites::Declared;
use super::{SimFault, SimulatorConfig};
use crate::check::{self, Problems, Text, choice, millis, unknown_ref};
use crate::model::MeterId;

/// `[simulator]` as read from the main file (`raw`), its faults resolved
/// against every declared meter id; absent, 1 s steps, no fault and DTU
/// heartbeats after 30 s of idle.
pub(super) fn simulator(
    raw: Option<SimulatorRaw>,
    meter_ids: &HashMap<String, (MeterId, Declared)>,
    p: &mut Problems,
) -> Option<SimulatorConfig> {
    let Some(r) = raw else {
        return Some(SimulatorConfig {
            time_step: Duration::from_secs(1),
            faults: Vec::new(),
            dtu_heartbeat: SimulatorConfig::DEFAULT_DTU_HEARTBEAT,
        });
    };
    let time_step = millis(r.time_step_ms, "simulator.time_step_ms", 1000, 1, p);
    let default_heartbeat = SimulatorConfig::DEFAULT_DTU_HEARTBEAT.as_millis() as i64;
    let dtu_heartbeat = millis(
        r.dtu_heartbeat_ms,
        "simulator.dtu_heartbeat_ms",
        default_heartbeat,
        1,
        p,
    );
    let mut faults = Vec::new();
    let mut ok = true;
    if let Some(v) = r.faults {
        let items = check::array(v, "simulator.faults", "an array of tables", p);
        for (i, item) in items.into_iter().enumerate() {
            let key = format!("simulator.faults[{i}]");
            let Some(f) = check::table::<FaultRaw>(
                item,
                &key,
                "a table ({ meter = \"...\", fault = \"...\" })",
                p,
            ) else {
                ok = false;
                continue;
            };
            let meter = match f.meter {
                None => {
                    p.push(
                        format!("{key}.meter"),
                        "missing required key; give the id of the meter to disturb",
                    );
                    None
                }
                Some(Text(m)) => {
                    if let Some((id, _)) = meter_ids.get(&m) {
                        Some(*id)
                    } else {
                        p.push(
                            format!("{key}.meter"),
                            unknown_ref("meter", &m, meter_ids.keys().map(String::as_str)),
                        );
                        None
                    }
                }
            };
            let fault = choice(
                f.fault,
                &format!("{key}.fault"),
                "fault",
                &[
                    ("no_response", SimFault::NoResponse),
                    ("exception", SimFault::Exception),
                    ("sentinel", SimFault::Sentinel),
                    ("counter_reset", SimFault::CounterReset),
                    ("frozen", SimFault::Frozen),
                    ("spike", SimFault::Spike),
                ],
                None,
                p,
            );
            match (meter, fault) {
                (Some(m), Some(f)) => faults.push((m, f)),
                _ => ok = false,
            }
        }
    }
    Some(SimulatorConfig {
        time_step: time_step?,
        faults,
        dtu_heartbeat: dtu_heartbeat?,
    })
    .filter(|_| ok)
}
