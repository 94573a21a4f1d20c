//! `[[targets]]` in site files: what a target becomes (defaults included),
//! and every key's problem with its exact message (part of the interface).

use emgate::config::{Config, EntryItem, IntensityTarget, TargetConfig, TargetSpan};
use emgate::model::SiteId;

use crate::boiler_config::load;

fn ok(targets: &str) -> Config {
    load("", targets).unwrap_or_else(|e| panic!("{}", e.join("\n")))
}

fn errors(targets: &str) -> Vec<String> {
    match load("", targets) {
        Ok(_) => panic!("expected errors, the configuration loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_year_cap_and_a_plan_intensity_target_load_with_their_defaults() {
    let c = ok(r#"
[[targets]]
year = 2026
cap_tce = 12000
warn_yellow_pct = 95

[[targets]]
period = "2021-2025"
intensity_unit = "kgce_per_10k_cny"
intensity_item = "output_value_10k_cny"
base_year = 2020
base_intensity = 420.5
annual_decrease_pct = 3.2
five_year_decrease_pct = 15

[[targets]]
year = 2025
intensity_unit = "kgce_per_t"
intensity_item = "output_t"
base_year = 2024
base_intensity = 380
annual_decrease_pct = 2
"#);
    assert_eq!(
        c.targets,
        vec![
            TargetConfig {
                site: SiteId(0),
                span: TargetSpan::Year(2026),
                cap_tce: Some(12000.0),
                intensity: None,
                warn_yellow_pct: 95.0,
                warn_orange_pct: 50.0,
            },
            TargetConfig {
                site: SiteId(0),
                span: TargetSpan::Plan {
                    first: 2021,
                    last: 2025
                },
                cap_tce: None,
                intensity: Some(IntensityTarget {
                    unit: "kgce_per_10k_cny".into(),
                    item: EntryItem::OutputValue,
                    base_year: 2020,
                    base_intensity: 420.5,
                    annual_decrease_pct: Some(3.2),
                    five_year_decrease_pct: Some(15.0),
                }),
                warn_yellow_pct: 90.0,
                warn_orange_pct: 50.0,
            },
            TargetConfig {
                site: SiteId(0),
                span: TargetSpan::Year(2025),
                cap_tce: None,
                intensity: Some(IntensityTarget {
                    unit: "kgce_per_t".into(),
                    item: EntryItem::Output("t".into()),
                    base_year: 2024,
                    base_intensity: 380.0,
                    annual_decrease_pct: Some(2.0),
                    five_year_decrease_pct: None,
                }),
                warn_yellow_pct: 90.0,
                warn_orange_pct: 50.0,
            },
        ]
    );
}

#[test]
fn every_key_is_checked_with_its_message() {
    let e = errors(
        r#"
[[targets]]
cap_tce = 100

[[targets]]
year = 2026
period = "2021-2025"
cap_tce = 1

[[targets]]
year = 1999
cap_tce = -5

[[targets]]
period = "2021-2026"
cap_tce = 1

[[targets]]
year = 2026
cap_tce = 1

[[targets]]
year = 2026
cap_tce = 1

[[targets]]
period = "2021-2025"
cap_tce = 1

[[targets]]
period = "2023-2027"
cap_tce = 1

[[targets]]
year = 2027

[[targets]]
year = 2028
intensity_unit = "tce_per_t"
intensity_item = "fuel_lab"
base_year = 2028
base_intensity = 0
annual_decrease_pct = 100

[[targets]]
year = 2029
intensity_unit = "kgce_per_10k_cny"
intensity_item = "output_t"
five_year_decrease_pct = 10
warn_yellow_pct = 101
warn_orange_pct = 0

[[targets]]
year = 2030
intensity_unit = "kgce_per_t"
intensity_item = "output_t"
base_year = 2020
base_intensity = 400
warn_yellow_pct = 80
warn_orange_pct = 85
"#,
    );
    assert_eq!(
        e,
        vec![
            "sites/fz.toml: targets[0]: give `year` (e.g. 2026) or `period` (a five-year plan, e.g. \"2021-2025\")",
            "sites/fz.toml: targets[1].period: give either year or period, not both",
            "sites/fz.toml: targets[2].year: 1999 is not a plausible year; use 2000..=2100",
            "sites/fz.toml: targets[2].cap_tce: -5 is not a valid cap; use tce > 0",
            "sites/fz.toml: targets[3].period: \"2021-2026\" is not a five-year plan period; write \"YYYY-YYYY\", the last year 4 after the first (e.g. \"2021-2025\")",
            "sites/fz.toml: targets[5].year: duplicate target for 2026; already targets[4]",
            "sites/fz.toml: targets[7].period: overlaps the plan period 2021-2025 of targets[6]",
            "sites/fz.toml: targets[8]: nothing to check; give cap_tce and/or an intensity target (intensity_unit, intensity_item, base_year, base_intensity and a decrease)",
            "sites/fz.toml: targets[9].intensity_unit: \"tce_per_t\" is not an intensity unit; use kgce_per_t, kgce_per_10k_cny or kgce_per_<unit>",
            "sites/fz.toml: targets[9].intensity_item: unknown item \"fuel_lab\"; use output_t (or output_<unit>), output_value_10k_cny or value_added_10k_cny",
            "sites/fz.toml: targets[9].base_year: 2028 is not before the target's first year 2028",
            "sites/fz.toml: targets[9].base_intensity: 0 is not a valid intensity; use kgce per unit > 0",
            "sites/fz.toml: targets[9].annual_decrease_pct: 100 is out of range; use a percentage, 0 < x < 100",
            "sites/fz.toml: targets[10].intensity_item: output_t is in \"t\" but kgce_per_10k_cny divides by \"10k_cny\"",
            "sites/fz.toml: targets[10].base_year: missing required key; an intensity target needs intensity_unit, intensity_item, base_year and base_intensity",
            "sites/fz.toml: targets[10].base_intensity: missing required key; an intensity target needs intensity_unit, intensity_item, base_year and base_intensity",
            "sites/fz.toml: targets[10].five_year_decrease_pct: only for a plan period (period = \"2021-2025\"); remove it",
            "sites/fz.toml: targets[10].warn_yellow_pct: 101 is out of range; use a completion rate in %, 0 < x <= 100",
            "sites/fz.toml: targets[10].warn_orange_pct: 0 is out of range; use a completion rate in %, above 0 and below warn_yellow_pct (90)",
            "sites/fz.toml: targets[11]: an intensity target needs annual_decrease_pct or five_year_decrease_pct",
            "sites/fz.toml: targets[11].warn_orange_pct: 85 is out of range; use a completion rate in %, above 0 and below warn_yellow_pct (80)",
        ]
    );
}

#[test]
fn an_unknown_key_gets_a_suggestion() {
    let e = errors("\n[[targets]]\nyear = 2026\ncap_tc = 5\n");
    assert_eq!(
        e,
        vec![
            "sites/fz.toml: targets[0].cap_tc: unknown key; did you mean \"cap_tce\"?",
            "sites/fz.toml: targets[0]: nothing to check; give cap_tce and/or an intensity target (intensity_unit, intensity_item, base_year, base_intensity and a decrease)",
        ]
    );
}
