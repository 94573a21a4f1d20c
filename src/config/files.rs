//! Reading the site and profile directories.
//!
//! Why a file of its own: which files count (`*.toml`, no dot files, sorted
//! by name) and how an unreadable directory or file is reported are the
//! same for both directories, and are the only file-system work of the
//! loader besides the main file, TLS files and a coefficient table.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::check::Problems;

/// One site or profile file's text.
pub(super) struct SourceText {
    /// Where it was read from (or is reported as, for texts given in code).
    pub(super) path: PathBuf,
    /// The file name without `.toml`: a profile's id.
    pub(super) stem: String,
    /// The contents.
    pub(super) text: String,
}

/// `name` without its directory and extension (`fz01.toml` → `fz01`).
pub(super) fn file_stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Every readable `*.toml` in `dir`, sorted by name. A missing directory is a
/// problem of the main file at `key`; an unreadable file is a problem of that file.
pub(super) fn read_dir(
    dir: &Path,
    key: &str,
    main_problems: &mut Problems,
    file_problems: &mut Vec<ConfigError>,
) -> Vec<SourceText> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            main_problems.push(
                key,
                format!(
                    "directory \"{}\" does not exist; create it or change `{}`",
                    dir.display(),
                    key.rsplit('.').next().unwrap_or(key)
                ),
            );
            return Vec::new();
        }
        Err(e) => {
            main_problems.push(
                key,
                format!(
                    "cannot read directory \"{}\": {}",
                    dir.display(),
                    io_message(&e)
                ),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            // Dot files are editor and lock files, not configuration.
            p.extension().is_some_and(|x| x == "toml")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => out.push(SourceText {
                stem: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path,
                text,
            }),
            Err(e) => file_problems.push(ConfigError {
                file: path,
                key: String::new(),
                message: format!("cannot read: {}", io_message(&e)),
            }),
        }
    }
    out
}

/// An I/O error as a message: the common kinds in plain words.
pub(super) fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::InvalidData => "not valid UTF-8 text".to_owned(),
        _ => e.to_string(),
    }
}
