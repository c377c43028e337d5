//! The scan's kernels for x86-64 with AVX2 and FMA, written with intrinsics (and one load as
//! assembly): the engine builds at `opt-level = 1` in development, where the portable kernels'
//! loops stay scalar and their accumulators in memory, several times slower than what a release
//! build makes of them. Each sums every score in dimension order with one fused multiply-add a
//! dimension, so their scores are the portable kernels' with FMA, bit for bit (the scan's tests
//! compare them).

use super::{Collector, PANEL, PANEL_TILE, QUERY_TILE, deliver, score_rows_portable};

/// Panels of rows [`score_rows_avx2`] gathers at once.
const GATHER_GROUPS: usize = 4;
/// Eight unaligned `f32`s from `from`, as one `vmovups`. In a development build
/// `_mm256_loadu_ps` is a checked copy through the stack (three times the instructions of the
/// multiply-adds it feeds); this is the instruction it stands for.
///
/// # Safety
/// `from` must point at eight readable `f32`s.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load8(from: *const f32) -> std::arch::x86_64::__m256 {
    let loaded;
    // SAFETY: the caller's; the instruction reads 32 bytes at `from` and touches nothing else.
    unsafe {
        std::arch::asm!(
            "vmovups {out}, ymmword ptr [{from}]",
            from = in(reg) from,
            out = out(ymm_reg) loaded,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    loaded
}

/// [`panel_dots`] with FMA for [`QUERY_TILE`] queries and [`PANEL_TILE`] panels, written with
/// intrinsics and one named accumulator per query and panel: the engine builds at
/// `opt-level = 1` in development, where the portable loop's accumulators stay in memory and its
/// multiply-adds scalar (8 times slower). Each lane still sums its row in dimension order with
/// one fused multiply-add a dimension, so the scores are the portable kernel's. `out` is
/// `[query][panel]`, flattened.
#[target_feature(enable = "avx2,fma")]
pub(super) fn tile_dots_avx2(
    qs: &[&[f32]],
    panels: &[&[[f32; PANEL]]; PANEL_TILE],
    floors: &[f32; QUERY_TILE],
    out: &mut [[f32; PANEL]],
    masks: &mut [u32],
) {
    use std::arch::x86_64::{
        _CMP_GT_OQ, _mm256_broadcast_ss, _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_movemask_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    const _: () = assert!(QUERY_TILE == 4 && PANEL_TILE == 2);
    let dim = qs[0].len();
    assert!(qs.len() == QUERY_TILE && qs.iter().all(|q| q.len() == dim));
    assert!(panels.iter().all(|p| p.len() == dim) && out.len() == QUERY_TILE * PANEL_TILE);
    assert_eq!(masks.len(), out.len());
    let (p0, p1) = (
        panels[0].as_ptr().cast::<f32>(),
        panels[1].as_ptr().cast::<f32>(),
    );
    let [q0, q1, q2, q3] = [0, 1, 2, 3].map(|q| qs[q].as_ptr());
    let [
        mut a00,
        mut a01,
        mut a10,
        mut a11,
        mut a20,
        mut a21,
        mut a30,
        mut a31,
    ] = [_mm256_setzero_ps(); 8];
    // Raw pointers and a plain counter: at `opt-level = 1` slices' bounds and iterators' state
    // cost more instructions than the eight multiply-adds a step.
    // (`wrapping_add`, not `add`: development builds check every `add` for overflow.)
    let mut d = 0;
    while d < dim {
        // SAFETY: `d < dim`; each query holds `dim` values and each panel `dim` groups of PANEL.
        unsafe {
            let c0 = load8(p0.wrapping_add(d * PANEL));
            let c1 = load8(p1.wrapping_add(d * PANEL));
            let x0 = _mm256_broadcast_ss(&*q0.wrapping_add(d));
            a00 = _mm256_fmadd_ps(x0, c0, a00);
            a01 = _mm256_fmadd_ps(x0, c1, a01);
            let x1 = _mm256_broadcast_ss(&*q1.wrapping_add(d));
            a10 = _mm256_fmadd_ps(x1, c0, a10);
            a11 = _mm256_fmadd_ps(x1, c1, a11);
            let x2 = _mm256_broadcast_ss(&*q2.wrapping_add(d));
            a20 = _mm256_fmadd_ps(x2, c0, a20);
            a21 = _mm256_fmadd_ps(x2, c1, a21);
            let x3 = _mm256_broadcast_ss(&*q3.wrapping_add(d));
            a30 = _mm256_fmadd_ps(x3, c0, a30);
            a31 = _mm256_fmadd_ps(x3, c1, a31);
        }
        d += 1;
    }
    let accumulators = [a00, a01, a10, a11, a20, a21, a30, a31];
    for (k, (slot, acc)) in out.iter_mut().zip(accumulators).enumerate() {
        // SAFETY: each slot holds exactly the 8 values stored.
        unsafe { _mm256_storeu_ps(slot.as_mut_ptr(), acc) };
        let floor = _mm256_set1_ps(floors[k / PANEL_TILE]);
        // One bit per lane above the floor (`deliver`'s masks, without a loop over lanes).
        masks[k] = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(acc, floor)) as u32;
    }
}

/// [`score_rows_portable`] with FMA, `PANEL` rows at a time by gathers: lane `l` of each gather is
/// row `l`'s value in dimension `d`, so each lane sums its row in dimension order with the
/// multiply-adds [`panel_dots`] uses (the same scores), without transposing the rows first. Written
/// with intrinsics because the engine builds at `opt-level = 1` in development, where the portable
/// loops stay scalar.
#[target_feature(enable = "avx2,fma")]
pub(super) fn score_rows_avx2<C: Collector>(
    query: &[f32],
    rows: &[f32],
    first_row: usize,
    collector: &mut C,
) {
    use std::arch::x86_64::{
        _MM_HINT_T0, _mm_prefetch, _mm256_fmadd_ps, _mm256_i32gather_ps, _mm256_set1_ps,
        _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let dim = query.len();
    let end = first_row + rows.len() / dim;
    // Row offsets within a group, in values; 7 rows of any real embedding fit an i32.
    let stride = i32::try_from(dim).expect("an embedding row fits an i32 offset");
    let offsets = _mm256_setr_epi32(
        0,
        stride,
        2 * stride,
        3 * stride,
        4 * stride,
        5 * stride,
        6 * stride,
        7 * stride,
    );
    // Four groups at once: four independent chains of multiply-adds keep the FMA units busy where
    // one chain would wait on each result.
    let mut start = 0;
    for quad in rows.chunks_exact(GATHER_GROUPS * PANEL * dim) {
        let mut acc = [_mm256_setzero_ps(); GATHER_GROUPS];
        // The next rows, asked for while these are scored (two cache lines a dimension covers
        // 32 rows of 128 values): the gathers read 32 rows at once, more streams than the
        // hardware prefetcher follows.
        let next = quad.as_ptr_range().end;
        for (d, &x) in query.iter().enumerate() {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(32 * d).cast());
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(32 * d + 16).cast());
            let x = _mm256_set1_ps(x);
            for (a, acc) in acc.iter_mut().enumerate() {
                // SAFETY: the largest offset read is (a * PANEL + 7) * dim + d < quad.len().
                let column = unsafe {
                    _mm256_i32gather_ps::<4>(quad.as_ptr().add(a * PANEL * dim + d), offsets)
                };
                *acc = _mm256_fmadd_ps(x, column, *acc);
            }
        }
        let mut lanes = [[0.0f32; PANEL]; GATHER_GROUPS];
        for (lanes, acc) in lanes.iter_mut().zip(acc) {
            // SAFETY: `lanes` holds exactly the 8 values stored.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        }
        deliver(
            &[lanes],
            first_row + start,
            end,
            std::slice::from_mut(collector),
        );
        start += GATHER_GROUPS * PANEL;
    }
    score_rows_portable::<C, true>(query, &rows[start * dim..], first_row + start, collector);
}
