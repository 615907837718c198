//! Raw C memory for Python: `Memory` (an owned buffer outside the Python heap) and typed
//! reads and writes at any address.

use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rawffi::layout::{read_bitfield, write_bitfield, BitField};
use rawffi::memory::{read_uint, write_uint, RawBuffer};

use crate::convert::{load, store, wide_str_from_ptr, KeepAlive};
use crate::ctype::{CType, Code, Shape};

/// Zero-filled C memory owned by this object, freed by `free()` or when the object dies.
/// After `free()` every use raises `ValueError`.
#[pyclass(module = "jitctypes._rawffi")]
pub struct Memory {
    buffer: Option<RawBuffer>,
}

impl Memory {
    pub fn allocate(size: usize, align: usize) -> PyResult<Memory> {
        let buffer = RawBuffer::new(size, align).map_err(PyMemoryError::new_err)?;
        Ok(Memory { buffer: Some(buffer) })
    }

    fn buffer(&self) -> PyResult<&RawBuffer> {
        self.buffer.as_ref().ok_or_else(|| PyValueError::new_err("memory was freed"))
    }

    pub fn address(&self) -> PyResult<usize> {
        Ok(self.buffer()?.as_ptr() as usize)
    }

    pub fn len(&self) -> PyResult<usize> {
        Ok(self.buffer()?.size())
    }
}

#[pymethods]
impl Memory {
    #[new]
    #[pyo3(signature = (size, align = 16))]
    fn py_new(size: usize, align: usize) -> PyResult<Memory> {
        Memory::allocate(size, align)
    }

    #[getter(address)]
    fn py_address(&self) -> PyResult<usize> {
        self.address()
    }

    #[getter]
    fn size(&self) -> PyResult<usize> {
        self.len()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.len()
    }

    /// Frees the memory now. Idempotent.
    fn free(&mut self) {
        self.buffer = None;
    }

    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.buffer()?.as_slice()))
    }

    fn __repr__(&self) -> String {
        match &self.buffer {
            Some(buffer) => {
                format!("<Memory {} bytes at {:#x}>", buffer.size(), buffer.as_ptr() as usize)
            }
            None => "<Memory freed>".into(),
        }
    }
}

fn non_null(address: usize) -> PyResult<*mut u8> {
    if address == 0 {
        Err(PyValueError::new_err("NULL pointer access"))
    } else {
        Ok(address as *mut u8)
    }
}

/// A bit-field `(shift, width, window size)` checked against its declared type.
type BitSpec = (u32, u32, usize);

fn bitfield_of(ctype: &CType, bits: Option<BitSpec>) -> PyResult<Option<(BitField, usize)>> {
    let Some((shift, width, window)) = bits else { return Ok(None) };
    let Some((code, _)) = ctype.code() else {
        return Err(PyValueError::new_err("bit-fields need an integer type"));
    };
    let fits = (1..=8).contains(&window)
        && shift.checked_add(width).is_some_and(|end| end <= 8 * window as u32);
    if width == 0 || width > 8 * ctype.size as u32 || !fits {
        return Err(PyValueError::new_err(format!("bad bit-field {bits:?}")));
    }
    Ok(Some((BitField { shift, width, signed: code.is_signed() }, window)))
}

/// Reads a value of `ctype` at `address`; `bits = (shift, width, window)` reads a bit-field
/// of declared type `ctype` from the `window`-byte integer at `address` (see
/// `rawffi::layout::FieldLayout`).
#[pyfunction]
#[pyo3(signature = (address, ctype, bits = None))]
pub fn read(
    py: Python<'_>,
    address: usize,
    ctype: &Bound<'_, CType>,
    bits: Option<BitSpec>,
) -> PyResult<PyObject> {
    let ctype = ctype.get();
    let source = non_null(address)?;
    if let Some((bitfield, window_size)) = bitfield_of(ctype, bits)? {
        let swapped = matches!(ctype.shape, Shape::Scalar { swapped: true, .. });
        // SAFETY: the caller vouches for the address (as with ctypes' `from_address`).
        let window = unsafe { read_uint(source, window_size, swapped) };
        let value = read_bitfield(window, &bitfield);
        if matches!(ctype.code(), Some((Code::Bool, _))) {
            return Ok((value != 0).into_pyobject(py)?.to_owned().into_any().unbind());
        }
        return Ok(value.into_pyobject(py)?.into_any().unbind());
    }
    // SAFETY: as above.
    unsafe { load(py, ctype, source) }
}

/// Writes `value` as `ctype` at `address`. Returns what must be kept alive for the stored
/// value to stay valid (the bytes a `char *` points into, ...), or None.
#[pyfunction]
#[pyo3(signature = (address, ctype, value, bits = None))]
pub fn write(
    py: Python<'_>,
    address: usize,
    ctype: &Bound<'_, CType>,
    value: &Bound<'_, PyAny>,
    bits: Option<BitSpec>,
) -> PyResult<PyObject> {
    let ctype = ctype.get();
    let target = non_null(address)?;
    if let Some((bitfield, window_size)) = bitfield_of(ctype, bits)? {
        let swapped = matches!(ctype.shape, Shape::Scalar { swapped: true, .. });
        let scalar = CType::new(
            Shape::Scalar { code: ctype.code().expect("checked").0, swapped: false },
            ctype.jit.clone(),
            ctype.size,
            ctype.align,
        );
        let mut scratch = [0u8; 8];
        let mut keep = KeepAlive::new();
        // SAFETY: `scratch` holds 8 bytes, enough for any integer scalar.
        unsafe { store(value, &scalar, scratch.as_mut_ptr(), &mut keep)? };
        let new_bits = u64::from_le_bytes(scratch);
        // SAFETY: the caller vouches for the address.
        unsafe {
            let window = read_uint(target, window_size, swapped);
            write_uint(target, window_size, write_bitfield(window, &bitfield, new_bits), swapped);
        }
        return Ok(py.None());
    }
    let mut keep = KeepAlive::new();
    // SAFETY: the caller vouches for the address.
    unsafe { store(value, ctype, target, &mut keep)? };
    Ok(match keep.len() {
        0 => py.None(),
        1 => keep.pop().expect("one element"),
        _ => pyo3::types::PyTuple::new(py, keep)?.into_any().unbind(),
    })
}

/// `memmove(dst, src, count)`.
#[pyfunction]
pub fn memmove(dst: usize, src: usize, count: usize) -> PyResult<()> {
    if count == 0 {
        return Ok(());
    }
    let (dst, src) = (non_null(dst)?, non_null(src)?);
    // SAFETY: the caller vouches for both ranges, as with C's memmove.
    unsafe { std::ptr::copy(src, dst, count) };
    Ok(())
}

/// `memset(dst, byte, count)`.
#[pyfunction]
pub fn memset(dst: usize, byte: i32, count: usize) -> PyResult<()> {
    if count == 0 {
        return Ok(());
    }
    // SAFETY: the caller vouches for the range, as with C's memset.
    unsafe { std::ptr::write_bytes(non_null(dst)?, byte as u8, count) };
    Ok(())
}

/// The bytes at `address`: `size` of them, or up to the NUL terminator when `size` is -1.
#[pyfunction]
#[pyo3(signature = (address, size = -1))]
pub fn string_at<'py>(
    py: Python<'py>,
    address: usize,
    size: isize,
) -> PyResult<Bound<'py, PyBytes>> {
    let source = non_null(address)?;
    // SAFETY: the caller vouches for the string (as with ctypes' `string_at`).
    let bytes = unsafe {
        if size < 0 {
            std::ffi::CStr::from_ptr(source as *const std::ffi::c_char).to_bytes()
        } else {
            std::slice::from_raw_parts(source, size as usize)
        }
    };
    Ok(PyBytes::new(py, bytes))
}

/// The `wchar_t` string at `address`: `size` units, or up to the terminator when -1.
#[pyfunction]
#[pyo3(signature = (address, size = -1))]
pub fn wstring_at(py: Python<'_>, address: usize, size: isize) -> PyResult<PyObject> {
    let source = non_null(address)? as *const u32;
    let len = (size >= 0).then_some(size as usize);
    // SAFETY: the caller vouches for the string.
    unsafe { wide_str_from_ptr(py, source, len) }
}
