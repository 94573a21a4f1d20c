//! `GET /api/reports/{kind}`: the reports of `emgate report` through the
//! running gateway, behind the API token.
//!
//! Why here too: a manager's browser or the regulator's scripts ask the
//! gateway instead of running a command on it. The options are the CLI's
//! (`site`, `year`, `month`, `from`, `to`, `granularity`, `due_within`,
//! `format`), checked by the same code, and the JSON is the same as
//! `--format json`. Answers: 200 with the report; 400 `{"error": …}` for a
//! bad request; 403 for a site the caller may not read; 502 when the
//! database fails.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::scope::Scope;
use super::{ApiState, error};
use crate::config::Config;
use crate::reports::run::{self, Args, Format};
use crate::reports::source::Source;
use crate::reports::store_influx::InfluxOverrides;
use crate::reports::{ReportError, Sites};

/// What `GET /api/reports/{kind}` needs from the running gateway.
#[derive(Clone)]
pub struct ReportsTarget {
    /// The configuration in force (sites, targets, `[influxdb]`), replaced
    /// at each reload.
    pub config: watch::Receiver<Arc<Config>>,
}

/// The sites the caller's token may read: every site for the operator,
/// its own for a site token.
#[must_use]
pub fn allowed_sites(scope: &Scope) -> Sites {
    match scope {
        Scope::All => Sites::All,
        Scope::Sites(list) => Sites::Only(list.to_vec()),
    }
}

/// `requested` narrowed to `allowed`: every site when none was asked for;
/// an error naming the first site asked for that is not allowed.
///
/// # Errors
/// The message of a 403.
pub fn restrict(requested: Sites, allowed: &Sites) -> Result<Sites, String> {
    match (requested, allowed) {
        (r, Sites::All) => Ok(r),
        (Sites::All, Sites::Only(list)) => Ok(Sites::Only(list.clone())),
        (Sites::Only(asked), Sites::Only(list)) => {
            if let Some(s) = asked.iter().find(|s| !list.contains(s)) {
                return Err(format!("this token may not read site \"{s}\""));
            }
            Ok(Sites::Only(asked))
        }
    }
}

/// `%XX` and `+` decoded (invalid escapes stay as they are).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as [`Args`] and the format (default `json`).
fn parse_query(kind: String, query: Option<&str>) -> Result<(Args, String), String> {
    let mut args = Args {
        kind,
        ..Args::default()
    };
    let mut format = "json".to_owned();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match decode(k).as_str() {
            "site" => args.sites.push(v),
            "year" => args.year = Some(v),
            "month" => args.month = Some(v),
            "from" => args.from = Some(v),
            "to" => args.to = Some(v),
            "granularity" => args.granularity = Some(v),
            "due_within" => args.due_within = Some(v),
            "format" => format = v,
            other => {
                return Err(format!(
                    "unknown parameter \"{other}\"; use site, year, month, from, to, granularity, due_within or format"
                ));
            }
        }
    }
    Ok((args, format))
}

/// `GET /api/reports/{kind}?…`.
pub(super) async fn get_report(
    State(state): State<ApiState>,
    Path(kind): Path<String>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(target) = state.reports.as_ref() else {
        return error(StatusCode::NOT_IMPLEMENTED, "reports are not available");
    };
    let config = Arc::clone(&target.config.borrow());
    let (args, format) = match parse_query(kind, query.as_deref()) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let format = match Format::parse(&format) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // A site token learns nothing of other sites: a name outside its scope
    // is 403 before the configuration is asked (whose "unknown site"
    // message would list every site).
    if let Scope::Sites(own) = &scope {
        let asked = args.sites.iter().flat_map(|s| s.split(',')).map(str::trim);
        if let Some(other) = asked
            .filter(|s| !s.is_empty())
            .find(|s| !own.iter().any(|o| o == s))
        {
            return error(
                StatusCode::FORBIDDEN,
                &format!("this token may not read site \"{other}\""),
            );
        }
    }
    let mut req = match run::parse_request(&config, &args, jiff::Timestamp::now()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    req.sites = match restrict(req.sites, &allowed_sites(&scope)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::FORBIDDEN, &e),
    };
    let store = match Source::open(&config, &InfluxOverrides::default(), false) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match run::build(&config, &store, &req).await {
        Ok(output) => {
            if format == Format::Json {
                return Json(output.json).into_response();
            }
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                )],
                run::render(&output, format),
            )
                .into_response()
        }
        Err(ReportError::Request(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(e @ ReportError::Store(_)) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_sites_are_restricted() {
        let (a, f) = parse_query(
            "targets".into(),
            Some("site=a%2Cb&site=c&year=2025&format=csv"),
        )
        .expect("parse");
        assert_eq!(a.sites, vec!["a,b".to_owned(), "c".to_owned()]);
        assert_eq!(a.year.as_deref(), Some("2025"));
        assert_eq!(f, "csv");
        assert!(parse_query("x".into(), Some("sight=a")).is_err());
        let only = |v: &[&str]| Sites::Only(v.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(restrict(Sites::All, &only(&["a"])), Ok(only(&["a"])));
        assert_eq!(
            restrict(only(&["b"]), &only(&["a"])),
            Err("this token may not read site \"b\"".to_owned())
        );
        assert_eq!(restrict(only(&["b"]), &Sites::All), Ok(only(&["b"])));
    }
}
