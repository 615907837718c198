//! Bad input never crashes: random layouts and signatures, valid or not, give `Ok` or
//! `Err` from every constructor and both paths, never a panic; and the one size limit
//! of the JIT sends a huge struct to libffi, which calls it correctly.

mod support;

use jit::{Aggregate, AggregateKind, CallPath, Caller, FallbackReason, Field, Signature, Type};
use support::{bytes_of, call, sig, u64_at, TestLibrary};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_type(rng: &mut Rng, depth: u32) -> Type {
    use Type::*;
    let scalars = [Void, Bool, I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, LongDouble, Pointer];
    match rng.below(10) {
        0 if depth < 3 => {
            Type::array(random_type(rng, depth + 1), rng.below(6) as usize).unwrap_or(I32)
        }
        1 | 2 if depth < 3 => random_aggregate(rng, depth + 1).map_or(U8, Type::aggregate),
        _ => scalars[rng.below(scalars.len() as u64) as usize].clone(),
    }
}

fn random_aggregate(rng: &mut Rng, depth: u32) -> Option<Aggregate> {
    let fields: Vec<Field> = (0..rng.below(5))
        .map(|_| Field { offset: rng.below(40) as usize, ty: random_type(rng, depth) })
        .collect();
    let kind = if rng.below(2) == 0 { AggregateKind::Struct } else { AggregateKind::Union };
    let size = rng.below(48) as usize;
    let align = rng.below(33) as usize;
    match rng.below(3) {
        0 => Aggregate::with_layout(kind, size, align, fields).ok(),
        1 => Aggregate::c_union(fields.into_iter().map(|f| f.ty).collect()).ok(),
        _ => {
            let pack = [None, Some(1), Some(2), Some(3), Some(4), Some(64)][rng.below(6) as usize];
            Aggregate::packed_struct(fields.into_iter().map(|f| f.ty).collect(), pack).ok()
        }
    }
}

#[test]
fn random_layouts_and_signatures_never_panic() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let (mut valid, mut callable) = (0, 0);
    for _ in 0..20_000 {
        let ret = random_type(&mut rng, 0);
        let args: Vec<Type> = (0..rng.below(12)).map(|_| random_type(&mut rng, 0)).collect();
        let signature = if rng.below(8) == 0 {
            let fixed = rng.below(args.len() as u64 + 2) as usize;
            Signature::variadic(ret, args, fixed)
        } else {
            Signature::new(ret, args)
        };
        let Ok(signature) = signature else { continue };
        valid += 1;
        let default = Caller::new(signature.clone());
        let _ = Caller::with_libffi(signature.clone());
        if let Ok(caller) = default {
            callable += 1;
            assert_eq!(caller.signature(), &signature);
        }
    }
    println!("{valid} valid signatures, {callable} with a call path");
    assert!(valid > 5_000 && callable > 5_000, "the generator must reach the call paths");
}

#[test]
fn huge_struct_by_value_goes_to_libffi_and_is_called_correctly() {
    let big =
        Type::aggregate(Aggregate::c_struct(vec![Type::array(Type::I64, 600).unwrap()]).unwrap());
    let caller = Caller::new(sig(Type::I64, vec![Type::I32, big])).unwrap();
    assert_eq!(
        caller.path(),
        &CallPath::Libffi(FallbackReason::StackArgumentsTooLarge { slots: 600 })
    );
    let values: Vec<i64> = (0..600).map(|k| k * 7 - 1000).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ret = call(&caller, TestLibrary::get().symbol("big_sum"), &[bytes_of(3i32), bytes]);
    let expected: i64 = values.iter().enumerate().map(|(k, v)| v * (k as i64 + 1)).sum::<i64>() * 3;
    assert_eq!(u64_at(&ret) as i64, expected);
}
