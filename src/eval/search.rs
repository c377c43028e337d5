//! Similarity search: the one place that finds the most similar rows of an embedding, on the host
//! or on a device. The `k` most similar rows of each query serve kNN, Recall@K, UMAP, training's
//! probes and Explore's and the CLI's neighbour queries; every pair above a threshold serves the
//! near-duplicates.
//!
//! The host search ([`top_k`], over the blocked scan of [`super::scan`]) is exact and
//! deterministic, ties broken by lower index, and fast enough for one query or a few thousand. The
//! device searches are matrix products for the large cases where the host would hold the caller
//! up (every test image each epoch, every pair of a folder); they read back only what they found.

use std::ops::Range;
use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};

use super::error::{check_same_count, check_same_dim};
use super::scan::{Nearest, dot, nearest_one, scan};
use super::{Embeddings, EvalError};

/// A retrieved image with its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct Neighbor {
    /// The image file.
    #[serde(with = "crate::support::paths")]
    #[ts(type = "string")]
    pub path: PathBuf,
    /// Cosine similarity in [-1, 1].
    pub score: f32,
    /// Whether its label folder is the query's, when the folder has labels.
    pub same_label: Option<bool>,
}

impl Neighbor {
    /// The image at `path`, found at `score`; `same_label` is known only when both the query and
    /// the image have a label.
    pub fn new(
        path: PathBuf,
        score: f32,
        query_label: Option<usize>,
        label: Option<usize>,
    ) -> Self {
        Self {
            path,
            score,
            same_label: query_label.zip(label).map(|(a, b)| a == b),
        }
    }
}

/// What every search asks of its inputs, on the host or the device: a `k`, a base set, and rows
/// of one width.
fn check_search(queries: Embeddings, base: Embeddings, k: usize) -> Result<(), EvalError> {
    if k == 0 {
        return Err(EvalError::ZeroParameter("k"));
    }
    if base.is_empty() {
        return Err(EvalError::Empty("base set"));
    }
    check_same_dim("queries", queries, "base", base)
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
    check_search(queries, base, k)?;
    if exclude_self {
        check_same_count(
            "queries (excluding self)",
            queries.len(),
            "base",
            base.len(),
        )?;
    }
    let candidates = base.len() - usize::from(exclude_self);
    if queries.len() == 1 {
        let skip = exclude_self.then_some(0);
        return Ok(vec![nearest_one(
            queries.row(0),
            base,
            k.min(candidates),
            skip,
        )]);
    }
    let mut collectors: Vec<Nearest> = (0..queries.len())
        .map(|q| Nearest::new(exclude_self.then_some(q), k.min(candidates)))
        .collect();
    scan(queries, base, &mut collectors);
    Ok(collectors
        .into_iter()
        .map(|c| c.best.into_sorted())
        .collect())
}

/// [`top_k`] where query `q` never returns base row `skip[q]` (its own row, when the queries are
/// some of the base rows): each query asks for one more row and the skipped one is dropped, which
/// is exactly the search of `base` without that row.
pub fn top_k_skipping(
    queries: Embeddings,
    base: Embeddings,
    k: usize,
    skip: &[Option<usize>],
) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
    check_same_count("queries", queries.len(), "skipped rows", skip.len())?;
    let extra = usize::from(skip.iter().any(Option::is_some));
    let found = top_k(queries, base, k.saturating_add(extra), false)?;
    Ok(found
        .into_iter()
        .zip(skip)
        .map(|(hits, &skip)| {
            hits.into_iter()
                .filter(|&(row, _)| Some(row) != skip)
                .take(k)
                .collect()
        })
        .collect())
}

/// The `k` rows of `base` most similar to the one row `query`, best first; `skip` names the
/// query's own row when it is one of `base` (an image of the collection asking for its
/// neighbours), so that it does not find itself.
pub fn nearest(
    query: &[f32],
    base: Embeddings,
    k: usize,
    skip: Option<usize>,
) -> Result<Vec<(usize, f32)>, EvalError> {
    if query.len() != base.dim() {
        return Err(EvalError::DimensionMismatch {
            left_name: "query",
            left: query.len(),
            right_name: "base",
            right: base.dim(),
        });
    }
    let query = Embeddings::new(query, base.dim())?;
    Ok(top_k_skipping(query, base, k, &[skip])?.remove(0))
}

/// Similarities on the device per block of rows: 16 Mi values, 64 MiB of f32. Every adapter binds
/// storage buffers of 128 MiB (WebGPU's guaranteed minimum of `max_storage_buffer_binding_size`;
/// lavapipe and many GPUs stop there), and a block of scores, its comparison mask (32-bit bools on
/// wgpu) and whatever the backend derives from them must each fit: a 256 MiB block made the
/// 100 000-embedding duplicate search fail on lavapipe ("can't allocate buffer of size:
/// 268400000").
const DEVICE_BLOCK_VALUES: usize = 16 << 20;

/// Rows of a device block whose rows are `columns` long: within [`DEVICE_BLOCK_VALUES`], at least
/// one, at most `most`.
fn rows_per_block(columns: usize, most: usize) -> usize {
    (DEVICE_BLOCK_VALUES / columns.max(1)).clamp(1, most)
}

/// [`top_k`] on `device`: a matrix product and a top-k per chunk of queries, and only the `k`
/// winners come back; for the tens of thousands of queries an epoch's kNN asks, which would keep
/// the host busy while the device waits. Stops with [`EvalError::Stopped`] between chunks when
/// `keep_going` says no. The device sums in its own order, so a score may differ from the host's
/// in the last bits and near-ties may come in another order.
pub fn top_k_on(
    device: &Device,
    queries: Embeddings,
    base: Embeddings,
    k: usize,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
    check_search(queries, base, k)?;
    // The queries go up a chunk at a time: a million of them would pass a buffer's limit.
    let upload = |rows: Range<usize>, from: Embeddings| {
        let values: Vec<f32> = rows.clone().flat_map(|i| from.row(i)).copied().collect();
        Tensor::<2>::from_data(TensorData::new(values, [rows.len(), from.dim()]), device)
    };
    top_k_by_chunks(
        queries.len(),
        |rows| upload(rows, queries),
        upload(0..base.len(), base),
        k,
        keep_going,
    )
}

/// [`top_k_on`] for embeddings already on the device (`[rows, dim]` each, an evaluation's, which
/// then cross to the device once rather than down and up again).
///
/// # Errors
/// [`EvalError::ZeroParameter`] for `k` 0, [`EvalError::Empty`] for an empty base,
/// [`EvalError::DimensionMismatch`] when the rows differ in width, [`EvalError::Stopped`] when
/// `keep_going` said no.
pub fn top_k_of_tensors(
    queries: Tensor<2>,
    base: Tensor<2>,
    k: usize,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
    let ([query_count, query_dim], [base_count, dim]) = (queries.dims(), base.dims());
    if k == 0 {
        return Err(EvalError::ZeroParameter("k"));
    }
    if base_count == 0 {
        return Err(EvalError::Empty("base set"));
    }
    if query_dim != dim {
        return Err(EvalError::DimensionMismatch {
            left_name: "queries",
            left: query_dim,
            right_name: "base",
            right: dim,
        });
    }
    top_k_by_chunks(
        query_count,
        |rows| queries.clone().slice([rows, 0..dim]),
        base,
        k,
        keep_going,
    )
}

/// The search of [`top_k_on`] and [`top_k_of_tensors`] over `query_count` queries, whose rows
/// `chunk(rows)` gives on the device, against `base` there (checked by the callers).
fn top_k_by_chunks(
    query_count: usize,
    chunk: impl Fn(Range<usize>) -> Tensor<2>,
    base: Tensor<2>,
    k: usize,
    keep_going: &(dyn Fn() -> bool + Sync),
) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
    let [base_count, _] = base.dims();
    // As on the host, a `k` beyond the base set returns every row.
    let k = k.min(base_count);
    let base_t = base.transpose();
    let mut found = Vec::with_capacity(query_count);
    let rows_per_chunk = rows_per_block(base_count, 1024);
    for start in (0..query_count).step_by(rows_per_chunk) {
        if !keep_going() {
            return Err(EvalError::Stopped);
        }
        let rows = start..(start + rows_per_chunk).min(query_count);
        let (scores, indices) = chunk(rows).matmul(base_t.clone()).topk_with_indices(k, 1);
        // Scores and indices come back in one read.
        let [scores, indices]: [TensorData; 2] = Transaction::default()
            .register(scores)
            .register(indices)
            .execute()
            .try_into()
            .expect("two tensors were registered");
        let scores: Vec<f32> = scores
            .convert::<f32>()
            .try_to_vec()
            .expect("scores are floats");
        let indices: Vec<i64> = indices
            .convert::<i64>()
            .try_to_vec()
            .expect("indices are integers");
        for (row_scores, row_indices) in scores.chunks(k).zip(indices.chunks(k)) {
            found.push(
                row_indices
                    .iter()
                    .map(|&i| i as usize)
                    .zip(row_scores.iter().copied())
                    .collect(),
            );
        }
    }
    Ok(found)
}

/// Pairs [`pairs_above`] keeps per row at most: far more than any folder's near-duplicates
/// (a photo shot 50 times over is one group of 51), far fewer than a threshold below the
/// similarity of unrelated images finds (n²/2, billions for 100 000 images).
pub const PAIRS_PER_ROW: usize = 50;

/// Every pair of rows `(i, j)`, `i < j`, with cosine similarity above `threshold`, ordered by
/// `i` then `j`, with its score: [`pairs_above_best_of`] with the one product of the rows with
/// themselves.
///
/// # Errors
/// As [`pairs_above_best_of`].
pub fn pairs_above(
    features: Embeddings,
    threshold: f32,
    device: &Device,
) -> Result<Vec<(usize, usize, f32)>, EvalError> {
    pairs_above_best_of(&[(features, features)], threshold, device)
}

/// Two views of the same rows (an image and its zoomed or mirrored view, embedded) whose product
/// scores a pair: row `i` of the first against row `j` of the second.
pub type ViewProduct<'a> = (Embeddings<'a>, Embeddings<'a>);

/// The score of rows `i` and `j` by `products`: the best of their cosines (host order of sums).
pub fn best_of(products: &[ViewProduct], i: usize, j: usize) -> f32 {
    products
        .iter()
        .map(|(left, right)| dot(left.row(i), right.row(j)))
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Every pair of rows `(i, j)`, `i < j`, whose [`best_of`] score is above `threshold`, ordered by
/// `i` then `j`, with its score. Blocked matrix products on `device` (the GPU's, or the CPU
/// backend's multithreaded GEMM): each block of rows is multiplied with the rows after its first
/// in every product, the best compared with the threshold there, and only the indices above it
/// come back to the host, where their scores are summed again in dimension order (the same value
/// the neighbour search gives).
///
/// # Errors
/// [`EvalError::Empty`] for no rows or no product; [`EvalError::CountMismatch`] or
/// [`EvalError::DimensionMismatch`] for views of different rows; [`EvalError::TooManyPairs`] past
/// [`PAIRS_PER_ROW`] × rows, found before they are read back.
pub fn pairs_above_best_of(
    products: &[ViewProduct],
    threshold: f32,
    device: &Device,
) -> Result<Vec<(usize, usize, f32)>, EvalError> {
    let n = products.first().map_or(0, |(left, _)| left.len());
    let block = rows_per_block(n, 8192);
    pairs_above_in_blocks(products, threshold, device, block, PAIRS_PER_ROW * n)
}

/// [`pairs_above_best_of`] with `block` rows per matrix product and at most `limit` pairs.
fn pairs_above_in_blocks(
    products: &[ViewProduct],
    threshold: f32,
    device: &Device,
    block: usize,
    limit: usize,
) -> Result<Vec<(usize, usize, f32)>, EvalError> {
    let Some(&(first, _)) = products.first() else {
        return Err(EvalError::Empty("view products"));
    };
    let (n, dim) = (first.len(), first.dim());
    if n == 0 {
        return Err(EvalError::Empty("features"));
    }
    for &(left, right) in products {
        for side in [left, right] {
            check_same_count("a view", side.len(), "the first view", n)?;
            check_same_dim("a view", side, "the first view", first)?;
        }
    }
    let too_many = || EvalError::TooManyPairs { threshold, limit };
    // Each view crosses to the device once, however many products it is in.
    let mut uploaded: Vec<(*const f32, Tensor<2>)> = Vec::new();
    let mut upload = |view: Embeddings| {
        let key = view.data().as_ptr();
        if let Some((_, tensor)) = uploaded.iter().find(|(k, _)| *k == key) {
            return tensor.clone();
        }
        let tensor =
            Tensor::<2>::from_data(TensorData::new(view.data().to_vec(), [n, dim]), device);
        uploaded.push((key, tensor.clone()));
        tensor
    };
    let on_device: Vec<(Tensor<2>, Tensor<2>)> = products
        .iter()
        .map(|&(left, right)| (upload(left), upload(right).transpose()))
        .collect();
    let mut pairs = Vec::new();
    for start in (0..n).step_by(block) {
        let end = (start + block).min(n);
        // Columns from `start`: pairs with an earlier row were found by an earlier block.
        let scores = on_device
            .iter()
            .map(|(left, right)| {
                left.clone()
                    .slice([start..end, 0..dim])
                    .matmul(right.clone().slice([0..dim, start..n]))
            })
            .reduce(Tensor::max_pair)
            .expect("at least one product");
        let above = scores.greater_elem(threshold);
        // Counted on the device first: a block's hits are its rows themselves (on the diagonal),
        // each pair inside its square twice and every other pair once, so at least half of the
        // rest are new pairs; past the limit, none is read back.
        let count = above
            .clone()
            .int()
            .sum()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("a count is an integer")[0]
            .max(0) as usize;
        if pairs.len() + count.saturating_sub(end - start) / 2 > limit {
            return Err(too_many());
        }
        let hits: Tensor<2, Int> = above.argwhere();
        let hits: Vec<i64> = hits
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("indices are integers");
        for hit in hits.chunks_exact(2) {
            let (i, j) = (start + hit[0] as usize, start + hit[1] as usize);
            if j > i {
                let score = best_of(products, i, j);
                // The device may round differently at the threshold itself; the host's sum decides.
                if score > threshold {
                    pairs.push((i, j, score));
                }
            }
        }
        if pairs.len() > limit {
            return Err(too_many());
        }
    }
    pairs.sort_unstable_by_key(|&(i, j, _)| (i, j));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::random_unit_rows;
    use crate::eval::testing::{brute_top_k, emb};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
    fn a_skipped_row_is_never_found_and_the_rest_is_the_plain_search() {
        let (dim, n) = (12, 300);
        let data = random_unit_rows(n, dim, 6);
        let base = emb(&data, dim);
        // The first 40 rows ask for their neighbours among all, each skipping itself; the answer
        // is the exhaustive search without the query's own row.
        let queries = emb(&data[..40 * dim], dim);
        let skip: Vec<Option<usize>> = (0..40).map(Some).collect();
        let found = top_k_skipping(queries, base, 9, &skip).unwrap();
        let slow = brute_top_k(queries, base, 9, true);
        let rows = |lists: &[Vec<(usize, f32)>]| -> Vec<Vec<usize>> {
            lists
                .iter()
                .map(|l| l.iter().map(|p| p.0).collect())
                .collect()
        };
        // The scan may fuse multiply-adds where the exhaustive `dot` does not: rows exactly,
        // scores to rounding.
        assert_eq!(rows(&found), rows(&slow));
        for (f, s) in found.iter().flatten().zip(slow.iter().flatten()) {
            assert!((f.1 - s.1).abs() < 1e-5);
        }
        // Without a row to skip, the plain search.
        let none = top_k_skipping(queries, base, 9, &[None; 40]).unwrap();
        assert_eq!(none, top_k(queries, base, 9, false).unwrap());
        // One query: a member skipping itself, and an outside vector.
        assert_eq!(nearest(base.row(7), base, 9, Some(7)).unwrap(), found[7]);
        assert_eq!(nearest(base.row(7), base, 1, None).unwrap()[0].0, 7);
        assert!(top_k_skipping(queries, base, 9, &[None]).is_err());
        assert!(nearest(&data[..dim - 1], base, 9, None).is_err());
    }

    #[test]
    fn a_neighbor_shares_the_label_only_when_both_have_one() {
        let at = |query, label| Neighbor::new("a.png".into(), 0.5, query, label).same_label;
        assert_eq!(at(Some(2), Some(2)), Some(true));
        assert_eq!(at(Some(2), Some(3)), Some(false));
        assert_eq!(at(None, Some(3)), None);
        assert_eq!(at(Some(2), None), None);
    }

    #[test]
    fn invalid_inputs_are_reported() {
        let data = [1.0, 0.0, 0.0, 1.0];
        let set = emb(&data, 2);
        let wide = [1.0, 0.0, 0.0];
        let wide = emb(&wide, 3);
        let message = |e: EvalError| e.to_string();
        assert!(message(top_k(set, wide, 1, false).unwrap_err()).contains("dimension mismatch"));
        assert!(message(top_k(set, set, 0, false).unwrap_err()).contains("k must be at least 1"));
        assert!(message(top_k(set, emb(&[], 2), 1, false).unwrap_err()).contains("empty"));
        assert!(message(top_k(set, emb(&data[..2], 2), 1, true).unwrap_err()).contains("count"));
        let device = Device::flex();
        assert!(top_k_on(&device, set, wide, 1, &|| true).is_err());
        assert!(top_k_on(&device, set, set, 0, &|| true).is_err());
        assert!(top_k_on(&device, set, emb(&[], 2), 1, &|| true).is_err());
    }

    #[test]
    fn device_top_k_finds_the_host_neighbors() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let dim = 6;
        let mut unit_rows = |n: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|_| {
                    let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(move |x| x / norm)
                })
                .collect()
        };
        let (base, queries) = (unit_rows(2500), unit_rows(1100));
        let base = Embeddings::new(&base, dim).unwrap();
        let queries = Embeddings::new(&queries, dim).unwrap();
        let host = top_k(queries, base, 7, false).unwrap();
        let device = top_k_on(&Device::flex(), queries, base, 7, &|| true).unwrap();
        assert_eq!(device.len(), host.len());
        for (d, h) in device.iter().zip(&host) {
            let d_rows: Vec<usize> = d.iter().map(|&(row, _)| row).collect();
            let h_rows: Vec<usize> = h.iter().map(|&(row, _)| row).collect();
            assert_eq!(d_rows, h_rows);
            for (a, b) in d.iter().zip(h) {
                assert!((a.1 - b.1).abs() < 1e-5);
            }
        }
        assert_eq!(
            top_k_on(&Device::flex(), queries, base, 7, &|| false),
            Err(EvalError::Stopped)
        );
        // The same search over embeddings already on the device.
        let on_device = |rows: Embeddings| {
            Tensor::<2>::from_data(
                TensorData::new(rows.data().to_vec(), [rows.len(), dim]),
                &Device::flex(),
            )
        };
        let kept = top_k_of_tensors(on_device(queries), on_device(base), 7, &|| true).unwrap();
        assert_eq!(kept, device);
        let wide = Tensor::<2>::zeros([3, dim + 1], &Device::flex());
        let search = |queries, base, k| top_k_of_tensors(queries, base, k, &|| true);
        assert!(matches!(
            search(on_device(queries), wide, 1),
            Err(EvalError::DimensionMismatch { .. })
        ));
        assert_eq!(
            search(on_device(queries), on_device(base), 0),
            Err(EvalError::ZeroParameter("k"))
        );
        let nothing = Tensor::<2>::zeros([0, dim], &Device::flex());
        assert_eq!(
            search(on_device(queries), nothing, 1),
            Err(EvalError::Empty("base set"))
        );
    }

    #[test]
    fn pairs_above_match_brute_force() {
        // 300 rows of dim 16 in blocks of 64 rows (the smallest block): planted near-copies make
        // the pairs above the threshold more than chance, and some cross blocks.
        let (dim, n) = (16, 300);
        let mut data = random_unit_rows(n, dim, 5);
        for (copy, original) in [(10, 3), (299, 150), (151, 150)] {
            let row: Vec<f32> = data[original * dim..(original + 1) * dim].to_vec();
            data[copy * dim..(copy + 1) * dim].copy_from_slice(&row);
        }
        let features = Embeddings::new(&data, dim).unwrap();
        let threshold = 0.6;
        let fast = pairs_above_in_blocks(
            &[(features, features)],
            threshold,
            &crate::device::cpu().device,
            64,
            usize::MAX,
        )
        .unwrap();
        let mut slow = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let s = dot(features.row(i), features.row(j));
                if s > threshold {
                    slow.push((i, j, s));
                }
            }
        }
        assert!(
            slow.len() > 3,
            "the test has pairs besides the planted ones"
        );
        let key = |v: &[(usize, usize, f32)]| v.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>();
        assert_eq!(key(&fast), key(&slow));
        assert!(
            fast.iter()
                .zip(&slow)
                .all(|(a, b)| (a.2 - b.2).abs() < 1e-5)
        );
        assert!(key(&fast).contains(&(3, 10)) && key(&fast).contains(&(150, 299)));
    }

    #[test]
    fn pairs_by_the_best_of_several_views_match_brute_force() {
        let (dim, n) = (16, 200);
        let whole = random_unit_rows(n, dim, 7);
        let mut zoomed = random_unit_rows(n, dim, 8);
        // Row 40's zoomed view is row 90's whole image: only that product links the two.
        let copied = whole[90 * dim..91 * dim].to_vec();
        zoomed[40 * dim..41 * dim].copy_from_slice(&copied);
        let w = Embeddings::new(&whole, dim).unwrap();
        let z = Embeddings::new(&zoomed, dim).unwrap();
        let products = [(w, w), (z, w), (w, z)];
        let device = &crate::device::cpu().device;
        let threshold = 0.55;
        let fast = pairs_above_in_blocks(&products, threshold, device, 64, usize::MAX).unwrap();
        let mut slow = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let s = best_of(&products, i, j);
                if s > threshold {
                    slow.push((i, j, s));
                }
            }
        }
        let key = |v: &[(usize, usize, f32)]| v.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>();
        assert!(slow.len() > 5, "chance pairs besides the planted one");
        assert_eq!(key(&fast), key(&slow));
        assert!(key(&fast).contains(&(40, 90)));
        assert!((best_of(&products, 40, 90) - 1.0).abs() < 1e-5);
        assert!(!key(&pairs_above(w, threshold, device).unwrap()).contains(&(40, 90)));
        let short = Embeddings::new(&whole[..dim * 10], dim).unwrap();
        assert!(matches!(
            pairs_above_best_of(&[(w, short)], threshold, device),
            Err(EvalError::CountMismatch { .. })
        ));
        assert_eq!(
            pairs_above_best_of(&[], threshold, device),
            Err(EvalError::Empty("view products"))
        );
    }

    #[test]
    fn a_device_block_fits_every_adapters_buffer_limit() {
        // WebGPU's guaranteed max_storage_buffer_binding_size: 128 MiB; blocks keep to half.
        for columns in [1, 300, 50_000, 100_000, 1_000_000, 20_000_000] {
            let rows = rows_per_block(columns, 8192);
            assert!(rows >= 1);
            assert!(
                rows == 1 || rows * columns * 4 <= 64 << 20,
                "{rows} rows of {columns}"
            );
        }
        assert_eq!(rows_per_block(300, 1024), 1024);
    }

    #[test]
    fn a_threshold_too_low_is_refused_instead_of_keeping_every_pair() {
        let (dim, n) = (16, 300);
        let data = random_unit_rows(n, dim, 5);
        let features = Embeddings::new(&data, dim).unwrap();
        let device = &crate::device::cpu().device;
        // Below −1 every one of the 44 850 pairs is above: refused, whether the device count
        // (a block over the limit at once) or the host count (blocks adding up) finds it.
        for (block, limit) in [(64, 1000), (64, 20_000), (300, 44_849)] {
            let refused =
                pairs_above_in_blocks(&[(features, features)], -1.5, device, block, limit)
                    .unwrap_err();
            assert!(
                matches!(refused, EvalError::TooManyPairs { limit: l, .. } if l == limit),
                "{refused}"
            );
            assert!(refused.to_string().contains("too low"), "{refused}");
        }
        let all = pairs_above_in_blocks(&[(features, features)], -1.5, device, 64, 44_850).unwrap();
        assert_eq!(all.len(), n * (n - 1) / 2, "exactly at the limit is kept");
        assert_eq!(
            pairs_above(features, -1.5, device).unwrap_err().to_string(),
            EvalError::TooManyPairs {
                threshold: -1.5,
                limit: PAIRS_PER_ROW * n
            }
            .to_string()
        );
    }
}
