//! Segment files: creating one, appending a record to it, and recovering one
//! at open (classify every byte with the scanner, truncate a torn tail,
//! overwrite damaged regions with padding so they are reported only once).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::SystemTime;

use super::SpoolError;
use super::ack::sync_dir;
use super::format::{
    Item, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, Scanner, pad_header, segment_file_name,
};

/// In-memory bookkeeping of one live segment file.
///
/// Records are numbered by a sequence (`seq`, a record count) and a byte
/// sequence (`bseq`, framed bytes) running across all live segments, so that
/// counts between two positions are subtractions.
#[derive(Debug)]
pub struct Segment {
    /// Segment id (its file name).
    pub id: u64,
    /// End of the valid data: appends go here, reads stop here.
    pub len: u64,
    /// Sequence number of the first record in this segment.
    pub first_seq: u64,
    /// Valid data records in this segment.
    pub records: u64,
    /// Byte sequence at the first record.
    pub first_bseq: u64,
    /// Framed bytes (header + payload) of the valid data records.
    pub data_bytes: u64,
    /// Damaged or padding regions `[start, end)` that reads jump over, sorted.
    pub holes: Vec<(u64, u64)>,
    /// When the segment was started (for recovered ones: its modification
    /// time, an upper bound), for the age of the oldest unacked data.
    pub started: SystemTime,
}

impl Segment {
    /// Sequence number after the last record.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.records
    }

    /// Byte sequence after the last record.
    pub fn end_bseq(&self) -> u64 {
        self.first_bseq + self.data_bytes
    }

    /// `off`, moved past any hole it falls into.
    pub fn skip_holes(&self, mut off: u64) -> u64 {
        for &(start, end) in &self.holes {
            if start <= off && off < end {
                off = end;
            }
        }
        off
    }

    /// Adds a hole and keeps the list sorted.
    pub fn add_hole(&mut self, start: u64, end: u64) {
        self.holes.push((start, end));
        self.holes.sort_unstable();
    }
}

/// Path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(segment_file_name(id))
}

/// Creates segment `id` with its header, durably enough that the file exists
/// after a power failure (directory fsynced); `sync` also fsyncs the header.
pub fn create(dir: &Path, id: u64, sync: bool) -> Result<File, SpoolError> {
    let path = segment_path(dir, id);
    let result = (|| {
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)?;
        f.write_all(&SEGMENT_MAGIC)?;
        if sync {
            f.sync_data()?;
        }
        Ok(f)
    })();
    match result {
        Ok(f) => {
            sync_dir(dir)?;
            Ok(f)
        }
        Err(source) => {
            // A half-written header would be cleaned up at the next open anyway.
            let _ = fs::remove_file(&path);
            Err(SpoolError::Io { path, source })
        }
    }
}

/// Writes header and payload with one `writev` where possible: no copy into
/// a user-space buffer, nothing left in the process after it returns.
pub fn write_record(mut file: &File, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(header), IoSlice::new(payload)];
    let mut bufs = &mut bufs[..];
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What recovery found in one segment file.
#[derive(Debug)]
pub enum Recovered {
    /// The file could not be read or its header is not ours: left alone
    /// (renamed to `*.corrupt` by the caller), counted as skipped.
    Skipped,
    /// Shorter than a header and a prefix of it: a crash while creating the
    /// segment. Its bytes count as truncated; the caller deletes it.
    TornCreation(u64),
    /// A usable segment.
    Scanned(Scanned),
}

/// Counts from scanning a usable segment.
#[derive(Debug)]
pub struct Scanned {
    /// Valid length after truncating any torn tail.
    pub len: u64,
    /// Valid data records, acked or not.
    pub records: u64,
    /// Their framed bytes.
    pub data_bytes: u64,
    /// Records wholly before the ack offset.
    pub acked_records: u64,
    /// Their framed bytes.
    pub acked_bytes: u64,
    /// The ack offset moved down to the last boundary at or before it, so a
    /// reader starting there is at a record, hole or end.
    pub ack_offset: u64,
    /// Damaged and padding regions.
    pub holes: Vec<(u64, u64)>,
    /// Bytes cut off as a torn tail.
    pub truncated: u64,
    /// Damaged regions in the unacked part.
    pub corrupt_regions: u64,
    /// Their bytes.
    pub corrupt_bytes: u64,
    /// Modification time of the file.
    pub modified: SystemTime,
}

/// Reads segment `id` into `buf` and classifies it; `ack_offset` is the
/// acknowledged offset inside it (the header length for unacked segments).
/// Repairs in place: truncates a torn tail, writes padding over damage.
/// Repair failures are logged, not fatal: the in-memory view already skips them.
pub fn recover(dir: &Path, id: u64, buf: &mut Vec<u8>, ack_offset: u64) -> Recovered {
    let path = segment_path(dir, id);
    buf.clear();
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "spool: cannot open segment; skipping it");
            return Recovered::Skipped;
        }
    };
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    if let Err(e) = (&file).read_to_end(buf) {
        tracing::warn!(path = %path.display(), error = %e, "spool: cannot read segment; skipping it");
        return Recovered::Skipped;
    }
    if buf.len() < SEGMENT_MAGIC.len() {
        return if SEGMENT_MAGIC.starts_with(buf) {
            Recovered::TornCreation(buf.len() as u64)
        } else {
            Recovered::Skipped
        };
    }
    if buf[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Recovered::Skipped;
    }
    let mut s = Scanned {
        len: buf.len() as u64,
        records: 0,
        data_bytes: 0,
        acked_records: 0,
        acked_bytes: 0,
        ack_offset: SEGMENT_HEADER_LEN,
        holes: Vec::new(),
        truncated: 0,
        corrupt_regions: 0,
        corrupt_bytes: 0,
        modified,
    };
    let mut repaired = false;
    let body = &buf[SEGMENT_MAGIC.len()..];
    for item in Scanner::new(body, SEGMENT_HEADER_LEN) {
        match item {
            Item::Record { start, end } => {
                s.records += 1;
                s.data_bytes += end - start;
                if end <= ack_offset {
                    s.acked_records += 1;
                    s.acked_bytes += end - start;
                    s.ack_offset = end;
                }
            }
            Item::Pad { start, end } => {
                s.holes.push((start, end));
                if end <= ack_offset {
                    s.ack_offset = end;
                }
            }
            Item::Damaged { start, end } => {
                s.holes.push((start, end));
                if end <= ack_offset {
                    s.ack_offset = end;
                } else {
                    s.corrupt_regions += 1;
                    s.corrupt_bytes += end - start;
                }
                tracing::warn!(path = %path.display(), start, end, "spool: skipping a damaged region");
                let region = &buf[start as usize..end as usize];
                if let Some(pad) = pad_header(region) {
                    match file.write_all_at(&pad, start) {
                        Ok(()) => repaired = true,
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "spool: cannot mark a damaged region; it will be reported again");
                        }
                    }
                }
            }
            Item::Torn { start, end } => {
                s.truncated = end - start;
                s.len = start;
                tracing::warn!(path = %path.display(), offset = start, bytes = end - start, "spool: truncating a torn tail");
                match file.set_len(start) {
                    Ok(()) => repaired = true,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "spool: cannot truncate a torn tail; it will be reported again");
                    }
                }
            }
        }
    }
    s.ack_offset = s.ack_offset.min(s.len);
    if repaired && let Err(e) = file.sync_data() {
        tracing::warn!(path = %path.display(), error = %e, "spool: cannot fsync a repaired segment");
    }
    Recovered::Scanned(s)
}
