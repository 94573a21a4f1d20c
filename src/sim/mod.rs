//! Simulated meters with exact, known consumption: Modbus servers and
//! DL/T 645-2007 meters on simulated buses that serve the configured meters
//! from the same profiles the gateway polls, and
//! an MQTT publisher for the meters configured with `broker = "…"` (see
//! [`mqtt`]: one message per meter at each multiple of its `poll_interval`,
//! stamped with that slot and carrying the values of that slot).
//!
//! # Transports
//! Each endpoint with meters is served the way its `transport` says:
//! * `tcp`: a Modbus TCP server on `host:port` (tokio-modbus; see [`server`]);
//! * `rtu_over_tcp`: a listener on `host:port` whose connections carry the
//!   bytes of an RS-485 bus, as a serial server in transparent mode forwards
//!   them: Modbus RTU frames with CRC and DL/T 645 frames, mixed on one bus
//!   as real buses are (see [`bus`], which tells them apart; [`rtu`] and
//!   [`dlt645`] answer them; an unknown unit id or meter address gets
//!   silence there, not 0x0B);
//! * `dtu`: the simulator is the DTU: it dials the gateway's `[dtu] listen`,
//!   registers, and serves that bus's requests (both protocols) on that
//!   connection, with the endpoint's heartbeat after
//!   `[simulator] dtu_heartbeat_ms` of idle (see [`dtu`]);
//! * DL/T 645 meters on a `tcp` endpoint (which configuration loading
//!   refuses) are not served: Modbus TCP cannot carry them; one warning.
//! * `serial`: **not served**. The gateway opens the device itself and a
//!   simulator cannot sit behind a local serial port; such an endpoint is
//!   skipped with one warning naming it. To test a serial bus, bridge a
//!   `socat` pty pair to an `rtu_over_tcp` endpoint of a second configuration.
//!
//! [`Simulator::local_addr`] gives the bound address of `tcp` and
//! `rtu_over_tcp` endpoints; [`Simulator::dtu_connects`] and
//! [`Simulator::dtu_heartbeats`] show what a DTU has done.
//!
//! `emgate simulate` and `emgate demo` run it, and the integration tests poll
//! it and compare what the gateway stored with what the simulator knows.
//!
//! # Physics
//! Every meter has a deterministic [`LoadShape`] derived from a stable hash of
//! its id and energy type (base rate, a daily sinusoid, a faster ripple;
//! never negative), a rate `r(t)` in its main counter's unit per hour (kWh/h,
//! m³/h, t/h, GJ/h). Counter points hold `initial + ∫ r dt` computed in closed
//! form, so the true consumption between two instants is known exactly
//! ([`Simulator::consumption`]). Rate gauges (kW for kWh, m³/h for m³, t/h for
//! t, kW for GJ) serve `r(t)` in their unit; export / reverse quantities carry
//! 2 % of the load, reactive ones 30 %; voltage, current, frequency, power
//! factor, pressure and temperature serve plausible values for the energy type.
//!
//! Within a site and an energy type the meters form a coherent hierarchy
//! (see [`hierarchy`]): each level-1 meter draws the sum of the level-2 and
//! level-3 meters below it plus an unmetered 15 %, at every instant, so a
//! sub-meter never draws more than its incomer ([`Simulator::incomer_of`]).
//!
//! DL/T 645 meters follow the same load, and their data identifiers refine
//! the share: reverse active energy (`0002xxxx`) carries the export share,
//! tariffs 1-4 (`0001 01 00`…`0001 04 00`: sharp, peak, flat, valley) 10 %,
//! 30 %, 35 % and 25 % of the total (higher tariffs nothing), so the tariffs
//! sum to the total; per-phase powers (`0203 01 00`…) a third. A value
//! is served in the point's BCD format, counters rounded **down** to it
//! (a register shows completed units) and gauges to the nearest (see
//! [`dlt645`]); [`Simulator::value_at`] decodes those very digits.
//!
//! # Time steps
//! Values change only at multiples of `simulator.time_step` (1 s when zero):
//! a request at time `t` is served the values of `floor(t / step) × step`.
//! A poll whose slot is a whole number of seconds therefore reads exactly the
//! value of its slot as long as it is answered within the step, and
//! [`Simulator::value_at`] of the slot time is what the gateway must have
//! stored. [`Simulator::freeze_time`] stops the clock for tests that need
//! every request to see one instant.
//!
//! # Faults
//! Set per meter from `simulator.faults` at start and by
//! [`Simulator::set_fault`] at run time:
//! * `no_response`: the request gets no answer at all. A real RS-485 gateway
//!   would block its bus until its own timeout and then often answer 0x0B; the
//!   simulator instead drops the request and keeps serving the connection, so
//!   other unit ids on the same endpoint go on answering. The client sees a
//!   timeout either way (and, with tokio-modbus, must reconnect before reusing
//!   the connection, or a late reply would be mistaken for the next one).
//! * `exception`: every read answers exception 04 (ServerDeviceFailure);
//!   a DL/T 645 meter answers the error frame (`0xD1`) with error byte 0x01
//!   (other error).
//! * `sentinel`: float points serve NaN, integer points all ones (`0xFFFF…`);
//!   DL/T 645 points serve bytes that are not BCD (`FF` before +0x33), so a
//!   gateway must flag them (`bad_bcd`), never read a value.
//! * `counter_reset`: counters restart from 0 at the step the fault is set
//!   (the main counter's value then is subtracted from then on); clearing the
//!   fault does not undo the reset, setting it again resets again.
//! * `frozen`: from the step the fault is set, every point of the meter
//!   serves exactly the registers it served at that step (gauges and counters
//!   stand still, bit-identical; the values of that step are re-encoded, so a
//!   counter reset before stays applied), until the fault is cleared; then
//!   the meter serves the present again (its counters jump to where the load
//!   has taken them meanwhile). Setting it again freezes at the new step.
//! * `spike`: counter points serve their true value plus [`SPIKE_JUMP`]
//!   (1 000 000 in the point's own unit: 1 000 000 m³, kWh, Wh, ...), far
//!   above any physical rate; gauges are unchanged. The jump is capped one
//!   count below the profile's `rollover` and, for 16- and 32-bit integer
//!   registers, at their largest value that is neither a wrap nor the
//!   all-ones sentinel, so a spike always reads as a jump up (a U32 ×0.01
//!   counter gets the full jump below 41 949 672.94). Clearing the fault
//!   removes the jump: set, let exactly one poll through
//!   ([`Simulator::requests_under_fault`] counts them), clear, and the
//!   meter has one glitched reading.
//!
//! MQTT meters see the same faults at publishing time (`no_response`: no
//! message; `exception`, `sentinel`: a malformed message; the others change
//! the values); see [`mqtt`]. The frozen clock does not stop the publisher:
//! it publishes each wall-clock slot with the values of that slot.
//!
//! # Steam lines and boilers
//! A steam meter whose profile names its `pressure` and `temperature`
//! gauges is coherent: the temperature follows the pressure served, 0.3 K
//! below saturation (50 K above when its `steam_state` is superheated), and
//! its heat counters count the steam's enthalpy over make-up water. Each configured boiler (`[[boilers]]`) drives its meters
//! from one model (see [`boiler`]): the output follows the boiler's load, the
//! fuel meter burns what that output needs at the efficiency that follows
//! from the model's losses, and the flue-gas analyzer serves the model's flue
//! gas; [`Simulator::boilers`] tells the truth a test checks against.
//!
//! Protocol choices (exceptions for unknown units, uncovered addresses,
//! oversized reads) are documented in [`server`], for RTU framing in
//! [`rtu`], for DL/T 645 (addresses, error answers, the values rule) in
//! [`dlt645`], and how one bus carries both in [`bus`].

pub mod boiler;
pub mod bus;
pub mod dlt645;
pub mod dtu;
pub mod hierarchy;
mod lines;
mod load;
mod meter;
pub mod mqtt;
pub mod rtu;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use load::{EPOCH, LoadShape};
pub use meter::SPIKE_JUMP;

use crate::config::{Config, SimFault, Transport};
use crate::model::{EndpointId, EnergyType, MeterId};
use crate::pipeline::energy::Conversion;
use crate::pipeline::steam::SteamState;
use crate::profiles::dlt645::Address;
use boiler::BoilerTruth;
use dtu::{DtuCounters, DtuLink};
use meter::{Role, Serve, SimMeter};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("simulator: endpoint {endpoint:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// Endpoint id.
        endpoint: String,
        /// `host:port` as configured.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Two meters on one endpoint share a unit id.
    #[error(
        "simulator: endpoint {endpoint:?}: meters {first:?} and {second:?} both use unit id {unit}"
    )]
    DuplicateUnit {
        /// Endpoint id.
        endpoint: String,
        /// The unit id.
        unit: u8,
        /// Meter seen first.
        first: String,
        /// Meter seen second.
        second: String,
    },
    /// Two DL/T 645 meters on one endpoint share an address.
    #[error(
        "simulator: endpoint {endpoint:?}: meters {first:?} and {second:?} both use DL/T 645 address {address}"
    )]
    DuplicateAddress {
        /// Endpoint id.
        endpoint: String,
        /// The address, as on the nameplate.
        address: String,
        /// Meter seen first.
        first: String,
        /// Meter seen second.
        second: String,
    },
    /// A load override breaks the invariants of [`LoadShape`].
    #[error("simulator: meter {meter:?}: invalid load shape: {reason}")]
    InvalidLoad {
        /// Meter id.
        meter: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A served value (`SimOptions::values`) names a point the meter lacks.
    #[error("simulator: meter {meter:?} has no point {point} to serve a value on")]
    InvalidPoint {
        /// Meter id.
        meter: String,
        /// Point index asked for.
        point: usize,
    },
}

/// Options beyond the configuration, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Load shapes that replace the hashed ones, e.g. [`LoadShape::constant`]
    /// for values a test computes by hand.
    pub loads: Vec<(MeterId, LoadShape)>,
    /// Start with the clock frozen at this Unix time (see [`Simulator::freeze_time`]).
    pub frozen_time: Option<f64>,
    /// Points that serve this constant value instead of their role's, as
    /// (meter, point index in its profile, value): an instrument that reads
    /// wrong (e.g. an analyzer reading 21 % O₂ in a burning boiler). Only
    /// what is served changes; a boiler's truth stays the model's.
    pub values: Vec<(MeterId, usize, f64)>,
}

/// State shared by the handle and every connection.
pub(crate) struct Shared {
    /// Meters, indexed like `Config::meters`.
    meters: Vec<SimMeter>,
    /// Per endpoint, unit id → meter index.
    units: Vec<Box<[Option<usize>; 256]>>,
    /// Per endpoint, its DL/T 645 meters: address (wire order) and meter
    /// index, in configuration order (a bus has a few dozen at most).
    dlt645: Vec<Vec<(Address, usize)>>,
    /// Per meter, the active fault (see [`fault_code`]).
    /// Its code in the top byte (see [`fault_code`]), below it the number of
    /// requests that have seen this fault since it was set: one atomic word,
    /// so a request's fault and its count are taken in one step.
    faults: Vec<AtomicU64>,
    /// Per meter, the main-counter value subtracted after a counter reset (f64 bits).
    resets: Vec<AtomicU64>,
    /// Per meter, the step the `frozen` fault was set at (f64 bits): the
    /// instant a frozen meter keeps serving.
    freeze_at: Vec<AtomicU64>,
    /// Frozen Unix time (f64 bits), or NaN for the wall clock.
    frozen: AtomicU64,
    /// Step length, seconds.
    step: f64,
    /// Requests answered (with data or an exception).
    served: AtomicU64,
}

impl Shared {
    /// Current simulated Unix time, seconds.
    fn now(&self) -> f64 {
        let frozen = f64::from_bits(self.frozen.load(Ordering::Relaxed));
        if frozen.is_nan() {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        } else {
            frozen
        }
    }

    /// Start of the step containing `t`.
    fn stepped(&self, t: f64) -> f64 {
        (t / self.step).floor() * self.step
    }

    fn fault(&self, meter: usize) -> Option<SimFault> {
        // Acquire pairs with the Release in `set_fault`: a reader that sees
        // the fault also sees the reset offset or freeze instant stored before it.
        decode_fault(self.faults[meter].load(Ordering::Acquire))
    }

    /// The fault a request for `meter` is served with, counted as seen (see [`Shared::faults`]).
    pub(crate) fn fault_for_request(&self, meter: usize) -> Option<SimFault> {
        decode_fault(self.faults[meter].fetch_add(1, Ordering::AcqRel))
    }

    /// Requests that have seen the current fault of `meter`.
    fn requests_under_fault(&self, meter: usize) -> u64 {
        self.faults[meter].load(Ordering::Relaxed) & REQUEST_COUNT
    }

    /// The stepped instant a frozen meter serves.
    fn freeze_at(&self, meter: usize) -> f64 {
        f64::from_bits(self.freeze_at[meter].load(Ordering::Relaxed))
    }

    fn reset_offset(&self, meter: usize) -> f64 {
        f64::from_bits(self.resets[meter].load(Ordering::Relaxed))
    }

    /// The instant and the kind of values a request for `meter` under
    /// `fault` at stepped time `t` is served (both protocols alike).
    fn serving(&self, meter: usize, fault: Option<SimFault>, t: f64) -> (f64, Serve) {
        match fault {
            Some(SimFault::Sentinel) => (t, Serve::Sentinel),
            Some(SimFault::Spike) => (t, Serve::Spike),
            // The instant of the freeze, re-encoded: the same registers, bit for bit.
            Some(SimFault::Frozen) => (self.freeze_at(meter), Serve::Normal),
            _ => (t, Serve::Normal),
        }
    }

    fn set_fault(&self, meter: usize, fault: Option<SimFault>) {
        if fault == Some(SimFault::CounterReset) {
            let t = self.stepped(self.now());
            let at = self.meters[meter].load.counter(t);
            self.resets[meter].store(at.to_bits(), Ordering::Relaxed);
        }
        if fault == Some(SimFault::Frozen) {
            let t = self.stepped(self.now());
            self.freeze_at[meter].store(t.to_bits(), Ordering::Relaxed);
        }
        // A new fault word: the code, and no request has seen it yet.
        self.faults[meter].store(u64::from(fault_code(fault)) << 56, Ordering::Release);
    }
}

/// Bits of a fault word that count requests (the rest is the fault code).
const REQUEST_COUNT: u64 = (1 << 56) - 1;

/// The fault in a fault word.
fn decode_fault(word: u64) -> Option<SimFault> {
    match word >> 56 {
        1 => Some(SimFault::NoResponse),
        2 => Some(SimFault::Exception),
        3 => Some(SimFault::Sentinel),
        4 => Some(SimFault::CounterReset),
        5 => Some(SimFault::Frozen),
        6 => Some(SimFault::Spike),
        _ => None,
    }
}

/// Compact code of a fault for an atomic.
fn fault_code(fault: Option<SimFault>) -> u8 {
    match fault {
        None => 0,
        Some(SimFault::NoResponse) => 1,
        Some(SimFault::Exception) => 2,
        Some(SimFault::Sentinel) => 3,
        Some(SimFault::CounterReset) => 4,
        Some(SimFault::Frozen) => 5,
        Some(SimFault::Spike) => 6,
    }
}

/// A running simulator; cheap to clone. Its listeners close and its MQTT
/// publishers stop when the shutdown token given to [`Simulator::start`] is
/// cancelled.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    addrs: Arc<Vec<Option<SocketAddr>>>,
    /// Per endpoint, the counters of its simulated DTU (`dtu` endpoints with meters).
    dtus: Arc<Vec<Option<Arc<DtuCounters>>>>,
    mqtt: Arc<MqttState>,
    /// The simulated boilers' truths, in configuration order.
    boilers: Arc<Vec<BoilerTruth>>,
    /// Per meter, the incomer it hangs below (see [`hierarchy`]).
    incomers: Arc<Vec<Option<MeterId>>>,
}

/// What the handle knows of the MQTT publishers.
#[derive(Debug, Default)]
struct MqttState {
    counters: Arc<mqtt::MqttCounters>,
    /// How each published MQTT meter publishes.
    plans: Vec<mqtt::MeterPlan>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("meters", &self.shared.meters.len())
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds one listener per `tcp` and `rtu_over_tcp` endpoint in `config`
    /// that has meters (`host:port`; port 0 picks a free port) and serves
    /// every meter on it by unit id (Modbus) or address (DL/T 645), and starts one simulated DTU per `dtu`
    /// endpoint with meters, dialling `config.dtu.listen` (see [`dtu`]),
    /// until `shutdown` is cancelled. `serial` endpoints are skipped with a
    /// warning. MQTT meters are published to
    /// their brokers (see [`mqtt`]); a broker that cannot be reached is
    /// retried with backoff and logged, never an error here, and a meter that
    /// cannot be published is skipped with a warning. A gateway that does
    /// not accept a DTU yet is redialled likewise.
    ///
    /// # Errors
    /// A listener that cannot be bound, or two meters sharing a unit id or a
    /// DL/T 645 address on one endpoint.
    pub async fn start(
        config: &Config,
        shutdown: CancellationToken,
    ) -> Result<Simulator, SimError> {
        Simulator::start_with(config, shutdown, SimOptions::default()).await
    }

    /// [`Simulator::start`] with load overrides and a frozen clock.
    ///
    /// # Errors
    /// As [`Simulator::start`], and a load override that fails [`LoadShape::validate`].
    pub async fn start_with(
        config: &Config,
        shutdown: CancellationToken,
        options: SimOptions,
    ) -> Result<Simulator, SimError> {
        let mut meters = Vec::with_capacity(config.meters.len());
        let mut overridden = Vec::with_capacity(config.meters.len());
        for (i, m) in config.meters.iter().enumerate() {
            let id = MeterId(i as u32);
            let load = match options.loads.iter().rev().find(|(mid, _)| *mid == id) {
                Some((_, l)) => {
                    l.validate().map_err(|reason| SimError::InvalidLoad {
                        meter: m.id.clone(),
                        reason,
                    })?;
                    *l
                }
                None => LoadShape::for_meter(&m.id, m.energy),
            };
            overridden.push(options.loads.iter().any(|(mid, _)| *mid == id));
            let profile = config.profile_of(id);
            let mut sim = SimMeter::new(m, &profile.points, load);
            if let (EnergyType::Steam, Some(p), Some(t)) =
                (m.energy, profile.pressure, profile.temperature)
            {
                let superheated = matches!(
                    m.conversion,
                    Conversion::Steam {
                        state: SteamState::Superheated,
                        ..
                    }
                );
                sim.steam_coherent(p, t, superheated);
            }
            meters.push(sim);
        }
        let start = options.frozen_time.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let (boilers, skipped) = boiler::plan(config, &mut meters, &overridden, start);
        for s in &skipped {
            tracing::warn!(boiler = %s.boiler, reason = s.reason,
                "simulator: boiler not simulated (its meters are served as plain meters)");
        }
        // After the boilers: their meters follow the boiler model, not the hierarchy.
        let incomers: Vec<Option<MeterId>> = hierarchy::cohere(config, &mut meters)
            .into_iter()
            .map(|p| p.and_then(|i| u32::try_from(i).ok().map(MeterId)))
            .collect();
        for &(meter, point, value) in &options.values {
            let Some(p) = meters
                .get_mut(meter.index())
                .and_then(|m| m.points.get_mut(point))
            else {
                return Err(SimError::InvalidPoint {
                    meter: config
                        .meters
                        .get(meter.index())
                        .map_or_else(|| format!("#{}", meter.index()), |m| m.id.clone()),
                    point,
                });
            };
            p.role = Role::Level { value, wobble: 0.0 };
        }

        let mut units = vec![Box::new([None::<usize>; 256]); config.endpoints.len()];
        for (i, m) in config.meters.iter().enumerate() {
            // MQTT meters are not served over Modbus.
            let Some((endpoint, unit_id)) = m.modbus() else {
                continue;
            };
            let slot = &mut units[endpoint.index()][usize::from(unit_id)];
            if let Some(first) = *slot {
                return Err(SimError::DuplicateUnit {
                    endpoint: config.endpoints[endpoint.index()].id.clone(),
                    unit: unit_id,
                    first: config.meters[first].id.clone(),
                    second: m.id.clone(),
                });
            }
            *slot = Some(i);
        }
        let mut dlt645: Vec<Vec<(Address, usize)>> = vec![Vec::new(); config.endpoints.len()];
        for (i, m) in config.meters.iter().enumerate() {
            let Some((endpoint, address)) = m.dlt645() else {
                continue;
            };
            let on_bus = &mut dlt645[endpoint.index()];
            if let Some(&(_, first)) = on_bus.iter().find(|(a, _)| *a == address) {
                return Err(SimError::DuplicateAddress {
                    endpoint: config.endpoints[endpoint.index()].id.clone(),
                    address: address.nameplate(),
                    first: config.meters[first].id.clone(),
                    second: m.id.clone(),
                });
            }
            on_bus.push((address, i));
        }

        let step = config.simulator.time_step.as_secs_f64();
        let shared = Arc::new(Shared {
            faults: (0..meters.len()).map(|_| AtomicU64::new(0)).collect(),
            resets: (0..meters.len()).map(|_| AtomicU64::new(0)).collect(),
            freeze_at: (0..meters.len()).map(|_| AtomicU64::new(0)).collect(),
            meters,
            units,
            dlt645,
            frozen: AtomicU64::new(options.frozen_time.unwrap_or(f64::NAN).to_bits()),
            step: if step > 0.0 { step } else { 1.0 },
            served: AtomicU64::new(0),
        });
        for (meter, fault) in &config.simulator.faults {
            shared.set_fault(meter.index(), Some(*fault));
        }

        // Bind everything before serving anything, so a failure leaves nothing running.
        let mut listeners = Vec::new();
        let mut rtu_listeners = Vec::new();
        let mut dtu_links = Vec::new();
        let mut addrs = vec![None; config.endpoints.len()];
        let mut dtus = vec![None; config.endpoints.len()];
        for (e, ep) in config.endpoints.iter().enumerate() {
            // MQTT meters have no endpoint; the rest are served on theirs.
            if config.meters_on(EndpointId(e as u32)).next().is_none() {
                continue;
            }
            let (host, port) = match &ep.transport {
                Transport::Tcp { host, port } => {
                    let dlt = shared.dlt645[e].len();
                    if dlt > 0 {
                        tracing::warn!(endpoint = %ep.id, meters = dlt,
                            "simulator: DL/T 645 meters on a Modbus TCP endpoint are not served \
                             (they need a serial-framed endpoint: rtu_over_tcp or dtu)");
                    }
                    if dlt == config.meters_on(EndpointId(e as u32)).count() {
                        continue;
                    }
                    (host, *port)
                }
                Transport::RtuOverTcp { host, port } => (host, *port),
                Transport::Serial { device } => {
                    tracing::warn!(endpoint = %ep.id, device = %device.display(),
                        "simulator: serial endpoint not served (the gateway opens the device itself; \
                         serve these meters over rtu_over_tcp to simulate them)");
                    continue;
                }
                Transport::Dtu(d) => {
                    let counters = Arc::new(DtuCounters::default());
                    dtus[e] = Some(Arc::clone(&counters));
                    dtu_links.push((e, d.clone(), counters));
                    continue;
                }
            };
            let bind_err = |source| SimError::Bind {
                endpoint: ep.id.clone(),
                addr: ep.address(),
                source,
            };
            let listener = TcpListener::bind((host.as_str(), port))
                .await
                .map_err(bind_err)?;
            addrs[e] = Some(listener.local_addr().map_err(bind_err)?);
            if matches!(ep.transport, Transport::RtuOverTcp { .. }) {
                rtu_listeners.push((e, listener));
            } else {
                listeners.push((e, listener));
            }
        }
        for (e, listener) in rtu_listeners {
            bus::spawn_listener(
                Arc::clone(&shared),
                e,
                config.endpoints[e].id.clone(),
                listener,
                shutdown.clone(),
            );
        }
        let gateway = dtu::dial_address(config.dtu.listen);
        for (e, d, counters) in dtu_links {
            let link = DtuLink {
                shared: Arc::clone(&shared),
                endpoint: e,
                endpoint_id: config.endpoints[e].id.clone(),
                gateway,
                dtu: d,
                heartbeat_every: config.simulator.dtu_heartbeat,
                counters,
            };
            dtu::spawn(link, shutdown.clone());
        }
        for (e, listener) in listeners {
            let service = server::EndpointService {
                shared: Arc::clone(&shared),
                endpoint: e,
            };
            let shutdown = shutdown.clone();
            let endpoint_id = config.endpoints[e].id.clone();
            tokio::spawn(async move {
                let server = tokio_modbus::server::tcp::Server::new(listener);
                let on_connected = |stream: tokio::net::TcpStream, _peer: SocketAddr| {
                    let service = service.clone();
                    async move { Ok(Some((service, stream))) }
                };
                let on_error =
                    |err: std::io::Error| tracing::debug!(%err, "simulator connection ended");
                // Dropping `serve` closes the listener and cancels its connections.
                tokio::select! {
                    res = server.serve(&on_connected, on_error) => {
                        if let Err(err) = res {
                            tracing::warn!(endpoint = %endpoint_id, %err, "simulator listener failed");
                        }
                    }
                    () = shutdown.cancelled() => {}
                }
            });
        }

        let (plans, skipped) = mqtt::plan(config);
        for (meter, reason) in &skipped {
            tracing::warn!(meter = %config.meter(*meter).id, %reason, "simulator: MQTT meter not published");
        }
        let counters = Arc::new(mqtt::MqttCounters::default());
        mqtt::spawn(config, &plans, &shared, &counters, &shutdown);

        Ok(Simulator {
            shared,
            addrs: Arc::new(addrs),
            dtus: Arc::new(dtus),
            mqtt: Arc::new(MqttState { counters, plans }),
            boilers: Arc::new(boilers),
            incomers: Arc::new(incomers),
        })
    }

    /// The simulated boilers' truths, in configuration order (boilers the
    /// model cannot drive are left out, with a warning at start).
    pub fn boilers(&self) -> &[BoilerTruth] {
        &self.boilers
    }

    /// The level-1 meter `meter` hangs below in the simulated hierarchy
    /// (`None` for incomers and meters outside one; see [`hierarchy`]).
    pub fn incomer_of(&self, meter: MeterId) -> Option<MeterId> {
        self.incomers.get(meter.index()).copied().flatten()
    }

    /// The truth of boiler `id`, when it is simulated.
    pub fn boiler(&self, id: &str) -> Option<&BoilerTruth> {
        self.boilers.iter().find(|b| b.id == id)
    }

    /// Address endpoint `endpoint` listens on, if it has meters and is a
    /// `tcp` or `rtu_over_tcp` endpoint.
    pub fn local_addr(&self, endpoint: EndpointId) -> Option<SocketAddr> {
        self.addrs.get(endpoint.index()).copied().flatten()
    }

    /// Connections the simulated DTU of `endpoint` has made to the gateway
    /// (0 for an endpoint that is not a `dtu` endpoint with meters): 1 while
    /// all is well, one more per redial.
    pub fn dtu_connects(&self, endpoint: EndpointId) -> u64 {
        self.dtu_counters(endpoint)
            .map_or(0, |c| c.connects.load(Ordering::Relaxed))
    }

    /// Heartbeat packets the simulated DTU of `endpoint` has sent.
    pub fn dtu_heartbeats(&self, endpoint: EndpointId) -> u64 {
        self.dtu_counters(endpoint)
            .map_or(0, |c| c.heartbeats.load(Ordering::Relaxed))
    }

    fn dtu_counters(&self, endpoint: EndpointId) -> Option<&DtuCounters> {
        self.dtus.get(endpoint.index())?.as_deref()
    }

    /// The scaled value point `point` (index in its profile) of `meter` holds
    /// at Unix time `t`, exactly as served: stepped, encoded into registers and
    /// decoded back with the gateway's formula (so ×0.01 kWh integer steps and
    /// f32 rounding are included). Faults, counter resets included, are ignored.
    ///
    /// For a DL/T 645 point: the BCD digits served (counters rounded down,
    /// gauges to the nearest count of the format; see [`dlt645`]), decoded
    /// by [`Format::decode`](crate::profiles::dlt645::Format::decode) and
    /// scaled by [`scale_raw`](crate::profiles::codec::scale_raw) (× scale ×
    /// ratio + offset), as the gateway does.
    pub fn value_at(&self, meter: MeterId, point: usize, t: f64) -> f64 {
        let s = &self.shared;
        s.meters[meter.index()].served_value(point, s.stepped(t))
    }

    /// The meter's consumption rate at `t` (not stepped), main unit per hour.
    pub fn rate_at(&self, meter: MeterId, t: f64) -> f64 {
        self.shared.meters[meter.index()].load.rate(t)
    }

    /// True consumption of `meter` between `t0` and `t1` (not stepped, not
    /// quantised), in the unit of its main counter.
    pub fn consumption(&self, meter: MeterId, t0: f64, t1: f64) -> f64 {
        self.shared.meters[meter.index()].load.consumption(t0, t1)
    }

    /// The load shape `meter` follows.
    pub fn load(&self, meter: MeterId) -> LoadShape {
        self.shared.meters[meter.index()].load
    }

    /// Step length, seconds.
    pub fn time_step(&self) -> f64 {
        self.shared.step
    }

    /// Freezes the simulated clock at Unix time `t`, or returns to the wall clock with `None`.
    pub fn freeze_time(&self, t: Option<f64>) {
        let bits = t.unwrap_or(f64::NAN).to_bits();
        self.shared.frozen.store(bits, Ordering::Relaxed);
    }

    /// Sets or clears the fault of `meter` (see the module doc for each kind).
    pub fn set_fault(&self, meter: MeterId, fault: Option<SimFault>) {
        self.shared.set_fault(meter.index(), fault);
    }

    /// The active fault of `meter`.
    pub fn fault(&self, meter: MeterId) -> Option<SimFault> {
        self.shared.fault(meter.index())
    }

    /// Requests answered so far, with data or an exception (silence is not counted).
    pub fn requests_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// MQTT messages written to brokers so far (all meters, all brokers).
    pub fn published(&self) -> u64 {
        self.mqtt.counters.published.load(Ordering::Relaxed)
    }

    /// Connections the MQTT publishers have made (one per broker when all is well).
    pub fn mqtt_connects(&self) -> u64 {
        self.mqtt.counters.connects.load(Ordering::Relaxed)
    }

    /// MQTT messages dropped because a broker was away long enough to fill the client's queue.
    pub fn mqtt_dropped(&self) -> u64 {
        self.mqtt.counters.dropped.load(Ordering::Relaxed)
    }

    /// The topic `meter` publishes to, for an MQTT meter that is published.
    pub fn mqtt_topic(&self, meter: MeterId) -> Option<&str> {
        let plan = self.mqtt.plans.iter().find(|p| p.meter == meter)?;
        Some(plan.topic.as_str())
    }

    /// The payload `meter` would publish for Unix second `slot` under its
    /// current fault (`None`: not an MQTT meter being published, or the
    /// fault is `no_response`). Counts as a request under the fault, like a
    /// publication. For tests and benchmarks.
    pub fn mqtt_payload(&self, meter: MeterId, slot: i64) -> Option<Vec<u8>> {
        let plan = self.mqtt.plans.iter().find(|p| p.meter == meter)?;
        let (mut values, mut buf) = (Vec::new(), Vec::new());
        mqtt::render(&self.shared, plan, slot, &mut values, &mut buf).then_some(buf)
    }

    /// Requests for `meter` that have been served with its current fault
    /// (or its lack of one), since [`Simulator::set_fault`] last set it. The
    /// count and the fault a request sees are taken in one atomic step, so
    /// after `set_fault(m, Some(f))` every request counted here saw `f`
    /// (answered, silent or refused alike). A gateway poll of a meter whose
    /// points fit one read is one request: a test waits for 1 here and clears
    /// the fault to let exactly one poll through.
    pub fn requests_under_fault(&self, meter: MeterId) -> u64 {
        self.shared.requests_under_fault(meter.index())
    }
}
