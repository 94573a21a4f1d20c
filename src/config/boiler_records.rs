//! `[[boilers.fuel_records]]`: a boiler's dated lab analyses.
//!
//! Why apart: a record's keys depend on the fuel's kind (a gas is priced
//! per m³, solid and liquid fuels per kg; solid fuels need the ash and
//! combustible contents q₄ and q₆ are made of), and its date is a local
//! midnight of the site's zone. The result is sorted by date, so the
//! stage finds the record in force by a binary search.

use config::Value;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::raw::FuelRecordRaw;
use crate::check::{self, Float, Problems, Text};
use crate::pipeline::boiler::{FuelKind, FuelRecord};

/// A boiler's `fuel_records` at `at` (e.g. `boilers[0].fuel_records`) for a
/// fuel of `kind`, dates in `tz`, sorted by date. Absent, a gas boiler
/// may use its fuel meter's `meter_lhv`; every other boiler needs one.
/// `None` (with problems) when broken.
pub(super) fn records(
    v: Option<Value>,
    at: &str,
    kind: FuelKind,
    meter_lhv: Option<f64>,
    tz: &TimeZone,
    p: &mut Problems,
) -> Option<Vec<FuelRecord>> {
    let Some(v) = v else {
        return match (kind, meter_lhv) {
            (FuelKind::Gas, Some(_)) => Some(Vec::new()),
            (FuelKind::Gas, None) => {
                p.push(
                    at,
                    "missing; a gas boiler needs [[boilers.fuel_records]] with lhv_kj_per_m3, or a fuel meter with lhv_kj_per_m3",
                );
                None
            }
            (FuelKind::Oil | FuelKind::Solid, _) => {
                p.push(
                    at,
                    "missing; give at least one [[boilers.fuel_records]] with `from` and lhv_kj_per_kg (the lab's as-received net calorific value)",
                );
                None
            }
        };
    };
    let mut ok = true;
    let mut out: Vec<(FuelRecord, String, Date)> = Vec::new();
    let items = check::array(v, at, "an array of tables ([[boilers.fuel_records]])", p);
    for (n, item) in items.into_iter().enumerate() {
        let rk = format!("{at}[{n}]");
        let parsed = check::table::<FuelRecordRaw>(item, &rk, "a table", p)
            .and_then(|r| record(r, &rk, kind, tz, p));
        match parsed {
            Some((rec, date)) => out.push((rec, rk, date)),
            None => ok = false,
        }
    }
    out.sort_by_key(|(r, _, _)| r.from);
    for pair in out.windows(2) {
        if pair[0].0.from == pair[1].0.from {
            p.push(
                format!("{}.from", pair[1].1),
                format!(
                    "duplicate date {}; {} starts then too (one record per date)",
                    pair[1].2, pair[0].1
                ),
            );
            ok = false;
        }
    }
    if ok && out.is_empty() {
        p.push(at, "is empty; give at least one record, or remove the key");
        ok = false;
    }
    ok.then(|| out.into_iter().map(|(r, _, _)| r).collect())
}

/// A percentage key: `None` when absent or broken (then `ok` is cleared).
/// Contents that divide `100 − x` must stay below 100 (`below_100`).
fn pct(
    v: Option<Float>,
    at: String,
    below_100: bool,
    ok: &mut bool,
    p: &mut Problems,
) -> Option<f64> {
    let Float(x) = v?;
    if x.is_finite() && x >= 0.0 && (x < 100.0 || (!below_100 && x <= 100.0)) {
        return Some(x);
    }
    let range = if below_100 {
        "0 <= x < 100"
    } else {
        "0 to 100"
    };
    p.push(
        at,
        format!("{x} is out of range; use a percentage, {range}"),
    );
    *ok = false;
    None
}

/// One record at `rk`, with its date.
fn record(
    raw: FuelRecordRaw,
    rk: &str,
    kind: FuelKind,
    tz: &TimeZone,
    p: &mut Problems,
) -> Option<(FuelRecord, Date)> {
    let k = |sub: &str| format!("{rk}.{sub}");
    let mut ok = true;
    let date = match raw.from {
        None => {
            p.push(
                k("from"),
                "missing required key; give the date the analysis is in force from (YYYY-MM-DD)",
            );
            None
        }
        Some(Text(s)) => {
            let d = s.parse::<Date>().ok();
            if d.is_none() {
                p.push(
                    k("from"),
                    format!("\"{s}\" is not a date; write it as YYYY-MM-DD"),
                );
            }
            d
        }
    };
    // Local midnight; a midnight inside a DST gap is the first instant after it.
    let from = date.and_then(|d| {
        tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .compatible()
            .ok()
            .map(jiff::Timestamp::as_second)
    });
    let ash = pct(raw.ash_pct, k("ash_pct"), true, &mut ok, p);
    let moisture = pct(raw.moisture_pct, k("moisture_pct"), true, &mut ok, p);
    let volatile = pct(
        raw.volatile_daf_pct,
        k("volatile_daf_pct"),
        true,
        &mut ok,
        p,
    );
    let slag_share = pct(raw.slag_share_pct, k("slag_share_pct"), false, &mut ok, p);
    let c_lz = pct(
        raw.slag_combustible_pct,
        k("slag_combustible_pct"),
        true,
        &mut ok,
        p,
    );
    let c_fh = pct(
        raw.fly_ash_combustible_pct,
        k("fly_ash_combustible_pct"),
        true,
        &mut ok,
        p,
    );
    let slag_t = match raw.slag_temperature_c {
        None => None,
        Some(Float(x)) if x.is_finite() && x > 0.0 && x < 2000.0 => Some(x),
        Some(Float(x)) => {
            p.push(
                k("slag_temperature_c"),
                format!("{x} is out of range; use degC above 0"),
            );
            ok = false;
            None
        }
    };
    let gas = kind == FuelKind::Gas;
    let (want, other) = if gas {
        (
            ("lhv_kj_per_m3", raw.lhv_kj_per_m3),
            ("lhv_kj_per_kg", raw.lhv_kj_per_kg),
        )
    } else {
        (
            ("lhv_kj_per_kg", raw.lhv_kj_per_kg),
            ("lhv_kj_per_m3", raw.lhv_kj_per_m3),
        )
    };
    if other.1.is_some() {
        let msg = if gas {
            "a gas is measured by volume; give lhv_kj_per_m3 instead"
        } else {
            "solid and liquid fuels are measured by mass; give lhv_kj_per_kg instead"
        };
        p.push(k(other.0), msg);
        ok = false;
    }
    let lhv = match want.1 {
        None => {
            let unit = if gas { "kJ/m3" } else { "kJ/kg" };
            p.push(
                k(want.0),
                format!("missing required key; give the as-received net calorific value in {unit}"),
            );
            None
        }
        Some(Float(x)) if x.is_finite() && x > 0.0 => Some(x),
        Some(Float(x)) => {
            p.push(
                k(want.0),
                format!("{x} is not a calorific value; use a number > 0"),
            );
            None
        }
    };
    if kind == FuelKind::Solid {
        for (given, sub, what) in [
            (ash.is_some(), "ash_pct", "the as-received ash A_ar, %"),
            (
                slag_share.is_some(),
                "slag_share_pct",
                "the share of the ash leaving as slag, % (the rest is fly ash)",
            ),
            (
                c_lz.is_some(),
                "slag_combustible_pct",
                "the combustible content of the slag C_lz, %",
            ),
            (
                c_fh.is_some(),
                "fly_ash_combustible_pct",
                "the combustible content of the fly ash C_fh, %",
            ),
        ] {
            if !given {
                // A key given but out of range is reported already.
                if !p.list.iter().any(|e| e.key == k(sub)) {
                    p.push(
                        k(sub),
                        format!("missing required key for a solid fuel; give {what}"),
                    );
                }
                ok = false;
            }
        }
    }
    let (true, Some(from), Some(lhv), Some(date)) = (ok, from, lhv, date) else {
        return None;
    };
    Some((
        FuelRecord {
            from,
            lhv_kj: lhv,
            ash_pct: ash,
            moisture_pct: moisture,
            volatile_daf_pct: volatile,
            slag_share_pct: slag_share,
            slag_combustible_pct: c_lz,
            fly_ash_combustible_pct: c_fh,
            slag_temperature_c: slag_t,
        },
        date,
    ))
}
