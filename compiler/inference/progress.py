"""Phase 4: a progress bar on stderr for the fitting loops (`tqdm.auto`: a widget in a notebook, text in a
terminal), loaded only when asked for.

A bar says only what is known. Where the number of steps is fixed, it counts them against that total,
with a rate and the time left (NUTS: every chain's warm-up and draws, as the chains report them). Where
the fit stops when the ELBO levels off, nobody knows the total in advance, so the bar counts steps and
shows the ELBO with no total and no time left (the cap is only an upper bound); where a fit learns its
total part way (Adam's refinement, which starts once the ELBO is level and runs a known number of
steps), that phase gets a bar of its own with its total.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class ProgressBar:
    """tqdm on stderr: steps done (of `total`, where that is known: None until the ELBO levels off), the
    ELBO, steps/s; nothing unless asked for. `desc` names what is counted ("L-BFGS", "Adam")."""

    REFRESH_SECONDS = 0.2

    def __init__(self, shown: bool, unit: str, desc: str, total: int | None = None):
        self.shown, self.unit, self.desc, self.total = shown, unit, desc, total
        self.bar: Any = None
        self.last = 0.0

    def __enter__(self) -> ProgressBar:
        if self.shown:
            self._open(self.total, 0, self.desc)
        return self

    def show(self, done: int, total: int | None, elbo: float) -> None:
        """`done` steps of `total` (None: until the ELBO levels off), the ELBO now."""
        self.count(done, total, f"ELBO {elbo:.6g}")

    def count(self, done: int, total: int | None, status: str) -> None:
        """`done` steps of `total`, and where they are (`status`: the ELBO, NUTS's phase)."""
        if self.bar is None:
            return
        if total != self.total:  # Adam's refinement, whose length is known once it starts: a bar of its own
            self.bar.close()
            self._open(total, done, f"{self.desc} refining")
        now = time.perf_counter()
        if now - self.last < self.REFRESH_SECONDS:
            return
        self.last = now
        self.bar.n = done
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.refresh()

    def _open(self, total: int | None, done: int, desc: str) -> None:
        from tqdm.auto import tqdm

        self.total, self.last = total, 0.0
        self.bar = tqdm(total=total, initial=done, unit=f" {self.unit}", leave=False, file=sys.stderr, dynamic_ncols=True,
                        desc=desc)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
