//! Config loading and validation. (stub)
use std::path::Path;

use super::{Config, ConfigErrors};

/// Loads and validates the configuration at `path`.
///
/// # Errors
/// Every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let _ = path;
    todo!()
}

/// Loads a configuration from strings (tests).
///
/// # Errors
/// Every problem found.
pub fn load_str_for_tests(main: &str) -> Result<Config, ConfigErrors> {
    let _ = main;
    todo!()
}
