//! `jitctypes._rawffi`: the extension module, the only crate that touches the Python C API.
//!
//! The `_rawffi` interface (as PyPy named it) on which `jitctypes._ctypes` is built:
//! - `CType` (ctype.rs): a C type — scalar by ctypes type code, array, aggregate, void;
//! - `layout()` (layout.rs): structure/union layout, bit-fields, `_pack_`, byte order;
//! - `Memory`, `read`, `write`, `memmove`, `memset`, `string_at`, `wstring_at` (memory.rs);
//! - `Library`, `dlopen`, `dlsym`, `dlclose` (library.rs);
//! - `FuncPtr` (function.rs): calls through a compiled stub or libffi;
//! - `Callback` (callback.rs): C function pointers that call Python;
//! - `get_errno`, `set_errno`: ctypes' private errno; `stub_cache_stats()`;
//! - the instance side of `_ctypes`: `_CData`, `_SimpleCData`, `addressof`, `sizeof`,
//!   `alignment`, `byref`, `resize`, `at_address` (cdata.rs); `CField` (field.rs);
//!   `Array` (array.rs); `_Pointer` (pointer.rs); `CFuncPtr`, `ArgumentError` (funcptr.rs);
//!   `CArgObject` and the `from_param` functions (param.rs); the exported C helpers
//!   `_cast_addr`, `_string_at_addr`... (helpers.rs).
//!
//! Value conversions (convert.rs) follow stock ctypes' per-type-code rules and messages.

mod array;
mod callback;
mod cdata;
mod classdef;
mod convert;
mod ctype;
mod entry;
mod errors;
mod fastcall;
mod fastfn;
mod field;
mod funcptr;
mod function;
mod gil;
mod helpers;
mod known_types;
mod layout;
mod library;
mod memory;
mod param;
mod pointer;
mod scalar;
mod slots;

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
    dict.set_item("entry_stubs", stats.entry_stubs)?;
    Ok(dict)
}

/// ctypes' `get_errno()`: the calling thread's private errno.
#[pyfunction]
fn get_errno() -> i32 {
    rawffi::call::private_errno()
}

/// ctypes' `set_errno(value)`: sets the private errno, returns the previous value.
#[pyfunction]
fn set_errno(value: i32) -> i32 {
    rawffi::call::set_private_errno(value)
}

/// True unless compiled stubs are switched off (`JITCTYPES_JIT=0`, `set_jit_enabled`).
#[pyfunction]
fn jit_enabled() -> bool {
    function::jit_enabled()
}

/// Switches compiled stubs on or off for the `CFuncPtr` calls made from now on (the
/// `_rawffi.FuncPtr` objects keep the path they were made with).
#[pyfunction]
fn set_jit_enabled(enabled: bool) {
    function::set_jit_enabled(enabled)
}

/// Sets how many calls a function object makes through libffi before its stubs are
/// compiled (`JITCTYPES_COMPILE_AFTER`; 0 or 1: at the first call).
#[pyfunction]
fn set_compile_after(calls: u32) {
    function::set_compile_after(calls)
}

#[pymodule]
fn _rawffi(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("RTLD_LOCAL", rawffi::library::RTLD_LOCAL)?;
    module.add("RTLD_GLOBAL", rawffi::library::RTLD_GLOBAL)?;
    module.add("RTLD_NOW", rawffi::library::RTLD_NOW)?;
    module.add("RTLD_LAZY", rawffi::library::RTLD_LAZY)?;
    module.add_class::<ctype::CType>()?;
    module.add_class::<layout::PyLayout>()?;
    module.add_class::<memory::Memory>()?;
    module.add_class::<library::Library>()?;
    module.add_class::<function::FuncPtr>()?;
    module.add_class::<callback::Callback>()?;
    module.add_class::<cdata::CData>()?;
    module.add_class::<cdata::BufferFormat>()?;
    module.add_class::<field::ElementInfo>()?;
    module.add_class::<cdata::SimpleCData>()?;
    param::register(module)?;
    scalar::record_int_layout(module.py())?;
    known_types::record(module.py());
    cdata::measure_cdata_offset(module.py())?;
    slots::install_slots(module.py())?;
    funcptr::register(module)?;
    helpers::register(module)?;
    module.add_function(wrap_pyfunction!(cdata::resize, module)?)?;
    module.add_function(wrap_pyfunction!(gil::close_for_exit, module)?)?;
    module.add_function(wrap_pyfunction!(slots::enable_fast_init, module)?)?;
    module.add_function(wrap_pyfunction!(slots::init_fields, module)?)?;
    module.add_function(wrap_pyfunction!(slots::enable_fast_getitem, module)?)?;
    module.add_class::<field::CField>()?;
    module.add_function(wrap_pyfunction!(field::make_field, module)?)?;
    module.add_function(wrap_pyfunction!(field::field_parts, module)?)?;
    module.add_function(wrap_pyfunction!(slots::make_immutable, module)?)?;
    module.add_function(wrap_pyfunction!(slots::name_as_stock, module)?)?;
    module.add_function(wrap_pyfunction!(slots::construct_by_vectorcall, module)?)?;
    module.add_class::<array::Array>()?;
    module.add_class::<pointer::Pointer>()?;
    module.add_function(wrap_pyfunction!(array::char_array_value, module)?)?;
    module.add_function(wrap_pyfunction!(array::wchar_array_value, module)?)?;
    module.add_function(wrap_pyfunction!(array::set_char_array_value, module)?)?;
    module.add_function(wrap_pyfunction!(array::set_wchar_array_value, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::at_address, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::keep, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::buffer_address, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::addressof, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::byref, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::sizeof, module)?)?;
    module.add_function(wrap_pyfunction!(pointer::pointer, module)?)?;
    cdata::install_direct_functions(module)?;
    module.add_function(wrap_pyfunction!(cdata::alignment, module)?)?;
    module.add_function(wrap_pyfunction!(cdata::is_simple_type_code, module)?)?;
    module.add_function(wrap_pyfunction!(layout::layout, module)?)?;
    module.add_function(wrap_pyfunction!(classdef::define_fields, module)?)?;
    module.add_function(wrap_pyfunction!(classdef::define_array, module)?)?;
    module.add_function(wrap_pyfunction!(classdef::install_scalar_buffer_format, module)?)?;
    module.add_function(wrap_pyfunction!(classdef::define_pointer, module)?)?;
    module.add_function(wrap_pyfunction!(classdef::set_pointer_target, module)?)?;
    module.add_function(wrap_pyfunction!(memory::read, module)?)?;
    module.add_function(wrap_pyfunction!(memory::write, module)?)?;
    module.add_function(wrap_pyfunction!(memory::memmove, module)?)?;
    module.add_function(wrap_pyfunction!(memory::memset, module)?)?;
    module.add_function(wrap_pyfunction!(memory::string_at, module)?)?;
    module.add_function(wrap_pyfunction!(memory::wstring_at, module)?)?;
    module.add_function(wrap_pyfunction!(library::dlopen, module)?)?;
    module.add_function(wrap_pyfunction!(library::dlsym, module)?)?;
    module.add_function(wrap_pyfunction!(library::dlclose, module)?)?;
    module.add_function(wrap_pyfunction!(get_errno, module)?)?;
    module.add_function(wrap_pyfunction!(set_errno, module)?)?;
    module.add_function(wrap_pyfunction!(jit_enabled, module)?)?;
    module.add_function(wrap_pyfunction!(set_jit_enabled, module)?)?;
    module.add_function(wrap_pyfunction!(set_compile_after, module)?)?;
    module.add_function(wrap_pyfunction!(stub_cache_stats, module)?)?;
    Ok(())
}
