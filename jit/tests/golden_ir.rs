//! Golden IR: the Cranelift IR of a few stub shapes, compared with the text stored in
//! `tests/golden/`. A change to the lowering shows up here as a readable diff.
//! Re-bless with `JITCTYPES_BLESS=1 cargo test -p jit --test golden_ir`.

use std::path::PathBuf;

use jit::sysv::plan_call;
use jit::{Aggregate, Signature, StubCompiler, Type};

fn check(name: &str, signature: Signature) {
    let plan = plan_call(&signature).expect("a JIT signature");
    let ir = StubCompiler::new().unwrap().ir_text(&plan);
    let text = format!("; {signature}\n{ir}");
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.clif"));
    if std::env::var_os("JITCTYPES_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with JITCTYPES_BLESS=1)", path.display()));
    assert_eq!(text, expected, "IR of {name} changed (bless with JITCTYPES_BLESS=1 if intended)");
}

fn strukt(members: Vec<Type>) -> Type {
    Type::aggregate(Aggregate::c_struct(members).unwrap())
}

#[test]
fn add_i32() {
    check("add_i32", Signature::new(Type::I32, vec![Type::I32, Type::I32]).unwrap());
}

#[test]
fn narrow_integers_are_widened() {
    check("narrow", Signature::new(Type::U8, vec![Type::I8, Type::U16, Type::Bool]).unwrap());
}

#[test]
fn mixed_struct_in_two_registers() {
    let s12 = strukt(vec![Type::I32, Type::I32, Type::F32]);
    check("struct12_in_out", Signature::new(s12.clone(), vec![s12]).unwrap());
}

#[test]
fn memory_struct_return_and_stack_argument() {
    let s24 = strukt(vec![Type::I64, Type::F64, Type::U32]);
    check("struct24_memory", Signature::new(s24.clone(), vec![s24, Type::I32]).unwrap());
}

#[test]
fn struct_spilled_after_registers_run_out() {
    let pair = strukt(vec![Type::I64, Type::I64]);
    let mut args = vec![Type::I64; 5];
    args.extend([pair, Type::I64]);
    check("struct_spilled", Signature::new(Type::Void, args).unwrap());
}

#[test]
fn long_double_in_memory_and_st0() {
    check("long_double", Signature::new(Type::LongDouble, vec![Type::LongDouble]).unwrap());
}
