//! What a request's bearer token may see: every site (the operator's
//! token, or an API without tokens) or a list of sites (a site token,
//! `EMGATE__API__SITE_TOKENS`).
//!
//! Why one place: the token check (in [`super`]) resolves the token to a
//! [`Scope`] once and puts it in the request's extensions; every handler
//! then asks the same few questions here (may it read this site, this
//! meter; which sites does a report read), so a site out of scope is
//! answered 403 with the same message everywhere, never with an empty 200
//! that would look like "no data".

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::error;
use crate::config::{Secret, SiteToken};
use crate::reports::Sites;

/// The sites a request may read and enter data for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every site and the operator-only routes.
    All,
    /// Only these site ids (a site token).
    Sites(Arc<[String]>),
}

impl Scope {
    /// Whether site `id` is in the scope.
    #[must_use]
    pub fn allows(&self, id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Sites(ids) => ids.iter().any(|s| s == id),
        }
    }

    /// The site ids of a site token, joined for messages; "all" for [`Scope::All`].
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Scope::All => "all sites".to_owned(),
            Scope::Sites(ids) => ids.join(", "),
        }
    }
}

/// The configured tokens, compared in constant time: each token's
/// comparison takes the same time wherever the given token differs, and
/// every configured token is compared whatever matched, so the time taken
/// tells neither a prefix nor which token matched.
#[derive(Clone, Default)]
pub struct Tokens {
    /// The operator's `[api] token`.
    operator: Option<Secret>,
    /// Site tokens with their scopes.
    sites: Vec<(Secret, Scope)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("operator", &self.operator.is_some())
            .field("site_tokens", &self.sites.len())
            .finish()
    }
}

/// The outcome of checking a request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No token is configured: the API is open (to what can reach it).
    Open,
    /// The token matched; the request has this scope.
    Granted(Scope),
    /// A token was given and matched none.
    Invalid,
}

impl Tokens {
    /// The operator token and the site tokens (empty tokens are ignored).
    #[must_use]
    pub fn new(operator: Option<Secret>, site_tokens: &[SiteToken]) -> Tokens {
        Tokens {
            operator: operator.filter(|t| !t.is_empty()),
            sites: site_tokens
                .iter()
                .filter(|t| !t.token.is_empty())
                .map(|t| (t.token.clone(), Scope::Sites(t.sites.clone().into())))
                .collect(),
        }
    }

    /// True when at least one token is configured (a token is required).
    #[must_use]
    pub fn required(&self) -> bool {
        self.operator.is_some() || !self.sites.is_empty()
    }

    /// Checks `given` (the bearer token, trimmed) against every token.
    #[must_use]
    pub fn check(&self, given: &[u8]) -> Check {
        if !self.required() {
            return Check::Open;
        }
        let mut found: Option<Scope> = None;
        if let Some(op) = &self.operator
            && constant_time_eq(given, op.expose().as_bytes())
        {
            found = Some(Scope::All);
        }
        for (token, scope) in &self.sites {
            // Compared even after a match, so the time does not tell which.
            if constant_time_eq(given, token.expose().as_bytes()) && found.is_none() {
                found = Some(scope.clone());
            }
        }
        found.map_or(Check::Invalid, Check::Granted)
    }

    /// How many tokens are configured: (operator, site tokens), for the log.
    #[must_use]
    pub fn counts(&self) -> (bool, usize) {
        (self.operator.is_some(), self.sites.len())
    }
}

/// Constant-time equality: the time taken does not depend on where the
/// inputs first differ (only on the length of `given`).
#[must_use]
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &g) in given.iter().enumerate() {
        let e = expected.get(i).copied().unwrap_or(0);
        diff |= g ^ e;
    }
    diff == 0
}

/// 403 for a site the token may not read.
#[must_use]
pub fn forbidden_site(site: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        &format!("this token may not read site \"{site}\""),
    )
}

/// 403 for an operator-only route.
#[must_use]
pub fn operator_only(what: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        &format!("{what} is for the operator's token only; a site token reads its own sites"),
    )
}

/// Which sites a report reads for a request with `scope` that asked for
/// `requested` (`?site=`, one id or several separated by `,`): all or the
/// requested ones for the operator; the requested ones when all are in the
/// scope, else 403; the scope's own sites when none was requested.
///
/// # Errors
/// The 403 response naming the first requested site out of scope.
#[allow(
    clippy::result_large_err,
    reason = "the handler returns the 403 as it is, at once; the reports handler's contract"
)]
pub fn sites_for(scope: &Scope, requested: Option<&str>) -> Result<Sites, Response> {
    let requested: Vec<String> = requested
        .into_iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(out) = requested.iter().find(|s| !scope.allows(s)) {
        return Err(forbidden_site(out));
    }
    Ok(match (scope, requested.is_empty()) {
        (Scope::All, true) => Sites::All,
        (Scope::Sites(ids), true) => Sites::Only(ids.to_vec()),
        (_, false) => Sites::Only(requested),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            Some(Secret::new("operator")),
            &[SiteToken {
                sites: vec!["a".into(), "b".into()],
                token: Secret::new("site-ab"),
            }],
        )
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn tokens_resolve_to_scopes() {
        let t = tokens();
        assert_eq!(t.check(b"operator"), Check::Granted(Scope::All));
        let ab = Scope::Sites(vec!["a".to_owned(), "b".to_owned()].into());
        assert_eq!(t.check(b"site-ab"), Check::Granted(ab));
        assert_eq!(t.check(b"site-a"), Check::Invalid);
        assert_eq!(t.check(b""), Check::Invalid);
        assert_eq!(Tokens::new(None, &[]).check(b"x"), Check::Open);
        assert_eq!(
            format!("{t:?}"),
            "Tokens { operator: true, site_tokens: 1 }"
        );
    }

    #[test]
    fn report_sites() {
        let ab = Scope::Sites(vec!["a".to_owned(), "b".to_owned()].into());
        assert_eq!(sites_for(&Scope::All, None).ok(), Some(Sites::All));
        assert_eq!(
            sites_for(&Scope::All, Some("z")).ok(),
            Some(Sites::Only(vec!["z".into()]))
        );
        assert_eq!(
            sites_for(&ab, None).ok(),
            Some(Sites::Only(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            sites_for(&ab, Some("b")).ok(),
            Some(Sites::Only(vec!["b".into()]))
        );
        let denied = sites_for(&ab, Some("a,c")).err().map(|r| r.status());
        assert_eq!(denied, Some(StatusCode::FORBIDDEN));
    }
}
