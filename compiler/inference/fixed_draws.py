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
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import (
    Independent,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    TransformedDistribution,
)

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
        if isinstance(fn, (MultivariateNormal, LowRankMultivariateNormal)):
            msg["value"] = self._joint(msg["name"], fn)
            return
        normal, transforms = _normal_inside(fn)
        if normal is None:
            return
        e = self._noise(msg["name"], normal.batch_shape, normal.loc)
        value = normal.loc + e * normal.scale
        for transform in transforms:
            value = transform(value)
        msg["value"] = value

    def _joint(self, site: str, fn: MultivariateNormal | LowRankMultivariateNormal) -> torch.Tensor:
        """A joint guide's draw: loc + L e (L the Cholesky factor), or for the low-rank one
        loc + W e1 + sqrt(d) e2 with (e1, e2) one noise vector of rank + D coordinates, as
        torch's own `rsample` computes them."""
        if isinstance(fn, MultivariateNormal):
            e = self._noise(site, fn.batch_shape + fn.event_shape, fn.loc)
            return fn.loc + (fn.scale_tril @ e.unsqueeze(-1)).squeeze(-1)
        rank = fn.cov_factor.shape[-1]
        e = self._noise(site, fn.batch_shape + (rank + fn.event_shape[-1],), fn.loc)
        return fn.loc + (fn.cov_factor @ e[..., :rank].unsqueeze(-1)).squeeze(-1) + fn.cov_diag.sqrt() * e[..., rank:]

    def _noise(self, site: str, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        return self.noise(site, shape).to(dtype=like.dtype, device=like.device)


def _normal_inside(fn) -> tuple[Normal | None, list]:
    """The normal a guide distribution draws through, and the transforms applied after it."""
    transforms: list = []
    while True:
        if isinstance(fn, Independent):
            fn = fn.base_dist
        elif isinstance(fn, TransformedDistribution):
            transforms = list(fn.transforms) + transforms
            fn = fn.base_dist
        elif isinstance(fn, Normal):
            return fn, transforms
        else:
            return None, []


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
