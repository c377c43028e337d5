//! Natural groups of a folder: k-means on the embedding, each cluster with its size and its most
//! typical members (closest to the centre).

use crate::eval::{self, Embeddings, EvalError};

/// One cluster of a [`Clustering`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Cluster {
    /// Row indices, most typical first (highest cosine similarity to the cluster's centre).
    pub members: Vec<usize>,
    /// Cosine similarity of each member to the centre (the normalised mean of the members).
    pub similarities: Vec<f32>,
}

/// k-means clusters of a folder, largest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Clustering {
    /// The clusters, largest first (equal sizes: the one holding the lower row first).
    pub clusters: Vec<Cluster>,
    /// For each row, the index of its cluster in `clusters`.
    pub assignment: Vec<usize>,
}

/// Fewest clusters suggested.
const MIN_SUGGESTED: usize = 2;
/// Most clusters suggested: more is hard to browse, and the person can always ask for more.
const MAX_SUGGESTED: usize = 50;

/// A starting number of clusters: one per label folder when the folder has labels, else the
/// rule of thumb `√(n/2)`, kept within 2–50 and at most `n`.
pub fn suggested_clusters(rows: usize, labels: usize) -> usize {
    let k = if labels >= 2 {
        labels
    } else {
        ((rows as f64 / 2.0).sqrt().round() as usize).clamp(MIN_SUGGESTED, MAX_SUGGESTED)
    };
    k.min(rows)
}

/// k-means with `k` clusters (k-means++ from `seed`, Lloyd iterations capped as in the NMI
/// protocol, [`eval::clustering_iterations`]); `keep_going` is asked between iterations.
///
/// # Errors
/// [`EvalError::TooManyClusters`], [`EvalError::ZeroParameter`], [`EvalError::Stopped`].
pub fn cluster(
    features: Embeddings,
    k: usize,
    seed: u64,
    keep_going: &dyn Fn() -> bool,
) -> Result<Clustering, EvalError> {
    let iterations = eval::clustering_iterations(features.len(), k, features.dim());
    let raw = eval::kmeans(features, k, seed, iterations, keep_going)?;
    let dim = features.dim();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (row, &c) in raw.iter().enumerate() {
        members[c].push(row);
    }
    let mut clusters: Vec<Cluster> = members
        .into_iter()
        .filter(|rows| !rows.is_empty())
        .map(|rows| {
            let mut center = vec![0.0f64; dim];
            for &row in &rows {
                for (c, &v) in center.iter_mut().zip(features.row(row)) {
                    *c += f64::from(v);
                }
            }
            let norm = center.iter().map(|c| c * c).sum::<f64>().sqrt().max(1e-12);
            let center: Vec<f32> = center.iter().map(|c| (c / norm) as f32).collect();
            let mut scored: Vec<(usize, f32)> = rows
                .iter()
                .map(|&row| {
                    let s = features
                        .row(row)
                        .iter()
                        .zip(&center)
                        .map(|(a, b)| a * b)
                        .sum();
                    (row, s)
                })
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            Cluster {
                members: scored.iter().map(|m| m.0).collect(),
                similarities: scored.iter().map(|m| m.1).collect(),
            }
        })
        .collect();
    let first_row = |c: &Cluster| c.members.iter().copied().min().unwrap_or(usize::MAX);
    clusters.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(first_row(a).cmp(&first_row(b)))
    });
    let mut assignment = vec![0; features.len()];
    for (c, cluster) in clusters.iter().enumerate() {
        for &row in &cluster.members {
            assignment[row] = c;
        }
    }
    Ok(Clustering {
        clusters,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_means_finds_fixed_groups_largest_first_with_typical_members_first() {
        // Three tight bundles of unit vectors in 3-d: 4 rows near x, 3 near y, 2 near z; within
        // the x bundle row 0 lies exactly on the axis, so it is the most typical.
        let raw: [[f32; 3]; 9] = [
            [1.0, 0.0, 0.0],
            [0.98, 0.15, 0.1],
            [0.97, -0.17, 0.12],
            [0.99, 0.05, -0.14],
            [0.1, 1.0, 0.05],
            [-0.08, 0.98, 0.1],
            [0.05, 0.97, -0.1],
            [0.1, 0.0, 1.0],
            [-0.1, 0.05, 0.99],
        ];
        let rows: Vec<f32> = raw
            .iter()
            .flat_map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                r.map(|v| v / n)
            })
            .collect();
        let features = Embeddings::new(&rows, 3).unwrap();
        let clustering = cluster(features, 3, 0, &|| true).unwrap();
        let sizes: Vec<usize> = clustering
            .clusters
            .iter()
            .map(|c| c.members.len())
            .collect();
        assert_eq!(sizes, vec![4, 3, 2]);
        let mut x = clustering.clusters[0].members.clone();
        x.sort_unstable();
        assert_eq!(x, vec![0, 1, 2, 3]);
        assert_eq!(
            clustering.clusters[0].members[0], 0,
            "on the axis: the most typical"
        );
        assert_eq!(clustering.assignment, vec![0, 0, 0, 0, 1, 1, 1, 2, 2]);
        for c in &clustering.clusters {
            assert!(c.similarities.windows(2).all(|w| w[0] >= w[1]));
        }
        assert!(matches!(
            cluster(features, 10, 0, &|| true),
            Err(EvalError::TooManyClusters { .. })
        ));
        assert!(matches!(
            cluster(features, 3, 0, &|| false),
            Err(EvalError::Stopped)
        ));
    }

    #[test]
    fn the_suggested_number_of_clusters() {
        assert_eq!(suggested_clusters(10_000, 10), 10);
        assert_eq!(suggested_clusters(800, 0), 20);
        assert_eq!(suggested_clusters(100_000, 0), 50);
        assert_eq!(suggested_clusters(3, 0), 2);
        assert_eq!(suggested_clusters(1, 0), 1);
    }
}
