//! Profile files: one TOML file per meter model, checked point by point.
//!
//! A profile is data that decides where every number of a meter comes from,
//! so a wrong address or type silently corrupts a time series for years.
//! This loader therefore checks everything it can without a meter: names
//! (InfluxDB field names, unique), register kinds against data types,
//! 0-based addresses that fit the 16-bit address space, finite scales,
//! plausible ranges, rollovers. Every problem is reported, each as
//! `FILE: points[i].key: message`.
//!
//! The profiles shipped in `config/profiles/` are also compiled into the
//! binary ([`builtin`]) so `emgate demo` works from any directory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::check::{
    self, ConfigError, Flag, Float, Int, Problems, Text, choice, choice_ci, is_valid_id,
};

use super::dlt645::{Di, Format};
use super::raw::{PointRaw, ProfileFile};
use super::{
    ByteOrder, DataType, Dlt645Point, PointDef, PointKind, Profile, Protocol, RatioScaling,
    RegisterKind,
};

/// Every shipped profile as `(id, TOML text)`, in id order.
#[must_use]
pub fn builtin() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "acrel_dtsd1352",
            include_str!("../../config/profiles/acrel_dtsd1352.toml"),
        ),
        (
            "belt_scale",
            include_str!("../../config/profiles/belt_scale.toml"),
        ),
        (
            "dlt645_3phase",
            include_str!("../../config/profiles/dlt645_3phase.toml"),
        ),
        (
            "eastron_sdm630",
            include_str!("../../config/profiles/eastron_sdm630.toml"),
        ),
        (
            "gas_flow_computer",
            include_str!("../../config/profiles/gas_flow_computer.toml"),
        ),
        (
            "generic_3phase_meter",
            include_str!("../../config/profiles/generic_3phase_meter.toml"),
        ),
        (
            "heat_meter",
            include_str!("../../config/profiles/heat_meter.toml"),
        ),
        (
            "steam_flow_computer",
            include_str!("../../config/profiles/steam_flow_computer.toml"),
        ),
        (
            "water_meter",
            include_str!("../../config/profiles/water_meter.toml"),
        ),
    ]
}

/// Field names the `reading` measurement uses itself (SCHEMA.md).
const RESERVED_NAMES: [&str; 3] = ["q", "q_detail", "lag_ms"];

const REGISTERS: [(&str, RegisterKind); 4] = [
    ("coil", RegisterKind::Coil),
    ("discrete", RegisterKind::Discrete),
    ("input", RegisterKind::Input),
    ("holding", RegisterKind::Holding),
];

const TYPES: [(&str, DataType); 9] = [
    ("u16", DataType::U16),
    ("i16", DataType::I16),
    ("u32", DataType::U32),
    ("i32", DataType::I32),
    ("u64", DataType::U64),
    ("i64", DataType::I64),
    ("f32", DataType::F32),
    ("f64", DataType::F64),
    ("bool", DataType::Bool),
];

const ORDERS: [(&str, ByteOrder); 4] = [
    ("ABCD", ByteOrder::Abcd),
    ("CDAB", ByteOrder::Cdab),
    ("BADC", ByteOrder::Badc),
    ("DCBA", ByteOrder::Dcba),
];

const RATIOS: [(&str, RatioScaling); 4] = [
    ("none", RatioScaling::None),
    ("pt", RatioScaling::Pt),
    ("ct", RatioScaling::Ct),
    ("pt_ct", RatioScaling::PtCt),
];

const KINDS: [(&str, PointKind); 2] =
    [("counter", PointKind::Counter), ("gauge", PointKind::Gauge)];

/// Loads and checks the profile `id` from `text` (the contents of `file`).
///
/// # Errors
/// Every problem found, each located in `file`.
pub fn load_profile(id: &str, file: &Path, text: &str) -> Result<Profile, Vec<ConfigError>> {
    let mut p = Problems::new(file);
    if !is_valid_id(id) {
        p.push(
            "",
            format!(
                "\"{id}\" is not a valid profile id (the file name without \".toml\"); \
                 use ASCII letters, digits, \"_\", \"-\" and \".\""
            ),
        );
    }
    let profile = parse(id, text, &mut p);
    match profile {
        Some(profile) if p.list.is_empty() => Ok(profile),
        _ => Err(p.list),
    }
}

fn parse(id: &str, text: &str, p: &mut Problems) -> Option<Profile> {
    let root = check::parse_toml(text, p)?;
    let top: ProfileFile = check::table(root, "", "a table", p)?;
    let description = match top.description {
        Some(Text(d)) if !d.trim().is_empty() => d,
        Some(_) => {
            p.push(
                "description",
                "is empty; say which meter model this map is for and where it comes from",
            );
            String::new()
        }
        None => {
            p.push("description", "missing required key; say which meter model this map is for and where it comes from");
            String::new()
        }
    };
    let protocol = choice(
        top.protocol,
        "protocol",
        "protocol",
        &[("modbus", Protocol::Modbus), ("dlt645", Protocol::Dlt645)],
        Some(Protocol::Modbus),
        p,
    )
    .unwrap_or(Protocol::Modbus);
    let Some(points_value) = top.points else {
        p.push(
            "points",
            "missing; a profile needs at least one [[points]] table",
        );
        return None;
    };
    let items = check::array(points_value, "points", "an array of tables ([[points]])", p);
    if items.is_empty() {
        p.push(
            "points",
            "is empty; a profile needs at least one [[points]] table",
        );
    }
    let mut points = Vec::with_capacity(items.len());
    // Index in the file of each parsed point (a broken point is left out).
    let mut file_index = Vec::with_capacity(items.len());
    let errors_before_points = p.list.len();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("points[{i}]");
        let Some(raw_point) = check::table::<PointRaw>(item, &key, "a table", p) else {
            continue;
        };
        if let Some(point) = point(raw_point, &key, protocol, p) {
            if let Some(first) = seen.get(&point.name) {
                p.push(
                    format!("{key}.name"),
                    format!(
                        "duplicate point name \"{}\"; already used by points[{first}]",
                        point.name
                    ),
                );
            } else {
                seen.insert(point.name.clone(), i);
            }
            points.push(point);
            file_index.push(i);
        }
    }
    // `rate_of` must name a counter of the same profile (checked only when
    // every point parsed, so a broken counter is not reported as unknown).
    let all_parsed = p.list.len() == errors_before_points;
    for (pt, i) in points.iter().zip(&file_index).filter(|_| all_parsed) {
        let Some(target) = &pt.rate_of else {
            continue;
        };
        match points.iter().find(|c| &c.name == target) {
            Some(c) if c.kind == PointKind::Counter => {}
            Some(_) => p.push(
                format!("points[{i}].rate_of"),
                format!(
                    "\"{target}\" is a gauge; name the counter this point is the hourly rate of"
                ),
            ),
            None => p.push(
                format!("points[{i}].rate_of"),
                format!(
                    "unknown point \"{target}\"; counters of this profile: {}",
                    points
                        .iter()
                        .filter(|c| c.kind == PointKind::Counter)
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    let uses_ratios = points.iter().any(|pt| pt.ratio != RatioScaling::None);
    // Named points are resolved only when every point parsed, as for `rate_of`.
    let (consumption, pressure, temperature) = if all_parsed {
        (
            named_point(
                &points,
                top.consumption,
                "consumption",
                PointKind::Counter,
                None,
                p,
            )
            .or_else(|| points.iter().position(|x| x.kind == PointKind::Counter)),
            named_point(
                &points,
                top.pressure,
                "pressure",
                PointKind::Gauge,
                Some("mpa"),
                p,
            )
            .or_else(|| default_gauge(&points, "pressure_mpa")),
            named_point(
                &points,
                top.temperature,
                "temperature",
                PointKind::Gauge,
                Some("c"),
                p,
            )
            .or_else(|| default_gauge(&points, "temperature_c")),
        )
    } else {
        (None, None, None)
    };
    let (steam_state, steam_dryness) = check::steam_keys(top.steam_state, top.steam_dryness, "", p);
    Some(Profile {
        steam_state,
        steam_dryness,
        id: id.to_owned(),
        protocol,
        description,
        points,
        uses_ratios,
        consumption,
        pressure,
        temperature,
    })
}

/// The point a profile-level key (`consumption`, `pressure`, `temperature`)
/// names, checked for its kind and unit; `None` when absent or wrong.
fn named_point(
    points: &[PointDef],
    v: Option<Text>,
    key: &str,
    kind: PointKind,
    unit: Option<&str>,
    p: &mut Problems,
) -> Option<usize> {
    let Text(name) = v?;
    let kind_name = |k: PointKind| {
        if k == PointKind::Counter {
            "counter"
        } else {
            "gauge"
        }
    };
    let of_kind = || {
        points
            .iter()
            .filter(|x| x.kind == kind)
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(i) = points.iter().position(|x| x.name == name) else {
        p.push(
            key,
            format!(
                "unknown point \"{name}\"; {}s of this profile: {}",
                kind_name(kind),
                of_kind()
            ),
        );
        return None;
    };
    if points[i].kind != kind {
        p.push(
            key,
            format!(
                "\"{name}\" is a {}; name a {} of this profile: {}",
                kind_name(points[i].kind),
                kind_name(kind),
                of_kind()
            ),
        );
        return None;
    }
    if let Some(u) = unit
        && points[i].unit != u
    {
        p.push(
            key,
            format!(
                "\"{name}\" is in \"{}\"; steam enthalpy needs a gauge in \"{u}\"",
                points[i].unit
            ),
        );
        return None;
    }
    Some(i)
}

/// The gauge named `name`, if the profile has one.
fn default_gauge(points: &[PointDef], name: &str) -> Option<usize> {
    points
        .iter()
        .position(|x| x.name == name && x.kind == PointKind::Gauge)
}

/// Checks one point; `None` when something essential is missing or wrong.
fn point(mut r: PointRaw, key: &str, protocol: Protocol, p: &mut Problems) -> Option<PointDef> {
    let k = |sub: &str| format!("{key}.{sub}");
    let errors_before = p.list.len();
    let dlt645 = match protocol {
        Protocol::Modbus => {
            for (present, sub) in [
                (r.di.is_some(), "di"),
                (r.format.is_some(), "format"),
                (r.signed.is_some(), "signed"),
            ] {
                if present {
                    p.push(
                        k(sub),
                        "only for DL/T 645 profiles (protocol = \"dlt645\"); remove it, or set the profile's protocol",
                    );
                }
            }
            None
        }
        Protocol::Dlt645 => {
            let point = dlt645_point(&r, key, p);
            // The Modbus keys mean nothing here; placeholders keep one
            // point type (see `PointDef::dlt645`).
            r.register = Some(Text("holding".to_owned()));
            r.data_type = Some(Text("u16".to_owned()));
            r.address = Some(Int(0));
            r.order = None;
            point
        }
    };

    let name = match r.name {
        Some(Text(n)) if is_field_name(&n) => {
            if RESERVED_NAMES.contains(&n.as_str()) {
                p.push(k("name"), format!("\"{n}\" is reserved for the reading's own fields (q, q_detail, lag_ms); choose another name"));
            }
            n
        }
        Some(Text(n)) => {
            p.push(
                k("name"),
                format!(
                    "\"{n}\" is not a valid field name; use lowercase letters, digits and \"_\", \
                     starting with a letter, as <quantity>_<unit> (e.g. \"import_kwh\")"
                ),
            );
            n
        }
        None => {
            p.push(
                k("name"),
                "missing required key; give the field name, e.g. \"import_kwh\"",
            );
            String::new()
        }
    };
    let register = choice(r.register, &k("register"), "register", &REGISTERS, None, p);
    let data_type = choice(r.data_type, &k("type"), "type", &TYPES, None, p);
    let order = choice_ci(r.order, &k("order"), "order", &ORDERS, ByteOrder::Abcd, p);
    let ratio = choice(
        r.ratio,
        &k("ratio"),
        "ratio",
        &RATIOS,
        Some(RatioScaling::None),
        p,
    );
    let kind = choice(
        r.kind,
        &k("kind"),
        "kind",
        &KINDS,
        Some(PointKind::Gauge),
        p,
    );

    if let (Some(reg), Some(dt)) = (register, data_type) {
        if reg.is_bit() && dt != DataType::Bool {
            p.push(
                k("type"),
                format!(
                    "register \"{}\" holds single bits; use type = \"bool\"",
                    reg.as_str()
                ),
            );
        } else if !reg.is_bit() && dt == DataType::Bool {
            p.push(
                k("type"),
                format!(
                    "\"bool\" is only for coil and discrete registers; use a numeric type such as \"u16\" for register \"{}\"",
                    reg.as_str()
                ),
            );
        }
    }

    let address = match r.address {
        None => {
            p.push(
                k("address"),
                "missing required key; give the 0-based protocol address (0..=65535)",
            );
            None
        }
        Some(Int(a)) if a < 0 => {
            p.push(
                k("address"),
                format!("{a} is not a valid address; addresses are 0-based, 0..=65535"),
            );
            None
        }
        Some(Int(a)) if a > 65535 => {
            let mut msg = format!("{a} is beyond 65535");
            // 300001/400001-style numbers are 1-based register numbers with a table prefix.
            if let Some(base) = [300_001, 400_001]
                .into_iter()
                .find(|b| (*b..*b + 65536).contains(&a))
            {
                let _ = write!(
                    msg,
                    "; {a} looks like a 1-based register number, whose 0-based address is {}",
                    a - base
                );
            }
            p.push(k("address"), msg);
            None
        }
        // A five-digit number in the table's own Modicon range (3xxxx for
        // input, 4xxxx for holding registers) is a 1-based register number,
        // not a 0-based address: taken literally it would poll 30 000 or
        // 40 000 registers away from the value.
        Some(Int(a)) => match modicon_base(register, a) {
            Some(base) => {
                p.push(
                    k("address"),
                    format!(
                        "{a} looks like a 1-based register number, whose 0-based address \
                         is {}; addresses are 0-based protocol addresses",
                        a - base
                    ),
                );
                None
            }
            None => u16::try_from(a).ok(),
        },
    };
    if let (Some(a), Some(dt)) = (address, data_type) {
        let end = u32::from(a) + u32::from(dt.width()) - 1;
        if end > 65535 {
            p.push(
                k("address"),
                format!(
                    "a {} at {a} spans {} registers and ends at {end}, beyond 65535",
                    type_name(dt),
                    dt.width()
                ),
            );
        }
    }

    let scale = finite(r.scale, &k("scale"), 1.0, p);
    if scale == 0.0 {
        p.push(k("scale"), "0 would make every value 0; use a non-zero multiplier (1 when the register holds the value itself)");
    }
    let offset = finite(r.offset, &k("offset"), 0.0, p);

    let unit = match r.unit {
        Some(Text(u))
            if !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            u
        }
        Some(Text(u)) => {
            p.push(
                k("unit"),
                format!("\"{u}\" is not a valid unit; use lowercase letters, digits and \"_\" (e.g. \"kwh\", \"m3h\", \"mpa\", \"c\")"),
            );
            u
        }
        None => {
            p.push(
                k("unit"),
                "missing required key; give the unit of the scaled value, e.g. \"kwh\"",
            );
            String::new()
        }
    };

    let mut sentinels = Vec::new();
    for (i, Float(s)) in r.sentinels.unwrap_or_default().into_iter().enumerate() {
        if s.is_finite() {
            sentinels.push(s);
        } else {
            p.push(
                format!("{key}.sentinels[{i}]"),
                format!("{s} is always treated as \"no value\"; list only finite raw values"),
            );
        }
    }
    let min = r
        .min
        .map(|Float(v)| finite(Some(Float(v)), &k("min"), 0.0, p));
    let max = r
        .max
        .map(|Float(v)| finite(Some(Float(v)), &k("max"), 0.0, p));
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        p.push(
            k("max"),
            format!("{hi} is below min ({lo}); the plausible range must have min <= max"),
        );
    }
    let rollover = r
        .rollover
        .map(|Float(v)| finite(Some(Float(v)), &k("rollover"), 0.0, p));
    if let Some(roll) = rollover {
        if roll <= 0.0 {
            p.push(k("rollover"), format!("{roll} is not a valid rollover; use the positive value at which the counter wraps to 0"));
        }
        if kind == Some(PointKind::Gauge) {
            p.push(
                k("rollover"),
                "only counters roll over; remove it or set kind = \"counter\"",
            );
        }
        if let Some(rs) = ratio.filter(|r| *r != RatioScaling::None) {
            p.push(
                k("rollover"),
                format!(
                    "cannot be combined with ratio = \"{}\": the wrap value would depend on each meter's PT/CT; leave it out",
                    RATIOS.iter().find(|(_, v)| *v == rs).map_or("", |(n, _)| n)
                ),
            );
        }
    }

    let max_rate_per_hour = r
        .max_rate_per_hour
        .map(|Float(v)| finite(Some(Float(v)), &k("max_rate_per_hour"), 0.0, p));
    if let Some(rate) = max_rate_per_hour
        && rate <= 0.0
    {
        p.push(
            k("max_rate_per_hour"),
            format!(
                "{rate} is not a valid rate; give the largest possible increase per hour, above 0"
            ),
        );
    }
    let spike_margin = r
        .spike_margin
        .map(|Float(v)| finite(Some(Float(v)), &k("spike_margin"), 1.0, p));
    if let Some(m) = spike_margin
        && m < 1.0
    {
        p.push(
            k("spike_margin"),
            format!(
                "{m} would flag increases below the physical maximum; use 1 or more (default 1.5)"
            ),
        );
    }
    if (max_rate_per_hour.is_some() || spike_margin.is_some()) && kind == Some(PointKind::Gauge) {
        p.push(
            k("max_rate_per_hour"),
            "spike rules apply to counters only; remove it or set kind = \"counter\"",
        );
    }
    let frozen_after = match r.frozen_after {
        None => None,
        Some(Int(n)) if (2..=i64::from(u32::MAX)).contains(&n) => u32::try_from(n).ok(),
        Some(Int(n)) => {
            p.push(k("frozen_after"), format!("{n} is not a valid count; give the number of identical polls (at least 2) that means frozen"));
            None
        }
    };
    let rate_of = r.rate_of.map(|Text(t)| t);
    if (frozen_after.is_some() || rate_of.is_some()) && kind == Some(PointKind::Counter) {
        p.push(
            k(if frozen_after.is_some() { "frozen_after" } else { "rate_of" }),
            "applies to gauges only (a counter's frozen rule comes from the gauge that names it in `rate_of`)",
        );
    }

    if p.list.len() > errors_before {
        return None;
    }
    Some(PointDef {
        name,
        register: register?,
        address: address?,
        data_type: data_type?,
        order,
        scale,
        offset,
        ratio: ratio?,
        kind: kind?,
        unit,
        sentinels,
        min,
        max,
        rollover,
        max_rate_per_hour,
        spike_margin,
        frozen_after,
        rate_of,
        dlt645,
    })
}

/// A DL/T 645 point's `di`, `format` and `signed`; the Modbus keys are errors.
fn dlt645_point(r: &PointRaw, key: &str, p: &mut Problems) -> Option<Dlt645Point> {
    let k = |sub: &str| format!("{key}.{sub}");
    for (present, sub) in [
        (r.register.is_some(), "register"),
        (r.address.is_some(), "address"),
        (r.data_type.is_some(), "type"),
        (r.order.is_some(), "order"),
    ] {
        if present {
            p.push(
                k(sub),
                "does not apply to a DL/T 645 point; give `di` and `format` instead",
            );
        }
    }
    let di = match &r.di {
        None => {
            p.push(
                k("di"),
                "missing required key; give the data identifier as 8 hex digits DI3..DI0, e.g. \"00010000\" (forward active energy, total)",
            );
            None
        }
        Some(Text(t)) => {
            let di = Di::parse(t);
            if di.is_none() {
                p.push(
                    k("di"),
                    format!("\"{}\" is not a data identifier; write 8 hex digits DI3..DI0 as in the standard's tables, e.g. \"00010000\"", check::shorten(t)),
                );
            }
            di
        }
    };
    let signed = r.signed.as_ref().is_some_and(|Flag(b)| *b);
    let format = match &r.format {
        None => {
            p.push(
                k("format"),
                "missing required key; give the BCD format from the standard's tables, e.g. \"XXXXXX.XX\" (energy) or \"XXX.X\" (voltage)",
            );
            None
        }
        Some(Text(t)) => {
            let parsed = Format::parse(t, signed);
            if parsed.is_none() {
                p.push(
                    k("format"),
                    format!("\"{}\" is not a BCD format; write an even number of X (at most 16) with at most one \".\", e.g. \"XXXXXX.XX\", \"XX.XXXX\"", check::shorten(t)),
                );
            }
            parsed
        }
    };
    Some(Dlt645Point {
        di: di?,
        format: format?,
    })
}

/// The Modicon base (30001 or 40001) when `address` is a five-digit
/// register number in the range of its own table (`30001..=39999` for input,
/// `40001..=49999` for holding registers).
fn modicon_base(register: Option<RegisterKind>, address: i64) -> Option<i64> {
    match register? {
        RegisterKind::Input if (30_001..=39_999).contains(&address) => Some(30_001),
        RegisterKind::Holding if (40_001..=49_999).contains(&address) => Some(40_001),
        _ => None,
    }
}

/// True for `^[a-z][a-z0-9_]*$`.
fn is_field_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn type_name(dt: DataType) -> &'static str {
    TYPES.iter().find(|(_, t)| *t == dt).map_or("", |(n, _)| n)
}

/// A finite number, or `default` when absent.
fn finite(v: Option<Float>, key: &str, default: f64, p: &mut Problems) -> f64 {
    match v {
        None => default,
        Some(Float(x)) if x.is_finite() => x,
        Some(Float(x)) => {
            p.push(key, format!("{x} is not a finite number"));
            default
        }
    }
}
