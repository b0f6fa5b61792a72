"""The sentences the report says about how a fit went: one per kind of `Note` the
inference phase records (inference/records.py), rendered from its values."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compiler.inference.records import Note


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{size} = {length:,}" for size, length in sizes.items())


def _retried(v: dict[str, Any]) -> str:
    what = "L-BFGS steps scaled by" if v["optimizer"] == "lbfgs" else "Adam learning rate"
    return (f"the first attempt failed ({v['failure']}); this fit is a retry from a fresh initialisation with "
            f"{what} {v['rate']:g}")


def _nothing_to_fit(v: dict[str, Any]) -> str:
    latents = ", and its only latents are enumerated (summed out exactly)" if v["enumerated"] else " and no latents"
    return f"nothing to fit: the spec has no params{latents}, so the ELBO is log p(x) itself"


def _minibatch_svi(v: dict[str, Any]) -> str:
    return f"minibatch SVI: each step saw {v['batch_size']:,} random rows of {_sizes(v['sizes'])}"


def _minibatch_lbfgs(v: dict[str, Any]) -> str:
    held = (f"minibatch VI: L-BFGS in {v['rounds']} rounds, each holding {v['batch_size']:,} random rows of "
            f"{_sizes(v['sizes'])}")
    if v["rounds"] <= 1:
        return f"{held}, scaled up: the fit stopped before a round corrected by the full-data gradient"
    averaged, to_average = v["averaged"], v["to_average"]
    ending = (f"the answer averages the last {averaged}" if averaged >= to_average else
              f"the answer averages the last {averaged} of the {to_average} it should" if averaged else
              f"the last round still moved the guide {v['moved']:.2g} posterior sds")
    return f"{held}, corrected by a control variate (the full-data gradient at its anchor); {ending}"


SENTENCES: dict[str, Callable[[dict[str, Any]], str]] = {
    "adam_without_control_variate": lambda v: (
        "Adam steps, not L-BFGS: these batches get no control variate (a model with point parameters or "
        "enumerated latents, or two data plates split at once)"),
    "adam_for_small_batches": lambda v: (
        f"Adam steps, not L-BFGS: batches of {v['batch_size']:,} rows have fewer than {v['rows_per_coordinate']} "
        f"per guide coordinate ({v['coordinates']})"),
    "nothing_to_subsample": lambda v: (
        f"--batch-size {v['batch_size']}: nothing to subsample (every observation scored one by one has at most "
        "that many rows, or is scored from sufficient statistics of all of them)"),
    "retried": _retried,
    "nothing_to_fit": _nothing_to_fit,
    "improper_unchecked": lambda v: (
        f"{v['coordinates']:,} coordinates have improper priors, more than the {v['checked']} whose curvature pplc "
        "checks, so an improper posterior would go unnoticed (docs/inference.md)"),
    "on_disk_without_lets_and_khat": lambda v: (
        "the data stay on disk: lets and Pareto k̂ are left out (they need every row at once)"),
    "on_disk_without_lets": lambda v: "the data stay on disk: lets are left out (they need every row at once)",
    "lets_without_plate": lambda v: (
        f"lets are left out: they are drawn by replaying the model, which cannot run with {v['size']} = 0 "
        "(Pyro's plates need at least one element)"),
    "distributed": lambda v: f"distributed over {v['processes']} processes, each holding a slice of every data plate",
    "too_few_pairs": lambda v: (
        f"L-BFGS drew {v['pairs']} antithetic pairs for {v['coordinates']} coordinates, too few to decorrelate "
        "them, so the sds of correlated coordinates may come out too small; --batch-size fits data this large "
        "without that bias (docs/scaling.md)"),
    "minibatch_svi": _minibatch_svi,
    "minibatch_svi_controlled": lambda v: (
        f"{_minibatch_svi(v)}, corrected by a control variate anchored on all of them every "
        f"{v['anchor_every']:,} steps"),
    "minibatch_lbfgs": _minibatch_lbfgs,
    "linear_response_too_large": lambda v: (
        f"mean-field sds: the linear-response correction would need a covariance over {v['coordinates']:,} "
        f"coordinates, more than the {v['limit']:,} pplc forms (docs/inference.md); sds of correlated latents may "
        "be too small"),
    "lanczos_unsettled": lambda v: (
        f"the linear-response sds had not settled after {v['vectors']} Hessian-vector products "
        "(docs/inference.md); sds of correlated latents may be too small"),
    "hessian_not_positive_definite": lambda v: (
        "mean-field sds: the ELBO's Hessian is not positive definite at the optimum, so there is no linear-response "
        "correction; sds of correlated latents may be too small"),
    "more_draws": lambda v: (
        f"the fitted means varied by up to {v['error']:.2g} posterior sds over the choice of {v['particles']} fixed "
        f"draws, so the fit was repeated with {v['more']}"),
}


def sentence(note: Note) -> str:
    return SENTENCES[note.kind](note.values)
