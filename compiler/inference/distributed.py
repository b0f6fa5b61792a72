"""Data-parallel fits over processes or machines, with torch.distributed.

Launched by `torchrun` (which sets RANK, WORLD_SIZE and the rendezvous), every
process holds one contiguous slice of each data plate (`minibatch.shard`),
its observations' log-likelihood scaled by the number of processes W. All
processes start from the same seed, so they draw the same guide samples; the
mean of their losses is then the full-data ELBO, and the mean of their
gradients its gradient, exactly. After each backward pass the gradients are
averaged (all-reduce), so every process takes the same optimizer step and the
guide parameters stay identical without being sent. Process 0 reports.

gloo carries the all-reduces between CPU processes, nccl between GPUs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from compiler.errors import PplError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def start(device: str) -> None:
    """Join the process group torchrun set up (once per process)."""
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise PplError(f"--distributed needs the process group torchrun sets up ({', '.join(missing)} not set)",
                       hint="launch with: torchrun --nproc-per-node 2 -m compiler run SPEC --distributed")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def device_of_this_process(device: str) -> str:
    """Under torchrun, plain "cuda" means this process's own GPU (LOCAL_RANK), as nccl expects."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over the processes (itself in a single process); no gradient."""
    if world() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world()


def average_gradients(parameters) -> None:
    """Replace each parameter's gradient by its mean over the processes."""
    if world() == 1:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world()
