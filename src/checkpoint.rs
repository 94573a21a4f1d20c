//! Checkpoints: the small state files the gateway rewrites while it runs
//! (validation baselines, aggregation windows, the spool's acknowledged
//! position). They must survive a crash or a power failure as either the old
//! or the new file, never a torn mix, and be read back only when they are
//! whole and of a version this build understands. One envelope, one
//! little-endian [`BodyWriter`]/[`BodyReader`] and one durable [`write_atomic`], so
//! the codecs cannot drift apart in how they frame, check or replace a file.
//!
//! A leaf module: it imports nothing from the crate, and knows nothing of
//! what the bodies mean.
//!
//! # The envelope
//! ```text
//! [magic: 4 bytes][version: u16 LE][body length: u32 LE][body][crc32c: u32 LE]
//! crc32c = CRC-32C of every byte before it
//! ```
//! The magic names the kind of state ([`Kind`]); the version names the body's
//! layout. [`decode`] checks, in this order, the length, the magic, the
//! checksum (a torn or damaged file), the version and the declared body
//! length, and answers a [`CheckpointError`] saying which check failed.
//!
//! **Files from before the envelope** carried the same magic and version but
//! no body length: `[magic][version][body][crc32c]`. A kind lists those
//! versions in [`Kind::legacy`], and [`decode`] reads them with
//! [`Framing::Legacy`]. When a version is both legacy and current, a file
//! is taken as an envelope only when its length field matches its size
//! exactly; the kind must make sure a legacy body cannot start with that
//! number (its codec documents why).
//!
//! # Durable replacement
//! [`write_atomic`] replaces a file so that after a crash at any instant the
//! path holds the old or the new bytes:
//! 1. write `<path>.tmp` (created or truncated);
//! 2. fsync it: its data is on disk before any name points at it;
//! 3. rename it over `<path>` (atomic for the running system);
//! 4. fsync the directory: the rename itself is on disk.
//!
//! | crash after | kill -9 (page cache survives) | power failure |
//! |---|---|---|
//! | 1 | old; a stray `.tmp` | old |
//! | 2 | old; a stray `.tmp` | old |
//! | 3 | new | old or new (the rename may be lost; both are complete files) |
//! | 4 | new | new |
//!
//! Without step 2 a power failure may keep the rename but not the data, and
//! the path then names an empty or partial file: the state is lost. A stray
//! `.tmp` is never read; the next write truncates it. The steps go through
//! the [`Storage`] trait so the tests inject a failure or a crash at each.

mod writer;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

pub use self::writer::{OnDone, Writer};

/// Bytes before the body: magic, version and body length.
pub const HEADER_LEN: usize = 4 + 2 + 4;
/// Bytes after the body: the checksum.
pub const TRAILER_LEN: usize = 4;
/// Bytes before the body of a file written before the envelope: magic and version.
const LEGACY_HEADER_LEN: usize = 4 + 2;

/// One kind of checkpoint: its magic and the versions this build writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Names the state in errors ("validation", "aggregation").
    pub name: &'static str,
    /// First four bytes of every file of this kind.
    pub magic: [u8; 4],
    /// The body layout [`BodyWriter::new`] writes, and the newest one read.
    pub version: u16,
    /// The oldest body layout still read in the envelope.
    pub oldest: u16,
    /// Versions written before the envelope existed (no body length); read
    /// with [`Framing::Legacy`].
    pub legacy: &'static [u16],
}

impl Kind {
    /// Whether `version` is read in the envelope.
    fn in_envelope(&self, version: u16) -> bool {
        (self.oldest..=self.version).contains(&version)
    }

    /// The oldest version read, in either framing (for messages).
    fn oldest_read(&self) -> u16 {
        self.legacy.iter().copied().fold(self.oldest, u16::min)
    }
}

/// How a decoded file was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The envelope, with its body length.
    Envelope,
    /// A file from before the envelope: the body runs up to the checksum.
    Legacy,
}

/// Why checkpoint bytes were not accepted. Each names the kind of state and
/// where in the file the problem lies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Shorter than the smallest possible file.
    #[error(
        "{kind} checkpoint: {len} bytes is too short to be a checkpoint (an empty or torn file)"
    )]
    TooShort {
        /// The kind of state.
        kind: &'static str,
        /// Length given.
        len: usize,
    },
    /// Another kind of file.
    #[error(
        "{kind} checkpoint: wrong magic \"{}\", expected \"{}\"; this is not a {kind} checkpoint",
        found.escape_ascii(),
        expected.escape_ascii()
    )]
    WrongMagic {
        /// The kind of state.
        kind: &'static str,
        /// The magic of that kind.
        expected: [u8; 4],
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by a version this build does not read.
    #[error(
        "{kind} checkpoint: unsupported version {found}, this build reads {oldest} to {newest}"
    )]
    UnsupportedVersion {
        /// The kind of state.
        kind: &'static str,
        /// Version found.
        found: u16,
        /// Oldest version read.
        oldest: u16,
        /// Newest version read.
        newest: u16,
    },
    /// The content does not match its checksum: a torn write or flipped bits.
    #[error(
        "{kind} checkpoint: checksum mismatch (stored {stored:#010x}, computed {computed:#010x}); the file is torn or damaged"
    )]
    ChecksumMismatch {
        /// The kind of state.
        kind: &'static str,
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// The envelope declares another body length than the file holds.
    #[error(
        "{kind} checkpoint: the header declares a body of {declared} bytes, the file holds {actual}"
    )]
    LengthMismatch {
        /// The kind of state.
        kind: &'static str,
        /// Body length in the header.
        declared: u64,
        /// Body bytes present.
        actual: u64,
    },
    /// The body ends before the structure it declares.
    #[error("{kind} checkpoint: truncated at byte {at}: {wanted} more bytes expected")]
    Truncated {
        /// The kind of state.
        kind: &'static str,
        /// Offset in the file where more bytes were expected.
        at: usize,
        /// How many.
        wanted: usize,
    },
    /// The body goes on after the structure it declares.
    #[error("{kind} checkpoint: {len} unexpected bytes after the content, from byte {at}")]
    TrailingBytes {
        /// The kind of state.
        kind: &'static str,
        /// Offset in the file of the first unread byte.
        at: usize,
        /// Unread bytes.
        len: usize,
    },
    /// A field holds a value its codec cannot use.
    #[error("{kind} checkpoint: invalid {what} at byte {at}")]
    Invalid {
        /// The kind of state.
        kind: &'static str,
        /// Offset in the file just after the field.
        at: usize,
        /// What was invalid.
        what: &'static str,
    },
}

/// A checked file: its version, framing, and a [`BodyReader`] over its body.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    /// The body layout.
    pub version: u16,
    /// Envelope or a file from before it.
    pub framing: Framing,
    /// The body; call [`BodyReader::finish`] after the last field.
    pub body: BodyReader<'a>,
}

/// Checks `bytes` as a checkpoint of `kind` and returns its body.
///
/// # Errors
/// [`CheckpointError`]: too short, wrong magic, checksum mismatch,
/// unsupported version or a body length that does not match the file.
pub fn decode<'a>(kind: &Kind, bytes: &'a [u8]) -> Result<Decoded<'a>, CheckpointError> {
    let name = kind.name;
    let too_short = CheckpointError::TooShort {
        kind: name,
        len: bytes.len(),
    };
    let Some(content_len) = bytes
        .len()
        .checked_sub(TRAILER_LEN)
        .filter(|n| *n >= LEGACY_HEADER_LEN)
    else {
        return Err(too_short);
    };
    let (content, trailer) = bytes.split_at(content_len);
    let mut head = BodyReader::new(name, content);
    let found: [u8; 4] = head.take()?;
    if found != kind.magic {
        return Err(CheckpointError::WrongMagic {
            kind: name,
            expected: kind.magic,
            found,
        });
    }
    let stored = BodyReader::new(name, trailer).u32()?;
    let computed = crc32c::crc32c(content);
    if stored != computed {
        return Err(CheckpointError::ChecksumMismatch {
            kind: name,
            stored,
            computed,
        });
    }
    let version = head.u16()?;
    let actual = content_len.saturating_sub(HEADER_LEN);
    let declared = BodyReader::new(name, content.get(LEGACY_HEADER_LEN..).unwrap_or(&[]))
        .u32()
        .ok();
    let legacy = kind.legacy.contains(&version);
    let framing = if kind.in_envelope(version)
        && (!legacy || declared.is_some_and(|d| d as usize == actual))
    {
        Framing::Envelope
    } else if legacy {
        Framing::Legacy
    } else {
        return Err(CheckpointError::UnsupportedVersion {
            kind: name,
            found: version,
            oldest: kind.oldest_read(),
            newest: kind.version,
        });
    };
    let start = match framing {
        Framing::Legacy => LEGACY_HEADER_LEN,
        Framing::Envelope => {
            let declared = declared.ok_or(too_short)?;
            if declared as usize != actual {
                return Err(CheckpointError::LengthMismatch {
                    kind: name,
                    declared: u64::from(declared),
                    actual: actual as u64,
                });
            }
            HEADER_LEN
        }
    };
    Ok(Decoded {
        version,
        framing,
        body: BodyReader {
            kind: name,
            bytes: &content[start..],
            at: 0,
            base: start,
        },
    })
}

/// Builds a checkpoint of one kind: the header, then little-endian fields,
/// then [`BodyWriter::finish`] adds the body length and the checksum.
#[derive(Debug, Clone)]
pub struct BodyWriter {
    buf: Vec<u8>,
    /// Streaming to a [`Writer`] thread: `buf` is handed over whenever it
    /// holds [`writer::CHUNK`] bytes.
    stream: Option<SyncSender<writer::Msg>>,
}

impl BodyWriter {
    /// A checkpoint of `kind` at its current version.
    #[must_use]
    pub fn new(kind: &Kind) -> BodyWriter {
        BodyWriter::with_capacity(kind, 0)
    }

    /// Like [`BodyWriter::new`], with room for a body of `body` bytes.
    #[must_use]
    pub fn with_capacity(kind: &Kind, body: usize) -> BodyWriter {
        let mut buf = Vec::with_capacity(HEADER_LEN + body + TRAILER_LEN);
        buf.extend_from_slice(&kind.magic);
        buf.extend_from_slice(&kind.version.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        BodyWriter { buf, stream: None }
    }

    /// Hands a full chunk to the writer thread when streaming.
    #[inline]
    fn spill(&mut self) {
        if self.buf.len() >= writer::CHUNK
            && let Some(tx) = &self.stream
        {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(writer::CHUNK + 64));
            // Fails only when the thread is gone; it said why.
            let _ = tx.send(writer::Msg::Chunk(full));
        }
    }

    /// Streaming from [`Writer::begin`]: hands the rest of the file over
    /// and has the writer thread replace the target durably. Without a
    /// stream it does nothing (use [`BodyWriter::finish`]).
    pub fn commit(mut self) {
        if let Some(tx) = self.stream.take() {
            let rest = std::mem::take(&mut self.buf);
            let _ = tx.send(writer::Msg::Chunk(rest));
            let _ = tx.send(writer::Msg::Commit);
        }
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
        self.spill();
    }

    /// Appends a `u16`, little-endian.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.spill();
    }

    /// Appends a `u32`, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.spill();
    }

    /// Appends a `u64`, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.spill();
    }

    /// Appends an `i64`, little-endian.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self.spill();
    }

    /// Appends an `f64` as its IEEE bits, little-endian (NaN payloads kept).
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        self.spill();
    }

    /// Appends raw bytes, without a length; the reader must know how many.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
        self.spill();
    }

    /// Appends a string: its byte length as a `u32`, then its UTF-8 bytes.
    /// A string over 4 GiB is cut at that length (never in a checkpoint).
    pub fn str(&mut self, v: &str) {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.bytes(&v.as_bytes()[..len as usize]);
    }

    /// The body written so far (not streaming).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.buf[HEADER_LEN..]
    }

    /// The finished file: body length filled in, checksum appended. A body
    /// over 4 GiB cannot be described; its length field then disagrees with
    /// the file and [`decode`] refuses it rather than misreading it.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len() - HEADER_LEN).unwrap_or(u32::MAX);
        self.buf[LEGACY_HEADER_LEN..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// Little-endian reader over a checkpoint body; every read fails with
/// [`CheckpointError::Truncated`] at the end instead of panicking, and
/// errors carry the offset in the file.
#[derive(Debug, Clone)]
pub struct BodyReader<'a> {
    kind: &'static str,
    bytes: &'a [u8],
    at: usize,
    /// Offset of `bytes` in the file, for error positions.
    base: usize,
}

impl<'a> BodyReader<'a> {
    /// A reader over `bytes` (offsets in errors count from their start);
    /// `kind` names the state in errors.
    #[must_use]
    pub fn new(kind: &'static str, bytes: &'a [u8]) -> BodyReader<'a> {
        BodyReader {
            kind,
            bytes,
            at: 0,
            base: 0,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Reads a `u8`.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn u8(&mut self) -> Result<u8, CheckpointError> {
        self.take::<1>().map(|[b]| b)
    }

    /// Reads a little-endian `u16`.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn u16(&mut self) -> Result<u16, CheckpointError> {
        self.take().map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn u32(&mut self) -> Result<u32, CheckpointError> {
        self.take().map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn u64(&mut self) -> Result<u64, CheckpointError> {
        self.take().map(u64::from_le_bytes)
    }

    /// Reads a little-endian `i64`.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn i64(&mut self) -> Result<i64, CheckpointError> {
        self.take().map(i64::from_le_bytes)
    }

    /// Reads an `f64` from its little-endian IEEE bits.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end.
    pub fn f64(&mut self) -> Result<f64, CheckpointError> {
        self.take().map(u64::from_le_bytes).map(f64::from_bits)
    }

    /// Reads `n` raw bytes.
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] when fewer remain.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CheckpointError> {
        let Some(out) = self.bytes.get(self.at..).and_then(|rest| rest.get(..n)) else {
            return Err(CheckpointError::Truncated {
                kind: self.kind,
                at: self.position(),
                wanted: n - self.remaining(),
            });
        };
        self.at += n;
        Ok(out)
    }

    /// Reads a string written by [`BodyWriter::str`].
    ///
    /// # Errors
    /// [`CheckpointError::Truncated`] at the end, [`CheckpointError::Invalid`]
    /// when the bytes are not UTF-8.
    pub fn str(&mut self) -> Result<&'a str, CheckpointError> {
        let len = self.u32()? as usize;
        let bytes = self.bytes(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.invalid("UTF-8 string"))
    }

    /// Bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// Whether everything was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Offset in the file of the next byte to read.
    #[must_use]
    pub fn position(&self) -> usize {
        self.base + self.at
    }

    /// An [`CheckpointError::Invalid`] for `what`, just read.
    #[must_use]
    pub fn invalid(&self, what: &'static str) -> CheckpointError {
        CheckpointError::Invalid {
            kind: self.kind,
            at: self.position(),
            what,
        }
    }

    /// Ends reading: the body must be used up.
    ///
    /// # Errors
    /// [`CheckpointError::TrailingBytes`] when bytes are left.
    pub fn finish(self) -> Result<(), CheckpointError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::TrailingBytes {
                kind: self.kind,
                at: self.position(),
                len: self.remaining(),
            })
        }
    }
}

/// The file-system steps of [`write_atomic_with`], so tests can fail or
/// crash each of them.
pub trait Storage {
    /// An open file.
    type File;
    /// Creates `path`, or truncates it when it exists, for writing.
    ///
    /// # Errors
    /// What the file system reports.
    fn create(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Writes all of `bytes` at the end of `file`.
    ///
    /// # Errors
    /// What the file system reports.
    fn write(&mut self, file: &mut Self::File, bytes: &[u8]) -> io::Result<()>;
    /// Makes `file`'s data durable (fsync).
    ///
    /// # Errors
    /// What the file system reports.
    fn sync(&mut self, file: &mut Self::File) -> io::Result<()>;
    /// Renames `from` over `to`, replacing it atomically.
    ///
    /// # Errors
    /// What the file system reports.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the creations and renames in `dir` durable (fsync of the directory).
    ///
    /// # Errors
    /// What the file system reports.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// The real file system, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fs;

impl Storage for Fs {
    type File = File;

    fn create(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    fn write(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn sync(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Why [`write_atomic`] failed, by step. Whatever the step, `path` still
/// holds its previous content (after a failed directory fsync: the previous
/// or the new one).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The temporary file could not be created.
    #[error("cannot create \"{}\": {source}", path.display())]
    Create {
        /// The temporary file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The temporary file could not be written (often: the disk is full).
    #[error("cannot write \"{}\": {source}", path.display())]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The temporary file could not be fsynced.
    #[error("cannot fsync \"{}\": {source}", path.display())]
    Sync {
        /// The temporary file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The temporary file could not be renamed over the target.
    #[error("cannot rename \"{}\" over \"{}\": {source}", from.display(), to.display())]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The target.
        to: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The directory could not be fsynced after the rename.
    #[error("cannot fsync the directory \"{}\": {source}", dir.display())]
    SyncDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl WriteError {
    /// The file or directory the failed step worked on (for a rename: the
    /// target), and the underlying error.
    #[must_use]
    pub fn into_parts(self) -> (PathBuf, io::Error) {
        match self {
            WriteError::Create { path, source }
            | WriteError::Write { path, source }
            | WriteError::Sync { path, source }
            | WriteError::Rename {
                to: path, source, ..
            }
            | WriteError::SyncDir { dir: path, source } => (path, source),
        }
    }
}

/// Where [`write_atomic`] writes before the rename: `<path>.tmp`.
#[must_use]
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Durably replaces `path` with `bytes` (module doc: temporary file, fsync,
/// rename, directory fsync). Blocking: call it off async worker threads.
///
/// # Errors
/// [`WriteError`] naming the step that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(&mut Fs, path, bytes)
}

/// [`write_atomic`] through `storage`.
///
/// # Errors
/// [`WriteError`] naming the step that failed; no step is tried after it.
pub fn write_atomic_with<S: Storage>(
    storage: &mut S,
    path: &Path,
    bytes: &[u8],
) -> Result<(), WriteError> {
    let tmp = tmp_path(path);
    let mut file = storage.create(&tmp).map_err(|source| WriteError::Create {
        path: tmp.clone(),
        source,
    })?;
    storage
        .write(&mut file, bytes)
        .map_err(|source| WriteError::Write {
            path: tmp.clone(),
            source,
        })?;
    storage.sync(&mut file).map_err(|source| WriteError::Sync {
        path: tmp.clone(),
        source,
    })?;
    drop(file);
    storage
        .rename(&tmp, path)
        .map_err(|source| WriteError::Rename {
            from: tmp.clone(),
            to: path.to_path_buf(),
            source,
        })?;
    let dir = parent_dir(path);
    storage.sync_dir(dir).map_err(|source| WriteError::SyncDir {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Fsyncs the directory `dir`, making creations, renames and deletions in
/// it durable.
///
/// # Errors
/// What the file system reports.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    Fs.sync_dir(dir)
}

/// `bytes` (an envelope) with `extra` appended to its body, the length and
/// the checksum made right again: for tests of a body's own checks.
#[cfg(test)]
pub(crate) fn resealed_with(bytes: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut long = bytes[..bytes.len() - TRAILER_LEN].to_vec();
    long.extend_from_slice(extra);
    let body = (long.len() - HEADER_LEN) as u32;
    long[6..10].copy_from_slice(&body.to_le_bytes());
    let crc = crc32c::crc32c(&long);
    long.extend_from_slice(&crc.to_le_bytes());
    long
}

#[cfg(test)]
mod tests;
