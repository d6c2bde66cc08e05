//! A `powersgd` or `none` update blob written and read whole: header, binding, power step,
//! grids, rebuild and error feedback in one call each way.
//!
//! Python describes each codec configuration once (`flare/compression/native.py`): the
//! header's opening and its suffix after the binding, and where each stored tensor lies in
//! the data section. The writer then puts out the bytes Python's container writes around
//! its own factors; the reader accepts a blob only if its header is byte for byte the one
//! the writer puts out for the binding it holds, and its factors lie on their grids. For
//! anything else both answer `None`, and Python, the reference, takes the blob whole: it
//! refuses it with its reason or takes the cases left to it (`lowrank::Rebuild::Elsewhere`).

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use numpy::npyffi::{self, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE, NPY_TYPES, PY_ARRAY_API};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString, PyTuple};

use crate::dot;
use crate::lowrank::{self, Matrix, Rebuild};

/// safetensors pads its header with spaces to a multiple of this (`wire.HEADER_ALIGNMENT`).
const HEADER_ALIGNMENT: usize = 8;
/// Longest label of a binding, in characters (`envelope.MAX_LABEL_CHARS`).
const MAX_LABEL_CHARS: usize = 256;
/// A counter has at most this many digits (`canonical._COUNTER`).
const MAX_COUNTER_DIGITS: usize = 19;
const FLOAT32_BYTES: usize = 4;

/// One model tensor as the blob carries it.
struct Layer {
    name: Py<PyString>,
    shape: Vec<usize>,
    /// Rows and columns of the tensor viewed as a matrix (first axis by the rest).
    rows: usize,
    cols: usize,
    /// 0 for a dense tensor.
    rank: usize,
    /// Byte offsets in the data section: the tensor, or its factors `P` and `Q`.
    offsets: (usize, usize),
}

impl Layer {
    fn size(&self) -> usize {
        self.rows * self.cols
    }
}

/// A tensor as Python describes it: name, shape, rank (0: dense), and the byte offsets of
/// the tensor, or of its factors `P` and `Q`, in the data section.
type LayerRow = (String, Vec<usize>, usize, usize, usize);

/// A blob and the tensors whose new warm start has an all-zero column.
type Written<'py> = (Bound<'py, PyBytes>, Vec<Py<PyString>>);

/// A factored tensor's state arrays: its error memory and its warm start.
type StateArrays<'py> = (Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyArrayDyn<f32>>);

fn layers_from(py: Python<'_>, specs: Vec<LayerRow>) -> PyResult<Vec<Layer>> {
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
fn padding(length: usize) -> usize {
    (HEADER_ALIGNMENT - length % HEADER_ALIGNMENT) % HEADER_ALIGNMENT
}

fn f32_at(bytes: &[u8], offset: usize, count: usize) -> Option<&[f32]> {
    let window = bytes.get(offset..offset + count * FLOAT32_BYTES)?;
    // SAFETY: every bit pattern is a float32; `align_to` splits off any misaligned head.
    let (head, values, _) = unsafe { window.align_to::<f32>() };
    (head.is_empty() && values.len() == count).then_some(values)
}

fn put_f32(out: &mut [u8], offset: usize, values: &[f32]) {
    let window = &mut out[offset..offset + values.len() * FLOAT32_BYTES];
    for (slot, value) in window.chunks_exact_mut(FLOAT32_BYTES).zip(values) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// The binding's canonical JSON as a header holds it (`container.escaped_binding`), or None
/// where `check_binding` would refuse a field.
fn escaped_binding(binding: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(160);
    let fields: [(&str, &str, bool); 6] = [
        ("attempt", "{\\\"attempt\\\":", false),
        ("base_model", ",\\\"base_model\\\":\\\"", true),
        ("num_samples", ",\\\"num_samples\\\":", false),
        ("round", ",\\\"round\\\":", false),
        ("sender", ",\\\"sender\\\":\\\"", true),
        ("task", ",\\\"task\\\":\\\"", true),
    ];
    for (field, opening, is_label) in fields {
        out.extend_from_slice(opening.as_bytes());
        let value = binding.getattr(field)?;
        if is_label {
            let Ok(text) = value.downcast::<PyString>() else {
                return Ok(None);
            };
            let text = text.to_cow()?;
            if text.is_empty()
                || text.len() > MAX_LABEL_CHARS
                || !text.bytes().all(|b| (0x20..=0x7e).contains(&b))
            {
                return Ok(None);
            }
            for byte in text.bytes() {
                match byte {
                    b'"' => out.extend_from_slice(b"\\\\\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\\\\\"),
                    _ => out.push(byte),
                }
            }
            out.extend_from_slice(b"\\\"");
        } else {
            if !value.is_exact_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
                return Ok(None);
            }
            let Ok(counter) = value.extract::<i64>() else {
                return Ok(None);
            };
            if counter < i64::from(field == "num_samples") {
                return Ok(None);
            }
            out.extend_from_slice(counter.to_string().as_bytes());
        }
    }
    out.push(b'}');
    Ok(Some(out))
}

/// Reads a binding as [`escaped_binding`] writes it, from the start of `bytes`.
struct BindingReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl BindingReader<'_> {
    fn literal(&mut self, text: &str) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text.as_bytes()).then(|| self.at = end)
    }

    fn counter(&mut self) -> Option<u64> {
        let digits = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.bytes[self.at..self.at + digits];
        if digits == 0 || digits > MAX_COUNTER_DIGITS || (digits > 1 && text[0] == b'0') {
            return None;
        }
        self.at += digits;
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    fn label(&mut self) -> Option<String> {
        let mut label = String::new();
        loop {
            let rest = &self.bytes[self.at..];
            let (character, width) = if rest.starts_with(b"\\\\\\\"") {
                ('"', 4)
            } else if rest.starts_with(b"\\\\\\\\") {
                ('\\', 4)
            } else {
                match rest.first() {
                    Some(&byte)
                        if (0x20..=0x7e).contains(&byte) && byte != b'"' && byte != b'\\' =>
                    {
                        (byte as char, 1)
                    }
                    _ => break,
                }
            };
            label.push(character);
            self.at += width;
        }
        (1..=MAX_LABEL_CHARS)
            .contains(&label.len())
            .then_some(label)
    }
}

/// What a header's binding says, in `UpdateBinding`'s field order less the types.
struct Binding {
    attempt: u64,
    base_model: String,
    num_samples: u64,
    round: u64,
    sender: String,
    task: String,
}

fn read_binding(reader: &mut BindingReader<'_>) -> Option<Binding> {
    reader.literal("{\\\"attempt\\\":")?;
    let attempt = reader.counter()?;
    reader.literal(",\\\"base_model\\\":\\\"")?;
    let base_model = reader.label()?;
    reader.literal("\\\",\\\"num_samples\\\":")?;
    let num_samples = reader.counter()?;
    reader.literal(",\\\"round\\\":")?;
    let round = reader.counter()?;
    reader.literal(",\\\"sender\\\":\\\"")?;
    let sender = reader.label()?;
    reader.literal("\\\",\\\"task\\\":\\\"")?;
    let task = reader.label()?;
    reader.literal("\\\"}")?;
    let limit = i64::MAX as u64;
    (attempt <= limit && round <= limit && (1..=limit).contains(&num_samples)).then_some(Binding {
        attempt,
        base_model,
        num_samples,
        round,
        sender,
        task,
    })
}

/// A float32 array of `shape` whose data is `bytes[offset..]`, read-only, kept alive by
/// `owner` (the blob).
fn view_of<'py>(
    owner: &Bound<'py, PyBytes>,
    offset: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let mut dims: Vec<npy_intp> = shape.iter().map(|d| *d as npy_intp).collect();
    let mut strides = vec![FLOAT32_BYTES as npy_intp; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * dims[axis + 1];
    }
    // SAFETY: the blob holds `prod(shape)` float32 values from `offset` (checked by the
    // caller) and outlives the array, which holds a reference to it as its base; flags 0
    // leave it read-only, and the given strides make numpy work out contiguity and alignment.
    unsafe {
        let descr = PY_ARRAY_API.PyArray_DescrFromType(py, NPY_TYPES::NPY_FLOAT as i32);
        let data = owner.as_bytes().as_ptr().add(offset) as *mut c_void;
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type),
            descr,
            dims.len() as i32,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            data,
            0,
            std::ptr::null_mut(),
        );
        if array.is_null() {
            return Err(PyErr::fetch(py));
        }
        let base = owner.clone().into_ptr();
        if PY_ARRAY_API.PyArray_SetBaseObject(py, array as *mut npyffi::PyArrayObject, base) < 0 {
            pyo3::ffi::Py_DECREF(array);
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, array))
    }
}

/// A new read-only float32 array of `shape` holding `values`.
fn array_of<'py>(
    py: Python<'py>,
    shape: &[usize],
    fill: impl FnOnce(&mut [f32]),
) -> Bound<'py, PyArrayDyn<f32>> {
    // SAFETY: `fill` writes every element before numpy or Python sees the array.
    unsafe {
        let array = PyArrayDyn::<f32>::new(py, shape, false);
        fill(array.as_slice_mut().expect("a new array is contiguous"));
        (*array.as_array_ptr()).flags &= !NPY_ARRAY_WRITEABLE;
        array
    }
}

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
        // Per tensor, delta plus carried error (empty for a dense tensor), in one buffer this
        // thread keeps: a fresh layer-sized allocation costs page faults at every blob.
        let mut kept = SCRATCH.with_borrow_mut(std::mem::take);
        let total: usize = self
            .layers
            .iter()
            .filter(|layer| layer.rank > 0)
            .map(Layer::size)
            .sum();
        if kept.len() < total {
            kept.resize(total, 0.0);
        }
        let written = self.write(py, delta, &escaped, error_memory, warm_q, &mut kept);
        SCRATCH.with_borrow_mut(|slot| *slot = kept);
        written
    }
}

thread_local! {
    /// The writer's scratch, kept by each thread between blobs.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl UpdateWriter {
    /// [`UpdateWriter::encode`] with the binding escaped and the scratch in hand.
    fn write<'py>(
        &self,
        py: Python<'py>,
        delta: &Bound<'py, PyDict>,
        escaped: &[u8],
        error_memory: &Bound<'py, PyDict>,
        warm_q: &Bound<'py, PyDict>,
        buffer: &mut [f32],
    ) -> PyResult<Option<Written<'py>>> {
        let mut scratch: Vec<&mut [f32]> = Vec::with_capacity(self.layers.len());
        let mut rest = buffer;
        for layer in &self.layers {
            let size = if layer.rank > 0 { layer.size() } else { 0 };
            let (mine, others) = rest.split_at_mut(size);
            scratch.push(mine);
            rest = others;
        }
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
        if !values.iter().all(|tensor| lowrank::all_finite(tensor)) {
            return Ok(None);
        }

        let mut factored = Vec::with_capacity(memory.len());
        let mut state = memory.iter();
        for ((layer, tensor), matrix) in self.layers.iter().zip(&values).zip(scratch.iter_mut()) {
            let matrix: &mut [f32] = matrix;
            if layer.rank == 0 {
                continue;
            }
            let (error, warm) = state.next().expect("a state per factored layer");
            lowrank::add(tensor, error, matrix);
            match power_step(layer, matrix, warm) {
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
        for (layer, matrix) in self.layers.iter().zip(scratch.iter()) {
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
            dot::rebuild(&step.p, q_t, Some(matrix), owed);
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

/// The transpose of `values`, a `rows x cols` row-major matrix.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for (i, row) in values.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (j, value) in row.iter().enumerate() {
            out[j * rows + i] = *value;
        }
    }
    out
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

/// The power step on `matrix` (delta plus carried error), factors on their grids, or None
/// where it is left to Python (`powersgd.PowerSGDEncoder._factor`).
fn power_step(layer: &Layer, matrix: &[f32], warm_q: &[f32]) -> Option<Factored> {
    let (rows, cols, rank) = (layer.rows, layer.cols, layer.rank);
    let bits = lowrank::factor_bits(rank);
    let projected = dot::project(
        Matrix {
            values: matrix,
            rows,
            cols,
        },
        &transpose(warm_q, cols, rank),
        rank,
    );
    let p = lowrank::onto_grid_f64(&lowrank::orthonormalise(&projected, rows, rank), bits)?;
    let mut back = vec![0f32; rank * cols];
    lowrank::combine_rows(
        Matrix {
            values: matrix,
            rows,
            cols,
        },
        &p.stored,
        rank,
        &mut back,
    );
    let q_t = lowrank::onto_grid_f32(&back, bits)?;
    match lowrank::rebuild_kind(rank, (p.largest, p.step), (q_t.largest, q_t.step)) {
        Rebuild::Elsewhere => None,
        _ => Some(Factored {
            p: p.stored,
            q: transpose(&q_t.stored, rank, cols),
            q_t: q_t.stored,
        }),
    }
}

/// What a header's suffix names: its codec, the size of its data section and its tensors.
struct Configuration {
    codec: Py<PyString>,
    data_bytes: usize,
    layers: Vec<Layer>,
}

/// The reader of one model spec's blobs, for the configurations Python has registered.
#[pyclass(module = "flare_native", frozen)]
pub struct UpdateReader {
    prefix: Vec<u8>,
    /// Suffixes and what they name: a spec meets few configurations, so a scan comparing
    /// lengths first beats hashing a suffix of several hundred bytes.
    known: Mutex<Vec<(Vec<u8>, Arc<Configuration>)>>,
}

#[pymethods]
impl UpdateReader {
    #[new]
    fn new(prefix: Vec<u8>) -> Self {
        Self {
            prefix,
            known: Mutex::new(Vec::new()),
        }
    }

    /// Read blobs whose header ends in `suffix` after the binding as `codec`'s, with
    /// `layers` as [`UpdateWriter::new`] takes them.
    fn register(
        &self,
        py: Python<'_>,
        suffix: Vec<u8>,
        codec: &str,
        data_bytes: usize,
        layers: Vec<LayerRow>,
    ) -> PyResult<()> {
        let configuration = Configuration {
            codec: PyString::new(py, codec).unbind(),
            data_bytes,
            layers: layers_from(py, layers)?,
        };
        let mut known = self
            .known
            .lock()
            .map_err(|_| PyValueError::new_err("a read panicked"))?;
        known.retain(|(kept, _)| *kept != suffix);
        known.push((suffix, Arc::new(configuration)));
        Ok(())
    }

    /// `(binding fields, codec, delta)` of a blob the writer would put out (the fields by
    /// `UpdateBinding`'s names), or None for Python to read.
    fn read<'py>(
        &self,
        container: &Bound<'py, PyBytes>,
        max_header_bytes: usize,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let py = container.py();
        let bytes = container.as_bytes();
        let Some(header_len) = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
        else {
            return Ok(None);
        };
        let header_end = header_len.saturating_add(8);
        if header_len > max_header_bytes
            || header_end > bytes.len()
            || !bytes[8..header_end].starts_with(&self.prefix)
        {
            return Ok(None);
        }
        let header = &bytes[..header_end];
        let mut reader = BindingReader {
            bytes: header,
            at: 8 + self.prefix.len(),
        };
        let Some(binding) = read_binding(&mut reader) else {
            return Ok(None);
        };
        let mut suffix_end = header_end;
        while suffix_end > reader.at && header[suffix_end - 1] == b' ' {
            suffix_end -= 1;
        }
        let suffix = &header[reader.at..suffix_end];
        let known = self
            .known
            .lock()
            .map_err(|_| PyValueError::new_err("a read panicked"))?;
        let Some(configuration) = known
            .iter()
            .find(|(kept, _)| kept == suffix)
            .map(|(_, found)| found.clone())
        else {
            return Ok(None);
        };
        drop(known);
        let body = suffix_end - 8;
        if header_len != body + padding(body)
            || bytes.len() != header_end + configuration.data_bytes
        {
            return Ok(None);
        }
        let data = &bytes[header_end..];
        let Some(floats) = f32_at(data, 0, configuration.data_bytes / FLOAT32_BYTES) else {
            return Ok(None);
        };
        if !lowrank::all_finite(floats) {
            return Ok(None);
        }
        let delta = PyDict::new(py);
        for layer in &configuration.layers {
            let tensor = if layer.rank == 0 {
                if f32_at(data, layer.offsets.0, layer.size()).is_none() {
                    return Ok(None);
                }
                view_of(container, header_end + layer.offsets.0, &layer.shape)?
            } else {
                match rebuilt(py, layer, data) {
                    Some(array) => array.into_any(),
                    None => return Ok(None),
                }
            };
            delta.set_item(layer.name.bind(py), tensor)?;
        }
        let fields = PyDict::new(py);
        fields.set_item("sender", binding.sender)?;
        fields.set_item("task", binding.task)?;
        fields.set_item("round", binding.round)?;
        fields.set_item("attempt", binding.attempt)?;
        fields.set_item("base_model", binding.base_model)?;
        fields.set_item("num_samples", binding.num_samples)?;
        let read = (fields, configuration.codec.clone_ref(py), delta);
        Ok(Some(read.into_pyobject(py)?))
    }
}

/// A factored layer rebuilt from the blob's factors, or None where they are off their grids
/// or the rebuild is left to Python (`rebuild.low_rank_matrix`).
fn rebuilt<'py>(
    py: Python<'py>,
    layer: &Layer,
    data: &[u8],
) -> Option<Bound<'py, PyArrayDyn<f32>>> {
    let (rows, cols, rank) = (layer.rows, layer.cols, layer.rank);
    let bits = lowrank::factor_bits(rank);
    let p = f32_at(data, layer.offsets.0, rows * rank)?;
    let q = f32_at(data, layer.offsets.1, cols * rank)?;
    let p_grid = lowrank::on_grid(p, bits)?;
    let q_grid = lowrank::on_grid(q, bits)?;
    match lowrank::rebuild_kind(rank, p_grid, q_grid) {
        Rebuild::Elsewhere => None,
        Rebuild::Zero => Some(array_of(py, &layer.shape, |out| out.fill(0.0))),
        Rebuild::Float32 => {
            let q_t = transpose(q, cols, rank);
            let q_t = Matrix {
                values: &q_t,
                rows: rank,
                cols,
            };
            Some(array_of(py, &layer.shape, |out| {
                dot::rebuild(p, q_t, None, out)
            }))
        }
    }
}
