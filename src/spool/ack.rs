//! The persisted acknowledged position: the small `ack` file and its atomic
//! replacement (write `ack.tmp`, fsync, rename over `ack`, fsync the
//! directory), so that after any crash the file holds either the old or the
//! new position, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::SpoolError;
use super::format::{decode_ack, encode_ack};

/// Name of the acknowledged-position file inside the spool directory.
pub const ACK_FILE: &str = "ack";
/// Name of the temporary file an update is written to before the rename.
pub const ACK_TMP_FILE: &str = "ack.tmp";

/// What the `ack` file said at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// No `ack` file.
    Missing,
    /// An `ack` file with the wrong size, magic or checksum.
    Corrupt,
    /// A valid position (segment id, offset).
    Valid(u64, u64),
}

/// Reads the `ack` file in `dir`. An unreadable file counts as corrupt: the
/// spool then redelivers from the oldest segment rather than refusing to start.
pub fn read_ack(dir: &Path) -> AckState {
    match fs::read(dir.join(ACK_FILE)) {
        Ok(bytes) => decode_ack(&bytes).map_or(AckState::Corrupt, |(s, o)| AckState::Valid(s, o)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => AckState::Missing,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "spool: cannot read the ack file; redelivering from the oldest segment");
            AckState::Corrupt
        }
    }
}

/// Removes a leftover `ack.tmp` from an update a crash interrupted: the
/// rename never happened, so `ack` still holds the previous position.
pub fn remove_leftover_tmp(dir: &Path) -> Result<bool, SpoolError> {
    let path = dir.join(ACK_TMP_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(SpoolError::Io { path, source }),
    }
}

/// Durably replaces the `ack` file with position (`segment`, `offset`).
pub fn write_ack(dir: &Path, segment: u64, offset: u64) -> Result<(), SpoolError> {
    let tmp = dir.join(ACK_TMP_FILE);
    let io_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| SpoolError::Io { path, source }
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(&encode_ack(segment, offset))
        .map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    let dst = dir.join(ACK_FILE);
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    sync_dir(dir)
}

/// Fsyncs the directory itself, making renames, creations and deletions in
/// it durable.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
