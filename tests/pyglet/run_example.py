"""Runs ONE pyglet example for a few seconds under the current X display and reports how it went.

    python tests/pyglet/run_example.py EXAMPLE.py [--seconds N] [--shots DIR] [-- ARGS]  # stock
    python -m jitctypes tests/pyglet/run_example.py EXAMPLE.py [options]  # on jitctypes

The example runs as ``__main__`` (runpy, its own directory first on ``sys.path`` and as the
working directory, so ``pyglet.resource`` finds ``../resources``). ``pyglet.app.run`` is
wrapped: it schedules ``pyglet.app.exit`` after ``--seconds`` and counts the frames each window
draws (``on_refresh``, dispatched by ``Window.draw`` after ``on_draw`` and before ``flip``).
With ``--shots DIR`` the back buffer of each window is saved at frame ``--shot-frame`` (before
the flip, so it is the frame just drawn) as ``DIR/window<i>.png``, with the SHA-256 of its
RGBA bytes in the result. Examples that never enter the event loop just run to their end.

The last line printed is ``RESULT {json}``: ``ctypes`` (the module that served ``_ctypes``),
``outcome`` (``ran`` / ``exception``), ``exception`` (its last traceback line), ``unraisable``
(exceptions swallowed by ctypes callbacks and ``__del__``), per-window ``frames``/``fps`` and
screenshot hashes, and timings. Exit status: 0 ran, 1 raised, 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import runpy
import sys
import time
import traceback

T0 = time.perf_counter()


def rss_kb() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("example", help="path of the example .py file")
    ap.add_argument("--seconds", type=float, default=3.0, help="time in the event loop (3)")
    ap.add_argument("--shots", metavar="DIR", help="save one screenshot per window into DIR")
    ap.add_argument("--shot-frame", type=int, default=5, help="frame to capture (5)")
    ap.add_argument(
        "--stats",
        metavar="FILE",
        help="on jitctypes: write jitctypes.stats() (call paths per signature) as JSON",
    )
    ap.add_argument(
        "--xdotool",
        metavar="ARGS",
        action="append",
        default=[],
        help="run `xdotool ARGS` (repeatable, in order) --input-at seconds into the loop, "
        "with %%WIN replaced by the first window's X id, e.g. "
        "'key --window %%WIN a' or 'mousemove --window %%WIN 50 50 click 1'",
    )
    ap.add_argument("--input-at", type=float, default=1.0, help="when to send --xdotool input (1)")
    ap.add_argument(
        "--interval",
        type=float,
        default=None,
        help="override app.run's redraw interval (0 = as fast as possible, to "
        "measure frame rate); default: the example's own",
    )
    example_args: list[str] = []
    if "--" in argv:  # run_example.py EXAMPLE [options] -- [arguments for the example]
        i = argv.index("--")
        argv, example_args = argv[:i], argv[i + 1 :]
    args = ap.parse_args(argv)
    example = os.path.abspath(args.example)
    if not os.path.isfile(example):
        print(f"run_example: no such file: {example}", file=sys.stderr)
        return 2

    unraisable: list[str] = []
    default_hook = sys.unraisablehook

    def hook(u):  # ctypes callbacks report their exceptions here
        unraisable.append("".join(traceback.format_exception_only(u.exc_type, u.exc_value)).strip())
        default_hook(u)

    sys.unraisablehook = hook

    result: dict = {"example": args.example, "outcome": "ran", "exception": None}
    t_import = time.perf_counter()
    import pyglet  # first import of ctypes happens here (or in jitctypes' install())
    import pyglet.app
    import pyglet.clock
    import pyglet.image
    import pyglet.window

    ct = sys.modules.get("_ctypes")
    result["ctypes"] = getattr(ct, "__name__", None)
    result["ctypes_file"] = getattr(ct, "__file__", None)
    result["pyglet"] = pyglet.version
    print(f"run_example: _ctypes = {ct!r}", flush=True)
    result["import_s"] = round(time.perf_counter() - t_import, 3)

    windows: dict[int, dict] = {}  # id(window) -> stats
    loop = {"entered": False, "seconds": None}

    def capture(win, stats):
        try:
            buf = pyglet.image.get_buffer_manager().get_color_buffer()
            img = buf.get_image_data()
            raw = img.get_data("RGBA", img.width * 4)
            stats["shot_sha256"] = hashlib.sha256(raw).hexdigest()
            stats["shot_size"] = [img.width, img.height]
            os.makedirs(args.shots, exist_ok=True)
            path = os.path.join(args.shots, f"window{stats['index']}.png")
            img.save(path)
            with open(path[:-4] + ".rgba", "wb") as f:
                f.write(raw)
            stats["shot"] = path
        except Exception as e:  # a failing screenshot is reported, not fatal
            stats["shot_error"] = f"{type(e).__name__}: {e}"

    def watch(win):
        if id(win) in windows:
            return
        stats = {"index": len(windows), "caption": getattr(win, "caption", None), "frames": 0}
        windows[id(win)] = stats

        def on_refresh(dt):
            stats["frames"] += 1
            if args.shots and stats["frames"] == args.shot_frame:
                capture(win, stats)

        win.push_handlers(on_refresh=on_refresh)

    def send_input(dt):
        import shlex
        import subprocess
        import threading

        wins = sorted(pyglet.app.windows, key=lambda w: (str(w.caption), w.width, w.height))
        xid = str(getattr(wins[0], "_window", "")) if wins else ""
        cmds = [
            ["xdotool", *(a.replace("%WIN", xid) for a in shlex.split(c))] for c in args.xdotool
        ]

        def send():  # in order, off the event loop's thread (xdotool may wait for X replies)
            for argv_ in cmds:
                subprocess.run(argv_, timeout=10)
                print(f"run_example: sent {' '.join(argv_)}", flush=True)

        threading.Thread(target=send, daemon=True).start()

    loop_cls = type(pyglet.app.event_loop)
    original_run = loop_cls.run

    def run(self, interval=1 / 60, *a, **kw):
        if args.interval is not None and interval is not None:
            interval = args.interval
        # app.windows is a WeakSet: number the windows in a stable order
        for win in sorted(pyglet.app.windows, key=lambda w: (str(w.caption), w.width, w.height)):
            watch(win)
        pyglet.clock.schedule_once(lambda dt: pyglet.app.exit(), args.seconds)
        if args.xdotool:
            pyglet.clock.schedule_once(send_input, args.input_at)
        loop["entered"] = True
        loop["rss_start_kb"] = rss_kb()
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return original_run(self, interval, *a, **kw)
        finally:
            loop["seconds"] = round(time.perf_counter() - start, 3)
            loop["cpu_s"] = round(time.process_time() - cpu, 3)
            loop["rss_end_kb"] = rss_kb()

    loop_cls.run = run

    example_dir = os.path.dirname(example)
    import pyglet.resource  # its default loader took this file's directory as the script home

    pyglet.resource._default_loader._script_home = example_dir
    sys.argv = [example, *example_args]
    sys.path.insert(0, example_dir)
    os.chdir(example_dir)
    t_run = time.perf_counter()
    try:
        runpy.run_path(example, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            result["outcome"] = "exception"
            result["exception"] = f"SystemExit: {e.code}"
    except BaseException as e:  # noqa: BLE001 - report everything, KeyboardInterrupt too
        traceback.print_exc()
        result["outcome"] = "exception"
        result["exception"] = traceback.format_exception_only(type(e), e)[-1].strip()
    result["run_s"] = round(time.perf_counter() - t_run, 3)
    result["loop_s"] = loop["seconds"]
    for key in ("cpu_s", "rss_start_kb", "rss_end_kb"):  # cpu: all threads (llvmpipe's too)
        result["loop_" + key] = loop.get(key)
    result["entered_loop"] = loop["entered"]
    result["unraisable"] = unraisable
    result["windows"] = list(windows.values())
    for w in result["windows"]:
        if loop["seconds"]:
            w["fps"] = round(w["frames"] / loop["seconds"], 1)
    result["total_s"] = round(time.perf_counter() - T0, 3)
    if args.stats and "jitctypes" in sys.modules and result["ctypes"] == "jitctypes._ctypes":
        import jitctypes

        with open(args.stats, "w") as f:
            json.dump(jitctypes.stats(), f, indent=1, default=repr)
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if result["outcome"] == "ran" else 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # pyglet's atexit/__del__ handlers may still touch GL or X; the result is already out.
    raise SystemExit(code)
