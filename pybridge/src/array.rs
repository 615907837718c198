//! `Array`: the instances of `c_int * 5` and friends. Indexing and slicing run here; the
//! metaclass (Python, `jitctypes._ctypes.array`) records on the class its element type,
//! length and how an element reads, in one `ElementInfo` (`_jitctypes_elements_`).

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PySlice, PyString, PyTuple, PyType};
use pyo3::PyClassInitializer;

use crate::cdata::CData;
use crate::field::{self, Member};

#[pyclass(extends = CData, subclass, module = "_ctypes", name = "Array")]
pub struct Array;

/// An array's elements and its length.
struct Elements<'py> {
    elements: field::Elements<'py>,
    len: usize,
}

impl<'py> Elements<'py> {
    fn of(array: &Bound<'py, Array>) -> PyResult<Elements<'py>> {
        let elements = field::Elements::of_class(&array.get_type())?;
        let len = elements.len();
        Ok(Elements { elements, len })
    }

    fn member(&self, index: usize) -> Member<'_, 'py> {
        self.elements.member(index)
    }

    fn address_of(&self, array: &Bound<'py, Array>, index: usize) -> usize {
        array.as_super().borrow().address() + index * self.elements.size()
    }

    /// An index in range, counting negative indices from the end (`IndexError` otherwise).
    fn checked(&self, index: isize) -> PyResult<usize> {
        let resolved = if index < 0 { index + self.len as isize } else { index };
        if resolved < 0 || resolved >= self.len as isize {
            return Err(PyIndexError::new_err("invalid index"));
        }
        Ok(resolved as usize)
    }

    fn slice_indices(&self, slice: &Bound<'py, PySlice>) -> PyResult<Vec<usize>> {
        let range = slice.indices(self.len as isize)?;
        Ok((0..range.slicelength)
            .map(|k| (range.start + k as isize * range.step) as usize)
            .collect())
    }
}

/// An array index as stock takes it: any object with `__index__`, an `IndexError` if it
/// does not fit a `Py_ssize_t`; anything else is a `TypeError` (whose message stock words
/// differently for reads and writes).
fn array_index(key: &Bound<'_, PyAny>, refusal: &'static str) -> PyResult<isize> {
    // SAFETY: a live object.
    if unsafe { pyo3::ffi::PyIndex_Check(key.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err(refusal));
    }
    crate::pointer::index_value(key, &key.py().get_type::<PyIndexError>())
}

impl Array {
    /// `array[key]` (also the C `mp_subscript` of slots.rs).
    pub fn get_item(slf: &Bound<'_, Array>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        let elements = Elements::of(slf)?;
        if let Ok(slice) = key.downcast::<PySlice>() {
            let indices = elements.slice_indices(slice)?;
            let items = indices.into_iter().map(|index| (index, elements.address_of(slf, index)));
            return elements.elements.read_slice(slf.as_any(), items);
        }
        let index = elements.checked(array_index(key, "indices must be integers")?)?;
        elements.member(index).read(slf.as_any(), elements.address_of(slf, index))
    }

    /// `array[key] = value` (also the C `mp_ass_subscript` of slots.rs). A slice takes a
    /// sequence of its length (stock asks `len()` and indexes, so iterators are refused).
    pub fn set_item(
        slf: &Bound<'_, Array>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let elements = Elements::of(slf)?;
        if let Ok(slice) = key.downcast::<PySlice>() {
            let range = slice.indices(elements.len as isize)?;
            // SAFETY: plain C-API sequence calls on a live object.
            let given = unsafe { pyo3::ffi::PySequence_Size(value.as_ptr()) };
            if given < 0 {
                PyErr::take(slf.py());
            }
            if given != range.slicelength as isize {
                return Err(PyValueError::new_err("Can only assign sequence of same size"));
            }
            for k in 0..range.slicelength {
                let index = (range.start + k as isize * range.step) as usize;
                // SAFETY: as above; a new reference or NULL with an error set.
                let item = unsafe {
                    Bound::from_owned_ptr_or_err(
                        slf.py(),
                        pyo3::ffi::PySequence_GetItem(value.as_ptr(), k as isize),
                    )?
                };
                elements.member(index).write(
                    slf.as_super(),
                    elements.address_of(slf, index),
                    &item,
                )?;
            }
            return Ok(());
        }
        let index = elements.checked(array_index(key, "indices must be integer")?)?;
        elements.member(index).write(slf.as_super(), elements.address_of(slf, index), value)
    }

    /// What `__init__` does (also the fast `tp_init` of slots.rs).
    pub fn init_with(slf: &Bound<'_, Array>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let elements = Elements::of(slf)?;
        for (index, value) in args.iter().enumerate() {
            let index = elements.checked(index as isize)?;
            elements.member(index).write(
                slf.as_super(),
                elements.address_of(slf, index),
                &value,
            )?;
        }
        Ok(())
    }
}

#[pymethods]
impl Array {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Array>> {
        Ok(PyClassInitializer::from(CData::for_class(cls, kwargs)?).add_subclass(Array))
    }

    /// `(c_int * 3)(1, 2)` sets the first elements.
    #[pyo3(signature = (*args, **_kwargs))]
    fn __init__(
        slf: &Bound<'_, Array>,
        args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        Array::init_with(slf, args)
    }

    fn __len__(slf: &Bound<'_, Array>) -> PyResult<usize> {
        Ok(Elements::of(slf)?.len)
    }

    fn __getitem__(slf: &Bound<'_, Array>, key: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        Array::get_item(slf, key)
    }

    fn __setitem__(
        slf: &Bound<'_, Array>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        Array::set_item(slf, key, value)
    }

    fn __delitem__(&self, _key: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyTypeError::new_err("Array does not support item deletion"))
    }
}

/// `value` of a `c_char` array: the bytes up to the first NUL.
#[pyfunction]
pub fn char_array_value<'py>(array: &Bound<'py, CData>) -> Bound<'py, PyBytes> {
    let data = array.borrow();
    // SAFETY: the array's memory holds `size` bytes.
    unsafe { field::chars_up_to_nul(array.py(), data.address(), data.size()) }
}

/// `value` of a `c_wchar` array: the text up to the first NUL.
#[pyfunction]
pub fn wchar_array_value(array: &Bound<'_, CData>) -> PyResult<PyObject> {
    let data = array.borrow();
    // SAFETY: the array's memory holds `size` bytes.
    unsafe { field::wide_chars_up_to_nul(array.py(), data.address(), data.size()) }
}

/// Sets a `c_char` array's `value` from bytes; a shorter value is NUL-terminated.
#[pyfunction]
pub fn set_char_array_value(array: &Bound<'_, CData>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = array.borrow();
    let bytes = value.downcast::<PyBytes>().map_err(|_| {
        let name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("bytes expected instead of {name} instance"))
    })?;
    if bytes.as_bytes().len() > data.size() {
        return Err(PyValueError::new_err("byte string too long"));
    }
    crate::field::set_chars(value, data.address(), data.size(), false)
}

/// Sets a `c_wchar` array's `value` from str; a shorter value is NUL-terminated.
#[pyfunction]
pub fn set_wchar_array_value(array: &Bound<'_, CData>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = array.borrow();
    let text = value.downcast::<PyString>().map_err(|_| {
        let name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("unicode string expected instead of {name} instance"))
    })?;
    if text.to_str()?.chars().count() > data.size() / 4 {
        return Err(PyValueError::new_err("string too long"));
    }
    crate::field::set_wide_chars(value, data.address(), data.size())
}
