//! Shards by site end to end with aggregation on, and a real resharding.
//! Twelve simulated sites (two level-1 meters and one level-2 sub-meter
//! each, one endpoint per site) are polled by three `emgate run` shards
//! (`K/3`) with 1-minute windows; the three are stopped with SIGTERM and
//! four (`K/4`) are started on the same files and the same per-K data
//! directories, as an operator grows from 3 to 4 gateways. Each process
//! writes into its own database (`n3s0` … `n4s3`), so the test sees which
//! process wrote what.
//!
//! Everything expected is worked out here from the simulator's counter
//! model (`value_at` at the stored slots, which the stored readings must
//! equal) and the README's rules: a window's amount is counter(end) −
//! counter(start), the first window after a (fresh) start counts from the
//! first reading, coverage is the part of the window between readings,
//! only level-1 meters add into `site_consumption`, 0.1229 kgce per kWh.
//! The gateway's own totals are only ever compared, never used. The
//! assignment is pinned from an independent (Python) computation of the
//! README's hash and checked against what `emgate shards` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::shards::{ShardProcess, emgate};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::Sim;
use crate::support::{consecutive, lazy, meter_id, timed, wait_for};

/// The sites and their shard at N = 3 and at N = 4, pinned from the Python
/// computation of the hash (FNV-1a 64, SplitMix64, highest weight). Three
/// sites move, all to the new shard 3, from shards 0 and 1; `ent06` and
/// `ent07` leave from the middle of their shard's list, so the meters
/// left behind are re-indexed around the gap.
const FLEET: [(&str, u32, u32); 12] = [
    ("ent01", 2, 2),
    ("ent02", 1, 1),
    ("ent03", 1, 1),
    ("ent04", 2, 2),
    ("ent05", 0, 0),
    ("ent06", 1, 3),
    ("ent07", 0, 3),
    ("ent08", 0, 0),
    ("ent09", 1, 3),
    ("ent10", 0, 0),
    ("ent11", 0, 0),
    ("ent12", 1, 1),
];

/// A site's level-1 meters (`<site>-a`, `<site>-b`), which add into its
/// totals, and its level-2 sub-meter, which does not.
const MAINS: [&str; 2] = ["a", "b"];
const SUB: &str = "sub";

/// Electricity's equivalent value (README, "Standard coal").
const KGCE_PER_KWH: f64 = 0.1229;
/// `[aggregation] windows = ["1m"]`.
const WINDOW: i64 = 60;
/// `max_gap_secs` (default): longer gaps between readings are not covered.
const MAX_GAP: i64 = 900;

fn db(n: u32, k: u32) -> String {
    format!("n{n}s{k}")
}

fn site_of(meter: &str) -> &str {
    meter.split('-').next().unwrap_or_default()
}

fn floor_window(t: i64) -> i64 {
    t.div_euclid(WINDOW) * WINDOW
}

/// One `consumption` point (a meter's window) or the expectation for it.
#[derive(Debug, Clone, Copy)]
struct MeterWindow {
    amount: f64,
    kgce: f64,
    coverage: f64,
    estimated: bool,
}

/// One `site_consumption` point.
#[derive(Debug, Clone, Copy)]
struct SiteWindow {
    amount: f64,
    kgce: f64,
    meters: u64,
    coverage: f64,
}

/// What one process's database holds.
#[derive(Default)]
struct Stored {
    /// meter -> slot -> `import_kwh` of `reading`.
    readings: BTreeMap<String, BTreeMap<i64, f64>>,
    /// meter -> window start -> its `consumption` point (`window = 1m`).
    windows: BTreeMap<String, BTreeMap<i64, MeterWindow>>,
    /// (site, energy) -> window start -> its `site_consumption` point.
    sites: BTreeMap<(String, String), BTreeMap<i64, SiteWindow>>,
}

/// Every series of a query: its tags and its rows as column -> value.
async fn series(
    influx: &Influxd,
    db: &str,
    q: &str,
) -> Vec<(BTreeMap<String, String>, Vec<BTreeMap<String, Value>>)> {
    let v = influx.query(db, q).await;
    let mut out = Vec::new();
    for s in v["results"][0]["series"].as_array().into_iter().flatten() {
        let tags = s["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let cols: Vec<String> = s["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or_default().to_owned())
            .collect();
        let rows = s["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                cols.iter()
                    .cloned()
                    .zip(row.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .collect();
        out.push((tags, rows));
    }
    out
}

fn num(row: &BTreeMap<String, Value>, col: &str) -> f64 {
    row[col]
        .as_f64()
        .unwrap_or_else(|| panic!("{col} is not a number in {row:?}"))
}

fn time(row: &BTreeMap<String, Value>) -> i64 {
    row["time"].as_i64().expect("epoch seconds")
}

async fn stored(influx: &Influxd, db: &str) -> Stored {
    let mut out = Stored::default();
    for (tags, rows) in series(
        influx,
        db,
        "SELECT q, import_kwh FROM reading GROUP BY meter",
    )
    .await
    {
        let slots = out.readings.entry(tags["meter"].clone()).or_default();
        for row in rows {
            assert_eq!(row["q"].as_i64(), Some(0), "{db}: {tags:?} {row:?}");
            slots.insert(time(&row), num(&row, "import_kwh"));
        }
    }
    for (tags, rows) in series(
        influx,
        db,
        "SELECT amount, kgce, coverage, estimated FROM consumption WHERE \"window\" = '1m' GROUP BY meter",
    )
    .await
    {
        let windows = out.windows.entry(tags["meter"].clone()).or_default();
        for row in rows {
            let w = MeterWindow {
                amount: num(&row, "amount"),
                kgce: num(&row, "kgce"),
                coverage: num(&row, "coverage"),
                estimated: row["estimated"].as_bool().expect("estimated is a boolean"),
            };
            windows.insert(time(&row), w);
        }
    }
    for (tags, rows) in series(
        influx,
        db,
        "SELECT amount, kgce, meters, coverage FROM site_consumption WHERE \"window\" = '1m' GROUP BY site, energy",
    )
    .await
    {
        let key = (tags["site"].clone(), tags["energy"].clone());
        let windows = out.sites.entry(key).or_default();
        for row in rows {
            let w = SiteWindow {
                amount: num(&row, "amount"),
                kgce: num(&row, "kgce"),
                meters: row["meters"].as_u64().unwrap_or(0),
                coverage: num(&row, "coverage"),
            };
            windows.insert(time(&row), w);
        }
    }
    // Nothing but 1-minute windows was configured.
    let other = influx
        .count(
            db,
            "SELECT count(amount) FROM consumption WHERE \"window\" != '1m'",
        )
        .await;
    assert_eq!(other, 0, "{db}: windows other than 1m");
    out
}

/// How many windows each meter has in `db`.
async fn window_counts(influx: &Influxd, db: &str) -> BTreeMap<String, usize> {
    series(
        influx,
        db,
        "SELECT amount FROM consumption WHERE \"window\" = '1m' GROUP BY meter",
    )
    .await
    .into_iter()
    .map(|(tags, rows)| (tags["meter"].clone(), rows.len()))
    .collect()
}

/// The windows a gateway must have written for one meter, worked out from
/// the slots `seen` by the data directory that holds the meter's state
/// (with their simulated counter values), for the windows from `from` (a
/// window start) whose end is at or before `last`.
///
/// The counter at a boundary is the reading on it, the first reading when
/// the boundary lies before it (a fresh start), else interpolated linearly
/// between the readings around it; the coverage is the part of the window
/// between consecutive readings at most `MAX_GAP` apart.
fn expected_windows(seen: &BTreeMap<i64, f64>, from: i64, last: i64) -> BTreeMap<i64, MeterWindow> {
    let (Some((&first, &first_v)), Some(_)) = (seen.first_key_value(), seen.last_key_value())
    else {
        return BTreeMap::new();
    };
    let counter = |b: i64| -> f64 {
        if b <= first {
            return first_v;
        }
        if let Some(v) = seen.get(&b) {
            return *v;
        }
        let (&p, &vp) = seen.range(..b).next_back().expect("a reading before");
        let (&q, &vq) = seen.range(b..).next().expect("a reading after");
        #[allow(clippy::cast_precision_loss)]
        let f = (b - p) as f64 / (q - p) as f64;
        vp + (vq - vp) * f
    };
    let slots: Vec<i64> = seen.keys().copied().collect();
    let mut out = BTreeMap::new();
    let mut w = from;
    while w + WINDOW <= last {
        let covered: i64 = slots
            .windows(2)
            .filter(|p| p[1] - p[0] <= MAX_GAP)
            .map(|p| (p[1].min(w + WINDOW) - p[0].max(w)).max(0))
            .sum();
        let amount = counter(w + WINDOW) - counter(w);
        #[allow(clippy::cast_precision_loss)]
        out.insert(
            w,
            MeterWindow {
                amount,
                kgce: amount * KGCE_PER_KWH,
                coverage: covered as f64 / WINDOW as f64,
                estimated: false,
            },
        );
        w += WINDOW;
    }
    out
}

fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-9 * scale.abs().max(1.0)
}

/// `emgate shards --n 3`: the N = 3 column and the moves to N = 4.
fn assignment_and_moves(
    main: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, (String, String)>) {
    let (code, out, err) = emgate(&["shards", "--config", main, "--n", "3"], &[]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let (table, moves) = out
        .split_once("site\tfrom\tto\n")
        .unwrap_or_else(|| panic!("no moves table in {out}"));
    assert!(
        table.ends_with("from 3 to 4 shards, 3 of 12 site(s) move:\n"),
        "{out}"
    );
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.len() == 3 && f[0] != "site")
            .collect()
    };
    let assignment = rows(table)
        .into_iter()
        .map(|f| (f[0].clone(), f[1].clone()))
        .collect();
    let moves = rows(moves)
        .into_iter()
        .map(|f| (f[0].clone(), (f[1].clone(), f[2].clone())))
        .collect();
    (assignment, moves)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_shards_total_their_own_sites_and_3_to_4_moves_exactly_the_listed_sites() {
    // Windows are exact only when every slot is polled at its second.
    let _timed = timed().await;
    let influx = Influxd::start();
    let dbs: Vec<(u32, u32)> = (0..3)
        .map(|k| (3, k))
        .chain((0..4).map(|k| (4, k)))
        .collect();
    for (n, k) in &dbs {
        influx.create_database(&db(*n, *k)).await;
    }
    let mut toml = GatewayToml::new("fleet")
        .influx_v1(
            &influx.url(),
            "unused",
            "batch_size = 50\nflush_interval_ms = 200",
        )
        .section(
            "aggregation",
            "windows = [\"1m\"]\nallowed_lateness_secs = 0",
        );
    for (i, (site, _, _)) in FLEET.iter().enumerate() {
        let ep = format!("ep-{site}");
        let mut s = Site::new(site, site);
        for (unit, m) in MAINS.iter().chain([&SUB]).enumerate() {
            let meter = modbus(
                &format!("{site}-{m}"),
                "electricity",
                "eastron_sdm630",
                &ep,
                unit + 1,
            );
            s = s.meter(if *m == SUB { meter.level(2) } else { meter });
        }
        toml = toml
            .endpoint(&ep, "timeout_ms = 1000")
            .site(&format!("{i:02}-{site}.toml"), s);
    }
    let files = toml.write();
    let main = files.main_file().display().to_string();

    // What `emgate shards` says, against the pinned assignment.
    let (assignment, moves) = assignment_and_moves(&main);
    let want_assignment: BTreeMap<String, String> = FLEET
        .iter()
        .map(|(s, k3, _)| ((*s).to_owned(), format!("{k3}/3")))
        .collect();
    assert_eq!(assignment, want_assignment);
    let want_moves: BTreeMap<String, (String, String)> = FLEET
        .iter()
        .filter(|(_, k3, k4)| k3 != k4)
        .map(|(s, k3, k4)| ((*s).to_owned(), (format!("{k3}/3"), format!("{k4}/4"))))
        .collect();
    assert_eq!(moves, want_moves);
    assert!(moves.values().all(|(_, to)| to == "3/4"), "{moves:?}");

    let config = files.load();
    let sim = Sim::start(&config).await;
    let meters: Vec<String> = config.meters.iter().map(|m| m.id.clone()).collect();
    let home = |meter: &str, n: u32| -> u32 {
        let (_, k3, k4) = FLEET
            .iter()
            .find(|(s, _, _)| *s == site_of(meter))
            .expect("a fleet site");
        if n == 3 { *k3 } else { *k4 }
    };

    // Three shards until every meter has closed a whole window (its second).
    let mut run: Vec<ShardProcess> = (0..3)
        .map(|k| ShardProcess::spawn(&files.main_file(), files.path(), k, 3, &db(3, k)))
        .collect();
    let have = async |n: u32, at_least: usize| {
        let mut counts = Vec::new();
        for k in 0..n {
            counts.push(window_counts(&influx, &db(n, k)).await);
        }
        meters.iter().all(|m| {
            counts[home(m, n) as usize]
                .get(m)
                .is_some_and(|c| *c >= at_least)
        })
    };
    wait_for(
        lazy(|| "two windows of every meter from the three shards".to_owned()),
        Duration::from_mins(4),
        async || have(3, 2).await,
    )
    .await;
    for p in &mut run {
        p.terminate().await;
    }
    // Four shards, K keeping its data directory, until every meter has
    // closed the window in progress at the switch.
    let mut run: Vec<ShardProcess> = (0..4)
        .map(|k| ShardProcess::spawn(&files.main_file(), files.path(), k, 4, &db(4, k)))
        .collect();
    wait_for(
        lazy(|| "a window of every meter from the four shards".to_owned()),
        Duration::from_mins(3),
        async || have(4, 1).await,
    )
    .await;
    for p in &mut run {
        p.terminate().await;
    }
    sim.stop();

    let mut all: BTreeMap<(u32, u32), Stored> = BTreeMap::new();
    for (n, k) in &dbs {
        all.insert((*n, *k), stored(&influx, &db(*n, *k)).await);
    }
    let empty = BTreeMap::new();
    let no_windows = BTreeMap::new();
    let mut owners_changed = BTreeSet::new();
    let (mut kept_switches, mut moved_switches) = (0, 0);
    for meter in &meters {
        let id = meter_id(&config, meter);
        let counter = config.meters[id.index()]
            .consumption
            .expect("a consumption counter");
        #[allow(clippy::cast_precision_loss)]
        let truth = |t: i64| sim.value_at(id, counter, t as f64);
        let (k3, k4) = (home(meter, 3), home(meter, 4));
        // (b) Readings: only in the owner's database of each run, each
        // slot once, every slot of a run polled, none in both runs.
        for (&(n, k), s) in &all {
            let mine = (n == 3 && k == k3) || (n == 4 && k == k4);
            assert_eq!(
                s.readings.contains_key(meter),
                mine,
                "{meter} readings in {}",
                db(n, k)
            );
            assert_eq!(
                s.windows.contains_key(meter),
                mine,
                "{meter} windows in {}",
                db(n, k)
            );
        }
        let r3 = all[&(3, k3)].readings.get(meter).unwrap_or(&empty);
        let r4 = all[&(4, k4)].readings.get(meter).unwrap_or(&empty);
        let s3: BTreeSet<i64> = r3.keys().copied().collect();
        let s4: BTreeSet<i64> = r4.keys().copied().collect();
        assert!(
            consecutive(&s3) && consecutive(&s4),
            "{meter}: a slot missed within a run: {s3:?} {s4:?}"
        );
        let (last3, first4) = (*s3.last().expect("run 1"), *s4.first().expect("run 2"));
        assert!(
            last3 < first4,
            "{meter}: slots {first4}..={last3} polled by both runs"
        );
        // The raw readings are the simulator's counter.
        for (t, v) in r3.iter().chain(r4) {
            assert_eq!(*v, truth(*t), "{meter} import_kwh at {t}");
        }
        if k3 != k4 {
            owners_changed.insert(site_of(meter).to_owned());
        }

        // (a) Windows: what each data directory's lineage saw decides
        // them. A K that keeps the site continues its windows across the
        // restart; a site's new shard starts it afresh.
        let lineage3: BTreeMap<i64, f64> = r3.keys().map(|t| (*t, truth(*t))).collect();
        let want3 = expected_windows(&lineage3, floor_window(*s3.first().unwrap_or(&0)), last3);
        let mut lineage4: BTreeMap<i64, f64> = r4.keys().map(|t| (*t, truth(*t))).collect();
        let from4 = if k3 == k4 {
            lineage4.extend(lineage3.iter());
            floor_window(last3)
        } else {
            floor_window(first4)
        };
        let want4 = expected_windows(&lineage4, from4, *s4.last().unwrap_or(&0));
        for (n, k, want) in [(3, k3, &want3), (4, k4, &want4)] {
            let got = all[&(n, k)].windows.get(meter).unwrap_or(&no_windows);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{meter}: the windows in {} (last slot of run 1 {last3}, first of run 2 {first4})",
                db(n, k)
            );
            for (w, g) in got {
                let e = want[w];
                let scale = truth(*w + WINDOW);
                assert!(
                    close(g.amount, e.amount, scale)
                        && close(g.kgce, e.kgce, scale)
                        && close(g.coverage, e.coverage, 1.0)
                        && g.estimated == e.estimated,
                    "{meter} window {w} in {}: got {g:?}, want {e:?}",
                    db(n, k)
                );
            }
        }
        // Together: every (meter, window) exactly once, no window lost
        // between the first window start and the last closed one except
        // that a moved site's new shard starts at its first reading.
        let both: BTreeSet<i64> = want3.keys().chain(want4.keys()).copied().collect();
        assert_eq!(
            both.len(),
            want3.len() + want4.len(),
            "{meter}: a window in both runs"
        );
        if k3 == k4 {
            let (lo, hi) = (*both.first().unwrap_or(&0), *both.last().unwrap_or(&0));
            assert_eq!(
                usize::try_from((hi - lo) / WINDOW + 1).ok(),
                Some(both.len()),
                "{meter}: a window lost across the restart: {both:?}"
            );
        }
        // The window in progress at the switch, spelled out (README,
        // "Changing N"): a kept site's is whole, as if nothing had happened;
        // a moved site's is written by its new shard alone, counted from
        // that shard's first reading, its coverage saying how much is missing.
        let run4 = &all[&(4, k4)].windows[meter];
        if k3 == k4 {
            let w = floor_window(last3);
            if first4 <= w + WINDOW {
                let got = run4[&w];
                let whole = truth(w + WINDOW) - truth(w);
                assert!(
                    close(got.amount, whole, truth(w)) && close(got.coverage, 1.0, 1.0),
                    "{meter}: window {w} across the restart {got:?}, whole {whole}"
                );
                kept_switches += 1;
            }
        } else if first4 % WINDOW != 0 {
            let w = floor_window(first4);
            let got = run4[&w];
            let part = truth(w + WINDOW) - truth(first4);
            #[allow(clippy::cast_precision_loss)]
            let coverage = (w + WINDOW - first4) as f64 / WINDOW as f64;
            assert!(
                close(got.amount, part, truth(w))
                    && close(got.coverage, coverage, 1.0)
                    && got.coverage < 1.0
                    // (equal when the counter's resolution hid the lost part)
                    && got.amount <= truth(w + WINDOW) - truth(w),
                "{meter}: window {w} after the move {got:?}, want {part} at coverage {coverage}"
            );
            moved_switches += 1;
        }
    }
    // Most kept meters' switch window is whole (unless the restart spanned
    // its end); the moved meters started mid-window (unless exactly on one).
    assert!(
        kept_switches > 0 && moved_switches > 0,
        "kept {kept_switches}, moved {moved_switches}"
    );
    assert_eq!(
        owners_changed,
        moves.keys().cloned().collect(),
        "the sites that changed hands are the ones `emgate shards` listed"
    );

    // (a) Site totals: in the owner's database only; the sum of the
    // level-1 meters' windows (the sub-meter's never), counted by `meters`,
    // their coverage averaged over both; `total` is the kgce.
    let mut subs_left_out = 0;
    for (&(n, k), s) in &all {
        for (site, energy) in s.sites.keys() {
            let owner = FLEET
                .iter()
                .find(|(id, _, _)| *id == site.as_str())
                .map(|(_, k3, k4)| if n == 3 { *k3 } else { *k4 });
            assert_eq!(owner, Some(k), "{site} {energy} totals in {}", db(n, k));
            assert!(
                energy == "electricity" || energy == "total",
                "{site}: energy {energy}"
            );
        }
        for (site, _, _) in FLEET
            .iter()
            .filter(|(_, k3, k4)| k == if n == 3 { *k3 } else { *k4 })
        {
            // Where each main meter's windows are: this database, and for a K
            // that kept the site, the previous run's database of the same K.
            let lineage: Vec<&Stored> =
                if n == 4 && FLEET.iter().any(|(id, k3, _)| id == site && *k3 == k) {
                    vec![s, &all[&(3, k)]]
                } else {
                    vec![s]
                };
            let mains: Vec<String> = MAINS.iter().map(|m| format!("{site}-{m}")).collect();
            let starts: BTreeSet<i64> = mains
                .iter()
                .flat_map(|m| s.windows.get(m).into_iter().flat_map(BTreeMap::keys))
                .copied()
                .collect();
            let elec = s.sites.get(&((*site).to_owned(), "electricity".to_owned()));
            let total = s.sites.get(&((*site).to_owned(), "total".to_owned()));
            let keys = |w: Option<&BTreeMap<i64, SiteWindow>>| {
                w.map(|w| w.keys().copied().collect::<BTreeSet<_>>())
                    .unwrap_or_default()
            };
            assert_eq!(
                keys(elec),
                starts,
                "{site}: electricity windows in {}",
                db(n, k)
            );
            assert_eq!(keys(total), starts, "{site}: total windows in {}", db(n, k));
            for w in &starts {
                let parts: Vec<MeterWindow> = mains
                    .iter()
                    .filter_map(|m| {
                        lineage
                            .iter()
                            .find_map(|l| l.windows.get(m).and_then(|x| x.get(w)))
                    })
                    .copied()
                    .collect();
                let sum: f64 = parts.iter().map(|p| p.amount).sum();
                let kgce: f64 = parts.iter().map(|p| p.kgce).sum();
                #[allow(clippy::cast_precision_loss)]
                let coverage = parts.iter().map(|p| p.coverage).sum::<f64>() / MAINS.len() as f64;
                let e = elec.map(|x| x[w]).expect("electricity window");
                let t = total.map(|x| x[w]).expect("total window");
                assert_eq!(
                    e.meters,
                    parts.len() as u64,
                    "{site} {w} in {}: {e:?}",
                    db(n, k)
                );
                assert!(
                    close(e.amount, sum, 1.0)
                        && close(e.kgce, kgce, 1.0)
                        && close(e.coverage, coverage, 1.0)
                        && close(t.amount, kgce, 1.0)
                        && close(t.kgce, kgce, 1.0),
                    "{site} {w} in {}: electricity {e:?}, total {t:?}, meters {parts:?}",
                    db(n, k)
                );
                // The sub-meter used energy in that window, and is not in it.
                if let Some(sub) = s
                    .windows
                    .get(&format!("{site}-{SUB}"))
                    .and_then(|x| x.get(w))
                {
                    assert!(
                        !close(e.amount, sum + sub.amount, 1.0),
                        "{site} {w}: {sub:?}"
                    );
                    subs_left_out += 1;
                }
            }
        }
    }
    assert!(
        subs_left_out > 0,
        "no sub-meter window beside a site window"
    );
    // Each site's totals come from exactly one shard per window: a moved
    // site's never from both its old and its new shard.
    for (site, k3, k4) in FLEET {
        let key = (site.to_owned(), "electricity".to_owned());
        let old = all[&(3, k3)]
            .sites
            .get(&key)
            .map(|w| w.keys().copied().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        let new = all[&(4, k4)]
            .sites
            .get(&key)
            .map(|w| w.keys().copied().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        assert!(
            !old.is_empty() && !new.is_empty(),
            "{site}: totals in both runs"
        );
        if k3 != k4 {
            assert!(
                old.is_disjoint(&new),
                "{site}: a window totalled by shard {k3}/3 and by {k4}/4: {old:?} {new:?}"
            );
        }
    }
}
