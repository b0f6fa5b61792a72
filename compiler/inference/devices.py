"""Where a fit runs: the CPU or a CUDA device (not Apple's MPS: it has no float64).

While fitting on a device, torch's default device is that device, so that
everything the fit creates (the guide's parameters, draws, plate positions)
lands there, and the data are moved there first. Afterwards the param store
and the results come back to the CPU, where reports, files and saved fits
expect them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from compiler.errors import PplError


@contextmanager
def on_device(device: str) -> Iterator[None]:
    """New tensors (parameters, draws, positions) on `device` while fitting (the fit hands
    its guide state and draws back on the CPU: `on_cpu`)."""
    if device == "cpu":
        yield
        return
    check_available(device)
    previous = torch.get_default_device()
    torch.set_default_device(device)
    try:
        yield
    finally:
        torch.set_default_device(previous)


def check_available(device: str) -> None:
    if not torch.cuda.is_available():
        build = " (this torch is a CPU-only build)" if "+cpu" in torch.__version__ else ""
        raise PplError(f"--device {device}: no such device here{build}",
                       hint="fit on the CPU (the default), or install a torch built for the device on a machine "
                       "that has one")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise PplError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices, "
                       f"numbered from 0", hint="pick one of them")


def moved(data, device: str):
    """`data` with every tensor on `device` (numbers stay numbers)."""
    if device == "cpu":
        return data
    return type(data)({name: value.to(device) if torch.is_tensor(value) else value for name, value in data.items()},
                      data.origin, data.digest, data.warnings, data.placeholders, data.indices)


def on_cpu(state: dict[str, Any]) -> dict[str, Any]:
    """A param store state with every parameter on the CPU."""
    return {**state, "params": {name: value.cpu() for name, value in state["params"].items()}}
