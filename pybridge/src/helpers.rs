//! The C functions whose addresses `_ctypes` exports (`_string_at_addr`,
//! `_wstring_at_addr`, `_cast_addr`, `_memmove_addr`, `_memset_addr`): the stdlib
//! `ctypes` package wraps them in `PYFUNCTYPE`/`CFUNCTYPE` prototypes and calls them as
//! foreign functions, so they must be real C-ABI functions. The `PYFUNCTYPE` ones run with
//! the GIL held and report errors as a NULL result with a Python exception set.

use std::ffi::{c_char, c_int, c_void};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

use crate::cdata::{class_ctype, CData};
use crate::ctype::Code;
use crate::memory;

/// Hands a result to C: a new reference, or NULL with the error set.
fn into_c_result(py: Python<'_>, result: PyResult<PyObject>) -> *mut ffi::PyObject {
    match result {
        Ok(object) => object.into_ptr(),
        Err(error) => {
            error.restore(py);
            std::ptr::null_mut()
        }
    }
}

/// `string_at(ptr, size)`: `size` bytes at `ptr`, or up to the NUL when `size` is -1.
extern "C" fn string_at(ptr: *const c_char, size: c_int) -> *mut ffi::PyObject {
    // SAFETY: called through a PYFUNCTYPE prototype, so with the GIL held.
    let py = unsafe { Python::assume_gil_acquired() };
    let result =
        memory::string_at(py, ptr as usize, size as isize).map(|bytes| bytes.into_any().unbind());
    into_c_result(py, result)
}

/// `wstring_at(ptr, size)`: as `string_at`, for `wchar_t` strings.
extern "C" fn wstring_at(ptr: *const u32, size: c_int) -> *mut ffi::PyObject {
    // SAFETY: as for `string_at`.
    let py = unsafe { Python::assume_gil_acquired() };
    into_c_result(py, memory::wstring_at(py, ptr as usize, size as isize))
}

/// `cast(obj, typ)`: a new instance of the pointer type `ctype` holding `ptr`, sharing
/// the kept objects of `src` (and keeping `src` itself) as stock ctypes does.
extern "C" fn cast(
    ptr: *mut c_void,
    src: *mut ffi::PyObject,
    ctype: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as for `string_at`; the two objects are borrowed from the caller's
    // arguments, alive for the call.
    let py = unsafe { Python::assume_gil_acquired() };
    let (src, ctype) =
        unsafe { (Bound::from_borrowed_ptr(py, src), Bound::from_borrowed_ptr(py, ctype)) };
    into_c_result(py, cast_to(ptr as usize, &src, &ctype))
}

fn cast_to(
    address: usize,
    src: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
) -> PyResult<PyObject> {
    let py = src.py();
    check_pointer_type(target)?;
    let result = target.call0()?;
    let result_data = result.downcast::<CData>()?;
    if let Ok(source) = src.downcast::<CData>() {
        let shared = CData::shared_objects(source)?;
        if let Some(shared) = &shared {
            if let Ok(dict) = shared.bind(py).downcast::<PyDict>() {
                dict.set_item(src.as_ptr() as usize, src)?;
            }
        }
        let replaced = result_data.borrow_mut().set_objects(shared);
        drop(replaced);
    }
    let destination = result_data.borrow().address();
    // SAFETY: a pointer type's instance holds one pointer.
    unsafe { *(destination as *mut usize) = address };
    Ok(result.unbind())
}

/// `cast`'s second argument: a pointer type, function pointer type, or a simple pointer
/// type (`c_void_p`, `c_char_p`, `c_wchar_p`, `py_object`).
fn check_pointer_type(target: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(cls) = target.downcast::<PyType>() {
        if let Ok(ctype) = class_ctype(cls) {
            let ctype = ctype.get();
            let simple_pointer = matches!(
                ctype.code(),
                Some((
                    Code::VoidPointer | Code::CharPointer | Code::WideCharPointer | Code::PyObject,
                    _
                ))
            );
            if ctype.is_pointer_type || simple_pointer {
                return Ok(());
            }
            return Err(not_a_pointer_type(Some(cls)));
        }
        // 3.13 names no type that is not a ctypes type (an abstract one, `Structure`, is).
        let named = (target.py().version_info() < (3, 13)
            || crate::known_types::is_cdata_class(cls))
        .then_some(cls);
        return Err(not_a_pointer_type(named));
    }
    let named = (target.py().version_info() < (3, 13)).then(|| target.get_type());
    Err(not_a_pointer_type(named.as_ref()))
}

/// Stock's error for `cast`'s second argument, naming the type by its C name (our base
/// classes carry stock's, `_ctypes.Structure`).
fn not_a_pointer_type(named: Option<&Bound<'_, PyType>>) -> PyErr {
    let Some(cls) = named else {
        return PyTypeError::new_err("cast() argument 2 must be a pointer type");
    };
    // SAFETY: a live type's C name, a NUL-terminated string it owns.
    let name = unsafe { std::ffi::CStr::from_ptr((*cls.as_type_ptr()).tp_name) };
    PyTypeError::new_err(format!(
        "cast() argument 2 must be a pointer type, not {}",
        name.to_string_lossy()
    ))
}

extern "C" {
    fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn memset(dst: *mut c_void, value: c_int, n: usize) -> *mut c_void;
}

/// Adds the addresses to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("_string_at_addr", string_at as *const () as usize)?;
    module.add("_wstring_at_addr", wstring_at as *const () as usize)?;
    module.add("_cast_addr", cast as *const () as usize)?;
    module.add("_memmove_addr", memmove as *const () as usize)?;
    module.add("_memset_addr", memset as *const () as usize)?;
    module.add_function(wrap_pyfunction!(object_from_pointer, module)?)?;
    module.add_function(wrap_pyfunction!(incref, module)?)?;
    module.add_function(wrap_pyfunction!(decref, module)?)?;
    Ok(())
}

/// `PyObj_FromPtr(address)`: the object at `address` (the caller vouches for it).
#[pyfunction]
#[pyo3(name = "PyObj_FromPtr")]
pub fn object_from_pointer(py: Python<'_>, address: usize) -> PyResult<PyObject> {
    if address == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("NULL pointer access"));
    }
    // SAFETY: the caller promises a live object at this address, as with stock ctypes.
    Ok(unsafe { PyObject::from_borrowed_ptr(py, address as *mut ffi::PyObject) })
}

/// `Py_INCREF(obj)`: adds a reference (that is never given back) and returns `obj`.
#[pyfunction]
#[pyo3(name = "Py_INCREF")]
pub fn incref(obj: Bound<'_, PyAny>) -> Bound<'_, PyAny> {
    // SAFETY: `obj` is a live object.
    unsafe { ffi::Py_IncRef(obj.as_ptr()) };
    obj
}

/// `Py_DECREF(obj)`: drops a reference taken earlier and returns `obj`.
#[pyfunction]
#[pyo3(name = "Py_DECREF")]
pub fn decref(obj: Bound<'_, PyAny>) -> Bound<'_, PyAny> {
    // SAFETY: `obj` is live, and we hold another reference to it for the return.
    unsafe { ffi::Py_DecRef(obj.as_ptr()) };
    obj
}
