"""Start-up benchmark (issue 5): `import pyglet` and the first window shown, under stock
ctypes and under jitctypes, in fresh processes.

    scripts/setup-pyglet.sh          # Xvfb, Mesa, pyglet
    .venv/bin/python benches/pyglet_startup.py [--repeat 9]

pyglet declares thousands of ctypes prototypes at import and calls a fraction of them, so
this is where lazily compiled stubs must keep jitctypes' start-up cost down. Each
measurement is a fresh process (`python -m jitctypes` for jitctypes), the two alternating.
Three figures per process, in wall-clock ms from the moment the parent started it (so
interpreter start-up is included): `import pyglet` done, the first window created, its
first frame drawn and flipped; and the whole process's wall time, to its exit. Prints medians
with the spread and the jitctypes/stock ratios, writes target/bench-pyglet/startup.json.
"""

import argparse
import json
import os
import statistics
import sys
import time

from pyglet_processes import rerun_under_xvfb_without_display, run_child, write_json

PHASES = ("import pyglet", "window created", "first frame", "process")


def child() -> None:
    """One measurement: ms from the process start to each phase, as JSON."""
    started = float(os.environ["JITCTYPES_BENCH_STARTED"])
    marks = {}
    import pyglet

    marks["import pyglet"] = time.time()
    window = pyglet.window.Window(640, 480, vsync=False)
    marks["window created"] = time.time()
    window.switch_to()
    window.dispatch_events()
    window.clear()
    window.flip()
    marks["first frame"] = time.time()
    window.close()
    stats = None
    if "jitctypes" in sys.modules:
        import jitctypes

        stats = jitctypes.stats()["stub_cache"]
    document = {phase: 1000 * (at - started) for phase, at in marks.items()}
    document["ctypes"] = sys.modules["_ctypes"].__name__
    document["stub_cache"] = stats
    print(json.dumps(document))


def measure(implementation: str) -> dict:
    started = time.time()
    environment = {**os.environ, "JITCTYPES_BENCH_STARTED": repr(started)}
    # Installed packages start from cached bytecode: a first run writes it (also for a
    # development install, whose sources are compiled anew at each start otherwise).
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    document = run_child(implementation, __file__, ["--child"], timeout=300, env=environment)
    document["process"] = 1000 * (time.time() - started)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--out", default="target/bench-pyglet")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child()
        return
    rerun_under_xvfb_without_display()
    runs: dict[str, list[dict]] = {"stock": [], "jitctypes": []}
    for implementation in runs:  # warms the file system and bytecode caches
        measure(implementation)
    for _ in range(arguments.repeat):
        for implementation in runs:  # alternating processes
            runs[implementation].append(measure(implementation))
    print(f"ms from process start, median of {arguments.repeat} alternating runs (min–max)")
    print("| phase | stock | jitctypes | jitctypes/stock |")
    print("| --- | --- | --- | --- |")
    for phase in PHASES:
        values = {name: [run[phase] for run in documents] for name, documents in runs.items()}
        stock, jit = statistics.median(values["stock"]), statistics.median(values["jitctypes"])
        spread = {name: f"{min(v):.0f}–{max(v):.0f}" for name, v in values.items()}
        print(
            f"| {phase} | {stock:.0f} ({spread['stock']}) | {jit:.0f} ({spread['jitctypes']}) "
            f"| {jit / stock:.2f} |"
        )
    cache = runs["jitctypes"][-1]["stub_cache"]
    print(
        f"\njitctypes compiled {cache['stubs']} direct and {cache.get('entry_stubs', 0)} entry "
        f"stubs in {cache['compile_time_us'] / 1000:.1f} ms, {cache['code_bytes']} bytes"
    )
    write_json(arguments.out, "startup.json", runs)


if __name__ == "__main__":
    main()
