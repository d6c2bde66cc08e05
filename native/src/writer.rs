//! The writer of one codec configuration's blobs: binding, power step, grids, container and
//! error feedback in one call, committing the client's state only once the blob exists.

use numpy::npyffi::NPY_ARRAY_WRITEABLE;
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::binding::escaped_binding;
use crate::dot;
use crate::grids::{self, Rebuild};
use crate::lowrank::{self, Matrix, Sum};
use crate::rebuild;
use crate::update::{layers_from, padding, put_f32, transpose, Layer, LayerRow, FLOAT32_BYTES};

/// A blob and the tensors whose new warm start has an all-zero column.
type Written<'py> = (Bound<'py, PyBytes>, Vec<Py<PyString>>);

/// A factored tensor's state arrays: its error memory and its warm start.
type StateArrays<'py> = (Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyArrayDyn<f32>>);

/// One factored layer's power step, before anything is committed: `P`, and `Q` both as it
/// travels (`cols x rank`) and transposed.
struct Factored {
    p: Vec<f32>,
    q: Vec<f32>,
    q_t: Vec<f32>,
}

/// One codec configuration's writer; it keeps no state between blobs.
#[pyclass(module = "flare_native", frozen)]
pub struct UpdateWriter {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    data_bytes: usize,
    layers: Vec<Layer>,
}

#[pymethods]
impl UpdateWriter {
    /// `layers`: per model tensor, in layout order, `(name, shape, rank, first, second)`,
    /// rank 0 for a dense tensor at byte `first` of the data section, else its factors `P`
    /// and `Q` at `first` and `second`.
    #[new]
    fn new(
        py: Python<'_>,
        prefix: Vec<u8>,
        suffix: Vec<u8>,
        data_bytes: usize,
        layers: Vec<LayerRow>,
    ) -> PyResult<Self> {
        Ok(Self {
            prefix,
            suffix,
            data_bytes,
            layers: layers_from(py, layers)?,
        })
    }

    /// The blob of `delta` plus the carried error, bound to `binding`, and the tensors whose
    /// new warm start has an all-zero column; `error_memory` and `warm_q` are updated only
    /// then. None, with nothing changed, for anything left to Python.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        delta: &Bound<'py, PyDict>,
        binding: &Bound<'py, PyAny>,
        error_memory: &Bound<'py, PyDict>,
        warm_q: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Written<'py>>> {
        // Every tensor of the layout is looked up below; one more would be a name it lacks.
        if delta.len() != self.layers.len() {
            return Ok(None);
        }
        let Some(escaped) = escaped_binding(binding)? else {
            return Ok(None);
        };
        self.write(py, delta, &escaped, error_memory, warm_q)
    }
}

impl UpdateWriter {
    /// [`UpdateWriter::encode`] with the binding escaped.
    fn write<'py>(
        &self,
        py: Python<'py>,
        delta: &Bound<'py, PyDict>,
        escaped: &[u8],
        error_memory: &Bound<'py, PyDict>,
        warm_q: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Written<'py>>> {
        let mut inputs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let Some(array) = float32_array(delta, &layer.name, &layer.shape)? else {
                return Ok(None);
            };
            inputs.push(array);
        }
        let mut states = Vec::new();
        for layer in self.layers.iter().filter(|layer| layer.rank > 0) {
            let (Some(error), Some(warm)) = (
                float32_array(error_memory, &layer.name, &[layer.rows, layer.cols])?,
                float32_array(warm_q, &layer.name, &[layer.cols, layer.rank])?,
            ) else {
                return Ok(None);
            };
            states.push((error, warm));
        }
        if !writable_apart(&inputs, &states) {
            return Ok(None);
        }
        // SAFETY: every array is C-contiguous float32 (checked on lookup); the state arrays
        // are writeable and share no memory with one another or with the inputs (checked
        // just above), and Python runs nothing while this call holds the GIL, so no slice
        // below aliases another that is written.
        let values: Vec<&[f32]> = inputs
            .iter()
            .map(|array| unsafe { array.as_slice() }.expect("contiguous"))
            .collect();
        let mut memory: Vec<(&mut [f32], &mut [f32])> = states
            .iter()
            .map(|(error, warm)| unsafe {
                (
                    error.as_slice_mut().expect("contiguous"),
                    warm.as_slice_mut().expect("contiguous"),
                )
            })
            .collect();
        // A factored tensor's values are checked through its first product (`project_sum`).
        let dense_finite = self
            .layers
            .iter()
            .zip(&values)
            .all(|(layer, tensor)| layer.rank > 0 || lowrank::all_finite(tensor));
        if !dense_finite {
            return Ok(None);
        }

        let mut factored = Vec::with_capacity(memory.len());
        let mut state = memory.iter();
        for (layer, tensor) in self.layers.iter().zip(&values) {
            if layer.rank == 0 {
                continue;
            }
            let (error, warm) = state.next().expect("a state per factored layer");
            match power_step(layer, tensor, error, warm) {
                Some(step) => factored.push(step),
                None => return Ok(None),
            }
        }

        let body = self.prefix.len() + escaped.len() + self.suffix.len();
        let header = body + padding(body);
        let blob = PyBytes::new_with(py, 8 + header + self.data_bytes, |out| {
            out[..8].copy_from_slice(&(header as u64).to_le_bytes());
            let mut at = 8;
            for piece in [&self.prefix[..], escaped, &self.suffix] {
                out[at..at + piece.len()].copy_from_slice(piece);
                at += piece.len();
            }
            out[at..8 + header].fill(b' ');
            let data = &mut out[8 + header..];
            let mut steps = factored.iter();
            for (layer, tensor) in self.layers.iter().zip(&values) {
                if layer.rank == 0 {
                    put_f32(data, layer.offsets.0, tensor);
                    continue;
                }
                let step = steps.next().expect("a step per factored layer");
                put_f32(data, layer.offsets.0, &step.p);
                put_f32(data, layer.offsets.1, &step.q);
            }
            Ok(())
        })?;

        // Committed only now that the blob exists: what is still owed, and the next warm start.
        let mut reseed = Vec::new();
        let mut steps = factored.iter();
        let mut state = memory.iter_mut();
        for (layer, tensor) in self.layers.iter().zip(&values) {
            if layer.rank == 0 {
                continue;
            }
            let step = steps.next().expect("a step per factored layer");
            let (owed, next) = state.next().expect("a state per factored layer");
            let q_t = Matrix {
                values: &step.q_t,
                rows: layer.rank,
                cols: layer.cols,
            };
            rebuild::rebuild(&step.p, q_t, Some(tensor), owed);
            next.copy_from_slice(&step.q);
            if step
                .q_t
                .chunks_exact(layer.cols)
                .any(|column| column.iter().all(|v| *v == 0.0))
            {
                reseed.push(layer.name.clone_ref(py));
            }
        }
        Ok(Some((blob, reseed)))
    }
}

/// Whether every state array is writeable and shares no memory with any other array given.
fn writable_apart(inputs: &[Bound<'_, PyArrayDyn<f32>>], states: &[StateArrays<'_>]) -> bool {
    let span = |array: &Bound<'_, PyArrayDyn<f32>>| {
        let start = array.data() as usize;
        (start, start + array.len() * FLOAT32_BYTES)
    };
    let written: Vec<(usize, usize)> = states
        .iter()
        .flat_map(|(error, warm)| [span(error), span(warm)])
        .collect();
    let writeable = states
        .iter()
        .flat_map(|(error, warm)| [error, warm])
        .all(|array| {
            // SAFETY: a live numpy array's object holds its flags.
            unsafe { (*array.as_array_ptr()).flags & NPY_ARRAY_WRITEABLE != 0 }
        });
    let all: Vec<(usize, usize)> = inputs
        .iter()
        .map(span)
        .chain(written.iter().copied())
        .collect();
    let apart = written.iter().enumerate().all(|(index, (start, end))| {
        all.iter()
            .enumerate()
            .all(|(other, (other_start, other_end))| {
                other == inputs.len() + index || end <= other_start || other_end <= start
            })
    });
    writeable && apart
}

/// `mapping[name]` if it is a C-contiguous float32 numpy array of `shape`.
fn float32_array<'py>(
    mapping: &Bound<'py, PyDict>,
    name: &Py<PyString>,
    shape: &[usize],
) -> PyResult<Option<Bound<'py, PyArrayDyn<f32>>>> {
    let Some(value) = mapping.get_item(name.bind(mapping.py()))? else {
        return Ok(None);
    };
    let Ok(array) = value.downcast_into::<PyArrayDyn<f32>>() else {
        return Ok(None);
    };
    Ok((array.shape() == shape && array.is_c_contiguous()).then_some(array))
}

/// The power step on `delta + error`, the factors on their grids; None where it is left to
/// Python (`PowerSGDEncoder._factor`).
fn power_step(layer: &Layer, delta: &[f32], error: &[f32], warm_q: &[f32]) -> Option<Factored> {
    let (rows, cols, rank) = (layer.rows, layer.cols, layer.rank);
    let bits = grids::factor_bits(rank);
    let m = Sum {
        delta,
        error,
        rows,
        cols,
    };
    let warm_t = transpose(warm_q, cols, rank);
    let projected = dot::project_sum(m, &warm_t, rank)?;
    let p = grids::onto_grid_f64(&lowrank::orthonormalise(&projected, rows, rank), bits)?;
    let mut back = vec![0f32; rank * cols];
    dot::combine_rows(m, &p.stored, rank, &mut back);
    let q_t = grids::onto_grid_f32(&back, bits)?;
    match grids::rebuild_kind(rank, (p.largest, p.step), (q_t.largest, q_t.step)) {
        Rebuild::Elsewhere => None,
        _ => Some(Factored {
            p: p.stored,
            q: transpose(&q_t.stored, rank, cols),
            q_t: q_t.stored,
        }),
    }
}
