//! A `powersgd` or `none` update blob written and read whole: header, binding, power step,
//! grids, rebuild and error feedback in one call each way (`writer.rs`, `reader.rs`, the
//! binding in `binding.rs`); here, what both sides know of a blob's layout.
//!
//! Python describes each codec configuration once (`flare/compression/native.py`): the
//! header's opening and its suffix after the binding, and where each stored tensor lies in
//! the data section. The writer then puts out the bytes Python's container writes around
//! its own factors; the reader accepts a blob only if its header is byte for byte the one
//! the writer puts out for the binding it holds, and its factors lie on their grids. For
//! anything else both answer `None`, and Python, the reference, takes the blob whole: it
//! refuses it with its reason or takes the cases left to it (`lowrank::Rebuild::Elsewhere`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// safetensors pads its header with spaces to a multiple of this (`wire.HEADER_ALIGNMENT`).
pub(crate) const HEADER_ALIGNMENT: usize = 8;
pub(crate) const FLOAT32_BYTES: usize = 4;

/// One model tensor as the blob carries it.
pub(crate) struct Layer {
    pub(crate) name: Py<PyString>,
    pub(crate) shape: Vec<usize>,
    /// Rows and columns of the tensor viewed as a matrix (first axis by the rest).
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// 0 for a dense tensor.
    pub(crate) rank: usize,
    /// Byte offsets in the data section: the tensor, or its factors `P` and `Q`.
    pub(crate) offsets: (usize, usize),
}

impl Layer {
    pub(crate) fn size(&self) -> usize {
        self.rows * self.cols
    }
}

/// A tensor as Python describes it: name, shape, rank (0: dense), and the byte offsets of
/// the tensor, or of its factors `P` and `Q`, in the data section.
pub(crate) type LayerRow = (String, Vec<usize>, usize, usize, usize);

pub(crate) fn layers_from(py: Python<'_>, specs: Vec<LayerRow>) -> PyResult<Vec<Layer>> {
    specs
        .into_iter()
        .map(|(name, shape, rank, first, second)| {
            let rows = shape.first().copied().unwrap_or(1);
            let cols = shape.iter().skip(1).product::<usize>();
            if rank > 0 && (rows == 0 || cols == 0) {
                return Err(PyValueError::new_err(
                    "a factored tensor has rows and columns",
                ));
            }
            Ok(Layer {
                name: PyString::new(py, &name).unbind(),
                shape,
                rows,
                cols,
                rank,
                offsets: (first, second),
            })
        })
        .collect()
}

/// The spaces after a header body of `length` bytes.
pub(crate) fn padding(length: usize) -> usize {
    (HEADER_ALIGNMENT - length % HEADER_ALIGNMENT) % HEADER_ALIGNMENT
}

pub(crate) fn f32_at(bytes: &[u8], offset: usize, count: usize) -> Option<&[f32]> {
    let window = bytes.get(offset..offset + count * FLOAT32_BYTES)?;
    // SAFETY: every bit pattern is a float32; `align_to` splits off any misaligned head.
    let (head, values, _) = unsafe { window.align_to::<f32>() };
    (head.is_empty() && values.len() == count).then_some(values)
}

pub(crate) fn put_f32(out: &mut [u8], offset: usize, values: &[f32]) {
    let window = &mut out[offset..offset + values.len() * FLOAT32_BYTES];
    for (slot, value) in window.chunks_exact_mut(FLOAT32_BYTES).zip(values) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// The transpose of `values`, a `rows x cols` row-major matrix.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let values = &values[..rows * cols];
    // A factor is a few columns (its rank) by hundreds of rows: its columns are split out, or
    // interleaved back, sixteen values at a time with the rank known to the compiler.
    match (rows.min(cols), rows >= cols) {
        (0 | 1, _) => values.to_vec(),
        (2, true) => split_columns::<2>(values, rows),
        (3, true) => split_columns::<3>(values, rows),
        (4, true) => split_columns::<4>(values, rows),
        (8, true) => split_columns::<8>(values, rows),
        (2, false) => interleave_rows::<2>(values, cols),
        (3, false) => interleave_rows::<3>(values, cols),
        (4, false) => interleave_rows::<4>(values, cols),
        (8, false) => interleave_rows::<8>(values, cols),
        _ => {
            let mut out = vec![0f32; rows * cols];
            for (i, row) in values.chunks_exact(cols).enumerate() {
                for (j, value) in row.iter().enumerate() {
                    out[j * rows + i] = *value;
                }
            }
            out
        }
    }
}

/// The `C x rows` transpose of `values` (`rows x C`).
fn split_columns<const C: usize>(values: &[f32], rows: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * C];
    let whole = rows - rows % 16;
    for (k, column) in out.chunks_exact_mut(rows).enumerate() {
        for i0 in (0..whole).step_by(16) {
            let tile = &values[i0 * C..][..16 * C];
            let to: &mut [f32; 16] = (&mut column[i0..i0 + 16]).try_into().unwrap();
            for l in 0..16 {
                to[l] = tile[l * C + k];
            }
        }
        for i in whole..rows {
            column[i] = values[i * C + k];
        }
    }
    out
}

/// The `cols x C` transpose of `values` (`C x cols`).
fn interleave_rows<const C: usize>(values: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; cols * C];
    let whole = cols - cols % 16;
    for (k, row) in values.chunks_exact(cols).enumerate() {
        for j0 in (0..whole).step_by(16) {
            let from: &[f32; 16] = row[j0..j0 + 16].try_into().unwrap();
            let tile = &mut out[j0 * C..][..16 * C];
            for l in 0..16 {
                tile[l * C + k] = from[l];
            }
        }
        for j in whole..cols {
            out[j * C + k] = row[j];
        }
    }
    out
}
