//! The blocked, parallel similarity kernel under every nearest-neighbour computation (top-k,
//! k-means assignment, the Fig. 5 distributions): base rows packed in SIMD panels, queries in
//! tiles, and a [`Collector`] per query deciding what to keep. It lives apart from its users so
//! that the one place tuned for speed is also the one place that fixes the summation order.

use rayon::prelude::*;

use super::Embeddings;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
use avx2::{score_rows_avx2, tile_dots_avx2};

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
pub(super) trait Collector: Send {
    /// Scores at or below this would be rejected by [`Collector::offer`]; letting the scan skip
    /// them wholesale keeps bookkeeping from costing as much as the dot products.
    fn floor(&self) -> f32;
    /// Considers base row `base_index` with similarity `score`.
    fn offer(&mut self, base_index: usize, score: f32);
}

/// Ranking of neighbours: higher score first, equal scores by lower index first.
pub(super) fn better_first(a: &(usize, f32), b: &(usize, f32)) -> std::cmp::Ordering {
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
pub(super) struct Best {
    k: usize,
    items: Vec<(usize, f32)>,
    /// Score of the k-th best at the last cut: anything at or below it cannot make the final `k`
    /// (on an equal score the kept pair has the lower index, because offers come in index order).
    pub(super) floor: f32,
}

impl Best {
    pub(super) fn new(k: usize) -> Self {
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
    pub(super) fn offer(&mut self, index: usize, score: f32) {
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
    pub(super) fn into_sorted(mut self) -> Vec<(usize, f32)> {
        self.cut();
        self.items.sort_unstable_by(better_first);
        self.items
    }
}

/// The plain nearest-neighbour collector behind [`super::top_k`].
pub(super) struct Nearest {
    /// The query's own index, skipped when the queries are the base set.
    pub(super) skip: Option<usize>,
    pub(super) best: Best,
}

impl Nearest {
    /// The best `k` rows, never row `skip`.
    pub(super) fn new(skip: Option<usize>, k: usize) -> Self {
        Self {
            skip,
            best: Best::new(k),
        }
    }
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
pub(super) fn scan<C: Collector>(queries: Embeddings, base: Embeddings, collectors: &mut [C]) {
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
        score_tile::<Q, C, FMA>(&qs, &tile_panels, first_row, rows, collectors);
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
    let mut masks = [[0u32; P]; Q];
    for ((collector, panels), masks) in collectors.iter().zip(scores).zip(&mut masks) {
        // The floor only rises as rows are accepted, so a stale one merely lets extra scores reach
        // `offer`, which checks again.
        let floor = collector.floor();
        for (lanes, mask) in panels.iter().zip(masks) {
            // One bit per lane above the floor, built without branches; once a query has seen a
            // few hundred rows nearly every panel yields 0.
            *mask = lanes.iter().enumerate().fold(0u32, |bits, (lane, &s)| {
                bits | (u32::from(s > floor) << lane)
            });
        }
    }
    offer_above(scores, &masks, first_row, rows, collectors);
}

/// Offers each query's collector the lanes its mask sets (one bit per lane above its floor).
#[inline(always)]
fn offer_above<const Q: usize, const P: usize, C: Collector>(
    scores: &[[[f32; PANEL]; P]; Q],
    masks: &[[u32; P]; Q],
    first_row: usize,
    rows: usize,
    collectors: &mut [C],
) {
    for ((collector, panels), masks) in collectors.iter_mut().zip(scores).zip(masks) {
        for (p, (lanes, &mask)) in panels.iter().zip(masks).enumerate() {
            // Visiting only the set bits avoids a hard-to-predict branch per lane while the floor
            // is still low, which matters for large k.
            let mut above = mask;
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

/// Scores a full tile, `Q` queries against [`PANEL_TILE`] panels, and delivers them: on the FMA
/// path by [`tile_dots_avx2`], which also compares them with the floors in its registers.
#[inline(always)]
fn score_tile<const Q: usize, C: Collector, const FMA: bool>(
    qs: &[&[f32]; Q],
    panels: &[&[[f32; PANEL]]; PANEL_TILE],
    first_row: usize,
    rows: usize,
    collectors: &mut [C],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA && Q == QUERY_TILE {
        let mut scores = [[[0.0f32; PANEL]; PANEL_TILE]; Q];
        let mut masks = [[0u32; PANEL_TILE]; Q];
        let mut floors = [0.0f32; QUERY_TILE];
        for (floor, collector) in floors.iter_mut().zip(collectors.iter()) {
            *floor = collector.floor();
        }
        // SAFETY: the FMA kernels run only once `scan_chunk` found AVX2 and FMA.
        unsafe {
            tile_dots_avx2(
                qs,
                panels,
                &floors,
                scores.as_flattened_mut(),
                masks.as_flattened_mut(),
            )
        };
        offer_above(&scores, &masks, first_row, rows, collectors);
        return;
    }
    let scores = panel_dots::<Q, PANEL_TILE, FMA>(qs, panels);
    deliver(&scores, first_row, rows, collectors);
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

/// Base rows one parallel task scores for a single query: a million rows make 61 tasks.
const ROW_CHUNK: usize = 16 * 1024;

/// The best `k` base rows for one query (`skip` excluded), best first: what [`scan`] with one
/// collector would return, with the same scores.
///
/// One query reads every base row once, so packing the base into panels (a full copy: 512 MB at a
/// million 128-d rows) would cost more than the scores, and one query would be one task. Instead
/// the base rows are scored where they lie, in parallel chunks, `PANEL` rows at a time, each score
/// summed in dimension order with the scan's multiply-adds; each chunk keeps its best `k`, and the
/// merge keeps the best of those under the same ranking, so the answer equals one sequential pass.
pub(super) fn nearest_one(
    query: &[f32],
    base: Embeddings,
    k: usize,
    skip: Option<usize>,
) -> Vec<(usize, f32)> {
    debug_assert_eq!(query.len(), base.dim());
    let dim = base.dim();
    let mut merged: Vec<(usize, f32)> = base
        .data()
        .par_chunks(ROW_CHUNK * dim)
        .enumerate()
        .flat_map_iter(|(chunk, rows)| {
            let mut nearest = Nearest::new(skip, k);
            score_rows(query, rows, chunk * ROW_CHUNK, &mut nearest);
            nearest.best.into_sorted()
        })
        .collect();
    merged.sort_unstable_by(better_first);
    merged.truncate(k);
    merged
}

/// Offers `collector` the score of `query` against each row of `rows` (row-major, the first
/// numbered `first_row`), with the multiply-adds [`scan_chunk`] chooses for this CPU.
fn score_rows<C: Collector>(query: &[f32], rows: &[f32], first_row: usize, collector: &mut C) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: `score_rows_avx2` only requires AVX2 and FMA, both checked just above.
        unsafe { score_rows_avx2(query, rows, first_row, collector) };
        return;
    }
    score_rows_portable::<C, false>(query, rows, first_row, collector);
}

/// `PANEL` rows at a time, transposed into one panel on the stack (4 KiB at 128-d, so it stays in
/// L1) and scored by the scan's own [`panel_dots`]: the same instructions in the same order, so
/// the same scores, without a packed copy of the whole base.
#[inline(always)]
fn score_rows_portable<C: Collector, const FMA: bool>(
    query: &[f32],
    rows: &[f32],
    first_row: usize,
    collector: &mut C,
) {
    let dim = query.len();
    let end = first_row + rows.len() / dim;
    let mut panel = vec![[0.0f32; PANEL]; dim];
    for (g, group) in rows.chunks(PANEL * dim).enumerate() {
        for (lane, row) in group.chunks_exact(dim).enumerate() {
            for (slot, &v) in panel.iter_mut().zip(row) {
                slot[lane] = v;
            }
        }
        // A short last group leaves earlier rows' values in its unused lanes; `deliver` never
        // offers a lane at or past `end`.
        let scores = panel_dots::<1, 1, FMA>(&[query], &[&panel]);
        deliver(
            &scores,
            first_row + g * PANEL,
            end,
            std::slice::from_mut(collector),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::random_unit_rows;
    use crate::eval::testing::{brute_top_k, emb};

    #[test]
    fn portable_kernel_is_bit_identical_to_sequential_dot() {
        // The SSE2 fallback sums in dimension order, exactly like `dot`: check it directly, since
        // an AVX2 machine never reaches it through `top_k`.
        let (dim, n, nq) = (13, 45, 7);
        let base_data = random_unit_rows(n, dim, 3);
        let query_data = random_unit_rows(nq, dim, 4);
        let (base, queries) = (emb(&base_data, dim), emb(&query_data, dim));
        let panels = pack_panels(base);
        let mut collectors: Vec<Nearest> = (0..nq).map(|_| Nearest::new(None, n)).collect();
        scan_chunk_portable::<Nearest, false>(queries, 0, &panels, n, &mut collectors);
        let slow = brute_top_k(queries, base, n, false);
        for (c, s) in collectors.into_iter().zip(&slow) {
            assert_eq!(&c.best.into_sorted(), s);
        }
    }

    #[test]
    fn one_query_over_rows_matches_the_packed_scan_exactly() {
        // Two row chunks and a short last group of rows, with ties (a repeated row) and a skip.
        let dim = 19;
        let n = ROW_CHUNK + 21;
        let mut data = random_unit_rows(n, dim, 8);
        let copy = data[5 * dim..6 * dim].to_vec();
        data[(ROW_CHUNK + 3) * dim..(ROW_CHUNK + 4) * dim].copy_from_slice(&copy);
        let base = emb(&data, dim);
        for (query, skip, k) in [(5, Some(5), 7), (ROW_CHUNK + 20, None, 3), (9, None, n + 5)] {
            let q = emb(base.row(query), dim);
            let mut packed = [Nearest::new(skip, k.min(n))];
            scan(q, base, &mut packed);
            let [packed] = packed;
            assert_eq!(
                nearest_one(base.row(query), base, k.min(n), skip),
                packed.best.into_sorted()
            );
        }
    }

    #[test]
    fn the_avx2_kernels_score_exactly_as_the_portable_kernel_with_fma() {
        // Where the CPU has AVX2 and FMA, `scan` runs the intrinsic kernels; the portable kernel
        // with `mul_add` must give the very same scores (and so the same neighbours and ties).
        #[cfg(target_arch = "x86_64")]
        let kernels = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let kernels = false;
        if !kernels {
            return crate::skip::because("no AVX2 and FMA: the scan runs the portable kernel");
        }
        let (dim, n, nq) = (24, 101, 13);
        let base_data = random_unit_rows(n, dim, 5);
        let query_data = random_unit_rows(nq, dim, 6);
        let (base, queries) = (emb(&base_data, dim), emb(&query_data, dim));
        let fresh = || -> Vec<Nearest> { (0..nq).map(|_| Nearest::new(None, n)).collect() };
        let mut portable = fresh();
        scan_chunk_portable::<Nearest, true>(queries, 0, &pack_panels(base), n, &mut portable);
        let mut scanned = fresh();
        scan(queries, base, &mut scanned);
        for (a, b) in portable.into_iter().zip(scanned) {
            assert_eq!(a.best.into_sorted(), b.best.into_sorted());
        }
    }
}
