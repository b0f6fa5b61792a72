"""Phase 5 (files): every file pplc writes appears whole or not at all.

A writer fills a temporary file in the target's folder (same suffix, so the
netCDF and PNG writers pick the right format), which is then renamed onto
the target in one step. A run killed while writing leaves the previous file
as it was, and two runs writing one path each fill their own temporary: the
last rename wins, whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write` with a temporary path beside `target`, then rename it onto
    `target`. On any exception, Ctrl-C included, the temporary is removed and
    `target` is untouched."""
    target = Path(target)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, _new_file_mode())
        _flush_to_disk(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return target


def _new_file_mode() -> int:
    # mkstemp makes the file private (0600); the result gets the mode any new file would have.
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def _flush_to_disk(path: Path) -> None:
    # Without it, a crash of the machine soon after the rename can leave an empty target.
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
