//! The rebuild `P @ Q^T` of two factors on their grids, alone (a decoded update) or as what
//! is still owed (error feedback). Every partial sum is exact in float32 (`grids.rs`), so
//! the order of the sums changes no bit and the kernel keeps the most chains in flight.

use crate::lanes::{Lanes, Scalar};
use crate::levels::Level;
use crate::lowrank::Matrix;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::lanes::x86::{Avx2, Avx512};

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
        super::rebuild_blocks::<Avx512, 4, 4>(p, q_t, rows, cols, rank, delta, out)
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
    // SAFETY: the level is supported where it is current, and the kernel reads and writes
    // no more than the sizes asserted above.
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
