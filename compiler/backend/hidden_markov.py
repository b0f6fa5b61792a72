"""Phase 3, runtime (chains): a chain of discrete states and the observations it feeds, as Pyro's
`DiscreteHMM`, which sums the states out by the forward algorithm (a parallel scan over time).

Generated code binds the chain's name to `chain_states(K, nesting)`: the states 0..K-1 on a dim
of their own, left of the plates and of Pyro's particle dim, as Pyro's enumeration would place
them. Each observe statement the chain feeds builds its distribution from that value as usual
(`Normal(mu[z], 1)`: one distribution per state and time point), and `hidden_markov` moves the
states to the right, where `DiscreteHMM` wants them. The site's batch shape is then a global
site's: sample dims, then one unit dim per plate.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions import constraints


def chain_states(states: int, nesting: int) -> torch.Tensor:
    """The states 0..states-1, at dim -(nesting + 2)."""
    return torch.arange(states).reshape((states,) + (1,) * (nesting + 1))


def _states_last(value: torch.Tensor, nesting: int) -> torch.Tensor:
    """(K, *sample, *plates) -> (*sample, 1 per plate, time, K): the time is the last plate's dim."""
    return value.movedim(-(nesting + 2), -1).unsqueeze(-3)


def _state_logits(distribution: dist.TorchDistribution, states: int) -> torch.Tensor:
    """log P(state k) under `distribution`, for every k, on a new last dim."""
    # As floats: Bernoulli scores floats, Categorical rounds them to its indices.
    values = torch.arange(states, dtype=torch.get_default_dtype()).reshape((states,) + (1,) * len(distribution.batch_shape))
    return distribution.log_prob(values).movedim(0, -1)


class Emissions(dist.TorchDistribution):
    """The observations at one time point given each state: `parts` (one per observe statement,
    laid out as `chain_states` leaves them) scored together, one event of len(parts) values."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, parts: list[dist.TorchDistribution], nesting: int, length: int,
                 shift: torch.Tensor | None = None):
        self.parts, self.nesting, self.shift = parts, nesting, shift  # shift: added to each state's log density
        shape = torch.broadcast_shapes(*(d.batch_shape for d in parts), (1,) * (nesting + 2))
        batch = _states_last(torch.empty(shape, device="meta"), nesting).shape
        super().__init__(batch[:-2] + (length, batch[-1]), torch.Size([len(parts)]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """`value` (time, 1, parts), as `DiscreteHMM` passes it: (sample..., time, K) log densities."""
        total = _states_last(sum(d.log_prob(value[..., 0, j]) for j, d in enumerate(self.parts)), self.nesting)
        return total if self.shift is None else total + self.shift


def hidden_markov(initial: dist.TorchDistribution, step, states: int, length: int,
                  emissions: list[dist.TorchDistribution], nesting: int) -> dist.DiscreteHMM:
    """The chain's first state drawn from `initial`, each later one from `step(previous)`, and
    the observations from `emissions`: one `DiscreteHMM` over all time points. Pyro's HMM starts
    from a state before the first observation, so the first transition is `initial` itself,
    whatever that earlier state (its own initial distribution is then immaterial: uniform)."""
    observations = Emissions(emissions, nesting, length)
    first = _state_logits(initial, states).unsqueeze(-2)  # the same from every earlier state
    later = _state_logits(step(torch.arange(states)), states)
    first, later = torch.broadcast_tensors(first, later)
    transitions = torch.cat([first.unsqueeze(-3), later.unsqueeze(-3).expand(*later.shape[:-2], length - 1,
                                                                              states, states)], -3)
    return dist.DiscreteHMM(torch.zeros(states), transitions, observations)


def state_marginals(hmm: dist.DiscreteHMM, observed: torch.Tensor) -> torch.Tensor:
    """P(z[t] = k | the observations), (*batch, time, K): forward-backward smoothing, as the
    gradient of log p(y) with respect to a shift of each state's log density at each time
    point (the forward algorithm differentiated; `DiscreteHMM` itself only filters)."""
    emissions = hmm.observation_dist
    with torch.enable_grad():
        # The HMM's own batch shape: a plate of draws may have expanded it past its observations'.
        shift = torch.zeros(hmm.batch_shape + emissions.batch_shape[-2:], requires_grad=True)
        shifted = Emissions(emissions.parts, emissions.nesting, emissions.batch_shape[-2], shift)
        log_evidence = dist.DiscreteHMM(hmm.initial_logits, hmm.transition_logits, shifted).log_prob(observed)
        (marginals,) = torch.autograd.grad(log_evidence.sum(), shift)
    return marginals


def emitted(*observed) -> torch.Tensor:
    """The observe statements' data, one column each, as `Emissions` scores them."""
    return torch.stack([torch.as_tensor(v, dtype=torch.get_default_dtype()) for v in observed], -1)
