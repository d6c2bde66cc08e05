//! The power step's two products on `M = delta + error` (summed where it is read: `M` is
//! never stored): `P = M @ Q` as dot products along the rows of `M`, and `M^T @ P` as sums
//! down its columns.
//!
//! Each entry of `M @ Q` is defined as sixteen chains of fused multiply-adds, chain `l`
//! taking the columns `j` with `j % 16 == l` in order from `+0`, then added pairwise: lane
//! `l` to lane `l + 8`, those to `l + 4`, then `l + 2`, then `l + 1`. Each entry of `M^T @ P`
//! is one chain over the rows, in order, from `+0`. Every level (`lanes.rs`) computes exactly
//! those operations, so they write the same bits; only how many chains advance together
//! differs. Reading `M` along its rows needs no transpose: a product's cost is one pass over
//! `M` and a few additions per entry.

use crate::lanes::{Lanes, Scalar};
use crate::levels::Level;
use crate::lowrank::{all_finite, Sum};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::lanes::x86::{Avx2, Avx512};
    use crate::lowrank::Sum;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn project_avx2(source: Sum<'_>, q_t: &[f32], rank: usize, out: &mut [f32]) {
        super::project_groups::<Avx2, false>(source, q_t, rank, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn combine_avx2(source: Sum<'_>, p: &[f32], rank: usize, out_t: &mut [f32]) {
        super::combine_groups::<Avx2, false>(source, p, rank, out_t)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn combine_avx512(source: Sum<'_>, p: &[f32], rank: usize, out_t: &mut [f32]) {
        super::combine_groups::<Avx512, true>(source, p, rank, out_t)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn project_avx512(source: Sum<'_>, q_t: &[f32], rank: usize, out: &mut [f32]) {
        super::project_groups::<Avx512, true>(source, q_t, rank, out)
    }
}

/// `P = (delta + error) @ Q` (`rows x rank`) from `q_t`, `Q` transposed (`rank x cols`);
/// None where a value of `P` is not finite. That is so wherever a value of the sum is not
/// finite (a value of `delta` is not, or the sum overflows): an infinity or a NaN makes its
/// chain infinite or NaN (times 0 too), which every later addition keeps, so the sum is
/// checked in the few values of `P` rather than in every value of `M`.
pub fn project_sum(source: Sum<'_>, q_t: &[f32], rank: usize) -> Option<Vec<f32>> {
    let (rows, cols) = (source.rows, source.cols);
    assert!(source.delta.len() >= rows * cols && source.error.len() >= rows * cols);
    assert!(q_t.len() >= rank * cols);
    let mut out = vec![0f32; rows * rank];
    // SAFETY: the level is supported where it is current; the kernels read `rows * cols`
    // values of each of `source`'s arrays and `rank * cols` of `q_t` and write `rows * rank`
    // of `out` (all asserted above).
    unsafe {
        match Level::current() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::project_avx512(source, q_t, rank, &mut out),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::project_avx2(source, q_t, rank, &mut out),
            _ => project_groups::<Scalar, false>(source, q_t, rank, &mut out),
        }
    }
    all_finite(&out).then_some(out)
}

/// How many of the `left` columns of `P` (or of `M^T @ P`) a product takes in its next pass
/// over `M`: eight where `wide` (AVX-512's 32 registers hold a rank-8 group's chains), else
/// up to four.
#[inline(always)]
fn group_size(left: usize, wide: bool) -> usize {
    match left {
        8.. if wide => 8,
        _ => left.min(4),
    }
}

/// Up to four columns of `P` at a time (eight where AVX-512's 32 registers hold their
/// chains), several rows at a time (more where a group has fewer columns): independent
/// chains in flight, and `M` read once per group.
#[inline(always)]
unsafe fn project_groups<V: Lanes, const WIDE: bool>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    out: &mut [f32],
) {
    let mut first = 0;
    while first < rank {
        let columns = group_size(rank - first, WIDE);
        match (columns, WIDE) {
            (1, true) => project_block::<V, 1, 8>(source, q_t, rank, first, out),
            (2, true) => project_block::<V, 2, 8>(source, q_t, rank, first, out),
            (3, true) => project_block::<V, 3, 4>(source, q_t, rank, first, out),
            (4, true) => project_block::<V, 4, 4>(source, q_t, rank, first, out),
            (_, true) => project_block::<V, 8, 2>(source, q_t, rank, first, out),
            (1, false) => project_block::<V, 1, 2>(source, q_t, rank, first, out),
            (2, false) => project_block::<V, 2, 1>(source, q_t, rank, first, out),
            (3, false) => project_block::<V, 3, 1>(source, q_t, rank, first, out),
            (_, false) => project_block::<V, 4, 1>(source, q_t, rank, first, out),
        }
        first += columns;
    }
}

#[inline(always)]
unsafe fn project_block<V: Lanes, const R: usize, const B: usize>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    first: usize,
    out: &mut [f32],
) {
    let whole_rows = source.rows - source.rows % B;
    for i0 in (0..whole_rows).step_by(B) {
        project_rows::<V, R, B>(source, q_t, rank, first, i0, out);
    }
    for i in whole_rows..source.rows {
        project_rows::<V, R, 1>(source, q_t, rank, first, i, out);
    }
}

/// `delta + error` at `offset`: 16 values, or `count` of them with the other lanes 0.
#[inline(always)]
unsafe fn sum_lanes<V: Lanes>(source: Sum<'_>, offset: usize, count: usize) -> V {
    let delta = source.delta.as_ptr().add(offset);
    let error = source.error.as_ptr().add(offset);
    if count == 16 {
        V::load(delta).plus(V::load(error))
    } else {
        V::load_partial(delta, count).plus(V::load_partial(error, count))
    }
}

/// Entries `first..first + R` of rows `i0..i0 + B`.
#[inline(always)]
unsafe fn project_rows<V: Lanes, const R: usize, const B: usize>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    first: usize,
    i0: usize,
    out: &mut [f32],
) {
    let cols = source.cols;
    let whole = cols - cols % 16;
    let factor = q_t.as_ptr().add(first * cols);
    let mut sums = [[V::zero(); R]; B];
    for start in (0..whole).step_by(16) {
        let q: [V; R] = std::array::from_fn(|k| V::load(factor.add(k * cols + start)));
        project_step::<V, R, B>(source, i0, start, 16, &q, &mut sums);
    }
    if whole < cols {
        let count = cols - whole;
        let q: [V; R] =
            std::array::from_fn(|k| V::load_partial(factor.add(k * cols + whole), count));
        project_step::<V, R, B>(source, i0, whole, count, &q, &mut sums);
    }
    for (b, row_sums) in sums.iter().enumerate() {
        for (k, lanes) in row_sums.iter().enumerate() {
            out[(i0 + b) * rank + first + k] = lanes.sum();
        }
    }
}

/// One group of 16 columns from `start` (`count` of them) of rows `i0..i0 + B`. A function,
/// not a closure: a closure would not take its caller's target features, nor inline.
#[inline(always)]
unsafe fn project_step<V: Lanes, const R: usize, const B: usize>(
    source: Sum<'_>,
    i0: usize,
    start: usize,
    count: usize,
    q: &[V; R],
    sums: &mut [[V; R]; B],
) {
    for (b, row_sums) in sums.iter_mut().enumerate() {
        let x: V = sum_lanes(source, (i0 + b) * source.cols + start, count);
        for k in 0..R {
            row_sums[k] = row_sums[k].fused(x, q[k]);
        }
    }
}

/// `out_t = (M^T @ P)^T` (`rank x cols`) for `P` (`rows x rank`): entry `[k][j]` is one chain
/// of fused multiply-adds of `P[i][k] * M[i][j]` over the rows `i`, in order, from `+0`.
pub fn combine_rows(source: Sum<'_>, p: &[f32], rank: usize, out_t: &mut [f32]) {
    let (rows, cols) = (source.rows, source.cols);
    assert!(source.delta.len() >= rows * cols && source.error.len() >= rows * cols);
    assert!(p.len() >= rows * rank && out_t.len() >= rank * cols);
    // SAFETY: as in [`project_sum`]: the sizes are asserted above.
    unsafe {
        match Level::current() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::combine_avx512(source, p, rank, out_t),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::combine_avx2(source, p, rank, out_t),
            _ => combine_groups::<Scalar, false>(source, p, rank, out_t),
        }
    }
}

/// Up to four outputs at a time (eight on AVX-512's 32 registers), several blocks of 16
/// columns at a time: as many independent chains as the registers hold, so that a fused
/// multiply-add seldom waits on the one before it, and `M` is read once per group.
#[inline(always)]
unsafe fn combine_groups<V: Lanes, const WIDE: bool>(
    source: Sum<'_>,
    p: &[f32],
    rank: usize,
    out_t: &mut [f32],
) {
    let mut first = 0;
    while first < rank {
        let outputs = group_size(rank - first, WIDE);
        match (outputs, WIDE) {
            (1, true) => combine_block::<V, 1, 8>(source, p, rank, first, out_t),
            (2, true) => combine_block::<V, 2, 4>(source, p, rank, first, out_t),
            (3, true) => combine_block::<V, 3, 4>(source, p, rank, first, out_t),
            (4, true) => combine_block::<V, 4, 4>(source, p, rank, first, out_t),
            (_, true) => combine_block::<V, 8, 2>(source, p, rank, first, out_t),
            (1, false) => combine_block::<V, 1, 4>(source, p, rank, first, out_t),
            (2, false) => combine_block::<V, 2, 2>(source, p, rank, first, out_t),
            (3, false) => combine_block::<V, 3, 1>(source, p, rank, first, out_t),
            (_, false) => combine_block::<V, 4, 1>(source, p, rank, first, out_t),
        }
        first += outputs;
    }
}

/// Outputs `first..first + R`, `C` blocks of 16 columns at a time, then single blocks, then
/// a last partial block.
#[inline(always)]
unsafe fn combine_block<V: Lanes, const R: usize, const C: usize>(
    source: Sum<'_>,
    p: &[f32],
    rank: usize,
    first: usize,
    out_t: &mut [f32],
) {
    let cols = source.cols;
    let wide = cols - cols % (16 * C);
    let whole = cols - cols % 16;
    for start in (0..wide).step_by(16 * C) {
        combine_span::<V, R, C>(source, p, rank, first, start, 16, out_t);
    }
    for start in (wide..whole).step_by(16) {
        combine_span::<V, R, 1>(source, p, rank, first, start, 16, out_t);
    }
    if whole < cols {
        combine_span::<V, R, 1>(source, p, rank, first, whole, cols - whole, out_t);
    }
}

/// Columns from `start` (`C` blocks of 16, or one of `count` < 16) of outputs
/// `first..first + R`, their sums held in registers down all the rows.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // each block's values, read once, feed every output
unsafe fn combine_span<V: Lanes, const R: usize, const C: usize>(
    source: Sum<'_>,
    p: &[f32],
    rank: usize,
    first: usize,
    start: usize,
    count: usize,
    out_t: &mut [f32],
) {
    let cols = source.cols;
    let mut sums = [[V::zero(); C]; R];
    for i in 0..source.rows {
        let mut weights = [V::zero(); R];
        for (k, weight) in weights.iter_mut().enumerate() {
            *weight = V::splat(p[i * rank + first + k]);
        }
        for c in 0..C {
            let x: V = sum_lanes(source, i * cols + start + 16 * c, count);
            for k in 0..R {
                sums[k][c] = sums[k][c].fused(weights[k], x);
            }
        }
    }
    for (k, output_sums) in sums.iter().enumerate() {
        for (c, sum) in output_sums.iter().enumerate() {
            let to = out_t.as_mut_ptr().add((first + k) * cols + start + 16 * c);
            if count == 16 {
                sum.store(to);
            } else {
                sum.store_partial(to, count);
            }
        }
    }
}
