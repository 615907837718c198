//! Module functions that CPython calls directly (METH_FASTCALL) for their common
//! one-argument form: `byref(x)`, `addressof(x)`, `sizeof(x)`, `pointer(x)`. pyo3's generated wrappers
//! cost as much as these functions' work (argument parsing, the entry trampoline's
//! thread-local GIL count, a lazily initialised type lookup), so a C function takes the
//! one-argument call of a ctypes instance or class directly and hands every other call
//! (offsets, keywords, wrong arguments) to the pyo3 function it replaces, which raises
//! what stock raises.

use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::OnceLock;

/// The direct form of a function: its result for the single argument `arg`, or None when
/// the pyo3 function must handle the call (then no error may be set).
///
/// # Safety
/// Called with the GIL held and a live `arg`.
pub type DirectBody = unsafe fn(Python<'_>, *mut ffi::PyObject) -> Option<*mut ffi::PyObject>;

/// A fast function's direct body and the pyo3 function it replaces.
struct FastFunction {
    direct: DirectBody,
    generic: Py<PyAny>,
}

/// Slots for the fast functions; each has its own C entry (`enter::<SLOT>`), so that
/// `__self__` stays the module, as for any module function (pickling names it so).
const SLOTS: usize = 4;
static FUNCTIONS: [OnceLock<FastFunction>; SLOTS] = [const { OnceLock::new() }; SLOTS];

/// The entry of fast function `SLOT` (METH_FASTCALL | METH_KEYWORDS).
unsafe extern "C" fn enter<const SLOT: usize>(
    _module: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the function with the GIL held, `nargs` live arguments and
    // null or keyword names; the slot was filled before the function was made.
    unsafe {
        let py = Python::assume_gil_acquired();
        let function = FUNCTIONS[SLOT].get().expect("filled by install");
        let nargs = ffi::PyVectorcall_NARGS(nargsf as usize);
        if nargs == 1 && kwnames.is_null() {
            if let Some(result) = (function.direct)(py, *args) {
                return result;
            }
        }
        ffi::PyObject_Vectorcall(function.generic.as_ptr(), args, nargsf as usize, kwnames)
    }
}

/// Replaces the module's function `name` (already added, by pyo3) by a C function that
/// runs `direct` first, using slot `SLOT` (one per function).
pub fn install<const SLOT: usize>(
    module: &Bound<'_, PyModule>,
    name: &'static std::ffi::CStr,
    direct: DirectBody,
) -> PyResult<()> {
    const { assert!(SLOT < SLOTS) };
    let py = module.py();
    let key = name.to_str().expect("an ASCII name");
    let generic = module.getattr(key)?;
    // The replaced function's documentation, text signature included.
    let doc = generic.getattr("__text_signature__")?.extract::<Option<String>>()?;
    let summary = generic.getattr("__doc__")?.extract::<Option<String>>()?.unwrap_or_default();
    let doc = match doc {
        Some(signature) => format!("{key}{signature}\n--\n\n{summary}"),
        None => summary,
    };
    let doc = std::ffi::CString::new(doc).expect("no NUL in a docstring");
    if FUNCTIONS[SLOT].set(FastFunction { direct, generic: generic.unbind() }).is_err() {
        return Ok(()); // installed already (a second module initialisation)
    }
    // CPython keeps pointers to the definition and its strings: they live for the process.
    let definition = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: enter::<SLOT> },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: Box::leak(doc.into_boxed_c_str()).as_ptr(),
    }));
    let module_name = module.name()?;
    // SAFETY: a leaked definition; the module and its name are live objects, which the
    // new function keeps references to.
    let function = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(definition, module.as_ptr(), module_name.as_ptr()),
        )?
    };
    module.setattr(key, function)
}

/// A new reference to the int `value` (null with an error set if it cannot be made).
pub fn size_object(value: usize) -> *mut ffi::PyObject {
    // SAFETY: a plain constructor; the caller holds the GIL.
    unsafe { ffi::PyLong_FromSize_t(value) }
}
