//! What the HTML report tests need around Chromium: a recording proxy,
//! one Chromium run with its console, and a PNG decoder (to look at the
//! screenshots' pixels without an image crate).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::chromium::{chromium, finish};

// ---------------------------------------------------------------------------
// Chromium behind a recording proxy

/// An HTTP proxy on a free loopback port that records the first line of
/// every request (`GET http://host/…`, `CONNECT host:443`) and answers 502.
pub struct Proxy {
    /// Its loopback port.
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (seen2, closed2) = (Arc::clone(&seen), Arc::clone(&closed));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if closed2.load(Ordering::Relaxed) {
                    return;
                }
                let seen = Arc::clone(&seen2);
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut line = String::new();
                    let mut reader = BufReader::new(&stream);
                    let _ = reader.read_line(&mut line);
                    seen.lock()
                        .expect("proxy log")
                        .push(line.trim_end().to_owned());
                    let _ = (&stream).write_all(
                        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Proxy { port, seen, closed }
    }

    /// The requests that did not come from Chromium's own services
    /// (`*.google.com`, `*.googleapis.com`, `*.gvt1.com`: its updater,
    /// network time and account checks, made whatever page is open).
    pub fn page_requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("proxy log")
            .iter()
            .filter(|line| {
                let target = line.split_whitespace().nth(1).unwrap_or("");
                let host = target
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .split(['/', ':'])
                    .next()
                    .unwrap_or("");
                !["google.com", "googleapis.com", "gvt1.com"]
                    .iter()
                    .any(|own| host == *own || host.ends_with(&format!(".{own}")))
            })
            .cloned()
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// What one Chromium run left.
pub struct Run {
    /// Chromium's standard output (the DOM for `--dump-dom`).
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Chromium's console lines reporting a Content-Security-Policy violation.
    pub fn csp_violations(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains("Content Security Policy"))
            .collect()
    }
}

/// Runs headless Chromium on `file` with `args`, every request through
/// `proxy`, the console logged to stderr. Panics on failure or when it
/// does not finish in time ([`finish`]).
pub fn run_chromium(proxy: &Proxy, file: &Path, args: &[String]) -> Run {
    let browser = chromium();
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let url = format!("file://{}", file.display());
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
            "--disable-component-update",
            "--disable-sync",
            "--no-pings",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            // Loopback too: every request of any kind reaches the proxy.
            "--proxy-bypass-list=<-loopback>",
        ])
        .arg(format!("--proxy-server=http://127.0.0.1:{}", proxy.port))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let (status, stdout, stderr) = finish(child, &format!("{args:?} {url}"));
    let run = Run { stdout, stderr };
    assert!(
        status.success(),
        "chromium {args:?} {url} failed ({status}); stderr:\n{}",
        run.stderr
    );
    run
}

// ---------------------------------------------------------------------------
// PNG, decoded by hand (8-bit RGB or RGBA, not interlaced: what Chromium writes)

pub struct Image {
    pub width: usize,
    pub height: usize,
    /// RGB of each pixel, row by row.
    pub pixels: Vec<[u8; 3]>,
}

pub fn decode_png(bytes: &[u8]) -> Image {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (mut at, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0, 0, 0);
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other}"),
                };
                assert_eq!(data[12], 0, "interlaced PNG");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .expect("inflate PNG");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "PNG data size");
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, src) = (line[0], &line[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => u16::midpoint(u16::from(a), u16::from(b)) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("PNG filter {other}"),
            };
            cur[i] = src[i].wrapping_add(predictor);
        }
        pixels.extend(cur.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    Image {
        width,
        height,
        pixels,
    }
}

impl Image {
    /// Pixels that are not (near) white.
    pub fn ink(&self) -> usize {
        self.pixels
            .iter()
            .filter(|p| p.iter().any(|&c| c < 235))
            .count()
    }

    /// Pixels of exactly this colour (`#rrggbb`).
    pub fn count(&self, hex: &str) -> usize {
        let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex colour");
        let rgb = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        self.pixels.iter().filter(|p| **p == rgb).count()
    }
}
