//! The `emgate` binary as a user runs it: `check-config` exit codes and
//! messages, and `demo` leaving line protocol under `./data/` on a machine
//! with nothing else running.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::config::{GatewayToml, Site, modbus};
use crate::support::wait_for;

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
        "config/emgate.toml: ok: 2 site(s), 15 meter(s), 3 endpoint(s), 0 MQTT broker(s), 10 profile(s) in use; output: file data/lines.lp"
    );
    // A meter without a counter converts nothing, and says so.
    assert!(
        stdout
            .lines()
            .any(|l| l
                == "  fz01-b1-flue (natural_gas level 3, consumed): no counter: adds to no total"),
        "{stdout}"
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
    // Readings, and the demo's 1-minute windows (its boilers' too) when the
    // run crossed a minute boundary.
    assert!(
        lines.iter().any(|l| l.starts_with("reading,energy=")),
        "readings written"
    );
    assert!(
        lines.iter().all(|l| [
            "reading,",
            "consumption,",
            "gauge_stats,",
            "site_consumption,",
            "boiler,",
            "entry,"
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
    // The gateway's lines, and the 8 production entries (4 enterprises,
    // this month and this year) entered at start through the entries module.
    let entries = lines.iter().filter(|l| l.starts_with("entry,")).count();
    assert_eq!(entries, 8, "{text}");
    assert!(stdout.contains("entries: 8 production entries"), "{stdout}");
    assert_eq!(
        lines.len(),
        written + entries,
        "file holds exactly the written lines"
    );
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

/// `emgate simulate` and `emgate run` as two processes, the way an operator
/// tries the example: `run` polls until SIGTERM, flushes, logs its final
/// counters and exits 0; the file holds exactly the readings it counted.
#[tokio::test]
async fn run_polls_until_sigterm_then_flushes_and_exits_0() {
    let files = GatewayToml::new("cli")
        .readings_only()
        .section("file_sink", "batch_size = 1\nflush_interval_ms = 100")
        .endpoint("ep", "")
        .site(
            "s.toml",
            Site::new("S1", "cli test")
                .meter(modbus("w1", "water", "water_meter", "ep", 1))
                .meter(modbus("e1", "electricity", "eastron_sdm630", "ep", 2).level(2)),
        )
        .write();
    // The file sink's default place.
    let out = files.data_dir().join("lines.lp");
    let mut sim = emgate()
        .args(["--log-level", "warn", "simulate", "--config"])
        .arg(files.main_file())
        .spawn()
        .expect("start simulate");
    let mut run = files.spawn("run");
    wait_for(
        "6 readings in the output file",
        Duration::from_secs(30),
        async || std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) >= 6,
    )
    .await;
    // SIGTERM; `terminate` checks the exit code 0.
    run.terminate().await;
    let term = Command::new("kill")
        .args(["-TERM", &sim.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    assert_eq!(sim.wait().expect("wait simulate").code(), Some(0));
    let starting = run.log_fields("starting");
    assert_eq!(starting["meters"], 2);
    assert_eq!(starting["output"], format!("file {}", out.display()));
    let stats = run.log_fields("final stats");
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

/// A hostile megabyte-long time zone is an ordinary error: exit 2, the
/// value quoted short, and no quadratic "did you mean" (it took 91 s for
/// 800 KB when the edit distance ran over the whole value).
#[test]
fn check_config_rejects_a_megabyte_time_zone_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = "A".repeat(1 << 20);
    std::fs::write(
        dir.path().join("emgate.toml"),
        format!(
            "[gateway]\nid = \"gw\"\ntimezone = \"{zone}\"\n\n[file_sink]\npath = \"out.lp\"\n"
        ),
    )
    .expect("write config");
    let started = std::time::Instant::now();
    let out = emgate()
        .args(["check-config", "--config"])
        .arg(dir.path().join("emgate.toml"))
        .output()
        .expect("run emgate");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
    assert!(
        stderr.contains("gateway.timezone: unknown time zone \"AAAA")
            && stderr.contains("…\"; use an IANA name such as \"Asia/Shanghai\""),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
    assert!(
        stderr.len() < 1000,
        "the value is quoted short: {} bytes",
        stderr.len()
    );
    assert!(
        took < std::time::Duration::from_secs(1),
        "check-config took {took:?}"
    );
}

/// A demo of 70 s closes at least one `1m` window and its site totals are
/// final 2 s later: the summary shows a non-zero electricity total for each
/// of the four enterprises (their incomers count finely enough), and a
/// target for each.
#[test]
fn demo_summary_shows_electricity_for_every_site() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = emgate()
        .args(["--log-level", "warn", "demo", "--seconds", "70"])
        .current_dir(dir.path())
        .output()
        .expect("run emgate demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for site in ["E3501020001", "E3505830002", "E3508020003", "E3501110004"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("site         {site}:")))
            .unwrap_or_else(|| panic!("no total for {site}: {stdout}"));
        let kwh: f64 = line
            .split("electricity ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("kWh in {line:?}"));
        assert!(kwh > 0.0, "{line}");
        assert!(
            stdout.lines().any(|l| l
                .trim_start()
                .starts_with(&format!("target       {site}: "))),
            "target for {site}: {stdout}"
        );
    }
    // The targets report at the end: the caps were sized at 130, 95, 70
    // and 35 % of each projection, so one site per level, worst first.
    let report = stdout
        .split("targets report (emgate report targets --archive)")
        .nth(1)
        .unwrap_or_else(|| panic!("no targets report: {stdout}"));
    for count in [
        "Red        1 site",
        "Orange     1 site",
        "Yellow     1 site",
        "Green      1 site",
    ] {
        assert!(report.contains(count), "{count:?} in {report}");
    }
    let order: Vec<&str> = report
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("E35"))
        .take(4)
        .collect();
    assert_eq!(
        order,
        ["E3501110004", "E3508020003", "E3505830002", "E3501020001"],
        "worst first: {report}"
    );
}
