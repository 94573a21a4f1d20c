//! A report [`Document`] as one self-contained, printable HTML file.
//!
//! Why: a manager or an inspector reads a report, prints it and files it.
//! The file must open anywhere, offline, years later, and look the same, so
//! it carries everything itself:
//! * inline CSS only, with print rules (A4, rows and small tables kept on
//!   one page, table headers repeated on each page, page numbers);
//! * charts as inline SVG ([`super::svg`]), no script at all;
//! * no URL of any kind (no font, image, stylesheet or CDN), and a
//!   Content-Security-Policy that forbids loading anything should a future
//!   change slip one in;
//! * every text HTML-escaped (site names and notes are user data);
//! * marks as colours *and* words, so a black-and-white print still reads;
//! * the same document gives the same bytes (no clock, no randomness here:
//!   the subtitle says when the report was made).

use std::fmt::Write as _;

use super::svg::{self, mark_word};
use super::{Block, Chart, Document, Mark, Table};

/// The generator named in the footer and the `generator` meta tag.
pub const GENERATOR: &str = concat!("emgate ", env!("CARGO_PKG_VERSION"));

/// The Content-Security-Policy the page declares: nothing may be loaded,
/// only the inline styles run.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/// Tables with at most this many rows are kept on one printed page when
/// they fit; longer ones break between rows only.
const KEEP_ROWS: usize = 30;

/// Tables with more columns than this (the status column included) are
/// set smaller, so they fit the width of an A4 page.
const WIDE_COLUMNS: usize = 7;

/// The page's style sheet (the `@page` footer text is added per document).
const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; background: #fff; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", sans-serif; font-size: 10.5pt;
  line-height: 1.35; color: #1a1a1a; background: #fff; max-width: 190mm; margin: 0 auto; padding: 8mm 6mm; }
header { border-bottom: 2px solid #1a1a1a; margin-bottom: 8px; }
h1 { font-size: 18pt; margin: 0 0 4px; }
.subtitle { color: #444; margin: 0 0 8px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0 4px; padding: 0; }
.fact { border: 1px solid #b0bec5; border-radius: 3px; padding: 4px 10px; min-width: 30mm;
  break-inside: avoid; page-break-inside: avoid; }
.fact dt { font-size: 8pt; color: #555; }
.fact dd { margin: 0; font-weight: bold; font-size: 12pt; }
h2 { font-size: 12.5pt; margin: 16px 0 6px; break-after: avoid; page-break-after: avoid; }
section { margin: 0 0 6px; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; }
table.keep { break-inside: avoid; page-break-inside: avoid; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border-bottom: 1px solid #cfd8dc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eceff1; border-bottom: 1.5px solid #263238; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.wide { font-size: 7.5pt; }
table.wide th, table.wide td { padding: 2px 3px; }
td.empty { text-align: center; color: #555; font-style: italic; }
td.status { white-space: nowrap; font-weight: bold; }
.sw { display: inline-block; width: 0.8em; height: 0.8em; border: 1px solid #222;
  margin-right: 4px; vertical-align: -1px; }
tr.mark-green td.status .sw { background: #2e7d32; }
tr.mark-yellow td.status .sw { background: #f9c80e; }
tr.mark-orange td.status .sw { background: #ef6c00; }
tr.mark-red td.status .sw { background: #c62828; }
tr.mark-green td { background: #e8f5e9; }
tr.mark-yellow td { background: #fffde7; }
tr.mark-orange td { background: #fff3e0; }
tr.mark-red td { background: #ffebee; }
tr.mark-red td.status { color: #b71c1c; }
figure { margin: 0; break-inside: avoid; page-break-inside: avoid; }
svg.chart { display: block; max-width: 100%; height: auto; }
p.empty { color: #555; font-style: italic; margin: 4px 0; }
p.note { white-space: pre-line; color: #333; border-left: 3px solid #90a4ae; padding: 2px 8px;
  margin: 10px 0; break-inside: avoid; page-break-inside: avoid; }
footer { margin-top: 18px; border-top: 1px solid #90a4ae; padding-top: 4px; font-size: 8pt; color: #555; }
footer p { margin: 0; }
@media print {
  body { max-width: none; padding: 0; }
}
"#;

/// The document as one HTML page (UTF-8), deterministic: the same document
/// gives the same bytes.
#[must_use]
pub fn render(doc: &Document) -> String {
    let mut h = String::with_capacity(8192 + STYLE.len());
    let title = escape(&doc.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"{GENERATOR}\">\n<title>{title}</title>\n<style>"
    );
    h.push_str(STYLE);
    let _ = writeln!(
        h,
        "@page {{ size: A4; margin: 14mm 12mm 16mm 12mm;\n  \
         @bottom-left {{ content: \"{}\"; font-size: 7.5pt; color: #555; }}\n  \
         @bottom-right {{ content: \"page \" counter(page) \" of \" counter(pages); font-size: 7.5pt; color: #555; }}\n}}",
        css_string(&format!("{} · {GENERATOR}", doc.title)),
    );
    let _ = write!(
        h,
        "</style>\n</head>\n<body class=\"report\" data-kind=\"{}\">\n\
         <header>\n<h1 id=\"title\">{title}</h1>\n<p class=\"subtitle\" id=\"subtitle\">{}</p>\n</header>\n",
        doc.kind.as_str(),
        escape(&doc.subtitle),
    );

    if !doc.facts.is_empty() {
        h.push_str("<dl class=\"facts\" id=\"facts\">\n");
        for (label, value) in &doc.facts {
            let _ = writeln!(
                h,
                "<div class=\"fact\"><dt>{}</dt><dd>{}</dd></div>",
                escape(label),
                escape(value)
            );
        }
        h.push_str("</dl>\n");
    }

    h.push_str("<main>\n");
    for (i, block) in doc.blocks.iter().enumerate() {
        let id = format!("block-{}", i + 1);
        match block {
            Block::Table(t) => table(&mut h, t, &id),
            Block::Chart(c) => chart(&mut h, c, &id),
            Block::Note(text) => {
                let _ = writeln!(
                    h,
                    "<p class=\"note\" id=\"{id}\" data-block=\"note\">{}</p>",
                    escape(text)
                );
            }
        }
    }
    let _ = write!(
        h,
        "</main>\n<footer id=\"footer\">\n<p>Generated by {GENERATOR}</p>\n<p>{}</p>\n</footer>\n</body>\n</html>\n",
        escape(&doc.subtitle)
    );
    h
}

/// One table block: heading, header row, rows (or "no data").
fn table(h: &mut String, t: &Table, id: &str) {
    let marked = t.rows.iter().any(|r| r.mark != Mark::None);
    let width = t
        .rows
        .iter()
        .map(|r| r.cells.len())
        .max()
        .unwrap_or(0)
        .max(t.columns.len());
    let mut classes = Vec::new();
    if t.rows.len() <= KEEP_ROWS {
        classes.push("keep");
    }
    if width + usize::from(marked) > WIDE_COLUMNS {
        classes.push("wide");
    }
    let keep = if classes.is_empty() {
        String::new()
    } else {
        format!(" class=\"{}\"", classes.join(" "))
    };
    let _ = write!(
        h,
        "<section id=\"{id}\" data-block=\"table\">\n<h2>{}</h2>\n<table{keep}>\n<thead><tr>",
        escape(&t.title)
    );
    if marked {
        h.push_str("<th scope=\"col\" class=\"status\">status</th>");
    }
    for c in &t.columns {
        let class = if c.numeric { " class=\"num\"" } else { "" };
        let _ = write!(h, "<th scope=\"col\"{class}>{}</th>", escape(&c.name));
    }
    for _ in t.columns.len()..width {
        h.push_str("<th scope=\"col\"></th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    if t.rows.is_empty() {
        let _ = writeln!(
            h,
            "<tr><td class=\"empty\" colspan=\"{}\">no data</td></tr>",
            width.max(1) + usize::from(marked)
        );
    }
    for row in &t.rows {
        let word = mark_word(row.mark);
        if word.is_empty() {
            h.push_str("<tr>");
        } else {
            let _ = write!(h, "<tr class=\"mark-{word}\" data-mark=\"{word}\">");
        }
        if marked {
            if word.is_empty() {
                h.push_str("<td class=\"status\"></td>");
            } else {
                let _ = write!(
                    h,
                    "<td class=\"status\"><span class=\"sw\"></span>{word}</td>"
                );
            }
        }
        for i in 0..width {
            let cell = row.cells.get(i).map_or("", String::as_str);
            let numeric = t.columns.get(i).is_some_and(|c| c.numeric);
            let class = if numeric { " class=\"num\"" } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", escape(cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// One chart block: heading and the SVG (or "no data").
fn chart(h: &mut String, c: &Chart, id: &str) {
    let _ = write!(
        h,
        "<section id=\"{id}\" data-block=\"chart\">\n<h2>{}</h2>\n",
        escape(&c.title)
    );
    match svg::render(c, &format!("{id}-svg")) {
        Some(drawing) => {
            let _ = writeln!(h, "<figure>\n{drawing}\n</figure>");
        }
        None => h.push_str("<p class=\"empty\">no data</p>\n"),
    }
    h.push_str("</section>\n");
}

/// `s` safe as HTML text and as a double- or single-quoted attribute value.
/// Control characters other than tab and newline are dropped (they have no
/// meaning in a report and are invalid in HTML).
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `s` as the inside of a double-quoted CSS string: anything but letters,
/// digits, space and plain punctuation becomes a `\HEX ` escape, so no text
/// can end the string, the rule or the `<style>` element.
fn css_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || " -_.,:;()/".contains(c) {
            out.push(c);
        } else if !c.is_control() || c == '\n' {
            let _ = write!(out, "\\{:x} ", c as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{Bar, Column, ReportKind, Row};

    fn doc(name: &str) -> Document {
        Document {
            kind: ReportKind::Targets,
            title: format!("Targets 2026 — {name}"),
            subtitle: format!("sites: {name}; made 2026-03-01 by gw1"),
            facts: vec![(format!("worst: {name}"), "1 site".into())],
            blocks: vec![
                Block::Table(Table {
                    title: format!("Sites ({name})"),
                    columns: vec![
                        Column {
                            name: "site".into(),
                            numeric: false,
                        },
                        Column {
                            name: "controlled (tce)".into(),
                            numeric: true,
                        },
                    ],
                    rows: vec![Row {
                        cells: vec![name.into(), "1,150.0".into()],
                        mark: Mark::Red,
                    }],
                }),
                Block::Chart(Chart {
                    title: format!("Against the cap: {name}"),
                    unit: "tce".into(),
                    bars: vec![Bar {
                        label: name.into(),
                        value: 1150.0,
                        mark: Mark::Red,
                    }],
                    reference: Some((name.into(), 1000.0)),
                }),
                Block::Note(format!("note on {name}")),
            ],
        }
    }

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'Sons'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;Sons&#39;"
        );
        assert_eq!(escape("a\u{0}b\u{1b}c\td\ne"), "abc\td\ne");
        assert_eq!(escape("煤 tce ≥ 90 %"), "煤 tce ≥ 90 %");
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn css_strings_cannot_break_out() {
        assert_eq!(
            css_string("A \"b\" </style>"),
            "A \\22 b\\22  \\3c /style\\3e "
        );
        assert_eq!(css_string("x\\y"), "x\\5c y");
    }

    #[test]
    fn user_text_is_escaped_everywhere() {
        let name = "<script>alert(1)</script> & \"Sons\" 'Ltd' </style>";
        let html = render(&doc(name));
        // The only tags are ours: no script, and the style element closes once.
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert_eq!(html.matches("</style>").count(), 1, "{html}");
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Sons&quot; &#39;Ltd&#39; &lt;/style&gt;";
        // Title, subtitle (twice: header and footer), fact, table title, cell,
        // chart heading, svg title, bar label and tooltip, reference, note.
        assert!(html.matches(escaped).count() >= 11, "{html}");
    }

    #[test]
    fn no_external_reference_of_any_kind() {
        let html = render(&doc("Works & Co"));
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
            "<img",
            "<iframe",
            "<object",
            "@font-face",
        ] {
            assert!(!lower.contains(bad), "{bad:?} in:\n{html}");
        }
        assert!(html.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        )));
    }

    #[test]
    fn same_document_same_bytes() {
        assert_eq!(render(&doc("a")), render(&doc("a")));
    }

    #[test]
    fn marks_numbers_and_empty_tables() {
        let mut d = doc("W1");
        d.blocks.push(Block::Table(Table {
            title: "Overdue".into(),
            columns: vec![
                Column {
                    name: "meter".into(),
                    numeric: false,
                },
                Column {
                    name: "days".into(),
                    numeric: true,
                },
            ],
            rows: vec![],
        }));
        d.blocks.push(Block::Chart(Chart {
            title: "Nothing".into(),
            unit: "tce".into(),
            bars: vec![],
            reference: None,
        }));
        let html = render(&d);
        assert!(html.contains(
            "<tr class=\"mark-red\" data-mark=\"red\"><td class=\"status\"><span class=\"sw\"></span>red</td>\
             <td>W1</td><td class=\"num\">1,150.0</td></tr>"
        ), "{html}");
        assert!(html.contains("<th scope=\"col\" class=\"num\">controlled (tce)</th>"));
        // Unmarked table: no status column; empty: one "no data" cell across it.
        assert!(html.contains(
            "<thead><tr><th scope=\"col\">meter</th><th scope=\"col\" class=\"num\">days</th></tr></thead>\n\
             <tbody>\n<tr><td class=\"empty\" colspan=\"2\">no data</td></tr>"
        ), "{html}");
        assert!(html.contains(
            "<section id=\"block-5\" data-block=\"chart\">\n<h2>Nothing</h2>\n<p class=\"empty\">no data</p>"
        ), "{html}");
        assert!(html.contains(&format!(
            "<footer id=\"footer\">\n<p>Generated by emgate {}</p>\n<p>sites: W1; made 2026-03-01 by gw1</p>",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
