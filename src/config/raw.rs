//! Raw configuration: the main and site files as written, before any check.
//!
//! Why a separate raw layer: serde alone stops at the first problem, and the
//! operator of a gateway wants every problem of a configuration in one run
//! (STYLE.md habit 2). So these structs are deliberately permissive in
//! *shape* and strict in *scalars*: every field is optional (a missing key is
//! reported by [`super::load`](mod@super::load) with a message that says what
//! to write), sections and arrays of tables are kept as untyped [`Value`]s
//! and read one element at a time, and scalars are the strict wrappers
//! [`Int`], [`Float`], [`Text`] and [`Flag`]. The machinery that reads them
//! (unknown keys, type errors with their paths) is in [`crate::check`]; the
//! raw profile file is beside its loader in `profiles`.

use config::Value;
use serde::Deserialize;

use crate::check::{Flag, Float, Int, Text};

// ---------------------------------------------------------------------------
// Main file

/// The main file's top level: each section is checked on its own.
#[derive(Debug, Deserialize)]
pub struct MainFile {
    /// `[gateway]`.
    pub gateway: Option<Value>,
    /// `[influxdb]`.
    pub influxdb: Option<Value>,
    /// `[file_sink]`.
    pub file_sink: Option<Value>,
    /// `[[endpoints]]`.
    pub endpoints: Option<Value>,
    /// `[spool]`.
    pub spool: Option<Value>,
    /// `[validation]`.
    pub validation: Option<Value>,
    /// `[simulator]`.
    pub simulator: Option<Value>,
    /// `[aggregation]`.
    pub aggregation: Option<Value>,
    /// `[[mqtt]]`.
    pub mqtt: Option<Value>,
    /// `[api]`.
    pub api: Option<Value>,
    /// `[dtu]`.
    pub dtu: Option<Value>,
    /// `[boiler]`.
    pub boiler: Option<Value>,
}

/// `[dtu]` as written.
#[derive(Debug, Deserialize)]
pub struct DtuRaw {
    /// `IP:port` DTUs dial in to.
    pub listen: Option<Text>,
    /// How long a new connection may take to send its registration, ms.
    pub registration_timeout_ms: Option<Int>,
}

/// `[api]` as written.
#[derive(Debug, Deserialize)]
pub struct ApiRaw {
    /// `host:port` to listen on; `""` turns the API off.
    pub listen: Option<Text>,
    /// `false` turns the API off.
    pub enabled: Option<Flag>,
    /// Bearer token required on everything but `/health`.
    pub token: Option<Text>,
    /// Site-scoped tokens, `SITE[,SITE…]=TOKEN;…`: only from the
    /// environment (`EMGATE__API__SITE_TOKENS`), refused in the file.
    pub site_tokens: Option<Text>,
}

/// One `[[mqtt]]` element as written.
#[derive(Debug, Deserialize)]
pub struct MqttRaw {
    /// Broker id.
    pub id: Option<Text>,
    /// Host name or address.
    pub host: Option<Text>,
    /// TCP port.
    pub port: Option<Int>,
    /// MQTT client id.
    pub client_id: Option<Text>,
    /// Clean session / clean start.
    pub clean_session: Option<Flag>,
    /// Keep-alive interval, seconds.
    pub keep_alive_secs: Option<Int>,
    /// `"3.1.1"` or `"5"`.
    pub protocol: Option<Text>,
    /// User name.
    pub username: Option<Text>,
    /// Password.
    pub password: Option<Text>,
    /// `tls = { ca_file = "...", client_cert = "...", client_key = "..." }`.
    pub tls: Option<Value>,
    /// Largest accepted payload, bytes.
    pub max_payload_bytes: Option<Int>,
    /// Topic rejected messages are republished to.
    pub dead_letter_topic: Option<Text>,
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: Option<Int>,
    /// Reconnect delay cap, ms.
    pub reconnect_max_ms: Option<Int>,
    /// `[[mqtt.subscriptions]]`.
    pub subscriptions: Option<Value>,
}

/// `tls` of a broker as written.
#[derive(Debug, Deserialize)]
pub struct MqttTlsRaw {
    /// CA certificate file (PEM).
    pub ca_file: Option<Text>,
    /// Client certificate file (PEM).
    pub client_cert: Option<Text>,
    /// Client private key file (PEM).
    pub client_key: Option<Text>,
}

/// One `[[mqtt.subscriptions]]` element as written.
#[derive(Debug, Deserialize)]
pub struct SubscriptionRaw {
    /// Topic template.
    pub topic: Option<Text>,
    /// QoS 0..=2.
    pub qos: Option<Int>,
    /// `"json"`, `"line_protocol"` or `"csv"`.
    pub format: Option<Text>,
    /// `"payload"` or `"receipt"`.
    pub timestamp: Option<Text>,
    /// JSON key or pointer of the time stamp.
    pub timestamp_field: Option<Text>,
    /// `"s"`, `"ms"`, `"ns"` or `"rfc3339"`.
    pub timestamp_unit: Option<Text>,
    /// Payload key → point name.
    pub fields: Option<Value>,
    /// Point name → factor.
    pub scale: Option<Value>,
    /// JSON pointer of an array of readings.
    pub array: Option<Text>,
    /// JSON key naming the meter.
    pub meter_field: Option<Text>,
}

/// `[aggregation]` as written.
#[derive(Debug, Deserialize)]
pub struct AggregationRaw {
    /// Window tags: an array, or a comma-separated string (environment).
    pub windows: Option<Value>,
    /// Allowed lateness, seconds.
    pub allowed_lateness_secs: Option<Int>,
    /// Per-meter bound on readings held for late data.
    pub max_reorder_readings: Option<Int>,
    /// Longest distance between readings that is not a gap, seconds.
    pub max_gap_secs: Option<Int>,
    /// Gauge statistics per window.
    pub gauge_stats: Option<Flag>,
    /// `"gbt2589-2008"` or a path to a coefficient table.
    pub coefficients: Option<Text>,
    /// `"equivalent"` or `"equal_value"`.
    pub electricity: Option<Text>,
    /// `[aggregation.equal_value_kgce_per_kwh]`: year → kgce/kWh.
    pub equal_value_kgce_per_kwh: Option<Value>,
    /// Reference enthalpy of steam, kJ/kg.
    pub steam_reference_kj_per_kg: Option<Float>,
    /// Above saturation + this (K): superheated.
    pub steam_superheat_margin_k: Option<Float>,
    /// Below saturation − this (K): a sensor problem.
    pub steam_sensor_margin_k: Option<Float>,
}

/// `[gateway]` as written.
#[derive(Debug, Deserialize)]
pub struct GatewayRaw {
    /// Gateway instance id.
    pub id: Option<Text>,
    /// IANA time zone name.
    pub timezone: Option<Text>,
    /// Local data directory, relative to the working directory.
    pub data_dir: Option<Text>,
    /// Directory of site files, relative to the main file.
    pub sites_dir: Option<Text>,
    /// Directory of profiles, relative to the main file.
    pub profiles_dir: Option<Text>,
    /// Longest orderly shutdown, seconds.
    pub shutdown_timeout_secs: Option<Int>,
    /// Days of window results kept in the local archive (0: off).
    pub archive_days: Option<Int>,
    /// This gateway's shard of the sites, `"K/N"`.
    pub shard: Option<Text>,
}

/// `[influxdb]` as written (both API flavours' keys; the loader rejects the other flavour's).
#[derive(Debug, Deserialize)]
pub struct InfluxRaw {
    /// Base URL.
    pub url: Option<Text>,
    /// `"v2"` or `"v1"`.
    pub api: Option<Text>,
    /// v2 organisation.
    pub org: Option<Text>,
    /// v2 bucket.
    pub bucket: Option<Text>,
    /// v2 token.
    pub token: Option<Text>,
    /// v1 database.
    pub database: Option<Text>,
    /// v1 retention policy.
    pub retention_policy: Option<Text>,
    /// v1 user name.
    pub username: Option<Text>,
    /// v1 password.
    pub password: Option<Text>,
    /// Lines per write request.
    pub batch_size: Option<Int>,
    /// Longest wait before a batch is sent, ms.
    pub flush_interval_ms: Option<Int>,
    /// Gzip request bodies.
    pub gzip: Option<Flag>,
    /// Deflate level of the gzip, 1..=9.
    pub gzip_level: Option<Int>,
    /// Request timeout, ms.
    pub timeout_ms: Option<Int>,
    /// Cap on lines written per second; 0 = none.
    pub max_lines_per_sec: Option<Int>,
    /// Dead-letter file for permanently rejected lines.
    pub dead_letter_path: Option<Text>,
    /// First retry delay, ms.
    pub retry_initial_ms: Option<Int>,
    /// Retry delay cap, ms.
    pub retry_max_ms: Option<Int>,
    /// Write requests in flight at once, 1..=64.
    pub max_in_flight: Option<Int>,
}

/// `[validation]` as written.
#[derive(Debug, Deserialize)]
pub struct ValidationRaw {
    /// Future skew limit, seconds.
    pub max_future_skew_secs: Option<Int>,
    /// Lateness limit, seconds.
    pub max_lateness_secs: Option<Int>,
    /// Checkpoint period, seconds.
    pub checkpoint_interval_secs: Option<Int>,
}

/// `[spool]` as written.
#[derive(Debug, Deserialize)]
pub struct SpoolRaw {
    /// Segment directory.
    pub dir: Option<Text>,
    /// Bound on unacknowledged bytes.
    pub max_bytes: Option<Int>,
    /// Segment size.
    pub segment_bytes: Option<Int>,
    /// `"block"` or `"drop_oldest"`.
    pub policy: Option<Text>,
    /// `"interval"` or `"every_batch"`.
    pub fsync: Option<Text>,
    /// Fsync period with `fsync = "interval"`, ms.
    pub fsync_interval_ms: Option<Int>,
}

/// `[file_sink]` as written.
#[derive(Debug, Deserialize)]
pub struct FileSinkRaw {
    /// Output file.
    pub path: Option<Text>,
    /// Lines per flush.
    pub batch_size: Option<Int>,
    /// Longest wait before lines are written, ms.
    pub flush_interval_ms: Option<Int>,
}

/// One `[[endpoints]]` element as written.
#[derive(Debug, Deserialize)]
pub struct EndpointRaw {
    /// Endpoint id.
    pub id: Option<Text>,
    /// Host name or address.
    pub host: Option<Text>,
    /// TCP port.
    pub port: Option<Int>,
    /// Request timeout, ms.
    pub timeout_ms: Option<Int>,
    /// Connect timeout, ms.
    pub connect_timeout_ms: Option<Int>,
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: Option<Int>,
    /// Reconnect delay cap, ms.
    pub reconnect_max_ms: Option<Int>,
    /// Largest gap a merged read may span, registers.
    pub max_gap: Option<Int>,
    /// Largest read, registers.
    pub max_registers: Option<Int>,
    /// Pause between requests, ms.
    pub inter_request_delay_ms: Option<Int>,
    /// `tcp`, `rtu_over_tcp`, `serial`, `dtu`.
    pub transport: Option<Text>,
    /// Wake-up bytes before each DL/T 645 request.
    pub dlt645_preamble: Option<Int>,
    /// Serial device path (`serial`).
    pub device: Option<Text>,
    /// Line speed, bits per second (serial-framed transports).
    pub baud: Option<Int>,
    /// `none`, `even`, `odd`.
    pub parity: Option<Text>,
    /// 7 or 8.
    pub data_bits: Option<Int>,
    /// 1 or 2.
    pub stop_bits: Option<Int>,
    /// Pause after an answer before the next request, ms.
    pub turnaround_ms: Option<Int>,
    /// DTU registration packet as text.
    pub registration: Option<Text>,
    /// DTU registration packet as hex.
    pub registration_hex: Option<Text>,
    /// `connect` or `every_packet`.
    pub registration_mode: Option<Text>,
    /// DTU heartbeat packet as text.
    pub heartbeat: Option<Text>,
    /// DTU heartbeat packet as hex.
    pub heartbeat_hex: Option<Text>,
}

/// `[simulator]` as written.
#[derive(Debug, Deserialize)]
pub struct SimulatorRaw {
    /// Length of a simulation step, ms.
    pub time_step_ms: Option<Int>,
    /// Idle time after which a simulated DTU sends its heartbeat, ms.
    pub dtu_heartbeat_ms: Option<Int>,
    /// `faults = [{ meter = "...", fault = "..." }]`.
    pub faults: Option<Value>,
}

/// One element of `simulator.faults` as written.
#[derive(Debug, Deserialize)]
pub struct FaultRaw {
    /// Meter id.
    pub meter: Option<Text>,
    /// Fault kind.
    pub fault: Option<Text>,
}

// ---------------------------------------------------------------------------
// Site files

/// A site file's top level.
#[derive(Debug, Deserialize)]
pub struct SiteFile {
    /// `[site]`.
    pub site: Option<Value>,
    /// `[[meters]]`.
    pub meters: Option<Value>,
    /// `[[boilers]]`.
    pub boilers: Option<Value>,
    /// `[[targets]]`.
    pub targets: Option<Value>,
}

/// One `[[targets]]` element as written (see `config::targets`).
#[derive(Debug, Deserialize)]
pub struct TargetRaw {
    /// Calendar year of the target.
    pub year: Option<Int>,
    /// Five-year plan period, `"YYYY-YYYY"`.
    pub period: Option<Text>,
    /// Cap on the controlled total consumption, tce.
    pub cap_tce: Option<Float>,
    /// `kgce_per_<unit>`.
    pub intensity_unit: Option<Text>,
    /// Manual-entry item of the denominator.
    pub intensity_item: Option<Text>,
    /// Base year of the intensity decrease.
    pub base_year: Option<Int>,
    /// Intensity in the base year, kgce per unit.
    pub base_intensity: Option<Float>,
    /// Decrease per year, %.
    pub annual_decrease_pct: Option<Float>,
    /// Decrease over the plan period, %.
    pub five_year_decrease_pct: Option<Float>,
    /// Completion rate (%) below which the level is yellow.
    pub warn_yellow_pct: Option<Float>,
    /// Completion rate (%) at or below which the level is red.
    pub warn_orange_pct: Option<Float>,
}

/// `[site]` as written.
#[derive(Debug, Deserialize)]
pub struct SiteRaw {
    /// Site id.
    pub id: Option<Text>,
    /// Human name.
    pub name: Option<Text>,
    /// IANA time zone; the gateway's when absent.
    pub timezone: Option<Text>,
}

/// One `[[meters]]` element as written.
#[derive(Debug, Deserialize)]
pub struct MeterRaw {
    /// Meter id.
    pub id: Option<Text>,
    /// Energy type.
    pub energy: Option<Text>,
    /// Metering level 1..=3.
    pub level: Option<Int>,
    /// Profile id.
    pub profile: Option<Text>,
    /// Endpoint id.
    pub endpoint: Option<Text>,
    /// Modbus unit id.
    pub unit_id: Option<Int>,
    /// DL/T 645 meter address, 12 digits as on the nameplate.
    pub address: Option<Text>,
    /// MQTT broker id (instead of `endpoint` and `unit_id`).
    pub broker: Option<Text>,
    /// Poll interval, seconds.
    pub poll_interval_secs: Option<Int>,
    /// Voltage-transformer ratio.
    pub pt: Option<Float>,
    /// Current-transformer ratio.
    pub ct: Option<Float>,
    /// `calibration = { ... }`.
    pub calibration: Option<Value>,
    /// `replacements = [{ ... }]`.
    pub replacements: Option<Value>,
    /// `[meters.rules.<point>]` overrides.
    pub rules: Option<Value>,
    /// Counter point aggregated into `consumption`.
    pub consumption: Option<Text>,
    /// Role in the site's balance.
    pub role: Option<Text>,
    /// Coefficient table key, or `"none"`.
    pub coefficient: Option<Text>,
    /// Measured net calorific value of natural gas, kJ/m³.
    pub lhv_kj_per_m3: Option<Float>,
    /// Steam meters: `auto`, `saturated` or `superheated` (default: the profile's, else auto).
    pub steam_state: Option<Text>,
    /// Steam meters: dryness fraction of saturated steam (default: the profile's, else 1).
    pub steam_dryness: Option<Float>,
}

/// `calibration` of a meter as written.
#[derive(Debug, Deserialize)]
pub struct CalibrationRaw {
    /// Serial number.
    pub serial: Option<Text>,
    /// Accuracy class.
    pub accuracy_class: Option<Text>,
    /// Last verification date.
    pub verified: Option<Text>,
    /// Due date.
    pub due: Option<Text>,
}

/// One element of `replacements` as written.
#[derive(Debug, Deserialize)]
pub struct ReplacementRaw {
    /// Counter point name.
    pub point: Option<Text>,
    /// Moment of the swap.
    pub at: Option<Text>,
    /// Last reading of the old meter.
    pub old_final: Option<Float>,
    /// First reading of the new meter.
    pub new_initial: Option<Float>,
}

/// One `[meters.rules.<point>]` table as written.
#[derive(Debug, Deserialize)]
pub struct OverrideRaw {
    /// Plausible minimum.
    pub min: Option<Float>,
    /// Plausible maximum.
    pub max: Option<Float>,
    /// Physical maximum increase per hour.
    pub max_rate_per_hour: Option<Float>,
    /// Spike margin.
    pub spike_margin: Option<Float>,
    /// Identical polls that make a gauge frozen.
    pub frozen_after: Option<Int>,
}

// ---------------------------------------------------------------------------
// Boilers (`[boiler]` in the main file, `[[boilers]]` in site files)

/// `[boiler]` as written.
#[derive(Debug, Deserialize)]
pub struct BoilerSettingsRaw {
    /// `"builtin"` or a path to a boiler coefficient table.
    pub coefficients: Option<Text>,
    /// `"builtin"`, a path to a limit table, or `"none"`.
    pub limits: Option<Text>,
    /// Inputs below this coverage give no number for their method, 0..=1.
    pub min_coverage: Option<Float>,
    /// Seconds a window waits for missing inputs; 0 = automatic.
    pub grace_secs: Option<Int>,
}

/// One `[[boilers]]` element as written. Inputs that are a point of a
/// meter (or, for some, a fixed number) stay untyped [`Value`]s: the
/// loader tells a number from `{ meter, point }`.
#[derive(Debug, Deserialize)]
pub struct BoilerRaw {
    /// Boiler id, unique across all site files.
    pub id: Option<Text>,
    /// Free text.
    pub name: Option<Text>,
    /// `"steam"` or `"hot_water"`.
    pub kind: Option<Text>,
    /// t/h (steam) or MW (hot water).
    pub rated_capacity: Option<Float>,
    /// Fuel-class key of the boiler coefficient table.
    pub fuel: Option<Text>,
    /// `"layered"`, `"fluidized_bed"` or `"chamber"`.
    pub combustion: Option<Text>,
    /// Condensing gas boiler (limit row).
    pub condensing: Option<Flag>,
    /// Meter whose consumption counter is the fuel.
    pub fuel_meter: Option<Text>,
    /// Meter whose consumption counter is the output.
    pub output_meter: Option<Text>,
    /// `{ meter, point }`, MPa gauge.
    pub steam_pressure: Option<Value>,
    /// `{ meter, point }`, °C.
    pub steam_temperature: Option<Value>,
    /// `"auto"`, `"saturated"` or `"superheated"`.
    pub steam_state: Option<Text>,
    /// Dryness fraction of saturated steam.
    pub steam_dryness: Option<Float>,
    /// `{ meter, point }`, °C.
    pub supply_temperature: Option<Value>,
    /// `{ meter, point }`, °C.
    pub return_temperature: Option<Value>,
    /// A number (°C) or `{ meter, point }`.
    pub feed_water_c: Option<Value>,
    /// `{ meter, point }`, °C.
    pub exhaust_c: Option<Value>,
    /// `{ meter, point }`, % dry.
    pub o2_pct: Option<Value>,
    /// `{ meter, point }`, ppm.
    pub co_ppm: Option<Value>,
    /// A number (°C) or `{ meter, point }`.
    pub cold_air_c: Option<Value>,
    /// % of the steam mass.
    pub blowdown_pct: Option<Float>,
    /// q5 at rated load, %.
    pub q5_rated_pct: Option<Float>,
    /// q3 when CO is not measured, %.
    pub q3_pct: Option<Float>,
    /// Points of difference between the methods that count as disagreement.
    pub disagreement_points: Option<Float>,
    /// A limit-table row key, or `"none"`.
    pub limits: Option<Text>,
    /// `[[boilers.fuel_records]]`.
    pub fuel_records: Option<Value>,
}

/// A boiler input `{ meter = "...", point = "..." }` as written.
#[derive(Debug, Deserialize)]
pub struct InputPointRaw {
    /// Meter id (same site as the boiler).
    pub meter: Option<Text>,
    /// Point name in the meter's profile.
    pub point: Option<Text>,
}

/// One `[[boilers.fuel_records]]` element as written.
#[derive(Debug, Deserialize)]
pub struct FuelRecordRaw {
    /// Date the record is in force from (site local midnight).
    pub from: Option<Text>,
    /// Net calorific value, kJ/kg (solid, oil).
    pub lhv_kj_per_kg: Option<Float>,
    /// Net calorific value, kJ/m³ (gas).
    pub lhv_kj_per_m3: Option<Float>,
    /// As-received ash, %.
    pub ash_pct: Option<Float>,
    /// As-received moisture, %.
    pub moisture_pct: Option<Float>,
    /// Volatile matter, dry ash-free, %.
    pub volatile_daf_pct: Option<Float>,
    /// Share of the ash leaving as slag, %.
    pub slag_share_pct: Option<Float>,
    /// Combustible content of the slag, %.
    pub slag_combustible_pct: Option<Float>,
    /// Combustible content of the fly ash, %.
    pub fly_ash_combustible_pct: Option<Float>,
    /// Slag temperature, °C.
    pub slag_temperature_c: Option<Float>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::check::{Problems, field_names, parse_toml, table};

    #[test]
    fn field_names_follow_the_struct() {
        assert_eq!(
            field_names::<FaultRaw>(),
            &["meter", "fault"],
            "captured from the derive"
        );
    }

    #[test]
    fn scalars_are_strict_but_accept_numeric_strings() {
        let mut p = Problems::new(Path::new("x.toml"));
        let v = parse_toml("id = 5\nunit_id = 1.5\n", &mut p).expect("parses");
        let m: MeterRaw = table(v, "meters[0]", "a table", &mut p).expect("kept");
        assert_eq!((m.id, m.unit_id), (None, None));
        let shown: Vec<String> = p.list.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "x.toml: meters[0].id: invalid type: integer `5`, expected a string",
                "x.toml: meters[0].unit_id: invalid type: floating point `1.5`, expected an integer",
            ]
        );
        // A later "missing" for a key with a type error is not repeated.
        p.push("meters[0].id", "missing required key");
        assert_eq!(p.list.len(), 2);

        let mut p = Problems::new(Path::new("x.toml"));
        let v = parse_toml("unit_id = \"17\"\npt = \"2.5\"\n", &mut p).expect("parses");
        let m: MeterRaw = table(v, "", "a table", &mut p).expect("numeric strings");
        assert_eq!(m.unit_id, Some(Int(17)));
        assert_eq!(m.pt, Some(Float(2.5)));
    }
}
