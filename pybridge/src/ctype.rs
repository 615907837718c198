//! `CType`: what `_rawffi` knows of a C type — its shape, size, alignment and the
//! `jit::Type` that describes it in signatures and aggregates. The `_ctypes` layer keeps
//! one per ctypes class.

use jit::Type;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A C scalar as ctypes names it: its `_type_` letter. The letter says both the C type and
/// how Python values convert to and from it (`z` is a `char *` read as bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Char,
    Byte,
    UByte,
    Short,
    UShort,
    Int,
    UInt,
    Long,
    ULong,
    LongLong,
    ULongLong,
    Float,
    Double,
    LongDouble,
    Bool,
    /// `VARIANT_BOOL` (`ctypes.wintypes`, on every platform as in stock): a `short` that is
    /// -1 for true.
    VariantBool,
    WideChar,
    CharPointer,
    WideCharPointer,
    VoidPointer,
    PyObject,
}

impl Code {
    pub fn from_letter(letter: &str) -> Option<Code> {
        Some(match letter {
            "c" => Code::Char,
            "b" => Code::Byte,
            "B" => Code::UByte,
            "h" => Code::Short,
            "H" => Code::UShort,
            "i" => Code::Int,
            "I" => Code::UInt,
            "l" => Code::Long,
            "L" => Code::ULong,
            "q" => Code::LongLong,
            "Q" => Code::ULongLong,
            "f" => Code::Float,
            "d" => Code::Double,
            "g" => Code::LongDouble,
            "?" => Code::Bool,
            "v" => Code::VariantBool,
            "u" => Code::WideChar,
            "z" => Code::CharPointer,
            "Z" => Code::WideCharPointer,
            "P" => Code::VoidPointer,
            "O" => Code::PyObject,
            _ => return None,
        })
    }

    pub fn letter(self) -> &'static str {
        match self {
            Code::Char => "c",
            Code::Byte => "b",
            Code::UByte => "B",
            Code::Short => "h",
            Code::UShort => "H",
            Code::Int => "i",
            Code::UInt => "I",
            Code::Long => "l",
            Code::ULong => "L",
            Code::LongLong => "q",
            Code::ULongLong => "Q",
            Code::Float => "f",
            Code::Double => "d",
            Code::LongDouble => "g",
            Code::Bool => "?",
            Code::VariantBool => "v",
            Code::WideChar => "u",
            Code::CharPointer => "z",
            Code::WideCharPointer => "Z",
            Code::VoidPointer => "P",
            Code::PyObject => "O",
        }
    }

    /// The C type on x86-64 Linux (LP64; `wchar_t` is a signed 32-bit integer).
    pub fn jit_type(self) -> Type {
        match self {
            Code::Char | Code::Byte => Type::I8,
            Code::UByte => Type::U8,
            Code::Short | Code::VariantBool => Type::I16,
            Code::UShort => Type::U16,
            Code::Int | Code::WideChar => Type::I32,
            Code::UInt => Type::U32,
            Code::Long | Code::LongLong => Type::I64,
            Code::ULong | Code::ULongLong => Type::U64,
            Code::Float => Type::F32,
            Code::Double => Type::F64,
            Code::LongDouble => Type::LongDouble,
            Code::Bool => Type::Bool,
            Code::CharPointer | Code::WideCharPointer | Code::VoidPointer | Code::PyObject => {
                Type::Pointer
            }
        }
    }

    /// The size in bytes of a value of this code.
    pub fn size(self) -> usize {
        match self {
            Code::Char | Code::Byte | Code::UByte | Code::Bool => 1,
            Code::Short | Code::UShort | Code::VariantBool => 2,
            Code::Int | Code::UInt | Code::WideChar | Code::Float => 4,
            Code::LongDouble => 16,
            _ => 8,
        }
    }

    /// True for the integer codes whose values are Python ints.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Code::Byte
                | Code::UByte
                | Code::Short
                | Code::UShort
                | Code::Int
                | Code::UInt
                | Code::Long
                | Code::ULong
                | Code::LongLong
                | Code::ULongLong
        )
    }

    pub fn is_signed(self) -> bool {
        matches!(
            self,
            Code::Char
                | Code::Byte
                | Code::Short
                | Code::Int
                | Code::Long
                | Code::LongLong
                | Code::WideChar
        )
    }

    /// True for the codes a bit-field may have: the integers and bool.
    pub fn holds_bits(self) -> bool {
        self.is_integer() || self == Code::Bool
    }

    /// True for the codes with a byte-swapped variant (stock's `__ctype_be__` types; one
    /// byte swapped is itself).
    pub fn can_swap(self) -> bool {
        self.is_integer() || matches!(self, Code::Char | Code::Float | Code::Double)
    }
}

#[derive(Debug)]
pub enum Shape {
    Void,
    /// A scalar, in native or swapped byte order (ctypes' `__ctype_be__` types).
    Scalar {
        code: Code,
        swapped: bool,
    },
    /// A struct or union (built by `layout`); values are bytes.
    Aggregate,
    /// A fixed array inside an aggregate.
    Array {
        element: Py<CType>,
        len: usize,
    },
}

/// A C type known to `_rawffi`.
#[pyclass(frozen, module = "jitctypes._rawffi")]
pub struct CType {
    pub shape: Shape,
    pub jit: Type,
    pub size: usize,
    pub align: usize,
    /// True for ctypes pointer types: their instances keep what they point at alive, in
    /// a dict of kept objects as aggregates do.
    pub is_pointer_type: bool,
}

impl CType {
    pub fn new(shape: Shape, jit: Type, size: usize, align: usize) -> CType {
        CType { shape, jit, size, align, is_pointer_type: false }
    }

    /// The native-order scalar of type code `code`.
    pub fn scalar_of(code: Code) -> CType {
        let jit = code.jit_type();
        CType::new(Shape::Scalar { code, swapped: false }, jit.clone(), jit.size(), jit.align())
    }

    pub fn code(&self) -> Option<(Code, bool)> {
        match self.shape {
            Shape::Scalar { code, swapped } => Some((code, swapped)),
            _ => None,
        }
    }
}

#[pymethods]
impl CType {
    /// The scalar with ctypes type code `code` (`"i"`, `"d"`, `"z"`, ...), in native order
    /// or byte-swapped (`swapped=True`).
    #[staticmethod]
    #[pyo3(signature = (code, swapped = false))]
    fn scalar(code: &str, swapped: bool) -> PyResult<CType> {
        let letter = code;
        let code = Code::from_letter(code)
            .ok_or_else(|| PyValueError::new_err(format!("unknown type code {code:?}")))?;
        if swapped && !code.can_swap() {
            return Err(PyValueError::new_err(format!(
                "type code {letter:?} has no byte-swapped form"
            )));
        }
        let jit = code.jit_type();
        Ok(CType::new(Shape::Scalar { code, swapped }, jit.clone(), jit.size(), jit.align()))
    }

    /// The C type of a ctypes pointer type (`POINTER(T)`): a `void *` whose instances keep
    /// their target alive.
    #[staticmethod]
    pub fn pointer() -> CType {
        let jit = Type::Pointer;
        let shape = Shape::Scalar { code: Code::VoidPointer, swapped: false };
        CType { is_pointer_type: true, ..CType::new(shape, jit, 8, 8) }
    }

    /// `void`: valid only as a return type.
    #[staticmethod]
    fn void() -> CType {
        CType::new(Shape::Void, Type::Void, 0, 1)
    }

    /// An array of `length` elements, for use inside structures.
    #[staticmethod]
    pub fn array(element: Bound<'_, CType>, length: usize) -> PyResult<CType> {
        let inner = element.get();
        if matches!(inner.shape, Shape::Void) {
            return Err(PyTypeError::new_err("an array of void is not a C type"));
        }
        let jit = Type::array(inner.jit.clone(), length)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let (size, align) = (jit.size(), inner.align);
        Ok(CType::new(Shape::Array { element: element.unbind(), len: length }, jit, size, align))
    }

    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    #[getter]
    fn alignment(&self) -> usize {
        self.align
    }

    /// The type code letter of a scalar, else None.
    #[getter(code)]
    fn code_letter(&self) -> Option<&'static str> {
        self.code().map(|(code, _)| code.letter())
    }

    #[getter]
    fn kind(&self) -> &'static str {
        match self.shape {
            Shape::Void => "void",
            Shape::Scalar { .. } => "scalar",
            Shape::Aggregate => "aggregate",
            Shape::Array { .. } => "array",
        }
    }

    fn __repr__(&self) -> String {
        format!("<CType {} size={} align={}>", self.jit, self.size, self.align)
    }
}
