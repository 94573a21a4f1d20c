//! Reloading the configuration (SIGHUP, `POST /api/reload`): what may change
//! without a restart, what changed (by meter id), and the quiet moment
//! between poll slots at which the generations are swapped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::config::{Config, MeterSource};
use crate::model::{BrokerId, EndpointId, ProfileId, SiteId};

use super::generation::{GenEnv, Generation, Prepared};

/// Settings a reload cannot change: they belong to the spool, the uploader
/// or the API server, which live as long as the process. A reload that
/// changes them is refused with these messages; restart the gateway instead.
pub(super) fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |changed: bool, what: &str| {
        if changed {
            out.push(format!("{what} changed: restart the gateway"));
        }
    };
    check(
        old.output != new.output,
        "output settings ([influxdb] or [file_sink])",
    );
    check(old.spool != new.spool, "[spool] settings");
    check(
        old.gateway.data_dir != new.gateway.data_dir,
        "gateway.data_dir",
    );
    check(
        old.gateway.shutdown_timeout != new.gateway.shutdown_timeout,
        "gateway.shutdown_timeout_secs",
    );
    check(old.api != new.api, "[api] settings");
    check(
        old.gateway.archive_days != new.gateway.archive_days,
        "gateway.archive_days",
    );
    check(old.gateway.shard != new.gateway.shard, "gateway.shard");
    out
}

/// Everything that decides how a meter is read and judged, with ids
/// resolved to what they name (indices move when meters are added).
pub(super) fn meter_fingerprint(config: &Config, index: usize) -> String {
    let m = &config.meters[index];
    let mut plain = m.clone();
    plain.site = SiteId(0);
    plain.profile = ProfileId(0);
    let source = match m.source {
        MeterSource::Modbus { endpoint, unit_id } => {
            plain.source = MeterSource::Modbus {
                endpoint: EndpointId(0),
                unit_id,
            };
            format!("{:?}", config.endpoints[endpoint.index()])
        }
        MeterSource::Dlt645 { endpoint, address } => {
            plain.source = MeterSource::Dlt645 {
                endpoint: EndpointId(0),
                address,
            };
            format!("{:?}", config.endpoints[endpoint.index()])
        }
        MeterSource::Mqtt { broker } => {
            plain.source = MeterSource::Mqtt {
                broker: BrokerId(0),
            };
            format!("{:?}", config.mqtt[broker.index()])
        }
    };
    format!(
        "{plain:?}|{:?}|{:?}|{source}|{:?}|{:?}",
        config.sites[m.site.index()],
        config.profiles[m.profile.index()],
        config.validation,
        config.aggregation
    )
}

/// How long from `now_ms` to the middle between two poll slots: every
/// Modbus slot is a multiple of its meter's interval since the epoch, so
/// halfway through the greatest common divisor `g` of the intervals no
/// round has just started or is about to start (rounds of a fast endpoint
/// take milliseconds). Zero without Modbus meters.
pub(super) fn until_quiet(config: &Config, now_ms: i64) -> Duration {
    let g = config
        .meters
        .iter()
        .filter(|m| m.modbus().is_some())
        .map(|m| i64::try_from(m.poll_interval.as_millis()).unwrap_or(i64::MAX))
        .filter(|ms| *ms > 0)
        .fold(0, gcd);
    if g < 2 {
        return Duration::ZERO;
    }
    let wait = (g / 2 - now_ms.rem_euclid(g)).rem_euclid(g);
    Duration::from_millis(wait.unsigned_abs())
}

pub(super) fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `+N meters, −M meters, K changed` between two configurations.
pub(super) fn describe_changes(old: &Config, new: &Config) -> String {
    let old_ids: HashMap<&str, usize> = old
        .meters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let mut added = 0;
    let mut changed = 0;
    for (i, m) in new.meters.iter().enumerate() {
        match old_ids.get(m.id.as_str()) {
            None => added += 1,
            Some(&j) if meter_fingerprint(old, j) != meter_fingerprint(new, i) => changed += 1,
            Some(_) => {}
        }
    }
    let kept = new.meters.len() - added;
    let removed = old.meters.len() - kept;
    format!("+{added} meters, -{removed} meters, {changed} changed")
}

/// Loads the configuration again from the file the running one came from
/// and, when it is valid and only changes what a generation owns, replaces
/// the running generation with one for it.
///
/// Every source restarts (unchanged meters too: simpler than handing a
/// running poller a new channel, and it loses no slot): the old pollers
/// are stopped halfway between two slots ([`until_quiet`]), the new ones
/// start at once and align to the next slot of each meter, so a meter
/// polled every second misses nothing as long as the swap takes less than
/// half a second (it takes milliseconds: see "sources swapped" in the log). Readings of removed
/// meters still in the channel are spooled by the old encoder before it
/// writes its checkpoints; the new encoder restores them, keyed by meter id
/// and profile, so unchanged meters keep their validation and window state.
///
/// # Errors
/// Every reason the new configuration was refused; the old one keeps running.
pub(super) async fn reload(current: &mut Generation, env: &GenEnv) -> Result<String, Vec<String>> {
    let path = current.config.source.clone();
    let new = crate::config::load(&path)
        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let refused = restart_required(&current.config, &new);
    if !refused.is_empty() {
        return Err(refused);
    }
    let summary = describe_changes(&current.config, &new);
    let next = Prepared::new(Arc::new(new), &env.stats).map_err(|e| vec![e.to_string()])?;
    // What belongs to the process, not the generation, carries over.
    next.sources
        .board
        .set_sink_reachable(current.board.sink_reachable());
    next.sources.board.mark_started();

    // Stop the old pollers between rounds, not in one: a round cut short
    // would leave its remaining meters without that slot.
    tokio::time::sleep(until_quiet(&current.config, crate::clock::now_ms())).await;
    let t0 = tokio::time::Instant::now();
    // Swap in place: `current` must hold a generation at every await.
    let old_stop = current.stop.clone();
    old_stop.cancel();
    let placeholder_encoder = tokio::spawn(async {});
    let old = std::mem::replace(&mut current.encoder, placeholder_encoder);
    let old_modbus = current.modbus.clone();
    let old_mqtt = current.mqtt.clone();
    let started = next
        .start(env, Some(old), Some(old_modbus), Some(old_mqtt))
        .await;
    info!(
        swap_ms = t0.elapsed().as_secs_f64() * 1000.0,
        meters = started.config.meters.len(),
        "sources swapped"
    );
    env.board.replace(Arc::clone(&started.board));
    *current = started;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn with_intervals(secs: &[u64]) -> Config {
        let mut site = String::from("[site]\nid = \"s\"\nname = \"s\"\n");
        for (i, s) in secs.iter().enumerate() {
            let _ = write!(
                site,
                "[[meters]]\nid = \"m{i}\"\nenergy = \"water\"\nlevel = 1\nprofile = \"water_meter\"\n\
                 endpoint = \"ep\"\nunit_id = {}\npoll_interval_secs = {s}\n",
                i + 1
            );
        }
        let profiles = crate::profiles::load::builtin();
        crate::config::from_parts(
            "[gateway]\nid = \"gw\"\n[[endpoints]]\nid = \"ep\"\nhost = \"127.0.0.1\"\nport = 1502\n",
            &[("s.toml", &site)],
            profiles,
        )
        .expect("test config")
    }

    #[test]
    fn quiet_moment_is_halfway_between_slots() {
        let c = with_intervals(&[1, 60]);
        assert_eq!(until_quiet(&c, 1_000_000), Duration::from_millis(500));
        assert_eq!(until_quiet(&c, 1_000_499), Duration::from_millis(1));
        assert_eq!(until_quiet(&c, 1_000_500), Duration::ZERO);
        assert_eq!(until_quiet(&c, 1_000_501), Duration::from_millis(999));
        let c = with_intervals(&[10, 15]);
        assert_eq!(until_quiet(&c, 0), Duration::from_millis(2500));
        assert_eq!(until_quiet(&with_intervals(&[]), 123), Duration::ZERO);
    }

    #[test]
    fn changes_are_counted_by_meter_id() {
        let old = with_intervals(&[1, 1, 1]);
        let new = with_intervals(&[1, 5]);
        assert_eq!(
            describe_changes(&old, &new),
            "+0 meters, -1 meters, 1 changed"
        );
        assert_eq!(
            describe_changes(&old, &old),
            "+0 meters, -0 meters, 0 changed"
        );
        assert_eq!(
            describe_changes(&new, &old),
            "+1 meters, -0 meters, 1 changed"
        );
    }

    #[test]
    fn output_changes_need_a_restart() {
        let old = with_intervals(&[1]);
        let mut new = old.clone();
        new.gateway.shutdown_timeout = Duration::from_secs(3);
        new.api.listen = None;
        assert_eq!(
            restart_required(&old, &new),
            [
                "gateway.shutdown_timeout_secs changed: restart the gateway",
                "[api] settings changed: restart the gateway"
            ]
        );
        assert!(restart_required(&old, &with_intervals(&[1, 1])).is_empty());
    }
}
