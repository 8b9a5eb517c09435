//! Splitting one run over several processes or machines (`--shard I/N`):
//! shard `I` of `N` owns device index `i` when `i mod N = I`, open-model
//! arrival number `k` when `k mod N = I`, and its share of every count
//! (stage speakers, total turns, the speaker ramp rate) so that the `N`
//! shares add up to the whole. Device ids, clips, think times and start
//! times come from the global device index, so the `N` shards together
//! start exactly the devices one unsharded run would, at the same instants.

use std::fmt;

/// Shard `index` of `count` (`0/1` is the whole run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole run, unsharded.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` (0 ≤ I < N), e.g. `0/2` or `3/10`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let usage = || format!("`{text}`: write the shard as I/N with 0 <= I < N, e.g. 0/2");
        let (i, n) = text.trim().split_once('/').ok_or_else(usage)?;
        let index: u32 = i.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }

    /// True for `0/1`.
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether this shard owns item `i` (a device index, an arrival number).
    pub fn owns(self, i: u64) -> bool {
        i % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's part of `total` (the shares of all shards add up to it).
    pub fn share(self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// This shard's part of a `u32` count.
    pub fn share_u32(self, total: u32) -> u32 {
        // A share is never more than the total.
        self.share(u64::from(total)) as u32
    }

    /// The global index of this shard's `k`-th device.
    pub fn device(self, k: u32) -> u64 {
        u64::from(self.index) + u64::from(k) * u64::from(self.count)
    }

    /// This shard's position of global device `i` (which it must own).
    pub fn local(self, i: u32) -> u32 {
        i / self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_i_of_n_and_explains_the_rest() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard::parse(" 0 / 1 "), Ok(Shard::WHOLE));
        for bad in ["2/2", "1/0", "x/2", "1", "-1/2", ""] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        assert_eq!(Shard { index: 3, count: 10 }.to_string(), "3/10");
    }

    #[test]
    fn shares_add_up_to_the_whole_and_differ_by_at_most_one() {
        for n in 1..=7u32 {
            for total in [0u64, 1, 2, 5, 13, 100, 4001] {
                let shares: Vec<u64> = (0..n).map(|i| Shard { index: i, count: n }.share(total)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {n}");
                let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(hi - lo <= 1, "{shares:?}");
            }
        }
    }

    #[test]
    fn every_device_belongs_to_exactly_one_shard_and_maps_back() {
        let devices = 23u64;
        for n in 1..=5u32 {
            let mut seen = vec![0u32; devices as usize];
            for i in 0..n {
                let s = Shard { index: i, count: n };
                let own = s.share(devices) as u32;
                for k in 0..own {
                    let g = s.device(k);
                    assert!(s.owns(g));
                    assert_eq!(s.local(g as u32), k);
                    seen[g as usize] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{n} shards: {seen:?}");
        }
    }
}
