"""What the pyglet benchmarks share: each measurement is a fresh Python process, run on
stock ctypes or under ``python -m jitctypes``, that prints one JSON document as its last
line; and all of it runs under Xvfb when there is no display."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def rerun_under_xvfb_without_display() -> None:
    """Without a display, runs this very command again under ``xvfb-run`` and exits."""
    if os.environ.get("DISPLAY"):
        return
    if not shutil.which("xvfb-run"):
        raise SystemExit("no DISPLAY and no xvfb-run: run scripts/setup-pyglet.sh")
    screen = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]
    raise SystemExit(subprocess.call([*screen, sys.executable, *sys.argv]))


def run_child(
    implementation: str, script: str, arguments: list[str], timeout: int, env=None
) -> dict:
    """Runs `script` with `arguments` in a fresh process on `implementation` ("stock" or
    "jitctypes"); returns the JSON document it printed last, after checking that the
    implementation asked for served its ctypes (the document's "ctypes" entry)."""
    command = [sys.executable]
    if implementation == "jitctypes":
        command += ["-m", "jitctypes"]
    command += [script, *arguments]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=True, env=env
    )
    document = json.loads(result.stdout.strip().splitlines()[-1])
    expected = "jitctypes._ctypes" if implementation == "jitctypes" else "_ctypes"
    if document["ctypes"] != expected:
        raise RuntimeError(f"{implementation} run was served by {document['ctypes']}")
    return document


def write_json(out: str, name: str, document) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(document, indent=1))
    print(f"wrote {folder / name}")
