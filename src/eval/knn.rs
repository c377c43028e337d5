//! Weighted kNN classification (Wu et al. 2018, the protocol the paper reports on CIFAR-10 and
//! STL-10) and the rule for which test images it may classify against a memory folder.

use super::error::{check_same_count, check_same_dim};
use super::{Embeddings, EvalError, top_k};

/// Weighted kNN (Wu et al. 2018, the classifier the paper reports): for each test row take its `k`
/// nearest train rows by cosine; each votes for its label with weight `exp(sim / sigma)`; predict
/// the label with the largest total (ties: the smaller label).
///
/// `k` larger than the train set uses every train row.
pub fn knn_predict(
    train: Embeddings,
    train_labels: &[usize],
    test: Embeddings,
    k: usize,
    sigma: f32,
) -> Result<Vec<usize>, EvalError> {
    check_same_count("train set", train.len(), "train labels", train_labels.len())?;
    check_same_dim("test set", test, "train set", train)?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(EvalError::InvalidSigma(sigma));
    }
    let neighbors = top_k(test, train, k, false)?;
    Ok(knn_vote(&neighbors, train_labels, sigma))
}

/// The weighted vote of [`knn_predict`] over neighbour lists already found (best first, as
/// [`top_k`] returns them, or a device's top-k), one prediction per list.
///
/// # Panics
/// If a list is empty or names a row outside `train_labels`.
pub fn knn_vote(neighbors: &[Vec<(usize, f32)>], train_labels: &[usize], sigma: f32) -> Vec<usize> {
    let sigma = f64::from(sigma);
    neighbors
        .iter()
        .map(|list| {
            // Weights are shifted by the best similarity (a common factor that cannot change the
            // winner) so that a small sigma cannot overflow exp().
            let best = f64::from(list[0].1);
            let mut votes: Vec<(usize, f64)> = Vec::new();
            for &(index, sim) in list {
                let weight = ((f64::from(sim) - best) / sigma).exp();
                let label = train_labels[index];
                match votes.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, total)) => *total += weight,
                    None => votes.push((label, weight)),
                }
            }
            votes
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(label, _)| label)
                .expect("every neighbour list holds at least one neighbour")
        })
        .collect()
}

/// Percentage (0–100) of test rows whose [`knn_predict`] prediction equals its label.
pub fn knn_accuracy(
    train: Embeddings,
    train_labels: &[usize],
    test: Embeddings,
    test_labels: &[usize],
    k: usize,
    sigma: f32,
) -> Result<f64, EvalError> {
    check_same_count("test set", test.len(), "test labels", test_labels.len())?;
    if test.is_empty() {
        return Err(EvalError::Empty("test set"));
    }
    let predictions = knn_predict(train, train_labels, test, k, sigma)?;
    Ok(accuracy(&predictions, test_labels))
}

/// Percentage (0–100) of `predictions` equal to their `labels` (0 for no predictions).
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    100.0 * correct as f64 / predictions.len().max(1) as f64
}

/// The test images a kNN memory can classify, and the test classes it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignedLabels {
    /// Rows of the test set whose class the memory has, in test order.
    pub rows: Vec<usize>,
    /// Their classes in the memory's label numbering, one per row.
    pub labels: Vec<usize>,
    /// Test classes the memory lacks, in the test set's label order; their images are left out.
    pub left_out: Vec<String>,
}

/// The one rule for which test images kNN scores, per epoch and in `spreadout eval` alike: every
/// test image whose class (its label folder's name) the memory has, relabelled into the memory's
/// numbering; the classes the memory lacks are named so that a report can say what it left out.
/// With none in common (the paper's unseen categories, §4.2) nothing is left to classify.
///
/// `test_labels` index `test_names`; the returned labels index `memory_names`.
pub fn align_labels(
    memory_names: &[String],
    test_names: &[String],
    test_labels: &[usize],
) -> AlignedLabels {
    let in_memory: Vec<Option<usize>> = test_names
        .iter()
        .map(|name| memory_names.iter().position(|n| n == name))
        .collect();
    let (rows, labels) = test_labels
        .iter()
        .enumerate()
        .filter_map(|(row, &label)| in_memory[label].map(|mapped| (row, mapped)))
        .unzip();
    let left_out = test_names
        .iter()
        .zip(&in_memory)
        .filter(|(_, mapped)| mapped.is_none())
        .map(|(name, _)| name.clone())
        .collect();
    AlignedLabels {
        rows,
        labels,
        left_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::testing::{emb, fixture, flat};

    #[test]
    fn knn_matches_reference_fixture() {
        let cases = fixture().knn_cases;
        assert!(!cases.is_empty(), "fixture has no kNN cases");
        for (i, case) in cases.iter().enumerate() {
            let (train, dim) = flat(&case.train_features);
            let (test, test_dim) = flat(&case.test_features);
            let (train, test) = (emb(&train, dim), emb(&test, test_dim));
            let predictions =
                knn_predict(train, &case.train_labels, test, case.k, case.sigma).unwrap();
            assert_eq!(predictions, case.predictions, "kNN case {i} predictions");
            let accuracy = knn_accuracy(
                train,
                &case.train_labels,
                test,
                &case.test_labels,
                case.k,
                case.sigma,
            )
            .unwrap();
            assert_eq!(accuracy, case.accuracy_percent, "kNN case {i} accuracy");
        }
    }

    #[test]
    fn knn_votes_are_weighted_by_similarity() {
        // Two far-off label-1 rows cannot outvote one very close label-0 row at a small sigma,
        // but they do at a large sigma, where weights are nearly equal.
        let train = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let labels = [0, 1, 1];
        let test = [0.8, 0.6];
        let (train, test) = (emb(&train, 2), emb(&test, 2));
        assert_eq!(knn_predict(train, &labels, test, 3, 0.1).unwrap(), vec![0]);
        assert_eq!(
            knn_predict(train, &labels, test, 3, 100.0).unwrap(),
            vec![1]
        );
        // With k = 1 only the nearest row votes.
        assert_eq!(
            knn_predict(train, &labels, test, 1, 100.0).unwrap(),
            vec![0]
        );
        let accuracy = knn_accuracy(train, &labels, test, &[1], 3, 100.0).unwrap();
        assert_eq!(accuracy, 100.0);
    }

    #[test]
    fn knn_vote_ties_go_to_the_smaller_label() {
        let train = [0.6, 0.8, 0.6, -0.8];
        let test = [1.0, 0.0];
        let (train, test) = (emb(&train, 2), emb(&test, 2));
        assert_eq!(knn_predict(train, &[7, 3], test, 2, 0.1).unwrap(), vec![3]);
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let wide = [1.0, 0.0, 0.0];
        let wide = emb(&wide, 3);
        let message = |e: EvalError| e.to_string();

        assert!(message(knn_predict(set, &[0], set, 1, 0.1).unwrap_err()).contains("labels"));
        assert!(message(knn_predict(set, &[0, 1], set, 1, 0.0).unwrap_err()).contains("sigma"));
        assert!(message(knn_predict(set, &[0, 1], wide, 1, 0.1).unwrap_err()).contains("test"));
        assert!(knn_accuracy(set, &[0, 1], set, &[0], 1, 0.1).is_err());
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn alignment_keeps_every_test_image_when_the_memory_has_all_classes() {
        // The memory numbers the same classes differently and has one more.
        let memory = names(&["bird", "cat", "dog"]);
        let test = names(&["cat", "dog"]);
        let aligned = align_labels(&memory, &test, &[1, 0, 0, 1]);
        assert_eq!(aligned.rows, vec![0, 1, 2, 3]);
        assert_eq!(aligned.labels, vec![2, 1, 1, 2]);
        assert!(aligned.left_out.is_empty());
    }

    #[test]
    fn alignment_scores_the_classes_present_and_names_the_missing_ones() {
        let memory = names(&["bird", "cat", "dog"]);
        let test = names(&["ant", "cat", "eel"]);
        let aligned = align_labels(&memory, &test, &[0, 1, 2, 1, 0]);
        assert_eq!(aligned.rows, vec![1, 3]);
        assert_eq!(aligned.labels, vec![1, 1]);
        assert_eq!(aligned.left_out, names(&["ant", "eel"]));
        // kNN then classifies those rows alone: the cat rows of the test set against a memory
        // whose cat rows are nearest them.
        let memory_rows = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0];
        let test_rows = [0.0, -1.0, 0.1, 0.99, 0.0, 1.0, 0.2, 0.98, 1.0, 0.0];
        let test = emb(&test_rows, 2);
        let queries = test.gather(&aligned.rows);
        let accuracy = knn_accuracy(
            emb(&memory_rows, 2),
            &[0, 1, 2],
            emb(&queries, 2),
            &aligned.labels,
            1,
            0.1,
        )
        .unwrap();
        assert_eq!(accuracy, 100.0);
    }

    #[test]
    fn alignment_leaves_everything_out_when_no_class_is_shared() {
        let memory = names(&["bird", "cat"]);
        let test = names(&["ant", "eel"]);
        let aligned = align_labels(&memory, &test, &[0, 1, 1]);
        assert!(aligned.rows.is_empty() && aligned.labels.is_empty());
        assert_eq!(aligned.left_out, test);
    }
}
