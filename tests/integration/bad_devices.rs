//! Meters that misbehave on the wire never stop the others: a device that
//! answers garbage, and one that closes the connection in the middle of a
//! frame, each on its own endpoint beside a healthy simulated meter.

use std::sync::Arc;
use std::time::Duration;

use emgate::config::load::from_parts;
use emgate::sim::Simulator;
use emgate::stats::Stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the fake device misbehaves.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Answers every request with bytes that are not a Modbus frame for it.
    Garbage,
    /// Sends the first bytes of a valid-looking answer, then closes.
    CloseMidFrame,
}

/// A TCP server that reads Modbus TCP requests and misbehaves on each.
async fn bad_device(kind: Misbehaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = [0u8; 260];
                loop {
                    // MBAP header: transaction (2), protocol (2), length (2), unit (1).
                    if sock.read_exact(&mut req[..7]).await.is_err() {
                        return;
                    }
                    let len = usize::from(u16::from_be_bytes([req[4], req[5]]));
                    let pdu = len.saturating_sub(1).min(253);
                    if sock.read_exact(&mut req[7..7 + pdu]).await.is_err() {
                        return;
                    }
                    match kind {
                        Misbehaviour::Garbage => {
                            // Right transaction id, absurd length and function code.
                            let answer = [req[0], req[1], 0, 0, 0, 3, req[6], 0x77, 0xAB];
                            if sock.write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                        Misbehaviour::CloseMidFrame => {
                            let _ = sock.write_all(&[req[0], req[1], 0, 0, 0]).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn config(
    good_port: u16,
    bad_port: u16,
    out: &std::path::Path,
    with_bad: bool,
) -> emgate::config::Config {
    let main = format!(
        r#"
[gateway]
id = "test"
data_dir = {data:?}

[file_sink]
path = {out:?}
batch_size = 1
flush_interval_ms = 100

[[endpoints]]
id = "good"
host = "127.0.0.1"
port = {good_port}
timeout_ms = 500

[[endpoints]]
id = "bad"
host = "127.0.0.1"
port = {bad_port}
timeout_ms = 500
reconnect_initial_ms = 50
reconnect_max_ms = 200
"#,
        out = out.display().to_string(),
        data = out.parent().expect("dir").display().to_string()
    );
    let mut site = r#"
[site]
id = "S1"
name = "test site"

[[meters]]
id = "good-1"
energy = "electricity"
level = 1
profile = "eastron_sdm630"
endpoint = "good"
unit_id = 1
poll_interval_secs = 1
"#
    .to_owned();
    let bad = r#"
[[meters]]
id = "bad-1"
energy = "electricity"
level = 2
profile = "eastron_sdm630"
endpoint = "bad"
unit_id = 1
poll_interval_secs = 1
"#;
    if with_bad {
        site.push_str(bad);
    }
    from_parts(
        &main,
        &[("s1.toml", &site)],
        emgate::profiles::load::builtin(),
    )
    .expect("valid config")
}

async fn run_against(kind: Misbehaviour) -> (Vec<String>, Arc<Stats>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("lines.lp");
    let bad_port = bad_device(kind).await;
    // The simulator picks its own port for the good endpoint.
    let good_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let good_port = good_listener.local_addr().expect("addr").port();
    drop(good_listener);
    let gateway_config = Arc::new(config(good_port, bad_port, &out, true));
    // The simulator serves the good meter only; the bad endpoint is ours.
    let sim_config = config(good_port, bad_port, &out, false);
    let stop_sim = CancellationToken::new();
    let _sim = Simulator::start(&sim_config, stop_sim.clone())
        .await
        .expect("simulator");

    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let gw = tokio::spawn(emgate::app::run(
        Arc::clone(&gateway_config),
        Arc::clone(&stats),
        shutdown.clone(),
    ));
    // Four rounds of both meters, bounded in time so a stall fails the test.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while Stats::get(&stats.readings) < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway stalled: {} readings after 30 s",
            Stats::get(&stats.readings)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    gw.await.expect("join").expect("gateway run");
    stop_sim.cancel();
    let text = std::fs::read_to_string(&out).expect("lines file");
    (text.lines().map(str::to_owned).collect(), stats)
}

fn check(lines: &[String], stats: &Stats) {
    let good: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("meter=good-1"))
        .collect();
    let bad: Vec<_> = lines.iter().filter(|l| l.contains("meter=bad-1")).collect();
    assert_eq!(
        lines.len() as u64,
        Stats::get(&stats.readings),
        "every reading is written"
    );
    assert!(good.len() >= 4, "good meter kept being polled: {good:?}");
    assert!(bad.len() >= 3, "bad meter still produces readings: {bad:?}");
    for l in &good {
        assert!(
            l.contains(" q=0i") || l.contains(",q=0i"),
            "good meter flagged: {l}"
        );
        assert!(l.contains("import_kwh="), "good meter has values: {l}");
    }
    for l in &bad {
        assert!(!l.contains("import_kwh="), "no value invented: {l}");
        // Timeout (1) and/or protocol error (2), nothing else.
        let q: u16 = l
            .split(" q=")
            .nth(1)
            .and_then(|rest| rest.split('i').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("q field in {l}"));
        assert!(
            q != 0 && q & !3 == 0,
            "bad meter flagged timeout or protocol error: {l}"
        );
        assert!(l.contains("q_detail=\"voltage_l1_v:"), "reason given: {l}");
    }
}

#[tokio::test]
async fn garbage_answers_do_not_stop_other_meters() {
    let (lines, stats) = run_against(Misbehaviour::Garbage).await;
    check(&lines, &stats);
}

#[tokio::test]
async fn connection_closed_mid_frame_does_not_stop_other_meters() {
    let (lines, stats) = run_against(Misbehaviour::CloseMidFrame).await;
    check(&lines, &stats);
}
