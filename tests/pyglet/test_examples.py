"""Issue 6: the seed's pyglet examples (2.1.x paths) on jitctypes, compared with stock.

Runs `compare_examples.py` (each example in its own process under Xvfb, first on stock
ctypes, then with `python -m jitctypes`) and checks every example's verdict: it ran, was
served by `jitctypes._ctypes`, printed what stock printed, and, for the examples whose
frame 5 does not depend on time, drew identical pixels. Needs the examples directory of
pyglet's sdist in `PYGLET_EXAMPLES` (scripts/pyglet-examples.sh sets it up)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from compare_examples import EXAMPLES  # issue 6's list, with pyglet 2.1.x paths

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "target" / "pyglet-compare"


@pytest.fixture(scope="module")
def report():
    examples = os.environ.get("PYGLET_EXAMPLES")
    assert examples and Path(examples).is_dir(), "run scripts/pyglet-examples.sh"
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "compare_examples.py"),
            "--examples-dir",
            examples,
            "--out",
            str(OUT),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(result.stdout)
    assert (OUT / "report.json").is_file(), result.stderr
    return {entry["example"]: entry for entry in json.loads((OUT / "report.json").read_text())}


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_on_jitctypes_as_on_stock(report, example):
    entry = report[example]
    assert entry["jitctypes"] == "ran", entry["jitctypes"]
    assert entry["served_by_jitctypes"]
    assert entry["same_output"]
    assert "DIFFER" not in entry["screenshots"], entry["screenshots"]
    assert entry["ok"], entry


def test_calls_went_through_compiled_stubs(report):
    fast = sum(entry["fast_calls"] for entry in report.values())
    calls = sum(entry["calls"] for entry in report.values())
    print(f"fast path: {fast} of {calls} calls ({100 * fast / max(calls, 1):.1f} %)")
    assert calls > 0 and fast / calls > 0.5
