//! Crashes of the gateway process and damage to its spool files, with real
//! processes and a real `influxd`.
//!
//! * `sigkill_at_random_moments_loses_no_appended_slot`: the `emgate run`
//!   process is SIGKILLed at ten random moments (fixed seed), five while
//!   InfluxDB is up and five while it is stopped, and restarted after each
//!   kill. Right after each kill the test reads what the spool holds (with
//!   `Spool::open`, without acknowledging) and, when InfluxDB is up, what it
//!   already stores: the union is every slot accepted so far. At the end
//!   every accepted slot must be in InfluxDB, once, with the simulator's
//!   values.
//! * `damaged_segments_are_reported_and_the_rest_delivered`: a gateway fills
//!   its spool while the output is down; the test flips a byte in a record
//!   in the middle of a segment and tears the last record of the newest one;
//!   `emgate run` then starts, logs the recovery report ("spool opened") with
//!   exactly those two damages, and delivers exactly the undamaged records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use emgate::config::Config;
use emgate::model::MeterId;
use emgate::sim::Simulator;
use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::stats::Stats;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::gateway::Gateway;
use crate::support::influxd::Influxd;

const DB: &str = "crash";
const SITE: &str = "E3501020077";
/// The spool's bound in these tests; never reached.
const MAX_BYTES: u64 = 64 << 20;

/// Slots per meter: (meter id, slot seconds).
type Slots = BTreeMap<String, BTreeSet<i64>>;

/// A configuration on disk for `emgate run`, and the same loaded in-process
/// for the simulator.
struct Setup {
    dir: tempfile::TempDir,
    config: Config,
}

impl Setup {
    /// `meters`: (id, energy, profile, endpoint index, extra keys);
    /// `ports`: one per endpoint.
    fn new(
        url: &str,
        segment_bytes: u64,
        ports: &[u16],
        meters: &[(&str, &str, &str, usize, &str)],
    ) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
        let mut main = format!(
            r#"# Exact line counts below: readings only.
[aggregation]
windows = []

[gateway]
id = "crash"
data_dir = {data:?}
profiles_dir = {profiles:?}

[influxdb]
api = "v1"
url = "{url}"
database = "{DB}"
batch_size = 20
flush_interval_ms = 100
timeout_ms = 2000
retry_initial_ms = 100
retry_max_ms = 500

[spool]
max_bytes = {MAX_BYTES}
segment_bytes = {segment_bytes}
policy = "block"
fsync = "interval"
fsync_interval_ms = 200
"#,
            data = dir.path().join("data").display().to_string(),
            profiles = profiles.display().to_string(),
        );
        for (i, port) in ports.iter().enumerate() {
            let _ = write!(
                main,
                "\n[[endpoints]]\nid = \"ep{i}\"\nhost = \"127.0.0.1\"\nport = {port}\ntimeout_ms = 1000\n"
            );
        }
        let mut site = format!("[site]\nid = \"{SITE}\"\nname = \"crash test\"\n");
        let mut units = vec![0u8; ports.len()];
        for (id, energy, profile, ep, extra) in meters {
            units[*ep] += 1;
            let _ = write!(
                site,
                "\n[[meters]]\nid = \"{id}\"\nenergy = \"{energy}\"\nlevel = 1\nprofile = \"{profile}\"\n\
                 endpoint = \"ep{ep}\"\nunit_id = {}\npoll_interval_secs = 1\n{extra}\n",
                units[*ep]
            );
        }
        std::fs::create_dir(dir.path().join("sites")).expect("sites dir");
        std::fs::write(dir.path().join("sites/site.toml"), site).expect("site file");
        let main_path = dir.path().join("emgate.toml");
        std::fs::write(&main_path, main).expect("main file");
        let config = emgate::config::load::load(&main_path)
            .unwrap_or_else(|e| panic!("test configuration: {e}"));
        Setup { dir, config }
    }

    fn main_file(&self) -> PathBuf {
        self.dir.path().join("emgate.toml")
    }

    fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("data/spool")
    }

    /// Starts `emgate run` with JSON logs to `name`.log in the test's directory.
    fn run(&self, name: &str) -> Gateway {
        Gateway::run(
            &self.main_file(),
            self.dir.path().join(format!("{name}.log")),
        )
    }
}

/// The (meter, slot) of one `reading` line: the `meter` tag and the
/// trailing timestamp (seconds).
fn meter_slot(line: &[u8]) -> (String, i64) {
    let text = std::str::from_utf8(line).expect("line protocol is UTF-8");
    let series = text.split(' ').next().expect("series");
    let meter = series
        .split(',')
        .find_map(|t| t.strip_prefix("meter="))
        .unwrap_or_else(|| panic!("no meter tag in {text:?}"));
    let slot = text
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp in {text:?}"));
    (meter.to_owned(), slot)
}

fn add_lines(slots: &mut Slots, record: &[u8]) -> u64 {
    let mut n = 0;
    for line in record.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let (meter, slot) = meter_slot(line);
        slots.entry(meter).or_default().insert(slot);
        n += 1;
    }
    n
}

/// What a closed spool holds, read through the spool's own API without
/// acknowledging anything; the spool is closed again afterwards.
fn spool_slots(dir: &Path) -> Slots {
    let (spool, _recovery) = Spool::open(SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: MAX_BYTES,
        segment_bytes: 1 << 20,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("open the spool");
    let mut slots = Slots::new();
    let mut records = Vec::new();
    while spool.read(1024, usize::MAX, &mut records).is_some() {
        for r in records.drain(..) {
            add_lines(&mut slots, &r);
        }
    }
    slots
}

fn merge(into: &mut Slots, from: &Slots) {
    for (meter, s) in from {
        into.entry(meter.clone()).or_default().extend(s);
    }
}

fn total(slots: &Slots) -> usize {
    slots.values().map(BTreeSet::len).sum()
}

/// `accepted` minus what `stored` has.
fn missing(accepted: &Slots, stored: &Slots) -> Slots {
    let mut out = Slots::new();
    for (meter, s) in accepted {
        let have = stored.get(meter);
        let gone: BTreeSet<i64> = s
            .iter()
            .filter(|t| !have.is_some_and(|h| h.contains(t)))
            .copied()
            .collect();
        if !gone.is_empty() {
            out.insert(meter.clone(), gone);
        }
    }
    out
}

/// Every value of every `reading` point equals the simulator's at its slot,
/// and every reading is good (q = 0). Returns the number of points.
async fn check_values(influx: &Influxd, config: &Config, sim: &Simulator) -> u64 {
    let answer = influx.query(DB, "SELECT * FROM reading").await;
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column name"))
        .collect();
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("column {name} in {columns:?}"))
    };
    let rows = series["values"].as_array().expect("rows");
    for row in rows {
        let meter_id = row[col("meter")].as_str().expect("meter tag");
        let index = config
            .meters
            .iter()
            .position(|m| m.id == meter_id)
            .expect("known meter");
        assert_eq!(row[col("q")], Value::from(0), "all good: {row:?}");
        let slot = row[col("time")].as_i64().expect("epoch seconds");
        let id = MeterId(index as u32);
        for (p, point) in config.profile_of(id).points.iter().enumerate() {
            let want = sim.value_at(id, p, slot as f64);
            assert_eq!(
                row[col(&point.name)].as_f64(),
                Some(want),
                "{meter_id} {} at {slot}",
                point.name
            );
        }
    }
    rows.len() as u64
}

/// Meters of the crash test: one endpoint, several profiles.
const CRASH_METERS: [(&str, &str, &str, usize, &str); 6] = [
    (
        "e-main",
        "electricity",
        "acrel_dtsd1352",
        0,
        "pt = 10.0\nct = 40.0",
    ),
    ("e-line1", "electricity", "eastron_sdm630", 0, ""),
    ("g-boiler", "natural_gas", "gas_flow_computer", 0, ""),
    ("s-main", "steam", "steam_flow_computer", 0, ""),
    ("w-main", "water", "water_meter", 0, ""),
    ("h-main", "heat", "heat_meter", 0, ""),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_appended_slot() {
    let mut influx = Influxd::start();
    influx.create_database(DB).await;
    let setup = Setup::new(
        &influx.url(),
        64 * 1024,
        &[crate::support::free_port()],
        &CRASH_METERS,
    );
    let stop_sim = CancellationToken::new();
    let sim = Simulator::start(&setup.config, stop_sim.clone())
        .await
        .expect("simulator");

    let mut rng = fastrand::Rng::with_seed(0x00e6_6a7e);
    let mut accepted = Slots::new();
    let mut from_spool_while_down = 0;
    let mut report = String::new();
    for round in 0..10 {
        let up = round % 2 == 0;
        if up && !influx.is_running() {
            tokio::task::block_in_place(|| influx.start_again());
        } else if !up && influx.is_running() {
            tokio::task::block_in_place(|| influx.stop());
        }
        let mut gw = setup.run(&format!("run{round}"));
        let ms = rng.u64(300..=2000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        gw.kill9();

        let in_spool = spool_slots(&setup.spool_dir());
        merge(&mut accepted, &in_spool);
        if up {
            let stored = influx.meter_slots(DB, "reading", "q").await;
            merge(&mut accepted, &stored);
        } else {
            from_spool_while_down = from_spool_while_down.max(total(&in_spool));
        }
        let _ = writeln!(
            report,
            "round {round}: influxd {}, killed after {ms} ms; spool holds {} slots; accepted so far {}",
            if up { "up" } else { "down" },
            total(&in_spool),
            total(&accepted)
        );
    }
    eprintln!("{report}");
    assert!(
        from_spool_while_down > 0,
        "no kill while InfluxDB was down left anything in the spool, so the test proved nothing:\n{report}"
    );

    // Last run: InfluxDB up, everything accepted delivered, then SIGTERM.
    if !influx.is_running() {
        tokio::task::block_in_place(|| influx.start_again());
    }
    let mut gw = setup.run("final");
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let stored = influx.meter_slots(DB, "reading", "q").await;
        let gone = missing(&accepted, &stored);
        if gone.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, accepted slots still missing from InfluxDB: {gone:?}\n{report}\nlog:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.terminate().await;
    let final_stats = gw.log_fields("final stats");
    stop_sim.cancel();

    // The spool is drained: the last run delivered its own slots too.
    let (spool, recovery) = Spool::open(SpoolConfig {
        dir: setup.spool_dir(),
        max_bytes: MAX_BYTES,
        segment_bytes: 1 << 20,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::EveryAppend,
    })
    .expect("open the spool");
    assert_eq!(
        recovery.pending_records, 0,
        "spool drained at exit: {recovery}"
    );
    drop(spool);
    assert_eq!(final_stats["lines_rejected"], 0);

    let stored = influx.meter_slots(DB, "reading", "q").await;
    assert_eq!(
        missing(&accepted, &stored),
        Slots::new(),
        "every accepted slot is in InfluxDB"
    );
    assert_eq!(stored.len(), CRASH_METERS.len());
    for (meter, slots) in &stored {
        let count = influx
            .count(
                DB,
                &format!("SELECT count(q) FROM reading WHERE meter = '{meter}'"),
            )
            .await;
        assert_eq!(
            count,
            slots.len() as u64,
            "{meter}: exactly one point per slot"
        );
    }
    let points = check_values(&influx, &setup.config, &sim).await;
    assert_eq!(points as usize, total(&stored));
}

/// A spool segment as framed on disk: (offset, payload length) of each record.
fn records_of(segment: &[u8]) -> Vec<(usize, usize)> {
    assert!(
        segment.len() >= 8 && segment.starts_with(b"EMSPOOL"),
        "segment header"
    );
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().expect("4 bytes")) as usize;
        assert!(
            at + 8 + len <= segment.len(),
            "whole records in an undamaged segment"
        );
        out.push((at, len));
        at += 8 + len;
    }
    assert_eq!(at, segment.len(), "no trailing bytes");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_segments_are_reported_and_the_rest_delivered() {
    // Eight endpoints of one small meter each: one-line records, several
    // to a 4 KiB segment.
    let ports: Vec<u16> = (0..8).map(|_| crate::support::free_port()).collect();
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let meters: Vec<(&str, &str, &str, usize, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), "water", "water_meter", i, ""))
        .collect();
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let setup = Setup::new(&closed, 4096, &ports, &meters);
    let stop_sim = CancellationToken::new();
    let _sim = Simulator::start(&setup.config, stop_sim.clone())
        .await
        .expect("simulator");

    // Fill a few segments while the output is down (in-process, to read
    // the counters), then stop.
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(emgate::app::run(
        Arc::new(setup.config.clone()),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_mins(1);
    while Stats::get(&stats.lines_spooled) < 64 {
        assert!(Instant::now() < deadline, "nothing spooled in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops within 30 s")
        .expect("join")
        .expect("gateway");
    let spooled = Stats::get(&stats.lines_spooled);
    assert_eq!(Stats::get(&stats.lines_written), 0);
    let first_run_end = jiff::Timestamp::now().as_second();

    // Every record on disk, then the damage.
    let mut segs: Vec<PathBuf> = std::fs::read_dir(setup.spool_dir())
        .expect("spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let mut all = Slots::new();
    let mut per_seg = Vec::new();
    for path in &segs {
        let bytes = std::fs::read(path).expect("segment");
        let recs = records_of(&bytes);
        for &(at, len) in &recs {
            add_lines(&mut all, &bytes[at + 8..at + 8 + len]);
        }
        per_seg.push((path.clone(), bytes, recs));
    }
    assert_eq!(
        total(&all) as u64,
        spooled,
        "the segments hold every spooled line"
    );
    let with_data: Vec<usize> = (0..per_seg.len())
        .filter(|&i| !per_seg[i].2.is_empty())
        .collect();
    assert!(
        with_data.len() >= 2,
        "at least two segments with records: {}",
        with_data.len()
    );

    let mut expected = all.clone();
    let remove = |expected: &mut Slots, record: &[u8]| {
        let mut gone = Slots::new();
        add_lines(&mut gone, record);
        for (meter, s) in gone {
            let e = expected.get_mut(&meter).expect("meter");
            for t in s {
                assert!(e.remove(&t));
            }
        }
    };
    // A flipped byte in the middle record of the first segment.
    let (path, bytes, recs) = &per_seg[with_data[0]];
    assert!(
        recs.len() >= 3,
        "records in the first segment: {}",
        recs.len()
    );
    let (at, len) = recs[recs.len() / 2];
    let mut damaged = bytes.clone();
    damaged[at + 8 + len / 2] ^= 0xff;
    std::fs::write(path, &damaged).expect("corrupt a record");
    remove(&mut expected, &bytes[at + 8..at + 8 + len]);
    let corrupt_bytes = 8 + len;
    // The last record of the newest segment torn in half.
    let (path, bytes, recs) = &per_seg[*with_data.last().expect("segment")];
    let (at, len) = *recs.last().expect("record");
    let keep = at + 8 + len / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep as u64))
        .expect("truncate the last segment");
    remove(&mut expected, &bytes[at + 8..at + 8 + len]);
    let torn_bytes = keep - at;
    let undamaged = total(&expected) as u64;
    assert!(undamaged < spooled && undamaged > 0);

    // The gateway as a process against a real InfluxDB, on the damaged spool.
    let influx = Influxd::start();
    influx.create_database(DB).await;
    let main = std::fs::read_to_string(setup.main_file()).expect("main file");
    std::fs::write(setup.main_file(), main.replace(&closed, &influx.url())).expect("main file");
    let mut gw = setup.run("recovered");
    let old_points = format!("SELECT count(q) FROM reading WHERE time <= {first_run_end}s");
    let deadline = Instant::now() + Duration::from_mins(1);
    while influx.count(DB, &old_points).await < undamaged {
        assert!(
            Instant::now() < deadline,
            "the undamaged records were not delivered within 60 s; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gw.terminate().await;
    stop_sim.cancel();

    let opened = gw.log_fields("spool opened");
    let recovery = opened["recovery"].as_str().expect("recovery report");
    eprintln!("recovery report: {recovery}");
    assert!(
        recovery.contains(&format!("; {torn_bytes} torn bytes truncated; 1 corrupt regions ({corrupt_bytes} bytes) skipped; 0 segments with a bad header skipped; ack position intact")),
        "{recovery}"
    );
    let final_stats = gw.log_fields("final stats");
    assert_eq!(final_stats["lines_rejected"], 0);

    // Exactly the undamaged records of the first run, and everything the
    // second run wrote.
    let stored = influx.meter_slots(DB, "reading", "q").await;
    let mut old = Slots::new();
    for (meter, s) in &stored {
        let o: BTreeSet<i64> = s.iter().filter(|&&t| t <= first_run_end).copied().collect();
        if !o.is_empty() {
            old.insert(meter.clone(), o);
        }
    }
    assert_eq!(
        old, expected,
        "InfluxDB holds exactly the undamaged records"
    );
    assert_eq!(
        influx.count(DB, "SELECT count(q) FROM reading").await,
        final_stats["lines_written"]
            .as_u64()
            .expect("lines_written"),
        "points == lines the second run wrote (undamaged backlog + its own)"
    );
    assert_eq!(
        final_stats["lines_written"].as_u64(),
        Some(
            undamaged
                + final_stats["lines_spooled"]
                    .as_u64()
                    .expect("lines_spooled")
        )
    );
}
