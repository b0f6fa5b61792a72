"""NUTS's potential energy and its gradient as one frozen graph, built beside the warm start's fit.

make_fx records the forward operations together with those autograd runs backward, so
that a leapfrog step builds no autograd graph; a peephole pass drops the operations
that do nothing (`x * 1`, `x + 0`, `x ** 1`, `-(-x)`, `detach`: a tenth of radon's);
torch.jit traces and freezes the rest (constants folded). Radon's potential and
gradient: 0.24-0.28 ms of CPU, against 0.71 ms for the traced potential under autograd.

make_fx's first use imports torch's compiler stack, 1.4 s of CPU. One forked process
pays that, and traces, while this one fits the warm start, and hands the graph back
serialized by `torch.jit.save` (tensors and TorchScript code, from our own child over
a pipe, never a file): `torch.jit.load` reads it in about 10 ms without that stack,
and the chain processes forked afterwards inherit it. Before, each chain process
imported the stack itself, three processes on two cores while the fit ran.

The graph takes the flat unconstrained latents z; a chain in the whitened space
z = centre + L u maps u and the gradient around it (`whitened_with_gradient`).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import warnings
from collections.abc import Callable, Iterator

import pyro
import torch
from torch.fx import GraphModule, Node
from torch.fx.experimental.proxy_tensor import make_fx

from compiler.inference import no_u_turn
from compiler.inference.no_u_turn import Energy, EnergyAndGradient

aten = torch.ops.aten
# (operation, the scalar operand for which it returns its tensor operand unchanged)
_IDENTITIES = {(aten.mul.Tensor, 1), (aten.mul.Scalar, 1), (aten.div.Tensor, 1), (aten.div.Scalar, 1),
               (aten.add.Tensor, 0), (aten.add.Scalar, 0), (aten.sub.Tensor, 0), (aten.sub.Scalar, 0),
               (aten.pow.Tensor_Scalar, 1)}
_PASS_THROUGH = {aten.detach.default, aten.alias.default}  # no autograd runs in the graph
_RESHAPES = {aten.expand.default, aten.view.default, aten.reshape.default}

_ENERGY: tuple[Energy, torch.Tensor] | None = None  # what the forked builder traces (inherited, never pickled)


def flat_with_gradient(energy: Energy, example: torch.Tensor) -> EnergyAndGradient:
    """z -> (U(z), ∇U(z)) as one frozen graph of the forward and backward operations; where the
    potential has control flow on values make_fx cannot record, the traced potential under autograd."""
    graph = _recorded(energy, example)
    return no_u_turn.with_gradient(traced(energy, example)) if graph is None else _frozen(graph, example)


def traced(energy: Energy, example: torch.Tensor) -> Energy:
    """The potential as one graph traced by torch.jit.trace (as Pyro's own `jit_compile` does)."""
    with _tracing():
        return torch.jit.trace(energy, (example,), check_trace=False)


def whitened_with_gradient(evaluate: EnergyAndGradient, centre: torch.Tensor, scale_tril: torch.Tensor) -> EnergyAndGradient:
    """u -> (U(z), ∇ᵤU) at z = centre + L u: the gradient is Lᵀ ∇U(z)."""
    def at(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value, gradient = evaluate(centre + scale_tril @ u)
        return value, gradient @ scale_tril

    return at


@contextlib.contextmanager
def built_aside(energy: Energy, example: torch.Tensor) -> Iterator[Callable[[], EnergyAndGradient]]:
    """Yields a function that returns `flat_with_gradient(energy, example)`: built meanwhile in a
    forked process where there is a second core, else built when first asked for."""
    if len(os.sched_getaffinity(0)) < 2:
        yield lambda: flat_with_gradient(energy, example)
        return
    global _ENERGY
    _ENERGY, threads = (energy, example), torch.get_num_threads()
    try:
        with multiprocessing.get_context("fork").Pool(1, initializer=_ignore_interrupts) as pool:
            pending = pool.apply_async(_serialized)
            torch.set_num_threads(max(1, threads - 1))  # (the builder has a core of its own meanwhile)
            yield lambda: _loaded(pending.get(), energy, example)
    finally:
        _ENERGY = None
        torch.set_num_threads(threads)


def _serialized() -> bytes | None:
    """In the forked builder: the frozen graph as bytes, or None where make_fx cannot record it."""
    torch.set_num_threads(1)
    energy, example = _ENERGY
    graph = _recorded(energy, example)
    if graph is None:
        return None
    buffer = io.BytesIO()
    try:
        torch.jit.save(_frozen(graph, example), buffer)
    except RuntimeError:  # (a graph TorchScript cannot trace or save: the parent traces the potential instead)
        return None
    return buffer.getvalue()


def _loaded(serialized: bytes | None, energy: Energy, example: torch.Tensor) -> EnergyAndGradient:
    if serialized is None:
        return no_u_turn.with_gradient(traced(energy, example))
    return torch.jit.load(io.BytesIO(serialized))


def _recorded(energy: Energy, example: torch.Tensor) -> GraphModule | None:
    try:
        with pyro.validation_enabled(False):  # (the checks branch on values; the data were checked at load)
            graph = make_fx(no_u_turn.with_gradient(energy))(example)
    except RuntimeError:
        return None
    return _simplified(graph)


def _frozen(graph: GraphModule, example: torch.Tensor) -> torch.jit.ScriptModule:
    with _tracing():
        # (train(False) is what nn.Module.eval does: freezing wants a module out of training mode)
        return torch.jit.freeze(torch.jit.trace(graph, (example,), check_trace=False).train(False))


def _simplified(graph: GraphModule) -> GraphModule:
    """The graph without the operations that return an operand unchanged (exactly, in IEEE arithmetic)."""
    for node in list(graph.graph.nodes):
        if (same := _unchanged_operand(node)) is not None:
            node.replace_all_uses_with(same)
            graph.graph.erase_node(node)
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return graph


def _unchanged_operand(node: Node) -> Node | None:
    first = node.args[0] if node.op == "call_function" and node.args and not node.kwargs else None
    if not isinstance(first, Node) or not _same_kind(node, first) or _mutated(node) or _mutated(first):
        return None
    if node.target in _PASS_THROUGH or node.target in _RESHAPES:  # (a reshape to the operand's own shape)
        return first
    if node.target == aten.neg.default and first.target == aten.neg.default:
        return first.args[0]
    if len(node.args) == 2 and isinstance(node.args[1], int | float) and (node.target, node.args[1]) in _IDENTITIES:
        return first
    return None


def _mutated(node: Node) -> bool:
    """Some operation changes it in place (`squeeze_`): then its aliases are not interchangeable."""
    return any(getattr(user.target, "overloadpacket", user.target).__name__.endswith("_") for user in node.users
               if user.op == "call_function")


def _same_kind(node: Node, operand: Node) -> bool:
    """Same dtype and shape (make_fx records both): `x + 0.0` on integers would change the dtype."""
    mine, theirs = node.meta.get("tensor_meta"), operand.meta.get("tensor_meta")
    return mine is not None and theirs is not None and (mine.dtype, mine.shape) == (theirs.dtype, theirs.shape)


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    with warnings.catch_warnings():  # torch.jit.trace is deprecated from torch 2.13 on (pinned below 2.14)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, whose pool then ends this one
