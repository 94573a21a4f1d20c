//! File sink: appends line protocol to a local file, the demo's destination
//! when no InfluxDB is at hand, and a plain record anyone can `tail`.
//!
//! The parent directories are created on first use. Each batch is appended
//! with one `write_all` and flushed to the operating system, so another
//! process sees whole batches; it is **not** fsynced per batch (that would
//! cost a disk flush per batch for a debugging aid): [`FileSink::sync`] runs
//! once at shutdown, and durability across power loss is the spool's job.
//! An I/O error is retryable (a full disk may be freed); the file is
//! truncated back to its length before the failed append, so a retry does not
//! leave half a batch in front of the whole one.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::sinks::influx::WriteError;

/// Appends batches of line protocol to one file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    /// Opened lazily; dropped after an error so the next write reopens.
    file: tokio::sync::Mutex<Option<tokio::fs::File>>,
}

impl FileSink {
    /// A sink for `path`; nothing is opened yet.
    pub fn new(path: impl Into<PathBuf>) -> FileSink {
        FileSink {
            path: path.into(),
            file: tokio::sync::Mutex::new(None),
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `body` (whole lines) and flushes it to the operating system.
    ///
    /// # Errors
    /// [`WriteError::Retryable`] on any I/O error, naming the file.
    pub async fn write(&self, body: &[u8]) -> Result<(), WriteError> {
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            *guard = Some(self.open().await.map_err(|e| self.error("open", &e))?);
        }
        let Some(file) = guard.as_mut() else {
            return Err(self.error("open", &std::io::Error::other("no file handle")));
        };
        let before = match file.metadata().await {
            Ok(m) => m.len(),
            Err(e) => {
                *guard = None;
                return Err(self.error("stat", &e));
            }
        };
        let written = async {
            file.write_all(body).await?;
            file.flush().await
        }
        .await;
        if let Err(e) = written {
            // Best effort: remove the torn tail so the retry appends cleanly.
            let _ = file.set_len(before).await;
            *guard = None;
            return Err(self.error("append to", &e));
        }
        Ok(())
    }

    /// Flushes the file to disk (`fsync`), once at shutdown.
    ///
    /// # Errors
    /// [`WriteError::Retryable`] when the sync fails.
    pub async fn sync(&self) -> Result<(), WriteError> {
        match self.file.lock().await.as_mut() {
            Some(file) => file.sync_data().await.map_err(|e| self.error("sync", &e)),
            None => Ok(()),
        }
    }

    async fn open(&self) -> std::io::Result<tokio::fs::File> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
    }

    fn error(&self, what: &str, e: &std::io::Error) -> WriteError {
        WriteError::Retryable {
            reason: format!("cannot {what} {}: {e}", self.path.display()),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.lp");
        let sink = FileSink::new(&path);
        sink.write(b"m v=1 1\n").await.unwrap();
        sink.write(b"m v=2 2\nm v=3 3\n").await.unwrap();
        sink.sync().await.unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"m v=1 1\nm v=2 2\nm v=3 3\n"
        );
    }

    #[tokio::test]
    async fn unwritable_path_is_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        // A regular file where a directory should be.
        let sink = FileSink::new(blocker.join("out.lp"));
        match sink.write(b"m v=1 1\n").await {
            Err(WriteError::Retryable { reason, .. }) => {
                assert!(reason.contains("cannot open"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
