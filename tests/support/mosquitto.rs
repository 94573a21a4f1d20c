//! A real Mosquitto broker for integration tests, on the shared [`Peer`]
//! lifecycle: own temporary directory, a plain listener (and optionally a
//! TLS one, with a CA and server certificate the test makes with the
//! `openssl` CLI) on 127.0.0.1, persistence on, so a [`Mosquitto::stop`] /
//! [`Mosquitto::start_again`] keeps persistent sessions and their queued
//! QoS 1/2 messages. Also small rumqttc helpers to publish (QoS 1, waiting
//! for every PUBACK) and to collect messages.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

use super::free_port;
use super::peer::{Peer, PeerKind, accepts, require_binary};

/// How a test broker is set up.
#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// `allow_anonymous` (false makes a password file necessary).
    pub allow_anonymous: bool,
    /// One user name and password, written with `mosquitto_passwd -b -c`.
    pub user: Option<(String, String)>,
    /// Also listen with TLS (server certificate signed by a test CA).
    pub tls: bool,
}

impl MosquittoOptions {
    /// Anonymous clients welcome, no TLS.
    pub fn anonymous() -> MosquittoOptions {
        MosquittoOptions {
            allow_anonymous: true,
            ..MosquittoOptions::default()
        }
    }
}

/// How to run `mosquitto`: ports are plain, then TLS when asked for.
struct Kind {
    binary: PathBuf,
    options: MosquittoOptions,
}

impl PeerKind for Kind {
    fn name(&self) -> &'static str {
        "mosquitto"
    }

    fn ports(&self) -> usize {
        if self.options.tls { 2 } else { 1 }
    }

    fn prepare(&self, dir: &Path, ports: &[u16]) {
        write_config(dir, &self.options, ports[0], ports.get(1).copied());
    }

    fn command(&self, dir: &Path, _ports: &[u16]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(dir.join("mosquitto.conf"));
        command
    }

    fn ready(&self, ports: &[u16]) -> bool {
        accepts(ports)
    }
}

/// A running `mosquitto`.
pub struct Mosquitto {
    peer: Peer,
    tls: bool,
}

impl Mosquitto {
    /// Starts a broker and waits until it accepts connections.
    pub fn start(options: &MosquittoOptions) -> Mosquitto {
        let binary = require_binary(
            "mosquitto",
            "install it with `apt-get install mosquitto mosquitto-clients`",
        );
        Mosquitto {
            peer: Peer::start(Kind {
                binary,
                options: options.clone(),
            }),
            tls: options.tls,
        }
    }

    /// Stops the broker (SIGTERM, so it saves its persistence file; SIGKILL
    /// after 10 s) and waits for it. Ports and directory stay.
    pub fn stop(&mut self) {
        self.peer.stop();
    }

    /// Starts the broker again after [`Mosquitto::stop`] on the same ports
    /// and directory: persistent sessions and their queued messages survive.
    pub fn start_again(&mut self) {
        self.peer.start_again();
    }

    /// The plain (non-TLS) port.
    pub fn port(&self) -> u16 {
        self.peer.port(0)
    }

    /// The TLS port, when started with `tls`.
    pub fn tls_port(&self) -> u16 {
        assert!(self.tls, "broker started without tls");
        self.peer.port(1)
    }

    /// The test CA's certificate (PEM file), when started with `tls`.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "broker started without tls");
        self.peer.dir().join("ca.pem")
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        self.peer.log()
    }
}

fn write_config(dir: &Path, options: &MosquittoOptions, port: u16, tls_port: Option<u16>) {
    let d = dir.display();
    let mut conf = format!(
        "per_listener_settings false\n\
         allow_anonymous {}\n\
         persistence true\n\
         persistence_location {d}/\n\
         autosave_interval 1\n\
         log_dest stderr\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
         connection_messages true\n\
         max_queued_messages 100000\n\
         user root\n",
        options.allow_anonymous
    );
    if let Some((user, password)) = &options.user {
        let passwd = require_binary(
            "mosquitto_passwd",
            "install it with `apt-get install mosquitto`",
        );
        let file = dir.join("passwd");
        run(Command::new(passwd)
            .args(["-b", "-c"])
            .arg(&file)
            .args([user, password]));
        let _ = writeln!(conf, "password_file {}", file.display());
    }
    let _ = writeln!(conf, "listener {port} 127.0.0.1");
    if let Some(tls_port) = tls_port {
        make_certificates(dir);
        let _ = writeln!(
            conf,
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key"
        );
    }
    std::fs::write(dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 it
/// signs (EC P-256, valid one day), made with the `openssl` CLI.
fn make_certificates(dir: &Path) {
    let openssl = require_binary("openssl", "install it with `apt-get install openssl`");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    let at = |f: &str| dir.join(f);
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=emgate test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(at("ca.key"))
        .arg("-out")
        .arg(at("ca.pem")));
    run(Command::new(&openssl)
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(at("server.key"))
        .arg("-out")
        .arg(at("server.csr")));
    run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "1", "-set_serial", "2"])
        .arg("-in")
        .arg(at("server.csr"))
        .arg("-CA")
        .arg(at("ca.pem"))
        .arg("-CAkey")
        .arg(at("ca.key"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(at("server.pem")));
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes `messages` (topic, payload) in order with QoS 1 as client
/// `client_id` (clean session, anonymous unless `user` is given) to the
/// broker's plain port and returns once the broker acknowledged every one.
/// Panics after 60 s without all acknowledgements.
pub async fn publish_all(
    port: u16,
    user: Option<(&str, &str)>,
    client_id: &str,
    messages: &[(String, Vec<u8>)],
) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    if let Some((u, p)) = user {
        options.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(options, 64);
    let owned: Vec<(String, Vec<u8>)> = messages.to_vec();
    let publisher_client = client.clone();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in owned {
            publisher_client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("queue a publish");
        }
    });
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    while acked < messages.len() {
        let Ok(event) = tokio::time::timeout_at(deadline, events.poll()).await else {
            panic!(
                "test publisher: {acked} of {} messages acknowledged within 60 s",
                messages.len()
            )
        };
        match event {
            Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("test publisher lost the broker on port {port}: {e}"),
        }
    }
    publisher.await.expect("publisher task");
    client.disconnect().await.expect("disconnect");
    // Let the DISCONNECT go out before the event loop is dropped.
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
    }
}

/// Messages a [`Collector`] received: (topic, payload).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Subscribes to `filter` (QoS 1) as a clean-session client and collects the
/// messages it receives in a background task; [`Collector::take`] returns
/// them.
pub struct Collector {
    messages: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Connects, subscribes and waits for the SUBACK.
    pub async fn start(port: u16, filter: &str) -> Collector {
        let mut options = MqttOptions::new(format!("collector-{}", free_port()), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 16);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, events.poll())
                .await
                .expect("SUBACK within 10 s")
            {
                Ok(Event::Incoming(Incoming::SubAck(_))) => break,
                Ok(_) => {}
                Err(e) => panic!("collector: {e}"),
            }
        }
        let messages: Received = std::sync::Arc::default();
        let sink = std::sync::Arc::clone(&messages);
        let task = tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Incoming::Publish(p)) = event {
                    sink.lock()
                        .expect("collector lock")
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
            }
        });
        Collector { messages, task }
    }

    /// The messages received so far.
    pub fn take(&self) -> Vec<(String, Vec<u8>)> {
        self.messages.lock().expect("collector lock").clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
