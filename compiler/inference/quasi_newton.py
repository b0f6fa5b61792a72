"""L-BFGS with a strong-Wolfe line search, on a list of parameter tensors.

The algorithm and every constant are torch.optim.LBFGS's (itself ported from
Lua torch's optim), so fits match it step for step. pplc keeps its own copy
for two reasons: the iterations and the curvature history are pplc's state,
read and bounded by pplc (torch keeps them in private optimizer state), and
constructing any torch.optim optimizer imports torch's dynamo compiler, which costs
about 0.8 s of a 2 s `pplc run` (docs/inference.md) although nothing here is
compiled.

`LBFGS.run` is one call of torch's `step`: an opening evaluation, then at most
`max_iterations` iterations and `max_evaluations` evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# torch.optim.LBFGS's defaults where pplc does not choose: the Wolfe constants and
# the smallest curvature pair kept.
ARMIJO, CURVATURE, MIN_CURVATURE = 1e-4, 0.9, 1e-10
LINE_TOLERANCE = 1e-9  # a bracket narrower than this (times the step's size) ends the line search

Closure = Callable[[], float]  # evaluates the loss at the parameters' values and leaves its gradient in .grad


@dataclass
class LBFGS:
    """The optimiser's state: the curvature pairs, the last direction and step, and
    how many iterations it has taken over all calls."""

    parameters: list[torch.Tensor]
    step_scale: float = 1.0
    history: int = 50
    tolerance_change: float = 1e-15
    iterations: int = 0
    direction: torch.Tensor | None = None
    step: float = 0.0
    steps_taken: list[torch.Tensor] = field(default_factory=list)
    gradient_changes: list[torch.Tensor] = field(default_factory=list)
    inverse_products: list[torch.Tensor] = field(default_factory=list)
    hessian_diagonal: torch.Tensor | float = 1.0
    previous_gradient: torch.Tensor | None = None

    @torch.no_grad()
    def run(self, closure: Closure, max_iterations: int, max_evaluations: int) -> None:
        """One call: iterate from the parameters' current values; they are left at the last accepted point."""
        with torch.enable_grad():
            loss = float(closure())
        evaluations = 1
        gradient = self._gradient()
        if gradient.abs().max() <= 0:  # a stationary point: torch's tolerance_grad is 0 for pplc
            return
        for iteration in range(1, max_iterations + 1):
            self.iterations += 1
            direction = self._direction(gradient)
            previous_loss = loss
            self._remember(gradient)
            step = min(1.0, 1.0 / float(gradient.abs().sum())) * self.step_scale if self.iterations == 1 \
                else self.step_scale
            self.direction, self.step = direction, step
            slope = gradient.dot(direction)
            if slope > -self.tolerance_change:
                break
            start = self._values()
            loss, gradient, step, used = _strong_wolfe(
                lambda size: self._evaluate_along(closure, start, size, direction),
                step, direction, loss, gradient, slope, max_evaluations - evaluations)
            self.step = step
            self._move(step, direction)
            evaluations += used
            if (iteration == max_iterations or evaluations >= max_evaluations or gradient.abs().max() <= 0
                    or direction.mul(step).abs().max() <= self.tolerance_change
                    or abs(loss - previous_loss) < self.tolerance_change):
                break

    def _direction(self, gradient: torch.Tensor) -> torch.Tensor:
        """The quasi-Newton direction: minus the approximate inverse Hessian times the gradient."""
        if self.iterations == 1:
            self.steps_taken, self.gradient_changes, self.inverse_products = [], [], []
            self.hessian_diagonal = 1.0
            return gradient.neg()
        change = gradient.sub(self.previous_gradient)
        taken = self.direction.mul(self.step)
        curvature = change.dot(taken)
        if curvature > MIN_CURVATURE:
            if len(self.gradient_changes) == self.history:
                self.gradient_changes.pop(0)
                self.steps_taken.pop(0)
                self.inverse_products.pop(0)
            self.gradient_changes.append(change)
            self.steps_taken.append(taken)
            self.inverse_products.append(1.0 / curvature)
            self.hessian_diagonal = curvature / change.dot(change)
        alphas = [None] * len(self.gradient_changes)
        q = gradient.neg()
        for i in range(len(self.gradient_changes) - 1, -1, -1):
            alphas[i] = self.steps_taken[i].dot(q) * self.inverse_products[i]
            q.add_(self.gradient_changes[i], alpha=-alphas[i])
        r = torch.mul(q, self.hessian_diagonal)
        for i in range(len(self.gradient_changes)):
            beta = self.gradient_changes[i].dot(r) * self.inverse_products[i]
            r.add_(self.steps_taken[i], alpha=alphas[i] - beta)
        return r

    def _remember(self, gradient: torch.Tensor) -> None:
        if self.previous_gradient is None:
            self.previous_gradient = gradient.clone()
        else:
            self.previous_gradient.copy_(gradient)

    def _gradient(self) -> torch.Tensor:
        return torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if p.grad is None
                          else p.grad.reshape(-1) for p in self.parameters])

    def _values(self) -> list[torch.Tensor]:
        return [p.clone() for p in self.parameters]

    def _move(self, step: float, direction: torch.Tensor) -> None:
        offset = 0
        for p in self.parameters:
            p.add_(direction[offset:offset + p.numel()].view_as(p), alpha=step)
            offset += p.numel()

    def _evaluate_along(self, closure: Closure, start: list[torch.Tensor], step: float,
                        direction: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The loss and gradient at start + step * direction; the parameters are put back at start."""
        self._move(step, direction)
        with torch.enable_grad():
            loss = float(closure())
        gradient = self._gradient()
        for p, value in zip(self.parameters, start):
            p.copy_(value)
        return loss, gradient


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through two points with their slopes, within bounds."""
    low, high = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2.0
    d2 = d2_square.sqrt()
    if x1 <= x2:
        minimum = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        minimum = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(minimum, low), high)


def _strong_wolfe(evaluate, step, direction, loss, gradient, slope, max_evaluations):
    """A step satisfying the strong Wolfe conditions along `direction`: bracket, then zoom.
    Returns (loss, gradient, step, evaluations)."""
    direction_size = direction.abs().max()
    gradient = gradient.clone()
    new_loss, new_gradient = evaluate(step)
    evaluations = 1
    new_slope = new_gradient.dot(direction)
    previous_step, previous_loss, previous_gradient, previous_slope = 0, loss, gradient, slope
    done = False
    iteration = 0
    while iteration < max_evaluations:
        if new_loss > (loss + ARMIJO * step * slope) or (iteration > 1 and new_loss >= previous_loss):
            bracket, bracket_loss = [previous_step, step], [previous_loss, new_loss]
            bracket_gradient, bracket_slope = [previous_gradient, new_gradient.clone()], [previous_slope, new_slope]
            break
        if abs(new_slope) <= -CURVATURE * slope:
            bracket, bracket_loss, bracket_gradient = [step], [new_loss], [new_gradient]
            done = True
            break
        if new_slope >= 0:
            bracket, bracket_loss = [previous_step, step], [previous_loss, new_loss]
            bracket_gradient, bracket_slope = [previous_gradient, new_gradient.clone()], [previous_slope, new_slope]
            break
        last = step
        step = _cubic_minimum(previous_step, previous_loss, previous_slope, step, new_loss, new_slope,
                              bounds=(step + 0.01 * (step - previous_step), step * 10))
        previous_step, previous_loss = last, new_loss
        previous_gradient, previous_slope = new_gradient.clone(), new_slope
        new_loss, new_gradient = evaluate(step)
        evaluations += 1
        new_slope = new_gradient.dot(direction)
        iteration += 1
    if iteration == max_evaluations:
        bracket, bracket_loss, bracket_gradient = [0, step], [loss, new_loss], [gradient, new_gradient]
    insufficient_progress = False
    low, high = (0, 1) if bracket_loss[0] <= bracket_loss[-1] else (1, 0)
    while not done and iteration < max_evaluations:
        if abs(bracket[1] - bracket[0]) * direction_size < LINE_TOLERANCE:
            break
        step = _cubic_minimum(bracket[0], bracket_loss[0], bracket_slope[0],
                              bracket[1], bracket_loss[1], bracket_slope[1])
        # A trial too near an end of the bracket moves a tenth of its width inside.
        margin = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - step, step - min(bracket)) < margin:
            if insufficient_progress or step >= max(bracket) or step <= min(bracket):
                step = max(bracket) - margin if abs(step - max(bracket)) < abs(step - min(bracket)) \
                    else min(bracket) + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        new_loss, new_gradient = evaluate(step)
        evaluations += 1
        new_slope = new_gradient.dot(direction)
        iteration += 1
        if new_loss > (loss + ARMIJO * step * slope) or new_loss >= bracket_loss[low]:
            bracket[high], bracket_loss[high] = step, new_loss
            bracket_gradient[high], bracket_slope[high] = new_gradient.clone(), new_slope
            low, high = (0, 1) if bracket_loss[0] <= bracket_loss[1] else (1, 0)
        else:
            if abs(new_slope) <= -CURVATURE * slope:
                done = True
            elif new_slope * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_loss[high] = bracket[low], bracket_loss[low]
                bracket_gradient[high], bracket_slope[high] = bracket_gradient[low], bracket_slope[low]
            bracket[low], bracket_loss[low] = step, new_loss
            bracket_gradient[low], bracket_slope[low] = new_gradient.clone(), new_slope
    return bracket_loss[low], bracket_gradient[low], bracket[low], evaluations
