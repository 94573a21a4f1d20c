//! The `emgate` binary as a user runs it: `check-config` exit codes and
//! messages, and `demo` leaving line protocol under `./data/` on a machine
//! with nothing else running.

use std::path::Path;
use std::process::Command;

fn emgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emgate"))
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let out = emgate()
        .args(["check-config", "--config", "config/emgate.toml"])
        .output()
        .expect("run emgate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next().unwrap_or_default(),
        "config/emgate.toml: ok: 2 site(s), 11 meter(s), 2 endpoint(s), 0 MQTT broker(s), 8 profile(s) in use; output: file data/lines.lp"
    );
}

#[test]
fn check_config_names_every_error_and_exits_2() {
    let out = emgate()
        .args([
            "check-config",
            "--config",
            "tests/fixtures/config/bad/emgate.toml",
        ])
        .output()
        .expect("run emgate");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "tests/fixtures/config/bad/sites/a.toml: meters[0].poll_intervl_secs: unknown key; did you mean \"poll_interval_secs\"?",
            "tests/fixtures/config/bad/sites/b.toml: meters[0].id: duplicate meter id \"m1\"; already used at tests/fixtures/config/bad/sites/a.toml: meters[0].id",
            "tests/fixtures/config/bad/sites/b.toml: meters[1].profile: unknown profile \"sdm360\"; known: acrel_like, simple",
            "tests/fixtures/config/bad/profiles/acrel_like.toml: points[1].address: 70000 is beyond 65535",
            "4 errors found",
        ]
    );
}

#[test]
fn check_config_reports_a_missing_file_with_exit_2() {
    let out = emgate()
        .args(["check-config", "--config", "no/such/emgate.toml"])
        .output()
        .expect("run emgate");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("no/such/emgate.toml: "), "{stderr}");
}

/// The demo on its own: no InfluxDB, so line protocol lands in ./data/demo.lp
/// of the working directory; every line is a `reading` of a demo meter, and
/// the count matches what the summary printed.
#[test]
fn demo_writes_line_protocol_to_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = emgate()
        .args(["--log-level", "warn", "demo", "--seconds", "3"])
        .current_dir(dir.path())
        .output()
        .expect("run emgate demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("no InfluxDB given (--influx-url): writing line protocol to data/demo.lp"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[   1s] Modbus meters up"),
        "live progress: {stdout}"
    );
    let file = dir.path().join(Path::new("data/demo.lp"));
    let text = std::fs::read_to_string(&file).expect("data/demo.lp");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    // Readings, and the demo's 1-minute windows when the run crossed a
    // minute boundary.
    assert!(
        lines.iter().any(|l| l.starts_with("reading,energy=")),
        "readings written"
    );
    assert!(
        lines.iter().all(|l| [
            "reading,",
            "consumption,",
            "gauge_stats,",
            "site_consumption,"
        ]
        .iter()
        .any(|m| l.starts_with(m))),
        "only the documented measurements: {text}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("output "))
        .expect("summary line");
    let written: usize = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("count in {summary:?}"));
    assert_eq!(lines.len(), written, "file holds exactly the written lines");
    // The sentinel fault shows as flagged readings of that meter, without values.
    let sentinel: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("meter=tx-e-comp,"))
        .collect();
    assert!(!sentinel.is_empty());
    assert!(
        sentinel
            .iter()
            .all(|l| l.contains(" q=128i,") && !l.contains("import_kwh="))
    );
}

/// Finds `"fields": {"message": msg, ...}` in JSON log lines.
fn json_log_fields(stderr: &str, message: &str) -> serde_json::Value {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
        .map_or_else(
            || panic!("no {message:?} log line in:\n{stderr}"),
            |v| v["fields"].clone(),
        )
}

/// `emgate simulate` and `emgate run` as two processes, the way an operator
/// tries the example: `run` polls until SIGTERM, flushes, logs its final
/// counters and exits 0; the file holds exactly the readings it counted.
#[test]
fn run_polls_until_sigterm_then_flushes_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
    let out = dir.path().join("out.lp");
    std::fs::create_dir(dir.path().join("sites")).expect("sites dir");
    std::fs::write(
        dir.path().join("emgate.toml"),
        format!(
            "[aggregation]\nwindows = []\n\n[gateway]\nid = \"cli\"\ndata_dir = {:?}\nprofiles_dir = {:?}\n\n[file_sink]\npath = {:?}\nbatch_size = 1\nflush_interval_ms = 100\n\n\
             [[endpoints]]\nid = \"ep\"\nhost = \"127.0.0.1\"\nport = {port}\n",
            dir.path().join("data").display().to_string(),
            profiles.display().to_string(),
            out.display().to_string()
        ),
    )
    .expect("main file");
    std::fs::write(
        dir.path().join("sites/s.toml"),
        "[site]\nid = \"S1\"\nname = \"cli test\"\n\n\
         [[meters]]\nid = \"w1\"\nenergy = \"water\"\nlevel = 1\nprofile = \"water_meter\"\nendpoint = \"ep\"\nunit_id = 1\npoll_interval_secs = 1\n\n\
         [[meters]]\nid = \"e1\"\nenergy = \"electricity\"\nlevel = 2\nprofile = \"eastron_sdm630\"\nendpoint = \"ep\"\nunit_id = 2\npoll_interval_secs = 1\n",
    )
    .expect("site file");
    let config = dir.path().join("emgate.toml");
    let mut sim = emgate()
        .args(["--log-level", "warn", "simulate", "--config"])
        .arg(&config)
        .spawn()
        .expect("start simulate");
    let run = emgate()
        .args([
            "--log-format",
            "json",
            "run",
            "--stats-interval",
            "0",
            "--config",
        ])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&out).map_or(0, |t| t.lines().count());
        if lines >= 6 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no readings after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let term = |pid: u32| {
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM")
    };
    assert!(term(run.id()).success());
    let output = run.wait_with_output().expect("wait run");
    assert!(term(sim.id()).success());
    assert_eq!(sim.wait().expect("wait simulate").code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let starting = json_log_fields(&stderr, "starting");
    assert_eq!(starting["meters"], 2);
    assert_eq!(starting["output"], format!("file {}", out.display()));
    let stats = json_log_fields(&stderr, "final stats");
    let text = std::fs::read_to_string(&out).expect("output file");
    let lines = text.lines().count() as u64;
    assert_eq!(
        stats["readings"].as_u64(),
        Some(lines),
        "every reading flushed before exit"
    );
    assert_eq!(stats["lines_written"].as_u64(), Some(lines));
    assert!(
        text.lines()
            .all(|l| l.contains(" q=0i") || l.contains(",q=0i")),
        "{text}"
    );
}
