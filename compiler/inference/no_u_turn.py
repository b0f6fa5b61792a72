"""The No-U-Turn sampler on one flat vector, for chains that start in a whitened geometry.

Pyro's NUTS spends more time on its own bookkeeping than on the model (radon:
0.9 ms per leapfrog step beside 0.6 ms for the potential and its gradient: a dict
of tensors per state, `pyro.sample` for every coin flip of the tree). This is the
same algorithm on one flat NumPy vector with Python floats for the energies (a torch
operation on a vector this small costs more in dispatch than NumPy's; the potential is
evaluated in torch, on the same memory): multinomial
NUTS (Betancourt 2017, "A conceptual introduction to Hamiltonian Monte Carlo",
appendix A; Stan's sampler), the U-turn criterion on the summed momenta (with Stan's
checks across merged subtrees), an
identity mass matrix (the caller has whitened the space), and Nesterov dual
averaging of the step size during warm-up (Hoffman & Gelman 2014, algorithm 5,
with Stan's constants). tests/test_no_u_turn.py checks it on Gaussians of known
moments and against exact posteriors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

MAX_DEPTH = 10  # leapfrog steps per draw at most 2^10 - 1, as Stan and Pyro
# During warm-up, whose draws are not kept, trees stop at 2^5 - 1 steps: early on dual averaging
# swings the step size over a factor of ten, and the smallest steps grew trees of 400 steps
# that cost radon's warm-up twice its sampling (12,288 steps against 7,000).
WARMUP_MAX_DEPTH = 5
MAX_ENERGY_ERROR = 1000.0  # a step whose energy grows by more than this diverged (Stan's)
# Dual averaging (Hoffman & Gelman 2014; Stan's defaults)
SHRINKAGE, STABILISATION, DECAY = 0.05, 10.0, 0.75

Energy = Callable[[torch.Tensor], torch.Tensor]  # u -> U(u), a scalar with a gradient
EnergyAndGradient = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # u -> (U(u), ∇U(u))


def with_gradient(energy: Energy) -> EnergyAndGradient:
    """U -> u ↦ (U(u), ∇U(u)) by autograd."""
    def evaluate(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = u.detach().requires_grad_()
        value = energy(u)
        (gradient,) = torch.autograd.grad(value, u)
        return value.detach(), gradient

    return evaluate


def _on_arrays(evaluate: EnergyAndGradient) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    def on_arrays(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = evaluate(torch.from_numpy(u))
        return float(value), gradient.numpy()

    return on_arrays


@dataclass(frozen=True)
class Chain:
    """A chain's draws after warm-up and, per draw, its sampler's statistics."""

    draws: np.ndarray  # (samples, D)
    diverging: np.ndarray
    n_steps: np.ndarray
    tree_depth: np.ndarray
    step_size: np.ndarray


@dataclass(slots=True)  # (slots: the tree builds thousands of these a second)
class _State:
    u: np.ndarray
    p: np.ndarray
    energy: float  # U(u)
    gradient: np.ndarray


@dataclass(slots=True)
class _Tree:
    left: _State
    right: _State
    proposal: _State
    log_weight: float  # log of the summed exp(-H) over the tree's states, relative to the start's
    momentum: np.ndarray  # the sum of the tree's momenta
    turning: bool
    diverging: bool
    acceptance: float  # summed min(1, exp(-ΔH)) over its steps
    steps: int


class Sampler:
    """One chain: `run` warms up (adapting the step size) and then draws."""

    def __init__(self, evaluate: EnergyAndGradient, target_accept: float, generator: np.random.Generator):
        self.evaluate, self.target_accept, self.generator = _on_arrays(evaluate), target_accept, generator

    def run(self, start: np.ndarray, warmup: int, samples: int, after_each: Callable[[], None] | None = None
            ) -> Chain:
        """`warmup` iterations, then `samples` draws; `after_each` is told after each (a progress count)."""
        state = self._state(np.asarray(start, dtype=np.float64), np.zeros_like(start))
        step_size = self._reasonable_step_size(state)
        adaptation = _DualAveraging(step_size, self.target_accept)
        draws, stats = [], []
        for iteration in range(warmup + samples):
            state, tree, depth = self._transition(state, step_size, WARMUP_MAX_DEPTH if iteration < warmup else MAX_DEPTH)
            if after_each is not None:
                after_each()
            if iteration < warmup:
                step_size = adaptation.update(tree.acceptance / tree.steps)
                if iteration == warmup - 1:
                    step_size = adaptation.final
                continue
            draws.append(state.u)
            stats.append((tree.diverging, tree.steps, depth, step_size))
        diverging, steps, depths, sizes = (np.asarray(column) for column in zip(*stats))
        return Chain(np.stack(draws), diverging.astype(bool), steps, depths, sizes)

    def _transition(self, state: _State, step_size: float, max_depth: int) -> tuple[_State, _Tree, int]:
        momentum = self.generator.standard_normal(state.u.shape)
        start = _State(state.u, momentum, state.energy, state.gradient)
        initial = state.energy + 0.5 * float(momentum @ momentum)
        tree = _Tree(start, start, start, 0.0, momentum, False, False, 0.0, 0)
        depth = 0
        while depth < max_depth:
            direction = 1 if self._uniform() < 0.5 else -1
            edge = tree.right if direction > 0 else tree.left
            branch = self._build(edge, direction, depth, step_size, initial)
            depth += 1
            if branch.diverging or branch.turning:
                tree.diverging |= branch.diverging
                tree.acceptance += branch.acceptance
                tree.steps += branch.steps
                break
            tree = self._extend(tree, branch, direction)
            if tree.turning:
                break
        return tree.proposal, tree, depth

    def _extend(self, tree: _Tree, branch: _Tree, direction: int) -> _Tree:
        """The tree grown by a branch on one side; the proposal moves into the branch with
        probability min(1, w_branch / w_tree) (biased progressive sampling)."""
        take = math.log(self._uniform()) < branch.log_weight - tree.log_weight
        before, after = (tree, branch) if direction > 0 else (branch, tree)
        return _Tree(before.left, after.right, branch.proposal if take else tree.proposal,
                     _log_add_exp(tree.log_weight, branch.log_weight), tree.momentum + branch.momentum,
                     _merged_turning(before, after), False, tree.acceptance + branch.acceptance,
                     tree.steps + branch.steps)

    def _build(self, state: _State, direction: int, depth: int, step_size: float, initial: float) -> _Tree:
        """A subtree of 2^depth leapfrog steps from `state` in `direction`."""
        if depth == 0:
            new = self._leapfrog(state, direction * step_size)
            total = new.energy + 0.5 * float(new.p @ new.p)
            error = total - initial
            diverging = not math.isfinite(total) or error > MAX_ENERGY_ERROR
            return _Tree(new, new, new, -error if math.isfinite(error) else -math.inf, new.p, False, diverging,
                         math.exp(-max(error, 0.0)) if math.isfinite(error) else 0.0, 1)
        first = self._build(state, direction, depth - 1, step_size, initial)
        if first.turning or first.diverging:
            return first
        second = self._build(first.right if direction > 0 else first.left, direction, depth - 1, step_size, initial)
        steps, acceptance = first.steps + second.steps, first.acceptance + second.acceptance
        if second.turning or second.diverging:
            return _Tree(first.left, first.right, first.proposal, first.log_weight, first.momentum, second.turning,
                         second.diverging, acceptance, steps)
        log_weight = _log_add_exp(first.log_weight, second.log_weight)
        # Within a subtree, the proposal is drawn in proportion to the weights (uniform progressive sampling).
        take = math.log(self._uniform()) < second.log_weight - log_weight
        before, after = (first, second) if direction > 0 else (second, first)
        return _Tree(before.left, after.right, second.proposal if take else first.proposal, log_weight,
                     first.momentum + second.momentum, _merged_turning(before, after), False, acceptance, steps)

    def _leapfrog(self, state: _State, step: float) -> _State:
        half = state.p - 0.5 * step * state.gradient
        moved = self._state(state.u + step * half, half)
        return _State(moved.u, half - 0.5 * step * moved.gradient, moved.energy, moved.gradient)

    def _state(self, u: np.ndarray, p: np.ndarray) -> _State:
        energy, gradient = self.evaluate(u)
        if not math.isfinite(energy):
            return _State(u, p, math.inf, np.zeros_like(u))
        return _State(u, p, energy, gradient)

    def _reasonable_step_size(self, state: _State) -> float:
        """Hoffman & Gelman's heuristic: double or halve from 1 until one step's acceptance crosses 1/2."""
        step_size, direction = 1.0, 0
        for _ in range(50):
            momentum = self.generator.standard_normal(state.u.shape)
            start = _State(state.u, momentum, state.energy, state.gradient)
            new = self._leapfrog(start, step_size)
            error = (new.energy + 0.5 * float(new.p @ new.p)) - (state.energy + 0.5 * float(momentum @ momentum))
            accepted = math.isfinite(error) and -error > math.log(0.5)
            direction = direction or (1 if accepted else -1)
            if (direction > 0) != accepted:
                break
            step_size *= 2.0 if direction > 0 else 0.5
        return step_size

    def _uniform(self) -> float:
        return self.generator.random()


def _log_add_exp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) on Python floats (NumPy's costs a microsecond of dispatch on scalars)."""
    high, low = (a, b) if a >= b else (b, a)
    return high if low == -math.inf else high + math.log1p(math.exp(low - high))


def _merged_turning(before: _Tree, after: _Tree) -> bool:
    """Whether two adjacent subtrees (`before` first along the trajectory) turn back once merged:
    across the whole, and, as Stan checks since 2.23, across each subtree with the neighbouring
    state of the other. Without those two checks a trajectory on a Gaussian, the whitened space's
    target, can circle past its U-turn: a third of the draws on a 10-dimensional standard normal
    ran to the 1,023-step limit (357 steps a draw on average; tests/test_no_u_turn.py)."""
    return (_turning(before.left, after.right, before.momentum + after.momentum)
            or _turning(before.left, after.left, before.momentum + after.left.p)
            or _turning(before.right, after.right, after.momentum + before.right.p))


def _turning(left: _State, right: _State, momentum: np.ndarray) -> bool:
    """The trajectory turns back on itself: the summed momentum points against an end's."""
    return float(momentum @ left.p) <= 0 or float(momentum @ right.p) <= 0


class _DualAveraging:
    """log step size by Nesterov dual averaging toward a mean acceptance of `target`."""

    def __init__(self, step_size: float, target: float):
        self.centre, self.target = math.log(10 * step_size), target
        self.iteration, self.error, self.log_averaged = 0, 0.0, 0.0

    def update(self, acceptance: float) -> float:
        self.iteration += 1
        t = self.iteration
        self.error += ((self.target - acceptance) - self.error) / (t + STABILISATION)
        log_step = self.centre - math.sqrt(t) / SHRINKAGE * self.error
        weight = t ** -DECAY
        self.log_averaged = weight * log_step + (1 - weight) * self.log_averaged
        return math.exp(log_step)

    @property
    def final(self) -> float:
        return math.exp(self.log_averaged)
