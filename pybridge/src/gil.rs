//! The GIL where pyo3 does not manage it: dropping Python references without pyo3's
//! bookkeeping, and taking the GIL back safely while the interpreter exits.
//!
//! The fast paths run without pyo3's entry trampoline (CPython calls them directly, or a
//! callback took the GIL with `PyGILState_Ensure`), so pyo3's count of GIL holders is
//! zero there, and a `Py` dropped then is queued for a later release instead of being
//! released at once (a callable whose last reference goes would live on, its `__del__`
//! running later, maybe on another thread). What such code may drop last goes through
//! [`release`].
//!
//! **Exit.** From the moment CPython 3.11–3.13 starts finalising, a thread other than the
//! finalising one that waits for the GIL is ended with `pthread_exit`, a *forced unwind*
//! of its stack. Through C frames that is harmless (stock ctypes is all C); through Rust
//! frames it is not: a `catch_unwind` (ours, or pyo3's around every method) catches the
//! foreign unwind and glibc aborts ("FATAL: exception not rethrown"). CPython 3.14 parks
//! such threads forever instead, for the same reason. So every place of ours that takes the
//! GIL from a thread that may not hold it goes through [`enter`] (callbacks) or
//! [`restore_thread`] (after a C call): once [`close_for_exit`] has run (an `atexit`
//! handler, which runs before finalisation starts), any thread but the exiting one parks
//! there forever, as on 3.14, and never reaches CPython's `pthread_exit`. The hook lets the
//! threads that were already inside finish with Python first. Compiled entry stubs call
//! `PyEval_RestoreThread` themselves and need none of this: they have no unwind tables, so
//! a forced unwind stops at them and glibc ends the thread directly.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;

/// Drops `shared`; if this is its last reference, with pyo3 told that the GIL is held
/// (`with_gil` nests `PyGILState_Ensure`, which costs little on the thread holding it).
///
/// Call with the GIL held.
pub fn release<T>(shared: Arc<T>) {
    if Arc::strong_count(&shared) == 1 {
        Python::with_gil(|_| drop(shared));
    } else {
        drop(shared);
    }
}

/// Set (never cleared) by [`close_for_exit`].
static EXIT_STARTED: AtomicBool = AtomicBool::new(false);
/// Threads between [`enter`] and [`leave`]: about to take the GIL or running Python under
/// it from a place where an unwind would abort.
static INSIDE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// True on the thread that ran [`close_for_exit`]: it finalises, and may go on.
    static EXITING_THREAD: Cell<bool> = const { Cell::new(false) };
    /// This thread's share of [`INSIDE`] (a callback's Python code may call C, and take the
    /// GIL back through [`restore_thread`] inside the callback's [`enter`]).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// How long the exit hook waits for the threads inside to finish with Python. A callback
/// that runs longer than this is left to CPython's own exit handling.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// True once the interpreter has begun to exit (our `atexit` hook ran). Objects whose memory
/// C may still use (callbacks) are then never freed: the process is ending.
pub fn exit_started() -> bool {
    EXIT_STARTED.load(Ordering::SeqCst)
}

/// Called before a thread that may not hold the GIL takes it; paired with [`leave`]. Parks
/// the thread forever if the interpreter is exiting and this is not the exiting thread.
pub fn enter() {
    INSIDE.fetch_add(1, Ordering::SeqCst);
    let depth = DEPTH.with(|depth| {
        depth.set(depth.get() + 1);
        depth.get()
    });
    if EXIT_STARTED.load(Ordering::SeqCst) && !EXITING_THREAD.with(Cell::get) {
        // Parked for good: its whole share, nested entries included, is out of Python.
        INSIDE.fetch_sub(depth, Ordering::SeqCst);
        park_forever();
    }
}

/// The end of what [`enter`] began (the thread has given the GIL back or holds it outside
/// any frame of ours).
pub fn leave() {
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    INSIDE.fetch_sub(1, Ordering::SeqCst);
}

/// `PyEval_RestoreThread`, through the exit gate.
///
/// # Safety
/// `state` is what this thread's `PyEval_SaveThread` returned.
pub unsafe fn restore_thread(state: *mut ffi::PyThreadState) {
    enter();
    // SAFETY: the function's contract.
    unsafe { ffi::PyEval_RestoreThread(state) };
    leave();
}

/// Runs `work` with the GIL released, taking it back through the exit gate (pyo3's
/// `allow_threads` takes it back directly, inside pyo3's `catch_unwind`).
pub fn without_gil<T>(_py: Python<'_>, work: impl FnOnce() -> T) -> T {
    // SAFETY: the GIL is held (the token says so); it is taken back before returning, and
    // `work` touches no Python object (it is the C call).
    let state = unsafe { ffi::PyEval_SaveThread() };
    let result = work();
    // SAFETY: `state` came from this thread's `PyEval_SaveThread` just above.
    unsafe { restore_thread(state) };
    result
}

/// What a thread does instead of running Python while the interpreter exits: wait for the
/// process to end, as CPython 3.14 makes such threads do.
fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// The `atexit` hook (registered by `jitctypes._ctypes` at import): from now on only this
/// thread runs Python through our code; the threads already inside get the GIL until they
/// are done (at most [`DRAIN_LIMIT`]).
#[pyfunction]
pub fn close_for_exit(py: Python<'_>) {
    EXITING_THREAD.with(|flag| flag.set(true));
    EXIT_STARTED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + DRAIN_LIMIT;
    while INSIDE.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        py.allow_threads(|| std::thread::sleep(Duration::from_millis(1)));
    }
}
