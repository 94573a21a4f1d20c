//! What the main file's sections became once each was checked on its own:
//! the state the section checkers fill in and the site files and the
//! assembly read. It sits apart from `main_file.rs` so that the section
//! files (`modbus.rs`, `mqtt.rs`, ...) and `main_file.rs`, which calls them,
//! do not import each other.

use std::path::PathBuf;

use super::boilers::BoilerSettings;
use super::raw::SimulatorRaw;
use super::{
    AggregationSettings, ApiSettings, DtuSettings, EndpointConfig, GatewayConfig, MqttBroker,
    OutputConfig, ValidationSettings,
};
use crate::check::Problems;
use crate::spool::SpoolConfig;

/// The main file, checked as far as it can be on its own.
pub(super) struct Main {
    /// The main file's path (`emgate.toml` for texts given in code).
    pub(super) file: PathBuf,
    /// Its problems so far.
    pub(super) problems: Problems,
    /// `(key path, variable name)` of every environment override.
    pub(super) env_keys: Vec<(String, String)>,
    /// The main file alone, without the overrides (parsed only when there
    /// are overrides): tells which keys the file itself has.
    pub(super) file_table: Option<toml::Table>,
    /// `[gateway]`, with defaults where it is broken (later checks need a time zone).
    pub(super) gateway: GatewayConfig,
    /// `gateway.sites_dir`, relative to the main file's directory.
    pub(super) sites_dir: PathBuf,
    /// `gateway.profiles_dir`, relative to the main file's directory.
    pub(super) profiles_dir: PathBuf,
    /// The output; `None` where it is broken (its problems are recorded).
    pub(super) output: Option<OutputConfig>,
    /// Every declared endpoint id (valid or not) with its config when valid.
    pub(super) endpoints: Vec<(String, Option<EndpointConfig>)>,
    /// Every declared MQTT broker id (valid or not) with its config when valid.
    pub(super) brokers: Vec<(String, Option<MqttBroker>)>,
    /// `[simulator]` as written: checked after the site files, since its faults name meters.
    pub(super) simulator: Option<SimulatorRaw>,
    /// The other sections; `None` where broken.
    pub(super) spool: Option<SpoolConfig>,
    pub(super) validation: Option<ValidationSettings>,
    pub(super) aggregation: Option<AggregationSettings>,
    pub(super) api: Option<ApiSettings>,
    pub(super) dtu: Option<DtuSettings>,
    /// `[boiler]`; `None` where broken.
    pub(super) boiler: Option<BoilerSettings>,
}
