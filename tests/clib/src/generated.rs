//! Helpers of the differential tests that generate C code from random signatures and
//! check values byte by byte (`jit/tests/differential.rs`, the callers of compiled stubs;
//! `rawffi/tests/callback_differential.rs`, of callback stubs): the seeded generator, the
//! C spelling of `jit` types, the checksum folds on both sides.

use std::fmt::Write as _;
use std::sync::Arc;

use jit::{Aggregate, AggregateKind, Type};

use crate::{f80_to_i64, mix};

/// SplitMix64: small, seedable, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next_u64() as u8).collect()
    }
}

pub fn c_scalar(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "boolean",
        Type::I8 => "i8",
        Type::U8 => "u8",
        Type::I16 => "i16",
        Type::U16 => "u16",
        Type::I32 => "i32",
        Type::U32 => "u32",
        Type::I64 => "i64",
        Type::U64 => "u64",
        Type::F32 => "f32",
        Type::F64 => "f64",
        Type::LongDouble => "f80",
        Type::Pointer => "ptr",
        Type::Void => "void",
        _ => unreachable!("not a scalar"),
    }
}

pub const C_PRELUDE: &str = r#"
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
typedef int8_t i8; typedef uint8_t u8; typedef int16_t i16; typedef uint16_t u16;
typedef int32_t i32; typedef uint32_t u32; typedef int64_t i64; typedef uint64_t u64;
typedef float f32; typedef double f64; typedef long double f80; typedef _Bool boolean;
typedef void *ptr;
static u64 mix(u64 h, u64 v) { h ^= v; h *= 0x100000001b3ULL; return (h << 29) | (h >> 35); }
static u64 next(u64 *h) { *h = mix(*h, 0x9e3779b97f4a7c15ULL); return *h; }
static u64 bits_f32(f32 x) { u32 b; memcpy(&b, &x, 4); return b; }
static u64 bits_f64(f64 x) { u64 b; memcpy(&b, &x, 8); return b; }
static u64 bits_int(i64 x) { return (u64)x; }
static u64 bits_ptr(ptr x) { return (u64)(uintptr_t)x; }
static u64 bits_f80(f80 x) { return (u64)(i64)x; }
#define BITS(x) _Generic((x), f32: bits_f32, f64: bits_f64, f80: bits_f80, ptr: bits_ptr, default: bits_int)(x)
static f32 f32_of(u64 h) { u32 b = (u32)h; f32 x; memcpy(&x, &b, 4); return x; }
static f64 f64_of(u64 h) { f64 x; memcpy(&x, &h, 8); return x; }
#define MAKE(t, h) _Generic((t)0, f32: f32_of(h), f64: f64_of(h), f80: (f80)(i64)(h), boolean: (boolean)((h) & 1), ptr: (ptr)(uintptr_t)(h), default: (t)(h))
"#;

/// Writes the C declarations of one caller's aggregate types, each checked against our
/// layout with `_Static_assert`.
pub struct CWriter {
    /// The type declarations written so far.
    pub source: String,
    names: Vec<(Arc<Aggregate>, String)>,
    prefix: String,
}

impl CWriter {
    /// A writer naming its aggregate types `<prefix>_<n>`.
    pub fn new(prefix: &str) -> CWriter {
        CWriter { source: String::new(), names: Vec::new(), prefix: prefix.to_owned() }
    }

    /// The C spelling of `ty` declaring `name` (arrays need the suffix).
    pub fn declare(&mut self, ty: &Type, name: &str) -> String {
        match ty {
            Type::Array { element, len } => format!("{}[{len}]", self.declare(element, name)),
            Type::Aggregate(aggregate) => format!("{} {name}", self.aggregate_name(aggregate)),
            scalar => format!("{} {name}", c_scalar(scalar)),
        }
    }

    pub fn type_name(&mut self, ty: &Type) -> String {
        match ty {
            Type::Aggregate(aggregate) => self.aggregate_name(aggregate),
            scalar => c_scalar(scalar).to_owned(),
        }
    }

    pub fn aggregate_name(&mut self, aggregate: &Arc<Aggregate>) -> String {
        if let Some((_, name)) = self.names.iter().find(|(known, _)| Arc::ptr_eq(known, aggregate))
        {
            return name.clone();
        }
        // Members first: they may declare types of their own.
        let fields: Vec<String> = aggregate
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| self.declare(&field.ty, &format!("f{index}")))
            .collect();
        let name = format!("{}_t{}", self.prefix, self.names.len());
        let keyword = if aggregate.kind() == AggregateKind::Union { "union" } else { "struct" };
        let pack = packing(aggregate);
        let attribute = over_alignment(aggregate)
            .map(|align| format!(" __attribute__((aligned({align})))"))
            .unwrap_or_default();
        let source = &mut self.source;
        if let Some(pack) = pack {
            writeln!(source, "#pragma pack(push, {pack})").unwrap();
        }
        writeln!(source, "typedef {keyword} {{ {}; }}{attribute} {name};", fields.join("; "))
            .unwrap();
        if pack.is_some() {
            writeln!(source, "#pragma pack(pop)").unwrap();
        }
        let (size, align) = (aggregate.size(), aggregate.align());
        writeln!(
            source,
            "_Static_assert(sizeof({name}) == {size} && _Alignof({name}) == {align}, \"{name}\");"
        )
        .unwrap();
        for (index, field) in aggregate.fields().iter().enumerate() {
            let offset = field.offset;
            writeln!(
                source,
                "_Static_assert(offsetof({name}, f{index}) == {offset}, \"{name}.f{index}\");"
            )
            .unwrap();
        }
        self.names.push((aggregate.clone(), name.clone()));
        name
    }
}

/// The `#pragma pack` value that reproduces a struct's layout, if it is not natural.
pub fn packing(aggregate: &Aggregate) -> Option<usize> {
    let members: Vec<Type> = aggregate.fields().iter().map(|f| f.ty.clone()).collect();
    let natural = Aggregate::c_struct(members.clone()).is_ok_and(|natural| natural == *aggregate);
    if aggregate.kind() == AggregateKind::Union || natural {
        return None;
    }
    [1, 2, 4, 8].into_iter().find(|pack| {
        Aggregate::packed_struct(members.clone(), Some(*pack))
            .is_ok_and(|packed| packed == *aggregate)
    })
}

/// The alignment of a struct laid out naturally but aligned more than its members ask
/// (`__attribute__((aligned))`), if it is one.
pub fn over_alignment(aggregate: &Aggregate) -> Option<usize> {
    let members: Vec<Type> = aggregate.fields().iter().map(|f| f.ty.clone()).collect();
    let natural = Aggregate::c_struct(members).ok()?;
    let over_aligned = aggregate.kind() == AggregateKind::Struct
        && natural.fields() == aggregate.fields()
        && aggregate.align() > natural.align()
        && aggregate.size() == natural.size().next_multiple_of(aggregate.align());
    over_aligned.then_some(aggregate.align())
}

/// C statements folding the value at `path` into `h`, as `fold_value` does.
pub fn fold_statements(ty: &Type, path: &str, out: &mut String) {
    match ty {
        Type::Aggregate(aggregate) => {
            for (index, field) in aggregate.fields().iter().enumerate() {
                fold_statements(&field.ty, &format!("{path}.f{index}"), out);
            }
        }
        Type::Array { element, len } => {
            for index in 0..*len {
                fold_statements(element, &format!("{path}[{index}]"), out);
            }
        }
        _ => writeln!(out, "  h = mix(h, BITS({path}));").unwrap(),
    }
}

/// The C `BITS()` of the scalar stored at the start of `bytes`.
pub fn scalar_bits(ty: &Type, bytes: &[u8]) -> u64 {
    let mut wide = [0u8; 16];
    wide[..ty.size()].copy_from_slice(&bytes[..ty.size()]);
    let raw = u64::from_le_bytes(wide[..8].try_into().unwrap());
    match ty {
        Type::I8 => raw as u8 as i8 as u64,
        Type::I16 => raw as u16 as i16 as u64,
        Type::I32 => raw as u32 as i32 as u64,
        Type::LongDouble => f80_to_i64(&wide).expect("integer-valued long double") as u64,
        _ => raw,
    }
}

/// Folds every scalar of a value into `h`, in the order the generated C visits them.
pub fn fold_value(h: u64, ty: &Type, bytes: &[u8]) -> u64 {
    let mut h = h;
    ty.for_each_scalar(0, &mut |offset, scalar| h = mix(h, scalar_bits(scalar, &bytes[offset..])));
    h
}

/// A `long double` is 16 bytes of storage of which 10 hold the value.
pub fn significant_size(scalar: &Type) -> usize {
    if *scalar == Type::LongDouble {
        10
    } else {
        scalar.size()
    }
}

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
