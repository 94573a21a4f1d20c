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

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emgate::config::Config;
use emgate::sim::SimOptions;
use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};
use emgate::telemetry::Stats;
use serde_json::Value;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::influxd::Influxd;
use crate::support::spool;
use crate::support::test_gateway::{Sim, TestGateway};
use crate::support::{lazy, wait_for};

const DB: &str = "crash";
const SITE: &str = "E3501020077";
/// The spool's bound in these tests; never reached.
const MAX_BYTES: u64 = 64 << 20;

/// Slots per meter: (meter id, slot seconds).
type Slots = BTreeMap<String, BTreeSet<i64>>;

/// A meter of these tests: (id, energy, profile, endpoint index, extra keys).
type MeterSpec<'a> = (&'a str, &'a str, &'a str, usize, &'a str);

/// The crash tests' gateway: readings only into `url`, a spool of
/// `segment_bytes` segments, `endpoints` endpoints `ep0`, `ep1`, ... and
/// `meters` on them (unit ids counted per endpoint).
fn gateway(url: &str, segment_bytes: u64, endpoints: usize, meters: &[MeterSpec]) -> GatewayToml {
    let mut toml = GatewayToml::new("crash")
        .readings_only()
        .influx_v1(
            url,
            DB,
            "batch_size = 20\nflush_interval_ms = 100\ntimeout_ms = 2000\n\
             retry_initial_ms = 100\nretry_max_ms = 500",
        )
        .section(
            "spool",
            &format!(
                "max_bytes = {MAX_BYTES}\nsegment_bytes = {segment_bytes}\npolicy = \"block\"\n\
                 fsync = \"interval\"\nfsync_interval_ms = 200"
            ),
        );
    for i in 0..endpoints {
        toml = toml.endpoint(&format!("ep{i}"), "timeout_ms = 1000");
    }
    let mut site = Site::new(SITE, "crash test");
    let mut units = vec![0; endpoints];
    for (id, energy, profile, ep, extra) in meters {
        units[*ep] += 1;
        let endpoint = format!("ep{ep}");
        site = site.meter(modbus(id, energy, profile, &endpoint, units[*ep]).keys(extra));
    }
    toml.site("site.toml", site)
}

fn add_lines(slots: &mut Slots, record: &[u8]) -> u64 {
    let mut n = 0;
    for line in spool::lines(record) {
        let (meter, slot) = spool::meter_slot(line);
        slots.entry(meter).or_default().insert(slot);
        n += 1;
    }
    n
}

/// What a closed spool holds, read without acknowledging anything.
fn spool_slots(dir: &Path) -> Slots {
    let mut slots = Slots::new();
    for r in spool::pending_records(dir) {
        add_lines(&mut slots, &r);
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
async fn check_values(influx: &Influxd, config: &Config, sim: &Sim) -> u64 {
    let table = influx.table(DB, "SELECT * FROM reading").await;
    for row in &table.rows {
        assert_eq!(row[table.col("q")], Value::from(0), "all good: {row:?}");
        sim.assert_reading(config, &table, row);
    }
    table.rows.len() as u64
}

/// Meters of the crash test: one endpoint, several profiles.
const CRASH_METERS: [MeterSpec; 6] = [
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
    let mut influx = Influxd::with_database(DB).await;
    let toml = gateway(&influx.url(), 64 * 1024, 1, &CRASH_METERS);
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;

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
        let mut process = gw.spawn(&format!("run{round}"));
        let ms = rng.u64(300..=2000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        process.kill9();

        let in_spool = spool_slots(&gw.files.spool_dir());
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
    let mut process = gw.spawn("final");
    let gone = RefCell::new(Slots::new());
    let what = lazy(|| {
        format!(
            "every accepted slot in InfluxDB; still missing: {:?}\n{report}\nlog:\n{}",
            gone.borrow(),
            process.log()
        )
    });
    wait_for(&what, Duration::from_mins(1), async || {
        let stored = influx.meter_slots(DB, "reading", "q").await;
        *gone.borrow_mut() = missing(&accepted, &stored);
        gone.borrow().is_empty()
    })
    .await;
    process.terminate().await;
    let final_stats = process.log_fields("final stats");
    gw.sim.stop();

    // The spool is drained: the last run delivered its own slots too.
    let (spool, recovery) = Spool::open(SpoolConfig {
        dir: gw.files.spool_dir(),
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
        let count = influx.meter_count(DB, meter).await;
        assert_eq!(
            count,
            slots.len() as u64,
            "{meter}: exactly one point per slot"
        );
    }
    let points = check_values(&influx, &gw.config, &gw.sim).await;
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
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let meters: Vec<MeterSpec> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), "water", "water_meter", i, ""))
        .collect();
    let closed = format!("http://127.0.0.1:{}", crate::support::free_port());
    let mut gw =
        TestGateway::prepare(&gateway(&closed, 4096, 8, &meters), SimOptions::default()).await;

    // Fill a few segments while the output is down (in-process, to read
    // the counters), then stop.
    gw.run();
    gw.wait_for("64 lines spooled", Duration::from_mins(1), |s| {
        Stats::get(&s.lines_spooled) >= 64
    })
    .await;
    // "stops within 30 s"
    gw.stop_within(Duration::from_secs(30)).await;
    let stats = gw.stats();
    let spooled = Stats::get(&stats.lines_spooled);
    assert_eq!(Stats::get(&stats.lines_written), 0);
    let first_run_end = jiff::Timestamp::now().as_second();

    // Every record on disk, then the damage.
    let mut segs: Vec<PathBuf> = std::fs::read_dir(gw.files.spool_dir())
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
    let influx = Influxd::with_database(DB).await;
    gw.files.rewrite(&gateway(&influx.url(), 4096, 8, &meters));
    let mut process = gw.spawn("recovered");
    let old_points = format!("SELECT count(q) FROM reading WHERE time <= {first_run_end}s");
    let what = lazy(|| format!("the undamaged records delivered; log:\n{}", process.log()));
    wait_for(&what, Duration::from_mins(1), async || {
        influx.count(DB, &old_points).await >= undamaged
    })
    .await;
    process.terminate().await;
    gw.sim.stop();

    let opened = process.log_fields("spool opened");
    let recovery = opened["recovery"].as_str().expect("recovery report");
    eprintln!("recovery report: {recovery}");
    assert!(
        recovery.contains(&format!("; {torn_bytes} torn bytes truncated; 1 corrupt regions ({corrupt_bytes} bytes) skipped; 0 segments with a bad header skipped; ack position intact")),
        "{recovery}"
    );
    let final_stats = process.log_fields("final stats");
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
