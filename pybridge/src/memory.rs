//! Raw C memory for Python: `Memory` (an owned buffer outside the Python heap) and typed
//! reads and writes at any address.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PyMemoryError, PySystemError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rawffi::layout::BitField;
use rawffi::memory::RawBuffer;

use crate::convert::{load, store, wide_str_from_ptr, KeepAlive};
use crate::ctype::CType;
use crate::field::{get_bitfield, set_bitfield, BitSpec};

/// Zero-filled C memory owned by this object, freed by `free()` or when the object dies.
/// After `free()` every use raises `ValueError`. While C may be using it — passed as a
/// pointer to a running call, or stored as a pointer by `write` whose keep-alive object
/// still exists — it is *pinned*, and `free()` raises `ValueError` instead of freeing.
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct Memory {
    buffer: Mutex<Option<RawBuffer>>,
    pins: AtomicUsize,
}

/// Keeps a `Memory` from being freed while it exists (see `Memory::pin`).
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct MemoryPin {
    memory: Py<Memory>,
}

impl Drop for MemoryPin {
    fn drop(&mut self) {
        // `Py::get` on a frozen, `Sync` class needs no GIL.
        self.memory.get().pins.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Memory {
    pub fn allocate(size: usize, align: usize) -> PyResult<Memory> {
        if !align.is_power_of_two() {
            return Err(PyValueError::new_err(format!("alignment {align} is not a power of two")));
        }
        let buffer = RawBuffer::new(size, align).map_err(PyMemoryError::new_err)?;
        Ok(Memory { buffer: Mutex::new(Some(buffer)), pins: AtomicUsize::new(0) })
    }

    /// `(address, size)` of the live buffer.
    fn span(&self) -> PyResult<(usize, usize)> {
        let buffer = self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match buffer.as_ref() {
            Some(buffer) => Ok((buffer.as_ptr() as usize, buffer.size())),
            None => Err(PyValueError::new_err("memory was freed")),
        }
    }

    pub fn address(&self) -> PyResult<usize> {
        Ok(self.span()?.0)
    }

    pub fn len(&self) -> PyResult<usize> {
        Ok(self.span()?.1)
    }

    /// The address, and a pin that keeps the memory from being freed until it is dropped.
    pub fn pin<'py>(memory: &Bound<'py, Memory>) -> PyResult<(usize, Bound<'py, MemoryPin>)> {
        let inner = memory.get();
        inner.pins.fetch_add(1, Ordering::AcqRel);
        let pin = Bound::new(memory.py(), MemoryPin { memory: memory.clone().unbind() })?;
        Ok((inner.address()?, pin))
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

    /// Frees the memory now. Idempotent; `ValueError` while the memory is pinned.
    fn free(&self) -> PyResult<()> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.pins.load(Ordering::Acquire) > 0 {
            return Err(PyValueError::new_err("memory is in use by C"));
        }
        *buffer = None;
        Ok(())
    }

    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let (address, size) = self.span()?;
        // Copied through a raw pointer: C may write this memory at any time.
        let mut copy = vec![0u8; size];
        // SAFETY: the buffer holds `size` bytes and is not freed while we hold the GIL
        // (`free` needs it).
        unsafe { std::ptr::copy(address as *const u8, copy.as_mut_ptr(), size) };
        Ok(PyBytes::new(py, &copy))
    }

    fn __repr__(&self) -> String {
        match self.span() {
            Ok((address, size)) => format!("<Memory {size} bytes at {address:#x}>"),
            Err(_) => "<Memory freed>".into(),
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

fn bitfield_of(ctype: &CType, bits: Option<BitSpec>) -> PyResult<Option<(BitField, usize)>> {
    let Some((shift, width, window)) = bits else { return Ok(None) };
    let Some((code, _)) = ctype.code().filter(|(code, _)| code.holds_bits()) else {
        return Err(PyTypeError::new_err("bit-fields need an integer or bool type"));
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
        // SAFETY: the caller vouches for the address (as with ctypes' `from_address`).
        return unsafe { get_bitfield(py, ctype, source as usize, &bitfield, window_size) };
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
        set_bitfield(value, ctype, target as usize, &bitfield, window_size)?;
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
    let dst = non_null(dst)?;
    // SAFETY: the caller vouches for the range, as with C's memset.
    unsafe { std::ptr::write_bytes(dst, byte as u8, count) };
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
    if size < -1 {
        // What stock's helper gets from the C API it calls with the size.
        return Err(PySystemError::new_err("Negative size passed to PyBytes_FromStringAndSize"));
    }
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
    if size < -1 {
        // As above.
        return Err(PySystemError::new_err("Negative size passed to PyUnicode_New"));
    }
    let len = (size >= 0).then_some(size as usize);
    // SAFETY: the caller vouches for the string.
    unsafe { wide_str_from_ptr(py, source, len) }
}
