//! Recall@K, the retrieval metric of the paper's unseen-category protocol (§4.2).

use super::error::check_same_count;
use super::{Embeddings, EvalError, top_k};

/// Recall@K in percent for each K in `ks` (in the given order): a query counts when any of its K
/// nearest other rows shares its label. K beyond the number of other rows uses them all.
pub fn recall_at_k(
    features: Embeddings,
    labels: &[usize],
    ks: &[usize],
) -> Result<Vec<(usize, f64)>, EvalError> {
    check_same_count("features", features.len(), "labels", labels.len())?;
    if features.len() < 2 {
        return Err(EvalError::TooFewRows {
            what: "Recall@K",
            needed: 2,
            got: features.len(),
        });
    }
    if ks.contains(&0) {
        return Err(EvalError::ZeroParameter("every K of Recall@K"));
    }
    let Some(&k_max) = ks.iter().max() else {
        return Err(EvalError::Empty("list of K values"));
    };
    let neighbors = top_k(features, features, k_max, true)?;
    // Rank of the first same-label neighbour per query; a query counts for K iff that rank < K.
    let first_hit: Vec<Option<usize>> = neighbors
        .iter()
        .zip(labels)
        .map(|(list, &label)| list.iter().position(|&(i, _)| labels[i] == label))
        .collect();
    Ok(ks
        .iter()
        .map(|&k| {
            let hits = first_hit
                .iter()
                .filter(|r| r.is_some_and(|r| r < k))
                .count();
            (k, 100.0 * hits as f64 / features.len() as f64)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::testing::{emb, fixture, flat};

    #[test]
    fn recall_matches_reference_fixture() {
        let cases = fixture().recall_cases;
        assert!(!cases.is_empty(), "fixture has no recall cases");
        for (i, case) in cases.iter().enumerate() {
            let (features, dim) = flat(&case.features);
            let ks: Vec<usize> = case
                .recall_percent
                .keys()
                .map(|k| k.parse().expect("K is an integer"))
                .collect();
            let recalls = recall_at_k(emb(&features, dim), &case.labels, &ks).unwrap();
            for (k, recall) in recalls {
                let expected = case.recall_percent[&k.to_string()];
                assert!(
                    (recall - expected).abs() < 1e-3,
                    "recall case {i}, R@{k}: {recall} vs reference {expected}"
                );
            }
        }
    }

    #[test]
    fn recall_counts_any_same_label_neighbor_within_k() {
        // Angles 0, 10, 30, 60 degrees; labels make query 0's first same-label neighbour rank 3.
        let data: Vec<f32> = [0.0f32, 10.0, 30.0, 60.0]
            .iter()
            .flat_map(|deg| {
                let r = deg.to_radians();
                [r.cos(), r.sin()]
            })
            .collect();
        let labels = [0, 1, 2, 0];
        let recalls = recall_at_k(emb(&data, 2), &labels, &[1, 2, 3, 10]).unwrap();
        // Query 0's neighbours are 1, 2, 3 (hit at rank 3); query 3's are 2, 1, 0 (hit at rank 3);
        // queries 1 and 2 have no same-label row at all.
        assert_eq!(recalls, vec![(1, 0.0), (2, 0.0), (3, 50.0), (10, 50.0)]);
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let message = |e: EvalError| e.to_string();

        assert!(
            message(recall_at_k(emb(&data[..2], 2), &[0], &[1]).unwrap_err()).contains("2 rows")
        );
        assert!(recall_at_k(set, &[0, 1], &[0]).is_err());
        assert!(recall_at_k(set, &[0, 1], &[]).is_err());
    }
}
