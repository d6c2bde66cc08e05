//! The rest of PowerSGD's power step on one layer, the same bits on every x86-64 CPU: the
//! matrices the kernels borrow, the finiteness check, and the orthonormalisation of `P`
//! (the products are `dot.rs`'s, the rebuild `rebuild.rs`'s, the grids `grids.rs`'s).
//!
//! The orthonormalisation is float64, in a fixed order. A fused multiply-add rounds once
//! whatever computes it (the FMA unit of the AVX2 and AVX-512 levels, the correctly rounded
//! software `fma` at the baseline), and Rust never reorders float operations, so every level
//! (`levels.rs`) gives the same bits. Everything here mirrors `flare/compression/powersgd.py`,
//! which remains the reference.

use crate::levels::per_level;

/// Values whose checks advance together: one AVX-512 register, two AVX2, four SSE2.
const LANES: usize = 16;
/// A column keeping less of its norm than this after projection is dependent.
const DEPENDENT_COLUMN_TOLERANCE: f64 = 1e-5;

/// A row-major float32 matrix borrowed from a caller.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// The row-major float32 matrix `delta + error` (`rows x cols`), never stored: each product
/// sums its two terms where it reads them, a single rounding that gives the same bits each
/// time. Storing it would cost a layer-sized write and, later, a read.
#[derive(Clone, Copy)]
pub struct Sum<'a> {
    pub delta: &'a [f32],
    pub error: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

per_level! {
    /// Whether every value is finite.
    pub fn all_finite(values: &[f32]) -> bool => all_finite_inline
}

#[inline(always)]
#[allow(clippy::eq_op)] // `value - value` is the test: 0 exactly when `value` is finite
fn all_finite_inline(values: &[f32]) -> bool {
    // x - x is 0 for a finite x and NaN otherwise; the sum of those is NaN exactly when one is.
    // Four registers' worth of sums, so the additions do not wait on one another.
    let mut lanes = [0f32; 4 * LANES];
    let chunks = values.chunks_exact(4 * LANES);
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
