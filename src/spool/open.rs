//! Opening the spool: recovery of whatever a crash left in the directory
//! (the "Crashes, step by step" of the module doc), then the fresh active
//! segment, the durable ack position and the fsync thread.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::format::{self, SEGMENT_HEADER_LEN};
use super::segment::{self, Recovered, Segment, segment_path};
use super::{
    Cursor, FsyncPolicy, Inner, Pos, Recovery, Shared, Spool, SpoolConfig, SpoolError, SyncSlot,
    Syncer, Window, ack, io_err, lock, remove_quietly,
};

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, recovering whatever a crash
    /// left behind.
    ///
    /// # Errors
    /// Only when the directory is unusable: it cannot be created or listed,
    /// is not a directory, or a new segment or the `ack` file cannot be
    /// written in it. Damaged contents are repaired and reported in the
    /// [`Recovery`], never an error.
    pub fn open(cfg: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        let dir = cfg.dir;
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let meta = fs::metadata(&dir).map_err(io_err(&dir))?;
        if !meta.is_dir() {
            return Err(SpoolError::Io {
                path: dir,
                source: io::Error::other("not a directory"),
            });
        }
        ack::remove_leftover_tmp(&dir)?;
        let ack_state = ack::read_ack(&dir);

        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(format::parse_segment_file_name)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();

        let mut rec = Recovery {
            ack_reset: match ack_state {
                ack::AckState::Corrupt => true,
                ack::AckState::Missing => !ids.is_empty(),
                ack::AckState::Valid(..) => false,
            },
            ..Recovery::default()
        };
        let (ack_seg, ack_off) = match ack_state {
            ack::AckState::Valid(s, o) => (Some(s), o),
            _ => (None, 0),
        };
        if rec.ack_reset {
            tracing::warn!(dir = %dir.display(), "spool: ack file missing or corrupt; redelivering from the oldest segment");
        }

        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut ack_pos: Option<Pos> = None;
        let (mut seq, mut bseq) = (0u64, 0u64);
        let mut buf = Vec::new();
        for &id in &ids {
            let path = segment_path(&dir, id);
            if ack_seg.is_some_and(|a| id < a) {
                // Wholly acknowledged; a crash came between the durable ack
                // and the deletion.
                remove_quietly(&path);
                continue;
            }
            let is_ack_seg = ack_seg == Some(id);
            let off = if is_ack_seg {
                ack_off.max(SEGMENT_HEADER_LEN)
            } else {
                SEGMENT_HEADER_LEN
            };
            match segment::recover(&dir, id, &mut buf, off) {
                Recovered::Skipped => {
                    rec.skipped_segments += 1;
                    let aside = dir.join(format!("{}.corrupt", format::segment_file_name(id)));
                    tracing::warn!(path = %path.display(), "spool: segment header is not a spool header; renaming it aside");
                    if let Err(e) = fs::rename(&path, &aside) {
                        tracing::warn!(path = %path.display(), error = %e, "spool: cannot rename a bad segment; it will be reported again");
                    }
                }
                Recovered::TornCreation(n) => {
                    rec.truncated_bytes += n;
                    remove_quietly(&path);
                }
                Recovered::Scanned(s) => {
                    rec.truncated_bytes += s.truncated;
                    rec.corrupt_records += s.corrupt_regions;
                    rec.corrupt_bytes += s.corrupt_bytes;
                    if s.len == SEGMENT_HEADER_LEN && !is_ack_seg {
                        // Empty (a restart with nothing appended): nothing refers to it.
                        remove_quietly(&path);
                        continue;
                    }
                    let seg = Segment {
                        id,
                        len: s.len,
                        first_seq: seq,
                        records: s.records,
                        first_bseq: bseq,
                        data_bytes: s.data_bytes,
                        holes: s.holes,
                        started: s.modified,
                    };
                    if is_ack_seg {
                        ack_pos = Some(Pos {
                            cursor: Cursor {
                                segment: id,
                                offset: s.ack_offset,
                            },
                            seq: seq + s.acked_records,
                            bseq: bseq + s.acked_bytes,
                        });
                    } else if ack_pos.is_none() {
                        ack_pos = Some(Pos {
                            cursor: Cursor {
                                segment: id,
                                offset: SEGMENT_HEADER_LEN,
                            },
                            seq,
                            bseq,
                        });
                    }
                    seq += seg.records;
                    bseq += seg.data_bytes;
                    segments.push_back(seg);
                }
            }
        }

        let sync_every = matches!(cfg.fsync, FsyncPolicy::EveryAppend);
        let active_id = ids.last().copied().unwrap_or(0).max(ack_seg.unwrap_or(0)) + 1;
        let active = Arc::new(segment::create(&dir, active_id, sync_every)?);
        segments.push_back(Segment {
            id: active_id,
            len: SEGMENT_HEADER_LEN,
            first_seq: seq,
            records: 0,
            first_bseq: bseq,
            data_bytes: 0,
            holes: Vec::new(),
            started: SystemTime::now(),
        });
        let mut ack_pos = ack_pos.unwrap_or(Pos {
            cursor: Cursor {
                segment: active_id,
                offset: SEGMENT_HEADER_LEN,
            },
            seq,
            bseq,
        });
        // Leading segments with nothing left to deliver go, after the ack
        // naming the segment behind them is durable.
        let mut doomed = Vec::new();
        while segments.len() > 1 && segments[0].end_seq() == ack_pos.seq {
            if let Some(s) = segments.pop_front() {
                doomed.push(s.id);
            }
            let front = &segments[0];
            ack_pos = Pos {
                cursor: Cursor {
                    segment: front.id,
                    offset: SEGMENT_HEADER_LEN,
                },
                seq: front.first_seq,
                bseq: front.first_bseq,
            };
        }
        ack::write_ack(&dir, ack_pos.cursor.segment, ack_pos.cursor.offset)?;
        for id in doomed {
            remove_quietly(&segment_path(&dir, id));
        }

        rec.pending_records = seq - ack_pos.seq;
        rec.pending_bytes = bseq - ack_pos.bseq;

        let slot = match cfg.fsync {
            FsyncPolicy::EveryAppend => None,
            FsyncPolicy::Interval(_) => Some(Arc::new(SyncSlot {
                file: Mutex::new(Arc::clone(&active)),
                dirty: AtomicBool::new(false),
            })),
        };
        let syncer = match (cfg.fsync, &slot) {
            (FsyncPolicy::Interval(period), Some(slot)) => {
                Some(start_syncer(&dir, period, Arc::clone(slot))?)
            }
            _ => None,
        };
        let inner = Inner {
            dir: dir.clone(),
            max_bytes: cfg.max_bytes,
            segment_bytes: cfg.segment_bytes,
            policy: cfg.policy,
            sync_every,
            segments,
            active,
            active_broken: false,
            next_id: active_id + 1,
            slot,
            ack: ack_pos,
            read: ack_pos,
            inflight: BTreeMap::new(),
            reader: None,
            window: Window {
                segment: 0,
                start: 0,
                data: Vec::new(),
            },
            appended: 0,
            acked: 0,
            dropped_records: 0,
            dropped_bytes: 0,
            corrupt: rec.corrupt_records,
            full_need: 0,
            hook: None,
        };
        let spool = Spool {
            shared: Arc::new(Shared {
                dir,
                inner: Mutex::new(inner),
                ack_lock: Mutex::new(()),
                readable: Notify::new(),
                space: Notify::new(),
                syncer,
            }),
        };
        Ok((spool, rec))
    }
}

pub(super) fn start_syncer(
    dir: &Path,
    period: Duration,
    slot: Arc<SyncSlot>,
) -> Result<Syncer, SpoolError> {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("spool-fsync".into())
        .spawn(move || {
            // Disconnected (the spool was dropped) ends the loop.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                if slot.dirty.swap(false, Ordering::Relaxed) {
                    let file = Arc::clone(&lock(&slot.file));
                    if let Err(e) = file.sync_data() {
                        tracing::warn!(error = %e, "spool: periodic fsync failed; retrying");
                        slot.dirty.store(true, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(io_err(dir))?;
    Ok(Syncer {
        stop: Some(tx),
        handle: Some(handle),
    })
}
