//! Configuration loading and validation: raw files to one checked [`Config`].
//!
//! Why it is built this way: a gateway is configured once by someone on site
//! and then runs unattended, so every mistake must surface before anything
//! starts, all at once, each as `FILE: key.path: message` with the fix in
//! the message. The loader never stops at the first problem: each section,
//! each `[[endpoints]]`, `[[meters]]` and `[[points]]` element is checked on
//! its own, and references between files (meter → profile, meter → endpoint,
//! fault → meter) are resolved against everything that was declared, valid
//! or not, so one broken file does not cause a cascade of "unknown" errors.
//!
//! Sources and precedence:
//! * the main file (e.g. `config/emgate.toml`), read with the `config` crate;
//! * environment overrides on top of it: `EMGATE__SECTION__KEY`
//!   (`EMGATE__INFLUXDB__TOKEN`, `EMGATE__GATEWAY__ID`), keys lower-cased,
//!   values strings (numbers and booleans are parsed from them); problems
//!   they cause are reported against the file `<env>`;
//! * every `*.toml` in `gateway.sites_dir`, sorted by file name (one `[site]`
//!   and its `[[meters]]` per file);
//! * every `*.toml` in `gateway.profiles_dir` (profile id = file stem). All of
//!   them are checked, but only profiles that meters use end up in
//!   [`Config::profiles`].
//!
//! `sites_dir` and `profiles_dir` are relative to the main file's directory;
//! `data_dir` and `file_sink.path` are relative to the working directory, as
//! data paths usually are.
//!
//! Last, `[gateway] shard` is applied (see [`super::shard`]): the result
//! holds only the shard's sites; [`load_all_shards`] skips that step.
//!
//! A configuration with no meters is valid (a gateway being set up); callers
//! that need meters (`emgate run`) should warn when [`Config::meters`] is empty.
//!
//! This file holds the entry points, the order in which the files are read
//! and the assembly of the result, including which problems an environment
//! override caused; each section is checked in its own file beside it (see
//! [`crate::config`]).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::boilers::{Known, resolve};
use super::files::{SourceText, file_stem, io_message, read_dir};
use super::main_file::parse_main;
use super::main_state::Main;
use super::simulator::simulator;
use super::sites::{Loaded, SiteState};
use super::{Config, ConfigError, ConfigErrors, EndpointConfig, MqttBroker};
use crate::check::Problems;
use crate::profiles::load::load_profile;

/// File name used for environment overrides in [`ConfigError::file`].
const ENV_FILE: &str = "<env>";

/// Loads and validates the configuration at `path`, with overrides from the
/// process environment (`EMGATE__SECTION__KEY`).
///
/// # Errors
/// Every problem found, in the main file first, then the site files, then the
/// profile files.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    // Variables that are not Unicode cannot be ours (the names are ASCII); skip them.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(path, &env)
}

/// [`load`] with the environment given as `(name, value)` pairs, so tests do
/// not touch the process environment. Pairs whose name does not start with
/// `EMGATE__` are ignored, as are empty values.
///
/// # Errors
/// Every problem found.
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    super::shard_filter::apply(load_unsharded(path, env)?)
}

/// [`load`] without applying `[gateway] shard`: every site, as `emgate
/// shards` needs them to print the whole assignment.
///
/// # Errors
/// Every problem found (not the shard's endpoint errors, which depend on N).
pub fn load_all_shards(path: &Path) -> Result<Config, ConfigErrors> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_unsharded(path, &env)
}

/// The files at `path`, checked and assembled, before sharding.
fn load_unsharded(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!("cannot read the configuration file: {}", io_message(&e)),
        }])
    })?;
    let mut main = parse_main(path, &text, env);
    let base = path.parent().unwrap_or(Path::new(""));
    let sites_dir = base.join(&main.sites_dir);
    let profiles_dir = base.join(&main.profiles_dir);
    let mut file_problems = Vec::new();
    let sites = read_dir(
        &sites_dir,
        "gateway.sites_dir",
        &mut main.problems,
        &mut file_problems,
    );
    let profiles = read_dir(
        &profiles_dir,
        "gateway.profiles_dir",
        &mut main.problems,
        &mut file_problems,
    );
    assemble(main, &sites, &profiles, file_problems)
}

/// Builds a configuration from texts instead of files (`emgate demo` builds
/// its site in code). `sites` are `(file name, text)` pairs, kept in the
/// given order; `profiles` are `(profile id, text)` pairs, e.g.
/// [`crate::profiles::load::builtin`]. No environment overrides apply.
/// Problems are located in `emgate.toml`, `<sites_dir>/<name>` and
/// `<profiles_dir>/<id>.toml`.
///
/// # Errors
/// Every problem found.
pub fn from_parts(
    main_toml: &str,
    sites: &[(&str, &str)],
    profiles: &[(&str, &str)],
) -> Result<Config, ConfigErrors> {
    let main = parse_main(Path::new("emgate.toml"), main_toml, &[]);
    let sites: Vec<SourceText> = sites
        .iter()
        .map(|(name, text)| SourceText {
            path: main.sites_dir.join(name),
            stem: file_stem(name),
            text: (*text).to_owned(),
        })
        .collect();
    let profiles: Vec<SourceText> = profiles
        .iter()
        .map(|(id, text)| SourceText {
            path: main.profiles_dir.join(format!("{id}.toml")),
            stem: (*id).to_owned(),
            text: (*text).to_owned(),
        })
        .collect();
    super::shard_filter::apply(assemble(main, &sites, &profiles, Vec::new())?)
}

/// A main file alone, with no site and no profile (tests of the main sections).
///
/// # Errors
/// Every problem found.
pub fn load_str_for_tests(main: &str) -> Result<Config, ConfigErrors> {
    from_parts(main, &[], &[])
}

/// Whether the dotted `key` (e.g. `gateway.id`) is present in `table`.
fn has_key(table: &toml::Table, key: &str) -> bool {
    let mut at = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        match at.get(part) {
            None => return false,
            Some(toml::Value::Table(t)) => at = t,
            Some(_) => return parts.peek().is_none(),
        }
    }
    true
}

/// Problems caused by environment overrides belong to `<env>`: a problem of
/// the main file at a key an override set or below it, or at a key the file
/// lacks above one an override set, is moved there and names the variable.
fn attribute_to_env(errors: &mut [ConfigError], main: &Main) {
    for e in errors {
        let from_env = main.env_keys.iter().find(|(path, _)| {
            e.key == *path
                || e.key
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
                // `EMGATE__NOSECTION__X` makes an unknown key `nosection`
                // that the file does not have: the variable is the cause.
                || (path
                    .strip_prefix(e.key.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
                    && !main.file_table.as_ref().is_some_and(|t| has_key(t, &e.key)))
        });
        if let Some((_, var)) = from_env {
            e.file = PathBuf::from(ENV_FILE);
            e.message = format!("{} (set by {var})", e.message);
        }
    }
}

/// Profiles, then site files, then `[simulator]` (its faults name meters),
/// then every problem in file order, or the configuration.
fn assemble(
    mut main: Main,
    site_files: &[SourceText],
    profile_files: &[SourceText],
    mut file_problems: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    // Profiles first: site checks need them.
    let mut profile_problems = Vec::new();
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    let mut profile_names: Vec<String> = Vec::new();
    for f in profile_files {
        if loaded.contains_key(&f.stem) {
            profile_problems.push(ConfigError {
                file: f.path.clone(),
                key: String::new(),
                message: format!("duplicate profile id \"{}\"", f.stem),
            });
            continue;
        }
        let outcome = match load_profile(&f.stem, &f.path, &f.text) {
            Ok(p) => Loaded::Valid(p),
            Err(errs) => {
                profile_problems.extend(errs);
                Loaded::Broken
            }
        };
        profile_names.push(f.stem.clone());
        loaded.insert(f.stem.clone(), outcome);
    }
    profile_names.sort();

    let mut st = SiteState::new(&main, &loaded, &profile_names);
    let mut site_problems = Vec::new();
    for f in site_files {
        let mut p = Problems::new(&f.path);
        st.site_file(f, &mut p);
        site_problems.extend(p.list);
    }
    let SiteState {
        sites,
        meters,
        profiles,
        meter_ids,
        boilers,
        targets,
        ..
    } = st;
    let boilers = resolve(
        boilers,
        &Known {
            sites: &sites,
            meters: &meters,
            profiles: &profiles,
            meter_ids: &meter_ids,
            settings: main.boiler.as_ref(),
        },
        &mut site_problems,
    );

    let simulator = simulator(main.simulator.take(), &meter_ids, &mut main.problems);
    if let Some(api) = &main.api {
        let known: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
        super::api_tokens::check_sites(&api.site_tokens, &known, &mut main.problems);
    }

    let mut errors = std::mem::take(&mut main.problems.list);
    attribute_to_env(&mut errors, &main);
    errors.append(&mut site_problems);
    errors.append(&mut profile_problems);
    errors.append(&mut file_problems);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    let endpoints: Option<Vec<EndpointConfig>> =
        main.endpoints.into_iter().map(|(_, e)| e).collect();
    let mqtt: Option<Vec<MqttBroker>> = main.brokers.into_iter().map(|(_, b)| b).collect();
    let (
        Some(endpoints),
        Some(mqtt),
        Some(output),
        Some(simulator),
        Some(spool),
        Some(validation),
        Some(aggregation),
        Some(api),
        Some(dtu),
        Some(boiler),
    ) = (
        endpoints,
        mqtt,
        main.output,
        simulator,
        main.spool,
        main.validation,
        main.aggregation,
        main.api,
        main.dtu,
        main.boiler,
    )
    else {
        // Unreachable in practice: every `None` above comes with a recorded problem.
        return Err(ConfigErrors(vec![ConfigError {
            file: main.file,
            key: String::new(),
            message: "configuration incomplete".to_owned(),
        }]));
    };
    Ok(Config {
        source: main.file,
        gateway: main.gateway,
        output,
        endpoints,
        dtu,
        sites,
        meters,
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
