//! The HTTP API of a running gateway: health, readiness, Prometheus metrics,
//! per-meter, per-site, per-endpoint (bus) and per-boiler status as JSON,
//! the status page, reload, and manual entries ([`entries`]).
//!
//! It only reads the [`StatusBoard`](crate::telemetry::StatusBoard) and [`Stats`] (and forwards reload
//! requests to the app's reload loop), so a slow client never slows the
//! pollers. Bound to 127.0.0.1 by default; with a token configured every
//! route but `/health` wants `Authorization: Bearer <token>`, compared in
//! constant time so the comparison leaks no prefix of the token.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Secret;

pub mod entries;
pub mod reports;
use crate::telemetry::{Stats, Summary};
pub use entries::EntryTarget;
pub use reports::ReportsTarget;

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
    /// Bearer token required on every route but `/health`, when set.
    pub token: Option<Secret>,
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
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
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
        tracing::info!(%addr, auth = state.token.is_some(), "HTTP API listening");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Constant-time equality: the time taken does not depend on where the
/// inputs first differ (only on the length of `given`).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &g) in given.iter().enumerate() {
        let e = expected.get(i).copied().unwrap_or(0);
        diff |= g ^ e;
    }
    diff == 0
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(token) = state.token.as_ref().filter(|t| !t.is_empty()) else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.trim().as_bytes(), token.expose().as_bytes()) => {
            next.run(request).await
        }
        Some(_) => unauthorized("invalid bearer token"),
        None => unauthorized("missing bearer token (Authorization: Bearer <token>)"),
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

async fn ready(State(state): State<ApiState>) -> Response {
    let r = state.board.get().readiness(&state.stats);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
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

async fn meters(State(state): State<ApiState>) -> Response {
    Json(state.board.get().meters(now_secs())).into_response()
}

async fn meter(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.board.get().meter(&id, now_secs()) {
        Some(m) => Json(m).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no meter {id:?}")),
    }
}

async fn sites(State(state): State<ApiState>) -> Response {
    Json(state.board.get().sites(now_secs())).into_response()
}

async fn endpoints(State(state): State<ApiState>) -> Response {
    Json(state.board.get().endpoints()).into_response()
}

async fn boilers(State(state): State<ApiState>) -> Response {
    Json(state.board.get().boilers()).into_response()
}

async fn summary(State(state): State<ApiState>) -> Response {
    let now = now_secs();
    let (up, down, bad, unknown) = state.board.get().state_counts(now);
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
        sink_reachable: state.board.get().sink_reachable(),
    })
    .into_response()
}

async fn reload(State(state): State<ApiState>) -> Response {
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
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
