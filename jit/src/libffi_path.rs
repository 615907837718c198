//! The slow path: a prepared libffi call description (`ffi_cif`) per signature, called with
//! `ffi_call` behind the same entry contract as a stub.
//!
//! libffi describes a struct only as a list of member types and lays it out itself. A struct
//! whose layout is the natural one is described member by member (arrays as repeated
//! elements, as CPython's ctypes does). Unions and explicit layouts are described by their
//! System V classification instead: per eightbyte, integers for an INTEGER eightbyte and
//! floats for an SSE one, sized so that libffi computes the same size and alignment. What
//! libffi cannot be told (a small struct with unaligned fields, which gcc passes in memory,
//! or an over-aligned union) is refused with a reason.

use std::ffi::c_void;

use libffi::middle::{Cif, Type as FfiType};
use libffi::raw;

use crate::signature::{Aggregate, Signature, Type};
use crate::sysv::{classify_aggregate, AggregateClass, RegClass};

/// A signature prepared for `ffi_call`, reused for every call.
pub struct LibffiCall {
    cif: Cif,
}

// SAFETY: a prepared `ffi_cif` and the type descriptions it owns are never written after
// `ffi_prep_cif`; `ffi_call` only reads them, so sharing between threads is sound.
unsafe impl Send for LibffiCall {}
// SAFETY: see `Send`: all access after construction is read-only.
unsafe impl Sync for LibffiCall {}

impl LibffiCall {
    /// Prepares the call description, or says why libffi cannot express the signature.
    pub fn prepare(signature: &Signature) -> Result<LibffiCall, String> {
        if returns_x87_aggregate(signature.ret()) {
            return Err("libffi returns a struct of one long double in memory; \
                        gcc returns it in st(0)"
                .into());
        }
        let ret = ffi_type(signature.ret())?;
        let args = signature.args().iter().map(ffi_type).collect::<Result<Vec<_>, _>>()?;
        let cif = match signature.fixed_args() {
            Some(fixed) => Cif::try_new_variadic(args, fixed, ret),
            None => Cif::try_new(args, ret),
        };
        let cif = cif.map_err(|e| format!("ffi_prep_cif failed: {e:?}"))?;
        Ok(LibffiCall { cif })
    }

    /// The prepared `ffi_cif`, for building libffi closures (callbacks) of this signature.
    /// It lives as long as this `LibffiCall`.
    pub fn raw_cif(&self) -> *mut raw::ffi_cif {
        self.cif.as_raw_ptr()
    }

    /// Calls `target` with the stub entry contract.
    ///
    /// # Safety
    /// `target` must be a function of the prepared signature; `args` must hold one pointer
    /// per argument, each to storage of that argument's type; `ret` must be writable for
    /// max(8, size of the return type) bytes.
    pub unsafe fn call(&self, target: *const c_void, args: *const *mut c_void, ret: *mut c_void) {
        // SAFETY: `target` is a non-null code address of the prepared type (caller's
        // contract); a data-to-function pointer transmute is how libffi is always called.
        let function =
            unsafe { std::mem::transmute::<*const c_void, unsafe extern "C" fn()>(target) };
        // SAFETY: the cif is prepared and matches `args`/`ret` by the caller's contract.
        unsafe {
            raw::ffi_call(self.cif.as_raw_ptr(), Some(function), ret, args as *mut *mut c_void)
        }
    }
}

/// True for a struct or union whose only content is one `long double` at offset 0: System V
/// returns it in x87 `st(0)` like a plain `long double`, but libffi's classifier sends every
/// aggregate with an X87 eightbyte to memory (found by the differential test).
fn returns_x87_aggregate(ret: &Type) -> bool {
    matches!(ret, Type::Aggregate(aggregate) if classify_aggregate(aggregate) == AggregateClass::X87)
}

fn ffi_type(ty: &Type) -> Result<FfiType, String> {
    Ok(match ty {
        Type::Void => FfiType::void(),
        Type::Bool | Type::U8 => FfiType::u8(),
        Type::I8 => FfiType::i8(),
        Type::I16 => FfiType::i16(),
        Type::U16 => FfiType::u16(),
        Type::I32 => FfiType::i32(),
        Type::U32 => FfiType::u32(),
        Type::I64 => FfiType::i64(),
        Type::U64 => FfiType::u64(),
        Type::F32 => FfiType::f32(),
        Type::F64 => FfiType::f64(),
        Type::LongDouble => FfiType::longdouble(),
        Type::Pointer => FfiType::pointer(),
        Type::Aggregate(aggregate) if aggregate.has_natural_layout() => {
            FfiType::structure(natural_members(aggregate)?)
        }
        Type::Aggregate(aggregate) => described_by_class(aggregate)?,
        Type::Array { .. } => unreachable!("arrays are expanded by their aggregate"),
    })
}

/// The members of a natural-layout struct, arrays expanded element by element.
fn natural_members(aggregate: &Aggregate) -> Result<Vec<FfiType>, String> {
    let mut members = Vec::new();
    for field in aggregate.fields() {
        push_member(&field.ty, &mut members)?;
    }
    Ok(members)
}

fn push_member(ty: &Type, members: &mut Vec<FfiType>) -> Result<(), String> {
    match ty {
        Type::Array { element, len } => {
            for _ in 0..*len {
                push_member(element, members)?;
            }
        }
        other => members.push(ffi_type(other)?),
    }
    Ok(())
}

/// A struct type that makes libffi classify, size and align the aggregate as System V
/// does, for layouts libffi cannot compute itself.
fn described_by_class(aggregate: &Aggregate) -> Result<FfiType, String> {
    let align = aggregate.align();
    let integer = |bytes: usize| match bytes {
        1 => FfiType::u8(),
        2 => FfiType::u16(),
        4 => FfiType::u32(),
        _ => FfiType::u64(),
    };
    let eightbytes = match classify_aggregate(aggregate) {
        // Above 16 bytes libffi passes in memory whatever the members: only size and
        // alignment must agree. `long double` members would give alignment 16, but with
        // them libffi 3.5.2 passed a 112-byte struct wrongly (found by the differential
        // test), so the members are integers and the alignment is set on the type itself.
        AggregateClass::Memory if aggregate.size() > 16 => {
            let unit = align.min(8);
            let ty = FfiType::structure((0..aggregate.size() / unit).map(|_| integer(unit)));
            // SAFETY: the type was just created and is not yet shared; libffi computes a
            // struct's size and alignment only while `size` is 0, so setting both here
            // (consistently with the members) makes it keep them.
            unsafe {
                let raw = ty.as_raw_ptr();
                (*raw).size = aggregate.size();
                (*raw).alignment = align as u16;
            }
            return Ok(ty);
        }
        AggregateClass::Memory => {
            return Err("small struct with unaligned fields (gcc passes it in memory)".into())
        }
        // In registers the alignment does not matter, but on the stack (when the registers
        // run out) libffi would place it 8-aligned.
        _ if align > 8 => return Err(format!("over-aligned ({align}) small union or layout")),
        // A lone `long double` under `#pragma pack`, or a union of them: libffi's own
        // layout would differ.
        AggregateClass::X87 => return Err("long double in a packed struct or union".into()),
        AggregateClass::Registers(eightbytes) => eightbytes,
    };
    let mut members = Vec::new();
    for eightbyte in eightbytes {
        match eightbyte.class {
            None => return Err("an eightbyte holds only padding".into()),
            Some(RegClass::Integer) => {
                members.extend((0..eightbyte.size / align).map(|_| integer(align)));
            }
            // SSE eightbytes hold only aligned floats, so the alignment is at least 4.
            Some(RegClass::Sse) if eightbyte.size == 8 && align == 8 => {
                members.push(FfiType::f64())
            }
            Some(RegClass::Sse) => members.extend((0..eightbyte.size / 4).map(|_| FfiType::f32())),
        }
    }
    Ok(FfiType::structure(members))
}
