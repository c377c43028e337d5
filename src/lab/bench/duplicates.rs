//! The near-duplicate finder's searches as `spreadout bench --duplicates N` times them: the
//! embedding stage's pairs through the inverted file (the finder's search from
//! [`crate::eval::INDEXED_FROM`] rows) and, up to [`EXACT_UP_TO`] rows, through all pairs, with the
//! index's recall against them; and the hash stage's multi-index search.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use super::{BenchRow, host_row};
use crate::device::SelectedDevice;
use crate::eval::{self, Embeddings, EvalError, IndexShape};
use crate::explore::embedding_stage::view_products;

/// Most rows the all-pairs search is also timed on (with 3 views, 5 products: about two minutes
/// on two cores at 100 000; hours at a million).
pub const EXACT_UP_TO: usize = 100_000;

/// The cosine above which the rows count as copies here, as a trained model's suggestion is.
const THRESHOLD: f32 = 0.9;

/// The embedding stage's pair search over `rows` generated embeddings shaped like a library's
/// ([`eval::library_like_rows`]: series of twenty related shots, a planted copy after every tenth
/// picture, each image's whole, zoomed and mirrored views): every pair whose best of the five view
/// products is above 0.9, through the inverted file, and through all pairs (blocked matrix
/// products on `device`) up to [`EXACT_UP_TO`] rows, with the index's recall against them.
///
/// # Errors
/// [`EvalError`] as the searches give it.
pub fn duplicate_search(
    rows: usize,
    dim: usize,
    device: &SelectedDevice,
) -> Result<Vec<BenchRow>, EvalError> {
    // Originals such that originals plus their copies make `rows`.
    let originals = rows * 10 / 11;
    let (values, copies) = eval::library_like_rows(originals, dim, 10, 3, 11);
    let views = values
        .iter()
        .map(|values| Embeddings::new(&values[..rows.min(values.len() / dim) * dim], dim))
        .collect::<Result<Vec<_>, _>>()?;
    let products = view_products(&views, &views);
    let rows = views[0].len();
    let shape = IndexShape::for_rows(rows);
    let start = Instant::now();
    let indexed = eval::pairs_above_indexed(&products, THRESHOLD, shape, &device.device)?;
    let indexed_seconds = start.elapsed().as_secs_f64();
    let described = format!(
        "{rows} generated embeddings shaped like a library ({dim}-d, 3 views each, {} planted copies): pairs whose best of 5 view products is above {THRESHOLD}",
        copies.len()
    );
    let mut recall = String::from("recall against all pairs not measured past 100 000 rows");
    let mut found = Vec::new();
    if rows <= EXACT_UP_TO {
        let start = Instant::now();
        let exact = eval::pairs_above_best_of(&products, THRESHOLD, &device.device)?;
        let mut row = host_row(
            "duplicates",
            format!("{described}, all pairs: {} pairs", exact.len()),
            rows,
            start.elapsed().as_secs_f64(),
        );
        row.device = device.name.clone();
        row.backend = device.backend.to_owned();
        found.push(row);
        // Both lists are sorted by rows.
        let kept = indexed
            .iter()
            .filter(|(i, j, _)| {
                exact
                    .binary_search_by_key(&(*i, *j), |&(a, b, _)| (a, b))
                    .is_ok()
            })
            .count();
        recall = format!(
            "recall {:.4} against all pairs",
            kept as f64 / exact.len().max(1) as f64
        );
    }
    found.insert(
        0,
        host_row(
            "duplicates",
            format!(
                "{described}, inverted file ({} lists, {} probes): {} pairs, {recall}",
                shape.lists,
                shape.probes,
                indexed.len()
            ),
            rows,
            indexed_seconds,
        ),
    );
    Ok(found)
}

/// The hash stage's pair search over `rows` 64-bit hashes: distinct images' hashes drawn
/// uniformly (those of distinct photos sit about 32 bits apart) and one in ten a copy of another
/// with up to 6 bits flipped; every pair within 10 bits, found by the multi-index search.
pub fn hash_search(rows: usize) -> BenchRow {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut hashes: Vec<u64> = Vec::with_capacity(rows);
    for i in 0..rows {
        let hash = if i % 10 == 9 {
            let mut copy = hashes[rng.random_range(0..i)];
            for _ in 0..rng.random_range(0..=6) {
                copy ^= 1 << rng.random_range(0..64);
            }
            copy
        } else {
            rng.random()
        };
        hashes.push(hash);
    }
    let start = Instant::now();
    let pairs = crate::phash::multi_index::MultiIndex::new(&hashes)
        .pairs_within(10, usize::MAX)
        .expect("no limit");
    host_row(
        "duplicates",
        format!(
            "hash stage: every pair within 10 bits among {rows} perceptual hashes ({} pairs)",
            pairs.len()
        ),
        rows,
        start.elapsed().as_secs_f64(),
    )
}
