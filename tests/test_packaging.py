"""The wheel: built from the checkout, installed in a fresh venv, it runs the coin
with the grammar it carries (no checkout on the path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs_the_coin(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("pplc-*.whl")
    assert "compiler/py.typed" in zipfile.ZipFile(wheel).namelist()  # type checkers read pplc's hints
    venv = tmp_path / "venv"
    # System site-packages supply torch and pyro; pplc itself comes only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    for name in ("coin.ppl", "coin.data.json"):
        shutil.copy(ROOT / "specs" / name, work / name)
    result = subprocess.run([str(venv / "bin" / "pplc"), "run", "coin.ppl", "--json", "--steps", "300"],
                            cwd=work, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["posterior"]["f"]["mean"] == pytest.approx(16 / 30, abs=0.02)
    located = subprocess.run([str(python), "-c", "import compiler; print(compiler.__file__)"],
                             cwd=work, capture_output=True, text=True, check=True).stdout
    assert str(venv) in located
