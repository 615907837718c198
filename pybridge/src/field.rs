//! `CField`: the descriptor of one structure or union field (`Struct.x`), doing the per
//! access work in Rust — reading and writing the value at the instance's address plus the
//! field's offset, with stock ctypes' rules for what comes back and what is accepted.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use rawffi::layout::{read_bitfield, write_bitfield, BitField};
use rawffi::memory::{read_uint, write_uint};

use crate::cdata::{at_address, class_attr, class_getattr_opt, keep_ref, CData};
use crate::convert::{load, store, wide_str_from_ptr, KeepAlive};
use crate::ctype::{CType, Code, Shape};
use crate::scalar::FastScalar;

/// What reading the field gives Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The plain value (a basic simple type: `c_int` → int).
    Value,
    /// An instance of the field's type viewing the parent's memory (structures, arrays,
    /// pointers, user subclasses of simple types).
    View,
    /// `c_char * n`: bytes up to the first NUL.
    Chars,
    /// `c_wchar * n`: str up to the first NUL.
    WideChars,
}

impl CField {
    /// Made by the structure metaclass (`make_field`) from `rawffi`'s layout: `access` is
    /// "value", "view", "chars" or "wchars"; `bits` is `(shift, width, window size)`.
    pub fn new(
        field_type: Bound<'_, PyType>,
        ctype: Bound<'_, CType>,
        offset: usize,
        index: usize,
        access: &str,
        bits: Option<BitSpec>,
    ) -> PyResult<CField> {
        let access = Access::from_name(access)?;
        let bits = match bits {
            Some((shift, width, window)) => {
                let signed = matches!(ctype.get().code(), Some((code, _)) if code.is_signed());
                Some((BitField { shift, width, signed }, window))
            }
            None => None,
        };
        let size = match &bits {
            // Stock's bit offset counts from the least significant bit of the native unit.
            Some((bits, _)) => ((bits.width as usize) << 16) | bits.shift as usize,
            None => ctype.get().size,
        };
        let fast = (access == Access::Value && bits.is_none())
            .then(|| FastScalar::of(ctype.get()))
            .flatten();
        Ok(CField {
            offset,
            size,
            index,
            field_type: field_type.unbind(),
            ctype: ctype.unbind(),
            bits,
            access,
            fast,
        })
    }
}

/// `make_field(field_type, ctype, offset, index, access, bits=None)`: a new `CField` (the
/// class itself cannot be instantiated from Python, as stock's since 3.13).
#[pyfunction]
#[pyo3(signature = (field_type, ctype, offset, index, access, bits = None))]
pub fn make_field<'py>(
    field_type: Bound<'py, PyType>,
    ctype: Bound<'py, CType>,
    offset: usize,
    index: usize,
    access: &str,
    bits: Option<BitSpec>,
) -> PyResult<Bound<'py, CField>> {
    let py = field_type.py();
    Bound::new(py, CField::new(field_type, ctype, offset, index, access, bits)?)
}

/// Stock's error for a field read, written or deleted through another object.
fn not_an_instance() -> PyErr {
    PyTypeError::new_err("not a ctype instance")
}

/// A bit-field as Python passes it: `(shift, width, window size)`.
pub type BitSpec = (u32, u32, usize);

/// What `field_parts` returns: `(field type, CType, offset, index, access, bits)`.
type FieldParts = (Py<PyType>, Py<CType>, usize, usize, &'static str, Option<BitSpec>);

#[pyclass(frozen, module = "_ctypes", name = "CField")]
pub struct CField {
    #[pyo3(get)]
    offset: usize,
    /// Bytes of the field, or for a bit-field stock's encoding `(width << 16) | bit offset`.
    #[pyo3(get)]
    size: usize,
    index: usize,
    field_type: Py<PyType>,
    ctype: Py<CType>,
    bits: Option<(BitField, usize)>,
    access: Access,
    /// Plain values of a kind `scalar.rs` reads and writes directly (slots.rs).
    fast: Option<FastScalar>,
}

impl Access {
    /// The access the metaclasses name: "value", "view", "chars" or "wchars".
    pub fn from_name(name: &str) -> PyResult<Access> {
        Ok(match name {
            "value" => Access::Value,
            "view" => Access::View,
            "chars" => Access::Chars,
            "wchars" => Access::WideChars,
            other => return Err(PyValueError::new_err(format!("unknown member access {other:?}"))),
        })
    }
}

/// One field or array element: where it is and how Python sees it. Shared by `CField` and
/// arrays, so both follow stock's rules for what reading gives and writing accepts.
pub struct Member<'a, 'py> {
    pub member_type: &'a Bound<'py, PyType>,
    pub ctype: &'a CType,
    pub access: Access,
    pub bits: Option<(BitField, usize)>,
    /// The position in the parent, for views (`_b_index`) and kept objects.
    pub index: usize,
}

impl Member<'_, '_> {
    /// The value at `address` inside `parent`'s memory.
    pub fn read(&self, parent: &Bound<'_, PyAny>, address: usize) -> PyResult<PyObject> {
        let py = parent.py();
        let ctype = self.ctype;
        match self.access {
            Access::Value => match &self.bits {
                // SAFETY: the window lies inside the parent's memory (layout contract).
                Some((bits, window)) => unsafe { get_bitfield(py, ctype, address, bits, *window) },
                // SAFETY: the field lies inside the parent's memory.
                None => unsafe { load(py, ctype, address as *const u8) },
            },
            Access::View => {
                let view = at_address(
                    self.member_type,
                    address,
                    Some(parent.clone().unbind()),
                    self.index,
                )?;
                Ok(view.unbind())
            }
            // SAFETY: the array lies inside the parent's memory.
            Access::Chars => {
                Ok(unsafe { chars_up_to_nul(py, address, ctype.size) }.into_any().unbind())
            }
            // SAFETY: as above.
            Access::WideChars => unsafe { wide_chars_up_to_nul(py, address, ctype.size) },
        }
    }

    /// Writes `value` at `address` inside `parent`'s memory and keeps what it needs.
    pub fn write(
        &self,
        parent: &Bound<'_, CData>,
        address: usize,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = parent.py();
        let ctype = self.ctype;
        let field_type = self.member_type;
        let mut keep = KeepAlive::new();
        match self.access {
            Access::Chars => set_chars(value, address, ctype.size, true)?,
            Access::WideChars => set_wide_chars(value, address, ctype.size)?,
            _ if crate::known_types::as_cdata(value).is_some() => {
                let source = value.downcast::<CData>()?;
                let source_address = source.borrow().address();
                if value.is_instance(field_type)? {
                    // SAFETY: both are `ctype.size` bytes of C memory of the same type.
                    unsafe {
                        std::ptr::copy(source_address as *const u8, address as *mut u8, ctype.size)
                    };
                    keep.extend(CData::container_objects(source)?);
                } else if ctype.is_pointer_type && array_of_target(value, field_type)? {
                    // An array stored in a pointer field decays to a pointer to its first
                    // element; the array itself (and what it keeps) must then stay alive.
                    // SAFETY: a pointer field holds one pointer.
                    unsafe { write_uint(address as *mut u8, 8, source_address as u64, false) };
                    let kept = CData::container_objects(source)?.unwrap_or_else(|| py.None());
                    keep.push(
                        PyTuple::new(py, [kept, value.clone().unbind()])?.into_any().unbind(),
                    );
                } else {
                    return Err(PyTypeError::new_err(format!(
                        "incompatible types, {} instance instead of {} instance",
                        value.get_type().name()?,
                        field_type.name()?
                    )));
                }
            }
            _ if ctype.is_pointer_type && value.is_none() => {
                // SAFETY: a pointer field holds one pointer.
                unsafe { write_uint(address as *mut u8, 8, 0, false) };
            }
            _ if matches!(ctype.shape, Shape::Scalar { .. }) && !ctype.is_pointer_type => {
                match &self.bits {
                    Some((bits, window)) => {
                        set_bitfield(value, ctype, address, bits, *window)?;
                    }
                    // SAFETY: the field lies inside the parent's memory.
                    None => unsafe { store(value, ctype, address as *mut u8, &mut keep)? },
                }
            }
            _ if value.is_instance_of::<PyTuple>() => {
                // Stock ctypes builds the field's type from a tuple, and reports a failure
                // as a RuntimeError naming that type.
                let converted =
                    field_type.call1(value.downcast::<PyTuple>()?).map_err(|error| {
                        let class =
                            error.get_type(py).name().map(|n| n.to_string()).unwrap_or_default();
                        let message = error.value(py).to_string();
                        let name = field_type.name().map(|n| n.to_string()).unwrap_or_default();
                        pyo3::exceptions::PyRuntimeError::new_err(format!(
                            "({name}) {class}: {message}"
                        ))
                    })?;
                return self.write(parent, address, &converted);
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "expected {} instance, got {}",
                    field_type.name()?,
                    value.get_type().name()?
                )))
            }
        }
        keep_ref(parent, self.index, keep)
    }
}

/// True if `value` is an array whose element type is exactly the target of the pointer
/// type `pointer_type` (stock lets such arrays be stored in pointer fields).
fn array_of_target(value: &Bound<'_, PyAny>, pointer_type: &Bound<'_, PyType>) -> PyResult<bool> {
    if !value.is_instance_of::<crate::array::Array>() {
        return Ok(false);
    }
    let py = value.py();
    let element = value.get_type().getattr(intern!(py, "_type_"))?;
    match class_getattr_opt(pointer_type, intern!(py, "_type_"))? {
        Some(target) => Ok(element.is(&target)),
        None => Ok(false),
    }
}

/// The elements an array holds or a pointer points at: their class, C type and access,
/// as the metaclass recorded them on the array or pointer class.
pub struct Elements<'py> {
    pub element_type: Bound<'py, PyType>,
    pub element_ctype: Bound<'py, CType>,
    access: Access,
    len: usize,
}

/// What an array or pointer class's elements are, recorded once by its metaclass as
/// `_jitctypes_elements_`: an element access then looks up one class attribute, not four.
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct ElementInfo {
    element_type: Py<PyType>,
    pub(crate) element_ctype: Py<CType>,
    pub(crate) access: Access,
    pub(crate) len: usize,
    /// A pointer's target is read anew at each access: bindings point at structures
    /// before their `_fields_` are set, which gives them their size (stock reads the
    /// target's size at each access too).
    follows_target: bool,
}

#[pymethods]
impl ElementInfo {
    /// Elements of class `element_type`, read as `access` says ("value", "view", "chars",
    /// "wchars"); `len` of them (0 for a pointer's target).
    #[new]
    pub fn new(element_type: Bound<'_, PyType>, access: &str, len: usize) -> PyResult<ElementInfo> {
        let element_ctype = crate::cdata::class_ctype(&element_type)?.unbind();
        let access = Access::from_name(access)?;
        Ok(ElementInfo {
            element_type: element_type.unbind(),
            element_ctype,
            access,
            len,
            follows_target: false,
        })
    }
}

impl ElementInfo {
    /// The target of a pointer type, whose C type is looked up at each access.
    pub fn pointer_target(target: Bound<'_, PyType>, access: &str) -> PyResult<ElementInfo> {
        Ok(ElementInfo { follows_target: true, ..ElementInfo::new(target, access, 0)? })
    }
}

impl<'py> Elements<'py> {
    /// The elements of an array or pointer class, from the `ElementInfo` its metaclass
    /// recorded (`_jitctypes_elements_`).
    pub fn of_class(cls: &Bound<'py, PyType>) -> PyResult<Elements<'py>> {
        let py = cls.py();
        let info = class_attr(cls, intern!(py, "_jitctypes_elements_"))
            .ok_or_else(|| PyTypeError::new_err("Cannot create instance: has no _type_"))?;
        let info = crate::known_types::as_element_info(&info)
            .ok_or_else(|| PyTypeError::new_err("bad element information"))?
            .get();
        let element_type = info.element_type.bind(py).clone();
        let element_ctype = if info.follows_target {
            crate::cdata::class_ctype(&element_type)?
        } else {
            info.element_ctype.bind(py).clone()
        };
        Ok(Elements { element_type, element_ctype, access: info.access, len: info.len })
    }

    /// The number of elements (arrays; 0 for pointers).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn size(&self) -> usize {
        self.element_ctype.get().size
    }

    /// Element `index`: read and written with field rules, except that char and wchar
    /// elements come out one character at a time.
    pub fn member(&self, index: usize) -> Member<'_, 'py> {
        let access = match self.access {
            Access::Chars | Access::WideChars => Access::Value,
            other => other,
        };
        Member {
            member_type: &self.element_type,
            ctype: self.element_ctype.get(),
            access,
            bits: None,
            index,
        }
    }

    /// A slice: bytes for chars, str for wide chars, else a list of elements; `items` are
    /// `(index, address)` pairs.
    pub fn read_slice(
        &self,
        parent: &Bound<'py, PyAny>,
        items: impl Iterator<Item = (usize, usize)>,
    ) -> PyResult<PyObject> {
        let py = parent.py();
        match self.access {
            Access::Chars => {
                // SAFETY: each address is an element of the parent's memory (or, for a
                // pointer, memory the program vouches for, as in C).
                let bytes: Vec<u8> = items.map(|(_, at)| unsafe { *(at as *const u8) }).collect();
                Ok(PyBytes::new(py, &bytes).into_any().unbind())
            }
            Access::WideChars => {
                // SAFETY: as above.
                let units: Vec<u32> = items.map(|(_, at)| unsafe { *(at as *const u32) }).collect();
                // SAFETY: `units` holds its length of readable values.
                unsafe { wide_str_from_ptr(py, units.as_ptr(), Some(units.len())) }
            }
            _ => {
                let values = items
                    .map(|(index, at)| self.member(index).read(parent, at))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(pyo3::types::PyList::new(py, values)?.into_any().unbind())
            }
        }
    }
}

impl CField {
    /// The field's value in `obj` (the descriptor itself when read from the class).
    pub fn get_from(slf: &Bound<'_, CField>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<PyObject> {
        let py = slf.py();
        let Some(obj) = obj.filter(|obj| !obj.is_none()) else {
            return Ok(slf.clone().into_any().unbind());
        };
        let field = slf.get();
        let parent = crate::known_types::as_cdata(obj).ok_or_else(not_an_instance)?;
        let address = parent.borrow().address() + field.offset;
        field.member(py).read(obj, address)
    }

    /// `del obj.field`: refused, after stock's check that `obj` is a ctypes instance.
    pub fn delete_from(obj: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::known_types::as_cdata(obj).ok_or_else(not_an_instance)?;
        Err(PyTypeError::new_err("can't delete attribute"))
    }

    /// Writes `value` into the field of `obj`.
    pub fn set_on(
        slf: &Bound<'_, CField>,
        obj: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let field = slf.get();
        let parent = crate::known_types::as_cdata(obj).ok_or_else(not_an_instance)?;
        let address = parent.borrow().address() + field.offset;
        field.member(py).write(parent, address, value)
    }

    /// The fast kind and offset of the field, if its values are plain fast scalars.
    pub fn fast(&self) -> Option<(FastScalar, usize)> {
        self.fast.map(|scalar| (scalar, self.offset))
    }

    fn member<'a, 'py>(&'a self, py: Python<'py>) -> Member<'a, 'py> {
        Member {
            member_type: self.field_type.bind(py),
            ctype: self.ctype.get(),
            access: self.access,
            bits: self.bits,
            index: self.index,
        }
    }
}

/// `(field type, CType, offset, index, access, bits)` of `field`: what the metaclass needs
/// to make the descriptors of `_anonymous_` members. A module function, not a method: stock's
/// `CField` has no such attribute.
#[pyfunction]
pub fn field_parts(field: &Bound<'_, CField>) -> FieldParts {
    field.get().parts(field.py())
}

impl CField {
    fn parts(&self, py: Python<'_>) -> FieldParts {
        let access = match self.access {
            Access::Value => "value",
            Access::View => "view",
            Access::Chars => "chars",
            Access::WideChars => "wchars",
        };
        let bits = self.bits.map(|(bits, window)| (bits.shift, bits.width, window));
        (
            self.field_type.clone_ref(py),
            self.ctype.clone_ref(py),
            self.offset,
            self.index,
            access,
            bits,
        )
    }
}

#[pymethods]
impl CField {
    // `__get__`/`__set__` serve explicit calls (`Struct.x.__get__(obj)`); attribute access
    // goes through the C slots slots.rs installs, which run `get_from`/`set_on` directly.
    fn __get__(
        slf: &Bound<'_, CField>,
        obj: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        CField::get_from(slf, obj)
    }

    fn __set__(
        slf: &Bound<'_, CField>,
        obj: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        CField::set_on(slf, obj, value)
    }

    fn __delete__(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        CField::delete_from(obj)
    }

    fn __repr__(slf: &Bound<'_, CField>) -> PyResult<String> {
        let field = slf.get();
        let name = field.field_type.bind(slf.py()).name()?;
        Ok(match &field.bits {
            Some((bits, _)) => format!(
                "<Field type={name}, ofs={}:{}, bits={}>",
                field.offset, bits.shift, bits.width
            ),
            None => format!("<Field type={name}, ofs={}, size={}>", field.offset, field.size),
        })
    }
}

/// The value of the bit-field `bits` in the `window`-byte integer at `address`: an int, or
/// a bool for `c_bool` bit-fields.
///
/// # Safety
/// `address` must be readable for `window` bytes.
pub unsafe fn get_bitfield(
    py: Python<'_>,
    ctype: &CType,
    address: usize,
    bits: &BitField,
    window: usize,
) -> PyResult<PyObject> {
    let swapped = matches!(ctype.shape, Shape::Scalar { swapped: true, .. });
    // SAFETY: caller's contract.
    let value = read_bitfield(unsafe { read_uint(address as *const u8, window, swapped) }, bits);
    if matches!(ctype.code(), Some((Code::Bool, _))) {
        return Ok((value != 0).into_pyobject(py)?.to_owned().into_any().unbind());
    }
    Ok(value.into_pyobject(py)?.into_any().unbind())
}

/// The bytes of a `char` array at `address` up to its first NUL (all `size` if none).
///
/// # Safety
/// `address` must be readable for `size` bytes.
pub unsafe fn chars_up_to_nul<'py>(
    py: Python<'py>,
    address: usize,
    size: usize,
) -> Bound<'py, PyBytes> {
    // SAFETY: caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(address as *const u8, size) };
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(size);
    PyBytes::new(py, &bytes[..end])
}

/// The text of a `wchar_t` array of `size` bytes at `address` up to its first NUL.
///
/// # Safety
/// `address` must be readable for `size` bytes.
pub unsafe fn wide_chars_up_to_nul(
    py: Python<'_>,
    address: usize,
    size: usize,
) -> PyResult<PyObject> {
    let units = size / 4;
    // SAFETY: caller's contract.
    let slice = unsafe { std::slice::from_raw_parts(address as *const u32, units) };
    let end = slice.iter().position(|&u| u == 0).unwrap_or(units);
    // SAFETY: `end` units are readable.
    unsafe { wide_str_from_ptr(py, address as *const u32, Some(end)) }
}

/// Writes `value` into the bit-field `bits` of the `window`-byte integer at `address`;
/// `ctype` must be an integer or bool type (checked: anything wider than 8 bytes or
/// pointer-like would not fit the scratch value).
pub fn set_bitfield(
    value: &Bound<'_, PyAny>,
    ctype: &CType,
    address: usize,
    bits: &BitField,
    window: usize,
) -> PyResult<()> {
    let Some((code, swapped)) = ctype.code().filter(|(code, _)| code.holds_bits()) else {
        return Err(PyTypeError::new_err("bit-fields need an integer or bool type"));
    };
    let native = CType::new(
        Shape::Scalar { code, swapped: false },
        ctype.jit.clone(),
        ctype.size,
        ctype.align,
    );
    let mut scratch = [0u8; 8];
    let mut keep = KeepAlive::new();
    // SAFETY: `scratch` holds 8 bytes, enough for any integer scalar.
    unsafe { store(value, &native, scratch.as_mut_ptr(), &mut keep)? };
    let new_bits = u64::from_le_bytes(scratch);
    // SAFETY: the window lies inside the parent's memory (layout contract).
    unsafe {
        let raw = read_uint(address as *const u8, window, swapped);
        write_uint(address as *mut u8, window, write_bitfield(raw, bits, new_bits), swapped);
    }
    Ok(())
}

/// `c_char * n` fields take bytes of at most n bytes; shorter values are NUL-terminated.
///
/// A field (`up_to_nul`) takes the bytes only up to their first NUL, as stock's field
/// setter does (it measures with `strlen`); an array's `.value` takes all of them.
pub fn set_chars(
    value: &Bound<'_, PyAny>,
    address: usize,
    size: usize,
    up_to_nul: bool,
) -> PyResult<()> {
    let bytes = value.downcast::<PyBytes>().map_err(|_| {
        let name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("expected bytes, {name} found"))
    })?;
    let mut data = bytes.as_bytes();
    if up_to_nul {
        if let Some(nul) = data.iter().position(|&byte| byte == 0) {
            data = &data[..nul];
        }
    }
    if data.len() > size {
        return Err(PyValueError::new_err(format!(
            "bytes too long ({}, maximum length {size})",
            data.len()
        )));
    }
    // SAFETY: `size` bytes of the parent's memory; `data.len() <= size`.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), address as *mut u8, data.len());
        if data.len() < size {
            *(address as *mut u8).add(data.len()) = 0;
        }
    }
    Ok(())
}

/// `c_wchar * n` fields take str of at most n characters.
pub fn set_wide_chars(value: &Bound<'_, PyAny>, address: usize, size: usize) -> PyResult<()> {
    let text = value.downcast::<pyo3::types::PyString>().map_err(|_| {
        let name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        PyTypeError::new_err(format!("unicode string expected instead of {name} instance"))
    })?;
    let units: Vec<u32> = text.to_str()?.chars().map(|c| c as u32).collect();
    let capacity = size / 4;
    if units.len() > capacity {
        return Err(PyValueError::new_err(format!(
            "string too long ({}, maximum length {capacity})",
            units.len()
        )));
    }
    // SAFETY: `capacity` units of the parent's memory; `units.len() <= capacity`.
    unsafe {
        std::ptr::copy_nonoverlapping(units.as_ptr(), address as *mut u32, units.len());
        if units.len() < capacity {
            *(address as *mut u32).add(units.len()) = 0;
        }
    }
    Ok(())
}
