//! Thunks: tiny per-callback code that gives a shared callback stub (`callback.rs`) the
//! callback's data pointer. A C function pointer must be a distinct address per callback,
//! while compiled stubs are shared per signature; a thunk is that address.
//!
//! Each thunk runs
//!
//! ```text
//! push r15                 ; r15 is callee-saved: the C caller's value is kept
//! mov  r15, [rip + data]   ; the callback's data pointer, from its data cell
//! call [rip + entry]       ; the stub (it reads r15; it sees two more stack slots)
//! pop  r15
//! ret
//! ```
//!
//! Thunks live in pages of identical code that is written once and then only executed;
//! what differs per thunk (data pointer, stub address) sits in a data page right after
//! the code page, at the same slot index, and is written when the thunk is handed out. So
//! code is never writable while executable, and a freed thunk is reused by rewriting its
//! two data words.
//!
//! A freed thunk first points at [`freed_callback`], which returns 0 and says once on stderr
//! what happened, and waits in a queue behind [`QUARANTINE`] other freed thunks before it is
//! handed out again: C code that calls a callback after the program dropped it (a classic
//! ctypes bug, a crash with stock ctypes) then gets a zero instead of running freed state or
//! another callback.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Bytes of code per thunk (the code is 18 bytes; slots are kept 32-byte aligned).
const SLOT: usize = 32;
const PAGE: usize = 4096;
/// Thunks per page.
const SLOTS: usize = PAGE / SLOT;
/// Bytes of data per thunk: the data pointer, then the stub's address.
const DATA: usize = 16;
/// Freed thunks kept pointing at [`freed_callback`] before one is reused.
const QUARANTINE: usize = 512;

/// One thunk, handed out until dropped.
pub struct Thunk {
    code: *const u8,
    page: usize,
    slot: usize,
}

// SAFETY: a thunk is an address and an index; the pool's mutex guards reuse.
unsafe impl Send for Thunk {}
// SAFETY: as for `Send`.
unsafe impl Sync for Thunk {}

impl Thunk {
    /// A thunk that calls `entry` with `data` in r15.
    pub fn new(data: usize, entry: usize) -> Result<Thunk, String> {
        let mut pool = pool().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reusable = if pool.freed.len() > QUARANTINE { pool.freed.pop_front() } else { None };
        let (page, slot) = match reusable.or_else(|| pool.fresh.pop()) {
            Some(free) => free,
            None => {
                pool.pages.push(ThunkPage::new()?);
                let page = pool.pages.len() - 1;
                pool.fresh.extend((1..SLOTS).rev().map(|slot| (page, slot)));
                (page, 0)
            }
        };
        let base = pool.pages[page].base;
        // SAFETY: the slot's data cell is in the page's writable data half, not in use.
        unsafe { write_cell(base, slot, data, entry) };
        Ok(Thunk { code: (base + slot * SLOT) as *const u8, page, slot })
    }

    /// The C function pointer.
    pub fn code_address(&self) -> *const u8 {
        self.code
    }
}

impl Drop for Thunk {
    fn drop(&mut self) {
        let mut pool = pool().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let base = pool.pages[self.page].base;
        // SAFETY: this slot's data cell, no longer handed out. A thread inside the thunk has
        // read both words already (each is read once, before the stub runs).
        unsafe { write_cell(base, self.slot, 0, freed_callback as *const () as usize) };
        pool.freed.push_back((self.page, self.slot));
    }
}

/// Writes the data pointer and entry of thunk `slot` of the page at `base`.
///
/// # Safety
/// `base` is a `ThunkPage`'s; the pool's lock is held.
unsafe fn write_cell(base: usize, slot: usize, data: usize, entry: usize) {
    // SAFETY: the slot's data cell is in the page's writable data half.
    unsafe {
        let cell = (base + PAGE + slot * DATA) as *mut usize;
        cell.write(data);
        cell.add(1).write(entry);
    }
}

/// What a freed thunk calls: C called a callback after it was freed. Returns 0 (in rax;
/// any other result registers are left as they are) and says so once. Never unwinds.
extern "C" fn freed_callback() -> u64 {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        let message = b"jitctypes: C called a ctypes callback that was already freed; \
            it returned 0 (keep a reference to a callback while C can call it)\n";
        // SAFETY: a plain write of a static buffer to stderr; its result does not matter.
        unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
    }
    0
}

struct ThunkPool {
    pages: Vec<ThunkPage>,
    /// Slots never handed out.
    fresh: Vec<(usize, usize)>,
    /// Freed slots, oldest first: reused only past [`QUARANTINE`] of them.
    freed: VecDeque<(usize, usize)>,
}

fn pool() -> &'static Mutex<ThunkPool> {
    static POOL: Mutex<ThunkPool> =
        Mutex::new(ThunkPool { pages: Vec::new(), fresh: Vec::new(), freed: VecDeque::new() });
    &POOL
}

/// A code page of `SLOTS` thunks (read and execute) followed by their data page (read and
/// write). Never unmapped: C may hold a thunk's address for as long as the process runs.
struct ThunkPage {
    base: usize,
}

impl ThunkPage {
    fn new() -> Result<ThunkPage, String> {
        // SAFETY: a fresh private anonymous mapping of two pages.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("cannot map thunk pages: {}", std::io::Error::last_os_error()));
        }
        let base = base as usize;
        for slot in 0..SLOTS {
            let code = thunk_code(slot);
            // SAFETY: the code page is ours and still writable.
            unsafe {
                let at = (base + slot * SLOT) as *mut u8;
                std::ptr::copy_nonoverlapping(code.as_ptr(), at, code.len());
            }
        }
        // SAFETY: the code page of the mapping above.
        let protected = unsafe {
            libc::mprotect(base as *mut libc::c_void, PAGE, libc::PROT_READ | libc::PROT_EXEC)
        };
        if protected != 0 {
            return Err(format!("cannot protect thunk code: {}", std::io::Error::last_os_error()));
        }
        Ok(ThunkPage { base })
    }
}

/// The machine code of thunk `slot` (see the module documentation): `rip`-relative loads
/// of the slot's two data words, which are `PAGE + slot * DATA` bytes after the page start.
fn thunk_code(slot: usize) -> [u8; 18] {
    let start = slot * SLOT;
    let data = PAGE + slot * DATA;
    // Displacements count from the end of each instruction.
    let load_end = start + 2 + 7;
    let call_end = load_end + 6;
    let data_displacement = (data - load_end) as i32;
    let entry_displacement = (data + 8 - call_end) as i32;
    let mut code = [0u8; 18];
    code[0..2].copy_from_slice(&[0x41, 0x57]); // push r15
    code[2..5].copy_from_slice(&[0x4c, 0x8b, 0x3d]); // mov r15, [rip + disp32]
    code[5..9].copy_from_slice(&data_displacement.to_le_bytes());
    code[9..11].copy_from_slice(&[0xff, 0x15]); // call [rip + disp32]
    code[11..15].copy_from_slice(&entry_displacement.to_le_bytes());
    code[15..17].copy_from_slice(&[0x41, 0x5f]); // pop r15
    code[17] = 0xc3; // ret
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry a thunk calls in these tests: returns what r15 holds (the data word).
    #[unsafe(naked)]
    extern "C" fn return_r15() -> usize {
        std::arch::naked_asm!("mov rax, r15", "ret")
    }

    #[test]
    fn a_thunk_passes_its_data_and_keeps_the_callers_r15() {
        let thunks: Vec<Thunk> = (0..300)
            .map(|k| Thunk::new(0x1000 + k, return_r15 as *const () as usize).unwrap())
            .collect();
        for (k, thunk) in thunks.iter().enumerate() {
            // SAFETY: the thunk calls `return_r15`, a C function of this type.
            let function: extern "C" fn() -> usize =
                unsafe { std::mem::transmute(thunk.code_address()) };
            let r15_before: usize;
            let r15_after: usize;
            let result: usize;
            // SAFETY: r15 is set to a marker, the thunk is called, r15 is read back; the
            // marker restores nothing else.
            unsafe {
                std::arch::asm!(
                    "mov r15, 0x5a5a",
                    "mov r12, r15",
                    "call r13",
                    "mov r14, r15",
                    in("r13") function,
                    out("r12") r15_before,
                    out("r14") r15_after,
                    out("rax") result,
                    out("r15") _,
                    clobber_abi("C"),
                );
            }
            assert_eq!(result, 0x1000 + k, "thunk {k} passes its own data");
            assert_eq!(r15_before, r15_after, "the caller's r15 survives");
        }
    }

    #[test]
    fn a_freed_thunk_returns_zero() {
        let thunk = Thunk::new(0x77, return_r15 as *const () as usize).unwrap();
        // SAFETY: as above.
        let function: extern "C" fn() -> usize =
            unsafe { std::mem::transmute(thunk.code_address()) };
        assert_eq!(function(), 0x77);
        drop(thunk);
        assert_eq!(function(), 0, "a freed thunk calls `freed_callback`");
    }

    #[test]
    fn a_reused_slot_carries_its_new_data() {
        let entry = return_r15 as *const () as usize;
        // More than the quarantine, freed and taken again: slots are reused (other tests
        // running at once may take some of them).
        let count = QUARANTINE + 2 * SLOTS;
        let first: Vec<Thunk> = (0..count).map(|k| Thunk::new(k, entry).unwrap()).collect();
        drop(first);
        let second: Vec<Thunk> = (0..count).map(|k| Thunk::new(7 * k, entry).unwrap()).collect();
        for (k, thunk) in second.iter().enumerate() {
            // SAFETY: as above.
            let function: extern "C" fn() -> usize =
                unsafe { std::mem::transmute(thunk.code_address()) };
            assert_eq!(function(), 7 * k);
        }
    }
}
