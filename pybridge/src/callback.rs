//! `Callback`: a C function pointer that calls a Python callable, from any thread.
//!
//! Arguments are converted to Python values by type, the callable is called with the GIL
//! held (taken with `PyGILState_Ensure`, so threads Python never saw may call it), and the
//! result is converted back. An exception is reported through `sys.unraisablehook` and the
//! C caller gets a zero result, as with stock ctypes.

use std::ffi::c_void;
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeWarning;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use rawffi::callback::Callback as RawCallback;

use crate::convert::{load, store, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::function::build_signature;
use crate::scalar::FastScalar;

#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct Callback {
    /// Freed on drop, except once the interpreter exits: C threads may still call it then
    /// (see `Drop`).
    callback: std::mem::ManuallyDrop<RawCallback>,
    #[pyo3(get)]
    callable: Py<PyAny>,
    /// The handler's state, also held here so that the garbage collector sees its
    /// reference to the callable (a callable referring back to this callback is a cycle).
    target: Arc<Target>,
}

/// Everything the handler needs, shared with the closure.
struct Target {
    callable: Py<PyAny>,
    argtypes: Vec<Py<CType>>,
    /// Per argument, the ctypes class whose instance the callable gets (a copy of the C
    /// value), or None for a plain Python value (ctypes' basic simple types).
    arg_classes: Vec<Option<Py<PyType>>>,
    /// ctypes' `use_errno`: the private errno is swapped with C's around the Python call.
    use_errno: bool,
    restype: Option<Py<CType>>,
    ret_size: usize,
    /// Per argument, its kind if it becomes a plain value `scalar.rs` boxes directly.
    arg_scalars: Vec<Option<FastScalar>>,
    /// The result's kind if `scalar.rs` stores it directly (for exact int/float results).
    ret_scalar: Option<FastScalar>,
}

/// Most arguments whose objects live in a stack array during the call (more: a vector).
const STACK_ARGS: usize = 8;

impl Target {
    /// Runs the callable for one C call. Never fails: errors become unraisable.
    ///
    /// Takes its own reference to the target and gives it up while the GIL is still held:
    /// the callable may have dropped every other one, and the last must not go without it.
    fn invoke(self: Arc<Self>, args: *const *const c_void, ret: *mut c_void) {
        // Parks this thread for good if the interpreter is exiting (see gil.rs).
        crate::gil::enter();
        // SAFETY: a plain query of the interpreter's state, valid from any thread.
        if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
            crate::gil::leave();
            // No interpreter (C called back after Python ended): C gets zeros.
            if self.restype.is_some() {
                // SAFETY: libffi's return buffer holds the return type (8 bytes at least).
                unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, self.ret_size) };
            }
            // Its Python references cannot be released any more: the process is ending.
            std::mem::forget(self);
            return;
        }
        // The GIL is taken with the C API, not `with_gil`: the thread that made the C call
        // may have released the GIL without telling pyo3 (the fast call path does), and
        // `with_gil` would then believe it still held.
        // SAFETY: the interpreter is initialized; paired with the release below.
        let gil = unsafe { pyo3::ffi::PyGILState_Ensure() };
        // SAFETY: the GIL is held; the pointers are the closure's, valid for this call.
        if unsafe { self.run_directly(args, ret) } {
            crate::gil::release(self);
            // SAFETY: paired with the `PyGILState_Ensure` above.
            unsafe { pyo3::ffi::PyGILState_Release(gil) };
            crate::gil::leave();
            return;
        }
        // Everything else runs under pyo3's entry trampoline (the one its generated
        // methods use), which tells pyo3 the GIL is held. It takes plain pointers: the
        // target, the C arguments and the return buffer travel in its argument slots.
        // SAFETY: the GIL is held; the pointers are valid for this call.
        let status = unsafe {
            pyo3::impl_::trampoline::fastcall_with_keywords(
                (Arc::as_ptr(&self)).cast_mut().cast(),
                args.cast(),
                ret as pyo3::ffi::Py_ssize_t,
                std::ptr::null_mut(),
                run_target,
            )
        };
        // A panic inside became a raised exception (and a NULL status): report it.
        // SAFETY: the GIL is held.
        if status.is_null() && unsafe { !pyo3::ffi::PyErr_Occurred().is_null() } {
            // SAFETY: as above.
            unsafe { pyo3::ffi::PyErr_WriteUnraisable(self.callable.as_ptr()) };
        }
        crate::gil::release(self);
        // SAFETY: paired with the `PyGILState_Ensure` above.
        unsafe { pyo3::ffi::PyGILState_Release(gil) };
        crate::gil::leave();
    }

    /// One invocation without pyo3's entry bookkeeping, for callbacks whose arguments are
    /// all plain scalars (`scalar.rs`) and whose callable returns an exact int or float
    /// for a scalar result (or anything, for `void`): the C values are boxed directly and
    /// the callable is called with vectorcall (no argument tuple). Returns false, having
    /// done nothing visible, when the general `run` must do the invocation; an exception
    /// raised by the callable is reported here, as `run` reports it.
    ///
    /// # Safety
    /// The GIL is held; `args` and `ret` are the closure's.
    unsafe fn run_directly(&self, args: *const *const c_void, ret: *mut c_void) -> bool {
        use pyo3::ffi;
        let count = self.arg_scalars.len();
        let void_result = self.restype.is_none();
        if count > STACK_ARGS || self.use_errno || !(void_result || self.ret_scalar.is_some()) {
            return false;
        }
        let mut objects = [std::ptr::null_mut::<ffi::PyObject>(); STACK_ARGS];
        // Nothing may unwind through C: a panic here becomes "take the general path",
        // which is only possible before the callable runs.
        let boxed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for (index, scalar) in self.arg_scalars.iter().enumerate() {
                let Some(scalar) = scalar else { return false };
                // SAFETY: libffi passes one pointer per declared argument, each to a value
                // of its type.
                let object = unsafe { scalar.read(*args.add(index) as usize) };
                if object.is_null() {
                    return false;
                }
                objects[index] = object;
            }
            true
        }));
        let release = |objects: &[*mut ffi::PyObject]| {
            for &object in objects.iter().filter(|object| !object.is_null()) {
                // SAFETY: new references made above.
                unsafe { ffi::Py_DECREF(object) };
            }
        };
        if !matches!(boxed, Ok(true)) {
            release(&objects[..count]);
            // SAFETY: the GIL is held; a failed boxing left an error the general path
            // will meet again.
            unsafe { ffi::PyErr_Clear() };
            return false;
        }
        if !void_result {
            // SAFETY: the return buffer of a scalar result has 8 bytes at least (libffi's
            // and the compiled stubs' alike); one store instead of a `memset` call.
            unsafe { ret.cast::<u64>().write_unaligned(0) };
        }
        // SAFETY: the callable is alive (this target holds it); `objects` holds `count`
        // new references.
        let result = unsafe {
            ffi::PyObject_Vectorcall(
                self.callable.as_ptr(),
                objects.as_ptr(),
                count,
                std::ptr::null_mut(),
            )
        };
        release(&objects[..count]);
        if result.is_null() {
            // SAFETY: the GIL is held; the callable raised.
            let py = unsafe { Python::assume_gil_acquired() };
            let error = PyErr::fetch(py);
            write_unraisable(py, error, self.callable.bind(py), "calling");
            return true;
        }
        let stored = match self.ret_scalar {
            // SAFETY: the return buffer holds a value of the result type; `result` is live.
            Some(scalar) if !void_result => unsafe { scalar.write(ret as usize, result) },
            _ => true,
        };
        if stored {
            // SAFETY: the new reference the call returned.
            unsafe { ffi::Py_DECREF(result) };
            return true;
        }
        // A result of another type: converted (and refused) by the general rules.
        // SAFETY: the GIL is held; `result` is a new reference, owned from here.
        let py = unsafe { Python::assume_gil_acquired() };
        let result = unsafe { Bound::from_owned_ptr(py, result) };
        if let Err(error) = self.store_result(py, &result, ret) {
            write_unraisable(py, error, self.callable.bind(py), "converting result of");
        }
        true
    }

    /// One invocation with the GIL held.
    fn run(&self, py: Python<'_>, args: *const *const c_void, ret: *mut c_void) {
        if self.restype.is_some() {
            // SAFETY: libffi's return buffer holds the return type (8 bytes at least).
            unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, self.ret_size) };
        }
        if self.use_errno {
            rawffi::call::exchange_private_errno();
        }
        let callable = self.callable.bind(py);
        match self.call_python(py, args) {
            Ok(result) => {
                if let Err(error) = self.store_result(py, &result, ret) {
                    write_unraisable(py, error, callable, "converting result of");
                }
            }
            Err(error) => write_unraisable(py, error, callable, "calling"),
        }
        if self.use_errno {
            rawffi::call::exchange_private_errno();
        }
    }

    /// Calls the callable with the C arguments converted.
    fn call_python<'py>(
        &self,
        py: Python<'py>,
        args: *const *const c_void,
    ) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: a new tuple, filled below before anything else can see it.
        let tuple = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyTuple_New(self.argtypes.len() as pyo3::ffi::Py_ssize_t),
            )?
            .downcast_into_unchecked::<PyTuple>()
        };
        for (index, (ctype, class)) in self.argtypes.iter().zip(&self.arg_classes).enumerate() {
            // SAFETY: libffi passes one pointer per declared argument, each to a value of
            // its type.
            let mut source = unsafe { *args.add(index) }.cast::<u8>();
            if matches!(ctype.get().shape, Shape::Array { .. }) {
                // SAFETY: the argument is a pointer to the array's first element.
                source = unsafe { *source.cast::<*const u8>() };
            }
            let value = match class {
                Some(class) => {
                    let instance = class.bind(py).call0()?;
                    let address = crate::known_types::as_cdata(&instance)
                        .ok_or_else(|| {
                            pyo3::exceptions::PyTypeError::new_err("cannot build parameter")
                        })?
                        .borrow()
                        .address();
                    if source.is_null() {
                        set_item(&tuple, index, instance.unbind());
                        continue;
                    }
                    // SAFETY: the argument holds `size` bytes of its type, and a new
                    // instance of its class owns as many.
                    unsafe {
                        std::ptr::copy_nonoverlapping(source, address as *mut u8, ctype.get().size)
                    };
                    instance.unbind()
                }
                // SAFETY: as above.
                None => unsafe { load(py, ctype.get(), source) }?,
            };
            set_item(&tuple, index, value);
        }
        self.callable.bind(py).call1(tuple)
    }

    /// Converts the callable's result into the C return value.
    fn store_result(
        &self,
        py: Python<'_>,
        result: &Bound<'_, PyAny>,
        ret: *mut c_void,
    ) -> PyResult<()> {
        let Some(restype) = &self.restype else { return Ok(()) };
        let restype = restype.get();
        if matches!(restype.shape, Shape::Void) {
            return Ok(());
        }
        let mut keep = KeepAlive::new();
        // SAFETY: the return buffer holds a value of the result type.
        unsafe { store(result, restype, ret.cast(), &mut keep)? };
        if !keep.is_empty() {
            // The C caller holds a pointer into these objects: they must never die.
            let is_object = matches!(restype.code(), Some((Code::PyObject, _)));
            keep.into_iter().for_each(std::mem::forget);
            if !is_object {
                PyErr::warn(
                    py,
                    &py.get_type::<PyRuntimeWarning>(),
                    c"memory leak in callback function.",
                    1,
                )?;
            }
        }
        Ok(())
    }
}

#[pymethods]
impl Callback {
    /// A C function pointer of type `restype (*)(argtypes...)` that calls `callable`.
    #[new]
    /// `arg_classes` (ctypes): per argument, None for a plain value, or the class whose
    /// instance holding a copy of the argument the callable gets. `use_errno` swaps
    /// ctypes' private errno with C's around the Python call.
    #[pyo3(signature = (callable, argtypes, restype = None, *, arg_classes = None, use_errno = false))]
    fn new(
        callable: Bound<'_, PyAny>,
        argtypes: Vec<Bound<'_, CType>>,
        restype: Option<Bound<'_, CType>>,
        arg_classes: Option<Vec<Option<Bound<'_, PyType>>>>,
        use_errno: bool,
    ) -> PyResult<Callback> {
        // An array parameter is a pointer to its first element in C.
        let passed: Vec<Bound<'_, CType>> = argtypes
            .iter()
            .map(|ctype| match ctype.get().shape {
                Shape::Array { .. } => Bound::new(ctype.py(), CType::pointer()),
                _ => Ok(ctype.clone()),
            })
            .collect::<PyResult<_>>()?;
        let signature = build_signature(&passed, restype.as_ref(), None)?;
        let arg_classes: Vec<Option<Py<PyType>>> = match arg_classes {
            Some(classes) if classes.len() == argtypes.len() => {
                classes.into_iter().map(|class| class.map(Bound::unbind)).collect()
            }
            Some(_) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "arg_classes must have one entry per argument type",
                ))
            }
            None => argtypes.iter().map(|_| None).collect(),
        };
        let arg_scalars: Vec<Option<FastScalar>> = argtypes
            .iter()
            .zip(arg_classes.iter())
            .map(|(ctype, class)| class.is_none().then(|| FastScalar::of(ctype.get())).flatten())
            .collect();
        let ret_scalar = restype.as_ref().and_then(|restype| FastScalar::of(restype.get()));
        let target = Arc::new(Target {
            arg_scalars,
            ret_scalar,
            callable: callable.clone().unbind(),
            arg_classes,
            use_errno,
            argtypes: argtypes.into_iter().map(Bound::unbind).collect(),
            restype: restype.map(Bound::unbind),
            ret_size: signature.ret_buffer_size(),
        });
        // The callable may drop the last reference to this callback while it runs: the
        // handler works on its own reference to the target, never on the closure's.
        let handler_target = Arc::clone(&target);
        let handler = Box::new(move |args: *const *const c_void, ret: *mut c_void| {
            Arc::clone(&handler_target).invoke(args, ret)
        });
        let callback = RawCallback::with_jit(&signature, handler, crate::function::jit_enabled())
            .map_err(|reason| {
            pyo3::exceptions::PyTypeError::new_err(format!("cannot make this callback: {reason}"))
        })?;
        Ok(Callback {
            callback: std::mem::ManuallyDrop::new(callback),
            callable: callable.unbind(),
            target,
        })
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.callable)?;
        visit.call(&self.target.callable)
    }

    /// The C function pointer, valid while this object lives.
    #[getter]
    fn address(&self) -> usize {
        self.callback.code_address() as usize
    }
}

impl Drop for Callback {
    /// Frees the C function, unless the interpreter is exiting: module teardown then frees
    /// callback objects while C threads may still call them (stock's libffi closures
    /// survive that by luck, their memory is rarely given back). Left alive, a late call
    /// parks in `gil::enter` without touching anything freed.
    fn drop(&mut self) {
        if !crate::gil::exit_started() {
            // SAFETY: dropped once, here; the field is not used afterwards.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.callback) };
        }
    }
}

/// The body `Target::invoke` runs in pyo3's trampoline (its pointer arguments carry the
/// target, the C arguments and the return buffer).
///
/// # Safety
/// `target` points at a live `Target`; `args` and `ret` are the closure's.
unsafe fn run_target(
    py: Python<'_>,
    target: *mut pyo3::ffi::PyObject,
    args: *const *mut pyo3::ffi::PyObject,
    ret: pyo3::ffi::Py_ssize_t,
    _unused: *mut pyo3::ffi::PyObject,
) -> PyResult<*mut pyo3::ffi::PyObject> {
    // SAFETY: caller's contract.
    let target = unsafe { &*(target as *const Target) };
    target.run(py, args.cast(), ret as *mut c_void);
    Ok(std::ptr::null_mut())
}

/// Puts `value` at `index` of a tuple being filled (the tuple takes the reference).
fn set_item(tuple: &Bound<'_, PyTuple>, index: usize, value: PyObject) {
    // SAFETY: `tuple` is new, of the right length, and the slot is still empty.
    unsafe {
        pyo3::ffi::PyTuple_SET_ITEM(
            tuple.as_ptr(),
            index as pyo3::ffi::Py_ssize_t,
            value.into_ptr(),
        )
    };
}

/// Reports an exception of a callback as stock ctypes does: through `sys.unraisablehook`
/// with the message "Exception ignored on <doing> ctypes callback function". The C API
/// for a custom message differs by version (`PyErr_FormatUnraisable` from 3.13,
/// `_PyErr_WriteUnraisableMsg` before), so it is looked up in the running interpreter.
fn write_unraisable(py: Python<'_>, error: PyErr, callable: &Bound<'_, PyAny>, doing: &str) {
    type FormatUnraisable = unsafe extern "C" fn(*const std::ffi::c_char, ...);
    type WriteUnraisableMsg =
        unsafe extern "C" fn(*const std::ffi::c_char, *mut pyo3::ffi::PyObject);
    static FORMAT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    static WRITE_MSG: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
    }
    let lookup = |name: &std::ffi::CStr| -> usize {
        // SAFETY: dlsym on the process's global scope (glibc's RTLD_DEFAULT is NULL) with a
        // NUL-terminated name.
        unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) as usize }
    };
    let format = *FORMAT.get_or_init(|| lookup(c"PyErr_FormatUnraisable"));
    let write_msg = *WRITE_MSG.get_or_init(|| lookup(c"_PyErr_WriteUnraisableMsg"));
    error.restore(py);
    let message = |prefix: &str, suffix: &str| {
        std::ffi::CString::new(format!("{prefix}on {doing} ctypes callback function{suffix}"))
            .expect("no NUL in the message")
    };
    if format != 0 {
        // SAFETY: the symbol is CPython's `PyErr_FormatUnraisable(const char *, ...)`;
        // `%R` takes one object; an exception is set.
        unsafe {
            let function: FormatUnraisable = std::mem::transmute(format);
            function(message("Exception ignored ", " %R").as_ptr(), callable.as_ptr());
        }
    } else if write_msg != 0 {
        // SAFETY: the symbol is CPython's `_PyErr_WriteUnraisableMsg(const char *, obj)`;
        // an exception is set.
        unsafe {
            let function: WriteUnraisableMsg = std::mem::transmute(write_msg);
            function(message("", "").as_ptr(), callable.as_ptr());
        }
    } else {
        // SAFETY: an exception is set.
        unsafe { pyo3::ffi::PyErr_WriteUnraisable(callable.as_ptr()) };
    }
}
