//! What `emgate check-config` prints beside "ok": each meter's conversion
//! to kgce, the bus timings, the boilers, this gateway's shard, and the
//! configuration's errors one per line.
//!
//! Why apart from `main.rs`: the binary's entry stays a list of commands;
//! the wording users read (and tests pin) lives here.

use emgate::config::{self, Config, ConfigErrors};

/// What aggregation will do with each meter, so a metrologist can check
/// every coefficient before the gateway runs.
pub(crate) fn print_conversions(c: &emgate::config::Config) {
    let a = &c.aggregation;
    if a.aggregator.windows.is_empty() {
        println!("aggregation: off (windows = [])");
        return;
    }
    let windows: Vec<&str> = a.aggregator.windows.iter().map(|w| w.as_tag()).collect();
    println!(
        "aggregation: windows {}; allowed lateness {} s; coefficients {}",
        windows.join(" "),
        a.aggregator.allowed_lateness_secs,
        a.coefficients.edition
    );
    for m in &c.meters {
        // A meter without a counter (a flue-gas analyzer, a power-quality
        // meter) converts nothing: say so instead of an empty line.
        let conversion = if m.consumption.is_none() {
            "no counter: adds to no total"
        } else {
            m.conversion_source.as_str()
        };
        println!(
            "  {} ({} level {}, {}): {conversion}",
            m.id,
            m.energy,
            m.level.as_str(),
            m.role.as_str(),
        );
    }
}

/// One line per bus with its planned round against the shortest poll
/// interval of its meters, and a warning (stderr) for every round that does
/// not fit: a warning, not an error (the exit code stays 0).
pub(crate) fn print_bus_timings(c: &Config) {
    for bus in emgate::sources::modbus::timing::bus_timings(c) {
        println!("{}", bus.line(c));
        if let Some(warning) = bus.warning(c) {
            eprintln!("{warning}");
        }
    }
}

/// Each boiler (kind, capacity, fuel class, limit row and its source,
/// inputs); the boiler warnings go to stderr (the exit code stays 0).
pub(crate) fn print_boilers(c: &Config) {
    if c.boilers.is_empty() {
        return;
    }
    println!(
        "boilers: {} (windows {}; min coverage {}; grace {})",
        c.boilers.len(),
        c.aggregation
            .aggregator
            .windows
            .iter()
            .map(|w| w.as_tag())
            .collect::<Vec<_>>()
            .join(" "),
        c.boiler.min_coverage,
        if c.boiler.grace_secs > 0 {
            format!("{} s", c.boiler.grace_secs)
        } else {
            "automatic".to_owned()
        }
    );
    for b in &c.boilers {
        print!("{}", config::boilers::describe(c, b));
    }
    for w in config::boilers::warnings(c) {
        eprintln!("{w}");
    }
}

pub(crate) fn print_config_errors(errors: &ConfigErrors) {
    for e in &errors.0 {
        eprintln!("{e}");
    }
    eprintln!(
        "{} error{} found",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
}

/// `check-config` of a sharded gateway: its shard, sites and meters.
pub(crate) fn print_shard(c: &Config) {
    let shard = c.gateway.shard;
    if shard.is_whole() {
        return;
    }
    println!(
        "shard {shard}: {} site(s), {} meter(s)",
        c.sites.len(),
        c.meters.len()
    );
    let ids: Vec<&str> = c.sites.iter().map(|s| s.id.as_str()).collect();
    println!("sites: {}", ids.join(", "));
}
