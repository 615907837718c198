//! The project's C test library (`c/jittest.c`, built by `build.rs`), and helpers shared by
//! the tests and benchmarks that call into it: the checksum the C side folds values with,
//! and a compiler driver for C generated at test time.

pub mod generated;

use std::io;
use std::path::Path;
use std::process::Command;

/// Path of the compiled `libjittest.so`.
pub const TEST_LIBRARY: &str = env!("JITTEST_LIBRARY");

/// The C library's `mix`: folds one 64-bit value into a checksum.
pub fn mix(h: u64, v: u64) -> u64 {
    let h = (h ^ v).wrapping_mul(0x100000001b3);
    h.rotate_left(29)
}

/// The C library's `next`: advances a seed.
pub fn next(h: &mut u64) -> u64 {
    *h = mix(*h, 0x9e3779b97f4a7c15);
    *h
}

/// Compiles C sources into a shared object with `$CC` (default `cc`).
pub fn compile_shared(source: &Path, output: &Path, opt_level: &str) -> io::Result<()> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let result = Command::new(&compiler)
        .args([opt_level, "-std=gnu11", "-w", "-shared", "-fPIC", "-o"])
        .arg(output)
        .arg(source)
        .output()?;
    if result.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&result.stderr);
        Err(io::Error::other(format!("{compiler} failed on {}:\n{stderr}", source.display())))
    }
}

/// An x87 80-bit extended value holding the integer `value` exactly, in the low 10 bytes
/// of 16 (the storage of a `long double`).
pub fn f80_from_i64(value: i64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if value == 0 {
        return bytes;
    }
    let magnitude = value.unsigned_abs();
    let shift = magnitude.leading_zeros();
    let mantissa = magnitude << shift; // explicit integer bit at bit 63
    let exponent = 16383 + 63 - shift as u16;
    let sign = if value < 0 { 0x8000 } else { 0 };
    bytes[..8].copy_from_slice(&mantissa.to_le_bytes());
    bytes[8..10].copy_from_slice(&(exponent | sign).to_le_bytes());
    bytes
}

/// The integer an x87 80-bit value holds, if it holds one that fits an i64.
pub fn f80_to_i64(bytes: &[u8; 16]) -> Option<i64> {
    let mantissa = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let top = u16::from_le_bytes([bytes[8], bytes[9]]);
    let (negative, exponent) = (top & 0x8000 != 0, i32::from(top & 0x7fff));
    if mantissa == 0 {
        return Some(0);
    }
    let shift = 63 - (exponent - 16383);
    if !(0..=63).contains(&shift) || mantissa.trailing_zeros() < shift as u32 {
        return None;
    }
    let magnitude = mantissa >> shift;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f80_round_trips_integers() {
        for value in [0, 1, -1, 42, -1000, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(f80_to_i64(&f80_from_i64(value)), Some(value), "{value}");
        }
        // 1.0 is exponent 16383, mantissa with only the integer bit.
        assert_eq!(&f80_from_i64(1)[..10], &[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    }
}
