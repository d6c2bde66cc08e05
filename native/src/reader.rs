//! The reader of one model spec's blobs, for the configurations Python has shown it: a
//! header compared byte for byte, finite values, factors on their grids, the exact rebuild.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use numpy::npyffi::{self, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE, NPY_TYPES, PY_ARRAY_API};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};

use crate::binding::{field_names, read_binding, BindingReader, Value};
use crate::grids::{self, Rebuild};
use crate::lowrank::{self, Matrix};
use crate::rebuild;
use crate::update::{f32_at, layers_from, padding, transpose, Layer, LayerRow, FLOAT32_BYTES};

/// A float32 array of `shape` whose data is `bytes[offset..]`, read-only, kept alive by
/// `owner` (the blob).
fn view_of<'py>(
    owner: &Bound<'py, PyBytes>,
    offset: usize,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the blob holds `prod(shape)` float32 values from `offset` (checked by the
    // caller).
    unsafe {
        let data = owner.as_bytes().as_ptr().add(offset) as *mut c_void;
        view_at(owner.as_any(), data, shape)
    }
}

/// A read-only float32 array of `shape` at `data`, with `owner` as its base.
///
/// # Safety
/// `data` points at `prod(shape)` float32 values that `owner` holds for as long as it lives.
unsafe fn view_at<'py>(
    owner: &Bound<'py, PyAny>,
    data: *mut c_void,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let mut dims: Vec<npy_intp> = shape.iter().map(|d| *d as npy_intp).collect();
    let mut strides = vec![FLOAT32_BYTES as npy_intp; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * dims[axis + 1];
    }
    // Flags 0 leave the array read-only, and the given strides make numpy work out
    // contiguity and alignment; the array holds a reference to `owner` as its base.
    let descr = PY_ARRAY_API.PyArray_DescrFromType(py, NPY_TYPES::NPY_FLOAT as i32);
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

/// A new read-only float32 array of `shape` filled by `fill`, its first value at the start
/// of a cache line: numpy's own allocation is 16-byte aligned, and a 64-byte store that
/// straddles two lines costs both (the rebuild writes a whole layer in such stores).
fn array_of<'py>(
    py: Python<'py>,
    shape: &[usize],
    fill: impl FnOnce(&mut [f32]),
) -> PyResult<Bound<'py, PyAny>> {
    let count: usize = shape.iter().product();
    let spare = CACHE_LINE_BYTES / FLOAT32_BYTES;
    // SAFETY: `storage` is a new contiguous array no one else sees yet, every value of it
    // written below before Python can reach it (through the view's base); the view covers
    // `count` of its values from `skip`, and `skip <= spare`.
    unsafe {
        let storage = PyArray1::<f32>::new(py, count + spare, false);
        let values = storage.as_slice_mut().expect("a new array is contiguous");
        let skip = values.as_ptr().align_offset(CACHE_LINE_BYTES).min(spare);
        let (before, rest) = values.split_at_mut(skip);
        let (used, after) = rest.split_at_mut(count);
        before.fill(0.0);
        after.fill(0.0);
        fill(used);
        // The view is read-only; so is what it views, reachable as its base.
        (*storage.as_array_ptr()).flags &= !NPY_ARRAY_WRITEABLE;
        let data = values.as_mut_ptr().add(skip) as *mut c_void;
        view_at(storage.as_any(), data, shape)
    }
}

/// The size and alignment of a cache line on x86-64.
const CACHE_LINE_BYTES: usize = 64;

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
    /// `UpdateBinding` and `DecodedUpdate`, the frozen dataclasses a read returns.
    binding_type: Py<PyType>,
    decoded_type: Py<PyType>,
    /// Suffixes and what they name: a spec meets few configurations, so a scan comparing
    /// lengths first beats hashing a suffix of several hundred bytes.
    known: Mutex<Vec<(Vec<u8>, Arc<Configuration>)>>,
}

#[pymethods]
impl UpdateReader {
    #[new]
    fn new(prefix: Vec<u8>, binding_type: Py<PyType>, decoded_type: Py<PyType>) -> Self {
        Self {
            prefix,
            binding_type,
            decoded_type,
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

    /// The `DecodedUpdate` of a blob the writer would put out, or None for Python to read.
    fn read<'py>(
        &self,
        container: &Bound<'py, PyBytes>,
        max_header_bytes: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
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
                match rebuilt(py, layer, data)? {
                    Some(array) => array,
                    None => return Ok(None),
                }
            };
            delta.set_item(layer.name.bind(py), tensor)?;
        }
        let fields = PyDict::new(py);
        for (name, (_, value)) in field_names(py).iter().zip(binding) {
            let name = name.bind(py);
            match value {
                Value::Label(label) => fields.set_item(name, label)?,
                Value::Counter(counter) => fields.set_item(name, counter)?,
            }
        }
        let binding = filled(self.binding_type.bind(py), fields)?;
        let decoded = PyDict::new(py);
        decoded.set_item(intern!(py, "delta"), delta)?;
        decoded.set_item(intern!(py, "binding"), binding)?;
        decoded.set_item(intern!(py, "codec"), configuration.codec.clone_ref(py))?;
        Ok(Some(filled(self.decoded_type.bind(py), decoded)?))
    }
}

/// An instance of the frozen dataclass `cls` whose fields are `fields`, already checked as its
/// `__init__` would check them: set as its `__dict__` at once, where `__init__` sets each
/// field through `object.__setattr__` and takes three times as long. Equal to, and hashing
/// as, the instance `__init__` makes, as long as the class has no `__post_init__` and no
/// defaults (`tests/compression/test_compression_native.py` holds it to both).
fn filled<'py>(
    cls: &Bound<'py, PyType>,
    fields: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    // What `object.__new__(cls)` does for a class defined in Python, less its lookup and call.
    // SAFETY: `cls` is a live type object; the result is a new reference or null with an error.
    let instance = unsafe {
        Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyType_GenericAlloc(cls.as_type_ptr(), 0))?
    };
    // SAFETY: both pointers are live objects; a dataclass instance has a `__dict__` slot.
    if unsafe {
        pyo3::ffi::PyObject_GenericSetDict(instance.as_ptr(), fields.as_ptr(), std::ptr::null_mut())
    } < 0
    {
        return Err(PyErr::fetch(py));
    }
    Ok(instance)
}

/// A factored layer rebuilt from the blob's factors, or None where they are off their grids
/// or the rebuild is left to Python (`rebuild.low_rank_matrix`).
fn rebuilt<'py>(
    py: Python<'py>,
    layer: &Layer,
    data: &[u8],
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let (rows, cols, rank) = (layer.rows, layer.cols, layer.rank);
    let bits = grids::factor_bits(rank);
    let (Some(p), Some(q)) = (
        f32_at(data, layer.offsets.0, rows * rank),
        f32_at(data, layer.offsets.1, cols * rank),
    ) else {
        return Ok(None);
    };
    let (Some(p_grid), Some(q_grid)) = (grids::on_grid(p, bits), grids::on_grid(q, bits)) else {
        return Ok(None);
    };
    match grids::rebuild_kind(rank, p_grid, q_grid) {
        Rebuild::Elsewhere => Ok(None),
        Rebuild::Zero => array_of(py, &layer.shape, |out| out.fill(0.0)).map(Some),
        Rebuild::Float32 => {
            let q_t = transpose(q, cols, rank);
            let q_t = Matrix {
                values: &q_t,
                rows: rank,
                cols,
            };
            array_of(py, &layer.shape, |out| rebuild::rebuild(p, q_t, None, out)).map(Some)
        }
    }
}
