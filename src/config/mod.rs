//! Configuration: TOML files and environment overrides turned into one
//! validated [`Config`] with interned ids.
//!
//! Loading happens in two stages, as in Vector's config compiler: [`raw`]
//! mirrors the files one to one (serde), then [`load`](mod@load) checks every value and
//! every reference between sections, collecting *all* errors before giving
//! up, each as `FILE: key.path: message`. Nothing touches the network.
//!
//! Layout on disk: a main file (`config/emgate.toml`) with the gateway,
//! InfluxDB and Modbus endpoint sections, a directory of site files (one site
//! and its meters per file) and a directory of profiles.
//!
//! Layout here, one file per thing configured: [`load`](mod@load) (entry
//! points, environment overrides, assembly), `main_file` (`[gateway]`,
//! `[api]`), `output` (`[influxdb]`, `[file_sink]`), `modbus`
//! (`[[endpoints]]`), `mqtt` and `subscription` (`[[mqtt]]`), `pipeline`
//! (`[validation]`, `[aggregation]`), `spool`, `simulator`, `files` (the
//! site and profile directories), `sites` (site files and meters) and
//! `meter` (a meter's validation and energy keys), `shard` and
//! `shard_filter` (`[gateway] shard`: which sites this gateway keeps). The validated types are
//! below; the generic checking machinery is in [`crate::check`].

pub mod api_tokens;
mod boiler_check;
mod boiler_inputs;
mod boiler_records;
pub mod boilers;
pub mod bus;
pub mod dtu;
mod files;
pub mod load;
mod main_file;
mod main_state;
mod meter;
mod modbus;
mod mqtt;
mod output;
mod pipeline;
pub mod raw;
pub mod shard;
pub mod shard_filter;
mod simulator;
mod sites;
mod spool;
mod subscription;
pub mod targets;
pub mod topic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use bus::{
    DEFAULT_DTU_PORT, DtuMatch, DtuSettings, Parity, RegistrationMode, SerialLine, Transport,
    packet_text,
};

use crate::model::{BrokerId, EndpointId, EnergyType, Level, MeterId, ProfileId, SiteId};
use crate::pipeline::aggregate::AggregatorSettings;
use crate::pipeline::coefficients::CoefficientTable;
use crate::pipeline::energy::{Conversion, EnergyRole};
use crate::pipeline::steam::{MAKE_UP_WATER_KJ_PER_KG, SteamMargins};
use crate::pipeline::window::WindowSize;
use crate::profiles::Profile;
use crate::spool::SpoolConfig;

pub use crate::check::{ConfigError, ConfigErrors, Secret};
pub use boilers::{BoilerConfig, BoilerSettings, Combustion, InputRef};
pub use load::{from_parts, load, load_all_shards, load_str_for_tests, load_with_env};
pub use shard::{Shard, shard_of};
pub use spool::default_spool;
pub use targets::{EntryItem, FuelLab, IntensityTarget, TargetConfig, TargetSpan};

/// The validated configuration of a gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// File the configuration was loaded from.
    pub source: PathBuf,
    /// Gateway-wide settings.
    pub gateway: GatewayConfig,
    /// Where points go.
    pub output: OutputConfig,
    /// Endpoints (TCP connections, serial ports, DTUs), indexed by [`EndpointId`].
    pub endpoints: Vec<EndpointConfig>,
    /// Where dial-in DTUs connect (`[dtu]`).
    pub dtu: DtuSettings,
    /// Sites (enterprises), indexed by [`SiteId`].
    pub sites: Vec<SiteConfig>,
    /// Meters, indexed by [`MeterId`].
    pub meters: Vec<MeterConfig>,
    /// Profiles that meters use, indexed by [`ProfileId`].
    pub profiles: Vec<Profile>,
    /// The durable spool between the pipeline and the output (`[spool]`;
    /// default under `<data_dir>/spool`, see [`default_spool`]).
    pub spool: SpoolConfig,
    /// Gateway-wide validation settings.
    pub validation: ValidationSettings,
    /// MQTT brokers and their subscriptions, indexed by [`BrokerId`].
    pub mqtt: Vec<MqttBroker>,
    /// Settings of `emgate simulate` (ignored by `emgate run`).
    pub simulator: SimulatorConfig,
    /// Consumption windows and standard-coal conversion.
    pub aggregation: AggregationSettings,
    /// The HTTP API (status, metrics, reload).
    pub api: ApiSettings,
    /// Boilers of every site (`[[boilers]]`), in file order.
    pub boilers: Vec<BoilerConfig>,
    /// `[boiler]`: the boiler tables and the boiler stage's timing.
    pub boiler: BoilerSettings,
    /// Energy-saving targets of every site (`[[targets]]`), in file order.
    pub targets: Vec<TargetConfig>,
}

/// `[api]`, validated: the HTTP server of status, metrics and reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Address to listen on; `None` when the API is off (`listen = ""` or
    /// `enabled = false`). Default `127.0.0.1:9184`: local only.
    pub listen: Option<SocketAddr>,
    /// Bearer token required on everything but `/health`; `None`: no token.
    /// It opens every site and the operator-only routes.
    pub token: Option<Secret>,
    /// Site-scoped tokens (`EMGATE__API__SITE_TOKENS`, see
    /// [`api_tokens`](mod@api_tokens)): each reads and enters data only for its sites.
    pub site_tokens: Vec<SiteToken>,
}

/// A bearer token bound to a list of sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteToken {
    /// Ids of the sites the token may read and enter data for.
    pub sites: Vec<String>,
    /// The token (never printed).
    pub token: Secret,
}

impl Default for ApiSettings {
    fn default() -> ApiSettings {
        ApiSettings {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT))),
            token: None,
            site_tokens: Vec::new(),
        }
    }
}

/// Port of the API when `[api] listen` is not given.
pub const DEFAULT_API_PORT: u16 = 9184;

impl Config {
    /// The meter with id `id`.
    #[must_use]
    pub fn meter(&self, id: MeterId) -> &MeterConfig {
        &self.meters[id.index()]
    }

    /// The profile a meter uses.
    #[must_use]
    pub fn profile_of(&self, id: MeterId) -> &Profile {
        &self.profiles[self.meters[id.index()].profile.index()]
    }

    /// The site a meter belongs to.
    #[must_use]
    pub fn site_of(&self, id: MeterId) -> &SiteConfig {
        &self.sites[self.meters[id.index()].site.index()]
    }

    /// Meters polled through `endpoint`, in configuration order.
    pub fn meters_on(&self, endpoint: EndpointId) -> impl Iterator<Item = (MeterId, &MeterConfig)> {
        self.meters
            .iter()
            .enumerate()
            .filter(move |(_, m)| m.endpoint() == Some(endpoint))
            .map(|(i, m)| (MeterId(u32::try_from(i).unwrap_or(u32::MAX)), m))
    }
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Gateway instance id (ASCII, no spaces).
    pub id: String,
    /// Default IANA time zone of sites.
    pub timezone: jiff::tz::TimeZone,
    /// Name of the time zone as configured.
    pub timezone_name: String,
    /// Directory for local data: the spool, the validation and aggregation
    /// checkpoints, and the file sink by default.
    pub data_dir: PathBuf,
    /// Longest orderly shutdown after SIGINT/SIGTERM (`shutdown_timeout_secs`,
    /// default 10 s, 1..=300): polling stops, the pipeline drains into the
    /// spool and the output delivers for the rest of it.
    pub shutdown_timeout: Duration,
    /// Days the local archive of window results and entries keeps
    /// (`archive_days`, default 190, 0..=3650; 0 turns the archive off).
    /// The archive module's doc has the design.
    pub archive_days: u32,
    /// This gateway's shard of the sites (`shard = "K/N"`, default `0/1`:
    /// every site); the loaded [`Config`] holds only the shard's sites.
    pub shard: Shard,
}

/// Where points are written.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConfig {
    /// An InfluxDB server.
    Influx(InfluxConfig),
    /// Line protocol appended to a local file (the demo's fallback).
    File(FileSinkConfig),
}

/// InfluxDB API flavour and its addressing.
#[derive(Debug, Clone, PartialEq)]
pub enum InfluxApi {
    /// `/api/v2/write` (InfluxDB 2.x, 3.x, Cloud, 1.8+ compatibility, VictoriaMetrics).
    V2 {
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
        /// API token.
        token: Secret,
    },
    /// `/write?db=&rp=` (InfluxDB 1.x).
    V1 {
        /// Database.
        database: String,
        /// Retention policy; the database default when `None`.
        retention_policy: Option<String>,
        /// User name for basic authentication.
        username: Option<String>,
        /// Password for basic authentication.
        password: Secret,
    },
}

/// The default `[influxdb] gzip_level`, chosen by measurement (benches/gzip.rs,
/// BENCHMARKS.md): with the `zlib-rs` backend, level 1 compresses line protocol
/// about 8x faster than the former default (`miniz_oxide` level 6) and 3.6x
/// faster than zlib-rs level 6, for bodies about 1.6x larger.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

/// The default `[influxdb] max_in_flight`: write requests under way at once
/// while a backlog drains, chosen by measurement (scripts/catchup.py,
/// BENCHMARKS.md "Catch-up after an outage").
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// `[influxdb]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// API and addressing.
    pub api: InfluxApi,
    /// Lines per write request.
    pub batch_size: usize,
    /// Longest time a line waits before its batch is sent.
    pub flush_interval: Duration,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// Deflate level of that gzip, 1 (fastest) to 9 (smallest);
    /// [`DEFAULT_GZIP_LEVEL`] unless `[influxdb] gzip_level` says otherwise.
    pub gzip_level: u32,
    /// Timeout of one write request, connection included.
    pub timeout: Duration,
    /// Cap on the lines written per second (catch-up after an outage); `None`: as fast as the server accepts.
    pub max_lines_per_sec: Option<u64>,
    /// File that permanently rejected lines are appended to, with the server's error.
    pub dead_letter: PathBuf,
    /// First retry delay after a retryable failure.
    pub retry_initial: Duration,
    /// Cap on the retry delay.
    pub retry_max: Duration,
    /// Write requests under way at once (1..=64; 1 = one at a time);
    /// acknowledgements to the spool stay in order.
    pub max_in_flight: usize,
}

/// `[file_sink]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    /// File that line protocol is appended to.
    pub path: PathBuf,
    /// Lines per flush.
    pub batch_size: usize,
    /// Longest time a line waits before it is written.
    pub flush_interval: Duration,
}

/// `[[endpoints]]`, validated: one wire (a TCP connection, a serial port or
/// a dial-in DTU) and the meters behind it, polled one request at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// Endpoint id.
    pub id: String,
    /// How the wire is reached and framed.
    pub transport: Transport,
    /// The RS-485 line behind a serial-framed transport (`None` for `tcp`):
    /// its timing and the turnaround delay.
    pub line: Option<SerialLine>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Timeout of connection establishment.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_initial: Duration,
    /// Cap on the reconnect delay.
    pub reconnect_max: Duration,
    /// Registers of unused space a merged read may span between two points.
    pub max_gap: u16,
    /// Largest read, registers (≤ 125) or bits (≤ 2000).
    pub max_registers: u16,
    /// Pause between two requests on this connection (slow gateways and DTUs).
    pub inter_request_delay: Duration,
    /// Wake-up bytes (`FE`) sent before each DL/T 645 request on this bus
    /// (`dlt645_preamble`, default 4; serial-framed transports only).
    pub dlt645_preamble: u8,
}

impl EndpointConfig {
    /// Where the wire is, for logs and messages: `host:port`, the device
    /// path, or `dtu "REGISTRATION"`.
    #[must_use]
    pub fn address(&self) -> String {
        match &self.transport {
            Transport::Tcp { host, port } | Transport::RtuOverTcp { host, port } => {
                format!("{host}:{port}")
            }
            Transport::Serial { device } => device.display().to_string(),
            Transport::Dtu(d) => format!("dtu {}", d.registration_text()),
        }
    }

    /// `host` and `port` of a transport the gateway dials (`tcp`, `rtu_over_tcp`).
    #[must_use]
    pub fn tcp_address(&self) -> Option<(&str, u16)> {
        match &self.transport {
            Transport::Tcp { host, port } | Transport::RtuOverTcp { host, port } => {
                Some((host.as_str(), *port))
            }
            Transport::Serial { .. } | Transport::Dtu(_) => None,
        }
    }

    /// True when frames are Modbus RTU (CRC-16, no MBAP header).
    #[must_use]
    pub fn is_serial_framed(&self) -> bool {
        !matches!(self.transport, Transport::Tcp { .. })
    }
}

/// A site (enterprise) file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    /// Site id: the tag value (ASCII, no spaces).
    pub id: String,
    /// Human name, never a tag.
    pub name: String,
    /// Time zone of the site.
    pub timezone: jiff::tz::TimeZone,
    /// File it was loaded from.
    pub file: PathBuf,
}

/// A meter, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// Meter id, unique across the installation.
    pub id: String,
    /// Site it belongs to.
    pub site: SiteId,
    /// Energy it measures.
    pub energy: EnergyType,
    /// Metering level.
    pub level: Level,
    /// Register map.
    pub profile: ProfileId,
    /// Where its readings come from.
    pub source: MeterSource,
    /// Poll interval; slots are multiples of it since the Unix epoch. For
    /// an MQTT meter, the interval it is expected to publish at.
    pub poll_interval: Duration,
    /// Voltage-transformer ratio (1 when not used).
    pub pt: f64,
    /// Current-transformer ratio (1 when not used).
    pub ct: f64,
    /// Verification record, when given.
    pub calibration: Option<Calibration>,
    /// Declared replacements of the physical meter, oldest first.
    pub replacements: Vec<DeclaredReplacement>,
    /// Validation rules that differ from the profile, per point.
    pub overrides: Vec<(usize, PointOverride)>,
    /// Index of the counter point aggregated into `consumption` (the meter's
    /// `consumption` key, else the profile's); `None` when the profile has no counter.
    pub consumption: Option<usize>,
    /// How the meter's energy counts in its site's balance.
    pub role: EnergyRole,
    /// How a window's consumption becomes kgce.
    pub conversion: Conversion,
    /// Where the conversion comes from, for logs and `check-config`, e.g.
    /// `GB/T 2589-2008 natural_gas_gas_field 1.2143 kgce/m3 (counter volume_nm3 in nm3)`;
    /// empty with [`Conversion::None`] when the meter has no counter.
    pub conversion_source: String,
    /// Measured net calorific value of natural gas (`lhv_kj_per_m3`),
    /// kJ/m³: also a gas boiler's LHV when no fuel record is in force.
    pub lhv_kj_per_m3: Option<f64>,
}

/// Where a meter's readings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterSource {
    /// Polled over Modbus through an endpoint.
    Modbus {
        /// Connection it is polled through.
        endpoint: EndpointId,
        /// Modbus unit id (slave address).
        unit_id: u8,
    },
    /// Polled over DL/T 645-2007 through a serial-framed endpoint.
    Dlt645 {
        /// Bus it is polled through.
        endpoint: EndpointId,
        /// Its address (`address = "123456789012"` in the site file).
        address: crate::profiles::dlt645::Address,
    },
    /// Publishes to an MQTT broker (`broker = "<id>"` in the site file).
    Mqtt {
        /// The broker its subscription is on.
        broker: BrokerId,
    },
}

impl MeterConfig {
    /// The endpoint a polled meter (Modbus or DL/T 645) is read through.
    #[must_use]
    pub fn endpoint(&self) -> Option<EndpointId> {
        match self.source {
            MeterSource::Modbus { endpoint, .. } | MeterSource::Dlt645 { endpoint, .. } => {
                Some(endpoint)
            }
            MeterSource::Mqtt { .. } => None,
        }
    }

    /// The DL/T 645 endpoint and address, for a DL/T 645 meter.
    #[must_use]
    pub fn dlt645(&self) -> Option<(EndpointId, crate::profiles::dlt645::Address)> {
        match self.source {
            MeterSource::Dlt645 { endpoint, address } => Some((endpoint, address)),
            MeterSource::Modbus { .. } | MeterSource::Mqtt { .. } => None,
        }
    }

    /// The Modbus endpoint and unit id, for a polled meter.
    #[must_use]
    pub fn modbus(&self) -> Option<(EndpointId, u8)> {
        match self.source {
            MeterSource::Modbus { endpoint, unit_id } => Some((endpoint, unit_id)),
            MeterSource::Mqtt { .. } | MeterSource::Dlt645 { .. } => None,
        }
    }

    /// The broker, for a meter that publishes over MQTT.
    #[must_use]
    pub fn broker(&self) -> Option<BrokerId> {
        match self.source {
            MeterSource::Mqtt { broker } => Some(broker),
            MeterSource::Modbus { .. } | MeterSource::Dlt645 { .. } => None,
        }
    }
}

/// A meter's verification record (metrology practice).
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Serial number of the instrument.
    pub serial: Option<String>,
    /// Accuracy class, e.g. `0.5S`.
    pub accuracy_class: Option<String>,
    /// Date of the last verification.
    pub verified: Option<jiff::civil::Date>,
    /// Date the next verification is due.
    pub due: jiff::civil::Date,
    /// Start of the due date in the site's time zone, Unix seconds: readings
    /// from then on carry the calibration bit.
    pub due_at: i64,
}

/// A replacement of a meter, as the metrology record states it: the counter
/// point's last reading on the old meter and first on the new one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredReplacement {
    /// Index of the counter point in the profile.
    pub point: usize,
    /// Moment of the swap, Unix seconds.
    pub at: i64,
    /// Last reading of the old meter.
    pub old_final: f64,
    /// First reading of the new meter.
    pub new_initial: f64,
}

/// Per-meter overrides of a point's validation rules.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PointOverride {
    /// Plausible minimum.
    pub min: Option<f64>,
    /// Plausible maximum.
    pub max: Option<f64>,
    /// Physical maximum increase per hour (counters).
    pub max_rate_per_hour: Option<f64>,
    /// Spike margin (counters).
    pub spike_margin: Option<f64>,
    /// Identical polls that make a gauge frozen.
    pub frozen_after: Option<u32>,
}

/// `[simulator]`: how `emgate simulate` serves the configured meters.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Simulated values change in steps of this length (default 1 s), so a
    /// poll anywhere inside a step reads the value of the step's start.
    pub time_step: Duration,
    /// Faults active from the start.
    pub faults: Vec<(MeterId, SimFault)>,
    /// A simulated DTU whose endpoint has a heartbeat sends it after its
    /// link has been this long without traffic (`dtu_heartbeat_ms`, default 30 s).
    pub dtu_heartbeat: Duration,
}

impl SimulatorConfig {
    /// Default of [`SimulatorConfig::dtu_heartbeat`]: 30 s, a common DTU factory setting.
    pub const DEFAULT_DTU_HEARTBEAT: Duration = Duration::from_secs(30);
}

impl Default for SimulatorConfig {
    /// No faults, `time_step` zero (the simulator then steps by 1 s), heartbeats every 30 s of idle.
    fn default() -> SimulatorConfig {
        SimulatorConfig {
            time_step: Duration::ZERO,
            faults: Vec::new(),
            dtu_heartbeat: SimulatorConfig::DEFAULT_DTU_HEARTBEAT,
        }
    }
}

/// A fault the simulator can inject into one meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFault {
    /// The meter never answers (the request times out).
    NoResponse,
    /// Every read answers with Modbus exception 4 (server device failure).
    Exception,
    /// Every point serves its sentinel pattern (NaN for floats, all ones for integers).
    Sentinel,
    /// Counters restart from zero at the moment the fault is set.
    CounterReset,
    /// Every point keeps serving the registers it served when the fault was
    /// set, bit-identical, until the fault is cleared.
    Frozen,
    /// Counters serve their true value plus a jump far above any physical
    /// rate (1 000 000 in the point's unit, capped below the register's wrap);
    /// gauges are unchanged. Clearing the fault removes the jump.
    Spike,
}

/// `[validation]`: limits that apply to every reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationSettings {
    /// Slots further than this in the future of the wall clock are flagged `time`.
    pub max_future_skew_secs: i64,
    /// Slots older than this are flagged `time` (late).
    pub max_lateness_secs: i64,
    /// How often the validator's state is checkpointed to disk.
    pub checkpoint_interval: Duration,
}

impl Default for ValidationSettings {
    fn default() -> ValidationSettings {
        ValidationSettings {
            max_future_skew_secs: 300,
            max_lateness_secs: 86_400,
            checkpoint_interval: Duration::from_mins(1),
        }
    }
}

/// `[aggregation]`, validated: consumption windows and standard coal.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregationSettings {
    /// What the aggregator itself is built with: window sizes computed per
    /// meter and site, in configuration order (default 15m, 1h, 1d; no
    /// duplicates; empty: aggregation is off and only readings are written);
    /// the lateness after which a window closes (default 120 s; readings
    /// within it update the window, later ones are flagged late); the
    /// per-meter bound on readings held back for late data (0..=1024,
    /// default 16); the distance between readings that makes a gap (default
    /// 900 s: not coverage, and a boundary interpolated across it is estimated).
    pub aggregator: AggregatorSettings,
    /// Mean, minimum and maximum of gauges per window. Default true.
    pub gauge_stats: bool,
    /// Standard-coal coefficient table (default: GB/T 2589-2008, built in).
    pub coefficients: CoefficientTable,
    /// How electricity converts to standard coal.
    pub electricity: ElectricityMethod,
    /// Enthalpy of the water steam is made from, kJ/kg (default: make-up
    /// water at 20 °C, 84.0).
    pub steam_reference_kj_per_kg: f64,
    /// How `steam_state = "auto"` tells saturated from superheated steam
    /// (default 3 K above saturation, 10 K below is a sensor problem).
    pub steam_margins: SteamMargins,
}

impl Default for AggregationSettings {
    fn default() -> AggregationSettings {
        AggregationSettings {
            aggregator: AggregatorSettings {
                windows: vec![
                    WindowSize::Min15,
                    WindowSize::Hour,
                    WindowSize::Day,
                    WindowSize::Month,
                ],
                allowed_lateness_secs: 120,
                max_reorder_readings: 16,
                max_gap_secs: 900,
            },
            gauge_stats: true,
            coefficients: CoefficientTable::builtin_2008(),
            electricity: ElectricityMethod::Equivalent,
            steam_reference_kj_per_kg: MAKE_UP_WATER_KJ_PER_KG,
            steam_margins: SteamMargins::DEFAULT,
        }
    }
}

/// `aggregation.electricity`: the installation's choice for electricity.
#[derive(Debug, Clone, PartialEq)]
pub enum ElectricityMethod {
    /// Equivalent value (当量值), the table's `electricity_equivalent` row (0.1229 kgce/kWh).
    Equivalent,
    /// Equal value (等价值): the generation coal rate of each year.
    EqualValue {
        /// `(year, kgce per kWh)`, ascending by year, not empty.
        by_year: Vec<(i16, f64)>,
    },
}

/// `[[mqtt]]`: one broker and what to subscribe to on it.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttBroker {
    /// Broker id (what meters name in `broker = "…"`).
    pub id: String,
    /// Host name or address.
    pub host: String,
    /// Port (default 1883, 8883 with TLS).
    pub port: u16,
    /// Client id; stable so the broker keeps the session (default
    /// `emgate-<gateway id>-<broker id>`, plus `-shard<K>of<N>` on a shard).
    pub client_id: String,
    /// Clean session / clean start (default false: the broker queues QoS 1/2
    /// messages while the gateway is away).
    pub clean_session: bool,
    /// Keep-alive interval (default 30 s).
    pub keep_alive: Duration,
    /// Protocol version (default 3.1.1).
    pub protocol: MqttProtocol,
    /// User name, when the broker wants one.
    pub username: Option<String>,
    /// Password (empty when none).
    pub password: Secret,
    /// TLS, when configured.
    pub tls: Option<MqttTls>,
    /// Payloads larger than this are rejected as `too_large` (default 65 536).
    pub max_payload_bytes: usize,
    /// Where rejected messages are republished (with the reason), if anywhere.
    pub dead_letter_topic: Option<String>,
    /// First reconnect delay (default 500 ms), doubled up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay (default 30 s).
    pub reconnect_max: Duration,
    /// Subscriptions, in configuration order.
    pub subscriptions: Vec<MqttSubscription>,
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttProtocol {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.
    V5,
}

/// TLS to a broker (rustls).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttTls {
    /// CA certificate(s) that sign the broker's certificate (PEM).
    pub ca_file: PathBuf,
    /// Client certificate (PEM), for brokers that require one.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

/// `[[mqtt.subscriptions]]`: a topic filter and how its payloads are read.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSubscription {
    /// The topic template as written, e.g. `energy/{site}/{meter}/up`:
    /// `{site}` and `{meter}` match one level and name it, `+` matches one
    /// level, a trailing `#` any rest.
    pub topic: String,
    /// QoS 0, 1 (default) or 2.
    pub qos: u8,
    /// Payload format.
    pub format: PayloadFormat,
    /// Where a reading's time comes from.
    pub timestamp: TimestampRule,
    /// Payload key (JSON: a key or a JSON pointer such as `/data/ep`; CSV and
    /// line protocol: a field name) to point name. Empty: the keys are the
    /// point names of the meter's profile.
    pub fields: Vec<(String, String)>,
    /// Extra factor per point name, applied to the payload's number.
    pub scale: Vec<(String, f64)>,
    /// JSON: a pointer to an array of readings, each with its own time stamp
    /// (e.g. `/readings`; `""` for a top-level array).
    pub array: Option<String>,
    /// JSON: the key holding the meter id when the topic has no `{meter}`.
    pub meter_field: Option<String>,
}

/// How a subscription's payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// A JSON object of fields (flat, or mapped by JSON pointers), or an
    /// array of such objects.
    Json,
    /// InfluxDB line protocol, one or more lines; the `meter` tag names the
    /// meter unless the topic does.
    LineProtocol,
    /// `meter,timestamp,field=value,…` per line.
    Csv,
}

/// Where a reading's time stamp comes from (configured, never guessed).
#[derive(Debug, Clone, PartialEq)]
pub enum TimestampRule {
    /// The time the message was received, in whole seconds.
    Receipt,
    /// From the payload: JSON key or pointer `field`; for line protocol the
    /// line's time stamp and for CSV the second column (`field` unused).
    Payload {
        /// JSON key or pointer of the time stamp.
        field: String,
        /// How it is written.
        unit: TimeUnit,
    },
}

/// How a payload time stamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Unix seconds.
    Seconds,
    /// Unix milliseconds.
    Millis,
    /// Unix nanoseconds.
    Nanos,
    /// RFC 3339 text, with or without a zone (the site's zone when absent).
    Rfc3339,
}
