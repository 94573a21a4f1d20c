//! Configuration loading: the shipped example, the error messages users see
//! (asserted as exact strings, they are part of the interface), environment
//! overrides and the built-in profiles.
//!
//! Paths are relative: cargo runs integration tests from the package root.

use std::path::Path;
use std::time::Duration;

use emgate::config::{
    self, AggregationSettings, Config, ConfigError, ElectricityMethod, InfluxApi, OutputConfig,
    SimFault, from_parts, load_str_for_tests, load_with_env,
};
use emgate::model::{EnergyType, Level, MeterId};
use emgate::pipeline::coefficients::CoefficientTable;
use emgate::pipeline::window::WindowSize;
use emgate::profiles::load::{builtin, load_profile};
use emgate::profiles::{ByteOrder, DataType, PointKind, RatioScaling, RegisterKind};

/// Every error of `result` as displayed to the user.
fn errors(result: Result<Config, config::ConfigErrors>) -> Vec<String> {
    match result {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn meter_named(c: &Config, id: &str) -> MeterId {
    let i = c
        .meters
        .iter()
        .position(|m| m.id == id)
        .expect("meter exists");
    MeterId(u32::try_from(i).expect("small"))
}

// ---------------------------------------------------------------------------
// The example configuration

#[test]
fn example_config_loads_with_every_profile() {
    let c = load_with_env(Path::new("config/emgate.toml"), &[])
        .unwrap_or_else(|e| panic!("example must load:\n{e}"));
    assert_eq!(c.source, Path::new("config/emgate.toml"));
    assert_eq!(c.gateway.id, "gw-demo-01");
    assert_eq!(c.gateway.timezone_name, "Asia/Shanghai");
    assert_eq!(c.gateway.data_dir, Path::new("data"));
    assert_eq!(c.sites.len(), 2);
    assert_eq!(c.meters.len(), 15);
    assert_eq!(c.endpoints.len(), 3);

    // Profiles are interned in order of first use (fz01 first, then xm02).
    let used: Vec<&str> = c.profiles.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        used,
        [
            "acrel_dtsd1352",
            "eastron_sdm630",
            "generic_3phase_meter",
            "steam_flow_computer",
            "gas_flow_computer",
            "water_meter",
            "flue_gas_analyzer",
            "heat_meter",
            "belt_scale",
            "dlt645_3phase",
        ]
    );
    let mut sorted = used.clone();
    sorted.sort_unstable();
    let shipped: Vec<&str> = builtin().iter().map(|(id, _)| *id).collect();
    assert_eq!(sorted, shipped, "the example uses every shipped profile");

    assert_eq!(
        c.output,
        OutputConfig::File(config::FileSinkConfig {
            path: "data/lines.lp".into(),
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
        })
    );
    let ep = &c.endpoints[1];
    assert_eq!(
        (
            ep.id.as_str(),
            ep.tcp_address().expect("tcp").0,
            ep.tcp_address().expect("tcp").1
        ),
        ("xm02-gw", "127.0.0.1", 15021)
    );
    assert_eq!(ep.timeout, Duration::from_secs(1));
    assert_eq!(ep.connect_timeout, Duration::from_secs(3));
    assert_eq!((ep.max_gap, ep.max_registers), (10, 125));
    assert_eq!(ep.inter_request_delay, Duration::ZERO);

    // A meter resolves to its site, profile and endpoint.
    let m = meter_named(&c, "xm02-cold-store");
    let meter = c.meter(m);
    assert_eq!(meter.energy, EnergyType::Electricity);
    assert_eq!(meter.level, Level(2));
    let (endpoint, unit_id) = meter.modbus().expect("a Modbus meter");
    assert_eq!(unit_id, 2);
    assert_eq!((meter.pt, meter.ct), (1.0, 60.0));
    assert_eq!(meter.poll_interval, Duration::from_mins(1));
    assert_eq!(c.site_of(m).id, "xm02");
    assert_eq!(c.site_of(m).file, Path::new("config/sites/xm02.toml"));
    assert_eq!(c.profile_of(m).id, "acrel_dtsd1352");
    assert!(c.profile_of(m).uses_ratios);
    assert_eq!(c.endpoints[endpoint.index()].id, "xm02-gw");
    let on_xm02: Vec<&str> = c.meters_on(endpoint).map(|(_, m)| m.id.as_str()).collect();
    assert_eq!(
        on_xm02,
        [
            "xm02-main-incomer",
            "xm02-cold-store",
            "xm02-heat-supply",
            "xm02-water-main",
            "xm02-boiler-coal"
        ]
    );

    // Meters without PT/CT get ratio 1; defaults apply.
    let spinning = c.meter(meter_named(&c, "fz01-spinning"));
    assert_eq!((spinning.pt, spinning.ct), (1.0, 1.0));
    assert_eq!(c.meter(meter_named(&c, "fz01-main-incomer")).pt, 100.0);
    assert_eq!(
        c.meter(meter_named(&c, "fz01-water-main")).poll_interval,
        Duration::from_mins(5)
    );
    assert_eq!(c.simulator.time_step, Duration::from_secs(1));
    assert!(c.simulator.faults.is_empty());
}

// ---------------------------------------------------------------------------
// Every error at once

#[test]
fn bad_tree_reports_all_four_errors_at_once() {
    let got = errors(load_with_env(
        Path::new("tests/fixtures/config/bad/emgate.toml"),
        &[],
    ));
    assert_eq!(
        got,
        [
            "tests/fixtures/config/bad/sites/a.toml: meters[0].poll_intervl_secs: unknown key; did you mean \"poll_interval_secs\"?",
            "tests/fixtures/config/bad/sites/b.toml: meters[0].id: duplicate meter id \"m1\"; already used at tests/fixtures/config/bad/sites/a.toml: meters[0].id",
            "tests/fixtures/config/bad/sites/b.toml: meters[1].profile: unknown profile \"sdm360\"; known: acrel_like, simple",
            "tests/fixtures/config/bad/profiles/acrel_like.toml: points[1].address: 70000 is beyond 65535",
        ]
    );
}

#[test]
fn errors_carry_file_key_and_message_separately() {
    let Err(e) = load_with_env(Path::new("tests/fixtures/config/bad/emgate.toml"), &[]) else {
        panic!("must fail");
    };
    assert_eq!(
        e.0[3],
        ConfigError {
            file: "tests/fixtures/config/bad/profiles/acrel_like.toml".into(),
            key: "points[1].address".to_owned(),
            message: "70000 is beyond 65535".to_owned(),
        }
    );
}

// ---------------------------------------------------------------------------
// Environment overrides

#[test]
fn env_overrides_supply_the_token_and_parse_numbers() {
    let c = load_with_env(
        Path::new("tests/fixtures/config/env/emgate.toml"),
        &env(&[
            ("EMGATE__INFLUXDB__TOKEN", "s3cr3t-t0ken"),
            ("EMGATE__INFLUXDB__BATCH_SIZE", "100"),
            ("EMGATE__INFLUXDB__GZIP", "false"),
            ("emgate__gateway__id", "gw-env"),
            ("PATH", "/usr/bin"),
            ("EMGATE_NOT_OURS", "x"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.gateway.id, "gw-env");
    let OutputConfig::Influx(influx) = &c.output else {
        panic!("influx output expected");
    };
    assert_eq!(
        influx.url, "http://127.0.0.1:8086",
        "trailing slash trimmed"
    );
    assert_eq!(influx.batch_size, 100);
    assert!(!influx.gzip);
    assert_eq!(influx.gzip_level, 1, "the measured default");
    assert_eq!(influx.flush_interval, Duration::from_secs(1));
    assert_eq!(influx.timeout, Duration::from_secs(10));
    assert_eq!(influx.max_lines_per_sec, None);
    assert_eq!(influx.dead_letter, Path::new("data/dead-letter.lp"));
    assert_eq!(influx.retry_initial, Duration::from_millis(500));
    assert_eq!(influx.retry_max, Duration::from_secs(30));
    let InfluxApi::V2 { org, bucket, token } = &influx.api else {
        panic!("v2 expected");
    };
    assert_eq!((org.as_str(), bucket.as_str()), ("energy", "emgate"));
    assert_eq!(token.expose(), "s3cr3t-t0ken");

    // The secret never shows in Debug output, of the token or the whole config.
    assert_eq!(format!("{token:?}"), "***");
    assert_eq!(format!("{token}"), "***");
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("token: ***"), "{debug}");
}

#[test]
fn missing_token_says_where_to_put_it() {
    let got = errors(load_with_env(
        Path::new("tests/fixtures/config/env/emgate.toml"),
        &env(&[("EMGATE__INFLUXDB__TOKEN", "")]),
    ));
    assert_eq!(
        got,
        [
            "tests/fixtures/config/env/emgate.toml: influxdb.token: missing required key; give the API token, preferably through the environment as EMGATE__INFLUXDB__TOKEN"
        ]
    );
}

#[test]
fn env_problems_are_reported_against_env() {
    let got = errors(load_with_env(
        Path::new("tests/fixtures/config/env/emgate.toml"),
        &env(&[
            ("EMGATE__INFLUXDB__TOKN", "s3cr3t"),
            ("EMGATE__INFLUXDB__BATCH_SIZE", "lots"),
            ("EMGATE__INFLUXDB__FLUSH_INTERVAL_MS", "0"),
        ]),
    ));
    assert_eq!(
        got,
        [
            "<env>: influxdb.tokn: unknown key; did you mean \"token\"? (set by EMGATE__INFLUXDB__TOKN)",
            "<env>: influxdb.batch_size: invalid value: string \"lots\", expected an integer (set by EMGATE__INFLUXDB__BATCH_SIZE)",
            "tests/fixtures/config/env/emgate.toml: influxdb.token: missing required key; give the API token, preferably through the environment as EMGATE__INFLUXDB__TOKEN",
            "<env>: influxdb.flush_interval_ms: 0 is too small; the minimum is 1 (set by EMGATE__INFLUXDB__FLUSH_INTERVAL_MS)",
        ]
    );
}

// ---------------------------------------------------------------------------
// Main-file messages

#[test]
fn main_file_messages() {
    let got = errors(load_str_for_tests(
        r#"
[gatway]
id = "x"

[gateway]
id = "gw 1"
timezone = "Asia/Shangai"

[influxdb]
url = "127.0.0.1:8086"
api = "v1"
org = "energy"
batch_size = 0
retry_initial_ms = 5000
retry_max_ms = 1000

[file_sink]

[[endpoints]]
id = "plc1"
host = "10.0.0.5"
max_registers = 126

[[endpoints]]
id = "plc1"
host = ""
port = 70000
"#,
    ));
    assert_eq!(
        got,
        [
            "emgate.toml: gatway: unknown key; did you mean \"gateway\"?",
            "emgate.toml: gateway.id: \"gw 1\" is not a valid gateway id; use ASCII letters, digits, \"_\", \"-\" and \".\"",
            "emgate.toml: gateway.timezone: unknown time zone \"Asia/Shangai\"; did you mean \"Asia/Shanghai\"?",
            "emgate.toml: influxdb.url: \"127.0.0.1:8086\" is not an http(s) URL; give the server's base URL, e.g. \"http://127.0.0.1:8086\"",
            "emgate.toml: influxdb.org: only used with api = \"v2\"; remove it or set api = \"v2\"",
            "emgate.toml: influxdb.database: missing required key; give the database name (api = \"v1\")",
            "emgate.toml: influxdb.batch_size: 0 is too small; the minimum is 1",
            "emgate.toml: influxdb.retry_max_ms: 1000 is below retry_initial_ms (5000); the cap must be at least the first delay",
            "emgate.toml: file_sink: cannot be used together with [influxdb]; remove one of the two sections",
            "emgate.toml: endpoints[0].max_registers: 126 is too large; the maximum is 125",
            "emgate.toml: endpoints[1].id: duplicate endpoint id \"plc1\"; already used by endpoints[0]",
            "emgate.toml: endpoints[1].host: is empty; give the host name or IP address of the Modbus TCP server",
            "emgate.toml: endpoints[1].port: 70000 is too large; the maximum is 65535",
        ]
    );
}

#[test]
fn gzip_level_is_1_to_9_and_only_with_gzip() {
    let main = |influx_extra: &str| {
        format!(
            "[gateway]\nid = \"gw1\"\n\n[influxdb]\nurl = \"http://127.0.0.1:8086\"\napi = \"v1\"\ndatabase = \"energy\"\n{influx_extra}\n"
        )
    };
    for (extra, want) in [
        ("gzip_level = 9", 9),
        ("gzip = true\ngzip_level = 3", 3),
        ("", 1),
    ] {
        let c = load_str_for_tests(&main(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
        let OutputConfig::Influx(influx) = &c.output else {
            panic!("influx output expected");
        };
        assert!(influx.gzip, "{extra}");
        assert_eq!(influx.gzip_level, want, "{extra}");
    }
    for (extra, want) in [
        (
            "gzip_level = 0",
            "emgate.toml: influxdb.gzip_level: 0 is not a gzip level; give 1 (fastest, the default) to 9 (smallest bodies)",
        ),
        (
            "gzip_level = 10",
            "emgate.toml: influxdb.gzip_level: 10 is not a gzip level; give 1 (fastest, the default) to 9 (smallest bodies)",
        ),
        (
            "gzip = false\ngzip_level = 6",
            "emgate.toml: influxdb.gzip_level: only used with gzip = true; remove it or set gzip = true",
        ),
    ] {
        assert_eq!(errors(load_str_for_tests(&main(extra))), [want], "{extra}");
    }
}

#[test]
fn v2_keys_with_v1_and_missing_gateway() {
    let got = errors(load_str_for_tests(
        r#"
[influxdb]
url = "https://influx.example.com"
bucket = "b"
database = "d"
"#,
    ));
    assert_eq!(
        got,
        [
            "emgate.toml: gateway: missing required section; add a [gateway] table with at least `id`",
            "emgate.toml: influxdb.database: only used with api = \"v1\"; remove it or set api = \"v1\"",
            "emgate.toml: influxdb.org: missing required key; give the organisation name (api = \"v2\")",
            "emgate.toml: influxdb.token: missing required key; give the API token, preferably through the environment as EMGATE__INFLUXDB__TOKEN",
        ]
    );
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let got = errors(load_str_for_tests("[gateway]\nid = \"gw\nx = 1\n"));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("emgate.toml: invalid toml at line 2, column "),
        "{}",
        got[0]
    );
}

#[test]
fn a_gateway_without_meters_is_valid() {
    let c = load_str_for_tests("[gateway]\nid = \"gw\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.meters.is_empty());
    assert!(c.profiles.is_empty());
    assert_eq!(c.gateway.timezone_name, "Asia/Shanghai");
    assert_eq!(
        c.output,
        OutputConfig::File(config::FileSinkConfig {
            path: "data/lines.lp".into(),
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
        })
    );
}

#[test]
fn missing_directories_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("emgate.toml");
    std::fs::write(&main, "[gateway]\nid = \"gw\"\nsites_dir = \"nowhere\"\n").expect("write");
    let Err(e) = load_with_env(&main, &[]) else {
        panic!("must fail");
    };
    let msgs: Vec<(&str, &str)> =
        e.0.iter()
            .map(|e| (e.key.as_str(), e.message.as_str()))
            .collect();
    let sites = format!(
        "directory \"{}\" does not exist; create it or change `sites_dir`",
        dir.path().join("nowhere").display()
    );
    let profiles = format!(
        "directory \"{}\" does not exist; create it or change `profiles_dir`",
        dir.path().join("profiles").display()
    );
    assert_eq!(
        msgs,
        [
            ("gateway.sites_dir", sites.as_str()),
            ("gateway.profiles_dir", profiles.as_str())
        ]
    );

    let missing = errors(load_with_env(&dir.path().join("absent.toml"), &[]));
    assert_eq!(
        missing,
        [format!(
            "{}: cannot read the configuration file: no such file or directory",
            dir.path().join("absent.toml").display()
        )]
    );
}

// ---------------------------------------------------------------------------
// Site-file messages (through from_parts, as `emgate demo` uses it)

const MAIN: &str = r#"
[gateway]
id = "gw"

[[endpoints]]
id = "plc1"
host = "127.0.0.1"

[[endpoints]]
id = "plc2"
host = "127.0.0.1"
"#;

#[test]
fn site_file_messages() {
    let a = r#"
[site]
id = "fz01"
name = "A"
timezone = "Asia/Fuzhou"

[[meters]]
id = "m1"
energy = "electricty"
level = 4
profile = "acrel_dtsd1352"
endpoint = "plc3"
unit_id = 0
ct = -5

[[meters]]
id = "m2"
energy = "water"
level = 1
profile = "eastron_sdm630"
endpoint = "plc1"
unit_id = 7
pt = 10

[[meters]]
id = "m3"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "plc1"
unit_id = 7
poll_interval_secs = 0
"#;
    let b = r#"
[site]
id = "fz01"

[[meters]]
id = "m4"
energy = "water"
level = 1
profile = "acrel_dtsd1352"
endpoint = "plc2"
unit_id = "seven"
pt = 10
"#;
    let got = errors(from_parts(MAIN, &[("a.toml", a), ("b.toml", b)], builtin()));
    assert_eq!(
        got,
        [
            "sites/a.toml: site.timezone: unknown time zone \"Asia/Fuzhou\"; use an IANA name such as \"Asia/Shanghai\"",
            "sites/a.toml: meters[0].energy: unknown energy type \"electricty\"; did you mean \"electricity\"?",
            "sites/a.toml: meters[0].level: 4 is not a metering level; use 1 (enterprise boundary), 2 (main sub-unit) or 3 (main equipment)",
            "sites/a.toml: meters[0].endpoint: unknown endpoint \"plc3\"; did you mean \"plc1\"?",
            "sites/a.toml: meters[0].unit_id: 0 is out of range; Modbus unit ids are 1..=247",
            "sites/a.toml: meters[0].ct: -5 is not a valid ratio; use a positive number (1 when there is no transformer)",
            "sites/a.toml: meters[0].pt: missing; profile \"acrel_dtsd1352\" scales values by PT, so give the voltage-transformer ratio (1 when there is no PT)",
            "sites/a.toml: meters[1].pt: profile \"eastron_sdm630\" does not scale by PT/CT; remove this key",
            "sites/a.toml: meters[2].poll_interval_secs: 0 is too small; the minimum is 1",
            "sites/a.toml: meters[2].unit_id: unit 7 on endpoint \"plc1\" is already used by meter \"m2\" (sites/a.toml: meters[1].id); each device needs its own unit id",
            "sites/b.toml: site.id: duplicate site id \"fz01\"; already used in sites/a.toml",
            "sites/b.toml: site.name: missing required key; give the enterprise's name (free text)",
            "sites/b.toml: meters[0].unit_id: invalid value: string \"seven\", expected an integer",
            "sites/b.toml: meters[0].ct: missing; profile \"acrel_dtsd1352\" scales values by CT, so give the current-transformer ratio (e.g. 40 for a 200/5 A CT, 1 when there is none)",
        ]
    );
}

#[test]
fn simulator_faults_resolve_meters() {
    let main = format!(
        "{MAIN}\n[simulator]\ntime_step_ms = 250\nfaults = [\n  {{ meter = \"w1\", fault = \"counter_reset\" }},\n  {{ meter = \"w1\", fault = \"no_response\" }},\n]\n"
    );
    let site = r#"
[site]
id = "s"
name = "S"

[[meters]]
id = "w0"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "plc1"
unit_id = 1

[[meters]]
id = "w1"
energy = "water"
level = 2
profile = "water_meter"
endpoint = "plc2"
unit_id = 1
"#;
    let c = from_parts(&main, &[("s.toml", site)], builtin()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.simulator.time_step, Duration::from_millis(250));
    assert_eq!(
        c.simulator.faults,
        [
            (MeterId(1), SimFault::CounterReset),
            (MeterId(1), SimFault::NoResponse)
        ]
    );
    // Only the used profile is kept, and both meters share it.
    assert_eq!(c.profiles.len(), 1);
    assert_eq!(c.meters[0].profile, c.meters[1].profile);
    assert_eq!(c.sites[0].file, Path::new("sites/s.toml"));

    let bad = format!(
        "{MAIN}\n[simulator]\nfaults = [{{ meter = \"w2\", fault = \"timeout\" }}, {{ metre = \"w1\" }}]\n"
    );
    let got = errors(from_parts(&bad, &[("s.toml", site)], builtin()));
    assert_eq!(
        got,
        [
            "emgate.toml: simulator.faults[0].meter: unknown meter \"w2\"; did you mean \"w0\"?",
            "emgate.toml: simulator.faults[0].fault: unknown fault \"timeout\"; expected one of: no_response, exception, sentinel, counter_reset, frozen, spike",
            "emgate.toml: simulator.faults[1].metre: unknown key; did you mean \"meter\"?",
            "emgate.toml: simulator.faults[1].meter: missing required key; give the id of the meter to disturb",
            "emgate.toml: simulator.faults[1].fault: missing required key; use one of: no_response, exception, sentinel, counter_reset, frozen, spike",
        ]
    );
}

// ---------------------------------------------------------------------------
// Profiles

#[test]
fn profile_messages() {
    let text = r#"
description = "test"
colour = "red"

[[points]]
name = "State"
register = "holding"
address = 400010
type = "bool"
unit = "kWh"

[[points]]
name = "q"
register = "coil"
address = 65535
type = "u32"
unit = "x"

[[points]]
name = "energy_kwh"
register = "input"
address = 65533
type = "f64"
order = "cdab"
kind = "gauge"
unit = "kwh"
rollover = 1000
ratio = "pt"
min = 10
max = 1

[[points]]
name = "energy_kwh"
register = "input"
address = 0
type = "u16"
scale = 0
unit = "kwh"
sentinels = [65535, nan]
"#;
    let Err(errs) = load_profile("test", Path::new("profiles/test.toml"), text) else {
        panic!("must fail");
    };
    let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "profiles/test.toml: colour: unknown key; expected one of: description, consumption, pressure, temperature, steam_state, steam_dryness, points, protocol",
            "profiles/test.toml: points[0].name: \"State\" is not a valid field name; use lowercase letters, digits and \"_\", starting with a letter, as <quantity>_<unit> (e.g. \"import_kwh\")",
            "profiles/test.toml: points[0].type: \"bool\" is only for coil and discrete registers; use a numeric type such as \"u16\" for register \"holding\"",
            "profiles/test.toml: points[0].address: 400010 is beyond 65535; 400010 looks like a 1-based register number, whose 0-based address is 9",
            "profiles/test.toml: points[0].unit: \"kWh\" is not a valid unit; use lowercase letters, digits and \"_\" (e.g. \"kwh\", \"m3h\", \"mpa\", \"c\")",
            "profiles/test.toml: points[1].name: \"q\" is reserved for the reading's own fields (q, q_detail, lag_ms); choose another name",
            "profiles/test.toml: points[1].type: register \"coil\" holds single bits; use type = \"bool\"",
            "profiles/test.toml: points[1].address: a u32 at 65535 spans 2 registers and ends at 65536, beyond 65535",
            "profiles/test.toml: points[2].address: a f64 at 65533 spans 4 registers and ends at 65536, beyond 65535",
            "profiles/test.toml: points[2].max: 1 is below min (10); the plausible range must have min <= max",
            "profiles/test.toml: points[2].rollover: only counters roll over; remove it or set kind = \"counter\"",
            "profiles/test.toml: points[2].rollover: cannot be combined with ratio = \"pt\": the wrap value would depend on each meter's PT/CT; leave it out",
            "profiles/test.toml: points[3].scale: 0 would make every value 0; use a non-zero multiplier (1 when the register holds the value itself)",
            "profiles/test.toml: points[3].sentinels[1]: NaN is always treated as \"no value\"; list only finite raw values",
        ]
    );
}

#[test]
fn a_profile_point_decodes_as_declared() {
    let text = r#"
description = "one point"

[[points]]
name = "mass_t"
register = "holding"
address = 8
type = "f32"
order = "cdab"
scale = 0.5
offset = 1
ratio = "ct"
kind = "counter"
unit = "t"
sentinels = [0, 99999]
min = 0
max = 1e6
"#;
    let p = load_profile("one", Path::new("one.toml"), text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(p.id, "one");
    assert!(p.uses_ratios);
    let pt = &p.points[0];
    assert_eq!(pt.register, RegisterKind::Holding);
    assert_eq!(pt.address, 8);
    assert_eq!(pt.data_type, DataType::F32);
    assert_eq!(pt.order, ByteOrder::Cdab);
    assert_eq!((pt.scale, pt.offset), (0.5, 1.0));
    assert_eq!(pt.ratio, RatioScaling::Ct);
    assert_eq!(pt.kind, PointKind::Counter);
    assert_eq!(pt.sentinels, [0.0, 99999.0]);
    assert_eq!((pt.min, pt.max, pt.rollover), (Some(0.0), Some(1e6), None));
}

#[test]
fn every_builtin_profile_parses_and_matches_the_file_on_disk() {
    let mut on_disk: Vec<String> = std::fs::read_dir("config/profiles")
        .expect("config/profiles exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let ids: Vec<&str> = builtin().iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids, on_disk,
        "builtin() lists every file in config/profiles, sorted"
    );

    for (id, text) in builtin() {
        let path = format!("config/profiles/{id}.toml");
        let disk = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(*text, disk, "{path} differs from the compiled-in copy");
        let p = load_profile(id, Path::new(&path), text).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert!(!p.points.is_empty(), "{id}");
        // Every meter model counts something, except the flue-gas analyzer
        // (a boiler's O₂, CO and exhaust: it adds to no total).
        assert!(
            p.points.iter().any(|x| x.kind == PointKind::Counter) == (*id != "flue_gas_analyzer"),
            "{id} has a counter"
        );
        for x in &p.points {
            assert!(
                x.min.is_some() || x.max.is_some(),
                "{id}.{}: plausible range",
                x.name
            );
        }
    }
}

#[test]
fn shipped_maps_follow_the_reference_addresses() {
    let get = |id: &str| {
        let (_, text) = builtin().iter().find(|(i, _)| *i == id).expect("shipped");
        load_profile(id, Path::new(id), text).expect("valid")
    };
    let sdm = get("eastron_sdm630");
    let at = |p: &emgate::profiles::Profile, name: &str| {
        let i = p.point_index(name).unwrap_or_else(|| panic!("{name}"));
        (
            p.points[i].register,
            p.points[i].address,
            p.points[i].data_type,
        )
    };
    assert_eq!(
        at(&sdm, "import_kwh"),
        (RegisterKind::Input, 0x0048, DataType::F32)
    );
    assert_eq!(
        at(&sdm, "export_kwh"),
        (RegisterKind::Input, 0x004A, DataType::F32)
    );
    assert_eq!(
        at(&sdm, "power_kw"),
        (RegisterKind::Input, 0x0034, DataType::F32)
    );
    assert_eq!(
        at(&sdm, "frequency_hz"),
        (RegisterKind::Input, 0x0046, DataType::F32)
    );
    assert!(!sdm.uses_ratios);

    let acrel = get("acrel_dtsd1352");
    assert_eq!(
        at(&acrel, "import_kwh"),
        (RegisterKind::Holding, 0x000A, DataType::U32)
    );
    assert_eq!(
        at(&acrel, "power_kw"),
        (RegisterKind::Holding, 0x016A, DataType::I32)
    );
    assert_eq!(
        at(&acrel, "frequency_hz"),
        (RegisterKind::Holding, 0x0077, DataType::U16)
    );
    let import = &acrel.points[acrel.point_index("import_kwh").expect("point")];
    assert_eq!((import.scale, import.ratio), (0.01, RatioScaling::PtCt));
    assert!(acrel.uses_ratios);
}

/// The example's commented-out alternatives must be valid once uncommented:
/// `occurrence` picks which `# [section]` block (0-based) to enable.
fn uncomment(text: &str, header: &str, occurrence: usize) -> String {
    let mut out = Vec::new();
    let mut seen = 0;
    let mut inside = false;
    for line in text.lines() {
        if line == format!("# {header}") {
            inside = seen == occurrence;
            seen += 1;
        } else if !line.starts_with('#') {
            inside = false;
        }
        if inside {
            out.push(line.strip_prefix("# ").unwrap_or(line).to_owned());
        } else {
            out.push(line.to_owned());
        }
    }
    out.join("\n")
}

fn example_sites() -> Vec<(String, String)> {
    ["fz01.toml", "xm02.toml"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(format!("config/sites/{n}")).expect("site file");
            ((*n).to_owned(), text)
        })
        .collect()
}

#[test]
fn example_alternatives_are_valid_when_uncommented() {
    let main = std::fs::read_to_string("config/emgate.toml").expect("example");
    let sites = example_sites();
    let sites: Vec<(&str, &str)> = sites
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();

    let file_sink = uncomment(&main, "[file_sink]", 0);
    let c = from_parts(&file_sink, &sites, builtin()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(c.output, OutputConfig::File(_)));

    // v2: everything but the token, which belongs in the environment.
    let v2 = uncomment(&main, "[influxdb]", 0);
    assert_eq!(
        errors(from_parts(&v2, &sites, builtin())),
        [
            "emgate.toml: influxdb.token: missing required key; give the API token, preferably through the environment as EMGATE__INFLUXDB__TOKEN"
        ]
    );

    let v1 = uncomment(&main, "[influxdb]", 1);
    let c = from_parts(&v1, &sites, builtin()).unwrap_or_else(|e| panic!("{e}"));
    let OutputConfig::Influx(influx) = c.output else {
        panic!("influx output expected");
    };
    assert_eq!(
        influx.api,
        InfluxApi::V1 {
            database: "emgate".to_owned(),
            retention_policy: Some("autogen".to_owned()),
            username: Some("emgate".to_owned()),
            password: emgate::config::Secret::default(),
        }
    );
}

// ---------------------------------------------------------------------------
// [aggregation]

const MINIMAL: &str = "[gateway]\nid = \"gw\"\n";

#[test]
fn aggregation_defaults() {
    let c = load_str_for_tests(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    let a = &c.aggregation;
    assert_eq!(
        a.aggregator.windows,
        [
            WindowSize::Min15,
            WindowSize::Hour,
            WindowSize::Day,
            WindowSize::Month
        ]
    );
    assert_eq!(a.aggregator.allowed_lateness_secs, 120);
    assert_eq!(a.aggregator.max_reorder_readings, 16);
    assert_eq!(a.aggregator.max_gap_secs, 900);
    assert!(a.gauge_stats);
    assert_eq!(a.coefficients.edition, "GB/T 2589-2008");
    assert_eq!(a.electricity, ElectricityMethod::Equivalent);
    assert_eq!(a.steam_reference_kj_per_kg, 84.0);
    assert_eq!(*a, AggregationSettings::default());
    // The example writes the defaults out.
    let example =
        load_with_env(Path::new("config/emgate.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(example.aggregation, AggregationSettings::default());
}

#[test]
fn aggregation_values() {
    let c = load_str_for_tests(&format!(
        "{MINIMAL}\n[aggregation]\nwindows = [\"1mo\", \"15m\", \"1m\"]\nallowed_lateness_secs = 0\nmax_reorder_readings = 1024\nmax_gap_secs = 60\ngauge_stats = false\ncoefficients = \"config/coefficients/gbt2589-2008.toml\"\nsteam_reference_kj_per_kg = 419.1\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let a = &c.aggregation;
    assert_eq!(
        a.aggregator.windows,
        [WindowSize::Month, WindowSize::Min15, WindowSize::Min1]
    );
    assert_eq!(
        (
            a.aggregator.allowed_lateness_secs,
            a.aggregator.max_reorder_readings,
            a.aggregator.max_gap_secs
        ),
        (0, 1024, 60)
    );
    assert!(!a.gauge_stats);
    assert_eq!(a.coefficients, CoefficientTable::builtin_2008());
    assert_eq!(a.steam_reference_kj_per_kg, 419.1);
}

#[test]
fn aggregation_messages() {
    let got = errors(load_str_for_tests(&format!(
        "{MINIMAL}\n[aggregation]\nwindows = [\"15m\", \"2h\", \"15m\", 5]\nallowed_lateness_secs = -1\nmax_reorder_readings = 2000\nmax_gap_secs = 0\nelectricity = \"equal\"\nsteam_reference = 84\nsteam_reference_kj_per_kg = -1\n"
    )));
    assert_eq!(
        got,
        [
            "emgate.toml: aggregation.steam_reference: unknown key; did you mean \"steam_reference_kj_per_kg\"?",
            "emgate.toml: aggregation.windows[3]: expected a window tag such as \"15m\", found an integer",
            "emgate.toml: aggregation.windows[1]: unknown window \"2h\"; valid: 1m, 5m, 15m, 30m, 1h, 1d, 1mo",
            "emgate.toml: aggregation.windows[2]: \"15m\" is listed twice",
            "emgate.toml: aggregation.allowed_lateness_secs: -1 is too small; the minimum is 0",
            "emgate.toml: aggregation.max_reorder_readings: 2000 is too large; the maximum is 1024",
            "emgate.toml: aggregation.max_gap_secs: 0 is too small; the minimum is 1",
            "emgate.toml: aggregation.electricity: unknown electricity method \"equal\"; did you mean \"equal_value\"?",
            "emgate.toml: aggregation.steam_reference_kj_per_kg: -1 is not a reference enthalpy; give the enthalpy of the feed water or condensate in kJ/kg, 0 to 2000 (make-up water at 20 °C: 84.0)",
        ]
    );
    let got = errors(load_str_for_tests(&format!(
        "{MINIMAL}\n[aggregation]\nwindows = []\nelectricity = \"equal_value\"\n"
    )));
    assert_eq!(
        got,
        [
            "emgate.toml: aggregation.equal_value_kgce_per_kwh: missing; with electricity = \"equal_value\" give the kgce per kWh of each year, e.g. \"2025\" = 0.2953",
        ]
    );
    let got = errors(load_str_for_tests(&format!(
        "{MINIMAL}\n[aggregation]\nelectricity = \"equal_value\"\n[aggregation.equal_value_kgce_per_kwh]\nabc = 0.3\n\"2025\" = -0.3\n\"2026\" = \"x\"\n"
    )));
    assert_eq!(
        got,
        [
            "emgate.toml: aggregation.equal_value_kgce_per_kwh.2025: -0.3 is not a valid rate; give kgce per kWh, above 0",
            "emgate.toml: aggregation.equal_value_kgce_per_kwh.2026: expected kgce per kWh (a number), found a string",
            "emgate.toml: aggregation.equal_value_kgce_per_kwh.abc: \"abc\" is not a year; use keys such as \"2025\"",
        ]
    );
    let got = errors(load_str_for_tests(&format!(
        "{MINIMAL}\n[aggregation]\n[aggregation.equal_value_kgce_per_kwh]\n\"2025\" = 0.3\n"
    )));
    assert_eq!(
        got,
        [
            "emgate.toml: aggregation.equal_value_kgce_per_kwh: only used with electricity = \"equal_value\"; remove it or set electricity = \"equal_value\""
        ]
    );
}

#[test]
fn coefficient_tables_are_read_relative_to_the_main_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["sites", "profiles", "tables"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    let main = dir.path().join("emgate.toml");
    let table = "edition = \"DB99/T 1-2030\"\n\n[[energy]]\nkey = \"raw_coal\"\nname = \"coal\"\nunit = \"kg\"\nkgce = 0.7\n";
    std::fs::write(dir.path().join("tables/local.toml"), table).expect("write");
    std::fs::write(
        dir.path().join("tables/bad.toml"),
        "edition = \"x\"\n\n[[energy]]\nkey = \"a\"\nname = \"a\"\nunit = \"kg\"\nkgce = 0\n\n[[energy]]\nkey = \"a\"\nname = \"a\"\nunit = \"kg\"\nkgce = 1\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("tables/broken.toml"), "edition = 5\n").expect("write");
    let with = |coefficients: &str| {
        std::fs::write(
            &main,
            format!("{MINIMAL}\n[aggregation]\ncoefficients = \"{coefficients}\"\n"),
        )
        .expect("write");
        load_with_env(&main, &[])
    };
    let c = with("tables/local.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.aggregation.coefficients.edition, "DB99/T 1-2030");
    assert_eq!(
        errors(with("gbt2589-2020")),
        [format!(
            "{}: aggregation.coefficients: cannot read \"{}\": no such file or directory; use \"gbt2589-2008\" (built in) or the path of a coefficient table, relative to this file",
            main.display(),
            dir.path().join("gbt2589-2020").display()
        )]
    );
    let bad = dir.path().join("tables/bad.toml");
    assert_eq!(
        errors(with("tables/bad.toml")),
        [
            format!(
                "{}: aggregation.coefficients: \"{}\": energy[0]: kgce 0 of \"a\" is not above 0",
                main.display(),
                bad.display()
            ),
            format!(
                "{}: aggregation.coefficients: \"{}\": energy[1]: key \"a\" appears twice",
                main.display(),
                bad.display()
            ),
        ]
    );
    let broken = errors(with("tables/broken.toml"));
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(
        broken[0].starts_with(&format!(
            "{}: aggregation.coefficients: \"{}\" is not a valid coefficient table: coefficient table: ",
            main.display(),
            dir.path().join("tables/broken.toml").display()
        )),
        "{broken:?}"
    );
}

#[test]
fn aggregation_env_overrides() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["sites", "profiles"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    let main = dir.path().join("emgate.toml");
    std::fs::write(&main, MINIMAL).expect("write");
    let c = load_with_env(
        &main,
        &env(&[
            ("EMGATE__AGGREGATION__ALLOWED_LATENESS_SECS", "300"),
            ("EMGATE__AGGREGATION__WINDOWS", "15m, 1d"),
            ("EMGATE__AGGREGATION__GAUGE_STATS", "false"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.aggregation.aggregator.allowed_lateness_secs, 300);
    assert_eq!(
        c.aggregation.aggregator.windows,
        [WindowSize::Min15, WindowSize::Day]
    );
    assert!(!c.aggregation.gauge_stats);
    assert_eq!(
        errors(load_with_env(
            &main,
            &env(&[("EMGATE__AGGREGATION__WINDOWS", "15m,2d")])
        )),
        [
            "<env>: aggregation.windows: unknown window \"2d\"; valid: 1m, 5m, 15m, 30m, 1h, 1d, 1mo (set by EMGATE__AGGREGATION__WINDOWS)"
        ]
    );
}

#[test]
fn level1_meters_of_one_energy_share_a_unit() {
    let site = r#"
[site]
id = "s1"
name = "S"

[[meters]]
id = "g1"
energy = "natural_gas"
level = 1
profile = "gas_flow_computer"
endpoint = "plc1"
unit_id = 1

[[meters]]
id = "g2"
energy = "natural_gas"
level = 1
profile = "water_meter"
endpoint = "plc1"
unit_id = 2

[[meters]]
id = "g3"
energy = "natural_gas"
level = 2
profile = "water_meter"
endpoint = "plc1"
unit_id = 3
"#;
    let got = errors(from_parts(MAIN, &[("s.toml", site)], builtin()));
    assert_eq!(
        got,
        [
            "sites/s.toml: meters[1].consumption: counts natural_gas in \"m3\" but level-1 meter \"g1\" of this site counts it in \"nm3\"; the site total adds them, so choose counters in one unit"
        ]
    );
}

// ---------------------------------------------------------------------------
// [[mqtt]] and MQTT meters

const MQTT_MAIN: &str = r#"
[gateway]
id = "gw"

[[endpoints]]
id = "plc1"
host = "127.0.0.1"

[[mqtt]]
id = "plant"
host = "broker.local"
username = "u"
password = "p"
dead_letter_topic = "emgate/dead-letter"

[[mqtt.subscriptions]]
topic = "energy/{site}/{meter}/up"

[[mqtt.subscriptions]]
topic = "loggers/+/lp"
qos = 2
format = "line_protocol"
timestamp_unit = "ns"
fields = { ep = "import_kwh", "flow.rate" = "flow_m3h" }
scale = { import_kwh = 0.001 }

[[mqtt]]
id = "cloud"
host = "10.0.0.2"
port = 1884
client_id = "gw-cloud"
clean_session = true
keep_alive_secs = 60
protocol = "5"
max_payload_bytes = 1024
reconnect_initial_ms = 100
reconnect_max_ms = 1000

[[mqtt.subscriptions]]
topic = "batch/#"
qos = 0
timestamp = "receipt"
array = "/readings"
meter_field = "id"
fields = { "/data/ep" = "import_kwh", V = "voltage_l1_v" }
"#;

const MQTT_SITE: &str = r#"
[site]
id = "s1"
name = "S"

[[meters]]
id = "e1"
energy = "electricity"
level = 1
profile = "eastron_sdm630"
broker = "plant"
poll_interval_secs = 30

[[meters]]
id = "w1"
energy = "water"
level = 1
profile = "water_meter"
endpoint = "plc1"
unit_id = 1
"#;

#[test]
fn mqtt_brokers_and_meters_load_with_defaults() {
    use emgate::config::{
        MeterSource, MqttProtocol, MqttSubscription, PayloadFormat, TimeUnit, TimestampRule,
    };
    use emgate::model::{BrokerId, EndpointId};

    let c = from_parts(MQTT_MAIN, &[("s.toml", MQTT_SITE)], builtin())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mqtt.len(), 2);
    let plant = &c.mqtt[0];
    assert_eq!(plant.id, "plant");
    assert_eq!(plant.host, "broker.local");
    assert_eq!(plant.port, 1883);
    assert_eq!(plant.client_id, "emgate-gw-plant");
    assert!(!plant.clean_session);
    assert_eq!(plant.keep_alive, Duration::from_secs(30));
    assert_eq!(plant.protocol, MqttProtocol::V311);
    assert_eq!(plant.username.as_deref(), Some("u"));
    assert_eq!(plant.password.expose(), "p");
    assert_eq!(format!("{:?}", plant.password), "***");
    assert_eq!(plant.tls, None);
    assert_eq!(plant.max_payload_bytes, 65_536);
    assert_eq!(
        plant.dead_letter_topic.as_deref(),
        Some("emgate/dead-letter")
    );
    assert_eq!(plant.reconnect_initial, Duration::from_millis(500));
    assert_eq!(plant.reconnect_max, Duration::from_secs(30));
    assert_eq!(
        plant.subscriptions,
        [
            MqttSubscription {
                topic: "energy/{site}/{meter}/up".to_owned(),
                qos: 1,
                format: PayloadFormat::Json,
                timestamp: TimestampRule::Payload {
                    field: "ts".to_owned(),
                    unit: TimeUnit::Seconds
                },
                fields: vec![],
                scale: vec![],
                array: None,
                meter_field: None,
            },
            MqttSubscription {
                topic: "loggers/+/lp".to_owned(),
                qos: 2,
                format: PayloadFormat::LineProtocol,
                timestamp: TimestampRule::Payload {
                    field: "ts".to_owned(),
                    unit: TimeUnit::Nanos
                },
                fields: vec![
                    ("ep".to_owned(), "import_kwh".to_owned()),
                    ("flow.rate".to_owned(), "flow_m3h".to_owned())
                ],
                scale: vec![("import_kwh".to_owned(), 0.001)],
                array: None,
                meter_field: None,
            },
        ]
    );
    let cloud = &c.mqtt[1];
    assert_eq!(
        (
            cloud.port,
            cloud.client_id.as_str(),
            cloud.clean_session,
            cloud.keep_alive,
            cloud.protocol,
            cloud.username.as_deref(),
            cloud.password.is_empty(),
            cloud.max_payload_bytes,
            cloud.dead_letter_topic.as_deref(),
            cloud.reconnect_initial,
            cloud.reconnect_max,
        ),
        (
            1884,
            "gw-cloud",
            true,
            Duration::from_mins(1),
            MqttProtocol::V5,
            None,
            true,
            1024,
            None,
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
    );
    assert_eq!(
        cloud.subscriptions[0],
        MqttSubscription {
            topic: "batch/#".to_owned(),
            qos: 0,
            format: PayloadFormat::Json,
            timestamp: TimestampRule::Receipt,
            fields: vec![
                ("/data/ep".to_owned(), "import_kwh".to_owned()),
                ("V".to_owned(), "voltage_l1_v".to_owned())
            ],
            scale: vec![],
            array: Some("/readings".to_owned()),
            meter_field: Some("id".to_owned()),
        }
    );

    let e1 = meter_named(&c, "e1");
    assert_eq!(
        c.meter(e1).source,
        MeterSource::Mqtt {
            broker: BrokerId(0)
        }
    );
    assert_eq!(c.meter(e1).broker(), Some(BrokerId(0)));
    assert_eq!(c.meter(e1).modbus(), None);
    assert_eq!(c.meter(e1).poll_interval, Duration::from_secs(30));
    let w1 = meter_named(&c, "w1");
    assert_eq!(
        c.meter(w1).source,
        MeterSource::Modbus {
            endpoint: EndpointId(0),
            unit_id: 1
        }
    );
    assert_eq!(c.meters_on(EndpointId(0)).count(), 1);
}

#[test]
fn mqtt_messages() {
    let main = r#"
[gateway]
id = "gw"

[[endpoints]]
id = "plc1"
host = "127.0.0.1"

[[mqtt]]
id = "plant"
host = "h"
port = 0
keep_alive_secs = 4
protocol = "3"
password = "p"
max_payload_bytes = 8
dead_letter_topic = "dead/#"
reconnect_initial_ms = 1000
reconnect_max_ms = 10
tls = { ca_file = "no-such-ca.pem", client_cert = "c.pem" }
hots = "x"

[[mqtt.subscriptions]]
topic = "a/#/b"
qos = 3
format = "xml"

[[mqtt.subscriptions]]
topic = "x/{meter}/{meter}"
timestamp = "receipt"
timestamp_unit = "ms"

[[mqtt.subscriptions]]
topic = "x/{device}"
timestamp_unit = "minutes"

[[mqtt.subscriptions]]
topic = "x//y"
format = "csv"
timestamp_field = "t"
array = "/r"
meter_field = "m"

[[mqtt.subscriptions]]
topic = "plain/topic"

[[mqtt.subscriptions]]
topic = "lp/{meter}"
format = "line_protocol"
timestamp_unit = "rfc3339"
fields = { "/a" = "x", b = 5, c = "x" }
scale = { x = 0, y = "big" }

[[mqtt.subscriptions]]
topic = "j/{meter}"
meter_field = "id"
array = "readings"

[[mqtt.subscriptions]]
topic = "j/+"

[[mqtt]]
id = "plant"

[[mqtt]]
id = "empty"
host = "h"
subscriptions = []
"#;
    let site = r#"
[site]
id = "s1"
name = "S"

[[meters]]
id = "m1"
energy = "water"
level = 1
profile = "water_meter"
broker = "plnt"

[[meters]]
id = "m2"
energy = "water"
level = 1
profile = "water_meter"
broker = "plant"
endpoint = "plc1"

[[meters]]
id = "m3"
energy = "water"
level = 1
profile = "water_meter"

[[meters]]
id = "m4"
energy = "electricity"
level = 1
profile = "acrel_dtsd1352"
broker = "empty"
pt = 10
"#;
    let got = errors(from_parts(main, &[("s.toml", site)], builtin()));
    assert_eq!(
        got,
        [
            "emgate.toml: mqtt[0].hots: unknown key; did you mean \"host\"?",
            "emgate.toml: mqtt[0].tls.ca_file: cannot read \"no-such-ca.pem\": no such file; give the path of the CA certificate (PEM), relative to this file",
            "emgate.toml: mqtt[0].tls.client_cert: cannot read \"c.pem\": no such file; give the path of the client certificate (PEM), relative to this file",
            "emgate.toml: mqtt[0].tls.client_key: missing; client_cert is set, so give its private key (PEM) too",
            "emgate.toml: mqtt[0].port: 0 is too small; the minimum is 1",
            "emgate.toml: mqtt[0].keep_alive_secs: 4 is too small; the minimum is 5",
            "emgate.toml: mqtt[0].protocol: unknown protocol \"3\"; use \"3.1.1\" or \"5\"",
            "emgate.toml: mqtt[0].password: given without a username; add `username` or remove the password",
            "emgate.toml: mqtt[0].max_payload_bytes: 8 is too small; the minimum is 16",
            "emgate.toml: mqtt[0].dead_letter_topic: \"dead/#\" contains a wildcard; messages are published to it, so give a plain topic",
            "emgate.toml: mqtt[0].reconnect_max_ms: 10 is below reconnect_initial_ms (1000); the cap must be at least the first delay",
            "emgate.toml: mqtt[0].subscriptions[0].topic: \"a/#/b\": \"#\" must be the last level (it is level 2 of 3)",
            "emgate.toml: mqtt[0].subscriptions[0].qos: 3 is not an MQTT QoS; use 0 (at most once), 1 (at least once) or 2 (exactly once)",
            "emgate.toml: mqtt[0].subscriptions[0].format: unknown format \"xml\"; expected one of: json, line_protocol, csv",
            "emgate.toml: mqtt[0].subscriptions[1].topic: \"x/{meter}/{meter}\": \"{meter}\" appears twice",
            "emgate.toml: mqtt[0].subscriptions[1].timestamp_unit: only used with timestamp = \"payload\"; remove it or set timestamp = \"payload\"",
            "emgate.toml: mqtt[0].subscriptions[2].topic: \"x/{device}\": unknown placeholder \"{device}\"; use \"{site}\" or \"{meter}\" (or \"+\" for a level that names nothing)",
            "emgate.toml: mqtt[0].subscriptions[2].timestamp_unit: unknown timestamp unit \"minutes\"; expected one of: s, ms, ns, rfc3339",
            "emgate.toml: mqtt[0].subscriptions[3].topic: \"x//y\": level 2 is empty (\"//\", or a leading or trailing \"/\"); remove the extra \"/\"",
            "emgate.toml: mqtt[0].subscriptions[3].timestamp_field: only used with format = \"json\"; remove it",
            "emgate.toml: mqtt[0].subscriptions[3].array: only used with format = \"json\"; remove it",
            "emgate.toml: mqtt[0].subscriptions[3].meter_field: only used with format = \"json\"; remove it",
            "emgate.toml: mqtt[0].subscriptions[4].topic: \"plain/topic\" names no meter; put \"{meter}\" in the topic or set meter_field (the JSON key holding the meter id)",
            "emgate.toml: mqtt[0].subscriptions[5].timestamp_unit: line protocol time stamps are integers; use \"s\", \"ms\" or \"ns\"",
            "emgate.toml: mqtt[0].subscriptions[5].fields.\"/a\": JSON pointers are only used with format = \"json\"; give the field name",
            "emgate.toml: mqtt[0].subscriptions[5].fields.b: expected a point name (a string), found an integer",
            "emgate.toml: mqtt[0].subscriptions[5].scale.x: 0 is not a valid factor; use a finite number other than 0",
            "emgate.toml: mqtt[0].subscriptions[5].scale.y: expected a factor (a number), found a string",
            "emgate.toml: mqtt[0].subscriptions[6].array: \"readings\" is not a JSON pointer; use \"\" (the payload itself is an array) or a pointer such as \"/readings\"",
            "emgate.toml: mqtt[0].subscriptions[6].meter_field: the topic names the meter with \"{meter}\"; remove meter_field (or \"{meter}\" from the topic)",
            "emgate.toml: mqtt[0].subscriptions[7].topic: \"j/+\" names no meter; put \"{meter}\" in the topic or set meter_field (the JSON key holding the meter id)",
            "emgate.toml: mqtt[0].subscriptions[7].topic: has the same filter \"j/+\" as subscriptions[6], which matches first; this one would never be used",
            "emgate.toml: mqtt[1].id: duplicate broker id \"plant\"; already used by mqtt[0]",
            "emgate.toml: mqtt[1].host: missing required key; give the host name or IP address of the MQTT broker",
            "emgate.toml: mqtt[1].subscriptions: missing; add at least one [[mqtt.subscriptions]] with a `topic`",
            "emgate.toml: mqtt[2].subscriptions: is empty; add at least one [[mqtt.subscriptions]] with a `topic`",
            "sites/s.toml: meters[0].broker: unknown broker \"plnt\"; did you mean \"plant\"?",
            "sites/s.toml: meters[1].broker: cannot be used together with `endpoint` and `unit_id`; a Modbus meter has `endpoint` and `unit_id`, an MQTT meter only `broker`",
            "sites/s.toml: meters[2]: has no source; give `endpoint` and `unit_id` (a meter polled over Modbus) or `broker` (a meter that publishes over MQTT)",
            "sites/s.toml: meters[3].pt: only used for Modbus meters (an MQTT payload carries values in the point's unit; see `scale` of the subscription); remove this key",
        ]
    );
}

#[test]
fn mqtt_subscriptions_shadowed_and_fields_shared() {
    let main = r#"
[gateway]
id = "gw"

[[mqtt]]
id = "b"
host = "h"

[[mqtt.subscriptions]]
topic = "e/{meter}"
fields = { a = "import_kwh", b = "import_kwh" }

[[mqtt.subscriptions]]
topic = "e/+"
meter_field = "m"
"#;
    assert_eq!(
        errors(load_str_for_tests(main)),
        [
            "emgate.toml: mqtt[0].subscriptions[0].fields.b: maps to point \"import_kwh\" like key \"a\"; a point can come from one key only",
            "emgate.toml: mqtt[0].subscriptions[1].topic: has the same filter \"e/+\" as subscriptions[0], which matches first; this one would never be used",
        ]
    );
}

#[test]
fn mqtt_tls_paths_are_relative_to_the_main_file() {
    use emgate::config::MqttTls;
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["ca.pem", "client.pem", "client.key"] {
        std::fs::write(dir.path().join(name), "x").expect("write");
    }
    std::fs::create_dir(dir.path().join("sites")).expect("sites");
    std::fs::create_dir(dir.path().join("profiles")).expect("profiles");
    let main = dir.path().join("emgate.toml");
    let text = r#"
[gateway]
id = "gw"

[[mqtt]]
id = "b"
host = "h"
tls = { ca_file = "ca.pem", client_cert = "client.pem", client_key = "client.key" }

[[mqtt.subscriptions]]
topic = "e/{meter}"

[[mqtt]]
id = "c"
host = "h"
port = 8884
tls = { ca_file = "ca.pem" }

[[mqtt.subscriptions]]
topic = "e/{meter}"
"#;
    std::fs::write(&main, text).expect("write");
    let c = load_with_env(&main, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mqtt[0].port, 8883, "the TLS default");
    assert_eq!(
        c.mqtt[0].tls,
        Some(MqttTls {
            ca_file: dir.path().join("ca.pem"),
            client_cert: Some(dir.path().join("client.pem")),
            client_key: Some(dir.path().join("client.key")),
        })
    );
    assert_eq!(c.mqtt[1].port, 8884);
    assert_eq!(
        c.mqtt[1].tls,
        Some(MqttTls {
            ca_file: dir.path().join("ca.pem"),
            client_cert: None,
            client_key: None,
        })
    );
}

#[test]
fn example_mqtt_block_is_valid_when_uncommented() {
    use emgate::config::{MqttProtocol, PayloadFormat, TimeUnit, TimestampRule};
    let main = std::fs::read_to_string("config/emgate.toml").expect("example");
    let sites = example_sites();
    let sites: Vec<(&str, &str)> = sites
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let c = from_parts(&uncomment(&main, "[[mqtt]]", 0), &sites, builtin())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mqtt.len(), 1);
    let b = &c.mqtt[0];
    assert_eq!(
        (b.id.as_str(), b.host.as_str(), b.port, b.client_id.as_str()),
        ("plant", "127.0.0.1", 1883, "emgate-gw-demo-01-plant")
    );
    assert_eq!(
        (b.protocol, b.tls.clone(), b.username.clone()),
        (MqttProtocol::V311, None, None)
    );
    let formats: Vec<PayloadFormat> = b.subscriptions.iter().map(|s| s.format).collect();
    assert_eq!(
        formats,
        [
            PayloadFormat::Json,
            PayloadFormat::LineProtocol,
            PayloadFormat::Csv
        ]
    );
    assert_eq!(
        b.subscriptions[0].fields,
        [
            ("/data/p".to_owned(), "power_kw".to_owned()),
            ("ep".to_owned(), "import_kwh".to_owned())
        ]
    );
    assert_eq!(
        b.subscriptions[2].timestamp,
        TimestampRule::Payload {
            field: "ts".to_owned(),
            unit: TimeUnit::Rfc3339
        }
    );
    // As shipped (commented out), the example has no broker.
    let shipped = load_with_env(Path::new("config/emgate.toml"), &[]).expect("loads");
    assert!(shipped.mqtt.is_empty());
}

// ---------------------------------------------------------------------------
// [api] and the shutdown deadline

#[test]
fn api_and_shutdown_defaults() {
    let c = load_str_for_tests("[gateway]\nid = \"gw\"\n").expect("loads");
    assert_eq!(
        c.api,
        emgate::config::ApiSettings {
            listen: Some("127.0.0.1:9184".parse().expect("address")),
            token: None,
            site_tokens: Vec::new(),
        }
    );
    assert_eq!(c.gateway.shutdown_timeout, Duration::from_secs(10));
    let shipped = load_with_env(Path::new("config/emgate.toml"), &[]).expect("loads");
    assert_eq!(shipped.api, c.api);
    assert_eq!(shipped.gateway.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn api_values_and_off_switches() {
    let c = load_str_for_tests(
        "[gateway]\nid = \"gw\"\nshutdown_timeout_secs = 300\n[api]\nlisten = \"0.0.0.0:8080\"\ntoken = \"t0k\"\n",
    )
    .expect("loads");
    assert_eq!(c.api.listen, Some("0.0.0.0:8080".parse().expect("address")));
    assert_eq!(
        c.api.token.as_ref().map(config::Secret::expose),
        Some("t0k")
    );
    assert_eq!(format!("{:?}", c.api.token), "Some(***)");
    assert_eq!(c.gateway.shutdown_timeout, Duration::from_mins(5));
    for off in [
        "listen = \"\"",
        "enabled = false",
        "listen = \"[::1]:1\"\nenabled = false",
    ] {
        let c = load_str_for_tests(&format!("[gateway]\nid = \"gw\"\n[api]\n{off}\n"))
            .unwrap_or_else(|e| panic!("{off}: {e}"));
        assert_eq!(c.api.listen, None, "{off}");
    }
    let c = load_str_for_tests("[gateway]\nid = \"gw\"\n[api]\nenabled = true\n").expect("loads");
    assert_eq!(
        c.api.listen,
        Some("127.0.0.1:9184".parse().expect("address"))
    );
}

#[test]
fn api_token_from_the_environment() {
    let c = load_with_env(
        Path::new("tests/fixtures/config/env/emgate.toml"),
        &env(&[
            ("EMGATE__INFLUXDB__TOKEN", "s3cr3t-t0ken"),
            ("EMGATE__API__TOKEN", "api-t0ken"),
            ("EMGATE__GATEWAY__SHUTDOWN_TIMEOUT_SECS", "30"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.api.token.as_ref().map(config::Secret::expose),
        Some("api-t0ken")
    );
    assert_eq!(
        c.api.listen,
        Some("127.0.0.1:9184".parse().expect("address"))
    );
    assert_eq!(c.gateway.shutdown_timeout, Duration::from_secs(30));
}

#[test]
fn api_and_shutdown_messages() {
    let got = errors(load_str_for_tests(
        "[gateway]\nid = \"gw\"\nshutdown_timeout_secs = 0\n[api]\nlisten = \"localhost:9184\"\ntoken = \"\"\nlisen = \"x\"\n",
    ));
    assert_eq!(
        got,
        [
            "emgate.toml: gateway.shutdown_timeout_secs: 0 is too small; the minimum is 1",
            "emgate.toml: api.lisen: unknown key; did you mean \"listen\"?",
            "emgate.toml: api.listen: \"localhost:9184\" is not an address to listen on; write IP:port, e.g. \"127.0.0.1:9184\" (\"\" turns the API off)",
            "emgate.toml: api.token: is empty; remove the key for an API without a token, or give one (preferably through the environment as EMGATE__API__TOKEN)",
        ]
    );
    let got = errors(load_str_for_tests(
        "[gateway]\nid = \"gw\"\nshutdown_timeout_secs = 301\n[api]\ntoken = \" \"\nenabled = \"maybe\"\n",
    ));
    assert_eq!(
        got,
        [
            "emgate.toml: gateway.shutdown_timeout_secs: 301 is too large; the maximum is 300",
            "emgate.toml: api.enabled: invalid value: string \"maybe\", expected true or false",
            "emgate.toml: api.token: is empty; remove the key for an API without a token, or give one (preferably through the environment as EMGATE__API__TOKEN)",
        ]
    );
    let got = errors(load_str_for_tests(
        "[gateway]\nid = \"gw\"\n[api]\ntoken = \"\"\n",
    ));
    assert_eq!(
        got,
        [
            "emgate.toml: api.token: is empty; remove the key for an API without a token, or give one (preferably through the environment as EMGATE__API__TOKEN)",
        ]
    );
}

/// Five-digit Modicon numbers in their own table's range are rejected with
/// the 0-based address, as the README promises; the same numbers in the
/// other table, and 0-based addresses just below the ranges, are kept.
#[test]
fn five_digit_modicon_addresses_get_the_hint() {
    let point = |register: &str, address: u32| {
        format!(
            "[[points]]\nname = \"p{address}_kwh\"\nregister = \"{register}\"\naddress = {address}\ntype = \"u16\"\nunit = \"kwh\"\n"
        )
    };
    let text = [
        "description = \"modicon\"\n".to_owned(),
        point("input", 30073),
        point("holding", 40001),
        point("holding", 49999),
        point("input", 40001),
        point("holding", 30073),
        point("holding", 40000),
        point("input", 30000),
    ]
    .concat();
    let Err(errs) = load_profile("test", Path::new("profiles/test.toml"), &text) else {
        panic!("must fail");
    };
    let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "profiles/test.toml: points[0].address: 30073 looks like a 1-based register number, whose 0-based address is 72; addresses are 0-based protocol addresses",
            "profiles/test.toml: points[1].address: 40001 looks like a 1-based register number, whose 0-based address is 0; addresses are 0-based protocol addresses",
            "profiles/test.toml: points[2].address: 49999 looks like a 1-based register number, whose 0-based address is 9998; addresses are 0-based protocol addresses",
        ]
    );
}

/// An override of a section the file does not have is the variable's
/// fault, not the file's.
#[test]
fn an_unknown_section_from_the_environment_is_reported_against_env() {
    let got = errors(load_with_env(
        Path::new("tests/fixtures/config/env/emgate.toml"),
        &env(&[
            ("EMGATE__NOSECTION__X", "1"),
            ("EMGATE__INFLUXDB__TOKEN", "t"),
        ]),
    ));
    assert_eq!(
        got,
        [
            "<env>: nosection: unknown key; expected one of: gateway, influxdb, file_sink, endpoints, spool, validation, simulator, aggregation, mqtt, api, dtu, boiler (set by EMGATE__NOSECTION__X)"
        ]
    );
}

#[test]
fn max_in_flight_is_1_to_64_default_4() {
    let main = |influx_extra: &str| {
        format!(
            "[gateway]\nid = \"gw1\"\n\n[influxdb]\nurl = \"http://127.0.0.1:8086\"\napi = \"v1\"\ndatabase = \"energy\"\n{influx_extra}\n"
        )
    };
    for (extra, want) in [
        ("", 4),
        ("max_in_flight = 1", 1),
        ("max_in_flight = 64", 64),
    ] {
        let c = load_str_for_tests(&main(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
        let OutputConfig::Influx(influx) = &c.output else {
            panic!("influx output expected");
        };
        assert_eq!(influx.max_in_flight, want, "{extra}");
    }
    for (extra, want) in [
        (
            "max_in_flight = 0",
            "emgate.toml: influxdb.max_in_flight: 0 is too small; the minimum is 1",
        ),
        (
            "max_in_flight = 65",
            "emgate.toml: influxdb.max_in_flight: 65 is too large; the maximum is 64",
        ),
    ] {
        assert_eq!(errors(load_str_for_tests(&main(extra))), [want], "{extra}");
    }
}
