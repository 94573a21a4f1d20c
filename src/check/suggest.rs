//! "Did you mean": the nearest known name to a mistyped one.
//!
//! Why: most configuration mistakes are typos of a key, an id or an enum
//! value, and a message that names the intended word is fixed in seconds.
//! Names are compared by edit distance, but only names of similar,
//! ordinary length: a hostile value (a megabyte-long time zone) must not
//! cost length² per candidate. Values quoted back are shortened for the
//! same reason.

/// Longest name (in characters) that "did you mean" compares by edit distance.
const MAX_TYPO_LEN: usize = 128;

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input_l = input.to_ascii_lowercase();
    let input_len = input.chars().count();
    let limit = input_len.max(3) / 3;
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c_l = c.to_ascii_lowercase();
        // The edit distance is at least the difference in length, and a name
        // longer than any real one is no typo: skipping both keeps a hostile
        // value (a megabyte-long time zone) from costing length² per candidate.
        let c_len = c.chars().count();
        let d = if input_len.abs_diff(c_len) > limit || input_len.max(c_len) > MAX_TYPO_LEN {
            usize::MAX
        } else {
            distance(&input_l, &c_l)
        };
        let prefix = input_l.len() >= 3 && (c_l.starts_with(&input_l) || input_l.starts_with(&c_l));
        if (d <= limit || prefix) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment edit distance (insert, delete, substitute, swap neighbours).
// The usual matrix names (a, b, d, i, j, w) read best here.
#[allow(clippy::many_single_char_names)]
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// `value` as quoted in a message: at most 64 characters, then `…`, so a
/// hostile megabyte-long value does not fill the terminal.
pub(crate) fn shorten(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &value[..at]).into(),
        None => value.into(),
    }
}

/// `a, b, c` for at most ten names, then `, …`.
pub(crate) fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, n) in names.into_iter().enumerate() {
        if i == 10 {
            out.push_str(", …");
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(n);
    }
    out
}

/// `unknown KIND "x"; did you mean "y"?` or `unknown KIND "x"; known: a, b, …`.
pub(crate) fn unknown_ref<'a>(
    kind: &str,
    name: &str,
    known: impl Iterator<Item = &'a str> + Clone,
) -> String {
    let mut sorted: Vec<&str> = known.collect();
    sorted.sort_unstable();
    let shown = shorten(name);
    let name = shown.as_ref();
    if let Some(s) = suggest(name, sorted.iter().copied()) {
        format!("unknown {kind} \"{name}\"; did you mean \"{s}\"?")
    } else if sorted.is_empty() {
        format!("unknown {kind} \"{name}\"; none is defined")
    } else {
        format!("unknown {kind} \"{name}\"; known: {}", list_names(sorted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["poll_interval_secs", "unit_id", "profile"];
        assert_eq!(
            suggest("poll_intervl_secs", keys),
            Some("poll_interval_secs")
        );
        assert_eq!(suggest("unitid", keys), Some("unit_id"));
        assert_eq!(suggest("colour", keys), None);
        assert_eq!(
            suggest("electric", ["electricity", "steam"]),
            Some("electricity")
        );
    }
}
