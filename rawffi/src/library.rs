//! Dynamic libraries: open, look up symbols, close, through `libloading`'s Unix layer.
//!
//! ctypes identifies libraries by their raw `dlopen` handle (an integer in Python), so a
//! [`Library`] is a thin owner of that handle that can be rebuilt from it.

use std::ffi::{c_int, c_void, OsStr};

use libloading::os::unix::Library as UnixLibrary;

pub use libloading::os::unix::{RTLD_GLOBAL, RTLD_LAZY, RTLD_LOCAL, RTLD_NOW};

/// An open shared library. Closing is explicit ([`Library::close`]): ctypes keeps libraries
/// open for the life of the process unless the program calls `dlclose` itself.
#[derive(Debug)]
pub struct Library {
    handle: *mut c_void,
}

// SAFETY: a `dlopen` handle is a process-wide token; the dynamic loader serialises its use.
unsafe impl Send for Library {}
// SAFETY: as for `Send`; `dlsym` may be called from any thread.
unsafe impl Sync for Library {}

impl Library {
    /// Opens `path`, or the running program itself when `path` is `None`, with `dlopen`
    /// flags (`RTLD_NOW`/`RTLD_LAZY` | `RTLD_LOCAL`/`RTLD_GLOBAL`). The error is the
    /// loader's own message, as ctypes reports it.
    pub fn open(path: Option<&OsStr>, flags: c_int) -> Result<Library, String> {
        // SAFETY: running a library's initialisers is what loading a library means; the
        // caller asked for this library.
        let library = unsafe { UnixLibrary::open(path, flags) }.map_err(loader_message)?;
        Ok(Library { handle: library.into_raw() })
    }

    /// Rebuilds a library from a handle that `open` (or `dlopen`) returned.
    ///
    /// # Safety
    /// `handle` must be a live `dlopen` handle.
    pub unsafe fn from_handle(handle: *mut c_void) -> Library {
        Library { handle }
    }

    pub fn handle(&self) -> *mut c_void {
        self.handle
    }

    /// The address of `name`. A symbol whose address is NULL is an error too: ctypes
    /// cannot call or read it.
    pub fn symbol(&self, name: &str) -> Result<*mut c_void, String> {
        self.symbol_bytes(name.as_bytes())
    }

    /// `symbol` for a name given as bytes, which need not be UTF-8; as C reads it, the
    /// name ends at its first NUL.
    pub fn symbol_bytes(&self, name: &[u8]) -> Result<*mut c_void, String> {
        let name = name.split(|&byte| byte == 0).next().unwrap_or_default();
        // SAFETY: the handle is live (constructor contract); the symbol is only read as an
        // address, never called here.
        let library = unsafe { UnixLibrary::from_raw(self.handle) };
        // SAFETY: as above; `*mut c_void` is the type of any symbol's address.
        let found = unsafe { library.get::<*mut c_void>(name) };
        let outcome = match found {
            Ok(symbol) => match symbol.into_raw() {
                address if address.is_null() => {
                    let name = String::from_utf8_lossy(name);
                    Err(format!("symbol {name} has address NULL"))
                }
                address => Ok(address),
            },
            Err(error) => Err(loader_message(error)),
        };
        // The handle stays owned by `self`, not by this temporary.
        let _ = library.into_raw();
        outcome
    }

    /// `dlclose`. The handle must not be used afterwards.
    pub fn close(self) -> Result<(), String> {
        // SAFETY: the handle is live and is given up here.
        let library = unsafe { UnixLibrary::from_raw(self.handle) };
        library.close().map_err(loader_message)
    }
}

/// The `dlerror` text inside a libloading error, without libloading's own wording.
fn loader_message(error: libloading::Error) -> String {
    use std::error::Error;
    match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_program_has_libc_symbols() {
        let program = Library::open(None, RTLD_NOW).unwrap();
        assert!(!program.symbol("strlen").unwrap().is_null());
        assert!(program.symbol("no_such_symbol_anywhere").unwrap_err().contains("undefined"));
    }

    #[test]
    fn a_missing_library_reports_the_loader_message() {
        let error = Library::open(Some(OsStr::new("libnothing-here.so")), RTLD_NOW).unwrap_err();
        assert!(error.contains("libnothing-here.so"), "{error}");
        assert!(error.contains("No such file"), "{error}");
    }
}
