//! PLACEHOLDER for the HTML renderer (helper html writes the real one with
//! SVG charts; the lead replaces this file at merge). It renders the title
//! and the first table's text only, escaped.

use super::Document;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A minimal HTML page: the title and the terminal table in `<pre>`.
#[must_use]
pub fn render(doc: &Document) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><pre>{body}</pre></body></html>\n",
        t = escape(&doc.title),
        body = escape(&super::text::table(doc))
    )
}
