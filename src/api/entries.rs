//! `POST /api/entries`: a manual entry through the running gateway.
//!
//! Why through the spool: the entry's line is appended like a chunk of
//! readings, so it is as durable as they are and reaches the output with
//! them (retries, outages). It is validated against the configuration in
//! force (replaced at each reload); a bad entry is answered 400 with its
//! message and nothing is appended.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::scope::Scope;
use super::{ApiState, error};
use crate::config::Config;
use crate::entries::{EntryInput, validate};
use crate::spool::{Appended, Spool};
use crate::telemetry::Stats;

/// Who an entry is by when the body names no one: the API token's holder.
pub const DEFAULT_ENTERED_BY: &str = "api";

/// What `POST /api/entries` needs from the running gateway.
#[derive(Clone)]
pub struct EntryTarget {
    /// The configuration in force (the app sends the new one at each reload).
    pub config: watch::Receiver<Arc<Config>>,
    /// The gateway's spool.
    pub spool: Spool,
    /// The gateway's local archive, which keeps a copy of each entry.
    pub archive: Option<crate::archive::Archive>,
}

/// Validates the JSON body (the fields of [`EntryInput`]) and appends its
/// line to the spool: 201 with the entry, 400 with the problem, 503 when
/// the spool is full or failing, 403 for a site out of the token's scope
/// (checked before anything else about the entry).
pub(super) async fn post_entry(
    State(state): State<ApiState>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> Response {
    let Some(target) = state.entries.as_ref() else {
        return error(StatusCode::NOT_IMPLEMENTED, "entries are not available");
    };
    let mut input: EntryInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid entry JSON: {e}")),
    };
    if !scope.allows(&input.site) {
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "this token may not enter data for site \"{}\"; it enters data for {}",
                input.site,
                scope.describe()
            ),
        );
    }
    if input.entered_by.is_none() {
        input.entered_by = Some(DEFAULT_ENTERED_BY.to_owned());
    }
    let config = Arc::clone(&target.config.borrow());
    let entry = match validate(&input, &config, jiff::Timestamp::now(), fastrand::u128(..)) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut line = Vec::with_capacity(256);
    entry.encode(&mut line);
    match target.spool.append(&line) {
        Ok(Appended::Stored) => {
            if let Some(archive) = &target.archive {
                archive.append(&line);
            }
            Stats::add(&state.stats.lines_spooled, 1);
            state.stats.update_spool(&target.spool);
            (StatusCode::CREATED, Json(entry)).into_response()
        }
        Ok(Appended::Full) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the spool is full; the entry was not stored, try again later",
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the entry was not stored: {e}"),
        ),
    }
}
