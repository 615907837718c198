//! Type checks for the hot paths that do not go through pyo3's lazy type objects: pyo3's
//! `downcast` fetches the type object through a lazily-initialised cell on every call,
//! which costs more than the rest of a field read. The type objects are recorded once at
//! module initialisation and compared by pointer.

use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use crate::cdata::CData;
use crate::ctype::CType;
use crate::field::ElementInfo;
use crate::param::CArgObject;

static CTYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static CDATA: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static CARG: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static ELEMENT_INFO: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static SIMPLE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static ARRAY: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static POINTER: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());
static FUNCTION_POINTER: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// Records the type objects (called by the module initialiser).
pub fn record(py: Python<'_>) {
    CTYPE.store(CType::type_object_raw(py), Ordering::Relaxed);
    CDATA.store(CData::type_object_raw(py), Ordering::Relaxed);
    CARG.store(CArgObject::type_object_raw(py), Ordering::Relaxed);
    ELEMENT_INFO.store(ElementInfo::type_object_raw(py), Ordering::Relaxed);
    SIMPLE.store(crate::cdata::SimpleCData::type_object_raw(py), Ordering::Relaxed);
    ARRAY.store(crate::array::Array::type_object_raw(py), Ordering::Relaxed);
    POINTER.store(crate::pointer::Pointer::type_object_raw(py), Ordering::Relaxed);
    FUNCTION_POINTER.store(crate::funcptr::CFuncPtr::type_object_raw(py), Ordering::Relaxed);
}

/// The type object of `CArgObject` (`byref()` results).
pub fn carg_type() -> *mut ffi::PyTypeObject {
    CARG.load(Ordering::Relaxed)
}

/// `obj` as a `CType` (a final class: an exact type check suffices).
pub fn as_ctype<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, CType>> {
    // SAFETY: reading the type of a live object; the downcast is to its exact class.
    unsafe {
        (ffi::Py_TYPE(obj.as_ptr()) == CTYPE.load(Ordering::Relaxed))
            .then(|| obj.downcast_unchecked::<CType>())
    }
}

/// `obj` as a `CArgObject` (a final class).
pub fn as_carg<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, CArgObject>> {
    // SAFETY: as for `as_ctype`.
    unsafe {
        (ffi::Py_TYPE(obj.as_ptr()) == CARG.load(Ordering::Relaxed))
            .then(|| obj.downcast_unchecked::<CArgObject>())
    }
}

/// `obj` as a `_CData` (any ctypes instance).
pub fn as_cdata<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, CData>> {
    // SAFETY: a subtype check of a live object against a live type object.
    unsafe {
        let is_cdata = ffi::PyObject_TypeCheck(obj.as_ptr(), CDATA.load(Ordering::Relaxed)) != 0;
        is_cdata.then(|| obj.downcast_unchecked::<CData>())
    }
}

/// True if `obj` is a ctypes instance.
///
/// # Safety
/// `obj` is a live object.
pub unsafe fn is_cdata(obj: *mut ffi::PyObject) -> bool {
    // SAFETY: caller's contract; a live type object.
    unsafe { ffi::PyObject_TypeCheck(obj, CDATA.load(Ordering::Relaxed)) != 0 }
}

/// `obj` as an `ElementInfo` (a final class).
pub fn as_element_info<'a, 'py>(obj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, ElementInfo>> {
    // SAFETY: as for `as_ctype`.
    unsafe {
        (ffi::Py_TYPE(obj.as_ptr()) == ELEMENT_INFO.load(Ordering::Relaxed))
            .then(|| obj.downcast_unchecked::<ElementInfo>())
    }
}

/// Which Rust class a ctypes class derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Simple,
    Array,
    Pointer,
    FunctionPointer,
    /// `_CData` itself: structures and unions.
    Data,
}

/// The Rust class `cls` derives from.
pub fn derives_from(cls: &Bound<'_, pyo3::types::PyType>) -> Base {
    let is = |base: &AtomicPtr<ffi::PyTypeObject>| {
        // SAFETY: two live type objects.
        unsafe { ffi::PyType_IsSubtype(cls.as_type_ptr(), base.load(Ordering::Relaxed)) != 0 }
    };
    if is(&SIMPLE) {
        Base::Simple
    } else if is(&ARRAY) {
        Base::Array
    } else if is(&POINTER) {
        Base::Pointer
    } else if is(&FUNCTION_POINTER) {
        Base::FunctionPointer
    } else {
        Base::Data
    }
}

/// True if `cls` is a ctypes class (derives from `_CData`): only those may be
/// instantiated as ctypes objects, whatever `__ctype__` other classes carry.
pub fn is_cdata_class(cls: &Bound<'_, pyo3::types::PyType>) -> bool {
    // SAFETY: two live type objects.
    unsafe { ffi::PyType_IsSubtype(cls.as_type_ptr(), CDATA.load(Ordering::Relaxed)) != 0 }
}
