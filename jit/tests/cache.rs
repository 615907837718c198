//! The stub cache: shared between threads, one stub per signature, W^X code.

mod support;

use std::collections::HashSet;

use jit::{Aggregate, CallPath, Caller, StubCache, Type};
use support::{bytes_of, call, sig, u64_at, TestLibrary};

#[test]
fn equal_signatures_share_one_stub() {
    let cache = StubCache::new();
    let signature = sig(Type::I32, vec![Type::I32, Type::I32]);
    let first = cache.caller(signature.clone(), true).unwrap();
    let second = cache.caller(signature, true).unwrap();
    let entry = |caller: &Caller| caller.stub().unwrap().entry as usize;
    assert_eq!(entry(&first), entry(&second));
    assert_eq!(cache.stats().stubs, 1);
    let other = cache.caller(sig(Type::I64, vec![Type::I32, Type::I32]), true).unwrap();
    assert_ne!(entry(&first), entry(&other));
    assert_eq!(cache.stats().stubs, 2);
}

#[test]
fn compiled_code_is_executable_and_never_writable() {
    let caller = Caller::new(sig(Type::F64, vec![Type::F64, Type::F64])).unwrap();
    let address = caller.stub().unwrap().entry as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapping = maps
        .lines()
        .find(|line| {
            let range = line.split_whitespace().next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            (start..end).contains(&address)
        })
        .expect("the stub is mapped");
    let permissions = mapping.split_whitespace().nth(1).unwrap();
    assert!(permissions.starts_with("r-x"), "stub mapping is {permissions}: {mapping}");
}

#[test]
fn many_threads_compile_and_call_concurrently() {
    let lib = TestLibrary::get();
    // An address, so that threads can share it.
    let pick = lib.symbol("i64_pick10") as usize;
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            std::thread::spawn(move || {
                let mut entries = HashSet::new();
                for round in 0..200u64 {
                    // Signatures overlap between threads: the same ones are compiled and
                    // looked up concurrently. Extra struct arguments vary the signature;
                    // `i64_pick10` never reads past its own eleven arguments.
                    let mut types = vec![Type::I32];
                    types.extend(std::iter::repeat_n(Type::I64, 10));
                    let extra = (round % 5) as usize;
                    let filler =
                        Type::aggregate(Aggregate::c_struct(vec![Type::I64; extra + 1]).unwrap());
                    types.extend(std::iter::repeat_n(filler.clone(), extra));
                    let caller = Caller::new(sig(Type::I64, types)).unwrap();
                    assert_eq!(caller.path(), &CallPath::Jit);
                    entries.insert(caller.stub().unwrap().entry as usize);
                    let which = ((thread + round) % 10) as i32;
                    let mut args = vec![bytes_of(which)];
                    args.extend((0..10).map(|k| bytes_of(k * 1000 + thread as i64)));
                    args.extend(std::iter::repeat_n(vec![0u8; filler.size()], extra));
                    let ret = call(&caller, pick as *const std::ffi::c_void, &args);
                    assert_eq!(u64_at(&ret) as i64, which as i64 * 1000 + thread as i64);
                }
                entries
            })
        })
        .collect();
    let mut all = HashSet::new();
    for thread in threads {
        let entries = thread.join().expect("no thread panicked");
        assert_eq!(entries.len(), 5, "one stub per distinct signature in each thread");
        all.extend(entries);
    }
    assert_eq!(all.len(), 5, "threads share the stubs of equal signatures");
}
