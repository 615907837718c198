//! C slots installed directly on ctypes classes where pyo3's own way costs too much.
//!
//! pyo3 exposes `__init__` as an ordinary method, so every Python subclass (every ctypes
//! type) gets CPython's generic `slot_tp_init`: `c_int(5)` then looks `__init__` up and
//! calls it through an argument tuple, which costs more than the initialisation itself.
//! `enable_fast_init(cls)` (called by the metaclasses for classes that do not define
//! `__init__` themselves) points `tp_init` at a C function running the same Rust code.

use std::os::raw::c_int;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::array::Array;
use crate::cdata::SimpleCData;
use crate::known_types::{derives_from, Base};

/// A Rust class whose `__init__` the C `tp_init` runs.
trait Initialise: pyo3::PyClass {
    fn init_with(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>) -> PyResult<()>;
}

impl Initialise for SimpleCData {
    fn init_with(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        SimpleCData::init_with(slf, args)
    }
}

impl Initialise for Array {
    fn init_with(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        Array::init_with(slf, args)
    }
}

/// `tp_init` of the classes derived from `T`: `c_int(5)`, `(c_int * 3)(1, 2)`.
unsafe extern "C" fn fast_init<T: Initialise>(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> c_int {
    // pyo3's entry trampoline for three-pointer slots (GIL bookkeeping, errors, panics).
    // SAFETY: CPython calls tp_init with the GIL held and a new instance of the class.
    unsafe { pyo3::impl_::trampoline::setattrofunc(slf, args, kwargs, fast_init_body::<T>) }
}

unsafe fn fast_init_body<T: Initialise>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    _kwargs: *mut ffi::PyObject,
) -> PyResult<c_int> {
    // SAFETY: tp_init of a class derived from `T` (checked when installed); `args` is a
    // tuple.
    let (slf, args) = unsafe {
        (
            Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<T>(),
            Bound::from_borrowed_ptr(py, args).downcast_into_unchecked::<PyTuple>(),
        )
    };
    T::init_with(&slf, &args)?;
    Ok(0)
}

/// Points `tp_init` of `cls` (a simple or array type that defines no `__init__` of its
/// own) at the C initialiser of its Rust base.
#[pyfunction]
pub fn enable_fast_init(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let init: ffi::initproc = match derives_from(cls) {
        Base::Simple => fast_init::<SimpleCData>,
        Base::Array => fast_init::<Array>,
        _ => return Err(PyTypeError::new_err("only simple and array types have a fast __init__")),
    };
    // SAFETY: a heap type whose instances are laid out by the Rust class the initialiser
    // expects; CPython reads the slot at each instantiation.
    unsafe {
        (*cls.as_type_ptr()).tp_init = Some(init);
        ffi::PyType_Modified(cls.as_type_ptr());
    }
    Ok(())
}
