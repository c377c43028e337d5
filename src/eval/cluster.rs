//! Clustering quality: k-means (k-means++ seeding, Lloyd iterations through the blocked scan) and
//! the NMI between a clustering and the labels (the paper's clustering protocol, §4.2).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::error::check_same_count;
use super::scan::{Collector, dot, scan};
use super::{Embeddings, EvalError};

/// Replaces arbitrary ids by dense ones (`0..distinct`, in increasing id order) and counts each.
fn densify(ids: &[usize]) -> (Vec<usize>, Vec<u64>) {
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let dense: Vec<usize> = ids
        .iter()
        .map(|id| {
            distinct
                .binary_search(id)
                .expect("id comes from the same list")
        })
        .collect();
    let mut counts = vec![0u64; distinct.len()];
    for &d in &dense {
        counts[d] += 1;
    }
    (dense, counts)
}

/// Shannon entropy (nats) of a partition given its part sizes out of `n`.
fn entropy(counts: &[u64], n: f64) -> f64 {
    -counts
        .iter()
        .map(|&c| {
            let p = c as f64 / n;
            p * p.ln()
        })
        .sum::<f64>()
}

/// Normalised mutual information with arithmetic-mean normalisation,
/// `I(L;C) / ((H(L) + H(C)) / 2)`, matching scikit-learn's
/// `normalized_mutual_info_score(average_method="arithmetic")`, including its limit cases: 1 when
/// both partitions are a single part (nothing to disagree on), 0 when the mutual information is 0
/// (e.g. one side is a single part and the other is not).
///
/// Ids are arbitrary (they need not be dense or match between the two sides).
pub fn nmi(labels: &[usize], clusters: &[usize]) -> Result<f64, EvalError> {
    check_same_count("labels", labels.len(), "clusters", clusters.len())?;
    if labels.is_empty() {
        return Err(EvalError::Empty("labels"));
    }
    let (label_ids, label_counts) = densify(labels);
    let (cluster_ids, cluster_counts) = densify(clusters);
    if label_counts.len() == 1 && cluster_counts.len() == 1 {
        return Ok(1.0);
    }
    // Contingency table as sorted runs of (label, cluster) pairs: memory stays O(n) even when both
    // sides have thousands of parts, and the summation order is deterministic.
    let mut pairs: Vec<(usize, usize)> = label_ids.into_iter().zip(cluster_ids).collect();
    pairs.sort_unstable();
    let n = labels.len() as f64;
    let mut mi = 0.0;
    for run in pairs.chunk_by(|a, b| a == b) {
        let (l, c) = run[0];
        let joint = run.len() as f64;
        let expected = label_counts[l] as f64 * cluster_counts[c] as f64;
        mi += joint / n * (joint * n / expected).ln();
    }
    // Rounding can leave a hair below zero for independent partitions.
    if mi <= 0.0 {
        return Ok(0.0);
    }
    let mean_entropy = (entropy(&label_counts, n) + entropy(&cluster_counts, n)) / 2.0;
    Ok(mi / mean_entropy)
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means++ seeding: the first centre uniformly, each next one with probability proportional to
/// the squared distance to the nearest centre chosen so far.
fn kmeans_plus_plus(
    features: Embeddings,
    k: usize,
    rng: &mut ChaCha8Rng,
    keep_going: &dyn Fn() -> bool,
) -> Result<Vec<f32>, EvalError> {
    let n = features.len();
    let mut centers = Vec::with_capacity(k * features.dim());
    centers.extend_from_slice(features.row(rng.random_range(0..n)));
    let mut nearest: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| squared_distance(features.row(i), &centers))
        .collect();
    while centers.len() < k * features.dim() {
        // Seeding thousands of clusters is itself a long pass: stop between centres.
        if centers.len() % (64 * features.dim()) == 0 && !keep_going() {
            return Err(EvalError::Stopped);
        }
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            // Rounding may leave target just above the last cumulative sum: fall back to the last
            // row with non-zero weight.
            let mut chosen = nearest.iter().rposition(|&d| d > 0.0).unwrap_or(0);
            for (i, &d) in nearest.iter().enumerate() {
                target -= f64::from(d);
                if target < 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            // Every row coincides with a centre (duplicated data): any row will do.
            rng.random_range(0..n)
        };
        let center = features.row(pick).to_vec();
        nearest.par_iter_mut().enumerate().for_each(|(i, d)| {
            *d = d.min(squared_distance(features.row(i), &center));
        });
        centers.extend_from_slice(&center);
    }
    Ok(centers)
}

/// The nearest centre of one row, fed by the blocked scan: with `‖x − c‖² = ‖x‖² + ‖c‖² − 2x·c`
/// the nearest centre maximises `x·c − ‖c‖²/2`, so the scan's dot products are all it needs.
struct NearestCenter<'a> {
    /// `‖c‖²/2` of every centre.
    half_norms: &'a [f32],
    best: (usize, f32),
}

impl Collector for NearestCenter<'_> {
    fn floor(&self) -> f32 {
        // The score offered is the raw dot product, not the ranking value: nothing may be
        // skipped wholesale.
        f32::NEG_INFINITY
    }

    #[inline]
    fn offer(&mut self, base_index: usize, score: f32) {
        let value = score - self.half_norms[base_index];
        // Offers arrive in index order: on a tie the lower index stays.
        if value > self.best.1 {
            self.best = (base_index, value);
        }
    }
}

/// Nearest centre and squared distance to it for every row (centres are rows of `centres`),
/// through the same blocked, parallel scan as the neighbour search.
fn assign(features: Embeddings, centers: &[f32]) -> Vec<(usize, f32)> {
    let dim = features.dim();
    let centers = Embeddings::trusted(centers, dim);
    let half_norms: Vec<f32> = (0..centers.len())
        .map(|c| 0.5 * dot(centers.row(c), centers.row(c)))
        .collect();
    let mut collectors: Vec<NearestCenter> = (0..features.len())
        .map(|_| NearestCenter {
            half_norms: &half_norms,
            best: (0, f32::NEG_INFINITY),
        })
        .collect();
    scan(features, centers, &mut collectors);
    collectors
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let row = features.row(i);
            let distance = (dot(row, row) - 2.0 * c.best.1).max(0.0);
            (c.best.0, distance)
        })
        .collect()
}

/// Lloyd update: each centre moves to the mean of its rows; a centre left without rows moves to
/// the row lying farthest from its assigned centre, so that no cluster is lost.
fn update_centers(features: Embeddings, assignment: &[(usize, f32)], centers: &mut [f32]) {
    let dim = features.dim();
    let k = centers.len() / dim;
    // Means in f64 and in row order: deterministic, and no drift on large clusters.
    let mut sums = vec![0.0f64; k * dim];
    let mut sizes = vec![0usize; k];
    for (i, &(c, _)) in assignment.iter().enumerate() {
        sizes[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(features.row(i)) {
            *s += f64::from(v);
        }
    }
    let mut distances: Vec<f32> = assignment.iter().map(|&(_, d)| d).collect();
    for (c, center) in centers.chunks_exact_mut(dim).enumerate() {
        if sizes[c] == 0 {
            // Farthest row, lowest index on ties.
            let far = (0..distances.len())
                .max_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(b.cmp(&a)))
                .expect("features is non-empty");
            center.copy_from_slice(features.row(far));
            // The same row must not re-seed a second empty cluster.
            distances[far] = f32::NEG_INFINITY;
        } else {
            for (x, &s) in center.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *x = (s / sizes[c] as f64) as f32;
            }
        }
    }
}

/// k-means on the rows of `features` (k-means++ seeding from `seed`, then Lloyd iterations until
/// the assignments stop changing or `max_iters` updates have run); returns a cluster id in `0..k`
/// per row. `keep_going` is asked before every iteration; when it says no, the clustering stops
/// with [`EvalError::Stopped`].
///
/// Squared Euclidean distance is used: on normalised rows it ranks exactly like cosine similarity.
/// A cluster that ends up empty is re-seeded at the row farthest from its current centre, so all
/// `k` clusters stay in use.
pub fn kmeans(
    features: Embeddings,
    k: usize,
    seed: u64,
    max_iters: usize,
    keep_going: &dyn Fn() -> bool,
) -> Result<Vec<usize>, EvalError> {
    if k == 0 {
        return Err(EvalError::ZeroParameter("number of clusters"));
    }
    if features.is_empty() {
        return Err(EvalError::Empty("features"));
    }
    if k > features.len() {
        return Err(EvalError::TooManyClusters {
            k,
            rows: features.len(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centers = kmeans_plus_plus(features, k, &mut rng, keep_going)?;
    let mut assignment = assign(features, &centers);
    for _ in 0..max_iters {
        if !keep_going() {
            return Err(EvalError::Stopped);
        }
        update_centers(features, &assignment, &mut centers);
        let next = assign(features, &centers);
        let converged = next.iter().zip(&assignment).all(|(a, b)| a.0 == b.0);
        assignment = next;
        if converged {
            break;
        }
    }
    Ok(assignment.into_iter().map(|(c, _)| c).collect())
}

/// Lloyd iterations allowed in [`clustering_nmi`] (scikit-learn's default; on real embeddings
/// assignments settle long before).
const CLUSTERING_MAX_ITERS: usize = 300;

/// Multiply-adds the Lloyd iterations of [`clustering_nmi`] may spend (rows × clusters × dim per
/// iteration): about a minute on two cores. CIFAR-10's 10 000 test rows in 10 clusters get all
/// 300 iterations; Stanford Online Products' 60 502 rows in 11 316 clusters get
/// [`CLUSTERING_MIN_ITERS`].
const CLUSTERING_WORK: f64 = 5e11;

/// Iterations every clustering gets, however large.
const CLUSTERING_MIN_ITERS: usize = 5;

/// The iteration cap of [`clustering_nmi`] for `rows` rows of `dim` columns in `k` clusters.
pub fn clustering_iterations(rows: usize, k: usize, dim: usize) -> usize {
    let per_iteration = rows as f64 * k as f64 * dim as f64;
    ((CLUSTERING_WORK / per_iteration.max(1.0)) as usize)
        .clamp(CLUSTERING_MIN_ITERS, CLUSTERING_MAX_ITERS)
}

/// NMI between `labels` and a k-means clustering of `features` with one cluster per distinct
/// label (the paper's clustering protocol), with the iteration cap of
/// [`clustering_iterations`]; stops with [`EvalError::Stopped`] when `keep_going` says so.
pub fn clustering_nmi(
    features: Embeddings,
    labels: &[usize],
    seed: u64,
    keep_going: &dyn Fn() -> bool,
) -> Result<f64, EvalError> {
    check_same_count("features", features.len(), "labels", labels.len())?;
    let (_, label_counts) = densify(labels);
    let k = label_counts.len();
    let iterations = clustering_iterations(features.len(), k, features.dim());
    let clusters = kmeans(features, k, seed, iterations, keep_going)?;
    nmi(labels, &clusters)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::random_unit_rows;
    use crate::eval::testing::{blobs, emb, fixture};

    #[test]
    fn nmi_matches_reference_fixture() {
        let cases = fixture().nmi_cases;
        assert!(!cases.is_empty(), "fixture has no NMI cases");
        for (i, case) in cases.iter().enumerate() {
            let value = nmi(&case.labels, &case.clusters).unwrap();
            assert!(
                (value - case.nmi).abs() < 1e-6,
                "NMI case {i}: {value} vs reference {}",
                case.nmi
            );
        }
    }

    #[test]
    fn nmi_properties() {
        let a = [0, 0, 1, 1, 2, 2, 2, 0];
        assert!((nmi(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        // Renaming parts changes nothing.
        let renamed: Vec<usize> = a.iter().map(|&x| 10 + 2 * (2 - x)).collect();
        assert!((nmi(&a, &renamed).unwrap() - 1.0).abs() < 1e-12);
        let b = [1, 0, 1, 1, 0, 2, 2, 2];
        assert!((nmi(&a, &b).unwrap() - nmi(&b, &a).unwrap()).abs() < 1e-15);
        // Exactly independent partitions: every (label, cluster) pair occurs equally often.
        let labels: Vec<usize> = (0..1600).map(|i| i % 4).collect();
        let clusters: Vec<usize> = (0..1600).map(|i| (i / 4) % 4).collect();
        assert!(nmi(&labels, &clusters).unwrap().abs() < 1e-12);
        // Random independent partitions of a large set score close to 0.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x: Vec<usize> = (0..20_000).map(|_| rng.random_range(0..5)).collect();
        let y: Vec<usize> = (0..20_000).map(|_| rng.random_range(0..5)).collect();
        assert!(nmi(&x, &y).unwrap() < 1e-3);
        // scikit-learn's limit cases.
        assert_eq!(nmi(&[3, 3, 3], &[1, 1, 1]).unwrap(), 1.0);
        assert_eq!(nmi(&[0, 1, 2], &[5, 5, 5]).unwrap(), 0.0);
    }

    #[test]
    fn kmeans_recovers_separated_blobs() {
        let (data, labels) = blobs(8, 9);
        for seed in 0..5 {
            let clusters = kmeans(emb(&data, 8), 4, seed, 100, &|| true).unwrap();
            assert!(clusters.iter().all(|&c| c < 4));
            assert!(
                (nmi(&labels, &clusters).unwrap() - 1.0).abs() < 1e-12,
                "seed {seed}"
            );
            assert!(
                (clustering_nmi(emb(&data, 8), &labels, seed, &|| true).unwrap() - 1.0).abs()
                    < 1e-12,
                "seed {seed}"
            );
        }
        // Same seed, same answer.
        let once = kmeans(emb(&data, 8), 4, 42, 100, &|| true).unwrap();
        assert_eq!(once, kmeans(emb(&data, 8), 4, 42, 100, &|| true).unwrap());
    }

    #[test]
    fn kmeans_uses_every_cluster_even_with_duplicate_rows() {
        // Three distinct points, each repeated: k-means++ must still seed three clusters, and
        // asking for one row per cluster puts every row in its own cluster.
        let points = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]];
        let data: Vec<f32> = (0..12).flat_map(|i| points[i % 3]).collect();
        let clusters = kmeans(emb(&data, 2), 3, 1, 10, &|| true).unwrap();
        let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
        assert!((nmi(&labels, &clusters).unwrap() - 1.0).abs() < 1e-12);
        let singletons = kmeans(emb(&data[..6], 2), 3, 1, 10, &|| true).unwrap();
        let mut sorted = singletons.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
    }

    #[test]
    fn empty_clusters_are_reseeded_at_the_farthest_rows() {
        let data = [0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 2.0];
        let features = emb(&data, 2);
        // Clusters 1 and 2 have no rows; rows 2 and 3 are farthest from their centre.
        let mut centers = vec![0.0, 0.0, 9.0, 9.0, -9.0, -9.0];
        let assignment = assign(features, &[0.0, 0.0]);
        update_centers(features, &assignment, &mut centers);
        assert_eq!(centers, vec![0.25, 1.25, 0.0, 3.0, 0.0, 2.0]);
    }

    #[test]
    fn kmeans_stops_when_asked_and_caps_its_work_on_many_classes() {
        let (data, _) = blobs(8, 3);
        assert_eq!(
            kmeans(emb(&data, 8), 4, 0, 100, &|| false),
            Err(EvalError::Stopped)
        );
        assert_eq!(clustering_iterations(10_000, 10, 128), 300);
        let products = clustering_iterations(60_502, 11_316, 128);
        assert_eq!(products, 5, "Stanford Online Products is capped");
    }

    #[test]
    fn assignment_through_the_scan_matches_brute_force() {
        let data = random_unit_rows(300, 7, 9);
        let centers: Vec<f32> = data[..7 * 13].iter().map(|x| x * 0.7 + 0.05).collect();
        let assigned = assign(emb(&data, 7), &centers);
        for (i, &(c, d)) in assigned.iter().enumerate() {
            let row = &data[i * 7..(i + 1) * 7];
            let (best, distance) = (0..13)
                .map(|j| (j, squared_distance(row, &centers[j * 7..(j + 1) * 7])))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(c, best, "row {i}");
            assert!((d - distance).abs() < 1e-5, "row {i}: {d} vs {distance}");
        }
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let message = |e: EvalError| e.to_string();

        assert!(message(nmi(&[], &[]).unwrap_err()).contains("empty"));
        assert!(message(nmi(&[0, 1], &[0]).unwrap_err()).contains("mismatch"));
        assert!(
            message(kmeans(set, 3, 0, 10, &|| true).unwrap_err())
                .contains("3 clusters from 2 rows")
        );
        assert!(kmeans(set, 0, 0, 10, &|| true).is_err());
        assert!(clustering_nmi(set, &[0], 0, &|| true).is_err());
    }
}
