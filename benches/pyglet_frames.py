"""Frame-time benchmark (issue 6): a pyglet program that makes many small ctypes calls per
frame, timed under stock ctypes and under jitctypes in the same run of the benchmark.

    scripts/setup-pyglet.sh          # Xvfb, Mesa, pyglet
    .venv/bin/python benches/pyglet_frames.py [--repeat 5] [--frames 200]

Each measurement is a fresh process (`python -m jitctypes` for jitctypes), the two
implementations alternating, with pyglet's `debug_gl` (a glGetError after every GL call)
on and off. A frame: 200 shapes moved (vertex updates: ctypes array slice writes), 4,000
`glBindBuffer`, 2,000 `glGetIntegerv` into a `GLint` by reference, 2,000 `glUniform1f`, a
batch draw and a buffer flip. Prints ms per frame (median of the repetitions, with the
spread) and the stock/jitctypes ratio, and writes target/bench-pyglet/frames.json.
Under Xvfb the rendering is Mesa's software renderer: the GL work itself is the same for
both, so the ratio says how much of a frame the ctypes layer costs.
"""

import argparse
import json
import statistics
import sys
import time

from pyglet_processes import rerun_under_xvfb_without_display, run_child, write_json

SHAPES = 200
BINDS = 4000
QUERIES = 2000
UNIFORMS = 2000


def child(frames: int, warmup: int, debug_gl: bool) -> None:
    """One measurement: ms per frame, printed as JSON on the last line."""
    import ctypes

    import pyglet

    pyglet.options["debug_gl"] = debug_gl
    from pyglet import gl

    window = pyglet.window.Window(640, 480, vsync=False)
    batch = pyglet.graphics.Batch()
    shapes = [
        pyglet.shapes.Rectangle(i % 40 * 15, i // 40 * 15, 10, 10, batch=batch)
        for i in range(SHAPES)
    ]
    value = gl.GLint()
    program = pyglet.graphics.get_default_shader()

    def frame(k: int) -> None:
        window.switch_to()
        window.dispatch_events()
        window.clear()
        for i, shape in enumerate(shapes):
            shape.x = (i * 7 + k) % 600
        for _ in range(BINDS):
            gl.glBindBuffer(gl.GL_ARRAY_BUFFER, 0)
        for _ in range(QUERIES):
            gl.glGetIntegerv(gl.GL_CURRENT_PROGRAM, ctypes.byref(value))
        program.use()
        for _ in range(UNIFORMS):
            gl.glUniform1f(-1, 0.5)  # location -1: accepted and ignored by GL
        program.stop()
        batch.draw()
        window.flip()

    for k in range(warmup):
        frame(k)
    start = time.perf_counter()
    for k in range(frames):
        frame(k)
    elapsed = time.perf_counter() - start
    window.close()
    ctypes_module = sys.modules["_ctypes"].__name__
    print(json.dumps({"ms_per_frame": 1000 * elapsed / frames, "ctypes": ctypes_module}))


def measure(implementation: str, debug_gl: bool, frames: int) -> float:
    arguments = ["--child", "--frames", str(frames)] + (["--debug-gl"] if debug_gl else [])
    return run_child(implementation, __file__, arguments, timeout=600)["ms_per_frame"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--out", default="target/bench-pyglet")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug-gl", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.frames, warmup=20, debug_gl=arguments.debug_gl)
        return
    rerun_under_xvfb_without_display()
    results: dict[str, dict[str, list[float]]] = {}
    for debug_gl in (True, False):
        key = f"debug_gl={'on' if debug_gl else 'off'}"
        results[key] = {"stock": [], "jitctypes": []}
        for _ in range(arguments.repeat):
            for implementation in ("stock", "jitctypes"):  # alternating processes
                ms = measure(implementation, debug_gl, arguments.frames)
                results[key][implementation].append(ms)
    print(f"ms per frame, median of {arguments.repeat} alternating runs (min–max)")
    print("| debug_gl | stock | jitctypes | stock/jitctypes |")
    print("| --- | --- | --- | --- |")
    for key, runs in results.items():
        stock, jit = statistics.median(runs["stock"]), statistics.median(runs["jitctypes"])
        spread = {name: f"{min(values):.2f}–{max(values):.2f}" for name, values in runs.items()}
        print(
            f"| {key.split('=')[1]} | {stock:.2f} ({spread['stock']}) | "
            f"{jit:.2f} ({spread['jitctypes']}) | {stock / jit:.2f}× |"
        )
    write_json(arguments.out, "frames.json", results)


if __name__ == "__main__":
    main()
