//! Libraries for Python: a `Library` object and ctypes' raw-handle functions
//! (`dlopen`, `dlsym`, `dlclose`), with the loader's own error messages.

use std::ffi::{c_void, OsString};

use pyo3::exceptions::{PyAttributeError, PyOSError, PyValueError};
use pyo3::prelude::*;
use rawffi::library::{Library as RawLibrary, RTLD_NOW};

/// An open shared library; `symbol(name)` gives addresses. Closed by `close()` only.
#[pyclass(module = "jitctypes._rawffi")]
pub struct Library {
    library: Option<RawLibrary>,
}

fn open(py: Python<'_>, path: Option<OsString>, mode: i32) -> PyResult<RawLibrary> {
    RawLibrary::open(path.as_deref(), mode | RTLD_NOW).map_err(|message| {
        let name = path.as_ref().map_or(&[][..], |path| path.as_encoded_bytes());
        loader_error::<PyOSError>(py, name, message)
    })
}

/// The error for a loader `message` about `name` (a library or symbol), as stock makes it:
/// from dlerror()'s bytes, which hold the name up to its first NUL. A name that is not
/// UTF-8 fails to decode there, and stock raises that `UnicodeDecodeError` (before 3.11.7,
/// as far as tested, 3.11.2: an `E` without arguments).
pub fn loader_error<E: pyo3::PyTypeInfo>(py: Python<'_>, name: &[u8], message: String) -> PyErr {
    let read = name.split(|&byte| byte == 0).next().unwrap_or_default();
    if std::str::from_utf8(read).is_ok() {
        return PyErr::new::<E, _>(message);
    }
    if py.version_info() < (3, 11, 7) {
        return PyErr::new::<E, _>(());
    }
    pyo3::types::PyBytes::new(py, read)
        .call_method1(pyo3::intern!(py, "decode"), ("utf-8",))
        .err()
        .unwrap_or_else(|| PyValueError::new_err("undecodable name"))
}

impl Library {
    fn library(&self) -> PyResult<&RawLibrary> {
        self.library.as_ref().ok_or_else(|| PyValueError::new_err("library is closed"))
    }
}

#[pymethods]
impl Library {
    /// Opens `path` (None: the running program) with `dlopen` flags; `RTLD_NOW` is always
    /// added, as ctypes does.
    #[new]
    #[pyo3(signature = (path, mode = 0))]
    fn new(py: Python<'_>, path: Option<OsString>, mode: i32) -> PyResult<Library> {
        Ok(Library { library: Some(open(py, path, mode)?) })
    }

    #[getter]
    fn handle(&self) -> PyResult<usize> {
        Ok(self.library()?.handle() as usize)
    }

    /// The address of `name`; `AttributeError` with the loader's message if it is missing.
    fn symbol(&self, name: &str) -> PyResult<usize> {
        let address = self.library()?.symbol(name).map_err(PyAttributeError::new_err)?;
        Ok(address as usize)
    }

    fn close(&mut self) -> PyResult<()> {
        match self.library.take() {
            Some(library) => library.close().map_err(PyOSError::new_err),
            None => Ok(()),
        }
    }
}

/// ctypes' `dlopen(name, mode)`: a raw handle.
#[pyfunction]
#[pyo3(signature = (path, mode = 0))]
pub fn dlopen(py: Python<'_>, path: Option<OsString>, mode: i32) -> PyResult<usize> {
    Ok(open(py, path, mode)?.handle() as usize)
}

/// ctypes' `dlsym(handle, name)`: an address; `OSError` when missing, as ctypes raises.
#[pyfunction]
pub fn dlsym(handle: usize, name: &str) -> PyResult<usize> {
    symbol_of_handle(handle, name.as_bytes()).map_err(PyOSError::new_err)
}

/// The address of `name` (up to its first NUL, as C reads it) in the library `handle`
/// (from `dlopen`), or the loader's message.
pub fn symbol_of_handle(handle: usize, name: &[u8]) -> Result<usize, String> {
    // SAFETY: the handle came from `dlopen` (ctypes' contract for raw handles).
    let library = unsafe { RawLibrary::from_handle(handle as *mut c_void) };
    Ok(library.symbol_bytes(name)? as usize)
}

/// ctypes' `dlclose(handle)`.
#[pyfunction]
pub fn dlclose(handle: usize) -> PyResult<()> {
    // SAFETY: the handle came from `dlopen` and is given up here.
    let library = unsafe { RawLibrary::from_handle(handle as *mut c_void) };
    library.close().map_err(PyOSError::new_err)
}
