"""What a command reads and writes besides its input: no file is loaded as code
(the parser is built in the process, never unpickled from a cache), and
`pplc check` writes nothing anywhere."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import compiler

# Where the command's own package is: the subprocess runs this checkout, from any folder.
PACKAGE_ROOT = str(Path(compiler.__file__).resolve().parent.parent)

# `pplc ARGS`, reporting on its last line of stderr every file or folder the process opened for
# writing or created, wherever it is (Python's audit events see them all).
RECORDING_WRITES = """
import atexit, os, runpy, sys
WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
writes = []
def record(event, args):
    if event == "open" and isinstance(args[2], int) and args[2] & WRITING:
        writes.append(f"open {args[0]}")
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.link", "os.symlink"):
        writes.append(f"{event} {args[0]}")
atexit.register(lambda: print("writes:", writes, file=sys.stderr))
sys.addaudithook(record)
sys.argv = ["pplc", *sys.argv[1:]]
runpy.run_module("compiler", run_name="__main__")
"""


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): the file appears if and only if the pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _pplc_check(spec: Path, cwd: Path, **environment: str | None) -> str:
    """Run `pplc check SPEC` in `cwd` with `environment` (None: unset); the line listing its writes."""
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    for name, value in environment.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    # -B: no bytecode caches, which are Python's writes, not pplc's.
    result = subprocess.run([sys.executable, "-B", "-c", RECORDING_WRITES, "check", str(spec)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{spec}: ok")
    return result.stderr.splitlines()[-1]


def _files_under(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _plant(path: Path, marker: Path) -> None:
    # lark's cache file: a digest line, then the pickle it loads before comparing the digest.
    path.parent.mkdir(parents=True)
    path.write_bytes(b"0" * 32 + b"\n" + pickle.dumps(_CreatesMarker(marker)))


@pytest.fixture
def spec(specs, tmp_path) -> Path:
    folder = tmp_path / "spec"
    folder.mkdir()
    shutil.copy(specs / "coin.ppl", folder / "coin.ppl")
    return folder / "coin.ppl"


def test_the_planted_payload_runs_when_unpickled(tmp_path):
    # The payload the next test plants is live: loading it creates the marker.
    _plant(tmp_path / "cache" / "payload", tmp_path / "marker")
    with open(tmp_path / "cache" / "payload", "rb") as planted:
        planted.readline()
        pickle.load(planted).close()
    assert (tmp_path / "marker").exists()


def test_a_planted_cache_file_changes_nothing(spec, tmp_path):
    home, cache, marker = tmp_path / "home", tmp_path / "cache", tmp_path / "marker"
    # Every place the parser's cache was read from: $XDG_CACHE_HOME/pplc and ~/.cache/pplc.
    for folder in (cache / "pplc", home / ".cache" / "pplc"):
        _plant(folder / "grammar.lark-cache", marker)
    for environment in ({"HOME": str(home), "XDG_CACHE_HOME": str(cache)}, {"HOME": str(home), "XDG_CACHE_HOME": None}):
        writes = _pplc_check(spec, tmp_path, **environment)
        assert not marker.exists()
        assert writes == "writes: []"


@pytest.mark.parametrize("environment", [
    {"HOME": "{work}/home", "XDG_CACHE_HOME": None},
    {"HOME": "{work}/home", "XDG_CACHE_HOME": "cache"},  # relative: it would resolve against the working folder
    {"HOME": "", "XDG_CACHE_HOME": ""},
], ids=["home", "relative-cache-home", "empty-home"])
def test_check_writes_no_file(spec, tmp_path, environment):
    work = tmp_path / "work"
    (work / "home").mkdir(parents=True)
    before = _files_under(tmp_path)
    writes = _pplc_check(spec, work, **{name: value if value is None else value.format(work=work)
                                        for name, value in environment.items()})
    assert writes == "writes: []"
    assert _files_under(tmp_path) == before
    assert sorted(path.name for path in work.rglob("*")) == ["home"]  # not even an empty cache folder


def test_check_imports_neither_numpy_nor_torch(specs):
    # A command's start-up is mostly imports, and NumPy alone would be a third of `pplc check`'s.
    code = ("import sys\nfrom compiler.cli import main\n"
            f"code = main(['check', {str(specs / 'coin.ppl')!r}])\n"
            "print(code, [name for name in ('numpy', 'torch', 'pyro') if name in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": PACKAGE_ROOT})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"
