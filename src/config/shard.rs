//! Shards by site: `[gateway] shard = "K/N"` and the assignment of sites to
//! shards by rendezvous (highest random weight) hashing.
//!
//! Why: several gateways split a province's sites between them without a
//! coordinator. A site's meters and its site totals must live in one
//! process, so the unit of assignment is the site; every gateway computes
//! the same assignment from the site id alone. Rendezvous hashing gives each
//! (site, shard) pair a weight and puts the site on the shard of highest
//! weight: going from N to N+1 shards leaves the weights of shards 0..N
//! unchanged, so a site moves only when the new shard N outweighs them all,
//! and then it moves *to* shard N, never between old shards (about 1/(N+1)
//! of the sites move).
//!
//! The hash is written out here (FNV-1a 64 of the site id, then the
//! SplitMix64 finaliser of that hash combined with the shard index), never
//! std's `RandomState`: the assignment must be the same in every process,
//! every release and on every machine. This module is pure.

use std::fmt;

/// One gateway's part of the sites: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// K, `0 <= K < N`.
    pub index: u32,
    /// N, at least 1.
    pub count: u32,
}

impl Default for Shard {
    /// No sharding: `0/1`, every site.
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Largest N accepted: far above any deployment, small enough that the
/// O(N) assignment of a site stays trivial.
pub const MAX_SHARDS: u32 = 1024;

impl Shard {
    /// Parses `"K/N"` (spaces around the numbers allowed).
    ///
    /// # Errors
    /// A message (without the value) saying what is wrong and what to write.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let form = "write \"K/N\" with 0 <= K < N, e.g. \"0/3\" for the first of three gateways (\"0/1\": no sharding)";
        let Some((k, n)) = text.split_once('/') else {
            return Err(format!("\"{text}\" is not a shard; {form}"));
        };
        let num = |s: &str| {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        let (Some(index), Some(count)) = (num(k), num(n)) else {
            return Err(format!("\"{text}\" is not a shard; {form}"));
        };
        if count == 0 {
            return Err(format!(
                "\"{text}\": N must be at least 1 (\"0/1\": no sharding)"
            ));
        }
        if count > MAX_SHARDS {
            return Err(format!("\"{text}\": N is at most {MAX_SHARDS} shards"));
        }
        if index >= count {
            return Err(format!(
                "\"{text}\": K must be below N (shards are numbered 0 to {}), e.g. \"{}/{count}\"",
                count - 1,
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// True when this is `0/1` (every site).
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }

    /// Whether `site_id` belongs to this shard.
    #[must_use]
    pub fn holds(&self, site_id: &str) -> bool {
        shard_of(site_id, self.count) == self.index
    }
}

/// FNV-1a, 64 bits, of `bytes`.
#[must_use]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: every input bit affects every output bit.
#[must_use]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous weight of `shard` for a site whose id hashes to `site_hash`.
#[must_use]
pub fn weight(site_hash: u64, shard: u32) -> u64 {
    mix64(site_hash ^ mix64(u64::from(shard).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The shard (0..n) of `site_id` among `n` shards: the shard of highest
/// weight, the lowest index on a tie. `n` of 0 is taken as 1.
#[must_use]
pub fn shard_of(site_id: &str, n: u32) -> u32 {
    let h = fnv1a64(site_id.as_bytes());
    let mut best = 0;
    let mut best_w = weight(h, 0);
    for s in 1..n {
        let w = weight(h, s);
        if w > best_w {
            best = s;
            best_w = w;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_pins_messages() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard::parse(" 0 / 1 "), Ok(Shard::default()));
        assert_eq!(
            Shard::parse("3/3").unwrap_err(),
            "\"3/3\": K must be below N (shards are numbered 0 to 2), e.g. \"2/3\""
        );
        assert_eq!(
            Shard::parse("0/0").unwrap_err(),
            "\"0/0\": N must be at least 1 (\"0/1\": no sharding)"
        );
        assert!(
            Shard::parse("-1/3")
                .unwrap_err()
                .starts_with("\"-1/3\" is not a shard; write \"K/N\"")
        );
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("0/2000").is_err());
    }

    #[test]
    fn fnv_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn growing_moves_sites_only_to_the_new_shard() {
        for n in 1..12 {
            let mut moved = 0;
            for i in 0..2000 {
                let id = format!("site-{i}");
                let (a, b) = (shard_of(&id, n), shard_of(&id, n + 1));
                assert!(a < n && b < n + 1);
                if a != b {
                    assert_eq!(b, n, "{id} moved from {a} to {b} going {n} -> {}", n + 1);
                    moved += 1;
                }
            }
            // About 2000/(n+1) move; far from none and from all.
            let expect = 2000 / (n + 1);
            assert!(
                moved > expect / 2 && moved < expect * 2,
                "n={n}: {moved} moved"
            );
        }
    }

    #[test]
    fn one_shard_holds_everything() {
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0);
        assert!(Shard::default().holds("x"));
    }
}
