"""Files are replaced, never half-written: every file pplc writes is filled
under a temporary name beside it and renamed onto it (`files.write_atomically`),
so a run killed while writing leaves the previous file, and two runs writing
one path never mix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import compiler
from compiler.cli import main
from compiler.results import files

PACKAGE_ROOT = str(Path(compiler.__file__).resolve().parent.parent)
OLD = b"the previous file, whole"

# Writes half a file through the helper, names the temporary on stdout, then waits to be killed.
HALF_WRITTEN = """
import sys, time
from compiler.results import files

def write_half_then_wait(temporary):
    with open(temporary, "w") as file:
        file.write("the new file, half")
        file.flush()
        print(temporary, flush=True)
        time.sleep(60)
        file.write(" and the rest")

files.write_atomically(sys.argv[1], write_half_then_wait)
"""


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "draws.csv"
    path.write_bytes(OLD)
    return path


def _kill_while_writing(target: Path, signal_number: int) -> Path:
    """Start a write of `target`, send `signal_number` once it is half done; the temporary it was using."""
    process = subprocess.Popen([sys.executable, "-c", HALF_WRITTEN, str(target)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": PACKAGE_ROOT})
    try:
        temporary = Path(process.stdout.readline().strip())
        assert temporary.read_text() == "the new file, half"
        process.send_signal(signal_number)
        assert process.wait(timeout=30) != 0
    finally:
        process.kill()
        process.stdout.close()
    return temporary


def test_a_write_killed_with_sigkill_leaves_the_previous_file(target):
    _kill_while_writing(target, signal.SIGKILL)
    assert target.read_bytes() == OLD


def test_a_write_interrupted_with_sigint_leaves_the_previous_file_and_no_temporary(target):
    temporary = _kill_while_writing(target, signal.SIGINT)
    assert target.read_bytes() == OLD
    assert not temporary.exists()
    assert [path.name for path in target.parent.iterdir()] == [target.name]


def test_a_writer_that_fails_leaves_the_previous_file_and_no_temporary(target):
    def fail_half_way(temporary: Path) -> None:
        temporary.write_text("the new file, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomically(target, fail_half_way)
    assert target.read_bytes() == OLD
    assert [path.name for path in target.parent.iterdir()] == [target.name]


def test_the_temporary_is_hidden_beside_the_target_and_keeps_its_suffix(target):
    used = []
    files.write_atomically(target, lambda temporary: used.append(temporary) or temporary.write_text("new"))
    assert used[0].parent == target.parent
    assert used[0].name.startswith(".draws.csv.") and used[0].suffix == ".csv"
    assert target.read_text() == "new"


def test_two_writers_of_one_path_each_leave_it_whole(target):
    first_begun, second_done = threading.Event(), threading.Event()

    def write_slowly(temporary: Path) -> None:
        temporary.write_text("first, ")
        first_begun.set()
        second_done.wait(timeout=30)
        with open(temporary, "a") as file:
            file.write("whole")

    first = threading.Thread(target=files.write_atomically, args=(target, write_slowly))
    first.start()
    first_begun.wait(timeout=30)
    files.write_atomically(target, lambda temporary: temporary.write_text("second, whole"))
    assert target.read_text() == "second, whole"
    second_done.set()
    first.join(timeout=30)
    assert target.read_text() == "first, whole"  # the last rename wins; nothing of the other is in it


def test_a_written_file_has_the_permissions_of_any_new_file(tmp_path):
    (tmp_path / "plain.txt").write_text("made with open()")
    files.write_atomically(tmp_path / "replaced.txt", lambda temporary: temporary.write_text("made here"))
    assert (tmp_path / "replaced.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


FAST = ["--steps", "50", "--num-draws", "500", "--quiet"]
EVERY_KIND = {  # each command and option that writes a file, and the name it writes
    "run --draws": (["run", "coin.ppl", *FAST, "--draws"], "draws.csv"),
    "run --idata": (["run", "coin.ppl", *FAST, "--idata"], "fit.nc"),
    "run --plot": (["run", "coin.ppl", *FAST, "--plot"], "fit.png"),
    "run --save": (["run", "coin.ppl", *FAST, "--save"], "fit.json"),
    "predict --out csv": (["predict", "coin.ppl", "--n", "50", "--out"], "predictive.csv"),
    "predict --out nc": (["predict", "coin.ppl", "--n", "50", "--out"], "predictive.nc"),
}


@pytest.mark.parametrize(("command", "name"), EVERY_KIND.values(), ids=EVERY_KIND)
def test_ctrl_c_while_a_command_writes_leaves_the_previous_file(command, name, specs, tmp_path, monkeypatch, capsys):
    output = tmp_path / "output"
    output.mkdir()
    (output / name).write_bytes(OLD)
    whole = files.write_atomically
    written = []

    def interrupted_before_the_rename(path, write):
        def write_then_interrupt(temporary: Path) -> None:
            write(temporary)
            written.append(temporary.stat().st_size)
            raise KeyboardInterrupt  # as Ctrl-C would, with the new file all but done

        return whole(path, write_then_interrupt)

    monkeypatch.setattr(files, "write_atomically", interrupted_before_the_rename)
    command = [str(specs / "coin.ppl") if part == "coin.ppl" else part for part in command]
    assert main([*command, str(output / name)]) == 130
    assert written and written[0] > 0  # the command wrote through the helper, and got far
    assert (output / name).read_bytes() == OLD
    assert [path.name for path in output.iterdir()] == [name]
    assert "pplc: interrupted" in capsys.readouterr().err
