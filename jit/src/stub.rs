//! Lowers a [`CallPlan`] to a Cranelift function: the direct call stub.
//!
//! Every stub has the one entry of libffi's `ffi_call`, written out in C:
//!
//! ```c
//! void stub(void (*target)(void), void **args, void *ret);
//! ```
//!
//! `args[i]` points at the storage of argument i; `ret` points at a buffer of at least
//! max(8, sizeof return) bytes. Integer results narrower than 64 bits are stored widened to
//! 64 bits, as libffi stores an `ffi_arg`.
//!
//! The stub reads each argument piece from its storage with loads of exactly its size (a
//! 12-byte struct is never read as 16 bytes), and describes the callee to Cranelift as a
//! function of plain scalars placed so that Cranelift's own register assignment lands every
//! piece where the [`CallPlan`] says: register pieces first, then, if anything goes on the
//! stack, dummy integers filling the remaining integer registers, then the stack pieces as
//! 64-bit integers in order. Cranelift therefore never decides anything about the C ABI.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::isa::{CallConv as ClifCallConv, OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};

use crate::error::CallError;
use crate::sysv::{CallPlan, Piece, PieceKind, RegClass, RetPlan, INT_ARG_REGS};

/// The entry of every compiled stub (see the module documentation).
pub type StubFn =
    unsafe extern "C" fn(target: *const c_void, args: *const *mut c_void, ret: *mut c_void);

/// A finished stub: its entry and what it cost.
#[derive(Clone, Copy, Debug)]
pub struct CompiledStub {
    pub entry: StubFn,
    pub code_size: usize,
    pub compile_time: Duration,
}

/// One long-lived Cranelift JIT module with reusable contexts; stubs are added to it one at
/// a time and live as long as it does (the process, when it is the global cache's).
pub struct StubCompiler {
    module: JITModule,
    context: cranelift_codegen::Context,
    builder_context: FunctionBuilderContext,
    x87_helper: FuncId,
    /// `JITCTYPES_DUMP_DIR`: where each stub's IR and disassembly are written (for people
    /// studying the stubs), or None.
    dump_dir: Option<std::path::PathBuf>,
    /// Stubs compiled so far (numbers the dump files).
    compiled: usize,
}

/// The name under which [`store_x87_result`] is known to the JIT module.
const X87_HELPER: &str = "jitctypes_store_x87_result";

impl StubCompiler {
    pub fn new() -> Result<StubCompiler, CallError> {
        StubCompiler::for_isa(host_isa(false)?)
    }

    /// A compiler whose code may read r15 with `get_pinned_reg` (and never allocates it):
    /// callback stubs get their data there from a thunk (`callback.rs`, `thunk.rs`).
    pub fn with_pinned_register() -> Result<StubCompiler, CallError> {
        StubCompiler::for_isa(host_isa(true)?)
    }

    fn for_isa(isa: OwnedTargetIsa) -> Result<StubCompiler, CallError> {
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        // Registered by name: a symbol the module cannot resolve would panic in
        // `finalize_definitions`, and our own functions are invisible to `dlsym`.
        builder.symbol(X87_HELPER, store_x87_result as *const u8);
        let mut module = JITModule::new(builder);
        let mut helper_signature = module.make_signature();
        helper_signature.params.push(AbiParam::new(types::I64));
        let x87_helper = module
            .declare_function(X87_HELPER, Linkage::Import, &helper_signature)
            .map_err(|e| CallError::Compile(e.to_string()))?;
        let mut context = module.make_context();
        let dump_dir = std::env::var_os("JITCTYPES_DUMP_DIR").map(std::path::PathBuf::from);
        // Cranelift keeps the machine code's disassembly only when asked.
        context.set_disasm(dump_dir.is_some());
        let builder_context = FunctionBuilderContext::new();
        Ok(StubCompiler { module, context, builder_context, x87_helper, dump_dir, compiled: 0 })
    }

    /// Compiles the stub of `plan`; the code is executable and no longer writable on return.
    pub fn compile(&mut self, plan: &CallPlan) -> Result<CompiledStub, CallError> {
        self.compile_named(plan, "stub")
    }

    /// `compile`, naming the stub `name` (its signature) in the IR dump if one is made.
    pub fn compile_named(
        &mut self,
        plan: &CallPlan,
        name: &str,
    ) -> Result<CompiledStub, CallError> {
        let started = Instant::now();
        self.build(plan);
        let (code, code_size) = self.finish(name)?;
        // SAFETY: the function was built with exactly the `StubFn` signature (three pointer
        // parameters, no results, host C convention) and is now finalized as executable code.
        let entry = unsafe { std::mem::transmute::<*const u8, StubFn>(code) };
        Ok(CompiledStub { entry, code_size, compile_time: started.elapsed() })
    }

    /// Compiles the function built in `self.context` (dumping it if asked, under `name`);
    /// returns its finalized code and size. The context is cleared for the next one.
    pub(crate) fn finish(&mut self, name: &str) -> Result<(*const u8, usize), CallError> {
        let ir = self.dump_dir.is_some().then(|| self.context.func.display().to_string());
        let compile_error = |e: &dyn std::fmt::Display| CallError::Compile(e.to_string());
        let id = self
            .module
            .declare_anonymous_function(&self.context.func.signature)
            .map_err(|e| compile_error(&e))?;
        let defined = self.module.define_function(id, &mut self.context);
        let code_size =
            self.context.compiled_code().map_or(0, |code| code.code_info().total_size as usize);
        if let (Some(dir), Some(ir)) = (&self.dump_dir, ir) {
            let disassembly = self
                .context
                .compiled_code()
                .and_then(|code| code.vcode.clone())
                .unwrap_or_default();
            self.compiled += 1;
            // Best effort: a dump that cannot be written must not fail the call.
            let _ = write_dump(dir, self.compiled, name, &ir, &disassembly);
        }
        self.clear_context();
        defined.map_err(|e| compile_error(&format!("{e:?}")))?;
        self.module.finalize_definitions().map_err(|e| compile_error(&e))?;
        Ok((self.module.get_finalized_function(id), code_size))
    }

    /// Readies the context for the next function (clearing it also resets the disassembly
    /// request, which dumps need on every function).
    fn clear_context(&mut self) {
        self.module.clear_context(&mut self.context);
        self.context.set_disasm(self.dump_dir.is_some());
    }

    /// The function being built, its builder context and the target's configuration.
    pub(crate) fn function_parts(
        &mut self,
    ) -> (&mut ir::Function, &mut FunctionBuilderContext, TargetFrontendConfig) {
        let target = self.module.target_config();
        (&mut self.context.func, &mut self.builder_context, target)
    }

    /// The Cranelift IR of the stub of `plan`, as text (for golden tests and IR dumps).
    pub fn ir_text(&mut self, plan: &CallPlan) -> String {
        self.build(plan);
        let text = self.context.func.display().to_string();
        self.clear_context();
        text
    }

    fn build(&mut self, plan: &CallPlan) {
        let target = self.module.target_config();
        let func = &mut self.context.func;
        func.signature.call_conv = target.default_call_conv;
        func.signature.params = vec![AbiParam::new(target.pointer_type()); 3];
        let x87_helper = (plan.ret == RetPlan::X87)
            .then(|| self.module.declare_func_in_func(self.x87_helper, func));
        let builder = FunctionBuilder::new(func, &mut self.builder_context);
        // The verifier runs inside `define_function` in debug builds (`enable_verifier`).
        let call_conv = target.default_call_conv;
        StubBuilder { builder, plan, call_conv, x87_helper }.build(target);
    }
}

/// Writes `<dir>/stub-<n>.clif`: the stub's signature, its Cranelift IR and the
/// disassembly of the machine code Cranelift made of it.
fn write_dump(
    dir: &std::path::Path,
    number: usize,
    name: &str,
    ir: &str,
    disassembly: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = format!("; {name}\n{ir}\n; machine code\n{disassembly}");
    std::fs::write(dir.join(format!("stub-{number:04}.clif")), text)
}

fn host_isa(pinned_register: bool) -> Result<OwnedTargetIsa, CallError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags.set(name, value).map_err(|e| CallError::Compile(e.to_string()))
    };
    // Stubs are short and mostly loads, stores and calls: Cranelift's optimiser changes
    // next to nothing in them. The backtracking register allocator does matter: the
    // single-pass one spills every value to the stack and saves every callee-saved
    // register, which made a trivial `add_i32` call 3 ns slower (of about 50). Compile
    // times (`cargo run --release -p jit --example compile_time`): 32 µs per stub with
    // neither, 50 µs with the backtracking allocator, 62 µs with both.
    set(&mut flags, "opt_level", "none")?;
    set(&mut flags, "regalloc_algorithm", "backtracking")?;
    set(&mut flags, "enable_pinned_reg", if pinned_register { "true" } else { "false" })?;
    // JITModule needs non-PIC code; the stub embeds no addresses anyway.
    set(&mut flags, "is_pic", "false")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa_builder = cranelift_native::builder().map_err(|e| CallError::Compile(e.to_string()))?;
    isa_builder.finish(settings::Flags::new(flags)).map_err(|e| CallError::Compile(e.to_string()))
}

/// Memory flags for the `args` array itself: pointer-aligned, valid by contract.
const ARGS_ARRAY: MemFlagsData = MemFlagsData::trusted();

/// Memory flags for argument and result storage: valid by contract, not necessarily aligned
/// (packed structs), and never trapping.
fn storage_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Builds the IR of one stub; short-lived, one per compilation. The entry stubs of
/// `entry.rs` use its argument lowering, call and result storing as they are.
pub(crate) struct StubBuilder<'a> {
    pub(crate) builder: FunctionBuilder<'a>,
    pub(crate) plan: &'a CallPlan,
    pub(crate) call_conv: ClifCallConv,
    /// [`store_x87_result`], imported into the function when the plan returns in st(0).
    pub(crate) x87_helper: Option<ir::FuncRef>,
}

impl<'a> StubBuilder<'a> {
    /// Opens the function's first block; returns the function's parameters.
    pub(crate) fn start_function(&mut self) -> Vec<Value> {
        let start = self.builder.create_block();
        self.builder.append_block_params_for_function_params(start);
        self.enter_block(start);
        self.builder.block_params(start).to_vec()
    }

    /// Continues in `block`, whose predecessors are all known by now (stubs are built in
    /// order, every block after the branches to it).
    pub(crate) fn enter_block(&mut self, block: ir::Block) {
        self.builder.switch_to_block(block);
        self.builder.seal_block(block);
    }

    fn build(mut self, frontend: TargetFrontendConfig) {
        let [target, args, ret] = self.start_function()[..] else {
            unreachable!("the stub entry has three parameters")
        };

        let storage_pointers = self.load_argument_pointers(args);
        let (callee_params, values) = self.lower_arguments(&storage_pointers, ret);
        let results = self.emit_call(target, callee_params, &values);
        self.store_results(ret, &results);
        self.builder.ins().return_(&[]);
        self.builder.finalize(frontend);
    }

    /// `args[i]` for every argument that has a piece, loaded once.
    fn load_argument_pointers(&mut self, args: Value) -> Vec<Option<Value>> {
        let mut pointers = vec![None; self.plan.arg_count];
        for piece in &self.plan.pieces {
            if piece.kind == PieceKind::Padding || pointers[piece.arg].is_some() {
                continue;
            }
            let offset = (piece.arg * 8) as i32;
            pointers[piece.arg] =
                Some(self.builder.ins().load(types::I64, ARGS_ARRAY, args, offset));
        }
        pointers
    }

    /// The callee's parameters in Cranelift's terms, and the values passed for them.
    pub(crate) fn lower_arguments(
        &mut self,
        storage: &[Option<Value>],
        ret: Value,
    ) -> (Vec<AbiParam>, Vec<Value>) {
        let mut params = Vec::new();
        let mut values = Vec::new();
        if self.plan.ret == RetPlan::Memory {
            params.push(AbiParam::new(types::I64));
            values.push(ret);
        }
        let plan = self.plan;
        for piece in plan.pieces.iter().filter(|piece| !piece.on_stack) {
            let value = self.load_register_piece(piece, storage);
            params.push(AbiParam::new(self.builder.func.dfg.value_type(value)));
            values.push(value);
        }
        if plan.stack_slots() > 0 {
            // Fill the integer registers so that every i64 declared next lands on the stack.
            let free_registers = plan.int_registers_used()..INT_ARG_REGS;
            let zero =
                (!free_registers.is_empty()).then(|| self.builder.ins().iconst(types::I64, 0));
            for _ in free_registers {
                params.push(AbiParam::new(types::I64));
                values.push(zero.expect("created when registers are free"));
            }
            for piece in plan.pieces.iter().filter(|piece| piece.on_stack) {
                let value = self.load_stack_piece(piece, storage);
                params.push(AbiParam::new(types::I64));
                values.push(value);
            }
        }
        (params, values)
    }

    fn load_register_piece(&mut self, piece: &Piece, storage: &[Option<Value>]) -> Value {
        let base = storage[piece.arg].expect("every register piece has storage");
        let offset = piece.offset as i32;
        match piece.kind {
            PieceKind::Int { bytes, signed } => self.load_integer(base, offset, bytes, signed),
            PieceKind::F32 => self.builder.ins().load(types::F32, storage_flags(), base, offset),
            PieceKind::F64 => self.builder.ins().load(types::F64, storage_flags(), base, offset),
            PieceKind::Chunk { bytes, class } => {
                let chunk = self.load_bytes(base, offset, bytes);
                match class {
                    RegClass::Integer => chunk,
                    RegClass::Sse => {
                        self.builder.ins().bitcast(types::F64, MemFlagsData::new(), chunk)
                    }
                }
            }
            PieceKind::Padding => unreachable!("padding is only ever a stack piece"),
        }
    }

    /// A stack piece as the 64-bit integer that fills its slot.
    fn load_stack_piece(&mut self, piece: &Piece, storage: &[Option<Value>]) -> Value {
        let Some(base) = storage[piece.arg] else {
            return self.builder.ins().iconst(types::I64, 0);
        };
        let offset = piece.offset as i32;
        match piece.kind {
            PieceKind::Int { bytes, signed } => self.load_integer(base, offset, bytes, signed),
            // Floats keep their bit pattern in the low bytes of the slot.
            PieceKind::F32 => self.load_bytes(base, offset, 4),
            PieceKind::F64 => self.load_bytes(base, offset, 8),
            PieceKind::Chunk { bytes, .. } => self.load_bytes(base, offset, bytes),
            PieceKind::Padding => self.builder.ins().iconst(types::I64, 0),
        }
    }

    /// An integer of `bytes` bytes, sign- or zero-extended to 64 bits as C callers do (gcc
    /// callees do not rely on it, clang callees do).
    pub(crate) fn load_integer(
        &mut self,
        base: Value,
        offset: i32,
        bytes: u8,
        signed: bool,
    ) -> Value {
        let ty = integer_type(bytes);
        let value = self.builder.ins().load(ty, storage_flags(), base, offset);
        if ty == types::I64 {
            value
        } else if signed {
            self.builder.ins().sextend(types::I64, value)
        } else {
            self.builder.ins().uextend(types::I64, value)
        }
    }

    /// Exactly `bytes` (1–8) bytes at `base + offset`, little-endian, zero-extended to i64:
    /// loads of 4, 2 and 1 bytes combined, so nothing past the storage is ever read.
    pub(crate) fn load_bytes(&mut self, base: Value, offset: i32, bytes: u8) -> Value {
        let mut combined: Option<Value> = None;
        for (part_offset, part_bytes) in byte_parts(bytes) {
            let ty = integer_type(part_bytes);
            let part =
                self.builder.ins().load(ty, storage_flags(), base, offset + part_offset as i32);
            let mut wide =
                if ty == types::I64 { part } else { self.builder.ins().uextend(types::I64, part) };
            if part_offset > 0 {
                wide = self.builder.ins().ishl_imm_u(wide, i64::from(part_offset) * 8);
            }
            combined = Some(match combined {
                None => wide,
                Some(low) => self.builder.ins().bor(low, wide),
            });
        }
        combined.expect("a chunk has at least one byte")
    }

    /// Stores the low `bytes` bytes of the i64 `value` at `base + offset`.
    pub(crate) fn store_bytes(&mut self, value: Value, base: Value, offset: i32, bytes: u8) {
        for (part_offset, part_bytes) in byte_parts(bytes) {
            let ty = integer_type(part_bytes);
            let shifted = if part_offset > 0 {
                self.builder.ins().ushr_imm_u(value, i64::from(part_offset) * 8)
            } else {
                value
            };
            let part =
                if ty == types::I64 { shifted } else { self.builder.ins().ireduce(ty, shifted) };
            self.builder.ins().store(storage_flags(), part, base, offset + part_offset as i32);
        }
    }

    pub(crate) fn emit_call(
        &mut self,
        target: Value,
        params: Vec<AbiParam>,
        values: &[Value],
    ) -> Vec<Value> {
        let mut signature = ir::Signature::new(self.call_conv);
        signature.params = params;
        signature.returns = self.callee_returns();
        let signature = self.builder.import_signature(signature);
        let call = self.builder.ins().call_indirect(signature, target, values);
        self.builder.inst_results(call).to_vec()
    }

    fn callee_returns(&self) -> Vec<AbiParam> {
        match &self.plan.ret {
            // st(0) is invisible to Cranelift: see `store_x87_result`.
            RetPlan::Void | RetPlan::Memory | RetPlan::X87 => vec![],
            RetPlan::Int { bytes, .. } => vec![AbiParam::new(integer_type(*bytes))],
            RetPlan::F32 => vec![AbiParam::new(types::F32)],
            RetPlan::F64 => vec![AbiParam::new(types::F64)],
            // Cranelift returns integers in rax then rdx and floats in xmm0 then xmm1,
            // counting each class separately, exactly as SysV returns eightbytes.
            RetPlan::Registers(eightbytes) => eightbytes
                .iter()
                .filter_map(|eightbyte| eightbyte.class)
                .map(|class| match class {
                    RegClass::Integer => AbiParam::new(types::I64),
                    RegClass::Sse => AbiParam::new(types::F64),
                })
                .collect(),
        }
    }

    pub(crate) fn store_results(&mut self, ret: Value, results: &[Value]) {
        match &self.plan.ret {
            RetPlan::Void | RetPlan::Memory => {}
            RetPlan::X87 => {
                // Right after the callee: Cranelift emits only integer and SSE instructions
                // in between, so st(0) still holds the result.
                let helper = self.x87_helper.expect("imported for X87 plans");
                self.builder.ins().call(helper, &[ret]);
            }
            RetPlan::Int { bytes, signed } => {
                let value = results[0];
                let wide = match (*bytes, *signed) {
                    (8, _) => value,
                    (_, true) => self.builder.ins().sextend(types::I64, value),
                    (_, false) => self.builder.ins().uextend(types::I64, value),
                };
                self.builder.ins().store(storage_flags(), wide, ret, 0);
            }
            RetPlan::F32 | RetPlan::F64 => {
                self.builder.ins().store(storage_flags(), results[0], ret, 0);
            }
            RetPlan::Registers(eightbytes) => {
                let classed = eightbytes.iter().filter(|eightbyte| eightbyte.class.is_some());
                for (eightbyte, &value) in classed.zip(results) {
                    let bits = if eightbyte.class == Some(RegClass::Sse) {
                        self.builder.ins().bitcast(types::I64, MemFlagsData::new(), value)
                    } else {
                        value
                    };
                    self.store_bytes(bits, ret, eightbyte.offset as i32, eightbyte.size as u8);
                }
            }
        }
    }
}

/// Pops the x87 register st(0) into the 10 bytes at `ret` (`fstp tbyte ptr [rdi]`).
///
/// Cranelift has no x87 support, so a stub whose callee returns a `long double` in st(0)
/// calls this immediately after the callee. It also pops the x87 stack, as the psABI
/// requires of the caller.
///
/// # Safety
/// Only for compiled stubs, right after a callee that left its result in st(0); `ret` must
/// be writable for 10 bytes.
#[unsafe(naked)]
unsafe extern "C" fn store_x87_result(_ret: *mut c_void) {
    std::arch::naked_asm!("fstp tbyte ptr [rdi]", "ret")
}

pub(crate) fn integer_type(bytes: u8) -> ir::Type {
    match bytes {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        8 => types::I64,
        other => unreachable!("no integer type of {other} bytes"),
    }
}

/// Splits `bytes` (1–8) into (offset, size) parts of 8, 4, 2 and 1 bytes, largest first.
pub(crate) fn byte_parts(bytes: u8) -> impl Iterator<Item = (u8, u8)> {
    let mut offset = 0;
    [8u8, 4, 2, 1].into_iter().filter_map(move |part| {
        let remaining = bytes - offset;
        (remaining >= part && (part != 8 || remaining == 8)).then(|| {
            let start = offset;
            offset += part;
            (start, part)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::byte_parts;

    #[test]
    fn byte_parts_cover_every_size_exactly() {
        for bytes in 1..=8u8 {
            let parts: Vec<_> = byte_parts(bytes).collect();
            let mut next = 0;
            for (offset, size) in &parts {
                assert_eq!(*offset, next);
                next += size;
            }
            assert_eq!(next, bytes, "parts {parts:?}");
        }
        assert_eq!(byte_parts(7).collect::<Vec<_>>(), [(0, 4), (4, 2), (6, 1)]);
    }
}
