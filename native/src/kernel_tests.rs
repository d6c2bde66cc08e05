//! The kernels against scalar references of their definitions, on every level this CPU runs.

use crate::dot::{combine_rows, project_sum};
use crate::grids::*;
use crate::levels::Level;
use crate::lowrank::*;
use crate::rebuild::rebuild;
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

const SHAPES: [(usize, usize, usize); 12] = [
    (5, 9, 1),
    (13, 150, 1),
    (11, 100, 2),
    (9, 70, 3),
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
            let (delta, error) = (values(rows * cols, rows), values(rows * cols, 7 * rows));
            let q = values(cols * rank, cols);
            let sum = Sum {
                delta: &delta,
                error: &error,
                rows,
                cols,
            };
            let projected =
                project_sum(sum, &transpose(&q, cols, rank), rank).expect("finite sums");
            let m: Vec<f32> = delta.iter().zip(&error).map(|(d, e)| d + e).collect();
            assert_eq!(
                bits(&projected),
                bits(&sequential_project(&m, rows, cols, &q, rank)),
                "{level:?} {rows}x{cols} r{rank}"
            );
            let p = values(rows * rank, 3);
            let mut back = vec![0f32; rank * cols];
            combine_rows(sum, &p, rank, &mut back);
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
fn the_first_product_refuses_any_sum_that_is_not_finite() {
    let _turn = LEVELS.lock().unwrap();
    for level in Level::supported() {
        Level::select(level);
        for (rows, cols, rank) in SHAPES {
            let q_t = values(cols * rank, cols);
            let error = values(rows * cols, 7 * rows);
            // The first value, the last (in a trailing row or partial block) and one between.
            for at in [0, rows * cols / 2 + 1, rows * cols - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX] {
                    let mut delta = values(rows * cols, rows);
                    delta[at] = bad;
                    let mut carried = error.clone();
                    // f32::MAX is finite: the sum overflows only with a large carried error.
                    carried[at] = if bad == f32::MAX {
                        f32::MAX
                    } else {
                        carried[at]
                    };
                    let sum = Sum {
                        delta: &delta,
                        error: &carried,
                        rows,
                        cols,
                    };
                    let projected = project_sum(sum, &q_t, rank);
                    assert!(
                        projected.is_none(),
                        "{level:?} {rows}x{cols} r{rank} {bad} at {at}"
                    );
                }
            }
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
            let factor = Matrix {
                values: &q_t,
                rows: rank,
                cols,
            };
            let mut out = vec![0f32; rows * cols];
            rebuild(&p, factor, None, &mut out);
            let (delta, carried) = (values(rows * cols, 8), values(rows * cols, 9));
            let mut owed = carried.clone();
            rebuild(&p, factor, Some(&delta), &mut owed);
            for i in 0..rows {
                for j in 0..cols {
                    let exact: f64 = (0..rank)
                        .map(|k| f64::from(p[i * rank + k]) * f64::from(q_t[k * cols + j]))
                        .sum();
                    assert_eq!(out[i * cols + j].to_bits(), (exact as f32 + 0.0).to_bits());
                    assert_eq!(
                        owed[i * cols + j].to_bits(),
                        ((delta[i * cols + j] + carried[i * cols + j]) - exact as f32).to_bits()
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

#[test]
fn transposes_swap_rows_and_columns() {
    for (rows, cols) in [
        (0, 3),
        (1, 7),
        (7, 1),
        (37, 2),
        (2, 37),
        (130, 3),
        (3, 130),
        (64, 4),
        (4, 64),
        (200, 8),
        (8, 200),
        (21, 5),
        (5, 21),
        (9, 9),
    ] {
        let matrix = values(rows * cols, rows + cols);
        let swapped = crate::update::transpose(&matrix, rows, cols);
        assert_eq!(swapped.len(), rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                assert_eq!(
                    swapped[j * rows + i].to_bits(),
                    matrix[i * cols + j].to_bits(),
                    "{rows}x{cols}"
                );
            }
        }
    }
}
