//! The pairing check of Flare's VRF proofs and proofs of possession, `e(sig, g2) == e(H(m), pk)`,
//! through blst, with the Miller-loop lines of every G2 point it meets computed once.
//!
//! Both G2 points of the check are fixed for a long time: `g2` always, a public key from its
//! registration on. A Miller loop walks the bits of the curve's parameter and, at each step,
//! doubles (and sometimes adds) the G2 point to find the line it evaluates at the G1 point;
//! those lines depend on the G2 point alone. Kept per key, they leave each check the line
//! evaluations, the Fp12 arithmetic and one final exponentiation. pyblst, which the Python
//! side otherwise uses, computes them again at every check.
//!
//! Points come in blst's uncompressed serialisation (`x || y`, big-endian; a G2 coordinate
//! `c1 || c0`), from encodings the caller has already checked to be points of the prime-order
//! subgroup; they are parsed again here (the curve equation) and refused if that fails.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use blst::{
    blst_fp12, blst_fp12_finalverify, blst_fp6, blst_hash_to_g1, blst_miller_loop_lines, blst_p1,
    blst_p1_affine, blst_p1_deserialize, blst_p1_to_affine, blst_p2_affine,
    blst_p2_affine_generator, blst_p2_deserialize, blst_precompute_lines, BLST_ERROR,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Lines of one Miller loop over BLS12-381's parameter: blst's `Qlines` array length.
const LINE_COUNT: usize = 68;
const G1_BYTES: usize = 96;
const G2_BYTES: usize = 192;
/// Hashed messages kept: the participants of one round attempt all sign the same VRF input.
const HASHED_KEPT: usize = 16;

type Lines = Box<[blst_fp6; LINE_COUNT]>;

fn lines_of(point: &blst_p2_affine) -> Lines {
    let mut lines = Box::new([blst_fp6::default(); LINE_COUNT]);
    // SAFETY: `lines` holds the LINE_COUNT elements blst writes; `point` is a valid affine point.
    unsafe { blst_precompute_lines(lines.as_mut_ptr(), point) };
    lines
}

fn g1_point(bytes: &[u8]) -> PyResult<blst_p1_affine> {
    if bytes.len() != G1_BYTES {
        return Err(PyValueError::new_err("a G1 point is 96 bytes, x || y"));
    }
    let mut point = blst_p1_affine::default();
    // SAFETY: `bytes` holds the 96 bytes an uncompressed G1 point takes.
    match unsafe { blst_p1_deserialize(&mut point, bytes.as_ptr()) } {
        BLST_ERROR::BLST_SUCCESS => Ok(point),
        _ => Err(PyValueError::new_err("not a point of G1")),
    }
}

fn g2_point(bytes: &[u8]) -> PyResult<blst_p2_affine> {
    if bytes.len() != G2_BYTES {
        return Err(PyValueError::new_err("a G2 point is 192 bytes, x || y"));
    }
    let mut point = blst_p2_affine::default();
    // SAFETY: `bytes` holds the 192 bytes an uncompressed G2 point takes.
    match unsafe { blst_p2_deserialize(&mut point, bytes.as_ptr()) } {
        BLST_ERROR::BLST_SUCCESS => Ok(point),
        _ => Err(PyValueError::new_err("not a point of G2")),
    }
}

fn hash_to_g1(message: &[u8], dst: &[u8]) -> blst_p1_affine {
    let mut projective = blst_p1::default();
    let mut point = blst_p1_affine::default();
    // SAFETY: the pointers and lengths are those of live slices; no augmentation string.
    unsafe {
        blst_hash_to_g1(
            &mut projective,
            message.as_ptr(),
            message.len(),
            dst.as_ptr(),
            dst.len(),
            std::ptr::null(),
            0,
        );
        blst_p1_to_affine(&mut point, &projective);
    }
    point
}

/// Up to `capacity` entries; the oldest goes first.
struct Kept<V> {
    entries: HashMap<Vec<u8>, V>,
    order: VecDeque<Vec<u8>>,
    capacity: usize,
}

impl<V: Clone> Kept<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get_or_insert_with(
        &mut self,
        key: &[u8],
        make: impl FnOnce() -> PyResult<V>,
    ) -> PyResult<V> {
        if let Some(value) = self.entries.get(key) {
            return Ok(value.clone());
        }
        let value = make()?;
        if self.capacity == 0 {
            return Ok(value);
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => self.entries.remove(&oldest),
                None => break,
            };
        }
        self.entries.insert(key.to_vec(), value.clone());
        self.order.push_back(key.to_vec());
        Ok(value)
    }
}

/// The pairing check with the lines of `g2` and of up to `keys_kept` public keys kept.
#[pyclass(module = "flare_native", frozen)]
pub struct PairingCheck {
    generator_lines: Lines,
    key_lines: Mutex<Kept<std::sync::Arc<Lines>>>,
    hashed: Mutex<Kept<blst_p1_affine>>,
}

#[pymethods]
impl PairingCheck {
    #[new]
    fn new(keys_kept: usize) -> Self {
        // SAFETY: blst returns a pointer to its static generator.
        let generator = unsafe { *blst_p2_affine_generator() };
        Self {
            generator_lines: lines_of(&generator),
            key_lines: Mutex::new(Kept::new(keys_kept)),
            hashed: Mutex::new(Kept::new(HASHED_KEPT)),
        }
    }

    /// Whether `e(signature, g2) == e(H(message), public_key)`, `H` being RFC 9380's
    /// hash-to-G1 under `dst`; raises `ValueError` for bytes that are not a point.
    fn verify(
        &self,
        py: Python<'_>,
        public_key: &[u8],
        message: &[u8],
        dst: &[u8],
        signature: &[u8],
    ) -> PyResult<bool> {
        let signature = g1_point(signature)?;
        let key_lines = self
            .key_lines
            .lock()
            .map_err(|_| PyValueError::new_err("a pairing check panicked"))?
            .get_or_insert_with(public_key, || {
                Ok(std::sync::Arc::new(lines_of(&g2_point(public_key)?)))
            })?;
        let mut key = message.to_vec();
        key.extend_from_slice(dst);
        key.push(dst.len() as u8);
        let hashed = self
            .hashed
            .lock()
            .map_err(|_| PyValueError::new_err("a pairing check panicked"))?
            .get_or_insert_with(&key, || Ok(hash_to_g1(message, dst)))?;
        Ok(py.allow_threads(|| {
            let mut left = blst_fp12::default();
            let mut right = blst_fp12::default();
            // SAFETY: both line arrays hold LINE_COUNT elements; the points are valid.
            unsafe {
                blst_miller_loop_lines(&mut left, self.generator_lines.as_ptr(), &signature);
                blst_miller_loop_lines(&mut right, key_lines.as_ptr(), &hashed);
                blst_fp12_finalverify(&left, &right)
            }
        }))
    }
}
