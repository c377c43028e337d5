//! Test data and reference answers shared by the evaluation modules' tests: the reference
//! fixture computed with scikit-learn, an exhaustive top-k, and labelled blobs.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Embeddings;
use super::scan::{better_first, dot};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/reference_metrics.json"
);

#[derive(serde::Deserialize)]
pub(super) struct Fixture {
    pub(super) knn_cases: Vec<KnnCase>,
    pub(super) recall_cases: Vec<RecallCase>,
    pub(super) nmi_cases: Vec<NmiCase>,
}

#[derive(serde::Deserialize)]
pub(super) struct KnnCase {
    pub(super) k: usize,
    pub(super) sigma: f32,
    pub(super) train_features: Vec<Vec<f64>>,
    pub(super) train_labels: Vec<usize>,
    pub(super) test_features: Vec<Vec<f64>>,
    pub(super) test_labels: Vec<usize>,
    pub(super) predictions: Vec<usize>,
    pub(super) accuracy_percent: f64,
}

#[derive(serde::Deserialize)]
pub(super) struct RecallCase {
    pub(super) features: Vec<Vec<f64>>,
    pub(super) labels: Vec<usize>,
    pub(super) recall_percent: BTreeMap<String, f64>,
}

#[derive(serde::Deserialize)]
pub(super) struct NmiCase {
    pub(super) labels: Vec<usize>,
    pub(super) clusters: Vec<usize>,
    pub(super) nmi: f64,
}

/// Missing or unreadable reference data must fail the test, never skip it.
pub(super) fn fixture() -> Fixture {
    let text = std::fs::read_to_string(FIXTURE)
        .unwrap_or_else(|e| panic!("cannot read reference fixture {FIXTURE}: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse reference fixture {FIXTURE}: {e}"))
}

/// Flattens fixture rows into an f32 buffer and its dimension.
pub(super) fn flat(rows: &[Vec<f64>]) -> (Vec<f32>, usize) {
    let dim = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == dim), "ragged fixture rows");
    (rows.iter().flatten().map(|&v| v as f32).collect(), dim)
}

/// Exhaustive reference for `top_k`: scores every pair and sorts.
pub(super) fn brute_top_k(
    queries: Embeddings,
    base: Embeddings,
    k: usize,
    exclude_self: bool,
) -> Vec<Vec<(usize, f32)>> {
    (0..queries.len())
        .map(|q| {
            let mut all: Vec<(usize, f32)> = (0..base.len())
                .filter(|&b| !(exclude_self && b == q))
                .map(|b| (b, dot(queries.row(q), base.row(b))))
                .collect();
            all.sort_by(better_first);
            all.truncate(k);
            all
        })
        .collect()
}

pub(super) fn emb(data: &[f32], dim: usize) -> Embeddings<'_> {
    Embeddings::new(data, dim).unwrap()
}

/// Four tight, far-apart blobs of 30 rows each, rows shuffled; returns (data, labels).
pub(super) fn blobs(dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut order: Vec<usize> = (0..120).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    for &i in &order {
        let blob = i % 4;
        let mut row: Vec<f32> = (0..dim)
            .map(|d| if d == blob { 1.0 } else { 0.0 })
            .collect();
        row.iter_mut()
            .for_each(|v| *v += rng.random_range(-0.05..0.05));
        data.extend(row);
        labels.push(10 * blob + 3);
    }
    (data, labels)
}
