//! The fixed-point grids of `lowrank` factors (`flare.compression.rebuild`): the encoder
//! rounds its factors onto them, the decoder checks that a blob's lie on them, and both
//! decide from the factors' largest entries whether float32 holds their product exactly.

use crate::levels::per_level;

const FLOAT32_MAX: f64 = f32::MAX as f64;
const FLOAT32_TINY: f64 = f32::MIN_POSITIVE as f64;
/// float32's smallest subnormal, 2^-149: every float32 is a multiple of it.
const FLOAT32_SUBNORMAL: f64 = 1.401_298_464_324_817e-45;
/// Running maxima kept apart while scanning a factor: one AVX-512 register of float64.
const MAXIMA: usize = 8;

/// The largest magnitude of `values`, or None where one is NaN.
#[inline(always)]
fn largest_magnitude<T: Copy + Into<f64>>(values: &[T]) -> Option<f64> {
    let mut largest = [0f64; MAXIMA];
    let mut nan = false;
    let chunks = values.chunks_exact(MAXIMA);
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
