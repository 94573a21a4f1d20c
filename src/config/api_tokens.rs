//! `EMGATE__API__SITE_TOKENS`: bearer tokens that open only some sites.
//!
//! Why apart from `[api]`: each enterprise gets a token that reads (and
//! enters data for) only its own sites, while the operator's `[api] token`
//! opens everything. These tokens are handed to third parties, so they are
//! secrets given through the environment only (a configuration file is
//! copied, versioned and shown far more often than a service's
//! environment), and they are checked harder than the operator's token.
//!
//! Syntax: entries separated by `;`, each `SITE[,SITE…]=TOKEN`, e.g.
//! `fz01,fz02=3f9c…;hs03=a71e…`. Blanks around the pieces are ignored; the
//! token is everything after the first `=` (so it may contain `=`, not `;`).
//! No message here ever contains a token: entries are named by position and
//! sites.

use std::collections::HashSet;

use super::{Secret, SiteToken};
use crate::check::Problems;

/// Key the problems are reported at (an environment override: the loader
/// moves them to `<env>` and names the variable).
pub const KEY: &str = "api.site_tokens";
/// The variable that sets them.
pub const VARIABLE: &str = "EMGATE__API__SITE_TOKENS";
/// Shortest site token, characters: it is handed to another party, so it
/// must not be guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Parses the variable's `text`; `operator` is `[api] token`. `None` (with
/// problems) when any entry is broken; every problem is recorded.
pub(super) fn parse(
    text: &str,
    operator: Option<&Secret>,
    p: &mut Problems,
) -> Option<Vec<SiteToken>> {
    let entries: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let count = entries.len();
    let mut ok = true;
    let mut out: Vec<SiteToken> = Vec::with_capacity(count);
    // Entry number of each token in `out`, for "the same token as entry N".
    let mut numbers: Vec<usize> = Vec::with_capacity(count);
    for (i, entry) in entries.into_iter().enumerate() {
        let n = i + 1;
        let Some((sites, token)) = entry.split_once('=') else {
            p.push(
                KEY,
                format!(
                    "entry {n} of {count} has no \"=\"; write SITE[,SITE…]=TOKEN, entries separated by \";\""
                ),
            );
            ok = false;
            continue;
        };
        let mut ids: Vec<String> = Vec::new();
        for id in sites.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
        let token = token.trim();
        let named = if ids.is_empty() {
            format!("entry {n} of {count}")
        } else {
            format!("entry {n} of {count} ({})", ids.join(","))
        };
        if ids.is_empty() {
            p.push(
                KEY,
                format!("{named} names no site; write SITE[,SITE…]=TOKEN"),
            );
            ok = false;
        }
        if token.is_empty() {
            p.push(
                KEY,
                format!("{named} has an empty token; give one after \"=\""),
            );
            ok = false;
            continue;
        }
        if !token.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
            p.push(
                KEY,
                format!("{named}: the token has a character that cannot be sent in an HTTP header; use letters, digits and - . _ ~ + / ="),
            );
            ok = false;
        } else if token.chars().count() < MIN_TOKEN_CHARS {
            p.push(
                KEY,
                format!("{named}: the token is too short; use at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 16`)"),
            );
            ok = false;
        }
        if operator.is_some_and(|o| o.expose() == token) {
            p.push(
                KEY,
                format!("{named}: the token is the operator's [api] token; give each site token its own value"),
            );
            ok = false;
        }
        if let Some(first) = out.iter().position(|t| t.token.expose() == token) {
            p.push(
                KEY,
                format!(
                    "{named}: the same token as entry {}; give each entry its own token (list several sites in one entry instead)",
                    numbers[first]
                ),
            );
            ok = false;
        }
        numbers.push(n);
        out.push(SiteToken {
            sites: ids,
            token: Secret::new(token),
        });
    }
    if count == 0 {
        p.push(
            KEY,
            "is empty; unset the variable, or give SITE[,SITE…]=TOKEN entries separated by \";\"",
        );
        ok = false;
    }
    if operator.is_none() {
        p.push(
            KEY,
            "site tokens need an operator token too (EMGATE__API__TOKEN): without one the API would answer everyone without a token",
        );
        ok = false;
    }
    ok.then_some(out)
}

/// Records a problem for each site a token names that `known` (the
/// configured site ids) lacks.
pub(super) fn check_sites(tokens: &[SiteToken], known: &[&str], p: &mut Problems) {
    let set: HashSet<&str> = known.iter().copied().collect();
    let count = tokens.len();
    for (i, t) in tokens.iter().enumerate() {
        for id in &t.sites {
            if !set.contains(id.as_str()) {
                p.push(
                    KEY,
                    format!(
                        "entry {} of {count}: unknown site \"{id}\"; known: {}",
                        i + 1,
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, operator: Option<&str>) -> (Option<Vec<SiteToken>>, Vec<String>) {
        let mut p = Problems::new(std::path::Path::new("emgate.toml"));
        let op = operator.map(Secret::new);
        let r = parse(text, op.as_ref(), &mut p);
        (r, p.list.into_iter().map(|e| e.message).collect())
    }

    const A: &str = "aaaaaaaaaaaaaaaa1";
    const B: &str = "bbbbbbbbbbbbbbbb=2";

    #[test]
    fn entries_sites_and_tokens() {
        let (r, errors) = run(
            &format!(" fz01, fz02 ={A} ; hs03={B};"),
            Some("operator-token"),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let r = r.expect("tokens");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].sites, ["fz01", "fz02"]);
        assert_eq!(r[0].token.expose(), A);
        assert_eq!(r[1].sites, ["hs03"]);
        assert_eq!(r[1].token.expose(), B);
    }

    #[test]
    fn every_problem_without_the_token() {
        let (r, errors) = run(
            &format!("fz01=;={A};fz02 {A};hs03=short;x={A};y=operator-token-1234"),
            Some("operator-token-1234"),
        );
        assert!(r.is_none());
        assert_eq!(
            errors,
            [
                "entry 1 of 6 (fz01) has an empty token; give one after \"=\"",
                "entry 2 of 6 names no site; write SITE[,SITE…]=TOKEN",
                "entry 3 of 6 has no \"=\"; write SITE[,SITE…]=TOKEN, entries separated by \";\"",
                "entry 4 of 6 (hs03): the token is too short; use at least 16 characters (e.g. `openssl rand -hex 16`)",
                "entry 5 of 6 (x): the same token as entry 2; give each entry its own token (list several sites in one entry instead)",
                "entry 6 of 6 (y): the token is the operator's [api] token; give each site token its own value",
            ]
        );
        for e in &errors {
            assert!(!e.contains(A) && !e.contains("operator-token"), "{e}");
        }
    }

    #[test]
    fn empty_or_without_operator() {
        assert_eq!(
            run(" ; ", Some("op")).1,
            ["is empty; unset the variable, or give SITE[,SITE…]=TOKEN entries separated by \";\""]
        );
        assert_eq!(
            run(&format!("fz01={A}"), None).1,
            [
                "site tokens need an operator token too (EMGATE__API__TOKEN): without one the API would answer everyone without a token"
            ]
        );
    }

    #[test]
    fn unknown_sites() {
        let mut p = Problems::new(std::path::Path::new("emgate.toml"));
        let tokens = [SiteToken {
            sites: vec!["fz01".into(), "zz".into()],
            token: Secret::new(A),
        }];
        check_sites(&tokens, &["fz01", "hs03"], &mut p);
        assert_eq!(p.list.len(), 1);
        assert_eq!(
            p.list[0].message,
            "entry 1 of 1: unknown site \"zz\"; known: fz01, hs03"
        );
    }
}
