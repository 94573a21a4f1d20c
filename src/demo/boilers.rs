//! The demo's boilers: a gas steam boiler at the textile mill, a coal-fired
//! steam boiler at the cement works and a gas hot-water boiler at the
//! hospital, each with its fuel meter, its output meter and a flue-gas
//! analyzer, as site-file TOML appended to its enterprise.
//!
//! Why a file of its own: the enterprises' meter tables (`builtin`) are long
//! already, and a boiler is more than a meter: its `[[boilers]]` table names
//! three meters of its site, its fuel record and its analyzer's points.

use std::fmt::Write as _;

use crate::config::Config;
use crate::sim::Simulator;
use crate::telemetry::BoilerSnapshot;

/// A demo boiler: the enterprise (index in `SITES`), its meters as
/// (id, energy, level, profile, extra keys), its `[[boilers]]` table.
pub(super) struct DemoBoiler {
    /// Index of the enterprise in the built-in sites.
    pub site: usize,
    /// Meters the boiler adds to its site (its fuel meter may be one the
    /// site already has), polled every [`BOILER_POLL_SECS`].
    pub meters: &'static [(&'static str, &'static str, u8, &'static str, &'static str)],
    /// The `[[boilers]]` table and its fuel records.
    pub toml: &'static str,
}

/// Poll interval of the boilers' meters, seconds: the rate of the
/// enterprises' other non-electric meters.
pub(super) const BOILER_POLL_SECS: u32 = 5;

/// The demo's boilers.
pub(super) const BOILERS: [DemoBoiler; 3] = [
    DemoBoiler {
        site: 0,
        meters: &[
            ("tx-s-b1", "steam", 3, "steam_flow_computer", ""),
            ("tx-a-b1", "natural_gas", 3, "flue_gas_analyzer", ""),
        ],
        toml: r#"
# The boiler house's 10 t/h gas steam boiler: its gas is the site's gas
# meter (level 1), its steam a level-3 meter, so nothing is counted twice.
[[boilers]]
id = "tx-b1"
name = "1# gas steam boiler"
kind = "steam"
rated_capacity = 10.0
fuel = "natural_gas"
fuel_meter = "tx-g-boil"
output_meter = "tx-s-b1"
feed_water_c = 20.0
exhaust_c = { meter = "tx-a-b1", point = "exhaust_c" }
o2_pct = { meter = "tx-a-b1", point = "o2_pct" }
co_ppm = { meter = "tx-a-b1", point = "co_ppm" }
cold_air_c = { meter = "tx-a-b1", point = "ambient_c" }

[[boilers.fuel_records]]
from = "2025-01-01"
lhv_kj_per_m3 = 35800
"#,
    },
    DemoBoiler {
        site: 2,
        meters: &[
            ("cm-c-b1", "coal", 2, "belt_scale", ""),
            ("cm-s-b1", "steam", 3, "steam_flow_computer", ""),
            ("cm-a-b1", "coal", 3, "flue_gas_analyzer", ""),
        ],
        toml: r#"
# A 35 t/h chain-grate steam boiler on bituminous coal, with the lab
# analysis of boiler.md 7.3.
[[boilers]]
id = "cm-b1"
name = "chain-grate coal steam boiler"
kind = "steam"
rated_capacity = 35.0
fuel = "bituminous"
combustion = "layered"
fuel_meter = "cm-c-b1"
output_meter = "cm-s-b1"
feed_water_c = 20.0
exhaust_c = { meter = "cm-a-b1", point = "exhaust_c" }
o2_pct = { meter = "cm-a-b1", point = "o2_pct" }
co_ppm = { meter = "cm-a-b1", point = "co_ppm" }
cold_air_c = 20.0

[[boilers.fuel_records]]
from = "2025-01-01"
lhv_kj_per_kg = 21500
ash_pct = 22.7
moisture_pct = 10.0
volatile_daf_pct = 30.0
slag_share_pct = 80.0
slag_combustible_pct = 12.0
fly_ash_combustible_pct = 20.0
"#,
    },
    DemoBoiler {
        site: 3,
        meters: &[
            ("hs-g-b1", "natural_gas", 2, "gas_flow_computer", ""),
            (
                "hs-w-b1",
                "water",
                3,
                "heat_meter",
                "consumption = \"volume_m3\"\n",
            ),
            ("hs-a-b1", "natural_gas", 3, "flue_gas_analyzer", ""),
        ],
        toml: r#"
# A 7 MW gas hot-water boiler measured by its circulating water: the heat
# meter's volume counter with its supply and return temperatures.
[[boilers]]
id = "hs-b1"
name = "heating hot-water boiler"
kind = "hot_water"
rated_capacity = 7.0
fuel = "natural_gas"
fuel_meter = "hs-g-b1"
output_meter = "hs-w-b1"
supply_temperature = { meter = "hs-w-b1", point = "supply_temperature_c" }
return_temperature = { meter = "hs-w-b1", point = "return_temperature_c" }
exhaust_c = { meter = "hs-a-b1", point = "exhaust_c" }
o2_pct = { meter = "hs-a-b1", point = "o2_pct" }
co_ppm = { meter = "hs-a-b1", point = "co_ppm" }
cold_air_c = { meter = "hs-a-b1", point = "ambient_c" }

[[boilers.fuel_records]]
from = "2025-01-01"
lhv_kj_per_m3 = 35800
"#,
    },
];

/// Appends site `n`'s boiler meters (on `endpoint`, unit ids from
/// `first_unit` on) and its `[[boilers]]` tables to `text`.
pub(super) fn append_site(text: &mut String, n: usize, endpoint: &str, first_unit: usize) {
    let mut unit = first_unit;
    for b in BOILERS.iter().filter(|b| b.site == n) {
        for (id, energy, level, profile, keys) in b.meters {
            let _ = write!(
                text,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = {level}\n\
                 profile = \"{profile}\"\nendpoint = \"{endpoint}\"\nunit_id = {unit}\n\
                 poll_interval_secs = {BOILER_POLL_SECS}\n{keys}"
            );
            unit += 1;
        }
    }
    for b in BOILERS.iter().filter(|b| b.site == n) {
        text.push_str(b.toml);
    }
}

/// Meters the boilers add to the demo.
#[cfg(test)]
pub(super) fn meter_count() -> usize {
    BOILERS.iter().map(|b| b.meters.len()).sum()
}

/// What the summary says of a boiler before its first window.
const NO_WINDOW: &str = "no window yet (one is written when its first minute has closed)";

/// `12.3 %`, or `-` when there is no number.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} %"))
}

/// Rated capacity with its unit.
fn rated(kind: &str, capacity: f64) -> String {
    if kind == "steam" {
        format!("{capacity} t/h")
    } else {
        format!("{capacity} MW")
    }
}

/// The banner line: how many boilers, which.
pub(super) fn banner(config: &Config) -> String {
    let list: Vec<String> = config
        .boilers
        .iter()
        .map(|b| {
            let site = config
                .sites
                .get(b.site.index())
                .map_or("", |s| s.id.as_str());
            format!(
                "{} at {site} ({} {}, {})",
                b.id,
                b.spec.kind.as_str(),
                rated(b.spec.kind.as_str(), b.spec.rated_capacity),
                b.fuel
            )
        })
        .collect();
    format!("boilers: {}: {}", list.len(), list.join(", "))
}

/// One summary line per boiler of `config`: its newest window of the
/// shortest size in `snapshots` (state, both efficiencies, grade, reasons)
/// and the simulator's true efficiency.
pub(super) fn summary_lines(
    config: &Config,
    snapshots: &[BoilerSnapshot],
    sim: &Simulator,
) -> Vec<String> {
    config
        .boilers
        .iter()
        .map(|b| {
            let site = config
                .sites
                .get(b.site.index())
                .map_or("", |s| s.id.as_str());
            let mut line = format!(
                "  boiler       {} ({site}, {} {}, {}) ",
                b.id,
                b.spec.kind.as_str(),
                rated(b.spec.kind.as_str(), b.spec.rated_capacity),
                b.fuel
            );
            match snapshots
                .iter()
                .find(|s| s.id == b.id)
                .and_then(|s| s.windows.first())
            {
                None => {
                    line.push_str(NO_WINDOW);
                }
                Some(w) => {
                    let at = jiff::Timestamp::from_second(w.start)
                        .map_or_else(|_| w.start.to_string(), |t| t.to_string());
                    let _ = write!(
                        line,
                        "{} at {at}: {}, direct {}, indirect {}, grade {}",
                        w.window,
                        w.state.to_uppercase(),
                        pct(w.eta_direct),
                        pct(w.eta_indirect),
                        w.grade.as_deref().unwrap_or("-")
                    );
                    if !w.reasons.is_empty() {
                        let _ = write!(line, ", reasons {}", w.reasons.join(","));
                    }
                }
            }
            match sim
                .boiler(&b.id)
                .and_then(crate::sim::boiler::BoilerTruth::eta)
            {
                Some(eta) => {
                    let _ = write!(line, "; simulated {eta:.1} %");
                }
                None => line.push_str("; not simulated"),
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;

    fn config() -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        super::super::demo_config(dir.path(), &dir.path().join("demo.lp"), false).expect("loads")
    }

    #[test]
    fn three_boilers_each_on_its_own_site_counted_once() {
        let c = config();
        let ids: Vec<&str> = c.boilers.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["tx-b1", "cm-b1", "hs-b1"]);
        for b in &c.boilers {
            let (fuel, out) = (c.meter(b.fuel_meter), c.meter(b.output_meter));
            assert_eq!((fuel.site, out.site), (b.site, b.site), "{}", b.id);
            // The fuel may be a boundary meter; the output is not one too.
            assert!(
                out.level != Level(1),
                "{}: output {} at level 1",
                b.id,
                out.id
            );
        }
        assert_eq!(
            banner(&c),
            "boilers: 3: tx-b1 at E3501020001 (steam 10 t/h, natural_gas), \
             cm-b1 at E3508020003 (steam 35 t/h, bituminous), \
             hs-b1 at E3501110004 (hot_water 7 MW, natural_gas)"
        );
    }

    #[tokio::test]
    async fn the_simulator_drives_every_demo_boiler() {
        let c = config();
        let stop = tokio_util::sync::CancellationToken::new();
        let sim = Simulator::start(&c, stop.clone()).await.expect("simulator");
        stop.cancel();
        let truths: Vec<(&str, bool)> = sim
            .boilers()
            .iter()
            .map(|t| (t.id.as_str(), t.running))
            .collect();
        assert_eq!(truths, [("tx-b1", true), ("cm-b1", true), ("hs-b1", true)]);
        for t in sim.boilers() {
            let eta = t.eta().expect("running");
            assert!((80.0..96.0).contains(&eta), "{}: {eta}", t.id);
        }
        // Before any window: the summary says so, with the truth beside it.
        let lines = summary_lines(&c, &[], &sim);
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with(
                "  boiler       tx-b1 (E3501020001, steam 10 t/h, natural_gas) no window yet"
            ),
            "{}",
            lines[0]
        );
        let eta = sim
            .boiler("tx-b1")
            .and_then(crate::sim::boiler::BoilerTruth::eta);
        assert!(lines[0].ends_with(&format!("; simulated {:.1} %", eta.unwrap_or_default())));
    }

    #[test]
    fn a_window_is_shown_with_both_methods_and_its_grade() {
        let json = r#"[{"id":"tx-b1","name":"n","site":"E3501020001","kind":"steam","fuel":"natural_gas",
            "rated_capacity":10.0,"limits":null,"limits_source":"",
            "windows_total":{"running":1,"off":0,"partial":0,"reemitted":0,"out_of_limit_efficiency":0,
              "out_of_limit_exhaust_c":0,"out_of_limit_alpha":0,"methods_disagree":0},
            "windows":[{"window":"1m","start":1767225600,"state":"running","eta_direct":93.44,
              "eta_indirect":93.51,"q2":4.7,"q3":0.02,"q4":0.0,"q5":1.7,"q6":0.0,"alpha":1.18,
              "load_pct":87.0,"heat_out_gj":0.4,"fuel_in_gj":0.43,"exhaust_c_mean":120.0,
              "o2_mean":3.5,"coverage":1.0,"estimated":false,"methods_disagree":false,
              "grade":"3","out_of_limit":[],"reasons":["estimated:q3_default"]}]}]"#;
        let snapshots: Vec<BoilerSnapshot> = serde_json::from_str(json).expect("snapshot");
        let c = config();
        let lines = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                let stop = tokio_util::sync::CancellationToken::new();
                let sim = Simulator::start(&c, stop.clone()).await.expect("simulator");
                stop.cancel();
                summary_lines(&c, &snapshots, &sim)
            });
        assert!(
            lines[0].starts_with(
                "  boiler       tx-b1 (E3501020001, steam 10 t/h, natural_gas) 1m at 2026-01-01T00:00:00Z: \
                 RUNNING, direct 93.4 %, indirect 93.5 %, grade 3, reasons estimated:q3_default; simulated "
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("cm-b1") && lines[1].contains("no window yet"));
    }
}
