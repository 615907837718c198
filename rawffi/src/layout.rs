//! Layout of structures and unions: the one place where offsets, sizes, alignments and
//! bit-field positions are decided.
//!
//! The referee is gcc on x86-64 Linux (System V): a ctypes `Structure` must describe the
//! same bytes as the C declaration it mirrors, or every call that passes it is wrong.
//! `rawffi/tests/layout_gcc.rs` compares this module with gcc on hundreds of declarations.
//!
//! The rules, as gcc applies them (`place_field` in its `stor-layout.c`):
//!
//! - An ordinary member goes to the next multiple of its alignment, capped at `n` under
//!   `#pragma pack(n)` (ctypes' `_pack_`); the aggregate takes the largest such alignment and
//!   its size is rounded up to it.
//! - A bit-field of type `T` goes at the current *bit* position, unless, without a pack, it
//!   would straddle a boundary of a `T`-sized unit, in which case it starts at the next one.
//!   Under any `#pragma pack(n)`, even `n` = 16, gcc drops that rule and bit-fields straddle
//!   freely. Either way the bit-field raises the aggregate's alignment to `T`'s (capped at
//!   `n`), and the next ordinary member starts at a byte boundary.
//! - In a union, every member starts at offset 0, bit-fields at bit 0; a bit-field occupies
//!   `ceil(width / 8)` bytes, which matters only when a pack caps the alignment.
//!
//! A bit-field is read and written through a *window*: `size` bytes at `offset` read as one
//! unsigned integer in the struct's byte order (little-endian, or big-endian when
//! `swapped`). [`read_bitfield`] and [`write_bitfield`] work on that integer;
//! [`window_from_bytes`] and [`window_to_bytes`] convert it from and to the bytes. Windows
//! never reach outside the layout, so the bytes can be read from the object itself.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use jit::{Aggregate, AggregateKind, Field, SignatureError, Type};

/// Largest `_pack_` accepted: no x86-64 type is aligned to more, so a larger value would
/// change nothing, and gcc ignores one in `#pragma pack` with a warning.
pub const MAX_PACK: usize = 16;

/// Largest window, in bytes: a bit-field is moved through one 64-bit integer.
pub const MAX_WINDOW: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    Struct,
    Union,
}

/// One declared member: its C type (a scalar, a pointer, a [`Type::Array`], or a
/// [`Type::Aggregate`] / zero-length array from [`Layout::member_type`] for a nested struct or
/// union) and, for a bit-field, its width in bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberDecl {
    pub ty: Type,
    pub bits: Option<u32>,
}

impl MemberDecl {
    pub fn field(ty: Type) -> MemberDecl {
        MemberDecl { ty, bits: None }
    }

    pub fn bitfield(ty: Type, width: u32) -> MemberDecl {
        MemberDecl { ty, bits: Some(width) }
    }
}

/// Everything that decides a layout: the members and the class attributes of the ctypes
/// type (`_pack_`, the byte order, the base class).
#[derive(Clone, Copy, Debug)]
pub struct LayoutRequest<'a> {
    pub kind: LayoutKind,
    pub members: &'a [MemberDecl],
    /// `_pack_` (ctypes) / `#pragma pack(n)`: `None` is the natural layout; `Some(n)` needs
    /// `n` a power of two up to [`MAX_PACK`]. (ctypes' `_pack_ = 0` means `None`.)
    pub pack: Option<usize>,
    /// Non-native byte order (ctypes' `BigEndianStructure` on x86-64). Bytes are placed as
    /// natively; bit-fields are numbered from the most significant end of their window, as a
    /// big-endian gcc target numbers them, and windows are read as big-endian integers.
    pub swapped: bool,
    /// A ctypes subclass of a Structure continues after its base: `(base size, base
    /// alignment)`. The base's alignment is not capped by `pack`, as in ctypes. In a union,
    /// the members overlap the base's storage from offset 0.
    pub base: Option<(usize, usize)>,
    /// ctypes' `_align_` (CPython 3.13+): the aggregate is aligned to at least this (a power
    /// of two; 1 changes nothing), its size rounded up to it; a pack does not cap it.
    pub min_align: usize,
}

impl<'a> LayoutRequest<'a> {
    /// A natural, native-order request without a base.
    pub fn new(kind: LayoutKind, members: &'a [MemberDecl]) -> LayoutRequest<'a> {
        LayoutRequest { kind, members, pack: None, swapped: false, base: None, min_align: 1 }
    }
}

/// Where a bit-field sits inside its window value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BitField {
    /// Position of the field's least significant bit in the window value, the window read
    /// as an unsigned integer in the struct's byte order.
    pub shift: u32,
    pub width: u32,
    /// Sign-extend on read: true for the signed integer types, false for `bool` and the
    /// unsigned ones.
    pub signed: bool,
}

/// Where a member lives. A bit-field lives in a *window*: its type's aligned unit when that
/// holds the bits and lies inside the layout (always so without a pack); otherwise the
/// smallest 1-, 2-, 4- or 8-byte window starting at the bits' first byte, moved back to end
/// at the layout's end if it would stick out; in a layout smaller than that, exactly the bytes
/// the bits touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldLayout {
    /// Byte offset of the field, or of the bit-field's window.
    pub offset: usize,
    /// Bytes of the field, or of the bit-field's window (1–8; a power of two unless the
    /// whole layout is smaller than one: a packed 3-, 5-, 6- or 7-byte struct).
    pub size: usize,
    pub bitfield: Option<BitField>,
}

impl FieldLayout {
    /// The bits of the aggregate this field occupies, numbered as gcc places them: bit `8k`
    /// is the first bit of byte `k` (its least significant bit natively, its most
    /// significant when `swapped`). An ordinary field occupies whole bytes.
    pub fn bit_range(&self, swapped: bool) -> Range<usize> {
        // Saturating: the fields are public, and nonsense in them must not panic.
        let window_start = self.offset.saturating_mul(8);
        let window_bits = self.size.saturating_mul(8);
        match self.bitfield {
            None => window_start..window_start.saturating_add(window_bits),
            Some(bitfield) => {
                let width = bitfield.width as usize;
                let shift = bitfield.shift as usize;
                let within_window =
                    if swapped { window_bits.saturating_sub(shift + width) } else { shift };
                let start = window_start.saturating_add(within_window);
                start..start.saturating_add(width)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub size: usize,
    pub align: usize,
    /// One per member, in declaration order.
    pub fields: Vec<FieldLayout>,
}

/// Why a declaration has no layout, or a layout no `jit` type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    BadPack {
        pack: usize,
    },
    BadAlign {
        align: usize,
    },
    BadBase {
        size: usize,
        align: usize,
    },
    VoidMember {
        index: usize,
    },
    BitFieldOnNonInteger {
        index: usize,
    },
    BitFieldWidth {
        index: usize,
        width: u32,
        max: u32,
    },
    /// Under a pack, the bits straddle more than [`MAX_WINDOW`] bytes.
    BitFieldTooWide {
        index: usize,
    },
    Overflow,
    /// `jit` passes no empty aggregate by value.
    EmptyByValue,
    /// The layout was computed from a request with another number of members.
    RequestMismatch {
        members: usize,
        fields: usize,
    },
    /// The request has a base, so its by-value type needs the base's type.
    BaseTypeMissing,
    BaseTypeMismatch {
        base: (usize, usize),
        base_type: (usize, usize),
    },
    /// `jit` refused the aggregate description (a bug of this module if it ever happens).
    Aggregate(SignatureError),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::BadAlign { align } => {
                let most = jit::signature::MAX_ALIGN;
                write!(f, "_align_ must be a power of two up to {most}, not {align}")
            }
            LayoutError::BadPack { pack } => {
                write!(f, "_pack_ must be a power of two up to {MAX_PACK}, not {pack}")
            }
            LayoutError::BadBase { size, align } => {
                write!(f, "base of size {size} and alignment {align} is not a valid struct layout")
            }
            LayoutError::VoidMember { index } => write!(f, "field {index} has type void"),
            LayoutError::BitFieldOnNonInteger { index } => {
                write!(f, "bit field {index} must have an integer or bool type")
            }
            LayoutError::BitFieldWidth { index, width, max } => {
                write!(f, "bit field {index} has width {width}, not in 1..={max}")
            }
            LayoutError::BitFieldTooWide { index } => write!(
                f,
                "bit field {index} straddles more than {MAX_WINDOW} bytes of a packed struct"
            ),
            LayoutError::Overflow => f.write_str("structure size overflows"),
            LayoutError::EmptyByValue => {
                f.write_str("an empty structure or union cannot be passed by value")
            }
            LayoutError::RequestMismatch { members, fields } => {
                write!(f, "request has {members} members but the layout was computed for {fields}")
            }
            LayoutError::BaseTypeMissing => {
                f.write_str("a layout with a base needs the base's type to be passed by value")
            }
            LayoutError::BaseTypeMismatch { base, base_type } => write!(
                f,
                "base is {}/{} (size/align) but its type is {}/{}",
                base.0, base.1, base_type.0, base_type.1
            ),
            LayoutError::Aggregate(error) => write!(f, "invalid aggregate: {error}"),
        }
    }
}

impl std::error::Error for LayoutError {}

impl From<SignatureError> for LayoutError {
    fn from(error: SignatureError) -> LayoutError {
        LayoutError::Aggregate(error)
    }
}

/// A member once its place is known: whole bytes, or a run of bits.
enum Placement {
    Bytes { offset: usize },
    Bits { start: usize, width: u32, unit_bytes: usize, signed: bool },
}

/// Walks the members of a struct or union, keeping gcc's state between them.
struct Placer {
    pack: Option<usize>,
    /// Bits used so far (a struct) or the largest member in bits (a union).
    used_bits: usize,
    align: usize,
}

impl Placer {
    fn capped(&self, align: usize) -> usize {
        self.pack.map_or(align, |pack| align.min(pack))
    }

    fn place_struct_member(&mut self, member: &Member) -> Result<Placement, LayoutError> {
        match *member {
            Member::Bytes { size, align } => {
                let align = self.capped(align);
                let offset = align_up(self.used_bits.div_ceil(8), align)?;
                let end = offset.checked_add(size).ok_or(LayoutError::Overflow)?;
                self.used_bits = end.checked_mul(8).ok_or(LayoutError::Overflow)?;
                self.align = self.align.max(align);
                Ok(Placement::Bytes { offset })
            }
            Member::Bits { width, unit_bytes, signed } => {
                let unit_bits = unit_bytes * 8;
                let straddles = self.used_bits % unit_bits + width as usize > unit_bits;
                // gcc lets bit-fields straddle their unit only when a pack is in force.
                let start = if straddles && self.pack.is_none() {
                    align_up(self.used_bits, unit_bits)?
                } else {
                    self.used_bits
                };
                self.used_bits = start.checked_add(width as usize).ok_or(LayoutError::Overflow)?;
                self.align = self.align.max(self.capped(unit_bytes));
                Ok(Placement::Bits { start, width, unit_bytes, signed })
            }
        }
    }

    fn place_union_member(&mut self, member: &Member) -> Result<Placement, LayoutError> {
        let (bits, align, placement) = match *member {
            Member::Bytes { size, align } => {
                let bits = size.checked_mul(8).ok_or(LayoutError::Overflow)?;
                (bits, align, Placement::Bytes { offset: 0 })
            }
            Member::Bits { width, unit_bytes, signed } => {
                // A union member of `width` bits takes whole bytes, not its type's size.
                let bits = (width as usize).div_ceil(8) * 8;
                (bits, unit_bytes, Placement::Bits { start: 0, width, unit_bytes, signed })
            }
        };
        self.used_bits = self.used_bits.max(bits);
        self.align = self.align.max(self.capped(align));
        Ok(placement)
    }
}

/// What placement needs to know about a member's type.
enum Member {
    Bytes { size: usize, align: usize },
    Bits { width: u32, unit_bytes: usize, signed: bool },
}

impl Member {
    fn from_decl(index: usize, decl: &MemberDecl) -> Result<Member, LayoutError> {
        if matches!(decl.ty, Type::Void) {
            return Err(LayoutError::VoidMember { index });
        }
        let Some(width) = decl.bits else {
            return Ok(Member::Bytes { size: decl.ty.size(), align: decl.ty.align() });
        };
        let (max, signed) = match decl.ty {
            // ctypes accepts up to 8 bits on c_bool (C accepts 1); a wider `bool`
            // bit-field is laid out as an `unsigned char` one, which is what a 1-bit one is.
            Type::Bool => (8, false),
            Type::I8 => (8, true),
            Type::U8 => (8, false),
            Type::I16 => (16, true),
            Type::U16 => (16, false),
            Type::I32 => (32, true),
            Type::U32 => (32, false),
            Type::I64 => (64, true),
            Type::U64 => (64, false),
            _ => return Err(LayoutError::BitFieldOnNonInteger { index }),
        };
        if width == 0 || width > max {
            return Err(LayoutError::BitFieldWidth { index, width, max });
        }
        Ok(Member::Bits { width, unit_bytes: decl.ty.size(), signed })
    }
}

impl Layout {
    /// Lays the members out as gcc does (see the module comment), with their windows.
    pub fn compute(request: &LayoutRequest) -> Result<Layout, LayoutError> {
        if let Some(pack) = request.pack {
            if !pack.is_power_of_two() || pack > MAX_PACK {
                return Err(LayoutError::BadPack { pack });
            }
        }
        let (base_size, base_align) = request.base.unwrap_or((0, 1));
        if !base_align.is_power_of_two() || base_align > jit::signature::MAX_ALIGN {
            return Err(LayoutError::BadBase { size: base_size, align: base_align });
        }
        if base_size % base_align != 0 {
            return Err(LayoutError::BadBase { size: base_size, align: base_align });
        }
        let min_align = request.min_align;
        if !min_align.is_power_of_two() || min_align > jit::signature::MAX_ALIGN {
            return Err(LayoutError::BadAlign { align: min_align });
        }
        let mut placer = Placer {
            pack: request.pack,
            used_bits: base_size.checked_mul(8).ok_or(LayoutError::Overflow)?,
            align: base_align,
        };
        let mut placements = Vec::with_capacity(request.members.len());
        for (index, decl) in request.members.iter().enumerate() {
            let member = Member::from_decl(index, decl)?;
            let placement = match request.kind {
                LayoutKind::Struct => placer.place_struct_member(&member)?,
                LayoutKind::Union => placer.place_union_member(&member)?,
            };
            placements.push((placement, decl.ty.size()));
        }
        let align = placer.align.max(min_align);
        let size = align_up(placer.used_bits.div_ceil(8), align)?;
        let fields = placements
            .into_iter()
            .enumerate()
            .map(|(index, (placement, type_size))| match placement {
                Placement::Bytes { offset } => {
                    Ok(FieldLayout { offset, size: type_size, bitfield: None })
                }
                Placement::Bits { start, width, unit_bytes, signed } => {
                    let (offset, window) = bitfield_window(start, width, unit_bytes, size)
                        .ok_or(LayoutError::BitFieldTooWide { index })?;
                    let window_bits = window * 8;
                    let native_shift = start - offset * 8;
                    let shift = if request.swapped {
                        window_bits - native_shift - width as usize
                    } else {
                        native_shift
                    };
                    let bitfield = BitField { shift: shift as u32, width, signed };
                    Ok(FieldLayout { offset, size: window, bitfield: Some(bitfield) })
                }
            })
            .collect::<Result<Vec<_>, LayoutError>>()?;
        Ok(Layout { size, align, fields })
    }

    /// The `jit` type that passes this aggregate by value. Bit-field storage is described as
    /// one `u8` per byte the bits touch, so the System V classifier sees INTEGER there, as
    /// gcc classifies bit-fields; ordinary members are themselves.
    ///
    /// Two exceptions, because gcc's classifier sees an integer there, and an integer that
    /// ends up misaligned (the aggregate nested at an unsuitable offset in a packed one) sends
    /// the whole argument to memory:
    /// - in a struct, a bit-field of 8, 16, 32 or 64 bits starting at a multiple of its width
    ///   (gcc's `layout_decl` makes it an ordinary member) is that unsigned integer;
    /// - in a union, a bit-field is the smallest unsigned integer holding its width, as gcc
    ///   classifies union members by type. Known gap: in a `pack(1)`/`pack(2)` union smaller
    ///   than that integer (`union { long long x:33; }` packed is 5 bytes) it stays `u8`s, so
    ///   such a union nested at an offset unsuitable for the integer goes in registers where
    ///   gcc uses memory.
    ///
    /// A request with a base needs [`Layout::by_value_type_with_base`]: the classes of the
    /// base's bytes depend on its members, which the request does not carry.
    pub fn by_value_type(&self, request: &LayoutRequest) -> Result<Type, LayoutError> {
        if request.base.is_some() {
            return Err(LayoutError::BaseTypeMissing);
        }
        self.aggregate_type(request, None)
    }

    /// [`Layout::by_value_type`] for a layout continuing a base, whose own type (from its
    /// `member_type`) is placed at offset 0.
    pub fn by_value_type_with_base(
        &self,
        request: &LayoutRequest,
        base_type: &Type,
    ) -> Result<Type, LayoutError> {
        self.aggregate_type(request, Some(base_type))
    }

    /// This layout as a member of an enclosing layout. An empty layout, which `jit` has no
    /// aggregate for, is a zero-length array of a scalar with the layout's alignment (the
    /// 16-byte one is `long double`): it takes no space and keeps the alignment. gcc's
    /// classifier ignores an empty member, and `jit`'s ignores zero-length arrays, so the
    /// two agree (gcc, unlike `jit`, does classify a real zero-length array that does not
    /// start an eightbyte).
    pub fn member_type(&self, request: &LayoutRequest) -> Result<Type, LayoutError> {
        if request.base.is_some() {
            return Err(LayoutError::BaseTypeMissing);
        }
        self.member_type_inner(request, None)
    }

    /// [`Layout::member_type`] for a layout continuing a base (see
    /// [`Layout::by_value_type_with_base`]).
    pub fn member_type_with_base(
        &self,
        request: &LayoutRequest,
        base_type: &Type,
    ) -> Result<Type, LayoutError> {
        self.member_type_inner(request, Some(base_type))
    }

    fn member_type_inner(
        &self,
        request: &LayoutRequest,
        base_type: Option<&Type>,
    ) -> Result<Type, LayoutError> {
        if self.size > 0 {
            return self.aggregate_type(request, base_type);
        }
        let element = match self.align {
            1 => Type::U8,
            2 => Type::U16,
            4 => Type::U32,
            8 => Type::U64,
            16 => Type::LongDouble,
            align => {
                return Err(LayoutError::Aggregate(SignatureError::BadAlignment { align }));
            }
        };
        Ok(Type::array(element, 0)?)
    }

    fn aggregate_type(
        &self,
        request: &LayoutRequest,
        base_type: Option<&Type>,
    ) -> Result<Type, LayoutError> {
        if request.members.len() != self.fields.len() {
            return Err(LayoutError::RequestMismatch {
                members: request.members.len(),
                fields: self.fields.len(),
            });
        }
        if self.size == 0 {
            return Err(LayoutError::EmptyByValue);
        }
        let mut fields = Vec::with_capacity(self.fields.len() + 1);
        if let Some(base_type) = base_type {
            let base = request.base.unwrap_or((0, 1));
            let found = (base_type.size(), base_type.align());
            if found != base {
                return Err(LayoutError::BaseTypeMismatch { base, base_type: found });
            }
            fields.push(Field { offset: 0, ty: base_type.clone() });
        }
        let mut bitfield_bytes = BTreeSet::new();
        for (member, field) in request.members.iter().zip(&self.fields) {
            if field.bitfield.is_some() {
                let bits = field.bit_range(request.swapped);
                match bitfield_as_integer(request.kind, &bits, self.size) {
                    Some(integer) => fields.push(integer),
                    None => bitfield_bytes.extend(bits.start / 8..bits.end.div_ceil(8)),
                }
            } else {
                fields.push(Field { offset: field.offset, ty: member.ty.clone() });
            }
        }
        fields.extend(bitfield_bytes.into_iter().map(|offset| Field { offset, ty: Type::U8 }));
        fields.sort_by_key(|field| field.offset);
        let kind = match request.kind {
            LayoutKind::Struct => AggregateKind::Struct,
            LayoutKind::Union => AggregateKind::Union,
        };
        Ok(Type::aggregate(Aggregate::with_layout(kind, self.size, self.align, fields)?))
    }
}

/// `(offset, size)` of the window of the bits `start..start + width` (see [`FieldLayout`]);
/// `None` when they touch more than [`MAX_WINDOW`] bytes.
fn bitfield_window(
    start: usize,
    width: u32,
    unit_bytes: usize,
    layout_size: usize,
) -> Option<(usize, usize)> {
    let end = start + width as usize;
    let unit_start = start / (unit_bytes * 8) * unit_bytes;
    if end <= (unit_start + unit_bytes) * 8 && unit_start + unit_bytes <= layout_size {
        return Some((unit_start, unit_bytes));
    }
    let first_byte = start / 8;
    let touched = end.div_ceil(8) - first_byte;
    if touched > MAX_WINDOW {
        return None;
    }
    let window = touched.next_power_of_two();
    if first_byte + window <= layout_size {
        Some((first_byte, window))
    } else if window <= layout_size {
        Some((layout_size - window, window))
    } else {
        Some((first_byte, touched))
    }
}

/// The integer member gcc's System V classifier sees in place of a bit-field, if any;
/// `None` when it sees the bits as bits (INTEGER wherever they are, never misaligned).
fn bitfield_as_integer(kind: LayoutKind, bits: &Range<usize>, layout_size: usize) -> Option<Field> {
    let width = bits.len();
    match kind {
        // `layout_decl` turns a bit-field of a whole integer mode, at a position aligned for
        // that mode, into an ordinary member.
        LayoutKind::Struct => {
            let whole_mode = width.is_power_of_two() && (8..=64).contains(&width);
            (whole_mode && bits.start % width == 0)
                .then(|| Field { offset: bits.start / 8, ty: unsigned_integer(width / 8) })
        }
        // A union member is classified by its type, which the C front end makes, for a
        // bit-field, the smallest integer mode holding the width. Under `pack(1)` or
        // `pack(2)` that mode can be larger than the union: no `jit` field can say so.
        LayoutKind::Union => {
            let bytes = width.div_ceil(8).next_power_of_two();
            (bytes <= layout_size).then(|| Field { offset: 0, ty: unsigned_integer(bytes) })
        }
    }
}

fn unsigned_integer(bytes: usize) -> Type {
    match bytes {
        1 => Type::U8,
        2 => Type::U16,
        4 => Type::U32,
        _ => Type::U64,
    }
}

fn align_up(value: usize, align: usize) -> Result<usize, LayoutError> {
    let bumped = value.checked_add(align - 1).ok_or(LayoutError::Overflow)?;
    Ok(bumped & !(align - 1))
}

fn low_bits(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// The value of a bit-field, from its window value: sign-extended when signed. `i128`
/// holds every signed and unsigned value of up to 64 bits exactly. Total: an out-of-range
/// shift or width reads the bits that exist (zero beyond bit 63).
pub fn read_bitfield(window: u64, bitfield: &BitField) -> i128 {
    let raw = window.checked_shr(bitfield.shift).unwrap_or(0) & low_bits(bitfield.width);
    if bitfield.signed && bitfield.width > 0 {
        let unused = 64 - bitfield.width.min(64);
        i128::from(((raw << unused) as i64) >> unused)
    } else {
        i128::from(raw)
    }
}

/// The window value with the bit-field replaced by the low `width` bits of `value` (wider
/// values are truncated, as C truncates on assignment); the other bits are kept. Total: a
/// shift past bit 63 changes nothing.
pub fn write_bitfield(window: u64, bitfield: &BitField, value: u64) -> u64 {
    if bitfield.shift >= 64 {
        return window;
    }
    let mask = low_bits(bitfield.width) << bitfield.shift;
    (window & !mask) | ((value << bitfield.shift) & mask)
}

/// The window value of `bytes` (the `size` bytes at a field's `offset`; at most 8 are used),
/// read in the struct's byte order.
pub fn window_from_bytes(bytes: &[u8], swapped: bool) -> u64 {
    let bytes = &bytes[..bytes.len().min(MAX_WINDOW)];
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate() {
        let significance = if swapped { bytes.len() - 1 - index } else { index };
        value |= u64::from(byte) << (8 * significance);
    }
    value
}

/// Stores a window value into `bytes` (at most 8) in the struct's byte order; the inverse
/// of [`window_from_bytes`].
pub fn window_to_bytes(value: u64, bytes: &mut [u8], swapped: bool) {
    let len = bytes.len().min(MAX_WINDOW);
    for (index, byte) in bytes[..len].iter_mut().enumerate() {
        let significance = if swapped { len - 1 - index } else { index };
        *byte = (value >> (8 * significance)) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(ty: Type) -> MemberDecl {
        MemberDecl::field(ty)
    }

    fn bits(ty: Type, width: u32) -> MemberDecl {
        MemberDecl::bitfield(ty, width)
    }

    fn layout(kind: LayoutKind, members: &[MemberDecl], pack: Option<usize>) -> Layout {
        let request = LayoutRequest { pack, ..LayoutRequest::new(kind, members) };
        Layout::compute(&request).unwrap()
    }

    fn struct_layout(members: &[MemberDecl]) -> Layout {
        layout(LayoutKind::Struct, members, None)
    }

    fn offsets(layout: &Layout) -> Vec<usize> {
        layout.fields.iter().map(|field| field.offset).collect()
    }

    /// (offset, size, shift) of every field.
    fn windows(layout: &Layout) -> Vec<(usize, usize, u32)> {
        let shift = |field: &FieldLayout| field.bitfield.map_or(0, |bitfield| bitfield.shift);
        layout.fields.iter().map(|field| (field.offset, field.size, shift(field))).collect()
    }

    #[test]
    fn natural_struct_aligns_each_member() {
        let s = struct_layout(&[field(Type::I8), field(Type::F64), field(Type::I16)]);
        assert_eq!(offsets(&s), [0, 8, 16]);
        assert_eq!((s.size, s.align), (24, 8));
        let ld = struct_layout(&[field(Type::I8), field(Type::LongDouble)]);
        assert_eq!((offsets(&ld), ld.size, ld.align), (vec![0, 16], 32, 16));
    }

    #[test]
    fn pack_caps_member_alignment() {
        let members = [field(Type::I8), field(Type::F64), field(Type::I16)];
        let packed = layout(LayoutKind::Struct, &members, Some(1));
        assert_eq!((offsets(&packed), packed.size, packed.align), (vec![0, 1, 9], 11, 1));
        let packed = layout(LayoutKind::Struct, &members, Some(4));
        assert_eq!((offsets(&packed), packed.size, packed.align), (vec![0, 4, 12], 16, 4));
        let loose = layout(LayoutKind::Struct, &members, Some(16));
        assert_eq!(loose, struct_layout(&members));
    }

    #[test]
    fn union_members_share_offset_zero() {
        let u = layout(
            LayoutKind::Union,
            &[field(Type::array(Type::I8, 5).unwrap()), field(Type::F32)],
            None,
        );
        assert_eq!((offsets(&u), u.size, u.align), (vec![0, 0], 8, 4));
    }

    #[test]
    fn empty_layouts_have_size_zero_and_alignment_one() {
        for kind in [LayoutKind::Struct, LayoutKind::Union] {
            let empty = layout(kind, &[], None);
            assert_eq!((empty.size, empty.align, empty.fields.len()), (0, 1, 0));
        }
    }

    #[test]
    fn a_minimum_alignment_raises_alignment_and_size_even_under_a_pack() {
        let members = [field(Type::U8), field(Type::U8)];
        let request =
            LayoutRequest { min_align: 4, ..LayoutRequest::new(LayoutKind::Struct, &members) };
        let layout = Layout::compute(&request).unwrap();
        assert_eq!((layout.size, layout.align), (4, 4));
        let by_value = layout.by_value_type(&request).unwrap();
        assert_eq!((by_value.size(), by_value.align()), (4, 4));
        let packed = LayoutRequest { pack: Some(1), min_align: 8, ..request };
        let layout = Layout::compute(&packed).unwrap();
        assert_eq!((layout.size, layout.align), (8, 8));
        let odd = LayoutRequest { min_align: 3, ..request };
        assert_eq!(Layout::compute(&odd), Err(LayoutError::BadAlign { align: 3 }));
    }

    #[test]
    fn base_sets_start_offset_and_alignment() {
        let members = [field(Type::I8), bits(Type::U32, 4)];
        let request = LayoutRequest {
            base: Some((12, 4)),
            ..LayoutRequest::new(LayoutKind::Struct, &members)
        };
        let derived = Layout::compute(&request).unwrap();
        assert_eq!(windows(&derived), [(12, 1, 0), (12, 4, 8)]);
        assert_eq!((derived.size, derived.align), (16, 4));
        let no_members: [MemberDecl; 0] = [];
        let request = LayoutRequest {
            base: Some((16, 8)),
            pack: Some(1),
            ..LayoutRequest::new(LayoutKind::Struct, &no_members)
        };
        let only_base = Layout::compute(&request).unwrap();
        assert_eq!((only_base.size, only_base.align), (16, 8));
    }

    #[test]
    fn bitfields_share_units_as_gcc_does() {
        // char a:4; int b:4;  → both in the first int unit
        let s = struct_layout(&[bits(Type::I8, 4), bits(Type::I32, 4)]);
        assert_eq!((windows(&s), s.size, s.align), (vec![(0, 1, 0), (0, 4, 4)], 4, 4));
        // short a:4, b:4; int c:24; short d:4, e:4; int f:24;
        let s = struct_layout(&[
            bits(Type::I16, 4),
            bits(Type::I16, 4),
            bits(Type::I32, 24),
            bits(Type::I16, 4),
            bits(Type::I16, 4),
            bits(Type::I32, 24),
        ]);
        assert_eq!(windows(&s), [(0, 2, 0), (0, 2, 4), (0, 4, 8), (4, 2, 0), (4, 2, 4), (4, 4, 8)]);
        assert_eq!((s.size, s.align), (8, 4));
        // char a:4; int b:32;  → b cannot straddle, goes to the next int
        let s = struct_layout(&[bits(Type::I8, 4), bits(Type::I32, 32)]);
        assert_eq!((windows(&s), s.size), (vec![(0, 1, 0), (4, 4, 0)], 8));
        // an ordinary member after bits starts at the next byte, then aligns
        let s = struct_layout(&[bits(Type::U64, 3), field(Type::I8), field(Type::I16)]);
        assert_eq!((offsets(&s), s.size, s.align), (vec![0, 1, 2], 8, 8));
    }

    #[test]
    fn packed_bitfields_straddle_units() {
        // #pragma pack(8): char a:4; int b:30;  → b at bits 4..34
        let s = layout(LayoutKind::Struct, &[bits(Type::I8, 4), bits(Type::I32, 30)], Some(8));
        assert_eq!((windows(&s), s.size, s.align), (vec![(0, 1, 0), (0, 8, 4)], 8, 4));
        // #pragma pack(1): char a; int b:8;  → the int unit would leave the 2-byte struct
        let s = layout(LayoutKind::Struct, &[field(Type::I8), bits(Type::I32, 8)], Some(1));
        assert_eq!((windows(&s), s.size), (vec![(0, 1, 0), (1, 1, 0)], 2));
        // #pragma pack(1): int a:20;  → a 3-byte struct, read through a 3-byte window
        let s = layout(LayoutKind::Struct, &[bits(Type::I32, 20)], Some(1));
        assert_eq!((windows(&s), s.size), (vec![(0, 3, 0)], 3));
        // #pragma pack(4): long long a:40, b:40;  → b's window slides back to end at 12
        let s = layout(LayoutKind::Struct, &[bits(Type::I64, 40), bits(Type::I64, 40)], Some(4));
        assert_eq!((windows(&s), s.size, s.align), (vec![(0, 8, 0), (4, 8, 8)], 12, 4));
    }

    #[test]
    fn union_bitfields_start_at_bit_zero() {
        let members = [bits(Type::I64, 33), field(Type::I8), bits(Type::U16, 3)];
        let u = layout(LayoutKind::Union, &members, None);
        assert_eq!((windows(&u), u.size, u.align), (vec![(0, 8, 0), (0, 1, 0), (0, 2, 0)], 8, 8));
        // pack(2): 6 bytes, too small for an 8-byte window: the 5 bytes the bits touch
        let u = layout(LayoutKind::Union, &members, Some(2));
        assert_eq!((windows(&u), u.size, u.align), (vec![(0, 5, 0), (0, 1, 0), (0, 2, 0)], 6, 2));
        let u = layout(LayoutKind::Union, &[bits(Type::I32, 4), field(Type::I8)], Some(1));
        assert_eq!((windows(&u), u.size, u.align), (vec![(0, 1, 0), (0, 1, 0)], 1, 1));
    }

    #[test]
    fn swapped_bitfields_count_from_the_top() {
        // unsigned a:4, b:4; unsigned short c:8;  read big-endian
        let members = [bits(Type::U32, 4), bits(Type::U32, 4), bits(Type::U16, 8)];
        let request =
            LayoutRequest { swapped: true, ..LayoutRequest::new(LayoutKind::Struct, &members) };
        let s = Layout::compute(&request).unwrap();
        assert_eq!(windows(&s), [(0, 4, 28), (0, 4, 24), (0, 2, 0)]);
        let mut bytes = [0u8; 4];
        let a = s.fields[0].bitfield.unwrap();
        let window = write_bitfield(window_from_bytes(&bytes, true), &a, 0xf);
        window_to_bytes(window, &mut bytes, true);
        assert_eq!(bytes, [0xf0, 0, 0, 0]);
        assert_eq!(s.fields[0].bit_range(true), 0..4);
        assert_eq!(s.fields[2].bit_range(true), 8..16);
    }

    #[test]
    fn invalid_requests_are_errors() {
        let one = [field(Type::I32)];
        for pack in [0, 3, 32] {
            let request =
                LayoutRequest { pack: Some(pack), ..LayoutRequest::new(LayoutKind::Struct, &one) };
            assert_eq!(Layout::compute(&request), Err(LayoutError::BadPack { pack }));
        }
        let compute = |members: &[MemberDecl]| {
            Layout::compute(&LayoutRequest::new(LayoutKind::Struct, members))
        };
        let array = Type::array(Type::I32, 2).unwrap();
        for ty in [Type::F32, Type::F64, Type::Pointer, Type::LongDouble, array] {
            assert_eq!(
                compute(&[field(Type::I8), bits(ty, 1)]),
                Err(LayoutError::BitFieldOnNonInteger { index: 1 })
            );
        }
        assert_eq!(
            compute(&[bits(Type::U16, 0)]),
            Err(LayoutError::BitFieldWidth { index: 0, width: 0, max: 16 })
        );
        assert_eq!(
            compute(&[bits(Type::I32, 33)]),
            Err(LayoutError::BitFieldWidth { index: 0, width: 33, max: 32 })
        );
        assert_eq!(
            compute(&[bits(Type::Bool, 9)]),
            Err(LayoutError::BitFieldWidth { index: 0, width: 9, max: 8 })
        );
        assert_eq!(compute(&[field(Type::Void)]), Err(LayoutError::VoidMember { index: 0 }));
        let huge = Type::array(Type::U8, usize::MAX).unwrap();
        assert_eq!(compute(&[field(Type::I8), field(huge)]), Err(LayoutError::Overflow));
        // pack(1): char a:1; long long b:64;  → b touches 9 bytes
        let straddling = [bits(Type::I8, 1), bits(Type::U64, 64)];
        let request =
            LayoutRequest { pack: Some(1), ..LayoutRequest::new(LayoutKind::Struct, &straddling) };
        assert_eq!(Layout::compute(&request), Err(LayoutError::BitFieldTooWide { index: 1 }));
        let request =
            LayoutRequest { base: Some((6, 4)), ..LayoutRequest::new(LayoutKind::Struct, &one) };
        assert_eq!(Layout::compute(&request), Err(LayoutError::BadBase { size: 6, align: 4 }));
    }

    #[test]
    fn read_sign_extends_and_write_truncates() {
        let signed = BitField { shift: 4, width: 3, signed: true };
        let unsigned = BitField { signed: false, ..signed };
        let window = write_bitfield(0xffff_0000, &signed, 0b110);
        assert_eq!(window, 0xffff_0060);
        assert_eq!(read_bitfield(window, &signed), -2);
        assert_eq!(read_bitfield(window, &unsigned), 6);
        // 0x1f has bits above the width: they are dropped, the neighbours kept
        assert_eq!(write_bitfield(0xffff_ff0f, &unsigned, 0x1f), 0xffff_ff7f);
        let full = BitField { shift: 0, width: 64, signed: false };
        assert_eq!(read_bitfield(u64::MAX, &full), i128::from(u64::MAX));
        assert_eq!(read_bitfield(u64::MAX, &BitField { signed: true, ..full }), -1);
        assert_eq!(write_bitfield(7, &full, 9), 9);
        let top = BitField { shift: 63, width: 1, signed: true };
        assert_eq!(read_bitfield(1 << 63, &top), -1);
        let nonsense = BitField { shift: 70, width: 90, signed: true };
        assert_eq!(read_bitfield(u64::MAX, &nonsense), 0);
        assert_eq!(write_bitfield(5, &nonsense, u64::MAX), 5);
        assert_eq!(read_bitfield(u64::MAX, &BitField { shift: 0, width: 0, signed: true }), 0);
    }

    #[test]
    fn windows_convert_in_both_byte_orders() {
        let bytes = [0x01, 0x02, 0x03];
        assert_eq!(window_from_bytes(&bytes, false), 0x030201);
        assert_eq!(window_from_bytes(&bytes, true), 0x010203);
        let mut out = [0u8; 3];
        window_to_bytes(0x0a0b0c, &mut out, true);
        assert_eq!(out, [0x0a, 0x0b, 0x0c]);
        window_to_bytes(0x0a0b0c, &mut out, false);
        assert_eq!(out, [0x0c, 0x0b, 0x0a]);
    }

    #[test]
    fn by_value_type_marks_bitfield_bytes_as_u8() {
        let members = [bits(Type::I8, 4), bits(Type::I32, 10), field(Type::F32)];
        let request = LayoutRequest::new(LayoutKind::Struct, &members);
        let s = Layout::compute(&request).unwrap();
        let Type::Aggregate(aggregate) = s.by_value_type(&request).unwrap() else {
            panic!("not an aggregate");
        };
        let described: Vec<(usize, Type)> =
            aggregate.fields().iter().map(|field| (field.offset, field.ty.clone())).collect();
        assert_eq!(described, [(0, Type::U8), (1, Type::U8), (4, Type::F32)]);
        assert_eq!((aggregate.size(), aggregate.align()), (8, 4));
    }

    #[test]
    fn empty_layout_is_a_member_but_not_a_value() {
        let request = LayoutRequest::new(LayoutKind::Struct, &[]);
        let empty = Layout::compute(&request).unwrap();
        assert_eq!(empty.by_value_type(&request), Err(LayoutError::EmptyByValue));
        let member = empty.member_type(&request).unwrap();
        assert_eq!((member.size(), member.align()), (0, 1));
        let ld = [field(Type::array(Type::LongDouble, 0).unwrap())];
        let request = LayoutRequest::new(LayoutKind::Struct, &ld);
        let aligned_empty = Layout::compute(&request).unwrap();
        let member = aligned_empty.member_type(&request).unwrap();
        assert_eq!((member.size(), member.align()), (0, 16));
    }

    #[test]
    fn base_needs_its_type_by_value() {
        let base_members = [field(Type::F64)];
        let base_request = LayoutRequest::new(LayoutKind::Struct, &base_members);
        let base = Layout::compute(&base_request).unwrap();
        let base_type = base.member_type(&base_request).unwrap();
        let members = [field(Type::I32)];
        let request = LayoutRequest {
            base: Some((base.size, base.align)),
            ..LayoutRequest::new(LayoutKind::Struct, &members)
        };
        let derived = Layout::compute(&request).unwrap();
        assert_eq!(derived.by_value_type(&request), Err(LayoutError::BaseTypeMissing));
        let by_value = derived.by_value_type_with_base(&request, &base_type).unwrap();
        assert_eq!((by_value.size(), by_value.align()), (16, 8));
        assert!(matches!(
            derived.by_value_type_with_base(&request, &Type::I32),
            Err(LayoutError::BaseTypeMismatch { .. })
        ));
    }
}
