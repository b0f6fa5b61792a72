"""The pointwise log-likelihood: log p(x_i | z_s) of every observed element x_i at every
posterior draw z_s, VI's or NUTS's alike. It is what PSIS-LOO and WAIC read (ArviZ's
`log_likelihood` group: `az.loo`, `az.waic`, `az.compare`).

The model runs once per chunk of draws, conditioned on them under a draws plate, and
each observed site's distribution scores its data element by element (an observation
with an event dimension, a Dirichlet or multivariate row, is one element).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.errors import FitError
from compiler.inference import minibatch
from compiler.inference.elbo import observed_terms
from compiler.inference.posterior import DRAWS_PLATE, conditioned, draws_dim

# Log-likelihood terms computed at once: chunks of draws this large in all (about 80 MB of float64).
TERMS_AT_ONCE = 10_000_000


def log_likelihood(compiled: CompiledModel, data, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{observed site: (draws, *its data's batch shape)} at each of `draws` ({latent: (draws, *shape)})."""
    if enumerated := [s for s in compiled.ir.latents if s.enumerated or s.chain]:
        raise FitError(f"no pointwise log-likelihood for a model with a discrete latent summed out "
                       f"('{enumerated[0].name}'): each observation's likelihood would need it summed per draw",
                       compiled.ir.site_spans[enumerated[0].name],
                       "compare such models by their ELBO, or write the mixture with a marginal density")
    data = data.in_memory() if minibatch.on_disk(data) else data
    count = len(next(iter(draws.values())))
    chunk = max(1, min(count, TERMS_AT_ONCE // max(observed_terms(compiled, data), 1)))
    parts = [_chunk(compiled, data, {name: value[start:start + chunk] for name, value in draws.items()})
             for start in range(0, count, chunk)]
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def _chunk(compiled: CompiledModel, data, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model_ir = compiled.ir
    count = len(next(iter(draws.values())))
    with torch.no_grad(), pyro.plate(DRAWS_PLATE, count, dim=draws_dim(compiled)):
        trace = poutine.trace(conditioned(compiled, draws)).get_trace(data)
    pointwise = {}
    for site in model_ir.observed:
        node = trace.nodes[site.name]
        observed = torch.as_tensor(data[site.name])
        batch_shape = observed.shape[:observed.dim() - node["fn"].event_dim]
        pointwise[site.name] = node["fn"].log_prob(node["value"]).reshape((count,) + tuple(batch_shape))
    return pointwise
