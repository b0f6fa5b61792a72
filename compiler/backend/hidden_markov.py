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

    def __init__(self, parts: list[dist.TorchDistribution], nesting: int, length: int):
        self.parts, self.nesting = parts, nesting
        shape = torch.broadcast_shapes(*(d.batch_shape for d in parts), (1,) * (nesting + 2))
        batch = _states_last(torch.empty(shape, device="meta"), nesting).shape
        super().__init__(batch[:-2] + (length, batch[-1]), torch.Size([len(parts)]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """`value` (time, 1, parts), as `DiscreteHMM` passes it: (sample..., time, K) log densities."""
        total = sum(d.log_prob(value[..., 0, j]) for j, d in enumerate(self.parts))
        return _states_last(total, self.nesting)


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


def emitted(*observed) -> torch.Tensor:
    """The observe statements' data, one column each, as `Emissions` scores them."""
    return torch.stack([torch.as_tensor(v, dtype=torch.get_default_dtype()) for v in observed], -1)
