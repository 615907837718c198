"""``python -m jitctypes script.py [args]`` / ``python -m jitctypes -m module [args]``: runs a
program with every ``import ctypes`` served by jitctypes."""

import sys

from jitctypes.loader import install

USAGE = "usage: python -m jitctypes script.py [args...] | python -m jitctypes -m module [args...]"


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        raise SystemExit(0 if argv else 2)
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            raise SystemExit(2)
        import runpy

        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        run_script(argv[0])


def run_script(path: str) -> None:
    """Runs the script at `path` as `__main__`, as `python path` would. A plain source file
    is run here: `runpy.run_path` imports pkgutil and typing, a third of jitctypes'
    start-up. Directories and zip files (with a `__main__.py`) go to `run_path`."""
    import os
    import types
    from importlib.machinery import SourceFileLoader

    source = None
    if os.path.isfile(path):
        with open(path, "rb") as file:
            source = file.read()
    if source is None or _is_zip(source):
        import runpy

        runpy.run_path(path, run_name="__main__")
        return
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    code = compile(source, path, "exec")
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__builtins__ = __builtins__
    this_module = sys.modules["__main__"]  # kept alive while the script runs
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        del this_module


def _is_zip(data: bytes) -> bool:
    """True if `data` ends with a zip archive's end-of-central-directory record (as a
    zipapp does, after its `#!` line); the `zipfile` module takes 30 ms to import."""
    record = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    return record != -1 and len(data) - record >= 22


if __name__ == "__main__":
    main(sys.argv[1:])
