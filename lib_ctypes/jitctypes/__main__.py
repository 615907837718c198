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
    """Runs the script at `path` as `__main__`, as `python path` would. (Not with
    `runpy.run_path`, which imports pkgutil and typing: a third of jitctypes' start-up.)"""
    import os
    import types

    sys.path[0] = os.path.dirname(os.path.abspath(path))
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    this_module = sys.modules["__main__"]  # kept alive while the script runs
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        del this_module


if __name__ == "__main__":
    main(sys.argv[1:])
