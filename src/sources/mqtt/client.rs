//! The broker client: one task per `[[mqtt]]` broker that connects,
//! subscribes, hands every message's readings to the pipeline and
//! acknowledges QoS 1/2 messages only once those readings are durable.
//!
//! # Delivery
//! rumqttc runs with manual acks. Each message is decoded by the broker's
//! [`BrokerDecoder`] into a batch, sent downstream as an [`Input`] with a
//! one-shot sender, and queued (with its receiver) in a FIFO that a
//! companion task works through **in receipt order**: it acks a message once
//! its receiver yields `true` (the encoder appended the chunk holding the
//! batch's lines to the spool). A message whose readings were given up at
//! shutdown (`false`, or the sender dropped) is never acked, and neither is
//! one that arrived on a connection that has since been lost: the broker
//! redelivers both (with a persistent session). Rejected messages are
//! counted, logged (rate-limited per reason), republished to the dead-letter
//! topic when one is set, and acked: they would never become valid. QoS 0
//! messages are not acked at all (the protocol has no ack for them).
//! A redelivered message that had been spooled before a crash is spooled
//! again; its slot overwrites the same point in InfluxDB.
//!
//! # Connection
//! rumqttc's event loop reconnects on the next `poll()` after an error; the
//! task sleeps a capped exponential backoff with jitter ([`Backoff`])
//! between failed polls. After a CONNACK it subscribes to every
//! subscription's filter, unless the broker kept the session (it then has
//! the subscriptions; the first connection of a process always subscribes,
//! in case the configuration changed). State changes are logged once each:
//! connected, lost, and every *different* failure while reconnecting.
//!
//! # Backpressure
//! Sending to a full pipeline makes the task wait without polling the
//! broker, so TCP flow control (and the broker's in-flight window) holds the
//! messages back; a long stall may let the keep-alive lapse, which the
//! reconnect then handles.
//!
//! # Shutdown
//! At cancellation the task stops forwarding (messages received after it
//! are not acked) and keeps the connection polled until the encoder has
//! answered every message it forwarded, so their acks go out, then
//! disconnects. The wait is bounded by the task's share of the shutdown
//! deadline, [`Deadline::mqtt_drain`]: as long as the encoder may still
//! spool after the cancellation, plus a margin. A shorter wait would let a
//! message be spooled after the disconnect, never acked, and delivered
//! again by the broker after the restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::payload::{BrokerDecoder, Rejection};
use crate::backoff::Backoff;
use crate::config::{Config, MqttBroker, MqttProtocol};
use crate::model::{BrokerId, ReadingBatch};
use crate::shutdown::Deadline;
use crate::sources::{Input, SourceContext};
use crate::telemetry::Stats;

/// Shortest interval between two logs of the same rejection reason.
const REJECTION_LOG_EVERY: Duration = Duration::from_secs(10);

/// Bytes of a rejected payload shown in the log.
const EXCERPT_BYTES: usize = 64;

/// Packet size allowed above `max_payload_bytes` (topic, properties): a
/// payload between the two is rejected `too_large` and acked; a packet above
/// it is a protocol error that drops the connection (MQTT 5 tells the broker
/// the limit, so it does not send such packets).
const PACKET_HEADROOM: usize = 1 << 20;

/// Requests (acks, subscribes, dead letters) queued for the event loop.
const REQUEST_CAPACITY: usize = 256;

/// Messages the broker may have in flight to us at once (MQTT 5 receive
/// maximum; 3.1.1 brokers use their own setting).
const RECEIVE_MAXIMUM: u16 = 256;

/// Errors that keep a broker client from starting.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TLS file could not be read.
    #[error("mqtt broker {broker:?}: cannot read tls file {}: {source}", path.display())]
    TlsFile {
        /// The broker id.
        broker: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file holds no PEM block of the expected kind.
    #[error("mqtt broker {broker:?}: tls file {} holds no PEM {what}", path.display())]
    NotPem {
        /// The broker id.
        broker: String,
        /// The file.
        path: PathBuf,
        /// What was expected ("certificate", "private key").
        what: &'static str,
    },
}

/// One broker's client task; build with [`BrokerClient::new`], then
/// [`BrokerClient::run`] it.
pub struct BrokerClient {
    config: Arc<Config>,
    broker: BrokerId,
    out: mpsc::Sender<Input>,
    stats: Arc<Stats>,
    tls: Option<TlsConfiguration>,
}

impl BrokerClient {
    /// A client for `broker`, reading its TLS files now so that a missing
    /// file stops the gateway at start rather than failing every reconnect.
    ///
    /// # Errors
    /// When a configured TLS file cannot be read or holds no PEM block.
    pub fn new(ctx: &SourceContext, broker: BrokerId) -> Result<BrokerClient, ClientError> {
        let SourceContext {
            config, out, stats, ..
        } = ctx.clone();
        let b = &config.mqtt[broker.index()];
        let tls = match &b.tls {
            None => None,
            Some(t) => {
                let ca = read_pem(b, &t.ca_file, "CERTIFICATE", "certificate")?;
                let client_auth = match (&t.client_cert, &t.client_key) {
                    (Some(cert), Some(key)) => Some((
                        read_pem(b, cert, "CERTIFICATE", "certificate")?,
                        read_pem(b, key, "PRIVATE KEY", "private key")?,
                    )),
                    _ => None,
                };
                Some(TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth,
                })
            }
        };
        Ok(BrokerClient {
            config,
            broker,
            out,
            stats,
            tls,
        })
    }

    /// Connects, receives and acknowledges until `shutdown`, reconnecting
    /// as long as it takes, then drains and disconnects within its share of
    /// `deadline`. Never fails: broker trouble is logged and counted.
    pub async fn run(self, shutdown: CancellationToken, deadline: Deadline) {
        let b = &self.config.mqtt[self.broker.index()];
        let mut decoder = BrokerDecoder::new(&self.config, self.broker);
        let filters: Arc<[(String, u8)]> = decoder
            .subscriptions()
            .map(|(f, q)| (f.to_owned(), q))
            .collect();
        let (client, mut events) = connect(b, self.tls.clone());
        let generation = Arc::new(AtomicU64::new(0));
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let mut acker = tokio::spawn(ack_in_order(
            client.clone(),
            ack_rx,
            Arc::clone(&generation),
            Arc::clone(&self.stats),
        ));
        let mut task = Receiver {
            config: &self.config,
            broker: b,
            stats: &self.stats,
            out: self.out,
            acks: ack_tx,
            generation: &generation,
            client: &client,
            rejections: RejectionLog::default(),
            batch_points: self
                .config
                .profiles
                .iter()
                .map(|p| p.points.len())
                .max()
                .unwrap_or(0),
        };
        let mut backoff = Backoff::new(b.reconnect_initial, b.reconnect_max);
        let mut connected = false;
        let mut subscribed = false;
        let mut last_failure = String::new();
        info!(broker = %b.id, host = %b.host, port = b.port, tls = b.tls.is_some(), "mqtt client starting");
        loop {
            let polled = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                p = events.poll() => p,
            };
            match polled {
                Ok(Polled::Connected { session_present }) => {
                    Stats::add(&self.stats.mqtt_connects, 1);
                    backoff.reset();
                    connected = true;
                    last_failure.clear();
                    info!(broker = %b.id, session_present, "mqtt connected");
                    if !session_present || !subscribed {
                        subscribed = true;
                        let client = client.clone();
                        let filters = Arc::clone(&filters);
                        let broker = b.id.clone();
                        // A separate task: the request queue is drained by
                        // `poll()`, which this task must keep calling.
                        tokio::spawn(async move {
                            if let Err(e) = client.subscribe(&filters).await {
                                warn!(broker = %broker, error = %e, "mqtt subscribe request failed");
                            }
                        });
                    }
                }
                Ok(Polled::SubAck { accepted, refused }) => {
                    Stats::add(&self.stats.mqtt_subscriptions, accepted as u64);
                    if refused > 0 {
                        warn!(broker = %b.id, accepted, refused, filters = ?filters, "mqtt broker refused subscriptions (check its ACL)");
                    } else {
                        info!(broker = %b.id, filters = accepted, "mqtt subscribed");
                    }
                }
                Ok(Polled::ServerDisconnect(why)) => {
                    info!(broker = %b.id, reason = %why, "mqtt broker disconnects us");
                }
                Ok(Polled::Message(m)) => {
                    if task.handle(&mut decoder, m, &shutdown).await.is_break() {
                        break;
                    }
                }
                Ok(Polled::Other) => {}
                Err(e) => {
                    // Messages of the lost connection are not acked any
                    // more: the broker redelivers them on the next one.
                    generation.fetch_add(1, Ordering::Relaxed);
                    Stats::add(&self.stats.mqtt_disconnects, 1);
                    if connected {
                        warn!(broker = %b.id, error = %e, "mqtt connection lost; reconnecting");
                    } else if e != last_failure {
                        warn!(broker = %b.id, host = %b.host, port = b.port, error = %e, "mqtt connection failed; retrying");
                    } else {
                        debug!(broker = %b.id, error = %e, "mqtt connection failed again");
                    }
                    connected = false;
                    last_failure = e;
                    let delay = backoff.next_delay();
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }

        // Shutdown: nothing more goes downstream; the acker finishes the
        // FIFO as the encoder spools what is still in the channel, while the
        // event loop is polled so that those acks reach the broker.
        let Receiver { out, acks, .. } = task;
        drop(out);
        drop(acks);
        if connected {
            let drained = tokio::time::timeout(deadline.mqtt_drain(), async {
                loop {
                    tokio::select! {
                        _ = &mut acker => return,
                        p = events.poll() => if p.is_err() { return },
                    }
                }
            })
            .await;
            if drained.is_err() {
                warn!(broker = %b.id, "mqtt: some messages were not spooled before shutdown; the broker redelivers them");
            }
            // Let the DISCONNECT (and the last acks) go out; bounded, as
            // the request queue is only drained by `poll()`.
            let _ = tokio::time::timeout(deadline.mqtt_disconnect(), async {
                tokio::join!(client.disconnect(), async {
                    while events.poll().await.is_ok() {}
                })
            })
            .await;
        }
        acker.abort();
        info!(broker = %b.id, "mqtt client stopped");
    }
}

/// Reads a PEM file and checks that it holds a `-----BEGIN …{label}-----` block.
fn read_pem(
    b: &MqttBroker,
    path: &Path,
    label: &str,
    what: &'static str,
) -> Result<Vec<u8>, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::TlsFile {
        broker: b.id.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if !has_block {
        return Err(ClientError::NotPem {
            broker: b.id.clone(),
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(bytes)
}

/// The part of the task that handles messages (borrowed state, so the
/// event loop can be polled beside it).
struct Receiver<'a> {
    config: &'a Config,
    broker: &'a MqttBroker,
    stats: &'a Stats,
    out: mpsc::Sender<Input>,
    acks: mpsc::UnboundedSender<Pending>,
    generation: &'a AtomicU64,
    client: &'a Client,
    rejections: RejectionLog,
    /// Points of the largest profile, to size each message's batch once.
    batch_points: usize,
}

impl Receiver<'_> {
    /// Decodes one message and sends its readings downstream (or rejects
    /// it), queueing its ack. Breaks when the pipeline is gone or at shutdown.
    async fn handle(
        &mut self,
        decoder: &mut BrokerDecoder,
        m: Message,
        shutdown: &CancellationToken,
    ) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow;
        let received_ms = crate::clock::now_ms();
        Stats::add(&self.stats.mqtt_messages, 1);
        let generation = self.generation.load(Ordering::Relaxed);
        let needs_ack = m.qos() > 0;
        // The batch travels down the channel, so each message has its own.
        let mut batch = ReadingBatch::with_capacity(1, self.batch_points);
        let decoded = match m.topic() {
            Some(topic) => decoder.decode(topic, m.payload(), received_ms, &mut batch),
            None => Err((Rejection::NotUtf8, None)),
        };
        match decoded {
            Ok(n) => {
                Stats::add(&self.stats.mqtt_readings, n as u64);
                let (spooled, done) = if needs_ack {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                } else {
                    (None, None)
                };
                let input = Input { batch, spooled };
                tokio::select! {
                    // Not forwarded, so not acked: the broker redelivers it.
                    () = shutdown.cancelled() => return ControlFlow::Break(()),
                    sent = self.out.send(input) => if sent.is_err() {
                        return ControlFlow::Break(());
                    },
                }
                if needs_ack {
                    let _ = self.acks.send(Pending {
                        message: m,
                        done,
                        generation,
                    });
                }
            }
            Err((rejection, meter)) => {
                let meter = meter.map_or("?", |id| self.config.meters[id.index()].id.as_str());
                self.reject(&m, &rejection, meter);
                if needs_ack {
                    let _ = self.acks.send(Pending {
                        message: m,
                        done: None,
                        generation,
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Counts, logs (rate-limited per reason) and dead-letters a rejected message.
    fn reject(&mut self, m: &Message, rejection: &Rejection, meter: &str) {
        let reason = rejection.reason();
        self.stats.count_mqtt_rejection(reason, meter);
        let topic = m.topic_lossy();
        if self.rejections.should_log(reason) {
            let payload = m.payload();
            let excerpt = String::from_utf8_lossy(&payload[..payload.len().min(EXCERPT_BYTES)]);
            warn!(
                broker = %self.broker.id,
                topic = %topic,
                reason,
                meter,
                detail = %rejection,
                bytes = payload.len(),
                excerpt = %excerpt,
                total = self.stats.mqtt_rejections_by_reason().get(reason).copied().unwrap_or(0),
                "mqtt message rejected (this reason is logged at most every 10 s)"
            );
        }
        if let Some(dl) = &self.broker.dead_letter_topic {
            let body = serde_json::json!({
                "topic": topic,
                "reason": reason,
                "payload": String::from_utf8_lossy(m.payload()),
            })
            .to_string();
            if let Err(e) = self.client.try_publish_qos0(dl, body.into_bytes()) {
                debug!(broker = %self.broker.id, error = %e, "dead letter not published");
            }
        }
    }
}

/// A message waiting for its ack.
struct Pending {
    message: Message,
    /// `None`: nothing to wait for (rejected).
    done: Option<oneshot::Receiver<bool>>,
    /// Connection the message arrived on.
    generation: u64,
}

/// Acks messages in receipt order as their readings reach the spool. The
/// queue is unbounded, but holds at most what the broker has in flight to
/// us plus what sits in the bounded reading channel.
async fn ack_in_order(
    client: Client,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    generation: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    while let Some(p) = queue.recv().await {
        let spooled = match p.done {
            None => true,
            Some(done) => done.await.unwrap_or(false),
        };
        // Given up at shutdown, or the connection it came on is gone: the
        // broker redelivers it.
        if !spooled || generation.load(Ordering::Relaxed) != p.generation {
            continue;
        }
        match client.ack(&p.message).await {
            Ok(()) => Stats::add(&stats.mqtt_acked, 1),
            Err(e) => debug!(error = %e, "mqtt ack not queued"),
        }
    }
}

/// At most one log per reason per [`REJECTION_LOG_EVERY`].
#[derive(Default)]
struct RejectionLog {
    last: Vec<(&'static str, Instant)>,
}

impl RejectionLog {
    fn should_log(&mut self, reason: &'static str) -> bool {
        let now = Instant::now();
        match self.last.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, at)) if now.duration_since(*at) < REJECTION_LOG_EVERY => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                self.last.push((reason, now));
                true
            }
        }
    }
}

// ---------------------------------------------------------------------------
// MQTT 3.1.1 and 5 behind one small interface: rumqttc has a separate client,
// event loop and packet types for each.

/// The request side of a connection (cheap to clone).
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The event loop of a connection.
enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// A received PUBLISH, kept whole because the ack needs it.
enum Message {
    V4(rumqttc::Publish),
    V5(p5::Publish),
}

/// What one `poll()` produced, as far as the client cares.
enum Polled {
    Connected { session_present: bool },
    Message(Message),
    SubAck { accepted: usize, refused: usize },
    ServerDisconnect(String),
    Other,
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> v5::mqttbytes::QoS {
    match q {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Client and event loop for `b`, not yet connected (the first `poll()` connects).
fn connect(b: &MqttBroker, tls: Option<TlsConfiguration>) -> (Client, Events) {
    let incoming = b.max_payload_bytes.saturating_add(PACKET_HEADROOM);
    // A dead letter is JSON around the payload as lossy UTF-8: at most 6
    // bytes (`\u0001`) per payload byte.
    let outgoing = incoming.saturating_mul(6);
    let transport = tls.map_or(Transport::Tcp, Transport::tls_with_config);
    match b.protocol {
        MqttProtocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&b.client_id, &b.host, b.port);
            o.set_keep_alive(b.keep_alive)
                .set_clean_session(b.clean_session)
                .set_manual_acks(true)
                .set_max_packet_size(incoming, outgoing)
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_transport(transport);
            if let Some(user) = &b.username {
                o.set_credentials(user, b.password.expose());
            }
            let (c, e) = rumqttc::AsyncClient::new(o, REQUEST_CAPACITY);
            (Client::V4(c), Events::V4(Box::new(e)))
        }
        MqttProtocol::V5 => {
            let mut o = v5::MqttOptions::new(&b.client_id, &b.host, b.port);
            o.set_keep_alive(b.keep_alive)
                .set_clean_start(b.clean_session)
                .set_manual_acks(true)
                .set_max_packet_size(Some(u32::try_from(incoming).unwrap_or(u32::MAX)))
                .set_receive_maximum(Some(RECEIVE_MAXIMUM))
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_transport(transport);
            if !b.clean_session {
                // MQTT 5 ends a session at disconnect unless it has an
                // expiry interval; u32::MAX means "never".
                o.set_session_expiry_interval(Some(u32::MAX));
            }
            if let Some(user) = &b.username {
                o.set_credentials(user, b.password.expose());
            }
            let (c, e) = v5::AsyncClient::new(o, REQUEST_CAPACITY);
            (Client::V5(c), Events::V5(Box::new(e)))
        }
    }
}

impl Events {
    /// The next event; an error (as text, for logging) means the
    /// connection is down and the next call reconnects.
    async fn poll(&mut self) -> Result<Polled, String> {
        match self {
            Events::V4(e) => {
                use rumqttc::{Event, Packet, SubscribeReasonCode};
                Ok(match e.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(c)) => Polled::Connected {
                        session_present: c.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Polled::Message(Message::V4(p)),
                    Event::Incoming(Packet::SubAck(s)) => {
                        let refused = s
                            .return_codes
                            .iter()
                            .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                            .count();
                        Polled::SubAck {
                            accepted: s.return_codes.len() - refused,
                            refused,
                        }
                    }
                    _ => Polled::Other,
                })
            }
            Events::V5(e) => {
                use p5::{Packet, SubscribeReasonCode};
                use v5::Event;
                Ok(match e.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(c)) => Polled::Connected {
                        session_present: c.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Polled::Message(Message::V5(p)),
                    Event::Incoming(Packet::SubAck(s)) => {
                        let refused = s
                            .return_codes
                            .iter()
                            .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .count();
                        Polled::SubAck {
                            accepted: s.return_codes.len() - refused,
                            refused,
                        }
                    }
                    Event::Incoming(Packet::Disconnect(d)) => {
                        Polled::ServerDisconnect(format!("{:?}", d.reason_code))
                    }
                    _ => Polled::Other,
                })
            }
        }
    }
}

impl Message {
    fn qos(&self) -> u8 {
        match self {
            Message::V4(p) => p.qos as u8,
            Message::V5(p) => p.qos as u8,
        }
    }

    /// The topic, `None` when it is not UTF-8 (a protocol violation).
    fn topic(&self) -> Option<&str> {
        match self {
            Message::V4(p) => Some(&p.topic),
            Message::V5(p) => std::str::from_utf8(&p.topic).ok(),
        }
    }

    fn topic_lossy(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Message::V4(p) => std::borrow::Cow::Borrowed(&p.topic),
            Message::V5(p) => String::from_utf8_lossy(&p.topic),
        }
    }

    fn payload(&self) -> &[u8] {
        match self {
            Message::V4(p) => &p.payload,
            Message::V5(p) => &p.payload,
        }
    }
}

impl Client {
    async fn ack(&self, m: &Message) -> Result<(), String> {
        match (self, m) {
            (Client::V4(c), Message::V4(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            (Client::V5(c), Message::V5(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            _ => Err("protocol mismatch".to_owned()),
        }
    }

    async fn subscribe(&self, filters: &[(String, u8)]) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .subscribe_many(
                    filters
                        .iter()
                        .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), qos4(*q))),
                )
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .subscribe_many(filters.iter().map(|(f, q)| p5::Filter::new(f, qos5(*q))))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    fn try_publish_qos0(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .try_publish(topic, rumqttc::QoS::AtMostOnce, false, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, v5::mqttbytes::QoS::AtMostOnce, false, payload)
                .map_err(|e| e.to_string()),
        }
    }

    async fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_logged_once_per_reason_per_interval() {
        let mut log = RejectionLog::default();
        assert!(log.should_log("malformed"));
        assert!(!log.should_log("malformed"));
        assert!(log.should_log("too_large"));
        assert!(!log.should_log("too_large"));
    }
}
