//! [`Caller`]: a signature bound to the path that calls it — a compiled stub when the JIT
//! handles the signature, libffi otherwise — and the process-wide cache behind it.

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::callback::CompiledCallbackStub;
use crate::entry::{CompiledEntry, EntryRuntime, EntryShape};
use crate::error::CallError;
use crate::libffi_path::LibffiCall;
use crate::signature::Signature;
use crate::stub::{CompiledStub, StubCompiler};
use crate::sysv::plan_call;

/// Why a signature is called through libffi rather than a compiled stub. This is data:
/// statistics count it per signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// Cranelift cannot set `%al` for a variadic call.
    Variadic,
    /// A struct by value too large to copy with one move per stack slot.
    StackArgumentsTooLarge { slots: usize },
    /// The caller asked for libffi (e.g. to compare paths, or with the JIT switched off).
    Requested,
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::Variadic => f.write_str("variadic call"),
            FallbackReason::StackArgumentsTooLarge { slots } => {
                write!(f, "{slots} stack slots of arguments")
            }
            FallbackReason::Requested => f.write_str("libffi requested"),
        }
    }
}

/// Which path a [`Caller`] calls through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPath {
    Jit,
    Libffi(FallbackReason),
}

#[derive(Clone)]
enum Engine {
    Jit(CompiledStub),
    Libffi(Arc<LibffiCall>),
}

/// A way to call functions of one signature. Cheap to clone; shares the compiled stub or
/// prepared libffi description with every other caller of an equal signature.
#[derive(Clone)]
pub struct Caller {
    signature: Arc<Signature>,
    engine: Engine,
    path: CallPath,
}

impl Caller {
    /// The compiled stub if the JIT handles `signature`, libffi otherwise.
    pub fn new(signature: Signature) -> Result<Caller, CallError> {
        StubCache::global().caller(signature, true)
    }

    /// Always libffi (for comparisons, and when the JIT is switched off).
    pub fn with_libffi(signature: Signature) -> Result<Caller, CallError> {
        StubCache::global().caller(signature, false)
    }

    /// libffi where it can describe `signature`, else the compiled stub: libffi cannot be
    /// told that gcc passes a small struct with unaligned fields in memory, and calling
    /// such a function wrongly (as stock ctypes does) is never the better choice.
    pub fn preferring_libffi(signature: Signature) -> Result<Caller, CallError> {
        match Caller::with_libffi(signature.clone()) {
            Err(CallError::Libffi(_)) => Caller::new(signature),
            found => found,
        }
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn path(&self) -> &CallPath {
        &self.path
    }

    /// The compiled stub, when this caller is on the JIT path.
    pub fn stub(&self) -> Option<&CompiledStub> {
        match &self.engine {
            Engine::Jit(stub) => Some(stub),
            Engine::Libffi(_) => None,
        }
    }

    /// Calls `target`.
    ///
    /// # Safety
    /// `target` must be the address of a function of this signature; `args` must hold one
    /// pointer per argument, each to readable storage of that argument's type; `ret` must be
    /// writable for [`Signature::ret_buffer_size`] bytes.
    #[inline]
    pub unsafe fn call(&self, target: *const c_void, args: *const *mut c_void, ret: *mut c_void) {
        match &self.engine {
            // SAFETY: the stub was compiled for this signature; the rest is the caller's
            // contract, which is the stub's.
            Engine::Jit(stub) => unsafe { (stub.entry)(target, args, ret) },
            // SAFETY: as above, with the libffi description of this signature.
            Engine::Libffi(call) => unsafe { call.call(target, args, ret) },
        }
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("signature", &self.signature.to_string())
            .field("path", &self.path)
            .finish()
    }
}

/// Totals of what the cache has compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub stubs: usize,
    pub code_bytes: usize,
    pub compile_time: Duration,
    pub libffi_descriptions: usize,
    /// Entry stubs (`entry.rs`); their code and compile time are in the totals above.
    pub entry_stubs: usize,
    /// Callback stubs (`callback.rs`), also in the totals.
    pub callback_stubs: usize,
}

/// Compiled stubs and libffi descriptions per signature, shared by all threads. Compilation
/// happens under the lock: it is rare (once per signature) and short (~100 µs).
pub struct StubCache {
    state: Mutex<CacheState>,
}

struct CacheState {
    compiler: Option<StubCompiler>,
    stubs: HashMap<Signature, Result<CompiledStub, FallbackReason>>,
    libffi: HashMap<Signature, Result<Arc<LibffiCall>, String>>,
    entries: HashMap<(EntryShape, EntryRuntime), Result<CompiledEntry, String>>,
    /// Callback stubs need r15 kept free: their own module, compiled with other flags.
    callback_compiler: Option<StubCompiler>,
    callbacks: HashMap<(Signature, usize), Result<CompiledCallbackStub, String>>,
    stats: CacheStats,
}

// SAFETY: `JITModule` is not `Send` only because it holds raw pointers to the code it owns;
// it has no thread affinity. It is only ever used under the cache's mutex.
unsafe impl Send for StubCompiler {}

impl StubCache {
    pub fn new() -> StubCache {
        let state = CacheState {
            compiler: None,
            stubs: HashMap::new(),
            libffi: HashMap::new(),
            entries: HashMap::new(),
            callback_compiler: None,
            callbacks: HashMap::new(),
            stats: CacheStats::default(),
        };
        StubCache { state: Mutex::new(state) }
    }

    /// The process-wide cache used by [`Caller::new`].
    pub fn global() -> &'static StubCache {
        static GLOBAL: OnceLock<StubCache> = OnceLock::new();
        GLOBAL.get_or_init(StubCache::new)
    }

    /// True if the stub of `signature` is compiled already (a caller of it costs nothing).
    pub fn has_stub(&self, signature: &Signature) -> bool {
        matches!(self.lock().stubs.get(signature), Some(Ok(_)))
    }

    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// A caller of `signature`, through the JIT if `use_jit` and the JIT handles it.
    pub fn caller(&self, signature: Signature, use_jit: bool) -> Result<Caller, CallError> {
        let mut state = self.lock();
        let jit = if use_jit { state.stub(&signature)? } else { Err(FallbackReason::Requested) };
        let (engine, path) = match jit {
            Ok(stub) => (Engine::Jit(stub), CallPath::Jit),
            Err(reason) => match state.libffi_call(&signature) {
                Ok(call) => (Engine::Libffi(call), CallPath::Libffi(reason)),
                Err(libffi) if use_jit => {
                    return Err(CallError::Unsupported { jit: reason.to_string(), libffi })
                }
                Err(libffi) => return Err(CallError::Libffi(libffi)),
            },
        };
        Ok(Caller { signature: Arc::new(signature), engine, path })
    }

    /// The entry stub of `shape` for `runtime`, compiled on first use; `Err` says why
    /// there is none (the host keeps its own entry then).
    pub fn entry(
        &self,
        shape: &EntryShape,
        runtime: &EntryRuntime,
    ) -> Result<CompiledEntry, String> {
        let mut state = self.lock();
        let key = (shape.clone(), *runtime);
        if let Some(known) = state.entries.get(&key) {
            return known.clone();
        }
        let outcome = state.compiler().and_then(|compiler| compiler.compile_entry(shape, runtime));
        let outcome = outcome.map_err(|error| error.to_string());
        if let Ok(entry) = &outcome {
            state.stats.entry_stubs += 1;
            state.stats.code_bytes += entry.code_size;
            state.stats.compile_time += entry.compile_time;
        }
        state.entries.insert(key, outcome.clone());
        outcome
    }

    /// The callback stub of `signature` calling `handler`, compiled on first use; `Err`
    /// says why there is none (libffi's closures serve the signature then).
    pub fn callback(
        &self,
        signature: &Signature,
        handler: usize,
    ) -> Result<CompiledCallbackStub, String> {
        let mut state = self.lock();
        let key = (signature.clone(), handler);
        if let Some(known) = state.callbacks.get(&key) {
            return known.clone();
        }
        let compiler = match &mut state.callback_compiler {
            Some(compiler) => Ok(compiler),
            empty => StubCompiler::with_pinned_register().map(|compiler| empty.insert(compiler)),
        };
        let outcome = compiler
            .and_then(|compiler| compiler.compile_callback(signature, handler))
            .map_err(|error| error.to_string());
        if let Ok(stub) = &outcome {
            state.stats.callback_stubs += 1;
            state.stats.code_bytes += stub.code_size;
            state.stats.compile_time += stub.compile_time;
        }
        state.callbacks.insert(key, outcome.clone());
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves the maps consistent (entries are inserted
        // whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for StubCache {
    fn default() -> Self {
        StubCache::new()
    }
}

impl CacheState {
    /// The stub of `signature`, compiled on first use; `Ok(Err(reason))` when the JIT
    /// leaves the signature to libffi.
    fn stub(
        &mut self,
        signature: &Signature,
    ) -> Result<Result<CompiledStub, FallbackReason>, CallError> {
        if let Some(known) = self.stubs.get(signature) {
            return Ok(known.clone());
        }
        let outcome = match plan_call(signature) {
            Ok(plan) => {
                let stub = self.compiler()?.compile_named(&plan, &signature.to_string())?;
                self.stats.stubs += 1;
                self.stats.code_bytes += stub.code_size;
                self.stats.compile_time += stub.compile_time;
                Ok(stub)
            }
            Err(reason) => Err(reason),
        };
        self.stubs.insert(signature.clone(), outcome.clone());
        Ok(outcome)
    }

    /// The compiler, made on first use.
    fn compiler(&mut self) -> Result<&mut StubCompiler, CallError> {
        Ok(match &mut self.compiler {
            Some(compiler) => compiler,
            empty => empty.insert(StubCompiler::new()?),
        })
    }

    fn libffi_call(&mut self, signature: &Signature) -> Result<Arc<LibffiCall>, String> {
        if let Some(known) = self.libffi.get(signature) {
            return known.clone();
        }
        let outcome = LibffiCall::prepare(signature).map(Arc::new);
        if outcome.is_ok() {
            self.stats.libffi_descriptions += 1;
        }
        self.libffi.insert(signature.clone(), outcome.clone());
        outcome
    }
}
