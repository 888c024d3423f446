//! `--shard I/N`: one of N disjoint parts of a batch, so that a CI matrix of N jobs covers
//! every item exactly once.

use std::fmt;
use std::str::FromStr;

/// Part `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which part, from 1 to `count`.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl Shard {
    /// True when item `k` (0-based, in sorted order) belongs to this part: `k mod N + 1 = I`.
    pub fn holds(self, k: usize) -> bool {
        k % self.count + 1 == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count >= 1 && (1..=count).contains(&index) => {
                Ok(Shard { index, count })
            }
            _ => Err(format!(
                "expected I/N with 1 <= I <= N (e.g. 1/4), got '{text}'"
            )),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_valid_parts() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("1/1".parse(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/2", "3/2", "1/0", "0/0", "-1/2", "1", "a/b", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_the_items() {
        for count in 1..6 {
            for k in 0..20 {
                let owners = (1..=count)
                    .filter(|&index| Shard { index, count }.holds(k))
                    .count();
                assert_eq!(owners, 1, "item {k} of {count} shards");
            }
        }
        let first: Vec<usize> = (0..7)
            .filter(|&k| Shard { index: 1, count: 3 }.holds(k))
            .collect();
        assert_eq!(first, [0, 3, 6]);
    }
}
