//! The boilers on the status board: each boiler's last window per window
//! size and its counters, for `GET /api/boilers`, the status page's Boilers
//! table, `emgate status` and the `emgate_boiler_*` metrics.
//!
//! Why on the board: the boiler stage runs inside the encoder thread of a
//! generation, the API reads from its own tasks; like the meters' rows,
//! a boiler's row is fixed when the board is built and updated with a few
//! atomic stores and one short lock per written window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::board::{StatusBoard, lock};
use crate::config::Config;
use crate::pipeline::boiler::stage::{BoilerCounters, BoilerOut};
use crate::pipeline::boiler::{BoilerResult, OutOfLimit, Reasons};
use crate::pipeline::window::WindowSize;

/// One boiler's row.
#[derive(Debug)]
pub(super) struct BoilerRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) site: String,
    pub(super) kind: &'static str,
    pub(super) fuel: String,
    pub(super) rated_capacity: f64,
    pub(super) limits: Option<String>,
    pub(super) limits_source: String,
    /// Windows written the first time, by state: running, off, partial.
    pub(super) windows: [AtomicU64; 3],
    pub(super) reemitted: AtomicU64,
    /// Order of [`OutOfLimit::NAMES`].
    pub(super) out_of_limit: [AtomicU64; 3],
    pub(super) disagreements: AtomicU64,
    /// Newest window per size (order of the board's window sizes): start and result.
    pub(super) last: Mutex<Vec<Option<(i64, BoilerResult)>>>,
}

/// The boiler rows and window sizes of `config`.
pub(super) fn boiler_rows(config: &Config) -> (Vec<BoilerRow>, Vec<WindowSize>) {
    let sizes = config.aggregation.aggregator.windows.clone();
    let rows = config
        .boilers
        .iter()
        .map(|b| BoilerRow {
            id: b.id.clone(),
            name: b.name.clone(),
            site: config
                .sites
                .get(b.site.index())
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            kind: b.spec.kind.as_str(),
            fuel: b.fuel.clone(),
            rated_capacity: b.spec.rated_capacity,
            limits: b.limits_key.clone(),
            limits_source: b.limits_source.clone(),
            windows: std::array::from_fn(|_| AtomicU64::new(0)),
            reemitted: AtomicU64::new(0),
            out_of_limit: std::array::from_fn(|_| AtomicU64::new(0)),
            disagreements: AtomicU64::new(0),
            last: Mutex::new(vec![None; sizes.len()]),
        })
        .collect();
    (rows, sizes)
}

/// A boiler as `GET /api/boilers` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoilerSnapshot {
    /// Boiler id (the `boiler` tag).
    pub id: String,
    /// Free text.
    pub name: String,
    /// Site id.
    pub site: String,
    /// `steam` or `hot_water`.
    pub kind: String,
    /// Fuel class key.
    pub fuel: String,
    /// t/h (steam) or MW (hot water).
    pub rated_capacity: f64,
    /// Key of the limit row used, when one applies.
    pub limits: Option<String>,
    /// How the limit row was chosen and its source, or why there is none.
    pub limits_source: String,
    /// Windows written so far, by state of their first writing.
    pub windows_total: WindowTotals,
    /// The newest window of each window size that has one, shortest first.
    pub windows: Vec<BoilerWindowSnapshot>,
}

/// Windows of a boiler written since the gateway (or the configuration) started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowTotals {
    /// Written `running`.
    pub running: u64,
    /// Written `off`.
    pub off: u64,
    /// Written `partial`.
    pub partial: u64,
    /// Written again after a later input.
    pub reemitted: u64,
    /// Windows whose efficiency was below the limit value.
    pub out_of_limit_efficiency: u64,
    /// Windows whose exhaust temperature was above its limit.
    pub out_of_limit_exhaust_c: u64,
    /// Windows whose excess-air coefficient was above its limit.
    pub out_of_limit_alpha: u64,
    /// Windows whose two methods disagreed.
    pub methods_disagree: u64,
}

/// One boiler window with every field of the `boiler` measurement
/// (`null` where the line protocol leaves a field out).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoilerWindowSnapshot {
    /// Window size tag (`15m`, `1h`, `1d`, ...).
    pub window: String,
    /// Window start, Unix seconds (the point's timestamp).
    pub start: i64,
    /// `running`, `off` or `partial`.
    pub state: String,
    /// Efficiency by the direct method, %.
    pub eta_direct: Option<f64>,
    /// Efficiency by the indirect method, %.
    pub eta_indirect: Option<f64>,
    /// Exhaust loss, %.
    pub q2: Option<f64>,
    /// Unburnt-gas loss, %.
    pub q3: Option<f64>,
    /// Unburnt-solid loss, %.
    pub q4: Option<f64>,
    /// Radiation loss, %.
    pub q5: Option<f64>,
    /// Ash sensible-heat loss, %.
    pub q6: Option<f64>,
    /// Excess-air coefficient.
    pub alpha: Option<f64>,
    /// Load, % of rated.
    pub load_pct: Option<f64>,
    /// Useful heat, GJ.
    pub heat_out_gj: Option<f64>,
    /// Heat of the fuel, GJ.
    pub fuel_in_gj: Option<f64>,
    /// Mean exhaust temperature, °C.
    pub exhaust_c_mean: Option<f64>,
    /// Mean O₂, % dry.
    pub o2_mean: Option<f64>,
    /// Smallest coverage of the inputs, 0..=1.
    pub coverage: f64,
    /// An input or a default was estimated.
    pub estimated: bool,
    /// The two methods differ by more than the boiler's margin.
    pub methods_disagree: bool,
    /// `1`, `2`, `3` or `below_limit`; `null` when not graded.
    pub grade: Option<String>,
    /// Limits broken: `efficiency`, `exhaust_c`, `alpha`.
    pub out_of_limit: Vec<String>,
    /// Why a method gave no number or the window is estimated.
    pub reasons: Vec<String>,
}

impl BoilerWindowSnapshot {
    fn new(size: WindowSize, start: i64, r: &BoilerResult) -> BoilerWindowSnapshot {
        BoilerWindowSnapshot {
            window: size.as_tag().to_owned(),
            start,
            state: r.state.as_str().to_owned(),
            eta_direct: r.eta_direct,
            eta_indirect: r.eta_indirect,
            q2: r.q2,
            q3: r.q3,
            q4: r.q4,
            q5: r.q5,
            q6: r.q6,
            alpha: r.alpha,
            load_pct: r.load_pct,
            heat_out_gj: r.heat_out_gj,
            fuel_in_gj: r.fuel_in_gj,
            exhaust_c_mean: r.exhaust_c_mean,
            o2_mean: r.o2_mean,
            coverage: r.coverage,
            estimated: r.estimated,
            methods_disagree: r.methods_disagree,
            grade: r.grade.map(|g| g.as_str().to_owned()),
            out_of_limit: OutOfLimit::NAMES
                .iter()
                .filter(|(o, _)| r.out_of_limit.contains(*o))
                .map(|(_, n)| (*n).to_owned())
                .collect(),
            reasons: Reasons::names(r.reasons).map(str::to_owned).collect(),
        }
    }
}

impl StatusBoard {
    /// Records windows the boiler stage wrote: each becomes its boiler's
    /// last window of its size unless a newer one is there already (a
    /// re-emitted older window does not replace it).
    pub fn boiler_windows(&self, written: &[BoilerOut]) {
        for w in written {
            let (Some(row), Some(si)) = (
                self.boilers.get(w.boiler as usize),
                self.boiler_sizes.iter().position(|s| *s == w.size),
            ) else {
                continue;
            };
            let mut last = lock(&row.last);
            if let Some(slot) = last.get_mut(si)
                && slot.is_none_or(|(start, _)| start <= w.start)
            {
                *slot = Some((w.start, w.result));
            }
        }
    }

    /// Publishes boiler `b`'s counters.
    pub fn boiler_counters(&self, b: usize, c: &BoilerCounters) {
        let Some(row) = self.boilers.get(b) else {
            return;
        };
        for (a, v) in row.windows.iter().zip(c.windows) {
            a.store(v, Ordering::Relaxed);
        }
        row.reemitted.store(c.reemitted, Ordering::Relaxed);
        for (a, v) in row.out_of_limit.iter().zip(c.out_of_limit) {
            a.store(v, Ordering::Relaxed);
        }
        row.disagreements.store(c.disagreements, Ordering::Relaxed);
    }

    /// Every boiler, in configuration order, with its newest window of
    /// each size, shortest size first.
    #[must_use]
    pub fn boilers(&self) -> Vec<BoilerSnapshot> {
        self.boilers
            .iter()
            .map(|row| {
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let mut windows: Vec<(WindowSize, BoilerWindowSnapshot)> = lock(&row.last)
                    .iter()
                    .zip(&self.boiler_sizes)
                    .filter_map(|(w, size)| {
                        w.as_ref()
                            .map(|(start, r)| (*size, BoilerWindowSnapshot::new(*size, *start, r)))
                    })
                    .collect();
                windows.sort_by_key(|(size, _)| WindowSize::ALL.iter().position(|s| s == size));
                let windows = windows.into_iter().map(|(_, w)| w).collect();
                BoilerSnapshot {
                    id: row.id.clone(),
                    name: row.name.clone(),
                    site: row.site.clone(),
                    kind: row.kind.to_owned(),
                    fuel: row.fuel.clone(),
                    rated_capacity: row.rated_capacity,
                    limits: row.limits.clone(),
                    limits_source: row.limits_source.clone(),
                    windows_total: WindowTotals {
                        running: get(&row.windows[0]),
                        off: get(&row.windows[1]),
                        partial: get(&row.windows[2]),
                        reemitted: get(&row.reemitted),
                        out_of_limit_efficiency: get(&row.out_of_limit[0]),
                        out_of_limit_exhaust_c: get(&row.out_of_limit[1]),
                        out_of_limit_alpha: get(&row.out_of_limit[2]),
                        methods_disagree: get(&row.disagreements),
                    },
                    windows,
                }
            })
            .collect()
    }
}
