//! What the ctypes metaclasses do once per class, in Rust: programs such as pyglet define
//! hundreds of structures, arrays and pointer types at start-up, and in Python this work
//! cost two to three times what stock ctypes' C metaclasses spend. The metaclasses
//! themselves stay in Python (`jitctypes._ctypes`): they make the class, call one function
//! here, and keep the rare paths (`_anonymous_`, char array properties).
//!
//! Each function records what the Rust side reads later, with `type.__setattr__`: the
//! class's `__ctype__`, `_jitctypes_*` bookkeeping, and its PEP 3118 buffer format.

use pyo3::exceptions::{PyAttributeError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString, PyTuple, PyType};
use rawffi::layout::LayoutKind;

use crate::cdata::{class_ctype, class_getattr_opt, BufferFormat};
use crate::ctype::CType;
use crate::field::{CField, ElementInfo};
use crate::known_types::{as_ctype, derives_from, is_cdata_class, Base};
use crate::layout::{lay_out, layout_kind, PyLayout};

/// What the structure metaclass does when `_fields_` is set (`cls._fields_ = fields`, also
/// in the class body), with stock ctypes' checks and messages: lays the fields out after
/// those of `base` (the nearest structure base with fields, or None), puts one `CField`
/// descriptor per field on `cls`, and records the class's `CType`, flags, field names and
/// PEP 3118 format. In Rust because programs define hundreds of structures at start-up;
/// `_anonymous_` and the finality check stay in Python (`jitctypes._ctypes.structure`).
/// `aggregate_metaclass` is the metaclass of structures and unions, whose field types
/// become final; `align` is `_align_` (3.13+, else None).
#[pyfunction]
#[pyo3(signature = (cls, fields, kind, base, aggregate_metaclass, align))]
pub fn define_fields(
    cls: &Bound<'_, PyType>,
    fields: &Bound<'_, PyAny>,
    kind: &str,
    base: Option<Bound<'_, PyType>>,
    aggregate_metaclass: &Bound<'_, PyType>,
    align: Option<usize>,
) -> PyResult<()> {
    let py = cls.py();
    let kind = layout_kind(kind)?;
    let fields = sequence_of_fields(fields)?;
    let base_names: Vec<Bound<'_, PyAny>> = match &base {
        Some(base) => base
            .getattr(intern!(py, "_jitctypes_field_names_"))?
            .try_iter()?
            .collect::<PyResult<_>>()?,
        None => Vec::new(),
    };
    let pack = pack_of(cls)?;
    let mut members = Vec::with_capacity(fields.len());
    let mut declared = Vec::with_capacity(fields.len());
    for (index, item) in fields.iter().enumerate() {
        let field = FieldDecl::of(cls, item, index)?;
        if field.field_type.is_instance(aggregate_metaclass)? {
            set_type_attr(
                &field.field_type,
                intern!(py, "_jitctypes_final_"),
                PyBool::new(py, true).as_any(),
            )?;
        }
        members.push((field.ctype.clone(), field.bits));
        declared.push(field);
    }
    let swapped = class_getattr_opt(cls, intern!(py, "_swappedbytes_"))?.is_some();
    let base_ctype = base.as_ref().map(class_ctype).transpose()?;
    let base_size = base_ctype.as_ref().map_or(0, |ctype| ctype.get().size);
    let layout = lay_out(py, kind, &members, pack, swapped, base_ctype, align)?;
    install_field_descriptors(cls, &declared, &layout, base_names.len())?;
    set_type_attr(cls, intern!(py, "__ctype__"), layout.ctype.bind(py).as_any())?;
    let has_pointer = has_pointer(py, &declared, base.as_ref())?;
    set_type_attr(
        cls,
        intern!(py, "_jitctypes_has_pointer_"),
        PyBool::new(py, has_pointer).as_any(),
    )?;
    let names: Vec<Bound<'_, PyAny>> = base_names
        .into_iter()
        .chain(declared.iter().map(|field| field.name.clone().into_any()))
        .collect();
    set_type_attr(cls, intern!(py, "_jitctypes_field_names_"), PyTuple::new(py, names)?.as_any())?;
    let format = aggregate_format(py, kind, pack.is_some(), &declared, &layout, base_size)?;
    install_buffer_format(cls, format.as_deref(), Vec::new(), layout.size)?;
    set_type_attr(cls, intern!(py, "_jitctypes_final_"), PyBool::new(py, true).as_any())
}

/// One `CField` per declared field, at its place in `layout`; indices count the base's
/// `first_index` fields first.
fn install_field_descriptors(
    cls: &Bound<'_, PyType>,
    declared: &[FieldDecl<'_>],
    layout: &PyLayout,
    first_index: usize,
) -> PyResult<()> {
    for (position, (field, (offset, _size, bits))) in
        declared.iter().zip(&layout.fields).enumerate()
    {
        let access = field_access(&field.field_type)?;
        let descriptor = CField::new(
            field.field_type.clone(),
            field.ctype.clone(),
            *offset,
            first_index + position,
            access,
            *bits,
        )?;
        set_type_attr(cls, &field.name, Bound::new(cls.py(), descriptor)?.as_any())?;
    }
    Ok(())
}

/// True if a field (or the base) holds a pointer: stock refuses to pickle such instances.
fn has_pointer(
    py: Python<'_>,
    declared: &[FieldDecl<'_>],
    base: Option<&Bound<'_, PyType>>,
) -> PyResult<bool> {
    let flag = intern!(py, "_jitctypes_has_pointer_");
    for cls in declared.iter().map(|field| &field.field_type).chain(base) {
        if class_flag(cls, flag)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One `(name, type[, bits])` item of `_fields_`, checked.
struct FieldDecl<'py> {
    name: Bound<'py, PyString>,
    field_type: Bound<'py, PyType>,
    ctype: Bound<'py, CType>,
    bits: Option<u32>,
}

impl<'py> FieldDecl<'py> {
    fn of(cls: &Bound<'py, PyType>, item: &Bound<'py, PyAny>, index: usize) -> PyResult<Self> {
        let item = item.downcast::<PyTuple>().map_err(|_| not_pairs())?;
        if !(2..=3).contains(&item.len()) {
            return Err(not_pairs());
        }
        let name = item.get_item(0)?.downcast_into::<PyString>().map_err(|_| not_pairs())?;
        // Stock parses the item as (str, object[, C int]) before looking at the type.
        let bits = match item.len() {
            3 => {
                // A C int, from an int or any object with `__index__` (stock's "i").
                Some(item.get_item(2)?.extract::<i32>().map_err(|_| not_pairs())?)
            }
            _ => None,
        };
        let field_type = item.get_item(1)?;
        let not_c_type = || {
            PyTypeError::new_err(format!(
                "second item in _fields_ tuple (index {index}) must be a C type"
            ))
        };
        let field_type = field_type.downcast_into::<PyType>().map_err(|_| not_c_type())?;
        if !is_cdata_class(&field_type) {
            return Err(not_c_type());
        }
        let ctype = class_getattr_opt(&field_type, intern!(cls.py(), "__ctype__"))?
            .and_then(|ctype| as_ctype(&ctype).cloned())
            .ok_or_else(not_c_type)?;
        let bits = bits.map(|bits| checked_bits(&field_type, &ctype, bits)).transpose()?;
        if field_type.is(cls) {
            return Err(PyAttributeError::new_err("Structure or union cannot contain itself"));
        }
        Ok(FieldDecl { name, field_type, ctype, bits })
    }
}

/// The items of `fields`, which must be a sequence (with a length, as stock asks),
/// else stock's message.
fn sequence_of_fields<'py>(fields: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let py = fields.py();
    // SAFETY: a live object; -1 means an error is set.
    let length = unsafe { pyo3::ffi::PySequence_Size(fields.as_ptr()) };
    if length < 0 {
        let error = PyErr::fetch(py);
        if error.is_instance_of::<PyTypeError>(py) {
            return Err(PyTypeError::new_err("'_fields_' must be a sequence of pairs"));
        }
        return Err(error);
    }
    // Stock reads each item with `PySequence_GetItem`: any failure is its "pairs" error.
    (0..length as usize).map(|index| fields.get_item(index).map_err(|_| not_pairs())).collect()
}

fn not_pairs() -> PyErr {
    PyTypeError::new_err("'_fields_' must be a sequence of (name, C type) pairs")
}

/// `_pack_` (None when absent or 0): a C int from 0 to `INT_MAX`, else stock's `ValueError`.
fn pack_of(cls: &Bound<'_, PyType>) -> PyResult<Option<usize>> {
    let Some(pack) = class_getattr_opt(cls, intern!(cls.py(), "_pack_"))? else { return Ok(None) };
    // A C int, from an int or any object with `__index__` (stock's `_PyLong_AsInt`).
    let pack = pack.extract::<i32>().ok();
    match pack {
        // Past the largest alignment a C type has, packing changes nothing: stock takes
        // such values, and they lay out as 16 does.
        Some(pack) if pack >= 0 => {
            Ok(Some((pack as usize).min(rawffi::layout::MAX_PACK)).filter(|&pack| pack != 0))
        }
        _ => Err(PyValueError::new_err("_pack_ must be a non-negative integer")),
    }
}

/// The width of a bit-field of `field_type`: integer types only, 1 to the type's bits.
fn checked_bits(
    field_type: &Bound<'_, PyType>,
    ctype: &Bound<'_, CType>,
    bits: i32,
) -> PyResult<u32> {
    const INTEGER_CODES: &str = "bBhHiIlLqQ?";
    let code = class_getattr_opt(field_type, intern!(field_type.py(), "_type_"))?;
    let is_integer = code
        .as_ref()
        .and_then(|code| code.downcast::<PyString>().ok())
        .and_then(|code| {
            code.to_str().ok().map(|code| code.len() == 1 && INTEGER_CODES.contains(code))
        })
        .unwrap_or(false);
    if !is_integer {
        let name = field_type.name()?;
        return Err(PyTypeError::new_err(format!("bit fields not allowed for type {name}")));
    }
    if !(1..=8 * ctype.get().size as i64).contains(&(bits as i64)) {
        return Err(PyValueError::new_err("number of bits invalid for bit field"));
    }
    Ok(bits as u32)
}

/// How the field's descriptor presents it (see field.rs): plain values for basic simple
/// types; bytes/str for arrays of `c_char`/`c_wchar` or of their subclasses (stock tells
/// them by the element's getfunc, which subclasses share); otherwise views of the memory.
fn field_access(field_type: &Bound<'_, PyType>) -> PyResult<&'static str> {
    let py = field_type.py();
    if is_basic(field_type)? {
        return Ok("value");
    }
    if derives_from(field_type) == Base::Array {
        if let Some(element) = class_getattr_opt(field_type, intern!(py, "_type_"))? {
            if let Ok(element) = element.downcast::<PyType>() {
                match simple_code(element)?.as_deref() {
                    Some("c") => return Ok("chars"),
                    Some("u") => return Ok("wchars"),
                    _ => {}
                }
            }
        }
    }
    Ok("view")
}

/// True for the basic simple types (`c_int`, not a subclass of it): their values read as
/// plain Python values.
fn is_basic(cls: &Bound<'_, PyType>) -> PyResult<bool> {
    let flag = class_getattr_opt(cls, intern!(cls.py(), "_jitctypes_basic_"))?;
    flag.map_or(Ok(false), |flag| flag.is_truthy())
}

/// The type code of a simple type (a subclass of one included), None for other classes.
fn simple_code(cls: &Bound<'_, PyType>) -> PyResult<Option<String>> {
    if derives_from(cls) != Base::Simple {
        return Ok(None);
    }
    match class_getattr_opt(cls, intern!(cls.py(), "_type_"))? {
        Some(code) => Ok(code.downcast::<PyString>().ok().map(|code| code.to_string())),
        None => Ok(None),
    }
}

/// The PEP 3118 format of a structure (`T{<i:a:<d:b:}`), None where stock exports plain
/// bytes: unions, and before 3.12 packed structures. From 3.12 stock also writes the
/// padding between and after members (`3x`), from the end of the base structure's
/// fields (`base_size`): the base's own fields are not listed, as in stock.
fn aggregate_format(
    py: Python<'_>,
    kind: LayoutKind,
    packed: bool,
    fields: &[FieldDecl<'_>],
    layout: &PyLayout,
    base_size: usize,
) -> PyResult<Option<String>> {
    let with_padding = py.version_info() >= (3, 12);
    if kind != LayoutKind::Struct || (packed && !with_padding) {
        return Ok(None);
    }
    let padding = |count: usize| if count == 1 { "x".to_owned() } else { format!("{count}x") };
    let mut format = String::from("T{");
    let mut end = base_size;
    for (field, (offset, _size, _bits)) in fields.iter().zip(&layout.fields) {
        if with_padding && *offset > end {
            format.push_str(&padding(offset - end));
        }
        format.push_str(&member_format(&field.field_type)?);
        format.push(':');
        // The name as a C string: up to a NUL in it.
        format.push_str(field.name.to_str()?.split('\0').next().unwrap_or_default());
        format.push(':');
        end = offset + field.ctype.get().size;
    }
    if with_padding && layout.size > end && !fields.is_empty() {
        format.push_str(&padding(layout.size - end));
    }
    format.push('}');
    Ok(Some(format))
}

/// The format of `member` inside another format: its shape, then its own format.
fn member_format(member: &Bound<'_, PyType>) -> PyResult<String> {
    let py = member.py();
    let mut text = String::new();
    if let Some(shape) = class_getattr_opt(member, intern!(py, "_jitctypes_shape_"))? {
        let dimensions: Vec<String> = shape
            .try_iter()?
            .map(|dimension| dimension.map(|dimension| dimension.to_string()))
            .collect::<PyResult<_>>()?;
        if !dimensions.is_empty() {
            text = format!("({})", dimensions.join(","));
        }
    }
    text.push_str(own_format(member)?.as_deref().unwrap_or("B"));
    Ok(text)
}

/// The format recorded for `cls`, None when it has none (it exports plain bytes).
fn own_format(cls: &Bound<'_, PyType>) -> PyResult<Option<String>> {
    match class_getattr_opt(cls, intern!(cls.py(), "_jitctypes_format_"))? {
        Some(format) if format.is_truthy()? => Ok(Some(format.extract()?)),
        _ => Ok(None),
    }
}

/// What simple, function pointer and not yet laid out structure types export through the
/// buffer protocol: `format` (None: plain bytes, `"B"`), no shape, their size as item size.
#[pyfunction]
#[pyo3(name = "install_buffer_format")]
pub fn install_scalar_buffer_format(cls: &Bound<'_, PyType>, format: Option<&str>) -> PyResult<()> {
    let size = class_ctype(cls)?.get().size;
    install_buffer_format(cls, format, Vec::new(), size)
}

/// Records the PEP 3118 format of `cls` (None: plain bytes), its shape and item size, and
/// the `BufferFormat` its instances export (`__getbuffer__`).
fn install_buffer_format(
    cls: &Bound<'_, PyType>,
    format: Option<&str>,
    shape: Vec<isize>,
    itemsize: usize,
) -> PyResult<()> {
    let py = cls.py();
    set_type_attr(cls, intern!(py, "_jitctypes_format_"), format.into_pyobject(py)?.as_any())?;
    set_type_attr(cls, intern!(py, "_jitctypes_shape_"), PyTuple::new(py, &shape)?.as_any())?;
    set_type_attr(cls, intern!(py, "_jitctypes_itemsize_"), itemsize.into_pyobject(py)?.as_any())?;
    let buffer = BufferFormat::new(format.unwrap_or("B"), shape, itemsize)?;
    set_type_attr(cls, intern!(py, "_jitctypes_buffer_"), Bound::new(py, buffer)?.as_any())
}

/// `type.__setattr__(cls, name, value)`: past any metaclass `__setattr__`, as the
/// metaclasses set their own bookkeeping.
fn set_type_attr(
    cls: &Bound<'_, PyType>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: `type`'s own setattr slot on a live type, with a str name and a live value.
    let status = unsafe {
        let setattro = (*std::ptr::addr_of_mut!(pyo3::ffi::PyType_Type))
            .tp_setattro
            .expect("type has tp_setattro");
        setattro(cls.as_ptr(), name.as_ptr(), value.as_ptr())
    };
    if status < 0 {
        return Err(PyErr::fetch(cls.py()));
    }
    Ok(())
}

/// What the array metaclass does for `element * length` and every `Array` subclass:
/// checks `_length_` and `_type_` with stock's messages, records the array's `CType`,
/// buffer format and `ElementInfo`, and installs the C `__init__` and item slots unless
/// the class defines its own. Returns the element's type code if it is a character,
/// `"c"` or `"u"` (also for subclasses of `c_char`/`c_wchar`, as stock tells them by their
/// shared getfunc): such arrays get `value` (and `raw`) from the metaclass.
#[pyfunction]
pub fn define_array(cls: &Bound<'_, PyType>) -> PyResult<Option<&'static str>> {
    let py = cls.py();
    let length = array_length(cls)?;
    let element = match cls.getattr(intern!(py, "_type_")) {
        Ok(element) => element,
        Err(error) if error.is_instance_of::<PyAttributeError>(py) => {
            return Err(PyAttributeError::new_err("class must define a '_type_' attribute"))
        }
        Err(error) => return Err(error),
    };
    let (element, element_ctype) = storage_of(&element)?;
    let element_size = element_ctype.get().size;
    if element_size != 0 && length > isize::MAX as usize / element_size {
        return Err(PyOverflowError::new_err("array too large"));
    }
    let ctype = CType::array(element_ctype.clone(), length)?;
    set_type_attr(cls, intern!(py, "__ctype__"), Bound::new(py, ctype)?.as_any())?;
    let mut shape = vec![length as isize];
    if let Some(inner) = class_getattr_opt(&element, intern!(py, "_jitctypes_shape_"))? {
        for dimension in inner.try_iter()? {
            shape.push(dimension?.extract()?);
        }
    }
    let itemsize = match class_getattr_opt(&element, intern!(py, "_jitctypes_itemsize_"))? {
        Some(itemsize) => itemsize.extract()?,
        None => element_ctype.get().size,
    };
    let format = own_format(&element)?;
    install_buffer_format(cls, Some(format.as_deref().unwrap_or("B")), shape, itemsize)?;
    let array_base = py.get_type::<crate::array::Array>();
    if !overrides(cls, &array_base, &["__init__"])? {
        crate::slots::enable_fast_init(cls)?;
    }
    if !overrides(cls, &array_base, &["__getitem__", "__setitem__"])? {
        crate::slots::enable_fast_getitem(cls)?;
    }
    let access = element_access(&element)?;
    let elements = ElementInfo::new(element.clone(), access, length)?;
    set_type_attr(cls, intern!(py, "_jitctypes_elements_"), Bound::new(py, elements)?.as_any())?;
    let flag = intern!(py, "_jitctypes_has_pointer_");
    set_type_attr(cls, flag, PyBool::new(py, class_flag(&element, flag)?).as_any())?;
    Ok(match simple_code(&element)?.as_deref() {
        Some("c") => Some("c"),
        Some("u") => Some("u"),
        _ => None,
    })
}

/// `_length_` of an array class, checked as stock does.
fn array_length(cls: &Bound<'_, PyType>) -> PyResult<usize> {
    let py = cls.py();
    let length = match cls.getattr(intern!(py, "_length_")) {
        Ok(length) => length,
        Err(error) if error.is_instance_of::<PyAttributeError>(py) => {
            return Err(PyAttributeError::new_err("class must define a '_length_' attribute"))
        }
        Err(error) => return Err(error),
    };
    if !length.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err("The '_length_' attribute must be an integer"));
    }
    // The sign first, then the size, as stock checks them; read from the int itself, never
    // through an int subclass's own comparison.
    let mut overflow = 0;
    // SAFETY: a live int (checked above); no error is set for an int.
    let value = unsafe { pyo3::ffi::PyLong_AsLongLongAndOverflow(length.as_ptr(), &mut overflow) };
    match (overflow, value) {
        (0, value) if value >= 0 => Ok(value as usize),
        (1, _) => Err(PyOverflowError::new_err("The '_length_' attribute is too large")),
        _ => Err(PyValueError::new_err("The '_length_' attribute must not be negative")),
    }
}

/// What the pointer metaclass does for `POINTER(T)` and every `_Pointer` subclass: the
/// pointer `CType`, the target if the class names one (`_type_`; else the type is
/// incomplete until `SetPointerType`), and the C `__init__` and item slots unless the
/// class defines its own.
#[pyfunction]
#[pyo3(signature = (cls, target = None))]
pub fn define_pointer(cls: &Bound<'_, PyType>, target: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let py = cls.py();
    set_type_attr(cls, intern!(py, "__ctype__"), Bound::new(py, CType::pointer())?.as_any())?;
    set_type_attr(cls, intern!(py, "_jitctypes_has_pointer_"), PyBool::new(py, true).as_any())?;
    match target {
        Some(target) => {
            set_pointer_target(cls, target)?;
            let format = format!("&{}", member_format(target.downcast::<PyType>()?)?);
            install_buffer_format(cls, Some(&format), Vec::new(), 8)?;
        }
        None => {
            // Plain bytes, also once `SetPointerType` completes it, as in stock ctypes.
            install_buffer_format(cls, None, Vec::new(), 8)?;
            // Only a class that names its own target can make instances (stock's rule).
            set_type_attr(
                cls,
                intern!(py, "_jitctypes_complete_"),
                PyBool::new(py, false).as_any(),
            )?;
        }
    }
    let pointer_base = py.get_type::<crate::pointer::Pointer>();
    if !overrides(cls, &pointer_base, &["__getitem__", "__setitem__"])? {
        crate::slots::enable_fast_getitem(cls)?;
    }
    if !overrides(cls, &pointer_base, &["__init__"])? {
        crate::slots::enable_fast_init(cls)?;
    }
    Ok(())
}

/// Sets the target of the pointer type `cls` (also `SetPointerType`'s completion of an
/// incomplete one, which leaves its buffer format alone, as stock does).
#[pyfunction]
pub fn set_pointer_target(cls: &Bound<'_, PyType>, target: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = cls.py();
    if !target.is_instance_of::<PyType>() {
        return Err(PyTypeError::new_err("_type_ must be a type"));
    }
    let (target, _ctype) = storage_of(target)?;
    set_type_attr(cls, intern!(py, "_type_"), target.as_any())?;
    let access = element_access(&target)?;
    let elements = ElementInfo::pointer_target(target.clone(), access)?;
    set_type_attr(cls, intern!(py, "_jitctypes_elements_"), Bound::new(py, elements)?.as_any())?;
    set_type_attr(cls, intern!(py, "_jitctypes_complete_"), PyBool::new(py, true).as_any())
}

/// `element` as a ctypes class with a C type, or stock's "_type_ must have storage info".
fn storage_of<'py>(
    element: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyType>, Bound<'py, CType>)> {
    let no_storage = || PyTypeError::new_err("_type_ must have storage info");
    let element = element.downcast::<PyType>().map_err(|_| no_storage())?;
    if !is_cdata_class(element) {
        return Err(no_storage());
    }
    let ctype = class_getattr_opt(element, intern!(element.py(), "__ctype__"))?
        .and_then(|ctype| as_ctype(&ctype).cloned())
        .ok_or_else(no_storage)?;
    Ok((element.clone(), ctype))
}

/// True if a class between `cls` and its Rust base `rust_base` defines one of `names`
/// (then the Rust fast slot for it must not be installed).
fn overrides(
    cls: &Bound<'_, PyType>,
    rust_base: &Bound<'_, PyType>,
    names: &[&str],
) -> PyResult<bool> {
    let py = cls.py();
    for klass in cls.getattr(intern!(py, "__mro__"))?.downcast_into::<PyTuple>()? {
        if klass.is(rust_base) {
            return Ok(false);
        }
        let namespace = klass.getattr(intern!(py, "__dict__"))?;
        for name in names {
            if namespace.contains(*name)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// How an array element or pointer target reads: basic simple types as plain values
/// (`c_char`/`c_wchar` elements as bytes/str, also in slices: "chars"/"wchars"), every
/// other type as views, arrays of chars included (stock converts those only in fields).
fn element_access(element: &Bound<'_, PyType>) -> PyResult<&'static str> {
    if !is_basic(element)? {
        return Ok("view");
    }
    Ok(match simple_code(element)?.as_deref() {
        Some("c") => "chars",
        Some("u") => "wchars",
        _ => "value",
    })
}

/// A `_jitctypes_has_*_` flag of a class (False when absent).
fn class_flag(cls: &Bound<'_, PyType>, flag: &Bound<'_, PyString>) -> PyResult<bool> {
    class_getattr_opt(cls, flag)?.map_or(Ok(false), |value| value.is_truthy())
}
