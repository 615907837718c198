//! The fast path of `CFuncPtr` calls: CPython enters `funcptr_vectorcall` directly
//! (vectorcall, no argument tuple), which converts each argument with an exact-type guard
//! decided once per `argtypes` (`FastPlan`), calls the prepared call path (compiled stub
//! or libffi) with the GIL released, and boxes the result. Anything a guard does not
//! recognise — subclasses, `_as_parameter_`, `byref` of the wrong type, keywords, wrong
//! counts — takes the general path (`funcptr::call_general`), which does exactly what
//! stock ctypes does, errors included. So the fast path never decides an outcome; it only
//! skips work when the outcome is known.
//!
//! Plans are made on a function's first call (never at import or at `argtypes`
//! assignment) and dropped when `argtypes` or `restype` change (`errcheck` runs after
//! either path). Functions of
//! the same signature share one compiled stub (`jit::StubCache`).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jit::{CompiledEntry, CompiledStub, EntryFn, Signature, StubCache, Type};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::Borrowed;
use rawffi::call::{CallOptions, ForeignFunction};

use crate::array::Array;
use crate::cdata::class_ctype;
use crate::ctype::{Code, Shape};
use crate::funcptr::{call_general, CFuncPtr, ResultSpec, FUNCFLAG_PYTHONAPI, FUNCFLAG_USE_ERRNO};
use crate::function::{compile_after, compile_now, jit_enabled};
use crate::known_types::Base;
use crate::param::Slot;

/// Most arguments the fast path takes (more go through the general path).
const MAX_FAST_ARGS: usize = 16;
/// Largest result the fast path's stack buffer holds (bigger ones: general path).
const MAX_FAST_RET_SLOTS: usize = 4;

/// How one argument is converted, decided from its `argtypes` entry.
pub(crate) enum ArgKind {
    /// An integer type of `size` bytes: exact `int`, reduced modulo 2**(8 size). Signed
    /// or not, it is passed extended to 64 bits as C callers extend it (clang-built
    /// callees rely on that).
    Int { size: usize, signed: bool },
    /// `c_bool`: exact `bool` or `int`, by truth value.
    Bool,
    /// `c_float`/`c_double`: exact `float` or `int`.
    Float { size: usize },
    /// `c_char_p`: exact `bytes` (pointer to its data) or None.
    CharPointer,
    /// `c_void_p`: exact `int`, `bytes` or None; arrays, pointers, function pointers,
    /// `c_char_p`/`c_wchar_p` instances, and instances of the argument type `cls` itself.
    VoidPointer { cls: Py<PyType> },
    /// `py_object`: any object that is not an instance of `py_object` itself (a pointer
    /// to the object).
    Object { cls: Py<PyType> },
    /// `POINTER(T)`: an instance of exactly `T` (by reference), `byref()` of one, an
    /// instance of exactly this pointer type, an array of exactly `T`, or None.
    PointerTo { target: Py<PyType>, pointer_type: Py<PyType> },
    /// A structure, union, function pointer or array type: an instance of exactly it
    /// (structures by value, function pointers as the code address they hold, arrays as a
    /// pointer to their first element).
    Instance { cls: Py<PyType>, by_value: bool },
}

/// A prepared fast call of one function object.
pub struct FastPlan {
    args: Vec<ArgKind>,
    result: Arc<ResultSpec>,
    function: ForeignFunction,
    release_gil: bool,
    stats: Arc<SignatureStats>,
    /// The compiled entry stub CPython may call instead of `funcptr_vectorcall` (entry.rs),
    /// when the JIT makes one for this plan's shape.
    entry: Option<EntryFn>,
    /// `jit_enabled()` when the plan was made: the plan is remade when it changes.
    made_with_jit: bool,
    /// While the plan calls through libffi waiting for the function to be called often
    /// enough to compile for (`function::compile_after`): the fast calls left until then.
    warm_up: Option<std::sync::atomic::AtomicU32>,
    /// Per argument, the class a `POINTER(T)` argument's `byref()` target must have (`T`,
    /// kept alive by `args`), else 0: what entry stubs compare inline
    /// (`jit::ReferenceLayout`). Only read through `reference_targets_address`, where
    /// these words are (the box keeps them there).
    _reference_targets: Box<[usize]>,
    pub(crate) reference_targets_address: usize,
}

/// Counters of one signature, for `jitctypes.stats()`.
#[derive(Default)]
pub struct SignatureStats {
    /// Fast calls through `funcptr_vectorcall` (entry stubs count their own).
    fast_calls: AtomicU64,
    general_calls: AtomicU64,
    functions: AtomicU64,
    /// The direct call stub of the signature, if the JIT compiled one.
    stub: OnceLock<CompiledStub>,
    /// The entry stubs made for plans of this signature (one per shape).
    entries: Mutex<Vec<CompiledEntry>>,
}

impl SignatureStats {
    fn note_entry(&self, entry: CompiledEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !entries.iter().any(|known| known.entry as usize == entry.entry as usize) {
            entries.push(entry);
        }
    }
}

/// The fast-path state of a function object.
#[derive(Default)]
pub enum FastState {
    /// Not looked at since the last change of argtypes/restype/errcheck.
    #[default]
    Unknown,
    /// No fast path for this declaration (the reason is counted in the statistics).
    Ineligible,
    Ready(Arc<FastPlan>),
}

impl Clone for FastState {
    fn clone(&self) -> Self {
        match self {
            FastState::Unknown => FastState::Unknown,
            FastState::Ineligible => FastState::Ineligible,
            FastState::Ready(plan) => FastState::Ready(Arc::clone(plan)),
        }
    }
}

fn signature_stats(signature: &Signature) -> Arc<SignatureStats> {
    let mut registry = stats_registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(registry.signatures.entry(signature.to_string()).or_default())
}

#[derive(Default)]
struct StatsRegistry {
    signatures: HashMap<String, Arc<SignatureStats>>,
    /// Why function objects got no fast path, with how many.
    ineligible: HashMap<String, u64>,
}

fn stats_registry() -> &'static Mutex<StatsRegistry> {
    static REGISTRY: OnceLock<Mutex<StatsRegistry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn count_ineligible(reason: &str) {
    let mut registry = stats_registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *registry.ineligible.entry(reason.to_string()).or_default() += 1;
}

/// The `from_param` functions whose behaviour the guards reproduce; a type whose
/// converter is anything else (a user's `from_param`) gets no fast path.
struct Converters {
    simple: PyObject,
    char_p: PyObject,
    void_p: PyObject,
    pointer: PyObject,
    cdata: PyObject,
}

fn converters(py: Python<'_>) -> PyResult<&Converters> {
    static CONVERTERS: GILOnceCell<Converters> = GILOnceCell::new();
    CONVERTERS.get_or_try_init(py, || {
        let module = py.import("jitctypes._rawffi")?;
        let get = |name: &str| module.getattr(name).map(Bound::unbind);
        Ok(Converters {
            simple: get("simple_from_param")?,
            char_p: get("char_p_from_param")?,
            void_p: get("void_p_from_param")?,
            pointer: get("pointer_from_param")?,
            cdata: get("cdata_from_param")?,
        })
    })
}

/// The function behind a bound `from_param` (a class method wrapping one of ours).
fn converter_function<'py>(converter: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    converter.getattr(intern!(converter.py(), "__func__")).ok()
}

/// The fast conversion of arguments of type `argtype` whose converter is `converter`, or
/// why there is none.
fn arg_kind(argtype: &Bound<'_, PyAny>, converter: &Bound<'_, PyAny>) -> Result<ArgKind, String> {
    let py = argtype.py();
    let known = converters(py).map_err(|error| error.to_string())?;
    let function = converter_function(converter).ok_or("a converter that is not a method")?;
    let cls = argtype.downcast::<PyType>().map_err(|_| "an argtype that is not a type")?;
    let ctype = class_ctype(cls).map_err(|_| "an abstract argtype")?;
    let ctype = ctype.get();
    if function.is(&known.simple) || function.is(&known.char_p) || function.is(&known.void_p) {
        let Some((code, swapped)) = ctype.code() else {
            return Err("a simple type without code".into());
        };
        if swapped {
            return Err("a byte-swapped argument type".into());
        }
        return Ok(match code {
            code if code.is_integer() => {
                ArgKind::Int { size: ctype.size, signed: code.is_signed() }
            }
            Code::Bool => ArgKind::Bool,
            Code::Float => ArgKind::Float { size: 4 },
            Code::Double => ArgKind::Float { size: 8 },
            Code::CharPointer if function.is(&known.char_p) => ArgKind::CharPointer,
            Code::VoidPointer if function.is(&known.void_p) => {
                ArgKind::VoidPointer { cls: cls.clone().unbind() }
            }
            Code::PyObject => ArgKind::Object { cls: cls.clone().unbind() },
            other => return Err(format!("argument type code {:?}", other.letter())),
        });
    }
    if function.is(&known.pointer) {
        let target = cls
            .getattr(intern!(py, "_type_"))
            .ok()
            .and_then(|target| target.downcast_into::<PyType>().ok())
            .ok_or("a pointer type without target")?;
        return Ok(ArgKind::PointerTo {
            target: target.unbind(),
            pointer_type: cls.clone().unbind(),
        });
    }
    if function.is(&known.cdata) {
        return match ctype.shape {
            // A function pointer's memory holds the code address it passes (stock's
            // `PyCFuncPtr_paramfunc`): passed by value too, as a pointer.
            Shape::Aggregate => Ok(ArgKind::Instance { cls: cls.clone().unbind(), by_value: true }),
            _ if crate::known_types::derives_from(cls) == Base::FunctionPointer => {
                Ok(ArgKind::Instance { cls: cls.clone().unbind(), by_value: true })
            }
            Shape::Array { .. } => {
                Ok(ArgKind::Instance { cls: cls.clone().unbind(), by_value: false })
            }
            _ => Err("a ctypes argument type passed neither by value nor as an array".into()),
        };
    }
    Err("a user-defined from_param".into())
}

impl FastPlan {
    /// The plan of a function object as declared now, or why it has none.
    pub fn build(
        py: Python<'_>,
        argtypes: Option<(&PyObject, &[PyObject])>,
        result: &Arc<ResultSpec>,
        flags: u32,
        trivial: bool,
        hot: bool,
    ) -> Result<FastPlan, String> {
        let Some((declared, converters)) = argtypes else { return Err("no argtypes".into()) };
        if converters.len() > MAX_FAST_ARGS {
            return Err("more than 16 arguments".into());
        }
        let declared = declared.bind(py);
        let mut args = Vec::with_capacity(converters.len());
        let mut types = Vec::with_capacity(converters.len());
        for (index, converter) in converters.iter().enumerate() {
            let argtype = declared.get_item(index).map_err(|_| "argtypes changed".to_string())?;
            let kind = arg_kind(&argtype, converter.bind(py))?;
            types.push(match &kind {
                ArgKind::Instance { cls, by_value: true } => {
                    class_ctype(cls.bind(py)).map_err(|e| e.to_string())?.get().jit.clone()
                }
                ArgKind::Int { size, signed } => crate::funcptr::integer_type(*size, *signed),
                ArgKind::Bool => Type::Bool,
                ArgKind::Float { size: 4 } => Type::F32,
                ArgKind::Float { .. } => Type::F64,
                _ => Type::Pointer,
            });
            args.push(kind);
        }
        let ret = result.jit_type(py).map_err(|error| error.to_string())?;
        let signature = Signature::new(ret, types).map_err(|error| error.to_string())?;
        if signature.ret_buffer_size() > MAX_FAST_RET_SLOTS * 16 {
            return Err("a result larger than 64 bytes".into());
        }
        let compile = compile_now(&signature, if hot { u32::MAX } else { 0 });
        let options =
            CallOptions { use_errno: flags & FUNCFLAG_USE_ERRNO != 0, prefer_libffi: !compile };
        let warm_up = (jit_enabled() && !compile)
            .then(|| std::sync::atomic::AtomicU32::new(compile_after().saturating_sub(1)));
        let stats = signature_stats(&signature);
        // The address is given per call (`call_at`): the object's memory may change.
        let function = ForeignFunction::new(std::ptr::null(), signature, options)
            .map_err(|error| error.to_string())?;
        stats.functions.fetch_add(1, Ordering::Relaxed);
        if let Some(stub) = function.caller().stub() {
            let _ = stats.stub.set(*stub);
        }
        let reference_targets: Box<[usize]> = args
            .iter()
            .map(|kind| match kind {
                ArgKind::PointerTo { target, .. } => target.as_ptr() as usize,
                _ => 0,
            })
            .collect();
        let mut plan = FastPlan {
            reference_targets_address: reference_targets.as_ptr() as usize,
            _reference_targets: reference_targets,
            args,
            result: Arc::clone(result),
            function,
            release_gil: flags & FUNCFLAG_PYTHONAPI == 0 && !trivial,
            stats,
            entry: None,
            made_with_jit: jit_enabled(),
            warm_up,
        };
        plan.entry = plan.compile_entry(flags);
        Ok(plan)
    }

    /// The entry stub of this plan's shape, if the JIT is on and makes one (entry.rs).
    fn compile_entry(&self, flags: u32) -> Option<EntryFn> {
        // On the libffi path the Rust entry serves the plan.
        self.function.caller().stub()?;
        let runtime = crate::entry::runtime()?;
        let shape = crate::entry::shape_of(self, flags)?;
        match StubCache::global().entry(&shape, runtime) {
            Ok(compiled) => {
                self.stats.note_entry(compiled);
                Some(compiled.entry)
            }
            Err(reason) => {
                count_ineligible(&format!("no entry stub: {reason}"));
                None
            }
        }
    }

    pub(crate) fn args(&self) -> &[ArgKind] {
        &self.args
    }

    pub(crate) fn result(&self) -> &ResultSpec {
        &self.result
    }

    pub(crate) fn function(&self) -> &ForeignFunction {
        &self.function
    }

    pub(crate) fn releases_gil(&self) -> bool {
        self.release_gil
    }

    pub(crate) fn entry(&self) -> Option<EntryFn> {
        self.entry
    }

    /// Visits the classes the argument guards hold (for the garbage collector).
    pub fn traverse_arguments(
        &self,
        visit: &pyo3::PyVisit<'_>,
    ) -> Result<(), pyo3::PyTraverseError> {
        for kind in &self.args {
            match kind {
                ArgKind::PointerTo { target, pointer_type } => {
                    visit.call(target)?;
                    visit.call(pointer_type)?;
                }
                ArgKind::Instance { cls, .. }
                | ArgKind::Object { cls }
                | ArgKind::VoidPointer { cls } => visit.call(cls)?,
                ArgKind::Int { .. }
                | ArgKind::Bool
                | ArgKind::Float { .. }
                | ArgKind::CharPointer => {}
            }
        }
        Ok(())
    }

    /// True if the plan still matches the global JIT switch (`set_jit_enabled`).
    pub fn is_current(&self) -> bool {
        self.made_with_jit == jit_enabled()
    }

    /// Counts one fast call of a plan that waits to be compiled for; true once, when the
    /// function has been called often enough (its plan is then remade, compiled).
    fn warmed_up(&self) -> bool {
        let Some(left) = &self.warm_up else { return false };
        // Plain load and store: calls hold the GIL.
        match left.load(Ordering::Relaxed) {
            u32::MAX => false,
            0 => {
                left.store(u32::MAX, Ordering::Relaxed);
                true
            }
            calls => {
                left.store(calls - 1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Where one converted argument's value is: in a slot, or in an object's memory.
#[derive(Clone, Copy)]
pub(crate) enum Value {
    Inline,
    At(*mut c_void),
}

/// Converts `arg` by `kind` into `slot`, or says that the general path must take it.
///
/// # Safety
/// `arg` is a live object (borrowed from the caller's argument array).
pub(crate) unsafe fn convert_argument(
    py: Python<'_>,
    kind: &ArgKind,
    arg: *mut ffi::PyObject,
    slot: &mut Slot,
) -> Option<Value> {
    // SAFETY: caller's contract; only reads of type and value.
    unsafe {
        let arg_type = ffi::Py_TYPE(arg);
        let is_int = arg_type == std::ptr::addr_of_mut!(ffi::PyLong_Type);
        let is_none = arg == ffi::Py_None();
        match kind {
            ArgKind::Int { size, .. } if is_int => {
                let bits = crate::scalar::int_bits(arg);
                slot.0[..*size].copy_from_slice(&bits.to_ne_bytes()[..*size]);
            }
            ArgKind::Bool if arg_type == std::ptr::addr_of_mut!(ffi::PyBool_Type) || is_int => {
                slot.0[0] = (ffi::PyObject_IsTrue(arg) == 1) as u8;
            }
            ArgKind::Float { size } => {
                let value = if arg_type == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
                    ffi::PyFloat_AsDouble(arg)
                } else if is_int {
                    let value = ffi::PyLong_AsDouble(arg);
                    if value == -1.0 && !ffi::PyErr_Occurred().is_null() {
                        ffi::PyErr_Clear(); // the general path raises it properly
                        return None;
                    }
                    value
                } else {
                    return None;
                };
                if *size == 4 {
                    slot.0[..4].copy_from_slice(&(value as f32).to_ne_bytes());
                } else {
                    slot.0[..8].copy_from_slice(&value.to_ne_bytes());
                }
            }
            ArgKind::CharPointer | ArgKind::VoidPointer { .. } if is_none => write_pointer(slot, 0),
            ArgKind::CharPointer | ArgKind::VoidPointer { .. }
                if arg_type == std::ptr::addr_of_mut!(ffi::PyBytes_Type) =>
            {
                write_pointer(slot, ffi::PyBytes_AsString(arg) as usize)
            }
            ArgKind::VoidPointer { .. } if is_int => {
                write_pointer(slot, crate::scalar::int_bits(arg) as usize)
            }
            ArgKind::Object { cls } => {
                if ffi::PyObject_TypeCheck(arg, cls.as_ptr().cast()) != 0 {
                    return None;
                }
                write_pointer(slot, arg as usize)
            }
            ArgKind::VoidPointer { cls } => write_pointer(slot, pointer_value(py, arg, cls)?),
            ArgKind::PointerTo { target, pointer_type } => {
                if is_none {
                    write_pointer(slot, 0);
                } else if arg_type == target.as_ptr().cast() {
                    write_pointer(slot, cdata_address(arg));
                } else if arg_type == pointer_type.as_ptr().cast() {
                    write_pointer(slot, *(cdata_address(arg) as *const usize));
                } else {
                    let object = Bound::from_borrowed_ptr(py, arg);
                    if let Some(carg) = crate::known_types::as_carg(&object) {
                        let carg = carg.get();
                        if !carg.points_into_exactly(target.bind(py)) {
                            return None;
                        }
                        write_pointer(slot, carg.address());
                    } else if object.is_instance_of::<Array>() {
                        let array_type = object.get_type();
                        let element = crate::cdata::class_attr(&array_type, intern!(py, "_type_"))?;
                        if !element.is(target) {
                            return None;
                        }
                        write_pointer(slot, cdata_address(arg));
                    } else {
                        return None;
                    }
                }
            }
            ArgKind::Instance { cls, by_value } => {
                if arg_type != cls.as_ptr().cast() {
                    return None;
                }
                let address = cdata_address(arg);
                if *by_value {
                    return Some(Value::At(address as *mut c_void));
                }
                write_pointer(slot, address);
            }
            _ => return None,
        }
        Some(Value::Inline)
    }
}

/// The address a ctypes instance passes as a `void *` argument of type `cls` (as
/// `c_void_p.from_param` and `ConvParam` make it): an array's memory, the pointer a
/// pointer-like object holds. `c_void_p` instances only if they are `cls` instances.
///
/// # Safety
/// `obj` is a live object.
unsafe fn pointer_value(
    py: Python<'_>,
    obj: *mut ffi::PyObject,
    cls: &Py<PyType>,
) -> Option<usize> {
    use crate::known_types::{derives_from, Base};
    // SAFETY: caller's contract.
    let object = unsafe { Bound::from_borrowed_ptr(py, obj) };
    let data = crate::known_types::as_cdata(&object)?;
    let address = data.try_borrow().ok()?.address();
    let holds_pointer = match derives_from(&object.get_type()) {
        Base::Array => return Some(address),
        Base::Pointer | Base::FunctionPointer => true,
        Base::Simple => match class_ctype(&object.get_type()).ok()?.get().code() {
            Some((Code::CharPointer | Code::WideCharPointer, false)) => true,
            // SAFETY: a live object and a live type.
            Some((Code::VoidPointer, false)) => unsafe {
                ffi::PyObject_TypeCheck(obj, cls.as_ptr().cast()) != 0
            },
            _ => false,
        },
        Base::Data => false,
    };
    // SAFETY: these objects' memory holds one pointer.
    holds_pointer.then(|| unsafe { *(address as *const usize) })
}

/// Counts one call. Not an atomic increment: calls hold the GIL, so a plain load and store
/// cannot race, and they cost less on every call.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn write_pointer(slot: &mut Slot, address: usize) {
    slot.0[..8].copy_from_slice(&address.to_ne_bytes());
}

/// The memory address of a ctypes instance, read without pyo3's borrow flag (an atomic
/// update per argument otherwise).
///
/// # Safety
/// `obj` is a live ctypes instance: every caller has checked its type against a ctypes
/// class (exactly, or as an `Array`).
unsafe fn cdata_address(obj: *mut ffi::PyObject) -> usize {
    // SAFETY: caller's contract.
    unsafe { crate::cdata::cdata_unchecked(obj).address() }
}

/// Runs `plan` on the arguments, or returns None for the general path.
///
/// # Safety
/// `args` holds `plan.args.len()` live objects; `address` is the function's address.
unsafe fn call_fast(
    py: Python<'_>,
    plan: &FastPlan,
    address: usize,
    args: *const *mut ffi::PyObject,
) -> Option<PyResult<PyObject>> {
    let count = plan.args.len();
    // Only the slots in use are initialised (each is zeroed as it is taken): zeroing all
    // sixteen on every call would cost more than the conversions.
    let mut slots = [const { std::mem::MaybeUninit::<Slot>::uninit() }; MAX_FAST_ARGS];
    let mut pointers = [std::ptr::null_mut::<c_void>(); MAX_FAST_ARGS];
    for index in 0..count {
        // SAFETY: caller's contract.
        let arg = unsafe { *args.add(index) };
        let slot = slots[index].write(Slot::default());
        // SAFETY: as above.
        pointers[index] = match unsafe { convert_argument(py, &plan.args[index], arg, slot) }? {
            Value::Inline => slot.0.as_mut_ptr().cast(),
            Value::At(address) => address,
        };
    }
    let mut ret = [Slot::default(); MAX_FAST_RET_SLOTS];
    let function = &plan.function;
    let target = address as *const c_void;
    if plan.release_gil {
        // SAFETY: no Python object is touched until the GIL is back. The argument objects
        // stay alive in the caller's frame, so the memory the pointers refer to does too.
        // (A callback run by this C call on this thread takes the GIL with
        // `PyGILState_Ensure`: see callback.rs.)
        unsafe {
            let state = ffi::PyEval_SaveThread();
            function.call_at(target, pointers.as_ptr(), ret.as_mut_ptr().cast());
            crate::gil::restore_thread(state);
        }
    } else {
        // SAFETY: as above.
        unsafe { function.call_at(target, pointers.as_ptr(), ret.as_mut_ptr().cast()) };
        if let Some(error) = PyErr::take(py) {
            return Some(Err(error));
        }
    }
    bump(&plan.stats.fast_calls);
    Some(plan.result.boxed(py, &ret))
}

/// The vectorcall entry of function objects (see the module comment).
///
/// # Safety
/// Called by CPython with the GIL held, per the vectorcall protocol.
pub unsafe extern "C" fn funcptr_vectorcall(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this with the GIL held, per the vectorcall protocol.
    if kwnames.is_null() {
        if let Some(result) = unsafe { call_without_trampoline(callable, args, nargsf) } {
            return result;
        }
    }
    // pyo3's own entry trampoline (what its generated methods use): it tells pyo3 that the
    // GIL is held — without it, references dropped here would be queued, not released —
    // and turns errors and panics into a raised exception.
    // SAFETY: CPython calls this with the GIL held, per the vectorcall protocol.
    unsafe {
        pyo3::impl_::trampoline::fastcall_with_keywords(
            callable,
            args,
            nargsf as ffi::Py_ssize_t,
            kwnames,
            |py, callable, args, nargsf, kwnames| {
                vectorcall(py, callable, args, nargsf as usize, kwnames).map(PyObject::into_ptr)
            },
        )
    }
}

/// The fast call of a plan that is ready (not warming up) of a function without
/// `errcheck`, without pyo3's trampoline (a thread-local GIL count updated twice, a sixth
/// of a libffi-path call). Such a call drops no `Py` (which pyo3, not told that the GIL is
/// held, would queue instead of releasing), only `Bound`s. None: nothing was called, the
/// trampoline's path must take the call.
///
/// # Safety
/// As `funcptr_vectorcall`, with no keyword arguments.
unsafe fn call_without_trampoline(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
) -> Option<*mut ffi::PyObject> {
    // SAFETY: the caller's contract; only instances of CFuncPtr types get this entry.
    let py = unsafe { Python::assume_gil_acquired() };
    let callable = unsafe { Borrowed::from_ptr(py, callable) };
    // SAFETY: as above.
    let slf = unsafe { callable.downcast_unchecked::<CFuncPtr>() };
    let (plan, address) = CFuncPtr::direct_call_inputs(slf)?;
    // SAFETY: the vectorcall protocol.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    if plan.args.len() != nargs || address == 0 || plan.warm_up.is_some() {
        crate::gil::release(plan);
        return None;
    }
    // From here a panic must not make the trampoline's path call the function again.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `args` holds `nargs` live objects.
        let result = unsafe { call_fast(py, &plan, address, args) }?;
        slf.get().install_entry(&plan);
        Some(result)
    }));
    // The plan may have lost its function object during the call (argtypes changed).
    crate::gil::release(plan);
    let result = match outcome {
        Ok(result) => result?,
        Err(_) => Err(pyo3::exceptions::PySystemError::new_err("jitctypes bug: panic in a call")),
    };
    Some(result.map_or_else(
        |error| {
            error.restore(py);
            std::ptr::null_mut()
        },
        PyObject::into_ptr,
    ))
}

unsafe fn vectorcall(
    py: Python<'_>,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<PyObject> {
    // SAFETY: caller's contract: only instances of CFuncPtr types get this entry.
    let slf =
        unsafe { Bound::from_borrowed_ptr(py, callable).downcast_into_unchecked::<CFuncPtr>() };
    let slf = &slf;
    // SAFETY: the vectorcall protocol.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    if kwnames.is_null() {
        let inputs = CFuncPtr::fast_call_inputs(slf).or_else(|| {
            CFuncPtr::fast_plan(slf)
                .map(|plan| (plan, CFuncPtr::address_of(slf), CFuncPtr::errcheck_of(slf)))
        });
        if let Some((plan, address, errcheck)) = inputs {
            if plan.args.len() == nargs && address != 0 {
                // SAFETY: `args` holds `nargs` live objects.
                if let Some(result) = unsafe { call_fast(py, &plan, address, args) } {
                    return match errcheck {
                        None => {
                            if plan.warmed_up() {
                                CFuncPtr::mark_hot(slf); // the next call compiles
                            } else {
                                // Next calls may enter compiled code directly.
                                slf.get().install_entry(&plan);
                            }
                            result
                        }
                        Some(errcheck) => {
                            // SAFETY: as above.
                            let callargs = unsafe { tuple_of(py, args, nargs) }?;
                            run_errcheck(py, slf, &errcheck, result?, &callargs)
                        }
                    };
                }
            }
            bump(&plan.stats.general_calls);
        }
    }
    // SAFETY: as above.
    let positional = unsafe { tuple_of(py, args, nargs) }?;
    let keywords = if kwnames.is_null() {
        None
    } else {
        // SAFETY: `kwnames` is a tuple of names whose values follow the positionals.
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
        let names = names.downcast::<PyTuple>()?;
        let dict = PyDict::new(py);
        for (offset, name) in names.iter().enumerate() {
            // SAFETY: as above.
            let value = unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs + offset)) };
            dict.set_item(name, value)?;
        }
        Some(dict)
    };
    call_general(slf, &positional, keywords.as_ref())
}

/// `errcheck(result, func, args)` as stock runs it; returning `args` means the result.
fn run_errcheck(
    py: Python<'_>,
    slf: &Bound<'_, CFuncPtr>,
    errcheck: &PyObject,
    result: PyObject,
    callargs: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let checked = errcheck.call1(py, (result.clone_ref(py), slf, callargs))?;
    Ok(if checked.is(callargs) { result } else { checked })
}

/// A tuple of the `count` objects at `args`.
///
/// # Safety
/// `args` holds `count` live objects.
unsafe fn tuple_of<'py>(
    py: Python<'py>,
    args: *const *mut ffi::PyObject,
    count: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    // SAFETY: caller's contract.
    let items = (0..count).map(|index| unsafe { Bound::from_borrowed_ptr(py, *args.add(index)) });
    PyTuple::new(py, items)
}

/// `jitctypes.stats()`: per signature, function objects with a fast plan and calls taken
/// by the fast and the general path; why other function objects have no fast path; and
/// the stub cache's totals.
#[pyfunction]
pub fn fast_path_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let registry = stats_registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let signatures = PyDict::new(py);
    for (signature, stats) in &registry.signatures {
        let entries = stats.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry_calls: u64 =
            entries.iter().map(|entry| entry.calls.load(Ordering::Relaxed)).sum();
        let rust_calls = stats.fast_calls.load(Ordering::Relaxed);
        let (mut code_bytes, mut compile_time) = (0, std::time::Duration::ZERO);
        for (size, time) in stats
            .stub
            .get()
            .map(|stub| (stub.code_size, stub.compile_time))
            .into_iter()
            .chain(entries.iter().map(|entry| (entry.code_size, entry.compile_time)))
        {
            code_bytes += size;
            compile_time += time;
        }
        let entry = PyDict::new(py);
        entry.set_item("functions", stats.functions.load(Ordering::Relaxed))?;
        entry.set_item("fast_calls", rust_calls + entry_calls)?;
        entry.set_item("entry_stub_calls", entry_calls)?;
        entry.set_item("general_calls", stats.general_calls.load(Ordering::Relaxed))?;
        entry.set_item("entry_stubs", entries.len())?;
        entry.set_item("code_bytes", code_bytes)?;
        entry.set_item("compile_time_us", compile_time.as_secs_f64() * 1e6)?;
        signatures.set_item(signature, entry)?;
    }
    let ineligible = PyDict::new(py);
    for (reason, count) in &registry.ineligible {
        ineligible.set_item(reason, count)?;
    }
    let result = PyDict::new(py);
    result.set_item("signatures", signatures)?;
    result.set_item("no_fast_path", ineligible)?;
    Ok(result)
}

/// Takes the vectorcall entry away from `cls` and its subclasses again (a `__call__`
/// assigned to the class later must be what calls run).
#[pyfunction]
pub fn disable_vectorcall(cls: &Bound<'_, PyType>) -> PyResult<()> {
    // SAFETY: a heap type; CPython reads the flag at each call.
    unsafe {
        (*cls.as_type_ptr()).tp_flags &= !ffi::Py_TPFLAGS_HAVE_VECTORCALL;
    }
    for subclass in cls.call_method0(intern!(cls.py(), "__subclasses__"))?.try_iter()? {
        disable_vectorcall(subclass?.downcast()?)?;
    }
    Ok(())
}

/// Records why a function object has no fast path.
pub fn note_ineligible(reason: &str) {
    count_ineligible(reason);
}
