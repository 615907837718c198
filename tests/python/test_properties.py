"""The bad-input properties (tests/properties/bad_input.py) in a child process: a crash
fails this test and names the property it happened in. The test command runs 500 examples
per property; `python tests/properties/bad_input.py --examples 2000` is the long run."""

import subprocess
import sys
from pathlib import Path

PROPERTIES = Path(__file__).resolve().parents[1] / "properties" / "bad_input.py"


def test_bad_input_gets_stocks_exception_and_never_crashes():
    done = subprocess.run(
        [sys.executable, str(PROPERTIES), "--examples", "500"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "all as stock" in done.stdout
