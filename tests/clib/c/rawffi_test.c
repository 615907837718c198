/* C side of the Python tests of jitctypes._rawffi: callbacks called from the calling
 * thread and from a pthread Python never saw, errno, strings, and a struct callback. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

typedef int (*int_callback)(int);

int call_int_callback(int_callback callback, int value) { return callback(value); }

struct thread_call { int_callback callback; int value; int result; };

static void *run_thread_call(void *raw) {
    struct thread_call *call = raw;
    call->result = call->callback(call->value);
    return NULL;
}

/* Calls `callback(value)` `times` times, each from a new pthread, and sums the results. */
int call_from_new_threads(int_callback callback, int value, int times) {
    int total = 0;
    for (int k = 0; k < times; k++) {
        struct thread_call call = { callback, value + k, 0 };
        pthread_t thread;
        if (pthread_create(&thread, NULL, run_thread_call, &call) != 0) return -1;
        pthread_join(thread, NULL);
        total += call.result;
    }
    return total;
}

typedef struct Pair { int64_t id; double weight; } Pair;
typedef Pair (*pair_callback)(Pair, int32_t);

Pair call_pair_callback(pair_callback callback, Pair pair, int32_t factor) {
    return callback(pair, factor);
}

typedef double (*mixed_callback)(int8_t, uint16_t, float, double, int64_t, _Bool, const char *);

double call_mixed_callback(mixed_callback callback) {
    return callback(-3, 65000, 1.5f, -2.25, 1LL << 40, 1, "text");
}

int fail_with_errno(int value) { errno = value; return -1; }
int current_errno(void) { return errno; }

const char *greeting(void) { return "hello, world"; }
size_t byte_length(const char *text) { return text ? strlen(text) : (size_t)-1; }
size_t wide_length(const wchar_t *text) { return text ? wcslen(text) : (size_t)-1; }
const wchar_t *wide_greeting(void) { return L"grüß dich ☃"; }

/* Slow enough that threads overlap when the GIL is released around it. */
int64_t spin_sum(int64_t n) {
    volatile int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += k;
    return total;
}

/* Bit-field layouts where stock CPython 3.11 ctypes disagrees with gcc (its sizes, offsets
 * or bit positions differ); jitctypes follows gcc. Each setter writes the fields the way
 * compiled C does, for the Python tests to compare bytes. */
struct bits_i3_i5_h4 { int a : 3; int b : 5; short c : 4; };
struct bits_b4_b4_u24 { unsigned char a : 4; unsigned char b : 4; unsigned int c : 24; };
struct bits_h4_h4_i24_h4 { short a : 4; short b : 4; int c : 24; short d : 4; };
struct bits_q33_q31 { unsigned long long a : 33; unsigned long long b : 31; };
union bits_union_i7_h3 { int a : 7; short b : 3; };

#define BITS_SETTER(T, ...) \
    size_t T##_size(void) { return sizeof(struct T); } \
    size_t T##_align(void) { return _Alignof(struct T); }
BITS_SETTER(bits_i3_i5_h4)
BITS_SETTER(bits_b4_b4_u24)
BITS_SETTER(bits_h4_h4_i24_h4)
BITS_SETTER(bits_q33_q31)
size_t bits_union_i7_h3_size(void) { return sizeof(union bits_union_i7_h3); }
size_t bits_union_i7_h3_align(void) { return _Alignof(union bits_union_i7_h3); }

void set_bits_i3_i5_h4(struct bits_i3_i5_h4 *s, long a, long b, long c, long d) { s->a = a; s->b = b; s->c = c; (void)d; }
void set_bits_b4_b4_u24(struct bits_b4_b4_u24 *s, long a, long b, long c, long d) { s->a = a; s->b = b; s->c = c; (void)d; }
void set_bits_h4_h4_i24_h4(struct bits_h4_h4_i24_h4 *s, long a, long b, long c, long d) { s->a = a; s->b = b; s->c = c; s->d = d; }
void set_bits_q33_q31(struct bits_q33_q31 *s, long a, long b, long c, long d) { s->a = a; s->b = b; (void)c; (void)d; }
void set_bits_union_i7_h3(union bits_union_i7_h3 *s, long a, long b, long c, long d) { s->a = a; (void)b; (void)c; (void)d; }

/* A callback kept by C between calls: Python may drop its own references to it meanwhile,
 * even while it runs. */
static void (*stored_callback)(void);
void store_callback(void (*callback)(void)) { stored_callback = callback; }
void run_stored_callback(void) { stored_callback(); }

/* Starts `threads` detached pthreads that call `callback(i)` forever, every `pause_us`
 * microseconds: a C library with threads of its own that keep calling back while the
 * interpreter exits (audio, USB and event libraries do this). */
typedef int (*forever_callback)(int);
struct forever_args { forever_callback callback; int pause_us; };
static struct forever_args forever_args;
static void *call_forever(void *unused) {
    (void)unused;
    for (int i = 0;; i++) {
        forever_args.callback(i);
        usleep(forever_args.pause_us);
    }
    return NULL;
}
int start_callback_threads(forever_callback callback, int threads, int pause_us) {
    forever_args.callback = callback;
    forever_args.pause_us = pause_us;
    for (int i = 0; i < threads; i++) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, call_forever, NULL) != 0) return -1;
        pthread_detach(thread);
    }
    return 0;
}

/* Blocks for `microseconds` (a stand-in for a C call that waits on a device). */
int usleep_for(int microseconds) { return usleep(microseconds); }
