"""Draws from a fit: the posterior of every latent and let from a fitted guide, the
posterior predictive of every observed site from a fit's draws of the latents (for its
own data or new data), the prior predictive, and P(z = k) for enumerated latents. Each
runs in a param store of its own (`params.scope`), holding the fitted guide's state
where it needs it."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import Predictive, infer_discrete
from pyro.poutine.messenger import Messenger

from compiler.backend.build import CompiledModel
from compiler.backend.hidden_markov import state_marginals
from compiler.errors import DataError, FitError
from compiler.frontend import ir
from compiler.inference import diagnose, minibatch, params
from compiler.inference.fixed_draws import FixedNoise, Noise
from compiler.inference.lbfgs import guided_sites

DRAWS_PLATE = "_draws"


def posterior_draws(compiled: CompiledModel, data, count: int, guide_state: params.State | None = None,
                    noise: Noise | None = None) -> dict[str, torch.Tensor]:
    """Draws of every guided latent (from the guide: `guide_state`, by default the current
    param store; with `noise`, each normal factor's draws are those it gives) and every
    let (the model replayed on them), vectorised under one plate left of the model's plates."""
    if guide_state is not None:
        with params.scope(guide_state):
            return posterior_draws(compiled, data, count, noise=noise)
    model_ir = compiled.ir
    lets = [s for s in model_ir.lets if not s.transformed_data and not minibatch.on_disk(data)]
    if lets and diagnose.empty_plate(data, diagnose.statements_of_model(compiled)):
        lets = []  # `model` cannot run: the fit has said so
    fixed = FixedNoise(guided_sites(compiled), noise) if noise is not None else nullcontext()
    with torch.no_grad(), fixed, pyro.plate(DRAWS_PLATE, count, dim=-(model_ir.max_plate_nesting + 1)):
        trace = poutine.trace(compiled.guide).get_trace(data)
        if lets:
            trace = poutine.trace(poutine.replay(compiled.model, trace)).get_trace(data)
    return {s.name: own_dims(trace.nodes[s.name]["value"], count, len(s.shape))
            for s in (*model_ir.guided_latents, *lets)}


def own_dims(value: torch.Tensor, count: int, rank: int) -> torch.Tensor:
    """(draws, *shape): drop the unit dims Pyro pads between the draws plate and the site."""
    return value.reshape((count,) + tuple(value.shape[value.dim() - rank:]))


def guide_shapes(compiled: CompiledModel, data) -> dict[str, tuple[int, ...]]:
    """Each guide parameter's shape in unconstrained space, for this data."""
    with params.scope():
        _initial_guide(compiled, data)
        return {name: tuple(value.shape) for name, value in params.named().items()}


def restore_guide(compiled: CompiledModel, data, values: dict) -> params.State:
    """The state of a guide whose unconstrained parameters are `values` (each created
    first at its initial value, with its constraint), made in a scope of its own."""
    with params.scope():
        _initial_guide(compiled, data)
        with torch.no_grad():
            for name, parameter in params.named().items():
                parameter.copy_(torch.as_tensor(values[name], dtype=parameter.dtype).reshape(parameter.shape))
        return params.state()


def _initial_guide(compiled: CompiledModel, data) -> None:
    params.fresh(0)
    diagnose.initialise(compiled, data)


class ReleaseObserved(Messenger):
    """The named observe statements' sites sampled instead of scored (their data
    released), every other site as it was: a let (an observed Delta to Pyro) keeps
    the value it was computed as."""

    def __init__(self, sites: set[str]):
        super().__init__()
        self.sites = frozenset(sites)

    def _pyro_sample(self, msg) -> None:
        if msg["name"] in self.sites and msg["is_observed"]:
            msg["is_observed"] = False
            msg["value"] = None


def refuse_chains(compiled: CompiledModel) -> None:
    """Predictions draw each observe statement's site; a chain's observations are one site, which
    scores them with the states summed out and draws none."""
    chain = next((s for s in compiled.ir.latents if s.chain), None)
    if chain is not None:
        raise FitError(f"no predictive draws for a model with a chain of discrete states ('{chain.name}'): its "
                       "observations are scored together, the states summed out", chain.span,
                       "the posterior of the other latents is reported as usual")


def prior_predictive(compiled: CompiledModel, data, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Draws of every observed site, sampled rather than scored, with every latent
    drawn from its prior, vectorised over a draws plate by `pyro.infer.Predictive`."""
    refuse_chains(compiled)
    data = _in_memory(compiled, data)
    observed = {s.name for s in compiled.ir.observed}
    with params.scope():
        pyro.set_rng_seed(seed)
        predictive = Predictive(ReleaseObserved(observed)(compiled.model), num_samples=count,
                                return_sites=sorted(observed), parallel=True)
        draws = predictive(data)
    return {s.name: draws[s.name].reshape((count,) + tuple(torch.as_tensor(data[s.name]).shape))
            for s in compiled.ir.observed}


def posterior_predictive(compiled: CompiledModel, data, latents: dict[str, torch.Tensor], count: int, seed: int,
                         guide_state: params.State | None = None) -> dict[str, torch.Tensor]:
    """Draws of every observed site for `data`, one per draw of the latents (`latents`:
    every guided latent, (count, *shape)): the model conditioned on them under a draws
    plate, its observe statements sampled rather than scored, its lets recomputed, its
    enumerated latents drawn given the rest, and the spec's params from `guide_state`."""
    refuse_chains(compiled)
    data = _in_memory(compiled, data)
    _refuse_new_shapes(compiled, data, latents)
    model_ir = compiled.ir
    released = ReleaseObserved({s.name for s in model_ir.observed})(conditioned(compiled, latents))
    with params.scope(guide_state), torch.no_grad(), pyro.plate(DRAWS_PLATE, count, dim=draws_dim(compiled)):
        pyro.set_rng_seed(seed)
        trace = poutine.trace(released).get_trace(data)
    return {s.name: trace.nodes[s.name]["value"].reshape((count,) + tuple(torch.as_tensor(data[s.name]).shape))
            for s in model_ir.observed}


def conditioned(compiled: CompiledModel, latents: dict[str, torch.Tensor]):
    """The model with every guided latent fixed at its draws ({latent: (draws, *shape)}), to
    run under a plate of the draws at `draws_dim`."""
    dim = draws_dim(compiled)
    return poutine.condition(compiled.model, {s.name: at_draws_dim(latents[s.name], s, dim)
                                              for s in compiled.ir.guided_latents})


def draws_dim(compiled: CompiledModel) -> int:
    """Where a plate of draws goes: left of every plate of the model."""
    return -(compiled.ir.max_plate_nesting + 1)


def at_draws_dim(value: torch.Tensor, latent: ir.Latent, dim: int) -> torch.Tensor:
    """(draws, *shape) -> the layout Pyro gives a site under a draws plate at `dim`."""
    padding = -dim - 1 - len(latent.plates)
    return value.reshape((value.shape[0],) + (1,) * padding + tuple(value.shape[1:]))


def _in_memory(compiled: CompiledModel, data):
    """The data as predictions need them: whole, every plate of the model with elements."""
    data = data.in_memory() if minibatch.on_disk(data) else data
    diagnose.refuse_empty_plates(data, diagnose.statements_of_model(compiled))
    return data


def _refuse_new_shapes(compiled: CompiledModel, data, latents: dict[str, torch.Tensor]) -> None:
    """Each latent keeps the shape it was fitted with: its draws are of that shape."""
    for latent in compiled.ir.guided_latents:
        fitted = tuple(latents[latent.name].shape[1:])
        shape = tuple(int(data[dim]) if isinstance(dim, str) else dim for dim in latent.shape)
        if shape != fitted:
            sizes = ", ".join(f"{dim} = {int(data[dim])}" for dim in latent.shape if isinstance(dim, str))
            raise DataError(f"these data give latent '{latent.name}' shape {list(shape)} ({sizes}), but the fit "
                            f"drew it with shape {list(fitted)}: predictions reuse the fitted latents",
                            latent.span, "give the new data the sizes the fitted data had for the latents' "
                            "dimensions; only the rows of observations may change")


def discrete_posterior(compiled: CompiledModel, data, count: int) -> dict[str, torch.Tensor]:
    """P(z = k) per element of every enumerated latent: Pyro's `infer_discrete`
    samples z given each of `count` guide draws, and the frequencies are averaged; a chain's
    P(z[t] = k) are its smoothed marginals at each draw (`state_marginals`), averaged."""
    model_ir = compiled.ir
    enumerated = [s for s in model_ir.latents if s.enumerated]
    chains = [s for s in model_ir.latents if s.chain]
    if not enumerated and not chains:
        return {}
    nesting = model_ir.max_plate_nesting
    draws_plate = pyro.plate(DRAWS_PLATE, count, dim=-(nesting + 1))
    with torch.no_grad():
        with draws_plate:
            guide_trace = poutine.trace(compiled.guide).get_trace(data)

        def replayed_model(data):
            with draws_plate:
                return poutine.replay(compiled.model, guide_trace)(data)

        sampler = infer_discrete(replayed_model, first_available_dim=-(nesting + 2), temperature=1)
        trace = poutine.trace(sampler if enumerated else replayed_model).get_trace(data)
    probabilities: dict[str, Any] = {}
    for chain in chains:  # its site is the chain with its observations; smoothing gives each state's probability
        site = trace.nodes[chain.name]
        marginals = state_marginals(site["fn"], site["value"])
        probabilities[chain.name] = marginals.reshape((-1,) + marginals.shape[-2:]).mean(0)
    for latent in enumerated:
        site = trace.nodes[latent.name]
        values = site["fn"].enumerate_support(expand=False).reshape(-1)
        draws = own_dims(site["value"].expand(site["fn"].batch_shape), count, len(latent.shape))
        probabilities[latent.name] = torch.stack([(draws == v).double().mean(0) for v in values], dim=-1)
    return probabilities
