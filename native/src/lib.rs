//! Flare's native kernels, built from `native/` by `scripts/setup.sh`: the BLS12-381 pairing
//! check with kept Miller-loop lines, and PowerSGD update blobs written and read whole.
//! Python keeps a reference for each and runs it wherever this module is not built.

mod binding;
mod dot;
mod grids;
#[cfg(test)]
mod kernel_tests;
mod lanes;
mod levels;
mod lowrank;
mod pairing;
mod reader;
mod rebuild;
mod update;
mod writer;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use levels::Level;

/// The instruction sets the codec's kernels can run on here, narrowest first.
#[pyfunction]
fn simd_levels() -> Vec<&'static str> {
    Level::supported().into_iter().map(Level::name).collect()
}

/// The instruction set the codec's kernels run on now.
#[pyfunction]
fn simd_level() -> &'static str {
    Level::current().name()
}

/// Run the codec's kernels on `level` from now on (every level writes the same bits; tests
/// hold them to it).
#[pyfunction]
fn use_simd_level(level: &str) -> PyResult<()> {
    let chosen = Level::supported()
        .into_iter()
        .find(|supported| supported.name() == level)
        .ok_or_else(|| PyValueError::new_err(format!("this CPU does not run {level:?}")))?;
    Level::select(chosen);
    Ok(())
}

#[pymodule]
fn flare_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<pairing::PairingCheck>()?;
    module.add_class::<writer::UpdateWriter>()?;
    module.add_class::<reader::UpdateReader>()?;
    module.add_function(wrap_pyfunction!(simd_levels, module)?)?;
    module.add_function(wrap_pyfunction!(simd_level, module)?)?;
    module.add_function(wrap_pyfunction!(use_simd_level, module)?)?;
    Ok(())
}
