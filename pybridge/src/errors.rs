//! Errors of the Rust layers as Python exceptions, in one place.

use jit::{CallError, SignatureError};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;
use rawffi::layout::LayoutError;

/// A signature that is not a valid C function type: the types are wrong.
pub fn signature_error(error: SignatureError) -> PyErr {
    PyTypeError::new_err(error.to_string())
}

/// No call path: `NotImplementedError`-like situations are reported as `TypeError` with
/// both reasons; a compile failure is a bug of ours and says so.
pub fn call_error(error: CallError) -> PyErr {
    match error {
        CallError::Compile(reason) => {
            PyRuntimeError::new_err(format!("jitctypes bug: stub compilation failed: {reason}"))
        }
        other => PyTypeError::new_err(other.to_string()),
    }
}

/// A declaration with no layout (bad `_pack_`, bad bit-field width, ...).
pub fn layout_error(error: LayoutError) -> PyErr {
    match error {
        LayoutError::BitFieldOnNonInteger { .. } => PyTypeError::new_err(error.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}
