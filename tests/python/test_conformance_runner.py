"""The conformance runner itself (python -m jitctypes.conformance), on one small test file."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from jitctypes import conformance

SMALL_FILE = "test_strings"
TOTALS_LINE = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")
STORED_BASELINE = (
    Path(__file__).resolve().parents[1]
    / "conformance"
    / f"baseline-{sys.version_info[0]}.{sys.version_info[1]}.json"
)


def run_runner(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str, tuple]:
    """Exit status, all output, and the totals of its last line."""
    completed = subprocess.run(
        [sys.executable, "-m", "jitctypes.conformance", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = completed.stdout + completed.stderr
    last_line = completed.stdout.splitlines()[-1]
    match = TOTALS_LINE.match(last_line)
    assert match, f"last line is not the totals: {last_line!r}\n{output}"
    return completed.returncode, output, tuple(int(number) for number in match.groups())


def test_stock_run_passes_and_writes_per_test_outcomes(tmp_path):
    written = tmp_path / "outcomes.json"
    arguments = ["--implementation", "stock", "-k", SMALL_FILE, "--baseline-write", str(written)]
    if STORED_BASELINE.is_file():
        arguments += ["--compare", str(STORED_BASELINE)]
    status, output, (passed, failed, skipped) = run_runner(*arguments)
    assert status == 0, output
    assert passed > 0 and failed == 0
    if STORED_BASELINE.is_file():
        assert "0 differences from" in output

    document = json.loads(written.read_text())
    tests = document["files"][SMALL_FILE]["tests"]
    assert document["implementation"] == "stock"
    assert sum(entry["outcome"] == "passed" for entry in tests.values()) == passed
    assert all(entry["reason"] for entry in tests.values() if entry["outcome"] == "skipped")
    assert len(tests) == passed + skipped


def test_jitctypes_run_matches_stock_per_test():
    arguments = ["--implementation", "jitctypes", "-k", SMALL_FILE]
    if STORED_BASELINE.is_file():
        arguments += ["--compare", str(STORED_BASELINE)]
    status, output, (passed, failed, _) = run_runner(*arguments)
    assert status == 0, output
    assert passed > 0 and failed == 0, output
    assert "_ctypes: jitctypes._ctypes" in output, output
    if STORED_BASELINE.is_file():
        assert "0 differences from" in output, output


def test_a_crash_and_a_hang_cost_one_file_each(tmp_path):
    # A sitecustomize in the children kills one test with SIGSEGV and hangs another.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, signal, time, unittest\n"
        "call_test_method = unittest.TestCase._callTestMethod\n"
        "def sabotaged(self, method):\n"
        "    if self.id().endswith('test_strings.StringArrayTestCase.test_c_buffer_value'):\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    if self.id().endswith('test_anon.AnonTest.test_nested'):\n"
        "        time.sleep(600)\n"
        "    return call_test_method(self, method)\n"
        "unittest.TestCase._callTestMethod = sabotaged\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    status, output, (passed, failed, _) = run_runner(
        "--implementation", "stock", "-k", SMALL_FILE, "-k", "test_anon", "--timeout", "3", env=env
    )
    assert status == 1
    assert re.search(r"killed by signal SIGSEGV while running \S+test_c_buffer_value", output)
    assert re.search(r"timed out after 3 s while running \S+test_nested", output)
    assert "Fatal Python error: Segmentation fault" in output  # the child's faulthandler
    assert passed > 0 and failed >= 2


def test_a_file_that_dies_without_a_baseline_counts_as_one_failure():
    records = [{"event": "setup"}, {"event": "outcome", "test": "t.A.a", "outcome": "passed"}]
    run = conformance.interpret_child_run("t", records, -9, False, 300.0, baseline_tests=None)
    assert run.status == "crashed" and run.message == "killed by signal SIGKILL"
    assert run.counted_as_one
    assert [outcome.outcome for outcome in run.tests.values()] == ["passed", "not_run"]

    finished = [*records, {"event": "done"}]
    run = conformance.interpret_child_run("t", finished, 1, False, 300.0, baseline_tests=None)
    assert run.message == "exited with status 1 after all its tests had run"
    assert conformance.count([run]).failed == 1


def test_known_differences_are_listed_with_their_reasons_and_accepted(tmp_path, capsys):
    differences = [
        "t.A.fails: passed -> failed",
        "t.A.errs: passed -> error",
        "t.A.skips: passed -> skipped (no reason)",
        "t.A.other: passed -> failed",
    ]
    known = {
        "t.A.fails": "a reason",
        "t.A.errs": "another",
        "t.A.skips": "only failures are accepted",
        "t.A.gone": "no longer differs",
    }
    known["u.B.other_file"] = "a file that did not run"
    remaining, accepted = conformance.set_known_apart(differences, known, {"t"})
    assert accepted == {"t.A.fails", "t.A.errs"}
    assert remaining == [
        "t.A.skips: passed -> skipped (no reason)",
        "t.A.other: passed -> failed",
        "t.A.gone: listed as a known difference, but it no longer differs",
        "t.A.skips: listed as a known difference, but it no longer differs",
    ]
    printed = capsys.readouterr().out
    assert "t.A.fails: a reason" in printed and "t.A.errs: another" in printed

    unreadable = tmp_path / "known.json"
    unreadable.write_text('{"t.A.fails": ""}')
    try:
        conformance.load_known_differences(unreadable)
    except conformance.UsageError as error:
        assert "written reason" in str(error)
    else:
        raise AssertionError("a known difference without a reason was accepted")


def test_a_run_whose_only_failure_is_known_succeeds(tmp_path):
    if not STORED_BASELINE.is_file():
        return
    failing = "test_strings.StringArrayTestCase.test_c_buffer_value"
    (tmp_path / "sitecustomize.py").write_text(
        "import unittest\n"
        "call_test_method = unittest.TestCase._callTestMethod\n"
        "def sabotaged(self, method):\n"
        f"    if self.id().endswith({failing!r}):\n"
        "        raise AssertionError('made to fail')\n"
        "    return call_test_method(self, method)\n"
        "unittest.TestCase._callTestMethod = sabotaged\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    arguments = ["--implementation", "stock", "-k", SMALL_FILE, "--compare", str(STORED_BASELINE)]
    status, output, (_, failed, _) = run_runner(*arguments, env=env)
    assert status == 1 and failed == 1, output
    known = tmp_path / "known.json"
    assert f"{failing}: passed -> failed" in output, output
    known.write_text(json.dumps({failing: "made to fail by this test"}))
    status, output, (_, failed, _) = run_runner(*arguments, "--known", str(known), env=env)
    assert status == 0 and failed == 1, output
    assert "made to fail by this test" in output
