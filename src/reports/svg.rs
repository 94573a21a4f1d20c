//! Horizontal bar charts as inline SVG, for the HTML reports.
//!
//! Why a module of its own: the chart's geometry (scale, bar lengths, axis
//! ticks, the reference line) is plain arithmetic that must hold exactly
//! (a bar twice as long means twice the value), so it lives apart from the
//! page around it and is tested on its own. The output is an `<svg>`
//! fragment meant to sit inside an HTML page: no `xmlns`, no script, no
//! external reference, every text escaped, coordinates printed with two
//! decimals so the same chart gives the same bytes.
//!
//! Layout, in SVG user units (the drawing scales to the page's width):
//!
//! ```text
//! |<- LABEL_W ->|<------------ PLOT_W ------------>|<- VALUE_W ->|
//!   site name   ████████████████████  1,050.0 (red)
//!               0      250      500      750      1,000  tce
//! ```
//!
//! The scale runs from `min(0, values, reference)` to `max(0, values,
//! reference)`, both widened to a multiple of a "nice" step (1, 2, 2.5 or
//! 5 × 10ⁿ) giving at most five intervals. A bar spans from the zero line
//! to its value, so its length is `|value| / (max − min) × PLOT_W`.

use std::fmt::Write as _;

use super::html::escape;
use super::{Chart, Mark};

/// Width of the whole drawing.
pub const WIDTH: f64 = 720.0;
/// Width of the label column, left of the plot.
pub const LABEL_W: f64 = 190.0;
/// Width of the plot area, where bars are drawn.
pub const PLOT_W: f64 = 400.0;
/// Height of one bar.
pub const BAR_H: f64 = 18.0;
/// Distance from one bar's top to the next one's.
pub const BAR_STEP: f64 = 26.0;
/// Space above the first bar (the reference line's label).
pub const TOP: f64 = 22.0;
/// Space under the last bar (the axis and its tick labels).
pub const BOTTOM: f64 = 34.0;
/// Labels longer than this many characters are cut with "…" (the full
/// label stays in the bar's tooltip `<title>`).
pub const LABEL_CHARS: usize = 28;

/// The value range a chart's axis spans, and its tick step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Left end of the axis (≤ 0).
    pub min: f64,
    /// Right end of the axis (≥ 0, > `min`).
    pub max: f64,
    /// Distance between ticks.
    pub step: f64,
}

impl Scale {
    /// The scale for these values and an optional reference value.
    /// Non-finite values are ignored.
    #[must_use]
    pub fn fit(values: impl IntoIterator<Item = f64>, reference: Option<f64>) -> Scale {
        let (mut lo, mut hi) = (0.0_f64, 0.0_f64);
        for v in values.into_iter().chain(reference) {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if hi - lo <= 0.0 {
            // All zero (or nothing): an axis 0..1 so the zero bars show.
            return Scale {
                min: 0.0,
                max: 1.0,
                step: 0.25,
            };
        }
        let step = nice_step((hi - lo) / 5.0);
        let min = (lo / step + 1e-9).floor() * step;
        let max = (hi / step - 1e-9).ceil() * step;
        Scale {
            min: if min == 0.0 { 0.0 } else { min },
            max,
            step,
        }
    }

    /// The x coordinate of `value`.
    #[must_use]
    pub fn x(&self, value: f64) -> f64 {
        LABEL_W + (value - self.min) / (self.max - self.min) * PLOT_W
    }

    /// The tick values from `min` to `max`.
    #[must_use]
    pub fn ticks(&self) -> Vec<f64> {
        let n = ((self.max - self.min) / self.step).round() as i64;
        let first = (self.min / self.step).round() as i64;
        let scale = 10f64.powi(self.tick_decimals() as i32);
        (0..=n)
            .map(|i| {
                // Snap float noise (0.6000000000000001) and -0 away.
                let v = (first + i) as f64 * self.step;
                (v * scale).round() / scale + 0.0
            })
            .collect()
    }

    /// Decimals that print every tick exactly (2.5 needs one).
    fn tick_decimals(&self) -> usize {
        (0..=6)
            .find(|&d| {
                let scaled = self.step * 10f64.powi(d as i32);
                (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
            })
            .unwrap_or(6)
    }
}

/// The smallest of 1, 2, 2.5, 5 or 10 × 10ⁿ that is ≥ `raw` (`raw` > 0).
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    let fraction = raw / magnitude;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|&n| fraction <= n * (1.0 + 1e-9))
        .unwrap_or(10.0);
    nice * magnitude
}

/// The word printed beside a marked bar or row, so a black-and-white print
/// still says what the colour says.
#[must_use]
pub fn mark_word(mark: Mark) -> &'static str {
    match mark {
        Mark::None => "",
        Mark::Green => "green",
        Mark::Yellow => "yellow",
        Mark::Orange => "orange",
        Mark::Red => "red",
    }
}

/// The fill colour of a bar (dark enough to print, distinct in grey).
#[must_use]
pub fn mark_colour(mark: Mark) -> &'static str {
    match mark {
        Mark::None => "#546e7a",
        Mark::Green => "#2e7d32",
        Mark::Yellow => "#f9c80e",
        Mark::Orange => "#ef6c00",
        Mark::Red => "#c62828",
    }
}

/// A value as a reader wants it on a chart: thousands grouped with ",",
/// 0 decimals from 1 000, 1 from 1 (and for 0), else 2.
#[must_use]
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let decimals = if v.abs() >= 1000.0 {
        0
    } else if v.abs() >= 1.0 || v == 0.0 {
        1
    } else {
        2
    };
    group(&format!("{:.*}", decimals, v + 0.0))
}

/// Inserts "," every three digits of the integer part of a formatted number.
fn group(formatted: &str) -> String {
    let (sign, rest) = formatted
        .strip_prefix('-')
        .map_or(("", formatted), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut out = String::with_capacity(formatted.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Cuts a label to [`LABEL_CHARS`] characters, ending it with "…" when cut.
fn short_label(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(LABEL_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// Height of the drawing for `bars` bars.
#[must_use]
pub fn height(bars: usize) -> f64 {
    TOP + BAR_STEP * bars.max(1) as f64 + BOTTOM
}

/// The chart as an inline `<svg>` element; `id` makes its `<title>` and
/// `<desc>` ids unique in the page. A chart with no bars gives `None` (the
/// page says "no data" instead).
#[must_use]
pub fn render(chart: &Chart, id: &str) -> Option<String> {
    if chart.bars.is_empty() {
        return None;
    }
    let scale = Scale::fit(
        chart.bars.iter().map(|b| b.value),
        chart.reference.as_ref().map(|r| r.1),
    );
    let total_h = height(chart.bars.len());
    let plot_bottom = TOP + BAR_STEP * chart.bars.len() as f64;
    let unit = escape(&chart.unit);
    let mut s = String::with_capacity(512 + chart.bars.len() * 400);
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH:.0} {total_h:.0}\" width=\"{WIDTH:.0}\" \
         height=\"{total_h:.0}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" \
         font-family=\"DejaVu Sans, Liberation Sans, Arial, sans-serif\" font-size=\"12\">\n\
         <title id=\"{id}-t\">{}</title>\n<desc id=\"{id}-d\">{}</desc>\n",
        escape(&chart.title),
        escape(&describe(chart)),
    );

    // Grid lines and the axis with its ticks.
    let decimals = scale.tick_decimals();
    s.push_str("<g class=\"axis\">\n");
    for t in scale.ticks() {
        let x = scale.x(t);
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{x:.2}\" y1=\"{TOP:.2}\" x2=\"{x:.2}\" y2=\"{plot_bottom:.2}\" \
             stroke=\"#d0d7de\" stroke-width=\"0.6\"/>\
             <line x1=\"{x:.2}\" y1=\"{plot_bottom:.2}\" x2=\"{x:.2}\" y2=\"{:.2}\" stroke=\"#333\"/>\
             <text class=\"tick\" x=\"{x:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            plot_bottom + 4.0,
            plot_bottom + 16.0,
            group(&format!("{t:.decimals$}")),
        );
    }
    let _ = writeln!(
        s,
        "<line class=\"axis-line\" x1=\"{LABEL_W:.2}\" y1=\"{plot_bottom:.2}\" x2=\"{:.2}\" \
         y2=\"{plot_bottom:.2}\" stroke=\"#333\"/>\
         <text class=\"unit\" x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{unit}</text>\n</g>",
        LABEL_W + PLOT_W,
        LABEL_W + PLOT_W / 2.0,
        plot_bottom + 30.0,
    );

    // The bars, their labels and values.
    let zero = scale.x(0.0);
    for (i, bar) in chart.bars.iter().enumerate() {
        let y = TOP + BAR_STEP * i as f64 + (BAR_STEP - BAR_H) / 2.0;
        let text_y = y + BAR_H / 2.0 + 4.0;
        let value = if bar.value.is_finite() {
            bar.value
        } else {
            0.0
        };
        let end = scale.x(value);
        let (x, w) = if end >= zero {
            (zero, end - zero)
        } else {
            (end, zero - end)
        };
        let word = mark_word(bar.mark);
        let shown = if word.is_empty() {
            format_value(bar.value)
        } else {
            format!("{} ({word})", format_value(bar.value))
        };
        let tooltip = if word.is_empty() {
            format!("{} {}", format_value(bar.value), chart.unit)
        } else {
            format!("{} {} ({word})", format_value(bar.value), chart.unit)
        };
        let label = escape(&bar.label);
        let _ = writeln!(
            s,
            "<g class=\"bar-row\" data-mark=\"{}\">\
             <text class=\"label\" x=\"{:.2}\" y=\"{text_y:.2}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{BAR_H:.2}\" \
             fill=\"{}\" stroke=\"#222\" stroke-width=\"0.5\"><title>{label}: {}</title></rect>\
             <text class=\"value\" x=\"{:.2}\" y=\"{text_y:.2}\">{}</text></g>",
            mark_name(bar.mark),
            LABEL_W - 6.0,
            escape(&short_label(&bar.label)),
            mark_colour(bar.mark),
            escape(&tooltip),
            x.max(zero).max(end) + 4.0,
            escape(&shown),
        );
    }

    // The zero line (when the axis has negatives) and the reference line.
    if scale.min < 0.0 {
        let _ = writeln!(
            s,
            "<line class=\"zero\" x1=\"{zero:.2}\" y1=\"{TOP:.2}\" x2=\"{zero:.2}\" \
             y2=\"{plot_bottom:.2}\" stroke=\"#333\"/>"
        );
    }
    if let Some((label, value)) = &chart.reference
        && value.is_finite()
    {
        let x = scale.x(*value);
        let _ = writeln!(
            s,
            "<g class=\"reference\"><line x1=\"{x:.2}\" y1=\"{:.2}\" x2=\"{x:.2}\" \
             y2=\"{plot_bottom:.2}\" stroke=\"#000\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\
             <text x=\"{x:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-weight=\"bold\">{} {}</text></g>",
            TOP - 6.0,
            TOP - 9.0,
            escape(label),
            escape(&format_value(*value)),
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The `data-mark` name of a mark.
fn mark_name(mark: Mark) -> &'static str {
    match mark {
        Mark::None => "none",
        other => mark_word(other),
    }
}

/// A text summary for screen readers: every bar with its value.
fn describe(chart: &Chart) -> String {
    let mut d = format!("Horizontal bar chart in {}", chart.unit);
    if let Some((label, value)) = &chart.reference {
        let _ = write!(d, ", reference line {label} at {}", format_value(*value));
    }
    d.push_str(": ");
    for (i, bar) in chart.bars.iter().enumerate() {
        if i > 0 {
            d.push_str("; ");
        }
        let _ = write!(d, "{} {}", bar.label, format_value(bar.value));
        let word = mark_word(bar.mark);
        if !word.is_empty() {
            let _ = write!(d, " ({word})");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::Bar;

    fn chart(values: &[(&str, f64, Mark)], reference: Option<(&str, f64)>) -> Chart {
        Chart {
            title: "t".into(),
            unit: "tce".into(),
            bars: values
                .iter()
                .map(|&(l, v, m)| Bar {
                    label: l.into(),
                    value: v,
                    mark: m,
                })
                .collect(),
            reference: reference.map(|(l, v)| (l.to_owned(), v)),
        }
    }

    /// Every `(x, width)` of the `<rect class="bar">` elements.
    fn bars(svg: &str) -> Vec<(f64, f64)> {
        svg.match_indices("<rect class=\"bar\"")
            .map(|(at, _)| {
                let tag = &svg[at..at + svg[at..].find('>').unwrap()];
                (attr(tag, "x"), attr(tag, "width"))
            })
            .collect()
    }

    fn attr(tag: &str, name: &str) -> f64 {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).unwrap() + key.len();
        let end = start + tag[start..].find('"').unwrap();
        tag[start..end].parse().unwrap()
    }

    #[test]
    fn bar_lengths_are_proportional_to_values() {
        // Max 100, step 100/5 = 20 (nice), axis 0..100: 400 units per 100.
        let svg = render(
            &chart(
                &[
                    ("a", 25.0, Mark::Green),
                    ("b", 50.0, Mark::None),
                    ("c", 100.0, Mark::Red),
                ],
                None,
            ),
            "c1",
        )
        .unwrap();
        assert_eq!(bars(&svg), [(190.0, 100.0), (190.0, 200.0), (190.0, 400.0)]);
        // Ticks 0, 20, …, 100.
        for t in ["0", "20", "40", "60", "80", "100"] {
            assert!(svg.contains(&format!(">{t}</text>")), "tick {t}: {svg}");
        }
        assert!(svg.contains(">100.0 (red)</text>"), "{svg}");
        assert!(svg.contains(">50.0</text>"), "{svg}");
    }

    #[test]
    fn the_reference_line_widens_the_axis_and_sits_at_its_value() {
        // Max(90, 120) = 120; 120/5 = 24 → step 25; axis 0..125.
        // Bars: 30/125·400 = 96, 90/125·400 = 288; cap at 190 + 120/125·400 = 574.
        let svg = render(
            &chart(
                &[("a", 30.0, Mark::Green), ("b", 90.0, Mark::Yellow)],
                Some(("cap", 120.0)),
            ),
            "c2",
        )
        .unwrap();
        assert_eq!(bars(&svg), [(190.0, 96.0), (190.0, 288.0)]);
        assert!(
            svg.contains("<g class=\"reference\"><line x1=\"574.00\""),
            "{svg}"
        );
        assert!(svg.contains(">cap 120.0</text>"), "{svg}");
        for t in ["0", "25", "50", "75", "100", "125"] {
            assert!(svg.contains(&format!(">{t}</text>")), "tick {t}: {svg}");
        }
    }

    #[test]
    fn negative_values_run_left_of_the_zero_line() {
        // Range −10..30 = 40; 40/5 = 8 → step 10; axis −10..30, 10 units per 1.
        // Zero at 190 + 10·10 = 290; −10 spans 190..290; 30 spans 290..590.
        let svg = render(
            &chart(&[("a", -10.0, Mark::Red), ("b", 30.0, Mark::Green)], None),
            "c3",
        )
        .unwrap();
        assert_eq!(bars(&svg), [(190.0, 100.0), (290.0, 300.0)]);
        assert!(svg.contains("<line class=\"zero\" x1=\"290.00\""), "{svg}");
    }

    #[test]
    fn scale_steps_are_nice_and_ticks_exact() {
        let s = Scale::fit([0.7], None);
        assert_eq!((s.min, s.max, s.step), (0.0, 0.8, 0.2));
        assert_eq!(s.ticks(), [0.0, 0.2, 0.4, 0.6, 0.8]);
        let s = Scale::fit([1234.0], Some(1000.0));
        // 1234/5 = 246.8 → 250; axis 0..1250.
        assert_eq!((s.min, s.max, s.step), (0.0, 1250.0, 250.0));
        let s = Scale::fit([0.0, 0.0], None);
        assert_eq!((s.min, s.max), (0.0, 1.0));
        assert_eq!(Scale::fit([f64::NAN, 5.0], None).max, 5.0);
    }

    #[test]
    fn labels_and_values_are_escaped_and_long_labels_cut() {
        let long = "<script>alert(1)</script> & a very long works name";
        let svg = render(&chart(&[(long, 12_345.6, Mark::Orange)], None), "c4").unwrap();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(
            svg.contains(">&lt;script&gt;alert(1)&lt;/script&gt; &amp;…</text>"),
            "{svg}"
        );
        // The full label in the tooltip.
        assert!(
            svg.contains("<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; a very long works name: 12,346 tce (orange)</title>"),
            "{svg}"
        );
    }

    #[test]
    fn values_are_grouped_and_rounded_by_size() {
        assert_eq!(format_value(1_234_567.4), "1,234,567");
        assert_eq!(format_value(-1234.4), "-1,234");
        assert_eq!(format_value(105.04), "105.0");
        assert_eq!(format_value(0.915), "0.92");
        assert_eq!(format_value(-0.0), "0.0");
        assert_eq!(format_value(6.0), "6.0");
        assert_eq!(format_value(0.05), "0.05");
        assert_eq!(format_value(f64::INFINITY), "–");
    }

    #[test]
    fn no_bars_no_chart() {
        assert_eq!(render(&chart(&[], Some(("cap", 1.0))), "c5"), None);
    }
}
