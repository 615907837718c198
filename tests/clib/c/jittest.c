/* The project's C test library: functions of every scalar type, argument lists that
 * overflow the registers, structs by value of many sizes and shapes, and variadic functions.
 *
 * Every struct case S is described once, by an X-macro field list, from which the struct,
 * its layout table and five functions are generated:
 *   S      S_make(int64_t seed)          builds a struct from a seed and returns it by value
 *   void   S_make_into(int64_t, S *out)  the same through a pointer: the reference
 *   int64_t S_sum(S s)                   folds a struct passed by value
 *   int64_t S_sum_ptr(const S *s)        the same through a pointer: the reference
 *   int64_t S_sum_late(...)              the struct after registers are mostly taken
 * so a test compares the by-value path with the pointer path, which involves no ABI rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef int8_t i8;
typedef uint8_t u8;
typedef int16_t i16;
typedef uint16_t u16;
typedef int32_t i32;
typedef uint32_t u32;
typedef int64_t i64;
typedef uint64_t u64;
typedef float f32;
typedef double f64;
typedef long double f80;
typedef _Bool boolean;
typedef void *ptr;

/* ---- Folding values into a checksum; mirrored in Rust (clib::mix). ---- */

static u64 mix(u64 h, u64 v) {
    h ^= v;
    h *= 0x100000001b3ULL;
    return (h << 29) | (h >> 35);
}

static u64 bits_f32(f32 x) { u32 b; memcpy(&b, &x, 4); return b; }
static u64 bits_f64(f64 x) { u64 b; memcpy(&b, &x, 8); return b; }
#define BITS(x) _Generic((x), \
    f32: bits_f32, f64: bits_f64, f80: bits_f80, ptr: bits_ptr, default: bits_int)(x)
static u64 bits_int(i64 x) { return (u64)x; }
static u64 bits_ptr(ptr x) { return (u64)(uintptr_t)x; }
static u64 bits_f80(f80 x) { return (u64)(i64)x; }

/* Values made from a running seed: integers are truncations, floats small exact values. */
static u64 next(u64 *h) { *h = mix(*h, 0x9e3779b97f4a7c15ULL); return *h; }
#define MAKE(t, v) make_##t(v)
static i8 make_i8(u64 v) { return (i8)v; }
static u8 make_u8(u64 v) { return (u8)v; }
static i16 make_i16(u64 v) { return (i16)v; }
static u16 make_u16(u64 v) { return (u16)v; }
static i32 make_i32(u64 v) { return (i32)v; }
static u32 make_u32(u64 v) { return (u32)v; }
static i64 make_i64(u64 v) { return (i64)v; }
static u64 make_u64(u64 v) { return v; }
static f32 make_f32(u64 v) { return (f32)(i32)(v >> 40) / 8.0f; }
static f64 make_f64(u64 v) { return (f64)(i64)(v >> 12) / 1024.0; }
static ptr make_ptr(u64 v) { return (ptr)(uintptr_t)v; }
static boolean make_boolean(u64 v) { return (boolean)(v & 1); }

/* ---- Scalars: identity and argument selection past the registers. ---- */

#define SCALAR_CASE(t) \
    t t##_echo(t x) { return x; } \
    t t##_pick10(int which, t a0, t a1, t a2, t a3, t a4, t a5, t a6, t a7, t a8, t a9) { \
        t all[10] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9}; \
        return all[which]; \
    }
SCALAR_CASE(i8) SCALAR_CASE(u8) SCALAR_CASE(i16) SCALAR_CASE(u16) SCALAR_CASE(i32)
SCALAR_CASE(u32) SCALAR_CASE(i64) SCALAR_CASE(u64) SCALAR_CASE(f32) SCALAR_CASE(f64)
SCALAR_CASE(f80) SCALAR_CASE(ptr) SCALAR_CASE(boolean)

/* Narrow results with garbage above them would be visible if a path did not widen. */
i8 i8_negative(void) { return -5; }
u16 u16_large(void) { return 0xfedc; }
boolean bool_not(boolean b) { return !b; }
void nothing(void) {}
static int touched;
void touch(int value) { touched = value; }
int touched_value(void) { return touched; }

f80 f80_add(f80 a, f80 b) { return a + b; }
typedef struct WrappedF80 { f80 value; } WrappedF80;
WrappedF80 f80_wrap_add(f80 a, f80 b) { WrappedF80 r = { a + b }; return r; }

/* Mixed order: ten integers and ten floats interleaved; both register files overflow. */
u64 mixed20(i8 a, f32 b, u16 c, f64 d, i32 e, f64 f, u64 g, f32 h, i64 i, f64 j,
            ptr k, f64 l, u8 m, f32 n, i16 o, f64 p, u32 q, f64 r, boolean s, f32 t) {
    u64 x = 0;
    x = mix(x, BITS((i64)a)); x = mix(x, BITS(b)); x = mix(x, BITS((i64)c)); x = mix(x, BITS(d));
    x = mix(x, BITS((i64)e)); x = mix(x, BITS(f)); x = mix(x, BITS((i64)g)); x = mix(x, BITS(h));
    x = mix(x, BITS(i)); x = mix(x, BITS(j)); x = mix(x, BITS(k)); x = mix(x, BITS(l));
    x = mix(x, BITS((i64)m)); x = mix(x, BITS(n)); x = mix(x, BITS((i64)o)); x = mix(x, BITS(p));
    x = mix(x, BITS((i64)q)); x = mix(x, BITS(r)); x = mix(x, BITS((i64)s)); x = mix(x, BITS(t));
    return x;
}

/* ---- Struct cases. F: scalar field, A: array field, N: nested struct field. ---- */

#define DECLARE_F(t, n) t n;
#define DECLARE_A(t, n, len) t n[len];
#define DECLARE_N(t, n) t n;
#define FILL_F(t, n) s->n = MAKE(t, next(&h));
#define FILL_A(t, n, len) for (int k = 0; k < len; k++) s->n[k] = MAKE(t, next(&h));
#define FILL_N(t, n) t##_fill(&s->n, next(&h));
#define FOLD_F(t, n) x = mix(x, BITS(s->n));
#define FOLD_A(t, n, len) for (int k = 0; k < len; k++) x = mix(x, BITS(s->n[k]));
#define FOLD_N(t, n) x = mix(x, (u64)t##_fold(&s->n));
#define OFFSET_F(t, n) offsetof(STRUCT, n),
#define OFFSET_A(t, n, len) offsetof(STRUCT, n),
#define OFFSET_N(t, n) offsetof(STRUCT, n),

#define DEFINE_STRUCT(S, KIND, ATTR, FIELDS) \
    typedef KIND ATTR S { FIELDS(DECLARE_F, DECLARE_A, DECLARE_N) } S; \
    static void S##_fill(S *s, u64 h) { FIELDS(FILL_F, FILL_A, FILL_N) } \
    static i64 S##_fold(const S *s) { u64 x = 0x51; FIELDS(FOLD_F, FOLD_A, FOLD_N) return (i64)x; }

#define DEFINE_FUNCTIONS(S) \
    S S##_make(i64 seed) { S s; memset(&s, 0, sizeof s); S##_fill(&s, (u64)seed); return s; } \
    void S##_make_into(i64 seed, S *out) { memset(out, 0, sizeof *out); S##_fill(out, (u64)seed); } \
    i64 S##_sum(S s) { return S##_fold(&s); } \
    i64 S##_sum_ptr(const S *s) { return S##_fold(s); } \
    /* Five integers and seven doubles before: the struct may not fit in what is left, and \
     * the int and double after it must still arrive in r9 and xmm7 (libffi bug #574). */ \
    i64 S##_sum_late(f64 d0, i64 a, i64 b, i64 c, i64 d, i64 e, f64 d1, f64 d2, f64 d3, \
                     f64 d4, f64 d5, f64 d6, S s, f64 d7, i64 f) { \
        u64 x = (u64)S##_fold(&s); \
        i64 ints[] = {a, b, c, d, e, f}; \
        f64 dbls[] = {d0, d1, d2, d3, d4, d5, d6, d7}; \
        for (int k = 0; k < 6; k++) x = mix(x, BITS(ints[k])); \
        for (int k = 0; k < 8; k++) x = mix(x, BITS(dbls[k])); \
        return (i64)x; \
    }

/* Size, alignment, then the offset of each top-level field, then (size_t)-1. */
#define DEFINE_LAYOUT(S, FIELDS) \
    void S##_layout(size_t out[static 32]) { \
        typedef S STRUCT; \
        size_t values[] = {sizeof(S), _Alignof(S), FIELDS(OFFSET_F, OFFSET_A, OFFSET_N) (size_t)-1}; \
        memcpy(out, values, sizeof values); \
    }

#define CASE_OF(S, KIND, ATTR) \
    DEFINE_STRUCT(S, KIND, ATTR, S) DEFINE_FUNCTIONS(S) DEFINE_LAYOUT(S, S)
#define CASE(S) CASE_OF(S, struct, )

/* 1, 2, 3, 4 bytes: INTEGER, or SSE for the lone float. */
#define S1(F, A, N) F(i8, a)
#define S2(F, A, N) F(u8, a) F(i8, b)
#define S3(F, A, N) A(u8, c, 3)
#define S4(F, A, N) F(i16, a) F(u8, b) F(i8, c)
#define S4F(F, A, N) F(f32, a)
/* 8 bytes: INTEGER when any integer shares the eightbyte, SSE when only floats do. */
#define S8(F, A, N) F(i32, a) F(f32, b)
#define S8F(F, A, N) F(f32, a) F(f32, b)
#define S8D(F, A, N) F(f64, a)
/* 12 bytes: half INTEGER half SSE, and all SSE. */
#define S12(F, A, N) F(i32, a) F(i32, b) F(f32, c)
#define S12F(F, A, N) F(f32, a) F(f32, b) F(f32, c)
#define S12X(F, A, N) F(f32, a) F(f32, b) F(i32, c)
/* 16 bytes: every pairing of INTEGER and SSE. */
#define S16LD(F, A, N) F(i64, a) F(f64, b)
#define S16DL(F, A, N) F(f64, a) F(i64, b)
#define S16DD(F, A, N) F(f64, a) F(f64, b)
#define S16LL(F, A, N) F(i64, a) F(u64, b)
#define S16MIX(F, A, N) F(i8, a) F(u16, b) F(f32, c) F(f32, d) F(f32, e)
#define S16ARR(F, A, N) A(f32, v, 3) F(i32, tag)
/* Nested structs. */
#define S16NEST(F, A, N) N(S8F, p) N(S4, q) F(f32, r)
/* Above 16 bytes: MEMORY. */
#define S17(F, A, N) A(i8, c, 17)
#define S24(F, A, N) F(i64, a) F(f64, b) F(u32, c)
#define S32(F, A, N) A(f64, v, 4)
#define S64(F, A, N) F(i64, a) F(f64, b) F(i8, c) F(i16, d) F(i32, e) A(f32, f, 3) N(S12, g) \
    F(u64, h) F(ptr, p)

/* A bool among integers, a union, a packed struct (gcc: MEMORY, for its unaligned
 * fields) and an over-aligned struct whose second eightbyte is padding (NO_CLASS). */
#define S3B(F, A, N) F(boolean, a) F(i8, b) F(boolean, c)
#define U8(F, A, N) F(f64, d) A(i32, i, 2)
#define U12(F, A, N) A(f32, f, 3) F(i64, l) F(i8, c)
#define P7(F, A, N) F(i8, c) F(i32, i) F(i16, s)
#define A16(F, A, N) F(f32, f)

CASE(S1) CASE(S2) CASE(S3) CASE(S4) CASE(S4F) CASE(S8) CASE(S8F) CASE(S8D) CASE(S12)
CASE(S12F) CASE(S12X) CASE(S16LD) CASE(S16DL) CASE(S16DD) CASE(S16LL) CASE(S16MIX)
CASE(S16ARR) CASE(S16NEST) CASE(S17) CASE(S24) CASE(S32) CASE(S64) CASE(S3B)
CASE_OF(U8, union, ) CASE_OF(U12, union, )
#pragma pack(push, 1)
CASE(P7)
#pragma pack(pop)
CASE_OF(A16, struct, __attribute__((aligned(16))))

/* ---- Variadic functions. ---- */

i64 var_sum(int count, ...) {
    va_list ap;
    va_start(ap, count);
    i64 total = 0;
    for (int k = 0; k < count; k++) total += va_arg(ap, i64) * (k + 1);
    va_end(ap);
    return total;
}

f64 var_sum_f64(int count, ...) {
    va_list ap;
    va_start(ap, count);
    f64 total = 0;
    for (int k = 0; k < count; k++) total += va_arg(ap, f64) * (k + 1);
    va_end(ap);
    return total;
}

/* printf-like: formats into a caller's buffer. */
int var_format(char *buffer, size_t size, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    int written = vsnprintf(buffer, size, format, ap);
    va_end(ap);
    return written;
}

/* ---- The benchmark's functions (benches/call_paths.rs, and later the Python ones). ---- */

void nop(void) {}
i32 add_i32(i32 a, i32 b) { return a + b; }
f64 add_f64(f64 a, f64 b) { return a + b; }
i64 mix6(i64 a, f64 b, i64 c, f64 d, i64 e, f64 f) { return a + (i64)b + c + (i64)d + e + (i64)f; }
/* Used only by test_lazy_compilation.py: a signature no other test calls. */
u16 add3_u16(u16 a, u16 b, u16 c) { return (u16)(a + b + c); }
typedef struct Pt { f64 x, y; } Pt;
f64 pt_norm2(Pt p) { return p.x * p.x + p.y * p.y; }

/* A struct too large for one stack move per slot in a stub (600 slots > 512): libffi. */
typedef struct Big { i64 v[600]; } Big;
i64 big_sum(i32 scale, Big b) { i64 s = 0; for (int k = 0; k < 600; k++) s += b.v[k] * (k + 1); return s * scale; }
