//! Near-duplicate pairs without comparing all pairs: an inverted file over the embedding (k-means
//! lists; Jégou, Douze and Schmid, TPAMI 2011). Each view a product reads on its right is cut into
//! about √n lists by k-means on a sample; each row of the left view visits the few lists whose
//! centres lie closest to it and compares itself with their members alone. Near-duplicates lie far
//! closer to each other than to anything else, so they share a list or sit in neighbouring ones;
//! every candidate found is then scored exactly ([`best_of`], the score of the all-pairs search),
//! so the index can only miss a pair, never invent one. Its recall against the all-pairs answer is
//! measured (`spreadout bench --duplicates N`, benchmarks/near-duplicates/README.md).
//!
//! Chosen over binary codes with multi-index hashing (the hash stage's index): at the cosines that
//! mark a copy (about 0.9, 26°), sign bits of a 64-bit code differ in 9 bits on average and in 16
//! at the 99th percentile, a radius at which each query visits tens of thousands of buckets. And
//! over an HNSW graph: building one for a million rows takes longer on two cores than this whole
//! search.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::scan::{Collector, scan};
use super::search::{PAIRS_PER_ROW, ViewProduct, best_of};
use super::{Embeddings, EvalError};

/// Rows from which the near-duplicate finder searches through the inverted file rather than all
/// pairs: at 20 000 rows the all-pairs search takes about 5 s on two cores and grows with the
/// square of the folder.
pub const INDEXED_FROM: usize = 20_000;

/// How the inverted file is cut and searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexShape {
    /// Lists per indexed view (k-means centres).
    pub lists: usize,
    /// Lists each query visits, its closest centres first.
    pub probes: usize,
}

impl IndexShape {
    /// The shape for `rows` rows: about √(8n) lists, where finding a row's lists costs about as
    /// much as comparing it with their members, and eight probes.
    pub fn for_rows(rows: usize) -> Self {
        let probes = 8;
        let lists = ((probes * rows) as f64).sqrt().round() as usize;
        Self {
            lists: lists.clamp(1, rows.max(1)),
            probes,
        }
    }
}

/// k-means iterations on the sample: the lists need to be compact, not optimal.
const ITERATIONS: usize = 6;
/// Sample rows per list the centres are trained on.
const SAMPLE_PER_LIST: usize = 32;
/// Rows scored against every centre in one matrix product (8 192 × 2 828 lists: 93 MB).
const CENTER_BLOCK: usize = 8192;

/// Where the inverted file's products run. On the CPU backend, on the host: the blocked scan
/// ([`super::scan`]) keeps only what it needs as it goes (a row's best lists; the pairs above the
/// screen), where the backend's matrix products write every score to memory, then every
/// comparison, and read both back (at a million rows, 11 GB of scores a view). On a GPU, matrix
/// products there, and only the hits come back.
#[derive(Clone, Copy)]
enum Compute<'a> {
    Host,
    Device(&'a Device),
}

impl<'a> Compute<'a> {
    fn for_device(device: &'a Device) -> Self {
        if *device == Device::flex() {
            Self::Host
        } else {
            Self::Device(device)
        }
    }
}

/// `rows` of `view` as a matrix on `device`.
fn upload(view: Embeddings, rows: &[usize], device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(view.gather(rows), [rows.len(), view.dim()]),
        device,
    )
}

/// Indices read back to the host.
fn host(tensor: Tensor<2, Int>) -> Vec<i64> {
    tensor
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("indices are integers")
}

/// A list's centres: their rows on the host and, for a device, as the columns of a matrix there
/// (`dim × lists`, so that the product's right operand is row-major, the layout GEMMs read
/// fastest).
struct Centers {
    rows: Vec<f32>,
    columns: Option<Tensor<2>>,
}

impl Centers {
    fn new(rows: Vec<f32>, dim: usize, compute: Compute) -> Self {
        let columns = match compute {
            Compute::Host => None,
            Compute::Device(device) => Some(columns(rows.chunks_exact(dim), dim, device)),
        };
        Self { rows, columns }
    }

    fn count(&self, dim: usize) -> usize {
        self.rows.len() / dim
    }
}

/// Rows of a view a host search takes at a time: 65 536 queries' best lists are 4 MB.
const HOST_CHUNK: usize = 65_536;

/// For each of `rows` of `view` (all of them for `None`), its `count` closest `centers` by dot
/// product, best first (ties: the lower list), in row order: `count` list numbers per row.
fn closest_centers(
    view: Embeddings,
    rows: Option<&[usize]>,
    centers: &Centers,
    count: usize,
    compute: Compute,
) -> Vec<usize> {
    let dim = view.dim();
    let lists = centers.count(dim);
    let count = count.min(lists);
    let mut closest = Vec::with_capacity(rows.map_or(view.len(), <[usize]>::len) * count);
    match (compute, &centers.columns) {
        (Compute::Device(device), Some(columns)) => {
            let all: Vec<usize>;
            let rows = match rows {
                Some(rows) => rows,
                None => {
                    all = (0..view.len()).collect();
                    &all
                }
            };
            for block in rows.chunks(CENTER_BLOCK) {
                let scores: Vec<f32> = upload(view, block, device)
                    .matmul(columns.clone())
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("scores are floats");
                let chosen: Vec<Vec<usize>> = scores
                    .par_chunks_exact(lists)
                    .map(|row| best_lists(row, count))
                    .collect();
                closest.extend(chosen.into_iter().flatten());
            }
        }
        _ => {
            let base = Embeddings::trusted(&centers.rows, dim);
            let mut choose = |queries: Embeddings| {
                let found = super::top_k(queries, base, count, false)
                    .expect("centres and rows share their width");
                closest.extend(found.into_iter().flatten().map(|(list, _)| list));
            };
            match rows {
                // Every row: the view's own rows, a block at a time, with no copy.
                None => {
                    for block in view.data().chunks(HOST_CHUNK * dim) {
                        choose(Embeddings::trusted(block, dim));
                    }
                }
                Some(rows) => {
                    for block in rows.chunks(HOST_CHUNK) {
                        choose(Embeddings::trusted(&view.gather(block), dim));
                    }
                }
            }
        }
    }
    closest
}

/// The positions of the `count` highest of `scores`, highest first (ties: the lower position).
fn best_lists(scores: &[f32], count: usize) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(count + 1);
    for (list, &score) in scores.iter().enumerate() {
        if best.len() == count && score <= best[count - 1].0 {
            continue;
        }
        let at = best.partition_point(|&(s, _)| s >= score);
        best.insert(at, (score, list));
        best.truncate(count);
    }
    best.into_iter().map(|(_, list)| list).collect()
}

/// `rows` of `dim` values as the columns of a matrix on `device`, in order.
fn columns<'a>(
    rows: impl ExactSizeIterator<Item = &'a [f32]>,
    dim: usize,
    device: &Device,
) -> Tensor<2> {
    let count = rows.len();
    let mut transposed = vec![0.0f32; count * dim];
    for (k, row) in rows.enumerate() {
        for (d, &x) in row.iter().enumerate() {
            transposed[d * count + k] = x;
        }
    }
    Tensor::from_data(TensorData::new(transposed, [dim, count]), device)
}

/// The rows of an indexed view in list order: on the host, or as the columns of a matrix on the
/// device.
enum Sorted {
    Host(Vec<f32>),
    Device(Box<Tensor<2>>),
}

/// Collects the base rows a query scores above the screen ([`InvertedFile::search`] on the host).
struct Above {
    screen: f32,
    hits: Vec<usize>,
}

impl Collector for Above {
    fn floor(&self) -> f32 {
        self.screen
    }

    fn offer(&mut self, base_index: usize, _score: f32) {
        self.hits.push(base_index);
    }
}

/// One view cut into lists: its centres, its rows in list order, and the rows of list `l` at
/// `items[starts[l]..starts[l + 1]]`.
struct InvertedFile {
    centers: Centers,
    sorted: Sorted,
    starts: Vec<usize>,
    items: Vec<usize>,
}

impl InvertedFile {
    /// The file of `view` with `shape.lists` lists, and the lists each of its rows visits as a
    /// query (`shape.probes` a row, its own list first: the same scores place it and probe).
    fn build(
        view: Embeddings,
        shape: IndexShape,
        seed: u64,
        compute: Compute,
    ) -> (Self, Vec<usize>) {
        let (n, dim) = (view.len(), view.dim());
        let lists = shape.lists.clamp(1, n);
        let probes = shape.probes.clamp(1, lists);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sample_rows = sample(&mut rng, n, (lists * SAMPLE_PER_LIST).min(n)).into_vec();
        let mut centers = view.gather(&sample_rows[..lists]);
        for _ in 0..ITERATIONS {
            let current = Centers::new(centers.clone(), dim, compute);
            let nearest = closest_centers(view, Some(&sample_rows), &current, 1, compute);
            let mut sums = vec![0.0f64; lists * dim];
            for (&row, &list) in sample_rows.iter().zip(&nearest) {
                for (sum, &x) in sums[list * dim..(list + 1) * dim]
                    .iter_mut()
                    .zip(view.row(row))
                {
                    *sum += f64::from(x);
                }
            }
            // An empty list keeps its centre; the others move to their members' mean direction
            // (the rows are unit vectors, and so are the centres).
            for (center, sum) in centers.chunks_exact_mut(dim).zip(sums.chunks_exact(dim)) {
                let norm = sum.iter().map(|s| s * s).sum::<f64>().sqrt();
                if norm > 0.0 {
                    for (c, s) in center.iter_mut().zip(sum) {
                        *c = (s / norm) as f32;
                    }
                }
            }
        }
        let centers = Centers::new(centers, dim, compute);
        let visits = closest_centers(view, None, &centers, probes, compute);
        let assigned: Vec<usize> = visits.iter().step_by(probes).copied().collect();
        let mut starts = vec![0usize; lists + 1];
        for &list in &assigned {
            starts[list + 1] += 1;
        }
        for list in 0..lists {
            starts[list + 1] += starts[list];
        }
        let mut next = starts.clone();
        let mut items = vec![0usize; n];
        for (row, &list) in assigned.iter().enumerate() {
            items[next[list]] = row;
            next[list] += 1;
        }
        let sorted = match compute {
            Compute::Host => Sorted::Host(view.gather(&items)),
            Compute::Device(device) => Sorted::Device(Box::new(columns(
                items.iter().map(|&row| view.row(row)),
                dim,
                device,
            ))),
        };
        let file = Self {
            centers,
            sorted,
            starts,
            items,
        };
        (file, visits)
    }

    /// The pairs `(query row, indexed row)` of the rows of `queries` and the rows of the lists
    /// each visits (`visits`: the same number of lists a row, in row order) whose dot product is
    /// above `screen`. Each list is compared once with all the rows that visit it.
    fn search(&self, queries: Embeddings, visits: &[usize], screen: f32) -> Vec<(usize, usize)> {
        let lists = self.starts.len() - 1;
        let probes = visits.len() / queries.len();
        let mut visitors: Vec<Vec<usize>> = vec![Vec::new(); lists];
        for (k, &list) in visits.iter().enumerate() {
            visitors[list].push(k / probes);
        }
        let dim = queries.dim();
        let found_in = |list: usize| -> Vec<(usize, usize)> {
            let (from, to) = (self.starts[list], self.starts[list + 1]);
            let visitors = &visitors[list];
            if visitors.is_empty() || from == to {
                return Vec::new();
            }
            let pairs = |hits: &mut dyn Iterator<Item = (usize, usize)>| {
                hits.map(|(v, m)| (visitors[v], self.items[from + m]))
                    .collect()
            };
            match &self.sorted {
                Sorted::Host(rows) => {
                    let members = Embeddings::trusted(&rows[from * dim..to * dim], dim);
                    let values = queries.gather(visitors);
                    let mut above: Vec<Above> = visitors
                        .iter()
                        .map(|_| Above {
                            screen,
                            hits: Vec::new(),
                        })
                        .collect();
                    scan(Embeddings::trusted(&values, dim), members, &mut above);
                    pairs(
                        &mut above
                            .iter()
                            .enumerate()
                            .flat_map(|(v, a)| a.hits.iter().map(move |&m| (v, m))),
                    )
                }
                Sorted::Device(sorted) => {
                    let members = sorted.as_ref().clone().slice([0..dim, from..to]);
                    let device = members.device();
                    let above = upload(queries, visitors, &device)
                        .matmul(members)
                        .greater_elem(screen)
                        .argwhere();
                    pairs(
                        &mut host(above)
                            .chunks_exact(2)
                            .map(|hit| (hit[0] as usize, hit[1] as usize)),
                    )
                }
            }
        };
        match &self.sorted {
            // Lists in parallel on the host (each scan is parallel too, over its visitors); one
            // at a time on a device, which queues its work in order.
            Sorted::Host(_) => (0..lists).into_par_iter().flat_map_iter(found_in).collect(),
            Sorted::Device(_) => (0..lists).flat_map(found_in).collect(),
        }
    }
}

/// Every pair of rows `(i, j)`, `i < j`, whose [`best_of`] score over `products` is above
/// `threshold` and which the inverted file of `shape` finds, ordered by `i` then `j`, with its
/// score: [`super::pairs_above_best_of`]'s answer, less the pairs whose rows fall in lists too
/// far apart. The products run on the host for the CPU backend's device, on `device` otherwise
/// ([`Compute`]). Seeded: the same answer every time.
///
/// Each product is searched one way round: the finder's products come in both orders (a whole
/// image against the other's zoomed view, and the zoomed against the whole), whose pairs are the
/// same pairs turned round, so one view (the one most products read) is indexed and the others
/// query it.
///
/// # Errors
/// [`EvalError::Empty`] for no rows or no product; [`EvalError::CountMismatch`] or
/// [`EvalError::DimensionMismatch`] for views of different rows; [`EvalError::TooManyPairs`] past
/// [`PAIRS_PER_ROW`] × rows.
pub fn pairs_above_indexed(
    products: &[ViewProduct],
    threshold: f32,
    shape: IndexShape,
    device: &Device,
) -> Result<Vec<(usize, usize, f32)>, EvalError> {
    search_indexed(products, threshold, shape, Compute::for_device(device))
}

/// [`pairs_above_indexed`] with its products where `compute` says.
fn search_indexed(
    products: &[ViewProduct],
    threshold: f32,
    shape: IndexShape,
    compute: Compute,
) -> Result<Vec<(usize, usize, f32)>, EvalError> {
    let Some(&(first, _)) = products.first() else {
        return Err(EvalError::Empty("view products"));
    };
    let n = first.len();
    if n == 0 {
        return Err(EvalError::Empty("features"));
    }
    for &(left, right) in products {
        for side in [left, right] {
            super::error::check_same_count("a view", side.len(), "the first view", n)?;
            super::error::check_same_dim("a view", side, "the first view", first)?;
        }
    }
    let limit = PAIRS_PER_ROW * n;
    let key = |view: Embeddings| view.data().as_ptr();
    let uses = |view: Embeddings| {
        products
            .iter()
            .filter(|(l, r)| key(*l) == key(view) || key(*r) == key(view))
            .count()
    };
    // Each unordered product once, its more used view indexed.
    let mut searches: Vec<(Embeddings, Embeddings)> = Vec::new();
    for &(left, right) in products {
        let (query, indexed) = match uses(left) > uses(right) {
            true => (right, left),
            false => (left, right),
        };
        let seen = searches.iter().any(|(q, i)| {
            (key(*q), key(*i)) == (key(query), key(indexed))
                || (key(*q), key(*i)) == (key(indexed), key(query))
        });
        if !seen {
            searches.push((query, indexed));
        }
    }
    // Screening in the device's arithmetic admits a little below the threshold; the host's exact
    // score decides.
    let screen = threshold - 1e-4;
    let mut files: Vec<(*const f32, InvertedFile, Vec<usize>)> = Vec::new();
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for (query, indexed) in searches {
        if !files.iter().any(|(k, _, _)| *k == key(indexed)) {
            let (file, visits) = InvertedFile::build(indexed, shape, 11, compute);
            files.push((key(indexed), file, visits));
        }
        let (_, file, own_visits) = files
            .iter()
            .find(|(k, _, _)| *k == key(indexed))
            .expect("built above");
        let visits = match key(query) == key(indexed) {
            true => own_visits.clone(),
            false => {
                let probes = shape.probes.clamp(1, file.starts.len() - 1);
                closest_centers(query, None, &file.centers, probes, compute)
            }
        };
        let found = file.search(query, &visits, screen);
        candidates.extend(
            found
                .into_iter()
                .filter(|(i, j)| i != j)
                .map(|(i, j)| (i.min(j), i.max(j))),
        );
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.len() > 2 * limit {
            return Err(EvalError::TooManyPairs { threshold, limit });
        }
    }
    let pairs: Vec<(usize, usize, f32)> = candidates
        .into_par_iter()
        .filter_map(|(i, j)| {
            let score = best_of(products, i, j);
            (score > threshold).then_some((i, j, score))
        })
        .collect();
    if pairs.len() > limit {
        return Err(EvalError::TooManyPairs { threshold, limit });
    }
    Ok(pairs)
}

/// Unit rows with the structure of a photo library's embeddings, for benchmarks and tests:
/// `originals` pictures in series of twenty related shots (a shared direction, any two of a
/// series at cosine about 0.5), and after every `copy_every`-th a planted copy of it at cosine
/// about 0.95. Returns `views` views of every row (the whole images first, then each further view
/// at cosine about 0.9 to its whole image, as a zoomed or mirrored one is), and the planted copies
/// as `(original, copy)` row pairs.
pub fn library_like_rows(
    originals: usize,
    dim: usize,
    copy_every: usize,
    views: usize,
    seed: u64,
) -> (Vec<Vec<f32>>, Vec<(usize, usize)>) {
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gaussian = |scale: f32| -> Vec<f32> {
        (0..dim)
            .map(|_| {
                let value: f32 = StandardNormal.sample(&mut rng);
                scale * value
            })
            .collect()
    };
    // Noise of squared length 1/c² − 1 added to a unit row leaves it at cosine about c.
    let at_cosine = |cosine: f32| ((1.0 / (cosine * cosine) - 1.0) / dim as f32).sqrt();
    let unit = |row: Vec<f32>| {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let moved = |row: &[f32], by: Vec<f32>| unit(row.iter().zip(by).map(|(x, y)| x + y).collect());
    let mut whole: Vec<Vec<f32>> = Vec::new();
    let mut copies = Vec::new();
    let mut series = Vec::new();
    for picture in 0..originals {
        if picture % 20 == 0 {
            series = unit(gaussian(1.0));
        }
        let row = moved(&series, gaussian(at_cosine(0.7)));
        if copy_every > 0 && picture % copy_every == 0 {
            copies.push((whole.len(), whole.len() + 1));
            let copy = moved(&row, gaussian(at_cosine(0.95)));
            whole.extend([row, copy]);
        } else {
            whole.push(row);
        }
    }
    let mut all = vec![whole.concat()];
    for _ in 1..views {
        all.push(
            whole
                .iter()
                .flat_map(|row| moved(row, gaussian(at_cosine(0.9))))
                .collect(),
        );
    }
    (all, copies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::embedding_stage::view_products;

    /// The index finds what the all-pairs search finds, with the same scores, on rows shaped like
    /// a library's (series of related shots and planted copies, three views each), at the finder's
    /// threshold; a threshold every pair clears is refused.
    #[test]
    fn indexed_pairs_are_the_exact_pairs_on_a_library_like_folder() {
        let (views, copies) = library_like_rows(6000, 128, 10, 3, 5);
        let views: Vec<Embeddings> = views
            .iter()
            .map(|view| Embeddings::new(view, 128).unwrap())
            .collect();
        let products = view_products(&views, &views);
        let device = crate::device::cpu().device;
        let exact = super::super::pairs_above_best_of(&products, 0.9, &device).unwrap();
        let rows = views[0].len();
        let found =
            pairs_above_indexed(&products, 0.9, IndexShape::for_rows(rows), &device).unwrap();
        // Every planted copy is above the threshold in the exact answer, and little else is.
        assert!(exact.len() >= copies.len() * 99 / 100, "{}", exact.len());
        assert!(exact.len() <= copies.len() * 11 / 10, "{}", exact.len());
        for pair in &found {
            assert!(exact.contains(pair), "{pair:?} is not an exact pair");
        }
        let recall = found.len() as f64 / exact.len() as f64;
        assert!(recall >= 0.99, "recall {recall}");
        // The CPU backend's device searches on the host; the products of a device (a GPU's, here
        // the CPU backend's own) find pairs the same way.
        let on_device = search_indexed(
            &products,
            0.9,
            IndexShape::for_rows(rows),
            Compute::Device(&device),
        )
        .unwrap();
        let recall_on_device = on_device.len() as f64 / exact.len() as f64;
        assert!(recall_on_device >= 0.99, "recall {recall_on_device}");
        for pair in &on_device {
            assert!(exact.contains(pair), "{pair:?} is not an exact pair");
        }

        let refused =
            pairs_above_indexed(&products[..1], -1.0, IndexShape::for_rows(rows), &device);
        assert!(matches!(refused, Err(EvalError::TooManyPairs { .. })));
        let one = Embeddings::new(&views[0].data()[..128], 128).unwrap();
        assert_eq!(
            pairs_above_indexed(&[(one, one)], 0.9, IndexShape::for_rows(1), &device).unwrap(),
            Vec::new()
        );
    }
}
