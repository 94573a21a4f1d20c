//! The checkpoint writer: a thread of its own that writes, fsyncs and
//! renames checkpoint files, so neither the writes nor the fsyncs run on an
//! async runtime's worker threads, and a checkpoint is never held in memory
//! whole (a thousand 1 000-point meters make a 13 MB aggregation state).
//!
//! A [`BodyWriter`] from [`Writer::begin`] hands its bytes over in chunks of
//! [`CHUNK`] through a bounded channel; the thread appends them to
//! `<path>.tmp`, keeping the CRC-32C of the body as it goes. At
//! [`BodyWriter::commit`] it fills in the body length, appends the checksum
//! of header and body (combined, since the length in the header is known
//! only at the end) and completes [`super::write_atomic`]'s steps: fsync,
//! rename, directory fsync. The file is byte for byte what
//! [`BodyWriter::finish`] would have built.
//!
//! Backpressure: when the disk is slower than the codec, the channel fills
//! and the codec waits (at most [`QUEUE`] chunks are in flight). Files are
//! written one after another in the order they were begun. Dropping the
//! [`Writer`] waits for what was committed, so the checkpoint saved at
//! shutdown is on disk when the stage is gone.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{BodyWriter, HEADER_LEN, LEGACY_HEADER_LEN, WriteError, parent_dir, tmp_path};

/// Bytes handed to the thread at a time.
pub(super) const CHUNK: usize = 64 * 1024;
/// Chunks queued before the codec waits.
const QUEUE: usize = 16;

/// What the thread is told.
pub(super) enum Msg {
    /// A new file: the target path, then its first bytes (the header).
    Begin(PathBuf),
    /// Bytes of the file being written.
    Chunk(Vec<u8>),
    /// The body is complete: finish and replace the target.
    Commit,
}

/// Called on the writer thread with the outcome of every committed file.
pub type OnDone = Box<dyn FnMut(&Path, Result<u64, WriteError>) + Send>;

/// The writer thread of one kind of checkpoint.
pub struct Writer {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the thread (named `name`); `on_done` hears how each file went
    /// (its size in bytes, or the step that failed).
    ///
    /// # Errors
    /// When the operating system refuses a thread.
    pub fn spawn(name: &str, on_done: OnDone) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&rx, on_done))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A body writer for a checkpoint of `kind` that replaces `path` when
    /// committed.
    #[must_use]
    pub fn begin(&self, kind: &super::Kind, path: &Path) -> BodyWriter {
        let mut w = BodyWriter::new(kind);
        if let Some(tx) = &self.tx {
            // A send fails only when the thread is gone; the file is then
            // simply not written (the thread reported why it stopped).
            let _ = tx.send(Msg::Begin(path.to_path_buf()));
            w.stream = Some(tx.clone());
        }
        w
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One file in progress on the thread.
struct Open {
    path: PathBuf,
    tmp: PathBuf,
    file: Result<File, WriteError>,
    /// Bytes written, header included.
    len: u64,
    /// CRC-32C of the body bytes (everything after the header).
    body_crc: u32,
    /// The header as sent, its length field still zero.
    header: Vec<u8>,
}

fn run(rx: &Receiver<Msg>, mut on_done: OnDone) {
    let mut open: Option<Open> = None;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Begin(path) => {
                let tmp = tmp_path(&path);
                let file = std::fs::create_dir_all(parent_dir(&path))
                    .and_then(|()| File::create(&tmp))
                    .map_err(|source| WriteError::Create {
                        path: tmp.clone(),
                        source,
                    });
                open = Some(Open {
                    path,
                    tmp,
                    file,
                    len: 0,
                    body_crc: 0,
                    header: Vec::with_capacity(HEADER_LEN),
                });
            }
            Msg::Chunk(bytes) => {
                if let Some(o) = &mut open {
                    o.append(&bytes);
                }
            }
            Msg::Commit => {
                if let Some(o) = open.take() {
                    let path = o.path.clone();
                    on_done(&path, o.commit());
                }
            }
        }
    }
}

impl Open {
    fn append(&mut self, bytes: &[u8]) {
        let head = (HEADER_LEN - self.header.len()).min(bytes.len());
        self.header.extend_from_slice(&bytes[..head]);
        self.body_crc = crc32c::crc32c_append(self.body_crc, &bytes[head..]);
        let tmp = &self.tmp;
        if let Ok(f) = &mut self.file
            && let Err(source) = f.write_all(bytes)
        {
            self.file = Err(WriteError::Write {
                path: tmp.clone(),
                source,
            });
        }
        self.len += bytes.len() as u64;
    }

    /// Length, checksum, fsync, rename, directory fsync.
    fn commit(self) -> Result<u64, WriteError> {
        let Open {
            path,
            tmp,
            file,
            len,
            body_crc,
            mut header,
        } = self;
        let mut file = file?;
        let body = len.saturating_sub(HEADER_LEN as u64);
        let len_field = u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes();
        header.resize(HEADER_LEN, 0);
        header[LEGACY_HEADER_LEN..HEADER_LEN].copy_from_slice(&len_field);
        let body_len = usize::try_from(body).unwrap_or(usize::MAX);
        let crc = crc32c::crc32c_combine(crc32c::crc32c(&header), body_crc, body_len);
        let write = |source| WriteError::Write {
            path: tmp.clone(),
            source,
        };
        file.write_all(&crc.to_le_bytes()).map_err(write)?;
        file.seek(SeekFrom::Start(LEGACY_HEADER_LEN as u64))
            .and_then(|_| file.write_all(&len_field))
            .map_err(write)?;
        file.sync_all().map_err(|source| WriteError::Sync {
            path: tmp.clone(),
            source,
        })?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|source| WriteError::Rename {
            from: tmp.clone(),
            to: path.clone(),
            source,
        })?;
        let dir = parent_dir(&path);
        super::sync_dir(dir).map_err(|source| WriteError::SyncDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        Ok(len + 4)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::checkpoint::{Kind, decode};

    const KIND: Kind = Kind {
        name: "test",
        magic: *b"TST1",
        version: 3,
        oldest: 3,
        legacy: &[],
    };

    fn fill(w: &mut BodyWriter) {
        for i in 0..50_000_u64 {
            w.u64(i);
            w.f64(i as f64 / 3.0);
            w.u8(7);
        }
        w.str("end");
    }

    type Log = Arc<Mutex<Vec<(PathBuf, Result<u64, String>)>>>;

    fn writer() -> (Writer, Log) {
        let log: Log = Arc::default();
        let l = log.clone();
        let w = Writer::spawn(
            "test-checkpoint",
            Box::new(move |p, r| {
                l.lock()
                    .expect("lock")
                    .push((p.to_path_buf(), r.map_err(|e| e.to_string())));
            }),
        )
        .expect("thread");
        (w, log)
    }

    #[test]
    fn a_streamed_file_is_byte_for_byte_the_built_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub").join("state");
        let mut built = BodyWriter::new(&KIND);
        fill(&mut built);
        let built = built.finish();
        assert!(built.len() > 10 * CHUNK, "several chunks: {}", built.len());
        let (w, log) = writer();
        // Twice: the second replaces the first.
        for _ in 0..2 {
            let mut s = w.begin(&KIND, &path);
            fill(&mut s);
            s.commit();
        }
        drop(w);
        let on_disk = std::fs::read(&path).expect("written");
        assert_eq!(on_disk, built);
        assert!(decode(&KIND, &on_disk).is_ok());
        assert!(!tmp_path(&path).exists());
        let log = log.lock().expect("lock");
        assert_eq!(log.len(), 2);
        assert_eq!(log[1], (path.clone(), Ok(built.len() as u64)));
    }

    #[test]
    fn a_failure_is_reported_and_the_old_file_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let path = blocker.join("state");
        let (w, log) = writer();
        let mut s = w.begin(&KIND, &path);
        s.u32(1);
        s.commit();
        drop(w);
        let log = log.lock().expect("lock");
        let err = log[0].1.clone().expect_err("cannot create under a file");
        assert!(err.starts_with("cannot create"), "{err}");
        assert_eq!(std::fs::read(&blocker).expect("kept"), b"x");
    }
}
