"""Runs pyglet examples on stock ctypes and on jitctypes and compares the outcomes (issue 6).

    xvfb-run -a -s '-screen 0 1280x1024x24' .venv/bin/python tests/pyglet/compare_examples.py \
        --examples-dir /tmp/pyglet-src/pyglet-2.1.19/examples [--seconds 3] [--out DIR] [EXAMPLE...]

(without a ``DISPLAY`` it re-runs itself under that ``xvfb-run``). Each example runs in its own
process through ``run_example.py``, first on stock, then with ``python -m jitctypes``, with a
screenshot of each window at frame 5. Per example and implementation it reports the outcome:
``ran``, ``exception: <last line>``, ``crash: SIGNAL`` or ``timeout``; the frame rates; and for
the examples whose frame 5 does not depend on time (``STATIC``) whether the screenshots are
equal pixel for pixel. Logs and screenshots go to ``--out`` (default /tmp/pyglet-compare).
The last line is ``N passed, N failed``: an example passes when jitctypes does what stock does
(same outcome, same printed output, same screenshots for static examples).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "run_example.py")
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]

# Issue 6's list, with 2.1.x paths (shapes.py and sprite/display_sprite.py for "a sprite or
# shapes example").
EXAMPLES = [
    "opengl/opengl_core.py",
    "opengl/opengl_context.py",
    "window/multiple_windows.py",
    "programming_guide/events.py",
    "text/html_label.py",
    "timer.py",
    "events/window_platform_event.py",
    "window/fixed_resolution.py",
    "hello_world.py",
    "shapes.py",
    "sprite/display_sprite.py",
]
# Frame 5 of these is the same on every run (no clock-driven animation, no randomness).
STATIC = {
    "window/multiple_windows.py",  # rotates by a fixed step per frame
    "programming_guide/events.py",
    "text/html_label.py",
    "events/window_platform_event.py",
    "hello_world.py",
    "sprite/display_sprite.py",
    "timer.py",  # shows 00:00 until space is pressed
    "graphics/image_display.py",
    "programming_guide/hello_world.py",
    "text/advanced_font.py",
}


# Synthetic input sent one second into the loop (run_example.py --xdotool), so event handlers
# and the X event decoding run too; %WIN is the example's first window.
INPUTS = {
    "programming_guide/events.py": [
        "mousemove --window %WIN 100 100",
        "click 1",
        "key --window %WIN a Left Return",
    ],
    "events/window_platform_event.py": ["set_window --name renamed %WIN"],
    "opengl/opengl_core.py": ["mousemove --window %WIN 100 100", "click 4 click 4 click 5"],
    "timer.py": ["key --window %WIN space"],
    "window/multiple_windows.py": ["windowsize %WIN 260 240"],
    "text/html_label.py": ["windowsize %WIN 500 400"],
    "window/fixed_resolution.py": ["windowsize %WIN 640 480"],
    "text/text_input.py": [
        "mousemove --window %WIN 200 200",
        "click 1",
        "type --window %WIN --delay 20 héllo wörld",
        "key --window %WIN Left BackSpace",
    ],
    "game/version5/asteroid.py": ["key --window %WIN Up Left space space"],
}

# Command-line arguments of the examples that need some ({res}: examples/resources, {out}: a
# scratch directory with a one-second 440 Hz WAV made here as {out}/tone.wav).
ARGS = {
    "graphics/image_display.py": ["{res}/kitten.jpg"],
    "graphics/image_convert.py": ["{res}/pyglet.png", "{out}/converted.png"],
    "media/media_info.py": ["{out}/tone.wav"],
    "media/media_player.py": ["{out}/tone.wav"],
}


def make_tone(path: str) -> None:
    import math
    import struct
    import wave

    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / 22050)))
                for i in range(22050)
            )
        )


def default_examples_dir() -> str | None:
    found = sorted(glob.glob("/tmp/pyglet-src/pyglet-*/examples"))
    return found[-1] if found else None


def run_one(python: str, impl: str, example: str, seconds: float, out: str, extra: list[str]):
    os.makedirs(out, exist_ok=True)
    cmd = [python] + (["-m", "jitctypes"] if impl == "jitctypes" else [])
    cmd += [
        RUNNER,
        example,
        "--seconds",
        str(seconds),
        "--shots",
        os.path.join(out, "shots"),
        *extra,
    ]
    if impl == "jitctypes":
        cmd += ["--stats", os.path.join(out, "stats.json")]
    for rel, inputs in INPUTS.items():
        if example.endswith("/" + rel):
            cmd += [a for i in inputs for a in ("--xdotool", i)]
    for rel, example_args in ARGS.items():
        if example.endswith("/" + rel):
            res = os.path.join(example[: -len(rel)], "resources")
            cmd += ["--", *(a.format(res=res, out=out) for a in example_args)]
            make_tone(os.path.join(out, "tone.wav"))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        code, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    with open(os.path.join(out, "stdout.txt"), "w") as f:
        f.write(stdout)
    with open(os.path.join(out, "stderr.txt"), "w") as f:
        f.write(stderr)
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if code is None:
        outcome = "timeout"
    elif code < 0:
        outcome = f"crash: {signal.Signals(-code).name}"
    elif result is None:
        last = [ln for ln in stderr.splitlines() if ln.strip()]
        outcome = f"no result (exit {code}): {last[-1] if last else ''}"
    elif result["outcome"] == "exception":
        outcome = f"exception: {result['exception']}"
    else:
        outcome = "ran"
    if result and result.get("unraisable"):
        outcome += f" (+{len(result['unraisable'])} unraisable: {result['unraisable'][0]})"
    if result and code not in (0, 1):  # e.g. a crash at exit after the result was printed
        outcome += f" [exit {code if code is None or code >= 0 else signal.Signals(-code).name}]"
    printed = [ln for ln in stdout.splitlines() if not ln.startswith(("RESULT ", "run_example:"))]
    return outcome, result, printed


def compare_shots(a: dict | None, b: dict | None) -> str:
    if not a or not b:
        return "-"
    wa, wb = a.get("windows", []), b.get("windows", [])
    if not wa and not wb:
        return "no window"
    if len(wa) != len(wb):
        return f"windows {len(wa)} vs {len(wb)}"
    verdicts = []
    for x, y in zip(wa, wb, strict=True):
        if "shot_sha256" not in x or "shot_sha256" not in y:
            verdicts.append("no shot")
        elif x["shot_sha256"] == y["shot_sha256"]:
            verdicts.append("equal")
        else:
            verdicts.append(f"DIFFER ({differing_pixels(x, y)} px)")
    return ", ".join(verdicts)


def differing_pixels(x: dict, y: dict) -> str:
    if x.get("shot_size") != y.get("shot_size"):
        return f"size {x.get('shot_size')} vs {y.get('shot_size')}"
    with open(x["shot"][:-4] + ".rgba", "rb") as f:
        ra = f.read()
    with open(y["shot"][:-4] + ".rgba", "rb") as f:
        rb = f.read()
    return str(sum(ra[i : i + 4] != rb[i : i + 4] for i in range(0, min(len(ra), len(rb)), 4)))


def fast_path_share(out: str) -> tuple[int, int]:
    """(calls through the fast path, all calls) of a jitctypes run, from its stats."""
    try:
        with open(os.path.join(out, "stats.json")) as f:
            signatures = json.load(f)["signatures"]
    except (OSError, KeyError, ValueError):
        return 0, 0
    fast = sum(entry["fast_calls"] for entry in signatures.values())
    general = sum(entry["general_calls"] for entry in signatures.values())
    return fast, fast + general


def fps(result: dict | None) -> str:
    if not result or not result.get("windows"):
        return "-"
    return "/".join(str(w.get("fps", "-")) for w in result["windows"])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "examples", nargs="*", help="paths relative to --examples-dir (default: issue 6's list)"
    )
    ap.add_argument(
        "--examples-dir", default=os.environ.get("PYGLET_EXAMPLES") or default_examples_dir()
    )
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default="/tmp/pyglet-compare")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--no-input", action="store_true", help="send no synthetic input (INPUTS)")
    ap.add_argument("--interval", help="passed to run_example.py (0: draw as fast as possible)")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        if not shutil.which("xvfb-run"):
            print(
                "compare_examples: no DISPLAY and no xvfb-run (scripts/setup-pyglet.sh)",
                file=sys.stderr,
            )
            return 2
        return subprocess.call(XVFB + [sys.executable, os.path.abspath(__file__), *argv])
    if not args.examples_dir or not os.path.isdir(args.examples_dir):
        print(
            "compare_examples: --examples-dir is required (pyglet's sdist examples/)",
            file=sys.stderr,
        )
        return 2
    extra = ["--interval", args.interval] if args.interval is not None else []
    if args.no_input:
        INPUTS.clear()
    passed = failed = 0
    report = []
    for rel in args.examples or EXAMPLES:
        example = os.path.join(args.examples_dir, rel)
        name = rel.replace("/", "_")[:-3]
        runs = {}
        for impl in ("stock", "jitctypes"):
            runs[impl] = run_one(
                args.python, impl, example, args.seconds, os.path.join(args.out, impl, name), extra
            )
        (so, sr, sp), (jo, jr, jp) = runs["stock"], runs["jitctypes"]
        shots = compare_shots(sr, jr) if rel in STATIC else "(not compared: animated)"
        same_output = sp == jp
        served = bool(jr) and jr.get("ctypes") == "jitctypes._ctypes"
        fast, calls = fast_path_share(os.path.join(args.out, "jitctypes", name))
        ok = (
            jo == "ran"
            and so == jo
            and same_output
            and served
            and "DIFFER" not in shots
            and "windows" not in shots
        )
        passed, failed = passed + ok, failed + (not ok)
        print(
            f"{'ok  ' if ok else 'FAIL'} {rel}\n     stock:     {so}  fps {fps(sr)}"
            f"\n     jitctypes: {jo}  fps {fps(jr)}\n     screenshots: {shots}"
            f"\n     example's output: {'same' if same_output else 'DIFFERS'} ({len(sp)} lines)"
            f"\n     served by jitctypes: {served}; fast path: {fast} of {calls} calls",
            flush=True,
        )
        report.append(
            {
                "example": rel,
                "ok": ok,
                "stock": so,
                "jitctypes": jo,
                "screenshots": shots,
                "same_output": same_output,
                "served_by_jitctypes": served,
                "fast_calls": fast,
                "calls": calls,
                "stock_result": sr,
                "jitctypes_result": jr,
            }
        )
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
