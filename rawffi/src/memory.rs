//! Raw C memory outside the Python heap, and typed access to bytes at an address.
//!
//! [`RawBuffer`] owns zero-filled, aligned storage and frees it on drop; who keeps which
//! buffer alive is the higher layer's business, as in PyPy's `_rawffi`. The access
//! functions read and write scalars of any size and byte order without alignment
//! requirements (ctypes allows `from_address` anywhere, and `_pack_` makes fields
//! unaligned).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

/// Zero-filled storage of `size` bytes aligned to `align`. Size 0 is allowed (ctypes has
/// empty structures) and still yields a unique, non-null address.
#[derive(Debug)]
pub struct RawBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
    size: usize,
}

// SAFETY: the buffer is plain memory owned by this value; any synchronisation of its
// contents is the user's, as for C memory.
unsafe impl Send for RawBuffer {}
// SAFETY: as for `Send`.
unsafe impl Sync for RawBuffer {}

impl RawBuffer {
    /// Allocates `size` zero bytes aligned to `align` (a power of two; raised to 16 so
    /// that any scalar, `long double` included, can live at the start).
    pub fn new(size: usize, align: usize) -> Result<RawBuffer, String> {
        if !align.is_power_of_two() {
            return Err(format!("alignment {align} is not a power of two"));
        }
        let layout = Layout::from_size_align(size.max(1), align.max(16))
            .map_err(|_| format!("cannot allocate {size} bytes"))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| format!("out of memory for {size} bytes"))?;
        Ok(RawBuffer { ptr, layout, size })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn align(&self) -> usize {
        self.layout.align()
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the allocation holds `size` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.size) }
    }
}

impl Drop for RawBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Reads an unsigned integer of `size` bytes (1, 2, 4 or 8) at `address`, in native
/// order or byte-swapped.
///
/// # Safety
/// `address` must be readable for `size` bytes.
pub unsafe fn read_uint(address: *const u8, size: usize, swapped: bool) -> u64 {
    if !swapped {
        // The common case in one unaligned load (a variable-size copy is a memcpy call).
        // SAFETY: caller's contract.
        unsafe {
            match size {
                1 => return *address as u64,
                2 => return (address as *const u16).read_unaligned() as u64,
                4 => return (address as *const u32).read_unaligned() as u64,
                8 => return (address as *const u64).read_unaligned(),
                _ => {}
            }
        }
    }
    let size = size.clamp(1, 8);
    let mut bytes = [0u8; 8];
    // SAFETY: caller's contract (`size` readable bytes); at most 8 are copied.
    unsafe { std::ptr::copy_nonoverlapping(address, bytes.as_mut_ptr(), size) };
    let value = u64::from_le_bytes(bytes);
    if swapped {
        value.swap_bytes() >> (64 - 8 * size)
    } else {
        value
    }
}

/// Writes the low `size` bytes of `value` at `address`, in native order or byte-swapped.
///
/// # Safety
/// `address` must be writable for `size` bytes (1, 2, 4 or 8).
pub unsafe fn write_uint(address: *mut u8, size: usize, value: u64, swapped: bool) {
    if !swapped {
        // SAFETY: caller's contract.
        unsafe {
            match size {
                1 => return *address = value as u8,
                2 => return (address as *mut u16).write_unaligned(value as u16),
                4 => return (address as *mut u32).write_unaligned(value as u32),
                8 => return (address as *mut u64).write_unaligned(value),
                _ => {}
            }
        }
    }
    let size = size.clamp(1, 8);
    let value = if swapped { value.swap_bytes() >> (64 - 8 * size) } else { value };
    let bytes = value.to_le_bytes();
    // SAFETY: caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), address, size) };
}

/// Sign-extends the low `bits` of `value`.
pub fn sign_extend(value: u64, bits: u32) -> i64 {
    let unused = 64 - bits.clamp(1, 64);
    ((value << unused) as i64) >> unused
}

/// Reads a C `float` or `double` (by `size`) at `address`.
///
/// # Safety
/// `address` must be readable for `size` bytes.
pub unsafe fn read_float(address: *const u8, size: usize, swapped: bool) -> f64 {
    // SAFETY: caller's contract.
    let bits = unsafe { read_uint(address, size, swapped) };
    if size == 4 {
        f32::from_bits(bits as u32) as f64
    } else {
        f64::from_bits(bits)
    }
}

/// Writes `value` as a C `float` (rounded) or `double` at `address`.
///
/// # Safety
/// `address` must be writable for `size` bytes.
pub unsafe fn write_float(address: *mut u8, size: usize, value: f64, swapped: bool) {
    let bits = if size == 4 { (value as f32).to_bits() as u64 } else { value.to_bits() };
    // SAFETY: caller's contract.
    unsafe { write_uint(address, size, bits, swapped) }
}

/// Reads an x87 80-bit `long double` at `address`, rounded to the nearest `double` (as
/// ctypes does for `c_longdouble.value`).
///
/// # Safety
/// `address` must be readable for 10 bytes.
pub unsafe fn read_long_double(address: *const u8) -> f64 {
    let mut bytes = [0u8; 10];
    // SAFETY: caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(address, bytes.as_mut_ptr(), 10) };
    f80_to_f64(bytes)
}

/// Writes `value` as an x87 80-bit `long double` (exact: every double is representable),
/// zeroing the 6 padding bytes of its 16-byte storage.
///
/// # Safety
/// `address` must be writable for 16 bytes.
pub unsafe fn write_long_double(address: *mut u8, value: f64) {
    let mut bytes = [0u8; 16];
    bytes[..10].copy_from_slice(&f64_to_f80(value));
    // SAFETY: caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), address, 16) };
}

/// The x87 extended encoding of a double: 64-bit mantissa with an explicit integer bit,
/// 15-bit exponent biased by 16383, sign.
pub fn f64_to_f80(value: f64) -> [u8; 10] {
    let bits = value.to_bits();
    let sign = ((bits >> 63) as u16) << 15;
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (exponent80, mantissa): (u16, u64) = match exponent {
        0 if fraction == 0 => (0, 0),
        0 => {
            // Subnormal double: normalise, since x87 has the range to make it normal.
            let shift = fraction.leading_zeros() - 11;
            let mantissa = fraction << (shift + 11);
            ((16383 - 1022 - shift as i32) as u16, mantissa)
        }
        0x7ff => (0x7fff, (1 << 63) | (fraction << 11)),
        _ => ((exponent - 1023 + 16383) as u16, (1 << 63) | (fraction << 11)),
    };
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&mantissa.to_le_bytes());
    bytes[8..].copy_from_slice(&(sign | exponent80).to_le_bytes());
    bytes
}

/// The double nearest to an x87 extended value (round half to even), with overflow to
/// infinity and gradual underflow, as the FPU's `fstp` to a double would give.
pub fn f80_to_f64(bytes: [u8; 10]) -> f64 {
    let mantissa = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let top = u16::from_le_bytes([bytes[8], bytes[9]]);
    let negative = top & 0x8000 != 0;
    let exponent = (top & 0x7fff) as i32;
    let signed = |magnitude: f64| if negative { -magnitude } else { magnitude };
    if exponent == 0x7fff {
        let fraction = mantissa << 1;
        return signed(if fraction == 0 { f64::INFINITY } else { f64::NAN });
    }
    if exponent != 0 && mantissa >> 63 == 0 {
        // An unnormal (exponent set, integer bit clear): the FPU loads it as a NaN.
        return f64::NAN;
    }
    if mantissa == 0 {
        return signed(0.0);
    }
    // value = mantissa * 2^(exponent - 16383 - 63); normalise the mantissa first (the
    // integer bit may be clear in pseudo-denormals and denormals).
    let shift = mantissa.leading_zeros();
    let mantissa = mantissa << shift;
    let unbiased = exponent.max(1) - 16383 - shift as i32;
    // Keep 53 significant bits for a normal double, fewer when the result is subnormal.
    let kept = if unbiased < -1022 { 53 - (-1022 - unbiased) } else { 53 };
    if kept <= 0 {
        // Below half the smallest subnormal, or exactly on it (rounds to even zero).
        let half_smallest = unbiased == -1075 && mantissa > (1 << 63);
        return signed(if half_smallest { f64::from_bits(1) } else { 0.0 });
    }
    let dropped = 64 - kept as u32;
    let mut rounded = mantissa >> dropped;
    let remainder = mantissa & ((1u64 << dropped) - 1);
    let half = 1u64 << (dropped - 1);
    if remainder > half || (remainder == half && rounded & 1 == 1) {
        rounded += 1;
    }
    // rounded * 2^(unbiased - kept + 1), computed exactly in two steps to avoid overflow
    // of the intermediate power.
    let scale = unbiased - kept + 1;
    signed(rounded as f64 * 2f64.powi(scale / 2) * 2f64.powi(scale - scale / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_aligned_and_distinct() {
        let a = RawBuffer::new(0, 1).unwrap();
        let b = RawBuffer::new(24, 8).unwrap();
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!(b.as_ptr() as usize % 16, 0);
        assert!(b.as_slice().iter().all(|&byte| byte == 0));
        assert!(RawBuffer::new(8, 3).is_err());
        assert!(RawBuffer::new(usize::MAX, 8).is_err());
    }

    #[test]
    fn integers_round_trip_in_both_byte_orders() {
        let mut bytes = [0u8; 8];
        for size in [1, 2, 4, 8] {
            for swapped in [false, true] {
                let value = 0x1122334455667788u64 & (u64::MAX >> (64 - 8 * size));
                // SAFETY: `bytes` holds 8 bytes.
                unsafe { write_uint(bytes.as_mut_ptr(), size, value, swapped) };
                // SAFETY: as above.
                assert_eq!(unsafe { read_uint(bytes.as_ptr(), size, swapped) }, value);
            }
        }
        // SAFETY: `bytes` holds 8 bytes.
        unsafe { write_uint(bytes.as_mut_ptr(), 4, 0x01020304, true) };
        assert_eq!(bytes[..4], [1, 2, 3, 4]);
        assert_eq!(sign_extend(0xff, 8), -1);
        assert_eq!(sign_extend(0x7f, 8), 127);
    }

    #[test]
    fn long_double_conversions_are_exact_where_they_must_be() {
        let samples = [
            0.0,
            -0.0,
            1.0,
            -2.5,
            1e300,
            -1e-300,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for value in samples {
            let back = f80_to_f64(f64_to_f80(value));
            assert_eq!(back.to_bits(), value.to_bits(), "{value:e}");
        }
        assert!(f80_to_f64(f64_to_f80(f64::NAN)).is_nan());
    }

    #[test]
    fn long_double_rounds_to_nearest_even() {
        // 1 + 2^-53 is exactly halfway between 1 and the next double: rounds to 1 (even).
        let halfway = f80_bytes(false, 16383, (1 << 63) | (1 << 10));
        assert_eq!(f80_to_f64(halfway), 1.0);
        // 1 + 2^-53 + 2^-63 is above halfway: rounds up.
        let above = f80_bytes(false, 16383, (1 << 63) | (1 << 10) | 1);
        assert_eq!(f80_to_f64(above), 1.0 + f64::EPSILON);
        // Far beyond the double range: infinity; far below: zero.
        assert_eq!(f80_to_f64(f80_bytes(false, 16383 + 2000, 1 << 63)), f64::INFINITY);
        assert_eq!(
            f80_to_f64(f80_bytes(true, 16383 - 2000, 1 << 63)).to_bits(),
            (-0.0f64).to_bits()
        );
    }

    fn f80_bytes(negative: bool, exponent: u16, mantissa: u64) -> [u8; 10] {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&mantissa.to_le_bytes());
        let top = exponent | if negative { 0x8000 } else { 0 };
        bytes[8..].copy_from_slice(&top.to_le_bytes());
        bytes
    }
}
