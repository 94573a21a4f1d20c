//! What a closed spool holds, read through the spool's own API without
//! acknowledging anything, for the tests that account for every line after
//! a crash, a shutdown or a full spool; and the (meter, slot) of a
//! `reading` line.

use std::path::Path;
use std::time::Duration;

use emgate::spool::{FsyncPolicy, FullPolicy, Spool, SpoolConfig};

/// Every record waiting in the closed spool at `dir`, oldest first. The
/// spool is closed again afterwards, its ack position untouched.
pub fn pending_records(dir: &Path) -> Vec<Vec<u8>> {
    let (spool, _recovery) = Spool::open(SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 64 << 20,
        segment_bytes: 1 << 20,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
    })
    .expect("open the spool");
    let mut all = Vec::new();
    let mut records = Vec::new();
    while spool.read(1024, usize::MAX, &mut records).is_some() {
        all.append(&mut records);
    }
    all
}

/// The lines of a record (line protocol, one line per point).
pub fn lines(record: &[u8]) -> impl Iterator<Item = &[u8]> {
    record.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// The (meter, slot) of one `reading` line: the `meter` tag and the
/// trailing timestamp (seconds).
pub fn meter_slot(line: &[u8]) -> (String, i64) {
    let text = std::str::from_utf8(line).expect("line protocol is UTF-8");
    let series = text.split(' ').next().expect("series");
    let meter = series
        .split(',')
        .find_map(|t| t.strip_prefix("meter="))
        .unwrap_or_else(|| panic!("no meter tag in {text:?}"));
    let slot = text
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp in {text:?}"));
    (meter.to_owned(), slot)
}
