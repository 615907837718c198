//! The one description of a C function type in the project.
//!
//! Every value here is validated when it is built: an [`Aggregate`] or a [`Signature`] that
//! exists is well-formed, so the classifier and both call paths never see nonsense. A
//! `Signature` is `Hash + Eq` by content; it is the key of the stub cache.

use std::fmt;
use std::sync::Arc;

use crate::error::SignatureError;

/// Most arguments a signature may have (the value of ctypes' `CTYPES_MAX_ARGCOUNT`).
pub const MAX_ARGS: usize = 1024;

/// Largest struct or union passed or returned by value. C allows more, but beyond this a
/// by-value copy is almost certainly a mistake of the caller, and libffi needs one type
/// description per member.
pub const MAX_BY_VALUE_SIZE: usize = 64 * 1024;

/// Largest alignment an aggregate may ask for. SysV types never need more than 16; a larger
/// value is almost certainly a bug in the layout computation of the caller.
pub const MAX_ALIGN: usize = 16;

/// A C type as it appears in a signature or inside an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// Only valid as a return type.
    Void,
    /// C `_Bool`: one byte holding 0 or 1.
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// x87 80-bit extended precision, stored in 16 bytes with 16-byte alignment.
    LongDouble,
    /// Any data or function pointer.
    Pointer,
    /// A struct or union, passed by value.
    Aggregate(Arc<Aggregate>),
    /// A fixed-size array; only valid inside an aggregate (C arrays decay to pointers).
    Array {
        element: Arc<Type>,
        len: usize,
    },
}

impl Type {
    /// An array field type of `len` elements.
    pub fn array(element: Type, len: usize) -> Result<Type, SignatureError> {
        if matches!(element, Type::Void) {
            return Err(SignatureError::VoidField);
        }
        element.size().checked_mul(len).ok_or(SignatureError::SizeOverflow)?;
        Ok(Type::Array { element: Arc::new(element), len })
    }

    /// An aggregate type from an already validated [`Aggregate`].
    pub fn aggregate(aggregate: Aggregate) -> Type {
        Type::Aggregate(Arc::new(aggregate))
    }

    /// `sizeof` in bytes (0 for `void`).
    pub fn size(&self) -> usize {
        match self {
            Type::Void => 0,
            Type::Bool | Type::I8 | Type::U8 => 1,
            Type::I16 | Type::U16 => 2,
            Type::I32 | Type::U32 | Type::F32 => 4,
            Type::I64 | Type::U64 | Type::F64 | Type::Pointer => 8,
            Type::LongDouble => 16,
            Type::Aggregate(aggregate) => aggregate.size,
            // Cannot overflow: checked when the array type was built.
            Type::Array { element, len } => element.size() * len,
        }
    }

    /// `_Alignof` in bytes (1 for `void`).
    pub fn align(&self) -> usize {
        match self {
            Type::Void => 1,
            Type::Aggregate(aggregate) => aggregate.align,
            Type::Array { element, .. } => element.align(),
            scalar => scalar.size(),
        }
    }

    /// True for the types that are a single C scalar (not void, aggregate or array).
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Type::Void | Type::Aggregate(_) | Type::Array { .. })
    }

    pub fn is_float(&self) -> bool {
        matches!(self, Type::F32 | Type::F64 | Type::LongDouble)
    }

    /// True when this type or anything inside it is `long double`.
    pub fn contains_long_double(&self) -> bool {
        match self {
            Type::LongDouble => true,
            Type::Aggregate(aggregate) => {
                aggregate.fields.iter().any(|field| field.ty.contains_long_double())
            }
            Type::Array { element, .. } => element.contains_long_double(),
            _ => false,
        }
    }

    /// Calls `visit(offset, scalar)` for every scalar inside this type, arrays expanded,
    /// in field order, with offsets relative to `base`.
    pub fn for_each_scalar(&self, base: usize, visit: &mut impl FnMut(usize, &Type)) {
        match self {
            Type::Void => {}
            Type::Aggregate(aggregate) => {
                for field in &aggregate.fields {
                    field.ty.for_each_scalar(base + field.offset, visit);
                }
            }
            Type::Array { element, len } => {
                for index in 0..*len {
                    element.for_each_scalar(base + index * element.size(), visit);
                }
            }
            scalar => visit(base, scalar),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Void => f.write_str("void"),
            Type::Bool => f.write_str("bool"),
            Type::I8 => f.write_str("i8"),
            Type::U8 => f.write_str("u8"),
            Type::I16 => f.write_str("i16"),
            Type::U16 => f.write_str("u16"),
            Type::I32 => f.write_str("i32"),
            Type::U32 => f.write_str("u32"),
            Type::I64 => f.write_str("i64"),
            Type::U64 => f.write_str("u64"),
            Type::F32 => f.write_str("f32"),
            Type::F64 => f.write_str("f64"),
            Type::LongDouble => f.write_str("f80"),
            Type::Pointer => f.write_str("ptr"),
            Type::Aggregate(aggregate) => write!(f, "{aggregate}"),
            Type::Array { element, len } => write!(f, "{element}[{len}]"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    Struct,
    Union,
}

/// One member of an aggregate, at a byte offset from the aggregate's start.
///
/// Bit-fields are described by their storage unit: an integer field covering the bytes the
/// bits live in. Calls only move bytes; extracting bits is the layout layer's business.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    pub offset: usize,
    pub ty: Type,
}

/// A struct or union with an explicit layout. Built only through the validating
/// constructors, so its invariants hold: size > 0, alignment a power of two up to
/// [`MAX_ALIGN`], size a multiple of alignment, every field inside the size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Aggregate {
    kind: AggregateKind,
    size: usize,
    align: usize,
    fields: Vec<Field>,
}

impl Aggregate {
    /// An aggregate with a layout computed elsewhere (e.g. by the `rawffi` layout engine,
    /// with `_pack_` or bit-fields applied). Validated, never trusted.
    pub fn with_layout(
        kind: AggregateKind,
        size: usize,
        align: usize,
        fields: Vec<Field>,
    ) -> Result<Aggregate, SignatureError> {
        if size == 0 {
            return Err(SignatureError::ZeroSizedAggregate);
        }
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(SignatureError::BadAlignment { align });
        }
        if size % align != 0 {
            return Err(SignatureError::SizeNotMultipleOfAlignment { size, align });
        }
        for field in &fields {
            if matches!(field.ty, Type::Void) {
                return Err(SignatureError::VoidField);
            }
            let end =
                field.offset.checked_add(field.ty.size()).ok_or(SignatureError::SizeOverflow)?;
            if end > size {
                return Err(SignatureError::FieldOutOfBounds {
                    offset: field.offset,
                    field_size: field.ty.size(),
                    aggregate_size: size,
                });
            }
        }
        Ok(Aggregate { kind, size, align, fields })
    }

    /// A C struct with the natural layout gcc gives these member types in this order.
    pub fn c_struct(members: Vec<Type>) -> Result<Aggregate, SignatureError> {
        Self::packed_struct(members, None)
    }

    /// A C struct laid out as under `#pragma pack(pack)`: each member aligned to
    /// `min(its alignment, pack)`. `None` is the natural layout.
    pub fn packed_struct(
        members: Vec<Type>,
        pack: Option<usize>,
    ) -> Result<Aggregate, SignatureError> {
        if let Some(pack) = pack {
            if !pack.is_power_of_two() || pack > MAX_ALIGN {
                return Err(SignatureError::BadAlignment { align: pack });
            }
        }
        let member_align = |ty: &Type| pack.map_or(ty.align(), |pack| ty.align().min(pack));
        let mut offset = 0usize;
        let mut align = 1usize;
        let mut fields = Vec::with_capacity(members.len());
        for ty in members {
            let field_align = member_align(&ty);
            offset = align_up(offset, field_align).ok_or(SignatureError::SizeOverflow)?;
            align = align.max(field_align);
            let size = ty.size();
            fields.push(Field { offset, ty });
            offset = offset.checked_add(size).ok_or(SignatureError::SizeOverflow)?;
        }
        let size = align_up(offset, align).ok_or(SignatureError::SizeOverflow)?;
        Self::with_layout(AggregateKind::Struct, size, align, fields)
    }

    /// A C union of these member types: every member at offset 0.
    pub fn c_union(members: Vec<Type>) -> Result<Aggregate, SignatureError> {
        let align = members.iter().map(Type::align).max().unwrap_or(1);
        let largest = members.iter().map(Type::size).max().unwrap_or(0);
        let size = align_up(largest, align).ok_or(SignatureError::SizeOverflow)?;
        let fields = members.into_iter().map(|ty| Field { offset: 0, ty }).collect();
        Self::with_layout(AggregateKind::Union, size, align, fields)
    }

    pub fn kind(&self) -> AggregateKind {
        self.kind
    }
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn align(&self) -> usize {
        self.align
    }
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// True when this is a struct whose layout is exactly what the plain C rules give its
    /// members, recursively; such a struct can be described to libffi member by member.
    pub fn has_natural_layout(&self) -> bool {
        if self.kind != AggregateKind::Struct {
            return false;
        }
        let members: Vec<Type> = self.fields.iter().map(|field| field.ty.clone()).collect();
        let nested_natural = members.iter().all(type_has_natural_layout);
        nested_natural && Aggregate::c_struct(members).is_ok_and(|natural| natural == *self)
    }
}

fn type_has_natural_layout(ty: &Type) -> bool {
    match ty {
        Type::Aggregate(aggregate) => aggregate.has_natural_layout(),
        Type::Array { element, .. } => type_has_natural_layout(element),
        _ => true,
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyword = match self.kind {
            AggregateKind::Struct => "struct",
            AggregateKind::Union => "union",
        };
        write!(f, "{keyword}<{}/{}>{{", self.size, self.align)?;
        for (index, field) in self.fields.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{}@{}", field.ty, field.offset)?;
        }
        f.write_str("}")
    }
}

pub(crate) fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// Calling convention of a foreign function. The host ABI is the only one so far: Cranelift
/// has no x86-32 backend, and Windows conventions do not occur in Linux libraries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CallConv {
    /// x86-64 System V, the C convention of Linux and the BSDs.
    #[default]
    SysV64,
}

/// A C function type: return type, argument types, calling convention and, for variadic
/// functions, how many arguments are fixed (the rest are the variadic tail of one call).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    ret: Type,
    args: Vec<Type>,
    fixed_args: Option<usize>,
    call_conv: CallConv,
}

impl Signature {
    /// A non-variadic signature with the host calling convention.
    pub fn new(ret: Type, args: Vec<Type>) -> Result<Signature, SignatureError> {
        Self::build(ret, args, None)
    }

    /// The signature of one call of a variadic function: `args[..fixed_args]` are the
    /// declared parameters, the rest the variadic tail. The tail must already hold the C
    /// default argument promotions (no `bool`, 8/16-bit integers or `float`).
    pub fn variadic(
        ret: Type,
        args: Vec<Type>,
        fixed_args: usize,
    ) -> Result<Signature, SignatureError> {
        if fixed_args > args.len() {
            return Err(SignatureError::FixedArgumentsOutOfRange {
                fixed: fixed_args,
                total: args.len(),
            });
        }
        for (index, ty) in args.iter().enumerate().skip(fixed_args) {
            let unpromoted =
                matches!(ty, Type::Bool | Type::I8 | Type::U8 | Type::I16 | Type::U16 | Type::F32);
            if unpromoted {
                return Err(SignatureError::UnpromotedVariadicArgument {
                    index,
                    ty: ty.to_string(),
                });
            }
        }
        Self::build(ret, args, Some(fixed_args))
    }

    fn build(
        ret: Type,
        args: Vec<Type>,
        fixed_args: Option<usize>,
    ) -> Result<Signature, SignatureError> {
        if args.len() > MAX_ARGS {
            return Err(SignatureError::TooManyArguments { count: args.len(), max: MAX_ARGS });
        }
        if matches!(ret, Type::Array { .. }) {
            return Err(SignatureError::ArrayByValue { position: "return".into() });
        }
        for ty in std::iter::once(&ret).chain(&args) {
            if ty.size() > MAX_BY_VALUE_SIZE {
                return Err(SignatureError::AggregateTooLarge {
                    size: ty.size(),
                    max: MAX_BY_VALUE_SIZE,
                });
            }
        }
        for (index, ty) in args.iter().enumerate() {
            match ty {
                Type::Void => return Err(SignatureError::VoidArgument { index }),
                Type::Array { .. } => {
                    return Err(SignatureError::ArrayByValue {
                        position: format!("argument {index}"),
                    })
                }
                _ => {}
            }
        }
        Ok(Signature { ret, args, fixed_args, call_conv: CallConv::default() })
    }

    pub fn ret(&self) -> &Type {
        &self.ret
    }
    pub fn args(&self) -> &[Type] {
        &self.args
    }
    pub fn call_conv(&self) -> CallConv {
        self.call_conv
    }
    /// `Some(n)` for a variadic call with `n` fixed arguments.
    pub fn fixed_args(&self) -> Option<usize> {
        self.fixed_args
    }
    pub fn is_variadic(&self) -> bool {
        self.fixed_args.is_some()
    }
    /// True when the return type or any argument is or contains `long double`.
    pub fn uses_long_double(&self) -> bool {
        self.ret.contains_long_double() || self.args.iter().any(Type::contains_long_double)
    }
    /// Bytes the `ret` buffer of a call must have: max(8, size of the return type).
    pub fn ret_buffer_size(&self) -> usize {
        self.ret.size().max(8)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fn(")?;
        for (index, arg) in self.args.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            if Some(index) == self.fixed_args {
                f.write_str("...: ")?;
            }
            write!(f, "{arg}")?;
        }
        if self.fixed_args == Some(self.args.len()) {
            f.write_str(if self.args.is_empty() { "..." } else { ", ..." })?;
        }
        write!(f, ") -> {}", self.ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_struct_layout_matches_c_rules() {
        let s = Aggregate::c_struct(vec![Type::I8, Type::F64, Type::I16]).unwrap();
        let offsets: Vec<usize> = s.fields().iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 8, 16]);
        assert_eq!((s.size(), s.align()), (24, 8));
        assert!(s.has_natural_layout());
    }

    #[test]
    fn packed_struct_is_not_natural() {
        let s = Aggregate::packed_struct(vec![Type::I8, Type::I32], Some(1)).unwrap();
        assert_eq!((s.size(), s.align()), (5, 1));
        assert!(!s.has_natural_layout());
    }

    #[test]
    fn union_takes_largest_member_rounded_to_alignment() {
        let u = Aggregate::c_union(vec![Type::array(Type::I8, 5).unwrap(), Type::F32]).unwrap();
        assert_eq!((u.size(), u.align()), (8, 4));
    }

    #[test]
    fn invalid_aggregates_are_errors() {
        assert_eq!(Aggregate::c_struct(vec![]), Err(SignatureError::ZeroSizedAggregate));
        let bad_align = Aggregate::with_layout(AggregateKind::Struct, 64, 64, vec![]);
        assert_eq!(bad_align, Err(SignatureError::BadAlignment { align: 64 }));
        let outside = vec![Field { offset: 6, ty: Type::I32 }];
        assert!(matches!(
            Aggregate::with_layout(AggregateKind::Struct, 8, 4, outside),
            Err(SignatureError::FieldOutOfBounds { .. })
        ));
        assert_eq!(Type::array(Type::F64, usize::MAX), Err(SignatureError::SizeOverflow));
    }

    #[test]
    fn invalid_signatures_are_errors() {
        let too_many = vec![Type::I32; MAX_ARGS + 1];
        assert!(matches!(
            Signature::new(Type::Void, too_many),
            Err(SignatureError::TooManyArguments { .. })
        ));
        assert_eq!(
            Signature::new(Type::I32, vec![Type::Void]),
            Err(SignatureError::VoidArgument { index: 0 })
        );
        assert!(matches!(
            Signature::variadic(Type::I32, vec![Type::Pointer, Type::F32], 1),
            Err(SignatureError::UnpromotedVariadicArgument { index: 1, .. })
        ));
        assert!(Signature::variadic(Type::I32, vec![Type::Pointer], 2).is_err());
        let huge = Type::aggregate(
            Aggregate::c_struct(vec![Type::array(Type::U8, 1 << 40).unwrap()]).unwrap(),
        );
        assert!(matches!(
            Signature::new(Type::Void, vec![huge]),
            Err(SignatureError::AggregateTooLarge { .. })
        ));
    }

    #[test]
    fn display_names_the_shape() {
        let pair = Type::aggregate(Aggregate::c_struct(vec![Type::I32, Type::F32]).unwrap());
        let sig = Signature::variadic(Type::I32, vec![Type::Pointer, pair], 1).unwrap();
        assert_eq!(sig.to_string(), "fn(ptr, ...: struct<8/4>{i32@0, f32@4}) -> i32");
    }
}
