"""Times what pyglet does through ctypes per frame, on whichever ctypes serves the process.

    xvfb-run -a -s '-screen 0 1280x1024x24' python tests/pyglet/bench_calls.py          # stock
    xvfb-run -a -s '-screen 0 1280x1024x24' python -m jitctypes tests/pyglet/bench_calls.py

In a hidden window: single GL calls as pyglet makes them (``argtypes``, ``restype`` and, unless
``python -O``, pyglet's ``errcheck`` that calls ``glGetError``), a ``byref`` out-parameter,
moving 1000 shapes (writes into the vertex buffers' ctypes arrays) and drawing a batch. Prints
the best of 5 repeats in ns per operation, then ``RESULT {json}``.
"""

from __future__ import annotations

import json
import sys
import time


def best_ns(fn, n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t) / n)
    return round(best, 1)


def main() -> None:
    from ctypes import byref

    import pyglet
    from pyglet import gl

    window = pyglet.window.Window(320, 240, visible=False)
    ct = sys.modules["_ctypes"].__name__  # pyglet imports ctypes lazily
    window.switch_to()
    batch = pyglet.graphics.Batch()
    shapes = [
        pyglet.shapes.Rectangle(i % 300, i % 200, 10, 10, color=(i % 255, 50, 50), batch=batch)
        for i in range(1000)
    ]
    value = gl.GLint()

    def gl_get_error(n):
        f = gl.glGetError
        for _ in range(n):
            f()

    def gl_bind_buffer(n):
        f, target = gl.glBindBuffer, gl.GL_ARRAY_BUFFER
        for _ in range(n):
            f(target, 0)

    def gl_clear_color(n):
        f = gl.glClearColor
        for _ in range(n):
            f(0.1, 0.2, 0.3, 1.0)

    def gl_get_integerv(n):
        f, pname, ref = gl.glGetIntegerv, gl.GL_VIEWPORT, byref
        for _ in range(n):
            f(pname, ref(value))

    def move_shapes(n):
        for k in range(n):
            for s in shapes:
                s.x = k % 300

    def draw_batch(n):
        for _ in range(n):
            window.clear()
            batch.draw()
        gl.glFinish()

    results = {
        "glGetError()": best_ns(gl_get_error, 100_000),
        "glBindBuffer(GL_ARRAY_BUFFER, 0)": best_ns(gl_bind_buffer, 100_000),
        "glClearColor(4 floats)": best_ns(gl_clear_color, 100_000),
        "glGetIntegerv(pname, byref(GLint))": best_ns(gl_get_integerv, 100_000),
        "move 1000 shapes (per shape)": round(best_ns(move_shapes, 20) / 1000, 1),
        "clear + batch.draw (1000 shapes)": best_ns(draw_batch, 50),
    }
    print(f"_ctypes = {ct}, pyglet {pyglet.version}, debug_gl = {pyglet.options['debug_gl']}")
    for name, ns in results.items():
        print(f"{name:40s} {ns:12.1f} ns")
    print("RESULT " + json.dumps({"ctypes": ct, "debug_gl": pyglet.options["debug_gl"], **results}))
    window.close()


if __name__ == "__main__":
    main()
