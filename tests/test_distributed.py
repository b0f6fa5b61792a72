"""Data-parallel fits (`--distributed` under torchrun): each process holds a slice
of every data plate, and together they fit the same posterior as one process."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pyro import poutine

from compiler.cli import main
from compiler.inference import minibatch

ROOT = Path(__file__).resolve().parent.parent


def test_the_mean_of_the_scaled_shards_is_the_full_log_likelihood_for_uneven_slices(regression, float64):
    data = regression.load_data({"x": torch.linspace(-1, 1, 7).tolist(), "y": torch.randn(7).tolist()})
    fixed = poutine.condition(regression.model, {"a": torch.tensor(0.3)})
    full = poutine.trace(fixed).get_trace(data).log_prob_sum()
    shards = [minibatch.shard(regression, data, rank, 3) for rank in range(3)]
    assert [shard["N"] for shard, _ in shards] == [2, 2, 3]
    scaled = [poutine.trace(minibatch.ScaleObservations(scales)(fixed)).get_trace(shard).log_prob_sum()
              for shard, scales in shards]
    assert torch.allclose(torch.stack(scaled).mean(), full)


def test_distributed_without_torchrun_says_how_to_launch(specs, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", str(specs / "linear_regression.ppl"), "--distributed"]) != 0
    assert "torchrun --nproc-per-node 2" in capsys.readouterr().err


def _fit_in_two_processes(options: list[str]) -> dict:
    """`pplc run specs/linear_regression.ppl --json --distributed OPTIONS` under torchrun, two processes on loopback."""
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "compiler", "run", "specs/linear_regression.ppl", "--json", "--distributed", *options],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout[result.stdout.index("{"):])


def _as_printed(report) -> dict:
    """The report as `pplc run --json` prints it."""
    return json.loads(report.to_json())


@pytest.fixture(scope="module")
def guide_fits(linear_regression):
    """What one process fits with an optimizer, its draws from the guide itself (as a
    distributed fit's are: linear response and PSIS need every row in one process); each
    fitted once, when a test first asks."""
    return functools.cache(lambda optimizer: linear_regression.fit(seed=0, optimizer=optimizer, covariance="guide"))


# Adam's two-process fit (14 s) and the batched one (20 s) run with -m slow, to keep the default run
# under five minutes; L-BFGS's two-process fit (5 s) runs by default.
@pytest.mark.parametrize("optimizer", ["lbfgs", pytest.param("adam", marks=pytest.mark.slow)])
def test_two_processes_on_loopback_fit_the_posterior_of_one(optimizer, guide_fits):
    single = _as_printed(guide_fits(optimizer))
    double = _fit_in_two_processes(["--optimizer", optimizer])
    # Same draws, gradients averaged exactly: only the order of float sums differs, so the
    # fits agree far inside 1 % of an sd (either fit's own error is several percent).
    for name, summary in single["posterior"].items():
        mean, sd = torch.tensor(summary["mean"]), torch.tensor(summary["sd"])
        assert ((torch.tensor(double["posterior"][name]["mean"]) - mean).abs() <= 0.01 * sd).all(), name
        assert torch.allclose(torch.tensor(double["posterior"][name]["sd"]), sd, rtol=0.01), name


@pytest.mark.slow
def test_two_processes_with_batches_fit_the_posterior_of_one_over_all_the_rows(guide_fits):
    single = _as_printed(guide_fits("lbfgs"))
    double = _fit_in_two_processes(["--batch-size", "50"])
    assert double["optimizer"] == "lbfgs"
    # Each process draws its own batches, so the fits differ by the rounds' noise: within
    # a tenth of an sd in the means, and the averaged rounds' 5 % in the sds.
    for name, summary in single["posterior"].items():
        mean, sd = torch.tensor(summary["mean"]), torch.tensor(summary["sd"])
        assert ((torch.tensor(double["posterior"][name]["mean"]) - mean).abs() <= 0.1 * sd).all(), name
        assert torch.allclose(torch.tensor(double["posterior"][name]["sd"]), sd, rtol=0.05), name


def test_each_process_fits_its_own_slice_of_the_rows(regression, float64, monkeypatch):
    from compiler.inference import distributed
    from compiler.inference import fit as infer

    monkeypatch.setattr(distributed, "start", lambda device: None)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world", lambda: 2)
    data = regression.load_data({"x": list(range(10)), "y": [0.0] * 10})
    objective = infer._objective(regression.compiled, data, infer.RunConfig(distributed=True))
    assert objective.data["N"] == 5 and objective.data["x"].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    fixed = poutine.condition(objective.model, {"a": torch.tensor(0.5)})
    assert poutine.trace(fixed).get_trace(objective.data).nodes["y"]["scale"] == 2.0
