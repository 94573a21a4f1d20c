//! The HTTP API of a running gateway: health, readiness, Prometheus metrics,
//! per-meter, per-site, per-endpoint (bus) and per-boiler status as JSON,
//! the status page, reload, and manual entries ([`entries`]).
//!
//! It only reads the [`StatusBoard`](crate::telemetry::StatusBoard) and [`Stats`] (and forwards reload
//! requests to the app's reload loop), so a slow client never slows the
//! pollers. Bound to 127.0.0.1 by default; with a token configured every
//! route but `/health` (and the page, which holds no data) wants
//! `Authorization: Bearer <token>`, compared in constant time against every
//! configured token so the comparison leaks no prefix of any token.
//!
//! Scopes ([`scope`]): the operator's token (`[api] token`) opens
//! everything; a site token (`EMGATE__API__SITE_TOKENS`) reads and enters
//! data only for its sites. Lists are filtered to the scope; a request that
//! names a site out of scope (`?site=`, a meter of another site, an entry
//! for another site) is answered 403, never an empty 200. Operator-only
//! routes (403 for a site token): `/metrics` (labels of every site),
//! `/api/endpoints` (buses are shared by sites) and `/api/reload` (changes
//! the gateway). `/ready` is open to every token: it says whether the
//! gateway works, nothing about any site.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{Secret, SiteToken};
use crate::reports::Sites;

pub mod entries;
pub mod reports;
pub mod scope;
use crate::telemetry::{Stats, Summary};
pub use entries::EntryTarget;
pub use reports::ReportsTarget;
use scope::{Check, Scope, Tokens, operator_only, sites_for};

/// The status page, served from the binary (no CDN).
const PAGE: &str = include_str!("page.html");

/// Everything the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// Live per-meter, per-endpoint and per-site state of the running
    /// configuration (swapped at each reload).
    pub board: crate::telemetry::SharedBoard,
    /// Process-wide counters.
    pub stats: Arc<Stats>,
    /// Bearer token required on every route but `/health`, when set: the
    /// operator's, it opens everything.
    pub token: Option<Secret>,
    /// Tokens that open only their sites (see [`scope`]).
    pub site_tokens: Vec<SiteToken>,
    /// Where `POST /api/reload` sends its request; `None`: reload unavailable.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// Where `POST /api/entries` validates and appends; `None`: unavailable.
    pub entries: Option<EntryTarget>,
    /// Where `GET /api/reports/{kind}` reads its configuration; `None`: unavailable.
    pub reports: Option<ReportsTarget>,
}

/// A request to reload the configuration; the app's reload loop answers on
/// `reply` with a summary of what changed, or the configuration errors
/// (the old configuration keeps running).
#[derive(Debug)]
pub struct ReloadRequest {
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<String, Vec<String>>>,
}

/// Current wall-clock time, Unix seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A JSON error body `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/meters", get(meters))
        .route("/api/meters/{id}", get(meter))
        .route("/api/sites", get(sites))
        .route("/api/endpoints", get(endpoints))
        .route("/api/boilers", get(boilers))
        .route("/api/summary", get(summary))
        .route("/api/reload", post(reload))
        .route("/api/entries", post(entries::post_entry))
        .route("/api/reports/{kind}", get(reports::get_report))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(Tokens::new(state.token.clone(), &state.site_tokens)),
            require_token,
        ));
    // The page is open like /health: it holds no data, and a browser cannot
    // send a bearer token for it. Its script sends the token (from the
    // URL's `#token=`) with every API call.
    Router::new()
        .route("/health", get(health))
        .route("/", get(page))
        .merge(protected)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// The listener's I/O error, if serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            auth = state.token.is_some(),
            site_tokens = state.site_tokens.len(),
            "HTTP API listening"
        );
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Resolves the bearer token to a [`Scope`] (put in the request's
/// extensions) or answers 401.
async fn require_token(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let scope = match (
        tokens.check(given.unwrap_or_default().trim().as_bytes()),
        given,
    ) {
        (Check::Open, _) => Scope::All,
        (Check::Granted(scope), Some(_)) => scope,
        (_, None) => {
            return unauthorized("missing bearer token (Authorization: Bearer <token>)");
        }
        (Check::Invalid, Some(_)) => {
            return unauthorized("invalid bearer token");
        }
    };
    request.extensions_mut().insert(scope);
    next.run(request).await
}

/// The value of `name` in a raw query string (`a=1&site=fz01`), when given
/// and not empty. Ids are plain ASCII, so no percent-decoding beyond `%2C`
/// (a comma, as browsers encode it).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%2C", ",").replace("%2c", ","))
        .filter(|v| !v.trim().is_empty())
}

/// The sites a listing shows: the scope's, narrowed by `?site=` (403 for a
/// site out of scope; 404 for a site the operator names that does not exist).
#[allow(
    clippy::result_large_err,
    reason = "the handler returns the error response as it is, at once"
)]
fn listing(
    scope: &Scope,
    query: Option<&str>,
    board: &crate::telemetry::StatusBoard,
) -> Result<Sites, Response> {
    let requested = query_param(query, "site");
    let sites = sites_for(scope, requested.as_deref())?;
    if let Sites::Only(ids) = &sites {
        let known = board.sites(now_secs());
        if let Some(missing) = ids.iter().find(|id| !known.iter().any(|s| s.id == **id)) {
            return Err(error(
                StatusCode::NOT_FOUND,
                &format!("no site \"{missing}\""),
            ));
        }
    }
    Ok(sites)
}

/// Whether `site` is among `sites`.
fn shows(sites: &Sites, site: &str) -> bool {
    match sites {
        Sites::All => true,
        Sites::Only(ids) => ids.iter().any(|s| s == site),
    }
}

fn unauthorized(reason: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, reason);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `/ready`: open to every valid token (it tells nothing about any site).
async fn ready(State(state): State<ApiState>) -> Response {
    let r = state.board.get().readiness(&state.stats);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn metrics(State(state): State<ApiState>, Extension(scope): Extension<Scope>) -> Response {
    if scope != Scope::All {
        return operator_only("/metrics");
    }
    let mut body = String::with_capacity(16 * 1024);
    state.board.get().render_metrics(&state.stats, &mut body);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn meters(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> Response {
    let board = state.board.get();
    let sites = match listing(&scope, query.as_deref(), &board) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut list = board.meters(now_secs());
    list.retain(|m| shows(&sites, &m.site));
    Json(list).into_response()
}

/// One meter; for a site token, a meter outside its sites is 403 whether
/// it exists or not (the token learns nothing about other sites' meters).
async fn meter(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Response {
    match state.board.get().meter(&id, now_secs()) {
        Some(m) if scope.allows(&m.site) => Json(m).into_response(),
        _ if scope != Scope::All => error(
            StatusCode::FORBIDDEN,
            &format!(
                "this token may not read meter \"{id}\"; it reads the meters of {}",
                scope.describe()
            ),
        ),
        _ => error(StatusCode::NOT_FOUND, &format!("no meter {id:?}")),
    }
}

async fn sites(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> Response {
    let board = state.board.get();
    let sites = match listing(&scope, query.as_deref(), &board) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut list = board.sites(now_secs());
    list.retain(|s| shows(&sites, &s.id));
    Json(list).into_response()
}

/// Buses carry meters of several sites: operator only.
async fn endpoints(State(state): State<ApiState>, Extension(scope): Extension<Scope>) -> Response {
    if scope != Scope::All {
        return operator_only("/api/endpoints (buses are shared by sites)");
    }
    Json(state.board.get().endpoints()).into_response()
}

async fn boilers(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> Response {
    let board = state.board.get();
    let sites = match listing(&scope, query.as_deref(), &board) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut list = board.boilers();
    list.retain(|b| shows(&sites, &b.site));
    Json(list).into_response()
}

/// Meter counts over the scope's sites (narrowed by `?site=`); the
/// throughput and spool counters are the gateway's (shared by every site,
/// naming none).
async fn summary(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> Response {
    let now = now_secs();
    let board = state.board.get();
    let sites = match listing(&scope, query.as_deref(), &board) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (up, down, bad, unknown) = if sites == Sites::All {
        board.state_counts(now)
    } else {
        let mut c = (0, 0, 0, 0);
        for m in board.meters(now).iter().filter(|m| shows(&sites, &m.site)) {
            match m.state.as_str() {
                "up" => c.0 += 1,
                "down" => c.1 += 1,
                "bad" => c.2 += 1,
                _ => c.3 += 1,
            }
        }
        c
    };
    let s = &state.stats;
    Json(Summary {
        time: now,
        readings_total: Stats::get(&s.readings),
        lines_spooled: Stats::get(&s.lines_spooled),
        spool_bytes: Stats::get(&s.spool_bytes),
        spool_records: Stats::get(&s.spool_records),
        lines_written: Stats::get(&s.lines_written),
        meters: up + down + bad + unknown,
        up,
        down,
        bad,
        sink_reachable: board.sink_reachable(),
    })
    .into_response()
}

async fn reload(State(state): State<ApiState>, Extension(scope): Extension<Scope>) -> Response {
    if scope != Scope::All {
        return operator_only("/api/reload");
    }
    let Some(tx) = state.reload.as_ref() else {
        return error(StatusCode::NOT_IMPLEMENTED, "reload is not available");
    };
    let (reply, answer) = oneshot::channel();
    if tx.send(ReloadRequest { reply }).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(summary)) => {
            Json(serde_json::json!({ "ok": true, "summary": summary })).into_response()
        }
        Ok(Err(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "ok": false, "errors": errors })),
        )
            .into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the reload loop stopped before answering",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::query_param;

    #[test]
    fn query_parameters() {
        assert_eq!(query_param(Some("site=a"), "site").as_deref(), Some("a"));
        assert_eq!(
            query_param(Some("x=1&site=a%2Cb"), "site").as_deref(),
            Some("a,b")
        );
        assert_eq!(query_param(Some("site="), "site"), None);
        assert_eq!(query_param(Some("sites=a"), "site"), None);
        assert_eq!(query_param(None, "site"), None);
    }
}
