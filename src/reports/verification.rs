//! PLACEHOLDER for the `verification` report (helper rcomp writes the real one; the
//! lead replaces this file at merge). It exists so the dispatch in
//! `run.rs` compiles with its final signature.

use super::{Output, ReportError, Request, Store};
use crate::config::Config;

/// Not built yet: always [`ReportError::Request`].
///
/// # Errors
/// Always.
#[allow(clippy::unused_async)]
pub async fn build(
    _config: &Config,
    _store: &impl Store,
    _req: &Request,
) -> Result<Output, ReportError> {
    Err(ReportError::Request("not built yet".to_owned()))
}
