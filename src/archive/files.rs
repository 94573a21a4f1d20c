//! The archive's files on disk: naming, appending, compressing a closed
//! day, and rotation by age.
//!
//! Why apart from the writer thread: `emgate enter` appends its entry with
//! the same function ([`append_day`]) without a running gateway, and the
//! reader and the tests need the same names.
//!
//! Names: `YYYY-MM-DD.lp` (the open, appendable file of a day) and
//! `YYYY-MM-DD.lp.gz` (the closed part, one or more gzip members); a
//! `.tmp` file is a compression a crash interrupted and is deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::ArchiveError;

/// Suffix of a day's open file.
pub const OPEN_SUFFIX: &str = ".lp";
/// Suffix of a day's compressed file.
pub const GZ_SUFFIX: &str = ".lp.gz";
/// Suffix of an interrupted compression.
pub const TMP_SUFFIX: &str = ".tmp";

/// `<dir>/YYYY-MM-DD.lp`.
#[must_use]
pub fn open_path(dir: &Path, day: Date) -> PathBuf {
    dir.join(format!("{day}{OPEN_SUFFIX}"))
}

/// `<dir>/YYYY-MM-DD.lp.gz`.
#[must_use]
pub fn gz_path(dir: &Path, day: Date) -> PathBuf {
    dir.join(format!("{day}{GZ_SUFFIX}"))
}

/// The day and kind of an archive file name; `None` for other files.
#[must_use]
pub fn parse_name(name: &str) -> Option<(Date, Kind)> {
    let (stem, kind) = if let Some(s) = name.strip_suffix(TMP_SUFFIX) {
        (s.strip_suffix(GZ_SUFFIX)?, Kind::Tmp)
    } else if let Some(s) = name.strip_suffix(GZ_SUFFIX) {
        (s, Kind::Gz)
    } else {
        (name.strip_suffix(OPEN_SUFFIX)?, Kind::Open)
    };
    if stem.len() != 10 {
        return None;
    }
    Some((stem.parse::<Date>().ok()?, kind))
}

/// Which file of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.lp`: appended to.
    Open,
    /// `.lp.gz`: compressed.
    Gz,
    /// `.lp.gz.tmp`: an interrupted compression.
    Tmp,
}

/// Every archive file in `dir`: (day, kind, path), sorted by day then kind.
///
/// # Errors
/// When the directory cannot be listed.
pub fn list(dir: &Path) -> Result<Vec<(Date, Kind, PathBuf)>, ArchiveError> {
    let entries = fs::read_dir(dir).map_err(|e| ArchiveError::io(dir, "cannot list", &e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some((day, kind)) = name.to_str().and_then(parse_name) {
            out.push((day, kind, entry.path()));
        }
    }
    out.sort_by_key(|(d, k, _)| (*d, matches!(k, Kind::Open)));
    Ok(out)
}

/// Appends whole `lines` to the open file of `day`, durably (fsync).
///
/// A file that does not end in `\n` (a line torn by a crash) gets one
/// first, so the torn line stays a line of its own that readers skip, and
/// the new lines are intact. Returns whether such a line was sealed.
///
/// One `write` call per append on a file opened for appending: the
/// gateway's writer thread and `emgate enter` may append to the same day.
///
/// # Errors
/// When the file cannot be opened, written or synced.
pub fn append_day(dir: &Path, day: Date, lines: &[u8]) -> Result<bool, ArchiveError> {
    let path = open_path(dir, day);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| ArchiveError::io(&path, "cannot open", &e))?;
    let len = f
        .metadata()
        .map_err(|e| ArchiveError::io(&path, "cannot stat", &e))?
        .len();
    let mut sealed = false;
    let mut buf = Vec::with_capacity(lines.len() + 1);
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(|e| ArchiveError::io(&path, "cannot read", &e))?;
        if last[0] != b'\n' {
            buf.push(b'\n');
            sealed = true;
        }
    }
    buf.extend_from_slice(lines);
    f.write_all(&buf)
        .and_then(|()| f.sync_data())
        .map_err(|e| ArchiveError::io(&path, "cannot write", &e))?;
    Ok(sealed)
}

/// Moves the open file of `day` into its compressed file: the old
/// compressed bytes and one new gzip member are written to a temporary
/// file, synced, renamed over the compressed file, and only then is the
/// open file removed. A crash at any point leaves every line readable
/// (at worst twice, which export merges).
///
/// # Errors
/// When a file cannot be read, written, synced or renamed.
pub fn compress_day(dir: &Path, day: Date) -> Result<(), ArchiveError> {
    let open = open_path(dir, day);
    let gz = gz_path(dir, day);
    let tmp = dir.join(format!("{day}{GZ_SUFFIX}{TMP_SUFFIX}"));
    let mut lines = fs::read(&open).map_err(|e| ArchiveError::io(&open, "cannot read", &e))?;
    if lines.last().is_some_and(|b| *b != b'\n') {
        lines.push(b'\n');
    }
    let mut out = match fs::read(&gz) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ArchiveError::io(&gz, "cannot read", &e)),
    };
    let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
    enc.write_all(&lines)
        .and_then(|()| enc.finish().map(|_| ()))
        .map_err(|e| ArchiveError::io(&tmp, "cannot compress", &e))?;
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        fs::rename(&tmp, &gz)?;
        if let Ok(d) = File::open(dir) {
            d.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| ArchiveError::io(&gz, "cannot write", &e))?;
    fs::remove_file(&open).map_err(|e| ArchiveError::io(&open, "cannot remove", &e))
}

/// What one pass of [`maintain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Files removed because their day is older than the archive keeps.
    pub removed: u64,
    /// Days compressed.
    pub compressed: u64,
    /// Interrupted compressions removed.
    pub stale_tmp: u64,
    /// Problems met (each also makes the pass skip that file).
    pub errors: Vec<String>,
}

/// One maintenance pass at local date `today`: removes every file of a day
/// before `today − days`, removes interrupted compressions, and compresses
/// the open file of every day before yesterday (windows of a day and the
/// day window itself are written by then; a later line reopens the day).
#[must_use]
pub fn maintain(dir: &Path, today: Date, days: u32) -> Maintenance {
    let mut m = Maintenance::default();
    let files = match list(dir) {
        Ok(f) => f,
        Err(e) => {
            m.errors.push(e.to_string());
            return m;
        }
    };
    let oldest_kept = today
        .checked_sub(jiff::Span::new().days(i64::from(days)))
        .unwrap_or(Date::MIN);
    let yesterday = today.yesterday().unwrap_or(Date::MIN);
    for (day, kind, path) in files {
        if day < oldest_kept || kind == Kind::Tmp {
            match fs::remove_file(&path) {
                Ok(()) if kind == Kind::Tmp => m.stale_tmp += 1,
                Ok(()) => m.removed += 1,
                Err(e) => m
                    .errors
                    .push(ArchiveError::io(&path, "cannot remove", &e).to_string()),
            }
        } else if kind == Kind::Open && day < yesterday {
            match compress_day(dir, day) {
                Ok(()) => m.compressed += 1,
                Err(e) => m.errors.push(e.to_string()),
            }
        }
    }
    m
}

/// The lines of `day` as stored: the compressed part, then the open file.
/// Returns the bytes and whether a compressed file was damaged (its
/// readable beginning is kept).
///
/// # Errors
/// When a file exists but cannot be opened.
pub fn read_day(dir: &Path, day: Date) -> Result<(Vec<u8>, bool), ArchiveError> {
    let mut out = Vec::new();
    let mut damaged = false;
    let gz = gz_path(dir, day);
    match File::open(&gz) {
        Ok(f) => {
            let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
            if dec.read_to_end(&mut out).is_err() {
                damaged = true;
            }
            // A damaged member may end mid-line: close it, so the next
            // file's first line stays whole.
            if out.last().is_some_and(|b| *b != b'\n') {
                out.push(b'\n');
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ArchiveError::io(&gz, "cannot open", &e)),
    }
    let open = open_path(dir, day);
    match File::open(&open) {
        Ok(mut f) => {
            f.read_to_end(&mut out)
                .map_err(|e| ArchiveError::io(&open, "cannot read", &e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ArchiveError::io(&open, "cannot open", &e)),
    }
    Ok((out, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let d = jiff::civil::date(2026, 3, 5);
        assert_eq!(parse_name("2026-03-05.lp"), Some((d, Kind::Open)));
        assert_eq!(parse_name("2026-03-05.lp.gz"), Some((d, Kind::Gz)));
        assert_eq!(parse_name("2026-03-05.lp.gz.tmp"), Some((d, Kind::Tmp)));
        assert_eq!(parse_name("2026-3-5.lp"), None);
        assert_eq!(parse_name("notes.txt"), None);
        assert_eq!(parse_name("2026-02-30.lp"), None);
    }

    #[test]
    fn torn_line_is_sealed_and_compression_keeps_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = jiff::civil::date(2026, 3, 5);
        assert!(!append_day(dir.path(), d, b"m a=1.0 1\n").expect("append"));
        fs::write(open_path(dir.path(), d), b"m a=1.0 1\nm a=2").expect("tear");
        assert!(append_day(dir.path(), d, b"m a=3.0 3\n").expect("append"));
        compress_day(dir.path(), d).expect("compress");
        append_day(dir.path(), d, b"m a=4.0 4\n").expect("append");
        compress_day(dir.path(), d).expect("compress again");
        assert!(!open_path(dir.path(), d).exists());
        let (bytes, damaged) = read_day(dir.path(), d).expect("read");
        assert!(!damaged);
        assert_eq!(bytes, b"m a=1.0 1\nm a=2\nm a=3.0 3\nm a=4.0 4\n");
    }
}
