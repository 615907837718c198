//! Callbacks: C function pointers that call back into the layer above (Python), made from
//! a [`Signature`] and a handler: a thunk calling the signature's compiled callback stub
//! (`jit::callback`, `jit::thunk`), or a libffi closure where the JIT is off or does not
//! handle the signature (`long double` results).
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

/// Data the closure or the thunk points at; boxed so its address is stable.
struct ClosureState {
    /// libffi's description of the signature, for closures only.
    call: Option<LibffiCall>,
    handler: Box<Handler>,
    ret_size: usize,
}

/// What C calls.
enum Entry {
    /// A libffi closure; freed with the callback.
    Closure(*mut ffi_closure),
    /// A thunk into the compiled stub of the signature; given back with the callback.
    Thunk(#[allow(dead_code)] jit::thunk::Thunk),
}

/// A C-callable function pointer. The code address is valid until this value is dropped.
pub struct Callback {
    entry: Entry,
    code: *const c_void,
    state: Box<ClosureState>,
}

// SAFETY: the closure and its state are immutable after construction; the handler is
// `Send + Sync`.
unsafe impl Send for Callback {}
// SAFETY: as for `Send`.
unsafe impl Sync for Callback {}

impl Callback {
    /// A callback of `signature` (not variadic) that runs `handler`, through a compiled
    /// stub where the JIT handles the signature.
    pub fn new(signature: &Signature, handler: Box<Handler>) -> Result<Callback, String> {
        Callback::with_jit(signature, handler, true)
    }

    /// `new`; `use_jit=false` makes a libffi closure (the JIT switched off).
    pub fn with_jit(
        signature: &Signature,
        handler: Box<Handler>,
        use_jit: bool,
    ) -> Result<Callback, String> {
        if signature.is_variadic() {
            return Err("a callback cannot be variadic".into());
        }
        let ret_size = signature.ret_buffer_size();
        if use_jit {
            let stub =
                jit::StubCache::global().callback(signature, run_compiled as *const () as usize);
            if let Ok(stub) = stub {
                let state = Box::new(ClosureState { call: None, handler, ret_size });
                let data: *const ClosureState = &*state;
                let thunk = jit::thunk::Thunk::new(data as usize, stub.entry as usize)?;
                let code = thunk.code_address().cast();
                return Ok(Callback { entry: Entry::Thunk(thunk), code, state });
            }
        }
        Callback::closure(signature, handler, ret_size)
    }

    fn closure(
        signature: &Signature,
        handler: Box<Handler>,
        ret_size: usize,
    ) -> Result<Callback, String> {
        let call = Some(LibffiCall::prepare(signature)?);
        let state = Box::new(ClosureState { call, handler, ret_size });
        let cif = state.call.as_ref().expect("prepared above").raw_cif();
        let (closure, code) = try_closure_alloc().ok_or("cannot allocate a libffi closure")?;
        let user_data: *const ClosureState = &*state;
        // SAFETY: `closure` was just allocated; the cif lives in `state`, which outlives
        // the closure (both freed in `drop`, closure first); `code` is the closure's own
        // executable address.
        let status = unsafe {
            ffi_prep_closure_loc(
                closure,
                cif,
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
        Ok(Callback { entry: Entry::Closure(closure), code: code.as_ptr(), state })
    }

    /// The C function pointer.
    pub fn code_address(&self) -> *const c_void {
        self.code
    }

    /// True if a compiled stub serves the callback (false: a libffi closure).
    pub fn is_compiled(&self) -> bool {
        matches!(self.entry, Entry::Thunk(_))
    }

    /// Bytes of the return buffer the handler fills.
    pub fn ret_size(&self) -> usize {
        self.state.ret_size
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        if let Entry::Closure(closure) = self.entry {
            // SAFETY: allocated in `closure`, freed once; the state it points at is
            // dropped after.
            unsafe { closure_free(closure) }
        }
        // A thunk gives its slot back when dropped, before the state it points at.
    }
}

/// The handler compiled callback stubs call (`jit::callback`): the state is the one the
/// thunk carries.
unsafe extern "C" fn run_compiled(
    state: *const ClosureState,
    args: *const *const c_void,
    ret: *mut c_void,
) {
    // SAFETY: the thunk passes the state it was made with, alive while the callback is.
    let state = unsafe { &*state };
    run(state, args, ret);
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
    run(state, args as *const _, ret);
}

/// Runs the handler and never lets a panic escape.
fn run(state: &ClosureState, args: *const *const c_void, ret: *mut c_void) {
    // Read before the handler runs: the handler may free this callback (its last owner
    // can go away while it runs), after which `state` must not be touched.
    let ret_size = state.ret_size;
    let outcome = catch_unwind(AssertUnwindSafe(|| (state.handler)(args, ret)));
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
        for use_jit in [true, false] {
            let signature = Signature::new(Type::F64, vec![Type::I32, Type::F64]).unwrap();
            let handler = Box::new(|args: *const *const c_void, ret: *mut c_void| {
                // SAFETY: the signature says args[0] is an i32 and args[1] an f64.
                let (a, b) = unsafe { (*(*args as *const i32), *(*args.add(1) as *const f64)) };
                // SAFETY: an f64 return buffer.
                unsafe { *(ret as *mut f64) = a as f64 * b };
            });
            let callback = Callback::with_jit(&signature, handler, use_jit).unwrap();
            assert_eq!(callback.is_compiled(), use_jit);
            // SAFETY: the callback has exactly this C type.
            let function: extern "C" fn(i32, f64) -> f64 =
                unsafe { std::mem::transmute(callback.code_address()) };
            assert_eq!(function(3, 2.5), 7.5);
        }
    }

    #[test]
    fn long_double_results_are_served_by_libffi_closures() {
        let signature = Signature::new(Type::LongDouble, vec![]).unwrap();
        let callback = Callback::new(&signature, Box::new(|_, _| {})).unwrap();
        assert!(!callback.is_compiled());
    }

    #[test]
    fn a_struct_is_passed_and_returned_by_value() {
        let pair = Type::aggregate(Aggregate::c_struct(vec![Type::I64, Type::F64]).unwrap());
        let signature = Signature::new(pair.clone(), vec![pair]).unwrap();
        #[repr(C)]
        #[derive(Debug, PartialEq)]
        struct Pair(i64, f64);
        let handler = |args: *const *const c_void, ret: *mut c_void| {
            // SAFETY: one `Pair` argument and a `Pair` return buffer.
            unsafe {
                let input = &*(*args as *const Pair);
                *(ret as *mut Pair) = Pair(input.0 * 2, input.1 + 1.0);
            }
        };
        let handler = move || -> Box<Handler> { Box::new(handler) };
        for use_jit in [true, false] {
            let callback = Callback::with_jit(&signature, handler(), use_jit).unwrap();
            // SAFETY: the callback has exactly this C type.
            let function: extern "C" fn(Pair) -> Pair =
                unsafe { std::mem::transmute(callback.code_address()) };
            assert_eq!(function(Pair(21, 0.5)), Pair(42, 1.5));
        }
    }

    #[test]
    fn a_panicking_handler_returns_zero_to_c() {
        let signature = Signature::new(Type::I64, vec![]).unwrap();
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for use_jit in [true, false] {
            let handler = Box::new(|_, _| panic!("boom"));
            let callback = Callback::with_jit(&signature, handler, use_jit).unwrap();
            // SAFETY: the callback has exactly this C type.
            let function: extern "C" fn() -> i64 =
                unsafe { std::mem::transmute(callback.code_address()) };
            assert_eq!(function(), 0);
        }
        std::panic::set_hook(quiet);
    }

    #[test]
    fn variadic_callbacks_are_refused() {
        let signature = Signature::variadic(Type::I32, vec![Type::I32], 1).unwrap();
        assert!(Callback::new(&signature, Box::new(|_, _| {})).is_err());
    }
}
