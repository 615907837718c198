//! Shared by the integration tests: argument storage with the stub entry's layout, and the
//! test library loaded once.

#![allow(dead_code)] // each test binary uses a different part

use std::ffi::c_void;
use std::sync::OnceLock;

use jit::{CallPath, Caller, Signature, Type};

/// 16-byte-aligned storage, enough for any scalar or `long double`.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
pub struct Slot(pub [u8; 16]);

/// Argument storage and the `args` array pointing into it.
pub struct Args {
    storage: Vec<Vec<Slot>>,
    pointers: Vec<*mut c_void>,
}

impl Args {
    pub fn new(values: &[Vec<u8>]) -> Args {
        let mut storage: Vec<Vec<Slot>> = values
            .iter()
            .map(|bytes| {
                let mut slots = vec![Slot::default(); bytes.len().div_ceil(16).max(1)];
                as_bytes_mut(&mut slots)[..bytes.len()].copy_from_slice(bytes);
                slots
            })
            .collect();
        let pointers = storage.iter_mut().map(|slots| slots.as_mut_ptr().cast()).collect();
        Args { storage, pointers }
    }

    pub fn as_ptr(&self) -> *const *mut c_void {
        self.pointers.as_ptr()
    }
}

pub fn as_bytes_mut(slots: &mut [Slot]) -> &mut [u8] {
    // SAFETY: `Slot` is plain bytes with no padding.
    unsafe { std::slice::from_raw_parts_mut(slots.as_mut_ptr().cast(), slots.len() * 16) }
}

/// Calls `target` through `caller` and returns the whole return buffer.
pub fn call(caller: &Caller, target: *const c_void, args: &[Vec<u8>]) -> Vec<u8> {
    assert_eq!(args.len(), caller.signature().args().len());
    let args = Args::new(args);
    let size = caller.signature().ret_buffer_size();
    let mut ret = vec![Slot::default(); size.div_ceil(16)];
    // SAFETY: the tests pair each target with its C signature and pass storage of each
    // argument's size; `ret` has `ret_buffer_size` bytes.
    unsafe { caller.call(target, args.as_ptr(), ret.as_mut_ptr().cast()) };
    as_bytes_mut(&mut ret)[..size].to_vec()
}

/// The callers a test compares: the default path (asserted to be the JIT unless the
/// signature is variadic) and libffi, when libffi can express it.
pub fn both_paths(signature: &Signature) -> Vec<Caller> {
    let default = Caller::new(signature.clone()).expect("a caller for every test signature");
    let jit_expected = !signature.is_variadic();
    if jit_expected {
        assert_eq!(default.path(), &CallPath::Jit, "{signature} must be on the JIT path");
    }
    let mut callers = vec![default];
    if jit_expected {
        if let Ok(libffi) = Caller::with_libffi(signature.clone()) {
            callers.push(libffi);
        }
    }
    callers
}

pub struct TestLibrary(libloading::Library);

impl TestLibrary {
    pub fn get() -> &'static TestLibrary {
        static LIBRARY: OnceLock<TestLibrary> = OnceLock::new();
        LIBRARY.get_or_init(|| {
            // SAFETY: the test library has no initialisers with side effects.
            TestLibrary(
                unsafe { libloading::Library::new(clib::TEST_LIBRARY) }.expect("load libjittest"),
            )
        })
    }

    pub fn symbol(&self, name: &str) -> *const c_void {
        // SAFETY: the symbol is only used as an address.
        let symbol = unsafe { self.0.get::<*const c_void>(name.as_bytes()) };
        let symbol = symbol.unwrap_or_else(|e| panic!("{name}: {e}"));
        *symbol
    }
}

pub fn sig(ret: Type, args: Vec<Type>) -> Signature {
    Signature::new(ret, args).expect("valid test signature")
}

pub fn bytes_of<T: Copy>(value: T) -> Vec<u8> {
    // SAFETY: reading the bytes of a `Copy` scalar.
    unsafe { std::slice::from_raw_parts((&value as *const T).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

pub fn u64_at(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}
