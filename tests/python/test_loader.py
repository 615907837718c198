"""The loader: `jitctypes.install()`, `python -m jitctypes script.py` / `-m module`, and the
side-by-side `jitctypes.ctypes`; CPython's C `_ctypes` is never loaded under jitctypes."""

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import sys, ctypes, _ctypes, jitctypes._ctypes
    c_extension = [name for name, module in list(sys.modules.items())
                   if (getattr(module, "__file__", "") or "").endswith(".so")
                   and "_ctypes" in name and "jitctypes" not in name]
    print(_ctypes is jitctypes._ctypes, c_extension, ctypes.CDLL(None).strlen(b"four"),
          sys.argv[1:], __name__)
    """
)


def run(*arguments, cwd=None):
    return subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_install_serves_later_imports():
    result = run("-c", "import jitctypes; jitctypes.install()\n" + PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "True [] 4 [] __main__"


def test_install_after_stock_ctypes_is_refused():
    code = "import ctypes, jitctypes\ntry:\n jitctypes.install()\nexcept RuntimeError as e:\n"
    result = run("-c", code + " print('refused', e)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused jitctypes.install() must run before ctypes")


def test_run_a_script(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(PROBE + "\nimport helper\nraise SystemExit(helper.CODE)\n")
    (tmp_path / "helper.py").write_text("CODE = 3\n")
    result = run("-m", "jitctypes", str(script), "first", "--second")
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "True [] 4 ['first', '--second'] __main__"


def test_run_a_module(tmp_path):
    (tmp_path / "probe_module.py").write_text(PROBE)
    result = run("-m", "jitctypes", "-m", "probe_module", "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True [] 4 ['x'] __main__"


def test_a_failing_script_reports_its_exception(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import ctypes\nctypes.c_int('x')\n")
    result = run("-m", "jitctypes", str(script))
    assert result.returncode == 1
    assert "TypeError" in result.stderr


def test_usage_without_arguments():
    result = run("-m", "jitctypes")
    assert result.returncode == 2
    assert "usage: python -m jitctypes" in result.stderr


def test_side_by_side_with_stock():
    code = textwrap.dedent(
        """
        import sys, ctypes, _ctypes
        import jitctypes._ctypes
        import jitctypes.ctypes as ours
        assert _ctypes is not jitctypes._ctypes and sys.modules["_ctypes"] is _ctypes
        assert ours is not ctypes and ours.Structure is jitctypes._ctypes.Structure
        assert sys.modules["ctypes"] is ctypes and ctypes.Structure is _ctypes.Structure
        print(ours.CDLL(None).strlen(b"abc"), ctypes.CDLL(None).strlen(b"abcd"))
        """
    )
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3 4"


def test_a_directory_or_a_zipapp_runs_as_python_runs_them(tmp_path):
    import zipapp

    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(
        "import ctypes, sys\nprint(sys.modules['_ctypes'].__name__, sys.argv[1:])\n"
    )
    zipapp.create_archive(app, tmp_path / "app.pyz")
    for target in (app, tmp_path / "app.pyz"):
        result = subprocess.run(
            [sys.executable, "-m", "jitctypes", str(target), "x"],
            capture_output=True,
            text=True,
        )
        assert result.stdout.strip() == "jitctypes._ctypes ['x']", result.stderr
