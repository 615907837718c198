//! C slots installed directly on ctypes classes where pyo3's own way costs too much.
//!
//! Field descriptors (`CField`) and arrays get C functions for `tp_descr_get`,
//! `tp_descr_set` and `mp_subscript` that skip pyo3's generated wrappers (a
//! lazily-initialised type check and argument extraction per access) and, for reads, its
//! GIL bookkeeping: `install_slots`.
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
use crate::field::CField;
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

/// Points `mp_subscript` and `mp_ass_subscript` of the array type `cls` (which defines no
/// `__getitem__`/`__setitem__` of its own) at the C element reader and writer. (CPython gives a subclass the function the base's
/// `__getitem__` wrapper was made from, pyo3's, so each class is set here.)
#[pyfunction]
pub fn enable_fast_getitem(cls: &Bound<'_, PyType>) -> PyResult<()> {
    if derives_from(cls) != Base::Array {
        return Err(PyTypeError::new_err("only array types have a fast __getitem__"));
    }
    // SAFETY: a heap type laid out by `Array`; its mapping methods live in the type object.
    unsafe {
        let mapping = (*cls.as_type_ptr()).tp_as_mapping;
        if !mapping.is_null() {
            (*mapping).mp_subscript = Some(array_subscript);
            (*mapping).mp_ass_subscript = Some(array_assign);
        }
        ffi::PyType_Modified(cls.as_type_ptr());
    }
    Ok(())
}

/// `mp_ass_subscript` of arrays: `array[i] = v`, `array[i:j] = seq` (`del`: value NULL).
unsafe extern "C" fn array_assign(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: CPython calls the slot with the GIL held, on an array instance.
    unsafe { pyo3::impl_::trampoline::setattrofunc(slf, key, value, array_assign_body) }
}

unsafe fn array_assign_body(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> PyResult<c_int> {
    if value.is_null() {
        return Err(PyTypeError::new_err("Array does not support item deletion"));
    }
    // SAFETY: as for `array_subscript`; `key` and `value` are live objects.
    let (array, key, value) = unsafe {
        (
            Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<Array>(),
            Bound::from_borrowed_ptr(py, key),
            Bound::from_borrowed_ptr(py, value),
        )
    };
    Array::set_item(&array, &key, &value)?;
    Ok(0)
}

/// Runs `body` for a read-only C slot without pyo3's entry bookkeeping (a thread-local
/// GIL count updated twice per call, a third of a field read): reads create objects and
/// release none through `Py` drops, so pyo3 need not know that the GIL is held (a `Py`
/// dropped here anyway would only have its release deferred). Errors are raised; a panic
/// becomes a `SystemError` rather than unwinding into CPython.
///
/// # Safety
/// The GIL is held (CPython calls slots with it).
unsafe fn read_slot(
    body: impl FnOnce(Python<'_>) -> PyResult<PyObject> + std::panic::UnwindSafe,
) -> *mut ffi::PyObject {
    // SAFETY: caller's contract.
    let py = unsafe { Python::assume_gil_acquired() };
    let outcome = std::panic::catch_unwind(move || body(py));
    let error = match outcome {
        Ok(Ok(value)) => return value.into_ptr(),
        Ok(Err(error)) => error,
        Err(_) => pyo3::exceptions::PySystemError::new_err("jitctypes bug: panic in a read"),
    };
    error.restore(py);
    std::ptr::null_mut()
}

/// `tp_descr_get` of `CField`: `instance.field`.
unsafe extern "C" fn field_get(
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    _owner: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the slot with the GIL held, on a `CField` (a final class: the
    // slot is installed on it only); `obj` may be NULL (read from the class).
    unsafe {
        read_slot(|py| {
            let field = Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<CField>();
            let obj = Bound::from_borrowed_ptr_or_opt(py, obj);
            CField::get_from(&field, obj.as_ref())
        })
    }
}

/// `mp_subscript` of arrays: `array[i]`, `array[i:j]`.
unsafe extern "C" fn array_subscript(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the slot with the GIL held, on an instance of a class
    // deriving from `Array` (the slot is inherited from it only).
    unsafe {
        read_slot(|py| {
            let array = Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<Array>();
            Array::get_item(&array, &Bound::from_borrowed_ptr(py, key))
        })
    }
}

/// `tp_descr_set` of `CField`: `instance.field = value` (`del`: value NULL).
unsafe extern "C" fn field_set(
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: as for `field_get`.
    unsafe { pyo3::impl_::trampoline::setattrofunc(slf, obj, value, field_set_body) }
}

unsafe fn field_set_body(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> PyResult<c_int> {
    if value.is_null() {
        return Err(PyTypeError::new_err("can't delete attribute"));
    }
    // SAFETY: as for `field_get_body`; `obj` and `value` are live objects.
    let (field, obj, value) = unsafe {
        (
            Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<CField>(),
            Bound::from_borrowed_ptr(py, obj),
            Bound::from_borrowed_ptr(py, value),
        )
    };
    CField::set_on(&field, &obj, &value)?;
    Ok(0)
}

/// Getter of `_SimpleCData.value`.
unsafe extern "C" fn simple_value_get(
    obj: *mut ffi::PyObject,
    _closure: *mut std::ffi::c_void,
) -> *mut ffi::PyObject {
    // SAFETY: CPython's getset descriptor checked that `obj` is a `_SimpleCData`.
    unsafe {
        read_slot(|py| {
            let value = Bound::from_borrowed_ptr(py, obj).downcast_into_unchecked::<SimpleCData>();
            SimpleCData::value(&value)
        })
    }
}

/// Setter of `_SimpleCData.value` (deleting it is a `TypeError`, as in stock).
unsafe extern "C" fn simple_value_set(
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    closure: *mut std::ffi::c_void,
) -> c_int {
    // SAFETY: as for the getter; pyo3's three-pointer trampoline carries the closure.
    unsafe {
        pyo3::impl_::trampoline::setattrofunc(obj, value, closure.cast(), simple_value_set_body)
    }
}

unsafe fn simple_value_set_body(
    py: Python<'_>,
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    _closure: *mut ffi::PyObject,
) -> PyResult<c_int> {
    if value.is_null() {
        return Err(PyTypeError::new_err("can't delete attribute"));
    }
    // SAFETY: as for the getter; `value` is a live object.
    let (slf, value) = unsafe {
        (
            Bound::from_borrowed_ptr(py, obj).downcast_into_unchecked::<SimpleCData>(),
            Bound::from_borrowed_ptr(py, value),
        )
    };
    SimpleCData::set_value(&slf, &value)?;
    Ok(0)
}

/// Replaces pyo3's `value` descriptor of `_SimpleCData` by a C getset one.
fn install_value_descriptor(py: Python<'_>) -> PyResult<()> {
    use pyo3::PyTypeInfo;
    let simple_type = SimpleCData::type_object_raw(py);
    // The descriptor keeps a pointer to its definition: it must live for the process.
    let definition = Box::leak(Box::new(ffi::PyGetSetDef {
        name: c"value".as_ptr(),
        get: Some(simple_value_get),
        set: Some(simple_value_set),
        doc: c"the value of this object as a Python object".as_ptr(),
        closure: std::ptr::null_mut(),
    }));
    // SAFETY: our own heap type, before any subclass exists; the definition is leaked.
    unsafe {
        let descriptor =
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewGetSet(simple_type, definition))?;
        let dict = Bound::from_borrowed_ptr(py, (*simple_type).tp_dict);
        dict.set_item("value", descriptor)?;
        ffi::PyType_Modified(simple_type);
    }
    Ok(())
}

/// Installs the C slots on `CField` and `Array` (at module initialisation, before any
/// subclass copies them) and the `value` descriptor of `_SimpleCData`.
pub fn install_slots(py: Python<'_>) -> PyResult<()> {
    install_value_descriptor(py)?;
    use pyo3::PyTypeInfo;
    let field_type = CField::type_object_raw(py);
    let array_type = Array::type_object_raw(py);
    // SAFETY: our own heap types, before any instance or subclass exists; CPython reads
    // the slots at each access. A heap type's mapping methods live in the type object.
    unsafe {
        (*field_type).tp_descr_get = Some(field_get);
        (*field_type).tp_descr_set = Some(field_set);
        ffi::PyType_Modified(field_type);
        let mapping = (*array_type).tp_as_mapping;
        if !mapping.is_null() {
            (*mapping).mp_subscript = Some(array_subscript);
        }
        ffi::PyType_Modified(array_type);
    }
    Ok(())
}
