//! `jit`: the description of C function types and the machinery that calls them.
//!
//! - [`Signature`] (with [`Type`] and [`Aggregate`]) is the one description of a C function
//!   type in the project; it is validated on construction and is the cache key.
//! - [`sysv`] classifies a signature for the x86-64 System V ABI into a [`sysv::CallPlan`].
//! - [`stub`] lowers a plan to a Cranelift-compiled direct call stub.
//! - [`libffi_path`] is the slow path for what the JIT does not handle.
//! - [`entry`] compiles entry stubs: an interpreter calls them directly with its own
//!   objects; they convert them, call the C function and box the result.
//! - [`callback`] and [`thunk`] compile the other direction: C functions that hand their
//!   arguments to a host handler (callbacks), one shared stub per signature.
//! - [`Caller`] binds a signature to one of the two paths, through a process-wide cache.
//!
//! Both paths share one entry contract, libffi's `ffi_call`:
//! `call(target, args, ret)` where `args[i]` points at argument i and `ret` at a buffer of
//! [`Signature::ret_buffer_size`] bytes. This crate knows nothing of Python.

#[cfg(not(all(target_arch = "x86_64", unix)))]
compile_error!("jit compiles stubs for the x86-64 System V ABI only");

pub mod callback;
pub mod caller;
pub mod entry;
pub mod error;
pub mod libffi_path;
pub mod signature;
pub mod stub;
pub mod sysv;
pub mod thunk;

pub use callback::{callback_unsupported, CompiledCallbackStub};
pub use caller::{CacheStats, CallPath, Caller, FallbackReason, StubCache};
pub use entry::{
    ArgConversion, CompiledEntry, EntryFn, EntryRuntime, EntryShape, IntLayout, ReferenceLayout,
    ResultBoxing,
};
pub use error::{CallError, SignatureError};
pub use signature::{Aggregate, AggregateKind, CallConv, Field, Signature, Type, MAX_ARGS};
pub use stub::{CompiledStub, StubCompiler, StubFn};
