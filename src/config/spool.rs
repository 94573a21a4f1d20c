//! `[spool]`: where and how accepted readings wait for the output.
//!
//! Why a file of its own: the spool's size bounds, full policy and fsync
//! policy decide what survives an outage or a power failure; they are
//! checked here into the spool's own [`SpoolConfig`], with the defaults an
//! absent section gets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Value;

use super::raw::SpoolRaw;
use crate::check::{self, Problems, Text, int, millis, path_key};
use crate::spool::{FsyncPolicy, FullPolicy, SpoolConfig};

/// Default bound on the spool: 1 GiB of unsent line protocol.
const SPOOL_MAX_BYTES: i64 = 1 << 30;
/// Default segment size: 16 MiB.
const SPOOL_SEGMENT_BYTES: i64 = 16 << 20;
/// Default fsync period (`fsync = "interval"`), ms.
const SPOOL_FSYNC_INTERVAL_MS: i64 = 1000;

/// The spool of a `[spool]` section that only sets `dir`: 1 GiB, 16 MiB
/// segments, `block` when full, fsync every second. For configurations
/// built in code (tests, benchmarks).
#[must_use]
pub fn default_spool(dir: impl Into<PathBuf>) -> SpoolConfig {
    SpoolConfig {
        dir: dir.into(),
        max_bytes: SPOOL_MAX_BYTES as u64,
        segment_bytes: SPOOL_SEGMENT_BYTES as u64,
        policy: FullPolicy::Block,
        fsync: FsyncPolicy::Interval(Duration::from_millis(SPOOL_FSYNC_INTERVAL_MS as u64)),
    }
}

/// `[spool]`; absent, the defaults under `<data_dir>/spool`.
pub(super) fn spool(v: Option<Value>, data_dir: &Path, p: &mut Problems) -> Option<SpoolConfig> {
    let r = match v {
        Some(v) => check::table::<SpoolRaw>(v, "spool", "a table ([spool])", p)?,
        None => SpoolRaw {
            dir: None,
            max_bytes: None,
            segment_bytes: None,
            policy: None,
            fsync: None,
            fsync_interval_ms: None,
        },
    };
    let dir = path_key(r.dir, "spool.dir", p).unwrap_or_else(|| data_dir.join("spool"));
    let max_bytes = int(
        r.max_bytes,
        "spool.max_bytes",
        SPOOL_MAX_BYTES,
        4096,
        i64::MAX,
        p,
    );
    let segment_bytes = int(
        r.segment_bytes,
        "spool.segment_bytes",
        SPOOL_SEGMENT_BYTES
            .min(max_bytes.unwrap_or(SPOOL_MAX_BYTES) / 4)
            .max(4096),
        4096,
        i64::MAX,
        p,
    );
    if let (Some(m), Some(s)) = (max_bytes, segment_bytes)
        && s > m
    {
        p.push(
            "spool.segment_bytes",
            format!("{s} is above max_bytes ({m}); a segment must fit in the spool"),
        );
    }
    let policy = match r.policy.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("block") => Some(FullPolicy::Block),
        Some("drop_oldest") => Some(FullPolicy::DropOldest),
        Some(other) => {
            p.push(
                "spool.policy",
                format!("unknown policy \"{other}\"; use \"block\" or \"drop_oldest\""),
            );
            None
        }
    };
    let interval = millis(
        r.fsync_interval_ms,
        "spool.fsync_interval_ms",
        SPOOL_FSYNC_INTERVAL_MS,
        1,
        p,
    );
    // The gateway appends one chunk per batch, so "every_batch" is the
    // spool's fsync before every append returns.
    let fsync = match r.fsync.as_ref().map(|Text(t)| t.as_str()) {
        None | Some("interval") => interval.map(FsyncPolicy::Interval),
        Some("every_batch") => Some(FsyncPolicy::EveryAppend),
        Some(other) => {
            p.push(
                "spool.fsync",
                format!("unknown fsync policy \"{other}\"; use \"interval\" or \"every_batch\""),
            );
            None
        }
    };
    Some(SpoolConfig {
        dir,
        max_bytes: max_bytes? as u64,
        segment_bytes: segment_bytes? as u64,
        policy: policy?,
        fsync: fsync?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `default_spool` promises what a `[spool]` with only `dir` loads to,
    /// and what an absent section loads to under the data directory.
    #[test]
    fn default_spool_is_what_the_loader_defaults_to() {
        let load = |text: &str| match crate::config::load_str_for_tests(text) {
            Ok(c) => format!("{:?}", c.spool),
            Err(e) => panic!("{e}"),
        };
        let gateway = "[gateway]\nid = \"gw\"\ndata_dir = \"d\"\n";
        assert_eq!(
            load(&format!("{gateway}[spool]\ndir = \"s\"\n")),
            format!("{:?}", default_spool("s"))
        );
        assert_eq!(load(gateway), format!("{:?}", default_spool("d/spool")));
    }
}
