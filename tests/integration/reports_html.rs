//! The HTML reports (`emgate::reports::html`) in a real browser: headless
//! system Chromium loads each report kind from a file, and the tests check
//! what a reader gets.
//!
//! One hand-written [`Document`] per kind, shaped like what that report
//! carries (targets: sites red, orange, yellow and green, one named with
//! `<script>` and `&`; completeness: a day at 89 %; consistency: a month
//! 6 % off; verification: meters overdue, due soon and unfiled; consumption:
//! an empty table). For each:
//! - the HTML holds no URL of any kind and renders to the same bytes twice;
//! - `--dump-dom`: every section is there with exactly its text (the title,
//!   subtitle, facts, each table's headings and rows with their status word,
//!   each chart's SVG with one bar per value, notes, the footer), and the
//!   user text came through as text, never as markup;
//! - nothing leaves: Chromium runs behind a proxy of ours that records every
//!   request; apart from Chromium's own Google services (its updater and
//!   account checks, which run whatever the page), nothing may arrive, and
//!   Chromium's console must report no Content-Security-Policy violation.
//!   A canary page with external images shows both detectors work;
//! - `--screenshot` at 1240 × 1754 (A4 at 150 dpi): the PNG, decoded here,
//!   is not blank, and for `targets` shows the four level colours;
//! - `--print-to-pdf` of `targets`: a PDF with at least one page.

use std::path::Path;

use emgate::reports::html::{self, GENERATOR};
use emgate::reports::{Bar, Block, Chart, Column, Document, Mark, ReportKind, Row, Table};

use crate::support::chromium::{strip_tags, text_of_id};

mod harness;
mod real;

use harness::{Image, Proxy, decode_png, run_chromium};

/// The viewport of the screenshots: A4 at 150 dpi.
const WINDOW: &str = "--window-size=1240,1754";

/// The site name that must come through as text.
const EVIL: &str = "<script>alert('x')</script> & Söhne \"AG\"";

// ---------------------------------------------------------------------------
// The documents, one per kind

fn col(name: &str) -> Column {
    Column {
        name: name.to_owned(),
        numeric: false,
    }
}

fn num(name: &str) -> Column {
    Column {
        name: name.to_owned(),
        numeric: true,
    }
}

fn row(mark: Mark, cells: &[&str]) -> Row {
    Row {
        cells: cells.iter().map(|c| (*c).to_owned()).collect(),
        mark,
    }
}

fn table(title: &str, columns: Vec<Column>, rows: Vec<Row>) -> Block {
    Block::Table(Table {
        title: title.to_owned(),
        columns,
        rows,
    })
}

fn chart(
    title: &str,
    unit: &str,
    bars: &[(&str, f64, Mark)],
    reference: Option<(&str, f64)>,
) -> Block {
    Block::Chart(Chart {
        title: title.to_owned(),
        unit: unit.to_owned(),
        bars: bars
            .iter()
            .map(|&(label, value, mark)| Bar {
                label: label.to_owned(),
                value,
                mark,
            })
            .collect(),
        reference: reference.map(|(l, v)| (l.to_owned(), v)),
    })
}

fn facts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(l, v)| ((*l).to_owned(), (*v).to_owned()))
        .collect()
}

const MADE: &str = "made 2026-04-01 08:00 +08:00 by gateway gw-a from database emgate";

fn consumption() -> Document {
    Document {
        kind: ReportKind::Consumption,
        title: "Energy consumption, March 2026".into(),
        subtitle: format!("sites FZ01, FZ02 · 2026-03-01 to 2026-03-31 · {MADE}"),
        facts: facts(&[
            ("Sites", "2"),
            ("Comprehensive consumption", "1,234.6 tce"),
            ("Coverage", "99.2 %"),
        ]),
        blocks: vec![
            table(
                "Per site and energy type",
                vec![
                    col("site"),
                    col("energy"),
                    num("amount"),
                    col("unit"),
                    num("standard coal (tce)"),
                    num("coverage (%)"),
                ],
                vec![
                    row(
                        Mark::None,
                        &["FZ01", "electricity", "4,521,000", "kWh", "555.6", "99.8"],
                    ),
                    row(
                        Mark::None,
                        &["FZ01", "natural gas", "312,400", "m³", "415.5", "99.5"],
                    ),
                    row(
                        Mark::None,
                        &["FZ02", "electricity", "2,150,000", "kWh", "264.2", "98.1"],
                    ),
                    row(Mark::None, &["FZ02", "water", "18,200", "t", "", "97.9"]),
                ],
            ),
            chart(
                "Standard coal per site and energy type",
                "tce",
                &[
                    ("FZ01 electricity", 555.6, Mark::None),
                    ("FZ01 natural gas", 415.5, Mark::None),
                    ("FZ02 electricity", 264.2, Mark::None),
                ],
                None,
            ),
            table(
                "Estimated windows",
                vec![col("site"), col("meter"), col("day"), num("estimated (%)")],
                vec![],
            ),
            Block::Note(
                "Standard coal: amount × the site's coefficient (kgce per unit) ÷ 1 000.\n\
                 Water carries no standard coal."
                    .into(),
            ),
        ],
    }
}

fn targets() -> Document {
    Document {
        kind: ReportKind::Targets,
        title: "Energy-saving targets 2026".into(),
        subtitle: format!("4 sites · year to date 2026-01-01 to 2026-03-31 · {MADE}"),
        facts: facts(&[
            ("Red", "1 site"),
            ("Orange", "1 site"),
            ("Yellow", "1 site"),
            ("Green", "1 site"),
        ]),
        blocks: vec![
            table(
                "Sites, worst first",
                vec![
                    col("site"),
                    num("controlled YTD (tce)"),
                    num("cap (tce)"),
                    num("projection (tce)"),
                    num("projection / cap (%)"),
                    num("intensity (kgce/t)"),
                    num("intensity target (kgce/t)"),
                    num("five-year progress (%)"),
                ],
                vec![
                    row(Mark::Red, &[EVIL, "3,082.2", "10,000", "12,500.0", "125.0", "412.0", "398.0", "12.0"]),
                    row(Mark::Orange, &["郑州铝业 Works", "2,835.6", "10,000", "11,500.0", "115.0", "401.0", "398.0", "38.0"]),
                    row(Mark::Yellow, &["FZ03", "2,589.0", "10,000", "10,500.0", "105.0", "395.0", "398.0", "55.0"]),
                    row(Mark::Green, &["FZ04", "1,972.6", "10,000", "8,000.0", "80.0", "380.0", "398.0", "70.0"]),
                ],
            ),
            chart(
                "Projection to year end against the cap",
                "% of cap",
                &[
                    (EVIL, 125.0, Mark::Red),
                    ("郑州铝业 Works", 115.0, Mark::Orange),
                    ("FZ03", 105.0, Mark::Yellow),
                    ("FZ04", 80.0, Mark::Green),
                ],
                Some(("cap", 100.0)),
            ),
            Block::Note(
                "Projection = controlled tce year to date × days in year ÷ days elapsed (90 of 365).\n\
                 Levels: exceeded by 20 % or more red, 10–20 % orange, up to 10 % yellow, within the cap green."
                    .into(),
            ),
        ],
    }
}

fn completeness() -> Document {
    Document {
        kind: ReportKind::Completeness,
        title: "Data completeness, March 2026".into(),
        subtitle: format!("sites FZ01, FZ02 · level-1 meters · 2026-03-13 to 2026-03-15 · {MADE}"),
        facts: facts(&[("Days checked", "6"), ("Days failing ≥ 90 %", "1")]),
        blocks: vec![
            table(
                "Per site and day",
                vec![
                    col("site"),
                    col("day"),
                    num("present"),
                    num("required"),
                    num("complete (%)"),
                ],
                vec![
                    row(Mark::Green, &["FZ01", "2026-03-13", "192", "192", "100.0"]),
                    row(Mark::Green, &["FZ01", "2026-03-14", "175", "192", "91.1"]),
                    row(Mark::Green, &["FZ01", "2026-03-15", "192", "192", "100.0"]),
                    row(Mark::Green, &["FZ02", "2026-03-13", "96", "96", "100.0"]),
                    row(Mark::Red, &["FZ02", "2026-03-14", "85", "96", "88.5"]),
                    row(Mark::Green, &["FZ02", "2026-03-15", "96", "96", "100.0"]),
                ],
            ),
            chart(
                "Completeness per site and day",
                "%",
                &[
                    ("FZ01 2026-03-14", 91.1, Mark::Green),
                    ("FZ02 2026-03-14", 88.5, Mark::Red),
                ],
                Some(("rule", 90.0)),
            ),
            table(
                "Days that fail the ≥ 90 % rule",
                vec![col("site"), col("day"), num("missing values")],
                vec![row(Mark::Red, &["FZ02", "2026-03-14", "11"])],
            ),
        ],
    }
}

fn consistency() -> Document {
    Document {
        kind: ReportKind::Consistency,
        title: "Daily against monthly figures, Q1 2026".into(),
        subtitle: format!("site FZ01 · 2026-01 to 2026-03 · {MADE}"),
        facts: facts(&[("Months", "3"), ("Beyond 5 %", "1")]),
        blocks: vec![
            table(
                "Per site and month",
                vec![
                    col("site"),
                    col("month"),
                    num("sum of days (tce)"),
                    num("month (tce)"),
                    num("difference (%)"),
                ],
                vec![
                    row(
                        Mark::Green,
                        &["FZ01", "2026-01", "1,000.0", "1,000.0", "0.0"],
                    ),
                    row(
                        Mark::Green,
                        &["FZ01", "2026-02", "980.0", "1,000.0", "-2.0"],
                    ),
                    row(Mark::Red, &["FZ01", "2026-03", "1,060.0", "1,000.0", "6.0"]),
                ],
            ),
            chart(
                "Difference, sum of days against the month",
                "%",
                &[
                    ("FZ01 2026-01", 0.0, Mark::Green),
                    ("FZ01 2026-02", -2.0, Mark::Green),
                    ("FZ01 2026-03", 6.0, Mark::Red),
                ],
                Some(("limit", 5.0)),
            ),
        ],
    }
}

fn verification() -> Document {
    Document {
        kind: ReportKind::Verification,
        title: "Verification register, 2026-04-01".into(),
        subtitle: format!("sites FZ01, FZ02 · due soon: within 30 days · {MADE}"),
        facts: facts(&[
            ("On record", "75.0 % (target 100 %)"),
            ("Verified on time", "66.7 % (target ≥ 95 %)"),
        ]),
        blocks: vec![
            table(
                "Register of compulsorily verified meters",
                vec![
                    col("site"),
                    col("meter"),
                    col("serial"),
                    col("class"),
                    col("verified"),
                    col("due"),
                    col("state"),
                ],
                vec![
                    row(
                        Mark::Red,
                        &[
                            "FZ01",
                            "incomer-1",
                            "SN-0042",
                            "0.5S",
                            "2024-03-01",
                            "2026-03-01",
                            "overdue by 31 days",
                        ],
                    ),
                    row(
                        Mark::Orange,
                        &[
                            "FZ01",
                            "gas-1",
                            "G-7731",
                            "1.0",
                            "2025-04-20",
                            "2026-04-20",
                            "due in 19 days",
                        ],
                    ),
                    row(
                        Mark::Green,
                        &[
                            "FZ02",
                            "incomer-1",
                            "SN-0077",
                            "0.5S",
                            "2025-09-01",
                            "2027-09-01",
                            "verified",
                        ],
                    ),
                    row(Mark::Red, &["FZ02", "steam-1", "", "", "", "", "no record"]),
                ],
            ),
            chart(
                "Filed and on time",
                "%",
                &[
                    ("on record", 75.0, Mark::Red),
                    ("verified on time", 66.7, Mark::Red),
                ],
                None,
            ),
            table(
                "Meters with no record",
                vec![col("site"), col("meter"), col("energy")],
                vec![row(Mark::Red, &["FZ02", "steam-1", "steam"])],
            ),
            chart("Nothing due beyond a year", "days", &[], None),
        ],
    }
}

// ---------------------------------------------------------------------------
// Checks

/// The text a table section must show: heading, column headings (with the
/// status column when a row is marked), then each row (status word, cells)
/// or "no data".
fn table_text(t: &Table) -> String {
    let marked = t.rows.iter().any(|r| r.mark != Mark::None);
    let mut s = t.title.clone();
    if marked {
        s.push_str("status");
    }
    for c in &t.columns {
        s.push_str(&c.name);
    }
    if t.rows.is_empty() {
        s.push_str("no data");
    }
    for r in &t.rows {
        s.push_str(match r.mark {
            Mark::None => "",
            Mark::Green => "green",
            Mark::Yellow => "yellow",
            Mark::Orange => "orange",
            Mark::Red => "red",
        });
        for c in &r.cells {
            s.push_str(c);
        }
    }
    s
}

/// The text of the element with `id`, without the markup's line breaks.
fn flat(dom: &str, id: &str) -> String {
    text_of_id(dom, id).replace('\n', "")
}

/// The part of `dom` from the start tag with `id` to the next `</section>`
/// (the sections do not nest).
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in DOM:\n{dom}"));
    let start = dom[..at].rfind('<').expect("start tag");
    let end = dom[start..]
        .find("</section>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Every part of `doc` is in the DOM Chromium built, as text.
fn assert_sections(dom: &str, doc: &Document) {
    assert!(
        !dom.to_lowercase().contains("<script"),
        "a script element in:\n{dom}"
    );
    assert_eq!(text_of_id(dom, "title"), doc.title);
    assert_eq!(text_of_id(dom, "subtitle"), doc.subtitle);
    let facts: String = doc
        .facts
        .iter()
        .flat_map(|(l, v)| [l.as_str(), v.as_str()])
        .collect();
    assert_eq!(flat(dom, "facts"), facts);
    for (i, block) in doc.blocks.iter().enumerate() {
        let id = format!("block-{}", i + 1);
        match block {
            Block::Table(t) => assert_eq!(flat(dom, &id), table_text(t), "{id}"),
            Block::Note(n) => assert_eq!(text_of_id(dom, &id), *n, "{id}"),
            Block::Chart(c) => {
                let part = section(dom, &id);
                let text = strip_tags(part).trim().replace('\n', "");
                assert!(text.starts_with(&c.title), "{id}: {text:?}");
                if c.bars.is_empty() {
                    assert_eq!(text, format!("{}no data", c.title), "{id}");
                    continue;
                }
                assert!(part.contains("<svg"), "{id}: no svg in {part}");
                let title = part
                    .split(&format!("<title id=\"{id}-svg-t\">"))
                    .nth(1)
                    .and_then(|rest| rest.split("</title>").next())
                    .unwrap_or_else(|| panic!("{id}: no svg title in {part}"));
                assert_eq!(strip_tags(title), c.title, "{id}: svg title");
                assert_eq!(
                    part.matches("<rect class=\"bar\"").count(),
                    c.bars.len(),
                    "{id}"
                );
                for b in &c.bars {
                    assert!(
                        text.contains(&b.label) || b.label.chars().count() > 28,
                        "{id}: {:?} not in {text:?}",
                        b.label
                    );
                }
                assert_eq!(
                    part.contains("<g class=\"reference\">"),
                    c.reference.is_some(),
                    "{id}: reference line"
                );
            }
        }
    }
    assert_eq!(
        flat(dom, "footer"),
        format!("Generated by {GENERATOR}{}", doc.subtitle)
    );
}

/// The HTML alone: deterministic, no URL, no script.
fn assert_self_contained(html: &str, doc: &Document) {
    assert_eq!(html, html::render(doc), "same document, different bytes");
    let lower = html.to_lowercase();
    for bad in [
        "http:",
        "https:",
        "//",
        "url(",
        "@import",
        "src=",
        "href=",
        "<link",
        "<script",
        "@font-face",
    ] {
        assert!(!lower.contains(bad), "{bad:?} in the HTML:\n{html}");
    }
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    ));
}

/// Renders `doc`, loads it in Chromium behind the proxy (DOM, then a
/// screenshot), checks every section and that nothing left; returns the
/// DOM, the screenshot and the HTML file's directory.
fn render_and_load(doc: &Document) -> (String, Image, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let html = html::render(doc);
    assert_self_contained(&html, doc);
    let file = dir.path().join(format!("{}.html", doc.kind.as_str()));
    std::fs::write(&file, &html).expect("write report");

    let proxy = Proxy::start();
    let run = run_chromium(&proxy, &file, &["--dump-dom".to_owned()]);
    let dom = run.stdout.clone();
    assert!(dom.contains("<html"), "no DOM; stderr:\n{}", run.stderr);
    assert_sections(&dom, doc);
    assert_eq!(
        run.csp_violations(),
        Vec::<&str>::new(),
        "the page tried to load something"
    );

    let png = dir.path().join(format!("{}.png", doc.kind.as_str()));
    let shot = run_chromium(
        &proxy,
        &file,
        &[format!("--screenshot={}", png.display()), WINDOW.to_owned()],
    );
    assert_eq!(shot.csp_violations(), Vec::<&str>::new());
    assert_eq!(
        proxy.page_requests(),
        Vec::<String>::new(),
        "requests left the page"
    );
    let image = decode_png(&std::fs::read(&png).expect("screenshot written"));
    assert_eq!((image.width, image.height), (1240, 1754));
    // Text, rules and tinted rows: well over 1 % of the page is not white.
    let ink = image.ink();
    assert!(
        ink > image.pixels.len() / 100,
        "{}: screenshot nearly blank ({ink} pixels)",
        doc.kind.as_str()
    );
    // Keep the screenshot for a human to look at when asked to.
    if let Some(keep) = std::env::var_os("EMGATE_KEEP_SCREENSHOTS") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&png, Path::new(&keep).join(png.file_name().expect("name")));
        let _ = std::fs::copy(
            &file,
            Path::new(&keep).join(file.file_name().expect("name")),
        );
    }
    (dom, image, dir)
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn targets_in_chromium_every_level_in_colour_and_the_evil_name_as_text() {
    let doc = targets();
    let (dom, image, _dir) = render_and_load(&doc);
    // The first row, worst first: status word, the name exactly as typed.
    let rows = flat(&dom, "block-1");
    assert!(
        rows.contains(&format!("red{EVIL}3,082.210,00012,500.0125.0")),
        "{rows}"
    );
    // The name is text in the table cell, the chart label and its tooltip.
    assert!(
        dom.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; Söhne \"AG\""),
        "{dom}"
    );
    // The four levels' bar colours are on screen (the bars are 80 to 125 %
    // of a 400-unit plot, each 18 units high: thousands of pixels each).
    for (level, colour) in [
        ("red", "#c62828"),
        ("orange", "#ef6c00"),
        ("yellow", "#f9c80e"),
        ("green", "#2e7d32"),
    ] {
        let n = image.count(colour);
        assert!(n > 1000, "{level} ({colour}): {n} pixels");
    }
}

#[test]
fn consumption_in_chromium_with_an_empty_table_saying_no_data() {
    let doc = consumption();
    let (dom, _image, _dir) = render_and_load(&doc);
    assert_eq!(
        flat(&dom, "block-3"),
        "Estimated windowssitemeterdayestimated (%)no data"
    );
    // Numeric columns are right-aligned, text columns not.
    assert!(
        dom.contains("<td>FZ01</td><td>electricity</td><td class=\"num\">4,521,000</td>"),
        "{dom}"
    );
}

#[test]
fn completeness_in_chromium_with_the_failing_day() {
    let doc = completeness();
    let (dom, image, _dir) = render_and_load(&doc);
    assert_eq!(
        flat(&dom, "block-3"),
        "Days that fail the ≥ 90 % rulestatussitedaymissing valuesredFZ022026-03-1411"
    );
    assert!(image.count("#c62828") > 500, "the red bar of 88.5 %");
}

#[test]
fn consistency_in_chromium_with_the_month_six_percent_off() {
    let doc = consistency();
    let (dom, _image, _dir) = render_and_load(&doc);
    assert!(flat(&dom, "block-1").ends_with("redFZ012026-031,060.01,000.06.0"));
    // −2 % draws left of a zero line.
    assert!(section(&dom, "block-2").contains("<line class=\"zero\""));
}

#[test]
fn verification_in_chromium_with_overdue_due_soon_and_unfiled() {
    let doc = verification();
    let (dom, _image, _dir) = render_and_load(&doc);
    let register = flat(&dom, "block-1");
    for expected in [
        "redFZ01incomer-1SN-00420.5S2024-03-012026-03-01overdue by 31 days",
        "orangeFZ01gas-1G-77311.02025-04-202026-04-20due in 19 days",
        "redFZ02steam-1no record",
    ] {
        assert!(
            register.contains(expected),
            "{expected:?} not in {register:?}"
        );
    }
    assert_eq!(flat(&dom, "block-4"), "Nothing due beyond a yearno data");
}

#[test]
fn targets_prints_to_a_pdf() {
    let doc = targets();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("targets.html");
    std::fs::write(&file, html::render(&doc)).expect("write report");
    let pdf = dir.path().join("targets.pdf");
    let proxy = Proxy::start();
    run_chromium(
        &proxy,
        &file,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_owned(),
        ],
    );
    let bytes = std::fs::read(&pdf).expect("PDF written");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    assert!(bytes.len() > 10_000, "PDF of {} bytes", bytes.len());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.trim_end().ends_with("%%EOF"), "truncated PDF");
    // One page (the targets report is short), A4 from the print CSS:
    // 210 × 297 mm = 595.3 × 841.9 pt on Chromium's pixel grid (its own
    // default would be US Letter, 612 × 792).
    assert_eq!(text.matches("/Type /Page\n").count(), 1, "pages");
    assert_eq!(
        text.matches("/MediaBox [0 0 594.95996 841.91998]").count(),
        1,
        "not A4"
    );
    assert_eq!(proxy.page_requests(), Vec::<String>::new());
}

#[test]
fn the_detectors_see_a_page_that_loads_from_outside() {
    // Without a CSP: the proxy sees the image requests.
    let dir = tempfile::tempdir().expect("temp dir");
    let open = dir.path().join("open.html");
    std::fs::write(
        &open,
        "<!DOCTYPE html><html><head><title>canary</title></head><body>\
         <img src=\"http://report-canary.invalid/a.png\"></body></html>",
    )
    .expect("write canary");
    let proxy = Proxy::start();
    run_chromium(&proxy, &open, &["--dump-dom".to_owned()]);
    assert_eq!(
        proxy.page_requests(),
        ["GET http://report-canary.invalid/a.png HTTP/1.1"]
    );

    // With the report's CSP: blocked, and the console says so.
    let closed = dir.path().join("closed.html");
    std::fs::write(
        &closed,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
             <title>canary</title></head><body><img src=\"http://report-canary.invalid/b.png\"></body></html>",
            html::CSP
        ),
    )
    .expect("write canary");
    let proxy = Proxy::start();
    let run = run_chromium(&proxy, &closed, &["--dump-dom".to_owned()]);
    assert_eq!(proxy.page_requests(), Vec::<String>::new());
    assert_eq!(run.csp_violations().len(), 1, "stderr:\n{}", run.stderr);
}
