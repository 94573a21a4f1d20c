//! Hand-made damage and the exact report the spool must give for it: torn
//! tails, garbage lengths, a flipped byte, a bad segment header, a corrupt or
//! missing ack file, a leftover `ack.tmp`, a real SIGKILL of a writing
//! process; plus segment deletion, both full policies and the drop hook.
//!
//! Layout used throughout: payloads of 100 bytes, so a record is 108 bytes
//! framed, and `SEG3` fits exactly three records in a segment (8-byte header
//! + 3 x 108).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emgate::spool::{
    Appended, Cursor, FsyncPolicy, FullPolicy, MAX_RECORD_BYTES, Recovery, Spool, SpoolConfig,
    SpoolError,
};
use futures_util::FutureExt;

const LEN: usize = 100;
const FRAMED: u64 = 108;
const SEG3: u64 = 8 + 3 * FRAMED;

fn payload(i: u64) -> Vec<u8> {
    let mut p = vec![(i % 251) as u8; LEN];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64, policy: FullPolicy) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
        policy,
        fsync: FsyncPolicy::Interval(Duration::from_hours(1)),
    }
}

fn open(c: &SpoolConfig) -> (Spool, Recovery) {
    Spool::open(c.clone()).expect("spool opens")
}

/// Opens a fresh spool and appends records `0..n`, then closes it.
fn filled(dir: &Path, segment_bytes: u64, n: u64) -> SpoolConfig {
    let c = cfg(dir, segment_bytes, 1 << 30, FullPolicy::Block);
    let (s, rec) = open(&c);
    assert_eq!(rec, Recovery::default());
    for i in 0..n {
        assert_eq!(s.append(&payload(i)).unwrap(), Appended::Stored);
    }
    s.sync().unwrap();
    c
}

fn seg(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn seg_ids(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

fn read_all(s: &Spool) -> (Vec<Vec<u8>>, Option<Cursor>) {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let c = s.read(usize::MAX, usize::MAX, &mut out);
    (out, c)
}

fn payloads(ids: &[u64]) -> Vec<Vec<u8>> {
    ids.iter().copied().map(payload).collect()
}

fn clean(pending_records: u64) -> Recovery {
    Recovery {
        pending_records,
        pending_bytes: pending_records * FRAMED,
        ..Recovery::default()
    }
}

fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, b).unwrap();
}

#[test]
fn torn_tail_mid_header_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 3);
    truncate(&seg(tmp.path(), 1), 8 + 2 * FRAMED + 5);
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            truncated_bytes: 5,
            ..clean(2)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 1]));
    assert_eq!(
        fs::metadata(seg(tmp.path(), 1)).unwrap().len(),
        8 + 2 * FRAMED
    );
    drop(s);
    // Repaired on disk: the next open has nothing to report.
    assert_eq!(open(&c).1, clean(2));
}

#[test]
fn torn_tail_mid_payload_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 3);
    truncate(&seg(tmp.path(), 1), 8 + 2 * FRAMED + 8 + 50);
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            truncated_bytes: 58,
            ..clean(2)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 1]));
}

#[test]
fn zero_filled_tail_after_power_failure_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 2);
    let path = seg(tmp.path(), 1);
    truncate(&path, 8 + 2 * FRAMED + 4096);
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            truncated_bytes: 4096,
            ..clean(2)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 1]));
}

#[test]
fn garbage_length_in_the_middle_skips_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 3);
    let rec1 = (8 + FRAMED) as usize;
    patch(&seg(tmp.path(), 1), rec1, &0xffff_fff0u32.to_le_bytes());
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            corrupt_records: 1,
            corrupt_bytes: FRAMED,
            ..clean(2)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 2]));
    assert_eq!(s.stats().corrupt_records, 1);
}

#[test]
fn garbage_length_of_the_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 3);
    patch(
        &seg(tmp.path(), 1),
        (8 + 2 * FRAMED) as usize,
        &0x0000_1000u32.to_le_bytes(),
    );
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            truncated_bytes: FRAMED,
            ..clean(2)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 1]));
}

#[test]
fn flipped_byte_in_segment_one_of_three_skips_exactly_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), SEG3, 9);
    assert_eq!(seg_ids(tmp.path()), vec![1, 2, 3]);
    // Record 1 is the middle record of segment 1; flip a payload byte.
    let at = (8 + FRAMED + 8 + 40) as usize;
    let mut b = fs::read(seg(tmp.path(), 1)).unwrap();
    b[at] ^= 0x01;
    fs::write(seg(tmp.path(), 1), b).unwrap();

    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            corrupt_records: 1,
            corrupt_bytes: FRAMED,
            ..clean(8)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 2, 3, 4, 5, 6, 7, 8]));
    // A re-read after rewind skips it again without counting it again.
    s.rewind();
    assert_eq!(read_all(&s).0.len(), 8);
    assert_eq!(s.stats().corrupt_records, 1);
    drop(s);
    // Reported once: recovery covered it with padding.
    let (s, rec) = open(&c);
    assert_eq!(rec, clean(8));
    assert_eq!(read_all(&s).0, payloads(&[0, 2, 3, 4, 5, 6, 7, 8]));
}

#[test]
fn damage_found_while_running_is_skipped_and_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), 1 << 20, 1 << 30, FullPolicy::Block);
    let (s, _) = open(&c);
    for i in 0..3 {
        s.append(&payload(i)).unwrap();
    }
    // Bit rot under a running spool: the read checks the checksum.
    let active = *seg_ids(tmp.path()).last().unwrap();
    let at = (8 + FRAMED + 8 + 10) as usize;
    let mut b = fs::read(seg(tmp.path(), active)).unwrap();
    b[at] ^= 0x80;
    fs::write(seg(tmp.path(), active), b).unwrap();
    assert_eq!(read_all(&s).0, payloads(&[0, 2]));
    let st = s.stats();
    assert_eq!(
        (st.corrupt_records, st.records, st.bytes),
        (1, 2, 2 * FRAMED)
    );
    s.rewind();
    let (out, cursor) = read_all(&s);
    assert_eq!(out, payloads(&[0, 2]));
    assert_eq!(s.stats().corrupt_records, 1);
    s.ack(cursor.unwrap()).unwrap();
    let st = s.stats();
    assert_eq!((st.records, st.bytes, st.acked_records), (0, 0, 2));
}

#[test]
fn bad_segment_header_skips_that_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), SEG3, 9);
    patch(&seg(tmp.path(), 2), 0, b"NOTSPOOL");
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            skipped_segments: 1,
            ..clean(6)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[0, 1, 2, 6, 7, 8]));
    assert!(tmp.path().join(format!("{:020}.seg.corrupt", 2)).exists());
    assert!(!seg(tmp.path(), 2).exists());
    drop(s);
    assert_eq!(open(&c).1, clean(6));
}

#[test]
fn partial_header_of_a_new_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), 1 << 20, 2);
    // A crash right after creating segment 7, mid-header.
    fs::write(seg(tmp.path(), 7), b"EMSP").unwrap();
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            truncated_bytes: 4,
            ..clean(2)
        }
    );
    assert!(!seg(tmp.path(), 7).exists());
    // Ids never go back: the new active segment comes after 7.
    assert_eq!(seg_ids(tmp.path()), vec![1, 8]);
    assert_eq!(read_all(&s).0, payloads(&[0, 1]));
}

/// Six records in segments 1 and 2, the first four acknowledged.
fn acked_four(dir: &Path) -> SpoolConfig {
    let c = filled(dir, SEG3, 6);
    let (s, _) = open(&c);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let cur = s.read(4, usize::MAX, &mut out).unwrap();
    s.ack(cur).unwrap();
    assert_eq!(seg_ids(dir), vec![2, 3]);
    c
}

#[test]
fn corrupt_ack_file_redelivers_everything_live() {
    let tmp = tempfile::tempdir().unwrap();
    let c = acked_four(tmp.path());
    assert_eq!(open(&c).1, clean(2));
    let ack = tmp.path().join("ack");
    let mut b = fs::read(&ack).unwrap();
    b[10] ^= 0xff;
    fs::write(&ack, b).unwrap();
    let (s, rec) = open(&c);
    // Segment 2 holds records 3, 4 and 5; record 3 was acked, but without a
    // trustworthy position it is delivered again (at-least-once).
    assert_eq!(
        rec,
        Recovery {
            ack_reset: true,
            ..clean(3)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[3, 4, 5]));
    drop(s);
    // The ack file was rewritten: the next open is clean.
    assert_eq!(open(&c).1, clean(3));
}

#[test]
fn missing_ack_file_redelivers_everything_live() {
    let tmp = tempfile::tempdir().unwrap();
    let c = acked_four(tmp.path());
    fs::remove_file(tmp.path().join("ack")).unwrap();
    let (s, rec) = open(&c);
    assert_eq!(
        rec,
        Recovery {
            ack_reset: true,
            ..clean(3)
        }
    );
    assert_eq!(read_all(&s).0, payloads(&[3, 4, 5]));
}

#[test]
fn leftover_ack_tmp_is_removed_and_the_old_ack_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let c = acked_four(tmp.path());
    // A crash after writing ack.tmp, before the rename.
    fs::write(tmp.path().join("ack.tmp"), b"half-written").unwrap();
    let (s, rec) = open(&c);
    assert_eq!(rec, clean(2));
    assert!(!tmp.path().join("ack.tmp").exists());
    assert_eq!(read_all(&s).0, payloads(&[4, 5]));
}

#[test]
fn drop_without_sync_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), 4096, 1 << 30, FullPolicy::Block);
    let (s, _) = open(&c);
    for i in 0..500 {
        s.append(&payload(i)).unwrap();
    }
    drop(s);
    let (s, rec) = open(&c);
    assert_eq!(rec, clean(500));
    assert_eq!(read_all(&s).0, payloads(&(0..500).collect::<Vec<_>>()));
}

/// Not a test on its own: the process `sigkill_loses_nothing_appended` starts
/// and kills. It appends until killed, printing each appended index once
/// `append` has returned. Without `EMGATE_SPOOL_CHILD_DIR` it does nothing.
#[test]
fn sigkill_child_process() {
    let Some(dir) = std::env::var_os("EMGATE_SPOOL_CHILD_DIR") else {
        return;
    };
    let c = cfg(Path::new(&dir), 4096, 1 << 30, FullPolicy::Block);
    let (s, _) = open(&c);
    for i in 0.. {
        s.append(&payload(i)).unwrap();
        println!("appended {i}");
    }
}

#[test]
fn sigkill_loses_nothing_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    // The child's full test name: libtest names tests by their module path
    // without the crate, e.g. `spool_recovery::sigkill_child_process`.
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_crate, module)| module);
    let child_test = format!("{module}::sigkill_child_process");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
        .env("EMGATE_SPOOL_CHILD_DIR", &dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child test process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("appended ") {
            let i: u64 = i.parse().unwrap();
            last = Some(i);
            if i == 3000 {
                break;
            }
        }
    }
    // SIGKILL mid-stream: the child is appending as fast as it can.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(last, Some(3000), "the child appended");
    let (s, rec) = open(&cfg(&dir, 4096, 1 << 30, FullPolicy::Block));
    // Everything the child reported is there, in order; a record in flight
    // at the kill is either complete or cut off as a torn tail.
    let (out, _) = read_all(&s);
    assert!(out.len() as u64 > 3000, "lost appended records: {rec}");
    assert_eq!(out, payloads(&(0..out.len() as u64).collect::<Vec<_>>()));
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(rec.pending_records, out.len() as u64);
}

#[test]
fn segments_are_deleted_exactly_when_fully_acked() {
    let tmp = tempfile::tempdir().unwrap();
    let c = filled(tmp.path(), SEG3, 9);
    let (s, _) = open(&c);
    assert_eq!(seg_ids(tmp.path()), vec![1, 2, 3, 4]);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let after2 = s.read(2, usize::MAX, &mut out).unwrap();
    let after3 = s.read(1, usize::MAX, &mut out).unwrap();
    let after5 = s.read(2, usize::MAX, &mut out).unwrap();
    assert_eq!(out, payloads(&[0, 1, 2, 3, 4]));
    s.ack(after2).unwrap();
    assert_eq!(
        seg_ids(tmp.path()),
        vec![1, 2, 3, 4],
        "record 2 of segment 1 unacked"
    );
    s.ack(after3).unwrap();
    assert_eq!(seg_ids(tmp.path()), vec![2, 3, 4]);
    s.ack(after5).unwrap();
    assert_eq!(seg_ids(tmp.path()), vec![2, 3, 4]);
    // Acks never move backwards.
    s.ack(after2).unwrap();
    assert_eq!(s.stats().records, 4);
    let (rest, end) = read_all(&s);
    assert_eq!(rest, payloads(&[5, 6, 7, 8]));
    s.ack(end.unwrap()).unwrap();
    // Segment 4 is the active one: it stays, empty.
    assert_eq!(seg_ids(tmp.path()), vec![4]);
    let st = s.stats();
    assert_eq!(
        (st.records, st.bytes, st.segments, st.acked_records),
        (0, 0, 1, 9)
    );
    drop(s);
    assert_eq!(open(&c).1, clean(0));
}

#[tokio::test]
async fn block_policy_returns_full_and_wakes_after_an_ack() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), 1 << 20, 3 * FRAMED, FullPolicy::Block);
    let (s, _) = open(&c);
    for i in 0..3 {
        assert_eq!(s.append(&payload(i)).unwrap(), Appended::Stored);
    }
    assert_eq!(s.append(&payload(3)).unwrap(), Appended::Full);
    let st = s.stats();
    assert_eq!(
        (st.records, st.bytes, st.appended_records),
        (3, 3 * FRAMED, 3)
    );

    let waiter = s.clone();
    let mut wait = Box::pin(async move { waiter.wait_for_space().await });
    assert!((&mut wait).now_or_never().is_none(), "no space yet");
    // Reading frees nothing; acknowledging does.
    let mut out: Vec<Vec<u8>> = Vec::new();
    let cur = s.read(1, usize::MAX, &mut out).unwrap();
    assert!(
        (&mut wait).now_or_never().is_none(),
        "a read frees no space"
    );
    s.ack(cur).unwrap();
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("wait_for_space resolves after the ack");
    assert_eq!(s.append(&payload(3)).unwrap(), Appended::Stored);
    let (out, _) = read_all(&s);
    assert_eq!(out, payloads(&[1, 2, 3]));
    assert_eq!(s.stats().dropped_records, 0);
}

#[tokio::test]
async fn wait_readable_wakes_on_append() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(&cfg(tmp.path(), 1 << 20, 1 << 30, FullPolicy::Block));
    let waiter = s.clone();
    let mut wait = Box::pin(async move { waiter.wait_readable().await });
    assert!((&mut wait).now_or_never().is_none(), "nothing to read yet");
    s.append(&payload(0)).unwrap();
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("wait_readable resolves after an append");
}

#[test]
fn drop_oldest_drops_whole_segments_with_exact_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), SEG3, 6 * FRAMED, FullPolicy::DropOldest);
    let (s, _) = open(&c);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    s.set_drop_hook(Box::new(move |p| sink.lock().unwrap().push(p.to_vec())));
    for i in 0..6 {
        assert_eq!(s.append(&payload(i)).unwrap(), Appended::Stored);
    }
    // Records 0 and 1 were read (not acked): the read cursor is inside the
    // segment that goes.
    let mut out: Vec<Vec<u8>> = Vec::new();
    s.read(2, usize::MAX, &mut out).unwrap();
    assert_eq!(s.append(&payload(6)).unwrap(), Appended::Stored);
    assert_eq!(*seen.lock().unwrap(), payloads(&[0, 1, 2]));
    let st = s.stats();
    assert_eq!(
        (st.dropped_records, st.dropped_bytes, st.records, st.bytes),
        (3, 3 * FRAMED, 4, 4 * FRAMED)
    );
    assert_eq!(read_all(&s).0, payloads(&[3, 4, 5, 6]));
    drop(s);
    // After a restart delivery starts at the first live record.
    let (s, rec) = open(&c);
    assert_eq!(rec, clean(4));
    assert_eq!(read_all(&s).0, payloads(&[3, 4, 5, 6]));
}

#[test]
fn drop_oldest_rolls_when_the_oldest_segment_is_the_active_one() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), 1 << 20, 3 * FRAMED, FullPolicy::DropOldest);
    let (s, _) = open(&c);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    s.set_drop_hook(Box::new(move |p| sink.lock().unwrap().push(p.to_vec())));
    for i in 0..3 {
        s.append(&payload(i)).unwrap();
    }
    // Record 0 acked: it is not passed to the hook when its segment goes.
    let mut out: Vec<Vec<u8>> = Vec::new();
    let cur = s.read(1, usize::MAX, &mut out).unwrap();
    s.ack(cur).unwrap();
    s.append(&payload(3)).unwrap();
    s.append(&payload(4)).unwrap();
    assert_eq!(*seen.lock().unwrap(), payloads(&[1, 2, 3]));
    let st = s.stats();
    assert_eq!(
        (
            st.dropped_records,
            st.dropped_bytes,
            st.records,
            st.segments
        ),
        (3, 3 * FRAMED, 1, 1)
    );
    assert_eq!(read_all(&s).0, payloads(&[4]));
}

#[test]
fn one_record_always_fits_into_an_empty_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(tmp.path(), 256, 200, FullPolicy::Block);
    let (s, _) = open(&c);
    let big = vec![7u8; 1000];
    assert_eq!(s.append(&big).unwrap(), Appended::Stored);
    assert_eq!(s.append(&payload(1)).unwrap(), Appended::Full);
    assert_eq!(s.stats().bytes, 1008);
    let (out, cur) = read_all(&s);
    assert_eq!(out, vec![big]);
    s.ack(cur.unwrap()).unwrap();
    assert_eq!(s.append(&payload(1)).unwrap(), Appended::Stored);
}

#[test]
fn read_limits_return_at_least_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(&cfg(tmp.path(), 1 << 20, 1 << 30, FullPolicy::Block));
    for i in 0..5 {
        s.append(&payload(i)).unwrap();
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    assert!(s.read(10, 1, &mut out).is_some());
    assert_eq!(out, payloads(&[0]));
    out.clear();
    s.read(10, 2 * LEN, &mut out).unwrap();
    assert_eq!(out, payloads(&[1, 2]));
    out.clear();
    s.read(1, usize::MAX, &mut out).unwrap();
    assert_eq!(out, payloads(&[3]));
    s.rewind();
    out.clear();
    s.read(usize::MAX, usize::MAX, &mut out).unwrap();
    assert_eq!(out, payloads(&[0, 1, 2, 3, 4]));
    out.clear();
    assert_eq!(s.read(10, usize::MAX, &mut out), None);
    assert!(out.is_empty());
}

#[test]
fn too_large_record_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(&cfg(tmp.path(), 1 << 20, 1 << 30, FullPolicy::Block));
    let big = vec![0u8; MAX_RECORD_BYTES + 1];
    let err = s.append(&big).unwrap_err();
    assert!(matches!(
        err,
        SpoolError::TooLarge { len, max } if len == MAX_RECORD_BYTES + 1 && max == MAX_RECORD_BYTES
    ));
    assert_eq!(
        err.to_string(),
        "spool: a record of 67108865 bytes exceeds the limit of 67108864 bytes; split it into smaller batches"
    );
    assert_eq!(s.stats().records, 0);
}

#[test]
fn a_file_in_place_of_the_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("spool");
    fs::write(&path, b"not a directory").unwrap();
    let err = Spool::open(cfg(&path, 1 << 20, 1 << 30, FullPolicy::Block)).unwrap_err();
    assert!(
        matches!(&err, SpoolError::Io { path: p, .. } if *p == path),
        "{err}"
    );
}

#[test]
fn recovery_report_reads_as_one_log_line() {
    let rec = Recovery {
        pending_records: 12,
        pending_bytes: 3456,
        truncated_bytes: 5,
        corrupt_records: 1,
        corrupt_bytes: 108,
        skipped_segments: 0,
        ack_reset: false,
    };
    assert_eq!(
        rec.to_string(),
        "spool: 12 records (3456 bytes) pending; 5 torn bytes truncated; \
         1 corrupt regions (108 bytes) skipped; 0 segments with a bad header skipped; ack position intact"
    );
    assert!(!rec.is_clean());
    assert!(clean(3).is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producer_and_consumer_deliver_everything_once_in_order() {
    const N: u64 = 1000;
    let tmp = tempfile::tempdir().unwrap();
    // A small spool, so the producer blocks often and acks delete segments
    // while appends roll new ones.
    let c = cfg(tmp.path(), 4 * FRAMED + 8, 10 * FRAMED, FullPolicy::Block);
    let (s, _) = open(&c);
    let producer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..N {
                while s.append(&payload(i)).unwrap() == Appended::Full {
                    s.wait_for_space().await;
                }
            }
        })
    };
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    while (got.len() as u64) < N {
        s.wait_readable().await;
        out.clear();
        let cur = s.read(3, usize::MAX, &mut out).expect("readable");
        got.append(&mut out);
        s.ack(cur).unwrap();
    }
    producer.await.unwrap();
    assert_eq!(got, payloads(&(0..N).collect::<Vec<_>>()));
    let st = s.stats();
    assert_eq!(
        (
            st.records,
            st.bytes,
            st.appended_records,
            st.acked_records,
            st.dropped_records
        ),
        (0, 0, N, N, 0)
    );
    assert_eq!(seg_ids(tmp.path()).len() as u64, st.segments);
}
