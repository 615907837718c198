//! `FuncPtr`: a foreign function for Python — an address, argument and result `CType`s,
//! and the `rawffi` call path (compiled stub or libffi) they select.
//!
//! This is the general path: each call converts arguments into fresh storage. The compiled
//! Python-aware fast path (issue 5) will sit in front of it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use jit::{CallPath, Signature, Type};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rawffi::call::{CallOptions, ForeignFunction};

use crate::convert::{load, store, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::errors::{call_error, signature_error};
use crate::param::Slot;

/// Whether calls may use compiled stubs: `JITCTYPES_JIT=0` switches them off for the
/// process (read once); `set_jit_enabled` changes it at run time (benchmarks compare both
/// paths in one process).
static JIT_ENABLED: AtomicU8 = AtomicU8::new(JIT_UNSET);
const JIT_UNSET: u8 = 2;

/// True unless the JIT is switched off (see `JIT_ENABLED`).
pub fn jit_enabled() -> bool {
    match JIT_ENABLED.load(Ordering::Relaxed) {
        JIT_UNSET => {
            let enabled = std::env::var("JITCTYPES_JIT").map_or(true, |value| value != "0");
            // A concurrent `set_jit_enabled` wins over the environment.
            let _ = JIT_ENABLED.compare_exchange(
                JIT_UNSET,
                enabled as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            JIT_ENABLED.load(Ordering::Relaxed) == 1
        }
        value => value == 1,
    }
}

/// Calls a function object makes through libffi before its stubs are compiled
/// (`JITCTYPES_COMPILE_AFTER`, default 16; `set_compile_after`): programs declare many
/// functions and call most of them a few times, which compiling would cost more than it
/// saves. A signature whose stub exists already is compiled for at once.
static COMPILE_AFTER: AtomicU32 = AtomicU32::new(COMPILE_AFTER_UNSET);
const COMPILE_AFTER_UNSET: u32 = u32::MAX;
const COMPILE_AFTER_DEFAULT: u32 = 16;

/// See `COMPILE_AFTER`; 0 and 1 both mean "on the first call".
pub fn compile_after() -> u32 {
    match COMPILE_AFTER.load(Ordering::Relaxed) {
        COMPILE_AFTER_UNSET => {
            let configured = std::env::var("JITCTYPES_COMPILE_AFTER")
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(COMPILE_AFTER_DEFAULT)
                .min(COMPILE_AFTER_UNSET - 1);
            let _ = COMPILE_AFTER.compare_exchange(
                COMPILE_AFTER_UNSET,
                configured,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            COMPILE_AFTER.load(Ordering::Relaxed)
        }
        calls => calls,
    }
}

pub fn set_compile_after(calls: u32) {
    COMPILE_AFTER.store(calls.min(COMPILE_AFTER_UNSET - 1), Ordering::Relaxed);
}

/// True if a call path for `signature` should use the JIT now: the JIT is on and the
/// caller is hot (`calls` made so far reached `compile_after`) or the stub exists.
pub fn compile_now(signature: &Signature, calls: u32) -> bool {
    jit_enabled()
        && (calls.saturating_add(1) >= compile_after()
            || jit::StubCache::global().has_stub(signature))
}

/// The switch as a byte entry stubs read before every call: 1 while compiled stubs are
/// on (any other value makes them take the Rust entry, which reads the environment).
pub fn jit_enabled_flag() -> *const u8 {
    JIT_ENABLED.as_ptr()
}

/// Switches compiled stubs on or off for calls made from now on.
pub fn set_jit_enabled(enabled: bool) {
    JIT_ENABLED.store(enabled as u8, Ordering::Relaxed);
}

/// The `jit::Type` of an argument or result.
pub fn signature_type(ctype: &CType, is_result: bool) -> PyResult<Type> {
    match ctype.shape {
        Shape::Void if is_result => Ok(Type::Void),
        Shape::Void => Err(PyTypeError::new_err("void is not a valid argument type")),
        Shape::Array { .. } => {
            Err(PyTypeError::new_err("arrays cannot be passed or returned by value"))
        }
        Shape::Scalar { .. } | Shape::Aggregate => Ok(ctype.jit.clone()),
    }
}

/// The signature of `argtypes` → `restype`, variadic after `fixed_args` if given.
pub fn build_signature(
    argtypes: &[Bound<'_, CType>],
    restype: Option<&Bound<'_, CType>>,
    fixed_args: Option<usize>,
) -> PyResult<Signature> {
    let args = argtypes
        .iter()
        .map(|ctype| signature_type(ctype.get(), false))
        .collect::<PyResult<Vec<_>>>()?;
    let ret = match restype {
        Some(ctype) => signature_type(ctype.get(), true)?,
        None => Type::Void,
    };
    let signature = match fixed_args {
        Some(fixed) => Signature::variadic(ret, args, fixed),
        None => Signature::new(ret, args),
    };
    signature.map_err(signature_error)
}

/// The Python value of a call's result. A `PyObject *` result is a new reference that the
/// caller owns (the C API's convention), so it is taken over, not borrowed.
pub fn result_value(py: Python<'_>, restype: &CType, ret: &[Slot]) -> PyResult<PyObject> {
    if let Some((Code::PyObject, _)) = restype.code() {
        // SAFETY: the return buffer holds one pointer.
        let object = unsafe { *(ret.as_ptr() as *const *mut pyo3::ffi::PyObject) };
        if object.is_null() {
            return Err(
                PyErr::take(py).unwrap_or_else(|| PyValueError::new_err("PyObject is NULL"))
            );
        }
        // SAFETY: a non-null `PyObject *` result is a new reference handed to us.
        return Ok(unsafe { PyObject::from_owned_ptr(py, object) });
    }
    // SAFETY: the return buffer holds a value of the result type.
    unsafe { load(py, restype, ret.as_ptr().cast()) }
}

/// A callable foreign function.
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct FuncPtr {
    function: ForeignFunction,
    argtypes: Vec<Py<CType>>,
    restype: Option<Py<CType>>,
    release_gil: bool,
}

/// What the GIL-free part of a call needs; raw pointers into storage the calling frame
/// owns, so it is only `Send` for the duration of that call.
pub struct CallFrame<'a> {
    function: &'a ForeignFunction,
    args: *const *mut c_void,
    ret: *mut c_void,
}

// SAFETY: the frame is used by the thread that built it, while that thread waits inside
// `allow_threads`; the storage it points at outlives the call.
unsafe impl Send for CallFrame<'_> {}

impl<'a> CallFrame<'a> {
    pub fn new(function: &'a ForeignFunction, args: *const *mut c_void, ret: *mut c_void) -> Self {
        CallFrame { function, args, ret }
    }

    /// # Safety
    /// As `ForeignFunction::call`.
    pub unsafe fn run(self) {
        // SAFETY: caller's contract.
        unsafe { self.function.call(self.args, self.ret) }
    }
}

#[pymethods]
impl FuncPtr {
    /// A function at `address` taking `argtypes` and returning `restype` (None: void).
    /// `fixed_args` makes it one call shape of a variadic function; `release_gil=False`
    /// keeps the GIL during the call (ctypes' `PyDLL`); `use_errno` swaps ctypes' private
    /// errno around the call; `use_jit=False` (or `JITCTYPES_JIT=0`) forces libffi.
    #[new]
    #[pyo3(signature = (address, argtypes, restype = None, *, fixed_args = None,
                        release_gil = true, use_errno = false, use_jit = true))]
    fn new(
        address: usize,
        argtypes: Vec<Bound<'_, CType>>,
        restype: Option<Bound<'_, CType>>,
        fixed_args: Option<usize>,
        release_gil: bool,
        use_errno: bool,
        use_jit: bool,
    ) -> PyResult<FuncPtr> {
        let signature = build_signature(&argtypes, restype.as_ref(), fixed_args)?;
        let options = CallOptions { use_errno, prefer_libffi: !use_jit || !jit_enabled() };
        let function = ForeignFunction::new(address as *const c_void, signature, options)
            .map_err(call_error)?;
        Ok(FuncPtr {
            function,
            argtypes: argtypes.into_iter().map(Bound::unbind).collect(),
            restype: restype.map(Bound::unbind),
            release_gil,
        })
    }

    #[getter]
    fn address(&self) -> usize {
        self.function.address() as usize
    }

    /// `"jit"`, or `"libffi: <why>"`.
    #[getter]
    fn path(&self) -> String {
        match self.function.caller().path() {
            CallPath::Jit => "jit".into(),
            CallPath::Libffi(reason) => format!("libffi: {reason}"),
        }
    }

    #[getter]
    fn signature(&self) -> String {
        self.function.caller().signature().to_string()
    }

    #[pyo3(signature = (*args))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
        let expected = self.argtypes.len();
        if args.len() != expected {
            let plural = if expected == 1 { "" } else { "s" };
            return Err(PyTypeError::new_err(format!(
                "this function takes {expected} argument{plural} ({} given)",
                args.len()
            )));
        }
        if self.function.address().is_null() {
            return Err(PyValueError::new_err("NULL function pointer"));
        }
        let mut storage: Vec<Vec<Slot>> = Vec::with_capacity(expected);
        let mut keep = KeepAlive::new();
        for (value, ctype) in args.iter().zip(&self.argtypes) {
            let ctype = ctype.get();
            let mut slots = vec![Slot::default(); ctype.size.div_ceil(16).max(1)];
            // SAFETY: `slots` holds at least `ctype.size` bytes.
            unsafe { store(&value, ctype, slots.as_mut_ptr().cast(), &mut keep)? };
            storage.push(slots);
        }
        let pointers: Vec<*mut c_void> =
            storage.iter_mut().map(|slots| slots.as_mut_ptr().cast()).collect();
        let ret_size = self.function.caller().signature().ret_buffer_size();
        let mut ret = vec![Slot::default(); ret_size.div_ceil(16)];
        let frame = CallFrame {
            function: &self.function,
            args: pointers.as_ptr(),
            ret: ret.as_mut_ptr().cast(),
        };
        if self.release_gil {
            // SAFETY: the signature was built from these CTypes; every argument was stored
            // in storage of its size and `ret` holds `ret_buffer_size` bytes. The address is
            // the user's promise, as in ctypes.
            crate::gil::without_gil(py, || unsafe { frame.run() });
        } else {
            // SAFETY: as above.
            unsafe { frame.run() };
            // A function called with the GIL held (PyDLL) may report a Python error.
            if let Some(error) = PyErr::take(py) {
                return Err(error);
            }
        }
        // Arguments stay alive until the result is read: a `char *` result may point into
        // one of them.
        let result = match &self.restype {
            Some(restype) => result_value(py, restype.get(), &ret),
            None => Ok(py.None()),
        };
        drop(keep);
        result
    }

    fn __repr__(&self) -> String {
        format!("<FuncPtr {} at {:#x}>", self.signature(), self.address())
    }
}
