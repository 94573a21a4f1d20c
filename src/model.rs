//! The data model every component shares: interned ids, quality bits and the
//! reading batches that travel from sources through the pipeline to the sinks.
//!
//! Ids are small integers assigned once when the configuration is loaded
//! (the configuration's `Config` owns the strings), so the hot path copies numbers
//! and never allocates per reading.

use std::fmt;

/// Index of a meter in the configuration's `Config::meters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterId(pub u32);

/// Index of a site in the configuration's `Config::sites`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(pub u32);

/// Index of a Modbus endpoint in the configuration's `Config::endpoints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u32);

/// Index of an MQTT broker in the configuration's `Config::mqtt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerId(pub u32);

impl BrokerId {
    /// The index as `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a profile in the configuration's `Config::profiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub u32);

impl MeterId {
    /// The index as `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl SiteId {
    /// The index as `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl EndpointId {
    /// The index as `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
impl ProfileId {
    /// The index as `usize`, for table lookups.
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Quality bitmask of a point or a whole reading (SCHEMA.md). `0` means good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quality(pub u16);

impl Quality {
    /// Every point good.
    pub const GOOD: Quality = Quality(0);
    /// Timeout or no response.
    pub const TIMEOUT: Quality = Quality(1);
    /// Modbus exception or protocol error.
    pub const EXCEPTION: Quality = Quality(2);
    /// Out of the plausible range.
    pub const RANGE: Quality = Quality(4);
    /// Counter went backwards (reset or replacement).
    pub const BACKWARDS: Quality = Quality(8);
    /// Counter rollover handled.
    pub const ROLLOVER: Quality = Quality(16);
    /// Rate above the physical maximum.
    pub const SPIKE: Quality = Quality(32);
    /// Frozen value.
    pub const FROZEN: Quality = Quality(64);
    /// Sentinel value (NaN, 0xFFFF, ...).
    pub const SENTINEL: Quality = Quality(128);
    /// Timestamp skew or late.
    pub const TIME: Quality = Quality(256);
    /// Duplicate of a slot already seen.
    pub const DUPLICATE: Quality = Quality(512);
    /// Meter calibration expired.
    pub const CALIBRATION: Quality = Quality(1024);
    /// Estimated (interpolated, not measured).
    pub const ESTIMATED: Quality = Quality(2048);

    /// Bits and the reason word used in `q_detail`, logs and metrics.
    pub const REASONS: [(Quality, &'static str); 12] = [
        (Quality::TIMEOUT, "timeout"),
        (Quality::EXCEPTION, "exception"),
        (Quality::RANGE, "range"),
        (Quality::BACKWARDS, "backwards"),
        (Quality::ROLLOVER, "rollover"),
        (Quality::SPIKE, "spike"),
        (Quality::FROZEN, "frozen"),
        (Quality::SENTINEL, "sentinel"),
        (Quality::TIME, "time"),
        (Quality::DUPLICATE, "duplicate"),
        (Quality::CALIBRATION, "calibration"),
        (Quality::ESTIMATED, "estimated"),
    ];

    /// True when no bit is set.
    #[must_use]
    pub fn is_good(self) -> bool {
        self.0 == 0
    }

    /// True when every bit of `other` is set in `self`.
    #[must_use]
    pub fn contains(self, other: Quality) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Quality) {
        self.0 |= other.0;
    }

    /// Reason words of the set bits, lowest bit first.
    pub fn reasons(self) -> impl Iterator<Item = &'static str> {
        Quality::REASONS
            .iter()
            .filter(move |(bit, _)| self.contains(*bit))
            .map(|(_, word)| *word)
    }
}

impl std::ops::BitOr for Quality {
    type Output = Quality;
    fn bitor(self, rhs: Quality) -> Quality {
        Quality(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Quality {
    fn bitor_assign(&mut self, rhs: Quality) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for word in self.reasons() {
            if !first {
                f.write_str("+")?;
            }
            f.write_str(word)?;
            first = false;
        }
        if first {
            f.write_str("good")?;
        }
        Ok(())
    }
}

/// Why a point has no value, more precisely than its quality bit: which
/// check an answer failed, or why no request could be sent. Written after
/// the reason in `q_detail` (`import_kwh:exception:wrong_count`) and
/// counted per detail in the metrics. [`Detail::NONE`] adds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Detail(pub u8);

impl Detail {
    /// No detail beyond the quality bit.
    pub const NONE: Detail = Detail(0);
    /// A well-formed answer with another number of registers or bits than asked.
    pub const WRONG_COUNT: Detail = Detail(1);
    /// A well-formed answer from another unit id than the one asked.
    pub const WRONG_UNIT: Detail = Detail(2);
    /// A well-formed answer to another function code.
    pub const WRONG_FUNCTION: Detail = Detail(3);
    /// A Modbus TCP answer under another transaction id (a late answer).
    pub const WRONG_TRANSACTION: Detail = Detail(4);
    /// An RTU frame whose CRC does not fit.
    pub const BAD_CRC: Detail = Detail(5);
    /// A frame whose lengths disagree (MBAP length against the byte count).
    pub const BAD_LENGTH: Detail = Detail(6);
    /// Bytes arrived, but no frame that answers the request.
    pub const GARBAGE: Detail = Detail(7);
    /// The link closed in the middle of an answer.
    pub const TRUNCATED: Detail = Detail(8);
    /// No request was sent: the wire (a dial-in DTU) is not connected.
    pub const NOT_CONNECTED: Detail = Detail(9);
    /// DL/T 645: an answer from another meter address.
    pub const WRONG_ADDRESS: Detail = Detail(10);
    /// DL/T 645: an answer for another data identifier.
    pub const WRONG_DI: Detail = Detail(11);
    /// DL/T 645: a frame whose checksum (or end byte) does not fit.
    pub const BAD_CHECKSUM: Detail = Detail(12);
    /// DL/T 645: a value with a digit that is not BCD.
    pub const BAD_BCD: Detail = Detail(13);
    /// DL/T 645 error answer: other error (bit 0).
    pub const DLT645_OTHER: Detail = Detail(14);
    /// DL/T 645 error answer: no requested data (bit 1).
    pub const DLT645_NO_DATA: Detail = Detail(15);
    /// DL/T 645 error answer: password wrong or not authorised (bit 2).
    pub const DLT645_PASSWORD: Detail = Detail(16);
    /// DL/T 645 error answer: the baud rate cannot be changed (bit 3).
    pub const DLT645_BAUD: Detail = Detail(17);
    /// DL/T 645 error answer: too many annual time zones (bit 4).
    pub const DLT645_YEAR_ZONES: Detail = Detail(18);
    /// DL/T 645 error answer: too many daily time periods (bit 5).
    pub const DLT645_DAY_PERIODS: Detail = Detail(19);
    /// DL/T 645 error answer: too many tariffs (bit 6).
    pub const DLT645_TARIFFS: Detail = Detail(20);

    /// Every detail but [`Detail::NONE`], with its word.
    pub const NAMES: [(Detail, &'static str); 20] = [
        (Detail::WRONG_COUNT, "wrong_count"),
        (Detail::WRONG_UNIT, "wrong_unit"),
        (Detail::WRONG_FUNCTION, "wrong_function"),
        (Detail::WRONG_TRANSACTION, "wrong_transaction"),
        (Detail::BAD_CRC, "bad_crc"),
        (Detail::BAD_LENGTH, "bad_length"),
        (Detail::GARBAGE, "garbage"),
        (Detail::TRUNCATED, "truncated"),
        (Detail::NOT_CONNECTED, "not_connected"),
        (Detail::WRONG_ADDRESS, "wrong_address"),
        (Detail::WRONG_DI, "wrong_di"),
        (Detail::BAD_CHECKSUM, "bad_checksum"),
        (Detail::BAD_BCD, "bad_bcd"),
        (Detail::DLT645_OTHER, "dlt645:other"),
        (Detail::DLT645_NO_DATA, "dlt645:no_data"),
        (Detail::DLT645_PASSWORD, "dlt645:password"),
        (Detail::DLT645_BAUD, "dlt645:baud_rate"),
        (Detail::DLT645_YEAR_ZONES, "dlt645:year_zones"),
        (Detail::DLT645_DAY_PERIODS, "dlt645:day_periods"),
        (Detail::DLT645_TARIFFS, "dlt645:tariffs"),
    ];

    /// The word written to `q_detail`; `None` for [`Detail::NONE`].
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Detail::NAMES
            .iter()
            .find(|(d, _)| *d == self)
            .map(|(_, n)| *n)
    }
}

/// The energy carried by a meter; one vocabulary for tags, config and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyType {
    /// Electric energy (kWh).
    Electricity,
    /// Natural gas (Nm³).
    NaturalGas,
    /// Steam (t).
    Steam,
    /// Water (m³).
    Water,
    /// Heat carried by hot water (GJ).
    Heat,
    /// Coal (t).
    Coal,
    /// Compressed air (m³).
    CompressedAir,
}

impl EnergyType {
    /// Every energy type, in tag order.
    pub const ALL: [EnergyType; 7] = [
        EnergyType::Electricity,
        EnergyType::NaturalGas,
        EnergyType::Steam,
        EnergyType::Water,
        EnergyType::Heat,
        EnergyType::Coal,
        EnergyType::CompressedAir,
    ];

    /// The tag value written to InfluxDB.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyType::Electricity => "electricity",
            EnergyType::NaturalGas => "natural_gas",
            EnergyType::Steam => "steam",
            EnergyType::Water => "water",
            EnergyType::Heat => "heat",
            EnergyType::Coal => "coal",
            EnergyType::CompressedAir => "compressed_air",
        }
    }
}

impl fmt::Display for EnergyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metering level per GB 17167: 1 enterprise boundary, 2 main sub-unit, 3 main equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Level(pub u8);

impl Level {
    /// The tag value written to InfluxDB (`"1"`, `"2"`, `"3"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self.0 {
            1 => "1",
            2 => "2",
            _ => "3",
        }
    }
}

/// One point's value after scaling, with its quality.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PointValue {
    /// Value in the point's documented unit; meaningless when quality says no value
    /// was obtained (timeout, exception), in which case it is `NaN`.
    pub value: f64,
    /// Quality bits of this point.
    pub quality: Quality,
    /// Why there is no value, when a check says more than the bit.
    pub detail: Detail,
}

impl PointValue {
    /// A value with its quality.
    #[must_use]
    pub fn new(value: f64, quality: Quality) -> PointValue {
        PointValue {
            value,
            quality,
            detail: Detail::NONE,
        }
    }

    /// A point with no value, marked with `quality`.
    #[must_use]
    pub fn missing(quality: Quality) -> PointValue {
        PointValue {
            value: f64::NAN,
            quality,
            detail: Detail::NONE,
        }
    }

    /// A point with no value, marked with `quality` and `detail`.
    #[must_use]
    pub fn failed(quality: Quality, detail: Detail) -> PointValue {
        PointValue {
            value: f64::NAN,
            quality,
            detail,
        }
    }

    /// True when a number was obtained (it may still be flagged).
    #[must_use]
    pub fn has_value(&self) -> bool {
        !self.quality.contains(Quality::TIMEOUT) && !self.quality.contains(Quality::EXCEPTION)
    }
}

/// One meter's reading for one slot. Its point values live in the enclosing
/// [`ReadingBatch::values`] at `values_start..values_start + n_points`, in the
/// order of the meter's profile points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The meter.
    pub meter: MeterId,
    /// Slot time, Unix seconds (SCHEMA.md: the scheduled poll time).
    pub slot: i64,
    /// Acquisition time minus slot time, milliseconds.
    pub lag_ms: i64,
    /// First value of this reading in the batch's `values`.
    pub values_start: u32,
    /// Number of values (the profile's point count).
    pub n_points: u16,
}

/// A batch of readings, the unit moved over channels between components.
///
/// Values are stored flat so a batch of many readings costs two allocations,
/// and batches can be cleared and reused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadingBatch {
    /// The readings.
    pub readings: Vec<Reading>,
    /// Point values of every reading, back to back.
    pub values: Vec<PointValue>,
}

impl ReadingBatch {
    /// An empty batch with room for `readings` readings of about `points` points each.
    #[must_use]
    pub fn with_capacity(readings: usize, points: usize) -> ReadingBatch {
        ReadingBatch {
            readings: Vec::with_capacity(readings),
            values: Vec::with_capacity(readings * points),
        }
    }

    /// Appends a reading whose values are given by `values`.
    pub fn push(&mut self, meter: MeterId, slot: i64, lag_ms: i64, values: &[PointValue]) {
        let start = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        let n = u16::try_from(values.len()).unwrap_or(u16::MAX);
        self.values.extend_from_slice(&values[..usize::from(n)]);
        self.readings.push(Reading {
            meter,
            slot,
            lag_ms,
            values_start: start,
            n_points: n,
        });
    }

    /// The values of `reading`, which must belong to this batch.
    #[must_use]
    pub fn values_of(&self, reading: &Reading) -> &[PointValue] {
        let start = reading.values_start as usize;
        &self.values[start..start + usize::from(reading.n_points)]
    }

    /// Mutable values of the reading at `index`.
    pub fn values_of_mut(&mut self, index: usize) -> &mut [PointValue] {
        let r = self.readings[index];
        let start = r.values_start as usize;
        &mut self.values[start..start + usize::from(r.n_points)]
    }

    /// Removes every reading, keeping the allocations.
    pub fn clear(&mut self) {
        self.readings.clear();
        self.values.clear();
    }

    /// Number of readings.
    #[must_use]
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// True when the batch holds no reading.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }
}

/// How a steam meter's state is decided (`steam_state` in profiles and
/// meters; the rule is in `pipeline::steam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SteamState {
    /// From the temperature against saturation.
    #[default]
    Auto,
    /// Always saturated: enthalpy from pressure and dryness alone.
    Saturated,
    /// Always superheated: h(p, T).
    Superheated,
}

impl SteamState {
    /// Name as written in configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SteamState::Auto => "auto",
            SteamState::Saturated => "saturated",
            SteamState::Superheated => "superheated",
        }
    }

    /// The state named `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<SteamState> {
        match s {
            "auto" => Some(SteamState::Auto),
            "saturated" => Some(SteamState::Saturated),
            "superheated" => Some(SteamState::Superheated),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_display_lists_reasons() {
        assert_eq!(Quality::GOOD.to_string(), "good");
        assert_eq!(
            (Quality::TIMEOUT | Quality::SENTINEL).to_string(),
            "timeout+sentinel"
        );
    }

    #[test]
    fn batch_slices_values_per_reading() {
        let mut b = ReadingBatch::default();
        let v = |x| PointValue::new(x, Quality::GOOD);
        b.push(MeterId(0), 60, 5, &[v(1.0), v(2.0)]);
        b.push(MeterId(1), 60, 7, &[v(3.0)]);
        assert_eq!(b.values_of(&b.readings[1]), &[v(3.0)]);
        assert_eq!(b.values_of(&b.readings[0]).len(), 2);
    }
}
