//! UMAP (McInnes, Healy & Melville 2018): a 2-D map that keeps each image's neighbourhood, where
//! PCA keeps only the two directions of largest variance.
//!
//! Hand-written because no maintained Rust crate does it without a large dependency tree; it
//! follows the reference implementation (`umap-learn` 0.5, `metric="cosine"`) step by step:
//! exact 15-nearest-neighbour graph (the blocked scan of [`super::top_k`]), fuzzy memberships
//! with a per-point bandwidth found by bisection, the fuzzy union of the two directions, then
//! stochastic gradient descent on the cross-entropy with negative sampling (rate 5), learning
//! rate decaying linearly from 1, `min_dist = 0.1` (`a = 1.577`, `b = 0.8951`). Two choices
//! differ, both for speed on a laptop: the layout starts from the PCA map (umap's `init="pca"`)
//! rather than a spectral embedding, and 200 epochs are run from 5 000 points up (umap: from
//! 10 000). Every random draw comes from a seeded stream and the descent runs on one thread, so
//! the same rows always give the same map.
//!
//! Past [`UMAP_SAMPLE`] rows the neighbour graph alone would be quadratic (a million rows: 10¹²
//! products), so a seeded sample of that many is laid out as above and every other row is placed
//! among its [`PLACE_NEIGHBORS`] most similar sampled rows: at the mean of their positions,
//! weighted by `exp(s / τ)` with τ = 0.1 (the paper's temperature), as umap's `transform` places
//! new points from their neighbours. Every row gets a position; the cost beyond the sample's
//! layout is one pass of the rows against the sample.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Embeddings, EvalError};

/// Rows laid out by UMAP itself; more are placed from a sample of this many (about 8 s on two
/// cores).
pub const UMAP_SAMPLE: usize = 10_000;
/// Sampled rows each other row is placed among.
const PLACE_NEIGHBORS: usize = 5;
/// Temperature of the placement's weights.
const PLACE_TEMPERATURE: f32 = 0.1;
/// Rows placed between two progress reports (so a stop is heard within a second or two).
const PLACE_CHUNK: usize = 32_768;

/// Neighbourhood size (umap's `n_neighbors` default), counting the point itself as umap does:
/// 14 other points.
const NEIGHBORS: usize = 15;
/// Curve parameters for `min_dist = 0.1`, `spread = 1` (what umap fits for its defaults).
const A: f32 = 1.577;
const B: f32 = 0.8951;
/// Negative samples per positive sample.
const NEGATIVE_RATE: usize = 5;
/// Gradient clip (umap's).
const CLIP: f32 = 4.0;
/// The initial layout is scaled so that its largest coordinate is this (umap's).
const INIT_EXTENT: f32 = 10.0;

/// Epochs of the descent for `n` points.
fn epochs_for(n: usize) -> usize {
    if n < 5000 { 500 } else { 200 }
}

/// 2-D UMAP coordinates of every row. `progress(done, total)` is called after each epoch of the
/// descent (the neighbour graph counts as the first step); returning `false` stops with
/// [`EvalError::Stopped`].
///
/// # Errors
/// [`EvalError::TooFewRows`] below 3 rows; [`EvalError::Stopped`].
pub fn umap_2d(
    features: Embeddings,
    seed: u64,
    progress: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<[f32; 2]>, EvalError> {
    let n = features.len();
    if n < 3 {
        return Err(EvalError::TooFewRows {
            what: "a UMAP map",
            needed: 3,
            got: n,
        });
    }
    if n <= UMAP_SAMPLE {
        return layout(features, seed, progress);
    }
    placed_from_sample(features, UMAP_SAMPLE, seed, progress)
}

/// The map of [`umap_2d`] past the sample size: `size` rows (seeded) laid out by UMAP, every
/// other placed among its nearest of them.
fn placed_from_sample(
    features: Embeddings,
    size: usize,
    seed: u64,
    progress: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<[f32; 2]>, EvalError> {
    let n = features.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A4D_504C);
    let mut sampled = rand::seq::index::sample(&mut rng, n, size).into_vec();
    sampled.sort_unstable();
    let values = features.gather(&sampled);
    let sample = Embeddings::trusted(&values, features.dim());
    // The placement is one more step after the sample's epochs.
    let steps = epochs_for(size) + 2;
    let placed = layout(sample, seed, &|done, _| progress(done, steps))?;
    let mut positions = vec![[0.0f32; 2]; n];
    let mut in_sample = vec![false; n];
    for (&row, &position) in sampled.iter().zip(&placed) {
        positions[row] = position;
        in_sample[row] = true;
    }
    let others: Vec<usize> = (0..n).filter(|&row| !in_sample[row]).collect();
    for chunk in others.chunks(PLACE_CHUNK) {
        let values = features.gather(chunk);
        let queries = Embeddings::trusted(&values, features.dim());
        let nearest = super::top_k(queries, sample, PLACE_NEIGHBORS, false)?;
        for (&row, hits) in chunk.iter().zip(&nearest) {
            positions[row] = weighted_position(hits, &placed);
        }
        if !progress(steps - 1, steps) {
            return Err(EvalError::Stopped);
        }
    }
    progress(steps, steps);
    Ok(positions)
}

/// The mean of the sampled rows' positions `hits` name, weighted by `exp(s / τ)` (relative to the
/// best, so that no weight overflows).
fn weighted_position(hits: &[(usize, f32)], placed: &[[f32; 2]]) -> [f32; 2] {
    let best = hits.first().map_or(0.0, |&(_, s)| s);
    let (mut sum, mut total) = ([0.0f32; 2], 0.0f32);
    for &(row, score) in hits {
        let weight = ((score - best) / PLACE_TEMPERATURE).exp();
        sum[0] += weight * placed[row][0];
        sum[1] += weight * placed[row][1];
        total += weight;
    }
    [sum[0] / total, sum[1] / total]
}

/// UMAP of every row of `features` (at least 3).
fn layout(
    features: Embeddings,
    seed: u64,
    progress: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<[f32; 2]>, EvalError> {
    let n = features.len();
    let epochs = epochs_for(n);
    let total = epochs + 1;
    let k = (NEIGHBORS - 1).min(n - 1);
    let neighbors = super::top_k(features, features, k, true)?;
    if !progress(1, total) {
        return Err(EvalError::Stopped);
    }
    let edges = fuzzy_graph(&neighbors);
    let mut layout = initial_layout(features)?;
    optimize(&mut layout, &edges, epochs, seed, &|epoch| {
        progress(epoch + 1, total)
    })?;
    Ok(layout)
}

/// An edge of the symmetric fuzzy graph, in both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edge {
    head: usize,
    tail: usize,
    weight: f32,
}

/// Memberships `exp(-(d - ρ) / σ)` of each point's neighbours (cosine distance `1 − s`), with
/// `ρ` the distance to the nearest neighbour at a positive distance and `σ` such that the
/// memberships sum to `log2(k + 1)` (the neighbourhood with the point itself); then the fuzzy union `w + wᵀ − w ∘ wᵀ`, both directions listed.
fn fuzzy_graph(neighbors: &[Vec<(usize, f32)>]) -> Vec<Edge> {
    let n = neighbors.len();
    let distances: Vec<Vec<f32>> = neighbors
        .iter()
        .map(|hits| hits.iter().map(|&(_, s)| (1.0 - s).max(0.0)).collect())
        .collect();
    let mean_distance = distances.iter().flatten().sum::<f32>()
        / distances.iter().map(Vec::len).sum::<usize>().max(1) as f32;
    let mut directed: std::collections::HashMap<(usize, usize), (f32, f32)> =
        std::collections::HashMap::with_capacity(n * NEIGHBORS);
    for (i, (hits, d)) in neighbors.iter().zip(&distances).enumerate() {
        let target = (d.len() as f32 + 1.0).log2();
        let rho = d.iter().copied().find(|&x| x > 0.0).unwrap_or(0.0);
        let membership_sum = |sigma: f32| -> f32 {
            d.iter()
                .map(|&x| {
                    let excess = x - rho;
                    if excess <= 0.0 {
                        1.0
                    } else {
                        (-excess / sigma).exp()
                    }
                })
                .sum()
        };
        // Bisection on σ as in umap's smooth_knn_dist (64 steps, tolerance 1e-5).
        let (mut lo, mut hi, mut sigma) = (0.0f32, f32::INFINITY, 1.0f32);
        for _ in 0..64 {
            let sum = membership_sum(sigma);
            if (sum - target).abs() < 1e-5 {
                break;
            }
            if sum > target {
                hi = sigma;
                sigma = 0.5 * (lo + hi);
            } else {
                lo = sigma;
                sigma = if hi.is_infinite() {
                    2.0 * sigma
                } else {
                    0.5 * (lo + hi)
                };
            }
        }
        // umap's floor on σ, so that no point's memberships collapse to zero.
        let mean_i = d.iter().sum::<f32>() / d.len().max(1) as f32;
        let floor = 1e-3 * if rho > 0.0 { mean_i } else { mean_distance };
        let sigma = sigma.max(floor);
        for (&(j, _), &x) in hits.iter().zip(d) {
            let w = if x - rho <= 0.0 {
                1.0
            } else {
                (-(x - rho) / sigma).exp()
            };
            let entry = directed.entry((i.min(j), i.max(j))).or_insert((0.0, 0.0));
            if i < j {
                entry.0 = w;
            } else {
                entry.1 = w;
            }
        }
    }
    let mut pairs: Vec<((usize, usize), f32)> = directed
        .into_iter()
        .map(|(key, (a, b))| (key, a + b - a * b))
        .collect();
    // The map's iteration order is random: sort for a deterministic descent.
    pairs.sort_unstable_by_key(|&(key, _)| key);
    pairs
        .into_iter()
        .flat_map(|((i, j), weight)| {
            [
                Edge {
                    head: i,
                    tail: j,
                    weight,
                },
                Edge {
                    head: j,
                    tail: i,
                    weight,
                },
            ]
        })
        .collect()
}

/// The PCA map scaled so that its largest coordinate is [`INIT_EXTENT`].
fn initial_layout(features: Embeddings) -> Result<Vec<[f32; 2]>, EvalError> {
    let mut layout = super::pca_2d(features)?;
    let extent = layout
        .iter()
        .flat_map(|p| p.iter().map(|v| v.abs()))
        .fold(0.0f32, f32::max);
    let scale = if extent > 0.0 {
        INIT_EXTENT / extent
    } else {
        1.0
    };
    for point in &mut layout {
        point[0] *= scale;
        point[1] *= scale;
    }
    Ok(layout)
}

/// umap's `optimize_layout_euclidean` for one embedding moving against itself.
fn optimize(
    layout: &mut [[f32; 2]],
    edges: &[Edge],
    epochs: usize,
    seed: u64,
    keep_going: &dyn Fn(usize) -> bool,
) -> Result<(), EvalError> {
    let n = layout.len();
    let max_weight = edges.iter().map(|e| e.weight).fold(0.0f32, f32::max);
    // An edge is sampled every `max / w` epochs; edges too weak to be sampled once are dropped.
    let kept: Vec<(Edge, f32)> = edges
        .iter()
        .filter(|e| e.weight >= max_weight / epochs as f32)
        .map(|&e| (e, max_weight / e.weight))
        .collect();
    let per_sample: Vec<f32> = kept.iter().map(|k| k.1).collect();
    let per_negative: Vec<f32> = per_sample
        .iter()
        .map(|p| p / NEGATIVE_RATE as f32)
        .collect();
    let mut next_sample = per_sample.clone();
    let mut next_negative = per_negative.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clip = |g: f32| g.clamp(-CLIP, CLIP);
    for epoch in 0..epochs {
        let alpha = 1.0 - epoch as f32 / epochs as f32;
        let now = epoch as f32;
        for (e, (edge, _)) in kept.iter().enumerate() {
            if next_sample[e] > now {
                continue;
            }
            let (head, tail) = (edge.head, edge.tail);
            let diff = [
                layout[head][0] - layout[tail][0],
                layout[head][1] - layout[tail][1],
            ];
            let d2 = diff[0] * diff[0] + diff[1] * diff[1];
            if d2 > 0.0 {
                // d²ᵇ from d²⁽ᵇ⁻¹⁾: one `powf` per sample, the descent's dominant cost.
                let power = d2.powf(B - 1.0);
                let coefficient = -2.0 * A * B * power / (A * power * d2 + 1.0);
                for axis in 0..2 {
                    let g = clip(coefficient * diff[axis]) * alpha;
                    layout[head][axis] += g;
                    layout[tail][axis] -= g;
                }
            }
            next_sample[e] += per_sample[e];
            let negatives = ((now - next_negative[e]) / per_negative[e]) as usize;
            for _ in 0..negatives {
                let other = rng.random_range(0..n);
                if other == head {
                    continue;
                }
                let diff = [
                    layout[head][0] - layout[other][0],
                    layout[head][1] - layout[other][1],
                ];
                let d2 = diff[0] * diff[0] + diff[1] * diff[1];
                let coefficient = if d2 > 0.0 {
                    2.0 * B / ((0.001 + d2) * (A * d2.powf(B) + 1.0))
                } else {
                    0.0
                };
                for axis in 0..2 {
                    let g = if coefficient > 0.0 {
                        clip(coefficient * diff[axis])
                    } else {
                        CLIP
                    };
                    layout[head][axis] += g * alpha;
                }
            }
            next_negative[e] += negatives as f32 * per_negative[e];
        }
        if !keep_going(epoch + 1) {
            return Err(EvalError::Stopped);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clusters` bundles of `per` unit rows in `dim` dimensions around random centres.
    fn bundles(clusters: usize, per: usize, dim: usize, spread: f32, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = crate::explore::planted::standard_normal;
        let centers: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
            .collect();
        let mut rows = Vec::new();
        for center in &centers {
            for _ in 0..per {
                let row: Vec<f32> = center
                    .iter()
                    .map(|c| c + spread * normal(&mut rng))
                    .collect();
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                rows.extend(row.iter().map(|v| v / norm));
            }
        }
        rows
    }

    #[test]
    fn memberships_follow_the_nearest_distance_and_are_symmetric() {
        // Point 0's neighbours at cosine 0.9 and 0.5; 1's and 2's at their own distances.
        let neighbors = vec![
            vec![(1, 0.9), (2, 0.5)],
            vec![(0, 0.9), (2, 0.6)],
            vec![(1, 0.6), (0, 0.5)],
        ];
        let edges = fuzzy_graph(&neighbors);
        assert_eq!(edges.len(), 6, "three pairs, both directions");
        let weight = |a: usize, b: usize| {
            edges
                .iter()
                .find(|e| e.head == a && e.tail == b)
                .unwrap()
                .weight
        };
        // The nearest neighbour of each point has membership 1, so its union is 1.
        assert_eq!(weight(0, 1), 1.0);
        assert_eq!(weight(1, 2), 1.0);
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            assert_eq!(weight(a, b), weight(b, a));
        }
        assert!(weight(0, 2) > 0.0 && weight(0, 2) < 1.0);
    }

    #[test]
    fn the_map_keeps_bundles_apart_and_is_reproducible() {
        // 4 bundles of 60 points in 32 dimensions: each point's map neighbours should be its own
        // bundle's.
        let (clusters, per, dim) = (4, 60, 32);
        let rows = bundles(clusters, per, dim, 0.35, 9);
        let features = Embeddings::new(&rows, dim).unwrap();
        let map = umap_2d(features, 0, &|_, _| true).unwrap();
        assert_eq!(map.len(), clusters * per);
        assert!(map.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        let agreement = bundle_agreement(&map, per);
        assert!(agreement > 0.95, "{agreement}");
        assert_eq!(map, umap_2d(features, 0, &|_, _| true).unwrap(), "seeded");
        let stopped = umap_2d(features, 0, &|done, _| done < 10);
        assert_eq!(stopped, Err(EvalError::Stopped));
    }

    /// The fraction of points whose nearest other point on `map` is of their own bundle.
    fn bundle_agreement(map: &[[f32; 2]], per: usize) -> f32 {
        let mut agree = 0;
        for (i, p) in map.iter().enumerate() {
            let nearest = (0..map.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |q: &[f32; 2]| (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2);
                    d(&map[a]).total_cmp(&d(&map[b]))
                })
                .unwrap();
            agree += usize::from(nearest / per == i / per);
        }
        agree as f32 / map.len() as f32
    }

    #[test]
    fn past_the_sample_every_row_is_placed_among_its_own_bundle() {
        // 5 bundles of 200: 150 rows laid out by UMAP, the other 850 placed from them.
        let (clusters, per, dim) = (5, 200, 32);
        let rows = bundles(clusters, per, dim, 0.35, 4);
        let features = Embeddings::new(&rows, dim).unwrap();
        let reports = std::sync::Mutex::new(Vec::new());
        let map = placed_from_sample(features, 150, 0, &|done, total| {
            reports.lock().unwrap().push((done, total));
            true
        })
        .unwrap();
        assert_eq!(map.len(), clusters * per);
        assert!(map.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        let agreement = bundle_agreement(&map, per);
        assert!(agreement > 0.95, "{agreement}");
        let reports = reports.into_inner().unwrap();
        let total = epochs_for(150) + 2;
        assert!(
            reports
                .iter()
                .all(|&(done, all)| all == total && done <= total)
        );
        assert_eq!(
            reports.last(),
            Some(&(total, total)),
            "the placement is the last step"
        );
        assert_eq!(
            map,
            placed_from_sample(features, 150, 0, &|_, _| true).unwrap(),
            "seeded"
        );
        let stopped = placed_from_sample(features, 150, 0, &|done, all| done < all - 1);
        assert_eq!(
            stopped,
            Err(EvalError::Stopped),
            "a stop during the placement"
        );
    }
}
