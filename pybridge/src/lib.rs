//! `jitctypes._rawffi`: the extension module, the only crate that touches the Python C API.
//!
//! So far it exposes the state of the stub cache; the `_rawffi` interface proper (libraries,
//! memory, layout, calls, callbacks) is issue 3.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Totals of the process-wide stub cache: stubs compiled, their code bytes, the time spent
/// compiling them (µs) and the libffi call descriptions prepared.
#[pyfunction]
fn stub_cache_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let stats = jit::StubCache::global().stats();
    let dict = PyDict::new(py);
    dict.set_item("stubs", stats.stubs)?;
    dict.set_item("code_bytes", stats.code_bytes)?;
    dict.set_item("compile_time_us", stats.compile_time.as_micros() as u64)?;
    dict.set_item("libffi_descriptions", stats.libffi_descriptions)?;
    Ok(dict)
}

#[pymodule]
fn _rawffi(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_function(wrap_pyfunction!(stub_cache_stats, module)?)?;
    Ok(())
}
