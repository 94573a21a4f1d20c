//! Site-scoped API tokens on a real `emgate run` process with simulated
//! meters: two sites, the operator's token and a token for one site, given
//! through the environment. Every route with no token and a wrong one
//! (401), the site token on its own site (200, only its data) and on the
//! other (403 with its message, never an empty 200), the operator on all;
//! neither token appears anywhere in the gateway's log. Then the exact
//! configuration errors of `EMGATE__API__SITE_TOKENS` through
//! `emgate check-config`, and the key refused in the file.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use emgate::sim::SimOptions;
use serde_json::{Value, json};

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::test_gateway::TestGateway;
use crate::support::wait_for;

const OPERATOR: &str = "operator-0123456789abcdef";
const SITE_A: &str = "site-a-token-0123456789";

/// The main file: a file sink, the API on `port` (no token in the file;
/// `api_keys` more keys of `[api]`), endpoint `bus`, site `fz01` with
/// meter `fz_w1` and site `hs03` with meter `hs_w1`, both on the bus.
fn toml(port: u16, api_keys: &str) -> GatewayToml {
    GatewayToml::new("scoped")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .section("api", &format!("listen = \"127.0.0.1:{port}\"\n{api_keys}"))
        .endpoint("bus", "timeout_ms = 300")
        .site(
            "fz01.toml",
            Site::new("fz01", "Fuzhou mill").meter(modbus(
                "fz_w1",
                "water",
                "water_meter",
                "bus",
                1,
            )),
        )
        .site(
            "hs03.toml",
            Site::new("hs03", "Huangshi works").meter(modbus(
                "hs_w1",
                "water",
                "water_meter",
                "bus",
                2,
            )),
        )
}

/// `emgate run` with the tokens in its environment; killed when dropped.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints the end of the gateway's log when the test fails.
struct LogDump(std::path::PathBuf);
impl Drop for LogDump {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "LOG:\n{}",
                std::fs::read_to_string(&self.0)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// A request with `token` (none: no header): status and JSON body (or the
/// text as a JSON string when it is not JSON).
async fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut req = if method == "POST" {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body.unwrap_or("").to_owned())
    } else {
        client.get(url)
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The `key` of every element of a JSON list, in order.
fn ids(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| m[key].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn forbidden(message: &str) -> (u16, Value) {
    (403, json!({ "error": message }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_token_reads_only_its_site_everywhere() {
    let port = crate::support::free_port();
    let gw = TestGateway::prepare(&toml(port, ""), SimOptions::default()).await;
    let log_path = gw.files.path().join("emgate.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let _log_guard = LogDump(log_path.clone());
    let _run = Run(Command::new(env!("CARGO_BIN_EXE_emgate"))
        .args(["--log-format", "json", "--log-level", "debug", "run"])
        .args(["--stats-interval", "0", "--config"])
        .arg(gw.files.main_file())
        .env("EMGATE__API__TOKEN", OPERATOR)
        .env("EMGATE__API__SITE_TOKENS", format!(" fz01 = {SITE_A} "))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start emgate run"));
    let base = format!("http://127.0.0.1:{port}");
    // Both meters polled at least once: the lists below are not empty by chance.
    wait_for(
        "both meters polled (operator's /api/meters)",
        Duration::from_secs(30),
        async || {
            let Ok(resp) = reqwest::Client::new()
                .get(format!("{base}/api/meters"))
                .bearer_auth(OPERATOR)
                .send()
                .await
            else {
                return false;
            };
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|m| m["last_slot"].is_i64()))
        },
    )
    .await;

    let entry = |site: &str| {
        format!(
            r#"{{"site": "{site}", "item": "output_t", "period": "2025-11", "value": 12.5, "unit": "t"}}"#
        )
    };
    let entry_a = entry("fz01");
    let entry_b = entry("hs03");
    // Every protected route: no token and a wrong token are 401.
    let routes: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/ready", None),
        ("GET", "/metrics", None),
        ("GET", "/api/meters", None),
        ("GET", "/api/meters/fz_w1", None),
        ("GET", "/api/sites", None),
        ("GET", "/api/summary", None),
        ("GET", "/api/boilers", None),
        ("GET", "/api/endpoints", None),
        ("POST", "/api/reload", None),
        ("POST", "/api/entries", Some(&entry_a)),
    ];
    for (method, path, body) in routes {
        let url = format!("{base}{path}");
        assert_eq!(
            call(method, &url, None, *body).await,
            (
                401,
                json!({"error": "missing bearer token (Authorization: Bearer <token>)"})
            ),
            "{method} {path}"
        );
        for wrong in ["wrong", &SITE_A[..SITE_A.len() - 1], &format!("{SITE_A}x")] {
            assert_eq!(
                call(method, &url, Some(wrong), *body).await,
                (401, json!({"error": "invalid bearer token"})),
                "{method} {path} with a wrong token"
            );
        }
    }

    let get = |path: &str, token: &'static str| {
        let url = format!("{base}{path}");
        async move { call("GET", &url, Some(token), None).await }
    };
    // The site token, its own site: 200 with only its data.
    let (s, meters) = get("/api/meters", SITE_A).await;
    assert_eq!((s, ids(&meters, "id")), (200, vec!["fz_w1".to_owned()]));
    assert_eq!(ids(&meters, "site"), ["fz01"]);
    let (s, meters) = get("/api/meters?site=fz01", SITE_A).await;
    assert_eq!((s, ids(&meters, "id")), (200, vec!["fz_w1".to_owned()]));
    let (s, meter) = get("/api/meters/fz_w1", SITE_A).await;
    assert_eq!(
        (s, meter["id"].clone(), meter["site"].clone()),
        (200, json!("fz_w1"), json!("fz01"))
    );
    let (s, sites) = get("/api/sites", SITE_A).await;
    assert_eq!((s, ids(&sites, "id")), (200, vec!["fz01".to_owned()]));
    let (s, sites) = get("/api/sites?site=fz01", SITE_A).await;
    assert_eq!((s, ids(&sites, "id")), (200, vec!["fz01".to_owned()]));
    let (s, summary) = get("/api/summary", SITE_A).await;
    assert_eq!(s, 200);
    assert_eq!(summary["meters"], 1, "{summary}");
    let (s, boilers) = get("/api/boilers", SITE_A).await;
    assert_eq!((s, boilers), (200, json!([])));
    let (s, ready) = get("/ready", SITE_A).await;
    assert_eq!((s, ready["ready"].clone()), (200, json!(true)));
    let (s, stored) = call(
        "POST",
        &format!("{base}/api/entries"),
        Some(SITE_A),
        Some(&entry_a),
    )
    .await;
    assert_eq!(
        (s, stored["site"].clone()),
        (201, json!("fz01")),
        "{stored}"
    );

    // The site token, the other site: 403, never an empty 200.
    let other_site = "this token may not read site \"hs03\"";
    for path in [
        "/api/meters?site=hs03",
        "/api/meters?site=fz01,hs03",
        "/api/sites?site=hs03",
        "/api/summary?site=hs03",
        "/api/boilers?site=hs03",
    ] {
        assert_eq!(get(path, SITE_A).await, forbidden(other_site), "{path}");
    }
    // Every report kind, naming the other site: 403 before any database is read.
    for kind in [
        "consumption",
        "targets",
        "completeness",
        "consistency",
        "verification",
    ] {
        // A site that does not exist looks the same as another's.
        let unknown = "this token may not read site \"nope\"";
        let path = format!("/api/reports/{kind}?site=nope");
        assert_eq!(get(&path, SITE_A).await, forbidden(unknown), "{path}");
        for q in ["site=hs03", "site=fz01,hs03"] {
            let path = format!("/api/reports/{kind}?{q}");
            assert_eq!(get(&path, SITE_A).await, forbidden(other_site), "{path}");
        }
    }
    // A report without `site`: only the token's own sites (the register
    // of verified meters reads the configuration alone).
    let (s, register) = get("/api/reports/verification", SITE_A).await;
    assert_eq!(s, 200, "{register}");
    let meters: Vec<&str> = register["meters"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["meter"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(meters, ["fz_w1"], "{register}");
    let (s, register) = get("/api/reports/verification", OPERATOR).await;
    let meters: Vec<&str> = register["meters"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["meter"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!((s, meters), (200, vec!["fz_w1", "hs_w1"]), "{register}");
    // Another site's meter and a meter that does not exist look the same.
    for id in ["hs_w1", "nope"] {
        assert_eq!(
            get(&format!("/api/meters/{id}"), SITE_A).await,
            forbidden(&format!(
                "this token may not read meter \"{id}\"; it reads the meters of fz01"
            )),
        );
    }
    assert_eq!(
        call(
            "POST",
            &format!("{base}/api/entries"),
            Some(SITE_A),
            Some(&entry_b)
        )
        .await,
        forbidden("this token may not enter data for site \"hs03\"; it enters data for fz01")
    );
    // Operator-only routes.
    assert_eq!(
        get("/metrics", SITE_A).await,
        forbidden("/metrics is for the operator's token only; a site token reads its own sites")
    );
    assert_eq!(
        get("/api/endpoints", SITE_A).await,
        forbidden(
            "/api/endpoints (buses are shared by sites) is for the operator's token only; a site token reads its own sites"
        )
    );
    assert_eq!(
        call("POST", &format!("{base}/api/reload"), Some(SITE_A), None).await,
        forbidden("/api/reload is for the operator's token only; a site token reads its own sites")
    );

    // The operator: everything.
    let (s, meters) = get("/api/meters", OPERATOR).await;
    assert_eq!(
        (s, ids(&meters, "id")),
        (200, vec!["fz_w1".to_owned(), "hs_w1".to_owned()])
    );
    let (s, meters) = get("/api/meters?site=hs03", OPERATOR).await;
    assert_eq!((s, ids(&meters, "id")), (200, vec!["hs_w1".to_owned()]));
    assert_eq!(get("/api/meters/hs_w1", OPERATOR).await.0, 200);
    assert_eq!(
        get("/api/meters/nope", OPERATOR).await,
        (404, json!({"error": "no meter \"nope\""}))
    );
    let (s, sites) = get("/api/sites", OPERATOR).await;
    assert_eq!(
        (s, ids(&sites, "id")),
        (200, vec!["fz01".to_owned(), "hs03".to_owned()])
    );
    assert_eq!(
        get("/api/sites?site=zz", OPERATOR).await,
        (404, json!({"error": "no site \"zz\""}))
    );
    let (s, summary) = get("/api/summary", OPERATOR).await;
    assert_eq!((s, summary["meters"].clone()), (200, json!(2)));
    assert_eq!(get("/api/boilers", OPERATOR).await, (200, json!([])));
    let (s, buses) = get("/api/endpoints", OPERATOR).await;
    assert_eq!((s, ids(&buses, "id")), (200, vec!["bus".to_owned()]));
    let (s, metrics) = get("/metrics", OPERATOR).await;
    assert_eq!(s, 200);
    let text = metrics.as_str().unwrap_or_default();
    assert!(text.contains("hs_w1") && text.contains("fz_w1"), "{text}");
    assert_eq!(get("/ready", OPERATOR).await.0, 200);
    let (s, reloaded) = call("POST", &format!("{base}/api/reload"), Some(OPERATOR), None).await;
    assert_eq!(
        (s, reloaded["ok"].clone()),
        (200, json!(true)),
        "{reloaded}"
    );
    let (s, stored) = call(
        "POST",
        &format!("{base}/api/entries"),
        Some(OPERATOR),
        Some(&entry_b),
    )
    .await;
    assert_eq!(
        (s, stored["site"].clone()),
        (201, json!("hs03")),
        "{stored}"
    );

    // Neither token was ever logged, whatever the level.
    let logged = std::fs::read_to_string(&log_path).expect("log");
    assert!(logged.contains("HTTP API listening"), "{logged}");
    assert!(logged.contains("\"site_tokens\":1"), "{logged}");
    for secret in [OPERATOR, SITE_A] {
        assert!(!logged.contains(secret), "a token is in the log:\n{logged}");
    }
}

/// `emgate check-config` with `env`: exit code and stderr.
fn check_config(main: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emgate"))
        .args(["check-config", "--config"])
        .arg(main)
        .env_remove("EMGATE__API__TOKEN")
        .env_remove("EMGATE__API__SITE_TOKENS")
        .envs(env.iter().copied())
        .output()
        .expect("run emgate check-config");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_site_tokens_are_refused_with_their_message_and_never_echoed() {
    let files = toml(crate::support::free_port(), "").write();
    let main = files.main_file();
    let op = ("EMGATE__API__TOKEN", OPERATOR);
    let (code, err) = check_config(
        &main,
        &[
            op,
            (
                "EMGATE__API__SITE_TOKENS",
                &format!("fz01,zz={SITE_A};hs03={SITE_A};hs03=tiny1"),
            ),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    let var = "(set by EMGATE__API__SITE_TOKENS)";
    for line in [
        format!(
            "<env>: api.site_tokens: entry 2 of 3 (hs03): the same token as entry 1; give each entry its own token (list several sites in one entry instead) {var}"
        ),
        format!(
            "<env>: api.site_tokens: entry 3 of 3 (hs03): the token is too short; use at least 16 characters (e.g. `openssl rand -hex 16`) {var}"
        ),
    ] {
        assert!(err.contains(&line), "{line}\nnot in:\n{err}");
    }
    assert!(!err.contains(SITE_A) && !err.contains("tiny1"), "{err}");
    // Unknown sites are known only once the site files are read.
    let (code, err) = check_config(
        &main,
        &[
            op,
            ("EMGATE__API__SITE_TOKENS", &format!("fz01,zz={SITE_A}")),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "<env>: api.site_tokens: entry 1 of 1: unknown site \"zz\"; known: fz01, hs03 {var}"
        )),
        "{err}"
    );
    let (code, err) = check_config(
        &main,
        &[("EMGATE__API__SITE_TOKENS", &format!("fz01={OPERATOR}"))],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("site tokens need an operator token too (EMGATE__API__TOKEN)"),
        "{err}"
    );
    let (code, err) = check_config(
        &main,
        &[
            op,
            ("EMGATE__API__SITE_TOKENS", &format!("fz01={OPERATOR}")),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("entry 1 of 1 (fz01): the token is the operator's [api] token; give each site token its own value"), "{err}");
    assert!(!err.contains(OPERATOR), "{err}");
    let (code, err) = check_config(
        &main,
        &[op, ("EMGATE__API__SITE_TOKENS", &format!("fz01={SITE_A}"))],
    );
    assert_eq!(code, Some(0), "{err}");

    // In the file: refused, pointing at the environment.
    let in_file = toml(
        crate::support::free_port(),
        &format!("site_tokens = \"fz01={SITE_A}\""),
    )
    .write();
    let (code, err) = check_config(&in_file.main_file(), &[op]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("api: site_tokens is in the file; site tokens are secrets handed to other parties: remove the key and give them only through the environment as EMGATE__API__SITE_TOKENS"),
        "{err}"
    );
}
