//! Calls into the project's C test library (tests/clib/c/jittest.c) through the JIT path and
//! through libffi: every scalar type, register overflow, mixed orders, struct shapes by value
//! as arguments and returns, variadic functions.

mod support;

use std::ffi::c_void;

use clib::{f80_from_i64, f80_to_i64, mix};
use jit::{Aggregate, AggregateKind, CallPath, Caller, FallbackReason, Field, Signature, Type};
use support::{both_paths, bytes_of, call, sig, u64_at, TestLibrary};

/// A test value of a scalar type, as its storage bytes, made from a seed.
fn scalar_value(ty: &Type, seed: u64) -> Vec<u8> {
    let mut h = seed;
    let v = clib::next(&mut h);
    match ty {
        Type::Bool => vec![(v & 1) as u8],
        Type::F32 => bytes_of(((v >> 40) as i32) as f32 / 8.0),
        Type::F64 => bytes_of(((v >> 12) as i64) as f64 / 1024.0),
        Type::LongDouble => f80_from_i64((v >> 8) as i64 - (1 << 55)).to_vec(),
        other => v.to_le_bytes()[..other.size()].to_vec(),
    }
}

/// What the stub contract says the return buffer holds for a scalar: integers widened to
/// 64 bits, floats as themselves.
fn widened(ty: &Type, value: &[u8]) -> Vec<u8> {
    let signed = matches!(ty, Type::I8 | Type::I16 | Type::I32 | Type::I64);
    let wide = match value.len() {
        1 if signed => value[0] as i8 as i64 as u64,
        2 if signed => i16::from_le_bytes([value[0], value[1]]) as i64 as u64,
        4 if signed => i32::from_le_bytes(value.try_into().unwrap()) as i64 as u64,
        _ if ty.is_float() => return value.to_vec(),
        _ => {
            let mut bytes = [0u8; 8];
            bytes[..value.len()].copy_from_slice(value);
            u64::from_le_bytes(bytes)
        }
    };
    wide.to_le_bytes().to_vec()
}

const SCALARS: [(&str, Type); 13] = [
    ("i8", Type::I8),
    ("u8", Type::U8),
    ("i16", Type::I16),
    ("u16", Type::U16),
    ("i32", Type::I32),
    ("u32", Type::U32),
    ("i64", Type::I64),
    ("u64", Type::U64),
    ("f32", Type::F32),
    ("f64", Type::F64),
    ("f80", Type::LongDouble),
    ("ptr", Type::Pointer),
    ("boolean", Type::Bool),
];

fn significant(ty: &Type, value: &[u8]) -> Vec<u8> {
    if *ty == Type::LongDouble {
        value[..10].to_vec()
    } else {
        widened(ty, &value[..ty.size()])
    }
}

#[test]
fn every_scalar_type_round_trips() {
    let lib = TestLibrary::get();
    for (name, ty) in SCALARS {
        let echo = lib.symbol(&format!("{name}_echo"));
        for caller in both_paths(&sig(ty.clone(), vec![ty.clone()])) {
            for seed in 0..50 {
                let value = scalar_value(&ty, seed);
                let ret = call(&caller, echo, std::slice::from_ref(&value));
                assert_eq!(
                    significant(&ty, &ret),
                    significant(&ty, &value),
                    "{name} via {:?}",
                    caller.path()
                );
            }
        }
    }
}

#[test]
fn ten_arguments_of_each_type_overflow_the_registers() {
    let lib = TestLibrary::get();
    for (name, ty) in SCALARS {
        let pick = lib.symbol(&format!("{name}_pick10"));
        let mut arg_types = vec![Type::I32];
        arg_types.extend(std::iter::repeat_n(ty.clone(), 10));
        for caller in both_paths(&sig(ty.clone(), arg_types)) {
            let values: Vec<Vec<u8>> = (0..10).map(|k| scalar_value(&ty, 100 + k)).collect();
            for which in 0..10 {
                let mut args = vec![bytes_of(which as i32)];
                args.extend(values.iter().cloned());
                let ret = call(&caller, pick, &args);
                let expected = &values[which];
                assert_eq!(
                    significant(&ty, &ret),
                    significant(&ty, expected),
                    "{name} #{which} via {:?}",
                    caller.path()
                );
            }
        }
    }
}

#[test]
fn narrow_results_are_widened_and_void_calls_work() {
    let lib = TestLibrary::get();
    for caller in both_paths(&sig(Type::I8, vec![])) {
        let ret = call(&caller, lib.symbol("i8_negative"), &[]);
        assert_eq!(u64_at(&ret) as i64, -5);
    }
    for caller in both_paths(&sig(Type::U16, vec![])) {
        assert_eq!(u64_at(&call(&caller, lib.symbol("u16_large"), &[])), 0xfedc);
    }
    for caller in both_paths(&sig(Type::Bool, vec![Type::Bool])) {
        assert_eq!(u64_at(&call(&caller, lib.symbol("bool_not"), &[vec![0]])), 1);
        assert_eq!(u64_at(&call(&caller, lib.symbol("bool_not"), &[vec![1]])), 0);
    }
    let nothing = lib.symbol("nothing");
    for caller in both_paths(&sig(Type::Void, vec![])) {
        call(&caller, nothing, &[]);
    }
    let touch = both_paths(&sig(Type::Void, vec![Type::I32]));
    let read = Caller::new(sig(Type::I32, vec![])).unwrap();
    for (caller, value) in touch.iter().zip([17, 23]) {
        call(caller, lib.symbol("touch"), &[bytes_of(value as i32)]);
        assert_eq!(u64_at(&call(&read, lib.symbol("touched_value"), &[])), value);
    }
}

#[test]
fn long_double_arithmetic_on_both_paths() {
    let lib = TestLibrary::get();
    let signature = sig(Type::LongDouble, vec![Type::LongDouble, Type::LongDouble]);
    for caller in both_paths(&signature) {
        let args = [f80_from_i64(40).to_vec(), f80_from_i64(-2).to_vec()];
        let ret = call(&caller, lib.symbol("f80_add"), &args);
        assert_eq!(f80_to_i64(ret[..16].try_into().unwrap()), Some(38), "via {:?}", caller.path());
    }
}

/// gcc returns `struct { long double }` in st(0); libffi would read it from memory, so the
/// libffi path refuses it and the JIT, which follows gcc, takes it.
#[test]
fn struct_of_one_long_double_is_returned_in_st0_by_the_jit() {
    let lib = TestLibrary::get();
    let wrapped = Type::aggregate(Aggregate::c_struct(vec![Type::LongDouble]).unwrap());
    let signature = sig(wrapped, vec![Type::LongDouble, Type::LongDouble]);
    assert!(Caller::with_libffi(signature.clone()).is_err());
    let caller = Caller::new(signature).unwrap();
    assert_eq!(caller.path(), &CallPath::Jit);
    let args = [f80_from_i64(40).to_vec(), f80_from_i64(2).to_vec()];
    let ret = call(&caller, lib.symbol("f80_wrap_add"), &args);
    assert_eq!(f80_to_i64(ret[..16].try_into().unwrap()), Some(42));
}

#[test]
fn mixed_integer_and_float_arguments_in_every_order() {
    let lib = TestLibrary::get();
    use Type::*;
    let types = [
        I8, F32, U16, F64, I32, F64, U64, F32, I64, F64, Pointer, F64, U8, F32, I16, F64, U32, F64,
        Bool, F32,
    ];
    let target = lib.symbol("mixed20");
    for caller in both_paths(&sig(U64, types.to_vec())) {
        for seed in 0..20 {
            let values: Vec<Vec<u8>> = types
                .iter()
                .enumerate()
                .map(|(k, ty)| scalar_value(ty, seed * 64 + k as u64))
                .collect();
            let expected =
                types.iter().zip(&values).fold(0, |h, (ty, value)| mix(h, fold_bits(ty, value)));
            assert_eq!(
                u64_at(&call(&caller, target, &values)),
                expected,
                "via {:?}",
                caller.path()
            );
        }
    }
}

/// The C `BITS()` of a scalar: integers sign- or zero-extended, floats as their bits.
fn fold_bits(ty: &Type, value: &[u8]) -> u64 {
    u64_at(&widened(ty, value).iter().copied().chain([0; 8]).collect::<Vec<_>>())
}

// ---- Structs by value ----

fn strukt(members: Vec<Type>) -> Type {
    Type::aggregate(Aggregate::c_struct(members).unwrap())
}

fn array(ty: Type, len: usize) -> Type {
    Type::array(ty, len).unwrap()
}

/// The struct cases of jittest.c, mirrored; their layouts are checked against gcc's.
fn struct_cases() -> Vec<(&'static str, Type)> {
    use Type::*;
    let s4 = strukt(vec![I16, U8, I8]);
    let s8f = strukt(vec![F32, F32]);
    let s12 = strukt(vec![I32, I32, F32]);
    let union = |members| Type::aggregate(jit::Aggregate::c_union(members).unwrap());
    let p7 = Type::aggregate(jit::Aggregate::packed_struct(vec![I8, I32, I16], Some(1)).unwrap());
    let a16 = jit::Aggregate::with_layout(
        AggregateKind::Struct,
        16,
        16,
        vec![Field { offset: 0, ty: F32 }],
    );
    vec![
        ("S1", strukt(vec![I8])),
        ("S2", strukt(vec![U8, I8])),
        ("S3", strukt(vec![array(U8, 3)])),
        ("S4", s4.clone()),
        ("S4F", strukt(vec![F32])),
        ("S8", strukt(vec![I32, F32])),
        ("S8F", s8f.clone()),
        ("S8D", strukt(vec![F64])),
        ("S12", s12.clone()),
        ("S12F", strukt(vec![F32, F32, F32])),
        ("S12X", strukt(vec![F32, F32, I32])),
        ("S16LD", strukt(vec![I64, F64])),
        ("S16DL", strukt(vec![F64, I64])),
        ("S16DD", strukt(vec![F64, F64])),
        ("S16LL", strukt(vec![I64, U64])),
        ("S16MIX", strukt(vec![I8, U16, F32, F32, F32])),
        ("S16ARR", strukt(vec![array(F32, 3), I32])),
        ("S16NEST", strukt(vec![s8f, s4, F32])),
        ("S17", strukt(vec![array(I8, 17)])),
        ("S24", strukt(vec![I64, F64, U32])),
        ("S32", strukt(vec![array(F64, 4)])),
        ("S64", strukt(vec![I64, F64, I8, I16, I32, array(F32, 3), s12, U64, Pointer])),
        ("S3B", strukt(vec![Bool, I8, Bool])),
        ("U8", union(vec![F64, array(I32, 2)])),
        ("U12", union(vec![array(F32, 3), I64, I8])),
        ("P7", p7),
        ("A16", Type::aggregate(a16.unwrap())),
    ]
}

/// A byte mask of the bytes that hold scalars (padding bytes may differ between paths).
fn scalar_bytes(ty: &Type) -> Vec<bool> {
    let mut mask = vec![false; ty.size()];
    ty.for_each_scalar(0, &mut |offset, scalar| mask[offset..offset + scalar.size()].fill(true));
    mask
}

fn masked(mask: &[bool], bytes: &[u8]) -> Vec<u8> {
    mask.iter().zip(bytes).map(|(keep, byte)| if *keep { *byte } else { 0 }).collect()
}

fn make_into(name: &str, ty: &Type, seed: i64) -> Vec<u8> {
    let target = TestLibrary::get().symbol(&format!("{name}_make_into"));
    // SAFETY: `S_make_into(int64_t, S *)` writes sizeof(S) bytes to a buffer of that size.
    let make: extern "C" fn(i64, *mut u8) = unsafe { std::mem::transmute(target) };
    let mut buffer = vec![0u8; ty.size()];
    make(seed, buffer.as_mut_ptr());
    buffer
}

fn sum_ptr(name: &str, value: &[u8]) -> i64 {
    let target = TestLibrary::get().symbol(&format!("{name}_sum_ptr"));
    // SAFETY: `S_sum_ptr(const S *)` reads sizeof(S) bytes.
    let sum: extern "C" fn(*const u8) -> i64 = unsafe { std::mem::transmute(target) };
    let aligned: Vec<support::Slot> = {
        let mut slots = vec![support::Slot::default(); value.len().div_ceil(16)];
        support::as_bytes_mut(&mut slots)[..value.len()].copy_from_slice(value);
        slots
    };
    sum(aligned.as_ptr().cast())
}

#[test]
fn struct_layouts_match_gcc() {
    let lib = TestLibrary::get();
    for (name, ty) in struct_cases() {
        let target = lib.symbol(&format!("{name}_layout"));
        // SAFETY: `S_layout(size_t out[32])` writes at most 32 values.
        let layout: extern "C" fn(*mut usize) = unsafe { std::mem::transmute(target) };
        let mut out = [0usize; 32];
        layout(out.as_mut_ptr());
        let Type::Aggregate(aggregate) = &ty else { unreachable!() };
        let mut expected = vec![aggregate.size(), aggregate.align()];
        expected.extend(aggregate.fields().iter().map(|field| field.offset));
        expected.push(usize::MAX);
        assert_eq!(&out[..expected.len()], &expected[..], "layout of {name}");
    }
}

#[test]
fn structs_are_returned_by_value() {
    let lib = TestLibrary::get();
    for (name, ty) in struct_cases() {
        let mask = scalar_bytes(&ty);
        let make = lib.symbol(&format!("{name}_make"));
        for caller in both_paths(&sig(ty.clone(), vec![Type::I64])) {
            for seed in [1i64, -7, 1 << 40] {
                let ret = call(&caller, make, &[bytes_of(seed)]);
                let expected = make_into(name, &ty, seed);
                assert_eq!(
                    masked(&mask, &ret[..ty.size()]),
                    masked(&mask, &expected),
                    "{name} via {:?}",
                    caller.path()
                );
            }
        }
    }
}

#[test]
fn structs_are_passed_by_value() {
    let lib = TestLibrary::get();
    for (name, ty) in struct_cases() {
        let sum = lib.symbol(&format!("{name}_sum"));
        for caller in both_paths(&sig(Type::I64, vec![ty.clone()])) {
            for seed in [3i64, -11, 1 << 50] {
                let value = make_into(name, &ty, seed);
                let ret = call(&caller, sum, std::slice::from_ref(&value));
                assert_eq!(
                    u64_at(&ret) as i64,
                    sum_ptr(name, &value),
                    "{name} via {:?}",
                    caller.path()
                );
            }
        }
    }
}

#[test]
fn structs_after_most_registers_are_taken() {
    let lib = TestLibrary::get();
    for (name, ty) in struct_cases() {
        let target = lib.symbol(&format!("{name}_sum_late"));
        use Type::{F64, I64};
        let types =
            vec![F64, I64, I64, I64, I64, I64, F64, F64, F64, F64, F64, F64, ty.clone(), F64, I64];
        for caller in both_paths(&sig(I64, types.clone())) {
            let value = make_into(name, &ty, 99);
            let ints: Vec<i64> = vec![10, -20, 30, -40, 50, 60];
            let doubles: Vec<f64> = (0..8).map(|k| 0.5 + k as f64).collect();
            let args = vec![
                bytes_of(doubles[0]),
                bytes_of(ints[0]),
                bytes_of(ints[1]),
                bytes_of(ints[2]),
                bytes_of(ints[3]),
                bytes_of(ints[4]),
                bytes_of(doubles[1]),
                bytes_of(doubles[2]),
                bytes_of(doubles[3]),
                bytes_of(doubles[4]),
                bytes_of(doubles[5]),
                bytes_of(doubles[6]),
                value.clone(),
                bytes_of(doubles[7]),
                bytes_of(ints[5]),
            ];
            let mut expected = sum_ptr(name, &value) as u64;
            expected = ints.iter().fold(expected, |h, v| mix(h, *v as u64));
            expected = doubles.iter().fold(expected, |h, v| mix(h, v.to_bits()));
            let ret = call(&caller, target, &args);
            assert_eq!(u64_at(&ret), expected, "{name} via {:?}", caller.path());
        }
    }
}

#[test]
fn libffi_refuses_what_it_cannot_describe_and_the_jit_takes_it() {
    let cases = struct_cases();
    for name in ["P7", "A16"] {
        let ty = cases.iter().find(|(case, _)| *case == name).unwrap().1.clone();
        let signature = sig(Type::I64, vec![ty]);
        assert!(Caller::with_libffi(signature.clone()).is_err(), "{name}");
        assert_eq!(Caller::new(signature).unwrap().path(), &CallPath::Jit);
    }
    // Neither path: a variadic call (JIT) with a packed struct among its fixed arguments.
    let p7 = cases.iter().find(|(case, _)| *case == "P7").unwrap().1.clone();
    let signature = Signature::variadic(Type::I32, vec![p7, Type::I64], 1).unwrap();
    let error = Caller::new(signature).unwrap_err();
    assert!(error.to_string().contains("variadic"), "{error}");
}

// ---- Variadic ----

fn variadic(ret: Type, args: Vec<Type>, fixed: usize) -> Signature {
    Signature::variadic(ret, args, fixed).unwrap()
}

#[test]
fn variadic_sums() {
    let lib = TestLibrary::get();
    for count in [0usize, 1, 5, 12] {
        let mut types = vec![Type::I32];
        types.extend(std::iter::repeat_n(Type::I64, count));
        let caller = Caller::new(variadic(Type::I64, types, 1)).unwrap();
        assert_eq!(caller.path(), &CallPath::Libffi(FallbackReason::Variadic));
        let values: Vec<i64> = (0..count as i64).map(|k| k * 1000 - 3).collect();
        let mut args = vec![bytes_of(count as i32)];
        args.extend(values.iter().map(|v| bytes_of(*v)));
        let expected: i64 = values.iter().enumerate().map(|(k, v)| v * (k as i64 + 1)).sum();
        assert_eq!(u64_at(&call(&caller, lib.symbol("var_sum"), &args)) as i64, expected);

        let mut types = vec![Type::I32];
        types.extend(std::iter::repeat_n(Type::F64, count));
        let caller = Caller::new(variadic(Type::F64, types, 1)).unwrap();
        let values: Vec<f64> = (0..count).map(|k| k as f64 * 0.25 + 1.0).collect();
        let mut args = vec![bytes_of(count as i32)];
        args.extend(values.iter().map(|v| bytes_of(*v)));
        let expected: f64 = values.iter().enumerate().map(|(k, v)| v * (k as f64 + 1.0)).sum();
        let ret = call(&caller, lib.symbol("var_sum_f64"), &args);
        assert_eq!(f64::from_le_bytes(ret[..8].try_into().unwrap()), expected);
    }
}

#[test]
fn printf_like_formatting() {
    let lib = TestLibrary::get();
    let format = c"%d|%s|%.3f|%ld|%c";
    let word = c"word";
    let mut buffer = [0u8; 64];
    use Type::*;
    let caller =
        Caller::new(variadic(I32, vec![Pointer, U64, Pointer, I32, Pointer, F64, I64, I32], 3))
            .unwrap();
    let args = vec![
        bytes_of(buffer.as_mut_ptr() as usize),
        bytes_of(buffer.len() as u64),
        bytes_of(format.as_ptr() as usize),
        bytes_of(-42i32),
        bytes_of(word.as_ptr() as usize),
        bytes_of(2.5f64),
        bytes_of(1i64 << 40),
        bytes_of(b'Z' as i32),
    ];
    let expected = "-42|word|2.500|1099511627776|Z";
    let written = u64_at(&call(&caller, lib.symbol("var_format"), &args)) as i32;
    assert_eq!(written as usize, expected.len());
    assert_eq!(&buffer[..expected.len()], expected.as_bytes());

    // The C library's own snprintf, found in the running process.
    let this = libloading::os::unix::Library::this();
    // SAFETY: only the address is used.
    let snprintf = unsafe { this.get::<*const c_void>(b"snprintf") }.unwrap();
    buffer.fill(0);
    let written = u64_at(&call(&caller, *snprintf, &args)) as i32;
    assert_eq!(written as usize, expected.len());
    assert_eq!(&buffer[..expected.len()], expected.as_bytes());
}
