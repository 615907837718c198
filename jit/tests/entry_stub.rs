//! Entry stubs without Python: a mock object model (ints, bools, floats, bytes, `None`, a
//! callable) and mock runtime functions stand in for the interpreter.
//!
//! Every mock runtime function and every C function here appends to a per-thread event log,
//! so a test sees exactly what one call through a stub did, in order, even while other
//! tests run in parallel. Each test compiles its stubs in its own `StubCache`, so call
//! counters are never shared. Mock objects are leaked: each test makes a handful.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::mem::offset_of;
use std::ptr;
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};

use jit::entry::{describe, entry_unsupported};
use jit::{
    Aggregate, ArgConversion, CompiledEntry, EntryRuntime, EntryShape, IntLayout, ReferenceLayout,
    ResultBoxing, Signature, StubCache, StubCompiler, Type,
};

// ---------------------------------------------------------------------------------------
// The mock object model

/// The header every mock object starts with.
#[repr(C)]
struct Object {
    refcnt: AtomicIsize,
    ty: *const TypeObject,
}

// SAFETY: `ty` is never written after construction and the count is atomic, so the static
// objects below may be shared between test threads.
unsafe impl Sync for Object {}

impl Object {
    const fn header(ty: &'static TypeObject) -> Object {
        Object { refcnt: AtomicIsize::new(1), ty }
    }
}

#[repr(C)]
struct TypeObject {
    header: Object,
    name: &'static str,
}

impl TypeObject {
    const fn new(name: &'static str) -> TypeObject {
        TypeObject { header: Object { refcnt: AtomicIsize::new(1), ty: ptr::null() }, name }
    }
}

/// An int or a bool. `i128` holds every value both `long_from_i64` and `long_from_u64`
/// make, so a result shows which of the two boxed it.
///
/// It also carries what stubs read inline from one-digit ints in either of CPython's
/// layouts (`IntLayout`), derived from `value` as CPython would have it.
#[repr(C)]
struct IntObject {
    header: Object,
    /// 3.11's signed digit count: the value's sign for one digit (-1, 0 or 1), else ±3.
    count: i64,
    /// 3.12's tag: the digit count shifted left by 3, the sign in the two low bits.
    tag: u64,
    /// The magnitude of a one-digit value; a decoy for larger ones, which must not be
    /// read inline.
    digit: u32,
    value: i128,
    /// Stands for an int whose magnitude no `double` can hold: `long_as_f64` fails on it.
    beyond_f64: bool,
}

#[repr(C)]
struct FloatObject {
    header: Object,
    value: f64,
}

const BYTES_CAPACITY: usize = 32;

/// Bytes with their data inline and NUL-terminated, as the stubs pass them to `char *`.
#[repr(C)]
struct BytesObject {
    header: Object,
    length: usize,
    data: [u8; BYTES_CAPACITY],
}

/// What the stub reads per callable: the C function (first word of `memory`) and the
/// host's data for helper conversions.
#[repr(C)]
struct CallableObject {
    header: Object,
    memory: *mut usize,
    data: *mut c_void,
}

static INT_TYPE: TypeObject = TypeObject::new("int");
static BOOL_TYPE: TypeObject = TypeObject::new("bool");
static FLOAT_TYPE: TypeObject = TypeObject::new("float");
static BYTES_TYPE: TypeObject = TypeObject::new("bytes");
static NONE_TYPE: TypeObject = TypeObject::new("NoneType");
static CALLABLE_TYPE: TypeObject = TypeObject::new("callable");
static ERROR_TYPE: TypeObject = TypeObject::new("OverflowError");
static SENTINEL_TYPE: TypeObject = TypeObject::new("fallback result");
static REFERENCE_TYPE: TypeObject = TypeObject::new("CArgObject");
static POINT_TYPE: TypeObject = TypeObject::new("Point");
static OTHER_POINT_TYPE: TypeObject = TypeObject::new("OtherPoint");

static NONE: Object = Object::header(&NONE_TYPE);
/// The pending error while one is set.
static OVERFLOW_ERROR: Object = Object::header(&ERROR_TYPE);
/// What the mock fallback returns, so a test sees the stub returned the fallback's result.
static FALLBACK_RESULT: Object = Object::header(&SENTINEL_TYPE);
/// The "thread state" `save_thread` hands out; `restore_thread` must get it back.
static THREAD_STATE: u8 = 0;
/// The value `errno_swap_in` says it replaced; `errno_swap_out` must get it back.
const SAVED_C_ERRNO: c_int = 0x5eed;

fn leak<T>(object: T) -> *mut Object {
    Box::into_raw(Box::new(object)).cast()
}

fn new_int(value: i128) -> *mut Object {
    leak(int_object(&INT_TYPE, value, false))
}

fn int_beyond_f64() -> *mut Object {
    leak(int_object(&INT_TYPE, 1, true))
}

/// Digits of 30 bits, as CPython's usual build has them.
const ONE_DIGIT: i128 = 1 << 30;

fn int_object(ty: &'static TypeObject, value: i128, beyond_f64: bool) -> IntObject {
    let one_digit = value.abs() < ONE_DIGIT;
    let sign = value.signum();
    let sign_bits = [2, 1, 0][(sign + 1) as usize];
    let digits = if value == 0 {
        0
    } else if one_digit {
        1
    } else {
        3
    };
    IntObject {
        header: Object::header(ty),
        count: (sign * digits) as i64,
        tag: (digits as u64) << 3 | sign_bits,
        digit: if one_digit { value.unsigned_abs() as u32 } else { 0x2bad_beef },
        value,
        beyond_f64,
    }
}

fn new_bool(value: bool) -> *mut Object {
    leak(int_object(&BOOL_TYPE, value.into(), false))
}

fn new_float(value: f64) -> *mut Object {
    leak(FloatObject { header: Object::header(&FLOAT_TYPE), value })
}

fn new_bytes(content: &[u8]) -> *mut Object {
    assert!(content.len() < BYTES_CAPACITY, "mock bytes hold at most {BYTES_CAPACITY} bytes");
    let mut data = [0; BYTES_CAPACITY];
    data[..content.len()].copy_from_slice(content);
    leak(BytesObject { header: Object::header(&BYTES_TYPE), length: content.len(), data })
}

fn none() -> *mut Object {
    static_object(&NONE)
}

fn fallback_result() -> *mut Object {
    static_object(&FALLBACK_RESULT)
}

/// Static objects are only ever changed through their atomic count.
fn static_object(object: &'static Object) -> *mut Object {
    (object as *const Object).cast_mut()
}

/// A callable of `function` with the host data `data`.
fn callable(function: *const (), data: *mut c_void) -> *mut Object {
    let memory = Box::into_raw(Box::new(function as usize));
    leak(CallableObject { header: Object::header(&CALLABLE_TYPE), memory, data })
}

fn type_name(object: *mut Object) -> &'static str {
    assert!(!object.is_null(), "an object, not null");
    // SAFETY: every object of this file starts with a header pointing at a static type.
    unsafe { (*(*object).ty).name }
}

fn refcount(object: *mut Object) -> isize {
    // SAFETY: as in `type_name`.
    unsafe { (*object).refcnt.load(Ordering::Relaxed) }
}

fn int_value(object: *mut Object) -> i128 {
    assert_eq!(type_name(object), "int");
    // SAFETY: an int object, checked above.
    unsafe { (*object.cast::<IntObject>()).value }
}

fn bool_value(object: *mut Object) -> bool {
    assert_eq!(type_name(object), "bool");
    // SAFETY: a bool object, checked above.
    unsafe { (*object.cast::<IntObject>()).value != 0 }
}

fn float_value(object: *mut Object) -> f64 {
    assert_eq!(type_name(object), "float");
    // SAFETY: a float object, checked above.
    unsafe { (*object.cast::<FloatObject>()).value }
}

fn bytes_value(object: *mut Object) -> Vec<u8> {
    assert_eq!(type_name(object), "bytes");
    // SAFETY: a bytes object, checked above.
    let bytes = unsafe { &*object.cast::<BytesObject>() };
    bytes.data[..bytes.length].to_vec()
}

// ---------------------------------------------------------------------------------------
// What happened during a call

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// A C function of this file ran.
    Called(&'static str),
    SaveThread,
    RestoreThread(usize),
    ErrnoSwapIn,
    ErrnoSwapOut(c_int),
    ErrOccurred,
    ErrClear,
    Incref(usize),
    Helper {
        data: usize,
        index: usize,
        object: usize,
        slot_aligned: bool,
    },
    Fallback {
        callable: usize,
        args: usize,
        nargsf: usize,
        kwnames: usize,
    },
}

thread_local! {
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
    static PENDING_ERROR: Cell<*const Object> = const { Cell::new(ptr::null()) };
    /// Calls of `long_as_u64_mask` (not an event: ints of one digit skip it).
    static LONG_AS_U64_CALLS: Cell<usize> = const { Cell::new(0) };
}

fn record(event: Event) {
    EVENTS.with_borrow_mut(|events| events.push(event));
}

fn set_error() {
    PENDING_ERROR.set(&OVERFLOW_ERROR);
}

fn error_pending() -> bool {
    !PENDING_ERROR.get().is_null()
}

// ---------------------------------------------------------------------------------------
// The mock runtime

/// The stub passes only exact ints here.
unsafe extern "C" fn long_as_u64_mask(object: *mut Object) -> u64 {
    LONG_AS_U64_CALLS.set(LONG_AS_U64_CALLS.get() + 1);
    // SAFETY: an int object, by the stub's type guard.
    unsafe { (*object.cast::<IntObject>()).value as u64 }
}

unsafe extern "C" fn long_as_f64(object: *mut Object) -> f64 {
    // SAFETY: an int object, by the stub's type guard.
    let int = unsafe { &*object.cast::<IntObject>() };
    if int.beyond_f64 {
        set_error();
        return -1.0;
    }
    int.value as f64
}

extern "C" fn err_occurred() -> *const Object {
    record(Event::ErrOccurred);
    PENDING_ERROR.get()
}

extern "C" fn err_clear() {
    record(Event::ErrClear);
    PENDING_ERROR.set(ptr::null());
}

/// The stub passes only exact ints and bools here.
unsafe extern "C" fn is_true(object: *mut Object) -> c_int {
    // SAFETY: an int or bool object, by the stub's type guard.
    c_int::from(unsafe { (*object.cast::<IntObject>()).value } != 0)
}

extern "C" fn long_from_i64(value: i64) -> *mut Object {
    new_int(value.into())
}

extern "C" fn long_from_u64(value: u64) -> *mut Object {
    new_int(value.into())
}

extern "C" fn float_from_f64(value: f64) -> *mut Object {
    new_float(value)
}

extern "C" fn bool_from_long(value: c_long) -> *mut Object {
    new_bool(value != 0)
}

unsafe extern "C" fn bytes_from_c_string(text: *const c_char) -> *mut Object {
    // SAFETY: the stub passes only non-null results of `char *` functions, NUL-terminated.
    new_bytes(unsafe { CStr::from_ptr(text) }.to_bytes())
}

unsafe extern "C" fn incref(object: *mut Object) {
    record(Event::Incref(object as usize));
    // SAFETY: the stub increfs only `None`, a live static.
    unsafe { (*object).refcnt.fetch_add(1, Ordering::Relaxed) };
}

extern "C" fn save_thread() -> *const u8 {
    record(Event::SaveThread);
    &THREAD_STATE
}

extern "C" fn restore_thread(state: *const u8) {
    record(Event::RestoreThread(state as usize));
}

extern "C" fn errno_swap_in() -> c_int {
    record(Event::ErrnoSwapIn);
    SAVED_C_ERRNO
}

extern "C" fn errno_swap_out(saved: c_int) {
    record(Event::ErrnoSwapOut(saved));
}

/// What the mock `convert_helper` does for one argument index.
#[derive(Clone, Copy, Debug)]
enum HelperAction {
    /// Writes this word into the stub's slot and returns the slot.
    WriteToSlot(u64),
    /// Returns this storage (e.g. a struct's own memory), leaving the slot alone.
    Storage(*const c_void),
    /// Returns null: the stub must fall back.
    Refuse,
}

/// A callable's data for helper conversions: the classes its `Reference` arguments'
/// referenced objects must have (`ReferenceLayout::data_targets_offset`), and the
/// helper's action per argument index (any other index refuses).
#[repr(C)]
struct HelperData {
    reference_targets: *const usize,
    actions: Vec<(usize, HelperAction)>,
}

fn helper_data(actions: &[(usize, HelperAction)]) -> *mut c_void {
    helper_data_expecting(&[], actions)
}

/// Helper data whose `Reference` argument `i` expects the class `targets[i]`.
fn helper_data_expecting(
    targets: &[&'static TypeObject],
    actions: &[(usize, HelperAction)],
) -> *mut c_void {
    let targets: Vec<usize> =
        targets.iter().map(|class| *class as *const TypeObject as usize).collect();
    let reference_targets = Box::leak(targets.into_boxed_slice()).as_ptr();
    Box::into_raw(Box::new(HelperData { reference_targets, actions: actions.to_vec() })).cast()
}

/// A by-reference object (ctypes' `byref(x)`): what it refers to and the address it passes.
#[repr(C)]
struct ReferenceObject {
    header: Object,
    tag: u32,
    referenced: *mut Object,
    address: u64,
}

/// The tag of a plain reference (others are values converted by `from_param`).
const REFERENCE_TAG: u32 = 'P' as u32;

fn new_reference(tag: u32, referenced: *mut Object, address: u64) -> *mut Object {
    leak(ReferenceObject { header: Object::header(&REFERENCE_TYPE), tag, referenced, address })
}

/// An instance of `class` (its contents are never read).
fn new_instance(class: &'static TypeObject) -> *mut Object {
    leak(Object::header(class))
}

/// The stub's storage for one converted argument: 16 bytes aligned to 16 (enough for any
/// scalar and `long double`), the same storage the host's helper writes into.
#[repr(C, align(16))]
struct Slot([u8; 16]);

impl Slot {
    fn holding(word: u64) -> Slot {
        let mut slot = Slot([0; 16]);
        slot.0[..8].copy_from_slice(&word.to_ne_bytes());
        slot
    }
}

unsafe extern "C" fn convert_helper(
    data: *mut c_void,
    index: usize,
    object: *mut Object,
    slot: *mut Slot,
) -> *const c_void {
    let slot_aligned = !slot.is_null() && slot.is_aligned();
    record(Event::Helper { data: data as usize, index, object: object as usize, slot_aligned });
    if !slot_aligned {
        // Writing a `Slot` there would be undefined; the recorded event fails the test.
        return ptr::null();
    }
    // SAFETY: every callable with helper conversions has data made by `helper_data`.
    let actions = unsafe { &(*data.cast::<HelperData>()).actions };
    let action = actions.iter().find(|(at, _)| *at == index).map(|(_, action)| *action);
    match action.unwrap_or(HelperAction::Refuse) {
        HelperAction::WriteToSlot(word) => {
            // SAFETY: a slot, checked non-null and aligned above.
            unsafe { slot.write(Slot::holding(word)) };
            slot.cast()
        }
        HelperAction::Storage(storage) => storage,
        HelperAction::Refuse => ptr::null(),
    }
}

extern "C" fn fallback(
    callable: *mut Object,
    args: *const *mut Object,
    nargsf: usize,
    kwnames: *mut Object,
) -> *mut Object {
    record(Event::Fallback {
        callable: callable as usize,
        args: args as usize,
        nargsf,
        kwnames: kwnames as usize,
    });
    fallback_result()
}

/// The switch of every stub but the one test that turns its own switch off.
static ENABLED: AtomicU8 = AtomicU8::new(1);

fn runtime() -> EntryRuntime {
    runtime_switched_by(&ENABLED)
}

fn runtime_switched_by(switch: &'static AtomicU8) -> EntryRuntime {
    let address = |object: &'static TypeObject| object as *const TypeObject as usize;
    EntryRuntime {
        type_offset: offset_of!(Object, ty) as i32,
        float_value_offset: offset_of!(FloatObject, value) as i32,
        bytes_data_offset: offset_of!(BytesObject, data) as i32,
        int_type: address(&INT_TYPE),
        bool_type: address(&BOOL_TYPE),
        float_type: address(&FLOAT_TYPE),
        bytes_type: address(&BYTES_TYPE),
        none: none() as usize,
        callable_memory_offset: offset_of!(CallableObject, memory) as i32,
        callable_data_offset: offset_of!(CallableObject, data) as i32,
        enabled_flag: switch as *const AtomicU8 as usize,
        int_layout: IntLayout::SignedCount {
            count: offset_of!(IntObject, count) as i32,
            digit: offset_of!(IntObject, digit) as i32,
        },
        long_as_u64_mask: long_as_u64_mask as *const () as usize,
        long_as_f64: long_as_f64 as *const () as usize,
        err_occurred: err_occurred as *const () as usize,
        err_clear: err_clear as *const () as usize,
        is_true: is_true as *const () as usize,
        long_from_i64: long_from_i64 as *const () as usize,
        long_from_u64: long_from_u64 as *const () as usize,
        float_from_f64: float_from_f64 as *const () as usize,
        bool_from_long: bool_from_long as *const () as usize,
        bytes_from_c_string: bytes_from_c_string as *const () as usize,
        incref: incref as *const () as usize,
        save_thread: save_thread as *const () as usize,
        restore_thread: restore_thread as *const () as usize,
        errno_swap_in: errno_swap_in as *const () as usize,
        errno_swap_out: errno_swap_out as *const () as usize,
        convert_helper: convert_helper as *const () as usize,
        reference: Some(ReferenceLayout {
            ty: address(&REFERENCE_TYPE),
            tag_offset: offset_of!(ReferenceObject, tag) as i32,
            tag: REFERENCE_TAG,
            object_offset: offset_of!(ReferenceObject, referenced) as i32,
            address_offset: offset_of!(ReferenceObject, address) as i32,
            data_targets_offset: offset_of!(HelperData, reference_targets) as i32,
        }),
        fallback: fallback as *const () as usize,
    }
}

// ---------------------------------------------------------------------------------------
// The C functions the stubs call

fn called(name: &'static str) {
    record(Event::Called(name));
}

extern "C" fn add_i32(a: i32, b: i32) -> i32 {
    called("add_i32");
    a.wrapping_add(b)
}

extern "C" fn identity_i8(value: i8) -> i8 {
    called("identity_i8");
    value
}

extern "C" fn identity_u8(value: u8) -> u8 {
    called("identity_u8");
    value
}

extern "C" fn identity_i16(value: i16) -> i16 {
    called("identity_i16");
    value
}

extern "C" fn identity_u32(value: u32) -> u32 {
    called("identity_u32");
    value
}

extern "C" fn identity_i64(value: i64) -> i64 {
    called("identity_i64");
    value
}

extern "C" fn identity_u64(value: u64) -> u64 {
    called("identity_u64");
    value
}

extern "C" fn add_f64(a: f64, b: f64) -> f64 {
    called("add_f64");
    a + b
}

extern "C" fn mul_f32(a: f32, b: f32) -> f32 {
    called("mul_f32");
    a * b
}

extern "C" fn not_bool(value: bool) -> bool {
    called("not_bool");
    !value
}

/// -1 for a null pointer.
unsafe extern "C" fn c_string_length(text: *const c_char) -> i64 {
    called("c_string_length");
    if text.is_null() {
        return -1;
    }
    // SAFETY: the stub passes a bytes object's NUL-terminated data.
    unsafe { CStr::from_ptr(text) }.to_bytes().len() as i64
}

extern "C" fn c_string_or_null(want_text: bool) -> *const c_char {
    called("c_string_or_null");
    if want_text {
        c"result".as_ptr()
    } else {
        ptr::null()
    }
}

extern "C" fn identity_pointer(pointer: *mut c_void) -> *mut c_void {
    called("identity_pointer");
    pointer
}

extern "C" fn identity_second_pointer(_first: i32, pointer: *mut c_void) -> *mut c_void {
    called("identity_second_pointer");
    pointer
}

extern "C" fn do_nothing() {
    called("do_nothing");
}

/// Like interpreter API: returns its argument, and sets an error when it is negative.
extern "C" fn fail_if_negative(value: i32) -> i32 {
    called("fail_if_negative");
    if value < 0 {
        set_error();
    }
    value
}

/// Σ (position + 1) × argument, so that a value in the wrong place changes the sum.
/// Eight integers and nine doubles: two of each overflow their registers onto the stack.
#[allow(clippy::too_many_arguments)] // the point of the function
extern "C" fn interleaved_weighted_sum(
    i0: i64,
    d0: f64,
    i1: i64,
    d1: f64,
    i2: i64,
    d2: f64,
    i3: i64,
    d3: f64,
    i4: i64,
    d4: f64,
    i5: i64,
    d5: f64,
    i6: i64,
    d6: f64,
    i7: i64,
    d7: f64,
    d8: f64,
) -> f64 {
    called("interleaved_weighted_sum");
    let ints = [i0, i1, i2, i3, i4, i5, i6, i7];
    let doubles = [d0, d1, d2, d3, d4, d5, d6, d7];
    let pairs = ints.iter().zip(doubles).enumerate();
    let sum: f64 =
        pairs.map(|(k, (&i, d))| (2 * k + 1) as f64 * i as f64 + (2 * k + 2) as f64 * d).sum();
    sum + 17.0 * d8
}

/// Passed in two registers of different classes.
#[repr(C)]
#[derive(Clone, Copy)]
struct Pair {
    count: i64,
    fraction: f64,
}

/// Passed in memory, on the stack.
#[repr(C)]
#[derive(Clone, Copy)]
struct Quad {
    words: [i64; 4],
}

extern "C" fn pair_and_quad(scale: i32, pair: Pair, quad: Quad) -> f64 {
    called("pair_and_quad");
    let weighted: i64 = quad.words.iter().zip(1..).map(|(word, weight)| word * weight).sum();
    f64::from(scale) * (pair.count as f64 + pair.fraction) + weighted as f64
}

// ---------------------------------------------------------------------------------------
// Compiling and calling

/// A shape that keeps the lock and neither checks errors nor swaps errno.
fn shape(ret: Type, result: ResultBoxing, args: &[(Type, ArgConversion)]) -> EntryShape {
    let (types, conversions) = args.iter().cloned().unzip();
    EntryShape {
        signature: Signature::new(ret, types).expect("a valid test signature"),
        args: conversions,
        result,
        release_gil: false,
        check_error: false,
        use_errno: false,
    }
}

fn compile(cache: &StubCache, shape: &EntryShape) -> CompiledEntry {
    cache.entry(shape, &runtime()).unwrap_or_else(|reason| panic!("{}: {reason}", describe(shape)))
}

/// Calls the stub as the interpreter does; returns its result and what happened meanwhile.
fn vectorcall(
    entry: &CompiledEntry,
    callable: *mut Object,
    args: *const *mut Object,
    nargsf: usize,
    kwnames: *mut Object,
) -> (*mut Object, Vec<Event>) {
    EVENTS.with_borrow_mut(Vec::clear);
    // SAFETY: `callable` is a mock callable of a C function of the stub's signature (or of
    // none at all: a null address), `args` holds the objects the count says (when it is
    // the stub's), and every runtime function matches its `EntryRuntime` contract.
    let result = unsafe { (entry.entry)(callable.cast(), args.cast(), nargsf, kwnames.cast()) };
    (result.cast(), EVENTS.take())
}

/// A call with these positional arguments and no keywords.
fn call(
    entry: &CompiledEntry,
    callable: *mut Object,
    args: &[*mut Object],
) -> (*mut Object, Vec<Event>) {
    vectorcall(entry, callable, args.as_ptr(), args.len(), ptr::null_mut())
}

/// A call with these arguments that must reach the C function `name` and nothing else.
fn call_plainly(
    entry: &CompiledEntry,
    callable: *mut Object,
    name: &'static str,
    args: &[*mut Object],
) -> *mut Object {
    let (result, events) = call(entry, callable, args);
    assert_eq!(events, [Event::Called(name)]);
    result
}

/// Calls the stub and asserts it handed the call, with its four arguments unchanged, to
/// the fallback, before anything of the C call happened; returns what happened.
fn assert_falls_back(
    entry: &CompiledEntry,
    callable: *mut Object,
    args: *const *mut Object,
    nargsf: usize,
    kwnames: *mut Object,
) -> Vec<Event> {
    let (result, events) = vectorcall(entry, callable, args, nargsf, kwnames);
    assert_eq!(result, fallback_result(), "{events:?}");
    let handed_over = Event::Fallback {
        callable: callable as usize,
        args: args as usize,
        nargsf,
        kwnames: kwnames as usize,
    };
    assert_eq!(events.last(), Some(&handed_over));
    let c_call_began =
        |event: &Event| matches!(event, Event::Called(_) | Event::SaveThread | Event::ErrnoSwapIn);
    assert!(!events.iter().any(c_call_began), "{events:?}");
    events
}

fn assert_args_fall_back(entry: &CompiledEntry, callable: *mut Object, args: &[*mut Object]) {
    assert_falls_back(entry, callable, args.as_ptr(), args.len(), ptr::null_mut());
}

/// The shape of `add_i32`, the most common one here.
fn add_i32_shape() -> EntryShape {
    shape(Type::I32, ResultBoxing::Signed, &[(Type::I32, int_arg(4)), (Type::I32, int_arg(4))])
}

fn int_arg(bytes: u8) -> ArgConversion {
    ArgConversion::Int { bytes }
}

fn float_arg(bytes: u8) -> ArgConversion {
    ArgConversion::Float { bytes }
}

/// The high bit of `nargsf` (CPython's `PY_VECTORCALL_ARGUMENTS_OFFSET`).
const ARGUMENTS_OFFSET: usize = 1 << 63;

// ---------------------------------------------------------------------------------------
// Conversions and results

#[test]
fn integer_results_are_boxed_sign_or_zero_extended() {
    let cache = StubCache::new();
    let entry = compile(&cache, &add_i32_shape());
    let add = callable(add_i32 as *const (), ptr::null_mut());
    let sum = call_plainly(&entry, add, "add_i32", &[new_int(40), new_int(2)]);
    assert_eq!(int_value(sum), 42);
    let sum = call_plainly(&entry, add, "add_i32", &[new_int(-40), new_int(2)]);
    assert_eq!(int_value(sum), -38);

    let cases = [
        (Type::U32, ResultBoxing::Unsigned, -1, 0xffff_ffff),
        (Type::I64, ResultBoxing::Signed, -7, -7),
        (Type::I64, ResultBoxing::Signed, 1 << 63, i64::MIN.into()),
        (Type::U64, ResultBoxing::Unsigned, -1, u64::MAX.into()),
    ];
    for (ty, boxing, argument, expected) in cases {
        assert_eq!(through_identity(&cache, ty.clone(), boxing, argument), expected, "{ty}");
    }
}

#[test]
fn integer_arguments_wrap_modulo_their_width_and_results_sign_extend() {
    let cache = StubCache::new();
    let cases = [
        (Type::U8, ResultBoxing::Unsigned, 257, 1),
        (Type::U8, ResultBoxing::Unsigned, -1, 255),
        (Type::I8, ResultBoxing::Signed, 255, -1),
        (Type::I8, ResultBoxing::Signed, -129, 127),
        (Type::I16, ResultBoxing::Signed, 0x1_8000, -0x8000),
        (Type::U64, ResultBoxing::Unsigned, (1 << 64) + 5, 5),
        (Type::I64, ResultBoxing::Signed, -(1 << 64) - 3, -3),
    ];
    for (ty, boxing, argument, expected) in cases {
        assert_eq!(through_identity(&cache, ty.clone(), boxing, argument), expected, "{ty}");
    }
}

/// Passes the int `argument` through the identity function of the integer type `ty`;
/// returns the value of the result, boxed as `boxing` says.
fn through_identity(cache: &StubCache, ty: Type, boxing: ResultBoxing, argument: i128) -> i128 {
    let (function, name): (*const (), _) = match ty {
        Type::I8 => (identity_i8 as *const (), "identity_i8"),
        Type::U8 => (identity_u8 as *const (), "identity_u8"),
        Type::I16 => (identity_i16 as *const (), "identity_i16"),
        Type::U32 => (identity_u32 as *const (), "identity_u32"),
        Type::I64 => (identity_i64 as *const (), "identity_i64"),
        Type::U64 => (identity_u64 as *const (), "identity_u64"),
        other => unreachable!("no identity function of {other}"),
    };
    let bytes = ty.size() as u8;
    let entry = compile(cache, &shape(ty.clone(), boxing, &[(ty, int_arg(bytes))]));
    let identity = callable(function, ptr::null_mut());
    int_value(call_plainly(&entry, identity, name, &[new_int(argument)]))
}

#[test]
fn one_digit_ints_are_read_inline_in_both_layouts_and_others_through_the_runtime() {
    let layouts = [
        IntLayout::SignedCount {
            count: offset_of!(IntObject, count) as i32,
            digit: offset_of!(IntObject, digit) as i32,
        },
        IntLayout::Tagged {
            tag: offset_of!(IntObject, tag) as i32,
            digit: offset_of!(IntObject, digit) as i32,
        },
        IntLayout::Opaque,
    ];
    let values = [
        0,
        1,
        -1,
        300,
        -300,
        ONE_DIGIT - 1,
        1 - ONE_DIGIT,
        ONE_DIGIT,
        -ONE_DIGIT,
        1 << 40,
        -(1 << 62),
        (1 << 64) + 5,
        -(1 << 64) - 3,
    ];
    for layout in layouts {
        let cache = StubCache::new();
        let runtime = EntryRuntime { int_layout: layout, ..runtime() };
        let compile = |ty: Type, boxing| {
            let shape = shape(ty.clone(), boxing, &[(ty.clone(), int_arg(ty.size() as u8))]);
            cache.entry(&shape, &runtime).unwrap()
        };
        let (to_i64, to_u8) =
            (compile(Type::I64, ResultBoxing::Signed), compile(Type::U8, ResultBoxing::Unsigned));
        let identity_i64 = callable(identity_i64 as *const (), ptr::null_mut());
        let identity_u8 = callable(identity_u8 as *const (), ptr::null_mut());
        for value in values {
            LONG_AS_U64_CALLS.set(0);
            let wide = call_plainly(&to_i64, identity_i64, "identity_i64", &[new_int(value)]);
            let narrow = call_plainly(&to_u8, identity_u8, "identity_u8", &[new_int(value)]);
            assert_eq!(int_value(wide), i128::from(value as i64), "{layout:?} {value}");
            assert_eq!(int_value(narrow), i128::from(value as u8), "{layout:?} {value}");
            let inline = layout != IntLayout::Opaque && value.abs() < ONE_DIGIT;
            let expected_calls = if inline { 0 } else { 2 };
            assert_eq!(LONG_AS_U64_CALLS.get(), expected_calls, "{layout:?} {value}");
        }
    }
}

#[test]
fn float_arguments_take_floats_in_place_and_ints_through_the_runtime() {
    let cache = StubCache::new();
    let add = shape(
        Type::F64,
        ResultBoxing::Float,
        &[(Type::F64, float_arg(8)), (Type::F64, float_arg(8))],
    );
    let entry = compile(&cache, &add);
    let add = callable(add_f64 as *const (), ptr::null_mut());
    let sum = call_plainly(&entry, add, "add_f64", &[new_float(1.25), new_float(0.5)]);
    assert_eq!(float_value(sum), 1.75);
    let sum = call_plainly(&entry, add, "add_f64", &[new_int(2), new_float(0.5)]);
    assert_eq!(float_value(sum), 2.5);

    // -1.0 is also `long_as_f64`'s error value: the stub asks, finds no error and goes on.
    let (sum, events) = call(&entry, add, &[new_int(-1), new_float(0.25)]);
    assert_eq!(events, [Event::ErrOccurred, Event::Called("add_f64")]);
    assert_eq!(float_value(sum), -0.75);
}

#[test]
fn f32_arguments_and_results_round_to_single_precision() {
    let cache = StubCache::new();
    let mul = shape(
        Type::F32,
        ResultBoxing::Float,
        &[(Type::F32, float_arg(4)), (Type::F32, float_arg(4))],
    );
    let entry = compile(&cache, &mul);
    let mul = callable(mul_f32 as *const (), ptr::null_mut());
    let product = call_plainly(&entry, mul, "mul_f32", &[new_float(0.1), new_int(3)]);
    assert_eq!(float_value(product), f64::from(0.1f32 * 3.0f32));
    assert_ne!(float_value(product), 0.1 * 3.0, "computed in single precision");
    let product = call_plainly(&entry, mul, "mul_f32", &[new_float(1.5), new_float(-2.0)]);
    assert_eq!(float_value(product), -3.0);
}

#[test]
fn bool_arguments_take_truth_values_and_bool_results_box_as_bools() {
    let cache = StubCache::new();
    let entry = compile(
        &cache,
        &shape(Type::Bool, ResultBoxing::Bool, &[(Type::Bool, ArgConversion::Bool)]),
    );
    let not = callable(not_bool as *const (), ptr::null_mut());
    for (argument, expected) in
        [(new_bool(true), false), (new_bool(false), true), (new_int(0), true), (new_int(7), false)]
    {
        let result = call_plainly(&entry, not, "not_bool", &[argument]);
        assert_eq!(bool_value(result), expected, "not {}", type_name(argument));
    }
}

#[test]
fn char_pointer_arguments_pass_bytes_data_or_null_for_none() {
    let cache = StubCache::new();
    let entry = compile(
        &cache,
        &shape(Type::I64, ResultBoxing::Signed, &[(Type::Pointer, ArgConversion::CharPointer)]),
    );
    let length = callable(c_string_length as *const (), ptr::null_mut());
    let result = call_plainly(&entry, length, "c_string_length", &[new_bytes(b"hello")]);
    assert_eq!(int_value(result), 5);
    let result = call_plainly(&entry, length, "c_string_length", &[new_bytes(b"")]);
    assert_eq!(int_value(result), 0);
    let result = call_plainly(&entry, length, "c_string_length", &[none()]);
    assert_eq!(int_value(result), -1);
}

#[test]
fn char_pointer_results_box_as_bytes_or_a_new_reference_to_none() {
    let cache = StubCache::new();
    let entry = compile(
        &cache,
        &shape(Type::Pointer, ResultBoxing::CharPointer, &[(Type::Bool, ArgConversion::Bool)]),
    );
    let text_or_null = callable(c_string_or_null as *const (), ptr::null_mut());
    let text = call_plainly(&entry, text_or_null, "c_string_or_null", &[new_bool(true)]);
    assert_eq!(bytes_value(text), b"result");

    let (result, events) = call(&entry, text_or_null, &[new_bool(false)]);
    assert_eq!(result, none());
    assert_eq!(events, [Event::Called("c_string_or_null"), Event::Incref(none() as usize)]);
}

#[test]
fn void_pointers_pass_none_ints_and_bytes_inline_and_box_as_ints_or_none() {
    let cache = StubCache::new();
    let entry = compile(
        &cache,
        &shape(
            Type::Pointer,
            ResultBoxing::VoidPointer,
            &[(Type::Pointer, ArgConversion::VoidPointer)],
        ),
    );
    let identity = callable(identity_pointer as *const (), ptr::null_mut());

    let (result, events) = call(&entry, identity, &[none()]);
    assert_eq!(result, none());
    assert_eq!(events, [Event::Called("identity_pointer"), Event::Incref(none() as usize)]);

    let result = call_plainly(&entry, identity, "identity_pointer", &[new_int(0x1234)]);
    assert_eq!(int_value(result), 0x1234);
    let result = call_plainly(&entry, identity, "identity_pointer", &[new_int(-1)]);
    assert_eq!(int_value(result), u64::MAX.into(), "modulo 2**64, boxed unsigned");

    let bytes = new_bytes(b"data");
    let result = call_plainly(&entry, identity, "identity_pointer", &[bytes]);
    let data = bytes as usize + offset_of!(BytesObject, data);
    assert_eq!(int_value(result), data as i128);
}

#[test]
fn void_pointers_of_other_objects_go_through_the_helper() {
    let cache = StubCache::new();
    let entry = compile(
        &cache,
        &shape(
            Type::Pointer,
            ResultBoxing::VoidPointer,
            &[(Type::Pointer, ArgConversion::VoidPointer)],
        ),
    );
    let data = helper_data(&[(0, HelperAction::WriteToSlot(0xdead_beef))]);
    let identity = callable(identity_pointer as *const (), data);
    let other = new_float(1.0);
    let (result, events) = call(&entry, identity, &[other]);
    let helped =
        Event::Helper { data: data as usize, index: 0, object: other as usize, slot_aligned: true };
    assert_eq!(events, [helped, Event::Called("identity_pointer")]);
    assert_eq!(int_value(result), 0xdead_beef);

    let refusing = callable(identity_pointer as *const (), helper_data(&[]));
    let events = assert_falls_back(&entry, refusing, [other].as_ptr(), 1, ptr::null_mut());
    assert!(matches!(events[0], Event::Helper { index: 0, .. }), "{events:?}");
}

#[test]
fn void_functions_return_a_new_reference_to_none() {
    let cache = StubCache::new();
    let entry = compile(&cache, &shape(Type::Void, ResultBoxing::None, &[]));
    let before = refcount(none());
    let (result, events) = call(&entry, callable(do_nothing as *const (), ptr::null_mut()), &[]);
    assert_eq!(result, none());
    assert_eq!(events, [Event::Called("do_nothing"), Event::Incref(none() as usize)]);
    // Other tests may incref `None` meanwhile; none ever decrefs it.
    assert!(refcount(none()) > before);
}

#[test]
fn arguments_beyond_the_registers_arrive_in_order_on_the_stack() {
    let cache = StubCache::new();
    let mut args = Vec::new();
    let mut objects = Vec::new();
    let mut expected = 0.0;
    // Integers at the even positions up to 14, doubles at the odd ones and at 16.
    for position in 0..17 {
        let weight = (position + 1) as f64;
        if position < 16 && position % 2 == 0 {
            let value = 100 + position as i64;
            args.push((Type::I64, int_arg(8)));
            objects.push(new_int(value.into()));
            expected += weight * value as f64;
        } else {
            let value = 0.5 + position as f64;
            args.push((Type::F64, float_arg(8)));
            objects.push(new_float(value));
            expected += weight * value;
        }
    }
    let entry = compile(&cache, &shape(Type::F64, ResultBoxing::Float, &args));
    let sum = callable(interleaved_weighted_sum as *const (), ptr::null_mut());
    let result = call_plainly(&entry, sum, "interleaved_weighted_sum", &objects);
    assert_eq!(float_value(result), expected);
}

#[test]
fn structs_by_value_are_read_from_the_storage_the_helper_returns() {
    let cache = StubCache::new();
    let pair_type = Type::aggregate(Aggregate::c_struct(vec![Type::I64, Type::F64]).unwrap());
    let quad_type = Type::aggregate(Aggregate::c_struct(vec![Type::I64; 4]).unwrap());
    let shape = shape(
        Type::F64,
        ResultBoxing::Float,
        &[
            (Type::I32, int_arg(4)),
            (pair_type, ArgConversion::Helper),
            (quad_type, ArgConversion::Helper),
        ],
    );
    let entry = compile(&cache, &shape);
    let pair = Box::leak(Box::new(Pair { count: 3, fraction: 0.5 }));
    let quad = Box::leak(Box::new(Quad { words: [1, 2, 3, 4] }));
    let data = helper_data(&[
        (1, HelperAction::Storage((pair as *const Pair).cast())),
        (2, HelperAction::Storage((quad as *const Quad).cast())),
    ]);
    let function = callable(pair_and_quad as *const (), data);
    // Stand-ins for the interpreter's struct instances; only the helper looks at them.
    let (pair_object, quad_object) = (new_bytes(b"pair"), new_bytes(b"quad"));
    let (result, events) = call(&entry, function, &[new_int(10), pair_object, quad_object]);
    let helped = |index, object: *mut Object| Event::Helper {
        data: data as usize,
        index,
        object: object as usize,
        slot_aligned: true,
    };
    assert_eq!(
        events,
        [helped(1, pair_object), helped(2, quad_object), Event::Called("pair_and_quad")]
    );
    assert_eq!(float_value(result), 10.0 * 3.5 + (1 + 2 * 2 + 3 * 3 + 4 * 4) as f64);

    // The second helper refuses after the first converted: nothing is called.
    let half_converted = helper_data(&[(1, HelperAction::Storage((pair as *const Pair).cast()))]);
    let function = callable(pair_and_quad as *const (), half_converted);
    let args = [new_int(10), pair_object, quad_object];
    let events = assert_falls_back(&entry, function, args.as_ptr(), 3, ptr::null_mut());
    let indices: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            Event::Helper { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(indices, [1, 2]);
}

#[test]
fn helper_values_written_into_the_slot_are_passed() {
    let cache = StubCache::new();
    let shape = shape(
        Type::I32,
        ResultBoxing::Signed,
        &[(Type::I32, ArgConversion::Helper), (Type::I32, int_arg(4))],
    );
    let entry = compile(&cache, &shape);
    let data = helper_data(&[(0, HelperAction::WriteToSlot(1000))]);
    let add = callable(add_i32 as *const (), data);
    let instance = new_bytes(b"c_int(1000)");
    let (result, events) = call(&entry, add, &[instance, new_int(24)]);
    let helped = Event::Helper {
        data: data as usize,
        index: 0,
        object: instance as usize,
        slot_aligned: true,
    };
    assert_eq!(events, [helped, Event::Called("add_i32")]);
    assert_eq!(int_value(result), 1024);
}

#[test]
fn references_to_the_expected_class_pass_their_address_inline_and_others_go_to_the_helper() {
    let cache = StubCache::new();
    let pointer_arg = (Type::Pointer, ArgConversion::Reference);
    let shape =
        shape(Type::Pointer, ResultBoxing::Unsigned, &[(Type::I32, int_arg(4)), pointer_arg]);
    let entry = compile(&cache, &shape);
    let expecting_point = |action| {
        let data = helper_data_expecting(&[&INT_TYPE, &POINT_TYPE], &[(1, action)]);
        (data, callable(identity_second_pointer as *const (), data))
    };
    let (_, function) = expecting_point(HelperAction::Refuse);

    // byref(point): the address it holds, with no helper call.
    let point = new_reference(REFERENCE_TAG, new_instance(&POINT_TYPE), 0x1000);
    let result = call_plainly(&entry, function, "identity_second_pointer", &[new_int(1), point]);
    assert_eq!(int_value(result), 0x1000);

    // Another class, another kind of tagged value, or no reference at all: the helper
    // decides (here it refuses, so the call falls back).
    let others = [
        new_reference(REFERENCE_TAG, new_instance(&OTHER_POINT_TYPE), 0x2000),
        new_reference('i' as u32, new_instance(&POINT_TYPE), 0x3000),
        new_instance(&POINT_TYPE),
        none(),
    ];
    for other in others {
        let events = assert_falls_back_with(&entry, function, &[new_int(1), other]);
        assert!(matches!(events[0], Event::Helper { index: 1, .. }), "{events:?}");
    }

    // What the helper converts is passed.
    let (data, helped) = expecting_point(HelperAction::WriteToSlot(0x4000));
    let other = new_reference(REFERENCE_TAG, new_instance(&OTHER_POINT_TYPE), 0x2000);
    let (result, events) = call(&entry, helped, &[new_int(1), other]);
    let helper =
        Event::Helper { data: data as usize, index: 1, object: other as usize, slot_aligned: true };
    assert_eq!(events, [helper, Event::Called("identity_second_pointer")]);
    assert_eq!(int_value(result), 0x4000);

    // A host without a reference layout: every argument through the helper.
    let runtime = EntryRuntime { reference: None, ..runtime() };
    let without = cache.entry(&shape, &runtime).expect("compiles");
    let (result, events) = call(&without, helped, &[new_int(1), point]);
    let helper =
        Event::Helper { data: data as usize, index: 1, object: point as usize, slot_aligned: true };
    assert_eq!(events, [helper, Event::Called("identity_second_pointer")]);
    assert_eq!(int_value(result), 0x4000);
}

/// `assert_args_fall_back`, returning what happened.
fn assert_falls_back_with(
    entry: &CompiledEntry,
    callable: *mut Object,
    args: &[*mut Object],
) -> Vec<Event> {
    assert_falls_back(entry, callable, args.as_ptr(), args.len(), ptr::null_mut())
}

// ---------------------------------------------------------------------------------------
// Guards: every unusual call goes to the fallback, unchanged

#[test]
fn arguments_of_unrecognised_types_fall_back() {
    let cache = StubCache::new();
    let cases: [(Type, ArgConversion, Vec<*mut Object>); 5] = [
        (Type::I32, int_arg(4), vec![new_float(1.0), new_bool(true), new_bytes(b"1"), none()]),
        (Type::Bool, ArgConversion::Bool, vec![new_float(1.0), new_bytes(b""), none()]),
        (Type::F64, float_arg(8), vec![new_bool(true), new_bytes(b"1.0"), none()]),
        (Type::Pointer, ArgConversion::CharPointer, vec![new_int(0), new_float(0.0)]),
        (Type::Pointer, ArgConversion::Helper, vec![new_int(0), none()]),
    ];
    // The C function is never reached; were it, `assert_falls_back` would see it called.
    let function = callable(do_nothing as *const (), helper_data(&[]));
    for (ty, conversion, rejected) in cases {
        let entry = compile(&cache, &shape(Type::Void, ResultBoxing::None, &[(ty, conversion)]));
        for object in rejected {
            assert_args_fall_back(&entry, function, &[object]);
        }
    }

    // A later argument's guard fails after an earlier argument was converted.
    let entry = compile(&cache, &add_i32_shape());
    let add = callable(add_i32 as *const (), ptr::null_mut());
    assert_args_fall_back(&entry, add, &[new_int(1), new_float(2.0)]);
}

#[test]
fn wrong_argument_counts_fall_back() {
    let cache = StubCache::new();
    let entry = compile(&cache, &add_i32_shape());
    let add = callable(add_i32 as *const (), ptr::null_mut());
    assert_args_fall_back(&entry, add, &[]);
    assert_args_fall_back(&entry, add, &[new_int(1)]);
    assert_args_fall_back(&entry, add, &[new_int(1), new_int(2), new_int(3)]);
}

#[test]
fn keyword_arguments_fall_back() {
    let cache = StubCache::new();
    let entry = compile(&cache, &add_i32_shape());
    let add = callable(add_i32 as *const (), ptr::null_mut());
    // One positional and one keyword argument: the count alone would pass as two.
    let args = [new_int(1), new_int(2)];
    let kwnames = new_bytes(b"('b',)");
    assert_falls_back(&entry, add, args.as_ptr(), 2, kwnames);
    assert_falls_back(&entry, add, args.as_ptr(), 1, kwnames);
}

#[test]
fn the_arguments_offset_flag_is_not_part_of_the_count() {
    let cache = StubCache::new();
    let entry = compile(&cache, &add_i32_shape());
    let add = callable(add_i32 as *const (), ptr::null_mut());
    // The flag allows the callee to overwrite `args[-1]`, so the array has a spare slot.
    let with_spare = [ptr::null_mut(), new_int(40), new_int(2), new_int(3)];
    let args = with_spare[1..].as_ptr();
    let (result, events) = vectorcall(&entry, add, args, 2 | ARGUMENTS_OFFSET, ptr::null_mut());
    assert_eq!(events, [Event::Called("add_i32")]);
    assert_eq!(int_value(result), 42);

    // Falling back, the flag reaches the fallback as it came.
    assert_falls_back(&entry, add, args, 3 | ARGUMENTS_OFFSET, ptr::null_mut());
    assert_falls_back(&entry, add, args, ARGUMENTS_OFFSET, ptr::null_mut());
}

#[test]
fn a_null_function_address_falls_back() {
    let cache = StubCache::new();
    let entry = compile(&cache, &shape(Type::Void, ResultBoxing::None, &[]));
    assert_args_fall_back(&entry, callable(ptr::null(), ptr::null_mut()), &[]);
}

#[test]
fn the_host_switch_turns_every_stub_off_and_on_again() {
    static SWITCH: AtomicU8 = AtomicU8::new(1);
    let cache = StubCache::new();
    let shape = shape(Type::Void, ResultBoxing::None, &[]);
    let entry = cache.entry(&shape, &runtime_switched_by(&SWITCH)).unwrap();
    let nothing = callable(do_nothing as *const (), ptr::null_mut());
    assert_eq!(call_do_nothing(&entry, nothing), none());
    // Only exactly 1 means on.
    for off in [0, 2] {
        SWITCH.store(off, Ordering::Relaxed);
        assert_args_fall_back(&entry, nothing, &[]);
    }
    SWITCH.store(1, Ordering::Relaxed);
    assert_eq!(call_do_nothing(&entry, nothing), none());
}

/// Calls `do_nothing` through a `void` stub, asserting it took the compiled path.
fn call_do_nothing(entry: &CompiledEntry, nothing: *mut Object) -> *mut Object {
    let (result, events) = call(entry, nothing, &[]);
    assert_eq!(events, [Event::Called("do_nothing"), Event::Incref(none() as usize)]);
    result
}

#[test]
fn an_int_beyond_double_range_clears_the_error_and_falls_back() {
    let cache = StubCache::new();
    let add = EntryShape {
        release_gil: true,
        ..shape(
            Type::F64,
            ResultBoxing::Float,
            &[(Type::F64, float_arg(8)), (Type::F64, float_arg(8))],
        )
    };
    let entry = compile(&cache, &add);
    let add = callable(add_f64 as *const (), ptr::null_mut());
    let args = [new_float(1.0), int_beyond_f64()];
    let events = assert_falls_back(&entry, add, args.as_ptr(), 2, ptr::null_mut());
    assert_eq!(events[..2], [Event::ErrOccurred, Event::ErrClear]);
    assert!(!error_pending(), "the host's general path raises the error itself");
}

// ---------------------------------------------------------------------------------------
// Around the C call

#[test]
fn release_gil_brackets_the_c_call_with_save_and_restore_thread() {
    let cache = StubCache::new();
    let keeps_lock = add_i32_shape();
    let releases_lock = EntryShape { release_gil: true, ..keeps_lock.clone() };
    let add = callable(add_i32 as *const (), ptr::null_mut());

    let (result, events) = call(&compile(&cache, &keeps_lock), add, &[new_int(1), new_int(2)]);
    assert_eq!(events, [Event::Called("add_i32")]);
    assert_eq!(int_value(result), 3);

    let (result, events) = call(&compile(&cache, &releases_lock), add, &[new_int(1), new_int(2)]);
    let thread_state = &THREAD_STATE as *const u8 as usize;
    assert_eq!(
        events,
        [Event::SaveThread, Event::Called("add_i32"), Event::RestoreThread(thread_state)]
    );
    assert_eq!(int_value(result), 3);
}

#[test]
fn errno_is_swapped_in_and_out_only_with_use_errno() {
    let cache = StubCache::new();
    let plain = shape(Type::Void, ResultBoxing::None, &[]);
    let with_errno = EntryShape { use_errno: true, ..plain.clone() };
    let with_errno_unlocked = EntryShape { release_gil: true, ..with_errno.clone() };
    let nothing = callable(do_nothing as *const (), ptr::null_mut());
    let incref_none = Event::Incref(none() as usize);

    let (_, events) = call(&compile(&cache, &plain), nothing, &[]);
    assert_eq!(events, [Event::Called("do_nothing"), incref_none.clone()]);

    let (_, events) = call(&compile(&cache, &with_errno), nothing, &[]);
    let swapped = [
        Event::ErrnoSwapIn,
        Event::Called("do_nothing"),
        Event::ErrnoSwapOut(SAVED_C_ERRNO),
        incref_none.clone(),
    ];
    assert_eq!(events, swapped);

    // The swap is inside the unlocked region, right around the C call.
    let (_, events) = call(&compile(&cache, &with_errno_unlocked), nothing, &[]);
    let thread_state = &THREAD_STATE as *const u8 as usize;
    let expected = [
        Event::SaveThread,
        Event::ErrnoSwapIn,
        Event::Called("do_nothing"),
        Event::ErrnoSwapOut(SAVED_C_ERRNO),
        Event::RestoreThread(thread_state),
        incref_none,
    ];
    assert_eq!(events, expected);
}

#[test]
fn check_error_returns_null_when_the_c_function_left_an_error() {
    let cache = StubCache::new();
    let unchecked = shape(Type::I32, ResultBoxing::Signed, &[(Type::I32, int_arg(4))]);
    let checked = EntryShape { check_error: true, ..unchecked.clone() };
    let (unchecked, checked) = (compile(&cache, &unchecked), compile(&cache, &checked));
    let function = callable(fail_if_negative as *const (), ptr::null_mut());

    let (result, events) = call(&checked, function, &[new_int(5)]);
    assert_eq!(events, [Event::Called("fail_if_negative"), Event::ErrOccurred]);
    assert_eq!(int_value(result), 5);

    let (result, events) = call(&checked, function, &[new_int(-5)]);
    assert_eq!(events, [Event::Called("fail_if_negative"), Event::ErrOccurred]);
    assert!(result.is_null());
    assert!(error_pending(), "the error is the caller's to raise");
    err_clear();

    // Without the flag the stub never asks, and boxes whatever came back.
    let (result, events) = call(&unchecked, function, &[new_int(-5)]);
    assert_eq!(events, [Event::Called("fail_if_negative")]);
    assert_eq!(int_value(result), -5);
    err_clear();
}

#[test]
fn the_call_counter_counts_completed_compiled_calls_only() {
    let cache = StubCache::new();
    let shape = EntryShape {
        check_error: true,
        ..shape(Type::I32, ResultBoxing::Signed, &[(Type::I32, int_arg(4))])
    };
    let entry = compile(&cache, &shape);
    let function = callable(fail_if_negative as *const (), ptr::null_mut());
    let calls = || entry.calls.load(Ordering::Relaxed);
    assert_eq!(calls(), 0);
    for value in 0..3 {
        call_checked_successfully(&entry, function, value);
    }
    assert_eq!(calls(), 3);
    assert_args_fall_back(&entry, function, &[new_float(1.0)]);
    assert_args_fall_back(&entry, function, &[]);
    assert_eq!(calls(), 3, "fallbacks are the host's to count");
    // A call that ends in the C function's error does not reach the end of the compiled path.
    let (result, _) = call(&entry, function, &[new_int(-1)]);
    assert!(result.is_null());
    err_clear();
    assert_eq!(calls(), 3);
}

/// A checked call of `fail_if_negative` that succeeds.
fn call_checked_successfully(entry: &CompiledEntry, function: *mut Object, value: i128) {
    let (result, events) = call(entry, function, &[new_int(value)]);
    assert_eq!(events, [Event::Called("fail_if_negative"), Event::ErrOccurred]);
    assert_eq!(int_value(result), value);
}

// ---------------------------------------------------------------------------------------
// Sharing and refusing

#[test]
fn equal_shapes_share_one_stub() {
    static OTHER_SWITCH: AtomicU8 = AtomicU8::new(1);
    let cache = StubCache::new();
    let add = add_i32_shape();
    let first = compile(&cache, &add);
    let second = compile(&cache, &add.clone());
    assert_eq!(first.entry as usize, second.entry as usize);
    assert!(std::ptr::eq(first.calls, second.calls), "one stub, one counter");
    assert_eq!(cache.stats().entry_stubs, 1);

    let unlocked = compile(&cache, &EntryShape { release_gil: true, ..add.clone() });
    assert_ne!(first.entry as usize, unlocked.entry as usize);
    assert_eq!(cache.stats().entry_stubs, 2);

    // The runtime is part of the key: another host's stub embeds other addresses.
    let elsewhere = cache.entry(&add, &runtime_switched_by(&OTHER_SWITCH)).unwrap();
    assert_ne!(first.entry as usize, elsewhere.entry as usize);
    assert_eq!(cache.stats().entry_stubs, 3);
}

#[test]
fn variadic_signatures_and_aggregate_results_are_unsupported() {
    let two_words = Aggregate::c_struct(vec![Type::I64, Type::I64]).unwrap();
    let in_memory = Aggregate::c_struct(vec![Type::I64; 4]).unwrap();
    let printf_like = EntryShape {
        signature: Signature::variadic(Type::I32, vec![Type::Pointer, Type::I32], 1).unwrap(),
        ..shape(
            Type::I32,
            ResultBoxing::Signed,
            &[(Type::Pointer, ArgConversion::CharPointer), (Type::I32, int_arg(4))],
        )
    };
    let unsupported = [
        (printf_like, "variadic"),
        (shape(Type::aggregate(two_words), ResultBoxing::None, &[]), "aggregate"),
        (shape(Type::aggregate(in_memory), ResultBoxing::None, &[]), "aggregate"),
        (shape(Type::LongDouble, ResultBoxing::Float, &[]), "long double"),
        (
            EntryShape {
                args: vec![],
                ..shape(Type::Void, ResultBoxing::None, &[(Type::I32, int_arg(4))])
            },
            "one conversion per argument",
        ),
    ];
    let cache = StubCache::new();
    let mut compiler = StubCompiler::new().unwrap();
    for (shape, expected) in unsupported {
        let reason =
            entry_unsupported(&shape).unwrap_or_else(|| panic!("{} accepted", describe(&shape)));
        assert!(reason.contains(expected), "{}: {reason}", describe(&shape));
        let refused = cache.entry(&shape, &runtime()).unwrap_err();
        assert!(refused.contains(&reason), "{refused}");
        assert!(compiler.compile_entry(&shape, &runtime()).is_err());
    }
    assert_eq!(cache.stats().entry_stubs, 0);

    let supported = shape(Type::F64, ResultBoxing::Float, &[(Type::F32, float_arg(4))]);
    assert_eq!(entry_unsupported(&supported), None);
}
