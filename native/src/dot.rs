//! The power step's first product, `P = M @ Q`, as dot products along the rows of
//! `M = delta + error` (summed where it is read: `M` is never stored), and the rebuild
//! `P @ Q^T`, alone or as what is still owed.
//!
//! Each entry is defined as sixteen chains of fused multiply-adds, chain `l` taking the
//! columns `j` with `j % 16 == l` in order from `+0`, then added pairwise: lane `l` to lane
//! `l + 8`, those to `l + 4`, then `l + 2`, then `l + 1`. That is one AVX-512 register, two
//! AVX2 registers or sixteen scalars, and each level computes exactly those operations, so
//! they write the same bits. Reading `M` along its rows needs no transpose: a product's
//! cost is one pass over `M` and a few additions per entry.

use crate::levels::Level;
use crate::lowrank::{Matrix, Sum};

/// Sixteen float32 lanes and the operations a dot product needs.
trait Lanes: Copy {
    /// # Safety
    /// The level this type stands for is supported (as for every method here).
    unsafe fn zero() -> Self;
    /// # Safety
    /// `from` points at 16 readable float32 values.
    unsafe fn load(from: *const f32) -> Self;
    /// # Safety
    /// `from` points at `count` (< 16) readable float32 values; the other lanes are 0.
    unsafe fn load_partial(from: *const f32, count: usize) -> Self;
    /// # Safety
    /// `to` points at 16 writable float32 values.
    unsafe fn store(self, to: *mut f32);
    /// # Safety
    /// `to` points at `count` (< 16) writable float32 values, the first lanes' place.
    unsafe fn store_partial(self, to: *mut f32, count: usize);
    /// `value` in every lane.
    unsafe fn splat(value: f32) -> Self;
    /// `self - other` in every lane.
    unsafe fn minus(self, other: Self) -> Self;
    /// `self + other` in every lane.
    unsafe fn plus(self, other: Self) -> Self;
    /// `self + a * b` in every lane, rounded once.
    unsafe fn fused(self, a: Self, b: Self) -> Self;
    /// The lanes added in the pairwise order of the module's definition.
    unsafe fn sum(self) -> f32;
    /// A hint that the line holding `at` is about to be written (no effect on any value).
    #[inline(always)]
    unsafe fn prefetch_for_write(_at: *const f32) {}
}

#[derive(Clone, Copy)]
struct Scalar([f32; 16]);

impl Lanes for Scalar {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar([0.0; 16])
    }
    #[inline(always)]
    unsafe fn load(from: *const f32) -> Self {
        Scalar(std::array::from_fn(|l| *from.add(l)))
    }
    #[inline(always)]
    unsafe fn load_partial(from: *const f32, count: usize) -> Self {
        Scalar(std::array::from_fn(|l| {
            if l < count {
                *from.add(l)
            } else {
                0.0
            }
        }))
    }
    #[inline(always)]
    unsafe fn store(self, to: *mut f32) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr(), to, 16);
    }
    #[inline(always)]
    unsafe fn store_partial(self, to: *mut f32, count: usize) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr(), to, count);
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        Scalar([value; 16])
    }
    #[inline(always)]
    unsafe fn minus(self, other: Self) -> Self {
        Scalar(std::array::from_fn(|l| self.0[l] - other.0[l]))
    }
    #[inline(always)]
    unsafe fn plus(self, other: Self) -> Self {
        Scalar(std::array::from_fn(|l| self.0[l] + other.0[l]))
    }
    #[inline(always)]
    unsafe fn fused(self, a: Self, b: Self) -> Self {
        Scalar(std::array::from_fn(|l| a.0[l].mul_add(b.0[l], self.0[l])))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        let mut lanes = self.0;
        for width in [8, 4, 2, 1] {
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
        }
        lanes[0]
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// The last three steps of the pairwise sum, from eight lanes.
    #[inline(always)]
    unsafe fn sum8(eight: __m256) -> f32 {
        let four = _mm_add_ps(
            _mm256_castps256_ps128(eight),
            _mm256_extractf128_ps::<1>(eight),
        );
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps::<0x55>(two, two)))
    }

    #[derive(Clone, Copy)]
    pub struct Avx2(__m256, __m256);

    impl Lanes for Avx2 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2(_mm256_setzero_ps(), _mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            Avx2(_mm256_loadu_ps(from), _mm256_loadu_ps(from.add(8)))
        }
        #[inline(always)]
        unsafe fn load_partial(from: *const f32, count: usize) -> Self {
            let mut padded = [0f32; 16];
            std::ptr::copy_nonoverlapping(from, padded.as_mut_ptr(), count);
            Self::load(padded.as_ptr())
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            _mm256_storeu_ps(to, self.0);
            _mm256_storeu_ps(to.add(8), self.1);
        }
        #[inline(always)]
        unsafe fn store_partial(self, to: *mut f32, count: usize) {
            let mut lanes = [0f32; 16];
            self.store(lanes.as_mut_ptr());
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), to, count);
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            Avx2(_mm256_set1_ps(value), _mm256_set1_ps(value))
        }
        #[inline(always)]
        unsafe fn minus(self, other: Self) -> Self {
            Avx2(
                _mm256_sub_ps(self.0, other.0),
                _mm256_sub_ps(self.1, other.1),
            )
        }
        #[inline(always)]
        unsafe fn plus(self, other: Self) -> Self {
            Avx2(
                _mm256_add_ps(self.0, other.0),
                _mm256_add_ps(self.1, other.1),
            )
        }
        #[inline(always)]
        unsafe fn fused(self, a: Self, b: Self) -> Self {
            Avx2(
                _mm256_fmadd_ps(a.0, b.0, self.0),
                _mm256_fmadd_ps(a.1, b.1, self.1),
            )
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            sum8(_mm256_add_ps(self.0, self.1))
        }
        #[inline(always)]
        unsafe fn prefetch_for_write(at: *const f32) {
            _mm_prefetch::<_MM_HINT_ET0>(at as *const i8);
        }
    }

    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    impl Lanes for Avx512 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(from))
        }
        #[inline(always)]
        unsafe fn load_partial(from: *const f32, count: usize) -> Self {
            Avx512(_mm512_maskz_loadu_ps(
                ((1u32 << count) - 1) as __mmask16,
                from,
            ))
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            _mm512_storeu_ps(to, self.0);
        }
        #[inline(always)]
        unsafe fn store_partial(self, to: *mut f32, count: usize) {
            _mm512_mask_storeu_ps(to, ((1u32 << count) - 1) as __mmask16, self.0);
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            Avx512(_mm512_set1_ps(value))
        }
        #[inline(always)]
        unsafe fn minus(self, other: Self) -> Self {
            Avx512(_mm512_sub_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn plus(self, other: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn fused(self, a: Self, b: Self) -> Self {
            Avx512(_mm512_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            sum8(_mm256_add_ps(_mm512_castps512_ps256(self.0), high))
        }
        #[inline(always)]
        unsafe fn prefetch_for_write(at: *const f32) {
            _mm_prefetch::<_MM_HINT_ET0>(at as *const i8);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn project_avx2(
        source: super::Sum<'_>,
        q_t: &[f32],
        rank: usize,
        out: &mut [f32],
    ) -> bool {
        super::project_groups::<Avx2, false>(source, q_t, rank, out)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rebuild_avx2(
        p: &[f32],
        q_t: &[f32],
        rows: usize,
        cols: usize,
        rank: usize,
        delta: Option<&[f32]>,
        out: &mut [f32],
    ) {
        super::rebuild_blocks::<Avx2, 2, 2>(p, q_t, rows, cols, rank, delta, out)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn rebuild_avx512(
        p: &[f32],
        q_t: &[f32],
        rows: usize,
        cols: usize,
        rank: usize,
        delta: Option<&[f32]>,
        out: &mut [f32],
    ) {
        super::rebuild_blocks::<Avx512, 2, 4>(p, q_t, rows, cols, rank, delta, out)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn project_avx512(
        source: super::Sum<'_>,
        q_t: &[f32],
        rank: usize,
        out: &mut [f32],
    ) -> bool {
        super::project_groups::<Avx512, true>(source, q_t, rank, out)
    }
}

/// `P = (delta + error) @ Q` (`rows x rank`) from `q_t`, `Q` transposed (`rank x cols`);
/// None where a value of the sum is not finite (a value of `delta` is not, or the sum
/// overflows).
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
    .then_some(out)
}

/// Up to four columns of `P` at a time, several rows at a time (more where a group has
/// fewer columns, and on AVX-512's 32 registers): independent chains in flight. The first
/// group checks that every sum is finite. False where one is not.
#[inline(always)]
unsafe fn project_groups<V: Lanes, const WIDE: bool>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    out: &mut [f32],
) -> bool {
    let mut finite = true;
    let mut first = 0;
    while first < rank {
        let checking = first == 0;
        macro_rules! block {
            ($r:literal, $wide:literal, $narrow:literal) => {
                match (checking, WIDE) {
                    (true, true) => {
                        project_block::<V, $r, $wide, true>(source, q_t, rank, first, out)
                    }
                    (true, false) => {
                        project_block::<V, $r, $narrow, true>(source, q_t, rank, first, out)
                    }
                    (false, true) => {
                        project_block::<V, $r, $wide, false>(source, q_t, rank, first, out)
                    }
                    (false, false) => {
                        project_block::<V, $r, $narrow, false>(source, q_t, rank, first, out)
                    }
                }
            };
        }
        finite &= match rank - first {
            1 => block!(1, 4, 2),
            2 => block!(2, 4, 1),
            3 => block!(3, 2, 1),
            _ => block!(4, 2, 1),
        };
        first += (rank - first).min(4);
    }
    finite
}

#[inline(always)]
unsafe fn project_block<V: Lanes, const R: usize, const B: usize, const CHECK: bool>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    first: usize,
    out: &mut [f32],
) -> bool {
    // x - x is 0 for a finite x and NaN otherwise: one sum per row of the block stays 0
    // exactly when every value it saw is finite.
    let mut checks = [V::zero(); B];
    let whole_rows = source.rows - source.rows % B;
    for i0 in (0..whole_rows).step_by(B) {
        project_rows::<V, R, B, CHECK>(source, q_t, rank, first, i0, out, &mut checks);
    }
    let mut last = [V::zero(); 1];
    for i in whole_rows..source.rows {
        project_rows::<V, R, 1, CHECK>(source, q_t, rank, first, i, out, &mut last);
    }
    checks.iter().chain(&last).all(|check| check.sum() == 0.0)
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

/// Entries `first..first + R` of rows `i0..i0 + B`; where `CHECK`, each row's `x - x` added
/// into its check.
#[inline(always)]
unsafe fn project_rows<V: Lanes, const R: usize, const B: usize, const CHECK: bool>(
    source: Sum<'_>,
    q_t: &[f32],
    rank: usize,
    first: usize,
    i0: usize,
    out: &mut [f32],
    checks: &mut [V; B],
) {
    let cols = source.cols;
    let whole = cols - cols % 16;
    let factor = q_t.as_ptr().add(first * cols);
    let mut sums = [[V::zero(); R]; B];
    for start in (0..whole).step_by(16) {
        let q: [V; R] = std::array::from_fn(|k| V::load(factor.add(k * cols + start)));
        project_step::<V, R, B, CHECK>(source, i0, start, 16, &q, &mut sums, checks);
    }
    if whole < cols {
        let count = cols - whole;
        let q: [V; R] =
            std::array::from_fn(|k| V::load_partial(factor.add(k * cols + whole), count));
        project_step::<V, R, B, CHECK>(source, i0, whole, count, &q, &mut sums, checks);
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
unsafe fn project_step<V: Lanes, const R: usize, const B: usize, const CHECK: bool>(
    source: Sum<'_>,
    i0: usize,
    start: usize,
    count: usize,
    q: &[V; R],
    sums: &mut [[V; R]; B],
    checks: &mut [V; B],
) {
    for (b, row_sums) in sums.iter_mut().enumerate() {
        let x: V = sum_lanes(source, (i0 + b) * source.cols + start, count);
        if CHECK {
            checks[b] = checks[b].plus(x.minus(x));
        }
        for k in 0..R {
            row_sums[k] = row_sums[k].fused(x, q[k]);
        }
    }
}

/// `out = P @ Q^T` (`rows x cols`), or, given `delta`, what is still owed in place of the
/// carried error that `out` holds: `out = (delta + out) - P @ Q^T`. For factors whose every
/// partial sum float32 holds exactly: any order of the sums gives the same bits, so this one
/// keeps the most chains in flight. Zeros come out `+0`.
pub fn rebuild(p: &[f32], q_t: Matrix<'_>, delta: Option<&[f32]>, out: &mut [f32]) {
    let (rank, cols) = (q_t.rows, q_t.cols);
    let rows = p.len().checked_div(rank).unwrap_or(0);
    assert!(q_t.values.len() >= rank * cols && out.len() >= rows * cols);
    assert!(delta.is_none_or(|delta| delta.len() >= rows * cols));
    // SAFETY: as in [`project_sum`]: the sizes are asserted above.
    unsafe {
        match Level::current() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86::rebuild_avx512(p, q_t.values, rows, cols, rank, delta, out),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86::rebuild_avx2(p, q_t.values, rows, cols, rank, delta, out),
            _ => rebuild_blocks::<Scalar, 1, 1>(p, q_t.values, rows, cols, rank, delta, out),
        }
    }
}

#[inline(always)]
unsafe fn rebuild_blocks<V: Lanes, const ROWS: usize, const BLOCKS: usize>(
    p: &[f32],
    q_t: &[f32],
    rows: usize,
    cols: usize,
    rank: usize,
    delta: Option<&[f32]>,
    out: &mut [f32],
) {
    let whole_rows = rows - rows % ROWS;
    for i0 in (0..whole_rows).step_by(ROWS) {
        rebuild_rows::<V, ROWS, BLOCKS>(p, q_t, cols, rank, i0, delta, out);
    }
    for i in whole_rows..rows {
        rebuild_rows::<V, 1, BLOCKS>(p, q_t, cols, rank, i, delta, out);
    }
}

/// How far ahead, in floats, the rebuild asks for the lines it is about to write.
const WRITE_AHEAD: usize = 256;

/// Rows `i0..i0 + ROWS` of the rebuild, `BLOCKS` groups of 16 columns at a time.
#[inline(always)]
unsafe fn rebuild_rows<V: Lanes, const ROWS: usize, const BLOCKS: usize>(
    p: &[f32],
    q_t: &[f32],
    cols: usize,
    rank: usize,
    i0: usize,
    delta: Option<&[f32]>,
    out: &mut [f32],
) {
    let wide = cols - cols % (16 * BLOCKS);
    let whole = cols - cols % 16;
    let mut start = 0;
    while start < cols {
        let (blocks, count) = if start < wide {
            (BLOCKS, 16)
        } else if start < whole {
            (1, 16)
        } else {
            (1, cols - whole)
        };
        let mut sums = [[V::zero(); BLOCKS]; ROWS];
        for k in 0..rank {
            let factor = q_t.as_ptr().add(k * cols + start);
            let q: [V; BLOCKS] = std::array::from_fn(|b| {
                if b >= blocks {
                    V::zero()
                } else if count == 16 {
                    V::load(factor.add(16 * b))
                } else {
                    V::load_partial(factor, count)
                }
            });
            for (r, row_sums) in sums.iter_mut().enumerate() {
                let weight = V::splat(p[(i0 + r) * rank + k]);
                for b in 0..BLOCKS {
                    row_sums[b] = row_sums[b].fused(weight, q[b]);
                }
            }
        }
        for (r, row_sums) in sums.iter().enumerate() {
            let at = (i0 + r) * cols + start;
            for (b, sum) in row_sums.iter().enumerate().take(blocks) {
                let at = at + 16 * b;
                let to = out.as_mut_ptr().add(at);
                // A store to a line not in the nearest cache waits for it: asking for the
                // lines a little ahead keeps those waits overlapped (same bits).
                if delta.is_none() {
                    V::prefetch_for_write(to.wrapping_add(WRITE_AHEAD));
                }
                let value = match delta {
                    Some(delta) if count == 16 => V::load(delta.as_ptr().add(at))
                        .plus(V::load(to))
                        .minus(*sum),
                    Some(delta) => V::load_partial(delta.as_ptr().add(at), count)
                        .plus(V::load_partial(to, count))
                        .minus(*sum),
                    None => *sum,
                };
                if count == 16 {
                    value.store(out.as_mut_ptr().add(at));
                } else {
                    value.store_partial(out.as_mut_ptr().add(at), count);
                }
            }
        }
        start += blocks * count.max(16);
    }
}
