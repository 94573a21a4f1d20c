//! Tests of the envelope, the reader and the durable replacement. The last
//! run [`write_atomic_with`] on a simulated file system with a page cache,
//! failing or crashing it at every step, and check that every state a
//! restart can find holds exactly the old or the new checkpoint.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::*;

const KIND: Kind = Kind {
    name: "test",
    magic: *b"EMGT",
    version: 3,
    oldest: 2,
    legacy: &[1],
};

fn file(version: u16, body: &[u8]) -> Vec<u8> {
    let kind = Kind { version, ..KIND };
    let mut w = BodyWriter::new(&kind);
    w.bytes(body);
    w.finish()
}

/// A file as written before the envelope: no body length.
fn legacy_file(version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = b"EMGT".to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Recomputes the checksum after a test edited the content.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - TRAILER_LEN;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn every_field_round_trips() {
    let mut w = BodyWriter::new(&KIND);
    w.u8(0xAB);
    w.u16(0xBEEF);
    w.u32(0xDEAD_BEEF);
    w.u64(u64::MAX - 1);
    w.i64(i64::MIN);
    w.f64(f64::from_bits(0x7FF8_0000_0000_0042)); // a NaN with a payload
    w.f64(-0.0);
    w.bytes(b"raw");
    w.str("kgce ✓");
    let body_len = w.body().len();
    let bytes = w.finish();
    assert_eq!(bytes.len(), HEADER_LEN + body_len + TRAILER_LEN);
    assert_eq!(&bytes[..4], b"EMGT");
    assert_eq!(&bytes[4..6], &3u16.to_le_bytes());
    assert_eq!(&bytes[6..10], &(body_len as u32).to_le_bytes());

    let d = decode(&KIND, &bytes).expect("decode");
    assert_eq!((d.version, d.framing), (3, Framing::Envelope));
    let mut r = d.body;
    assert_eq!(r.position(), HEADER_LEN);
    assert_eq!(r.u8(), Ok(0xAB));
    assert_eq!(r.u16(), Ok(0xBEEF));
    assert_eq!(r.u32(), Ok(0xDEAD_BEEF));
    assert_eq!(r.u64(), Ok(u64::MAX - 1));
    assert_eq!(r.i64(), Ok(i64::MIN));
    assert_eq!(r.f64().map(f64::to_bits), Ok(0x7FF8_0000_0000_0042));
    assert_eq!(r.f64().map(f64::to_bits), Ok((-0.0f64).to_bits()));
    assert_eq!(r.bytes(3), Ok(&b"raw"[..]));
    assert_eq!(r.str(), Ok("kgce ✓"));
    assert!(r.is_empty());
    assert_eq!(r.finish(), Ok(()));
}

#[test]
fn every_read_fails_cleanly_at_the_end() {
    type Read = fn(&mut BodyReader<'_>) -> Result<(), CheckpointError>;
    let reads: [(usize, Read); 8] = [
        (1, |r| r.u8().map(drop)),
        (2, |r| r.u16().map(drop)),
        (4, |r| r.u32().map(drop)),
        (8, |r| r.u64().map(drop)),
        (8, |r| r.i64().map(drop)),
        (8, |r| r.f64().map(drop)),
        (5, |r| r.bytes(5).map(drop)),
        (6, |r| r.str().map(drop)),
    ];
    let data = [0x02, 0, 0, 0, b'o', b'k', 0xFF, 0xFF, 0xFF];
    for (size, read) in reads {
        for have in 0..size {
            let mut r = BodyReader::new("test", &data[..have]);
            let err = read(&mut r).expect_err("short read");
            assert!(
                matches!(err, CheckpointError::Truncated { kind: "test", .. }),
                "{err}"
            );
        }
    }
    // The position in the file is in the error.
    let bytes = file(3, &[1, 2, 3]);
    let mut r = decode(&KIND, &bytes).expect("decode").body;
    r.u16().expect("two bytes");
    assert_eq!(
        r.u32(),
        Err(CheckpointError::Truncated {
            kind: "test",
            at: HEADER_LEN + 2,
            wanted: 3
        })
    );
    let mut r = BodyReader::new("test", &[0x02, 0, 0, 0, 0xC3, 0x28]);
    assert!(matches!(
        r.str(),
        Err(CheckpointError::Invalid {
            what: "UTF-8 string",
            ..
        })
    ));
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let good = file(3, b"body");
    assert_eq!(
        decode(&KIND, &good[..9]).map(drop),
        Err(CheckpointError::TooShort {
            kind: "test",
            len: 9
        })
    );
    let mut other = good.clone();
    other[..4].copy_from_slice(b"EMGV");
    let err = decode(&KIND, &other).expect_err("magic");
    assert_eq!(
        err.to_string(),
        "test checkpoint: wrong magic \"EMGV\", expected \"EMGT\"; this is not a test checkpoint"
    );
    for torn in [&good[..good.len() - 1], &good[..HEADER_LEN + 2]] {
        assert!(matches!(
            decode(&KIND, torn),
            Err(CheckpointError::ChecksumMismatch { .. })
        ));
    }
    let mut flipped = good.clone();
    flipped[HEADER_LEN] ^= 0x10;
    assert!(matches!(
        decode(&KIND, &flipped),
        Err(CheckpointError::ChecksumMismatch { .. })
    ));
    let err = decode(&KIND, &file(4, b"body")).expect_err("version");
    assert_eq!(
        err.to_string(),
        "test checkpoint: unsupported version 4, this build reads 1 to 3"
    );
    let mut long = good.clone();
    long[6..10].copy_from_slice(&5u32.to_le_bytes());
    reseal(&mut long);
    assert_eq!(
        decode(&KIND, &long).map(drop),
        Err(CheckpointError::LengthMismatch {
            kind: "test",
            declared: 5,
            actual: 4
        })
    );
    let mut r = decode(&KIND, &good).expect("decode").body;
    r.u16().expect("two bytes");
    assert_eq!(
        r.finish(),
        Err(CheckpointError::TrailingBytes {
            kind: "test",
            at: HEADER_LEN + 2,
            len: 2
        })
    );
}

#[test]
fn files_from_before_the_envelope_are_read() {
    let old = legacy_file(1, b"old body");
    let d = decode(&KIND, &old).expect("legacy");
    assert_eq!((d.version, d.framing), (1, Framing::Legacy));
    assert_eq!(d.body.position(), 6);
    assert_eq!(d.body.clone().bytes(8), Ok(&b"old body"[..]));
    // The oldest envelope version is still read.
    let v2 = file(2, b"v2");
    let d = decode(&KIND, &v2).expect("v2");
    assert_eq!((d.version, d.framing), (2, Framing::Envelope));
    assert!(matches!(
        decode(&KIND, &legacy_file(0, b"")),
        Err(CheckpointError::UnsupportedVersion { found: 0, .. })
    ));
}

#[test]
fn a_version_in_both_framings_is_told_apart_by_its_length_field() {
    let kind = Kind {
        version: 2,
        oldest: 2,
        legacy: &[1, 2],
        ..KIND
    };
    // A legacy body starting with a count (7) rather than its length (12).
    let mut body = 7u32.to_le_bytes().to_vec();
    body.extend_from_slice(b"12345678");
    let legacy = legacy_file(2, &body);
    let d = decode(&kind, &legacy).expect("legacy");
    assert_eq!(d.framing, Framing::Legacy);
    assert_eq!(d.body.remaining(), 12);
    let envelope = file(2, &body);
    let d = decode(&kind, &envelope).expect("envelope");
    assert_eq!(d.framing, Framing::Envelope);
    assert_eq!(d.body.remaining(), 12);
}

#[test]
fn the_real_file_system_replaces_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.state");
    write_atomic(&path, b"first").expect("write");
    // A stray temporary file from a crash is simply overwritten.
    std::fs::write(tmp_path(&path), b"junk from a crash, longer than the data").expect("junk");
    write_atomic(&path, b"second").expect("write");
    assert_eq!(std::fs::read(&path).expect("read"), b"second");
    assert!(!tmp_path(&path).exists());
    assert_eq!(tmp_path(Path::new("ack")), Path::new("ack.tmp"));
    let err = write_atomic(&dir.path().join("missing/x.state"), b"x").expect_err("no dir");
    assert!(matches!(err, WriteError::Create { .. }), "{err}");
    let (path, source) = err.into_parts();
    assert!(path.ends_with("missing/x.state.tmp"));
    assert_eq!(source.kind(), io::ErrorKind::NotFound);
}

// ---- A file system with a page cache, and faults at every step ----

/// One file: what the running system sees, and what is on the disk.
#[derive(Debug, Clone)]
struct Inode {
    cache: Vec<u8>,
    disk: Vec<u8>,
}

/// A directory change not yet made durable by a directory fsync.
#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, usize),
    Rename(PathBuf, PathBuf),
}

/// One directory. Data reaches the disk at a file fsync, names at a
/// directory fsync; until then a power failure may lose them.
#[derive(Debug, Clone, Default)]
struct SimFs {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    disk_names: BTreeMap<PathBuf, usize>,
    pending: Vec<DirOp>,
}

impl SimFs {
    /// A file already durable: data and name.
    fn with_durable(mut self, path: &Path, bytes: &[u8]) -> SimFs {
        self.inodes.push(Inode {
            cache: bytes.to_vec(),
            disk: bytes.to_vec(),
        });
        let i = self.inodes.len() - 1;
        self.names.insert(path.to_path_buf(), i);
        self.disk_names.insert(path.to_path_buf(), i);
        self
    }

    /// A file written (name and data) but never fsynced.
    fn with_unsynced(mut self, path: &Path, bytes: &[u8]) -> SimFs {
        self.inodes.push(Inode {
            cache: bytes.to_vec(),
            disk: Vec::new(),
        });
        let i = self.inodes.len() - 1;
        self.names.insert(path.to_path_buf(), i);
        self.pending.push(DirOp::Link(path.to_path_buf(), i));
        self
    }

    fn apply(names: &mut BTreeMap<PathBuf, usize>, op: &DirOp) {
        match op {
            DirOp::Link(name, i) => {
                names.insert(name.clone(), *i);
            }
            DirOp::Rename(from, to) => {
                if let Some(i) = names.remove(from) {
                    names.insert(to.clone(), i);
                }
            }
        }
    }

    /// Every content `path` can have when the gateway starts again: after a
    /// kill -9 the page cache survives; after a power failure a prefix of the
    /// pending directory changes survives (journals keep their order), and
    /// a file not fsynced since its last change holds its old data, nothing,
    /// half or all of its new data.
    fn after_crash(&self, path: &Path) -> Vec<Option<Vec<u8>>> {
        let mut out = vec![self.names.get(path).map(|&i| self.inodes[i].cache.clone())];
        for k in 0..=self.pending.len() {
            let mut names = self.disk_names.clone();
            for op in &self.pending[..k] {
                SimFs::apply(&mut names, op);
            }
            let Some(&i) = names.get(path) else {
                out.push(None);
                continue;
            };
            let n = &self.inodes[i];
            out.push(Some(n.disk.clone()));
            if n.cache != n.disk {
                let half = n.cache.len() / 2;
                out.extend([Vec::new(), n.cache[..half].to_vec(), n.cache.clone()].map(Some));
            }
        }
        out
    }
}

/// An open file of the simulation: its inode.
struct SimFile(usize);

impl Storage for SimFs {
    type File = SimFile;

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        if let Some(&i) = self.names.get(path) {
            self.inodes[i].cache.clear();
            return Ok(SimFile(i));
        }
        self.inodes.push(Inode {
            cache: Vec::new(),
            disk: Vec::new(),
        });
        let i = self.inodes.len() - 1;
        self.names.insert(path.to_path_buf(), i);
        self.pending.push(DirOp::Link(path.to_path_buf(), i));
        Ok(SimFile(i))
    }

    fn write(&mut self, file: &mut SimFile, bytes: &[u8]) -> io::Result<()> {
        self.inodes[file.0].cache.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, file: &mut SimFile) -> io::Result<()> {
        let n = &mut self.inodes[file.0];
        n.disk.clone_from(&n.cache);
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let i = self
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.names.insert(to.to_path_buf(), i);
        self.pending
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&mut self, _dir: &Path) -> io::Result<()> {
        for op in std::mem::take(&mut self.pending) {
            SimFs::apply(&mut self.disk_names, &op);
        }
        Ok(())
    }
}

/// A step of [`Storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Write,
    Sync,
    Rename,
    SyncDir,
}

const OPS: [Op; 5] = [Op::Create, Op::Write, Op::Sync, Op::Rename, Op::SyncDir];

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing.
    None,
    /// The process dies just before the step.
    CrashBefore(Op),
    /// The process dies just after the step.
    CrashAfter(Op),
    /// The process dies with half the data written.
    CrashMidWrite,
    /// The step fails with an error; the process goes on.
    Fail(Op),
}

fn faults() -> Vec<Fault> {
    let mut all = vec![Fault::None, Fault::CrashMidWrite];
    for op in OPS {
        all.extend([
            Fault::CrashBefore(op),
            Fault::CrashAfter(op),
            Fault::Fail(op),
        ]);
    }
    all
}

/// [`SimFs`] with a fault; after a crash every step fails, as nothing runs.
struct Faulty<'a> {
    fs: &'a mut SimFs,
    fault: Fault,
    dead: bool,
}

impl Faulty<'_> {
    fn step<R>(&mut self, op: Op, f: impl FnOnce(&mut SimFs) -> io::Result<R>) -> io::Result<R> {
        let crashed = || io::Error::other("crashed");
        if self.dead {
            return Err(crashed());
        }
        match self.fault {
            Fault::CrashBefore(o) if o == op => {
                self.dead = true;
                Err(crashed())
            }
            Fault::Fail(o) if o == op => Err(io::Error::other("injected failure")),
            Fault::CrashAfter(o) if o == op => {
                let r = f(self.fs);
                self.dead = true;
                r.and(Err(crashed()))
            }
            _ => f(self.fs),
        }
    }
}

impl Storage for Faulty<'_> {
    type File = SimFile;

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        self.step(Op::Create, |fs| fs.create(path))
    }

    fn write(&mut self, file: &mut SimFile, bytes: &[u8]) -> io::Result<()> {
        if self.fault == Fault::CrashMidWrite && !self.dead {
            self.dead = true;
            self.fs.write(file, &bytes[..bytes.len() / 2])?;
            return Err(io::Error::other("crashed"));
        }
        self.step(Op::Write, |fs| fs.write(file, bytes))
    }

    fn sync(&mut self, file: &mut SimFile) -> io::Result<()> {
        self.step(Op::Sync, |fs| fs.sync(file))
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.step(Op::Rename, |fs| fs.rename(from, to))
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.step(Op::SyncDir, |fs| fs.sync_dir(dir))
    }
}

/// What a restart reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Old,
    New,
    /// Anything else: a decode error (the old state is lost) or other data.
    Torn,
}

fn classify(content: Option<&[u8]>, old: Option<&[u8]>, new: &[u8]) -> Seen {
    match content {
        // No checkpoint: right only when there was none before.
        None if old.is_none() => Seen::Old,
        // As a restart reads it: an undecodable file loses the old state.
        Some(bytes) if decode(&KIND, bytes).is_ok() && old == Some(bytes) => Seen::Old,
        Some(bytes) if decode(&KIND, bytes).is_ok() && bytes == new => Seen::New,
        None | Some(_) => Seen::Torn,
    }
}

const TARGET: &str = "/data/validation.state";

/// States a write can start from: no checkpoint yet, a durable one, and a
/// durable one beside a stray temporary file (durable or not) of an earlier crash.
fn starts(old: &[u8]) -> Vec<(&'static str, SimFs)> {
    let target = Path::new(TARGET);
    let tmp = tmp_path(target);
    let junk = b"half-written junk from an earlier crash";
    vec![
        ("no checkpoint", SimFs::default()),
        ("durable", SimFs::default().with_durable(target, old)),
        (
            "durable + stray tmp",
            SimFs::default()
                .with_durable(target, old)
                .with_durable(&tmp, junk),
        ),
        (
            "durable + unsynced tmp",
            SimFs::default()
                .with_durable(target, old)
                .with_unsynced(&tmp, junk),
        ),
    ]
}

type WriteFn = fn(&mut Faulty<'_>, &Path, &[u8]) -> Result<(), WriteError>;

/// One interrupted write.
#[derive(Debug)]
struct Run {
    start: &'static str,
    fault: Fault,
    ok: bool,
    seen: Vec<Seen>,
    /// What a restart then sees after the next, uninterrupted write.
    next: Vec<Seen>,
}

/// Runs `write` from every start state with every fault, and classifies
/// every state a restart can find.
fn interrupted_writes(write: WriteFn) -> Vec<Run> {
    let old = file(3, b"old state: baselines of meter 1 and 2");
    let new = file(3, b"new state");
    let newer = file(3, b"newer state, written after the restart");
    let target = Path::new(TARGET);
    let mut runs = Vec::new();
    for (start, fs) in starts(&old) {
        let had_old = fs.names.contains_key(target);
        let old_bytes = had_old.then_some(old.as_slice());
        for fault in faults() {
            let mut fs = fs.clone();
            let ok = write(
                &mut Faulty {
                    fs: &mut fs,
                    fault,
                    dead: false,
                },
                target,
                &new,
            )
            .is_ok();
            let seen = fs
                .after_crash(target)
                .iter()
                .map(|c| classify(c.as_deref(), old_bytes, &new))
                .collect();
            // The process restarted (kill -9: the cache survived) and writes again.
            let again = write(
                &mut Faulty {
                    fs: &mut fs,
                    fault: Fault::None,
                    dead: false,
                },
                target,
                &newer,
            );
            let next = fs
                .after_crash(target)
                .iter()
                .map(|c| match c.as_deref() {
                    Some(b) if again.is_ok() && b == newer.as_slice() => Seen::New,
                    _ => Seen::Torn,
                })
                .collect();
            runs.push(Run {
                start,
                fault,
                ok,
                seen,
                next,
            });
        }
    }
    runs
}

#[test]
fn an_interrupted_write_leaves_the_old_or_the_new_checkpoint() {
    let runs = interrupted_writes(|s, p, b| write_atomic_with(s, p, b));
    assert_eq!(runs.len(), 4 * 17);
    for run in &runs {
        let ctx = format!("{run:?}");
        assert_eq!(run.ok, run.fault == Fault::None, "{ctx}");
        if run.ok {
            // Returned: durable, whatever happens next.
            assert!(run.seen.iter().all(|s| *s == Seen::New), "{ctx}");
        } else {
            assert!(run.seen.iter().all(|s| *s != Seen::Torn), "{ctx}");
        }
        assert!(run.next.iter().all(|s| *s == Seen::New), "{ctx}");
    }
    // The faults really interrupt: both outcomes occur.
    let seen: Vec<Seen> = runs.iter().flat_map(|r| r.seen.clone()).collect();
    assert!(seen.contains(&Seen::Old) && seen.contains(&Seen::New));
}

/// `app::stages`'s replacement before this module: a temporary file
/// renamed over the target, without any fsync.
fn unsynced_rename(s: &mut Faulty<'_>, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let tmp = tmp_path(path);
    let io = |source| WriteError::Write {
        path: tmp.clone(),
        source,
    };
    let mut f = s.create(&tmp).map_err(io)?;
    s.write(&mut f, bytes).map_err(io)?;
    s.rename(&tmp, path).map_err(io)
}

/// Writing straight over the target.
fn in_place(s: &mut Faulty<'_>, path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io = |source| WriteError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = s.create(path).map_err(io)?;
    s.write(&mut f, bytes).map_err(io)?;
    s.sync(&mut f).map_err(io)
}

#[test]
fn the_old_replacements_are_caught_tearing_the_state() {
    // Without fsyncs a power failure can keep the rename but not the data.
    let runs = interrupted_writes(unsynced_rename);
    let torn: Vec<&Run> = runs
        .iter()
        .filter(|r| r.seen.contains(&Seen::Torn))
        .collect();
    assert!(
        torn.iter()
            .any(|r| r.fault == Fault::None && r.start == "durable")
    );
    assert!(
        torn.iter()
            .any(|r| r.fault == Fault::CrashAfter(Op::Rename))
    );
    // Over the target, even a kill -9 in the middle tears it.
    let runs = interrupted_writes(in_place);
    assert!(
        runs.iter()
            .any(|r| r.fault == Fault::CrashMidWrite && r.seen[0] == Seen::Torn)
    );
}
