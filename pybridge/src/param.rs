//! Arguments of foreign calls as ctypes converts them.
//!
//! Two steps, as in stock ctypes: an argument type's `from_param` turns a Python value into
//! something passable (an instance, a `CArgObject`, None, ...), then `Param::convert`
//! (ctypes' `ConvParam`) turns that into a C type and the bytes of its value. Calls
//! without `argtypes` skip the first step. `CArgObject` is what `byref()` and the simple
//! types' `from_param` return: a tagged C value that keeps its Python source alive.

use jit::Type;
use pyo3::exceptions::{PyOverflowError, PyRecursionError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString, PyType};
use pyo3::{intern, PyTypeInfo};

use crate::array::Array;
use crate::cdata::{class_ctype, class_getattr_opt, CData};
use crate::convert::{store, wide_string, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::pointer::Pointer;

/// 16-byte-aligned storage for one argument or result value: enough for any scalar and
/// `long double`.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
pub struct Slot(pub [u8; 16]);

impl Slot {
    fn from_u64(value: u64) -> Slot {
        let mut slot = Slot::default();
        slot.0[..8].copy_from_slice(&value.to_ne_bytes());
        slot
    }

    fn i64(&self) -> i64 {
        i64::from_ne_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

/// How deep `_as_parameter_` may nest before ctypes gives up (stock's recursion guard).
const AS_PARAMETER_DEPTH: usize = 64;

/// A tagged C value ready to be passed: what `byref(obj)` and `c_int.from_param(5)` return.
#[pyclass(frozen, module = "_ctypes", name = "CArgObject")]
pub struct CArgObject {
    /// The Python object the value comes from or points into (`_obj`), kept alive.
    #[pyo3(get, name = "_obj")]
    obj: PyObject,
    /// Held, never read: further objects the value points into (a converted string's
    /// buffer).
    _keep: KeepAlive,
    tag: char,
    jit: Type,
    value: Slot,
}

/// Where the fields of one `CArgObject` are (for `entry::reference_layout`).
pub struct CArgFieldAddresses {
    pub object: usize,
    pub tag: usize,
    pub value: usize,
}

impl CArgObject {
    /// The tag of `byref()` results.
    pub const REFERENCE_TAG: char = 'P';

    /// A pointer to `address` inside `obj` (ctypes' `byref`).
    pub fn pointer_into(obj: PyObject, address: usize) -> CArgObject {
        CArgObject {
            obj,
            _keep: KeepAlive::new(),
            tag: CArgObject::REFERENCE_TAG,
            jit: Type::Pointer,
            value: Slot::from_u64(address as u64),
        }
    }

    /// The addresses of the referenced object (a pointer), the tag (a `char`, as `u32`)
    /// and the value (its first word is the address a reference passes).
    pub fn field_addresses(&self) -> CArgFieldAddresses {
        CArgFieldAddresses {
            object: &self.obj as *const PyObject as usize,
            tag: &self.tag as *const char as usize,
            value: &self.value as *const Slot as usize,
        }
    }

    /// True for `byref(x)` of an instance of exactly `target`.
    pub fn points_into_exactly(&self, target: &Bound<'_, PyType>) -> bool {
        self.tag == 'P' && self.obj.bind(target.py()).get_type().is(target)
    }

    /// The address a `'P'`-tagged object holds.
    pub fn address(&self) -> usize {
        self.value.i64() as usize
    }
}

#[pymethods]
impl CArgObject {
    fn __repr__(slf: &Bound<'_, CArgObject>) -> PyResult<String> {
        let this = slf.get();
        let tag = this.tag;
        let bytes = &this.value.0;
        let int = |size: usize| -> i64 {
            let mut raw = [0u8; 8];
            raw[..size].copy_from_slice(&bytes[..size]);
            rawffi::memory::sign_extend(u64::from_ne_bytes(raw), 8 * size as u32)
        };
        Ok(match tag {
            'b' | 'B' => format!("<cparam '{tag}' ({})>", int(1)),
            'h' | 'H' => format!("<cparam '{tag}' ({})>", int(2)),
            'i' | 'I' => format!("<cparam '{tag}' ({})>", int(4)),
            'l' | 'L' | 'q' | 'Q' => format!("<cparam '{tag}' ({})>", int(8)),
            'd' => {
                let value = f64::from_ne_bytes(bytes[..8].try_into().expect("8 bytes"));
                format!("<cparam '{tag}' ({})>", value.into_pyobject(slf.py())?.repr()?)
            }
            'f' => {
                let value = f32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes"));
                format!("<cparam '{tag}' ({})>", (value as f64).into_pyobject(slf.py())?.repr()?)
            }
            'c' => match bytes[0] {
                byte @ 0x20..=0x7e if byte != b'\\' => format!("<cparam 'c' ('{}')>", byte as char),
                byte => format!("<cparam 'c' ('\\x{byte:02x}')>"),
            },
            'z' | 'Z' | 'P' => match this.address() {
                0 => format!("<cparam '{tag}' ((nil))>"),
                address => format!("<cparam '{tag}' ({address:#x})>"),
            },
            _ => format!("<cparam '{tag}' at {:#x}>", slf.as_ptr() as usize),
        })
    }
}

/// One converted argument: its C type and where its value's bytes are.
pub struct Param {
    pub jit: Type,
    value: Slot,
    /// For values too large for a slot (structures by value): their address, valid while
    /// `keep` lives.
    at: Option<usize>,
    /// Held, never read: what must outlive the call (the argument object, converted
    /// strings).
    _keep: Option<PyObject>,
}

impl Param {
    fn inline(jit: Type, value: Slot, keep: Option<PyObject>) -> Param {
        Param { jit, value, at: None, _keep: keep }
    }

    /// Where the call reads the value from; valid while `self` lives unmoved.
    pub fn value_ptr(&mut self) -> *mut std::ffi::c_void {
        match self.at {
            Some(address) => address as *mut std::ffi::c_void,
            None => self.value.0.as_mut_ptr().cast(),
        }
    }

    /// ctypes' `ConvParam`: the C value of `obj` (the result of a `from_param`, or the raw
    /// argument of a function without `argtypes`). `index` (from 1) names it in errors.
    pub fn convert(obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Param> {
        Param::convert_nested(obj, index, 0)
    }

    fn convert_nested(obj: &Bound<'_, PyAny>, index: usize, depth: usize) -> PyResult<Param> {
        let py = obj.py();
        if let Some(carg) = crate::known_types::as_carg(obj) {
            let carg = carg.get();
            return Ok(Param::inline(carg.jit.clone(), carg.value, Some(obj.clone().unbind())));
        }
        if let Some(cdata) = crate::known_types::as_cdata(obj) {
            return Param::of_instance(cdata);
        }
        if obj.is_none() {
            return Ok(Param::inline(Type::Pointer, Slot::default(), None));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(Param::inline(Code::Int.jit_type(), Slot::from_u64(c_long(obj)?), None));
        }
        if let Ok(bytes) = obj.downcast::<PyBytes>() {
            let address = bytes.as_bytes().as_ptr() as u64;
            return Ok(Param::inline(
                Type::Pointer,
                Slot::from_u64(address),
                Some(obj.clone().unbind()),
            ));
        }
        if let Ok(text) = obj.downcast::<PyString>() {
            let buffer = wide_string(text)?;
            let address = buffer.get().address()? as u64;
            let keep = Some(buffer.into_any().unbind());
            return Ok(Param::inline(Type::Pointer, Slot::from_u64(address), keep));
        }
        if let Some(inner) = obj.getattr_opt(intern!(py, "_as_parameter_"))? {
            if depth >= AS_PARAMETER_DEPTH {
                return Err(PyRecursionError::new_err(
                    "maximum recursion depth exceeded while processing _as_parameter_",
                ));
            }
            return Param::convert_nested(&inner, index, depth + 1);
        }
        Err(PyTypeError::new_err(format!("Don't know how to convert parameter {index}")))
    }

    /// A ctypes instance as an argument: scalars by value, structures and unions by value,
    /// arrays as a pointer to their first element.
    fn of_instance(cdata: &Bound<'_, CData>) -> PyResult<Param> {
        let ctype = class_ctype(&cdata.get_type())?;
        let ctype = ctype.get();
        let (address, size) = {
            let data = cdata.borrow();
            (data.address(), data.size())
        };
        let keep = Some(cdata.clone().into_any().unbind());
        match &ctype.shape {
            Shape::Scalar { .. } => {
                let mut value = Slot::default();
                let size = size.min(16);
                // SAFETY: the instance's memory holds `size` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(address as *const u8, value.0.as_mut_ptr(), size)
                };
                Ok(Param::inline(ctype.jit.clone(), value, keep))
            }
            Shape::Aggregate => Ok(Param {
                jit: ctype.jit.clone(),
                value: Slot::default(),
                at: Some(address),
                _keep: keep,
            }),
            Shape::Array { .. } => {
                Ok(Param::inline(Type::Pointer, Slot::from_u64(address as u64), keep))
            }
            Shape::Void => Err(PyTypeError::new_err("cannot pass void")),
        }
    }
}

/// An int argument without `argtypes`: a C `long` (truncated to `int` by the call), as
/// ctypes converts it; `OverflowError` beyond 64 bits.
fn c_long(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(value) = obj.extract::<u64>() {
        return Ok(value);
    }
    obj.extract::<i64>()
        .map(|value| value as u64)
        .map_err(|_| PyOverflowError::new_err("int too long to convert"))
}

/// A `CArgObject` of scalar type `ctype` holding `value` converted by its rules.
fn scalar_arg(value: &Bound<'_, PyAny>, ctype: &CType, tag: char) -> PyResult<CArgObject> {
    let mut slot = Slot::default();
    let mut keep = KeepAlive::new();
    // SAFETY: a slot holds any scalar.
    unsafe { store(value, ctype, slot.0.as_mut_ptr(), &mut keep)? };
    let obj = match keep.first() {
        Some(first) => first.clone_ref(value.py()),
        None => value.py().None(),
    };
    Ok(CArgObject { obj, _keep: keep, tag, jit: ctype.jit.clone(), value: slot })
}

/// The `_as_parameter_` of `value`, for the `from_param` methods' last resort.
fn as_parameter<'py>(value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    value.getattr_opt(intern!(value.py(), "_as_parameter_"))
}

/// Runs `from_param` again on `value._as_parameter_` if there is one, else fails with
/// `otherwise`.
fn retry_as_parameter<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
    otherwise: PyErr,
    from_param: fn(&Bound<'py, PyType>, &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match as_parameter(value)? {
        Some(inner) => {
            // CPython's own recursion limit stops `_as_parameter_` cycles, as in stock.
            // SAFETY: paired with Py_LeaveRecursiveCall below.
            let entered = unsafe {
                pyo3::ffi::Py_EnterRecursiveCall(c" while processing _as_parameter_".as_ptr())
            };
            if entered != 0 {
                return Err(PyErr::fetch(cls.py()));
            }
            let result = from_param(cls, &inner);
            // SAFETY: paired with the successful Py_EnterRecursiveCall above.
            unsafe { pyo3::ffi::Py_LeaveRecursiveCall() };
            result
        }
        None => Err(otherwise),
    }
}

fn scalar_code<'py>(cls: &Bound<'py, PyType>) -> PyResult<(Bound<'py, CType>, char)> {
    let ctype = class_ctype(cls)?;
    let tag =
        ctype.get().code().map_or('?', |(code, _)| code.letter().chars().next().unwrap_or('?'));
    Ok((ctype, tag))
}

/// `from_param` of the simple types (`c_int.from_param(5)`): an instance of the class as
/// it is, else a `CArgObject` with the value converted by the type's rules.
#[pyfunction]
pub fn simple_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if value.is_instance(cls)? {
        return Ok(value.clone());
    }
    let (ctype, tag) = scalar_code(cls)?;
    match scalar_arg(value, ctype.get(), tag) {
        Ok(carg) => Ok(Bound::new(cls.py(), carg)?.into_any()),
        // Stock 3.11 replaces the conversion's own error by "wrong type"; 3.12 keeps it.
        Err(error) => {
            let error = if cls.py().version_info() >= (3, 12) { error } else { wrong_type() };
            retry_as_parameter(cls, value, error, simple_from_param)
        }
    }
}

/// True if `value` is an array or pointer instance whose elements are of type code `code`
/// (`c_char` arrays pass as `c_char_p`).
fn has_element_code(value: &Bound<'_, PyAny>, code: Code) -> PyResult<bool> {
    if !(value.is_instance_of::<Array>() || value.is_instance_of::<Pointer>()) {
        return Ok(false);
    }
    let element = value.get_type().getattr(intern!(value.py(), "_type_"))?;
    element_code_is(&element, code)
}

fn element_code_is(element: &Bound<'_, PyAny>, code: Code) -> PyResult<bool> {
    let Ok(element) = element.downcast::<PyType>() else { return Ok(false) };
    let Ok(ctype) = class_ctype(element) else { return Ok(false) };
    Ok(matches!(ctype.get().code(), Some((found, _)) if found == code))
}

/// `byref(x)` where `x` is an instance of a type of code `code`.
fn is_byref_of_code(value: &Bound<'_, PyAny>, code: Code) -> PyResult<bool> {
    let Ok(carg) = value.downcast::<CArgObject>() else { return Ok(false) };
    let obj = carg.get().obj.bind(value.py());
    if !obj.is_instance_of::<CData>() {
        return Ok(false);
    }
    element_code_is(obj.get_type().as_any(), code)
}

/// `from_param` of `c_char_p` and `c_wchar_p`: None, bytes (str), instances, arrays of and
/// pointers to `c_char` (`c_wchar`), `byref()` of one.
fn string_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
    wide: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if value.is_none() {
        return Ok(Some(value.clone()));
    }
    let (tag, element) = if wide { ('Z', Code::WideChar) } else { ('z', Code::Char) };
    let matches_kind =
        if wide { value.is_instance_of::<PyString>() } else { value.is_instance_of::<PyBytes>() };
    if matches_kind {
        let code = if wide { "Z" } else { "z" };
        let ctype = CType::scalar_of(Code::from_letter(code).expect("string code"));
        return Ok(Some(Bound::new(cls.py(), scalar_arg(value, &ctype, tag)?)?.into_any()));
    }
    if value.is_instance(cls)?
        || has_element_code(value, element)?
        || is_byref_of_code(value, element)?
    {
        return Ok(Some(value.clone()));
    }
    Ok(None)
}

/// `c_char_p.from_param`.
#[pyfunction]
pub fn char_p_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    string_pointer_from_param(cls, value, false, char_p_from_param)
}

/// `c_wchar_p.from_param`.
#[pyfunction]
pub fn wchar_p_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    string_pointer_from_param(cls, value, true, wchar_p_from_param)
}

/// The body of both string pointers' `from_param` (`wide`: `c_wchar_p`), which is `this`.
fn string_pointer_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
    wide: bool,
    this: fn(&Bound<'py, PyType>, &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some(result) = string_from_param(cls, value, wide)? {
        return Ok(result);
    }
    let error = refused(value, if wide { "c_wchar_p" } else { "c_char_p" });
    retry_as_parameter(cls, value, error, this)
}

fn wrong_type() -> PyErr {
    PyTypeError::new_err("wrong type")
}

/// The error of a pointer type's `from_param` for `value`: "wrong type" until 3.12, from
/// 3.13 naming the value's type and the ctypes type `name`.
fn refused(value: &Bound<'_, PyAny>, name: &str) -> PyErr {
    if value.py().version_info() < (3, 13) {
        return wrong_type();
    }
    let type_name = value.get_type().name().map(|name| name.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!("'{type_name}' object cannot be interpreted as ctypes.{name}"))
}

/// `c_void_p.from_param`: None, ints, bytes, str, instances, any array or pointer,
/// `byref()`, function pointers, `c_char_p`/`c_wchar_p` instances.
#[pyfunction]
pub fn void_p_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    if value.is_none() {
        return Ok(value.clone());
    }
    let arg_of_code = |code: &str, tag: char| -> PyResult<Bound<'py, PyAny>> {
        let ctype = CType::scalar_of(Code::from_letter(code).expect("pointer code"));
        Ok(Bound::new(py, scalar_arg(value, &ctype, tag)?)?.into_any())
    };
    if value.is_instance_of::<PyInt>() {
        return arg_of_code("P", 'P');
    }
    if value.is_instance_of::<PyBytes>() {
        return arg_of_code("z", 'z');
    }
    if value.is_instance_of::<PyString>() {
        return arg_of_code("Z", 'Z');
    }
    if value.is_instance(cls)?
        || value.is_instance_of::<Array>()
        || value.is_instance_of::<Pointer>()
    {
        return Ok(value.clone());
    }
    if let Ok(carg) = value.downcast::<CArgObject>() {
        if carg.get().tag == 'P' {
            return Ok(value.clone());
        }
    }
    if let Ok(cdata) = value.downcast::<CData>() {
        let ctype = class_ctype(&cdata.get_type())?;
        let code = ctype.get().code().map(|(code, _)| code);
        let is_function = crate::funcptr::CFuncPtr::is_type_of(value);
        if is_function || matches!(code, Some(Code::CharPointer | Code::WideCharPointer)) {
            let address = {
                let data = cdata.borrow();
                // SAFETY: these objects' memory holds one pointer.
                unsafe { *(data.address() as *const u64) }
            };
            let tag = if is_function { 'P' } else { 'Z' };
            let carg = CArgObject {
                obj: value.clone().unbind(),
                _keep: KeepAlive::new(),
                tag,
                jit: Type::Pointer,
                value: Slot::from_u64(address),
            };
            return Ok(Bound::new(py, carg)?.into_any());
        }
    }
    retry_as_parameter(cls, value, refused(value, "c_void_p"), void_p_from_param)
}

/// `from_param` of structures, unions, arrays and function pointer types (ctypes'
/// `CDataType_from_param`): instances of the type, and `byref()` of them.
#[pyfunction]
pub fn cdata_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if value.is_instance(cls)? {
        return Ok(value.clone());
    }
    let py = cls.py();
    if let Ok(carg) = value.downcast::<CArgObject>() {
        let obj = carg.get().obj.bind(py);
        if let Some(target) = class_getattr_opt(cls, intern!(py, "_type_"))? {
            if target.is_instance_of::<PyType>() && obj.is_instance(&target)? {
                return Ok(value.clone());
            }
        }
        return Err(PyTypeError::new_err(format!(
            "expected {} instance instead of pointer to {}",
            cls.name()?,
            obj.get_type().name()?
        )));
    }
    let error = PyTypeError::new_err(format!(
        "expected {} instance instead of {}",
        cls.name()?,
        value.get_type().name()?
    ));
    retry_as_parameter(cls, value, error, cdata_from_param)
}

/// `from_param` of pointer types `POINTER(T)`: None, a `T` instance (passed by
/// reference), pointers and arrays of `T` or a subclass, then as `cdata_from_param`.
#[pyfunction]
pub fn pointer_from_param<'py>(
    cls: &Bound<'py, PyType>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    if value.is_none() {
        return Ok(value.clone());
    }
    if let Some(target) = class_getattr_opt(cls, intern!(py, "_type_"))? {
        if let Ok(target) = target.downcast::<PyType>() {
            if value.is_instance(target)? {
                let cdata = value.downcast::<CData>()?;
                let address = cdata.borrow().address();
                return Ok(Bound::new(
                    py,
                    CArgObject::pointer_into(value.clone().unbind(), address),
                )?
                .into_any());
            }
            if value.is_instance_of::<Array>() || value.is_instance_of::<Pointer>() {
                let element = value.get_type().getattr(intern!(py, "_type_"))?;
                if let Ok(element) = element.downcast::<PyType>() {
                    if element.is_subclass(target)? {
                        return Ok(value.clone());
                    }
                }
            }
        }
    }
    cdata_from_param(cls, value)
}

/// Registers the `from_param` functions the metaclasses install as class methods.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<CArgObject>()?;
    let py = module.py();
    if py.version_info() < (3, 12) {
        // Stock 3.11's type is named plain "CArgObject" (module `builtins`); 3.12 moved it
        // to `_ctypes`. Bindings dispatch on the qualified name of `type(byref(x))`.
        let carg = py.get_type::<CArgObject>();
        // SAFETY: our own heap type, whose dict is written before any instance exists;
        // `PyType_Modified` drops what the type caches saw.
        unsafe {
            let dict = (*carg.as_type_ptr()).tp_dict;
            let status = pyo3::ffi::PyDict_SetItem(
                dict,
                pyo3::intern!(py, "__module__").as_ptr(),
                pyo3::intern!(py, "builtins").as_ptr(),
            );
            if status < 0 {
                return Err(PyErr::fetch(py));
            }
            // `repr` of a type in `builtins` prints its C name.
            (*carg.as_type_ptr()).tp_name = c"CArgObject".as_ptr();
            pyo3::ffi::PyType_Modified(carg.as_type_ptr());
        }
    }
    module.add_function(wrap_pyfunction!(simple_from_param, module)?)?;
    module.add_function(wrap_pyfunction!(char_p_from_param, module)?)?;
    module.add_function(wrap_pyfunction!(wchar_p_from_param, module)?)?;
    module.add_function(wrap_pyfunction!(void_p_from_param, module)?)?;
    module.add_function(wrap_pyfunction!(cdata_from_param, module)?)?;
    module.add_function(wrap_pyfunction!(pointer_from_param, module)?)?;
    Ok(())
}
