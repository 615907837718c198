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

fn open(path: Option<OsString>, mode: i32) -> PyResult<RawLibrary> {
    RawLibrary::open(path.as_deref(), mode | RTLD_NOW).map_err(PyOSError::new_err)
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
    fn new(path: Option<OsString>, mode: i32) -> PyResult<Library> {
        Ok(Library { library: Some(open(path, mode)?) })
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
pub fn dlopen(path: Option<OsString>, mode: i32) -> PyResult<usize> {
    Ok(open(path, mode)?.handle() as usize)
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
