//! Callbacks: C function pointers that call back into the layer above (Python), made from
//! a [`Signature`] and a handler, with libffi closures.
//!
//! The handler receives libffi's closure contract — `args[i]` points at argument i,
//! `ret` at the return buffer — and must fill `ret`. It may be called from any thread,
//! including threads the higher layer never saw. A panic in the handler never unwinds into
//! C: it is caught and the C caller gets a zero result.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use jit::libffi_path::LibffiCall;
use jit::Signature;
use libffi::low::{closure_free, ffi_cif, ffi_closure, try_closure_alloc};
use libffi::raw::ffi_prep_closure_loc;

/// What a callback runs: `(args, ret)` with libffi's closure contract.
pub type Handler = dyn Fn(*const *const c_void, *mut c_void) + Send + Sync;

/// Data the closure points at; boxed so its address is stable.
struct ClosureState {
    call: LibffiCall,
    handler: Box<Handler>,
    ret_size: usize,
}

/// A C-callable function pointer. The code address is valid until this value is dropped.
pub struct Callback {
    closure: *mut ffi_closure,
    code: *const c_void,
    state: Box<ClosureState>,
}

// SAFETY: the closure and its state are immutable after construction; the handler is
// `Send + Sync`.
unsafe impl Send for Callback {}
// SAFETY: as for `Send`.
unsafe impl Sync for Callback {}

impl Callback {
    /// A callback of `signature` (not variadic) that runs `handler`.
    pub fn new(signature: &Signature, handler: Box<Handler>) -> Result<Callback, String> {
        if signature.is_variadic() {
            return Err("a callback cannot be variadic".into());
        }
        let call = LibffiCall::prepare(signature)?;
        let ret_size = signature.ret_buffer_size();
        let state = Box::new(ClosureState { call, handler, ret_size });
        let (closure, code) = try_closure_alloc().ok_or("cannot allocate a libffi closure")?;
        let user_data: *const ClosureState = &*state;
        // SAFETY: `closure` was just allocated; the cif lives in `state`, which outlives
        // the closure (both freed in `drop`, closure first); `code` is the closure's own
        // executable address.
        let status = unsafe {
            ffi_prep_closure_loc(
                closure,
                state.call.raw_cif(),
                Some(run_handler),
                user_data as *mut c_void,
                code.as_mut_ptr(),
            )
        };
        if status != libffi::raw::ffi_status_FFI_OK {
            // SAFETY: allocated above and not yet handed out.
            unsafe { closure_free(closure) };
            return Err(format!("ffi_prep_closure_loc failed with status {status}"));
        }
        Ok(Callback { closure, code: code.as_ptr(), state })
    }

    /// The C function pointer.
    pub fn code_address(&self) -> *const c_void {
        self.code
    }

    /// Bytes of the return buffer the handler fills.
    pub fn ret_size(&self) -> usize {
        self.state.ret_size
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once; the state it points at is dropped after.
        unsafe { closure_free(self.closure) }
    }
}

/// The function every closure enters: runs the handler and never lets a panic escape.
unsafe extern "C" fn run_handler(
    _cif: *mut ffi_cif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    user_data: *mut c_void,
) {
    // SAFETY: `user_data` is the `ClosureState` boxed by `Callback::new`, alive while the
    // closure exists.
    let state = unsafe { &*(user_data as *const ClosureState) };
    // Read before the handler runs: the handler may free this callback (its last owner
    // can go away while it runs), after which `state` must not be touched.
    let ret_size = state.ret_size;
    let outcome = catch_unwind(AssertUnwindSafe(|| (state.handler)(args as *const _, ret)));
    if outcome.is_err() {
        // SAFETY: libffi's return buffer holds at least the return type's size (and 8
        // bytes for scalars).
        unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, ret_size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit::{Aggregate, Type};

    #[test]
    fn a_callback_receives_its_arguments_and_returns() {
        let signature = Signature::new(Type::F64, vec![Type::I32, Type::F64]).unwrap();
        let handler = Box::new(|args: *const *const c_void, ret: *mut c_void| {
            // SAFETY: the signature says args[0] is an i32 and args[1] an f64.
            let (a, b) = unsafe { (*(*args as *const i32), *(*args.add(1) as *const f64)) };
            // SAFETY: an f64 return buffer.
            unsafe { *(ret as *mut f64) = a as f64 * b };
        });
        let callback = Callback::new(&signature, handler).unwrap();
        // SAFETY: the closure has exactly this C type.
        let function: extern "C" fn(i32, f64) -> f64 =
            unsafe { std::mem::transmute(callback.code_address()) };
        assert_eq!(function(3, 2.5), 7.5);
    }

    #[test]
    fn a_struct_is_passed_and_returned_by_value() {
        let pair = Type::aggregate(Aggregate::c_struct(vec![Type::I64, Type::F64]).unwrap());
        let signature = Signature::new(pair.clone(), vec![pair]).unwrap();
        #[repr(C)]
        #[derive(Debug, PartialEq)]
        struct Pair(i64, f64);
        let handler = Box::new(|args: *const *const c_void, ret: *mut c_void| {
            // SAFETY: one `Pair` argument and a `Pair` return buffer.
            unsafe {
                let input = &*(*args as *const Pair);
                *(ret as *mut Pair) = Pair(input.0 * 2, input.1 + 1.0);
            }
        });
        let callback = Callback::new(&signature, handler).unwrap();
        // SAFETY: the closure has exactly this C type.
        let function: extern "C" fn(Pair) -> Pair =
            unsafe { std::mem::transmute(callback.code_address()) };
        assert_eq!(function(Pair(21, 0.5)), Pair(42, 1.5));
    }

    #[test]
    fn a_panicking_handler_returns_zero_to_c() {
        let signature = Signature::new(Type::I64, vec![]).unwrap();
        let callback = Callback::new(&signature, Box::new(|_, _| panic!("boom"))).unwrap();
        // SAFETY: the closure has exactly this C type.
        let function: extern "C" fn() -> i64 =
            unsafe { std::mem::transmute(callback.code_address()) };
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        assert_eq!(function(), 0);
        std::panic::set_hook(quiet);
    }

    #[test]
    fn variadic_callbacks_are_refused() {
        let signature = Signature::variadic(Type::I32, vec![Type::I32], 1).unwrap();
        assert!(Callback::new(&signature, Box::new(|_, _| {})).is_err());
    }
}
