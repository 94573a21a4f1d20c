//! Shards by site (`[gateway] shard = "K/N"`): the pinned configuration
//! errors, what one shard keeps (re-indexed, endpoints and brokers dropped,
//! `{site}` subscriptions narrowed), `check-config` and `emgate shards`
//! exactly, the assignment against an independent implementation of the
//! hash written here, and three `emgate run` shards over one simulated fleet
//! into one `influxd`: every meter's slots present exactly once,
//! and killing one shard stops exactly its own sites.
//!
//! Expected shards were worked out once with a separate implementation
//! (Python, from the description: FNV-1a 64 of the site id, SplitMix64
//! finaliser of it XOR the finalised shard index plus the golden ratio,
//! highest weight wins) and pinned in [`ASSIGNMENT`]; the Rust copy below
//! re-derives them and checks the code on thousands of ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use emgate::config::{ConfigErrors, MeterSource, load_with_env, shard_of};

use crate::support::config::{ConfigFiles, GatewayToml, Site, modbus, mqtt};
use crate::support::influxd::Influxd;
use crate::support::test_gateway::Sim;
use crate::support::{free_port, lazy, wait_for};

/// The six sites of the fleet and their shard for N = 1..=5, pinned from
/// the independent (Python) computation.
const ASSIGNMENT: [(&str, [u32; 5]); 6] = [
    ("alpha", [0, 0, 0, 0, 4]),
    ("bravo", [0, 1, 2, 2, 2]),
    ("charlie", [0, 0, 0, 0, 0]),
    ("delta", [0, 0, 2, 2, 4]),
    ("echo", [0, 1, 2, 3, 3]),
    ("foxtrot", [0, 1, 1, 3, 3]),
];

/// The hash again, written from its description, not from the code.
fn reference_shard(site: &str, n: u32) -> u32 {
    fn fin(mut z: u64) -> u64 {
        z ^= z >> 30;
        z = z.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^= z >> 27;
        z = z.wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let h = site.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..n.max(1))
        .map(|s| (fin(h ^ fin(u64::from(s) + 0x9e37_79b9_7f4a_7c15)), s))
        // Highest weight; on a tie the lowest index (max_by_key keeps the last).
        .max_by_key(|&(w, s)| (w, std::cmp::Reverse(s)))
        .map_or(0, |(_, s)| s)
}

#[test]
fn the_assignment_matches_an_independent_implementation() {
    for (site, shards) in ASSIGNMENT {
        for (n, want) in (1..=5).zip(shards) {
            assert_eq!(
                reference_shard(site, n),
                want,
                "{site} at N={n} (reference)"
            );
            assert_eq!(shard_of(site, n), want, "{site} at N={n}");
        }
    }
    for i in 0..3000 {
        let id = format!("E35{i:08}");
        for n in 1..=9 {
            let (a, b) = (shard_of(&id, n), shard_of(&id, n + 1));
            assert_eq!(a, reference_shard(&id, n), "{id} at N={n}");
            // Minimal movement: a site that moves from N to N+1 goes to the new shard.
            assert!(a == b || b == n, "{id} moved {a}/{n} -> {b}/{}", n + 1);
        }
    }
}

/// The fleet: one endpoint per site with one meter (`<site>-e`), and an
/// MQTT meter (`<site>-m`) for alpha and bravo on broker `plant`.
fn fleet(extra_gateway_keys: &str) -> GatewayToml {
    let mut toml = GatewayToml::new("shards")
        .gateway_keys(extra_gateway_keys)
        .toml(
            "[[mqtt]]\nid = \"plant\"\nhost = \"127.0.0.1\"\nport = 1883\n\n\
             [[mqtt.subscriptions]]\ntopic = \"energy/{site}/{meter}/up\"\n\n\
             [[mqtt.subscriptions]]\ntopic = \"flat/+/{meter}\"\n",
        );
    for (i, (site, _)) in ASSIGNMENT.iter().enumerate() {
        toml = toml.endpoint(&format!("ep-{site}"), "");
        let mut s = Site::new(site, site).meter(modbus(
            &format!("{site}-e"),
            "electricity",
            "eastron_sdm630",
            &format!("ep-{site}"),
            1,
        ));
        if i < 2 {
            s = s.meter(
                mqtt(
                    &format!("{site}-m"),
                    "electricity",
                    "eastron_sdm630",
                    "plant",
                )
                .level(2),
            );
        }
        toml = toml.site(&format!("{i}-{site}.toml"), s);
    }
    toml
}

fn env(shard: &str) -> Vec<(String, String)> {
    vec![("EMGATE__GATEWAY__SHARD".to_owned(), shard.to_owned())]
}

fn errors(files: &ConfigFiles, env: &[(String, String)]) -> String {
    load_with_env(&files.main_file(), env)
        .map_or_else(|e: ConfigErrors| e.to_string(), |_| "loaded".to_owned())
}

#[test]
fn bad_shards_are_refused_with_pinned_messages() {
    let files = fleet("shard = \"3/3\"").write();
    let main = files.main_file().display().to_string();
    assert_eq!(
        errors(&files, &[]),
        format!(
            "{main}: gateway.shard: \"3/3\": K must be below N (shards are numbered 0 to 2), e.g. \"2/3\""
        )
    );
    assert_eq!(
        errors(&files, &env("1/0")),
        "<env>: gateway.shard: \"1/0\": N must be at least 1 (\"0/1\": no sharding) (set by EMGATE__GATEWAY__SHARD)"
    );
    assert_eq!(
        errors(&files, &env("first")),
        "<env>: gateway.shard: \"first\" is not a shard; write \"K/N\" with 0 <= K < N, e.g. \"0/3\" for the first of three gateways (\"0/1\": no sharding) (set by EMGATE__GATEWAY__SHARD)"
    );
    assert_eq!(
        errors(&files, &env("2/3")),
        "loaded",
        "the variable overrides the file"
    );
}

/// Every site's meter on one endpoint `bus`: alpha and charlie (0/3),
/// bravo, delta, echo (2/3), foxtrot (1/3).
fn one_bus() -> ConfigFiles {
    let mut toml = GatewayToml::new("shards").endpoint("bus", "");
    for (i, (site, _)) in ASSIGNMENT.iter().enumerate() {
        let unit = i + 1;
        toml = toml.site(
            &format!("{i}-{site}.toml"),
            Site::new(site, site).meter(modbus(
                &format!("{site}-e"),
                "electricity",
                "eastron_sdm630",
                "bus",
                unit,
            )),
        );
    }
    toml.write()
}

#[test]
fn an_endpoint_serving_several_shards_is_an_error_every_shard_reports() {
    let files = one_bus();
    let main = files.main_file().display().to_string();
    let want = format!(
        "{main}: endpoints[0]: endpoint \"bus\" serves sites alpha (shard 0/3), bravo (shard 2/3) and foxtrot (shard 1/3): a bus belongs to one gateway; give each shard its own endpoint"
    );
    for k in 0..3 {
        assert_eq!(errors(&files, &env(&format!("{k}/3"))), want);
    }
    // Two sites of two shards: the wording.
    assert!(
        errors(&files, &env("0/2")).ends_with(
            "endpoint \"bus\" serves sites alpha (shard 0/2) and bravo (shard 1/2): a bus belongs to one gateway; give each shard its own endpoint"
        ),
        "{}",
        errors(&files, &env("0/2"))
    );
    // Unsharded, the same bus is fine.
    assert_eq!(errors(&files, &[]), "loaded");
}

#[test]
fn a_shard_keeps_its_sites_reindexed_and_narrows_its_subscriptions() {
    let files = fleet("").write();
    let load = |shard: &str| {
        load_with_env(&files.main_file(), &env(shard)).unwrap_or_else(|e| panic!("{e}"))
    };
    for (k, sites, meters, topics) in [
        (
            0,
            vec!["alpha", "charlie"],
            vec!["alpha-e", "alpha-m", "charlie-e"],
            vec!["energy/alpha/{meter}/up", "flat/+/{meter}"],
        ),
        (1, vec!["foxtrot"], vec!["foxtrot-e"], vec![]),
        (
            2,
            vec!["bravo", "delta", "echo"],
            vec!["bravo-e", "bravo-m", "delta-e", "echo-e"],
            vec!["energy/bravo/{meter}/up", "flat/+/{meter}"],
        ),
    ] {
        let c = load(&format!("{k}/3"));
        let ids: Vec<&str> = c.sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, sites, "sites of shard {k}/3");
        let ids: Vec<&str> = c.meters.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, meters, "meters of shard {k}/3");
        // Every id still names the right thing after re-indexing.
        for m in &c.meters {
            let site = m.id.split('-').next().unwrap_or_default();
            assert_eq!(c.sites[m.site.index()].id, site, "{}", m.id);
            match m.source {
                MeterSource::Modbus { endpoint, .. } => {
                    assert_eq!(c.endpoints[endpoint.index()].id, format!("ep-{site}"));
                }
                MeterSource::Mqtt { broker } => assert_eq!(c.mqtt[broker.index()].id, "plant"),
                MeterSource::Dlt645 { .. } => panic!("no DL/T 645 meter here"),
            }
        }
        let eps: Vec<String> = c.endpoints.iter().map(|e| e.id.clone()).collect();
        let want: Vec<String> = sites.iter().map(|s| format!("ep-{s}")).collect();
        assert_eq!(
            eps, want,
            "endpoints of shard {k}/3: only those with a meter"
        );
        let subs: Vec<&str> = c
            .mqtt
            .iter()
            .flat_map(|b| b.subscriptions.iter().map(|s| s.topic.as_str()))
            .collect();
        assert_eq!(subs, topics, "subscriptions of shard {k}/3");
        for b in &c.mqtt {
            assert_eq!(b.client_id, format!("emgate-shards-plant-shard{k}of3"));
        }
    }
}

/// Runs `emgate ARGS` (without any shard from this process's environment)
/// and returns its exit code, stdout and stderr.
pub(super) fn emgate(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .args(args)
        .env_remove("EMGATE__GATEWAY__SHARD")
        .envs(env.iter().copied())
        .output()
        .expect("run emgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn emgate_shards_prints_the_assignment_and_the_moves_exactly() {
    let files = fleet("shard = \"1/3\"").write();
    let main = files.main_file().display().to_string();
    let (code, out, err) = emgate(&["shards", "--config", &main, "--n", "3"], &[]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    // By hand from ASSIGNMENT: N=3 column, meters per site (alpha and
    // bravo have two); moving to 4: echo 2 -> 3, foxtrot 1 -> 3.
    assert_eq!(
        out,
        "site\tshard\tmeters\n\
         alpha\t0/3\t2\n\
         bravo\t2/3\t2\n\
         charlie\t0/3\t1\n\
         delta\t2/3\t1\n\
         echo\t2/3\t1\n\
         foxtrot\t1/3\t1\n\
         shard 0/3: 2 site(s), 3 meter(s)\n\
         shard 1/3: 1 site(s), 1 meter(s)\n\
         shard 2/3: 3 site(s), 4 meter(s)\n\
         from 3 to 4 shards, 2 of 6 site(s) move:\n\
         site\tfrom\tto\n\
         echo\t2/3\t3/4\n\
         foxtrot\t1/3\t3/4\n"
    );
    // The moves printed are what the code does, site by site.
    for (site, shards) in ASSIGNMENT {
        let moved = out.contains(&format!("\n{site}\t{}/3\t", shards[2]))
            && out.contains(&format!("{site}\t{}/3\t{}/4\n", shards[2], shards[3]));
        assert_eq!(moved, shards[2] != shards[3], "{site}");
    }
    // check-config of shard 1/3 (from the file), then 2/3 from the environment.
    let (code, out, err) = emgate(&["check-config", "--config", &main], &[]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.contains("\nshard 1/3: 1 site(s), 1 meter(s)\nsites: foxtrot\n"),
        "{out}"
    );
    let (code, out, _) = emgate(
        &["check-config", "--config", &main],
        &[("EMGATE__GATEWAY__SHARD", "2/3")],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("\nshard 2/3: 3 site(s), 4 meter(s)\nsites: bravo, delta, echo\n"),
        "{out}"
    );
}

/// An `emgate run` of one shard, with its own data directory, database and
/// API port from the environment; SIGKILLed if still running when dropped.
pub(super) struct ShardProcess {
    pub(super) child: Child,
    /// Base URL of its API.
    pub(super) api: String,
}

impl ShardProcess {
    fn start(main: &Path, dir: &Path, k: u32) -> ShardProcess {
        ShardProcess::spawn(main, dir, k, 3, &format!("shard{k}"))
    }

    /// Shard `k/n` of the files at `main`, writing into database `db`, with
    /// gateway id `shards-K` and data directory `dir/data-K`: the same K
    /// keeps its id and data directory whatever N is, as a resharded
    /// gateway does. Its log goes to `dir/shard-KofN.log`.
    pub(super) fn spawn(main: &Path, dir: &Path, k: u32, n: u32, db: &str) -> ShardProcess {
        let log = std::fs::File::create(dir.join(format!("shard-{k}of{n}.log"))).expect("log file");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_emgate"))
            .args([
                "--log-format",
                "json",
                "run",
                "--stats-interval",
                "0",
                "--config",
            ])
            .arg(main)
            .env("EMGATE__GATEWAY__SHARD", format!("{k}/{n}"))
            .env("EMGATE__GATEWAY__ID", format!("shards-{k}"))
            .env(
                "EMGATE__GATEWAY__DATA_DIR",
                dir.join(format!("data-{k}")).display().to_string(),
            )
            .env("EMGATE__INFLUXDB__DATABASE", db)
            .env("EMGATE__API__LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start emgate run");
        ShardProcess {
            child,
            api: format!("http://127.0.0.1:{port}"),
        }
    }

    /// SIGTERM, then wait for the exit (the gateway flushes first).
    pub(super) async fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "shard exited with {status}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("shard {pid} still running 30 s after SIGTERM");
    }
}

impl Drop for ShardProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_over_one_fleet_store_every_meter_slot_exactly_once_and_die_alone() {
    let _timed = crate::support::timed().await;
    let influx = Influxd::start();
    for k in 0..3 {
        influx.create_database(&format!("shard{k}")).await;
    }
    // One site file per site, two meters each, one endpoint per site.
    let mut toml = GatewayToml::new("shards").readings_only().influx_v1(
        &influx.url(),
        "shard0",
        "batch_size = 4\nflush_interval_ms = 200",
    );
    for (i, (site, _)) in ASSIGNMENT.iter().enumerate() {
        toml = toml
            .endpoint(&format!("ep-{site}"), "timeout_ms = 1000")
            .site(
                &format!("{i}-{site}.toml"),
                Site::new(site, site)
                    .meter(modbus(
                        &format!("{site}-1"),
                        "electricity",
                        "eastron_sdm630",
                        &format!("ep-{site}"),
                        1,
                    ))
                    .meter(
                        modbus(
                            &format!("{site}-2"),
                            "electricity",
                            "eastron_sdm630",
                            &format!("ep-{site}"),
                            2,
                        )
                        .level(2),
                    ),
            );
    }
    let files = toml.write();
    // The simulator serves the whole fleet (the file has no shard).
    let sim = Sim::start(&files.load()).await;
    let mut shards: Vec<ShardProcess> = (0..3)
        .map(|k| ShardProcess::start(&files.main_file(), files.path(), k))
        .collect();

    // Which database each meter must be in, from the pinned N=3 column.
    let home: BTreeMap<String, String> = ASSIGNMENT
        .iter()
        .flat_map(|(site, s)| [1, 2].map(|m| (format!("{site}-{m}"), format!("shard{}", s[2]))))
        .collect();
    let stored = async || {
        let mut all: Vec<BTreeMap<String, BTreeSet<i64>>> = Vec::new();
        for k in 0..3 {
            all.push(
                influx
                    .meter_slots(&format!("shard{k}"), "reading", "q")
                    .await,
            );
        }
        all
    };
    wait_for(
        lazy(|| "three slots of every meter in its shard's database".to_owned()),
        Duration::from_mins(1),
        async || {
            let all = stored().await;
            home.iter().all(|(meter, db)| {
                let k: usize = db[5..].parse().unwrap_or(0);
                all[k].get(meter).is_some_and(|s| s.len() >= 3)
            })
        },
    )
    .await;
    // `emgate status` over the three: one merged view, every meter once.
    let status = |urls: Vec<String>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_emgate"));
        cmd.arg("status");
        for u in &urls {
            cmd.args(["--url", u]);
        }
        let out = cmd.output().expect("emgate status");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let urls: Vec<String> = shards.iter().map(|s| s.api.clone()).collect();
    let (code, text) = status(urls.clone());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("gateways: 3 of 3 answered ("), "{text}");
    for meter in home.keys() {
        let rows = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(meter.as_str()))
            .count();
        assert_eq!(rows, 1, "{meter} once in:\n{text}");
    }
    // Kill shard 1 (foxtrot alone): its meters stop, nobody else's do.
    let _ = shards[1].child.kill();
    let _ = shards[1].child.wait();
    // The merged status says which gateway is gone; its sites are absent.
    let (code, text) = status(urls);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("gateways: 2 of 3 answered ("), "{text}");
    assert!(
        text.contains(&format!("NOT ANSWERING: {}/api/sites", shards[1].api)),
        "{text}"
    );
    for (meter, db) in &home {
        let shown = text
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(meter.as_str()));
        assert_eq!(shown, db != "shard1", "{meter} in:\n{text}");
    }
    let at_kill = stored().await;
    let count = |all: &[BTreeMap<String, BTreeSet<i64>>], meter: &str, db: &str| {
        let k: usize = db[5..].parse().unwrap_or(0);
        all[k].get(meter).map_or(0, BTreeSet::len)
    };
    wait_for(
        lazy(|| "three more slots of every meter of shards 0 and 2".to_owned()),
        Duration::from_mins(1),
        async || {
            let now = stored().await;
            home.iter()
                .filter(|(_, db)| *db != "shard1")
                .all(|(m, db)| count(&now, m, db) >= count(&at_kill, m, db) + 3)
        },
    )
    .await;
    for k in [0, 2] {
        shards[k].terminate().await;
    }
    sim.stop();

    let all = stored().await;
    for (meter, db) in home.iter().filter(|(_, db)| *db == "shard1") {
        assert_eq!(
            count(&all, meter, db),
            count(&at_kill, meter, db),
            "{meter}: nothing after its shard was killed"
        );
    }
    for (meter, db) in &home {
        let k: usize = db[5..].parse().unwrap_or(0);
        for (j, shard) in all.iter().enumerate() {
            // `meter_slots` panics on a slot stored twice in one database;
            // a meter in two databases would be polled by two gateways.
            assert_eq!(
                shard.contains_key(meter),
                j == k,
                "{meter} in shard{j}: {:?}",
                shard.get(meter)
            );
        }
    }
    let meters: BTreeSet<&String> = all.iter().flat_map(BTreeMap::keys).collect();
    assert_eq!(meters, home.keys().collect(), "no other meter anywhere");
}

#[test]
fn emgate_shards_refuses_a_bus_split_between_shards() {
    let files = one_bus();
    let main = files.main_file().display().to_string();
    let (code, out, err) = emgate(&["shards", "--config", &main, "--n", "2"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("site\tshard\tmeters\nalpha\t0/2\t1\nbravo\t1/2\t1\n"),
        "{out}"
    );
    assert!(
        out.ends_with("note: with 3 shards: endpoint \"bus\" serves sites alpha (shard 0/3), bravo (shard 2/3) and foxtrot (shard 1/3): a bus belongs to one gateway; give each shard its own endpoint\n"),
        "{out}"
    );
    assert_eq!(
        err,
        format!(
            "{main}: endpoints[0]: endpoint \"bus\" serves sites alpha (shard 0/2) and bravo (shard 1/2): a bus belongs to one gateway; give each shard its own endpoint\n1 error found\n"
        )
    );
    let (code, _, err) = emgate(&["shards", "--config", &main, "--n", "0"], &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn resharding_from_3_to_4_moves_only_the_sites_emgate_shards_names() {
    let files = fleet("").write();
    let main = files.main_file().display().to_string();
    let (code, out, _) = emgate(&["shards", "--config", &main, "--n", "3"], &[]);
    assert_eq!(code, 0, "{out}");
    // The "site from to" table after the moves header.
    let moves: BTreeMap<String, (String, String)> = out
        .split("site\tfrom\tto\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), (f[1].to_owned(), f[2].to_owned()))
        })
        .collect();
    let sites_of = |shard: &str| -> BTreeSet<String> {
        load_with_env(&files.main_file(), &env(shard))
            .unwrap_or_else(|e| panic!("{e}"))
            .sites
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    let (mut seen, mut total) = (BTreeSet::new(), 0);
    for k in 0..4 {
        let after = sites_of(&format!("{k}/4"));
        let before = if k < 3 {
            sites_of(&format!("{k}/3"))
        } else {
            BTreeSet::new()
        };
        for site in after.symmetric_difference(&before) {
            let (from, to) = moves
                .get(site)
                .unwrap_or_else(|| panic!("{site} changed shard {k} but is not listed: {out}"));
            if after.contains(site) {
                assert_eq!(to, &format!("{k}/4"), "{site}");
            } else {
                assert_eq!(from, &format!("{k}/3"), "{site}");
            }
        }
        total += after.len();
        seen.extend(after);
    }
    assert_eq!(
        (seen.len(), total),
        (ASSIGNMENT.len(), ASSIGNMENT.len()),
        "every site in exactly one of the four"
    );
    assert_eq!(moves.keys().collect::<Vec<_>>(), ["echo", "foxtrot"]);
}
