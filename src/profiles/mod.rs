//! Meter profiles: the register map of a meter model, as data.
//!
//! A profile (a TOML file under `config/profiles/`) lists the points a meter
//! model offers: where each lives (register kind and 0-based address), how
//! its bits become a number (data type, word and byte order, scale, offset,
//! PT/CT ratio), and what the number means (counter or gauge, unit, field
//! name). Adding a meter model needs no code (ARCHITECTURE.md decision 5).
//!
//! This module holds the point model shared by the config loader, the
//! request planner, the decoder and the simulator; [`load`] reads the files.

pub mod codec;
pub mod dlt645;
pub mod load;
mod raw;

use serde::Deserialize;

/// Which Modbus table a point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// Coils (FC 01), one bit each.
    Coil,
    /// Discrete inputs (FC 02), one bit each.
    Discrete,
    /// Input registers (FC 04), 16 bits each.
    Input,
    /// Holding registers (FC 03), 16 bits each.
    Holding,
}

impl RegisterKind {
    /// True for the bit tables (coils and discrete inputs).
    #[must_use]
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    /// Name as written in profiles.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Input => "input",
            RegisterKind::Holding => "holding",
        }
    }
}

/// How the registers of a point encode its raw number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// One bit (coils and discrete inputs only): 0 or 1.
    Bool,
    /// Unsigned 16-bit integer, one register.
    U16,
    /// Signed 16-bit integer, one register.
    I16,
    /// Unsigned 32-bit integer, two registers.
    U32,
    /// Signed 32-bit integer, two registers.
    I32,
    /// Unsigned 64-bit integer, four registers.
    U64,
    /// Signed 64-bit integer, four registers.
    I64,
    /// IEEE-754 single precision, two registers.
    F32,
    /// IEEE-754 double precision, four registers.
    F64,
}

impl DataType {
    /// Number of 16-bit registers (or bits, for [`DataType::Bool`]) the type spans.
    #[must_use]
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

/// Word and byte order, named by where the bytes of a big-endian value
/// `A B C D` (A most significant) end up on the wire.
///
/// * `ABCD`: big-endian words, big-endian bytes (the Modbus default).
/// * `CDAB`: words swapped (least significant register first), bytes big-endian.
/// * `BADC`: words big-endian, bytes swapped within each register.
/// * `DCBA`: fully little-endian.
///
/// For 64-bit types the same rule extends to four registers; for 16-bit types
/// only the byte order matters (`ABCD`/`CDAB` = `AB`, `BADC`/`DCBA` = `BA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
pub enum ByteOrder {
    /// Big-endian words and bytes.
    #[default]
    #[serde(rename = "ABCD", alias = "abcd")]
    Abcd,
    /// Little-endian word order, big-endian bytes.
    #[serde(rename = "CDAB", alias = "cdab")]
    Cdab,
    /// Big-endian word order, bytes swapped in each word.
    #[serde(rename = "BADC", alias = "badc")]
    Badc,
    /// Little-endian words and bytes.
    #[serde(rename = "DCBA", alias = "dcba")]
    Dcba,
}

/// What a point's value means over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// A cumulative register (energy, volume, mass, heat) that only grows,
    /// apart from rollovers and replacements.
    Counter,
    /// An instantaneous value (power, flow, pressure, temperature).
    #[default]
    Gauge,
}

/// Which transformer ratios multiply a point's value (integer maps such as
/// Acrel's report secondary-side values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RatioScaling {
    /// No ratio applies.
    #[default]
    None,
    /// Multiplied by the voltage-transformer ratio.
    Pt,
    /// Multiplied by the current-transformer ratio.
    Ct,
    /// Multiplied by PT × CT.
    PtCt,
}

/// One point of a profile, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PointDef {
    /// Field name in InfluxDB, `<quantity>_<unit>` (SCHEMA.md), e.g. `import_kwh`.
    pub name: String,
    /// Register table.
    pub register: RegisterKind,
    /// 0-based protocol address of the first register or bit.
    pub address: u16,
    /// Encoding of the raw number.
    pub data_type: DataType,
    /// Word and byte order.
    pub order: ByteOrder,
    /// Multiplier applied to the raw number.
    pub scale: f64,
    /// Added after scaling: `value = raw × scale × ratio + offset`.
    pub offset: f64,
    /// Transformer ratios that multiply the value.
    pub ratio: RatioScaling,
    /// Counter or gauge.
    pub kind: PointKind,
    /// Unit of the scaled value, lowercase (`kwh`, `kw`, `m3`, `t`, `mpa`, `c`, `gj`, ...).
    pub unit: String,
    /// Raw values that mean "no value" besides NaN and infinities.
    pub sentinels: Vec<f64>,
    /// Plausible range of the scaled value, if declared.
    pub min: Option<f64>,
    /// Plausible range of the scaled value, if declared.
    pub max: Option<f64>,
    /// Value at which a counter wraps to zero, in the scaled unit, if declared.
    pub rollover: Option<f64>,
    /// Counters: the physically possible increase per hour (rated power or
    /// flow); faster increases are spikes.
    pub max_rate_per_hour: Option<f64>,
    /// Counters: how far above `max_rate_per_hour` an increase may go before
    /// it is a spike (default 1.5).
    pub spike_margin: Option<f64>,
    /// Gauges: this many bit-identical polls in a row make the value frozen.
    pub frozen_after: Option<u32>,
    /// Gauges: the counter (by name) this gauge is the hourly rate of, in the
    /// counter's unit per hour (`power_kw` for `import_kwh`); a counter that
    /// stands still while its rate says it should move is frozen.
    pub rate_of: Option<String>,
    /// DL/T 645 profiles: the data identifier and BCD format of the point
    /// (`None` in Modbus profiles). For these points `register`, `address`,
    /// `data_type` and `order` are unused placeholders (holding, 0, u16, ABCD).
    pub dlt645: Option<Dlt645Point>,
}

impl PointDef {
    /// A point with the profile defaults: byte order ABCD, scale 1, offset
    /// 0, no PT/CT ratio, a gauge without unit, sentinels, range or
    /// rollover. Change the rest with struct update syntax:
    ///
    /// ```
    /// use emgate::profiles::{DataType, PointDef, PointKind, RegisterKind};
    /// let import = PointDef {
    ///     kind: PointKind::Counter,
    ///     scale: 0.01,
    ///     ..PointDef::new("import_kwh", RegisterKind::Holding, 0x000A, DataType::U32)
    /// };
    /// assert_eq!(import.end_address(), 0x000B);
    /// ```
    #[must_use]
    pub fn new(name: &str, register: RegisterKind, address: u16, data_type: DataType) -> PointDef {
        PointDef {
            name: name.to_owned(),
            register,
            address,
            data_type,
            order: ByteOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            ratio: RatioScaling::None,
            kind: PointKind::Gauge,
            unit: String::new(),
            sentinels: Vec::new(),
            min: None,
            max: None,
            rollover: None,
            max_rate_per_hour: None,
            spike_margin: None,
            frozen_after: None,
            rate_of: None,
            dlt645: None,
        }
    }

    /// Number of registers (or bits) the point spans.
    #[must_use]
    pub fn width(&self) -> u16 {
        self.data_type.width()
    }

    /// Last address the point occupies, as `u32` so that overflow past 65535 is visible.
    #[must_use]
    pub fn end_address(&self) -> u32 {
        u32::from(self.address) + u32::from(self.width()) - 1
    }
}

/// The protocol of a profile's meters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Modbus (TCP or RTU): points are registers.
    Modbus,
    /// DL/T 645-2007: points are data identifiers.
    Dlt645,
}

/// Where a DL/T 645 point's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dlt645Point {
    /// Data identifier (`di = "00010000"`).
    pub di: dlt645::Di,
    /// BCD format (`format = "XXXXXX.XX"`, `signed = true` for power, current, power factor).
    pub format: dlt645::Format,
}

/// A meter model's register map, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile id, the file stem (`sdm630`).
    pub id: String,
    /// The protocol its meters speak (`protocol = "modbus" | "dlt645"`).
    pub protocol: Protocol,
    /// Human description (manufacturer and model).
    pub description: String,
    /// The points, in the order readings carry their values.
    pub points: Vec<PointDef>,
    /// True when some point scales by PT or CT, so meters using the profile must state them.
    pub uses_ratios: bool,
    /// The counter aggregated into `consumption` by default (profile key
    /// `consumption`, else the first counter); `None` when there is no counter.
    pub consumption: Option<usize>,
    /// The pressure gauge (MPa gauge) steam enthalpy uses (profile key
    /// `pressure`, else a gauge named `pressure_mpa`).
    pub pressure: Option<usize>,
    /// The temperature gauge (°C) steam enthalpy uses (profile key
    /// `temperature`, else a gauge named `temperature_c`).
    pub temperature: Option<usize>,
    /// How steam meters using this profile decide saturated or superheated
    /// (profile key `steam_state`; a meter's own key wins; default auto).
    pub steam_state: Option<crate::model::SteamState>,
    /// Dryness fraction of saturated steam (profile key `steam_dryness`;
    /// a meter's own key wins; default 1).
    pub steam_dryness: Option<f64>,
}

impl Profile {
    /// Index of the point named `name`.
    #[must_use]
    pub fn point_index(&self, name: &str) -> Option<usize> {
        self.points.iter().position(|p| p.name == name)
    }
}
