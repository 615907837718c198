//! `rawffi`: the `_rawffi` core — libraries, raw C memory, type layout, calls, callbacks,
//! errno — on top of [`jit`]. It knows no Python: `pybridge` maps its plain errors to
//! Python exceptions.
//!
//! - [`library`]: `dlopen`/`dlsym`/`dlclose` with the loader's messages.
//! - [`memory`]: owned C buffers and unaligned, byte-order-aware scalar access.
//! - [`layout`]: sizes, alignments and offsets of structures and unions (bit-fields,
//!   `_pack_`, byte order), and their `jit::Type` for passing by value.
//! - [`call`]: a function address bound to its `jit::Caller`, with ctypes' errno swap.
//! - [`callback`]: libffi closures that run a handler, from any thread.

pub mod call;
pub mod callback;
pub mod layout;
pub mod library;
pub mod memory;

pub use jit::{CallPath, Caller, Signature, Type};
