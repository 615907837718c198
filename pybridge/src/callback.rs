//! `Callback`: a C function pointer that calls a Python callable, from any thread.
//!
//! Arguments are converted to Python values by type, the callable is called with the GIL
//! held (taken with `PyGILState_Ensure`, so threads Python never saw may call it), and the
//! result is converted back. An exception is reported through `sys.unraisablehook` and the
//! C caller gets a zero result, as with stock ctypes.

use std::ffi::c_void;
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeWarning;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rawffi::callback::Callback as RawCallback;

use crate::convert::{load, store, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::function::build_signature;

#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct Callback {
    callback: RawCallback,
    #[pyo3(get)]
    callable: Py<PyAny>,
}

/// Everything the handler needs, shared with the closure.
struct Target {
    callable: Py<PyAny>,
    argtypes: Vec<Py<CType>>,
    restype: Option<Py<CType>>,
    ret_size: usize,
}

impl Target {
    /// Runs the callable for one C call. Never fails: errors become unraisable.
    fn invoke(&self, args: *const *const c_void, ret: *mut c_void) {
        // SAFETY: a plain query of the interpreter's state, valid from any thread.
        if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
            // No interpreter (C called back after Python ended): C gets zeros.
            if self.restype.is_some() {
                // SAFETY: libffi's return buffer holds the return type (8 bytes at least).
                unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, self.ret_size) };
            }
            return;
        }
        Python::with_gil(|py| {
            if self.restype.is_some() {
                // SAFETY: libffi's return buffer holds the return type (8 bytes at least).
                unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, self.ret_size) };
            }
            if let Err(error) = self.call_python(py, args, ret) {
                error.write_unraisable(py, Some(self.callable.bind(py)));
            }
        })
    }

    fn call_python(
        &self,
        py: Python<'_>,
        args: *const *const c_void,
        ret: *mut c_void,
    ) -> PyResult<()> {
        let mut values = Vec::with_capacity(self.argtypes.len());
        for (index, ctype) in self.argtypes.iter().enumerate() {
            // SAFETY: libffi passes one pointer per declared argument, each to a value of
            // its type.
            let value = unsafe { load(py, ctype.get(), (*args.add(index)).cast()) }?;
            values.push(value);
        }
        let result = self.callable.bind(py).call1(PyTuple::new(py, values)?)?;
        let Some(restype) = &self.restype else { return Ok(()) };
        let restype = restype.get();
        if matches!(restype.shape, Shape::Void) {
            return Ok(());
        }
        let mut keep = KeepAlive::new();
        // SAFETY: the return buffer holds a value of the result type.
        unsafe { store(&result, restype, ret.cast(), &mut keep)? };
        if !keep.is_empty() {
            // The C caller holds a pointer into these objects: they must never die.
            let is_object = matches!(restype.code(), Some((Code::PyObject, _)));
            keep.into_iter().for_each(std::mem::forget);
            if !is_object {
                PyErr::warn(
                    py,
                    &py.get_type::<PyRuntimeWarning>(),
                    c"memory leak in callback function.",
                    1,
                )?;
            }
        }
        Ok(())
    }
}

#[pymethods]
impl Callback {
    /// A C function pointer of type `restype (*)(argtypes...)` that calls `callable`.
    #[new]
    #[pyo3(signature = (callable, argtypes, restype = None))]
    fn new(
        callable: Bound<'_, PyAny>,
        argtypes: Vec<Bound<'_, CType>>,
        restype: Option<Bound<'_, CType>>,
    ) -> PyResult<Callback> {
        let signature = build_signature(&argtypes, restype.as_ref(), None)?;
        let target = Arc::new(Target {
            callable: callable.clone().unbind(),
            argtypes: argtypes.into_iter().map(Bound::unbind).collect(),
            restype: restype.map(Bound::unbind),
            ret_size: signature.ret_buffer_size(),
        });
        // The callable may drop the last reference to this callback while it runs: the
        // handler works on its own reference to the target, never on the closure's.
        let handler = Box::new(move |args: *const *const c_void, ret: *mut c_void| {
            Arc::clone(&target).invoke(args, ret)
        });
        let callback = RawCallback::new(&signature, handler).map_err(|reason| {
            pyo3::exceptions::PyTypeError::new_err(format!("cannot make this callback: {reason}"))
        })?;
        Ok(Callback { callback, callable: callable.unbind() })
    }

    /// The C function pointer, valid while this object lives.
    #[getter]
    fn address(&self) -> usize {
        self.callback.code_address() as usize
    }
}
