"""Phase 4 (alternative), NUTS: `Program` + `Data` -> `NutsResult`.

The No-U-Turn sampler on the same compiled model SVI fits (its sufficient-statistics
form, enumerated latents summed out), on Pyro's potential energy over the
unconstrained latents (`initialize_model`: the same transforms as the guide's), made
fast three ways:

- **Warm start.** The default VI fit (a second or two) gives the linear-response
  Gaussian N(m, L Lᵀ) over the unconstrained latents. The chains run on u, z = m + L u:
  that is NUTS on z with the dense mass matrix (L Lᵀ)⁻¹, so that a posterior as
  correlated as radon's looks round to them, and each chain starts at a draw from that
  Gaussian, already in the typical set. Warm-up then only adapts the step size, and
  the sampler is pplc's own (`no_u_turn`: Pyro's spends more per step on bookkeeping
  than radon's model costs). Without a Gaussian the chains start cold on Pyro's NUTS,
  which adapts a diagonal mass matrix as well.
- **A compiled potential**: the potential and its gradient as one frozen graph of forward
  and backward operations (`compiled_potential`), built in a process of its own while the
  warm start's VI fit runs. Cold, Pyro's NUTS gets the traced potential (as its
  `jit_compile`); where a latent is enumerated or an ODE solved, nothing is traced.
- **Chains in parallel** processes, one per core, forked once the graph is loaded (the
  potential and graph are inherited, not pickled), chain k seeded with seed + k.

Kept per chain: the draws, and per draw whether it diverged, its leapfrog steps, tree
depth and step size (ArviZ's `sample_stats`). R̂ and ESS are the rank-normalised
split R̂ and bulk ESS across chains (Vehtari et al. 2021; `stats`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import multiprocessing.pool
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc import MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from torch.distributions import transform_to

from compiler.backend.build import CompiledModel
from compiler.errors import FitError
from compiler.inference import compiled_potential, no_u_turn, params, stats
from compiler.inference.config import NutsConfig, RunConfig
from compiler.inference.diagnose import initialise
from compiler.inference.no_u_turn import Energy, EnergyAndGradient
from compiler.inference.posterior import DRAWS_PLATE, conditioned, draws_dim
from compiler.inference.progress import ProgressBar

RHAT_CONVERGED = 1.01


@dataclass(frozen=True)
class SampleStats:
    """Per chain and draw: (chains, samples) each."""

    diverging: torch.Tensor
    n_steps: torch.Tensor  # leapfrog steps
    tree_depth: torch.Tensor
    step_size: torch.Tensor


@dataclass(frozen=True)
class NutsResult:
    chain_draws: dict[str, torch.Tensor]  # site -> (chains, samples, *shape)
    rhat: dict[str, torch.Tensor]
    ess: dict[str, torch.Tensor]
    stats: SampleStats

    @property
    def draws(self) -> dict[str, torch.Tensor]:
        """The chains end to end: site -> (chains * samples, *shape)."""
        return {name: value.reshape((-1,) + value.shape[2:]) for name, value in self.chain_draws.items()}

    @property
    def divergences(self) -> int:
        return int(self.stats.diverging.sum())

    @property
    def unconverged(self) -> list[str]:
        """The sites with some element's R̂ at or above RHAT_CONVERGED."""
        return [name for name, r in self.rhat.items() if bool((r >= RHAT_CONVERGED).any())]

    @property
    def converged(self) -> bool:
        return not self.unconverged


@dataclass(frozen=True)
class Geometry:
    """Where NUTS runs: z = centre + scale_tril u over the flat unconstrained latents,
    laid out site by site (`sites`, `shapes`)."""

    sites: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    centre: torch.Tensor
    scale_tril: torch.Tensor
    warm: bool

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., D) -> {site: (..., *shape)}."""
        parts = flat.split([math.prod(shape) for shape in self.shapes], dim=-1)
        return {site: part.reshape(flat.shape[:-1] + shape) for site, part, shape in zip(self.sites, parts, self.shapes)}

    def latents(self, u: torch.Tensor) -> torch.Tensor:
        return self.centre + u @ self.scale_tril.T


def fit_nuts(compiled: CompiledModel, data, config: NutsConfig) -> NutsResult:
    if compiled.ir.params:
        raise FitError("NUTS samples latents only; this spec has point parameters "
                       f"({', '.join(p.name for p in compiled.ir.params)})",
                       compiled.ir.site_spans[compiled.ir.params[0].name],
                       "fit it with SVI (the default), which learns params, or make them latents")
    with params.scope():
        initialise(compiled, data)  # a distribution that refuses its arguments is reported at its statement
    enumerated = any(s.enumerated for s in compiled.ir.latents)
    scored_model, scored_data = compiled.scored(data)
    with params.scope():
        params.fresh(config.seed)
        initial, potential, transforms, _ = initialize_model(
            scored_model, (scored_data,), max_plate_nesting=compiled.ir.max_plate_nesting, init_strategy=_initial_value)
    # Not traced where a latent is enumerated (Pyro sums it out with Python control flow a trace would
    # freeze) or an ODE is solved (a trace would freeze the solver's adaptive steps).
    chains = _Chains(potential, config, traceable=not enumerated and not compiled.ir.odes)
    cold = _cold(initial)
    with _built_aside(chains, cold) as compiled_gradient:  # while the warm start's VI fit runs
        geometry = _geometry(compiled, data, config, cold)
        if geometry.warm and compiled_gradient is not None:
            chains.evaluate = compiled_potential.whitened_with_gradient(compiled_gradient(), geometry.centre,
                                                                         geometry.scale_tril)
    with _workers(chains) as pool:
        runs = _run_chains(chains, geometry, pool)
    unconstrained = geometry.latents(torch.stack([torch.as_tensor(run.draws) for run in runs]))  # (chains, samples, D)
    constrained = {site: transforms[site].inv(value) for site, value in geometry.split(unconstrained).items()}
    chain_draws = _with_lets(compiled, data, constrained, config.chains)
    sampler = SampleStats(*(torch.as_tensor(np.stack([getattr(run, field) for run in runs]))
                            for field in ("diverging", "n_steps", "tree_depth", "step_size")))
    rhat = {name: stats.rhat(value) if config.chains > 1 else torch.full(value.shape[2:], math.nan)
            for name, value in chain_draws.items()}
    ess = {name: stats.ess(value) for name, value in chain_draws.items()}
    return NutsResult(chain_draws, rhat, ess, sampler)


def _initial_value(site: dict) -> torch.Tensor:
    """Pyro's `init_to_uniform`: a uniform point in (-2, 2) of the unconstrained space. It takes the
    shape from a draw, which an improper prior (Flat, HalfFlat) cannot give: those take it from
    the distribution's shape instead."""
    try:
        return init_to_uniform(site)
    except NotImplementedError:
        transform = transform_to(site["fn"].support)
        return transform(torch.rand(transform.inverse_shape(site["fn"].shape())) * 4 - 2)


def _cold(initial: dict[str, torch.Tensor]) -> Geometry:
    """The identity around Pyro's initial point."""
    sites = tuple(sorted(initial))
    centre = torch.cat([initial[site].detach().reshape(-1) for site in sites])
    return Geometry(sites, tuple(initial[site].shape for site in sites), centre,
                    torch.eye(len(centre), dtype=centre.dtype), warm=False)


def _geometry(compiled: CompiledModel, data, config: NutsConfig, cold: Geometry) -> Geometry:
    """The VI fit's linear-response Gaussian where there is one (see `approximation`); `cold`
    otherwise, or when warm starts are off."""
    if not config.warm_start or any(s.enumerated for s in compiled.ir.latents):
        return cold
    from compiler.inference import fit as infer

    try:
        gaussian = infer.gaussian(compiled, data, RunConfig(seed=config.seed, particles=WARM_START_PARTICLES,
                                                           progress=config.progress))  # the warm start's own bar
    except FitError:  # (a fit that fails is no start: NUTS starts cold, as it would without one)
        return cold
    if gaussian is None or {b.latent for b in gaussian.blocks} != set(cold.sites):
        return cold
    order = {b.latent: b for b in gaussian.blocks}
    index = torch.cat([torch.arange(order[s].start, order[s].start + order[s].size) for s in cold.sites])
    covariance = gaussian.scale_tril @ gaussian.scale_tril.T
    scale_tril = torch.linalg.cholesky(covariance[index][:, index])
    return Geometry(cold.sites, cold.shapes, gaussian.mean[index], scale_tril, warm=True)


def whitened(potential, geometry: Geometry) -> Energy:
    """u -> the potential energy at z = centre + scale_tril u."""
    def energy(u: torch.Tensor) -> torch.Tensor:
        return potential(geometry.split(geometry.latents(u)))

    return energy


@contextlib.contextmanager
def _built_aside(chains: _Chains, cold: Geometry) -> Iterator[Callable[[], EnergyAndGradient] | None]:
    """The compiled potential and gradient over the flat latents z, built while the warm start's fit
    runs (`compiled_potential`); None where it is not traced or there is no warm start."""
    if not chains.traceable or not chains.config.warm_start:
        yield None
        return

    def energy(z: torch.Tensor) -> torch.Tensor:
        return chains.potential(cold.split(z))

    with compiled_potential.built_aside(energy, cold.centre) as built:
        yield built


class _Chains:
    """Runs chain k in a geometry: everything a forked worker needs, held before the fork.
    Warm (the space whitened by the VI fit's Gaussian): pplc's `no_u_turn` sampler, the step
    size adapted. Cold: Pyro's NUTS, adapting a diagonal mass matrix as well. The potential in
    the geometry is built once per process, by the first chain that runs there (one fit has one
    geometry)."""

    def __init__(self, potential, config: NutsConfig, traceable: bool):
        self.potential, self.config, self.traceable = potential, config, traceable
        self.evaluate: EnergyAndGradient | None = None  # warm, for pplc's sampler: the potential with its gradient
        self.energy: Energy | None = None  # cold, for Pyro's: the potential
        # Iterations done per chain, in memory the forked workers share: each writes its own slot,
        # the parent reads them all for the progress bar.
        self.done = multiprocessing.get_context("fork").RawArray("q", config.chains)
        self.after_each: Callable[[], None] | None = None  # chains run in this process: the bar, told directly

    def warmup(self, geometry: Geometry) -> int:
        return self.config.warmup or (WARM_WARMUP if geometry.warm else COLD_WARMUP)

    def iterations(self, geometry: Geometry) -> int:
        """Every chain's, all told."""
        return self.config.chains * (self.warmup(geometry) + self.config.samples)

    def run(self, chain: int, geometry: Geometry) -> no_u_turn.Chain:
        if not geometry.warm:
            return self._run_pyro(chain, geometry)
        config, evaluate = self.config, self._evaluator(geometry)
        generator = np.random.default_rng(config.seed + chain)
        start = generator.standard_normal(geometry.centre.numel())  # a draw from the Gaussian
        if not torch.isfinite(evaluate(torch.from_numpy(start))[0]):  # (outside a support the transforms miss)
            start = np.zeros_like(start)  # the Gaussian's mean, the VI fit's optimum
        return no_u_turn.Sampler(evaluate, config.target_accept, generator).run(
            start, self.warmup(geometry), config.samples, functools.partial(self._count, chain))

    def _evaluator(self, geometry: Geometry) -> EnergyAndGradient:
        if self.evaluate is None:  # (not traceable: `fit_nuts` sets the compiled one otherwise)
            self.evaluate = no_u_turn.with_gradient(whitened(self.potential, geometry))
        return self.evaluate

    def _potential(self, geometry: Geometry) -> Energy:
        if self.energy is None:
            energy = whitened(self.potential, geometry)
            self.energy = compiled_potential.traced(energy, torch.zeros_like(geometry.centre)) if self.traceable else energy
        return self.energy

    def _count(self, chain: int) -> None:
        self.done[chain] += 1
        if self.after_each is not None:
            self.after_each()

    def show(self, bar: ProgressBar, geometry: Geometry) -> None:
        """Every chain's iterations against all of them, and how many chains are still warming up."""
        warming = sum(done < self.warmup(geometry) for done in self.done)
        bar.count(sum(self.done), self.iterations(geometry),
                  f"{warming} of {self.config.chains} chains warming up" if warming else "drawing")

    def _run_pyro(self, chain: int, geometry: Geometry) -> no_u_turn.Chain:
        config, evaluations, steps, step_sizes = self.config, [0], [], []
        potential = self._potential(geometry)

        def energy(values: dict[str, torch.Tensor]) -> torch.Tensor:
            evaluations[0] += 1
            return potential(values["u"])

        def record(kernel, samples, stage, i):
            if stage == "Sample":
                steps.append(evaluations[0])
                step_sizes.append(kernel.step_size)
            evaluations[0] = 0
            self._count(chain)

        pyro.set_rng_seed(config.seed + chain)
        kernel = NUTS(potential_fn=energy, target_accept_prob=config.target_accept)
        mcmc = MCMC(kernel, num_samples=config.samples, warmup_steps=self.warmup(geometry),
                    initial_params={"u": torch.zeros_like(geometry.centre)}, hook_fn=record, disable_progbar=True)
        mcmc.run()
        diverging = np.zeros(config.samples, dtype=bool)
        diverging[list(mcmc.diagnostics()["divergences"]["chain 0"])] = True
        n_steps = np.asarray(steps)
        return no_u_turn.Chain(mcmc.get_samples()["u"].numpy(), diverging, n_steps,
                               np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1, np.asarray(step_sizes))


# Warm-up iterations by default. In the VI fit's geometry only the step size is adapted, which
# dual averaging settles in about a hundred; adapting a diagonal correction of the mass matrix
# as well needed Pyro's windows of 300+ and made radon 3x slower (smaller steps), so it is not.
# Cold, Pyro adapts a diagonal mass matrix from scratch, as it always did.
WARM_WARMUP, COLD_WARMUP = 200, 500
# The warm start's VI fit draws this many particles, whatever the report's fit would: NUTS needs a
# Gaussian that whitens the space, not the report's precision. Radon (default 180): the fit 1.5-1.7 s
# of CPU instead of 2.8-3.3, and the same chains (7 leapfrog steps a draw, bulk ESS 2,000 of 2,000).
WARM_START_PARTICLES = 16
_WORK: _Chains | None = None  # the chains a forked worker runs (inherited, never pickled)


@contextlib.contextmanager
def _workers(chains: _Chains) -> Iterator[multiprocessing.pool.Pool | None]:
    """A process per chain where there are cores for them (forked: the potential is inherited,
    never pickled), or None. Ctrl-C reaches only this process, whose pool then ends the workers
    (no worker prints a traceback)."""
    workers = min(chains.config.chains, len(os.sched_getaffinity(0)))
    if workers < 2:
        yield None
        return
    global _WORK
    _WORK = chains
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_worker_setup) as pool:
            yield pool
    finally:
        _WORK = None


def _run_chains(chains: _Chains, geometry: Geometry, pool: multiprocessing.pool.Pool | None) -> list[no_u_turn.Chain]:
    """Every chain: in the pool's processes, or one after another in this one."""
    with ProgressBar(chains.config.progress, "iteration", "NUTS", chains.iterations(geometry)) as bar:
        if pool is None:
            chains.after_each = functools.partial(chains.show, bar, geometry)
            return [chains.run(chain, geometry) for chain in range(chains.config.chains)]
        result = pool.starmap_async(_run_forked, [(chain, geometry) for chain in range(chains.config.chains)])
        while not result.ready():  # the chains count their iterations in shared memory; shown from here
            result.wait(ProgressBar.REFRESH_SECONDS)
            chains.show(bar, geometry)
        return result.get()


def _worker_setup() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # one core per chain


def _run_forked(chain: int, geometry: Geometry) -> no_u_turn.Chain:
    return _WORK.run(chain, geometry)


def _with_lets(compiled: CompiledModel, data, samples: dict[str, torch.Tensor], chains: int) -> dict[str, torch.Tensor]:
    """The sampled latents (enumerated ones are summed out, as in SVI), plus every
    let recomputed on each draw by replaying the model under a draws plate: (chains, samples, *shape)."""
    model_ir = compiled.ir
    flat = {s.name: samples[s.name].reshape((-1,) + samples[s.name].shape[2:]) for s in model_ir.guided_latents}
    lets = [s for s in model_ir.lets if not s.transformed_data]
    if lets:
        count = next(iter(flat.values())).shape[0]
        with torch.no_grad(), pyro.plate(DRAWS_PLATE, count, dim=draws_dim(compiled)):
            trace = poutine.trace(conditioned(compiled, flat)).get_trace(data)
        for let in lets:
            value = trace.nodes[let.name]["value"]
            flat[let.name] = value.reshape((count,) + tuple(value.shape[value.dim() - len(let.shape):]))
    return {name: value.reshape((chains, -1) + value.shape[1:]) for name, value in flat.items()}
