//! The status page (`src/api/page.html`) in a real browser: headless system
//! Chromium loads it, its JavaScript polls the API and renders, and the tests
//! read the resulting DOM (`tests/support/chromium.rs`).
//!
//! Two kinds of test:
//! - against a hand-written mock of the API served by a tiny HTTP server
//!   here: the page's logic with exact, known data (rows and their states,
//!   the site cards, the Buses table, the header, the bearer token from
//!   `#token=`, "connection lost" and "unauthorized");
//! - end to end: the real `emgate run` binary polling the simulator (in
//!   this process) with one meter answering Modbus exceptions and one not
//!   answering at all, its API on `[api] listen` (a free port); the page
//!   must show the failing meters as `down` and the good one as `up`, and
//!   a Buses row for each endpoint with its measured round.
//!
//! The meter rows' test hooks are `<tr data-meter="ID" data-state="...">`;
//! the Buses table's rows are `<tr data-bus="ID">` in `table#buses`; the
//! Boilers table's `<tr data-boiler="ID" data-state="...">` in `table#boilers`.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use emgate::config::SimFault;
use emgate::sim::SimOptions;
use serde_json::Value;

use crate::support::chromium::{attribute, dump_dom, meter_rows, strip_tags, text_of_id};
use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::test_gateway::TestGateway;
use crate::support::{lazy, wait_for};

/// The page as the gateway serves it.
const PAGE: &str = include_str!("../../src/api/page.html");

// ---------------------------------------------------------------------------
// Mock API

const MOCK_SITES: &str = r#"[
 {"id":"S1","name":"Works One","meters":3,"up":1,"down":1,"bad":1,"completeness_today":0.5,"completeness_ok":false},
 {"id":"S2","name":"Works Two","meters":1,"up":0,"down":0,"bad":0,"completeness_today":0.95,"completeness_ok":true}
]"#;

const MOCK_METERS: &str = r#"[
 {"id":"m-up","site":"S1","energy":"electricity","level":1,"source":"modbus:a/1","state":"up","last_slot":1764000000,
  "last_good_age_secs":4,"quality":0,"reasons":[],"consecutive_failures":0,"backoff_until":null,
  "calibration_due":"2025-01-31","calibration_overdue":true,"polls":120,"timeouts":0,"exceptions":0},
 {"id":"m-down","site":"S1","energy":"water","level":2,"source":"modbus:a/2","state":"down","last_slot":1763990000,
  "last_good_age_secs":10000,"quality":0,"reasons":[],"consecutive_failures":17,"backoff_until":null,
  "calibration_due":"2031-06-30","calibration_overdue":false,"polls":120,"timeouts":17,"exceptions":0},
 {"id":"m-bad","site":"S1","energy":"heat","level":2,"source":"mqtt:broker","state":"bad","last_slot":1764000000,
  "last_good_age_secs":null,"quality":4,"reasons":["value > max"],"consecutive_failures":0,"backoff_until":null,
  "calibration_due":null,"calibration_overdue":false,"polls":0,"timeouts":0,"exceptions":0},
 {"id":"m-new","site":"S2","energy":"gas","level":1,"source":"modbus:b/1","state":"unknown","last_slot":null,
  "last_good_age_secs":null,"quality":0,"reasons":[],"consecutive_failures":0,"backoff_until":null,
  "calibration_due":null,"calibration_overdue":false,"polls":0,"timeouts":0,"exceptions":0}
]"#;

const MOCK_ENDPOINTS: &str = r#"[
 {"id":"rs485","transport":"rtu_over_tcp","meters":30,"requests":90,"round_ms":5512.4,
  "planned_round_ms":2250.0,"budget_ms":5000,"utilisation":1.10248},
 {"id":"plc","transport":"tcp","meters":2,"requests":4,"round_ms":12.5,
  "planned_round_ms":null,"budget_ms":1000,"utilisation":0.0125}
]"#;

/// Two boilers: one with a running window (its 15m window listed first,
/// shortest first), one that has written nothing yet.
const MOCK_BOILERS: &str = r#"[
 {"id":"b1","name":"1# gas","site":"S1","kind":"steam","fuel":"natural_gas","rated_capacity":10.0,
  "limits":null,"limits_source":"none","windows_total":{"running":1,"off":0,"partial":0,
  "reemitted":0,"out_of_limit_efficiency":0,"out_of_limit_exhaust_c":0,"out_of_limit_alpha":0,
  "methods_disagree":0},
  "windows":[{"window":"15m","start":1764000000,"state":"running","eta_direct":91.54,
   "eta_indirect":90.25,"q2":5.5,"q3":0.5,"q4":0.0,"q5":1.7,"q6":0.0,"alpha":1.2,"load_pct":75.0,
   "heat_out_gj":6.25,"fuel_in_gj":6.83,"exhaust_c_mean":130.5,"o2_mean":3.5,"coverage":0.95,
   "estimated":true,"methods_disagree":false,"grade":"2","out_of_limit":[],
   "reasons":["estimated:q3_default","estimated:q5_rated"]},
   {"window":"1h","start":1763998200,"state":"partial","eta_direct":null,"eta_indirect":null,
   "q2":null,"q3":null,"q4":null,"q5":null,"q6":null,"alpha":null,"load_pct":null,
   "heat_out_gj":null,"fuel_in_gj":null,"exhaust_c_mean":null,"o2_mean":null,"coverage":0.5,
   "estimated":false,"methods_disagree":false,"grade":null,"out_of_limit":[],"reasons":[]}]},
 {"id":"b2","name":"","site":"S2","kind":"hot_water","fuel":"bituminous","rated_capacity":7.0,
  "limits":null,"limits_source":"none","windows_total":{"running":0,"off":0,"partial":0,
  "reemitted":0,"out_of_limit_efficiency":0,"out_of_limit_exhaust_c":0,"out_of_limit_alpha":0,
  "methods_disagree":0},"windows":[]}
]"#;

const MOCK_READY: &str = r#"{"ready":true,"reasons":[]}"#;

/// How the mock answers.
#[derive(Clone, Copy)]
enum Mode {
    /// The API above; with a token, every route but `/` and `/health` wants it.
    Api { token: Option<&'static str> },
    /// The page is served, every API request has its connection closed
    /// without an answer (a gateway whose API is gone).
    ApiDead,
}

/// Requests the mock has seen, by outcome.
#[derive(Default)]
struct Seen {
    /// API requests answered with data.
    authorized: AtomicU64,
    /// API requests refused for a missing or wrong token.
    unauthorized: AtomicU64,
    /// `/api/summary` requests (its counters grow with each).
    summaries: AtomicU64,
}

/// A mock gateway API on a free loopback port, one thread per connection;
/// it stops accepting when dropped (all tests share one process, so it must
/// not outlive its test).
struct MockApi {
    port: u16,
    seen: Arc<Seen>,
    closed: Arc<AtomicBool>,
}

impl MockApi {
    fn start(mode: Mode) -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock API");
        let port = listener.local_addr().expect("mock addr").port();
        let seen = Arc::new(Seen::default());
        let closed = Arc::new(AtomicBool::new(false));
        let (accept_seen, accept_closed) = (Arc::clone(&seen), Arc::clone(&closed));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if accept_closed.load(Ordering::Relaxed) {
                    return;
                }
                let seen = Arc::clone(&accept_seen);
                std::thread::spawn(move || serve_one(stream, mode, &seen));
            }
        });
        MockApi { port, seen, closed }
    }

    fn url(&self, fragment: &str) -> String {
        format!("http://127.0.0.1:{}/{fragment}", self.port)
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers one request (HTTP/1.1, `Connection: close`).
fn serve_one(mut stream: TcpStream, mode: Mode, seen: &Seen) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();

    let (status, content_type, body): (&str, &str, String) = if path == "/" {
        ("200 OK", "text/html; charset=utf-8", PAGE.to_owned())
    } else if path == "/favicon.ico" {
        // Not part of the API: must not count as an unauthorized API request.
        ("404 Not Found", "text/plain", String::new())
    } else {
        match mode {
            Mode::ApiDead => return, // dropped: the browser sees a network error
            Mode::Api { token } => {
                let allowed =
                    token.is_none_or(|t| authorization.as_deref() == Some(&format!("Bearer {t}")));
                if allowed {
                    seen.authorized.fetch_add(1, Ordering::Relaxed);
                    api_answer(&path, seen)
                } else {
                    seen.unauthorized.fetch_add(1, Ordering::Relaxed);
                    (
                        "401 Unauthorized",
                        "application/json",
                        r#"{"error":"missing bearer token"}"#.to_owned(),
                    )
                }
            }
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

/// The mock's answer to an authorized request.
fn api_answer(path: &str, seen: &Seen) -> (&'static str, &'static str, String) {
    let json = "application/json";
    match path {
        "/ready" => ("200 OK", json, MOCK_READY.to_owned()),
        "/api/sites" => ("200 OK", json, MOCK_SITES.to_owned()),
        "/api/meters" => ("200 OK", json, MOCK_METERS.to_owned()),
        "/api/endpoints" => ("200 OK", json, MOCK_ENDPOINTS.to_owned()),
        "/api/boilers" => ("200 OK", json, MOCK_BOILERS.to_owned()),
        "/api/summary" => {
            let n = seen.summaries.fetch_add(1, Ordering::Relaxed);
            (
                "200 OK",
                json,
                format!(
                    r#"{{"time":{},"readings_total":{},"lines_spooled":{},"spool_bytes":2048,"spool_records":3,"lines_written":90,"meters":4,"up":1,"down":1,"bad":1,"sink_reachable":false}}"#,
                    1_764_000_000 + 2 * n,
                    100 + 10 * n,
                    93 + 10 * n
                ),
            )
        }
        _ => (
            "404 Not Found",
            json,
            r#"{"error":"no such endpoint"}"#.to_owned(),
        ),
    }
}

/// `dump_dom` off the async runtime's workers.
async fn load(url: String) -> String {
    tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .expect("chromium thread")
}

/// Every Buses row of `dom` as `(bus, text of its cells)`, in document order.
fn bus_rows(dom: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<tr data-bus=") {
        let end = rest[start..]
            .find("</tr>")
            .map_or(rest.len(), |e| start + e);
        let tag_end = rest[start..].find('>').map_or(end, |e| start + e);
        let bus = attribute(&rest[start..tag_end], "data-bus").unwrap_or_default();
        rows.push((bus, strip_tags(&rest[tag_end + 1..end])));
        rest = &rest[end..];
    }
    rows
}

/// The text of the Boilers row of `boiler`, whose `data-state` must be `state`.
fn boiler_row(dom: &str, boiler: &str, state: &str) -> String {
    let tag = format!("<tr data-boiler=\"{boiler}\" data-state=\"{state}\">");
    let start = dom
        .find(&tag)
        .unwrap_or_else(|| panic!("no {tag} in DOM:\n{dom}"));
    let end = dom[start..].find("</tr>").map_or(dom.len(), |e| start + e);
    strip_tags(&dom[start + tag.len()..end])
}

/// The start tag of the element with `id`.
fn start_tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id:?} in DOM:\n{dom}"));
    let open = dom[..at].rfind('<').expect("start tag");
    let close = dom[at..].find('>').expect("tag end") + at;
    &dom[open..=close]
}

fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter()
        .map(|(m, s)| ((*m).to_owned(), (*s).to_owned()))
        .collect()
}

#[tokio::test]
async fn page_renders_the_mock_api_with_the_token_from_the_fragment() {
    let api = MockApi::start(Mode::Api {
        token: Some("s3cret"),
    });
    let dom = load(api.url("#token=s3cret")).await;

    // Per site, worst state first, then configuration order.
    assert_eq!(
        meter_rows(&dom),
        pairs(&[
            ("m-down", "down"),
            ("m-bad", "bad"),
            ("m-up", "up"),
            ("m-new", "unknown"),
        ]),
        "DOM:\n{dom}"
    );
    assert_eq!(text_of_id(&dom, "conn"), "connected");
    assert_eq!(text_of_id(&dom, "health"), "ready");
    assert_eq!(text_of_id(&dom, "backlog"), "3 records, 2.0 KiB");
    assert_eq!(text_of_id(&dom, "meters-total"), "4 (1 up, 1 down, 1 bad)");
    let writes = text_of_id(&dom, "writes");
    assert!(
        writes.starts_with("unreachable ") && writes.ends_with("lines/s, 90 total"),
        "writes: {writes:?}"
    );

    let cards = text_of_id(&dom, "cards");
    assert_eq!(
        cards,
        "Works OneS1 · 3 meters1 up1 down1 badtoday complete: 50.0 % (below 90 %)\
         Works TwoS2 · 1 meters0 up0 down0 bad1 unknowntoday complete: 95.0 %"
    );

    // Each row, as text: state words beside the colours, reasons, ages,
    // failures, calibration (overdue spelled out), counters.
    let tables = strip_tags(&dom[dom.find("id=\"tables\"").expect("tables")..]);
    for row in [
        "m-downdownwater2modbus:a/2–2 h 47 min ago172031-06-30120 / 17 / 0",
        "m-badbadheat2mqtt:brokervalue > maxnever0–0 / 0 / 0",
        "m-upupelectricity1modbus:a/1–4 s ago02025-01-31 (overdue)120 / 0 / 0",
        "m-newunknowngas1modbus:b/1–never0–0 / 0 / 0",
    ] {
        assert!(tables.contains(row), "row {row:?} not in:\n{tables}");
    }

    // The Buses table: last and planned round, budget, utilisation (over 100 % marked).
    assert!(
        !start_tag(&dom, "buses-panel").contains(" hidden"),
        "DOM:\n{dom}"
    );
    assert_eq!(
        bus_rows(&dom),
        pairs(&[
            (
                "rs485",
                "rs485rtu_over_tcp30905512.4 ms2250.0 ms5,000 ms110.2 % (over)"
            ),
            ("plc", "plctcp2412.5 ms–1,000 ms1.3 %"),
        ]),
        "DOM:\n{dom}"
    );
    assert!(
        dom.contains("class=\"num over\">110.2 % (over)"),
        "DOM:\n{dom}"
    );

    // The Boilers table: the shortest window's state, both efficiencies,
    // grade and reasons (the window's time is local to the browser).
    assert!(
        !start_tag(&dom, "boilers-panel").contains(" hidden"),
        "DOM:\n{dom}"
    );
    let b1 = boiler_row(&dom, "b1", "running");
    assert!(b1.starts_with("b1 (1# gas)S115m "), "{b1}");
    // 90.25 is exact in binary: JavaScript's toFixed rounds the tie up.
    assert!(
        b1.ends_with("running91.5 %90.3 %2estimated:q3_default, estimated:q5_rated"),
        "{b1}"
    );
    assert_eq!(boiler_row(&dom, "b2", "none"), "b2S2–no window yet––––");

    // The page refreshed by itself, and every API request carried the token.
    assert!(
        api.seen.summaries.load(Ordering::Relaxed) >= 2,
        "the page polled /api/summary {} times",
        api.seen.summaries.load(Ordering::Relaxed)
    );
    assert_eq!(api.seen.unauthorized.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn page_without_the_token_says_it_is_unauthorized() {
    let api = MockApi::start(Mode::Api {
        token: Some("s3cret"),
    });
    let dom = load(api.url("")).await;
    assert_eq!(
        text_of_id(&dom, "conn"),
        "unauthorized: this gateway needs a token; open the page as …/#token=YOUR_TOKEN"
    );
    assert_eq!(meter_rows(&dom), Vec::<(String, String)>::new());
    assert_eq!(api.seen.authorized.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn page_shows_connection_lost_when_the_api_does_not_answer() {
    let api = MockApi::start(Mode::ApiDead);
    let dom = load(api.url("")).await;
    let conn = text_of_id(&dom, "conn");
    assert!(
        conn.starts_with("connection lost: the gateway API does not answer"),
        "conn: {conn:?}"
    );
    assert!(dom.contains("id=\"conn\" class=\"lost\""), "DOM:\n{dom}");
    assert_eq!(meter_rows(&dom), Vec::<(String, String)>::new());
}

// ---------------------------------------------------------------------------
// The real gateway

fn site() -> Site {
    Site::new("B1", "browser test works")
        .meter(modbus("good", "water", "water_meter", "a", 1))
        .meter(modbus("broken", "water", "water_meter", "a", 2).level(2))
        .meter(modbus("silent", "water", "water_meter", "b", 1).level(2))
}

/// GET `url` as JSON; None while the API is not up (yet).
async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_str(&response.text().await.ok()?).ok()
}

/// The `state` of every meter in an `/api/meters` answer, by id.
fn states(meters: &Value) -> Vec<(String, String)> {
    meters
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or("").to_owned(),
                        m["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_gateway_page_shows_the_failing_meters_as_down() {
    let api_port = crate::support::free_port();
    let toml = GatewayToml::new("browser")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .section("api", &format!("listen = \"127.0.0.1:{api_port}\""))
        .endpoint("a", "timeout_ms = 300")
        .endpoint("b", "timeout_ms = 300")
        .site("b1.toml", site());
    // The simulator reads the same files the gateway will.
    let gw = TestGateway::prepare(&toml, SimOptions::default()).await;
    // One meter answers with Modbus exception 4, one never answers.
    gw.sim
        .set_fault(gw.meter("broken"), Some(SimFault::Exception));
    gw.sim
        .set_fault(gw.meter("silent"), Some(SimFault::NoResponse));

    // The real binary, as an operator runs it.
    let mut gateway = gw.spawn("emgate");

    // The page reads what the API says: wait until the API itself shows the
    // states, then the page must show the same.
    let expected = pairs(&[("good", "up"), ("broken", "down"), ("silent", "down")]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let meters_url = format!("http://127.0.0.1:{api_port}/api/meters");
    let last = RefCell::new(None);
    let what = lazy(|| {
        format!(
            "{meters_url} to show {expected:?}; last answer: {:#?}\ngateway log:\n{}",
            last.borrow(),
            gateway.log()
        )
    });
    wait_for(&what, Duration::from_secs(30), async || {
        let Some(meters) = get_json(&client, &meters_url).await else {
            return false;
        };
        let done = states(&meters) == expected;
        *last.borrow_mut() = Some(meters);
        done
    })
    .await;

    let dom = load(format!("http://127.0.0.1:{api_port}/")).await;
    gateway.terminate().await;
    gw.sim.stop();

    // Worst first: the two failing meters in configuration order, then the good one.
    assert_eq!(
        meter_rows(&dom),
        pairs(&[("broken", "down"), ("silent", "down"), ("good", "up")]),
        "DOM:\n{dom}"
    );
    assert_eq!(text_of_id(&dom, "conn"), "connected");
    let cards = text_of_id(&dom, "cards");
    assert!(
        cards.starts_with("browser test worksB1 · 3 meters1 up2 down0 bad"),
        "cards: {cards:?}"
    );
    // One Buses row per endpoint: tcp, its meters and requests (one read of
    // a water meter each), a measured round, no planned wire time, 1 s budget.
    let buses = bus_rows(&dom);
    let ids: Vec<&str> = buses.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "DOM:\n{dom}");
    for ((id, text), meters) in buses.iter().zip(["22", "11"]) {
        let rest = text
            .strip_prefix(&format!("{id}tcp{meters}"))
            .unwrap_or_else(|| panic!("bus {id}: {text:?}"));
        let (round, rest) = rest
            .split_once(" ms")
            .unwrap_or_else(|| panic!("bus {id}: no measured round in {text:?}"));
        assert!(
            round.parse::<f64>().is_ok_and(|r| r > 0.0),
            "bus {id}: {text:?}"
        );
        assert!(rest.starts_with("–1,000 ms"), "bus {id}: {text:?}");
        assert!(rest.ends_with(" %"), "bus {id}: {text:?}");
    }
}
