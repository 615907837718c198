//! `CFuncPtr`: ctypes' function pointer objects (what `CDLL` attributes and `CFUNCTYPE`
//! prototypes make), and how they are called.
//!
//! A call follows stock ctypes' `PyCFuncPtr_call`: build the argument tuple (only with
//! `paramflags`, in Python: `jitctypes._ctypes.function`), check the count, run each
//! `argtypes` converter (`from_param`), turn what it returns into a C value
//! (`param::Param`), call through `rawffi` (compiled stub or libffi) with the GIL released
//! (kept for `PyDLL`), box the result by `restype`, then `_check_retval_`, `errcheck` and
//! the out-parameters. This is the general path; the compiled Python-aware fast path
//! (issue 5) is to sit in front of `__call__`.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use jit::{ResultBoxing, Signature, Type};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{PyClassInitializer, PyTypeInfo};
use rawffi::call::{CallOptions, ForeignFunction};

use crate::cdata::{class_ctype, class_getattr_opt, keep_ref, CData};
use crate::ctype::{CType, Code, Shape};
use crate::errors::{call_error, signature_error};
pub use crate::fastcall::disable_vectorcall;
use crate::fastcall::{funcptr_vectorcall, note_ineligible, FastPlan, FastState};
use crate::function::{compile_now, result_value, signature_type, CallFrame};
use crate::param::{Param, Slot};

create_exception!(ctypes, ArgumentError, PyException);

/// Most arguments a call may have (stock's limit, also for callbacks).
pub const CTYPES_MAX_ARGCOUNT: usize = 1024;

pub const FUNCFLAG_CDECL: u32 = 0x1;
pub const FUNCFLAG_HRESULT: u32 = 0x2;
pub const FUNCFLAG_PYTHONAPI: u32 = 0x4;
pub const FUNCFLAG_USE_ERRNO: u32 = 0x8;
pub const FUNCFLAG_USE_LASTERROR: u32 = 0x10;

/// How a call's result becomes a Python object, decided once per `restype`.
enum ResultKind {
    /// No `restype` anywhere: a C `int`.
    Int,
    /// `restype = None`.
    Void,
    /// A basic integer type in native byte order: an int, boxed directly.
    Integer { size: usize, signed: bool },
    /// `c_double` or `c_float`: a float, boxed directly.
    Float { size: usize },
    /// Another basic simple type (`c_char_p`, `c_bool`...): the plain Python value.
    Value(Py<CType>),
    /// Any other ctypes type (structures, pointers, subclasses of simple types): a new
    /// instance holding a copy of the result.
    Instance { cls: Py<PyType>, ctype: Py<CType> },
    /// A callable that is not a ctypes type: called with the C `int` result.
    Callable(PyObject),
}

/// A `restype` as the call uses it: the kind of result and its `_check_retval_`.
pub struct ResultSpec {
    kind: ResultKind,
    checker: Option<PyObject>,
}

impl ResultSpec {
    /// Visits the objects this spec holds (for the garbage collector of its one owner).
    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        match &self.kind {
            ResultKind::Value(ctype) => visit.call(ctype)?,
            ResultKind::Instance { cls, ctype } => {
                visit.call(cls)?;
                visit.call(ctype)?;
            }
            ResultKind::Callable(callable) => visit.call(callable)?,
            ResultKind::Int
            | ResultKind::Void
            | ResultKind::Integer { .. }
            | ResultKind::Float { .. } => {}
        }
        visit.call(&self.checker)
    }

    fn int() -> ResultSpec {
        ResultSpec { kind: ResultKind::Int, checker: None }
    }

    /// The result of `restype` (None: void), or `TypeError` as stock's setter raises.
    fn of(restype: &Bound<'_, PyAny>) -> PyResult<ResultSpec> {
        let py = restype.py();
        if restype.is_none() {
            return Ok(ResultSpec { kind: ResultKind::Void, checker: None });
        }
        if let Ok(cls) = restype.downcast::<PyType>() {
            // Only ctypes classes: another class with a `__ctype__` is a plain callable.
            let ctype = class_ctype(cls).ok().filter(|_| crate::known_types::is_cdata_class(cls));
            if let Some(ctype) = ctype {
                let basic = match class_getattr_opt(cls, intern!(py, "_jitctypes_basic_"))? {
                    Some(flag) => flag.is_truthy()?,
                    None => false,
                };
                let kind = if basic && matches!(ctype.get().shape, Shape::Scalar { .. }) {
                    match ctype.get().code() {
                        Some((code, false)) if code.is_integer() => {
                            ResultKind::Integer { size: code.size(), signed: code.is_signed() }
                        }
                        Some((Code::Double, false)) => ResultKind::Float { size: 8 },
                        Some((Code::Float, false)) => ResultKind::Float { size: 4 },
                        _ => ResultKind::Value(ctype.unbind()),
                    }
                } else {
                    ResultKind::Instance { cls: cls.clone().unbind(), ctype: ctype.unbind() }
                };
                let checker =
                    class_getattr_opt(cls, intern!(py, "_check_retval_"))?.map(Bound::unbind);
                return Ok(ResultSpec { kind, checker });
            }
        }
        if restype.is_callable() {
            return Ok(ResultSpec {
                kind: ResultKind::Callable(restype.clone().unbind()),
                checker: None,
            });
        }
        Err(PyTypeError::new_err("restype must be a type, a callable, or None"))
    }

    /// How a compiled entry stub boxes this result (`entry.rs`), if it can: plain
    /// scalars, `c_bool`, `c_char_p`, `c_void_p` and `None`, with no `_check_retval_`.
    pub fn entry_boxing(&self) -> Option<ResultBoxing> {
        if self.checker.is_some() {
            return None;
        }
        match &self.kind {
            ResultKind::Int => Some(ResultBoxing::Signed),
            ResultKind::Void => Some(ResultBoxing::None),
            ResultKind::Integer { signed: true, .. } => Some(ResultBoxing::Signed),
            ResultKind::Integer { signed: false, .. } => Some(ResultBoxing::Unsigned),
            ResultKind::Float { .. } => Some(ResultBoxing::Float),
            ResultKind::Value(ctype) => match ctype.get().code() {
                Some((Code::Bool, false)) => Some(ResultBoxing::Bool),
                Some((Code::CharPointer, false)) => Some(ResultBoxing::CharPointer),
                Some((Code::VoidPointer, false)) => Some(ResultBoxing::VoidPointer),
                _ => None,
            },
            ResultKind::Instance { .. } | ResultKind::Callable(_) => None,
        }
    }

    pub fn jit_type(&self, py: Python<'_>) -> PyResult<Type> {
        match &self.kind {
            ResultKind::Int | ResultKind::Callable(_) => Ok(Code::Int.jit_type()),
            ResultKind::Integer { size, signed } => Ok(integer_type(*size, *signed)),
            ResultKind::Float { size: 4 } => Ok(Type::F32),
            ResultKind::Float { .. } => Ok(Type::F64),
            ResultKind::Void => Ok(Type::Void),
            ResultKind::Value(ctype) | ResultKind::Instance { ctype, .. } => {
                signature_type(ctype.bind(py).get(), true)
            }
        }
    }

    /// The Python result of a call whose return buffer is `ret`.
    pub fn boxed(&self, py: Python<'_>, ret: &[Slot]) -> PyResult<PyObject> {
        let c_int = || i32::from_ne_bytes(ret[0].0[..4].try_into().expect("4 bytes"));
        let value = match &self.kind {
            ResultKind::Int => c_int().into_pyobject(py)?.into_any().unbind(),
            ResultKind::Void => py.None(),
            ResultKind::Integer { size, signed } => {
                let bits = u64::from_ne_bytes(ret[0].0[..8].try_into().expect("8 bytes"));
                let shift = 64 - 8 * *size as u32;
                if *signed {
                    (((bits << shift) as i64) >> shift).into_pyobject(py)?.into_any().unbind()
                } else {
                    ((bits << shift) >> shift).into_pyobject(py)?.into_any().unbind()
                }
            }
            ResultKind::Float { size: 4 } => {
                let value = f32::from_ne_bytes(ret[0].0[..4].try_into().expect("4 bytes"));
                (value as f64).into_pyobject(py)?.into_any().unbind()
            }
            ResultKind::Float { .. } => {
                f64::from_ne_bytes(ret[0].0[..8].try_into().expect("8 bytes"))
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
            ResultKind::Value(ctype) => result_value(py, ctype.get(), ret)?,
            ResultKind::Instance { cls, ctype } => {
                let cls = cls.bind(py);
                let instance = crate::cdata::new_instance(cls, None)?;
                let address = crate::known_types::as_cdata(&instance)
                    .ok_or_else(|| PyTypeError::new_err("restype made no ctypes instance"))?
                    .borrow()
                    .address();
                let size = ctype.get().size;
                // SAFETY: the return buffer holds a value of the result type (`size` bytes)
                // and the new instance owns `size` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        ret.as_ptr().cast::<u8>(),
                        address as *mut u8,
                        size,
                    )
                };
                instance.unbind()
            }
            ResultKind::Callable(callable) => callable.call1(py, (c_int(),))?,
        };
        match &self.checker {
            Some(checker) => checker.call1(py, (value,)),
            None => Ok(value),
        }
    }
}

/// What a fast call needs of a function object: its plan, address and errcheck.
pub type FastCallInputs = (Arc<FastPlan>, usize, Option<PyObject>);

/// The `jit::Type` of an integer of `size` bytes.
pub fn integer_type(size: usize, signed: bool) -> Type {
    match (size, signed) {
        (1, true) => Type::I8,
        (1, false) => Type::U8,
        (2, true) => Type::I16,
        (2, false) => Type::U16,
        (4, true) => Type::I32,
        (4, false) => Type::U32,
        (_, true) => Type::I64,
        (_, false) => Type::U64,
    }
}

/// `argtypes` with their converters (each type's `from_param`), as stock keeps them.
pub struct ArgTypes {
    /// What the user assigned (the getter returns it, a list stays a list).
    declared: PyObject,
    /// The types as they were when assigned (a list may change afterwards).
    pub types: Py<PyTuple>,
    pub converters: Arc<Vec<PyObject>>,
}

impl ArgTypes {
    fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.declared)?;
        visit.call(&self.types)?;
        self.converters.iter().try_for_each(|converter| visit.call(converter))
    }

    /// Stock's `converters_from_argtypes`, with its errors.
    fn of(argtypes: &Bound<'_, PyAny>) -> PyResult<ArgTypes> {
        let py = argtypes.py();
        let items = pyo3::types::PySequenceMethods::to_tuple(
            argtypes
                .downcast::<pyo3::types::PySequence>()
                .map_err(|_| PyTypeError::new_err("_argtypes_ must be a sequence of types"))?,
        )?;
        let mut converters = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let attribute = |name| match item.downcast::<PyType>() {
                Ok(cls) => class_getattr_opt(cls, name),
                Err(_) => item.getattr_opt(name),
            };
            let converter = attribute(intern!(py, "from_param"))?.ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "item {} in _argtypes_ has no from_param method",
                    index + 1
                ))
            })?;
            converters.push(converter.unbind());
        }
        Ok(ArgTypes {
            declared: argtypes.clone().unbind(),
            types: items.unbind(),
            converters: Arc::new(converters),
        })
    }
}

/// What a function pointer class declares (`_argtypes_`, `_restype_`, `_flags_`); the
/// metaclass makes one per class, and instances fall back on it.
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct FuncSpec {
    argtypes: Option<ArgTypes>,
    restype: Option<(PyObject, Arc<ResultSpec>)>,
    #[pyo3(get)]
    flags: u32,
}

#[pymethods]
impl FuncSpec {
    /// `argtypes` and `restype` as the class declares them (`restype` only if `has_restype`).
    #[new]
    #[pyo3(signature = (argtypes, restype, has_restype, flags))]
    fn new(
        argtypes: Option<Bound<'_, PyAny>>,
        restype: Bound<'_, PyAny>,
        has_restype: bool,
        flags: u32,
    ) -> PyResult<FuncSpec> {
        if let Some(argtypes) = &argtypes {
            if let Ok(count) = argtypes.len() {
                if count > CTYPES_MAX_ARGCOUNT {
                    return Err(ArgumentError::new_err(format!(
                        "_argtypes_ has too many arguments ({count}), maximum is {CTYPES_MAX_ARGCOUNT}"
                    )));
                }
            }
        }
        let argtypes = argtypes.map(|argtypes| ArgTypes::of(&argtypes)).transpose()?;
        let restype = if has_restype {
            let spec = ResultSpec::of(&restype).map_err(|_| {
                PyTypeError::new_err("_restype_ must be a type, a callable, or None")
            })?;
            Some((restype.unbind(), Arc::new(spec)))
        } else {
            None
        };
        Ok(FuncSpec { argtypes, restype, flags })
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(argtypes) = &self.argtypes {
            argtypes.traverse(&visit)?;
        }
        if let Some((restype, result)) = &self.restype {
            visit.call(restype)?;
            result.traverse(&visit)?;
        }
        Ok(())
    }

    /// True if the class declares `_argtypes_` (callbacks need them).
    #[getter]
    fn has_argtypes(&self) -> bool {
        self.argtypes.is_some()
    }
}

/// The instance of `FuncSpec` for classes that declare nothing (the abstract base).
fn empty_spec(py: Python<'_>) -> PyResult<Py<FuncSpec>> {
    static EMPTY: GILOnceCell<Py<FuncSpec>> = GILOnceCell::new();
    EMPTY
        .get_or_try_init(py, || Py::new(py, FuncSpec { argtypes: None, restype: None, flags: 0 }))
        .map(|spec| spec.clone_ref(py))
}

/// A C function pointer object. Frozen, with its changeable state in a `GilCell`: the
/// vectorcall entry reads it without pyo3's (atomic) borrow flags.
#[pyclass(frozen, extends = CData, subclass, module = "_ctypes", name = "CFuncPtr")]
pub struct CFuncPtr {
    /// The vectorcall entry CPython calls, read by CPython at the offset
    /// `enable_vectorcall` records in the type: `fastcall::funcptr_vectorcall`, or the
    /// compiled entry stub of the object's fast plan (entry.rs).
    vectorcall: AtomicUsize,
    /// Where the object's memory (holding the function address) is. Outside `state`:
    /// entry stubs read it at a fixed offset, and calls read it without a borrow.
    memory: AtomicUsize,
    /// The plan the installed entry stub serves (null without one); `state.fast` owns it.
    entry_plan: AtomicPtr<FastPlan>,
    spec: Py<FuncSpec>,
    state: GilCell<FuncState>,
}

/// A `RefCell` shared between threads only with the GIL held: every access is from a
/// Python method, the vectorcall entry or the garbage collector, all of which hold it.
pub struct GilCell<T>(std::cell::RefCell<T>);

// SAFETY: see the type's comment: the GIL serialises all access.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    fn new(value: T) -> Self {
        GilCell(std::cell::RefCell::new(value))
    }

    fn borrow(&self) -> std::cell::Ref<'_, T> {
        self.0.borrow()
    }

    fn borrow_mut(&self) -> std::cell::RefMut<'_, T> {
        self.0.borrow_mut()
    }
}

/// What a function object's attributes and calls change.
#[derive(Default)]
struct FuncState {
    /// The prepared fast call, made on the first call (fastcall.rs).
    fast: FastState,
    /// `jitctypes.set_trivial(f)`: keep the GIL during calls of this short function.
    trivial: bool,
    /// Called often enough for its stubs to be compiled (`function::compile_after`).
    hot: bool,
    /// Calls through the general path so far (saturating), which compiles from
    /// `compile_after` calls on.
    general_calls: u32,
    argtypes: Option<ArgTypes>,
    restype: Option<(PyObject, Arc<ResultSpec>)>,
    errcheck: Option<PyObject>,
    paramflags: Option<PyObject>,
    /// The Python callable of a callback made from one (kept, as stock keeps it).
    callable: Option<PyObject>,
    /// The call path of the last call, reused while the signature stays the same.
    last_call: Option<ForeignFunction>,
}

/// Everything one call needs, copied out of the object so that Python code run during
/// the call (converters, errcheck) may change the object freely.
struct CallPlan {
    converters: Option<Arc<Vec<PyObject>>>,
    argtypes_for_paramflags: Option<Py<PyTuple>>,
    result: Arc<ResultSpec>,
    errcheck: Option<PyObject>,
    paramflags: Option<PyObject>,
    flags: u32,
    cached: Option<ForeignFunction>,
}

/// `ArgumentError("argument N: <exception class>: <message>")`, stock's wrapping of a
/// conversion error.
fn argument_error(py: Python<'_>, index: usize, error: PyErr) -> PyErr {
    let class = error.get_type(py).name().map(|name| name.to_string()).unwrap_or_default();
    let message =
        error.value(py).str().map(|text| text.to_string()).unwrap_or_else(|_| "???".into());
    ArgumentError::new_err(format!("argument {index}: {class}: {message}"))
}

/// `prototype((name, library), paramflags)`: the symbol `name` of `library` (an object
/// with an int `_handle`, such as a `CDLL`), kept alive by the new function pointer. In
/// Rust because programs like pyglet make thousands of these at start-up; `paramflags`
/// alone is checked in Python (`_validate_paramflags`), and only when given.
#[pyfunction]
#[pyo3(signature = (cls, spec, paramflags = None))]
pub fn function_from_library<'py>(
    cls: &Bound<'py, PyType>,
    spec: &Bound<'py, PyTuple>,
    paramflags: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, CFuncPtr>> {
    let py = cls.py();
    // Exactly `(name, library)`: stock parses the pair with "O&O".
    if spec.len() != 2 {
        return Err(PyTypeError::new_err("illegal func_spec argument"));
    }
    let (name, library) = (spec.get_item(0)?, spec.get_item(1)?);
    // The name's bytes as C gets them: a str's UTF-8, a bytes object's own.
    let name: Vec<u8> = if let Ok(name) = name.downcast::<pyo3::types::PyBytes>() {
        name.as_bytes().to_vec()
    } else if let Ok(name) = name.downcast::<pyo3::types::PyString>() {
        name.to_str()?.as_bytes().to_vec()
    } else {
        return Err(PyTypeError::new_err("function name must be string, bytes object or integer"));
    };
    let handle = library.getattr(intern!(py, "_handle"))?;
    if !handle.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(
            "the _handle attribute of the second argument must be an integer",
        ));
    }
    // As `PyLong_AsVoidPtr` reads it: negative handles (`RTLD_NEXT` is -1) too.
    let handle = handle
        .extract::<i64>()
        .map(|handle| handle as usize)
        .or_else(|_| handle.extract::<u64>().map(|handle| handle as usize))
        .map_err(|_| {
            PyValueError::new_err("could not convert the _handle attribute to a pointer")
        })?;
    let address = crate::library::symbol_of_handle(handle, &name).map_err(|message| {
        crate::library::loader_error::<pyo3::exceptions::PyAttributeError>(py, &name, message)
    })?;
    let paramflags = paramflags.filter(|flags| !flags.is_none());
    if let Some(paramflags) = &paramflags {
        let validate = paramflags_helpers(py)?.getattr(intern!(py, "_validate_paramflags"))?;
        validate.call1((cls, paramflags))?;
    }
    let function = new_function_object(cls)?;
    function.get().set_up(py, address, paramflags.map(Bound::unbind), None);
    keep_ref(function.as_super(), 0, vec![library.unbind()])?;
    Ok(function)
}

/// A new `cls` instance from `CFuncPtr`'s own constructor (what `super().__new__(cls)`
/// gives in the Python subclass), without a Python-level call.
fn new_function_object<'py>(cls: &Bound<'py, PyType>) -> PyResult<Bound<'py, CFuncPtr>> {
    let py = cls.py();
    if !cls.is_subclass_of::<CFuncPtr>()? {
        // Its instances would not have a function pointer's layout.
        return Err(PyTypeError::new_err("not a function pointer type"));
    }
    let empty = PyTuple::empty(py);
    // SAFETY: `tp_new` of the pyo3 class, called as CPython calls it: a subtype (the
    // downcast below checks the result) and an argument tuple, no keywords.
    let object = unsafe {
        let tp_new = (*CFuncPtr::type_object_raw(py)).tp_new.expect("pyo3 classes have tp_new");
        Bound::from_owned_ptr_or_err(
            py,
            tp_new(cls.as_type_ptr(), empty.as_ptr(), std::ptr::null_mut()),
        )?
    };
    Ok(object.downcast_into::<CFuncPtr>()?)
}

/// The Python helpers for `paramflags` (`jitctypes._ctypes.function`), imported once.
fn paramflags_helpers(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: GILOnceCell<Py<PyModule>> = GILOnceCell::new();
    MODULE
        .get_or_try_init(py, || Ok(py.import("jitctypes._ctypes.function")?.unbind()))
        .map(|module| module.bind(py))
}

impl CFuncPtr {
    fn set_up(
        &self,
        py: Python<'_>,
        address: usize,
        paramflags: Option<PyObject>,
        callable: Option<PyObject>,
    ) {
        let memory = self.memory.load(Ordering::Relaxed);
        // SAFETY: a function pointer object's memory holds one pointer.
        unsafe { *(memory as *mut usize) = address };
        let mut this = self.state.borrow_mut();
        let old = (
            std::mem::replace(&mut this.paramflags, paramflags.filter(|f| !f.is_none(py))),
            std::mem::replace(&mut this.callable, callable),
        );
        drop(this);
        drop(old); // after the borrow: dropping may run Python code
    }

    /// Takes the fast plan away (to be dropped after the borrow), with the entry stub
    /// that serves it.
    fn take_fast(&self, this: &mut FuncState) -> FastState {
        self.retire_entry();
        std::mem::take(&mut this.fast)
    }

    /// Makes `funcptr_vectorcall` the object's entry again. Called before the plan the
    /// entry stub reads, or anything the stub does not check (errcheck), changes.
    fn retire_entry(&self) {
        self.vectorcall.store(funcptr_vectorcall as *const () as usize, Ordering::Relaxed);
        self.entry_plan.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// Makes the entry stub of `plan` the object's entry, if `plan` is the object's
    /// current plan and nothing else (errcheck) needs the Rust entry.
    pub fn install_entry(&self, plan: &Arc<FastPlan>) {
        let Some(entry) = plan.entry() else { return };
        if self.vectorcall.load(Ordering::Relaxed) == entry as usize {
            return;
        }
        let Ok(this) = self.state.0.try_borrow() else { return };
        let current = matches!(&this.fast, FastState::Ready(held) if Arc::ptr_eq(held, plan));
        if current && this.errcheck.is_none() {
            // The plan first: the stub reads it only once it is the entry.
            self.entry_plan.store(Arc::as_ptr(plan).cast_mut(), Ordering::Relaxed);
            self.vectorcall.store(entry as usize, Ordering::Relaxed);
        }
    }

    fn plan(&self, py: Python<'_>) -> CallPlan {
        let spec = self.spec.get();
        let this = self.state.borrow();
        let argtypes = this.argtypes.as_ref().or(spec.argtypes.as_ref());
        let result = this
            .restype
            .as_ref()
            .or(spec.restype.as_ref())
            .map_or_else(|| Arc::new(ResultSpec::int()), |(_, result)| Arc::clone(result));
        CallPlan {
            converters: argtypes.map(|argtypes| Arc::clone(&argtypes.converters)),
            // Only `paramflags` needs them: the types as assigned.
            argtypes_for_paramflags: argtypes
                .filter(|_| this.paramflags.is_some())
                .map(|argtypes| argtypes.types.clone_ref(py)),
            result,
            errcheck: this.errcheck.as_ref().map(|errcheck| errcheck.clone_ref(py)),
            paramflags: this.paramflags.as_ref().map(|flags| flags.clone_ref(py)),
            flags: spec.flags,
            cached: this.last_call.clone(),
        }
    }
}

/// The function address an instance holds.
fn target_address(slf: &Bound<'_, CFuncPtr>) -> usize {
    let memory = slf.get().memory.load(Ordering::Relaxed);
    // SAFETY: a function pointer object's memory holds one pointer.
    unsafe { *(memory as *const usize) }
}

#[pymethods]
impl CFuncPtr {
    #[new]
    #[classmethod]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        cls: &Bound<'_, PyType>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<CFuncPtr>> {
        let py = cls.py();
        let spec = match class_getattr_opt(cls, intern!(py, "_jitctypes_spec_"))? {
            Some(spec) => spec.downcast_into::<FuncSpec>()?.unbind(),
            None => empty_spec(py)?,
        };
        // Not inline: the address is recorded before the object is in place.
        let data = CData::for_class_inline(cls, kwargs, false)?;
        let this = CFuncPtr {
            vectorcall: AtomicUsize::new(funcptr_vectorcall as *const () as usize),
            memory: AtomicUsize::new(data.address()),
            entry_plan: AtomicPtr::new(std::ptr::null_mut()),
            spec,
            state: GilCell::new(FuncState::default()),
        };
        Ok(PyClassInitializer::from(data).add_subclass(this))
    }

    /// Sets what the constructor forms decide (in Python, `jitctypes._ctypes.function`):
    /// the address, `paramflags`, and the callable of a callback.
    #[pyo3(signature = (address, paramflags = None, callable = None))]
    fn _jitctypes_setup_(
        slf: &Bound<'_, CFuncPtr>,
        address: usize,
        paramflags: Option<PyObject>,
        callable: Option<PyObject>,
    ) {
        slf.get().set_up(slf.py(), address, paramflags, callable);
    }

    // `argtypes`, `restype` and `errcheck` are Python properties over these methods
    // (`jitctypes._ctypes.function`): a pyo3 setter cannot tell `f.restype = None` from
    // `del f.restype`, which mean different things in ctypes.

    fn _jitctypes_get_argtypes_(&self, py: Python<'_>) -> PyObject {
        match self.state.borrow().argtypes.as_ref().or(self.spec.get().argtypes.as_ref()) {
            Some(argtypes) => argtypes.declared.clone_ref(py),
            None => py.None(),
        }
    }

    /// `f.argtypes = seq` (None, or deleting, reverts to the class's).
    #[pyo3(signature = (argtypes = None))]
    fn _jitctypes_set_argtypes_(&self, argtypes: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let argtypes = match argtypes {
            Some(argtypes) if !argtypes.is_none() => Some(ArgTypes::of(argtypes)?),
            _ => None,
        };
        let mut this = self.state.borrow_mut();
        let old = (
            std::mem::replace(&mut this.argtypes, argtypes),
            this.last_call.take(),
            self.take_fast(&mut this),
        );
        drop(this);
        drop(old); // after the borrow: dropping may run Python code
        Ok(())
    }

    fn _jitctypes_get_restype_(&self, py: Python<'_>) -> PyObject {
        match self.state.borrow().restype.as_ref().or(self.spec.get().restype.as_ref()) {
            Some((restype, _)) => restype.clone_ref(py),
            None => py.None(),
        }
    }

    /// `f.restype = T` (None: void); `delete=True` reverts to the class's.
    #[pyo3(signature = (restype, delete = false))]
    fn _jitctypes_set_restype_(&self, restype: &Bound<'_, PyAny>, delete: bool) -> PyResult<()> {
        let restype = if delete {
            None
        } else {
            Some((restype.clone().unbind(), Arc::new(ResultSpec::of(restype)?)))
        };
        let mut this = self.state.borrow_mut();
        let old = (
            std::mem::replace(&mut this.restype, restype),
            this.last_call.take(),
            self.take_fast(&mut this),
        );
        drop(this);
        drop(old); // after the borrow: dropping may run Python code
        Ok(())
    }

    fn _jitctypes_get_errcheck_(&self, py: Python<'_>) -> PyObject {
        let this = self.state.borrow();
        this.errcheck.as_ref().map_or_else(|| py.None(), |errcheck| errcheck.clone_ref(py))
    }

    /// `f.errcheck = callable`; `delete=True` removes it.
    #[pyo3(signature = (errcheck, delete = false))]
    fn _jitctypes_set_errcheck_(&self, errcheck: &Bound<'_, PyAny>, delete: bool) -> PyResult<()> {
        if !delete && !errcheck.is_callable() {
            return Err(PyTypeError::new_err("the errcheck attribute must be callable"));
        }
        let new = (!delete).then(|| errcheck.clone().unbind());
        // The entry stub does not run errcheck: the Rust entry does.
        self.retire_entry();
        let old = std::mem::replace(&mut self.state.borrow_mut().errcheck, new);
        drop(old); // after the borrow: dropping may run Python code
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.spec)?;
        // The GC runs with the GIL held and never while a method holds this borrow.
        let Ok(this) = self.state.0.try_borrow() else { return Ok(()) };
        if let Some(argtypes) = &this.argtypes {
            argtypes.traverse(&visit)?;
        }
        if let Some((restype, result)) = &this.restype {
            visit.call(restype)?;
            result.traverse(&visit)?;
        }
        if let FastState::Ready(plan) = &this.fast {
            // The plan's result spec is this object's own (visited above) or the class's
            // (visited by the class's FuncSpec): only its argument guards are visited here.
            plan.traverse_arguments(&visit)?;
        }
        visit.call(&this.errcheck)?;
        visit.call(&this.paramflags)?;
        visit.call(&this.callable)?;
        Ok(())
    }

    fn __clear__(&self) {
        if let Ok(mut this) = self.state.0.try_borrow_mut() {
            let old = (
                this.argtypes.take(),
                this.restype.take(),
                this.errcheck.take(),
                this.paramflags.take(),
                this.callable.take(),
                self.take_fast(&mut this),
            );
            drop(this);
            drop(old); // after the borrow: dropping may run Python code
        }
    }

    fn __bool__(slf: &Bound<'_, CFuncPtr>) -> bool {
        target_address(slf) != 0
    }

    fn __repr__(slf: &Bound<'_, CFuncPtr>) -> PyResult<String> {
        Ok(format!("<{} object at {:#x}>", slf.get_type().name()?, slf.as_ptr() as usize))
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        slf: &Bound<'_, CFuncPtr>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyObject> {
        call_general(slf, args, kwargs)
    }

    /// `jitctypes.set_trivial(f, on)`: calls keep the GIL (for short, non-blocking C
    /// functions: saves releasing and re-taking it).
    fn _jitctypes_set_trivial_(&self, trivial: bool) {
        let mut this = self.state.borrow_mut();
        this.trivial = trivial;
        let old = self.take_fast(&mut this);
        drop(this);
        drop(old); // after the borrow: dropping may run Python code
    }
}

impl CFuncPtr {
    /// `resize()` moved the object's memory.
    pub fn memory_moved(slf: &Bound<'_, CFuncPtr>, address: usize) {
        slf.get().memory.store(address, Ordering::Relaxed);
    }

    /// What a fast call needs, in one look: the plan (if any), the function address and
    /// whether `errcheck` is set.
    pub fn fast_call_inputs(slf: &Bound<'_, CFuncPtr>) -> Option<FastCallInputs> {
        let this = slf.get().state.borrow();
        if let FastState::Ready(plan) = &this.fast {
            if plan.is_current() {
                let address = target_address(slf);
                let errcheck = this.errcheck.as_ref().map(|errcheck| errcheck.clone_ref(slf.py()));
                return Some((Arc::clone(plan), address, errcheck));
            }
        }
        None
    }

    /// The current plan and the function address, if `slf` has a plan and no `errcheck`.
    pub fn direct_call_inputs(slf: &Bound<'_, CFuncPtr>) -> Option<(Arc<FastPlan>, usize)> {
        let this = slf.get().state.0.try_borrow().ok()?;
        match &this.fast {
            FastState::Ready(plan) if plan.is_current() && this.errcheck.is_none() => {
                Some((Arc::clone(plan), target_address(slf)))
            }
            _ => None,
        }
    }

    /// The fast plan of `slf`, made on first use (None: the general path serves it).
    pub fn fast_plan(slf: &Bound<'_, CFuncPtr>) -> Option<Arc<FastPlan>> {
        let py = slf.py();
        {
            let this = slf.get().state.borrow();
            match &this.fast {
                FastState::Ready(plan) if plan.is_current() => return Some(Arc::clone(plan)),
                FastState::Ineligible => return None,
                _ => {}
            }
        }
        let (argtypes, result, flags, trivial, has_paramflags, hot) = {
            let this = slf.get().state.borrow();
            let spec = slf.get().spec.get();
            // The types as assigned: a list given as argtypes may have changed since.
            let argtypes = this.argtypes.as_ref().or(spec.argtypes.as_ref()).map(|argtypes| {
                (argtypes.types.clone_ref(py).into_any(), Arc::clone(&argtypes.converters))
            });
            let result = this
                .restype
                .as_ref()
                .or(spec.restype.as_ref())
                .map_or_else(|| Arc::new(ResultSpec::int()), |(_, result)| Arc::clone(result));
            (argtypes, result, spec.flags, this.trivial, this.paramflags.is_some(), this.hot)
        };
        let plan = if has_paramflags {
            Err("paramflags".to_string())
        } else {
            FastPlan::build(
                py,
                argtypes.as_ref().map(|(declared, converters)| (declared, converters.as_slice())),
                &result,
                flags,
                trivial,
                hot,
            )
        };
        let state = match plan {
            Ok(plan) => FastState::Ready(Arc::new(plan)),
            Err(reason) => {
                note_ineligible(&reason);
                FastState::Ineligible
            }
        };
        let plan = match &state {
            FastState::Ready(plan) => Some(Arc::clone(plan)),
            _ => None,
        };
        if let Ok(mut this) = slf.get().state.0.try_borrow_mut() {
            slf.get().retire_entry();
            let old = std::mem::replace(&mut this.fast, state);
            drop(this);
            drop(old); // after the borrow: dropping may run Python code
        }
        plan
    }

    /// Records that `slf` was called often enough to compile for, and drops its plan so
    /// that the next call makes a compiled one.
    pub fn mark_hot(slf: &Bound<'_, CFuncPtr>) {
        let Ok(mut this) = slf.get().state.0.try_borrow_mut() else { return };
        this.hot = true;
        let old = slf.get().take_fast(&mut this);
        drop(this);
        drop(old); // after the borrow: dropping may run Python code
    }

    /// The function address the object holds.
    pub fn address_of(slf: &Bound<'_, CFuncPtr>) -> usize {
        target_address(slf)
    }

    pub fn errcheck_of(slf: &Bound<'_, CFuncPtr>) -> Option<PyObject> {
        let this = slf.get().state.borrow();
        this.errcheck.as_ref().map(|errcheck| errcheck.clone_ref(slf.py()))
    }
}

/// The general path of a call (stock's `PyCFuncPtr_call`), for everything the fast path
/// does not take.
pub fn call_general(
    slf: &Bound<'_, CFuncPtr>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let py = slf.py();
    let plan = slf.get().plan(py);
    let (callargs, outputs) = match &plan.paramflags {
        Some(paramflags) => {
            let built = paramflags_helpers(py)?.getattr(intern!(py, "build_callargs"))?.call1((
                plan.argtypes_for_paramflags.as_ref().map(|argtypes| argtypes.bind(py)),
                paramflags,
                args,
                kwargs,
            ))?;
            let (callargs, outputs): (Bound<'_, PyTuple>, PyObject) = built.extract()?;
            (callargs, Some(outputs))
        }
        // Without paramflags, stock ignores keyword arguments.
        None => (args.clone(), None),
    };
    check_argument_count(&plan, callargs.len())?;
    if callargs.len() > CTYPES_MAX_ARGCOUNT {
        return Err(ArgumentError::new_err(format!(
            "too many arguments ({}), maximum is {CTYPES_MAX_ARGCOUNT}",
            callargs.len()
        )));
    }
    let address = target_address(slf);
    if address == 0 {
        return Err(PyValueError::new_err("NULL function pointer"));
    }
    let result = call_with(slf, &plan, address, &callargs)?;
    let result = match &plan.errcheck {
        Some(errcheck) => {
            let checked = errcheck.call1(py, (result.clone_ref(py), slf, &callargs))?;
            if !checked.is(&callargs) {
                return Ok(checked);
            }
            // errcheck returned the arguments unchanged: carry on with the
            // out-parameters, as stock does.
            result
        }
        None => result,
    };
    match outputs {
        Some(outputs) => paramflags_helpers(py)?
            .getattr(intern!(py, "build_result"))?
            .call1((result, &callargs, outputs))
            .map(Bound::unbind),
        None => Ok(result),
    }
}

/// Stock's count check: at least `len(argtypes)` arguments for cdecl functions (more
/// are passed as converted without a type), exactly that many otherwise.
fn check_argument_count(plan: &CallPlan, actual: usize) -> PyResult<()> {
    let Some(converters) = &plan.converters else { return Ok(()) };
    let required = converters.len();
    let plural = if required == 1 { "" } else { "s" };
    if plan.flags & FUNCFLAG_CDECL != 0 {
        if required > actual {
            return Err(PyTypeError::new_err(format!(
                "this function takes at least {required} argument{plural} ({actual} given)"
            )));
        }
    } else if required != actual {
        return Err(PyTypeError::new_err(format!(
            "this function takes {required} argument{plural} ({actual} given)"
        )));
    }
    Ok(())
}

/// Converts `callargs`, calls the function at `address` and boxes the result.
fn call_with(
    slf: &Bound<'_, CFuncPtr>,
    plan: &CallPlan,
    address: usize,
    callargs: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let py = slf.py();
    let typed = plan.converters.as_ref().map_or(0, |converters| converters.len());
    let mut params = Vec::with_capacity(callargs.len());
    let mut converted = Vec::with_capacity(typed);
    for (position, arg) in callargs.iter().enumerate() {
        let index = position + 1;
        let param = match plan.converters.as_ref().and_then(|converters| converters.get(position)) {
            Some(converter) => {
                let value = converter
                    .call1(py, (arg,))
                    .map_err(|error| argument_error(py, index, error))?;
                let param = Param::convert(value.bind(py), index);
                converted.push(value);
                param
            }
            None => Param::convert(&arg, index),
        };
        params.push(param.map_err(|error| argument_error(py, index, error))?);
    }
    if typed > 0 {
        refuse_unpromoted_variadic(&params[typed.min(params.len())..])?;
    }
    // A function called with more arguments than it declares may be variadic (printf):
    // only libffi sets `%al` for those, so floating-point extras go through libffi.
    let maybe_variadic_floats =
        params[typed.min(params.len())..].iter().any(|param| passes_in_sse(&param.jit));
    let signature = Signature::new(
        plan.result.jit_type(py)?,
        params.iter().map(|param| param.jit.clone()).collect(),
    )
    .map_err(signature_error)?;
    let calls = {
        let mut this = slf.get().state.borrow_mut();
        this.general_calls = this.general_calls.saturating_add(1);
        if this.hot {
            u32::MAX
        } else {
            this.general_calls - 1
        }
    };
    let options = CallOptions {
        use_errno: plan.flags & FUNCFLAG_USE_ERRNO != 0,
        prefer_libffi: maybe_variadic_floats || !compile_now(&signature, calls),
    };
    let function = match &plan.cached {
        Some(cached)
            if cached.address() as usize == address
                && cached.options() == options
                && cached.caller().signature() == &signature =>
        {
            cached.clone()
        }
        _ => {
            let function = ForeignFunction::new(address as *const c_void, signature, options)
                .map_err(call_error)?;
            slf.get().state.borrow_mut().last_call = Some(function.clone());
            function
        }
    };
    let pointers: Vec<*mut c_void> = params.iter_mut().map(Param::value_ptr).collect();
    let ret_size = function.caller().signature().ret_buffer_size();
    let mut ret = vec![Slot::default(); ret_size.div_ceil(16).max(1)];
    let frame = CallFrame::new(&function, pointers.as_ptr(), ret.as_mut_ptr().cast());
    if plan.flags & FUNCFLAG_PYTHONAPI == 0 {
        // SAFETY: the signature was built from the converted arguments, each stored where
        // its pointer says, and `ret` holds `ret_buffer_size` bytes. The address is the
        // user's promise, as in ctypes.
        crate::gil::without_gil(py, || unsafe { frame.run() });
    } else {
        // SAFETY: as above.
        unsafe { frame.run() };
        if let Some(error) = PyErr::take(py) {
            return Err(error);
        }
    }
    // Arguments stay alive until the result is read: a `char *` result may point into one.
    let result = plan.result.boxed(py, &ret);
    drop(params);
    drop(converted);
    result
}

/// Stock calls a function with `argtypes` and more arguments than those as variadic
/// (`ffi_prep_cif_var`), which refuses extras that C's default promotions would have
/// widened: `float`, and scalars narrower than `int` (`c_char`, `c_bool`, `c_short`,
/// `c_byte`). Stock raises, and so do we, rather than pass what the callee cannot read.
fn refuse_unpromoted_variadic(extras: &[Param]) -> PyResult<()> {
    let unpromoted = |ty: &Type| match ty {
        Type::F32 => true,
        Type::Aggregate(_) | Type::Array { .. } => false,
        scalar => scalar.size() < 4,
    };
    if extras.iter().any(|param| unpromoted(&param.jit)) {
        return Err(pyo3::exceptions::PyRuntimeError::new_err("ffi_prep_cif_var failed"));
    }
    Ok(())
}

/// True if `ty` is or contains a `float`/`double` (a variadic callee then needs `%al`).
fn passes_in_sse(ty: &Type) -> bool {
    let mut found = false;
    ty.for_each_scalar(0, &mut |_, scalar| found |= scalar.is_float());
    found
}

/// Gives instances of the function pointer type `cls` the vectorcall entry: CPython then
/// calls `fastcall::funcptr_vectorcall` without building an argument tuple. Heap types do
/// not inherit this from their base on 3.11, so the metaclass calls it for every class.
#[pyfunction]
pub fn enable_vectorcall(cls: &Bound<'_, PyType>) -> PyResult<()> {
    static OFFSET: std::sync::OnceLock<isize> = std::sync::OnceLock::new();
    let offset_of =
        |probe: &Bound<'_, CFuncPtr>, field: *const u8| field as isize - probe.as_ptr() as isize;
    if !cls.is_subclass_of::<CFuncPtr>()? {
        return Err(PyTypeError::new_err("not a function pointer type"));
    }
    let offset = match OFFSET.get() {
        Some(offset) => *offset,
        None => {
            // The field's place inside the object, measured on one instance: pyo3 decides
            // the layout of the objects of its classes.
            let probe = crate::cdata::new_instance(cls, None)?;
            let probe = probe.downcast::<CFuncPtr>()?;
            let this = probe.get();
            crate::entry::set_callable_offsets(crate::entry::CallableOffsets {
                memory: offset_of(probe, (&this.memory as *const AtomicUsize).cast()),
                plan: offset_of(probe, (&this.entry_plan as *const AtomicPtr<FastPlan>).cast()),
            });
            let vectorcall = offset_of(probe, (&this.vectorcall as *const AtomicUsize).cast());
            *OFFSET.get_or_init(|| vectorcall)
        }
    };
    let type_object = cls.as_type_ptr();
    // SAFETY: a heap type we own the definition of; set before calls need it. CPython reads
    // the flag and offset at each call.
    unsafe {
        (*type_object).tp_vectorcall_offset = offset as pyo3::ffi::Py_ssize_t;
        (*type_object).tp_flags |= pyo3::ffi::Py_TPFLAGS_HAVE_VECTORCALL;
    }
    Ok(())
}

/// Registers the class, its spec and `ArgumentError`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<CFuncPtr>()?;
    module.add_class::<FuncSpec>()?;
    module.add_function(wrap_pyfunction!(enable_vectorcall, module)?)?;
    module.add_function(wrap_pyfunction!(function_from_library, module)?)?;
    module.add_function(wrap_pyfunction!(disable_vectorcall, module)?)?;
    module.add_function(wrap_pyfunction!(crate::fastcall::fast_path_stats, module)?)?;
    module.add("ArgumentError", py.get_type::<ArgumentError>())?;
    module.add("CTYPES_MAX_ARGCOUNT", CTYPES_MAX_ARGCOUNT)?;
    module.add("FUNCFLAG_CDECL", FUNCFLAG_CDECL)?;
    module.add("FUNCFLAG_HRESULT", FUNCFLAG_HRESULT)?;
    module.add("FUNCFLAG_PYTHONAPI", FUNCFLAG_PYTHONAPI)?;
    module.add("FUNCFLAG_USE_ERRNO", FUNCFLAG_USE_ERRNO)?;
    module.add("FUNCFLAG_USE_LASTERROR", FUNCFLAG_USE_LASTERROR)?;
    Ok(())
}
