//! Applying `[gateway] shard = "K/N"` to a validated configuration: the
//! gateway keeps only the sites of its shard, with their meters, boilers,
//! targets and simulator faults, and only the endpoints and brokers that
//! still carry a meter.
//!
//! Why here, once, after everything was validated: every consumer (the
//! pollers, the MQTT source, the pipeline, the reports, the API) then sees
//! only its shard and needs no notion of shards. Ids are indexes into the
//! configuration's vectors, so everything kept is re-indexed consistently.
//!
//! A bus (endpoint or DTU) is polled one request at a time by one process:
//! an endpoint that carries meters of sites in several shards cannot be
//! split and is an error, reported the same by every shard.
//!
//! MQTT: a broker with no meter of the shard is not connected; a
//! subscription whose topic names the site (`{site}`) is narrowed to one
//! subscription per site of the shard (the site id as a literal level), so
//! the broker sends only the shard's messages. A subscription without
//! `{site}` cannot be narrowed: it receives every shard's messages and
//! rejects other shards' meters as unknown.

use super::shard::shard_of;
use super::{Config, ConfigError, ConfigErrors, MeterSource, MqttSubscription, SimFault};
use crate::config::boilers::InputRef;
use crate::model::{BrokerId, EndpointId, MeterId, SiteId};

/// The endpoints that carry meters of sites in more than one of `n` shards:
/// one error each, naming one site per shard.
#[must_use]
pub fn mixed_endpoints(config: &Config, n: u32) -> Vec<ConfigError> {
    let shard_of_site: Vec<u32> = config.sites.iter().map(|s| shard_of(&s.id, n)).collect();
    // Per endpoint, one site per shard, in the order their meters appear
    // (one pass over the meters: an installation has thousands).
    let mut per_endpoint: Vec<Vec<(u32, &str)>> = vec![Vec::new(); config.endpoints.len()];
    for m in &config.meters {
        if let Some(e) = m.endpoint() {
            let shard = shard_of_site[m.site.index()];
            let seen = &mut per_endpoint[e.index()];
            if !seen.iter().any(|(s, _)| *s == shard) {
                seen.push((shard, config.sites[m.site.index()].id.as_str()));
            }
        }
    }
    let mut errors = Vec::new();
    for (e, (ep, seen)) in config.endpoints.iter().zip(&per_endpoint).enumerate() {
        if seen.len() > 1 {
            let parts: Vec<String> = seen
                .iter()
                .map(|(s, site)| format!("{site} (shard {s}/{n})"))
                .collect();
            let list = match parts.split_last() {
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            errors.push(ConfigError {
                file: config.source.clone(),
                key: format!("endpoints[{e}]"),
                message: format!(
                    "endpoint \"{}\" serves sites {list}: a bus belongs to one gateway; give each shard its own endpoint",
                    ep.id
                ),
            });
        }
    }
    errors
}

/// Keeps the sites of `config.gateway.shard` and what belongs to them,
/// re-indexed. A `0/1` shard returns the configuration unchanged.
///
/// # Errors
/// Endpoints that serve sites of several shards ([`mixed_endpoints`]).
pub fn apply(config: Config) -> Result<Config, ConfigErrors> {
    let shard = config.gateway.shard;
    if shard.is_whole() {
        return Ok(config);
    }
    let errors = mixed_endpoints(&config, shard.count);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let Config {
        source,
        gateway,
        output,
        endpoints,
        dtu,
        sites,
        meters,
        profiles,
        spool,
        validation,
        mut simulator,
        aggregation,
        mqtt,
        api,
        boilers,
        boiler,
        targets,
    } = config;

    let mut site_map: Vec<Option<SiteId>> = Vec::with_capacity(sites.len());
    let mut kept_sites = Vec::new();
    for s in sites {
        if shard.holds(&s.id) {
            site_map.push(Some(index_id(kept_sites.len(), SiteId)));
            kept_sites.push(s);
        } else {
            site_map.push(None);
        }
    }
    let kept_meter = |m: &super::MeterConfig| site_map[m.site.index()].is_some();

    // Endpoints and brokers that keep at least one meter, in order.
    let mut endpoint_map: Vec<Option<EndpointId>> = vec![None; endpoints.len()];
    let mut broker_map: Vec<Option<BrokerId>> = vec![None; mqtt.len()];
    // Sites of the shard each broker carries (by old broker id), for narrowing `{site}`.
    let mut broker_sites: Vec<Vec<String>> = vec![Vec::new(); mqtt.len()];
    for m in meters.iter().filter(|m| kept_meter(m)) {
        if let Some(e) = m.endpoint() {
            endpoint_map[e.index()] = Some(EndpointId(0));
        }
        if let (Some(b), Some(site)) = (m.broker(), site_map[m.site.index()]) {
            broker_map[b.index()] = Some(BrokerId(0));
            let id = &kept_sites[site.index()].id;
            if !broker_sites[b.index()].contains(id) {
                broker_sites[b.index()].push(id.clone());
            }
        }
    }
    let mut next = 0;
    for slot in endpoint_map.iter_mut().filter(|s| s.is_some()) {
        *slot = Some(index_id(next, EndpointId));
        next += 1;
    }
    next = 0;
    for slot in broker_map.iter_mut().filter(|s| s.is_some()) {
        *slot = Some(index_id(next, BrokerId));
        next += 1;
    }

    let mut meter_map: Vec<Option<MeterId>> = Vec::with_capacity(meters.len());
    let mut kept_meters = Vec::new();
    for mut m in meters {
        let Some(site) = site_map[m.site.index()] else {
            meter_map.push(None);
            continue;
        };
        m.site = site;
        m.source = match m.source {
            MeterSource::Modbus { endpoint, unit_id } => MeterSource::Modbus {
                endpoint: endpoint_map[endpoint.index()].unwrap_or(endpoint),
                unit_id,
            },
            MeterSource::Dlt645 { endpoint, address } => MeterSource::Dlt645 {
                endpoint: endpoint_map[endpoint.index()].unwrap_or(endpoint),
                address,
            },
            MeterSource::Mqtt { broker } => MeterSource::Mqtt {
                broker: broker_map[broker.index()].unwrap_or(broker),
            },
        };
        meter_map.push(Some(index_id(kept_meters.len(), MeterId)));
        kept_meters.push(m);
    }
    let remap = |m: MeterId| meter_map[m.index()];

    let endpoints = endpoints
        .into_iter()
        .zip(&endpoint_map)
        .filter_map(|(e, k)| k.map(|_| e))
        .collect();

    let mqtt = mqtt
        .into_iter()
        .zip(&broker_map)
        .zip(broker_sites)
        .filter_map(|((mut b, k), sites)| {
            k.map(|_| {
                b.subscriptions = narrow(b.subscriptions, &sites);
                b
            })
        })
        .collect();

    simulator.faults = simulator
        .faults
        .into_iter()
        .filter_map(|(m, f): (MeterId, SimFault)| remap(m).map(|m| (m, f)))
        .collect();

    let boilers = boilers
        .into_iter()
        .filter_map(|mut b| {
            b.site = site_map[b.site.index()]?;
            b.fuel_meter = remap(b.fuel_meter)?;
            b.output_meter = remap(b.output_meter)?;
            for input in [
                &mut b.steam_pressure,
                &mut b.steam_temperature,
                &mut b.supply_temperature,
                &mut b.return_temperature,
                &mut b.feed_water,
                &mut b.exhaust,
                &mut b.o2,
                &mut b.co_ppm,
                &mut b.cold_air,
            ] {
                if let InputRef::Point { meter, .. } = input {
                    // A boiler's meters are meters of its own site: kept with it.
                    *meter = remap(*meter)?;
                }
            }
            Some(b)
        })
        .collect();
    let targets = targets
        .into_iter()
        .filter_map(|mut t| {
            t.site = site_map[t.site.index()]?;
            Some(t)
        })
        .collect();

    Ok(Config {
        source,
        gateway,
        output,
        endpoints,
        dtu,
        sites: kept_sites,
        meters: kept_meters,
        profiles,
        spool,
        validation,
        simulator,
        aggregation,
        mqtt,
        api,
        boilers,
        boiler,
        targets,
    })
}

/// An id from a vector index.
fn index_id<T>(i: usize, make: fn(u32) -> T) -> T {
    make(u32::try_from(i).unwrap_or(u32::MAX))
}

/// Each subscription whose topic has a `{site}` level becomes one
/// subscription per site in `sites` (the level replaced by the site id);
/// the others are kept as they are.
fn narrow(subs: Vec<MqttSubscription>, sites: &[String]) -> Vec<MqttSubscription> {
    let mut out = Vec::with_capacity(subs.len());
    for s in subs {
        if s.topic.split('/').any(|l| l == "{site}") {
            for site in sites {
                let topic: Vec<&str> = s
                    .topic
                    .split('/')
                    .map(|l| if l == "{site}" { site.as_str() } else { l })
                    .collect();
                let mut one = s.clone();
                one.topic = topic.join("/");
                out.push(one);
            }
        } else {
            out.push(s);
        }
    }
    out
}

/// The whole assignment of `config`'s sites (all of them: load it with
/// [`super::load_all_shards`]) to `n` shards, and what moves going to
/// `n + 1`, as printed by `emgate shards`: a tab-separated table `site`,
/// `shard`, `meters`; one line `shard K/N: S site(s), M meter(s)` per
/// shard; `from N to N+1 shards, X of Y site(s) move:` and a table `site`,
/// `from`, `to`.
#[must_use]
pub fn report(config: &Config, n: u32) -> String {
    use std::fmt::Write as _;
    let n = n.max(1);
    let mut meters = vec![0usize; config.sites.len()];
    for m in &config.meters {
        meters[m.site.index()] += 1;
    }
    let now: Vec<u32> = config.sites.iter().map(|s| shard_of(&s.id, n)).collect();
    let mut out = String::from("site\tshard\tmeters\n");
    for ((s, k), c) in config.sites.iter().zip(&now).zip(&meters) {
        let _ = writeln!(out, "{}\t{k}/{n}\t{c}", s.id);
    }
    for k in 0..n {
        let (sites, count) = now
            .iter()
            .zip(&meters)
            .filter(|(s, _)| **s == k)
            .fold((0, 0), |(a, b), (_, c)| (a + 1, b + c));
        let _ = writeln!(out, "shard {k}/{n}: {sites} site(s), {count} meter(s)");
    }
    let next = n + 1;
    let moves: Vec<(&str, u32, u32)> = config
        .sites
        .iter()
        .zip(&now)
        .map(|(s, k)| (s.id.as_str(), *k, shard_of(&s.id, next)))
        .filter(|(_, a, b)| a != b)
        .collect();
    let _ = writeln!(
        out,
        "from {n} to {next} shards, {} of {} site(s) move:",
        moves.len(),
        config.sites.len()
    );
    out.push_str("site\tfrom\tto\n");
    for (s, a, b) in moves {
        let _ = writeln!(out, "{s}\t{a}/{n}\t{b}/{next}");
    }
    out
}
