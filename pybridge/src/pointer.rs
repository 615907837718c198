//! `_Pointer`: instances of `POINTER(T)`. `contents` and indexing run here; the metaclass
//! (Python, `jitctypes._ctypes.pointer`) records the target type and how its values read
//! in an `ElementInfo` (`_jitctypes_elements_`), and can set them late (`SetPointerType`).

use pyo3::exceptions::{PyIndexError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PySlice, PyTuple, PyType};
use pyo3::{intern, PyClassInitializer};
use rawffi::memory::{read_uint, write_uint};

use crate::cdata::{at_address, keep_ref, CData};
use crate::convert::KeepAlive;
use crate::field::Elements;

#[pyclass(extends = CData, subclass, module = "_ctypes", name = "_Pointer")]
pub struct Pointer;

/// `key.__index__()` as a `Py_ssize_t` (`PyNumber_AsSsize_t`): a `TypeError` for objects
/// without `__index__`, `overflow` (an exception class) for values that do not fit.
pub fn index_value(key: &Bound<'_, PyAny>, overflow: &Bound<'_, PyType>) -> PyResult<isize> {
    // SAFETY: a live object and a live exception class.
    let index = unsafe { pyo3::ffi::PyNumber_AsSsize_t(key.as_ptr(), overflow.as_ptr()) };
    match PyErr::take(key.py()) {
        Some(error) if index == -1 => Err(error),
        _ => Ok(index),
    }
}

/// True if the pointer type `cls` names its target (only then are instances made).
pub fn is_complete(cls: &Bound<'_, PyType>) -> bool {
    let complete = crate::cdata::class_attr(cls, intern!(cls.py(), "_jitctypes_complete_"));
    complete.is_some_and(|flag| flag.is_truthy().unwrap_or(false))
}

impl Pointer {
    /// What `__init__` does (also the C `tp_init` of slots.rs).
    pub fn init_with(slf: &Bound<'_, Pointer>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        match args.len() {
            0 => Ok(()),
            1 => Pointer::set_contents(slf, &args.get_item(0)?),
            n => Err(PyTypeError::new_err(format!("POINTER expected at most 1 argument, got {n}"))),
        }
    }
}

/// The address a pointer object holds.
fn pointee(pointer: &Bound<'_, Pointer>) -> usize {
    let data = pointer.as_super().borrow();
    // SAFETY: a pointer object's memory holds one pointer.
    unsafe { read_uint(data.address() as *const u8, 8, false) as usize }
}

fn non_null(pointer: &Bound<'_, Pointer>) -> PyResult<usize> {
    match pointee(pointer) {
        0 => Err(PyValueError::new_err("NULL pointer access")),
        address => Ok(address),
    }
}

#[pymethods]
impl Pointer {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Pointer>> {
        if !is_complete(cls) {
            return Err(PyTypeError::new_err("Cannot create instance: has no _type_"));
        }
        Ok(PyClassInitializer::from(CData::for_class(cls, kwargs)?).add_subclass(Pointer))
    }

    /// `POINTER(T)(obj)` points at `obj`.
    #[pyo3(signature = (*args, **_kwargs))]
    fn __init__(
        slf: &Bound<'_, Pointer>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        Pointer::init_with(slf, args)
    }

    /// The object pointed at, as an instance of `_type_` viewing that memory.
    #[getter]
    fn contents(slf: &Bound<'_, Pointer>) -> PyResult<PyObject> {
        let target = Elements::of_class(&slf.get_type())?;
        let address = non_null(slf)?;
        Ok(at_address(&target.element_type, address, Some(slf.clone().into_any().unbind()), 0)?
            .unbind())
    }

    #[setter]
    pub(crate) fn set_contents(slf: &Bound<'_, Pointer>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let target = Elements::of_class(&slf.get_type())?;
        // Stock checks the type only of non-ctypes values: any ctypes instance is accepted.
        let cdata = match crate::known_types::as_cdata(value) {
            Some(cdata) => cdata,
            None if value.is_instance(&target.element_type)? => value.downcast::<CData>()?,
            None => {
                return Err(PyTypeError::new_err(format!(
                    "expected {} instead of {}",
                    target.element_type.name()?,
                    value.get_type().name()?
                )))
            }
        };
        let address = cdata.borrow().address();
        let own = slf.as_super().borrow().address();
        // SAFETY: a pointer object's memory holds one pointer.
        unsafe { write_uint(own as *mut u8, 8, address as u64, false) };
        // The pointer keeps its target alive, and what the target keeps: the kept objects
        // of the target's root, a dict made then for aggregates, arrays and pointers
        // (stock's `GetKeepedObjects`).
        let kept = CData::container_objects(cdata)?.filter(|kept| !kept.is_none(py));
        keep_ref(slf.as_super(), 1, vec![value.clone().unbind()])?;
        keep_ref(slf.as_super(), 0, kept.into_iter().collect::<KeepAlive>())
    }

    fn __bool__(slf: &Bound<'_, Pointer>) -> bool {
        pointee(slf) != 0
    }

    fn __getitem__(slf: &Bound<'_, Pointer>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let target = Elements::of_class(&slf.get_type())?;
        let base = non_null(slf)?;
        let element_at = |index: isize| base.wrapping_add_signed(index * target.size() as isize);
        if let Ok(slice) = key.downcast::<PySlice>() {
            let indices = pointer_slice(slice)?;
            let items = indices.into_iter().map(|i| (i.max(0) as usize, element_at(i)));
            return target.read_slice(slf.as_any(), items);
        }
        // SAFETY: a live object.
        if unsafe { pyo3::ffi::PyIndex_Check(key.as_ptr()) } == 0 {
            return Err(PyTypeError::new_err("Pointer indices must be integer"));
        }
        let index = index_value(key, &slf.py().get_type::<PyIndexError>())?;
        target.member(index.max(0) as usize).read(slf.as_any(), element_at(index))
    }

    fn __setitem__(
        slf: &Bound<'_, Pointer>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // Stock converts the index first, whatever the pointer holds, and reports a huge
        // one as an overflow (reads report it as an index error).
        let index = index_value(key, &slf.py().get_type::<PyOverflowError>())?;
        let target = Elements::of_class(&slf.get_type())?;
        let base = non_null(slf)?;
        let address = base.wrapping_add_signed(index * target.size() as isize);
        target.member(index.max(0) as usize).write(slf.as_super(), address, value)
    }

    fn __delitem__(slf: &Bound<'_, Pointer>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        // (Stock reports a huge index here as an overflow, not as an index error.)
        index_value(key, &slf.py().get_type::<PyOverflowError>())?;
        Err(PyTypeError::new_err("Pointer does not support item deletion"))
    }
}

/// The indices of a pointer slice; a pointer has no length, so the stop is required.
fn pointer_slice(slice: &Bound<'_, PySlice>) -> PyResult<Vec<isize>> {
    let py = slice.py();
    let part = |name| -> PyResult<Option<isize>> {
        let value = slice.getattr(name)?;
        if value.is_none() {
            Ok(None)
        } else {
            Ok(Some(value.extract()?))
        }
    };
    let step = part(intern!(py, "step"))?.unwrap_or(1);
    if step == 0 {
        return Err(PyValueError::new_err("slice step cannot be zero"));
    }
    let start = part(intern!(py, "start"))?;
    let stop = part(intern!(py, "stop"))?;
    let (start, stop) = if step > 0 {
        let stop = stop.ok_or_else(|| PyValueError::new_err("slice stop is required"))?;
        (start.unwrap_or(0), stop)
    } else {
        let start =
            start.ok_or_else(|| PyValueError::new_err("slice start is required for step < 0"))?;
        (start, stop.unwrap_or(-1))
    };
    let mut indices = Vec::new();
    let mut index = start;
    while (step > 0 && index < stop) || (step < 0 && index > stop) {
        indices.push(index);
        index += step;
    }
    Ok(indices)
}

/// `POINTER`'s cache of pointer types and `POINTER` itself (`jitctypes._ctypes.pointer`).
static POINTER_TYPES: pyo3::sync::GILOnceCell<(Py<PyDict>, PyObject)> =
    pyo3::sync::GILOnceCell::new();

/// `pointer(obj)`: a new `POINTER(type(obj))` pointing at `obj`. The pointer type comes
/// from `POINTER`'s cache, made there on a miss; in Rust because it is a per-value
/// operation (stock's is C). `pointer_direct` serves the calls whose type is cached.
#[pyfunction]
#[pyo3(signature = (*args, **keywords))]
pub fn pointer<'py>(
    args: &Bound<'py, PyTuple>,
    keywords: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    // A METH_O function in stock ctypes, with its messages.
    if keywords.is_some_and(|keywords| !keywords.is_empty()) {
        return Err(PyTypeError::new_err("_ctypes.pointer() takes no keyword arguments"));
    }
    if args.len() != 1 {
        let given = args.len();
        return Err(PyTypeError::new_err(format!(
            "_ctypes.pointer() takes exactly one argument ({given} given)"
        )));
    }
    let obj = &args.get_item(0)?;
    let py = obj.py();
    let (cache, make_type) = POINTER_TYPES.get_or_try_init(py, || -> PyResult<_> {
        let module = py.import("jitctypes._ctypes.pointer")?;
        let cache = module.getattr("_pointer_type_cache")?.downcast_into::<PyDict>()?;
        Ok((cache.unbind(), module.getattr("POINTER")?.unbind()))
    })?;
    let target = obj.get_type();
    let pointer_type = match cache.bind(py).get_item(&target)? {
        Some(found) => found,
        None => make_type.bind(py).call1((target,))?,
    };
    // SAFETY: a live class and a live argument.
    let made = unsafe { instantiate(pointer_type.as_ptr(), obj.as_ptr()) };
    // SAFETY: a new reference or null with an error set.
    unsafe { Bound::from_owned_ptr_or_err(py, made) }
}

/// `pointer(obj)` for an `obj` whose pointer type is in the cache (fastfn.rs); None
/// (no error set) for the rest.
///
/// # Safety
/// The GIL is held; `obj` is a live object.
pub unsafe fn pointer_direct(
    py: Python<'_>,
    obj: *mut pyo3::ffi::PyObject,
) -> Option<*mut pyo3::ffi::PyObject> {
    use pyo3::ffi;
    let (cache, _) = POINTER_TYPES.get(py)?;
    // SAFETY: the function's contract; the lookup borrows, and cannot raise: the key is a
    // type (hashed by identity) and the cache's keys are types and ints.
    unsafe {
        let found = ffi::PyDict_GetItemWithError(cache.as_ptr(), ffi::Py_TYPE(obj).cast());
        if found.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(instantiate(found, obj))
    }
}

/// `cls(obj)` by vectorcall: the class's own `construct` (slots.rs) runs without an
/// argument tuple.
///
/// # Safety
/// The GIL is held; `cls` and `obj` are live objects.
unsafe fn instantiate(
    cls: *mut pyo3::ffi::PyObject,
    obj: *mut pyo3::ffi::PyObject,
) -> *mut pyo3::ffi::PyObject {
    let args = [obj];
    // SAFETY: the function's contract; a new reference or null with an error set.
    unsafe { pyo3::ffi::PyObject_Vectorcall(cls, args.as_ptr(), 1, std::ptr::null_mut()) }
}
