//! Boiler windows to line protocol: measurement `boiler` (SCHEMA.md, README
//! "Boiler efficiency").
//!
//! One line per boiler and window: tags `boiler`, `site`, `window`; the
//! timestamp is the window's start, so a window written again (a late input)
//! overwrites the earlier point. Float fields are written only when they
//! have a value; `coverage`, `estimated`, `methods_disagree`, `state`,
//! `out_of_limit` and `reasons` always (the last two `""` when empty),
//! `grade` only when the window was graded. As for the other encoders, the
//! series prefixes are built once from the configuration; the comma lists
//! are built in a reused buffer.

use crate::config::Config;
use crate::pipeline::boiler::stage::BoilerOut;
use crate::pipeline::boiler::{OutOfLimit, Reasons};
use crate::pipeline::window::WindowSize;
use crate::sinks::LineChunk;
use crate::sinks::lineproto::{LineBuilder, series_prefix};

/// Measurement of boiler windows.
pub const BOILER_MEASUREMENT: &str = "boiler";

/// Appends the names of `reasons`, comma-separated in bit order, to `out`.
pub fn reasons_text(reasons: Reasons, out: &mut String) {
    for (i, name) in reasons.names().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
    }
}

/// Appends the names of the limits in `o` (`efficiency`, `exhaust_c`,
/// `alpha`), comma-separated, to `out`.
pub fn out_of_limit_text(o: OutOfLimit, out: &mut String) {
    let mut first = true;
    for (item, name) in OutOfLimit::NAMES {
        if o.contains(item) {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// Encodes [`BoilerOut`]s of one configuration.
#[derive(Debug, Clone)]
pub struct BoilerEncoder {
    windows: Vec<WindowSize>,
    /// `boiler` prefix per boiler and window size.
    prefixes: Vec<Vec<Vec<u8>>>,
    /// Reused for the comma lists.
    scratch: String,
}

impl BoilerEncoder {
    /// Prepares the prefixes for `config`'s boilers and window sizes.
    #[must_use]
    pub fn new(config: &Config) -> BoilerEncoder {
        let windows = config.aggregation.aggregator.windows.clone();
        let prefixes = config
            .boilers
            .iter()
            .map(|b| {
                let site = config
                    .sites
                    .get(b.site.index())
                    .map_or("", |s| s.id.as_str());
                windows
                    .iter()
                    .map(|w| {
                        series_prefix(
                            BOILER_MEASUREMENT,
                            &[("site", site), ("boiler", &b.id), ("window", w.as_tag())],
                        )
                    })
                    .collect()
            })
            .collect();
        BoilerEncoder {
            windows,
            prefixes,
            scratch: String::with_capacity(256),
        }
    }

    /// Appends one line per window of `boilers` to `out`.
    pub fn encode(&mut self, boilers: &[BoilerOut], out: &mut LineChunk) {
        for b in boilers {
            let Some(prefix) = self
                .windows
                .iter()
                .position(|w| *w == b.size)
                .and_then(|s| self.prefixes.get(b.boiler as usize).and_then(|p| p.get(s)))
            else {
                continue;
            };
            let r = &b.result;
            let mut line = LineBuilder::new(&mut out.body, prefix);
            for (key, v) in [
                (&b"eta_direct"[..], r.eta_direct),
                (b"eta_indirect", r.eta_indirect),
                (b"q2", r.q2),
                (b"q3", r.q3),
                (b"q4", r.q4),
                (b"q5", r.q5),
                (b"q6", r.q6),
                (b"alpha", r.alpha),
                (b"load_pct", r.load_pct),
                (b"heat_out_gj", r.heat_out_gj),
                (b"fuel_in_gj", r.fuel_in_gj),
                (b"exhaust_c_mean", r.exhaust_c_mean),
                (b"o2_mean", r.o2_mean),
            ] {
                if let Some(v) = v {
                    line.f64(key, v);
                }
            }
            line.f64(b"coverage", r.coverage);
            line.boolean(b"estimated", r.estimated);
            line.boolean(b"methods_disagree", r.methods_disagree);
            line.string(b"state", r.state.as_str());
            if let Some(g) = r.grade {
                line.string(b"grade", g.as_str());
            }
            self.scratch.clear();
            out_of_limit_text(r.out_of_limit, &mut self.scratch);
            line.string(b"out_of_limit", &self.scratch);
            self.scratch.clear();
            reasons_text(r.reasons, &mut self.scratch);
            line.string(b"reasons", &self.scratch);
            if line.finish(b.start) {
                out.lines += 1;
            }
        }
    }
}
