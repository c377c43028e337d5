//! Every pair of 64-bit hashes within a Hamming distance, without comparing all pairs: multi-index
//! hashing (Norouzi, Punjani and Fleet, CVPR 2012). The hash is cut into four 16-bit parts, each
//! indexed by its value. Two hashes at most `r` bits apart differ in at most `r / 4` bits in one
//! of the four parts (pigeonhole), so a query visits, in each part's index, only the values that
//! many bits from its own, and checks the full distance of those candidates alone.
//!
//! Chosen over a BK-tree: perceptual hashes of distinct photos sit about 32 bits apart, a spread
//! in which a BK-tree's triangle-inequality pruning at radius 10 keeps most of the tree, where
//! here a query at radius 10 visits 4 × 137 buckets of about n / 65 536 hashes each.
//! Hand-written: the index is two arrays per part.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

/// Parts the hash is cut into, and their width.
const PARTS: usize = 4;
const PART_BITS: u32 = 16;

/// Each part's index: hashes sorted by that part's value, found through `starts`.
pub struct MultiIndex<'a> {
    hashes: &'a [u64],
    /// Per part: `starts[v]..starts[v + 1]` are the positions in `items` of the hashes whose part
    /// has value `v`.
    starts: Vec<Vec<u32>>,
    items: Vec<Vec<u32>>,
}

fn part(hash: u64, p: usize) -> usize {
    ((hash >> (p as u32 * PART_BITS)) & 0xffff) as usize
}

/// The 16-bit masks with at most `bits` set.
fn masks(bits: u32) -> Vec<u16> {
    (0..=u16::MAX).filter(|m| m.count_ones() <= bits).collect()
}

impl<'a> MultiIndex<'a> {
    /// The index of `hashes`, known by their positions.
    pub fn new(hashes: &'a [u64]) -> Self {
        let mut starts = Vec::with_capacity(PARTS);
        let mut items = Vec::with_capacity(PARTS);
        for p in 0..PARTS {
            // A counting sort by the part's value.
            let mut start = vec![0u32; (1 << PART_BITS) + 1];
            for &hash in hashes {
                start[part(hash, p) + 1] += 1;
            }
            for v in 0..1 << PART_BITS {
                start[v + 1] += start[v];
            }
            let mut next = start.clone();
            let mut order = vec![0u32; hashes.len()];
            for (i, &hash) in hashes.iter().enumerate() {
                let slot = &mut next[part(hash, p)];
                order[*slot as usize] = i as u32;
                *slot += 1;
            }
            starts.push(start);
            items.push(order);
        }
        Self {
            hashes,
            starts,
            items,
        }
    }

    /// Positions and distances of the hashes within `radius` of `hash` (itself included when
    /// indexed), each once, in no order; `masks` are those of `radius / 4` bits.
    fn within(&self, hash: u64, radius: u32, masks: &[u16], found: &mut Vec<(usize, u32)>) {
        found.clear();
        for p in 0..PARTS {
            let value = part(hash, p);
            for &mask in masks {
                let v = value ^ usize::from(mask);
                let (from, to) = (self.starts[p][v] as usize, self.starts[p][v + 1] as usize);
                for &i in &self.items[p][from..to] {
                    let d = (self.hashes[i as usize] ^ hash).count_ones();
                    if d <= radius {
                        found.push((i as usize, d));
                    }
                }
            }
        }
        // A hash close in several parts was found once per part.
        found.sort_unstable();
        found.dedup();
    }

    /// Every pair `(a, b, distance)` with `a < b` of the indexed hashes within `radius` bits of
    /// each other, sorted by `(a, b)`; `None` as soon as more than `limit` are found (the queries
    /// still running stop at their next hash, so a radius that takes in most of the folder costs
    /// about `limit` pairs of memory, not n²/2).
    pub fn pairs_within(&self, radius: u32, limit: usize) -> Option<Vec<(usize, usize, u32)>> {
        let masks = masks(radius / PARTS as u32);
        let found_so_far = AtomicUsize::new(0);
        let over = || found_so_far.load(Ordering::Relaxed) > limit;
        let mut pairs: Vec<(usize, usize, u32)> = (0..self.hashes.len())
            .into_par_iter()
            .map_init(Vec::new, |found, a| {
                if over() {
                    return Vec::new();
                }
                self.within(self.hashes[a], radius, &masks, found);
                let later: Vec<_> = found
                    .iter()
                    .filter(|&&(b, _)| b > a)
                    .map(|&(b, d)| (a, b, d))
                    .collect();
                found_so_far.fetch_add(later.len(), Ordering::Relaxed);
                later
            })
            .flatten_iter()
            .collect();
        if over() {
            return None;
        }
        pairs.sort_unstable();
        Some(pairs)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The index finds exactly the pairs the all-pairs comparison finds, on clustered hashes (a
    /// few centres and copies of them with bits flipped) mixed with uniform ones and an exact
    /// duplicate, at radii that do and do not divide by four.
    #[test]
    fn pairs_within_match_all_pairs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let centres: Vec<u64> = (0..20).map(|_| rng.random()).collect();
        let mut hashes: Vec<u64> = (0..600)
            .map(|i| {
                let mut hash = centres[i % centres.len()];
                for _ in 0..rng.random_range(0..14) {
                    hash ^= 1 << rng.random_range(0..64);
                }
                hash
            })
            .collect();
        hashes.extend((0..200).map(|_| rng.random::<u64>()));
        hashes.push(hashes[3]);
        let index = MultiIndex::new(&hashes);
        for radius in [0, 3, 7, 10, 13] {
            let mut expected = Vec::new();
            for a in 0..hashes.len() {
                for b in a + 1..hashes.len() {
                    let d = (hashes[a] ^ hashes[b]).count_ones();
                    if d <= radius {
                        expected.push((a, b, d));
                    }
                }
            }
            assert!(!expected.is_empty());
            assert_eq!(
                index.pairs_within(radius, usize::MAX),
                Some(expected.clone()),
                "radius {radius}"
            );
            // One pair past the limit is refused; at the limit, all come back.
            assert_eq!(index.pairs_within(radius, expected.len() - 1), None);
            assert_eq!(index.pairs_within(radius, expected.len()), Some(expected));
        }
        assert_eq!(MultiIndex::new(&[]).pairs_within(10, 0), Some(Vec::new()));
    }
}
