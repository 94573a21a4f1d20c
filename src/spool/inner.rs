//! The spool's state under its mutex: appends to the active segment,
//! segment rolling and dropping, windowed reads with damage re-scans, and
//! the bookkeeping of acknowledgements. Plain `std::fs`; no async.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::format::{
    self, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, Scanner, decode_len, header_fields, record_crc,
    record_header,
};
use super::segment::{self, Segment, segment_path};
use super::{Cursor, Inner, Pos, READ_WINDOW, SpoolError, io_err, lock, remove_quietly};

impl Inner {
    pub(super) fn end_seq(&self) -> u64 {
        self.segments.back().map_or(self.ack.seq, Segment::end_seq)
    }

    fn end_bseq(&self) -> u64 {
        self.segments
            .back()
            .map_or(self.ack.bseq, Segment::end_bseq)
    }

    pub(super) fn records(&self) -> u64 {
        self.end_seq() - self.ack.seq
    }

    pub(super) fn unacked_bytes(&self) -> u64 {
        self.end_bseq() - self.ack.bseq
    }

    fn seg_index(&self, id: u64) -> Option<usize> {
        self.segments.binary_search_by_key(&id, |s| s.id).ok()
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.segments.back().map_or(0, |s| s.id))
    }

    /// Writes one record to the active segment, starting a new one first
    /// when needed. Returns the file to fsync under `EveryAppend`.
    pub(super) fn write(
        &mut self,
        record: &[u8],
        need: u64,
    ) -> Result<Option<Arc<File>>, SpoolError> {
        let back_len = self.segments.back().map_or(0, |s| s.len);
        if self.active_broken
            || (back_len > SEGMENT_HEADER_LEN && back_len + need > self.segment_bytes)
        {
            self.roll()?;
        }
        let header = record_header(record);
        if let Err(e) = segment::write_record(&self.active, &header, record) {
            let path = self.active_path();
            let old = self.segments.back().map_or(SEGMENT_HEADER_LEN, |s| s.len);
            // Undo a partial record so the next append does not land behind it.
            if self.active.set_len(old).is_err() {
                self.active_broken = true;
            }
            return Err(SpoolError::Io { path, source: e });
        }
        if let Some(back) = self.segments.back_mut() {
            if back.records == 0 {
                back.started = SystemTime::now();
            }
            back.len += need;
            back.records += 1;
            back.data_bytes += need;
        }
        self.appended += 1;
        if self.sync_every {
            Ok(Some(Arc::clone(&self.active)))
        } else {
            if let Some(slot) = &self.slot {
                slot.dirty.store(true, Ordering::Relaxed);
            }
            Ok(None)
        }
    }

    /// Closes the active segment (fsynced under `Interval`, so only the active
    /// segment ever holds unsynced data) and starts the next one.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if !self.sync_every {
            self.active
                .sync_data()
                .map_err(io_err(&self.active_path()))?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = Arc::new(segment::create(&self.dir, id, self.sync_every)?);
        let (first_seq, first_bseq) = (self.end_seq(), self.end_bseq());
        self.segments.push_back(Segment {
            id,
            len: SEGMENT_HEADER_LEN,
            first_seq,
            records: 0,
            first_bseq,
            data_bytes: 0,
            holes: Vec::new(),
            started: SystemTime::now(),
        });
        self.active = Arc::clone(&file);
        self.active_broken = false;
        if let Some(slot) = &self.slot {
            *lock(&slot.file) = file;
            slot.dirty.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `DropOldest`: deletes the oldest segments until `need` more bytes fit.
    pub(super) fn make_room(&mut self, need: u64) -> Result<(), SpoolError> {
        while self.records() > 0 && self.unacked_bytes() + need > self.max_bytes {
            if self.segments.len() == 1 {
                self.roll()?;
            }
            self.drop_front();
        }
        Ok(())
    }

    /// Deletes the oldest segment, losing (and counting) its unacked records.
    fn drop_front(&mut self) {
        let Some(seg) = self.segments.front() else {
            return;
        };
        let (id, len) = (seg.id, seg.len);
        let records = seg.end_seq().saturating_sub(self.ack.seq);
        let bytes = seg.end_bseq().saturating_sub(self.ack.bseq);
        let from = if self.ack.cursor.segment == id {
            self.ack.cursor.offset
        } else {
            SEGMENT_HEADER_LEN
        };
        if records > 0 && self.hook.is_some() {
            self.call_drop_hook(0, from, len);
        }
        tracing::warn!(
            segment = id,
            records,
            bytes,
            "spool: full, dropping the oldest unacknowledged records"
        );
        self.dropped_records += records;
        self.dropped_bytes += bytes;
        self.segments.pop_front();
        self.forget_reader(id);
        remove_quietly(&segment_path(&self.dir, id));
        let Some(front) = self.segments.front() else {
            return;
        };
        self.ack = Pos {
            cursor: Cursor {
                segment: front.id,
                offset: SEGMENT_HEADER_LEN,
            },
            seq: front.first_seq,
            bseq: front.first_bseq,
        };
        if self.read.cursor < self.ack.cursor {
            self.read = self.ack;
        }
        self.inflight = self.inflight.split_off(&self.ack.cursor);
    }

    /// Passes every data record of segment `idx` in `[from, to)` to the hook.
    fn call_drop_hook(&mut self, idx: usize, from: u64, to: u64) {
        let id = self.segments[idx].id;
        let mut buf = vec![0u8; to.saturating_sub(from) as usize];
        let read = self
            .file_for(idx)
            .and_then(|f| f.read_exact_at(&mut buf, from));
        if let Err(e) = read {
            tracing::warn!(segment = id, error = %e, "spool: cannot read dropped records for the drop hook");
            return;
        }
        let Some(hook) = &self.hook else { return };
        for item in Scanner::new(&buf, from) {
            if let format::Item::Record { start, end } = item {
                let s = (start - from) as usize + RECORD_HEADER_LEN;
                hook(&buf[s..(end - from) as usize]);
            }
        }
    }

    /// A handle to read segment `idx`: the active file, or a cached one.
    fn file_for(&mut self, idx: usize) -> io::Result<Arc<File>> {
        if idx + 1 == self.segments.len() {
            return Ok(Arc::clone(&self.active));
        }
        let id = self.segments[idx].id;
        if let Some((rid, f)) = &self.reader
            && *rid == id
        {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(File::open(segment_path(&self.dir, id))?);
        self.reader = Some((id, Arc::clone(&f)));
        Ok(f)
    }

    fn forget_reader(&mut self, id: u64) {
        if self.reader.as_ref().is_some_and(|(rid, _)| *rid == id) {
            self.reader = None;
        }
        if self.window.segment == id {
            self.window.data.clear();
        }
    }

    /// Makes the read window cover `[off, off + n)` of segment `idx` and
    /// returns where that starts in the window.
    fn fill_window(&mut self, idx: usize, off: u64, n: u64) -> io::Result<usize> {
        let (id, seg_len) = (self.segments[idx].id, self.segments[idx].len);
        let w = &self.window;
        if w.segment == id && off >= w.start && off + n <= w.start + w.data.len() as u64 {
            return Ok((off - w.start) as usize);
        }
        let want = n.max(READ_WINDOW).min(seg_len - off) as usize;
        let file = self.file_for(idx)?;
        self.window.data.resize(want, 0);
        if let Err(e) = file.read_exact_at(&mut self.window.data, off) {
            self.window.data.clear();
            return Err(e);
        }
        self.window.segment = id;
        self.window.start = off;
        Ok(0)
    }

    pub(super) fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut impl RecordSink,
    ) -> Option<Cursor> {
        let mut pos = self.read;
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut last_rescan = None;
        while n < max_records && pos.seq < self.end_seq() {
            let Some(idx) = self.seg_index(pos.cursor.segment) else {
                break;
            };
            let seg = &self.segments[idx];
            let off = seg.skip_holes(pos.cursor.offset.max(SEGMENT_HEADER_LEN));
            if off >= seg.len {
                let Some(next) = self.segments.get(idx + 1) else {
                    break;
                };
                pos = Pos {
                    cursor: Cursor {
                        segment: next.id,
                        offset: SEGMENT_HEADER_LEN,
                    },
                    seq: next.first_seq,
                    bseq: next.first_bseq,
                };
                continue;
            }
            pos.cursor.offset = off;
            let seg_len = seg.len;
            match self.read_one(
                idx,
                off,
                seg_len,
                n > 0,
                max_bytes - bytes.min(max_bytes),
                out,
            ) {
                Ok(Step::Record(len)) => {
                    let framed = (RECORD_HEADER_LEN + len) as u64;
                    bytes += len;
                    n += 1;
                    pos.cursor.offset = off + framed;
                    pos.seq += 1;
                    pos.bseq += framed;
                }
                Ok(Step::Pad(end)) => pos.cursor.offset = end,
                Ok(Step::Stop) => break,
                Ok(Step::Damaged) => {
                    if last_rescan == Some((idx, off)) {
                        break;
                    }
                    last_rescan = Some((idx, off));
                    self.rescan(idx, off, pos);
                }
                Err(e) => {
                    tracing::warn!(segment = pos.cursor.segment, offset = off, error = %e, "spool: read failed; will retry");
                    break;
                }
            }
        }
        self.read = pos;
        if n == 0 {
            return None;
        }
        self.inflight.insert(pos.cursor, (pos.seq, pos.bseq));
        Some(pos.cursor)
    }

    /// Reads the record at `off` of segment `idx` into `out` (copied once,
    /// from the read window or straight from the file); `Stop` when it would
    /// exceed `room` and something was read already.
    fn read_one(
        &mut self,
        idx: usize,
        off: u64,
        seg_len: u64,
        some: bool,
        room: usize,
        out: &mut impl RecordSink,
    ) -> io::Result<Step> {
        let hdr_len = RECORD_HEADER_LEN as u64;
        if off + hdr_len > seg_len {
            return Ok(Step::Damaged);
        }
        let at = self.fill_window(idx, off, hdr_len)?;
        let Some((field, crc)) = header_fields(&self.window.data[at..]) else {
            return Ok(Step::Damaged);
        };
        let Some(frame) = decode_len(field) else {
            return Ok(Step::Damaged);
        };
        let end = off + hdr_len + frame.len as u64;
        if end > seg_len {
            return Ok(Step::Damaged);
        }
        if frame.pad {
            return Ok(Step::Pad(end));
        }
        if some && frame.len > room {
            return Ok(Step::Stop);
        }
        if frame.len as u64 <= READ_WINDOW {
            let at = self.fill_window(idx, off + hdr_len, frame.len as u64)?;
            let payload = &self.window.data[at..at + frame.len];
            if record_crc(field, payload) != crc {
                return Ok(Step::Damaged);
            }
            out.room(frame.len).copy_from_slice(payload);
        } else {
            let file = self.file_for(idx)?;
            let tail = out.room(frame.len);
            let read = file.read_exact_at(tail, off + hdr_len);
            if read.is_err() || record_crc(field, tail) != crc {
                out.take_back(frame.len);
                read?;
                return Ok(Step::Damaged);
            }
        }
        Ok(Step::Record(frame.len))
    }

    /// Damage found while reading at `off` (where `pos` is): re-classifies
    /// the rest of the segment, remembers the damage as holes, counts it, and
    /// corrects the record and byte counts of this and later segments.
    fn rescan(&mut self, idx: usize, off: u64, pos: Pos) {
        let seg_len = self.segments[idx].len;
        let mut buf = vec![0u8; (seg_len - off) as usize];
        let got = match self.file_for(idx) {
            Ok(f) => read_up_to(&f, &mut buf, off),
            Err(_) => 0,
        };
        buf.truncate(got);
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut holes = Vec::new();
        for item in Scanner::new(&buf, off) {
            match item {
                format::Item::Record { start, end } => {
                    records += 1;
                    bytes += end - start;
                }
                format::Item::Pad { start, end } => holes.push((start, end)),
                format::Item::Damaged { start, end } => {
                    self.corrupt += 1;
                    holes.push((start, end));
                }
                format::Item::Torn { start, .. } => {
                    self.corrupt += 1;
                    holes.push((start, seg_len));
                }
            }
        }
        if buf.is_empty() {
            // The file is shorter than we wrote: someone truncated it.
            self.corrupt += 1;
            holes.push((off, seg_len));
        }
        tracing::warn!(
            segment = self.segments[idx].id,
            offset = off,
            "spool: damaged record found while reading; skipping it"
        );
        let seg = &mut self.segments[idx];
        let old_records = seg.end_seq() - pos.seq;
        let old_bytes = seg.end_bseq() - pos.bseq;
        seg.records = seg.records - old_records + records;
        seg.data_bytes = seg.data_bytes - old_bytes + bytes;
        for (s, e) in holes {
            seg.add_hole(s, e);
        }
        for later in self.segments.iter_mut().skip(idx + 1) {
            later.first_seq = later.first_seq - old_records + records;
            later.first_bseq = later.first_bseq - old_bytes + bytes;
        }
        self.window.data.clear();
    }

    /// Resolves `upto` to a position `read` returned, moved to the start of
    /// the next segment when it is the end of a closed one (so that segment
    /// can go). `None` when nothing new would be acknowledged.
    pub(super) fn ack_target(&self, upto: Cursor) -> Option<Pos> {
        if upto <= self.ack.cursor {
            return None;
        }
        let (&cursor, &(seq, bseq)) = self.inflight.range(..=upto).next_back()?;
        if cursor <= self.ack.cursor {
            return None;
        }
        let mut p = Pos { cursor, seq, bseq };
        if let Some(idx) = self.seg_index(cursor.segment)
            && let Some(next) = self.segments.get(idx + 1)
            && self.segments[idx].skip_holes(cursor.offset) >= self.segments[idx].len
        {
            p = Pos {
                cursor: Cursor {
                    segment: next.id,
                    offset: SEGMENT_HEADER_LEN,
                },
                seq: next.first_seq,
                bseq: next.first_bseq,
            };
        }
        Some(p)
    }

    /// Takes a durable ack position into memory; returns the segments to delete.
    pub(super) fn apply_ack(&mut self, p: Pos) -> Vec<u64> {
        if p.cursor <= self.ack.cursor {
            // A drop moved past it meanwhile.
            return Vec::new();
        }
        self.acked += p.seq - self.ack.seq;
        self.ack = p;
        if self.read.cursor < p.cursor {
            self.read = p;
        }
        let mut rest = self.inflight.split_off(&p.cursor);
        rest.remove(&p.cursor);
        self.inflight = rest;
        let mut doomed = Vec::new();
        while self.segments.len() > 1 && self.segments[0].id < p.cursor.segment {
            if let Some(s) = self.segments.pop_front() {
                self.forget_reader(s.id);
                doomed.push(s.id);
            }
        }
        doomed
    }
}

/// What [`Inner::read_one`] found.
enum Step {
    /// A record of this many payload bytes, now at the end of the sink.
    Record(usize),
    Pad(u64),
    Stop,
    Damaged,
}

/// Where [`super::Spool::read`] puts payloads: a buffer per record, or one
/// flat body (the uploader's request, so a record is copied once).
pub trait RecordSink {
    /// `len` bytes at the end of the sink for the next payload.
    fn room(&mut self, len: usize) -> &mut [u8];
    /// Removes the last `len` bytes [`RecordSink::room`] gave (a damaged record).
    fn take_back(&mut self, len: usize);
}

impl RecordSink for Vec<Vec<u8>> {
    fn room(&mut self, len: usize) -> &mut [u8] {
        self.push(vec![0; len]);
        self.last_mut().map_or(&mut [], Vec::as_mut_slice)
    }

    fn take_back(&mut self, _len: usize) {
        self.pop();
    }
}

impl RecordSink for Vec<u8> {
    fn room(&mut self, len: usize) -> &mut [u8] {
        let at = self.len();
        self.resize(at + len, 0);
        &mut self[at..]
    }

    fn take_back(&mut self, len: usize) {
        self.truncate(self.len().saturating_sub(len));
    }
}

/// Reads as much of `[off, off + buf.len())` as the file has.
fn read_up_to(file: &File, buf: &mut [u8], off: u64) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}
