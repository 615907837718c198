//! Dropping Python references where pyo3 does not know that the GIL is held.
//!
//! The fast paths run without pyo3's entry trampoline (CPython calls them directly, or a
//! callback took the GIL with `PyGILState_Ensure`), so pyo3's count of GIL holders is
//! zero there, and a `Py` dropped then is queued for a later release instead of being
//! released at once (a callable whose last reference goes would live on, its `__del__`
//! running later, maybe on another thread). What such code may drop last goes through
//! [`release`].

use std::sync::Arc;

use pyo3::Python;

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
