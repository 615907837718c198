/* A hand-written C extension calling the benchmark's C functions (linked against
 * libbenchlib.so), METH_FASTCALL, each function twice: releasing the GIL around the C call
 * as ctypes' CDLL does (`name`), and keeping it (`name_gil`). The floor of the benchmark. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "benchlib.h"

#define NOGIL(call) do { Py_BEGIN_ALLOW_THREADS call; Py_END_ALLOW_THREADS } while (0)

#define DEFINE_BOTH(name, body)                                                      \
    static PyObject *name##_released(PyObject *m, PyObject *const *a, Py_ssize_t n) { \
        int release = 1; body                                                          \
    }                                                                                  \
    static PyObject *name##_kept(PyObject *m, PyObject *const *a, Py_ssize_t n) {     \
        int release = 0; body                                                          \
    }

#define CALL(result, call) do { if (release) { NOGIL(result = call); } else { result = call; } } while (0)
#define CALL_VOID(call) do { if (release) { NOGIL(call); } else { call; } } while (0)

DEFINE_BOTH(nop, {
    (void)m; (void)a; (void)n;
    CALL_VOID(nop());
    Py_RETURN_NONE;
})

DEFINE_BOTH(add_i32, {
    (void)m;
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "2 arguments"); return NULL; }
    long x = PyLong_AsLong(a[0]); if (x == -1 && PyErr_Occurred()) return NULL;
    long y = PyLong_AsLong(a[1]); if (y == -1 && PyErr_Occurred()) return NULL;
    int32_t r; CALL(r, add_i32((int32_t)x, (int32_t)y));
    return PyLong_FromLong(r);
})

DEFINE_BOTH(add_f64, {
    (void)m;
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "2 arguments"); return NULL; }
    double x = PyFloat_AsDouble(a[0]); if (x == -1.0 && PyErr_Occurred()) return NULL;
    double y = PyFloat_AsDouble(a[1]); if (y == -1.0 && PyErr_Occurred()) return NULL;
    double r; CALL(r, add_f64(x, y));
    return PyFloat_FromDouble(r);
})

DEFINE_BOTH(mix6, {
    (void)m;
    if (n != 6) { PyErr_SetString(PyExc_TypeError, "6 arguments"); return NULL; }
    long i[3]; double d[3];
    for (int k = 0; k < 3; k++) {
        i[k] = PyLong_AsLong(a[2 * k]); if (i[k] == -1 && PyErr_Occurred()) return NULL;
        d[k] = PyFloat_AsDouble(a[2 * k + 1]); if (d[k] == -1.0 && PyErr_Occurred()) return NULL;
    }
    long r; CALL(r, mix6(i[0], d[0], i[1], d[1], i[2], d[2]));
    return PyLong_FromLong(r);
})

DEFINE_BOTH(ptr_identity, {
    (void)m;
    if (n != 1) { PyErr_SetString(PyExc_TypeError, "1 argument"); return NULL; }
    void *p = PyLong_AsVoidPtr(a[0]); if (p == NULL && PyErr_Occurred()) return NULL;
    void *r; CALL(r, ptr_identity(p));
    return PyLong_FromVoidPtr(r);
})

DEFINE_BOTH(strlen_like, {
    (void)m;
    if (n != 1 || !PyBytes_Check(a[0])) { PyErr_SetString(PyExc_TypeError, "bytes"); return NULL; }
    const char *s = PyBytes_AS_STRING(a[0]);
    size_t r; CALL(r, strlen_like(s));
    return PyLong_FromSize_t(r);
})

/* Structures are passed as objects exporting a writable buffer (a ctypes instance). */
static int buffer_of(PyObject *o, Py_buffer *view, Py_ssize_t size) {
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len < size) { PyBuffer_Release(view); PyErr_SetString(PyExc_ValueError, "small"); return -1; }
    return 0;
}

DEFINE_BOTH(sum_struct, {
    (void)m;
    if (n != 1) { PyErr_SetString(PyExc_TypeError, "1 argument"); return NULL; }
    Py_buffer view; if (buffer_of(a[0], &view, sizeof(Sum3)) < 0) return NULL;
    int32_t r; CALL(r, sum_struct((Sum3 *)view.buf));
    PyBuffer_Release(&view);
    return PyLong_FromLong(r);
})

DEFINE_BOTH(pt_norm2, {
    (void)m;
    if (n != 1) { PyErr_SetString(PyExc_TypeError, "1 argument"); return NULL; }
    Py_buffer view; if (buffer_of(a[0], &view, sizeof(Pt)) < 0) return NULL;
    Pt p = *(Pt *)view.buf;
    PyBuffer_Release(&view);
    double r; CALL(r, pt_norm2(p));
    return PyFloat_FromDouble(r);
})

/* Callback invocation: C calls a Python callable n times through a C trampoline. */
static PyObject *current_callable;
static int32_t trampoline(int32_t value) {
    PyGILState_STATE state = PyGILState_Ensure();
    int32_t result = 0;
    PyObject *arg = PyLong_FromLong(value);
    PyObject *out = arg ? PyObject_CallOneArg(current_callable, arg) : NULL;
    Py_XDECREF(arg);
    if (out) { result = (int32_t)PyLong_AsLong(out); Py_DECREF(out); }
    if (PyErr_Occurred()) PyErr_WriteUnraisable(current_callable);
    PyGILState_Release(state);
    return result;
}

DEFINE_BOTH(call_n_times, {
    (void)m;
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "2 arguments"); return NULL; }
    long count = PyLong_AsLong(a[1]); if (count == -1 && PyErr_Occurred()) return NULL;
    current_callable = a[0];
    int32_t r; CALL(r, call_n_times(trampoline, (int32_t)count));
    return PyLong_FromLong(r);
})

#define ENTRY(name) \
    {#name, (PyCFunction)(void (*)(void))name##_released, METH_FASTCALL, NULL}, \
    {#name "_gil", (PyCFunction)(void (*)(void))name##_kept, METH_FASTCALL, NULL}

static PyMethodDef methods[] = {
    ENTRY(nop), ENTRY(add_i32), ENTRY(add_f64), ENTRY(mix6), ENTRY(ptr_identity),
    ENTRY(strlen_like), ENTRY(sum_struct), ENTRY(pt_norm2), ENTRY(call_n_times),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "benchext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_benchext(void) { return PyModule_Create(&module); }
