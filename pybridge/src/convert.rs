//! Conversions between Python values and C storage, with stock ctypes' rules and messages
//! (its `setfunc`/`getfunc` per type code). Used for call arguments and results, callback
//! arguments and results, and memory reads and writes.

use std::ffi::CStr;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use rawffi::memory::{
    read_float, read_long_double, read_uint, sign_extend, write_float, write_long_double,
    write_uint,
};

use crate::ctype::{CType, Code, Shape};
use crate::memory::Memory;

/// `wchar_t` on Linux.
type WcharT = i32;

/// Python objects that must outlive the C storage a value was written to (the bytes a
/// `char *` points into, the buffer of a converted `wchar_t *` string, a `PyObject *`).
pub type KeepAlive = Vec<PyObject>;

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map(|name| name.to_string()).unwrap_or_else(|_| "?".into())
}

/// Writes `value` as `ctype` at `dst`.
///
/// # Safety
/// `dst` must be writable for `ctype.size` bytes.
pub unsafe fn store(
    value: &Bound<'_, PyAny>,
    ctype: &CType,
    dst: *mut u8,
    keep: &mut KeepAlive,
) -> PyResult<()> {
    match &ctype.shape {
        Shape::Void => Err(PyTypeError::new_err("cannot store a value of type void")),
        // SAFETY: caller's contract.
        Shape::Scalar { code, swapped } => unsafe {
            store_scalar(value, *code, *swapped, dst, keep)
        },
        // SAFETY: caller's contract.
        Shape::Aggregate | Shape::Array { .. } => unsafe { store_bytes(value, ctype.size, dst) },
    }
}

/// Copies a bytes-like object (or a `Memory`) of at least `size` bytes to `dst`.
unsafe fn store_bytes(value: &Bound<'_, PyAny>, size: usize, dst: *mut u8) -> PyResult<()> {
    if let Ok(memory) = value.downcast::<Memory>() {
        let memory = memory.get();
        let (source, available) = (memory.address()?, memory.len()?);
        if available < size {
            return Err(PyValueError::new_err(format!("{available} bytes given, {size} needed")));
        }
        // SAFETY: the memory holds `available >= size` bytes; `dst` is the caller's.
        unsafe { std::ptr::copy(source as *const u8, dst, size) };
        return Ok(());
    }
    let buffer = PyBuffer::<u8>::get(value).map_err(|_| {
        PyTypeError::new_err(format!(
            "a bytes-like object of {size} bytes expected instead of {} instance",
            type_name(value)
        ))
    })?;
    let bytes = buffer.to_vec(value.py())?;
    if bytes.len() < size {
        return Err(PyValueError::new_err(format!("{} bytes given, {size} needed", bytes.len())));
    }
    // SAFETY: `bytes` holds at least `size` bytes; `dst` is the caller's.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, size) };
    Ok(())
}

/// An int (or `__index__` object) reduced modulo 2**64, as ctypes' integer setters do:
/// out-of-range values are silently truncated; floats are refused by `__index__` itself.
fn masked_integer(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    // SAFETY: `value` is a valid object; the function handles any type and sets an
    // exception on failure.
    let masked = unsafe { ffi::PyLong_AsUnsignedLongLongMask(value.as_ptr()) };
    if masked == u64::MAX {
        if let Some(error) = PyErr::take(value.py()) {
            return Err(error);
        }
    }
    Ok(masked)
}

fn float_value(value: &Bound<'_, PyAny>) -> PyResult<f64> {
    // SAFETY: `value` is a valid object; failure sets an exception.
    let number = unsafe { ffi::PyFloat_AsDouble(value.as_ptr()) };
    if number == -1.0 {
        if let Some(error) = PyErr::take(value.py()) {
            return Err(error);
        }
    }
    Ok(number)
}

/// An address from an int, or the address of a `Memory`, pinned (not freeable) as long as
/// `keep` lives.
fn address_value(value: &Bound<'_, PyAny>, keep: &mut KeepAlive) -> Option<PyResult<u64>> {
    if let Ok(memory) = value.downcast::<Memory>() {
        return Some(Memory::pin(memory).map(|(address, pin)| {
            keep.push(pin.into_any().unbind());
            address as u64
        }));
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        return Some(masked_integer(value));
    }
    None
}

unsafe fn store_scalar(
    value: &Bound<'_, PyAny>,
    code: Code,
    swapped: bool,
    dst: *mut u8,
    keep: &mut KeepAlive,
) -> PyResult<()> {
    let size = code.size();
    let bits: u64 = match code {
        _ if code.is_integer() => masked_integer(value)?,
        Code::Bool => value.is_truthy()? as u64,
        Code::VariantBool => {
            if value.is_truthy()? {
                0xffff
            } else {
                0
            }
        }
        Code::Float | Code::Double => {
            let number = float_value(value)?;
            // SAFETY: caller's contract (`size` bytes at `dst`).
            unsafe { write_float(dst, size, number, swapped) };
            return Ok(());
        }
        Code::LongDouble => {
            let number = float_value(value)?;
            // SAFETY: caller's contract (16 bytes at `dst`).
            unsafe { write_long_double(dst, number) };
            return Ok(());
        }
        Code::Char => char_value(value)? as u64,
        Code::WideChar => wide_char_value(value)? as u64,
        Code::CharPointer => {
            if value.is_none() {
                0
            } else if let Ok(bytes) = value.downcast::<PyBytes>() {
                keep.push(bytes.clone().into_any().unbind());
                bytes.as_bytes().as_ptr() as u64
            } else if let Some(address) = address_value(value, keep) {
                address?
            } else {
                return Err(PyTypeError::new_err(format!(
                    "bytes or integer address expected instead of {} instance",
                    type_name(value)
                )));
            }
        }
        Code::WideCharPointer => {
            if value.is_none() {
                0
            } else if let Ok(text) = value.downcast::<PyString>() {
                let buffer = wide_string(text)?;
                let address = buffer.get().address()? as u64;
                keep.push(buffer.into_any().unbind());
                address
            } else if let Some(address) = address_value(value, keep) {
                address?
            } else {
                return Err(PyTypeError::new_err(format!(
                    "unicode string or integer address expected instead of {} instance",
                    type_name(value)
                )));
            }
        }
        Code::VoidPointer => {
            if value.is_none() {
                0
            } else if let Some(address) = address_value(value, keep) {
                address?
            } else {
                return Err(PyTypeError::new_err("cannot be converted to pointer"));
            }
        }
        Code::PyObject => {
            keep.push(value.clone().unbind());
            value.as_ptr() as u64
        }
        _ => unreachable!("integer codes are handled first"),
    };
    // SAFETY: caller's contract (`size` bytes at `dst`).
    unsafe { write_uint(dst, size, bits, swapped) };
    Ok(())
}

fn char_value(value: &Bound<'_, PyAny>) -> PyResult<u8> {
    if let Ok(bytes) = value.downcast::<PyBytes>() {
        if let [byte] = bytes.as_bytes() {
            return Ok(*byte);
        }
    } else if let Ok(array) = value.downcast::<PyByteArray>() {
        if array.len() == 1 {
            return Ok(array.to_vec()[0]);
        }
    } else if value.is_instance_of::<pyo3::types::PyInt>() {
        if let Ok(byte) = value.extract::<u8>() {
            return Ok(byte);
        }
    }
    Err(PyTypeError::new_err("one character bytes, bytearray or integer expected"))
}

fn wide_char_value(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    let text = value.downcast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "unicode string expected instead of {} instance",
            type_name(value)
        ))
    })?;
    let text = text.to_str()?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(only), None) => Ok(only as u32),
        _ => Err(PyTypeError::new_err("one character unicode string expected")),
    }
}

/// A NUL-terminated `wchar_t` (UTF-32) copy of `text` in C memory.
pub fn wide_string<'py>(text: &Bound<'py, PyString>) -> PyResult<Bound<'py, Memory>> {
    let units: Vec<u32> = text.to_str()?.chars().map(|c| c as u32).chain([0]).collect();
    let memory = Memory::allocate(units.len() * 4, 4)?;
    let address = memory.address()?;
    // SAFETY: the memory was just allocated with room for every unit.
    unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), address as *mut u32, units.len()) };
    Bound::new(text.py(), memory)
}

/// Reads a `ctype` value at `src` as a Python object.
///
/// # Safety
/// `src` must be readable for `ctype.size` bytes, and pointers read as strings must point
/// at NUL-terminated strings.
pub unsafe fn load(py: Python<'_>, ctype: &CType, src: *const u8) -> PyResult<PyObject> {
    match &ctype.shape {
        Shape::Void => Ok(py.None()),
        // SAFETY: caller's contract.
        Shape::Scalar { code, swapped } => unsafe { load_scalar(py, *code, *swapped, src) },
        Shape::Aggregate | Shape::Array { .. } => {
            // SAFETY: caller's contract.
            let bytes = unsafe { std::slice::from_raw_parts(src, ctype.size) };
            Ok(PyBytes::new(py, bytes).into_any().unbind())
        }
    }
}

unsafe fn load_scalar(
    py: Python<'_>,
    code: Code,
    swapped: bool,
    src: *const u8,
) -> PyResult<PyObject> {
    let size = code.size();
    Ok(match code {
        Code::Float | Code::Double => {
            // SAFETY: caller's contract.
            unsafe { read_float(src, size, swapped) }.into_pyobject(py)?.into_any().unbind()
        }
        // SAFETY: caller's contract.
        Code::LongDouble => unsafe { read_long_double(src) }.into_pyobject(py)?.into_any().unbind(),
        _ => {
            // SAFETY: caller's contract.
            let bits = unsafe { read_uint(src, size, swapped) };
            scalar_from_bits(py, code, bits)?
        }
    })
}

/// The Python value of an integer-like scalar whose storage holds `bits`.
fn scalar_from_bits(py: Python<'_>, code: Code, bits: u64) -> PyResult<PyObject> {
    let size = code.size();
    Ok(match code {
        Code::Bool => (bits & 0xff != 0).into_pyobject(py)?.to_owned().into_any().unbind(),
        Code::VariantBool => (bits & 0xffff != 0).into_pyobject(py)?.to_owned().into_any().unbind(),
        Code::Char => PyBytes::new(py, &[bits as u8]).into_any().unbind(),
        Code::WideChar => {
            let unit = bits as u32;
            // CPython's own conversion: lone surrogates are valid str, out of range is not.
            // SAFETY: one readable `wchar_t`.
            unsafe { wide_str_from_ptr(py, &unit, Some(1))? }
        }
        _ if code.is_integer() && code.is_signed() => {
            sign_extend(bits, 8 * size as u32).into_pyobject(py)?.into_any().unbind()
        }
        _ if code.is_integer() => {
            (bits & (u64::MAX >> (64 - 8 * size))).into_pyobject(py)?.into_any().unbind()
        }
        Code::VoidPointer if bits == 0 => py.None(),
        Code::VoidPointer => bits.into_pyobject(py)?.into_any().unbind(),
        Code::CharPointer if bits == 0 => py.None(),
        Code::CharPointer => {
            // SAFETY: a non-null `char *` result or field points at a C string (contract).
            let text = unsafe { CStr::from_ptr(bits as *const std::ffi::c_char) };
            PyBytes::new(py, text.to_bytes()).into_any().unbind()
        }
        Code::WideCharPointer if bits == 0 => py.None(),
        Code::WideCharPointer => {
            // SAFETY: as above, for a NUL-terminated `wchar_t` string.
            unsafe { wide_str_from_ptr(py, bits as *const u32, None)? }
        }
        Code::PyObject if bits == 0 => return Err(PyValueError::new_err("PyObject is NULL")),
        // SAFETY: a `PyObject *` stored by ctypes is a live object kept alive by its owner.
        Code::PyObject => unsafe { PyObject::from_borrowed_ptr(py, bits as *mut ffi::PyObject) },
        _ => unreachable!("floats are read by load_scalar"),
    })
}

/// A `str` from a `wchar_t` string: NUL-terminated when `len` is None, else `len` units.
///
/// # Safety
/// `ptr` must point at readable `wchar_t`s (NUL-terminated when `len` is None).
pub unsafe fn wide_str_from_ptr(
    py: Python<'_>,
    ptr: *const u32,
    len: Option<usize>,
) -> PyResult<PyObject> {
    let len = len.unwrap_or_else(|| {
        let mut n = 0;
        // SAFETY: caller's contract: a terminator exists.
        while unsafe { *ptr.add(n) } != 0 {
            n += 1;
        }
        n
    });
    // SAFETY: `len` units are readable (caller's contract); `wchar_t` is 4 bytes here.
    let text = unsafe { ffi::PyUnicode_FromWideChar(ptr as *const WcharT, len as ffi::Py_ssize_t) };
    // SAFETY: a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, text) }.map(Bound::unbind)
}
