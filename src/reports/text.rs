//! A [`Document`] as text: an aligned table for a terminal, and CSV.
//!
//! Why plain renderers of the document (not of each report): every kind
//! gets both formats for free, and what a terminal shows is what the HTML
//! and the JSON say. CSV holds the document's first table (the detail a
//! spreadsheet wants), RFC 4180 quoting, a header row, `\n` line ends.

use std::fmt::Write as _;

use super::{Block, Document, Mark, Table};

/// The word a marked row ends with in the terminal table.
fn mark_word(mark: Mark) -> &'static str {
    match mark {
        Mark::None => "",
        Mark::Green => "green",
        Mark::Yellow => "YELLOW",
        Mark::Orange => "ORANGE",
        Mark::Red => "RED",
    }
}

/// Display width (characters; the ids and numbers are ASCII, names may not be).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(out: &mut String, s: &str, w: usize, right: bool) {
    let fill = w.saturating_sub(width(s));
    if right {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    } else {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    }
}

fn table_text(out: &mut String, t: &Table) {
    let _ = writeln!(out, "{}", t.title);
    let marked = t.rows.iter().any(|r| r.mark != Mark::None);
    let mut widths: Vec<usize> = t.columns.iter().map(|c| width(&c.name)).collect();
    for r in &t.rows {
        for (i, c) in r.cells.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(c));
            }
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = (usize, &str)>, mark: &str| {
        let mut l = String::new();
        for (i, c) in cells {
            if i > 0 {
                l.push_str("  ");
            }
            let right = t.columns.get(i).is_some_and(|c| c.numeric);
            pad(&mut l, c, widths.get(i).copied().unwrap_or(0), right);
        }
        if marked && !mark.is_empty() {
            l.push_str("  ");
            l.push_str(mark);
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(
        out,
        &mut t.columns.iter().map(|c| c.name.as_str()).enumerate(),
        "",
    );
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    let _ = writeln!(out, "{}", "-".repeat(total));
    for r in &t.rows {
        line(
            out,
            &mut r.cells.iter().map(String::as_str).enumerate(),
            mark_word(r.mark),
        );
    }
    if t.rows.is_empty() {
        let _ = writeln!(out, "(no rows)");
    }
}

/// The document as text for a terminal: title, subtitle, facts, each
/// table aligned (numbers right), charts as `label  value unit` lines and
/// notes as paragraphs.
#[must_use]
pub fn table(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", doc.title);
    let _ = writeln!(out, "{}", doc.subtitle);
    if !doc.facts.is_empty() {
        out.push('\n');
        let w = doc.facts.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
        for (k, v) in &doc.facts {
            let mut l = String::new();
            pad(&mut l, k, w, false);
            let _ = writeln!(out, "{l}  {v}");
        }
    }
    for block in &doc.blocks {
        out.push('\n');
        match block {
            Block::Table(t) => table_text(&mut out, t),
            Block::Chart(c) => {
                let _ = writeln!(out, "{} ({})", c.title, c.unit);
                let w = c.bars.iter().map(|b| width(&b.label)).max().unwrap_or(0);
                for b in &c.bars {
                    let mut l = String::new();
                    pad(&mut l, &b.label, w, false);
                    let _ = write!(out, "  {l}  {:.3}", b.value);
                    let m = mark_word(b.mark);
                    if m.is_empty() {
                        out.push('\n');
                    } else {
                        let _ = writeln!(out, "  {m}");
                    }
                }
                if let Some((label, v)) = &c.reference {
                    let _ = writeln!(out, "  ({label}: {v})");
                }
            }
            Block::Note(n) => {
                let _ = writeln!(out, "{n}");
            }
        }
    }
    out
}

/// One CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The document's first table as CSV (header row, then the rows; empty
/// when the document has no table).
#[must_use]
pub fn csv(doc: &Document) -> String {
    let Some(t) = doc.blocks.iter().find_map(|b| match b {
        Block::Table(t) => Some(t),
        _ => None,
    }) else {
        return String::new();
    };
    let mut out = String::new();
    let header: Vec<String> = t.columns.iter().map(|c| csv_field(&c.name)).collect();
    let _ = writeln!(out, "{}", header.join(","));
    for r in &t.rows {
        let cells: Vec<String> = r.cells.iter().map(|c| csv_field(c)).collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Column, ReportKind, Row};
    use super::*;

    #[test]
    fn table_and_csv_by_hand() {
        let doc = Document {
            kind: ReportKind::Targets,
            title: "T".into(),
            subtitle: "s".into(),
            facts: vec![("Red".into(), "1 site".into())],
            blocks: vec![Block::Table(Table {
                title: "Sites".into(),
                columns: vec![
                    Column {
                        name: "site".into(),
                        numeric: false,
                    },
                    Column {
                        name: "tce".into(),
                        numeric: true,
                    },
                ],
                rows: vec![Row {
                    cells: vec!["a,b".into(), "1.5".into()],
                    mark: Mark::Red,
                }],
            })],
        };
        assert_eq!(csv(&doc), "site,tce\n\"a,b\",1.5\n");
        assert_eq!(
            table(&doc),
            "T\ns\n\nRed  1 site\n\nSites\nsite  tce\n---------\na,b   1.5  RED\n"
        );
    }
}
