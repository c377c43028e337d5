//! Evaluation of a learned embedding (paper §4).
//!
//! * weighted kNN classification (Wu et al. 2018, the protocol the paper reports on CIFAR-10/STL-10),
//! * Recall@K and NMI with k-means (the fine-grained retrieval/clustering protocol),
//! * the positive/negative cosine-similarity distributions of Fig. 5,
//! * a linear classifier on frozen embeddings (Table 2's "Linear"; `linear.rs`),
//! * 2-D maps: PCA, and UMAP (`umap.rs`).
//!
//! Everything here is a pure function over embeddings that are already L2-normalised, so a dot
//! product *is* the cosine similarity. There is no model code in this module.
//!
//! All nearest-neighbour work goes through one blocked, parallel scan ([`top_k`] and the Fig. 5
//! distributions share it), which is what makes 10 000 queries against 50 000 rows a matter of
//! seconds on two cores. Results are deterministic: every dot product is summed in dimension order
//! whatever the thread count, and every random choice comes from a seeded ChaCha stream. (CPUs with
//! and without fused multiply-add may still differ in the last bit of a score.)

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

mod linear;
mod umap;

pub use linear::{LinearClassifier, LinearSettings, linear_accuracy};
pub use umap::umap_2d;

/// Why an evaluation could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    /// The caller asked a long computation (k-means) to stop.
    #[error("stopped before it finished")]
    Stopped,
    /// An embedding set was declared with zero columns.
    #[error("embedding dimension must be at least 1")]
    ZeroDimension,
    /// The flat buffer does not hold a whole number of rows.
    #[error("embedding buffer of {len} values is not a whole number of rows of dimension {dim}")]
    RaggedData {
        /// Number of values in the buffer.
        len: usize,
        /// Declared row length.
        dim: usize,
    },
    /// A NaN or infinity, which would make similarity rankings meaningless.
    #[error("embedding value at row {row}, column {column} is not finite")]
    NonFinite {
        /// Row of the offending value.
        row: usize,
        /// Column of the offending value.
        column: usize,
    },
    /// Two embedding sets that must be compared have different row lengths.
    #[error("dimension mismatch: {left_name} has {left} columns but {right_name} has {right}")]
    DimensionMismatch {
        /// Name of the first set.
        left_name: &'static str,
        /// Its dimension.
        left: usize,
        /// Name of the second set.
        right_name: &'static str,
        /// Its dimension.
        right: usize,
    },
    /// Two collections that must pair up row by row have different lengths.
    #[error("count mismatch: {left_name} has {left} entries but {right_name} has {right}")]
    CountMismatch {
        /// Name of the first collection.
        left_name: &'static str,
        /// Its length.
        left: usize,
        /// Name of the second collection.
        right_name: &'static str,
        /// Its length.
        right: usize,
    },
    /// An input that must contain something is empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Fewer rows than the computation needs.
    #[error("{what} needs at least {needed} rows, got {got}")]
    TooFewRows {
        /// What was being computed.
        what: &'static str,
        /// Minimum number of rows.
        needed: usize,
        /// Rows supplied.
        got: usize,
    },
    /// A count parameter (neighbours, clusters, bins, a K of Recall@K) was zero.
    #[error("{0} must be at least 1")]
    ZeroParameter(&'static str),
    /// The kNN temperature must be a positive finite number.
    #[error("kNN temperature sigma must be positive and finite, got {0}")]
    InvalidSigma(f32),
    /// More clusters were requested than there are rows to seed them.
    #[error("cannot form {k} clusters from {rows} rows")]
    TooManyClusters {
        /// Requested clusters.
        k: usize,
        /// Available rows.
        rows: usize,
    },
}

/// A borrowed, row-major set of embeddings: `len()` rows of `dim()` values each.
#[derive(Clone, Copy)]
pub struct Embeddings<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> Embeddings<'a> {
    /// Wraps `data` as rows of `dim` values.
    ///
    /// Fails when `dim == 0`, when `data.len()` is not a multiple of `dim`, or when a value is not
    /// finite (a NaN would silently corrupt every ranking it touches).
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self, EvalError> {
        if dim == 0 {
            return Err(EvalError::ZeroDimension);
        }
        if !data.len().is_multiple_of(dim) {
            return Err(EvalError::RaggedData {
                len: data.len(),
                dim,
            });
        }
        if let Some(at) = data.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                row: at / dim,
                column: at % dim,
            });
        }
        Ok(Self { data, dim })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All rows, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i`; panics when `i >= len()`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

impl fmt::Debug for Embeddings<'_> {
    // The data can be millions of values; its shape is what helps when debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embeddings")
            .field("rows", &self.len())
            .field("dim", &self.dim)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Blocked similarity scan
// ---------------------------------------------------------------------------------------------

/// Base rows interleaved in one packed panel: one per f32 lane of an AVX register.
const PANEL: usize = 8;
/// Queries scored together, so each panel value loaded serves several queries.
const QUERY_TILE: usize = 4;
/// Panels scored together, so each query value broadcast serves several panels.
const PANEL_TILE: usize = 2;
/// Queries per parallel task: each task streams the whole base set once, so larger is cheaper,
/// while 10 000 queries still make ~80 tasks to balance across cores.
const QUERY_CHUNK: usize = 128;
/// Bytes of packed base rows swept per pass, sized to stay resident in L2 while a whole query
/// chunk visits it (otherwise every query would stream the full base set from memory).
const BASE_BLOCK_BYTES: usize = 128 * 1024;

/// Cosine similarity of two normalised rows.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Receives one query's similarities to the base rows, in increasing base index order.
trait Collector: Send {
    /// Scores at or below this would be rejected by [`Collector::offer`]; letting the scan skip
    /// them wholesale keeps bookkeeping from costing as much as the dot products.
    fn floor(&self) -> f32;
    /// Considers base row `base_index` with similarity `score`.
    fn offer(&mut self, base_index: usize, score: f32);
}

/// Ranking of neighbours: higher score first, equal scores by lower index first.
fn better_first(a: &(usize, f32), b: &(usize, f32)) -> std::cmp::Ordering {
    if a.1 == b.1 {
        a.0.cmp(&b.0)
    } else {
        b.1.total_cmp(&a.1)
    }
}

/// Bounded selection of the best `k` (index, score) pairs offered.
///
/// Candidates above the floor are appended unsorted and the buffer is cut back to the best `k`
/// whenever it reaches `2k`, which makes each accepted candidate O(1) amortised where sorted
/// insertion costs O(k) (noticeable at the paper's k = 200).
struct Best {
    k: usize,
    items: Vec<(usize, f32)>,
    /// Score of the k-th best at the last cut: anything at or below it cannot make the final `k`
    /// (on an equal score the kept pair has the lower index, because offers come in index order).
    floor: f32,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(2 * k),
            // With k == 0 nothing may enter.
            floor: if k == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
        }
    }

    #[inline]
    fn offer(&mut self, index: usize, score: f32) {
        if score > self.floor {
            self.items.push((index, score));
            if self.items.len() == 2 * self.k {
                self.cut();
            }
        }
    }

    /// Keeps only the best `k` and raises the floor to the worst of them.
    fn cut(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, better_first);
            self.items.truncate(self.k);
            self.floor = self.items[self.k - 1].1;
        }
    }

    /// The best `k` (fewer if fewer were offered), best first.
    fn into_sorted(mut self) -> Vec<(usize, f32)> {
        self.cut();
        self.items.sort_unstable_by(better_first);
        self.items
    }
}

/// The plain nearest-neighbour collector behind [`top_k`].
struct Nearest {
    /// The query's own index, skipped when the queries are the base set.
    skip: Option<usize>,
    best: Best,
}

impl Collector for Nearest {
    #[inline]
    fn floor(&self) -> f32 {
        self.best.floor
    }

    #[inline]
    fn offer(&mut self, base_index: usize, score: f32) {
        if self.skip != Some(base_index) {
            self.best.offer(base_index, score);
        }
    }
}

/// Scores every query row against every base row, feeding each query's collector.
///
/// The base set is first transposed into panels of `PANEL` rows so that one SIMD multiply-add
/// advances `PANEL` dot products at once with no horizontal reduction. Queries are then split into
/// chunks processed in parallel, each sweeping the panels in L2-sized blocks. Every score is summed
/// in dimension order, so results do not depend on thread count or chunking.
fn scan<C: Collector>(queries: Embeddings, base: Embeddings, collectors: &mut [C]) {
    debug_assert_eq!(queries.len(), collectors.len());
    debug_assert_eq!(queries.dim(), base.dim());
    let panels = pack_panels(base);
    collectors
        .par_chunks_mut(QUERY_CHUNK)
        .enumerate()
        .for_each(|(chunk, collectors)| {
            scan_chunk(
                queries,
                chunk * QUERY_CHUNK,
                &panels,
                base.len(),
                collectors,
            )
        });
}

/// Transposes `base` into panels: panel `p` is `dim` consecutive `[f32; PANEL]`, entry `d`
/// holding column `d` of rows `p * PANEL ..`; a short last panel is zero-padded. Packing once
/// costs one copy of the base set and saves re-transposing it for every query chunk.
fn pack_panels(base: Embeddings) -> Vec<[f32; PANEL]> {
    let dim = base.dim();
    let mut packed = vec![[0.0; PANEL]; base.len().div_ceil(PANEL) * dim];
    packed
        .par_chunks_mut(dim)
        .enumerate()
        .for_each(|(p, panel)| {
            for lane in 0..PANEL.min(base.len() - p * PANEL) {
                for (slot, &v) in panel.iter_mut().zip(base.row(p * PANEL + lane)) {
                    slot[lane] = v;
                }
            }
        });
    packed
}

/// Runs [`scan_chunk_portable`] compiled for AVX2 and FMA when the CPU has them: the crate is built
/// for baseline x86-64 (SSE2), and wider registers plus fused multiply-adds make the scan about
/// twice as fast.
fn scan_chunk<C: Collector>(
    queries: Embeddings,
    first_query: usize,
    panels: &[[f32; PANEL]],
    rows: usize,
    collectors: &mut [C],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: `scan_chunk_avx2` only requires AVX2 and FMA, both checked just above.
        unsafe { scan_chunk_avx2(queries, first_query, panels, rows, collectors) };
        return;
    }
    // Without hardware FMA, `mul_add` would be a slow library call, so multiply and add apart.
    scan_chunk_portable::<C, false>(queries, first_query, panels, rows, collectors);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_chunk_avx2<C: Collector>(
    queries: Embeddings,
    first_query: usize,
    panels: &[[f32; PANEL]],
    rows: usize,
    collectors: &mut [C],
) {
    scan_chunk_portable::<C, true>(queries, first_query, panels, rows, collectors);
}

/// One parallel task: queries `first_query..first_query + collectors.len()` against all `rows`
/// base rows packed in `panels`. `FMA` selects fused multiply-add in the dot products.
#[inline(always)]
fn scan_chunk_portable<C: Collector, const FMA: bool>(
    queries: Embeddings,
    first_query: usize,
    panels: &[[f32; PANEL]],
    rows: usize,
    collectors: &mut [C],
) {
    let panel_len = queries.dim();
    let block_len = (BASE_BLOCK_BYTES / size_of::<[f32; PANEL]>()).next_multiple_of(panel_len);
    for (b, block) in panels.chunks(block_len).enumerate() {
        let block_start = b * (block_len / panel_len) * PANEL;
        let mut tiles = collectors.chunks_exact_mut(QUERY_TILE);
        let mut q = first_query;
        for tile in &mut tiles {
            scan_tile::<QUERY_TILE, C, FMA>(queries, q, block, block_start, rows, tile);
            q += QUERY_TILE;
        }
        for single in tiles.into_remainder().chunks_mut(1) {
            scan_tile::<1, C, FMA>(queries, q, block, block_start, rows, single);
            q += 1;
        }
    }
}

/// `Q` consecutive queries starting at `first_query` against the panels of one block, whose first
/// row is `block_start`; rows at or past `rows` are padding.
#[inline(always)]
fn scan_tile<const Q: usize, C: Collector, const FMA: bool>(
    queries: Embeddings,
    first_query: usize,
    block: &[[f32; PANEL]],
    block_start: usize,
    rows: usize,
    collectors: &mut [C],
) {
    let dim = queries.dim();
    let mut qs: [&[f32]; Q] = [&[]; Q];
    for (i, q) in qs.iter_mut().enumerate() {
        *q = queries.row(first_query + i);
    }
    let mut tiles = block.chunks_exact(PANEL_TILE * dim);
    let mut first_row = block_start;
    for tile in &mut tiles {
        let mut tile_panels: [&[[f32; PANEL]]; PANEL_TILE] = [&[]; PANEL_TILE];
        for (j, panel) in tile_panels.iter_mut().enumerate() {
            *panel = &tile[j * dim..(j + 1) * dim];
        }
        let scores = panel_dots::<Q, PANEL_TILE, FMA>(&qs, &tile_panels);
        deliver(&scores, first_row, rows, collectors);
        first_row += PANEL_TILE * PANEL;
    }
    for single in tiles.remainder().chunks_exact(dim) {
        let scores = panel_dots::<Q, 1, FMA>(&qs, &[single]);
        deliver(&scores, first_row, rows, collectors);
        first_row += PANEL;
    }
}

/// Hands the scores of `P` consecutive panels starting at row `first_row` to each query's collector.
#[inline(always)]
fn deliver<const Q: usize, const P: usize, C: Collector>(
    scores: &[[[f32; PANEL]; P]; Q],
    first_row: usize,
    rows: usize,
    collectors: &mut [C],
) {
    for (collector, panels) in collectors.iter_mut().zip(scores) {
        // The floor only rises as rows are accepted, so a stale one merely lets extra scores reach
        // `offer`, which checks again.
        let floor = collector.floor();
        for (p, lanes) in panels.iter().enumerate() {
            // One bit per lane above the floor, built without branches; once a query has seen a
            // few hundred rows nearly every panel yields 0.
            let mut above = lanes.iter().enumerate().fold(0u32, |bits, (lane, &s)| {
                bits | (u32::from(s > floor) << lane)
            });
            // Visiting only the set bits avoids a hard-to-predict branch per lane while the floor
            // is still low, which matters for large k.
            while above != 0 {
                let lane = above.trailing_zeros() as usize;
                above &= above - 1;
                let row = first_row + p * PANEL + lane;
                // The padding lanes of a short last panel are not rows.
                if row < rows {
                    collector.offer(row, lanes[lane]);
                }
            }
        }
    }
}

/// Scores of `Q` query rows against `P` panels: `[query][panel][lane]`.
///
/// Each step broadcasts one query value and multiply-adds it into a whole panel row, so the
/// compiler maps every `[f32; PANEL]` accumulator onto one SIMD register.
#[inline(always)]
fn panel_dots<const Q: usize, const P: usize, const FMA: bool>(
    qs: &[&[f32]; Q],
    panels: &[&[[f32; PANEL]]; P],
) -> [[[f32; PANEL]; P]; Q] {
    let dim = qs[0].len();
    // Equal lengths let the compiler drop the bounds checks from the loop below.
    assert!(qs.iter().all(|q| q.len() == dim) && panels.iter().all(|p| p.len() == dim));
    let mut acc = [[[0.0f32; PANEL]; P]; Q];
    for d in 0..dim {
        let mut column = [[0.0f32; PANEL]; P];
        for (c, panel) in column.iter_mut().zip(panels) {
            *c = panel[d];
        }
        for (acc_q, q) in acc.iter_mut().zip(qs) {
            let x = q[d];
            for (acc_qp, c) in acc_q.iter_mut().zip(&column) {
                for l in 0..PANEL {
                    acc_qp[l] = if FMA {
                        x.mul_add(c[l], acc_qp[l])
                    } else {
                        acc_qp[l] + x * c[l]
                    };
                }
            }
        }
    }
    acc
}

/// `n` seeded random unit rows of `dim` values (uniform in the cube, then normalised): the
/// embeddings benchmarks and tests search when no model is at hand.
pub fn random_unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data: Vec<f32> = (0..n * dim)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    for row in data.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    data
}

/// Fails with a named [`EvalError::DimensionMismatch`] unless both sets have the same row length.
fn check_same_dim(
    left_name: &'static str,
    left: Embeddings,
    right_name: &'static str,
    right: Embeddings,
) -> Result<(), EvalError> {
    if left.dim() != right.dim() {
        return Err(EvalError::DimensionMismatch {
            left_name,
            left: left.dim(),
            right_name,
            right: right.dim(),
        });
    }
    Ok(())
}

/// Fails with a named [`EvalError::CountMismatch`] unless the two lengths agree.
fn check_same_count(
    left_name: &'static str,
    left: usize,
    right_name: &'static str,
    right: usize,
) -> Result<(), EvalError> {
    if left != right {
        return Err(EvalError::CountMismatch {
            left_name,
            left,
            right_name,
            right,
        });
    }
    Ok(())
}

/// Indices and cosine scores (dot products) of the `k` most similar rows of `base` for each row of
/// `queries`, best first, ties broken by lower index first.
///
/// With `exclude_self` the queries are the base set (same length required) and query `i` never
/// returns row `i`. When fewer than `k` candidates exist every candidate is returned, so `k` larger
/// than the base set is not an error. Parallel over queries.
pub fn top_k(
    queries: Embeddings,
    base: Embeddings,
    k: usize,
    exclude_self: bool,
) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
    if k == 0 {
        return Err(EvalError::ZeroParameter("k"));
    }
    if base.is_empty() {
        return Err(EvalError::Empty("base set"));
    }
    check_same_dim("queries", queries, "base", base)?;
    if exclude_self {
        check_same_count(
            "queries (excluding self)",
            queries.len(),
            "base",
            base.len(),
        )?;
    }
    let candidates = base.len() - usize::from(exclude_self);
    let mut collectors: Vec<Nearest> = (0..queries.len())
        .map(|q| Nearest {
            skip: exclude_self.then_some(q),
            best: Best::new(k.min(candidates)),
        })
        .collect();
    scan(queries, base, &mut collectors);
    Ok(collectors
        .into_iter()
        .map(|c| c.best.into_sorted())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// kNN classification and Recall@K
// ---------------------------------------------------------------------------------------------

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
    let neighbours = top_k(test, train, k, false)?;
    Ok(knn_vote(&neighbours, train_labels, sigma))
}

/// The weighted vote of [`knn_predict`] over neighbour lists already found (best first, as
/// [`top_k`] returns them, or a device's top-k), one prediction per list.
///
/// # Panics
/// If a list is empty or names a row outside `train_labels`.
pub fn knn_vote(
    neighbours: &[Vec<(usize, f32)>],
    train_labels: &[usize],
    sigma: f32,
) -> Vec<usize> {
    let sigma = f64::from(sigma);
    neighbours
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
    let neighbours = top_k(features, features, k_max, true)?;
    // Rank of the first same-label neighbour per query; a query counts for K iff that rank < K.
    let first_hit: Vec<Option<usize>> = neighbours
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

// ---------------------------------------------------------------------------------------------
// Clustering: NMI and k-means
// ---------------------------------------------------------------------------------------------

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
    let mut centres = Vec::with_capacity(k * features.dim());
    centres.extend_from_slice(features.row(rng.random_range(0..n)));
    let mut nearest: Vec<f32> = (0..n)
        .into_par_iter()
        .map(|i| squared_distance(features.row(i), &centres))
        .collect();
    while centres.len() < k * features.dim() {
        // Seeding thousands of clusters is itself a long pass: stop between centres.
        if centres.len() % (64 * features.dim()) == 0 && !keep_going() {
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
        let centre = features.row(pick).to_vec();
        nearest.par_iter_mut().enumerate().for_each(|(i, d)| {
            *d = d.min(squared_distance(features.row(i), &centre));
        });
        centres.extend_from_slice(&centre);
    }
    Ok(centres)
}

/// The nearest centre of one row, fed by the blocked scan: with `‖x − c‖² = ‖x‖² + ‖c‖² − 2x·c`
/// the nearest centre maximises `x·c − ‖c‖²/2`, so the scan's dot products are all it needs.
struct NearestCentre<'a> {
    /// `‖c‖²/2` of every centre.
    half_norms: &'a [f32],
    best: (usize, f32),
}

impl Collector for NearestCentre<'_> {
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
fn assign(features: Embeddings, centres: &[f32]) -> Vec<(usize, f32)> {
    let dim = features.dim();
    let centres = Embeddings { data: centres, dim };
    let half_norms: Vec<f32> = (0..centres.len())
        .map(|c| 0.5 * dot(centres.row(c), centres.row(c)))
        .collect();
    let mut collectors: Vec<NearestCentre> = (0..features.len())
        .map(|_| NearestCentre {
            half_norms: &half_norms,
            best: (0, f32::NEG_INFINITY),
        })
        .collect();
    scan(features, centres, &mut collectors);
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
fn update_centres(features: Embeddings, assignment: &[(usize, f32)], centres: &mut [f32]) {
    let dim = features.dim();
    let k = centres.len() / dim;
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
    for (c, centre) in centres.chunks_exact_mut(dim).enumerate() {
        if sizes[c] == 0 {
            // Farthest row, lowest index on ties.
            let far = (0..distances.len())
                .max_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(b.cmp(&a)))
                .expect("features is non-empty");
            centre.copy_from_slice(features.row(far));
            // The same row must not re-seed a second empty cluster.
            distances[far] = f32::NEG_INFINITY;
        } else {
            for (x, &s) in centre.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
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
    let mut centres = kmeans_plus_plus(features, k, &mut rng, keep_going)?;
    let mut assignment = assign(features, &centres);
    for _ in 0..max_iters {
        if !keep_going() {
            return Err(EvalError::Stopped);
        }
        update_centres(features, &assignment, &mut centres);
        let next = assign(features, &centres);
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

// ---------------------------------------------------------------------------------------------
// Similarity distributions (Fig. 5)
// ---------------------------------------------------------------------------------------------

/// A histogram of cosine similarities over `[lo, hi] = [-1, 1]` in equal bins.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub lo: f32,
    /// Upper edge of the last bin.
    pub hi: f32,
    /// Number of values in each bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram of `bins` equal bins over `[-1, 1]`.
    pub fn new(bins: usize) -> Result<Self, EvalError> {
        if bins == 0 {
            return Err(EvalError::ZeroParameter("number of histogram bins"));
        }
        Ok(Self {
            lo: -1.0,
            hi: 1.0,
            counts: vec![0; bins],
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Counts `value`. Values outside `[lo, hi]` (a cosine of 1.0000001 from rounding) go to the
    /// nearest end bin; the upper edge belongs to the last bin. NaN has no bin and is not counted.
    pub fn add(&mut self, value: f32) {
        if value.is_nan() {
            return;
        }
        let position = (value - self.lo) / (self.hi - self.lo) * self.bins() as f32;
        // A float-to-int cast saturates, so negative positions land in bin 0.
        let bin = (position as usize).min(self.bins() - 1);
        self.counts[bin] += 1;
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Centre of bin `i`.
    pub fn bin_centre(&self, i: usize) -> f32 {
        let width = (self.hi - self.lo) / self.bins() as f32;
        self.lo + (i as f32 + 0.5) * width
    }

    /// Mean of the counted values, approximated by bin centres; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| {
            let weighted: f64 = (0..self.bins())
                .map(|i| f64::from(self.bin_centre(i)) * self.counts[i] as f64)
                .sum();
            weighted / total as f64
        })
    }

    /// Adds the counts of a histogram with the same bins (used to combine per-thread partials).
    fn absorb(&mut self, other: &Self) {
        debug_assert_eq!(self.counts.len(), other.counts.len());
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// How the positive pairs of a [`SimilarityDistributions`] were formed.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq, ts_rs::TS)]
pub enum PairKind {
    /// Positives are a row's nearest neighbours of the same class, negatives its nearest of other
    /// classes (paper Fig. 5; needs labels).
    SameClassNeighbours,
    /// Positives are two augmented views of one image, negatives views of different images.
    TwoViews,
}

/// Cosine-similarity distributions of positive and negative pairs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
pub struct SimilarityDistributions {
    /// Similarities of positive pairs.
    pub positive: Histogram,
    /// Similarities of negative pairs.
    pub negative: Histogram,
    /// How the pairs were formed.
    pub kind: PairKind,
}

/// Collector for Fig. 5: one query's nearest neighbours of its own class and of other classes.
struct ClassSplit<'l> {
    query: usize,
    labels: &'l [usize],
    same: Best,
    other: Best,
}

impl Collector for ClassSplit<'_> {
    #[inline]
    fn floor(&self) -> f32 {
        self.same.floor.min(self.other.floor)
    }

    #[inline]
    fn offer(&mut self, base_index: usize, score: f32) {
        if base_index == self.query {
            return;
        }
        if self.labels[base_index] == self.labels[self.query] {
            self.same.offer(base_index, score);
        } else {
            self.other.offer(base_index, score);
        }
    }
}

/// Paper Fig. 5: for each row, its `neighbours` nearest rows of the same class (itself excluded)
/// give positive similarities and its `neighbours` nearest rows of other classes give negative
/// ones. A class with too few members contributes the ones it has.
pub fn labelled_similarity_distributions(
    features: Embeddings,
    labels: &[usize],
    neighbours: usize,
    bins: usize,
) -> Result<SimilarityDistributions, EvalError> {
    let per_label = similarity_distributions_per_label(features, labels, neighbours, bins)?;
    merge_distributions(&per_label, bins)
}

/// The distributions of all `parts` together (e.g. the per-label ones of
/// [`similarity_distributions_per_label`]); `bins` must be theirs.
pub fn merge_distributions(
    parts: &[SimilarityDistributions],
    bins: usize,
) -> Result<SimilarityDistributions, EvalError> {
    let mut total = SimilarityDistributions {
        positive: Histogram::new(bins)?,
        negative: Histogram::new(bins)?,
        kind: PairKind::SameClassNeighbours,
    };
    for part in parts {
        total.positive.absorb(&part.positive);
        total.negative.absorb(&part.negative);
    }
    Ok(total)
}

/// [`labelled_similarity_distributions`] split by the query's label (paper Fig. 6): element `l`
/// holds the pairs whose query has label `l`.
pub fn similarity_distributions_per_label(
    features: Embeddings,
    labels: &[usize],
    neighbours: usize,
    bins: usize,
) -> Result<Vec<SimilarityDistributions>, EvalError> {
    check_same_count("features", features.len(), "labels", labels.len())?;
    if neighbours == 0 {
        return Err(EvalError::ZeroParameter("number of neighbours"));
    }
    if features.len() < 2 {
        return Err(EvalError::TooFewRows {
            what: "similarity distributions",
            needed: 2,
            got: features.len(),
        });
    }
    let empty = SimilarityDistributions {
        positive: Histogram::new(bins)?,
        negative: Histogram::new(bins)?,
        kind: PairKind::SameClassNeighbours,
    };
    let classes = labels.iter().max().map_or(0, |&max| max + 1);
    let mut per_label = vec![empty; classes];
    let mut collectors: Vec<ClassSplit> = (0..features.len())
        .map(|query| ClassSplit {
            query,
            labels,
            same: Best::new(neighbours),
            other: Best::new(neighbours),
        })
        .collect();
    scan(features, features, &mut collectors);
    for c in collectors {
        let target = &mut per_label[labels[c.query]];
        c.same
            .into_sorted()
            .iter()
            .for_each(|&(_, s)| target.positive.add(s));
        c.other
            .into_sorted()
            .iter()
            .for_each(|&(_, s)| target.negative.add(s));
    }
    Ok(per_label)
}

/// Cosine similarities of `pairs` random pairs of distinct rows (or of every pair, when there
/// are fewer), seeded: how spread out an embedding is, with or without labels.
pub fn random_pair_histogram(
    features: Embeddings,
    pairs: usize,
    bins: usize,
    seed: u64,
) -> Result<Histogram, EvalError> {
    let n = features.len();
    if n < 2 {
        return Err(EvalError::TooFewRows {
            what: "pair similarities",
            needed: 2,
            got: n,
        });
    }
    let mut histogram = Histogram::new(bins)?;
    if n * (n - 1) / 2 <= pairs {
        for i in 0..n {
            for j in i + 1..n {
                histogram.add(dot(features.row(i), features.row(j)));
            }
        }
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..pairs {
            let i = rng.random_range(0..n);
            let j = (i + rng.random_range(1..n)) % n;
            histogram.add(dot(features.row(i), features.row(j)));
        }
    }
    Ok(histogram)
}

/// Projects every row onto the two principal components of the set (centred), for a 2-D map of
/// the embedding. Power iteration with deflation on the `dim × dim` covariance: exact enough for a
/// picture and O(n·dim²) instead of a full eigendecomposition. Sign is fixed so the largest
/// coordinate of each component is positive, keeping maps of successive epochs comparable.
pub fn pca_2d(features: Embeddings) -> Result<Vec<[f32; 2]>, EvalError> {
    if features.is_empty() {
        return Err(EvalError::Empty("features"));
    }
    let (n, dim) = (features.len(), features.dim());
    let mut mean = vec![0f64; dim];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(features.row(i)) {
            *m += f64::from(v) / n as f64;
        }
    }
    let covariance = (0..n)
        .into_par_iter()
        .fold(
            || vec![0f64; dim * dim],
            |mut acc, i| {
                let centred: Vec<f64> = features
                    .row(i)
                    .iter()
                    .zip(&mean)
                    .map(|(&v, m)| f64::from(v) - m)
                    .collect();
                for (a, &x) in centred.iter().enumerate() {
                    for (b, &y) in centred.iter().enumerate() {
                        acc[a * dim + b] += x * y;
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; dim * dim],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut deflated = covariance;
    let mut components: Vec<Vec<f64>> = Vec::with_capacity(2);
    for c in 0..2 {
        // A fixed, non-symmetric start avoids starting orthogonal to the top component.
        let mut vector: Vec<f64> = (0..dim).map(|i| 1.0 + (i + c) as f64 * 0.01).collect();
        let mut eigenvalue = 0.0;
        for _ in 0..300 {
            let next: Vec<f64> = (0..dim)
                .map(|a| (0..dim).map(|b| deflated[a * dim + b] * vector[b]).sum())
                .collect();
            let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm < 1e-30 {
                break;
            }
            eigenvalue = norm;
            vector = next.into_iter().map(|v| v / norm).collect();
        }
        let largest =
            vector.iter().copied().fold(
                0.0f64,
                |best, v| if v.abs() > best.abs() { v } else { best },
            );
        if largest < 0.0 {
            vector.iter_mut().for_each(|v| *v = -*v);
        }
        for a in 0..dim {
            for b in 0..dim {
                deflated[a * dim + b] -= eigenvalue * vector[a] * vector[b];
            }
        }
        components.push(vector);
    }
    Ok((0..n)
        .map(|i| {
            let row = features.row(i);
            let project = |component: &[f64]| {
                row.iter()
                    .zip(&mean)
                    .zip(component)
                    .map(|((&v, m), c)| (f64::from(v) - m) * c)
                    .sum::<f64>() as f32
            };
            [project(&components[0]), project(&components[1])]
        })
        .collect())
}

/// Negatives sampled per row in [`view_similarity_distributions`] once all pairs would cost more.
const NEGATIVES_PER_ROW: usize = 50;

/// Distributions without labels: row `i` of `view_a` and row `i` of `view_b` are two augmentations
/// of one image (a positive pair); `view_a[i] . view_b[j]` for `j != i` are negatives. Every
/// negative pair is used when a row has at most 50 of them, otherwise a seeded sample of 50 per
/// row, which bounds the cost at O(50 n) instead of O(n^2).
pub fn view_similarity_distributions(
    view_a: Embeddings,
    view_b: Embeddings,
    bins: usize,
    seed: u64,
) -> Result<SimilarityDistributions, EvalError> {
    check_same_dim("view_a", view_a, "view_b", view_b)?;
    check_same_count("view_a", view_a.len(), "view_b", view_b.len())?;
    let empty = Histogram::new(bins)?;
    let n = view_a.len();
    if n < 2 {
        return Err(EvalError::TooFewRows {
            what: "view similarity distributions",
            needed: 2,
            got: n,
        });
    }
    let (positive, negative) = (0..n)
        .into_par_iter()
        .fold(
            || (empty.clone(), empty.clone()),
            |(mut positive, mut negative), i| {
                let a = view_a.row(i);
                positive.add(dot(a, view_b.row(i)));
                // Candidates are 0..n-1 with i skipped by shifting indices at or above it.
                let mut add_negative = |j: usize| {
                    let j = if j >= i { j + 1 } else { j };
                    negative.add(dot(a, view_b.row(j)));
                };
                if n - 1 <= NEGATIVES_PER_ROW {
                    (0..n - 1).for_each(&mut add_negative);
                } else {
                    // One ChaCha stream per row: the sample does not depend on thread scheduling.
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(i as u64);
                    rand::seq::index::sample(&mut rng, n - 1, NEGATIVES_PER_ROW)
                        .into_iter()
                        .for_each(&mut add_negative);
                }
                (positive, negative)
            },
        )
        .reduce(
            || (empty.clone(), empty.clone()),
            |(mut p1, mut n1), (p2, n2)| {
                p1.absorb(&p2);
                n1.absorb(&n2);
                (p1, n1)
            },
        );
    Ok(SimilarityDistributions {
        positive,
        negative,
        kind: PairKind::TwoViews,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/reference_metrics.json"
    );

    #[derive(serde::Deserialize)]
    struct Fixture {
        knn_cases: Vec<KnnCase>,
        recall_cases: Vec<RecallCase>,
        nmi_cases: Vec<NmiCase>,
    }

    #[derive(serde::Deserialize)]
    struct KnnCase {
        k: usize,
        sigma: f32,
        train_features: Vec<Vec<f64>>,
        train_labels: Vec<usize>,
        test_features: Vec<Vec<f64>>,
        test_labels: Vec<usize>,
        predictions: Vec<usize>,
        accuracy_percent: f64,
    }

    #[derive(serde::Deserialize)]
    struct RecallCase {
        features: Vec<Vec<f64>>,
        labels: Vec<usize>,
        recall_percent: BTreeMap<String, f64>,
    }

    #[derive(serde::Deserialize)]
    struct NmiCase {
        labels: Vec<usize>,
        clusters: Vec<usize>,
        nmi: f64,
    }

    /// Missing or unreadable reference data must fail the test, never skip it.
    fn fixture() -> Fixture {
        let text = std::fs::read_to_string(FIXTURE)
            .unwrap_or_else(|e| panic!("cannot read reference fixture {FIXTURE}: {e}"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse reference fixture {FIXTURE}: {e}"))
    }

    /// Flattens fixture rows into an f32 buffer and its dimension.
    fn flat(rows: &[Vec<f64>]) -> (Vec<f32>, usize) {
        let dim = rows[0].len();
        assert!(rows.iter().all(|r| r.len() == dim), "ragged fixture rows");
        (rows.iter().flatten().map(|&v| v as f32).collect(), dim)
    }

    /// `n` random unit rows of `dim` values.
    /// Exhaustive reference for `top_k`: scores every pair and sorts.
    fn brute_top_k(
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

    fn emb(data: &[f32], dim: usize) -> Embeddings<'_> {
        Embeddings::new(data, dim).unwrap()
    }

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
    fn top_k_orders_best_first_and_excludes_self() {
        // Unit vectors at angles 0, 10, 30, 65 and 90 degrees in the plane.
        let data: Vec<f32> = [0.0f32, 10.0, 30.0, 65.0, 90.0]
            .iter()
            .flat_map(|deg| {
                let r = deg.to_radians();
                [r.cos(), r.sin()]
            })
            .collect();
        let set = emb(&data, 2);
        let result = top_k(set, set, 3, true).unwrap();
        let indices: Vec<Vec<usize>> = result
            .iter()
            .map(|l| l.iter().map(|&(i, _)| i).collect())
            .collect();
        assert_eq!(
            indices,
            vec![
                vec![1, 2, 3],
                vec![0, 2, 3],
                vec![1, 0, 3],
                vec![4, 2, 1],
                vec![3, 2, 1]
            ]
        );
        for (q, list) in result.iter().enumerate() {
            assert!(
                list.iter().all(|&(i, _)| i != q),
                "query {q} returned itself"
            );
            assert!(list.windows(2).all(|w| w[0].1 >= w[1].1), "not best first");
        }
        assert!((result[0][0].1 - 10f32.to_radians().cos()).abs() < 1e-6);
        // Without exclusion each row is its own best match.
        let with_self = top_k(set, set, 1, false).unwrap();
        assert!(with_self.iter().enumerate().all(|(q, l)| l[0].0 == q));
    }

    #[test]
    fn top_k_breaks_ties_by_lower_index_and_clamps_k() {
        // Rows 1, 3 and 4 are identical, so they tie for every query.
        let data = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let query_data = [0.0, 1.0];
        let result = top_k(emb(&query_data, 2), set, 100, false).unwrap();
        let indices: Vec<usize> = result[0].iter().map(|&(i, _)| i).collect();
        assert_eq!(
            indices,
            vec![1, 3, 4, 0, 2],
            "k beyond the base returns all rows"
        );
        let excluded = top_k(set, set, 100, true).unwrap();
        assert!(excluded.iter().all(|l| l.len() == 4));
        assert_eq!(excluded[3][0].0, 1);
        assert_eq!(excluded[3][1].0, 4);
    }

    #[test]
    fn top_k_matches_brute_force_across_tile_and_block_edges() {
        // dim 200 makes 168-row blocks; 500 rows end in a partial panel; 131 queries span two
        // parallel chunks and leave a remainder of 3 outside the 4-query tiles.
        let (dim, n, nq) = (200, 500, 131);
        let base_data = random_unit_rows(n, dim, 1);
        let query_data = random_unit_rows(nq, dim, 2);
        let (base, queries) = (emb(&base_data, dim), emb(&query_data, dim));
        for k in [1, 7, 40] {
            let fast = top_k(queries, base, k, false).unwrap();
            let slow = brute_top_k(queries, base, k, false);
            for (q, (f, s)) in fast.iter().zip(&slow).enumerate() {
                let fi: Vec<usize> = f.iter().map(|p| p.0).collect();
                let si: Vec<usize> = s.iter().map(|p| p.0).collect();
                assert_eq!(fi, si, "query {q}, k {k}");
                for (a, b) in f.iter().zip(s) {
                    assert!((a.1 - b.1).abs() < 1e-5, "query {q}: {} vs {}", a.1, b.1);
                }
            }
        }
        let fast = top_k(base, base, 5, true).unwrap();
        let slow = brute_top_k(base, base, 5, true);
        let indices = |r: &Vec<Vec<(usize, f32)>>| -> Vec<Vec<usize>> {
            r.iter().map(|l| l.iter().map(|p| p.0).collect()).collect()
        };
        assert_eq!(indices(&fast), indices(&slow));
    }

    #[test]
    fn portable_kernel_is_bit_identical_to_sequential_dot() {
        // The SSE2 fallback sums in dimension order, exactly like `dot`: check it directly, since
        // an AVX2 machine never reaches it through `top_k`.
        let (dim, n, nq) = (13, 45, 7);
        let base_data = random_unit_rows(n, dim, 3);
        let query_data = random_unit_rows(nq, dim, 4);
        let (base, queries) = (emb(&base_data, dim), emb(&query_data, dim));
        let panels = pack_panels(base);
        let mut collectors: Vec<Nearest> = (0..nq)
            .map(|_| Nearest {
                skip: None,
                best: Best::new(n),
            })
            .collect();
        scan_chunk_portable::<Nearest, false>(queries, 0, &panels, n, &mut collectors);
        let slow = brute_top_k(queries, base, n, false);
        for (c, s) in collectors.into_iter().zip(&slow) {
            assert_eq!(&c.best.into_sorted(), s);
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
    fn recall_counts_any_same_label_neighbour_within_k() {
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

    /// Four tight, far-apart blobs of 30 rows each, rows shuffled; returns (data, labels).
    fn blobs(dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
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
        let mut centres = vec![0.0, 0.0, 9.0, 9.0, -9.0, -9.0];
        let assignment = assign(features, &[0.0, 0.0]);
        update_centres(features, &assignment, &mut centres);
        assert_eq!(centres, vec![0.25, 1.25, 0.0, 3.0, 0.0, 2.0]);
    }

    #[test]
    fn histogram_places_values_and_summarises() {
        let mut h = Histogram::new(4).unwrap();
        for v in [-1.0, -0.75, -0.5, 0.0, 0.49, 0.5, 1.0, 1.000_001, -1.5] {
            h.add(v);
        }
        h.add(f32::NAN);
        assert_eq!(h.counts, vec![3, 1, 2, 3]);
        assert_eq!(h.total(), 9);
        assert_eq!(h.bin_centre(0), -0.75);
        assert!(Histogram::new(10).unwrap().mean().is_none());
        let mut single = Histogram::new(10).unwrap();
        single.add(0.31);
        assert!((single.mean().unwrap() - 0.3).abs() < 1e-6);
    }

    #[test]
    fn labelled_distributions_count_every_pair() {
        let (data, labels) = blobs(8, 3);
        let features = emb(&data, 8);
        let dists = labelled_similarity_distributions(features, &labels, 5, 20).unwrap();
        assert_eq!(dists.kind, PairKind::SameClassNeighbours);
        assert_eq!(dists.positive.total(), 120 * 5);
        assert_eq!(dists.negative.total(), 120 * 5);
        // Tight blobs: same-class pairs are near 1, other-class pairs near 0.
        assert!(dists.positive.mean().unwrap() > 0.9);
        assert!(dists.negative.mean().unwrap().abs() < 0.2);
        // A class smaller than `neighbours` contributes what it has: 30 - 1 others each.
        let few = labelled_similarity_distributions(features, &labels, 100, 20).unwrap();
        assert_eq!(few.positive.total(), 120 * 29);
        assert_eq!(few.negative.total(), 120 * 90);
        let json = serde_json::to_string(&dists).unwrap();
        let back: SimilarityDistributions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, dists);
    }

    #[test]
    fn view_distributions_count_every_pair_and_are_seeded() {
        let small_a = random_unit_rows(20, 16, 1);
        let small_b = random_unit_rows(20, 16, 2);
        let all =
            view_similarity_distributions(emb(&small_a, 16), emb(&small_b, 16), 10, 0).unwrap();
        assert_eq!(all.kind, PairKind::TwoViews);
        assert_eq!(all.positive.total(), 20);
        assert_eq!(all.negative.total(), 20 * 19);
        let (a, b) = (random_unit_rows(300, 16, 3), random_unit_rows(300, 16, 4));
        let sampled = view_similarity_distributions(emb(&a, 16), emb(&b, 16), 10, 7).unwrap();
        assert_eq!(sampled.positive.total(), 300);
        assert_eq!(sampled.negative.total(), 300 * NEGATIVES_PER_ROW as u64);
        let again = view_similarity_distributions(emb(&a, 16), emb(&b, 16), 10, 7).unwrap();
        assert_eq!(sampled, again);
        // Identical views: every positive is exactly 1, in the top bin.
        let same = view_similarity_distributions(emb(&a, 16), emb(&a, 16), 10, 7).unwrap();
        assert_eq!(same.positive.counts[9], 300);
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let wide = [1.0, 0.0, 0.0];
        let wide = emb(&wide, 3);
        let message = |e: EvalError| e.to_string();

        assert_eq!(
            Embeddings::new(&data, 0).unwrap_err(),
            EvalError::ZeroDimension
        );
        assert!(message(Embeddings::new(&data, 3).unwrap_err()).contains("not a whole number"));
        let nan = [1.0, f32::NAN];
        assert!(message(Embeddings::new(&nan, 1).unwrap_err()).contains("row 1, column 0"));
        assert!(message(top_k(set, wide, 1, false).unwrap_err()).contains("dimension mismatch"));
        assert!(message(top_k(set, set, 0, false).unwrap_err()).contains("k must be at least 1"));
        assert!(message(top_k(set, emb(&[], 2), 1, false).unwrap_err()).contains("empty"));
        assert!(message(top_k(set, emb(&data[..2], 2), 1, true).unwrap_err()).contains("count"));
        assert!(message(knn_predict(set, &[0], set, 1, 0.1).unwrap_err()).contains("labels"));
        assert!(message(knn_predict(set, &[0, 1], set, 1, 0.0).unwrap_err()).contains("sigma"));
        assert!(message(knn_predict(set, &[0, 1], wide, 1, 0.1).unwrap_err()).contains("test"));
        assert!(knn_accuracy(set, &[0, 1], set, &[0], 1, 0.1).is_err());
        assert!(
            message(recall_at_k(emb(&data[..2], 2), &[0], &[1]).unwrap_err()).contains("2 rows")
        );
        assert!(recall_at_k(set, &[0, 1], &[0]).is_err());
        assert!(recall_at_k(set, &[0, 1], &[]).is_err());
        assert!(message(nmi(&[], &[]).unwrap_err()).contains("empty"));
        assert!(message(nmi(&[0, 1], &[0]).unwrap_err()).contains("mismatch"));
        assert!(
            message(kmeans(set, 3, 0, 10, &|| true).unwrap_err())
                .contains("3 clusters from 2 rows")
        );
        assert!(kmeans(set, 0, 0, 10, &|| true).is_err());
        assert!(clustering_nmi(set, &[0], 0, &|| true).is_err());
        assert!(message(Histogram::new(0).unwrap_err()).contains("bins"));
        assert!(labelled_similarity_distributions(set, &[0, 1], 0, 10).is_err());
        assert!(labelled_similarity_distributions(set, &[0, 1], 5, 0).is_err());
        assert!(view_similarity_distributions(set, wide, 10, 0).is_err());
        assert!(
            view_similarity_distributions(emb(&data[..2], 2), emb(&data[..2], 2), 10, 0).is_err()
        );
    }

    #[test]
    fn pca_finds_the_directions_of_largest_spread() {
        // Points spread widely along (1, 1, 0) and a little along (0, 0, 1), uncorrelated (the
        // +,-,-,+ pattern of z cancels against every four consecutive t).
        let mut rows = Vec::new();
        for i in 0..40 {
            let t = i as f32 - 19.5;
            let z: f32 = if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 };
            rows.extend([t, t, z]);
        }
        let map = pca_2d(Embeddings::new(&rows, 3).unwrap()).unwrap();
        for (i, point) in map.iter().enumerate() {
            let t = i as f32 - 19.5;
            let z: f32 = if i % 4 == 0 || i % 4 == 3 { 1.0 } else { -1.0 };
            assert!((point[0] - t * 2f32.sqrt()).abs() < 1e-3, "{point:?}");
            assert!((point[1].abs() - z.abs()).abs() < 1e-3, "{point:?}");
        }
    }

    #[test]
    fn per_label_distributions_add_up_to_the_overall_ones() {
        let features = random_unit_rows(30, 8, 3);
        let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let features = Embeddings::new(&features, 8).unwrap();
        let total = labelled_similarity_distributions(features, &labels, 4, 20).unwrap();
        let parts = similarity_distributions_per_label(features, &labels, 4, 20).unwrap();
        assert_eq!(parts.len(), 3);
        let positive: u64 = parts.iter().map(|p| p.positive.total()).sum();
        assert_eq!(positive, total.positive.total());
        assert_eq!(parts[0].negative.total(), 10 * 4);
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
        let centres: Vec<f32> = data[..7 * 13].iter().map(|x| x * 0.7 + 0.05).collect();
        let assigned = assign(emb(&data, 7), &centres);
        for (i, &(c, d)) in assigned.iter().enumerate() {
            let row = &data[i * 7..(i + 1) * 7];
            let (best, distance) = (0..13)
                .map(|j| (j, squared_distance(row, &centres[j * 7..(j + 1) * 7])))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(c, best, "row {i}");
            assert!((d - distance).abs() < 1e-5, "row {i}: {d} vs {distance}");
        }
    }
}
