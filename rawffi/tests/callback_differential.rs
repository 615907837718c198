//! Callbacks against gcc-compiled C callers, on random signatures, both ways: through a
//! compiled callback stub (thunk + stub) and through a libffi closure.
//!
//! A seeded generator makes signatures from every scalar and from structs and unions of the
//! shapes the x86-64 System V ABI treats differently: small mixes in one register, 9–16
//! byte mixes in two, float pairs, structs over 16 bytes (memory), nested arrays, packed
//! and over-aligned structs, unions, `long double`; up to 20 arguments, ints, floats and
//! structs interleaved, so that registers run out and arguments go to the stack; void,
//! scalar and struct results, some returned through a hidden pointer. Hand-picked
//! signatures join them (70 arguments, a 4000-byte struct, `long double` after odd stack
//! slots, ...).
//!
//! For each, gcc compiles `u64 call<k>(callback, u8 *out)`: it builds every argument from a
//! seed of its position, folds them into a checksum *before* the call (so the checksum is
//! live across it, in a callee-saved register or the frame), calls the callback, folds the
//! result in, copies the result's bytes to `out` and returns the checksum. The Rust handler
//! checks that `args[i]` holds exactly the bytes Rust builds from the same seed and fills
//! the return buffer with a value built from the case's result seed; the checksum and the
//! bytes C received must be what Rust computes.
//!
//! Two more tests: callbacks called from threads Rust spawns (many calls at once), and
//! hundreds of callbacks of one signature (one shared stub, a thunk each), which must each
//! run their own handler, also after freed thunks are reused.
//!
//! Knobs: `CALLBACK_DIFF_COUNT` (default 300 random signatures), `CALLBACK_DIFF_SEED`,
//! `CALLBACK_DIFF_ONLY=<case>` (checks that case alone and prints its C caller).

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use clib::generated::{
    c_scalar, env_number, fold_statements, fold_value, over_alignment, significant_size, CWriter,
    Rng, C_PRELUDE,
};
use clib::{f80_from_i64, mix, next};
use jit::sysv::{classify_aggregate, plan_call, AggregateClass, RetPlan};
use jit::{Aggregate, AggregateKind, Signature, Type};
use libloading::Library;
use rawffi::callback::{Callback, Handler};

// ---------------------------------------------------------------------------------------
// Random signatures

const INTEGER_SCALARS: [Type; 10] = [
    Type::Bool,
    Type::I8,
    Type::U8,
    Type::I16,
    Type::U16,
    Type::I32,
    Type::U32,
    Type::I64,
    Type::U64,
    Type::Pointer,
];
const FLOAT_SCALARS: [Type; 2] = [Type::F32, Type::F64];

/// What the generator may put into a type.
#[derive(Clone, Copy)]
struct Allow {
    /// How often a scalar is a float: signatures lean to integers, to floats (to run out of
    /// SSE registers, which takes more than eight) or neither.
    float_percent: usize,
    long_double: bool,
    /// Union members are filled with arbitrary bytes, so no type with invalid bit patterns
    /// (`bool`, `long double`) may appear inside one.
    in_union: bool,
}

fn random_scalar(rng: &mut Rng, allow: Allow) -> Type {
    if allow.long_double && !allow.in_union && rng.chance(8) {
        return Type::LongDouble;
    }
    if rng.chance(allow.float_percent) {
        return rng.pick(&FLOAT_SCALARS).clone();
    }
    loop {
        let ty = rng.pick(&INTEGER_SCALARS).clone();
        if !(allow.in_union && ty == Type::Bool) {
            return ty;
        }
    }
}

fn random_member(rng: &mut Rng, depth: usize, allow: Allow) -> Type {
    match rng.below(100) {
        0..=64 => random_scalar(rng, allow),
        65..=82 => Type::array(random_scalar(rng, allow), 1 + rng.below(5)).unwrap(),
        _ if depth < 2 => random_nested_aggregate(rng, depth + 1, allow),
        _ => random_scalar(rng, allow),
    }
}

/// Any struct or union (the other differential tests' generator): unions, packed structs
/// and nesting to depth 2.
fn random_nested_aggregate(rng: &mut Rng, depth: usize, allow: Allow) -> Type {
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

fn natural_struct(members: Vec<Type>) -> Type {
    Type::aggregate(Aggregate::c_struct(members).unwrap())
}

/// A natural struct of members drawn by `member` whose size falls in `sizes`: members are
/// added until the size is in range (sometimes more, while it stays in range); an
/// overshoot starts again.
fn struct_sized(
    rng: &mut Rng,
    sizes: RangeInclusive<usize>,
    member: impl Fn(&mut Rng) -> Type,
) -> Type {
    loop {
        let mut members = Vec::new();
        loop {
            members.push(member(rng));
            let size = Aggregate::c_struct(members.clone()).unwrap().size();
            if size > *sizes.end() {
                break;
            }
            if size >= *sizes.start() && rng.chance(60) {
                return natural_struct(members);
            }
        }
    }
}

/// The by-value shapes the ABI treats differently; each is drawn on purpose rather than
/// left to the chance of the nested generator.
fn random_aggregate(rng: &mut Rng, allow: Allow) -> Type {
    let scalar = move |rng: &mut Rng| random_scalar(rng, allow);
    match rng.below(9) {
        // One eightbyte: INTEGER, SSE, or INTEGER by merging an int and a float.
        0 => struct_sized(rng, 1..=8, scalar),
        // Two eightbytes of any class mix.
        1 => struct_sized(rng, 9..=16, move |rng: &mut Rng| {
            if rng.chance(25) {
                Type::array(random_scalar(rng, allow), 1 + rng.below(3)).unwrap()
            } else {
                random_scalar(rng, allow)
            }
        }),
        // Floats only: one or two SSE eightbytes, some with a 4-byte tail.
        2 => {
            let (f32, f64) = (Type::F32, Type::F64);
            let pairs = [
                vec![f32.clone(), f32.clone()],
                vec![f64.clone(), f64.clone()],
                vec![f32.clone(), f32.clone(), f32.clone()],
                vec![f32.clone(), f32.clone(), f32.clone(), f32.clone()],
                vec![f64.clone(), f32.clone()],
                vec![f32.clone(), f64.clone()],
                vec![Type::array(f32.clone(), 2).unwrap(), f64.clone()],
                vec![Type::array(f64, 2).unwrap()],
            ];
            natural_struct(rng.pick(&pairs).clone())
        }
        // Over 16 bytes: passed in memory, returned through a hidden pointer.
        3 => struct_sized(rng, 17..=72, move |rng: &mut Rng| random_member(rng, 1, allow)),
        // Arrays, directly and inside a nested struct.
        4 => {
            let inner = natural_struct(vec![
                Type::array(random_scalar(rng, allow), 1 + rng.below(4)).unwrap(),
                random_scalar(rng, allow),
            ]);
            let mut members =
                vec![Type::array(random_scalar(rng, allow), 1 + rng.below(5)).unwrap(), inner];
            if rng.chance(50) {
                members.push(random_scalar(rng, allow));
            }
            if rng.chance(50) {
                members.swap(0, 1);
            }
            natural_struct(members)
        }
        // Packed: small ones with misaligned fields go to memory, aligned ones in registers.
        5 => {
            let count = 1 + rng.below(5);
            let members = (0..count).map(|_| random_member(rng, 2, allow)).collect();
            let pack = *rng.pick(&[1, 2, 4]);
            Type::aggregate(Aggregate::packed_struct(members, Some(pack)).unwrap())
        }
        6 => {
            let allow = Allow { in_union: true, ..allow };
            let count = 1 + rng.below(4);
            let members = (0..count).map(|_| random_member(rng, 1, allow)).collect();
            Type::aggregate(Aggregate::c_union(members).unwrap())
        }
        // Over-aligned, as rawffi layouts may be (gcc: `__attribute__((aligned(16)))`):
        // 16-byte stack alignment, and small ones end in an eightbyte of padding only,
        // which takes no register. Drawn less often: libffi refuses the small ones, and
        // with them the closure path of the whole signature.
        7 if rng.chance(40) => {
            let Type::Aggregate(inner) = struct_sized(rng, 1..=24, scalar) else {
                unreachable!("struct_sized makes structs")
            };
            let size = inner.size().next_multiple_of(16);
            let fields = inner.fields().to_vec();
            Type::aggregate(
                Aggregate::with_layout(AggregateKind::Struct, size, 16, fields).unwrap(),
            )
        }
        _ => random_nested_aggregate(rng, 0, allow),
    }
}

fn random_value_type(rng: &mut Rng, allow: Allow) -> Type {
    if rng.chance(35) {
        random_aggregate(rng, allow)
    } else {
        random_scalar(rng, allow)
    }
}

/// True for a struct or union gcc returns in st(0) like a `long double`: neither path
/// makes a callback of it (libffi would return it in memory), so none is generated.
fn is_x87_aggregate(ty: &Type) -> bool {
    matches!(ty, Type::Aggregate(aggregate) if classify_aggregate(aggregate) == AggregateClass::X87)
}

fn random_signature(rng: &mut Rng) -> Signature {
    let float_percent = *rng.pick(&[15, 40, 40, 85]);
    let allow = Allow { float_percent, long_double: rng.chance(6), in_union: false };
    let ret = loop {
        let ret = match rng.below(100) {
            // The one result compiled stubs leave to libffi's closures.
            _ if allow.long_double && rng.chance(30) => Type::LongDouble,
            0..=11 => Type::Void,
            12..=51 => random_scalar(rng, allow),
            _ => random_aggregate(rng, allow),
        };
        if !is_x87_aggregate(&ret) {
            break ret;
        }
    };
    let count = match rng.below(10) {
        0..=2 => rng.below(5),
        3..=5 => 5 + rng.below(6),
        _ => 11 + rng.below(10),
    };
    let args = (0..count).map(|_| random_value_type(rng, allow)).collect();
    Signature::new(ret, args).unwrap()
}

/// Signatures picked by hand, checked with the random ones; the thread and many-callback
/// tests use them by name.
fn hand_picked() -> Vec<(&'static str, Signature)> {
    use Type::*;
    let st = natural_struct;
    let pair_f32 = st(vec![F32, F32]);
    let long_int = st(vec![I64, I32]);
    let sig = |ret, args| Signature::new(ret, args).unwrap();
    vec![
        (
            STACK_AND_MEMORY_RESULT,
            sig(
                st(vec![I64, F64, I32, Type::array(U8, 5).unwrap()]),
                vec![
                    I8,
                    F32,
                    st(vec![F64, I32]),
                    I64,
                    F64,
                    U32,
                    F64,
                    I16,
                    F64,
                    Pointer,
                    F64,
                    st(vec![Type::array(I16, 3).unwrap(), F32]),
                    F64,
                    U64,
                    F32,
                    st(vec![I64, I64, I64]),
                    F64,
                    Bool,
                    I32,
                ],
            ),
        ),
        (
            "register classes exhausted, struct result in rax and xmm0",
            sig(
                st(vec![I32, F32, F64]),
                vec![
                    pair_f32.clone(),
                    long_int.clone(),
                    pair_f32.clone(),
                    long_int.clone(),
                    pair_f32.clone(),
                    long_int.clone(),
                    pair_f32.clone(),
                    long_int.clone(),
                    pair_f32.clone(),
                    pair_f32.clone(),
                    pair_f32.clone(),
                    U8,
                    F32,
                ],
            ),
        ),
        (
            "long double arguments after odd stack slots (padding)",
            sig(
                F64,
                vec![
                    I32,
                    I64,
                    I64,
                    I64,
                    I64,
                    I64,
                    I64,
                    LongDouble,
                    F64,
                    st(vec![LongDouble]),
                    U8,
                    st(vec![I8, LongDouble]),
                    I16,
                ],
            ),
        ),
        ("long double result", sig(LongDouble, vec![I32, LongDouble, F64, U8, LongDouble])),
        (
            "float pair result, struct arguments on the stack",
            sig(
                st(vec![F64, F64]),
                vec![
                    I64,
                    st(vec![I64, I64]),
                    I64,
                    st(vec![I64, I64]),
                    I64,
                    st(vec![I64, I64]),
                    I64,
                    U16,
                ],
            ),
        ),
        ("result in memory and no argument", sig(st(vec![Type::array(U8, 33).unwrap()]), vec![])),
        (
            "void, twenty interleaved arguments",
            sig(
                Void,
                (0..20)
                    .map(|position| match position % 4 {
                        0 => I32,
                        1 => F64,
                        2 => st(vec![F32, I16]),
                        _ => st(vec![U8, F64, I64]),
                    })
                    .collect(),
            ),
        ),
        (
            "seventy arguments",
            sig(
                U16,
                (0..70)
                    .map(|position| match position % 5 {
                        0 => F32,
                        1 => I8,
                        2 => st(vec![F64, F32]),
                        3 => U64,
                        _ => st(vec![I32, I32, I32, I32, I32]),
                    })
                    .collect(),
            ),
        ),
        (
            // 500 of the 512 stack slots a stub is compiled for.
            "a 4000-byte struct by value",
            sig(
                st(vec![Type::array(U64, 5).unwrap()]),
                vec![I32, st(vec![Type::array(U64, 500).unwrap()]), F32, I16],
            ),
        ),
    ]
}

const STACK_AND_MEMORY_RESULT: &str = "stack arguments and a result in memory";

// ---------------------------------------------------------------------------------------
// Values: built from seeds the same way in C and in Rust, and the checksum C folds

/// A value's bytes and which of them are significant (not padding).
#[derive(Clone, Debug)]
struct Value {
    bytes: Vec<u8>,
    significant: Vec<bool>,
}

impl Value {
    /// The value the C `build` statements (`build_statements`) make of `ty` from `seed`.
    fn build(ty: &Type, seed: u64) -> Value {
        let size = ty.size();
        let mut value = Value { bytes: vec![0; size], significant: vec![false; size] };
        let mut h = seed;
        value.build_at(ty, 0, &mut h);
        value
    }

    fn build_at(&mut self, ty: &Type, base: usize, h: &mut u64) {
        match ty {
            Type::Void => {}
            Type::Aggregate(aggregate) if aggregate.kind() == AggregateKind::Union => {
                for byte in &mut self.bytes[base..base + ty.size()] {
                    *byte = next(h) as u8;
                }
                // Every member's bytes matter: C cannot tell which member is meant.
                ty.for_each_scalar(base, &mut |offset, scalar| {
                    self.significant[offset..offset + significant_size(scalar)].fill(true)
                });
            }
            Type::Aggregate(aggregate) => {
                for field in aggregate.fields() {
                    self.build_at(&field.ty, base + field.offset, h);
                }
            }
            Type::Array { element, len } => {
                for index in 0..*len {
                    self.build_at(element, base + index * element.size(), h);
                }
            }
            scalar => {
                let bits = next(h);
                let bytes = match scalar {
                    Type::Bool => vec![(bits & 1) as u8],
                    Type::LongDouble => f80_from_i64(bits as i64).to_vec(),
                    other => bits.to_le_bytes()[..other.size()].to_vec(),
                };
                let size = significant_size(scalar);
                self.bytes[base..base + size].copy_from_slice(&bytes[..size]);
                self.significant[base..base + size].fill(true);
            }
        }
    }

    /// True when `bytes` agree with this value wherever it is significant.
    fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() >= self.bytes.len()
            && self.bytes.iter().zip(bytes).zip(&self.significant).all(|((a, b), &s)| !s || a == b)
    }

    /// `bytes` as hex, with the bytes this value leaves insignificant as `..`.
    fn show(&self, bytes: &[u8]) -> String {
        let shown = bytes.iter().zip(&self.significant).map(|(byte, &significant)| {
            if significant {
                format!("{byte:02x}")
            } else {
                "..".to_owned()
            }
        });
        shown.collect::<Vec<_>>().join(" ")
    }
}

fn checksum_seed(case: usize) -> u64 {
    mix(0xca11_bac6, case as u64)
}

fn argument_seed(case: usize, position: usize) -> u64 {
    mix(mix(0xa7, case as u64), position as u64)
}

fn result_seed(case: usize, variant: u64) -> u64 {
    mix(mix(0x7e5, case as u64), variant)
}

/// What a handler writes into bytes of the return buffer that are not the result's: C and
/// the stub must ignore them.
const JUNK: u8 = 0xa5;

struct Case {
    index: usize,
    name: Option<&'static str>,
    signature: Signature,
    /// The value of each argument, as C builds it.
    args: Vec<Value>,
}

impl Case {
    fn new(index: usize, name: Option<&'static str>, signature: Signature) -> Case {
        let args = signature
            .args()
            .iter()
            .enumerate()
            .map(|(position, ty)| Value::build(ty, argument_seed(index, position)))
            .collect();
        Case { index, name, signature, args }
    }

    /// The result a handler returns; `variant` tells apart callbacks of the same case.
    fn result(&self, variant: u64) -> Value {
        Value::build(self.signature.ret(), result_seed(self.index, variant))
    }

    /// The checksum C returns when the callback received `self.args` and returned `result`.
    fn checksum(&self, result: &Value) -> u64 {
        let folded_args = self
            .signature
            .args()
            .iter()
            .zip(&self.args)
            .fold(checksum_seed(self.index), |h, (ty, value)| fold_value(h, ty, &value.bytes));
        fold_value(folded_args, self.signature.ret(), &result.bytes)
    }

    /// What the handler writes into the return buffer: all `ret_buffer_size` bytes it may
    /// write (the callback contract), the result where significant and junk elsewhere.
    fn return_buffer(&self, result: &Value) -> Vec<u8> {
        (0..self.signature.ret_buffer_size())
            .map(|at| match result.significant.get(at) {
                Some(true) => result.bytes[at],
                _ => JUNK,
            })
            .collect()
    }

    fn label(&self) -> String {
        let name = self.name.map(|name| format!(" ({name})")).unwrap_or_default();
        format!("case {}{name}: {}", self.index, self.signature)
    }
}

// ---------------------------------------------------------------------------------------
// C callers

/// C statements building the value at `path` from the seed `s`, as `Value::build` does.
fn build_statements(ty: &Type, path: &str, out: &mut String) {
    match ty {
        Type::Aggregate(aggregate) if aggregate.kind() == AggregateKind::Union => {
            writeln!(
                out,
                "  {{ u8 *b = (u8 *)&{path}; for (size_t i = 0; i < sizeof {path}; i++) b[i] = (u8)next(&s); }}"
            )
            .unwrap();
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
        scalar => writeln!(out, "  {path} = MAKE({}, next(&s));", c_scalar(scalar)).unwrap(),
    }
}

/// `u64 call<k>(callback<k> f, u8 *out)`: see the module documentation.
fn write_caller(case: &Case) -> String {
    let k = case.index;
    let signature = &case.signature;
    let mut writer = CWriter::new(&format!("c{k}"));
    let ret = writer.type_name(signature.ret());
    let mut params: Vec<String> = signature.args().iter().map(|ty| writer.type_name(ty)).collect();
    if params.is_empty() {
        params.push("void".into());
    }
    let names: Vec<String> = (0..signature.args().len()).map(|p| format!("a{p}")).collect();
    let mut body = String::new();
    writeln!(body, "  u64 h = {:#x}ULL;", checksum_seed(k)).unwrap();
    for (position, (ty, name)) in signature.args().iter().zip(&names).enumerate() {
        let declaration = writer.declare(ty, name);
        writeln!(body, "  {declaration}; memset(&{name}, 0, sizeof {name});").unwrap();
        writeln!(body, "  {{ u64 s = {:#x}ULL;", argument_seed(k, position)).unwrap();
        build_statements(ty, name, &mut body);
        writeln!(body, "  }}").unwrap();
    }
    for (ty, name) in signature.args().iter().zip(&names) {
        fold_statements(ty, name, &mut body);
    }
    let call = format!("f({})", names.join(", "));
    if *signature.ret() == Type::Void {
        writeln!(body, "  {call};").unwrap();
    } else {
        writeln!(body, "  {ret} r = {call};").unwrap();
        fold_statements(signature.ret(), "r", &mut body);
        writeln!(body, "  memcpy(out, &r, sizeof r);").unwrap();
    }
    writeln!(body, "  return h;").unwrap();
    format!(
        "{}typedef {ret} (*callback{k})({});\nu64 call{k}(callback{k} f, u8 *out) {{\n{body}}}\n",
        writer.source,
        params.join(", ")
    )
}

// ---------------------------------------------------------------------------------------
// The suite: cases and their compiled callers, shared by the tests

/// A generated C caller.
type CCaller = unsafe extern "C" fn(callback: *const c_void, out: *mut u8) -> u64;

struct Suite {
    seed: u64,
    cases: Vec<Case>,
    sources: Vec<String>,
    callers: Vec<CCaller>,
    only: Option<usize>,
    /// Kept loaded: `callers` point into them.
    _libraries: Vec<Library>,
}

/// Callers per C file; the files compile in parallel.
const CHUNK: usize = 100;

fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let count = env_number("CALLBACK_DIFF_COUNT", 300) as usize;
        let seed = env_number("CALLBACK_DIFF_SEED", 0xca11_0bac);
        let mut rng = Rng(seed);
        let mut cases: Vec<Case> =
            (0..count).map(|index| Case::new(index, None, random_signature(&mut rng))).collect();
        for (name, signature) in hand_picked() {
            cases.push(Case::new(cases.len(), Some(name), signature));
        }
        let sources: Vec<String> = cases.iter().map(write_caller).collect();

        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("callback_differential_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let libraries: Vec<Library> = std::thread::scope(|scope| {
            let compiling: Vec<_> = sources
                .chunks(CHUNK)
                .enumerate()
                .map(|(chunk, sources)| {
                    let dir = &dir;
                    scope.spawn(move || compile_chunk(dir, chunk, sources))
                })
                .collect();
            compiling.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        // The libraries stay mapped after their files are gone.
        std::fs::remove_dir_all(&dir).ok();
        let callers = cases
            .iter()
            .map(|case| {
                let library = &libraries[case.index / CHUNK];
                let name = format!("call{}", case.index);
                // SAFETY: `call<k>` was generated with exactly the `CCaller` type.
                *unsafe { library.get::<CCaller>(name.as_bytes()) }.unwrap()
            })
            .collect();
        let only = std::env::var("CALLBACK_DIFF_ONLY").ok().and_then(|v| v.parse().ok());
        Suite { seed, cases, sources, callers, only, _libraries: libraries }
    })
}

fn compile_chunk(dir: &Path, chunk: usize, sources: &[String]) -> Library {
    let c_file = dir.join(format!("callers{chunk}.c"));
    let so_file = dir.join(format!("libcallers{chunk}.so"));
    let mut text = String::from(C_PRELUDE);
    for source in sources {
        text.push_str(source);
    }
    std::fs::write(&c_file, text).unwrap();
    clib::compile_shared(&c_file, &so_file, "-O1").unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: the generated library has no initialisers.
    unsafe { Library::new(&so_file) }.unwrap()
}

impl Suite {
    /// The cases a test runs: all, or the one `CALLBACK_DIFF_ONLY` names.
    fn selected(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|case| self.only.is_none_or(|only| only == case.index))
    }

    fn named(&self, name: &str) -> &Case {
        self.cases.iter().find(|case| case.name == Some(name)).expect("a hand-picked case")
    }

    /// Context for a failure report: the C caller when one case is checked alone.
    fn source_note(&self, case: &Case) -> String {
        if self.only.is_some() {
            format!("\n{}", self.sources[case.index])
        } else {
            format!("\n  (CALLBACK_DIFF_ONLY={} prints its C caller)", case.index)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checking handlers and calls

/// What a handler saw: how often it ran and what was wrong.
#[derive(Default)]
struct Probe {
    calls: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl Probe {
    fn report(&self, problem: String) {
        self.problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(problem);
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// A handler for `case` that checks every argument into `probe` and returns `result`. It
/// reports rather than panics: a panic would be caught at the callback's edge anyway.
fn checking_handler(case: &'static Case, result: &Value, probe: Arc<Probe>) -> Box<Handler> {
    let ret_bytes = case.return_buffer(result);
    Box::new(move |args: *const *const c_void, ret: *mut c_void| {
        probe.calls.fetch_add(1, Ordering::Relaxed);
        let typed = case.signature.args().iter().zip(&case.args);
        for (position, (ty, want)) in typed.enumerate() {
            // SAFETY: the contract gives one pointer per argument.
            let pointer = unsafe { *args.add(position) }.cast::<u8>();
            if pointer as usize % ty.align() != 0 {
                probe.report(format!("argument {position} ({ty}) at misaligned {pointer:p}"));
            }
            // SAFETY: it points at a copy of the argument, `ty.size()` bytes.
            let got = unsafe { std::slice::from_raw_parts(pointer, ty.size()) };
            if !want.matches(got) {
                probe.report(format!(
                    "argument {position} ({ty}):\n    got  {}\n    want {}",
                    want.show(got),
                    want.show(&want.bytes)
                ));
            }
        }
        // SAFETY: the return buffer holds `ret_buffer_size` bytes, as many as `ret_bytes`.
        unsafe { std::ptr::copy_nonoverlapping(ret_bytes.as_ptr(), ret.cast(), ret_bytes.len()) };
    })
}

/// Calls `case`'s C caller through `callback`, whose handler returns `result`; says what
/// C got wrong, if anything (the handler reports on the arguments).
fn call_through(case: &Case, callback: &Callback, result: &Value) -> Option<String> {
    let caller = suite().callers[case.index];
    let mut out = vec![0u8; case.signature.ret().size().max(1)];
    // SAFETY: the callback has the C type `call<k>` calls it with; `out` holds the result.
    let checksum = unsafe { caller(callback.code_address(), out.as_mut_ptr()) };
    let want = case.checksum(result);
    let mut wrong = String::new();
    if checksum != want {
        write!(wrong, "C checksum {checksum:#018x}, want {want:#018x}; ").unwrap();
    }
    if !result.matches(&out) {
        write!(
            wrong,
            "result:\n    got  {}\n    want {}",
            result.show(&out),
            result.show(&result.bytes)
        )
        .unwrap();
    }
    (!wrong.is_empty()).then_some(wrong)
}

/// A checking callback of `case` on the path `use_jit` asks for, returning `result`.
fn checking_callback(
    case: &'static Case,
    result: &Value,
    use_jit: bool,
) -> Result<(Callback, Arc<Probe>), String> {
    let probe = Arc::new(Probe::default());
    let handler = checking_handler(case, result, probe.clone());
    let callback = Callback::with_jit(&case.signature, handler, use_jit)?;
    Ok((callback, probe))
}

/// `long double` results are returned in st(0), which only libffi's closures do.
fn compiled_expected(signature: &Signature, use_jit: bool) -> bool {
    use_jit && *signature.ret() != Type::LongDouble
}

fn path_name(use_jit: bool) -> &'static str {
    if use_jit {
        "compiled stub"
    } else {
        "libffi closure"
    }
}

/// The tests of this file run one at a time: one of them counts the callback stubs the
/// global cache compiles while it runs.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------
// What the random signatures covered

#[derive(Default, Debug)]
struct Tally {
    signatures: usize,
    arguments: usize,
    most_arguments: usize,
    with_stack_arguments: usize,
    with_float_on_stack: usize,
    with_struct_on_stack: usize,
    with_long_double_argument: usize,
    results: BTreeMap<&'static str, usize>,
    struct_arguments: BTreeMap<&'static str, usize>,
    compiled_calls: usize,
    closure_calls: usize,
    /// Reasons libffi gave for not making a closure, and how often.
    closure_refusals: BTreeMap<String, usize>,
}

impl Tally {
    fn count_signature(&mut self, signature: &Signature) {
        self.signatures += 1;
        self.arguments += signature.args().len();
        self.most_arguments = self.most_arguments.max(signature.args().len());
        let plan = plan_call(signature).expect("every generated signature has a plan");
        let on_stack: Vec<_> = plan.pieces.iter().filter(|piece| piece.on_stack).collect();
        self.with_stack_arguments += usize::from(!on_stack.is_empty());
        let float_on_stack = on_stack.iter().any(|piece| signature.args()[piece.arg].is_float());
        self.with_float_on_stack += usize::from(float_on_stack);
        let struct_on_stack =
            on_stack.iter().any(|piece| matches!(signature.args()[piece.arg], Type::Aggregate(_)));
        self.with_struct_on_stack += usize::from(struct_on_stack);
        let long_double_argument = signature.args().iter().any(Type::contains_long_double);
        self.with_long_double_argument += usize::from(long_double_argument);
        let result = match (&plan.ret, signature.ret()) {
            (RetPlan::Void, _) => "void",
            (RetPlan::Memory, _) => "struct in memory (hidden pointer)",
            (RetPlan::Registers(_), _) => "struct in registers",
            (RetPlan::X87, _) => "long double",
            (_, ty) if ty.is_float() => "float",
            _ => "integer or pointer",
        };
        *self.results.entry(result).or_default() += 1;
        for ty in signature.args() {
            if let Type::Aggregate(aggregate) = ty {
                *self.struct_arguments.entry(aggregate_shape(aggregate)).or_default() += 1;
            }
        }
    }
}

/// How the ABI sees an aggregate, for the tally.
fn aggregate_shape(aggregate: &Aggregate) -> &'static str {
    let contains_array = {
        let mut found = false;
        let mut stack: Vec<&Type> = aggregate.fields().iter().map(|field| &field.ty).collect();
        while let Some(ty) = stack.pop() {
            match ty {
                Type::Array { .. } => found = true,
                Type::Aggregate(inner) => stack.extend(inner.fields().iter().map(|f| &f.ty)),
                _ => {}
            }
        }
        found
    };
    match classify_aggregate(aggregate) {
        _ if aggregate.kind() == AggregateKind::Union => "union",
        _ if over_alignment(aggregate).is_some() => "over-aligned struct",
        _ if !aggregate.has_natural_layout() => "packed struct",
        AggregateClass::Memory => "struct over 16 bytes (memory)",
        AggregateClass::X87 => "struct of a long double",
        AggregateClass::Registers(_) if contains_array => "struct with arrays, in registers",
        AggregateClass::Registers(eightbytes) => match eightbytes.len() {
            1 => "struct of one eightbyte",
            _ => "struct of two eightbytes",
        },
    }
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn compiled_stubs_and_libffi_closures_agree_with_gcc_callers() {
    let _serial = serial();
    let suite = suite();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for case in suite.selected() {
        tally.count_signature(&case.signature);
        let result = case.result(0);
        for use_jit in [true, false] {
            let path = path_name(use_jit);
            let (callback, probe) = match checking_callback(case, &result, use_jit) {
                Ok(made) => made,
                // libffi cannot describe every struct (small ones with misaligned fields);
                // the compiled path must never need it, except for st(0) results.
                Err(reason) if !compiled_expected(&case.signature, use_jit) => {
                    *tally.closure_refusals.entry(reason).or_default() += 1;
                    continue;
                }
                Err(reason) => {
                    failures.push(format!("{}: no {path}: {reason}", case.label()));
                    continue;
                }
            };
            if callback.is_compiled() != compiled_expected(&case.signature, use_jit) {
                failures.push(format!(
                    "{}: asked for {path}, is_compiled() = {}",
                    case.label(),
                    callback.is_compiled()
                ));
            }
            assert_eq!(callback.ret_size(), case.signature.ret_buffer_size());
            if callback.is_compiled() {
                tally.compiled_calls += 1;
            } else {
                tally.closure_calls += 1;
            }
            let wrong_in_c = call_through(case, &callback, &result);
            let mut problems = probe.problems();
            problems.extend(wrong_in_c);
            let calls = probe.calls.load(Ordering::Relaxed);
            if calls != 1 {
                problems.push(format!("the handler ran {calls} times"));
            }
            if !problems.is_empty() {
                let path = path_name(callback.is_compiled());
                failures.push(format!(
                    "{} via {path}:\n  {}{}",
                    case.label(),
                    problems.join("\n  "),
                    suite.source_note(case)
                ));
            }
        }
    }
    println!("callback differential: seed {:#x}, {tally:#?}", suite.seed);
    println!("stub cache: {:?}", jit::StubCache::global().stats());
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    if suite.only.is_none() {
        assert_eq!(tally.signatures, suite.cases.len());
        // Every path gets a real workout, not just an empty loop.
        assert!(tally.compiled_calls >= suite.cases.len() * 9 / 10, "{tally:?}");
        assert!(tally.closure_calls >= suite.cases.len() * 3 / 4, "{tally:?}");
        assert!(tally.with_stack_arguments > 0 && tally.with_float_on_stack > 0, "{tally:?}");
    }
}

#[test]
fn callbacks_run_on_threads_rust_spawned() {
    let _serial = serial();
    let suite = suite();
    const THREADS: usize = 4;
    const CALLS_PER_THREAD: usize = 25;
    let cases = suite.cases.iter().filter(|case| case.name.is_some() || case.index % 30 == 0);
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases {
        let result = case.result(1);
        for use_jit in [true, false] {
            let Ok((callback, probe)) = checking_callback(case, &result, use_jit) else {
                continue; // refused: the main test says when that is allowed
            };
            checked += 1;
            // Made here, called only from threads this test spawns.
            let wrong: Vec<String> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|_| {
                        scope.spawn(|| {
                            (0..CALLS_PER_THREAD)
                                .filter_map(|_| call_through(case, &callback, &result))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect()
            });
            let mut problems = probe.problems();
            problems.extend(wrong);
            let calls = probe.calls.load(Ordering::Relaxed);
            if calls != THREADS * CALLS_PER_THREAD {
                problems.push(format!("the handler ran {calls} times"));
            }
            if !problems.is_empty() {
                let path = path_name(callback.is_compiled());
                failures.push(format!("{} via {path}: {}", case.label(), problems[0]));
            }
        }
    }
    assert!(checked >= 2 * hand_picked().len(), "only {checked} callbacks checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn callbacks_of_one_signature_share_a_stub_and_keep_their_own_data() {
    let _serial = serial();
    let case = suite().named(STACK_AND_MEMORY_RESULT);
    let stubs_before = jit::StubCache::global().stats().callback_stubs;
    // Each callback returns its own result: a thunk handing over another's data shows.
    let make = |variant: u64| {
        let result = case.result(variant);
        let (callback, probe) = checking_callback(case, &result, true).unwrap();
        assert!(callback.is_compiled());
        (variant, callback, probe, result)
    };
    // More callbacks than a page of thunks holds.
    let mut live: Vec<_> = (0..300).map(make).collect();
    let stubs_compiled = jit::StubCache::global().stats().callback_stubs - stubs_before;
    assert!(stubs_compiled <= 1, "{stubs_compiled} stubs compiled for one signature");
    let mut addresses: Vec<_> =
        live.iter().map(|(_, callback, ..)| callback.code_address()).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), live.len(), "every callback has its own code address");

    check_each(case, &live, |_| 1);

    // Every other callback freed and as many made: their thunk slots are handed out again,
    // with new data. Then all are called at once from four threads, a quarter each.
    live.retain(|(variant, ..)| variant % 2 == 1);
    live.extend((300..450).map(make));
    std::thread::scope(|scope| {
        for quarter in live.chunks(live.len().div_ceil(4)) {
            scope.spawn(|| check_each(case, quarter, |variant| if variant < 300 { 2 } else { 1 }));
        }
    });
}

/// Calls each callback once through `case`'s C caller; each must run its own handler, which
/// then has run `calls_so_far(variant)` times.
fn check_each(
    case: &Case,
    callbacks: &[(u64, Callback, Arc<Probe>, Value)],
    calls_so_far: fn(u64) -> usize,
) {
    for (variant, callback, probe, result) in callbacks {
        assert_eq!(call_through(case, callback, result), None, "callback {variant}");
        assert_eq!(probe.problems(), Vec::<String>::new(), "callback {variant}");
        let calls = probe.calls.load(Ordering::Relaxed);
        assert_eq!(calls, calls_so_far(*variant), "callback {variant}");
    }
}
