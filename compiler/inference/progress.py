"""A progress bar on stderr for the fitting loops (tqdm, loaded only when asked for)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """tqdm on stderr: steps done of at most how many, the ELBO, steps/s and the
    time left at most; nothing unless asked for."""

    REFRESH_SECONDS = 0.2

    def __init__(self, shown: bool, unit: str):
        self.shown, self.unit = shown, unit
        self.bar = None
        self.last = 0.0

    def __enter__(self) -> ProgressBar:
        if self.shown:
            from tqdm import tqdm

            self.bar = tqdm(unit=self.unit, leave=False, file=sys.stderr, dynamic_ncols=True, desc="fitting")
        return self

    def show(self, done: int, total: int, elbo: float) -> None:
        now = time.perf_counter()
        if self.bar is None or now - self.last < self.REFRESH_SECONDS:
            return
        self.last = now
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(f"ELBO {elbo:.6g}", refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
