//! Prints how long compiling stubs takes (a diagnostic, not a benchmark): the median over
//! a set of small signatures, as programs declare them.
use std::time::Duration;

use jit::sysv::plan_call;
use jit::{Signature, StubCompiler, Type};

fn main() {
    let mut compiler = StubCompiler::new().unwrap();
    let scalars = [Type::I32, Type::F64, Type::Pointer, Type::I64, Type::U8, Type::F32];
    let mut times: Vec<Duration> = Vec::new();
    for round in 0..120 {
        let args: Vec<Type> = (0..round % 7).map(|k| scalars[(k + round) % 6].clone()).collect();
        let signature = Signature::new(scalars[round % 6].clone(), args).unwrap();
        let plan = plan_call(&signature).unwrap();
        times.push(compiler.compile(&plan).unwrap().compile_time);
    }
    times.sort();
    println!("median {:?}, max {:?}", times[times.len() / 2], times[times.len() - 1]);
}
