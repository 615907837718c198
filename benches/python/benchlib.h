/* The C functions every column of the Python call-path benchmark calls (benches/python). */
#include <stddef.h>
#include <stdint.h>

typedef struct Sum3 { int32_t a, b, c; } Sum3;
typedef struct Pt { double x, y; } Pt;
typedef int32_t (*int_callback)(int32_t);

void nop(void);
int32_t add_i32(int32_t a, int32_t b);
double add_f64(double a, double b);
long mix6(long a, double b, long c, double d, long e, double f);
void *ptr_identity(void *p);
size_t strlen_like(const char *s);
int32_t sum_struct(Sum3 *p);
double pt_norm2(Pt p);
int32_t call_n_times(int_callback callback, int32_t n);
