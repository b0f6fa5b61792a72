"""The fixed draws of deterministic ADVI, given to the guide by a Pyro messenger.

A normal guide factor draws z = T(loc + scale * e), e standard normal (T the
factor's transform to the latent's support). Under `FixedNoise` each named
guide site takes its e from a table instead of torch's generator: the same e at
every evaluation, so the ELBO is a smooth deterministic function of (loc, scale)
that L-BFGS can maximise, and z stays differentiable in them exactly as in
torch's own `rsample`. The joint guides' one site (`--guide fullrank`,
`lowrank`) draws loc + L e, or loc + W e1 + sqrt(d) e2, alike. Guide factors of
other families (the native Beta, Gamma, Dirichlet) are fixed by reseeding
torch's generator for each evaluation instead.

The draws are antithetic (zero mean across the particles) and whitened across
all coordinates (unit second moment, no correlation between coordinates), so
for a Gaussian posterior the fixed-draw optimum has exactly the mean-field
means and scales (the full-rank guide's: the posterior's mean and covariance).
Whitening needs at least as many antithetic pairs as coordinates; with fewer,
each coordinate is standardised on its own and the scales of strongly
correlated coordinates keep a small bias.

A fixed draw is scored by the guide from its noise (`Scored`): log q(z) is
-log scale - e²/2 - log √(2π), less the transforms' log-Jacobians, exactly as the
distribution's own `log_prob` would give it in exact arithmetic. The distribution's
own way inverts the draw, (z - loc) / scale after log(exp(.)), and where a scale has
collapsed below the rounding of its location that quotient is rounding error divided
by the scale: a log q of about -10^75 at a scale of e^-124, a loss without a floor
that L-BFGS ran down until it diverged (the 1,000-group hierarchy, bench/RESULTS.md).
From the noise, log q falls by one nat per unit of log-scale, so a collapsing scale
costs the ELBO what it should.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

import torch
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.poutine.messenger import Messenger
from torch.distributions import (
    Independent,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    TransformedDistribution,
)

from compiler.frontend.distributions import LOG_SQRT_2PI

# (site, shape) -> e: the batch shape of a normal; batch + (D,) of a multivariate normal over D
# coordinates, batch + (rank + D,) of a low-rank one
Noise = Callable[[str, torch.Size], torch.Tensor]


class FixedNoise(Messenger):
    """Every sampled (not observed, not replayed) site named in `sites` whose distribution
    is a normal, possibly transformed or with event dims, draws loc + scale * noise(site, shape);
    a multivariate normal, full-rank or low-rank, draws its loc plus its factor times the noise.
    Enter it around the whole evaluation (outside the particle plate), so that the
    distributions it sees carry every batch dim."""

    def __init__(self, sites: Collection[str], noise: Noise):
        super().__init__()
        self.sites = frozenset(sites)
        self.noise = noise

    def _pyro_sample(self, msg) -> None:
        if msg["name"] not in self.sites or msg["is_observed"] or msg["value"] is not None:
            return
        fn = msg["fn"]
        drawn = self._drawn(msg["name"], fn)
        if drawn is None:
            return
        msg["value"], log_density = drawn
        if log_density is not None:
            msg["fn"] = Scored(fn, msg["value"], log_density)

    def _drawn(self, site: str, fn) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The draw of `fn` at this site's noise and fn's log density there, from the noise;
        None where fn does not draw through a normal."""
        if isinstance(fn, MultivariateNormal):
            return self._joint(site, fn)
        if isinstance(fn, LowRankMultivariateNormal):  # its log density needs its covariance's factors: fn's own
            rank = fn.cov_factor.shape[-1]
            e = self._noise(site, fn.batch_shape + (rank + fn.event_shape[-1],), fn.loc)
            return (fn.loc + (fn.cov_factor @ e[..., :rank].unsqueeze(-1)).squeeze(-1)
                    + fn.cov_diag.sqrt() * e[..., rank:], None)
        if isinstance(fn, Normal):
            e = self._noise(site, fn.batch_shape, fn.loc)
            return fn.loc + e * fn.scale, -fn.scale.log() - e.pow(2) / 2 - LOG_SQRT_2PI
        if isinstance(fn, Independent):
            inner = self._drawn(site, fn.base_dist)
            return None if inner is None else (inner[0], _sum_rightmost(inner[1], fn.reinterpreted_batch_ndims))
        if isinstance(fn, TransformedDistribution):
            inner = self._drawn(site, fn.base_dist)
            return None if inner is None else _transformed(fn, *inner)
        return None

    def _joint(self, site: str, fn: MultivariateNormal) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-rank guide's draw loc + L e (L the Cholesky factor, as torch's own `rsample`)."""
        e = self._noise(site, fn.batch_shape + fn.event_shape, fn.loc)
        log_density = (-fn.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) - e.pow(2).sum(-1) / 2
                       - fn.event_shape[-1] * LOG_SQRT_2PI)
        return fn.loc + (fn.scale_tril @ e.unsqueeze(-1)).squeeze(-1), log_density

    def _noise(self, site: str, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        return self.noise(site, shape).to(dtype=like.dtype, device=like.device)


def _transformed(fn: TransformedDistribution, base: torch.Tensor,
                 log_density: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The base's draw carried through fn's transforms, and its log density less their
    log-Jacobians, summed over the event dims as `TransformedDistribution.log_prob` sums them."""
    event_dim = len(fn.event_shape) + sum(t.domain.event_dim - t.codomain.event_dim for t in fn.transforms)
    log_density = _sum_rightmost(log_density, event_dim - len(fn.base_dist.event_shape))
    value = base
    for transform in fn.transforms:
        moved = transform(value)
        log_density = log_density - _sum_rightmost(transform.log_abs_det_jacobian(value, moved),
                                                   event_dim - transform.domain.event_dim)
        event_dim += transform.codomain.event_dim - transform.domain.event_dim
        value = moved
    return value, log_density


def _sum_rightmost(values: torch.Tensor, dims: int) -> torch.Tensor:
    return values.sum(tuple(range(-dims, 0))) if dims > 0 else values


class Scored(TorchDistribution):
    """A guide distribution at its fixed draw: `log_prob` of that draw is the log density
    computed from the noise (module docstring); anything else is `fn`'s own."""

    def __init__(self, fn, value: torch.Tensor, log_density: torch.Tensor):
        self.fn, self.value, self.log_density = fn, value, log_density
        super().__init__(fn.batch_shape, fn.event_shape, validate_args=False)

    @property
    def support(self):
        return self.fn.support

    @property
    def has_rsample(self) -> bool:
        return self.fn.has_rsample

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.fn.rsample(sample_shape)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.fn.sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.log_density if value is self.value else self.fn.log_prob(value)


class FixedDraws:
    """Antithetic standard normal draws per site, created by the first evaluation and
    returned unchanged by every later one; whitened together once all exist."""

    def __init__(self, sites: Collection[str], seed: int):
        self.sites = frozenset(sites)
        self.seed = seed
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.draws: dict[str, torch.Tensor] = {}

    def noise(self, site: str, shape: torch.Size) -> torch.Tensor:
        if site not in self.draws:
            self.draws[site] = self._antithetic(torch.Size(shape))
        return self.draws[site]

    def _antithetic(self, shape: torch.Size) -> torch.Tensor:
        """Pairs (e, -e) along the particle dim (the leftmost), scaled to unit
        mean square per coordinate."""
        if len(shape) == 0 or shape[0] < 2 or shape[0] % 2:
            return torch.randn(shape, generator=self.generator, dtype=torch.float64, device="cpu")
        half = torch.randn((shape[0] // 2,) + shape[1:], generator=self.generator, dtype=torch.float64, device="cpu")
        draws = torch.cat([half, -half])
        return draws / draws.pow(2).mean(0, keepdim=True).sqrt()

    def whiten(self) -> None:
        """Decorrelate every coordinate of every draw made so far (call after one
        evaluation has created them all), where there are enough pairs."""
        paired = [d for d in self.draws.values() if d.dim() and d.shape[0] >= 2 and d.shape[0] % 2 == 0]
        if not paired or len({d.shape[0] for d in paired}) != 1:
            return
        pairs = paired[0].shape[0] // 2
        halves = torch.cat([d[:pairs].reshape(pairs, -1) for d in paired], dim=1)
        if halves.shape[1] > pairs:
            return
        values, vectors = torch.linalg.eigh(halves.T @ halves / pairs)
        whitened = halves @ (vectors @ torch.diag(values.rsqrt()) @ vectors.T)
        for d, part in zip(paired, whitened.split([d[:pairs].numel() // pairs for d in paired], dim=1)):
            d.copy_(torch.cat([part, -part]).reshape(d.shape))

    def first_pairs(self, pairs: int) -> FixedDraws:
        """The same draws cut to their first `pairs` antithetic pairs (all of them where there are fewer)."""
        cut = FixedDraws(self.sites, self.seed)
        for site, draw in self.draws.items():
            half = draw.shape[0] // 2 if draw.dim() else 0
            cut.draws[site] = torch.cat([draw[:pairs], draw[half:half + pairs]]) if 0 < pairs < half else draw
        return cut

    @contextmanager
    def active(self) -> Iterator[None]:
        with FixedNoise(self.sites, self.noise), torch.random.fork_rng():
            torch.manual_seed(self.seed)  # the same non-normal draws in every evaluation
            yield


@contextmanager
def at_the_centre(sites: Collection[str], seed: int) -> Iterator[None]:
    """Every normal guide factor draws its location (e = 0); other factors (the native
    guide's) draw from `seed`, the same in every evaluation."""
    with FixedNoise(sites, no_noise), torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def no_noise(site: str, shape: torch.Size) -> torch.Tensor:
    """Noise of 0: each normal factor draws its location (its median)."""
    return torch.zeros(shape, dtype=torch.float64)
