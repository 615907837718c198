//! Callback stubs: compiled functions *with* a C signature, which C calls (through a
//! `thunk.rs` thunk), and which hand the call to the host's handler with libffi's closure
//! contract:
//!
//! ```c
//! void handler(void *data, void **args, void *ret);
//! ```
//!
//! `args[i]` points at a copy of argument i, `ret` at a buffer of at least 16 bytes (or
//! the caller's hidden result pointer for results returned in memory); after the handler
//! the stub returns what it left in `ret`, as C expects it. A stub is shared by every
//! callback of its signature: the thunk puts the callback's `data` in r15 (the pinned
//! register, read with `get_pinned_reg`) and calls the stub, so the stub sees two more
//! words on the stack than its C caller pushed (the saved r15, the thunk's return
//! address) before the stack arguments.
//!
//! This replaces libffi's closure entry, which classifies the signature's arguments
//! again on every call. The stub is the mirror of the direct stub (`stub.rs`): it
//! declares the same scalar parameters, in the same order, that a direct stub passes for
//! the signature, so Cranelift receives every piece where the `CallPlan` says it is.

use std::time::{Duration, Instant};

use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, StackSlotData};
use cranelift_codegen::ir::{StackSlotKind, Value};
use cranelift_frontend::FunctionBuilder;

use crate::error::CallError;
use crate::stub::{integer_type, StubBuilder, StubCompiler};
use crate::sysv::{plan_call, CallPlan, Piece, PieceKind, RegClass, RetPlan, INT_ARG_REGS};
use crate::Signature;

/// Words the thunk adds between the C caller's stack arguments and the stub's return
/// address: the saved r15 and the C caller's return address.
const THUNK_STACK_WORDS: usize = 2;

/// A finished callback stub.
#[derive(Clone, Copy, Debug)]
pub struct CompiledCallbackStub {
    /// The code thunks call.
    pub entry: *const u8,
    pub code_size: usize,
    pub compile_time: Duration,
}

// SAFETY: the address of immutable code that lives as long as the process.
unsafe impl Send for CompiledCallbackStub {}
// SAFETY: as for `Send`.
unsafe impl Sync for CompiledCallbackStub {}

/// Why no callback stub is made for `signature` (libffi's closures serve it then).
pub fn callback_unsupported(signature: &Signature) -> Option<String> {
    match plan_call(signature) {
        Err(reason) => Some(reason.to_string()),
        Ok(plan) if plan.ret == RetPlan::X87 => Some("a long double result".into()),
        Ok(_) => None,
    }
}

impl StubCompiler {
    /// Compiles the callback stub of `signature`, calling the handler at `handler`. The
    /// compiler must be made by [`StubCompiler::with_pinned_register`].
    pub fn compile_callback(
        &mut self,
        signature: &Signature,
        handler: usize,
    ) -> Result<CompiledCallbackStub, CallError> {
        if let Some(reason) = callback_unsupported(signature) {
            return Err(CallError::Compile(reason));
        }
        let plan = plan_call(signature).map_err(|e| CallError::Compile(e.to_string()))?;
        let started = Instant::now();
        {
            let (func, builder_context, target) = self.function_parts();
            func.signature.call_conv = target.default_call_conv;
            let (params, returns) = callee_signature(&plan);
            func.signature.params = params.into_iter().map(|(param, _)| param).collect();
            func.signature.returns = returns;
            let builder = FunctionBuilder::new(func, builder_context);
            let call_conv = target.default_call_conv;
            let lowering = StubBuilder { builder, plan: &plan, call_conv, x87_helper: None };
            CallbackBuilder { lowering, signature, handler }.build(target);
        }
        let (entry, code_size) = self.finish(&format!("callback {signature}"))?;
        Ok(CompiledCallbackStub { entry, code_size, compile_time: started.elapsed() })
    }
}

/// What a parameter of the stub carries.
#[derive(Clone, Copy)]
enum Incoming<'a> {
    /// The caller's hidden result pointer (results returned in memory).
    ResultPointer,
    /// A piece of an argument.
    Piece(&'a Piece),
    /// A register or stack word with nothing of ours in it.
    Unused,
}

/// The stub's parameters (what each carries) and results: those a direct stub of the same
/// plan passes to its callee (`StubBuilder::lower_arguments`, `callee_returns`), plus the
/// thunk's words before the stack arguments; integer results are returned widened to 64
/// bits, and a result in memory returns its pointer (rax), as the psABI asks.
fn callee_signature(plan: &CallPlan) -> (Vec<(AbiParam, Incoming<'_>)>, Vec<AbiParam>) {
    let mut params = Vec::new();
    let word = AbiParam::new(types::I64);
    if plan.ret == RetPlan::Memory {
        params.push((word, Incoming::ResultPointer));
    }
    for piece in plan.pieces.iter().filter(|piece| !piece.on_stack) {
        let ty = match piece.kind {
            // The direct stub passes integers widened to 64 bits.
            PieceKind::Int { .. } | PieceKind::Chunk { class: RegClass::Integer, .. } => types::I64,
            PieceKind::F32 => types::F32,
            PieceKind::F64 | PieceKind::Chunk { class: RegClass::Sse, .. } => types::F64,
            PieceKind::Padding => unreachable!("padding is only ever a stack piece"),
        };
        params.push((AbiParam::new(ty), Incoming::Piece(piece)));
    }
    if plan.stack_slots() > 0 {
        for _ in plan.int_registers_used()..INT_ARG_REGS {
            params.push((word, Incoming::Unused));
        }
        for _ in 0..THUNK_STACK_WORDS {
            params.push((word, Incoming::Unused));
        }
        for piece in plan.pieces.iter().filter(|piece| piece.on_stack) {
            params.push((word, Incoming::Piece(piece)));
        }
    }
    let returns = match &plan.ret {
        RetPlan::Void | RetPlan::X87 => vec![],
        RetPlan::Memory | RetPlan::Int { .. } => vec![word],
        RetPlan::F32 => vec![AbiParam::new(types::F32)],
        RetPlan::F64 => vec![AbiParam::new(types::F64)],
        RetPlan::Registers(eightbytes) => eightbytes
            .iter()
            .filter_map(|eightbyte| eightbyte.class)
            .map(|class| match class {
                RegClass::Integer => word,
                RegClass::Sse => AbiParam::new(types::F64),
            })
            .collect(),
    };
    (params, returns)
}

struct CallbackBuilder<'a> {
    lowering: StubBuilder<'a>,
    signature: &'a Signature,
    handler: usize,
}

/// Memory flags for the stub's own stack slots and the caller's result buffer.
fn storage_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl<'a> CallbackBuilder<'a> {
    fn b(&mut self) -> &mut FunctionBuilder<'a> {
        &mut self.lowering.builder
    }

    fn build(mut self, frontend: cranelift_codegen::isa::TargetFrontendConfig) {
        let values = self.lowering.start_function();
        let plan = self.lowering.plan;
        let (params, _) = callee_signature(plan);

        let data = self.b().ins().get_pinned_reg(types::I64);
        let storage = self.argument_storage();
        let mut result_pointer = None;
        for ((_, incoming), &value) in params.iter().zip(&values) {
            match incoming {
                Incoming::ResultPointer => result_pointer = Some(value),
                Incoming::Piece(piece) => self.store_piece(piece, value, &storage),
                Incoming::Unused => {}
            }
        }
        let args = self.argument_array(&storage);
        let ret = match result_pointer {
            Some(pointer) => pointer,
            None => self.stack_buffer(16),
        };
        let mut handler_signature = ir::Signature::new(self.lowering.call_conv);
        handler_signature.params = vec![AbiParam::new(types::I64); 3];
        let handler_signature = self.b().import_signature(handler_signature);
        let handler_address = self.handler as i64;
        let handler = self.b().ins().iconst(types::I64, handler_address);
        self.b().ins().call_indirect(handler_signature, handler, &[data, args, ret]);
        let results = self.load_results(ret);
        self.b().ins().return_(&results);
        self.lowering.builder.finalize(frontend);
    }

    /// A 16-byte-aligned stack buffer of at least `bytes` bytes.
    fn stack_buffer(&mut self, bytes: usize) -> Value {
        let size = bytes.max(8).next_multiple_of(16) as u32;
        let slot = self.b().create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            size,
            4,
        ));
        self.b().ins().stack_addr(types::I64, slot, 0)
    }

    /// Storage for a copy of each argument.
    fn argument_storage(&mut self) -> Vec<Value> {
        let sizes: Vec<usize> = self.signature.args().iter().map(|ty| ty.size()).collect();
        sizes.into_iter().map(|size| self.stack_buffer(size)).collect()
    }

    /// Writes one incoming piece into its argument's storage.
    fn store_piece(&mut self, piece: &Piece, value: Value, storage: &[Value]) {
        let base = storage[piece.arg];
        let offset = piece.offset as i32;
        let flags = storage_flags();
        let incoming = self.b().func.dfg.value_type(value);
        match piece.kind {
            PieceKind::Padding => {}
            PieceKind::Int { bytes, .. } => {
                let narrow = if bytes == 8 {
                    value
                } else {
                    self.b().ins().ireduce(integer_type(bytes), value)
                };
                self.b().ins().store(flags, narrow, base, offset);
            }
            PieceKind::F32 | PieceKind::F64 if incoming.is_float() => {
                self.b().ins().store(flags, value, base, offset);
            }
            // A float on the stack arrives as the 64-bit word holding its bits.
            PieceKind::F32 => self.lowering.store_bytes(value, base, offset, 4),
            PieceKind::F64 => self.lowering.store_bytes(value, base, offset, 8),
            PieceKind::Chunk { bytes, .. } => {
                let bits = if incoming.is_float() {
                    self.b().ins().bitcast(types::I64, MemFlagsData::new(), value)
                } else {
                    value
                };
                self.lowering.store_bytes(bits, base, offset, bytes);
            }
        }
    }

    /// `void *args[]` pointing at each argument's storage.
    fn argument_array(&mut self, storage: &[Value]) -> Value {
        let array = self.stack_buffer(8 * storage.len());
        for (index, &pointer) in storage.iter().enumerate() {
            self.b().ins().store(storage_flags(), pointer, array, (8 * index) as i32);
        }
        array
    }

    /// What the handler left in `ret`, as the stub returns it.
    fn load_results(&mut self, ret: Value) -> Vec<Value> {
        let flags = storage_flags();
        match &self.lowering.plan.ret {
            RetPlan::Void | RetPlan::X87 => vec![],
            RetPlan::Memory => vec![ret],
            RetPlan::Int { bytes, signed } => {
                vec![self.lowering.load_integer(ret, 0, *bytes, *signed)]
            }
            RetPlan::F32 => vec![self.b().ins().load(types::F32, flags, ret, 0)],
            RetPlan::F64 => vec![self.b().ins().load(types::F64, flags, ret, 0)],
            RetPlan::Registers(eightbytes) => {
                let eightbytes = eightbytes.clone();
                let mut values = Vec::new();
                for eightbyte in eightbytes.iter() {
                    let Some(class) = eightbyte.class else { continue };
                    let offset = eightbyte.offset as i32;
                    let bits = self.lowering.load_bytes(ret, offset, eightbyte.size as u8);
                    values.push(match class {
                        RegClass::Integer => bits,
                        RegClass::Sse => {
                            self.b().ins().bitcast(types::F64, MemFlagsData::new(), bits)
                        }
                    });
                }
                values
            }
        }
    }
}
