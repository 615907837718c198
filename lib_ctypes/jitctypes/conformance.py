"""Conformance runner: CPython's own ctypes test suite, unmodified, on jitctypes' ``_ctypes``.

Usage (after ``pip install .``; from a source tree without installing, use
``PYTHONPATH=lib_ctypes python -m jitctypes.conformance`` or
``python lib_ctypes/jitctypes/conformance.py``)::

    python -m jitctypes.conformance                          # the suite on jitctypes._ctypes
    python -m jitctypes.conformance --implementation stock   # the baseline: CPython's C _ctypes
    python -m jitctypes.conformance -k test_strings -k 'test_struct*' -v
    python -m jitctypes.conformance --compare tests/conformance/baseline-3.11.json
    python -m jitctypes.conformance --implementation stock \\
        --baseline-write tests/conformance/baseline-3.11.json

The suite is the one of the running interpreter's standard library: the package
``test.test_ctypes`` (3.12+) or ``ctypes.test`` (3.11). Every test file runs in a subprocess
of its own, with a timeout, so that a segfault or a hang costs one file, which is reported
(signal or exit status, the test that was running, the last lines of its output). The child
streams one JSON line per test event to a file, so the tests finished before a crash keep
their outcomes.

``--implementation jitctypes`` makes every child put ``jitctypes._ctypes`` into
``sys.modules['_ctypes']`` before anything imports ctypes, import ctypes itself and check that
CPython's C extension ``_ctypes`` was not loaded (before and after the tests). The suite
imports ctypes through ``test.support.import_helper.import_module``, which turns an
ImportError into a skip of the whole file: the child importing ctypes first makes such a
failure an error of that file instead.

Counting: a file that fails to set up, fails to import, crashes or times out counts its tests
as failed. Which tests it has is known only from a stored run (``--baseline``, ``--compare``,
or by default ``tests/conformance/baseline-X.Y.json`` found from the current directory or the
source tree); without one, such a file counts as one failure, and the report says so.
``--compare`` lists every test whose outcome (or skip reason) differs from the stored run.
``--known`` names a JSON file of differences that are understood and accepted, each test id
with the written reason (for example CPython 3.13's tests of its C classes' exact MRO, which
pyo3-made base classes cannot have): they are listed with their reasons and do not fail the
run, and one that no longer differs does, so that the file stays true.

The last line printed is ``N passed, N failed, N skipped``. The exit status is 0 only if no
test failed (and, with ``--compare``, no outcome differs) but for the ``--known`` ones; 2 on
a usage or setup error.
"""

from __future__ import annotations

import argparse
import faulthandler
import fnmatch
import importlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
import unittest
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

IMPLEMENTATIONS = ("stock", "jitctypes")
# Where the suite lives, newest layout first: 3.12 moved it from ctypes.test to test.test_ctypes.
SUITE_PACKAGES = ("test.test_ctypes", "ctypes.test")
BASELINE_FORMAT = 1
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_JOBS = 2

PASSED_OUTCOMES = frozenset({"passed", "expected_failure"})
SKIPPED_OUTCOMES = frozenset({"skipped"})
# "crashed": the test running when its process died or hung; "not_run": a test of a file that
# did not run to completion (known from the baseline, or a stand-in for the whole file).
FAILED_OUTCOMES = frozenset({"failed", "error", "unexpected_success", "crashed", "not_run"})
# When one test reports several results (subtests, an error in tearDown), the worst one stands.
OUTCOME_SEVERITY = {
    "passed": 0,
    "expected_failure": 0,
    "skipped": 1,
    "unexpected_success": 2,
    "failed": 3,
    "error": 4,
}

CHILD_EXIT_FILE_FAILED = 3
DETAIL_LINES_KEPT = 30
OUTPUT_LINES_SHOWN = 20
DETAIL_LINES_SHOWN = 6

# The child loads this very file by path rather than as ``jitctypes.conformance``, so that
# nothing (not even jitctypes/__init__.py) is imported before the chosen _ctypes is in place.
CHILD_BOOTSTRAP = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_jitctypes_conformance_child', sys.argv[1])\n"
    "runner = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = runner\n"
    "spec.loader.exec_module(runner)\n"
    "sys.exit(runner.child_main(sys.argv[2]))\n"
)


# --------------------------------------------------------------------------------------------
# Data shared by the parent and the child


@dataclass
class TestOutcome:
    outcome: str
    reason: str | None = None  # skip reason, or why the test did not run
    detail: str | None = None  # last lines of the traceback(s)

    def to_json(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestOutcome:
        return cls(data["outcome"], data.get("reason"), data.get("detail"))

    def describe(self) -> str:
        if self.outcome == "skipped" and self.reason:
            return f"skipped ({self.reason})"
        return self.outcome.replace("_", " ")


@dataclass
class ChildConfig:
    module: str  # e.g. ctypes.test.test_strings
    package: str  # e.g. ctypes.test
    implementation: str
    records_path: str
    package_root: str  # the directory holding the jitctypes package this runner belongs to
    hang_dump_after: float  # seconds after which faulthandler dumps the stacks of a hang


# --------------------------------------------------------------------------------------------
# The child: one test file in a fresh interpreter


class SetupError(Exception):
    """ctypes could not be set up on the requested implementation of _ctypes."""


class RecordWriter:
    """Appends JSON lines to a file, flushed at once so that they survive a crash."""

    def __init__(self, path: str) -> None:
        self._stream: TextIO = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def format_exception_tail(err: Any) -> str:
    lines = "".join(traceback.format_exception(*err)).splitlines()
    return "\n".join(lines[-DETAIL_LINES_KEPT:])


def describe_exception(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class RecordingResult(unittest.TestResult):
    """A unittest result that streams one record per test event through a RecordWriter.

    The outcome of a running test is written when it stops, after all its subtests and
    tearDown; errors reported outside any test (setUpClass, setUpModule) are written at once.
    """

    def __init__(self, records: RecordWriter, relative_id: Callable[[str], str]) -> None:
        super().__init__()
        self._records = records
        self._relative_id = relative_id
        self._running: str | None = None
        self._running_outcome: TestOutcome | None = None

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._running = self._relative_id(test.id())
        self._running_outcome = None
        self._records.write({"event": "start", "test": self._running})

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        if self._running is None or self._relative_id(test.id()) != self._running:
            return  # 3.12+ stops a skipped test it never started; its skip is already written
        outcome = self._running_outcome or TestOutcome("error", detail="no outcome was reported")
        self._write_outcome(self._running, outcome)
        self._running = None
        self._running_outcome = None

    def _write_outcome(self, test_id: str, outcome: TestOutcome) -> None:
        self._records.write({"event": "outcome", "test": test_id, **outcome.to_json()})

    def _note(self, test: unittest.TestCase, outcome: TestOutcome) -> None:
        test_id = self._relative_id(test.id())
        if test_id != self._running:
            self._write_outcome(test_id, outcome)
            return
        previous = self._running_outcome
        if previous is None:
            self._running_outcome = outcome
            return
        worse, better = (
            (outcome, previous)
            if OUTCOME_SEVERITY[outcome.outcome] > OUTCOME_SEVERITY[previous.outcome]
            else (previous, outcome)
        )
        details = [text for text in (better.detail, worse.detail) if text]
        worse.detail = "\n".join(details) or None
        self._running_outcome = worse

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._note(test, TestOutcome("passed"))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._note(test, TestOutcome("failed", detail=format_exception_tail(err)))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        self._note(test, TestOutcome("error", detail=format_exception_tail(err)))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._note(test, TestOutcome("skipped", reason=reason))

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        self._note(test, TestOutcome("expected_failure"))

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._note(test, TestOutcome("unexpected_success"))

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        if err is None:
            return  # the test itself reports success once all its subtests passed
        kind = "failed" if issubclass(err[0], test.failureException) else "error"
        self._note(test, TestOutcome(kind, detail=f"{subtest}\n{format_exception_tail(err)}"))


def stock_extension_origin() -> str | None:
    """Where ``import _ctypes`` would find CPython's C extension (None if it is built in)."""
    spec = importlib.machinery.PathFinder.find_spec("_ctypes")
    return os.path.realpath(spec.origin) if spec is not None and spec.origin else None


def find_loaded_stock_extension(stock_origin: str | None) -> str | None:
    if stock_origin is None:
        return None
    for name, module in list(sys.modules.items()):
        module_file = getattr(module, "__file__", None)
        if module_file and os.path.realpath(module_file) == stock_origin:
            return f"module {name!r} from {module_file}"
    return None


def put_on_sys_path(directory: str) -> None:
    wanted = os.path.realpath(directory)
    if not any(os.path.realpath(entry or os.curdir) == wanted for entry in sys.path):
        sys.path.insert(0, directory)


def set_up_ctypes(config: ChildConfig, stock_origin: str | None) -> dict[str, str]:
    """Imports ctypes on the requested _ctypes; returns where each piece came from."""
    replacement = None
    implementation_name = "CPython's _ctypes"
    if config.implementation == "jitctypes":
        implementation_name = "jitctypes._ctypes"
        preloaded = sorted({"ctypes", "_ctypes"} & sys.modules.keys())
        if preloaded:
            raise SetupError(
                f"{' and '.join(preloaded)} imported before the runner could install "
                "jitctypes._ctypes (by a sitecustomize or .pth file?)"
            )
        # The jitctypes package next to this runner, even when running from a source tree.
        put_on_sys_path(config.package_root)
        try:
            replacement = importlib.import_module("jitctypes._ctypes")
        except Exception as error:
            raise SetupError(
                f"jitctypes._ctypes cannot be imported: {describe_exception(error)}"
            ) from error
        sys.modules["_ctypes"] = replacement
    try:
        ctypes_module = importlib.import_module("ctypes")
    except Exception as error:
        raise SetupError(
            f"ctypes cannot be imported on {implementation_name}: {describe_exception(error)}"
        ) from error
    check_implementation(replacement, stock_origin)
    active = sys.modules["_ctypes"]
    setup = {
        "ctypes": str(ctypes_module.__file__),
        "_ctypes": f"{active.__name__} from {getattr(active, '__file__', 'built-in')}",
    }
    if replacement is not None:
        setup["jitctypes"] = str(sys.modules["jitctypes"].__file__)
    return setup


def check_implementation(replacement: Any, stock_origin: str | None) -> None:
    """Fails if CPython's C _ctypes is (also) in use under jitctypes, or not in use under stock."""
    if replacement is None:
        active_file = getattr(sys.modules.get("_ctypes"), "__file__", None)
        if stock_origin and (active_file is None or os.path.realpath(active_file) != stock_origin):
            raise SetupError(f"the stock run uses {sys.modules.get('_ctypes')!r}")
        return
    if sys.modules.get("_ctypes") is not replacement:
        raise SetupError(
            f"sys.modules['_ctypes'] is {sys.modules.get('_ctypes')!r}, not jitctypes._ctypes"
        )
    stock = find_loaded_stock_extension(stock_origin)
    if stock is not None:
        raise SetupError(f"CPython's C extension _ctypes was loaded: {stock}")


def child_main(config_json: str) -> int:
    """Runs one test file; the parent reads the records, not the exit status, for outcomes."""
    config = ChildConfig(**json.loads(config_json))
    # A segfault prints the Python stacks; a hang prints them shortly before the parent kills.
    faulthandler.enable(all_threads=True)
    faulthandler.dump_traceback_later(config.hang_dump_after, exit=False)
    stock_origin = stock_extension_origin()
    records = RecordWriter(config.records_path)
    try:
        try:
            setup = set_up_ctypes(config, stock_origin)
        except SetupError as error:
            records.write({"event": "file_error", "kind": "setup_failed", "message": str(error)})
            print(f"conformance: {error}", file=sys.stderr)
            return CHILD_EXIT_FILE_FAILED
        records.write({"event": "setup", **setup})
        replacement = sys.modules["_ctypes"] if config.implementation == "jitctypes" else None

        prefix = config.package + "."

        def relative_id(test_id: str) -> str:
            return test_id.replace(prefix, "")

        file_name = config.module.rpartition(".")[2]
        try:
            module = importlib.import_module(config.module)
            suite = unittest.defaultTestLoader.loadTestsFromModule(module)
        except unittest.SkipTest as skip:
            # What unittest's discovery does with a module that skips itself.
            records.write(
                {"event": "outcome", "test": file_name, "outcome": "skipped", "reason": str(skip)}
            )
            records.write({"event": "done"})
            return 0
        except Exception as error:
            records.write(
                {
                    "event": "file_error",
                    "kind": "import_failed",
                    "message": describe_exception(error),
                    "detail": format_exception_tail(sys.exc_info()),
                }
            )
            traceback.print_exc()
            return CHILD_EXIT_FILE_FAILED

        result = RecordingResult(records, relative_id)
        result.startTestRun()
        suite.run(result)
        result.stopTestRun()
        try:
            check_implementation(replacement, stock_origin)
        except SetupError as error:
            message = f"after the tests ran: {error}"
            records.write({"event": "file_error", "kind": "setup_failed", "message": message})
            print(f"conformance: {message}", file=sys.stderr)
            return CHILD_EXIT_FILE_FAILED
        records.write({"event": "done"})
        return 0
    finally:
        faulthandler.cancel_dump_traceback_later()
        records.close()


# --------------------------------------------------------------------------------------------
# The parent: find the suite, run the files, interpret, report


@dataclass(frozen=True)
class SuiteLocation:
    package: str
    directory: Path


@dataclass
class FileRun:
    file: str
    status: str  # ok | setup_failed | import_failed | crashed | timed_out
    message: str = ""
    tests: dict[str, TestOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    output_tail: list[str] = field(default_factory=list)
    detail: str | None = None
    setup: dict[str, str] = field(default_factory=dict)
    counted_from_baseline: int = 0  # tests that did not run, known from the baseline
    counted_as_one: bool = False  # no baseline: the whole file stands as one failure


@dataclass
class Totals:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        if outcome in PASSED_OUTCOMES:
            self.passed += 1
        elif outcome in SKIPPED_OUTCOMES:
            self.skipped += 1
        else:
            self.failed += 1

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


@dataclass
class RunSettings:
    suite: SuiteLocation
    implementation: str
    timeout: float
    baseline_tests: dict[str, dict[str, TestOutcome]]  # file -> test id -> outcome


class UsageError(Exception):
    """A problem with the arguments or the environment: exit status 2."""


def locate_suite() -> SuiteLocation:
    """The ctypes test package of the running interpreter's standard library."""
    search_roots = [Path(sysconfig.get_paths()["stdlib"])]
    for package in SUITE_PACKAGES:
        top_level = package.partition(".")[0]
        spec = importlib.util.find_spec(top_level)  # a top-level lookup imports nothing
        if spec is not None and spec.submodule_search_locations:
            search_roots += [Path(entry).parent for entry in spec.submodule_search_locations]
    for package in SUITE_PACKAGES:
        for root in search_roots:
            directory = root.joinpath(*package.split("."))
            if (directory / "__init__.py").is_file():
                return SuiteLocation(package, directory)
    raise UsageError(
        f"CPython's ctypes test suite ({' or '.join(SUITE_PACKAGES)}) is not installed "
        f"for {sys.executable}"
    )


def list_test_files(suite: SuiteLocation) -> list[str]:
    # The pattern unittest's discovery uses in the suite's load_tests.
    return sorted(path.stem for path in suite.directory.glob("test*.py"))


def select_files(files: list[str], patterns: list[str]) -> list[str]:
    """Files matching any pattern: a glob if it has wildcards, otherwise a substring."""
    if not patterns:
        return files

    def matches(name: str, pattern: str) -> bool:
        if any(character in pattern for character in "*?["):
            return fnmatch.fnmatchcase(name, pattern)
        return pattern in name

    return [name for name in files if any(matches(name, pattern) for pattern in patterns)]


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
    return records


def interpret_child_run(
    file: str,
    records: list[dict[str, Any]],
    returncode: int,
    timed_out: bool,
    timeout: float,
    baseline_tests: dict[str, TestOutcome] | None,
) -> FileRun:
    """Per-test outcomes of one file, including the tests a crash or failure kept from running."""
    run = FileRun(file, "ok")
    running: str | None = None
    file_error: dict[str, Any] | None = None
    finished = False
    for record in records:
        event = record.get("event")
        if event == "setup":
            run.setup = {key: value for key, value in record.items() if key != "event"}
        elif event == "start":
            running = record["test"]
        elif event == "outcome":
            run.tests[record["test"]] = TestOutcome.from_json(record)
            if record["test"] == running:
                running = None
        elif event == "file_error":
            file_error = record
        elif event == "done":
            finished = True

    if timed_out:
        run.status = "timed_out"
        run.message = f"timed out after {timeout:g} s"
    elif file_error is not None:
        run.status = file_error["kind"]
        run.message = file_error["message"]
        run.detail = file_error.get("detail")
    elif not finished:
        run.status, run.message = "crashed", describe_exit(returncode)
    elif returncode != 0:
        run.status = "crashed"
        run.message = f"{describe_exit(returncode)} after all its tests had run"
    if run.status == "ok":
        return run

    if file_error is not None:
        # The tests may have run on CPython's _ctypes: none of their outcomes stands.
        for outcome in run.tests.values():
            outcome.outcome, outcome.reason, outcome.detail = "not_run", run.message, None
    if running is not None:
        run.message += f" while running {running}"
        run.tests[running] = TestOutcome("crashed", reason=run.message)
    for test_id in baseline_tests or {}:
        if test_id not in run.tests:
            run.tests[test_id] = TestOutcome("not_run", reason=run.message)
            run.counted_from_baseline += 1
    if not any(outcome.outcome in ("crashed", "not_run") for outcome in run.tests.values()):
        # Nothing identifies what was lost: the file itself stands as one failure.
        run.tests[f"{file} ({run.status.replace('_', ' ')})"] = TestOutcome(
            "not_run", reason=run.message
        )
        run.counted_as_one = True
    return run


def run_file(file: str, settings: RunSettings) -> FileRun:
    this_file = Path(__file__).resolve()
    with tempfile.TemporaryDirectory(prefix=f"conformance-{file}-") as scratch:
        records_path = Path(scratch) / "records.jsonl"
        # Tests create files in the current directory (test.support's TESTFN).
        working_directory = Path(scratch) / "cwd"
        working_directory.mkdir()
        config = ChildConfig(
            module=f"{settings.suite.package}.{file}",
            package=settings.suite.package,
            implementation=settings.implementation,
            records_path=str(records_path),
            package_root=str(this_file.parent.parent),
            hang_dump_after=max(settings.timeout * 0.9, settings.timeout - 10),
        )
        # -P: the scratch directory is not put on sys.path.
        command = [sys.executable, "-P", "-c", CHILD_BOOTSTRAP, str(this_file)]
        command.append(json.dumps(asdict(config)))
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=working_directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a hang is killed whole
        )
        timed_out = False
        try:
            output, _ = process.communicate(timeout=settings.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_process_group(process.pid)
            output, _ = process.communicate()
        finally:
            # Processes the tests started and left behind.
            kill_process_group(process.pid)
        run = interpret_child_run(
            file,
            read_records(records_path),
            process.returncode,
            timed_out,
            settings.timeout,
            settings.baseline_tests.get(file),
        )
    run.seconds = time.monotonic() - started
    run.output_tail = output.splitlines()[-OUTPUT_LINES_SHOWN:]
    return run


def kill_process_group(group_id: int) -> None:
    try:
        os.killpg(group_id, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def file_summary(run: FileRun) -> str:
    if run.status == "ok":
        totals = Totals()
        for outcome in run.tests.values():
            totals.add(outcome.outcome)
        return totals.line()
    label = run.status.replace("_", " ").upper()
    if run.counted_as_one:
        return f"{label} (counted as 1 failure: no baseline for this file)"
    lost = sum(outcome.outcome in ("crashed", "not_run") for outcome in run.tests.values())
    return f"{label} ({lost} test{'' if lost == 1 else 's'} counted as failed)"


def run_all(files: list[str], settings: RunSettings, jobs: int) -> list[FileRun]:
    runs: list[FileRun] = []
    width = max(len(name) for name in files)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_file, name, settings) for name in files]
        for index, future in enumerate(as_completed(futures), start=1):
            run = future.result()
            runs.append(run)
            print(
                f"[{index:>{len(str(len(files)))}}/{len(files)}] {run.file:<{width}}  "
                f"{file_summary(run)}  ({run.seconds:.1f} s)",
                flush=True,
            )
    return sorted(runs, key=lambda run: run.file)


# --------------------------------------------------------------------------------------------
# Baselines and comparison


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"cannot read baseline {path}: {error}") from error
    if data.get("format") != BASELINE_FORMAT:
        raise UsageError(f"{path} is not a conformance baseline of format {BASELINE_FORMAT}")
    return data


def baseline_tests_by_file(baseline: dict[str, Any] | None) -> dict[str, dict[str, TestOutcome]]:
    if baseline is None:
        return {}
    return {
        file: {test_id: TestOutcome.from_json(data) for test_id, data in entry["tests"].items()}
        for file, entry in baseline["files"].items()
    }


def default_baseline_path() -> Path | None:
    """tests/conformance/baseline-X.Y.json of the project, seen from the cwd or this file."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    relative = Path("tests", "conformance", f"baseline-{version}.json")
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / relative).is_file():
            return root / relative
    return None


def baseline_document(runs: list[FileRun], settings: RunSettings) -> dict[str, Any]:
    totals = count(runs)
    return {
        "format": BASELINE_FORMAT,
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "implementation": settings.implementation,
        "suite": settings.suite.package,
        "totals": asdict(totals),
        "files": {
            run.file: {
                "status": run.status,
                **({"message": run.message} if run.message else {}),
                "tests": {test_id: run.tests[test_id].to_json() for test_id in sorted(run.tests)},
            }
            for run in runs
        },
    }


def format_baseline(document: dict[str, Any]) -> str:
    """JSON with one line per test, so that a changed outcome is a one-line diff."""
    top_level = [
        f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}"
        for key, value in sorted(document.items())
        if key != "files"
    ]
    file_blocks = []
    for file, entry in sorted(document["files"].items()):
        attributes = "".join(
            f"{json.dumps(key)}: {json.dumps(value)}, "
            for key, value in sorted(entry.items())
            if key != "tests"
        )
        tests = ",\n".join(
            f"   {json.dumps(test_id)}: {json.dumps(outcome, sort_keys=True)}"
            for test_id, outcome in sorted(entry["tests"].items())
        )
        file_blocks.append(f'  {json.dumps(file)}: {{{attributes}"tests": {{\n{tests}\n  }}}}')
    files = ' "files": {\n' + ",\n".join(file_blocks) + "\n }"
    return "{\n" + ",\n".join([*top_level, files]) + "\n}\n"


def compare_with_baseline(
    runs: list[FileRun], baseline: dict[str, dict[str, TestOutcome]], verbose: bool
) -> list[str]:
    """One line per test whose outcome or skip reason differs (a file lost whole: one line)."""
    lines = []
    for run in runs:
        expected = baseline.get(run.file, {})
        lost_whole = (
            run.status != "ok"
            and bool(expected)
            and all(
                test_id in run.tests and run.tests[test_id].outcome == "not_run"
                for test_id in expected
            )
        )
        if lost_whole and not verbose:
            status = run.status.replace("_", " ")
            lines.append(f"{run.file}: all {len(expected)} tests not run ({status}, see above)")
            continue
        for test_id in sorted(expected.keys() | run.tests.keys()):
            before, after = expected.get(test_id), run.tests.get(test_id)
            before_text = before.describe() if before else "absent"
            after_text = after.describe() if after else "absent"
            if before_text != after_text:
                lines.append(f"{test_id}: {before_text} -> {after_text}")
    return lines


def count(runs: Iterable[FileRun]) -> Totals:
    totals = Totals()
    for run in runs:
        for outcome in run.tests.values():
            totals.add(outcome.outcome)
    return totals


# --------------------------------------------------------------------------------------------
# Report


def indented(lines: Iterable[str], prefix: str = "      | ") -> str:
    return "\n".join(prefix + line for line in lines)


def report_file_problems(runs: list[FileRun], verbose: bool) -> None:
    problems = [run for run in runs if run.status != "ok"]
    if not problems:
        return
    print("\nFiles that did not run to completion (their tests count as failed):")
    by_message: dict[tuple[str, str], list[FileRun]] = {}
    for run in problems:
        by_message.setdefault((run.status, run.message), []).append(run)
    for (status, message), group in by_message.items():
        names = ", ".join(run.file for run in group)
        print(f"  {status.replace('_', ' ')}: {names}\n    {message}")
        for run in group:
            # A crash or hang needs its output; an import failure is explained by its message.
            if status in ("crashed", "timed_out") or verbose:
                if run.detail:
                    print(indented(run.detail.splitlines()[-DETAIL_LINES_SHOWN:]))
                elif run.output_tail:
                    print(f"    last lines of output of {run.file}:")
                    print(indented(run.output_tail))


def report_failed_tests(runs: list[FileRun], verbose: bool) -> None:
    failed = [
        (test_id, outcome)
        for run in runs
        for test_id, outcome in sorted(run.tests.items())
        if outcome.outcome in FAILED_OUTCOMES and (verbose or outcome.outcome != "not_run")
    ]
    if not failed:
        return
    print(f"\nFailed tests ({len(failed)}):")
    for test_id, outcome in failed:
        print(f"  {outcome.outcome.upper()}: {test_id}")
        if verbose:
            text = outcome.detail or outcome.reason or ""
            print(indented(text.splitlines()[-DETAIL_LINES_SHOWN:]))


def report_counting(runs: list[FileRun], baseline_path: Path | None) -> None:
    from_baseline = sum(run.counted_from_baseline for run in runs)
    as_one = [run.file for run in runs if run.counted_as_one]
    if from_baseline:
        print(
            f"\n{from_baseline} failures are tests that did not run, known from the baseline "
            f"{baseline_path}."
        )
    if as_one:
        print(
            f"\n{len(as_one)} files that did not run have no baseline entry and count as one "
            f"failure each ({', '.join(as_one)}); their real test count is unknown."
        )


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jitctypes.conformance",
        description="Run CPython's ctypes test suite on stock _ctypes or jitctypes._ctypes.",
    )
    parser.add_argument("--implementation", choices=IMPLEMENTATIONS, default="jitctypes")
    parser.add_argument(
        "-j", "--jobs", type=int, default=DEFAULT_JOBS, help="files run in parallel (default 2)"
    )
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only the files matching (substring, or glob); repeatable",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list failures with their tracebacks' tails"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds per file before it is killed (default 300)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="PATH",
        help="stored run used to count the tests of files that did not run "
        "(default: tests/conformance/baseline-X.Y.json if found)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="PATH",
        help="list every test whose outcome differs from this stored run",
    )
    parser.add_argument(
        "--known",
        type=Path,
        metavar="PATH",
        help="JSON object of accepted differences from --compare: test id -> reason",
    )
    parser.add_argument(
        "--baseline-write", type=Path, metavar="PATH", help="write this run's per-test outcomes"
    )
    arguments = parser.parse_args(argv)
    if arguments.jobs < 1:
        parser.error("-j must be at least 1")
    if arguments.timeout <= 0:
        parser.error("--timeout must be positive")
    if arguments.known is not None and arguments.compare is None:
        parser.error("--known accepts differences from --compare: give both")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        suite = locate_suite()
        files = select_files(list_test_files(suite), arguments.patterns)
        if not files:
            raise UsageError(f"no test file of {suite.package} matches {arguments.patterns}")
        baseline_path = arguments.baseline or arguments.compare or default_baseline_path()
        baseline = load_baseline(baseline_path) if baseline_path else None
        known = load_known_differences(arguments.known) if arguments.known else {}
    except UsageError as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 2

    settings = RunSettings(
        suite, arguments.implementation, arguments.timeout, baseline_tests_by_file(baseline)
    )
    print(
        f"Python {platform.python_version()} ({sys.executable}), suite {suite.package} "
        f"({suite.directory}), {len(files)} files, implementation {arguments.implementation}"
    )
    if baseline is not None:
        print(
            f"baseline: {baseline_path} ({baseline['implementation']}, "
            f"Python {baseline['python']}, {asdict(count_baseline(baseline))})"
        )
        if not baseline["python"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}."):
            print("warning: the baseline comes from another Python version")
    else:
        print("no baseline: a file that does not run counts as one failure")

    started = time.monotonic()
    runs = run_all(files, settings, arguments.jobs)
    elapsed = time.monotonic() - started

    used = sorted({f"{key}: {value}" for run in runs for key, value in run.setup.items()})
    if used:
        print("\n" + "\n".join(used))
    report_file_problems(runs, arguments.verbose)
    report_failed_tests(runs, arguments.verbose)
    report_counting(runs, baseline_path)

    differences: list[str] = []
    accepted: set[str] = set()
    if arguments.compare is not None:
        differences = compare_with_baseline(runs, settings.baseline_tests, arguments.verbose)
        ran = {run.file for run in runs}
        differences, accepted = set_known_apart(differences, known, ran)
        print(f"\n{len(differences)} differences from {arguments.compare}:")
        for line in differences:
            print(f"  {line}")
    if arguments.baseline_write is not None:
        document = baseline_document(runs, settings)
        arguments.baseline_write.parent.mkdir(parents=True, exist_ok=True)
        arguments.baseline_write.write_text(format_baseline(document), encoding="utf-8")
        print(f"\nper-test outcomes written to {arguments.baseline_write}")

    totals = count(runs)
    print(f"\n{len(files)} file{'' if len(files) == 1 else 's'} in {elapsed:.1f} s")
    print(totals.line())
    failed_unaccepted = totals.failed - len(accepted)
    return 0 if failed_unaccepted == 0 and not differences else 1


def load_known_differences(path: Path) -> dict[str, str]:
    """The accepted differences of a ``--known`` file: test id -> the reason."""
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if not isinstance(known, dict) or not all(
        isinstance(reason, str) and reason.strip() for reason in known.values()
    ):
        raise UsageError(f"{path}: expected an object of test id -> written reason")
    return known


def set_known_apart(
    differences: list[str], known: dict[str, str], ran: set[str]
) -> tuple[list[str], set[str]]:
    """Prints the differences `known` accepts, with their reasons; returns the others (plus
    one line per accepted difference of the files that `ran` that did not happen) and the
    accepted failing tests."""
    known = {test_id: reason for test_id, reason in known.items() if test_id.split(".")[0] in ran}
    remaining, accepted = [], set()
    for line in differences:
        test_id, _, change = line.partition(": ")
        if test_id in known and change.endswith(("-> failed", "-> error")):
            accepted.add(test_id)
        else:
            remaining.append(line)
    if known:
        print(f"\n{len(accepted)} known differences (accepted, see the reasons):")
        for test_id in sorted(accepted):
            print(f"  {test_id}: {known[test_id]}")
    for test_id in sorted(known.keys() - accepted):
        remaining.append(f"{test_id}: listed as a known difference, but it no longer differs")
    return remaining, accepted


def count_baseline(baseline: dict[str, Any]) -> Totals:
    totals = Totals()
    for entry in baseline["files"].values():
        for data in entry["tests"].values():
            totals.add(data["outcome"])
    return totals


if __name__ == "__main__":
    script_directory = Path(__file__).parent.resolve()
    if __spec__ is None and sys.path and Path(sys.path[0]).resolve() == script_directory:
        # Run as a script: its directory, the package, would make jitctypes' _ctypes and
        # _rawffi importable as top-level modules of those names.
        del sys.path[0]
    sys.exit(main())
