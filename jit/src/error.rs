//! Errors of the `jit` crate: plain enums, mapped to Python exceptions by `pybridge`.

use std::fmt;

/// Why a type or signature is not a valid C function type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    ZeroSizedAggregate,
    BadAlignment { align: usize },
    SizeNotMultipleOfAlignment { size: usize, align: usize },
    FieldOutOfBounds { offset: usize, field_size: usize, aggregate_size: usize },
    SizeOverflow,
    VoidField,
    VoidArgument { index: usize },
    ArrayByValue { position: String },
    TooManyArguments { count: usize, max: usize },
    AggregateTooLarge { size: usize, max: usize },
    FixedArgumentsOutOfRange { fixed: usize, total: usize },
    UnpromotedVariadicArgument { index: usize, ty: String },
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::ZeroSizedAggregate => {
                f.write_str("a struct or union passed by value must not be empty")
            }
            SignatureError::BadAlignment { align } => {
                write!(f, "alignment {align} is not a power of two up to 16")
            }
            SignatureError::SizeNotMultipleOfAlignment { size, align } => {
                write!(f, "aggregate size {size} is not a multiple of its alignment {align}")
            }
            SignatureError::FieldOutOfBounds { offset, field_size, aggregate_size } => write!(
                f,
                "field of {field_size} bytes at offset {offset} ends outside its \
                 {aggregate_size}-byte aggregate"
            ),
            SignatureError::SizeOverflow => f.write_str("type size overflows"),
            SignatureError::VoidField => f.write_str("void cannot be a field or array element"),
            SignatureError::VoidArgument { index } => {
                write!(f, "argument {index} has type void")
            }
            SignatureError::ArrayByValue { position } => {
                write!(f, "{position} is an array by value; pass a pointer")
            }
            SignatureError::TooManyArguments { count, max } => {
                write!(f, "{count} arguments, more than the maximum of {max}")
            }
            SignatureError::AggregateTooLarge { size, max } => {
                write!(f, "a {size}-byte struct or union by value is larger than {max} bytes")
            }
            SignatureError::FixedArgumentsOutOfRange { fixed, total } => {
                write!(f, "{fixed} fixed arguments declared but only {total} given")
            }
            SignatureError::UnpromotedVariadicArgument { index, ty } => {
                write!(f, "variadic argument {index} has type {ty}; C promotes it to int or double")
            }
        }
    }
}

impl std::error::Error for SignatureError {}

/// Why a call path could not be built for a valid signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Neither the JIT nor libffi can express the signature; both reasons are given.
    Unsupported { jit: String, libffi: String },
    /// libffi refused the signature (only when libffi was asked for explicitly).
    Libffi(String),
    /// Cranelift failed to compile a stub the classifier accepted: a bug of ours.
    Compile(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unsupported { jit, libffi } => {
                write!(f, "signature not supported: JIT: {jit}; libffi: {libffi}")
            }
            CallError::Libffi(reason) => write!(f, "libffi cannot call this signature: {reason}"),
            CallError::Compile(reason) => write!(f, "stub compilation failed: {reason}"),
        }
    }
}

impl std::error::Error for CallError {}
