//! The commands that are more than a call into the library: `shards`
//! (the assignment of sites to N gateways), `export` (the local archive
//! written out), `report` (a report to a file or stdout), `enter`'s local
//! archive copy, and `dlt645-address`.
//!
//! Why apart from `main.rs`: each turns library results into exit codes
//! and messages on stdout/stderr; `main.rs` only parses and dispatches.

use std::process::ExitCode;

use emgate::config::{self, Config, ConfigErrors};

use crate::ExportFormatArg;

use super::print::print_config_errors;

/// `emgate shards`: the assignment for `n` and the moves to `n + 1`; exit 2
/// when an endpoint serves sites of several of the `n` shards.
pub(crate) fn shards(path: &std::path::Path, n: u32) -> ExitCode {
    let c = match config::load_all_shards(path) {
        Ok(c) => c,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::from(2);
        }
    };
    print!("{}", config::shard_filter::report(&c, n));
    for e in config::shard_filter::mixed_endpoints(&c, n + 1) {
        println!("note: with {} shards: {}", n + 1, e.message);
    }
    let errors = config::shard_filter::mixed_endpoints(&c, n);
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        print_config_errors(&ConfigErrors(errors));
        ExitCode::from(2)
    }
}

/// `emgate enter`: keeps a copy of the stored entry in the local archive
/// when the data directory exists (the gateway has run here); says on
/// stderr why not otherwise. The entry is stored either way.
pub(crate) fn archive_entry(config: &Config, entry: &emgate::entries::Entry) {
    let g = &config.gateway;
    if g.archive_days == 0 {
        return;
    }
    if !g.data_dir.is_dir() {
        eprintln!(
            "note: not archived locally: gateway.data_dir \"{}\" does not exist here (run emgate enter where the gateway runs)",
            g.data_dir.display()
        );
        return;
    }
    let mut line = Vec::with_capacity(256);
    entry.encode(&mut line);
    let dir = emgate::archive::dir_of(&g.data_dir);
    if let Err(e) = emgate::archive::append_now(&dir, &g.timezone, &line) {
        eprintln!("warning: the entry is stored but not archived locally: {e}");
    }
}

/// `emgate export`: parses the days, writes the archive's points, and
/// reports what was read on stderr.
pub(crate) fn export(
    config: &Config,
    from: &str,
    to: &str,
    sites: &[String],
    format: ExportFormatArg,
    out: Option<&std::path::Path>,
) -> ExitCode {
    use emgate::archive::export::{Format, export};
    let day = |flag: &str, text: &str| {
        let ok = text.len() == 10;
        match text.parse::<jiff::civil::Date>() {
            Ok(d) if ok => Ok(d),
            _ => Err(format!(
                "error: {flag} \"{text}\" is not a day; use YYYY-MM-DD (in the gateway's time zone)"
            )),
        }
    };
    let (from, to) = match (day("--from", from), day("--to", to)) {
        (Ok(a), Ok(b)) if a <= b => (a, b),
        (Ok(a), Ok(b)) => {
            eprintln!("error: --from {a} is after --to {b}; both days are included");
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(s) = sites
        .iter()
        .find(|s| !config.sites.iter().any(|c| c.id == **s))
    {
        let known: Vec<&str> = config.sites.iter().map(|c| c.id.as_str()).collect();
        eprintln!("error: unknown site \"{s}\"; known: {}", known.join(", "));
        return ExitCode::from(2);
    }
    let format = match format {
        ExportFormatArg::Lp => Format::Lp,
        ExportFormatArg::Csv => Format::Csv,
    };
    let dir = emgate::archive::dir_of(&config.gateway.data_dir);
    let tz = &config.gateway.timezone;
    let result = match out {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => export(
                &dir,
                tz,
                from,
                to,
                sites,
                format,
                &mut std::io::BufWriter::new(f),
            ),
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => export(
            &dir,
            tz,
            from,
            to,
            sites,
            format,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        ),
    };
    match result {
        Ok(s) => {
            eprintln!(
                "exported {} points of {from}..={to} from {} ({})",
                s.points,
                dir.display(),
                s.read
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `emgate report`: the text on stdout or in `out`; exit 2 for a bad
/// request, 1 when the database or the file fails.
pub(crate) async fn report(
    config: &Config,
    args: &emgate::reports::run::Args,
    format: &str,
    overrides: &emgate::reports::store_influx::InfluxOverrides,
    archive: bool,
    out: Option<&std::path::Path>,
) -> ExitCode {
    use emgate::reports::ReportError;
    let text = match emgate::reports::run::make(
        config,
        args,
        format,
        overrides,
        archive,
        jiff::Timestamp::now(),
    )
    .await
    {
        Ok(t) => t,
        Err(e @ ReportError::Request(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e @ ReportError::Store(_)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// `emgate dlt645-address`: opens `endpoint`'s link and reads the address
/// of the one DL/T 645 meter on it.
pub(crate) async fn dlt645_address(config: &Config, endpoint: &str) -> Result<String, String> {
    use emgate::sources::dlt645::client::{AddressError, read_address};
    let Some(ep) = config.endpoints.iter().find(|e| e.id == endpoint) else {
        let known: Vec<&str> = config.endpoints.iter().map(|e| e.id.as_str()).collect();
        return Err(format!(
            "no endpoint \"{endpoint}\"; the configuration has: {}",
            known.join(", ")
        ));
    };
    if !matches!(
        ep.transport,
        emgate::config::Transport::Serial { .. } | emgate::config::Transport::RtuOverTcp { .. }
    ) {
        return Err(AddressError::Transport(ep.id.clone()).to_string());
    }
    let mut wire = emgate::sources::modbus::connect::open(ep)
        .await
        .map_err(|source| {
            AddressError::Open {
                endpoint: ep.id.clone(),
                source,
            }
            .to_string()
        })?;
    read_address(
        wire.link_mut(),
        usize::from(ep.dlt645_preamble),
        ep.timeout.max(std::time::Duration::from_secs(2)),
    )
    .await
    .map(|a| a.nameplate())
    .map_err(|e| e.to_string())
}
