//! Interop with a Modbus implementation we did not write: the gateway's
//! poller reads a pymodbus 3.16.1 server serving an SDM630-style float map
//! and an Acrel DTSD1352-style integer map, and must produce exactly the
//! values whose register words were worked out in Python and by hand.

use std::sync::Arc;
use std::time::Duration;

use emgate::config::{
    Config, DtuSettings, EndpointConfig, FileSinkConfig, GatewayConfig, MeterConfig, MeterSource,
    OutputConfig, SimulatorConfig, SiteConfig, Transport, default_spool,
};
use emgate::model::{
    EndpointId, EnergyType, Level, MeterId, ProfileId, Quality, ReadingBatch, SiteId,
};
use emgate::profiles::{DataType, PointDef, PointKind, Profile, RatioScaling, RegisterKind};
use emgate::sources::modbus::poller::EndpointPoller;
use emgate::telemetry::Stats;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::pymodbus::{
    CanonicalPoint, DTSD1352_POINTS, PeerDevice, PymodbusServer, SDM630_POINTS, dtsd1352_device,
    dtsd1352_profile, sdm630_device, sdm630_profile,
};

fn meter(id: &str, profile: u32, unit_id: u8, pt: f64, ct: f64) -> MeterConfig {
    MeterConfig {
        id: id.to_owned(),
        site: SiteId(0),
        energy: EnergyType::Electricity,
        level: Level(1),
        profile: ProfileId(profile),
        source: MeterSource::Modbus {
            endpoint: EndpointId(0),
            unit_id,
        },
        poll_interval: Duration::from_secs(1),
        pt,
        ct,
        calibration: None,
        replacements: Vec::new(),
        overrides: Vec::new(),
        consumption: None,
        role: emgate::pipeline::energy::EnergyRole::Consumed,
        conversion: emgate::pipeline::energy::Conversion::None,
        conversion_source: String::new(),
        lhv_kj_per_m3: None,
    }
}

fn config(port: u16, profiles: Vec<Profile>, meters: Vec<MeterConfig>) -> Config {
    Config {
        dtu: DtuSettings::default(),
        boilers: Vec::new(),
        boiler: emgate::config::BoilerSettings::default(),
        targets: Vec::new(),
        source: "tests/integration/interop_pymodbus.rs".into(),
        gateway: GatewayConfig {
            id: "interop".to_owned(),
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".to_owned(),
            data_dir: "data".into(),
            shutdown_timeout: Duration::from_secs(10),
            archive_days: 0,
            shard: emgate::config::Shard::default(),
        },
        output: OutputConfig::File(FileSinkConfig {
            path: "data/unused.lp".into(),
            batch_size: 1,
            flush_interval: Duration::from_secs(1),
        }),
        endpoints: vec![EndpointConfig {
            id: "pymodbus".to_owned(),
            transport: Transport::Tcp {
                host: "127.0.0.1".to_owned(),
                port,
            },
            line: None,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            max_gap: 10,
            max_registers: 125,
            inter_request_delay: Duration::ZERO,
            dlt645_preamble: 4,
        }],
        sites: vec![SiteConfig {
            id: "S1".to_owned(),
            name: "interop".to_owned(),
            timezone: jiff::tz::TimeZone::UTC,
            file: "tests/integration/interop_pymodbus.rs".into(),
        }],
        meters,
        profiles,
        spool: default_spool("data/unused-spool"),
        validation: emgate::config::ValidationSettings::default(),
        simulator: SimulatorConfig::default(),
        aggregation: emgate::config::AggregationSettings::default(),
        mqtt: Vec::new(),
        api: emgate::config::ApiSettings::default(),
    }
}

/// Polls once (one round of every meter) and returns the batch and the counters.
async fn poll_one_round(config: Config) -> (ReadingBatch, Arc<Stats>) {
    let config = Arc::new(config);
    let board = Arc::new(emgate::telemetry::StatusBoard::new(&config));
    let (mut batches, stats) = poll_batches(config, board, 1).await;
    (batches.remove(0), stats)
}

/// Runs the endpoint's poller until it has handed over `n` batches; returns
/// them and the counters.
async fn poll_batches(
    config: Arc<Config>,
    board: Arc<emgate::telemetry::StatusBoard>,
    n: usize,
) -> (Vec<ReadingBatch>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let (tx, mut rx) = mpsc::channel(8);
    let poller = EndpointPoller::new(
        &emgate::sources::SourceContext {
            board,
            dtu: Arc::new(emgate::sources::bus::dtu::DtuHub::new(
                &config,
                Arc::clone(&stats),
            )),
            config,
            out: tx,
            stats: Arc::clone(&stats),
        },
        EndpointId(0),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(poller.run(stop.clone()));
    let mut batches = Vec::new();
    for _ in 0..n {
        let input = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a batch within 20 s")
            .expect("a batch");
        batches.push(input.batch);
    }
    stop.cancel();
    task.await.expect("poller task");
    (batches, stats)
}

/// The value a decoder must produce for `p` on a meter with `pt` and `ct`:
/// the double nearest to the decimal number raw × ratio × 10^-k (scales here
/// are 1, 0.1, 0.01, 0.001), obtained by parsing the decimal text, which
/// Rust rounds correctly. Independent of how the decoder does its arithmetic.
fn expected(profile: &Profile, p: &CanonicalPoint, pt: f64, ct: f64) -> f64 {
    let def = &profile.points[profile.point_index(p.name).expect("point in profile")];
    let ratio = match def.ratio {
        RatioScaling::None => 1.0,
        RatioScaling::Pt => pt,
        RatioScaling::Ct => ct,
        RatioScaling::PtCt => pt * ct,
    };
    let k = (-p.scale.log10()).round() as i32;
    if k == 0 {
        return p.raw * ratio;
    }
    let integer = (p.raw * ratio) as i64;
    assert_eq!(integer as f64, p.raw * ratio, "integer raw × ratio");
    format!("{integer}e-{k}").parse().expect("decimal")
}

fn assert_values(
    batch: &ReadingBatch,
    meter: MeterId,
    profile: &Profile,
    points: &[CanonicalPoint],
    pt: f64,
    ct: f64,
) {
    let reading = batch
        .readings
        .iter()
        .find(|r| r.meter == meter)
        .unwrap_or_else(|| panic!("no reading for {meter:?}"));
    let values = batch.values_of(reading);
    for p in points {
        let i = profile.point_index(p.name).expect("point");
        assert_eq!(values[i].quality, Quality::GOOD, "{} quality", p.name);
        assert_eq!(
            values[i].value,
            expected(profile, p, pt, ct),
            "{} value",
            p.name
        );
    }
}

#[tokio::test]
async fn gateway_reads_float_and_integer_maps_from_pymodbus_exactly() {
    let server = PymodbusServer::start(&[sdm630_device(1), dtsd1352_device(2), dtsd1352_device(3)]);
    let sdm = sdm630_profile();
    let acrel = dtsd1352_profile();
    let cfg = config(
        server.port(),
        vec![sdm.clone(), acrel.clone()],
        vec![
            meter("sdm", 0, 1, 1.0, 1.0),
            meter("acrel", 1, 2, 1.0, 1.0),
            meter("acrel-ptct", 1, 3, 10.0, 40.0),
        ],
    );
    let (batch, stats) = poll_one_round(cfg).await;
    assert_eq!(batch.len(), 3, "one reading per meter");
    assert_values(&batch, MeterId(0), &sdm, SDM630_POINTS, 1.0, 1.0);
    assert_values(&batch, MeterId(1), &acrel, DTSD1352_POINTS, 1.0, 1.0);
    assert_values(&batch, MeterId(2), &acrel, DTSD1352_POINTS, 10.0, 40.0);
    // Spot checks written out by hand: 12345678 × 0.01 × 10 × 40, and −1500 × 0.001 × 400.
    let r = &batch.readings[2];
    let v = batch.values_of(r);
    assert_eq!(
        v[acrel.point_index("import_kwh").unwrap()].value,
        49_382_712.0
    );
    assert_eq!(v[acrel.point_index("power_kw").unwrap()].value, -600.0);
    let s = batch.values_of(&batch.readings[0]);
    assert_eq!(s[sdm.point_index("import_kwh").unwrap()].value, 12_345.5);
    // Planned by hand with max_gap 10: SDM630 0x00–0x07 and 0x34–0x4B (two
    // reads); DTSD1352 0x00–0x15, 0x61–0x64, 0x77, 0x16A–0x16B, 0x17C (five
    // reads) for each of the two Acrel meters.
    assert_eq!(Stats::get(&stats.requests), 2 + 5 + 5);
    assert_eq!(Stats::get(&stats.requests_exception), 0);
}

/// A merged read that touches a register the device does not have is
/// refused with exception 2 by pymodbus; the poller splits it, keeps the
/// split, and every good point still gets its value.
#[tokio::test]
async fn refused_merged_read_is_split_and_good_points_survive() {
    let server = PymodbusServer::start(&[sdm630_device(1)]);
    let mut profile = sdm630_profile();
    // 0x004C is two registers past the served block: merged with import and
    // export (gap 0), but pymodbus has nothing there.
    profile.points.push(PointDef {
        kind: PointKind::Counter,
        unit: "kvarh".to_owned(),
        ..PointDef::new("missing_kvarh", RegisterKind::Input, 0x004C, DataType::F32)
    });
    let cfg = config(
        server.port(),
        vec![profile.clone()],
        vec![meter("sdm", 0, 1, 1.0, 1.0)],
    );
    let (batch, stats) = poll_one_round(cfg).await;
    let values = batch.values_of(&batch.readings[0]);
    for p in SDM630_POINTS {
        let i = profile.point_index(p.name).unwrap();
        assert_eq!(values[i].quality, Quality::GOOD, "{}", p.name);
        assert_eq!(values[i].value, p.raw * p.scale, "{}", p.name);
    }
    let missing = profile.point_index("missing_kvarh").unwrap();
    assert_eq!(values[missing].quality, Quality::EXCEPTION);
    assert!(values[missing].value.is_nan(), "no value invented");
    assert_eq!(Stats::get(&stats.reads_split), 1);
}

/// Meters of one profile on one endpoint share one read plan (memory per
/// meter); a refused merged read splits the plan of that meter only: the
/// other meter, whose device has the register, keeps its two merged reads.
#[tokio::test]
async fn split_of_one_meter_leaves_the_shared_plan_of_the_other() {
    // Unit 2 also serves 0x004C–0x004D: 1.5 as float32 ABCD is 0x3FC0 0x0000.
    let server = PymodbusServer::start(&[
        sdm630_device(1),
        sdm630_device(2).input(0x004C, &[0x3FC0, 0x0000]),
    ]);
    let mut profile = sdm630_profile();
    profile.points.push(PointDef {
        kind: PointKind::Counter,
        unit: "kvarh".to_owned(),
        ..PointDef::new("missing_kvarh", RegisterKind::Input, 0x004C, DataType::F32)
    });
    let cfg = config(
        server.port(),
        vec![profile.clone()],
        vec![
            meter("refuses", 0, 1, 1.0, 1.0),
            meter("serves", 0, 2, 1.0, 1.0),
        ],
    );
    let (batch, stats) = poll_one_round(cfg).await;
    let missing = profile.point_index("missing_kvarh").unwrap();
    let refusing = batch.values_of(&batch.readings[0]);
    assert_eq!(refusing[missing].quality, Quality::EXCEPTION);
    let serving = batch.values_of(&batch.readings[1]);
    assert_eq!(serving[missing].quality, Quality::GOOD);
    assert_eq!(serving[missing].value, 1.5);
    for p in SDM630_POINTS {
        let i = profile.point_index(p.name).unwrap();
        assert_eq!(refusing[i].value, p.raw * p.scale, "{}", p.name);
        assert_eq!(serving[i].value, p.raw * p.scale, "{}", p.name);
    }
    // By hand: unit 1 reads 0x00–0x07 (ok) and 0x34–0x4D (exception 2),
    // then the six points of the second read one by one (power_w, pf,
    // frequency_hz, import_kwh, export_kwh ok; missing_kvarh exception 2):
    // 8 requests, 2 exceptions. Unit 2 keeps the two merged reads: 2.
    assert_eq!(Stats::get(&stats.reads_split), 1);
    assert_eq!(Stats::get(&stats.requests), 8 + 2);
    assert_eq!(Stats::get(&stats.requests_exception), 2);
}

/// Devices with thousands of points are handed to the pipeline as they are
/// read, not once per round (the poller sends its batch at 16 384 values):
/// four 9 000-point meters (on two devices: the peer's tables travel on its
/// command line) come as two batches of two readings (18 000 values each);
/// every value is the word pymodbus serves, and the round is still reported
/// when it ends, although nothing is left to send then.
#[tokio::test]
async fn large_devices_are_handed_over_within_the_round_with_every_value() {
    const POINTS: u16 = 9_000;
    // Unit u serves word u × 10 000 + address at each address.
    let words = |unit: u16| (0..POINTS).map(|a| unit * 10_000 + a).collect::<Vec<u16>>();
    let server = PymodbusServer::start(&[
        PeerDevice::new(1).input(0, &words(1)),
        PeerDevice::new(2).input(0, &words(2)),
    ]);
    let profile = Profile {
        steam_state: None,
        steam_dryness: None,
        id: "wide".to_owned(),
        protocol: emgate::profiles::Protocol::Modbus,
        description: "9 000 u16 input registers".to_owned(),
        points: (0..POINTS)
            .map(|a| PointDef::new(&format!("p{a:04}"), RegisterKind::Input, a, DataType::U16))
            .collect(),
        uses_ratios: false,
        consumption: None,
        pressure: None,
        temperature: None,
    };
    let config = Arc::new(config(
        server.port(),
        vec![profile],
        vec![
            meter("w1", 0, 1, 1.0, 1.0),
            meter("w2", 0, 2, 1.0, 1.0),
            meter("w3", 0, 1, 1.0, 1.0),
            meter("w4", 0, 2, 1.0, 1.0),
        ],
    ));
    let board = Arc::new(emgate::telemetry::StatusBoard::new(&config));
    let (batches, stats) = poll_batches(config, Arc::clone(&board), 2).await;
    let meters: Vec<Vec<u32>> = batches
        .iter()
        .map(|b| b.readings.iter().map(|r| r.meter.0).collect())
        .collect();
    assert_eq!(meters, vec![vec![0, 1], vec![2, 3]], "two meters at a time");
    let slot = batches[0].readings[0].slot;
    for b in &batches {
        for r in &b.readings {
            assert_eq!(r.slot, slot, "one round");
            let unit = r.meter.0 as u16 % 2 + 1;
            let values = b.values_of(r);
            assert_eq!(values.len(), usize::from(POINTS));
            for (a, v) in values.iter().enumerate() {
                assert_eq!(v.quality, Quality::GOOD, "unit {unit} address {a}");
                assert_eq!(
                    v.value,
                    f64::from(unit * 10_000 + a as u16),
                    "unit {unit} address {a}"
                );
            }
        }
    }
    // 9 000 registers in reads of 125: 72 per meter.
    assert_eq!(Stats::get(&stats.requests), 4 * 72);
    assert_eq!(Stats::get(&stats.readings), 4);
    let rounds: Vec<_> = board.endpoints().into_iter().map(|e| e.round_ms).collect();
    assert!(
        matches!(rounds.as_slice(), [Some(ms)] if *ms > 0.0),
        "the round is reported once it ends: {rounds:?}"
    );
}
