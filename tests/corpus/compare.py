"""Runs one application's pytest suite on stock ctypes and on jitctypes and compares the
outcomes per test: every test that passes on stock must pass on jitctypes.

    python tests/corpus/compare.py SUITE --cwd DIR --python PY [--env K=V]...
        [--timeout SEC] [--out DIR] [--summary FILE] [--no-rerun] -- PYTEST_ARGS...

Stock is ``PY -m pytest ARGS``; jitctypes is ``PY -m jitctypes -m pytest ARGS``, both in DIR
with the given environment. Standard library only: it runs with any Python.

Outcomes come from a small pytest plugin that this script writes next to the logs and loads
with ``-p`` into both runs: it appends one JSON line per test phase to a file, flushed at
once, so a run that dies in C (a segfault loses pytest's --junitxml file, which is still
written for the record) keeps every outcome reported before the crash. A crashed run is
resumed (up to 3 times) with the tests it had not reached, less the one that was running,
which is counted as failed ("crashed in"); tests that no run reached count as failed too.
The plugin also records which ``_ctypes`` served the run and, on jitctypes, how many
foreign calls took its compiled and general paths (``jitctypes.stats()``), so a suite
that never reached ctypes shows up.

A test that passed on stock and not on jitctypes is run again alone, on jitctypes, once:
if it passes then, it is listed as flaky and not counted as a regression.

Prints one table line per suite, every regression with the first lines of its failure,
appends the line to --summary if given, and exits 1 if there is a regression.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

PLUGIN_NAME = "_jitctypes_corpus_plugin"
PLUGIN_SOURCE = '''\
"""Written by tests/corpus/compare.py: streams per-test outcomes to $JITCTYPES_CORPUS_LOG
and, if $JITCTYPES_CORPUS_SELECT names a file of node ids, runs only those tests."""
import json
import os
import sys

_log = open(os.environ["JITCTYPES_CORPUS_LOG"], "a", buffering=1, encoding="utf-8")


def _write(**record):
    _log.write(json.dumps(record) + "\\n")
    _log.flush()


def pytest_collection_modifyitems(config, items):
    path = os.environ.get("JITCTYPES_CORPUS_SELECT")
    if not path:
        return
    with open(path, encoding="utf-8") as file:
        wanted = set(line.rstrip("\\n") for line in file if line.strip())
    deselected = [item for item in items if item.nodeid not in wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.nodeid in wanted]


def pytest_collection_finish(session):
    _write(kind="collected", nodeids=[item.nodeid for item in session.items])


def pytest_runtest_logstart(nodeid, location):
    _write(kind="start", nodeid=nodeid)


def pytest_runtest_logreport(report):
    record = dict(kind="report", nodeid=report.nodeid, when=report.when,
                  outcome=report.outcome)
    if hasattr(report, "wasxfail"):
        record["xfail"] = True
    if report.failed:
        record["message"] = report.longreprtext[-6000:]
    _write(**record)


def pytest_collectreport(report):
    if report.failed:
        _write(kind="collect_error", nodeid=report.nodeid,
               message=report.longreprtext[-3000:])


def pytest_sessionfinish(session, exitstatus):
    _ctypes = sys.modules.get("_ctypes")
    record = dict(kind="finish", exitstatus=int(exitstatus),
                  ctypes_loaded="ctypes" in sys.modules,
                  _ctypes=getattr(_ctypes, "__file__", None))
    jitctypes = sys.modules.get("jitctypes")
    if jitctypes is not None and getattr(jitctypes, "is_installed", lambda: False)():
        stats = jitctypes.stats()
        sigs = stats.get("signatures", {}).values()
        record["jit"] = dict(
            signatures=len(stats.get("signatures", {})),
            functions=sum(s.get("functions", 0) for s in sigs),
            fast_calls=sum(s.get("fast_calls", 0) + s.get("entry_stub_calls", 0)
                           for s in sigs),
            general_calls=sum(s.get("general_calls", 0) for s in sigs),
            no_fast_path=sum(stats.get("no_fast_path", {}).values()),
        )
    _write(**record)
'''

PROBE_SOURCE = "import _ctypes\nimport ctypes\n\nprint(_ctypes.__file__)\n"
MAX_RESUMES = 3


class Run:
    """The outcomes of one implementation over one or more pytest processes."""

    def __init__(self, impl: str):
        self.impl = impl
        self.collected: list[str] = []  # node ids, in order, over every process
        self.phases: dict[str, list[dict]] = {}  # node id -> its phase reports
        self.crashed_in: list[str] = []  # the test running when a process died
        self.crash_notes: list[str] = []
        self.collect_errors: list[dict] = []
        self.finish: dict | None = None
        self.jit_calls: dict[str, int] = {}  # jitctypes.stats() summed over processes
        self.seconds = 0.0
        self.processes = 0

    def outcome(self, nodeid: str) -> str:
        """passed, failed or skipped; a test that never finished is failed."""
        reports = self.phases.get(nodeid)
        if not reports or not any(r["when"] == "teardown" for r in reports):
            return "failed"  # started and never finished (crash), or never reached
        if any(r["outcome"] == "failed" for r in reports):
            return "failed"
        if any(r["outcome"] == "skipped" for r in reports):
            return "skipped"
        return "passed"

    def message(self, nodeid: str) -> str:
        if nodeid in self.crashed_in:
            return "crashed: the process died while this test ran"
        for report in self.phases.get(nodeid, []):
            if report["outcome"] == "failed":
                return f"[{report['when']}] {report.get('message', '')}"
        if nodeid not in self.phases:
            return "not run: the process died before reaching it"
        return "did not finish"

    def counts(self) -> tuple[int, int, int]:
        outcomes = [self.outcome(n) for n in self.collected]
        failed = outcomes.count("failed") + len(self.collect_errors)
        return outcomes.count("passed"), failed, outcomes.count("skipped")


def run_pytest(args, impl, run, label, select=None) -> int:
    """One pytest process; returns its exit code (negative: killed by a signal)."""
    log_path = os.path.join(args.out, f"{args.suite}-{label}.jsonl")
    out_path = os.path.join(args.out, f"{args.suite}-{label}.log")
    junit_path = os.path.join(args.out, f"{args.suite}-{label}.xml")
    for path in (log_path, junit_path):
        if os.path.exists(path):
            os.remove(path)
    env = dict(os.environ)
    env.update(args.env_vars)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.out, env.get("PYTHONPATH")) if p)
    env["JITCTYPES_CORPUS_LOG"] = log_path
    env.pop("JITCTYPES_CORPUS_SELECT", None)
    if select is not None:
        select_path = os.path.join(args.out, f"{args.suite}-{label}.select")
        with open(select_path, "w", encoding="utf-8") as file:
            file.write("".join(n + "\n" for n in select))
        env["JITCTYPES_CORPUS_SELECT"] = select_path
    command = [args.python]
    if impl == "jitctypes":
        command += ["-m", "jitctypes"]
    command += ["-m", "pytest", "-p", PLUGIN_NAME, f"--junitxml={junit_path}"]
    command += args.pytest_args
    start = time.monotonic()
    with open(out_path, "w", encoding="utf-8") as output:
        output.write("$ " + " ".join(command) + "\n")
        output.flush()
        process = subprocess.Popen(
            command,
            cwd=args.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = -9
            output.write(f"\n[compare.py: killed after {args.timeout}s]\n")
    run.seconds += time.monotonic() - start
    run.processes += 1

    started = None
    finished = False
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8") as file:
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the crash
                kind = record["kind"]
                if kind == "collected":
                    known = set(run.collected)
                    run.collected += [n for n in record["nodeids"] if n not in known]
                elif kind == "start":
                    started = record["nodeid"]
                    run.phases[started] = []
                elif kind == "report":
                    run.phases.setdefault(record["nodeid"], []).append(record)
                    if record["when"] == "teardown" and record["nodeid"] == started:
                        started = None
                elif kind == "collect_error":
                    run.collect_errors.append(record)
                elif kind == "finish":
                    run.finish = record
                    finished = True
                    for key, value in record.get("jit", {}).items():
                        run.jit_calls[key] = run.jit_calls.get(key, 0) + value
    if not finished:
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        where = f" while running {started}" if started else ""
        run.crash_notes.append(f"{label}: pytest died ({how}){where}; see {out_path}")
        if started:
            run.crashed_in.append(started)
        with open(out_path, encoding="utf-8", errors="replace") as file:
            lines = file.readlines()
        # faulthandler's report, innermost frames first; else the end of the output
        fatal = [i for i, line in enumerate(lines) if "Fatal Python error" in line]
        shown = lines[fatal[-1] : fatal[-1] + 14] if fatal else lines[-12:]
        run.crash_notes.append("    " + "    ".join(shown).rstrip())
    return code


def run_impl(args, impl: str) -> Run:
    run = Run(impl)
    run_pytest(args, impl, run, impl)
    resumes = 0
    while run.finish is None and resumes < MAX_RESUMES and run.collected:
        # Resume a crashed run with the tests it had not finished, less the crashing one.
        remaining = [
            n
            for n in run.collected
            if n not in run.crashed_in
            and not any(r["when"] == "teardown" for r in run.phases.get(n, []))
        ]
        if not remaining:
            break
        resumes += 1
        run.finish = None
        run_pytest(args, impl, run, f"{impl}-resume{resumes}", select=remaining)
    return run


def first_lines(message: str, limit: int = 14) -> str:
    """The useful part of a pytest failure: the location and the E lines, else the end."""
    lines = message.splitlines()
    picked = [line for line in lines if line.startswith("E ") or line.startswith("E\t")]
    location = [line for line in lines if ":" in line and line.split(":")[0].endswith(".py")]
    if picked:
        text = picked[:limit] + location[-1:]
    else:
        text = lines[-limit:]
    return "\n".join("        " + line for line in text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--cwd", required=True, help="directory the suite runs in")
    parser.add_argument("--python", required=True, help="the interpreter (with pytest)")
    parser.add_argument("--env", action="append", default=[], metavar="K=V")
    parser.add_argument("--timeout", type=float, default=1800, help="per pytest process")
    parser.add_argument("--out", default="target/corpus/results", help="logs go here")
    parser.add_argument("--summary", help="append the table line to this file")
    parser.add_argument("--no-rerun", action="store_true", help="no second try on jitctypes")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]
    args.env_vars = dict(item.split("=", 1) for item in args.env)
    args.out = os.path.abspath(args.out)
    args.cwd = os.path.abspath(args.cwd)
    if os.sep in args.python:  # kept as a path into its venv: no symlinks resolved
        args.python = os.path.abspath(args.python)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, PLUGIN_NAME + ".py"), "w", encoding="utf-8") as file:
        file.write(PLUGIN_SOURCE)

    # jitctypes must serve `python -m jitctypes` with this interpreter.
    probe = os.path.join(args.out, "_jitctypes_probe.py")
    with open(probe, "w", encoding="utf-8") as file:
        file.write(PROBE_SOURCE)
    served = subprocess.run(
        [args.python, "-m", "jitctypes", probe], capture_output=True, text=True, cwd=args.cwd
    )
    if served.returncode != 0 or "jitctypes" not in served.stdout:
        print(f"{args.suite}: `{args.python} -m jitctypes` does not serve _ctypes:")
        print(served.stdout + served.stderr)
        if args.summary:
            with open(args.summary, "a", encoding="utf-8") as file:
                file.write(f"{args.suite:<14} not run: python -m jitctypes does not work\n")
        return 2

    print(f"== {args.suite}: stock ctypes", flush=True)
    stock = run_impl(args, "stock")
    print(f"== {args.suite}: jitctypes", flush=True)
    jit = run_impl(args, "jitctypes")

    notes = []
    for run in (stock, jit):
        notes += run.crash_notes
        for error in run.collect_errors:
            notes.append(f"{run.impl}: collection error in {error['nodeid']}")
            notes.append(first_lines(error["message"], 6))
    if jit.finish and jit.finish.get("_ctypes") and "jitctypes" not in jit.finish["_ctypes"]:
        notes.append(f"jitctypes run was served by {jit.finish['_ctypes']}: NOT jitctypes")
    if stock.finish and "jitctypes" in (stock.finish.get("_ctypes") or ""):
        notes.append("stock run was served by jitctypes")
    if jit.finish and not jit.finish.get("ctypes_loaded"):
        notes.append("ctypes was never imported by the pytest process on jitctypes")

    regressions = []
    for nodeid in stock.collected:
        if stock.outcome(nodeid) == "passed" and jit.outcome(nodeid) != "passed":
            regressions.append(nodeid)
    # Tests a jitctypes collection error hid, known to stock, are not in jit.collected:
    # their outcome there is "failed" (no reports), so they are regressions above too.

    flaky = []
    retry = [n for n in regressions if n not in jit.crashed_in]
    if retry and not args.no_rerun:
        again = Run("jitctypes")
        run_pytest(args, "jitctypes", again, "jitctypes-rerun", select=retry)
        flaky = [n for n in retry if again.outcome(n) == "passed"]
        regressions = [n for n in regressions if n not in flaky]

    def describe(run: Run) -> str:
        p, f, s = run.counts()
        crashed = " CRASHED" if run.crash_notes else ""
        return f"{p} passed {f} failed {s} skipped ({run.seconds:.1f}s){crashed}"

    improvements = [
        n for n in jit.collected if jit.outcome(n) == "passed" and stock.outcome(n) != "passed"
    ]
    line = (
        f"{args.suite:<14} stock: {describe(stock)}   jitctypes: {describe(jit)}   "
        f"regressions: {len(regressions)}"
    )
    if flaky:
        line += f" (+{len(flaky)} flaky)"
    calls = jit.jit_calls
    detail = []
    if calls:
        detail.append(
            f"    jitctypes calls: {calls['fast_calls']} compiled-path, "
            f"{calls['general_calls']} general-path over {calls['functions']} typed "
            f"functions ({calls['signatures']} signatures), {calls['no_fast_path']} "
            f"function objects without a fast path"
        )
    print()
    print(line)
    for text in detail + notes:
        print(text)
    for nodeid in regressions:
        print(f"  REGRESSION {nodeid}: stock passed, jitctypes {jit.outcome(nodeid)}")
        print(first_lines(jit.message(nodeid)))
    for nodeid in flaky:
        print(f"  flaky {nodeid}: failed on jitctypes, passed when run again alone")
        print(first_lines(jit.message(nodeid), 6))
    if improvements:
        print(f"  {len(improvements)} test(s) passed on jitctypes and not on stock:")
        for nodeid in improvements[:10]:
            print(f"    {nodeid} (stock: {stock.outcome(nodeid)})")
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as file:
            file.write(line + "\n")
            for text in detail:
                file.write(text + "\n")
            for nodeid in regressions:
                file.write(f"  REGRESSION {nodeid}\n")
            for nodeid in flaky:
                file.write(f"  flaky {nodeid}\n")
            for note in notes:
                if not note.startswith("    "):
                    file.write(f"  note: {note}\n")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
