//! PowerSGD's arithmetic on one layer, the same bits on every x86-64 CPU.
//!
//! The power step's two float32 products are summed in an order this file fixes, not the
//! one a BLAS picks for the CPU at hand: each entry of `M @ Q` and of `M^T @ P` is one chain
//! of fused multiply-adds over the shared index, in index order, from `+0`. A fused
//! multiply-add rounds once whatever computes it (the FMA unit of the AVX2 and AVX-512
//! levels, the correctly rounded software `fma` at the baseline), and Rust never reorders
//! float operations, so every level (chosen once at start-up, see [`Level`]) writes the
//! same bits; only the vector width and how the independent chains are interleaved differ.
//!
//! The rebuild `P @ Q^T` of factors on their grids is exact (every partial sum is a multiple
//! of one power of two below 2^24 of them, `flare.compression.rebuild`), so its order is
//! free. Everything here mirrors `flare/compression/powersgd.py` and `rebuild.py`, which
//! remain the reference: a case this file does not take (a grid finer than float32 holds, a
//! product that could overflow) is reported, and the caller leaves the blob to Python.

use std::sync::atomic::{AtomicU8, Ordering};

/// Columns whose chains advance together: one AVX-512 register, two AVX2, four SSE2.
const LANES: usize = 16;
/// A column keeping less of its norm than this after projection is dependent.
const DEPENDENT_COLUMN_TOLERANCE: f64 = 1e-5;
pub const FLOAT32_MAX: f64 = f32::MAX as f64;
const FLOAT32_TINY: f64 = f32::MIN_POSITIVE as f64;
/// float32's smallest subnormal, 2^-149: every float32 is a multiple of it.
const FLOAT32_SUBNORMAL: f64 = 1.401_298_464_324_817e-45;

/// The instruction set the kernels run on; every level gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Baseline = 0,
    Avx2 = 1,
    Avx512 = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Every level this CPU runs, widest last.
    pub fn supported() -> Vec<Level> {
        let mut levels = vec![Level::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 {
                levels.push(Level::Avx2);
            }
            if avx2 && is_x86_feature_detected!("avx512f") {
                levels.push(Level::Avx512);
            }
        }
        levels
    }

    pub fn current() -> Level {
        match LEVEL.load(Ordering::Relaxed) {
            0 => Level::Baseline,
            1 => Level::Avx2,
            2 => Level::Avx512,
            _ => {
                let widest = *Level::supported().last().unwrap_or(&Level::Baseline);
                LEVEL.store(widest as u8, Ordering::Relaxed);
                widest
            }
        }
    }

    pub fn select(level: Level) {
        LEVEL.store(level as u8, Ordering::Relaxed);
    }
}

/// `pub fn $name(args) -> ret`, which runs `$inner` compiled for the current [`Level`]:
/// `$inner` and all it calls are `#[inline(always)]`, so each copy is vectorised for its
/// instruction set.
macro_rules! per_level {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $inner:ident) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) $(-> $ret)? { $inner($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $inner($($arg),*) }
                match Level::current() {
                    // SAFETY: a level is current only where the CPU supports it.
                    Level::Avx512 => return unsafe { wide($($arg),*) },
                    Level::Avx2 => return unsafe { avx2($($arg),*) },
                    Level::Baseline => {}
                }
            }
            $inner($($arg),*)
        }
    };
}

/// A row-major float32 matrix borrowed from a caller.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

per_level! {
    /// `out = a + b`, element by element.
    pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) => add_inline
}

#[inline(always)]
fn add_inline(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

per_level! {
    /// Whether every value is finite.
    pub fn all_finite(values: &[f32]) -> bool => all_finite_inline
}

#[inline(always)]
#[allow(clippy::eq_op)] // `value - value` is the test: 0 exactly when `value` is finite
fn all_finite_inline(values: &[f32]) -> bool {
    // x - x is 0 for a finite x and NaN otherwise; the sum of those is NaN exactly when one is.
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value - value;
        }
    }
    for (lane, value) in lanes.iter_mut().zip(tail) {
        *lane += value - value;
    }
    lanes.iter().all(|lane| *lane == 0.0)
}

per_level! {
    /// `out_t[k][j] = sum_r coefficients[r][k] a[r][j]`, summed in the order of `r` from `+0`
    /// (`a` is `rows x n`, `coefficients` is `rows x rank`, `out_t` is `rank x n`): the
    /// power step's two products, `M^T @ P` on `M` and `(M @ Q)^T` on `M^T`.
    pub fn combine_rows(a: Matrix<'_>, coefficients: &[f32], rank: usize, out_t: &mut [f32]) => combine_rows_inline
}

#[inline(always)]
fn combine_rows_inline(a: Matrix<'_>, coefficients: &[f32], rank: usize, out_t: &mut [f32]) {
    let mut first = 0;
    while first < rank {
        match rank - first {
            1 => combine_columns::<1>(a, coefficients, rank, first, out_t),
            2 => combine_columns::<2>(a, coefficients, rank, first, out_t),
            3 => combine_columns::<3>(a, coefficients, rank, first, out_t),
            _ => combine_columns::<4>(a, coefficients, rank, first, out_t),
        }
        first += (rank - first).min(4);
    }
}

/// Outputs `first..first + R` of [`combine_rows`], [`LANES`] columns at a time held in
/// registers over all rows (a last, partial block zero-padded); each output's sum runs over
/// the rows in order however the columns are blocked, so the blocking changes no bit.
#[inline(always)]
fn combine_columns<const R: usize>(
    a: Matrix<'_>,
    coefficients: &[f32],
    rank: usize,
    first: usize,
    out_t: &mut [f32],
) {
    let n = a.cols;
    let whole = n - n % LANES;
    for start in (0..whole).step_by(LANES) {
        let mut sums = [[0f32; LANES]; R];
        for (r, row) in a.values.chunks_exact(n).take(a.rows).enumerate() {
            let weights: &[f32; R] = coefficients[r * rank + first..][..R].try_into().unwrap();
            let x: &[f32; LANES] = row[start..start + LANES].try_into().unwrap();
            accumulate(&mut sums, weights, x);
        }
        for (k, lanes) in sums.iter().enumerate() {
            out_t[(first + k) * n + start..][..LANES].copy_from_slice(lanes);
        }
    }
    if whole < n {
        let width = n - whole;
        let mut sums = [[0f32; LANES]; R];
        for (r, row) in a.values.chunks_exact(n).take(a.rows).enumerate() {
            let weights: &[f32; R] = coefficients[r * rank + first..][..R].try_into().unwrap();
            let x: [f32; LANES] =
                std::array::from_fn(|l| if l < width { row[whole + l] } else { 0.0 });
            accumulate(&mut sums, weights, &x);
        }
        for (k, lanes) in sums.iter().enumerate() {
            out_t[(first + k) * n + whole..][..width].copy_from_slice(&lanes[..width]);
        }
    }
}

#[inline(always)]
fn accumulate<const R: usize>(sums: &mut [[f32; LANES]; R], weights: &[f32; R], x: &[f32; LANES]) {
    for k in 0..R {
        for l in 0..LANES {
            sums[k][l] = weights[k].mul_add(x[l], sums[k][l]);
        }
    }
}

/// The largest magnitude of `values`, or None where one is NaN.
#[inline(always)]
fn largest_magnitude<T: Copy + Into<f64>>(values: &[T]) -> Option<f64> {
    let mut largest = [0f64; LANES / 2];
    let mut nan = false;
    let chunks = values.chunks_exact(LANES / 2);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, value) in largest.iter_mut().zip(chunk) {
            let magnitude = (*value).into().abs();
            nan |= magnitude.is_nan();
            *lane = if magnitude > *lane { magnitude } else { *lane };
        }
    }
    for (lane, value) in largest.iter_mut().zip(tail) {
        let magnitude = (*value).into().abs();
        nan |= magnitude.is_nan();
        *lane = if magnitude > *lane { magnitude } else { *lane };
    }
    (!nan).then(|| largest.iter().fold(0f64, |a, b| a.max(*b)))
}

/// `2^e` for the `e` with `largest` in `[2^(e-1), 2^e)` (`math.frexp`), times `2^-bits`:
/// the grid step that puts `largest` (a positive normal float64) in `[2^(bits-1), 2^bits)` steps.
#[inline(always)]
pub fn grid_step(largest: f64, bits: i32) -> f64 {
    let exponent = ((largest.to_bits() >> 52) & 0x7ff) as i32 - 1022;
    2f64.powi(exponent - bits)
}

/// The bits of each `lowrank` factor's grid at `rank` (`rebuild.factor_bits`).
pub fn factor_bits(rank: usize) -> i32 {
    let rank_bits = usize::BITS - (rank - 1).leading_zeros();
    (24 - rank_bits as i32) / 2
}

/// A factor on its grid: the float32 values, their largest magnitude and the step (0 for an
/// all-zero factor).
pub struct GridFactor {
    pub stored: Vec<f32>,
    pub largest: f64,
    pub step: f64,
}

per_level! {
    /// `values` rounded onto their `bits`-bit grid (`rebuild.onto_grid`); None where they
    /// pass float32's range.
    pub fn onto_grid_f64(values: &[f64], bits: i32) -> Option<GridFactor> => onto_grid
}

per_level! {
    /// [`onto_grid_f64`] for float32 values.
    pub fn onto_grid_f32(values: &[f32], bits: i32) -> Option<GridFactor> => onto_grid
}

#[inline(always)]
fn onto_grid<T: Copy + Into<f64>>(values: &[T], bits: i32) -> Option<GridFactor> {
    let largest = largest_magnitude(values)?;
    if largest > FLOAT32_MAX {
        return None;
    }
    if largest < FLOAT32_TINY {
        return Some(GridFactor {
            stored: vec![0.0; values.len()],
            largest: 0.0,
            step: 0.0,
        });
    }
    let mut step = grid_step(largest, bits);
    if (largest / step).round_ties_even() >= 2f64.powi(bits) {
        step *= 2.0;
    }
    let largest = (largest / step).round_ties_even() * step;
    if largest > FLOAT32_MAX {
        return None;
    }
    let inverse = 1.0 / step;
    let stored = values
        .iter()
        .map(|value| (((*value).into() * inverse).round_ties_even() * step) as f32)
        .collect();
    Some(GridFactor {
        stored,
        largest,
        step,
    })
}

per_level! {
    /// The largest magnitude and step of a stored factor that lies on its `bits`-bit grid
    /// (`rebuild.on_grid`), or None where it does not (or holds a NaN).
    pub fn on_grid(values: &[f32], bits: i32) -> Option<(f64, f64)> => on_grid_inline
}

#[inline(always)]
fn on_grid_inline(values: &[f32], bits: i32) -> Option<(f64, f64)> {
    let largest = largest_magnitude(values)?;
    if largest == 0.0 {
        return Some((0.0, 0.0));
    }
    let step = grid_step(largest, bits).max(FLOAT32_SUBNORMAL);
    let inverse = 1.0 / step;
    let off = values.iter().fold(false, |off, value| {
        let scaled = f64::from(*value) * inverse;
        off | (scaled.round_ties_even() != scaled)
    });
    (!off).then_some((largest, step))
}

/// How the rebuild of two factors on their grids goes: at once in float32, or not here.
#[derive(Debug, PartialEq, Eq)]
pub enum Rebuild {
    /// One factor is all zeros: the product is `+0` everywhere.
    Zero,
    /// float32 holds every partial sum and no entry can reach its range.
    Float32,
    /// A finer step or a larger bound than float32 holds: left to Python.
    Elsewhere,
}

/// `rebuild.low_rank_product`'s choice for factors with these largest entries and steps.
pub fn rebuild_kind(rank: usize, p: (f64, f64), q: (f64, f64)) -> Rebuild {
    let (p_largest, p_step) = p;
    let (q_largest, q_step) = q;
    if p_largest == 0.0 || q_largest == 0.0 {
        return Rebuild::Zero;
    }
    let bound = rank as f64 * p_largest * q_largest;
    if p_step * q_step >= FLOAT32_SUBNORMAL && bound < FLOAT32_MAX / 2.0 {
        Rebuild::Float32
    } else {
        Rebuild::Elsewhere
    }
}

per_level! {
    /// Orthonormal columns (float64, `rows x rank` row-major) spanning `matrix`'s, left to
    /// right; a dependent column becomes zero (`powersgd.orthonormalise`).
    pub fn orthonormalise(matrix: &[f32], rows: usize, rank: usize) -> Vec<f64> => orthonormalise_inline
}

#[inline(always)]
fn orthonormalise_inline(matrix: &[f32], rows: usize, rank: usize) -> Vec<f64> {
    match rank {
        1 => through_gram::<1>(matrix, rows),
        2 => through_gram::<2>(matrix, rows),
        3 => through_gram::<3>(matrix, rows),
        4 => through_gram::<4>(matrix, rows),
        5 => through_gram::<5>(matrix, rows),
        6 => through_gram::<6>(matrix, rows),
        7 => through_gram::<7>(matrix, rows),
        8 => through_gram::<8>(matrix, rows),
        _ => gram_schmidt(
            matrix.iter().map(|value| f64::from(*value)).collect(),
            rows,
            rank,
        ),
    }
}

/// Up to rank 8 (`powersgd.CHOLESKY_MAX_RANK`): `A T`, `T` the inverse Cholesky factor of `A^T A`.
#[inline(always)]
fn through_gram<const R: usize>(matrix: &[f32], rows: usize) -> Vec<f64> {
    let mut gram = [[0f64; R]; R];
    for row in matrix.chunks_exact(R).take(rows) {
        let wide: [f64; R] = std::array::from_fn(|a| f64::from(row[a]));
        for a in 0..R {
            for b in 0..R {
                gram[a][b] = wide[a].mul_add(wide[b], gram[a][b]);
            }
        }
    }
    let t = inverse_cholesky_factor(&gram);
    let mut result = vec![0f64; rows * R];
    for (out, row) in result.chunks_exact_mut(R).zip(matrix.chunks_exact(R)) {
        let wide: [f64; R] = std::array::from_fn(|a| f64::from(row[a]));
        let mut sums = [0f64; R];
        for k in 0..R {
            for c in 0..R {
                sums[c] = t[k][c].mul_add(wide[k], sums[c]);
            }
        }
        out.copy_from_slice(&sums);
    }
    result
}

/// `T` with orthonormal `A T` for `gram = A^T A`: the inverse of the Cholesky factor `R`
/// (`A = Q R`), a dependent column of `A` giving a zero column (`_inverse_cholesky_factor`).
#[inline(always)]
fn inverse_cholesky_factor<const R: usize>(gram: &[[f64; R]; R]) -> [[f64; R]; R] {
    let mut r_columns = [[0f64; R]; R]; // R by columns; a dependent column's is all zero
    let mut t = [[0f64; R]; R]; // T = R^-1 by rows, on the kept columns
    let mut kept = [false; R];
    for k in 0..R {
        let mut residual = gram[k][k];
        for j in (0..k).filter(|j| kept[*j]) {
            let dot = (0..j).fold(0.0, |sum, i| sum + r_columns[j][i] * r_columns[k][i]);
            let r_jk = (gram[j][k] - dot) / r_columns[j][j];
            r_columns[k][j] = r_jk;
            residual -= r_jk * r_jk;
        }
        if residual <= 0.0
            || residual <= DEPENDENT_COLUMN_TOLERANCE * DEPENDENT_COLUMN_TOLERANCE * gram[k][k]
        {
            continue;
        }
        let r_kk = residual.sqrt();
        r_columns[k][k] = r_kk;
        t[k][k] = 1.0 / r_kk;
        for j in (0..k).filter(|j| kept[*j]) {
            let dot = (0..k).fold(0.0, |sum, c| sum + t[j][c] * r_columns[k][c]);
            t[j][k] = -dot / r_kk;
        }
        kept[k] = true;
    }
    t
}

/// Modified Gram-Schmidt for the larger ranks, on row-major `values`.
fn gram_schmidt(mut values: Vec<f64>, rows: usize, rank: usize) -> Vec<f64> {
    let column = |values: &[f64], c: usize| -> Vec<f64> {
        (0..rows).map(|i| values[i * rank + c]).collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).fold(0.0, |sum, (x, y)| sum + x * y);
    for i in 0..rank {
        let mut current = column(&values, i);
        let original_norm = dot(&current, &current).sqrt();
        for j in 0..i {
            let basis = column(&values, j);
            let along = dot(&basis, &current);
            for (value, b) in current.iter_mut().zip(&basis) {
                *value -= along * b;
            }
        }
        let norm = dot(&current, &current).sqrt();
        if norm == 0.0 || norm <= DEPENDENT_COLUMN_TOLERANCE * original_norm {
            current.fill(0.0);
        } else {
            for value in current.iter_mut() {
                *value /= norm;
            }
        }
        for (row, value) in current.iter().enumerate() {
            values[row * rank + i] = *value;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The level is process-wide; tests that switch it take turns.
    static LEVELS: Mutex<()> = Mutex::new(());

    fn values(count: usize, seed: usize) -> Vec<f32> {
        (0..count)
            .map(|i| (((i + seed) * 7919) % 1013) as f32 / 97.0 - 5.2)
            .collect()
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// `M @ Q` as `dot.rs` defines it, one scalar at a time: sixteen chains, then pairwise.
    fn sequential_project(m: &[f32], rows: usize, cols: usize, q: &[f32], rank: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * rank];
        for i in 0..rows {
            for k in 0..rank {
                let mut lanes = [0f32; 16];
                for j in 0..cols {
                    lanes[j % 16] = q[j * rank + k].mul_add(m[i * cols + j], lanes[j % 16]);
                }
                for width in [8, 4, 2, 1] {
                    for l in 0..width {
                        lanes[l] += lanes[l + width];
                    }
                }
                out[i * rank + k] = lanes[0];
            }
        }
        out
    }

    /// `M^T @ P` as [`combine_rows`] defines it: one chain over the rows, in order.
    fn sequential_combine(m: &[f32], rows: usize, cols: usize, p: &[f32], rank: usize) -> Vec<f32> {
        let mut out = vec![0f32; rank * cols];
        for k in 0..rank {
            for j in 0..cols {
                let mut sum = 0f32;
                for i in 0..rows {
                    sum = p[i * rank + k].mul_add(m[i * cols + j], sum);
                }
                out[k * cols + j] = sum;
            }
        }
        out
    }

    fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|index| values[(index % rows) * cols + index / rows])
            .collect()
    }

    const SHAPES: [(usize, usize, usize); 9] = [
        (5, 9, 1),
        (15, 130, 8),
        (16, 17, 3),
        (37, 53, 5),
        (10, 128, 1),
        (64, 33, 9),
        (3, 40, 12),
        (40, 3, 2),
        (7, 512, 4),
    ];

    #[test]
    fn both_products_sum_in_their_defined_order_on_every_level() {
        let _turn = LEVELS.lock().unwrap();
        for level in Level::supported() {
            Level::select(level);
            for (rows, cols, rank) in SHAPES {
                let (m, q) = (values(rows * cols, rows), values(cols * rank, cols));
                let projected = crate::dot::project(
                    Matrix {
                        values: &m,
                        rows,
                        cols,
                    },
                    &transpose(&q, cols, rank),
                    rank,
                );
                assert_eq!(
                    bits(&projected),
                    bits(&sequential_project(&m, rows, cols, &q, rank)),
                    "{level:?} {rows}x{cols} r{rank}"
                );
                let p = values(rows * rank, 3);
                let mut back = vec![0f32; rank * cols];
                combine_rows(
                    Matrix {
                        values: &m,
                        rows,
                        cols,
                    },
                    &p,
                    rank,
                    &mut back,
                );
                assert_eq!(
                    bits(&back),
                    bits(&sequential_combine(&m, rows, cols, &p, rank)),
                    "{level:?} {rows}x{cols} r{rank}"
                );
            }
        }
        Level::select(*Level::supported().last().unwrap());
    }

    #[test]
    fn every_level_orthonormalises_and_grids_alike() {
        let _turn = LEVELS.lock().unwrap();
        let mut results = Vec::new();
        for level in Level::supported() {
            Level::select(level);
            let mut seen = Vec::new();
            for (rows, _, rank) in SHAPES {
                let projected = values(rows * rank, 11);
                let orthonormal = orthonormalise(&projected, rows, rank);
                let grid = onto_grid_f64(&orthonormal, factor_bits(rank)).unwrap();
                seen.push((
                    orthonormal.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    bits(&grid.stored),
                    grid.step.to_bits(),
                ));
                assert_eq!(
                    on_grid(&grid.stored, factor_bits(rank)),
                    Some((grid.largest, grid.step))
                );
            }
            results.push(seen);
        }
        Level::select(*Level::supported().last().unwrap());
        assert!(results.windows(2).all(|pair| pair[0] == pair[1]));
    }

    #[test]
    fn the_rebuild_is_the_exact_product() {
        let _turn = LEVELS.lock().unwrap();
        for level in Level::supported() {
            Level::select(level);
            for (rows, cols, rank) in SHAPES {
                let p = onto_grid_f32(&values(rows * rank, 5), factor_bits(rank))
                    .unwrap()
                    .stored;
                let q_t = onto_grid_f32(&values(rank * cols, 6), factor_bits(rank))
                    .unwrap()
                    .stored;
                let mut out = vec![0f32; rows * cols];
                crate::dot::rebuild(
                    &p,
                    Matrix {
                        values: &q_t,
                        rows: rank,
                        cols,
                    },
                    None,
                    &mut out,
                );
                let m = values(rows * cols, 8);
                let mut owed = vec![0f32; rows * cols];
                crate::dot::rebuild(
                    &p,
                    Matrix {
                        values: &q_t,
                        rows: rank,
                        cols,
                    },
                    Some(&m),
                    &mut owed,
                );
                for i in 0..rows {
                    for j in 0..cols {
                        let exact: f64 = (0..rank)
                            .map(|k| f64::from(p[i * rank + k]) * f64::from(q_t[k * cols + j]))
                            .sum();
                        assert_eq!(out[i * cols + j].to_bits(), (exact as f32 + 0.0).to_bits());
                        assert_eq!(
                            owed[i * cols + j].to_bits(),
                            (m[i * cols + j] - exact as f32).to_bits()
                        );
                    }
                }
            }
        }
        Level::select(*Level::supported().last().unwrap());
    }

    #[test]
    fn grids_follow_python() {
        assert_eq!(grid_step(1.0, 12), 2f64.powi(-11));
        assert_eq!(grid_step(0.75, 12), 2f64.powi(-12));
        assert_eq!(
            (
                factor_bits(1),
                factor_bits(4),
                factor_bits(5),
                factor_bits(1024)
            ),
            (12, 11, 10, 7)
        );
        assert!(onto_grid_f32(&[f32::MAX, -f32::MAX], 12).is_none());
        assert_eq!(
            onto_grid_f32(&[1e-39, 0.0], 12).unwrap().stored,
            vec![0.0, 0.0]
        );
        assert!(on_grid(&[1.0, 1.0 + f32::EPSILON], 12).is_none());
        assert!(on_grid(&[f32::NAN], 12).is_none());
        assert_eq!(rebuild_kind(2, (0.0, 0.0), (1.0, 1.0)), Rebuild::Zero);
        assert_eq!(
            rebuild_kind(2, (1e-30, 1e-33), (1e-30, 1e-33)),
            Rebuild::Elsewhere
        );
        assert_eq!(
            rebuild_kind(2, (1e30, 1e27), (1e30, 1e27)),
            Rebuild::Elsewhere
        );
    }
}
