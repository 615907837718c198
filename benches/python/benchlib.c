#include "benchlib.h"

void nop(void) {}
int32_t add_i32(int32_t a, int32_t b) { return a + b; }
double add_f64(double a, double b) { return a + b; }
long mix6(long a, double b, long c, double d, long e, double f) {
    return a + (long)b + c + (long)d + e + (long)f;
}
void *ptr_identity(void *p) { return p; }
size_t strlen_like(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
int32_t sum_struct(Sum3 *p) { return p->a + p->b + p->c; }
double pt_norm2(Pt p) { return p.x * p.x + p.y * p.y; }
int32_t call_n_times(int_callback callback, int32_t n) {
    int32_t total = 0;
    for (int32_t i = 0; i < n; i++) total += callback(i);
    return total;
}
