//! The simulator seen from the wire: a plain tokio-modbus client reads the
//! registers it serves and checks them against hand-computed words,
//! [`Simulator::value_at`] and the closed-form consumption; every fault kind
//! is observed as a client sees it. Also proves the pymodbus peer answers.
//!
//! The simulator's clock is frozen where exact values are asserted, so no
//! assertion depends on when a request happens to be served.

use std::net::SocketAddr;
use std::time::Duration;

use emgate::config::{
    Config, DtuSettings, EndpointConfig, FileSinkConfig, GatewayConfig, MeterConfig, MeterSource,
    OutputConfig, SimFault, SimulatorConfig, SiteConfig, Transport, default_spool,
};
use emgate::model::{EndpointId, EnergyType, Level, MeterId, ProfileId, SiteId};
use emgate::profiles::Profile;
use emgate::sim::{EPOCH, LoadShape, SimOptions, Simulator};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;

use crate::support::pymodbus::{
    DTSD1352_POINTS, Framer, PymodbusServer, SDM630_POINTS, dtsd1352_device, dtsd1352_profile,
    sdm630_device, sdm630_profile,
};
use crate::support::wait_for;

/// Meter 0: SDM630 float map, unit 1, hashed load.
pub(crate) const SDM: MeterId = MeterId(0);
/// Meter 1: DTSD1352 integer map, unit 2, constant 36 kW from 1000 kWh at the epoch.
pub(crate) const ACREL_CONST: MeterId = MeterId(1);
/// Meter 2: DTSD1352 integer map, unit 3, PT 10 × CT 20, hashed load.
pub(crate) const ACREL_CT: MeterId = MeterId(2);

/// Point indices in the test profiles.
const SDM_VOLTAGE_L1: usize = 0;
pub(crate) const SDM_IMPORT: usize = 7;
pub(crate) const DTSD_IMPORT: usize = 1;
const DTSD_EXPORT: usize = 2;
const DTSD_VOLTAGE: usize = 3;
const DTSD_POWER: usize = 6;

fn meter(id: &str, profile: u32, unit_id: u8, pt: f64, ct: f64) -> MeterConfig {
    MeterConfig {
        id: id.to_owned(),
        site: SiteId(0),
        energy: EnergyType::Electricity,
        level: Level(2),
        profile: ProfileId(profile),
        source: MeterSource::Modbus {
            endpoint: EndpointId(0),
            unit_id,
        },
        poll_interval: Duration::from_mins(1),
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

/// One endpoint on 127.0.0.1, port 0, with the three meters above (also
/// the base of `sim_fieldbus`, which changes the endpoint's transport).
pub(crate) fn test_config(faults: Vec<(MeterId, SimFault)>) -> Config {
    let profiles: Vec<Profile> = vec![sdm630_profile(), dtsd1352_profile()];
    Config {
        dtu: DtuSettings::default(),
        boilers: Vec::new(),
        boiler: emgate::config::BoilerSettings::default(),
        targets: Vec::new(),
        source: "tests/integration/sim.rs".into(),
        gateway: GatewayConfig {
            id: "sim-test".to_owned(),
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".to_owned(),
            data_dir: "data".into(),
            shutdown_timeout: Duration::from_secs(10),
            archive_days: 0,
            shard: emgate::config::Shard::default(),
        },
        output: OutputConfig::File(FileSinkConfig {
            path: "data/out.lp".into(),
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
        }),
        endpoints: vec![EndpointConfig {
            id: "sim".to_owned(),
            transport: Transport::Tcp {
                host: "127.0.0.1".to_owned(),
                port: 0,
            },
            line: None,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            max_gap: 10,
            max_registers: 125,
            inter_request_delay: Duration::ZERO,
            dlt645_preamble: 4,
        }],
        sites: vec![SiteConfig {
            id: "site".to_owned(),
            name: "Test site".to_owned(),
            timezone: jiff::tz::TimeZone::UTC,
            file: "tests/integration/sim.rs".into(),
        }],
        meters: vec![
            meter("sdm-1", 0, 1, 1.0, 1.0),
            meter("acrel-const", 1, 2, 1.0, 1.0),
            meter("acrel-ct", 1, 3, 10.0, 20.0),
        ],
        profiles,
        spool: default_spool("data/unused-spool"),
        validation: emgate::config::ValidationSettings::default(),
        simulator: SimulatorConfig {
            time_step: Duration::from_secs(1),
            faults,
            ..SimulatorConfig::default()
        },
        aggregation: emgate::config::AggregationSettings::default(),
        mqtt: Vec::new(),
        api: emgate::config::ApiSettings::default(),
    }
}

struct Running {
    sim: Simulator,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(faults: Vec<(MeterId, SimFault)>, frozen_time: Option<f64>) -> Running {
    let shutdown = CancellationToken::new();
    let options = SimOptions {
        loads: vec![(ACREL_CONST, LoadShape::constant(36.0, 1000.0))],
        frozen_time,
        ..SimOptions::default()
    };
    let sim = Simulator::start_with(&test_config(faults), shutdown.clone(), options)
        .await
        .expect("simulator starts");
    let addr = sim.local_addr(EndpointId(0)).expect("endpoint 0 listens");
    Running {
        sim,
        addr,
        shutdown,
    }
}

async fn connect(addr: SocketAddr, unit: u8) -> Context {
    tokio_modbus::client::tcp::connect_slave(addr, Slave(unit))
        .await
        .expect("connect to simulator")
}

async fn holding(ctx: &mut Context, addr: u16, n: u16) -> Result<Vec<u16>, ExceptionCode> {
    ctx.read_holding_registers(addr, n)
        .await
        .expect("link stays up")
}

async fn input(ctx: &mut Context, addr: u16, n: u16) -> Result<Vec<u16>, ExceptionCode> {
    ctx.read_input_registers(addr, n)
        .await
        .expect("link stays up")
}

pub(crate) fn u32_of(words: &[u16]) -> u32 {
    (u32::from(words[0]) << 16) | u32::from(words[1])
}

pub(crate) fn f32_of(words: &[u16]) -> f32 {
    f32::from_bits(u32_of(words))
}

#[tokio::test]
async fn constant_rate_meter_serves_hand_computed_registers() {
    // One hour after the epoch, half a second into the step: the step's start counts.
    let t = EPOCH + 3600.5;
    let r = start(Vec::new(), Some(t)).await;
    let mut ctx = connect(r.addr, 2).await;

    // 1000 kWh + 36 kW × 1 h = 1036 kWh = 103600 × 0.01 kWh = 0x0001_94B0.
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0x0001, 0x94B0]));
    // Total active energy follows import.
    assert_eq!(holding(&mut ctx, 0x0000, 2).await, Ok(vec![0x0001, 0x94B0]));
    // Export carries 2 %: 20.72 kWh = 2072 × 0.01 = 0x0818.
    assert_eq!(holding(&mut ctx, 0x0014, 2).await, Ok(vec![0x0000, 0x0818]));
    // 36 kW = 36000 × 0.001 kW = 0x8CA0.
    assert_eq!(holding(&mut ctx, 0x016A, 2).await, Ok(vec![0x0000, 0x8CA0]));

    // The decoder's formula, raw × scale: exactly what the gateway computes.
    assert_eq!(
        r.sim.value_at(ACREL_CONST, DTSD_IMPORT, t),
        103_600.0 * 0.01
    );
    assert_eq!(r.sim.value_at(ACREL_CONST, DTSD_POWER, t), 36_000.0 * 0.001);
    assert_eq!(r.sim.consumption(ACREL_CONST, EPOCH, EPOCH + 3600.0), 36.0);
    assert_eq!(r.sim.requests_served(), 4);
}

#[tokio::test]
async fn served_registers_equal_value_at() {
    let t = 1_764_000_123.0;
    let r = start(Vec::new(), Some(t + 0.25)).await;

    let mut sdm = connect(r.addr, 1).await;
    let words = input(&mut sdm, 0x0048, 2).await.expect("import kwh");
    assert_eq!(
        f64::from(f32_of(&words)),
        r.sim.value_at(SDM, SDM_IMPORT, t)
    );
    let words = input(&mut sdm, 0x0000, 2).await.expect("voltage");
    let v = f64::from(f32_of(&words));
    assert_eq!(v, r.sim.value_at(SDM, SDM_VOLTAGE_L1, t));
    assert!((220.0..240.0).contains(&v), "plausible voltage, got {v}");

    // PT 10 × CT 20: registers hold secondary-side values.
    let mut ct = connect(r.addr, 3).await;
    let words = holding(&mut ct, 0x000A, 2).await.expect("import kwh");
    // The decimal value raw × 200 × 0.01, as the double nearest to it.
    let want: f64 = format!("{}e-2", u64::from(u32_of(&words)) * 200)
        .parse()
        .expect("decimal");
    assert_eq!(want, r.sim.value_at(ACREL_CT, DTSD_IMPORT, t));
    let words = holding(&mut ct, 0x0061, 1).await.expect("voltage");
    let v: f64 = format!("{}e-1", u32::from(words[0]) * 10)
        .parse()
        .expect("decimal");
    assert_eq!(v, r.sim.value_at(ACREL_CT, DTSD_VOLTAGE, t));
    // 100 V line to line on the secondary: about 577 V phase voltage on the primary.
    assert!(
        (570.0..585.0).contains(&v),
        "plausible primary voltage, got {v}"
    );

    // Anywhere in the same step serves the same words.
    r.sim.freeze_time(Some(t + 0.99));
    let again = holding(&mut ct, 0x0061, 1).await.expect("voltage");
    assert_eq!(again, words);
    assert_eq!(
        r.sim.value_at(ACREL_CT, DTSD_VOLTAGE, t + 0.99),
        r.sim.value_at(ACREL_CT, DTSD_VOLTAGE, t)
    );
}

#[tokio::test]
async fn counter_difference_equals_integral_of_rate() {
    let t0 = 1_764_003_600.0;
    let t1 = t0 + 2.0 * 3600.0;
    let r = start(Vec::new(), Some(t0)).await;
    let mut ctx = connect(r.addr, 3).await;
    let read = |w: &[u16]| f64::from(u32_of(w)) * 0.01 * 200.0;

    let before = read(&holding(&mut ctx, 0x000A, 2).await.expect("import"));
    r.sim.freeze_time(Some(t1));
    let after = read(&holding(&mut ctx, 0x000A, 2).await.expect("import"));
    assert_eq!(before, r.sim.value_at(ACREL_CT, DTSD_IMPORT, t0));
    assert_eq!(after, r.sim.value_at(ACREL_CT, DTSD_IMPORT, t1));

    // The true consumption, independently: Simpson's rule over the rate.
    let panels = 7200;
    let width = (t1 - t0) / f64::from(panels);
    let mut sum = r.sim.rate_at(ACREL_CT, t0) + r.sim.rate_at(ACREL_CT, t1);
    for i in 1..panels {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * r.sim.rate_at(ACREL_CT, t0 + f64::from(i) * width);
    }
    let integral = sum * width / 3.0 / 3600.0;
    let exact = r.sim.consumption(ACREL_CT, t0, t1);
    assert!((integral - exact).abs() < 1e-6, "{integral} vs {exact}");
    // Each reading is quantised to 0.01 kWh × PT × CT = 2 kWh.
    let quantum = 0.01 * 200.0;
    assert!(
        ((after - before) - exact).abs() <= quantum,
        "counter difference {} vs consumption {exact}",
        after - before
    );
}

#[tokio::test]
async fn protocol_edges_answer_documented_exceptions() {
    let r = start(Vec::new(), Some(EPOCH)).await;
    let mut ctx = connect(r.addr, 2).await;
    // No point anywhere in the range.
    assert_eq!(
        holding(&mut ctx, 0x0200, 4).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    // Wrong table: the DTSD map has no input registers.
    assert_eq!(
        input(&mut ctx, 0x000A, 2).await,
        Err(ExceptionCode::IllegalDataAddress)
    );
    // Partly covered: uncovered registers read 0 (1000 kWh = 100000 = 0x0001_86A0).
    assert_eq!(
        holding(&mut ctx, 0x0008, 6).await,
        Ok(vec![0, 0, 0x0001, 0x86A0, 0, 0])
    );
    // More than 125 registers.
    assert_eq!(
        holding(&mut ctx, 0x0000, 126).await,
        Err(ExceptionCode::IllegalDataValue)
    );
    // Unknown unit: what a TCP-to-RTU gateway answers when nobody on its bus does.
    ctx.set_slave(Slave(99));
    assert_eq!(
        holding(&mut ctx, 0x000A, 2).await,
        Err(ExceptionCode::GatewayTargetDevice)
    );
}

#[tokio::test]
async fn exception_fault_answers_server_device_failure() {
    let r = start(vec![(ACREL_CONST, SimFault::Exception)], Some(EPOCH)).await;
    let mut ctx = connect(r.addr, 2).await;
    assert_eq!(
        holding(&mut ctx, 0x000A, 2).await,
        Err(ExceptionCode::ServerDeviceFailure)
    );
    r.sim.set_fault(ACREL_CONST, None);
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0x0001, 0x86A0]));
}

#[tokio::test]
async fn sentinel_fault_serves_nan_all_ones_and_signed_minimum() {
    let r = start(Vec::new(), Some(EPOCH)).await;
    r.sim.set_fault(SDM, Some(SimFault::Sentinel));
    r.sim.set_fault(ACREL_CONST, Some(SimFault::Sentinel));

    let mut sdm = connect(r.addr, 1).await;
    let words = input(&mut sdm, 0x0048, 2).await.expect("import");
    assert!(f32_of(&words).is_nan(), "NaN expected, got {words:04X?}");
    assert_eq!(words, vec![0x7FC0, 0x0000]);

    let mut acrel = connect(r.addr, 2).await;
    assert_eq!(
        holding(&mut acrel, 0x000A, 2).await,
        Ok(vec![0xFFFF, 0xFFFF])
    );
    assert_eq!(holding(&mut acrel, 0x0061, 1).await, Ok(vec![0xFFFF]));
    // Power is an I32: its sentinel is the signed minimum, since all ones is -1.
    assert_eq!(
        holding(&mut acrel, 0x016A, 2).await,
        Ok(vec![0x8000, 0x0000])
    );
}

#[tokio::test]
async fn counter_reset_restarts_counters_from_zero() {
    let t = EPOCH + 3600.0;
    let r = start(Vec::new(), Some(t)).await;
    let mut ctx = connect(r.addr, 2).await;
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0x0001, 0x94B0]));

    r.sim.set_fault(ACREL_CONST, Some(SimFault::CounterReset));
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0, 0]));
    assert_eq!(holding(&mut ctx, 0x0014, 2).await, Ok(vec![0, 0]));
    // Gauges are untouched.
    assert_eq!(holding(&mut ctx, 0x016A, 2).await, Ok(vec![0x0000, 0x8CA0]));

    // Ten minutes later: 36 kW × 600 s = 6 kWh = 600 × 0.01.
    r.sim.freeze_time(Some(t + 600.0));
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0, 600]));
    // Clearing the fault does not undo the reset.
    r.sim.set_fault(ACREL_CONST, None);
    assert_eq!(holding(&mut ctx, 0x000A, 2).await, Ok(vec![0, 600]));
    // value_at ignores faults, the reset included.
    assert_eq!(
        r.sim.value_at(ACREL_CONST, DTSD_IMPORT, t + 600.0),
        104_200.0 * 0.01
    );
    assert_eq!(r.sim.value_at(ACREL_CONST, DTSD_EXPORT, t), 2072.0 * 0.01);
}

#[tokio::test]
async fn no_response_fault_times_out_while_other_units_answer() {
    let r = start(vec![(SDM, SimFault::NoResponse)], Some(EPOCH)).await;
    let mut silent = connect(r.addr, 1).await;
    let outcome =
        tokio::time::timeout(Duration::from_millis(300), input(&mut silent, 0x0048, 2)).await;
    assert!(outcome.is_err(), "expected no answer, got {outcome:?}");
    assert_eq!(r.sim.requests_served(), 0);

    // Another unit on a second connection to the same endpoint answers.
    let mut other = connect(r.addr, 2).await;
    assert_eq!(
        holding(&mut other, 0x000A, 2).await,
        Ok(vec![0x0001, 0x86A0])
    );
    // And so does the silent connection, for another unit: the simulator drops
    // the request instead of blocking the connection.
    silent.set_slave(Slave(2));
    assert_eq!(
        holding(&mut silent, 0x000A, 2).await,
        Ok(vec![0x0001, 0x86A0])
    );
    assert_eq!(r.sim.requests_served(), 2);
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let r = start(Vec::new(), None).await;
    let addr = r.addr;
    r.shutdown.cancel();
    // The listener task ends soon after; poll until connecting fails.
    let what = format!("the simulator to stop accepting connections on {addr}");
    wait_for(what, Duration::from_secs(2), async || {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn pymodbus_peer_answers() {
    let peer = PymodbusServer::start(&[sdm630_device(1), dtsd1352_device(2)]);
    let mut sdm = connect(peer.addr(), 1).await;
    for p in SDM630_POINTS {
        let words = input(&mut sdm, p.address, 2).await.expect(p.name);
        assert_eq!(words, p.words, "{}", p.name);
        assert_eq!(f64::from(f32_of(&words)), p.value(), "{}", p.name);
    }
    // One merged read across the gaps, as the gateway's planner does.
    let all = input(&mut sdm, 0x0000, 0x004C).await.expect("whole block");
    assert_eq!(&all[0x48..0x4A], &[0x4640, 0xE600]);
    assert_eq!(all[0x08], 0);

    let mut dtsd = connect(peer.addr(), 2).await;
    for p in DTSD1352_POINTS {
        let n = p.words.len() as u16;
        let words = holding(&mut dtsd, p.address, n).await.expect(p.name);
        assert_eq!(words, p.words, "{}", p.name);
    }
    // Sign handling, decoded independently of emgate.
    assert_eq!(u32_of(DTSD1352_POINTS[6].words) as i32, -1500);
    assert_eq!(DTSD1352_POINTS[7].words[0] as i16, -985);
}

#[tokio::test]
async fn pymodbus_peer_answers_rtu_over_tcp() {
    let peer = PymodbusServer::start_with(&[dtsd1352_device(7)], Framer::RtuOverTcp);
    let stream = tokio::net::TcpStream::connect(peer.addr())
        .await
        .expect("connect to peer");
    let mut ctx = tokio_modbus::client::rtu::attach_slave(stream, Slave(7));
    let p = &DTSD1352_POINTS[1];
    let words = tokio::time::timeout(Duration::from_secs(5), holding(&mut ctx, p.address, 2))
        .await
        .expect("peer answers RTU frames");
    assert_eq!(words, Ok(p.words.to_vec()));
}
