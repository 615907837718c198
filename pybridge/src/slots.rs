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
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::Borrowed;

use crate::array::Array;
use crate::cdata::{cdata_unchecked, CData, SimpleCData};
use crate::field::CField;
use crate::known_types::{derives_from, Base};
use crate::scalar::FastScalar;

/// A Rust class whose `__init__` the C `tp_init` runs.
trait Initialise: pyo3::PyClass {
    fn init_with(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()>;

    /// Initialises `slf` without Rust objects or pyo3's entry bookkeeping if the
    /// arguments allow (`c_int()`, `c_int(5)`); false: `init_with` must run.
    ///
    /// # Safety
    /// The GIL is held; `slf` is a new instance of a class deriving from `Self`; `args`
    /// a tuple and `kwargs` null or a dict.
    unsafe fn init_directly(
        _slf: *mut ffi::PyObject,
        _args: *mut ffi::PyObject,
        _kwargs: *mut ffi::PyObject,
    ) -> bool {
        false
    }

    /// `init_directly` for one positional argument `value`.
    ///
    /// # Safety
    /// As `init_directly`; `value` is a live object.
    unsafe fn init_one_directly(_slf: *mut ffi::PyObject, _value: *mut ffi::PyObject) -> bool {
        false
    }

    /// Whether `init_one` has a shortcut (else `construct` does not try it).
    const HAS_INIT_ONE: bool = false;

    /// `init_with` for one positional argument, without its argument tuple; None: the
    /// class has no such shortcut (`init_with` must run).
    fn init_one(_slf: &Bound<'_, Self>, _value: &Bound<'_, PyAny>) -> Option<PyResult<()>> {
        None
    }
}

// Stock's simple and array initialisers ignore keyword arguments.
impl Initialise for SimpleCData {
    fn init_with(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        SimpleCData::init_with(slf, args)
    }

    unsafe fn init_directly(
        slf: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> bool {
        // SAFETY: caller's contract.
        unsafe {
            if !kwargs.is_null() && ffi::PyDict_Size(kwargs) != 0 {
                return false;
            }
            match ffi::PyTuple_GET_SIZE(args) {
                0 => true, // the memory is zeroed already
                1 => Self::init_one_directly(slf, ffi::PyTuple_GET_ITEM(args, 0)),
                _ => false,
            }
        }
    }

    unsafe fn init_one_directly(slf: *mut ffi::PyObject, value: *mut ffi::PyObject) -> bool {
        // SAFETY: caller's contract.
        let data = unsafe { cdata_unchecked(slf) };
        data.fast().scalar.is_some_and(|scalar| unsafe { scalar.write(data.address(), value) })
    }
}

impl Initialise for Array {
    fn init_with(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        Array::init_with(slf, args)
    }
}

impl Initialise for crate::pointer::Pointer {
    fn init_with(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        crate::pointer::Pointer::init_with(slf, args)
    }

    const HAS_INIT_ONE: bool = true;

    /// `POINTER(T)(obj)`.
    fn init_one(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> Option<PyResult<()>> {
        Some(crate::pointer::Pointer::set_contents(slf, value))
    }
}

/// Structures and unions.
impl Initialise for CData {
    fn init_with(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        init_fields(slf.as_any(), args, kwargs)
    }

    /// `S()`: nothing to do (making the instance marked its class final already).
    unsafe fn init_directly(
        _slf: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> bool {
        // SAFETY: caller's contract.
        unsafe {
            ffi::PyTuple_GET_SIZE(args) == 0 && (kwargs.is_null() || ffi::PyDict_Size(kwargs) == 0)
        }
    }
}

/// `Structure.__init__(*args, **kwargs)`: positional values for the fields in order
/// (`_jitctypes_field_names_`, base classes' fields first), keyword values by name, each
/// assigned as an attribute; the class's `_fields_` can no longer change afterwards.
#[pyfunction]
#[pyo3(signature = (obj, args, kwargs = None))]
pub fn init_fields(
    obj: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let py = obj.py();
    let cls = obj.get_type();
    // (Its class was marked final when `obj` was made: `CData::class_traits`.)
    let names = match crate::cdata::class_attr(&cls, intern!(py, "_jitctypes_field_names_")) {
        Some(names) => names.downcast_into::<PyTuple>()?,
        None => PyTuple::empty(py),
    };
    if args.len() > names.len() {
        return Err(PyTypeError::new_err("too many initializers"));
    }
    for (name, value) in names.iter().zip(args.iter()) {
        obj.setattr(name.downcast_into::<PyString>()?, value)?;
    }
    let Some(kwargs) = kwargs else { return Ok(()) };
    for (name, value) in kwargs.iter() {
        for positional in names.iter().take(args.len()) {
            if positional.eq(&name)? {
                let shown = name.repr()?;
                return Err(PyTypeError::new_err(format!("duplicate values for field {shown}")));
            }
        }
        obj.setattr(name.downcast_into::<PyString>()?, value)?;
    }
    Ok(())
}

/// Records on `cls` that it has instances (`_fields_` is final from then on), bypassing
/// the metaclass's `__setattr__` as `type.__setattr__` does.
pub(crate) fn mark_final(cls: &Bound<'_, PyType>) -> PyResult<()> {
    // Every instance made asks: the classes known final since their last change answer
    // without a dict lookup.
    static FINAL_CLASSES: crate::cdata::ClassCache = crate::cdata::ClassCache::new();
    if FINAL_CLASSES.holds(cls) {
        return Ok(());
    }
    if !is_final(cls) {
        let py = cls.py();
        let name = intern!(py, "_jitctypes_final_");
        py.get_type::<PyType>().call_method1(intern!(py, "__setattr__"), (cls, name, true))?;
    }
    FINAL_CLASSES.note(cls);
    Ok(())
}

/// True if `cls` itself (not a base) is marked as having had instances.
fn is_final(cls: &Bound<'_, PyType>) -> bool {
    let name = intern!(cls.py(), "_jitctypes_final_");
    // SAFETY: a live type object; its own dict is read without running Python code (the
    // key is an exact str), and a lookup error is impossible.
    unsafe {
        let dict = (*cls.as_type_ptr()).tp_dict;
        !dict.is_null() && !ffi::PyDict_GetItemWithError(dict, name.as_ptr()).is_null()
    }
}

/// `tp_init` of the classes derived from `T`: `c_int(5)`, `(c_int * 3)(1, 2)`.
unsafe extern "C" fn fast_init<T: Initialise>(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: CPython calls tp_init with the GIL held and a new instance of the class.
    unsafe {
        if T::init_directly(slf, args, kwargs) {
            return 0;
        }
        // pyo3's entry trampoline for three-pointer slots (GIL bookkeeping, errors, panics).
        pyo3::impl_::trampoline::setattrofunc(slf, args, kwargs, fast_init_body::<T>)
    }
}

unsafe fn fast_init_body<T: Initialise>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> PyResult<c_int> {
    // SAFETY: tp_init of a class derived from `T` (checked when installed); `args` is a
    // tuple, `kwargs` null or a dict.
    let (slf, args, kwargs) = unsafe {
        (
            Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<T>(),
            Bound::from_borrowed_ptr(py, args).downcast_into_unchecked::<PyTuple>(),
            Bound::from_borrowed_ptr_or_opt(py, kwargs)
                .map(|kwargs| kwargs.downcast_into_unchecked::<PyDict>()),
        )
    };
    T::init_with(&slf, &args, kwargs.as_ref())?;
    Ok(0)
}

unsafe fn init_one_body<T: Initialise>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> PyResult<c_int> {
    // SAFETY: a new instance of a class derived from `T` (`construct`'s contract) and the
    // one argument of the call.
    let (slf, value) = unsafe {
        (
            Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<T>(),
            Bound::from_borrowed_ptr(py, value),
        )
    };
    match T::init_one(&slf, &value) {
        Some(outcome) => outcome.map(|()| 1),
        None => Ok(0),
    }
}

/// Points `tp_init` of `cls` (a simple or array type that defines no `__init__` of its
/// own) at the C initialiser of its Rust base.
#[pyfunction]
pub fn enable_fast_init(cls: &Bound<'_, PyType>) -> PyResult<()> {
    use crate::pointer::Pointer;
    if !crate::known_types::is_cdata_class(cls) {
        // Its instances are not laid out as ctypes instances: a C initialiser would
        // write past them.
        return Err(PyTypeError::new_err("not a ctypes type"));
    }
    let (init, construct): (ffi::initproc, ffi::vectorcallfunc) = match derives_from(cls) {
        Base::Simple => (fast_init::<SimpleCData>, construct::<SimpleCData, 0>),
        Base::Array => (fast_init::<Array>, construct::<Array, 1>),
        Base::Data => (fast_init::<CData>, construct::<CData, 2>),
        Base::Pointer => (fast_init::<Pointer>, construct::<Pointer, 3>),
        _ => {
            return Err(PyTypeError::new_err(
                "only simple, array, structure and union types have a fast __init__",
            ))
        }
    };
    // SAFETY: a heap type whose instances are laid out by the Rust class the initialiser
    // expects; CPython reads the slot at each instantiation.
    // `tp_vectorcall` is never inherited, so each class gets its own.
    unsafe {
        (*cls.as_type_ptr()).tp_init = Some(init);
        (*cls.as_type_ptr()).tp_vectorcall = Some(construct);
        ffi::PyType_Modified(cls.as_type_ptr());
    }
    Ok(())
}

/// Points `mp_subscript` and `mp_ass_subscript` of the array or pointer type `cls` (which
/// defines no `__getitem__`/`__setitem__` of its own) at the C element reader and writer.
/// (CPython gives a subclass the function the base's `__getitem__` wrapper was made
/// from, pyo3's, so each class is set here.)
#[pyfunction]
pub fn enable_fast_getitem(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let (subscript, assign): (ffi::binaryfunc, ffi::objobjargproc) = match derives_from(cls) {
        Base::Array => (array_subscript, array_assign),
        Base::Pointer => (pointer_subscript, pointer_assign),
        _ => return Err(PyTypeError::new_err("only arrays and pointers have a fast __getitem__")),
    };
    // SAFETY: a heap type laid out by the Rust class; its mapping methods live in the type
    // object.
    unsafe {
        let mapping = (*cls.as_type_ptr()).tp_as_mapping;
        if !mapping.is_null() {
            (*mapping).mp_subscript = Some(subscript);
            (*mapping).mp_ass_subscript = Some(assign);
        }
        ffi::PyType_Modified(cls.as_type_ptr());
    }
    Ok(())
}

/// pyo3's `mp_subscript` and `mp_ass_subscript` of `_Pointer`, for what the fast pointer
/// slots leave to it.
static POINTER_MAPPING: std::sync::OnceLock<(ffi::binaryfunc, ffi::objobjargproc)> =
    std::sync::OnceLock::new();

/// `mp_subscript` of pointers: `p[i]` of a plain scalar target read directly.
unsafe extern "C" fn pointer_subscript(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the slot with the GIL held, on a pointer instance.
    unsafe {
        if let Some((scalar, address)) = fast_pointee(slf, key) {
            return scalar.read(address);
        }
        let (generic, _) = POINTER_MAPPING.get().expect("recorded at initialisation");
        generic(slf, key)
    }
}

/// `mp_ass_subscript` of pointers: `p[i] = v`.
unsafe extern "C" fn pointer_assign(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: CPython calls the slot with the GIL held, on a pointer instance.
    unsafe {
        write_or(fast_pointee(slf, key), value, || {
            let (_, generic) = POINTER_MAPPING.get().expect("recorded at initialisation");
            generic(slf, key, value)
        })
    }
}

/// The fast kind and address of `p[key]` if the pointer's target has one, the pointer is
/// not NULL and `key` is an exact int (anything else: the generic slots raise).
///
/// # Safety
/// The GIL is held; `slf` is a pointer instance; `key` is a live object.
unsafe fn fast_pointee(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> Option<(FastScalar, usize)> {
    // SAFETY: caller's contract; a pointer object's memory holds one pointer.
    unsafe {
        if ffi::Py_TYPE(key) != std::ptr::addr_of_mut!(ffi::PyLong_Type) {
            return None;
        }
        let data = cdata_unchecked(slf);
        let access = data.fast();
        let scalar = access.scalar.filter(|_| access.pointer)?;
        let base = (data.address() as *const usize).read_unaligned();
        if base == 0 {
            return None;
        }
        let index = ffi::PyLong_AsSsize_t(key);
        if index == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear(); // the generic path raises it
            return None;
        }
        let offset = index.checked_mul(scalar.size() as isize)?;
        Some((scalar, base.wrapping_add_signed(offset)))
    }
}

/// `mp_ass_subscript` of arrays: `array[i] = v`, `array[i:j] = seq` (`del`: value NULL).
unsafe extern "C" fn array_assign(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> c_int {
    // SAFETY: CPython calls the slot with the GIL held, on an array instance.
    unsafe {
        write_or(fast_element(slf, key), value, || {
            pyo3::impl_::trampoline::setattrofunc(slf, key, value, array_assign_body)
        })
    }
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

/// The C result of a slot that writes `value` (null: a deletion) at `place`, the fast kind
/// and address the slot found for it: 0 if `scalar.rs` wrote it directly, else what the
/// generic path returns (it also raises every error).
///
/// # Safety
/// The GIL is held; `place`, if any, is writable storage of its kind; `value` is null or
/// a live object.
unsafe fn write_or(
    place: Option<(FastScalar, usize)>,
    value: *mut ffi::PyObject,
    generic: impl FnOnce() -> c_int,
) -> c_int {
    if let Some((scalar, address)) = place {
        // SAFETY: caller's contract.
        if !value.is_null() && unsafe { scalar.write(address, value) } {
            return 0;
        }
    }
    generic()
}

/// The fast kind and offset of the field `slf` if it has one and `obj` is a ctypes
/// instance (a descriptor may be called on anything: `S.x.__get__(other)`).
///
/// # Safety
/// The GIL is held; `slf` is a `CField`; `obj` is null or a live object.
unsafe fn fast_field(
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
) -> Option<(FastScalar, usize)> {
    if obj.is_null() {
        return None;
    }
    // SAFETY: caller's contract; `CField` is frozen, so reading it needs no borrow.
    let fast = unsafe {
        let py = Python::assume_gil_acquired();
        Borrowed::from_ptr(py, slf).downcast_unchecked::<CField>().get().fast()?
    };
    // SAFETY: caller's contract.
    unsafe { crate::known_types::is_cdata(obj) }.then_some(fast)
}

/// The fast kind and address of element `key` of the array `slf`, if its elements have
/// one and `key` is an exact int in range (anything else: the generic path raises).
///
/// # Safety
/// The GIL is held; `slf` is an array instance; `key` is a live object.
unsafe fn fast_element(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> Option<(FastScalar, usize)> {
    // SAFETY: caller's contract.
    unsafe {
        if ffi::Py_TYPE(key) != std::ptr::addr_of_mut!(ffi::PyLong_Type) {
            return None;
        }
        let data = cdata_unchecked(slf);
        let access = data.fast();
        let scalar = access.scalar?;
        let index = ffi::PyLong_AsSsize_t(key);
        if index == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear(); // the generic path raises it
            return None;
        }
        let length = access.length as isize;
        let resolved = if index < 0 { index + length } else { index };
        if !(0..length).contains(&resolved) {
            return None;
        }
        Some((scalar, data.address() + resolved as usize * scalar.size()))
    }
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
        if let Some((scalar, offset)) = fast_field(slf, obj) {
            return scalar.read(cdata_unchecked(obj).address() + offset);
        }
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
        if let Some((scalar, address)) = fast_element(slf, key) {
            return scalar.read(address);
        }
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
    unsafe {
        let place = fast_field(slf, obj)
            .map(|(scalar, offset)| (scalar, cdata_unchecked(obj).address() + offset));
        write_or(place, value, || {
            pyo3::impl_::trampoline::setattrofunc(slf, obj, value, field_set_body)
        })
    }
}

unsafe fn field_set_body(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
) -> PyResult<c_int> {
    if value.is_null() {
        // SAFETY: `obj` is a live object.
        return CField::delete_from(&unsafe { Bound::from_borrowed_ptr(py, obj) }).map(|()| 0);
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
        let data = cdata_unchecked(obj);
        if let Some(scalar) = data.fast().scalar {
            return scalar.read(data.address());
        }
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
        let data = cdata_unchecked(obj);
        let place = data.fast().scalar.map(|scalar| (scalar, data.address()));
        write_or(place, value, || {
            pyo3::impl_::trampoline::setattrofunc(obj, value, closure.cast(), simple_value_set_body)
        })
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

/// pyo3's `tp_new` of the classes `fast_new` is installed on, which it leaves keyword
/// calls to.
static GENERIC_NEW: std::sync::OnceLock<[ffi::newfunc; 4]> = std::sync::OnceLock::new();

/// `tp_new` of simple and array types: `c_int(5)` and `(c_int * 3)()` make the object
/// directly (`cdata::new_instance`), without pyo3's argument parsing (which copies the
/// argument tuple) or its entry bookkeeping. Keyword calls go to pyo3's `tp_new`.
unsafe extern "C" fn fast_new<const BASE: usize>(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new with the GIL held, a type deriving from the Rust class
    // the slot was installed on, a tuple and null or a dict.
    unsafe {
        let generic = GENERIC_NEW.get().expect("set with the slot")[BASE];
        if !kwargs.is_null() && ffi::PyDict_Size(kwargs) != 0 {
            return generic(subtype, args, kwargs);
        }
        new_without_keywords::<BASE>(subtype).unwrap_or_else(|| generic(subtype, args, kwargs))
    }
}

/// `fast_new` without keyword arguments: the new instance (null with an exception set),
/// or None where pyo3's `tp_new` must run (it raises stock's error for a pointer type
/// without a target).
///
/// # Safety
/// The GIL is held; `subtype` derives from the Rust class of `BASE`.
unsafe fn new_without_keywords<const BASE: usize>(
    subtype: *mut ffi::PyTypeObject,
) -> Option<*mut ffi::PyObject> {
    // SAFETY: caller's contract.
    unsafe {
        let py = Python::assume_gil_acquired();
        let cls = Borrowed::from_ptr(py, subtype.cast());
        let cls = cls.downcast_unchecked::<PyType>();
        if BASE == 3 && !crate::pointer::is_complete(cls) {
            return None;
        }
        let cls = std::panic::AssertUnwindSafe(cls);
        Some(read_slot(|_| {
            let base = [Base::Simple, Base::Array, Base::Data, Base::Pointer][BASE];
            Ok(crate::cdata::new_instance_of(&cls, base, None)?.unbind())
        }))
    }
}

/// `tp_vectorcall` of the classes `enable_fast_init` serves (`c_int(5)`, `S()`): what
/// `type.__call__` does, `tp_new` then `tp_init`, without the argument tuple CPython
/// builds for those slots and without the slots' calls when nothing needs them. A call
/// with keywords, or on a class whose `__new__` or `__init__` was replaced since, goes
/// through `type.__call__` itself.
unsafe extern "C" fn construct<T: Initialise, const BASE: usize>(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls vectorcall with the GIL held, `nargs` arguments then one per
    // keyword name; `callable` is a class this function was installed on, or a class
    // deriving from the same Rust class (the slot is never inherited).
    unsafe {
        let subtype = callable.cast::<ffi::PyTypeObject>();
        let nargs = ffi::PyVectorcall_NARGS(nargsf);
        let keywords = !kwnames.is_null() && ffi::PyTuple_GET_SIZE(kwnames) != 0;
        let own_slots = same_function((*subtype).tp_new, fast_new::<BASE> as *const () as usize)
            && same_function((*subtype).tp_init, fast_init::<T> as *const () as usize);
        if keywords || !own_slots {
            return call_metaclass(callable, args, nargs, kwnames);
        }
        let Some(object) = new_without_keywords::<BASE>(subtype) else {
            return call_metaclass(callable, args, nargs, kwnames);
        };
        // Without arguments the zeroed memory is the value (every `tp_init` here agrees).
        if object.is_null() || nargs == 0 || (nargs == 1 && T::init_one_directly(object, *args)) {
            return object;
        }
        if nargs == 1 && T::HAS_INIT_ONE {
            // pyo3's entry trampoline for three-pointer slots (GIL bookkeeping, errors,
            // panics); 1: initialised, 0: `init_with` must run, -1: failed.
            let status = pyo3::impl_::trampoline::setattrofunc(
                object,
                *args,
                std::ptr::null_mut(),
                init_one_body::<T>,
            );
            match status {
                1 => return object,
                0 => {}
                _ => {
                    ffi::Py_DECREF(object);
                    return std::ptr::null_mut();
                }
            }
        }
        let tuple = tuple_of(args, nargs);
        let status =
            if tuple.is_null() { -1 } else { fast_init::<T>(object, tuple, std::ptr::null_mut()) };
        ffi::Py_XDECREF(tuple);
        if status < 0 {
            ffi::Py_DECREF(object);
            return std::ptr::null_mut();
        }
        object
    }
}

/// Whether a type slot holds the function at `address`.
fn same_function<F: Copy>(slot: Option<F>, address: usize) -> bool {
    // SAFETY: `F` is a function pointer type (a slot's), as large as a `usize`.
    slot.is_some_and(
        |function| unsafe { std::mem::transmute_copy::<F, usize>(&function) } == address,
    )
}

/// A new tuple of `args[..nargs]`; null with an exception set if it cannot be made.
///
/// # Safety
/// The GIL is held; `args` points at `nargs` live objects.
unsafe fn tuple_of(args: *const *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: caller's contract; each item stored is a new reference.
    unsafe {
        let tuple = ffi::PyTuple_New(nargs);
        if !tuple.is_null() {
            for index in 0..nargs {
                let item = *args.offset(index);
                ffi::Py_INCREF(item);
                ffi::PyTuple_SET_ITEM(tuple, index, item);
            }
        }
        tuple
    }
}

/// `type(cls).__call__(cls, *args, **kwargs)` from vectorcall arguments: CPython's own
/// instantiation (`type_call`), for what `construct` leaves to it.
///
/// # Safety
/// As `construct`.
unsafe fn call_metaclass(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: caller's contract; references made here are released here.
    unsafe {
        let tuple = tuple_of(args, nargs);
        if tuple.is_null() {
            return std::ptr::null_mut();
        }
        let mut kwargs = std::ptr::null_mut();
        if !kwnames.is_null() && ffi::PyTuple_GET_SIZE(kwnames) != 0 {
            kwargs = ffi::PyDict_New();
            for index in 0..ffi::PyTuple_GET_SIZE(kwnames) {
                let (name, value) =
                    (ffi::PyTuple_GET_ITEM(kwnames, index), *args.offset(nargs + index));
                if kwargs.is_null() || ffi::PyDict_SetItem(kwargs, name, value) < 0 {
                    ffi::Py_DECREF(tuple);
                    ffi::Py_XDECREF(kwargs);
                    return std::ptr::null_mut();
                }
            }
        }
        let call = (*ffi::Py_TYPE(callable)).tp_call.expect("metaclasses derive from type");
        let result = call(callable, tuple, kwargs);
        ffi::Py_DECREF(tuple);
        ffi::Py_XDECREF(kwargs);
        result
    }
}

/// Lets CPython call the classes of `metaclass` (one of ours) through their
/// `tp_vectorcall`, as it calls `type`'s: 3.12 and later let a heap metaclass inherit
/// that from `type`, 3.11 only static ones. Only for metaclasses with `type`'s own
/// `__call__` (the flag would bypass another) that are immutable (no `__call__` can be
/// set on them later).
#[pyfunction]
pub fn construct_by_vectorcall(metaclass: &Bound<'_, PyType>) -> PyResult<()> {
    // SAFETY: reading and setting flags of a live type object, whose instances (types)
    // all have the `tp_vectorcall` field at `type`'s offset, checked first.
    unsafe {
        let meta = metaclass.as_type_ptr();
        let type_type = std::ptr::addr_of_mut!(ffi::PyType_Type);
        let like_type = ffi::PyType_IsSubtype(meta, type_type) != 0
            && (*meta).tp_vectorcall_offset == (*type_type).tp_vectorcall_offset
            && (*type_type)
                .tp_call
                .is_some_and(|call| same_function((*meta).tp_call, call as *const () as usize));
        // A `__call__` set later on the metaclass or on a mutable base of it would change
        // its `tp_call` only: every class in its MRO must be immutable.
        let all_immutable = metaclass.mro().iter().all(|base| {
            base.downcast::<PyType>().is_ok_and(|base| {
                (*base.as_type_ptr()).tp_flags & ffi::Py_TPFLAGS_IMMUTABLETYPE != 0
            })
        });
        if !like_type || !all_immutable {
            return Err(PyTypeError::new_err(
                "a metaclass with type's __call__ and only immutable bases expected",
            ));
        }
        (*meta).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
    }
    Ok(())
}

/// pyo3's deallocators of the Rust classes ctypes classes derive from.
static PYO3_DEALLOC: std::sync::OnceLock<[ffi::destructor; 5]> = std::sync::OnceLock::new();

/// Index of `CFuncPtr` in `PYO3_DEALLOC` (see `wrap_deallocators`).
const FUNCTION_POINTER: usize = 4;

/// `tp_dealloc` of the Rust classes under every ctypes class: pyo3's, then the release of
/// the instance's type. pyo3 0.25.1 frees an instance without releasing its type
/// (PyO3/pyo3#6223, fixed after the version pinned here), while CPython since 3.8 leaves
/// that to the deallocator of a heap type's base when the base is a heap type too: every
/// instance of a ctypes class would otherwise keep its class alive for ever.
unsafe extern "C" fn dealloc_releasing_type<const BASE: usize>(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls the slot once, when the last reference went; the type is read
    // before pyo3 frees the object and released last (it may be freed with it).
    unsafe {
        // Function pointers have more state than the `CData`: pyo3 drops it.
        if BASE != FUNCTION_POINTER && crate::cdata::dealloc_in_place(obj) {
            return;
        }
        let object_type = ffi::Py_TYPE(obj);
        let dealloc = PYO3_DEALLOC.get().expect("set with the slot")[BASE];
        dealloc(obj);
        if ffi::PyType_HasFeature(object_type, ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
            ffi::Py_DECREF(object_type.cast());
        }
    }
}

fn wrap_deallocators(py: Python<'_>) {
    use pyo3::PyTypeInfo;
    let types = [
        CData::type_object_raw(py),
        SimpleCData::type_object_raw(py),
        Array::type_object_raw(py),
        crate::pointer::Pointer::type_object_raw(py),
        crate::funcptr::CFuncPtr::type_object_raw(py),
    ];
    // SAFETY: our own heap types, before any subclass or instance exists; pyo3 gave each
    // a deallocator.
    unsafe {
        let originals = types.map(|ty| (*ty).tp_dealloc.expect("pyo3 classes deallocate"));
        if PYO3_DEALLOC.set(originals).is_err() {
            return; // wrapped already (a second module initialisation)
        }
        let wrapped: [ffi::destructor; 5] = [
            dealloc_releasing_type::<0>,
            dealloc_releasing_type::<1>,
            dealloc_releasing_type::<2>,
            dealloc_releasing_type::<3>,
            dealloc_releasing_type::<4>,
        ];
        for (ty, dealloc) in types.into_iter().zip(wrapped) {
            (*ty).tp_dealloc = Some(dealloc);
            ffi::PyType_Modified(ty);
        }
    }
}

fn record_pointer_mapping(py: Python<'_>) {
    use pyo3::PyTypeInfo;
    // SAFETY: our own heap type; pyo3 gave it both mapping slots (`__getitem__`,
    // `__setitem__`/`__delitem__`).
    unsafe {
        let mapping = (*crate::pointer::Pointer::type_object_raw(py)).tp_as_mapping;
        let slots = ((*mapping).mp_subscript, (*mapping).mp_ass_subscript);
        if let (Some(subscript), Some(assign)) = slots {
            let _ = POINTER_MAPPING.set((subscript, assign));
        }
    }
}

/// Installs `fast_new` on `_SimpleCData`, `Array`, `_CData` and `_Pointer` (before any
/// subclass inherits `tp_new`; a class defining `__new__` gets CPython's own slot instead).
fn install_fast_new(py: Python<'_>) {
    use pyo3::PyTypeInfo;
    let bases = [
        SimpleCData::type_object_raw(py),
        Array::type_object_raw(py),
        CData::type_object_raw(py),
        crate::pointer::Pointer::type_object_raw(py),
    ];
    // SAFETY: our own heap types, before any subclass exists; pyo3 gave each a `tp_new`.
    unsafe {
        let generic = bases.map(|base| (*base).tp_new.expect("pyo3 classes with #[new]"));
        let _ = GENERIC_NEW.set(generic);
        (*bases[0]).tp_new = Some(fast_new::<0>);
        (*bases[1]).tp_new = Some(fast_new::<1>);
        (*bases[2]).tp_new = Some(fast_new::<2>);
        (*bases[3]).tp_new = Some(fast_new::<3>);
        for base in bases {
            ffi::PyType_Modified(base);
        }
    }
}

/// Marks `cls` (a base class of ctypes, made in Python) immutable, as stock's C types are:
/// its attributes can no longer be set or deleted.
#[pyfunction]
pub fn make_immutable(cls: &Bound<'_, PyType>) -> PyResult<()> {
    // SAFETY: a live heap type; CPython reads the flag when an attribute is set.
    unsafe {
        (*cls.as_type_ptr()).tp_flags |= ffi::Py_TPFLAGS_IMMUTABLETYPE;
        ffi::PyType_Modified(cls.as_type_ptr());
    }
    name_as_stock(cls)
}

/// Gives a class of ours that stands for one of stock's C types (its `__module__` is
/// `_ctypes`) stock's C name, `_ctypes.Structure`: CPython's messages name a type by its C
/// name ("cannot set 'x' attribute of immutable type '_ctypes.Structure'"). A class made in
/// Python has its bare name there. `__name__`, `__qualname__` and `repr` are unchanged.
#[pyfunction]
pub fn name_as_stock(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let py = cls.py();
    let module: String = cls.getattr(pyo3::intern!(py, "__module__"))?.extract()?;
    if module != "_ctypes" {
        return Ok(());
    }
    let name = format!("_ctypes.{}", cls.qualname()?);
    let name = std::ffi::CString::new(name).map_err(|_| PyTypeError::new_err("NUL in a name"))?;
    // SAFETY: a live heap type; the name is leaked, so it lives as long as the type (these
    // are the few base classes of the module, made once).
    unsafe { (*cls.as_type_ptr()).tp_name = name.into_raw() };
    Ok(())
}

/// `CField` is made by `field::make_field` only, and immutable, as stock's (3.13 says so
/// in its flags; before, its type was static, so immutable too).
fn seal_field_type(py: Python<'_>) {
    use pyo3::PyTypeInfo;
    let field_type = CField::type_object_raw(py);
    // SAFETY: our own heap type, before any instance exists.
    unsafe {
        (*field_type).tp_new = None;
        (*field_type).tp_flags |=
            ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION | ffi::Py_TPFLAGS_IMMUTABLETYPE;
        ffi::PyType_Modified(field_type);
    }
}

/// Installs the C slots on `CField` and `Array` (at module initialisation, before any
/// subclass copies them), `tp_new` of simple and array types and the `value` descriptor
/// of `_SimpleCData`.
pub fn install_slots(py: Python<'_>) -> PyResult<()> {
    install_value_descriptor(py)?;
    install_fast_new(py);
    record_pointer_mapping(py);
    wrap_deallocators(py);
    seal_field_type(py);
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
