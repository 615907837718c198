//! Calls of foreign functions through `jit` (compiled stub or libffi), with ctypes'
//! private errno swapped in and out around the call when asked.

use std::cell::Cell;
use std::ffi::c_void;

use jit::{CallError, Caller, Signature};

/// How a foreign function is called, beyond its signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// ctypes' `use_errno`: the thread's private errno is copied into the C `errno` before
    /// the call and the C `errno` back into it after.
    pub use_errno: bool,
    /// The libffi path wherever libffi can describe the signature (the `JITCTYPES_JIT=0`
    /// switch, lazy compilation, possibly variadic calls): a compiled stub only for what
    /// libffi cannot express the way gcc passes it (small structs with unaligned fields).
    pub prefer_libffi: bool,
}

/// A function address bound to a call path for its signature.
#[derive(Clone, Debug)]
pub struct ForeignFunction {
    address: *const c_void,
    caller: Caller,
    options: CallOptions,
}

// SAFETY: the address is a code address, and `Caller` is shared immutable state.
unsafe impl Send for ForeignFunction {}
// SAFETY: as for `Send`.
unsafe impl Sync for ForeignFunction {}

impl ForeignFunction {
    /// Binds `address` (non-null) to a caller of `signature`.
    pub fn new(
        address: *const c_void,
        signature: Signature,
        options: CallOptions,
    ) -> Result<ForeignFunction, CallError> {
        let caller = if options.prefer_libffi {
            Caller::preferring_libffi(signature)?
        } else {
            Caller::new(signature)?
        };
        Ok(ForeignFunction { address, caller, options })
    }

    pub fn address(&self) -> *const c_void {
        self.address
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn options(&self) -> CallOptions {
        self.options
    }

    /// Calls the function at `address` instead of the bound one (function objects whose
    /// address may change share one prepared call path).
    ///
    /// # Safety
    /// As [`ForeignFunction::call`], for the function at `address`.
    pub unsafe fn call_at(
        &self,
        address: *const c_void,
        args: *const *mut c_void,
        ret: *mut c_void,
    ) {
        if self.options.use_errno {
            let saved = swap_in_private_errno();
            // SAFETY: caller's contract.
            unsafe { self.caller.call(address, args, ret) };
            swap_out_private_errno(saved);
        } else {
            // SAFETY: caller's contract.
            unsafe { self.caller.call(address, args, ret) };
        }
    }

    /// Calls the function with the `ffi_call` contract of [`Caller::call`].
    ///
    /// # Safety
    /// The address must be a function of this signature; `args` and `ret` as for
    /// [`Caller::call`].
    pub unsafe fn call(&self, args: *const *mut c_void, ret: *mut c_void) {
        // SAFETY: caller's contract.
        unsafe { self.call_at(self.address, args, ret) }
    }
}

thread_local! {
    /// ctypes' per-thread private copy of errno (`ctypes.get_errno()`/`set_errno()`).
    static PRIVATE_ERRNO: Cell<i32> = const { Cell::new(0) };
}

/// The calling thread's private errno.
pub fn private_errno() -> i32 {
    PRIVATE_ERRNO.with(Cell::get)
}

/// Sets the calling thread's private errno and returns the previous value.
pub fn set_private_errno(value: i32) -> i32 {
    PRIVATE_ERRNO.with(|cell| cell.replace(value))
}

/// Exchanges the private errno with C's `errno` (callbacks with `use_errno` do this around
/// the Python code they run, once before and once after).
pub fn exchange_private_errno() {
    // SAFETY: `errno` is the calling thread's own.
    let c_value = unsafe { *c_errno() };
    let private = set_private_errno(c_value);
    // SAFETY: as above.
    unsafe { *c_errno() = private };
}

fn c_errno() -> *mut i32 {
    // SAFETY: glibc's `__errno_location` returns the calling thread's errno; always valid.
    unsafe { libc_errno_location() }
}

extern "C" {
    #[link_name = "__errno_location"]
    fn libc_errno_location() -> *mut i32;
}

/// [`swap_in_private_errno`] for compiled code (entry stubs call it by address).
pub extern "C" fn errno_swap_in() -> i32 {
    swap_in_private_errno()
}

/// [`swap_out_private_errno`] for compiled code.
pub extern "C" fn errno_swap_out(saved: i32) {
    swap_out_private_errno(saved)
}

/// Puts the private errno into the C errno; returns the C errno it replaced.
fn swap_in_private_errno() -> i32 {
    let errno = c_errno();
    // SAFETY: `errno` points at this thread's errno.
    unsafe { std::mem::replace(&mut *errno, private_errno()) }
}

/// Saves the C errno as the private errno and restores the C errno from before the call.
fn swap_out_private_errno(saved: i32) {
    let errno = c_errno();
    // SAFETY: `errno` points at this thread's errno.
    let after_call = unsafe { std::mem::replace(&mut *errno, saved) };
    set_private_errno(after_call);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit::Type;

    extern "C" fn set_errno_to(value: i32) -> i32 {
        // SAFETY: this thread's errno.
        let previous = unsafe { *c_errno() };
        // SAFETY: as above.
        unsafe { *c_errno() = value };
        previous
    }

    fn call_set_errno(options: CallOptions, value: i32) -> i32 {
        let signature = Signature::new(Type::I32, vec![Type::I32]).unwrap();
        let function = ForeignFunction::new(set_errno_to as *const c_void, signature, options);
        let function = function.unwrap();
        let mut arg = value;
        let args = [(&mut arg as *mut i32).cast::<c_void>()];
        let mut ret = 0u64;
        // SAFETY: `set_errno_to` has this signature; the buffers match it.
        unsafe { function.call(args.as_ptr(), (&mut ret as *mut u64).cast()) };
        ret as i32
    }

    #[test]
    fn errno_is_swapped_only_with_use_errno() {
        for prefer_libffi in [false, true] {
            let options = CallOptions { use_errno: true, prefer_libffi };
            set_private_errno(7);
            // SAFETY: this thread's errno.
            unsafe { *c_errno() = 99 };
            assert_eq!(call_set_errno(options, 42), 7, "the callee sees the private errno");
            assert_eq!(private_errno(), 42, "the callee's errno becomes the private one");
            // SAFETY: this thread's errno.
            assert_eq!(unsafe { *c_errno() }, 99, "the C errno is restored");
        }
        set_private_errno(5);
        call_set_errno(CallOptions::default(), 13);
        assert_eq!(private_errno(), 5);
    }
}
