//! The x86-64 System V calling convention, in two steps kept apart from any IR building:
//!
//! 1. [`classify_aggregate`]: a struct or union becomes eightbytes of class INTEGER or SSE,
//!    or MEMORY (psABI §3.2.3).
//! 2. [`plan_call`]: registers are handed out across the whole signature, so that every byte
//!    of every argument gets a place: an integer register, an SSE register, or an 8-byte
//!    stack slot in argument order. An aggregate that does not fit in the registers left goes
//!    to the stack whole, and the registers it would have used stay free for later arguments.
//!
//! The result, a [`CallPlan`], is what the stub compiler lowers; it is also the thing worth
//! testing on its own.

use crate::caller::FallbackReason;
use crate::signature::{Aggregate, Signature, Type};

/// Integer argument registers: rdi, rsi, rdx, rcx, r8, r9.
pub const INT_ARG_REGS: usize = 6;
/// SSE argument registers: xmm0–xmm7.
pub const SSE_ARG_REGS: usize = 8;
/// Largest stack argument area (in 8-byte slots) a stub is compiled for; beyond it (huge
/// structs by value) libffi copies the bytes with a loop instead of one move per slot.
pub const MAX_STACK_SLOTS: usize = 512;

/// The class of one eightbyte of an aggregate passed in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegClass {
    Integer,
    Sse,
}

/// Bytes `offset..offset + size` of an aggregate and the register class they travel in.
/// `class` is `None` for an eightbyte holding only padding (psABI NO_CLASS): it uses no
/// register at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Eightbyte {
    pub offset: usize,
    pub size: usize,
    pub class: Option<RegClass>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregateClass {
    /// Passed in one register per classed eightbyte, if enough are free.
    Registers(Vec<Eightbyte>),
    /// Passed as a copy on the stack; returned through a hidden pointer.
    Memory,
    /// Nothing but one `long double`: passed as a copy on the stack, returned in st(0).
    X87,
}

/// Classifies a struct or union passed by value (psABI §3.2.3), the way gcc's
/// `classify_argument` does it where the psABI text leaves room:
/// - classes are merged per eightbyte with the psABI's rules in order, so INTEGER wins over
///   X87 (rule 4 before rule 5: `union { long double; unsigned long long[2]; }` travels in
///   two integer registers);
/// - an array is classified by its first element, whose classes are repeated over the
///   array's eightbytes, so only the first element's fields are checked for alignment (an
///   array of packed structs can travel in registers);
/// - any other misaligned scalar sends the whole aggregate to MEMORY;
/// - a zero-length array has no class at all (gcc gives one to a zero-length array that
///   starts inside an eightbyte; rawffi uses zero-length arrays for empty struct members,
///   which gcc leaves unclassed, so that quirk is deliberately not followed).
pub fn classify_aggregate(aggregate: &Aggregate) -> AggregateClass {
    // Larger than two eightbytes: MEMORY, whatever the members (there are no vector types
    // to make it SSEUP). Checked first, so that large arrays are never expanded.
    if aggregate.size() > 16 {
        return AggregateClass::Memory;
    }
    let ty = Type::Aggregate(aggregate.clone().into());
    let Some(classes) = classify_type(&ty, 0) else {
        return AggregateClass::Memory;
    };
    if classes.contains(&Class::X87) || classes.contains(&Class::X87Up) {
        // Only a lone `long double` survives the merge as X87: returned in st(0).
        return match classes.as_slice() {
            [Class::X87, Class::X87Up] => AggregateClass::X87,
            _ => AggregateClass::Memory,
        };
    }
    let eightbytes = classes
        .into_iter()
        .enumerate()
        .map(|(index, class)| Eightbyte {
            offset: index * 8,
            size: (aggregate.size() - index * 8).min(8),
            class: match class {
                Class::Integer => Some(RegClass::Integer),
                Class::Sse => Some(RegClass::Sse),
                _ => None,
            },
        })
        .collect();
    AggregateClass::Registers(eightbytes)
}

/// The psABI classes of one eightbyte, before the final register choice (`Unclassed` is
/// the psABI's NO_CLASS: padding only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Unclassed,
    Integer,
    Sse,
    X87,
    X87Up,
}

/// psABI §3.2.3 step 4, rules (a)–(f); `None` is MEMORY.
fn merge(a: Class, b: Class) -> Option<Class> {
    use Class::*;
    Some(match (a, b) {
        (x, y) if x == y => x,
        (Unclassed, other) | (other, Unclassed) => other,
        (Integer, _) | (_, Integer) => Integer,
        (X87 | X87Up, _) | (_, X87 | X87Up) => return None,
        _ => Sse,
    })
}

/// The classes of the eightbytes `ty` touches when it starts at `offset` (an offset inside
/// the outermost aggregate, so that alignment is judged as gcc judges it), numbered from
/// the eightbyte holding its first byte; `None` when it must go to MEMORY.
fn classify_type(ty: &Type, offset: usize) -> Option<Vec<Class>> {
    let words = (ty.size() + offset % 8).div_ceil(8);
    match ty {
        Type::Aggregate(aggregate) => {
            let mut classes = vec![Class::Unclassed; words];
            for field in aggregate.fields() {
                let field_offset = offset + field.offset;
                let sub = classify_type(&field.ty, field_offset)?;
                let first = (offset % 8 + field.offset) / 8;
                for (index, class) in sub.into_iter().enumerate() {
                    if let Some(slot) = classes.get_mut(first + index) {
                        *slot = merge(*slot, class)?;
                    }
                }
            }
            // Post-merger cleanup (step 5): X87UP must follow X87.
            for index in 0..classes.len() {
                if classes[index] == Class::X87Up
                    && (index == 0 || classes[index - 1] != Class::X87)
                {
                    return None;
                }
            }
            Some(classes)
        }
        Type::Array { element, len } => {
            if *len == 0 || words == 0 {
                return Some(vec![Class::Unclassed; words]);
            }
            let sub = classify_type(element, offset)?;
            Some((0..words).map(|index| sub[index % sub.len()]).collect())
        }
        Type::Void => Some(vec![Class::Unclassed; words]),
        scalar => {
            if offset % scalar.align() != 0 {
                return None;
            }
            Some(match scalar {
                Type::LongDouble => vec![Class::X87, Class::X87Up],
                Type::F32 | Type::F64 => vec![Class::Sse],
                _ => vec![Class::Integer],
            })
        }
    }
}

/// How one piece of an argument is read from its storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PieceKind {
    /// An integer, bool or pointer of `bytes` bytes, widened to 64 bits as C callers do.
    Int {
        bytes: u8,
        signed: bool,
    },
    F32,
    F64,
    /// `bytes` (1–8) raw bytes of an aggregate, travelling in one register or stack slot.
    Chunk {
        bytes: u8,
        class: RegClass,
    },
    /// An empty stack slot that keeps a 16-byte-aligned aggregate aligned.
    Padding,
}

/// One register's or one stack slot's worth of an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Piece {
    /// Index of the argument; the piece is read from `args[arg] + offset`.
    pub arg: usize,
    pub offset: usize,
    pub kind: PieceKind,
    pub on_stack: bool,
}

/// Where the return value comes back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetPlan {
    Void,
    /// In rax, widened to 64 bits when stored (libffi's `ffi_arg` rule).
    Int {
        bytes: u8,
        signed: bool,
    },
    F32,
    F64,
    /// An aggregate in rax/rdx and xmm0/xmm1, one register per classed eightbyte.
    Registers(Vec<Eightbyte>),
    /// An aggregate written by the callee through a hidden pointer passed in rdi.
    Memory,
    /// A `long double` (alone or as an aggregate's only member) in the x87 register st(0).
    X87,
}

/// Everything the stub compiler needs to know about a call, and nothing about Python.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallPlan {
    pub ret: RetPlan,
    /// In argument order; register pieces and stack pieces interleave as the arguments do.
    pub pieces: Vec<Piece>,
    pub arg_count: usize,
}

impl CallPlan {
    pub fn stack_slots(&self) -> usize {
        self.pieces.iter().filter(|piece| piece.on_stack).count()
    }
    pub fn int_registers_used(&self) -> usize {
        let sret = usize::from(self.ret == RetPlan::Memory);
        sret + self.pieces.iter().filter(|p| !p.on_stack && p.kind.is_integer_class()).count()
    }
}

impl PieceKind {
    fn is_integer_class(self) -> bool {
        matches!(self, PieceKind::Int { .. } | PieceKind::Chunk { class: RegClass::Integer, .. })
    }
}

/// Registers still free while arguments are assigned left to right.
struct FreeRegisters {
    int: usize,
    sse: usize,
}

/// Builds the call plan of a signature, or says why the JIT leaves it to libffi.
pub fn plan_call(signature: &Signature) -> Result<CallPlan, FallbackReason> {
    if signature.is_variadic() {
        return Err(FallbackReason::Variadic);
    }
    let mut free = FreeRegisters { int: INT_ARG_REGS, sse: SSE_ARG_REGS };
    let ret = plan_return(signature.ret());
    if ret == RetPlan::Memory {
        free.int -= 1;
    }
    let mut pieces = Vec::new();
    let mut stack_slots = 0;
    for (arg, ty) in signature.args().iter().enumerate() {
        let first_new = pieces.len();
        plan_argument(arg, ty, &mut free, &mut pieces);
        let goes_to_stack = pieces[first_new..].first().is_some_and(|p| p.on_stack);
        // The stack copy of a 16-byte-aligned argument starts on a 16-byte boundary.
        if goes_to_stack && ty.align() == 16 && stack_slots % 2 == 1 {
            let padding = Piece { arg, offset: 0, kind: PieceKind::Padding, on_stack: true };
            pieces.insert(first_new, padding);
        }
        stack_slots += pieces[first_new..].iter().filter(|p| p.on_stack).count();
    }
    if stack_slots > MAX_STACK_SLOTS {
        return Err(FallbackReason::StackArgumentsTooLarge { slots: stack_slots });
    }
    Ok(CallPlan { ret, pieces, arg_count: signature.args().len() })
}

fn plan_return(ty: &Type) -> RetPlan {
    match ty {
        Type::Void => RetPlan::Void,
        Type::F32 => RetPlan::F32,
        Type::F64 => RetPlan::F64,
        Type::LongDouble => RetPlan::X87,
        Type::Aggregate(aggregate) => match classify_aggregate(aggregate) {
            AggregateClass::Memory => RetPlan::Memory,
            AggregateClass::X87 => RetPlan::X87,
            AggregateClass::Registers(eightbytes) => RetPlan::Registers(eightbytes),
        },
        // Arrays by value are rejected when the signature is built.
        Type::Array { .. } => unreachable!("array return in a validated signature"),
        integer => {
            let (bytes, signed) = integer_shape(integer);
            RetPlan::Int { bytes, signed }
        }
    }
}

fn integer_shape(ty: &Type) -> (u8, bool) {
    let signed = matches!(ty, Type::I8 | Type::I16 | Type::I32 | Type::I64);
    (ty.size() as u8, signed)
}

fn plan_argument(arg: usize, ty: &Type, free: &mut FreeRegisters, pieces: &mut Vec<Piece>) {
    let scalar = |offset, kind, on_stack| Piece { arg, offset, kind, on_stack };
    match ty {
        Type::F32 | Type::F64 => {
            let kind = if *ty == Type::F32 { PieceKind::F32 } else { PieceKind::F64 };
            let on_stack = !take(&mut free.sse, 1);
            pieces.push(scalar(0, kind, on_stack));
        }
        Type::Aggregate(aggregate) => match classify_aggregate(aggregate) {
            AggregateClass::Registers(eightbytes) => {
                let int_needed = count_class(&eightbytes, RegClass::Integer);
                let sse_needed = count_class(&eightbytes, RegClass::Sse);
                if free.int >= int_needed && free.sse >= sse_needed {
                    free.int -= int_needed;
                    free.sse -= sse_needed;
                    for eightbyte in eightbytes {
                        let Some(class) = eightbyte.class else {
                            continue;
                        };
                        let kind = PieceKind::Chunk { bytes: eightbyte.size as u8, class };
                        pieces.push(scalar(eightbyte.offset, kind, false));
                    }
                } else {
                    push_memory_copy(arg, aggregate.size(), pieces);
                }
            }
            AggregateClass::Memory | AggregateClass::X87 => {
                push_memory_copy(arg, aggregate.size(), pieces)
            }
        },
        // A `long double` argument is passed in memory (psABI class X87 for arguments).
        Type::LongDouble => push_memory_copy(arg, 16, pieces),
        Type::Void | Type::Array { .. } => unreachable!("rejected when the signature is built"),
        integer => {
            let (bytes, signed) = integer_shape(integer);
            let on_stack = !take(&mut free.int, 1);
            pieces.push(scalar(0, PieceKind::Int { bytes, signed }, on_stack));
        }
    }
}

fn count_class(eightbytes: &[Eightbyte], class: RegClass) -> usize {
    eightbytes.iter().filter(|e| e.class == Some(class)).count()
}

/// Takes `count` registers if that many are free.
fn take(free: &mut usize, count: usize) -> bool {
    let available = *free >= count;
    if available {
        *free -= count;
    }
    available
}

/// An aggregate copied onto the stack: its bytes in 8-byte slots, the last one partial.
fn push_memory_copy(arg: usize, size: usize, pieces: &mut Vec<Piece>) {
    for offset in (0..size).step_by(8) {
        let bytes = (size - offset).min(8) as u8;
        let kind = PieceKind::Chunk { bytes, class: RegClass::Integer };
        pieces.push(Piece { arg, offset, kind, on_stack: true });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{AggregateKind, Field};

    fn strukt(members: Vec<Type>) -> Aggregate {
        Aggregate::c_struct(members).unwrap()
    }

    fn classes(aggregate: &Aggregate) -> Vec<Option<RegClass>> {
        match classify_aggregate(aggregate) {
            AggregateClass::Registers(eightbytes) => eightbytes.iter().map(|e| e.class).collect(),
            other => panic!("not in registers: {other:?}"),
        }
    }

    use RegClass::{Integer as I, Sse as S};

    #[test]
    fn mixed_struct_is_half_integer_half_sse() {
        assert_eq!(classes(&strukt(vec![Type::I64, Type::F64])), [Some(I), Some(S)]);
        assert_eq!(classes(&strukt(vec![Type::F32, Type::F32, Type::I32])), [Some(S), Some(I)]);
        assert_eq!(classes(&strukt(vec![Type::F32, Type::I32, Type::F64])), [Some(I), Some(S)]);
    }

    #[test]
    fn large_and_packed_aggregates_are_memory() {
        let big = strukt(vec![Type::F64, Type::F64, Type::F64]);
        assert_eq!(classify_aggregate(&big), AggregateClass::Memory);
        let packed = Aggregate::packed_struct(vec![Type::I8, Type::I32], Some(1)).unwrap();
        assert_eq!(classify_aggregate(&packed), AggregateClass::Memory);
    }

    #[test]
    fn union_merges_its_members() {
        let union = Aggregate::c_union(vec![Type::F32, Type::I32]).unwrap();
        assert_eq!(classes(&union), [Some(I)]);
    }

    #[test]
    fn padding_only_eightbyte_has_no_class() {
        let field = Field { offset: 0, ty: Type::F32 };
        let over_aligned =
            Aggregate::with_layout(AggregateKind::Struct, 16, 16, vec![field]).unwrap();
        assert_eq!(classes(&over_aligned), [Some(S), None]);
    }

    #[test]
    fn struct_that_does_not_fit_goes_to_stack_and_leaves_registers_free() {
        let pair = Type::aggregate(strukt(vec![Type::I64, Type::I64]));
        // Five ints take rdi..r8; the pair needs two registers, only r9 is left.
        let mut args = vec![Type::I32; 5];
        args.push(pair);
        args.push(Type::I32);
        let plan = plan_call(&Signature::new(Type::Void, args).unwrap()).unwrap();
        let pair_pieces: Vec<_> = plan.pieces.iter().filter(|p| p.arg == 5).collect();
        assert!(pair_pieces.iter().all(|p| p.on_stack));
        let last = plan.pieces.last().unwrap();
        assert_eq!((last.arg, last.on_stack), (6, false), "r9 stays free for the int");
    }

    #[test]
    fn memory_return_takes_rdi() {
        let big = Type::aggregate(strukt(vec![Type::I64; 3]));
        let plan = plan_call(&Signature::new(big, vec![Type::I64; 6]).unwrap()).unwrap();
        assert_eq!(plan.ret, RetPlan::Memory);
        assert!(plan.pieces[5].on_stack);
        assert_eq!(plan.int_registers_used(), 6);
    }

    #[test]
    fn over_aligned_stack_aggregate_gets_padding() {
        let field = Field { offset: 0, ty: Type::I64 };
        let aligned = Aggregate::with_layout(AggregateKind::Struct, 32, 16, vec![field]).unwrap();
        let mut args = vec![Type::I64; 7];
        args.push(Type::aggregate(aligned));
        let plan = plan_call(&Signature::new(Type::Void, args).unwrap()).unwrap();
        let kinds: Vec<_> = plan.pieces.iter().filter(|p| p.on_stack).map(|p| p.kind).collect();
        assert_eq!(kinds[1], PieceKind::Padding);
        assert_eq!(plan.stack_slots(), 1 + 1 + 4);
    }

    #[test]
    fn variadic_falls_back() {
        let variadic = Signature::variadic(Type::I32, vec![Type::Pointer], 1).unwrap();
        assert_eq!(plan_call(&variadic), Err(FallbackReason::Variadic));
    }

    #[test]
    fn long_double_is_memory_in_and_x87_out() {
        let ld = Type::LongDouble;
        let plan =
            plan_call(&Signature::new(ld.clone(), vec![Type::I32, ld.clone()]).unwrap()).unwrap();
        assert_eq!(plan.ret, RetPlan::X87);
        // The int takes rdi, the long double two 16-byte-aligned stack slots.
        let stack: Vec<_> = plan.pieces.iter().filter(|p| p.on_stack).map(|p| p.offset).collect();
        assert_eq!(stack, [0, 8]);
        let alone = Aggregate::c_struct(vec![ld.clone()]).unwrap();
        assert_eq!(classify_aggregate(&alone), AggregateClass::X87);
        let mixed = Aggregate::c_union(vec![ld, Type::I32]).unwrap();
        assert_eq!(classify_aggregate(&mixed), AggregateClass::Memory);
    }

    #[test]
    fn integer_wins_over_x87_when_merging() {
        // union { long double x; unsigned long long y[2]; }: gcc uses rdi and rsi.
        let ld = Type::LongDouble;
        let pair = Type::array(Type::U64, 2).unwrap();
        let union = Aggregate::c_union(vec![ld.clone(), pair]).unwrap();
        let AggregateClass::Registers(eightbytes) = classify_aggregate(&union) else {
            panic!("expected registers");
        };
        assert!(eightbytes.iter().all(|e| e.class == Some(RegClass::Integer)));
        // With a double instead, x87 meets SSE: MEMORY.
        let doubles = Type::array(Type::F64, 2).unwrap();
        let union = Aggregate::c_union(vec![ld, doubles]).unwrap();
        assert_eq!(classify_aggregate(&union), AggregateClass::Memory);
    }

    #[test]
    fn only_the_first_array_element_is_checked_for_alignment() {
        // #pragma pack(1) struct P { short s; char c; }; struct { struct P a[2]; }
        let packed = Aggregate::packed_struct(vec![Type::I16, Type::I8], Some(1)).unwrap();
        let pairs = Type::array(Type::aggregate(packed.clone()), 2).unwrap();
        let outer = Aggregate::c_struct(vec![pairs]).unwrap();
        let AggregateClass::Registers(eightbytes) = classify_aggregate(&outer) else {
            panic!("gcc passes it in rdi");
        };
        assert_eq!(eightbytes[0].class, Some(RegClass::Integer));
        // A misaligned first element still means MEMORY.
        let late = Aggregate::packed_struct(vec![Type::I8, Type::I16], Some(1)).unwrap();
        assert_eq!(classify_aggregate(&late), AggregateClass::Memory);
    }
}
