//! Criterion benchmarks of the Rust call paths: ns per call through a compiled stub, through
//! libffi and as a direct `extern "C"` call through a function pointer, for a few
//! signatures; and µs to compile the stub of a new signature.
//!
//! Names follow `call / <path> / <signature>` and `compile / <signature>`.

use std::ffi::c_void;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jit::sysv::plan_call;
use jit::{Caller, Signature, StubCompiler, Type};

struct Case {
    name: &'static str,
    symbol: &'static str,
    signature: Signature,
    args: Vec<[u64; 2]>,
    direct: fn(*const c_void, &[[u64; 2]]) -> u64,
}

fn f64_bits(value: f64) -> [u64; 2] {
    [value.to_bits(), 0]
}

fn cases() -> Vec<Case> {
    use Type::*;
    let pt = Type::aggregate(jit::Aggregate::c_struct(vec![F64, F64]).unwrap());
    let sig = |ret, args| Signature::new(ret, args).unwrap();
    // SAFETY (all `direct` functions): each transmutes the symbol of the case to its C type.
    vec![
        Case {
            name: "void()",
            symbol: "nop",
            signature: sig(Void, vec![]),
            args: vec![],
            direct: |f, _| {
                let f: extern "C" fn() = unsafe { std::mem::transmute(f) };
                f();
                0
            },
        },
        Case {
            name: "i32(i32,i32)",
            symbol: "add_i32",
            signature: sig(I32, vec![I32, I32]),
            args: vec![[2, 0], [3, 0]],
            direct: |f, a| {
                let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(f) };
                f(a[0][0] as i32, a[1][0] as i32) as u64
            },
        },
        Case {
            name: "f64(f64,f64)",
            symbol: "add_f64",
            signature: sig(F64, vec![F64, F64]),
            args: vec![f64_bits(1.5), f64_bits(2.25)],
            direct: |f, a| {
                let f: extern "C" fn(f64, f64) -> f64 = unsafe { std::mem::transmute(f) };
                f(f64::from_bits(a[0][0]), f64::from_bits(a[1][0])).to_bits()
            },
        },
        Case {
            name: "i64(i64,f64,i64,f64,i64,f64)",
            symbol: "mix6",
            signature: sig(I64, vec![I64, F64, I64, F64, I64, F64]),
            args: vec![[1, 0], f64_bits(2.0), [3, 0], f64_bits(4.0), [5, 0], f64_bits(6.0)],
            direct: |f, a| {
                let f: extern "C" fn(i64, f64, i64, f64, i64, f64) -> i64 =
                    unsafe { std::mem::transmute(f) };
                let d = |k: usize| f64::from_bits(a[k][0]);
                f(a[0][0] as i64, d(1), a[2][0] as i64, d(3), a[4][0] as i64, d(5)) as u64
            },
        },
        Case {
            name: "f64(struct{f64,f64})",
            symbol: "pt_norm2",
            signature: sig(F64, vec![pt]),
            args: vec![[3.0f64.to_bits(), 4.0f64.to_bits()]],
            direct: |f, a| {
                #[repr(C)]
                struct Pt(f64, f64);
                let f: extern "C" fn(Pt) -> f64 = unsafe { std::mem::transmute(f) };
                f(Pt(f64::from_bits(a[0][0]), f64::from_bits(a[0][1]))).to_bits()
            },
        },
    ]
}

fn bench_calls(c: &mut Criterion) {
    // SAFETY: the test library has no initialisers with side effects.
    let library = unsafe { libloading::Library::new(clib::TEST_LIBRARY) }.expect("libjittest");
    for case in cases() {
        // SAFETY: only the address is used, with the case's own signature.
        let target = *unsafe { library.get::<*const c_void>(case.symbol.as_bytes()) }.unwrap();
        let mut storage = case.args.clone();
        let pointers: Vec<*mut c_void> =
            storage.iter_mut().map(|slot| slot.as_mut_ptr().cast()).collect();
        let mut ret = [0u64; 2];
        let paths = [
            ("jit", Caller::new(case.signature.clone()).unwrap()),
            ("libffi", Caller::with_libffi(case.signature.clone()).unwrap()),
        ];
        for (path, caller) in paths {
            c.bench_function(&format!("call / {path} / {}", case.name), |b| {
                b.iter(|| {
                    // SAFETY: the storage holds one value of each argument type.
                    unsafe {
                        caller.call(black_box(target), pointers.as_ptr(), ret.as_mut_ptr().cast())
                    };
                    black_box(ret[0])
                })
            });
        }
        c.bench_function(&format!("call / direct / {}", case.name), |b| {
            b.iter(|| (case.direct)(black_box(target), black_box(&case.args)))
        });
    }
}

fn bench_compile(c: &mut Criterion) {
    let mut compiler = StubCompiler::new().unwrap();
    for case in cases() {
        let plan = plan_call(&case.signature).unwrap();
        c.bench_function(&format!("compile / {}", case.name), |b| {
            b.iter(|| compiler.compile(black_box(&plan)).unwrap().code_size)
        });
    }
}

criterion_group!(benches, bench_calls, bench_compile);
criterion_main!(benches);
