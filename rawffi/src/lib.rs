//! `rawffi`: the `_rawffi` core — libraries, raw C memory, type layout, calls, callbacks,
//! errno — on top of [`jit`]. It knows no Python.
//!
//! Not built yet (issue 3). For now it only fixes the layering: calls go through
//! [`jit::Caller`], which this crate re-exports for the layers above.

pub use jit::{CallPath, Caller, Signature, Type};
