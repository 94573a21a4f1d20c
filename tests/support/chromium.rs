//! Headless Chromium for the status-page tests: loads a URL, lets the page's
//! JavaScript run, and returns the resulting DOM as HTML text.
//!
//! Uses the system Chromium (Debian package `chromium`), never a downloaded
//! browser. `--dump-dom` with a virtual time budget is enough: virtual time
//! runs the page's 2 s refresh timers without waiting in real time, and
//! pauses while requests are in flight, so several refreshes complete within
//! one call.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Virtual milliseconds the page's scripts get before the DOM is dumped
/// (four refresh rounds of the status page).
const VIRTUAL_TIME_BUDGET_MS: u32 = 8000;

/// Real time after which a Chromium that never finishes is killed.
const WALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Path of the system Chromium (`chromium` or `chromium-browser`), or a panic
/// that tells how to install it.
pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path).chain(
            ["/usr/bin", "/usr/local/bin"]
                .into_iter()
                .map(PathBuf::from),
        );
        for dir in dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "headless browser `chromium` not found on PATH; install it with \
         `apt-get install chromium` (scripts/test installs it); \
         the browser tests never download a browser"
    );
}

/// Loads `url` in headless Chromium and returns the DOM after the page's
/// scripts ran for the virtual time budget. Blocking: call it from
/// `tokio::task::spawn_blocking` in async tests.
pub fn dump_dom(url: &str) -> String {
    let browser = chromium();
    // A profile of its own: parallel tests never share Chromium's lock files,
    // and nothing is written to $HOME.
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let child = Command::new(&browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));

    let (status, dom, stderr) = finish(child, url);
    assert!(
        status.success() && dom.contains("<html"),
        "chromium --dump-dom {url} failed ({status}); stdout:\n{dom}\nstderr:\n{stderr}"
    );
    dom
}

/// Waits for a Chromium started with piped stdout and stderr (read on
/// threads, so a chatty stderr cannot block it): its exit status, stdout
/// and stderr. Kills it and panics after [`WALL_TIMEOUT`] (`what` says
/// what it was doing).
pub fn finish(mut child: Child, what: &str) -> (ExitStatus, String, String) {
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WALL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {what} within {} s; stderr:\n{}",
                WALL_TIMEOUT.as_secs(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Every `<tr>` of `dom` that has a `data-meter` attribute, as
/// `(meter, state)` in document order (`state` is "" when absent).
pub fn meter_rows(dom: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<tr ") {
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        let tag = &rest[start..tag_end];
        if let Some(meter) = attribute(tag, "data-meter") {
            rows.push((meter, attribute(tag, "data-state").unwrap_or_default()));
        }
        rest = &rest[tag_end..];
    }
    rows
}

/// The value of `name="..."` in one serialized start tag, entities decoded
/// (Chromium always serializes attributes with double quotes).
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(
        tag[start..start + len]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The text content of the element with `id` (tags stripped, entities for
/// `&`, `<`, `>` decoded), or a panic showing the DOM.
pub fn text_of_id(dom: &str, id: &str) -> String {
    let key = format!(" id=\"{id}\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("no element with id {id:?} in DOM:\n{dom}"));
    let open = dom[..at].rfind('<').expect("start tag");
    let name_end = dom[open + 1..]
        .find(|c: char| c.is_ascii_whitespace())
        .map_or(dom.len(), |e| open + 1 + e);
    let name = &dom[open + 1..name_end];
    let body_start = dom[at..].find('>').expect("tag end") + at + 1;
    // Same-name elements nest rarely on this page; count them to find the end.
    let (open_tag, close_tag) = (format!("<{name}"), format!("</{name}>"));
    let mut depth = 1;
    let mut i = body_start;
    let body_end = loop {
        let next_close = dom[i..]
            .find(&close_tag)
            .unwrap_or_else(|| panic!("unclosed <{name} id={id:?}>"))
            + i;
        if let Some(o) = dom[i..next_close].find(&open_tag) {
            depth += 1;
            i += o + open_tag.len();
        } else {
            depth -= 1;
            if depth == 0 {
                break next_close;
            }
            i = next_close + close_tag.len();
        }
    };
    strip_tags(&dom[body_start..body_end])
}

/// Text of an HTML fragment: tags removed, common entities decoded.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
