//! The CPython side of compiled entry stubs (`jit::entry`): the description of CPython's
//! object model the stubs are compiled against, the helper they call for argument kinds
//! they do not convert inline, and the entry shape of a fast plan.
//!
//! A function object whose plan has an entry stub gets it as its vectorcall entry
//! (`CFuncPtr::install_entry`): CPython then calls compiled code directly, which converts
//! the arguments with the plan's exact-type guards, releases the GIL, calls the C function
//! and boxes the result, with no Rust or pyo3 code on the way. Every guard failure calls
//! `fastcall::funcptr_vectorcall`, the entry the object would have without a stub, with
//! the same arguments. The stub is dropped from the object (`CFuncPtr::retire_entry`)
//! before anything it reads changes: the plan (argtypes, restype, `set_trivial`),
//! `errcheck`, or the JIT switch (which the stub reads itself, `JIT_ENABLED`).

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use jit::{ArgConversion, EntryRuntime, EntryShape, ReferenceLayout};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::fastcall::{convert_argument, funcptr_vectorcall, ArgKind, FastPlan, Value};
use crate::param::{CArgObject, Slot};

/// Where CPython and a function object keep what entry stubs read.
#[derive(Clone, Copy)]
pub struct CallableOffsets {
    /// The object's memory pointer (its first word is the C function's address).
    pub memory: isize,
    /// The `FastPlan` the installed entry stub serves.
    pub plan: isize,
}

static OFFSETS: OnceLock<CallableOffsets> = OnceLock::new();

/// Records the offsets (measured on an instance by `enable_vectorcall`).
pub fn set_callable_offsets(offsets: CallableOffsets) {
    let _ = OFFSETS.set(offsets);
}

/// CPython's object model, as this process's stubs use it; None before any function
/// object class exists (no stub is needed then).
pub fn runtime() -> Option<&'static EntryRuntime> {
    static RUNTIME: OnceLock<EntryRuntime> = OnceLock::new();
    let offsets = OFFSETS.get()?;
    Some(RUNTIME.get_or_init(|| make_runtime(offsets)))
}

fn make_runtime(offsets: &CallableOffsets) -> EntryRuntime {
    use std::mem::offset_of;
    // SAFETY: only addresses of CPython's static type objects and `None` are taken.
    let (int_type, bool_type, float_type, bytes_type, none) = unsafe {
        (
            std::ptr::addr_of_mut!(ffi::PyLong_Type) as usize,
            std::ptr::addr_of_mut!(ffi::PyBool_Type) as usize,
            std::ptr::addr_of_mut!(ffi::PyFloat_Type) as usize,
            std::ptr::addr_of_mut!(ffi::PyBytes_Type) as usize,
            ffi::Py_None() as usize,
        )
    };
    EntryRuntime {
        type_offset: offset_of!(ffi::PyObject, ob_type) as i32,
        float_value_offset: offset_of!(ffi::PyFloatObject, ob_fval) as i32,
        bytes_data_offset: offset_of!(ffi::PyBytesObject, ob_sval) as i32,
        int_type,
        bool_type,
        float_type,
        bytes_type,
        none,
        callable_memory_offset: offsets.memory as i32,
        callable_data_offset: offsets.plan as i32,
        enabled_flag: crate::function::jit_enabled_flag() as usize,
        int_layout: crate::scalar::int_layout(),
        long_as_u64_mask: ffi::PyLong_AsUnsignedLongLongMask as *const () as usize,
        long_as_f64: ffi::PyLong_AsDouble as *const () as usize,
        err_occurred: ffi::PyErr_Occurred as *const () as usize,
        err_clear: ffi::PyErr_Clear as *const () as usize,
        is_true: ffi::PyObject_IsTrue as *const () as usize,
        long_from_i64: ffi::PyLong_FromLongLong as *const () as usize,
        long_from_u64: ffi::PyLong_FromUnsignedLongLong as *const () as usize,
        float_from_f64: ffi::PyFloat_FromDouble as *const () as usize,
        bool_from_long: ffi::PyBool_FromLong as *const () as usize,
        bytes_from_c_string: ffi::PyBytes_FromString as *const () as usize,
        incref: ffi::Py_IncRef as *const () as usize,
        save_thread: ffi::PyEval_SaveThread as *const () as usize,
        restore_thread: ffi::PyEval_RestoreThread as *const () as usize,
        errno_swap_in: rawffi::call::errno_swap_in as *const () as usize,
        errno_swap_out: rawffi::call::errno_swap_out as *const () as usize,
        convert_helper: convert_helper as *const () as usize,
        reference: reference_layout(),
        fallback: funcptr_vectorcall as *const () as usize,
    }
}

/// Where `byref()` results keep what entry stubs read, measured on one (pyo3 decides the
/// layout of its objects); None if one cannot be made.
fn reference_layout() -> Option<ReferenceLayout> {
    Python::with_gil(|py| {
        let probe = Bound::new(py, CArgObject::pointer_into(py.None(), 0)).ok()?;
        let fields = probe.get().field_addresses();
        let offset = |field: usize| i32::try_from(field - probe.as_ptr() as usize).ok();
        Some(ReferenceLayout {
            ty: crate::known_types::carg_type() as usize,
            tag_offset: offset(fields.tag)?,
            tag: CArgObject::REFERENCE_TAG as u32,
            object_offset: offset(fields.object)?,
            address_offset: offset(fields.value)?,
            data_targets_offset: i32::try_from(std::mem::offset_of!(
                FastPlan,
                reference_targets_address
            ))
            .ok()?,
        })
    })
}

/// The entry shape of `plan`, or None if its result is not one a stub boxes.
pub fn shape_of(plan: &FastPlan, flags: u32) -> Option<EntryShape> {
    use crate::funcptr::{FUNCFLAG_PYTHONAPI, FUNCFLAG_USE_ERRNO};
    let args = plan
        .args()
        .iter()
        .map(|kind| match kind {
            ArgKind::Int { size, .. } => ArgConversion::Int { bytes: *size as u8 },
            ArgKind::Bool => ArgConversion::Bool,
            ArgKind::Float { size } => ArgConversion::Float { bytes: *size as u8 },
            ArgKind::CharPointer => ArgConversion::CharPointer,
            ArgKind::VoidPointer { .. } => ArgConversion::VoidPointer,
            ArgKind::PointerTo { .. } => ArgConversion::Reference,
            ArgKind::Object { .. } | ArgKind::Instance { .. } => ArgConversion::Helper,
        })
        .collect();
    Some(EntryShape {
        signature: plan.function().caller().signature().clone(),
        args,
        result: plan.result().entry_boxing()?,
        release_gil: plan.releases_gil(),
        check_error: flags & FUNCFLAG_PYTHONAPI != 0,
        use_errno: flags & FUNCFLAG_USE_ERRNO != 0,
    })
}

/// The helper entry stubs call for `ArgConversion::Helper` (and `void *` arguments that
/// are not None, int or bytes): the fast path's own conversion of argument `index` of
/// `plan`. Returns where the C value is, or null to make the stub fall back.
///
/// # Safety
/// Called by entry stubs only, with the GIL held: `plan` is the live plan of the called
/// object (its state holds it), `arg` a live object, `slot` 16 writable bytes aligned to 16.
unsafe extern "C" fn convert_helper(
    plan: *const FastPlan,
    index: usize,
    arg: *mut ffi::PyObject,
    slot: *mut Slot,
) -> *mut c_void {
    if plan.is_null() {
        return std::ptr::null_mut();
    }
    // Nothing may unwind into compiled code: a panic means "take the general path".
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the function's contract: CPython called the stub with the GIL held.
        let py = unsafe { Python::assume_gil_acquired() };
        // SAFETY: as above.
        let (plan, slot) = unsafe { (&*plan, &mut *slot) };
        let kind = plan.args().get(index)?;
        // SAFETY: as above.
        Some(match unsafe { convert_argument(py, kind, arg, slot) }? {
            Value::Inline => (slot as *mut Slot).cast(),
            Value::At(address) => address,
        })
    }))
    .ok()
    .flatten()
    .unwrap_or(std::ptr::null_mut())
}
