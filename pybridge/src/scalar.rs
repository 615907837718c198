//! Native-order scalars read and written with a few C-API calls: the hot part of field
//! access, array indexing and `.value`, where the generic conversions (`convert.rs`) cost
//! more than the access itself.
//!
//! Only what behaves exactly like the generic path is taken: integer, `c_bool`, `c_float`
//! and `c_double` values in native byte order; writes of exact `int`, `bool` and `float`
//! objects. Everything else (other types, byte-swapped values, bit-fields, subclasses of
//! `int` or `float`, errors) goes the generic way, which raises what stock raises.

use std::sync::OnceLock;

use jit::IntLayout;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::ctype::{CType, Code, Shape};

/// Where this interpreter's ints keep a one-digit value, decided at module
/// initialisation (`record_int_layout`); read by `int_bits` and given to entry stubs.
static INT_LAYOUT: OnceLock<IntLayout> = OnceLock::new();

/// Decides `INT_LAYOUT` (`Include/cpython/longintrepr.h`): after the object header, a
/// signed digit count until 3.11, a tag from 3.12; the digits follow. Inline reads only
/// with 30-bit digits, the usual build.
pub fn record_int_layout(py: Python<'_>) -> PyResult<()> {
    const HEADER: i32 = std::mem::size_of::<ffi::PyObject>() as i32;
    let bits: u32 = py.import("sys")?.getattr("int_info")?.getattr("bits_per_digit")?.extract()?;
    let layout = match (bits, py.version_info() >= (3, 12)) {
        (30, false) => IntLayout::SignedCount { count: HEADER, digit: HEADER + 8 },
        (30, true) => IntLayout::Tagged { tag: HEADER, digit: HEADER + 8 },
        _ => IntLayout::Opaque,
    };
    let _ = INT_LAYOUT.set(layout);
    Ok(())
}

/// `INT_LAYOUT` (opaque before it is decided).
pub fn int_layout() -> IntLayout {
    INT_LAYOUT.get().copied().unwrap_or(IntLayout::Opaque)
}

/// An exact int's value modulo 2**64, as `PyLong_AsUnsignedLongLongMask` gives it (and
/// ctypes' integer setters use), read in place when it has one digit.
///
/// # Safety
/// The GIL is held; `value` is an exact `int`.
pub unsafe fn int_bits(value: *mut ffi::PyObject) -> u64 {
    let at = |offset: i32| value.cast::<u8>().wrapping_offset(offset as isize);
    // SAFETY: caller's contract; an int object has its header word and one digit.
    unsafe {
        match int_layout() {
            IntLayout::SignedCount { count, digit } => {
                let count = at(count).cast::<i64>().read();
                if ((count + 1) as u64) < 3 {
                    return (count * i64::from(at(digit).cast::<u32>().read())) as u64;
                }
            }
            IntLayout::Tagged { tag, digit } => {
                let tag = at(tag).cast::<u64>().read();
                if tag < 16 {
                    let sign = 1 - (tag & 3) as i64;
                    return (sign * i64::from(at(digit).cast::<u32>().read())) as u64;
                }
            }
            IntLayout::Opaque => {}
        }
        ffi::PyLong_AsUnsignedLongLongMask(value)
    }
}

/// A scalar kind the fast accessors handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastScalar {
    Signed { bytes: u8 },
    Unsigned { bytes: u8 },
    Bool,
    F32,
    F64,
}

impl FastScalar {
    /// The fast kind of values of `ctype`, if it has one.
    pub fn of(ctype: &CType) -> Option<FastScalar> {
        let Shape::Scalar { code, swapped: false } = ctype.shape else { return None };
        let bytes = ctype.size as u8;
        Some(match code {
            Code::Bool if bytes == 1 => FastScalar::Bool,
            Code::Float => FastScalar::F32,
            Code::Double => FastScalar::F64,
            _ if code.is_integer() && matches!(bytes, 1 | 2 | 4 | 8) => {
                if code.is_signed() {
                    FastScalar::Signed { bytes }
                } else {
                    FastScalar::Unsigned { bytes }
                }
            }
            _ => return None,
        })
    }

    /// The value at `address` as a new reference (null with an error set if boxing fails).
    ///
    /// # Safety
    /// The GIL is held; `address` points at a readable value of this kind (not
    /// necessarily aligned: packed structures).
    pub unsafe fn read(self, address: usize) -> *mut ffi::PyObject {
        // SAFETY: caller's contract.
        unsafe {
            match self {
                FastScalar::Signed { bytes } => {
                    ffi::PyLong_FromLongLong(read_bits(address, bytes, true) as i64)
                }
                FastScalar::Unsigned { bytes } => {
                    ffi::PyLong_FromUnsignedLongLong(read_bits(address, bytes, false))
                }
                FastScalar::Bool => ffi::PyBool_FromLong((*(address as *const u8) != 0).into()),
                FastScalar::F32 => {
                    ffi::PyFloat_FromDouble((address as *const f32).read_unaligned().into())
                }
                FastScalar::F64 => {
                    ffi::PyFloat_FromDouble((address as *const f64).read_unaligned())
                }
            }
        }
    }

    /// Writes `value` at `address` if it is an object the fast path converts (an exact
    /// `int`; also an exact `bool` for `c_bool`, an exact `float` for floating types).
    /// Returns false, having written nothing and set no error, for anything else.
    ///
    /// # Safety
    /// The GIL is held; `value` is a live object; `address` points at writable storage
    /// of this kind.
    pub unsafe fn write(self, address: usize, value: *mut ffi::PyObject) -> bool {
        // SAFETY: caller's contract.
        unsafe {
            let value_type = ffi::Py_TYPE(value);
            let is_int = value_type == std::ptr::addr_of_mut!(ffi::PyLong_Type);
            match self {
                FastScalar::Signed { bytes } | FastScalar::Unsigned { bytes } if is_int => {
                    // ctypes' integer setters reduce modulo 2**bits, never raising.
                    write_bits(address, bytes, int_bits(value));
                }
                FastScalar::Bool
                    if is_int || value_type == std::ptr::addr_of_mut!(ffi::PyBool_Type) =>
                {
                    *(address as *mut u8) = (ffi::PyObject_IsTrue(value) == 1).into();
                }
                FastScalar::F32 | FastScalar::F64 => {
                    let Some(double) = exact_float(value, value_type, is_int) else {
                        return false;
                    };
                    if self == FastScalar::F32 {
                        (address as *mut f32).write_unaligned(double as f32);
                    } else {
                        (address as *mut f64).write_unaligned(double);
                    }
                }
                _ => return false,
            }
            true
        }
    }

    /// Bytes of one value.
    pub fn size(self) -> usize {
        match self {
            FastScalar::Signed { bytes } | FastScalar::Unsigned { bytes } => bytes.into(),
            FastScalar::Bool => 1,
            FastScalar::F32 => 4,
            FastScalar::F64 => 8,
        }
    }
}

/// The `double` of an exact float, or of an exact int that converts without error.
///
/// # Safety
/// The GIL is held; `value` is a live object of type `value_type`.
unsafe fn exact_float(
    value: *mut ffi::PyObject,
    value_type: *mut ffi::PyTypeObject,
    is_int: bool,
) -> Option<f64> {
    // SAFETY: caller's contract.
    unsafe {
        if value_type == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
            return Some(ffi::PyFloat_AS_DOUBLE(value));
        }
        if !is_int {
            return None;
        }
        let double = ffi::PyLong_AsDouble(value);
        if double == -1.0 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear(); // the generic path raises it with stock's message
            return None;
        }
        Some(double)
    }
}

/// `bytes` bytes at `address` as an integer, sign- or zero-extended to 64 bits.
///
/// # Safety
/// `address` points at `bytes` readable bytes.
unsafe fn read_bits(address: usize, bytes: u8, signed: bool) -> u64 {
    // SAFETY: caller's contract.
    unsafe {
        match (bytes, signed) {
            (1, true) => *(address as *const i8) as i64 as u64,
            (1, false) => (*(address as *const u8)).into(),
            (2, true) => (address as *const i16).read_unaligned() as i64 as u64,
            (2, false) => (address as *const u16).read_unaligned().into(),
            (4, true) => (address as *const i32).read_unaligned() as i64 as u64,
            (4, false) => (address as *const u32).read_unaligned().into(),
            _ => (address as *const u64).read_unaligned(),
        }
    }
}

/// Stores the low `bytes` bytes of `bits` at `address`.
///
/// # Safety
/// `address` points at `bytes` writable bytes.
unsafe fn write_bits(address: usize, bytes: u8, bits: u64) {
    // SAFETY: caller's contract.
    unsafe {
        match bytes {
            1 => *(address as *mut u8) = bits as u8,
            2 => (address as *mut u16).write_unaligned(bits as u16),
            4 => (address as *mut u32).write_unaligned(bits as u32),
            _ => (address as *mut u64).write_unaligned(bits),
        }
    }
}
