//! Differential testing of both call paths against gcc.
//!
//! A seeded generator makes random signatures (scalars of every type, structs, unions,
//! packed structs, nested aggregates and arrays, `long double`, variadic tails) and writes,
//! for each, a C function that folds every argument into a checksum and builds its return
//! value from it. gcc compiles them (its `_Static_assert`s also check that our layouts are
//! gcc's). Every function is called through the JIT stub and through libffi, and both results
//! must equal the value this file computes independently in Rust.
//!
//! Knobs: `JITCTYPES_DIFF_COUNT` (default 10000 signatures), `JITCTYPES_DIFF_SEED`.

mod support;

use std::fmt::Write as _;
use std::path::Path;

use clib::generated::{
    c_scalar, env_number, fold_statements, fold_value, scalar_bits, significant_size, CWriter, Rng,
    C_PRELUDE,
};
use clib::{f80_from_i64, mix, next};
use jit::{Aggregate, AggregateKind, CallError, CallPath, Caller, Signature, Type};
use support::call;

/// What the generator may put into a type.
#[derive(Clone, Copy)]
struct Allow {
    long_double: bool,
    /// Union members are filled with random bytes, so no type with invalid bit patterns
    /// (`bool`, `long double`) may appear inside one.
    in_union: bool,
}

fn random_scalar(rng: &mut Rng, allow: Allow) -> Type {
    use Type::*;
    const COMMON: [Type; 12] = [Bool, I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, Pointer];
    if allow.long_double && !allow.in_union && rng.chance(8) {
        return LongDouble;
    }
    loop {
        let ty = COMMON[rng.below(COMMON.len())].clone();
        if !(allow.in_union && ty == Bool) {
            return ty;
        }
    }
}

fn random_member(rng: &mut Rng, depth: usize, allow: Allow) -> Type {
    match rng.below(100) {
        0..=69 => random_scalar(rng, allow),
        70..=82 => Type::array(random_scalar(rng, allow), 1 + rng.below(5)).unwrap(),
        _ if depth < 2 => random_aggregate(rng, depth + 1, allow),
        _ => random_scalar(rng, allow),
    }
}

fn random_aggregate(rng: &mut Rng, depth: usize, allow: Allow) -> Type {
    let count = 1 + rng.below(if depth == 0 { 6 } else { 4 });
    let roll = rng.below(100);
    if roll < 12 {
        let allow = Allow { in_union: true, ..allow };
        let members = (0..count).map(|_| random_member(rng, depth, allow)).collect();
        return Type::aggregate(Aggregate::c_union(members).unwrap());
    }
    let members = (0..count).map(|_| random_member(rng, depth, allow)).collect();
    let pack = (roll < 22).then(|| [1, 2, 4, 8][rng.below(4)]);
    Type::aggregate(Aggregate::packed_struct(members, pack).unwrap())
}

fn random_value_type(rng: &mut Rng, allow: Allow) -> Type {
    if rng.chance(35) {
        random_aggregate(rng, 0, allow)
    } else {
        random_scalar(rng, allow)
    }
}

fn random_signature(rng: &mut Rng) -> Signature {
    let allow = Allow { long_double: rng.chance(4), in_union: false };
    let ret = if rng.chance(12) { Type::Void } else { random_value_type(rng, allow) };
    let count = match rng.below(10) {
        0..=5 => rng.below(7),
        6..=8 => 7 + rng.below(8),
        _ => 15 + rng.below(12),
    };
    let mut args: Vec<Type> = (0..count).map(|_| random_value_type(rng, allow)).collect();
    if rng.chance(5) {
        let fixed = args.len().min(1 + rng.below(3));
        args.truncate(fixed);
        let promoted = [Type::I32, Type::I64, Type::U64, Type::F64, Type::Pointer];
        args.extend((0..rng.below(8)).map(|_| promoted[rng.below(promoted.len())].clone()));
        if fixed == 0 {
            // C needs one named parameter before `...`.
            args.insert(0, Type::I32);
            return Signature::variadic(ret, args, 1).unwrap();
        }
        return Signature::variadic(ret, args, fixed).unwrap();
    }
    Signature::new(ret, args).unwrap()
}

// ---- Values: random argument bytes, and the checksum gcc's code will compute. ----

/// Random storage for a value of `ty`: scalars get valid values, padding and unions
/// random bytes.
fn random_value(rng: &mut Rng, ty: &Type) -> Vec<u8> {
    let mut bytes = rng.bytes(ty.size());
    if !matches!(ty, Type::Aggregate(a) if a.kind() == AggregateKind::Union) {
        fix_scalars(rng, ty, 0, &mut bytes);
    }
    bytes
}

fn fix_scalars(rng: &mut Rng, ty: &Type, base: usize, bytes: &mut [u8]) {
    match ty {
        Type::Bool => bytes[base] = (rng.next_u64() & 1) as u8,
        Type::LongDouble => {
            let value = f80_from_i64(rng.next_u64() as i64);
            bytes[base..base + 10].copy_from_slice(&value[..10]);
        }
        Type::Aggregate(aggregate) if aggregate.kind() == AggregateKind::Struct => {
            for field in aggregate.fields() {
                fix_scalars(rng, &field.ty, base + field.offset, bytes);
            }
        }
        Type::Array { element, len } => {
            for index in 0..*len {
                fix_scalars(rng, element, base + index * element.size(), bytes);
            }
        }
        _ => {}
    }
}

/// The return value gcc's code builds from the checksum `h`, and the mask of its
/// significant bytes.
fn expected_return(ty: &Type, mut h: u64) -> (Vec<u8>, Vec<bool>) {
    let mut bytes = vec![0u8; ty.ret_buffer_len()];
    let mut mask = vec![false; bytes.len()];
    if ty.is_scalar() {
        let value = scalar_from(ty, h);
        let widened = widen(ty, &value);
        let significant = if *ty == Type::LongDouble { 10 } else { widened.len() };
        bytes[..widened.len()].copy_from_slice(&widened);
        mask[..significant].fill(true);
        return (bytes, mask);
    }
    build_aggregate(ty, 0, &mut h, &mut bytes, &mut mask);
    (bytes, mask)
}

trait RetLen {
    fn ret_buffer_len(&self) -> usize;
}
impl RetLen for Type {
    fn ret_buffer_len(&self) -> usize {
        self.size().max(8)
    }
}

fn scalar_from(ty: &Type, h: u64) -> Vec<u8> {
    match ty {
        Type::Bool => vec![(h & 1) as u8],
        Type::LongDouble => f80_from_i64(h as i64).to_vec(),
        other => h.to_le_bytes()[..other.size()].to_vec(),
    }
}

/// The stub contract's return buffer of a scalar: integers widened to 64 bits.
fn widen(ty: &Type, value: &[u8]) -> Vec<u8> {
    if ty.is_float() || ty.size() == 8 {
        return value.to_vec();
    }
    let bits = scalar_bits(ty, value);
    bits.to_le_bytes().to_vec()
}

fn build_aggregate(ty: &Type, base: usize, h: &mut u64, bytes: &mut [u8], mask: &mut [bool]) {
    match ty {
        Type::Aggregate(aggregate) if aggregate.kind() == AggregateKind::Union => {
            for byte in &mut bytes[base..base + ty.size()] {
                *byte = next(h) as u8;
            }
            ty.for_each_scalar(base, &mut |offset, scalar| {
                mask[offset..offset + significant_size(scalar)].fill(true)
            });
        }
        Type::Aggregate(aggregate) => {
            for field in aggregate.fields() {
                build_aggregate(&field.ty, base + field.offset, h, bytes, mask);
            }
        }
        Type::Array { element, len } => {
            for index in 0..*len {
                build_aggregate(element, base + index * element.size(), h, bytes, mask);
            }
        }
        scalar => {
            let value = scalar_from(scalar, next(h));
            let size = significant_size(scalar);
            bytes[base..base + size].copy_from_slice(&value[..size]);
            mask[base..base + size].fill(true);
        }
    }
}

// ---- C code generation ----

/// C statements building the value at `path` from `h`, as `build_aggregate` expects.
fn build_statements(ty: &Type, path: &str, out: &mut String) {
    match ty {
        Type::Aggregate(aggregate) if aggregate.kind() == AggregateKind::Union => {
            writeln!(out, "  {{ u8 *b = (u8 *)&{path}; for (size_t k = 0; k < sizeof {path}; k++) b[k] = (u8)next(&h); }}").unwrap();
        }
        Type::Aggregate(aggregate) => {
            for (index, field) in aggregate.fields().iter().enumerate() {
                build_statements(&field.ty, &format!("{path}.f{index}"), out);
            }
        }
        Type::Array { element, len } => {
            for index in 0..*len {
                build_statements(element, &format!("{path}[{index}]"), out);
            }
        }
        scalar => writeln!(out, "  {path} = MAKE({}, next(&h));", c_scalar(scalar)).unwrap(),
    }
}

fn write_function(index: usize, signature: &Signature) -> String {
    let mut writer = CWriter::new(&format!("s{index}"));
    let ret = writer.type_name(signature.ret());
    let fixed = signature.fixed_args().unwrap_or(signature.args().len());
    let mut params: Vec<String> = signature.args()[..fixed]
        .iter()
        .enumerate()
        .map(|(k, ty)| writer.declare(ty, &format!("a{k}")))
        .collect();
    if signature.is_variadic() {
        params.push("...".into());
    }
    if params.is_empty() {
        params.push("void".into());
    }
    let mut body = String::new();
    writeln!(body, "  u64 h = {};", seed_of(index)).unwrap();
    for (k, ty) in signature.args().iter().enumerate() {
        if k < fixed {
            fold_statements(ty, &format!("a{k}"), &mut body);
        } else {
            if k == fixed {
                writeln!(body, "  va_list ap; va_start(ap, a{});", fixed - 1).unwrap();
            }
            let name = c_scalar(ty);
            writeln!(body, "  {{ {name} v = va_arg(ap, {name}); h = mix(h, BITS(v)); }}").unwrap();
        }
    }
    if signature.is_variadic() && signature.args().len() > fixed {
        writeln!(body, "  va_end(ap);").unwrap();
    }
    match signature.ret() {
        Type::Void => {
            writeln!(body, "  result_sink = h;").unwrap();
        }
        ty if ty.is_scalar() => writeln!(body, "  return MAKE({ret}, h);").unwrap(),
        ty => {
            writeln!(body, "  {ret} r; memset(&r, 0, sizeof r);").unwrap();
            build_statements(ty, "r", &mut body);
            writeln!(body, "  return r;").unwrap();
        }
    }
    format!("{}{ret} fn{index}({}) {{\n{body}}}\n", writer.source, params.join(", "))
}

fn seed_of(index: usize) -> u64 {
    mix(0x5eed, index as u64)
}

// ---- The test ----

struct Case {
    signature: Signature,
    args: Vec<Vec<u8>>,
}

#[derive(Default, Debug)]
struct Tally {
    signatures: usize,
    calls: usize,
    jit_path: usize,
    libffi_default: usize,
    struct_by_value_on_jit: usize,
    libffi_refused: usize,
    unsupported: usize,
    variadic: usize,
    long_double: usize,
    mismatches: Vec<String>,
}

fn compile_chunk(dir: &Path, chunk: usize, sources: &[String]) -> libloading::Library {
    let c_file = dir.join(format!("chunk{chunk}.c"));
    let so_file = dir.join(format!("libchunk{chunk}.so"));
    let mut text = String::from(C_PRELUDE);
    text.push_str("u64 result_sink;\n");
    for source in sources {
        text.push_str(source);
    }
    std::fs::write(&c_file, text).unwrap();
    clib::compile_shared(&c_file, &so_file, "-O1").unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: the generated library has no initialisers.
    unsafe { libloading::Library::new(&so_file) }.unwrap()
}

#[test]
fn random_signatures_agree_with_gcc_on_both_paths() {
    let count = env_number("JITCTYPES_DIFF_COUNT", 10_000) as usize;
    let seed = env_number("JITCTYPES_DIFF_SEED", 0x0f1f_2024);
    let chunk_size = 1000;
    let mut rng = Rng(seed);
    let cases: Vec<Case> = (0..count)
        .map(|_| {
            let signature = random_signature(&mut rng);
            let args = signature.args().iter().map(|ty| random_value(&mut rng, ty)).collect();
            Case { signature, args }
        })
        .collect();
    let sources: Vec<String> =
        cases.iter().enumerate().map(|(k, case)| write_function(k, &case.signature)).collect();

    let dir = std::env::temp_dir().join(format!("jitctypes-diff-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chunks: Vec<&[String]> = sources.chunks(chunk_size).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let libraries: Vec<libloading::Library> = std::thread::scope(|scope| {
        let per_thread = chunks.len().div_ceil(threads).max(1);
        let handles: Vec<_> = chunks
            .chunks(per_thread)
            .enumerate()
            .map(|(group, group_chunks)| {
                let dir = &dir;
                scope.spawn(move || {
                    group_chunks
                        .iter()
                        .enumerate()
                        .map(|(k, chunk)| compile_chunk(dir, group * per_thread + k, chunk))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
    });

    let mut tally = Tally::default();
    let only = std::env::var("JITCTYPES_DIFF_ONLY").ok().and_then(|v| v.parse::<usize>().ok());
    for (index, case) in cases.iter().enumerate() {
        if only.is_some_and(|only| only != index) {
            continue;
        }
        let library = &libraries[index / chunk_size];
        // SAFETY: only the address is used.
        let target =
            *unsafe { library.get::<*const std::ffi::c_void>(format!("fn{index}").as_bytes()) }
                .unwrap();
        // SAFETY: as above; `result_sink` is a `u64` that void functions store their checksum in.
        let sink = *unsafe { library.get::<*const u64>(b"result_sink") }.unwrap();
        check_case(index, case, target, sink, &sources[index], &mut tally);
    }
    std::fs::remove_dir_all(&dir).ok();

    let stats = jit::StubCache::global().stats();
    println!("differential: seed {seed:#x}, {tally:?}");
    println!("stub cache: {stats:?}");
    assert_eq!(tally.signatures, if only.is_some() { 1 } else { count });
    assert!(
        tally.mismatches.is_empty(),
        "{} mismatches of {} calls; first:\n{}",
        tally.mismatches.len(),
        tally.calls,
        tally.mismatches.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn check_case(
    index: usize,
    case: &Case,
    target: *const std::ffi::c_void,
    sink: *const u64,
    source: &str,
    tally: &mut Tally,
) {
    let signature = &case.signature;
    tally.signatures += 1;
    tally.variadic += usize::from(signature.is_variadic());
    tally.long_double += usize::from(signature.uses_long_double());
    let h = signature
        .args()
        .iter()
        .zip(&case.args)
        .fold(seed_of(index), |h, (ty, bytes)| fold_value(h, ty, bytes));
    let (expected, mask) = match signature.ret() {
        Type::Void => (h.to_le_bytes().to_vec(), vec![true; 8]),
        ty => expected_return(ty, h),
    };

    let jit_expected = !signature.is_variadic();
    let default = match Caller::new(signature.clone()) {
        Ok(caller) => caller,
        // Variadic (no JIT) with a struct libffi cannot describe (a small packed one).
        Err(CallError::Unsupported { .. }) if !jit_expected => {
            tally.unsupported += 1;
            return;
        }
        Err(error) => panic!("{signature}: {error}"),
    };
    match default.path() {
        CallPath::Jit => {
            tally.jit_path += 1;
            let by_value = |ty: &Type| matches!(ty, Type::Aggregate(_));
            if by_value(signature.ret()) || signature.args().iter().any(by_value) {
                tally.struct_by_value_on_jit += 1;
            }
        }
        CallPath::Libffi(reason) => {
            tally.libffi_default += 1;
            assert!(!jit_expected, "{signature} fell back to libffi: {reason}");
        }
    }
    let mut callers = vec![default];
    match Caller::with_libffi(signature.clone()) {
        Ok(libffi) if jit_expected => callers.push(libffi),
        Ok(_) => {}
        Err(_) => tally.libffi_refused += 1,
    }
    for caller in callers {
        tally.calls += 1;
        let mut ret = call(&caller, target, &case.args);
        if *signature.ret() == Type::Void {
            // SAFETY: `sink` points at the library's `u64 result_sink`.
            ret = unsafe { sink.read_volatile() }.to_le_bytes().to_vec();
        }
        let got: Vec<u8> =
            ret.iter().zip(&mask).map(|(b, keep)| if *keep { *b } else { 0 }).collect();
        let want: Vec<u8> =
            expected.iter().zip(&mask).map(|(b, keep)| if *keep { *b } else { 0 }).collect();
        if got != want {
            tally.mismatches.push(format!(
                "fn{index} {signature} via {:?}:\n  got  {got:02x?}\n  want {want:02x?}\n{source}",
                caller.path()
            ));
        }
    }
}
