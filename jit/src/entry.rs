//! Entry stubs: compiled functions that an interpreter calls *directly* with its own
//! calling convention (CPython's vectorcall), which check and convert the interpreter's
//! argument objects, call the C function as the direct stub does, and box its result.
//!
//! ```c
//! object *entry(object *callable, object *const *args, size_t nargsf, object *kwnames);
//! ```
//!
//! This crate still knows no Python: the host describes its object model in an
//! [`EntryRuntime`] (the addresses of its type objects and API functions, and offsets of
//! a few object fields) and decides per argument which [`ArgConversion`] reproduces its own
//! conversion exactly. Each conversion is guarded by an exact-type check; any argument the
//! guards do not recognise (and keywords, a wrong count, a NULL function, the host's
//! switch being off) makes the stub call the host's `fallback` with its four arguments
//! unchanged, so the host's general path decides every unusual case.
//!
//! The stub is shared by every callable of the same [`EntryShape`]: what differs per
//! callable (the C function's address, the host's per-callable data for `Helper`
//! conversions) is read from the callable object at offsets the runtime gives.
//!
//! Lowering the C call itself reuses the direct stub's builder (`stub.rs`): converted
//! arguments are stored in stack slots, which serve as the argument storage the direct
//! stub reads from `args[i]`.

use std::ffi::c_void;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    self, types, AbiParam, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::FunctionBuilder;

use crate::error::CallError;
use crate::signature::{Signature, Type};
use crate::stub::{integer_type, StubBuilder, StubCompiler};
use crate::sysv::{plan_call, RetPlan};

/// The entry of every compiled entry stub (see the module documentation).
pub type EntryFn = unsafe extern "C" fn(
    callable: *mut c_void,
    args: *const *mut c_void,
    nargsf: usize,
    kwnames: *mut c_void,
) -> *mut c_void;

/// The high bit of `nargsf`: set by callers that allow `args[-1]` to be overwritten
/// (CPython's `PY_VECTORCALL_ARGUMENTS_OFFSET`); never part of the count.
const ARGUMENTS_OFFSET_FLAG: i64 = 1 << 63;

/// Every argument and the result get a stack slot of 16 bytes aligned to 16 (the host's
/// helper may treat it as a 16-byte-aligned value; a `long double` would fit).
const SLOT_BYTES: u32 = 16;
const SLOT_ALIGN_SHIFT: u8 = 4;

/// How one argument object becomes a C value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgConversion {
    /// An exact `int`: its value modulo 2**(8 bytes) (`long_as_u64_mask`).
    Int { bytes: u8 },
    /// An exact `bool` or `int`: its truth value as one byte (`is_true`).
    Bool,
    /// An exact `float` (its value read in place) or `int` (`long_as_f64`; an error there
    /// is cleared and the call falls back), stored as `bytes` (4 or 8) bytes.
    Float { bytes: u8 },
    /// `None` (a null pointer) or exact `bytes` (a pointer to its data).
    CharPointer,
    /// `None`, exact `int` (modulo 2**64) or exact `bytes` inline; anything else as
    /// `Helper`.
    VoidPointer,
    /// The host's `convert_helper(data, index, object, slot)` converts it: it returns where
    /// the C value is (in `slot`, or elsewhere, e.g. a struct's own memory), or null to
    /// fall back.
    Helper,
    /// A pointer argument: a by-reference object (ctypes' `byref(x)`, see
    /// [`ReferenceLayout`]) whose referenced object's class is exactly the one the
    /// callable's data names for this argument passes the address it holds, read inline;
    /// anything else as `Helper`.
    Reference,
}

impl ArgConversion {
    /// True if the conversion makes a C value of type `ty`.
    fn converts_to(self, ty: &Type) -> bool {
        match self {
            ArgConversion::Int { bytes } => {
                let integer = matches!(
                    ty,
                    Type::I8
                        | Type::U8
                        | Type::I16
                        | Type::U16
                        | Type::I32
                        | Type::U32
                        | Type::I64
                        | Type::U64
                );
                integer && ty.size() == usize::from(bytes)
            }
            ArgConversion::Bool => *ty == Type::Bool,
            ArgConversion::Float { bytes: 4 } => *ty == Type::F32,
            ArgConversion::Float { bytes: 8 } => *ty == Type::F64,
            ArgConversion::Float { .. } => false,
            ArgConversion::CharPointer | ArgConversion::VoidPointer | ArgConversion::Reference => {
                *ty == Type::Pointer
            }
            ArgConversion::Helper => true,
        }
    }
}

/// How the C result becomes an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultBoxing {
    /// `void`: a new reference to `None`.
    None,
    /// An integer result, sign-extended to 64 bits (`long_from_i64`).
    Signed,
    /// An integer result, zero-extended to 64 bits (`long_from_u64`).
    Unsigned,
    /// `float` or `double` (`float_from_f64`).
    Float,
    /// A `_Bool`: `bool_from_long` of its low byte.
    Bool,
    /// A `char *`: `None` if null, else `bytes_from_c_string`.
    CharPointer,
    /// A `void *`: `None` if null, else `long_from_u64`.
    VoidPointer,
}

/// What an entry stub is compiled for; equal shapes share one stub.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryShape {
    /// The C function's type; its argument count is the count the stub accepts.
    pub signature: Signature,
    /// One per argument of `signature`.
    pub args: Vec<ArgConversion>,
    pub result: ResultBoxing,
    /// Release the interpreter lock around the C call (`save_thread`/`restore_thread`).
    pub release_gil: bool,
    /// After the call, return null if the C function left an error set (`err_occurred`):
    /// for functions that are themselves interpreter API.
    pub check_error: bool,
    /// Swap the host's private errno in and out around the C call.
    pub use_errno: bool,
}

/// The host's object model, as entry stubs use it. Addresses are of objects and `extern
/// "C"` functions of the host that live as long as the process; offsets are in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryRuntime {
    /// Where every object keeps its type pointer.
    pub type_offset: i32,
    /// Where a float object keeps its `double`.
    pub float_value_offset: i32,
    /// Where a bytes object's data begins.
    pub bytes_data_offset: i32,
    pub int_type: usize,
    pub bool_type: usize,
    pub float_type: usize,
    pub bytes_type: usize,
    /// The `None` object.
    pub none: usize,
    /// Where a callable keeps a pointer to its memory, whose first word is the C function.
    pub callable_memory_offset: i32,
    /// Where a callable keeps the host's data for `Helper` conversions.
    pub callable_data_offset: i32,
    /// The address of a byte: entry stubs run only while it is 1 (else: fallback).
    pub enabled_flag: usize,
    /// Where an exact int of one digit keeps its value, read without a call.
    pub int_layout: IntLayout,
    /// `u64 (object *)`, never failing for an exact int.
    pub long_as_u64_mask: usize,
    /// `double (object *)`, -1.0 with an error set on failure.
    pub long_as_f64: usize,
    /// `object *(void)`: the pending error, or null.
    pub err_occurred: usize,
    /// `void (void)`.
    pub err_clear: usize,
    /// `int (object *)`.
    pub is_true: usize,
    /// `object *(i64)`, `object *(u64)`, `object *(double)`, `object *(long)`,
    /// `object *(const char *)`: new references, null with an error set on failure.
    pub long_from_i64: usize,
    pub long_from_u64: usize,
    pub float_from_f64: usize,
    pub bool_from_long: usize,
    pub bytes_from_c_string: usize,
    /// `void (object *)`.
    pub incref: usize,
    /// `void *(void)` and `void (void *)`: release and re-take the interpreter lock.
    pub save_thread: usize,
    pub restore_thread: usize,
    /// `int (void)` and `void (int)`: the private errno swapped in before the call (returns
    /// the C errno it replaced) and out after it.
    pub errno_swap_in: usize,
    pub errno_swap_out: usize,
    /// `void *(void *data, size_t index, object *arg, void *slot)` (`slot`: 16 bytes,
    /// aligned to 16); see
    /// [`ArgConversion::Helper`]. Must not run interpreter code or fail otherwise.
    pub convert_helper: usize,
    /// The host's by-reference objects, if [`ArgConversion::Reference`] may read them
    /// inline (else those arguments go to the helper).
    pub reference: Option<ReferenceLayout>,
    /// An [`EntryFn`]: the host's general entry, called with the stub's own four arguments.
    pub fallback: usize,
}

/// How the host's by-reference objects (ctypes' `byref(x)`: the object `x` and the
/// address they pass) are laid out, and where a callable's data names the class each
/// argument's referenced object must have, for [`ArgConversion::Reference`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReferenceLayout {
    /// The exact type of by-reference objects.
    pub ty: usize,
    /// Where one keeps its kind (a `u32`), and the kind of a plain reference.
    pub tag_offset: i32,
    pub tag: u32,
    /// Where one keeps the referenced object, and the address it passes (a word).
    pub object_offset: i32,
    pub address_offset: i32,
    /// Where the callable's data keeps a pointer to one word per argument: the class a
    /// `Reference` argument's referenced object must have exactly (0 for other arguments).
    pub data_targets_offset: i32,
}

/// Where CPython keeps the value of an `int` of one digit (every value below 2**30 in
/// magnitude), so that stubs read it inline instead of calling `long_as_u64_mask`, which
/// remains the way for other ints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntLayout {
    /// Nothing inline: every int goes through `long_as_u64_mask`.
    Opaque,
    /// CPython 3.11: `count` is a signed digit count (i64) carrying the value's sign, so
    /// -1, 0 or 1 for one digit; the digit (u32) is at `digit`.
    SignedCount { count: i32, digit: i32 },
    /// CPython 3.12 and later: `tag` (u64) is the digit count shifted left by 3 with the
    /// sign in its two low bits (0 positive, 1 zero, 2 negative), so below 16 for one
    /// digit; the digit (u32) is at `digit`.
    Tagged { tag: i32, digit: i32 },
}

/// A finished entry stub: its code, what it cost, and its call counter (calls that took
/// the compiled path to the end; fallbacks are the host's to count).
#[derive(Clone, Copy, Debug)]
pub struct CompiledEntry {
    pub entry: EntryFn,
    pub code_size: usize,
    pub compile_time: Duration,
    pub calls: &'static AtomicU64,
}

/// Why no entry stub is made for a shape (the host then keeps its own entry).
pub fn entry_unsupported(shape: &EntryShape) -> Option<String> {
    if shape.args.len() != shape.signature.args().len() {
        return Some("one conversion per argument is needed".into());
    }
    let mismatch = shape
        .args
        .iter()
        .zip(shape.signature.args())
        .position(|(conversion, ty)| !conversion.converts_to(ty));
    if let Some(index) = mismatch {
        return Some(format!("conversion {index} does not make its argument's type"));
    }
    match plan_call(&shape.signature) {
        Err(reason) => Some(reason.to_string()),
        Ok(plan) => match plan.ret {
            RetPlan::Void | RetPlan::Int { .. } | RetPlan::F32 | RetPlan::F64 => None,
            _ => Some("an aggregate or long double result".into()),
        },
    }
}

impl StubCompiler {
    /// Compiles the entry stub of `shape` for `runtime`.
    pub fn compile_entry(
        &mut self,
        shape: &EntryShape,
        runtime: &EntryRuntime,
    ) -> Result<CompiledEntry, CallError> {
        if let Some(reason) = entry_unsupported(shape) {
            return Err(CallError::Compile(reason));
        }
        let plan = plan_call(&shape.signature).map_err(|e| CallError::Compile(e.to_string()))?;
        let started = Instant::now();
        let calls: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        {
            let (func, builder_context, target) = self.function_parts();
            let pointer = target.pointer_type();
            func.signature.call_conv = target.default_call_conv;
            func.signature.params = vec![AbiParam::new(pointer); 4];
            func.signature.returns = vec![AbiParam::new(pointer)];
            let builder = FunctionBuilder::new(func, builder_context);
            let call_conv = target.default_call_conv;
            let lowering = StubBuilder { builder, plan: &plan, call_conv, x87_helper: None };
            EntryBuilder { lowering, shape, runtime, calls }.build(target);
        }
        let (code, code_size) = self.finish(&format!("entry {}", describe(shape)))?;
        // SAFETY: built with exactly the `EntryFn` signature (four pointer-sized parameters,
        // one pointer result, host C convention), now finalized as executable code.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        Ok(CompiledEntry { entry, code_size, compile_time: started.elapsed(), calls })
    }
}

/// A one-line description of a shape (dump file headers, statistics).
pub fn describe(shape: &EntryShape) -> String {
    format!(
        "{} args {:?} result {:?}{}{}{}",
        shape.signature,
        shape.args,
        shape.result,
        if shape.release_gil { "" } else { " keeps-lock" },
        if shape.check_error { " checks-error" } else { "" },
        if shape.use_errno { " errno" } else { "" },
    )
}

/// Memory flags for the interpreter's objects and the callable's fields: valid by the
/// host's contract (an object's header and the fields the runtime names always are).
fn object_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Builds the IR of one entry stub.
struct EntryBuilder<'a> {
    lowering: StubBuilder<'a>,
    shape: &'a EntryShape,
    runtime: &'a EntryRuntime,
    calls: &'static AtomicU64,
}

/// The stub's parameters, and the fallback block every failed guard jumps to.
struct Entry {
    callable: Value,
    args: Value,
    fallback: ir::Block,
}

impl<'a> EntryBuilder<'a> {
    fn b(&mut self) -> &mut FunctionBuilder<'a> {
        &mut self.lowering.builder
    }

    fn build(mut self, frontend: cranelift_codegen::isa::TargetFrontendConfig) {
        let [callable, args, nargsf, kwnames] = self.lowering.start_function()[..] else {
            unreachable!("the entry has four parameters")
        };
        let fallback = self.b().create_block();
        self.b().set_cold_block(fallback);
        let entry = Entry { callable, args, fallback };

        self.check_call(&entry, nargsf, kwnames);
        let target = self.load_target(&entry);
        let data = self.shape.args.iter().any(|conversion| {
            matches!(
                conversion,
                ArgConversion::Helper | ArgConversion::VoidPointer | ArgConversion::Reference
            )
        });
        let data = data.then(|| {
            let offset = self.runtime.callable_data_offset;
            self.b().ins().load(types::I64, object_flags(), callable, offset)
        });
        let storage = self.convert_arguments(&entry, data);
        let result = self.call_foreign(target, &storage);
        let boxed = self.box_result(result);
        self.b().ins().return_(&[boxed]);

        self.lowering.enter_block(fallback);
        let sig = self.signature(&[types::I64; 4], Some(types::I64));
        let host = self.address(self.runtime.fallback);
        let call = self.b().ins().call_indirect(sig, host, &[callable, args, nargsf, kwnames]);
        let result = self.b().inst_results(call)[0];
        self.b().ins().return_(&[result]);
        self.lowering.builder.finalize(frontend);
    }

    /// The host's switch, no keywords, and exactly the declared number of arguments.
    fn check_call(&mut self, entry: &Entry, nargsf: Value, kwnames: Value) {
        let flag = self.address(self.runtime.enabled_flag);
        let enabled = self.b().ins().load(types::I8, MemFlagsData::trusted(), flag, 0);
        let enabled = self.b().ins().icmp_imm_s(IntCC::Equal, enabled, 1);
        self.guard(entry, enabled);
        let no_keywords = self.b().ins().icmp_imm_s(IntCC::Equal, kwnames, 0);
        self.guard(entry, no_keywords);
        let count = self.b().ins().band_imm_s(nargsf, !ARGUMENTS_OFFSET_FLAG);
        let expected = self.shape.args.len() as i64;
        let right_count = self.b().ins().icmp_imm_s(IntCC::Equal, count, expected);
        self.guard(entry, right_count);
    }

    /// The C function's address, from the callable's memory; null falls back.
    fn load_target(&mut self, entry: &Entry) -> Value {
        let offset = self.runtime.callable_memory_offset;
        let memory = self.b().ins().load(types::I64, object_flags(), entry.callable, offset);
        let target = self.b().ins().load(types::I64, MemFlagsData::new().with_notrap(), memory, 0);
        let non_null = self.b().ins().icmp_imm_s(IntCC::NotEqual, target, 0);
        self.guard(entry, non_null);
        target
    }

    /// Continues in a new block when `condition` holds; jumps to the fallback otherwise.
    fn guard(&mut self, entry: &Entry, condition: Value) {
        let next = self.b().create_block();
        self.b().ins().brif(condition, next, &[], entry.fallback, &[]);
        self.lowering.enter_block(next);
    }

    fn address(&mut self, address: usize) -> Value {
        self.b().ins().iconst(types::I64, address as i64)
    }

    fn signature(&mut self, params: &[ir::Type], ret: Option<ir::Type>) -> ir::SigRef {
        let mut signature = ir::Signature::new(self.lowering.call_conv);
        signature.params = params.iter().map(|&ty| AbiParam::new(ty)).collect();
        signature.returns = ret.into_iter().map(AbiParam::new).collect();
        self.b().import_signature(signature)
    }

    /// Calls the host function at `address` (C convention) and returns its result, if any.
    fn call_host(
        &mut self,
        address: usize,
        args: &[Value],
        ret: Option<ir::Type>,
    ) -> Option<Value> {
        let params: Vec<ir::Type> =
            args.iter().map(|&value| self.b().func.dfg.value_type(value)).collect();
        let sig = self.signature(&params, ret);
        let callee = self.address(address);
        let call = self.b().ins().call_indirect(sig, callee, args);
        self.b().inst_results(call).first().copied()
    }

    fn type_of(&mut self, object: Value) -> Value {
        let offset = self.runtime.type_offset;
        self.b().ins().load(types::I64, object_flags(), object, offset)
    }

    fn is(&mut self, value: Value, address: usize) -> Value {
        self.b().ins().icmp_imm_s(IntCC::Equal, value, address as i64)
    }

    /// Converts every argument into its own stack slot (or finds its storage elsewhere);
    /// returns the storage addresses, as the direct stub's lowering reads them.
    fn convert_arguments(&mut self, entry: &Entry, data: Option<Value>) -> Vec<Option<Value>> {
        let shape = self.shape;
        let mut storage = Vec::with_capacity(shape.args.len());
        for (index, &conversion) in shape.args.iter().enumerate() {
            let object =
                self.b().ins().load(types::I64, object_flags(), entry.args, (index * 8) as i32);
            let slot = self.b().create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                SLOT_BYTES,
                SLOT_ALIGN_SHIFT,
            ));
            let slot = self.b().ins().stack_addr(types::I64, slot, 0);
            let at = self.convert(entry, conversion, object, slot, index, data);
            storage.push(Some(at));
        }
        storage
    }

    /// Converts one argument; returns where its C value is.
    fn convert(
        &mut self,
        entry: &Entry,
        conversion: ArgConversion,
        object: Value,
        slot: Value,
        index: usize,
        data: Option<Value>,
    ) -> Value {
        let rt = *self.runtime;
        let store = MemFlagsData::trusted();
        match conversion {
            ArgConversion::Int { bytes } => {
                let ty = self.type_of(object);
                let is_int = self.is(ty, rt.int_type);
                self.guard(entry, is_int);
                let bits = self.int_bits(object);
                let value = self.narrow(bits, bytes);
                self.b().ins().store(store, value, slot, 0);
            }
            ArgConversion::Bool => {
                let ty = self.type_of(object);
                let is_bool = self.is(ty, rt.bool_type);
                let is_int = self.is(ty, rt.int_type);
                let accepted = self.b().ins().bor(is_bool, is_int);
                self.guard(entry, accepted);
                let truth = self.call_host(rt.is_true, &[object], Some(types::I32));
                let truth = truth.expect("returns a value");
                let byte = self.b().ins().icmp_imm_s(IntCC::Equal, truth, 1);
                self.b().ins().store(store, byte, slot, 0);
            }
            ArgConversion::Float { bytes } => {
                let value = self.convert_float(entry, object);
                let value =
                    if bytes == 4 { self.b().ins().fdemote(types::F32, value) } else { value };
                self.b().ins().store(store, value, slot, 0);
            }
            ArgConversion::CharPointer => {
                let done = self.b().create_block();
                self.b().append_block_param(done, types::I64);
                let not_none = self.b().create_block();
                let zero = self.b().ins().iconst(types::I64, 0);
                let is_none = self.is(object, rt.none);
                self.b().ins().brif(is_none, done, &[BlockArg::Value(zero)], not_none, &[]);
                self.lowering.enter_block(not_none);
                let ty = self.type_of(object);
                let is_bytes = self.is(ty, rt.bytes_type);
                self.guard(entry, is_bytes);
                let data_pointer =
                    self.b().ins().iadd_imm_s(object, i64::from(rt.bytes_data_offset));
                self.b().ins().jump(done, &[BlockArg::Value(data_pointer)]);
                self.lowering.enter_block(done);
                let pointer = self.b().block_params(done)[0];
                self.b().ins().store(store, pointer, slot, 0);
            }
            ArgConversion::VoidPointer => {
                let data = data.expect("loaded for void pointers");
                return self.convert_void_pointer(entry, object, slot, index, data);
            }
            ArgConversion::Helper => {
                let data = data.expect("loaded for helpers");
                return self.helper_call(entry, object, slot, index, data);
            }
            ArgConversion::Reference => {
                let data = data.expect("loaded for references");
                return self.convert_reference(entry, object, slot, index, data);
            }
        }
        slot
    }

    /// A by-reference object of the expected class inline (`ReferenceLayout`); any other
    /// object through the helper.
    fn convert_reference(
        &mut self,
        entry: &Entry,
        object: Value,
        slot: Value,
        index: usize,
        data: Value,
    ) -> Value {
        let Some(layout) = self.runtime.reference else {
            return self.helper_call(entry, object, slot, index, data);
        };
        let done = self.b().create_block();
        self.b().append_block_param(done, types::I64);
        let other = self.b().create_block();

        let ty = self.type_of(object);
        let is_reference = self.is(ty, layout.ty);
        let check_tag = self.b().create_block();
        self.b().ins().brif(is_reference, check_tag, &[], other, &[]);

        self.lowering.enter_block(check_tag);
        let tag = self.b().ins().uload32(object_flags(), object, layout.tag_offset);
        let is_plain = self.b().ins().icmp_imm_u(IntCC::Equal, tag, i64::from(layout.tag));
        let check_class = self.b().create_block();
        self.b().ins().brif(is_plain, check_class, &[], other, &[]);

        self.lowering.enter_block(check_class);
        let referenced =
            self.b().ins().load(types::I64, object_flags(), object, layout.object_offset);
        let class = self.type_of(referenced);
        let targets =
            self.b().ins().load(types::I64, object_flags(), data, layout.data_targets_offset);
        let word = i32::try_from(8 * index).expect("at most 1024 arguments");
        let expected = self.b().ins().load(types::I64, object_flags(), targets, word);
        let is_expected = self.b().ins().icmp(IntCC::Equal, class, expected);
        let inline = self.b().create_block();
        self.b().ins().brif(is_expected, inline, &[], other, &[]);

        self.lowering.enter_block(inline);
        let address =
            self.b().ins().load(types::I64, object_flags(), object, layout.address_offset);
        self.b().ins().store(MemFlagsData::trusted(), address, slot, 0);
        self.b().ins().jump(done, &[BlockArg::Value(slot)]);

        self.lowering.enter_block(other);
        let at = self.helper_call(entry, object, slot, index, data);
        self.b().ins().jump(done, &[BlockArg::Value(at)]);

        self.lowering.enter_block(done);
        self.b().block_params(done)[0]
    }

    /// An exact int's value modulo 2**64: read inline when it has one digit
    /// (`IntLayout`), else by `long_as_u64_mask`.
    fn int_bits(&mut self, object: Value) -> Value {
        let rt = *self.runtime;
        let (header, digit_offset, tagged) = match rt.int_layout {
            IntLayout::Opaque => {
                let bits = self.call_host(rt.long_as_u64_mask, &[object], Some(types::I64));
                return bits.expect("returns a value");
            }
            IntLayout::SignedCount { count, digit } => (count, digit, false),
            IntLayout::Tagged { tag, digit } => (tag, digit, true),
        };
        let done = self.b().create_block();
        self.b().append_block_param(done, types::I64);
        let one_digit = self.b().create_block();
        let more_digits = self.b().create_block();
        self.b().set_cold_block(more_digits);
        let word = self.b().ins().load(types::I64, object_flags(), object, header);
        let is_one_digit = if tagged {
            self.b().ins().icmp_imm_u(IntCC::UnsignedLessThan, word, 16)
        } else {
            let biased = self.b().ins().iadd_imm_s(word, 1);
            self.b().ins().icmp_imm_u(IntCC::UnsignedLessThan, biased, 3)
        };
        self.b().ins().brif(is_one_digit, one_digit, &[], more_digits, &[]);

        self.lowering.enter_block(one_digit);
        let digit = self.b().ins().uload32(object_flags(), object, digit_offset);
        let sign = if tagged {
            let sign_bits = self.b().ins().band_imm_u(word, 3);
            let one = self.b().ins().iconst(types::I64, 1);
            self.b().ins().isub(one, sign_bits)
        } else {
            word
        };
        let value = self.b().ins().imul(sign, digit);
        self.b().ins().jump(done, &[BlockArg::Value(value)]);

        self.lowering.enter_block(more_digits);
        let bits = self.call_host(rt.long_as_u64_mask, &[object], Some(types::I64));
        self.b().ins().jump(done, &[BlockArg::Value(bits.expect("returns a value"))]);

        self.lowering.enter_block(done);
        self.b().block_params(done)[0]
    }

    /// An exact float's value, or an exact int's through `long_as_f64` (falling back on
    /// its error, which is cleared: the host's general path raises it properly).
    fn convert_float(&mut self, entry: &Entry, object: Value) -> Value {
        let rt = *self.runtime;
        let done = self.b().create_block();
        self.b().append_block_param(done, types::F64);
        let from_float = self.b().create_block();
        let not_float = self.b().create_block();
        let ty = self.type_of(object);
        let is_float = self.is(ty, rt.float_type);
        self.b().ins().brif(is_float, from_float, &[], not_float, &[]);

        self.lowering.enter_block(from_float);
        let offset = rt.float_value_offset;
        let value = self.b().ins().load(types::F64, object_flags(), object, offset);
        self.b().ins().jump(done, &[BlockArg::Value(value)]);

        self.lowering.enter_block(not_float);
        let is_int = self.is(ty, rt.int_type);
        self.guard(entry, is_int);
        let value = self.call_host(rt.long_as_f64, &[object], Some(types::F64));
        let value = value.expect("returns a value");
        let minus_one = self.b().ins().f64const(-1.0);
        let maybe_error = self.b().ins().fcmp(FloatCC::Equal, value, minus_one);
        let check_error = self.b().create_block();
        self.b().ins().brif(maybe_error, check_error, &[], done, &[BlockArg::Value(value)]);

        self.lowering.enter_block(check_error);
        let error = self.call_host(rt.err_occurred, &[], Some(types::I64));
        let no_error = self.b().ins().icmp_imm_s(IntCC::Equal, error.expect("returns"), 0);
        let clear = self.b().create_block();
        self.b().set_cold_block(clear);
        self.b().ins().brif(no_error, done, &[BlockArg::Value(value)], clear, &[]);

        self.lowering.enter_block(clear);
        self.call_host(rt.err_clear, &[], None);
        self.b().ins().jump(entry.fallback, &[]);

        self.lowering.enter_block(done);
        self.b().block_params(done)[0]
    }

    /// `None`, exact `int` and exact `bytes` inline; other objects through the helper.
    fn convert_void_pointer(
        &mut self,
        entry: &Entry,
        object: Value,
        slot: Value,
        index: usize,
        data: Value,
    ) -> Value {
        let rt = *self.runtime;
        let store_value = self.b().create_block();
        self.b().append_block_param(store_value, types::I64);
        let done = self.b().create_block();
        self.b().append_block_param(done, types::I64);

        let not_none = self.b().create_block();
        let zero = self.b().ins().iconst(types::I64, 0);
        let is_none = self.is(object, rt.none);
        self.b().ins().brif(is_none, store_value, &[BlockArg::Value(zero)], not_none, &[]);

        self.lowering.enter_block(not_none);
        let ty = self.type_of(object);
        let from_int = self.b().create_block();
        let not_int = self.b().create_block();
        let is_int = self.is(ty, rt.int_type);
        self.b().ins().brif(is_int, from_int, &[], not_int, &[]);

        self.lowering.enter_block(from_int);
        let bits = self.int_bits(object);
        self.b().ins().jump(store_value, &[BlockArg::Value(bits)]);

        self.lowering.enter_block(not_int);
        let from_bytes = self.b().create_block();
        let other = self.b().create_block();
        let is_bytes = self.is(ty, rt.bytes_type);
        self.b().ins().brif(is_bytes, from_bytes, &[], other, &[]);

        self.lowering.enter_block(from_bytes);
        let data_pointer = self.b().ins().iadd_imm_s(object, i64::from(rt.bytes_data_offset));
        self.b().ins().jump(store_value, &[BlockArg::Value(data_pointer)]);

        self.lowering.enter_block(other);
        let at = self.helper_call(entry, object, slot, index, data);
        self.b().ins().jump(done, &[BlockArg::Value(at)]);

        self.lowering.enter_block(store_value);
        let pointer = self.b().block_params(store_value)[0];
        self.b().ins().store(MemFlagsData::trusted(), pointer, slot, 0);
        self.b().ins().jump(done, &[BlockArg::Value(slot)]);

        self.lowering.enter_block(done);
        self.b().block_params(done)[0]
    }

    /// `convert_helper(data, index, object, slot)`; null falls back.
    fn helper_call(
        &mut self,
        entry: &Entry,
        object: Value,
        slot: Value,
        index: usize,
        data: Value,
    ) -> Value {
        let index = self.b().ins().iconst(types::I64, index as i64);
        let helper = self.runtime.convert_helper;
        let at = self.call_host(helper, &[data, index, object, slot], Some(types::I64));
        let at = at.expect("returns a value");
        let converted = self.b().ins().icmp_imm_s(IntCC::NotEqual, at, 0);
        self.guard(entry, converted);
        at
    }

    /// The low `bytes` bytes of `bits`, as an integer of that width.
    fn narrow(&mut self, bits: Value, bytes: u8) -> Value {
        if bytes == 8 {
            bits
        } else {
            self.b().ins().ireduce(integer_type(bytes), bits)
        }
    }

    /// Releases the lock (and swaps errno) around the C call as the shape says; returns
    /// the address of the result storage (the result widened as the direct stub stores it).
    fn call_foreign(&mut self, target: Value, storage: &[Option<Value>]) -> Value {
        let rt = *self.runtime;
        let shape = self.shape;
        let ret_slot = self.b().create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            SLOT_BYTES,
            SLOT_ALIGN_SHIFT,
        ));
        let ret = self.b().ins().stack_addr(types::I64, ret_slot, 0);
        let thread_state = shape
            .release_gil
            .then(|| self.call_host(rt.save_thread, &[], Some(types::I64)).expect("returns"));
        let saved_errno = shape
            .use_errno
            .then(|| self.call_host(rt.errno_swap_in, &[], Some(types::I32)).expect("returns"));
        let (params, values) = self.lowering.lower_arguments(storage, ret);
        let results = self.lowering.emit_call(target, params, &values);
        self.lowering.store_results(ret, &results);
        if let Some(saved) = saved_errno {
            self.call_host(rt.errno_swap_out, &[saved], None);
        }
        if let Some(state) = thread_state {
            self.call_host(rt.restore_thread, &[state], None);
        }
        if shape.check_error {
            let error = self.call_host(rt.err_occurred, &[], Some(types::I64)).expect("returns");
            let failed = self.b().create_block();
            self.b().set_cold_block(failed);
            let next = self.b().create_block();
            self.b().ins().brif(error, failed, &[], next, &[]);
            self.lowering.enter_block(failed);
            let null = self.b().ins().iconst(types::I64, 0);
            self.b().ins().return_(&[null]);
            self.lowering.enter_block(next);
        }
        self.count_call();
        ret
    }

    /// One more call completed on the compiled path. A plain load and store: the host
    /// holds its lock here, so calls cannot race.
    fn count_call(&mut self) {
        let counter = self.address(self.calls as *const AtomicU64 as usize);
        let flags = MemFlagsData::trusted();
        let count = self.b().ins().load(types::I64, flags, counter, 0);
        let count = self.b().ins().iadd_imm_s(count, 1);
        self.b().ins().store(flags, count, counter, 0);
    }

    /// The result object (a new reference, or null with the host's error set).
    fn box_result(&mut self, ret: Value) -> Value {
        let rt = *self.runtime;
        let flags = MemFlagsData::trusted();
        let i64_result = |this: &mut Self, function: usize| {
            let value = this.b().ins().load(types::I64, flags, ret, 0);
            this.call_host(function, &[value], Some(types::I64)).expect("returns")
        };
        match self.shape.result {
            ResultBoxing::None => {
                let none = self.address(rt.none);
                self.call_host(rt.incref, &[none], None);
                none
            }
            ResultBoxing::Signed => i64_result(self, rt.long_from_i64),
            ResultBoxing::Unsigned => i64_result(self, rt.long_from_u64),
            ResultBoxing::Float => {
                let value = match self.lowering.plan.ret {
                    RetPlan::F32 => {
                        let single = self.b().ins().load(types::F32, flags, ret, 0);
                        self.b().ins().fpromote(types::F64, single)
                    }
                    _ => self.b().ins().load(types::F64, flags, ret, 0),
                };
                self.call_host(rt.float_from_f64, &[value], Some(types::I64)).expect("returns")
            }
            ResultBoxing::Bool => {
                let value = self.b().ins().load(types::I64, flags, ret, 0);
                let byte = self.b().ins().band_imm_s(value, 0xff);
                self.call_host(rt.bool_from_long, &[byte], Some(types::I64)).expect("returns")
            }
            ResultBoxing::CharPointer => self.box_pointer(ret, rt.bytes_from_c_string),
            ResultBoxing::VoidPointer => self.box_pointer(ret, rt.long_from_u64),
        }
    }

    /// `None` for a null pointer result, else `function(pointer)`.
    fn box_pointer(&mut self, ret: Value, function: usize) -> Value {
        let rt = *self.runtime;
        let pointer = self.b().ins().load(types::I64, MemFlagsData::trusted(), ret, 0);
        let done = self.b().create_block();
        self.b().append_block_param(done, types::I64);
        let null = self.b().create_block();
        let non_null = self.b().create_block();
        self.b().ins().brif(pointer, non_null, &[], null, &[]);

        self.lowering.enter_block(null);
        let none = self.address(rt.none);
        self.call_host(rt.incref, &[none], None);
        self.b().ins().jump(done, &[BlockArg::Value(none)]);

        self.lowering.enter_block(non_null);
        let object = self.call_host(function, &[pointer], Some(types::I64)).expect("returns");
        self.b().ins().jump(done, &[BlockArg::Value(object)]);

        self.lowering.enter_block(done);
        self.b().block_params(done)[0]
    }
}
