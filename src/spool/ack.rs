//! The persisted acknowledged position: the small `ack` file and its atomic
//! replacement through [`checkpoint::write_atomic`] (write `ack.tmp`, fsync,
//! rename over `ack`, fsync the directory), so that after any crash the file
//! holds either the old or the new position, never a mix. The file keeps its
//! own fixed 28-byte format ([`super::format::ACK_FILE_LEN`]).

use std::fs;
use std::io;
use std::path::Path;

use super::SpoolError;
use super::format::{decode_ack, encode_ack};
use crate::checkpoint;

/// Name of the acknowledged-position file inside the spool directory.
pub const ACK_FILE: &str = "ack";
/// Name of the temporary file an update is written to before the rename
/// ([`checkpoint::tmp_path`] of [`ACK_FILE`]).
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
    checkpoint::write_atomic(&dir.join(ACK_FILE), &encode_ack(segment, offset)).map_err(|e| {
        let (path, source) = e.into_parts();
        SpoolError::Io { path, source }
    })
}

/// Fsyncs the directory itself, making renames, creations and deletions in
/// it durable.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    checkpoint::sync_dir(dir).map_err(|source| SpoolError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_file_is_replaced_through_the_shared_temporary_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        // Open removes exactly the temporary file the replacement writes.
        assert_eq!(
            checkpoint::tmp_path(&dir.join(ACK_FILE)),
            dir.join(ACK_TMP_FILE)
        );
        assert_eq!(read_ack(dir), AckState::Missing);
        write_ack(dir, 3, 4096).expect("write");
        write_ack(dir, 4, 8).expect("write");
        assert_eq!(read_ack(dir), AckState::Valid(4, 8));
        assert_eq!(fs::read(dir.join(ACK_FILE)).expect("read").len(), 28);
        assert!(!remove_leftover_tmp(dir).expect("remove"));
        let err = write_ack(&dir.join("gone"), 1, 2).expect_err("no directory");
        assert!(
            matches!(&err, SpoolError::Io { path, .. } if path.ends_with("gone/ack.tmp")),
            "{err}"
        );
    }
}
