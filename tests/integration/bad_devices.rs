//! Meters that misbehave on the wire never stop the others: a device that
//! answers garbage, one that closes the connection in the middle of a
//! frame, and ones that answer a well-formed frame with more or fewer
//! registers than asked, each on its own endpoint beside a healthy
//! simulated meter. An answer that does not answer the request is never a
//! value.

use std::sync::Arc;

use emgate::sim::SimOptions;
use emgate::telemetry::Stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::test_gateway::TestGateway;

/// How the fake device misbehaves.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Answers every request with bytes that are not a Modbus frame for it.
    Garbage,
    /// Answers with a frame whose MBAP length is zero: it cannot be parsed.
    Unparseable,
    /// Sends the first bytes of a valid-looking answer, then closes.
    CloseMidFrame,
    /// Answers a read with a well-formed frame holding this many registers
    /// more (positive) or fewer (negative) than requested.
    WrongCount(i16),
    /// Answers with the right registers under another transaction id.
    WrongTransaction,
    /// Answers with the right registers from another unit id.
    WrongUnit,
}

/// A well-formed answer to the read request `req` (MBAP + PDU) with `delta`
/// registers more than asked, its transaction id's low byte and its unit id
/// moved by `tid` and `unit`; every register pair is the f32 50.0.
fn read_answer(req: &[u8], delta: i16, tid: u8, unit: u8) -> Vec<u8> {
    // Read request PDU: function, start (2), count (2).
    let asked = i16::from_be_bytes([req[10], req[11]]);
    let regs = usize::try_from(asked + delta).expect("a count");
    let bytes = regs * 2;
    let mut answer = vec![req[0], req[1].wrapping_add(tid), 0, 0];
    answer.extend_from_slice(&u16::try_from(3 + bytes).expect("len").to_be_bytes());
    answer.extend_from_slice(&[
        req[6].wrapping_add(unit),
        req[7],
        u8::try_from(bytes).expect("bytes"),
    ]);
    for i in 0..regs {
        answer.extend_from_slice(if i % 2 == 0 { &[0x42, 0x48] } else { &[0, 0] });
    }
    answer
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
                        Misbehaviour::Unparseable => {
                            let answer = [req[0], req[1], 0, 0, 0, 0, req[6], 0x03, 0x00];
                            if sock.write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                        Misbehaviour::CloseMidFrame => {
                            let _ = sock.write_all(&[req[0], req[1], 0, 0, 0]).await;
                            return;
                        }
                        Misbehaviour::WrongCount(delta) => {
                            if sock
                                .write_all(&read_answer(&req, delta, 0, 0))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Misbehaviour::WrongTransaction => {
                            if sock.write_all(&read_answer(&req, 0, 1, 0)).await.is_err() {
                                return;
                            }
                        }
                        Misbehaviour::WrongUnit => {
                            if sock.write_all(&read_answer(&req, 0, 0, 1)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

/// The good meter on the simulator, and with `with_bad` the bad one on
/// the test's own device at `bad_port`; the output is a line file.
fn gateway(bad_port: u16, with_bad: bool) -> GatewayToml {
    let mut site = Site::new("S1", "test site").meter(modbus(
        "good-1",
        "electricity",
        "eastron_sdm630",
        "good",
        1,
    ));
    if with_bad {
        site = site.meter(modbus("bad-1", "electricity", "eastron_sdm630", "bad", 1).level(2));
    }
    GatewayToml::new("test")
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .endpoint("good", "timeout_ms = 500")
        .endpoint_at(
            "bad",
            bad_port,
            "timeout_ms = 500\nreconnect_initial_ms = 50\nreconnect_max_ms = 200",
        )
        .site("s1.toml", site)
}

async fn run_against(kind: Misbehaviour) -> (Vec<String>, Arc<Stats>) {
    let bad_port = bad_device(kind).await;
    // The simulator serves the good meter only; the bad endpoint is ours.
    let mut gw = TestGateway::prepare(&gateway(bad_port, false), SimOptions::default()).await;
    gw.files.rewrite(&gateway(bad_port, true));
    gw.run();
    // Four rounds of both meters, bounded in time so a stall fails the test.
    gw.wait_readings(8).await;
    gw.stop().await;
    gw.sim.stop();
    let out = gw.files.data_dir().join("lines.lp");
    let text = std::fs::read_to_string(&out).expect("lines file");
    (
        text.lines().map(str::to_owned).collect(),
        Arc::clone(gw.stats()),
    )
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
    // Its MBAP header is well formed; its function code answers nothing asked.
    first_read_is_exception(&lines, "wrong_function");
}

/// Garbage is an answer, just not a usable one: `exception` for the read it
/// answered (the first, holding voltage_l1_v), with the check it failed as
/// the detail, not `timeout`; the rest of that poll was never asked once
/// the link was dropped.
fn first_read_is_exception(lines: &[String], detail: &str) {
    for l in lines.iter().filter(|l| l.contains("meter=bad-1")) {
        assert!(
            l.contains(&format!("q_detail=\"voltage_l1_v:exception:{detail},")),
            "exception:{detail}, not timeout: {l}"
        );
    }
}

/// A frame that cannot be parsed at all (an MBAP length of 0; tokio-modbus
/// reported it as an I/O error, which used to be taken for `timeout`).
#[tokio::test]
async fn an_unparseable_answer_is_exception_not_timeout() {
    let (lines, stats) = run_against(Misbehaviour::Unparseable).await;
    check(&lines, &stats);
    first_read_is_exception(&lines, "garbage");
}

#[tokio::test]
async fn connection_closed_mid_frame_does_not_stop_other_meters() {
    let (lines, stats) = run_against(Misbehaviour::CloseMidFrame).await;
    check(&lines, &stats);
}

/// A well-formed answer with more or with fewer registers than the request
/// asked for (tokio-modbus only checks the count in debug builds): every
/// point of such a read is `exception` (q = 2 exactly, the link kept), and
/// no field of the bad meter carries a value.
fn check_wrong_count(lines: &[String], stats: &Stats) {
    check(lines, stats);
    for l in lines.iter().filter(|l| l.contains("meter=bad-1")) {
        let fields = l
            .split(' ')
            .nth(1)
            .unwrap_or_else(|| panic!("fields in {l}"));
        // The field keys, once the quoted q_detail value (which holds commas
        // and colons) is taken out: every other piece of the split is outside quotes.
        let unquoted: String = fields.split('"').step_by(2).collect();
        let keys: Vec<&str> = unquoted
            .split(',')
            .map(|f| f.split('=').next().unwrap_or_default())
            .collect();
        assert!(
            keys.iter().all(|k| ["q", "q_detail", "lag_ms"].contains(k))
                && keys.contains(&"q_detail"),
            "only q, q_detail and lag_ms on the bad meter: {l}"
        );
        assert!(
            l.contains(" q=2i") || l.contains(",q=2i"),
            "exception, nothing else: {l}"
        );
        assert!(
            !l.contains(":timeout"),
            "an answer came: not a timeout: {l}"
        );
        assert!(
            l.contains("voltage_l1_v:exception:wrong_count"),
            "the failed check is named: {l}"
        );
    }
}

#[tokio::test]
async fn an_answer_with_more_registers_than_asked_is_never_a_value() {
    let (lines, stats) = run_against(Misbehaviour::WrongCount(2)).await;
    check_wrong_count(&lines, &stats);
}

#[tokio::test]
async fn an_answer_with_fewer_registers_than_asked_is_never_a_value() {
    let (lines, stats) = run_against(Misbehaviour::WrongCount(-1)).await;
    check_wrong_count(&lines, &stats);
}

/// An answer under another transaction id, or from another unit, answers
/// another question: `exception` for the read, never its registers.
#[tokio::test]
async fn an_answer_to_another_transaction_is_never_a_value() {
    let (lines, stats) = run_against(Misbehaviour::WrongTransaction).await;
    check(&lines, &stats);
    first_read_is_exception(&lines, "wrong_transaction");
}

#[tokio::test]
async fn an_answer_from_another_unit_is_never_a_value() {
    let (lines, stats) = run_against(Misbehaviour::WrongUnit).await;
    check(&lines, &stats);
    first_read_is_exception(&lines, "wrong_unit");
}
