//! Checking what people write: the machinery every file loader shares.
//!
//! Why a module of its own, at the bottom of the crate: the configuration
//! loader (`config`) and the profile loader (`profiles`) read TOML the same
//! way and report problems the same way, and neither
//! should import the other for it. This module imports nothing from the
//! crate, so both can stand on it.
//!
//! Why the machinery looks like this: serde alone stops at the first
//! problem, and the operator of a gateway wants every problem of a
//! configuration in one run (STYLE.md habit 2). So the raw layers built on
//! it are deliberately permissive in *shape* and strict in *scalars*:
//!
//! * every raw field is optional, so a missing key is reported by the loader
//!   with a message that says what to write, not by serde;
//! * arrays of tables (`[[meters]]`, `[[points]]`, ...) and sections are kept
//!   as untyped `config::Value`s and deserialized one element at a time with
//!   `table`, so a type error costs one element, not the whole file;
//! * unknown keys are collected with `serde_ignored` (all of them, with a
//!   "did you mean" taken from the struct's own field list) instead of
//!   `deny_unknown_fields`, which would stop at the first;
//! * type errors carry their key path through `serde_path_to_error`;
//! * scalars use the strict wrappers [`Int`], [`Float`], [`Text`] and
//!   [`Flag`]: the `config` crate would otherwise round `1.5` to an integer or
//!   turn `5` into a string. The one leniency kept is a *string* holding a
//!   number or a boolean, because environment overrides
//!   (`EMGATE__INFLUXDB__BATCH_SIZE=100`) only ever provide strings.
//!
//! Every problem lands in a `Problems` collector as one [`ConfigError`]
//! (`FILE: key.path: message`); the value checkers (`required_id`, `int`,
//! `choice`, ...) word their messages the same way: lowercase, the bad input
//! quoted, the fix suggested (`suggest` for "did you mean").

mod scalars;
mod suggest;
mod tables;
mod values;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub use scalars::{Flag, Float, Int, Text};
pub(crate) use suggest::{shorten, suggest, unknown_ref};
// For the tests that pin the field lists of raw structs.
#[cfg(test)]
pub(crate) use tables::field_names;
pub(crate) use tables::{array, kind_name, parse_toml, table};
pub(crate) use values::{
    backoff_range, choice, choice_ci, int, is_valid_id, millis, path_key, ratio, required_id,
    required_text, steam_keys, timezone,
};

/// A secret (token, password): never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One configuration problem, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the problem is in (or `<env>` for environment overrides).
    pub file: PathBuf,
    /// Dotted key path, e.g. `meters[3].profile`.
    pub key: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // File-level problems (unreadable file, TOML syntax) have no key.
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Problems found in one file, each with its key path.
#[derive(Debug)]
pub(crate) struct Problems {
    /// File the keys belong to.
    pub file: PathBuf,
    /// What was found so far.
    pub list: Vec<ConfigError>,
    /// Keys that already have a type error: nothing more is said about them.
    pub bad_keys: HashSet<String>,
}

impl Problems {
    /// No problem yet in `file`.
    pub fn new(file: &Path) -> Problems {
        Problems {
            file: file.to_path_buf(),
            list: Vec::new(),
            bad_keys: HashSet::new(),
        }
    }

    /// Records a problem at `key`.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        if self.bad_keys.contains(&key) {
            return;
        }
        self.list.push(ConfigError {
            file: self.file.clone(),
            key,
            message: message.into(),
        });
    }
}

/// `prefix` and `sub` joined as a key path (`meters[2]` + `id` = `meters[2].id`).
pub(crate) fn join(prefix: &str, sub: &str) -> String {
    if prefix.is_empty() {
        sub.to_owned()
    } else if sub.is_empty() || sub.starts_with('[') {
        format!("{prefix}{sub}")
    } else {
        format!("{prefix}.{sub}")
    }
}
